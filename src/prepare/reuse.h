/* Temporal reuse of a unit's slots under its predictor (docs/sparse-format.md, "Reuse"): what
 * the planner's generalised Che approximation (plan/cost.c) needs to price an LRU cache on a
 * request stream with token-to-token persistence, which the independent-request form cannot see.
 *
 * For each window of w steps in pf_reuse_windows and each of PF_REUSE_BUCKETS buckets of slots
 * (slot order: bucket b holds slots [b F / B, (b + 1) F / B)):
 *   occ  the expected number of the bucket's slots asked for within the last w steps, i.e. held
 *        by an LRU whose characteristic time is w (averaged over the steps t >= w - 1)
 *   hit  the fraction of the bucket's requests whose previous request is at most w steps
 *        earlier, i.e. hits of that LRU (over the requests at steps t >= w, whose previous
 *        w steps lie inside the trace)
 * Windows longer than a quarter of the trace are not measured: -1 in both. */
#ifndef PF_PREPARE_REUSE_H
#define PF_PREPARE_REUSE_H

#include <stdint.h>

#define PF_REUSE_BUCKETS 32
#define PF_REUSE_WINDOWS 22

extern const uint32_t pf_reuse_windows[PF_REUSE_WINDOWS]; /* 1, 2, 3, 4, 6, 8, 11, 16 ... 2048: ~2^(k/2) */

/* bits: (n_ff, words) per original neuron, bit t set when the step of row t asks for it
 * (words = (n_tok + 63) / 64); perm: slot -> original neuron. occ, hit: PF_REUSE_BUCKETS x
 * PF_REUSE_WINDOWS, bucket-major. 0, or PINFER_ENOMEM. */
int pf_reuse_measure(const uint64_t *bits, int n_tok, const int32_t *perm, int n_ff, float *occ, float *hit);

#endif
