/* The llama forward pass: pinfer_decode.
 *
 * One decode call runs a batch of n tokens through every layer:
 *   x = embed(tokens)
 *   per layer:  h = rmsnorm(x) * attn_norm;  q,k,v = h Wq, h Wk, h Wv;  rope(q, k)
 *               x += attention(q, K cache, V cache) Wo
 *               h = rmsnorm(x) * ffn_norm;  x += FFN(h)                 (src/ffn/: pf_ffn_step)
 *   logits = rmsnorm(x) * output_norm  Wout
 * Matrices go through pf_matmul (batched: the prompt is a matrix, decode a vector). The FFN is
 * an object of its own (ffn/ffn.h): the same matmuls on an ordinary model, the neuron-bundle
 * layout on a prepared one, the sparse modes of single-token steps (docs/sparse.md), and under a
 * memory budget the neuron cache; this file does not know which.
 *
 * Numerics follow llama.cpp's CPU path so logits agree with it: RoPE rotates adjacent pairs
 * (2i, 2i+1) ("normal" mode, what llama.cpp uses for the llama architecture; its converter
 * permutes Wq/Wk rows for this), with theta advanced by repeated multiplication by
 * base^(-2/n_rot); the KV cache is F16; q is rounded to F16 for q.k and the attention weights
 * to F16 for the weighted sum of V, as ggml's F16 mat-mul does; V is stored transposed
 * ([head][dim][position]) so that sum is a dot product too. */
#include "runtime/ctx.h"

#include "cache/cache.h"
#include "core/clock.h"
#include "core/error.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== RoPE ==== */

/* cos/sin of theta_i = pos * scale * base^(-2i/n_rot) / ff[i] for every row of the batch (row t
 * at position pos[t]): scale is linear RoPE scaling (1/factor), ff the optional frequency factors
 * of Llama 3.1 (rope_freqs.weight; NULL = all 1), as ggml's rope computes them. */
static void rope_table(float *tab, const int *pos, int n_tok, int n_rot, float base, float scale, const float *ff)
{
    float theta_scale = powf(base, -2.0f / (float)n_rot);
    for (int t = 0; t < n_tok; t++) {
        float theta = (float)pos[t];
        float *r = tab + (size_t)t * n_rot;
        for (int i = 0; i < n_rot / 2; i++) {
            float th = scale * (ff ? theta / ff[i] : theta);
            r[2 * i] = cosf(th);
            r[2 * i + 1] = sinf(th);
            theta *= theta_scale;
        }
    }
}

static void rope_apply(float *v, int n_heads, int head_dim, int n_rot, const float *tab)
{
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * head_dim;
        for (int i = 0; i < n_rot; i += 2) {
            float c = tab[i], s = tab[i + 1], x0 = x[i], x1 = x[i + 1];
            x[i] = x0 * c - x1 * s;
            x[i + 1] = x0 * s + x1 * c;
        }
    }
}

/* ==== Attention ==== */

struct attn_task {
    struct pinfer_ctx *c;
    int layer, n_tok;
};

/* One (row, head) pair: scores over the visible part of the row's sequence's cache, softmax,
 * weighted sum of V. The row's query and output are in c's buffers, its KV cache and position
 * are c->row_seq[t]'s and c->row_pos[t]. */
static void attn_one(struct pinfer_ctx *c, int layer, int t, int h, int ith)
{
    const struct pinfer_model *m = c->m;
    const struct pinfer_ctx *kv = c->row_seq[t];
    const int pos = c->row_pos[t];
    const int D = m->head_dim, n_ctx = kv->n_ctx, kvh = h / (m->info.n_head / m->info.n_head_kv);
    const pf_dot_fn dot16 = c->kern->dot[PF_TYPE_F16];
    const pf_from_f32_fn to16 = c->kern->from_f32[PF_TYPE_F16];
    size_t cache_off = ((size_t)layer * m->info.n_head_kv + kvh) * (size_t)n_ctx * D;
    const uint16_t *K = kv->k_cache + cache_off, *Vt = kv->v_cache + cache_off;
    float *sc = c->att + (size_t)ith * c->n_ctx;
    uint16_t *s16 = c->att16 + (size_t)ith * (c->n_ctx > D ? c->n_ctx : D);
    const float *q = c->q + (size_t)t * D * m->info.n_head + (size_t)h * D;
    float *out = c->xb + (size_t)t * D * m->info.n_head + (size_t)h * D;

    int p0 = 0;
    if (m->info.sliding_window > 0 && pos - m->info.sliding_window + 1 > 0) p0 = pos - m->info.sliding_window + 1;
    int n = pos - p0 + 1;
    const float scale = 1.0f / sqrtf((float)D);

    to16(q, s16, D);
    float mx = -INFINITY;
    for (int p = 0; p < n; p++) {
        sc[p] = dot16(K + (size_t)(p0 + p) * D, s16, D) * scale;
        if (sc[p] > mx) mx = sc[p];
    }
    double sum = 0;
    for (int p = 0; p < n; p++) { sc[p] = expf(sc[p] - mx); sum += sc[p]; }
    float inv = (float)(1.0 / sum);
    for (int p = 0; p < n; p++) sc[p] *= inv;
    if (c->attn_hook) c->attn_hook(c->attn_ud, layer, h, t, sc, n);
    to16(sc, s16, n);
    for (int d = 0; d < D; d++) out[d] = dot16(Vt + (size_t)d * n_ctx + p0, s16, n);
}

