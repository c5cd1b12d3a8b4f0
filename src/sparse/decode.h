/* Internal to the decode step on bundles: what ffn_decode.c (in memory) and ffn_offload.c
 * (under a memory budget) share, so both compute every neuron the same way. */
#ifndef PF_SPARSE_DECODE_H
#define PF_SPARSE_DECODE_H

#include "sparse/sparse.h"
#include "sparse/sparse_kernels.h"
#include "tensor/kernels.h"

struct dec_task {
    struct pinfer_ctx *c;
    const struct pf_bundles *b;
    const struct pf_sparse_kernels *sk;
    const struct pf_kernels *kt;
    enum pinfer_sparse_mode mode;
    enum pinfer_act act;
    bool relu, verify, want_gates;
    const void *xa;
    const float *logit;   /* predictor mode */
    float cut;            /* predictor threshold or threshold-mode cut */
    int cluster_size, n_clusters;
    int ideal_every;      /* benchmark aid (docs/sparse.md): candidates are every k-th slot */
    size_t pf_rows;       /* rows of a candidate slot to prefetch ahead: gate, or gate and up */
};

static inline bool is_candidate(const struct dec_task *t, int j)
{
    if (t->ideal_every) return j % t->ideal_every == 0;
    return t->mode != PINFER_SPARSE_PREDICTOR || t->logit[j] > t->cut;
}

static inline int cluster_end(const struct dec_task *t, int cl)
{
    int e = (cl + 1) * t->cluster_size;
    return e < t->b->n_ff ? e : t->b->n_ff;
}

/* Runs the predictor (predictor mode) and converts c->xb into the dot format of the layer's
 * FFN type; fills *t for layer l's step. */
void pf_dec_setup(struct pinfer_ctx *c, int l, struct dec_task *t);
/* out = y_0 + y_1 + ... (the per-thread partial outputs), in thread order. */
void pf_dec_reduce(struct pinfer_ctx *c, float *out);

#endif
