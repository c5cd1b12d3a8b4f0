/* The FFN object (ffn.h): creation, and one layer's FFN for a batch, for every model layout
 * and sparse mode:
 *
 *   layout    batch (n_tok > 1) or calibrating      single-token step (n_tok == 1)
 *   original  dense matmuls                         dense matmuls; oracle / threshold mask
 *                                                   the activation (quality only: all weights
 *                                                   are still read)
 *   experts   moe.c: router, tokens grouped by      moe.c: router, the chosen experts only
 *             expert, each expert's products once   (dense; sparse modes are refused)
 *   bundles   bundle_mm.c (dense); under a budget   decode.c (off, oracle, predictor,
 *             offload.c streams the layer           threshold; reads only what it computes);
 *                                                   under a budget offload.c
 *
 * The original layout's dense path is the forward pass's FFN as it was, operation for
 * operation (its logits match llama.cpp's). Hooks always see the activation in the original
 * neuron order: on bundles it is un-permuted into hu first. */
#include "ffn/ffn_internal.h"
#include "ffn/moe.h"

#include "cache/cache.h"
#include "core/checked.h"
#include "core/error.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== The object ==== */

int pf_ffn_new(struct pf_ffn **out, const struct pinfer_model *m, const struct pf_ffn_params *p, struct pf_pool *pool,
               const struct pf_kernels *k, size_t *bytes)
{
    *out = NULL;
    const struct pinfer_model_info *h = &m->info;
    struct pf_ffn *f = calloc(1, sizeof *f);
    if (!f) return pf_fail(PINFER_ENOMEM, "out of memory");
    f->m = m;
    f->pool = pool;
    f->kern = k;
    f->n_threads = pf_pool_size(pool);
    f->n_batch = p->n_batch;
    f->sparse = p->sparse;
    f->sparsity_target = p->sparsity_target;
    f->verify = p->verify;
    f->ideal_every = p->ideal_every;
    f->prefetch = p->prefetch && p->sparse == PINFER_SPARSE_PREDICTOR && h->has_predictors && m->mem_budget;

    size_t total = sizeof *f;
    const size_t B = (size_t)p->n_batch, E = (size_t)h->n_embd, F = (size_t)h->n_ff, T = (size_t)f->n_threads;
    f->hg = ck_alloc_array(B, F * 4, &total);
    f->hu = ck_alloc_array(B, F * 4, &total);
    f->y = ck_alloc_array(m->mem_budget ? B : 1, E * 4, &total);
    /* scratch: the largest activation conversion any FFN product needs (weights a prepared
       model lacks have n_in == 0) */
    size_t sc = 0, rank = 1;
#define NEED(w, nt) do { if ((w)->n_in > 0) { size_t s_ = pf_matmul_scratch_size((w)->type, (w)->n_in, (nt)); if (s_ > sc) sc = s_; } } while (0)
    for (int l = 0; l < h->n_layer; l++) {
        const struct pf_layer *L = &m->layers[l];
        NEED(&L->ffn_gate, p->n_batch); NEED(&L->ffn_up, p->n_batch); NEED(&L->ffn_down, p->n_batch);
        NEED(&L->ffn_router, p->n_batch);
        for (int e = 0; L->exp && e < h->n_expert; e++) {
            NEED(&L->exp[e].gate, p->n_batch); NEED(&L->exp[e].up, p->n_batch); NEED(&L->exp[e].down, p->n_batch);
        }
        for (int e = 0; L->ffn_b && e < pf_model_experts(m); e++) {
            const struct pf_bundles *b = &L->ffn_b[e];
            size_t s = pf_bundle_scratch_size(b, p->n_batch);
            if (s > sc) sc = s;
            NEED(&b->fc1, 1);
            NEED(&b->fc2, 1);
            if ((size_t)b->fc1.n_out > rank) rank = (size_t)b->fc1.n_out;
        }
    }
#undef NEED
    f->scratch = sc == SIZE_MAX ? NULL : ck_alloc_array(sc ? sc : 64, 1, &total);
    f->ypart = ck_alloc_array((size_t)pf_dec_parts(f->n_threads), E * 4, &total);
    f->panel = m->bundles ? ck_alloc_array(T, PF_PANEL_FLOATS * sizeof(float), &total) : NULL;
    f->pred_h = ck_alloc_array(rank, 4, &total);
    f->pred_logit = ck_alloc_array(F, 4, &total);
    f->thresh = ck_alloc_array((size_t)h->n_layer, 4, &total);
    f->hist = p->sparse == PINFER_SPARSE_THRESHOLD ? calloc((size_t)h->n_layer * PF_HIST_BINS, sizeof *f->hist) : NULL;
    f->cnt = ck_alloc_array(T, sizeof *f->cnt, &total);
    f->dec = m->bundles ? pf_dec_new(f->n_threads, h->n_ff) : NULL;
    f->lstats = calloc((size_t)h->n_layer, sizeof *f->lstats);
    if (!f->hg || !f->hu || !f->y || !f->scratch || !f->ypart || (m->bundles && !f->panel) || !f->pred_h ||
        !f->pred_logit || !f->thresh || (p->sparse == PINFER_SPARSE_THRESHOLD && !f->hist) || !f->cnt || !f->lstats ||
        (m->bundles && !f->dec))
        goto nomem;
    for (int l = 0; l < h->n_layer; l++) f->thresh[l] = 0;
    if (h->n_expert) {
        const size_t n = pf_moe_buf_size(m, p->n_batch);
        if (n == SIZE_MAX || !(f->moe_mem = malloc(n))) goto nomem;
        total += n;
        pf_moe_bind(f, f->moe_mem);
        f->moe_guess_layer = -1;
    }
    if (m->mem_budget) {
        /* the per-step lists of the offloaded FFN */
        const size_t parts = (size_t)pf_dec_parts(f->n_threads);
        size_t n = F * 3 * sizeof(void *) + F * sizeof(int) + parts;
        char *mem = malloc(n);
        if (!mem) goto nomem;
        total += n;
        f->off_mem = mem;
        f->off_slotp = (const uint8_t **)(void *)mem; mem += F * sizeof(void *);
        f->off_was = (const uint8_t **)(void *)mem;   mem += F * sizeof(void *);
        f->off_dst = (uint8_t **)(void *)mem;         mem += F * sizeof(void *);
        f->off_list = (int *)(void *)mem;             mem += F * sizeof(int);
        f->off_pmiss = (uint8_t *)mem;
    }
    if (bytes) *bytes = total;
    *out = f;
    return 0;
nomem:
    pf_ffn_free(f);
    return pf_fail(PINFER_ENOMEM, "cannot allocate the FFN's buffers for batches of %d tokens", p->n_batch);
}

