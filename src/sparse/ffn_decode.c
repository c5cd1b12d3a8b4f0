/* Single-token FFN on bundles: the sparse decode step (and the dense one, mode off).
 *
 *   1. predictor mode: logit = fc2 · relu(fc1 · x) with the forward pass's matmuls; slot j is a
 *      candidate when logit_j > the layer's threshold (exactly what prepare evaluated);
 *   2. x is converted once into the dot format of the FFN type;
 *   3. threads walk the clusters, cluster c going to thread c mod n_threads. For each candidate
 *      slot: gate dot; if the mode's rule lets it through, up dot; if the activation h is not
 *      zero, its down row joins the cluster's list, and the list is added into the thread's
 *      partial output y_t with the down_accum kernel (y_t += h_j * down_j, slot order);
 *   4. out = y_0 + y_1 + ... in thread order.
 *
 * Rules (the activation h = act(g, u)):
 *   off        every slot: gate and up, and every down row (h == 0 included): the dense FFN
 *   oracle     every gate; ReLU family: up only if g > 0; down only if h != 0
 *   predictor  candidates only, then as oracle
 *   threshold  every gate; up and down only if |act(g)| >= the layer's cut (and as oracle)
 * Why oracle == off exactly: both run the same per-neuron operations with the same cluster to
 * thread assignment and the same order, and a skipped neuron's term is h * w = ±0, which leaves
 * every partial sum unchanged (y + ±0 == y for any y; only the sign of an exact zero can differ,
 * which compares equal and changes no later result).
 *
 * Memory: a slot is gate | up | down, so a neuron that fires costs one contiguous 3-row read.
 * While one candidate is computed, the gate and up rows of the next are prefetched, and a down
 * row is prefetched as soon as its neuron is known to fire (the list is consumed at the end of
 * the cluster). No allocation: per-thread lists live on the stack, partial outputs in the
 * context. */
#include "sparse/sparse.h"

#include "sparse/sparse_kernels.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Down rows gathered before a down_accum call (a cluster, or part of a large one). */
#define LIST_MAX 64
/* Candidates whose gate (and up) rows are prefetched ahead of the one being computed. */
static int PF_AHEAD = 2;

struct dec_task {
    struct pinfer_ctx *c;
    const struct pf_bundles *b;
    const struct pf_sparse_kernels *sk;
    enum pinfer_sparse_mode mode;
    enum pinfer_act act;
    bool relu, fast, verify, want_gates;
    pf_dot_fn dot;
    const void *xa;
    const float *logit;   /* predictor mode */
    float cut;            /* predictor threshold or threshold-mode cut */
    int cluster_size, n_clusters;
    size_t pf_rows;       /* rows of a candidate slot to prefetch: gate, or gate and up */
};

static inline void prefetch_range(const void *p, size_t n)
{
    const char *s = p;
    for (size_t o = 0; o < n; o += 64) __builtin_prefetch(s + o, 0, 3);
}

/* gate (and up when both) dots of slot s. */
static inline void dots(const struct dec_task *t, const char *s, bool both, float *g, float *u)
{
    const struct pf_bundles *b = t->b;
    if (t->fast) {
        float gu[2];
        t->c->kern->q4_matvec(b->n_embd, both ? 2 : 1, s, b->row_size, t->xa, gu);
        *g = gu[0];
        if (both) *u = gu[1];
        return;
    }
    *g = t->dot(s, t->xa, b->n_embd);
    if (both) *u = t->dot(s + b->row_size, t->xa, b->n_embd);
}

static inline bool is_candidate(const struct dec_task *t, int j)
{
    return t->mode != PINFER_SPARSE_PREDICTOR || t->logit[j] > t->cut;
}

/* Next candidate slot after j within [j, end), or end. */
static inline int next_candidate(const struct dec_task *t, int j, int end)
{
    while (j < end && !is_candidate(t, j)) j++;
    return j;
}

