/* Tests of the types of tensor/quants_extra.h: Q4_1, Q5_0, Q5_1, IQ4_NL and the activation type
 * Q8_1.
 *  - layout: one handcrafted block per type whose values were derived by hand from ggml's byte
 *    layout (not from our code), read back through dequant, through every table's dot against
 *    one-hot activations, and through the bundle kernels;
 *  - quantizers: dequant(quantize(x)) within each type's error bound; Q8_1's s is
 *    fp16(d' * sum(qs)) with d' = amax / 127 before rounding, as ggml defines it;
 *  - dots: the reference equals the double-precision sum over the dequantized values (for Q8_1
 *    activations plus ggml's m * s term, whose own deviation is bounded separately); AVX2 and
 *    AVX-512 dots and gemms equal the reference; the Q8_1 conversion is bit-exact;
 *  - every input ends against 64 NaN bytes (0xff: NaN as f32 and as an fp16 scale) and an
 *    unmapped page, so a kernel reading past a row returns NaN or crashes;
 *  - models: synth writes q4_1 / q5_0 / q5_1 / iq4_nl; such a model loads and decodes, and its
 *    logits stay close to those of the same weights dequantized to F32; prepared (bundle)
 *    models of two of the types run, and under a memory budget give the in-memory logits bit
 *    for bit. */
#include "gguf/gguf.h"
#include "pinfer.h"
#include "tensor/kernels.h"
#include "tensor/quants_extra.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Error of a dot relative to the sum of |terms| (the scale float error lives on). */
#define TOL_DOT_VS_EXACT 1e-5
#define TOL_VARIANT_VS_REF 1e-5
/* Q8_1's s against d * sum(qs) with the stored d: two fp16 roundings (d, s) of 2^-11 each,
 * doubled for slack. */
#define TOL_S_REL 0x1p-9
/* Logits of a quantized synth model against the same weights in F32, relative to the logit
 * range: the activations are quantized to 8 bits before every product (measured: 0.3-0.4%; a
 * prepared model, whose down columns prepare requantizes as rows, against its raw file: 0.9-1.4%). */
#define TOL_LOGITS_VS_F32 0.03

static unsigned long long rng = 0x2545f4914f6cdd1dULL;

static const struct {
    int type;
    const char *name;
    size_t size;
    int vdt;
} extra[] = {
    { PF_TYPE_Q4_1, "q4_1", 20, PF_TYPE_Q8_1 },
    { PF_TYPE_Q5_0, "q5_0", 22, PF_TYPE_Q8_0 },
    { PF_TYPE_Q5_1, "q5_1", 24, PF_TYPE_Q8_1 },
    { PF_TYPE_IQ4_NL, "iq4_nl", 18, PF_TYPE_Q8_0 },
    { PF_TYPE_Q8_1, "q8_1", 36, PF_TYPE_Q8_1 },
};
#define N_EXTRA (int)(sizeof extra / sizeof *extra)

static const char *isa_names[] = { "ref", "avx2", "avx512" };
#define N_ISA 3

/* ==== Guarded buffers ==== */

#define POISON 64

struct guarded { void *map; size_t map_len; void *p; };

/* n usable bytes ending POISON NaN bytes before an unmapped page. */
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

/* ==== Helpers ==== */

/* Random floats with a per-32 magnitude that varies over 4 decades and a per-32 offset (so the
 * offset types' m matters), so block scales differ. */
static void fill(float *v, int64_t n)
{
    float scale = 1.0f, shift = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0) {
            scale = powf(10.0f, 2.0f * tu_randf(&rng));
            shift = i % 64 == 0 ? 0.0f : scale * tu_randf(&rng);
        }
        v[i] = tu_randf(&rng) * scale + shift;
    }
}

static size_t row_bytes(int type, int64_t n)
{
    size_t r = 0;
    if (!pf_row_size(type, n, &r)) { fprintf(stderr, "bad row size\n"); exit(1); }
    return r;
}

static uint16_t rd16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static int close_rel(double got, double want, double sabs, double tol)
{
    if (isnan(got)) return 0;
    return fabs(got - want) <= tol * sabs + 1e-30;
}

/* The double-precision dot of what the kernels see: the sum over dequantized values, plus for
 * Q4_1 / Q5_1 weights with Q8_1 activations ggml's offset term per block, m * s, in place of
 * m * d * sum(qs) (the two differ by s's rounding). *sabs: the sum of the terms' magnitudes;
 * *plain: the sum over dequantized values alone; *s_dev: the bound on their difference. */
static double exact_dot(int wt, const void *w, int xt, const void *x, int64_t n, double *sabs, double *plain,
                        double *s_dev)
{
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    pf_kernels_ref.dequant[wt](w, a, n);
    pf_kernels_ref.dequant[xt](x, b, n);
    double s = 0, sa = 0, dev = 0;
    for (int64_t i = 0; i < n; i++) { s += (double)a[i] * b[i]; sa += fabs((double)a[i] * b[i]); }
    *plain = s;
    if (xt == PF_TYPE_Q8_1 && wt != PF_TYPE_Q8_1) {
        size_t wbs = pf_type_get(wt)->size;
        for (int64_t blk = 0; blk < n / 32; blk++) {
            /* Q4_1 and Q5_1 both start with f16 d, f16 m */
            double m = pf_fp16_to_fp32(rd16((const char *)w + blk * wbs + 2));
            const struct block_q8_1 *xb = (const struct block_q8_1 *)x + blk;
            int sumq = 0;
            for (int j = 0; j < 32; j++) sumq += xb->qs[j];
            double dsum = (double)pf_fp16_to_fp32(xb->d) * sumq, sv = pf_fp16_to_fp32(xb->s);
            s += m * (sv - dsum);
            sa += fabs(m * sv);
            dev += fabs(m * dsum) * TOL_S_REL;
        }
    }
    free(a);
    free(b);
    *sabs = sa;
    *s_dev = dev;
    return s;
}

/* ==== Type table ==== */

