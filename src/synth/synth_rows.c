/* Weight rows of a synthetic model, one at a time, from the plan (synth_plan.c).
 *
 * Row r of tensor t is drawn from its own generator seeded with (seed, t, r), so a file is the
 * same whatever the thread count. ggml order: a row is ne[0] contiguous weights = one output
 * unit's input weights (attn_q row = one query dimension, ffn_gate row = one neuron, ffn_down
 * row = one residual channel, token_embd row = one token). */
#include "synth/synth_internal.h"

#include "core/rng.h"

#include <math.h>
#include <string.h>

static void fill_bias_block(float *out, float v)
{
    for (int j = 0; j < SYNTH_BIAS_CH; j++) out[j] = v;
}

/* Logit offset of a token for the output head: a Zipf-like unigram prior over the generated
 * pieces (id order is frequency order), and rare control and byte tokens, so sampling the
 * model yields text-like token statistics. */
static float unigram_bias(int64_t tok)
{
    const int64_t first_piece = 3 + 256;
    if (tok < first_piece) return -10.0f;
    return -(float)log(1.0 + (double)(tok - first_piece));
}

/* A gate or up row of a ReLU-family FFN: random weights, then the bias block set so that the
 * neuron fires (pre-activation > 0) with probability exp(tau) on this layer's inputs:
 *   pre = sqrt(32) * b * C + w . (M + x~),  x~ zero-mean with E[x~_j^2] = v_ffn[j]
 * so P(pre > 0) = Phi((sqrt(32) b C + w.M) / sd) with sd^2 = sum_j w_j^2 v_ffn[j]. */
static void biased_row(const struct synth_plan *P, const struct synth_layer *Y, float *out, int64_t n,
                       double tau, bool shift)
{
    double var = 0, wm = 0;
    for (int64_t j = SYNTH_BIAS_CH; j < n; j++) var += (double)out[j] * out[j] * Y->v_ffn[j];
    if (shift)
        for (int64_t j = SYNTH_BIAS_CH; j < n; j++) wm += (double)out[j] * P->mean_shift[j];
    fill_bias_block(out, (float)((tau * sqrt(var) - wm) / (sqrt((double)SYNTH_BIAS_CH) * P->C)));
}

/* ==== Rank structure (docs/synth.md, "Predictable activations") ==== */

/* One N(0, sigma^2) deviate with k = sigma * sqrt(3) / 65536: the same arithmetic as
 * synth_rng_normals, so a row can be regenerated weight by weight without a buffer. */
static inline float scaled_normal(struct synth_rng *r, float k)
{
    uint64_t v = synth_rng_next(r);
    int32_t s = (int32_t)(v & 0xffff) + (int32_t)((v >> 16) & 0xffff) + (int32_t)((v >> 32) & 0xffff) +
                (int32_t)(v >> 48);
    return (float)(s - 131070) * k;
}

/* Coefficients of neuron `neuron` (expert * n_ff + i) of layer l in the layer's subspace: the
 * gate's ag ~ N(0, sa^2) per column and, when au is wanted (dReLU), the up's, correlated
 * SYNTH_LR_UP_RHO with the gate's. Drawn from a generator of their own so the gate row and
 * the up row (different tensors) agree. */
static void lr_coefs(const struct synth_plan *P, int l, int64_t neuron, float sa, float *ag, float *au)
{
    struct synth_rng r;
    synth_rng_init(&r, synth_mix(synth_mix(synth_mix(P->cfg->seed, 0x636f656673ull), (uint64_t)l), (uint64_t)neuron));
    const int K = P->cfg->rank;
    for (int k = 0; k < K; k++) ag[k] = sa * synth_rng_normal(&r);
    if (!au) return;
    const float a = (float)P->up_rho, b = sqrtf(1 - a * a);
    for (int k = 0; k < K; k++) au[k] = a * ag[k] + b * sa * synth_rng_normal(&r);
}

static inline float lr_weight(const struct synth_layer *Y, const float *a, int64_t j, float noise)
{
    return a[Y->lr_col[j]] * Y->lr_u[j] + noise;
}

