/* The mixture-of-experts FFN (moe.h): a router and per-expert FFNs, dense within each expert.
 *
 * One token: router, route, then the chosen experts' gate, up, activation and down, each a
 * pf_matmul on one row: only those experts' weights are read. On a prepared mixture each expert
 * is a set of neuron bundles with its own predictor (model.h: units): a single-token step runs
 * the context's sparse mode on each chosen expert (decode.c), a batch each expert's bundles
 * dense (bundle_mm.c), as for a dense layer. A batch: the router on all rows,
 * then for each expert the rows routed to it gathered into one block, its three products run
 * on the block (the gemm kernels, the expert's weights read once for the whole batch), the
 * outputs scattered back to (token, choice). Both paths then sum each token's choices in
 * routing order, as llama.cpp does; the single-token path applied token by token is the
 * reference (pf_ffn_moe_ref) the grouped batch is tested against. */
#include "ffn/moe.h"

#include "ffn/ffn_internal.h"

#include "cache/cache.h"
#include "core/checked.h"
#include "core/error.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== Routing ==== */

void pf_moe_route(const float *logits, int n_expert, int k, int *sel, float *w)
{
    float p[PF_MOE_MAX_EXPERTS];
    int order[PF_MOE_MAX_EXPERTS];
    /* softmax as ggml_soft_max: exp(x - max), the sum in double, scaled by its inverse */
    float mx = -INFINITY;
    for (int e = 0; e < n_expert; e++) mx = logits[e] > mx ? logits[e] : mx;
    double sum = 0;
    for (int e = 0; e < n_expert; e++) sum += (double)(p[e] = expf(logits[e] - mx));
    const float inv = (float)(1.0 / sum);
    for (int e = 0; e < n_expert; e++) { p[e] *= inv; order[e] = e; }
    /* the first k steps of ggml_compute_forward_argsort_f32 (descending): its selection sort
       swaps position j with a later position holding a strictly larger value */
    for (int j = 0; j < k; j++)
        for (int q = j + 1; q < n_expert; q++)
            if (p[order[j]] < p[order[q]]) { int t = order[j]; order[j] = order[q]; order[q] = t; }
    /* norm_w: the chosen probabilities over their sum (ggml_sum_rows, then ggml_div) */
    double s = 0;
    for (int j = 0; j < k; j++) { sel[j] = order[j]; s += (double)p[order[j]]; }
    for (int j = 0; j < k; j++) w[j] = p[sel[j]] / (float)s;
}

/* ==== Working memory ==== */

size_t pf_moe_buf_size(const struct pinfer_model *m, int n_batch)
{
    const struct pinfer_model_info *h = &m->info;
    if (!h->n_expert) return 0;
    const size_t B = (size_t)n_batch, X = (size_t)h->n_expert, K = (size_t)h->n_expert_used, E = (size_t)h->n_embd;
    size_t per_tok = 0, total;
    /* logits, sel, w, tok, xg, yg, ys (each part rounded up to 16 floats) */
    const size_t parts[7] = { X, K, K, 1, E, E, K * E };
    for (int i = 0; i < 7; i++) per_tok += (parts[i] + 15) / 16 * 16 * 4;
    if (ck_mul(per_tok, B, &total) || ck_add(total, (K + 15) / 16 * 16 * 4, &total)) return SIZE_MAX; /* + the guess */
    return total;
}

void pf_moe_bind(struct pf_ffn *f, void *mem)
{
    const struct pinfer_model_info *h = &f->m->info;
    const size_t B = (size_t)f->n_batch, X = (size_t)h->n_expert, K = (size_t)h->n_expert_used, E = (size_t)h->n_embd;
    char *p = mem;
#define TAKE(field, type, n) do { f->field = (type *)(void *)p; p += (n + 15) / 16 * 16 * 4 * B; } while (0)
    TAKE(moe_logits, float, X);
    TAKE(moe_sel, int, K);
    TAKE(moe_w, float, K);
    TAKE(moe_tok, int, 1);
    TAKE(moe_xg, float, E);
    TAKE(moe_yg, float, E);
    TAKE(moe_ys, float, K * E);
#undef TAKE
    f->moe_guess = (int *)(void *)p;
}

/* ==== The FFN ==== */

