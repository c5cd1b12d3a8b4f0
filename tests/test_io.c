/* src/io: direct-I/O reads through io_uring, the pread pool and AUTO, checked byte for byte
 * against the file as plain stdio reads it; more reads queued than the queue depth; every tag back
 * exactly once; the argument checks; a missing file; injected faults (PINFER_IO_FAULT); a file
 * truncated after open; closing with reads in flight; and `pinfer iobench`'s flag errors and a
 * short run. Files live in a temp dir removed at the end. */
#include "testutil.h"

#include "core/error.h"
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define A PF_IO_ALIGN

static char dir[1024], path[1100], tpath[1100];
static unsigned char *ref;  /* the file's bytes, read with stdio */
static size_t ref_len;

static void write_random_file(const char *p, size_t n, unsigned long long seed)
{
    FILE *fp = fopen(p, "wb");
    if (!fp) TEST_SKIP("cannot create %s", p);
    for (size_t i = 0; i < n; i += 8) {
        unsigned long long r = tu_rand(&seed);
        fwrite(&r, 1, n - i < 8 ? n - i : 8, fp);
    }
    if (fclose(fp) != 0) TEST_SKIP("cannot write %s", p);
}

static bool has(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* Expected destination bytes of a read: the file's bytes, zeros past its end. */
static bool matches(const unsigned char *dst, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char want = off + i < ref_len ? ref[off + i] : 0;
        if (dst[i] != want) {
            fprintf(stderr, "byte %zu of the read at %llu: %02x, want %02x\n", i, (unsigned long long)off, dst[i], want);
            return false;
        }
    }
    return true;
}

static struct pf_io_params params(enum pf_io_backend b, int qd)
{
    struct pf_io_params p = pf_io_default_params();
    p.backend = b;
    p.queue_depth = qd;
    p.n_threads = 3;
    return p;
}

/* ==== Correct reads ==== */

#define NREAD 200

/* NREAD random aligned reads (4 KiB .. 128 KiB, one of 2 MiB, one of the file's last partial
 * block), at most 40 queued ahead, reaped alternately with min 0 and min > 0. */
static void check_reads(enum pf_io_backend b, const char *want_name)
{
    struct pf_io *io;
    struct pf_io_params p = params(b, 8);
    int rc = pf_io_open(&io, path, &p);
    if (rc == PINFER_EUNSUPPORTED && b == PF_IO_URING) { printf("uring unavailable here: %s\n", pinfer_last_error()); return; }
    CHECKF(rc == 0, "open: %s", pinfer_last_error());
    if (rc) return;
    if (want_name) CHECKF(!strcmp(pf_io_backend_name(io), want_name), "backend %s", pf_io_backend_name(io));
    printf("backend %d -> %s\n", (int)b, pf_io_backend_name(io));
    CHECK(pf_io_file_size(io) == ref_len);

    unsigned long long seed = 1234 + (unsigned)b;
    uint64_t blocks = (ref_len + A - 1) / A;
    static uint64_t off[NREAD];
    static size_t len[NREAD];
    static unsigned char *buf[NREAD];
    int seen[NREAD] = { 0 };
    uint64_t want_bytes = 0;
    for (int i = 0; i < NREAD; i++) {
        size_t nb = 1 + tu_rand(&seed) % 32;
        if (i == 17) nb = 512;                      /* 2 MiB */
        if (nb > blocks) nb = blocks;
        off[i] = (tu_rand(&seed) % (blocks - nb + 1)) * A;
        if (i == 3) off[i] = (blocks - nb) * A;     /* ends in the partial last block */
        len[i] = nb * A;
        buf[i] = pf_io_alloc(len[i]);
        memset(buf[i], 0xAA, len[i]);               /* a byte left unwritten shows */
        want_bytes += off[i] + len[i] > ref_len ? ref_len - off[i] : len[i];
    }
    int queued = 0, got = 0, rounds = 0;
    uint64_t tags[16];
    while (got < NREAD) {
        while (queued < NREAD && pf_io_pending(io) < 40) {
            rc = pf_io_read(io, off[queued], len[queued], buf[queued], 1000 + (uint64_t)queued);
            CHECKF(rc == 0, "read %d: %s", queued, pinfer_last_error());
            if (rc) goto out;
            queued++;
        }
        CHECK(pf_io_pending(io) == queued - got);
        if (rounds % 3 == 0) CHECK(pf_io_submit(io) == 0);
        int min = rounds % 2 ? 0 : 3;
        int n = pf_io_reap(io, tags, 5, min);
        CHECKF(n >= 0, "reap: %s", pinfer_last_error());
        if (n < 0) goto out;
        CHECK(n <= 5);
        CHECK(min == 0 || n >= (queued - got < min ? queued - got : min));
        for (int k = 0; k < n; k++) {
            int i = (int)(tags[k] - 1000);
            CHECKF(i >= 0 && i < queued, "tag %llu", (unsigned long long)tags[k]);
            if (i < 0 || i >= queued) goto out;
            seen[i]++;
            CHECKF(matches(buf[i], off[i], len[i]), "read %d: %zu bytes at %llu", i, len[i], (unsigned long long)off[i]);
        }
        got += n;
        rounds++;
    }
    for (int i = 0; i < NREAD; i++) CHECKF(seen[i] == 1, "tag %d came back %d times", i, seen[i]);
    CHECK(pf_io_pending(io) == 0);
    CHECK(pf_io_reap(io, tags, 16, 5) == 0); /* min beyond what is pending: no wait */
    struct pf_io_stats st;
    pf_io_get_stats(io, &st);
    CHECKF(st.reads == NREAD && st.bytes == want_bytes, "stats %llu reads %llu bytes, want %d %llu",
           (unsigned long long)st.reads, (unsigned long long)st.bytes, NREAD, (unsigned long long)want_bytes);
    CHECK(st.wait_s >= 0);
out:
    pf_io_close(io);
    for (int i = 0; i < NREAD; i++) pf_io_free(buf[i], len[i]);
}

