/* pinfer prepare (docs/sparse-format.md) on tiny synthetic ReLU (Q8_0), dReLU (Q4_0), SiLU
 * (F16), dReLU Q4_K and ReLU Q4_K with Q6_K down in odd layers (mixed-type bundles, as
 * llama.cpp's Q4_K_M) models, checked through the GGUF reader, not through prepare's own code:
 *  - keys and tensors of the spec with the right shapes and types, no ffn_gate/up/down left,
 *    general.alignment 4096 and every tensor's file offset 4096-aligned;
 *  - perm is a permutation, freq is non-increasing;
 *  - each bundle slot's gate and up rows are byte-identical to the input rows of perm[j], and its
 *    down row equals the input's column perm[j] re-quantized (within the type's rounding);
 *  - every layer's held-out recall >= 0.99, from the keys and re-measured here: the original
 *    model is run over the same calibration text, and the stored predictor (dequantized) is
 *    applied by hand in plain C to the held-out tokens' FFN inputs;
 *  - same seed -> identical bytes, whatever the thread count;
 *  - PowerInfer predictors in the input are kept: fc1 as is, fc2 rows permuted into slot order;
 *  - bad inputs (missing file, missing output directory, a non-GGUF and a non-llama file, an
 *    already prepared model, a bad cluster size) fail with clear messages and leave no file;
 *  - hostile prepared files (a types array naming an unknown type, a type without bundle
 *    kernels, a slot size that does not match the tensor, ...) are refused at load with clear
 *    messages; a version 1 file (one type per layer, no types key) still loads. */
#include "testutil.h"
#include "prepare/reuse.h"

#include "gguf/gguf.h"
#include "runtime/ctx.h"
#include "pinfer.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define N_CALIB 600
#define TRAIN_STEPS 120

static char *tmp(const char *name)
{
    static char buf[16][512];
    static int k;
    char *p = buf[k++ % 16];
    snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
    return p;
}

/* ==== Inputs ==== */

static int synth(const char *path, enum pinfer_act act, int type)
{
    struct pinfer_synth_params p = pinfer_synth_default_params();
    p.act = act;
    p.sparsity = 0.9f;
    p.hot_frac = 0.3f;
    p.hot_share = 0.8f;
    p.type = type;
    p.seed = 7;
    if (type >= PF_TYPE_Q2_K && type <= PF_TYPE_Q6_K) { /* rows of whole 256-element super-blocks */
        p.n_embd = 256;
        p.n_ff = 512;
    }
    int rc = pinfer_synth(path, &p);
    if (rc) fprintf(stderr, "synth %s: %s\n", path, pinfer_last_error());
    return rc;
}

/* Plain words in a seeded random order: enough tokens for N_CALIB. */
static char *calib_text(size_t *len)
{
    static const char *w[] = { "the", "small", "dog", "ran", "to", "a", "house", "and", "she", "saw", "big", "red",
                               "ball", "in", "garden", "where", "birds", "sing", "every", "morning", "under", "old",
                               "tree", "with", "green", "leaves", "then", "they", "played", "until", "sun", "went" };
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    unsigned long long st = 12345;
    while (s && n + 16 < cap) {
        const char *x = w[tu_rand(&st) % (sizeof w / sizeof *w)];
        n += (size_t)snprintf(s + n, cap - n, "%s%s", n ? " " : "", x);
        if (n > 6000) break;
    }
    *len = n;
    return s;
}

static struct pinfer_prepare_params params(const char *text, size_t len)
{
    struct pinfer_prepare_params p = pinfer_prepare_default_params();
    p.text = text;
    p.text_len = len;
    p.n_tokens = N_CALIB;
    p.train_steps = TRAIN_STEPS;
    p.n_threads = 2;
    p.seed = 3;
    return p;
}

/* ==== Reading the output ==== */

static const struct gguf_tensor *tensor(const struct gguf_file *f, const char *fmt, int l)
{
    char name[GGUF_MAX_NAME];
    snprintf(name, sizeof name, fmt, l);
    int i = gguf_find_tensor(f, name);
    return i < 0 ? NULL : &f->tensors[i];
}

static const void *tdata(const struct gguf_file *f, const struct gguf_tensor *t) { return f->data + t->file_offset; }

/* Copies a numeric array key (elements of elem_type, n of them) into a new buffer. */
static void *arr(const struct gguf_file *f, const char *fmt, int l, enum gguf_vtype elem_type, uint64_t n)
{
    char key[128];
    snprintf(key, sizeof key, fmt, l);
    const struct gguf_kv *kv = gguf_find(f, key);
    CHECKF(kv && kv->type == GGUF_ARRAY && kv->arr_type == elem_type && kv->arr_n == n, "key %s", key);
    if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != elem_type || kv->arr_n != n) return NULL;
    void *p = malloc(n * 4);
    memcpy(p, kv->arr_data, n * 4);
    return p;
}

static float keyf(const struct gguf_file *f, const char *fmt, int l)
{
    char key[128];
    float v = NAN;
    snprintf(key, sizeof key, fmt, l);
    CHECKF(gguf_get_f32(f, key, &v) == 0, "key %s", key);
    return v;
}

