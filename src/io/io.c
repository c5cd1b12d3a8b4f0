/* Direct-I/O reads of a model file, the part both backends share: opening, checking each read,
 * queueing beyond the queue depth, judging each result (partial read, end of file, injected
 * fault), statistics, aligned buffers. See io.h for the contract, io_internal.h for the split. */
#include "io/io_internal.h"

#include "core/checked.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PF_IO_MAX_QD 4096
#define PF_IO_MAX_THREADS 256

struct pf_io_params pf_io_default_params(void)
{
    return (struct pf_io_params){ .backend = PF_IO_AUTO, .queue_depth = 128, .n_threads = 16, .direct = true, .same_as_fd = -1 };
}

/* ==== Failures ==== */

/* Fails the io object for good (first failure wins) and leaves the message for the caller. */
static int fail_io(struct pf_io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_io(struct pf_io *io, const char *fmt, ...)
{
    if (!io->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(io->err_msg, sizeof io->err_msg, fmt, ap);
        va_end(ap);
        io->err = PINFER_EIO;
    }
    return pf_fail(io->err, "%s", io->err_msg);
}

int pf_io_fail_backend(struct pf_io *io, const char *what, int err)
{
    return fail_io(io, "%s: %s: %s", io->path, what, strerror(err));
}

/* "eio@N" or "short@N" from PINFER_IO_FAULT; absent or empty = no fault. */
static int parse_fault(struct pf_io *io)
{
    const char *s = getenv("PINFER_IO_FAULT");
    if (!s || !*s) return 0;
    const char *at = strchr(s, '@');
    char *end;
    errno = 0;
    unsigned long long n = at ? strtoull(at + 1, &end, 10) : 0;
    if (at && at[1] >= '0' && at[1] <= '9' && !errno && !*end && n > 0) {
        io->fault_at = n;
        if (at - s == 3 && !strncmp(s, "eio", 3)) io->fault = PF_IO_FAULT_EIO;
        if (at - s == 5 && !strncmp(s, "short", 5)) io->fault = PF_IO_FAULT_SHORT;
    }
    if (!io->fault) return pf_fail(PINFER_EINVAL, "PINFER_IO_FAULT: expected eio@N or short@N (N >= 1), got '%s'", s);
    return 0;
}

/* ==== Request rings ==== */

/* Makes room for need elements in a ring of esz-byte elements, unwrapping it (head becomes 0). */
static int ring_reserve(void **buf, size_t esz, size_t *cap, size_t *head, size_t n, size_t need)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64, bytes;
    while (nc < need)
        if (ck_mul(nc, 2, &nc)) return pf_fail(PINFER_ENOMEM, "io: too many reads queued");
    char *nb = ck_mul(nc, esz, &bytes) ? NULL : malloc(bytes);
    if (!nb) return pf_fail(PINFER_ENOMEM, "io: out of memory queueing %zu reads", need);
    for (size_t i = 0; i < n; i++) memcpy(nb + i * esz, (char *)*buf + (*head + i) % *cap * esz, esz);
    free(*buf);
    *buf = nb;
    *cap = nc;
    *head = 0;
    return 0;
}

static void release_slot(struct pf_io *io, int s)
{
    io->free_slots[io->n_free++] = s;
}

/* Moves queued reads into free slots and hands them to the backend. */
static int launch(struct pf_io *io)
{
    while (io->q_n && io->n_free && !io->err) {
        int s = io->free_slots[--io->n_free];
        io->slots[s] = io->queue[io->q_head];
        io->q_head = (io->q_head + 1) % io->q_cap;
        io->q_n--;
        int rc = io->ops->issue(io, s);
        if (rc) {
            release_slot(io, s);
            return rc;
        }
    }
    return io->err;
}

/* ==== Completion ==== */

