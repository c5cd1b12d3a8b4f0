/* K-quant tests (Q2_K .. Q6_K weights, Q8_K activations; layouts in tensor/kquants.h):
 *  - the type table: ids, names (parsed case-insensitively), 256-element blocks, row sizes;
 *  - the layout itself: one handcrafted super-block per type whose values at chosen elements are
 *    worked out by hand from the layout description, checked through the reference dequantizer
 *    and through every dot variant (a one-hot activation picks one weight);
 *  - the reference quantizers: dequant(quantize(x)) within a bound per type relative to the
 *    super-block's largest magnitude; deterministic; never writing past the row;
 *  - the reference dot equals the f64 dot of the dequantized values; Q8_K bsums are the sums of
 *    its quants; the SIMD Q8_K quantizers equal the reference bit for bit;
 *  - every SIMD dot and gemm against the reference, rows NaN-poisoned after their end (and in the
 *    gaps of strided tiles) so a kernel that reads past a row returns NaN, the page after that
 *    unmapped so it crashes; pf_matmul on K-quant weights;
 *  - whole models: pinfer synth writes q2_K..q6_K files (output.weight in q6_K: a mixed file),
 *    pinfer loads and runs them, and their logits are close to those of the same weights
 *    dequantized to F32; a file mixing all K-quants with other types (K-quant token embeddings
 *    included) loads and runs the same way; prepare keeps its gate (Q4_K), up (Q4_0) and down
 *    (Q6_K) types in the bundles, where oracle == off bit for bit; an FFN type without bundle
 *    kernels (Q8_K gate) is refused up front. */
#include "gguf/gguf.h"
#include "pinfer.h"
#include "tensor/kernels.h"
#include "tensor/kquants.h"
#include "tensor/matmul.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Dots: error relative to sum |w_i x_i| over the values the kernels see (as tests/test_kernels.c). */
#define TOL_DOT_VS_EXACT 1e-5   /* reference dot vs the f64 dot of dequant(w) and dequant(x) */
#define TOL_VARIANT_VS_REF 1e-5 /* SIMD dot or gemm vs the reference dot */
/* Whole models: largest logit difference relative to the logit range (max - min) of the F32 twin.
 * The weights are the same numbers; only the activations' Q8_K rounding (1/254 of each block's
 * largest magnitude) differs. */
#define TOL_MODEL_LOGITS 0.02
/* Batch (gemm) vs one token at a time: the same kernels per token, attention summed in another
 * order. */
#define TOL_BATCH_LOGITS 1e-4

static unsigned long long rng = 0x2545f4914f6cdd1dULL;

static const int ktypes[] = { PF_TYPE_Q2_K, PF_TYPE_Q3_K, PF_TYPE_Q4_K, PF_TYPE_Q5_K, PF_TYPE_Q6_K };
#define N_KTYPES (int)(sizeof ktypes / sizeof *ktypes)

/* ==== Guarded buffers (as tests/test_kernels.c) ==== */

#define POISON 64

struct guarded { void *map; size_t map_len; void *p; };

/* n usable bytes ending POISON bytes (0xff: NaN as f32 and as an f16 scale) before an unmapped
 * page. */
static void *guarded_alloc(struct guarded *g, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (n + POISON + pg - 1) / pg * pg;
    g->map_len = body + pg;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED) { perror("mmap"); exit(1); }
    mprotect((char *)g->map + body, pg, PROT_NONE);
    g->p = (char *)g->map + body - POISON - n;
    memset((char *)g->p + n, 0xff, POISON);
    return g->p;
}

static void guarded_free(struct guarded *g) { munmap(g->map, g->map_len); }

static bool poison_intact(const struct guarded *g, size_t n)
{
    const unsigned char *p = (const unsigned char *)g->p + n;
    for (int i = 0; i < POISON; i++)
        if (p[i] != 0xff) return false;
    return true;
}

static size_t row_bytes(int type, int64_t n)
{
    size_t r = 0;
    if (!pf_row_size(type, n, &r)) { fprintf(stderr, "bad row size\n"); exit(1); }
    return r;
}

/* Test data: uniform values times a per-super-block magnitude over 4 decades, with an outlier
 * now and then, sub-blocks of zeros, and an all-positive stretch (mins matter there). */
static void fill(float *v, int64_t n)
{
    float scale = 1.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % QK_K == 0) scale = powf(10.0f, 2.0f * tu_randf(&rng));
        float x = tu_randf(&rng) * scale;
        int sub = (int)((i / 16) % 23);
        if (sub == 5) x = 0.0f;
        if (sub == 11) x = fabsf(x) + 0.5f * scale;
        if (tu_rand(&rng) % 97 == 0) x *= 8.0f;
        v[i] = x;
    }
}

/* ==== The type table ==== */

static void test_types(void)
{
    static const struct { int id; const char *name; size_t size; } want[] = {
        { 10, "q2_K", 84 }, { 11, "q3_K", 110 }, { 12, "q4_K", 144 },
        { 13, "q5_K", 176 }, { 14, "q6_K", 210 }, { 15, "q8_K", 292 },
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const struct pf_type_info *ti = pf_type_get(want[i].id);
        CHECKF(ti != NULL, "type %d missing", want[i].id);
        if (!ti) continue;
        CHECK(strcmp(ti->name, want[i].name) == 0 && ti->blck == 256 && ti->size == want[i].size);
        CHECK(ti->vec_dot_type == PF_TYPE_Q8_K);
        CHECK(pf_type_parse(want[i].name) == want[i].id);
        char upper[8];
        for (int c = 0; c < 5; c++) upper[c] = (char)(want[i].name[c] >= 'a' ? want[i].name[c] - 32 : want[i].name[c]);
        upper[4] = 0;
        CHECKF(pf_type_parse(upper) == want[i].id, "%s", upper);
        size_t r;
        CHECK(pf_row_size(want[i].id, 4096, &r) && r == 16 * want[i].size);
        CHECK(!pf_row_size(want[i].id, 4096 + 32, &r) && !pf_row_size(want[i].id, 128, &r));
        CHECK(strcmp(pinfer_type_name(want[i].id), want[i].name) == 0);
    }
    CHECK(pf_type_parse("q4_k") == PF_TYPE_Q4_K && pf_type_parse("Q6_k") == PF_TYPE_Q6_K);
}