/* Largest error re-quantizing a value of magnitude amax can leave, per type. */
static float quant_tol(int type, float amax)
{
    switch (type) {
    case PF_TYPE_F32: return 0;
    case PF_TYPE_F16: return amax * 1e-3f + 1e-7f;
    case PF_TYPE_Q8_0: return amax / 127.0f + 1e-6f;
    case PF_TYPE_Q6_K: return amax / 20.0f + 1e-6f;
    case PF_TYPE_Q4_K: return amax / 5.0f + 1e-6f; /* sub-block scale and min, both 6-bit */
    default: return amax / 8.0f * 1.002f + 1e-6f; /* Q4_0: one step at the clipped end, f16 scale */
    }
}

/* The type prepare must store a layer's down columns in (docs/sparse-format.md), restated here
 * rather than taken from prepare: the down's own type when n_embd is a whole number of its
 * blocks, else Q8_0 (n_embd % 32 == 0), else F16. */
static int want_down_type(int down, int64_t E)
{
    if (E % pf_type_get(down)->blck == 0) return down;
    return E % 32 == 0 ? PF_TYPE_Q8_0 : PF_TYPE_F16;
}

/* ==== Re-measuring recall ==== */

struct gather {
    int n_layer, n_embd, n_ff, n_tok, cur;
    float *x;      /* (layer, token, n_embd) */
    uint8_t *on;   /* (layer, token, n_ff) */
};

static void io_hook(void *ud, int layer, const float *in, int n_embd, const float *act, int n_ff, int n_tok)
{
    struct gather *g = ud;
    for (int t = 0; t < n_tok; t++) {
        size_t T = (size_t)layer * g->n_tok + (size_t)(g->cur + t);
        memcpy(g->x + T * n_embd, in + (size_t)t * n_embd, (size_t)n_embd * sizeof *in);
        for (int i = 0; i < n_ff; i++) g->on[T * n_ff + i] = act[(size_t)t * n_ff + i] != 0;
    }
}

/* Runs the input model over the calibration text as prepare does (BOS, batches of 64). */
static bool gather_run(struct gather *g, const char *model, const char *text, size_t len)
{
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    if (pinfer_model_load(&m, model, NULL)) return false;
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    int32_t *toks = malloc(sizeof *toks * (len + 2));
    int n = pinfer_tokenize(m, text, len, true, toks, (int)len + 2);
    if (n > N_CALIB) n = N_CALIB;
    g->n_layer = info.n_layer;
    g->n_embd = info.n_embd;
    g->n_ff = info.n_ff;
    g->n_tok = n;
    g->x = malloc(sizeof *g->x * (size_t)info.n_layer * n * info.n_embd);
    g->on = malloc((size_t)info.n_layer * n * info.n_ff);
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = n;
    cp.n_batch = 64;
    cp.n_threads = 2;
    bool ok = pinfer_ctx_new(&c, m, &cp) == 0;
    if (ok) pf_ctx_set_ffn_io_hook(c, io_hook, g);
    for (int i = 0; ok && i < n; i += 64) {
        g->cur = i;
        ok = pinfer_decode(c, toks + i, n - i < 64 ? n - i : 64, i, false) == 0;
    }
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    free(toks);
    return ok;
}

/* Recall and precision of layer l's stored predictor on the held-out tokens (docs: every 5th
 * block of 16 tokens), computed in f32 from the dequantized fc1 and fc2. */
static void remeasure(const struct gguf_file *f, const struct gather *g, int l, const int32_t *perm,
                      double *recall, double *precision, int *n_heldout)
{
    const struct gguf_tensor *t1 = tensor(f, "blk.%d.fc1.weight", l), *t2 = tensor(f, "blk.%d.fc2.weight", l);
    const int E = g->n_embd, F = g->n_ff, r = (int)t1->ne[1];
    float thr = keyf(f, "pinfer.predictor.%d.threshold", l);
    float *fc1 = malloc(sizeof *fc1 * (size_t)r * E), *fc2 = malloc(sizeof *fc2 * (size_t)F * r);
    float *h = malloc(sizeof *h * (size_t)r);
    size_t rs1, rs2;
    pf_row_size(t1->type, E, &rs1);
    pf_row_size(t2->type, r, &rs2);
    for (int k = 0; k < r; k++) pf_kernels_ref.dequant[t1->type]((const char *)tdata(f, t1) + k * rs1, fc1 + (size_t)k * E, E);
    for (int j = 0; j < F; j++) pf_kernels_ref.dequant[t2->type]((const char *)tdata(f, t2) + j * rs2, fc2 + (size_t)j * r, r);
    uint64_t pos = 0, tp = 0, pred = 0;
    *n_heldout = 0;
    for (int t = 0; t < g->n_tok; t++) {
        if ((t / 16) % 5 != 4) continue;
        ++*n_heldout;
        const float *x = g->x + ((size_t)l * g->n_tok + t) * E;
        const uint8_t *on = g->on + ((size_t)l * g->n_tok + t) * F;
        for (int k = 0; k < r; k++) {
            double s = 0;
            for (int e = 0; e < E; e++) s += (double)fc1[(size_t)k * E + e] * x[e];
            h[k] = s > 0 ? (float)s : 0.0f;
        }
        for (int j = 0; j < F; j++) {
            double z = 0;
            for (int k = 0; k < r; k++) z += (double)fc2[(size_t)j * r + k] * h[k];
            bool p = z > thr, a = on[perm[j]];
            pos += a;
            pred += p;
            tp += p && a;
        }
    }
    *recall = pos ? (double)tp / pos : 1;
    *precision = pred ? (double)tp / pred : 1;
    free(fc1);
    free(fc2);
    free(h);
}

/* ==== The checks ==== */

/* Returns, for the ReLU family, the co-activations of neighbouring slots: over every layer,
 * pair of adjacent slots and calibration token, how often both neurons fired (what
 * --placement coact raises). */
