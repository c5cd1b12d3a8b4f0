/* GGUF reader: parses a file image (memory or a read-only mapping) into struct gguf_file.
 *
 * Nothing read from the file is trusted. Every length, count, dimension and offset is checked
 * against a cap (gguf.h) and against the bytes that remain before it is used, with checked
 * arithmetic, and each failure names what was wrong and where (kv index/key, tensor name).
 * Strings are not copied: they point into the image, which must outlive the result. */
#include "gguf/gguf_internal.h"

#include "core/checked.h"
#include "core/error.h"
#include "tensor/types.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host (GGUF is little-endian)"
#endif

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */

/* Smallest encodings, used to bound counts by the bytes left before allocating for them:
 * a kv is a key length, a >= 1-byte key, a type and a >= 1-byte value; a tensor info is a
 * name length, a >= 1-byte name, n_dims, one dim, a type and an offset. */
#define MIN_KV_BYTES     (8 + 1 + 4 + 1)
#define MIN_TENSOR_BYTES (8 + 1 + 4 + 8 + 4 + 8)

/* ==== Cursor over the image ==== */

struct rd {
    const uint8_t *p;
    uint64_t size, pos;
};

static uint64_t rd_left(const struct rd *r) { return r->size - r->pos; }

/* Each reader returns false when the bytes are not there; callers turn that into a message
 * that says what they were reading. */
static bool rd_bytes(struct rd *r, void *out, uint64_t n)
{
    if (n > rd_left(r)) return false;
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return true;
}

static bool rd_u32(struct rd *r, uint32_t *v) { return rd_bytes(r, v, 4); }
static bool rd_u64(struct rd *r, uint64_t *v) { return rd_bytes(r, v, 8); }

/* Reads a GGUF string (u64 length + bytes). `what` names it in errors ("kv 3 key"). */
static int rd_str(struct rd *r, struct gguf_str *s, uint64_t cap, const char *what)
{
    uint64_t len;
    if (!rd_u64(r, &len))
        return pf_fail(PINFER_EFORMAT, "%s: file ends inside the string length at byte %" PRIu64,
                       what, r->pos);
    if (len > cap)
        return pf_fail(PINFER_EFORMAT, "%s: string length %" PRIu64 " is over the cap of %" PRIu64,
                       what, len, cap);
    if (len > rd_left(r))
        return pf_fail(PINFER_EFORMAT,
                       "%s: string length %" PRIu64 " goes beyond the end of the file (%" PRIu64
                       " bytes left)", what, len, rd_left(r));
    s->s = (const char *)(r->p + r->pos);
    s->len = len;
    r->pos += len;
    return 0;
}

/* ==== Lookup tables (also detect duplicates while parsing) ==== */

static int index_alloc(uint32_t **tab, uint64_t *mask, uint64_t n)
{
    uint64_t size = 8;
    while (size < 2 * n) size *= 2; /* n <= 2^20 by the caps, so this cannot overflow */
    *tab = calloc(size, sizeof **tab);
    if (!*tab) return pf_fail(PINFER_ENOMEM, "out of memory for a GGUF index of %" PRIu64, n);
    *mask = size - 1;
    return 0;
}

/* Inserts kv i; false if a kv with the same key is already there. */
static bool kv_index_add(struct gguf_file_priv *fp, uint64_t i)
{
    const struct gguf_str *k = &fp->pub.kv[i].key;
    uint64_t h = gguf_hash(k->s, k->len) & fp->kv_mask;
    for (;; h = (h + 1) & fp->kv_mask) {
        uint32_t slot = fp->kv_index[h];
        if (!slot) { fp->kv_index[h] = (uint32_t)(i + 1); return true; }
        const struct gguf_str *o = &fp->pub.kv[slot - 1].key;
        if (o->len == k->len && memcmp(o->s, k->s, k->len) == 0) return false;
    }
}

static bool tensor_index_add(struct gguf_file_priv *fp, uint64_t i)
{
    const char *name = fp->pub.tensors[i].name;
    uint64_t len = strlen(name);
    uint64_t h = gguf_hash(name, len) & fp->tensor_mask;
    for (;; h = (h + 1) & fp->tensor_mask) {
        uint32_t slot = fp->tensor_index[h];
        if (!slot) { fp->tensor_index[h] = (uint32_t)(i + 1); return true; }
        if (strcmp(fp->pub.tensors[slot - 1].name, name) == 0) return false;
    }
}