void pf_ffn_free(struct pf_ffn *f)
{
    if (!f) return;
    free(f->hg); free(f->hu); free(f->y); free(f->scratch); free(f->ypart); free(f->panel); free(f->pred_h);
    free(f->pred_logit); free(f->thresh); free(f->hist); free(f->cnt); free(f->lstats); free(f->off_mem); free(f->moe_mem);
    pf_dec_free(f->dec);
    free(f);
}

void pf_ffn_set_cache(struct pf_ffn *f, struct pf_cache *cache) { f->cache = cache; }
bool pf_ffn_wants_prefetch(const struct pf_ffn *f) { return f->prefetch; }
enum pinfer_sparse_mode pf_ffn_mode(const struct pf_ffn *f) { return f->sparse; }
int pf_ffn_chunk_slots(void) { return PF_PANEL_ROWS; }
void pf_ffn_set_hook(struct pf_ffn *f, pf_ffn_hook fn, void *ud) { f->hook = fn; f->hook_ud = ud; }
void pf_ffn_set_io_hook(struct pf_ffn *f, pf_ffn_io_hook fn, void *ud) { f->io_hook = fn; f->io_hook_ud = ud; }
bool pf_ffn_has_hooks(const struct pf_ffn *f) { return f->hook || f->io_hook || f->pre_hook || f->route_hook || f->expert_hook; }
void pf_ffn_set_moe_hooks(struct pf_ffn *f, pf_ffn_route_hook route, pf_ffn_expert_hook expert, void *ud)
{
    f->route_hook = route;
    f->expert_hook = expert;
    f->moe_hook_ud = ud;
}
void pf_ffn_set_pre_hook(struct pf_ffn *f, pf_ffn_pre_hook fn, void *ud) { f->pre_hook = fn; f->pre_hook_ud = ud; }
double pf_ffn_pred_seconds(const struct pf_ffn *f) { return f->t_pred; }
void pf_ffn_moe_guess_stats(const struct pf_ffn *f, uint64_t *guesses, uint64_t *hits)
{
    *guesses = f->moe_guesses;
    *hits = f->moe_guess_hits;
}
void pf_ffn_moe_guess_reset(struct pf_ffn *f) { f->moe_guesses = f->moe_guess_hits = 0; }
void pf_ffn_time_reset(struct pf_ffn *f) { f->t_pred = 0; }

/* ==== Hooks ==== */

