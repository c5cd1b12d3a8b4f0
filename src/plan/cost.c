/* The planner's cost model (cost.h). */
#include "plan/cost.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>

void pf_lru_che(const double *p, int n, double cap, double *hit)
{
    int live = 0;
    for (int i = 0; i < n; i++) live += p[i] > 0;
    if (cap >= live) {
        for (int i = 0; i < n; i++) hit[i] = p[i] > 0 ? 1 : 0;
        return;
    }
    if (cap <= 0) {
        for (int i = 0; i < n; i++) hit[i] = 0;
        return;
    }
    /* occupancy(T) = sum 1 - exp(-p T) grows from 0 to `live`: bisect for cap in log T */
    double lo = 1e-9, hi = 1e12;
    for (int it = 0; it < 200; it++) {
        double mid = sqrt(lo * hi), occ = 0;
        for (int i = 0; i < n; i++) occ += p[i] > 0 ? -expm1(-p[i] * mid) : 0;
        if (occ < cap) lo = mid;
        else hi = mid;
        if (hi / lo < 1 + 1e-9) break;
    }
    for (int i = 0; i < n; i++) hit[i] = p[i] > 0 ? -expm1(-p[i] * lo) : 0;
}

static double unit_share(const struct pf_plan_model *pm, int u) { return pm->share ? pm->share[u] : 1.0; }
static int hot(const struct pf_plan_model *pm, int u, int n_hot) { return pm->hot_unit ? pm->hot_unit[u] : n_hot; }

static double over(const struct pf_plan_model *pm, int l)
{
    return pm->pred_over && pm->pred_over[l] > 1 ? pm->pred_over[l] : 1;
}

/* Per layer: the extra probability each slot is predicted without being active. The predictor's
 * false positives are spread evenly over the layer (they are near-threshold neurons, not the
 * hot ones, which are predicted when active anyway). */
static double extra(const struct pf_plan_model *pm, int l)
{
    double a = 0;
    for (int j = 0; j < pm->n_ff; j++) a += pm->freq[l][j];
    return (over(pm, l) - 1) * a / pm->n_ff;
}

/* The probability that a step of layer l asks for slot j: measured by prepare when the file has
 * it, else the slot's activity plus the layer's even spread x of false positives. */
static double request(const struct pf_plan_model *pm, int l, int j, double x)
{
    if (!pm->sparse) return 1.0;
    if (pm->pred_freq && pm->pred_freq[l]) return pm->pred_freq[l][j];
    return fmin(1.0, pm->freq[l][j] + x);
}

/* GB/s a product over resident weights runs at: memory or the kernels, the slower. */
static double dense_rate(const struct pf_machine *mc, const struct pf_plan_model *pm, double mem_gbs)
{
    double k = pm->main_type >= 0 && pm->main_type < PF_TYPE_COUNT && mc->type_done[pm->main_type]
                   ? mc->matvec_gbs[pm->main_type] * pm->threads : 0;
    return k > 0 && k < mem_gbs ? k : mem_gbs;
}

/* Whether unit u has reuse measurements the model can use (they describe the predictor's
 * requests, so predictor mode only): every bucket's shortest window. */
static bool has_reuse(const struct pf_plan_model *pm, int u)
{
    if (!pm->sparse || !pm->pred_freq || !pm->pred_freq[u] || !pm->reuse_occ || !pm->reuse_hit || !pm->reuse_w ||
        !pm->reuse_occ[u] || !pm->reuse_hit[u] || pm->n_reuse_b < 1 || pm->n_reuse_w < 1)
        return false;
    for (int b = 0; b < pm->n_reuse_b; b++)
        if (pm->reuse_occ[u][(size_t)b * pm->n_reuse_w] < 0 || pm->reuse_hit[u][(size_t)b * pm->n_reuse_w] < 0) return false;
    return true;
}

/* A bucket's measured curve v[k] over windows w[k] steps (ascending; -1 past the measured ones)
 * at a window of x steps. Past the last measured window W: independent blocks of W, n (1 - (1 -
 * v / n)^(x / W)) (n: the bucket's slots for occupancy, 1 for the hit fraction).
 *
 * Occupancy is the mean over the moments a look-up can happen: a layer's steps come once per
 * token, so a window of x tokens holds floor(x) or floor(x) + 1 of them, and the curve is linear
 * between windows (and from 0 at 0). A hit needs the previous request fewer than x tokens back,
 * which for a dense layer's whole-token gaps is a step function: the value at floor(x), nothing
 * below one token (a cache that cannot hold one token's requests keeps nothing for the next
 * token). A mixture's expert runs on a random share of the tokens, which smooths the steps out:
 * linear there too. */