/* ==== Key/value section ==== */

/* Reads one scalar of type t into kv->v (widened). */
static bool read_scalar(struct rd *r, enum gguf_vtype t, struct gguf_kv *kv)
{
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f32; uint64_t u64; int64_t i64; double f64; } x;
    if (!rd_bytes(r, &x, gguf_vtype_size(t))) return false;
    switch (t) {
    case GGUF_U8: kv->v.u = x.u8; break;
    case GGUF_I8: kv->v.i = x.i8; break;
    case GGUF_U16: kv->v.u = x.u16; break;
    case GGUF_I16: kv->v.i = x.i16; break;
    case GGUF_U32: kv->v.u = x.u32; break;
    case GGUF_I32: kv->v.i = x.i32; break;
    case GGUF_F32: kv->v.f = x.f32; break;
    case GGUF_BOOL: kv->v.b = x.u8 != 0; break; /* llama.cpp reads any non-zero byte as true */
    case GGUF_U64: kv->v.u = x.u64; break;
    case GGUF_I64: kv->v.i = x.i64; break;
    case GGUF_F64: kv->v.f = x.f64; break;
    default: return false; /* not reached: callers pass scalar types only */
    }
    return true;
}

static int read_array(struct rd *r, struct gguf_kv *kv, const char *what)
{
    uint32_t et;
    uint64_t n;
    if (!rd_u32(r, &et))
        return pf_fail(PINFER_EFORMAT, "%s: file ends inside the array element type", what);
    if (et == GGUF_ARRAY)
        return pf_fail(PINFER_EFORMAT, "%s: array of arrays is not supported", what);
    if (et >= GGUF_VTYPE_COUNT)
        return pf_fail(PINFER_EFORMAT, "%s: unknown array element type %" PRIu32, what, et);
    if (!rd_u64(r, &n))
        return pf_fail(PINFER_EFORMAT, "%s: file ends inside the array length", what);
    if (n > GGUF_MAX_ARR_N)
        return pf_fail(PINFER_EFORMAT, "%s: array length %" PRIu64 " is over the cap of %llu",
                       what, n, GGUF_MAX_ARR_N);
    kv->arr_type = (enum gguf_vtype)et;
    kv->arr_n = n;
    kv->arr_data = r->p + r->pos;

    if (et != GGUF_STRING) {
        uint64_t bytes; /* cannot overflow: n <= 2^28, element size <= 8 */
        bytes = n * gguf_vtype_size((enum gguf_vtype)et);
        if (bytes > rd_left(r))
            return pf_fail(PINFER_EFORMAT,
                           "%s: array of %" PRIu64 " %s needs %" PRIu64
                           " bytes, beyond the end of the file (%" PRIu64 " bytes left)",
                           what, n, gguf_vtype_name((enum gguf_vtype)et), bytes, rd_left(r));
        r->pos += bytes;
        return 0;
    }

    /* Every string element needs at least its 8-byte length: bound n before allocating. */
    if (n > rd_left(r) / 8)
        return pf_fail(PINFER_EFORMAT,
                       "%s: array of %" PRIu64 " strings goes beyond the end of the file (%" PRIu64
                       " bytes left)", what, n, rd_left(r));
    if (n == 0) return 0;
    kv->arr_str = malloc(n * sizeof *kv->arr_str);
    if (!kv->arr_str)
        return pf_fail(PINFER_ENOMEM, "%s: out of memory for %" PRIu64 " strings", what, n);
    for (uint64_t j = 0; j < n; j++) {
        int rc = rd_str(r, &kv->arr_str[j], GGUF_MAX_STR_LEN, what);
        if (rc) return pf_fail_context(rc, "element %" PRIu64, j);
    }
    return 0;
}

/* A key must be non-empty and free of NUL bytes (callers look keys up as C strings). */
static int check_ident(const struct gguf_str *s, const char *what)
{
    if (s->len == 0) return pf_fail(PINFER_EFORMAT, "%s is empty", what);
    if (memchr(s->s, 0, s->len))
        return pf_fail(PINFER_EFORMAT, "%s contains a NUL byte", what);
    return 0;
}

