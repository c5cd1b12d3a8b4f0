/* Reference K-quant kernels (layouts: tensor/kquants.h): dequantization, the dots with Q8_K
 * activations, and llama.cpp's reference quantizers. Plain C, no fast-math; the specification
 * the SIMD files are tested against and the fallback on CPUs without AVX2.
 *
 * Dots: per super-block, exact integer sums (each sub-block's integer scale times the sum of
 * its q * x), then one float step, s += (dx * d) * isum - (dx * dmin) * msum, the min term taken
 * from the activation's bsums: the arithmetic of ggml's scalar ggml_vec_dot_*_K_q8_K, whose
 * results these equal up to float reassociation.
 *
 * Quantizers: llama.cpp's quantize_row_{q2,q3,q4,q5,q6,q8}_K_ref with the same float operations
 * in the same order, so they write the bytes llama.cpp writes (what llama-quantize writes
 * without an importance matrix), with one deliberate difference: an all-zero Q8_K block gets
 * zero bsums where llama.cpp leaves them unwritten. "The same bytes" holds because neither side
 * fuses a*b+c into an FMA: this file is built without -mfma and C11 mode keeps
 * -ffp-contract=off; llama.cpp builds ggml-quants.c (ggml-base) without -march flags. Checked
 * against llama.cpp (built that way) on random rows of every type: identical bytes, identical
 * dequantized floats, dots equal to its AVX2 dots within float reassociation. A llama.cpp
 * built with FMA contraction in ggml-base would differ in rare last-bit decisions. */
#include "tensor/kquants.h"

#include <math.h>
#include <string.h>

/* ==== Decoding a super-block into integers ==== */

/* One super-block as integers: value e = (d * sc[j]) * q[e] - dmin * m[j] for j = e / sub (the
 * min term only when has_min), exactly how ggml's dequantizers compute it. */
struct kq_int {
    int8_t q[QK_K];
    int sub;            /* elements per sub-block: 16 or 32 */
    int16_t sc[16], m[16];
    float d, dmin;
    bool has_min;
};

