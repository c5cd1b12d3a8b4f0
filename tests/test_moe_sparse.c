/* Prepared mixtures of experts (issue 12, parts 3 and 4): prepare writes bundles and a predictor
 * per (layer, expert); the sparse decode runs each chosen expert's predictor and bundles.
 *
 *   - the prepared mixture, mode off, against the unprepared one (F32: the same products up to
 *     the order of sums; Q8_0: the down columns re-quantized, as for dense layers);
 *   - oracle == off bit for bit, over a sequence of single-token steps (Q8_0 and Q4_0);
 *   - predictor mode against off: greedy agreement, and the recall the statistics report;
 *   - prefill batches on the prepared mixture (each expert's bundles dense) against the
 *     per-token reference;
 *   - prepare of the split per-expert layout writes the same file as of the merged one;
 *   - under a memory budget (part 5): offloaded == in memory bit for bit, with and without the
 *     experts guessed ahead; the guesses counted;
 *   - the hostile prepared mixture (one missing piece per class) and what is refused (threshold
 *     mode; too few calibration tokens per expert, with the count to use). */
#include "testutil.h"

#include "pinfer.h"
#include "tensor/types.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define N_EXPERT 4
#define N_USED 2

static int synth(const char *path, int type, int act, unsigned seed)
{
    return tu_synth_moe(path, act, type, N_EXPERT, N_USED, 128, 256, seed, 0.85f);
}

/* n_tokens sampled by the model, or (random) uniform random ids decoded in batches. */
static int prepare_tokens(const char *in, const char *out, int n_tokens, bool random)
{
    struct pinfer_prepare_params pp = pinfer_prepare_default_params();
    pp.n_tokens = n_tokens;
    pp.random_tokens = random;
    pp.train_steps = 50;
    pp.n_threads = 2;
    struct pinfer_prepare_result *r = NULL;
    int rc = pinfer_prepare(in, out, &pp, &r);
    CHECKF(rc == 0, "prepare %s: %s", in, pinfer_last_error());
    if (r) {
        CHECKF(!strcmp(r->source, random ? "random" : "sample") && r->n_tokens == n_tokens && r->n_expert == N_EXPERT &&
                   r->n_units == 2 * N_EXPERT,
               "source %s, %d tokens, %d experts, %d units", r->source, r->n_tokens, r->n_expert, r->n_units);
        /* a layer's experts share its tokens K times over */
        for (int l = 0; l < 2 && r->n_units == 2 * N_EXPERT; l++) {
            double s = 0;
            for (int e = 0; e < N_EXPERT; e++) s += r->layers[l * N_EXPERT + e].share;
            CHECKF(fabs(s - N_USED) < 1e-9, "layer %d: shares sum to %g", l, s);
        }
    }
    pinfer_prepare_result_free(r);
    return rc;
}

static int prepare(const char *in, const char *out, int n_tokens) { return prepare_tokens(in, out, n_tokens, false); }

static struct pinfer_model *load(const char *path)
{
    struct pinfer_model *m = NULL;
    int rc = pinfer_model_load(&m, path, NULL);
    CHECKF(rc == 0, "load %s: %s", path, pinfer_last_error());
    return rc ? NULL : m;
}

static struct pinfer_ctx *ctx_of(struct pinfer_model *m, enum pinfer_sparse_mode mode)
{
    struct pinfer_ctx *c = NULL;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.sparse = mode;
    cp.n_threads = 2;
    int rc = pinfer_ctx_new(&c, m, &cp);
    CHECKF(rc == 0, "context (mode %s): %s", pinfer_sparse_mode_name(mode), pinfer_last_error());
    return rc ? NULL : c;
}

static const int32_t prompt[] = { 1, 300, 17, 42, 99, 250, 8, 77 };
#define N_PROMPT (int)(sizeof prompt / sizeof *prompt)

/* Teacher-forced single-token steps over tokens[0..n): the largest |a - b| of the two contexts'
 * logits relative to b's largest magnitude, and whether every step's logits are the same bits. */
