/* The pread backend, for kernels or sandboxes without io_uring: n_threads workers take slot
 * indices from a submission FIFO, pread(2) them and push them onto a completion list that the
 * reaping thread drains. Both lists hold at most queue_depth entries (one per slot). A worker
 * writes only its slot's res, under the lock; the reaping thread reads it after taking the lock,
 * and pf_io_complete (which may issue the slot again) runs with the lock released. */
#include "io/io_internal.h"

#include "core/error.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pread_be {
    pthread_mutex_t mu;
    pthread_cond_t work;   /* a read was flushed, or stop */
    pthread_cond_t done;   /* a read finished */
    int *sub;              /* ring of qd slot indices to read */
    int sub_head, sub_n;
    int *comp;             /* qd finished slot indices */
    int comp_n;
    int *drain;            /* qd: the reaper's copy of comp */
    bool stop;
    pthread_t *th;
    int n_th;
};

/* Reads the rest of slot r: continues after partial results and EINTR until everything asked
 * for, the end of the file (pread returns 0, or direct I/O stopped at an unaligned count), or an
 * error. Returns the bytes read or -errno. */
static ssize_t read_slot(const struct pf_io *io, const struct pf_io_req *r)
{
    size_t n = r->len - r->done, got = 0;
    while (got < n) {
        ssize_t k = pread(io->fd, r->dst + r->done + got, n - got, (off_t)(r->off + r->done + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -errno;
        if (k == 0) break;
        got += (size_t)k;
        if (io->direct && got % PF_IO_ALIGN) break;
    }
    return (ssize_t)got;
}

static void *worker(void *arg)
{
    struct pf_io *io = arg;
    struct pread_be *b = io->be;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->stop && b->sub_n == 0) pthread_cond_wait(&b->work, &b->mu);
        if (b->stop) break;
        int s = b->sub[b->sub_head];
        b->sub_head = (b->sub_head + 1) % io->qd;
        b->sub_n--;
        pthread_mutex_unlock(&b->mu);
        ssize_t res = read_slot(io, &io->slots[s]);
        pthread_mutex_lock(&b->mu);
        io->slots[s].res = res;
        b->comp[b->comp_n++] = s;
        pthread_cond_signal(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void pread_fini(struct pf_io *io)
{
    struct pread_be *b = io->be;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_th; i++) pthread_join(b->th[i], NULL);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->done);
    pthread_mutex_destroy(&b->mu);
    free(b->sub);
    free(b->comp);
    free(b->drain);
    free(b->th);
    free(b);
    io->be = NULL;
}

static int pread_init(struct pf_io *io)
{
    struct pread_be *b = calloc(1, sizeof *b);
    if (!b) return pf_fail(PINFER_ENOMEM, "io: out of memory");
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->done, NULL);
    io->be = b;
    size_t q = (size_t)io->qd;
    b->sub = malloc(q * sizeof *b->sub);
    b->comp = malloc(q * sizeof *b->comp);
    b->drain = malloc(q * sizeof *b->drain);
    b->th = malloc((size_t)io->n_threads * sizeof *b->th);
    if (!b->sub || !b->comp || !b->drain || !b->th) {
        pread_fini(io);
        return pf_fail(PINFER_ENOMEM, "io: out of memory");
    }
    for (; b->n_th < io->n_threads; b->n_th++) {
        int rc = pthread_create(&b->th[b->n_th], NULL, worker, io);
        if (rc) {
            pread_fini(io);
            return pf_fail(PINFER_ENOMEM, "io: cannot start %d read threads: %s", io->n_threads, strerror(rc));
        }
    }
    return 0;
}

static int pread_issue(struct pf_io *io, int s)
{
    struct pread_be *b = io->be;
    pthread_mutex_lock(&b->mu);
    b->sub[(b->sub_head + b->sub_n++) % io->qd] = s;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

static int pread_flush(struct pf_io *io)
{
    struct pread_be *b = io->be;
    pthread_mutex_lock(&b->mu);
    if (b->sub_n) pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

static int pread_wait(struct pf_io *io, bool block)
{
    struct pread_be *b = io->be;
    pthread_mutex_lock(&b->mu);
    if (block && b->sub_n) pthread_cond_broadcast(&b->work); /* nothing issued may stay asleep */
    while (block && b->comp_n == 0) pthread_cond_wait(&b->done, &b->mu);
    int n = b->comp_n;
    memcpy(b->drain, b->comp, (size_t)n * sizeof *b->comp);
    b->comp_n = 0;
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < n; i++) pf_io_complete(io, b->drain[i], io->slots[b->drain[i]].res);
    return 0;
}

const struct pf_io_ops pf_io_pread_ops = {
    .name = "pread",
    .init = pread_init,
    .issue = pread_issue,
    .flush = pread_flush,
    .wait = pread_wait,
    .fini = pread_fini,
};
