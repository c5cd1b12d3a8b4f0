/* pinfer synth: the rank structure of ReLU-family gate rows (docs/synth.md, "Predictable
 * activations").
 *  - the correlated-gate math: bivariate orthant probability against a direct integral, its
 *    inverse, the dReLU moments against a 2-D integral and against the independent case;
 *  - gate rows put >= 90% of their energy in the layer's subspace U (what a rank-K predictor
 *    needs), up rows of dReLU correlate with their gate rows, ReLU up rows stay isotropic;
 *  - each neuron still fires with its planned probability p exactly: Monte Carlo over inputs
 *    with the energy model's per-channel variances, for dReLU (joint gate and up) and ReLU;
 *  - the file records pinfer.synth.rank_structure (version 2); rank 0 writes a version-1 file
 *    without it; the rank is capped at half the free channels; out-of-range ranks fail. */
#include "testutil.h"

#include "gguf/gguf.h"
#include "pinfer.h"
#include "synth/synth_internal.h"
#include "core/rng.h"
#include "tensor/types.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* P(h+X > 0, h+Y > 0) = int_{-h}^inf phi(x) Phi((h + rho x) / sqrt(1 - rho^2)) dx, Simpson */
static double orthant_direct(double h, double rho)
{
    const int n = 20000;
    double a = -h, b = 12, dx = (b - a) / n, s = 0, sg = sqrt(1 - rho * rho);
    for (int k = 0; k <= n; k++) {
        double x = a + k * dx, w = (k == 0 || k == n) ? 1 : (k & 1) ? 4 : 2;
        s += w * synth_norm_pdf(x) * synth_norm_cdf((h + rho * x) / sg);
    }
    return s * dx / 3;
}

/* E[(h+X)+ (h+Y)+] and the squares by a plain 2-D grid over the standard normal pair */
static void moments_direct(double h, double rho, double *m1, double *m2)
{
    const int n = 800;
    const double lo = -8, dx = 16.0 / n, sg = sqrt(1 - rho * rho);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        double x = lo + (i + 0.5) * dx;
        if (h + x <= 0) continue;
        for (int k = 0; k < n; k++) {
            double z = lo + (k + 0.5) * dx, y = rho * x + sg * z;
            if (h + y <= 0) continue;
            double w = synth_norm_pdf(x) * synth_norm_pdf(z) * dx * dx, a = (h + x) * (h + y);
            s1 += w * a;
            s2 += w * a * a;
        }
    }
    *m1 = s1;
    *m2 = s2;
}

static void test_math(void)
{
    static const double hs[] = { -2.5, -1.2, -0.3, 0, 0.4, 1.1, 2.2 };
    static const double rs[] = { -0.5, 0, 0.3, 0.776, 0.95 };
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        for (size_t k = 0; k < sizeof rs / sizeof *rs; k++) {
            double h = hs[i], r = rs[k], got = synth_bvn_orthant(h, r), want = orthant_direct(h, r);
            CHECKF(fabs(got - want) < 1e-9, "orthant(%g, %g) = %.12g, direct %.12g", h, r, got, want);
        }
    static const double ps[] = { 1e-4, 0.01, 0.1, 0.5, 0.9, 0.98 };
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        for (size_t k = 0; k < sizeof rs / sizeof *rs; k++) {
            double h = synth_bvn_solve(ps[i], rs[k]), back = synth_bvn_orthant(h, rs[k]);
            CHECKF(fabs(back - ps[i]) < 1e-10 * (1 + 1 / ps[i]) * ps[i], "solve(%g, %g): %.12g", ps[i], rs[k], back);
        }
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++) {
        double h = hs[i], m1, m2, d1, d2;
        synth_drelu_moments(h, 0, &m1, &m2);
        double a = synth_relu_m1(h), b = synth_relu_m2(h);
        CHECKF(fabs(m1 - a * a) < 1e-7 * (1 + a * a) && fabs(m2 - b * b) < 1e-6 * (1 + b * b),
               "moments(%g, 0): %g %g, want %g %g", h, m1, m2, a * a, b * b);
        synth_drelu_moments(h, 0.776, &m1, &m2);
        moments_direct(h, 0.776, &d1, &d2);
        CHECKF(fabs(m1 - d1) < 2e-3 * (1e-3 + d1) && fabs(m2 - d2) < 5e-3 * (1e-3 + d2),
               "moments(%g, 0.776): %g %g, grid %g %g", h, m1, m2, d1, d2);
    }
}

/* ==== rows ==== */

