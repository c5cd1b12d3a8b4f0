/* Single-token FFN on bundles: the sparse decode step (and the dense one, mode off).
 *
 *   1. predictor mode: logit = fc2 · relu(fc1 · x) with the forward pass's matmuls; slot j is a
 *      candidate when logit_j > the layer's threshold (exactly what prepare evaluated); other
 *      modes: every slot. The candidates are listed in slot order;
 *   2. x is converted once into the dot format of the gate rows' type (and once more for the up
 *      rows when their type reads another format);
 *   3. the list is cut into parts of equal counts (pf_dec_parts); threads take the parts in
 *      order, each as soon as it needs one, and run a part's candidates PF_DEC_BATCH at a time
 *      through three stages on consecutive steps: the gate dots (gather_dot: several rows at
 *      once); the up dots of those the mode's rule lets through; then the list of down rows of
 *      the neurons whose activation h is not zero, added into the part's partial output
 *      (y_p += h_j * down_j, kernel down_accum, slot order). The down list is added only after
 *      the next batch's gate and up stages, so its rows can be prefetched meanwhile;
 *   4. out = y_0 + y_1 + ... in part order.
 *
 * Rules (the activation h = act(g, u)):
 *   off        every slot: gate and up, and every down row (h == 0 included): the dense FFN
 *   oracle     every gate; ReLU family: up only if g > 0; down only if h != 0
 *   predictor  candidates only, then as oracle
 *   threshold  every gate; up and down only if |act(g)| >= the layer's cut (and as oracle)
 * Why oracle == off exactly: both have every slot as a candidate, hence the same parts; both run
 * the same per-neuron operations (gather_dot computes each row alone, whatever rows share its
 * call) and add each part's down rows in slot order into the part's own sum, and a skipped
 * neuron's term is h * w = ±0, which leaves every partial sum unchanged (y + ±0 == y for any y;
 * only the sign of an exact zero can differ, which compares equal and changes no later result).
 * Which thread runs a part changes nothing: the sums are per part, not per thread.
 *
 * Why parts of equal counts taken on demand, rather than clusters dealt round-robin: at 10%
 * active a cluster of 16 slots holds one or two candidates, too few to fill the kernels (a
 * gather of 1 row, a down_accum of 1 row that loads and stores all of y); and on a machine
 * shared with other work a descheduled thread held up the whole step with its fixed share.
 *
 * Memory: a slot is gate | up | down, so a neuron that fires costs one contiguous 3-row read.
 * The kernels keep a steady stream of prefetches going (prefetch.h): the next batch's
 * candidate rows, and before them the up and down rows of the batches just decided. No
 * allocation per token: the candidate list, per-thread lists (pf_dec) and partial outputs live
 * in the context. */
#include "ffn/decode.h"

#include "core/checked.h"
#include "core/clock.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== Working memory ==== */

int pf_dec_parts(int n_threads)
{
    return n_threads > 1 ? 4 * n_threads : 1;
}

struct pf_dec *pf_dec_new(int n, int n_ff)
{
    struct pf_dec *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->n_threads = n;
    d->th = calloc((size_t)n, sizeof *d->th);
    d->cand = malloc(sizeof *d->cand * (size_t)(n_ff > 0 ? n_ff : 1));
    if (!d->th || !d->cand) { pf_dec_free(d); return NULL; }
    /* per stage: slot, drow (pointers); g, u, dh (float); idx, up (int); plus the row list */
    const size_t cs = PF_DEC_BATCH;
    const size_t per = cs * (sizeof(void *) + PF_DEC_STAGES * (2 * sizeof(void *) + 3 * sizeof(float) + 2 * sizeof(int)));
    for (int i = 0; i < n; i++) {
        char *m = malloc(per);
        if (!m) { pf_dec_free(d); return NULL; }
        d->th[i].mem = m;
        /* pointers first, then 4-byte items: every array stays aligned */
        d->th[i].rows = (const void **)(void *)m;
        m += cs * sizeof(void *);
        for (int k = 0; k < PF_DEC_STAGES; k++) {
            struct pf_dec_batch *q = &d->th[i].st[k];
            q->slot = (const uint8_t **)(void *)m; m += cs * sizeof(void *);
            q->drow = (const void **)(void *)m;    m += cs * sizeof(void *);
        }
        for (int k = 0; k < PF_DEC_STAGES; k++) {
            struct pf_dec_batch *q = &d->th[i].st[k];
            q->g = (float *)(void *)m;  m += cs * sizeof(float);
            q->u = (float *)(void *)m;  m += cs * sizeof(float);
            q->dh = (float *)(void *)m; m += cs * sizeof(float);
            q->idx = (int *)(void *)m;  m += cs * sizeof(int);
            q->up = (int *)(void *)m;   m += cs * sizeof(int);
        }
    }
    return d;
}