/* ==== Argument errors ==== */

static void check_args(enum pf_io_backend b)
{
    struct pf_io *io = NULL;
    struct pf_io_params p = params(b, 4);
    if (pf_io_open(&io, path, &p)) return; /* check_reads reported it */
    unsigned char *buf = pf_io_alloc(4 * A);
    uint64_t aligned = (ref_len + A - 1) / A * A;
    CHECK(pf_io_read(io, 1, A, buf, 0) == PINFER_EINVAL);
    CHECK(has(pinfer_last_error(), "multiples of 4096"));
    CHECK(pf_io_read(io, A, 100, buf, 0) == PINFER_EINVAL);
    CHECK(pf_io_read(io, A, A, buf + 1, 0) == PINFER_EINVAL);
    CHECK(pf_io_read(io, A, 0, buf, 0) == PINFER_EINVAL);
    CHECK(pf_io_read(io, aligned - A, 2 * A, buf, 0) == PINFER_EINVAL);
    CHECK(has(pinfer_last_error(), "past the end"));
    CHECK(pf_io_read(io, aligned, A, buf, 0) == PINFER_EINVAL);
    CHECK(pf_io_read(io, UINT64_MAX - A + 1, 2 * A, buf, 0) == PINFER_EINVAL);
    CHECK(pf_io_reap(io, NULL, 1, 0) == PINFER_EINVAL);
    CHECK(pf_io_reap(io, NULL, 0, -1) == PINFER_EINVAL);
    CHECK(pf_io_pending(io) == 0);
    /* refused reads leave the object working */
    uint64_t tag = 0;
    CHECK(pf_io_read(io, aligned - A, A, buf, 77) == 0);
    CHECK(pf_io_reap(io, &tag, 1, 1) == 1 && tag == 77);
    CHECK(matches(buf, aligned - A, A));
    pf_io_close(io);
    pf_io_free(buf, 4 * A);

    p.queue_depth = 0;
    CHECK(pf_io_open(&io, path, &p) == PINFER_EINVAL && io == NULL);
    p = params(b, 4);
    p.n_threads = 0;
    CHECK(pf_io_open(&io, path, &p) == PINFER_EINVAL);
    p = params((enum pf_io_backend)9, 4);
    CHECK(pf_io_open(&io, path, &p) == PINFER_EINVAL);

    char missing[1200];
    snprintf(missing, sizeof missing, "%s/no-such-file", dir);
    p = params(b, 4);
    CHECK(pf_io_open(&io, missing, &p) == PINFER_EIO && io == NULL);
    CHECKF(has(pinfer_last_error(), missing), "message: %s", pinfer_last_error());
}

/* ==== Failures while reading ==== */

