/* AVX2 + FMA + F16C kernels (compiled with those flags, chosen by CPUID).
 *
 * Without VNNI the int8 dots use vpmaddubsw (u8 x s8 -> pairwise s16) then vpmaddwd with ones
 * (-> s32). Q4_0: the raw nibble (0..15) is the u8 operand and "-8 * sum(q)" is added per block
 * (precomputed per activation in the q8x layout); nibble*q pair sums stay below 2^15 even when
 * 8 of them are added in 16 bits (8 * 2 * 15 * 127 = 30480), which the gemm uses. Q8_0 x Q8_0
 * uses the sign trick: |w| as u8, q * sign(w) as s8.
 *
 * Float tails use a scalar loop (AVX2 has no masked 16-bit loads), never reading past n. */
#include "tensor/kernels.h"
#include "tensor/kquants.h"
#include "tensor/q8x.h"
#include "tensor/quants_extra.h"

#include "tensor/simd_x86.h"

#include <immintrin.h>
#include <string.h>


static inline int32_t load_i32(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* u8 x s8 dot of 32 bytes into 8 s32 lanes (each lane: 4 consecutive bytes). */
INLINE __m256i dot_u8s8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* 32 nibbles of a Q4_0 block in element order (low nibbles, then high nibbles). */
INLINE __m256i q4_nibbles(const uint8_t *qs)
{
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    q = _mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0));
    return _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
}

/* ==== Float dots and tiles ==== */

#define FLOAT_TILE(name, ET, LOAD, SCALAR)                                                         \
    INLINE void name(int R, int T, int64_t n, const char *w, size_t ws, const char *x, size_t xs, \
                     float *out, size_t os)                                                      \
    {                                                                                            \
        __m256 acc[4][3];                                                                        \
        UNROLL                                                                                  \
        for (int r = 0; r < R; r++)                                                              \
            UNROLL                                                                              \
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();                         \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= n; i += 8) {                                                             \
            __m256 xv[3];                                                                        \
            UNROLL                                                                               \
            for (int t = 0; t < T; t++) xv[t] = LOAD((const ET *)(x + (size_t)t * xs), i);        \
            UNROLL                                                                              \
            for (int r = 0; r < R; r++) {                                                        \
                __m256 wv = LOAD((const ET *)(w + (size_t)r * ws), i);                           \
                UNROLL                                                                          \
                for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);   \
            }                                                                                    \
        }                                                                                        \
        UNROLL                                                                                  \
        for (int r = 0; r < R; r++)                                                              \
            UNROLL                                                                              \
            for (int t = 0; t < T; t++) {                                                        \
                float s = hsum256(acc[r][t]);                                                    \
                const ET *wr = (const ET *)(w + (size_t)r * ws), *xr = (const ET *)(x + (size_t)t * xs); \
                for (int64_t j = i; j < n; j++) s += SCALAR(wr[j]) * SCALAR(xr[j]);              \
                out[(size_t)t * os + r] = s;                                                     \
            }                                                                                    \
    }

#define LD_F32(p, i) _mm256_loadu_ps((p) + (i))
#define LD_F16(p, i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + (i))))
#define LD_BF16(p, i) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((p) + (i)))), 16))
#define S_F32(v) (v)
#define S_F16(v) h2f(v)
#define S_BF16(v) pf_bf16_to_fp32(v)

FLOAT_TILE(tile_f32, float, LD_F32, S_F32)
FLOAT_TILE(tile_f16, uint16_t, LD_F16, S_F16)
FLOAT_TILE(tile_bf16, uint16_t, LD_BF16, S_BF16)

/* ==== Quantized dots and tiles (activations in block_q8_0) ==== */