static double curve_at(const float *v, const double *w, int K, double x, double n, bool steps)
{
    if (steps) x = floor(x + 1e-9);
    if (x <= 0 || n <= 0) return 0;
    if (x <= w[0]) return steps ? v[0] : v[0] * x / w[0];
    int k = 0;
    while (k + 1 < K && v[k + 1] >= 0 && w[k + 1] <= x) k++;
    if (x == w[k]) return v[k];
    if (k + 1 < K && v[k + 1] >= 0) return v[k] + (x - w[k]) / (w[k + 1] - w[k]) * (v[k + 1] - v[k]);
    double f = fmin(fmax(v[k] / n, 0.0), 1.0 - 1e-12);
    return n * -expm1(log1p(-f) * x / w[k]);
}

/* The bucket of slot j in a unit of F slots (prepare/reuse.h: [b F / B, (b + 1) F / B)). */
static int bucket_of(int j, int F, int B)
{
    int b = (int)((int64_t)j * B / F);
    while (b + 1 < B && (int64_t)(b + 1) * F / B <= j) b++;
    while (b > 0 && (int64_t)b * F / B > j) b--;
    return b;
}

/* The cold LRU's hit probability per (unit, slot) into hit (L x F): p is each slot's requests
 * per token (0 for pinned ones), cap the cold entries. Units with reuse measurements read
 * occupancy and hits off their curves; the rest follow Che's independent form. */
static void lru_hits(const struct pf_plan_model *pm, const double *p, int L, int F, double cap, double *hit)
{
    bool any = false;
    for (int u = 0; u < L && !any; u++) any = has_reuse(pm, u);
    if (!any) { pf_lru_che(p, L * F, cap, hit); return; }
    const int B = pm->n_reuse_b, K = pm->n_reuse_w;
    /* per (unit, bucket): slots asked for at all (n) and the part of them not pinned (f; the
       bucket's occupancy is taken as spread evenly over its slots) */
    double *n = calloc((size_t)L * B, sizeof *n), *f = calloc((size_t)L * B, sizeof *f);
    if (!n || !f) { free(n); free(f); pf_lru_che(p, L * F, cap, hit); return; }
    double live = 0;
    for (int u = 0; u < L; u++)
        for (int j = 0; j < F; j++) {
            const double q = p[(size_t)u * F + j];
            live += q > 0;
            const int b = bucket_of(j, F, B);
            if (has_reuse(pm, u) && pm->pred_freq[u][j] > 0) { /* asked for at all; q = 0: pinned */
                n[(size_t)u * B + b] += 1;
                f[(size_t)u * B + b] += q > 0;
            }
        }
    for (size_t i = 0; i < (size_t)L * B; i++) f[i] = n[i] > 0 ? f[i] / n[i] : 0;
    if (cap >= live || cap <= 0) {
        for (size_t i = 0; i < (size_t)L * F; i++) hit[i] = p[i] > 0 && cap > 0 ? 1 : 0;
        free(n); free(f);
        return;
    }
    double lo = 1e-9, hi = 1e12; /* tokens */
    for (int it = 0; it < 200; it++) {
        double T = sqrt(lo * hi), occ = 0;
        for (int u = 0; u < L; u++) {
            const double x = unit_share(pm, u) * T; /* the unit's steps in T tokens */
            if (has_reuse(pm, u)) {
                for (int b = 0; b < B; b++)
                    if (f[(size_t)u * B + b] > 0)
                        occ += f[(size_t)u * B + b] *
                               curve_at(pm->reuse_occ[u] + (size_t)b * K, pm->reuse_w, K, x, n[(size_t)u * B + b], false);
            } else {
                for (int j = 0; j < F; j++) occ += p[(size_t)u * F + j] > 0 ? -expm1(-p[(size_t)u * F + j] * T) : 0;
            }
        }
        if (occ < cap) lo = T;
        else hi = T;
        if (hi / lo < 1 + 1e-9) break;
    }
    for (int u = 0; u < L; u++) {
        const double x = unit_share(pm, u) * lo;
        for (int j = 0; j < F; j++) {
            const size_t i = (size_t)u * F + j;
            if (p[i] <= 0) hit[i] = 0;
            else if (has_reuse(pm, u))
                hit[i] = fmin(1.0, curve_at(pm->reuse_hit[u] + (size_t)bucket_of(j, F, B) * K, pm->reuse_w, K, x, 1, !pm->share));
            else hit[i] = -expm1(-p[i] * lo);
        }
    }
    free(n);
    free(f);
}