/* A ReLU-family gate row (or dReLU up row) with rank structure: U a + isotropic noise, the
 * subspace part carrying SYNTH_LR_SHARE of the expected energy; then its bias. For dReLU the
 * partner row (up for a gate, gate for an up) is regenerated on the fly from its own generator
 * (tensor index ti +- 1: up follows gate in the file) to get the exact correlation rho of the two
 * pre-activations; both rows then get the threshold h with P(both > 0) = p (synth_bvn_solve),
 * computed from the same sums in both tensors, so the neuron fires with probability p exactly. */
static void lowrank_row(const struct synth_plan *P, const struct synth_tensor *t, int ti, int64_t row, float *out)
{
    const struct synth_cfg *c = P->cfg;
    const struct synth_layer *Y = &P->layers[t->layer];
    const int64_t n = t->ne[0];
    const bool drelu = c->act == PINFER_ACT_DRELU, shift = c->n_expert == 0;
    const float sa = Y->s_g * sqrtf((float)(SYNTH_LR_SHARE * (c->n_embd - P->slow_hi) / c->rank));
    const float kn = Y->s_g * sqrtf((float)(1 - SYNTH_LR_SHARE)) * (1.7320508075688772f / 65536.0f);
    float ag[SYNTH_RANK_MAX], au[SYNTH_RANK_MAX];
    lr_coefs(P, t->layer, row, sa, ag, drelu ? au : NULL);
    const float *own = t->kind == SK_GATE ? ag : au, *other = t->kind == SK_GATE ? au : ag;
    struct synth_rng r, rp;
    synth_rng_init(&r, synth_mix(synth_mix(c->seed, (uint64_t)ti + 1), (uint64_t)row));
    int partner = t->kind == SK_GATE ? ti + 1 : ti - 1;
    synth_rng_init(&rp, synth_mix(synth_mix(c->seed, (uint64_t)partner + 1), (uint64_t)row));

    fill_bias_block(out, 0);
    double p = Y->p[row];
    /* realistic law: the slow block, weights of its own (partner's correlated) */
    float cg[SYNTH_SLOW_CH], cu[SYNTH_SLOW_CH];
    double vo = 0, vp = 0, cv = 0, wm = 0;
    if (P->slow_hi > SYNTH_BIAS_CH) {
        synth_law_slow_coefs(P, t->layer, row, cg, drelu ? cu : NULL);
        const float *so = t->kind == SK_GATE ? cg : cu, *sp = t->kind == SK_GATE ? cu : cg;
        for (int k = 0; k < SYNTH_SLOW_CH; k++) {
            double w = Y->s_slow * so[k], q = drelu ? Y->s_slow * sp[k] : 0, v = Y->v_ffn[SYNTH_BIAS_CH + k];
            out[SYNTH_BIAS_CH + k] = (float)w;
            vo += w * w * v;
            vp += q * q * v;
            cv += w * q * v;
        }
    }
    if (!drelu) {
        for (int64_t j = P->slow_hi; j < n; j++) out[j] = lr_weight(Y, own, j, scaled_normal(&r, kn));
        biased_row(P, Y, out, n, synth_norm_ppf(p), shift);
        return;
    }
    for (int64_t j = P->slow_hi; j < n; j++) {
        float w = lr_weight(Y, own, j, scaled_normal(&r, kn));
        float q = lr_weight(Y, other, j, scaled_normal(&rp, kn));
        double v = Y->v_ffn[j];
        out[j] = w;
        vo += (double)w * w * v;
        vp += (double)q * q * v;
        cv += (double)w * q * v;
        if (shift) wm += (double)w * P->mean_shift[j];
    }
    double rho = vo > 0 && vp > 0 ? cv / sqrt(vo * vp) : 0;
    if (rho > 0.99) rho = 0.99;
    if (rho < -0.99) rho = -0.99;
    double h = synth_bvn_solve(p, rho);
    fill_bias_block(out, (float)((h * sqrt(vo) - wm) / (sqrt((double)SYNTH_BIAS_CH) * P->C)));
}