static double compare_steps(struct pinfer_ctx *a, struct pinfer_ctx *b, const int32_t *tokens, int n, int n_vocab, bool *same)
{
    double worst = 0;
    *same = true;
    for (int i = 0; i < n; i++) {
        if (pinfer_decode(a, &tokens[i], 1, i, false) || pinfer_decode(b, &tokens[i], 1, i, false)) {
            CHECKF(0, "decode: %s", pinfer_last_error());
            return INFINITY;
        }
        const float *la = pinfer_ctx_logits(a, -1), *lb = pinfer_ctx_logits(b, -1);
        double mx = 0, d = 0;
        for (int v = 0; v < n_vocab; v++) {
            if (fabs(lb[v]) > mx) mx = fabs(lb[v]);
            if (fabs((double)la[v] - lb[v]) > d) d = fabs((double)la[v] - lb[v]);
        }
        if (memcmp(la, lb, sizeof *la * (size_t)n_vocab)) *same = false;
        if (mx > 0 && d / mx > worst) worst = d / mx;
    }
    return worst;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Greedy generation of n tokens after the prompt; out[0..n). */
static int greedy(struct pinfer_ctx *c, int n_vocab, int n, int32_t *out)
{
    if (pinfer_decode(c, prompt, N_PROMPT, 0, false)) return -1;
    for (int i = 0; i < n; i++) {
        out[i] = argmax(pinfer_ctx_logits(c, -1), n_vocab);
        if (pinfer_decode(c, &out[i], 1, N_PROMPT + i, false)) return -1;
    }
    return 0;
}

/* The unprepared mixture and its prepared form, mode off, teacher-forced on the same tokens. */
static void test_off_vs_source(const char *raw, const char *prep, double tol, const char *what)
{
    struct pinfer_model *mr = load(raw), *mp = load(prep);
    struct pinfer_ctx *cr = mr ? ctx_of(mr, PINFER_SPARSE_OFF) : NULL, *cp = mp ? ctx_of(mp, PINFER_SPARSE_OFF) : NULL;
    if (cr && cp) {
        struct pinfer_model_info info;
        pinfer_model_get_info(mp, &info);
        CHECK(info.prepared && info.n_expert == N_EXPERT && info.has_predictors);
        bool same;
        double d = compare_steps(cp, cr, prompt, N_PROMPT, info.n_vocab, &same);
        printf("prepared off vs source, %s: max rel diff %.2e\n", what, d);
        CHECKF(d < tol, "%s: %.3e >= %.1e", what, d, tol);
    }
    pinfer_ctx_free(cr);
    pinfer_ctx_free(cp);
    pinfer_model_free(mr);
    pinfer_model_free(mp);
}

/* Oracle == off bit for bit; predictor mode against off (greedy agreement, recall); prefill on
 * the prepared mixture against single-token steps. */
static void test_modes(const char *prep, const char *what)
{
    struct pinfer_model *m = load(prep);
    if (!m) return;
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    const int V = info.n_vocab;
    struct pinfer_ctx *off = ctx_of(m, PINFER_SPARSE_OFF), *ora = ctx_of(m, PINFER_SPARSE_ORACLE);
    enum { N = 48 };
    int32_t seq[N], seq2[N];
    if (off && ora) {
        /* the sequence off generates, teacher-forced through both */
        CHECK(greedy(off, V, N, seq) == 0);
        bool same;
        int32_t all[N_PROMPT + N];
        memcpy(all, prompt, sizeof prompt);
        memcpy(all + N_PROMPT, seq, sizeof seq);
        double d = compare_steps(ora, off, all, N_PROMPT + N, V, &same);
        printf("oracle vs off, %s: %s (max rel diff %.2e)\n", what, same ? "bit-exact" : "DIFFERENT", d);
        CHECKF(same, "%s: oracle differs from off by %.3e", what, d);
        struct pinfer_sparse_stats st;
        CHECK(pinfer_ctx_sparse_stats(ora, -1, &st) == 0);
        /* oracle reads every gate but only the up and down rows of firing neurons: a real skip */
        CHECKF(st.gate_frac > 0.99 && st.down_frac < 0.5 && st.active_frac > 0.02, "%s: oracle gate %.3f down %.3f active %.3f",
               what, st.gate_frac, st.down_frac, st.active_frac);
    }
    struct pinfer_ctx *pred = ctx_of(m, PINFER_SPARSE_PREDICTOR);
    if (off && pred) {
        /* off's greedy continuation teacher-forced through predictor mode: how often its next
           token is off's (free-running greedy diverges for good at the first flip, and a
           mixture flips more easily than a dense model: a missed neuron can change the next
           layer's routing) */
        pinfer_ctx_reset(off);
        CHECK(greedy(off, V, N, seq) == 0);
        int agree = 0, first = -1;
        CHECK(pinfer_decode(pred, prompt, N_PROMPT, 0, false) == 0);
        for (int i = 0; i < N; i++) {
            seq2[i] = argmax(pinfer_ctx_logits(pred, -1), V);
            agree += seq2[i] == seq[i];
            if (first < 0 && seq2[i] != seq[i]) first = i;
            CHECK(pinfer_decode(pred, &seq[i], 1, N_PROMPT + i, false) == 0);
        }
        struct pinfer_sparse_stats st;
        CHECK(pinfer_ctx_sparse_stats(pred, -1, &st) == 0);
        printf("predictor vs off, %s: next token agrees on %d of %d (first difference at %d); predicted %.3f of neurons, "
               "active %.3f\n", what, agree, N, first, st.pred_frac, st.active_frac);
        /* predictors trained on a few hundred routed tokens of a 128-wide model: most tokens,
           not all (the larger models' figures are in bench/RESULTS.md) */
        CHECKF(agree >= N * 3 / 4, "%s: only %d of %d next tokens agree", what, agree, N);
        CHECKF(st.pred_frac > st.active_frac && st.pred_frac < 0.9, "%s: predicted %.3f active %.3f", what, st.pred_frac,
               st.active_frac);
    }
    pinfer_ctx_free(pred);
    /* a prompt as one batch (each expert's bundles dense, grouped by expert) against the same
       tokens one by one, mode off */
    struct pinfer_ctx *batch = ctx_of(m, PINFER_SPARSE_OFF);
    if (off && batch) {
        pinfer_ctx_reset(off);
        CHECK(pinfer_decode(batch, prompt, N_PROMPT, 0, true) == 0);
        double worst = 0;
        for (int i = 0; i < N_PROMPT; i++) {
            CHECK(pinfer_decode(off, &prompt[i], 1, i, false) == 0);
            const float *a = pinfer_ctx_logits(batch, i), *b = pinfer_ctx_logits(off, -1);
            double mx = 0, d = 0;
            for (int v = 0; v < V; v++) {
                if (fabs(b[v]) > mx) mx = fabs(b[v]);
                if (fabs((double)a[v] - b[v]) > d) d = fabs((double)a[v] - b[v]);
            }
            if (d / mx > worst) worst = d / mx;
        }
        printf("prefill vs steps, %s: max rel diff %.2e\n", what, worst);
        CHECKF(worst < 2e-2, "%s: prefill differs from steps by %.3e", what, worst);
    }
    pinfer_ctx_free(batch);
    /* threshold mode is per layer, not per expert: refused with a reason */
    struct pinfer_ctx *c = NULL;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.sparse = PINFER_SPARSE_THRESHOLD;
    int rc = pinfer_ctx_new(&c, m, &cp);
    CHECKF(rc == PINFER_EUNSUPPORTED && strstr(pinfer_last_error(), "threshold on a mixture"), "%d: %s", rc, pinfer_last_error());
    pinfer_ctx_free(c);
    pinfer_ctx_free(off);
    pinfer_ctx_free(ora);
    pinfer_model_free(m);
}

static bool same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

#define EXPECT_LOAD_FAIL(edit, code, msg) do { \
    const char *bad_ = tu_tmp("bad.gguf"); \
    CHECK(tu_gguf_edit(prep, bad_, (edit)) == 0); \
    struct pinfer_model *m_ = NULL; \
    int rc_ = pinfer_model_load(&m_, bad_, NULL); \
    CHECKF(rc_ == (code) && strstr(pinfer_last_error(), (msg)), "%d: %s (want: %s)", rc_, pinfer_last_error(), (msg)); \
    pinfer_model_free(m_); \
} while (0)