static double check_prepared(const char *in_path, const char *out_path, const char *text, size_t len,
                             const struct pinfer_prepare_result *res, enum pinfer_placement placement)
{
    double adjacent = 0;
    struct gguf_file *in = NULL, *out = NULL;
    CHECKF(gguf_open(&in, in_path) == 0, "%s", pinfer_last_error());
    CHECKF(gguf_open(&out, out_path) == 0, "%s", pinfer_last_error());
    if (!in || !out) { gguf_close(in); gguf_close(out); return 0; }
    uint32_t u = 0;
    char place[16] = "";
    CHECK(gguf_get_str(out, "pinfer.prepare.placement", place, sizeof place) == 0);
    CHECKF(!strcmp(place, placement == PINFER_PLACE_COACT ? "coact" : "freq"), "placement key '%s'", place);
    int64_t E = 0, F = 0, L = 0;
    char act[32] = "", src[32] = "";
    CHECK(gguf_get_i64(in, "llama.embedding_length", &E) == 0 && gguf_get_i64(in, "llama.feed_forward_length", &F) == 0 &&
          gguf_get_i64(in, "llama.block_count", &L) == 0);
    CHECK(gguf_get_u32(out, "pinfer.prepared", &u) == 0 && u == 2);
    CHECK(gguf_get_u32(out, "general.alignment", &u) == 0 && u == 4096 && out->alignment == 4096);
    CHECK(out->data_offset % 4096 == 0);
    CHECK(gguf_get_str(out, "pinfer.ffn_act", act, sizeof act) == 0);
    CHECK(gguf_get_str(out, "pinfer.predictor.source", src, sizeof src) == 0);
    const bool relu = strcmp(act, "silu") != 0;
    CHECKF(strcmp(src, relu ? "trained" : "none") == 0, "predictor source %s for %s", src, act);
    CHECK(gguf_get_u32(out, "pinfer.cluster_size", &u) == 0 && (int)u == res->cluster_size);
    for (uint64_t i = 0; i < out->n_tensors; i++) {
        const struct gguf_tensor *t = &out->tensors[i];
        CHECKF(t->file_offset % 4096 == 0, "%s at %llu", t->name, (unsigned long long)t->file_offset);
        CHECKF(!strstr(t->name, "ffn_gate.") && !strstr(t->name, "ffn_up.") && !strstr(t->name, "ffn_down."), "%s kept", t->name);
    }
    /* every other input key and tensor is there, unchanged */
    for (uint64_t i = 0; i < in->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)in->kv[i].key.len, in->kv[i].key.s);
        CHECKF(gguf_find(out, key) != NULL, "key %s lost", key);
    }
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const struct gguf_tensor *t = &in->tensors[i];
        if (strstr(t->name, "ffn_gate.") || strstr(t->name, "ffn_up.") || strstr(t->name, "ffn_down.")) continue;
        int j = gguf_find_tensor(out, t->name);
        CHECKF(j >= 0 && out->tensors[j].nbytes == t->nbytes &&
               memcmp(tdata(out, &out->tensors[j]), tdata(in, t), t->nbytes) == 0, "tensor %s not copied", t->name);
    }
    int slot_checked = 0;
    struct gather g = { 0 };
    if (relu) CHECK(gather_run(&g, in_path, text, len));
    for (int l = 0; l < L; l++) {
        const struct gguf_tensor *b = tensor(out, "blk.%d.ffn_bundle.weight", l);
        const struct gguf_tensor *gi = tensor(in, "blk.%d.ffn_gate.weight", l), *ui = tensor(in, "blk.%d.ffn_up.weight", l),
                                 *di = tensor(in, "blk.%d.ffn_down.weight", l);
        /* the part types, and the tensor: one type {E, 3, F} of it, else I8 {slot bytes, F} */
        const int tg = gi->type, tu = ui->type, td = want_down_type(di->type, E);
        uint32_t *ty = arr(out, "pinfer.bundle.%d.types", l, GGUF_U32, 3);
        CHECKF(ty && (int)ty[0] == tg && (int)ty[1] == tu && (int)ty[2] == td, "layer %d: types key", l);
        free(ty);
        size_t rg = 0, ru = 0, rd = 0;
        CHECK(pf_row_size(tg, E, &rg) && pf_row_size(tu, E, &ru) && pf_row_size(td, E, &rd));
        const size_t slot_b = rg + ru + rd;
        const bool one = tg == tu && tu == td;
        if (one) CHECKF(b && b->n_dims == 3 && b->ne[0] == E && b->ne[1] == 3 && b->ne[2] == F && b->type == tg, "bundle %d", l);
        else CHECKF(b && b->n_dims == 2 && b->ne[0] == (int64_t)slot_b && b->ne[1] == F && b->type == PF_TYPE_I8,
                    "bundle %d: mixed types need I8 [%zu, %lld]", l, slot_b, (long long)F);
        int32_t *perm = arr(out, "pinfer.bundle.%d.perm", l, GGUF_I32, (uint64_t)F);
        float *freq = arr(out, "pinfer.bundle.%d.freq", l, GGUF_F32, (uint64_t)F);
        float *am = arr(out, "pinfer.bundle.%d.act_mean", l, GGUF_F32, (uint64_t)F);
        if (!b || !perm || !freq || !am) { free(perm); free(freq); free(am); continue; }
        char *seen = calloc((size_t)F, 1);
        bool is_perm = true, mono = true;
        /* hottest first: slot by slot (freq), or bucket by bucket of 512 (coact) */
        const int bucket = placement == PINFER_PLACE_COACT ? 512 : 1;
        float prev_min = 2;
        for (int j0 = 0; j0 < F; j0 += bucket) {
            float mx = -1, mn = 2;
            for (int j = j0; j < j0 + bucket && j < F; j++) {
                if (perm[j] < 0 || perm[j] >= F || seen[perm[j]]) is_perm = false;
                else seen[perm[j]] = 1;
                if (!(freq[j] >= 0 && freq[j] <= 1)) mono = false;
                mx = fmaxf(mx, freq[j]);
                mn = fminf(mn, freq[j]);
            }
            if (mx > prev_min) mono = false;
            prev_min = mn;
        }
        CHECKF(is_perm, "layer %d: perm is not a permutation", l);
        CHECKF(mono, "layer %d: freq is not non-increasing in [0, 1] (by buckets of %d)", l, bucket);
        if (relu && is_perm && g.on)
            for (int t = 0; t < g.n_tok; t++) {
                const uint8_t *on = g.on + ((size_t)l * g.n_tok + t) * F;
                for (int j = 1; j < F; j++) adjacent += on[perm[j - 1]] && on[perm[j]];
            }
        free(seen);
        if (!is_perm) { free(perm); free(freq); free(am); continue; }
        /* slots */
        size_t rsd;
        pf_row_size(di->type, F, &rsd);
        CHECKF((size_t)res->cluster_size * slot_b % 4096 == 0 || res->cluster_size == F, "cluster of %d slots of %zu bytes",
               res->cluster_size, slot_b);
        const int64_t win = pf_type_get(td)->blck > 32 ? pf_type_get(td)->blck : 32; /* a quantization block */
        float *down = malloc(sizeof *down * (size_t)E * F), *row = malloc(sizeof *row * (size_t)E);
        for (int e = 0; e < E; e++) pf_kernels_ref.dequant[di->type]((const char *)tdata(in, di) + e * rsd, down + (size_t)e * F, F);
        int bad_g = 0, bad_u = 0, bad_d = 0;
        for (int j = 0; j < F; j++) {
            const char *slot = (const char *)tdata(out, b) + (size_t)j * slot_b;
            int i = perm[j];
            bad_g += memcmp(slot, (const char *)tdata(in, gi) + (size_t)i * rg, rg) != 0;
            bad_u += memcmp(slot + rg, (const char *)tdata(in, ui) + (size_t)i * ru, ru) != 0;
            pf_kernels_ref.dequant[td](slot + rg + ru, row, E);
            for (int e0 = 0; e0 < E; e0 += (int)win) { /* tolerance per quantization block */
                float amax = 0;
                for (int e = e0; e < e0 + win && e < E; e++) amax = fmaxf(amax, fabsf(down[(size_t)e * F + i]));
                for (int e = e0; e < e0 + win && e < E; e++)
                    if (fabsf(row[e] - down[(size_t)e * F + i]) > quant_tol(td, amax)) bad_d++;
            }
            slot_checked++;
        }
        CHECKF(!bad_g && !bad_u && !bad_d, "layer %d: %d gate, %d up rows differ; %d down values off", l, bad_g, bad_u, bad_d);
        free(down);
        free(row);
        /* predictor */
        const struct gguf_tensor *f1 = tensor(out, "blk.%d.fc1.weight", l), *f2 = tensor(out, "blk.%d.fc2.weight", l);
        if (!relu) CHECKF(!f1 && !f2, "layer %d: a SiLU model got a predictor", l);
        else CHECKF(f1 && f2, "layer %d: no predictor", l);
        if (relu && f1 && f2) {
            uint32_t rank = 0;
            char key[64];
            snprintf(key, sizeof key, "pinfer.predictor.%d.rank", l);
            CHECK(gguf_get_u32(out, key, &rank) == 0 && rank == f1->ne[1]);
            CHECK(f1->ne[0] == E && f2->ne[0] == f1->ne[1] && f2->ne[1] == F);
            CHECK(f1->type == PF_TYPE_Q8_0 && f2->type == (rank % 32 ? PF_TYPE_F16 : PF_TYPE_Q8_0));
            float rk = keyf(out, "pinfer.predictor.%d.recall", l), pk = keyf(out, "pinfer.predictor.%d.precision", l);
            CHECKF(rk >= 0.99f, "layer %d: recall key %.4f", l, (double)rk);
            CHECK(rk == res->layers[l].recall && pk == res->layers[l].precision);
            double rr, pp;
            int nh;
            remeasure(out, &g, l, perm, &rr, &pp, &nh);
            CHECKF(rr >= 0.99, "layer %d: re-measured recall %.4f (key %.4f)", l, rr, (double)rk);
            CHECKF(fabs(pp - pk) < 0.02, "layer %d: re-measured precision %.4f, key %.4f", l, pp, (double)pk);
            CHECK(gguf_get_u32(out, "pinfer.prepare.heldout", &u) == 0 && (int)u == nh);
            /* how often the predictor asks for each slot over all calibration tokens (the
               planner's request law): in [0, 1], its mean near the held-out predicted fraction,
               and in slot order (the hottest tenth asked for more than the coldest half) */
            float *pf = arr(out, "pinfer.bundle.%d.pred_freq", l, GGUF_F32, (uint64_t)F);
            CHECKF(pf != NULL, "layer %d: no pred_freq", l);
            if (pf) {
                double mean = 0, top = 0, bottom = 0;
                bool range = true;
                for (int j = 0; j < F; j++) {
                    range &= pf[j] >= 0 && pf[j] <= 1;
                    mean += pf[j] / F;
                    if (j < F / 10) top += pf[j] / (F / 10);
                    if (j >= F / 2) bottom += pf[j] / (F - F / 2);
                }
                float kp = keyf(out, "pinfer.predictor.%d.predicted", l);
                CHECKF(range && fabs(mean - kp) < 0.05 && top > bottom, "layer %d: pred_freq mean %.3f (held-out predicted %.3f), hottest tenth %.3f, coldest half %.3f",
                       l, mean, (double)kp, top, bottom);
                /* the reuse of the same requests (the planner's LRU law): over a window of one
                   step a bucket's occupancy is its slots' request frequencies summed; hit
                   fractions in [0, 1]; windows past a quarter of the calibration unmeasured */
                const uint64_t nr = PF_REUSE_BUCKETS * PF_REUSE_WINDOWS;
                float *ro = arr(out, "pinfer.bundle.%d.reuse_occ", l, GGUF_F32, nr);
                float *rh = arr(out, "pinfer.bundle.%d.reuse_hit", l, GGUF_F32, nr);
                uint32_t *rw = arr(out, "pinfer.prepare.reuse_windows", 0, GGUF_U32, PF_REUSE_WINDOWS);
                if (ro && rh && rw) {
                    uint32_t n_tok = 0;
                    CHECK(gguf_get_u32(out, "pinfer.prepare.stat_tokens", &n_tok) == 0 && n_tok >= 80);
                    for (int bk = 0; bk < PF_REUSE_BUCKETS; bk++) {
                        double sum = 0;
                        for (int j = bk * F / PF_REUSE_BUCKETS; j < (bk + 1) * F / PF_REUSE_BUCKETS; j++) sum += pf[j];
                        CHECKF(fabs(ro[bk * PF_REUSE_WINDOWS] - sum) < 1e-3 * (1 + sum), "layer %d bucket %d: occupancy at 1 step %.4f, requests %.4f",
                               l, bk, (double)ro[bk * PF_REUSE_WINDOWS], sum);
                        for (int k = 0; k < PF_REUSE_WINDOWS; k++) {
                            const float o = ro[bk * PF_REUSE_WINDOWS + k], h = rh[bk * PF_REUSE_WINDOWS + k];
                            const bool measured = 4 * rw[k] <= n_tok;
                            CHECKF(measured ? h >= 0 && h <= 1 && o >= 0 : h == -1 && o == -1, "layer %d bucket %d window %u: %.3f %.3f", l, bk,
                                   rw[k], (double)o, (double)h);
                        }
                    }
                }
                free(ro); free(rh); free(rw);
                free(pf);
            }
            printf("  layer %d: rank %u, recall %.4f (key %.4f), precision %.4f (key %.4f), predicted %.3f, active %.3f\n",
                   l, rank, rr, (double)rk, pp, (double)pk, res->layers[l].pred_frac, res->layers[l].active_frac);
        }
        free(perm);
        free(freq);
        free(am);
    }
    CHECK(slot_checked == L * F);
    free(g.x);
    free(g.on);
    gguf_close(in);
    gguf_close(out);
    return adjacent;
}