/* ==== Handcrafted super-blocks ==== */

struct spot { int e; float v; };

/* A one-hot Q8_K activation (element e = 1, d = 1): its dot with a weight row is weight e. */
static void one_hot(struct block_q8_K *x, int e)
{
    memset(x, 0, sizeof *x);
    x->d = 1.0f;
    x->qs[e] = 1;
    x->bsums[e / 16] = 1;
}

static void check_spots(int type, const void *blk, const struct spot *s, int ns)
{
    float v[QK_K];
    pf_kernels_ref.dequant[type](blk, v, QK_K);
    const char *names[] = { "ref", "avx2", "avx512" };
    for (int i = 0; i < ns; i++) {
        CHECKF(v[s[i].e] == s[i].v, "%s element %d: %g, by hand %g", pf_type_name(type), s[i].e, v[s[i].e], s[i].v);
        struct block_q8_K x;
        one_hot(&x, s[i].e);
        for (size_t k = 0; k < 3; k++) {
            const struct pf_kernels *kt = pf_kernels_get(names[k]);
            if (!kt) continue;
            float d = kt->dot[type](blk, &x, QK_K);
            CHECKF(d == s[i].v, "%s dot[%s] one-hot %d: %g, by hand %g", names[k], pf_type_name(type), s[i].e, d, s[i].v);
        }
    }
}

