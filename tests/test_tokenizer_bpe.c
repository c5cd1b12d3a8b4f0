/* Byte-level BPE tokenizer: llama.cpp's own test vectors (tests/test-tokenizer-0 inputs and
 * expected ids) for the gpt-2, mpt, deepseek-coder and refact vocabularies in
 * ../shared/testdata/tokenizer, detokenize(tokenize(s)) == s on them, long texts in pieces ==
 * whole; the pre-tokenizer's words on hand-checked texts (invalid UTF-8, surrogates, U+180E);
 * hand-checked merges on tiny vocabularies built in memory; one broken vocabulary per failure
 * class (merges naming missing tokens, merges without a space, an unknown pre-tokenizer ...).
 *
 * $PINFER_TOKENIZER_VECTORS may name one more directory of ggml-vocab-<name>.gguf{,.inp,.out}
 * (llama.cpp's models/): the BPE vocabularies found there are checked the same way. */
#include "gguf_bytes.h"
#include "testutil.h"

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/pretok.h"
#include "tokenizer/vocab.h"
#include "tokenizer/vocab_impl.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

/* ==== A GGUF image built in memory (no tensors) ==== */

struct img {
    struct bytes kv;
    uint64_t n_kv;
};

static void kv_str(struct img *m, const char *k, const char *v)
{
    by_kv_str(&m->kv, k, v);
    m->n_kv++;
}
static void kv_u32(struct img *m, const char *k, uint32_t v)
{
    by_kv_u32(&m->kv, k, v);
    m->n_kv++;
}
static void kv_bool(struct img *m, const char *k, bool v)
{
    by_key(&m->kv, k, GGUF_BOOL);
    by_u8(&m->kv, v);
    m->n_kv++;
}
static void kv_arr_str(struct img *m, const char *k, const char *const *v, int n)
{
    by_key(&m->kv, k, GGUF_ARRAY);
    by_u32(&m->kv, GGUF_STRING);
    by_u64(&m->kv, (uint64_t)n);
    for (int i = 0; i < n; i++) by_str(&m->kv, v[i]);
    m->n_kv++;
}
static void kv_arr_i32(struct img *m, const char *k, const int32_t *v, int n)
{
    by_key(&m->kv, k, GGUF_ARRAY);
    by_u32(&m->kv, GGUF_I32);
    by_u64(&m->kv, (uint64_t)n);
    by_put(&m->kv, v, (size_t)n * 4);
    m->n_kv++;
}

/* Parses the image and loads a vocabulary from it (closing the file: the vocabulary must not
 * keep pointers into it). Returns pf_vocab_load's result; frees the image. */
static int img_load(struct img *m, struct pf_vocab **out)
{
    struct bytes b = { 0 };
    by_hdr(&b, 3, 0, m->n_kv);
    by_put(&b, m->kv.p, m->kv.n);
    by_pad(&b, 32);
    struct gguf_file *f = NULL;
    int rc = gguf_parse(&f, b.p, b.n);
    *out = NULL;
    if (rc) {
        fprintf(stderr, "gguf_parse: %s\n", pinfer_last_error());
    } else {
        rc = pf_vocab_load(out, f);
        memset(b.p, 0xAA, b.n);
        gguf_close(f);
    }
    by_free(&b);
    by_free(&m->kv);
    m->n_kv = 0;
    return rc;
}

static bool ids_eq(const int32_t *a, int na, const int32_t *b, int nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *ids, int n)
{
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

#define EXPECT_IDS(v, text, special, ...) do { \
    const int32_t want_[] = { __VA_ARGS__ }; \
    int32_t got_[64]; \
    int n_ = pf_vocab_tokenize_ex(v, text, strlen(text), false, special, got_, 64); \
    bool ok_ = ids_eq(got_, n_, want_, (int)(sizeof want_ / sizeof *want_)); \
    CHECKF(ok_, "'%s': %d ids", text, n_); \
    if (!ok_) print_ids("got", got_, n_); \
} while (0)