/* ffn_down of odd layers -> Q6_K: llama.cpp's Q4_K_M keeps some layers' down in Q6_K */
static int odd_down_q6k(const char *name)
{
    int l;
    char rest[64];
    if (sscanf(name, "blk.%d.%63s", &l, rest) == 2 && l % 2 == 1 && !strcmp(rest, "ffn_down.weight")) return PF_TYPE_Q6_K;
    return -1;
}

/* mixed: the synthetic model's odd layers' ffn_down re-quantized to Q6_K before preparing.
 * Returns check_prepared's co-activations of neighbouring slots. */
static double test_model(const char *name, enum pinfer_act act, int type, const char *text, size_t len, int rank, bool mixed,
                         enum pinfer_placement placement)
{
    char in[64], out[64], uni[64];
    snprintf(in, sizeof in, "%s.gguf", name);
    snprintf(out, sizeof out, "%s.prepared.gguf", name);
    snprintf(uni, sizeof uni, "%s.uniform.gguf", name);
    const char *ip = tmp(in), *op = tmp(out);
    if (synth(mixed ? tmp(uni) : ip, act, type)) { CHECK(0); return 0; }
    if (mixed) {
        struct tu_gguf_edit e = { .retype = odd_down_q6k };
        if (tu_gguf_edit(tmp(uni), ip, &e)) { CHECK(0); return 0; }
    }
    struct pinfer_prepare_params p = params(text, len);
    p.rank = rank;
    p.placement = placement;
    struct pinfer_prepare_result *res = NULL;
    int rc = pinfer_prepare(ip, op, &p, &res);
    CHECKF(rc == 0, "prepare %s: %s", name, pinfer_last_error());
    if (rc) return 0;
    printf("%s: %d tokens, %d held out, cluster %d, dense %.2f MiB/token, sparse %.2f, predictors %.3f\n", name,
           res->n_tokens, res->n_heldout, res->cluster_size, res->bytes_dense / 1048576.0, res->bytes_sparse / 1048576.0,
           res->bytes_pred / 1048576.0);
    CHECK(res->n_tokens == N_CALIB && strcmp(res->source, "text") == 0);
    double adjacent = check_prepared(ip, op, text, len, res, placement);
    pinfer_prepare_result_free(res);
    return adjacent;
}

