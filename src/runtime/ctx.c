/* Inference contexts: creation from pinfer_ctx_params, the public statistics, threshold
 * calibration. The context owns the run's state (ctx.h); what the FFN needs it owns through
 * its FFN object, and under a memory budget the neuron cache is planned here from what
 * everything else holds. */
#include "runtime/ctx.h"

#include "cache/cache.h"
#include "core/checked.h"
#include "core/error.h"
#include "io/io.h"
#include "tensor/matmul.h"

#include <stdlib.h>
#include <string.h>

struct pinfer_ctx_params pinfer_ctx_default_params(void)
{
    struct pinfer_ctx_params p = { .n_ctx = 0, .n_threads = 0, .n_batch = 512, .sparse = PINFER_SPARSE_OFF,
                                   .sparsity_target = 0.5f, .sparse_verify = false,
                                   .io_backend = PINFER_IO_AUTO, .cache_hot = -1, .prefetch = false,
                                   .stage_bytes = 0, .sparse_ideal = 0, .budget_shares = 1 };
    return p;
}

void pf_ctx_set_ffn_hook(struct pinfer_ctx *c, pf_ffn_hook fn, void *ud) { pf_ffn_set_hook(c->ffn, fn, ud); }
void pf_ctx_set_ffn_io_hook(struct pinfer_ctx *c, pf_ffn_io_hook fn, void *ud) { pf_ffn_set_io_hook(c->ffn, fn, ud); }
void pf_ctx_set_ffn_pre_hook(struct pinfer_ctx *c, pf_ffn_pre_hook fn, void *ud) { pf_ffn_set_pre_hook(c->ffn, fn, ud); }
void pf_ctx_set_moe_hooks(struct pinfer_ctx *c, pf_ffn_route_hook route, pf_ffn_expert_hook expert, void *ud)
{
    pf_ffn_set_moe_hooks(c->ffn, route, expert, ud);
}
void pf_ctx_set_layer_hook(struct pinfer_ctx *c, pf_layer_hook fn, void *ud) { c->layer_hook = fn; c->layer_ud = ud; }
void pf_ctx_set_attn_hook(struct pinfer_ctx *c, pf_attn_hook fn, void *ud) { c->attn_hook = fn; c->attn_ud = ud; }

static enum pf_io_backend io_backend(enum pinfer_io_backend b)
{
    switch (b) {
    case PINFER_IO_URING: return PF_IO_URING;
    case PINFER_IO_PREAD: return PF_IO_PREAD;
    case PINFER_IO_AUTO: break;
    }
    return PF_IO_AUTO;
}

/* Under a memory budget: the segment plan for what is left of the budget once the model's
 * resident weights and this context's buffers (total bytes so far) are counted, and the
 * neuron cache, lent to the FFN. */
static int cache_init(struct pinfer_ctx *c, const struct pinfer_ctx_params *p, size_t total)
{
    const struct pinfer_model *m = c->m;
    if ((size_t)m->head_dim * (size_t)m->info.n_head < (size_t)m->info.n_embd)
        return pf_fail(PINFER_EUNSUPPORTED, "a memory budget needs n_head x head_dim >= n_embd");
    total += (size_t)c->n_threads * (256u << 10); /* thread stacks actually touched, roughly */
    const struct pf_cache_config cfg = {
        .hot_frac = p->cache_hot, .prefetch = pf_ffn_wants_prefetch(c->ffn), .stage_bytes = p->stage_bytes,
        .chunk_slots = pf_ffn_chunk_slots(), .backend = io_backend(p->io_backend), .io_depth = p->io_depth,
        .shares = p->budget_shares,
    };
    struct pf_cache_plan plan;
    int rc = pf_cache_plan(m, total, &cfg, &plan);
    if (rc) return rc;
    if ((rc = pf_cache_new(&c->cache, m, &plan, &cfg))) return rc;
    pf_ffn_set_cache(c->ffn, c->cache);
    return 0;
}

