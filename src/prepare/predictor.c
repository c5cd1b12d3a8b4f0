/* Training and evaluation of the per-layer activation predictors (see predictor.h and
 * docs/sparse-format.md).
 *
 * The model trained is z = W2 · relu(W1 · (x / rms)), with rms the per-channel RMS of the
 * training inputs (so every input channel has unit scale for the optimiser); the stored fc1 is
 * W1 with that scale folded back in, so decode applies it to x directly.
 *
 * Initialisation, and why:
 *  - hidden unit 0 is a "bias unit": its fc1 row is the mean input direction m / |m|^2, so it
 *    reads ~1 on every token when the inputs share a large common component (the constant
 *    channels real LLMs and our synthetic ones have). The file format has no bias terms.
 *  - the other units start on the top right singular vectors v_j of W_gate·diag(rms) (dReLU: of
 *    [W_gate; W_up]·diag(rms)): the directions of the input that move pre-activations most. A
 *    ReLU unit only passes one side of v_j·x, so when the bias unit is steady (coefficient of
 *    variation < 0.25) each unit is shifted by 3 standard deviations (relu is then linear over
 *    the data and rank r keeps r - 1 directions); otherwise units come in +v_j / -v_j pairs.
 *  - fc2 starts as the weights' own linear readout of the pre-activations (init_readout), which
 *    needs no fitting of n_ff x rank numbers to a few hundred tokens.
 * Then fine_tune: Adam on a binary cross-entropy with positives weighted by sqrt(neg/pos) (in
 * [1, 8]: recall matters more than precision, and the threshold is chosen afterwards anyway),
 * minibatches of BATCH tokens, fc1 frozen for the first FROZEN_FRAC of the steps, learning rate
 * decaying linearly to a tenth, kept only if it beats the initialisation on tokens set aside.
 *
 * Every product goes through pf_matmul (f32 rows as weights); its result for an element does
 * not depend on how rows are split across threads, so training is deterministic for a seed. */
#include "prepare/predictor.h"

#include "core/checked.h"
#include "core/error.h"
#include "prepare/lowrank.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/types.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 256
#define DEFAULT_STEPS 300
#define FROZEN_FRAC 0.3       /* share of the steps that train fc2 only */
#define LR2 0.02f             /* fc2: entries are O(1) */
#define LR1_SCALE 0.02f       /* fc1: times 1/sqrt(n_embd), the size of its entries */
#define SHIFT_SIGMAS 3.0f
#define RECALL_SAFETY 0.002   /* extra recall kept above the target (see pick_threshold) */
#define EVAL_CHUNK 64
#define TILE 32
#define CHECK_EVERY 25        /* steps between early-stopping checks (fine_tune) */
#define PATIENCE 2            /* checks in a row without improvement that end the training */

int pf_pred_type(int64_t n) { return n % QK8_0 == 0 ? PF_TYPE_Q8_0 : PF_TYPE_F16; }

uint64_t pf_pred_bytes(int n_embd, int n_ff, int rank)
{
    size_t a = 0, b = 0;
    pf_row_size(pf_pred_type(n_embd), n_embd, &a);
    pf_row_size(pf_pred_type(rank), rank, &b);
    return (uint64_t)rank * a + (uint64_t)n_ff * b;
}

void pf_pred_free(struct pf_predictor *p)
{
    if (!p) return;
    free(p->fc1);
    free(p->fc2);
    p->fc1 = p->fc2 = NULL;
}

/* ==== Training ==== */

struct trainer {
    int E, F, r, nt, B;
    const struct pf_pred_data *d;
    const int *tok;          /* nt training token indices */
    float *xs;               /* nt x E: x / rms */
    float *w1, *w2;          /* r x E, F x r */
    float *m1, *v1, *m2, *v2;
    float *xb, *xbt, *a, *h, *ht, *z, *gt, *w2t, *dh, *dat, *g1, *g2;
    int *order;
    float pos_w;
    struct pf_pool *pool;
    void *scratch;
};

/* The element-wise parts of a training step, cut across the pool's threads (each element is
 * computed the same way whatever the cut, so the file stays the same for any thread count). */
struct ew_task {
    enum { EW_TRANSPOSE, EW_ADAM, EW_BCE } kind;
    float *dst;          /* transpose: dst (cols x rows) = src (rows x cols) */
    const float *src;
    int rows, cols;
    float *w, *m, *v;    /* adam: w -= step(m, v <- g) over n elements */
    const float *g;
    size_t n;
    float lr, c1, c2;
    struct trainer *T;   /* bce: z rows of the minibatch idx[0..B) become dL/dz */
    const int *idx;
    int B;
};

