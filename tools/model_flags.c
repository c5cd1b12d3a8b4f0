/* The model and context flags of run, eval, bench and perplexity (model_flags.h): one table
 * gives each flag's spellings, group and help line, so a flag cannot be listed in one place
 * and parsed differently in another. */
#include "model_flags.h"

#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ==== The flags ==== */

enum flag_id { F_PLAN, F_MODEL, F_THREADS, F_CTX, F_BATCH, F_MMAP, F_NO_MMAP, F_CHECK, F_NO_CHECK, F_SPARSE, F_TARGET, F_CALIB, F_VERIFY, F_BUDGET, F_IO, F_IO_DEPTH, F_HOT, F_PREFETCH, F_STAGE, F_IDEAL };

static const struct flag_spec {
    const char *name, *alias; /* long spelling; the short one or NULL */
    unsigned group;           /* MODEL_FLAGS_*; 0 = every command */
    bool value;               /* takes a value */
    const char *help;         /* its help line(s); NULL = not listed */
} flags[] = {
    [F_PLAN] = { "--plan", NULL, 0, true,
                 "      --plan FILE         settings from pinfer plan (budget, sparse mode, cache split, I/O,\n"
                 "                          threads); flags given explicitly win\n" },
    [F_MODEL] = { "--model", "-m", 0, true, "  -m, --model FILE        GGUF model\n" },
    [F_THREADS] = { "--threads", "-t", MODEL_FLAGS_THREADS, true, "  -t, --threads N         threads (default: all cores)\n" },
    [F_CTX] = { "--ctx-size", "-c", MODEL_FLAGS_CTX, true,
                "  -c, --ctx-size N        context length (default: the model's; run: at most 4096)\n" },
    [F_BATCH] = { "--batch-size", "-b", MODEL_FLAGS_BATCH, true, "  -b, --batch-size N      prompt batch size (default 512)\n" },
    [F_MMAP] = { "--mmap", NULL, MODEL_FLAGS_MMAP, false,
                 "      --mmap              run from the file mapping instead of copying weights to memory\n"
                 "                          (the file must not change meanwhile: if it is truncated, pinfer\n"
                 "                          stops with an error at the next read of a lost page)\n" },
    [F_NO_MMAP] = { "--no-mmap", NULL, MODEL_FLAGS_MMAP, false, NULL },
    [F_CHECK] = { "--check-tensors", NULL, 0, false, NULL },
    [F_NO_CHECK] = { "--no-check-tensors", NULL, 0, false,
                     "      --no-check-tensors  skip the load-time check that weights and block scales are\n"
                     "                          finite (one pass over the weights; with --mmap it reads the file)\n" },
    [F_SPARSE] = { "--sparse", NULL, 0, true,
                   "      --sparse MODE       FFN of generated tokens: off, oracle, predictor, threshold (default off)\n" },
    [F_TARGET] = { "--sparsity-target", NULL, 0, true,
                   "      --sparsity-target S threshold mode: fraction of FFN neurons to skip (default 0.5)\n" },
    [F_CALIB] = { "--calib", NULL, 0, true, "      --calib FILE        threshold mode: calibrate the per-layer cuts on this text\n" },
    [F_VERIFY] = { "--sparse-verify", NULL, 0, false,
                   "      --sparse-verify     also evaluate skipped neurons to report recall (slow)\n" },
    [F_BUDGET] = { "--mem-budget", NULL, MODEL_FLAGS_BUDGET, true,
                   "      --mem-budget SIZE   hard memory limit: bytes, K/M/G suffix, or P% of the model file;\n"
                   "                          the FFN stays in the file and a neuron cache serves it (prepared models)\n" },
    [F_IO] = { "--io", NULL, MODEL_FLAGS_BUDGET, true,
               "      --io BACKEND        direct reads under a budget: auto, uring, pread (default auto)\n" },
    [F_IO_DEPTH] = { "--io-depth", NULL, MODEL_FLAGS_BUDGET, true,
                     "      --io-depth N        under a budget: reads in flight at most (default 128)\n" },
    [F_HOT] = { "--cache-hot", NULL, MODEL_FLAGS_BUDGET, true,
                "      --cache-hot F       under a budget: share of FFN memory pinned for hot neurons (0.9)\n" },
    [F_PREFETCH] = { "--prefetch", NULL, MODEL_FLAGS_BUDGET, false,
                     "      --prefetch          under a budget, predictor mode: read the next layer's likely neurons\n"
                     "                          during its attention (a second staging area)\n" },
    [F_STAGE] = { "--stage-bytes", NULL, MODEL_FLAGS_BUDGET, true,
                  "      --stage-bytes SIZE  under a budget: staging area for one step's reads (K/M/G; default a\n"
                  "                          layer's FFN, at most 16M)\n" },
    [F_IDEAL] = { "--sparse-ideal", NULL, 0, true,
                  "      --sparse-ideal F    benchmark aid, predictor mode: read every round(1/F)-th neuron instead of\n"
                  "                          asking the predictor (the bytes of a perfect predictor; the text is not the model's)\n" },
};
#define N_FLAGS (int)(sizeof flags / sizeof *flags)

