/* pinfer: LLM inference for machines with less memory than the model.
 *
 * Public API. Handles are opaque; parameters are transparent structs filled from
 * pinfer_*_default_params(). Functions return 0 (or a non-negative count) on success and a
 * negative PINFER_E* code on failure; pinfer_last_error() then holds a one-line message for the
 * calling thread. Nothing here exits or aborts on bad input.
 *
 * Ownership is stated above each function. Every *_free(NULL) is a no-op. */
#ifndef PINFER_H
#define PINFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Errors ==== */

enum pinfer_status {
    PINFER_OK = 0,
    PINFER_EINVAL = -1,       /* bad argument or flag */
    PINFER_ENOMEM = -2,       /* allocation failed or a budget cannot be met */
    PINFER_EIO = -3,          /* read/write failed, file missing */
    PINFER_EFORMAT = -4,      /* malformed or hostile file */
    PINFER_EUNSUPPORTED = -5, /* valid but not supported (architecture, tensor type) */
    PINFER_ENOSPC = -6,       /* not enough disk space for an output */
    PINFER_ERANGE = -7,       /* out of range: context full, prompt too long */
};

/* Message of the calling thread's most recent failure. Valid until the next failure. */
const char *pinfer_last_error(void);
/* Short name of a status code ("malformed file"). */
const char *pinfer_status_str(int code);

/* ==== Models ==== */

struct pinfer_model;

struct pinfer_model_params {
    bool use_mmap;  /* leave weights in the file mapping instead of copying them into
                       (huge-page backed) anonymous memory; default false */
    bool vocab_only; /* load metadata and tokenizer only (no tensors needed) */
    bool check_tensors; /* refuse weights holding NaN or infinite values (float types) or block
                           scales (quantized types); one pass over the resident weights at load
                           (with use_mmap it reads the whole file); default true */
    uint64_t mem_budget; /* bytes; 0 = none. A hard limit on what the model and its context hold
                            (docs/offload.md): needs a prepared model; the FFN bundles stay in
                            the file and a neuron cache in the context serves them */
};
struct pinfer_model_params pinfer_model_default_params(void);

/* FFN activation, from metadata (see docs/model-format.md). */
enum pinfer_act {
    PINFER_ACT_SILU = 0,  /* SwiGLU: silu(gate) * up */
    PINFER_ACT_RELU = 1,  /* relu(gate) * up, the ReLU-fied Llama FFN (== ReGLU) */
    PINFER_ACT_REGLU = 2, /* alias kept distinct for reporting: relu(gate) * up */
    PINFER_ACT_DRELU = 3, /* relu(gate) * relu(up) */
    PINFER_ACT_GELU = 4,  /* gelu(gate) * up (GeGLU) */
};
/* The name of an activation as pinfer.ffn_act stores it ("silu", "relu", "reglu", "drelu",
 * "gelu"; "?" outside the enum); a static string. */
const char *pinfer_act_name(enum pinfer_act act);
/* Parses such a name (case-insensitive; "swiglu" = silu): 0 with *out set, or PINFER_EINVAL. */
int pinfer_act_parse(const char *name, enum pinfer_act *out);

struct pinfer_model_info {
    char arch[32];
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx_train, n_rot;
    int n_expert, n_expert_used;
    int sliding_window;   /* 0 = none */
    float rope_freq_base, norm_eps;
    float rope_freq_scale; /* positions are multiplied by this (linear RoPE scaling: 1/factor; 1 = none) */
    bool rope_freq_factors; /* rope_freqs.weight present (Llama 3.1/3.2 frequency factors) */
    enum pinfer_act act;
    int weight_type;      /* ggml type id of the FFN weights (most common) */
    uint64_t n_params;
    uint64_t weight_bytes; /* bytes of all tensor data */
    uint64_t decode_bytes; /* weight bytes one decode step streams: all but the embedding
                              table (one row of it is read), plus the head when tied; a
                              prepared model's predictors are not counted (dense decode skips
                              them) */
    int prepared;          /* pinfer.prepared format version (docs/sparse-format.md), 0 if not */
    int cluster_size;      /* prepared: neurons per cluster */
    bool has_predictors;   /* prepared with a predictor for every layer */
};

/* Opens a GGUF model. On success *out owns the file mapping and all weights; free with
 * pinfer_model_free(). */
