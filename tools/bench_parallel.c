/* pinfer bench --parallel LIST: generation of several sequences at once, as pinfer serve's
 * slots run (llama-batched-bench's -npl). For each N: N contexts on one thread pool
 * (threads_from), each from BOS, then -n steps of pinfer_decode_multi carrying one token of each
 * (one pass over the weights where that pays, else the sequences one by one); mean ± sd over
 * -r repetitions after a warm-up. Prints the tokens per second of all sequences together and
 * that as a multiple of the N = 1 row: how much more a step of N sequences generates than one of
 * a single sequence. */
#include "bench_parallel.h"

#include "args.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void bench_mean_sd(const double *x, int n, double *mean, double *sd)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

/* reps runs (after a warm-up) of n_gen steps of n sequences; tokens per second into tps[]. */
static int run(const char *cmd, const struct model_flags *mf, struct pinfer_model *m, int n, long n_gen, long reps,
               double *tps)
{
    const int V = pinfer_n_vocab(m);
    struct pinfer_ctx **cs = calloc((size_t)n, sizeof *cs);
    int32_t *tok = malloc(sizeof *tok * (size_t)n);
    int *pos = malloc(sizeof *pos * (size_t)n);
    int rc = 0;
    if (!cs || !tok || !pos) { rc = args_error(cmd, "out of memory"); goto out; }
    struct model_flags f = *mf;
    f.cp.n_ctx = (int)n_gen + 1;
    f.cp.n_batch = n;
    for (int i = 0; i < n; i++) {
        f.cp.threads_from = i > 0 ? cs[0] : NULL;
        if (model_flags_ctx_new(cmd, &f, m, &cs[i])) { rc = 1; goto out; }
    }
    for (long r = -1; r < reps && !rc; r++) {
        const int32_t bos = pinfer_token_bos(m) >= 0 ? pinfer_token_bos(m) : 0;
        for (int i = 0; i < n; i++) { tok[i] = (int32_t)((bos + 97 * i) % V); pos[i] = 0; }
        double t0 = pinfer_now();
        for (long k = 0; k < n_gen; k++) {
            if (pinfer_decode_multi(cs, tok, pos, n)) { rc = args_pinfer_error(cmd); break; }
            for (int i = 0; i < n; i++) { tok[i] = (int32_t)((tok[i] * 31 + 7 + i) % V); pos[i]++; }
        }
        if (r >= 0) tps[r] = (double)n * (double)n_gen / (pinfer_now() - t0);
    }
out:
    for (int i = n - 1; cs && i >= 0; i--) pinfer_ctx_free(cs[i]); /* the pool's owner last */
    free(cs);
    free(tok);
    free(pos);
    return rc;
}

int bench_parallel(const char *cmd, const struct model_flags *mf, struct pinfer_model *m, const int *par, int n_par,
                   long n_gen, long reps, int n_threads)
{
    double *tps = calloc((size_t)reps, sizeof *tps), base = 0;
    if (!tps) return args_error(cmd, "out of memory");
    printf("\n| threads | sequences | test | t/s (all sequences) | t/s per sequence | vs 1 sequence |\n");
    printf("| ---: | ---: | --- | ---: | ---: | ---: |\n");
    int rc = 0;
    for (int p = 0; p < n_par && !rc; p++) {
        if ((rc = run(cmd, mf, m, par[p], n_gen, reps, tps))) break;
        double mean, sd;
        bench_mean_sd(tps, (int)reps, &mean, &sd);
        if (par[p] == 1) base = mean;
        char vs[32] = "";
        if (base > 0) snprintf(vs, sizeof vs, "%.2fx", mean / base);
        printf("| %d | %d | tg%ld x%d | %.2f ± %.2f | %.2f | %s |\n", n_threads, par[p], n_gen, par[p], mean, sd,
               mean / par[p], vs);
        fflush(stdout);
    }
    free(tps);
    return rc;
}
