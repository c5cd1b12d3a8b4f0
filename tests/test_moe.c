/* Dense mixture of experts (issue 12, part 1): the routing math; the grouped batch against the
 * per-token, per-expert reference on synthetic MoE models of several activations and types; the
 * split per-expert layout against the merged one; hostile MoE files (one per failure class) and
 * what is refused (sparse modes and a memory budget before prepare); profile runs. Prepared
 * mixtures are test_moe_sparse's. llama.cpp's own
 * logits on Mixtral-shaped files are test_llama_ref's. */
#include "testutil.h"

#include "ffn/ffn_internal.h"
#include "ffn/moe.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "pinfer.h"
#include "tensor/types.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ==== Routing ==== */

/* ggml_compute_forward_argsort_f32 (descending) in full, on probabilities: what pf_moe_route's
 * first k steps must agree with. */
static void ggml_argsort_desc(const float *p, int n, int *order)
{
    for (int j = 0; j < n; j++) order[j] = j;
    for (int j = 0; j < n; j++)
        for (int k = j + 1; k < n; k++)
            if (p[order[j]] < p[order[k]]) { int t = order[j]; order[j] = order[k]; order[k] = t; }
}

static void test_route(void)
{
    int sel[8];
    float w[8];
    /* plain: the two largest, weights e^3 / (e^3 + e^2) and the rest */
    const float a[4] = { 0, 1, 2, 3 };
    pf_moe_route(a, 4, 2, sel, w);
    CHECK(sel[0] == 3 && sel[1] == 2);
    CHECKF(fabsf(w[0] - 1 / (1 + expf(-1))) < 1e-6f && fabsf(w[0] + w[1] - 1) < 1e-6f, "w = %g %g", (double)w[0], (double)w[1]);
    /* ties, as ggml's selection sort leaves them: equal values need not come out lowest id first */
    const float b[4] = { 2, 1, 2, 3 };
    pf_moe_route(b, 4, 3, sel, w);
    CHECKF(sel[0] == 3 && sel[1] == 2 && sel[2] == 0, "ties: %d %d %d (ggml: 3 2 0)", sel[0], sel[1], sel[2]);
    CHECK(w[1] == w[2]);
    const float c[8] = { 5, 5, 5, 5, 5, 5, 5, 5 };
    pf_moe_route(c, 8, 2, sel, w);
    CHECK(sel[0] == 0 && sel[1] == 1 && w[0] == 0.5f && w[1] == 0.5f);
    /* k = n: the weights are the softmax itself; large logits do not overflow */
    const float d[3] = { 1000, 999, 998 };
    pf_moe_route(d, 3, 3, sel, w);
    const double z = 1 + exp(-1) + exp(-2);
    CHECK(sel[0] == 0 && sel[1] == 1 && sel[2] == 2);
    CHECKF(fabs(w[0] - 1 / z) < 1e-6 && fabs(w[2] - exp(-2) / z) < 1e-6, "softmax %g %g", (double)w[0], (double)w[2]);
    /* k = 1: weight 1 */
    pf_moe_route(a, 4, 1, sel, w);
    CHECK(sel[0] == 3 && w[0] == 1.0f);
    /* random logits, coarse values so ties happen: the first k of ggml's full sort, weights
       renormalised over them */
    unsigned long long s = 7;
    for (int it = 0; it < 2000; it++) {
        const int n = 2 + (int)(tu_rand(&s) % 63), k = 1 + (int)(tu_rand(&s) % (unsigned)n);
        float lg[64], p[64], wk[64];
        int ord[64], sk[64];
        for (int e = 0; e < n; e++) lg[e] = (float)(int)(tu_randf(&s) * 4) * 0.5f;
        float mx = lg[0];
        for (int e = 1; e < n; e++) mx = lg[e] > mx ? lg[e] : mx;
        double sum = 0;
        for (int e = 0; e < n; e++) sum += (double)(p[e] = expf(lg[e] - mx));
        for (int e = 0; e < n; e++) p[e] *= (float)(1.0 / sum);
        ggml_argsort_desc(p, n, ord);
        pf_moe_route(lg, n, k, sk, wk);
        double ws = 0, ps = 0;
        bool same = true;
        for (int j = 0; j < k; j++) { same &= sk[j] == ord[j]; ws += wk[j]; ps += p[ord[j]]; }
        for (int j = 0; j < k && same; j++) same = fabs(wk[j] - p[ord[j]] / ps) < 1e-6;
        CHECKF(same && fabs(ws - 1) < 1e-5, "random case %d (n %d, k %d): selection or weights differ from ggml's", it, n, k);
        if (!same) break;
    }
}

