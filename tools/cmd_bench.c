/* pinfer bench: llama-bench-style speed table. For each thread count: pp (one batch of -p
 * prompt tokens from an empty cache) and tg (-n tokens generated one at a time, each the model's own
 * seeded sample of the last: tg_run), mean ± sd over
 * -r repetitions after one warm-up. Decode is memory-bound, so tg also reports the weight bytes
 * streamed per second and that as a fraction of the machine's bandwidth roof (design.md:
 * ~42 GB/s with one thread, ~48 GB/s with two; override with --roof-gbs).
 *
 * --sparse MODE runs the generated tokens with that sparse FFN; the bytes per token are then the
 * weight bytes the FFN really read (pinfer_ctx_sparse_stats), printed in the MB/tok column, and a
 * line after each tg row says what fraction of neurons, clusters and predictor bytes that was.
 *
 * After each tg repetition the model's weights are also read once, plainly, by the same threads
 * (pinfer_ctx_read_gbs): the "read" column is the bandwidth the machine gave at that moment and
 * "of read" the decode's GB/s as a fraction of it. This VM's bandwidth moves with its neighbours
 * by up to a third, so the fraction is the figure that compares across runs.
 *
 * Under each tg row a line says where a token's time went (pinfer_ctx_time_stats), each weight
 * phase with its GB/s. In sparse modes the FFN's rate is also set against a read of scattered
 * FFN-sized rows by the same threads (pinfer_ctx_scatter_gbs), the roof of that access pattern.
 *
 * Under a budget a line gives the storage roof of the run: its reads per token at the IOPS the
 * disk gives, measured right then on the model file (pf_io_bench, as `pinfer iobench` does:
 * random direct reads of the run's mean read size, the backend and queue depth the neuron cache
 * uses, for one second), and decode as a fraction of it. This is the one place bench includes
 * a src/ header (io/io.h): the public API does not expose the I/O layer.
 *
 * --parallel LIST adds, per thread count, a table of several sequences generated at once
 * (bench_parallel.c). */
#include "args.h"
#include "bench_parallel.h"
#include "cmds.h"
#include "model_flags.h"
#include "pinfer.h"

#include "io/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *C = "bench";

static double roof_gbs(int threads, double user)
{
    if (user > 0) return user;
    return threads <= 1 ? 42.0 : 48.0;
}

/* One line under a tg row: where a token's time went, with each phase's bandwidth (the FFN's
 * bytes are what the step read, less the other phases' weights). */
static void print_phases(const struct pinfer_ctx *ctx, double bytes, double pred_bytes, double scatter_gbs)
{
    struct pinfer_time_stats ts;
    if (pinfer_ctx_time_stats(ctx, &ts) || ts.n_tokens == 0) return;
    const double ffn_bytes = bytes - ts.attn_mm_bytes - ts.head_bytes - pred_bytes;
#define GBS(b, t) ((t) > 0 ? (b) / (t) / 1e9 : 0)
    printf("  per token %.2f ms: attention matrices %.2f (%.1f GB/s), attention %.2f", 1e3 * ts.total, 1e3 * ts.attn_mm,
           GBS(ts.attn_mm_bytes, ts.attn_mm), 1e3 * ts.attn);
    if (pred_bytes > 0) printf(", predictors %.2f (%.1f GB/s)", 1e3 * ts.predictor, GBS(pred_bytes, ts.predictor));
    printf(", FFN %.2f (%.1f GB/s", 1e3 * ts.ffn, GBS(ffn_bytes, ts.ffn));
    if (scatter_gbs > 0) printf(", %.0f%% of scattered rows at %.1f", 100 * GBS(ffn_bytes, ts.ffn) / scatter_gbs, scatter_gbs);
    printf("), head %.2f (%.1f GB/s), other %.2f\n", 1e3 * ts.head, GBS(ts.head_bytes, ts.head), 1e3 * ts.other);
#undef GBS
}

/* Under a budget: the tok/s the run's reads alone allow at the disk's IOPS for their size
 * (measured now on the model file), and decode as a fraction of it. Returns those reads'
 * seconds per token (0 without a budget or reads). */