static void ew_fn(void *arg, int ith, int nth)
{
    const struct ew_task *t = arg;
    long lo, hi;
    switch (t->kind) {
    case EW_TRANSPOSE: /* a share of dst's rows, in TILE x TILE blocks that stay in L1 */
        pf_split(t->cols, ith, nth, &lo, &hi);
        for (long j0 = lo; j0 < hi; j0 += TILE)
            for (int i0 = 0; i0 < t->rows; i0 += TILE) {
                long j1 = j0 + TILE < hi ? j0 + TILE : hi;
                int i1 = i0 + TILE < t->rows ? i0 + TILE : t->rows;
                for (long j = j0; j < j1; j++)
                    for (int i = i0; i < i1; i++)
                        t->dst[(size_t)j * (size_t)t->rows + (size_t)i] = t->src[(size_t)i * (size_t)t->cols + (size_t)j];
            }
        break;
    case EW_ADAM: {
        const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
        pf_split((long)t->n, ith, nth, &lo, &hi);
        for (long i = lo; i < hi; i++) {
            t->m[i] = b1 * t->m[i] + (1 - b1) * t->g[i];
            t->v[i] = b2 * t->v[i] + (1 - b2) * t->g[i] * t->g[i];
            t->w[i] -= t->lr * (t->m[i] / t->c1) / (sqrtf(t->v[i] / t->c2) + eps);
        }
        break;
    }
    case EW_BCE: {
        /* weighted BCE, mean over the batch */
        const struct trainer *T = t->T;
        const int F = T->F;
        const float inv_b = 1.0f / (float)t->B;
        pf_split(t->B, ith, nth, &lo, &hi);
        for (long b = lo; b < hi; b++) {
            int tk = T->tok[t->idx[b]];
            float *zr = T->z + (size_t)b * (size_t)F;
            for (int i = 0; i < F; i++) {
                float p = 1.0f / (1.0f + expf(-zr[i]));
                zr[i] = pf_pred_bit(T->d, tk, i) ? T->pos_w * (p - 1.0f) * inv_b : p * inv_b;
            }
        }
        break;
    }
    }
}

static void transpose(struct trainer *T, float *dst, const float *src, int rows, int cols)
{
    struct ew_task t = { .kind = EW_TRANSPOSE, .dst = dst, .src = src, .rows = rows, .cols = cols };
    pf_pool_run(T->pool, ew_fn, &t);
}

static void adam(struct trainer *T, float *w, float *m, float *v, const float *g, size_t n, float lr, int step)
{
    struct ew_task t = { .kind = EW_ADAM, .w = w, .m = m, .v = v, .g = g, .n = n, .lr = lr,
                         .c1 = 1.0f - powf(0.9f, (float)step), .c2 = 1.0f - powf(0.999f, (float)step) };
    pf_pool_run(T->pool, ew_fn, &t);
}

/* One Adam step on the minibatch of training rows idx[0..B). */
static void train_step(struct trainer *T, const int *idx, int B, int step, float lr1, float lr2, bool train1)
{
    const int E = T->E, F = T->F, r = T->r;
    for (int b = 0; b < B; b++) memcpy(T->xb + (size_t)b * E, T->xs + (size_t)idx[b] * E, (size_t)E * sizeof(float));
    pf_matmul(T->pool, T->a, T->w1, PF_TYPE_F32, E, r, T->xb, B, T->scratch);
    for (size_t e = 0; e < (size_t)B * r; e++) T->h[e] = T->a[e] > 0 ? T->a[e] : 0;
    pf_matmul(T->pool, T->z, T->w2, PF_TYPE_F32, r, F, T->h, B, T->scratch);
    /* z becomes dL/dz */
    struct ew_task bce = { .kind = EW_BCE, .T = T, .idx = idx, .B = B };
    pf_pool_run(T->pool, ew_fn, &bce);
    transpose(T, T->gt, T->z, B, F);
    transpose(T, T->ht, T->h, B, r);
    /* g2[i][k] = sum_b G[b][i] h[b][k] */
    pf_matmul(T->pool, T->g2, T->ht, PF_TYPE_F32, B, r, T->gt, F, T->scratch);
    if (train1) {
        transpose(T, T->w2t, T->w2, F, r);
        /* dh[b][k] = sum_i G[b][i] w2[i][k] */
        pf_matmul(T->pool, T->dh, T->w2t, PF_TYPE_F32, F, r, T->z, B, T->scratch);
        for (size_t e = 0; e < (size_t)B * r; e++)
            if (T->a[e] <= 0) T->dh[e] = 0;
        transpose(T, T->dat, T->dh, B, r);
        transpose(T, T->xbt, T->xb, B, E);
        /* g1[k][j] = sum_b da[b][k] xb[b][j] */
        pf_matmul(T->pool, T->g1, T->xbt, PF_TYPE_F32, B, E, T->dat, r, T->scratch);
        adam(T, T->w1, T->m1, T->v1, T->g1, (size_t)r * E, lr1, step);
    }
    adam(T, T->w2, T->m2, T->v2, T->g2, (size_t)F * r, lr2, step);
}

/* The training buffers: Adam's moments, a minibatch's activations and gradients (only
 * fine_tune needs them; a rank candidate that is only initialised and measured does not). */
static void trainer_free_train(struct trainer *T)
{
    float **bufs[] = { &T->m1, &T->v1, &T->m2, &T->v2, &T->xb, &T->xbt, &T->a, &T->h, &T->ht,
                       &T->z, &T->gt, &T->w2t, &T->dh, &T->dat, &T->g1, &T->g2 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) { free(*bufs[i]); *bufs[i] = NULL; }
    free(T->order);
    free(T->scratch);
    T->order = NULL;
    T->scratch = NULL;
}