static int read_kv(struct rd *r, struct gguf_file_priv *fp, uint64_t i)
{
    struct gguf_kv *kv = &fp->pub.kv[i];
    char what[160];
    snprintf(what, sizeof what, "kv %" PRIu64 " key", i);
    int rc = rd_str(r, &kv->key, GGUF_MAX_KEY_LEN, what);
    if (rc) return rc;
    if ((rc = check_ident(&kv->key, what))) return rc;
    /* From here on name the key itself (truncated: it can be 64 KiB of anything). */
    snprintf(what, sizeof what, "key '%.*s'", (int)(kv->key.len < 100 ? kv->key.len : 100),
             kv->key.s);
    if (!kv_index_add(fp, i)) return pf_fail(PINFER_EFORMAT, "duplicate %s", what);

    uint32_t t;
    if (!rd_u32(r, &t))
        return pf_fail(PINFER_EFORMAT, "%s: file ends inside the value type", what);
    if (t >= GGUF_VTYPE_COUNT)
        return pf_fail(PINFER_EFORMAT, "%s: unknown value type %" PRIu32, what, t);
    kv->type = (enum gguf_vtype)t;
    if (t == GGUF_STRING) return rd_str(r, &kv->str, GGUF_MAX_STR_LEN, what);
    if (t == GGUF_ARRAY) return read_array(r, kv, what);
    if (!read_scalar(r, kv->type, kv))
        return pf_fail(PINFER_EFORMAT, "%s: file ends inside the %s value", what,
                       gguf_vtype_name(kv->type));
    return 0;
}

/* ==== Tensor infos ==== */

/* ggml's names for type ids pinfer may not support, so an error can say "q4_K" rather than
 * "12". NULL marks ids ggml has removed or never used. */
static const char *const ggml_type_names[PF_TYPE_COUNT] = {
    [0] = "f32", [1] = "f16", [2] = "q4_0", [3] = "q4_1", [6] = "q5_0", [7] = "q5_1",
    [8] = "q8_0", [9] = "q8_1", [10] = "q2_K", [11] = "q3_K", [12] = "q4_K", [13] = "q5_K",
    [14] = "q6_K", [15] = "q8_K", [16] = "iq2_xxs", [17] = "iq2_xs", [18] = "iq3_xxs",
    [19] = "iq1_s", [20] = "iq4_nl", [21] = "iq3_s", [22] = "iq2_s", [23] = "iq4_xs",
    [24] = "i8", [25] = "i16", [26] = "i32", [27] = "i64", [28] = "f64", [29] = "iq1_m",
    [30] = "bf16", [34] = "tq1_0", [35] = "tq2_0", [39] = "mxfp4",
};

/* Unknown ids are malformed; ids ggml knows but pinfer cannot compute are unsupported. */
static int check_type(const struct gguf_tensor *t, uint32_t type)
{
    if (type < PF_TYPE_COUNT && pf_type_get((int)type)) return 0;
    if (type < PF_TYPE_COUNT && ggml_type_names[type])
        return pf_fail(PINFER_EUNSUPPORTED, "tensor '%s': tensor type %" PRIu32
                       " (%s) is not supported", t->name, type, ggml_type_names[type]);
    return pf_fail(PINFER_EFORMAT, "tensor '%s': unknown tensor type %" PRIu32, t->name, type);
}