/* Concatenated pieces; the length, or (size_t)-1 when they do not fit. */
static size_t detokenize(const struct pf_vocab *v, const int32_t *ids, int n, char *buf, size_t cap)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int k = pf_vocab_piece(v, ids[i], buf + len, (int)(cap - len < 1 << 30 ? cap - len : 1 << 30));
        if (k < 0 || (size_t)k > cap - len) return (size_t)-1;
        len += (size_t)k;
    }
    return len;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ==== llama.cpp's vectors ==== */

/* Splits the .inp file as llama.cpp's test-tokenizer-0 does: inputs separated by
 * "\n__ggml_vocab_test__\n" (an input may hold newlines or be empty). */
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

static struct pf_vocab *open_vocab(const char *path)
{
    struct gguf_file *f = NULL;
    if (gguf_open(&f, path)) return NULL;
    struct pf_vocab *v = NULL;
    int rc = pf_vocab_load(&v, f);
    CHECKF(rc == 0, "%s: %s", path, pinfer_last_error());
    gguf_close(f);
    return v;
}

/* The vectors of ggml-vocab-<name>.gguf in dir. Returns false when the files are not there or
 * the vocabulary is not BPE (nothing checked). */
static bool run_vectors(const char *dir, const char *name)
{
    char path[4096], pin[4200], pout[4200];
    snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, name);
    snprintf(pin, sizeof pin, "%s.inp", path);
    snprintf(pout, sizeof pout, "%s.out", path);
    size_t in_len, out_len;
    char *in = tu_read_file(pin, &in_len), *out = tu_read_file(pout, &out_len);
    struct pf_vocab *v = in && out ? open_vocab(path) : NULL;
    if (!v || v->kind != PF_VOCAB_BPE) {
        free(in);
        free(out);
        pf_vocab_free(v);
        return false;
    }

    enum { MAX_CASES = 512, MAX_IDS = 8192 };
    static char *inp[MAX_CASES];
    static size_t inp_len[MAX_CASES];
    static int32_t want[MAX_IDS], got[MAX_IDS];
    static char text[1 << 16];
    int n_in = split_inputs(in, in_len, inp, inp_len, MAX_CASES);
    int n_pass = 0, n_case = 0, n_round = 0;
    char *line = out;
    for (int c = 0; c < n_in && line && *line; c++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        int nw = 0;
        for (char *p = line; *p && nw < MAX_IDS;) {
            char *e;
            long x = strtol(p, &e, 10);
            if (e == p) break;
            want[nw++] = (int32_t)x;
            p = e;
        }
        line = nl ? nl + 1 : NULL;
        n_case++;

        int ng = pf_vocab_tokenize_ex(v, inp[c], inp_len[c], false, false, got, MAX_IDS);
        if (ids_eq(got, ng, want, nw)) {
            n_pass++;
        } else {
            fprintf(stderr, "%s case %d ('%.*s') differs\n", name, c, (int)inp_len[c], inp[c]);
            print_ids("want", want, nw);
            print_ids("got ", got, ng);
        }
        size_t dl = detokenize(v, got, ng < MAX_IDS ? ng : MAX_IDS, text, sizeof text);
        if (dl == inp_len[c] && memcmp(text, inp[c], dl) == 0) n_round++;
        else fprintf(stderr, "%s case %d does not round trip ('%.*s')\n", name, c, (int)(dl < 200 ? dl : 0), text);

        /* add_special: BOS first when the vocabulary adds it, then the same ids */
        int nb = pf_vocab_tokenize_ex(v, inp[c], inp_len[c], true, false, got, MAX_IDS);
        int extra = v->add_bos + v->add_eos;
        CHECKF(nb == ng + extra && (!v->add_bos || got[0] == v->bos), "%s case %d with BOS: %d ids", name, c, nb);
    }
    printf("%s vectors: %d/%d pass, %d/%d round trip (pre-tokenizer '%s', %d tokens, %d merges)\n", name,
           n_pass, n_case, n_round, n_case, pf_pretok_name(v->pretok), v->n, v->n_merges);
    CHECKF(n_case == n_in && n_case > 30, "%s: %d inputs, %d output lines", name, n_in, n_case);
    CHECKF(n_pass == n_case, "%s: %d of %d vectors pass", name, n_pass, n_case);
    CHECKF(n_round == n_case, "%s: %d of %d round trip", name, n_round, n_case);

    /* every input at once, repeated to ~1 MiB: in the smallest pieces (cut at every newline
     * between two non-space ASCII bytes) the same ids as in one piece */
    {
        size_t reps = (1u << 20) / in_len + 1, big_len = 0;
        char *big = malloc(reps * in_len);
        for (size_t r = 0; r < reps; r++) { memcpy(big + big_len, in, in_len); big_len += in_len; }
        size_t saved = v->bpe_piece;
        double t0 = now();
        int n = pf_vocab_tokenize(v, big, big_len, false, NULL, 0);
        double t1 = now();
        int32_t *a = calloc((size_t)n + 1, sizeof *a), *b = calloc((size_t)n + 1, sizeof *b);
        v->bpe_piece = 1;
        int na = pf_vocab_tokenize(v, big, big_len, false, a, n);
        v->bpe_piece = SIZE_MAX;
        int nb = pf_vocab_tokenize(v, big, big_len, false, b, n);
        v->bpe_piece = saved;
        int d = 0;
        while (d < n && a[d] == b[d]) d++;
        CHECKF(n > 0 && na == n && nb == n && d == n, "%s: whole %d ids, smallest pieces %d, default %d, first "
               "difference at %d", name, nb, na, n, d);
        printf("%s: %zu bytes -> %d ids at %.1f MB/s, identical in the smallest pieces\n", name, big_len, n,
               big_len / (t1 - t0) / 1e6);
        free(a);
        free(b);
        free(big);
    }
    free(in);
    free(out);
    pf_vocab_free(v);
    return true;
}

