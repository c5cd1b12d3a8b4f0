/* AVX-512 K-quant kernels (F, BW, VL, DQ, VNNI: the flags of kernels_avx512.c, chosen by
 * CPUID): dots and gemms of Q2_K..Q6_K weights with Q8_K activations, and the Q8_K quantizer.
 * Layouts: tensor/kquants.h; arithmetic: the reference, tensor/kquants_ref.c.
 *
 * A weight super-block is unpacked once into 4 vectors of 64 unsigned levels in element order
 * (the stored level plus the type's bias: Q3_K q + 4, Q6_K q + 32; Q2_K, Q4_K, Q5_K as they are)
 * and 4 vectors of int16 scales, one per pair of elements. Then, per token, vpmaddubsw (level
 * u8 x activation s8 -> pair sums in s16, at most 2 * 63 * 127: no saturation) and vpdpwssd
 * (pair sums x scales, into s32) give the whole scaled integer sum of the super-block in 8
 * instructions. The rest comes from the activation's bsums (sums of 16 quants): the mins of
 * Q2_K / Q4_K / Q5_K as a second float term, the bias of Q3_K / Q6_K subtracted from the integer
 * sum (bias * scale * bsum). The integer sums are exact, so results equal the reference up to
 * float reassociation.
 *
 * Decode (a one-token gemm) walks the rows one after the other: rows are contiguous, so the
 * weights are read as one sequential stream, which the hardware prefetcher follows, and the
 * activation stays in L1. Software prefetch 8 super-blocks ahead measured slower (Q4_K 26-27
 * against 29 GB/s on one Zen 5 thread, whose plain read did 42-45). One thread computes Q4_K
 * at ~60 Gweights/s and Q6_K at ~65 from L2, so two threads are bound by memory bandwidth.
 * Prefill (gemm) unpacks each weight super-block once for KQ_TT tokens (8: ~250 GOPS per
 * thread for Q4_K, 4 gave ~235). */
#include "tensor/kquants.h"

#include "tensor/simd_x86.h"

#include <immintrin.h>
#include <string.h>


/* tokens sharing each unpacked weight super-block in the gemm */
#define KQ_TT 8


/* ==== Unpacking one weight super-block ==== */

struct kq_blk {
    __m512i u[4];  /* levels of elements 64c .. 64c+63, as u8 */
    __m512i sc[4]; /* int16 scale of each element pair of u[c] */
    __m256i cm;    /* int16 coefficient of each activation bsum in the correction term */
    float d, dm;   /* factor of the integer sum; of the min term (Q2_K, Q4_K, Q5_K) */
};

/* s holds 8 int16 words in every 128-bit lane; lane k of the result is word wk, 8 times. */
INLINE __m512i lane_words(__m512i s, int w0, int w1, int w2, int w3)
{
#define PAIR(w) (int)((2 * (w)) | (2 * (w) + 1) << 8 | (2 * (w)) << 16 | (2 * (w) + 1) << 24)
    const __m512i idx = _mm512_set_epi32(PAIR(w3), PAIR(w3), PAIR(w3), PAIR(w3), PAIR(w2), PAIR(w2), PAIR(w2),
                                         PAIR(w2), PAIR(w1), PAIR(w1), PAIR(w1), PAIR(w1), PAIR(w0), PAIR(w0),
                                         PAIR(w0), PAIR(w0));
#undef PAIR
    return _mm512_shuffle_epi8(s, idx);
}

/* 16 int16 scales of 16-element sub-blocks -> the scale of every element pair of u[0..3]. */
INLINE void scales16(__m256i s16, __m512i sc[4])
{
    __m512i lo = _mm512_broadcast_i32x4(_mm256_castsi256_si128(s16));
    __m512i hi = _mm512_broadcast_i32x4(_mm256_extracti128_si256(s16, 1));
    sc[0] = lane_words(lo, 0, 1, 2, 3);
    sc[1] = lane_words(lo, 4, 5, 6, 7);
    sc[2] = lane_words(hi, 0, 1, 2, 3);
    sc[3] = lane_words(hi, 4, 5, 6, 7);
}

/* (a & mask) | b per bit, one instruction */
INLINE __m512i or_masked(__m512i a, __m512i mask, __m512i b) { return _mm512_ternarylogic_epi32(a, mask, b, 0xea); }

