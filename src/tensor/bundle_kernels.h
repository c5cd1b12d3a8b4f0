/* Kernels of the FFN down projection on neuron bundles, where each neuron's down column is
 * stored as a row of n_embd elements (quantized along n_embd): the product is a sum of scaled
 * rows, y += h_i * row_i, rather than a dot product.
 *
 * The arithmetic is specified exactly, so every variant gives the same bits as the reference:
 * per output element, terms are added in the stated order, each with one rounding,
 *     y[e] = fma(h_i, w_i[e], y[e])
 * where w_i[e] is the dequantized weight, which is exact in f32 for the types here (Q4_0:
 * (q - 8) * d and Q8_0: q * d are products of a small integer and an f16 value; F16 and BF16
 * widen exactly; for the types of tensor/quants_extra.h it is the value their dequant kernel
 * computes, see there; for the K-quants Q2_K..Q6_K, the value their reference dequant computes,
 * (d * sc) * q - dmin * m with each product and the difference rounded, no fma: what
 * tensor/kquants_ref.c writes). `ref` (plain C, fmaf) is the specification.
 *
 * A bundle slot's parts may differ in type (docs/sparse-format.md): callers pick each kernel by
 * its part's type, e.g. gather_dot[gate type] on gate rows, down_accum[down type] on down rows.
 *
 * The kernels are entries of struct pf_kernels (tensor/kernels.h), so the one dispatcher
 * (tensor/dispatch.c) picks them with the dense kernels: a caller reaches them as
 * kern->down_accum[type], kern->down_panel[type], kern->gather_dot[type]. */
#ifndef PF_TENSOR_BUNDLE_KERNELS_H
#define PF_TENSOR_BUNDLE_KERNELS_H

#include "tensor/prefetch.h"
#include "tensor/types.h"

struct pf_kernels;

/* Neurons x columns of one thread's dequantized down panel (ffn/bundle_mm.c). */
#define PF_PANEL_ROWS 64
#define PF_PANEL_COLS 256
#define PF_PANEL_FLOATS (PF_PANEL_ROWS * PF_PANEL_COLS)

/* Decode: y[e] += sum over i = 0..k-1 (in that order) of h[i] * rows[i][e], for e < n.
 * rows[i] points at a row of n elements of the type; n is a multiple of the block size.
 * pq (may be NULL): prefetch queue advanced as the rows are consumed (prefetch.h). */
typedef void (*pf_down_accum_fn)(const void *const *rows, const float *h, int k, float *y, int64_t n,
                                 struct pf_pq *pq);

/* Decode: out[i] = dot(rows[i], xa) for i < k, rows of n elements of `type` anywhere in memory
 * (the gate or up rows of the neurons a sparse step computes). xa is the activation as the tensor
 * kernel table kt prepares it for the type: the q8x layout (tensor/q8x.h) when kt has the Q4_0
 * fast path (q4_act), else the type's vec_dot_type. Results equal kt's own product of each row
 * (q4_matvec or dot) up to float reassociation; the reference calls exactly those. Each row's
 * result must not depend on which other rows share the call (the oracle == off invariant).
 * Variants compute several rows at once and split each row's sum over several accumulators: a
 * row alone is otherwise a chain of dependent fmas, which is latency-bound. */
typedef void (*pf_gather_dot_fn)(const struct pf_kernels *kt, const void *const *rows, int k, const void *xa,
                                 int64_t n, float *out, struct pf_pq *pq);

/* Prefill: for t < nt and e < ne,
 *   y[t*ys + e] += sum over p = 0..np-1 (in that order) of h[t*hs + p] * row_p[e0 + e]
 * where row_p starts at rows + p*rs. e0 and ne are multiples of the block size (256 for the
 * K-quants, which PF_PANEL_COLS is a multiple of), ne <= PF_PANEL_COLS and np <= PF_PANEL_ROWS (below); scratch holds np*ne floats (variants
 * dequantize the panel into it once and reuse it for every token). */
typedef void (*pf_down_panel_fn)(const void *rows, size_t rs, int np, int64_t e0, int ne,
                                 const float *h, size_t hs, int nt, float *y, size_t ys,
                                 float *scratch);

