/* pinfer eval: teacher-forced logits for given ids, one line per step in the format of
 * ../shared/models/stories260K/reference/devN.logits.txt:
 *   # n_vocab=V; one line per forward step: pos, input id, argmax id, then n_vocab logits
 *   pos id argmax l0 l1 ... (5 decimals)
 * Default: one token per forward step (decode path); --batch: all ids in one batch (prefill). */
#include "args.h"
#include "cmds.h"
#include "model_flags.h"
#include "pinfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *C = "eval";

static int parse_ids(const char *s, int32_t **out, int n_vocab)
{
    int cap = 64, n = 0;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    const char *p = s;
    while (ids) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= n_vocab) {
            free(ids);
            args_usage_error(C, "--ids: '%.20s' is not a token id in 0..%d", p, n_vocab - 1);
            return -1;
        }
        if (n == cap) {
            int32_t *nb = realloc(ids, sizeof *ids * (size_t)(cap *= 2));
            if (!nb) { free(ids); ids = NULL; break; }
            ids = nb;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (!ids) { args_error(C, "out of memory"); return -1; }
    if (n == 0) { free(ids); args_usage_error(C, "--ids is empty"); return -1; }
    *out = ids;
    return n;
}

static void help(const struct model_flags *mf)
{
    printf("usage: pinfer eval -m MODEL --ids \"1 403 ...\" --logits OUT.txt [--batch] [-t N] [-c N] [--sparse MODE]\n");
    model_flags_help(mf);
    printf("      --ids LIST          token ids, separated by spaces or commas\n"
           "      --logits FILE       where the logits go, one line per step\n"
           "      --batch             all ids in one batch (prefill) instead of one per step\n");
}

int cmd_eval(int argc, char **argv)
{
    const char *ids_s = NULL, *logits_path = NULL;
    bool batch = false;
    struct model_flags mf;
    model_flags_init(&mf, MODEL_FLAGS_THREADS | MODEL_FLAGS_CTX | MODEL_FLAGS_BUDGET);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int took = model_flags_parse(C, argc, argv, &i, &mf);
        if (took < 0) return 2;
        if (took) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(&mf); return 0; }
        else if (!strcmp(a, "--batch")) batch = true;
        else if (!strcmp(a, "--ids")) { ARGS_TAKE(); ids_s = v; }
        else if (!strcmp(a, "--logits")) { ARGS_TAKE(); logits_path = v; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (model_flags_check(C, &mf)) return 2;
    if (!ids_s) return args_usage_error(C, "no ids given (--ids \"1 2 3\")");
    if (!logits_path) return args_usage_error(C, "no output given (--logits OUT.txt)");
    struct stat sm, sl; /* the logits would replace the model (as prepare refuses its input) */
    if (mf.model && stat(mf.model, &sm) == 0 && stat(logits_path, &sl) == 0 && sm.st_dev == sl.st_dev && sm.st_ino == sl.st_ino)
        return args_usage_error(C, "--logits %s is the model file; write the logits elsewhere", logits_path);

    int rc = 1;
    int32_t *ids = NULL;
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *ctx = NULL;
    struct pinfer_outfile *of = NULL;
    int lrc = model_flags_load(C, &mf, &m);
    if (lrc) { rc = lrc; goto out; }
    int nv = pinfer_n_vocab(m);
    int n = parse_ids(ids_s, &ids, nv);
    if (n < 0) { rc = 2; goto out; }
    if (mf.cp.n_ctx == 0) { /* the whole training context (more for more ids), not run's cap */
        struct pinfer_model_info info;
        pinfer_model_get_info(m, &info);
        mf.cp.n_ctx = info.n_ctx_train > n ? info.n_ctx_train : n;
    }
    mf.cp.n_batch = batch ? n : 1;
    if (n > mf.cp.n_ctx) { args_error(C, "%d ids do not fit the context of %d tokens", n, mf.cp.n_ctx); goto out; }
    if (model_flags_ctx_new(C, &mf, m, &ctx)) goto out;
    if (pinfer_outfile_open(&of, logits_path)) { args_pinfer_error(C); goto out; }
    FILE *fp = pinfer_outfile_stream(of);
    fprintf(fp, "# n_vocab=%d; one line per forward step: pos, input id, argmax id, then n_vocab logits\n", nv);
    if (batch && pinfer_decode(ctx, ids, n, 0, true)) { args_pinfer_error(C); goto out; }
    for (int t = 0; t < n; t++) {
        if (!batch && pinfer_decode(ctx, ids + t, 1, t, false)) { args_pinfer_error(C); goto out; }
        const float *lg = pinfer_ctx_logits(ctx, batch ? t : -1);
        int am = 0;
        for (int i = 1; i < nv; i++) if (lg[i] > lg[am]) am = i;
        fprintf(fp, "%d %d %d", t, ids[t], am);
        for (int i = 0; i < nv; i++) fprintf(fp, " %.5f", lg[i]);
        fputc('\n', fp);
    }
    int crc = pinfer_outfile_commit(of);
    of = NULL;
    if (crc) { args_pinfer_error(C); goto out; }
    rc = 0;
out:
    pinfer_outfile_abort(of);
    pinfer_ctx_free(ctx);
    pinfer_model_free(m);
    free(ids);
    return rc;
}