static void trainer_free(struct trainer *T)
{
    trainer_free_train(T);
    free(T->xs); free(T->w1); free(T->w2);
    free((void *)T->tok);
    T->xs = T->w1 = T->w2 = NULL;
    T->tok = NULL;
}

static int trainer_alloc(struct trainer *T)
{
    const size_t E = (size_t)T->E, F = (size_t)T->F, r = (size_t)T->r, nt = (size_t)T->nt;
    size_t big;
    if (ck_mul(F, (size_t)T->B, &big) || ck_mul(F, r, &big) || ck_mul(nt, E, &big)) return pf_fail(PINFER_ENOMEM, "predictor: sizes overflow");
#define A(p, n) if (!((p) = calloc((n), sizeof *(p)))) return pf_fail(PINFER_ENOMEM, "predictor: out of memory")
    A(T->xs, nt * E); A(T->w1, r * E); A(T->w2, F * r);
    return 0;
}

static int trainer_alloc_train(struct trainer *T)
{
    const size_t E = (size_t)T->E, F = (size_t)T->F, r = (size_t)T->r, B = (size_t)T->B, nt = (size_t)T->nt;
    A(T->m1, r * E); A(T->v1, r * E); A(T->m2, F * r); A(T->v2, F * r);
    A(T->xb, B * E); A(T->xbt, B * E); A(T->a, B * r); A(T->h, B * r); A(T->ht, B * r);
    A(T->z, B * F); A(T->gt, B * F); A(T->w2t, F * r); A(T->dh, B * r); A(T->dat, B * r);
    A(T->g1, r * E); A(T->g2, F * r); A(T->order, nt);
#undef A
    if (!(T->scratch = malloc(64))) return pf_fail(PINFER_ENOMEM, "predictor: out of memory");
    return 0;
}

/* fc2 from the weights, for each FFN matrix the label depends on (gate; gate and up for dReLU):
 * within the span of the directions the pre-activation of neuron i is
 *   pre_i ~ sum_j c_ij (v_j . x') + b_i,   c_ij = (W diag(rms) v_j)_i,
 * and v_j . x' is a fixed affine function of unit j (dir/coef). b_i and the spread s_i of what
 * the span misses come from the training tokens: a mean and a standard deviation per neuron,
 * which a few hundred tokens estimate well (a regression of n_ff x rank coefficients would not).
 * The logit is 1.7 * sum over matrices of pre_hat_i / s_i (1.7: probit to logit scale); for
 * dReLU the sum of the two standardized pre-activations is the linear stand-in for "both > 0". */
static int init_readout(struct trainer *T, const struct pf_weight *gate, const struct pf_weight *up,
                        const float *rms, const float *v, int k, const int *dir, const float *coef)
{
    const int E = T->E, F = T->F, r = T->r, nt = T->nt;
    const int kk = k > 0 ? k : 1, big = nt > kk ? nt : kk;
    size_t sc = pf_matmul_scratch_size(gate->type, E, big);
    if (sc == SIZE_MAX) return pf_fail(PINFER_EUNSUPPORTED, "predictor: unsupported FFN type");
    float *c = malloc((size_t)kk * F * sizeof *c), *vs = malloc((size_t)kk * E * sizeof *vs);
    float *x = malloc((size_t)nt * E * sizeof *x), *pre = malloc((size_t)nt * F * sizeof *pre);
    float *fit = malloc((size_t)nt * F * sizeof *fit), *h = malloc((size_t)nt * r * sizeof *h);
    float *R = malloc((size_t)F * r * sizeof *R);
    void *scratch = malloc(sc > 64 ? sc : 64);
    int rc = 0;
    if (!c || !vs || !x || !pre || !fit || !h || !R || !scratch) { rc = pf_fail(PINFER_ENOMEM, "predictor: out of memory"); goto out; }
    pf_matmul(T->pool, h, T->w1, PF_TYPE_F32, E, r, T->xs, nt, scratch);
    for (size_t e = 0; e < (size_t)nt * r; e++) h[e] = h[e] > 0 ? h[e] : 0;
    double h0 = 0;
    for (int t = 0; t < nt; t++) h0 += h[(size_t)t * r];
    h0 /= nt;
    for (int t = 0; t < nt; t++)
        for (int e = 0; e < E; e++) x[(size_t)t * E + e] = T->xs[(size_t)t * E + e] * rms[e];
    for (int j = 0; j < k; j++)
        for (int e = 0; e < E; e++) vs[(size_t)j * E + e] = v[(size_t)j * E + e] * rms[e];
    memset(T->w2, 0, (size_t)F * r * sizeof *T->w2);
    const struct pf_weight *ws[2] = { gate, up };
    for (int m = 0; m < (up ? 2 : 1); m++) {
        const struct pf_weight *W = ws[m];
        if (k > 0) pf_matmul(T->pool, c, W->data, W->type, E, F, vs, k, scratch);
        pf_matmul(T->pool, pre, W->data, W->type, E, F, x, nt, scratch);
        for (int i = 0; i < F; i++)
            for (int j = 0; j < r; j++) R[(size_t)i * r + j] = dir[j] >= 0 ? c[(size_t)dir[j] * F + i] * coef[j] : 0.0f;
        pf_matmul(T->pool, fit, R, PF_TYPE_F32, r, F, h, nt, scratch);
        for (int i = 0; i < F; i++) {
            double sr = 0;
            for (int t = 0; t < nt; t++) sr += pre[(size_t)t * F + i] - fit[(size_t)t * F + i];
            double b = h0 > 1e-6 ? sr / nt / h0 : 0, s2 = 0;
            for (int t = 0; t < nt; t++) {
                double e = pre[(size_t)t * F + i] - fit[(size_t)t * F + i] - b * h[(size_t)t * r];
                s2 += e * e;
            }
            double sd = sqrt(s2 / nt);
            if (!(sd > 1e-12)) sd = 1e-12;
            float g = (float)(1.7 / sd);
            float *w2 = T->w2 + (size_t)i * r;
            for (int j = 0; j < r; j++) w2[j] += g * R[(size_t)i * r + j];
            w2[0] += g * (float)b;
        }
    }
out:
    free(c); free(vs); free(x); free(pre); free(fit); free(h); free(R); free(scratch);
    return rc;
}

