/* The analytic design of a synthetic model (docs/synth.md has the why; this is the how).
 *
 * The plan tracks, layer by layer, the expected energy E[x_j^2] of every residual channel j
 * (the embedding gives 1 per channel outside the bias block), adds what each sub-layer
 * contributes, and from it sets every weight scale and every per-neuron bias so that:
 *   - neuron i of a ReLU-family FFN fires with probability p_i (drawn from the firing law);
 *   - the FFN of layer l adds FFN_PHI0 / n_layer energy per channel, attention a little more;
 *   - one head per layer copies the previous token's channels (correlated consecutive tokens).
 * Nothing here touches a weight; synth_rows.c draws them from these numbers. */
#include "synth/synth_internal.h"

#include "core/error.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LAMBDA 1.0f          /* previous-token copy: x_t[ch] += LAMBDA * x_{t-1}[ch] */
#define ATTN_EPS0 0.3f       /* content-attention energy per channel, all layers, when a query sees
                                one key (position 0); later queries spread over many keys */
#define ATTN_A2_NOM 0.1f     /* sum of squared attention weights the energy model assumes */
#define FFN_PHI0 0.5f        /* FFN output energy per channel, summed over all layers */
#define QK_SCORE_STD 1.2f    /* std of content attention scores q.k/sqrt(head_dim) */
#define OUT_LOGIT_STD 1.5f   /* std of the token-dependent part of the logits */
#define POS_MIN_THETA 0.03   /* rotary pairs slower than this stay near 1 for long offsets */
#define POS_OFF_MASS 0.01    /* attention mass the previous-token head may leave elsewhere */
#define LAW_POINTS 4096

/* Previous-token head: q and k come from the bias block only, so the score depends on the
 * relative position alone: score(D) = A * sum_p cos(theta_p (D - 1)) over fast rotary pairs,
 * largest at D = 1. A is the smallest power of two that leaves at most POS_OFF_MASS of the
 * attention on other positions anywhere in the context. */
static int plan_positional(struct synth_plan *P)
{
    const struct synth_cfg *c = P->cfg;
    const int hd = c->head_dim, n_pairs = hd / 2;
    int n_eval = c->n_ctx < 65536 ? c->n_ctx : 65536;
    double *th = calloc((size_t)n_pairs, sizeof *th);
    double *s = malloc((size_t)n_eval * sizeof *s);
    P->pos_q = calloc((size_t)hd, sizeof *P->pos_q);
    P->pos_k = calloc((size_t)hd, sizeof *P->pos_k);
    if (!th || !s || !P->pos_q || !P->pos_k) { free(th); free(s); return pf_fail(PINFER_ENOMEM, "out of memory"); }
    int np = 0;
    for (int p = 0; p < n_pairs; p++) {
        double t = pow(c->rope_base, -2.0 * p / hd);
        if (t >= POS_MIN_THETA || np < 2) th[np++] = t;
    }
    for (int D = 0; D < n_eval; D++) {
        double v = 0;
        for (int k = 0; k < np; k++) v += cos(th[k] * (D - 1)) - 1; /* <= 0, 0 at D = 1 */
        s[D] = v;
    }
    double A = 1;
    for (; A < 256; A *= 2) {
        double off = 0;
        for (int D = 0; D < n_eval; D++)
            if (D != 1) off += exp(A * s[D]);
        if (off <= POS_OFF_MASS) break;
    }
    P->pos_amp = (float)A;
    P->pos_pairs = np;
    /* score = q.k / sqrt(hd) per pair = |q||k| cos(...) / sqrt(hd); split the product evenly */
    double prod = A * sqrt((double)hd), kappa = sqrt(prod);
    for (int k = 0; k < np; k++) {
        /* the pairs used are the first np rotary pairs (fastest first) */
        P->pos_k[2 * k] = (float)kappa;
        P->pos_k[2 * k + 1] = 0;
        P->pos_q[2 * k] = (float)(prod / kappa * cos(th[k]));
        P->pos_q[2 * k + 1] = (float)(-prod / kappa * sin(th[k]));
    }
    free(th);
    free(s);
    return 0;
}

static void shuffle(int *idx, int n, uint64_t seed)
{
    struct synth_rng r;
    synth_rng_init(&r, seed);
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)synth_rng_below(&r, (uint64_t)i + 1);
        int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}

/* The subspace of a layer's gate rows: U's K columns have disjoint supports (a random partition
 * of the free channels, about (n_embd - 32) / K channels each) with normal entries scaled to unit
 * norm. Orthonormal by construction, and U a costs one multiply per channel instead of K; a
 * randomized SVD of the gate matrix recovers the subspace whatever its orientation, so nothing
 * is lost against a dense basis. */
