/* Activation statistics of FFN neurons, per layer: how often each neuron is active (non-zero),
 * how concentrated activity is on a hot set, how much consecutive tokens' active sets overlap,
 * and the distribution of |activation|. `pinfer profile` fills them from the forward pass's FFN
 * hook; the sparse engine reuses them (neuron ordering by frequency, hot-cluster sizing,
 * CATS-style thresholds for SiLU models from the |activation| quantiles).
 *
 * Definitions (per layer; A_t = set of neurons with act != 0 at token t):
 *   active_frac = mean over tokens of |A_t| / n_ff            (sparsity = 1 - active_frac)
 *   hot_frac(F) = smallest fraction of neurons whose activation counts (number of tokens each
 *                 was active on) add up to F of all counts     (PowerInfer's measure)
 *   hot_frac_mag(F) = the same with each activation weighted by |act|
 *   overlap     = sum_t |A_t ∩ A_{t-1}| / sum_t |A_t| over consecutive tokens of a sequence
 *   new_vs_window5, lru_hit_at_50: see act_temporal.h
 *   up_given_gate = P(up > 0 | gate > 0) over all (token, neuron) pre-activations handed to
 *                 pf_act_stats_add_gate_up (profile does for dReLU only); NaN when none had gate > 0
 *   |act| quantiles over all (token, neuron) values, zeros included, from a histogram with
 *   1/16-octave bins (relative error < 4.4%). */
#ifndef PF_PROFILE_ACT_STATS_H
#define PF_PROFILE_ACT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pf_act_stats;

#define PF_ACT_NQ 6
/* The quantile levels reported: 0.1 0.25 0.5 0.75 0.9 0.99 */
extern const double pf_act_quantile_levels[PF_ACT_NQ];

struct pf_act_summary {
    int n_ff;
    uint64_t n_tokens;
    double active_frac, active_frac_min, active_frac_max;
    double hot_frac, hot_frac_mag;
    double overlap;
    double new_vs_window5, lru_hit_at_50, up_given_gate; /* NaN: not measured */
    double abs_mean;
    double abs_q[PF_ACT_NQ];
};

/* Accumulators for n_layer layers of n_ff neurons. *out is owned by the caller. */
int pf_act_stats_new(struct pf_act_stats **out, int n_layer, int n_ff);
void pf_act_stats_free(struct pf_act_stats *s);

/* Adds n_tok consecutive tokens of one layer: act[t * n_ff + i]. Not thread-safe per layer. */
void pf_act_stats_add(struct pf_act_stats *s, int layer, const float *act, int n_tok);
/* The next token starts a new sequence (not compared with the previous one for overlap). */
void pf_act_stats_break(struct pf_act_stats *s);

/* Adds n pre-activation pairs (gate[i], up[i]) of a layer, in any order. */
void pf_act_stats_add_gate_up(struct pf_act_stats *s, int layer, const float *gate, const float *up, size_t n);

/* Summary of one layer, with the hot set defined by share (e.g. 0.8). */
int pf_act_stats_summary(const struct pf_act_stats *s, int layer, double share, struct pf_act_summary *out);
/* Summary of the layers [first, first + n) pooled as one (a mixture of experts' layer, its
 * experts kept as the "layers" of s, each fed the rows routed to it): sparsity, its min..max,
 * |act| mean and quantiles over all their rows; hot_frac and hot_frac_mag the mean over the
 * members that saw rows of their own hot fractions (each member's neurons are its own); the
 * temporal figures and up_given_gate NaN (consecutive rows of an expert are not consecutive
 * tokens). n_tokens = rows pooled. */
int pf_act_stats_summary_pool(const struct pf_act_stats *s, int first, int n, double share, struct pf_act_summary *out);
/* Activation count of every neuron of a layer (n_ff entries), owned by s. */
const uint32_t *pf_act_stats_counts(const struct pf_act_stats *s, int layer);
uint64_t pf_act_stats_tokens(const struct pf_act_stats *s, int layer);

/* Smallest fraction of the n values (any order) whose sum reaches share of the total; 0 when
 * the total is 0. Sorts a copy. */
double pf_hot_fraction_u32(const uint32_t *v, int n, double share);
double pf_hot_fraction_f64(const double *v, int n, double share);

#endif
