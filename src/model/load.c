/* Loading a llama-architecture GGUF: hyper-parameters from metadata, tensors checked against
 * the shapes those parameters imply, weights copied into one anonymous (huge-page backed)
 * arena with large sequential reads, and the tokenizer.
 *
 * Why copy instead of mmap: decode streams every weight once per token and is bound by memory
 * bandwidth; 4 KiB page-cache pages cost TLB misses that 2 MiB pages do not (llama.cpp measured
 * 7.1 tok/s from the mapping vs 11.6 from its own memory on this machine kind), and the copy is
 * the memory we account for. The data section is read with O_DIRECT where the filesystem allows
 * it, so the page cache does not hold a second copy. --mmap keeps the old behaviour.
 *
 * Which FFN activation a file uses (docs/model-format.md): the string key `pinfer.ffn_act`
 * ("silu", "relu", "reglu", "drelu", "gelu"); absent, a file from PowerInfer's converter
 * (key `powerinfer.sparse_threshold`, or predictor tensors blk.N.fc1.weight) is a ReLU-fied
 * Llama: relu(gate) * up; otherwise SiLU as in every llama.cpp llama model.
 *
 * Mixture-of-experts files (llama.expert_count > 0: Mixtral) carry a router and per-expert FFN
 * tensors instead of ffn_gate/up/down; model/moe.c finds and checks them.
 *
 * Prepared models (key pinfer.prepared, docs/sparse-format.md) carry each layer's FFN as one
 * bundle tensor instead of ffn_gate/up/down, the neuron permutation and frequencies as metadata
 * arrays, and optional predictor tensors (fc1, fc2) with their threshold; they land in the same
 * arena as every other weight (struct pf_bundles, model.h). */
#include "model/model.h"

#include "core/clock.h"

#include "core/checked.h"
#include "core/file.h"
#include "core/error.h"
#include "model/act.h"
#include "tensor/kernels.h"
#include "tensor/types.h"
#include "tensor/validate.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARENA_ALIGN 4096
#define READ_CHUNK (16u << 20)

void (*pf_model_after_parse_hook)(const char *path);

struct pinfer_model_params pinfer_model_default_params(void)
{
    struct pinfer_model_params p = { .use_mmap = false, .vocab_only = false, .check_tensors = true };
    return p;
}

/* ==== Hyper-parameters ==== */

static int get_int(const struct gguf_file *f, const char *arch, const char *suffix, int *out,
                   bool required, int lo, int hi)
{
    char key[128];
    int64_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_i64(f, key, &v);
    if (rc < 0) return pf_fail_context(rc, "metadata %s", key);
    if (rc == 1) {
        if (required) return pf_fail(PINFER_EFORMAT, "metadata key %s is missing", key);
        return 0;
    }
    if (v < lo || v > hi)
        return pf_fail(PINFER_EFORMAT, "metadata %s = %lld is out of range %d..%d", key, (long long)v, lo, hi);
    *out = (int)v;
    return 0;
}

static int get_float(const struct gguf_file *f, const char *arch, const char *suffix, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(f, key, out);
    return rc < 0 ? pf_fail_context(rc, "metadata %s", key) : 0;
}