static void decode_q2_K(const struct block_q2_K *b, struct kq_int *o)
{
    for (int e = 0; e < QK_K; e++)
        o->q[e] = (int8_t)((b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3);
    for (int j = 0; j < 16; j++) {
        o->sc[j] = b->scales[j] & 15;
        o->m[j] = b->scales[j] >> 4;
    }
    o->sub = 16;
    o->d = pf_fp16_to_fp32(b->d);
    o->dmin = pf_fp16_to_fp32(b->dmin);
    o->has_min = true;
}

static void decode_q3_K(const struct block_q3_K *b, struct kq_int *o)
{
    for (int e = 0; e < QK_K; e++) {
        int lo = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        int hi = (b->hmask[e % 32] >> (e / 32)) & 1;
        o->q[e] = (int8_t)(lo - (hi ? 0 : 4));
    }
    int8_t s[16];
    kq_scales_q3(b->scales, s);
    for (int j = 0; j < 16; j++) o->sc[j] = s[j];
    o->sub = 16;
    o->d = pf_fp16_to_fp32(b->d);
    o->dmin = 0;
    o->has_min = false;
}

/* Q4_K and Q5_K share scales and nibbles; qh (NULL for Q4_K) adds the fifth bit. */
static void decode_k4(uint16_t d, uint16_t dmin, const uint8_t *scales, const uint8_t *qs,
                      const uint8_t *qh, struct kq_int *o)
{
    for (int e = 0; e < QK_K; e++) {
        uint8_t byte = qs[32 * (e / 64) + e % 32];
        int q = (e % 64) < 32 ? byte & 15 : byte >> 4;
        if (qh && ((qh[e % 32] >> (e / 32)) & 1)) q += 16;
        o->q[e] = (int8_t)q;
    }
    uint8_t sc[8], m[8];
    kq_scales_k4(scales, sc, m);
    for (int j = 0; j < 8; j++) {
        o->sc[j] = sc[j];
        o->m[j] = m[j];
    }
    o->sub = 32;
    o->d = pf_fp16_to_fp32(d);
    o->dmin = pf_fp16_to_fp32(dmin);
    o->has_min = true;
}

static void decode_q6_K(const struct block_q6_K *b, struct kq_int *o)
{
    for (int e = 0; e < QK_K; e++) {
        int h = e / 128, r = e % 128, k = r / 32;
        uint8_t l = b->ql[64 * h + r % 64];
        int lo = k < 2 ? l & 15 : l >> 4;
        int hi = (b->qh[32 * h + r % 32] >> (2 * k)) & 3;
        o->q[e] = (int8_t)((hi << 4 | lo) - 32);
    }
    for (int j = 0; j < 16; j++) o->sc[j] = b->scales[j];
    o->sub = 16;
    o->d = pf_fp16_to_fp32(b->d);
    o->dmin = 0;
    o->has_min = false;
}

static void decode_q8_K(const struct block_q8_K *b, struct kq_int *o)
{
    memcpy(o->q, b->qs, QK_K);
    for (int j = 0; j < 16; j++) o->sc[j] = 1;
    o->sub = 16;
    o->d = b->d;
    o->dmin = 0;
    o->has_min = false;
}

static void decode(int type, const void *row, int64_t i, struct kq_int *o)
{
    switch (type) {
    case PF_TYPE_Q2_K: decode_q2_K((const struct block_q2_K *)row + i, o); break;
    case PF_TYPE_Q3_K: decode_q3_K((const struct block_q3_K *)row + i, o); break;
    case PF_TYPE_Q4_K: {
        const struct block_q4_K *b = (const struct block_q4_K *)row + i;
        decode_k4(b->d, b->dmin, b->scales, b->qs, NULL, o);
        break;
    }
    case PF_TYPE_Q5_K: {
        const struct block_q5_K *b = (const struct block_q5_K *)row + i;
        decode_k4(b->d, b->dmin, b->scales, b->qs, b->qh, o);
        break;
    }
    case PF_TYPE_Q6_K: decode_q6_K((const struct block_q6_K *)row + i, o); break;
    default: decode_q8_K((const struct block_q8_K *)row + i, o); break;
    }
}

/* ==== Dequantization ==== */

static void dequant(int type, const void *src, float *dst, int64_t n)
{
    struct kq_int b;
    for (int64_t i = 0; i < n / QK_K; i++) {
        decode(type, src, i, &b);
        float *y = dst + i * QK_K;
        for (int j = 0; j < QK_K / b.sub; j++) {
            const float dl = b.d * b.sc[j], ml = b.dmin * b.m[j];
            for (int e = j * b.sub; e < (j + 1) * b.sub; e++)
                y[e] = b.has_min ? dl * b.q[e] - ml : dl * b.q[e];
        }
    }
}

/* ==== Dots with Q8_K activations ==== */

static float dot(int type, const void *w, const void *x, int64_t n)
{
    const struct block_q8_K *a = x;
    struct kq_int b;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        decode(type, w, i, &b);
        int isum = 0, msum = 0;
        for (int j = 0; j < QK_K / b.sub; j++) {
            int sub = 0;
            for (int e = j * b.sub; e < (j + 1) * b.sub; e++) sub += b.q[e] * a[i].qs[e];
            isum += b.sc[j] * sub;
        }
        if (b.has_min) {
            for (int g = 0; g < QK_K / 16; g++) msum += b.m[g * 16 / b.sub] * a[i].bsums[g];
            s += (a[i].d * b.d) * (float)isum - (a[i].d * b.dmin) * (float)msum;
        } else {
            s += (a[i].d * b.d) * (float)isum;
        }
    }
    return s;
}

/* ==== Quantization helpers, as llama.cpp's ==== */

