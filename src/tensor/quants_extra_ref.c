/* Reference kernels of the types in quants_extra.h (Q4_1, Q5_0, Q5_1, IQ4_NL, Q8_1): plain C,
 * no fast-math. They are the specification the SIMD dots are tested against and the kernels of
 * every table entry the SIMD files leave empty.
 *
 * Quantizers repeat ggml's float operations in ggml's order, so that a file we write holds the
 * bytes llama.cpp would write (followed from ggml's source; no test runs llama.cpp):
 * quantize_row_{q4_1,q5_0,q5_1,q8_1}_ref, and for IQ4_NL the scale search of quantize_iq4_nl
 * without importance weights (ntry 7: what llama-quantize writes without an imatrix). ggml's
 * quantize_row_iq4_nl_ref, used when ggml converts tensors at run time, runs the same code with
 * ntry = -1, which skips the search and the final re-assignment. Dots repeat ggml's scalar
 * ggml_vec_dot_*: an exact integer sum per block, then one float term per block. */
#include "tensor/kernels.h"
#include "tensor/quants_extra.h"

#include <float.h>
#include <math.h>
#include <string.h>

const int8_t pf_iq4nl_values[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

static inline float h2f(uint16_t h) { return pf_fp16_to_fp32(h); }

static inline uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* The 4-bit field of element j (0..31) of a block's qs. */
static inline int nib(const uint8_t *qs, int j) { return j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4; }
/* Its 5-bit field: bit 4 is bit j of qh. */
static inline int q5(const uint8_t *qs, uint32_t qh, int j) { return nib(qs, j) | (int)((qh >> j) & 1) << 4; }

/* ==== One element, dequantized: the value dequant, the bundle kernels and the tests agree on ==== */

static inline float elem_q4_1(const void *row, int64_t e)
{
    const struct block_q4_1 *b = (const struct block_q4_1 *)row + e / QK4_1;
    return (float)nib(b->qs, (int)(e % QK4_1)) * h2f(b->d) + h2f(b->m);
}

static inline float elem_q5_0(const void *row, int64_t e)
{
    const struct block_q5_0 *b = (const struct block_q5_0 *)row + e / QK5_0;
    return (float)(q5(b->qs, load_qh(b->qh), (int)(e % QK5_0)) - 16) * h2f(b->d);
}

static inline float elem_q5_1(const void *row, int64_t e)
{
    const struct block_q5_1 *b = (const struct block_q5_1 *)row + e / QK5_1;
    return (float)q5(b->qs, load_qh(b->qh), (int)(e % QK5_1)) * h2f(b->d) + h2f(b->m);
}

static inline float elem_iq4_nl(const void *row, int64_t e)
{
    const struct block_iq4_nl *b = (const struct block_iq4_nl *)row + e / QK4_NL;
    return h2f(b->d) * (float)pf_iq4nl_values[nib(b->qs, (int)(e % QK4_NL))];
}

static inline float elem_q8_1(const void *row, int64_t e)
{
    const struct block_q8_1 *b = (const struct block_q8_1 *)row + e / QK8_1;
    return (float)b->qs[e % QK8_1] * h2f(b->d);
}

#define REF_DEQUANT(T)                                                                            \
    void pf_dequant_##T##_ref(const void *src, float *dst, int64_t n)                             \
    {                                                                                             \
        for (int64_t e = 0; e < n; e++) dst[e] = elem_##T(src, e);                                \
    }

REF_DEQUANT(q4_1)
REF_DEQUANT(q5_0)
REF_DEQUANT(q5_1)
REF_DEQUANT(iq4_nl)
REF_DEQUANT(q8_1)

/* ==== Dots ==== */

/* Q4_1 x Q8_1 (ggml_vec_dot_q4_1_q8_1): the offset m meets sum(x) through the activation's s. */
float pf_dot_q4_1_ref(const void *w, const void *x, int64_t n)
{
    const struct block_q4_1 *a = w;
    const struct block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_1; j++) sumi += nib(a[i].qs, j) * b[i].qs[j];
        s += (h2f(a[i].d) * h2f(b[i].d)) * (float)sumi + h2f(a[i].m) * h2f(b[i].s);
    }
    return s;
}

/* Q5_0 x Q8_0 (ggml_vec_dot_q5_0_q8_0). */
float pf_dot_q5_0_ref(const void *w, const void *x, int64_t n)
{
    const struct block_q5_0 *a = w;
    const struct block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        uint32_t qh = load_qh(a[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK5_0; j++) sumi += (q5(a[i].qs, qh, j) - 16) * b[i].qs[j];
        s += (h2f(a[i].d) * h2f(b[i].d)) * (float)sumi;
    }
    return s;
}

/* Q5_1 x Q8_1 (ggml_vec_dot_q5_1_q8_1). */
float pf_dot_q5_1_ref(const void *w, const void *x, int64_t n)
{
    const struct block_q5_1 *a = w;
    const struct block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        uint32_t qh = load_qh(a[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK5_1; j++) sumi += q5(a[i].qs, qh, j) * b[i].qs[j];
        s += (h2f(a[i].d) * h2f(b[i].d)) * (float)sumi + h2f(a[i].m) * h2f(b[i].s);
    }
    return s;
}

