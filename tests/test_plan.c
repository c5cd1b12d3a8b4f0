/* The planner (issue 13; docs/planner.md):
 *  - Che's approximation of an LRU cache (plan/cost.c) against a simulated LRU cache fed
 *    independent requests with the same probabilities (the independent reference), and its
 *    reuse-measured form (prepare/reuse.h) against one fed requests that persist from step to
 *    step;
 *  - the cost model's invariants: more cache never predicts fewer hits, a cache holding every
 *    slot predicts the in-memory speed and no reads;
 *  - pinfer probe / plan / --plan end to end on a tiny prepared model: the profile is cached and
 *    reused, PLAN.json carries the fields the issue names, the curve never falls, a target speed
 *    gives the smallest budget reaching it, impossible requests are clear errors, --plan applies
 *    the settings and explicit flags win, pinfer bench prints predicted beside measured, the SVG
 *    plot is written. */
#include "testutil.h"

#include "pinfer.h"
#include "plan/cost.h"
#include "prepare/reuse.h"
#include "tensor/types.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>

static const char *bin;

/* ==== Che against a simulated LRU ==== */

static void che_vs_lru(void)
{
    enum { N = 3000, STEPS = 6000 };
    static double p[N], hit[N];
    unsigned long long rs = 7;
    for (int i = 0; i < N; i++) p[i] = 0.6 / pow(1.0 + i, 0.8); /* Zipf-like, as neuron frequencies */
    const int caps[] = { 100, 400, 1200 };
    for (int c = 0; c < 3; c++) {
        const int cap = caps[c];
        pf_lru_che(p, N, cap, hit);
        double want = 0, need = 0;
        for (int i = 0; i < N; i++) { want += p[i] * hit[i]; need += p[i]; }
        /* LRU by last-use time: an item is resident iff fewer than cap distinct items were
           requested after its last request; counted over the second half of the run */
        long hits = 0, reqs = 0;
        int *order = malloc(sizeof *order * N); /* items by last use, most recent first */
        int n_order = 0;
        for (int s = 0; s < STEPS; s++) {
            for (int i = 0; i < N; i++) {
                if ((double)(tu_rand(&rs) >> 11) / 9007199254740992.0 >= p[i]) continue;
                int rank = -1;
                for (int k = 0; k < n_order; k++) if (order[k] == i) { rank = k; break; }
                if (s >= STEPS / 2) { reqs++; hits += rank >= 0 && rank < cap; }
                if (rank < 0) rank = n_order++;
                memmove(order + 1, order, sizeof *order * (size_t)rank);
                order[0] = i;
            }
        }
        free(order);
        double sim = reqs ? (double)hits / (double)reqs : 0, che = want / need;
        printf("LRU of %4d of %d items: Che %.4f, simulated %.4f\n", cap, N, che, sim);
        CHECKF(fabs(che - sim) < 0.02, "cap %d: Che's hit rate %.4f vs simulated %.4f", cap, che, sim);
    }
}

/* ==== The reuse-measured LRU against a simulated LRU on a persistent stream ==== */

/* Items that stay on for a while once on (each step: on stays on with probability r + (1 - r) p,
 * off turns on with (1 - r) p; p is the item's long-run frequency), as neurons do when a
 * model's active sets drift slowly. prepare's reuse measurement (prepare/reuse.h) of one trace,
 * fed to the cost model as a one-unit model, must predict the hit rate an LRU cache simulated on
 * another trace of the same law gets; Che's independent form, which sees only the frequencies,
 * must not (it is what the measurement corrects). */
