/* Inside the FFN object (ffn.h): its state and what its files share.
 *
 *   ffn.c         the object, the dispatch between layouts, the dense (original layout) FFN
 *   decode.c      single-token steps on bundles: predictor, per-neuron gate/up dots, down
 *                 accumulation into per-part partial outputs (decode.h: what offload.c shares)
 *   offload.c     the same under a memory budget, and batches streamed from the file
 *   bundle_mm.c   batches on bundles: gate/up with a 3-row stride, down as a transposed product
 *   moe.c         mixture of experts: routing, one token's chosen experts, batches grouped by
 *                 expert (moe.h)
 *   threshold.c   |act(gate)| histograms and the threshold-mode cuts
 *   stats.c       mode names, parameter checks, the per-token statistics */
#ifndef PF_FFN_FFN_INTERNAL_H
#define PF_FFN_FFN_INTERNAL_H

#include "ffn/ffn.h"
#include "tensor/bundle_kernels.h"
#include "tensor/prefetch.h"

/* Per-thread counters of one layer and token (padded against false sharing). */
struct pf_sparse_count {
    uint32_t gate, up, down, clusters, predicted, active;
    uint32_t true_active, hit;       /* verify: dense non-zero; of those, computed */
    double mass_all, mass_kept;      /* verify in threshold mode: L1 of the activation */
    char pad[24];
};

/* Cumulative counters of one layer over single-token steps. */
struct pf_sparse_layer_stats {
    uint64_t gate, up, down, clusters, predicted, active, true_active, hit;
    double mass_all, mass_kept;
};

struct pf_ffn {
    const struct pinfer_model *m;
    struct pf_pool *pool;            /* borrowed from the context */
    const struct pf_kernels *kern;   /* borrowed */
    int n_threads, n_batch;
    enum pinfer_sparse_mode sparse;
    float sparsity_target;
    bool verify, prefetch;
    int ideal_every;

    /* during a step: the caller's input rows (n_tok x n_embd) and residual */
    float *xb, *x;

    float *hg, *hu;      /* (n_batch, n_ff) gate / up (hg holds the activation) */
    float *y;            /* (n_batch under a budget, else 1; n_embd) output before the residual */
    void *scratch;       /* activations in a dot format (the largest any FFN product needs) */
    float *ypart;        /* (pf_dec_parts(n_threads), n_embd) partial outputs of a decode step */
    float *panel;        /* (n_threads, PF_PANEL_FLOATS) prefill down-projection panels */
    float *pred_h;       /* (max predictor rank) */
    float *pred_logit;   /* (n_ff) */
    float *thresh;       /* (n_layer) threshold-mode cuts */
    bool thresh_ready;
    bool calibrating;    /* run dense and record |act(gate)| whatever the mode */
    bool self_calib;     /* this single-token step calibrates (batch_begin/end) */
    uint32_t *hist;      /* (n_layer, PF_HIST_BINS) |act(gate)| histograms for calibration */
    struct pf_dec *dec;                   /* decode-step working memory (bundles) */
    struct pf_sparse_count *cnt;          /* (n_threads) */
    struct pf_sparse_layer_stats *lstats; /* (n_layer) */
    uint64_t n_sparse_tokens;
    double t_pred;                        /* seconds in predictors, single-token steps */

    pf_ffn_hook hook; void *hook_ud;
    pf_ffn_io_hook io_hook; void *io_hook_ud;
    pf_ffn_pre_hook pre_hook; void *pre_hook_ud;
    pf_ffn_route_hook route_hook; pf_ffn_expert_hook expert_hook; void *moe_hook_ud;

    /* mixture of experts (moe.c), in one allocation (moe_mem) */
    void *moe_mem;
    float *moe_logits;   /* (n_batch, n_expert) router outputs */
    int *moe_sel;        /* (n_batch, n_expert_used) each token's experts, in routing order */
    float *moe_w;        /* (n_batch, n_expert_used) their weights */
    int *moe_tok;        /* (n_batch) the choices (t * n_expert_used + j) routed to one expert */
    float *moe_xg;       /* (n_batch, n_embd) those tokens' inputs, gathered */
    float *moe_yg;       /* (n_batch, n_embd) the expert's outputs for them */
    float *moe_ys;       /* (n_batch, n_expert_used, n_embd) each choice's output */
    int *moe_guess;      /* (n_expert_used) under a budget: the experts guessed for moe_guess_layer
                            before its attention (pf_moe_prefetch), -1 layer: none */
    int moe_guess_layer;
    uint64_t moe_guesses, moe_guess_hits; /* experts guessed; of them, chosen by the router */

    /* under a memory budget (offload.c) */
    struct pf_cache *cache;
    const uint8_t **off_slotp, **off_was; /* (n_ff) each: where each candidate's slot is; before the reads */
    uint8_t **off_dst;       /* (n_ff) the cold entry each slot read goes into (pf_cache_round_wait) */
    uint8_t *off_pmiss;      /* (pf_dec_parts) a read round: does part p miss a slot in it */
    int *off_list;                        /* (n_ff) slots to read ahead */
    void *off_mem;
};

/* ==== Decode working memory (decode.c) ====
 * The layer's candidate slots are listed in order and cut into pf_dec_parts(n_threads) parts of
 * about equal counts; part p adds its down rows into partial output p (f->ypart). A thread takes
 * the next part when it needs one, and runs a part's candidates PF_DEC_BATCH at a time through
 * three stages on consecutive steps (gates; ups; downs), so three batches are in flight. */
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
/* Partial outputs of a decode step (rows of f->ypart): 1 for one thread (every down row is then
 * added into one sum in slot order, as a batch does), else 4 per thread, so a thread that was
 * descheduled leaves parts to the others. */