/* The four vocabularies CI has; false when ../shared is absent. */
static bool test_vectors(void)
{
    static const char *const need[] = { "gpt-2", "mpt", "deepseek-coder", "refact" };
    const char *dir = tu_shared_path("testdata/tokenizer");
    if (!dir) return false;
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    int found = 0;
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) {
        bool ok = run_vectors(d, need[i]);
        if (!ok) printf("%s: vocabulary or vectors not found in %s\n", need[i], d);
        found += ok;
    }
    if (found == 0) return false;
    CHECKF(found == 4, "only %d of the 4 BPE vocabularies found in %s", found, d);

    const char *extra = getenv("PINFER_TOKENIZER_VECTORS");
    if (extra) {
        static const char *const more[] = { "gpt-2", "mpt", "deepseek-coder", "refact", "deepseek-llm",
                                            "falcon", "starcoder", "llama-bpe", "qwen2", "command-r" };
        for (size_t i = 0; i < sizeof more / sizeof *more; i++) run_vectors(extra, more[i]);
    }
    return true;
}

/* ==== The gpt-2 vocabulary: pieces, special tokens, invalid UTF-8 ==== */

static void test_gpt2(void)
{
    const char *path = tu_shared_path("testdata/tokenizer/ggml-vocab-gpt-2.gguf");
    struct gguf_file *f = NULL;
    if (!path || gguf_open(&f, path)) return;
    gguf_close(f);
    struct pf_vocab *v = open_vocab(path);
    if (!v) return;
    CHECK(pf_vocab_n(v) == 50257 && pf_vocab_bos(v) == 50256 && pf_vocab_eos(v) == 50256);
    CHECK(pf_vocab_unk(v) == -1 && !pf_vocab_add_bos(v));
    CHECK(strcmp(pf_vocab_text(v, 18435), "\xc4\xa0Hello") == 0); /* "ĠHello" */

    char buf[64];
    CHECK(pf_vocab_piece(v, 18435, buf, sizeof buf) == 6 && memcmp(buf, " Hello", 6) == 0);
    CHECK(pf_vocab_piece(v, 198, buf, sizeof buf) == 1 && buf[0] == '\n'); /* "Ċ" */
    CHECK(pf_vocab_piece(v, 50256, buf, sizeof buf) == 0);                 /* control */
    memset(buf, '#', sizeof buf);
    CHECK(pf_vocab_piece(v, 18435, buf, 2) == 6 && memcmp(buf, " H#", 3) == 0);
    CHECK(pf_vocab_piece(v, 50257, buf, sizeof buf) == PINFER_EINVAL);

    EXPECT_IDS(v, "Hello world", false, 15496, 995);
    /* control tokens written in the text are text unless parse_special */
    EXPECT_IDS(v, "<|endoftext|>", true, 50256);
    int32_t ids[64];
    int n = pf_vocab_tokenize_ex(v, "<|endoftext|>", 13, false, false, ids, 64);
    CHECK(n > 1);
    for (int i = 0; i < n; i++) CHECK(ids[i] != 50256);

    /* invalid UTF-8 is U+FFFD, an overlong NUL a NUL, as in llama.cpp */
    int32_t a[64], b[64];
    int na = pf_vocab_tokenize(v, "a\xff" "b\xc3", 4, false, a, 64);
    int nb = pf_vocab_tokenize(v, "a\xef\xbf\xbd" "b\xef\xbf\xbd", 8, false, b, 64);
    CHECKF(na > 0 && ids_eq(a, na, b, nb), "invalid bytes: %d vs %d ids", na, nb);
    na = pf_vocab_tokenize(v, "x\xc0\x80y", 4, false, a, 64);
    nb = pf_vocab_tokenize(v, "x\0y", 3, false, b, 64);
    CHECKF(na > 0 && ids_eq(a, na, b, nb), "overlong NUL: %d vs %d ids", na, nb);
    /* surrogates and U+180E keep their bytes: they round trip */
    static const char sur[] = "ab\xed\xa0\x80 c\xe1\xa0\x8e d";
    char back[64];
    na = pf_vocab_tokenize(v, sur, sizeof sur - 1, false, a, 64);
    CHECK(na > 0 && detokenize(v, a, na, back, sizeof back) == sizeof sur - 1 && !memcmp(back, sur, sizeof sur - 1));
    pf_vocab_free(v);
}

