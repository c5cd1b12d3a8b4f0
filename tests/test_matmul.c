/* pf_matmul against per-row reference dots: every kernel table this CPU runs, 1..3 threads,
 * batch sizes that hit the matvec path, ragged gemm tiles and full tiles, row counts that do not
 * divide into the per-thread grain, matrices of many row chunks (claimed and stolen by threads). The output rows around y are poisoned to catch stray writes. */
#include "tensor/matmul.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define TOL_MATMUL_VS_REF 1e-5 /* relative to sum |w_i x_i|, as in test_kernels */

static unsigned long long rng = 12345;

static void run_case(const struct pf_kernels *k, struct pf_pool *pool, int type, int64_t n_in,
                     int64_t n_out, int n_tok)
{
    const struct pf_kernels *ref = &pf_kernels_ref;
    int xt = pf_type_get(type)->vec_dot_type;
    size_t wrow, xrow;
    CHECK(pf_row_size(type, n_in, &wrow) && pf_row_size(xt, n_in, &xrow));
    float *f = malloc((size_t)n_in * sizeof *f);
    char *w = malloc(wrow * (size_t)n_out);
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++) f[i] = tu_randf(&rng) * (1.0f + (float)(r % 7));
        ref->from_f32[type](f, w + (size_t)r * wrow, n_in);
    }
    float *x = malloc((size_t)n_in * (size_t)n_tok * sizeof *x);
    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = tu_randf(&rng);
    size_t ys = (size_t)n_out * (size_t)n_tok;
    float *ybuf = malloc((ys + 32) * sizeof *ybuf), *y = ybuf + 16;
    for (size_t i = 0; i < ys + 32; i++) ybuf[i] = NAN;
    size_t ss = pf_matmul_scratch_size(type, n_in, n_tok);
    CHECK(ss != SIZE_MAX);
    void *scratch = malloc(ss);
    pf_matmul_k(k, pool, y, w, type, n_in, n_out, x, n_tok, scratch);

    char *xq = malloc(xrow);
    float *deq_w = malloc((size_t)n_in * sizeof *deq_w), *deq_x = malloc((size_t)n_in * sizeof *deq_x);
    int bad = 0;
    for (int t = 0; t < n_tok; t++) {
        ref->from_f32[xt](x + (size_t)t * n_in, xq, n_in);
        ref->dequant[xt](xq, deq_x, n_in);
        for (int64_t r = 0; r < n_out; r++) {
            float want = ref->dot[type](w + (size_t)r * wrow, xq, n_in);
            ref->dequant[type](w + (size_t)r * wrow, deq_w, n_in);
            double sabs = 0;
            for (int64_t i = 0; i < n_in; i++) sabs += fabs((double)deq_w[i] * deq_x[i]);
            float got = y[(size_t)t * n_out + r];
            if (!(fabs((double)got - want) <= TOL_MATMUL_VS_REF * sabs + 1e-30) && bad++ < 3)
                fprintf(stderr, "%s %s n_in=%lld n_out=%lld n_tok=%d threads=%d: y[%d][%lld] = %g, want %g\n",
                        k->name, pf_type_name(type), (long long)n_in, (long long)n_out, n_tok,
                        pf_pool_size(pool), t, (long long)r, got, want);
        }
    }
    CHECKF(bad == 0, "%s %s n_in=%lld n_out=%lld n_tok=%d threads=%d: %d wrong", k->name,
           pf_type_name(type), (long long)n_in, (long long)n_out, n_tok, pf_pool_size(pool), bad);
    for (int i = 0; i < 16; i++) CHECK(isnan(ybuf[i]) && isnan(y[ys + (size_t)i]));
    free(f); free(w); free(x); free(ybuf); free(scratch); free(xq); free(deq_w); free(deq_x);
}

int main(void)
{
    const int types[] = { PF_TYPE_Q4_0, PF_TYPE_Q8_0, PF_TYPE_F16, PF_TYPE_BF16, PF_TYPE_F32 };
    const int toks[] = { 1, 3, 17, 64 };
    const char *names[] = { "ref", "avx2", "avx512" };
    for (int nth = 1; nth <= 3; nth++) {
        struct pf_pool *pool;
        CHECK(pf_pool_new(&pool, nth) == 0);
        for (size_t v = 0; v < sizeof names / sizeof *names; v++) {
            const struct pf_kernels *k = pf_kernels_get(names[v]);
            if (!k) continue;
            for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++)
                for (size_t b = 0; b < sizeof toks / sizeof *toks; b++) {
                    run_case(k, pool, types[ti], 256, 83, toks[b]);
                    if (toks[b] <= 17) run_case(k, pool, types[ti], 32 * 37, 40, toks[b]);
                }
            run_case(k, pool, PF_TYPE_Q4_0, 4096, 64, 64);
            run_case(k, pool, PF_TYPE_Q4_0, 4096, 131, 1);
            run_case(k, pool, PF_TYPE_Q4_0, 96, 5, 130);
            /* many chunks per thread: threads claim and steal chunks concurrently */
            run_case(k, pool, PF_TYPE_Q4_0, 64, 1000, 1);
            run_case(k, pool, PF_TYPE_Q4_0, 64, 1000, 5);
            run_case(k, pool, PF_TYPE_F16, 32, 700, 2);
        }
        pf_pool_free(pool);
    }
    /* pool NULL runs on the caller */
    run_case(pf_kernels(), NULL, PF_TYPE_Q4_0, 128, 9, 2);
    CHECK(pf_matmul_scratch_size(PF_TYPE_Q4_0, 33, 1) == SIZE_MAX);
    CHECK(pf_matmul_scratch_size(77, 32, 1) == SIZE_MAX);
    TEST_DONE();
}
