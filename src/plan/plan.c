/* pinfer plan: the configuration for a budget or a speed, and the budget -> speed curve
 * (plan.h). */
#include "plan/plan.h"

#include "cache/cache.h"
#include "core/error.h"
#include "ffn/ffn.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/ctx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const float hot_shares[] = { 0.0f, 0.25f, 0.5f, 0.75f, 0.9f, 1.0f };
#define N_SHARES ((int)(sizeof hot_shares / sizeof hot_shares[0]))
#define IO_DEPTH 128 /* the runtime's (io/io.h default) */

struct planner {
    const struct pf_machine *mc;
    struct pinfer_model *m;
    struct pf_plan_result *r;
    uint64_t ctx_bytes;
    int *hot_unit;        /* (n_units) a mixture's hot split for the budget being planned */
};

/* Layer and expert (-1: dense) of unit u of m. */
static int unit_layer(const struct pinfer_model *m, int u) { return u / pf_model_experts(m); }
static int unit_expert(const struct pinfer_model *m, int u) { return m->info.n_expert ? u % m->info.n_expert : -1; }

/* The cost model's view of the loaded model: per unit (a layer, or a mixture's (layer, expert))
 * its slot frequencies and share of the tokens (share: n_units, filled for a mixture). */
static void model_view(struct pinfer_model *m, int threads, struct pf_plan_model *pm, const float **freq, double *share)
{
    const struct pinfer_model_info *h = &m->info;
    memset(pm, 0, sizeof *pm);
    pm->n_layer = h->n_layer;
    pm->n_ff = h->n_ff;
    pm->threads = threads;
    pm->main_type = h->weight_type;
    pm->n_params = h->n_params;
    if (h->n_expert) /* a token multiplies by its experts' weights only */
        pm->n_params -= (uint64_t)((double)h->n_layer * h->n_expert * 3.0 * h->n_embd * h->n_ff *
                                   (h->n_expert - h->n_expert_used) / h->n_expert);
    pm->n_units = m->bundles ? m->n_units : h->n_layer;
    pm->fan = h->n_expert ? h->n_expert_used : 1;
    pm->dense_bytes = pf_weight_bytes(&m->output);
    for (int l = 0; l < h->n_layer; l++) {
        const struct pf_layer *L = &m->layers[l];
        pm->dense_bytes += pf_weight_bytes(&L->wq) + pf_weight_bytes(&L->wk) + pf_weight_bytes(&L->wv) + pf_weight_bytes(&L->wo);
        if (h->n_expert) pm->dense_bytes += pf_weight_bytes(&L->ffn_router);
    }
    for (int u = 0; m->bundles && u < m->n_units; u++) {
        const struct pf_bundles *b = &m->bundles[u];
        if (b->slot_size > pm->slot_bytes) pm->slot_bytes = b->slot_size;
        pm->ffn_bytes += (double)b->slot_size * b->n_ff;
        if (b->fc1.n_out > 0) {
            /* per token: the predictors of the units a token runs */
            pm->pred_bytes += (h->n_expert ? b->share : 1.0) * (pf_weight_bytes(&b->fc1) + pf_weight_bytes(&b->fc2));
            pm->sparse = true;
        }
        freq[u] = b->freq;
        share[u] = h->n_expert ? b->share : 1.0;
    }
    /* not prepared: the dense FFN a token reads (a mixture of experts: the used experts') */
    if (!m->bundles) pm->ffn_bytes = (double)h->decode_bytes - pm->dense_bytes;
    pm->freq = m->bundles ? (const float *const *)freq : NULL;
    pm->share = m->bundles && h->n_expert ? share : NULL;
}

/* Per unit, the predictor's held-out predicted / active fractions from the prepared file
 * (docs/sparse-format.md); 1 where absent. */