/* Shape, type and size of one tensor; offsets are checked later (they need data_offset). */
static int read_tensor_info(struct rd *r, struct gguf_file_priv *fp, uint64_t i)
{
    struct gguf_tensor *t = &fp->pub.tensors[i];
    struct gguf_str name;
    char what[48];
    snprintf(what, sizeof what, "tensor %" PRIu64 " name", i);
    int rc = rd_str(r, &name, GGUF_MAX_KEY_LEN, what);
    if (rc) return rc;
    if ((rc = check_ident(&name, what))) return rc;
    if (name.len >= GGUF_MAX_NAME)
        return pf_fail(PINFER_EFORMAT, "tensor %" PRIu64 " name is too long: %" PRIu64
                       " bytes, the limit is %d", i, name.len, GGUF_MAX_NAME - 1);
    memcpy(t->name, name.s, name.len);
    t->name[name.len] = 0;
    if (!tensor_index_add(fp, i))
        return pf_fail(PINFER_EFORMAT, "duplicate tensor name '%s'", t->name);

    uint32_t n_dims;
    if (!rd_u32(r, &n_dims))
        return pf_fail(PINFER_EFORMAT, "tensor '%s': file ends inside n_dims", t->name);
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return pf_fail(PINFER_EFORMAT, "tensor '%s': n_dims %" PRIu32 " is not in 1..%d",
                       t->name, n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    uint64_t n_elem = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        int64_t ne = 1;
        if ((uint32_t)d < n_dims && !rd_bytes(r, &ne, 8))
            return pf_fail(PINFER_EFORMAT, "tensor '%s': file ends inside the shape", t->name);
        if (ne < 0)
            return pf_fail(PINFER_EFORMAT, "tensor '%s': dimension %d is negative (%" PRId64 ")",
                           t->name, d, ne);
        if (ne == 0)
            return pf_fail(PINFER_EFORMAT, "tensor '%s': dimension %d is zero", t->name, d);
        if (ck_mul_u64(n_elem, (uint64_t)ne, &n_elem) || n_elem > INT64_MAX)
            return pf_fail(PINFER_EFORMAT, "tensor '%s': element count overflows", t->name);
        t->ne[d] = ne;
    }

    uint32_t type;
    if (!rd_u32(r, &type))
        return pf_fail(PINFER_EFORMAT, "tensor '%s': file ends inside the type", t->name);
    if ((rc = check_type(t, type))) return rc;
    t->type = (int)type;
    const struct pf_type_info *ti = pf_type_get(t->type);
    if (t->ne[0] % ti->blck != 0)
        return pf_fail(PINFER_EFORMAT,
                       "tensor '%s': row of %" PRId64 " elements is not a multiple of the %s "
                       "block size %d", t->name, t->ne[0], ti->name, ti->blck);
    size_t row;
    uint64_t nbytes;
    if (!pf_row_size(t->type, t->ne[0], &row) ||
        ck_mul_u64(row, (uint64_t)t->ne[1], &nbytes) ||
        ck_mul_u64(nbytes, (uint64_t)t->ne[2], &nbytes) ||
        ck_mul_u64(nbytes, (uint64_t)t->ne[3], &nbytes))
        return pf_fail(PINFER_EFORMAT, "tensor '%s': byte size overflows", t->name);
    t->nbytes = nbytes;

    if (!rd_u64(r, &t->offset))
        return pf_fail(PINFER_EFORMAT, "tensor '%s': file ends inside the offset", t->name);
    return 0;
}

/* Where the data of each tensor lies, now that the data section's start is known. */
static int check_tensor_data(const struct gguf_file *f, struct gguf_tensor *t)
{
    if (t->offset % f->alignment != 0)
        return pf_fail(PINFER_EFORMAT,
                       "tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                       t->name, t->offset, f->alignment);
    uint64_t start, end;
    if (ck_add_u64(f->data_offset, t->offset, &start) || start >= f->size)
        return pf_fail(PINFER_EFORMAT,
                       "tensor '%s': offset %" PRIu64 " is past the end of the file (data section "
                       "starts at %" PRIu64 ", file size %" PRIu64 ")",
                       t->name, t->offset, f->data_offset, f->size);
    if (ck_add_u64(start, t->nbytes, &end) || end > f->size)
        return pf_fail(PINFER_EFORMAT,
                       "tensor '%s': data too short: needs %" PRIu64 " bytes at file offset %" PRIu64
                       " but the file has %" PRIu64, t->name, t->nbytes, start, f->size - start);
    t->file_offset = start;
    return 0;
}

/* Two tensors may not share bytes: the loader copies and relocates each tensor's data on its
 * own, so shared bytes would be moved twice and the model would run with wrong weights
 * (llama.cpp rejects such files too). Empty tensors own no bytes. */
struct span { uint64_t start, end; uint64_t i; };

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

static int check_overlaps(const struct gguf_file *f)
{
    if (f->n_tensors < 2) return 0;
    struct span *s = malloc(sizeof *s * (size_t)f->n_tensors);
    if (!s) return pf_fail(PINFER_ENOMEM, "out of memory checking %" PRIu64 " tensors", f->n_tensors);
    size_t n = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if (t->nbytes) s[n++] = (struct span){ t->file_offset, t->file_offset + t->nbytes, i };
    }
    qsort(s, n, sizeof *s, span_cmp);
    int rc = 0;
    for (size_t k = 1; k < n && !rc; k++)
        if (s[k].start < s[k - 1].end)
            rc = pf_fail(PINFER_EFORMAT, "tensors '%s' and '%s' overlap: their data share bytes %" PRIu64 "..%" PRIu64,
                         f->tensors[s[k - 1].i].name, f->tensors[s[k].i].name, s[k].start,
                         (s[k].end < s[k - 1].end ? s[k].end : s[k - 1].end) - 1);
    free(s);
    return rc;
}

