/* A plain read of the model's resident weights by the context's threads: the memory bandwidth
 * this machine gives right now. `pinfer bench` times one after each decode repetition, so a
 * decode figure can be set against what the same threads could read at the same moment (this
 * VM's bandwidth moves with its neighbours by up to a third). */
#include "runtime/ctx.h"

#include "core/clock.h"

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

double pinfer_ctx_read_gbs(struct pinfer_ctx *ctx)
{
    const struct pinfer_model *m = ctx->m;
    /* under a budget the arena has untouched room for the offloaded FFN: reading it would
       make it resident */
    if (!m->arena || m->arena_size < (1u << 20) || m->mem_budget) return 0;
    struct read_task t = { .p = m->arena, .n = m->arena_size };
    double t0 = pf_now();
    pf_pool_run(ctx->pool, read_fn, &t);
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

double pinfer_ctx_scatter_gbs(struct pinfer_ctx *ctx)
{
    const struct pinfer_model *m = ctx->m;
    if (!m->arena || m->arena_size < (1u << 20) || m->mem_budget || m->info.n_layer < 1) return 0;
    /* an FFN row of the model; one row in 6: the share a sparse step at 90% sparsity reads */
    const struct pf_layer *L = &m->layers[0];
    size_t row_bytes = (L->ffn_b ? L->ffn_b->row[PF_PART_GATE] : L->exp ? L->exp[0].gate.row_size : L->ffn_gate.row_size) / 64 * 64;
    const int every = 6;
    if (row_bytes == 0) return 0;
    const size_t n_rows = m->arena_size / row_bytes;
    uint32_t *idx = malloc(sizeof *idx * (n_rows / (size_t)every + 1));
    if (!idx || n_rows > UINT32_MAX) { free(idx); return 0; }
    size_t n = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull; /* xorshift64: the same rows every call */
    for (size_t r = 0; r + (size_t)every <= n_rows; r += (size_t)every) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        idx[n++] = (uint32_t)(r + x % (uint64_t)every);
    }
    struct scatter_task t = { .p = m->arena, .row = row_bytes, .idx = idx, .n_idx = n };
    double t0 = pf_now();
    pf_pool_run(ctx->pool, scatter_fn, &t);
    double dt = pf_now() - t0;
    free(idx);
    return dt > 0 ? (double)n * (double)row_bytes / dt / 1e9 : 0;
}
