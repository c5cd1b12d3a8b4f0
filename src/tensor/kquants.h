/* ggml's K-quants: block layouts (byte for byte as ggml-common.h), the scale unpacking every
 * variant shares, and the kernel entries the ISA tables list (tensor/kernels_*.c).
 *
 * All of them quantize 256 weights (QK_K) as one super-block, split into sub-blocks of 16 or 32
 * with small integer scales that are themselves scaled by an f16 super-block scale. Element e of
 * a super-block below is its e-th weight (0..255); "h" is the 128-element half e / 128.
 *
 *   Q2_K (84 bytes): scales[16] @0, qs[64] @16, f16 d @80, f16 dmin @82.
 *     16 sub-blocks of 16; sub-block j = e / 16 has scale sc = scales[j] & 15 and min
 *     m = scales[j] >> 4.  q = (qs[32h + e % 32] >> (2 * ((e % 128) / 32))) & 3.
 *     value = d * sc * q - dmin * m.
 *   Q3_K (110 bytes): hmask[32] @0, qs[64] @32, scales[12] @96, f16 d @108.
 *     16 sub-blocks of 16 with signed 6-bit scales s_j - 32 (packing below). Low two bits as
 *     Q2_K's q; the third bit is bit (e / 32) of hmask[e % 32], and a CLEAR bit subtracts 4:
 *     q = low2 - (bit ? 0 : 4), -4..3.  value = d * (s_j - 32) * q.
 *   Q4_K (144 bytes): f16 d @0, f16 dmin @2, scales[12] @4, qs[128] @16.
 *     8 sub-blocks of 32, 6-bit scale sc_j and min m_j (packing below). Element e is in byte
 *     qs[32 * (e / 64) + e % 32], low nibble when (e % 64) < 32, else high nibble.
 *     value = d * sc_j * q - dmin * m_j, j = e / 32.
 *   Q5_K (176 bytes): f16 d @0, f16 dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
 *     As Q4_K, plus a fifth bit: bit (e / 32) of qh[e % 32] adds 16 (q = 0..31).
 *   Q6_K (210 bytes): ql[128] @0, qh[64] @128, int8 scales[16] @192, f16 d @208.
 *     16 sub-blocks of 16 with signed 8-bit scales. With r = e % 128, quarter k = r / 32:
 *     low 4 bits from ql[64h + r % 64] (low nibble for k < 2, high for k >= 2), high 2 bits
 *     (qh[32h + r % 32] >> 2k) & 3; q = (high << 4 | low) - 32, -32..31.
 *     value = d * scales[e / 16] * q.
 *   Q8_K (292 bytes, activations): f32 d @0, int8 qs[256] @4, int16 bsums[16] @260; value =
 *     d * qs[e]; bsums[j] = sum of qs[16j .. 16j+15] (the K-quant dots take their min / bias
 *     terms from these: sum over a sub-block of m * x needs only m * bsum).
 *
 * The 12-byte scales of Q4_K / Q5_K: sub-blocks 0..3 keep scale and min in the low 6 bits of
 * bytes j and j+4; sub-blocks 4..7 keep their low 4 bits in byte j+4 (scale low nibble, min high
 * nibble) and their top 2 bits in the top 2 bits of bytes j-4 (scale) and j (min).
 * The 12-byte scales of Q3_K (6 bits each, stored + 32): low 4 bits of s_j in byte j % 8 (low
 * nibble for j < 8, high nibble for j >= 8), top 2 bits at bit 2 * (j / 4) of byte 8 + j % 4. */
#ifndef PF_TENSOR_KQUANTS_H
#define PF_TENSOR_KQUANTS_H

#include "tensor/types.h"

#include <string.h>

#define QK_K 256

struct block_q2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; };
struct block_q3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; };
struct block_q4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; };
struct block_q5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct block_q6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
struct block_q8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };
_Static_assert(sizeof(struct block_q2_K) == 84, "block_q2_K must be 84 bytes");
_Static_assert(sizeof(struct block_q3_K) == 110, "block_q3_K must be 110 bytes");
_Static_assert(sizeof(struct block_q4_K) == 144, "block_q4_K must be 144 bytes");
_Static_assert(sizeof(struct block_q5_K) == 176, "block_q5_K must be 176 bytes");
_Static_assert(sizeof(struct block_q6_K) == 210, "block_q6_K must be 210 bytes");
_Static_assert(sizeof(struct block_q8_K) == 292, "block_q8_K must be 292 bytes");

/* ==== Scale unpacking (every variant uses these, so they agree by construction) ==== */

