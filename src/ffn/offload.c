/* The FFN on bundles under a memory budget: slots come from the neuron cache (src/cache/),
 * missing ones are read from the file with direct I/O while resident ones are computed.
 *
 * Single-token step, per layer:
 *   1. setup as in memory (predictor, x in the dot format: pf_dec_setup);
 *   2. the candidates (listed by setup) are split into rounds of whole clusters such that each round's missing
 *      slots fit in the staging area (usually one round per layer);
 *   3. per round (pf_cache_round_*): look the candidates up (hits; in the first round thread 0
 *      does so while the other threads compute the parts whose candidates are all hot, which
 *      need no look-up), queue the reads of the misses
 *      (runs of adjacent slots, page-aligned, coalesced) and submit them; while the reads are in
 *      flight (phase A) the threads finish every part (decode.h) whose candidates in the round
 *      are all resident - gates, ups and downs: with hot slots first in the file and the hot
 *      segment pinning a prefix, that is most of the work - and compute the gates and ups of the
 *      resident candidates of the other parts; then wait, and (phase B) the threads compute the
 *      missing candidates' gates and ups (copying each slot read into the cold entry the cache
 *      gave it first, while it is on its way into the core's caches anyway) and add the down
 *      rows of the parts with misses;
 *   4. out = y_0 + y_1 + ...
 *
 * Same numbers as in memory, bit for bit: each neuron's gate and up dots are computed by the
 * same functions (pf_dec_gates/pf_dec_ups; gather_dot's result per row does not depend on the
 * other rows of a call), and the down rows are added by the same down_accum kernel into the
 * same partial sums: the candidate list cut into the same parts, each part's rows added in slot
 * order into its own sum (down_accum adds its rows in order, one fma per term, so how the rows
 * are grouped into calls does not matter), then y_0 + y_1 + ... Only the time at which a
 * neuron is computed, and by which thread, differs, which no sum sees.
 *
 * Batches (prefill): each layer's slots are streamed in chunks through the two halves of the
 * staging area (the read of chunk k+1 in flight while chunk k is computed), the hot slots
 * straight from the hot segment; each chunk runs the dense bundle kernels (bundle_mm.c) and its
 * output is added to the residual. */
#include "ffn/decode.h"

#include "cache/cache.h"
#include "core/error.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"

#include <math.h>
#include <sched.h>
#include <string.h>

struct off_task {
    const struct dec_task *t;
    struct pf_cache *cache;
    int unit;
    const uint8_t **slotp;   /* (n_ff) resident address of each candidate, NULL until read */
    const uint8_t **was;     /* slotp before the reads (NULL = missing) */
    uint8_t **dst;           /* (n_ff) the cold entry a slot read goes into, NULL: round_end's */
    size_t slot_size;
    int r0, r1;              /* the round: candidates [r0, r1) (whole clusters) */
    uint8_t *pmiss;          /* (n_parts) part p has a missing candidate in the round */
    bool phase_b;            /* false: parts without misses whole, the others' resident gates/ups;
                                true: the others' missing gates/ups, then their downs */
    _Atomic int next_part;   /* the next part of this phase nobody took yet */
    /* the first round's look-up, on thread 0 while the others run the hot parts */
    bool lookup;
    int hot_parts, hot_end;  /* parts [0, hot_parts) hold only hot candidates: [0, hot_end) */
    _Atomic int next_hot;
    _Atomic int looked;      /* thread 0 is done: r1, pmiss and lookup_rc are set */
    int lookup_rc;
};

/* Gates and ups of the candidates in [i0, i1) that are resident (want_missing false) or that
 * were missing (want_missing true; their slotp is set now), PF_DEC_BATCH at a time. */