static void test_hostile(const char *prep)
{
    struct tu_gguf_edit e;
    e = (struct tu_gguf_edit){ .drop_tensor = "blk.1.ffn_bundle.2.weight" };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "tensor blk.1.ffn_bundle.2.weight is missing");
    e = (struct tu_gguf_edit){ .drop = "pinfer.bundle.0.3.perm" };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "pinfer.bundle.0.3.perm is missing");
    e = (struct tu_gguf_edit){ .drop_tensor = "blk.0.fc2.1.weight" };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "layer 0 expert 1 has only one of fc1 and fc2");
    e = (struct tu_gguf_edit){ .drop = "pinfer.predictor.1.0.threshold" };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "pinfer.predictor.1.0.threshold is missing");
    e = (struct tu_gguf_edit){ .drop_tensor = "blk.1.ffn_gate_inp.weight" };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "tensor blk.1.ffn_gate_inp.weight is missing");
}

/* The fixed segment of prep under a budget with context parameters cp (the cache statistics
 * of a context under a budget that holds everything). */
static uint64_t fixed_bytes(const char *prep, const struct pinfer_ctx_params *cp)
{
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.mem_budget = 1u << 30;
    struct pinfer_cache_stats st = { 0 };
    int rc = pinfer_model_load(&m, prep, &mp);
    if (!rc) rc = pinfer_ctx_new(&c, m, cp);
    if (!rc) rc = pinfer_ctx_cache_stats(c, &st);
    CHECKF(rc == 0, "a 1 GiB budget: %s", pinfer_last_error());
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    return st.fixed_bytes;
}

