/* SentencePiece tokenizer: llama.cpp's own test vectors for the llama-spm vocabulary
 * (tests/test-tokenizer-0 inputs and expected ids), detokenize(tokenize(s)) == s, the
 * stories260K reference prompts, hand-checked merges on tiny vocabularies built in memory, and
 * one broken vocabulary per failure class. */
#include "testutil.h"

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"
#include "tokenizer/vocab_impl.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* ==== A GGUF image built in memory (no tensors) ==== */

struct gb {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
};

static void gb_raw(struct gb *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        while (b->n + n > b->cap) b->cap = b->cap ? b->cap * 2 : 4096;
        b->p = realloc(b->p, b->cap);
        if (!b->p) { fprintf(stderr, "out of memory\n"); exit(1); }
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(struct gb *b, uint32_t x) { gb_raw(b, &x, 4); }
static void gb_u64(struct gb *b, uint64_t x) { gb_raw(b, &x, 8); }
static void gb_strn(struct gb *b, const char *s, size_t n) { gb_u64(b, n); gb_raw(b, s, n); }
static void gb_str(struct gb *b, const char *s) { gb_strn(b, s, strlen(s)); }
static void gb_key(struct gb *b, const char *key, enum gguf_vtype t) { gb_str(b, key); gb_u32(b, t); b->n_kv++; }

static void kv_str(struct gb *b, const char *k, const char *v) { gb_key(b, k, GGUF_STRING); gb_str(b, v); }
static void kv_u32(struct gb *b, const char *k, uint32_t v) { gb_key(b, k, GGUF_U32); gb_u32(b, v); }
static void kv_i32(struct gb *b, const char *k, int32_t v) { gb_key(b, k, GGUF_I32); gb_raw(b, &v, 4); }
static void kv_bool(struct gb *b, const char *k, bool v)
{
    unsigned char c = v;
    gb_key(b, k, GGUF_BOOL);
    gb_raw(b, &c, 1);
}
static void kv_arr_str(struct gb *b, const char *k, const char *const *v, int n)
{
    gb_key(b, k, GGUF_ARRAY);
    gb_u32(b, GGUF_STRING);
    gb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) gb_str(b, v[i]);
}
static void kv_arr_num(struct gb *b, const char *k, enum gguf_vtype t, const void *v, int n)
{
    gb_key(b, k, GGUF_ARRAY);
    gb_u32(b, t);
    gb_u64(b, (uint64_t)n);
    gb_raw(b, v, (size_t)n * 4);
}

/* Parses the image, loads a vocabulary from it and closes the file again (the vocabulary must
 * not keep pointers into it). Returns pf_vocab_load's result. */
static int gb_load(struct gb *b, struct pf_vocab **out)
{
    struct gb img = { 0 };
    gb_raw(&img, "GGUF", 4);
    gb_u32(&img, 3);
    gb_u64(&img, 0);
    gb_u64(&img, b->n_kv);
    gb_raw(&img, b->p, b->n);
    while (img.n % 32) gb_raw(&img, "", 1);
    struct gguf_file *f = NULL;
    int rc = gguf_parse(&f, img.p, img.n);
    if (rc) {
        fprintf(stderr, "gguf_parse: %s\n", pinfer_last_error());
        *out = NULL;
    } else {
        rc = pf_vocab_load(out, f);
        memset(img.p, 0xAA, img.n); /* a vocabulary still pointing into the file would see this */
        gguf_close(f);
    }
    free(img.p);
    free(b->p);
    memset(b, 0, sizeof *b);
    return rc;
}

static int tokenize(const struct pf_vocab *v, const char *s, size_t n, bool bos, bool special,
                    int32_t *out, int cap)
{
    return pf_vocab_tokenize_ex(v, s, n, bos, special, out, cap);
}