INLINE void tile_q8_0(int R, int T, int64_t n, const char *w, size_t ws, const char *x, size_t xs,
                      float *out, size_t os)
{
    __m256 acc[4][3];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK8_0; b++) {
        __m256i xq[3];
        float dx[3];
        UNROLL
        for (int t = 0; t < T; t++) {
            const struct block_q8_0 *xb = (const struct block_q8_0 *)(x + (size_t)t * xs) + b;
            xq[t] = _mm256_loadu_si256((const __m256i *)xb->qs);
            dx[t] = h2f(xb->d);
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            const struct block_q8_0 *wb = (const struct block_q8_0 *)(w + (size_t)r * ws) + b;
            __m256i wq = _mm256_loadu_si256((const __m256i *)wb->qs);
            __m256i wa = _mm256_sign_epi8(wq, wq);
            float dw = h2f(wb->d);
            UNROLL
            for (int t = 0; t < T; t++) {
                __m256i s = dot_u8s8(wa, _mm256_sign_epi8(xq[t], wq));
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * dx[t]), acc[r][t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) out[(size_t)t * os + r] = hsum256(acc[r][t]);
}

INLINE void tile_q4_0(int R, int T, int64_t n, const char *w, size_t ws, const char *x, size_t xs,
                      float *out, size_t os)
{
    __m256 acc[4][3];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK4_0; b++) {
        __m256i xq[3], neg[3];
        float dx[3];
        UNROLL
        for (int t = 0; t < T; t++) {
            const struct block_q8_0 *xb = (const struct block_q8_0 *)(x + (size_t)t * xs) + b;
            xq[t] = _mm256_loadu_si256((const __m256i *)xb->qs);
            neg[t] = _mm256_sub_epi32(_mm256_setzero_si256(), dot_u8s8(_mm256_set1_epi8(8), xq[t]));
            dx[t] = h2f(xb->d);
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            const struct block_q4_0 *wb = (const struct block_q4_0 *)(w + (size_t)r * ws) + b;
            __m256i nib = q4_nibbles(wb->qs);
            float dw = h2f(wb->d);
            UNROLL
            for (int t = 0; t < T; t++) {
                __m256i s = _mm256_add_epi32(dot_u8s8(nib, xq[t]), neg[t]);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * dx[t]), acc[r][t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) out[(size_t)t * os + r] = hsum256(acc[r][t]);
}

#define DOT_AND_GEMM(type)                                                                       \
    static float dot_##type(const void *w, const void *x, int64_t n)                             \
    {                                                                                            \
        float r;                                                                                 \
        tile_##type(1, 1, n, w, 0, x, 0, &r, 0);                                                 \
        return r;                                                                                \
    }                                                                                            \
    static void gemm_##type(int64_t n, int nr, int nt, const void *w, size_t ws, const void *x,  \
                            size_t xs, float *out, size_t os)                                    \
    {                                                                                            \
        for (int t = 0; t < nt; t += 3) {                                                        \
            int T = nt - t < 3 ? nt - t : 3;                                                     \
            const char *xt = (const char *)x + (size_t)t * xs;                                   \
            for (int r = 0; r < nr; r += 4) {                                                    \
                int R = nr - r < 4 ? nr - r : 4;                                                 \
                const char *wr = (const char *)w + (size_t)r * ws;                               \
                float *o = out + (size_t)t * os + r;                                             \
                switch (R * 4 + T) {                                                             \
                case 4 * 4 + 3: tile_##type(4, 3, n, wr, ws, xt, xs, o, os); break;              \
                case 4 * 4 + 2: tile_##type(4, 2, n, wr, ws, xt, xs, o, os); break;              \
                case 4 * 4 + 1: tile_##type(4, 1, n, wr, ws, xt, xs, o, os); break;              \
                case 3 * 4 + 3: tile_##type(3, 3, n, wr, ws, xt, xs, o, os); break;              \
                case 3 * 4 + 2: tile_##type(3, 2, n, wr, ws, xt, xs, o, os); break;              \
                case 3 * 4 + 1: tile_##type(3, 1, n, wr, ws, xt, xs, o, os); break;              \
                case 2 * 4 + 3: tile_##type(2, 3, n, wr, ws, xt, xs, o, os); break;              \
                case 2 * 4 + 2: tile_##type(2, 2, n, wr, ws, xt, xs, o, os); break;              \
                case 2 * 4 + 1: tile_##type(2, 1, n, wr, ws, xt, xs, o, os); break;              \
                case 1 * 4 + 3: tile_##type(1, 3, n, wr, ws, xt, xs, o, os); break;              \
                case 1 * 4 + 2: tile_##type(1, 2, n, wr, ws, xt, xs, o, os); break;              \
                default: tile_##type(1, 1, n, wr, ws, xt, xs, o, os); break;                     \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

DOT_AND_GEMM(f32)
DOT_AND_GEMM(f16)
DOT_AND_GEMM(bf16)
DOT_AND_GEMM(q8_0)
DOT_AND_GEMM(q4_0)

/* ==== Conversions ==== */

static void dequant_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LD_F16(s, i));
    for (; i < n; i++) dst[i] = h2f(s[i]);
}

static void dequant_bf16(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, LD_BF16(s, i));
    for (; i < n; i++) dst[i] = pf_bf16_to_fp32(s[i]);
}

static void dequant_q8_0(const void *src, float *dst, int64_t n)
{
    const struct block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        __m256 d = _mm256_set1_ps(h2f(b[i].d));
        for (int h = 0; h < 4; h++) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b[i].qs + 8 * h)));
            _mm256_storeu_ps(dst + i * QK8_0 + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

static void dequant_q4_0(const void *src, float *dst, int64_t n)
{
    const struct block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        __m256 d = _mm256_set1_ps(h2f(b[i].d));
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b[i].qs + 8 * h)));
            __m256i lo = _mm256_sub_epi32(_mm256_and_si256(q, _mm256_set1_epi32(15)), _mm256_set1_epi32(8));
            __m256i hi = _mm256_sub_epi32(_mm256_srli_epi32(q, 4), _mm256_set1_epi32(8));
            _mm256_storeu_ps(dst + i * QK4_0 + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), d));
            _mm256_storeu_ps(dst + i * QK4_0 + 16 + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(hi), d));
        }
    }
}

