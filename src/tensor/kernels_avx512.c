/* AVX-512 kernels (F, BW, VL, DQ, VNNI, BF16; compiled with those flags, chosen by CPUID).
 *
 * The int8 dots use vpdpbusd (u8 x s8 -> s32). For Q4_0 the raw nibble is the u8 operand and the
 * "-8" is folded into the accumulator's starting value (-8 * sum of the activation quants),
 * for Q8_0 weights the activation is biased by +128 to make it unsigned and the bias is taken
 * back out with -128 * sum(w). Float tails use masked loads, which never touch bytes past the
 * end (masked-off lanes cannot fault).
 *
 * Q4_0 has two paths used by pf_matmul on the q8x activation layout (tensor/q8x.h):
 *  - matvec (decode, memory-bound): 8 weight rows at a time share each activation load; the
 *    per-block scales of 8 blocks are converted together; one block is 4 vector ops per row
 *    (and, vpdpbusd, subtract, fma) and the next rows are prefetched in address order.
 *  - gemm (prefill, compute-bound): 16 weight rows are repacked into "row-interleaved" nibbles
 *    (one 512-bit vector = 16 rows x 4 consecutive k), so every vpdpbusd takes its activation
 *    as a 4-byte broadcast straight from memory and produces 16 rows x 64 MACs with no
 *    shuffles; a 16 x 8 tile of outputs lives in registers. */
#include "tensor/kernels.h"
#include "tensor/kquants.h"
#include "tensor/q8x.h"
#include "tensor/quants_extra.h"

#include "tensor/simd_x86.h"

#include <immintrin.h>
#include <string.h>


static inline __mmask16 tail_mask16(int64_t k) { return (__mmask16)((1u << k) - 1); }
static inline __mmask32 tail_mask32(int64_t k) { return (__mmask32)(k >= 32 ? 0xffffffffu : (1u << k) - 1); }

static inline int32_t load_i32(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* 16 nibbles of a Q4_0 block as 32 u8 in element order: low nibbles (elements 0..15) in the low
 * 128 bits, high nibbles (16..31) in the high 128 bits. */
INLINE __m256i q4_nibbles(const uint8_t *qs)
{
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    q = _mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0));
    return _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
}

/* The same block for the q8x matvec: low nibbles in the low half, high nibbles left in place
 * (16 * nibble) in the high half; one AND instead of shift + AND. The q8x corrections and a
 * final 1/16 on lanes 4..7 account for the factor (exact: a power of two). */
INLINE __m256i q4_nibbles16(const uint8_t *qs)
{
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(q, _mm256_set_m128i(_mm_set1_epi8((char)0xf0), _mm_set1_epi8(0x0f)));
}

/* ==== Float dots and tiles ==== */

/* R weight rows x T activation rows, float types. LOAD(p, i) gives 16 floats of element i..;
 * MLOAD(p, i, m) the masked tail. */
#define FLOAT_TILE(name, ET, LOAD, MLOAD)                                                          \
    INLINE void name(int R, int T, int64_t n, const char *w, size_t ws, const char *x, size_t xs, \
                     float *out, size_t os)                                                      \
    {                                                                                            \
        __m512 acc[4][3];                                                                        \
        UNROLL                                                                                  \
        for (int r = 0; r < R; r++)                                                              \
            UNROLL                                                                              \
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();                         \
        int64_t i = 0;                                                                           \
        for (; i + 16 <= n; i += 16) {                                                           \
            __m512 xv[3];                                                                        \
            UNROLL                                                                               \
            for (int t = 0; t < T; t++) xv[t] = LOAD((const ET *)(x + (size_t)t * xs), i);        \
            UNROLL                                                                              \
            for (int r = 0; r < R; r++) {                                                        \
                __m512 wv = LOAD((const ET *)(w + (size_t)r * ws), i);                           \
                UNROLL                                                                          \
                for (int t = 0; t < T; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);   \
            }                                                                                    \
        }                                                                                        \
        if (i < n) {                                                                             \
            __mmask16 m = tail_mask16(n - i);                                                    \
            __m512 xv[3];                                                                        \
            UNROLL                                                                               \
            for (int t = 0; t < T; t++) xv[t] = MLOAD((const ET *)(x + (size_t)t * xs), i, m);    \
            UNROLL                                                                              \
            for (int r = 0; r < R; r++) {                                                        \
                __m512 wv = MLOAD((const ET *)(w + (size_t)r * ws), i, m);                       \
                UNROLL                                                                          \
                for (int t = 0; t < T; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);   \
            }                                                                                    \
        }                                                                                        \
        UNROLL                                                                                  \
        for (int r = 0; r < R; r++)                                                              \
            UNROLL                                                                                \
            for (int t = 0; t < T; t++) out[(size_t)t * os + r] = _mm512_reduce_add_ps(acc[r][t]); \
    }