/* ==== Whole file ==== */

static int read_header(struct rd *r, struct gguf_file *f)
{
    uint32_t magic;
    if (!rd_u32(r, &magic))
        return pf_fail(PINFER_EFORMAT, "file too short for a GGUF header (%" PRIu64 " bytes)",
                       r->size);
    if (magic != GGUF_MAGIC)
        return pf_fail(PINFER_EFORMAT, "bad magic %02x %02x %02x %02x: not a GGUF file",
                       r->p[0], r->p[1], r->p[2], r->p[3]);
    if (!rd_u32(r, &f->version))
        return pf_fail(PINFER_EFORMAT, "file ends inside the GGUF version");
    if (f->version == 1)
        return pf_fail(PINFER_EUNSUPPORTED, "GGUF version 1 is not supported (convert the file "
                       "with a newer llama.cpp)");
    if (f->version >= 0x01000000u) /* a small number byte-swapped: likely a big-endian file */
        return pf_fail(PINFER_EUNSUPPORTED, "unsupported GGUF version %" PRIu32
                       " (a big-endian file?)", f->version);
    if (f->version != 2 && f->version != 3)
        return pf_fail(PINFER_EUNSUPPORTED, "unsupported GGUF version %" PRIu32
                       " (supported: 2, 3)", f->version);
    if (!rd_u64(r, &f->n_tensors) || !rd_u64(r, &f->n_kv))
        return pf_fail(PINFER_EFORMAT, "file ends inside the GGUF header");

    /* Bound both counts by the bytes left before anything is allocated for them. */
    uint64_t left = rd_left(r), need_t, need_kv, need;
    if (f->n_tensors > GGUF_MAX_TENSORS)
        return pf_fail(PINFER_EFORMAT, "n_tensors %" PRIu64 " is over the cap of %llu",
                       f->n_tensors, GGUF_MAX_TENSORS);
    if (f->n_kv > GGUF_MAX_KV)
        return pf_fail(PINFER_EFORMAT, "n_kv %" PRIu64 " is over the cap of %llu", f->n_kv,
                       GGUF_MAX_KV);
    need_t = f->n_tensors * MIN_TENSOR_BYTES; /* no overflow: counts are capped */
    need_kv = f->n_kv * MIN_KV_BYTES;
    if (need_t > left)
        return pf_fail(PINFER_EFORMAT, "n_tensors %" PRIu64 " needs at least %" PRIu64
                       " bytes, beyond the end of the file (%" PRIu64 " bytes left)",
                       f->n_tensors, need_t, left);
    if (need_kv > left)
        return pf_fail(PINFER_EFORMAT, "n_kv %" PRIu64 " needs at least %" PRIu64
                       " bytes, beyond the end of the file (%" PRIu64 " bytes left)",
                       f->n_kv, need_kv, left);
    need = need_t + need_kv;
    if (need > left)
        return pf_fail(PINFER_EFORMAT, "n_tensors %" PRIu64 " and n_kv %" PRIu64
                       " need at least %" PRIu64 " bytes, beyond the end of the file (%" PRIu64
                       " bytes left)", f->n_tensors, f->n_kv, need, left);
    return 0;
}

