/* A mixture-of-experts layer's tensors, as llama.cpp stores them (docs/model-format.md):
 *
 *   blk.N.ffn_gate_inp.weight    {n_embd, n_expert}             the router, any type (F32 as
 *                                                               converted; llama-quantize keeps it)
 *   blk.N.ffn_gate_exps.weight   {n_embd, n_ff, n_expert}       merged: expert e's matrix is rows
 *   blk.N.ffn_up_exps.weight     {n_embd, n_ff, n_expert}       [e * n_out, (e + 1) * n_out) of
 *   blk.N.ffn_down_exps.weight   {n_ff, n_embd, n_expert}       the 3-D tensor
 *
 * or the older split layout, one 2-D tensor per expert and matrix: blk.N.ffn_gate.E.weight
 * {n_embd, n_ff}, blk.N.ffn_up.E.weight, blk.N.ffn_down.E.weight {n_ff, n_embd} (what llama.cpp
 * converted Mixtral to before the merged tensors; each expert may then have its own type).
 * Either way each expert becomes three struct pf_weight, so the FFN never asks which. */
#include "model/model.h"

#include "core/checked.h"
#include "core/error.h"
#include "tensor/types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Matrix p (0 gate, 1 up, 2 down) of expert x. */
static struct pf_weight *part_of(struct pf_expert *x, int p)
{
    return p == 0 ? &x->gate : p == 1 ? &x->up : &x->down;
}

/* The merged tensor `name` {n_in, n_out, n_expert}: matrix p of each expert in exp. */
static int find_merged(struct pinfer_model *m, const char *name, int64_t n_in, int64_t n_out, struct pf_expert *exp, int p)
{
    const int X = m->info.n_expert;
    const int idx = gguf_find_tensor(m->gguf, name);
    if (idx < 0) return pf_fail(PINFER_EFORMAT, "tensor %s is missing", name);
    const struct gguf_tensor *t = &m->gguf->tensors[idx];
    if (!pf_type_supported(t->type))
        return pf_fail(PINFER_EUNSUPPORTED, "tensor %s has type %d (%s), which pinfer does not support yet", name, t->type, pf_type_name(t->type));
    if (t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != X || t->ne[3] != 1)
        return pf_fail(PINFER_EFORMAT, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %d]", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                       (long long)n_in, (long long)n_out, X);
    size_t row, slice, all;
    if (!pf_row_size(t->type, n_in, &row))
        return pf_fail(PINFER_EFORMAT, "tensor %s: row of %lld is not a whole number of %s blocks", name, (long long)n_in, pf_type_name(t->type));
    if (ck_mul(row, (size_t)n_out, &slice) || ck_mul(slice, (size_t)X, &all) || all != t->nbytes)
        return pf_fail(PINFER_EFORMAT, "tensor %s: %llu bytes for %d experts of %lld rows of %zu bytes", name,
                       (unsigned long long)t->nbytes, X, (long long)n_out, row);
    for (int e = 0; e < X; e++) {
        struct pf_weight *w = part_of(&exp[e], p);
        w->type = t->type;
        w->n_in = n_in;
        w->n_out = n_out;
        w->row_size = row;
        w->name = t->name;
        w->data = (const void *)(uintptr_t)(t->file_offset + (uint64_t)e * slice); /* rebased later */
    }
    return 0;
}

int pf_moe_find_layer(struct pinfer_model *m, int l)
{
    const struct pinfer_model_info *h = &m->info;
    struct pf_layer *L = &m->layers[l];
    const int64_t E = h->n_embd, F = h->n_ff;
    char name[GGUF_MAX_NAME];
    int rc;
    snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", l);
    if ((rc = pf_model_find_weight(m, name, E, h->n_expert, &L->ffn_router, false))) return rc;
    if (h->prepared) return 0; /* the experts are bundles (load.c), L->exp stays NULL */
    L->exp = m->experts + (size_t)l * (size_t)h->n_expert;
    snprintf(name, sizeof name, "blk.%d.ffn_gate_exps.weight", l);
    const bool merged = gguf_find_tensor(m->gguf, name) >= 0;
    snprintf(name, sizeof name, "blk.%d.ffn_gate.0.weight", l);
    static const char *const part[3] = { "gate", "up", "down" };
    if (merged || gguf_find_tensor(m->gguf, name) < 0) {
        for (int p = 0; p < 3; p++) {
            snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.weight", l, part[p]);
            if ((rc = find_merged(m, name, p == 2 ? F : E, p == 2 ? E : F, L->exp, p))) return rc;
        }
        return 0;
    }
    for (int e = 0; e < h->n_expert; e++)
        for (int p = 0; p < 3; p++) {
            snprintf(name, sizeof name, "blk.%d.ffn_%s.%d.weight", l, part[p], e);
            if ((rc = pf_model_find_weight(m, name, p == 2 ? F : E, p == 2 ? E : F, part_of(&L->exp[e], p), false))) return rc;
        }
    return 0;
}

double pf_moe_layer_bytes(const struct pinfer_model *m, int l)
{
    const struct pf_layer *L = &m->layers[l];
    double b = 0;
    for (int e = 0; L->exp && e < m->info.n_expert; e++)
        b += pf_weight_bytes(&L->exp[e].gate) + pf_weight_bytes(&L->exp[e].up) + pf_weight_bytes(&L->exp[e].down);
    return b;
}