/* IQ4_NL x Q8_0 (ggml_vec_dot_iq4_nl_q8_0). */
float pf_dot_iq4_nl_ref(const void *w, const void *x, int64_t n)
{
    const struct block_iq4_nl *a = w;
    const struct block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_NL; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_NL; j++) sumi += pf_iq4nl_values[nib(a[i].qs, j)] * b[i].qs[j];
        s += (h2f(b[i].d) * h2f(a[i].d)) * (float)sumi;
    }
    return s;
}

/* Q8_1 x Q8_1: only for completeness (ggml has no such dot); the s fields are not used. */
float pf_dot_q8_1_ref(const void *w, const void *x, int64_t n)
{
    const struct block_q8_1 *a = w, *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_1; j++) sumi += a[i].qs[j] * b[i].qs[j];
        s += (h2f(a[i].d) * h2f(b[i].d)) * (float)sumi;
    }
    return s;
}

#define REF_GEMM(T)                                                                               \
    void pf_gemm_##T##_ref(int64_t n, int nr, int nt, const void *w, size_t w_stride, const void *x, \
                           size_t x_stride, float *out, size_t out_stride)                        \
    {                                                                                             \
        for (int t = 0; t < nt; t++)                                                              \
            for (int r = 0; r < nr; r++)                                                          \
                out[(size_t)t * out_stride + r] = pf_dot_##T##_ref((const char *)w + (size_t)r * w_stride, \
                                                                   (const char *)x + (size_t)t * x_stride, n); \
    }

REF_GEMM(q4_1)
REF_GEMM(q5_0)
REF_GEMM(q5_1)
REF_GEMM(iq4_nl)
REF_GEMM(q8_1)

/* ==== Quantization (f32 -> type) ==== */

/* quantize_row_q4_1_ref: m = min, d = (max - min) / 15, q = min(15, (int8_t)((x - m) / d + 0.5))
 * with the unrounded float d and m. */
void pf_from_f32_q4_1_ref(const float *src, void *dst, int64_t n)
{
    struct block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float *x = src + i * QK4_1;
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK4_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = pf_fp32_to_fp16(d);
        b[i].m = pf_fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            int8_t q0 = (int8_t)((x[j] - min) * id + 0.5f), q1 = (int8_t)((x[j + 16] - min) * id + 0.5f);
            uint8_t u0 = (uint8_t)(q0 < 15 ? q0 : 15), u1 = (uint8_t)(q1 < 15 ? q1 : 15);
            b[i].qs[j] = (uint8_t)(u0 | u1 << 4);
        }
    }
}

/* Packs 32 five-bit values: low 4 bits as in Q4_1, bit 4 of element j into bit j of qh. */
static void pack_q5(const uint8_t q[32], uint8_t qs[16], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
        h |= (uint32_t)(q[j] >> 4 & 1) << j | (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> 8 * k);
}

/* quantize_row_q5_0_ref: as Q4_0 with 5 bits: the value of largest magnitude (first one on ties)
 * maps to -16, d = max / -16, q = min(31, (int8_t)(x / d + 16.5)). */
void pf_from_f32_q5_0_ref(const float *src, void *dst, int64_t n)
{
    struct block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float *x = src + i * QK5_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = pf_fp32_to_fp16(d);
        uint8_t q[32];
        for (int j = 0; j < QK5_0; j++) {
            int8_t v = (int8_t)(x[j] * id + 16.5f);
            q[j] = (uint8_t)(v < 31 ? v : 31);
        }
        pack_q5(q, b[i].qs, b[i].qh);
    }
}

/* quantize_row_q5_1_ref: m = min, d = (max - min) / 31, q = (uint8_t)((x - m) / d + 0.5). */
void pf_from_f32_q5_1_ref(const float *src, void *dst, int64_t n)
{
    struct block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float *x = src + i * QK5_1;
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK5_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = pf_fp32_to_fp16(d);
        b[i].m = pf_fp32_to_fp16(min);
        uint8_t q[32];
        for (int j = 0; j < QK5_1; j++) q[j] = (uint8_t)((x[j] - min) * id + 0.5f);
        pack_q5(q, b[i].qs, b[i].qh);
    }
}

/* quantize_row_q8_1_ref: Q8_0's quants and scale, plus s = fp16(sum(qs) * d) with the unrounded
 * float d. */
void pf_from_f32_q8_1_ref(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const float *x = src + i * QK8_1;
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) {
            const float v = fabsf(x[j]);
            amax = amax > v ? amax : v; /* ggml's MAX(): a NaN propagates */
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = pf_fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += b[i].qs[j];
        }
        b[i].s = pf_fp32_to_fp16((float)sum * d);
    }
}

/* ==== IQ4_NL quantization ==== */

/* Index of the table value nearest to v; a tie goes to the larger value, below the table to 0,
 * above it (and NaN) to 15: ggml's best_index_int8. */