static void test_handcrafted(void)
{
    /* Q2_K: d = 0.5, dmin = 1; sub-block j: scale j, min 15 - j; every qs byte 0xe4 = levels
     * 0, 1, 2, 3 at bits 0, 2, 4, 6, so level = quarter (e % 128) / 32.
     * value = 0.5 * j * quarter - (15 - j). */
    struct block_q2_K q2;
    for (int j = 0; j < 16; j++) q2.scales[j] = (uint8_t)(j | (15 - j) << 4);
    memset(q2.qs, 0xe4, sizeof q2.qs);
    q2.d = 0x3800;
    q2.dmin = 0x3c00;
    const struct spot s2[] = {
        { 0, -15.0f },  /* j 0, quarter 0: 0 - 15 */
        { 40, -12.0f }, /* j 2, quarter 1: 1 - 13 */
        { 70, -7.0f },  /* j 4, quarter 2: 4 - 11 */
        { 127, 2.5f },  /* j 7, quarter 3: 10.5 - 8 */
        { 200, 9.0f },  /* j 12, quarter (200 - 128) / 32 = 2: 12 - 3 */
        { 255, 22.5f }, /* j 15, quarter 3: 22.5 - 0 */
    };
    check_spots(PF_TYPE_Q2_K, &q2, s2, 6);

    /* Q3_K: d = 2; 6-bit scales s_j = 4j (so s_j - 32 = 4j - 32): low nibbles 0, 4, 8, 12
     * repeating, byte j holding sub-blocks j and j + 8; top bits (s_j >> 4 = j / 4) at bit
     * 2 * (j / 4) of byte 8 + j % 4: 0 | 1 << 2 | 2 << 4 | 3 << 6 = 0xe4 in all four.
     * qs[b] = b; hmask bytes 0xf0: the third bit is set for e >= 128 only, so elements below
     * 128 have level low2 - 4. */
    struct block_q3_K q3;
    const uint8_t sc3[12] = { 0x00, 0x44, 0x88, 0xcc, 0x00, 0x44, 0x88, 0xcc, 0xe4, 0xe4, 0xe4, 0xe4 };
    memcpy(q3.scales, sc3, 12);
    memset(q3.hmask, 0xf0, sizeof q3.hmask);
    for (int b = 0; b < 64; b++) q3.qs[b] = (uint8_t)b;
    q3.d = 0x4000;
    const struct spot s3[] = {
        { 0, 256.0f },  /* qs[0] = 0: low2 0, level -4; j 0: -32; 2 * -32 * -4 */
        { 37, 144.0f }, /* quarter 1, qs[5] = 5: (5 >> 2) & 3 = 1, level -3; j 2: -24 */
        { 100, 64.0f }, /* quarter 3, qs[4] = 4: 4 >> 6 = 0, level -4; j 6: -8 */
        { 150, 16.0f }, /* half 1, quarter 0, qs[54] = 0b110110: 2, bit set: level 2; j 9: 4 */
        { 223, 120.0f }, /* half 1, quarter 2, qs[63]: (63 >> 4) & 3 = 3, level 3; j 13: 20 */
    };
    check_spots(PF_TYPE_Q3_K, &q3, s3, 5);

    /* Q4_K: d = 1, dmin = 0.5; scales 1, 2, 3, 4, 17, 34, 51, 63 and mins 0, 1, 2, 3, 20, 40, 5, 63:
     *   bytes 0..3: scale j | (scale j+4 >> 4) << 6 = 1|1<<6, 2|2<<6, 3|3<<6, 4|3<<6
     *   bytes 4..7: min j | (min j+4 >> 4) << 6 = 0|1<<6, 1|2<<6, 2|0<<6, 3|3<<6
     *   bytes 8..11: (scale j+4 & 15) | (min j+4 & 15) << 4 = 0x41, 0x82, 0x53, 0xff.
     * qs[32c + l] = (l % 16) | (15 - l % 16) << 4: element 64c + l (l < 32) has level l % 16,
     * element 64c + 32 + l has 15 - l % 16. value = scale_j * level - 0.5 * min_j, j = e / 32. */
    struct block_q4_K q4;
    const uint8_t sc4[12] = { 65, 130, 195, 196, 64, 129, 2, 195, 0x41, 0x82, 0x53, 0xff };
    memcpy(q4.scales, sc4, 12);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) q4.qs[32 * c + l] = (uint8_t)((l % 16) | (15 - l % 16) << 4);
    q4.d = 0x3c00;
    q4.dmin = 0x3800;
    const struct spot s4[] = {
        { 0, 0.0f },     /* level 0, j 0 */
        { 5, 5.0f },     /* level 5 * scale 1 */
        { 33, 27.5f },   /* high nibble of byte 1: 14; j 1: 2 * 14 - 0.5 */
        { 70, 17.0f },   /* c 1, low nibble of l 6: 6; j 2: 3 * 6 - 1 */
        { 130, 24.0f },  /* c 2, l 2: 2; j 4: 17 * 2 - 10 */
        { 170, 150.0f }, /* c 2, high nibble of l 10: 5; j 5: 34 * 5 - 20 */
        { 200, 405.5f }, /* c 3, l 8: 8; j 6: 51 * 8 - 2.5 */
        { 255, -31.5f }, /* c 3, high nibble of l 31: 0; j 7: 0 - 31.5 */
    };
    check_spots(PF_TYPE_Q4_K, &q4, s4, 8);

    /* Q5_K: Q4_K's scales and nibbles, qh[l] = 1 << (l % 8): element e gains 16 when bit e / 32
     * of qh[e % 32] is set, i.e. when e / 32 == (e % 32) % 8. */
    struct block_q5_K q5;
    memcpy(q5.scales, sc4, 12);
    memcpy(q5.qs, q4.qs, sizeof q5.qs);
    for (int l = 0; l < 32; l++) q5.qh[l] = (uint8_t)(1 << (l % 8));
    q5.d = 0x3c00;
    q5.dmin = 0x3800;
    const struct spot s5[] = {
        { 0, 16.0f },     /* bit 0 of qh[0]: level 16 */
        { 5, 5.0f },      /* qh[5] has bit 5, not 0 */
        { 33, 59.5f },    /* bit 1 of qh[1]: 14 + 16; 2 * 30 - 0.5 */
        { 70, 17.0f },    /* qh[6] = bit 6, not 2 */
        { 130, 24.0f },   /* qh[2] = bit 2, not 4 */
        { 231, 1480.5f }, /* bit 7 of qh[7]: high nibble of l 7 = 8, + 16; 63 * 24 - 31.5 */
        { 255, 976.5f },  /* bit 7 of qh[31]: 0 + 16; 63 * 16 - 31.5 */
    };
    check_spots(PF_TYPE_Q5_K, &q5, s5, 7);

    /* Q6_K: d = 0.5; scales[j] = j - 8; ql[b] = b; every qh byte 0x1b = top bits 3, 2, 1, 0
     * for quarters 0..3. Element 128h + 32k + l: low 4 bits from ql[64h + 32(k % 2) + l] (high
     * nibble for k >= 2); level = (top << 4 | low) - 32; value = 0.5 * (j - 8) * level. */
    struct block_q6_K q6;
    for (int b = 0; b < 128; b++) q6.ql[b] = (uint8_t)b;
    memset(q6.qh, 0x1b, sizeof q6.qh);
    for (int j = 0; j < 16; j++) q6.scales[j] = (int8_t)(j - 8);
    q6.d = 0x3800;
    const struct spot s6[] = {
        { 0, -64.0f },   /* ql[0] low 0, top 3: 48 - 32 = 16; j 0: -8 */
        { 40, -24.0f },  /* quarter 1: ql[40] = 0x28 low 8, top 2: 8; j 2: -6 */
        { 77, 32.0f },   /* quarter 2: ql[13] high 0, top 1: -16; j 4: -4 */
        { 127, 14.5f },  /* quarter 3: ql[63] = 0x3f high 3, top 0: -29; j 7: -1 */
        { 128, 0.0f },   /* j 8: scale 0 */
        { 200, -24.0f }, /* half 1, quarter 2: ql[72] = 0x48 high 4, top 1: -12; j 12: 4 */
        { 255, -87.5f }, /* half 1, quarter 3: ql[127] = 0x7f high 7, top 0: -25; j 15: 7 */
    };
    check_spots(PF_TYPE_Q6_K, &q6, s6, 7);

    /* Q8_K: value = d * q */
    struct block_q8_K q8;
    q8.d = 0.25f;
    for (int e = 0; e < QK_K; e++) q8.qs[e] = (int8_t)(e - 128);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int l = 0; l < 16; l++) s += q8.qs[16 * g + l];
        q8.bsums[g] = (int16_t)s;
    }
    float v[QK_K];
    pf_kernels_ref.dequant[PF_TYPE_Q8_K](&q8, v, QK_K);
    CHECK(v[0] == -32.0f && v[128] == 0.0f && v[255] == 31.75f);
    struct block_q8_K x;
    one_hot(&x, 3);
    CHECK(pf_kernels_ref.dot[PF_TYPE_Q8_K](&q8, &x, QK_K) == -31.25f);
}