#define LD_F32(p, i) _mm512_loadu_ps((p) + (i))
#define MLD_F32(p, i, m) _mm512_maskz_loadu_ps((m), (p) + (i))
#define LD_F16(p, i) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((p) + (i))))
#define MLD_F16(p, i, m) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((m), (p) + (i)))

FLOAT_TILE(tile_f32, float, LD_F32, MLD_F32)
FLOAT_TILE(tile_f16, uint16_t, LD_F16, MLD_F16)

/* BF16 pairs go through vdpbf16ps: 32 products per instruction, accumulated in fp32. */
INLINE void tile_bf16(int R, int T, int64_t n, const char *w, size_t ws, const char *x, size_t xs,
                      float *out, size_t os)
{
    __m512 acc[4][3];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i < n; i += 32) {
        __mmask32 m = tail_mask32(n - i);
        __m512i xv[3];
        UNROLL
        for (int t = 0; t < T; t++) xv[t] = _mm512_maskz_loadu_epi16(m, (const uint16_t *)(x + (size_t)t * xs) + i);
        UNROLL
        for (int r = 0; r < R; r++) {
            __m512i wv = _mm512_maskz_loadu_epi16(m, (const uint16_t *)(w + (size_t)r * ws) + i);
            UNROLL
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)wv, (__m512bh)xv[t]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) out[(size_t)t * os + r] = _mm512_reduce_add_ps(acc[r][t]);
}

/* ==== Quantized dots and tiles (activations in block_q8_0) ==== */

/* Q8_0 x Q8_0: sum(x*w) = sum((x+128)*w) - 128*sum(w), x+128 as u8. */
INLINE void tile_q8_0(int R, int T, int64_t n, const char *w, size_t ws, const char *x, size_t xs,
                      float *out, size_t os)
{
    __m256 acc[4][3];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int64_t b = 0; b < n / QK8_0; b++) {
        __m256i xu[3];
        float dx[3];
        UNROLL
        for (int t = 0; t < T; t++) {
            const struct block_q8_0 *xb = (const struct block_q8_0 *)(x + (size_t)t * xs) + b;
            xu[t] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xb->qs), bias);
            dx[t] = h2f(xb->d);
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            const struct block_q8_0 *wb = (const struct block_q8_0 *)(w + (size_t)r * ws) + b;
            __m256i wq = _mm256_loadu_si256((const __m256i *)wb->qs);
            __m256i neg = _mm256_sub_epi32(_mm256_setzero_si256(),
                                           _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, wq));
            float dw = h2f(wb->d);
            UNROLL
            for (int t = 0; t < T; t++) {
                __m256i s = _mm256_dpbusd_epi32(neg, xu[t], wq);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * dx[t]), acc[r][t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) out[(size_t)t * os + r] = hsum256(acc[r][t]);
}

/* Q4_0 x Q8_0: sum((nib-8)*q) = sum(nib*q) - 8*sum(q), the second term as the start value. */
INLINE void tile_q4_0(int R, int T, int64_t n, const char *w, size_t ws, const char *x, size_t xs,
                      float *out, size_t os)
{
    __m256 acc[4][3];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    for (int64_t b = 0; b < n / QK4_0; b++) {
        __m256i xq[3], neg[3];
        float dx[3];
        UNROLL
        for (int t = 0; t < T; t++) {
            const struct block_q8_0 *xb = (const struct block_q8_0 *)(x + (size_t)t * xs) + b;
            xq[t] = _mm256_loadu_si256((const __m256i *)xb->qs);
            neg[t] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                      _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, xq[t]));
            dx[t] = h2f(xb->d);
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            const struct block_q4_0 *wb = (const struct block_q4_0 *)(w + (size_t)r * ws) + b;
            __m256i nib = q4_nibbles(wb->qs);
            float dw = h2f(wb->d);
            UNROLL
            for (int t = 0; t < T; t++) {
                __m256i s = _mm256_dpbusd_epi32(neg[t], nib, xq[t]);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * dx[t]), acc[r][t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) out[(size_t)t * os + r] = hsum256(acc[r][t]);
}

