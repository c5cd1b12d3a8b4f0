/* Kernel tests: fp16/bf16 conversions (exhaustive where the space allows, against the F16C
 * hardware when present), the reference quantizers on hand-checked blocks, and every kernel
 * variant this CPU can run against a double-precision dot and against the reference table.
 *
 * Inputs sit at the very end of a readable mapping: the 64 bytes after each input are NaN
 * (0xff bytes: NaN as f32, f16, bf16, and as a Q8_0/Q4_0 scale) and the page after that is
 * unmapped, so a kernel that reads past the end either returns NaN or crashes. */
#include "tensor/kernels.h"
#include "tensor/q8x.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* Error of a dot product relative to sum |w_i * x_i| (the scale floating-point error lives on). */
#define TOL_DOT_VS_EXACT 1e-5  /* any variant vs the double-precision dot of the same inputs */
#define TOL_VARIANT_VS_REF 1e-5 /* SIMD variant vs the reference kernel */

static unsigned long long rng = 0x9e3779b97f4a7c15ULL;

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ==== Guarded buffers ==== */

#define POISON 64

struct guarded { void *map; size_t map_len; void *p; };

/* n usable bytes ending POISON bytes before an unmapped page. */
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

/* ==== Conversions ==== */

#if defined(__x86_64__)
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}
__attribute__((target("f16c"))) static uint16_t hw_f2h(float f)
{
    return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), 0), 0);
}
#endif

static void test_fp16(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = pf_fp16_to_fp32((uint16_t)h);
        uint16_t back = pf_fp32_to_fp16(f);
        bool nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (nan) {
            if (!isnan(f) || back != (h | 0x200)) bad++; /* NaN comes back quiet, payload kept */
        } else if (back != h) {
            bad++;
        }
    }
    CHECKF(bad == 0, "%d fp16 values do not round-trip", bad);

    CHECK(pf_fp32_to_fp16(1.0f) == 0x3c00);
    CHECK(pf_fp32_to_fp16(-2.0f) == 0xc000);
    CHECK(pf_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(pf_fp32_to_fp16(65519.99f) == 0x7bff);
    CHECK(pf_fp32_to_fp16(65520.0f) == 0x7c00); /* tie with an odd mantissa rounds up to inf */
    CHECK(pf_fp32_to_fp16(INFINITY) == 0x7c00);
    CHECK(pf_fp32_to_fp16(-INFINITY) == 0xfc00);
    CHECK(pf_fp32_to_fp16(0x1p-24f) == 0x0001);
    CHECK(pf_fp32_to_fp16(0x1p-25f) == 0x0000);          /* tie to even: zero */
    CHECK(pf_fp32_to_fp16(0x1.8p-24f) == 0x0002);        /* tie to even: 2 */
    CHECK(pf_fp32_to_fp16(0x1.000002p-25f) == 0x0001);   /* just above the tie */
    CHECK(pf_fp32_to_fp16(-0.0f) == 0x8000);
    CHECK(pf_fp32_to_fp16(1.0f + 0x1p-11f) == 0x3c00);   /* tie, even stays */
    CHECK(pf_fp32_to_fp16(1.0f + 0x3p-11f) == 0x3c02);   /* tie, odd goes up */
    CHECK(pf_fp32_to_fp16(0x1.ffcp-15f) == 0x0400);      /* subnormal rounding up to the smallest normal */
    CHECK(isnan(pf_fp16_to_fp32(0x7e00)) && isinf(pf_fp16_to_fp32(0x7c00)));

#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C)) {
        int bad_h2f = 0, bad_f2h = 0;
        for (uint32_t h = 0; h < 65536; h++)
            if (f2u(hw_h2f((uint16_t)h)) != f2u(pf_fp16_to_fp32((uint16_t)h))) bad_h2f++;
        /* every fp32 exponent with random and boundary mantissas, plus random bit patterns */
        for (uint32_t e = 0; e < 512; e++) {
            uint32_t mants[] = { 0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fffff, 0x400000 };
            for (size_t i = 0; i < sizeof mants / sizeof *mants + 64; i++) {
                uint32_t m = i < sizeof mants / sizeof *mants ? mants[i] : (uint32_t)tu_rand(&rng) & 0x7fffff;
                float f = u2f((e << 23) | m);
                if (hw_f2h(f) != pf_fp32_to_fp16(f)) bad_f2h++;
            }
        }
        for (int i = 0; i < 1 << 22; i++) {
            float f = u2f((uint32_t)tu_rand(&rng));
            if (hw_f2h(f) != pf_fp32_to_fp16(f)) bad_f2h++;
        }
        CHECKF(bad_h2f == 0, "%d fp16->fp32 differ from F16C", bad_h2f);
        CHECKF(bad_f2h == 0, "%d fp32->fp16 differ from F16C", bad_f2h);
    }