/* ==== Reference quantizers ==== */

/* Largest |dequant(quantize(x)) - x| over a super-block, relative to the super-block's largest
 * |x|. Half a grid step of a sub-block that spans [-max, max] is max/3 (Q2_K: 4 levels with a
 * min), max/4 (Q3_K: levels -4..3, the side opposite the largest value clamped at 3), max/15
 * (Q4_K), max/31 (Q5_K), max/32 (Q6_K), max/254 (Q8_K); rounding the sub-block scales and mins
 * to 4..8 bits relative to the largest ones adds up to half as much again. Measured over these
 * seeded data: 0.330, 0.217, 0.064, 0.049, 0.016, 0.0039. */
static double err_bound(int type)
{
    switch (type) {
    case PF_TYPE_Q2_K: return 0.40;
    case PF_TYPE_Q3_K: return 0.30;
    case PF_TYPE_Q4_K: return 0.085;
    case PF_TYPE_Q5_K: return 0.065;
    case PF_TYPE_Q6_K: return 0.022;
    default: return 1.0 / 250; /* Q8_K: half of max / 127, plus the float rounding of x * iscale */
    }
}

static double worst_err = 0;

static void test_roundtrip(int type, int64_t n, int rows)
{
    size_t rb = row_bytes(type, n);
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    struct guarded g, g2;
    char *q = guarded_alloc(&g, rb), *q2 = guarded_alloc(&g2, rb);
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        fill(x, n);
        pf_kernels_ref.from_f32[type](x, q, n);
        pf_kernels_ref.from_f32[type](x, q2, n);
        CHECKF(memcmp(q, q2, rb) == 0, "%s: quantizer not deterministic", pf_type_name(type));
        CHECKF(poison_intact(&g, rb), "%s n=%lld: quantizer wrote past the row", pf_type_name(type), (long long)n);
        pf_kernels_ref.dequant[type](q, y, n);
        for (int64_t b = 0; b < n / QK_K; b++) {
            double amax = 0, err = 0;
            for (int e = 0; e < QK_K; e++) {
                amax = fmax(amax, fabs(x[b * QK_K + e]));
                err = fmax(err, fabs((double)y[b * QK_K + e] - x[b * QK_K + e]));
            }
            if (amax > 0) worst = fmax(worst, err / amax);
            else CHECKF(err == 0, "%s: an all-zero block comes back nonzero", pf_type_name(type));
        }
    }
    CHECKF(worst <= err_bound(type), "%s n=%lld: round-trip error %.4f of the block max > %.4f", pf_type_name(type),
           (long long)n, worst, err_bound(type));
    if (worst > worst_err) worst_err = worst;
    free(x); free(y);
    guarded_free(&g); guarded_free(&g2);
}

static double exact_dot(int wt, const void *w, const void *x, int64_t n, double *sabs)
{
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    pf_kernels_ref.dequant[wt](w, a, n);
    pf_kernels_ref.dequant[PF_TYPE_Q8_K](x, b, n);
    double s = 0, sa = 0;
    for (int64_t i = 0; i < n; i++) { s += (double)a[i] * b[i]; sa += fabs((double)a[i] * b[i]); }
    free(a); free(b);
    *sabs = sa;
    return s;
}

static bool close_rel(double got, double want, double sabs, double tol)
{
    return !isnan(got) && fabs(got - want) <= tol * sabs + 1e-30;
}

/* Q8_K: bsums are the sums of the quants, the largest magnitude maps to -127, the SIMD
 * quantizers give the same bytes; all-zero blocks are all zero. */
static void test_q8_K(int64_t n)
{
    size_t rb = row_bytes(PF_TYPE_Q8_K, n);
    float *x = malloc((size_t)n * sizeof *x);
    fill(x, n);
    for (int e = 0; e < QK_K; e++) x[e] = 0.0f; /* block 0 all zero */
    if (n >= 3 * QK_K) {
        x[QK_K + 7] = NAN;            /* block 1: a NaN is skipped by the maximum, quantizes to 0 */
        x[2 * QK_K + 100] = INFINITY; /* block 2: d = -inf, every quant 0 */
    }
    struct guarded g, g2;
    struct block_q8_K *q = guarded_alloc(&g, rb), *q2 = guarded_alloc(&g2, rb);
    pf_kernels_ref.from_f32[PF_TYPE_Q8_K](x, q, n);
    int bad = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        bool has_m127 = false;
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += q[b].qs[16 * j + l];
            bad += q[b].bsums[j] != s;
        }
        for (int e = 0; e < QK_K; e++) has_m127 |= q[b].qs[e] == -127;
        bad += b == 0 ? q[b].d != 0.0f : b == 2 && n >= 3 * QK_K ? !isinf(q[b].d) : !has_m127;
    }
    CHECKF(bad == 0, "q8_K n=%lld: %d bad bsums or scales", (long long)n, bad);
    const char *names[] = { "avx2", "avx512" };
    for (int k = 0; k < 2; k++) {
        const struct pf_kernels *kt = pf_kernels_get(names[k]);
        if (!kt) continue;
        memset(q2, 0x55, rb);
        kt->from_f32[PF_TYPE_Q8_K](x, q2, n);
        CHECKF(memcmp(q, q2, rb) == 0, "%s from_f32[q8_K] n=%lld differs from ref", names[k], (long long)n);
        CHECKF(poison_intact(&g2, rb), "%s from_f32[q8_K] wrote past the row", names[k]);
    }
    free(x);
    guarded_free(&g); guarded_free(&g2);
}