int pf_predict(const struct pf_machine *mc, const struct pf_plan_model *pm, bool budget, int n_hot, int n_cold, int be,
               int qd, struct pf_prediction *o)
{
    const int L = pm->n_units > 0 ? pm->n_units : pm->n_layer, F = pm->n_ff; /* units */
    const double stream = dense_rate(mc, pm, pf_machine_stream(mc, pm->threads));
    o->t_dense = (pm->dense_bytes + pm->pred_bytes) / (stream * 1e9);
    o->hit_rate = 1;
    o->storage_mb_per_token = o->reads_per_token = 0;
    o->t_ffn = 0;
    const double slot = (double)pm->slot_bytes;
    if (!pm->freq) { /* not prepared: the FFN is dense matrices */
        o->t_ffn = pm->ffn_bytes / (stream * 1e9);
    } else {
        const double scat = dense_rate(mc, pm, pf_machine_scatter(mc, pm->threads, pm->slot_bytes));
        double *p = NULL, *hit = NULL;
        const int n_items = budget ? L * F : 0;
        if (budget) {
            p = calloc((size_t)n_items, sizeof *p);
            hit = malloc(sizeof *hit * (size_t)n_items);
            if (!p || !hit) { free(p); free(hit); return pf_fail(PINFER_ENOMEM, "out of memory"); }
            for (int l = 0; l < L; l++) {
                const double x = pm->sparse ? extra(pm, l) : 0;
                const double s = unit_share(pm, l);
                const int nh = hot(pm, l, n_hot);
                for (int j = 0; j < F; j++) {
                    double q = request(pm, l, j, x);
                    p[(size_t)l * F + j] = j < nh ? 0 : s * q; /* hot slots never enter the LRU; per token */
                }
            }
            lru_hits(pm, p, L, F, (double)n_cold, hit);
        }
        double need_all = 0, miss_all = 0, reads_all = 0, bytes_all = 0;
        for (int l = 0; l < L; l++) {
            double need = 0, miss = 0, act = 0, runs = 0, m_prev = 0;
            const double x = pm->sparse ? extra(pm, l) : 0;
            const int nh = hot(pm, l, n_hot);
            for (int j = 0; j < F; j++) {
                double q = request(pm, l, j, x);
                need += q;
                act += pm->sparse ? pm->freq[l][j] : 1.0;
                const double m = budget && j >= nh ? q * (1 - hit[(size_t)l * F + j]) : 0;
                miss += m;
                runs += m * (1 - m_prev); /* a miss whose neighbour below is not one starts a read */
                m_prev = m;
            }
            /* bytes computed per slot looked at: gate always, up and down as above */
            const double share = need > 0 ? (need + (need + act) / 2 + act) / (3 * need) : 1;
            double t_res = (need - miss) * slot * share / (scat * 1e9), t_miss = 0, bytes = 0;
            if (miss > 0) {
                /* the runtime reads adjacent missing slots in one request (their pages touch):
                   one read per run, of its slots plus a page on average for the alignment */
                bytes = miss * slot + runs * 4096;
                int depth = (int)fmin((double)qd, fmax(1.0, runs));
                double iops = pf_machine_iops(mc, be, (size_t)(bytes / runs), depth);
                t_miss = iops > 0 ? runs / iops : INFINITY;
            }
            /* the runtime computes the resident slots while the reads fly, but measured I/O wait
               shows little of the reads hidden (bench/RESULTS.md, "The planner"): added */
            /* a step of this unit (its expert's round), share times per token */
            const double su = unit_share(pm, l);
            o->t_ffn += su * (t_res + t_miss + miss * slot * share / (scat * 1e9));
            need_all += su * need;
            miss_all += su * miss;
            reads_all += su * runs;
            bytes_all += su * bytes;
        }
        free(p);
        free(hit);
        o->hit_rate = need_all > 0 ? 1 - miss_all / need_all : 1;
        o->reads_per_token = reads_all;
        o->storage_mb_per_token = bytes_all / 1e6;
    }
    o->decode_tps = 1 / (o->t_dense + o->t_ffn);
    /* prefill: multiply-adds at the batched rate; under a budget the offloaded FFN streamed once
       per batch of 512 tokens in 1 MiB reads */
    double g = pm->main_type >= 0 && pm->main_type < PF_TYPE_COUNT ? mc->gemm_gmacs[pm->main_type] * pm->threads : 0;
    double t_pp = g > 0 ? (double)pm->n_params / (g * 1e9) : 0;
    if (budget && pm->freq) {
        double seq = 0;
        if (mc->be_ok[be]) seq = mc->io_gbs[be][PF_MACH_BS - 1][1];
        double pinned = 0;
        for (int u = 0; u < L; u++) pinned += (double)hot(pm, u, n_hot) * slot;
        double off = pm->ffn_bytes - pinned;
        if (seq > 0 && off > 0) t_pp += off / (seq * 1e9) / 512;
    }
    o->prefill_tps = t_pp > 0 ? 1 / t_pp : 0;
    return 0;
}
