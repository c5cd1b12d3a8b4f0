/* A plain read of the model's resident weights by the context's threads: the memory bandwidth
 * this machine gives right now. `pinfer bench` times one after each decode repetition, so a
 * decode figure can be set against what the same threads could read at the same moment (this
 * VM's bandwidth moves with its neighbours by up to a third). */
#include "model/model.h"

#include <string.h>

typedef long long v2ll __attribute__((vector_size(16)));

struct read_task {
    const unsigned char *p;
    size_t n;
    long long sink[64];
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
