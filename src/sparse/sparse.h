/* Sparse FFN: the in-memory view of a prepared model's neuron bundles and predictors
 * (docs/sparse-format.md) and the sparse decode step. */
#ifndef PF_SPARSE_SPARSE_H
#define PF_SPARSE_SPARSE_H

#include "model/model.h"

/* One layer's FFN in bundle layout. */
struct pf_bundles {
    const void *data;      /* n_ff slots, each 3 rows of n_embd elements of `type`:
                              gate row, up row, down column (transposed) */
    int type;
    size_t row_size;       /* bytes of one row (n_embd elements) */
    size_t slot_size;      /* 3 * row_size */
    const int32_t *perm;   /* slot -> original neuron index (n_ff) */
    const float *freq;     /* slot activation frequency, hottest first (n_ff) */
    struct pf_weight fc1;  /* predictor: n_embd -> r (n_out = r); data NULL if none */
    struct pf_weight fc2;  /* r -> n_ff, rows in slot order */
    float pred_threshold;
};

#endif
