/* Reference kernels: plain C, no fast-math, written for clarity. They are the specification the
 * SIMD variants are tested against, and the fallback on CPUs without AVX2.
 *
 * The quantizers follow llama.cpp's quantize_row_*_ref exactly (same formulas, same float
 * operations in the same order), so a file we write and an activation we quantize hold the same
 * bytes llama.cpp would produce. Float dots accumulate in double so the reference is also the
 * most accurate variant; quantized dots accumulate per-block products in float like ggml. */
#include "tensor/kernels.h"
#include "tensor/quants_extra.h"
#include "tensor/kquants.h"

#include <math.h>
#include <string.h>

/* ==== Dots ==== */

static float dot_f32(const void *w, const void *x, int64_t n)
{
    const float *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return (float)s;
}

static float dot_f16(const void *w, const void *x, int64_t n)
{
    const uint16_t *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)pf_fp16_to_fp32(a[i]) * (double)pf_fp16_to_fp32(b[i]);
    return (float)s;
}

static float dot_bf16(const void *w, const void *x, int64_t n)
{
    const uint16_t *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)pf_bf16_to_fp32(a[i]) * (double)pf_bf16_to_fp32(b[i]);
    return (float)s;
}

static float dot_q8_0(const void *w, const void *x, int64_t n)
{
    const struct block_q8_0 *a = w, *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += a[i].qs[j] * b[i].qs[j];
        s += (float)sumi * (pf_fp16_to_fp32(a[i].d) * pf_fp16_to_fp32(b[i].d));
    }
    return s;
}

static float dot_q4_0(const void *w, const void *x, int64_t n)
{
    const struct block_q4_0 *a = w;
    const struct block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            int lo = (a[i].qs[j] & 0x0f) - 8, hi = (a[i].qs[j] >> 4) - 8;
            sumi += lo * b[i].qs[j] + hi * b[i].qs[j + QK4_0 / 2];
        }
        s += (float)sumi * (pf_fp16_to_fp32(a[i].d) * pf_fp16_to_fp32(b[i].d));
    }
    return s;
}

/* ==== Tile kernels: nr*nt independent dots ==== */

#define REF_GEMM(name, dotfn)                                                                    \
    static void name(int64_t n, int nr, int nt, const void *w, size_t w_stride, const void *x,  \
                     size_t x_stride, float *out, size_t out_stride)                             \
    {                                                                                            \
        for (int t = 0; t < nt; t++)                                                             \
            for (int r = 0; r < nr; r++)                                                         \
                out[(size_t)t * out_stride + r] =                                                \
                    dotfn((const char *)w + (size_t)r * w_stride,                                \
                          (const char *)x + (size_t)t * x_stride, n);                            \
    }

REF_GEMM(gemm_f32, dot_f32)
REF_GEMM(gemm_f16, dot_f16)
REF_GEMM(gemm_bf16, dot_bf16)
REF_GEMM(gemm_q8_0, dot_q8_0)
REF_GEMM(gemm_q4_0, dot_q4_0)

/* ==== Dequantization ==== */

static void dequant_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

static void dequant_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = pf_fp16_to_fp32(s[i]);
}

static void dequant_bf16(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = pf_bf16_to_fp32(s[i]);
}

static void dequant_q8_0(const void *src, float *dst, int64_t n)
{
    const struct block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float d = pf_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = b[i].qs[j] * d;
    }
}

static void dequant_q4_0(const void *src, float *dst, int64_t n)
{
    const struct block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        float d = pf_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[i * QK4_0 + j] = ((b[i].qs[j] & 0x0f) - 8) * d;
            dst[i * QK4_0 + j + QK4_0 / 2] = ((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* ==== Quantization (f32 -> type) ==== */

static void from_f32_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

static void from_f32_f16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = pf_fp32_to_fp16(src[i]);
}

static void from_f32_bf16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = pf_fp32_to_bf16(src[i]);
}

/* llama.cpp quantize_row_q8_0_ref: d = amax/127 stored as fp16, q = roundf(x * (1/d)) with the
 * unrounded float d. */
static void from_f32_q8_0(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float *x = src + i * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            const float v = fabsf(x[j]);
            amax = amax > v ? amax : v; /* ggml's MAX(): a NaN propagates, as in llama.cpp */
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = pf_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* llama.cpp quantize_row_q4_0_ref: the value of largest magnitude (first one on ties) maps to
 * -8, d = max / -8; q = min(15, (int8_t)(x/d + 8.5)). */
static void from_f32_q4_0(const float *src, void *dst, int64_t n)
{
    struct block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float *x = src + i * QK4_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = pf_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int8_t q0 = (int8_t)(x[j] * id + 8.5f), q1 = (int8_t)(x[j + QK4_0 / 2] * id + 8.5f);
            uint8_t u0 = (uint8_t)(q0 < 15 ? q0 : 15), u1 = (uint8_t)(q1 < 15 ? q1 : 15);
            b[i].qs[j] = (uint8_t)(u0 | (u1 << 4));
        }
    }
}

