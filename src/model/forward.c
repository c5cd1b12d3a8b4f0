/* The llama forward pass: contexts, the KV cache, and pinfer_decode.
 *
 * One decode call runs a batch of n tokens through every layer:
 *   x = embed(tokens)
 *   per layer:  h = rmsnorm(x) * attn_norm;  q,k,v = h Wq, h Wk, h Wv;  rope(q, k)
 *               x += attention(q, K cache, V cache) Wo
 *               h = rmsnorm(x) * ffn_norm;  x += (act(h Wgate) * h Wup) Wdown   (act per model)
 *   logits = rmsnorm(x) * output_norm  Wout
 * Matrices go through pf_matmul (batched: the prompt is a matrix, decode a vector). The FFN step
 * is pf_ffn (src/sparse/ffn.c): the same matmuls on an ordinary model, the neuron-bundle layout on
 * a prepared one, and the sparse modes of single-token steps (docs/sparse.md).
 *
 * Numerics follow llama.cpp's CPU path so logits agree with it: RoPE rotates adjacent pairs
 * (2i, 2i+1) ("normal" mode, what llama.cpp uses for the llama architecture; its converter
 * permutes Wq/Wk rows for this), with theta advanced by repeated multiplication by
 * base^(-2/n_rot); the KV cache is F16; q is rounded to F16 for q.k and the attention weights
 * to F16 for the weighted sum of V, as ggml's F16 mat-mul does; V is stored transposed
 * ([head][dim][position]) so that sum is a dot product too. */
#include "model/model.h"

#include "core/checked.h"
#include "core/error.h"
#include "sparse/sparse.h"
#include "cache/cache.h"
#include "tensor/matmul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


struct pinfer_ctx_params pinfer_ctx_default_params(void)
{
    struct pinfer_ctx_params p = { .n_ctx = 0, .n_threads = 0, .n_batch = 512, .sparse = PINFER_SPARSE_OFF,
                                   .sparsity_target = 0.5f, .sparse_verify = false,
                                   .io_backend = PINFER_IO_AUTO, .cache_hot = -1 };
    return p;
}

void pf_ctx_set_ffn_hook(struct pinfer_ctx *c, pf_ffn_hook fn, void *ud) { c->ffn_hook = fn; c->ffn_ud = ud; }
void pf_ctx_set_ffn_io_hook(struct pinfer_ctx *c, pf_ffn_io_hook fn, void *ud) { c->ffn_io_hook = fn; c->ffn_io_ud = ud; }
void pf_ctx_set_layer_hook(struct pinfer_ctx *c, pf_layer_hook fn, void *ud) { c->layer_hook = fn; c->layer_ud = ud; }
void pf_ctx_set_attn_hook(struct pinfer_ctx *c, pf_attn_hook fn, void *ud) { c->attn_hook = fn; c->attn_ud = ud; }

static void *alloc_array(size_t n, size_t size, size_t *total)
{
    size_t bytes;
    if (ck_mul(n, size, &bytes) || bytes == 0) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    if (total) *total += bytes;
    return p;
}

/* Under a memory budget: the per-step lists of the offloaded FFN, then the segment plan for
 * what is left of the budget once the model's resident weights and this context's buffers
 * (total bytes so far) are counted, and the neuron cache. */
static int offload_init(struct pinfer_ctx *c, const struct pinfer_ctx_params *p, size_t total)
{
    const struct pinfer_model *m = c->m;
    const size_t F = (size_t)m->info.n_ff;
    if ((size_t)m->head_dim * (size_t)m->info.n_head < (size_t)m->info.n_embd)
        return pf_fail(PINFER_EUNSUPPORTED, "a memory budget needs n_head x head_dim >= n_embd");
    size_t bytes = F * 3 * sizeof(void *) + F * sizeof(int);
    char *mem = malloc(bytes);
    if (!mem) return pf_fail(PINFER_ENOMEM, "out of memory");
    c->off_mem = mem;
    c->off_slotp = (const uint8_t **)(void *)mem; mem += F * sizeof(void *);
    c->off_was = (const uint8_t **)(void *)mem;   mem += F * sizeof(void *);
    c->off_mptr = (const uint8_t **)(void *)mem;  mem += F * sizeof(void *);
    c->off_miss = (int *)(void *)mem;
    total += bytes;
    total += (size_t)c->n_threads * (256u << 10); /* thread stacks actually touched, roughly */
    struct pf_cache_plan plan;
    /* reading the next layer ahead is opt-in: on the Mistral-7B shape it cost more than it hid
       (bench/RESULTS.md: the step's own reads queue behind it; the attention it overlaps is short) */
    const char *pe = getenv("PINFER_PREFETCH");
    const bool prefetch = p->sparse == PINFER_SPARSE_PREDICTOR && m->info.has_predictors && pe && *pe && strcmp(pe, "0");
    int rc = pf_cache_plan(m, total, p->cache_hot, prefetch, &plan);
    if (rc) return rc;
    rc = pf_cache_new(&c->cache, m, &plan, (enum pf_io_backend)p->io_backend);
    return rc;
}

