/* Sampler: greedy and top-k = 1 are the argmax; seeds reproduce; draw frequencies match
 * softmax(logit / temp); the set of tokens that can ever be drawn under top-k / top-p / min-p is
 * exactly the set the definitions give (hand-computed cases, then random ones against a
 * straightforward reference); the repetition penalty moves the argmax as its formula says;
 * -inf / NaN / +inf logits and a one-token vocabulary do not break it. */
#include "testutil.h"

#include "pinfer.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static struct pinfer_sampler *make(int n, float temp, int top_k, float top_p, float min_p,
                                   uint64_t seed)
{
    struct pinfer_sampler_params p = pinfer_sampler_default_params();
    p.temp = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    struct pinfer_sampler *s = NULL;
    int rc = pinfer_sampler_new(&s, n, &p);
    CHECKF(rc == 0, "%s", pinfer_last_error());
    return s;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ==== Reference: the kept set straight from the definitions ==== */

struct ref { bool keep[64]; double prob[64]; bool borderline; };

/* ranks i before j: higher logit, then lower id */
static bool before(const float *l, int i, int j) { return l[i] > l[j] || (l[i] == l[j] && i < j); }

static void reference(const float *l, int n, float temp, int top_k, float top_p, float min_p,
                      struct ref *r)
{
    int ord[64];
    for (int i = 0; i < n; i++) ord[i] = i;
    for (int i = 0; i < n; i++) /* selection sort: n is tiny */
        for (int j = i + 1; j < n; j++)
            if (before(l, ord[j], ord[i])) { int t = ord[i]; ord[i] = ord[j]; ord[j] = t; }
    int m = top_k > 0 && top_k < n ? top_k : n;
    r->borderline = false;
    if (top_p < 1) {
        double z = 0, cum = 0;
        for (int i = 0; i < m; i++) z += exp((double)l[ord[i]] - l[ord[0]]);
        for (int i = 0; i < m; i++) {
            cum += exp((double)l[ord[i]] - l[ord[0]]) / z;
            if (fabs(cum - top_p) < 1e-4) r->borderline = true;
            if (cum >= top_p) { m = i + 1; break; }
        }
    }
    if (min_p > 0) {
        /* p_i >= min_p * p_max */
        int k = 1;
        for (; k < m; k++) {
            double ratio = exp((double)l[ord[k]] - l[ord[0]]);
            if (fabs(ratio - min_p) < 1e-4) r->borderline = true;
            if (ratio < min_p) break;
        }
        m = k;
    }
    memset(r->keep, 0, sizeof r->keep);
    memset(r->prob, 0, sizeof r->prob);
    double z = 0;
    for (int i = 0; i < m; i++) z += exp(((double)l[ord[i]] - l[ord[0]]) / temp);
    for (int i = 0; i < m; i++) {
        r->keep[ord[i]] = true;
        r->prob[ord[i]] = exp(((double)l[ord[i]] - l[ord[0]]) / temp) / z;
    }
}

/* Draws `draws` times and checks: only kept tokens appear, every kept token with probability
 * >= 1e-3 appears, and each frequency is within 5 sigma of its probability. */
static void check_draws(const float *l, int n, float temp, int top_k, float top_p, float min_p,
                        int draws, uint64_t seed, const char *what)
{
    struct ref r;
    reference(l, n, temp, top_k, top_p, min_p, &r);
    struct pinfer_sampler *s = make(n, temp, top_k, top_p, min_p, seed);
    if (!s) return;
    int hist[64] = { 0 };
    for (int d = 0; d < draws; d++) {
        int32_t t = pinfer_sampler_sample(s, l);
        if (t < 0 || t >= n) { CHECKF(0, "%s: token %d", what, t); break; }
        hist[t]++;
    }
    for (int i = 0; i < n; i++) {
        double f = (double)hist[i] / draws, p = r.prob[i];
        double sigma = sqrt(p * (1 - p) / draws);
        CHECKF(r.keep[i] || hist[i] == 0, "%s: token %d drawn %d times but not in the set", what, i, hist[i]);
        CHECKF(!r.keep[i] || p < 1e-3 || hist[i] > 0, "%s: token %d (p %.4f) never drawn", what, i, p);
        CHECKF(fabs(f - p) <= 5 * sigma + 1e-4, "%s: token %d frequency %.4f, p %.4f", what, i, f, p);
    }
    pinfer_sampler_free(s);
}

/* ==== Tests ==== */

static void test_defaults_and_args(void)
{
    struct pinfer_sampler_params p = pinfer_sampler_default_params();
    CHECK(p.temp == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f);
    CHECK(p.repeat_penalty == 1.0f && p.repeat_last_n == 64 && p.seed == 0xFFFFFFFFu);

    struct pinfer_sampler *s = (struct pinfer_sampler *)&p;
    CHECK(pinfer_sampler_new(&s, 0, &p) == PINFER_EINVAL && s == NULL);
    struct pinfer_sampler_params q = p;
    q.repeat_penalty = 0;
    CHECK(pinfer_sampler_new(&s, 10, &q) == PINFER_EINVAL);
    q = p;
    q.temp = nanf("");
    CHECK(pinfer_sampler_new(&s, 10, &q) == PINFER_EINVAL);
    q = p;
    q.repeat_last_n = -2;
    CHECK(pinfer_sampler_new(&s, 10, &q) == PINFER_EINVAL);
    q = p;
    q.min_p = -0.1f;
    CHECK(pinfer_sampler_new(&s, 10, &q) == PINFER_EINVAL);
    CHECK(pinfer_sampler_new(&s, 10, NULL) == 0 && s);
    CHECK(pinfer_sampler_sample(s, NULL) == PINFER_EINVAL);
    CHECK(pinfer_sampler_sample(NULL, (const float[10]){ 0 }) == PINFER_EINVAL);
    pinfer_sampler_accept(s, -1);   /* out of range: ignored */
    pinfer_sampler_accept(s, 10);
    pinfer_sampler_accept(NULL, 0);
    pinfer_sampler_free(s);
    pinfer_sampler_free(NULL);
}

static void test_greedy(void)
{
    enum { N = 32000 };
    static float l[N];
    unsigned long long rs = 7;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++) l[i] = tu_randf(&rs) * 8;
        int want = argmax(l, N);
        struct pinfer_sampler *g = make(N, 0.0f, 40, 0.95f, 0.05f, 1);
        struct pinfer_sampler *k1 = make(N, 0.8f, 1, 0.95f, 0.05f, 2);
        struct pinfer_sampler *neg = make(N, -1.0f, 0, 1.0f, 0.0f, 3);
        CHECK(pinfer_sampler_sample(g, l) == want);
        CHECK(pinfer_sampler_sample(k1, l) == want);
        CHECK(pinfer_sampler_sample(neg, l) == want);
        pinfer_sampler_free(g);
        pinfer_sampler_free(k1);
        pinfer_sampler_free(neg);
    }
    /* ties: the first */
    float t[4] = { 1, 3, 3, 2 };
    struct pinfer_sampler *g = make(4, 0, 40, 1, 0, 1);
    CHECK(pinfer_sampler_sample(g, t) == 1);
    pinfer_sampler_free(g);
}

