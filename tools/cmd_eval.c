/* pinfer eval: teacher-forced logits for given ids, one line per step in the format of
 * ../shared/models/stories260K/reference/devN.logits.txt:
 *   # n_vocab=V; one line per forward step: pos, input id, argmax id, then n_vocab logits
 *   pos id argmax l0 l1 ... (5 decimals)
 * Default: one token per forward step (decode path); --batch: all ids in one batch (prefill). */
#include "args.h"
#include "cmds.h"
#include "pinfer.h"
#include "sparse_flags.h"
#include "budget_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int cmd_eval(int argc, char **argv)
{
    const char *model_path = NULL, *ids_s = NULL, *logits_path = NULL, *v;
    long n_threads = 0, n_ctx = 0;
    bool batch = false;
    struct sparse_flags sfl;
    sparse_flags_init(&sfl);
    struct budget_flags bfl;
    budget_flags_init(&bfl);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        v = i + 1 < argc ? argv[i + 1] : NULL;
        int sf = sparse_flags_parse(C, argc, argv, &i, &sfl);
        if (sf == 0) sf = budget_flags_parse(C, argc, argv, &i, &bfl);
        if (sf < 0) return 2;
        if (sf > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: pinfer eval -m MODEL --ids \"1 403 ...\" --logits OUT.txt [--batch] [-t N] [-c N] [--sparse MODE]\n"
                   SPARSE_FLAGS_HELP BUDGET_FLAGS_HELP);
            return 0;
        }
        else if (!strcmp(a, "--batch")) batch = true;
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { ARGS_TAKE(); model_path = v; }
        else if (!strcmp(a, "--ids")) { ARGS_TAKE(); ids_s = v; }
        else if (!strcmp(a, "--logits")) { ARGS_TAKE(); logits_path = v; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 1024, &n_threads)) return 2; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { ARGS_TAKE(); if (!args_int(C, a, v, 0, 1 << 22, &n_ctx)) return 2; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (!model_path) return args_usage_error(C, "no model given (-m FILE)");
    if (!ids_s) return args_usage_error(C, "no ids given (--ids \"1 2 3\")");
    if (!logits_path) return args_usage_error(C, "no output given (--logits OUT.txt)");

    int rc = 1;
    int32_t *ids = NULL;
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *ctx = NULL;
    struct pinfer_outfile *of = NULL;
    struct pinfer_model_params mp = pinfer_model_default_params();
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    if (budget_flags_apply(C, &bfl, model_path, &mp, &cp)) { rc = 2; goto out; }
    if (pinfer_model_load(&m, model_path, &mp)) { args_pinfer_error(C); goto out; }
    int nv = pinfer_n_vocab(m);
    int n = parse_ids(ids_s, &ids, nv);
    if (n < 0) { rc = 2; goto out; }
    cp.n_threads = (int)n_threads;
    cp.n_ctx = (int)n_ctx;
    if (cp.n_ctx == 0) {
        struct pinfer_model_info info;
        pinfer_model_get_info(m, &info);
        cp.n_ctx = info.n_ctx_train > n ? info.n_ctx_train : n;
    }
    cp.n_batch = batch ? n : 1;
    if (n > cp.n_ctx) { args_error(C, "%d ids do not fit the context of %d tokens", n, cp.n_ctx); goto out; }
    sparse_flags_apply(&sfl, &cp);
    if (pinfer_ctx_new(&ctx, m, &cp)) { args_pinfer_error(C); goto out; }
    if (sparse_flags_calibrate(C, &sfl, m, ctx)) goto out;
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
