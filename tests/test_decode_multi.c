/* pinfer_decode_multi: one token for each of several sequences (contexts) in one pass.
 *  - on stories260K (a real model, F32) and a synthetic Q4_0 model: three sequences with prompts
 *    of different lengths, generated greedily step by step with pinfer_decode_multi, give the
 *    tokens and (within the batched products' rounding) the logits that each sequence gets
 *    alone with pinfer_decode; the pass really was batched (no context but the first counts a
 *    single-token step); the contexts share the first one's threads (threads_from);
 *  - where batching does not pay (a prepared model in predictor mode) the sequences run one by
 *    one: bit for bit pinfer_decode's logits;
 *  - bad calls: a context twice, contexts of two models, a position outside a context, a token
 *    outside the vocabulary, each a clear error. */
#include "testutil.h"

#include "pinfer.h"
#include "tensor/types.h"

#include <math.h>
#include <string.h>

#define NSEQ 3
#define STEPS 12

static int argmax(const float *x, int n)
{
    int a = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[a]) a = i;
    return a;
}

/* Prompts: 1, 4 and 7 tokens, from the vocabulary's middle. */
static int prompt(int s, int32_t *ids, int n_vocab)
{
    int n = 1 + 3 * s;
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((37 * (s + 1) + 11 * i) % (n_vocab - 3) + 3);
    return n;
}

/* Each sequence alone: prompt as a batch, then STEPS greedy single-token steps. Tokens into
 * tk[s][..], the logits of every step into lg[(s * STEPS + k) * V]. */
static void alone(struct pinfer_model *m, const struct pinfer_ctx_params *cp, int32_t tk[NSEQ][STEPS], float *lg)
{
    const int V = pinfer_n_vocab(m);
    for (int s = 0; s < NSEQ; s++) {
        struct pinfer_ctx *c = NULL;
        int32_t ids[16];
        int n = prompt(s, ids, V);
        CHECK(pinfer_ctx_new(&c, m, cp) == 0);
        if (!c) return;
        CHECK(pinfer_decode(c, ids, n, 0, false) == 0);
        for (int k = 0; k < STEPS; k++) {
            const float *l = pinfer_ctx_logits(c, -1);
            memcpy(lg + (size_t)(s * STEPS + k) * V, l, sizeof *l * (size_t)V);
            int32_t t = argmax(l, V);
            tk[s][k] = t;
            CHECK(pinfer_decode(c, &t, 1, n + k, false) == 0);
        }
        pinfer_ctx_free(c);
    }
}

/* The same with one pinfer_decode_multi per step; the largest |logit difference| relative to the
 * largest |logit| into *rel, bit-exact steps into *exact, single-token steps counted by the
 * contexts after the first into *single. */
static void together(struct pinfer_model *m, const struct pinfer_ctx_params *cp, int32_t tk[NSEQ][STEPS],
                     const float *lg, double *rel, int *exact, uint64_t *single, const char *name)
{
    const int V = pinfer_n_vocab(m);
    struct pinfer_ctx *cs[NSEQ] = { 0 };
    int pos[NSEQ];
    int32_t cur[NSEQ];
    double dmax = 0, mag = 0;
    *exact = 0;
    *single = 0;
    for (int s = 0; s < NSEQ; s++) {
        int32_t ids[16];
        pos[s] = prompt(s, ids, V);
        struct pinfer_ctx_params sp = *cp;
        sp.threads_from = s > 0 ? cs[0] : NULL; /* one pool, as pinfer serve's slots */
        CHECK(pinfer_ctx_new(&cs[s], m, &sp) == 0);
        if (!cs[s]) goto out;
        CHECK(pinfer_decode(cs[s], ids, pos[s], 0, false) == 0);
        pinfer_ctx_time_stats_reset(cs[s]);
    }
    for (int k = 0; k < STEPS; k++) {
        bool same = true;
        for (int s = 0; s < NSEQ; s++) {
            const float *l = pinfer_ctx_logits(cs[s], -1), *r = lg + (size_t)(s * STEPS + k) * V;
            CHECKF(l != NULL, "%s: sequence %d has no logits at step %d", name, s, k);
            if (!l) goto out;
            for (int i = 0; i < V; i++) {
                double d = fabs((double)l[i] - r[i]);
                if (d > dmax) dmax = d;
                if (fabs(r[i]) > mag) mag = fabs(r[i]);
                if (l[i] != r[i]) same = false;
            }
            cur[s] = argmax(l, V);
            CHECKF(cur[s] == tk[s][k], "%s: sequence %d step %d: token %d, alone %d", name, s, k, cur[s], tk[s][k]);
            cur[s] = tk[s][k]; /* follow the same path either way */
        }
        *exact += same;
        int rc = pinfer_decode_multi(cs, cur, pos, NSEQ);
        CHECKF(rc == 0, "%s: step %d: %s", name, k, pinfer_last_error());
        if (rc) goto out;
        for (int s = 0; s < NSEQ; s++) pos[s]++;
    }
    for (int s = 1; s < NSEQ; s++) {
        struct pinfer_time_stats ts;
        CHECK(pinfer_ctx_time_stats(cs[s], &ts) == 0);
        *single += ts.n_tokens;
    }
out:
    *rel = mag > 0 ? dmax / mag : 1;
    for (int s = NSEQ - 1; s >= 0; s--) pinfer_ctx_free(cs[s]); /* the pool's owner last */
}

