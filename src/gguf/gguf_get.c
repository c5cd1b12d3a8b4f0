/* Lookups on a parsed GGUF file: keys and tensors by name, typed getters that convert between
 * compatible types (any integer that fits; f32 from f32/f64), value type names. */
#include "gguf/gguf_internal.h"

#include "core/error.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

size_t gguf_vtype_size(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

const char *gguf_vtype_name(enum gguf_vtype t)
{
    static const char *const names[GGUF_VTYPE_COUNT] = {
        [GGUF_U8] = "u8", [GGUF_I8] = "i8", [GGUF_U16] = "u16", [GGUF_I16] = "i16",
        [GGUF_U32] = "u32", [GGUF_I32] = "i32", [GGUF_F32] = "f32", [GGUF_BOOL] = "bool",
        [GGUF_STRING] = "string", [GGUF_ARRAY] = "array", [GGUF_U64] = "u64",
        [GGUF_I64] = "i64", [GGUF_F64] = "f64",
    };
    return (unsigned)t < GGUF_VTYPE_COUNT ? names[t] : "?";
}

int64_t gguf_find_kv_n(const struct gguf_file *f, const char *key, uint64_t len)
{
    const struct gguf_file_priv *fp = gguf_priv(f);
    for (uint64_t h = gguf_hash(key, len) & fp->kv_mask;; h = (h + 1) & fp->kv_mask) {
        uint32_t slot = fp->kv_index[h];
        if (!slot) return -1;
        const struct gguf_str *k = &f->kv[slot - 1].key;
        if (k->len == len && memcmp(k->s, key, len) == 0) return slot - 1;
    }
}

int64_t gguf_find_tensor_n(const struct gguf_file *f, const char *name, uint64_t len)
{
    const struct gguf_file_priv *fp = gguf_priv(f);
    if (len >= GGUF_MAX_NAME) return -1;
    for (uint64_t h = gguf_hash(name, len) & fp->tensor_mask;; h = (h + 1) & fp->tensor_mask) {
        uint32_t slot = fp->tensor_index[h];
        if (!slot) return -1;
        const char *n = f->tensors[slot - 1].name;
        if (strncmp(n, name, len) == 0 && n[len] == 0) return slot - 1;
    }
}

const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key)
{
    if (!f || !key) return NULL;
    int64_t i = gguf_find_kv_n(f, key, strlen(key));
    return i < 0 ? NULL : &f->kv[i];
}

int gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    if (!f || !name) return -1;
    return (int)gguf_find_tensor_n(f, name, strlen(name));
}

/* ==== Typed getters ==== */

static bool is_signed(enum gguf_vtype t)
{
    return t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64;
}

static bool is_unsigned(enum gguf_vtype t)
{
    return t == GGUF_U8 || t == GGUF_U16 || t == GGUF_U32 || t == GGUF_U64;
}

static int wrong_type(const struct gguf_kv *kv, const char *want)
{
    return pf_fail(PINFER_EFORMAT, "key '%.*s' has type %s, expected %s",
                   (int)(kv->key.len < 100 ? kv->key.len : 100), kv->key.s,
                   gguf_vtype_name(kv->type), want);
}

/* Looks up an integer key as [lo, hi]; 1 if absent. */
static int get_int(const struct gguf_file *f, const char *key, int64_t lo, uint64_t hi,
                   const char *want, int64_t *s, uint64_t *u)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 1;
    bool neg;
    if (is_signed(kv->type)) neg = kv->v.i < 0;
    else if (is_unsigned(kv->type)) neg = false;
    else return wrong_type(kv, want);
    if (neg ? kv->v.i < lo : kv->v.u > hi) {
        if (neg)
            return pf_fail(PINFER_EFORMAT, "key '%s' value %" PRId64 " does not fit %s", key,
                           kv->v.i, want);
        return pf_fail(PINFER_EFORMAT, "key '%s' value %" PRIu64 " does not fit %s", key,
                       kv->v.u, want);
    }
    /* a non-negative signed value has the same bits as an unsigned one in the union */
    *s = neg ? kv->v.i : (int64_t)kv->v.u;
    *u = kv->v.u;
    return 0;
}

int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out)
{
    int64_t s;
    uint64_t u;
    int rc = get_int(f, key, 0, UINT32_MAX, "u32", &s, &u);
    if (rc == 0) *out = (uint32_t)u;
    return rc;
}

int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out)
{
    int64_t s;
    uint64_t u;
    int rc = get_int(f, key, INT64_MIN, INT64_MAX, "i64", &s, &u);
    if (rc == 0) *out = s;
    return rc;
}

int gguf_get_f32(const struct gguf_file *f, const char *key, float *out)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_F32 && kv->type != GGUF_F64) return wrong_type(kv, "f32");
    /* converting an out-of-range double to float is undefined behaviour in C */
    if (kv->v.f > FLT_MAX || kv->v.f < -FLT_MAX) {
        if (!isinf(kv->v.f))
            return pf_fail(PINFER_EFORMAT, "key '%s' value %g does not fit f32", key, kv->v.f);
    }
    *out = (float)kv->v.f;
    return 0;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_BOOL) return wrong_type(kv, "bool");
    *out = kv->v.b;
    return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, char *buf, size_t cap)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_STRING) return wrong_type(kv, "string");
    /* the value is read as a C string: "llama\0junk" must not pass for "llama" */
    if (kv->str.len && memchr(kv->str.s, 0, (size_t)kv->str.len))
        return pf_fail(PINFER_EFORMAT, "metadata %s: the string contains a NUL byte", key);
    if (cap == 0) return 0;
    size_t n = kv->str.len < cap - 1 ? (size_t)kv->str.len : cap - 1;
    memcpy(buf, kv->str.s, n);
    buf[n] = 0;
    return 0;
}
