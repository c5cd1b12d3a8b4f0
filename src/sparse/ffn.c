/* One layer's FFN for a batch, for every model layout and sparse mode:
 *
 *   layout    batch (n_tok > 1) or calibrating      single-token step (n_tok == 1)
 *   original  dense matmuls                         dense matmuls; oracle / threshold mask
 *                                                   the activation (quality only: all weights
 *                                                   are still read)
 *   bundles   bundle_mm.c (dense)                   ffn_decode.c (off, oracle, predictor,
 *                                                   threshold; reads only what it computes)
 *
 * The original layout's dense path is the forward pass's FFN as it was, operation for
 * operation (its logits match llama.cpp's). Hooks always see the activation in the original
 * neuron order: on bundles it is un-permuted into hu first. */
#include "sparse/sparse.h"

#include "core/error.h"
#include "tensor/matmul.h"

#include <math.h>
#include <string.h>

/* ==== Activations ==== */

static float act_silu(float x) { return x / (1.0f + expf(-x)); }
static float act_relu(float x) { return x > 0 ? x : 0; }
static float act_gelu(float x)
{
    /* tanh approximation, as ggml_gelu */
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * x * (1.0f + 0.044715f * x * x)));
}

bool pf_act_relu_family(enum pinfer_act act)
{
    return act == PINFER_ACT_RELU || act == PINFER_ACT_REGLU || act == PINFER_ACT_DRELU;
}

float pf_act_gate(enum pinfer_act act, float g)
{
    switch (act) {
    case PINFER_ACT_SILU: return act_silu(g);
    case PINFER_ACT_RELU:
    case PINFER_ACT_REGLU:
    case PINFER_ACT_DRELU: return act_relu(g);
    case PINFER_ACT_GELU: return act_gelu(g);
    }
    return act_silu(g);
}

float pf_act_full(enum pinfer_act act, float g, float u)
{
    switch (act) {
    case PINFER_ACT_SILU: return act_silu(g) * u;
    case PINFER_ACT_RELU:
    case PINFER_ACT_REGLU: return act_relu(g) * u;
    case PINFER_ACT_DRELU: return act_relu(g) * act_relu(u);
    case PINFER_ACT_GELU: return act_gelu(g) * u;
    }
    return act_silu(g) * u;
}

void pf_ffn_activate(float *g, const float *u, size_t n, enum pinfer_act act)
{
    switch (act) {
    case PINFER_ACT_SILU: for (size_t i = 0; i < n; i++) g[i] = act_silu(g[i]) * u[i]; break;
    case PINFER_ACT_RELU:
    case PINFER_ACT_REGLU: for (size_t i = 0; i < n; i++) g[i] = act_relu(g[i]) * u[i]; break;
    case PINFER_ACT_DRELU: for (size_t i = 0; i < n; i++) g[i] = act_relu(g[i]) * act_relu(u[i]); break;
    case PINFER_ACT_GELU: for (size_t i = 0; i < n; i++) g[i] = act_gelu(g[i]) * u[i]; break;
    }
}

/* ==== Hooks ==== */

/* act: n_tok rows of n_ff, slot order when perm is set; tmp: room for the un-permuted copy. */
static void call_hooks(struct pinfer_ctx *c, int l, const float *act, const int32_t *perm, float *tmp, int n_tok)
{
    if (!c->ffn_hook && !c->ffn_io_hook) return;
    const int F = c->m->info.n_ff;
    if (perm) {
        for (int t = 0; t < n_tok; t++)
            for (int j = 0; j < F; j++) tmp[(size_t)t * F + (size_t)perm[j]] = act[(size_t)t * F + (size_t)j];
        act = tmp;
    }
    if (c->ffn_hook) c->ffn_hook(c->ffn_ud, l, act, n_tok, F);
    if (c->ffn_io_hook) c->ffn_io_hook(c->ffn_io_ud, l, c->xb, c->m->info.n_embd, act, F, n_tok);
}

/* ==== Original layout ==== */

static void mm(struct pinfer_ctx *c, float *y, const struct pf_weight *w, const float *x, int n_tok)
{
    pf_matmul(c->pool, y, w->data, w->type, w->n_in, w->n_out, x, n_tok, c->scratch);
}

/* Single-token step of a sparse mode on the original layout: masks the activation the way the
 * mode would skip neurons, so its effect on quality can be measured; counts for the stats. */