static void gate_up(const struct off_task *o, struct pf_dec_thread *w, int i0, int i1, bool want_missing,
                    struct pf_sparse_count *k)
{
    const struct dec_task *t = o->t;
    struct pf_dec_batch *q = &w->st[0];
    q->ng = 0;
    for (int i = i0; i < i1; i++) {
        int j = t->cand[i];
        if ((o->was[j] == NULL) != want_missing) continue;
        /* a slot just read goes into its cold entry now, and its rows into this core's caches
           for the dots below */
        if (want_missing && o->dst[j]) memcpy(o->dst[j], o->slotp[j], o->slot_size);
        q->idx[q->ng] = j;
        q->slot[q->ng++] = o->slotp[j];
        if (q->ng == PF_DEC_BATCH) {
            pf_dec_gates(t, w, q, NULL);
            pf_dec_ups(t, w, q, false, NULL, k);
            q->ng = 0;
        }
    }
    if (q->ng) {
        pf_dec_gates(t, w, q, NULL);
        pf_dec_ups(t, w, q, false, NULL, k);
    }
}

/* Part p's candidates [i0, i1) of the round in this phase: resident gates and ups (and, for a
 * part without misses, everything) in phase A; the missing gates and ups and all downs in B. */
static void run_part(const struct off_task *o, struct pf_dec_thread *w, struct pf_sparse_count *k, int p, int i0, int i1)
{
    const struct dec_task *t = o->t;
    const struct pf_bundles *b = t->b;
    const int E = b->n_embd;
    const bool whole = !o->pmiss[p]; /* no miss: the whole part in phase A */
    if (whole && o->phase_b) return;
    gate_up(o, w, i0, i1, o->phase_b, k);
    if (!o->phase_b && !whole) return;
    pf_down_accum_fn accum = t->kt->down_accum[b->type[PF_PART_DOWN]];
    struct pf_dec_batch *q = &w->st[1];
    float *y = t->f->ypart + (size_t)p * (size_t)E;
    q->nd = 0;
    for (int i = i0; i < i1; i++) {
        int j = t->cand[i];
        float h = t->f->hg[j];
        k->active += h != 0;
        k->clusters += new_cluster(t, i);
        if (h != 0 || t->mode == PINFER_SPARSE_OFF) {
            q->drow[q->nd] = o->slotp[j] + b->off[PF_PART_DOWN];
            q->dh[q->nd++] = h;
            k->down++;
        }
        if (q->nd == PF_DEC_BATCH) { accum(q->drow, q->dh, q->nd, y, E, NULL); q->nd = 0; }
    }
    if (q->nd) accum(q->drow, q->dh, q->nd, y, E, NULL);
}

/* Thread 0's share of the first round's phase A: the look-ups of the candidates from hot_end
 * on (pf_cache_round_begin, which also submits the reads), which parts miss, then the flag. */
/* After the look-ups of candidates [i0, i1): what was resident before the reads, which of the
 * parts from p0 on miss a slot there, and the round's end. */
static void looked_up(struct off_task *o, int i0, int i1, int p0)
{
    const struct dec_task *t = o->t;
    for (int i = i0; i < i1; i++) o->was[t->cand[i]] = o->slotp[t->cand[i]];
    for (int p = p0; p < t->n_parts; p++) {
        int a, z;
        part_range(t, p, &a, &z);
        if (a < i0) a = i0;
        if (z > i1) z = i1;
        o->pmiss[p] = 0;
        for (int i = a; i < z && !o->pmiss[p]; i++) o->pmiss[p] = o->was[t->cand[i]] == NULL;
    }
    o->r1 = i1;
}

static void first_lookup(struct off_task *o)
{
    const struct dec_task *t = o->t;
    int i1 = pf_cache_round_begin(o->cache, o->unit, t->cand, o->hot_end, t->n_cand, t->cluster_size, o->slotp);
    o->lookup_rc = i1 < 0 ? i1 : 0;
    if (i1 >= 0) looked_up(o, o->hot_end, i1, o->hot_parts); /* the hot parts' pmiss is 0, read by the others */
    atomic_store_explicit(&o->looked, 1, memory_order_release);
}

