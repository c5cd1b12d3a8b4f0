/* AVX-512 down-projection kernels on bundles (compiled with AVX-512 flags; used only when
 * pf_kernels() picked the AVX-512 table, which checks the CPU). Same bits as the reference
 * (bundle_kernels.h): every weight is dequantized exactly and added with one fma, in the same
 * order per output element.
 *
 * Float rows whose length is not a multiple of 32 go to the reference (tiny models only).
 *
 * Gathered dots (gather_dot, Q4_0 only; other types use the reference): see that section. They
 * read the q8x activation layout of the tensor kernels (tensor/q8x.h).
 *
 * Decode (down_accum): 64 outputs (4 vectors) stay in registers while all k rows pass over them,
 * so y is loaded and stored once per tile instead of once per neuron. A Q4_0 block is expanded
 * through a 16-entry table: T = (i - 8) * d for i = 0..15 (one multiply; exact), then vpermps
 * looks each nibble up (it reads only the low 4 bits of each index, so the zero-extended byte
 * indexes its low nibble without a mask).
 *
 * Prefill (down_panel): the panel of np rows x ne columns is dequantized once into scratch, then
 * 4 tokens x 64 columns of outputs live in 16 registers while the np rows stream by: per row, 4
 * loads and 4 broadcasts feed 16 fmas. */
#include "tensor/kernels.h"
#include "tensor/kquants.h"
#include "tensor/q8x.h"
#include "tensor/quants_extra.h"

#include "tensor/simd_x86.h"

#include <immintrin.h>
#include <string.h>



INLINE __m512 bcast_f16(const void *p) { return _mm512_cvtph_ps(_mm256_set1_epi16((short)load_u16(p))); }

/* ==== Exact dequantization of 32-element blocks into two vectors ==== */

INLINE void dq_q4_0(const uint8_t *blk, __m512 *w0, __m512 *w1)
{
    const __m512 iota8 = _mm512_set_ps(7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8);
    __m512 tab = _mm512_mul_ps(iota8, bcast_f16(blk));
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
    *w0 = _mm512_permutexvar_ps(q, tab);
    *w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), tab);
}

INLINE void dq_q8_0(const uint8_t *blk, __m512 *w0, __m512 *w1)
{
    __m512 d = bcast_f16(blk);
    *w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)))), d);
    *w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18)))), d);
}

INLINE void dq_f16(const uint8_t *p, __m512 *w0, __m512 *w1)
{
    *w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    *w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32)));
}

INLINE void dq_f32(const uint8_t *p, __m512 *w0, __m512 *w1)
{
    *w0 = _mm512_loadu_ps((const float *)p);
    *w1 = _mm512_loadu_ps((const float *)p + 16);
}

/* ==== Decode: y += sum_i h[i] * row_i ==== */