void pf_dec_free(struct pf_dec *d)
{
    if (!d) return;
    if (d->th)
        for (int i = 0; i < d->n_threads; i++) free(d->th[i].mem);
    free(d->th);
    free(d->cand);
    free(d);
}

/* ==== One batch: gates, then ups and the down list (shared with offload.c) ==== */

void pf_dec_gates(const struct dec_task *t, struct pf_dec_thread *w, struct pf_dec_batch *q, struct pf_pq *pq)
{
    const struct pf_bundles *b = t->b;
    const size_t uo = b->off[PF_PART_UP], ur = b->row[PF_PART_UP];
    const bool off = t->mode == PINFER_SPARSE_OFF;
    q->nu = q->nd = 0;
    if (!q->ng) return;
    for (int i = 0; i < q->ng; i++) w->rows[i] = q->slot[i] + b->off[PF_PART_GATE];
    t->kt->gather_dot[b->type[PF_PART_GATE]](t->kt, w->rows, q->ng, t->xa[0], b->n_embd, q->g, pq);
    for (int i = 0; i < q->ng; i++) {
        float g = q->g[i];
        bool pass = off || !t->relu || g > 0;
        if (!off && t->mode == PINFER_SPARSE_THRESHOLD && !(fabsf(pf_act_gate(t->act, g)) >= t->cut)) pass = false;
        if (!pass) continue;
        q->up[q->nu++] = i;
        pf_pq_push_urgent(pq, q->slot[i] + uo, ur);
    }
}

void pf_dec_ups(const struct dec_task *t, struct pf_dec_thread *w, struct pf_dec_batch *q, bool want_downs, struct pf_pq *pq,
                struct pf_sparse_count *k)
{
    const struct pf_bundles *b = t->b;
    const int E = b->n_embd;
    const size_t uo = b->off[PF_PART_UP], dof = b->off[PF_PART_DOWN], dr = b->row[PF_PART_DOWN];
    float *hout = t->f->hg, *gout = t->f->hu;
    pf_gather_dot_fn gather = t->kt->gather_dot[b->type[PF_PART_UP]];
    for (int i = 0; i < q->nu; i++) w->rows[i] = q->slot[q->up[i]] + uo;
    if (q->nu) gather(t->kt, w->rows, q->nu, t->xa[1], E, q->u, pq);
    uint32_t active = 0;
    for (int i = 0, ui = 0; i < q->ng; i++) {
        const int j = q->idx[i];
        const uint8_t *s = q->slot[i];
        const float g = q->g[i];
        const bool upd = ui < q->nu && q->up[ui] == i;
        const float u = upd ? q->u[ui++] : 0;
        const float h = upd ? pf_act_full(t->act, g, u) : 0;
        if (t->verify) {
            /* the dense activation of this neuron, for recall and precision */
            float ut = u;
            const void *ur = s + uo;
            if (!upd) gather(t->kt, &ur, 1, t->xa[1], E, &ut, NULL);
            float full = pf_act_full(t->act, g, ut);
            if (full != 0) {
                k->true_active++;
                k->mass_all += fabsf(full);
                if (h != 0) { k->hit++; k->mass_kept += fabsf(full); }
            }
        }
        if (t->want_gates) gout[j] = g;
        hout[j] = h;
        active += h != 0;
        if (want_downs && (h != 0 || t->mode == PINFER_SPARSE_OFF)) {
            q->drow[q->nd] = s + dof;
            q->dh[q->nd++] = h;
            pf_pq_push_urgent(pq, s + dof, dr);
        }
    }
    k->gate += (uint32_t)q->ng;
    k->up += (uint32_t)q->nu;
    if (t->mode == PINFER_SPARSE_PREDICTOR) k->predicted += (uint32_t)q->ng;
    if (want_downs) {
        k->down += (uint32_t)q->nd;
        k->active += active;
    }
}

/* ==== In memory: parts taken on demand, batches through three stages ==== */

/* A thread's position in the list: candidates [i, end) of part p are still to start. */
struct cursor {
    int p, i, end;
};

/* The next batch of this thread (at most PF_DEC_BATCH candidates of one part) into *p, *i0, *n;
 * takes new parts as needed (zeroing their partial outputs, and in verify mode evaluating the
 * slots the part leaves out). False when every part is taken. */
