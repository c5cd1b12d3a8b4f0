/* Temporal locality of a layer's active sets (docs/synth.md, "pinfer profile"):
 *   new_vs_window5 = sum_t |A_t \ (A_t-1 u ... u A_t-5)| / sum_t |A_t| over the tokens that have
 *                    5 predecessors in their sequence (LLM in a Flash's "windowing" traffic);
 *   lru_hit_at_50  = hits / accesses of an LRU cache of individual neurons holding n_ff / 2 of
 *                    them, simulated over the whole run: each token accesses its active neurons
 *                    in increasing index order (a miss is inserted at the front, evicting the
 *                    least recently used); a neuron's first access ever (a compulsory miss,
 *                    which any cache size takes) is counted in neither, so short runs measure
 *                    the steady state. The cache is not emptied between sequences.
 * Both are pooled ratios (like overlap); NaN when nothing was counted. */
#ifndef PF_PROFILE_ACT_TEMPORAL_H
#define PF_PROFILE_ACT_TEMPORAL_H

#include "core/lru.h"

#include <stdint.h>

#define PF_ACT_WINDOW 5

struct pf_act_temporal {
    int n, cap;             /* neurons; LRU capacity */
    int64_t *last;          /* (n) token index of the neuron's last activity, -1: never */
    struct pf_lru_list lru; /* over the n neurons, the cached ones only */
    uint8_t *state;         /* (n) 0 never seen, 1 seen and evicted, 2 in the cache */
    int32_t count;
    int64_t tok, seq_start; /* tokens seen; index of the current sequence's first token */
    uint64_t new_num, new_den, hit, acc;
};

/* n neurons, an LRU of cap of them (cap >= 1). 0 or PINFER_ENOMEM. */
int pf_act_temporal_init(struct pf_act_temporal *t, int n, int cap);
void pf_act_temporal_free(struct pf_act_temporal *t);
/* One token: on[i] != 0 for the active neurons. */
void pf_act_temporal_add(struct pf_act_temporal *t, const uint8_t *on);
/* The next token starts a new sequence (the window restarts; the cache stays). */
void pf_act_temporal_break(struct pf_act_temporal *t);
double pf_act_temporal_new_frac(const struct pf_act_temporal *t);
double pf_act_temporal_lru_hit(const struct pf_act_temporal *t);

#endif