/* BYTES = bytes of 32 elements of the type; DQ expands them. */
#define DOWN_ACCUM(T, BYTES, DQ)                                                                   \
    void pf_down_accum_##T##_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, \
                                    struct pf_pq *pq)                                              \
    {                                                                                              \
        if (n % 32) { pf_down_accum_##T##_ref(rows, h, k, y, n, pq); return; }                     \
        int64_t nb = n / 32, b = 0;                                                                \
        const int lines = (k * 2 * (BYTES) + 63) / 64 + 1; /* what a tile consumes, and one more */ \
        for (; b + 2 <= nb; b += 2) {                                                              \
            float *yp = y + b * 32;                                                                \
            pf_pq_issue(pq, lines);                                                                \
            __m512 a0 = _mm512_loadu_ps(yp), a1 = _mm512_loadu_ps(yp + 16);                        \
            __m512 a2 = _mm512_loadu_ps(yp + 32), a3 = _mm512_loadu_ps(yp + 48);                   \
            for (int i = 0; i < k; i++) {                                                          \
                const uint8_t *p = (const uint8_t *)rows[i] + (size_t)b * (BYTES);                 \
                __m512 hv = _mm512_set1_ps(h[i]), w0, w1, w2, w3;                                  \
                DQ(p, &w0, &w1);                                                                   \
                DQ(p + (BYTES), &w2, &w3);                                                         \
                a0 = _mm512_fmadd_ps(hv, w0, a0);                                                  \
                a1 = _mm512_fmadd_ps(hv, w1, a1);                                                  \
                a2 = _mm512_fmadd_ps(hv, w2, a2);                                                  \
                a3 = _mm512_fmadd_ps(hv, w3, a3);                                                  \
            }                                                                                      \
            _mm512_storeu_ps(yp, a0); _mm512_storeu_ps(yp + 16, a1);                               \
            _mm512_storeu_ps(yp + 32, a2); _mm512_storeu_ps(yp + 48, a3);                          \
        }                                                                                          \
        if (b < nb) {                                                                              \
            float *yp = y + b * 32;                                                                \
            __m512 a0 = _mm512_loadu_ps(yp), a1 = _mm512_loadu_ps(yp + 16);                        \
            for (int i = 0; i < k; i++) {                                                          \
                const uint8_t *p = (const uint8_t *)rows[i] + (size_t)b * (BYTES);                 \
                __m512 hv = _mm512_set1_ps(h[i]), w0, w1;                                          \
                DQ(p, &w0, &w1);                                                                   \
                a0 = _mm512_fmadd_ps(hv, w0, a0);                                                  \
                a1 = _mm512_fmadd_ps(hv, w1, a1);                                                  \
            }                                                                                      \
            _mm512_storeu_ps(yp, a0); _mm512_storeu_ps(yp + 16, a1);                               \
        }                                                                                          \
    }

DOWN_ACCUM(q8_0, 34, dq_q8_0)
DOWN_ACCUM(f16, 64, dq_f16)
DOWN_ACCUM(f32, 128, dq_f32)

/* Q4_0 gets its own decode kernel: the generic one spends a word broadcast and an f16
 * conversion per block on the scale, both on the shuffle pipes the two table lookups need.
 * Here the scales of a strip of DA_COLS blocks are converted 8 at a time per row (one
 * word permute and one conversion per 8 blocks) into sc[][], and each block's table is one
 * broadcast load and one multiply. A tile is 4 blocks (128 outputs, 8 registers) over the
 * strip's rows; rows are taken DA_ROWS at a time, in order, so every output element still sees
 * its terms in row order, one fma each. */
#define DA_ROWS 16
#define DA_COLS 32 /* blocks per strip (a multiple of 8) */

/* 8 block scales of the Q4_0 blocks at p (144 bytes) as floats; reads 128 bytes from p */
INLINE __m256 q4_scales8(const uint8_t *p)
{
    const __m512i didx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 0, 63, 54, 45, 36, 27, 18, 9, 0);
    __m512i hh = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), didx, _mm512_loadu_si512(p + 64));
    return _mm256_cvtph_ps(_mm512_castsi512_si128(hh));
}

/* w0 (elements 0..15) and w1 (16..31) of the block at p, whose scale is *d */
INLINE void dq_q4_0_s(const uint8_t *p, const float *d, __m512 *w0, __m512 *w1)
{
    const __m512 iota8 = _mm512_set_ps(7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8);
    __m512 tab = _mm512_mul_ps(iota8, _mm512_set1_ps(*d));
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)));
    *w0 = _mm512_permutexvar_ps(q, tab);
    *w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), tab);
}

