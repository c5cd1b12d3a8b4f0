/* The io_uring backend: one ring per io object, sized to the queue depth. A slot's read is one
 * submission entry whose user data is the slot index; its completion goes to pf_io_complete.
 * io.c never has more than queue_depth reads in flight, so the submission ring (queue_depth
 * rounded up to a power of two) always has an entry free for them and the completion ring
 * (twice that) cannot overflow. */
#include "io/io_internal.h"

#include "core/error.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

/* io_uring reads take a 32-bit length; longer reads go in pieces (pf_io_complete continues). */
#define URING_MAX_LEN (1u << 30)

struct uring_be {
    struct io_uring ring;
};

static int uring_init(struct pf_io *io)
{
    struct uring_be *b = calloc(1, sizeof *b);
    if (!b) return pf_fail(PINFER_ENOMEM, "io: out of memory");
    int rc = io_uring_queue_init((unsigned)io->qd, &b->ring, 0);
    if (rc < 0) {
        free(b);
        return pf_fail(PINFER_EUNSUPPORTED, "io_uring unavailable: io_uring_queue_init: %s", strerror(-rc));
    }
    io->be = b;
    return 0;
}

static int uring_flush(struct pf_io *io)
{
    struct uring_be *b = io->be;
    for (;;) {
        int rc = io_uring_submit(&b->ring);
        if (rc >= 0) return 0;
        /* busy: entries stay in the ring and go with the next submit_and_wait */
        if (rc == -EAGAIN || rc == -EBUSY) return 0;
        if (rc != -EINTR) return pf_io_fail_backend(io, "io_uring_submit", -rc);
    }
}

static int uring_issue(struct pf_io *io, int s)
{
    struct uring_be *b = io->be;
    struct pf_io_req *r = &io->slots[s];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
    if (!sqe) {
        int rc = uring_flush(io);
        if (rc) return rc;
        if (!(sqe = io_uring_get_sqe(&b->ring))) return pf_io_fail_backend(io, "io_uring: submission ring full", EBUSY);
    }
    size_t n = r->len - r->done;
    io_uring_prep_read(sqe, io->fd, r->dst + r->done, n > URING_MAX_LEN ? URING_MAX_LEN : (unsigned)n,
                       r->off + r->done);
    io_uring_sqe_set_data64(sqe, (uint64_t)s);
    return 0;
}

static int uring_wait(struct pf_io *io, bool block)
{
    struct uring_be *b = io->be;
    for (;;) {
        struct io_uring_cqe *cqe;
        int got = 0;
        while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
            uint64_t s = io_uring_cqe_get_data64(cqe);
            ssize_t res = cqe->res;
            io_uring_cqe_seen(&b->ring, cqe);
            if (s >= (uint64_t)io->qd) return pf_io_fail_backend(io, "io_uring: completion for no read", EPROTO);
            pf_io_complete(io, (int)s, res);
            got++;
        }
        if (got || !block) return 0;
        /* submits anything a busy ring left behind, then sleeps until one read completes */
        int rc = io_uring_submit_and_wait(&b->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME)
            return pf_io_fail_backend(io, "io_uring_submit_and_wait", -rc);
    }
}

static void uring_fini(struct pf_io *io)
{
    struct uring_be *b = io->be;
    if (!b) return;
    io_uring_queue_exit(&b->ring);
    free(b);
    io->be = NULL;
}

const struct pf_io_ops pf_io_uring_ops = {
    .name = "uring",
    .init = uring_init,
    .issue = uring_issue,
    .flush = uring_flush,
    .wait = uring_wait,
    .fini = uring_fini,
};
