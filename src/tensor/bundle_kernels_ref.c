/* Reference kernels on bundles (the specification: bundle_kernels.h). Plain C; fmaf gives the one rounding per term the specification asks for. */
#include "tensor/kernels.h"
#include "tensor/kquants.h"

#include <math.h>
#include <string.h>

/* ==== Dequantization of one element ==== */

static inline float w_f32(const void *row, int64_t e) { float v; memcpy(&v, (const char *)row + 4 * e, 4); return v; }
static inline float w_f16(const void *row, int64_t e) { uint16_t h; memcpy(&h, (const char *)row + 2 * e, 2); return pf_fp16_to_fp32(h); }
static inline float w_bf16(const void *row, int64_t e) { uint16_t h; memcpy(&h, (const char *)row + 2 * e, 2); return pf_bf16_to_fp32(h); }

static inline float w_q8_0(const void *row, int64_t e)
{
    const struct block_q8_0 *b = (const struct block_q8_0 *)row + e / QK8_0;
    return (float)b->qs[e % QK8_0] * pf_fp16_to_fp32(b->d);
}

static inline float w_q4_0(const void *row, int64_t e)
{
    const struct block_q4_0 *b = (const struct block_q4_0 *)row + e / QK4_0;
    int j = (int)(e % QK4_0);
    int q = j < QK4_0 / 2 ? (b->qs[j] & 0x0f) : (b->qs[j - QK4_0 / 2] >> 4);
    return (float)(q - 8) * pf_fp16_to_fp32(b->d);
}

/* ==== Kernels, one pair per type ==== */

#define REF_KERNELS(T, W)                                                                         \
    void pf_down_accum_##T##_ref(const void *const *rows, const float *h, int k, float *y, int64_t n, \
                                 struct pf_pq *pq)                                                \
    {                                                                                             \
        for (int i = 0; i < k; i++) {                                                             \
            pf_pq_issue(pq, (int)(n / 16)); /* about a row's worth of lines */                   \
            for (int64_t e = 0; e < n; e++) y[e] = fmaf(h[i], W(rows[i], e), y[e]);               \
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
                    y[(size_t)t * ys + (size_t)e] = fmaf(hv, W(row, e0 + e), y[(size_t)t * ys + (size_t)e]); \
            }                                                                                     \
    }

REF_KERNELS(f32, w_f32)
REF_KERNELS(f16, w_f16)
REF_KERNELS(bf16, w_bf16)
REF_KERNELS(q8_0, w_q8_0)
REF_KERNELS(q4_0, w_q4_0)

/* kt's own product of each row */
static void gather_dot_any(int type, const struct pf_kernels *kt, const void *const *rows, int k, const void *xa,
                           int64_t n, float *out, struct pf_pq *pq)
{
    size_t rs = 0;
    pf_row_size(type, n, &rs);
    for (int i = 0; i < k; i++) {
        pf_pq_issue(pq, (int)(rs / 64) + 1);
        if (type == PF_TYPE_Q4_0 && kt->q4_matvec) kt->q4_matvec(n, 1, rows[i], rs, xa, &out[i]);
        else out[i] = kt->dot[type](rows[i], xa, n);
    }
}

#define REF_GATHER(T, U)                                                                               \
    void pf_gather_dot_##T##_ref(const struct pf_kernels *kt, const void *const *rows, int k, const void *xa, \
                                 int64_t n, float *out, struct pf_pq *pq)                             \
    {                                                                                                  \
        gather_dot_any(PF_TYPE_##U, kt, rows, k, xa, n, out, pq);                                       \
    }

REF_GATHER(f32, F32)
REF_GATHER(f16, F16)
REF_GATHER(bf16, BF16)
REF_GATHER(q8_0, Q8_0)
REF_GATHER(q4_0, Q4_0)

/* ==== K-quants: a super-block at a time ====
 * w_i[e] is the value the type's reference dequant (tensor/kquants_ref.c) produces; decoding
 * one element alone would redo the whole super-block's scales, so a block is dequantized into
 * a buffer and its elements are then added in order, exactly as above. */

static void down_accum_blocks(int type, const void *const *rows, const float *h, int k, float *y, int64_t n,
                              struct pf_pq *pq)
{
    const struct pf_type_info *ti = pf_type_get(type);
    float w[QK_K];
    for (int i = 0; i < k; i++) {
        pf_pq_issue(pq, (int)(n / 16));
        for (int64_t b = 0; b < n / ti->blck; b++) {
            pf_kernels_ref.dequant[type]((const char *)rows[i] + (size_t)b * ti->size, w, ti->blck);
            float *yb = y + b * ti->blck;
            for (int e = 0; e < ti->blck; e++) yb[e] = fmaf(h[i], w[e], yb[e]);
        }
    }
}

static void down_panel_blocks(int type, const void *rows, size_t rs, int np, int64_t e0, int ne, const float *h,
                              size_t hs, int nt, float *y, size_t ys)
{
    const struct pf_type_info *ti = pf_type_get(type);
    float w[QK_K];
    for (int t = 0; t < nt; t++)
        for (int p = 0; p < np; p++) {
            const char *row = (const char *)rows + (size_t)p * rs;
            float hv = h[(size_t)t * hs + (size_t)p];
            float *yt = y + (size_t)t * ys;
            for (int64_t b = e0 / ti->blck; b < (e0 + ne) / ti->blck; b++) {
                pf_kernels_ref.dequant[type](row + (size_t)b * ti->size, w, ti->blck);
                float *yb = yt + (b * ti->blck - e0);
                for (int e = 0; e < ti->blck; e++) yb[e] = fmaf(hv, w[e], yb[e]);
            }
        }
}

#define REF_BLOCK_KERNELS(T, U)                                                                       \
    void pf_down_accum_##T##_ref(const void *const *rows, const float *h, int k, float *y, int64_t n,   \
                                 struct pf_pq *pq)                                                  \
    {                                                                                               \
        down_accum_blocks(PF_TYPE_##U, rows, h, k, y, n, pq);                                        \
    }                                                                                               \
    void pf_down_panel_##T##_ref(const void *rows, size_t rs, int np, int64_t e0, int ne,            \
                                 const float *h, size_t hs, int nt, float *y, size_t ys,             \
                                 float *scratch)                                                    \
    {                                                                                               \
        (void)scratch;                                                                              \
        down_panel_blocks(PF_TYPE_##U, rows, rs, np, e0, ne, h, hs, nt, y, ys);                      \
    }                                                                                               \
    REF_GATHER(T, U)

REF_BLOCK_KERNELS(q2_K, Q2_K)
REF_BLOCK_KERNELS(q3_K, Q3_K)
REF_BLOCK_KERNELS(q4_K, Q4_K)
REF_BLOCK_KERNELS(q5_K, Q5_K)
REF_BLOCK_KERNELS(q6_K, Q6_K)