static void test_type_info(void)
{
    for (int i = 0; i < N_EXTRA; i++) {
        const struct pf_type_info *ti = pf_type_get(extra[i].type);
        CHECKF(ti && !strcmp(ti->name, extra[i].name) && ti->blck == 32 && ti->size == extra[i].size &&
               ti->vec_dot_type == extra[i].vdt, "type %s", extra[i].name);
        CHECK(pf_type_parse(extra[i].name) == extra[i].type);
        CHECK(!strcmp(pinfer_type_name(extra[i].type), extra[i].name));
    }
    /* ggml's ids */
    CHECK(PF_TYPE_Q4_1 == 3 && PF_TYPE_Q5_0 == 6 && PF_TYPE_Q5_1 == 7 && PF_TYPE_Q8_1 == 9 && PF_TYPE_IQ4_NL == 20);
    size_t r;
    CHECK(pf_row_size(PF_TYPE_Q5_0, 4096, &r) && r == 128 * 22);
    CHECK(!pf_row_size(PF_TYPE_IQ4_NL, 48, &r));
}

/* Every table the dispatcher hands out has every kernel of the new types, dense and bundle. */
static void test_complete(void)
{
    for (int v = 0; v < N_ISA; v++) {
        const struct pf_kernels *k = pf_kernels_get(isa_names[v]);
        if (!k) continue;
        for (int i = 0; i < N_EXTRA; i++) {
            int t = extra[i].type;
            CHECKF(k->dot[t] && k->gemm[t] && k->dequant[t] && k->from_f32[t] && k->down_accum[t] &&
                   k->down_panel[t] && k->gather_dot[t], "%s: a kernel of %s is missing", k->name, extra[i].name);
        }
    }
    /* the SIMD tables have their own dots (the reference's would be a silent slowdown) */
    const struct pf_kernels *k2 = pf_kernels_get("avx2"), *k5 = pf_kernels_get("avx512");
    for (int i = 0; i < 4; i++) {
        int t = extra[i].type;
        if (k2) CHECK(k2->dot[t] != pf_kernels_ref.dot[t] && k2->gemm[t] != pf_kernels_ref.gemm[t]);
        if (k5) CHECK(k5->dot[t] != pf_kernels_ref.dot[t] && k5->gemm[t] != pf_kernels_ref.gemm[t]);
    }
}

/* ==== Handcrafted blocks ==== */

/* Bytes and values worked out by hand from ggml's layout (ggml-common.h; quants_extra.h repeats
 * it): little-endian fp16 fields, nibble j / 16+j in the low / high half of qs[j], bit j of qh
 * (u32) the fifth bit of element j. */
static const uint8_t hand_q4_1[20] = { /* d = 0.5 (0x3800), m = -2 (0xc000) */
    0x00, 0x38, 0x00, 0xc0, 0x13, 0x6a, 0xb1, 0x08, 0x5f, 0xa6, 0xfd, 0x44, 0x9b, 0xe2, 0x39, 0x80, 0xd7, 0x2e, 0x75, 0xcc,
};
static const float want_q4_1[32] = { /* q * 0.5 - 2; qs[0] = 0x13: q[0] = 3 -> -0.5, q[16] = 1 -> -1.5 */
    -0.5f, 3.0f, -1.5f, 2.0f, 5.5f, 1.0f, 4.5f, 0.0f, 3.5f, -1.0f, 2.5f, -2.0f, 1.5f, 5.0f, 0.5f, 4.0f,
    -1.5f, 1.0f, 3.5f, -2.0f, 0.5f, 3.0f, 5.5f, 0.0f, 2.5f, 5.0f, -0.5f, 2.0f, 4.5f, -1.0f, 1.5f, 4.0f,
};
static const uint8_t hand_q5_0[22] = { /* d = 0.25 (0x3400), qh = 0xf0008001: bits 0, 15, 28..31 */
    0x00, 0x34, 0x01, 0x80, 0x00, 0xf0, 0x50, 0x03, 0xb6, 0x69, 0x1c, 0xcf, 0x72, 0x25, 0xd8, 0x8b, 0x3e, 0xe1, 0x94, 0x47,
    0xfa, 0xad,
};
static const float want_q5_0[32] = { /* (q - 16) * 0.25; q[0] = 0 | 16 -> 0, q[15] = 0xd | 16 -> 3.25 */
    0.0f, -3.25f, -2.5f, -1.75f, -1.0f, -0.25f, -3.5f, -2.75f, -2.0f, -1.25f, -0.5f, -3.75f, -3.0f, -2.25f, -1.5f, 3.25f,
    -2.75f, -4.0f, -1.25f, -2.5f, -3.75f, -1.0f, -2.25f, -3.5f, -0.75f, -2.0f, -3.25f, -0.5f, 2.25f, 1.0f, 3.75f, 2.5f,
};
static const uint8_t hand_q5_1[24] = { /* d = 0.125 (0x3000), m = -1.5 (0xbe00), qh = 0xf00f55aa */
    0x00, 0x30, 0x00, 0xbe, 0xaa, 0x55, 0x0f, 0xf0, 0x72, 0x07, 0x9c, 0x21, 0xb6, 0x4b, 0xd0, 0x65, 0xfa, 0x8f, 0x14, 0xa9,
    0x3e, 0xc3, 0x58, 0xed,
};
static const float want_q5_1[32] = { /* q * 0.125 - 1.5; q[0] = 2 -> -1.25, q[1] = 7 | 16 -> 1.375 */
    -1.25f, 1.375f, 0.0f, 0.625f, -0.75f, 1.875f, -1.5f, 1.125f, 1.75f, 0.375f, 1.0f, -0.375f, 2.25f, -1.125f, 1.5f, 0.125f,
    1.375f, 0.5f, 1.625f, 0.75f, -0.125f, -1.0f, 0.125f, -0.75f, 0.375f, -0.5f, -1.375f, -0.25f, 0.875f, 2.0f, 1.125f, 2.25f,
};
static const uint8_t hand_iq4_nl[18] = { /* d = 0.5; qs[j] = j | (15 - j) << 4 */
    0x00, 0x38, 0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f,
};
static const float want_iq4_nl[32] = { /* 0.5 * kvalues_iq4nl[j], then the table backwards */
    -63.5f, -52.0f, -41.5f, -32.5f, -24.5f, -17.5f, -11.0f, -5.0f, 0.5f, 6.5f, 12.5f, 19.0f, 26.5f, 34.5f, 44.5f, 56.5f,
    56.5f, 44.5f, 34.5f, 26.5f, 19.0f, 12.5f, 6.5f, 0.5f, -5.0f, -11.0f, -17.5f, -24.5f, -32.5f, -41.5f, -52.0f, -63.5f,
};
static const uint8_t hand_q8_1[36] = { /* d = 0.5, s = -75 (0xd4b0) = 0.5 * sum(qs) = 0.5 * -150 */
    0x00, 0x38, 0xb0, 0xd4, 0x8c, 0xb1, 0xd6, 0xfb, 0x20, 0x45, 0x6a, 0x90, 0xb5, 0xda, 0xff, 0x24, 0x49, 0x6e,
    0x94, 0xb9, 0xde, 0x03, 0x28, 0x4d, 0x72, 0x98, 0xbd, 0xe2, 0x07, 0x2c, 0x51, 0x76, 0x9c, 0xc1, 0xe6, 0x0b,
};
static const float want_q8_1[32] = { /* qs * 0.5; qs[0] = 0x8c = -116 */
    -58.0f, -39.5f, -21.0f, -2.5f, 16.0f, 34.5f, 53.0f, -56.0f, -37.5f, -19.0f, -0.5f, 18.0f, 36.5f, 55.0f, -54.0f, -35.5f,
    -17.0f, 1.5f, 20.0f, 38.5f, 57.0f, -52.0f, -33.5f, -15.0f, 3.5f, 22.0f, 40.5f, 59.0f, -50.0f, -31.5f, -13.0f, 5.5f,
};

