/* The FFN on bundles under a memory budget: slots come from the neuron cache (src/cache/),
 * missing ones are read from the file with direct I/O while resident ones are computed.
 *
 * Single-token step, per layer:
 *   1. setup as in memory (predictor, x in the dot format: pf_dec_setup);
 *   2. the candidates (listed by setup) are split into rounds of whole clusters such that each round's missing
 *      slots fit in the staging area (usually one round per layer);
 *   3. per round: look the candidates up (hits), queue the reads of the misses (runs of adjacent
 *      slots, page-aligned, coalesced) and submit them; the threads compute the gate and up dots
 *      of the resident candidates while the reads are in flight (phase A); then wait, and the
 *      threads compute the missing candidates' gates and ups and add every down row of the
 *      round (phase B); the slots read enter the cold cache;
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
#include "sparse/decode.h"

#include "cache/cache.h"
#include "core/error.h"
#include "tensor/matmul.h"

#include <math.h>
#include <string.h>

struct off_task {
    const struct dec_task *t;
    const uint8_t **slotp;   /* (n_ff) resident address of each candidate, NULL until read */
    const uint8_t **was;     /* slotp before the reads (NULL = missing) */
    int r0, r1;              /* the round: candidates [r0, r1) (whole clusters) */
    bool phase_b;            /* false: resident candidates' gates/ups; true: missing ones, downs */
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

/* Part p's candidates in this round go to thread p mod n_threads; the downs of a part are added
 * in candidate order, round after round, into the part's partial output: the same sums as in
 * memory (decode.h), whichever thread forms them. */
static void off_fn(void *arg, int ith, int nth)
{
    const struct off_task *o = arg;
    const struct dec_task *t = o->t;
    struct pinfer_ctx *c = t->c;
    const struct pf_bundles *b = t->b;
    const int E = b->n_embd;
    struct pf_dec_thread *w = &c->dec->th[ith];
    struct pf_sparse_count *k = &c->cnt[ith];
    pf_down_accum_fn accum = t->sk->down_accum[b->type];
    for (int p = ith; p < t->n_parts; p += nth) {
        int i0, i1;
        part_range(t, p, &i0, &i1);
        if (i0 < o->r0) i0 = o->r0;
        if (i1 > o->r1) i1 = o->r1;
        if (i0 >= i1) continue;
        gate_up(o, w, i0, i1, o->phase_b, k);
        if (!o->phase_b) continue;
        struct pf_dec_batch *q = &w->st[1];
        float *y = c->ypart + (size_t)p * (size_t)E;
        q->nd = 0;
        for (int i = i0; i < i1; i++) {
            int j = t->cand[i];
            float h = c->hg[j];
            k->active += h != 0;
            k->clusters += new_cluster(t, i);
            if (h != 0 || t->mode == PINFER_SPARSE_OFF) {
                q->drow[q->nd] = o->slotp[j] + 2 * b->row_size;
                q->dh[q->nd++] = h;
                k->down++;
            }
            if (q->nd == PF_DEC_BATCH) { accum(q->drow, q->dh, q->nd, y, E, NULL); q->nd = 0; }
        }
        if (q->nd) accum(q->drow, q->dh, q->nd, y, E, NULL);
    }
}