/* Threads take the parts of a phase in order, each as soon as it needs one (as in memory; with a
 * fixed share per thread one waited for the other on most rounds: parts with misses have less
 * work in phase A and all of it in phase B); the downs of a part are added in candidate order,
 * round after round, into the part's partial output: the same sums as in memory (decode.h),
 * whichever thread forms them. In the first round's phase A thread 0 looks the candidates up
 * while the others start on the parts that hold only hot slots, which need no look-up. */
static void off_fn(void *arg, int ith, int nth)
{
    (void)nth;
    struct off_task *o = arg;
    const struct dec_task *t = o->t;
    struct pf_ffn *f = t->f;
    struct pf_dec_thread *w = &f->dec->th[ith];
    struct pf_sparse_count *k = &f->cnt[ith];
    if (o->lookup) {
        if (ith == 0) first_lookup(o);
        for (int p; (p = atomic_fetch_add_explicit(&o->next_hot, 1, memory_order_relaxed)) < o->hot_parts;) {
            int i0, i1;
            part_range(t, p, &i0, &i1);
            for (int i = i0; i < i1; i++) {
                const int j = t->cand[i];
                o->slotp[j] = o->was[j] = pf_cache_hot_slot(o->cache, o->unit, j);
            }
            run_part(o, w, k, p, i0, i1); /* pmiss[p] is 0: whole */
        }
        for (unsigned spins = 1; !atomic_load_explicit(&o->looked, memory_order_acquire); spins++) {
            if ((spins & 1023) == 0) sched_yield(); /* thread 0 may have been descheduled */
            else pf_cpu_relax();
        }
        if (o->lookup_rc < 0) return;
    }
    for (int p; (p = atomic_fetch_add_explicit(&o->next_part, 1, memory_order_relaxed)) < t->n_parts;) {
        int i0, i1;
        part_range(t, p, &i0, &i1);
        if (i0 < o->r0) i0 = o->r0;
        if (i1 > o->r1) i1 = o->r1;
        if (i0 >= i1) continue;
        run_part(o, w, k, p, i0, i1);
    }
}

int pf_ffn_offload_decode(struct pf_ffn *f, int l, int u, const struct pf_bundles *b, float *out)
{
    struct dec_task t;
    pf_dec_setup(f, l, b, &t);
    t.verify = false; /* the skipped neurons' rows are not in memory */
    struct pf_cache *cache = f->cache;
    const int E = t.b->n_embd;
    const uint8_t **slotp = f->off_slotp, **was = f->off_was;
    memset(f->ypart, 0, (size_t)t.n_parts * (size_t)E * sizeof *f->ypart);
    struct off_task o = { .t = &t, .cache = cache, .unit = u, .slotp = slotp, .was = was, .dst = f->off_dst,
                          .slot_size = b->slot_size, .pmiss = f->off_pmiss };
    /* the parts whose candidates are all hot (candidates ascend, hot slots come first) */
    const int n_hot = pf_cache_n_hot(cache, u);
    for (int p = 0; p < t.n_parts; p++) {
        int a, z;
        part_range(&t, p, &a, &z);
        if (z > a && t.cand[z - 1] >= n_hot) break;
        o.hot_parts = p + 1;
        o.hot_end = z;
        f->off_pmiss[p] = 0;
    }
    int rc = 0;
    for (int i0 = 0; i0 < t.n_cand;) {
        o.r0 = i0;
        o.phase_b = false;
        atomic_store_explicit(&o.next_part, 0, memory_order_relaxed);
        if (i0 == 0) { /* the look-ups on thread 0 while the others compute the hot parts */
            o.lookup = true;
            o.r1 = o.hot_end;
            atomic_store_explicit(&o.next_hot, 0, memory_order_relaxed);
            atomic_store_explicit(&o.looked, 0, memory_order_relaxed);
            atomic_store_explicit(&o.next_part, o.hot_parts, memory_order_relaxed);
            pf_pool_run(f->pool, off_fn, &o); /* then the resident gates/ups while the reads fly */
            o.lookup = false;
            pf_cache_count_hot(cache, o.hot_end);
            if ((rc = o.lookup_rc) < 0) break;
        } else {
            int i1 = pf_cache_round_begin(cache, u, t.cand, i0, t.n_cand, t.cluster_size, slotp);
            if (i1 < 0) { rc = i1; break; }
            looked_up(&o, i0, i1, 0);
            pf_pool_run(f->pool, off_fn, &o); /* resident gates/ups while the reads fly */
        }
        if ((rc = pf_cache_round_wait(cache, f->off_dst)) < 0) break;
        o.phase_b = true;
        atomic_store_explicit(&o.next_part, 0, memory_order_relaxed);
        pf_pool_run(f->pool, off_fn, &o);
        pf_cache_round_end(cache, f->pool);
        i0 = o.r1;
    }
    int rc2 = pf_cache_unit_end(cache);
    if (rc) return rc;
    if (rc2) return rc2;
    pf_dec_reduce(f, &t, out);
    return 0;
}