/* A one-hot activation block (d = 1, element j = 1; for Q8_1 s = 1): the dot of a weight block
 * with it is the weight's element j, exactly (for Q4_1 / Q5_1: (d * 1) * q + m * 1). */
static void one_hot(int xt, int j, void *x)
{
    if (xt == PF_TYPE_Q8_1) {
        struct block_q8_1 *b = x;
        memset(b, 0, sizeof *b);
        b->d = b->s = 0x3c00;
        b->qs[j] = 1;
    } else {
        struct block_q8_0 *b = x;
        memset(b, 0, sizeof *b);
        b->d = 0x3c00;
        b->qs[j] = 1;
    }
}

static void test_hand_blocks(void)
{
    const struct { int type; const uint8_t *bytes; const float *want; } hb[] = {
        { PF_TYPE_Q4_1, hand_q4_1, want_q4_1 }, { PF_TYPE_Q5_0, hand_q5_0, want_q5_0 },
        { PF_TYPE_Q5_1, hand_q5_1, want_q5_1 }, { PF_TYPE_IQ4_NL, hand_iq4_nl, want_iq4_nl },
        { PF_TYPE_Q8_1, hand_q8_1, want_q8_1 },
    };
    for (size_t h = 0; h < sizeof hb / sizeof *hb; h++) {
        const int t = hb[h].type, xt = pf_type_get(t)->vec_dot_type;
        const size_t bs = pf_type_get(t)->size;
        struct guarded gw, gx;
        void *w = guarded_alloc(&gw, bs), *x = guarded_alloc(&gx, pf_type_get(xt)->size);
        memcpy(w, hb[h].bytes, bs);
        for (int v = 0; v < N_ISA; v++) {
            const struct pf_kernels *k = pf_kernels_get(isa_names[v]);
            if (!k) continue;
            float got[32], y[32];
            k->dequant[t](w, got, 32);
            int bad = 0;
            for (int j = 0; j < 32; j++) bad += got[j] != hb[h].want[j];
            CHECKF(bad == 0, "%s dequant[%s] of the handcrafted block: %d values wrong (e.g. [0] %g, want %g)", k->name,
                   pf_type_name(t), bad, got[0], hb[h].want[0]);
            bad = 0;
            for (int j = 0; j < 32; j++) {
                one_hot(xt, j, x);
                float d = k->dot[t](w, x, 32), gd;
                const void *rows[1] = { w };
                k->gather_dot[t](k, rows, 1, x, 32, &gd, NULL);
                if (d != hb[h].want[j] || gd != d) {
                    if (bad++ < 3) fprintf(stderr, "%s dot[%s] with one-hot %d: %g (gather %g), want %g\n", k->name,
                                           pf_type_name(t), j, d, gd, hb[h].want[j]);
                }
            }
            CHECKF(bad == 0, "%s dot[%s]: the handcrafted block read wrong", k->name, pf_type_name(t));
            /* y = fma(1, w, 0) = w: the bundle kernels read the layout too */
            const void *rows[1] = { w };
            const float one = 1.0f;
            memset(y, 0, sizeof y);
            k->down_accum[t](rows, &one, 1, y, 32, NULL);
            CHECKF(!memcmp(y, hb[h].want, sizeof y), "%s down_accum[%s] of the handcrafted block", k->name, pf_type_name(t));
            float scratch[32];
            memset(y, 0, sizeof y);
            k->down_panel[t](w, bs, 1, 0, 32, &one, 1, 1, y, 32, scratch);
            CHECKF(!memcmp(y, hb[h].want, sizeof y), "%s down_panel[%s] of the handcrafted block", k->name, pf_type_name(t));
        }
        guarded_free(&gw);
        guarded_free(&gx);
    }

    /* Q4_1 x Q8_1 handcrafted: d_w d_x sum(q_w q_x) + m s = 0.25 * -428 + (-2) * (-75) = 43 */
    struct guarded gw, gx;
    void *w = guarded_alloc(&gw, 20), *x = guarded_alloc(&gx, 36);
    memcpy(w, hand_q4_1, 20);
    memcpy(x, hand_q8_1, 36);
    for (int v = 0; v < N_ISA; v++) {
        const struct pf_kernels *k = pf_kernels_get(isa_names[v]);
        if (k) CHECKF(k->dot[PF_TYPE_Q4_1](w, x, 32) == 43.0f, "%s: q4_1 . q8_1 = %g, want 43", k->name,
                      k->dot[PF_TYPE_Q4_1](w, x, 32));
    }
    guarded_free(&gw);
    guarded_free(&gx);
}

/* ==== Quantizers ==== */

/* Largest error of dequant(quantize(x)) allowed at element j of the block starting at x, with
 * blk the quantized block (for the stored scale). Every bound is the rounding of the scheme
 * (half a step, a whole step where ggml clamps) plus the fp16 rounding of d and m (2^-11
 * relative each, times the largest |q|), doubled where it is small. */
