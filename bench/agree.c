/* Greedy agreement of a sparse mode with dense decode on the same prepared model (issue 12's
 * "predictor mode greedy agreement with dense over 256 tokens"):
 *
 *   agree -m PREPARED.gguf [-p "prompt"] [-n 256] [--mode predictor] [-t 2]
 *
 * Runs the prompt, then n greedy tokens with --sparse off (the reference) and, on a second
 * context, the same tokens teacher-forced through the sparse mode: prints where free-running
 * greedy decoding of the sparse mode first leaves the reference's sequence, the share of steps
 * whose next token (argmax) equals the reference's, and the sparse statistics of those steps. */
#include "pinfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static int fail(const char *what)
{
    fprintf(stderr, "agree: %s: %s\n", what, pinfer_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *prompt = "Once upon a time, there was a little", *mode_name = "predictor";
    int n = 256, threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-m") && v) { path = v; i++; }
        else if (!strcmp(a, "-p") && v) { prompt = v; i++; }
        else if (!strcmp(a, "-n") && v) { n = atoi(v); i++; }
        else if (!strcmp(a, "-t") && v) { threads = atoi(v); i++; }
        else if (!strcmp(a, "--mode") && v) { mode_name = v; i++; }
        else {
            fprintf(stderr, "usage: agree -m PREPARED.gguf [-p PROMPT] [-n 256] [--mode predictor|oracle] [-t 2]\n");
            return 2;
        }
    }
    enum pinfer_sparse_mode mode;
    if (!path || n < 1 || n > 8192 || pinfer_sparse_mode_parse(mode_name, &mode)) {
        fprintf(stderr, "agree: need -m, 1 <= n <= 8192 and a sparse mode\n");
        return 2;
    }
    struct pinfer_model *m = NULL;
    if (pinfer_model_load(&m, path, NULL)) return fail(path);
    const int V = pinfer_n_vocab(m);
    int32_t toks[512];
    int np = pinfer_tokenize(m, prompt, (int)strlen(prompt), true, toks, 512);
    if (np < 1 || np > 512) return fail("tokenize");
    struct pinfer_ctx *ref = NULL, *sp = NULL, *fr = NULL;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_threads = threads;
    cp.n_ctx = np + n + 1;
    if (pinfer_ctx_new(&ref, m, &cp)) return fail("context");
    cp.sparse = mode;
    if (pinfer_ctx_new(&sp, m, &cp) || pinfer_ctx_new(&fr, m, &cp)) return fail("context");
    int32_t *seq = malloc(sizeof *seq * (size_t)n);
    if (!seq) return 1;
    /* the reference, then the sparse mode teacher-forced on it */
    if (pinfer_decode(ref, toks, np, 0, false) || pinfer_decode(sp, toks, np, 0, false) || pinfer_decode(fr, toks, np, 0, false))
        return fail("prompt");
    pinfer_ctx_sparse_stats_reset(sp);
    int agree = 0, first = -1, free_first = -1;
    int32_t ft = argmax(pinfer_ctx_logits(fr, -1), V);
    for (int i = 0; i < n; i++) {
        seq[i] = argmax(pinfer_ctx_logits(ref, -1), V);
        const int32_t s = argmax(pinfer_ctx_logits(sp, -1), V);
        agree += s == seq[i];
        if (first < 0 && s != seq[i]) first = i;
        if (free_first < 0 && ft != seq[i]) free_first = i;
        if (pinfer_decode(ref, &seq[i], 1, np + i, false) || pinfer_decode(sp, &seq[i], 1, np + i, false)) return fail("decode");
        if (free_first < 0) { /* the sparse mode on its own tokens, while they still agree */
            if (pinfer_decode(fr, &ft, 1, np + i, false)) return fail("decode");
            ft = argmax(pinfer_ctx_logits(fr, -1), V);
        }
    }
    struct pinfer_sparse_stats st;
    pinfer_ctx_sparse_stats(sp, -1, &st);
    printf("%s: %d prompt tokens, %d greedy tokens of --sparse off\n", path, np, n);
    printf("  free-running --sparse %s: same tokens as off for the first %d (%s)\n", mode_name,
           free_first < 0 ? n : free_first, free_first < 0 ? "all of them" : "then it leaves the sequence");
    printf("  teacher-forced: next token equal to off's on %d of %d steps (%.1f%%); first difference at step %d\n", agree, n,
           100.0 * agree / n, first);
    printf("  sparse: predicted %.3f of neurons, computed non-zero %.3f, %.1f MB read per token\n", st.pred_frac,
           st.active_frac, st.bytes / 1e6);
    free(seq);
    pinfer_ctx_free(ref);
    pinfer_ctx_free(sp);
    pinfer_ctx_free(fr);
    pinfer_model_free(m);
    return 0;
}