/* y[32*b0 .. 32*b1) += rows' terms, nb0 = b1 - b0 <= DA_COLS blocks, k <= DA_ROWS rows */
static void q4_down_strip(const uint8_t *const *rows, const float *h, int k, float *y, int64_t b0, int64_t b1,
                          int lines, struct pf_pq *pq)
{
    float sc[DA_ROWS][DA_COLS] __attribute__((aligned(64)));
    for (int i = 0; i < k; i++) {
        const uint8_t *p = rows[i] + (size_t)b0 * 18;
        int64_t j = 0;
        for (; b0 + j + 8 <= b1; j += 8) _mm256_store_ps(&sc[i][j], q4_scales8(p + (size_t)j * 18));
        for (; b0 + j < b1; j++) sc[i][j] = _cvtsh_ss(load_u16(p + (size_t)j * 18));
    }
    int64_t b = b0;
    for (; b + 4 <= b1; b += 4) {
        float *yp = y + b * 32;
        const int jj = (int)(b - b0);
        pf_pq_issue(pq, lines);
        __m512 a0 = _mm512_loadu_ps(yp), a1 = _mm512_loadu_ps(yp + 16), a2 = _mm512_loadu_ps(yp + 32);
        __m512 a3 = _mm512_loadu_ps(yp + 48), a4 = _mm512_loadu_ps(yp + 64), a5 = _mm512_loadu_ps(yp + 80);
        __m512 a6 = _mm512_loadu_ps(yp + 96), a7 = _mm512_loadu_ps(yp + 112);
        for (int i = 0; i < k; i++) {
            const uint8_t *p = rows[i] + (size_t)b * 18;
            const float *d = &sc[i][jj];
            __m512 hv = _mm512_set1_ps(h[i]), w0, w1;
            dq_q4_0_s(p, d, &w0, &w1);
            a0 = _mm512_fmadd_ps(hv, w0, a0);
            a1 = _mm512_fmadd_ps(hv, w1, a1);
            dq_q4_0_s(p + 18, d + 1, &w0, &w1);
            a2 = _mm512_fmadd_ps(hv, w0, a2);
            a3 = _mm512_fmadd_ps(hv, w1, a3);
            dq_q4_0_s(p + 36, d + 2, &w0, &w1);
            a4 = _mm512_fmadd_ps(hv, w0, a4);
            a5 = _mm512_fmadd_ps(hv, w1, a5);
            dq_q4_0_s(p + 54, d + 3, &w0, &w1);
            a6 = _mm512_fmadd_ps(hv, w0, a6);
            a7 = _mm512_fmadd_ps(hv, w1, a7);
        }
        _mm512_storeu_ps(yp, a0); _mm512_storeu_ps(yp + 16, a1); _mm512_storeu_ps(yp + 32, a2);
        _mm512_storeu_ps(yp + 48, a3); _mm512_storeu_ps(yp + 64, a4); _mm512_storeu_ps(yp + 80, a5);
        _mm512_storeu_ps(yp + 96, a6); _mm512_storeu_ps(yp + 112, a7);
    }
    for (; b < b1; b++) {
        float *yp = y + b * 32;
        __m512 a0 = _mm512_loadu_ps(yp), a1 = _mm512_loadu_ps(yp + 16);
        for (int i = 0; i < k; i++) {
            __m512 hv = _mm512_set1_ps(h[i]), w0, w1;
            dq_q4_0_s(rows[i] + (size_t)b * 18, &sc[i][b - b0], &w0, &w1);
            a0 = _mm512_fmadd_ps(hv, w0, a0);
            a1 = _mm512_fmadd_ps(hv, w1, a1);
        }
        _mm512_storeu_ps(yp, a0); _mm512_storeu_ps(yp + 16, a1);
    }
}

void pf_down_accum_q4_0_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq)
{
    if (n % 32) { pf_down_accum_q4_0_ref(rows, h, k, y, n, pq); return; }
    const int64_t nb = n / 32;
    const uint8_t *const *r = (const uint8_t *const *)rows;
    for (int i0 = 0; i0 < k; i0 += DA_ROWS) {
        const int kk = k - i0 < DA_ROWS ? k - i0 : DA_ROWS;
        const int lines = (kk * 4 * 18 + 63) / 64 + 1; /* what a tile consumes, and one more */
        for (int64_t b0 = 0; b0 < nb; b0 += DA_COLS)
            q4_down_strip(r + i0, h + i0, kk, y, b0, b0 + DA_COLS < nb ? b0 + DA_COLS : nb, lines, pq);
    }
}

