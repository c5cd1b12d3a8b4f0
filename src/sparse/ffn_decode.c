/* Single-token FFN on bundles: the sparse decode step (and the dense one, mode off).
 *
 *   1. predictor mode: logit = fc2 · relu(fc1 · x) with the forward pass's matmuls; slot j is a
 *      candidate when logit_j > the layer's threshold (exactly what prepare evaluated);
 *   2. x is converted once into the dot format of the FFN type;
 *   3. threads walk the clusters, cluster c going to thread c mod n_threads, in three stages per
 *      cluster: the gate dots of its candidates (gather_dot: several rows at once); the up dots of
 *      those the mode's rule lets through; then the list of down rows of the neurons whose
 *      activation h is not zero. That list is added into the thread's partial output
 *      (y_t += h_j * down_j, kernel down_accum, slot order) only after the next cluster's gate
 *      and up stages, so its rows can be prefetched meanwhile;
 *   4. out = y_0 + y_1 + ... in thread order.
 *
 * Rules (the activation h = act(g, u)):
 *   off        every slot: gate and up, and every down row (h == 0 included): the dense FFN
 *   oracle     every gate; ReLU family: up only if g > 0; down only if h != 0
 *   predictor  candidates only, then as oracle
 *   threshold  every gate; up and down only if |act(g)| >= the layer's cut (and as oracle)
 * Why oracle == off exactly: both run the same per-neuron operations (gather_dot computes each
 * row alone, whatever rows share its call), with the same cluster to thread assignment, in the
 * same order, and a skipped neuron's term is h * w = ±0, which leaves every partial sum
 * unchanged (y + ±0 == y for any y; only the sign of an exact zero can differ, which compares
 * equal and changes no later result).
 *
 * Memory: a slot is gate | up | down, so a neuron that fires costs one contiguous 3-row read.
 * The kernels keep a steady stream of prefetches going (prefetch.h): the next cluster's
 * candidate rows, and before them the down rows of the cluster just decided. No allocation per
 * token: per-thread lists (pf_dec_thread) and partial outputs live in the context. */
#include "sparse/decode.h"

#include "core/checked.h"
#include "sparse/sparse_kernels.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pf_dec_thread *pf_dec_threads_new(int n, int cs)
{
    struct pf_dec_thread *d = calloc((size_t)n, sizeof *d);
    /* per stage: idx, up (int); g, u, dh (float); drow (pointer); plus the shared row list */
    const size_t per_stage = 2 * sizeof(int) + 3 * sizeof(float) + sizeof(void *);
    size_t per;
    if (!d || ck_mul((size_t)cs, PF_DEC_STAGES * per_stage + sizeof(void *), &per)) { free(d); return NULL; }
    for (int i = 0; i < n; i++) {
        char *m = malloc(per);
        if (!m) { pf_dec_threads_free(d, n); return NULL; }
        d[i].mem = m;
        /* pointers first, then 4-byte items: every array stays aligned */
        d[i].rows = (const void **)(void *)m;
        m += (size_t)cs * sizeof(void *);
        for (int k = 0; k < PF_DEC_STAGES; k++) {
            struct pf_dec_cluster *q = &d[i].st[k];
            q->drow = (const void **)(void *)m; m += (size_t)cs * sizeof(void *);
        }
        for (int k = 0; k < PF_DEC_STAGES; k++) {
            struct pf_dec_cluster *q = &d[i].st[k];
            q->g = (float *)(void *)m;  m += (size_t)cs * sizeof(float);
            q->u = (float *)(void *)m;  m += (size_t)cs * sizeof(float);
            q->dh = (float *)(void *)m; m += (size_t)cs * sizeof(float);
            q->idx = (int *)(void *)m;  m += (size_t)cs * sizeof(int);
            q->up = (int *)(void *)m;   m += (size_t)cs * sizeof(int);
        }
    }
    return d;
}

void pf_dec_threads_free(struct pf_dec_thread *d, int n)
{
    if (!d) return;
    for (int i = 0; i < n; i++) free(d[i].mem);
    free(d);
}

/* Queues the candidate rows of cluster cl for prefetching. */
static void push_cluster(const struct dec_task *t, struct pf_pq *pq, int cl)
{
    const char *base = t->b->data;
    for (int j = cl * t->cluster_size, e = cluster_end(t, cl); j < e; j++)
        if (is_candidate(t, j)) pf_pq_push_ahead(pq, base + (size_t)j * t->b->slot_size, t->pf_rows * t->b->row_size);
}

