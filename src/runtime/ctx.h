/* Internal view of an inference context (the public handle struct pinfer_ctx): the state of a
 * run, apart from the weights (model/model.h). It owns the KV cache, the attention's buffers,
 * the logits, the thread pool, the FFN object (src/ffn/) and, under a memory budget, the neuron
 * cache (src/cache/) that the FFN and the embedding rows are served from.
 *
 *   ctx.c         creation from pinfer_ctx_params, the public statistics, threshold calibration
 *   forward.c     pinfer_decode: embedding, attention, the FFN step, head
 *   timing.c      where single-token steps spend their time
 *   membw.c       the memory bandwidth the context's threads get (bench)
 *   perplexity.c  llama.cpp's perplexity over the context */
#ifndef PF_RUNTIME_CTX_H
#define PF_RUNTIME_CTX_H

#include "pinfer.h"
#include "core/threadpool.h"
#include "ffn/ffn.h"
#include "model/model.h"
#include "tensor/kernels.h"

/* Phases of a single-token step, timed for pinfer_ctx_time_stats (the predictors' share of the
 * FFN phase is timed by the FFN). */
enum { PF_PH_ATTN_MM, PF_PH_ATTN, PF_PH_FFN, PF_PH_HEAD, PF_PH_N };

struct pf_cache;

/* Called after each layer with the residual stream hidden[t*n_embd + j] of the batch. */
typedef void (*pf_layer_hook)(void *ud, int layer, const float *hidden, int n_tok, int n_embd);
/* Called for each (layer, head, token) with the softmaxed attention weights over the n_kv
 * visible positions. Slow; for tests and diagnostics only. */
typedef void (*pf_attn_hook)(void *ud, int layer, int head, int token, const float *probs, int n_kv);

struct pinfer_ctx {
    struct pinfer_model *m;
    int n_ctx, n_batch, n_threads;
    struct pf_pool *pool;
    bool own_pool;       /* false: pool is another context's (pinfer_ctx_params.threads_from) */
    const struct pf_kernels *kern;
    struct pf_ffn *ffn;  /* the FFN step (src/ffn/) */
    struct pf_cache *cache; /* under a memory budget, else NULL (src/cache/) */
    uint16_t *k_cache;   /* (n_layer, n_head_kv, n_ctx, head_dim) f16 */
    uint16_t *v_cache;   /* (n_layer, n_head_kv, head_dim, n_ctx) f16, transposed */
    float *x;            /* (n_batch, n_embd) residual stream */
    float *xb;           /* (n_batch, max(n_embd, q_dim)) normed input / attention output */
    float *q;            /* (n_batch, q_dim) */
    float *k, *v;        /* (n_batch, kv_dim) */
    float *rope;         /* (n_batch, n_rot) cos, sin interleaved */
    float *att;          /* (n_threads, n_ctx) attention scores per thread */
    uint16_t *att16;     /* (n_threads, max(n_ctx, head_dim)) f16 staging per thread */
    float *logits;       /* (n_batch or 1, n_vocab) */
    /* the rows of the batch in the pass: row t is token t of the sequence whose KV cache
       row_seq[t] holds (this context, or in pinfer_decode_multi another one), at row_pos[t] */
    struct pinfer_ctx **row_seq; /* (n_batch) */
    int *row_pos;                /* (n_batch) */
    int n_logits;        /* rows valid in logits */
    int logits_first;    /* batch index of logits row 0 */
    void *scratch;       /* activations in a dot format for the attention and head products */
    int io_error;        /* sticky: a read of the model failed; the context cannot go on */
    uint64_t buf_bytes;  /* what the context holds besides a neuron cache: buffers, KV cache,
                            the FFN object's (the fixed segment's share; plan/ reads it) */

    pf_layer_hook layer_hook; void *layer_ud;
    pf_attn_hook attn_hook; void *attn_ud;

    /* where single-token steps spend their time (pinfer_ctx_time_stats) */
    double ph[PF_PH_N];  /* seconds per phase, summed over the steps */
    double ph_total;
    uint64_t ph_tokens;
};

/* ==== Hooks (profile, prepare, tests) ====
 * The FFN's: see ffn/ffn.h (pf_ffn_hook, pf_ffn_io_hook). */
void pf_ctx_set_ffn_hook(struct pinfer_ctx *ctx, pf_ffn_hook fn, void *ud);
void pf_ctx_set_ffn_io_hook(struct pinfer_ctx *ctx, pf_ffn_io_hook fn, void *ud);
void pf_ctx_set_ffn_pre_hook(struct pinfer_ctx *ctx, pf_ffn_pre_hook fn, void *ud);
void pf_ctx_set_moe_hooks(struct pinfer_ctx *ctx, pf_ffn_route_hook route, pf_ffn_expert_hook expert, void *ud);
/* layer hook: pf_layer_hook above; attention hook: pf_attn_hook above */
void pf_ctx_set_layer_hook(struct pinfer_ctx *ctx, pf_layer_hook fn, void *ud);
void pf_ctx_set_attn_hook(struct pinfer_ctx *ctx, pf_attn_hook fn, void *ud);

#endif