/* ==== Grouped batch == per-token reference ==== */

/* Layer l's FFN on n random rows, through pf_ffn_step (grouped) and pf_ffn_moe_ref; the largest
 * difference relative to the outputs' largest magnitude. */
static double grouped_vs_ref(struct pinfer_model *m, int l, int n, unsigned long long seed, bool *exact)
{
    struct pf_pool *pool = NULL;
    struct pf_ffn *f = NULL;
    const struct pf_ffn_params fp = { .sparse = PINFER_SPARSE_OFF, .n_batch = n };
    if (pf_pool_new(&pool, 2) || pf_ffn_new(&f, m, &fp, pool, pf_kernels(), NULL)) {
        CHECKF(0, "ffn: %s", pinfer_last_error());
        pf_pool_free(pool);
        return INFINITY;
    }
    const size_t E = (size_t)m->info.n_embd, N = (size_t)n * E;
    float *xb = malloc(N * 4), *xb2 = malloc(N * 4), *x = calloc(N, 4), *x2 = calloc(N, 4);
    for (size_t i = 0; i < N; i++) xb[i] = xb2[i] = tu_randf(&seed) * 2;
    pf_ffn_batch_begin(f, n);
    CHECK(pf_ffn_step(f, l, xb, x, n) == 0);
    pf_ffn_batch_end(f);
    pf_ffn_moe_ref(f, l, xb2, x2, n);
    double dmax = 0, ymax = 0;
    *exact = true;
    for (size_t i = 0; i < N; i++) {
        double d = fabs((double)x[i] - (double)x2[i]);
        if (!(d <= dmax)) dmax = d;
        if (fabs(x2[i]) > ymax) ymax = fabs(x2[i]);
        *exact &= x[i] == x2[i];
    }
    free(xb); free(xb2); free(x); free(x2);
    pf_ffn_free(f);
    pf_pool_free(pool);
    return ymax > 0 ? dmax / ymax : dmax;
}

static void test_grouped(void)
{
    static const struct { int act, type, x, k, dim, ffn; } cases[] = {
        { PINFER_ACT_SILU, PF_TYPE_Q4_0, 4, 2, 128, 256 },  /* the Q4_0 fast path: gemm tiles vs matvec */
        { PINFER_ACT_RELU, PF_TYPE_Q8_0, 8, 2, 128, 128 },
        { PINFER_ACT_REGLU, PF_TYPE_F16, 4, 1, 128, 96 },
        { PINFER_ACT_DRELU, PF_TYPE_Q4_K, 4, 3, 256, 256 },
        { PINFER_ACT_SILU, PF_TYPE_F32, 2, 2, 64, 64 },     /* every token in every expert (no gather) */
        { PINFER_ACT_DRELU, PF_TYPE_Q5_1, 3, 2, 64, 128 },
    };
    static const int batches[] = { 1, 2, 3, 17, 64 };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *path = tu_tmp("grouped.gguf");
        if (tu_synth_moe(path, cases[c].act, cases[c].type, cases[c].x, cases[c].k, cases[c].dim, cases[c].ffn, 100 + (unsigned)c, 0)) continue;
        struct pinfer_model *m = NULL;
        if (pinfer_model_load(&m, path, NULL)) { CHECKF(0, "load: %s", pinfer_last_error()); continue; }
        CHECK(m->info.n_expert == cases[c].x && m->info.n_expert_used == cases[c].k && m->layers[1].exp != NULL);
        double worst = 0;
        int n_exact = 0, n_runs = 0;
        for (size_t b = 0; b < sizeof batches / sizeof *batches; b++)
            for (int l = 0; l < 2; l++) {
                bool exact = false;
                double d = grouped_vs_ref(m, l, batches[b], 1000 + b * 7 + (unsigned)l, &exact);
                if (!(d <= worst)) worst = d;
                n_exact += exact;
                n_runs++;
                /* one token takes the very same path as the reference */
                if (batches[b] == 1) CHECKF(exact, "case %zu layer %d: one token differs from the reference", c, l);
            }
        /* the batch's products may use other kernels (gemm tiles) than one token's matvecs, so
           the sums are ordered differently: a relative difference of a few ulps of the
           activation conversions, never a wrong expert */
        CHECKF(worst < 2e-3, "case %zu (%s, %s, %d experts, %d used): grouped vs reference %.3g", c,
               pinfer_act_name((enum pinfer_act)cases[c].act), pf_type_name(cases[c].type), cases[c].x, cases[c].k, worst);
        printf("grouped == reference: %-6s %-5s %d experts, %d used: max rel diff %.2e, %d of %d runs bit-exact\n",
               pinfer_act_name((enum pinfer_act)cases[c].act), pf_type_name(cases[c].type), cases[c].x, cases[c].k, worst, n_exact, n_runs);
        pinfer_model_free(m);
    }
}