/* ==== Determinism ==== */

static bool same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void test_determinism(const char *text, size_t len)
{
    const char *in = tmp("drelu.gguf"), *a = tmp("det-a.gguf"), *b = tmp("det-b.gguf"), *c = tmp("det-c.gguf");
    struct pinfer_prepare_params p = params(text, len);
    CHECKF(pinfer_prepare(in, a, &p, NULL) == 0, "%s", pinfer_last_error());
    p.n_threads = 1;
    CHECKF(pinfer_prepare(in, b, &p, NULL) == 0, "%s", pinfer_last_error());
    CHECK(same_file(a, b));
    p.seed = 4;
    CHECKF(pinfer_prepare(in, c, &p, NULL) == 0, "%s", pinfer_last_error());
    CHECK(!same_file(a, c));
    /* sampled calibration is seeded too */
    p = params(NULL, 0);
    p.n_tokens = 160;
    p.rank = 32;
    CHECKF(pinfer_prepare(in, a, &p, NULL) == 0, "%s", pinfer_last_error());
    CHECKF(pinfer_prepare(in, b, &p, NULL) == 0, "%s", pinfer_last_error());
    CHECK(same_file(a, b));
}

/* ==== PowerInfer predictors ==== */

static void test_powerinfer(const char *text, size_t len)
{
    const char *base = tmp("relu.gguf"), *pi = tmp("powerinfer.gguf"), *out = tmp("powerinfer.prepared.gguf");
    struct gguf_file *f = NULL;
    struct gguf_writer *w = NULL;
    CHECK(gguf_open(&f, base) == 0);
    if (!f) return;
    int64_t E = 0, F = 0, L = 0;
    gguf_get_i64(f, "llama.embedding_length", &E);
    gguf_get_i64(f, "llama.feed_forward_length", &F);
    gguf_get_i64(f, "llama.block_count", &L);
    const int r = 48; /* not a multiple of 32: F16 rows */
    CHECK(gguf_writer_new(&w) == 0);
    for (uint64_t i = 0; i < f->n_kv; i++) CHECK(gguf_writer_copy_kv(w, &f->kv[i]) == 0);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        CHECK(gguf_writer_add_tensor(w, f->tensors[i].name, f->tensors[i].type, f->tensors[i].n_dims, f->tensors[i].ne) == 0);
    char name[64];
    for (int l = 0; l < L; l++) {
        int64_t ne1[2] = { E, r }, ne2[2] = { r, F };
        snprintf(name, sizeof name, "blk.%d.fc1.weight", l);
        CHECK(gguf_writer_add_tensor(w, name, PF_TYPE_F16, 2, ne1) == 0);
        snprintf(name, sizeof name, "blk.%d.fc2.weight", l);
        CHECK(gguf_writer_add_tensor(w, name, PF_TYPE_F16, 2, ne2) == 0);
    }
    CHECK(gguf_writer_begin(w, pi) == 0);
    for (uint64_t i = 0; i < f->n_tensors; i++) CHECK(gguf_writer_write(w, tdata(f, &f->tensors[i]), f->tensors[i].nbytes) == 0);
    unsigned long long st = 77;
    uint16_t *buf = malloc(sizeof *buf * (size_t)(E > F ? E : F) * r);
    for (int l = 0; l < L; l++) {
        for (int64_t e = 0; e < E * r; e++) buf[e] = pf_fp32_to_fp16(tu_randf(&st) * 0.1f);
        CHECK(gguf_writer_write(w, buf, sizeof *buf * (size_t)(E * r)) == 0);
        for (int64_t e = 0; e < F * r; e++) buf[e] = pf_fp32_to_fp16(tu_randf(&st));
        CHECK(gguf_writer_write(w, buf, sizeof *buf * (size_t)(F * r)) == 0);
    }
    free(buf);
    CHECKF(gguf_writer_finish(w) == 0, "%s", pinfer_last_error());
    gguf_writer_free(w);
    gguf_close(f);

    struct pinfer_prepare_params p = params(text, len);
    struct pinfer_prepare_result *res = NULL;
    CHECKF(pinfer_prepare(pi, out, &p, &res) == 0, "%s", pinfer_last_error());
    if (!res) return;
    CHECK(strcmp(res->predictor, "powerinfer") == 0);
    struct gguf_file *a = NULL, *b = NULL;
    CHECK(gguf_open(&a, pi) == 0 && gguf_open(&b, out) == 0);
    char src[32] = "";
    CHECK(b && gguf_get_str(b, "pinfer.predictor.source", src, sizeof src) == 0 && !strcmp(src, "powerinfer"));
    for (int l = 0; a && b && l < L; l++) {
        const struct gguf_tensor *a1 = tensor(a, "blk.%d.fc1.weight", l), *a2 = tensor(a, "blk.%d.fc2.weight", l);
        const struct gguf_tensor *b1 = tensor(b, "blk.%d.fc1.weight", l), *b2 = tensor(b, "blk.%d.fc2.weight", l);
        CHECK(b1 && b2 && b1->type == PF_TYPE_F16 && b2->type == PF_TYPE_F16 && b1->nbytes == a1->nbytes && b2->nbytes == a2->nbytes);
        if (!b1 || !b2) continue;
        CHECK(memcmp(tdata(a, a1), tdata(b, b1), a1->nbytes) == 0);
        int32_t *perm = arr(b, "pinfer.bundle.%d.perm", l, GGUF_I32, (uint64_t)F);
        int bad = 0;
        for (int j = 0; perm && j < F; j++)
            bad += memcmp((const char *)tdata(b, b2) + (size_t)j * r * 2, (const char *)tdata(a, a2) + (size_t)perm[j] * r * 2, (size_t)r * 2) != 0;
        CHECKF(bad == 0, "layer %d: %d fc2 rows not in slot order", l, bad);
        CHECK(keyf(b, "pinfer.predictor.%d.threshold", l) == 0.0f);
        CHECK(res->layers[l].rank == r && res->layers[l].recall >= 0 && res->layers[l].recall <= 1);
        free(perm);
    }
    gguf_close(a);
    gguf_close(b);
    pinfer_prepare_result_free(res);
}