/* The sequences alone, then together, in sparse mode `mode` (2 threads, 64-token contexts). */
static void compare(struct pinfer_model *m, enum pinfer_sparse_mode mode, const char *name, double *rel, int *exact,
                    uint64_t *single)
{
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cp.sparse = mode;
    int32_t tk[NSEQ][STEPS];
    float *lg = malloc(sizeof *lg * (size_t)NSEQ * STEPS * pinfer_n_vocab(m));
    if (!lg) { CHECK(0); *rel = 1; *exact = 0; *single = 0; return; }
    alone(m, &cp, tk, lg);
    together(m, &cp, tk, lg, rel, exact, single, name);
    free(lg);
}

/* A batched model: the steps agree with the sequences alone within tol, and were batched. */
static void batched(const char *path, const char *name, double tol)
{
    struct pinfer_model *m = NULL;
    int rc = pinfer_model_load(&m, path, NULL);
    CHECKF(rc == 0, "%s: %s", name, pinfer_last_error());
    if (rc) return;
    double rel;
    int exact;
    uint64_t single;
    compare(m, PINFER_SPARSE_OFF, name, &rel, &exact, &single);
    printf("%s: %d sequences x %d steps batched: max |dlogit| %.3g of max |logit|, %d/%d steps bit-exact\n", name,
           NSEQ, STEPS, rel, exact, STEPS);
    CHECKF(rel <= tol, "%s: batched logits differ from the sequences alone by %g of max |logit| (allowed %g)", name, rel, tol);
    CHECKF(single == 0, "%s: %llu single-token steps in contexts 1..: the pass was not batched", name,
           (unsigned long long)single);
    pinfer_model_free(m);
}

/* Predictor mode on a prepared model: one by one, so bit for bit pinfer_decode's. */
static void one_by_one(void)
{
    const char *raw = tu_tmp("multi-raw.gguf"), *prep = tu_tmp("multi-prep.gguf");
    struct pinfer_synth_params sp = pinfer_synth_default_params();
    sp.act = PINFER_ACT_RELU;
    sp.type = PF_TYPE_Q4_0;
    sp.seed = 5;
    CHECK(tu_make_prepared(raw, prep, &sp, 160, 60) == 0);
    struct pinfer_model *m = NULL;
    CHECK(pinfer_model_load(&m, prep, NULL) == 0);
    if (!m) return;
    double rel;
    int exact;
    uint64_t single;
    compare(m, PINFER_SPARSE_PREDICTOR, "predictor", &rel, &exact, &single);
    printf("predictor: %d/%d steps bit-exact, %llu single-token steps in contexts 1..\n", exact, STEPS,
           (unsigned long long)single);
    CHECKF(exact == STEPS, "predictor mode: %d of %d steps differ from pinfer_decode's", STEPS - exact, STEPS);
    CHECKF(single == (uint64_t)(NSEQ - 1) * STEPS, "predictor mode: %llu single-token steps, expected %d",
           (unsigned long long)single, (NSEQ - 1) * STEPS);
    pinfer_model_free(m);
    remove(raw);
    remove(prep);
}

static void bad_calls(const char *path)
{
    struct pinfer_model *m = NULL, *m2 = NULL;
    CHECK(pinfer_model_load(&m, path, NULL) == 0);
    CHECK(pinfer_model_load(&m2, path, NULL) == 0);
    if (!m || !m2) goto out;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 1;
    struct pinfer_ctx *a = NULL, *b = NULL, *o = NULL;
    CHECK(pinfer_ctx_new(&a, m, &cp) == 0);
    CHECK(pinfer_ctx_new(&b, m, &cp) == 0);
    CHECK(pinfer_ctx_new(&o, m2, &cp) == 0);
    if (a && b && o) {
        int32_t t[2] = { 5, 6 };
        int pos[2] = { 0, 0 };
        struct pinfer_ctx *twice[2] = { a, a }, *mixed[2] = { a, o }, *ok[2] = { a, b };
        CHECK(pinfer_decode_multi(twice, t, pos, 2) == PINFER_EINVAL && strstr(pinfer_last_error(), "twice"));
        CHECK(pinfer_decode_multi(mixed, t, pos, 2) == PINFER_EINVAL && strstr(pinfer_last_error(), "same model"));
        CHECK(pinfer_decode_multi(ok, t, pos, 0) == PINFER_EINVAL);
        pos[1] = 16;
        CHECK(pinfer_decode_multi(ok, t, pos, 2) == PINFER_ERANGE && strstr(pinfer_last_error(), "sequence 1"));
        pos[1] = 0;
        t[0] = pinfer_n_vocab(m);
        CHECK(pinfer_decode_multi(ok, t, pos, 2) == PINFER_EINVAL && strstr(pinfer_last_error(), "vocabulary"));
        t[0] = 5;
        CHECK(pinfer_decode_multi(ok, t, pos, 2) == 0);
        CHECK(pinfer_ctx_logits(a, -1) && pinfer_ctx_logits(b, -1));
    }
    pinfer_ctx_free(a);
    pinfer_ctx_free(b);
    pinfer_ctx_free(o);
out:
    pinfer_model_free(m);
    pinfer_model_free(m2);
}

int main(void)
{
    const char *q4 = tu_tmp("multi-q4.gguf");
    struct pinfer_synth_params sp = pinfer_synth_default_params();
    sp.type = PF_TYPE_Q4_0;
    sp.seed = 3;
    CHECKF(pinfer_synth(q4, &sp) == 0, "synth: %s", pinfer_last_error());
    /* the Q4_0 products quantize each row of activations to Q8_0 alone, batched or not; only
       the summation order differs */
    batched(q4, "synth q4_0", 1e-4);
    bad_calls(q4);
    remove(q4);
    const char *st = tu_shared_path("models/stories260K/stories260K.gguf");
    if (st) batched(st, "stories260K", 1e-4);
    else printf("stories260K: ../shared absent, skipped\n");
    one_by_one();
    TEST_DONE();
}
