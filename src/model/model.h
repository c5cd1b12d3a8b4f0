/* Internal view of a loaded model and of an inference context (the public handles of
 * pinfer.h). Weight matrices are reached only through struct pf_weight, so the place their
 * bytes come from (a plain mapping today; a neuron cache fed by direct I/O later) can change
 * without touching the forward pass. */
#ifndef PF_MODEL_MODEL_H
#define PF_MODEL_MODEL_H

#include "pinfer.h"
#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

/* Phases of a single-token step, timed for pinfer_ctx_time_stats. */
enum { PF_PH_ATTN_MM, PF_PH_ATTN, PF_PH_PRED, PF_PH_FFN, PF_PH_HEAD, PF_PH_N };

/* A 2-D weight: n_out rows of n_in elements of `type`, row_size bytes per row. */
struct pf_weight {
    const void *data;
    int type;
    int64_t n_in, n_out;
    size_t row_size;
    const char *name; /* tensor name in the file */
};

/* Bytes of all of w's rows (what a product with it reads). */
static inline double pf_weight_bytes(const struct pf_weight *w) { return (double)w->row_size * (double)w->n_out; }

struct pf_bundles; /* sparse/sparse.h */
struct pf_kernels; /* tensor/kernels.h */
struct pf_dec; /* sparse/sparse.h */
struct pf_cache; /* cache/cache.h */

struct pf_layer {
    const float *attn_norm;          /* (n_embd) */
    struct pf_weight wq;             /* n_embd -> n_head*head_dim */
    struct pf_weight wk, wv;         /* n_embd -> n_head_kv*head_dim */
    struct pf_weight wo;             /* n_head*head_dim -> n_embd */
    const float *ffn_norm;           /* (n_embd) */
    struct pf_weight ffn_gate;       /* n_embd -> n_ff      (data NULL in prepared models) */
    struct pf_weight ffn_up;         /* n_embd -> n_ff      (data NULL in prepared models) */
    struct pf_weight ffn_down;       /* n_ff -> n_embd      (data NULL in prepared models) */
    struct pf_bundles *ffn_b;        /* prepared models: the FFN as neuron bundles; else NULL */
};

struct pinfer_model {
    struct pinfer_model_info info;
    int head_dim;
    struct gguf_file *gguf;
    struct pf_vocab *vocab;
    struct pf_weight tok_embd;       /* n_embd x n_vocab rows (row = one token's embedding) */
    const float *output_norm;        /* (n_embd) */
    struct pf_weight output;         /* n_embd -> n_vocab (tok_embd when tied) */
    struct pf_layer *layers;         /* n_layer */
    void *arena;                     /* weights copied out of the file (NULL with use_mmap) */
    size_t arena_size;               /* virtual size (offloaded bundles' room is never touched) */
    size_t resident_bytes;           /* bytes of the arena actually read (resident) */
    uint64_t mem_budget;             /* bytes, 0 = none: FFN bundles offloaded (src/cache/) */
    char *path;                      /* with a budget: the file, for direct reads */
    uint64_t embd_file_off;          /* token_embd.weight's offset in the file (tok_embd.data
                                        is NULL when its rows are read on demand) */
    float *f32_norms;                /* all norm vectors as f32: output, then attn/ffn per layer */
    struct pf_weight *norm_src;      /* during loading only: where each norm lies in the file */
    struct pf_bundles *bundles;      /* prepared models: n_layer, pointed to by layers[l].ffn_b */
    uint64_t pred_bytes;             /* prepared: all predictor tensors' bytes */
};

/* Called after each layer's FFN activation, before the down projection, with
 * act[t*n_ff + i] = act_fn(gate_i) * up_i for the n_tok tokens of the batch, i in the original
 * neuron order also on prepared models (and 0 for neurons a sparse mode skipped). Used by
 * `pinfer profile` to measure activation sparsity. */
typedef void (*pf_ffn_hook)(void *ud, int layer, const float *act, int n_tok, int n_ff);
void pf_ctx_set_ffn_hook(struct pinfer_ctx *ctx, pf_ffn_hook fn, void *ud);

/* Called before each layer's FFN down projection with both the FFN input (in[t*n_embd + j],
 * after ffn_norm) and the activation act[t*n_ff + i] (as pf_ffn_hook). `pinfer prepare` uses it
 * to gather (input, true active set) pairs for training predictors. */
typedef void (*pf_ffn_io_hook)(void *ud, int layer, const float *in, int n_embd, const float *act,
                               int n_ff, int n_tok);
void pf_ctx_set_ffn_io_hook(struct pinfer_ctx *ctx, pf_ffn_io_hook fn, void *ud);

