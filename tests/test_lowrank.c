/* pf_lowrank_right (randomized SVD of stacked quantized matrices, src/prepare/lowrank.c)
 * against the obvious reference: the dequantized stack M with scaled columns, M^T M formed in
 * double, and its eigenvectors by the Jacobi solver (itself checked on a matrix whose eigenpairs
 * are known). The weights have a planted spectrum (singular values 40, 36, 32, ... then a noise
 * floor), so the top vectors are well separated and the randomized ones must match them. */
#include "core/threadpool.h"
#include "model/model.h"
#include "prepare/lowrank.h"
#include "tensor/kernels.h"
#include "tensor/types.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define N_IN 256
#define K_TOP 12

/* A quantized weight of rows x N_IN: sum_j s_j u_j v_j^T + noise, rows of Q8_0. */
static void make_weight(struct pf_weight *w, int rows, const float *v, const float *s, int ns, unsigned long long *st)
{
    size_t rs;
    pf_row_size(PF_TYPE_Q8_0, N_IN, &rs);
    float *row = malloc(sizeof *row * N_IN), *u = malloc(sizeof *u * (size_t)rows * ns);
    for (size_t e = 0; e < (size_t)rows * ns; e++) u[e] = tu_randf(st) / sqrtf((float)rows / 3.0f);
    char *data = malloc(rs * (size_t)rows);
    for (int i = 0; i < rows; i++) {
        for (int e = 0; e < N_IN; e++) row[e] = 0.05f * tu_randf(st);
        for (int j = 0; j < ns; j++)
            for (int e = 0; e < N_IN; e++) row[e] += s[j] * u[(size_t)i * ns + j] * v[(size_t)j * N_IN + e];
        pf_kernels_ref.from_f32[PF_TYPE_Q8_0](row, data + (size_t)i * rs, N_IN);
    }
    memset(w, 0, sizeof *w);
    w->data = data;
    w->type = PF_TYPE_Q8_0;
    w->n_in = N_IN;
    w->n_out = rows;
    w->row_size = rs;
    free(row);
    free(u);
}

static void check_jacobi(void)
{
    /* A = Q diag(5, 3, 1) Q^T with a known rotation Q */
    const double c = cos(0.3), s = sin(0.3), Q[9] = { c, -s, 0, s, c, 0, 0, 0, 1 }, d[3] = { 1, 5, 3 };
    double a[9] = { 0 }, ev[3], vec[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++) a[i * 3 + j] += Q[i * 3 + k] * d[k] * Q[j * 3 + k];
    pf_jacobi_eig(a, 3, ev, vec);
    CHECKF(fabs(ev[0] - 5) < 1e-9 && fabs(ev[1] - 3) < 1e-9 && fabs(ev[2] - 1) < 1e-9, "eigenvalues %g %g %g", ev[0], ev[1], ev[2]);
    /* the eigenvector of 5 is Q's column 1: (-s, c, 0) */
    CHECKF(fabs(fabs(vec[0 * 3 + 0] * -s + vec[1 * 3 + 0] * c) - 1) < 1e-9, "eigenvector of the largest eigenvalue");
}

int main(void)
{
    check_jacobi();
    unsigned long long st = 7;
    /* planted right singular directions: orthonormal rows by Gram-Schmidt of random ones */
    enum { NS = 16 };
    float *v = malloc(sizeof *v * NS * N_IN), s[NS];
    for (int j = 0; j < NS; j++) {
        float *vj = v + (size_t)j * N_IN;
        for (int e = 0; e < N_IN; e++) vj[e] = tu_randf(&st);
        for (int i = 0; i < j; i++) {
            double dot = 0;
            for (int e = 0; e < N_IN; e++) dot += (double)vj[e] * v[(size_t)i * N_IN + e];
            for (int e = 0; e < N_IN; e++) vj[e] -= (float)dot * v[(size_t)i * N_IN + e];
        }
        double n2 = 0;
        for (int e = 0; e < N_IN; e++) n2 += (double)vj[e] * vj[e];
        for (int e = 0; e < N_IN; e++) vj[e] /= (float)sqrt(n2);
        s[j] = 40.0f - 2.0f * (float)j; /* 40, 38, ..., 10 */
    }
    struct pf_weight w1, w2;
    make_weight(&w1, 700, v, s, NS, &st);
    make_weight(&w2, 500, v, s, NS, &st);
    const struct pf_weight *ws[2] = { &w1, &w2 };
    float scale[N_IN];
    for (int e = 0; e < N_IN; e++) scale[e] = 0.5f + (float)(e % 7) / 7.0f;

    /* reference: G = (M diag(scale))^T (M diag(scale)) in double */
    double *G = calloc((size_t)N_IN * N_IN, sizeof *G), *ev = malloc(sizeof *ev * N_IN), *vec = malloc(sizeof *vec * N_IN * N_IN);
    float *row = malloc(sizeof *row * N_IN);
    for (int m = 0; m < 2; m++)
        for (int64_t i = 0; i < ws[m]->n_out; i++) {
            pf_kernels_ref.dequant[PF_TYPE_Q8_0]((const char *)ws[m]->data + (size_t)i * ws[m]->row_size, row, N_IN);
            for (int e = 0; e < N_IN; e++) row[e] *= scale[e];
            for (int a = 0; a < N_IN; a++)
                for (int b = 0; b < N_IN; b++) G[a * N_IN + b] += (double)row[a] * row[b];
        }
    pf_jacobi_eig(G, N_IN, ev, vec);

    struct pf_pool *pool = NULL;
    CHECK(pf_pool_new(&pool, 2) == 0);
    for (int pass = 0; pass < 2; pass++) { /* with threads and without */
        float got[K_TOP * N_IN], sv[K_TOP];
        int rc = pf_lowrank_right(got, sv, K_TOP, ws, 2, scale, 99, pass ? pool : NULL);
        CHECKF(rc == 0, "pf_lowrank_right: %d", rc);
        double worst_dir = 1, worst_sv = 0;
        for (int j = 0; j < K_TOP; j++) {
            double dot = 0, n2 = 0;
            for (int e = 0; e < N_IN; e++) {
                dot += (double)got[(size_t)j * N_IN + e] * vec[e * N_IN + j];
                n2 += (double)got[(size_t)j * N_IN + e] * got[(size_t)j * N_IN + e];
            }
            CHECKF(fabs(n2 - 1) < 1e-4, "vector %d has norm^2 %g", j, n2);
            if (fabs(dot) < worst_dir) worst_dir = fabs(dot);
            double rel = fabs(sv[j] - sqrt(ev[j])) / sqrt(ev[j]);
            if (rel > worst_sv) worst_sv = rel;
        }
        printf("%s: top %d right singular vectors: worst |cos| to the reference %.6f, worst singular value error %.2e\n",
               pass ? "2 threads" : "no pool", K_TOP, worst_dir, worst_sv);
        CHECKF(worst_dir > 0.99999, "a singular vector is off: |cos| %.6f", worst_dir);
        CHECKF(worst_sv < 1e-5, "a singular value is off by %.2e", worst_sv);
    }
    /* bad requests are refused, not computed */
    float tmp[N_IN];
    CHECK(pf_lowrank_right(tmp, NULL, 0, ws, 2, NULL, 1, NULL) != 0);
    CHECK(pf_lowrank_right(tmp, NULL, N_IN + 1, ws, 2, NULL, 1, NULL) != 0);
    pf_pool_free(pool);
    free((void *)w1.data); free((void *)w2.data);
    free(v); free(G); free(ev); free(vec); free(row);
    TEST_DONE();
}