int pinfer_ctx_new(struct pinfer_ctx **out, struct pinfer_model *m, const struct pinfer_ctx_params *params)
{
    struct pinfer_ctx_params p = params ? *params : pinfer_ctx_default_params();
    const struct pinfer_model_info *h = &m->info;
    *out = NULL;
    if (!m->layers) return pf_fail(PINFER_EINVAL, "model was loaded vocab-only");
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0)
        return pf_fail(PINFER_EINVAL, "negative context, batch or thread count");
    int rc = pf_sparse_check_params(m, &p);
    if (rc) return rc;
    if (p.n_ctx == 0) p.n_ctx = h->n_ctx_train < 4096 ? h->n_ctx_train : 4096;
    if (p.n_ctx > (1 << 22)) return pf_fail(PINFER_EINVAL, "context of %d tokens is too large", p.n_ctx);
    if (p.n_batch == 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    if (p.n_threads == 0) p.n_threads = pf_cpu_count();

    struct pinfer_ctx *c = calloc(1, sizeof *c);
    if (!c) return pf_fail(PINFER_ENOMEM, "out of memory");
    c->m = m;
    c->n_ctx = p.n_ctx;
    c->n_batch = p.n_batch;
    c->n_threads = p.n_threads;
    c->kern = pf_kernels();
    c->sparse = p.sparse;
    c->sparsity_target = p.sparsity_target;
    c->verify = p.sparse_verify;
    c->ideal_every = pf_sparse_ideal_every();
    rc = pf_pool_new(&c->pool, p.n_threads);
    if (rc) { free(c); return rc; }

    size_t B = (size_t)p.n_batch, E = (size_t)h->n_embd, F = (size_t)h->n_ff, D = (size_t)m->head_dim;
    size_t Q = D * (size_t)h->n_head, KV = D * (size_t)h->n_head_kv, T = (size_t)p.n_threads;
    size_t cache_elems, total = 0;
    if (ck_mul((size_t)h->n_layer * KV, (size_t)p.n_ctx, &cache_elems)) goto nomem;
    c->k_cache = alloc_array(cache_elems, 2, &total);
    c->v_cache = alloc_array(cache_elems, 2, &total);
    c->x = alloc_array(B, E * 4, &total);
    c->xb = alloc_array(B, (E > Q ? E : Q) * 4, &total);
    c->q = alloc_array(B, Q * 4, &total);
    c->k = alloc_array(B, KV * 4, &total);
    c->v = alloc_array(B, KV * 4, &total);
    c->hg = alloc_array(B, F * 4, &total);
    c->hu = alloc_array(B, F * 4, &total);
    c->rope = alloc_array(B, (size_t)h->n_rot * 4, &total);
    c->att = alloc_array(T, (size_t)p.n_ctx * 4, &total);
    c->att16 = alloc_array(T, ((size_t)p.n_ctx > D ? (size_t)p.n_ctx : D) * 2, &total);
    c->logits = alloc_array(B, (size_t)h->n_vocab * 4, &total);
    /* scratch: the largest activation conversion any matmul of this model needs (weights a
     * prepared model lacks have n_in == 0) */
    size_t sc = 0, rank = 1;
#define NEED(w, nt) do { if ((w)->n_in > 0) { size_t s_ = pf_matmul_scratch_size((w)->type, (w)->n_in, (nt)); if (s_ > sc) sc = s_; } } while (0)
    NEED(&m->output, p.n_batch);
    for (int l = 0; l < h->n_layer; l++) {
        const struct pf_layer *L = &m->layers[l];
        NEED(&L->wq, p.n_batch); NEED(&L->wk, p.n_batch); NEED(&L->wv, p.n_batch); NEED(&L->wo, p.n_batch);
        NEED(&L->ffn_gate, p.n_batch); NEED(&L->ffn_up, p.n_batch); NEED(&L->ffn_down, p.n_batch);
        if (L->ffn_b) {
            size_t s = pf_bundle_scratch_size(L->ffn_b, p.n_batch);
            if (s > sc) sc = s;
            NEED(&L->ffn_b->fc1, 1);
            NEED(&L->ffn_b->fc2, 1);
            if ((size_t)L->ffn_b->fc1.n_out > rank) rank = (size_t)L->ffn_b->fc1.n_out;
        }
    }
#undef NEED
    c->scratch = sc == SIZE_MAX ? NULL : alloc_array(sc ? sc : 64, 1, &total);
    /* sparse FFN state */
    c->ypart = alloc_array((size_t)pf_dec_parts(p.n_threads), E * 4, &total);
    c->panel = m->bundles ? alloc_array(T, PF_PANEL_FLOATS * sizeof(float), &total) : NULL;
    c->pred_h = alloc_array(rank, 4, &total);
    c->pred_logit = alloc_array(F, 4, &total);
    c->thresh = alloc_array((size_t)h->n_layer, 4, &total);
    c->hist = p.sparse == PINFER_SPARSE_THRESHOLD ? calloc((size_t)h->n_layer * PF_HIST_BINS, sizeof *c->hist) : NULL;
    c->cnt = alloc_array(T, sizeof *c->cnt, &total);
    c->dec = m->bundles ? pf_dec_new(p.n_threads, h->n_ff) : NULL;
    c->lstats = calloc((size_t)h->n_layer, sizeof *c->lstats);
    if (!c->k_cache || !c->v_cache || !c->x || !c->xb || !c->q || !c->k || !c->v || !c->hg ||
        !c->hu || !c->rope || !c->att || !c->att16 || !c->logits || !c->scratch || !c->ypart ||
        (m->bundles && !c->panel) || !c->pred_h || !c->pred_logit || !c->thresh ||
        (p.sparse == PINFER_SPARSE_THRESHOLD && !c->hist) || !c->cnt || !c->lstats || (m->bundles && !c->dec))
        goto nomem;
    for (int l = 0; l < h->n_layer; l++) c->thresh[l] = 0;
    if (m->mem_budget && (rc = offload_init(c, &p, total))) { pinfer_ctx_free(c); return rc; }
    *out = c;
    return 0;
nomem:
    pinfer_ctx_free(c);
    return pf_fail(PINFER_ENOMEM, "cannot allocate a context of %d tokens (KV cache %.1f MiB)", p.n_ctx,
                   (double)h->n_layer * (double)KV * p.n_ctx * 4 / (1 << 20));
}