/* Dots are 1x1 tiles; gemms walk the output in 4x3 tiles with smaller ones at the edges. */
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

/* Q8_0 matvec (decode): R (1..8) rows share each activation block; as the Q4_0 matvec (scales of
 * 4 blocks per row gathered with one word permute and fed to the fmas from memory; q8x.h's
 * magic-number conversion; next rows prefetched into L2 in address order). Per row and block:
 * vpdpbusd for -128*sum(w), subtract, vpdpbusd, subtract, fma. */
INLINE void q8_mv_rows(int R, int64_t nb, const uint8_t *w, size_t ws, const struct block_q8_0 *x,
                       float *out, const char *pf, const char *pf_end)
{
    const __m512i didx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 34, 17, 0);
    const __m256i bias = _mm256_set1_epi8((char)0x80), imagic = _mm256_set1_epi32(Q8X_MAGIC);
    const __m256 magic = _mm256_set1_ps(Q8X_MAGIC_F);
    const size_t bs = sizeof(struct block_q8_0);
    __m256 acc[8];
    UNROLL
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 4 <= nb; j += 4) {
        float sc[8][4] __attribute__((aligned(16)));
        __m128 dx4 = _mm_setr_ps(h2f(x[j].d), h2f(x[j + 1].d), h2f(x[j + 2].d), h2f(x[j + 3].d));
        UNROLL
        for (int q = 0; q < (R * 4 * (int)bs + 63) / 64; q++, pf += 64)
            if (pf < pf_end) _mm_prefetch(pf, _MM_HINT_T1);
        UNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + (size_t)r * ws + (size_t)j * bs;
            /* 4 blocks end at byte 136; the 128 bytes loaded hold all 4 scales (last at 102) */
            __m512i h = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), didx, _mm512_loadu_si512(p + 64));
            _mm_store_ps(sc[r], _mm_mul_ps(_mm_cvtph_ps(_mm512_castsi512_si128(h)), dx4));
        }
        const float *scp = sc[0];
        __asm__ volatile("" : "+r"(scp) : : "memory");
        UNROLL
        for (int k = 0; k < 4; k++) {
            __m256i xu = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[j + k].qs), bias);
            UNROLL
            for (int r = 0; r < R; r++) {
                __m256i wq = _mm256_loadu_si256((const __m256i *)(w + (size_t)r * ws + (size_t)(j + k) * bs + 2));
                __m256i c = _mm256_sub_epi32(imagic, _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, wq));
                __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(_mm256_dpbusd_epi32(c, xu, wq)), magic);
                acc[r] = _mm256_fmadd_ps(f, _mm256_broadcast_ss(scp + 4 * r + k), acc[r]);
            }
        }
    }
    for (; j < nb; j++) {
        __m256i xu = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[j].qs), bias);
        float dx = h2f(x[j].d);
        UNROLL
        for (int r = 0; r < R; r++) {
            const struct block_q8_0 *b = (const struct block_q8_0 *)(w + (size_t)r * ws) + j;
            __m256i wq = _mm256_loadu_si256((const __m256i *)b->qs);
            __m256i c = _mm256_sub_epi32(imagic, _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, wq));
            __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(_mm256_dpbusd_epi32(c, xu, wq)), magic);
            acc[r] = _mm256_fmadd_ps(f, _mm256_set1_ps(h2f(b->d) * dx), acc[r]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++) out[r] = hsum256(acc[r]);
}