static void mask_original(struct pinfer_ctx *c, int l)
{
    const struct pinfer_model_info *h = &c->m->info;
    const int F = h->n_ff;
    struct pf_sparse_count *cnt = &c->cnt[0];
    uint32_t active = 0, true_active = 0, hit = 0;
    double mass_all = 0, mass_kept = 0;
    const float t = c->sparse == PINFER_SPARSE_THRESHOLD ? c->thresh[l] : 0;
    for (int i = 0; i < F; i++) {
        float g = c->hg[i], u = c->hu[i], full = pf_act_full(h->act, g, u);
        bool keep = true;
        if (c->sparse == PINFER_SPARSE_THRESHOLD && fabsf(pf_act_gate(h->act, g)) < t) keep = false;
        if (full != 0) {
            true_active++;
            mass_all += fabsf(full);
            if (keep) { hit++; mass_kept += fabsf(full); }
        }
        if (keep && full != 0) active++;
        if (!keep) c->hg[i] = c->hu[i] = 0; /* act(0) * 0 == 0 for every activation */
    }
    cnt->gate = cnt->up = cnt->down = (uint32_t)F; /* every weight was read */
    cnt->active = active;
    cnt->true_active = true_active;
    cnt->hit = hit;
    cnt->mass_all = mass_all;
    cnt->mass_kept = mass_kept;
}

static void ffn_original(struct pinfer_ctx *c, int l, int n, bool record, bool sparse_step)
{
    const struct pf_layer *L = &c->m->layers[l];
    const struct pinfer_model_info *h = &c->m->info;
    const int E = h->n_embd, F = h->n_ff;
    mm(c, c->hg, &L->ffn_gate, c->xb, n);
    mm(c, c->hu, &L->ffn_up, c->xb, n);
    if (record) pf_hist_add(c, l, c->hg, (size_t)n * F);
    if (sparse_step) mask_original(c, l);
    pf_ffn_activate(c->hg, c->hu, (size_t)n * F, h->act);
    call_hooks(c, l, c->hg, NULL, NULL, n);
    mm(c, c->xb, &L->ffn_down, c->hg, n);
    for (size_t i = 0; i < (size_t)n * E; i++) c->x[i] += c->xb[i];
}

/* ==== Bundles ==== */

static void ffn_bundles(struct pinfer_ctx *c, int l, int n, bool record, bool one)
{
    const struct pf_bundles *b = c->m->layers[l].ffn_b;
    const struct pinfer_model_info *h = &c->m->info;
    const int E = h->n_embd, F = h->n_ff;
    if (c->cache && !one) {
        pf_ffn_offload_batch(c, l, n, record); /* hooks are not called under a budget */
        return;
    }
    if (one) {
        /* c->q is free during the FFN (the attention output is already in x) */
        if (c->cache) pf_ffn_offload_decode(c, l, c->q);
        else pf_ffn_bundle_decode(c, l, c->q);
        if (record) pf_hist_add(c, l, c->hu, (size_t)F); /* the decode step left the gates in hu */
        call_hooks(c, l, c->hg, b->perm, c->hu, 1);
        for (int i = 0; i < E; i++) c->x[i] += c->q[i];
        return;
    }
    pf_bundle_gate_up(c->pool, c->kern, b, c->xb, n, c->hg, c->hu, c->scratch);
    if (record) pf_hist_add(c, l, c->hg, (size_t)n * F);
    pf_ffn_activate(c->hg, c->hu, (size_t)n * F, h->act);
    call_hooks(c, l, c->hg, b->perm, c->hu, n);
    pf_bundle_down(c->pool, b, c->hg, n, c->xb, c->panel, false);
    for (size_t i = 0; i < (size_t)n * E; i++) c->x[i] += c->xb[i];
}

/* ==== Dispatch and statistics ==== */

void pf_ffn(struct pinfer_ctx *c, int l, int n)
{
    const bool record = c->sparse == PINFER_SPARSE_THRESHOLD && !c->thresh_ready;
    const bool one = n == 1;
    if (one) memset(c->cnt, 0, sizeof *c->cnt * (size_t)c->n_threads);
    if (c->m->layers[l].ffn_b) ffn_bundles(c, l, n, record, one);
    else ffn_original(c, l, n, record, one && !c->calibrating && c->sparse != PINFER_SPARSE_OFF);
    if (!one) return;
    struct pf_sparse_layer_stats *s = &c->lstats[l];
    if (!c->m->layers[l].ffn_b && (c->calibrating || c->sparse == PINFER_SPARSE_OFF)) {
        const uint32_t F = (uint32_t)c->m->info.n_ff;
        s->gate += F; s->up += F; s->down += F;
        return;
    }
    for (int i = 0; i < c->n_threads; i++) {
        const struct pf_sparse_count *k = &c->cnt[i];
        s->gate += k->gate; s->up += k->up; s->down += k->down; s->clusters += k->clusters;
        s->predicted += k->predicted; s->active += k->active; s->true_active += k->true_active;
        s->hit += k->hit; s->mass_all += k->mass_all; s->mass_kept += k->mass_kept;
    }
}
