/* Checked size arithmetic: every size that comes from a file or a request goes through these
 * before it is used to allocate or index. Each returns true on overflow (and leaves *r unset
 * or wrapped; callers must not use it then). */
#ifndef PF_CORE_CHECKED_H
#define PF_CORE_CHECKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static inline bool ck_mul(size_t a, size_t b, size_t *r) { return __builtin_mul_overflow(a, b, r); }
static inline bool ck_add(size_t a, size_t b, size_t *r) { return __builtin_add_overflow(a, b, r); }
static inline bool ck_mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_mul_overflow(a, b, r); }
static inline bool ck_add_u64(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_add_overflow(a, b, r); }

/* Rounds x up to a multiple of a (a a power of two or any positive value). */
static inline bool ck_align_u64(uint64_t x, uint64_t a, uint64_t *r)
{
    uint64_t t;
    if (a == 0 || ck_add_u64(x, a - 1, &t)) return true;
    *r = t / a * a;
    return false;
}

/* n elements of size bytes, 64-byte aligned (a cache line: buffers the kernels stream), or NULL
 * on overflow, zero size or no memory; adds the bytes to *total when total is not NULL. Free
 * with free(). */
static inline void *ck_alloc_array(size_t n, size_t size, size_t *total)
{
    size_t bytes;
    void *p = NULL;
    if (ck_mul(n, size, &bytes) || bytes == 0 || posix_memalign(&p, 64, bytes) != 0) return NULL;
    if (total) *total += bytes;
    return p;
}

#endif