static void reuse_vs_lru(void)
{
    enum { N = 2048, STEPS = 2400 };
    const double r = 0.75;
    static double p[N];
    static uint64_t bits[N][(STEPS + 63) / 64];
    static float freq[N], occ[PF_REUSE_BUCKETS * PF_REUSE_WINDOWS], hitm[PF_REUSE_BUCKETS * PF_REUSE_WINDOWS];
    static int32_t perm[N];
    static unsigned char on[N];
    unsigned long long rs = 11;
    for (int i = 0; i < N; i++) { p[i] = 0.5 / pow(1.0 + i, 0.7); perm[i] = i; }
#define U01() ((double)(tu_rand(&rs) >> 11) / 9007199254740992.0)
    /* trace 1: measured */
    memset(bits, 0, sizeof bits);
    for (int i = 0; i < N; i++) on[i] = U01() < p[i];
    for (int s = 0; s < STEPS; s++)
        for (int i = 0; i < N; i++) {
            on[i] = U01() < (on[i] ? r + (1 - r) * p[i] : (1 - r) * p[i]);
            if (on[i]) { bits[i][s >> 6] |= 1ull << (s & 63); freq[i] += 1.0f / STEPS; }
        }
    CHECK(pf_reuse_measure(&bits[0][0], STEPS, perm, N, occ, hitm) == 0);
    /* the measurement itself: hits grow with the window, occupancy stays within the bucket */
    for (int b = 0; b < PF_REUSE_BUCKETS; b++)
        for (int k = 1; k < PF_REUSE_WINDOWS; k++) {
            const float *o = occ + b * PF_REUSE_WINDOWS, *h = hitm + b * PF_REUSE_WINDOWS;
            if (4 * (int)pf_reuse_windows[k] > STEPS) { CHECK(o[k] == -1 && h[k] == -1); continue; }
            CHECKF(h[k] >= h[k - 1] - 0.02f && o[k] >= o[k - 1] - 1.0f && o[k] <= N / PF_REUSE_BUCKETS + 1e-3f,
                   "bucket %d window %u: hit %.3f after %.3f, occupancy %.1f after %.1f", b, pf_reuse_windows[k], h[k], h[k - 1],
                   o[k], o[k - 1]);
        }
    /* trace 2: an LRU cache simulated on it (second half counted). 8 entries hold less than one
       step's requests (~16): nothing survives to the next step, which the cost model's whole-
       step hits must say (a curve through zero would predict ~0.4) */
    enum { NC = 4 };
    const int caps[NC] = { 8, 150, 400, 900 };
    long hits[NC] = { 0 }, reqs = 0;
    int *order[NC];
    int n_order[NC] = { 0 };
    for (int c = 0; c < NC; c++) order[c] = malloc(sizeof *order[c] * N);
    for (int i = 0; i < N; i++) on[i] = U01() < p[i];
    for (int s = 0; s < STEPS; s++)
        for (int i = 0; i < N; i++) {
            on[i] = U01() < (on[i] ? r + (1 - r) * p[i] : (1 - r) * p[i]);
            if (!on[i]) continue;
            reqs += s >= STEPS / 2;
            for (int c = 0; c < NC; c++) {
                int rank = -1;
                for (int k = 0; k < n_order[c]; k++)
                    if (order[c][k] == i) { rank = k; break; }
                if (s >= STEPS / 2) hits[c] += rank >= 0 && rank < caps[c];
                if (rank < 0) rank = n_order[c] < caps[c] ? n_order[c]++ : caps[c] - 1; /* evict the last */
                memmove(order[c] + 1, order[c], sizeof *order[c] * (size_t)rank);
                order[c][0] = i;
            }
        }
#undef U01
    struct pf_machine mc;
    memset(&mc, 0, sizeof mc);
    mc.cores = 2;
    mc.n_t = 1;
    mc.stream_gbs[0] = 20;
    for (int k = 0; k < PF_MACH_ROWS; k++) mc.scatter_gbs[0][k] = 10;
    mc.be_ok[0] = true;
    for (int b = 0; b < PF_MACH_BS; b++)
        for (int q = 0; q < PF_MACH_QD; q++) mc.iops[0][b][q] = 10000;
    const float *rows[1] = { freq }, *ro[1] = { occ }, *rh[1] = { hitm };
    double w[PF_REUSE_WINDOWS];
    for (int k = 0; k < PF_REUSE_WINDOWS; k++) w[k] = pf_reuse_windows[k];
    struct pf_plan_model pm = { .n_layer = 1, .n_ff = N, .threads = 1, .main_type = -1, .n_params = 1000000, .dense_bytes = 1e6,
                                .slot_bytes = 6912, .ffn_bytes = 6912.0 * N, .freq = rows, .sparse = true, .pred_freq = rows };
    for (int c = 0; c < NC; c++) {
        struct pf_prediction che, reu;
        pm.reuse_occ = NULL;
        CHECK(pf_predict(&mc, &pm, true, 0, caps[c], 0, 64, &che) == 0);
        pm.reuse_occ = ro;
        pm.reuse_hit = rh;
        pm.reuse_w = w;
        pm.n_reuse_b = PF_REUSE_BUCKETS;
        pm.n_reuse_w = PF_REUSE_WINDOWS;
        CHECK(pf_predict(&mc, &pm, true, 0, caps[c], 0, 64, &reu) == 0);
        const double sim = (double)hits[c] / (double)reqs;
        printf("LRU of %4d of %d persistent items: simulated %.4f, reuse-measured %.4f, Che (independent) %.4f\n", caps[c], N, sim,
               reu.hit_rate, che.hit_rate);
        CHECKF(fabs(reu.hit_rate - sim) < 0.03, "cap %d: reuse-measured hit rate %.4f vs simulated %.4f", caps[c], reu.hit_rate, sim);
        CHECKF(caps[c] < 100 || sim - che.hit_rate > 0.05, "cap %d: persistence should beat Che's independent form: %.4f vs %.4f",
               caps[c], sim, che.hit_rate);
        free(order[c]);
    }
}

