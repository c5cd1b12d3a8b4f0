/* A plain read of the model's resident weights by the context's threads: the memory bandwidth
 * this machine gives right now. `pinfer bench` times one after each decode repetition, so a
 * decode figure can be set against what the same threads could read at the same moment (this
 * VM's bandwidth moves with its neighbours by up to a third). The reads themselves are
 * core/membw.c's. */
#include "runtime/ctx.h"

#include "core/membw.h"

double pinfer_ctx_read_gbs(struct pinfer_ctx *ctx)
{
    const struct pinfer_model *m = ctx->m;
    /* under a budget the arena has untouched room for the offloaded FFN: reading it would
       make it resident */
    if (!m->arena || m->arena_size < (1u << 20) || m->mem_budget) return 0;
    return pf_membw_stream(ctx->pool, m->arena, m->arena_size);
}

/* The roof of a sparse FFN step: an FFN row of the model, one row in 6 (the share a sparse step
 * at 90% sparsity reads), over the model's weights. */
double pinfer_ctx_scatter_gbs(struct pinfer_ctx *ctx)
{
    const struct pinfer_model *m = ctx->m;
    if (!m->arena || m->arena_size < (1u << 20) || m->mem_budget || m->info.n_layer < 1) return 0;
    const struct pf_layer *L = &m->layers[0];
    size_t row_bytes = (L->ffn_b ? L->ffn_b->row[PF_PART_GATE] : L->exp ? L->exp[0].gate.row_size : L->ffn_gate.row_size) / 64 * 64;
    return pf_membw_scatter(ctx->pool, m->arena, m->arena_size, row_bytes, 6);
}
