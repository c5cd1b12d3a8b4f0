/* Private parts of pinfer synth, shared by its files:
 *   synth_shape.c  named shapes, parameter checks             -> struct synth_cfg
 *   synth_math.c   normal CDF / quantile, truncated moments, the firing-probability law
 *   synth_plan.c   the analytic design of every layer         -> struct synth_plan
 *   synth_rows.c   one weight row at a time, from the plan    (the only per-weight code)
 *   synth_vocab.c  the generated SentencePiece vocabulary
 *   synth.c        pinfer_synth: keys, tensor list, disk check, threads, streaming
 * docs/synth.md explains the design; the comments here say what each number means. */
#ifndef PF_SYNTH_INTERNAL_H
#define PF_SYNTH_INTERNAL_H

#include "pinfer.h"
#include "model/act.h"

struct gguf_file;

#include <stdbool.h>
#include <stdint.h>

/* The residual stream's channels [0, SYNTH_BIAS_CH) hold one constant for every token: the
 * "bias block". It is exactly one quantization block (32 weights) so each weight row's bias
 * lives in a block of its own and quantizes without disturbing (or being disturbed by) the
 * random weights. */
#define SYNTH_BIAS_CH 32

/* Low-rank structure of ReLU-family gate rows (docs/synth.md, "Predictable activations"):
 * default and largest subspace dimension K, the share of a gate row's energy inside the
 * subspace, and for dReLU the correlation of a neuron's up coefficients with its gate ones. */
#define SYNTH_RANK_DEFAULT 48
#define SYNTH_RANK_MAX 256
#define SYNTH_LR_SHARE 0.97
#define SYNTH_LR_UP_RHO 0.8

/* The realistic law (synth_law.c, docs/synth.md "The realistic law"): channels
 * [SYNTH_BIAS_CH, SYNTH_BIAS_CH + SYNTH_SLOW_CH) are the *slow block*, written by one head of
 * layer 0 only: a moving average over the last ~10 tokens of SYNTH_SLOW_CH embedding channels
 * starting at SYNTH_SLOW_SRC. SYNTH_REAL_SLOW_SHARE of every gate (and up) pre-activation's
 * variance comes from it; dReLU gate and up coefficients correlate SYNTH_REAL_UP_RHO. */
#define SYNTH_SLOW_CH 32
#define SYNTH_SLOW_SRC (SYNTH_BIAS_CH + SYNTH_SLOW_CH)
#define SYNTH_REAL_SLOW_SHARE 0.6
#define SYNTH_REAL_UP_RHO 0.92

/* Mixture-of-experts routing (docs/synth.md, "Mixture of experts"). MoE files have the slow
 * block (whatever the law) and a *router block*, channels [SYNTH_ROUTE_LO, SYNTH_ROUTE_LO +
 * SYNTH_ROUTE_CH): the token embedding only, which no sub-layer writes to. Router rows read the
 * router block and the slow block alone, their logits' lag-1 correlation being
 * SYNTH_ROUTE_CORR0 in layer 0 and SYNTH_ROUTE_CORR above; the expert of popularity rank r gets
 * logit offset -SYNTH_ROUTE_BETA ln(1 + r). Calibrated offline (Monte Carlo, 4e5 token pairs of
 * 8 unit-variance logits, top-2): shares 0.119..0.136, first-choice repeat 0.14 and 0.26, the
 * Mixtral paper's (Jiang et al. 2024, Table 5, Fig. 7). */
#define SYNTH_ROUTE_CH 64
#define SYNTH_ROUTE_LO (SYNTH_SLOW_SRC + SYNTH_SLOW_CH)
#define SYNTH_ROUTE_CORR0 0.049
#define SYNTH_ROUTE_CORR 0.368
#define SYNTH_ROUTE_BETA 0.05

/* ==== Resolved parameters ==== */