static void from_f32_f16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) d[i] = (uint16_t)_cvtss_sh(src[i], 0);
}

/* ggml's rounding (nearest even, NaN made quiet, subnormals kept) in integer arithmetic. */
static void from_f32_bf16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(src + i));
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
        __m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
        r = _mm256_blendv_epi8(r, qn, nan);
        /* values fit in 16 bits: packus keeps them, permute undoes the lane interleave */
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
        _mm_storeu_si128((__m128i *)(d + i), _mm256_castsi256_si128(p));
    }
    for (; i < n; i++) d[i] = pf_fp32_to_bf16(src[i]);
}

/* roundf (half away from zero), exact: truncate, step away from zero if the rest is >= 0.5. */
INLINE __m256 round_half_away(__m256 v)
{
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
    return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

/* One block of llama.cpp's quantize_row_q8_0_ref, bit for bit. Returns the fp16 scale. */
INLINE uint16_t q8_block(const float *x, int8_t *qs)
{
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
    __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    UNROLL
    for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v[k], vid)));
    /* packs interleave 128-bit lanes; the final permute restores element order */
    __m256i a = _mm256_packs_epi32(q[0], q[1]), b = _mm256_packs_epi32(q[2], q[3]);
    __m256i p = _mm256_packs_epi16(a, b);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, p);
    return (uint16_t)_cvtss_sh(d, 0);
}

static void from_f32_q8_0(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) b[i].d = q8_block(src + i * QK8_0, b[i].qs);
}

/* ==== Q4_0 fast paths on the q8x layout ==== */

static void q4_act(const float *src, void *dst, int64_t n)
{
    int64_t nb = n / QK8_0;
    int8_t *qs = dst;
    int32_t *corr = (int32_t *)q8x_corr(dst, nb), *bsum = (int32_t *)q8x_bsum(dst, nb);
    float *d = (float *)q8x_d(dst, nb);
    for (int64_t i = 0; i < nb; i++) {
        d[i] = h2f(q8_block(src + i * QK8_0, qs + i * QK8_0));
        __m256i q = _mm256_loadu_si256((const __m256i *)(qs + i * QK8_0));
        __m256i c = _mm256_sub_epi32(_mm256_setzero_si256(), dot_u8s8(_mm256_set1_epi8(8), q));
        /* bsum from the unscaled lanes; lanes 4..7 pair with high nibbles left at *16 */
        __m256i c16 = _mm256_sllv_epi32(c, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0));
        _mm256_storeu_si256((__m256i *)(corr + 8 * i), _mm256_add_epi32(c16, _mm256_set1_epi32(Q8X_MAGIC)));
        bsum[i] = hsum256_epi32(c) + Q8X_MAGIC;
    }
}

/* R (1..4) rows against one q8x activation; like the AVX-512 version (see there for why the
 * next group of rows is prefetched into L2 in address order). */