static bool next_batch(const struct dec_task *t, struct cursor *cu, float *ypart, struct pf_sparse_count *k, int *p,
                       int *i0, int *n)
{
    while (cu->i >= cu->end) {
        int np = atomic_fetch_add_explicit(t->next_part, 1, memory_order_relaxed);
        if (np >= t->n_parts) return false;
        cu->p = np;
        part_range(t, np, &cu->i, &cu->end);
        memset(ypart + (size_t)np * (size_t)t->b->n_embd, 0, sizeof *ypart * (size_t)t->b->n_embd);
        if (t->verify && t->mode == PINFER_SPARSE_PREDICTOR) {
            /* neurons the predictor left out, in this part's stretch of slots: were they active? */
            const struct pf_bundles *b = t->b;
            const char *base = b->data;
            int j0 = np == 0 ? 0 : cu->i < t->n_cand ? t->cand[cu->i] : b->n_ff;
            int j1 = np == t->n_parts - 1 || cu->end >= t->n_cand ? b->n_ff : t->cand[cu->end];
            for (int j = j0, ci = cu->i; j < j1; j++) {
                if (ci < cu->end && t->cand[ci] == j) { ci++; continue; }
                const char *s = base + (size_t)j * b->slot_size;
                const void *g = s + b->off[PF_PART_GATE], *u = s + b->off[PF_PART_UP];
                float r[2];
                t->kt->gather_dot[b->type[PF_PART_GATE]](t->kt, &g, 1, t->xa[0], b->n_embd, &r[0], NULL);
                t->kt->gather_dot[b->type[PF_PART_UP]](t->kt, &u, 1, t->xa[1], b->n_embd, &r[1], NULL);
                float full = pf_act_full(t->act, r[0], r[1]);
                if (full != 0) { k->true_active++; k->mass_all += fabsf(full); }
            }
        }
    }
    *p = cu->p;
    *i0 = cu->i;
    *n = cu->end - cu->i < PF_DEC_BATCH ? cu->end - cu->i : PF_DEC_BATCH;
    cu->i += *n;
    return true;
}

/* Queues the candidate rows of batch [i0, i0 + n) for prefetching. */
static void push_batch(const struct dec_task *t, struct pf_pq *pq, int i0, int n)
{
    const char *base = t->b->data;
    for (int i = i0; i < i0 + n; i++)
        pf_pq_push_ahead(pq, base + (size_t)t->cand[i] * t->b->slot_size, t->pf_bytes);
}

/* Batch s of a thread computes its gates at step s, its ups at step s + 1 and adds its down rows
 * at step s + 2, so the up and down rows a stage will read are prefetched during the previous
 * stage's work. A part's batches follow each other, so its down rows are added in slot order. */
static void dec_fn(void *arg, int ith, int nth)
{
    (void)nth;
    const struct dec_task *t = arg;
    struct pf_ffn *f = t->f;
    const struct pf_bundles *b = t->b;
    const int E = b->n_embd;
    const char *base = b->data;
    struct pf_dec_thread *w = &f->dec->th[ith];
    pf_down_accum_fn accum = t->kt->down_accum[b->type[PF_PART_DOWN]];
    struct pf_sparse_count k;
    memset(&k, 0, sizeof k);
    pf_pq_reset(&w->pq);
    struct cursor cu = { 0, 0, 0 };
    int np, ni0, nn; /* the batch after the current one: part, first candidate, count */
    bool have = next_batch(t, &cu, f->ypart, &k, &np, &ni0, &nn);
    if (have) push_batch(t, &w->pq, ni0, nn);
    int n_started = 0;
    for (int s = 0; have || s < n_started + 2; s++) {
        if (have) {
            struct pf_dec_batch *q = &w->st[s % PF_DEC_STAGES];
            q->part = np;
            q->ng = nn;
            for (int i = 0; i < nn; i++) {
                q->idx[i] = t->cand[ni0 + i];
                q->slot[i] = (const uint8_t *)base + (size_t)q->idx[i] * b->slot_size;
                k.clusters += new_cluster(t, ni0 + i);
            }
            have = next_batch(t, &cu, f->ypart, &k, &np, &ni0, &nn);
            if (have) push_batch(t, &w->pq, ni0, nn);
            pf_dec_gates(t, w, q, &w->pq);
            n_started = s + 1;
        }
        if (s >= 1 && s - 1 < n_started) pf_dec_ups(t, w, &w->st[(s - 1) % PF_DEC_STAGES], true, &w->pq, &k);
        if (s >= 2 && s - 2 < n_started) {
            const struct pf_dec_batch *q = &w->st[(s - 2) % PF_DEC_STAGES];
            if (q->nd) accum(q->drow, q->dh, q->nd, f->ypart + (size_t)q->part * (size_t)E, E, &w->pq);
        }
    }
    f->cnt[ith] = k;
}

