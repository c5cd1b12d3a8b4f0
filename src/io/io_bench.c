/* The direct-read roof of a file's storage (io.h, pf_io_bench): what `pinfer iobench` prints and
 * `pinfer probe` records for the planner. */
#include "io/io.h"

#include "core/clock.h"
#include "core/error.h"

#include <stdlib.h>

int pf_io_bench(struct pf_io *io, char *buf, size_t bs, int qd, double secs, bool seq, double *gbs, double *iops)
{
    const uint64_t nblk = pf_io_file_size(io) / bs;
    if (nblk == 0 || qd < 1) return pf_fail(PINFER_EINVAL, "a file of at least one %zu-byte block and a queue depth >= 1", bs);
    uint64_t rng = 0x9E3779B97F4A7C15ull, next = 0, tags[256];
    int free_n = 0, rc = 0;
    int *free_buf = malloc((size_t)qd * sizeof *free_buf);
    if (!free_buf) return pf_fail(PINFER_ENOMEM, "out of memory");
    for (int i = 0; i < qd; i++) free_buf[free_n++] = i;
    struct pf_io_stats s0, s1;
    pf_io_get_stats(io, &s0);
    const double t0 = pf_now(), stop = t0 + secs;
    while (pf_now() < stop) {
        while (free_n) {
            uint64_t b;
            if (seq) { b = next++; if (next == nblk) next = 0; }
            else { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; b = rng % nblk; }
            int k = free_buf[--free_n];
            if ((rc = pf_io_read(io, b * bs, bs, buf + (size_t)k * bs, (uint64_t)k)) < 0) goto out;
        }
        int n = pf_io_reap(io, tags, 256, 1);
        if (n < 0) { rc = n; goto out; }
        for (int i = 0; i < n; i++) free_buf[free_n++] = (int)tags[i];
    }
    while (pf_io_pending(io) > 0)
        if ((rc = pf_io_reap(io, tags, 256, 1)) < 0) goto out;
    rc = 0;
    const double dt = pf_now() - t0;
    pf_io_get_stats(io, &s1);
    *gbs = (double)(s1.bytes - s0.bytes) / dt / 1e9;
    *iops = (double)(s1.reads - s0.reads) / dt;
out:
    free(free_buf);
    return rc < 0 ? rc : 0;
}