void pinfer_ctx_free(struct pinfer_ctx *c)
{
    if (!c) return;
    pf_cache_free(c->cache);
    free(c->off_mem);
    pf_pool_free(c->pool);
    free(c->k_cache); free(c->v_cache); free(c->x); free(c->xb); free(c->q); free(c->k);
    free(c->v); free(c->hg); free(c->hu); free(c->rope); free(c->att); free(c->att16);
    free(c->logits); free(c->scratch);
    free(c->ypart); free(c->panel); free(c->pred_h); free(c->pred_logit); free(c->thresh);
    free(c->hist); free(c->cnt); free(c->lstats);
    pf_dec_free(c->dec);
    free(c);
}

void pinfer_ctx_reset(struct pinfer_ctx *c) { c->n_logits = 0; }
int pinfer_ctx_n_ctx(const struct pinfer_ctx *c) { return c->n_ctx; }

const float *pinfer_ctx_logits(const struct pinfer_ctx *c, int i)
{
    if (c->n_logits == 0) return NULL;
    if (i < 0) return c->logits + (size_t)(c->n_logits - 1) * c->m->info.n_vocab;
    i -= c->logits_first;
    if (i < 0 || i >= c->n_logits) return NULL;
    return c->logits + (size_t)i * c->m->info.n_vocab;
}

/* ==== Small operations ==== */

void pf_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