static int load_hparams(struct pinfer_model *m)
{
    const struct gguf_file *f = m->gguf;
    struct pinfer_model_info *h = &m->info;
    int rc;
    if ((rc = gguf_get_str(f, "general.architecture", h->arch, sizeof h->arch)) != 0)
        return rc < 0 ? rc : pf_fail(PINFER_EFORMAT, "metadata key general.architecture is missing");
    if (strcmp(h->arch, "llama") != 0)
        return pf_fail(PINFER_EUNSUPPORTED, "architecture '%s' is not supported (only llama, which Mistral and Mixtral use too)", h->arch);
    const char *a = h->arch;
    const int big = 1 << 20;
    if ((rc = get_int(f, a, "embedding_length", &h->n_embd, true, 1, big)) ||
        (rc = get_int(f, a, "block_count", &h->n_layer, true, 1, 4096)) ||
        (rc = get_int(f, a, "feed_forward_length", &h->n_ff, true, 1, big)) ||
        (rc = get_int(f, a, "attention.head_count", &h->n_head, true, 1, 4096)))
        return rc;
    h->n_head_kv = h->n_head;
    h->n_ctx_train = 2048;
    h->norm_eps = 1e-5f;
    h->rope_freq_base = 10000.0f;
    if ((rc = get_int(f, a, "attention.head_count_kv", &h->n_head_kv, false, 1, h->n_head)) ||
        (rc = get_int(f, a, "context_length", &h->n_ctx_train, false, 1, 1 << 24)) ||
        (rc = get_int(f, a, "expert_count", &h->n_expert, false, 0, 1024)) ||
        (rc = get_int(f, a, "expert_used_count", &h->n_expert_used, false, 0, 1024)) ||
        (rc = get_int(f, a, "attention.sliding_window", &h->sliding_window, false, 0, 1 << 24)) ||
        (rc = get_float(f, a, "attention.layer_norm_rms_epsilon", &h->norm_eps)) ||
        (rc = get_float(f, a, "rope.freq_base", &h->rope_freq_base)))
        return rc;
    if (h->n_embd % h->n_head != 0)
        return pf_fail(PINFER_EFORMAT, "embedding_length %d is not a multiple of head_count %d", h->n_embd, h->n_head);
    if (h->n_head % h->n_head_kv != 0)
        return pf_fail(PINFER_EFORMAT, "head_count %d is not a multiple of head_count_kv %d", h->n_head, h->n_head_kv);
    m->head_dim = h->n_embd / h->n_head;
    h->n_rot = m->head_dim;
    if ((rc = get_int(f, a, "rope.dimension_count", &h->n_rot, false, 2, m->head_dim)))
        return rc;
    if (h->n_rot % 2)
        return pf_fail(PINFER_EFORMAT, "rope.dimension_count %d is odd", h->n_rot);
    if (!(h->norm_eps > 0 && h->norm_eps < 1))
        return pf_fail(PINFER_EFORMAT, "layer_norm_rms_epsilon %g is out of range", (double)h->norm_eps);
    if (!(h->rope_freq_base > 0 && h->rope_freq_base < 1e12f))
        return pf_fail(PINFER_EFORMAT, "rope.freq_base %g is out of range", (double)h->rope_freq_base);
    /* RoPE scaling as llama.cpp reads it: rope.scaling.factor (or the older rope.scale_linear)
       divides positions whatever the type; types other than none/linear change the formula */
    char st[32] = "linear";
    float factor = 0.0f;
    if ((rc = gguf_get_str(f, "llama.rope.scaling.type", st, sizeof st)) < 0) return pf_fail_context(rc, "metadata llama.rope.scaling.type");
    if ((rc = get_float(f, a, "rope.scaling.factor", &factor))) return rc;
    if (!gguf_find(f, "llama.rope.scaling.factor") && (rc = get_float(f, a, "rope.scale_linear", &factor))) return rc;
    if (strcmp(st, "none") != 0 && strcmp(st, "linear") != 0)
        return pf_fail(PINFER_EUNSUPPORTED, "RoPE scaling type '%s' is not supported (none and linear are)", st);
    if (!(factor == 0.0f || (factor >= 1e-3f && factor <= 1e3f)))
        return pf_fail(PINFER_EFORMAT, "rope.scaling.factor %g is out of range", (double)factor);
    h->rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
    /* as llama.cpp: any expert count makes the layers mixtures (model/moe.c), each token using
       expert_used_count of them */
    if (h->n_expert > 0 && (h->n_expert_used < 1 || h->n_expert_used > h->n_expert))
        return pf_fail(PINFER_EFORMAT, "metadata llama.expert_used_count = %d is out of range 1..%d (expert_count)", h->n_expert_used, h->n_expert);
    if (h->n_expert == 0 && h->n_expert_used != 0)
        return pf_fail(PINFER_EFORMAT, "metadata llama.expert_used_count = %d without llama.expert_count", h->n_expert_used);

    char act[32];
    h->act = PINFER_ACT_SILU;
    rc = gguf_get_str(f, "pinfer.ffn_act", act, sizeof act);
    if (rc < 0) return rc;
    if (rc == 0) {
        if (pf_act_parse(act, &h->act))
            return pf_fail(PINFER_EUNSUPPORTED, "unknown FFN activation '%s' in pinfer.ffn_act", act);
    } else if (gguf_find(f, "powerinfer.sparse_threshold") || gguf_find_tensor(f, "blk.0.fc1.weight") >= 0) {
        h->act = PINFER_ACT_RELU;
    }
    uint32_t ver = 0;
    rc = gguf_get_u32(f, "pinfer.prepared", &ver);
    if (rc < 0) return pf_fail_context(rc, "metadata pinfer.prepared");
    if (rc == 0 && ver != 1 && ver != 2)
        return pf_fail(PINFER_EUNSUPPORTED, "prepared-model format version %u is not supported (this pinfer reads versions 1 and 2)", ver);
    h->prepared = (int)ver;
    return 0;
}

/* ==== Tensors ==== */

int pf_model_find_weight(struct pinfer_model *m, const char *name, int64_t n_in, int64_t n_out,
                       struct pf_weight *w, bool optional)
{
    const struct gguf_file *f = m->gguf;
    int idx = gguf_find_tensor(f, name);
    memset(w, 0, sizeof *w);
    if (idx < 0) return optional ? 1 : pf_fail(PINFER_EFORMAT, "tensor %s is missing", name);
    const struct gguf_tensor *t = &f->tensors[idx];
    if (!pf_type_supported(t->type))
        return pf_fail(PINFER_EUNSUPPORTED, "tensor %s has type %d (%s), which pinfer does not support yet", name, t->type, pf_type_name(t->type));
    if (t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != 1 || t->ne[3] != 1)
        return pf_fail(PINFER_EFORMAT, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                       (long long)n_in, (long long)n_out);
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->name = t->name;
    if (!pf_row_size(t->type, n_in, &w->row_size))
        return pf_fail(PINFER_EFORMAT, "tensor %s: row of %lld is not a whole number of %s blocks", name, (long long)n_in, pf_type_name(t->type));
    w->data = (const void *)(uintptr_t)t->file_offset; /* rebased onto memory later */
    return 0;
}

/* A norm vector (n floats, stored as F32, F16 or BF16). Its source is remembered in
 * m->norm_src[slot] and converted to f32 by load_weights. */
static int find_norm(struct pinfer_model *m, const char *name, int64_t n, int slot)
{
    struct pf_weight *w = &m->norm_src[slot];
    int rc = pf_model_find_weight(m, name, n, 1, w, false);
    if (rc) return rc;
    if (w->type != PF_TYPE_F32 && w->type != PF_TYPE_F16 && w->type != PF_TYPE_BF16)
        return pf_fail(PINFER_EUNSUPPORTED, "norm tensor %s has type %s; expected f32/f16/bf16", name, pf_type_name(w->type));
    return 0;
}

/* ==== Prepared models: bundles, permutation, predictors ==== */

/* A numeric metadata array of exactly n elements of type t; NULL (after pf_fail) otherwise. */
static const void *get_array(const struct gguf_file *f, const char *key, enum gguf_vtype t, uint64_t n, int *rc)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    *rc = 0;
    if (!kv) { *rc = pf_fail(PINFER_EFORMAT, "metadata key %s is missing", key); return NULL; }
    if (kv->type != GGUF_ARRAY || kv->arr_type != t || kv->arr_n != n) {
        *rc = pf_fail(PINFER_EFORMAT, "metadata %s must be an array of %llu %s", key, (unsigned long long)n, gguf_vtype_name(t));
        return NULL;
    }
    return kv->arr_data;
}