int pinfer_model_load(struct pinfer_model **out, const char *path,
                      const struct pinfer_model_params *params);
void pinfer_model_free(struct pinfer_model *model);
void pinfer_model_get_info(const struct pinfer_model *model, struct pinfer_model_info *info);
/* Writes a short description ("llama 7B Q4_0 ...") into buf; returns buf. */
const char *pinfer_model_desc(const struct pinfer_model *model, char *buf, size_t cap);

/* ==== Tokenizer (owned by the model) ==== */

/* Longest text pinfer_tokenize accepts (64 MiB; PINFER_ERANGE beyond). Text is tokenized in
 * pieces of about 64 KiB cut where the result cannot change (SentencePiece: after bytes no token
 * joins, a newline in common vocabularies; byte-level BPE: after a newline between two non-space
 * ASCII characters), so scratch memory is ~80 bytes per byte of a piece; a text with no such
 * place is one piece. */
#define PINFER_MAX_TEXT_BYTES (1u << 26)

/* Tokenizes text[0..len) (UTF-8). Writes up to cap ids into out and returns the number of
 * ids the full tokenization has (which may exceed cap; call again with a larger buffer), or a
 * negative code. add_bos: prepend BOS when the vocabulary says to add one (add_bos_token,
 * default true for SentencePiece and Llama 3's BPE), and EOS when it says add_eos_token. */
int pinfer_tokenize(const struct pinfer_model *model, const char *text, size_t len, bool add_bos,
                    int32_t *out, int cap);
/* pinfer_tokenize with parse_special: control tokens written in the text ("<s>", "</s>", a chat
 * model's "<|im_start|>") become those tokens, as llama.cpp's parse_special = true; what text
 * from pinfer_chat_apply needs. pinfer_tokenize is this with parse_special = false (such text is
 * tokenized as plain characters; user-defined tokens are recognised either way). */
int pinfer_tokenize_ex(const struct pinfer_model *model, const char *text, size_t len, bool add_bos,
                       bool parse_special, int32_t *out, int cap);
/* Text of one token for output (SentencePiece: byte-fallback tokens become their byte, "▁" a
 * space; byte-level BPE: the token's bytes, "Ġ" a space).
 * Writes at most cap bytes (no NUL) and returns the full length, or a negative code. */
int pinfer_token_to_piece(const struct pinfer_model *model, int32_t token, char *buf, int cap);
int32_t pinfer_token_bos(const struct pinfer_model *model); /* -1 if none */
int32_t pinfer_token_eos(const struct pinfer_model *model); /* -1 if none */
int pinfer_n_vocab(const struct pinfer_model *model);

/* ==== Chat templates ====
 * A conversation rendered as the prompt text a chat model expects, as llama.cpp's
 * llama_chat_apply_template renders it: one of a fixed list of built-in templates (no Jinja
 * interpreter), chosen by name or recognised from the model's Jinja template by the substrings
 * llama.cpp looks for. Names as llama.cpp's: chatml, llama2, llama2-sys, llama2-sys-bos,
 * llama2-sys-strip, mistral-v1, mistral-v3, mistral-v3-tekken, mistral-v7, phi3, phi4, falcon3,
 * zephyr, monarch, gemma, orion, openchat, vicuna, vicuna-orca, deepseek, deepseek2, deepseek3,
 * command-r, llama3, chatglm3, chatglm4, glmedge, minicpm, exaone3, rwkv-world, granite,
 * gigachat, megrez (pinfer_chat_builtin_templates lists them). */

struct pinfer_chat_msg {
    const char *role;    /* "system", "user", "assistant" (others are written as given) */
    const char *content; /* UTF-8, NUL-terminated */
};

/* The template a model without tokenizer.chat_template gets (llama.cpp's choice too). */
#define PINFER_CHAT_DEFAULT_TEMPLATE "chatml"

/* Renders msgs[0..n) as prompt text, ending with the opening of the assistant's turn when
 * add_ass (add_generation_prompt). The template is tmpl when not NULL or "": a built-in name
 * ("llama3") or a Jinja template string to recognise; else the model's tokenizer.chat_template
 * (read in place from its metadata, any length); else, or when model is NULL,
 * PINFER_CHAT_DEFAULT_TEMPLATE. The caller owns buf; nothing is allocated.
 * Returns the length of the whole text in bytes (no NUL), whatever cap is; writes at most cap
 * bytes: the text and a NUL when it fits (return value < cap), else its first cap-1 bytes and a
 * NUL; nothing when cap == 0 (buf may be NULL): call with 0 to measure, then with the return
 * value + 1. Errors: PINFER_EINVAL for an unknown name or an unrecognised template (the message
 * lists the supported names), a NULL role or content, n < 0, cap < 0; PINFER_EFORMAT when the
 * model's tokenizer.chat_template is not a string or holds a NUL byte; PINFER_ERANGE when the
 * text would reach 2 GiB. */