/* act: n_tok rows of n_ff, slot order when perm is set; tmp: room for the un-permuted copy. */
static void call_hooks(struct pf_ffn *f, int l, const float *act, const int32_t *perm, float *tmp, int n_tok)
{
    if (!f->hook && !f->io_hook) return;
    const int F = f->m->info.n_ff;
    act = pf_ffn_unpermute(act, perm, tmp, n_tok, F);
    if (f->hook) f->hook(f->hook_ud, l, act, n_tok, F);
    if (f->io_hook) f->io_hook(f->io_hook_ud, l, f->xb, f->m->info.n_embd, act, F, n_tok);
}

/* ==== Original layout ==== */

void pf_ffn_mm(struct pf_ffn *f, float *y, const struct pf_weight *w, const float *x, int n_tok)
{
    pf_matmul(f->pool, y, w->data, w->type, w->n_in, w->n_out, x, n_tok, f->scratch);
}

/* Single-token step of a sparse mode on the original layout: masks the activation the way the
 * mode would skip neurons, so its effect on quality can be measured; counts for the stats. */
static void mask_original(struct pf_ffn *f, int l)
{
    const struct pinfer_model_info *h = &f->m->info;
    const int F = h->n_ff;
    struct pf_sparse_count *cnt = &f->cnt[0];
    uint32_t active = 0, true_active = 0, hit = 0;
    double mass_all = 0, mass_kept = 0;
    const float t = f->sparse == PINFER_SPARSE_THRESHOLD ? f->thresh[l] : 0;
    for (int i = 0; i < F; i++) {
        float g = f->hg[i], u = f->hu[i], full = pf_act_full(h->act, g, u);
        bool keep = true;
        if (f->sparse == PINFER_SPARSE_THRESHOLD && fabsf(pf_act_gate(h->act, g)) < t) keep = false;
        if (full != 0) {
            true_active++;
            mass_all += fabsf(full);
            if (keep) { hit++; mass_kept += fabsf(full); }
        }
        if (keep && full != 0) active++;
        if (!keep) f->hg[i] = f->hu[i] = 0; /* act(0) * 0 == 0 for every activation */
    }
    cnt->gate = cnt->up = cnt->down = (uint32_t)F; /* every weight was read */
    cnt->active = active;
    cnt->true_active = true_active;
    cnt->hit = hit;
    cnt->mass_all = mass_all;
    cnt->mass_kept = mass_kept;
}

static void ffn_original(struct pf_ffn *f, int l, int n, bool record, bool sparse_step)
{
    const struct pf_layer *L = &f->m->layers[l];
    const struct pinfer_model_info *h = &f->m->info;
    const int E = h->n_embd, F = h->n_ff;
    pf_ffn_mm(f, f->hg, &L->ffn_gate, f->xb, n);
    pf_ffn_mm(f, f->hu, &L->ffn_up, f->xb, n);
    if (record) pf_hist_add(f, l, f->hg, (size_t)n * F);
    if (f->pre_hook) f->pre_hook(f->pre_hook_ud, l, f->hg, f->hu, n, F);
    if (sparse_step) mask_original(f, l);
    pf_act_apply(f->hg, f->hu, (size_t)n * F, h->act);
    call_hooks(f, l, f->hg, NULL, NULL, n);
    pf_ffn_mm(f, f->xb, &L->ffn_down, f->hg, n);
    for (size_t i = 0; i < (size_t)n * E; i++) f->x[i] += f->xb[i];
}

/* ==== Bundles ==== */

static int ffn_bundles(struct pf_ffn *f, int l, int n, bool record, bool one)
{
    const struct pf_bundles *b = f->m->layers[l].ffn_b;
    const struct pinfer_model_info *h = &f->m->info;
    const int E = h->n_embd, F = h->n_ff;
    if (f->cache && !one) return pf_ffn_offload_batch(f, l, n, record); /* hooks are not called under a budget */
    if (one) {
        if (f->cache) {
            int rc = pf_ffn_offload_decode(f, l, l, b, f->y);
            int rc2 = pf_cache_read_ahead_drop(f->cache); /* whatever was read ahead is spent */
            if (rc) return rc;
            if (rc2) return rc2;
        } else {
            pf_ffn_bundle_decode(f, l, b, f->y);
        }
        if (record) pf_hist_add(f, l, f->hu, (size_t)F); /* the decode step left the gates in hu */
        call_hooks(f, l, f->hg, b->perm, f->hu, 1);
        for (int i = 0; i < E; i++) f->x[i] += f->y[i];
        return 0;
    }
    pf_bundle_gate_up(f->pool, f->kern, b, f->xb, n, f->hg, f->hu, f->scratch);
    if (record) pf_hist_add(f, l, f->hg, (size_t)n * F);
    if (f->pre_hook) f->pre_hook(f->pre_hook_ud, l, f->hg, f->hu, n, F);
    pf_act_apply(f->hg, f->hu, (size_t)n * F, h->act);
    call_hooks(f, l, f->hg, b->perm, f->hu, n);
    pf_bundle_down(f->pool, f->kern, b, f->hg, n, f->xb, f->panel, false);
    for (size_t i = 0; i < (size_t)n * E; i++) f->x[i] += f->xb[i];
    return 0;
}

