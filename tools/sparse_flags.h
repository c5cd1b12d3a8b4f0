/* The sparse-FFN flags shared by run, bench, eval and perplexity:
 *   --sparse MODE            off | oracle | predictor | threshold (default off)
 *   --sparsity-target S      threshold mode: fraction of FFN neurons to skip (default 0.5)
 *   --calib FILE             threshold mode: calibrate the cuts on this text first
 *   --sparse-verify          also evaluate skipped neurons to report recall (slow) */
#ifndef PF_TOOLS_SPARSE_FLAGS_H
#define PF_TOOLS_SPARSE_FLAGS_H

#include "pinfer.h"

struct sparse_flags {
    enum pinfer_sparse_mode mode;
    float target;
    const char *calib;
    bool verify;
};

#define SPARSE_FLAGS_HELP \
    "      --sparse MODE       FFN of generated tokens: off, oracle, predictor, threshold (default off)\n" \
    "      --sparsity-target S threshold mode: fraction of FFN neurons to skip (default 0.5)\n" \
    "      --calib FILE        threshold mode: calibrate the per-layer cuts on this text\n" \
    "      --sparse-verify     also evaluate skipped neurons to report recall (slow)\n"

void sparse_flags_init(struct sparse_flags *f);
/* If argv[*i] is one of the flags, consumes it (and its value) and returns 1; returns 0 if it
 * is not one; returns -1 after printing a usage error for a bad value. */
int sparse_flags_parse(const char *cmd, int argc, char **argv, int *i, struct sparse_flags *f);
void sparse_flags_apply(const struct sparse_flags *f, struct pinfer_ctx_params *cp);
/* With --calib: reads and tokenizes the file and calibrates ctx. 0 or 1 (error printed). */
int sparse_flags_calibrate(const char *cmd, const struct sparse_flags *f, struct pinfer_model *m,
                           struct pinfer_ctx *ctx);
/* Prints the context's sparse statistics to fp (nothing in mode off): one line, and with
 * --sparse-verify the recall of every layer. */
void sparse_flags_report(FILE *fp, const struct sparse_flags *f, const struct pinfer_model *m, struct pinfer_ctx *ctx);

#endif