/* Under a memory budget (issue 12, part 5): the experts' slots from the neuron cache, batches
 * streamed expert by expert; the logits equal the in-memory run's bit for bit, with and without
 * the experts guessed ahead, at a budget that forces evictions on every token and at one that
 * pins hot neurons by frequency x expert share. */
static void test_budget(const char *prep, const char *what)
{
    struct pinfer_model *mm = load(prep);
    if (!mm) return;
    struct pinfer_model_info info;
    pinfer_model_get_info(mm, &info);
    const int V = info.n_vocab;
    enum { N = 32 };
    for (int mode = 0; mode < 2; mode++) {
        const enum pinfer_sparse_mode sm = mode ? PINFER_SPARSE_PREDICTOR : PINFER_SPARSE_ORACLE;
        for (int k = 0; k < 3; k++) {
            struct pinfer_ctx_params cp = pinfer_ctx_default_params();
            cp.sparse = sm;
            cp.n_threads = 2;
            cp.n_ctx = 128;
            cp.prefetch = k == 1 && sm == PINFER_SPARSE_PREDICTOR;
            /* k 0, 1: a little above the fixed segment (about 180 cold entries of the 2048
               slots); k 2: hot slots too */
            struct pinfer_model_params mp = pinfer_model_default_params();
            mp.mem_budget = fixed_bytes(prep, &cp) + (k < 2 ? (48u << 10) : (4u << 20));
            struct pinfer_model *mb = NULL;
            struct pinfer_ctx *a = NULL, *b = NULL;
            int rc = pinfer_model_load(&mb, prep, &mp);
            CHECKF(rc == 0, "%s budget %.1f MiB: %s", what, (double)mp.mem_budget / (1 << 20), pinfer_last_error());
            if (!rc) rc = pinfer_ctx_new(&b, mb, &cp);
            CHECKF(rc == 0, "%s budget context: %s", what, pinfer_last_error());
            struct pinfer_ctx_params cm = cp;
            cm.prefetch = false;
            if (!rc) rc = pinfer_ctx_new(&a, mm, &cm);
            if (!rc) {
                /* the prompt as one batch, then single-token steps on a's greedy tokens */
                CHECK(pinfer_decode(a, prompt, N_PROMPT, 0, false) == 0 && pinfer_decode(b, prompt, N_PROMPT, 0, false) == 0);
                bool same = !memcmp(pinfer_ctx_logits(a, -1), pinfer_ctx_logits(b, -1), sizeof(float) * (size_t)V);
                for (int i = 0; i < N && same; i++) {
                    int32_t t = argmax(pinfer_ctx_logits(a, -1), V);
                    CHECK(pinfer_decode(a, &t, 1, N_PROMPT + i, false) == 0 && pinfer_decode(b, &t, 1, N_PROMPT + i, false) == 0);
                    same = !memcmp(pinfer_ctx_logits(a, -1), pinfer_ctx_logits(b, -1), sizeof(float) * (size_t)V);
                }
                struct pinfer_cache_stats st;
                CHECK(pinfer_ctx_cache_stats(b, &st) == 0);
                printf("budget %.1f MiB, %s, %s%s: %s; hot %d, cold %d, hits %llu, misses %llu, evictions %llu, experts guessed "
                       "%llu (%llu right)\n", (double)mp.mem_budget / (1 << 20), what, pinfer_sparse_mode_name(sm),
                       cp.prefetch ? " + read-ahead" : "", same ? "bit-exact" : "DIFFERENT", st.hot_slots, st.cold_entries,
                       (unsigned long long)st.hits, (unsigned long long)st.misses, (unsigned long long)st.evictions,
                       (unsigned long long)st.expert_guesses, (unsigned long long)st.expert_guess_hits);
                CHECKF(same, "%s: under a budget the logits differ", what);
                CHECK(st.prefill_reads > 0);
                if (k < 2) CHECKF(st.misses > 0 && st.evictions > 0, "%s: the small budget should miss and evict", what);
                /* k 2 holds every slot: the cold segment was filled when the cache was made */
                else CHECKF(st.misses == 0 && st.hits > 0, "%s: %llu misses with every slot held", what, (unsigned long long)st.misses);
                if (cp.prefetch)
                    CHECKF(st.expert_guesses == (uint64_t)N * (info.n_layer - 1) * N_USED && st.expert_guess_hits > 0 &&
                               st.expert_guess_hits <= st.expert_guesses && st.prefetch_reads > 0,
                           "%s: guesses %llu hits %llu read-ahead %llu", what, (unsigned long long)st.expert_guesses,
                           (unsigned long long)st.expert_guess_hits, (unsigned long long)st.prefetch_reads);
                else CHECK(st.expert_guesses == 0);
            }
            pinfer_ctx_free(a);
            pinfer_ctx_free(b);
            pinfer_model_free(mb);
        }
    }
    pinfer_model_free(mm);
}