/* ==== Bad inputs ==== */

static bool dir_has_tmp(void)
{
    DIR *d = opendir(tu_tmpdir());
    bool found = false;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".pinfer-tmp.")) found = true;
    if (d) closedir(d);
    return found;
}

static void expect_fail(const char *in, const char *out, const struct pinfer_prepare_params *p, int code, const char *needle)
{
    int rc = pinfer_prepare(in, out, p, NULL);
    const char *msg = pinfer_last_error();
    printf("  %-40.40s -> %d: %s\n", needle, rc, msg);
    CHECKF(rc == code, "expected %d, got %d (%s)", code, rc, msg);
    CHECKF(strstr(msg, needle) != NULL, "message lacks '%s': %s", needle, msg);
    FILE *fp = fopen(out, "rb");
    CHECKF(!fp || strcmp(out, in) == 0, "%s was written", out);
    if (fp) fclose(fp);
}

static void test_errors(const char *text, size_t len)
{
    struct pinfer_prepare_params p = params(text, len);
    const char *out = tmp("err-out.gguf");
    remove(out);
    expect_fail(tmp("no-such-model.gguf"), out, &p, PINFER_EIO, "no-such-model.gguf");
    expect_fail(tmp("drelu.gguf"), tmp("no-such-dir/out.gguf"), &p, PINFER_EIO, "no-such-dir");
    expect_fail(tmp("drelu.gguf"), tmp("drelu.gguf"), &p, PINFER_EINVAL, "is the input");
    FILE *fp = fopen(tmp("text.gguf"), "wb");
    if (fp) { fputs("this is not a model, only words\n", fp); fclose(fp); }
    expect_fail(tmp("text.gguf"), out, &p, PINFER_EFORMAT, "text.gguf");
    /* a well-formed GGUF of another architecture */
    struct gguf_writer *w = NULL;
    int64_t ne[1] = { 32 };
    float zero[32] = { 0 };
    CHECK(gguf_writer_new(&w) == 0 && gguf_writer_set_str(w, "general.architecture", "gpt2") == 0 &&
          gguf_writer_add_tensor(w, "x.weight", PF_TYPE_F32, 1, ne) == 0 && gguf_writer_begin(w, tmp("gpt2.gguf")) == 0 &&
          gguf_writer_write(w, zero, sizeof zero) == 0 && gguf_writer_finish(w) == 0);
    gguf_writer_free(w);
    expect_fail(tmp("gpt2.gguf"), out, &p, PINFER_EUNSUPPORTED, "gpt2");
    expect_fail(tmp("drelu.prepared.gguf"), out, &p, PINFER_EINVAL, "already");
    p.cluster_size = 5;
    expect_fail(tmp("drelu.gguf"), out, &p, PINFER_EINVAL, "cluster size 5");
    p = params(text, 40);
    expect_fail(tmp("drelu.gguf"), out, &p, PINFER_EINVAL, "at least");
    CHECK(!dir_has_tmp());
}