/* The reference dot against the f64 dot of the dequantized values. */
static void test_ref_dot(int type, int64_t n)
{
    float *f = malloc((size_t)n * sizeof *f);
    struct guarded gw, gx;
    void *w = guarded_alloc(&gw, row_bytes(type, n)), *x = guarded_alloc(&gx, row_bytes(PF_TYPE_Q8_K, n));
    fill(f, n);
    pf_kernels_ref.from_f32[type](f, w, n);
    fill(f, n);
    pf_kernels_ref.from_f32[PF_TYPE_Q8_K](f, x, n);
    double sabs, want = exact_dot(type, w, x, n, &sabs);
    float got = pf_kernels_ref.dot[type](w, x, n);
    CHECKF(close_rel(got, want, sabs, TOL_DOT_VS_EXACT), "ref dot[%s] n=%lld: %.9g vs exact %.9g (sabs %g)",
           pf_type_name(type), (long long)n, got, want, sabs);
    free(f);
    guarded_free(&gw); guarded_free(&gx);
}

/* ==== SIMD variants ==== */

/* nr weight rows x nt activation rows with padded strides (gaps NaN-poisoned), the last row of
 * each against the guard; nt == 0: the table's dot on one row pair. */
static void test_variant_one(const struct pf_kernels *k, int type, int64_t n, int nr, int nt)
{
    bool dot = nt == 0;
    if (dot) nt = nr = 1;
    size_t wb = row_bytes(type, n), xb = row_bytes(PF_TYPE_Q8_K, n);
    size_t ws = wb + (dot ? 0 : 2 * pf_type_get(type)->size), xs = xb + (dot ? 0 : 292);
    size_t os = (size_t)nr + 3;
    float *f = malloc((size_t)n * sizeof *f);
    struct guarded gw, gx;
    char *w = guarded_alloc(&gw, ws * (size_t)(nr - 1) + wb), *x = guarded_alloc(&gx, xs * (size_t)(nt - 1) + xb);
    memset(w, 0xff, ws * (size_t)(nr - 1) + wb);
    memset(x, 0xff, xs * (size_t)(nt - 1) + xb);
    for (int r = 0; r < nr; r++) { fill(f, n); pf_kernels_ref.from_f32[type](f, w + r * ws, n); }
    for (int t = 0; t < nt; t++) { fill(f, n); pf_kernels_ref.from_f32[PF_TYPE_Q8_K](f, x + t * xs, n); }
    float *out = malloc(os * (size_t)nt * sizeof *out);
    for (size_t i = 0; i < os * (size_t)nt; i++) out[i] = -12345.0f;
    if (dot) out[0] = k->dot[type](w, x, n);
    else k->gemm[type](n, nr, nt, w, ws, x, xs, out, os);
    int bad = 0;
    for (int t = 0; t < nt; t++) {
        for (int r = 0; r < nr; r++) {
            double sabs, want = exact_dot(type, w + r * ws, x + t * xs, n, &sabs);
            float ref = pf_kernels_ref.dot[type](w + r * ws, x + t * xs, n), got = out[(size_t)t * os + r];
            if ((!close_rel(got, want, sabs, TOL_DOT_VS_EXACT) || !close_rel(got, ref, sabs, TOL_VARIANT_VS_REF)) &&
                bad++ < 3)
                fprintf(stderr, "%s %s[%s] n=%lld %dx%d (r=%d t=%d): %.9g vs exact %.9g ref %.9g\n", k->name,
                        dot ? "dot" : "gemm", pf_type_name(type), (long long)n, nr, nt, r, t, got, want, ref);
        }
        for (size_t r = (size_t)nr; r < os && !dot; r++) CHECK(out[(size_t)t * os + r] == -12345.0f);
    }
    CHECKF(bad == 0, "%s %s[%s] n=%lld %dx%d: %d wrong", k->name, dot ? "dot" : "gemm", pf_type_name(type),
           (long long)n, nr, nt, bad);
    free(f); free(out);
    guarded_free(&gw); guarded_free(&gx);
}

static void test_variant(const struct pf_kernels *k)
{
    const int64_t ns[] = { 256, 512, 768, 4096 + 256 };
    /* rows x tokens: every tail of the 8-token (AVX-512) and 4-token (AVX2) gemm tiles */
    const int shapes[][2] = { { 1, 1 }, { 1, 5 }, { 3, 1 }, { 3, 4 }, { 5, 3 }, { 7, 9 }, { 2, 8 }, { 17, 1 },
                              { 2, 2 }, { 3, 6 }, { 1, 7 }, { 4, 15 } };
    for (int ti = 0; ti < N_KTYPES; ti++) {
        int type = ktypes[ti];
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
            for (int rep = 0; rep < 4; rep++) test_variant_one(k, type, ns[i], 1, 0);
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
                if (ns[i] <= 768 || s == 4) test_variant_one(k, type, ns[i], shapes[s][0], shapes[s][1]);
        }
        test_variant_one(k, type, 11008 / 256 * 256, 2, 0);
    }
}