#endif
}

static void test_bf16(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = pf_bf16_to_fp32((uint16_t)h);
        uint16_t back = pf_fp32_to_bf16(f);
        bool nan = (h & 0x7fff) > 0x7f80;
        CHECKF(nan ? back == (h | 0x40) : back == h, "bf16 %04x -> %04x", h, back);
    }
    CHECK(pf_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(pf_fp32_to_bf16(u2f(0x3f808000)) == 0x3f80); /* tie, even stays */
    CHECK(pf_fp32_to_bf16(u2f(0x3f818000)) == 0x3f82); /* tie, odd goes up */
    CHECK(pf_fp32_to_bf16(u2f(0x3f808001)) == 0x3f81);
    CHECK(pf_fp32_to_bf16(u2f(0x7f7fffff)) == 0x7f80); /* FLT_MAX rounds to inf */
    CHECK(pf_fp32_to_bf16(u2f(0x7f800001)) == 0x7fc0); /* signalling NaN made quiet */
    CHECK(pf_fp32_to_bf16(u2f(0xffc00000)) == 0xffc0);
    CHECK(pf_fp32_to_bf16(u2f(0x00018000)) == 0x0002); /* subnormals are kept, not flushed */
    CHECK(pf_fp32_to_bf16(-0.0f) == 0x8000);
}

/* ==== Reference quantizers on hand-checked blocks ==== */

static void test_quantizers(void)
{
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) / 4.0f; /* -4 .. 3.75 */
    struct block_q8_0 q8;
    pf_kernels_ref.from_f32[PF_TYPE_Q8_0](x, &q8, 32);
    CHECK(q8.d == pf_fp32_to_fp16(4.0f / 127.0f));
    CHECK(q8.qs[0] == -127 && q8.qs[16] == 0);
    CHECK(q8.qs[17] == (int8_t)roundf(0.25f * (1.0f / (4.0f / 127.0f)))); /* 7.9375 -> 8 */
    CHECK(q8.qs[31] == 119);                                         /* 3.75*31.75 = 119.06 */

    struct block_q4_0 q4;
    pf_kernels_ref.from_f32[PF_TYPE_Q4_0](x, &q4, 32);
    CHECK(q4.d == pf_fp32_to_fp16(0.5f)); /* max |x| is -4 -> d = -4 / -8 */
    CHECK((q4.qs[0] & 0x0f) == 0);        /* -4 / 0.5 + 8.5 = 0.5 -> 0 */
    CHECK((q4.qs[0] >> 4) == 8);          /* x[16] = 0 -> 8 */
    CHECK((q4.qs[15] >> 4) == 15);        /* 3.75 / 0.5 + 8.5 = 16 -> clamped to 15 */
    float back[32];
    pf_kernels_ref.dequant[PF_TYPE_Q4_0](&q4, back, 32);
    CHECK(back[0] == -4.0f && back[16] == 0.0f && back[31] == 3.5f);

    /* a positive max maps to -8 with a negative scale */
    float y[32] = { 0 };
    y[5] = 2.0f; y[6] = -1.0f;
    pf_kernels_ref.from_f32[PF_TYPE_Q4_0](y, &q4, 32);
    CHECK(pf_fp16_to_fp32(q4.d) == -0.25f);
    CHECK((q4.qs[5] & 0x0f) == 0 && (q4.qs[6] & 0x0f) == 12);

    /* all zeros: d = 0 and every weight at the zero point */
    memset(y, 0, sizeof y);
    pf_kernels_ref.from_f32[PF_TYPE_Q8_0](y, &q8, 32);
    CHECK(q8.d == 0 && q8.qs[3] == 0);
    pf_kernels_ref.from_f32[PF_TYPE_Q4_0](y, &q4, 32);
    CHECK(q4.d == 0x8000 && q4.qs[3] == 0x88); /* d = 0 / -8 = -0 */
}

/* ==== Kernel variants ==== */

static const int types[] = { PF_TYPE_F32, PF_TYPE_F16, PF_TYPE_BF16, PF_TYPE_Q8_0, PF_TYPE_Q4_0 };
#define N_TYPES (int)(sizeof types / sizeof *types)