static void pred_over(const char *path, const struct pinfer_model *m, double *over)
{
    for (int u = 0; u < m->n_units; u++) over[u] = 1;
    struct gguf_file *g = NULL;
    if (gguf_open(&g, path)) return;
    for (int u = 0; u < m->n_units; u++) {
        char key[96];
        float pred = 0, act = 0;
        pf_unit_key(key, sizeof key, "pinfer.predictor", unit_layer(m, u), unit_expert(m, u), "predicted");
        int a = gguf_get_f32(g, key, &pred);
        pf_unit_key(key, sizeof key, "pinfer.predictor", unit_layer(m, u), unit_expert(m, u), "active");
        int b = gguf_get_f32(g, key, &act);
        if (!a && !b && act > 0 && pred >= act && pred / act < 100) over[u] = pred / act;
    }
    gguf_close(g);
}

/* Per unit, how often prepare measured its predictor asking for each slot
 * (pinfer.bundle.N[.E].pred_freq, n_ff floats in [0, 1], per step of the unit); rows[u] = NULL
 * where the file lacks it (prepared before 2026-12-06) or it is malformed. mem: n_units * n_ff
 * floats. */
static void pred_freq_load(const char *path, const struct pinfer_model *m, const float **rows, float *mem)
{
    const int n_ff = m->info.n_ff;
    for (int u = 0; u < m->n_units; u++) rows[u] = NULL;
    struct gguf_file *g = NULL;
    if (gguf_open(&g, path)) return;
    for (int l = 0; l < m->n_units; l++) {
        char key[96];
        pf_unit_key(key, sizeof key, "pinfer.bundle", unit_layer(m, l), unit_expert(m, l), "pred_freq");
        const struct gguf_kv *kv = gguf_find(g, key);
        if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != GGUF_F32 || kv->arr_n != (uint64_t)n_ff) continue;
        float *row = mem + (size_t)l * (size_t)n_ff;
        memcpy(row, kv->arr_data, (size_t)n_ff * sizeof *row);
        bool ok = true;
        for (int j = 0; j < n_ff && ok; j++) ok = row[j] >= 0 && row[j] <= 1;
        if (ok) rows[l] = row;
    }
    gguf_close(g);
}

/* Per unit, how soon prepare measured its predictor asking for a slot again
 * (pinfer.prepare.reuse_windows, pinfer.bundle.N[.E].reuse_occ / reuse_hit: docs/sparse-format.md)
 * into pm (the arrays in *mem, the caller's to free); left out when the file lacks them (prepared
 * before 2026-12-06) or any of them is malformed: the cost model then assumes independent
 * requests. */
static void reuse_load(const char *path, const struct pinfer_model *m, struct pf_plan_model *pm, const float ***rows,
                       double **wins, float **mem)
{
    *rows = NULL; *wins = NULL; *mem = NULL;
    struct gguf_file *g = NULL;
    if (gguf_open(&g, path)) return;
    const int U = m->n_units, F = m->info.n_ff;
    double *w = NULL;
    const float **r = NULL;
    float *buf = NULL;
    int B = 0;
    double wbuf[64];
    const int K = pf_model_reuse_windows(g, wbuf, 64);
    if (!K || !(w = malloc((size_t)K * sizeof *w)) || !(r = calloc(2 * (size_t)U, sizeof *r))) goto fail;
    memcpy(w, wbuf, (size_t)K * sizeof *w);
    for (int u = 0; u < U; u++)
        for (int which = 0; which < 2; which++) {
            uint64_t n; /* a count of a bucket's slots, or a fraction; -1: not measured */
            const void *curve = pf_model_reuse_curve(g, m, u, which ? "reuse_hit" : "reuse_occ", K, which ? 1.0f : (float)F, &n);
            if (!curve || (B && n != (uint64_t)B * K) || n / K > (uint64_t)F) goto fail;
            if (!B) {
                B = (int)(n / K);
                if (!(buf = malloc(2 * (size_t)U * n * sizeof *buf))) goto fail;
            }
            float *row = buf + ((size_t)u * 2 + which) * n;
            memcpy(row, curve, n * sizeof *row);
            r[which * U + u] = row;
        }
    pm->reuse_occ = r;
    pm->reuse_hit = r + U;
    pm->reuse_w = w;
    pm->n_reuse_b = B;
    pm->n_reuse_w = K;
    *rows = r; *wins = w; *mem = buf;
    gguf_close(g);
    return;
fail:
    free(w); free(r); free(buf);
    gguf_close(g);
}

