/* AVX2 K-quant kernels (AVX2, FMA, F16C: the flags of kernels_avx2.c, chosen by CPUID): dots
 * and gemms of Q2_K..Q6_K weights with Q8_K activations, and the Q8_K quantizer. Layouts:
 * tensor/kquants.h; arithmetic: the reference, tensor/kquants_ref.c.
 *
 * The scheme of kquants_avx512.c at half the width and without VNNI: a super-block is unpacked
 * 64 elements at a time (16 YMM registers do not hold a whole one) into unsigned levels in
 * element order (Q3_K and Q6_K biased by 4 and 32) and int16 scales per element pair; per token
 * vpmaddubsw (u8 x s8 -> s16 pair sums, no saturation) then vpmaddwd with the scales (-> s32).
 * Mins and biases come from the activation's bsums; the integer sums are exact, so results
 * equal the reference up to float reassociation. */
#include "tensor/kquants.h"

#include "tensor/simd_x86.h"

#include <immintrin.h>
#include <string.h>


/* tokens sharing each unpacked weight chunk in the gemm */
#define KQ_TT 4


INLINE __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
INLINE __m256i bcast128(__m128i v) { return _mm256_broadcastsi128_si256(v); }

/* s holds 8 int16 words in each 128-bit lane; lane k of the result is word wk, 8 times. */
INLINE __m256i lane_words(__m256i s, int w0, int w1)
{
#define PAIR(w) (int)((2 * (w)) | (2 * (w) + 1) << 8 | (2 * (w)) << 16 | (2 * (w) + 1) << 24)
    const __m256i idx = _mm256_set_epi32(PAIR(w1), PAIR(w1), PAIR(w1), PAIR(w1), PAIR(w0), PAIR(w0), PAIR(w0), PAIR(w0));
#undef PAIR
    return _mm256_shuffle_epi8(s, idx);
}

/* Bit b of every byte moved to bit t (the shifts stay inside 16-bit words; the caller masks). */
INLINE __m256i move_bit(__m256i v, int b, int t)
{
    return b <= t ? _mm256_sll_epi16(v, _mm_cvtsi32_si128(t - b)) : _mm256_srl_epi16(v, _mm_cvtsi32_si128(b - t));
}

INLINE __m256i or_masked(__m256i a, int mask, __m256i b) { return _mm256_or_si256(_mm256_and_si256(a, _mm256_set1_epi8((char)mask)), b); }

INLINE __m256i two_bits(__m256i q, int k) { return _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(3)); }

/* ==== One weight super-block: per-block data, then 64 elements at a time ==== */

struct kq_hdr {
    __m256i s_lo, s_hi; /* int16 scales: 16-element types, words 0..7 and 8..15 in both lanes;
                           Q4_K / Q5_K, the 8 scales in both lanes (s_lo) */
    __m256i cm;         /* int16 coefficient of each activation bsum in the correction term */
    __m256i bits;       /* Q3_K hmask, Q5_K qh */
    float d, dm;
};

INLINE void header(int type, const uint8_t *b, struct kq_hdr *h)
{
    h->bits = _mm256_setzero_si256();
    h->dm = 0;
    if (type == PF_TYPE_Q4_K || type == PF_TYPE_Q5_K) {
        uint64_t sm[2];
        kq_scales_k4_words(b + offsetof(struct block_q4_K, scales), sm);
        h->s_lo = bcast128(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sm[0])));
        h->s_hi = h->s_lo;
        __m128i m = _mm_cvtsi64_si128((long long)sm[1]);
        h->cm = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m)); /* bsum g pairs with the min of g / 2 */
        if (type == PF_TYPE_Q5_K) h->bits = load256(b + offsetof(struct block_q5_K, qh));
        h->d = h2f(load_u16(b));
        h->dm = h2f(load_u16(b + 2));
        return;
    }
    __m256i s16;
    if (type == PF_TYPE_Q2_K) {
        __m128i s = _mm_loadu_si128((const __m128i *)b);
        const __m128i m4 = _mm_set1_epi8(0x0f);
        s16 = _mm256_cvtepu8_epi16(_mm_and_si128(s, m4));
        h->cm = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), m4));
        h->d = h2f(load_u16(b + offsetof(struct block_q2_K, d)));
        h->dm = h2f(load_u16(b + offsetof(struct block_q2_K, dmin)));
    } else if (type == PF_TYPE_Q3_K) {
        uint32_t w[4];
        kq_scales_q3_words(b + offsetof(struct block_q3_K, scales), w);
        s16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(_mm_set_epi32((int)w[3], (int)w[2], (int)w[1], (int)w[0]) /* not via memory: a store-forwarding stall */, _mm_set1_epi8(32)));
        h->cm = s16;
        h->bits = load256(b + offsetof(struct block_q3_K, hmask));
        h->d = h2f(load_u16(b + offsetof(struct block_q3_K, d)));
    } else {
        s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + offsetof(struct block_q6_K, scales))));
        h->cm = s16;
        h->d = h2f(load_u16(b + offsetof(struct block_q6_K, d)));
    }
    h->s_lo = bcast128(_mm256_castsi256_si128(s16));
    h->s_hi = bcast128(_mm256_extracti128_si256(s16, 1));
}