/* Random floats with a per-32 magnitude that varies over 4 decades, so quantized scales differ. */
static void fill(float *v, int64_t n)
{
    float scale = 1.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0) scale = powf(10.0f, 2.0f * tu_randf(&rng));
        v[i] = tu_randf(&rng) * scale;
    }
}

static size_t row_bytes(int type, int64_t n)
{
    size_t r = 0;
    if (!pf_row_size(type, n, &r)) { fprintf(stderr, "bad row size\n"); exit(1); }
    return r;
}

/* Exact (double) dot of the values the kernels really see, and sum |w_i x_i|. */
static double exact_dot(int wt, const void *w, int xt, const void *x, int64_t n, double *sabs)
{
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    pf_kernels_ref.dequant[wt](w, a, n);
    pf_kernels_ref.dequant[xt](x, b, n);
    double s = 0, sa = 0;
    for (int64_t i = 0; i < n; i++) { s += (double)a[i] * b[i]; sa += fabs((double)a[i] * b[i]); }
    free(a); free(b);
    *sabs = sa;
    return s;
}

static int close_rel(double got, double want, double sabs, double tol)
{
    if (isnan(got)) return 0;
    return fabs(got - want) <= tol * sabs + 1e-30;
}

static void test_dot_one(const struct pf_kernels *k, int type, int64_t n)
{
    int xt = pf_type_get(type)->vec_dot_type;
    size_t wb = row_bytes(type, n), xb = row_bytes(xt, n);
    float *wf = malloc((size_t)n * sizeof *wf), *xf = malloc((size_t)n * sizeof *xf);
    fill(wf, n);
    fill(xf, n);
    struct guarded gw, gx, gw2;
    void *w = guarded_alloc(&gw, wb), *x = guarded_alloc(&gx, xb);
    pf_kernels_ref.from_f32[type](wf, w, n);
    pf_kernels_ref.from_f32[xt](xf, x, n);

    /* from_f32 and dequant must equal ref bit for bit */
    void *w2 = guarded_alloc(&gw2, wb);
    k->from_f32[type](wf, w2, n);
    CHECKF(memcmp(w, w2, wb) == 0, "%s from_f32[%s] n=%lld differs from ref", k->name,
           pf_type_name(type), (long long)n);
    float *d1 = malloc((size_t)n * sizeof *d1), *d2 = malloc((size_t)n * sizeof *d2);
    pf_kernels_ref.dequant[type](w, d1, n);
    k->dequant[type](w, d2, n);
    CHECKF(memcmp(d1, d2, (size_t)n * sizeof *d1) == 0, "%s dequant[%s] n=%lld differs from ref",
           k->name, pf_type_name(type), (long long)n);

    double sabs, want = exact_dot(type, w, xt, x, n, &sabs);
    float got = k->dot[type](w, x, n), ref = pf_kernels_ref.dot[type](w, x, n);
    CHECKF(close_rel(got, want, sabs, TOL_DOT_VS_EXACT), "%s dot[%s] n=%lld: %.9g vs exact %.9g (sabs %g)",
           k->name, pf_type_name(type), (long long)n, got, want, sabs);
    CHECKF(close_rel(got, ref, sabs, TOL_VARIANT_VS_REF), "%s dot[%s] n=%lld: %.9g vs ref %.9g",
           k->name, pf_type_name(type), (long long)n, got, ref);
    free(wf); free(xf); free(d1); free(d2);
    guarded_free(&gw); guarded_free(&gx); guarded_free(&gw2);
}