static struct synth_tensor ffn_tensor(const struct synth_cfg *c, enum synth_kind kind, int layer)
{
    struct synth_tensor t = { .kind = kind, .layer = layer, .type = PF_TYPE_F32, .n_dims = 2,
                              .ne = { c->n_embd, c->n_ff, 1 }, .n_rows = c->n_ff, .row_bytes = (size_t)c->n_embd * 4 };
    return t;
}

static int make_plan(struct synth_cfg *cfg, struct synth_plan *plan, enum pinfer_act act, int rank)
{
    struct pinfer_synth_params p = pinfer_synth_default_params();
    p.act = act;
    p.rank_structure = rank;
    int rc = synth_cfg_resolve(cfg, &p);
    if (!rc) rc = synth_plan_build(plan, cfg);
    return rc;
}

/* share of a row's energy (outside the bias block) in the layer's subspace */
static double subspace_share(const struct synth_plan *P, const struct synth_layer *Y, const float *w)
{
    const int d = P->cfg->n_embd, K = P->cfg->rank;
    double *proj = calloc((size_t)K, sizeof *proj), tot = 0, in = 0;
    if (!proj) return 0;
    for (int j = SYNTH_BIAS_CH; j < d; j++) {
        proj[Y->lr_col[j]] += (double)w[j] * Y->lr_u[j];
        tot += (double)w[j] * w[j];
    }
    for (int k = 0; k < K; k++) in += proj[k] * proj[k];
    free(proj);
    return tot > 0 ? in / tot : 0;
}

static double corr(const float *a, const float *b, int d)
{
    double ab = 0, aa = 0, bb = 0;
    for (int j = SYNTH_BIAS_CH; j < d; j++) {
        ab += (double)a[j] * b[j];
        aa += (double)a[j] * a[j];
        bb += (double)b[j] * b[j];
    }
    return ab / sqrt(aa * bb);
}

static void test_structure(void)
{
    for (int act = 0; act < 2; act++) {
        struct synth_cfg cfg;
        struct synth_plan P;
        enum pinfer_act a = act ? PINFER_ACT_RELU : PINFER_ACT_DRELU;
        CHECK(make_plan(&cfg, &P, a, SYNTH_RANK_DEFAULT) == 0);
        if (tu_failures) return;
        CHECK(cfg.rank == SYNTH_RANK_DEFAULT);
        const int d = cfg.n_embd, layer = 1, n = 64;
        struct synth_tensor tg = ffn_tensor(&cfg, SK_GATE, layer), tu = ffn_tensor(&cfg, SK_UP, layer);
        float *g = malloc((size_t)d * sizeof *g), *u = malloc((size_t)d * sizeof *u);
        double sg = 0, su = 0, cgu = 0;
        for (int i = 0; i < n && g && u; i++) {
            synth_gen_row(&P, &tg, 20, i, g);
            synth_gen_row(&P, &tu, 21, i, u);
            sg += subspace_share(&P, &P.layers[layer], g) / n;
            su += subspace_share(&P, &P.layers[layer], u) / n;
            cgu += corr(g, u, d) / n;
        }
        double iso = (double)cfg.rank / (d - SYNTH_BIAS_CH); /* what a random row puts there */
        printf("%s: gate share %.3f, up share %.3f (isotropic %.3f), gate-up corr %.3f\n",
               synth_act_name(a), sg, su, iso, cgu);
        CHECKF(sg > 0.9, "gate rows carry only %.3f of their energy in the subspace", sg);
        if (a == PINFER_ACT_DRELU) {
            CHECKF(su > 0.9, "dReLU up rows carry only %.3f in the subspace", su);
            CHECKF(fabs(cgu - SYNTH_LR_SHARE * SYNTH_LR_UP_RHO) < 0.1, "gate-up correlation %.3f", cgu);
        } else {
            CHECKF(su < iso + 0.1 && fabs(cgu) < 0.1, "ReLU up rows should stay isotropic: %.3f %.3f", su, cgu);
        }
        free(g);
        free(u);
        synth_plan_free(&P);
    }
}

/* Neuron i fires with probability p_i on inputs with the energy model's channel variances (layer
 * 0: no mean offset yet). Inputs drawn once, shared by all neurons. */