static double storage_roof_line(const struct pinfer_ctx *ctx, const char *path, uint64_t n_tok, double tps)
{
    struct pinfer_cache_stats s;
    if (pinfer_ctx_cache_stats(ctx, &s) || n_tok == 0) return 0;
    const uint64_t reads = s.reads + s.prefetch_reads, bytes = s.bytes_read + s.prefetch_bytes;
    if (reads == 0) { printf("  storage roof: no reads from storage (everything was resident)\n"); return 0; }
    const double rpt = (double)reads / (double)n_tok, mean = (double)bytes / (double)reads;
    /* the whole pages nearest the mean: reads are of mixed sizes (one slot's 2-3 pages, runs of
       several), so rounding the mean up put the roof below what a run reached */
    size_t bs = (size_t)llround(mean / PF_IO_ALIGN) * PF_IO_ALIGN;
    if (bs < PF_IO_ALIGN) bs = PF_IO_ALIGN;
    struct pf_io_params p = pf_io_default_params();
    p.backend = s.io_backend && !strcmp(s.io_backend, "pread") ? PF_IO_PREAD : PF_IO_URING;
    if (s.io_depth > 0) p.queue_depth = s.io_depth;
    struct pf_io *io = NULL;
    char *buf = pf_io_alloc(bs * (size_t)p.queue_depth);
    double gbs = 0, iops = 0;
    if (!buf) { printf("  storage roof: no memory for the read buffers\n"); return 0; }
    int rc = pf_io_open(&io, path, &p);
    if (rc == PINFER_EUNSUPPORTED && p.direct) { /* tmpfs and the like, as the neuron cache does */
        p.direct = false;
        rc = pf_io_open(&io, path, &p);
    }
    if (!rc) rc = pf_io_bench(io, buf, bs, p.queue_depth, 1.0, false, &gbs, &iops);
    pf_io_close(io);
    pf_io_free(buf, bs * (size_t)p.queue_depth);
    if (rc || iops <= 0) { printf("  storage roof: could not measure the disk (%s)\n", pinfer_last_error()); return 0; }
    const double roof = iops / rpt;
    printf("  storage roof: %.0f reads/token of %.1f KB on average; the disk gives %.0f reads/s of %zu KiB (%s, depth %d, "
           "measured now) = %.2f tok/s if a token did nothing but read; decode %.2f = %.0f%% of it\n",
           rpt, mean / 1e3, iops, bs >> 10, s.io_backend ? s.io_backend : "?", p.queue_depth, roof, tps, 100 * tps / roof);
    return rpt / iops;
}

/* The roof of the run as a whole (sparse, mixture or budget runs): its weight bytes from memory
 * at the rates the machine gives them (attention, head and predictors streaming; the FFN's rows
 * at the scattered-row rate measured in the run, streaming for a dense FFN) plus its reads from
 * storage at the IOPS measured for their size (t_io, storage_roof_line), one after the other;
 * decode as a fraction of it. */
static void run_roof_line(const struct pinfer_ctx *ctx, double bytes, double pred_bytes, double stream_gbs, double scatter_gbs,
                          double t_io, double tps)
{
    struct pinfer_time_stats ts;
    if (pinfer_ctx_time_stats(ctx, &ts) || ts.n_tokens == 0 || stream_gbs <= 0) return;
    const double dense = ts.attn_mm_bytes + ts.head_bytes + pred_bytes, ffn = bytes > dense ? bytes - dense : 0;
    const double sc = scatter_gbs > 0 ? scatter_gbs : stream_gbs;
    const double t_mem = dense / (stream_gbs * 1e9) + ffn / (sc * 1e9), roof = 1 / (t_mem + t_io);
    printf("  run roof: memory %.2f ms/token (%.0f MB at %.1f GB/s streaming, %.0f MB of FFN at %.1f GB/s %s)", 1e3 * t_mem,
           dense / 1e6, stream_gbs, ffn / 1e6, sc, scatter_gbs > 0 ? "scattered rows" : "streaming");
    if (t_io > 0) printf(" + storage %.2f ms/token", 1e3 * t_io);
    printf(" = %.2f tok/s; decode %.2f = %.0f%% of it\n", roof, tps, 100 * tps / roof);
}