/* Called after each layer with the residual stream hidden[t*n_embd + j] of the batch. */
typedef void (*pf_layer_hook)(void *ud, int layer, const float *hidden, int n_tok, int n_embd);
void pf_ctx_set_layer_hook(struct pinfer_ctx *ctx, pf_layer_hook fn, void *ud);
/* Called for each (layer, head, token) with the softmaxed attention weights over the n_kv
 * visible positions. Slow; for tests and diagnostics only. */
typedef void (*pf_attn_hook)(void *ud, int layer, int head, int token, const float *probs, int n_kv);
void pf_ctx_set_attn_hook(struct pinfer_ctx *ctx, pf_attn_hook fn, void *ud);

/* Per-thread counters of the sparse FFN for one layer and token (padded against false sharing). */
struct pf_sparse_count {
    uint32_t gate, up, down, clusters, predicted, active;
    uint32_t true_active, hit;       /* sparse_verify: dense non-zero; of those, computed */
    double mass_all, mass_kept;      /* sparse_verify in threshold mode: L1 of the activation */
    char pad[24];
};

/* Cumulative sparse-FFN counters of one layer over single-token steps. */
struct pf_sparse_layer_stats {
    uint64_t gate, up, down, clusters, predicted, active, true_active, hit;
    double mass_all, mass_kept;
};

/* An inference context. Defined here so the FFN code in src/sparse/ can run on it. */
struct pinfer_ctx {
    struct pinfer_model *m;
    int n_ctx, n_batch, n_threads;
    struct pf_pool *pool;
    const struct pf_kernels *kern;
    uint16_t *k_cache;   /* (n_layer, n_head_kv, n_ctx, head_dim) f16 */
    uint16_t *v_cache;   /* (n_layer, n_head_kv, head_dim, n_ctx) f16, transposed */
    float *x;            /* (n_batch, n_embd) residual stream */
    float *xb;           /* (n_batch, max(n_embd, q_dim)) normed input / attention output */
    float *q;            /* (n_batch, q_dim) */
    float *k, *v;        /* (n_batch, kv_dim) */
    float *hg, *hu;      /* (n_batch, n_ff) gate / up (hg holds the activation) */
    float *rope;         /* (n_batch, n_rot) cos, sin interleaved */
    float *att;          /* (n_threads, n_ctx) attention scores per thread */
    uint16_t *att16;     /* (n_threads, max(n_ctx, head_dim)) f16 staging per thread */
    float *logits;       /* (n_batch or 1, n_vocab) */
    int n_logits;        /* rows valid in logits */
    int logits_first;    /* batch index of logits row 0 */
    void *scratch;
    pf_ffn_hook ffn_hook; void *ffn_ud;
    pf_ffn_io_hook ffn_io_hook; void *ffn_io_ud;
    pf_layer_hook layer_hook; void *layer_ud;
    pf_attn_hook attn_hook; void *attn_ud;

    /* ---- sparse FFN (src/sparse/ffn.c) ---- */
    enum pinfer_sparse_mode sparse;
    float sparsity_target;
    bool verify;
    float *ypart;        /* (pf_dec_parts(n_threads), n_embd) partial FFN outputs of a decode step */
    float *panel;        /* (n_threads, PF_PANEL_FLOATS) prefill down-projection panels */
    float *pred_h;       /* (max predictor rank) */
    float *pred_logit;   /* (n_ff) */
    float *thresh;       /* (n_layer) threshold-mode cuts */
    bool thresh_ready;
    bool calibrating;    /* run dense and record |act(gate)| whatever the mode */
    int ideal_every;     /* benchmark aid PINFER_SPARSE_IDEAL (docs/sparse.md); 0 = off */
    uint32_t *hist;      /* (n_layer, PF_HIST_BINS) |act(gate)| histograms for calibration */
    struct pf_dec *dec;                   /* decode-step working memory (bundles) */
    struct pf_sparse_count *cnt;          /* (n_threads) */
    struct pf_sparse_layer_stats *lstats; /* (n_layer) */
    uint64_t n_sparse_tokens;

    /* ---- under a memory budget (src/cache/, src/sparse/ffn_offload.c) ---- */
    struct pf_cache *cache;
    const uint8_t **off_slotp, **off_was, **off_mptr; /* (n_ff) each */
    int *off_miss;                                    /* (n_ff) */
    void *off_mem;
    int io_error;        /* sticky: a read of the model failed */

    /* ---- where single-token steps spend their time (pinfer_ctx_time_stats) ---- */
    double ph[PF_PH_N];  /* seconds per phase, summed over the steps */
    double ph_total;
    uint64_t ph_tokens;
};

/* out = x / rms(x) * w (n elements). */
void pf_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* Seconds since an arbitrary start (CLOCK_MONOTONIC). */
double pf_now(void);
/* Peak resident set size of this process in bytes (VmHWM), 0 if unknown. */
uint64_t pf_peak_rss(void);

#endif
