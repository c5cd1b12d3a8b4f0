/* pinfer bench --parallel: several sequences generated at once (bench_parallel.c). */
#ifndef PF_TOOLS_BENCH_PARALLEL_H
#define PF_TOOLS_BENCH_PARALLEL_H

#include "model_flags.h"
#include "pinfer.h"

/* One row per par[i] sequences: -n steps, reps repetitions, on n_threads threads (the flags'
 * context parameters otherwise). 0, or the exit code after printing the error. */
int bench_parallel(const char *cmd, const struct model_flags *mf, struct pinfer_model *m, const int *par, int n_par,
                   long n_gen, long reps, int n_threads);

/* Mean and sample standard deviation of x[0..n) (sd 0 for one value): every pinfer bench table. */
void bench_mean_sd(const double *x, int n, double *mean, double *sd);

#endif