/* ==== Steps ==== */

void pf_ffn_batch_begin(struct pf_ffn *f, int n)
{
    /* threshold mode, first single-token step: cut from what the prompt showed, or, with
     * nothing seen yet, run this step dense and calibrate on it */
    f->self_calib = false;
    if (n == 1 && f->sparse == PINFER_SPARSE_THRESHOLD && !f->thresh_ready && !f->calibrating) {
        if (pf_hist_total(f) > 0) pf_thresh_finish(f);
        else f->calibrating = f->self_calib = true;
    }
    if (n == 1) f->n_sparse_tokens++;
}

void pf_ffn_batch_end(struct pf_ffn *f)
{
    if (!f->self_calib) return;
    f->self_calib = f->calibrating = false;
    pf_thresh_finish(f);
}

int pf_ffn_step(struct pf_ffn *f, int l, float *xb, float *x, int n)
{
    const bool record = f->sparse == PINFER_SPARSE_THRESHOLD && !f->thresh_ready;
    const bool one = n == 1;
    f->xb = xb;
    f->x = x;
    if (one) memset(f->cnt, 0, sizeof *f->cnt * (size_t)f->n_threads);
    if (f->m->info.n_expert) {
        int rc = pf_ffn_moe(f, l, n); /* experts in matrices or bundles; counts each expert's step */
        if (rc || !one || f->m->layers[l].ffn_b) return rc;
    } else if (f->m->layers[l].ffn_b) {
        int rc = ffn_bundles(f, l, n, record, one);
        if (rc) return rc;
    } else {
        ffn_original(f, l, n, record, one && !f->calibrating && f->sparse != PINFER_SPARSE_OFF);
    }
    if (!one) return 0;
    struct pf_sparse_layer_stats *s = &f->lstats[l];
    if (!f->m->layers[l].ffn_b && (f->calibrating || f->sparse == PINFER_SPARSE_OFF)) {
        /* every neuron of the step's experts (one, or the chosen ones of a mixture) */
        const uint32_t F = (uint32_t)f->m->info.n_ff * (uint32_t)(f->m->info.n_expert ? f->m->info.n_expert_used : 1);
        s->gate += F; s->up += F; s->down += F;
        return 0;
    }
    pf_ffn_add_counts(f, l);
    return 0;
}

void pf_ffn_add_counts(struct pf_ffn *f, int l)
{
    struct pf_sparse_layer_stats *s = &f->lstats[l];
    for (int i = 0; i < f->n_threads; i++) {
        const struct pf_sparse_count *k = &f->cnt[i];
        s->gate += k->gate; s->up += k->up; s->down += k->down; s->clusters += k->clusters;
        s->predicted += k->predicted; s->active += k->active; s->true_active += k->true_active;
        s->hit += k->hit; s->mass_all += k->mass_all; s->mass_kept += k->mass_kept;
    }
    memset(f->cnt, 0, sizeof *f->cnt * (size_t)f->n_threads);
}

int pf_ffn_prefetch(struct pf_ffn *f, int l, const float *x, float *tmp)
{
    if (!f->cache || !f->prefetch || f->calibrating || f->ideal_every > 0) return 0;
    const struct pinfer_model *m = f->m;
    /* the layer's FFN input will be rmsnorm(x + attention(x)); the attention is small next to
       x, so rmsnorm(x) predicts most of the same neurons */
    pf_rmsnorm(tmp, x, m->layers[l].ffn_norm, m->info.n_embd, m->info.norm_eps);
    if (m->info.n_expert) return pf_moe_prefetch(f, l, tmp); /* which experts, then their slots */
    return pf_ffn_offload_prefetch(f, l, m->layers[l].ffn_b, tmp);
}

/* ==== Threshold calibration ==== */

void pf_ffn_calibrate_begin(struct pf_ffn *f)
{
    memset(f->hist, 0, sizeof *f->hist * (size_t)f->m->info.n_layer * PF_HIST_BINS);
    f->thresh_ready = false;
    f->calibrating = true;
}

void pf_ffn_calibrate_end(struct pf_ffn *f, bool ok)
{
    f->calibrating = false;
    if (ok) pf_thresh_finish(f);
}