/* ==== The pre-tokenizers' words ==== */

struct words {
    char buf[512];
    size_t n;
};

static int collect(void *arg, const char *w, size_t n)
{
    struct words *ws = arg;
    if (ws->n + n + 1 < sizeof ws->buf) {
        memcpy(ws->buf + ws->n, w, n);
        ws->buf[ws->n + n] = '|';
        ws->n += n + 1;
    }
    return 0;
}

/* The words of text under pre-tokenizer name, each followed by '|'. */
static void expect_words(const char *name, const char *text, size_t len, const char *want, size_t want_len)
{
    struct pf_pretok *p = NULL;
    struct pf_pretok_flags fl;
    struct pf_pretok_scratch *sc = NULL;
    struct words ws = { { 0 }, 0 };
    CHECKF(pf_pretok_new(&p, name, &fl) == 0, "%s: %s", name, pinfer_last_error());
    if (!p) return;
    CHECK(pf_pretok_split(p, &sc, text, len, collect, &ws) == 0);
    bool ok = ws.n == want_len && memcmp(ws.buf, want, ws.n) == 0;
    CHECKF(ok, "%s: '%.*s' -> '%.*s', want '%s'", name, (int)len, text, (int)ws.n, ws.buf, want);
    pf_pretok_scratch_free(sc);
    pf_pretok_free(p);
}
#define WORDS(name, text, want) expect_words(name, text, sizeof text - 1, want, sizeof want - 1)