/* ==== Prefill: panels ==== */

/* TT tokens x 64 columns (4 vectors each) of outputs against the dequantized rows listed in
 * ps[0..n) (the rows where some of the TT activations is not zero). */
INLINE void panel_tile(int TT, const int *ps, int n, const float *w, int ne, const float *h, size_t hs, float *y, size_t ys)
{
    __m512 acc[4][4];
    UNROLL
    for (int t = 0; t < TT; t++)
        UNROLL
        for (int v = 0; v < 4; v++) acc[t][v] = _mm512_loadu_ps(y + (size_t)t * ys + 16 * v);
    for (int i = 0; i < n; i++) {
        const int p = ps[i];
        const float *wp = w + (size_t)p * ne;
        __m512 wv[4];
        UNROLL
        for (int v = 0; v < 4; v++) wv[v] = _mm512_loadu_ps(wp + 16 * v);
        UNROLL
        for (int t = 0; t < TT; t++) {
            __m512 hv = _mm512_set1_ps(h[(size_t)t * hs + (size_t)p]);
            UNROLL
            for (int v = 0; v < 4; v++) acc[t][v] = _mm512_fmadd_ps(hv, wv[v], acc[t][v]);
        }
    }
    UNROLL
    for (int t = 0; t < TT; t++)
        UNROLL
        for (int v = 0; v < 4; v++) _mm512_storeu_ps(y + (size_t)t * ys + 16 * v, acc[t][v]);
}

/* The same for a last 32-column strip (2 vectors). */
INLINE void panel_tile32(int TT, const int *ps, int n, const float *w, int ne, const float *h, size_t hs, float *y, size_t ys)
{
    __m512 acc[4][2];
    UNROLL
    for (int t = 0; t < TT; t++)
        UNROLL
        for (int v = 0; v < 2; v++) acc[t][v] = _mm512_loadu_ps(y + (size_t)t * ys + 16 * v);
    for (int i = 0; i < n; i++) {
        const int p = ps[i];
        const float *wp = w + (size_t)p * ne;
        __m512 w0 = _mm512_loadu_ps(wp), w1 = _mm512_loadu_ps(wp + 16);
        UNROLL
        for (int t = 0; t < TT; t++) {
            __m512 hv = _mm512_set1_ps(h[(size_t)t * hs + (size_t)p]);
            acc[t][0] = _mm512_fmadd_ps(hv, w0, acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(hv, w1, acc[t][1]);
        }
    }
    UNROLL
    for (int t = 0; t < TT; t++)
        UNROLL
        for (int v = 0; v < 2; v++) _mm512_storeu_ps(y + (size_t)t * ys + 16 * v, acc[t][v]);
}

/* Rows whose activations are zero for all tokens of a group are skipped: their terms are
 * h * w = ±0, which change no sum (ReLU-family prompts are mostly zeros). */
static void panel_run(int np, const float *w, int ne, const float *h, size_t hs, int nt, float *y, size_t ys)
{
    int ps[PF_PANEL_ROWS];
    for (int t = 0; t < nt; t += 4) {
        int tt = nt - t < 4 ? nt - t : 4;
        const float *ht = h + (size_t)t * hs;
        float *yt = y + (size_t)t * ys;
        int n = 0;
        for (int p = 0; p < np; p++) {
            bool any = false;
            for (int k = 0; k < tt; k++) any |= ht[(size_t)k * hs + (size_t)p] != 0;
            ps[n] = p;
            n += any;
        }
        int c = 0;
        for (; c + 64 <= ne; c += 64) {
            switch (tt) {
            case 4: panel_tile(4, ps, n, w + c, ne, ht, hs, yt + c, ys); break;
            case 3: panel_tile(3, ps, n, w + c, ne, ht, hs, yt + c, ys); break;
            case 2: panel_tile(2, ps, n, w + c, ne, ht, hs, yt + c, ys); break;
            default: panel_tile(1, ps, n, w + c, ne, ht, hs, yt + c, ys); break;
            }
        }
        if (c < ne) { /* ne is a multiple of 32 */
            switch (tt) {
            case 4: panel_tile32(4, ps, n, w + c, ne, ht, hs, yt + c, ys); break;
            case 3: panel_tile32(3, ps, n, w + c, ne, ht, hs, yt + c, ys); break;
            case 2: panel_tile32(2, ps, n, w + c, ne, ht, hs, yt + c, ys); break;
            default: panel_tile32(1, ps, n, w + c, ne, ht, hs, yt + c, ys); break;
            }
        }
    }
}

#define DOWN_PANEL(T, BYTES, DQ)                                                                   \
    void pf_down_panel_##T##_avx512(const void *rows, size_t rs, int np, int64_t e0, int ne,       \
                                    const float *h, size_t hs, int nt, float *y, size_t ys,        \
                                    float *scratch)                                                \
    {                                                                                              \
        if (ne % 32 || e0 % 32) { /* float rows of odd length: rare, tiny models */                \
            pf_down_panel_##T##_ref(rows, rs, np, e0, ne, h, hs, nt, y, ys, scratch);              \
            return;                                                                                \
        }                                                                                          \
        for (int p = 0; p < np; p++) {                                                             \
            const uint8_t *src = (const uint8_t *)rows + (size_t)p * rs + (size_t)(e0 / 32) * (BYTES); \
            float *dst = scratch + (size_t)p * ne;                                                 \
            for (int e = 0; e < ne; e += 32) {                                                     \
                __m512 w0, w1;                                                                     \
                DQ(src + (size_t)(e / 32) * (BYTES), &w0, &w1);                                    \
                _mm512_storeu_ps(dst + e, w0);                                                     \
                _mm512_storeu_ps(dst + e + 16, w1);                                                \
            }                                                                                      \
        }                                                                                          \
        panel_run(np, scratch, ne, h, hs, nt, y, ys);                                              \
    }