/* ==== The cost model's invariants ==== */

static void invariants(void)
{
    struct pf_machine mc;
    memset(&mc, 0, sizeof mc);
    mc.cores = 2;
    mc.n_t = 2;
    for (int t = 0; t < 2; t++) {
        mc.stream_gbs[t] = 20 + 10 * t;
        for (int k = 0; k < PF_MACH_ROWS; k++) mc.scatter_gbs[t][k] = 5 + k + 3 * t;
    }
    mc.be_ok[0] = true;
    for (int b = 0; b < PF_MACH_BS; b++)
        for (int q = 0; q < PF_MACH_QD; q++) {
            mc.iops[0][b][q] = 4000.0 * (q + 1) / (b + 1);
            mc.io_gbs[0][b][q] = mc.iops[0][b][q] * (double)pf_mach_bs[b] / 1e9;
        }
    enum { L = 3, F = 256 };
    static float fr[L][F];
    const float *rows[L];
    for (int l = 0; l < L; l++) {
        for (int j = 0; j < F; j++) fr[l][j] = (float)(0.5 / (1 + 0.1 * j));
        rows[l] = fr[l];
    }
    struct pf_plan_model pm = { .n_layer = L, .n_ff = F, .threads = 2, .main_type = -1, .n_params = 1000000,
                                .dense_bytes = 1e6, .slot_bytes = 6912, .ffn_bytes = 6912.0 * L * F,
                                .freq = rows, .sparse = true };
    struct pf_prediction mem, pr, prev = { 0 };
    CHECK(pf_predict(&mc, &pm, false, 0, 0, 0, 64, &mem) == 0);
    CHECK(mem.hit_rate == 1 && mem.reads_per_token == 0 && mem.decode_tps > 0);
    for (int cold = 0; cold <= L * F; cold += L * F / 8) {
        CHECK(pf_predict(&mc, &pm, true, 0, cold, 0, 64, &pr) == 0);
        CHECKF(pr.hit_rate >= prev.hit_rate - 1e-12, "%d cold entries: hit rate %.4f below %.4f", cold, pr.hit_rate, prev.hit_rate);
        CHECKF(pr.decode_tps <= mem.decode_tps * (1 + 1e-9), "%d cold entries: %.2f tok/s above in memory %.2f", cold,
               pr.decode_tps, mem.decode_tps);
        prev = pr;
    }
    CHECKF(fabs(pr.hit_rate - 1) < 1e-9 && pr.reads_per_token < 1e-9 && fabs(pr.decode_tps - mem.decode_tps) < 1e-6 * mem.decode_tps,
           "every slot cached: hit %.6f, %.3g reads, %.3f vs %.3f tok/s", pr.hit_rate, pr.reads_per_token, pr.decode_tps,
           mem.decode_tps);
    CHECK(pf_predict(&mc, &pm, true, F, 0, 0, 64, &pr) == 0); /* all hot */
    CHECKF(pr.hit_rate == 1 && pr.reads_per_token == 0, "every slot hot: hit %.4f", pr.hit_rate);
}