struct synth_cfg {
    char shape[32];
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_expert, n_expert_used, n_ctx;
    int head_dim;
    float rope_base, norm_eps;
    int type;        /* big matrices (attention, FFN) */
    int embd_type;   /* token_embd.weight */
    int out_type;    /* output.weight */
    enum pinfer_act act;
    float sparsity, hot_frac, hot_share;
    uint64_t seed;
    int rank;        /* K of the gate subspace; 0: isotropic rows (ReLU family only) */
    bool realistic;  /* --law realistic (ReLU family, dense, rank > 0) */
    bool moe_route;  /* MoE with room for the slow and router blocks (>= 2 kv heads of >= 32,
                        n_embd >= SYNTH_ROUTE_LO + SYNTH_ROUTE_CH + head_dim) */
    const struct gguf_file *vocab_src; /* --vocab-from: tokenizer keys copied from it; NULL */
};

/* Applies the named shape, then the explicit overrides, then checks everything. */
int synth_cfg_resolve(struct synth_cfg *cfg, const struct pinfer_synth_params *p);
/* pf_act_name, under the name tests/test_synth_rank.c knows it by. */
static inline const char *synth_act_name(enum pinfer_act act) { return pf_act_name(act); }
/* llama.cpp's general.file_type (LLAMA_FTYPE_*) for the big-matrix type. */
int synth_file_type(int type);

/* ==== Math ==== */

double synth_norm_cdf(double x);
double synth_norm_pdf(double x);
/* Inverse of the standard normal CDF, p in (0, 1); accurate to ~1e-15. */
double synth_norm_ppf(double p);
/* E[relu(tau + Z)] and E[relu(tau + Z)^2], Z ~ N(0, 1). */
double synth_relu_m1(double tau);
double synth_relu_m2(double tau);
/* E[silu(sigma Z)^2]. */
double synth_silu_m2(double sigma);
/* P(h + X > 0 and h + Y > 0) for standard normals X, Y with correlation rho (|rho| < 1). */
double synth_bvn_orthant(double h, double rho);
/* The h with synth_bvn_orthant(h, rho) = p, p in (0, 1). */
double synth_bvn_solve(double p, double rho);
/* E[relu(h+X) relu(h+Y)] and E[relu(h+X)^2 relu(h+Y)^2], X, Y as above. */
void synth_drelu_moments(double h, double rho, double *m1, double *m2);

/* The per-neuron firing probabilities follow a logit-normal law, p = sigmoid(mu + sigma z).
 * Solves (mu, sigma) so that over n_points quantiles of z the mean of p is `mean` and the
 * n_points*hot_frac largest p carry hot_share of the sum. PINFER_EINVAL (with a message) when
 * no such law exists (hot_share < hot_frac, or a hot set that would have to fire more often
 * than always). */
int synth_firing_law(double mean, double hot_frac, double hot_share, int n_points,
                     double *mu, double *sigma);

/* ==== The design ==== */

struct synth_layer {
    float xnorm_att, xnorm_ffn;  /* nominal |x| at the attention and FFN inputs */
    int copy_lo, copy_n;         /* the previous-token head copies channels [lo, lo+n); n=0: none */
    float s_q, s_k, s_v, s_o;    /* std of the random (content) attention weights */
    float s_g, s_u, s_r;         /* gate, up, router std */
    float *s_d;                  /* (n_exp) down std per expert */
    float *v_ffn;                /* (n_embd) expected x_j^2 at the FFN input; 0 in the bias block */
    float *p;                    /* (n_exp, n_ff) firing probability of each neuron */
    float *ea;                   /* (n_ff) E[act] per neuron (dense dReLU only, else NULL) */
    float *router_bias;          /* (n_expert) router logit offsets, MoE only */
    float sparsity;              /* this layer's requested sparsity (the realistic law spreads it) */
    double law_mu, law_sigma;    /* this layer's firing law */
    float s_slow;                /* realistic: weight std of gate / up rows on the slow block */
    int *lr_col;                 /* (n_embd) rank structure: column of U channel j belongs to
                                    (-1 in the bias block); NULL when isotropic */
    float *lr_u;                 /* (n_embd) U's entry at channel j (columns have unit norm) */
};