DOWN_PANEL(q4_0, 18, dq_q4_0)
DOWN_PANEL(q8_0, 34, dq_q8_0)
DOWN_PANEL(f16, 64, dq_f16)
DOWN_PANEL(f32, 128, dq_f32)

/* ==== K-quants (Q4_K, Q6_K): a super-block of 256 as 16 vectors ====
 * Each vector is computed as tensor/kquants_ref.c's dequant computes it, operation for operation:
 * the sub-block's scale dl = d * sc (and for Q4_K its min ml = dmin * m) as scalar products,
 * then dl * q (- ml), a multiply and a subtract with no fma (C11 mode keeps -ffp-contract=off),
 * so the weights are the reference's floats and the fmas that add them are the reference's too.
 * Decode keeps a whole super-block of outputs (16 vectors) in registers while the rows pass. */

/* Per-sub-block scale and min of a Q4_K block as floats: dl[j] = d * sc_j, ml[j] = dmin * m_j
 * (j < 8), by one 16-lane multiply of the unpacked 6-bit values. */
INLINE void q4k_scales(const uint8_t *blk, float dl[8], float ml[8])
{
    uint64_t w[2];
    kq_scales_k4_words(blk + 4, w);
    __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)w)));
    __m512 dm = _mm512_insertf32x8(_mm512_set1_ps(h2f(load_u16(blk))), _mm256_set1_ps(h2f(load_u16(blk + 2))), 1);
    float out[16];
    _mm512_storeu_ps(out, _mm512_mul_ps(v, dm));
    memcpy(dl, out, 8 * sizeof(float));
    memcpy(ml, out + 8, 8 * sizeof(float));
}

/* Elements 16v .. 16v+15 of a Q4_K block: sub-block j = v / 2 in bytes qs[32 (v / 4) + 16 (v % 2)
 * ...], low nibbles for even j, high for odd. */
