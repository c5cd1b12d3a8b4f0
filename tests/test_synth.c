/* pinfer synth: the files it writes.
 *  - a tiny SiLU model loads and runs in pinfer (finite logits), and its vocabulary round-trips
 *    text through tokenize / detokenize;
 *  - same seed -> identical bytes, another seed -> different bytes;
 *  - the form matches a llama.cpp llama GGUF (../shared stories260K.gguf): architecture keys
 *    and tokenizer keys with the same types, the same tensor names with the same dimension
 *    order expressed in hyper-parameters, GGUF v3, 32-byte alignment of every tensor;
 *  - every weight type loads; output.weight is Q8_0 in Q4_0 files;
 *  - not enough disk space (PINFER_FAKE_FREE_BYTES test hook): PINFER_ENOSPC, nothing
 *    written, an existing file untouched;
 *  - bad requests fail with PINFER_EINVAL;
 *  - the statistics helpers (inverse normal CDF, firing law) hit their definitions. */
#include "testutil.h"

#include "gguf/gguf.h"
#include "pinfer.h"
#include "synth/synth_internal.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <math.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
    return p;
}

static int synth_tiny(const char *path, enum pinfer_act act, int type, uint64_t seed)
{
    struct pinfer_synth_params p = pinfer_synth_default_params();
    p.shape = "tiny";
    p.act = act;
    p.type = type;
    p.seed = seed;
    int rc = pinfer_synth(path, &p);
    if (rc) fprintf(stderr, "synth %s: %s\n", path, pinfer_last_error());
    return rc;
}