/* Initial fc1 (see the top of the file), then fc2 by init_readout. rms: per-channel input scale;
 * dir/coef (rank entries) receive which direction each unit reads and its scale. */
static int init_weights(struct trainer *T, const struct pf_weight *gate, const struct pf_weight *up,
                        const float *rms, uint64_t seed, int *dir, float *coef)
{
    const int E = T->E, r = T->r, nt = T->nt;
    double *mean = calloc((size_t)E, sizeof *mean);
    float *mvec = malloc((size_t)E * sizeof *mvec), *v = NULL;
    double *ps = NULL;
    int rc = 0;
    if (!mean || !mvec) { rc = pf_fail(PINFER_ENOMEM, "predictor: out of memory"); goto out; }
    for (int t = 0; t < nt; t++)
        for (int j = 0; j < E; j++) mean[j] += T->xs[(size_t)t * E + j];
    double mm = 0;
    for (int j = 0; j < E; j++) { mean[j] /= nt; mm += mean[j] * mean[j]; }
    struct pf_rng rng;
    pf_rng_init(&rng, pf_mix64(seed ^ 0x5EED));
    if (mm < 1e-6 * E) { /* no common component: unit 0 becomes an ordinary random unit */
        mm = 0;
        for (int j = 0; j < E; j++) { mean[j] = pf_rng_normal(&rng); mm += mean[j] * mean[j]; }
    }
    for (int j = 0; j < E; j++) mvec[j] = (float)(mean[j] / mm);
    /* the bias unit's reading on each token: its mean and spread decide the layout */
    double su = 0, su2 = 0;
    for (int t = 0; t < nt; t++) {
        double u = 0;
        for (int j = 0; j < E; j++) u += (double)mvec[j] * T->xs[(size_t)t * E + j];
        su += u; su2 += u * u;
    }
    double mu_u = su / nt, sd_u = sqrt(fmax(0, su2 / nt - mu_u * mu_u));
    bool shifted = mu_u > 0 && sd_u < 0.25 * mu_u;
    memcpy(T->w1, mvec, (size_t)E * sizeof *mvec);

    int rest = r - 1;
    int k = shifted ? rest : (rest + 1) / 2;
    int rows = (int)gate->n_out + (up ? (int)up->n_out : 0);
    if (k > E - 1) k = E - 1;
    if (k > rows) k = rows;
    if (k > 0) {
        v = malloc((size_t)k * E * sizeof *v);
        ps = calloc((size_t)k * 2, sizeof *ps);
        if (!v || !ps) { rc = pf_fail(PINFER_ENOMEM, "predictor: out of memory"); goto out; }
        const struct pf_weight *ws[2] = { gate, up };
        /* pre-activations are W x = (W diag(rms)) (x / rms): decompose the scaled matrix */
        if ((rc = pf_lowrank_right(v, NULL, k, ws, up ? 2 : 1, rms, seed, T->pool))) goto out;
    }
    /* statistics of each direction over the training tokens */
    for (int j = 0; j < k; j++) {
        double s = 0, s2 = 0;
        for (int t = 0; t < nt; t++) {
            double p = 0;
            for (int e = 0; e < E; e++) p += (double)v[(size_t)j * E + e] * T->xs[(size_t)t * E + e];
            s += p; s2 += p * p;
        }
        ps[2 * j] = s / nt;
        ps[2 * j + 1] = sqrt(fmax(1e-12, s2 / nt - (s / nt) * (s / nt)));
    }
    /* unit `row` reads (v_j . x' - mu) / sd, times sign (+3 when shifted): dir/coef let the
       readout turn it back into v_j . x' */
    int row = 1;
    dir[0] = -1;
    for (int j = 0; j < k && row < r; j++) {
        float mu = (float)ps[2 * j], sd = (float)ps[2 * j + 1];
        const float *vj = v + (size_t)j * E;
        for (int sign = 1; sign >= (shifted ? 1 : -1) && row < r; sign -= 2, row++) {
            float *w = T->w1 + (size_t)row * E;
            for (int e = 0; e < E; e++) {
                w[e] = shifted ? vj[e] / sd + (SHIFT_SIGMAS - mu / sd) * mvec[e]
                               : (float)sign * (vj[e] - mu * mvec[e]) / sd;
            }
            dir[row] = j;
            coef[row] = (float)sign * sd;
        }
    }
    for (; row < r; row++) { /* rank above what the weights offer: small random units */
        float *w = T->w1 + (size_t)row * E;
        for (int e = 0; e < E; e++) w[e] = (float)(pf_rng_normal(&rng) / E);
        dir[row] = -1;
    }
    rc = init_readout(T, gate, up, rms, v, k, dir, coef);
out:
    free(mean); free(mvec); free(v); free(ps);
    return rc;
}

