/* Activation predictors for the sparse FFN (docs/sparse-format.md): per layer a low-rank MLP
 *   logit = fc2 · relu(fc1 · x)      fc1: rank rows of n_embd, fc2: n_ff rows of rank
 * on the FFN input x (after ffn_norm); neuron i is predicted active when logit_i > threshold.
 *
 * Training (pf_pred_train) runs in plain C on (input, true active mask) pairs gathered while
 * profiling: fc1 starts from the top right singular vectors of the gate (and, for dReLU, up)
 * weights scaled by the input's per-channel RMS (randomized SVD), fc2 from the neurons' base
 * rates, then both are fitted with Adam on a weighted binary cross-entropy. The stored weights are
 * quantized (Q8_0, or F16 when a row is not a whole number of Q8_0 blocks), and the threshold is
 * chosen on held-out tokens by evaluating exactly what decode computes: x converted to the
 * weight's dot type, relu, the hidden vector converted again, then fc2 (pf_matmul). */
#ifndef PF_PREPARE_PREDICTOR_H
#define PF_PREPARE_PREDICTOR_H

#include "core/threadpool.h"
#include "model/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Training pairs of one layer. Bit i of mask row t (byte i/8, bit i%8) = neuron i (original
 * order) was active for token t. */
struct pf_pred_data {
    int n_embd, n_ff, n_tok;
    const float *x;          /* (n_tok, n_embd) FFN inputs */
    const uint8_t *mask;     /* (n_tok, mask_stride) */
    size_t mask_stride;
    const uint8_t *heldout;  /* (n_tok) 1 = held out for evaluation, 0 = training */
};

static inline bool pf_pred_bit(const struct pf_pred_data *d, int t, int i)
{
    return (d->mask[(size_t)t * d->mask_stride + (size_t)(i >> 3)] >> (i & 7)) & 1;
}

/* A predictor in its stored form. fc2 rows are in original neuron order here; the writer
 * permutes them into bundle-slot order. */
struct pf_predictor {
    int rank;
    int type1, type2;        /* tensor types of fc1 and fc2 */
    void *fc1;               /* rank rows of n_embd (type1); owned */
    void *fc2;               /* n_ff rows of rank (type2); owned */
    size_t fc1_bytes, fc2_bytes;
    float threshold;
    int steps;               /* Adam steps taken before early stopping (0: kept the initialisation untrained) */
    /* measured on held-out tokens (micro-averaged over token x neuron pairs): */
    float recall, precision;
    double true_frac;        /* fraction of neurons really active */
    double pred_frac;        /* fraction predicted active */
};

struct pf_pred_cfg {
    float recall_target;     /* threshold chosen so held-out recall >= this */
    uint64_t seed;
    int steps;               /* Adam steps (0 = default) */
    struct pf_pool *pool;    /* may be NULL */
};

/* Trains a predictor of the given rank for one layer. gate (and up, for dReLU; NULL otherwise)
 * are the layer's FFN weights, used to initialise fc1. On success *out holds owned buffers
 * (pf_pred_free). The result depends only on the inputs and the seed, not on the thread count. */
int pf_pred_train(struct pf_predictor *out, const struct pf_pred_data *d, const struct pf_weight *gate,
                  const struct pf_weight *up, int rank, const struct pf_pred_cfg *cfg);

/* The same in two steps, for a search over ranks: pf_pred_fit_init initialises a predictor from
 * the weights and measures it (pf_pred_fit_result: threshold, recall, pred_frac ... of the
 * stored form), cheaply; pf_pred_fit_finish fine-tunes it (cfg->steps at most, early stopping)
 * and hands the stored predictor to *out (owned). pf_pred_train = init + finish + free. */
struct pf_pred_fit;
int pf_pred_fit_init(struct pf_pred_fit **out, const struct pf_pred_data *d, const struct pf_weight *gate,
                     const struct pf_weight *up, int rank, const struct pf_pred_cfg *cfg);
const struct pf_predictor *pf_pred_fit_result(const struct pf_pred_fit *f);
int pf_pred_fit_finish(struct pf_pred_fit *f, const struct pf_pred_cfg *cfg, struct pf_predictor *out);
void pf_pred_fit_free(struct pf_pred_fit *f);

/* Evaluates p on the held-out tokens of d. choose: set p->threshold for cfg->recall_target
 * first; otherwise keep p->threshold. Fills recall, precision, true_frac, pred_frac. */
int pf_pred_eval(struct pf_predictor *p, const struct pf_pred_data *d, bool choose,
                 const struct pf_pred_cfg *cfg);

/* freq[i] (n_ff, original order) = the fraction of all of d's tokens, training and held out,
 * on which p selects neuron i (logit > threshold, computed as decode computes it): what a
 * decode step asks the neuron cache for, false positives included (the planner's request law).
 * bits (NULL, or n_ff x (n_tok + 63) / 64 words): per neuron, bit t set when p selects it for
 * row t (the request trace prepare/reuse.h measures). */
int pf_pred_select_freq(const struct pf_predictor *p, const struct pf_pred_data *d, struct pf_pool *pool, float *freq,
                        uint64_t *bits);

/* Bytes of a predictor of this rank for a layer: fc1 + fc2 as pf_pred_train stores them. */
uint64_t pf_pred_bytes(int n_embd, int n_ff, int rank);
/* The type pf_pred_train stores a matrix with rows of n elements in. */
int pf_pred_type(int64_t n);

void pf_pred_free(struct pf_predictor *p);

#endif