/* gemm[Q8_0]: one token (decode) takes the matvec above, batches the tiles. */
static void gemm_q8_0_mv(int64_t n, int nr, int nt, const void *w, size_t ws, const void *x,
                         size_t xs, float *out, size_t os)
{
    if (nt != 1) { gemm_q8_0(n, nr, nt, w, ws, x, xs, out, os); return; }
    const uint8_t *wb = w;
    const char *end = (const char *)wb + (size_t)(nr + 8) * ws; /* prefetch only, as q4_matvec */
    int64_t nb = n / QK8_0;
    int r = 0;
    for (; r + 8 <= nr; r += 8)
        q8_mv_rows(8, nb, wb + (size_t)r * ws, ws, x, out + r, (const char *)wb + (size_t)(r + 8) * ws, end);
    for (; r + 4 <= nr; r += 4) q8_mv_rows(4, nb, wb + (size_t)r * ws, ws, x, out + r, end, end);
    for (; r < nr; r++) q8_mv_rows(1, nb, wb + (size_t)r * ws, ws, x, out + r, end, end);
}

/* ==== Conversions ==== */

static void dequant_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, LD_F16(s, i));
    if (i < n) _mm512_mask_storeu_ps(dst + i, tail_mask16(n - i), MLD_F16(s, i, tail_mask16(n - i)));
}

static void dequant_bf16(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tail_mask16(n - i);
        __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s + i));
        _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
}

static void dequant_q8_0(const void *src, float *dst, int64_t n)
{
    const struct block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        __m512 d = _mm512_set1_ps(h2f(b[i].d));
        for (int h = 0; h < 2; h++) {
            __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b[i].qs + 16 * h)));
            _mm512_storeu_ps(dst + i * QK8_0 + 16 * h, _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
        }
    }
}

static void dequant_q4_0(const void *src, float *dst, int64_t n)
{
    const struct block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        __m512 d = _mm512_set1_ps(h2f(b[i].d));
        __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b[i].qs));
        __m512i lo = _mm512_sub_epi32(_mm512_and_si512(q, _mm512_set1_epi32(15)), _mm512_set1_epi32(8));
        __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(q, 4), _mm512_set1_epi32(8));
        _mm512_storeu_ps(dst + i * QK4_0, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
        _mm512_storeu_ps(dst + i * QK4_0 + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
    }
}

static void from_f32_f16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tail_mask16(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(d + i, m, h);
    }
}

/* ggml's rounding (nearest even, NaN made quiet, subnormals kept), in integer arithmetic:
 * vcvtneps2bf16 would flush subnormals and so differ. */
static void from_f32_bf16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tail_mask16(n - i);
        __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, src + i));
        __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, absm), inf);
        __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
        r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(64));
        _mm256_mask_storeu_epi16(d + i, m, _mm512_cvtepi32_epi16(r));
    }
}

/* roundf (half away from zero), exact for every float: truncate, then step away from zero
 * when the dropped part is at least one half. */
INLINE __m512 round_half_away(__m512 v)
{
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
    return _mm512_mask_add_ps(t, up, t, one);
}

/* One block of llama.cpp's quantize_row_q8_0_ref, bit for bit: the same scalar d and 1/d, the
 * same per-element product, roundf. Returns the fp16 scale. */
INLINE uint16_t q8_block(const float *x, int8_t *qs)
{
    __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    __m512 vid = _mm512_set1_ps(id);
    __m512i qa = _mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(a, vid)));
    __m512i qb = _mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(b, vid)));
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtepi32_epi8(qa));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtepi32_epi8(qb));
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
    const __m256i eight = _mm256_set1_epi8(8);
    for (int64_t i = 0; i < nb; i++) {
        uint16_t h = q8_block(src + i * QK8_0, qs + i * QK8_0);
        d[i] = h2f(h);
        __m256i q = _mm256_loadu_si256((const __m256i *)(qs + i * QK8_0));
        __m256i c = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, q));
        /* bsum from the unscaled lanes; lanes 4..7 pair with high nibbles left at *16 */
        __m256i c16 = _mm256_sllv_epi32(c, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0));
        _mm256_storeu_si256((__m256i *)(corr + 8 * i), _mm256_add_epi32(c16, _mm256_set1_epi32(Q8X_MAGIC)));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        bsum[i] = _mm_cvtsi128_si32(s) + Q8X_MAGIC;
    }
}