static double error_bound(int t, const float *x, const void *blk, int j)
{
    float min = x[0], max = x[0], amax = 0, vmax = 0;
    for (int i = 0; i < 32; i++) {
        min = fminf(min, x[i]);
        max = fmaxf(max, x[i]);
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); vmax = x[i]; }
    }
    switch (t) {
    case PF_TYPE_Q4_1: {
        double d = ((double)max - min) / 15;
        return d * (0.5 + 0x1p-6) + fabs(min) * 0x1p-10;
    }
    case PF_TYPE_Q5_1: {
        double d = ((double)max - min) / 31;
        return d * (0.5 + 0x1p-5) + fabs(min) * 0x1p-10;
    }
    case PF_TYPE_Q5_0: {
        /* the extreme value maps to q = 0; the other end is clamped to q = 31 (a full step) */
        double d = fabs(vmax / 16.0), r = x[j] / (vmax / -16.0);
        return d * (r >= 15.5 - 1e-3 ? 1.0 : 0.5) + d * 0x1p-6;
    }
    case PF_TYPE_IQ4_NL: {
        /* nearest table entry at the stored scale: half the widest gap (24 / 2), or the distance
         * beyond the table's ends; plus fp16 slack (the indices were chosen at the unrounded d) */
        double d = fabs(pf_fp16_to_fp32(rd16(blk)));
        double r = d > 0 ? x[j] / pf_fp16_to_fp32(rd16(blk)) : 0;
        double out = fmax(0, fmax(r - 113, -127 - r));
        return d * fmax(12.0, out) + d * 127 * 0x1p-9 + (d == 0 ? 1e-15 : 0);
    }
    default: /* Q8_1: roundf(x / d) */
        return amax / 127.0 * (0.5 + 0x1p-4);
    }
}

static void test_roundtrip(int t, int64_t n)
{
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    fill(x, n);
    const size_t bs = pf_type_get(t)->size;
    struct guarded g;
    char *q = guarded_alloc(&g, row_bytes(t, n));
    pf_kernels_ref.from_f32[t](x, q, n);
    pf_kernels_ref.dequant[t](q, y, n);
    int bad = 0;
    double err2 = 0, x2 = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t b = i / 32;
        double e = fabs((double)y[i] - x[i]), lim = error_bound(t, x + b * 32, q + b * bs, (int)(i % 32));
        err2 += e * e;
        x2 += (double)x[i] * x[i];
        if (!(e <= lim) && bad++ < 3)
            fprintf(stderr, "%s n=%lld [%lld]: %g -> %g, error %g > bound %g\n", pf_type_name(t), (long long)n, (long long)i,
                    x[i], y[i], e, lim);
    }
    CHECKF(bad == 0, "%s n=%lld: %d values outside the bound", pf_type_name(t), (long long)n, bad);
    /* overall: 4-5 bit types keep the relative RMS error under 10%, Q8_1 under 1% */
    double rel = sqrt(err2 / x2);
    CHECKF(rel < (t == PF_TYPE_Q8_1 ? 0.01 : 0.1), "%s n=%lld: relative RMS error %g", pf_type_name(t), (long long)n, rel);
    free(x);
    free(y);
    guarded_free(&g);
}

/* The shapes ggml's quantizers treat specially. */
static void test_special_blocks(void)
{
    float z[32] = { 0 }, c[32], spike[32] = { 0 }, tiny[32], y[32];
    for (int j = 0; j < 32; j++) { c[j] = 0.75f; tiny[j] = (j % 2 ? 1 : -1) * 1e-16f; }
    spike[7] = -3.0f;
    for (int i = 0; i < N_EXTRA; i++) {
        const int t = extra[i].type;
        uint8_t q[64];
        pf_kernels_ref.from_f32[t](z, q, 32);
        pf_kernels_ref.dequant[t](q, y, 32);
        bool ok = true;
        for (int j = 0; j < 32; j++) ok &= y[j] == 0.0f;
        CHECKF(ok, "%s: zeros do not come back as zeros", extra[i].name);
        pf_kernels_ref.from_f32[t](spike, q, 32);
        pf_kernels_ref.dequant[t](q, y, 32);
        /* the spike comes back exactly from Q4_1 / Q5_1 (it is the minimum: m = -3, q = 0) and Q5_0
         * (d = 3 / 16 is exact in fp16, q = 0); Q8_1's d = 3 / 127 is rounded to fp16, and IQ4_NL's
         * fitted scale moves it */
        if (t == PF_TYPE_Q8_1) CHECKF(fabsf(y[7] + 3.0f) <= 3.0f * 0x1p-10, "%s: spike %g", extra[i].name, y[7]);
        else if (t != PF_TYPE_IQ4_NL) CHECKF(y[7] == -3.0f, "%s: spike %g", extra[i].name, y[7]);
        else CHECKF(fabsf(y[7] + 3.0f) < 0.1f, "%s: spike %g", extra[i].name, y[7]);
        pf_kernels_ref.from_f32[t](c, q, 32);
        pf_kernels_ref.dequant[t](q, y, 32);
        ok = true;
        for (int j = 0; j < 32; j++) ok &= fabsf(y[j] - 0.75f) <= 0.75f * 0x1p-6;
        CHECKF(ok, "%s: a constant block comes back as %g", extra[i].name, y[0]);
    }
    /* Q4_1 / Q5_1 of a constant block: max == min, d = 0, everything is m */
    uint8_t q[64];
    pf_kernels_ref.from_f32[PF_TYPE_Q5_1](c, q, 32);
    CHECK(rd16(q) == 0 && rd16(q + 2) == pf_fp32_to_fp16(0.75f) && q[8] == 0 && q[4] == 0);
    /* IQ4_NL below ggml's 1e-15 threshold: d = 0 and every index at the entry nearest 0 (8) */
    pf_kernels_ref.from_f32[PF_TYPE_IQ4_NL](tiny, q, 32);
    bool all88 = true;
    for (int j = 0; j < 16; j++) all88 &= q[2 + j] == 0x88;
    CHECK(rd16(q) == 0 && all88);
    /* Q5_0 of the spike: d = -3 / -16, x[7] -> q = 0, zeros -> q = 16 (bit 4 set, nibble 0) */
    pf_kernels_ref.from_f32[PF_TYPE_Q5_0](spike, q, 32);
    uint32_t qh = (uint32_t)q[2] | (uint32_t)q[3] << 8 | (uint32_t)q[4] << 16 | (uint32_t)q[5] << 24;
    CHECK(rd16(q) == pf_fp32_to_fp16(0.1875f) && qh == ~(1u << 7) && (q[6 + 7] & 0x0f) == 0 && q[6] == 0);
}

