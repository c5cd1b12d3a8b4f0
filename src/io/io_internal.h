/* What io.c shares with its two backends (io_uring.c, io_pread.c).
 *
 * io.c owns the requests: a FIFO of reads not yet handed to the backend, queue_depth slots for
 * reads in flight, and a FIFO of completed tags not yet reaped. A backend only moves bytes: it is
 * handed a slot (issue), starts what it was handed (flush), and reports each finished attempt
 * back through pf_io_complete() from the reaping thread (wait). Everything that decides what a
 * result means (short read, EOF, injected fault, error message) lives in io.c, so both backends
 * behave the same. */
#ifndef PF_IO_INTERNAL_H
#define PF_IO_INTERNAL_H

#include "io/io.h"

#include <sys/types.h>

enum pf_io_fault { PF_IO_FAULT_NONE = 0, PF_IO_FAULT_EIO, PF_IO_FAULT_SHORT };

/* One read. While in flight it sits in io->slots[i] and the backend may read every field but
 * writes only res (io_pread.c's workers, under its lock). */
struct pf_io_req {
    uint64_t off;      /* file offset of the whole read */
    size_t len;        /* bytes asked for (a multiple of PF_IO_ALIGN) */
    size_t want;       /* bytes the file held there at open: len, less in the file's last block */
    size_t done;       /* bytes read so far (a read continues after a partial result) */
    char *dst;
    uint64_t tag;
    uint64_t seq;      /* 1-based number of the read in this io object (fault injection) */
    ssize_t res;       /* pread backend: the attempt's result, bytes or -errno */
};

struct pf_io_ops {
    const char *name;
    /* Sets up the backend for io->fd and io->qd; PINFER_EUNSUPPORTED when it cannot run here. */
    int (*init)(struct pf_io *io);
    /* Hands slot s to the backend: read len - done bytes at off + done into dst + done (the file
     * may hold fewer: the kernel stops at its end). It may start at once. Only called while the slot is in flight, at most qd at a time. */
    int (*issue)(struct pf_io *io, int s);
    /* Starts everything issued. */
    int (*flush)(struct pf_io *io);
    /* Reports finished attempts through pf_io_complete(); with block, waits for at least one
     * (only called with reads in flight). Returns 0 or a PINFER_E* code. */
    int (*wait)(struct pf_io *io, bool block);
    /* Frees the backend; called with nothing in flight. */
    void (*fini)(struct pf_io *io);
};

struct pf_io {
    const struct pf_io_ops *ops;
    void *be;                 /* backend state */
    int fd;
    char *path;
    uint64_t size;            /* at open */
    int qd, n_threads;
    bool direct;

    struct pf_io_req *slots;  /* qd */
    int *free_slots;          /* stack of free slot indices */
    int n_free;

    struct pf_io_req *queue;  /* ring: accepted, not yet in a slot */
    size_t q_cap, q_head, q_n;
    uint64_t *done;           /* ring: tags of completed reads, not yet reaped */
    size_t d_cap, d_head, d_n;

    uint64_t n_accepted;      /* reads accepted by pf_io_read (numbers them for faults) */
    enum pf_io_fault fault;
    uint64_t fault_at;

    int err;                  /* sticky: once a read failed, every call returns it */
    char err_msg[400];
    bool closing;             /* pf_io_close is draining: results are dropped silently */
    struct pf_io_stats st;
};

/* Called by a backend, on the reaping thread, when an attempt on slot s finished with res bytes
 * (or -errno). Either finishes the read (tag to the done FIFO, slot freed), re-issues the rest
 * after a partial result, or fails the io object. */
void pf_io_complete(struct pf_io *io, int s, ssize_t res);

/* Records a backend failure that is not tied to one read (io_uring_submit failing, ...) as the
 * io object's sticky error; returns PINFER_EIO. */
int pf_io_fail_backend(struct pf_io *io, const char *what, int err);

extern const struct pf_io_ops pf_io_uring_ops;
extern const struct pf_io_ops pf_io_pread_ops;

#endif