static int plan_lowrank(struct synth_plan *P, struct synth_layer *Y, int l, int *perm)
{
    const struct synth_cfg *c = P->cfg;
    const int d = c->n_embd, K = c->rank;
    Y->lr_col = malloc((size_t)d * sizeof *Y->lr_col);
    Y->lr_u = calloc((size_t)d, sizeof *Y->lr_u);
    double *nrm = calloc((size_t)K, sizeof *nrm);
    if (!Y->lr_col || !Y->lr_u || !nrm) { free(nrm); return pf_fail(PINFER_ENOMEM, "out of memory"); }
    shuffle(perm, d - P->slow_hi, synth_mix(synth_mix(c->seed, 0x6c6f7772616e6bull), (uint64_t)l));
    struct synth_rng r;
    synth_rng_init(&r, synth_mix(synth_mix(c->seed, 0x6c6f77752d2dull), (uint64_t)l));
    for (int j = 0; j < d; j++) Y->lr_col[j] = -1;
    for (int j = P->slow_hi; j < d; j++) {
        int col = perm[j - P->slow_hi] % K;
        float u = synth_rng_normal(&r);
        Y->lr_col[j] = col;
        Y->lr_u[j] = u;
        nrm[col] += (double)u * u;
    }
    for (int j = P->slow_hi; j < d; j++) Y->lr_u[j] = (float)(Y->lr_u[j] / sqrt(nrm[Y->lr_col[j]]));
    free(nrm);
    return 0;
}

static double sum_from(const float *v, int lo, int d)
{
    double s = 0;
    for (int j = lo; j < d; j++) s += v[j];
    return s;
}

static double sum_rest(const float *v, int d) { return sum_from(v, SYNTH_BIAS_CH, d); }

/* E[act] and E[act^2] of correlated dReLU per quantile of the firing law (mu, sigma) at the
 * nominal correlation: lr_m[2q], lr_m[2q + 1]. */
static void plan_moments(const struct synth_plan *P, double mu, double sigma, const double *zq, int F, double *lr_m)
{
    for (int q = 0; q < F; q++) {
        double pq = 1 / (1 + exp(-(mu + sigma * zq[q])));
        synth_drelu_moments(synth_bvn_solve(pq, P->lr_rho), P->lr_rho, &lr_m[2 * q], &lr_m[2 * q + 1]);
    }
}