/* Relative RMS error of dequant(quantize(x)). */
static double rms_error(int t, const float *x, int64_t n)
{
    float *y = malloc((size_t)n * sizeof *y);
    void *q = malloc(row_bytes(t, n));
    pf_kernels_ref.from_f32[t](x, q, n);
    pf_kernels_ref.dequant[t](q, y, n);
    double e = 0, xx = 0;
    for (int64_t i = 0; i < n; i++) { e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]); xx += (double)x[i] * x[i]; }
    free(y);
    free(q);
    return sqrt(e / xx);
}

/* IQ4_NL's scale search pays: on Gaussian weights (what its table was made for) it beats Q4_0,
 * the same size, by ~11% RMS error; with the first least-squares fit only (the search loop
 * removed) it measured no better than Q4_0. */
static void test_iq4nl_search(void)
{
    const int64_t n = 32 * 2048;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        float u = 0.5f * (tu_randf(&rng) + 1.0f) + 1e-7f, v = tu_randf(&rng);
        x[i] = sqrtf(-2.0f * logf(u)) * cosf(3.14159265f * v); /* Box-Muller */
    }
    double e4 = rms_error(PF_TYPE_IQ4_NL, x, n), e0 = rms_error(PF_TYPE_Q4_0, x, n);
    CHECKF(e4 < 0.95 * e0, "iq4_nl relative RMS error %g, q4_0 %g", e4, e0);
    printf("Gaussian weights, relative RMS error: iq4_nl %.4f, q4_0 %.4f\n", e4, e0);
    free(x);
}

/* Q8_1 conversion: ggml's s, the same quants and scale as Q8_0, and every table bit-exact. */
static void test_q8_1(int64_t n)
{
    float *x = malloc((size_t)n * sizeof *x);
    fill(x, n);
    const int64_t nb = n / 32;
    struct block_q8_1 *a = malloc((size_t)nb * sizeof *a);
    struct block_q8_0 *b = malloc((size_t)nb * sizeof *b);
    pf_kernels_ref.from_f32[PF_TYPE_Q8_1](x, a, n);
    pf_kernels_ref.from_f32[PF_TYPE_Q8_0](x, b, n);
    int bad = 0;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0;
        int sum = 0;
        for (int j = 0; j < 32; j++) { amax = fmaxf(amax, fabsf(x[i * 32 + j])); sum += a[i].qs[j]; }
        const float dr = amax / 127.0f; /* d before its rounding to fp16 */
        if (a[i].s != pf_fp32_to_fp16((float)sum * dr)) bad++;
        if (!(fabs(pf_fp16_to_fp32(a[i].s) - (double)pf_fp16_to_fp32(a[i].d) * sum) <=
              TOL_S_REL * fabs((double)pf_fp16_to_fp32(a[i].d) * sum)))
            bad++;
        if (a[i].d != b[i].d || memcmp(a[i].qs, b[i].qs, 32)) bad++;
    }
    CHECKF(bad == 0, "q8_1 n=%lld: %d mismatches with ggml's definition", (long long)n, bad);
    for (int v = 1; v < N_ISA; v++) {
        const struct pf_kernels *k = pf_kernels_get(isa_names[v]);
        if (!k) continue;
        struct guarded g;
        void *o = guarded_alloc(&g, (size_t)nb * sizeof *a);
        k->from_f32[PF_TYPE_Q8_1](x, o, n);
        CHECKF(!memcmp(o, a, (size_t)nb * sizeof *a), "%s from_f32[q8_1] n=%lld differs from ref", k->name, (long long)n);
        CHECKF(((unsigned char *)o)[nb * sizeof *a] == 0xff, "%s from_f32[q8_1] wrote past the row", k->name);
        guarded_free(&g);
    }
    free(x);
    free(a);
    free(b);
}

/* ==== Dots and gemms ==== */

static void test_dot_one(const struct pf_kernels *k, int t, int64_t n)
{
    const int xt = pf_type_get(t)->vec_dot_type;
    const size_t wb = row_bytes(t, n), xb = row_bytes(xt, n);
    float *wf = malloc((size_t)n * sizeof *wf), *xf = malloc((size_t)n * sizeof *xf);
    fill(wf, n);
    fill(xf, n);
    struct guarded gw, gx;
    void *w = guarded_alloc(&gw, wb), *x = guarded_alloc(&gx, xb);
    pf_kernels_ref.from_f32[t](wf, w, n);
    pf_kernels_ref.from_f32[xt](xf, x, n);
    double sabs, plain, s_dev, want = exact_dot(t, w, xt, x, n, &sabs, &plain, &s_dev);
    const float ref = pf_kernels_ref.dot[t](w, x, n), got = k->dot[t](w, x, n);
    if (k == pf_kernels_get("ref")) {
        CHECKF(close_rel(ref, want, sabs, TOL_DOT_VS_EXACT), "ref dot[%s] n=%lld: %.9g vs exact %.9g (sabs %g)",
               pf_type_name(t), (long long)n, ref, want, sabs);
        /* without the s term: off by no more than the rounding of s allows */
        CHECKF(fabs(ref - plain) <= s_dev + TOL_DOT_VS_EXACT * sabs, "ref dot[%s] n=%lld: %.9g vs plain %.9g, bound %g",
               pf_type_name(t), (long long)n, ref, plain, s_dev + TOL_DOT_VS_EXACT * sabs);
    }
    CHECKF(close_rel(got, want, sabs, TOL_DOT_VS_EXACT), "%s dot[%s] n=%lld: %.9g vs exact %.9g", k->name, pf_type_name(t),
           (long long)n, got, want);
    CHECKF(close_rel(got, ref, sabs, TOL_VARIANT_VS_REF), "%s dot[%s] n=%lld: %.9g vs ref %.9g", k->name, pf_type_name(t),
           (long long)n, got, ref);
    free(wf);
    free(xf);
    guarded_free(&gw);
    guarded_free(&gx);
}

