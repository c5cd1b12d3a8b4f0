/* pinfer iobench: the direct-I/O roof of this machine's storage, as src/io reaches it. Random
 * reads at offsets aligned to the block size, spread over the whole file (and, with --seq,
 * sequential reads), queue_depth of them kept in flight for a fixed time, per backend and block
 * size; prints a markdown table of GB/s (1e9 bytes/s) and IOPS. The planner and the neuron cache
 * size their reads by these figures.
 *
 * The one sub-command that includes a src/ header (io/io.h) rather than pinfer.h: it measures
 * the internal I/O layer itself, which the public API does not expose. */
#include "args.h"
#include "cmds.h"
#include "pinfer.h"

#include "io/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *C = "iobench";

#define MAX_BS 16
#define MAX_BACKENDS 3

static void usage(void)
{
    printf("usage: pinfer iobench -f FILE [--backend auto|uring|pread] [--bs 4k,16k,64k,256k,1m] [--qd 32]\n"
           "                      [--seconds 3] [--seq] [-t N]\n"
           "  -f FILE        file to read (direct I/O; its size bounds the offsets)\n"
           "  --backend B    auto, uring or pread, or a comma list of them (auto)\n"
           "  --bs LIST      block sizes, multiples of 4k: 4096, 4k, 1m (4k,16k,64k,256k,1m)\n"
           "  --qd N         reads kept in flight (32)\n"
           "  --seconds S    time per row (3)\n"
           "  --seq          also sequential reads, for every block size\n"
           "  -t N           pread backend: worker threads (the queue depth)\n");
}

/* "4096", "4k", "16K", "1m": a multiple of 4 KiB from 4 KiB to 64 MiB. */
static bool parse_bs(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *s == '-') return false;
    if (*end == 'k' || *end == 'K') { v <<= 10; end++; }
    else if (*end == 'm' || *end == 'M') { v <<= 20; end++; }
    if (*end || v == 0 || v % PF_IO_ALIGN || v > (64u << 20)) return false;
    *out = (size_t)v;
    return true;
}

static int parse_list(const char *flag, const char *s, bool bs, size_t *vals, enum pf_io_backend *bes)
{
    char buf[256];
    int n = 0;
    if (strlen(s) >= sizeof buf) return args_usage_error(C, "%s: list too long", flag), -1;
    strcpy(buf, s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == (bs ? MAX_BS : MAX_BACKENDS)) return args_usage_error(C, "%s: too many values", flag), -1;
        if (bs && !parse_bs(t, &vals[n]))
            return args_usage_error(C, "%s expects sizes that are multiples of 4k up to 64m, got '%s'", flag, t), -1;
        if (!bs) {
            if (!strcmp(t, "auto")) bes[n] = PF_IO_AUTO;
            else if (!strcmp(t, "uring")) bes[n] = PF_IO_URING;
            else if (!strcmp(t, "pread")) bes[n] = PF_IO_PREAD;
            else return args_usage_error(C, "%s expects auto, uring or pread, got '%s'", flag, t), -1;
        }
        n++;
    }
    if (n == 0) return args_usage_error(C, "%s: empty list", flag), -1;
    return n;
}

struct row {
    double gbs, iops;
};

/* One row: io.h's pf_io_bench. */
static int measure(struct pf_io *io, char *buf, size_t bs, int qd, double secs, bool seq, struct row *r)
{
    return pf_io_bench(io, buf, bs, qd, secs, seq, &r->gbs, &r->iops) ? args_pinfer_error(C) : 0;
}

static void size_str(size_t b, char *out, size_t cap)
{
    if (b % (1u << 20) == 0) snprintf(out, cap, "%zuM", b >> 20);
    else snprintf(out, cap, "%zuK", b >> 10);
}

int cmd_iobench(int argc, char **argv)
{
    const char *file = NULL;
    size_t bs[MAX_BS] = { 4u << 10, 16u << 10, 64u << 10, 256u << 10, 1u << 20 };
    enum pf_io_backend bes[MAX_BACKENDS] = { PF_IO_AUTO };
    int n_bs = 5, n_be = 1;
    long qd = 32, threads = 0;
    float secs = 3;
    bool seq = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else if (!strcmp(a, "--seq")) seq = true;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { ARGS_TAKE(); file = v; }
        else if (!strcmp(a, "--backend")) { ARGS_TAKE(); if ((n_be = parse_list(a, v, false, NULL, bes)) < 0) return 2; }
        else if (!strcmp(a, "--bs")) { ARGS_TAKE(); if ((n_bs = parse_list(a, v, true, bs, NULL)) < 0) return 2; }
        else if (!strcmp(a, "--qd")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 256, &qd)) return 2; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 256, &threads)) return 2; }
        else if (!strcmp(a, "--seconds")) { ARGS_TAKE(); if (!args_float(C, a, v, 0.01, 3600, &secs)) return 2; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (!file) return args_usage_error(C, "no file given (-f FILE)");
    size_t max_bs = 0;
    for (int i = 0; i < n_bs; i++) max_bs = bs[i] > max_bs ? bs[i] : max_bs;
    char *buf = pf_io_alloc(max_bs * (size_t)qd);
    if (!buf) return args_pinfer_error(C);

    int rc = 0;
    bool header = false;
    for (int e = 0; e < n_be && !rc; e++) {
        struct pf_io *io = NULL;
        struct pf_io_params p = pf_io_default_params();
        p.backend = bes[e];
        p.queue_depth = (int)qd;
        p.n_threads = threads ? (int)threads : (int)qd;
        if (pf_io_open(&io, file, &p)) { rc = args_pinfer_error(C); break; }
        if (pf_io_file_size(io) < max_bs) {
            rc = args_error(C, "%s is smaller than the largest block size (%zu bytes)", file, max_bs);
            pf_io_close(io);
            break;
        }
        if (!header) {
            printf("# %s: %.2f GiB, direct I/O, %.2f s per row; pread backend: %d threads\n\n", file,
                   (double)pf_io_file_size(io) / (1u << 30), secs, p.n_threads);
            printf("| backend | pattern | block | QD | GB/s | IOPS |\n| --- | --- | ---: | ---: | ---: | ---: |\n");
            header = true;
        }
        for (int pass = 0; pass < (seq ? 2 : 1) && !rc; pass++) {
            for (int i = 0; i < n_bs && !rc; i++) {
                struct row r = { 0, 0 };
                char b[32];
                if ((rc = measure(io, buf, bs[i], (int)qd, secs, pass == 1, &r))) break;
                size_str(bs[i], b, sizeof b);
                printf("| %s | %s | %s | %ld | %.3f | %.0f |\n", pf_io_backend_name(io), pass ? "seq" : "random", b,
                       qd, r.gbs, r.iops);
                fflush(stdout);
            }
        }
        pf_io_close(io);
    }
    pf_io_free(buf, max_bs * (size_t)qd);
    return rc;
}