static bool ids_eq(const int32_t *a, int na, const int32_t *b, int nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

#define EXPECT_IDS(v, text, bos, special, ...) do { \
    const int32_t want_[] = { __VA_ARGS__ }; \
    int32_t got_[64]; \
    int n_ = tokenize(v, text, strlen(text), bos, special, got_, 64); \
    CHECKF(ids_eq(got_, n_, want_, (int)(sizeof want_ / sizeof *want_)), \
           "'%s': got %d ids, first %d", text, n_, n_ > 0 ? got_[0] : -1); \
} while (0)

static void print_ids(const char *what, const int32_t *ids, int n)
{
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Concatenated pieces, minus the one leading space the space prefix added (llama.cpp's
 * detokenize with remove_space). Returns the length. */
static size_t detokenize(const struct pf_vocab *v, const int32_t *ids, int n, char *buf, size_t cap)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        char piece[64];
        int k = pf_vocab_piece(v, ids[i], piece, sizeof piece);
        if (k < 0 || k > (int)sizeof piece) return (size_t)-1;
        const char *p = piece;
        if (i == 0 && k > 0 && piece[0] == ' ') { p++; k--; }
        if (len + (size_t)k > cap) return (size_t)-1;
        memcpy(buf + len, p, (size_t)k);
        len += (size_t)k;
    }
    return len;
}

/* ==== llama.cpp's vectors ==== */

static struct pf_vocab *open_vocab(const char *rel)
{
    const char *path = tu_shared_path(rel);
    if (!path) return NULL;
    struct gguf_file *f = NULL;
    if (gguf_open(&f, path)) {
        fprintf(stderr, "%s: %s\n", path, pinfer_last_error());
        return NULL;
    }
    struct pf_vocab *v = NULL;
    int rc = pf_vocab_load(&v, f);
    CHECKF(rc == 0, "%s: %s", path, pinfer_last_error());
    gguf_close(f);
    return v;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Splits the .inp file the way llama.cpp's test-tokenizer-0 does: inputs are separated by
 * "\n__ggml_vocab_test__\n" (so an input may itself contain newlines, or be empty), and the
 * text after the last separator, if any, is one more input. */
static int split_inputs(char *raw, size_t len, char **inp, size_t *inp_len, int max)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t sl = sizeof sep - 1, pos = 0;
    int n = 0;
    while (pos < len && n < max) {
        char *hit = memmem(raw + pos, len - pos, sep, sl);
        size_t end = hit ? (size_t)(hit - raw) : len;
        inp[n] = raw + pos;
        inp_len[n++] = end - pos;
        if (!hit) break;
        pos = end + sl;
    }
    return n;
}