/* Stage 1 of cluster cl: gate dots of its candidates; queues the up rows stage 2 will read. */
static void stage_gates(const struct dec_task *t, struct pf_dec_thread *w, struct pf_dec_cluster *q, int cl)
{
    const struct pf_bundles *b = t->b;
    const char *base = b->data;
    const size_t slot = b->slot_size, rs = b->row_size;
    const bool off = t->mode == PINFER_SPARSE_OFF;
    float *hout = t->c->hg;
    const int j0 = cl * t->cluster_size, j1 = cluster_end(t, cl);
    q->cl = cl;
    q->ng = q->nu = q->nd = 0;
    for (int j = j0; j < j1; j++) {
        if (is_candidate(t, j)) { q->idx[q->ng] = j; w->rows[q->ng++] = base + (size_t)j * slot; }
        else hout[j] = 0;
    }
    if (q->ng) t->sk->gather_dot[b->type](t->kt, w->rows, q->ng, t->xa, b->n_embd, q->g, &w->pq);
    for (int i = 0; i < q->ng; i++) {
        float g = q->g[i];
        bool pass = off || !t->relu || g > 0;
        if (!off && t->mode == PINFER_SPARSE_THRESHOLD && !(fabsf(pf_act_gate(t->act, g)) >= t->cut)) pass = false;
        if (!pass) continue;
        q->up[q->nu++] = i;
        pf_pq_push_urgent(&w->pq, base + (size_t)q->idx[i] * slot + rs, rs);
    }
}

/* Stage 2: up dots, activations, the down list (its rows queued for stage 3), counters. */
static void stage_ups(const struct dec_task *t, struct pf_dec_thread *w, struct pf_dec_cluster *q, struct pf_sparse_count *k)
{
    const struct pf_bundles *b = t->b;
    const int E = b->n_embd;
    const char *base = b->data;
    const size_t slot = b->slot_size, rs = b->row_size;
    float *hout = t->c->hg, *gout = t->c->hu;
    pf_gather_dot_fn gather = t->sk->gather_dot[b->type];
    for (int i = 0; i < q->nu; i++) w->rows[i] = base + (size_t)q->idx[q->up[i]] * slot + rs;
    if (q->nu) gather(t->kt, w->rows, q->nu, t->xa, E, q->u, &w->pq);
    for (int i = 0, ui = 0; i < q->ng; i++) {
        const int j = q->idx[i];
        const char *s = base + (size_t)j * slot;
        const float g = q->g[i];
        const bool upd = ui < q->nu && q->up[ui] == i;
        const float u = upd ? q->u[ui++] : 0;
        const float h = upd ? pf_act_full(t->act, g, u) : 0;
        if (t->verify) {
            /* the dense activation of this neuron, for recall and precision */
            float ut = u;
            const void *ur = s + rs;
            if (!upd) gather(t->kt, &ur, 1, t->xa, E, &ut, NULL);
            float full = pf_act_full(t->act, g, ut);
            if (full != 0) {
                k->true_active++;
                k->mass_all += fabsf(full);
                if (h != 0) { k->hit++; k->mass_kept += fabsf(full); }
            }
        }
        if (h != 0) k->active++;
        if (t->want_gates) gout[j] = g;
        hout[j] = h;
        if (h != 0 || t->mode == PINFER_SPARSE_OFF) {
            q->drow[q->nd] = s + 2 * rs;
            q->dh[q->nd++] = h;
            pf_pq_push_urgent(&w->pq, s + 2 * rs, rs);
        }
    }
    k->gate += (uint32_t)q->ng;
    k->up += (uint32_t)q->nu;
    k->down += (uint32_t)q->nd;
    if (q->ng) k->clusters++;
    if (t->mode == PINFER_SPARSE_PREDICTOR) {
        k->predicted += (uint32_t)q->ng;
        if (t->verify)
            /* neurons the predictor left out: were they active? */
            for (int j = q->cl * t->cluster_size, e = cluster_end(t, q->cl); j < e; j++) {
                if (is_candidate(t, j)) continue;
                const void *gu[2] = { base + (size_t)j * slot, base + (size_t)j * slot + rs };
                float r[2];
                gather(t->kt, gu, 2, t->xa, E, r, NULL);
                float full = pf_act_full(t->act, r[0], r[1]);
                if (full != 0) { k->true_active++; k->mass_all += fabsf(full); }
            }
    }
}

/* The clusters of thread ith flow through the stages one step apart: at step s, cluster
 * s computes its gates, cluster s-1 its ups and cluster s-2 adds its down rows, so the up and
 * down rows a stage will read are prefetched during the previous stage's work. The down sums
 * still run in cluster order. */
static void dec_fn(void *arg, int ith, int nth)
{
    const struct dec_task *t = arg;
    struct pinfer_ctx *c = t->c;
    const struct pf_bundles *b = t->b;
    const int E = b->n_embd;
    float *y = c->ypart + (size_t)ith * (size_t)E;
    struct pf_dec_thread *w = &c->dec[ith];
    pf_down_accum_fn accum = t->sk->down_accum[b->type];
    struct pf_sparse_count k;
    memset(&k, 0, sizeof k);
    memset(y, 0, (size_t)E * sizeof *y);
    pf_pq_reset(&w->pq);
    if (ith < t->n_clusters) push_cluster(t, &w->pq, ith);
    const int n_mine = ith < t->n_clusters ? (t->n_clusters - 1 - ith) / nth + 1 : 0;
    for (int step = 0; step < n_mine + 2; step++) {
        if (step < n_mine) {
            const int cl = ith + step * nth;
            if (cl + nth < t->n_clusters) push_cluster(t, &w->pq, cl + nth);
            stage_gates(t, w, &w->st[step % PF_DEC_STAGES], cl);
        }
        if (step >= 1 && step - 1 < n_mine) stage_ups(t, w, &w->st[(step - 1) % PF_DEC_STAGES], &k);
        if (step >= 2) {
            const struct pf_dec_cluster *q = &w->st[(step - 2) % PF_DEC_STAGES];
            if (q->nd) accum(q->drow, q->dh, q->nd, y, E, &w->pq);
        }
    }
    c->cnt[ith] = k;
}