/* ==== Hostile prepared files ====
 * The prepared mixed K-quant file (q4km: layer 0 all Q4_K, typed {n_embd, 3, n_ff}; layer 1
 * Q4_K / Q4_K / Q6_K, I8 slots of 498 bytes) with one key changed: every case is refused at load
 * with its own code and a message that says what is wrong. */
static void expect_load(const char *what, const struct tu_gguf_edit *e, int code, const char *needle)
{
    const char *path = tmp("hostile.gguf");
    if (tu_gguf_edit(tmp("q4km.prepared.gguf"), path, e)) { CHECK(0); return; }
    struct pinfer_model *m = NULL;
    int rc = pinfer_model_load(&m, path, NULL);
    const char *msg = rc ? pinfer_last_error() : "(loaded)";
    printf("  %-44.44s -> %d: %s\n", what, rc, msg);
    CHECKF(rc == code, "%s: expected %d, got %d (%s)", what, code, rc, msg);
    if (code) CHECKF(strstr(msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, msg);
    pinfer_model_free(m);
    remove(path);
}

static void test_hostile(void)
{
    const uint32_t iq2[3] = { PF_TYPE_Q4_K, PF_TYPE_Q4_K, 16 /* iq2_xxs */ };
    const uint32_t q8k[3] = { PF_TYPE_Q4_K, PF_TYPE_Q4_K, PF_TYPE_Q8_K };
    const uint32_t q5k[3] = { PF_TYPE_Q4_K, PF_TYPE_Q4_K, PF_TYPE_Q5_K };
    const uint32_t one[3] = { PF_TYPE_Q4_K, PF_TYPE_Q4_K, PF_TYPE_Q4_K };
    const uint32_t q6k[3] = { PF_TYPE_Q4_K, PF_TYPE_Q4_K, PF_TYPE_Q6_K };
    const uint32_t big[3] = { PF_TYPE_Q4_K, PF_TYPE_Q4_K, 0xffffffffu };
    const uint32_t v1 = 1, v3 = 3;
    const struct { const char *what; struct tu_gguf_edit e; int code; const char *needle; } c[] = {
        { "as written", { 0 }, 0, "" },
        { "down type iq2_xxs (unknown to pinfer)", { .key = "pinfer.bundle.1.types", .u32 = iq2, .n_u32 = 3 },
          PINFER_EUNSUPPORTED, "cannot compute" },
        { "down type q8_K (no bundle kernels)", { .key = "pinfer.bundle.1.types", .u32 = q8k, .n_u32 = 3 },
          PINFER_EUNSUPPORTED, "no bundle kernels" },
        { "down type 0xffffffff", { .key = "pinfer.bundle.1.types", .u32 = big, .n_u32 = 3 }, PINFER_EUNSUPPORTED, "type -1" },
        { "slot size: q5_K down says 464 bytes, not 498", { .key = "pinfer.bundle.1.types", .u32 = q5k, .n_u32 = 3 },
          PINFER_EFORMAT, "expected [464, 512]" },
        { "one type on I8 slots of another size", { .key = "pinfer.bundle.1.types", .u32 = one, .n_u32 = 3 }, PINFER_EFORMAT,
          "expected [432, 512]" },
        { "mixed types on a typed tensor", { .key = "pinfer.bundle.0.types", .u32 = q6k, .n_u32 = 3 }, PINFER_EFORMAT, "need i8" },
        { "types array of 2", { .key = "pinfer.bundle.1.types", .u32 = q6k, .n_u32 = 2 }, PINFER_EFORMAT, "array of 3" },
        { "types key missing", { .drop = "pinfer.bundle.1.types" }, PINFER_EFORMAT, "pinfer.bundle.1.types is missing" },
        { "version 1 (no types: one type per tensor)", { .key = "pinfer.prepared", .u32 = &v1, .scalar = true },
          PINFER_EUNSUPPORTED, "cannot compute" },
        { "version 3", { .key = "pinfer.prepared", .u32 = &v3, .scalar = true }, PINFER_EUNSUPPORTED, "version 3" },
    };
    printf("hostile prepared files:\n");
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) expect_load(c[i].what, &c[i].e, c[i].code, c[i].needle);
    /* a version 1 file of one type per layer (what pinfer wrote before) still loads */
    struct tu_gguf_edit e = { .key = "pinfer.prepared", .u32 = &v1, .scalar = true };
    const char *path = tmp("v1.gguf");
    struct pinfer_model *m = NULL;
    CHECK(tu_gguf_edit(tmp("drelu.prepared.gguf"), path, &e) == 0);
    CHECKF(pinfer_model_load(&m, path, NULL) == 0, "a version 1 file: %s", pinfer_last_error());
    struct pinfer_model_info info;
    if (m) {
        pinfer_model_get_info(m, &info);
        CHECK(info.prepared == 1 && info.weight_type == PF_TYPE_Q4_0);
    }
    pinfer_model_free(m);
}