int main(void)
{
    char raw[512], prep[512], split[512], prep2[512];
    snprintf(raw, sizeof raw, "%s", tu_tmp("moe_f32.gguf"));
    snprintf(prep, sizeof prep, "%s", tu_tmp("moe_f32_prep.gguf"));
    if (!synth(raw, PF_TYPE_F32, PINFER_ACT_DRELU, 11) && !prepare(raw, prep, 512)) {
        test_off_vs_source(raw, prep, 1e-4, "f32 drelu");
        test_modes(prep, "f32 drelu");
    }
    snprintf(raw, sizeof raw, "%s", tu_tmp("moe_q8.gguf"));
    snprintf(prep, sizeof prep, "%s", tu_tmp("moe_q8_prep.gguf"));
    if (!synth(raw, PF_TYPE_Q8_0, PINFER_ACT_RELU, 12) && !prepare(raw, prep, 512)) {
        test_off_vs_source(raw, prep, 2e-2, "q8_0 relu");
        test_modes(prep, "q8_0 relu");
        /* the split per-expert layout prepares into the same file */
        snprintf(split, sizeof split, "%s", tu_tmp("moe_q8_split.gguf"));
        snprintf(prep2, sizeof prep2, "%s", tu_tmp("moe_q8_split_prep.gguf"));
        struct tu_gguf_edit e = { .split_experts = true };
        CHECK(tu_gguf_edit(raw, split, &e) == 0);
        if (!prepare(split, prep2, 512)) CHECKF(same_file(prep, prep2), "prepared split != prepared merged");
        test_hostile(prep);
        /* too few tokens for an expert: the error names it and asks for more */
        struct pinfer_prepare_params pp = pinfer_prepare_default_params();
        pp.n_tokens = 80;
        pp.n_threads = 2;
        int rc = pinfer_prepare(raw, tu_tmp("few.gguf"), &pp, NULL);
        CHECKF(rc == PINFER_EINVAL && strstr(pinfer_last_error(), "expert") && strstr(pinfer_last_error(), "raise --tokens"),
               "%d: %s", rc, pinfer_last_error());
    }
    snprintf(raw, sizeof raw, "%s", tu_tmp("moe_q4.gguf"));
    snprintf(prep, sizeof prep, "%s", tu_tmp("moe_q4_prep.gguf"));
    if (!synth(raw, PF_TYPE_Q4_0, PINFER_ACT_DRELU, 13) && !prepare_tokens(raw, prep, 512, true)) {
        test_modes(prep, "q4_0 drelu");
        test_budget(prep, "q4_0 drelu");
    }
    TEST_DONE();
}