/* Quantizes the trained weights into p, folding 1/rms into fc1's columns. */
static int store(struct pf_predictor *p, const struct trainer *T, const float *rms)
{
    const int E = T->E, F = T->F, r = T->r;
    size_t row1, row2;
    p->rank = r;
    p->type1 = pf_pred_type(E);
    p->type2 = pf_pred_type(r);
    if (!pf_row_size(p->type1, E, &row1) || !pf_row_size(p->type2, r, &row2))
        return pf_fail(PINFER_EINVAL, "predictor: bad row size");
    p->fc1_bytes = row1 * (size_t)r;
    p->fc2_bytes = row2 * (size_t)F;
    p->fc1 = malloc(p->fc1_bytes);
    p->fc2 = malloc(p->fc2_bytes);
    float *tmp = malloc((size_t)E * sizeof *tmp);
    if (!p->fc1 || !p->fc2 || !tmp) { free(tmp); return pf_fail(PINFER_ENOMEM, "predictor: out of memory"); }
    for (int k = 0; k < r; k++) {
        for (int j = 0; j < E; j++) tmp[j] = T->w1[(size_t)k * E + j] / rms[j];
        pf_kernels_ref.from_f32[p->type1](tmp, (char *)p->fc1 + (size_t)k * row1, E);
    }
    for (int i = 0; i < F; i++)
        pf_kernels_ref.from_f32[p->type2](T->w2 + (size_t)i * r, (char *)p->fc2 + (size_t)i * row2, r);
    free(tmp);
    return 0;
}

struct pred_net {
    const void *w1, *w2;   /* rank rows of n_embd (type1), n_ff rows of rank (type2) */
    int type1, type2, rank;
};
static int measure(const struct pred_net *net, const struct pf_pred_data *d, const float *x, const int *xrow,
                   const int *tok, int n, int chunk, bool choose, float target, struct pf_pool *pool,
                   struct pf_predictor *out);

/* Fraction of validation cells (token x neuron) predicted active at the threshold that reaches
 * the recall target on them: the cost the fine-tuning is judged by. val: rows of T->xs; vtok:
 * the same tokens' indices in T->d. */
static int val_cost(struct trainer *T, const int *val, const int *vtok, int nv, float target, double *cost)
{
    const struct pred_net net = { T->w1, T->w2, PF_TYPE_F32, PF_TYPE_F32, T->r };
    struct pf_predictor m;
    int rc = measure(&net, T->d, T->xs, val, vtok, nv, T->B, true, target, T->pool, &m);
    *cost = m.pred_frac;
    return rc;
}

/* Adam on the weighted cross-entropy, with early stopping on tokens set aside: an eighth of the
 * training tokens (every 8th block of 16) is not fitted; every CHECK_EVERY steps the weights are
 * judged on them (fraction of neurons predicted at the recall target, val_cost) and the best
 * weights so far, the initialisation included, are kept; PATIENCE checks in a row without a
 * better cost end the training. With a few hundred calibration tokens and n_ff x rank
 * parameters the fit loses to the initialisation (which takes its readout from the weights, not
 * the data) within the first check, so the usual cost is 2-3 checks, not all the steps (a 7B
 * layer: ~12x less time, bench/RESULTS.md "Prepare time"); with thousands of tokens the fit
 * improves for longer and runs on. *steps_run: the steps taken. */