/* nr x nt tile with padded strides (rows are not adjacent) against single dots. */
static void test_gemm_one(const struct pf_kernels *k, int type, int64_t n, int nr, int nt)
{
    int xt = pf_type_get(type)->vec_dot_type;
    size_t wb = row_bytes(type, n), xb = row_bytes(xt, n);
    size_t ws = wb + 2 * pf_type_get(type)->size, xs = xb + pf_type_get(xt)->size * 3;
    size_t os = (size_t)nr + 3;
    float *f = malloc((size_t)n * sizeof *f);
    struct guarded gw, gx;
    char *w = guarded_alloc(&gw, ws * (size_t)(nr - 1) + wb);
    char *x = guarded_alloc(&gx, xs * (size_t)(nt - 1) + xb);
    memset(w, 0xff, ws * (size_t)(nr - 1) + wb); /* gaps between rows are NaN too */
    memset(x, 0xff, xs * (size_t)(nt - 1) + xb);
    for (int r = 0; r < nr; r++) { fill(f, n); pf_kernels_ref.from_f32[type](f, w + r * ws, n); }
    for (int t = 0; t < nt; t++) { fill(f, n); pf_kernels_ref.from_f32[xt](f, x + t * xs, n); }
    float *out = malloc(os * (size_t)nt * sizeof *out);
    for (size_t i = 0; i < os * (size_t)nt; i++) out[i] = -12345.0f;
    k->gemm[type](n, nr, nt, w, ws, x, xs, out, os);
    int bad = 0;
    for (int t = 0; t < nt; t++) {
        for (int r = 0; r < nr; r++) {
            double sabs, want = exact_dot(type, w + r * ws, xt, x + t * xs, n, &sabs);
            float ref = pf_kernels_ref.dot[type](w + r * ws, x + t * xs, n);
            float got = out[(size_t)t * os + r];
            if (!close_rel(got, want, sabs, TOL_DOT_VS_EXACT) || !close_rel(got, ref, sabs, TOL_VARIANT_VS_REF)) {
                if (bad++ < 3)
                    fprintf(stderr, "%s gemm[%s] n=%lld %dx%d (r=%d t=%d): %.9g vs exact %.9g ref %.9g\n",
                            k->name, pf_type_name(type), (long long)n, nr, nt, r, t, got, want, ref);
            }
        }
        for (size_t r = (size_t)nr; r < os; r++) CHECK(out[(size_t)t * os + r] == -12345.0f);
    }
    CHECKF(bad == 0, "%s gemm[%s] n=%lld %dx%d: %d wrong", k->name, pf_type_name(type), (long long)n, nr, nt, bad);
    free(f); free(out);
    guarded_free(&gw); guarded_free(&gx);
}

static void test_variant(const struct pf_kernels *k)
{
    for (int ti = 0; ti < N_TYPES; ti++) {
        int type = types[ti];
        CHECKF(k->dot[type] && k->gemm[type] && k->dequant[type] && k->from_f32[type],
               "%s: missing kernel for %s", k->name, pf_type_name(type));
        if (!(k->dot[type] && k->gemm[type] && k->dequant[type] && k->from_f32[type])) continue;
        int blck = pf_type_get(type)->blck;
        for (int m = 1; m <= 67; m++) test_dot_one(k, type, 32 * m);
        int64_t big[] = { 4096, 11008, 32 * 1001 };
        for (size_t i = 0; i < sizeof big / sizeof *big; i++) test_dot_one(k, type, big[i]);
        if (blck == 1) /* float types take any length */
            for (int n = 1; n <= 70; n++) test_dot_one(k, type, n);
        int shapes[][2] = { { 1, 1 }, { 1, 5 }, { 3, 1 }, { 4, 4 }, { 5, 3 }, { 7, 9 }, { 8, 8 }, { 16, 2 }, { 17, 13 },
                            { 8, 1 }, { 13, 1 }, { 21, 1 } };
        int64_t ns[] = { 32, 96, 256, 32 * 37, 4096 };
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
                test_gemm_one(k, type, ns[i], shapes[s][0], shapes[s][1]);
        if (blck == 1) test_gemm_one(k, type, 45, 5, 3);
    }
}

/* Vector conversions must equal the scalar ones bit for bit, specials included: every f16 / bf16
 * value through dequant, and a spread of awkward floats (NaNs with payloads, infinities,
 * subnormals, rounding ties, overflow) through from_f32, at every offset of a vector. */