INLINE void q4_mv_rows(int R, int64_t nb, const uint8_t *w, size_t ws, const void *xa, float *out,
                       const char *pf, const char *pf_end)
{
    const int8_t *xq = q8x_qs(xa);
    const int32_t *corr = q8x_corr(xa, nb);
    const float *dx = q8x_d(xa, nb);
    /* q8x stores lanes 4..7 of the corrections x16 (for the VNNI path); vpmaddubsw would
     * saturate on unshifted high nibbles, so this path shifts the nibbles and unscales c */
    const __m256i unscale = _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0), bias = _mm256_set1_epi32(Q8X_MAGIC);
    const __m256 magic = _mm256_set1_ps(Q8X_MAGIC_F);
    __m256 acc[4];
    UNROLL
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= nb; j += 8) {
        float sc[4][8] __attribute__((aligned(32)));
        __m256 dx8 = _mm256_loadu_ps(dx + j);
        UNROLL
        for (int q = 0; q < (R * 8 * (int)sizeof(struct block_q4_0) + 63) / 64; q++, pf += 64)
            if (pf < pf_end) _mm_prefetch(pf, _MM_HINT_T1);
        UNROLL
        for (int r = 0; r < R; r++) {
            uint16_t hd[8] __attribute__((aligned(16)));
            const uint8_t *p = w + (size_t)r * ws + (size_t)j * sizeof(struct block_q4_0);
            UNROLL
            for (int k = 0; k < 8; k++) hd[k] = load_u16(p + k * sizeof(struct block_q4_0));
            _mm256_store_ps(sc[r], _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)hd)), dx8));
        }
        UNROLL
        for (int k = 0; k < 8; k++) {
            __m256i y = _mm256_loadu_si256((const __m256i *)(xq + (j + k) * QK8_0));
            __m256i c = _mm256_loadu_si256((const __m256i *)(corr + (j + k) * 8));
            c = _mm256_add_epi32(_mm256_srav_epi32(_mm256_sub_epi32(c, bias), unscale), bias);
            UNROLL
            for (int r = 0; r < R; r++) {
                const uint8_t *b = w + (size_t)r * ws + (size_t)(j + k) * sizeof(struct block_q4_0);
                __m256i s = _mm256_add_epi32(dot_u8s8(q4_nibbles(b + 2), y), c);
                __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(s), magic);
                acc[r] = _mm256_fmadd_ps(f, _mm256_broadcast_ss(&sc[r][k]), acc[r]);
            }
        }
    }
    for (; j < nb; j++) {
        __m256i y = _mm256_loadu_si256((const __m256i *)(xq + j * QK8_0));
        __m256i c = _mm256_loadu_si256((const __m256i *)(corr + j * 8));
            c = _mm256_add_epi32(_mm256_srav_epi32(_mm256_sub_epi32(c, bias), unscale), bias);
        UNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *b = w + (size_t)r * ws + (size_t)j * sizeof(struct block_q4_0);
            __m256i s = _mm256_add_epi32(dot_u8s8(q4_nibbles(b + 2), y), c);
            __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(s), magic);
            acc[r] = _mm256_fmadd_ps(f, _mm256_set1_ps(h2f(load_u16(b)) * dx[j]), acc[r]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++) out[r] = hsum256(acc[r]);
}

static void q4_matvec(int64_t n, int nr, const void *w, size_t ws, const void *xa, float *out)
{
    const uint8_t *wb = w;
    int64_t nb = n / QK4_0;
    int r = 0;
    /* prefetching (never loading) runs 4 rows past the end: callers walk matrices in chunks */
    const char *end = (const char *)wb + (size_t)(nr + 4) * ws;
    /* 4 rows: with 16 ymm registers, 8 would spill */
    for (; r + 4 <= nr; r += 4)
        q4_mv_rows(4, nb, wb + (size_t)r * ws, ws, xa, out + r, (const char *)wb + (size_t)(r + 4) * ws, end);
    for (; r < nr; r++) q4_mv_rows(1, nb, wb + (size_t)r * ws, ws, xa, out + r, end, end);
}

/* ---- gemm: 8-row panels repacked row-interleaved, K in chunks, 4-token register tiles ---- */

#define GM_ROWS 8
#define GM_KC 16
#define GM_TT 4