/* Elements 64c .. 64c+31 (u[0]) and 64c+32 .. 64c+63 (u[1]) as u8 levels, with the int16 scale
 * of every element pair (sc). */
INLINE void chunk(int type, const uint8_t *b, const struct kq_hdr *h, int c, __m256i u[2], __m256i sc[2])
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    if (type == PF_TYPE_Q4_K || type == PF_TYPE_Q5_K) {
        const uint8_t *qs = b + (type == PF_TYPE_Q5_K ? offsetof(struct block_q5_K, qs) : offsetof(struct block_q4_K, qs));
        __m256i q = load256(qs + 32 * c);
        u[0] = _mm256_and_si256(q, m4);
        u[1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (type == PF_TYPE_Q5_K) { /* bit e / 32 of qh[e % 32] adds 16 */
            u[0] = or_masked(move_bit(h->bits, 2 * c, 4), 0x10, u[0]);
            u[1] = or_masked(move_bit(h->bits, 2 * c + 1, 4), 0x10, u[1]);
        }
        sc[0] = lane_words(h->s_lo, 2 * c, 2 * c);
        sc[1] = lane_words(h->s_lo, 2 * c + 1, 2 * c + 1);
        return;
    }
    /* 16-element sub-blocks: vector v = 2c + j covers sub-blocks 2v (low lane) and 2v + 1 */
    UNROLL
    for (int j = 0; j < 2; j++) {
        int v = 2 * c + j;
        sc[j] = lane_words(v < 4 ? h->s_lo : h->s_hi, (2 * v) % 8, (2 * v + 1) % 8);
    }
    int hh = c / 2, k0 = 2 * (c % 2); /* half 128h; quarters k0, k0 + 1 of it */
    if (type == PF_TYPE_Q6_K) {
        const struct block_q6_K *blk = (const struct block_q6_K *)(const void *)b;
        __m256i l0 = load256(blk->ql + 64 * hh), l1 = load256(blk->ql + 64 * hh + 32);
        if (k0) {
            l0 = _mm256_srli_epi16(l0, 4);
            l1 = _mm256_srli_epi16(l1, 4);
        }
        __m256i qh = load256(blk->qh + 32 * hh);
        u[0] = or_masked(move_bit(qh, 2 * k0, 4), 0x30, _mm256_and_si256(l0, m4));
        u[1] = or_masked(move_bit(qh, 2 * k0 + 2, 4), 0x30, _mm256_and_si256(l1, m4));
        return;
    }
    const uint8_t *qs = b + (type == PF_TYPE_Q2_K ? offsetof(struct block_q2_K, qs) : offsetof(struct block_q3_K, qs));
    __m256i q = load256(qs + 32 * hh);
    u[0] = two_bits(q, k0);
    u[1] = two_bits(q, k0 + 1);
    if (type == PF_TYPE_Q3_K) { /* level q + 4: + 4 when bit 4h + k of hmask[l] is set */
        u[0] = or_masked(move_bit(h->bits, 4 * hh + k0, 2), 0x04, u[0]);
        u[1] = or_masked(move_bit(h->bits, 4 * hh + k0 + 1, 2), 0x04, u[1]);
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

INLINE int bias_shift(int type) { return type == PF_TYPE_Q3_K ? 2 : type == PF_TYPE_Q6_K ? 5 : -1; }

/* ==== Dots and gemms ==== */

INLINE void kq_row(int type, int T, int64_t nb, const uint8_t *w, const uint8_t *x, size_t xs, float *out,
                   size_t os)
{
    const size_t wbs = block_size(type), xbs = sizeof(struct block_q8_K);
    const int shift = bias_shift(type);
    __m256 acc[KQ_TT];
    UNROLL
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = w + (size_t)i * wbs;
        struct kq_hdr h;
        header(type, b, &h);
        __m256i s[KQ_TT];
        UNROLL
        for (int t = 0; t < T; t++) s[t] = _mm256_setzero_si256();
        UNROLL
        for (int c = 0; c < 4; c++) {
            __m256i u[2], sc[2];
            chunk(type, b, &h, c, u, sc);
            UNROLL
            for (int t = 0; t < T; t++) {
                const uint8_t *aq = x + (size_t)t * xs + (size_t)i * xbs + offsetof(struct block_q8_K, qs) + 64 * c;
                __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u[0], load256(aq)), sc[0]);
                __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u[1], load256(aq + 32)), sc[1]);
                s[t] = _mm256_add_epi32(s[t], _mm256_add_epi32(p0, p1));
            }
        }
        UNROLL
        for (int t = 0; t < T; t++) {
            const uint8_t *a = x + (size_t)t * xs + (size_t)i * xbs;
            __m256i corr = _mm256_madd_epi16(h.cm, load256(a + offsetof(struct block_q8_K, bsums)));
            float dx;
            memcpy(&dx, a, 4);
            if (shift >= 0) s[t] = _mm256_sub_epi32(s[t], _mm256_sll_epi32(corr, _mm_cvtsi32_si128(shift)));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), _mm256_set1_ps(h.d * dx), acc[t]);
            if (shift < 0) acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(corr), _mm256_set1_ps(-(h.dm * dx)), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < T; t++) out[(size_t)t * os] = hsum256(acc[t]);
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
            default: kq_row(type, KQ_TT, nb, wr, xt, xs, ot + r, os); break;
            }
        }
    }
}

