/* Internal to the decode step on bundles: what decode.c (in memory) and offload.c
 * (under a memory budget) share, so both compute every neuron the same way and add the same
 * terms into the same partial sums. */
#ifndef PF_FFN_DECODE_H
#define PF_FFN_DECODE_H

#include "ffn/ffn_internal.h"
#include "tensor/kernels.h"

#include <stdatomic.h>

struct dec_task {
    struct pf_ffn *f;
    const struct pf_bundles *b;
    const struct pf_kernels *kt;
    enum pinfer_sparse_mode mode;
    enum pinfer_act act;
    bool relu, verify, want_gates;
    const void *xa[2];    /* the FFN input in the dot formats of the gate and the up rows
                             (one pointer twice when they share it) */
    const float *logit;   /* predictor mode */
    float cut;            /* predictor threshold or threshold-mode cut */
    int cluster_size;
    int ideal_every;      /* benchmark aid (docs/sparse.md): candidates are every k-th slot */
    size_t pf_bytes;      /* bytes of a candidate slot to prefetch ahead: its gate row, or its
                             gate and up rows */
    const int *cand;      /* the candidate slots, ascending (f->dec->cand) */
    int n_cand, n_parts;
    _Atomic int *next_part; /* in-memory step: the next part nobody took yet */
};

static inline bool is_candidate(const struct dec_task *t, int j)
{
    if (t->ideal_every) return j % t->ideal_every == 0;
    return t->mode != PINFER_SPARSE_PREDICTOR || t->logit[j] > t->cut;
}

/* Candidates [*i0, *i1) of part p (parts of equal counts, up to rounding). */
static inline void part_range(const struct dec_task *t, int p, int *i0, int *i1)
{
    *i0 = (int)((int64_t)p * t->n_cand / t->n_parts);
    *i1 = (int)((int64_t)(p + 1) * t->n_cand / t->n_parts);
}

/* Candidate i starts a cluster not touched by candidate i - 1 (for the clusters counter). */
static inline bool new_cluster(const struct dec_task *t, int i)
{
    return i == 0 || t->cand[i] / t->cluster_size != t->cand[i - 1] / t->cluster_size;
}

/* Runs the predictor (predictor mode), lists the candidates into f->dec->cand (and sets f->hg
 * to 0 for the others), and converts f->xb into the dot format of the FFN's types; fills *t for
 * a step of layer l on bundles b (the layer's, or one expert's of a mixture). */
void pf_dec_setup(struct pf_ffn *f, int l, const struct pf_bundles *b, struct dec_task *t);
/* The two halves of computing a batch of candidates (q->ng slots listed in q->idx, their slot
 * addresses in q->slot), shared by both paths so each neuron is computed the same way:
 * pf_dec_gates: gate dots, then which up rows the mode's rule lets through (q->up, q->nu);
 * pf_dec_ups: those up dots, the activations h into f->hg (gates into f->hu when the task wants
 * them), counters into *k; with want_downs, also the list of down rows to add (q->drow, q->dh,
 * q->nd: h != 0, or every row in mode off; in candidate order) and their counts.
 * pq (may be NULL) is advanced by the kernels, and gets the up and down rows queued for
 * prefetching as soon as they are known. */
void pf_dec_gates(const struct dec_task *t, struct pf_dec_thread *w, struct pf_dec_batch *q, struct pf_pq *pq);
void pf_dec_ups(const struct dec_task *t, struct pf_dec_thread *w, struct pf_dec_batch *q, bool want_downs, struct pf_pq *pq,
                struct pf_sparse_count *k);
/* out = y_0 + y_1 + ... (the partial outputs, one per part), in part order. */
void pf_dec_reduce(struct pf_ffn *f, const struct dec_task *t, float *out);

#endif
