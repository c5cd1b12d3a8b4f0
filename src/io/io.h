/* Asynchronous reads of a model file with direct I/O (O_DIRECT), for weights that are not
 * resident (the neuron cache, src/cache/, and offloaded prefill). Model bytes read this way never
 * enter the page cache, so what pinfer holds is what pinfer really uses.
 *
 * Two backends behind one interface:
 *   uring   io_uring through liburing: reads are queued, submitted in one system call, and
 *           reaped as they complete;
 *   pread   a small pool of threads doing pread(2), for kernels or sandboxes without io_uring.
 * PF_IO_AUTO picks uring when io_uring_queue_init succeeds, else pread.
 *
 * Direct I/O rules: offset, length and destination address are multiples of PF_IO_ALIGN. A read
 * that returns fewer bytes than asked (the file was truncated after it was opened) or fails
 * (EIO, ...) completes with an error: pf_io_reap returns a negative PINFER_EIO with a message
 * naming the file, the offset and the cause, and the io object stays usable for cleanup only.
 *
 * Fault injection (tests): the environment variable PINFER_IO_FAULT="eio@N" makes the N-th read
 * (counting from 1 per io object) fail with EIO; "short@N" makes it return half its bytes.
 * Reads are counted in pf_io_read order; the variable is read by pf_io_open, which refuses a
 * malformed value (PINFER_EINVAL).
 *
 * Not thread-safe: one thread queues, submits and reaps (the decode step's main thread). */
#ifndef PF_IO_IO_H
#define PF_IO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PF_IO_ALIGN 4096

enum pf_io_backend { PF_IO_AUTO = 0, PF_IO_URING, PF_IO_PREAD };

struct pf_io_params {
    enum pf_io_backend backend;
    int queue_depth;   /* reads in flight at most (default 128); more are queued internally. A
                          7B step issues ~150 reads per layer at once: with 64 in flight they went
                          in 3 waves, with 128 decode was 7% faster and I/O wait 23% -> 13% of
                          decode (bench/RESULTS.md, issue 16); 256 made the kernel's completion
                          work slow the compute down on 2 cores */
    int n_threads;     /* pread backend: worker threads (default 16: a 2-core machine still needs reads in flight) */
    bool direct;       /* O_DIRECT (default true); false only for file systems without it */
    int same_as_fd;    /* >= 0: open the file behind this descriptor (pf_reopen), not whatever now
                          has the path, and refuse it unless its size is still same_size */
    uint64_t same_size;
};

struct pf_io_stats {
    uint64_t reads;        /* completed reads */
    uint64_t bytes;        /* bytes of completed reads (file bytes: zeros past its end not counted) */
    double wait_s;         /* seconds spent blocked in pf_io_reap with min > 0 */
};

struct pf_io;

struct pf_io_params pf_io_default_params(void);

/* Opens path read-only for direct reads. PINFER_EIO (missing file, ...) or PINFER_EUNSUPPORTED
 * (io_uring asked for but unavailable; O_DIRECT refused by the file system) with a message. */
int pf_io_open(struct pf_io **out, const char *path, const struct pf_io_params *p);
void pf_io_close(struct pf_io *io); /* waits for reads in flight first */

const char *pf_io_backend_name(const struct pf_io *io); /* "uring" or "pread" */
int pf_io_queue_depth(const struct pf_io *io);          /* reads in flight at most */
uint64_t pf_io_file_size(const struct pf_io *io);       /* size at open time */

/* Queues a read of len bytes at file offset off into dst; tag comes back from pf_io_reap.
 * off, len, dst: multiples of PF_IO_ALIGN, len > 0; off + len <= the file size at open rounded up
 * to PF_IO_ALIGN (else PINFER_EINVAL): the file's last, partial block reads as its bytes followed
 * by zeros. The caller keeps dst alive and untouched until the tag is reaped or pf_io_close.
 * Reads may start before pf_io_submit (when the queue is full). */
int pf_io_read(struct pf_io *io, uint64_t off, size_t len, void *dst, uint64_t tag);

/* Starts every queued read. */
int pf_io_submit(struct pf_io *io);

/* Waits until at least min reads have completed (min 0: only what is already done), stores up
 * to max of their tags in tags, returns how many; a failed read returns PINFER_EIO. Submits
 * whatever is queued first. min is capped at max and at pf_io_pending, so it never waits for
 * reads that were not asked for. */
int pf_io_reap(struct pf_io *io, uint64_t *tags, int max, int min);

/* Reads queued or in flight and not yet reaped. */
int pf_io_pending(const struct pf_io *io);

void pf_io_get_stats(const struct pf_io *io, struct pf_io_stats *st);

/* The storage roof (io_bench.c): keeps qd reads of bs bytes (a multiple of PF_IO_ALIGN) in
 * flight for secs seconds, at random block-aligned offsets over the whole file, or sequential
 * ones; GB/s (1e9 bytes) and reads per second into *gbs, *iops. buf: qd * bs bytes, aligned
 * to PF_IO_ALIGN. No reads may be pending on io. 0 or a negative code. */
int pf_io_bench(struct pf_io *io, char *buf, size_t bs, int qd, double secs, bool seq, double *gbs, double *iops);

/* An anonymous PF_IO_ALIGN-aligned allocation for read destinations (free with pf_io_free). */
void *pf_io_alloc(size_t n);
void pf_io_free(void *p, size_t n);

#endif