/* One token reads only its chosen experts: with every other expert's weights of the layer
 * overwritten by NaN patterns (0xff bytes: NaN scales and values), the step gives the same bits. */
static void test_reads_only_chosen(const char *path)
{
    struct pinfer_model *m = NULL;
    struct pf_pool *pool = NULL;
    struct pf_ffn *f = NULL;
    const struct pf_ffn_params fp = { .sparse = PINFER_SPARSE_OFF, .n_batch = 1 };
    if (pinfer_model_load(&m, path, NULL) || pf_pool_new(&pool, 2) || pf_ffn_new(&f, m, &fp, pool, pf_kernels(), NULL)) {
        CHECKF(0, "%s", pinfer_last_error());
        pf_ffn_free(f); pf_pool_free(pool); pinfer_model_free(m);
        return;
    }
    const int E = m->info.n_embd, X = m->info.n_expert, K = m->info.n_expert_used, l = 1;
    float *xb = malloc(sizeof(float) * (size_t)E), *x = calloc((size_t)E, 4), *x2 = calloc((size_t)E, 4);
    unsigned long long seed = 99;
    for (int i = 0; i < E; i++) xb[i] = tu_randf(&seed);
    pf_ffn_batch_begin(f, 1);
    CHECK(pf_ffn_step(f, l, xb, x, 1) == 0);
    int poisoned = 0;
    for (int e = 0; e < X; e++) {
        bool chosen = false;
        for (int j = 0; j < K; j++) chosen |= f->moe_sel[j] == e;
        if (chosen) continue;
        const struct pf_weight *w[3] = { &m->layers[l].exp[e].gate, &m->layers[l].exp[e].up, &m->layers[l].exp[e].down };
        for (int p = 0; p < 3; p++) memset((void *)(uintptr_t)w[p]->data, 0xff, (size_t)pf_weight_bytes(w[p]));
        poisoned++;
    }
    CHECK(pf_ffn_step(f, l, xb, x2, 1) == 0);
    pf_ffn_batch_end(f);
    CHECKF(poisoned == X - K && !memcmp(x, x2, sizeof(float) * (size_t)E), "a step read an expert it did not choose");
    /* the control: poisoning a chosen expert does show */
    const struct pf_weight *g = &m->layers[l].exp[f->moe_sel[0]].gate;
    memset((void *)(uintptr_t)g->data, 0xff, (size_t)pf_weight_bytes(g));
    memset(x2, 0, sizeof(float) * (size_t)E);
    pf_ffn_batch_begin(f, 1);
    CHECK(pf_ffn_step(f, l, xb, x2, 1) == 0);
    pf_ffn_batch_end(f);
    CHECKF(memcmp(x, x2, sizeof(float) * (size_t)E) != 0, "poisoning a chosen expert changed nothing: the test sees nothing");
    free(xb); free(x); free(x2);
    pf_ffn_free(f);
    pf_pool_free(pool);
    pinfer_model_free(m);
}

/* Greedy teacher-forced logits of a fixed id sequence, as one batch: into out (n x n_vocab). */
static int run_logits(const char *path, float *out, int n)
{
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    int rc = pinfer_model_load(&m, path, NULL);
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_batch = n;
    cp.n_threads = 2;
    if (!rc) rc = pinfer_ctx_new(&c, m, &cp);
    int32_t ids[16];
    for (int i = 0; i < n; i++) ids[i] = 3 + 17 * i % 300;
    if (!rc) rc = pinfer_decode(c, ids, n, 0, true);
    for (int i = 0; !rc && i < n; i++) memcpy(out + (size_t)i * pinfer_n_vocab(m), pinfer_ctx_logits(c, i), sizeof(float) * (size_t)pinfer_n_vocab(m));
    if (rc) fprintf(stderr, "%s: %s\n", path, pinfer_last_error());
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    return rc;
}