#define GROUP_MAX_EPS 1e-15f

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even, by adding 1.5 * 2^23 and reading the low mantissa bits
 * (llama.cpp's nearest_int; exact for |f| < 2^22, the range quantization uses). */
static inline int nearest_int(float f)
{
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* llama.cpp's make_qkx2_quants: the scale and min (returned as a positive number subtracted)
 * minimising sum w * |x - (scale * l - min)|^p, p = 1 (use_mad) or 2, over levels l in 0..nmax:
 * a first guess from the range, then nstep+1 candidate scales around nmax / range, each refined
 * by weighted least squares on its levels. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                           uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_mad = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_mad += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                mad += w[i] * diff;
            }
            if (mad < best_mad) {
                memcpy(L, Laux, (size_t)n);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* llama.cpp's make_qx_quants with rmse_type 1 and no importance weights (what Q6_K uses): a
 * symmetric scale for levels -nmax..nmax-1 (stored + nmax), the value of largest magnitude
 * mapped to -nmax, then 18 nearby scales tried for the best x^2-weighted least-squares fit. */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* llama.cpp's make_q3_quants with do_rmse: symmetric levels -nmax..nmax-1, then up to 5 passes
 * of coordinate descent on the x^2-weighted fit, one level at a time. Levels come back + nmax. */
static float fit_scale_q3(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

/* 2-bit levels of 256 elements into 64 bytes: byte 32h + l holds elements 128h + 32k + l at
 * bits 2k (Q2_K's qs, and the low bits of Q3_K). */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | (p[32] << 2) | (p[64] << 4) | (p[96] << 6));
        }
}

/* Q4_K / Q5_K: 8 scales and mins (0..63) into the 12 bytes (layout: tensor/kquants.h). */
static void pack_scales_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *s)
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(ls[j] | (ls[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(lm[j] | (lm[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((ls[j + 4] & 15) | (lm[j + 4] & 15) << 4);
    }
}

/* ==== Quantizers ==== */

void pf_from_f32_q2_K_ref(const float *src, void *dst, int64_t n)
{
    struct block_q2_K *y = dst;
    uint8_t L[QK_K], Laux[16];
    float w[16], mins[16], scales[16];
    const float q4scale = 15.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float max_scale = 0, max_min = 0; /* mins are subtracted, so scales are positive */
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = pf_fp32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, 16);
            y[i].d = pf_fp32_to_fp16(0.0f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = pf_fp32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = pf_fp32_to_fp16(0.0f);
        }
        /* requantize against the rounded scales; a zero scale keeps the fit's levels */
        for (int j = 0; j < 16; j++) {
            const float d = pf_fp16_to_fp32(y[i].d) * (y[i].scales[j] & 15);
            if (!d) continue;
            const float dm = pf_fp16_to_fp32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)imax(0, imin(3, nearest_int((x[16 * j + l] + dm) / d)));
        }
        pack_2bit(L, y[i].qs);
    }
}

void pf_from_f32_q3_K_ref(const float *src, void *dst, int64_t n)
{
    struct block_q3_K *y = dst;
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_q3(16, 4, x + 16 * j, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)(imax(-32, imin(31, l)) + 32);
                if (j < 8) y[i].scales[j] = l & 15;
                else y[i].scales[j - 8] |= (uint8_t)((l & 15) << 4);
                y[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = pf_fp32_to_fp16(1 / iscale);
        } else {
            y[i].d = pf_fp32_to_fp16(0.0f);
        }
        int8_t sc[16];
        kq_scales_q3(y[i].scales, sc);
        for (int j = 0; j < 16; j++) {
            float d = pf_fp16_to_fp32(y[i].d) * sc[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(imax(-4, imin(3, nearest_int(x[16 * j + l] / d))) + 4);
        }
        /* third bit of element e: bit e / 32 of hmask[e % 32] */
        memset(y[i].hmask, 0, 32);
        for (int e = 0; e < QK_K; e++) {
            if (L[e] > 3) {
                y[i].hmask[e % 32] |= (uint8_t)(1 << (e / 32));
                L[e] -= 4;
            }
        }
        pack_2bit((const uint8_t *)L, y[i].qs);
    }
}

/* Q4_K and Q5_K differ in the level count, the search range of the fit and the fifth bit. */
static void quantize_k4(const float *x, int nmax, float rmin, int nstep, uint16_t *d_out, uint16_t *dmin_out,
                        uint8_t *scales, uint8_t *L)
{
    uint8_t Laux[32], ls[8], lm[8];
    float w[32], mins[8], sc[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
        sc[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (sc[j] > max_scale) max_scale = sc[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; j++) {
        /* llama.cpp keeps the rounded value in a uint8_t before capping it at 63 */
        ls[j] = (uint8_t)imin(63, (uint8_t)nearest_int(inv_scale * sc[j]));
        lm[j] = (uint8_t)imin(63, (uint8_t)nearest_int(inv_min * mins[j]));
    }
    pack_scales_k4(ls, lm, scales);
    *d_out = pf_fp32_to_fp16(max_scale / 63.0f);
    *dmin_out = pf_fp32_to_fp16(max_min / 63.0f);
    uint8_t s[8], m[8];
    kq_scales_k4(scales, s, m);
    for (int j = 0; j < 8; j++) {
        const float d = pf_fp16_to_fp32(*d_out) * s[j];
        if (!d) continue;
        const float dm = pf_fp16_to_fp32(*dmin_out) * m[j];
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + l] + dm) / d)));
    }
}