void pf_dec_setup(struct pf_ffn *f, int l, const struct pf_bundles *b, struct dec_task *tp)
{
    const struct pinfer_model_info *h = &f->m->info;
    const int E = b->n_embd, F = b->n_ff;
    const struct pf_kernels *k = f->kern;
    struct dec_task t = {
        .f = f, .b = b, .kt = k, .act = h->act, .relu = pf_act_relu_family(h->act),
        .mode = f->calibrating ? PINFER_SPARSE_OFF : f->sparse,
        .cluster_size = h->cluster_size > 0 ? h->cluster_size : 16,
        .want_gates = f->sparse == PINFER_SPARSE_THRESHOLD && !f->thresh_ready,
        .cand = f->dec->cand, .n_parts = pf_dec_parts(f->n_threads),
    };
    t.verify = f->verify && t.mode != PINFER_SPARSE_OFF;
    /* ReLU family: the gate decides whether the up row is read at all (for dReLU at 90%
       sparsity about a third are), so prefetching every candidate's up row would waste more
       bandwidth than it saves; SiLU and dense steps read both */
    const size_t gate_bytes = b->row[PF_PART_GATE], gate_up_bytes = b->off[PF_PART_UP] + b->row[PF_PART_UP];
    t.pf_bytes = t.relu && t.mode != PINFER_SPARSE_OFF ? gate_bytes : gate_up_bytes;
    if (t.mode == PINFER_SPARSE_PREDICTOR && f->ideal_every > 0) {
        /* benchmark aid: a perfect predictor's bytes, every k-th slot read whole */
        t.ideal_every = f->ideal_every;
        t.mode = PINFER_SPARSE_OFF;
        t.pf_bytes = gate_up_bytes;
    } else if (t.mode == PINFER_SPARSE_PREDICTOR) {
        /* relu(fc1 x) then fc2; scratch is free until x is converted below */
        const double t0 = pf_now();
        pf_matmul(f->pool, f->pred_h, b->fc1.data, b->fc1.type, b->fc1.n_in, b->fc1.n_out, f->xb, 1, f->scratch);
        for (int64_t i = 0; i < b->fc1.n_out; i++) f->pred_h[i] = f->pred_h[i] > 0 ? f->pred_h[i] : 0;
        pf_matmul(f->pool, f->pred_logit, b->fc2.data, b->fc2.type, b->fc2.n_in, b->fc2.n_out, f->pred_h, 1, f->scratch);
        f->t_pred += pf_now() - t0; /* part of the FFN phase, reported apart */
        t.logit = f->pred_logit;
        t.cut = b->pred_threshold;
    } else if (t.mode == PINFER_SPARSE_THRESHOLD) {
        t.cut = f->thresh[l];
    }
    /* the candidate list; h is 0 for every other slot (branch-free: most slots are skipped or
       most are taken, rarely a predictable pattern) */
    int *cand = f->dec->cand, n = 0;
    if (t.ideal_every) {
        memset(f->hg, 0, sizeof *f->hg * (size_t)F);
        for (int j = 0; j < F; j += t.ideal_every) cand[n++] = j;
    } else if (t.mode == PINFER_SPARSE_PREDICTOR) {
        const float *lg = t.logit, cut = t.cut;
        for (int j = 0; j < F; j++) {
            f->hg[j] = 0;
            cand[n] = j;
            n += lg[j] > cut;
        }
    } else {
        for (int j = 0; j < F; j++) cand[j] = j;
        n = F;
    }
    t.n_cand = n;
    /* x in the dot format of the gate rows, and of the up rows unless they read the same one
       (scratch holds both: pf_bundle_scratch_size) */
    char *xa = (char *)(((uintptr_t)f->scratch + 63) & ~(uintptr_t)63);
    for (int p = 0; p < 2; p++) {
        const int fmt = pf_bundle_act_format(k, b->type[p], true);
        if (p == 1 && fmt == pf_bundle_act_format(k, b->type[0], true)) {
            t.xa[1] = t.xa[0];
        } else if (fmt == -1) {
            t.xa[p] = f->xb;
        } else {
            if (fmt == -2) k->q4_act(f->xb, xa, E);
            else k->from_f32[fmt](f->xb, xa, E);
            t.xa[p] = xa;
            xa += pf_bundle_act_stride(b->type[p], E);
        }
    }
    *tp = t;
}

void pf_dec_reduce(struct pf_ffn *f, const struct dec_task *t, float *out)
{
    const int E = t->b->n_embd;
    memcpy(out, f->ypart, (size_t)E * sizeof *out);
    for (int p = 1; p < t->n_parts; p++) {
        const float *y = f->ypart + (size_t)p * (size_t)E;
        for (int e = 0; e < E; e++) out[e] += y[e];
    }
}

void pf_ffn_bundle_decode(struct pf_ffn *f, int l, const struct pf_bundles *b, float *out)
{
    struct dec_task t;
    pf_dec_setup(f, l, b, &t);
    _Atomic int next_part;
    atomic_init(&next_part, 0);
    t.next_part = &next_part;
    pf_pool_run(f->pool, dec_fn, &t);
    pf_dec_reduce(f, &t, out);
}