/* pk[8*jj + s]: 32-bit lane r = nibbles of elements 4s..4s+3 of row r; pd[8*jj + r]: scale. */
static void q4_pack(const uint8_t *w, size_t ws, int nr, int64_t j0, int kc, __m256i *pk, float *pd)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int jj = 0; jj < kc; jj++) {
        size_t off = (size_t)(j0 + jj) * sizeof(struct block_q4_0);
        __m128i q[8];
        uint16_t hd[8] __attribute__((aligned(16)));
        UNROLL
        for (int r = 0; r < 8; r++) {
            if (r < nr) {
                q[r] = _mm_loadu_si128((const __m128i *)(w + (size_t)r * ws + off + 2));
                hd[r] = load_u16(w + (size_t)r * ws + off);
            } else {
                q[r] = _mm_setzero_si128();
                hd[r] = 0;
            }
        }
        /* 8 rows x 4 dwords -> 4 vectors of 8 rows: a 4x4 dword transpose per half */
        __m256i z[4];
        UNROLL
        for (int i = 0; i < 4; i++) z[i] = _mm256_setr_m128i(q[i], q[i + 4]);
        __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
        __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
        __m256i a[4] = {
            _mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
            _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3),
        };
        /* a[s] lane i (i < 4) = row i dword s, lane 4+i = row 4+i dword s: rows in order */
        UNROLL
        for (int s = 0; s < 4; s++) {
            pk[8 * jj + s] = _mm256_and_si256(a[s], m4);
            pk[8 * jj + s + 4] = _mm256_and_si256(_mm256_srli_epi16(a[s], 4), m4);
        }
        _mm256_store_ps(pd + 8 * jj, _mm256_cvtph_ps(_mm_load_si128((const __m128i *)hd)));
    }
}

INLINE void q4_gemm_tokens(int T, int kc, const __m256i *pk, const float *pd, const char *xa, size_t xs,
                           int64_t nb, int64_t j0, float *out, size_t os, int rows)
{
    __m256 acc[GM_TT];
    UNROLL
    for (int t = 0; t < T; t++) {
        if (j0 == 0 || rows < GM_ROWS) {
            float tmp[GM_ROWS] = { 0 };
            if (j0 != 0) memcpy(tmp, out + (size_t)t * os, (size_t)rows * sizeof(float));
            acc[t] = _mm256_loadu_ps(tmp);
        } else {
            acc[t] = _mm256_loadu_ps(out + (size_t)t * os);
        }
    }
    for (int jj = 0; jj < kc; jj++) {
        int64_t j = j0 + jj;
        __m256 dw = _mm256_load_ps(pd + 8 * jj);
        UNROLL
        for (int t = 0; t < T; t++) {
            const char *row = xa + (size_t)t * xs;
            const int8_t *y = q8x_qs(row) + j * QK8_0;
            /* 8 pair sums in 16 bits stay below 2^15 (see the top of the file) */
            __m256i s16 = _mm256_maddubs_epi16(pk[8 * jj], _mm256_set1_epi32(load_i32(y)));
            UNROLL
            for (int k = 1; k < 8; k++)
                s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(pk[8 * jj + k], _mm256_set1_epi32(load_i32(y + 4 * k))));
            __m256i s = _mm256_add_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)),
                                         _mm256_set1_epi32(q8x_bsum(row, nb)[j]));
            __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(q8x_d(row, nb)[j]));
            acc[t] = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_castsi256_ps(s), _mm256_set1_ps(Q8X_MAGIC_F)), sc, acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < T; t++) {
        if (rows == GM_ROWS) {
            _mm256_storeu_ps(out + (size_t)t * os, acc[t]);
        } else {
            float tmp[GM_ROWS];
            _mm256_storeu_ps(tmp, acc[t]);
            memcpy(out + (size_t)t * os, tmp, (size_t)rows * sizeof(float));
        }
    }
}