/* Rotations (per 64-bit lane) that bring bit b of every byte to bit t of the same byte, for the
 * lower 256 bits (b0) and the upper (b1): a rotation by t - b moves no bit across bytes. */
INLINE __m512i rot_bits(__m512i v, int b0, int b1, int t)
{
    return _mm512_rolv_epi64(v, _mm512_set_epi64((t - b1) & 63, (t - b1) & 63, (t - b1) & 63, (t - b1) & 63,
                                                  (t - b0) & 63, (t - b0) & 63, (t - b0) & 63, (t - b0) & 63));
}

/* 32 bytes of 2-bit fields, both halves shifted: the lower 256 bits take bits 2k0, the upper 2k1. */
INLINE __m512i two_bits(__m512i q, int k0, int k1)
{
    __m512i s = _mm512_set_epi64(2 * k1, 2 * k1, 2 * k1, 2 * k1, 2 * k0, 2 * k0, 2 * k0, 2 * k0);
    return _mm512_and_si512(_mm512_srlv_epi64(q, s), _mm512_set1_epi8(3));
}

INLINE __m512i bcast256(const uint8_t *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }

INLINE void unpack_q2_K(const uint8_t *b, struct kq_blk *o)
{
    const struct block_q2_K *blk = (const struct block_q2_K *)(const void *)b;
    UNROLL
    for (int h = 0; h < 2; h++) {
        __m512i q = bcast256(blk->qs + 32 * h);
        o->u[2 * h] = two_bits(q, 0, 1);
        o->u[2 * h + 1] = two_bits(q, 2, 3);
    }
    __m128i s = _mm_loadu_si128((const __m128i *)blk->scales);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    scales16(_mm256_cvtepu8_epi16(_mm_and_si128(s, m4)), o->sc);
    o->cm = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), m4));
    o->d = h2f(load_u16(b + offsetof(struct block_q2_K, d)));
    o->dm = h2f(load_u16(b + offsetof(struct block_q2_K, dmin)));
}

INLINE void unpack_q3_K(const uint8_t *b, struct kq_blk *o)
{
    const struct block_q3_K *blk = (const struct block_q3_K *)(const void *)b;
    __m512i hm = bcast256(blk->hmask);
    const __m512i four = _mm512_set1_epi8(4);
    UNROLL
    for (int h = 0; h < 2; h++) {
        __m512i q = bcast256(blk->qs + 32 * h);
        UNROLL
        for (int j = 0; j < 2; j++) {
            int k0 = 2 * j, k1 = 2 * j + 1;
            /* level q + 4 = low two bits + 4 * (high bit), the high bit of element 128h + 32k + l
             * being bit 4h + k of hmask[l] */
            o->u[2 * h + j] = or_masked(rot_bits(hm, 4 * h + k0, 4 * h + k1, 2), four, two_bits(q, k0, k1));
        }
    }
    uint32_t w[4];
    kq_scales_q3_words(blk->scales, w);
    __m128i s = _mm_sub_epi8(_mm_set_epi32((int)w[3], (int)w[2], (int)w[1], (int)w[0]) /* not via memory: a store-forwarding stall */, _mm_set1_epi8(32));
    o->cm = _mm256_cvtepi8_epi16(s);
    scales16(o->cm, o->sc);
    o->d = h2f(load_u16(b + offsetof(struct block_q3_K, d)));
    o->dm = 0;
}

/* Q4_K, and Q5_K when q5 (its fifth bit: bit e / 32 of qh[e % 32], to bit 4) */
INLINE void unpack_k4(const uint8_t *b, bool q5, struct kq_blk *o)
{
    const uint8_t *qs = b + (q5 ? offsetof(struct block_q5_K, qs) : offsetof(struct block_q4_K, qs));
    const __m512i nib_shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0), m4 = _mm512_set1_epi8(0x0f);
    __m512i qh = q5 ? bcast256(b + offsetof(struct block_q5_K, qh)) : _mm512_setzero_si512();
    UNROLL
    for (int c = 0; c < 4; c++) {
        /* 32 bytes: low nibbles are elements 64c .. 64c+31, high nibbles the next 32 */
        __m512i u = _mm512_and_si512(_mm512_srlv_epi64(bcast256(qs + 32 * c), nib_shift), m4);
        if (q5) u = or_masked(rot_bits(qh, 2 * c, 2 * c + 1, 4), _mm512_set1_epi8(0x10), u);
        o->u[c] = u;
    }
    uint64_t sm[2];
    kq_scales_k4_words(b + offsetof(struct block_q4_K, scales), sm);
    __m512i s = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sm[0])));
    UNROLL
    for (int c = 0; c < 4; c++) o->sc[c] = lane_words(s, 2 * c, 2 * c, 2 * c + 1, 2 * c + 1);
    __m128i m = _mm_cvtsi64_si128((long long)sm[1]);
    o->cm = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m)); /* bsum g pairs with the min of g / 2 */
    o->d = h2f(load_u16(b));
    o->dm = h2f(load_u16(b + 2));
}