/* cos/sin of theta_i = pos * base^(-2i/n_rot) for every token of the batch. */
static void rope_table(float *tab, int pos0, int n_tok, int n_rot, float base)
{
    float theta_scale = powf(base, -2.0f / (float)n_rot);
    for (int t = 0; t < n_tok; t++) {
        float theta = (float)(pos0 + t);
        float *r = tab + (size_t)t * n_rot;
        for (int i = 0; i < n_rot / 2; i++) {
            r[2 * i] = cosf(theta);
            r[2 * i + 1] = sinf(theta);
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
    int layer, n_tok, pos0;
};

/* One (token, head) pair: scores over the visible cache, softmax, weighted sum of V. */
static void attn_one(struct pinfer_ctx *c, int layer, int t, int h, int pos, int ith)
{
    const struct pinfer_model *m = c->m;
    const int D = m->head_dim, n_ctx = c->n_ctx, kvh = h / (m->info.n_head / m->info.n_head_kv);
    const pf_dot_fn dot16 = c->kern->dot[PF_TYPE_F16];
    const pf_from_f32_fn to16 = c->kern->from_f32[PF_TYPE_F16];
    size_t cache_off = ((size_t)layer * m->info.n_head_kv + kvh) * (size_t)n_ctx * D;
    const uint16_t *K = c->k_cache + cache_off, *Vt = c->v_cache + cache_off;
    float *sc = c->att + (size_t)ith * n_ctx;
    uint16_t *s16 = c->att16 + (size_t)ith * (n_ctx > D ? n_ctx : D);
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
        attn_one(a->c, a->layer, t, h, a->pos0 + t, ith);
    }
}

/* Stores the batch's k (after RoPE) and v into the F16 cache at positions pos0.. */
static void kv_store(struct pinfer_ctx *c, int layer, int n_tok, int pos0)
{
    const struct pinfer_model *m = c->m;
    const int D = m->head_dim, HKV = m->info.n_head_kv;
    const size_t n_ctx = (size_t)c->n_ctx;
    for (int t = 0; t < n_tok; t++) {
        size_t pos = (size_t)(pos0 + t);
        for (int h = 0; h < HKV; h++) {
            size_t off = ((size_t)layer * HKV + h) * n_ctx * D;
            const float *k = c->k + ((size_t)t * HKV + h) * D, *v = c->v + ((size_t)t * HKV + h) * D;
            c->kern->from_f32[PF_TYPE_F16](k, c->k_cache + off + pos * D, D);
            uint16_t *vt = c->v_cache + off;
            for (int d = 0; d < D; d++) vt[(size_t)d * n_ctx + pos] = pf_fp32_to_fp16(v[d]);
        }
    }
}

/* ==== The forward pass ==== */

static void mm(struct pinfer_ctx *c, float *y, const struct pf_weight *w, const float *x, int n_tok)
{
    pf_matmul(c->pool, y, w->data, w->type, w->n_in, w->n_out, x, n_tok, c->scratch);
}

int pinfer_decode(struct pinfer_ctx *c, const int32_t *tokens, int n, int pos, bool all_logits)
{
    struct pinfer_model *m = c->m;
    const struct pinfer_model_info *h = &m->info;
    const int E = h->n_embd, D = m->head_dim, Q = D * h->n_head, KV = D * h->n_head_kv;
    if (n <= 0 || n > c->n_batch)
        return pf_fail(PINFER_EINVAL, "batch of %d tokens (allowed 1..%d)", n, c->n_batch);
    if (pos < 0 || pos > c->n_ctx - n)
        return pf_fail(PINFER_ERANGE, "positions %d..%d do not fit the context of %d tokens", pos, pos + n - 1, c->n_ctx);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= h->n_vocab)
            return pf_fail(PINFER_EINVAL, "token id %d is outside the vocabulary (0..%d)", tokens[t], h->n_vocab - 1);
    if (c->io_error)
        return pf_fail(c->io_error, "an earlier read of the model failed; this context cannot go on");

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
    rope_table(c->rope, pos, n, h->n_rot, h->rope_freq_base);
    /* threshold mode, first single-token step: cut from what the prompt showed, or, with
     * nothing seen yet, run this step dense and calibrate on it */
    bool self_calib = false;
    if (n == 1 && c->sparse == PINFER_SPARSE_THRESHOLD && !c->thresh_ready && !c->calibrating) {
        if (pf_hist_total(c) > 0) pf_thresh_finish(c);
        else c->calibrating = self_calib = true;
    }
    if (n == 1) c->n_sparse_tokens++;

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
        kv_store(c, l, n, pos);
        struct attn_task at = { c, l, n, pos };
        if (c->attn_hook) pf_pool_run(NULL, attn_task_fn, &at); /* hooks see one thread */
        else pf_pool_run(c->pool, attn_task_fn, &at);
        PHASE(PF_PH_ATTN);
        mm(c, c->q, &L->wo, c->xb, n); /* q is free again; q_dim == n_embd for llama */
        PHASE(PF_PH_ATTN_MM);
        for (size_t i = 0; i < (size_t)n * E; i++) c->x[i] += c->q[i];

        /* feed-forward */
        for (int t = 0; t < n; t++) pf_rmsnorm(c->xb + (size_t)t * E, c->x + (size_t)t * E, L->ffn_norm, E, h->norm_eps);
        SKIP();
        pf_ffn(c, l, n); /* src/sparse/ffn.c: x += FFN(xb); the predictor's share is timed there */
        PHASE(PF_PH_FFN);
        if (c->io_error) break;
        if (c->cache && n == 1 && l + 1 < h->n_layer) pf_offload_prefetch(c, l + 1);
        if (c->layer_hook) c->layer_hook(c->layer_ud, l, c->x, n, E);
    }

    if (c->io_error) {
        c->n_logits = 0;
        return pf_fail_context(c->io_error, "reading the model's FFN from %s", m->path);
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
    if (self_calib) {
        c->calibrating = false;
        pf_thresh_finish(c);
    }
    c->n_logits = rows;
    c->logits_first = first;
    return 0;
}