/* Unit (l, e) of a prepared model (e < 0: a dense layer) into B. */
static int load_prepared_unit(struct pinfer_model *m, int l, int e, struct pf_bundles *B, int32_t *perm, float *freq,
                              uint8_t *seen)
{
    const struct gguf_file *f = m->gguf;
    const struct pinfer_model_info *h = &m->info;
    const int64_t E = h->n_embd, F = h->n_ff;
    char name[GGUF_MAX_NAME], key[128], unit[48];
    int rc;

    pf_unit_name(unit, sizeof unit, l, e);
    pf_unit_tensor_name(name, sizeof name, l, e, "ffn_bundle");
    int idx = gguf_find_tensor(f, name);
    if (idx < 0) return pf_fail(PINFER_EFORMAT, "prepared model: tensor %s is missing", name);
    const struct gguf_tensor *t = &f->tensors[idx];
    /* the part types: version 1, the tensor's one type; version 2, the key's three */
    int types[3] = { t->type, t->type, t->type };
    if (h->prepared >= 2) {
        pf_unit_key(key, sizeof key, "pinfer.bundle", l, e, "types");
        const uint32_t *ta = get_array(f, key, GGUF_U32, 3, &rc);
        if (!ta) return rc;
        for (int p = 0; p < 3; p++) {
            uint32_t v;
            memcpy(&v, &ta[p], sizeof v);
            types[p] = v <= 0xffff ? (int)v : -1; /* any id pf_bundle_layout can name */
        }
    }
    if ((rc = pf_bundle_layout(B, types, E, name))) return rc;
    /* one type: {n_embd, 3, n_ff} of it; parts of different types: I8 {slot bytes, n_ff} */
    const bool one = types[0] == types[1] && types[1] == types[2];
    if (one && t->type == types[0]) {
        if (t->ne[0] != E || t->ne[1] != 3 || t->ne[2] != F || t->ne[3] != 1)
            return pf_fail(PINFER_EFORMAT, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, 3, %lld]", name,
                           (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                           (long long)E, (long long)F);
    } else if (h->prepared >= 2 && t->type == PF_TYPE_I8) {
        if ((uint64_t)t->ne[0] != B->slot_size || t->ne[1] != F || t->ne[2] != 1 || t->ne[3] != 1)
            return pf_fail(PINFER_EFORMAT, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%zu, %lld]: slots of "
                           "%zu bytes (gate %s, up %s, down %s)", name, (long long)t->ne[0], (long long)t->ne[1],
                           (long long)t->ne[2], (long long)t->ne[3], B->slot_size, (long long)F, B->slot_size,
                           pf_type_name(types[0]), pf_type_name(types[1]), pf_type_name(types[2]));
    } else {
        return pf_fail(PINFER_EFORMAT, "tensor %s has type %s; its parts (gate %s, up %s, down %s) need %s", name,
                       pf_type_name(t->type), pf_type_name(types[0]), pf_type_name(types[1]), pf_type_name(types[2]),
                       one ? pf_type_name(types[0]) : "i8");
    }
    B->n_ff = (int)F;
    B->data = (const void *)(uintptr_t)t->file_offset; /* rebased onto memory later */

    pf_unit_key(key, sizeof key, "pinfer.bundle", l, e, "perm");
    const void *pa = get_array(f, key, GGUF_I32, (uint64_t)F, &rc);
    if (!pa) return rc;
    memcpy(perm, pa, (size_t)F * sizeof *perm);
    memset(seen, 0, (size_t)F);
    for (int64_t j = 0; j < F; j++) {
        if (perm[j] < 0 || perm[j] >= F || seen[perm[j]])
            return pf_fail(PINFER_EFORMAT, "metadata %s is not a permutation of 0..%lld (entry %lld = %d)", key, (long long)F - 1, (long long)j, perm[j]);
        seen[perm[j]] = 1;
    }
    B->perm = perm;
    pf_unit_key(key, sizeof key, "pinfer.bundle", l, e, "freq");
    if (gguf_find(f, key)) {
        const void *fa = get_array(f, key, GGUF_F32, (uint64_t)F, &rc);
        if (!fa) return rc;
        memcpy(freq, fa, (size_t)F * sizeof *freq);
    } else {
        memset(freq, 0, (size_t)F * sizeof *freq);
    }
    B->freq = freq;
    B->share = 1.0f;
    if (e >= 0) {
        B->share = (float)h->n_expert_used / (float)h->n_expert;
        pf_unit_key(key, sizeof key, "pinfer.bundle", l, e, "share");
        rc = gguf_get_f32(f, key, &B->share);
        if (rc < 0) return pf_fail_context(rc, "metadata %s", key);
        if (!(B->share >= 0 && B->share <= 1)) return pf_fail(PINFER_EFORMAT, "metadata %s = %g is not in [0, 1]", key, (double)B->share);
    }

    /* predictor: fc1 {n_embd, r}, fc2 {r, n_ff}, both or neither */
    char n1[GGUF_MAX_NAME], n2[GGUF_MAX_NAME];
    pf_unit_tensor_name(n1, sizeof n1, l, e, "fc1");
    pf_unit_tensor_name(n2, sizeof n2, l, e, "fc2");
    int i1 = gguf_find_tensor(f, n1), i2 = gguf_find_tensor(f, n2);
    if ((i1 < 0) != (i2 < 0)) return pf_fail(PINFER_EFORMAT, "%s has only one of fc1 and fc2", unit);
    if (i1 < 0) return 0;
    int64_t r = f->tensors[i1].ne[1];
    if (r < 1 || r > (1 << 20)) return pf_fail(PINFER_EFORMAT, "%s has %lld rows", n1, (long long)r);
    if ((rc = pf_model_find_weight(m, n1, E, r, &B->fc1, false))) return rc;
    if ((rc = pf_model_find_weight(m, n2, r, F, &B->fc2, false))) return rc;
    pf_unit_key(key, sizeof key, "pinfer.predictor", l, e, "threshold");
    rc = gguf_get_f32(f, key, &B->pred_threshold);
    if (rc < 0) return pf_fail_context(rc, "metadata %s", key);
    if (rc == 1) return pf_fail(PINFER_EFORMAT, "metadata key %s is missing (%s has a predictor)", key, unit);
    if (!isfinite(B->pred_threshold)) return pf_fail(PINFER_EFORMAT, "metadata %s is not finite", key);
    m->pred_bytes += f->tensors[i1].nbytes + f->tensors[i2].nbytes;
    return 0;
}

