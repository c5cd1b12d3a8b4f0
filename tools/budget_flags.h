/* The memory-budget flags shared by run and bench (docs/offload.md):
 *   --mem-budget SIZE   hard limit on what pinfer holds: bytes with an optional K, M, G or T
 *                       suffix (powers of 1024; "MiB"/"GiB" spellings too), or P% of the model
 *                       file's size. Needs a prepared model.
 *   --io BACKEND        direct reads through auto (default), uring or pread
 *   --cache-hot F       share of the FFN memory pinned for the hottest neurons (default 0.9)
 * and the report of what the neuron cache did. */
#ifndef PF_TOOLS_BUDGET_FLAGS_H
#define PF_TOOLS_BUDGET_FLAGS_H

#include "pinfer.h"

#include <stdio.h>

struct budget_flags {
    const char *budget;       /* as given; resolved against the model file by budget_flags_apply */
    enum pinfer_io_backend io;
    float cache_hot;
};

#define BUDGET_FLAGS_HELP \
    "      --mem-budget SIZE   hard memory limit: bytes, K/M/G suffix, or P%% of the model file;\n" \
    "                          the FFN stays in the file and a neuron cache serves it (prepared models)\n" \
    "      --io BACKEND        direct reads under a budget: auto, uring, pread (default auto)\n" \
    "      --cache-hot F       under a budget: share of FFN memory pinned for hot neurons (0.9)\n"

void budget_flags_init(struct budget_flags *f);
/* As sparse_flags_parse: 1 consumed, 0 not ours, -1 usage error printed. */
int budget_flags_parse(const char *cmd, int argc, char **argv, int *i, struct budget_flags *f);
/* Resolves --mem-budget for the model file into mp; sets the context fields. 0, or 2 after a
 * usage error. */
int budget_flags_apply(const char *cmd, const struct budget_flags *f, const char *model_path,
                       struct pinfer_model_params *mp, struct pinfer_ctx_params *cp);
/* Parses SIZE as --mem-budget does (file_size for P%); false if malformed. */
bool budget_parse_size(const char *s, uint64_t file_size, uint64_t *out);
/* One line on the plan and the cache's counters for n_tok decode steps (nothing without a
 * budget). */
void budget_flags_report(FILE *fp, struct pinfer_ctx *ctx, uint64_t n_tok, double decode_s);

#endif
