/* The mixture-of-experts FFN (moe.c): routing and the two paths behind pf_ffn_step.
 *
 * Routing is Mixtral's as llama.cpp computes it for the llama architecture (llm_build_moe_ffn
 * with softmax gating and norm_w, snapshot c392e5094): p = softmax(router x) over all experts;
 * the k experts of largest p, in the order ggml's argsort (descending) puts them; their weights
 * p[e] / sum of the k chosen p. The layer's output is sum_j w_j * expert_{sel_j}(x), summed in
 * that order. */
#ifndef PF_FFN_MOE_H
#define PF_FFN_MOE_H

#include "ffn/ffn.h"

/* Most experts a layer may have (the loader's cap on llama.expert_count). */
#define PF_MOE_MAX_EXPERTS 1024

/* Routes one token: logits (n_expert) -> sel (k expert ids) and w (k weights summing to 1).
 * Ties: ggml's argsort is a selection sort that swaps only on a strictly larger value, so of
 * equal probabilities the lower expert id comes first (as in ggml when nothing larger was
 * swapped past it; the same rule is applied here step for step). 1 <= k <= n_expert <=
 * PF_MOE_MAX_EXPERTS. */
void pf_moe_route(const float *logits, int n_expert, int k, int *sel, float *w);

/* Bytes of working memory a MoE FFN of model m needs for batches of n_batch tokens (0 for a
 * dense model; SIZE_MAX on overflow). */
size_t pf_moe_buf_size(const struct pinfer_model *m, int n_batch);

/* The MoE FFN of layer l for the step's n_tok tokens (f->xb in, added to f->x): one token reads
 * only its chosen experts; a batch groups the tokens by expert (gather, one product per expert
 * and matrix, scatter), so each chosen expert's weights are read once per batch. 0, or under a
 * memory budget a negative code (a read failed). */
int pf_ffn_moe(struct pf_ffn *f, int l, int n_tok);
/* Under a memory budget, before layer l's attention (pf_ffn_prefetch): guesses layer l's experts
 * with its router on xn (the residual before the attention, normalised with ffn_norm) and reads
 * ahead the likely missing slots of the first guess; the step then counts how many of the
 * guessed experts the router chose (pf_ffn_moe_guess_stats). 0 or a negative code. */
int pf_moe_prefetch(struct pf_ffn *f, int l, const float *xn);

/* The reference the grouped batch is tested against: token by token, expert by expert, each
 * product on one token (the single-token path). xb: n_tok rows of n_embd in; x: residual rows. */
void pf_ffn_moe_ref(struct pf_ffn *f, int l, float *xb, float *x, int n_tok);

#endif