/* R (1..8) rows against one q8x activation, 8 blocks at a time. The 8 fp16 scales of a row
 * (16-bit words 0, 9, ..., 63 of the next 128 bytes) come out with one two-source word permute,
 * are converted and multiplied by the activation scales, and go through memory so that each
 * fma takes its scale as a free broadcast operand. Per row and block that leaves: broadcast
 * load, and, vpdpbusd, subtract (q8x.h), fma.
 *
 * Prefetch: rows are short (2-6 KiB) and read as 4 interleaved streams, too short for the
 * hardware prefetcher to ramp up, which halved the bandwidth. So while a group of rows is
 * computed, the next group (contiguous in memory, [pf, pf_end)) is prefetched into L2 in address
 * order, as many lines per step as the step consumes. Into L2 (T1), not L1: with n = 11008 the
 * current rows, the next ones and the activation do not fit in L1 together. */

INLINE void q4_mv_rows(int R, int64_t nb, const uint8_t *w, size_t ws, const void *xa, float *out,
                       const char *pf, const char *pf_end)
{
    const int8_t *xq = q8x_qs(xa);
    const int32_t *corr = q8x_corr(xa, nb);
    const float *dx = q8x_d(xa, nb);
    const __m256 magic = _mm256_set1_ps(Q8X_MAGIC_F);
    const __m512i didx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 0, 63, 54, 45, 36, 27, 18, 9, 0);
    __m256 acc[8];
    UNROLL
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= nb; j += 8) {
        float sc[8][8] __attribute__((aligned(32)));
        __m256 dx8 = _mm256_loadu_ps(dx + j);
        UNROLL
        for (int q = 0; q < (R * 8 * (int)sizeof(struct block_q4_0) + 63) / 64; q++, pf += 64)
            if (pf < pf_end) _mm_prefetch(pf, _MM_HINT_T1);
        UNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + (size_t)r * ws + (size_t)j * sizeof(struct block_q4_0);
            __m512i h = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), didx, _mm512_loadu_si512(p + 64));
            _mm256_store_ps(sc[r], _mm256_mul_ps(_mm256_cvtph_ps(_mm512_castsi512_si128(h)), dx8));
        }
        /* keep sc in memory (see above) rather than shuffling it into registers, addressed from
         * one base register */
        const float *scp = sc[0];
        __asm__ volatile("" : "+r"(scp) : : "memory");
        UNROLL
        for (int k = 0; k < 8; k++) {
            __m256i y = _mm256_loadu_si256((const __m256i *)(xq + (j + k) * QK8_0));
            __m256i c = _mm256_loadu_si256((const __m256i *)(corr + (j + k) * 8));
            UNROLL
            for (int r = 0; r < R; r++) {
                const uint8_t *b = w + (size_t)r * ws + (size_t)(j + k) * sizeof(struct block_q4_0);
                __m256i s = _mm256_dpbusd_epi32(c, q4_nibbles16(b + 2), y);
                __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(s), magic);
                acc[r] = _mm256_fmadd_ps(f, _mm256_broadcast_ss(scp + 8 * r + k), acc[r]);
            }
        }
    }
    for (; j < nb; j++) {
        __m256i y = _mm256_loadu_si256((const __m256i *)(xq + j * QK8_0));
        __m256i c = _mm256_loadu_si256((const __m256i *)(corr + j * 8));
        UNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *b = w + (size_t)r * ws + (size_t)j * sizeof(struct block_q4_0);
            __m256i s = _mm256_dpbusd_epi32(c, q4_nibbles16(b + 2), y);
            __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(s), magic);
            acc[r] = _mm256_fmadd_ps(f, _mm256_set1_ps(h2f(load_u16(b)) * dx[j]), acc[r]);
        }
    }
    const __m256 unscale = _mm256_set_ps(0.0625f, 0.0625f, 0.0625f, 0.0625f, 1, 1, 1, 1);
    UNROLL
    for (int r = 0; r < R; r++) out[r] = hsum256(_mm256_mul_ps(acc[r], unscale));
}

