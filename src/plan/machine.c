/* pinfer probe's measurements and the look-ups into them (machine.h). */
#include "plan/machine.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/membw.h"
#include "core/threadpool.h"
#include "io/io.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

const size_t pf_mach_rows[PF_MACH_ROWS] = { 1u << 10, 2u << 10, 4u << 10, 8u << 10, 16u << 10, 32u << 10 };
const size_t pf_mach_bs[PF_MACH_BS] = { 4u << 10, 8u << 10, 16u << 10, 32u << 10, 64u << 10, 128u << 10, 256u << 10, 1u << 20 };
const int pf_mach_qd[PF_MACH_QD] = { 1, 8, 32, 64 };
const char *const pf_mach_be[PF_MACH_BE] = { "uring", "pread" };

#define MEM_BUF (512u << 20) /* far beyond any L3 of this class of machine */
#define TMP_FILE (256u << 20)

int pf_machine_identify(struct pf_machine *mc, const char *path)
{
    snprintf(mc->cpu, sizeof mc->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && c) {
            c += strspn(c + 1, " \t") + 1;
            c[strcspn(c, "\n")] = 0;
            snprintf(mc->cpu, sizeof mc->cpu, "%s", c);
            break;
        }
    }
    if (f) fclose(f);
    struct utsname u;
    snprintf(mc->kernel, sizeof mc->kernel, "%s", uname(&u) == 0 ? u.release : "unknown");
    struct stat st;
    if (stat(path, &st) != 0) return pf_fail(PINFER_EIO, "%s: %s", path, strerror(errno));
    snprintf(mc->disk, sizeof mc->disk, "dev %u:%u", major(st.st_dev), minor(st.st_dev));
    mc->cores = pf_cpu_count();
    return 0;
}

static void note(const struct pf_probe_params *p, const char *what)
{
    if (p->progress) fprintf(stderr, "pinfer probe: %s\n", what);
}

/* ==== Memory ==== */

static int probe_memory(struct pf_machine *mc, const struct pf_probe_params *p)
{
    unsigned char *buf = malloc(MEM_BUF);
    if (!buf) return pf_fail(PINFER_ENOMEM, "cannot allocate %u MiB for the memory probe", MEM_BUF >> 20);
    for (size_t i = 0; i < MEM_BUF; i += 4096) buf[i] = (unsigned char)(i >> 12); /* touched: resident */
    mc->n_t = mc->cores < PF_MACH_MAX_T ? mc->cores : PF_MACH_MAX_T;
    int rc = 0;
    for (int t = 1; t <= mc->n_t && !rc; t++) {
        struct pf_pool *pool;
        if ((rc = pf_pool_new(&pool, t))) break;
        double best = 0;
        for (int r = 0; r < 3; r++) best = fmax(best, pf_membw_stream(pool, buf, MEM_BUF));
        mc->stream_gbs[t - 1] = best;
        for (int k = 0; k < PF_MACH_ROWS; k++) {
            double b = 0;
            for (int r = 0; r < 2; r++) b = fmax(b, pf_membw_scatter(pool, buf, MEM_BUF, pf_mach_rows[k], 6));
            mc->scatter_gbs[t - 1][k] = b;
        }
        pf_pool_free(pool);
        if (p->progress)
            fprintf(stderr, "pinfer probe: memory, %d thread%s: streaming %.1f GB/s, scattered 8 KiB rows %.1f GB/s\n", t,
                    t > 1 ? "s" : "", mc->stream_gbs[t - 1], mc->scatter_gbs[t - 1][3]);
    }
    free(buf);
    return rc;
}

/* ==== Kernels ==== */

/* Seconds per call of y = W x (n_tok tokens) on one thread, W n_out x n_in of type. */
static double time_matmul(int type, int64_t n_in, int64_t n_out, int n_tok, const void *w, const float *x, float *y,
                          void *scratch)
{
    int calls = 0;
    double t0 = pf_now(), dt;
    do {
        pf_matmul(NULL, y, w, type, n_in, n_out, x, n_tok, scratch);
        calls++;
        dt = pf_now() - t0;
    } while (dt < 0.15);
    return dt / calls;
}