/* Takes general.alignment (u32, a power of two) if present. */
static int read_alignment(struct gguf_file *f)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *kv = gguf_find(f, "general.alignment");
    if (!kv) return 0;
    if (kv->type != GGUF_U32)
        return pf_fail(PINFER_EFORMAT, "general.alignment has type %s, expected u32",
                       gguf_vtype_name(kv->type));
    if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)) != 0)
        return pf_fail(PINFER_EFORMAT, "general.alignment %" PRIu64 " is not a power of two",
                       kv->v.u);
    f->alignment = (uint32_t)kv->v.u;
    return 0;
}

static int parse(struct gguf_file_priv *fp, struct rd *r)
{
    struct gguf_file *f = &fp->pub;
    int rc = read_header(r, f);
    if (rc) return rc;

    /* +1: calloc(0) may return NULL, which would read as out-of-memory */
    f->kv = calloc(f->n_kv + 1, sizeof *f->kv);
    f->tensors = calloc(f->n_tensors + 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors)
        return pf_fail(PINFER_ENOMEM, "out of memory for %" PRIu64 " kv and %" PRIu64 " tensors",
                       f->n_kv, f->n_tensors);
    if ((rc = index_alloc(&fp->kv_index, &fp->kv_mask, f->n_kv)) ||
        (rc = index_alloc(&fp->tensor_index, &fp->tensor_mask, f->n_tensors)))
        return rc;

    for (uint64_t i = 0; i < f->n_kv; i++)
        if ((rc = read_kv(r, fp, i))) return rc;
    if ((rc = read_alignment(f))) return rc;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if ((rc = read_tensor_info(r, fp, i))) return rc;

    /* The data section starts at the next multiple of the alignment. A file without tensors
     * may end before that padding (vocab-only files); nothing is read there. */
    if (ck_align_u64(r->pos, f->alignment, &f->data_offset))
        return pf_fail(PINFER_EFORMAT, "data section offset overflows");
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if ((rc = check_tensor_data(f, &f->tensors[i]))) return rc;
    return check_overlaps(f);
}

int gguf_parse(struct gguf_file **out, const void *buf, uint64_t size)
{
    *out = NULL;
    if (!buf && size) return pf_fail(PINFER_EINVAL, "gguf_parse: NULL buffer");
    struct gguf_file_priv *fp = calloc(1, sizeof *fp);
    if (!fp) return pf_fail(PINFER_ENOMEM, "out of memory for a GGUF file");
    fp->pub.fd = -1;
    fp->pub.data = buf;
    fp->pub.size = size;
    /* a zero-size buffer may come with a NULL pointer: give the cursor something to point at */
    static const uint8_t empty[1];
    struct rd r = { buf ? buf : empty, size, 0 };
    int rc = parse(fp, &r);
    if (rc) {
        gguf_close(&fp->pub);
        return rc;
    }
    *out = &fp->pub;
    return 0;
}

int gguf_open(struct gguf_file **out, const char *path)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pf_fail(PINFER_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pf_fail(PINFER_EIO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return pf_fail(PINFER_EIO, "'%s' is not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    void *map = NULL;
    if (size > 0) { /* mmap of 0 bytes fails; an empty file gets "too short" from the parser */
        if (size > SIZE_MAX) {
            close(fd);
            return pf_fail(PINFER_EIO, "'%s' is too large to map", path);
        }
        map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return pf_fail(PINFER_EIO, "cannot map '%s': %s", path, strerror(e));
        }
    }
    struct gguf_file *f;
    int rc = gguf_parse(&f, map, size);
    if (rc) {
        if (map) munmap(map, (size_t)size);
        close(fd);
        return pf_fail_context(rc, "%s", path);
    }
    f->fd = fd;
    f->mapped = map != NULL;
    *out = f;
    return 0;
}

void gguf_close(struct gguf_file *f)
{
    if (!f) return;
    struct gguf_file_priv *fp = gguf_priv(f);
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) free(f->kv[i].arr_str);
    free(f->kv);
    free(f->tensors);
    free(fp->kv_index);
    free(fp->tensor_index);
    if (f->mapped) munmap((void *)f->data, (size_t)f->size);
    if (f->fd >= 0) close(f->fd);
    free(fp);
}