/* Queues n reads of 8 KiB, then reaps until the first error; returns it (0 if none came). */
static int read_until_error(struct pf_io *io, int n, unsigned char *buf)
{
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = pf_io_read(io, (uint64_t)i * 2 * A, 2 * A, buf + (size_t)i * 2 * A, (uint64_t)i);
    if (rc) return rc;
    uint64_t tags[8];
    while (pf_io_pending(io) > 0)
        if ((rc = pf_io_reap(io, tags, 8, 1)) < 0) return rc;
    return 0;
}

static void check_fault(enum pf_io_backend b, const char *spec, const char *needle)
{
    struct pf_io *io;
    struct pf_io_params p = params(b, 4);
    setenv("PINFER_IO_FAULT", spec, 1);
    int rc = pf_io_open(&io, path, &p);
    unsetenv("PINFER_IO_FAULT");
    if (rc) { CHECKF(rc == PINFER_EUNSUPPORTED, "open: %s", pinfer_last_error()); return; }
    unsigned char *buf = pf_io_alloc(24 * 2 * A);
    rc = read_until_error(io, 24, buf);
    CHECKF(rc == PINFER_EIO, "%s: reap gave %d", spec, rc);
    const char *msg = pinfer_last_error();
    printf("%s, %s: %s\n", pf_io_backend_name(io), spec, msg);
    CHECKF(has(msg, needle) && has(msg, spec) && has(msg, path) && has(msg, "offset"), "%s: message '%s'", spec, msg);
    /* the object is now for cleanup only: every call says why */
    CHECK(pf_io_read(io, 0, A, buf, 0) == PINFER_EIO);
    CHECK(pf_io_submit(io) == PINFER_EIO);
    uint64_t t;
    CHECK(pf_io_reap(io, &t, 1, 1) == PINFER_EIO);
    pf_io_close(io); /* with reads still in flight: must neither hang nor leak */
    pf_io_free(buf, 24 * 2 * A);
}

/* A copy of the file cut to half its size after pf_io_open; reads of the lost half fail. */
static void check_truncated(enum pf_io_backend b, uint64_t off, size_t len)
{
    write_random_file(tpath, 1 << 20, 99);
    struct pf_io *io;
    struct pf_io_params p = params(b, 4);
    int rc = pf_io_open(&io, tpath, &p);
    if (rc) { CHECKF(rc == PINFER_EUNSUPPORTED, "open: %s", pinfer_last_error()); return; }
    CHECK(truncate(tpath, 1 << 19) == 0);
    unsigned char *buf = pf_io_alloc(len);
    memset(buf, 0, len);
    CHECK(pf_io_read(io, off, len, buf, 5) == 0);
    uint64_t t;
    rc = pf_io_reap(io, &t, 1, 1);
    CHECKF(rc == PINFER_EIO, "%zu bytes at %llu after truncation: reap gave %d", len, (unsigned long long)off, rc);
    printf("%s, truncated: %s\n", pf_io_backend_name(io), pinfer_last_error());
    CHECKF(has(pinfer_last_error(), "truncated") && has(pinfer_last_error(), tpath), "message: %s", pinfer_last_error());
    pf_io_close(io);
    pf_io_free(buf, len);
}

/* Closing with many reads queued and in flight, none reaped. */
static void check_close_busy(enum pf_io_backend b)
{
    struct pf_io *io;
    struct pf_io_params p = params(b, 4);
    if (pf_io_open(&io, path, &p)) return;
    unsigned char *buf = pf_io_alloc(64 * 4 * A);
    for (int i = 0; i < 64; i++) CHECK(pf_io_read(io, (uint64_t)i * 4 * A, 4 * A, buf + (size_t)i * 4 * A, (uint64_t)i) == 0);
    CHECK(pf_io_submit(io) == 0);
    CHECK(pf_io_pending(io) == 64);
    pf_io_close(io);
    pf_io_free(buf, 64 * 4 * A);
}

/* ==== pinfer iobench ==== */

