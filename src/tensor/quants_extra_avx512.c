/* AVX-512 (F, BW, VL, VNNI) dots of the types in quants_extra.h (compiled with the AVX-512 flags,
 * chosen by CPUID). The Q8_1 activation conversion is the AVX2 file's.
 *
 * The structure of quants_extra_avx2.c, with vpdpbusd (u8 x s8 -> s32, no 16-bit
 * intermediate) for the integer sum of a block and the u8 operand chosen so that no sign trick
 * is needed:
 *   Q4_1, Q5_1: the raw field q (0..15, 0..31); the offset adds m * s per block.
 *   Q5_0:       q (0..31), the accumulator started at -16 * sum(x) (computed once per
 *               activation block, shared by all rows) restores q - 16.
 *   IQ4_NL:     the table value + 128 (1..241) by vpshufb, the accumulator started at
 *               -128 * sum(x).
 * Bit 4 of the 5-bit fields is added straight from qh used as a byte mask (vpaddb under a
 * k-mask).
 *
 * Every load stays inside its block (the last block of a row ends the row), so no kernel reads
 * past a row. */
#include "tensor/kernels.h"
#include "tensor/quants_extra.h"

#include "tensor/simd_x86.h"

#include <immintrin.h>


enum qx_kind { QX_Q4_1, QX_Q5_0, QX_Q5_1, QX_IQ4_NL };


/* The 32 4-bit fields of a block in element order: low nibbles of qs[0..15], then high. */
INLINE __m256i nibbles(const uint8_t *qs)
{
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    q = _mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0));
    return _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
}

static inline uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* q + 16 in byte j where bit j of qh is set. */
INLINE __m256i add_high_bits(__m256i q, const uint8_t qh[4])
{
    return _mm256_mask_add_epi8(q, (__mmask32)load_qh(qh), q, _mm256_set1_epi8(0x10));
}

/* Weight block b of a row: its 32 u8/s8 values (see the top of the file), scale and offset. */
INLINE __m256i decode(enum qx_kind K, const char *row, int64_t b, float *d, float *m)
{
    switch (K) {
    case QX_Q4_1: {
        const struct block_q4_1 *q = (const struct block_q4_1 *)row + b;
        *d = h2f(q->d);
        *m = h2f(q->m);
        return nibbles(q->qs);
    }
    case QX_Q5_0: {
        const struct block_q5_0 *q = (const struct block_q5_0 *)row + b;
        *d = h2f(q->d);
        return add_high_bits(nibbles(q->qs), q->qh);
    }
    case QX_Q5_1: {
        const struct block_q5_1 *q = (const struct block_q5_1 *)row + b;
        *d = h2f(q->d);
        *m = h2f(q->m);
        return add_high_bits(nibbles(q->qs), q->qh);
    }
    default: {
        const struct block_iq4_nl *q = (const struct block_iq4_nl *)row + b;
        const __m256i table = _mm256_add_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pf_iq4nl_values)),
                                              _mm256_set1_epi8((char)0x80));
        *d = h2f(q->d);
        return _mm256_shuffle_epi8(table, nibbles(q->qs));
    }
    }
}

