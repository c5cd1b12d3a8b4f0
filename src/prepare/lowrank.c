/* Randomized SVD of stacked quantized weight matrices (see lowrank.h), and a Jacobi
 * eigen-solver for the small symmetric matrices it reduces to.
 *
 * Only right singular vectors are wanted, so the iteration runs on M^T M (n_in x n_in): the
 * K vectors are orthonormalized only at length n_in, never at the length of the stack's rows
 * (7x longer for a dReLU 7B layer; orthonormalizing there was 60% of the time), and the
 * Rayleigh-Ritz step is the Gram matrix of M z as one f32 product.
 *
 * Vectors are kept as rows: a block of K vectors of length n is K*n floats. M · u runs as the
 * forward pass's matmul with the K vectors as "tokens"; M^T · u dequantizes CHUNK rows of a
 * weight into a transposed panel (on the pool's threads, in cache-sized tiles) and runs an f32
 * matmul, so memory stays at CHUNK rows whatever the matrix. */
#include "prepare/lowrank.h"

#include "core/checked.h"
#include "core/error.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"

#include <stdlib.h>
#include <string.h>

#define OVERSAMPLE 10
#define CHUNK 256
#define TILE 32       /* transposes move TILE x TILE blocks */

struct lr {
    const struct pf_weight *const *w;
    int n_w;
    int64_t n_in, n_rows;  /* columns, and rows of the whole stack */
    const float *scale;
    struct pf_pool *pool;
    int K;
    float *xs;             /* K x n_in: scaled input */
    float *tmp;            /* K x max(n_in, rows of one weight) */
    float *buf, *bt, *ych; /* CHUNK x n_in, n_in x CHUNK, K x CHUNK */
    void *scratch;
};

/* y (K rows of n_rows) = M · x (x: K rows of n_in). */
static void mul_m(struct lr *L, float *y, const float *x)
{
    for (int t = 0; t < L->K; t++)
        for (int64_t j = 0; j < L->n_in; j++)
            L->xs[(size_t)t * L->n_in + j] = x[(size_t)t * L->n_in + j] * (L->scale ? L->scale[j] : 1.0f);
    int64_t off = 0;
    for (int m = 0; m < L->n_w; m++) {
        const struct pf_weight *w = L->w[m];
        pf_matmul(L->pool, L->tmp, w->data, w->type, L->n_in, w->n_out, L->xs, L->K, L->scratch);
        for (int t = 0; t < L->K; t++)
            memcpy(y + (size_t)t * L->n_rows + off, L->tmp + (size_t)t * w->n_out, (size_t)w->n_out * sizeof *y);
        off += w->n_out;
    }
}

/* Rows r0 .. r0 + c of weight w, dequantized into buf and (unless bt is NULL) transposed into bt, the
 * pool's threads taking TILE-row bands. */
struct panel_task {
    const struct pf_weight *w;
    int64_t r0, n;
    int c;
    float *buf, *bt; /* c x n (the rows, each thread its band), n x c (their transpose; NULL: none) */
};

static void panel_fn(void *arg, int ith, int nth)
{
    const struct panel_task *t = arg;
    long lo, hi, bands = (t->c + TILE - 1) / TILE;
    pf_split(bands, ith, nth, &lo, &hi);
    for (long b = lo; b < hi; b++) {
        int i0 = (int)b * TILE, ni = t->c - i0 < TILE ? t->c - i0 : TILE;
        float *rows = t->buf + (size_t)i0 * (size_t)t->n;
        for (int i = 0; i < ni; i++)
            pf_kernels_ref.dequant[t->w->type]((const char *)t->w->data + (size_t)(t->r0 + i0 + i) * t->w->row_size,
                                               rows + (size_t)i * (size_t)t->n, t->n);
        if (!t->bt) continue;
        for (int64_t j0 = 0; j0 < t->n; j0 += TILE) {
            int nj = t->n - j0 < TILE ? (int)(t->n - j0) : TILE;
            for (int j = 0; j < nj; j++)
                for (int i = 0; i < ni; i++)
                    t->bt[(size_t)(j0 + j) * (size_t)t->c + (size_t)(i0 + i)] = rows[(size_t)i * (size_t)t->n + (size_t)(j0 + j)];
        }
    }
}

/* The products on dequantized panels, each CHUNK of a weight's rows at a time (panel_fn):
 *   transposed false: out (K rows of n_rows) = M · in, in f32 throughout. mul_m converts its
 *     input to the weights' dot type (8 bits for Q8_0 and Q4_0): good enough to find the range,
 *     but the Rayleigh-Ritz step reads singular values and vectors off these products directly,
 *     and 8-bit inputs put them 1e-3 off (tests/test_lowrank.c);
 *   transposed true: out (K rows of n_in) = M^T · in (in: K rows of n_rows). */