/* Returns false when the vocabulary is not there. */
static bool test_llama_spm(void)
{
    struct pf_vocab *v = open_vocab("testdata/tokenizer/ggml-vocab-llama-spm.gguf");
    if (!v) return false;
    CHECK(pf_vocab_n(v) == 32000);
    CHECK(pf_vocab_bos(v) == 1 && pf_vocab_eos(v) == 2 && pf_vocab_unk(v) == 0);
    CHECK(pf_vocab_add_bos(v));
    CHECK(strcmp(pf_vocab_text(v, 13), "<0x0A>") == 0);
    CHECK(pf_vocab_text(v, 32000) == NULL && pf_vocab_text(v, -1) == NULL);
    CHECK(pf_vocab_type(v, 1) == PF_TOKEN_CONTROL && pf_vocab_type(v, 13) == PF_TOKEN_BYTE);

    size_t in_len, out_len;
    char *in = tu_read_file(tu_shared_path("testdata/tokenizer/ggml-vocab-llama-spm.gguf.inp"), &in_len);
    char *out = tu_read_file(tu_shared_path("testdata/tokenizer/ggml-vocab-llama-spm.gguf.out"), &out_len);
    CHECK(in && out);
    if (!in || !out) { free(in); free(out); pf_vocab_free(v); return true; }

    enum { MAX_CASES = 512 };
    static char *inp[MAX_CASES];
    static size_t inp_len[MAX_CASES];
    int n_in = split_inputs(in, in_len, inp, inp_len, MAX_CASES);

    int n_pass = 0, n_case = 0, n_round = 0;
    size_t max_ids = 0;
    char *line = out;
    static int32_t want[8192], got[8192];
    static char text[65536];
    for (int c = 0; c < n_in && line && *line; c++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        int nw = 0;
        for (char *p = line; *p && nw < 8192;) {
            char *e;
            long x = strtol(p, &e, 10);
            if (e == p) break;
            want[nw++] = (int32_t)x;
            p = e;
        }
        line = nl ? nl + 1 : NULL;
        n_case++;

        int ng = tokenize(v, inp[c], inp_len[c], false, false, got, 8192);
        if (ids_eq(got, ng, want, nw)) {
            n_pass++;
        } else {
            fprintf(stderr, "case %d ('%.*s') differs\n", c, (int)inp_len[c], inp[c]);
            print_ids("want", want, nw);
            print_ids("got ", got, ng);
        }
        if (ng > 0 && (size_t)ng > max_ids) max_ids = (size_t)ng;

        /* byte fallback and "▁" -> " " make every input (none holds a literal U+2581) round trip */
        size_t dl = detokenize(v, got, ng < 8192 ? ng : 8192, text, sizeof text);
        if (dl == inp_len[c] && memcmp(text, inp[c], dl) == 0) n_round++;
        else fprintf(stderr, "case %d does not round trip ('%.*s')\n", c, (int)dl, text);

        /* with BOS: the same ids after a 1 */
        int nb = tokenize(v, inp[c], inp_len[c], true, false, got, 8192);
        CHECKF(nb == ng + 1 && got[0] == 1, "case %d with BOS: %d ids", c, nb);
    }
    printf("llama-spm vectors: %d/%d pass, %d round trip (%d inputs, longest %zu ids)\n", n_pass,
           n_case, n_round, n_in, max_ids);
    CHECKF(n_case == n_in, "%d inputs but %d output lines", n_in, n_case);
    CHECK(n_case > 30);
    CHECK(n_pass == n_case);
    CHECK(n_round == n_case);

    /* the count contract: too small a buffer gets a prefix and the full count */
    {
        const char *s = "Hello, world!"; /* 15043 29892 3186 29991 */
        int32_t buf[3] = { -7, -7, -7 };
        CHECK(tokenize(v, s, strlen(s), false, false, buf, 2) == 4);
        CHECK(buf[0] == 15043 && buf[1] == 29892 && buf[2] == -7);
        CHECK(tokenize(v, s, strlen(s), false, false, NULL, 0) == 4);
        CHECK(tokenize(v, s, strlen(s), false, false, NULL, 1) == PINFER_EINVAL);
        CHECK(tokenize(v, NULL, 3, false, false, buf, 3) == PINFER_EINVAL);
        CHECK(tokenize(v, NULL, 0, true, false, buf, 3) == 1 && buf[0] == 1);
        /* NUL bytes are text like any other (<0x00> is token 3) */
        CHECK(tokenize(v, "a\0b", 3, false, false, buf, 3) == 3 && buf[1] == 3);
    }

    /* pieces */
    {
        char buf[16];
        memset(buf, '#', sizeof buf);
        CHECK(pf_vocab_piece(v, 15043, buf, sizeof buf) == 6 && memcmp(buf, " Hello", 6) == 0);
        CHECK(pf_vocab_piece(v, 13, buf, sizeof buf) == 1 && buf[0] == '\n');
        CHECK(pf_vocab_piece(v, 1, buf, sizeof buf) == 0);   /* <s>: control */
        CHECK(pf_vocab_piece(v, 0, buf, sizeof buf) == 0);   /* <unk>: unknown */
        memset(buf, '#', sizeof buf);
        CHECK(pf_vocab_piece(v, 15043, buf, 3) == 6 && memcmp(buf, " He#", 4) == 0);
        CHECK(pf_vocab_piece(v, 15043, NULL, 0) == 6);
        CHECK(pf_vocab_piece(v, 32000, buf, sizeof buf) == PINFER_EINVAL);
        CHECK(pf_vocab_piece(v, -1, buf, sizeof buf) == PINFER_EINVAL);
    }

    /* control tokens in the text are plain text unless parse_special */
    {
        int32_t buf[16];
        int n = tokenize(v, "<s>Hi</s>", 9, false, false, buf, 16);
        bool any = false;
        for (int i = 0; i < n; i++) any |= buf[i] == 1 || buf[i] == 2;
        CHECK(n > 2 && !any);
        n = tokenize(v, "<s>Hi</s>", 9, false, true, buf, 16);
        /* "Hi" after a special token gets the space prefix: "▁Hi" is 6324 */
        CHECKF(n == 3 && buf[0] == 1 && buf[1] == 6324 && buf[2] == 2, "n %d", n);
    }

    /* speed: the whole .inp file repeated to ~2 MiB, and 1 MiB without a single space */
    {
        size_t big_len = 0, reps = (2u << 20) / in_len + 1;
        char *big = malloc(reps * in_len);
        for (size_t r = 0; r < reps; r++) { memcpy(big + big_len, in, in_len); big_len += in_len; }
        double t0 = now();
        int n = tokenize(v, big, big_len, false, false, NULL, 0);
        double t1 = now();
        CHECK(n > 0);
        /* long texts are tokenized in pieces cut after bytes no token joins (a newline here):
           the same ids as the whole text in one piece (cut_after cleared) */
        {
            CHECK(v->cut_after['\n'] && !v->cut_after['a']);
            int32_t *a = calloc((size_t)n + 4, sizeof *a), *b = calloc((size_t)n + 4, sizeof *b);
            bool saved[128];
            memcpy(saved, v->cut_after, sizeof saved);
            int na = tokenize(v, big, big_len, false, false, a, n);
            memset(v->cut_after, 0, sizeof v->cut_after);
            int nb = tokenize(v, big, big_len, false, false, b, n);
            memcpy(v->cut_after, saved, sizeof saved);
            int d = 0;
            while (d < n && a[d] == b[d]) d++;
            CHECKF(na == nb && na > 0 && na <= n && !memcmp(a, b, sizeof *a * (size_t)na),
                   "in pieces %d ids, whole %d ids, first difference at id %d: %d %d %d | %d %d %d", na, nb, d,
                   a[d], a[d + 1], a[d + 2], b[d], b[d + 1], b[d + 2]);
            printf("2 MiB text in 64 KiB pieces: %d ids, identical to one piece\n", na);
            free(a);
            free(b);
        }
        t1 = now();
        /* prompt-sized calls: the same text in 4 KiB pieces */
        size_t n_small = 0;
        for (size_t off = 0; off < big_len; off += 4096) {
            size_t l = big_len - off < 4096 ? big_len - off : 4096;
            n_small += (size_t)tokenize(v, big + off, l, false, false, NULL, 0);
        }
        double t1b = now();
        CHECK(n_small > 0);
        size_t word_len = 1u << 20;
        for (size_t i = 0; i < word_len; i++) big[i] = "abcdefghij"[i % 7];
        int n2 = tokenize(v, big, word_len, false, false, NULL, 0);
        double t2 = now();
        CHECK(n2 > 0);
        printf("speed: one call %.1f MB/s (%zu bytes -> %d ids in %.3f s); 4 KiB calls %.1f MB/s; "
               "1 MiB without spaces %.3f s (%d ids)\n", big_len / (t1 - t0) / 1e6, big_len, n,
               t1 - t0, big_len / (t1b - t1) / 1e6, t2 - t1b, n2);
        free(big);
    }

    free(in);
    free(out);
    pf_vocab_free(v);
    return true;
}