static void test_split(const char *merged)
{
    const char *split = tu_tmp("split.gguf");
    const struct tu_gguf_edit e = { .split_experts = true };
    if (tu_gguf_edit(merged, split, &e)) { CHECK(0); return; }
    float *a = malloc(sizeof(float) * 8 * 384), *b = malloc(sizeof(float) * 8 * 384);
    CHECK(run_logits(merged, a, 8) == 0 && run_logits(split, b, 8) == 0);
    CHECKF(!memcmp(a, b, sizeof(float) * 8 * 384), "split per-expert tensors give other logits than the merged ones");
    free(a);
    free(b);
    /* a split file missing one expert's matrix */
    const struct tu_gguf_edit e2 = { .split_experts = true, .drop_tensor = "blk.1.ffn_up_exps.weight" };
    CHECK(tu_gguf_edit(merged, split, &e2) == 0);
    struct pinfer_model *m = NULL;
    int rc = pinfer_model_load(&m, split, NULL);
    CHECKF(rc == PINFER_EFORMAT && strstr(pinfer_last_error(), "blk.1.ffn_up.0.weight is missing"), "%d: %s", rc, pinfer_last_error());
    pinfer_model_free(m);
}

/* ==== Hostile files and refusals ==== */

static void expect_load_fail(int line, const char *merged, const struct tu_gguf_edit *e, int code, const char *msg)
{
    const char *bad = tu_tmp("bad.gguf");
    if (tu_gguf_edit(merged, bad, e)) { tu_failures++; fprintf(stderr, "%s:%d: cannot write the edited file\n", __FILE__, line); return; }
    struct pinfer_model *m = NULL;
    int rc = pinfer_model_load(&m, bad, NULL);
    if (rc != code || !strstr(pinfer_last_error(), msg)) {
        tu_failures++;
        fprintf(stderr, "%s:%d: expected %d with \"%s\", got %d: %s\n", __FILE__, line, code, msg, rc, rc ? pinfer_last_error() : "(success)");
    }
    pinfer_model_free(m);
}
#define EXPECT_LOAD_FAIL(e, code, msg) expect_load_fail(__LINE__, merged, e, code, msg)