const struct pf_kernels pf_kernels_ref = {
    .name = "ref",
    .dot = {
        [PF_TYPE_F32] = dot_f32, [PF_TYPE_F16] = dot_f16, [PF_TYPE_BF16] = dot_bf16,
        [PF_TYPE_Q8_0] = dot_q8_0, [PF_TYPE_Q4_0] = dot_q4_0,
        /* tensor/quants_extra_ref.c */
        [PF_TYPE_Q4_1] = pf_dot_q4_1_ref, [PF_TYPE_Q5_0] = pf_dot_q5_0_ref, [PF_TYPE_Q5_1] = pf_dot_q5_1_ref,
        [PF_TYPE_IQ4_NL] = pf_dot_iq4_nl_ref, [PF_TYPE_Q8_1] = pf_dot_q8_1_ref,
        /* K-quants: tensor/kquants_ref.c */
        [PF_TYPE_Q2_K] = pf_dot_q2_K_ref, [PF_TYPE_Q3_K] = pf_dot_q3_K_ref, [PF_TYPE_Q4_K] = pf_dot_q4_K_ref,
        [PF_TYPE_Q5_K] = pf_dot_q5_K_ref, [PF_TYPE_Q6_K] = pf_dot_q6_K_ref, [PF_TYPE_Q8_K] = pf_dot_q8_K_ref,
    },
    .gemm = {
        [PF_TYPE_F32] = gemm_f32, [PF_TYPE_F16] = gemm_f16, [PF_TYPE_BF16] = gemm_bf16,
        [PF_TYPE_Q8_0] = gemm_q8_0, [PF_TYPE_Q4_0] = gemm_q4_0,
        /* tensor/quants_extra_ref.c */
        [PF_TYPE_Q4_1] = pf_gemm_q4_1_ref, [PF_TYPE_Q5_0] = pf_gemm_q5_0_ref, [PF_TYPE_Q5_1] = pf_gemm_q5_1_ref,
        [PF_TYPE_IQ4_NL] = pf_gemm_iq4_nl_ref, [PF_TYPE_Q8_1] = pf_gemm_q8_1_ref,
        [PF_TYPE_Q2_K] = pf_gemm_q2_K_ref, [PF_TYPE_Q3_K] = pf_gemm_q3_K_ref, [PF_TYPE_Q4_K] = pf_gemm_q4_K_ref,
        [PF_TYPE_Q5_K] = pf_gemm_q5_K_ref, [PF_TYPE_Q6_K] = pf_gemm_q6_K_ref, [PF_TYPE_Q8_K] = pf_gemm_q8_K_ref,
    },
    .dequant = {
        [PF_TYPE_F32] = dequant_f32, [PF_TYPE_F16] = dequant_f16, [PF_TYPE_BF16] = dequant_bf16,
        [PF_TYPE_Q8_0] = dequant_q8_0, [PF_TYPE_Q4_0] = dequant_q4_0,
        /* tensor/quants_extra_ref.c */
        [PF_TYPE_Q4_1] = pf_dequant_q4_1_ref, [PF_TYPE_Q5_0] = pf_dequant_q5_0_ref, [PF_TYPE_Q5_1] = pf_dequant_q5_1_ref,
        [PF_TYPE_IQ4_NL] = pf_dequant_iq4_nl_ref, [PF_TYPE_Q8_1] = pf_dequant_q8_1_ref,
        [PF_TYPE_Q2_K] = pf_dequant_q2_K_ref, [PF_TYPE_Q3_K] = pf_dequant_q3_K_ref, [PF_TYPE_Q4_K] = pf_dequant_q4_K_ref,
        [PF_TYPE_Q5_K] = pf_dequant_q5_K_ref, [PF_TYPE_Q6_K] = pf_dequant_q6_K_ref, [PF_TYPE_Q8_K] = pf_dequant_q8_K_ref,
    },
    .from_f32 = {
        [PF_TYPE_F32] = from_f32_f32, [PF_TYPE_F16] = from_f32_f16, [PF_TYPE_BF16] = from_f32_bf16,
        [PF_TYPE_Q8_0] = from_f32_q8_0, [PF_TYPE_Q4_0] = from_f32_q4_0,
        /* tensor/quants_extra_ref.c */
        [PF_TYPE_Q4_1] = pf_from_f32_q4_1_ref, [PF_TYPE_Q5_0] = pf_from_f32_q5_0_ref, [PF_TYPE_Q5_1] = pf_from_f32_q5_1_ref,
        [PF_TYPE_IQ4_NL] = pf_from_f32_iq4_nl_ref, [PF_TYPE_Q8_1] = pf_from_f32_q8_1_ref,
        [PF_TYPE_Q2_K] = pf_from_f32_q2_K_ref, [PF_TYPE_Q3_K] = pf_from_f32_q3_K_ref, [PF_TYPE_Q4_K] = pf_from_f32_q4_K_ref,
        [PF_TYPE_Q5_K] = pf_from_f32_q5_K_ref, [PF_TYPE_Q6_K] = pf_from_f32_q6_K_ref, [PF_TYPE_Q8_K] = pf_from_f32_q8_K_ref,
    },
    /* bundle kernels: tensor/bundle_kernels_ref.c (Q4_1, Q5_0, Q5_1, IQ4_NL, Q8_1: tensor/quants_extra_ref.c) */
    .down_accum = {
        [PF_TYPE_F32] = pf_down_accum_f32_ref, [PF_TYPE_F16] = pf_down_accum_f16_ref,
        [PF_TYPE_BF16] = pf_down_accum_bf16_ref, [PF_TYPE_Q8_0] = pf_down_accum_q8_0_ref,
        [PF_TYPE_Q4_0] = pf_down_accum_q4_0_ref,
        [PF_TYPE_Q4_1] = pf_down_accum_q4_1_ref, [PF_TYPE_Q5_0] = pf_down_accum_q5_0_ref,
        [PF_TYPE_Q5_1] = pf_down_accum_q5_1_ref, [PF_TYPE_IQ4_NL] = pf_down_accum_iq4_nl_ref,
        [PF_TYPE_Q8_1] = pf_down_accum_q8_1_ref,
        [PF_TYPE_Q2_K] = pf_down_accum_q2_K_ref, [PF_TYPE_Q3_K] = pf_down_accum_q3_K_ref, [PF_TYPE_Q4_K] = pf_down_accum_q4_K_ref,
        [PF_TYPE_Q5_K] = pf_down_accum_q5_K_ref, [PF_TYPE_Q6_K] = pf_down_accum_q6_K_ref,
    },
    .down_panel = {
        [PF_TYPE_F32] = pf_down_panel_f32_ref, [PF_TYPE_F16] = pf_down_panel_f16_ref,
        [PF_TYPE_BF16] = pf_down_panel_bf16_ref, [PF_TYPE_Q8_0] = pf_down_panel_q8_0_ref,
        [PF_TYPE_Q4_0] = pf_down_panel_q4_0_ref,
        [PF_TYPE_Q4_1] = pf_down_panel_q4_1_ref, [PF_TYPE_Q5_0] = pf_down_panel_q5_0_ref,
        [PF_TYPE_Q5_1] = pf_down_panel_q5_1_ref, [PF_TYPE_IQ4_NL] = pf_down_panel_iq4_nl_ref,
        [PF_TYPE_Q8_1] = pf_down_panel_q8_1_ref,
        [PF_TYPE_Q2_K] = pf_down_panel_q2_K_ref, [PF_TYPE_Q3_K] = pf_down_panel_q3_K_ref, [PF_TYPE_Q4_K] = pf_down_panel_q4_K_ref,
        [PF_TYPE_Q5_K] = pf_down_panel_q5_K_ref, [PF_TYPE_Q6_K] = pf_down_panel_q6_K_ref,
    },
    .gather_dot = {
        [PF_TYPE_F32] = pf_gather_dot_f32_ref, [PF_TYPE_F16] = pf_gather_dot_f16_ref,
        [PF_TYPE_BF16] = pf_gather_dot_bf16_ref, [PF_TYPE_Q8_0] = pf_gather_dot_q8_0_ref,
        [PF_TYPE_Q4_0] = pf_gather_dot_q4_0_ref,
        [PF_TYPE_Q4_1] = pf_gather_dot_q4_1_ref, [PF_TYPE_Q5_0] = pf_gather_dot_q5_0_ref,
        [PF_TYPE_Q5_1] = pf_gather_dot_q5_1_ref, [PF_TYPE_IQ4_NL] = pf_gather_dot_iq4_nl_ref,
        [PF_TYPE_Q8_1] = pf_gather_dot_q8_1_ref,
        [PF_TYPE_Q2_K] = pf_gather_dot_q2_K_ref, [PF_TYPE_Q3_K] = pf_gather_dot_q3_K_ref, [PF_TYPE_Q4_K] = pf_gather_dot_q4_K_ref,
        [PF_TYPE_Q5_K] = pf_gather_dot_q5_K_ref, [PF_TYPE_Q6_K] = pf_gather_dot_q6_K_ref,
    },
};