/* The best hot share for budget B (the model's resident weights and ctx_bytes fixed): into *pt.
 * PINFER_ENOMEM (with the runtime's message) when B is below the smallest workable budget. */
static int plan_budget(struct planner *P, uint64_t B, struct pf_plan_point *pt)
{
    struct pinfer_model *m = P->m;
    const uint64_t keep = m->mem_budget;
    bool any = false;
    int rc = 0;
    for (int i = 0; i < N_SHARES; i++) {
        const struct pf_cache_config cfg = {
            .hot_frac = hot_shares[i], .prefetch = false, .stage_bytes = 0, .chunk_slots = pf_ffn_chunk_slots(),
            .backend = PF_IO_AUTO, .shares = 1,
        };
        struct pf_cache_plan cp;
        m->mem_budget = B;
        rc = pf_cache_plan(m, P->ctx_bytes, &cfg, &cp);
        m->mem_budget = keep;
        if (rc) return rc;
        struct pf_prediction pr;
        if (P->hot_unit) { /* a mixture: the cache's split of the hot bytes among the experts */
            pf_cache_hot_split(m, cp.n_hot, cfg.chunk_slots, P->hot_unit);
            P->r->pm.hot_unit = P->hot_unit;
        }
        rc = pf_predict(P->mc, &P->r->pm, true, cp.n_hot, cp.n_cold, P->r->io_backend, IO_DEPTH, &pr);
        P->r->pm.hot_unit = NULL;
        if (rc) return rc;
        if (!any || pr.decode_tps >= pt->pr.decode_tps) { /* a tie: the larger hot share (no LRU upkeep) */
            pt->budget = B;
            pt->cache_hot = hot_shares[i];
            pt->n_hot = cp.n_hot;
            pt->n_cold = cp.n_cold;
            pt->pr = pr;
            any = true;
        }
    }
    return 0;
}

/* Whether pf_cache_plan accepts budget B (the fixed segment fits; the hot share plays no part). */
static bool workable(struct planner *P, uint64_t B)
{
    const struct pf_cache_config cfg = {
        .hot_frac = 0, .prefetch = false, .stage_bytes = 0, .chunk_slots = pf_ffn_chunk_slots(), .backend = PF_IO_AUTO,
        .shares = 1,
    };
    struct pf_cache_plan cp;
    const uint64_t keep = P->m->mem_budget;
    P->m->mem_budget = B;
    bool ok = pf_cache_plan(P->m, P->ctx_bytes, &cfg, &cp) == 0;
    P->m->mem_budget = keep;
    return ok;
}

/* The smallest budget (to 1 MiB) pf_cache_plan accepts: a layout only, no prediction. */
static uint64_t smallest_budget(struct planner *P)
{
    uint64_t lo = P->m->resident_bytes, hi = P->r->in_memory; /* lo fails (no room for the context) */
    while (hi - lo > (1u << 20)) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (workable(P, mid)) hi = mid;
        else lo = mid;
    }
    return hi;
}

/* The context's own bytes under this plan, as a run under a budget holds them: a context made
 * first without the budget (no cache), which sizes a budget just above the fixed segment; then
 * one under that budget with nothing hot (a small cold segment, nothing read); both dropped. */
static int context_bytes(struct planner *P, const struct pf_plan_request *rq, int threads, uint64_t *out)
{
    struct pinfer_model *m = P->m;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_threads = threads;
    cp.n_ctx = rq->n_ctx;
    cp.n_batch = rq->n_batch > 0 ? rq->n_batch : 512;
    cp.sparse = P->r->sparse ? PINFER_SPARSE_PREDICTOR : PINFER_SPARSE_OFF;
    cp.cache_hot = 0;
    const uint64_t keep = m->mem_budget;
    m->mem_budget = 0;
    struct pinfer_ctx *c = NULL;
    int rc = pinfer_ctx_new(&c, m, &cp);
    if (!rc && m->bundles) {
        m->mem_budget = m->resident_bytes + 2 * c->buf_bytes + (64u << 20);
        pinfer_ctx_free(c);
        c = NULL;
        rc = pinfer_ctx_new(&c, m, &cp);
    }
    m->mem_budget = keep;
    if (rc) return rc;
    *out = c->buf_bytes + (uint64_t)threads * (256u << 10); /* as the runtime counts its stacks */
    P->r->n_ctx = c->n_ctx;
    P->r->n_batch = c->n_batch;
    pinfer_ctx_free(c);
    return 0;
}