void pf_dec_setup(struct pinfer_ctx *c, int l, struct dec_task *tp)
{
    const struct pf_bundles *b = c->m->layers[l].ffn_b;
    const struct pinfer_model_info *h = &c->m->info;
    const int E = b->n_embd;
    const struct pf_kernels *k = c->kern;
    struct dec_task t = {
        .c = c, .b = b, .sk = pf_sparse_kernels(), .kt = k, .act = h->act, .relu = pf_act_relu_family(h->act),
        .mode = c->calibrating ? PINFER_SPARSE_OFF : c->sparse,
        .cluster_size = h->cluster_size > 0 ? h->cluster_size : 16,
        .want_gates = c->sparse == PINFER_SPARSE_THRESHOLD && !c->thresh_ready,
    };
    t.verify = c->verify && t.mode != PINFER_SPARSE_OFF;
    t.n_clusters = (b->n_ff + t.cluster_size - 1) / t.cluster_size;
    /* ReLU family: the gate decides whether the up row is read at all (for dReLU at 90%
       sparsity about a third are), so prefetching every candidate's up row would waste more
       bandwidth than it saves; SiLU and dense steps read both */
    t.pf_rows = t.relu && t.mode != PINFER_SPARSE_OFF ? 1 : 2;
    if (t.mode == PINFER_SPARSE_PREDICTOR && c->ideal_every > 0) {
        /* benchmark aid: a perfect predictor's bytes, every k-th slot read whole */
        t.ideal_every = c->ideal_every;
        t.mode = PINFER_SPARSE_OFF;
        t.pf_rows = 2;
    } else if (t.mode == PINFER_SPARSE_PREDICTOR) {
        /* relu(fc1 x) then fc2; scratch is free until x is converted below */
        pf_matmul(c->pool, c->pred_h, b->fc1.data, b->fc1.type, b->fc1.n_in, b->fc1.n_out, c->xb, 1, c->scratch);
        for (int64_t i = 0; i < b->fc1.n_out; i++) c->pred_h[i] = c->pred_h[i] > 0 ? c->pred_h[i] : 0;
        pf_matmul(c->pool, c->pred_logit, b->fc2.data, b->fc2.type, b->fc2.n_in, b->fc2.n_out, c->pred_h, 1, c->scratch);
        t.logit = c->pred_logit;
        t.cut = b->pred_threshold;
    } else if (t.mode == PINFER_SPARSE_THRESHOLD) {
        t.cut = c->thresh[l];
    }
    if (b->type == PF_TYPE_F32) {
        t.xa = c->xb;
    } else {
        void *xa = (void *)(((uintptr_t)c->scratch + 63) & ~(uintptr_t)63);
        if (b->type == PF_TYPE_Q4_0 && k->q4_act && k->q4_matvec) k->q4_act(c->xb, xa, E);
        else k->from_f32[pf_type_get(b->type)->vec_dot_type](c->xb, xa, E);
        t.xa = xa;
    }
    *tp = t;
}

void pf_dec_reduce(struct pinfer_ctx *c, float *out)
{
    const int E = c->m->info.n_embd, nth = c->n_threads;
    memcpy(out, c->ypart, (size_t)E * sizeof *out);
    for (int i = 1; i < nth; i++) {
        const float *p = c->ypart + (size_t)i * (size_t)E;
        for (int e = 0; e < E; e++) out[e] += p[e];
    }
}

/* PERFTMP */
#include <stdio.h>
static double tm_setup, tm_run, tm_red, tm_first, tm_last; static long tm_n;
static void tm_print(void) { fprintf(stderr, "PERFTMP calls %ld setup %.3f run %.3f reduce %.3f wall %.3f s\n", tm_n, tm_setup, tm_run, tm_red, tm_last - tm_first); }
void pf_ffn_bundle_decode(struct pinfer_ctx *c, int l, float *out)
{
    struct dec_task t;
    double t0 = pf_now();
    if (!tm_n++) { tm_first = t0; atexit(tm_print); }
    pf_dec_setup(c, l, &t);
    double t1 = pf_now();
    pf_pool_run(c->pool, dec_fn, &t);
    double t2 = pf_now();
    pf_dec_reduce(c, out);
    double t3 = pf_now();
    tm_setup += t1 - t0; tm_run += t2 - t1; tm_red += t3 - t2; tm_last = t3;
}