INLINE void unpack_q6_K(const uint8_t *b, struct kq_blk *o)
{
    const struct block_q6_K *blk = (const struct block_q6_K *)(const void *)b;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    UNROLL
    for (int h = 0; h < 2; h++) {
        /* 64 bytes of ql: low nibbles are elements 128h + 0..63, high nibbles 128h + 64..127;
         * their top two bits are bits 2k of qh[32h + l] for quarter k */
        __m512i l = _mm512_loadu_si512(blk->ql + 64 * h);
        __m512i hb = bcast256(blk->qh + 32 * h);
        o->u[2 * h] = or_masked(rot_bits(hb, 0, 2, 4), m30, _mm512_and_si512(l, m4));
        o->u[2 * h + 1] = or_masked(rot_bits(hb, 4, 6, 4), m30, _mm512_and_si512(_mm512_srli_epi16(l, 4), m4));
    }
    o->cm = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
    scales16(o->cm, o->sc);
    o->d = h2f(load_u16(b + offsetof(struct block_q6_K, d)));
    o->dm = 0;
}

INLINE void unpack(int type, const uint8_t *b, struct kq_blk *o)
{
    switch (type) {
    case PF_TYPE_Q2_K: unpack_q2_K(b, o); break;
    case PF_TYPE_Q3_K: unpack_q3_K(b, o); break;
    case PF_TYPE_Q4_K: unpack_k4(b, false, o); break;
    case PF_TYPE_Q5_K: unpack_k4(b, true, o); break;
    default: unpack_q6_K(b, o); break;
    }
}

INLINE size_t block_size(int type)
{
    switch (type) {
    case PF_TYPE_Q2_K: return sizeof(struct block_q2_K);
    case PF_TYPE_Q3_K: return sizeof(struct block_q3_K);
    case PF_TYPE_Q4_K: return sizeof(struct block_q4_K);
    case PF_TYPE_Q5_K: return sizeof(struct block_q5_K);
    default: return sizeof(struct block_q6_K);
    }
}

/* log2 of the level bias (subtracted in the integer sum), or -1 for types with mins */
INLINE int bias_shift(int type) { return type == PF_TYPE_Q3_K ? 2 : type == PF_TYPE_Q6_K ? 5 : -1; }

/* ==== Dots and gemms ==== */

/* One weight row against T (1..KQ_TT) activation rows: out[t * os]. */
INLINE void kq_row(int type, int T, int64_t nb, const uint8_t *w, const uint8_t *x, size_t xs, float *out,
                   size_t os)
{
    const size_t wbs = block_size(type), xbs = sizeof(struct block_q8_K);
    const int shift = bias_shift(type);
    __m512 acc[KQ_TT];
    __m256 accm[KQ_TT];
    UNROLL
    for (int t = 0; t < T; t++) {
        acc[t] = _mm512_setzero_ps();
        accm[t] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        struct kq_blk b;
        unpack(type, w + (size_t)i * wbs, &b);
        UNROLL
        for (int t = 0; t < T; t++) {
            const uint8_t *a = x + (size_t)t * xs + (size_t)i * xbs;
            const uint8_t *aq = a + offsetof(struct block_q8_K, qs);
            __m512i s = _mm512_setzero_si512();
            UNROLL
            for (int c = 0; c < 4; c++)
                s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(b.u[c], _mm512_loadu_si512(aq + 64 * c)), b.sc[c]);
            __m256i corr = _mm256_madd_epi16(b.cm, _mm256_loadu_si256((const __m256i *)(a + offsetof(struct block_q8_K, bsums))));
            float dx;
            memcpy(&dx, a, 4);
            if (shift >= 0) {
                s = _mm512_sub_epi32(s, _mm512_zextsi256_si512(_mm256_sll_epi32(corr, _mm_cvtsi32_si128(shift))));
            } else {
                accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(corr), _mm256_set1_ps(b.dm * dx), accm[t]);
            }
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(b.d * dx), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < T; t++) out[(size_t)t * os] = _mm512_reduce_add_ps(acc[t]) - hsum256(accm[t]);
}

