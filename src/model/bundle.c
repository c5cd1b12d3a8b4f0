/* The byte layout of a bundle slot (docs/sparse-format.md): three rows of n_embd elements, the
 * gate row and the up row in the source model's types and the down column in the type prepare
 * re-quantized it to, one after the other. The reader (load.c) and the writer (prepare/) both
 * derive the layout here, so they cannot disagree on a slot's size or where its parts lie. */
#include "model/model.h"

#include "core/checked.h"
#include "core/error.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <stdio.h>
#include <string.h>

static const char *const part_name[3] = { "gate", "up", "down" };

/* Alignment a part of this type needs: F32 rows are read as floats; every other type here
 * (F16, BF16 and the block types, whose fields are at most 16-bit) as 16-bit items. */
static size_t part_align(int type) { return type == PF_TYPE_F32 ? 4 : 2; }

int pf_bundle_layout(struct pf_bundles *b, const int types[3], int64_t n_embd, const char *what)
{
    const struct pf_kernels *ref = &pf_kernels_ref;
    size_t at = 0;
    for (int p = 0; p < 3; p++) {
        const int t = types[p];
        if (!pf_type_supported(t))
            return pf_fail(PINFER_EUNSUPPORTED, "%s: the %s part has type %d (%s), which pinfer cannot compute with", what,
                           part_name[p], t, pf_type_name(t));
        const bool kernels = p == PF_PART_DOWN ? ref->down_accum[t] && ref->down_panel[t] : ref->gather_dot[t] != NULL;
        if (!kernels)
            return pf_fail(PINFER_EUNSUPPORTED, "%s: pinfer has no bundle kernels for the %s part's type %s", what,
                           part_name[p], pf_type_name(t));
        size_t r;
        if (!pf_row_size(t, n_embd, &r))
            return pf_fail(PINFER_EFORMAT, "%s: a %s row of %lld is not a whole number of %s blocks", what, part_name[p],
                           (long long)n_embd, pf_type_name(t));
        if (at % part_align(t))
            return pf_fail(PINFER_EFORMAT, "%s: the %s part (%s) would start at byte %zu of a slot, not a multiple of %zu",
                           what, part_name[p], pf_type_name(t), at, part_align(t));
        b->type[p] = t;
        b->row[p] = r;
        b->off[p] = at;
        if (ck_add(at, r, &at)) return pf_fail(PINFER_EFORMAT, "%s: slot size overflows", what);
    }
    /* consecutive slots keep every part aligned */
    for (int p = 0; p < 3; p++)
        if (at % part_align(types[p]))
            return pf_fail(PINFER_EFORMAT, "%s: slots of %zu bytes would misalign the %s part (%s)", what, at, part_name[p],
                           pf_type_name(types[p]));
    b->n_embd = (int)n_embd;
    b->slot_size = at;
    return 0;
}

void pf_unit_tensor_name(char *buf, size_t n, int l, int e, const char *what)
{
    if (e < 0) snprintf(buf, n, "blk.%d.%s.weight", l, what);
    else snprintf(buf, n, "blk.%d.%s.%d.weight", l, what, e);
}

void pf_unit_key(char *buf, size_t n, const char *prefix, int l, int e, const char *what)
{
    if (e < 0) snprintf(buf, n, "%s.%d.%s", prefix, l, what);
    else snprintf(buf, n, "%s.%d.%d.%s", prefix, l, e, what);
}

void pf_unit_name(char *buf, size_t n, int l, int e)
{
    if (e < 0) snprintf(buf, n, "layer %d", l);
    else snprintf(buf, n, "layer %d expert %d", l, e);
}

int pf_model_reuse_windows(const struct gguf_file *g, double *win, int max)
{
    const struct gguf_kv *kw = gguf_find(g, "pinfer.prepare.reuse_windows");
    if (!kw || kw->type != GGUF_ARRAY || kw->arr_type != GGUF_U32 || kw->arr_n < 1 || kw->arr_n > (uint64_t)max) return 0;
    const int K = (int)kw->arr_n;
    for (int k = 0; k < K; k++) {
        uint32_t v;
        memcpy(&v, (const char *)kw->arr_data + 4 * (size_t)k, 4);
        win[k] = v;
        if (v < 1 || (k > 0 && win[k] <= win[k - 1])) return 0;
    }
    return K;
}

const void *pf_model_reuse_curve(const struct gguf_file *g, const struct pinfer_model *m, int u, const char *what, int K, float hi,
                           uint64_t *n)
{
    char key[96];
    const int X = pf_model_experts(m);
    pf_unit_key(key, sizeof key, "pinfer.bundle", u / X, m->info.n_expert ? u % X : -1, what);
    const struct gguf_kv *kv = gguf_find(g, key);
    *n = kv && kv->type == GGUF_ARRAY && kv->arr_type == GGUF_F32 ? kv->arr_n : 0;
    if (*n == 0 || K < 1 || *n % (uint64_t)K) return NULL;
    for (uint64_t i = 0; i < *n; i++) {
        float v;
        memcpy(&v, (const char *)kv->arr_data + 4 * i, 4);
        if (!(v == -1 || (v >= 0 && v <= hi))) return NULL;
    }
    return kv->arr_data;
}
