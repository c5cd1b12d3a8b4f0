/* Low-rank linear algebra for predictor initialisation: a small seeded random generator, and the
 * top right singular vectors of a stack of quantized weight matrices with scaled columns,
 *   M = [W_1; W_2; ...] · diag(col_scale)
 * by randomized subspace iteration on M^T M (Halko, Martinsson & Tropp 2011: z = orth(M^T M z)
 * twice from a Gaussian start, then Rayleigh-Ritz: the eigenpairs of the small Gram matrix of
 * M z through a Jacobi eigen-solver). The iteration reads the weights through the forward
 * pass's kernels (M · v); M^T · u and the Rayleigh-Ritz products dequantize a few hundred rows
 * at a time, so no f32 copy of a whole matrix is made. tests/test_lowrank.c checks it against
 * the eigenvectors of M^T M formed in double. */
#ifndef PF_PREPARE_LOWRANK_H
#define PF_PREPARE_LOWRANK_H

#include "core/threadpool.h"
#include "model/model.h"

#include <math.h>
#include <stdint.h>

/* ==== Seeded random numbers (splitmix64 seeding, xoshiro256** stream) ==== */

struct pf_rng { uint64_t s[4]; };

static inline uint64_t pf_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static inline void pf_rng_init(struct pf_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = seed = pf_mix64(seed + (uint64_t)i);
}

static inline uint64_t pf_rng_next(struct pf_rng *r)
{
    uint64_t *s = r->s, x = s[1] * 5, res = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

/* Uniform in [0, n). */
static inline uint64_t pf_rng_below(struct pf_rng *r, uint64_t n) { return n ? pf_rng_next(r) % n : 0; }
/* Uniform in (0, 1). */
static inline double pf_rng_unit(struct pf_rng *r) { return ((double)(pf_rng_next(r) >> 11) + 0.5) * 0x1p-53; }
/* Standard normal (Box-Muller; one value per call, so the stream does not depend on pairing). */
static inline double pf_rng_normal(struct pf_rng *r)
{
    double u = pf_rng_unit(r), v = pf_rng_unit(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ==== Randomized SVD ==== */

/* Writes the top k right singular vectors of M (see above) as k unit rows of n_in floats into
 * v, and the singular values, largest first, into sv (may be NULL). All weights have n_in
 * columns; col_scale has n_in entries (NULL = 1). k <= n_in. */
int pf_lowrank_right(float *v, float *sv, int k, const struct pf_weight *const *w, int n_w,
                     const float *col_scale, uint64_t seed, struct pf_pool *pool);

/* Eigen-decomposition of a symmetric n x n matrix a (row-major, destroyed) by cyclic Jacobi:
 * eigenvalues into ev (descending), eigenvectors as the COLUMNS of vec (row-major n x n). */
void pf_jacobi_eig(double *a, int n, double *ev, double *vec);

#endif