/* pf_matmul on K-quant weights, threaded, one token and a batch, against reference dots. */
static void test_matmul(const struct pf_kernels *k, struct pf_pool *pool, int type, int64_t n_in, int64_t n_out,
                        int n_tok)
{
    size_t wrow = row_bytes(type, n_in), xrow = row_bytes(PF_TYPE_Q8_K, n_in);
    float *f = malloc((size_t)n_in * sizeof *f), *x = malloc((size_t)n_in * (size_t)n_tok * sizeof *x);
    char *w = malloc(wrow * (size_t)n_out), *xq = malloc(xrow);
    for (int64_t r = 0; r < n_out; r++) { fill(f, n_in); pf_kernels_ref.from_f32[type](f, w + (size_t)r * wrow, n_in); }
    fill(x, n_in * n_tok);
    float *y = malloc((size_t)n_out * (size_t)n_tok * sizeof *y);
    size_t ss = pf_matmul_scratch_size(type, n_in, n_tok);
    CHECK(ss != SIZE_MAX);
    void *scratch = malloc(ss);
    pf_matmul_k(k, pool, y, w, type, n_in, n_out, x, n_tok, scratch);
    int bad = 0;
    for (int t = 0; t < n_tok; t++) {
        pf_kernels_ref.from_f32[PF_TYPE_Q8_K](x + (size_t)t * n_in, xq, n_in);
        for (int64_t r = 0; r < n_out; r++) {
            double sabs;
            exact_dot(type, w + (size_t)r * wrow, xq, n_in, &sabs);
            float want = pf_kernels_ref.dot[type](w + (size_t)r * wrow, xq, n_in), got = y[(size_t)t * n_out + r];
            if (!close_rel(got, want, sabs, TOL_VARIANT_VS_REF)) bad++;
        }
    }
    CHECKF(bad == 0, "%s matmul %s %lldx%lld x %d tokens: %d wrong", k->name, pf_type_name(type), (long long)n_out,
           (long long)n_in, n_tok, bad);
    free(f); free(x); free(w); free(xq); free(y); free(scratch);
}

/* ==== Whole models ==== */

static char *tmp(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
    return p;
}

/* Rewrites the model src as dst with each weight matrix converted to pick(name, type) through
 * f32 (reference dequantizer, reference quantizer); vectors (norms) are copied as they are. */
typedef int (*pick_fn)(const char *name, int type);

static int rewrite(const char *src, const char *dst, pick_fn pick)
{
    struct gguf_file *f = NULL;
    struct gguf_writer *w = NULL;
    float *row = NULL;
    void *out = NULL;
    int rc = gguf_open(&f, src);
    if (!rc) rc = gguf_writer_new(&w);
    for (uint64_t i = 0; !rc && i < f->n_kv; i++) rc = gguf_writer_copy_kv(w, &f->kv[i]);
    int *types = f ? calloc(f->n_tensors, sizeof *types) : NULL;
    int64_t max_row = 0;
    for (uint64_t i = 0; !rc && i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        types[i] = t->n_dims == 1 ? t->type : pick(t->name, t->type);
        if (t->ne[0] > max_row) max_row = t->ne[0];
        rc = gguf_writer_add_tensor(w, t->name, types[i], t->n_dims, t->ne);
    }
    if (!rc) rc = gguf_writer_begin(w, dst);
    row = malloc((size_t)max_row * sizeof *row);
    out = malloc((size_t)max_row * sizeof(float));
    for (uint64_t i = 0; !rc && i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        size_t in_rb = row_bytes(t->type, t->ne[0]), out_rb = row_bytes(types[i], t->ne[0]);
        int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        const char *data = (const char *)f->data + t->file_offset;
        for (int64_t r = 0; !rc && r < rows; r++) {
            pf_kernels_ref.dequant[t->type](data + (size_t)r * in_rb, row, t->ne[0]);
            pf_kernels_ref.from_f32[types[i]](row, out, t->ne[0]);
            rc = gguf_writer_write(w, out, out_rb);
        }
    }
    if (!rc) rc = gguf_writer_finish(w);
    gguf_writer_free(w);
    if (rc) fprintf(stderr, "rewrite %s: %s\n", src, pinfer_last_error());
    free(types); free(row); free(out);
    gguf_close(f);
    return rc;
}

static int pick_f32(const char *name, int type) { (void)name; (void)type; return PF_TYPE_F32; }

/* Every K-quant, Q8_K as a weight, and older types, on different matrices of one file. */
static int pick_mixed(const char *name, int type)
{
    (void)type;
    static const struct { const char *suffix; int type; } m[] = {
        { "token_embd.weight", PF_TYPE_Q3_K }, { "output.weight", PF_TYPE_Q5_K },
        { "attn_q.weight", PF_TYPE_Q2_K },     { "attn_k.weight", PF_TYPE_Q8_K },
        { "attn_v.weight", PF_TYPE_Q8_0 },     { "attn_output.weight", PF_TYPE_F16 },
        { "ffn_gate.weight", PF_TYPE_Q4_K },   { "ffn_up.weight", PF_TYPE_Q4_0 },
        { "ffn_down.weight", PF_TYPE_Q6_K },
    };
    size_t ln = strlen(name);
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        size_t ls = strlen(m[i].suffix);
        if (ln >= ls && strcmp(name + ln - ls, m[i].suffix) == 0) return m[i].type;
    }
    return PF_TYPE_F32;
}

static int tensor_type(const char *path, const char *name)
{
    struct gguf_file *f = NULL;
    if (gguf_open(&f, path)) return -1;
    int i = gguf_find_tensor(f, name), t = i >= 0 ? f->tensors[i].type : -1;
    gguf_close(f);
    return t;
}

#define N_TOK 6

/* Logits of N_TOK tokens decoded one at a time (logits[t * n_vocab ...]), and, when batch is not
 * NULL, of the same tokens in one batch (the gemm path). 0 on success. */