static int load_prepared(struct pinfer_model *m)
{
    struct pinfer_model_info *h = &m->info;
    const size_t X = (size_t)pf_model_experts(m), L = (size_t)h->n_layer * X, F = (size_t)h->n_ff;
    uint32_t cs = 16;
    int rc = gguf_get_u32(m->gguf, "pinfer.cluster_size", &cs);
    if (rc < 0) return pf_fail_context(rc, "metadata pinfer.cluster_size");
    if (cs < 1 || cs > (uint32_t)h->n_ff) return pf_fail(PINFER_EFORMAT, "pinfer.cluster_size %u is out of range 1..%d", cs, h->n_ff);
    h->cluster_size = (int)cs;
    size_t n;
    if (ck_mul(L, F, &n)) return pf_fail(PINFER_EFORMAT, "units x n_ff overflows");
    m->bundles = calloc(L, sizeof *m->bundles);
    int32_t *perm = malloc(n * sizeof *perm);
    float *freq = malloc(n * sizeof *freq);
    uint8_t *seen = malloc(F);
    if (!m->bundles || !perm || !freq || !seen) {
        free(perm); free(freq); free(seen);
        return pf_fail(PINFER_ENOMEM, "out of memory for the neuron permutations");
    }
    rc = 0;
    h->has_predictors = true;
    m->n_units = (int)L;
    for (size_t u = 0; u < L && !rc; u++) {
        const int l = (int)(u / X), e = h->n_expert ? (int)(u % X) : -1;
        rc = load_prepared_unit(m, l, e, &m->bundles[u], perm + u * F, freq + u * F, seen);
        if (u % X == 0) m->layers[l].ffn_b = &m->bundles[u];
        if (!m->bundles[u].fc1.name) h->has_predictors = false;
    }
    free(seen);
    if (rc) {
        /* the arrays belong to layer 0 (freed through it by pinfer_model_free) */
        m->bundles[0].perm = perm;
        m->bundles[0].freq = freq;
    }
    return rc;
}

/* Llama 3.1/3.2 RoPE frequency factors: rope_freqs.weight, n_rot/2 f32 values that divide each
 * rotation frequency (llama.cpp's freq_factors). Optional; copied out of the file mapping. */
static int load_rope_freqs(struct pinfer_model *m)
{
    const int idx = gguf_find_tensor(m->gguf, "rope_freqs.weight");
    if (idx < 0) return 0;
    const struct gguf_tensor *t = &m->gguf->tensors[idx];
    const int n = m->info.n_rot / 2;
    if (t->type != PF_TYPE_F32 || t->ne[0] != n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1)
        return pf_fail(PINFER_EFORMAT, "rope_freqs.weight must be %d f32 values (n_rot / 2), is %s {%lld, %lld}", n,
                       pf_type_name(t->type), (long long)t->ne[0], (long long)t->ne[1]);
    if (!(m->rope_freqs = malloc(sizeof(float) * (size_t)n))) return pf_fail(PINFER_ENOMEM, "out of memory");
    memcpy(m->rope_freqs, m->gguf->data + t->file_offset, sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++)
        if (!(m->rope_freqs[i] > 0 && m->rope_freqs[i] < 1e30f))
            return pf_fail(PINFER_EFORMAT, "rope_freqs.weight[%d] = %g is not a positive number", i, (double)m->rope_freqs[i]);
    m->info.rope_freq_factors = true;
    return 0;
}