int pf_plan_make(const struct pf_machine *mc, const struct pf_plan_request *rq, struct pf_plan_result *r)
{
    memset(r, 0, sizeof *r);
    const int threads = rq->threads > 0 ? rq->threads : mc->cores > 0 ? mc->cores : pinfer_cpu_count();
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.mem_budget = UINT64_MAX / 4; /* the FFN bundles stay in the file: nothing of them is read */
    struct pinfer_model *m = NULL;
    int rc = pinfer_model_load(&m, rq->model, &mp);
    if (rc == PINFER_EINVAL) { /* not prepared: mapped, never read */
        mp = pinfer_model_default_params();
        mp.use_mmap = true;
        rc = pinfer_model_load(&m, rq->model, &mp);
    }
    if (rc) return rc;
    const size_t NU = (size_t)(m->bundles ? m->n_units : m->info.n_layer);
    const float **freq = calloc(NU, sizeof *freq), **pfreq = calloc(NU, sizeof *pfreq);
    double *over = calloc(NU, sizeof *over), *share = calloc(NU, sizeof *share);
    int *hot_unit = m->info.n_expert && m->bundles ? calloc(NU, sizeof *hot_unit) : NULL;
    float *pfreq_mem = m->bundles ? malloc(NU * (size_t)m->info.n_ff * sizeof *pfreq_mem) : NULL;
    if (!freq || !pfreq || !over || !share || (m->bundles && !pfreq_mem) || (m->info.n_expert && m->bundles && !hot_unit)) {
        free(freq); free(pfreq); free(over); free(share); free(hot_unit); free(pfreq_mem); pinfer_model_free(m);
        return pf_fail(PINFER_ENOMEM, "out of memory");
    }
    const float **reuse_rows = NULL;
    double *reuse_w = NULL;
    float *reuse_mem = NULL;
    struct planner P = { .mc = mc, .m = m, .r = r, .hot_unit = hot_unit };
    r->threads = threads;
    r->io_depth = IO_DEPTH;
    r->prepared = m->bundles != NULL;
    model_view(m, threads, &r->pm, freq, share);
    r->sparse = r->pm.sparse;
    if (r->sparse) {
        pred_over(rq->model, m, over);
        r->pm.pred_over = over;
        pred_freq_load(rq->model, m, pfreq, pfreq_mem);
        r->pm.pred_freq = (const float *const *)pfreq;
        reuse_load(rq->model, m, &r->pm, &reuse_rows, &reuse_w, &reuse_mem);
    }
    r->io_backend = pf_machine_best_backend(mc, (size_t)(ceil((double)r->pm.slot_bytes / 4096) * 4096), IO_DEPTH);
    if ((rc = context_bytes(&P, rq, threads, &P.ctx_bytes))) goto out;

    /* everything in memory: the file's weights and the context */
    r->in_memory = (uint64_t)(r->pm.dense_bytes + r->pm.ffn_bytes + r->pm.pred_bytes) + P.ctx_bytes +
                   (uint64_t)m->info.n_vocab * m->tok_embd.row_size;
    struct pf_plan_point mem = { .budget = 0, .cache_hot = 1 };
    if ((rc = pf_predict(mc, &r->pm, false, 0, 0, r->io_backend, IO_DEPTH, &mem.pr))) goto out;
    r->roof_tps = mem.pr.decode_tps;

    if (!r->prepared) {
        if (rq->budget && rq->budget < r->in_memory) {
            rc = pf_fail(PINFER_EINVAL, "a budget of %.0f MiB below the model's %.0f MiB needs a prepared model (its FFN as "
                         "neuron bundles): run pinfer prepare -m %s -o PREPARED.gguf and plan that", (double)rq->budget / (1 << 20),
                         (double)r->in_memory / (1 << 20), rq->model);
            goto out;
        }
        r->curve[r->n_curve++] = mem;
        r->chosen = mem;
        r->min_budget = r->in_memory;
        r->reachable = rq->target_tps <= 0 || mem.pr.decode_tps >= rq->target_tps;
        goto out;
    }

    r->min_budget = smallest_budget(&P);
    /* the curve: budgets evenly from the smallest workable one to all in memory */
    const int n = PF_PLAN_CURVE - 1;
    for (int i = 0; i < n; i++) {
        uint64_t B = r->min_budget + (uint64_t)((double)(r->in_memory - r->min_budget) * i / (n - 1));
        if ((rc = plan_budget(&P, B, &r->curve[r->n_curve]))) goto out;
        r->n_curve++;
    }
    r->curve[r->n_curve++] = mem;
    /* a budget can always run what a smaller one runs: the curve never falls */
    for (int i = 1; i < r->n_curve - 1; i++)
        if (r->curve[i - 1].pr.decode_tps > r->curve[i].pr.decode_tps * (1 + 1e-6)) {
            uint64_t b = r->curve[i].budget;
            r->curve[i] = r->curve[i - 1];
            r->curve[i].budget = b;
        }

    if (rq->target_tps > 0) {
        /* the smallest budget whose prediction reaches the target: bisection on [min, in memory] */
        struct pf_plan_point hi_pt;
        if ((rc = plan_budget(&P, r->in_memory, &hi_pt))) goto out;
        r->reachable = hi_pt.pr.decode_tps >= rq->target_tps;
        if (!r->reachable) { r->chosen = hi_pt; goto out; }
        /* the first curve budget whose own configuration reaches it, then bisection below it */
        uint64_t lo = r->min_budget, hi = r->in_memory;
        struct pf_plan_point pt;
        for (int i = 0; i < r->n_curve - 1; i++) {
            if ((rc = plan_budget(&P, r->curve[i].budget, &pt))) goto out;
            if (pt.pr.decode_tps >= rq->target_tps) { hi = pt.budget; hi_pt = pt; break; }
            lo = r->curve[i].budget;
        }
        if (hi == r->min_budget) { r->chosen = hi_pt; goto out; }
        while (hi - lo > (1u << 20)) {
            uint64_t mid = lo + (hi - lo) / 2;
            if ((rc = plan_budget(&P, mid, &pt))) goto out;
            if (pt.pr.decode_tps >= rq->target_tps) { hi = mid; hi_pt = pt; }
            else lo = mid;
        }
        r->chosen = hi_pt;
    } else if (rq->budget) {
        if (rq->budget < r->min_budget) {
            rc = pf_fail(PINFER_ENOMEM, "a budget of %.0f MiB is below the smallest workable one for this model, %.0f MiB "
                         "(weights kept in memory, the context of %d tokens, staging and cache tables)",
                         (double)rq->budget / (1 << 20), (double)r->min_budget / (1 << 20), r->n_ctx);
            goto out;
        }
        if (rq->budget >= r->in_memory) {
            r->chosen = mem; /* it all fits: no budget needed */
            goto out;
        }
        if ((rc = plan_budget(&P, rq->budget, &r->chosen))) goto out;
        /* a smaller budget's configuration may be faster (fewer, larger reads...): it fits too */
        for (int i = 0; i < r->n_curve - 1; i++) {
            struct pf_plan_point pt;
            if (r->curve[i].budget > rq->budget) break;
            if ((rc = plan_budget(&P, r->curve[i].budget, &pt))) goto out;
            if (pt.pr.decode_tps > r->chosen.pr.decode_tps) r->chosen = pt;
        }
    } else {
        r->chosen = mem;
    }
out:
    free(freq);
    free(over);
    free(share);
    free(hot_unit);
    free(pfreq);
    free(pfreq_mem);
    free(reuse_rows);
    free(reuse_w);
    free(reuse_mem);
    r->pm.reuse_occ = r->pm.reuse_hit = NULL;
    r->pm.reuse_w = NULL;
    r->pm.freq = NULL; /* pointed into the model and this function */
    r->pm.pred_over = NULL;
    r->pm.pred_freq = NULL;
    r->pm.share = NULL;
    pinfer_model_free(m);
    return rc;
}
