/* The realistic activation law of pinfer synth (docs/synth.md, "The realistic law"), beside the
 * basic one synth_plan.c and synth_rows.c implement. Three things, calibrated on published
 * figures of real ReLU-family models:
 *   - per-layer sparsity spread around the request (TurboSparse-Mistral: 0.78..0.94 around 0.90);
 *   - persistence: one head of layer 0 writes a moving average of the last ~10 tokens'
 *     embeddings into the slow block, which no other sub-layer touches, and every gate reads
 *     it, so active sets drift slowly on any token sequence (the model's property, not the
 *     feed's);
 *   - dReLU gate/up agreement P(up > 0 | gate > 0) ~ 0.8 (PowerInfer-2), through correlated
 *     gate and up coefficients (SYNTH_REAL_UP_RHO). */
#include "synth/synth_internal.h"

#include "core/error.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The moving-average head's score is WIN_ALPHA * sum_p dl (cos(theta_p D) - 1) over the rotary
 * pairs with theta_p <= WIN_CUT, dl = 2 ln(base) / head_dim the pairs' log spacing: about flat
 * for D < 1 / WIN_CUT, then falling like D^-WIN_ALPHA until the slowest pair, and (being a sum
 * over log-spaced frequencies, weighted by their spacing) nearly the same window for any head
 * size and rope base: 99% of the weight within the last 17-21 tokens, 1 / sum w^2 = 10-12.5
 * tokens for tiny, llama2-7b and mistral-7b. */
#define WIN_CUT 0.15
#define WIN_ALPHA 3.0
#define WIN_EVAL 4096 /* positions over which the stationary weights are computed */

/* ==== Per-layer sparsity ==== */

/* Layer l's active fraction is (1 - S) m_l with m_l = 0.6 + 1.6 u^3 at u = (rank_l + 0.5) / L
 * (rank_l: the layers ordered by a seeded hash), normalized to mean 1: at S = 0.9 over 32 layers
 * the layers span 0.78..0.94 with most of them sparse, as TurboSparse-Mistral's do. The spread
 * shrinks when the densest layer would pass half its neurons active. */
float synth_law_layer_sparsity(const struct synth_cfg *c, int l)
{
    const int L = c->n_layer;
    if (!c->realistic || L < 2) return c->sparsity;
    /* rank of layer l among seeded hashes of all layers: a permutation without storage */
    const uint64_t hl = synth_mix(synth_mix(c->seed, 0x6c61797370ull), (uint64_t)l);
    int rank_l = 0;
    for (int i = 0; i < L; i++) {
        uint64_t hi = synth_mix(synth_mix(c->seed, 0x6c61797370ull), (uint64_t)i);
        rank_l += hi < hl || (hi == hl && i < l);
    }
    double mean = 0, mx = 0, ml = 0;
    for (int i = 0; i < L; i++) {
        double u = (i + 0.5) / L, m = 0.6 + 1.6 * u * u * u;
        mean += m / L;
        if (m > mx) mx = m;
        if (i == rank_l) ml = m;
    }
    double k = 1, a = 1 - c->sparsity;
    if (a * mx / mean > 0.5) k = (0.5 / a - 1) / (mx / mean - 1);
    if (k < 0) k = 0;
    double m = 1 + k * (ml / mean - 1);
    return (float)(1 - a * m);
}

/* ==== The moving-average head ==== */