/* nr x nt tile with padded strides whose gaps are NaN, against single reference dots. */
static void test_gemm_one(const struct pf_kernels *k, int t, int64_t n, int nr, int nt)
{
    const int xt = pf_type_get(t)->vec_dot_type;
    const size_t wb = row_bytes(t, n), xb = row_bytes(xt, n);
    const size_t ws = wb + 2 * pf_type_get(t)->size, xs = xb + 3 * pf_type_get(xt)->size, os = (size_t)nr + 3;
    float *f = malloc((size_t)n * sizeof *f);
    struct guarded gw, gx;
    char *w = guarded_alloc(&gw, ws * (size_t)(nr - 1) + wb), *x = guarded_alloc(&gx, xs * (size_t)(nt - 1) + xb);
    memset(w, 0xff, ws * (size_t)(nr - 1) + wb);
    memset(x, 0xff, xs * (size_t)(nt - 1) + xb);
    for (int r = 0; r < nr; r++) { fill(f, n); pf_kernels_ref.from_f32[t](f, w + r * ws, n); }
    for (int i = 0; i < nt; i++) { fill(f, n); pf_kernels_ref.from_f32[xt](f, x + i * xs, n); }
    float *out = malloc(os * (size_t)nt * sizeof *out);
    for (size_t i = 0; i < os * (size_t)nt; i++) out[i] = -12345.0f;
    k->gemm[t](n, nr, nt, w, ws, x, xs, out, os);
    int bad = 0;
    for (int i = 0; i < nt; i++) {
        for (int r = 0; r < nr; r++) {
            double sabs, plain, s_dev, want = exact_dot(t, w + r * ws, xt, x + i * xs, n, &sabs, &plain, &s_dev);
            float ref = pf_kernels_ref.dot[t](w + r * ws, x + i * xs, n), got = out[(size_t)i * os + r];
            if ((!close_rel(got, want, sabs, TOL_DOT_VS_EXACT) || !close_rel(got, ref, sabs, TOL_VARIANT_VS_REF)) && bad++ < 3)
                fprintf(stderr, "%s gemm[%s] n=%lld %dx%d (r=%d t=%d): %.9g vs exact %.9g ref %.9g\n", k->name,
                        pf_type_name(t), (long long)n, nr, nt, r, i, got, want, ref);
        }
        for (size_t r = (size_t)nr; r < os; r++) CHECK(out[(size_t)i * os + r] == -12345.0f);
    }
    CHECKF(bad == 0, "%s gemm[%s] n=%lld %dx%d: %d wrong", k->name, pf_type_name(t), (long long)n, nr, nt, bad);
    free(f);
    free(out);
    guarded_free(&gw);
    guarded_free(&gx);
}

/* Bundle kernels against their definition (bundle_kernels.h) on the dequantized rows, bit for
 * bit; gather_dot against the table's own dot. Rows are scattered (each in its own buffer). */
static void test_bundle(const struct pf_kernels *k, int t, int64_t n)
{
    enum { K = 5, NT = 3 };
    const int xt = pf_type_get(t)->vec_dot_type;
    const size_t rs = row_bytes(t, n);
    float *f = malloc((size_t)n * sizeof *f), *deq = malloc((size_t)K * (size_t)n * sizeof *deq);
    struct guarded g[K], gp, gx;
    const void *rows[K];
    char *panel = guarded_alloc(&gp, rs * K);
    for (int i = 0; i < K; i++) {
        fill(f, n);
        void *r = guarded_alloc(&g[i], rs);
        pf_kernels_ref.from_f32[t](f, r, n);
        memcpy(panel + (size_t)i * rs, r, rs);
        pf_kernels_ref.dequant[t](r, deq + (size_t)i * n, n);
        rows[i] = r;
    }
    float h[K * NT];
    for (int i = 0; i < K * NT; i++) h[i] = tu_randf(&rng);
    float *y = malloc((size_t)NT * (size_t)n * sizeof *y), *want = malloc((size_t)NT * (size_t)n * sizeof *want);
    for (int64_t e = 0; e < n; e++) y[e] = want[e] = tu_randf(&rng);
    k->down_accum[t](rows, h, K, y, n, NULL);
    for (int i = 0; i < K; i++)
        for (int64_t e = 0; e < n; e++) want[e] = fmaf(h[i], deq[(size_t)i * n + e], want[e]);
    CHECKF(!memcmp(y, want, (size_t)n * sizeof *y), "%s down_accum[%s] n=%lld differs from its definition", k->name,
           pf_type_name(t), (long long)n);

    /* a panel: columns [e0, e0 + ne) of K rows, NT tokens */
    const int64_t e0 = n > 64 ? 32 : 0;
    const int ne = (int)((n - e0) < 256 ? n - e0 : 256);
    float *scratch = malloc(sizeof(float) * PF_PANEL_FLOATS);
    for (size_t i = 0; i < (size_t)NT * (size_t)n; i++) y[i] = want[i] = tu_randf(&rng);
    k->down_panel[t](panel, rs, K, e0, ne, h, K, NT, y, (size_t)n, scratch);
    for (int i = 0; i < NT; i++)
        for (int p = 0; p < K; p++)
            for (int e = 0; e < ne; e++)
                want[(size_t)i * n + e] = fmaf(h[i * K + p], deq[(size_t)p * n + e0 + e], want[(size_t)i * n + e]);
    CHECKF(!memcmp(y, want, (size_t)NT * (size_t)n * sizeof *y), "%s down_panel[%s] n=%lld differs from its definition",
           k->name, pf_type_name(t), (long long)n);

    fill(f, n);
    void *xa = guarded_alloc(&gx, row_bytes(xt, n));
    k->from_f32[xt](f, xa, n);
    float out[K];
    k->gather_dot[t](k, rows, K, xa, n, out, NULL);
    for (int i = 0; i < K; i++) CHECKF(out[i] == k->dot[t](rows[i], xa, n), "%s gather_dot[%s] row %d", k->name, pf_type_name(t), i);

    for (int i = 0; i < K; i++) guarded_free(&g[i]);
    guarded_free(&gp);
    guarded_free(&gx);
    free(f);
    free(deq);
    free(y);
    free(want);
    free(scratch);
}