static void q4_matvec(int64_t n, int nr, const void *w, size_t ws, const void *xa, float *out)
{
    const uint8_t *wb = w;
    int64_t nb = n / QK4_0;
    int r = 0;
    /* prefetching (never loading) runs 8 rows past the end: callers walk matrices in chunks */
    const char *end = (const char *)wb + (size_t)(nr + 8) * ws;
    /* 8 rows share each activation load (measured best: 4 leaves load slots idle, 16 spills) */
    for (; r + 8 <= nr; r += 8)
        q4_mv_rows(8, nb, wb + (size_t)r * ws, ws, xa, out + r, (const char *)wb + (size_t)(r + 8) * ws, end);
    for (; r + 4 <= nr; r += 4) q4_mv_rows(4, nb, wb + (size_t)r * ws, ws, xa, out + r, end, end);
    for (; r < nr; r++) q4_mv_rows(1, nb, wb + (size_t)r * ws, ws, xa, out + r, end, end);
}

/* ---- gemm: 16-row panels, K in chunks of KC blocks, 8-token register tiles ---- */

#define GM_ROWS 16
#define GM_KC 16
#define GM_TT 8

/* Repacks rows [0, nr) (nr <= 16; missing rows are zero with scale 0) of blocks [j0, j0+kc) into
 * pk[8*jj + s] = for each row r, the 4 nibbles of elements 4s..4s+3 in 32-bit lane r, and
 * pd[16*jj + r] = the row's block scale. */
static void q4_pack(const uint8_t *w, size_t ws, int nr, int64_t j0, int kc, __m512i *pk, float *pd)
{
    /* dword (row i, s) of a 4-row group sits at lane i, position s; vpermd with this index moves
     * it to lane s, position i */
    const __m512i tr = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int jj = 0; jj < kc; jj++) {
        size_t off = (size_t)(j0 + jj) * sizeof(struct block_q4_0);
        __m512i t[4];
        uint16_t hd[16] __attribute__((aligned(32)));
        for (int g = 0; g < 4; g++) {
            __m128i q[4];
            UNROLL
            for (int i = 0; i < 4; i++) {
                int r = 4 * g + i;
                if (r < nr) {
                    q[i] = _mm_loadu_si128((const __m128i *)(w + (size_t)r * ws + off + 2));
                    hd[r] = load_u16(w + (size_t)r * ws + off);
                } else {
                    q[i] = _mm_setzero_si128();
                    hd[r] = 0;
                }
            }
            __m512i z = _mm512_castsi128_si512(q[0]);
            z = _mm512_inserti32x4(z, q[1], 1);
            z = _mm512_inserti32x4(z, q[2], 2);
            z = _mm512_inserti32x4(z, q[3], 3);
            t[g] = _mm512_permutexvar_epi32(tr, z);
        }
        __m512i u0 = _mm512_shuffle_i32x4(t[0], t[1], 0x44), u1 = _mm512_shuffle_i32x4(t[0], t[1], 0xee);
        __m512i u2 = _mm512_shuffle_i32x4(t[2], t[3], 0x44), u3 = _mm512_shuffle_i32x4(t[2], t[3], 0xee);
        __m512i a[4] = {
            _mm512_shuffle_i32x4(u0, u2, 0x88), _mm512_shuffle_i32x4(u0, u2, 0xdd),
            _mm512_shuffle_i32x4(u1, u3, 0x88), _mm512_shuffle_i32x4(u1, u3, 0xdd),
        };
        UNROLL
        for (int s = 0; s < 4; s++) {
            pk[8 * jj + s] = _mm512_and_si512(a[s], m4);
            pk[8 * jj + s + 4] = _mm512_and_si512(_mm512_srli_epi16(a[s], 4), m4);
        }
        _mm512_store_ps(pd + 16 * jj, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)hd)));
    }
}

/* T tokens x 16 packed rows over kc blocks starting at block j0; acc[t] holds the 16 row sums.
 * The k loop is outside the token loop so the T accumulation chains interleave (vpdpbusd has a
 * latency of several cycles). */