int synth_plan_build(struct synth_plan *P, const struct synth_cfg *c)
{
    memset(P, 0, sizeof *P);
    P->cfg = c;
    const int d = c->n_embd, L = c->n_layer, F = c->n_ff, hd = c->head_dim;
    const bool relu = pf_act_relu_family(c->act), drelu = c->act == PINFER_ACT_DRELU;
    P->n_exp = c->n_expert > 0 ? c->n_expert : 1;
    P->d_rest = d - SYNTH_BIAS_CH;
    P->C = sqrtf((float)P->d_rest);
    P->c0 = P->C / sqrtf((float)SYNTH_BIAS_CH);
    P->lambda = LAMBDA;
    /* with rank structure, gate and up pre-activations of a dReLU neuron share SYNTH_LR_SHARE of
     * their variance in the subspace, where their coefficients correlate SYNTH_LR_UP_RHO */
    P->lr_rho = c->rank && drelu ? SYNTH_LR_SHARE * SYNTH_LR_UP_RHO : 0;
    P->up_rho = SYNTH_LR_UP_RHO;
    P->slow_hi = SYNTH_BIAS_CH;
    if (c->realistic) {
        /* the slow block's share of the variance is in the pre-activations of gate and up alike,
         * their coefficients there correlating as in the subspace */
        const double s = SYNTH_REAL_SLOW_SHARE;
        P->up_rho = SYNTH_REAL_UP_RHO;
        P->lr_rho = drelu ? P->up_rho * (s + SYNTH_LR_SHARE * (1 - s)) : 0;
        P->slow_hi = SYNTH_SLOW_SRC;
    }
    P->route_lo = P->route_hi = P->copy_base = P->slow_hi;
    if (c->moe_route) {
        /* the slow block, then its source channels (ordinary ones), then the router block; the
         * previous-token copies after it */
        P->slow_hi = SYNTH_SLOW_SRC;
        P->route_lo = SYNTH_ROUTE_LO;
        P->route_hi = P->copy_base = SYNTH_ROUTE_LO + SYNTH_ROUTE_CH;
    }

    int rc = 0;
    float *v = calloc((size_t)d, sizeof *v);
    double *zq = malloc((size_t)F * sizeof *zq), *lr_m = NULL;
    int n_perm = F > P->n_exp ? F : P->n_exp;
    if (n_perm < d) n_perm = d;
    int *perm = malloc((size_t)n_perm * sizeof *perm);
    P->layers = calloc((size_t)L, sizeof *P->layers);
    P->mean_shift = calloc((size_t)d, sizeof *P->mean_shift);
    if (!v || !zq || !perm || !P->layers || !P->mean_shift) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto out; }
    if (relu && (rc = synth_firing_law(1.0 - c->sparsity, c->hot_frac, c->hot_share, LAW_POINTS,
                                       &P->law_mu, &P->law_sigma)))
        goto out;
    if ((rc = plan_positional(P))) goto out;
    for (int i = 0; i < F; i++) zq[i] = synth_norm_ppf((i + 0.5) / F);
    if (P->lr_rho != 0) {
        /* every layer and expert uses the same F probabilities (permuted): E[act] and E[act^2]
         * of correlated dReLU per quantile, once (per layer under the realistic law) */
        lr_m = malloc((size_t)F * 2 * sizeof *lr_m);
        if (!lr_m) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto out; }
        if (!c->realistic) plan_moments(P, P->law_mu, P->law_sigma, zq, F, lr_m);
    }
    for (int j = P->slow_hi; j < d; j++) v[j] = 1.0f;

    for (int l = 0; l < L; l++) {
        struct synth_layer *Y = &P->layers[l];
        Y->s_d = calloc((size_t)P->n_exp, sizeof *Y->s_d);
        Y->v_ffn = calloc((size_t)d, sizeof *Y->v_ffn);
        Y->p = malloc((size_t)P->n_exp * F * sizeof *Y->p);
        if (drelu && !c->n_expert) Y->ea = malloc((size_t)F * sizeof *Y->ea);
        if (c->n_expert) Y->router_bias = malloc((size_t)c->n_expert * sizeof *Y->router_bias);
        if (!Y->s_d || !Y->v_ffn || !Y->p || (drelu && !c->n_expert && !Y->ea) || (c->n_expert && !Y->router_bias)) {
            rc = pf_fail(PINFER_ENOMEM, "out of memory");
            goto out;
        }

        if (c->rank && (rc = plan_lowrank(P, Y, l, perm))) goto out;
        /* the firing law: the request, or (realistic) this layer's share of its spread */
        Y->sparsity = synth_law_layer_sparsity(c, l);
        Y->law_mu = P->law_mu;
        Y->law_sigma = P->law_sigma;
        if (relu && c->realistic) {
            if ((rc = synth_firing_law(1.0 - Y->sparsity, c->hot_frac, c->hot_share, LAW_POINTS, &Y->law_mu,
                                       &Y->law_sigma)))
                goto out;
            if (lr_m) plan_moments(P, Y->law_mu, Y->law_sigma, zq, F, lr_m);
        }

        /* ---- attention ---- */
        double V = sum_rest(v, d);
        Y->xnorm_att = (float)sqrt((double)P->C * P->C + V);
        double rho2 = (double)d / ((double)Y->xnorm_att * Y->xnorm_att); /* RMSNorm gain squared */
        Y->copy_lo = P->copy_base + l * hd;
        Y->copy_n = Y->copy_lo + hd <= d ? hd : 0;
        for (int j = 0; j < Y->copy_n; j++) v[Y->copy_lo + j] *= 1 + LAMBDA * LAMBDA;
        Y->s_q = Y->s_k = (float)sqrt(QK_SCORE_STD / (V * rho2));
        Y->s_v = (float)(1 / sqrt(V * rho2));
        int n_content_cols = c->n_head * hd - Y->copy_n;
        double eps = ATTN_EPS0 / L;
        Y->s_o = n_content_cols > 0 ? (float)sqrt(eps / n_content_cols) : 0;
        for (int j = P->slow_hi; j < d; j++)
            if (j < P->route_lo || j >= P->route_hi) v[j] += (float)(eps * ATTN_A2_NOM); /* not the router block */
        /* realistic: layer 0's moving-average head gives the slow block unit energy */
        for (int j = SYNTH_BIAS_CH; j < P->slow_hi && l == 0; j++) v[j] = 1.0f;

        /* ---- feed-forward ---- */
        memcpy(Y->v_ffn, v, (size_t)d * sizeof *v);
        V = sum_rest(v, d);
        Y->xnorm_ffn = (float)sqrt((double)P->C * P->C + V);
        rho2 = (double)d / ((double)Y->xnorm_ffn * Y->xnorm_ffn);
        Y->s_g = Y->s_u = 1.0f / sqrtf((float)d);
        double sg = Y->s_g * sqrt(V * rho2), su = sg; /* pre-activation noise std, normalized units */
        if (c->realistic) {
            /* gate (and dReLU up) rows put SYNTH_REAL_SLOW_SHARE of their variance on the slow block */
            const double s = SYNTH_REAL_SLOW_SHARE, vr = sum_from(v, P->slow_hi, d), vs = V - vr;
            Y->s_slow = (float)(Y->s_g * sqrt(s / (1 - s) * vr / vs));
            sg = Y->s_g * sqrt(vr / (1 - s) * rho2);
            su = drelu ? sg : Y->s_u * sqrt(V * rho2);
        }
        double phi = FFN_PHI0 / L;
        double w2 = c->n_expert ? fmin(1.0, 1.1 / c->n_expert_used) : 1.0; /* E[sum of routing weights^2] */
        double silu_m2 = c->act == PINFER_ACT_SILU ? synth_silu_m2(sg) : 0;
        double mean_frac = 0; /* share of the FFN output energy that is its constant mean */
        for (int e = 0; e < P->n_exp; e++) {
            float *p = Y->p + (size_t)e * F;
            shuffle(perm, F, synth_mix(synth_mix(c->seed, 0x6c61770000ull + (uint64_t)l), (uint64_t)e));
            double s2 = 0, mean2 = 0;
            for (int i = 0; i < F; i++) {
                double pi = relu ? 1 / (1 + exp(-(Y->law_mu + Y->law_sigma * zq[perm[i]]))) : 0.5;
                p[i] = (float)pi;
                if (c->act == PINFER_ACT_SILU) {
                    s2 += silu_m2 * su * su;
                } else if (drelu && P->lr_rho != 0) {
                    /* correlated gate and up: one threshold h for both, from the joint law;
                     * the moments depend on the neuron's quantile only (computed once) */
                    double m1 = lr_m[2 * perm[i]], m2 = lr_m[2 * perm[i] + 1];
                    s2 += sg * sg * su * su * m2;
                    if (Y->ea) {
                        Y->ea[i] = (float)(sg * su * m1);
                        mean2 += (double)Y->ea[i] * Y->ea[i];
                    }
                } else if (drelu) {
                    double tau = synth_norm_ppf(sqrt(pi));
                    double m2 = synth_relu_m2(tau);
                    s2 += sg * sg * m2 * su * su * m2;
                    if (Y->ea) {
                        double m1 = synth_relu_m1(tau);
                        Y->ea[i] = (float)(sg * su * m1 * m1);
                        mean2 += (double)Y->ea[i] * Y->ea[i];
                    }
                } else {
                    s2 += sg * sg * synth_relu_m2(synth_norm_ppf(pi)) * su * su;
                }
            }
            Y->s_d[e] = (float)sqrt(phi / (w2 * s2));
            if (Y->ea) mean_frac = mean2 / s2;
        }
        if (c->n_expert) {
            Y->s_r = (float)(1 / sqrt(V * rho2));
            shuffle(perm, c->n_expert, synth_mix(synth_mix(c->seed, 0x726f757465ull), (uint64_t)l));
            /* mild Zipf-like popularity: the expert of rank r gets logit offset -0.05 ln(1 + r); with
             * unit-variance logits and top-2 of 8 that routes 13.6% of the choices to the most
             * popular expert and 11.9% to the least (uniform: 12.5%) */
            for (int e = 0; e < c->n_expert; e++) Y->router_bias[e] = (float)(-SYNTH_ROUTE_BETA * log(1.0 + perm[e]));
        }
        /* v tracks what varies from token to token; the constant part of a dReLU FFN's
         * output is tracked exactly in mean_shift while the rows are drawn, and cancelled in
         * the next gates' biases */
        for (int j = P->slow_hi; j < d; j++)
            if (j < P->route_lo || j >= P->route_hi) v[j] += (float)(phi * (1 - mean_frac));
    }
    if (P->slow_hi > SYNTH_BIAS_CH && (rc = synth_law_plan_window(P))) goto out;
    double V = sum_rest(v, d);
    P->xnorm_out = (float)sqrt((double)P->C * P->C + V);
    P->s_out = (float)(OUT_LOGIT_STD / sqrt(V * d / ((double)P->xnorm_out * P->xnorm_out)));
out:
    free(v);
    free(zq);
    free(lr_m);
    free(perm);
    if (rc) synth_plan_free(P);
    return rc;
}

void synth_plan_free(struct synth_plan *P)
{
    if (!P) return;
    if (P->layers && P->cfg)
        for (int l = 0; l < P->cfg->n_layer; l++) {
            struct synth_layer *Y = &P->layers[l];
            free(Y->s_d); free(Y->v_ffn); free(Y->p); free(Y->ea); free(Y->router_bias);
            free(Y->lr_col); free(Y->lr_u);
        }
    free(P->layers);
    free(P->pos_q);
    free(P->pos_k);
    free(P->win_q);
    free(P->win_k);
    free(P->mean_shift);
    memset(P, 0, sizeof *P);
}
