/* Matrix products for the forward pass, threaded over a pool.
 *
 *   y[t][r] = sum_k W[r][k] * x[t][k],  r < n_out, t < n_tok, k < n_in
 *
 * W: n_out rows of n_in elements of type wtype, each row pf_row_size(wtype, n_in) bytes, rows
 * contiguous. x: n_tok rows of n_in floats. y: n_tok rows of n_out floats. The activations are
 * first converted to the weight type's vec_dot_type (into scratch), then rows are split across
 * threads; batches use the tile (gemm) kernel. */
#ifndef PF_TENSOR_MATMUL_H
#define PF_TENSOR_MATMUL_H

#include "core/threadpool.h"
#include "tensor/kernels.h"

/* Bytes of scratch pf_matmul needs for this shape (any kernel table, any thread count), or
 * SIZE_MAX if the type is unsupported or n_in is not a multiple of its block size. */
size_t pf_matmul_scratch_size(int wtype, int64_t n_in, int n_tok);

/* y = W x with the kernel table of this CPU. Allocates nothing; the caller's pool (NULL: run
 * on the caller) does the work; scratch is only used during the call. Shapes must have been
 * validated (an unusable shape returns with y untouched). */
void pf_matmul(struct pf_pool *pool, float *y, const void *w, int wtype, int64_t n_in,
               int64_t n_out, const float *x, int n_tok, void *scratch);

/* Same with an explicit kernel table (tests and benchmarks compare tables; scratch must be
 * pf_matmul_scratch_size() bytes, which covers every table). */
void pf_matmul_k(const struct pf_kernels *k, struct pf_pool *pool, float *y, const void *w,
                 int wtype, int64_t n_in, int64_t n_out, const float *x, int n_tok, void *scratch);

#endif
