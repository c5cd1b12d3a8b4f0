/* More of ggml's 32-weight block types, with ggml's exact ids and byte layouts (ggml-common.h),
 * and the kernels that implement them (quants_extra_ref.c is the specification; the AVX2 and
 * AVX-512 files hold the dots). All blocks are little-endian, fp16 fields IEEE half; element j
 * of a block is "low" for j < 16 and "high" for j >= 16, and both halves share byte j % 16:
 *
 *   Q4_1:   20 bytes: f16 d, f16 m, 16 bytes qs. q = low nibble of qs[j] (j < 16) or high nibble
 *           of qs[j-16]; value = q * d + m (q in 0..15).
 *   Q5_0:   22 bytes: f16 d, 4 bytes qh, 16 bytes qs. The low 4 bits of q as in Q4_1; bit j of
 *           qh (read as a little-endian u32) is bit 4 of element j's q; value = (q - 16) * d.
 *   Q5_1:   24 bytes: f16 d, f16 m, 4 bytes qh, 16 bytes qs; q as in Q5_0, value = q * d + m.
 *   IQ4_NL: 18 bytes: f16 d, 16 bytes qs; nibble q as in Q4_1 indexes a non-linear table:
 *           value = d * pf_iq4nl_values[q] (-127 .. 113, denser near zero).
 *   Q8_1:   36 bytes: f16 d, f16 s, 32 int8 qs; value = qs[j] * d. s is fp16(d' * sum(qs)) with
 *           d' = amax / 127 *before* its rounding to fp16 (ggml's quantize_row_q8_1_ref), so
 *           s differs from d * sum(qs) by up to ~2^-10 relative. Activation type only: ggml's
 *           vec_dot_type for Q4_1 and Q5_1 on x86 (the offset terms become m * s per block).
 *
 * Dots (as ggml on x86): Q4_1 and Q5_1 with Q8_1 activations, per block
 *     d_w * d_x * sum(q_w * q_x) + m * s
 * Q5_0 and IQ4_NL with Q8_0 activations, d_w * d_x * sum(q_w' * q_x) with q_w' = q - 16 or the
 * table value. Q8_1 also works as a weight type (dot with Q8_1, the s terms unused) so that every
 * type the loader accepts has every kernel, though no ggml file stores Q8_1 weights.
 *
 * Bundle kernels (bundle_kernels.h) use the dequantized value exactly as the dequant kernels
 * compute it; for Q4_1 and Q5_1 that is the rounded float q * d + m (two roundings, as ggml's
 * dequantize_row_*), so the bundle paths agree with dequant bit for bit. */
#ifndef PF_TENSOR_QUANTS_EXTRA_H
#define PF_TENSOR_QUANTS_EXTRA_H

#include "tensor/bundle_kernels.h"
#include "tensor/types.h"

#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK4_NL 32
#define QK8_1 32

struct block_q4_1 { uint16_t d, m; uint8_t qs[QK4_1 / 2]; };
struct block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; };
struct block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; };
struct block_iq4_nl { uint16_t d; uint8_t qs[QK4_NL / 2]; };
struct block_q8_1 { uint16_t d, s; int8_t qs[QK8_1]; };
_Static_assert(sizeof(struct block_q4_1) == 20, "block_q4_1 must be 20 bytes");
_Static_assert(sizeof(struct block_q5_0) == 22, "block_q5_0 must be 22 bytes");
_Static_assert(sizeof(struct block_q5_1) == 24, "block_q5_1 must be 24 bytes");
_Static_assert(sizeof(struct block_iq4_nl) == 18, "block_iq4_nl must be 18 bytes");
_Static_assert(sizeof(struct block_q8_1) == 36, "block_q8_1 must be 36 bytes");

/* ggml's kvalues_iq4nl. */
extern const int8_t pf_iq4nl_values[16];

/* ==== Entries of the kernel tables (call them through a table, tensor/kernels.h) ==== */

#define PF_QX_REF_DECL(T)                                                                           \
    float pf_dot_##T##_ref(const void *w, const void *x, int64_t n);                                \
    void pf_gemm_##T##_ref(int64_t n, int nr, int nt, const void *w, size_t w_stride, const void *x, \
                           size_t x_stride, float *out, size_t out_stride);                         \
    void pf_dequant_##T##_ref(const void *src, float *dst, int64_t n);                              \
    void pf_from_f32_##T##_ref(const float *src, void *dst, int64_t n);                             \
    void pf_down_accum_##T##_ref(const void *const *rows, const float *h, int k, float *y, int64_t n, \
                                 struct pf_pq *pq);                                                 \
    void pf_down_panel_##T##_ref(const void *rows, size_t rs, int np, int64_t e0, int ne,           \
                                 const float *h, size_t hs, int nt, float *y, size_t ys,            \
                                 float *scratch);                                                   \
    void pf_gather_dot_##T##_ref(const struct pf_kernels *kt, const void *const *rows, int k,       \
                                 const void *xa, int64_t n, float *out, struct pf_pq *pq);

PF_QX_REF_DECL(q4_1)
PF_QX_REF_DECL(q5_0)
PF_QX_REF_DECL(q5_1)
PF_QX_REF_DECL(iq4_nl)
PF_QX_REF_DECL(q8_1)

#if defined(__x86_64__)
#define PF_QX_SIMD_DECL(T, ISA)                                                                      \
    float pf_dot_##T##_##ISA(const void *w, const void *x, int64_t n);                               \
    void pf_gemm_##T##_##ISA(int64_t n, int nr, int nt, const void *w, size_t w_stride, const void *x, \
                             size_t x_stride, float *out, size_t out_stride);

PF_QX_SIMD_DECL(q4_1, avx2)
PF_QX_SIMD_DECL(q5_0, avx2)
PF_QX_SIMD_DECL(q5_1, avx2)
PF_QX_SIMD_DECL(iq4_nl, avx2)
PF_QX_SIMD_DECL(q4_1, avx512)
PF_QX_SIMD_DECL(q5_0, avx512)
PF_QX_SIMD_DECL(q5_1, avx512)
PF_QX_SIMD_DECL(iq4_nl, avx512)
/* The activation conversion for Q4_1 / Q5_1 weights, bit-exact with the reference; AVX2 code,
 * listed by both the AVX2 and the AVX-512 table. */
void pf_from_f32_q8_1_avx2(const float *src, void *dst, int64_t n);
#endif

#endif