static void test_variant(const struct pf_kernels *k)
{
    for (int i = 0; i < N_EXTRA; i++) {
        const int t = extra[i].type;
        for (int m = 1; m <= 40; m++) test_dot_one(k, t, 32 * m);
        const int64_t big[] = { 4096, 11008, 32 * 1001 };
        for (size_t j = 0; j < sizeof big / sizeof *big; j++) test_dot_one(k, t, big[j]);
        const int shapes[][2] = { { 1, 1 }, { 1, 5 }, { 3, 1 }, { 4, 4 }, { 5, 3 }, { 7, 9 }, { 13, 1 }, { 17, 2 } };
        const int64_t ns[] = { 32, 96, 32 * 37, 4096 };
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (size_t j = 0; j < sizeof ns / sizeof *ns; j++) test_gemm_one(k, t, ns[j], shapes[s][0], shapes[s][1]);
        test_bundle(k, t, 32);
        test_bundle(k, t, 32 * 13);
    }
}

/* ==== Models ==== */

static const char *tmp(const char *name)
{
    static char p[4][600];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", tu_tmpdir(), name);
    return p[i];
}

static struct pinfer_synth_params tiny_params(int type, enum pinfer_act act)
{
    struct pinfer_synth_params p = pinfer_synth_default_params();
    p.n_embd = 256;
    p.n_ff = 512;
    p.n_vocab = 512;
    p.n_layer = 2;
    p.n_ctx = 64;
    p.type = type;
    p.act = act;
    p.seed = 11;
    return p;
}

/* A copy of the model at in with every tensor dequantized to F32 (general.file_type 0). 0 or -1. */
static int write_f32_copy(const char *in, const char *out)
{
    struct gguf_file *f = NULL;
    struct gguf_writer *w = NULL;
    int rc = gguf_open(&f, in);
    if (!rc) rc = gguf_writer_new(&w);
    for (uint64_t i = 0; !rc && i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        if (kv->key.len == 17 && !memcmp(kv->key.s, "general.file_type", 17)) rc = gguf_writer_set_u32(w, "general.file_type", 0);
        else rc = gguf_writer_copy_kv(w, kv);
    }
    for (uint64_t i = 0; !rc && i < f->n_tensors; i++)
        rc = gguf_writer_add_tensor(w, f->tensors[i].name, PF_TYPE_F32, f->tensors[i].n_dims, f->tensors[i].ne);
    if (!rc) rc = gguf_writer_begin(w, out);
    for (uint64_t i = 0; !rc && i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        const int64_t n = t->ne[0];
        size_t rs = 0;
        if (!pf_row_size(t->type, n, &rs)) { rc = -1; break; }
        float *row = malloc(sizeof(float) * (size_t)n);
        for (uint64_t r = 0; !rc && r < t->nbytes / rs; r++) {
            pf_kernels_ref.dequant[t->type](f->data + t->file_offset + r * rs, row, n);
            rc = gguf_writer_write(w, row, sizeof(float) * (size_t)n);
        }
        free(row);
    }
    if (!rc) rc = gguf_writer_finish(w);
    if (rc) fprintf(stderr, "write_f32_copy: %s\n", pinfer_last_error());
    gguf_writer_free(w);
    gguf_close(f);
    return rc ? -1 : 0;
}

#define PROMPT 5
#define STEPS 4

/* Decodes a 5-token prompt as one batch (gemm tiles), then STEPS single tokens (matvecs): the
 * logits of every prompt token and of each step go to lg ((PROMPT + STEPS) x n_vocab). The steps
 * feed the tokens in tk when given, else the greedy choice, recorded in tk. 0 or the error. */
static int run_logits(const char *path, uint64_t budget, enum pinfer_sparse_mode mode, float *lg, int32_t *tk, bool given)
{
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.mem_budget = budget;
    int rc = pinfer_model_load(&m, path, &mp);
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 2;
    cp.sparse = mode;
    if (!rc) rc = pinfer_ctx_new(&c, m, &cp);
    const int nv = m ? pinfer_n_vocab(m) : 0;
    const int32_t prompt[PROMPT] = { 1, 17, 300, 42, 99 };
    if (!rc) rc = pinfer_decode(c, prompt, PROMPT, 0, true);
    for (int i = 0; !rc && i < PROMPT; i++) memcpy(lg + (size_t)i * nv, pinfer_ctx_logits(c, i), sizeof(float) * (size_t)nv);
    for (int s = 0; !rc && s < STEPS; s++) {
        const float *prev = lg + (size_t)(PROMPT - 1 + s) * nv;
        if (!given) {
            int a = 0;
            for (int v = 1; v < nv; v++) if (prev[v] > prev[a]) a = v;
            tk[s] = a;
        }
        rc = pinfer_decode(c, &tk[s], 1, PROMPT + s, false);
        if (!rc) memcpy(lg + (size_t)(PROMPT + s) * nv, pinfer_ctx_logits(c, -1), sizeof(float) * (size_t)nv);
    }
    if (rc) fprintf(stderr, "%s: %s\n", path, pinfer_last_error());
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    return rc;
}

/* Largest |a - b| over all rows relative to the range of b; NaN anywhere gives NaN. */
static double max_rel_diff(const float *a, const float *b, size_t n)
{
    float lo = b[0], hi = b[0];
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return NAN;
        lo = fminf(lo, b[i]);
        hi = fmaxf(hi, b[i]);
        d = fmax(d, fabs((double)a[i] - b[i]));
    }
    return d / fmax(hi - lo, 1e-30);
}