static int iq4nl_index(float v)
{
    const int8_t *t = pf_iq4nl_values;
    if (v <= t[0]) return 0;
    if (v >= t[15]) return 15;
    int lo = 0, hi = 15; /* t[lo] <= v < t[hi] (a NaN never moves hi) */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < t[mid]) hi = mid;
        else lo = mid;
    }
    return v - t[hi - 1] < t[hi] - v ? hi - 1 : hi;
}

/* Weighted least-squares scale of x for the table indices its values get at scale 1/id:
 * returns sum(w q x) in *sqx and sum(w q q) in *sq2, weights w = x^2 (ggml's choice without
 * importance weights). Float operations in ggml's order. */
static void iq4nl_fit(const float *x, float id, float *sqx, float *sq2)
{
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < QK4_NL; j++) {
        const float q = pf_iq4nl_values[iq4nl_index(id * x[j])], w = x[j] * x[j];
        sumqx += w * q * x[j];
        sumq2 += w * q * q;
    }
    *sqx = sumqx;
    *sq2 = sumq2;
}

/* quantize_iq4_nl (ntry 7, no importance weights), one block of 32: start from d = max / 127 (the
 * value of largest magnitude lands on the table's far end), refit d by least squares, then try
 * the 15 scales that put that value at -127 + k (k = -7..7) and keep the fit of the best error;
 * finally assign every value its nearest table entry at that d. A block whose largest magnitude
 * is below 1e-15 gets d = 0 (and all indices 8, the entry nearest 0). */
void pf_from_f32_iq4_nl_ref(const float *src, void *dst, int64_t n)
{
    enum { NTRY = 7 };
    struct block_iq4_nl *b = dst;
    for (int64_t i = 0; i < n / QK4_NL; i++) {
        const float *x = src + i * QK4_NL;
        float amax = 0, max = 0;
        for (int j = 0; j < QK4_NL; j++) {
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
        }
        float d = 0;
        if (!(amax < 1e-15f)) {
            float sumqx, sumq2;
            d = -max / (float)pf_iq4nl_values[0];
            iq4nl_fit(x, 1 / d, &sumqx, &sumq2);
            d = sumqx / sumq2;
            float best = d * sumqx;
            for (int k = -NTRY; k <= NTRY; k++) {
                iq4nl_fit(x, (float)(k + pf_iq4nl_values[0]) / max, &sumqx, &sumq2);
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                    d = sumqx / sumq2;
                    best = d * sumqx;
                }
            }
        }
        b[i].d = pf_fp32_to_fp16(d);
        const float id = d != 0.0f ? 1 / d : 0.0f;
        for (int j = 0; j < QK4_NL / 2; j++)
            b[i].qs[j] = (uint8_t)(iq4nl_index(id * x[j]) | iq4nl_index(id * x[j + 16]) << 4);
    }
}

/* ==== Bundle kernels (bundle_kernels.h), on the dequantized elements ==== */

#define REF_BUNDLE(T, U)                                                                           \
    void pf_down_accum_##T##_ref(const void *const *rows, const float *h, int k, float *y, int64_t n, \
                                 struct pf_pq *pq)                                                \
    {                                                                                             \
        for (int i = 0; i < k; i++) {                                                             \
            pf_pq_issue(pq, (int)(n / 16)); /* about a row's worth of lines */                   \
            for (int64_t e = 0; e < n; e++) y[e] = fmaf(h[i], elem_##T(rows[i], e), y[e]);        \
        }                                                                                         \
    }                                                                                             \
    void pf_down_panel_##T##_ref(const void *rows, size_t rs, int np, int64_t e0, int ne,          \
                                 const float *h, size_t hs, int nt, float *y, size_t ys,           \
                                 float *scratch)                                                  \
    {                                                                                             \
        (void)scratch;                                                                            \
        for (int t = 0; t < nt; t++)                                                              \
            for (int p = 0; p < np; p++) {                                                        \
                const void *row = (const char *)rows + (size_t)p * rs;                            \
                float hv = h[(size_t)t * hs + (size_t)p];                                         \
                for (int e = 0; e < ne; e++)                                                      \
                    y[(size_t)t * ys + (size_t)e] = fmaf(hv, elem_##T(row, e0 + e), y[(size_t)t * ys + (size_t)e]); \
            }                                                                                     \
    }                                                                                             \
    void pf_gather_dot_##T##_ref(const struct pf_kernels *kt, const void *const *rows, int k,     \
                                 const void *xa, int64_t n, float *out, struct pf_pq *pq)         \
    {                                                                                             \
        size_t rs = 0;                                                                            \
        pf_row_size(PF_TYPE_##U, n, &rs);                                                         \
        for (int i = 0; i < k; i++) {                                                             \
            pf_pq_issue(pq, (int)(rs / 64) + 1);                                                  \
            out[i] = kt->dot[PF_TYPE_##U](rows[i], xa, n); /* kt's own product */                 \
        }                                                                                         \
    }

REF_BUNDLE(q4_1, Q4_1)
REF_BUNDLE(q5_0, Q5_0)
REF_BUNDLE(q5_1, Q5_1)
REF_BUNDLE(iq4_nl, IQ4_NL)
REF_BUNDLE(q8_1, Q8_1)