void pf_from_f32_q4_K_ref(const float *src, void *dst, int64_t n)
{
    struct block_q4_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint16_t d, dmin;
        quantize_k4(src + i * QK_K, 15, -1.0f, 20, &d, &dmin, y[i].scales, L);
        y[i].d = d;
        y[i].dmin = dmin;
        /* byte 32c + l: element 64c + l low, 64c + 32 + l high */
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

void pf_from_f32_q5_K_ref(const float *src, void *dst, int64_t n)
{
    struct block_q5_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint16_t d, dmin;
        quantize_k4(src + i * QK_K, 31, -0.5f, 15, &d, &dmin, y[i].scales, L);
        y[i].d = d;
        y[i].dmin = dmin;
        memset(y[i].qh, 0, 32);
        for (int e = 0; e < QK_K; e++)
            if (L[e] > 15) {
                L[e] -= 16;
                y[i].qh[e % 32] |= (uint8_t)(1 << (e / 32));
            }
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

void pf_from_f32_q6_K_ref(const float *src, void *dst, int64_t n)
{
    struct block_q6_K *y = dst;
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float max_scale = 0, max_abs_scale = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[j]; }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -128.0f / max_scale;
        y[i].d = pf_fp32_to_fp16(1 / iscale);
        for (int j = 0; j < 16; j++) y[i].scales[j] = (int8_t)imin(127, nearest_int(iscale * scales[j]));
        for (int j = 0; j < 16; j++) {
            float d = pf_fp16_to_fp32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + l] / d))) + 32);
        }
        /* element 128h + 32k + l: low nibble in ql[64h + 32(k%2) + l] (high nibble for k >= 2),
         * top 2 bits at bit 2k of qh[32h + l] */
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const int8_t *p = L + 128 * h + l;
                y[i].ql[64 * h + l] = (uint8_t)((p[0] & 15) | (p[64] & 15) << 4);
                y[i].ql[64 * h + 32 + l] = (uint8_t)((p[32] & 15) | (p[96] & 15) << 4);
                y[i].qh[32 * h + l] = (uint8_t)((p[0] >> 4) | (p[32] >> 4) << 2 | (p[64] >> 4) << 4 | (p[96] >> 4) << 6);
            }
    }
}

/* The value of largest magnitude (the first on ties) maps to -127: d = -max / 127, stored as
 * f32, q = min(127, round(x * -127 / max)); bsums of each 16. */
void pf_from_f32_q8_K_ref(const float *src, void *dst, int64_t n)
{
    struct block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = (int8_t)imin(127, nearest_int(iscale * x[j]));
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ==== Table entries ==== */

#define KQ_REF(T, U)                                                                             \
    float pf_dot_##T##_ref(const void *w, const void *x, int64_t n) { return dot(PF_TYPE_##U, w, x, n); } \
    void pf_gemm_##T##_ref(int64_t n, int nr, int nt, const void *w, size_t ws, const void *x,   \
                           size_t xs, float *out, size_t os)                                     \
    {                                                                                            \
        for (int t = 0; t < nt; t++)                                                             \
            for (int r = 0; r < nr; r++)                                                         \
                out[(size_t)t * os + r] = dot(PF_TYPE_##U, (const char *)w + (size_t)r * ws,     \
                                              (const char *)x + (size_t)t * xs, n);              \
    }                                                                                            \
    void pf_dequant_##T##_ref(const void *src, float *dst, int64_t n) { dequant(PF_TYPE_##U, src, dst, n); }

KQ_REF(q2_K, Q2_K)
KQ_REF(q3_K, Q3_K)
KQ_REF(q4_K, Q4_K)
KQ_REF(q5_K, Q5_K)
KQ_REF(q6_K, Q6_K)
KQ_REF(q8_K, Q8_K)