static void test_pretok(void)
{
    WORDS("gpt-2", "Hello, y'all!  How\n\n are 12345", "Hello|,| y|'|all|!| | How|\n\n| are| 12345|");
    WORDS("gpt-2", "I've   a\tb ", "I|'ve|  | a|\t|b| |");
    WORDS("llama-bpe", "Hello, y'all!  How\n\n are 12345 'S",
          "Hello|,| y|'all|!| | How|\n\n| are| |123|45| '|S|");
    WORDS("qwen2", "x 12345", "x| |1|2|3|4|5|");
    WORDS("starcoder", "ab12 34", "ab|1|2| |3|4|");
    WORDS("deepseek-coder", "Hi  there\n\n12\xe4\xb8\xad\xe6\x96\x87!", "Hi| | there|\n|\n|1|2|\xe4\xb8\xad\xe6\x96\x87|!|");
    /* U+3000 (ideographic space) is not part of the CJK range: llama.cpp turned it into \v first */
    WORDS("deepseek-coder", "\xe4\xb8\xad\xe3\x80\x80\xe4\xb8\xad", "\xe4\xb8\xad|\xe3\x80\x80|\xe4\xb8\xad|");
    WORDS("deepseek-llm", "ab  \n", "ab|  |\n|");
    WORDS("default", "a,b 1234", "a|,|b| |123|4|");
    /* invalid bytes become U+FFFD; U+180E is not whitespace; a surrogate keeps its bytes */
    WORDS("gpt-2", "a\xff\xfe!", "a|\xef\xbf\xbd\xef\xbf\xbd!|");
    WORDS("gpt-2", " \xe1\xa0\x8e\xe1\xa0\x8e ", " \xe1\xa0\x8e\xe1\xa0\x8e| |");
    WORDS("gpt-2", " \xed\xa0\x80x", " \xed\xa0\x80|x|");
    WORDS("gpt-2", "a\xc0\x80", "a|\0|");

    struct pf_pretok *p = (struct pf_pretok *)&p;
    struct pf_pretok_flags fl;
    CHECK(pf_pretok_new(&p, "no-such-pre", &fl) == PINFER_EUNSUPPORTED && p == NULL);
    CHECK(strstr(pinfer_last_error(), "'no-such-pre'") != NULL);
    CHECK(pf_pretok_new(&p, NULL, &fl) == 0 && strcmp(pf_pretok_name(p), "default") == 0);
    pf_pretok_free(p);
    CHECK(pf_pretok_new(&p, "llama3", &fl) == 0 && fl.ignore_merges && fl.add_bos && !fl.no_bos);
    pf_pretok_free(p);
    pf_pretok_free(NULL);
}

/* Pre-tokenizers without a vocabulary here (Llama 3, Qwen2) against the splits Python's regex
 * module makes with the patterns of the models' tokenizer.json (tests/data/pretok, made by
 * scripts/pretok-ref.py). */
static size_t unhex(const char *h, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned v;
        if (sscanf(h + i, "%2x", &v) != 1) break;
        out[k++] = (char)v;
    }
    return k;
}

static void test_pretok_ref(const char *name)
{
    char path[256], line[4096], in[1024], want[1536];
    snprintf(path, sizeof path, "tests/data/pretok/%s.txt", name);
    FILE *fp = fopen(path, "r");
    CHECKF(fp != NULL, "%s: cannot open (run from the repository root)", path);
    if (!fp) return;
    int cases = 0;
    size_t in_n = 0;
    while (fgets(line, sizeof line, fp)) {
        size_t n = strcspn(line, "\n");
        if (!strncmp(line, "in ", 3)) {
            in_n = unhex(line + 3, n - 3, in);
        } else if (!strncmp(line, "out ", 4)) {
            size_t w = 0;
            for (const char *q = line + 4, *end = line + n; q < end;) {
                size_t k = strcspn(q, "|\n");
                if (k) { w += unhex(q, k, want + w); want[w++] = '|'; }
                q += k + 1;
            }
            expect_words(name, in, in_n, want, w);
            cases++;
        }
    }
    fclose(fp);
    printf("pre-tokenizer %s: %d cases against Python regex\n", name, cases);
    CHECK(cases > 300);
}

/* ==== Tiny vocabularies ==== */

/* id:                                      0    1    2    3     4      5         6       7 */
static const char *const tiny_tok[] = { "a", "b", "c", "ab", "abc", "bc", "\xc4\xa0" /* Ġ */, "\xc4\xa0" "a",
    /* 8          9      10    11      12     13  */
    "<|end|>", "<u>", "aa", "x", "\xe4\xb8\xad", "cab" };
static const int32_t tiny_type[] = { 1, 1, 1, 1, 1, 1, 1, 1, 3, 4, 1, 1, 1, 1 };
enum { TINY_N = 14 };