static void dec_fn(void *arg, int ith, int nth)
{
    const struct dec_task *t = arg;
    struct pinfer_ctx *c = t->c;
    const struct pf_bundles *b = t->b;
    const int E = b->n_embd, F = b->n_ff;
    const char *base = b->data;
    const size_t slot = b->slot_size, rs = b->row_size;
    float *y = c->ypart + (size_t)ith * (size_t)E;
    float *hout = c->hg, *gout = c->hu;
    struct pf_sparse_count k;
    memset(&k, 0, sizeof k);
    memset(y, 0, (size_t)E * sizeof *y);
    pf_down_accum_fn accum = t->sk->down_accum[b->type];
    const void *rows[LIST_MAX];
    float hs[LIST_MAX];
    int nl = 0;

    /* a second cursor over this thread's candidates runs PF_AHEAD candidates ahead of the one
       being computed and prefetches their gate (and up) rows; ahead = how far it is ahead (-1:
       not even the first candidate yet) */
    int pcl = ith, pj = ith * t->cluster_size - 1, ahead = -1;
    for (int cl = ith; cl < t->n_clusters; cl += nth) {
        const int j0 = cl * t->cluster_size, j1 = j0 + t->cluster_size < F ? j0 + t->cluster_size : F;
        bool touched = false;
        int j = next_candidate(t, j0, j1);
        for (int jj = j0; jj < j; jj++) hout[jj] = 0;
        while (j < j1) {
            const int jn = next_candidate(t, j + 1, j1);
            while (ahead < PF_AHEAD && pcl < t->n_clusters) {
                const int pe = pcl * t->cluster_size + t->cluster_size < F ? pcl * t->cluster_size + t->cluster_size : F;
                pj = next_candidate(t, pj + 1, pe);
                if (pj >= pe) { pcl += nth; pj = pcl * t->cluster_size - 1; continue; }
                prefetch_range(base + (size_t)pj * slot, t->pf_rows * rs);
                ahead++;
            }
            ahead--; /* j is being consumed */
            const char *s = base + (size_t)j * slot;
            touched = true;
            float g, u = 0, h = 0;
            bool up, keep;
            if (t->mode == PINFER_SPARSE_OFF) {
                dots(t, s, true, &g, &u);
                up = keep = true;
            } else {
                up = !t->relu; /* SiLU/GeLU: g alone does not decide */
                dots(t, s, up, &g, &u);
                if (t->relu) up = g > 0;
                if (t->mode == PINFER_SPARSE_THRESHOLD && !(fabsf(pf_act_gate(t->act, g)) >= t->cut)) up = false;
                if (up && t->relu) dots(t, s + rs, false, &u, NULL);
                keep = up;
            }
            k.gate++;
            if (up) {
                k.up++;
                h = pf_act_full(t->act, g, u);
                if (t->mode != PINFER_SPARSE_OFF && h == 0) keep = false;
            } else {
                h = 0;
            }
            if (t->verify && t->mode != PINFER_SPARSE_OFF) {
                /* the dense activation of this neuron, for recall / precision */
                float ut = u;
                if (!up) dots(t, s + rs, false, &ut, NULL);
                float full = pf_act_full(t->act, g, ut);
                if (full != 0) {
                    k.true_active++;
                    k.mass_all += fabsf(full);
                    if (keep && h != 0) { k.hit++; k.mass_kept += fabsf(full); }
                }
            }
            if (h != 0) k.active++;
            if (t->want_gates) gout[j] = g;
            hout[j] = keep ? h : 0;
            if (keep) {
                k.down++;
                prefetch_range(s + 2 * rs, rs);
                rows[nl] = s + 2 * rs;
                hs[nl++] = h;
                if (nl == LIST_MAX) { accum(rows, hs, nl, y, E); nl = 0; }
            }
            for (int jj = j + 1; jj < jn; jj++) hout[jj] = 0;
            j = jn;
        }
        if (nl) { accum(rows, hs, nl, y, E); nl = 0; }
        if (touched) k.clusters++;
        if (t->verify && t->mode == PINFER_SPARSE_PREDICTOR) {
            /* neurons the predictor left out: were they active? */
            for (int jj = j0; jj < j1; jj++) {
                if (is_candidate(t, jj)) continue;
                float g, u;
                dots(t, base + (size_t)jj * slot, true, &g, &u);
                float full = pf_act_full(t->act, g, u);
                if (full != 0) { k.true_active++; k.mass_all += fabsf(full); }
            }
        }
        if (t->mode == PINFER_SPARSE_PREDICTOR)
            for (int jj = j0; jj < j1; jj++) k.predicted += is_candidate(t, jj);
    }
    c->cnt[ith] = k;
}

void pf_ffn_bundle_decode(struct pinfer_ctx *c, int l, float *out)
{
    const struct pf_bundles *b = c->m->layers[l].ffn_b;
    const struct pinfer_model_info *h = &c->m->info;
    const int E = b->n_embd;
    const struct pf_kernels *k = c->kern;
    struct dec_task t = {
        .c = c, .b = b, .sk = pf_sparse_kernels(), .act = h->act, .relu = pf_act_relu_family(h->act),
        .mode = c->calibrating ? PINFER_SPARSE_OFF : c->sparse,
        .fast = b->type == PF_TYPE_Q4_0 && k->q4_matvec && k->q4_act,
        .dot = k->dot[b->type],
        .cluster_size = h->cluster_size > 0 ? h->cluster_size : 16,
        .want_gates = c->sparse == PINFER_SPARSE_THRESHOLD && !c->thresh_ready,
    };
    t.verify = c->verify && t.mode != PINFER_SPARSE_OFF;
    /* oracle and threshold read every gate but few up rows (ReLU family); predicted neurons
       mostly fire, so their up rows are wanted too */
    t.pf_rows = t.relu && (t.mode == PINFER_SPARSE_ORACLE || t.mode == PINFER_SPARSE_THRESHOLD) ? 1 : 2;
    { const char *e = getenv("PINFER_PF_AHEAD"); if (e) PF_AHEAD = atoi(e); } /* EXPERIMENT */
    t.n_clusters = (b->n_ff + t.cluster_size - 1) / t.cluster_size;
    if (t.mode == PINFER_SPARSE_PREDICTOR) {
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
        if (t.fast) k->q4_act(c->xb, xa, E);
        else k->from_f32[pf_type_get(b->type)->vec_dot_type](c->xb, xa, E);
        t.xa = xa;
    }
    pf_pool_run(c->pool, dec_fn, &t);
    const int nth = c->n_threads;
    memcpy(out, c->ypart, (size_t)E * sizeof *out);
    for (int i = 1; i < nth; i++) {
        const float *p = c->ypart + (size_t)i * (size_t)E;
        for (int e = 0; e < E; e++) out[e] += p[e];
    }
}
