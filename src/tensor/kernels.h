/* Per-type kernels behind one table, one table per ISA. `ref` is plain C and is the
 * specification; `avx2` and `avx512` must agree with it within the tolerances in
 * tests/test_kernels.c. pf_kernels() picks the best table the CPU supports, once; the
 * environment variable PINFER_KERNELS=ref|avx2|avx512 forces one.
 *
 * Dots: w is a weight row of `type`, x an activation row already converted to
 * pf_type_get(type)->vec_dot_type (F32->F32, F16->F16, BF16->BF16, Q8_0->Q8_0, Q4_0->Q8_0; the
 * types of tensor/quants_extra.h: Q5_0, IQ4_NL->Q8_0, Q4_1, Q5_1->Q8_1; Q2_K..Q6_K and
 * Q8_K->Q8_K; as llama.cpp does on x86, so results agree with it). n is the element count, a
 * multiple of the type's block size. */
#ifndef PF_TENSOR_KERNELS_H
#define PF_TENSOR_KERNELS_H

#include "tensor/bundle_kernels.h"
#include "tensor/types.h"

typedef float (*pf_dot_fn)(const void *w, const void *x, int64_t n);
typedef void (*pf_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*pf_from_f32_fn)(const float *src, void *dst, int64_t n);
/* Tile kernel for batched matmul (prefill): for r in [0,nr), t in [0,nt):
 *   out[t*out_stride + r] = dot(w + r*w_stride, x + t*x_stride, n)
 * Strides are in bytes for w and x, in floats for out. Must equal nr*nt separate dots up to
 * float reassociation. */
typedef void (*pf_gemm_fn)(int64_t n, int nr, int nt, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *out, size_t out_stride);

struct pf_kernels {
    const char *name;
    pf_dot_fn dot[PF_TYPE_COUNT];
    pf_gemm_fn gemm[PF_TYPE_COUNT];
    pf_dequant_fn dequant[PF_TYPE_COUNT];  /* type -> f32 */
    pf_from_f32_fn from_f32[PF_TYPE_COUNT]; /* f32 -> type (quantize); used for activations */

    /* Optional Q4_0 fast path (NULL in tables without one). pf_matmul then converts activations
     * with q4_act into the internal q8x layout (tensor/q8x.h: the same Q8_0 numbers plus
     * precomputed sums) and calls these instead of dot/gemm[PF_TYPE_Q4_0]. Same results as
     * the dots up to float reassociation.
     *   q4_act:    x (n floats) -> xa, q8x_row_size(n) bytes (any alignment; 64 is faster)
     *   q4_matvec: out[r] = dot(w + r*w_stride, xa, n) for r < nr (one token)
     *   q4_gemm:   out[t*out_stride + r] = dot(w + r*w_stride, xa + t*xa_stride, n)
     * Matvec kernels (q4_matvec, gemm with nt == 1) may prefetch, never load, up to 8 rows past
     * the last one: the rows that follow when a matrix is walked in chunks. */
    void (*q4_act)(const float *x, void *xa, int64_t n);
    void (*q4_matvec)(int64_t n, int nr, const void *w, size_t w_stride, const void *xa, float *out);
    void (*q4_gemm)(int64_t n, int nr, int nt, const void *w, size_t w_stride, const void *xa,
                    size_t xa_stride, float *out, size_t out_stride);

    /* Bundle kernels of the sparse FFN (tensor/bundle_kernels.h: signatures and exact arithmetic). */
    pf_down_accum_fn down_accum[PF_TYPE_COUNT];
    pf_down_panel_fn down_panel[PF_TYPE_COUNT];
    pf_gather_dot_fn gather_dot[PF_TYPE_COUNT];
};

/* The table chosen for this CPU (thread-safe, decided once), complete: dense and bundle
 * kernels, gaps filled from the reference. */
const struct pf_kernels *pf_kernels(void);
/* A named complete table ("ref", "avx2", "avx512"), or NULL if unknown or this CPU cannot run
 * it. */
const struct pf_kernels *pf_kernels_get(const char *name);

/* The reference table: every kernel, dense and bundle, of every supported type; the specification
 * the other tables are tested against. */
extern const struct pf_kernels pf_kernels_ref;
#if defined(__x86_64__)
/* Raw ISA tables: entries they leave NULL are filled from ref by pf_kernels_get(). Use
 * pf_kernels_get("avx2") rather than these directly (it also checks the CPU). */
extern const struct pf_kernels pf_kernels_avx2;
extern const struct pf_kernels pf_kernels_avx512;
#endif

#endif
