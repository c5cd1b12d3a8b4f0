/* pinfer perplexity: llama.cpp-style chunked perplexity of a text (pinfer_perplexity: chunks of
 * -c tokens, second half of each scored). With --sparse MODE it measures the mode's cost in
 * quality: the dense model and the sparse mode both run one token per step (the path sparse
 * modes act on; batches are always dense), and the delta is printed. Threshold mode calibrates
 * its cuts on --calib FILE, or else on the first chunk of the text itself (the cuts are one
 * number per layer, so the leak is small; pass --calib for a clean split). */
#include "args.h"
#include "cmds.h"
#include "model_flags.h"
#include "pinfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *C = "perplexity";

static void help(const struct model_flags *mf)
{
    printf("usage: pinfer perplexity -m MODEL -f TEXT [options]\n");
    model_flags_help(mf);
    printf("  -f, --file FILE         text to score\n"
           "  -c, --ctx-size N        chunk length in tokens (default 512, at most the model's context)\n");
}

/* One run with a context of f's flags; one token per step when `steps`. */
static int run_ppl(struct pinfer_model *m, const struct model_flags *f, const int32_t *ids, int n, bool steps,
                   struct pinfer_ppl_result *r)
{
    struct pinfer_ctx *ctx = NULL;
    if (model_flags_ctx_new(C, f, m, &ctx)) return 1;
    int rc = 0;
    const int n_calib = n < f->cp.n_ctx ? n : f->cp.n_ctx;
    if (f->cp.sparse == PINFER_SPARSE_THRESHOLD && !f->calib && pinfer_ctx_calibrate(ctx, ids, n_calib))
        rc = args_error(C, "calibrating: %s", pinfer_last_error());
    if (!rc && pinfer_perplexity(ctx, ids, n, steps, r)) rc = args_pinfer_error(C);
    if (!rc) model_flags_sparse_report(stdout, f, m, ctx);
    pinfer_ctx_free(ctx);
    return rc;
}

int cmd_perplexity(int argc, char **argv)
{
    const char *text_path = NULL;
    long n_ctx = 512; /* -c is a chunk length here, with its own default and range */
    struct model_flags mf;
    model_flags_init(&mf, MODEL_FLAGS_THREADS);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int took = model_flags_parse(C, argc, argv, &i, &mf);
        if (took < 0) return 2;
        if (took) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(&mf); return 0; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { ARGS_TAKE(); text_path = v; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { ARGS_TAKE(); if (!args_int(C, a, v, 4, 1 << 20, &n_ctx)) return 2; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (model_flags_check(C, &mf)) return 2;
    if (!text_path) return args_usage_error(C, "no text given (-f FILE)");

    int rc = 1;
    size_t len;
    int32_t *ids = NULL;
    struct pinfer_model *m = NULL;
    char *text = args_read_file(C, text_path, &len);
    if (!text) return 1;
    int lrc = model_flags_load(C, &mf, &m);
    if (lrc) { rc = lrc; goto out; }
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    if (n_ctx > info.n_ctx_train) n_ctx = info.n_ctx_train;
    int n = pinfer_tokenize(m, text, len, true, NULL, 0);
    if (n < 0) { args_pinfer_error(C); goto out; }
    if (!(ids = malloc(sizeof *ids * (size_t)(n > 0 ? n : 1)))) { args_error(C, "out of memory"); goto out; }
    n = pinfer_tokenize(m, text, len, true, ids, n);
    if (n < n_ctx) { args_error(C, "%s has %d tokens; perplexity needs at least one chunk of -c %ld", text_path, n, n_ctx); goto out; }
    char desc[256];
    printf("model: %s\ntext: %s, %d tokens, %d chunks of %ld\n", pinfer_model_desc(m, desc, sizeof desc), text_path, n,
           (int)(n / n_ctx), n_ctx);

    const bool steps = mf.cp.sparse != PINFER_SPARSE_OFF;
    mf.cp.n_ctx = (int)n_ctx;
    mf.cp.n_batch = steps ? 1 : (int)n_ctx;
    if (mf.cp.sparse != PINFER_SPARSE_THRESHOLD) mf.calib = NULL; /* read by threshold mode alone */
    struct model_flags dense = mf;
    dense.cp.sparse = PINFER_SPARSE_OFF;
    dense.calib = NULL;
    struct pinfer_ppl_result rd, rs;
    double t0 = pinfer_now();
    if (run_ppl(m, &dense, ids, n, steps, &rd)) goto out;
    printf("PPL dense: %.4f (%d tokens scored, %s, %.1f s)\n", rd.ppl, rd.n_scored, steps ? "one token per step" : "batched",
           pinfer_now() - t0);
    if (steps) {
        t0 = pinfer_now();
        if (run_ppl(m, &mf, ids, n, true, &rs)) goto out;
        char what[64];
        if (mf.cp.sparse == PINFER_SPARSE_THRESHOLD) snprintf(what, sizeof what, "threshold %.2f", (double)mf.cp.sparsity_target);
        else snprintf(what, sizeof what, "%s", pinfer_sparse_mode_name(mf.cp.sparse));
        printf("PPL %s: %.4f (%.1f s)\n", what, rs.ppl, pinfer_now() - t0);
        printf("PPL delta: %+.4f (%+.2f%%)\n", rs.ppl - rd.ppl, 100.0 * (rs.ppl - rd.ppl) / rd.ppl);
    }
    rc = 0;
out:
    pinfer_model_free(m);
    free(ids);
    free(text);
    return rc;
}