INLINE void q4_gemm_tile(int T, int kc, const __m512i *pk, const float *pd, const char *xa,
                         size_t xs, int64_t nb, int64_t j0, __m512 *acc)
{
    const __m512 magic = _mm512_set1_ps(Q8X_MAGIC_F);
    for (int jj = 0; jj < kc; jj++) {
        int64_t j = j0 + jj;
        __m512i s[GM_TT];
        UNROLL
        for (int t = 0; t < T; t++) s[t] = _mm512_set1_epi32(q8x_bsum(xa + (size_t)t * xs, nb)[j]);
        UNROLL
        for (int k = 0; k < 8; k++) {
            __m512i a = pk[8 * jj + k];
            UNROLL
            for (int t = 0; t < T; t++) s[t] = _mm512_dpbusd_epi32(s[t], a, _mm512_set1_epi32(load_i32(q8x_qs(xa + (size_t)t * xs) + j * QK8_0 + 4 * k)));
        }
        __m512 dw = _mm512_load_ps(pd + 16 * jj);
        UNROLL
        for (int t = 0; t < T; t++) {
            __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(q8x_d(xa + (size_t)t * xs, nb)[j]));
            acc[t] = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_castsi512_ps(s[t]), magic), sc, acc[t]);
        }
    }
}

INLINE void q4_gemm_tokens(int T, int kc, const __m512i *pk, const float *pd, const char *xa, size_t xs,
                           int64_t nb, int64_t j0, float *out, size_t os, __mmask16 rm)
{
    __m512 acc[GM_TT];
    UNROLL
    for (int t = 0; t < T; t++)
        acc[t] = j0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(rm, out + (size_t)t * os);
    q4_gemm_tile(T, kc, pk, pd, xa, xs, nb, j0, acc);
    UNROLL
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(out + (size_t)t * os, rm, acc[t]);
}

static void q4_gemm(int64_t n, int nr, int nt, const void *w, size_t ws, const void *xa, size_t xs,
                    float *out, size_t os)
{
    __m512i pk[GM_KC * 8];
    float pd[GM_KC * 16] __attribute__((aligned(64)));
    int64_t nb = n / QK4_0;
    for (int r0 = 0; r0 < nr; r0 += GM_ROWS) {
        int rows = nr - r0 < GM_ROWS ? nr - r0 : GM_ROWS;
        __mmask16 rm = tail_mask16(rows);
        const uint8_t *wp = (const uint8_t *)w + (size_t)r0 * ws;
        for (int64_t j0 = 0; j0 < nb; j0 += GM_KC) {
            int kc = nb - j0 < GM_KC ? (int)(nb - j0) : GM_KC;
            q4_pack(wp, ws, rows, j0, kc, pk, pd);
            int t = 0;
            for (; t + GM_TT <= nt; t += GM_TT)
                q4_gemm_tokens(GM_TT, kc, pk, pd, (const char *)xa + (size_t)t * xs, xs, nb, j0,
                               out + (size_t)t * os + r0, os, rm);
            const char *xt = (const char *)xa + (size_t)t * xs;
            float *ot = out + (size_t)t * os + r0;
            switch (nt - t) {
            case 7: q4_gemm_tokens(7, kc, pk, pd, xt, xs, nb, j0, ot, os, rm); break;
            case 6: q4_gemm_tokens(6, kc, pk, pd, xt, xs, nb, j0, ot, os, rm); break;
            case 5: q4_gemm_tokens(5, kc, pk, pd, xt, xs, nb, j0, ot, os, rm); break;
            case 4: q4_gemm_tokens(4, kc, pk, pd, xt, xs, nb, j0, ot, os, rm); break;
            case 3: q4_gemm_tokens(3, kc, pk, pd, xt, xs, nb, j0, ot, os, rm); break;
            case 2: q4_gemm_tokens(2, kc, pk, pd, xt, xs, nb, j0, ot, os, rm); break;
            case 1: q4_gemm_tokens(1, kc, pk, pd, xt, xs, nb, j0, ot, os, rm); break;
            default: break;
            }
        }
    }
}