static int run_model(const char *path, float *logits, float *batch, int *n_vocab)
{
    static const int32_t toks[N_TOK] = { 1, 17, 300, 42, 511, 99 };
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    if (pinfer_model_load(&m, path, NULL)) { fprintf(stderr, "load %s: %s\n", path, pinfer_last_error()); return -1; }
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 2;
    cp.n_batch = N_TOK;
    int rc = pinfer_ctx_new(&c, m, &cp);
    *n_vocab = pinfer_n_vocab(m);
    for (int t = 0; !rc && t < N_TOK; t++) {
        rc = pinfer_decode(c, &toks[t], 1, t, false);
        if (!rc) memcpy(logits + (size_t)t * *n_vocab, pinfer_ctx_logits(c, 0), (size_t)*n_vocab * sizeof(float));
    }
    if (!rc && batch) {
        pinfer_ctx_reset(c);
        rc = pinfer_decode(c, toks, N_TOK, 0, true);
        for (int t = 0; !rc && t < N_TOK; t++)
            memcpy(batch + (size_t)t * *n_vocab, pinfer_ctx_logits(c, t), (size_t)*n_vocab * sizeof(float));
    }
    if (rc) fprintf(stderr, "run %s: %s\n", path, pinfer_last_error());
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    return rc;
}

/* max |a - b| / (max b - min b) over the N_TOK logit vectors */
static double logit_diff(const float *a, const float *b, int nv)
{
    double worst = 0;
    for (int t = 0; t < N_TOK; t++) {
        double lo = INFINITY, hi = -INFINITY, d = 0;
        for (int i = 0; i < nv; i++) {
            const float u = a[(size_t)t * nv + i], v = b[(size_t)t * nv + i];
            lo = fmin(lo, v);
            hi = fmax(hi, v);
            d = isnan(u) || isnan(v) ? INFINITY : fmax(d, fabs((double)u - v));
        }
        worst = fmax(worst, d / (hi - lo));
    }
    return worst;
}

/* A quantized model against its own weights in F32: same logits up to activation rounding. */
static void compare_with_f32(const char *path, const char *what)
{
    char f32[600];
    snprintf(f32, sizeof f32, "%s.f32.gguf", path);
    if (rewrite(path, f32, pick_f32)) { CHECKF(0, "%s: rewrite failed", what); return; }
    const size_t cap = (size_t)N_TOK * 4096;
    float *q = malloc(cap * sizeof *q), *qb = malloc(cap * sizeof *qb), *r = malloc(cap * sizeof *r);
    int nv = 0, nv2 = 0;
    if (run_model(path, q, qb, &nv) == 0 && run_model(f32, r, NULL, &nv2) == 0 && nv == nv2 && nv <= 4096) {
        double d = logit_diff(q, r, nv), db = logit_diff(qb, q, nv);
        printf("%s: logits vs F32 weights %.5f of the range, batch vs one by one %.2g\n", what, d, db);
        CHECKF(d <= TOL_MODEL_LOGITS, "%s: logits differ from the F32 twin by %.4f of their range", what, d);
        CHECKF(db <= TOL_BATCH_LOGITS, "%s: batch logits differ from one-by-one by %.3g of their range", what, db);
    } else {
        CHECKF(0, "%s: the models do not run", what);
    }
    free(q); free(qb); free(r);
}

/* ffn_gate in Q8_K: a weight type pinfer computes with but has no gather dot for */
static int pick_gate_q8k(const char *name, int type)
{
    size_t ln = strlen(name), ls = strlen("ffn_gate.weight");
    return ln >= ls && strcmp(name + ln - ls, "ffn_gate.weight") == 0 ? PF_TYPE_Q8_K : type;
}

/* Greedy steps of a prepared model in a sparse mode; logits of every step into lg. */
static int greedy(const char *path, enum pinfer_sparse_mode mode, int n, float *lg, int nv)
{
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 8;
    cp.n_threads = 2;
    cp.sparse = mode;
    int rc = pinfer_model_load(&m, path, NULL);
    if (!rc) rc = pinfer_ctx_new(&c, m, &cp);
    int32_t prompt[3] = { 1, 7, 42 }, tok = 0;
    if (!rc) rc = pinfer_decode(c, prompt, 3, 0, false);
    for (int i = 0; !rc && i < n; i++) {
        const float *l = pinfer_ctx_logits(c, -1);
        memcpy(lg + (size_t)i * nv, l, sizeof(float) * (size_t)nv);
        tok = 0;
        for (int v = 1; v < nv; v++) if (l[v] > l[tok]) tok = v;
        rc = pinfer_decode(c, &tok, 1, 3 + i, false);
    }
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    return rc;
}

/* The mixed file's FFN has gate Q4_K, up Q4_0 and down Q6_K: prepare keeps those three types
 * in its slots (the gate and up dots read different activation formats, Q8_K and q8x/Q8_0), and
 * oracle == off on it, bit for bit. An FFN type without bundle kernels is refused up front. */