int pinfer_chat_apply(const struct pinfer_model *model, const char *tmpl, const struct pinfer_chat_msg *msgs,
                      int n, bool add_ass, char *buf, int cap);
/* The built-in template pinfer_chat_apply(model, tmpl, ...) uses: *name (a static string) and,
 * when is_default is not NULL, whether it is the default because the model has none. Same
 * errors as pinfer_chat_apply for the template. */
int pinfer_chat_template_name(const struct pinfer_model *model, const char *tmpl, const char **name,
                              bool *is_default);
/* Stores up to cap names of built-in templates (static strings) in out; returns how many there
 * are. */
int pinfer_chat_builtin_templates(const char **out, int cap);

/* ==== Inference contexts ==== */

struct pinfer_ctx;

/* Sparse FFN (docs/sparse.md). It applies to single-token decode steps; batches (the prompt)
 * always run the dense FFN, where nearly every neuron fires for some token of the batch. */
enum pinfer_sparse_mode {
    PINFER_SPARSE_OFF = 0,       /* dense FFN */
    PINFER_SPARSE_ORACLE = 1,    /* compute every gate, skip neurons whose activation is exactly 0
                                    (exact: the same logits as off, for the ReLU family faster) */
    PINFER_SPARSE_PREDICTOR = 2, /* a prepared model's predictors choose the neurons to compute */
    PINFER_SPARSE_THRESHOLD = 3, /* skip neurons with |act(gate)| under a per-layer cut calibrated
                                    so that sparsity_target of them fall under it (CATS) */
};
/* "off", "oracle", "predictor", "threshold" -> *out; PINFER_EINVAL naming the choices otherwise. */
int pinfer_sparse_mode_parse(const char *name, enum pinfer_sparse_mode *out);
const char *pinfer_sparse_mode_name(enum pinfer_sparse_mode mode);

struct pinfer_ctx_params {
    int n_ctx;     /* KV cache length in tokens; 0 = the model's training context */
    int n_threads; /* 0 = number of online CPUs */
    int n_batch;   /* largest batch one pinfer_decode call may carry; default 512 */
    enum pinfer_sparse_mode sparse; /* FFN of single-token steps; default off */
    float sparsity_target;          /* threshold mode: fraction of neurons to skip; default 0.5 */
    bool sparse_verify;  /* sparse modes: also evaluate the neurons they skip (results unused) to
                            measure recall and precision in pinfer_ctx_sparse_stats; slow */
    /* Under a model memory budget (pinfer_model_params.mem_budget): */
    enum pinfer_io_backend { PINFER_IO_AUTO = 0, PINFER_IO_URING = 1, PINFER_IO_PREAD = 2 } io_backend;
    int io_depth;        /* reads in flight at most (io_uring queue, pread workers' queue); 0 =
                            default (128); 1..4096 */
    float cache_hot;     /* share of the FFN memory pinned as hot neurons, the rest an LRU
                            cache; < 0 = default (0.9) */
    bool prefetch;       /* predictor mode: after each layer, run the next layer's predictor on
                            the current hidden state and read its likely missing slots during
                            the next attention (a second staging area); default false: on the
                            Mistral-7B shape it cost more than it hid (bench/RESULTS.md) */
    uint64_t stage_bytes; /* bytes of the staging area for one step's reads; 0 = a layer's FFN
                            if small, else 16 MiB; raised to one cluster's pages at least */
    /* Benchmark aid (docs/sparse.md), no use in production: predictor mode reads every
     * round(1 / sparse_ideal)-th slot whole instead of asking the predictor, the bytes of a
     * perfect predictor at that density. 0 = off; must be in [0, 1]. */
    float sparse_ideal;
    /* Under a memory budget: how many contexts of the model share it (pinfer serve's slots).
     * The resident weights count once; each context plans its KV cache, buffers and neuron
     * cache in an equal share of the rest, so that all of them together stay within the budget.
     * Default 1 (this context has the whole budget). */
    int budget_shares;
    /* Run on this context's threads instead of starting a pool of its own (n_threads is then
     * that pool's size): contexts that never decode at the same time, such as pinfer serve's
     * slots stepped by one thread, keep the machine's cores to one pool, not one spinning pool
     * each. It must outlive the new context. NULL (default): a pool of its own. */
    struct pinfer_ctx *threads_from;
};
struct pinfer_ctx_params pinfer_ctx_default_params(void);