static void attn_task_fn(void *arg, int ith, int nth)
{
    struct attn_task *a = arg;
    const int H = a->c->m->info.n_head;
    long lo, hi;
    pf_split((long)a->n_tok * H, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) {
        int t = (int)(i / H), h = (int)(i % H);
        attn_one(a->c, a->layer, t, h, ith);
    }
}

/* Stores the batch's k (after RoPE) and v into the F16 caches: row t into c->row_seq[t]'s at
 * position c->row_pos[t]. */
static void kv_store(struct pinfer_ctx *c, int layer, int n_tok)
{
    const struct pinfer_model *m = c->m;
    const int D = m->head_dim, HKV = m->info.n_head_kv;
    for (int t = 0; t < n_tok; t++) {
        struct pinfer_ctx *kv = c->row_seq[t];
        const size_t n_ctx = (size_t)kv->n_ctx, pos = (size_t)c->row_pos[t];
        for (int h = 0; h < HKV; h++) {
            size_t off = ((size_t)layer * HKV + h) * n_ctx * D;
            const float *k = c->k + ((size_t)t * HKV + h) * D, *v = c->v + ((size_t)t * HKV + h) * D;
            c->kern->from_f32[PF_TYPE_F16](k, kv->k_cache + off + pos * D, D);
            uint16_t *vt = kv->v_cache + off;
            for (int d = 0; d < D; d++) vt[(size_t)d * n_ctx + pos] = pf_fp32_to_fp16(v[d]);
        }
    }
}

/* ==== The forward pass ==== */

static void mm(struct pinfer_ctx *c, float *y, const struct pf_weight *w, const float *x, int n_tok)
{
    pf_matmul(c->pool, y, w->data, w->type, w->n_in, w->n_out, x, n_tok, c->scratch);
}

/* Row of the first non-finite value of rows x cols floats, or -1. */
static int first_nonfinite(const float *v, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        float acc = 0; /* NaN or infinity in any term makes the sum x * 0 NaN */
        for (int i = 0; i < cols; i++) acc += v[(size_t)r * cols + i] * 0.0f;
        if (acc != 0) return r;
    }
    return -1;
}

/* The forward pass of the n rows c->row_seq/row_pos describe (checked by the callers), in c's
 * buffers, on c's pool and FFN; row t's KV cache is c->row_seq[t]'s. Logits of every row when
 * all_logits, else of the last; the caller places them. */
