/* Checked size arithmetic: every size that comes from a file or a request goes through these
 * before it is used to allocate or index. Each returns true on overflow (and leaves *r unset
 * or wrapped; callers must not use it then). */
#ifndef PF_CORE_CHECKED_H
#define PF_CORE_CHECKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