/* A router row of a MoE file with the slow and router blocks: its logit (after RMSNorm, gain
 * rho) has unit variance, a share a of it on the slow block (lag-1 correlation P->win_rho1) and
 * 1 - a on the router block (the token's embedding: none), so consecutive tokens' logits
 * correlate a * win_rho1 = SYNTH_ROUTE_CORR0 (layer 0) or SYNTH_ROUTE_CORR. Each part is scaled
 * to its exact variance, so no expert's logits are wider than another's (a wider expert would
 * win the top-k more often). Both blocks have unit energy per channel at every layer. */
static void router_row(const struct synth_plan *P, const struct synth_layer *Y, int l, struct synth_rng *r, float rho,
                       float *out, int64_t n)
{
    double a = (l == 0 ? SYNTH_ROUTE_CORR0 : SYNTH_ROUTE_CORR) / P->win_rho1;
    if (a > 1) a = 1;
    (void)Y;
    memset(out + SYNTH_BIAS_CH, 0, (size_t)(n - SYNTH_BIAS_CH) * sizeof *out);
    synth_rng_normals(r, out + SYNTH_BIAS_CH, SYNTH_SLOW_CH, 1.0f);
    synth_rng_normals(r, out + P->route_lo, P->route_hi - P->route_lo, 1.0f);
    const struct { int lo, hi; double share; } part[2] = {
        { SYNTH_BIAS_CH, P->slow_hi, a }, { P->route_lo, P->route_hi, 1 - a },
    };
    for (int k = 0; k < 2; k++) {
        double ss = 0;
        for (int j = part[k].lo; j < part[k].hi; j++) ss += (double)out[j] * out[j];
        /* rho^2 sum w_j^2 (unit energy per channel) = share */
        float f = ss > 0 ? (float)(sqrt(part[k].share / ss) / rho) : 0;
        for (int j = part[k].lo; j < part[k].hi; j++) out[j] *= f;
    }
}