static bool takes(const struct model_flags *f, int id)
{
    return flags[id].group == 0 || (f->groups & flags[id].group);
}

/* The flag spelt a among those f takes, or -1. */
static int find(const struct model_flags *f, const char *a)
{
    for (int id = 0; id < N_FLAGS; id++)
        if (takes(f, id) && (!strcmp(a, flags[id].name) || (flags[id].alias && !strcmp(a, flags[id].alias)))) return id;
    return -1;
}

/* --mem-budget SIZE in bytes (file_size for P%); false if malformed. */
static bool parse_size(const char *s, uint64_t file_size, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || !isfinite(v)) return false;
    double mul = 1;
    if (!strcmp(end, "%")) {
        if (v > 1000 || file_size == 0) return false;
        mul = (double)file_size / 100;
    } else if (*end) {
        static const char *units[] = { "K", "M", "G", "T" };
        int u = -1;
        for (int k = 0; k < 4; k++)
            if (!strncasecmp(end, units[k], 1)) u = k;
        if (u < 0) return false;
        const char *rest = end + 1;
        if (*rest && strcasecmp(rest, "iB") && strcasecmp(rest, "B")) return false;
        mul = pow(1024, u + 1);
    }
    double b = v * mul;
    if (b < 1 || b > 1e18) return false;
    *out = (uint64_t)b;
    return true;
}

bool model_flags_size(const char *s, uint64_t file_size, uint64_t *out) { return parse_size(s, file_size, out); }

void model_flags_init(struct model_flags *f, unsigned groups)
{
    f->groups = groups;
    f->model = NULL;
    f->calib = NULL;
    f->mem_budget = NULL;
    f->mp = pinfer_model_default_params();
    f->cp = pinfer_ctx_default_params();
    f->given = 0;
    f->plan_path = NULL;
    f->has_plan = false;
}

int model_flags_parse(const char *cmd, int argc, char **argv, int *i, struct model_flags *f)
{
    const char *a = argv[*i], *v = NULL;
    const int id = find(f, a);
    if (id < 0) return 0;
    if (flags[id].value) {
        if (*i + 1 >= argc) { args_usage_error(cmd, "flag %s needs a value", a); return -1; }
        v = argv[++*i];
    }
    long n;
    uint64_t bytes;
    f->given |= 1u << id;
    switch ((enum flag_id)id) {
    case F_PLAN: f->plan_path = v; break;
    case F_MODEL: f->model = v; break;
    case F_THREADS:
        if (!args_int(cmd, a, v, 1, 1024, &n)) return -1;
        f->cp.n_threads = (int)n;
        break;
    case F_CTX:
        if (!args_int(cmd, a, v, 0, 1 << 22, &n)) return -1;
        f->cp.n_ctx = (int)n;
        break;
    case F_BATCH:
        if (!args_int(cmd, a, v, 1, 1 << 16, &n)) return -1;
        f->cp.n_batch = (int)n;
        break;
    case F_MMAP: f->mp.use_mmap = true; break;
    case F_NO_MMAP: f->mp.use_mmap = false; break;
    case F_CHECK: f->mp.check_tensors = true; break;
    case F_NO_CHECK: f->mp.check_tensors = false; break;
    case F_SPARSE:
        if (pinfer_sparse_mode_parse(v, &f->cp.sparse)) { args_usage_error(cmd, "%s", pinfer_last_error()); return -1; }
        break;
    case F_TARGET:
        if (!args_float(cmd, a, v, 0, 0.999, &f->cp.sparsity_target)) return -1;
        break;
    case F_CALIB: f->calib = v; break;
    case F_VERIFY: f->cp.sparse_verify = true; break;
    case F_BUDGET:
        /* the form is checked now, against a stand-in file size; P% is resolved at load */
        if (!parse_size(v, 100, &bytes)) {
            args_usage_error(cmd, "--mem-budget '%s' is not a size (examples: 2G, 1500M, 60%%)", v);
            return -1;
        }
        f->mem_budget = v;
        break;
    case F_IO:
        if (!strcmp(v, "auto")) f->cp.io_backend = PINFER_IO_AUTO;
        else if (!strcmp(v, "uring")) f->cp.io_backend = PINFER_IO_URING;
        else if (!strcmp(v, "pread")) f->cp.io_backend = PINFER_IO_PREAD;
        else { args_usage_error(cmd, "--io '%s': choose auto, uring or pread", v); return -1; }
        break;
    case F_IO_DEPTH: {
        long d;
        if (!args_int(cmd, a, v, 1, 4096, &d)) return -1;
        f->cp.io_depth = (int)d;
        break;
    }
    case F_HOT:
        if (!args_float(cmd, a, v, 0, 1, &f->cp.cache_hot)) return -1;
        break;
    case F_PREFETCH: f->cp.prefetch = true; break;
    case F_STAGE:
        if (v[0] == '-' || strchr(v, '%') || !parse_size(v, 0, &bytes) || bytes == 0) {
            args_usage_error(cmd, "--stage-bytes '%s' is not a size (examples: 16M, 65536)", v);
            return -1;
        }
        f->cp.stage_bytes = bytes;
        break;
    case F_IDEAL:
        if (!args_float(cmd, a, v, 0, 1, &f->cp.sparse_ideal)) return -1;
        break;
    }
    return 1;
}

