/* Models larger than memory (docs/offload.md): a prepared tiny dReLU model run under memory
 * budgets that force cold-cache evictions on every token, through both I/O backends, against
 * the same model run in memory:
 *  - the logits of a batched prompt and of 256 greedy single-token steps are bit-identical
 *    (predictor and oracle modes), also when the staging area forces several read rounds per
 *    layer (pinfer_ctx_params.stage_bytes);
 *  - the plan refuses a budget below the fixed segment and names the smallest workable budget,
 *    which then works; an unprepared model or --mmap with a budget are refused;
 *  - a read error (fault injection) and a model file truncated while running give PINFER_EIO
 *    with a message, on this and every later step, never a crash or silent tokens;
 *  - the counters are consistent: misses and evictions happen, bytes read are whole pages. */
#include "testutil.h"

#include "tensor/kernels.h"

#include "gguf/gguf.h"
#include "model/model.h"

#include "pinfer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_STEPS 256
#define N_CTX 300

static char raw_path[512], prep_path[512];

static int make_model(void)
{
    snprintf(raw_path, sizeof raw_path, "%s/raw.gguf", tu_tmpdir());
    snprintf(prep_path, sizeof prep_path, "%s/prep.gguf", tu_tmpdir());
    struct pinfer_synth_params sp = pinfer_synth_default_params();
    sp.act = PINFER_ACT_DRELU;
    sp.type = 2; /* q4_0 */
    sp.seed = 5;
    return tu_make_prepared(raw_path, prep_path, &sp, 240, 100);
}

static int argmax(const float *x, int n)
{
    int a = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[a]) a = i;
    return a;
}

struct run {
    float *lg;          /* (N_STEPS + 1) x n_vocab: the prompt's last logits, then each step's */
    int32_t tk[N_STEPS];
    struct pinfer_cache_stats cs;
    int steps_done;
    int err;
    char msg[512];
};

/* Loads the prepared model with budget (0 = in memory), runs a 6-token prompt as one batch and
 * N_STEPS greedy steps (or until the first error). */
/* What the next run_model asks of the cache beyond its arguments (pinfer_ctx_params). */
static bool g_prefetch;
static uint64_t g_stage_bytes;
static void (*g_after_load)(const char *path); /* called between model load and context */

static int run_model(const char *path, uint64_t budget, enum pinfer_io_backend io, float hot, enum pinfer_sparse_mode mode,
                     int n_steps, struct run *r)
{
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.mem_budget = budget;
    memset(r->tk, 0, sizeof r->tk);
    r->steps_done = 0;
    r->err = 0;
    r->msg[0] = 0;
    if ((r->err = pinfer_model_load(&m, path, &mp))) { snprintf(r->msg, sizeof r->msg, "%s", pinfer_last_error()); return r->err; }
    if (g_after_load) g_after_load(path);
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = N_CTX;
    cp.n_batch = 8;
    cp.n_threads = 2;
    cp.sparse = mode;
    cp.io_backend = io;
    cp.cache_hot = hot;
    cp.prefetch = g_prefetch;
    cp.stage_bytes = g_stage_bytes;
    if ((r->err = pinfer_ctx_new(&c, m, &cp))) {
        snprintf(r->msg, sizeof r->msg, "%s", pinfer_last_error());
        pinfer_model_free(m);
        return r->err;
    }
    const int nv = pinfer_n_vocab(m);
    int32_t prompt[6] = { pinfer_token_bos(m) >= 0 ? pinfer_token_bos(m) : 1, 5, 9, 13, 40, 77 };
    if ((r->err = pinfer_decode(c, prompt, 6, 0, false))) goto done;
    memcpy(r->lg, pinfer_ctx_logits(c, -1), sizeof(float) * (size_t)nv);
    pinfer_ctx_cache_stats_reset(c);
    int32_t tok = argmax(r->lg, nv);
    for (int i = 0; i < n_steps; i++) {
        r->tk[i] = tok;
        if ((r->err = pinfer_decode(c, &tok, 1, 6 + i, false))) goto done;
        const float *l = pinfer_ctx_logits(c, -1);
        memcpy(r->lg + (size_t)(i + 1) * nv, l, sizeof(float) * (size_t)nv);
        tok = argmax(l, nv);
        r->steps_done++;
    }
done:
    if (r->err) snprintf(r->msg, sizeof r->msg, "%s", pinfer_last_error());
    pinfer_ctx_cache_stats(c, &r->cs);
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    return r->err;
}