int pf_dec_parts(int n_threads);

/* ==== The variants ==== */

/* y (n_tok rows of w->n_out) = w times x (n_tok rows of w->n_in), on f's pool and scratch. */
void pf_ffn_mm(struct pf_ffn *f, float *y, const struct pf_weight *w, const float *x, int n_tok);
/* Points f's moe_* buffers into mem (pf_moe_buf_size(f->m, f->n_batch) bytes). */
void pf_moe_bind(struct pf_ffn *f, void *mem);

/* Single-token step on bundles b of layer `layer` in memory (decode.c): out[0..n_embd) =
 * FFN(f->xb); its counters in f->cnt (pf_ffn_add_counts). */
void pf_ffn_bundle_decode(struct pf_ffn *f, int layer, const struct pf_bundles *b, float *out);
/* Adds the per-thread counters of a single-token step (f->cnt) to layer l's statistics and
 * clears them (a mixture adds each chosen expert's). */
void pf_ffn_add_counts(struct pf_ffn *f, int l);
/* pf_ffn_bundle_decode under a memory budget (offload.c), slots served by f->cache: the
 * single-token step (same bits as pf_ffn_bundle_decode) and a batch (same bits as the in-memory batch), whose
 * output is added to f->x. 0 or a negative code (a read failed). */
int pf_ffn_offload_decode(struct pf_ffn *f, int layer, int unit, const struct pf_bundles *b, float *out);
int pf_ffn_offload_batch(struct pf_ffn *f, int layer, int n_tok, bool record);
/* A batch on one unit (a layer's bundles b, or an expert's), streamed from the cache: out
 * (n_tok x n_embd) = FFN(in). 0 or a negative code. */
int pf_ffn_offload_unit_batch(struct pf_ffn *f, int layer, int unit, const struct pf_bundles *b, const float *in, int n_tok,
                              float *out, bool record);
/* Read-ahead of unit's likely slots on xn (offload.c; pf_ffn_prefetch decides when). */
int pf_ffn_offload_prefetch(struct pf_ffn *f, int unit, const struct pf_bundles *b, const float *xn);

/* Batched dense FFN on bundles (bundle_mm.c). gate/up: hg, hu (n_tok x n_ff, slot order) =
 * x (n_tok x n_embd) times the gate/up rows; scratch as pf_matmul's. down: out (n_tok x n_embd)
 * = h (n_tok x n_ff, slot order) times the down columns (added to out when accumulate), each
 * output summed over the slots in order, PF_PANEL_ROWS at a time: a layer run as consecutive
 * views of multiples of PF_PANEL_ROWS slots gives the same bits as one call; panel: n_threads x
 * PF_PANEL_FLOATS. */
void pf_bundle_gate_up(struct pf_pool *pool, const struct pf_kernels *k, const struct pf_bundles *b,
                       const float *x, int n_tok, float *hg, float *hu, void *scratch);
void pf_bundle_down(struct pf_pool *pool, const struct pf_kernels *k, const struct pf_bundles *b, const float *h,
                    int n_tok, float *out, float *panel, bool accumulate);
/* Bytes of scratch pf_bundle_gate_up (and a decode step) needs: the activations in the dot
 * formats of the gate and the up rows. */
size_t pf_bundle_scratch_size(const struct pf_bundles *b, int n_tok);
/* Bytes between two tokens' activations converted for rows of `type` (0 for F32: dots read the
 * f32 input; SIZE_MAX on overflow). */
size_t pf_bundle_act_stride(int type, int64_t n);
/* The format kernel table k's dots with rows of `type` read: -1 the f32 input itself, -2 the
 * q8x layout of the Q4_0 fast path (decode: q4_act and q4_matvec; batches also need q4_gemm),
 * else the vec_dot_type. Rows of two types whose formats are equal share one conversion. */
int pf_bundle_act_format(const struct pf_kernels *k, int type, bool decode);

/* ==== Threshold mode (threshold.c) ==== */

/* Histogram bins of |act(gate)|: 1/64-octave bins over [2^-40, 2^24), plus bin 0 for exact
 * zeros and values below the range, and the last bin for values above it. */
#define PF_HIST_BINS 4098
/* Adds n values |act(g_i)| of layer l to the histogram. */
void pf_hist_add(struct pf_ffn *f, int layer, const float *g, size_t n);
/* Sets f->thresh from the histograms for f->sparsity_target; marks them ready. */
void pf_thresh_finish(struct pf_ffn *f);
/* Values recorded so far (all layers). */
uint64_t pf_hist_total(const struct pf_ffn *f);

/* act (n_tok rows of F activations in slot order, as a prepared layer computes them) in the
 * original neuron order, written into tmp (same size) through perm (slot -> neuron); act itself
 * when perm is NULL (the original layout). For the hooks, which see neurons in the source
 * model's order. */
static inline const float *pf_ffn_unpermute(const float *act, const int32_t *perm, float *tmp, int n_tok, int F)
{
    if (!perm) return act;
    for (size_t t = 0; t < (size_t)n_tok; t++)
        for (size_t j = 0; j < (size_t)F; j++) tmp[t * (size_t)F + (size_t)perm[j]] = act[t * (size_t)F + j];
    return tmp;
}

#endif