INLINE __m512 q4k_vec(const uint8_t *blk, int v, const float *dl, const float *ml)
{
    const int j = v / 2;
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 16 + 32 * (v / 4) + 16 * (v % 2))));
    if (j & 1) q = _mm512_srli_epi32(q, 4);
    q = _mm512_and_si512(q, _mm512_set1_epi32(15));
    return _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[j]), _mm512_cvtepi32_ps(q)), _mm512_set1_ps(ml[j]));
}

/* dl[j] = d * scales[j] of a Q6_K block (j < 16). */
INLINE void q6k_scales(const uint8_t *blk, float dl[16])
{
    __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192))));
    _mm512_storeu_ps(dl, _mm512_mul_ps(v, _mm512_set1_ps(h2f(load_u16(blk + 208)))));
}

/* Elements 16v .. 16v+15 of a Q6_K block (sub-block v): half h = v / 8, r0 = 16 (v % 8), quarter
 * k = r0 / 32; low 4 bits from ql[64h + r0 % 64] (high nibble for k >= 2), top 2 bits from
 * qh[32h + r0 % 32] >> 2k; q - 32. */
INLINE __m512 q6k_vec(const uint8_t *blk, int v, const float *dl)
{
    const int h = v / 8, r0 = 16 * (v % 8), k = r0 / 32;
    __m512i lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 64 * h + r0 % 64)));
    __m512i hi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 128 + 32 * h + r0 % 32)));
    if (k >= 2) lo = _mm512_srli_epi32(lo, 4);
    lo = _mm512_and_si512(lo, _mm512_set1_epi32(15));
    hi = _mm512_and_si512(_mm512_srli_epi32(hi, 2 * k), _mm512_set1_epi32(3));
    __m512i q = _mm512_sub_epi32(_mm512_or_si512(_mm512_slli_epi32(hi, 4), lo), _mm512_set1_epi32(32));
    return _mm512_mul_ps(_mm512_set1_ps(dl[v]), _mm512_cvtepi32_ps(q));
}

/* A whole block into 256 floats (the prefill panels). */
INLINE void q4k_block(const uint8_t *blk, float *dst)
{
    float dl[8], ml[8];
    q4k_scales(blk, dl, ml);
    UNROLL
    for (int v = 0; v < 16; v++) _mm512_storeu_ps(dst + 16 * v, q4k_vec(blk, v, dl, ml));
}

INLINE void q6k_block(const uint8_t *blk, float *dst)
{
    float dl[16];
    q6k_scales(blk, dl);
    UNROLL
    for (int v = 0; v < 16; v++) _mm512_storeu_ps(dst + 16 * v, q6k_vec(blk, v, dl));
}

void pf_down_accum_q4_K_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq)
{
    const int lines = (k * (int)sizeof(struct block_q4_K) + 63) / 64 + 1;
    for (int64_t b = 0; b < n / QK_K; b++) {
        float *yp = y + b * QK_K;
        pf_pq_issue(pq, lines);
        __m512 acc[16];
        UNROLL
        for (int v = 0; v < 16; v++) acc[v] = _mm512_loadu_ps(yp + 16 * v);
        for (int i = 0; i < k; i++) {
            const uint8_t *blk = (const uint8_t *)rows[i] + (size_t)b * sizeof(struct block_q4_K);
            float dl[8], ml[8];
            q4k_scales(blk, dl, ml);
            const __m512 hv = _mm512_set1_ps(h[i]);
            UNROLL
            for (int v = 0; v < 16; v++) acc[v] = _mm512_fmadd_ps(hv, q4k_vec(blk, v, dl, ml), acc[v]);
        }
        UNROLL
        for (int v = 0; v < 16; v++) _mm512_storeu_ps(yp + 16 * v, acc[v]);
    }
}