/* Creates an inference context (KV cache, scratch, thread pool) for a model. The model must
 * outlive the context. */
int pinfer_ctx_new(struct pinfer_ctx **out, struct pinfer_model *model,
                   const struct pinfer_ctx_params *params);
void pinfer_ctx_free(struct pinfer_ctx *ctx);
/* Forgets the KV cache. */
void pinfer_ctx_reset(struct pinfer_ctx *ctx);
int pinfer_ctx_n_ctx(const struct pinfer_ctx *ctx);

/* Runs tokens[0..n) at positions pos..pos+n-1 as one batch (n <= n_batch) and fills the KV
 * cache. Logits are kept for every token when all_logits, else for the last token only.
 * Returns 0, or PINFER_ERANGE when pos+n exceeds n_ctx. */
int pinfer_decode(struct pinfer_ctx *ctx, const int32_t *tokens, int n, int pos, bool all_logits);
/* One token for each of n sequences, each in its own context of the same model: tokens[i] at
 * position pos[i] of ctxs[i] (distinct contexts). Where one pass over all of them reads the
 * weights once instead of n times (a dense FFN with the weights in memory), the products run as
 * one batch in ctxs[0]'s buffers, on its threads, each row attending over its own context's KV
 * cache (n <= ctxs[0]'s n_batch); otherwise (sparse modes, a memory budget, hooks) the sequences
 * are decoded one by one. Either way each context then holds its token's logits
 * (pinfer_ctx_logits(ctxs[i], -1)), equal to pinfer_decode's up to the batched products'
 * summation order. pinfer serve steps its slots with it. */
int pinfer_decode_multi(struct pinfer_ctx *const *ctxs, const int32_t *tokens, const int *pos, int n);
/* Logits (n_vocab floats) of token i of the last batch (i = -1: the last token). Owned by ctx,
 * valid until the next pinfer_decode. NULL if i has no logits. */
const float *pinfer_ctx_logits(const struct pinfer_ctx *ctx, int i);

/* Threshold mode: runs tokens[0..n) through the model (dense, in batches, from position 0),
 * sets every layer's cut from the |act(gate)| values seen, and forgets the KV cache. Without a
 * call, the cuts come from the batches decoded before the first single-token step (the prompt),
 * or from that step itself. PINFER_EINVAL in other modes. */
int pinfer_ctx_calibrate(struct pinfer_ctx *ctx, const int32_t *tokens, int n);

/* Under a memory budget: the plan and what the neuron cache did (decode steps and batches). */
struct pinfer_cache_stats {
    uint64_t budget, fixed_bytes, hot_bytes, cold_bytes; /* the plan */
    int hot_slots;                 /* per layer (mixtures: per expert, the mean), pinned */
    int cold_entries;
    const char *io_backend;        /* "uring" or "pread" */
    int io_depth;                  /* reads in flight at most */
    uint64_t hits, misses;         /* single-token steps: slot look-ups */
    uint64_t reads, bytes_read;    /* single-token steps: direct reads issued */
    double io_wait_s;              /* single-token steps: time blocked on reads */
    uint64_t evictions;
    uint64_t rounds;               /* single-token steps: read rounds (one per layer unless the
                                      staging area cannot hold a layer of misses) */
    uint64_t prefill_reads, prefill_bytes;
    double prefill_wait_s;
    /* predictor mode: after each layer the next layer's predictor runs on the current hidden
       state and its likely missing slots are read during the next attention */
    uint64_t prefetch_reads, prefetch_bytes, prefetch_slots;
    uint64_t prefetch_used;        /* prefetched slots that the step then needed */
    /* mixtures of experts, predictor mode with read-ahead: before each layer's attention its
       router guesses the token's experts (the first guess's slots are read ahead) */
    uint64_t expert_guesses;       /* experts guessed */
    uint64_t expert_guess_hits;    /* of them, chosen by the router after the attention */
};
/* PINFER_EINVAL when the model has no budget. */
int pinfer_ctx_cache_stats(const struct pinfer_ctx *ctx, struct pinfer_cache_stats *st);
/* Forgets the counters (not the cache's contents). */
void pinfer_ctx_cache_stats_reset(struct pinfer_ctx *ctx);