/* R (1..4) weight rows x T (1..3) activation rows. */
INLINE void tile_qx(enum qx_kind K, int R, int T, int64_t n, const char *w, size_t ws, const char *x,
                    size_t xs, float *out, size_t os)
{
    const bool q8_1 = K == QX_Q4_1 || K == QX_Q5_1; /* activations in Q8_1, else Q8_0 */
    __m256 acc[4][3];
    float off[4][3]; /* sum of m * s (Q8_1 activations) */
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) { acc[r][t] = _mm256_setzero_ps(); off[r][t] = 0; }
    for (int64_t b = 0; b < n / 32; b++) {
        __m256i xq[3], neg[3];
        float dx[3], sx[3];
        UNROLL
        for (int t = 0; t < T; t++) {
            const char *xr = x + (size_t)t * xs;
            if (q8_1) {
                const struct block_q8_1 *xb = (const struct block_q8_1 *)xr + b;
                xq[t] = _mm256_loadu_si256((const __m256i *)xb->qs);
                dx[t] = h2f(xb->d);
                sx[t] = h2f(xb->s);
            } else {
                const struct block_q8_0 *xb = (const struct block_q8_0 *)xr + b;
                xq[t] = _mm256_loadu_si256((const __m256i *)xb->qs);
                dx[t] = h2f(xb->d);
            }
            /* the accumulator's start: -16 * sum(x) (Q5_0), -128 * sum(x) (IQ4_NL), else 0 */
            if (K == QX_Q5_0 || K == QX_IQ4_NL)
                neg[t] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                          _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                                              _mm256_set1_epi8((char)(K == QX_Q5_0 ? 16 : 0x80)), xq[t]));
            else
                neg[t] = _mm256_setzero_si256();
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            float dw, mw = 0;
            __m256i u = decode(K, w + (size_t)r * ws, b, &dw, &mw);
            UNROLL
            for (int t = 0; t < T; t++) {
                __m256i s = _mm256_dpbusd_epi32(neg[t], u, xq[t]);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * dx[t]), acc[r][t]);
                if (q8_1) off[r][t] += mw * sx[t];
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) out[(size_t)t * os + r] = hsum256(acc[r][t]) + off[r][t];
}

/* Dots are 1x1 tiles; gemms walk the output in 4x3 tiles with smaller ones at the edges. */
#define DOT_AND_GEMM(type, K)                                                                    \
    float pf_dot_##type##_avx512(const void *w, const void *x, int64_t n)                          \
    {                                                                                            \
        float r;                                                                                 \
        tile_qx(K, 1, 1, n, w, 0, x, 0, &r, 0);                                                  \
        return r;                                                                                \
    }                                                                                            \
    void pf_gemm_##type##_avx512(int64_t n, int nr, int nt, const void *w, size_t ws, const void *x, \
                               size_t xs, float *out, size_t os)                                 \
    {                                                                                            \
        for (int t = 0; t < nt; t += 3) {                                                        \
            int T = nt - t < 3 ? nt - t : 3;                                                     \
            const char *xt = (const char *)x + (size_t)t * xs;                                   \
            for (int r = 0; r < nr; r += 4) {                                                    \
                int R = nr - r < 4 ? nr - r : 4;                                                 \
                const char *wr = (const char *)w + (size_t)r * ws;                               \
                float *o = out + (size_t)t * os + r;                                             \
                switch (R * 4 + T) {                                                             \
                case 4 * 4 + 3: tile_qx(K, 4, 3, n, wr, ws, xt, xs, o, os); break;               \
                case 4 * 4 + 2: tile_qx(K, 4, 2, n, wr, ws, xt, xs, o, os); break;               \
                case 4 * 4 + 1: tile_qx(K, 4, 1, n, wr, ws, xt, xs, o, os); break;               \
                case 3 * 4 + 3: tile_qx(K, 3, 3, n, wr, ws, xt, xs, o, os); break;               \
                case 3 * 4 + 2: tile_qx(K, 3, 2, n, wr, ws, xt, xs, o, os); break;               \
                case 3 * 4 + 1: tile_qx(K, 3, 1, n, wr, ws, xt, xs, o, os); break;               \
                case 2 * 4 + 3: tile_qx(K, 2, 3, n, wr, ws, xt, xs, o, os); break;               \
                case 2 * 4 + 2: tile_qx(K, 2, 2, n, wr, ws, xt, xs, o, os); break;               \
                case 2 * 4 + 1: tile_qx(K, 2, 1, n, wr, ws, xt, xs, o, os); break;               \
                case 1 * 4 + 3: tile_qx(K, 1, 3, n, wr, ws, xt, xs, o, os); break;               \
                case 1 * 4 + 2: tile_qx(K, 1, 2, n, wr, ws, xt, xs, o, os); break;               \
                default: tile_qx(K, 1, 1, n, wr, ws, xt, xs, o, os); break;                      \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

DOT_AND_GEMM(q4_1, QX_Q4_1)
DOT_AND_GEMM(q5_0, QX_Q5_0)
DOT_AND_GEMM(q5_1, QX_Q5_1)
DOT_AND_GEMM(iq4_nl, QX_IQ4_NL)