static int load_tensors(struct pinfer_model *m)
{
    struct pinfer_model_info *h = &m->info;
    int rc;
    int64_t E = h->n_embd, F = h->n_ff, V, Q = (int64_t)m->head_dim * h->n_head,
            KV = (int64_t)m->head_dim * h->n_head_kv;
    char name[GGUF_MAX_NAME];

    int idx = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (idx < 0) return pf_fail(PINFER_EFORMAT, "tensor token_embd.weight is missing");
    V = m->gguf->tensors[idx].ne[1];
    if (V < 1 || V > (1 << 24)) return pf_fail(PINFER_EFORMAT, "token_embd.weight has %lld rows", (long long)V);
    h->n_vocab = (int)V;
    if ((rc = pf_model_find_weight(m, "token_embd.weight", E, V, &m->tok_embd, false))) return rc;
    m->norm_src = calloc(1 + 2 * (size_t)h->n_layer, sizeof *m->norm_src);
    if (!m->norm_src) return pf_fail(PINFER_ENOMEM, "out of memory");
    if ((rc = find_norm(m, "output_norm.weight", E, 0))) return rc;
    rc = pf_model_find_weight(m, "output.weight", E, V, &m->output, true);
    if (rc < 0) return rc;
    if (rc == 1) m->output = m->tok_embd; /* tied embeddings */

    m->layers = calloc((size_t)h->n_layer, sizeof *m->layers);
    if (!m->layers) return pf_fail(PINFER_ENOMEM, "out of memory for %d layers", h->n_layer);
    if (h->n_expert && !(m->experts = calloc((size_t)h->n_layer * (size_t)h->n_expert, sizeof *m->experts)))
        return pf_fail(PINFER_ENOMEM, "out of memory for %d layers of %d experts", h->n_layer, h->n_expert);
    for (int l = 0; l < h->n_layer; l++) {
        struct pf_layer *L = &m->layers[l];
#define W(field, suffix, nin, nout) \
        snprintf(name, sizeof name, "blk.%d." suffix ".weight", l); \
        if ((rc = pf_model_find_weight(m, name, nin, nout, &L->field, false))) return rc;
#define N(slot, suffix) \
        snprintf(name, sizeof name, "blk.%d." suffix ".weight", l); \
        if ((rc = find_norm(m, name, E, slot))) return rc;
        N(1 + 2 * l, "attn_norm")
        W(wq, "attn_q", E, Q)
        W(wk, "attn_k", E, KV)
        W(wv, "attn_v", E, KV)
        W(wo, "attn_output", Q, E)
        N(2 + 2 * l, "ffn_norm")
        if (h->n_expert) {
            if ((rc = pf_moe_find_layer(m, l))) return rc;
        } else if (!h->prepared) {
            W(ffn_gate, "ffn_gate", E, F)
            W(ffn_up, "ffn_up", E, F)
            W(ffn_down, "ffn_down", F, E)
        }
#undef W
#undef N
    }
    if (h->prepared && (rc = load_prepared(m))) return rc;
    if ((rc = load_rope_freqs(m))) return rc;
    /* most common big-matrix type, for reporting */
    h->weight_type = h->prepared ? m->bundles[0].type[PF_PART_GATE]
                   : h->n_expert ? m->layers[0].exp[0].gate.type : m->layers[0].ffn_gate.type;
    uint64_t np = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const struct gguf_tensor *t = &m->gguf->tensors[i];
        np += (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        h->weight_bytes += t->nbytes;
    }
    h->n_params = np;
    uint64_t embd = (uint64_t)m->tok_embd.row_size * (uint64_t)m->tok_embd.n_out;
    h->decode_bytes = h->weight_bytes - embd + m->tok_embd.row_size;
    if (m->output.name == m->tok_embd.name) h->decode_bytes += embd;
    h->decode_bytes -= m->pred_bytes; /* dense decode does not run the predictors */
    /* a MoE step reads expert_used_count of the experts (their mean size: with uniform routing) */
    for (int l = 0; h->n_expert && l < h->n_layer; l++)
        h->decode_bytes -= (uint64_t)(pf_moe_layer_bytes(m, l) * (double)(h->n_expert - h->n_expert_used) / h->n_expert);
    for (int u = 0; h->n_expert && u < m->n_units; u++) /* a prepared mixture: its units likewise */
        h->decode_bytes -= (uint64_t)((double)m->bundles[u].slot_size * h->n_ff * (h->n_expert - h->n_expert_used) / h->n_expert);
    return 0;
}

/* ==== Weight memory ==== */

/* Reads [off, off+len) of the parsed file into dst (never whatever now has its name: pf_reopen).
 * Tries O_DIRECT (block-aligned, bypassing the page cache); falls back to buffered reads where the
 * filesystem refuses it. len may run past the end of the file by less than a block (the arena is
 * page-aligned); ending anywhere before the parsed size means the file was cut short while we read. */