static void test_probability(void)
{
    for (int act = 0; act < 2; act++) {
        struct synth_cfg cfg;
        struct synth_plan P;
        enum pinfer_act a = act ? PINFER_ACT_RELU : PINFER_ACT_DRELU;
        CHECK(make_plan(&cfg, &P, a, SYNTH_RANK_DEFAULT) == 0);
        if (tu_failures) return;
        const int d = cfg.n_embd, n_x = 20000, n_neur = 48;
        const struct synth_layer *Y = &P.layers[0];
        float *x = malloc((size_t)n_x * d * sizeof *x), *g = malloc((size_t)d * sizeof *g), *u = malloc((size_t)d * sizeof *u);
        struct synth_rng r;
        synth_rng_init(&r, 99);
        for (int s = 0; s < n_x && x; s++)
            for (int j = 0; j < d; j++) {
                /* Box-Muller: the test's inputs need real Gaussian tails */
                double u1 = synth_rng_uniform(&r), u2 = synth_rng_uniform(&r);
                double z = sqrt(-2 * log(u1 > 0 ? u1 : 1e-300)) * cos(2 * M_PI * u2);
                x[(size_t)s * d + j] = j < SYNTH_BIAS_CH ? P.c0 : (float)(z * sqrt(Y->v_ffn[j]));
            }
        struct synth_tensor tg = ffn_tensor(&cfg, SK_GATE, 0), tu = ffn_tensor(&cfg, SK_UP, 0);
        double chi = 0;
        int bad = 0;
        for (int i = 0; i < n_neur && x && g && u; i++) {
            int64_t row = (int64_t)i * (cfg.n_ff / n_neur);
            synth_gen_row(&P, &tg, 8, row, g);
            synth_gen_row(&P, &tu, 9, row, u);
            int fire = 0;
            for (int s = 0; s < n_x; s++) {
                const float *xs = x + (size_t)s * d;
                double pg = 0, pu = 0;
                for (int j = 0; j < d; j++) { pg += (double)g[j] * xs[j]; pu += (double)u[j] * xs[j]; }
                fire += pg > 0 && (a != PINFER_ACT_DRELU || pu > 0);
            }
            double p = Y->p[row], f = (double)fire / n_x, sd = sqrt(p * (1 - p) / n_x);
            double z = (f - p) / sd;
            chi += z * z / n_neur;
            bad += fabs(z) > 4.5;
        }
        printf("%s: firing frequency vs plan over %d neurons: mean z^2 %.2f, |z| > 4.5: %d\n",
               synth_act_name(a), n_neur, chi, bad);
        /* exact probabilities give mean z^2 ~ 1 (the inputs are shared, so a little more) */
        CHECKF(chi < 2.5 && bad == 0, "%s: firing frequencies off the plan (mean z^2 %.2f, %d outliers)",
               synth_act_name(a), chi, bad);
        free(x);
        free(g);
        free(u);
        synth_plan_free(&P);
    }
}

/* ==== the file ==== */

static void test_keys(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rank.gguf", tu_tmpdir());
    static const int ranks[] = { SYNTH_RANK_DEFAULT, 0 };
    for (int k = 0; k < 2; k++) {
        struct pinfer_synth_params p = pinfer_synth_default_params();
        p.act = PINFER_ACT_DRELU;
        p.rank_structure = ranks[k];
        CHECK(pinfer_synth(path, &p) == 0);
        struct gguf_file *f = NULL;
        CHECK(gguf_open(&f, path) == 0);
        if (!f) continue;
        uint32_t ver = 0, rank = 0;
        CHECK(gguf_get_u32(f, "pinfer.synth.version", &ver) == 0);
        int has = gguf_get_u32(f, "pinfer.synth.rank_structure", &rank) == 0;
        if (ranks[k]) CHECKF(ver == 2 && has && rank == (uint32_t)ranks[k], "version %u rank %u", ver, rank);
        else CHECKF(ver == 1 && !has, "rank 0: version %u, key %s", ver, has ? "present" : "absent");
        gguf_close(f);
    }
    remove(path);

    struct synth_cfg cfg;
    struct pinfer_synth_params p = pinfer_synth_default_params();
    p.act = PINFER_ACT_RELU;
    p.n_embd = 64;
    p.n_head = 4;
    p.n_head_kv = 4;
    CHECK(synth_cfg_resolve(&cfg, &p) == 0 && cfg.rank == 16);
    p.rank_structure = SYNTH_RANK_MAX + 1;
    CHECK(synth_cfg_resolve(&cfg, &p) == PINFER_EINVAL);
    p.rank_structure = -1;
    CHECK(synth_cfg_resolve(&cfg, &p) == PINFER_EINVAL);
    p = pinfer_synth_default_params(); /* SiLU: no structure */
    CHECK(synth_cfg_resolve(&cfg, &p) == 0 && cfg.rank == 0);
}

int main(void)
{
    test_math();
    test_structure();
    test_probability();
    test_keys();
    TEST_DONE();
}