static void mul_panels(struct lr *L, float *out, const float *in, bool transposed)
{
    const int64_t n = L->n_in;
    if (transposed) memset(out, 0, (size_t)L->K * (size_t)n * sizeof *out);
    else
        for (int t = 0; t < L->K; t++)
            for (int64_t j = 0; j < n; j++)
                L->xs[(size_t)t * n + j] = in[(size_t)t * n + j] * (L->scale ? L->scale[j] : 1.0f);
    int64_t off = 0;
    for (int m = 0; m < L->n_w; m++) {
        const struct pf_weight *w = L->w[m];
        for (int64_t r0 = 0; r0 < w->n_out; r0 += CHUNK) {
            int c = (int)(w->n_out - r0 < CHUNK ? w->n_out - r0 : CHUNK);
            struct panel_task pt = { .w = w, .r0 = r0, .n = n, .c = c, .buf = L->buf, .bt = transposed ? L->bt : NULL };
            pf_pool_run(L->pool, panel_fn, &pt);
            if (transposed) {
                for (int t = 0; t < L->K; t++)
                    memcpy(L->ych + (size_t)t * c, in + (size_t)t * L->n_rows + off + r0, (size_t)c * sizeof *in);
                /* tmp[t][j] = sum_i bt[j][i] * ych[t][i] */
                pf_matmul(L->pool, L->tmp, L->bt, PF_TYPE_F32, c, n, L->ych, L->K, L->scratch);
                for (size_t e = 0; e < (size_t)L->K * (size_t)n; e++) out[e] += L->tmp[e];
            } else {
                /* ych[t][i] = sum_j buf[i][j] xs[t][j] */
                pf_matmul(L->pool, L->ych, L->buf, PF_TYPE_F32, n, c, L->xs, L->K, L->scratch);
                for (int t = 0; t < L->K; t++)
                    memcpy(out + (size_t)t * L->n_rows + off + r0, L->ych + (size_t)t * c, (size_t)c * sizeof *out);
            }
        }
        off += w->n_out;
    }
    if (transposed && L->scale)
        for (int t = 0; t < L->K; t++)
            for (int64_t j = 0; j < n; j++) out[(size_t)t * n + j] *= L->scale[j];
}

/* Orthonormalizes K rows of length n in place (modified Gram-Schmidt, twice, in double). A row
 * that vanishes (rank-deficient input) becomes zero. */
static void orth(float *a, int K, size_t n)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < K; i++) {
            float *ai = a + (size_t)i * n;
            for (int j = 0; j < i; j++) {
                const float *aj = a + (size_t)j * n;
                double d = 0;
                for (size_t e = 0; e < n; e++) d += (double)ai[e] * aj[e];
                for (size_t e = 0; e < n; e++) ai[e] -= (float)(d * aj[e]);
            }
            double s = 0;
            for (size_t e = 0; e < n; e++) s += (double)ai[e] * ai[e];
            float inv = s > 1e-30 ? (float)(1.0 / sqrt(s)) : 0.0f;
            for (size_t e = 0; e < n; e++) ai[e] *= inv;
        }
    }
}

void pf_jacobi_eig(double *a, int n, double *ev, double *vec)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) vec[i * n + j] = i == j;
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0, tot = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                tot += a[i * n + j] * a[i * n + j];
                if (i != j) off += a[i * n + j] * a[i * n + j];
            }
        if (off <= 1e-24 * tot || off == 0) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = vec[k * n + p], vkq = vec[k * n + q];
                    vec[k * n + p] = c * vkp - s * vkq;
                    vec[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) ev[i] = a[i * n + i];
    /* selection sort, descending, moving eigenvector columns along */
    for (int i = 0; i < n; i++) {
        int b = i;
        for (int j = i + 1; j < n; j++)
            if (ev[j] > ev[b]) b = j;
        if (b == i) continue;
        double t = ev[i]; ev[i] = ev[b]; ev[b] = t;
        for (int k = 0; k < n; k++) {
            t = vec[k * n + i]; vec[k * n + i] = vec[k * n + b]; vec[k * n + b] = t;
        }
    }
}

