/* The planner's cost model (docs/planner.md): decode and prefill speed, hit rate and storage
 * traffic of a model on a machine (plan/machine.h) for a given split of its neuron cache.
 *
 * Per decode token:
 *   dense    attention, head (and the predictors) stream from memory:
 *            bytes / min(streaming bandwidth, kernel rate x threads)
 *   FFN      per layer, the slots a step looks at: each slot's activation frequency x the
 *            predictor's over-prediction (predicted / active on held-out tokens); in memory
 *            the step reads the gate row of every predicted slot, the up row of about half
 *            way between predicted and active, the down row of the active ones, at the
 *            machine's scattered-row rate; under a budget a missing predicted slot is one
 *            read of the pages covering it (slot / 4 KiB + 1 on average), at the IOPS of that
 *            size and the queue depth the layer's misses give, overlapped with computing the
 *            resident ones
 *   hits     hot slots always; cold ones by Che's approximation of an LRU cache (Che, Tung and
 *            Wang 2002): T set so that the expected number of distinct slots requested within
 *            the last T tokens fills the cache, and a request hits when the slot's previous one
 *            is less than T back. With the reuse prepare measured (pinfer.bundle.N.reuse_*), both
 *            are read from the measured request stream, bucket by bucket of slots (the renewal
 *            form of Garetto, Leonardi and Martina 2016), so token-to-token persistence counts;
 *            without it, independent requests with the slots' frequencies as probabilities:
 *            each slot hits with 1 - exp(-p T)
 * Prefill per token: the multiply-adds at the machine's 64-token product rate, plus under a
 * budget the offloaded FFN streamed once per batch of 512 at 1 MiB reads. */
#ifndef PF_PLAN_COST_H
#define PF_PLAN_COST_H

#include "plan/machine.h"

#include <stdbool.h>
#include <stdint.h>

/* A mixture of experts (docs/planner.md): the units are (layer, expert), each with its slot
 * frequencies per routed token and its share of the tokens; a token runs `fan` units per layer.
 * A dense model: one unit per layer, share 1, fan 1. */
struct pf_plan_model {
    int n_layer, n_ff, threads;
    int n_units, fan;         /* units (n_layer x experts); units a token runs per layer */
    const double *share;      /* per unit: fraction of tokens that run it; NULL: 1 (dense) */
    const int *hot_unit;      /* per unit: hot slots (a mixture's split, pf_cache_hot_split);
                                 NULL: pf_predict's n_hot in every unit */
    int main_type;            /* type of the big matrices (kernel rates) */
    uint64_t n_params;
    double dense_bytes;       /* per token: attention and head weights */
    double pred_bytes;        /* per token: predictors (0 without) */
    size_t slot_bytes;        /* one neuron's gate row, up row and down column */
    double ffn_bytes;         /* all FFN weights */
    const float *const *freq; /* per unit: n_ff slot frequencies, hottest first; NULL: not prepared */
    bool sparse;              /* steps compute only predicted slots (predictor mode) */
    const double *pred_over;  /* per unit: slots predicted per truly active slot (the prepared
                                 file's held-out figures), NULL: 1 */
    const float *const *pred_freq; /* per unit: n_ff probabilities that a step asks for each slot
                                 (pinfer.bundle.N.pred_freq, measured by prepare: false positives
                                 included); NULL, or a NULL layer: freq + pred_over's spread */
    /* per unit: how soon its predictor asks for a slot again, measured by prepare
       (pinfer.bundle.N.reuse_occ / reuse_hit: n_reuse_b buckets of slots x n_reuse_w windows of
       reuse_w[k] steps, docs/sparse-format.md); NULL, or a NULL unit: independent requests */
    const float *const *reuse_occ, *const *reuse_hit;
    const double *reuse_w;
    int n_reuse_b, n_reuse_w;
};

struct pf_prediction {
    double decode_tps, prefill_tps;
    double hit_rate;              /* of the slots steps compute, the share found in memory */
    double storage_mb_per_token;  /* MB (1e6) read from storage per decode token */
    double reads_per_token;
    double t_dense, t_ffn;        /* seconds per token */
};

/* Che's approximation: hit[i] for n items requested with probabilities p[i] per step by an LRU
 * cache of cap items (all 1 when cap >= the items with p > 0). */
void pf_lru_che(const double *p, int n, double cap, double *hit);

/* In memory (budget false), or under a budget with n_hot slots pinned per unit (or pm->hot_unit's)
 * and n_cold LRU entries, reads through backend be at queue depth qd. A mixture's units are
 * weighted by their share: a step of unit u costs what a dense layer's would, share_u times per
 * token, and its slots enter the LRU with probability share_u x request per token. 0, or
 * PINFER_ENOMEM. */
int pf_predict(const struct pf_machine *mc, const struct pf_plan_model *pm, bool budget, int n_hot, int n_cold, int be,
               int qd, struct pf_prediction *out);

#endif