static int read_range(const struct gguf_file *f, const char *path, uint64_t off, uint64_t len, uint8_t *dst)
{
    int fd = pf_reopen(f->fd, path, O_DIRECT, f->size);
    bool direct = fd >= 0;
    if (!direct && (fd = pf_reopen(f->fd, path, 0, f->size)) < 0) return fd;
    uint64_t done = 0;
    while (done < len) {
        size_t want = len - done > READ_CHUNK ? READ_CHUNK : (size_t)(len - done);
        ssize_t n = pread(fd, dst + done, want, (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && direct && errno == EINVAL) { /* filesystem without O_DIRECT, or tail */
            close(fd);
            direct = false;
            if ((fd = pf_reopen(f->fd, path, 0, f->size)) < 0) return fd;
            continue;
        }
        if (n < 0) { int e = errno; close(fd); return pf_fail(PINFER_EIO, "read error in %s at offset %llu: %s", path, (unsigned long long)(off + done), strerror(e)); }
        if (n == 0) break;
        done += (uint64_t)n;
    }
    close(fd);
    if (off + done < f->size && done < len)
        return pf_fail(PINFER_EIO, "%s was truncated while its weights were read: it ends at byte %llu, was %llu bytes",
                       path, (unsigned long long)(off + done), (unsigned long long)f->size);
    return 0;
}

/* Tensor data offsets in a GGUF file are only 32-byte aligned, so in a straight copy of the data
 * section every row of a tensor at 32 mod 64 straddles cache lines and each 64-byte SIMD load is
 * split in two (about 10% of Q4_0 decode time on Zen 5). After the one big read, tensors are
 * moved up to 64-byte boundaries; relocs maps a file offset to its tensor's shift. */
struct reloc { uint64_t off, end, shift, ti; /* ti: index in f->tensors */ };

static int reloc_cmp(const void *a, const void *b)
{
    const struct reloc *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Memory address of file offset x (inside some tensor). */
static const uint8_t *reloc_addr(const uint8_t *base, const struct reloc *r, uint64_t n, uint64_t x)
{
    uint64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        uint64_t mid = (lo + hi) / 2;
        if (r[mid].off <= x) lo = mid; else hi = mid;
    }
    return base + x + (n && r[lo].off <= x ? r[lo].shift : 0);
}

static bool is_bundle_offset(const struct pinfer_model *m, uint64_t off)
{
    for (int u = 0; m->bundles && u < m->n_units; u++)
        if ((uintptr_t)m->bundles[u].data == off) return true;
    return false;
}

/* Reads the tensors [i, k) of rel (adjacent in the file) into the arena at p (file offset alo at
 * p), widened to whole pages for O_DIRECT; the widening lands in the arena's own room of the
 * neighbouring (offloaded) tensors. */
static int read_run(const struct gguf_file *f, const char *path, uint8_t *p, uint64_t alo, uint64_t ahi, const struct reloc *rel, uint64_t i, uint64_t k,
                    size_t *resident)
{
    uint64_t a = rel[i].off / ARENA_ALIGN * ARENA_ALIGN, b = (rel[k - 1].end + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (a < alo) a = alo;
    if (b > ahi) b = ahi;
    /* huge pages only where the whole 2 MiB lies inside the run (no bundle bytes made resident) */
    uintptr_t h0 = ((uintptr_t)(p + (a - alo)) + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
    uintptr_t h1 = (uintptr_t)(p + (b - alo)) & ~(uintptr_t)((2u << 20) - 1);
    if (h1 > h0) madvise((void *)h0, h1 - h0, MADV_HUGEPAGE);
    *resident += (size_t)(b - a);
    return read_range(f, path, a, b - a, p + (a - alo));
}

/* The finite-number check of an I8 bundle tensor t (at p in memory): every slot's gate, up and
 * down rows in their own types. I8 tensors are only ever bundles (the loader refuses others). */
static int check_bundle(const struct pinfer_model *m, const struct gguf_tensor *t, const uint8_t *p)
{
    for (int u = 0; m->bundles && u < m->n_units; u++) {
        const struct pf_bundles *B = &m->bundles[u];
        if ((uintptr_t)B->data != t->file_offset) continue;
        static const char *const part[3] = { "gate", "up", "down" };
        for (int64_t k = 0; k < B->n_ff; k++)
            for (int q = 0; q < 3; q++) {
                size_t bad;
                if (!pf_validate_data(B->type[q], p + (size_t)k * B->slot_size + B->off[q], B->row[q], &bad))
                    return pf_fail(PINFER_EFORMAT, "tensor '%s': slot %lld holds a non-finite %s in its %s row (%s): the file is corrupt",
                                   t->name, (long long)k, pf_type_get(B->type[q])->blck > 1 ? "block scale" : "value",
                                   part[q], pf_type_name(B->type[q]));
            }
        return 0;
    }
    return pf_fail(PINFER_EFORMAT, "tensor '%s' has type i8 but is not a neuron bundle", t->name);
}

/* Copies the tensor data into one anonymous arena (file offset x at arena + x - alo, then each
 * tensor moved up to a 64-byte boundary). With offload_ffn the bundle tensors are neither read
 * nor moved: their room in the arena stays untouched (so never resident) and the neuron cache
 * (src/cache/) reads them from the file. */
static int load_weights(struct pinfer_model *m, const char *path, bool use_mmap, bool offload_ffn, bool check)
{
    const struct gguf_file *f = m->gguf;
    uint64_t lo = UINT64_MAX, hi = 0, n = f->n_tensors;
    if (n == 0) return pf_fail(PINFER_EFORMAT, "model has no tensors");
    struct reloc *rel = calloc(n, sizeof *rel);
    bool *skip = calloc(n, sizeof *skip);
    if (!rel || !skip) { free(rel); free(skip); return pf_fail(PINFER_ENOMEM, "out of memory"); }
    for (uint64_t i = 0; i < n; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        rel[i].off = t->file_offset;
        rel[i].end = t->file_offset + t->nbytes;
        rel[i].ti = i;
        if (t->file_offset < lo) lo = t->file_offset;
        if (rel[i].end > hi) hi = rel[i].end;
    }
    qsort(rel, n, sizeof *rel, reloc_cmp);
    /* under a budget the token embeddings stay in the file too (a step needs one row per token,
       read on demand), unless the output head shares them */
    const bool embd_off = offload_ffn && m->output.name != m->tok_embd.name;
    for (uint64_t i = 0; i < n; i++)
        skip[i] = offload_ffn && (is_bundle_offset(m, rel[i].off) || (embd_off && rel[i].off == (uintptr_t)m->tok_embd.data));
    const uint8_t *base;
    if (use_mmap) {
        base = f->data;
    } else {
        uint64_t alo = lo / ARENA_ALIGN * ARENA_ALIGN, ahi;
        if (ck_align_u64(hi, ARENA_ALIGN, &ahi)) { free(rel); free(skip); return pf_fail(PINFER_EFORMAT, "tensor data end overflows"); }
        size_t data_sz = (size_t)(ahi - alo), sz;
        /* room for the 64-byte moves: at most 63 bytes per tensor */
        if (ck_add(data_sz, (size_t)n * 64 + ARENA_ALIGN, &sz)) { free(rel); free(skip); return pf_fail(PINFER_EFORMAT, "tensor data too large"); }
        void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) { free(rel); free(skip); return pf_fail(PINFER_ENOMEM, "cannot allocate %.2f GiB for weights: %s", (double)sz / (1u << 30), strerror(errno)); }
        m->arena = p;
        m->arena_size = sz;
        int rc = 0;
        if (!offload_ffn) {
            madvise(p, sz, MADV_HUGEPAGE);
            m->resident_bytes = data_sz;
            rc = read_range(f, path, alo, data_sz, p);
        } else {
            for (uint64_t i = 0; i < n && !rc;) {
                if (skip[i]) { i++; continue; }
                uint64_t k = i + 1;
                while (k < n && !skip[k]) k++;
                rc = read_run(f, path, p, alo, ahi, rel, i, k, &m->resident_bytes);
                i = k;
            }
        }
        if (rc) { free(rel); free(skip); return rc; }
        base = (const uint8_t *)p - alo;
        /* shifts never decrease, so moving the last tensor first never overwrites unmoved data */
        uint64_t shift = 0;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t addr = (uint64_t)(uintptr_t)(base + rel[i].off) + shift;
            shift += (64 - addr % 64) % 64;
            rel[i].shift = shift;
        }
        for (uint64_t i = n; i-- > 0;)
            if (rel[i].shift && !skip[i])
                memmove((uint8_t *)(uintptr_t)(base + rel[i].off + rel[i].shift), base + rel[i].off, (size_t)(rel[i].end - rel[i].off));
    }
    /* every resident tensor's numbers finite (tensor/validate.c); costs one pass over the weights */
    for (uint64_t j = 0; check && j < n; j++) {
        const struct gguf_tensor *t = &f->tensors[rel[j].ti];
        size_t bad;
        if (skip[j] || !t->nbytes) continue;
        if (t->type == PF_TYPE_I8) { /* a mixed-type bundle: raw slots, checked part by part */
            int rc = check_bundle(m, t, reloc_addr(base, rel, n, t->file_offset));
            if (rc) { free(rel); free(skip); return rc; }
            continue;
        }
        if (pf_validate_data(t->type, reloc_addr(base, rel, n, t->file_offset), (size_t)t->nbytes, &bad)) continue;
        const struct pf_type_info *ti = pf_type_get(t->type);
        const bool blocks = ti && ti->blck > 1;
        const int64_t per_row = ti ? t->ne[0] / ti->blck : 1;
        free(rel); free(skip);
        return pf_fail(PINFER_EFORMAT, "tensor '%s' (%s) holds a non-finite %s in row %lld (%s %zu): the file is corrupt",
                       t->name, pf_type_name(t->type), blocks ? "block scale" : "value",
                       (long long)(per_row > 0 ? (int64_t)bad / per_row : 0), blocks ? "block" : "element", bad);
    }
    free(skip);
    /* rebase every weight pointer (stored as file offsets) onto memory */
#define REBASE(w) (w).data = reloc_addr(base, rel, n, (uintptr_t)(w).data)
    m->embd_file_off = (uintptr_t)m->tok_embd.data;
    if (embd_off) m->tok_embd.data = NULL; /* rows read on demand (pinfer_decode) */
    else REBASE(m->tok_embd);
    if (m->output.name != m->tok_embd.name) REBASE(m->output);
    else m->output = m->tok_embd;
    for (int l = 0; l < m->info.n_layer; l++) {
        struct pf_layer *L = &m->layers[l];
        REBASE(L->wq); REBASE(L->wk); REBASE(L->wv); REBASE(L->wo);
        if (L->ffn_b) {
            for (int e = 0; e < pf_model_experts(m); e++) {
                struct pf_bundles *B = &L->ffn_b[e];
                B->file_off = (uintptr_t)B->data;
                if (offload_ffn) B->data = NULL;
                else REBASE(*B);
                if (B->fc1.name) { REBASE(B->fc1); REBASE(B->fc2); }
            }
            if (m->info.n_expert) REBASE(L->ffn_router);
        } else if (L->exp) {
            REBASE(L->ffn_router);
            for (int e = 0; e < m->info.n_expert; e++) { REBASE(L->exp[e].gate); REBASE(L->exp[e].up); REBASE(L->exp[e].down); }
        } else {
            REBASE(L->ffn_gate); REBASE(L->ffn_up); REBASE(L->ffn_down);
        }
    }
#undef REBASE
    /* norms: converted to f32 (small; F32 ones are copied too, so all are aligned floats) */
    int n_norms = 1 + 2 * m->info.n_layer;
    size_t E = (size_t)m->info.n_embd;
    m->f32_norms = malloc(sizeof(float) * E * (size_t)n_norms);
    if (!m->f32_norms) { free(rel); return pf_fail(PINFER_ENOMEM, "out of memory for norms"); }
    for (int i = 0; i < n_norms; i++) {
        const struct pf_weight *w = &m->norm_src[i];
        const uint8_t *src = reloc_addr(base, rel, n, (uintptr_t)w->data);
        float *dst = m->f32_norms + (size_t)i * E;
        for (size_t j = 0; j < E; j++) {
            uint16_t hv;
            if (w->type == PF_TYPE_F32) memcpy(&dst[j], src + 4 * j, 4);
            else { memcpy(&hv, src + 2 * j, 2); dst[j] = w->type == PF_TYPE_F16 ? pf_fp16_to_fp32(hv) : pf_bf16_to_fp32(hv); }
        }
    }
    m->output_norm = m->f32_norms;
    for (int l = 0; l < m->info.n_layer; l++) {
        m->layers[l].attn_norm = m->f32_norms + (size_t)(1 + 2 * l) * E;
        m->layers[l].ffn_norm = m->f32_norms + (size_t)(2 + 2 * l) * E;
    }
    free(m->norm_src);
    m->norm_src = NULL;
    free(rel);
    return 0;
}

/* ==== Public API ==== */

int pinfer_model_load(struct pinfer_model **out, const char *path, const struct pinfer_model_params *params)
{
    struct pinfer_model_params p = params ? *params : pinfer_model_default_params();
    struct pinfer_model *m;
    int rc;
    *out = NULL;
    if (!path) return pf_fail(PINFER_EINVAL, "no model path given");
    m = calloc(1, sizeof *m);
    if (!m) return pf_fail(PINFER_ENOMEM, "out of memory");
    if ((rc = gguf_open(&m->gguf, path))) { pinfer_model_free(m); return rc; } /* names the path */
    if (pf_model_after_parse_hook) pf_model_after_parse_hook(path);
    if ((rc = pf_vocab_load(&m->vocab, m->gguf))) goto err;
    if (p.vocab_only) {
        m->info.n_vocab = pf_vocab_n(m->vocab);
        gguf_get_str(m->gguf, "general.architecture", m->info.arch, sizeof m->info.arch);
        *out = m;
        return 0;
    }
    if ((rc = load_hparams(m))) goto err;
    if ((rc = load_tensors(m))) goto err;
    if (m->info.n_vocab != pf_vocab_n(m->vocab)) {
        rc = pf_fail(PINFER_EFORMAT, "token_embd.weight has %d rows but the vocabulary has %d tokens", m->info.n_vocab, pf_vocab_n(m->vocab));
        goto err;
    }
    if (p.mem_budget) {
        if (!m->bundles) {
            rc = pf_fail(PINFER_EINVAL, "a memory budget needs a prepared model (its FFN as neuron bundles): run pinfer prepare -m %s -o PREPARED.gguf first", path);
            goto err;
        }
        if (p.use_mmap) { rc = pf_fail(PINFER_EINVAL, "a memory budget and --mmap exclude each other"); goto err; }
        for (int u = 0; u < m->n_units; u++)
            if ((uintptr_t)m->bundles[u].data % 4096) {
                rc = pf_fail(PINFER_EFORMAT, "blk.%d.ffn_bundle.weight is not 4096-aligned in the file (direct I/O needs it)", u);
                goto err;
            }
        m->mem_budget = p.mem_budget;
        if (!(m->path = strdup(path))) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto err; }
    }
    if ((rc = load_weights(m, path, p.use_mmap, p.mem_budget > 0, p.check_tensors))) goto err;
    if (p.mem_budget) {
        /* what else of the file stays in memory: its header, mapped and read while parsing (a
           prepared model's per-unit arrays: 59 MB for a Mixtral-8x7B's 256 units), and the
           model's copies of every unit's permutation and frequencies; the budget's plan must
           leave room for them (a Mixtral run's RSS passed its budget by 94 MiB without) */
        m->resident_bytes += (m->gguf->data_offset + 4095) / 4096 * 4096;
        m->resident_bytes += (uint64_t)m->n_units * (uint64_t)m->info.n_ff * (sizeof(int32_t) + sizeof(float));
    }
    if (p.mem_budget && m->resident_bytes > p.mem_budget) {
        rc = pf_fail(PINFER_ENOMEM, "memory budget of %.1f MiB is too small: the weights that always stay in memory (attention, embeddings, output, predictors, the file's metadata) alone take %.1f MiB",
                     (double)p.mem_budget / (1 << 20), (double)m->resident_bytes / (1 << 20));
        goto err;
    }
    *out = m;
    return 0;
err:
    pf_fail_context(rc, "%s", path);
    pinfer_model_free(m);
    return rc;
}