/* --plan: the plan's predictions beside what this run measured. */
static void plan_line(const struct pinfer_ctx *ctx, const struct plan_file *p, double tps, uint64_t n_tok)
{
    printf("  plan: decode predicted %.2f tok/s, measured %.2f (%.0f%% of the prediction)", p->decode_tps, tps,
           p->decode_tps > 0 ? 100 * tps / p->decode_tps : 0.0);
    struct pinfer_cache_stats s;
    if (pinfer_ctx_cache_stats(ctx, &s) == 0 && n_tok > 0) {
        const uint64_t need = s.hits + s.misses + s.prefetch_used;
        printf("; hit rate predicted %.3f, measured %.3f; storage predicted %.2f MB/token, measured %.2f", p->hit_rate,
               need ? (double)(s.hits + s.prefetch_used) / (double)need : 0.0, p->storage_mb_per_token,
               (double)(s.bytes_read + s.prefetch_bytes) / 1e6 / (double)n_tok);
    }
    printf("\n");
}

static void help(const struct model_flags *mf)
{
    printf("usage: pinfer bench -m MODEL [-p 128] [-n 64] [-t 1,2] [-r 3] [--parallel 1,2,4] [--mmap] [--roof-gbs G]\n");
    model_flags_help(mf);
    printf("  -p, --n-prompt N        prompt tokens for the pp test (default 128; 0 = skip)\n"
           "  -n, --n-gen N           generated tokens for the tg test (default 64; 0 = skip)\n"
           "  -t, --threads LIST      thread counts, comma-separated, a row each (default: all cores)\n"
           "  -r, --repetitions N     runs after one warm-up (default 3)\n"
           "      --roof-gbs G        bandwidth roof in GB/s (default 42 with one thread, 48 with more)\n"
           "      --parallel LIST     also generate -n tokens for each of N sequences at once, a row per N\n"
           "                          (pinfer_decode_multi, as pinfer serve's slots), e.g. 1,2,4\n");
}

/* One tg repetition: n tokens generated one at a time from BOS, each the model's own sample
 * of the last (temperature 1, repetition penalty 1.1 over 64 tokens, seeded per repetition:
 * prepare's calibration samples so too, pf_token_feed). A sparse model's speed depends on which
 * neurons its tokens activate and, under a budget, on how those persist from token to token, so
 * tg generates as a user does; each repetition is a sequence of its own (replaying the
 * warm-up's tokens would find exactly their neurons in the cache). Only the decode calls are
 * timed, into *dt. */
