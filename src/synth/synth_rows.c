/* Weight rows of a synthetic model, one at a time, from the plan (synth_plan.c).
 *
 * Row r of tensor t is drawn from its own generator seeded with (seed, t, r), so a file is the
 * same whatever the thread count. ggml order: a row is ne[0] contiguous weights = one output
 * unit's input weights (attn_q row = one query dimension, ffn_gate row = one neuron, ffn_down
 * row = one residual channel, token_embd row = one token). */
#include "synth/synth_internal.h"

#include "synth/synth_rng.h"

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
        /* the bias block, then a random direction of norm sqrt(d_rest): 1 per channel */
        fill_bias_block(out, P->c0);
        synth_rng_normals(&r, out + SYNTH_BIAS_CH, n - SYNTH_BIAS_CH, 1.0f);
        double ss = 0;
        for (int64_t j = SYNTH_BIAS_CH; j < n; j++) ss += (double)out[j] * out[j];
        float k = ss > 0 ? (float)sqrt(P->d_rest / ss) : 0;
        for (int64_t j = SYNTH_BIAS_CH; j < n; j++) out[j] *= k;
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
        synth_rng_normals(&r, out, n, Y->s_o);
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
        synth_rng_normals(&r, out + SYNTH_BIAS_CH, n - SYNTH_BIAS_CH, t->kind == SK_GATE ? Y->s_g : Y->s_u);
        fill_bias_block(out, 0);
        double p = Y->p[e * c->n_ff + i];
        bool dense = c->n_expert == 0;
        if (c->act == PINFER_ACT_DRELU)
            biased_row(P, Y, out, n, synth_norm_ppf(sqrt(p)), dense);
        else if (t->kind == SK_GATE && synth_act_relu_family(c->act))
            biased_row(P, Y, out, n, synth_norm_ppf(p), dense);
        return;
    }

    case SK_DOWN: {
        int64_t e = row / c->n_embd, j = row % c->n_embd;
        if (j < SYNTH_BIAS_CH) { memset(out, 0, (size_t)n * sizeof *out); return; }
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
        synth_rng_normals(&r, out + SYNTH_BIAS_CH, n - SYNTH_BIAS_CH, Y->s_r);
        return;
    }
    }
}