static bool files_equal(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    bool eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* ==== loads and runs ==== */

static void test_runs(void)
{
    const char *path = tmp("silu.gguf");
    CHECK(synth_tiny(path, PINFER_ACT_SILU, PF_TYPE_F32, 7) == 0);
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    CHECKF(pinfer_model_load(&m, path, NULL) == 0, "%s", pinfer_last_error());
    if (!m) return;
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    CHECK(info.n_embd == 256 && info.n_layer == 4 && info.n_head == 8 && info.n_head_kv == 4);
    CHECK(info.n_ff == 768 && info.n_vocab == 512 && info.act == PINFER_ACT_SILU);

    const char *text = "Once upon a time, the quick brown fox found 42 boats near the river!";
    int32_t ids[128];
    int n = pinfer_tokenize(m, text, strlen(text), true, ids, 128);
    CHECKF(n > 3 && n < 80, "n = %d", n);
    CHECK(n > 0 && ids[0] == pinfer_token_bos(m));
    /* detokenize: pieces after BOS spell the text (SentencePiece adds one leading space) */
    char out[512] = { 0 };
    int len = 0;
    for (int i = 1; i < n && n < 128; i++) {
        int k = pinfer_token_to_piece(m, ids[i], out + len, (int)sizeof out - 1 - len);
        if (k > 0) len += k;
    }
    CHECKF(strcmp(out[0] == ' ' ? out + 1 : out, text) == 0, "round trip gave '%s'", out);
    /* common words are single pieces */
    int32_t w[8];
    CHECK(pinfer_tokenize(m, "the", 3, false, w, 8) == 1);

    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_threads = 2;
    CHECKF(pinfer_ctx_new(&c, m, &cp) == 0, "%s", pinfer_last_error());
    if (c && n > 0) {
        CHECKF(pinfer_decode(c, ids, n, 0, true) == 0, "%s", pinfer_last_error());
        bool finite = true, varied = false;
        for (int t = 0; t < n; t++) {
            const float *l = pinfer_ctx_logits(c, t);
            if (!l) { finite = false; break; }
            for (int v = 0; v < info.n_vocab; v++) {
                finite &= isfinite(l[v]) != 0;
                varied |= fabsf(l[v] - l[0]) > 1e-3f;
            }
        }
        CHECK(finite);
        CHECK(varied);
        /* one more token through the decode path */
        int32_t next = 300;
        CHECK(pinfer_decode(c, &next, 1, n, false) == 0);
        const float *l = pinfer_ctx_logits(c, -1);
        CHECK(l && isfinite(l[0]) && isfinite(l[info.n_vocab - 1]));
    }
    pinfer_ctx_free(c);
    pinfer_model_free(m);
}

/* ==== determinism ==== */

static void test_determinism(void)
{
    const char *a = tmp("det_a.gguf"), *b = tmp("det_b.gguf"), *c = tmp("det_c.gguf");
    CHECK(synth_tiny(a, PINFER_ACT_DRELU, PF_TYPE_Q4_0, 123) == 0);
    CHECK(synth_tiny(b, PINFER_ACT_DRELU, PF_TYPE_Q4_0, 123) == 0);
    CHECK(synth_tiny(c, PINFER_ACT_DRELU, PF_TYPE_Q4_0, 124) == 0);
    CHECK(files_equal(a, b));
    CHECK(!files_equal(a, c));
    /* same size and header layout, different weights */
    struct stat sa, sc;
    CHECK(stat(a, &sa) == 0 && stat(c, &sc) == 0 && sa.st_size == sc.st_size);

    /* rows do not depend on the order they are drawn in (so neither on the thread count):
     * redraw blk.0.ffn_gate backwards and compare with the file */
    struct pinfer_synth_params p = pinfer_synth_default_params();
    p.act = PINFER_ACT_DRELU;
    p.type = PF_TYPE_Q4_0;
    p.seed = 123;
    struct synth_cfg cfg;
    struct synth_plan plan;
    struct gguf_file *f = NULL;
    CHECK(synth_cfg_resolve(&cfg, &p) == 0 && synth_plan_build(&plan, &cfg) == 0);
    CHECK(gguf_open(&f, a) == 0);
    if (!f) { synth_plan_free(&plan); return; }
    int ti = gguf_find_tensor(f, "blk.0.ffn_gate.weight");
    CHECK(ti >= 0);
    if (ti >= 0) {
        const struct gguf_tensor *gt = &f->tensors[ti];
        struct synth_tensor t = { .kind = SK_GATE, .layer = 0, .type = gt->type, .n_dims = 2,
                                  .ne = { gt->ne[0], gt->ne[1], 1 }, .n_rows = gt->ne[1] };
        CHECK(pf_row_size(t.type, t.ne[0], &t.row_bytes));
        float *row = malloc((size_t)t.ne[0] * sizeof *row);
        uint8_t *q = malloc(t.row_bytes);
        int mismatches = 0;
        for (int64_t r = t.n_rows - 1; r >= 0 && row && q; r--) {
            synth_gen_row(&plan, &t, ti, r, row);
            pf_kernels_ref.from_f32[t.type](row, q, t.ne[0]);
            mismatches += memcmp(q, f->data + gt->file_offset + (size_t)r * t.row_bytes, t.row_bytes) != 0;
        }
        CHECKF(mismatches == 0, "%d rows differ", mismatches);
        free(row);
        free(q);
    }
    gguf_close(f);
    synth_plan_free(&plan);
}

/* ==== form against llama.cpp's ==== */

/* A dimension of a tensor in terms of the file's hyper-parameters, e.g. "E" for n_embd. */
static char dim_symbol(const struct gguf_file *f, int64_t v)
{
    uint32_t e = 0, ff = 0, hc = 0, hk = 0;
    gguf_get_u32(f, "llama.embedding_length", &e);
    gguf_get_u32(f, "llama.feed_forward_length", &ff);
    gguf_get_u32(f, "llama.attention.head_count", &hc);
    gguf_get_u32(f, "llama.attention.head_count_kv", &hk);
    const struct gguf_kv *tok = gguf_find(f, "tokenizer.ggml.tokens");
    if (v == e) return 'E';
    if (v == ff) return 'F';
    if (tok && (uint64_t)v == tok->arr_n) return 'V';
    if (hc && v == (int64_t)e / hc * hk) return 'K';
    if (v == 1) return '1';
    return '?';
}

static void test_form(void)
{
    const char *ref_path = tu_shared_path("models/stories260K/stories260K.gguf");
    if (!ref_path || !exists(ref_path)) { printf("form: stories260K.gguf absent, skipped\n"); return; }
    const char *path = tmp("form.gguf");
    CHECK(synth_tiny(path, PINFER_ACT_SILU, PF_TYPE_F32, 1) == 0);
    struct gguf_file *ref = NULL, *f = NULL;
    CHECK(gguf_open(&ref, ref_path) == 0);
    CHECKF(gguf_open(&f, path) == 0, "%s", pinfer_last_error());
    if (!ref || !f) { gguf_close(ref); gguf_close(f); return; }

    CHECK(f->version == 3 && ref->version == 3);
    CHECK(f->alignment == 32 && ref->alignment == 32);
    CHECK(gguf_find(f, "general.alignment") == NULL); /* default alignment, as llama.cpp writes */
    CHECK(f->data_offset % 32 == 0);

    /* every key of the reference except the converter's separator/padding ids */
    for (uint64_t i = 0; i < ref->n_kv; i++) {
        const struct gguf_kv *rk = &ref->kv[i];
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)rk->key.len, rk->key.s);
        if (strstr(key, "seperator") || strstr(key, "padding")) continue;
        const struct gguf_kv *k = gguf_find(f, key);
        CHECKF(k != NULL, "key %s missing", key);
        if (!k) continue;
        CHECKF(k->type == rk->type, "key %s: type %d, llama.cpp writes %d", key, k->type, rk->type);
        if (k->type == GGUF_ARRAY) CHECKF(k->arr_type == rk->arr_type, "key %s: element type", key);
    }
    /* the keys llama.cpp's current converter adds and the reference (an older one) lacks */
    const char *more[] = { "llama.rope.freq_base", "llama.vocab_size", "general.file_type",
                           "tokenizer.ggml.add_bos_token", "pinfer.ffn_act" };
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) CHECKF(gguf_find(f, more[i]) != NULL, "key %s", more[i]);
    char s[64];
    CHECK(gguf_get_str(f, "general.architecture", s, sizeof s) == 0 && strcmp(s, "llama") == 0);
    CHECK(gguf_get_str(f, "tokenizer.ggml.model", s, sizeof s) == 0 && strcmp(s, "llama") == 0);

    /* the same tensor names, and each one's dimensions mean the same hyper-parameters */
    CHECK(f->n_tensors == ref->n_tensors - 5 * 9 + 4 * 9); /* 5 layers there, 4 here */
    for (uint64_t i = 0; i < ref->n_tensors; i++) {
        const struct gguf_tensor *rt = &ref->tensors[i];
        if (!strncmp(rt->name, "blk.4.", 6)) continue;
        int j = gguf_find_tensor(f, rt->name);
        CHECKF(j >= 0, "tensor %s missing", rt->name);
        if (j < 0) continue;
        const struct gguf_tensor *t = &f->tensors[j];
        CHECKF(t->n_dims == rt->n_dims, "%s: %d dims, llama.cpp %d", t->name, t->n_dims, rt->n_dims);
        CHECK(t->type == rt->type); /* both F32 */
        for (int d = 0; d < rt->n_dims; d++) {
            char a = dim_symbol(f, t->ne[d]), b = dim_symbol(ref, rt->ne[d]);
            CHECKF(a == b && a != '?', "%s ne[%d]: %c vs llama.cpp %c", t->name, d, a, b);
        }
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        CHECKF(f->tensors[i].offset % 32 == 0, "%s offset", f->tensors[i].name);
        CHECK(gguf_find_tensor(ref, f->tensors[i].name) >= 0 || !strncmp(f->tensors[i].name, "blk.", 4));
    }
    gguf_close(ref);
    gguf_close(f);
}