static int forward(struct pinfer_ctx *c, const int32_t *tokens, int n, bool all_logits)
{
    struct pinfer_model *m = c->m;
    const struct pinfer_model_info *h = &m->info;
    const int E = h->n_embd, D = m->head_dim, Q = D * h->n_head, KV = D * h->n_head_kv;

    if (c->cache) pf_cache_next_tokens(c->cache, n); /* the neuron cache counts ages in tokens */
    for (int t = 0; t < n; t++) {
        const uint8_t *row;
        if (m->tok_embd.data) {
            row = (const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_size;
        } else {
            /* under a budget: the row from the file */
            int rc = pf_cache_read_bytes(c->cache, m->embd_file_off + (uint64_t)tokens[t] * m->tok_embd.row_size,
                                         m->tok_embd.row_size, &row);
            if (rc) { c->io_error = rc; return pf_fail_context(rc, "reading a token embedding from %s", m->path); }
        }
        c->kern->dequant[m->tok_embd.type](row, c->x + (size_t)t * E, E);
    }
    rope_table(c->rope, c->row_pos, n, h->n_rot, h->rope_freq_base, h->rope_freq_scale, m->rope_freqs);
    pf_ffn_batch_begin(c->ffn, n);
    /* single-token steps: time per phase (a clock read costs ~20 ns, a layer ~1 ms) */
    const bool timed = n == 1;
    double t_step = timed ? pf_now() : 0, t_mark = t_step;
#define PHASE(p_) do { if (timed) { double t_ = pf_now(); c->ph[p_] += t_ - t_mark; t_mark = t_; } } while (0)
#define SKIP() do { if (timed) t_mark = pf_now(); } while (0)
    for (int l = 0; l < h->n_layer; l++) {
        const struct pf_layer *L = &m->layers[l];
        /* attention */
        for (int t = 0; t < n; t++) pf_rmsnorm(c->xb + (size_t)t * E, c->x + (size_t)t * E, L->attn_norm, E, h->norm_eps);
        SKIP();
        mm(c, c->q, &L->wq, c->xb, n);
        mm(c, c->k, &L->wk, c->xb, n);
        mm(c, c->v, &L->wv, c->xb, n);
        PHASE(PF_PH_ATTN_MM);
        for (int t = 0; t < n; t++) {
            const float *tab = c->rope + (size_t)t * h->n_rot;
            rope_apply(c->q + (size_t)t * Q, h->n_head, D, h->n_rot, tab);
            rope_apply(c->k + (size_t)t * KV, h->n_head_kv, D, h->n_rot, tab);
        }
        kv_store(c, l, n);
        struct attn_task at = { c, l, n };
        if (c->attn_hook) pf_pool_run(NULL, attn_task_fn, &at); /* hooks see one thread */
        else pf_pool_run(c->pool, attn_task_fn, &at);
        PHASE(PF_PH_ATTN);
        mm(c, c->q, &L->wo, c->xb, n); /* q is free again; q_dim == n_embd for llama */
        PHASE(PF_PH_ATTN_MM);
        for (size_t i = 0; i < (size_t)n * E; i++) c->x[i] += c->q[i];

        /* feed-forward */
        for (int t = 0; t < n; t++) pf_rmsnorm(c->xb + (size_t)t * E, c->x + (size_t)t * E, L->ffn_norm, E, h->norm_eps);
        SKIP();
        int rc = pf_ffn_step(c->ffn, l, c->xb, c->x, n); /* x += FFN(xb); the predictors' share is timed there */
        PHASE(PF_PH_FFN);
        if (!rc && n == 1 && l + 1 < h->n_layer) rc = pf_ffn_prefetch(c->ffn, l + 1, c->x, c->xb);
        if (rc) {
            c->io_error = rc;
            c->n_logits = 0;
            pf_ffn_batch_end(c->ffn);
            return pf_fail_context(rc, "reading the model's FFN from %s", m->path);
        }
        if (c->layer_hook) c->layer_hook(c->layer_ud, l, c->x, n, E);
    }

    /* head: all rows, or only the last token's */
    int first = all_logits ? 0 : n - 1, rows = n - first;
    for (int t = first; t < n; t++)
        pf_rmsnorm(c->xb + (size_t)(t - first) * E, c->x + (size_t)t * E, m->output_norm, E, h->norm_eps);
    SKIP();
    mm(c, c->logits, &m->output, c->xb, rows);
    PHASE(PF_PH_HEAD);
#undef PHASE
#undef SKIP
    if (timed) {
        c->ph_total += t_mark - t_step;
        c->ph_tokens++;
    }
    pf_ffn_batch_end(c->ffn);
    /* a NaN logit would be sampled as some token: say so instead (a corrupt weight the load-time
       check did not see, e.g. an offloaded bundle, or activations overflowing). The residual
       stream is checked too: quantizing activations drops NaNs (as ggml does), so NaN hidden
       states can end in finite, meaningless logits. */
    int bad = first_nonfinite(c->x, n, E);
    if (bad < 0) bad = first_nonfinite(c->logits, rows, h->n_vocab) >= 0 ? first + first_nonfinite(c->logits, rows, h->n_vocab) : -1;
    if (bad >= 0) {
        c->n_logits = 0;
        return pf_fail(PINFER_EFORMAT, "the model computed non-finite values (token %d of the batch, position %d): "
                       "a weight is NaN or infinite, or the activations overflow", bad, c->row_pos[bad]);
    }
    c->n_logits = rows;
    c->logits_first = first;
    return 0;
}

/* A token id the model has, or an error. */
static int check_token(const struct pinfer_model *m, int32_t tok)
{
    if (tok < 0 || tok >= m->info.n_vocab)
        return pf_fail(PINFER_EINVAL, "token id %d is outside the vocabulary (0..%d)", tok, m->info.n_vocab - 1);
    return 0;
}

int pinfer_decode(struct pinfer_ctx *c, const int32_t *tokens, int n, int pos, bool all_logits)
{
    if (n <= 0 || n > c->n_batch)
        return pf_fail(PINFER_EINVAL, "batch of %d tokens (allowed 1..%d)", n, c->n_batch);
    if (pos < 0 || pos > c->n_ctx - n)
        return pf_fail(PINFER_ERANGE, "positions %d..%d do not fit the context of %d tokens", pos, pos + n - 1, c->n_ctx);
    for (int t = 0; t < n; t++) {
        int rc = check_token(c->m, tokens[t]);
        if (rc) return rc;
    }
    if (c->io_error)
        return pf_fail(c->io_error, "an earlier read of the model failed; this context cannot go on");
    for (int t = 0; t < n; t++) {
        c->row_seq[t] = c;
        c->row_pos[t] = pos + t;
    }
    return forward(c, tokens, n, all_logits);
}

/* Whether one pass over n sequences pays against n single-token steps: it does where a step
 * reads every weight anyway (dense FFN, weights in memory), since the pass reads them once; a
 * sparse step reads a few neurons of its own token, and under a budget each context has a
 * neuron cache of its own, so those run one by one. Hooks see single contexts. */
static bool batch_pays(struct pinfer_ctx *const *ctxs, int n)
{
    const struct pinfer_ctx *c = ctxs[0];
    if (n < 2 || n > c->n_batch || pf_ffn_mode(c->ffn) != PINFER_SPARSE_OFF) return false;
    for (int i = 0; i < n; i++) {
        const struct pinfer_ctx *s = ctxs[i];
        if (s->cache || s->layer_hook || s->attn_hook || s->n_ctx != c->n_ctx) return false;
        if (pf_ffn_has_hooks(s->ffn)) return false;
    }
    return true;
}

int pinfer_decode_multi(struct pinfer_ctx *const *ctxs, const int32_t *tokens, const int *pos, int n)
{
    if (n <= 0) return pf_fail(PINFER_EINVAL, "no sequences to decode");
    for (int i = 0; i < n; i++) {
        struct pinfer_ctx *s = ctxs[i];
        if (!s || s->m != ctxs[0]->m)
            return pf_fail(PINFER_EINVAL, "sequence %d: every context of a multi-sequence step must be of the same model", i);
        for (int j = 0; j < i; j++)
            if (ctxs[j] == s) return pf_fail(PINFER_EINVAL, "sequence %d: a context appears twice in one step", i);
        if (pos[i] < 0 || pos[i] >= s->n_ctx)
            return pf_fail(PINFER_ERANGE, "sequence %d: position %d does not fit the context of %d tokens", i, pos[i], s->n_ctx);
        int rc = check_token(s->m, tokens[i]);
        if (rc) return rc;
        if (s->io_error)
            return pf_fail(s->io_error, "sequence %d: an earlier read of the model failed; this context cannot go on", i);
    }
    if (!batch_pays(ctxs, n)) {
        for (int i = 0; i < n; i++) {
            int rc = pinfer_decode(ctxs[i], &tokens[i], 1, pos[i], false);
            if (rc) return rc;
        }
        return 0;
    }
    struct pinfer_ctx *c = ctxs[0];
    for (int i = 0; i < n; i++) {
        c->row_seq[i] = ctxs[i];
        c->row_pos[i] = pos[i];
        ctxs[i]->n_logits = 0;
    }
    int rc = forward(c, tokens, n, true);
    if (rc) return rc;
    const size_t V = (size_t)c->m->info.n_vocab;
    for (int i = 1; i < n; i++) { /* row i's logits to its context */
        memcpy(ctxs[i]->logits, c->logits + (size_t)i * V, V * sizeof *c->logits);
        ctxs[i]->n_logits = 1;
        ctxs[i]->logits_first = 0;
    }
    c->n_logits = 1;
    c->logits_first = 0;
    return 0;
}