/* --plan: each setting applied unless its flag was given; one line on stderr says which. */
static int apply_plan(const char *cmd, struct model_flags *f)
{
    struct plan_file *p = &f->plan;
    int rc = plan_load(cmd, f->plan_path, p);
    if (rc) return rc;
    f->has_plan = true;
    char applied[512] = "", kept[512] = "";
#define SET(id_, cond_, what_, ...) do { \
        char *dst_ = (f->given & (1u << (id_))) ? kept : applied; \
        if (!(f->given & (1u << (id_))) && (cond_)) { __VA_ARGS__; } \
        if (cond_) snprintf(dst_ + strlen(dst_), sizeof applied - strlen(dst_), " %s", what_); \
    } while (0)
    char b[64], t[32], h[32], io[48], sp[48], qd[32];
    snprintf(f->plan_budget, sizeof f->plan_budget, "%llu", (unsigned long long)p->mem_budget);
    snprintf(b, sizeof b, "--mem-budget %.0fM", (double)p->mem_budget / (1 << 20));
    snprintf(t, sizeof t, "-t %d", p->threads);
    snprintf(h, sizeof h, "--cache-hot %.2f", p->cache_hot);
    snprintf(io, sizeof io, "--io %s", p->io_backend == PINFER_IO_URING ? "uring" : p->io_backend == PINFER_IO_PREAD ? "pread" : "auto");
    snprintf(sp, sizeof sp, "--sparse %s", pinfer_sparse_mode_name(p->sparse));
    const bool budget = p->mem_budget > 0 && (f->groups & MODEL_FLAGS_BUDGET);
    SET(F_BUDGET, budget, b, f->mem_budget = f->plan_budget);
    SET(F_HOT, budget, h, f->cp.cache_hot = p->cache_hot);
    SET(F_IO, budget, io, f->cp.io_backend = p->io_backend);
    snprintf(qd, sizeof qd, "--io-depth %d", p->io_depth);
    SET(F_IO_DEPTH, budget && p->io_depth > 0, qd, f->cp.io_depth = p->io_depth);
    SET(F_PREFETCH, budget && p->prefetch, "--prefetch", f->cp.prefetch = true);
    SET(F_SPARSE, true, sp, f->cp.sparse = p->sparse);
    SET(F_THREADS, (f->groups & MODEL_FLAGS_THREADS) != 0, t, f->cp.n_threads = p->threads);
    char c[32];
    snprintf(c, sizeof c, "-c %d", p->ctx_size);
    SET(F_CTX, p->ctx_size > 0 && (f->groups & MODEL_FLAGS_CTX), c, f->cp.n_ctx = p->ctx_size);
    char bb[32];
    snprintf(bb, sizeof bb, "-b %d", p->batch_size);
    SET(F_BATCH, p->batch_size > 0 && (f->groups & MODEL_FLAGS_BATCH), bb, f->cp.n_batch = p->batch_size);