/* Router and routing of n rows of xb into f->moe_sel, f->moe_w. */
static void route_rows(struct pf_ffn *f, int l, const float *xb, int n)
{
    const struct pinfer_model_info *h = &f->m->info;
    const int X = h->n_expert, K = h->n_expert_used;
    pf_ffn_mm(f, f->moe_logits, &f->m->layers[l].ffn_router, xb, n);
    for (int t = 0; t < n; t++)
        pf_moe_route(f->moe_logits + (size_t)t * X, X, K, f->moe_sel + (size_t)t * K, f->moe_w + (size_t)t * K);
    if (f->route_hook) f->route_hook(f->moe_hook_ud, l, f->moe_sel, f->moe_w, n, K);
}

/* The expert hook, with act (n rows of n_ff) in slot order when perm is set (un-permuted into
 * tmp first). */
static void call_expert_hook(struct pf_ffn *f, int l, int e, const float *in, const float *act, const int32_t *perm,
                             float *tmp, int n)
{
    if (!f->expert_hook) return;
    const struct pinfer_model_info *h = &f->m->info;
    act = pf_ffn_unpermute(act, perm, tmp, n, h->n_ff);
    f->expert_hook(f->moe_hook_ud, l, e, f->moe_tok, h->n_expert_used, in, h->n_embd, act, h->n_ff, n);
}

/* out (n rows of n_embd) = down(act(gate in) * up in) of expert e of layer l, for the choices
 * f->moe_tok[0..n); hg, hu as scratch. step: a single-token step, which on bundles runs the
 * context's sparse mode (decode.c; under a budget offload.c, the expert's slots from the neuron
 * cache, unit l * n_expert + e) and counts; a batch is dense, as a dense layer's is (under a
 * budget the expert's unit streamed from the file). 0 or a negative code (a read failed). */
static int expert_ffn(struct pf_ffn *f, int l, int e, const float *in, float *out, int n, bool step)
{
    const struct pf_layer *L = &f->m->layers[l];
    const struct pinfer_model_info *h = &f->m->info;
    const size_t F = (size_t)h->n_ff;
    const int u = l * h->n_expert + e;
    if (L->ffn_b && step) {
        const struct pf_bundles *b = &L->ffn_b[e];
        float *xb = f->xb;
        f->xb = (float *)in; /* what the decode step reads */
        int rc = 0;
        if (f->cache) rc = pf_ffn_offload_decode(f, l, u, b, out);
        else pf_ffn_bundle_decode(f, l, b, out);
        f->xb = xb;
        if (rc) return rc;
        pf_ffn_add_counts(f, l);
        call_expert_hook(f, l, e, in, f->hg, b->perm, f->hu, 1);
    } else if (L->ffn_b && f->cache) {
        return pf_ffn_offload_unit_batch(f, l, u, &L->ffn_b[e], in, n, out, false); /* no hooks under a budget */
    } else if (L->ffn_b) {
        const struct pf_bundles *b = &L->ffn_b[e];
        pf_bundle_gate_up(f->pool, f->kern, b, in, n, f->hg, f->hu, f->scratch);
        pf_act_apply(f->hg, f->hu, (size_t)n * F, h->act);
        call_expert_hook(f, l, e, in, f->hg, b->perm, f->hu, n);
        pf_bundle_down(f->pool, f->kern, b, f->hg, n, out, f->panel, false);
    } else {
        const struct pf_expert *x = &L->exp[e];
        pf_ffn_mm(f, f->hg, &x->gate, in, n);
        pf_ffn_mm(f, f->hu, &x->up, in, n);
        pf_act_apply(f->hg, f->hu, (size_t)n * F, h->act);
        call_expert_hook(f, l, e, in, f->hg, NULL, NULL, n);
        pf_ffn_mm(f, out, &x->down, f->hg, n);
    }
    return 0;
}

/* x[t] += sum_j w[t][j] * ys[t][j] for t < n, j in routing order (llama.cpp: the weighted
 * outputs, then added one after another). */
