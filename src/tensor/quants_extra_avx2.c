/* AVX2 + FMA + F16C dots of the types in quants_extra.h (compiled with those flags, chosen by
 * CPUID), and the Q8_1 activation conversion.
 *
 * One kernel body serves the four weight types: each weight block is decoded into 32 bytes in
 * element order and multiplied with the activation's 32 int8 by vpmaddubsw (u8 x s8 -> pairwise
 * s16) and vpmaddwd (-> 8 x s32), exactly the block's integer sum; one fma per block applies the
 * two scales.
 *   Q4_1, Q5_1: the raw field q (0..31) is the u8 operand; the offset adds m * s per block.
 *   Q5_0:       q (0..31) as u8, and -16 * sum(x) per block (computed once per activation
 *               block, shared by all rows) restores q - 16.
 *   IQ4_NL:     the table value (-127..113) by vpshufb, then the sign trick: |w| as u8,
 *               x * sign(w) as s8.
 * No pair sum can saturate 16 bits: 2 * 31 * 128 and 2 * 127 * 127 are below 2^15 (an
 * activation quant is -127..127 from the quantizer; -128 only in a handcrafted row, and then
 * only IQ4_NL's sign trick, like the Q8_0 kernel, is off).
 *
 * Every load stays inside its block (the last block of a row ends the row), so no kernel reads
 * past a row. */
#include "tensor/kernels.h"
#include "tensor/quants_extra.h"

#include "tensor/simd_x86.h"

#include <immintrin.h>


enum qx_kind { QX_Q4_1, QX_Q5_0, QX_Q5_1, QX_IQ4_NL };


/* u8 x s8 dot of 32 bytes into 8 s32 lanes (each lane: 4 consecutive bytes). */
INLINE __m256i dot_u8s8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* The 32 4-bit fields of a block in element order: low nibbles of qs[0..15], then high. */
INLINE __m256i nibbles(const uint8_t *qs)
{
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    q = _mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0));
    return _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
}

/* 0x10 in byte j where bit j of qh (little-endian u32) is set: bit 4 of the 5-bit fields. Each
 * byte gets the qh byte holding its bit (vpshufb within the 128-bit halves), then its own bit. */
INLINE __m256i high_bits(const uint8_t qh[4])
{
    uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), pick);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
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
        return _mm256_or_si256(nibbles(q->qs), high_bits(q->qh));
    }
    case QX_Q5_1: {
        const struct block_q5_1 *q = (const struct block_q5_1 *)row + b;
        *d = h2f(q->d);
        *m = h2f(q->m);
        return _mm256_or_si256(nibbles(q->qs), high_bits(q->qh));
    }
    default: {
        const struct block_iq4_nl *q = (const struct block_iq4_nl *)row + b;
        const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pf_iq4nl_values));
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
            if (K == QX_Q5_0)
                neg[t] = _mm256_sub_epi32(_mm256_setzero_si256(), dot_u8s8(_mm256_set1_epi8(16), xq[t]));
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            float dw, mw = 0;
            __m256i u = decode(K, w + (size_t)r * ws, b, &dw, &mw);
            __m256i ua = K == QX_IQ4_NL ? _mm256_sign_epi8(u, u) : u;
            UNROLL
            for (int t = 0; t < T; t++) {
                __m256i s;
                if (K == QX_IQ4_NL) s = dot_u8s8(ua, _mm256_sign_epi8(xq[t], u));
                else s = dot_u8s8(u, xq[t]);
                if (K == QX_Q5_0) s = _mm256_add_epi32(s, neg[t]);
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
    float pf_dot_##type##_avx2(const void *w, const void *x, int64_t n)                          \
    {                                                                                            \
        float r;                                                                                 \
        tile_qx(K, 1, 1, n, w, 0, x, 0, &r, 0);                                                  \
        return r;                                                                                \
    }                                                                                            \
    void pf_gemm_##type##_avx2(int64_t n, int nr, int nt, const void *w, size_t ws, const void *x, \
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

/* ==== Q8_1 activations ==== */

/* roundf (half away from zero), exact: truncate, step away from zero if the rest is >= 0.5. */
INLINE __m256 round_half_away(__m256 v)
{
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
    return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

/* pf_from_f32_q8_1_ref, bit for bit on non-NaN input: the same maximum (a maximum does not
 * depend on the order), d and id in scalar float, s from the exact integer sum of the quants
 * times the unrounded d. */
void pf_from_f32_q8_1_avx2(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const float *x = src + i * QK8_1;
        __m256 v[4], m = _mm256_setzero_ps();
        UNROLL
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            m = _mm256_max_ps(m, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v[k]));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256i q[4];
        UNROLL
        for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v[k], _mm256_set1_ps(id))));
        int sum = hsum256_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        /* packs interleave 128-bit lanes; the permute restores element order */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)b[i].qs, p);
        b[i].d = (uint16_t)_cvtss_sh(d, 0);
        b[i].s = (uint16_t)_cvtss_sh((float)sum * d, 0);
    }
}