static int check_params(const struct pinfer_model *m, const struct pinfer_ctx_params *p)
{
    if (!m->layers) return pf_fail(PINFER_EINVAL, "model was loaded vocab-only");
    if (p->budget_shares < 0 || p->budget_shares > 4096)
        return pf_fail(PINFER_EINVAL, "budget_shares %d out of range 0..4096", p->budget_shares);
    if (p->n_ctx < 0 || p->n_batch < 0 || p->n_threads < 0)
        return pf_fail(PINFER_EINVAL, "negative context, batch or thread count");
    if (p->io_depth < 0 || p->io_depth > 4096)
        return pf_fail(PINFER_EINVAL, "I/O queue depth %d is out of range (1..4096, or 0 for the default)", p->io_depth);
    if ((unsigned)p->io_backend > PINFER_IO_PREAD)
        return pf_fail(PINFER_EINVAL, "unknown I/O backend %d (expected auto, uring or pread)", (int)p->io_backend);
    if (!(p->sparse_ideal >= 0 && p->sparse_ideal <= 1))
        return pf_fail(PINFER_EINVAL, "sparse_ideal %g must be in [0, 1]", (double)p->sparse_ideal);
    return pf_ffn_check_params(m, p);
}

int pinfer_ctx_new(struct pinfer_ctx **out, struct pinfer_model *m, const struct pinfer_ctx_params *params)
{
    struct pinfer_ctx_params p = params ? *params : pinfer_ctx_default_params();
    const struct pinfer_model_info *h = &m->info;
    *out = NULL;
    int rc = check_params(m, &p);
    if (rc) return rc;
    if (p.n_ctx == 0) p.n_ctx = h->n_ctx_train < 4096 ? h->n_ctx_train : 4096;
    if (p.n_ctx > (1 << 22)) return pf_fail(PINFER_EINVAL, "context of %d tokens is too large", p.n_ctx);
    if (p.n_batch == 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    if (p.n_threads == 0) p.n_threads = pf_cpu_count();
    if (p.threads_from) p.n_threads = p.threads_from->n_threads;

    struct pinfer_ctx *c = calloc(1, sizeof *c);
    if (!c) return pf_fail(PINFER_ENOMEM, "out of memory");
    c->m = m;
    c->n_ctx = p.n_ctx;
    c->n_batch = p.n_batch;
    c->n_threads = p.n_threads;
    c->kern = pf_kernels();
    if (p.threads_from) {
        c->pool = p.threads_from->pool;
    } else {
        rc = pf_pool_new(&c->pool, p.n_threads);
        if (rc) { free(c); return rc; }
        c->own_pool = true;
    }

    size_t B = (size_t)p.n_batch, E = (size_t)h->n_embd, D = (size_t)m->head_dim;
    size_t Q = D * (size_t)h->n_head, KV = D * (size_t)h->n_head_kv, T = (size_t)p.n_threads;
    size_t cache_elems, total = 0;
    const struct pf_ffn_params fp = {
        .sparse = p.sparse, .sparsity_target = p.sparsity_target, .verify = p.sparse_verify, .n_batch = p.n_batch,
        .ideal_every = p.sparse_ideal > 0 ? (int)(1.0 / p.sparse_ideal + 0.5) : 0, .prefetch = p.prefetch,
    };
    size_t ffn_bytes = 0;
    if ((rc = pf_ffn_new(&c->ffn, m, &fp, c->pool, c->kern, &ffn_bytes))) { pinfer_ctx_free(c); return rc; }
    total += ffn_bytes;
    if (ck_mul((size_t)h->n_layer * KV, (size_t)p.n_ctx, &cache_elems)) goto nomem;
    c->k_cache = ck_alloc_array(cache_elems, 2, &total);
    c->v_cache = ck_alloc_array(cache_elems, 2, &total);
    c->x = ck_alloc_array(B, E * 4, &total);
    c->xb = ck_alloc_array(B, (E > Q ? E : Q) * 4, &total);
    c->q = ck_alloc_array(B, Q * 4, &total);
    c->k = ck_alloc_array(B, KV * 4, &total);
    c->v = ck_alloc_array(B, KV * 4, &total);
    c->rope = ck_alloc_array(B, (size_t)h->n_rot * 4, &total);
    c->att = ck_alloc_array(T, (size_t)p.n_ctx * 4, &total);
    c->att16 = ck_alloc_array(T, ((size_t)p.n_ctx > D ? (size_t)p.n_ctx : D) * 2, &total);
    c->logits = ck_alloc_array(B, (size_t)h->n_vocab * 4, &total);
    c->row_seq = ck_alloc_array(B, sizeof *c->row_seq, &total);
    c->row_pos = ck_alloc_array(B, sizeof *c->row_pos, &total);
    /* scratch: the largest activation conversion the attention and head products need */
    size_t sc = 0;
#define NEED(w, nt) do { if ((w)->n_in > 0) { size_t s_ = pf_matmul_scratch_size((w)->type, (w)->n_in, (nt)); if (s_ > sc) sc = s_; } } while (0)
    NEED(&m->output, p.n_batch);
    for (int l = 0; l < h->n_layer; l++) {
        const struct pf_layer *L = &m->layers[l];
        NEED(&L->wq, p.n_batch); NEED(&L->wk, p.n_batch); NEED(&L->wv, p.n_batch); NEED(&L->wo, p.n_batch);
    }
#undef NEED
    c->scratch = sc == SIZE_MAX ? NULL : ck_alloc_array(sc ? sc : 64, 1, &total);
    if (!c->k_cache || !c->v_cache || !c->x || !c->xb || !c->q || !c->k || !c->v || !c->rope || !c->att ||
        !c->att16 || !c->logits || !c->row_seq || !c->row_pos || !c->scratch)
        goto nomem;
    c->buf_bytes = total;
    if (m->mem_budget && (rc = cache_init(c, &p, total))) { pinfer_ctx_free(c); return rc; }
    *out = c;
    return 0;
nomem:
    pinfer_ctx_free(c);
    return pf_fail(PINFER_ENOMEM, "cannot allocate a context of %d tokens (KV cache %.1f MiB)", p.n_ctx,
                   (double)h->n_layer * (double)KV * p.n_ctx * 4 / (1 << 20));
}

void pinfer_ctx_free(struct pinfer_ctx *c)
{
    if (!c) return;
    pf_ffn_free(c->ffn);
    pf_cache_free(c->cache);
    if (c->own_pool) pf_pool_free(c->pool);
    free(c->k_cache); free(c->v_cache); free(c->x); free(c->xb); free(c->q); free(c->k);
    free(c->v); free(c->rope); free(c->att); free(c->att16); free(c->logits); free(c->scratch);
    free(c->row_seq); free(c->row_pos);
    free(c);
}

void pinfer_ctx_reset(struct pinfer_ctx *c) { c->n_logits = 0; }
int pinfer_ctx_n_ctx(const struct pinfer_ctx *c) { return c->n_ctx; }

const float *pinfer_ctx_logits(const struct pinfer_ctx *c, int i)
{
    if (c->n_logits == 0) return NULL;
    if (i < 0) return c->logits + (size_t)(c->n_logits - 1) * c->m->info.n_vocab;
    i -= c->logits_first;
    if (i < 0 || i >= c->n_logits) return NULL;
    return c->logits + (size_t)i * c->m->info.n_vocab;
}

/* ==== Threshold calibration ==== */

int pinfer_ctx_calibrate(struct pinfer_ctx *c, const int32_t *tokens, int n)
{
    const enum pinfer_sparse_mode mode = pf_ffn_mode(c->ffn);
    if (mode != PINFER_SPARSE_THRESHOLD)
        return pf_fail(PINFER_EINVAL, "calibration is for threshold mode (this context runs %s)", pinfer_sparse_mode_name(mode));
    if (!tokens || n < 1) return pf_fail(PINFER_EINVAL, "no calibration tokens");
    if (n > c->n_ctx) n = c->n_ctx;
    pf_ffn_calibrate_begin(c->ffn);
    int rc = 0;
    for (int i = 0; i < n && !rc; i += c->n_batch) {
        int nb = n - i < c->n_batch ? n - i : c->n_batch;
        rc = pinfer_decode(c, tokens + i, nb, i, false);
    }
    pf_ffn_calibrate_end(c->ffn, rc == 0);
    if (rc) return rc;
    pinfer_ctx_reset(c);
    pinfer_ctx_sparse_stats_reset(c);
    return 0;
}

/* ==== Statistics ==== */

int pinfer_ctx_sparse_stats(const struct pinfer_ctx *c, int layer, struct pinfer_sparse_stats *out)
{
    return pf_ffn_sparse_stats(c->ffn, layer, out);
}

void pinfer_ctx_sparse_stats_reset(struct pinfer_ctx *c) { pf_ffn_sparse_stats_reset(c->ffn); }

int pinfer_ctx_cache_stats(const struct pinfer_ctx *c, struct pinfer_cache_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!c->cache) return pf_fail(PINFER_EINVAL, "the model was loaded without a memory budget");
    pf_cache_get_stats(c->cache, st);
    pf_ffn_moe_guess_stats(c->ffn, &st->expert_guesses, &st->expert_guess_hits);
    return 0;
}

void pinfer_ctx_cache_stats_reset(struct pinfer_ctx *c)
{
    if (c->cache) pf_cache_stats_reset(c->cache);
    pf_ffn_moe_guess_reset(c->ffn);
}