static int n_vocab_of(const char *path)
{
    struct pinfer_model *m = NULL;
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.vocab_only = true;
    if (pinfer_model_load(&m, path, &mp)) return -1;
    int n = pinfer_n_vocab(m);
    pinfer_model_free(m);
    return n;
}

/* Bit-for-bit comparison of two runs' logits over steps+1 rows. */
static int diff_rows(const struct run *a, const struct run *b, int nv, int steps)
{
    int bad = 0;
    for (int i = 0; i <= steps; i++)
        if (memcmp(a->lg + (size_t)i * nv, b->lg + (size_t)i * nv, sizeof(float) * (size_t)nv)) bad++;
    return bad;
}

/* Writes a copy of the prepared model whose layer-0 bundle is Q8_0 (the same values requantized,
 * its types key changed to match) and the rest as they are: layers of different slot sizes
 * (issue 15, defect 1). 0 or -1. */
static int bundle0_q8(const char *name) { return strcmp(name, "blk.0.ffn_bundle.weight") ? -1 : PF_TYPE_Q8_0; }

static int write_mixed(const char *in, const char *out)
{
    const uint32_t q8[3] = { PF_TYPE_Q8_0, PF_TYPE_Q8_0, PF_TYPE_Q8_0 };
    struct tu_gguf_edit e = { .key = "pinfer.bundle.0.types", .u32 = q8, .n_u32 = 3, .retype = bundle0_q8 };
    return tu_gguf_edit(in, out, &e);
}

/* Issue 15, defect 4: a file replaced or cut after it was parsed. other_path holds a file of the
 * same size and header as the model whose tensor data is all zeros (a model that runs and gives
 * other logits); swap() renames it over the model, cut() truncates the model to a third. */
static char other_path[600];

static void swap(const char *path)
{
    CHECKF(rename(other_path, path) == 0, "rename %s over %s", other_path, path);
}

static void cut(const char *path)
{
    struct stat st;
    CHECK(stat(path, &st) == 0 && truncate(path, st.st_size / 3) == 0);
}

static int copy_file(const char *from, const char *to, bool zero_data)
{
    size_t len;
    char *bytes = tu_read_file(from, &len);
    if (!bytes) return -1;
    if (zero_data) {
        struct gguf_file *f = NULL;
        if (gguf_parse(&f, bytes, len)) { free(bytes); return -1; }
        memset(bytes + f->data_offset, 0, len - f->data_offset);
        gguf_close(f);
    }
    FILE *fp = fopen(to, "wb");
    int ok = fp && fwrite(bytes, 1, len, fp) == len;
    if (fp && fclose(fp)) ok = 0;
    free(bytes);
    return ok ? 0 : -1;
}

/* Runs the model at a copy of prep_path with budget, after(path) called in the window under test,
 * and compares with the run of the unchanged file: a replaced file must change nothing (the
 * parsed file is the one read), a cut one must fail with PINFER_EIO naming the change. */
static void check_changed_file(const char *what, uint64_t budget, bool replace, bool during_load, struct run *ref, struct run *r,
                               int nv)
{
    char path[600];
    snprintf(path, sizeof path, "%s/changed.gguf", tu_tmpdir());
    snprintf(other_path, sizeof other_path, "%s/other.gguf", tu_tmpdir());
    CHECK(copy_file(prep_path, path, false) == 0 && copy_file(prep_path, other_path, true) == 0);
    const int steps = 8;
    CHECKF(run_model(path, budget, PINFER_IO_AUTO, 0, PINFER_SPARSE_PREDICTOR, steps, ref) == 0, "%s", ref->msg);
    void (*fn)(const char *) = replace ? swap : cut;
    if (during_load) pf_model_after_parse_hook = fn; else g_after_load = fn;
    int rc = run_model(path, budget, PINFER_IO_AUTO, 0, PINFER_SPARSE_PREDICTOR, steps, r);
    pf_model_after_parse_hook = NULL;
    g_after_load = NULL;
    if (replace) {
        CHECKF(rc == 0 && r->steps_done == steps && diff_rows(ref, r, nv, steps) == 0,
               "%s: rc %d, %d steps, %d rows differ from the unchanged file: %s", what, rc, r->steps_done,
               rc ? -1 : diff_rows(ref, r, nv, steps), r->msg);
        printf("%s: the parsed file was read, logits unchanged\n", what);
    } else {
        CHECKF(rc == PINFER_EIO && (strstr(r->msg, "changed size") || strstr(r->msg, "truncated")),
               "%s: rc %d: %s", what, rc, r->msg);
        printf("%s: %s\n", what, r->msg);
    }
    unlink(path);
    unlink(other_path);
}

