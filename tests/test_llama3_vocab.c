/* A Llama-3-style model: `general.architecture` llama with a byte-level BPE vocabulary of 128256
 * tokens (pre-tokenizer llama-bpe, BOS <|begin_of_text|> = 128000, EOS <|eot_id|> = 128009, the
 * header and turn tokens of its chat format), made with `pinfer synth --vocab-from` from a
 * vocabulary GGUF this test writes: GPT-2's tokens and merges (../shared), filler tokens up to
 * 128000, then Llama 3's 256 special tokens at their ids. No Llama 3 vocabulary is small enough
 * to keep as test data; what is checked is what the 128k size and the ids past 2^16 touch:
 * loading, BOS added as Llama 3 adds it, ordinary text tokenized exactly as GPT-2's vocabulary
 * tokenizes it (same tokens and merges; the texts are ones on which the two pre-tokenizers agree),
 * special tokens parsed whole, the llama3 chat template recognised and its prompt tokenized,
 * pieces of the top ids, and decoding with logits over all 128256 tokens. */
#include "gguf/gguf.h"
#include "pinfer.h"
#include "tensor/types.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define N_VOCAB 128256
#define N_BASE 128000

static const char *special_name(int i, char *buf)
{
    static const char *const named[] = { "<|begin_of_text|>", "<|end_of_text|>", NULL, NULL, "<|finetune_right_pad_id|>", NULL,
                                         "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                                         "<|python_tag|>" };
    if (i < (int)(sizeof named / sizeof *named) && named[i]) return named[i];
    /* reserved ids are numbered as Llama 3 numbers them: 0, 1 at 128002-3, 2 at 128005, then from 3 */
    int r = i == 2 ? 0 : i == 3 ? 1 : i == 5 ? 2 : i - 8;
    sprintf(buf, "<|reserved_special_token_%d|>", r);
    return buf;
}

/* Writes the vocabulary file; 0 or -1. */
static int write_vocab(const char *gpt2, const char *out)
{
    struct gguf_file *f = NULL;
    if (gguf_open(&f, gpt2)) { fprintf(stderr, "%s: %s\n", gpt2, pinfer_last_error()); return -1; }
    int it = -1, im = -1;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_str *k = &f->kv[i].key;
        if (k->len == 21 && !memcmp(k->s, "tokenizer.ggml.tokens", 21)) it = (int)i;
        if (k->len == 21 && !memcmp(k->s, "tokenizer.ggml.merges", 21)) im = (int)i;
    }
    if (it < 0 || im < 0 || f->kv[it].arr_n > N_BASE) { gguf_close(f); return -1; }
    const uint64_t n_gpt2 = f->kv[it].arr_n;
    char **tok = calloc(N_VOCAB, sizeof *tok);
    int32_t *type = calloc(N_VOCAB, sizeof *type);
    for (int i = 0; i < N_VOCAB; i++) {
        char b[64];
        const char *s;
        if ((uint64_t)i < n_gpt2) {
            const struct gguf_str *g = &f->kv[it].arr_str[i];
            tok[i] = strndup(g->s, g->len);
            type[i] = 1;
            continue;
        }
        if (i < N_BASE) { sprintf(b, "\xc4\xa0" "filler%06d", i); s = b; type[i] = 1; }
        else { s = special_name(i - N_BASE, b); type[i] = 3; }
        tok[i] = strdup(s);
    }
    static const char tmpl[] =
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
        "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
    struct gguf_writer *w = NULL;
    int rc = gguf_writer_new(&w);
    if (!rc) rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (!rc) rc = gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe");
    if (!rc) rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, N_VOCAB);
    if (!rc) rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, type, N_VOCAB);
    if (!rc) rc = gguf_writer_copy_kv(w, &f->kv[im]);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 128000);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 128009);
    if (!rc) rc = gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);
    if (!rc) rc = gguf_writer_begin(w, out);
    if (!rc) rc = gguf_writer_finish(w);
    if (rc) fprintf(stderr, "writing %s: %s\n", out, pinfer_last_error());
    gguf_writer_free(w);
    for (int i = 0; i < N_VOCAB; i++) free(tok[i]);
    free(tok);
    free(type);
    gguf_close(f);
    return rc ? -1 : 0;
}

static struct pinfer_model *synth_load(const char *vocab, const char *path)
{
    struct pinfer_synth_params sp = pinfer_synth_default_params();
    sp.shape = "tiny";
    sp.n_embd = 64;
    sp.n_ff = 128;
    sp.n_layer = 2;
    sp.type = PF_TYPE_Q8_0;
    sp.vocab_from = vocab;
    int rc = pinfer_synth(path, &sp);
    CHECKF(rc == 0, "synth --vocab-from %s: %s", vocab, pinfer_last_error());
    struct pinfer_model *m = NULL;
    if (!rc && pinfer_model_load(&m, path, NULL)) { CHECKF(0, "load %s: %s", path, pinfer_last_error()); m = NULL; }
    return m;
}

static int tok(const struct pinfer_model *m, const char *s, bool bos, bool special, int32_t *out, int cap)
{
    return pinfer_tokenize_ex(m, s, strlen(s), bos, special, out, cap);
}