#undef SET
    fprintf(stderr, "pinfer %s: plan %s:%s%s%s%s (predicted %.2f tok/s decode)\n", cmd, f->plan_path,
            *applied ? applied : " nothing applied", *kept ? "; given on the command line instead of the plan's:" : "", kept,
            p->mem_budget == 0 ? " (no budget: the whole model in memory)" : "", p->decode_tps);
    return 0;
}

int model_flags_check(const char *cmd, struct model_flags *f)
{
    if (!f->model) return args_usage_error(cmd, "no model given (-m FILE)");
    if (f->plan_path) return apply_plan(cmd, f) ? 1 : 0;
    return 0;
}

void model_flags_help(const struct model_flags *f)
{
    for (int id = 0; id < N_FLAGS; id++)
        if (flags[id].help && takes(f, id)) fputs(flags[id].help, stdout);
}

/* ==== The model and its context ==== */

int model_flags_load(const char *cmd, const struct model_flags *f, struct pinfer_model **m)
{
    struct pinfer_model_params mp = f->mp;
    if (f->mem_budget) {
        struct stat st;
        uint64_t fsz = stat(f->model, &st) == 0 ? (uint64_t)st.st_size : 0;
        if (!parse_size(f->mem_budget, fsz, &mp.mem_budget))
            return args_usage_error(cmd, "--mem-budget '%s' cannot be resolved (is %s readable?)", f->mem_budget, f->model);
    }
    if (pinfer_model_load(m, f->model, &mp)) return args_pinfer_error(cmd);
    return 0;
}

uint64_t model_flags_budget_bytes(const struct model_flags *f)
{
    struct stat st;
    uint64_t b = 0;
    if (f->mem_budget && !parse_size(f->mem_budget, stat(f->model, &st) == 0 ? (uint64_t)st.st_size : 0, &b)) b = 0;
    return b;
}

/* Calibrates ctx's threshold cuts on the text of --calib. 0 or 1 (error printed). */
static int calibrate(const char *cmd, const struct model_flags *f, struct pinfer_model *m, struct pinfer_ctx *ctx)
{
    if (f->cp.sparse != PINFER_SPARSE_THRESHOLD) return args_error(cmd, "--calib is for --sparse threshold");
    size_t len;
    char *text = args_read_file(cmd, f->calib, &len);
    if (!text) return 1;
    int n = pinfer_tokenize(m, text, len, true, NULL, 0);
    int32_t *ids = n > 0 ? malloc(sizeof *ids * (size_t)n) : NULL;
    int rc = 0;
    if (n <= 0 || !ids) rc = args_error(cmd, "%s: %s", f->calib, n < 0 ? pinfer_last_error() : n == 0 ? "no tokens" : "out of memory");
    else if ((n = pinfer_tokenize(m, text, len, true, ids, n)) < 0 || pinfer_ctx_calibrate(ctx, ids, n))
        rc = args_error(cmd, "calibrating on %s: %s", f->calib, pinfer_last_error());
    free(ids);
    free(text);
    return rc;
}

int model_flags_ctx_new(const char *cmd, const struct model_flags *f, struct pinfer_model *m,
                        struct pinfer_ctx **ctx)
{
    if (pinfer_ctx_new(ctx, m, &f->cp)) return args_pinfer_error(cmd);
    if (f->calib && calibrate(cmd, f, m, *ctx)) {
        pinfer_ctx_free(*ctx);
        *ctx = NULL;
        return 1;
    }
    return 0;
}

/* ==== Reports ==== */

