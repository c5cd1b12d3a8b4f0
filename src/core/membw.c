/* Streaming and scattered reads of a buffer by a pool's threads (membw.h). */
#include "core/membw.h"

#include "core/clock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* unsigned: the sums wrap by definition (signed ones overflowed, which UBSan rightly flags) */
typedef unsigned long long v2ll __attribute__((vector_size(16)));

struct read_task {
    const unsigned char *p;
    size_t n;
    unsigned long long sink[64];
};

static void read_fn(void *arg, int ith, int nth)
{
    struct read_task *t = arg;
    const size_t line = 128, all = t->n / line * line;
    size_t per = all / (size_t)nth / line * line, lo = per * (size_t)ith, hi = ith == nth - 1 ? all : lo + per;
    v2ll a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 }, f = { 0 }, g = { 0 }, h = { 0 };
    for (size_t i = lo; i < hi; i += line) {
        const unsigned char *s = t->p + i;
        v2ll x[8];
        memcpy(x, s, sizeof x);
        a += x[0]; b += x[1]; c += x[2]; d += x[3]; e += x[4]; f += x[5]; g += x[6]; h += x[7];
    }
    a += b + c + d + e + f + g + h;
    t->sink[ith % 64] = a[0] + a[1];
}

double pf_membw_stream(struct pf_pool *pool, const void *p, size_t len)
{
    if (len < 128) return 0;
    struct read_task t = { .p = p, .n = len };
    double t0 = pf_now();
    pf_pool_run(pool, read_fn, &t);
    double dt = pf_now() - t0;
    return dt > 0 ? (double)(t.n / 128 * 128) / dt / 1e9 : 0;
}

/* ==== Scattered rows: the roof of a sparse FFN step ====
 * A sparse step reads a few kilobytes here and there (the rows of the neurons it computes), where
 * the hardware's stream prefetchers cannot help and each core is bounded by how many cache
 * misses it keeps in flight: this reads rows of row_bytes at random row positions (about one in
 * `every`), in ascending order as the step lists them, each thread its share of the weights,
 * with every line of the row `ahead` rows on prefetched into L2 as the step's kernels do. */
struct scatter_task {
    const unsigned char *p;
    size_t row;
    const uint32_t *idx; /* chosen rows, ascending */
    size_t n_idx;
    unsigned long long sink[64];
};

static void scatter_fn(void *arg, int ith, int nth)
{
    struct scatter_task *t = arg;
    const size_t lo = t->n_idx * (size_t)ith / (size_t)nth, hi = t->n_idx * (size_t)(ith + 1) / (size_t)nth;
    const size_t ahead = 4, lines = t->row / 64;
    v2ll a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
    for (size_t k = lo; k < hi; k++) {
        if (k + ahead < hi) {
            const unsigned char *q = t->p + (size_t)t->idx[k + ahead] * t->row;
            for (size_t l = 0; l < lines; l++) __builtin_prefetch(q + 64 * l, 0, 2);
        }
        const unsigned char *s = t->p + (size_t)t->idx[k] * t->row;
        for (size_t l = 0; l < lines; l++) {
            v2ll x[4];
            memcpy(x, s + 64 * l, sizeof x);
            a += x[0]; b += x[1]; c += x[2]; d += x[3];
        }
    }
    a += b + c + d;
    t->sink[ith % 64] = a[0] + a[1];
}

double pf_membw_scatter(struct pf_pool *pool, const void *p, size_t len, size_t row_bytes, int every)
{
    if (row_bytes == 0 || row_bytes % 64 || every < 1) return 0;
    const size_t n_rows = len / row_bytes;
    if (n_rows < (size_t)every || n_rows > UINT32_MAX) return 0;
    uint32_t *idx = malloc(sizeof *idx * (n_rows / (size_t)every + 1));
    if (!idx) return 0;
    size_t n = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull; /* xorshift64: the same rows every call */
    for (size_t r = 0; r + (size_t)every <= n_rows; r += (size_t)every) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        idx[n++] = (uint32_t)(r + x % (uint64_t)every);
    }
    struct scatter_task t = { .p = p, .row = row_bytes, .idx = idx, .n_idx = n };
    double t0 = pf_now();
    pf_pool_run(pool, scatter_fn, &t);
    double dt = pf_now() - t0;
    free(idx);
    return dt > 0 ? (double)n * (double)row_bytes / dt / 1e9 : 0;
}