static int tg_run(const struct pinfer_model *m, struct pinfer_ctx *ctx, long n, uint64_t seed, double *dt)
{
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    struct pinfer_sampler_params sp = pinfer_sampler_default_params();
    sp.temp = 1.0f; sp.top_k = 0; sp.top_p = 1.0f; sp.min_p = 0.0f;
    sp.repeat_penalty = 1.1f; sp.repeat_last_n = 64; sp.seed = seed;
    struct pinfer_sampler *smp = NULL;
    if (pinfer_sampler_new(&smp, info.n_vocab, &sp)) return args_pinfer_error(C);
    int32_t tok = pinfer_token_bos(m) >= 0 ? pinfer_token_bos(m) : 0;
    int rc = 0;
    *dt = 0;
    for (long i = 0; i < n; i++) {
        pinfer_sampler_accept(smp, tok);
        double t0 = pinfer_now();
        if (pinfer_decode(ctx, &tok, 1, (int)i, false)) { rc = args_pinfer_error(C); break; }
        *dt += pinfer_now() - t0;
        tok = pinfer_sampler_sample(smp, pinfer_ctx_logits(ctx, -1));
    }
    pinfer_sampler_free(smp);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    long n_prompt = 128, n_gen = 64, reps = 3;
    int threads[16] = { 0 }, n_thr = 0, par[16] = { 0 }, n_par = 0;
    float roof = 0;
    struct model_flags mf; /* -t is bench's own: a list of thread counts, one row each */
    model_flags_init(&mf, MODEL_FLAGS_MMAP | MODEL_FLAGS_BUDGET);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int took = model_flags_parse(C, argc, argv, &i, &mf);
        if (took < 0) return 2;
        if (took) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(&mf); return 0; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) { ARGS_TAKE(); if (!args_int(C, a, v, 0, 1 << 16, &n_prompt)) return 2; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) { ARGS_TAKE(); if (!args_int(C, a, v, 0, 1 << 16, &n_gen)) return 2; }
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 1000, &reps)) return 2; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { ARGS_TAKE(); if ((n_thr = args_int_list(C, a, v, 1, 1024, threads, 16)) < 0) return 2; }
        else if (!strcmp(a, "--parallel")) { ARGS_TAKE(); if ((n_par = args_int_list(C, a, v, 1, 256, par, 16)) < 0) return 2; }
        else if (!strcmp(a, "--roof-gbs")) { ARGS_TAKE(); if (!args_float(C, a, v, 0.001, 1e6, &roof)) return 2; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (model_flags_check(C, &mf)) return 2;
    if (n_thr == 0) { threads[0] = 0; n_thr = 1; }
    const bool sparse = mf.cp.sparse != PINFER_SPARSE_OFF;

    struct pinfer_model *m = NULL;
    int lrc = model_flags_load(C, &mf, &m);
    if (lrc) return lrc;
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    char desc[256];
    pinfer_model_desc(m, desc, sizeof desc);
    const double tg_bytes = (double)info.decode_bytes;
    printf("model: %s\n\n", desc);
    printf("| model | size | params | threads | test | t/s | MB/tok | GB/s | roof | read GB/s | of read |\n");
    printf("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");

    int rc = 0;
    int32_t *toks = malloc(sizeof *toks * (size_t)(n_prompt > 0 ? n_prompt : 1));
    if (!toks) { pinfer_model_free(m); return args_error(C, "out of memory"); }
    for (long i = 0; i < n_prompt; i++) toks[i] = (int32_t)((i * 7919 + 13) % info.n_vocab);
    double *ts = calloc((size_t)reps * 3, sizeof *ts), *rd = ts + reps, *sg = rd + reps;
    if (!ts) { free(toks); pinfer_model_free(m); return args_error(C, "out of memory"); }

    /* the context the tests need, or -c / the plan's if larger (a budget's fixed segment holds
       the KV cache: a plan made for a context of N tokens is measured with that context) */
    if (mf.has_plan && mf.plan.ctx_size > mf.cp.n_ctx) mf.cp.n_ctx = mf.plan.ctx_size;
    if (mf.cp.n_ctx < (int)(n_prompt + n_gen + 1)) mf.cp.n_ctx = (int)(n_prompt + n_gen + 1);
    mf.cp.n_batch = (int)(n_prompt > 0 ? n_prompt : 1);
    /* with a plan, its batch: the buffers it holds are part of the budget's fixed segment */
    if (mf.has_plan && mf.plan.batch_size > mf.cp.n_batch) mf.cp.n_batch = mf.plan.batch_size;
    for (int ti = 0; ti < n_thr && rc == 0; ti++) {
        struct pinfer_ctx *ctx = NULL;
        mf.cp.n_threads = threads[ti];
        if (model_flags_ctx_new(C, &mf, m, &ctx)) { rc = 1; break; }
        int nt = threads[ti] ? threads[ti] : pinfer_cpu_count();
        double tg_time = 0;
        for (int test = 0; test < 2 && rc == 0; test++) {
            long n = test == 0 ? n_prompt : n_gen;
            if (n == 0) continue;
            for (long r = -1; r < reps; r++) { /* r = -1: warm-up */
                if (r == 0) { pinfer_ctx_sparse_stats_reset(ctx); pinfer_ctx_cache_stats_reset(ctx); pinfer_ctx_time_stats_reset(ctx); tg_time = 0; }
                pinfer_ctx_reset(ctx);
                double t0 = pinfer_now(), dt = 0;
                if (test == 0) {
                    if (pinfer_decode(ctx, toks, (int)n, 0, false)) { rc = args_pinfer_error(C); break; }
                    dt = pinfer_now() - t0;
                } else if ((rc = tg_run(m, ctx, n, (uint64_t)(r + 2), &dt))) {
                    break;
                }
                if (r >= 0) ts[r] = (double)n / dt;
                if (r >= 0 && test == 1) tg_time += dt;
                if (r >= 0 && test == 1) rd[r] = pinfer_ctx_read_gbs(ctx);
                if (r >= 0 && test == 1 && sparse) sg[r] = pinfer_ctx_scatter_gbs(ctx);
            }
            if (rc) break;
            double mean, sd;
            bench_mean_sd(ts, (int)reps, &mean, &sd);
            if (test == 0) {
                printf("| %s | %.2f GiB | %.2f B | %d | pp%ld | %.2f ± %.2f | | | | | |\n", pinfer_type_name(info.weight_type),
                       (double)info.weight_bytes / (1u << 30), (double)info.n_params / 1e9, nt, n, mean, sd);
                if (mf.has_plan)
                    printf("  plan: prefill predicted %.1f tok/s, measured %.1f (%.0f%% of the prediction)\n",
                           mf.plan.prefill_tps, mean, mf.plan.prefill_tps > 0 ? 100 * mean / mf.plan.prefill_tps : 0.0);
            }
            else {
                struct pinfer_sparse_stats st;
                double bytes = tg_bytes, pred_bytes = 0;
                if (sparse && pinfer_ctx_sparse_stats(ctx, -1, &st) == 0 && st.n_tokens > 0) {
                    bytes = st.bytes;
                    pred_bytes = st.pred_bytes;
                }
                double gbs = mean * bytes / 1e9, rmean, rsd, frac = 0;
                bench_mean_sd(rd, (int)reps, &rmean, &rsd);
                for (long r = 0; r < reps; r++) frac += rd[r] > 0 ? ts[r] * bytes / 1e9 / rd[r] / (double)reps : 0;
                char rcol[64] = "", fcol[32] = "";
                if (rmean > 0) {
                    snprintf(rcol, sizeof rcol, "%.1f ± %.1f", rmean, rsd);
                    snprintf(fcol, sizeof fcol, "%.0f%%", 100 * frac);
                }
                printf("| %s | %.2f GiB | %.2f B | %d | tg%ld%s%s | %.2f ± %.2f | %.0f | %.1f | %.0f%% of %.0f | %s | %s |\n", pinfer_type_name(info.weight_type),
                       (double)info.weight_bytes / (1u << 30), (double)info.n_params / 1e9, nt, n,
                       sparse ? " " : "", sparse ? pinfer_sparse_mode_name(mf.cp.sparse) : "",
                       mean, sd, bytes / 1e6, gbs, 100.0 * gbs / roof_gbs(nt, roof), roof_gbs(nt, roof), rcol, fcol);
                fflush(stdout);
                double smean = 0, ssd;
                if (sparse) bench_mean_sd(sg, (int)reps, &smean, &ssd);
                print_phases(ctx, bytes, pred_bytes, smean);
                model_flags_sparse_report(stdout, &mf, m, ctx);
                model_flags_budget_report(stdout, m, ctx, (uint64_t)(n * reps), tg_time);
                const double t_io = storage_roof_line(ctx, mf.model, (uint64_t)(n * reps), (double)(n * reps) / tg_time);
                if (sparse || info.n_expert || mf.mp.mem_budget)
                    run_roof_line(ctx, bytes, pred_bytes, rmean > 0 ? rmean : roof_gbs(nt, roof), smean, t_io, (double)(n * reps) / tg_time);
                if (mf.has_plan) plan_line(ctx, &mf.plan, mean, (uint64_t)(n * reps));
            }
            fflush(stdout);
        }
        pinfer_ctx_free(ctx);
        if (rc == 0 && n_par > 0 && n_gen > 0) {
            struct model_flags pf = mf;
            pf.cp.n_threads = threads[ti];
            rc = bench_parallel(C, &pf, m, par, n_par, n_gen, reps, nt);
        }
    }
    if (rc == 0) printf("\npeak memory (RSS) %.1f MiB\n", (double)pinfer_peak_rss() / (1 << 20));
    free(ts);
    free(toks);
    pinfer_model_free(m);
    return rc;
}