/* ==== weight types ==== */

static void test_types(void)
{
    const int types[] = { PF_TYPE_F16, PF_TYPE_BF16, PF_TYPE_Q8_0, PF_TYPE_Q4_0 };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char name[64];
        snprintf(name, sizeof name, "type%d.gguf", types[i]);
        const char *path = tmp(name);
        CHECK(synth_tiny(path, PINFER_ACT_RELU, types[i], 3) == 0);
        struct gguf_file *f = NULL;
        CHECK(gguf_open(&f, path) == 0);
        if (!f) continue;
        int q = gguf_find_tensor(f, "blk.0.ffn_gate.weight"), o = gguf_find_tensor(f, "output.weight");
        int e = gguf_find_tensor(f, "token_embd.weight"), nrm = gguf_find_tensor(f, "blk.0.ffn_norm.weight");
        CHECK(q >= 0 && f->tensors[q].type == types[i]);
        CHECK(e >= 0 && f->tensors[e].type == types[i]);
        CHECK(o >= 0 && f->tensors[o].type == (types[i] == PF_TYPE_Q4_0 ? PF_TYPE_Q8_0 : types[i]));
        CHECK(nrm >= 0 && f->tensors[nrm].type == PF_TYPE_F32);
        uint32_t ft = 99;
        CHECK(gguf_get_u32(f, "general.file_type", &ft) == 0 && ft == (uint32_t)synth_file_type(types[i]));
        gguf_close(f);
        struct pinfer_model *m = NULL;
        CHECKF(pinfer_model_load(&m, path, NULL) == 0, "%s: %s", name, pinfer_last_error());
        pinfer_model_free(m);
    }
}

/* ==== disk space ==== */

/* Whether a temp file of output path is still in its directory. */
static bool temp_left(const char *path)
{
    char dir[600], pre[700];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return false;
    *slash = 0;
    snprintf(pre, sizeof pre, "%s.pinfer-tmp.", slash + 1);
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, pre, strlen(pre))) found = true;
    if (d) closedir(d);
    return found;
}