static int fine_tune(struct trainer *T, int steps, const struct pf_pred_cfg *cfg, int *steps_run, bool *improved)
{
    const int nt = T->nt, E = T->E, F = T->F, r = T->r;
    int nf = 0, nv = 0, rc = trainer_alloc_train(T);
    *improved = false;
    if (rc) { trainer_free_train(T); return rc; }
    int *fit = malloc((size_t)nt * sizeof *fit), *val = malloc((size_t)nt * sizeof *val);
    int *vtok = malloc((size_t)nt * sizeof *vtok);
    float *w1 = malloc((size_t)r * E * sizeof *w1), *w2 = malloc((size_t)F * r * sizeof *w2);
    *steps_run = 0;
    if (!fit || !val || !vtok || !w1 || !w2) { rc = pf_fail(PINFER_ENOMEM, "predictor: out of memory"); goto out; }
    for (int n = 0; n < nt; n++) {
        if ((n / 16) % 8 == 7) { vtok[nv] = T->tok[n]; val[nv++] = n; }
        else fit[nf++] = n;
    }
    if (nv < 8 || nf < 16) goto out; /* too few tokens to judge a fit: keep the initialisation */
    memcpy(w1, T->w1, (size_t)r * E * sizeof *w1); /* w1, w2: the best weights so far */
    memcpy(w2, T->w2, (size_t)F * r * sizeof *w2);
    double best;
    if ((rc = val_cost(T, val, vtok, nv, cfg->recall_target, &best))) goto out;

    struct pf_rng rng;
    pf_rng_init(&rng, cfg->seed);
    const int B = nf < T->B ? nf : T->B, frozen = (int)(steps * FROZEN_FRAC);
    const float lr1 = LR1_SCALE / sqrtf((float)E);
    int at = nf, misses = 0;
    for (int s = 1; s <= steps; s++) {
        if (at + B > nf) { /* a fresh permutation per epoch */
            for (int i = 0; i < nf; i++) T->order[i] = fit[i];
            for (int i = nf - 1; i > 0; i--) {
                int j = (int)pf_rng_below(&rng, (uint64_t)i + 1), x = T->order[i];
                T->order[i] = T->order[j];
                T->order[j] = x;
            }
            at = 0;
        }
        float decay = 1.0f - 0.9f * (float)(s - 1) / (float)steps;
        train_step(T, T->order + at, B, s, lr1 * decay, LR2 * decay, s > frozen);
        at += B;
        *steps_run = s;
        if (s % CHECK_EVERY && s != steps) continue;
        double c;
        if ((rc = val_cost(T, val, vtok, nv, cfg->recall_target, &c))) goto out;
        if (c < best) {
            best = c;
            misses = 0;
            *improved = true;
            memcpy(w1, T->w1, (size_t)r * E * sizeof *w1);
            memcpy(w2, T->w2, (size_t)F * r * sizeof *w2);
        } else if (++misses >= PATIENCE) break;
    }
    memcpy(T->w1, w1, (size_t)r * E * sizeof *w1);
    memcpy(T->w2, w2, (size_t)F * r * sizeof *w2);
out:
    free(fit); free(val); free(vtok); free(w1); free(w2);
    trainer_free_train(T);
    return rc;
}

struct pf_pred_fit {
    struct trainer T;
    const struct pf_weight *gate, *up;
    float *rms;                 /* per-channel scale of the training inputs */
    int steps;                  /* Adam steps fine_tune took */
    struct pf_predictor pred;   /* the stored form of T's weights, measured on held-out tokens */
};

void pf_pred_fit_free(struct pf_pred_fit *f)
{
    if (!f) return;
    trainer_free(&f->T);
    free(f->rms);
    pf_pred_free(&f->pred);
    free(f);
}

const struct pf_predictor *pf_pred_fit_result(const struct pf_pred_fit *f) { return &f->pred; }

/* Quantizes T's weights into f->pred and measures them (threshold for the recall target). */
static int fit_store(struct pf_pred_fit *f, const struct pf_pred_cfg *cfg)
{
    pf_pred_free(&f->pred);
    memset(&f->pred, 0, sizeof f->pred);
    int rc = store(&f->pred, &f->T, f->rms);
    if (!rc) rc = pf_pred_eval(&f->pred, f->T.d, true, cfg);
    return rc;
}

int pf_pred_fit_init(struct pf_pred_fit **out, const struct pf_pred_data *d, const struct pf_weight *gate,
                     const struct pf_weight *up, int rank, const struct pf_pred_cfg *cfg)
{
    *out = NULL;
    const int E = d->n_embd, F = d->n_ff;
    if (rank < 1 || rank > E) return pf_fail(PINFER_EINVAL, "predictor rank %d is not in 1..%d", rank, E);
    if (gate->n_in != E || gate->n_out != F || (up && (up->n_in != E || up->n_out != F)))
        return pf_fail(PINFER_EINVAL, "predictor: FFN weights do not match the data");
    int nt = 0, rc, *dir = NULL;
    for (int t = 0; t < d->n_tok; t++) nt += !d->heldout[t];
    if (nt < 16) return pf_fail(PINFER_EINVAL, "predictor: %d training tokens are too few", nt);
    struct pf_pred_fit *f = calloc(1, sizeof *f);
    if (!f) return pf_fail(PINFER_ENOMEM, "predictor: out of memory");
    struct trainer *T = &f->T;
    *T = (struct trainer){ .E = E, .F = F, .r = rank, .d = d, .pool = cfg->pool, .nt = nt, .B = nt < BATCH ? nt : BATCH };
    f->gate = gate;
    f->up = up;
    float *coef = NULL;
    int *tok = malloc((size_t)nt * sizeof *tok);
    float *rms = f->rms = calloc((size_t)E, sizeof *rms);
    T->tok = tok;
    if (!tok || !rms) { rc = pf_fail(PINFER_ENOMEM, "predictor: out of memory"); goto out; }
    if ((rc = trainer_alloc(T))) goto out;
    for (int t = 0, n = 0; t < d->n_tok; t++)
        if (!d->heldout[t]) tok[n++] = t;

    /* per-channel scale, and the base rate of activity for the positive weight */
    uint64_t pos = 0;
    for (int n = 0; n < nt; n++) {
        const float *x = d->x + (size_t)tok[n] * E;
        for (int j = 0; j < E; j++) rms[j] += x[j] * x[j];
        for (int i = 0; i < F; i++) pos += pf_pred_bit(d, tok[n], i);
    }
    for (int j = 0; j < E; j++) {
        rms[j] = sqrtf(rms[j] / nt);
        if (!(rms[j] > 1e-20f)) rms[j] = 1.0f;
    }
    for (int n = 0; n < nt; n++)
        for (int j = 0; j < E; j++) T->xs[(size_t)n * E + j] = d->x[(size_t)tok[n] * E + j] / rms[j];
    double frac = (double)pos / ((double)nt * F);
    T->pos_w = frac > 0 && frac < 1 ? (float)fmin(8.0, fmax(1.0, sqrt((1 - frac) / frac))) : 1.0f;

    dir = malloc((size_t)rank * sizeof *dir);
    coef = malloc((size_t)rank * sizeof *coef);
    if (!dir || !coef) { rc = pf_fail(PINFER_ENOMEM, "predictor: out of memory"); goto out; }
    if ((rc = init_weights(T, gate, up, rms, cfg->seed, dir, coef))) goto out;
    rc = fit_store(f, cfg);
out:
    free(dir);
    free(coef);
    if (rc) pf_pred_fit_free(f);
    else *out = f;
    return rc;
}