static void q4_gemm(int64_t n, int nr, int nt, const void *w, size_t ws, const void *xa, size_t xs,
                    float *out, size_t os)
{
    __m256i pk[GM_KC * 8];
    float pd[GM_KC * 8] __attribute__((aligned(32)));
    int64_t nb = n / QK4_0;
    for (int r0 = 0; r0 < nr; r0 += GM_ROWS) {
        int rows = nr - r0 < GM_ROWS ? nr - r0 : GM_ROWS;
        const uint8_t *wp = (const uint8_t *)w + (size_t)r0 * ws;
        for (int64_t j0 = 0; j0 < nb; j0 += GM_KC) {
            int kc = nb - j0 < GM_KC ? (int)(nb - j0) : GM_KC;
            q4_pack(wp, ws, rows, j0, kc, pk, pd);
            int t = 0;
            for (; t + GM_TT <= nt; t += GM_TT)
                q4_gemm_tokens(GM_TT, kc, pk, pd, (const char *)xa + (size_t)t * xs, xs, nb, j0,
                               out + (size_t)t * os + r0, os, rows);
            const char *xt = (const char *)xa + (size_t)t * xs;
            float *ot = out + (size_t)t * os + r0;
            switch (nt - t) {
            case 3: q4_gemm_tokens(3, kc, pk, pd, xt, xs, nb, j0, ot, os, rows); break;
            case 2: q4_gemm_tokens(2, kc, pk, pd, xt, xs, nb, j0, ot, os, rows); break;
            case 1: q4_gemm_tokens(1, kc, pk, pd, xt, xs, nb, j0, ot, os, rows); break;
            default: break;
            }
        }
    }
}

const struct pf_kernels pf_kernels_avx2 = {
    .name = "avx2",
    .dot = {
        [PF_TYPE_F32] = dot_f32, [PF_TYPE_F16] = dot_f16, [PF_TYPE_BF16] = dot_bf16,
        [PF_TYPE_Q8_0] = dot_q8_0, [PF_TYPE_Q4_0] = dot_q4_0,
        /* tensor/quants_extra_avx2.c */
        [PF_TYPE_Q4_1] = pf_dot_q4_1_avx2, [PF_TYPE_Q5_0] = pf_dot_q5_0_avx2, [PF_TYPE_Q5_1] = pf_dot_q5_1_avx2,
        [PF_TYPE_IQ4_NL] = pf_dot_iq4_nl_avx2,
        /* K-quants: tensor/kquants_avx2.c */
        [PF_TYPE_Q2_K] = pf_dot_q2_K_avx2, [PF_TYPE_Q3_K] = pf_dot_q3_K_avx2, [PF_TYPE_Q4_K] = pf_dot_q4_K_avx2,
        [PF_TYPE_Q5_K] = pf_dot_q5_K_avx2, [PF_TYPE_Q6_K] = pf_dot_q6_K_avx2,
    },
    .gemm = {
        [PF_TYPE_F32] = gemm_f32, [PF_TYPE_F16] = gemm_f16, [PF_TYPE_BF16] = gemm_bf16,
        [PF_TYPE_Q8_0] = gemm_q8_0, [PF_TYPE_Q4_0] = gemm_q4_0,
        [PF_TYPE_Q4_1] = pf_gemm_q4_1_avx2, [PF_TYPE_Q5_0] = pf_gemm_q5_0_avx2, [PF_TYPE_Q5_1] = pf_gemm_q5_1_avx2,
        [PF_TYPE_IQ4_NL] = pf_gemm_iq4_nl_avx2,
        [PF_TYPE_Q2_K] = pf_gemm_q2_K_avx2, [PF_TYPE_Q3_K] = pf_gemm_q3_K_avx2, [PF_TYPE_Q4_K] = pf_gemm_q4_K_avx2,
        [PF_TYPE_Q5_K] = pf_gemm_q5_K_avx2, [PF_TYPE_Q6_K] = pf_gemm_q6_K_avx2,
    },
    .dequant = {
        [PF_TYPE_F16] = dequant_f16, [PF_TYPE_BF16] = dequant_bf16,
        [PF_TYPE_Q8_0] = dequant_q8_0, [PF_TYPE_Q4_0] = dequant_q4_0,
    },
    .from_f32 = {
        [PF_TYPE_F16] = from_f32_f16, [PF_TYPE_BF16] = from_f32_bf16, [PF_TYPE_Q8_0] = from_f32_q8_0,
        [PF_TYPE_Q8_1] = pf_from_f32_q8_1_avx2, /* tensor/quants_extra_avx2.c */
        [PF_TYPE_Q8_K] = pf_from_f32_q8_K_avx2,
    },
    .q4_act = q4_act,
    .q4_matvec = q4_matvec,
    .q4_gemm = q4_gemm,
};