static void test_conversions(const struct pf_kernels *k)
{
    uint16_t *h = malloc(65536 * sizeof *h);
    float *a = malloc(65536 * sizeof *a), *b = malloc(65536 * sizeof *b);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    int types16[] = { PF_TYPE_F16, PF_TYPE_BF16 };
    for (int ti = 0; ti < 2; ti++) {
        int t = types16[ti];
        pf_kernels_ref.dequant[t](h, a, 65536);
        k->dequant[t](h, b, 65536);
        int bad = 0;
        for (int i = 0; i < 65536; i++) bad += f2u(a[i]) != f2u(b[i]);
        CHECKF(bad == 0, "%s dequant[%s]: %d of 65536 values differ", k->name, pf_type_name(t), bad);
    }
    uint32_t specials[] = { 0x7fc00000, 0x7f800001, 0xffbfffff, 0x7fa00000, 0x7f800000, 0xff800000,
                            0x00000001, 0x807fffff, 0x00400000, 0x33000000, 0x33000001, 0x387fe000,
                            0x38800000, 0x477fe000, 0x477ff000, 0x477fefff, 0x7f7fffff, 0x3f808000,
                            0x3f818000, 0x00018000, 0x80008000, 0x00000000, 0x80000000, 0x3f800000 };
    enum { NS = sizeof specials / sizeof *specials };
    float f[NS + 40];
    uint16_t o1[NS + 40], o2[NS + 40];
    for (int off = 0; off < 17; off++) {
        int n = NS + off;
        for (int i = 0; i < n; i++) f[i] = i < off ? tu_randf(&rng) : u2f(specials[i - off]);
        for (int ti = 0; ti < 2; ti++) {
            int t = types16[ti];
            memset(o2, 0xaa, sizeof o2);
            pf_kernels_ref.from_f32[t](f, o1, n);
            k->from_f32[t](f, o2, n);
            CHECKF(memcmp(o1, o2, (size_t)n * 2) == 0, "%s from_f32[%s] specials (offset %d) differ", k->name,
                   pf_type_name(t), off);
            CHECKF(o2[n] == 0xaaaa, "%s from_f32[%s] wrote past n", k->name, pf_type_name(t));
        }
    }
    free(h); free(a); free(b);
}

/* ==== Q4_0 fast paths (q8x activations) ==== */

/* q4_act must hold exactly ref's Q8_0 quantization and the sums the layout promises. */
static void test_q4_act(const struct pf_kernels *k, int64_t n)
{
    int64_t nb = n / 32;
    float *x = malloc((size_t)n * sizeof *x);
    fill(x, n);
    struct guarded g;
    void *xa = guarded_alloc(&g, q8x_row_size(n));
    k->q4_act(x, xa, n);
    struct block_q8_0 *q = malloc((size_t)nb * sizeof *q);
    pf_kernels_ref.from_f32[PF_TYPE_Q8_0](x, q, n);
    int bad = 0;
    for (int64_t b = 0; b < nb; b++) {
        int sum = 0;
        if (memcmp(q8x_qs(xa) + 32 * b, q[b].qs, 32) != 0) bad++;
        if (q8x_d(xa, nb)[b] != pf_fp16_to_fp32(q[b].d)) bad++;
        for (int l = 0; l < 8; l++) {
            int s4 = q[b].qs[4 * l] + q[b].qs[4 * l + 1] + q[b].qs[4 * l + 2] + q[b].qs[4 * l + 3];
            if (q8x_corr(xa, nb)[8 * b + l] != Q8X_MAGIC + (l < 4 ? -8 : -128) * s4) bad++;
            sum += s4;
        }
        if (q8x_bsum(xa, nb)[b] != Q8X_MAGIC - 8 * sum) bad++;
    }
    CHECKF(bad == 0, "%s q4_act n=%lld: %d mismatches", k->name, (long long)n, bad);
    free(x); free(q);
    guarded_free(&g);
}

/* q4_matvec (nt = 0) or q4_gemm against ref dots on the same quantized inputs. Weight rows are
 * packed back to back with the last one against the guard; row count and token count are
 * chosen to hit every tail of the register tiles and K chunks. */