static void prepare_mixed(const char *mixed)
{
    struct pinfer_prepare_params pp = pinfer_prepare_default_params();
    pp.n_tokens = 96;
    pp.n_threads = 2;
    pp.train_steps = 20;
    const char *prep = tmp("mixed.prepared.gguf");
    int rc = pinfer_prepare(mixed, prep, &pp, NULL);
    CHECKF(rc == 0, "prepare the mixed-type file: %s", pinfer_last_error());
    if (rc == 0) {
        struct gguf_file *f = NULL;
        CHECK(gguf_open(&f, prep) == 0);
        const struct gguf_kv *kv = f ? gguf_find(f, "pinfer.bundle.0.types") : NULL;
        uint32_t ty[3] = { 0 };
        if (kv && kv->type == GGUF_ARRAY && kv->arr_type == GGUF_U32 && kv->arr_n == 3) memcpy(ty, kv->arr_data, sizeof ty);
        CHECKF(ty[0] == PF_TYPE_Q4_K && ty[1] == PF_TYPE_Q4_0 && ty[2] == PF_TYPE_Q6_K, "types %u %u %u", ty[0], ty[1], ty[2]);
        gguf_close(f);
        const int nv = 512, n = 24;
        float *a = malloc(sizeof(float) * (size_t)nv * n), *b = malloc(sizeof(float) * (size_t)nv * n);
        CHECK(greedy(prep, PINFER_SPARSE_OFF, n, a, nv) == 0 && greedy(prep, PINFER_SPARSE_ORACLE, n, b, nv) == 0);
        CHECKF(memcmp(a, b, sizeof(float) * (size_t)nv * n) == 0, "mixed-type bundles: oracle differs from off");
        printf("mixed types prepared (gate q4_K, up q4_0, down q6_K): oracle == off over %d steps\n", n);
        free(a);
        free(b);
    }
    const char *bad = tmp("gate_q8k.gguf");
    CHECK(rewrite(mixed, bad, pick_gate_q8k) == 0);
    rc = pinfer_prepare(bad, tmp("gate_q8k.prepared.gguf"), &pp, NULL);
    CHECKF(rc == PINFER_EUNSUPPORTED && strstr(pinfer_last_error(), "no bundle kernels for the gate part's type q8_K"),
           "gate in q8_K: rc %d: %s", rc, pinfer_last_error());
}

static void test_models(void)
{
    struct pinfer_synth_params sp = pinfer_synth_default_params();
    sp.shape = "tiny";
    sp.n_embd = 256;
    sp.n_ff = 512;
    sp.n_vocab = 512;
    sp.n_layer = 2;
    sp.seed = 11;
    const int types[] = { PF_TYPE_Q4_K, PF_TYPE_Q6_K, PF_TYPE_Q2_K, PF_TYPE_Q3_K, PF_TYPE_Q5_K };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char name[32];
        snprintf(name, sizeof name, "synth_%s.gguf", pf_type_name(types[i]));
        const char *path = tmp(name);
        sp.type = types[i];
        int rc = pinfer_synth(path, &sp);
        CHECKF(rc == 0, "synth %s: %s", pf_type_name(types[i]), pinfer_last_error());
        if (rc) continue;
        CHECK(tensor_type(path, "blk.1.ffn_down.weight") == types[i]);
        CHECK(tensor_type(path, "token_embd.weight") == types[i]);
        CHECK(tensor_type(path, "output.weight") == PF_TYPE_Q6_K);
        compare_with_f32(path, name);
        if (types[i] == PF_TYPE_Q4_K) {
            const char *mixed = tmp("mixed.gguf");
            CHECK(rewrite(path, mixed, pick_mixed) == 0);
            CHECK(tensor_type(mixed, "blk.0.attn_k.weight") == PF_TYPE_Q8_K);
            CHECK(tensor_type(mixed, "token_embd.weight") == PF_TYPE_Q3_K);
            compare_with_f32(mixed, "mixed types");
            prepare_mixed(mixed);
        }
    }
    /* rows must hold whole super-blocks */
    sp.type = PF_TYPE_Q4_K;
    sp.n_ff = 384;
    CHECK(pinfer_synth(tmp("bad.gguf"), &sp) == PINFER_EINVAL);
    CHECK(strstr(pinfer_last_error(), "multiples of 256") != NULL);
}

/* The CLI accepts the K-quant names (when tests/run.sh says where the binary is). */
static void test_cli(void)
{
    const char *bin = getenv("PINFER_BIN");
    if (!bin || access(bin, X_OK) != 0) { printf("no PINFER_BIN: pinfer synth --type q5_k not checked\n"); return; }
    const char *path = tmp("cli_q5k.gguf");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "'%s' synth -o '%s' --type Q5_k --dim 256 --ffn 256 --vocab 512 --layers 1 >/dev/null",
             bin, path);
    CHECK(system(cmd) == 0);
    CHECK(tensor_type(path, "blk.0.ffn_up.weight") == PF_TYPE_Q5_K);
}

int main(void)
{
    test_types();
    test_handcrafted();
    for (int ti = 0; ti < N_KTYPES + 1; ti++) {
        int type = ti < N_KTYPES ? ktypes[ti] : PF_TYPE_Q8_K;
        worst_err = 0;
        test_roundtrip(type, 256, 41);
        test_roundtrip(type, 512, 7);
        test_roundtrip(type, 4096 + 256, 3);
        printf("%s: worst round-trip error %.4f of the block max (bound %.4f)\n", pf_type_name(type), worst_err,
               err_bound(type));
        for (int rep = 0; rep < 5; rep++) test_ref_dot(type, 256 * (1 + rep * 7));
    }
    test_q8_K(256);
    test_q8_K(4096 + 256);

    const char *names[] = { "avx2", "avx512" };
    struct pf_pool *pool = NULL;
    CHECK(pf_pool_new(&pool, 2) == 0);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const struct pf_kernels *k = pf_kernels_get(names[i]);
        if (!k) { printf("variant %s: not supported on this CPU, skipped\n", names[i]); continue; }
        int before = tu_failures;
        test_variant(k);
        for (int ti = 0; ti < N_KTYPES; ti++) {
            test_matmul(k, pool, ktypes[ti], 512, 83, 1);
            test_matmul(k, pool, ktypes[ti], 256, 70, 5);
        }
        printf("variant %s: %s\n", names[i], tu_failures == before ? "ok" : "FAILED");
    }
    test_matmul(&pf_kernels_ref, pool, PF_TYPE_Q4_K, 256, 20, 3);
    pf_pool_free(pool);

    test_models();
    test_cli();
    TEST_DONE();
}