void pf_ffn_offload_decode(struct pinfer_ctx *c, int l, float *out)
{
    struct dec_task t;
    pf_dec_setup(c, l, &t);
    t.verify = false; /* the skipped neurons' rows are not in memory */
    struct pf_cache *cache = c->cache;
    const struct pf_bundles *b = t.b;
    const int E = b->n_embd, cs = t.cluster_size;
    const uint8_t **slotp = c->off_slotp, **was = c->off_was;
    memset(c->ypart, 0, (size_t)t.n_parts * (size_t)E * sizeof *c->ypart);
    int *miss = c->off_miss;
    struct off_task o = { .t = &t, .slotp = slotp, .was = was };
    const bool pre = cache->pre_layer == l;
    for (int i0 = 0; i0 < t.n_cand;) {
        /* the round: the candidates of whole clusters from i0's on, while their misses fit in
           the staging area, counted as pf_cache_fetch will place them (runs of touching pages
           share them) */
        int n_miss = 0, i1 = i0;
        uint64_t need = 0, last_end = 0;
        while (i1 < t.n_cand) {
            const int cl = t.cand[i1] / cs, m0 = n_miss;
            const uint64_t need0 = need, last0 = last_end, hh = cache->hits_hot, hc = cache->hits_cold;
            int e = i1;
            for (; e < t.n_cand && t.cand[e] / cs == cl; e++) {
                int j = t.cand[e];
                slotp[j] = was[j] = pf_cache_lookup(cache, l, j);
                if (slotp[j]) continue;
                if (pre && cache->pre_ptr[j]) continue; /* read ahead, in flight or landed */
                miss[n_miss++] = j;
                uint64_t a, z;
                pf_cache_pages(cache, l, j, j + 1, &a, &z);
                if (n_miss > 1 && a <= last_end) { if (z > last_end) need += z - last_end; }
                else need += z - a;
                if (z > last_end) last_end = z;
            }
            if (need > cache->stage_cap && i1 > i0) {
                /* does not fit: this cluster starts the next round, where it is looked up again */
                n_miss = m0;
                need = need0;
                last_end = last0;
                cache->hits_hot = hh;
                cache->hits_cold = hc;
                break;
            }
            i1 = e;
        }
        cache->rounds++;
        const uint8_t **mptr = c->off_mptr;
        int got = n_miss ? pf_cache_fetch(cache, l, miss, n_miss, mptr) : 0;
        if (got < 0) { c->io_error = got; return; }
        if (got < n_miss) { c->io_error = pf_fail(PINFER_ENOMEM, "I/O staging area too small for one cluster of slots"); return; }
        o.r0 = i0;
        o.r1 = i1;
        o.phase_b = false;
        pf_pool_run(c->pool, off_fn, &o); /* resident gates/ups while the reads fly */
        int rc = pf_cache_wait(cache); /* this round's reads and any prefetch still in flight */
        if (rc < 0) { c->io_error = rc; return; }
        for (int i = 0; i < got; i++) slotp[miss[i]] = mptr[i];
        if (pre)
            for (int i = i0; i < i1; i++) {
                int j = t.cand[i];
                if (!was[j] && cache->pre_ptr[j] && !slotp[j]) { slotp[j] = cache->pre_ptr[j]; cache->pre_used++; }
            }
        o.phase_b = true;
        pf_pool_run(c->pool, off_fn, &o);
        for (int i = 0; i < got; i++) pf_cache_insert(cache, l, miss[i], mptr[i]);
        if (pre)
            for (int i = i0; i < i1; i++) {
                int j = t.cand[i];
                if (!was[j] && slotp[j] == cache->pre_ptr[j]) pf_cache_insert(cache, l, j, slotp[j]);
            }
        i0 = i1;
    }
    if (cache->pre_layer >= 0) {
        /* a prefetch for another layer (a batch came between) or this one: forget it; the reads
           are done (waited above, or now) */
        if (pf_cache_wait(cache) < 0) c->io_error = PINFER_EIO;
        for (int i = 0; i < cache->n_pre; i++) cache->pre_ptr[cache->pre_list[i]] = NULL;
        cache->n_pre = 0;
        cache->pre_layer = -1;
    }
    pf_dec_reduce(c, &t, out);
}

void pf_offload_prefetch(struct pinfer_ctx *c, int l)
{
    struct pf_cache *cache = c->cache;
    if (!cache->pre || c->sparse != PINFER_SPARSE_PREDICTOR || c->calibrating || c->ideal_every > 0 || cache->pre_layer >= 0)
        return;
    const struct pinfer_model *m = c->m;
    const struct pf_bundles *b = m->layers[l].ffn_b;
    if (!b->fc1.data) return;
    /* the layer's FFN input will be rmsnorm(x + attention(x)); the attention is small next to
       x, so rmsnorm(x) predicts most of the same neurons */
    pf_rmsnorm(c->xb, c->x, m->layers[l].ffn_norm, b->n_embd, m->info.norm_eps);
    pf_matmul(c->pool, c->pred_h, b->fc1.data, b->fc1.type, b->fc1.n_in, b->fc1.n_out, c->xb, 1, c->scratch);
    for (int64_t i = 0; i < b->fc1.n_out; i++) c->pred_h[i] = c->pred_h[i] > 0 ? c->pred_h[i] : 0;
    pf_matmul(c->pool, c->pred_logit, b->fc2.data, b->fc2.type, b->fc2.n_in, b->fc2.n_out, c->pred_h, 1, c->scratch);
    int n = 0;
    for (int j = 0; j < b->n_ff; j++)
        if (c->pred_logit[j] > b->pred_threshold && !pf_cache_resident(cache, l, j)) cache->pre_list[n++] = j;
    const uint8_t **ptr = c->off_mptr;
    int got = pf_cache_prefetch(cache, l, cache->pre_list, n, ptr);
    if (got < 0) { c->io_error = got; return; }
    for (int i = 0; i < got; i++) cache->pre_ptr[cache->pre_list[i]] = ptr[i];
    cache->n_pre = got;
    cache->pre_slots += (uint64_t)got;
    cache->pre_layer = l;
}

/* ==== Batches: the layer streamed in chunks ==== */

/* One chunk of slots [j0, j0 + n) whose bytes are at p: gate/up, activation, down added into
 * c->q (n_tok x n_embd). */
