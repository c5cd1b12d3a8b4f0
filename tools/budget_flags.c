/* Parsing and reporting of the memory-budget flags (budget_flags.h). */
#include "budget_flags.h"

#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void budget_flags_init(struct budget_flags *f)
{
    f->budget = NULL;
    f->io = PINFER_IO_AUTO;
    f->cache_hot = -1;
}

bool budget_parse_size(const char *s, uint64_t file_size, uint64_t *out)
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

int budget_flags_parse(const char *cmd, int argc, char **argv, int *i, struct budget_flags *f)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (strcmp(a, "--mem-budget") && strcmp(a, "--io") && strcmp(a, "--cache-hot")) return 0;
    if (!v) { args_usage_error(cmd, "flag %s needs a value", a); return -1; }
    ++*i;
    if (!strcmp(a, "--mem-budget")) {
        uint64_t dummy;
        if (!budget_parse_size(v, 100, &dummy)) {
            args_usage_error(cmd, "--mem-budget '%s' is not a size (examples: 2G, 1500M, 60%%)", v);
            return -1;
        }
        f->budget = v;
    } else if (!strcmp(a, "--io")) {
        if (!strcmp(v, "auto")) f->io = PINFER_IO_AUTO;
        else if (!strcmp(v, "uring")) f->io = PINFER_IO_URING;
        else if (!strcmp(v, "pread")) f->io = PINFER_IO_PREAD;
        else { args_usage_error(cmd, "--io '%s': choose auto, uring or pread", v); return -1; }
    } else if (!args_float(cmd, a, v, 0, 1, &f->cache_hot)) {
        return -1;
    }
    return 1;
}

int budget_flags_apply(const char *cmd, const struct budget_flags *f, const char *model_path,
                       struct pinfer_model_params *mp, struct pinfer_ctx_params *cp)
{
    cp->io_backend = f->io;
    cp->cache_hot = f->cache_hot;
    if (!f->budget) return 0;
    struct stat st;
    uint64_t fsz = stat(model_path, &st) == 0 ? (uint64_t)st.st_size : 0;
    if (!budget_parse_size(f->budget, fsz, &mp->mem_budget))
        return args_usage_error(cmd, "--mem-budget '%s' cannot be resolved (is %s readable?)", f->budget, model_path);
    return 0;
}

void budget_flags_report(FILE *fp, struct pinfer_ctx *ctx, uint64_t n_tok, double decode_s)
{
    struct pinfer_cache_stats s;
    if (pinfer_ctx_cache_stats(ctx, &s)) return;
    const double MiB = 1 << 20;
    fprintf(fp, "pinfer: budget %.0f MiB = fixed %.0f + hot %.0f (%d neurons/layer) + cold %.0f (%d entries); io %s\n",
            s.budget / MiB, s.fixed_bytes / MiB, s.hot_bytes / MiB, s.hot_slots, s.cold_bytes / MiB, s.cold_entries,
            s.io_backend);
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
}