static void test_hostile(const char *merged)
{
    /* synth wrote 4 experts, 2 used, n_embd 128, n_ff 256, 2 layers */
    struct tu_gguf_edit e;
    e = (struct tu_gguf_edit){ .key = "llama.expert_used_count", .u32 = &(uint32_t){ 5 }, .scalar = true };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "expert_used_count = 5 is out of range 1..4");
    e = (struct tu_gguf_edit){ .key = "llama.expert_used_count", .u32 = &(uint32_t){ 0 }, .scalar = true };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "expert_used_count = 0 is out of range");
    e = (struct tu_gguf_edit){ .drop = "llama.expert_count" };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "without llama.expert_count");
    e = (struct tu_gguf_edit){ .key = "llama.expert_count", .u32 = &(uint32_t){ 2000 }, .scalar = true };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "expert_count = 2000 is out of range");
    e = (struct tu_gguf_edit){ .key = "llama.expert_count", .u32 = &(uint32_t){ 8 }, .scalar = true };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "blk.0.ffn_gate_inp.weight has shape [128, 4, 1, 1], expected [128, 8]");
    e = (struct tu_gguf_edit){ .drop_tensor = "blk.1.ffn_gate_inp.weight" };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "tensor blk.1.ffn_gate_inp.weight is missing");
    e = (struct tu_gguf_edit){ .drop_tensor = "blk.1.ffn_down_exps.weight" };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "tensor blk.1.ffn_down_exps.weight is missing");
    /* fewer experts in one merged tensor than the key says */
    e = (struct tu_gguf_edit){ .shape = "blk.0.ffn_up_exps.weight", .n_dims = 3, .ne = { 128, 256, 3, 1 } };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "blk.0.ffn_up_exps.weight has shape [128, 256, 3, 1], expected [128, 256, 4]");
    /* the down experts transposed (same bytes) */
    e = (struct tu_gguf_edit){ .shape = "blk.0.ffn_down_exps.weight", .n_dims = 3, .ne = { 128, 256, 4, 1 } };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "blk.0.ffn_down_exps.weight has shape [128, 256, 4, 1], expected [256, 128, 4]");
    /* the experts spread over a fourth dimension */
    e = (struct tu_gguf_edit){ .shape = "blk.1.ffn_gate_exps.weight", .n_dims = 4, .ne = { 128, 256, 2, 2 } };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "blk.1.ffn_gate_exps.weight has shape [128, 256, 2, 2]");
    /* a 2-D stand-in for the merged tensor */
    e = (struct tu_gguf_edit){ .shape = "blk.1.ffn_gate_exps.weight", .n_dims = 2, .ne = { 128, 1024, 1, 1 } };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "blk.1.ffn_gate_exps.weight has shape [128, 1024, 1, 1]");
    /* a mixture that claims to be prepared has each expert's bundles (test_moe_sparse.c) */
    e = (struct tu_gguf_edit){ .key = "pinfer.prepared", .u32 = &(uint32_t){ 1 }, .scalar = true };
    EXPECT_LOAD_FAIL(&e, PINFER_EFORMAT, "tensor blk.0.ffn_bundle.0.weight is missing");

    /* what is refused for now (issue 12's later parts), cleanly */
    struct pinfer_model *m = NULL;
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.mem_budget = 64u << 20;
    int rc = pinfer_model_load(&m, merged, &mp);
    CHECKF(rc == PINFER_EINVAL && strstr(pinfer_last_error(), "a memory budget needs a prepared model"), "%d: %s", rc, pinfer_last_error());
    pinfer_model_free(m);
    m = NULL;
    CHECK(pinfer_model_load(&m, merged, NULL) == 0);
    static const enum pinfer_sparse_mode modes[] = { PINFER_SPARSE_ORACLE, PINFER_SPARSE_PREDICTOR, PINFER_SPARSE_THRESHOLD };
    for (int i = 0; m && i < 3; i++) {
        struct pinfer_ctx *c = NULL;
        struct pinfer_ctx_params cp = pinfer_ctx_default_params();
        cp.sparse = modes[i];
        rc = pinfer_ctx_new(&c, m, &cp);
        CHECKF(rc == PINFER_EUNSUPPORTED && strstr(pinfer_last_error(), "on a mixture of experts needs a prepared model"), "mode %d: %d: %s",
               (int)modes[i], rc, pinfer_last_error());
        pinfer_ctx_free(c);
    }
    struct pinfer_profile *prof = NULL;
    struct pinfer_profile_params pp = pinfer_profile_default_params();
    pp.n_tokens = 16;
    /* profile supports MoE (tests/test_synth_moe.c checks its figures): it runs, and every
     * layer's shares sum to 1 */
    rc = m ? pinfer_profile_run(&prof, m, &pp) : -1;
    CHECKF(rc == 0 && prof && prof->n_expert == m->info.n_expert, "profile: %d: %s", rc, pinfer_last_error());
    for (int l = 0; rc == 0 && prof && l < prof->n_layer; l++) {
        double sum = 0;
        for (int x = 0; x < prof->layers[l].n_expert; x++) sum += prof->layers[l].expert_share[x];
        CHECKF(fabs(sum - 1) < 1e-9, "profile: layer %d shares sum to %g", l, sum);
    }
    pinfer_profile_free(prof);
    pinfer_model_free(m);
    /* a SiLU mixture prepares into bundles per expert without predictors (test_moe_sparse.c
       has the ReLU family's) */
    struct pinfer_prepare_params pr = pinfer_prepare_default_params();
    pr.n_threads = 2;
    const char *prep = tu_tmp("prepared.gguf");
    rc = pinfer_prepare(merged, prep, &pr, NULL);
    CHECKF(rc == 0, "prepare: %d: %s", rc, pinfer_last_error());
    m = NULL;
    CHECK(rc || pinfer_model_load(&m, prep, NULL) == 0);
    if (m) {
        struct pinfer_model_info info;
        pinfer_model_get_info(m, &info);
        CHECK(info.prepared && info.n_expert == 4 && !info.has_predictors);
    }
    pinfer_model_free(m);
}

int main(void)
{
    test_route();
    test_grouped();
    char merged[512]; /* tu_tmp's buffers rotate */
    snprintf(merged, sizeof merged, "%s", tu_tmp("merged.gguf"));
    if (!tu_synth_moe(merged, PINFER_ACT_SILU, PF_TYPE_Q8_0, 4, 2, 128, 256, 5, 0)) {
        test_reads_only_chosen(merged);
        test_split(merged);
        test_hostile(merged);
    }
    TEST_DONE();
}