int synth_law_plan_window(struct synth_plan *P)
{
    const struct synth_cfg *c = P->cfg;
    const int hd = c->head_dim, n_pairs = hd / 2, n = c->n_ctx < WIN_EVAL ? c->n_ctx : WIN_EVAL;
    P->win_kvhead = 1;
    P->win_qhead = c->n_head / c->n_head_kv;
    P->win_q = calloc((size_t)hd, sizeof *P->win_q);
    P->win_k = calloc((size_t)hd, sizeof *P->win_k);
    if (!P->win_q || !P->win_k) return pf_fail(PINFER_ENOMEM, "out of memory");
    const double dl = 2 * log(c->rope_base) / hd;
    double z = 0, z2 = 0, z11 = 0, w_prev = 0;
    for (int D = 0; D < n; D++) {
        double s = 0;
        for (int p = 0; p < n_pairs; p++) {
            double th = pow(c->rope_base, -2.0 * p / hd);
            if (th <= WIN_CUT) s += WIN_ALPHA * dl * (cos(th * D) - 1);
        }
        double w = exp(s);
        z += w;
        z2 += w * w;
        z11 += w * w_prev;
        w_prev = w;
    }
    /* the average of iid inputs with weights w_D: consecutive positions share sum w_D w_D+1 */
    P->win_rho1 = z11 / z2;
    /* per pair, q.k / sqrt(hd) = a_p cos(theta_p D): k = (kappa, 0), q = (a_p sqrt(hd) / kappa, 0) */
    for (int p = 0; p < n_pairs; p++) {
        double th = pow(c->rope_base, -2.0 * p / hd);
        if (th > WIN_CUT) continue;
        double prod = WIN_ALPHA * dl * sqrt((double)hd), kappa = sqrt(prod);
        P->win_k[2 * p] = (float)kappa;
        P->win_q[2 * p] = (float)(prod / kappa);
    }
    /* V carries rho * x (rho: layer 0's RMSNorm gain), the average has sum w^2 / z^2 of its
     * variance: the output weight restores unit energy per slow channel */
    const double rho = sqrt((double)c->n_embd) / P->layers[0].xnorm_att;
    P->win_amp = (float)(1 / (rho * sqrt(z2 / (z * z))));
    return 0;
}

/* q, k, v of the moving-average head and every attn_output row of the slow block. */
bool synth_law_attn_row(const struct synth_plan *P, const struct synth_tensor *t, int64_t row, float *out)
{
    const struct synth_cfg *c = P->cfg;
    if (P->slow_hi == SYNTH_BIAS_CH) return false; /* no slow block: not the realistic law nor MoE */
    const int64_t n = t->ne[0];
    const int hd = c->head_dim, head = (int)(row / hd), j = (int)(row % hd);
    if (t->kind == SK_O) {
        if (row < SYNTH_BIAS_CH || row >= P->slow_hi) return false;
        memset(out, 0, (size_t)n * sizeof *out);
        if (t->layer == 0) out[P->win_qhead * hd + (row - SYNTH_BIAS_CH)] = P->win_amp;
        return true;
    }
    if (t->layer != 0) return false;
    if ((t->kind == SK_Q && head == P->win_qhead) || (t->kind == SK_K && head == P->win_kvhead)) {
        const float rho = sqrtf((float)c->n_embd) / P->layers[0].xnorm_att;
        const float *tgt = t->kind == SK_Q ? P->win_q : P->win_k;
        memset(out, 0, (size_t)n * sizeof *out);
        for (int b = 0; b < SYNTH_BIAS_CH; b++) out[b] = tgt[j] / (SYNTH_BIAS_CH * P->c0 * rho);
        return true;
    }
    if (t->kind == SK_V && head == P->win_kvhead) {
        memset(out, 0, (size_t)n * sizeof *out);
        if (j < SYNTH_SLOW_CH) out[SYNTH_SLOW_SRC + j] = 1.0f;
        return true;
    }
    return false;
}

/* ==== Gate and up rows on the slow block ==== */

void synth_law_slow_coefs(const struct synth_plan *P, int l, int64_t neuron, float *cg, float *cu)
{
    struct synth_rng r;
    synth_rng_init(&r, synth_mix(synth_mix(synth_mix(P->cfg->seed, 0x736c6f77ull), (uint64_t)l), (uint64_t)neuron));
    for (int k = 0; k < SYNTH_SLOW_CH; k++) cg[k] = synth_rng_normal(&r);
    if (!cu) return;
    const float a = (float)P->up_rho, b = sqrtf(1 - a * a);
    for (int k = 0; k < SYNTH_SLOW_CH; k++) cu[k] = a * cg[k] + b * synth_rng_normal(&r);
}