/* What the FFN did on the single-token steps since the context was created or the counters
 * were reset, per token: of one layer, or averaged over all layers (layer = -1). */
struct pinfer_sparse_stats {
    uint64_t n_tokens;     /* single-token steps counted */
    double gate_frac, up_frac, down_frac; /* gate rows, up rows, down columns read / n_ff */
    double cluster_frac;   /* clusters of which anything was read / clusters (prepared models) */
    double pred_frac;      /* predictor mode: neurons predicted active / n_ff */
    double active_frac;    /* neurons computed with a non-zero activation / n_ff */
    double true_frac;      /* neurons whose dense activation is non-zero (oracle, or with
                              sparse_verify; SiLU: all); -1 when unknown */
    double recall;         /* of the truly non-zero neurons, the fraction computed (sparse_verify;
                              threshold mode: of the dense activation's L1 mass); -1 unknown */
    double precision;      /* of the neurons computed, the fraction truly non-zero; -1 unknown */
    double threshold;      /* threshold mode: the cut (layer >= 0) or the mean cut */
    double bytes;          /* weight bytes read per token: layer -1, the whole model; else the
                              layer's FFN and predictor */
    double pred_bytes;     /* of those, predictor bytes */
};
int pinfer_ctx_sparse_stats(const struct pinfer_ctx *ctx, int layer, struct pinfer_sparse_stats *out);
void pinfer_ctx_sparse_stats_reset(struct pinfer_ctx *ctx);

/* Where the single-token steps since the context was created or the counters were reset spent
 * their time (seconds per token), and the weight bytes the timed matrix products read per token,
 * so each phase's bandwidth can be set against the machine's. */
struct pinfer_time_stats {
    uint64_t n_tokens;
    double total;        /* the whole step, embedding to logits */
    double attn_mm;      /* q, k, v and output projections */
    double attn;         /* scores, softmax and values over the KV cache */
    double predictor;    /* predictor mode: the predictors */
    double ffn;          /* the rest of the FFN (under a budget: with the time blocked on reads) */
    double head;         /* output projection to logits */
    double other;        /* norms, rope, embedding, residual adds (under a budget: issuing read-ahead) */
    double attn_mm_bytes, head_bytes;
};
int pinfer_ctx_time_stats(const struct pinfer_ctx *ctx, struct pinfer_time_stats *out);
void pinfer_ctx_time_stats_reset(struct pinfer_ctx *ctx);

/* Perplexity of tokens[0..n) (tokenized with BOS), as llama.cpp's perplexity tool computes it:
 * the tokens are cut into chunks of the context's n_ctx (a partial last chunk is dropped); each
 * chunk starts from an empty cache with its first token replaced by BOS, and the second half of
 * it is scored (the predictions for positions n_ctx/2+1 .. n_ctx-1). one_token_steps: decode
 * one token per call (the path sparse modes act on) instead of batches of n_batch. */
struct pinfer_ppl_result {
    double ppl, nll;       /* perplexity = exp(mean negative log-likelihood) */
    int n_chunks, n_scored;
};
int pinfer_perplexity(struct pinfer_ctx *ctx, const int32_t *tokens, int n, bool one_token_steps,
                      struct pinfer_ppl_result *out);

/* ==== Sampling ==== */

struct pinfer_sampler;

/* llama.cpp's defaults and order: repetition penalty, top-k, top-p, min-p, temperature, then a
 * draw from the softmax. temp <= 0 means greedy (argmax after the penalty). */
struct pinfer_sampler_params {
    float temp;           /* 0.8 */
    int top_k;            /* 40; <= 0 disables */
    float top_p;          /* 0.95; 1.0 disables */
    float min_p;          /* 0.05; 0 disables */
    float repeat_penalty; /* 1.0 (disabled) */
    int repeat_last_n;    /* 64; 0 disables, -1 = whole context */
    uint64_t seed;        /* 0xFFFFFFFF (LLAMA_DEFAULT_SEED) = pick from the clock */
};
struct pinfer_sampler_params pinfer_sampler_default_params(void);
int pinfer_sampler_new(struct pinfer_sampler **out, int n_vocab,
                       const struct pinfer_sampler_params *params);