/* ==== The entries of the ISA tables ====
 * Listed by pf_kernels_ref (tensor/kernels_ref.c) and pf_kernels_avx512 (tensor/kernels_avx512.c);
 * call them through a table. The AVX-512 file has no BF16 kernels, one gather_dot (Q4_0), decode
 * kernels of the K-quants Q4_K and Q6_K only (the types of llama.cpp's Q4_K_M), and prefill panels
 * of every block type: dispatch.c fills the table's other entries from the reference. */
void pf_down_accum_f32_ref(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_accum_f16_ref(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_accum_bf16_ref(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_accum_q8_0_ref(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_accum_q4_0_ref(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_panel_f32_ref(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                           int nt, float *y, size_t ys, float *scratch);
void pf_down_panel_f16_ref(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                           int nt, float *y, size_t ys, float *scratch);
void pf_down_panel_bf16_ref(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                            int nt, float *y, size_t ys, float *scratch);
void pf_down_panel_q8_0_ref(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                            int nt, float *y, size_t ys, float *scratch);
void pf_down_panel_q4_0_ref(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                            int nt, float *y, size_t ys, float *scratch);
void pf_gather_dot_f32_ref(const struct pf_kernels *kt, const void *const *rows, int k, const void *xa, int64_t n,
                           float *out, struct pf_pq *pq);
void pf_gather_dot_f16_ref(const struct pf_kernels *kt, const void *const *rows, int k, const void *xa, int64_t n,
                           float *out, struct pf_pq *pq);
void pf_gather_dot_bf16_ref(const struct pf_kernels *kt, const void *const *rows, int k, const void *xa, int64_t n,
                            float *out, struct pf_pq *pq);
void pf_gather_dot_q8_0_ref(const struct pf_kernels *kt, const void *const *rows, int k, const void *xa, int64_t n,
                            float *out, struct pf_pq *pq);
void pf_gather_dot_q4_0_ref(const struct pf_kernels *kt, const void *const *rows, int k, const void *xa, int64_t n,
                            float *out, struct pf_pq *pq);
/* K-quants (Q2_K..Q6_K; the activation for gather_dot is Q8_K): */
#define PF_BUNDLE_REF_DECL(T)                                                                         \
    void pf_down_accum_##T##_ref(const void *const *rows, const float *h, int k, float *y, int64_t n, \
                                 struct pf_pq *pq);                                                 \
    void pf_down_panel_##T##_ref(const void *rows, size_t rs, int np, int64_t e0, int ne,            \
                                 const float *h, size_t hs, int nt, float *y, size_t ys,             \
                                 float *scratch);                                                   \
    void pf_gather_dot_##T##_ref(const struct pf_kernels *kt, const void *const *rows, int k,        \
                                 const void *xa, int64_t n, float *out, struct pf_pq *pq);
PF_BUNDLE_REF_DECL(q2_K)
PF_BUNDLE_REF_DECL(q3_K)
PF_BUNDLE_REF_DECL(q4_K)
PF_BUNDLE_REF_DECL(q5_K)
PF_BUNDLE_REF_DECL(q6_K)
#if defined(__x86_64__)
void pf_down_accum_f32_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_accum_f16_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_accum_q8_0_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_accum_q4_0_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_panel_f32_avx512(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                              int nt, float *y, size_t ys, float *scratch);
void pf_down_panel_f16_avx512(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                              int nt, float *y, size_t ys, float *scratch);
void pf_down_panel_q8_0_avx512(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                               int nt, float *y, size_t ys, float *scratch);
void pf_down_panel_q4_0_avx512(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                               int nt, float *y, size_t ys, float *scratch);
void pf_down_accum_q4_K_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
void pf_down_accum_q6_K_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq);
#define PF_PANEL_AVX512_DECL(T)                                                                          \
    void pf_down_panel_##T##_avx512(const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, \
                                    size_t hs, int nt, float *y, size_t ys, float *scratch);
PF_PANEL_AVX512_DECL(q2_K)
PF_PANEL_AVX512_DECL(q3_K)
PF_PANEL_AVX512_DECL(q4_K)
PF_PANEL_AVX512_DECL(q5_K)
PF_PANEL_AVX512_DECL(q6_K)
PF_PANEL_AVX512_DECL(q4_1)
PF_PANEL_AVX512_DECL(q5_0)
PF_PANEL_AVX512_DECL(q5_1)
PF_PANEL_AVX512_DECL(iq4_nl)
void pf_gather_dot_q4_0_avx512(const struct pf_kernels *kt, const void *const *rows, int k, const void *xa, int64_t n,
                               float *out, struct pf_pq *pq);
#endif

#endif