int main(void)
{
    if (make_model()) { CHECK(0); TEST_DONE(); }
    const int nv = n_vocab_of(prep_path);
    CHECK(nv > 0);
    struct run mem, off;
    mem.lg = malloc(sizeof(float) * (size_t)nv * (N_STEPS + 1));
    off.lg = malloc(sizeof(float) * (size_t)nv * (N_STEPS + 1));
    if (!mem.lg || !off.lg) { CHECK(0); TEST_DONE(); }

    /* the fixed segment, from a budget that holds everything */
    struct run big = { .lg = off.lg };
    g_prefetch = true; /* the larger fixed segment (a second staging area) */
    CHECKF(run_model(prep_path, 1ull << 30, PINFER_IO_AUTO, -1, PINFER_SPARSE_PREDICTOR, 4, &big) == 0, "%s", big.msg);
    g_prefetch = false;
    const uint64_t fixed = big.cs.fixed_bytes, ffn = big.cs.hot_bytes; /* every slot pinned */
    CHECK(fixed > 0 && big.cs.misses == 0 && big.cs.hits > 0);
    printf("fixed segment %.2f MiB; everything resident: %llu look-ups, %llu misses\n", fixed / 1048576.0,
           (unsigned long long)big.cs.hits, (unsigned long long)big.cs.misses);
    /* the same with nothing pinned: the cold segment holds every slot, filled when the cache
       was made (cache.c warm_cold), so no step reads one, and the logits are the pinned run's */
    struct run warm = { .lg = mem.lg };
    CHECKF(run_model(prep_path, 1ull << 30, PINFER_IO_AUTO, 0, PINFER_SPARSE_PREDICTOR, 4, &warm) == 0, "%s", warm.msg);
    CHECKF(warm.cs.hot_slots == 0 && warm.cs.misses == 0 && warm.cs.hits == big.cs.hits && warm.cs.evictions == 0 &&
               !memcmp(warm.lg, big.lg, sizeof(float) * (size_t)nv * 5),
           "cold segment filled at creation: hot %d, %llu misses, %llu hits (pinned: %llu), %llu evictions", warm.cs.hot_slots,
           (unsigned long long)warm.cs.misses, (unsigned long long)warm.cs.hits, (unsigned long long)big.cs.hits,
           (unsigned long long)warm.cs.evictions);
    printf("nothing pinned, every slot in the cold segment from the start: %llu look-ups, %llu misses\n",
           (unsigned long long)warm.cs.hits, (unsigned long long)warm.cs.misses);

    /* in memory, the reference */
    for (int mode = 0; mode < 2; mode++) {
        enum pinfer_sparse_mode sm = mode == 0 ? PINFER_SPARSE_PREDICTOR : PINFER_SPARSE_ORACLE;
        const int steps = mode == 0 ? N_STEPS : 64;
        CHECKF(run_model(prep_path, 0, PINFER_IO_AUTO, -1, sm, steps, &mem) == 0, "%s", mem.msg);
        /* a small cold cache and no hot slots: evictions on every token; then some hot slots */
        const struct { enum pinfer_io_backend io; float hot; uint64_t extra; uint64_t stage; } cfg[] = {
            { PINFER_IO_URING, 0, 64 << 10, 0 },
            { PINFER_IO_PREAD, 0, 64 << 10, 0 },
            { PINFER_IO_AUTO, 0.5f, 256 << 10, 0 },
            { PINFER_IO_PREAD, 0, 64 << 10, 16384 }, /* several read rounds per layer */
            /* most slots resident (hot 0.9 of a cache of half the FFN): parts without misses are finished while the reads fly (offload.c) */
            { PINFER_IO_URING, 0.9f, 0, 0 },
        };
        for (size_t k = 0; k < sizeof cfg / sizeof cfg[0]; k++) {
            g_stage_bytes = cfg[k].stage;
            g_prefetch = k % 2 == 0; /* read-ahead of the next layer */
            const uint64_t extra = cfg[k].extra ? cfg[k].extra : ffn / 2;
            int rc = run_model(prep_path, fixed + extra, cfg[k].io, cfg[k].hot, sm, steps, &off);
            g_stage_bytes = 0;
            g_prefetch = false;
            if (rc == PINFER_EUNSUPPORTED && cfg[k].io == PINFER_IO_URING) {
                printf("io_uring unavailable here (%s): uring configuration skipped\n", off.msg);
                continue;
            }
            CHECKF(rc == 0, "config %zu: %s", k, off.msg);
            if (rc) continue;
            int bad = diff_rows(&mem, &off, nv, steps);
            CHECKF(bad == 0, "%s config %zu: %d of %d logit rows differ from the in-memory run", pinfer_sparse_mode_name(sm), k, bad,
                   steps + 1);
            CHECKF(!memcmp(mem.tk, off.tk, sizeof mem.tk), "tokens differ");
            CHECKF(off.cs.evictions >= (uint64_t)steps, "config %zu: %llu evictions in %d steps", k,
                   (unsigned long long)off.cs.evictions, steps);
            CHECKF(off.cs.misses > 0 && off.cs.reads > 0 && off.cs.bytes_read % 4096 == 0, "counters");
            CHECKF(off.cs.prefill_bytes == 0, "prefill counters were reset"); /* reset after the prompt */
            if (!cfg[k].extra && sm == PINFER_SPARSE_PREDICTOR)
                CHECKF(off.cs.hits > off.cs.misses, "config %zu: %llu hits, %llu misses: not mostly resident", k,
                       (unsigned long long)off.cs.hits, (unsigned long long)off.cs.misses);
            if (cfg[k].stage) CHECKF(off.cs.rounds > (uint64_t)steps * 4, "config %zu: %llu read rounds in %d steps of 4 layers", k,
                                     (unsigned long long)off.cs.rounds, steps);
            if (k % 2 == 0 && sm == PINFER_SPARSE_PREDICTOR)
                CHECKF(off.cs.prefetch_slots > 0 && off.cs.prefetch_used > 0, "config %zu: read-ahead unused", k);
            printf("%s, io %s, hot %.1f, budget fixed+%llu KiB%s%s: %d steps bit-identical to in memory; hit rate %.1f%%, "
                   "%.1f KB read/token, %llu evictions, %llu rounds\n",
                   pinfer_sparse_mode_name(sm), off.cs.io_backend, cfg[k].hot, (unsigned long long)(extra >> 10),
                   cfg[k].stage ? ", 16 KiB staging" : "", k % 2 == 0 ? ", read-ahead" : "", steps,
                   100.0 * (double)off.cs.hits / (double)(off.cs.hits + off.cs.misses + off.cs.prefetch_used),
                   (off.cs.bytes_read + off.cs.prefetch_bytes) / 1e3 / steps,
                   (unsigned long long)off.cs.evictions, (unsigned long long)off.cs.rounds);
        }
    }

    /* budgets that cannot work */
    {
        struct run r = { .lg = off.lg };
        int rc = run_model(prep_path, fixed / 2, PINFER_IO_AUTO, -1, PINFER_SPARSE_PREDICTOR, 1, &r);
        CHECKF(rc == PINFER_ENOMEM && strstr(r.msg, "smallest workable budget"), "rc %d: %s", rc, r.msg);
        printf("budget %.2f MiB refused: %s\n", fixed / 2 / 1048576.0, r.msg);
        const char *s = strstr(r.msg, "smallest workable budget is ");
        double mib = s ? atof(s + strlen("smallest workable budget is ")) : 0;
        CHECK(mib * 1048576.0 >= (double)fixed - 1048576.0);
        rc = run_model(prep_path, (uint64_t)(mib * 1048576.0), PINFER_IO_AUTO, -1, PINFER_SPARSE_PREDICTOR, 4, &r);
        CHECKF(rc == 0, "the budget the message named (%.0f MiB) does not work: %s", mib, r.msg);
        rc = run_model(raw_path, 1ull << 30, PINFER_IO_AUTO, -1, PINFER_SPARSE_OFF, 1, &r);
        CHECKF(rc == PINFER_EINVAL && strstr(r.msg, "prepare"), "unprepared model: rc %d: %s", rc, r.msg);
    }

    /* a read error in the middle of decoding */
    {
        struct run r = { .lg = off.lg };
        setenv("PINFER_IO_FAULT", "eio@40", 1);
        int rc = run_model(prep_path, fixed + (64 << 10), PINFER_IO_PREAD, 0, PINFER_SPARSE_PREDICTOR, 32, &r);
        unsetenv("PINFER_IO_FAULT");
        CHECKF(rc == PINFER_EIO && r.steps_done < 32, "injected EIO: rc %d after %d steps: %s", rc, r.steps_done, r.msg);
        printf("injected read error: rc %d after %d steps: %s\n", rc, r.steps_done, r.msg);
        setenv("PINFER_IO_FAULT", "short@40", 1);
        rc = run_model(prep_path, fixed + (64 << 10), PINFER_IO_AUTO, 0, PINFER_SPARSE_PREDICTOR, 32, &r);
        unsetenv("PINFER_IO_FAULT");
        CHECKF(rc == PINFER_EIO && r.steps_done < 32, "injected short read: rc %d after %d steps: %s", rc, r.steps_done, r.msg);
    }

    /* the file truncated while running: load, then cut the file, then decode */
    {
        char cut[600];
        snprintf(cut, sizeof cut, "%s/cut.gguf", tu_tmpdir());
        size_t len;
        char *bytes = tu_read_file(prep_path, &len);
        FILE *f = bytes ? fopen(cut, "wb") : NULL;
        CHECK(f && fwrite(bytes, 1, len, f) == len);
        if (f) fclose(f);
        free(bytes);
        struct pinfer_model *m = NULL;
        struct pinfer_ctx *c = NULL;
        struct pinfer_model_params mp = pinfer_model_default_params();
        mp.mem_budget = fixed + (64 << 10);
        CHECK(pinfer_model_load(&m, cut, &mp) == 0);
        struct pinfer_ctx_params cp = pinfer_ctx_default_params();
        cp.n_ctx = N_CTX;
        cp.n_batch = 8;
        cp.n_threads = 2;
        cp.cache_hot = 0;
        cp.sparse = PINFER_SPARSE_ORACLE; /* reads every slot it lacks */
        CHECK(m && pinfer_ctx_new(&c, m, &cp) == 0);
        if (c) {
            CHECK(truncate(cut, (off_t)(len / 3)) == 0);
            int32_t t = 1;
            int rc = 0, i;
            for (i = 0; i < 8 && rc == 0; i++) rc = pinfer_decode(c, &t, 1, i, false);
            CHECKF(rc == PINFER_EIO, "decode after truncation: rc %d", rc);
            printf("file truncated while running: rc %d at step %d: %s\n", rc, i, pinfer_last_error());
            CHECK(pinfer_decode(c, &t, 1, i, false) == PINFER_EIO); /* sticky */
        }
        pinfer_ctx_free(c);
        pinfer_model_free(m);
    }
    /* a prepared file whose layers' bundles differ in type (so in slot size): under a budget the
       cache keeps each layer's slot size (issue 15, defect 1: it crashed or overran the staging
       area before); the same logits as in memory, bit for bit, with evictions on every token */
    {
        char mixed[600];
        snprintf(mixed, sizeof mixed, "%s/mixed.gguf", tu_tmpdir());
        CHECK(write_mixed(prep_path, mixed) == 0);
        const int steps = 32;
        struct run r = { .lg = off.lg };
        int rc = run_model(mixed, 0, PINFER_IO_AUTO, -1, PINFER_SPARSE_PREDICTOR, steps, &mem);
        CHECKF(rc == 0 && mem.steps_done == steps, "mixed types in memory: rc %d: %s", rc, mem.msg);
        g_prefetch = true; /* the mixed file's fixed segment (larger slots, larger staging) */
        rc = run_model(mixed, 1ull << 30, PINFER_IO_AUTO, -1, PINFER_SPARSE_PREDICTOR, 1, &r);
        g_prefetch = false;
        const uint64_t mfixed = r.cs.fixed_bytes;
        CHECKF(rc == 0 && mfixed > 0, "%s", r.msg);
        for (int k = 0; k < 2; k++) {
            g_prefetch = k == 1;
            rc = run_model(mixed, mfixed + (k ? 256 << 10 : 64 << 10), PINFER_IO_AUTO, k ? 0.5f : 0, PINFER_SPARSE_PREDICTOR, steps, &r);
            g_prefetch = false;
            CHECKF(rc == 0 && r.steps_done == steps && diff_rows(&mem, &r, nv, steps) == 0,
                   "mixed types under a budget: rc %d, %d rows differ: %s", rc, rc ? -1 : diff_rows(&mem, &r, nv, steps), r.msg);
            printf("mixed bundle types (q8_0 then q4_0) under a budget%s: %d steps bit-identical to in memory, %llu evictions\n",
                   k ? ", hot 0.5, read-ahead" : "", r.steps_done, (unsigned long long)r.cs.evictions);
        }
    }
    /* a K-quant model whose odd layers keep ffn_down in Q6_K (llama.cpp's Q4_K_M does so):
       bundles of Q4_K gate and up rows with Q6_K down columns next to all-Q4_K ones, oracle and
       predictor modes under a budget that evicts on every token == in memory, bit for bit */
    {
        char kraw[600], kprep[600];
        snprintf(kraw, sizeof kraw, "%s/kq-raw.gguf", tu_tmpdir());
        snprintf(kprep, sizeof kprep, "%s/kq-prep.gguf", tu_tmpdir());
        CHECK(tu_make_kquant(kraw, kprep, PINFER_ACT_DRELU, 5, true, 240, 100) == 0);
        const int knv = n_vocab_of(kprep), steps = 48;
        struct run km = { .lg = malloc(sizeof(float) * (size_t)knv * (N_STEPS + 1)) };
        struct run ko = { .lg = malloc(sizeof(float) * (size_t)knv * (N_STEPS + 1)) };
        g_prefetch = true;
        int rc = run_model(kprep, 1ull << 30, PINFER_IO_AUTO, -1, PINFER_SPARSE_PREDICTOR, 1, &ko);
        g_prefetch = false;
        const uint64_t kfixed = ko.cs.fixed_bytes;
        CHECKF(rc == 0 && kfixed > 0, "%s", ko.msg);
        for (int mode = 0; mode < 2 && rc == 0; mode++) {
            enum pinfer_sparse_mode sm = mode == 0 ? PINFER_SPARSE_PREDICTOR : PINFER_SPARSE_ORACLE;
            rc = run_model(kprep, 0, PINFER_IO_AUTO, -1, sm, steps, &km);
            CHECKF(rc == 0 && km.steps_done == steps, "K-quant model in memory: rc %d: %s", rc, km.msg);
            for (int k = 0; k < 2 && rc == 0; k++) {
                g_prefetch = k == 1;
                rc = run_model(kprep, kfixed + (k ? 256 << 10 : 64 << 10), PINFER_IO_AUTO, k ? 0.5f : 0, sm, steps, &ko);
                g_prefetch = false;
                int bad = rc ? -1 : diff_rows(&km, &ko, knv, steps);
                CHECKF(rc == 0 && ko.steps_done == steps && bad == 0 && !memcmp(km.tk, ko.tk, sizeof km.tk),
                       "K-quant %s under a budget: rc %d, %d rows differ: %s", pinfer_sparse_mode_name(sm), rc, bad, ko.msg);
                CHECK(ko.cs.misses > 0 && ko.cs.evictions > 0);
                printf("K-quant (q4_K, q6_K down in odd layers), %s under a budget%s: %d steps bit-identical to in memory, "
                       "%llu evictions\n", pinfer_sparse_mode_name(sm), k ? ", hot 0.5, read-ahead" : "", ko.steps_done,
                       (unsigned long long)ko.cs.evictions);
            }
        }
        free(km.lg);
        free(ko.lg);
    }
    /* the file replaced or cut between parsing and reading (issue 15, defect 4) */
    check_changed_file("replaced while loading, in memory", 0, true, true, &mem, &off, nv);
    check_changed_file("replaced while loading, budget", fixed + (64 << 10), true, true, &mem, &off, nv);
    check_changed_file("replaced before the cache opened", fixed + (64 << 10), true, false, &mem, &off, nv);
    check_changed_file("cut while loading, in memory", 0, false, true, &mem, &off, nv);
    check_changed_file("cut before the cache opened", fixed + (64 << 10), false, false, &mem, &off, nv);
    free(mem.lg);
    free(off.lg);
    TEST_DONE();
}