void pinfer_sampler_free(struct pinfer_sampler *s);
/* Remembers a token (prompt or generated) for the repetition penalty. */
void pinfer_sampler_accept(struct pinfer_sampler *s, int32_t token);
/* Picks the next token from n_vocab logits. The logits are not modified. */
int32_t pinfer_sampler_sample(struct pinfer_sampler *s, const float *logits);

/* ==== Process measurements ==== */

/* Number of online CPUs. */
int pinfer_cpu_count(void);
/* Name of a ggml tensor type id ("q4_0"), "?" if unknown. */
const char *pinfer_type_name(int type);
/* Seconds on a monotonic clock. */
double pinfer_now(void);
/* Peak resident set size of the process in bytes (0 if unknown). */
uint64_t pinfer_peak_rss(void);
/* Reads the model's resident weights once with the context's threads (a plain streaming read,
 * no compute) and returns the GB/s achieved: the bandwidth the machine gives at this moment,
 * to set decode speed against. 0 when the weights are not in one resident arena (--mmap). */
double pinfer_ctx_read_gbs(struct pinfer_ctx *ctx);
/* The same threads reading FFN-row-sized pieces (one row position in 6, at random, ascending,
 * prefetched a few rows ahead): the bandwidth a sparse FFN step's scattered rows can get, which
 * on a machine whose cores keep few misses in flight is well below the streaming figure. */
double pinfer_ctx_scatter_gbs(struct pinfer_ctx *ctx);

/* ==== Atomic output files ====
 * Text or binary output goes to a temp file beside `path` and replaces `path` only on commit,
 * so an interrupted or failed write never leaves a partial file or destroys the old one. */
struct pinfer_outfile;
int pinfer_outfile_open(struct pinfer_outfile **out, const char *path);
FILE *pinfer_outfile_stream(struct pinfer_outfile *f);
/* Flushes, fsyncs and renames into place; reports write errors (full disk: PINFER_ENOSPC).
 * Frees f in every case. */
int pinfer_outfile_commit(struct pinfer_outfile *f);
/* Removes the temp file and frees f. NULL is a no-op. */
void pinfer_outfile_abort(struct pinfer_outfile *f);

/* ==== Synthetic models (pinfer synth) ==== */

/* The activation law of a synthetic ReLU-family model (docs/synth.md): BASIC is the law synth
 * always had (every layer at the requested sparsity; consecutive tokens related through the
 * previous-token heads only); REALISTIC calibrates on published real models: per-layer
 * sparsity spread around the request, a slowly drifting component of the residual stream
 * (active sets persist over tokens), dReLU gate/up agreement ~0.8. */
enum pinfer_synth_law { PINFER_SYNTH_LAW_BASIC = 0, PINFER_SYNTH_LAW_REALISTIC = 1 };

struct pinfer_synth_params {
    const char *shape;  /* named shape or NULL: "tiny", "llama2-7b", "llama2-13b", "mistral-7b",
                           "mixtral-8x7b"; explicit fields below override when non-zero */
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_expert, n_expert_used, n_ctx;
    int type;           /* ggml type id of the big matrices (F32, F16, BF16, Q8_0, Q4_0, Q4_1,
                           Q5_0, Q5_1, IQ4_NL, Q2_K..Q6_K) */
    enum pinfer_act act;
    float sparsity;     /* ReLU family: fraction of FFN neurons that are zero per token */
    float hot_frac, hot_share; /* --hot H:F: H of the neurons carry F of the activations */
    uint64_t seed;
    bool progress;      /* progress bar on stderr */
    int rank_structure; /* ReLU family: gate rows live mostly in a K-dim subspace per layer, so a
                           low-rank predictor sees the activations (docs/synth.md); 0 = isotropic
                           rows (synth version 1); the default is 48 */
    enum pinfer_synth_law law; /* ReLU family; BASIC (default) or REALISTIC (dense, rank > 0) */
    const char *vocab_from; /* a GGUF file whose tokenizer.* keys (vocabulary, merges, special
                           tokens, chat template) the model gets instead of the generated
                           SentencePiece vocabulary; n_vocab becomes its token count; NULL */
};
struct pinfer_synth_params pinfer_synth_default_params(void);
/* Writes a synthetic GGUF model to path, atomically (temp file + rename). Checks free disk
 * space first (PINFER_ENOSPC). */