int pf_pred_fit_finish(struct pf_pred_fit *f, const struct pf_pred_cfg *cfg, struct pf_predictor *out)
{
    memset(out, 0, sizeof *out);
    int steps = cfg->steps > 0 ? cfg->steps : cfg->steps < 0 ? 0 : DEFAULT_STEPS, rc = 0;
    bool improved = false;
    if (steps > 0 && (rc = fine_tune(&f->T, steps, cfg, &f->steps, &improved))) return rc;
    if (improved && (rc = fit_store(f, cfg))) return rc;
    f->pred.steps = f->steps;
    *out = f->pred; /* ownership moves */
    memset(&f->pred, 0, sizeof f->pred);
    return 0;
}

int pf_pred_train(struct pf_predictor *out, const struct pf_pred_data *d, const struct pf_weight *gate,
                  const struct pf_weight *up, int rank, const struct pf_pred_cfg *cfg)
{
    struct pf_pred_fit *f;
    memset(out, 0, sizeof *out);
    int rc = pf_pred_fit_init(&f, d, gate, up, rank, cfg);
    if (rc) return rc;
    rc = pf_pred_fit_finish(f, cfg, out);
    pf_pred_fit_free(f);
    return rc;
}

/* ==== Evaluation ==== */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Threshold keeping at least (target + RECALL_SAFETY) of the positives above it: the safety
 * margin, and placing the cut half-way to the next lower positive logit, keep recall >= target
 * when decode's kernels sum in another order than the ones measured here. */
static float pick_threshold(float *pos, size_t n_pos, float target)
{
    if (n_pos == 0) return FLT_MAX;
    qsort(pos, n_pos, sizeof *pos, cmp_float);
    double miss = (1.0 - (double)target - RECALL_SAFETY) * (double)n_pos;
    size_t k = miss > 0 ? (size_t)miss : 0;
    if (k >= n_pos) k = n_pos - 1;
    while (k > 0 && !(pos[k - 1] < pos[k])) k--;
    if (k == 0) return pos[0] - fmaxf(1e-3f, fabsf(pos[0]) * 1e-3f);
    return 0.5f * (pos[k - 1] + pos[k]);
}

/* The one evaluation of a predictor, for fine_tune's judgement (f32 weights on scaled inputs)
 * and for the stored predictor (its quantized tensors, exactly as decode computes them):
 * logits = w2 · relu(w1 · x) for n tokens, chunk tokens per product; the k-th token's input is
 * row xrow[k] of x (rows of d->n_embd), its true active set mask row tok[k] of d. choose: sets
 * out->threshold for recall `target` first; otherwise keeps it. Fills out's recall, precision,
 * true_frac and pred_frac (micro-averaged over token x neuron cells). */
/* *logits (n x n_ff, owned by the caller) = w2 · relu(w1 · x) for the rows xrow[0..n) of x
 * (rows of n_embd; xrow NULL: rows 0..n), chunk tokens per product, as decode computes it. */
