/* The flags that say which model to load and how to run it, shared by run, eval, bench and
 * perplexity (llama.cpp spellings), parsed once into one struct; the model load and context
 * creation from them; and the reports of what the context's sparse FFN and neuron cache did.
 *
 *   -m, --model FILE         every command
 *   --sparse MODE            every command: off | oracle | predictor | threshold (default off)
 *   --sparsity-target S      threshold mode: fraction of FFN neurons to skip (default 0.5)
 *   --calib FILE             threshold mode: calibrate the cuts on this text first
 *   --sparse-verify          also evaluate skipped neurons to report recall (slow)
 *   -t, --threads N          MODEL_FLAGS_THREADS (bench takes a list of its own)
 *   -c, --ctx-size N         MODEL_FLAGS_CTX (perplexity's -c is a chunk length of its own)
 *   --mmap, --no-mmap        MODEL_FLAGS_MMAP
 *   --mem-budget SIZE        MODEL_FLAGS_BUDGET (docs/offload.md): hard limit on what pinfer
 *                            holds: bytes with an optional K, M, G or T suffix (powers of 1024;
 *                            "MiB"/"GiB" spellings too), or P% of the model file's size. Needs a
 *                            prepared model.
 *   --io BACKEND             MODEL_FLAGS_BUDGET: direct reads through auto, uring or pread
 *   --cache-hot F            MODEL_FLAGS_BUDGET: share of the FFN memory pinned for hot neurons
 *
 * A command names the groups it takes; a flag outside them is left to the command, so it stays
 * an "unknown flag" there (or means something else, as bench's -t list). */
#ifndef PF_TOOLS_MODEL_FLAGS_H
#define PF_TOOLS_MODEL_FLAGS_H

#include "pinfer.h"
#include "plan_file.h"

#include <stdint.h>
#include <stdio.h>

enum model_flags_group {
    MODEL_FLAGS_THREADS = 1 << 0,
    MODEL_FLAGS_CTX = 1 << 1,
    MODEL_FLAGS_MMAP = 1 << 2,
    MODEL_FLAGS_BUDGET = 1 << 3,
    MODEL_FLAGS_BATCH = 1 << 4,   /* -b: the prompt batch (run, chat, serve) */
};

struct model_flags {
    unsigned groups;              /* MODEL_FLAGS_* this command takes, beyond -m and the sparse flags */
    const char *model;            /* -m; NULL until given */
    const char *calib;            /* --calib; NULL = none */
    const char *mem_budget;       /* --mem-budget as given: P% needs the file's size, so it is
                                     resolved by model_flags_load; NULL = none */
    struct pinfer_model_params mp; /* the library's defaults, plus --mmap */
    struct pinfer_ctx_params cp;   /* the library's defaults, plus -t, -c, the sparse and budget
                                      flags; the command sets the rest (n_batch, its own n_ctx)
                                      before model_flags_ctx_new */
    unsigned given;               /* bit per flag given on the command line (they win over --plan) */
    const char *plan_path;        /* --plan; NULL = none */
    bool has_plan;
    struct plan_file plan;        /* --plan's settings and predictions (model_flags_check reads it) */
    char plan_budget[32];         /* the plan's budget as a --mem-budget value */
};

/* A size as --mem-budget takes it (bytes, K/M/G/T suffix, or P% of file_size); false if
 * malformed. */
bool model_flags_size(const char *s, uint64_t file_size, uint64_t *out);

/* Defaults from pinfer_model_default_params / pinfer_ctx_default_params. */
void model_flags_init(struct model_flags *f, unsigned groups);
/* If argv[*i] is one of f's flags, consumes it (and its value) and returns 1; returns 0 if it is
 * not one; returns -1 after printing a usage error ("flag X needs a value", a bad value). */
int model_flags_parse(const char *cmd, int argc, char **argv, int *i, struct model_flags *f);
/* After the flag loop: reads --plan and applies its settings where no flag was given (saying
 * so on stderr); 0, or non-zero after printing the error: no model given (-m FILE), a plan that
 * cannot be read (callers exit 2: a usage error). */
int model_flags_check(const char *cmd, struct model_flags *f);
/* The help lines of f's flags, to stdout. */
void model_flags_help(const struct model_flags *f);

/* Loads f->model with --mmap and --mem-budget (resolved against the file's size). 0 and *m
 * (the caller frees it with pinfer_model_free), or the exit code after printing the error: 2
 * for a budget that cannot be resolved, 1 if the load fails. */
int model_flags_load(const char *cmd, const struct model_flags *f, struct pinfer_model **m);
/* --mem-budget in bytes, resolved as model_flags_load resolves it; 0 without one. */
uint64_t model_flags_budget_bytes(const struct model_flags *f);
/* Creates a context of m with f->cp and, with --calib, calibrates its threshold cuts on that
 * text. 0 and *ctx (the caller frees it with pinfer_ctx_free), or 1 after printing the error,
 * with *ctx NULL. */
int model_flags_ctx_new(const char *cmd, const struct model_flags *f, struct pinfer_model *m,
                        struct pinfer_ctx **ctx);

/* Prints ctx's sparse statistics to fp (nothing in mode off): one line, and with --sparse-verify
 * the recall of every layer. */
void model_flags_sparse_report(FILE *fp, const struct model_flags *f, const struct pinfer_model *m,
                               struct pinfer_ctx *ctx);
/* One line on the memory budget's plan and, for n_tok decode steps that took decode_s, one on
 * the neuron cache's counters (nothing without a budget). */
void model_flags_budget_report(FILE *fp, const struct pinfer_model *m, struct pinfer_ctx *ctx, uint64_t n_tok, double decode_s);

#endif