static int run(const char *args, char *out, size_t cap)
{
    const char *bin = getenv("PINFER_BIN");
    char cmd[4096], outp[1200];
    snprintf(outp, sizeof outp, "%s/iobench.txt", dir);
    snprintf(cmd, sizeof cmd, "timeout 60 %s iobench %s >%s 2>&1", bin, args, outp);
    int st = system(cmd);
    char *o = tu_read_file(outp, NULL);
    snprintf(out, cap, "%s", o ? o : "");
    free(o);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void check_iobench(void)
{
    const char *bin = getenv("PINFER_BIN");
    if (!bin || access(bin, X_OK) != 0) { printf("no PINFER_BIN: iobench not checked\n"); return; }
    char out[8192], args[2400];
    const char *bad[] = { "", "-f", "--bs 4k", "-f x --bs 3k", "-f x --bs 0", "-f x --qd 0", "-f x --seconds -1",
                          "-f x --backend disk", "-f x --bogus" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run(bad[i], out, sizeof out);
        CHECKF(rc == 2 && !strncmp(out, "pinfer iobench: ", 16), "'iobench %s': exit %d, '%s'", bad[i], rc, out);
    }
    snprintf(args, sizeof args, "-f %s/no-such-file", dir);
    int rc = run(args, out, sizeof out);
    CHECKF(rc == 1 && has(out, "no-such-file"), "missing file: exit %d, '%s'", rc, out);
    snprintf(args, sizeof args, "-f %s --backend pread,uring --bs 4k,64k --qd 4 --seconds 0.1 --seq", path);
    rc = run(args, out, sizeof out);
    CHECKF(rc == 0 && has(out, "| pread ") && has(out, "| 64K ") && has(out, "seq"), "iobench: exit %d, '%s'", rc, out);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(path, sizeof path, "%s/io.bin", dir);
    snprintf(tpath, sizeof tpath, "%s/io-trunc.bin", dir);
    unsetenv("PINFER_IO_FAULT");
    write_random_file(path, (3u << 20) + 1234, 42); /* the last block is partial */
    int fd = open(path, O_RDONLY | O_DIRECT);
    if (fd < 0 && errno == EINVAL) { unlink(path); TEST_SKIP("the file system under %s refuses O_DIRECT", dir); }
    if (fd >= 0) close(fd);
    ref = (unsigned char *)tu_read_file(path, &ref_len);
    if (!ref) TEST_SKIP("cannot read back %s", path);

    check_reads(PF_IO_AUTO, NULL);
    check_reads(PF_IO_URING, "uring");
    check_reads(PF_IO_PREAD, "pread");
    enum pf_io_backend all[] = { PF_IO_URING, PF_IO_PREAD };
    for (int i = 0; i < 2; i++) {
        enum pf_io_backend b = all[i];
        check_args(b);
        check_fault(b, "eio@3", "Input/output error");
        check_fault(b, "short@2", "truncated");
        check_fault(b, "eio@1", "Input/output error");
        check_truncated(b, 3u << 18, 4 * A);                   /* wholly past the new end */
        check_truncated(b, (1u << 19) - 2 * A, 8 * A);         /* across it */
        check_close_busy(b);
    }
    struct pf_io *io = NULL;
    setenv("PINFER_IO_FAULT", "eio@0", 1);
    CHECK(pf_io_open(&io, path, NULL) == PINFER_EINVAL && has(pinfer_last_error(), "PINFER_IO_FAULT"));
    setenv("PINFER_IO_FAULT", "sometimes", 1);
    CHECK(pf_io_open(&io, path, NULL) == PINFER_EINVAL);
    unsetenv("PINFER_IO_FAULT");
    pf_io_close(NULL);

    /* buffered reads (direct = false) follow the same rules; the kernel then copies only the
     * file's bytes of the last block, and pf_io zeroes the rest */
    for (int i = 0; i < 2; i++) {
        struct pf_io_params p = params(all[i], 2);
        p.direct = false;
        uint64_t t, tail = ref_len / A * A - 2 * A;
        unsigned char *buf = pf_io_alloc(3 * A);
        memset(buf, 0xAA, 3 * A);
        CHECK(pf_io_open(&io, path, &p) == 0);
        CHECK(io && pf_io_read(io, tail, 3 * A, buf, 9) == 0 && pf_io_reap(io, &t, 1, 1) == 1 && t == 9);
        CHECK(matches(buf, tail, 3 * A));
        pf_io_close(io);
        pf_io_free(buf, 3 * A);
    }

    check_iobench();

    free(ref);
    unlink(path);
    unlink(tpath);
    char f[1200];
    snprintf(f, sizeof f, "%s/iobench.txt", dir);
    unlink(f);
    rmdir(dir);
    TEST_DONE();
}