void synth_gen_row(const struct synth_plan *P, const struct synth_tensor *t, int ti, int64_t row, float *out)
{
    const struct synth_cfg *c = P->cfg;
    const int64_t n = t->ne[0];
    const int hd = c->head_dim;
    const struct synth_layer *Y = t->layer >= 0 ? &P->layers[t->layer] : NULL;
    struct synth_rng r;
    synth_rng_init(&r, synth_mix(synth_mix(c->seed, (uint64_t)ti + 1), (uint64_t)row));

    switch (t->kind) {
    case SK_NORM:
        for (int64_t j = 0; j < n; j++) out[j] = 1.0f;
        return;

    case SK_EMBD: {
        /* the bias block, then a random direction of norm sqrt(n - slow_hi): 1 per channel
         * (the realistic law's slow block is 0 here: only layer 0's average writes it) */
        const int64_t lo = P->slow_hi;
        fill_bias_block(out, P->c0);
        memset(out + SYNTH_BIAS_CH, 0, (size_t)(lo - SYNTH_BIAS_CH) * sizeof *out);
        synth_rng_normals(&r, out + lo, n - lo, 1.0f);
        double ss = 0;
        for (int64_t j = lo; j < n; j++) ss += (double)out[j] * out[j];
        float k = ss > 0 ? (float)sqrt((double)(n - lo) / ss) : 0;
        for (int64_t j = lo; j < n; j++) out[j] *= k;
        return;
    }

    case SK_OUTPUT: {
        float rho = sqrtf((float)c->n_embd) / P->xnorm_out;
        fill_bias_block(out, unigram_bias(row) / (SYNTH_BIAS_CH * P->c0 * rho));
        synth_rng_normals(&r, out + SYNTH_BIAS_CH, n - SYNTH_BIAS_CH, P->s_out);
        return;
    }

    case SK_Q:
    case SK_K: {
        if (synth_law_attn_row(P, t, row, out)) return;
        int head = (int)(row / hd), j = (int)(row % hd);
        if (Y->copy_n && head == 0) {
            /* previous-token head: constant q / k from the bias block (see synth_plan.c) */
            float rho = sqrtf((float)c->n_embd) / Y->xnorm_att;
            const float *tgt = t->kind == SK_Q ? P->pos_q : P->pos_k;
            memset(out, 0, (size_t)n * sizeof *out);
            fill_bias_block(out, tgt[j] / (SYNTH_BIAS_CH * P->c0 * rho));
            return;
        }
        fill_bias_block(out, 0);
        synth_rng_normals(&r, out + SYNTH_BIAS_CH, n - SYNTH_BIAS_CH, t->kind == SK_Q ? Y->s_q : Y->s_k);
        return;
    }

    case SK_V: {
        if (synth_law_attn_row(P, t, row, out)) return;
        int head = (int)(row / hd), j = (int)(row % hd);
        if (Y->copy_n && head == 0) {
            memset(out, 0, (size_t)n * sizeof *out);
            out[Y->copy_lo + j] = 1.0f;
            return;
        }
        fill_bias_block(out, 0);
        synth_rng_normals(&r, out + SYNTH_BIAS_CH, n - SYNTH_BIAS_CH, Y->s_v);
        return;
    }

    case SK_O: {
        /* row = residual channel; the bias block is never written to, so it stays constant */
        if (row < SYNTH_BIAS_CH) { memset(out, 0, (size_t)n * sizeof *out); return; }
        if (synth_law_attn_row(P, t, row, out)) return; /* the slow block */
        if (row >= P->route_lo && row < P->route_hi) { memset(out, 0, (size_t)n * sizeof *out); return; }
        synth_rng_normals(&r, out, n, Y->s_o);
        if (P->slow_hi > SYNTH_BIAS_CH && t->layer == 0) /* the moving-average head writes the slow block only */
            memset(out + (size_t)P->win_qhead * hd, 0, (size_t)hd * sizeof *out);
        if (Y->copy_n) {
            memset(out, 0, (size_t)hd * sizeof *out);
            if (row >= Y->copy_lo && row < Y->copy_lo + Y->copy_n) {
                out[row - Y->copy_lo] = P->lambda * Y->xnorm_att / sqrtf((float)c->n_embd);
                /* the copy also copies the previous token's mean offset */
                P->mean_shift[row] *= 1 + P->lambda;
            }
        }
        return;
    }

    case SK_GATE:
    case SK_UP: {
        int64_t e = row / c->n_ff, i = row % c->n_ff;
        if (c->rank && (t->kind == SK_GATE || c->act == PINFER_ACT_DRELU)) {
            lowrank_row(P, t, ti, row, out);
            return;
        }
        synth_rng_normals(&r, out + SYNTH_BIAS_CH, n - SYNTH_BIAS_CH, t->kind == SK_GATE ? Y->s_g : Y->s_u);
        fill_bias_block(out, 0);
        double p = Y->p[e * c->n_ff + i];
        bool dense = c->n_expert == 0;
        if (c->act == PINFER_ACT_DRELU)
            biased_row(P, Y, out, n, synth_norm_ppf(sqrt(p)), dense);
        else if (t->kind == SK_GATE && pf_act_relu_family(c->act))
            biased_row(P, Y, out, n, synth_norm_ppf(p), dense);
        return;
    }

    case SK_DOWN: {
        int64_t e = row / c->n_embd, j = row % c->n_embd;
        if (j < P->slow_hi || (j >= P->route_lo && j < P->route_hi)) { memset(out, 0, (size_t)n * sizeof *out); return; }
        synth_rng_normals(&r, out, n, Y->s_d[e]);
        if (Y->ea) {
            /* dReLU activations are >= 0: their mean leaves a constant offset in channel j */
            double m = 0;
            for (int64_t i = 0; i < n; i++) m += (double)out[i] * Y->ea[i];
            P->mean_shift[j] += (float)m;
        }
        return;
    }

    case SK_ROUTER: {
        float rho = sqrtf((float)c->n_embd) / Y->xnorm_ffn;
        fill_bias_block(out, Y->router_bias[row] / (SYNTH_BIAS_CH * P->c0 * rho));
        if (P->route_hi > P->route_lo) {
            router_row(P, Y, t->layer, &r, rho, out, n);
            return;
        }
        synth_rng_normals(&r, out + SYNTH_BIAS_CH, n - SYNTH_BIAS_CH, Y->s_r);
        return;
    }
    }
}