static void test_model(int type)
{
    char q[64], f[64];
    snprintf(q, sizeof q, "model_%s.gguf", pf_type_name(type));
    snprintf(f, sizeof f, "model_%s_f32.gguf", pf_type_name(type));
    const char *qpath = tmp(q), *fpath = tmp(f);
    struct pinfer_synth_params p = tiny_params(type, PINFER_ACT_SILU);
    CHECKF(pinfer_synth(qpath, &p) == 0, "synth %s: %s", pf_type_name(type), pinfer_last_error());
    struct gguf_file *g = NULL;
    CHECK(gguf_open(&g, qpath) == 0);
    if (g) {
        int i = gguf_find_tensor(g, "blk.1.ffn_down.weight"), e = gguf_find_tensor(g, "token_embd.weight");
        CHECKF(i >= 0 && g->tensors[i].type == type && e >= 0 && g->tensors[e].type == type, "%s: tensor types",
               pf_type_name(type));
        /* llama.h's LLAMA_FTYPE_MOSTLY_Q4_1 = 3, _Q5_0 = 8, _Q5_1 = 9, _IQ4_NL = 25 */
        uint32_t ft = 0, want = type == PF_TYPE_Q4_1 ? 3 : type == PF_TYPE_Q5_0 ? 8 : type == PF_TYPE_Q5_1 ? 9 : 25;
        CHECKF(gguf_get_u32(g, "general.file_type", &ft) == 0 && ft == want, "%s: file type %u", pf_type_name(type), ft);
        gguf_close(g);
    }
    if (write_f32_copy(qpath, fpath)) { CHECK(0); return; }
    const size_t n = (size_t)(PROMPT + STEPS) * 512;
    float *lq = malloc(n * sizeof *lq), *lf = malloc(n * sizeof *lf);
    int32_t tk[STEPS];
    int rc = run_logits(qpath, 0, PINFER_SPARSE_OFF, lq, tk, false);
    if (!rc) rc = run_logits(fpath, 0, PINFER_SPARSE_OFF, lf, tk, true);
    CHECKF(rc == 0, "%s: decode failed", pf_type_name(type));
    if (!rc) {
        double rel = max_rel_diff(lq, lf, n);
        CHECKF(rel <= TOL_LOGITS_VS_F32, "%s: logits differ from the F32 copy by %g of their range", pf_type_name(type), rel);
        printf("%s model: logits within %.4f of the F32 copy's range over %d prompt tokens and %d steps\n",
               pf_type_name(type), rel, PROMPT, STEPS);
    }
    free(lq);
    free(lf);
}

/* A prepared (bundle) model of the type: the bundle kernels run in the sparse decode step; the
 * dense pass over bundles stays close to the unprepared model; under a memory budget (the neuron
 * cache and its reads) the logits equal the in-memory run's bit for bit. */
static void test_prepared(int type)
{
    char r[64], pr[64];
    snprintf(r, sizeof r, "raw_%s.gguf", pf_type_name(type));
    snprintf(pr, sizeof pr, "prep_%s.gguf", pf_type_name(type));
    const char *raw = tmp(r), *prep = tmp(pr);
    struct pinfer_synth_params p = tiny_params(type, PINFER_ACT_DRELU);
    if (tu_make_prepared(raw, prep, &p, 96, 10)) { CHECKF(0, "prepare %s", pf_type_name(type)); return; }
    const size_t n = (size_t)(PROMPT + STEPS) * 512;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    int32_t tk[STEPS];
    CHECK(run_logits(raw, 0, PINFER_SPARSE_OFF, a, tk, false) == 0);
    CHECK(run_logits(prep, 0, PINFER_SPARSE_OFF, b, tk, true) == 0);
    /* prepare requantizes the down columns as rows: close, not equal */
    double rel = max_rel_diff(b, a, n);
    CHECKF(rel <= TOL_LOGITS_VS_F32, "%s prepared, dense: logits differ from the raw model by %g of their range",
           pf_type_name(type), rel);
    CHECK(run_logits(prep, 0, PINFER_SPARSE_PREDICTOR, a, tk, false) == 0);
    bool finite = true;
    for (size_t i = 0; i < n; i++) finite &= isfinite(a[i]) != 0;
    CHECKF(finite, "%s prepared, predictor: logits not finite", pf_type_name(type));
    /* a budget of 1 GiB holds everything; the fixed segment plus 64 KiB forces evictions */
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.mem_budget = 1ull << 30;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 2;
    cp.sparse = PINFER_SPARSE_PREDICTOR;
    struct pinfer_cache_stats cs = { 0 };
    if (pinfer_model_load(&m, prep, &mp) == 0 && pinfer_ctx_new(&c, m, &cp) == 0) pinfer_ctx_cache_stats(c, &cs);
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    CHECKF(cs.fixed_bytes > 0, "%s: no fixed segment: %s", pf_type_name(type), pinfer_last_error());
    if (cs.fixed_bytes > 0) {
        CHECK(run_logits(prep, cs.fixed_bytes + (64 << 10), PINFER_SPARSE_PREDICTOR, b, tk, true) == 0);
        CHECKF(!memcmp(a, b, n * sizeof *a), "%s prepared, predictor: the run under a budget differs from in memory",
               pf_type_name(type));
        printf("%s prepared: dense within %.4f of the raw model; predictor under a budget equals in memory\n",
               pf_type_name(type), rel);
    }
    free(a);
    free(b);
}

int main(void)
{
    test_type_info();
    test_complete();
    test_hand_blocks();
    for (int i = 0; i < N_EXTRA; i++) {
        const int64_t ns[] = { 32, 96, 32 * 7, 4096, 32 * 1001 };
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++) test_roundtrip(extra[i].type, ns[j]);
    }
    test_special_blocks();
    test_iq4nl_search();
    for (int m = 1; m <= 40; m++) test_q8_1(32 * m);
    test_q8_1(11008);
    for (int v = 0; v < N_ISA; v++) {
        const struct pf_kernels *k = pf_kernels_get(isa_names[v]);
        if (!k) { printf("variant %s: not supported on this CPU, skipped\n", isa_names[v]); continue; }
        int before = tu_failures;
        test_variant(k);
        printf("variant %s: %s\n", isa_names[v], tu_failures == before ? "ok" : "FAILED");
    }
    const int model_types[] = { PF_TYPE_Q5_0, PF_TYPE_IQ4_NL, PF_TYPE_Q4_1, PF_TYPE_Q5_1 };
    for (size_t i = 0; i < sizeof model_types / sizeof *model_types; i++) test_model(model_types[i]);
    test_prepared(PF_TYPE_Q5_1);
    test_prepared(PF_TYPE_IQ4_NL);
    TEST_DONE();
}