/* ==== stories260K reference prompts ==== */

static void test_stories(void)
{
    struct pf_vocab *v = open_vocab("models/stories260K/stories260K.gguf");
    if (!v) { printf("stories260K not found, skipped\n"); return; }
    CHECK(pf_vocab_n(v) == 512);
    int checked = 0;
    for (int d = 1; d <= 3; d++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/stories260K/reference/dev%d.ids.txt", d);
        char *ref = tu_read_file(tu_shared_path(rel), NULL);
        if (!ref) continue;
        char *prompt = strstr(ref, "prompt: "), *ids = strstr(ref, "prompt_ids: ");
        CHECK(prompt && ids);
        if (!prompt || !ids) { free(ref); continue; }
        prompt += 8;
        size_t plen = strcspn(prompt, "\n");
        int32_t want[256], got[256];
        int nw = 0;
        for (char *p = ids + 12; *p && *p != '\n' && nw < 256;) {
            char *e;
            long x = strtol(p, &e, 10);
            if (e == p) break;
            want[nw++] = (int32_t)x;
            p = e;
        }
        int ng = tokenize(v, prompt, plen, true, false, got, 256);
        CHECKF(ids_eq(got, ng, want, nw), "dev%d prompt '%.*s'", d, (int)plen, prompt);
        if (!ids_eq(got, ng, want, nw)) { print_ids("want", want, nw); print_ids("got ", got, ng); }
        checked++;
        free(ref);
    }
    const int32_t once[] = { 1, 403, 407, 261, 378 };
    int32_t got[16];
    int n = tokenize(v, "Once upon a time", 16, true, false, got, 16);
    CHECK(ids_eq(got, n, once, 5));
    printf("stories260K: %d reference prompts checked\n", checked);
    pf_vocab_free(v);
}

