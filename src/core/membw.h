/* How fast this machine's threads read memory right now: a plain streaming read of a buffer,
 * and a read of scattered rows (the access of a sparse FFN step). `pinfer bench` sets decode
 * against them (runtime/membw.c, on the model's own weights) and `pinfer probe` records them
 * for the planner (plan/probe.c, on a buffer of its own). */
#ifndef PF_CORE_MEMBW_H
#define PF_CORE_MEMBW_H

#include "core/threadpool.h"

#include <stddef.h>

/* GB/s (1e9 bytes) of one read of p[0, len) by the pool's threads, each its share; 0 if len <
 * 128 bytes. */
double pf_membw_stream(struct pf_pool *pool, const void *p, size_t len);
/* GB/s of reading rows of row_bytes (a multiple of 64) at one random position in every `every`
 * rows of p[0, len), ascending, with each row's lines prefetched 4 rows ahead as the sparse
 * kernels do; 0 if the buffer holds fewer than `every` rows or on allocation failure. */
double pf_membw_scatter(struct pf_pool *pool, const void *p, size_t len, size_t row_bytes, int every);

#endif