static void tiny_base(struct img *m, const char *pre)
{
    kv_str(m, "tokenizer.ggml.model", "gpt2");
    if (pre) kv_str(m, "tokenizer.ggml.pre", pre);
    kv_arr_str(m, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    kv_arr_i32(m, "tokenizer.ggml.token_type", tiny_type, TINY_N);
}

static void test_tiny(void)
{
    struct img m = { { 0 }, 0 };
    struct pf_vocab *v;
    /* rank 0 "b c" beats rank 1 "a b"; "c a" makes "ca", which is not a token */
    static const char *const merges[] = { "b c", "a b", "\xc4\xa0 a", "a a", "c a", "ab c", "a b" };
    tiny_base(&m, "gpt-2");
    kv_arr_str(&m, "tokenizer.ggml.merges", merges, 7);
    int rc = img_load(&m, &v);
    CHECKF(rc == 0, "%s", pinfer_last_error());
    if (rc) return;
    CHECK(v->n_merges == 7 && v->bos == 11 && v->eos == 11 && v->unk == -1 && !v->add_bos);
    EXPECT_IDS(v, "abc", false, 0, 5);        /* b+c first, then nothing joins a and bc */
    EXPECT_IDS(v, "ab", false, 3);
    EXPECT_IDS(v, "aaa", false, 10, 0);       /* ties: the left-most pair */
    EXPECT_IDS(v, "a a", false, 0, 7);        /* " a" is "Ġa" */
    EXPECT_IDS(v, "ca", false, 2, 0);         /* "ca" is no token: its bytes' tokens */
    CHECK(pf_vocab_tokenize(v, "d", 1, false, NULL, 0) == 0); /* a byte without a token: nothing, as llama.cpp */
    /* user-defined tokens are cut out of the text, control tokens only with parse_special */
    EXPECT_IDS(v, "a<u>b", false, 0, 9, 1);
    EXPECT_IDS(v, "<|end|>", true, 8);
    EXPECT_IDS(v, "x<|end|>", false, 11);     /* '<', '|', ... have no token */
    char buf[64];
    CHECK(pf_vocab_piece(v, 7, buf, sizeof buf) == 2 && memcmp(buf, " a", 2) == 0);
    CHECK(pf_vocab_piece(v, 9, buf, sizeof buf) == 3 && memcmp(buf, "<u>", 3) == 0);
    CHECK(pf_vocab_piece(v, 8, buf, sizeof buf) == 0);
    /* a character outside GPT-2's byte alphabet prints as llama.cpp prints it */
    static const char unk[] = "[UNK_BYTE_0xe4b8ad\xe4\xb8\xad]";
    CHECKF(pf_vocab_piece(v, 12, buf, sizeof buf) == (int)sizeof unk - 1 && !memcmp(buf, unk, sizeof unk - 1),
           "%.*s", 30, buf);
    pf_vocab_free(v);

    /* llama3: a pre-token that is a token is that token (ignore_merges), BOS added by default */
    static const char *const m2[] = { "a b" };
    tiny_base(&m, "llama3");
    kv_arr_str(&m, "tokenizer.ggml.merges", m2, 1);
    kv_u32(&m, "tokenizer.ggml.bos_token_id", 9);
    rc = img_load(&m, &v);
    CHECKF(rc == 0, "%s", pinfer_last_error());
    if (!rc) {
        CHECK(v->ignore_merges && v->add_bos && v->bos == 9);
        EXPECT_IDS(v, "cab", false, 13);      /* no merge makes "cab", but it is a token */
        EXPECT_IDS(v, "abab", false, 3, 3);
        int32_t ids[8];
        CHECK(pf_vocab_tokenize(v, "ab", 2, true, ids, 8) == 2 && ids[0] == 9 && ids[1] == 3);
        pf_vocab_free(v);
    }

    /* empty merges: every byte its own token; add_bos_token false wins over llama3's default */
    tiny_base(&m, "llama-bpe");
    kv_arr_str(&m, "tokenizer.ggml.merges", merges, 0);
    kv_bool(&m, "tokenizer.ggml.add_bos_token", false);
    rc = img_load(&m, &v);
    CHECKF(rc == 0, "%s", pinfer_last_error());
    if (!rc) {
        CHECK(v->n_merges == 0 && !v->add_bos);
        EXPECT_IDS(v, "abca", false, 0, 1, 2, 0);
        pf_vocab_free(v);
    }

    /* no pre-tokenizer named: "default", as llama.cpp */
    tiny_base(&m, NULL);
    kv_arr_str(&m, "tokenizer.ggml.merges", merges, 7);
    rc = img_load(&m, &v);
    CHECK(rc == 0 && strcmp(pf_pretok_name(v->pretok), "default") == 0);
    pf_vocab_free(v);
}

/* ==== Broken vocabularies ==== */

enum brk {
    B_NO_MERGES, B_MERGES_I32, B_MERGE_MISSING_LEFT, B_MERGE_MISSING_RIGHT, B_MERGE_NO_SPACE,
    B_MERGE_TRAILING_SPACE, B_MERGE_LEADING_SPACE_ONLY, B_MERGE_EMPTY, B_UNKNOWN_PRE, B_PRE_U32,
    B_JINA_V2, B_MODEL_BERT, B_BOS_RANGE, B_COUNT
};

static void build_broken(struct img *m, enum brk k)
{
    const char *merge = k == B_MERGE_MISSING_LEFT ? "zz a" : k == B_MERGE_MISSING_RIGHT ? "a zz"
                      : k == B_MERGE_NO_SPACE ? "ab" : k == B_MERGE_TRAILING_SPACE ? "a "
                      : k == B_MERGE_LEADING_SPACE_ONLY ? " a" : k == B_MERGE_EMPTY ? "" : "b c";
    const char *merges[] = { "a b", merge };
    kv_str(m, "tokenizer.ggml.model", k == B_MODEL_BERT ? "bert" : "gpt2");
    if (k == B_UNKNOWN_PRE) kv_str(m, "tokenizer.ggml.pre", "nonesuch-7b");
    else if (k == B_JINA_V2) kv_str(m, "tokenizer.ggml.pre", "jina-v2-code");
    else if (k == B_PRE_U32) kv_u32(m, "tokenizer.ggml.pre", 2);
    else kv_str(m, "tokenizer.ggml.pre", "gpt-2");
    kv_arr_str(m, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    if (k == B_MERGES_I32) kv_arr_i32(m, "tokenizer.ggml.merges", tiny_type, 2);
    else if (k != B_NO_MERGES) kv_arr_str(m, "tokenizer.ggml.merges", merges, 2);
    if (k == B_BOS_RANGE) kv_u32(m, "tokenizer.ggml.bos_token_id", TINY_N);
}

static void test_broken(void)
{
    struct img m = { { 0 }, 0 };
    struct pf_vocab *v;
    build_broken(&m, B_COUNT);
    CHECKF(img_load(&m, &v) == 0, "base: %s", pinfer_last_error());
    pf_vocab_free(v);

    static const char *const says[B_COUNT] = {
        "missing tokenizer.ggml.merges", "array of strings", "names 'zz'", "names 'zz'",
        "not two tokens", "not two tokens", "not two tokens", "not two tokens", "'nonesuch-7b'",
        "tokenizer.ggml.pre", "'jina-v2-code'", "'bert'", "bos_token_id",
    };
    for (int k = 0; k < B_COUNT; k++) {
        build_broken(&m, (enum brk)k);
        v = (struct pf_vocab *)&m; /* must be reset to NULL on failure */
        int rc = img_load(&m, &v);
        int want = k == B_UNKNOWN_PRE || k == B_JINA_V2 || k == B_MODEL_BERT ? PINFER_EUNSUPPORTED : PINFER_EFORMAT;
        CHECKF(rc == want, "case %d: rc %d (%s)", k, rc, pinfer_last_error());
        CHECKF(v == NULL, "case %d: out not cleared", k);
        CHECKF(strstr(pinfer_last_error(), says[k]) != NULL, "case %d: '%s' does not say '%s'", k,
               pinfer_last_error(), says[k]);
        printf("broken %2d: %s\n", k, pinfer_last_error());
        if (rc == 0) pf_vocab_free(v);
    }
}

int main(void)
{
    test_pretok();
    test_pretok_ref("llama-bpe");
    test_pretok_ref("qwen2");
    test_tiny();
    test_broken();
    test_gpt2();
    bool found = test_vectors();
    if (!found && !tu_failures)
        TEST_SKIP("BPE vocabularies not found in ../shared/testdata/tokenizer (pre-tokenizer and tiny "
                  "vocabularies passed)");
    TEST_DONE();
}