static void fail_read(struct pf_io *io, const struct pf_io_req *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_read(struct pf_io *io, const struct pf_io_req *r, const char *fmt, ...)
{
    char cause[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cause, sizeof cause, fmt, ap);
    va_end(ap);
    fail_io(io, "%s: read of %zu bytes at offset %" PRIu64 ": %s", io->path, r->len, r->off, cause);
}

static void fail_truncated(struct pf_io *io, const struct pf_io_req *r)
{
    struct stat st;
    long long now = fstat(io->fd, &st) == 0 ? (long long)st.st_size : -1;
    fail_read(io, r, "file truncated: got %zu of %zu bytes (the file is now %lld bytes, was %" PRIu64 " at open)",
              r->done, r->want, now, io->size);
}

void pf_io_complete(struct pf_io *io, int s, ssize_t res)
{
    struct pf_io_req *r = &io->slots[s];
    if (io->closing || io->err) { release_slot(io, s); return; }
    bool injected = io->fault && r->seq == io->fault_at;
    if (!injected && (res == -EINTR || res == -EAGAIN)) { /* not an answer: ask again */
        if (io->ops->issue(io, s)) release_slot(io, s);
        return;
    }
    if (injected && io->fault == PF_IO_FAULT_EIO) res = -EIO;
    if (res < 0) {
        if (injected) fail_read(io, r, "%s (injected by PINFER_IO_FAULT=eio@%" PRIu64 ")", strerror(EIO), r->seq);
        else fail_read(io, r, "%s", strerror((int)-res));
        release_slot(io, s);
        return;
    }
    if (injected) { /* short@N: as if the file ended halfway through this read */
        r->done = r->want / 2;
        fail_read(io, r, "file truncated: got %zu of %zu bytes (injected by PINFER_IO_FAULT=short@%" PRIu64 ")",
                  r->done, r->want, r->seq);
        release_slot(io, s);
        return;
    }
    r->done += (size_t)res;
    if (r->done >= r->want) {
        if (r->want < r->len) memset(r->dst + r->want, 0, r->len - r->want); /* past the end of the file */
        io->done[(io->d_head + io->d_n++) % io->d_cap] = r->tag;
        io->st.reads++;
        io->st.bytes += r->want;
        release_slot(io, s);
        return;
    }
    /* A partial result: direct I/O stops early only at the end of the file (at an unaligned
     * count) or on a signal; ask for the rest, and a read that gets nothing has hit the end. */
    if (res == 0 || (r->done % PF_IO_ALIGN && io->direct)) {
        fail_truncated(io, r);
        release_slot(io, s);
        return;
    }
    if (io->ops->issue(io, s)) release_slot(io, s);
}

/* ==== Open and close ==== */

static int check_params(const struct pf_io_params *p)
{
    if (p->backend != PF_IO_AUTO && p->backend != PF_IO_URING && p->backend != PF_IO_PREAD)
        return pf_fail(PINFER_EINVAL, "io: unknown backend %d", (int)p->backend);
    if (p->queue_depth < 1 || p->queue_depth > PF_IO_MAX_QD)
        return pf_fail(PINFER_EINVAL, "io: queue depth %d out of range 1..%d", p->queue_depth, PF_IO_MAX_QD);
    if (p->n_threads < 1 || p->n_threads > PF_IO_MAX_THREADS)
        return pf_fail(PINFER_EINVAL, "io: %d threads out of range 1..%d", p->n_threads, PF_IO_MAX_THREADS);
    return 0;
}

/* Starts the backend asked for; AUTO falls back from io_uring to pread. */
static int start_backend(struct pf_io *io, enum pf_io_backend b)
{
    io->ops = b == PF_IO_PREAD ? &pf_io_pread_ops : &pf_io_uring_ops;
    int rc = io->ops->init(io);
    if (rc && b == PF_IO_AUTO) {
        io->ops = &pf_io_pread_ops;
        rc = io->ops->init(io);
    }
    if (rc) io->ops = NULL;
    return rc;
}

int pf_io_open(struct pf_io **out, const char *path, const struct pf_io_params *params)
{
    struct pf_io_params p = params ? *params : pf_io_default_params();
    struct stat st;
    int rc;
    *out = NULL;
    if ((rc = check_params(&p))) return rc;
    struct pf_io *io = calloc(1, sizeof *io);
    if (!io) return pf_fail(PINFER_ENOMEM, "io: out of memory");
    io->fd = -1;
    io->qd = p.queue_depth;
    io->n_threads = p.n_threads;
    io->direct = p.direct;
    if ((rc = parse_fault(io))) goto err;
    if (!(io->path = strdup(path))) { rc = pf_fail(PINFER_ENOMEM, "io: out of memory"); goto err; }
    if (p.same_as_fd >= 0) {
        io->fd = pf_reopen(p.same_as_fd, path, p.direct ? O_DIRECT : 0, p.same_size);
        if (io->fd < 0 && !(errno == EINVAL && p.direct)) { rc = io->fd; io->fd = -1; goto err; }
        if (io->fd < 0) io->fd = -1; /* O_DIRECT refused: said below */
    } else {
        io->fd = open(path, O_RDONLY | O_CLOEXEC | (p.direct ? O_DIRECT : 0));
    }
    if (io->fd < 0) {
        if (errno == EINVAL && p.direct)
            rc = pf_fail(PINFER_EUNSUPPORTED, "%s: the file system refuses direct I/O (O_DIRECT)", path);
        else
            rc = pf_fail(PINFER_EIO, "cannot open %s: %s", path, strerror(errno));
        goto err;
    }
    if (fstat(io->fd, &st) != 0) { rc = pf_fail(PINFER_EIO, "%s: fstat: %s", path, strerror(errno)); goto err; }
    if (!S_ISREG(st.st_mode)) { rc = pf_fail(PINFER_EIO, "%s: not a regular file", path); goto err; }
    io->size = (uint64_t)st.st_size;
    io->slots = calloc((size_t)io->qd, sizeof *io->slots);
    io->free_slots = malloc((size_t)io->qd * sizeof *io->free_slots);
    if (!io->slots || !io->free_slots) { rc = pf_fail(PINFER_ENOMEM, "io: out of memory"); goto err; }
    for (int i = io->qd - 1; i >= 0; i--) release_slot(io, i);
    if ((rc = start_backend(io, p.backend))) goto err;
    *out = io;
    return 0;
err:
    pf_io_close(io);
    return rc;
}

void pf_io_close(struct pf_io *io)
{
    if (!io) return;
    io->closing = true;
    if (io->ops) {
        /* The kernel or a worker may still write into a caller's buffer: wait for each read. */
        while (io->n_free < io->qd)
            if (io->ops->wait(io, true)) break;
        io->ops->fini(io);
    }
    if (io->fd >= 0) close(io->fd);
    free(io->path);
    free(io->slots);
    free(io->free_slots);
    free(io->queue);
    free(io->done);
    free(io);
}

int pf_io_queue_depth(const struct pf_io *io) { return io->qd; }

const char *pf_io_backend_name(const struct pf_io *io)
{
    return io->ops->name;
}

uint64_t pf_io_file_size(const struct pf_io *io)
{
    return io->size;
}

/* ==== Reading ==== */

int pf_io_pending(const struct pf_io *io)
{
    size_t n = io->q_n + (size_t)(io->qd - io->n_free) + io->d_n;
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

int pf_io_read(struct pf_io *io, uint64_t off, size_t len, void *dst, uint64_t tag)
{
    if (io->err) return pf_fail(io->err, "%s", io->err_msg);
    uint64_t end, limit = 0;
    if (off % PF_IO_ALIGN || len % PF_IO_ALIGN || (uintptr_t)dst % PF_IO_ALIGN || len == 0)
        return pf_fail(PINFER_EINVAL, "%s: read of %zu bytes at offset %" PRIu64 " into %p: offset, length and "
                       "address must be non-zero multiples of %d", io->path, len, off, dst, PF_IO_ALIGN);
    ck_align_u64(io->size, PF_IO_ALIGN, &limit);
    if (ck_add_u64(off, len, &end) || end > limit)
        return pf_fail(PINFER_EINVAL, "%s: read of %zu bytes at offset %" PRIu64 " goes past the end of the file "
                       "(%" PRIu64 " bytes)", io->path, len, off, io->size);
    size_t pend = (size_t)pf_io_pending(io) + 1;
    int rc;
    if ((rc = ring_reserve((void **)&io->queue, sizeof *io->queue, &io->q_cap, &io->q_head, io->q_n, pend)) ||
        (rc = ring_reserve((void **)&io->done, sizeof *io->done, &io->d_cap, &io->d_head, io->d_n, pend)))
        return rc;
    uint64_t left = io->size - off;
    io->queue[(io->q_head + io->q_n++) % io->q_cap] = (struct pf_io_req){
        .off = off, .len = len, .want = left < len ? (size_t)left : len, .dst = dst, .tag = tag,
        .seq = ++io->n_accepted,
    };
    return launch(io);
}

int pf_io_submit(struct pf_io *io)
{
    if (io->err) return pf_fail(io->err, "%s", io->err_msg);
    int rc = launch(io);
    return rc ? rc : io->ops->flush(io);
}

int pf_io_reap(struct pf_io *io, uint64_t *tags, int max, int min)
{
    int rc;
    if (max < 0 || min < 0 || (max > 0 && !tags))
        return pf_fail(PINFER_EINVAL, "io: reap with max %d, min %d, tags %p", max, min, (void *)tags);
    if (min > max) min = max;
    if (min > pf_io_pending(io)) min = pf_io_pending(io);
    if ((rc = pf_io_submit(io)) || (rc = io->ops->wait(io, false))) return rc;
    while (io->d_n < (size_t)min && !io->err) {
        if ((rc = pf_io_submit(io))) return rc;
        double t0 = pf_now();
        rc = io->ops->wait(io, true);
        io->st.wait_s += pf_now() - t0;
        if (rc) return rc;
    }
    /* keep the queue depth full while the caller works on what it gets back */
    if ((rc = pf_io_submit(io))) return rc;
    int n = 0;
    for (; n < max && io->d_n; n++, io->d_n--) {
        tags[n] = io->done[io->d_head];
        io->d_head = (io->d_head + 1) % io->d_cap;
    }
    return n;
}

void pf_io_get_stats(const struct pf_io *io, struct pf_io_stats *st)
{
    *st = io->st;
}

/* ==== Buffers ==== */

/* Large buffers come from mmap (returned to the system at once on free), small ones from
 * aligned_alloc (thousands of mmaps would each cost a mapping); n decides which on both sides. */
#define PF_IO_MMAP_MIN (256u << 10)

void *pf_io_alloc(size_t n)
{
    uint64_t r;
    if (n == 0 || ck_align_u64(n, PF_IO_ALIGN, &r) || r > SIZE_MAX / 2) {
        pf_fail(PINFER_EINVAL, "io: cannot allocate %zu bytes", n);
        return NULL;
    }
    void *p;
    if (r >= PF_IO_MMAP_MIN) {
        p = mmap(NULL, (size_t)r, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) p = NULL;
    } else {
        p = aligned_alloc(PF_IO_ALIGN, (size_t)r);
    }
    if (!p) pf_fail(PINFER_ENOMEM, "io: out of memory allocating %zu bytes", n);
    return p;
}

void pf_io_free(void *p, size_t n)
{
    uint64_t r;
    if (!p || ck_align_u64(n, PF_IO_ALIGN, &r)) return;
    if (r >= PF_IO_MMAP_MIN) munmap(p, (size_t)r);
    else free(p);
}