int main(void)
{
    const char *gpt2 = tu_shared_path("testdata/tokenizer/ggml-vocab-gpt-2.gguf");
    if (!gpt2 || access(gpt2, R_OK) != 0) TEST_SKIP("../shared/testdata/tokenizer/ggml-vocab-gpt-2.gguf is absent");
    const char *vocab = tu_tmp("llama3-vocab.gguf");
    CHECK(write_vocab(gpt2, vocab) == 0);
    struct pinfer_model *m = synth_load(vocab, tu_tmp("llama3.gguf")), *g = synth_load(gpt2, tu_tmp("gpt2.gguf"));
    if (!m || !g) { pinfer_model_free(m); pinfer_model_free(g); TEST_DONE(); }

    CHECK(pinfer_n_vocab(m) == N_VOCAB && pinfer_token_bos(m) == 128000 && pinfer_token_eos(m) == 128009);
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    CHECK(info.n_vocab == N_VOCAB);

    /* ordinary text: BOS first, then exactly GPT-2's tokens */
    static const char *const texts[] = { "Hello world, this is a test.", "The quick brown fox jumps over the lazy dog",
                                         "Once upon a time there was a little girl" };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        int32_t a[64], b[64];
        int na = tok(m, texts[i], true, false, a, 64), nb = tok(g, texts[i], false, false, b, 64);
        CHECKF(na == nb + 1 && na <= 64 && a[0] == 128000 && !memcmp(a + 1, b, (size_t)nb * sizeof *b),
               "'%s': %d ids (first %d) against GPT-2's %d", texts[i], na, na > 0 ? a[0] : -1, nb);
    }

    /* the chat template is recognised as llama3 and its specials are tokens */
    const char *name = NULL;
    CHECK(pinfer_chat_template_name(m, NULL, &name, NULL) == 0 && name && !strcmp(name, "llama3"));
    struct pinfer_chat_msg msgs[] = { { "user", "Hello" } };
    char prompt[512];
    int n = pinfer_chat_apply(m, NULL, msgs, 1, true, prompt, sizeof prompt);
    CHECKF(n > 0 && n < (int)sizeof prompt &&
           !strcmp(prompt, "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
           "prompt '%s'", prompt);
    int32_t ids[64];
    int k = tok(m, prompt, true, true, ids, 64);
    int32_t hello[8], nl[8];
    int nh = tok(g, "Hello", false, false, hello, 8), nn = tok(g, "\n\n", false, false, nl, 8);
    CHECKF(k > 8 && ids[0] == 128000 && ids[1] == 128006 && ids[3] == 128007 && nh == 1 && nn == 1 &&
           ids[4] == nl[0] && ids[5] == hello[0] && ids[6] == 128009 && ids[7] == 128006 && ids[k - 2] == 128007 &&
           ids[k - 1] == nl[0], "chat prompt tokens: %d ids", k);
    /* without parse_special the same text is plain characters */
    CHECK(tok(m, "<|eot_id|>", false, false, ids, 64) > 1);
    CHECK(tok(m, "<|eot_id|>", false, true, ids, 64) == 1 && ids[0] == 128009);
    CHECK(tok(m, "<|reserved_special_token_247|>", false, true, ids, 64) == 1 && ids[0] == N_VOCAB - 1);

    char piece[64];
    int pl = pinfer_token_to_piece(m, 127999, piece, sizeof piece);
    CHECKF(pl == 13 && !memcmp(piece, " filler127999", 13), "piece of 127999: %d", pl);
    CHECK(pinfer_token_to_piece(m, N_VOCAB, piece, sizeof piece) == PINFER_EINVAL);

    /* decode through ids past 2^16 up to the last; logits over the whole vocabulary */
    struct pinfer_ctx *c = NULL;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 2;
    CHECK(pinfer_ctx_new(&c, m, &cp) == 0);
    const int32_t seq[] = { 128000, 70000, N_VOCAB - 1, 128009, 5 };
    for (int t = 0; c && t < 5; t++) {
        int rc = pinfer_decode(c, &seq[t], 1, t, false);
        CHECKF(rc == 0, "decode %d: %s", seq[t], pinfer_last_error());
        if (rc) break;
        const float *lg = pinfer_ctx_logits(c, 0);
        int best = 0, finite = 1;
        for (int i = 0; i < N_VOCAB; i++) {
            finite &= isfinite(lg[i]);
            if (lg[i] > lg[best]) best = i;
        }
        CHECK(finite && best >= 0 && best < N_VOCAB);
    }
    const int32_t bad = N_VOCAB;
    CHECK(c && pinfer_decode(c, &bad, 1, 5, false) == PINFER_EINVAL);
    printf("llama3-style vocabulary: %d tokens, BOS %d, EOS %d, template %s, chat prompt %d tokens\n", pinfer_n_vocab(m),
           pinfer_token_bos(m), pinfer_token_eos(m), name ? name : "?", k);
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    pinfer_model_free(g);
    TEST_DONE();
}
