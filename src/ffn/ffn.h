/* The FFN step as an object of its own. A context (src/runtime/) creates one pf_ffn per
 * context; the forward pass calls pf_ffn_step once per layer and knows nothing of what is
 * behind it. Behind it are the variants (docs/architecture.md):
 *
 *   dense      the original layout: three matmuls (tensor/matmul.c); a sparse mode masks the
 *              activation to measure its quality (all weights are still read)
 *   bundles    a prepared model's neuron bundles: batches as dense bundle products
 *              (bundle_mm.c), single-token steps as the sparse decode step (decode.c) in
 *              every mode: off, oracle, predictor, threshold
 *   offloaded  bundles under a memory budget: slots come from the neuron cache
 *              (src/cache/), missing ones read with direct I/O while resident ones are
 *              computed (offload.c)
 *
 * A Mixture-of-Experts FFN is one more variant: a router and per-expert FFNs of these kinds,
 * behind the same pf_ffn_step.
 *
 * The object owns its buffers (gate/up activations, scratch, predictor outputs, partial sums),
 * the threshold-mode cuts and histograms, its counters, and (under a budget) the per-step
 * lists of its view of the cache. It borrows the context's thread pool, kernel table and
 * cache. Steps return 0 or a negative PINFER_E* code; nothing is left sticky here. */
#ifndef PF_FFN_FFN_H
#define PF_FFN_FFN_H

#include "pinfer.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "tensor/kernels.h"

#include <stdbool.h>
#include <stddef.h>

struct pf_ffn;
struct pf_cache;

struct pf_ffn_params {
    enum pinfer_sparse_mode sparse; /* mode of single-token steps */
    float sparsity_target;          /* threshold mode */
    bool verify;                    /* also evaluate skipped neurons (recall, precision) */
    int n_batch;                    /* largest batch a step carries */
    int ideal_every;                /* benchmark aid (docs/sparse.md): predictor mode reads every
                                       k-th slot whole instead; 0 = off */
    bool prefetch;                  /* under a budget, predictor mode: read the next layer's
                                       likely slots during its attention */
};

/* Creates the FFN of model m for a context whose threads are pool (borrowed, as is k).
 * *bytes (may be NULL) receives what it allocated, for the budget plan. On success *out is
 * owned by the caller (pf_ffn_free). */
int pf_ffn_new(struct pf_ffn **out, const struct pinfer_model *m, const struct pf_ffn_params *p, struct pf_pool *pool,
               const struct pf_kernels *k, size_t *bytes);
void pf_ffn_free(struct pf_ffn *f);
/* Under a memory budget: the neuron cache that serves the bundles (borrowed; the context owns
 * it). Must be set before the first step of a model with m->mem_budget. */
void pf_ffn_set_cache(struct pf_ffn *f, struct pf_cache *cache);
/* Whether read-ahead of the next layer is asked for (the cache plan gives it a second staging
 * area). */
bool pf_ffn_wants_prefetch(const struct pf_ffn *f);
enum pinfer_sparse_mode pf_ffn_mode(const struct pf_ffn *f);
/* Whether an activation hook is set (pf_ffn_set_hook, pf_ffn_set_io_hook, pf_ffn_set_pre_hook). */
bool pf_ffn_has_hooks(const struct pf_ffn *f);
/* Under a budget, batches stream a layer's slots in multiples of this many (the down panel's
 * height, so the chunks' sums equal one whole-layer product): the cache plans for it. */
int pf_ffn_chunk_slots(void);

/* ==== Steps ==== */

/* Before and after the layers of each pinfer_decode batch of n_tok tokens: counts single-token
 * steps, and in threshold mode decides the first single-token step's cuts (from what the
 * batches before it showed, or by running that step dense and calibrating on it). */
void pf_ffn_batch_begin(struct pf_ffn *f, int n_tok);
void pf_ffn_batch_end(struct pf_ffn *f);

/* One layer for a batch: x[t] += FFN(xb[t]) for t < n_tok, rows of n_embd; xb holds the
 * FFN inputs (after ffn_norm) and may be overwritten. Calls the hooks with the activation in
 * the original neuron order (not under a budget). 0, or a negative code when a read of the
 * model failed (the residual is then incomplete). */