static int probe_type(struct pf_machine *mc, int type)
{
    const struct pf_kernels *k = pf_kernels();
    const int64_t n_in = 4096, n_tok = 64;
    size_t row;
    if (type < 0 || type >= PF_TYPE_COUNT || !k->from_f32[type] || !pf_row_size(type, n_in, &row)) return 0;
    const int64_t n_out = (int64_t)((512u << 10) / row); /* ~512 KiB of weights: in L2 */
    size_t sc = pf_matmul_scratch_size(type, n_in, (int)n_tok);
    if (sc == SIZE_MAX) return 0;
    char *w = malloc(row * (size_t)n_out);
    float *x = malloc(sizeof *x * (size_t)(n_in * n_tok)), *y = malloc(sizeof *y * (size_t)(n_out * n_tok));
    void *scratch = malloc(sc + 64);
    int rc = 0;
    if (!w || !x || !y || !scratch) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto out; }
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (int64_t i = 0; i < n_in * n_tok; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    for (int64_t r = 0; r < n_out; r++) k->from_f32[type](x + (r % n_tok) * n_in, w + (size_t)r * row, n_in);
    double t1 = time_matmul(type, n_in, n_out, 1, w, x, y, scratch);
    double tg = time_matmul(type, n_in, n_out, (int)n_tok, w, x, y, scratch);
    mc->matvec_gbs[type] = (double)row * (double)n_out / t1 / 1e9;
    mc->gemm_gmacs[type] = (double)n_in * (double)n_out * (double)n_tok / tg / 1e9;
    mc->type_done[type] = true;
out:
    free(w); free(x); free(y); free(scratch);
    return rc;
}

/* ==== Storage ==== */

/* A file of TMP_FILE pseudo-random bytes (never holes: a hole reads without touching the disk)
 * in dir; its path into *out (malloc'd). */
static int make_tmp_file(const char *dir, char **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/pinfer-probe.%ld.tmp", dir ? dir : ".", (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return pf_fail(PINFER_EIO, "cannot create the probe's file %s: %s", path, strerror(errno));
    uint64_t *blk = malloc(1u << 20), s = 0x9E3779B97F4A7C15ull;
    int rc = blk ? 0 : pf_fail(PINFER_ENOMEM, "out of memory");
    for (size_t done = 0; !rc && done < TMP_FILE; done += 1u << 20) {
        for (size_t i = 0; i < (1u << 20) / 8; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; blk[i] = s; }
        if (write(fd, blk, 1u << 20) != (ssize_t)(1u << 20))
            rc = pf_fail(PINFER_EIO, "writing the probe's file %s: %s", path, errno ? strerror(errno) : "short write");
    }
    if (!rc && fsync(fd) != 0) rc = pf_fail(PINFER_EIO, "fsync %s: %s", path, strerror(errno));
    free(blk);
    close(fd);
    if (rc) { unlink(path); return rc; }
    if (!(*out = strdup(path))) { unlink(path); return pf_fail(PINFER_ENOMEM, "out of memory"); }
    return 0;
}

static int probe_storage(struct pf_machine *mc, const struct pf_probe_params *p, const char *path)
{
    const int qd_max = pf_mach_qd[PF_MACH_QD - 1];
    char *buf = aligned_alloc(PF_IO_ALIGN, (size_t)qd_max * pf_mach_bs[PF_MACH_BS - 1]);
    if (!buf) return pf_fail(PINFER_ENOMEM, "out of memory");
    int rc = 0;
    for (int be = 0; be < PF_MACH_BE && !rc; be++) {
        struct pf_io_params ip = pf_io_default_params();
        ip.backend = be == 0 ? PF_IO_URING : PF_IO_PREAD;
        ip.queue_depth = qd_max;
        ip.n_threads = qd_max;
        struct pf_io *io = NULL;
        if (pf_io_open(&io, path, &ip)) { /* no io_uring here, say: the other backend only */
            if (p->progress) fprintf(stderr, "pinfer probe: storage, %s: unavailable (%s)\n", pf_mach_be[be], pinfer_last_error());
            continue;
        }
        mc->be_ok[be] = true;
        for (int b = 0; b < PF_MACH_BS && !rc; b++)
            for (int q = 0; q < PF_MACH_QD && !rc; q++)
                rc = pf_io_bench(io, buf, pf_mach_bs[b], pf_mach_qd[q], p->io_secs > 0 ? p->io_secs : 0.3, false,
                                 &mc->io_gbs[be][b][q], &mc->iops[be][b][q]);
        pf_io_close(io);
        if (!rc && p->progress)
            fprintf(stderr, "pinfer probe: storage, %s: 8 KiB reads %.0f IOPS at depth 64, 1 MiB reads %.2f GB/s\n",
                    pf_mach_be[be], mc->iops[be][1][3], mc->io_gbs[be][7][3]);
    }
    free(buf);
    if (!rc && !mc->be_ok[0] && !mc->be_ok[1]) rc = pf_fail(PINFER_EIO, "no direct reads of %s work", path);
    return rc;
}