static void test_enospc(void)
{
    const char *path = tmp("nospace.gguf");
    setenv("PINFER_FAKE_FREE_BYTES", "1000000", 1);
    struct pinfer_synth_params p = pinfer_synth_default_params();
    int rc = pinfer_synth(path, &p);
    CHECKF(rc == PINFER_ENOSPC, "rc %d", rc);
    CHECK(strstr(pinfer_last_error(), "disk space") != NULL);
    CHECK(!exists(path) && !temp_left(path));

    /* a 7B request is refused up front, before any work */
    p.shape = "llama2-7b";
    CHECK(pinfer_synth(path, &p) == PINFER_ENOSPC);

    /* an existing file is left alone */
    FILE *fp = fopen(path, "wb");
    CHECK(fp && fputs("old", fp) >= 0 && fclose(fp) == 0);
    p.shape = "tiny";
    CHECK(pinfer_synth(path, &p) == PINFER_ENOSPC);
    size_t n;
    char *old = tu_read_file(path, &n);
    CHECK(old && n == 3 && !memcmp(old, "old", 3));
    free(old);

    /* enough (fake) space: written */
    setenv("PINFER_FAKE_FREE_BYTES", "1000000000", 1);
    CHECK(pinfer_synth(path, &p) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size > 1000000);
    unsetenv("PINFER_FAKE_FREE_BYTES");
    /* a directory that does not exist */
    CHECK(pinfer_synth("/nonexistent-dir-pinfer/x.gguf", &p) < 0);
}

/* ==== bad requests ==== */

static void test_bad(void)
{
    const char *path = tmp("bad.gguf");
    struct pinfer_synth_params p = pinfer_synth_default_params();
    p.shape = "llama3-405b";
    CHECK(pinfer_synth(path, &p) == PINFER_EINVAL);
    p = pinfer_synth_default_params();
    p.n_embd = 100; /* not a multiple of 32 */
    CHECK(pinfer_synth(path, &p) == PINFER_EINVAL);
    p = pinfer_synth_default_params();
    p.n_head = 7;
    CHECK(pinfer_synth(path, &p) == PINFER_EINVAL);
    p = pinfer_synth_default_params();
    p.act = PINFER_ACT_DRELU;
    p.sparsity = 0.5f;
    p.hot_frac = 0.1f;
    p.hot_share = 0.9f; /* the top 10% would have to fire 4.5x more than always */
    CHECK(pinfer_synth(path, &p) == PINFER_EINVAL);
    p.hot_frac = 0.5f;
    p.hot_share = 0.3f; /* fewer than the hot fraction itself */
    CHECK(pinfer_synth(path, &p) == PINFER_EINVAL);
    p = pinfer_synth_default_params();
    p.act = PINFER_ACT_RELU;
    p.sparsity = 1.0f;
    CHECK(pinfer_synth(path, &p) == PINFER_EINVAL);
    p = pinfer_synth_default_params();
    p.type = 15; /* Q8_K: an activation type, not one synth writes weights in */
    CHECK(pinfer_synth(path, &p) == PINFER_EINVAL);
    CHECK(pinfer_synth(NULL, &p) == PINFER_EINVAL);
    CHECK(!exists(path));
}

/* ==== statistics helpers ==== */

static void test_math(void)
{
    const double ps[] = { 1e-12, 1e-6, 0.001, 0.02, 0.1, 0.3, 0.5, 0.7, 0.97, 0.999999 };
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) {
        double x = synth_norm_ppf(ps[i]);
        CHECKF(fabs(synth_norm_cdf(x) - ps[i]) <= 1e-12 * fmax(1, ps[i] / 1e-3) + ps[i] * 1e-9, "p %g", ps[i]);
    }
    CHECK(fabs(synth_norm_ppf(0.975) - 1.959963984540054) < 1e-12);
    /* E[relu(Z)^2] = 1/2, E[relu(Z)] = 1/sqrt(2 pi) */
    CHECK(fabs(synth_relu_m2(0) - 0.5) < 1e-12);
    CHECK(fabs(synth_relu_m1(0) - 0.3989422804014327) < 1e-12);

    /* the firing law meets its two conditions over its quantile points */
    const double req[][3] = { { 0.10, 0.3, 0.8 }, { 0.20, 0.3, 0.8 }, { 0.15, 0.26, 0.8 }, { 0.1, 0.5, 0.5 } };
    for (size_t i = 0; i < sizeof req / sizeof *req; i++) {
        double mu, sigma;
        const int n = 4096;
        CHECK(synth_firing_law(req[i][0], req[i][1], req[i][2], n, &mu, &sigma) == 0);
        double tot = 0, hot = 0;
        int n_hot = (int)lround(req[i][1] * n);
        for (int k = 0; k < n; k++) {
            double p = 1 / (1 + exp(-(mu + sigma * synth_norm_ppf((k + 0.5) / n))));
            tot += p;
            if (k >= n - n_hot) hot += p;
        }
        CHECKF(fabs(tot / n - req[i][0]) < 1e-6, "mean %g", tot / n);
        CHECKF(fabs(hot / tot - req[i][2]) < 1e-4, "share %g", hot / tot);
    }
}

int main(void)
{
    test_math();
    test_runs();
    test_determinism();
    test_form();
    test_types();
    test_enospc();
    test_bad();
    TEST_DONE();
}