static void test_q4_fast(const struct pf_kernels *k, int64_t n, int nr, int nt)
{
    bool mv = nt == 0;
    if (mv) nt = 1;
    size_t wb = row_bytes(PF_TYPE_Q4_0, n), xb = row_bytes(PF_TYPE_Q8_0, n), xas = q8x_row_size(n);
    float *f = malloc((size_t)n * sizeof *f);
    struct guarded gw, gx;
    char *w = guarded_alloc(&gw, wb * (size_t)nr);
    char *xa = guarded_alloc(&gx, xas * (size_t)nt);
    char *xq = malloc(xb * (size_t)nt);
    for (int r = 0; r < nr; r++) { fill(f, n); pf_kernels_ref.from_f32[PF_TYPE_Q4_0](f, w + r * wb, n); }
    for (int t = 0; t < nt; t++) {
        fill(f, n);
        pf_kernels_ref.from_f32[PF_TYPE_Q8_0](f, xq + t * xb, n);
        k->q4_act(f, xa + t * xas, n);
    }
    size_t os = (size_t)nr + 1;
    float *out = malloc(os * (size_t)nt * sizeof *out);
    for (size_t i = 0; i < os * (size_t)nt; i++) out[i] = -12345.0f;
    if (mv) k->q4_matvec(n, nr, w, wb, xa, out);
    else k->q4_gemm(n, nr, nt, w, wb, xa, xas, out, os);
    int bad = 0;
    for (int t = 0; t < nt; t++) {
        for (int r = 0; r < nr; r++) {
            double sabs, want = exact_dot(PF_TYPE_Q4_0, w + r * wb, PF_TYPE_Q8_0, xq + t * xb, n, &sabs);
            float ref = pf_kernels_ref.dot[PF_TYPE_Q4_0](w + r * wb, xq + t * xb, n);
            float got = out[(size_t)t * os + r];
            if ((!close_rel(got, want, sabs, TOL_DOT_VS_EXACT) || !close_rel(got, ref, sabs, TOL_VARIANT_VS_REF)) && bad++ < 3)
                fprintf(stderr, "%s %s n=%lld %dx%d (r=%d t=%d): %.9g vs exact %.9g ref %.9g\n", k->name,
                        mv ? "q4_matvec" : "q4_gemm", (long long)n, nr, nt, r, t, got, want, ref);
        }
        CHECK(out[(size_t)t * os + (size_t)nr] == -12345.0f);
    }
    CHECKF(bad == 0, "%s %s n=%lld %dx%d: %d wrong", k->name, mv ? "q4_matvec" : "q4_gemm",
           (long long)n, nr, nt, bad);
    free(f); free(xq); free(out);
    guarded_free(&gw); guarded_free(&gx);
}

static void test_fast_paths(const struct pf_kernels *k)
{
    if (!k->q4_act && !k->q4_matvec && !k->q4_gemm) return;
    CHECKF(k->q4_act && k->q4_matvec && k->q4_gemm, "%s: partial Q4_0 fast path", k->name);
    if (!(k->q4_act && k->q4_matvec && k->q4_gemm)) return;
    for (int m = 1; m <= 67; m++) test_q4_act(k, 32 * m);
    test_q4_act(k, 11008);
    for (int m = 1; m <= 40; m++) test_q4_fast(k, 32 * m, 1 + m % 9, 0);
    int64_t ns[] = { 32, 96, 32 * 17, 32 * 33, 4096, 11008 };
    int rows[] = { 1, 3, 4, 5, 8, 9, 16, 17, 33 };
    int toks[] = { 1, 2, 3, 4, 5, 7, 8, 9, 13, 17 };
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) test_q4_fast(k, ns[i], rows[r], 0);
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
            for (size_t t = 0; t < sizeof toks / sizeof *toks; t++)
                if (ns[i] <= 4096 || (rows[r] == 17 && toks[t] == 9)) test_q4_fast(k, ns[i], rows[r], toks[t]);
    }
}

/* Every supported type has every kernel, dense and bundle: in the reference table as written
 * (it is the fallback of the others) and in each table the dispatcher hands out. */
static void test_complete(const struct pf_kernels *k)
{
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        int t = types[i];
        CHECKF(k->dot[t] && k->gemm[t] && k->dequant[t] && k->from_f32[t], "%s: a dense kernel of %s is missing",
               k->name, pf_type_name(t));
        CHECKF(k->down_accum[t] && k->down_panel[t] && k->gather_dot[t], "%s: a bundle kernel of %s is missing",
               k->name, pf_type_name(t));
    }
}

int main(void)
{
    /* PINFER_KERNELS is read once, at the first pf_kernels() call: force a variant this CPU
     * has (avx2 when available, so the override is visible: the automatic choice is avx512). */
    const char *forced = pf_kernels_get("avx2") ? "avx2" : "ref";
    setenv("PINFER_KERNELS", forced, 1);
    CHECKF(strcmp(pf_kernels()->name, forced) == 0, "PINFER_KERNELS=%s gave %s", forced, pf_kernels()->name);

    test_fp16();
    test_bf16();
    test_quantizers();
    test_complete(&pf_kernels_ref);
    const char *names[] = { "ref", "avx2", "avx512" };
    int ran = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const struct pf_kernels *k = pf_kernels_get(names[i]);
        if (!k) { printf("variant %s: not supported on this CPU, skipped\n", names[i]); continue; }
        int before = tu_failures;
        test_complete(k);
        test_variant(k);
        test_conversions(k);
        test_fast_paths(k);
        printf("variant %s: %s\n", names[i], tu_failures == before ? "ok" : "FAILED");
        ran++;
    }
    CHECK(ran >= 1);
    CHECK(pf_kernels_get("nonsense") == NULL && pf_kernels_get(NULL) == NULL);
    TEST_DONE();
}