static void test_seeds(void)
{
    enum { N = 1000, D = 200 };
    static float l[N];
    unsigned long long rs = 11;
    for (int i = 0; i < N; i++) l[i] = tu_randf(&rs) * 2;
    int32_t a[D], b[D], c[D], d[D], e[D];
    struct pinfer_sampler *sa = make(N, 1.0f, 0, 1.0f, 0.0f, 42), *sb = make(N, 1.0f, 0, 1.0f, 0.0f, 42);
    struct pinfer_sampler *sc = make(N, 1.0f, 0, 1.0f, 0.0f, 43);
    struct pinfer_sampler *sd = make(N, 1.0f, 0, 1.0f, 0.0f, 0xFFFFFFFFu);
    struct pinfer_sampler *se = make(N, 1.0f, 0, 1.0f, 0.0f, 0xFFFFFFFFu);
    for (int i = 0; i < D; i++) {
        a[i] = pinfer_sampler_sample(sa, l);
        b[i] = pinfer_sampler_sample(sb, l);
        c[i] = pinfer_sampler_sample(sc, l);
        d[i] = pinfer_sampler_sample(sd, l);
        e[i] = pinfer_sampler_sample(se, l);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    CHECK(memcmp(d, e, sizeof d) != 0); /* two clock seeds */
    pinfer_sampler_free(sa);
    pinfer_sampler_free(sb);
    pinfer_sampler_free(sc);
    pinfer_sampler_free(sd);
    pinfer_sampler_free(se);
}

static void test_frequencies(void)
{
    const float l[6] = { 1.0f, 0.5f, -0.3f, 2.0f, 0.0f, -1.0f };
    check_draws(l, 6, 0.7f, 0, 1.0f, 0.0f, 200000, 5, "softmax t=0.7");
    check_draws(l, 6, 1.0f, 0, 1.0f, 0.0f, 200000, 6, "softmax t=1");
    check_draws(l, 6, 2.5f, 0, 1.0f, 0.0f, 200000, 7, "softmax t=2.5");
}

/* The hand-computed sets: probabilities 0.5, 0.25, 0.15, 0.07, 0.03 placed at ids 3, 0, 4, 1, 2. */
static void test_sets_by_hand(void)
{
    float l[5];
    const int id[5] = { 3, 0, 4, 1, 2 };
    const double p[5] = { 0.5, 0.25, 0.15, 0.07, 0.03 };
    for (int i = 0; i < 5; i++) l[id[i]] = (float)log(p[i]);
    struct { int top_k; float top_p, min_p; int n_keep; const char *why; } cases[] = {
        { 0, 0.80f, 0, 3, "top-p .8: .5 .75 .9" },
        { 0, 0.95f, 0, 4, "top-p .95: .5 .75 .9 .97" },
        { 0, 0.40f, 0, 1, "top-p .4: .5" },
        { 0, 1.0f, 0.2f, 3, "min-p .2: p >= .1" },
        { 0, 1.0f, 0.1f, 4, "min-p .1: p >= .05" },
        { 0, 1.0f, 0.9f, 1, "min-p .9: p >= .45" },
        { 2, 1.0f, 0, 2, "top-k 2" },
        { 4, 0.9f, 0, 3, "top-k 4 then top-p .9 over .97: .515 .773 .928" },
        { 0, 0.8f, 0.1f, 3, "top-p .8 and min-p .1" },
        { 0, 0.99f, 0.05f, 5, "top-p .99 (needs all 5) and min-p .05 (p >= .025)" },
        { 40, 0.95f, 0.05f, 4, "defaults" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        struct pinfer_sampler *s = make(5, 1.0f, cases[c].top_k, cases[c].top_p, cases[c].min_p, 100 + c);
        bool seen[5] = { 0 };
        for (int d = 0; d < 20000; d++) {
            int32_t t = pinfer_sampler_sample(s, l);
            if (t >= 0 && t < 5) seen[t] = true;
        }
        for (int i = 0; i < 5; i++)
            CHECKF(seen[id[i]] == (i < cases[c].n_keep), "%s: rank %d (id %d) seen %d", cases[c].why,
                   i, id[i], seen[id[i]]);
        pinfer_sampler_free(s);
        /* and the reference agrees with the hand count */
        struct ref r;
        reference(l, 5, 1.0f, cases[c].top_k, cases[c].top_p, cases[c].min_p, &r);
        int nk = 0;
        for (int i = 0; i < 5; i++) nk += r.keep[i];
        CHECKF(nk == cases[c].n_keep, "%s: reference keeps %d", cases[c].why, nk);
    }
}

static void test_sets_random(void)
{
    unsigned long long rs = 99;
    int done = 0;
    for (int c = 0; done < 60 && c < 1000; c++) {
        int n = 4 + (int)(tu_rand(&rs) % 20);
        float l[64];
        for (int i = 0; i < n; i++) l[i] = tu_randf(&rs) * 3;
        int top_k = (int)(tu_rand(&rs) % 3) == 0 ? 0 : 1 + (int)(tu_rand(&rs) % (unsigned)n);
        float top_p = tu_rand(&rs) % 3 == 0 ? 1.0f : 0.3f + 0.69f * (tu_randf(&rs) + 1) / 2;
        float min_p = tu_rand(&rs) % 3 == 0 ? 0.0f : 0.01f + 0.4f * (tu_randf(&rs) + 1) / 2;
        float temp = 0.5f + (float)(tu_rand(&rs) % 3) * 0.5f;
        struct ref r;
        reference(l, n, temp, top_k, top_p, min_p, &r);
        if (r.borderline) continue;
        char what[128];
        snprintf(what, sizeof what, "random %d: n %d k %d p %.3f minp %.3f t %.1f", c, n, top_k,
                 top_p, min_p, temp);
        check_draws(l, n, temp, top_k, top_p, min_p, 30000, 1000 + c, what);
        done++;
    }
    CHECK(done == 60);
}

static void test_penalty(void)
{
    struct pinfer_sampler_params p = pinfer_sampler_default_params();
    p.temp = 0;
    p.repeat_penalty = 1.1f;
    struct pinfer_sampler *s;

    const float pos[4] = { 2.0f, 1.9f, -0.5f, -0.4f };
    CHECK(pinfer_sampler_new(&s, 4, &p) == 0);
    CHECK(pinfer_sampler_sample(s, pos) == 0);
    pinfer_sampler_accept(s, 0); /* 2.0 / 1.1 = 1.818 < 1.9 */
    CHECK(pinfer_sampler_sample(s, pos) == 1);
    CHECK(pos[0] == 2.0f); /* logits are not modified */
    pinfer_sampler_free(s);

    const float neg[3] = { -1.0f, -1.05f, -3.0f };
    CHECK(pinfer_sampler_new(&s, 3, &p) == 0);
    pinfer_sampler_accept(s, 0); /* -1.0 * 1.1 = -1.1 < -1.05 */
    CHECK(pinfer_sampler_sample(s, neg) == 1);
    pinfer_sampler_free(s);

    /* once per distinct token, however often it occurs: 2.0 / 1.2 = 1.667 > 1.5 */
    const float two[2] = { 2.0f, 1.5f };
    p.repeat_penalty = 1.2f;
    CHECK(pinfer_sampler_new(&s, 2, &p) == 0);
    for (int i = 0; i < 3; i++) pinfer_sampler_accept(s, 0);
    CHECK(pinfer_sampler_sample(s, two) == 0);
    pinfer_sampler_free(s);

    /* the window: with last_n 2, token 0 leaves it after two more tokens */
    p.repeat_penalty = 1.1f;
    p.repeat_last_n = 2;
    CHECK(pinfer_sampler_new(&s, 4, &p) == 0);
    pinfer_sampler_accept(s, 0);
    pinfer_sampler_accept(s, 2);
    CHECK(pinfer_sampler_sample(s, pos) == 1);
    pinfer_sampler_accept(s, 3);
    CHECK(pinfer_sampler_sample(s, pos) == 0);
    pinfer_sampler_free(s);
    /* -1: the whole history */
    p.repeat_last_n = -1;
    CHECK(pinfer_sampler_new(&s, 4, &p) == 0);
    pinfer_sampler_accept(s, 0);
    for (int i = 0; i < 1000; i++) pinfer_sampler_accept(s, 2 + i % 2);
    CHECK(pinfer_sampler_sample(s, pos) == 1);
    pinfer_sampler_free(s);
    /* 0: off */
    p.repeat_last_n = 0;
    CHECK(pinfer_sampler_new(&s, 4, &p) == 0);
    pinfer_sampler_accept(s, 0);
    CHECK(pinfer_sampler_sample(s, pos) == 0);
    pinfer_sampler_free(s);

    /* the penalty also shapes the sampled distribution: token 0 penalized to logit 1 */
    p.repeat_last_n = 64;
    p.repeat_penalty = 2.0f;
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 77;
    const float eq[2] = { 2.0f, 1.0f };
    CHECK(pinfer_sampler_new(&s, 2, &p) == 0);
    pinfer_sampler_accept(s, 0);
    int n0 = 0;
    for (int i = 0; i < 100000; i++) n0 += pinfer_sampler_sample(s, eq) == 0;
    CHECKF(fabs(n0 / 1e5 - 0.5) < 5 * sqrt(0.25 / 1e5), "penalized coin: %d", n0);
    pinfer_sampler_free(s);
}

static void test_edges(void)
{
    enum { N = 100 };
    float l[N];
    float tk[] = { 0.8f, 0.0f };
    for (int v = 0; v < 2; v++) {
        for (int i = 0; i < N; i++) l[i] = -INFINITY;
        l[37] = -5;
        struct pinfer_sampler *s = make(N, tk[v], 40, 0.95f, 0.05f, 5);
        struct pinfer_sampler *o = make(N, tk[v], 0, 1.0f, 0.0f, 6);
        struct pinfer_sampler *q = make(N, tk[v], 0, 0.5f, 0.0f, 7);
        bool ok = true;
        for (int d = 0; d < 1000; d++)
            ok &= pinfer_sampler_sample(s, l) == 37 && pinfer_sampler_sample(o, l) == 37 &&
                  pinfer_sampler_sample(q, l) == 37;
        CHECK(ok);
        /* NaN counts as -inf */
        for (int i = 0; i < N; i++) l[i] = nanf("");
        l[5] = -100;
        ok = true;
        for (int d = 0; d < 1000; d++)
            ok &= pinfer_sampler_sample(s, l) == 5 && pinfer_sampler_sample(o, l) == 5;
        CHECK(ok);
        /* nothing usable at all: some token in range, no crash */
        l[5] = nanf("");
        int32_t t = pinfer_sampler_sample(s, l);
        CHECK(t >= 0 && t < N);
        for (int i = 0; i < N; i++) l[i] = -INFINITY;
        t = pinfer_sampler_sample(o, l);
        CHECK(t >= 0 && t < N);
        /* +inf wins; two of them share */
        for (int i = 0; i < N; i++) l[i] = tu_randf(&(unsigned long long){ 3 + (unsigned)i });
        l[11] = INFINITY;
        CHECK(pinfer_sampler_sample(o, l) == 11);
        l[12] = INFINITY;
        bool s11 = false, s12 = false;
        for (int d = 0; d < 200; d++) {
            t = pinfer_sampler_sample(o, l);
            s11 |= t == 11;
            s12 |= t == 12;
            CHECK(t == 11 || t == 12);
        }
        CHECK(s11 && (tk[v] <= 0 || s12));
        pinfer_sampler_free(s);
        pinfer_sampler_free(o);
        pinfer_sampler_free(q);
    }
    /* a one-token vocabulary */
    const float one[1] = { 0.3f };
    struct pinfer_sampler *s = make(1, 0.8f, 40, 0.95f, 0.05f, 9);
    CHECK(pinfer_sampler_sample(s, one) == 0);
    pinfer_sampler_accept(s, 0);
    CHECK(pinfer_sampler_sample(s, (const float[1]){ nanf("") }) == 0);
    pinfer_sampler_free(s);
}

static void bench(void)
{
    enum { N = 32000, R = 300 };
    static float l[N];
    unsigned long long rs = 5;
    /* roughly the shape of real logits: a few high, a long low tail */
    for (int i = 0; i < N; i++) l[i] = tu_randf(&rs) * 4 + (i % 997 == 0 ? 8 : 0);
    struct { int k; float p, m; const char *name; } cfg[] = {
        { 40, 0.95f, 0.05f, "defaults" },
        { 0, 0.95f, 0.05f, "no top-k" },
        { 0, 0.95f, 0.0f, "top-p only (full sort)" },
        { 0, 1.0f, 0.0f, "nothing (no sort)" },
    };
    printf("sample, n_vocab %d:", N);
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
        struct pinfer_sampler *s = make(N, 0.8f, cfg[c].k, cfg[c].p, cfg[c].m, 1);
        double t0 = now();
        int32_t sink = 0;
        for (int r = 0; r < R; r++) sink ^= pinfer_sampler_sample(s, l);
        double t1 = now();
        CHECK(sink >= 0);
        printf(" %s %.0f us;", cfg[c].name, (t1 - t0) / R * 1e6);
        pinfer_sampler_free(s);
    }
    printf("\n");
}

int main(void)
{
    test_defaults_and_args();
    test_greedy();
    test_seeds();
    test_frequencies();
    test_sets_by_hand();
    test_sets_random();
    test_penalty();
    test_edges();
    bench();
    TEST_DONE();
}