INLINE void kq_gemm(int type, int64_t n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs,
                    float *out, size_t os)
{
    const int64_t nb = n / QK_K;
    for (int t = 0; t < nt; t += KQ_TT) {
        const uint8_t *xt = (const uint8_t *)x + (size_t)t * xs;
        float *ot = out + (size_t)t * os;
        for (int r = 0; r < nr; r++) {
            const uint8_t *wr = (const uint8_t *)w + (size_t)r * ws;
            switch (nt - t) {
            case 1: kq_row(type, 1, nb, wr, xt, xs, ot + r, os); break;
            case 2: kq_row(type, 2, nb, wr, xt, xs, ot + r, os); break;
            case 3: kq_row(type, 3, nb, wr, xt, xs, ot + r, os); break;
            case 4: kq_row(type, 4, nb, wr, xt, xs, ot + r, os); break;
            case 5: kq_row(type, 5, nb, wr, xt, xs, ot + r, os); break;
            case 6: kq_row(type, 6, nb, wr, xt, xs, ot + r, os); break;
            case 7: kq_row(type, 7, nb, wr, xt, xs, ot + r, os); break;
            default: kq_row(type, KQ_TT, nb, wr, xt, xs, ot + r, os); break;
            }
        }
    }
}

#define KQ_ENTRIES(T, U)                                                                         \
    float pf_dot_##T##_avx512(const void *w, const void *x, int64_t n)                           \
    {                                                                                            \
        float r;                                                                                 \
        kq_row(PF_TYPE_##U, 1, n / QK_K, w, x, 0, &r, 0);                                        \
        return r;                                                                                \
    }                                                                                            \
    void pf_gemm_##T##_avx512(int64_t n, int nr, int nt, const void *w, size_t ws, const void *x, \
                              size_t xs, float *out, size_t os)                                  \
    {                                                                                            \
        kq_gemm(PF_TYPE_##U, n, nr, nt, w, ws, x, xs, out, os);                                  \
    }

KQ_ENTRIES(q2_K, Q2_K)
KQ_ENTRIES(q3_K, Q3_K)
KQ_ENTRIES(q4_K, Q4_K)
KQ_ENTRIES(q5_K, Q5_K)
KQ_ENTRIES(q6_K, Q6_K)

/* ==== Q8_K activations ==== */

/* Sum of 16 int8: vpsadbw on the bytes biased to unsigned (from the stored bytes, so bsums always
 * agree with qs, whatever the input). */
static inline int16_t bsum16(__m128i q)
{
    __m128i s = _mm_sad_epu8(_mm_xor_si128(q, _mm_set1_epi8((char)0x80)), _mm_setzero_si128());
    return (int16_t)(_mm_cvtsi128_si32(s) + _mm_extract_epi32(s, 2) - 16 * 128);
}

/* The reference's arithmetic, bit for bit on finite inputs: the first value of largest
 * magnitude sets iscale = -127 / max; q = min(127, round-to-even(x * iscale)) (vcvtps2dq rounds
 * as llama.cpp's nearest_int); d = 1 / iscale. NaNs are skipped by the maximum as in the
 * reference (vmaxps returns its second operand when the first is NaN). */
void pf_from_f32_q8_K_avx512(const float *src, void *dst, int64_t n)
{
    struct block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        __m512 m = _mm512_setzero_ps();
        for (int j = 0; j < QK_K; j += 16) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + j)), m);
        const float amax = _mm512_reduce_max_ps(m);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        int first = 0;
        for (int j = 0; j < QK_K; j += 16) {
            __mmask16 eq = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + j)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (eq) { first = j + __builtin_ctz(eq); break; }
        }
        const float iscale = -127.0f / x[first];
        const __m512 vs = _mm512_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 16) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + j), vs));
            __m128i q8 = _mm512_cvtepi32_epi8(_mm512_min_epi32(q, _mm512_set1_epi32(127)));
            _mm_storeu_si128((__m128i *)(y[i].qs + j), q8);
            y[i].bsums[j / 16] = bsum16(q8);
        }
        y[i].d = 1 / iscale;
    }
}
