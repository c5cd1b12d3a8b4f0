/* libFuzzer target for the SentencePiece tokenizer: tokenizes arbitrary bytes with the
 * llama-spm vocabulary and checks what must hold for any input: the count is the same with and
 * without an output buffer, every id is in range, and detokenizing gives the input back (byte
 * fallback makes every byte string representable). Exempt from the round trip: inputs holding a
 * literal "▁" (it detokenizes to a space), and inputs where a lead byte is not followed by
 * enough continuation bytes: the tokenizer, like llama.cpp's, then takes the next bytes into
 * that character regardless, which can swallow the first byte of an escaped space, and the
 * space comes back as the bytes of "▁". The vocabulary is loaded once, from $PINFER_FUZZ_VOCAB or
 * ../shared/testdata/tokenizer/ggml-vocab-llama-spm.gguf (relative to the repository root).
 *
 * The first input byte picks the flags (bit 0 add_bos, bit 1 parse_special); the rest is text. */
#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pf_vocab *vocab;

/* True when every lead byte is followed by the continuation bytes its high nibble promises,
 * the way the tokenizer splits characters. */
static bool chars_whole(const char *s, size_t n)
{
    static const unsigned char len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    for (size_t i = 0; i < n;) {
        size_t k = len[(unsigned char)s[i] >> 4];
        if (k > n - i) return false;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return false;
        i += k;
    }
    return true;
}

static void load_vocab(void)
{
    const char *path = getenv("PINFER_FUZZ_VOCAB");
    if (!path) path = "../shared/testdata/tokenizer/ggml-vocab-llama-spm.gguf";
    struct gguf_file *f = NULL;
    if (gguf_open(&f, path) || pf_vocab_load(&vocab, f)) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s (set PINFER_FUZZ_VOCAB)\n", path,
                pinfer_last_error());
        exit(1);
    }
    gguf_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!vocab) load_vocab();
    if (size == 0) return 0;
    bool add_bos = data[0] & 1, special = data[0] & 2;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    int n = pf_vocab_tokenize_ex(vocab, text, len, add_bos, special, NULL, 0);
    if (n < 0) return 0;
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids) return 0;
    int n2 = pf_vocab_tokenize_ex(vocab, text, len, add_bos, special, ids, n);
    if (n2 != n) __builtin_trap();

    char *out = malloc(len + 16);
    size_t out_len = 0;
    bool fits = out != NULL;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= pf_vocab_n(vocab)) __builtin_trap();
        char piece[PF_VOCAB_MAX_TOKEN_LEN];
        int k = pf_vocab_piece(vocab, ids[i], piece, sizeof piece);
        if (k < 0 || k > (int)sizeof piece) __builtin_trap();
        const char *p = piece;
        /* the space the space prefix added comes back as the first piece's leading space */
        if (i == (add_bos ? 1 : 0) && k > 0 && piece[0] == ' ') { p++; k--; }
        if (!fits || out_len + (size_t)k > len + 16) { fits = false; continue; }
        memcpy(out + out_len, p, (size_t)k);
        out_len += (size_t)k;
    }
    bool exempt = special || memmem(text, len, "\xe2\x96\x81", 3) != NULL || !chars_whole(text, len);
    if (!exempt && (!fits || out_len != len || memcmp(out, text, len) != 0)) __builtin_trap();

    free(out);
    free(ids);
    return 0;
}