int pf_machine_probe(struct pf_machine *mc, const struct pf_probe_params *p)
{
    char *tmp = NULL;
    int rc = 0;
    if (!p->file) {
        note(p, "writing a 256 MiB file to measure the disk");
        if ((rc = make_tmp_file(p->dir, &tmp))) return rc;
    }
    const char *path = p->file ? p->file : tmp;
    memset(mc, 0, sizeof *mc);
    if ((rc = pf_machine_identify(mc, path))) goto out;
    note(p, "memory bandwidth");
    if ((rc = probe_memory(mc, p))) goto out;
    note(p, "kernels");
    for (int i = 0; i < p->n_types && !rc; i++) {
        rc = probe_type(mc, p->types[i]);
        if (!rc && p->progress && mc->type_done[p->types[i]])
            fprintf(stderr, "pinfer probe: kernels, %s: matvec %.1f GB/s, 64-token product %.1f GMAC/s per thread\n",
                    pf_type_name(p->types[i]), mc->matvec_gbs[p->types[i]], mc->gemm_gmacs[p->types[i]]);
    }
    if (!rc) {
        note(p, "storage (direct reads)");
        rc = probe_storage(mc, p, path);
    }
out:
    if (tmp) { unlink(tmp); free(tmp); }
    return rc;
}

/* ==== Look-ups ==== */

static int clamp_t(const struct pf_machine *mc, int t)
{
    if (t < 1) t = 1;
    return t > mc->n_t ? mc->n_t : t;
}

double pf_machine_stream(const struct pf_machine *mc, int threads)
{
    return mc->n_t ? mc->stream_gbs[clamp_t(mc, threads) - 1] : 0;
}

/* Linear interpolation of v[] over x[] in log x, clamped at the ends. */
static double interp_log(const double *v, const double *x, int n, double at)
{
    if (at <= x[0]) return v[0];
    for (int i = 1; i < n; i++)
        if (at <= x[i]) {
            double f = (log(at) - log(x[i - 1])) / (log(x[i]) - log(x[i - 1]));
            return v[i - 1] + f * (v[i] - v[i - 1]);
        }
    return v[n - 1];
}

double pf_machine_scatter(const struct pf_machine *mc, int threads, size_t row_bytes)
{
    if (!mc->n_t) return 0;
    double x[PF_MACH_ROWS];
    for (int k = 0; k < PF_MACH_ROWS; k++) x[k] = (double)pf_mach_rows[k];
    return interp_log(mc->scatter_gbs[clamp_t(mc, threads) - 1], x, PF_MACH_ROWS, (double)row_bytes);
}

double pf_machine_iops(const struct pf_machine *mc, int be, size_t bs, int qd)
{
    if (be < 0 || be >= PF_MACH_BE || !mc->be_ok[be]) return 0;
    double xb[PF_MACH_BS], xq[PF_MACH_QD], at_q[PF_MACH_BS];
    for (int q = 0; q < PF_MACH_QD; q++) xq[q] = (double)pf_mach_qd[q];
    for (int b = 0; b < PF_MACH_BS; b++) {
        xb[b] = (double)pf_mach_bs[b];
        at_q[b] = interp_log(mc->iops[be][b], xq, PF_MACH_QD, (double)qd);
    }
    return interp_log(at_q, xb, PF_MACH_BS, (double)bs);
}

int pf_machine_best_backend(const struct pf_machine *mc, size_t bs, int qd)
{
    return pf_machine_iops(mc, 1, bs, qd) > pf_machine_iops(mc, 0, bs, qd) ? 1 : 0;
}