void model_flags_sparse_report(FILE *fp, const struct model_flags *f, const struct pinfer_model *m,
                               struct pinfer_ctx *ctx)
{
    const enum pinfer_sparse_mode mode = f->cp.sparse;
    struct pinfer_sparse_stats s;
    if (mode == PINFER_SPARSE_OFF || pinfer_ctx_sparse_stats(ctx, -1, &s) || s.n_tokens == 0) return;
    fprintf(fp, "pinfer: sparse %s: %.1f MB read per token (predictors %.1f MB); per layer: gate %.1f%%, up %.1f%%, "
                "down %.1f%% of neurons",
            pinfer_sparse_mode_name(mode), s.bytes / 1e6, s.pred_bytes / 1e6, 100 * s.gate_frac, 100 * s.up_frac,
            100 * s.down_frac);
    if (s.cluster_frac >= 0) fprintf(fp, ", clusters %.1f%%", 100 * s.cluster_frac);
    if (s.pred_frac >= 0) fprintf(fp, ", predicted %.1f%%", 100 * s.pred_frac);
    fprintf(fp, ", computed non-zero %.1f%%", 100 * s.active_frac);
    if (s.true_frac >= 0) fprintf(fp, ", truly non-zero %.1f%%", 100 * s.true_frac);
    if (s.recall >= 0 && mode != PINFER_SPARSE_ORACLE) fprintf(fp, ", recall %.4f", s.recall);
    if (s.precision >= 0 && mode == PINFER_SPARSE_PREDICTOR) fprintf(fp, ", precision %.4f", s.precision);
    if (mode == PINFER_SPARSE_THRESHOLD) fprintf(fp, ", mean cut %.4g", s.threshold);
    fputc('\n', fp);
    if (!f->cp.sparse_verify || mode == PINFER_SPARSE_ORACLE) return;
    /* per-layer recall (and precision) of the neurons the mode chose */
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    double lo = 2;
    int worst = -1;
    fprintf(fp, "pinfer: per-layer recall%s:", mode == PINFER_SPARSE_PREDICTOR ? " / precision" : " (L1 mass)");
    for (int l = 0; l < info.n_layer; l++) {
        struct pinfer_sparse_stats sl;
        if (pinfer_ctx_sparse_stats(ctx, l, &sl)) break;
        if (mode == PINFER_SPARSE_PREDICTOR) fprintf(fp, " %d:%.4f/%.3f", l, sl.recall, sl.precision);
        else fprintf(fp, " %d:%.4f", l, sl.recall);
        if (sl.recall < lo) { lo = sl.recall; worst = l; }
    }
    fprintf(fp, "\npinfer: lowest recall %.4f (layer %d)\n", lo, worst);
}

void model_flags_budget_report(FILE *fp, const struct pinfer_model *m, struct pinfer_ctx *ctx, uint64_t n_tok, double decode_s)
{
    struct pinfer_cache_stats s;
    if (pinfer_ctx_cache_stats(ctx, &s)) return;
    const double MiB = 1 << 20;
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    fprintf(fp, "pinfer: budget %.0f MiB = fixed %.0f + hot %.0f (%d neurons/%s) + cold %.0f (%d entries); io %s, depth %d\n",
            s.budget / MiB, s.fixed_bytes / MiB, s.hot_bytes / MiB, s.hot_slots, info.n_expert ? "expert, mean" : "layer",
            s.cold_bytes / MiB, s.cold_entries, s.io_backend, s.io_depth);
    if (n_tok == 0) return;
    const uint64_t need = s.hits + s.misses + s.prefetch_used, bytes = s.bytes_read + s.prefetch_bytes;
    fprintf(fp, "pinfer: cache hit rate %.1f%% of the slots steps needed, read ahead %.1f%%, read on demand %.1f%% | "
                "%.2f MB/token from storage in %.0f reads/token (read ahead: %.2f MB, %.0f%% of it used) | "
                "I/O wait %.1f%% of decode | storage %.2f GB/s while decoding\n",
            need ? 100.0 * (double)s.hits / (double)need : 0.0, need ? 100.0 * (double)s.prefetch_used / (double)need : 0.0,
            need ? 100.0 * (double)s.misses / (double)need : 0.0, (double)bytes / 1e6 / (double)n_tok,
            (double)(s.reads + s.prefetch_reads) / (double)n_tok, (double)s.prefetch_bytes / 1e6 / (double)n_tok,
            s.prefetch_slots ? 100.0 * (double)s.prefetch_used / (double)s.prefetch_slots : 0.0,
            decode_s > 0 ? 100 * s.io_wait_s / decode_s : 0.0, decode_s > 0 ? (double)bytes / 1e9 / decode_s : 0.0);
    if (s.expert_guesses)
        fprintf(fp, "pinfer: experts guessed before each layer's attention: %llu of %llu chosen by the router (%.1f%%)\n",
                (unsigned long long)s.expert_guess_hits, (unsigned long long)s.expert_guesses,
                100.0 * (double)s.expert_guess_hits / (double)s.expert_guesses);
}
