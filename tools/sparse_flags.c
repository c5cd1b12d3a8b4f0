/* Parsing and reporting of the sparse-FFN flags (sparse_flags.h). */
#include "sparse_flags.h"

#include "args.h"

#include <stdlib.h>
#include <string.h>

void sparse_flags_init(struct sparse_flags *f)
{
    struct pinfer_ctx_params d = pinfer_ctx_default_params();
    f->mode = d.sparse;
    f->target = d.sparsity_target;
    f->calib = NULL;
    f->verify = false;
}

int sparse_flags_parse(const char *cmd, int argc, char **argv, int *i, struct sparse_flags *f)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "--sparse-verify")) { f->verify = true; return 1; }
    if (strcmp(a, "--sparse") && strcmp(a, "--sparsity-target") && strcmp(a, "--calib")) return 0;
    if (!v) { args_usage_error(cmd, "flag %s needs a value", a); return -1; }
    ++*i;
    if (!strcmp(a, "--sparse")) {
        if (pinfer_sparse_mode_parse(v, &f->mode)) { args_usage_error(cmd, "%s", pinfer_last_error()); return -1; }
    } else if (!strcmp(a, "--sparsity-target")) {
        if (!args_float(cmd, a, v, 0, 0.999, &f->target)) return -1;
    } else {
        f->calib = v;
    }
    return 1;
}

void sparse_flags_apply(const struct sparse_flags *f, struct pinfer_ctx_params *cp)
{
    cp->sparse = f->mode;
    cp->sparsity_target = f->target;
    cp->sparse_verify = f->verify;
}

int sparse_flags_calibrate(const char *cmd, const struct sparse_flags *f, struct pinfer_model *m,
                           struct pinfer_ctx *ctx)
{
    if (!f->calib) return 0;
    if (f->mode != PINFER_SPARSE_THRESHOLD) return args_error(cmd, "--calib is for --sparse threshold");
    size_t len;
    char *text = args_read_file(cmd, f->calib, &len);
    if (!text) return 1;
    int n = pinfer_tokenize(m, text, len, true, NULL, 0);
    int32_t *ids = n > 0 ? malloc(sizeof *ids * (size_t)n) : NULL;
    int rc = 0;
    if (n <= 0 || !ids) rc = args_error(cmd, "%s: %s", f->calib, n < 0 ? pinfer_last_error() : n == 0 ? "no tokens" : "out of memory");
    else if ((n = pinfer_tokenize(m, text, len, true, ids, n)) < 0 || pinfer_ctx_calibrate(ctx, ids, n))
        rc = args_error(cmd, "calibrating on %s: %s", f->calib, pinfer_last_error());
    free(ids);
    free(text);
    return rc;
}

void sparse_flags_report(FILE *fp, const struct sparse_flags *f, const struct pinfer_model *m, struct pinfer_ctx *ctx)
{
    struct pinfer_sparse_stats s;
    if (f->mode == PINFER_SPARSE_OFF || pinfer_ctx_sparse_stats(ctx, -1, &s) || s.n_tokens == 0) return;
    fprintf(fp, "pinfer: sparse %s: %.1f MB read per token (predictors %.1f MB); per layer: gate %.1f%%, up %.1f%%, "
                "down %.1f%% of neurons",
            pinfer_sparse_mode_name(f->mode), s.bytes / 1e6, s.pred_bytes / 1e6, 100 * s.gate_frac, 100 * s.up_frac,
            100 * s.down_frac);
    if (s.cluster_frac >= 0) fprintf(fp, ", clusters %.1f%%", 100 * s.cluster_frac);
    if (s.pred_frac >= 0) fprintf(fp, ", predicted %.1f%%", 100 * s.pred_frac);
    fprintf(fp, ", computed non-zero %.1f%%", 100 * s.active_frac);
    if (s.true_frac >= 0) fprintf(fp, ", truly non-zero %.1f%%", 100 * s.true_frac);
    if (s.recall >= 0 && f->mode != PINFER_SPARSE_ORACLE) fprintf(fp, ", recall %.4f", s.recall);
    if (s.precision >= 0 && f->mode == PINFER_SPARSE_PREDICTOR) fprintf(fp, ", precision %.4f", s.precision);
    if (f->mode == PINFER_SPARSE_THRESHOLD) fprintf(fp, ", mean cut %.4g", s.threshold);
    fputc('\n', fp);
    if (!f->verify || f->mode == PINFER_SPARSE_ORACLE) return;
    /* per-layer recall (and precision) of the neurons the mode chose */
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    double lo = 2;
    int worst = -1;
    fprintf(fp, "pinfer: per-layer recall%s:", f->mode == PINFER_SPARSE_PREDICTOR ? " / precision" : " (L1 mass)");
    for (int l = 0; l < info.n_layer; l++) {
        struct pinfer_sparse_stats sl;
        if (pinfer_ctx_sparse_stats(ctx, l, &sl)) break;
        if (f->mode == PINFER_SPARSE_PREDICTOR) fprintf(fp, " %d:%.4f/%.3f", l, sl.recall, sl.precision);
        else fprintf(fp, " %d:%.4f", l, sl.recall);
        if (sl.recall < lo) { lo = sl.recall; worst = l; }
    }
    fprintf(fp, "\npinfer: lowest recall %.4f (layer %d)\n", lo, worst);
}