int pinfer_synth(const char *path, const struct pinfer_synth_params *params);

/* ==== Activation profile (pinfer profile; definitions in src/profile/act_stats.h) ==== */

struct pinfer_profile_params {
    const char *text;    /* run over this text's tokens (BOS added); NULL: generate tokens */
    size_t text_len;
    int n_tokens;        /* tokens to generate without text; with text, a cap (0 = all); 128 */
    bool random_tokens;  /* generate uniform random piece ids in batches instead of sampling the
                            model one token at a time (temperature 1, repeat penalty 1.1) */
    uint64_t seed;       /* sampling / random ids; 1 */
    int n_threads;       /* 0 = all CPUs */
    int n_batch;         /* tokens per decode call for text and random ids; 64 */
    float hot_share;     /* the share of activations that defines the hot set; 0.8 */
};
struct pinfer_profile_params pinfer_profile_default_params(void);

struct pinfer_profile_layer {
    int n_ff;
    double active_frac;                    /* mean fraction of non-zero neurons per token */
    double active_frac_min, active_frac_max; /* over tokens */
    double hot_frac;      /* smallest fraction of neurons carrying hot_share of activations (count) */
    double hot_frac_mag;  /* the same, activations weighted by |value| */
    double overlap;       /* sum |A_t ∩ A_t-1| / sum |A_t| over consecutive tokens */
    double new_vs_window5; /* share of a token's active neurons not active in the 5 tokens before */
    double lru_hit_at_50; /* hit rate of an LRU of single neurons holding half the layer */
    double up_given_gate; /* dReLU: P(up > 0 | gate > 0); NaN for other activations */
    double abs_mean;      /* mean |activation| */
    double abs_q[6];      /* |activation| quantiles at 0.1 0.25 0.5 0.75 0.9 0.99, zeros included */
    float *freq;          /* (n_ff) fraction of tokens each neuron was active on; mixture of
                             experts: (n_expert, n_ff), each expert's over the tokens routed to it */
    /* Mixture of experts (n_expert > 0; NULL / NaN for dense models). The figures above are
     * then over all (token, chosen expert) rows: sparsity pooled over them, min..max over rows,
     * hot the mean of the experts' own hot fractions, |activation| over all rows; the temporal
     * ones (overlap, new_vs_window5, lru_hit_at_50) and up_given_gate are not measured (NaN). */
    int n_expert;
    double *expert_share;    /* (n_expert) share of the layer's (token, choice) pairs routed to
                                each expert: sums to 1 */
    double *expert_sparsity; /* (n_expert) fraction of the expert's neurons inactive, over the
                                tokens routed to it; NaN for an expert no token chose */
    double *expert_hot;      /* (n_expert) hot fraction of each expert's own neurons */
    double expert_repeat;    /* fraction of consecutive token pairs with the same first choice */
};

struct pinfer_profile {
    int n_layer, n_tokens;
    enum pinfer_act act;
    float hot_share;
    const char *source;   /* "text", "sample" or "random" */
    double seconds;       /* wall time of the forward passes */
    int n_expert, n_expert_used; /* mixture of experts; 0 for dense models */
    struct pinfer_profile_layer *layers; /* n_layer */
};

/* Runs the model over the tokens params ask for and measures its FFN activations, layer by
 * layer. On success *out is owned by the caller (pinfer_profile_free). */
int pinfer_profile_run(struct pinfer_profile **out, struct pinfer_model *model,
                       const struct pinfer_profile_params *params);
void pinfer_profile_free(struct pinfer_profile *prof);
/* The whole model: means over layers (NaN when a layer has none) and the spread of sparsity. */
struct pinfer_profile_overall {
    double sparsity, sparsity_min, sparsity_max; /* mean, least and most sparse layer */
    double hot_frac, overlap, new_vs_window5, lru_hit_at_50, up_given_gate;
    /* mixture of experts (NaN for dense models): the extremes of expert_share and
     * expert_sparsity over all layers and experts, the mean of expert_repeat over layers and
     * its extremes */
    double expert_share_min, expert_share_max, expert_sparsity_min, expert_sparsity_max;
    double expert_repeat, expert_repeat_min, expert_repeat_max;
};
void pinfer_profile_overall(const struct pinfer_profile *prof, struct pinfer_profile_overall *out);
/* Writes the profile as JSON to path ("-" = stdout), atomically for files. The model (may be
 * NULL) adds its description and any pinfer.synth.* request; neurons adds every layer's
 * per-neuron frequencies. */