static void run_chunk(struct pinfer_ctx *c, int l, const struct pf_bundles *b, const uint8_t *p, int j0, int n, int n_tok,
                      bool record)
{
    struct pf_bundles v = *b;
    v.data = p;
    v.n_ff = n;
    pf_bundle_gate_up(c->pool, c->kern, &v, c->xb, n_tok, c->hg, c->hu, c->scratch);
    if (record) pf_hist_add(c, l, c->hg, (size_t)n_tok * (size_t)n);
    pf_ffn_activate(c->hg, c->hu, (size_t)n_tok * (size_t)n, c->m->info.act);
    pf_bundle_down(c->pool, &v, c->hg, n_tok, c->q, c->panel, j0 > 0);
}

/* Queues the read of slots [j0, j1) of layer l into half h of the staging area; returns where
 * slot j0 will be. Pieces of at most 1 MiB, tagged h. */
static const uint8_t *read_chunk(struct pf_cache *cache, int l, int j0, int j1, int h, size_t half, int *pending)
{
    const uint64_t base = cache->b[l].file_off, S = cache->slot_size;
    uint64_t a, e;
    pf_cache_pages(cache, l, j0, j1, &a, &e);
    uint8_t *dst = cache->stage + (size_t)h * half;
    for (uint64_t o = a; o < e; o += 1u << 20) {
        size_t len = (size_t)(e - o < (1u << 20) ? e - o : (1u << 20));
        if (pf_io_read(cache->io, o, len, dst + (o - a), (uint64_t)h)) return NULL;
        pending[h]++;
        cache->prefill_reads++;
        cache->prefill_bytes += len;
    }
    if (pf_io_submit(cache->io)) return NULL;
    return dst + (base + (uint64_t)j0 * S - a);
}

/* Waits until half h's reads are all in. */
static int wait_half(struct pf_cache *cache, int h, int *pending)
{
    uint64_t tags[16];
    while (pending[h] > 0) {
        double t0 = pf_now();
        int n = pf_io_reap(cache->io, tags, 16, 1);
        cache->prefill_wait_s += pf_now() - t0;
        if (n < 0) return n;
        for (int i = 0; i < n; i++) pending[tags[i] & 1]--;
    }
    return 0;
}

void pf_ffn_offload_batch(struct pinfer_ctx *c, int l, int n_tok, bool record)
{
    const struct pf_bundles *b = c->m->layers[l].ffn_b;
    struct pf_cache *cache = c->cache;
    const int F = b->n_ff, E = b->n_embd;
    const size_t S = b->slot_size, half = cache->stage_cap / 2 / PF_IO_ALIGN * PF_IO_ALIGN;
    /* chunks: multiples of PF_PANEL_ROWS slots (the down sums then match one whole-layer call) */
    int ch = (int)((half - 2 * PF_IO_ALIGN) / S) / PF_PANEL_ROWS * PF_PANEL_ROWS;
    if (ch < PF_PANEL_ROWS) ch = PF_PANEL_ROWS; /* the plan gives the staging area room for it */
    /* the hot slots first, straight from memory, in whole chunks */
    const int n_hot = cache->n_hot[l] / PF_PANEL_ROWS * PF_PANEL_ROWS;
    for (int j0 = 0; j0 < n_hot; j0 += ch) {
        int n = n_hot - j0 < ch ? n_hot - j0 : ch;
        run_chunk(c, l, b, cache->hot[l] + (size_t)j0 * S, j0, n, n_tok, record);
    }
    /* the rest through the two halves of the staging area */
    int pending[2] = { 0, 0 };
    const uint8_t *cur = NULL, *next;
    if (n_hot < F) {
        int j1 = n_hot + ch < F ? n_hot + ch : F;
        if (!(cur = read_chunk(cache, l, n_hot, j1, 0, half, pending))) goto io_fail;
    }
    for (int j0 = n_hot, k = 0; j0 < F; j0 += ch, k++) {
        int j1 = j0 + ch < F ? j0 + ch : F;
        next = NULL;
        if (j1 < F) {
            int j2 = j1 + ch < F ? j1 + ch : F;
            if (!(next = read_chunk(cache, l, j1, j2, (k + 1) & 1, half, pending))) goto io_fail;
        }
        int rc = wait_half(cache, k & 1, pending);
        if (rc < 0) { c->io_error = rc; goto drain; }
        run_chunk(c, l, b, cur, j0, j1 - j0, n_tok, record);
        cur = next;
    }
    for (size_t i = 0; i < (size_t)n_tok * (size_t)E; i++) c->x[i] += c->q[i];
    return;
io_fail:
    c->io_error = PINFER_EIO;
drain:
    pf_cache_wait(cache);
}
