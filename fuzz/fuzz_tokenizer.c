/* libFuzzer target for the tokenizers: tokenizes arbitrary bytes with the llama-spm vocabulary
 * (SentencePiece) or the gpt-2 vocabulary (byte-level BPE) and checks what must hold for any
 * input: the count is the same with and without an output buffer, every id is in range, and
 * detokenizing gives the input back where the tokenizer promises it:
 *   - SentencePiece: byte fallback makes every byte string representable. Exempt: inputs
 *     holding a literal "▁" (it detokenizes to a space), and inputs where a lead byte is not
 *     followed by enough continuation bytes: the tokenizer, like llama.cpp's, then takes the
 *     next bytes into that character regardless, which can swallow the first byte of an
 *     escaped space, and the space comes back as the bytes of "▁".
 *   - BPE: every byte has a token, so text comes back as it was read: exempt are inputs that
 *     llama.cpp's decoding changes (invalid UTF-8 becomes U+FFFD, overlong forms shrink).
 * With parse_special, control tokens written in the text print nothing: exempt too.
 * The vocabularies are loaded once, from $PINFER_FUZZ_VOCAB / $PINFER_FUZZ_BPE_VOCAB or
 * ../shared/testdata/tokenizer/ggml-vocab-{llama-spm,gpt-2}.gguf (relative to the repository
 * root).
 *
 * The first input byte picks the flags (bit 0 add_bos, bit 1 parse_special, bit 7 the gpt-2
 * vocabulary instead of llama-spm); the rest is text. */
#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/pretok.h"
#include "tokenizer/vocab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pf_vocab *spm, *bpe;

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

/* True when llama.cpp's decoding (pf_utf8_next) gives the bytes back: every character
 * well-formed and in its shortest form (surrogates included). */
static bool utf8_kept(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k;
        char u[4];
        uint32_t cp = pf_utf8_next((const unsigned char *)s + i, n - i, &k);
        if ((cp == 0xFFFD && k == 1) || pf_utf8_put(cp, u) != k || memcmp(u, s + i, k) != 0) return false;
        i += k;
    }
    return true;
}

static struct pf_vocab *load_vocab(const char *env, const char *name)
{
    const char *path = getenv(env);
    char def[256];
    snprintf(def, sizeof def, "../shared/testdata/tokenizer/ggml-vocab-%s.gguf", name);
    if (!path) path = def;
    struct gguf_file *f = NULL;
    struct pf_vocab *v = NULL;
    if (gguf_open(&f, path) || pf_vocab_load(&v, f)) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s (set %s)\n", path, pinfer_last_error(), env);
        exit(1);
    }
    gguf_close(f);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    bool add_bos = data[0] & 1, special = data[0] & 2, is_bpe = data[0] & 0x80;
    if (!spm) spm = load_vocab("PINFER_FUZZ_VOCAB", "llama-spm");
    if (is_bpe && !bpe) bpe = load_vocab("PINFER_FUZZ_BPE_VOCAB", "gpt-2");
    const struct pf_vocab *vocab = is_bpe ? bpe : spm;
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
    char small[PF_VOCAB_MAX_TOKEN_LEN];
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= pf_vocab_n(vocab)) __builtin_trap();
        int k = pf_vocab_piece(vocab, ids[i], small, sizeof small);
        if (k < 0) __builtin_trap();
        char *piece = small;
        if (k > (int)sizeof small) { /* BPE pieces may be longer than the token's text */
            if (!(piece = malloc((size_t)k))) { fits = false; continue; }
            if (pf_vocab_piece(vocab, ids[i], piece, k) != k) __builtin_trap();
        }
        const char *p = piece;
        /* SentencePiece: the space the space prefix added is the first piece's leading space */
        if (!is_bpe && i == (add_bos ? 1 : 0) && k > 0 && piece[0] == ' ') { p++; k--; }
        if (!fits || out_len + (size_t)k > len + 16) fits = false;
        else {
            memcpy(out + out_len, p, (size_t)k);
            out_len += (size_t)k;
        }
        if (piece != small) free(piece);
    }
    bool exempt = special || (is_bpe ? !utf8_kept(text, len)
                                     : memmem(text, len, "\xe2\x96\x81", 3) != NULL || !chars_whole(text, len));
    if (!exempt && (!fits || out_len != len || memcmp(out, text, len) != 0)) __builtin_trap();

    free(out);
    free(ids);
    return 0;
}