int pf_lowrank_right(float *v, float *sv, int k, const struct pf_weight *const *w, int n_w,
                     const float *col_scale, uint64_t seed, struct pf_pool *pool)
{
    if (n_w < 1 || k < 1) return pf_fail(PINFER_EINVAL, "lowrank: nothing to decompose");
    struct lr L = { .w = w, .n_w = n_w, .n_in = w[0]->n_in, .scale = col_scale, .pool = pool };
    int64_t max_out = 0;
    for (int m = 0; m < n_w; m++) {
        if (w[m]->n_in != L.n_in) return pf_fail(PINFER_EINVAL, "lowrank: weights of different widths");
        L.n_rows += w[m]->n_out;
        if (w[m]->n_out > max_out) max_out = w[m]->n_out;
    }
    if (k > L.n_in || k > L.n_rows) return pf_fail(PINFER_EINVAL, "lowrank: rank %d exceeds the matrix", k);
    int K = k + OVERSAMPLE;
    if (K > L.n_in) K = (int)L.n_in;
    if (K > L.n_rows) K = (int)L.n_rows;
    L.K = K;
    const size_t n = (size_t)L.n_in, R = (size_t)L.n_rows, Ks = (size_t)K;
    size_t tmp_n = (size_t)(max_out > L.n_in ? max_out : L.n_in), scratch = 64;
    for (int m = 0; m < n_w; m++) {
        size_t s = pf_matmul_scratch_size(w[m]->type, L.n_in, K);
        if (s == SIZE_MAX) return pf_fail(PINFER_EINVAL, "lowrank: unsupported weight type");
        if (s > scratch) scratch = s;
    }
    size_t sz;
    if (ck_mul(Ks, R, &sz) || ck_mul(Ks, tmp_n, &sz)) return pf_fail(PINFER_ENOMEM, "lowrank: size overflows");
    float *y = malloc(Ks * R * sizeof *y), *z = malloc(Ks * n * sizeof *z);
    double *g = malloc(Ks * Ks * sizeof *g), *ev = malloc(Ks * sizeof *ev), *vec = malloc(Ks * Ks * sizeof *vec);
    L.xs = malloc(Ks * n * sizeof *L.xs);
    L.tmp = malloc(Ks * tmp_n * sizeof *L.tmp);
    L.buf = malloc((size_t)CHUNK * n * sizeof *L.buf);
    L.bt = malloc((size_t)CHUNK * n * sizeof *L.bt);
    L.ych = malloc(Ks * CHUNK * sizeof *L.ych);
    L.scratch = malloc(scratch);
    int rc = 0;
    if (!y || !z || !g || !ev || !vec || !L.xs || !L.tmp || !L.buf || !L.bt || !L.ych || !L.scratch) {
        rc = pf_fail(PINFER_ENOMEM, "lowrank: out of memory");
        goto out;
    }
    struct pf_rng rng;
    pf_rng_init(&rng, seed);
    for (size_t e = 0; e < Ks * n; e++) z[e] = (float)pf_rng_normal(&rng);
    for (int it = 0; it < 2; it++) { /* z = orth((M^T M) z), twice: the range of (M^T M)^2 Ω */
        mul_m(&L, y, z);
        mul_panels(&L, z, y, true);
        orth(z, K, n);
    }
    /* Rayleigh-Ritz: G = (M z)(M z)^T = z M^T M z^T, whose eigenpairs give M's right singular
       vectors (z^T times the eigenvectors) and squared singular values */
    mul_panels(&L, y, z, false);
    pf_matmul(pool, L.tmp, y, PF_TYPE_F32, L.n_rows, K, y, K, L.scratch);
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) g[i * K + j] = 0.5 * ((double)L.tmp[(size_t)i * Ks + (size_t)j] + L.tmp[(size_t)j * Ks + (size_t)i]);
    pf_jacobi_eig(g, K, ev, vec);
    for (int j = 0; j < k; j++) {
        float *vj = v + (size_t)j * n;
        memset(vj, 0, n * sizeof *vj);
        for (int t = 0; t < K; t++) {
            float c = (float)vec[t * K + j];
            const float *bt = z + (size_t)t * n;
            for (size_t e = 0; e < n; e++) vj[e] += c * bt[e];
        }
        double s = 0;
        for (size_t e = 0; e < n; e++) s += (double)vj[e] * vj[e];
        float inv = s > 1e-30 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (size_t e = 0; e < n; e++) vj[e] *= inv;
        if (sv) sv[j] = ev[j] > 0 ? (float)sqrt(ev[j]) : 0.0f;
    }
out:
    free(y); free(z); free(g); free(ev); free(vec);
    free(L.xs); free(L.tmp); free(L.buf); free(L.bt); free(L.ych); free(L.scratch);
    return rc;
}