const struct pf_kernels pf_kernels_avx512 = {
    .name = "avx512",
    .dot = {
        [PF_TYPE_F32] = dot_f32, [PF_TYPE_F16] = dot_f16, [PF_TYPE_BF16] = dot_bf16,
        [PF_TYPE_Q8_0] = dot_q8_0, [PF_TYPE_Q4_0] = dot_q4_0,
        /* tensor/quants_extra_avx512.c */
        [PF_TYPE_Q4_1] = pf_dot_q4_1_avx512, [PF_TYPE_Q5_0] = pf_dot_q5_0_avx512, [PF_TYPE_Q5_1] = pf_dot_q5_1_avx512,
        [PF_TYPE_IQ4_NL] = pf_dot_iq4_nl_avx512,
        /* K-quants: tensor/kquants_avx512.c */
        [PF_TYPE_Q2_K] = pf_dot_q2_K_avx512, [PF_TYPE_Q3_K] = pf_dot_q3_K_avx512, [PF_TYPE_Q4_K] = pf_dot_q4_K_avx512,
        [PF_TYPE_Q5_K] = pf_dot_q5_K_avx512, [PF_TYPE_Q6_K] = pf_dot_q6_K_avx512,
    },
    .gemm = {
        [PF_TYPE_F32] = gemm_f32, [PF_TYPE_F16] = gemm_f16, [PF_TYPE_BF16] = gemm_bf16,
        [PF_TYPE_Q8_0] = gemm_q8_0_mv, [PF_TYPE_Q4_0] = gemm_q4_0,
        [PF_TYPE_Q4_1] = pf_gemm_q4_1_avx512, [PF_TYPE_Q5_0] = pf_gemm_q5_0_avx512, [PF_TYPE_Q5_1] = pf_gemm_q5_1_avx512,
        [PF_TYPE_IQ4_NL] = pf_gemm_iq4_nl_avx512,
        [PF_TYPE_Q2_K] = pf_gemm_q2_K_avx512, [PF_TYPE_Q3_K] = pf_gemm_q3_K_avx512, [PF_TYPE_Q4_K] = pf_gemm_q4_K_avx512,
        [PF_TYPE_Q5_K] = pf_gemm_q5_K_avx512, [PF_TYPE_Q6_K] = pf_gemm_q6_K_avx512,
    },
    .dequant = {
        [PF_TYPE_F16] = dequant_f16, [PF_TYPE_BF16] = dequant_bf16,
        [PF_TYPE_Q8_0] = dequant_q8_0, [PF_TYPE_Q4_0] = dequant_q4_0,
    },
    .from_f32 = {
        [PF_TYPE_F16] = from_f32_f16, [PF_TYPE_BF16] = from_f32_bf16, [PF_TYPE_Q8_0] = from_f32_q8_0,
        [PF_TYPE_Q8_1] = pf_from_f32_q8_1_avx2, /* tensor/quants_extra_avx2.c */
        [PF_TYPE_Q8_K] = pf_from_f32_q8_K_avx512,
    },
    .q4_act = q4_act,
    .q4_matvec = q4_matvec,
    .q4_gemm = q4_gemm,
    /* bundle kernels: tensor/bundle_kernels_avx512.c */
    .down_accum = {
        [PF_TYPE_F32] = pf_down_accum_f32_avx512, [PF_TYPE_F16] = pf_down_accum_f16_avx512,
        [PF_TYPE_Q8_0] = pf_down_accum_q8_0_avx512, [PF_TYPE_Q4_0] = pf_down_accum_q4_0_avx512,
        [PF_TYPE_Q4_K] = pf_down_accum_q4_K_avx512, [PF_TYPE_Q6_K] = pf_down_accum_q6_K_avx512,
    },
    .down_panel = {
        [PF_TYPE_F32] = pf_down_panel_f32_avx512, [PF_TYPE_F16] = pf_down_panel_f16_avx512,
        [PF_TYPE_Q8_0] = pf_down_panel_q8_0_avx512, [PF_TYPE_Q4_0] = pf_down_panel_q4_0_avx512,
        [PF_TYPE_Q2_K] = pf_down_panel_q2_K_avx512, [PF_TYPE_Q3_K] = pf_down_panel_q3_K_avx512,
        [PF_TYPE_Q4_K] = pf_down_panel_q4_K_avx512, [PF_TYPE_Q5_K] = pf_down_panel_q5_K_avx512,
        [PF_TYPE_Q6_K] = pf_down_panel_q6_K_avx512, [PF_TYPE_Q4_1] = pf_down_panel_q4_1_avx512,
        [PF_TYPE_Q5_0] = pf_down_panel_q5_0_avx512, [PF_TYPE_Q5_1] = pf_down_panel_q5_1_avx512,
        [PF_TYPE_IQ4_NL] = pf_down_panel_iq4_nl_avx512,
    },
    .gather_dot = { [PF_TYPE_Q4_0] = pf_gather_dot_q4_0_avx512 },
};