int pinfer_profile_write_json(const struct pinfer_profile *prof, const struct pinfer_model *model,
                              const char *path, bool neurons);

/* ==== Prepared models (pinfer prepare; format in docs/sparse-format.md) ==== */

struct pinfer_prepare_params {
    const char *text;     /* calibration text (BOS added); NULL: the model samples its own */
    size_t text_len;
    int n_tokens;         /* tokens to sample without text; with text, a cap (0 = all); 512 */
    bool random_tokens;   /* without text: uniform random token ids decoded in batches instead of
                             the model's own samples one at a time (much faster on a model
                             larger than memory; for synthetic models, the token law synth and
                             pinfer bench use) */
    uint64_t seed;        /* sampling, predictor initialisation and minibatch order; 1 */
    int cluster_size;     /* neurons per cluster; 0 = the smallest page-aligned multiple >= 16 (at most n_ff) */
    int rank;             /* predictor rank for every layer; 0 = chosen per layer */
    float recall_target;  /* held-out recall every predictor must reach; 0.99 */
    enum pinfer_placement { PINFER_PLACE_FREQ = 0, PINFER_PLACE_COACT } placement;
                          /* slot order: hottest first (FREQ), or hotness by buckets of 512 slots
                             and, inside each, neurons that fire together stored together (COACT;
                             docs/sparse-format.md "Placement") */
    int train_steps;      /* most Adam steps per predictor (early stopping may take fewer); 0 = default
                             (300), -1 = none (initialisation only) */
    int n_threads;        /* 0 = all CPUs */
    bool progress;        /* progress bar on stderr */
};
struct pinfer_prepare_params pinfer_prepare_default_params(void);

struct pinfer_prepare_layer {
    int rank;             /* 0 = no predictor (SiLU/GeLU models: threshold mode is decided at run time) */
    int steps;            /* Adam steps the chosen predictor took before early stopping (its best
                             weights may be earlier ones, or the untrained initialisation) */
    float threshold, recall, precision; /* recall and precision on held-out tokens */
    double active_frac;   /* fraction of neurons really active on held-out tokens; without a
                             predictor, the fraction "on" over all tokens (docs/sparse-format.md) */
    double pred_frac;     /* fraction predicted active on held-out tokens (1 without a predictor) */
    uint64_t pred_bytes;  /* fc1 + fc2 */
    uint64_t ffn_bytes;   /* the unit's bundles */
    int layer, expert;    /* the unit: a layer (expert -1), or an expert of a mixture's layer */
    int rows;             /* calibration tokens that ran it (all, or those routed to the expert) */
    double share;         /* rows / calibration tokens (1 for a dense layer; a layer's experts sum
                             to experts used per token) */
};

struct pinfer_prepare_result {
    int n_layer, n_tokens, n_heldout, cluster_size;
    int n_expert;          /* 0: dense */
    int n_units;           /* entries of layers: n_layer, or n_layer x n_expert (layer-major) */
    const char *source;    /* calibration tokens: "text" or "sample" */
    const char *predictor; /* "trained", "powerinfer" (imported from the input) or "none" */
    /* weight bytes one decode token reads: dense; sparse with the predicted sets (everything but
       the FFN + predictors + the predicted bundles); of that, the predictors */
    uint64_t bytes_dense, bytes_sparse, bytes_pred;
    uint64_t file_bytes;
    double seconds_profile, seconds_train, seconds_write;
    struct pinfer_prepare_layer *layers; /* n_units: a layer's, or an expert's of a mixture */
};

/* Reads the model at in_path, profiles it, trains predictors, and writes the prepared model to
 * out_path atomically (a temp file renamed into place; nothing is left on failure). On success
 * and when out is not NULL, *out receives a report owned by the caller
 * (pinfer_prepare_result_free). */
int pinfer_prepare(const char *in_path, const char *out_path, const struct pinfer_prepare_params *params,
                   struct pinfer_prepare_result **out);
void pinfer_prepare_result_free(struct pinfer_prepare_result *r);

#ifdef __cplusplus
}
#endif
#endif