int pf_ffn_offload_prefetch(struct pf_ffn *f, int u, const struct pf_bundles *b, const float *xn)
{
    struct pf_cache *cache = f->cache;
    if (!pf_cache_read_ahead_ready(cache) || !b->fc1.data) return 0;
    pf_matmul(f->pool, f->pred_h, b->fc1.data, b->fc1.type, b->fc1.n_in, b->fc1.n_out, xn, 1, f->scratch);
    for (int64_t i = 0; i < b->fc1.n_out; i++) f->pred_h[i] = f->pred_h[i] > 0 ? f->pred_h[i] : 0;
    pf_matmul(f->pool, f->pred_logit, b->fc2.data, b->fc2.type, b->fc2.n_in, b->fc2.n_out, f->pred_h, 1, f->scratch);
    int n = 0;
    for (int j = 0; j < b->n_ff; j++)
        if (f->pred_logit[j] > b->pred_threshold && !pf_cache_resident(cache, u, j)) f->off_list[n++] = j;
    int got = pf_cache_read_ahead(cache, u, f->off_list, n);
    return got < 0 ? got : 0;
}

/* ==== Batches: the layer streamed in chunks ==== */

/* One chunk of slots [j0, j0 + n) whose bytes are at p: gate/up of the n_tok rows of in,
 * activation, down added into out (n_tok x n_embd; written by the first chunk). */
static void run_chunk(struct pf_ffn *f, int l, const struct pf_bundles *b, const uint8_t *p, int j0, int n, const float *in,
                      int n_tok, float *out, bool record)
{
    struct pf_bundles v = *b;
    v.data = p;
    v.n_ff = n;
    pf_bundle_gate_up(f->pool, f->kern, &v, in, n_tok, f->hg, f->hu, f->scratch);
    if (record) pf_hist_add(f, l, f->hg, (size_t)n_tok * (size_t)n);
    pf_act_apply(f->hg, f->hu, (size_t)n_tok * (size_t)n, f->m->info.act);
    pf_bundle_down(f->pool, f->kern, &v, f->hg, n_tok, out, f->panel, j0 > 0);
}

int pf_ffn_offload_unit_batch(struct pf_ffn *f, int l, int u, const struct pf_bundles *b, const float *in, int n_tok,
                              float *out, bool record)
{
    struct pf_cache_stream s;
    pf_cache_stream_begin(f->cache, u, &s);
    const uint8_t *p;
    int j0, n, rc;
    while ((rc = pf_cache_stream_next(f->cache, &s, &p, &j0, &n)) > 0) run_chunk(f, l, b, p, j0, n, in, n_tok, out, record);
    return rc < 0 ? rc : 0;
}

int pf_ffn_offload_batch(struct pf_ffn *f, int l, int n_tok, bool record)
{
    const struct pf_bundles *b = f->m->layers[l].ffn_b;
    const int E = b->n_embd;
    int rc = pf_ffn_offload_unit_batch(f, l, l, b, f->xb, n_tok, f->y, record);
    if (rc) return rc;
    for (size_t i = 0; i < (size_t)n_tok * (size_t)E; i++) f->x[i] += f->y[i];
    return 0;
}