void pf_down_accum_q6_K_avx512(const void *const *rows, const float *h, int k, float *y, int64_t n, struct pf_pq *pq)
{
    const int lines = (k * (int)sizeof(struct block_q6_K) + 63) / 64 + 1;
    for (int64_t b = 0; b < n / QK_K; b++) {
        float *yp = y + b * QK_K;
        pf_pq_issue(pq, lines);
        __m512 acc[16];
        UNROLL
        for (int v = 0; v < 16; v++) acc[v] = _mm512_loadu_ps(yp + 16 * v);
        for (int i = 0; i < k; i++) {
            const uint8_t *blk = (const uint8_t *)rows[i] + (size_t)b * sizeof(struct block_q6_K);
            float dl[16];
            q6k_scales(blk, dl);
            const __m512 hv = _mm512_set1_ps(h[i]);
            UNROLL
            for (int v = 0; v < 16; v++) acc[v] = _mm512_fmadd_ps(hv, q6k_vec(blk, v, dl), acc[v]);
        }
        UNROLL
        for (int v = 0; v < 16; v++) _mm512_storeu_ps(yp + 16 * v, acc[v]);
    }
}

/* Prefill panels of block types: the panel dequantized into scratch block by block (Q4_K and
 * Q6_K above; every other block type by its reference dequant, which is the specification's
 * value by definition), then the shared register tiles. e0 and ne are multiples of the block. */
static void panel_blocks(int type, const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h, size_t hs,
                         int nt, float *y, size_t ys, float *scratch)
{
    const struct pf_type_info *ti = pf_type_get(type);
    const int blck = ti->blck;
    for (int p = 0; p < np; p++) {
        const uint8_t *src = (const uint8_t *)rows + (size_t)p * rs + (size_t)(e0 / blck) * ti->size;
        float *dst = scratch + (size_t)p * ne;
        for (int e = 0; e < ne; e += blck) {
            const uint8_t *blk = src + (size_t)(e / blck) * ti->size;
            if (type == PF_TYPE_Q4_K) q4k_block(blk, dst + e);
            else if (type == PF_TYPE_Q6_K) q6k_block(blk, dst + e);
            else pf_kernels_ref.dequant[type](blk, dst + e, blck);
        }
    }
    panel_run(np, scratch, ne, h, hs, nt, y, ys);
}