int pf_ffn_step(struct pf_ffn *f, int layer, float *xb, float *x, int n_tok);

/* Between layers of a single-token step under a budget (predictor mode, read-ahead on): runs
 * layer's predictor on rmsnorm(x) (its FFN input before the attention still to come) and
 * queues reads of the likely slots that are not resident. tmp: n_embd floats. No-op otherwise. */
int pf_ffn_prefetch(struct pf_ffn *f, int layer, const float *x, float *tmp);

/* ==== Threshold calibration (pinfer_ctx_calibrate) ==== */

/* Starts recording |act(gate)| from dense steps (whatever the mode); end sets the cuts. */
void pf_ffn_calibrate_begin(struct pf_ffn *f);
void pf_ffn_calibrate_end(struct pf_ffn *f, bool ok);

/* ==== Statistics ==== */

int pf_ffn_sparse_stats(const struct pf_ffn *f, int layer, struct pinfer_sparse_stats *out);
void pf_ffn_sparse_stats_reset(struct pf_ffn *f);
/* Seconds the predictors took in single-token steps (part of the FFN's time). */
double pf_ffn_pred_seconds(const struct pf_ffn *f);
/* Mixtures under a budget: experts guessed ahead and how many the router then chose; reset. */
void pf_ffn_moe_guess_stats(const struct pf_ffn *f, uint64_t *guesses, uint64_t *hits);
void pf_ffn_moe_guess_reset(struct pf_ffn *f);
void pf_ffn_time_reset(struct pf_ffn *f);

/* ==== Hooks (profile, prepare, tests) ==== */

/* Called after each layer's FFN activation, before the down projection, with
 * act[t*n_ff + i] = act_fn(gate_i) * up_i for the n_tok tokens of the batch, i in the original
 * neuron order also on prepared models (and 0 for neurons a sparse mode skipped). */
typedef void (*pf_ffn_hook)(void *ud, int layer, const float *act, int n_tok, int n_ff);
/* Called before each layer's FFN down projection with both the FFN input (in[t*n_embd + j],
 * after ffn_norm) and the activation act[t*n_ff + i] (as pf_ffn_hook). */
typedef void (*pf_ffn_io_hook)(void *ud, int layer, const float *in, int n_embd, const float *act,
                               int n_ff, int n_tok);
/* Called before each layer's activation with the pre-activations gate[t*n_ff + j] and
 * up[t*n_ff + j] of the n_tok tokens: j in slot order on prepared models (the hook may only
 * aggregate over neurons). Not called by single-token steps on prepared models, nor under a
 * budget. */
typedef void (*pf_ffn_pre_hook)(void *ud, int layer, const float *gate, const float *up, int n_tok, int n_ff);
void pf_ffn_set_hook(struct pf_ffn *f, pf_ffn_hook fn, void *ud);
void pf_ffn_set_pre_hook(struct pf_ffn *f, pf_ffn_pre_hook fn, void *ud);
void pf_ffn_set_io_hook(struct pf_ffn *f, pf_ffn_io_hook fn, void *ud);
/* Mixture of experts (the hooks above are not called on one): the routing of a step's n_tok
 * tokens, sel[t*k + j] the j-th expert of token t in routing order and w[t*k + j] its weight. */
typedef void (*pf_ffn_route_hook)(void *ud, int layer, const int *sel, const float *w, int n_tok, int k);
/* Mixture of experts: expert `expert` of `layer` ran on n rows; row i is the choice choice[i]
 * (token choice[i] / k of the step, its (choice[i] % k)-th expert), its FFN input
 * in[i*n_embd + j] and activation act[i*n_ff + j], j in the original neuron order also on
 * prepared models (0 for neurons a sparse mode skipped). Called after the route hook, experts
 * in any order. */
typedef void (*pf_ffn_expert_hook)(void *ud, int layer, int expert, const int *choice, int k, const float *in,
                                   int n_embd, const float *act, int n_ff, int n);
void pf_ffn_set_moe_hooks(struct pf_ffn *f, pf_ffn_route_hook route, pf_ffn_expert_hook expert, void *ud);

/* Checks the sparse fields of p against the model (pinfer_ctx_new calls it first). */
int pf_ffn_check_params(const struct pinfer_model *m, const struct pinfer_ctx_params *p);

#endif