static int net_logits(const struct pred_net *net, int E, int F, const float *x, const int *xrow, int n, int chunk,
                      struct pf_pool *pool, float **logits)
{
    const int r = net->rank;
    *logits = NULL;
    size_t s1 = pf_matmul_scratch_size(net->type1, E, chunk), s2 = pf_matmul_scratch_size(net->type2, r, chunk);
    if (s1 == SIZE_MAX || s2 == SIZE_MAX) return pf_fail(PINFER_EUNSUPPORTED, "predictor: unsupported tensor types");
    size_t n_logits;
    if (ck_mul((size_t)n, (size_t)F, &n_logits)) return pf_fail(PINFER_ENOMEM, "predictor: size overflows");
    float *lg = malloc((n_logits ? n_logits : 1) * sizeof *lg), *xc = malloc((size_t)chunk * E * sizeof *xc);
    float *hc = malloc((size_t)chunk * r * sizeof *hc);
    void *scratch = malloc(s1 > s2 ? s1 : s2);
    int rc = 0;
    if (!lg || !xc || !hc || !scratch) { rc = pf_fail(PINFER_ENOMEM, "predictor: out of memory"); goto out; }
    for (int c0 = 0; c0 < n; c0 += chunk) {
        int c = n - c0 < chunk ? n - c0 : chunk;
        for (int i = 0; i < c; i++)
            memcpy(xc + (size_t)i * E, x + (size_t)(xrow ? xrow[c0 + i] : c0 + i) * E, (size_t)E * sizeof *xc);
        pf_matmul(pool, hc, net->w1, net->type1, E, r, xc, c, scratch);
        for (size_t e = 0; e < (size_t)c * r; e++) hc[e] = hc[e] > 0 ? hc[e] : 0;
        pf_matmul(pool, lg + (size_t)c0 * F, net->w2, net->type2, r, F, hc, c, scratch);
    }
out:
    if (rc) free(lg);
    else *logits = lg;
    free(xc); free(hc); free(scratch);
    return rc;
}

static int measure(const struct pred_net *net, const struct pf_pred_data *d, const float *x, const int *xrow,
                   const int *tok, int n, int chunk, bool choose, float target, struct pf_pool *pool,
                   struct pf_predictor *out)
{
    const int F = d->n_ff;
    float *logits, *pos = NULL;
    int rc = net_logits(net, d->n_embd, F, x, xrow, n, chunk, pool, &logits);
    if (rc) return rc;
    uint64_t n_pos = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < F; i++) n_pos += pf_pred_bit(d, tok[k], i);
    if (choose) {
        pos = malloc((n_pos ? n_pos : 1) * sizeof *pos);
        if (!pos) { rc = pf_fail(PINFER_ENOMEM, "predictor: out of memory"); goto out; }
        size_t np = 0;
        for (int k = 0; k < n; k++)
            for (int i = 0; i < F; i++)
                if (pf_pred_bit(d, tok[k], i)) pos[np++] = logits[(size_t)k * F + i];
        out->threshold = pick_threshold(pos, np, target);
    }
    uint64_t tp = 0, pred = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < F; i++) {
            bool on = logits[(size_t)k * F + i] > out->threshold;
            pred += on;
            tp += on && pf_pred_bit(d, tok[k], i);
        }
    double cells = (double)n * F;
    out->recall = n_pos ? (float)((double)tp / (double)n_pos) : 1.0f;
    out->precision = pred ? (float)((double)tp / (double)pred) : 1.0f;
    out->true_frac = (double)n_pos / cells;
    out->pred_frac = (double)pred / cells;
out:
    free(logits);
    free(pos);
    return rc;
}

int pf_pred_select_freq(const struct pf_predictor *p, const struct pf_pred_data *d, struct pf_pool *pool, float *freq,
                        uint64_t *bits)
{
    const struct pred_net net = { p->fc1, p->fc2, p->type1, p->type2, p->rank };
    const int F = d->n_ff, n = d->n_tok;
    const size_t words = ((size_t)n + 63) / 64;
    float *logits;
    int rc = net_logits(&net, d->n_embd, F, d->x, NULL, n, EVAL_CHUNK, pool, &logits);
    if (rc) return rc;
    if (bits) memset(bits, 0, (size_t)F * words * sizeof *bits);
    for (int i = 0; i < F; i++) {
        int c = 0;
        for (int k = 0; k < n; k++) {
            const bool on = logits[(size_t)k * F + i] > p->threshold;
            c += on;
            if (on && bits) bits[(size_t)i * words + (size_t)(k >> 6)] |= 1ull << (k & 63);
        }
        freq[i] = n > 0 ? (float)((double)c / n) : 0.0f;
    }
    free(logits);
    return 0;
}

int pf_pred_eval(struct pf_predictor *p, const struct pf_pred_data *d, bool choose, const struct pf_pred_cfg *cfg)
{
    int nh = 0;
    for (int t = 0; t < d->n_tok; t++) nh += d->heldout[t] != 0;
    if (nh == 0) return pf_fail(PINFER_EINVAL, "predictor: no held-out tokens to evaluate on");
    int *ho = malloc((size_t)nh * sizeof *ho);
    if (!ho) return pf_fail(PINFER_ENOMEM, "predictor: out of memory");
    for (int t = 0, n = 0; t < d->n_tok; t++)
        if (d->heldout[t]) ho[n++] = t;
    const struct pred_net net = { p->fc1, p->fc2, p->type1, p->type2, p->rank };
    int rc = measure(&net, d, d->x, ho, ho, nh, EVAL_CHUNK, choose, cfg->recall_target, cfg->pool, p);
    free(ho);
    return rc;
}