#define DOWN_PANEL_BLOCKS(T, U)                                                                     \
    void pf_down_panel_##T##_avx512(const void *rows, size_t rs, int np, int64_t e0, int ne,        \
                                    const float *h, size_t hs, int nt, float *y, size_t ys,         \
                                    float *scratch)                                                 \
    {                                                                                               \
        panel_blocks(PF_TYPE_##U, rows, rs, np, e0, ne, h, hs, nt, y, ys, scratch);                 \
    }

DOWN_PANEL_BLOCKS(q2_K, Q2_K)
DOWN_PANEL_BLOCKS(q3_K, Q3_K)
DOWN_PANEL_BLOCKS(q4_K, Q4_K)
DOWN_PANEL_BLOCKS(q5_K, Q5_K)
DOWN_PANEL_BLOCKS(q6_K, Q6_K)
DOWN_PANEL_BLOCKS(q4_1, Q4_1)
DOWN_PANEL_BLOCKS(q5_0, Q5_0)
DOWN_PANEL_BLOCKS(q5_1, Q5_1)
DOWN_PANEL_BLOCKS(iq4_nl, IQ4_NL)

/* ==== Decode: gathered Q4_0 rows against a q8x activation ====
 * Per block the arithmetic of the tensor table's AVX-512 q4_matvec (kernels_avx512.c): an u8 x
 * s8 dot of the raw nibbles with the activation quants started from the q8x correction term
 * (q8x.h), the magic-number float conversion, and an fma by the product of the two block scales,
 * 8 fp32 lanes per row, lanes 4..7 scaled by 1/16 at the end. Rows come from a list instead of a
 * fixed stride, R at a time, and each row sums its blocks into 4 accumulators (block j into
 * accumulator j mod 4) added at the end: a sparse step often has only one or two rows to
 * compute, and one chain of dependent fmas per row would leave the kernel latency-bound. The
 * result of a row does not depend on R or on the other rows of the call (the oracle == off
 * invariant relies on it), but differs from q4_matvec's by float reassociation. */

INLINE __m256i q4_nibbles16(const uint8_t *qs)
{
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(q, _mm256_set_m128i(_mm_set1_epi8((char)0xf0), _mm_set1_epi8(0x0f)));
}

INLINE void q4_gather_rows(int R, int64_t nb, const uint8_t *const *w, const void *xa, float *out, struct pf_pq *pq)
{
    const int8_t *xq = q8x_qs(xa);
    const int32_t *corr = q8x_corr(xa, nb);
    const float *dx = q8x_d(xa, nb);
    const __m256 magic = _mm256_set1_ps(Q8X_MAGIC_F);
    const __m512i didx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 0, 63, 54, 45, 36, 27, 18, 9, 0);
    const int lines = (R * 8 * 18) / 64 + 1; /* what an 8-block step consumes, and one more */
    __m256 acc[4][4];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int a = 0; a < 4; a++) acc[r][a] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= nb; j += 8) {
        float sc[4][8] __attribute__((aligned(32)));
        __m256 dx8 = _mm256_loadu_ps(dx + j);
        pf_pq_issue(pq, lines);
        UNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w[r] + (size_t)j * 18;
            __m512i hh = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), didx, _mm512_loadu_si512(p + 64));
            _mm256_store_ps(sc[r], _mm256_mul_ps(_mm256_cvtph_ps(_mm512_castsi512_si128(hh)), dx8));
        }
        UNROLL
        for (int k = 0; k < 8; k++) {
            __m256i y = _mm256_loadu_si256((const __m256i *)(xq + (j + k) * 32));
            __m256i c = _mm256_loadu_si256((const __m256i *)(corr + (j + k) * 8));
            UNROLL
            for (int r = 0; r < R; r++) {
                const uint8_t *b = w[r] + (size_t)(j + k) * 18;
                __m256i s = _mm256_dpbusd_epi32(c, q4_nibbles16(b + 2), y);
                __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(s), magic);
                acc[r][k & 3] = _mm256_fmadd_ps(f, _mm256_broadcast_ss(&sc[r][k]), acc[r][k & 3]);
            }
        }
    }
    for (; j < nb; j++) {
        __m256i y = _mm256_loadu_si256((const __m256i *)(xq + j * 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(corr + j * 8));
        UNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *b = w[r] + (size_t)j * 18;
            __m256i s = _mm256_dpbusd_epi32(c, q4_nibbles16(b + 2), y);
            __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(s), magic);
            acc[r][j & 3] = _mm256_fmadd_ps(f, _mm256_set1_ps(_cvtsh_ss(load_u16(b)) * dx[j]), acc[r][j & 3]);
        }
    }
    const __m256 unscale = _mm256_set_ps(0.0625f, 0.0625f, 0.0625f, 0.0625f, 1, 1, 1, 1);
    UNROLL
    for (int r = 0; r < R; r++) {
        __m256 t = _mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3]));
        out[r] = hsum256(_mm256_mul_ps(t, unscale));
    }
}

void pf_gather_dot_q4_0_avx512(const struct pf_kernels *kt, const void *const *rows, int k, const void *xa, int64_t n,
                               float *out, struct pf_pq *pq)
{
    if (!kt->q4_matvec) { /* xa is plain Q8_0: not this kernel's layout */
        pf_gather_dot_q4_0_ref(kt, rows, k, xa, n, out, pq);
        return;
    }
    const uint8_t *const *w = (const uint8_t *const *)rows;
    int64_t nb = n / 32;
    int i = 0;
    for (; i + 4 <= k; i += 4) q4_gather_rows(4, nb, w + i, xa, out + i, pq);
    switch (k - i) {
    case 3: q4_gather_rows(3, nb, w + i, xa, out + i, pq); break;
    case 2: q4_gather_rows(2, nb, w + i, xa, out + i, pq); break;
    case 1: q4_gather_rows(1, nb, w + i, xa, out + i, pq); break;
    default: break;
    }
}