static void combine(struct pf_ffn *f, float *x, int n)
{
    const size_t E = (size_t)f->m->info.n_embd, K = (size_t)f->m->info.n_expert_used;
    for (size_t t = 0; t < (size_t)n; t++) {
        const float *w = f->moe_w + t * K, *ys = f->moe_ys + t * K * E;
        for (size_t i = 0; i < E; i++) {
            float acc = 0;
            for (size_t j = 0; j < K; j++) acc += w[j] * ys[j * E + i];
            x[t * E + i] += acc;
        }
    }
}

/* One token: its chosen experts only. step: a single-token step (sparse modes apply). */
static int moe_token(struct pf_ffn *f, int l, const float *xb, float *x, bool step)
{
    const int K = f->m->info.n_expert_used;
    const size_t E = (size_t)f->m->info.n_embd;
    route_rows(f, l, xb, 1);
    if (step && f->moe_guess_layer == l) { /* how many of the experts guessed ahead it chose */
        for (int j = 0; j < K; j++)
            for (int i = 0; i < K; i++) f->moe_guess_hits += f->moe_guess[j] == f->moe_sel[i];
        f->moe_guesses += (uint64_t)K;
        f->moe_guess_layer = -1;
    }
    int rc = 0;
    for (int j = 0; j < K && !rc; j++) {
        f->moe_tok[0] = j;
        rc = expert_ffn(f, l, f->moe_sel[j], xb, f->moe_ys + (size_t)j * E, 1, step);
    }
    /* the read-ahead was for one of this layer's experts (adopted by its step whichever place
       the router gave it), or for one it did not choose: spent either way */
    int rc2 = f->cache ? pf_cache_read_ahead_drop(f->cache) : 0;
    if (rc) return rc;
    if (rc2) return rc2;
    combine(f, x, 1);
    return 0;
}

/* A batch grouped by expert: each expert that any row chose runs once on all of its rows. */
static int moe_batch(struct pf_ffn *f, int l, const float *xb, float *x, int n)
{
    const int X = f->m->info.n_expert, K = f->m->info.n_expert_used;
    const size_t E = (size_t)f->m->info.n_embd;
    route_rows(f, l, xb, n);
    for (int e = 0; e < X; e++) {
        int cnt = 0; /* a token chooses an expert at most once, so at most n rows */
        for (int t = 0; t < n; t++)
            for (int j = 0; j < K; j++)
                if (f->moe_sel[t * K + j] == e) f->moe_tok[cnt++] = t * K + j;
        if (!cnt) continue; /* not read at all */
        const float *in = xb; /* every row chose e: they are xb's rows in order */
        if (cnt < n) {
            for (int i = 0; i < cnt; i++) memcpy(f->moe_xg + (size_t)i * E, xb + (size_t)(f->moe_tok[i] / K) * E, E * 4);
            in = f->moe_xg;
        }
        int rc = expert_ffn(f, l, e, in, f->moe_yg, cnt, false);
        if (rc) return rc;
        for (int i = 0; i < cnt; i++) memcpy(f->moe_ys + (size_t)f->moe_tok[i] * E, f->moe_yg + (size_t)i * E, E * 4);
    }
    combine(f, x, n);
    return 0;
}

int pf_ffn_moe(struct pf_ffn *f, int l, int n)
{
    if (n == 1) return moe_token(f, l, f->xb, f->x, true);
    return moe_batch(f, l, f->xb, f->x, n);
}

int pf_moe_prefetch(struct pf_ffn *f, int l, const float *xn)
{
    const struct pinfer_model_info *h = &f->m->info;
    const int X = h->n_expert, K = h->n_expert_used;
    float w[PF_MOE_MAX_EXPERTS];
    pf_ffn_mm(f, f->moe_logits, &f->m->layers[l].ffn_router, xn, 1);
    pf_moe_route(f->moe_logits, X, K, f->moe_guess, w);
    f->moe_guess_layer = l;
    /* the read-ahead area holds one unit's slots: the first guess's */
    const int e = f->moe_guess[0];
    return pf_ffn_offload_prefetch(f, l * X + e, &f->m->layers[l].ffn_b[e], xn);
}

void pf_ffn_moe_ref(struct pf_ffn *f, int l, float *xb, float *x, int n)
{
    const size_t E = (size_t)f->m->info.n_embd;
    for (int t = 0; t < n; t++) (void)moe_token(f, l, xb + (size_t)t * E, x + (size_t)t * E, false); /* in memory: no reads */
}