#define KQ_ENTRIES(T, U)                                                                         \
    float pf_dot_##T##_avx2(const void *w, const void *x, int64_t n)                             \
    {                                                                                            \
        float r;                                                                                 \
        kq_row(PF_TYPE_##U, 1, n / QK_K, w, x, 0, &r, 0);                                        \
        return r;                                                                                \
    }                                                                                            \
    void pf_gemm_##T##_avx2(int64_t n, int nr, int nt, const void *w, size_t ws, const void *x,  \
                            size_t xs, float *out, size_t os)                                    \
    {                                                                                            \
        kq_gemm(PF_TYPE_##U, n, nr, nt, w, ws, x, xs, out, os);                                  \
    }

KQ_ENTRIES(q2_K, Q2_K)
KQ_ENTRIES(q3_K, Q3_K)
KQ_ENTRIES(q4_K, Q4_K)
KQ_ENTRIES(q5_K, Q5_K)
KQ_ENTRIES(q6_K, Q6_K)

/* ==== Q8_K activations ==== */

/* As the reference, bit for bit on finite inputs (see kquants_avx512.c): 32 values at a time
 * rounded by vcvtps2dq, narrowed with saturating packs (the same as min(127, q): q >= -127),
 * put back in order with one dword permute. */
void pf_from_f32_q8_K_avx2(const float *src, void *dst, int64_t n)
{
    struct block_q8_K *y = dst;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), absmask), m);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        int first = 0;
        for (int j = 0; j < QK_K; j += 8) {
            __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + j), absmask);
            int eq = _mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (eq) { first = j + __builtin_ctz((unsigned)eq); break; }
        }
        const float iscale = -127.0f / x[first];
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), vs));
                /* NaN lanes (INT_MIN) become 0, as in the reference and the AVX-512 variant */
                q[k] = _mm256_andnot_si256(_mm256_cmpeq_epi32(q[k], _mm256_set1_epi32(INT32_MIN)), q[k]);
            }
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), p);
            /* bsums from the stored bytes: vpsadbw sums 8 bytes biased to unsigned per 64 bits */
            __m256i s = _mm256_sad_epu8(_mm256_xor_si256(p, _mm256_set1_epi8((char)0x80)), _mm256_setzero_si256());
            y[i].bsums[j / 16] = (int16_t)(_mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 1) - 16 * 128);
            y[i].bsums[j / 16 + 1] = (int16_t)(_mm256_extract_epi64(s, 2) + _mm256_extract_epi64(s, 3) - 16 * 128);
        }
        y[i].d = 1 / iscale;
    }
}
