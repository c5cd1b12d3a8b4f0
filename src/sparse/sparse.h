/* Sparse FFN: the in-memory view of a prepared model's neuron bundles and predictors
 * (docs/sparse-format.md), and the FFN step of the forward pass for every kind of model and
 * every sparse mode (docs/sparse.md).
 *
 *   ffn.c           pf_ffn: one layer's FFN for a batch; dispatches between the original
 *                   layout (dense matmuls, masks for quality measurements) and bundles
 *   ffn_decode.c    single-token steps on bundles: predictor, per-neuron gate/up dots, down
 *                   accumulation into per-thread partial outputs
 *   bundle_mm.c     batches on bundles: gate/up with a 3-row stride, down as a transposed product
 *   threshold.c     |act(gate)| histograms and the threshold-mode cuts
 *   sparse_kernels* down accumulation kernels (reference + AVX-512) */
#ifndef PF_SPARSE_SPARSE_H
#define PF_SPARSE_SPARSE_H

#include "model/model.h"
#include "sparse/prefetch.h"

/* One layer's FFN in bundle layout. */
struct pf_bundles {
    const void *data;      /* n_ff slots, each 3 rows of n_embd elements of `type`:
                              gate row, up row, down column (transposed); NULL when
                              offloaded (a memory budget: src/cache/ serves the slots) */
    uint64_t file_off;     /* absolute offset of the bundle tensor in the file */
    int type;
    int n_embd, n_ff;
    size_t row_size;       /* bytes of one row (n_embd elements) */
    size_t slot_size;      /* 3 * row_size */
    int32_t *perm;         /* slot -> original neuron index (n_ff); owned by the model */
    float *freq;           /* slot activation frequency, hottest first (n_ff); owned */
    struct pf_weight fc1;  /* predictor: n_embd -> r (n_out = r); data NULL if none */
    struct pf_weight fc2;  /* r -> n_ff, rows in slot order */
    float pred_threshold;
};

/* Working memory of the decode step (ffn_decode.c, ffn_offload.c). The layer's candidate slots
 * are listed in order and cut into pf_dec_parts(n_threads) parts of about equal counts; part p
 * adds its down rows into partial output p (c->ypart). A thread takes the next part when it
 * needs one, and runs a part's candidates PF_DEC_BATCH at a time through three stages on
 * consecutive steps (gates; ups; downs), so three batches are in flight. */
#define PF_DEC_STAGES 3
#define PF_DEC_BATCH 16
struct pf_dec_batch {
    int part;                 /* the part whose partial output the downs go to */
    int ng, nu, nd;           /* candidates, up rows computed, down rows to add */
    int *idx;                 /* slot of each candidate */
    const uint8_t **slot;     /* where each candidate's slot is */
    int *up;                  /* candidate positions whose up row is computed */
    float *g, *u;             /* gate and up results (u in the order of up[]) */
    const void **drow;        /* down rows and activations to add */
    float *dh;
};
struct pf_dec_thread {
    struct pf_pq pq;          /* prefetch queue */
    const void **rows;        /* row list handed to gather_dot */
    struct pf_dec_batch st[PF_DEC_STAGES];
    void *mem;                /* the one allocation behind the lists */
};
struct pf_dec {
    int n_threads;
    int *cand;                /* (n_ff) the step's candidate slots, ascending */
    struct pf_dec_thread *th; /* (n_threads) */
};
/* Allocates / frees the decode memory of n threads for layers of n_ff neurons (NULL: no memory). */
struct pf_dec *pf_dec_new(int n_threads, int n_ff);
void pf_dec_free(struct pf_dec *d);
/* Partial outputs of a decode step (rows of c->ypart): 1 for one thread (every down row is then
 * added into one sum in slot order, as a batch does), else 4 per thread, so a thread that was
 * descheduled leaves parts to the others. */
int pf_dec_parts(int n_threads);

/* ==== FFN step (called by the forward pass) ====
 * Input: c->xb (n_tok rows of n_embd, after ffn_norm). Output: the FFN result is ADDED to the
 * residual c->x. Uses c->hg, c->hu and the context's scratch. Calls the FFN hooks with the
 * activation in the original neuron order. */
void pf_ffn(struct pinfer_ctx *c, int layer, int n_tok);