void pinfer_model_free(struct pinfer_model *m)
{
    if (!m) return;
    if (m->arena) munmap(m->arena, m->arena_size);
    free(m->path);
    free(m->f32_norms);
    free(m->rope_freqs);
    free(m->norm_src);
    free(m->layers);
    free(m->experts);
    if (m->bundles) {
        free(m->bundles[0].perm); /* one array for all layers */
        free(m->bundles[0].freq);
        free(m->bundles);
    }
    pf_vocab_free(m->vocab);
    gguf_close(m->gguf);
    free(m);
}

void pinfer_model_get_info(const struct pinfer_model *m, struct pinfer_model_info *info) { *info = m->info; }

const char *pinfer_model_desc(const struct pinfer_model *m, char *buf, size_t cap)
{
    const struct pinfer_model_info *h = &m->info;
    snprintf(buf, cap, "%s %.2fB params, %s, %.2f GiB, %d layers, dim %d, ffn %d (%s), heads %d/%d, vocab %d",
             h->arch, (double)h->n_params / 1e9, pf_type_name(h->weight_type),
             (double)h->weight_bytes / (1u << 30), h->n_layer, h->n_embd, h->n_ff, pf_act_name(h->act),
             h->n_head, h->n_head_kv, h->n_vocab);
    if (h->n_expert) {
        size_t n = strlen(buf);
        snprintf(buf + n, cap > n ? cap - n : 0, ", %d experts (%d used)", h->n_expert, h->n_expert_used);
    }
    if (h->prepared) {
        size_t n = strlen(buf);
        snprintf(buf + n, cap > n ? cap - n : 0, ", prepared (clusters of %d, %s)", h->cluster_size,
                 h->has_predictors ? "predictors" : "no predictors");
    }
    return buf;
}

/* ==== Tokenizer wrappers ==== */

int pinfer_tokenize(const struct pinfer_model *m, const char *text, size_t len, bool add_bos, int32_t *out, int cap)
{
    return pf_vocab_tokenize(m->vocab, text, len, add_bos, out, cap);
}
int pinfer_tokenize_ex(const struct pinfer_model *m, const char *text, size_t len, bool add_bos, bool parse_special,
                       int32_t *out, int cap)
{
    return pf_vocab_tokenize_ex(m->vocab, text, len, add_bos, parse_special, out, cap);
}
int pinfer_token_to_piece(const struct pinfer_model *m, int32_t token, char *buf, int cap)
{
    return pf_vocab_piece(m->vocab, token, buf, cap);
}
int32_t pinfer_token_bos(const struct pinfer_model *m) { return pf_vocab_bos(m->vocab); }
int32_t pinfer_token_eos(const struct pinfer_model *m) { return pf_vocab_eos(m->vocab); }
int pinfer_n_vocab(const struct pinfer_model *m) { return pf_vocab_n(m->vocab); }