struct synth_plan {
    const struct synth_cfg *cfg;
    int n_exp;                   /* max(1, n_expert) */
    int d_rest;                  /* n_embd - SYNTH_BIAS_CH */
    float C, c0;                 /* |bias block| and its per-channel value (C / sqrt(32)) */
    float lambda;                /* strength of the previous-token copy */
    double law_mu, law_sigma;    /* firing law (logit-normal) */
    float *pos_q, *pos_k;        /* (head_dim) q and k of the previous-token head */
    float pos_amp;               /* its score amplitude per rotary pair */
    int pos_pairs;
    float xnorm_out, s_out;      /* nominal |x| at the output norm; output weight std */
    double lr_rho;               /* dReLU with rank structure: nominal gate/up pre-activation
                                    correlation (SYNTH_LR_SHARE * SYNTH_LR_UP_RHO) */
    double up_rho;               /* dReLU: correlation of a neuron's up coefficients with its gate
                                    ones (SYNTH_LR_UP_RHO; SYNTH_REAL_UP_RHO for the realistic law) */
    int slow_hi;                 /* end of the slow block: SYNTH_BIAS_CH (none) or SYNTH_SLOW_SRC */
    int route_lo, route_hi;      /* the router block (MoE, cfg->moe_route); empty otherwise */
    int copy_base;               /* layer l's previous-token head copies from copy_base + l * head_dim */
    double win_rho1;             /* lag-1 correlation of the moving average (slow block) */
    int win_qhead, win_kvhead;   /* realistic: the moving-average head of layer 0 */
    float *win_q, *win_k;        /* (head_dim) its q and k (from the bias block) */
    float win_amp;               /* its attn_output weight, so the slow block has unit energy */
    float *mean_shift;           /* (n_embd) running E[x] offset from dReLU FFN outputs; written
                                    while ffn_down rows are generated, read by the next gates */
    struct synth_layer *layers;  /* n_layer */
};

int synth_plan_build(struct synth_plan *plan, const struct synth_cfg *cfg);

void synth_plan_free(struct synth_plan *plan);

/* ==== Tensors and rows ==== */

enum synth_kind {
    SK_EMBD, SK_NORM, SK_OUTPUT, SK_Q, SK_K, SK_V, SK_O, SK_GATE, SK_UP, SK_DOWN, SK_ROUTER,
};

struct synth_tensor {
    char name[64];
    enum synth_kind kind;
    int layer;
    int type;
    int n_dims;
    int64_t ne[3];
    int64_t n_rows;              /* ne[1] * ne[2] */
    size_t row_bytes;
};

/* Fills out[0..ne[0]) with row `row` of tensor t (index ti in the file).
 * Thread-safe for distinct rows (ffn_down and attn_output rows also update plan->mean_shift[row]). */
void synth_gen_row(const struct synth_plan *plan, const struct synth_tensor *t, int ti, int64_t row,
                   float *out);

/* The realistic law (synth_law.c). Sparsity of layer l: the request spread over layers. */
float synth_law_layer_sparsity(const struct synth_cfg *c, int l);
/* The moving-average head: P->win_* (needs P->layers[0].xnorm_att). */
int synth_law_plan_window(struct synth_plan *P);
/* Rows the realistic law owns; false when the row is not one of them (out untouched). */
bool synth_law_attn_row(const struct synth_plan *P, const struct synth_tensor *t, int64_t row, float *out);
/* Slow-block coefficients of neuron `neuron` of layer l (SYNTH_SLOW_CH each, unit variance,
 * the up's correlated P->up_rho with the gate's); au may be NULL. */
void synth_law_slow_coefs(const struct synth_plan *P, int l, int64_t neuron, float *cg, float *cu);

/* ==== Vocabulary ==== */

struct synth_vocab {
    int n;
    char **tokens;   /* n NUL-terminated pieces, into one block */
    float *scores;
    int32_t *types;  /* 1 normal, 2 unknown, 3 control, 6 byte */
    char *block;
};

/* Builds the vocabulary of n entries: <unk> <s> </s>, the 256 byte tokens, pieces learned by
 * byte-pair merges over a small built-in English text, generated longer pieces, and single
 * characters last. Depends on n only. */
int synth_vocab_build(struct synth_vocab *v, int n);
void synth_vocab_free(struct synth_vocab *v);

#endif