/* Single-token step on bundles (ffn_decode.c): out[0..n_embd) = FFN(c->xb). */
void pf_ffn_bundle_decode(struct pinfer_ctx *c, int layer, float *out);

/* The same under a memory budget (ffn_offload.c), slots served by c->cache: the single-token
 * step (same bits as pf_ffn_bundle_decode) and a batch (same bits as the in-memory batch),
 * whose output is added to c->x. I/O errors are left in c->io_error. */
void pf_ffn_offload_decode(struct pinfer_ctx *c, int layer, float *out);
void pf_ffn_offload_batch(struct pinfer_ctx *c, int layer, int n_tok, bool record);
/* Under a budget, predictor mode, between layers of a single-token step: runs layer's predictor
 * on rmsnorm(c->x) (its input before the attention still to come) and queues reads of the
 * likely slots that are not resident into the prefetch area. Uses c->xb. */
void pf_offload_prefetch(struct pinfer_ctx *c, int layer);

/* g[i] = act(g[i], u[i]) for n neurons (in place). */
void pf_ffn_activate(float *g, const float *u, size_t n, enum pinfer_act act);

/* Batched dense FFN on bundles (bundle_mm.c). gate/up: hg, hu (n_tok x n_ff, slot order) =
 * x (n_tok x n_embd) times the gate/up rows; scratch as pf_matmul's. down: out (n_tok x n_embd)
 * = h (n_tok x n_ff, slot order) times the down columns (added to out when accumulate), each
 * output summed over the slots in order, PF_PANEL_ROWS at a time: a layer run as consecutive
 * views of multiples of PF_PANEL_ROWS slots gives the same bits as one call; panel: n_threads x
 * PF_PANEL_FLOATS. */
void pf_bundle_gate_up(struct pf_pool *pool, const struct pf_kernels *k, const struct pf_bundles *b,
                       const float *x, int n_tok, float *hg, float *hu, void *scratch);
void pf_bundle_down(struct pf_pool *pool, const struct pf_bundles *b, const float *h, int n_tok,
                    float *out, float *panel, bool accumulate);
/* Bytes of scratch pf_bundle_gate_up needs (the activations in the dot format). */
size_t pf_bundle_scratch_size(const struct pf_bundles *b, int n_tok);

/* Neurons x columns of one thread's dequantized down panel (bundle_mm.c). */
#define PF_PANEL_ROWS 64
#define PF_PANEL_COLS 256
#define PF_PANEL_FLOATS (PF_PANEL_ROWS * PF_PANEL_COLS)

/* ==== Activations ==== */

/* act(gate) alone: silu, relu or gelu of g (the gate part of the model's activation). */
float pf_act_gate(enum pinfer_act act, float g);
/* The full activation of one neuron: act(g) * u, or relu(g) * relu(u) for dReLU. */
float pf_act_full(enum pinfer_act act, float g, float u);
/* ReLU family: the activation is exactly 0 whenever g <= 0. */
bool pf_act_relu_family(enum pinfer_act act);

/* ==== Threshold mode (threshold.c) ==== */

/* Histogram bins of |act(gate)|: 1/64-octave bins over [2^-40, 2^24), plus bin 0 for exact
 * zeros and values below the range, and the last bin for values above it. */
#define PF_HIST_BINS 4098
/* Adds n values |act(g_i)| of layer l to the context's histogram. */
void pf_hist_add(struct pinfer_ctx *c, int layer, const float *g, size_t n);
/* Sets c->thresh from the histograms for c->sparsity_target; marks them ready. */
void pf_thresh_finish(struct pinfer_ctx *c);
/* Values recorded so far (all layers). */
uint64_t pf_hist_total(const struct pinfer_ctx *c);

/* ==== Context parameters (sparse_api.c) ==== */

/* Benchmark aid: PINFER_SPARSE_IDEAL=F makes predictor mode read every round(1/F)-th slot
 * whole instead of asking the predictor (docs/sparse.md); returns that k, 0 when unset. */
int pf_sparse_ideal_every(void);
/* Checks the sparse fields of p against the model (pinfer_ctx_new calls it first). */
int pf_sparse_check_params(const struct pinfer_model *m, const struct pinfer_ctx_params *p);

#endif