/* ==== CLI ==== */

static void test_cli(void)
{
    const char *bin = getenv("PINFER_BIN");
    if (!bin) return;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s prepare -m %s -o %s --tokens 96 --rank 32 --steps 20 -t 2 > %s 2>&1", bin,
             tmp("relu.gguf"), tmp("cli.gguf"), tmp("cli.txt"));
    int st = system(cmd);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", cmd);
    char *o = tu_read_file(tmp("cli.txt"), NULL);
    CHECKF(o && strstr(o, "recall") && strstr(o, "precision") && strstr(o, "wrote"), "%s", o ? o : "(no output)");
    free(o);
    snprintf(cmd, sizeof cmd, "%s prepare -m %s -o %s --cluster-size x > /dev/null 2>&1", bin, tmp("relu.gguf"), tmp("cli.gguf"));
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

int main(void)
{
    size_t len;
    char *text = calib_text(&len);
    if (!text) return 1;
    const enum pinfer_placement F = PINFER_PLACE_FREQ, CO = PINFER_PLACE_COACT;
    test_model("relu", PINFER_ACT_RELU, PF_TYPE_Q8_0, text, len, 0, false, F);
    double adj_freq = test_model("drelu", PINFER_ACT_DRELU, PF_TYPE_Q4_0, text, len, 64, false, F);
    double adj_coact = test_model("drelu-coact", PINFER_ACT_DRELU, PF_TYPE_Q4_0, text, len, 64, false, CO);
    printf("co-activations of neighbouring slots: %.0f with --placement freq, %.0f with coact (%.2fx)\n", adj_freq, adj_coact,
           adj_coact / (adj_freq > 0 ? adj_freq : 1));
    CHECKF(adj_coact > 1.3 * adj_freq, "coact placement: %.0f co-activations of neighbours against %.0f", adj_coact, adj_freq);
    test_model("silu", PINFER_ACT_SILU, PF_TYPE_F16, text, len, 0, false, CO); /* no masks: hotness order, key coact */
    test_model("q4k", PINFER_ACT_DRELU, PF_TYPE_Q4_K, text, len, 64, false, F);
    test_model("q4km", PINFER_ACT_RELU, PF_TYPE_Q4_K, text, len, 0, true, F);
    test_hostile();
    test_determinism(text, len);
    test_powerinfer(text, len);
    test_errors(text, len);
    test_cli();
    free(text);
    TEST_DONE();
}