/* Q4_K / Q5_K: the 8 scales and 8 mins of a super-block, 6 bits each, from its 12 bytes. */
static inline void kq_scales_k4(const uint8_t *s, uint8_t sc[8], uint8_t m[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 15) | ((s[j] >> 6) << 4));
        m[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

/* The same as two little-endian words: bytes 0..7 of the result are sc[0..7], bytes 8..15 are
 * m[0..7]. Word arithmetic on the packed bytes (what SIMD code wants: one 128-bit move). */
static inline void kq_scales_k4_words(const uint8_t *s, uint64_t out[2])
{
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    const uint32_t lo6 = 0x3f3f3f3f, lo4 = 0x0f0f0f0f, top2 = 0x03030303;
    uint32_t sc_lo = a & lo6, m_lo = b & lo6;
    uint32_t sc_hi = (c & lo4) | (((a >> 6) & top2) << 4);
    uint32_t m_hi = ((c >> 4) & lo4) | (((b >> 6) & top2) << 4);
    out[0] = (uint64_t)sc_lo | (uint64_t)sc_hi << 32;
    out[1] = (uint64_t)m_lo | (uint64_t)m_hi << 32;
}

/* Q3_K: the 16 signed scales s_j - 32 (-32..31) from the 12 bytes. */
static inline void kq_scales_q3(const uint8_t *s, int8_t out[16])
{
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
        int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((lo | hi << 4) - 32);
    }
}

/* The same as four little-endian words: byte j of the 16 is s_j, 0..63 (callers subtract 32,
 * a per-byte step word arithmetic cannot do without borrows). */
static inline void kq_scales_q3_words(const uint8_t *s, uint32_t out[4])
{
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    const uint32_t lo4 = 0x0f0f0f0f, top2 = 0x03030303;
    out[0] = (a & lo4) | (c & top2) << 4;
    out[1] = (b & lo4) | ((c >> 2) & top2) << 4;
    out[2] = ((a >> 4) & lo4) | ((c >> 4) & top2) << 4;
    out[3] = ((b >> 4) & lo4) | ((c >> 6) & top2) << 4;
}

/* ==== Kernel entries (signatures: tensor/kernels.h) ==== */

#define PF_KQ_DECLARE(T, ISA)                                                                  \
    float pf_dot_##T##_##ISA(const void *w, const void *x, int64_t n);                         \
    void pf_gemm_##T##_##ISA(int64_t n, int nr, int nt, const void *w, size_t w_stride,        \
                             const void *x, size_t x_stride, float *out, size_t out_stride);

/* Reference (tensor/kquants_ref.c): the specification. Dots of Q2_K..Q6_K take Q8_K activations;
 * Q8_K has a dot with itself so that it is a complete weight type too. */
PF_KQ_DECLARE(q2_K, ref)
PF_KQ_DECLARE(q3_K, ref)
PF_KQ_DECLARE(q4_K, ref)
PF_KQ_DECLARE(q5_K, ref)
PF_KQ_DECLARE(q6_K, ref)
PF_KQ_DECLARE(q8_K, ref)
void pf_dequant_q2_K_ref(const void *src, float *dst, int64_t n);
void pf_dequant_q3_K_ref(const void *src, float *dst, int64_t n);
void pf_dequant_q4_K_ref(const void *src, float *dst, int64_t n);
void pf_dequant_q5_K_ref(const void *src, float *dst, int64_t n);
void pf_dequant_q6_K_ref(const void *src, float *dst, int64_t n);
void pf_dequant_q8_K_ref(const void *src, float *dst, int64_t n);
/* llama.cpp's quantize_row_*_K_ref */
void pf_from_f32_q2_K_ref(const float *src, void *dst, int64_t n);
void pf_from_f32_q3_K_ref(const float *src, void *dst, int64_t n);
void pf_from_f32_q4_K_ref(const float *src, void *dst, int64_t n);
void pf_from_f32_q5_K_ref(const float *src, void *dst, int64_t n);
void pf_from_f32_q6_K_ref(const float *src, void *dst, int64_t n);
void pf_from_f32_q8_K_ref(const float *src, void *dst, int64_t n);

#if defined(__x86_64__)
/* tensor/kquants_avx2.c and tensor/kquants_avx512.c: dots, gemms (a one-token gemm is the
 * decode matvec) and the Q8_K activation quantizer, equal to the reference bit for bit. */
PF_KQ_DECLARE(q2_K, avx2)
PF_KQ_DECLARE(q3_K, avx2)
PF_KQ_DECLARE(q4_K, avx2)
PF_KQ_DECLARE(q5_K, avx2)
PF_KQ_DECLARE(q6_K, avx2)
void pf_from_f32_q8_K_avx2(const float *src, void *dst, int64_t n);
PF_KQ_DECLARE(q2_K, avx512)
PF_KQ_DECLARE(q3_K, avx512)
PF_KQ_DECLARE(q4_K, avx512)
PF_KQ_DECLARE(q5_K, avx512)
PF_KQ_DECLARE(q6_K, avx512)
void pf_from_f32_q8_K_avx512(const float *src, void *dst, int64_t n);
#endif

#endif