/* ==== Tiny vocabularies with hand-checked results ==== */

/* id:  0      1     2      3    4    5    6     7     8      9        10   11        12     13 */
static const char *const tiny_tok[] = { "<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "ab",
    "ba", "\xe2\x96\x81\x61" /* ▁a */, "<|u|>", "", "<0x63>", "<0xC3>", "<|u|>x" };
static const float tiny_score[] = { 0, 0, 0, -1, -2, -2, 1, 1, 0.5f, 0, 0, 0, 0, 0 };
static const int32_t tiny_type[] = { 2, 3, 3, 1, 1, 1, 1, 1, 1, 4, 1, 6, 6, 4 };
enum { TINY_N = 14 };

static void test_tiny(void)
{
    struct gb b = { 0 };
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_arr_str(&b, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    kv_arr_num(&b, "tokenizer.ggml.scores", GGUF_F32, tiny_score, TINY_N);
    kv_arr_num(&b, "tokenizer.ggml.token_type", GGUF_I32, tiny_type, TINY_N);
    kv_u32(&b, "tokenizer.ggml.padding_token_id", 0xFFFFFFFFu); /* out of range: "none" */
    struct pf_vocab *v;
    int rc = gb_load(&b, &v);
    CHECKF(rc == 0, "%s", pinfer_last_error());
    if (rc) return;

    /* "▁aba": ab (score 1, left 1) beats ba (score 1, left 2) and ▁a (0.5); then nothing merges */
    EXPECT_IDS(v, "aba", false, false, 3, 6, 4);
    EXPECT_IDS(v, "bab", false, false, 3, 7, 5);
    EXPECT_IDS(v, "a", false, false, 8);
    EXPECT_IDS(v, "a", true, false, 1, 8);
    /* a user-defined token splits the text; the fragment after it gets the space prefix too */
    EXPECT_IDS(v, "a<|u|>b", false, false, 8, 9, 3, 5);
    EXPECT_IDS(v, "<|u|><|u|>", false, false, 9, 9);
    /* the longer user-defined token is matched first */
    EXPECT_IDS(v, "a<|u|>x<|u|>", false, false, 8, 13, 9);
    /* control tokens only with parse_special; without, '<' 's' '>' have no token: unknown */
    EXPECT_IDS(v, "<s>a", false, true, 1, 8);
    EXPECT_IDS(v, "<s>a", false, false, 3, 0, 0, 0, 4);
    /* byte fallback; a character with a byte lacking a token is one unknown token */
    EXPECT_IDS(v, "c", false, false, 3, 11);
    EXPECT_IDS(v, "\xc3\xa9", false, false, 3, 0);
    /* a truncated UTF-8 lead byte is a character of its own */
    EXPECT_IDS(v, "\xc3", false, false, 3, 12);

    CHECK(strcmp(pf_vocab_text(v, 10), "[EMPTY_10]") == 0);
    char buf[32];
    CHECK(pf_vocab_piece(v, 8, buf, sizeof buf) == 2 && memcmp(buf, " a", 2) == 0);
    CHECK(pf_vocab_piece(v, 11, buf, sizeof buf) == 1 && buf[0] == 'c');
    CHECK(pf_vocab_piece(v, 9, buf, sizeof buf) == 5 && memcmp(buf, "<|u|>", 5) == 0);
    CHECK(pf_vocab_piece(v, 2, buf, sizeof buf) == 0);
    pf_vocab_free(v);

    /* no scores, no types, no space prefix, add_eos: every score ties, so left-most wins */
    static const char *const t2[] = { "a", "b", "ab", "ba", "<0x41>", "x" };
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_arr_str(&b, "tokenizer.ggml.tokens", t2, 6);
    kv_bool(&b, "tokenizer.ggml.add_space_prefix", false);
    kv_bool(&b, "tokenizer.ggml.add_eos_token", true);
    rc = gb_load(&b, &v);
    CHECKF(rc == 0, "%s", pinfer_last_error());
    if (rc) return;
    CHECK(pf_vocab_bos(v) == 1 && pf_vocab_eos(v) == 2 && pf_vocab_unk(v) == 0);
    EXPECT_IDS(v, "aba", false, false, 2, 0);
    EXPECT_IDS(v, "bab", false, false, 3, 1);
    EXPECT_IDS(v, "abab", false, false, 2, 2);
    EXPECT_IDS(v, "a", true, false, 1, 0, 2);
    /* "<0x41>" is found by its text even though it is typed normal, and prints literally */
    EXPECT_IDS(v, "A", false, false, 4);
    CHECK(pf_vocab_piece(v, 4, buf, sizeof buf) == 6 && memcmp(buf, "<0x41>", 6) == 0);
    /* no byte tokens for ' ' (as "▁") and '?': the unknown token, once per character */
    EXPECT_IDS(v, "a ?", false, false, 0, 0, 0);
    pf_vocab_free(v);

    /* the test vectors' "empty" and "only spaces" cases on the tiny vocabulary */
    struct gb b3 = { 0 };
    kv_str(&b3, "tokenizer.ggml.model", "llama");
    kv_arr_str(&b3, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    rc = gb_load(&b3, &v);
    CHECK(rc == 0);
    if (!rc) {
        int32_t ids[4];
        CHECK(tokenize(v, "", 0, false, false, ids, 4) == 0);
        EXPECT_IDS(v, " ", false, false, 3, 3);
        pf_vocab_free(v);
    }
}

/* ==== Broken vocabularies ==== */

enum brk {
    B_NO_MODEL, B_BERT, B_MODEL_INT, B_NO_TOKENS, B_TOKENS_INT, B_TOKENS_EMPTY, B_SCORES_SHORT,
    B_SCORES_I32, B_TYPES_SHORT, B_TYPES_F32, B_BOS_RANGE, B_EOS_NEG, B_UNK_RANGE, B_LONG_TOKEN,
    B_BAD_BYTE, B_DUP, B_NAN_SCORE, B_ADD_BOS_STR, B_COUNT
};

static void build_broken(struct gb *b, enum brk k)
{
    static const char *const tok[] = { "<unk>", "<s>", "</s>", "a", "<0x41>" };
    static const char *const dup[] = { "<unk>", "<s>", "</s>", "a", "a" };
    static const char *const bad_byte[] = { "<unk>", "<s>", "</s>", "a", "<0xZZ>" };
    static char long_tok[PF_VOCAB_MAX_TOKEN_LEN + 2];
    static const char *long_toks[5] = { "<unk>", "<s>", "</s>", "a", long_tok };
    memset(long_tok, 'x', PF_VOCAB_MAX_TOKEN_LEN + 1);
    float scores[5] = { 0, 0, 0, 1, 2 };
    int32_t types[5] = { 2, 3, 3, 1, k == B_DUP ? 1 : 6 };
    const int32_t i32[5] = { 0 };

    if (k == B_BERT) kv_str(b, "tokenizer.ggml.model", "bert");
    else if (k == B_MODEL_INT) kv_u32(b, "tokenizer.ggml.model", 1);
    else if (k != B_NO_MODEL) kv_str(b, "tokenizer.ggml.model", "llama");

    const char *const *t = k == B_DUP ? dup : k == B_BAD_BYTE ? bad_byte : k == B_LONG_TOKEN ? long_toks : tok;
    if (k == B_TOKENS_INT) kv_arr_num(b, "tokenizer.ggml.tokens", GGUF_I32, i32, 5);
    else if (k == B_TOKENS_EMPTY) kv_arr_str(b, "tokenizer.ggml.tokens", t, 0);
    else if (k != B_NO_TOKENS) kv_arr_str(b, "tokenizer.ggml.tokens", t, 5);

    if (k == B_NAN_SCORE) scores[3] = nanf("");
    if (k == B_SCORES_I32) kv_arr_num(b, "tokenizer.ggml.scores", GGUF_I32, i32, 5);
    else kv_arr_num(b, "tokenizer.ggml.scores", GGUF_F32, scores, k == B_SCORES_SHORT ? 4 : 5);
    if (k == B_TYPES_F32) kv_arr_num(b, "tokenizer.ggml.token_type", GGUF_F32, scores, 5);
    else kv_arr_num(b, "tokenizer.ggml.token_type", GGUF_I32, types, k == B_TYPES_SHORT ? 3 : 5);

    if (k == B_BOS_RANGE) kv_u32(b, "tokenizer.ggml.bos_token_id", 5);
    if (k == B_EOS_NEG) kv_i32(b, "tokenizer.ggml.eos_token_id", -5);
    if (k == B_UNK_RANGE) kv_u32(b, "tokenizer.ggml.unknown_token_id", 0xFFFFFFFFu);
    if (k == B_ADD_BOS_STR) kv_str(b, "tokenizer.ggml.add_bos_token", "yes");
}

static void test_broken(void)
{
    /* the unbroken base loads */
    struct gb b = { 0 };
    struct pf_vocab *v;
    build_broken(&b, B_COUNT);
    CHECKF(gb_load(&b, &v) == 0, "base: %s", pinfer_last_error());
    pf_vocab_free(v);

    for (int k = 0; k < B_COUNT; k++) {
        build_broken(&b, (enum brk)k);
        v = (struct pf_vocab *)&b; /* must be reset to NULL on failure */
        int rc = gb_load(&b, &v);
        int want = k == B_BERT ? PINFER_EUNSUPPORTED : PINFER_EFORMAT;
        CHECKF(rc == want, "case %d: rc %d (%s)", k, rc, pinfer_last_error());
        CHECKF(v == NULL, "case %d: out not cleared", k);
        printf("broken %2d: %s\n", k, pinfer_last_error());
        if (rc == 0) pf_vocab_free(v);
    }
    pf_vocab_free(NULL);
}

int main(void)
{
    test_tiny();
    test_broken();
    test_stories();
    bool found = test_llama_spm();
    if (!found && !tu_failures) TEST_SKIP("llama-spm vocabulary not found (tiny vocabularies passed)");
    TEST_DONE();
}