/* ==== The commands ==== */

/* Runs a shell command; exit status, stdout and stderr (malloc'd). */
static int sh(const char *cmd, char **out, char **err)
{
    char full[16384], po[1100], pe[1100];
    snprintf(po, sizeof po, "%s/sh.out", tu_tmpdir());
    snprintf(pe, sizeof pe, "%s/sh.err", tu_tmpdir());
    snprintf(full, sizeof full, "XDG_CACHE_HOME=%s/cache %s >%s 2>%s", tu_tmpdir(), cmd, po, pe);
    int st = system(full);
    if (out) *out = tu_read_file(po, NULL);
    if (err) *err = tu_read_file(pe, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static double num(json_t *o, const char *a, const char *b)
{
    json_t *x = json_object_get(o, a);
    if (b) x = json_object_get(x, b);
    return json_is_number(x) ? json_number_value(x) : NAN;
}

static void commands(void)
{
    char raw[1100], prep[1100], plan[1100], svg[1100], cmd[8192];
    snprintf(raw, sizeof raw, "%s", tu_tmp("plan-raw.gguf"));
    snprintf(prep, sizeof prep, "%s", tu_tmp("plan-prep.gguf"));
    snprintf(plan, sizeof plan, "%s", tu_tmp("plan.json"));
    snprintf(svg, sizeof svg, "%s", tu_tmp("curve.svg"));
    struct pinfer_synth_params sp = pinfer_synth_default_params();
    sp.act = PINFER_ACT_RELU;
    sp.type = PF_TYPE_Q4_0;
    sp.seed = 9;
    if (tu_make_prepared(raw, prep, &sp, 160, 60)) { CHECK(0); return; }
    char *out = NULL, *err = NULL;

    /* probe: measured, cached, reused */
    snprintf(cmd, sizeof cmd, "%s probe -f %s --io-seconds 0.02", bin, prep);
    int rc = sh(cmd, &out, &err);
    CHECKF(rc == 0 && out && strstr(out, "| threads | streaming GB/s") && strstr(out, "profile: "), "probe: %d %s", rc, err ? err : "");
    CHECKF(err && strstr(err, "measuring this machine"), "the first probe did not measure: %s", err ? err : "");
    free(out); free(err);
    rc = sh(cmd, &out, &err);
    CHECKF(rc == 0 && err && !strstr(err, "measuring"), "the second probe measured again instead of reusing the cache: %s", err ? err : "");
    free(out); free(err);

    /* a cached profile that names another CPU (copied in from elsewhere) is noticed and measured
       anew; one given with --machine is used for what it is and named */
    char cached[1400] = "", other[1100];
    char cdir[1100];
    snprintf(cdir, sizeof cdir, "%s/cache/pinfer", tu_tmpdir());
    DIR *d = opendir(cdir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, "machine-", 8)) snprintf(cached, sizeof cached, "%s/%s", cdir, e->d_name);
    if (d) closedir(d);
    json_t *mj = cached[0] ? json_load_file(cached, 0, NULL) : NULL;
    CHECKF(mj != NULL, "no cached machine profile in %s", cdir);
    if (mj) {
        json_object_set_new(mj, "cpu", json_string("Some Other CPU 9000"));
        snprintf(other, sizeof other, "%s/other-machine.json", tu_tmpdir());
        CHECK(json_dump_file(mj, cached, 0) == 0 && json_dump_file(mj, other, 0) == 0);
        json_decref(mj);
        rc = sh(cmd, &out, &err);
        CHECKF(rc == 0 && err && strstr(err, "does not fit: measuring again") && strstr(err, "measuring this machine"),
               "a cached profile of another CPU: %d %s", rc, err ? err : "");
        free(out); free(err);
        mj = json_load_file(cached, 0, NULL);
        const char *cpu = mj ? json_string_value(json_object_get(mj, "cpu")) : NULL;
        CHECKF(cpu && strcmp(cpu, "Some Other CPU 9000"), "the cache still holds the other CPU's profile: %s", cpu ? cpu : "?");
        json_decref(mj);
        snprintf(cmd, sizeof cmd, "%s plan -m %s -t 2 --machine %s", bin, prep, other);
        rc = sh(cmd, &out, &err);
        CHECKF(rc == 0 && err && strstr(err, "measured on another machine or disk") && strstr(err, "Some Other CPU 9000"),
               "--machine from another CPU: %d %s", rc, err ? err : "");
        free(out); free(err);
    }

    /* plan for all in memory: the curve, the fields, the plot */
    snprintf(cmd, sizeof cmd, "%s plan -m %s -t 2 -o %s --plot %s", bin, prep, plan, svg);
    rc = sh(cmd, &out, &err);
    CHECKF(rc == 0 && out && strstr(out, "| budget | hot share | decode tok/s"), "plan: %d %s", rc, err ? err : "");
    free(out); free(err);
    json_error_t je;
    json_t *j = json_load_file(plan, 0, &je);
    CHECKF(j != NULL, "PLAN.json: %s", je.text);
    if (!j) return;
    json_t *curve = json_object_get(j, "curve");
    CHECK(json_is_integer(json_object_get(j, "mem_budget")) && num(j, "predicted", "decode_tps") > 0 &&
          num(j, "predicted", "prefill_tps") > 0 && num(j, "predicted", "hit_rate") == 1 &&
          num(j, "predicted", "storage_mb_per_token") == 0);
    CHECK(json_is_string(json_object_get(json_object_get(j, "settings"), "sparse")) &&
          json_is_number(json_object_get(json_object_get(j, "settings"), "cache_hot")) &&
          json_is_string(json_object_get(json_object_get(j, "settings"), "io_backend")));
    size_t nc = json_array_size(curve);
    CHECK(nc >= 3);
    double prev = 0, lo_b = 0, mid_tps = 0, min_b = num(j, "min_budget", NULL), mem_b = num(j, "in_memory_bytes", NULL);
    for (size_t i = 0; i < nc; i++) {
        double t = num(json_array_get(curve, i), "decode_tps", NULL), b = num(json_array_get(curve, i), "mem_budget", NULL);
        CHECKF(t >= prev - 1e-9, "the curve falls at point %zu: %.3f after %.3f", i, t, prev);
        prev = t;
        if (i == 0) lo_b = b;
        if (i == nc / 2) mid_tps = t;
    }
    CHECK(lo_b == min_b && min_b < mem_b);
    json_decref(j);
    char *s = tu_read_file(svg, NULL);
    CHECKF(s && strstr(s, "<svg") && strstr(s, "<polyline"), "the SVG plot");
    free(s);

    /* a target: the smallest budget predicted to reach it */
    double target = mid_tps * 0.999;
    snprintf(cmd, sizeof cmd, "%s plan -m %s -t 2 --target-tps %.6f -o %s", bin, prep, target, plan);
    rc = sh(cmd, &out, &err);
    CHECKF(rc == 0, "plan --target-tps: %d %s", rc, err ? err : "");
    free(out); free(err);
    if ((j = json_load_file(plan, 0, &je))) {
        double b = num(j, "mem_budget", NULL), t = num(j, "predicted", "decode_tps");
        CHECKF(t >= target && b > 0 && b < mem_b, "--target-tps %.3f: budget %.0f predicted %.3f", target, b, t);
        json_decref(j);
    }
    /* impossible requests */
    snprintf(cmd, sizeof cmd, "%s plan -m %s -t 2 --target-tps 1e8", bin, prep);
    rc = sh(cmd, NULL, &err);
    CHECKF(rc == 1 && err && strstr(err, "no budget reaches") && strstr(err, "in memory"), "an unreachable target: %d %s", rc, err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "%s plan -m %s -t 2 --mem-budget 1M", bin, prep);
    rc = sh(cmd, NULL, &err);
    CHECKF(rc == 1 && err && strstr(err, "smallest workable"), "a budget below the smallest: %d %s", rc, err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "%s plan -m %s -t 2 --mem-budget 1M", bin, raw);
    rc = sh(cmd, NULL, &err);
    CHECKF(rc == 1 && err && strstr(err, "pinfer prepare"), "a budget on a model not prepared: %d %s", rc, err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "%s plan -m %s --mem-budget 1M --target-tps 3", bin, prep);
    CHECK(sh(cmd, NULL, NULL) == 2);

    /* a budget in between; --plan applies it, explicit flags win */
    snprintf(cmd, sizeof cmd, "%s plan -m %s -t 2 --mem-budget %.0f -o %s", bin, prep, (min_b + mem_b) / 2, plan);
    rc = sh(cmd, NULL, &err);
    CHECKF(rc == 0, "plan --mem-budget: %s", err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "%s bench -m %s --plan %s -p 8 -n 8 -r 1", bin, prep, plan);
    rc = sh(cmd, &out, &err);
    CHECKF(rc == 0 && err && strstr(err, "--mem-budget") && strstr(err, "--sparse predictor") && out &&
           strstr(out, "plan: decode predicted") && strstr(out, "pinfer: budget") && strstr(out, "plan: prefill predicted"),
           "bench --plan: %d\n%s\n%s", rc, err ? err : "", out ? out : "");
    free(out); free(err);
    snprintf(cmd, sizeof cmd, "%s bench -m %s --plan %s --sparse off -p 0 -n 4 -r 1", bin, prep, plan);
    rc = sh(cmd, &out, &err);
    CHECKF(rc == 0 && err && strstr(err, "given on the command line instead of the plan's: --sparse predictor") && out &&
           strstr(out, "| tg4 |"), "an explicit flag over the plan: %d %s", rc, err ? err : "");
    free(out); free(err);
    /* bad plan and machine files */
    FILE *f = fopen(plan, "w");
    if (f) { fputs("{\"format\": \"something else\"}", f); fclose(f); }
    snprintf(cmd, sizeof cmd, "%s run -m %s --plan %s -p a -n 1", bin, prep, plan);
    rc = sh(cmd, NULL, &err);
    CHECKF(rc == 2 && err && strstr(err, "is not a plan"), "a file that is not a plan: %d %s", rc, err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "%s plan -m %s --machine %s", bin, prep, plan);
    rc = sh(cmd, NULL, &err);
    CHECKF(rc == 1 && err && strstr(err, "not a machine profile"), "a file that is not a machine profile: %d %s", rc, err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "%s run -m %s --plan /nonexistent/plan.json -p a -n 1", bin, prep);
    rc = sh(cmd, NULL, &err);
    CHECKF(rc == 2 && err && strstr(err, "/nonexistent/plan.json"), "a missing plan: %d %s", rc, err ? err : "");
    free(err);
    remove(raw); remove(prep); remove(plan); remove(svg);
}

int main(void)
{
    bin = getenv("PINFER_BIN");
    if (!bin) bin = "build/pinfer";
    che_vs_lru();
    reuse_vs_lru();
    invariants();
    commands();
    TEST_DONE();
}
