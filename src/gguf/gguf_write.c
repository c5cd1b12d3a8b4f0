/* GGUF writer: collects keys and tensor declarations in memory, then streams the file.
 *
 * Keys are serialized (type + value bytes) as they are set, so writing the header is a copy.
 * The file is written to a fresh temp file beside the destination (pf_tmpfile_create) and renamed over it only
 * after everything was written and fsync'd: a crash, a full disk or a caller that gives up
 * never leaves a half-written model under the destination name. Everything the writer accepts
 * is within the reader's caps, so what it writes always reads back. */
#include "gguf/gguf_internal.h"

#include "core/checked.h"
#include "core/error.h"
#include "tensor/types.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WBUF_SIZE (1u << 20) /* output buffer: large sequential writes, few syscalls */

struct bbuf { uint8_t *p; size_t n, cap; };

struct wkv {
    char *key;
    size_t key_len;
    struct bbuf val;      /* u32 type + value, exactly as in the file */
};

struct wtensor {
    char name[GGUF_MAX_NAME];
    int type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t offset, nbytes;
};

enum wstate { W_DECLARE, W_DATA, W_DONE, W_FAILED };

/* Open-addressing index of names (slot = position + 1, 0 = empty), kept at most half full and
 * doubled as it fills: a copied file's 2^20 keys are found in constant time, not by a scan. */
struct windex {
    uint32_t *slot;
    size_t mask;
};

struct gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct windex kv_ix;
    struct wtensor *t;
    size_t n_t, cap_t;
    struct windex t_ix;
    uint32_t alignment;
    uint64_t data_size;     /* sum of the padded tensor sizes */

    enum wstate state;
    int fd;
    char *path, *tmp;       /* destination and temp file (tmp set while it exists on disk) */
    size_t cur;             /* tensor being written */
    uint64_t cur_done;      /* bytes of it written so far */
    uint64_t bytes_out;     /* bytes handed to the file so far (buffer included) */
    uint8_t *buf;
    size_t buf_n;
    int err;                /* sticky failure of the streaming phase, with its message */
    char errmsg[512];
};

/* ==== Byte buffers ==== */

static bool bb_put(struct bbuf *b, const void *data, size_t n)
{
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n) {
            if (ck_mul(cap, 2, &cap)) return false;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    return true;
}

static bool bb_u32(struct bbuf *b, uint32_t v) { return bb_put(b, &v, 4); }
static bool bb_u64(struct bbuf *b, uint64_t v) { return bb_put(b, &v, 8); }
static bool bb_str(struct bbuf *b, const char *s, uint64_t len)
{
    return bb_u64(b, len) && bb_put(b, s, (size_t)len);
}

/* ==== Declaring ==== */

int gguf_writer_new(struct gguf_writer **out)
{
    struct gguf_writer *w = calloc(1, sizeof *w);
    *out = NULL;
    if (!w) return pf_fail(PINFER_ENOMEM, "out of memory for a GGUF writer");
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    w->fd = -1;
    *out = w;
    return 0;
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp) unlink(w->tmp); /* never finished: drop the partial file */
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    free(w->kv);
    free(w->kv_ix.slot);
    free(w->t_ix.slot);
    free(w->t);
    free(w->path);
    free(w->tmp);
    free(w->buf);
    free(w);
}

static int check_declaring(const struct gguf_writer *w, const char *what)
{
    if (w->state != W_DECLARE)
        return pf_fail(PINFER_EINVAL, "gguf writer: %s after gguf_writer_begin", what);
    return 0;
}

/* general.alignment decides every tensor offset, so it is checked and taken when set. */
static int take_alignment(struct gguf_writer *w, enum gguf_vtype type, uint64_t v)
{
    if (type != GGUF_U32)
        return pf_fail(PINFER_EINVAL, "general.alignment must be a u32, not %s",
                       gguf_vtype_name(type));
    if (v == 0 || (v & (v - 1)) != 0)
        return pf_fail(PINFER_EINVAL, "general.alignment %" PRIu64 " is not a power of two", v);
    if (w->n_t > 0 && v != w->alignment)
        return pf_fail(PINFER_EINVAL, "general.alignment must be set before the first tensor");
    w->alignment = (uint32_t)v;
    return 0;
}

static const char *kv_name(const struct gguf_writer *w, size_t i, size_t *len)
{
    *len = w->kv[i].key_len;
    return w->kv[i].key;
}

static const char *t_name(const struct gguf_writer *w, size_t i, size_t *len)
{
    *len = strlen(w->t[i].name);
    return w->t[i].name;
}

typedef const char *(*name_fn)(const struct gguf_writer *, size_t, size_t *);

/* Position of name in the index, or -1; *at is the slot where it would go. */
static int64_t ix_find(const struct gguf_writer *w, const struct windex *ix, name_fn nf, const char *name, size_t len,
                       size_t *at)
{
    *at = 0;
    if (!ix->slot) return -1;
    for (size_t h = gguf_hash(name, len) & ix->mask;; h = (h + 1) & ix->mask) {
        *at = h;
        if (!ix->slot[h]) return -1;
        size_t ol;
        const char *o = nf(w, ix->slot[h] - 1, &ol);
        if (ol == len && memcmp(o, name, len) == 0) return (int64_t)ix->slot[h] - 1;
    }
}

/* Makes room for entry n (0-based, about to be added), rebuilding the index when it would be
 * more than half full. */
static int ix_grow(const struct gguf_writer *w, struct windex *ix, name_fn nf, size_t n)
{
    size_t size = ix->slot ? ix->mask + 1 : 0;
    if (2 * (n + 1) <= size) return 0;
    size_t ns = size ? 2 * size : 64;
    while (2 * (n + 1) > ns) ns *= 2;
    uint32_t *tab = calloc(ns, sizeof *tab);
    if (!tab) return pf_fail(PINFER_ENOMEM, "gguf writer: out of memory for an index of %zu names", n + 1);
    free(ix->slot);
    ix->slot = tab;
    ix->mask = ns - 1;
    for (size_t i = 0; i < n; i++) {
        size_t len, at;
        const char *nm = nf(w, i, &len);
        ix_find(w, ix, nf, nm, len, &at);
        tab[at] = (uint32_t)(i + 1);
    }
    return 0;
}

/* Stores a serialized value under key, replacing an earlier value of the same key (so a copied
 * file's keys can be overridden) and keeping the first position. Takes ownership of val. */
static int put_kv(struct gguf_writer *w, const char *key, struct bbuf *val)
{
    int rc = check_declaring(w, "setting a key");
    size_t len = key ? strlen(key) : 0;
    if (!rc && len == 0) rc = pf_fail(PINFER_EINVAL, "gguf writer: empty key");
    if (!rc && len > GGUF_MAX_KEY_LEN)
        rc = pf_fail(PINFER_EINVAL, "gguf writer: key of %zu bytes is over the cap", len);
    if (!rc && !val->p) rc = pf_fail(PINFER_ENOMEM, "gguf writer: out of memory for key '%s'", key);
    if (rc) {
        free(val->p);
        return rc;
    }
    size_t at = 0;
    int64_t old = ix_find(w, &w->kv_ix, kv_name, key, len, &at);
    if (old >= 0) {
        free(w->kv[old].val.p);
        w->kv[old].val = *val;
        return 0;
    }
    if ((rc = ix_grow(w, &w->kv_ix, kv_name, w->n_kv))) {
        free(val->p);
        return rc;
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        struct wkv *kv = cap <= GGUF_MAX_KV ? realloc(w->kv, cap * sizeof *kv) : NULL;
        if (!kv) {
            free(val->p);
            return pf_fail(PINFER_ENOMEM, "gguf writer: cannot add key '%s'", key);
        }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(val->p);
        return pf_fail(PINFER_ENOMEM, "gguf writer: out of memory for key '%s'", key);
    }
    w->kv[w->n_kv] = (struct wkv){ k, len, *val };
    ix_find(w, &w->kv_ix, kv_name, key, len, &at); /* the index may have been rebuilt */
    w->kv_ix.slot[at] = (uint32_t)(w->n_kv + 1);
    w->n_kv++;
    return 0;
}

/* Serializes a scalar of type t from its widened value; a NULL-p buffer means out of memory. */
static struct bbuf scalar_val(enum gguf_vtype t, const void *v, size_t size)
{
    struct bbuf b = { 0 };
    if (!bb_u32(&b, (uint32_t)t) || !bb_put(&b, v, size)) {
        free(b.p);
        b = (struct bbuf){ 0 };
    }
    return b;
}

static int set_scalar(struct gguf_writer *w, const char *key, enum gguf_vtype t, const void *v,
                      size_t size)
{
    if (key && strcmp(key, "general.alignment") == 0) {
        uint64_t a = 0;
        if (t == GGUF_U32) a = *(const uint32_t *)v;
        int rc = check_declaring(w, "setting a key");
        if (rc || (rc = take_alignment(w, t, a))) return rc;
    }
    struct bbuf b = scalar_val(t, v, size);
    return put_kv(w, key, &b);
}

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, GGUF_U32, &v, 4);
}

int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, GGUF_I32, &v, 4);
}

int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
    return set_scalar(w, key, GGUF_U64, &v, 8);
}

int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
    return set_scalar(w, key, GGUF_F32, &v, 4);
}

int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, GGUF_BOOL, &b, 1);
}

static int set_str_n(struct gguf_writer *w, const char *key, const char *s, uint64_t len)
{
    if (len > GGUF_MAX_STR_LEN)
        return pf_fail(PINFER_EINVAL, "gguf writer: key '%s': string of %" PRIu64
                       " bytes is over the cap", key ? key : "", len);
    if (key && strcmp(key, "general.alignment") == 0) return take_alignment(w, GGUF_STRING, 0);
    struct bbuf b = { 0 };
    if (!bb_u32(&b, GGUF_STRING) || !bb_str(&b, s, len)) {
        free(b.p);
        b = (struct bbuf){ 0 };
    }
    return put_kv(w, key, &b);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v)
{
    if (!v) return pf_fail(PINFER_EINVAL, "gguf writer: NULL string for key '%s'", key ? key : "");
    return set_str_n(w, key, v, strlen(v));
}

/* Array header checks shared by the numeric and string forms. */
static int check_arr(struct gguf_writer *w, const char *key, uint64_t n)
{
    if (n > GGUF_MAX_ARR_N)
        return pf_fail(PINFER_EINVAL, "gguf writer: key '%s': array of %" PRIu64
                       " elements is over the cap", key ? key : "", n);
    if (key && strcmp(key, "general.alignment") == 0) return take_alignment(w, GGUF_ARRAY, 0);
    return 0;
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem_type,
                        const void *data, uint64_t n)
{
    size_t esize = gguf_vtype_size(elem_type);
    if (esize == 0)
        return pf_fail(PINFER_EINVAL, "gguf writer: key '%s': arrays of %s need "
                       "gguf_writer_set_arr_str or are not supported", key ? key : "",
                       gguf_vtype_name(elem_type));
    int rc = check_arr(w, key, n);
    if (rc) return rc;
    if (!data && n) return pf_fail(PINFER_EINVAL, "gguf writer: NULL array data");
    struct bbuf b = { 0 };
    if (!bb_u32(&b, GGUF_ARRAY) || !bb_u32(&b, (uint32_t)elem_type) || !bb_u64(&b, n) ||
        !bb_put(&b, data, (size_t)n * esize)) { /* n <= 2^28, esize <= 8: no overflow */
        free(b.p);
        b = (struct bbuf){ 0 };
    }
    return put_kv(w, key, &b);
}

/* String array from pointer + length pairs (both the C-string and the copy paths use it). */
static int set_arr_str_n(struct gguf_writer *w, const char *key, const char *const *s,
                         const uint64_t *lens, const struct gguf_str *gs, uint64_t n)
{
    int rc = check_arr(w, key, n);
    if (rc) return rc;
    struct bbuf b = { 0 };
    bool ok = bb_u32(&b, GGUF_ARRAY) && bb_u32(&b, GGUF_STRING) && bb_u64(&b, n);
    for (uint64_t i = 0; ok && i < n; i++) {
        const char *p = gs ? gs[i].s : s[i];
        uint64_t len = gs ? gs[i].len : lens ? lens[i] : (p ? strlen(p) : 0);
        if (!p && len) {
            free(b.p);
            return pf_fail(PINFER_EINVAL, "gguf writer: key '%s': NULL string %" PRIu64,
                           key ? key : "", i);
        }
        if (len > GGUF_MAX_STR_LEN) {
            free(b.p);
            return pf_fail(PINFER_EINVAL, "gguf writer: key '%s': string %" PRIu64
                           " is over the cap", key ? key : "", i);
        }
        ok = bb_str(&b, p ? p : "", len);
    }
    if (!ok) {
        free(b.p);
        b = (struct bbuf){ 0 };
    }
    return put_kv(w, key, &b);
}

int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
    if (!v && n) return pf_fail(PINFER_EINVAL, "gguf writer: NULL string array");
    return set_arr_str_n(w, key, v, NULL, NULL, n);
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv)
{
    if (!kv) return pf_fail(PINFER_EINVAL, "gguf writer: NULL kv");
    /* keys from a parsed file are not NUL-terminated */
    char *key = strndup(kv->key.s, (size_t)kv->key.len);
    if (!key) return pf_fail(PINFER_ENOMEM, "gguf writer: out of memory");
    int rc;
    union { uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; float f32; double f64; } x;
    size_t size = gguf_vtype_size(kv->type);
    switch (kv->type) {
    case GGUF_U8: case GGUF_I8: x.u8 = (uint8_t)kv->v.u; break;
    case GGUF_BOOL: x.u8 = kv->v.b ? 1 : 0; break;
    case GGUF_U16: case GGUF_I16: x.u16 = (uint16_t)kv->v.u; break;
    case GGUF_U32: case GGUF_I32: x.u32 = (uint32_t)kv->v.u; break;
    case GGUF_U64: case GGUF_I64: x.u64 = kv->v.u; break;
    case GGUF_F32: x.f32 = (float)kv->v.f; break;
    case GGUF_F64: x.f64 = kv->v.f; break;
    default: break;
    }
    if (kv->type == GGUF_STRING)
        rc = set_str_n(w, key, kv->str.s, kv->str.len);
    else if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING)
        rc = set_arr_str_n(w, key, NULL, NULL, kv->arr_str, kv->arr_n);
    else if (kv->type == GGUF_ARRAY)
        rc = gguf_writer_set_arr(w, key, kv->arr_type, kv->arr_data, kv->arr_n);
    else if (size)
        rc = set_scalar(w, key, kv->type, &x, size);
    else
        rc = pf_fail(PINFER_EINVAL, "gguf writer: key '%s' has unknown type %d", key, kv->type);
    free(key);
    return rc;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type, int n_dims,
                           const int64_t *ne)
{
    int rc = check_declaring(w, "adding a tensor");
    if (rc) return rc;
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= GGUF_MAX_NAME)
        return pf_fail(PINFER_EINVAL, "gguf writer: tensor name '%s' must have 1..%d bytes",
                       name ? name : "", GGUF_MAX_NAME - 1);
    size_t at = 0;
    if (ix_find(w, &w->t_ix, t_name, name, len, &at) >= 0)
        return pf_fail(PINFER_EINVAL, "gguf writer: duplicate tensor '%s'", name);
    const struct pf_type_info *ti = pf_type_get(type);
    if (!ti) return pf_fail(PINFER_EINVAL, "gguf writer: tensor '%s': unknown type %d", name, type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne)
        return pf_fail(PINFER_EINVAL, "gguf writer: tensor '%s': n_dims %d is not in 1..%d",
                       name, n_dims, GGUF_MAX_DIMS);
    struct wtensor t = { .type = type, .n_dims = n_dims, .ne = { 1, 1, 1, 1 } };
    memcpy(t.name, name, len + 1);
    uint64_t n_elem = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] <= 0)
            return pf_fail(PINFER_EINVAL, "gguf writer: tensor '%s': dimension %d is %" PRId64,
                           name, d, ne[d]);
        if (ck_mul_u64(n_elem, (uint64_t)ne[d], &n_elem) || n_elem > INT64_MAX)
            return pf_fail(PINFER_EINVAL, "gguf writer: tensor '%s': element count overflows",
                           name);
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % ti->blck != 0)
        return pf_fail(PINFER_EINVAL, "gguf writer: tensor '%s': row of %" PRId64
                       " is not a multiple of the %s block size %d", name, t.ne[0], ti->name,
                       ti->blck);
    size_t row;
    uint64_t padded, end;
    if (!pf_row_size(type, t.ne[0], &row) || ck_mul_u64(row, (uint64_t)(t.ne[1]), &t.nbytes) ||
        ck_mul_u64(t.nbytes, (uint64_t)(t.ne[2] * t.ne[3]), &t.nbytes) ||
        ck_align_u64(t.nbytes, w->alignment, &padded) ||
        ck_add_u64(w->data_size, padded, &end))
        return pf_fail(PINFER_EINVAL, "gguf writer: tensor '%s': byte size overflows", name);
    if ((rc = ix_grow(w, &w->t_ix, t_name, w->n_t))) return rc;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        struct wtensor *p = cap <= GGUF_MAX_TENSORS ? realloc(w->t, cap * sizeof *p) : NULL;
        if (!p) return pf_fail(PINFER_ENOMEM, "gguf writer: cannot add tensor '%s'", name);
        w->t = p;
        w->cap_t = cap;
    }
    t.offset = w->data_size;
    w->data_size = end;
    w->t[w->n_t] = t;
    ix_find(w, &w->t_ix, t_name, name, len, &at); /* the index may have been rebuilt */
    w->t_ix.slot[at] = (uint32_t)(w->n_t + 1);
    w->n_t++;
    return 0;
}

/* Bytes before the data section (unpadded). */
static uint64_t header_size(const struct gguf_writer *w)
{
    uint64_t n = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++) n += 8 + w->kv[i].key_len + w->kv[i].val.n;
    for (size_t i = 0; i < w->n_t; i++)
        n += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].n_dims + 4 + 8;
    return n;
}

static uint64_t data_offset(const struct gguf_writer *w)
{
    uint64_t off = 0;
    ck_align_u64(header_size(w), w->alignment, &off); /* cannot overflow: all in memory */
    return off;
}

uint64_t gguf_writer_total_size(const struct gguf_writer *w)
{
    return w ? data_offset(w) + w->data_size : 0;
}

/* ==== Streaming ==== */

/* Records a streaming failure (sticky: finish reports it again). */
static int wfail(struct gguf_writer *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int wfail(struct gguf_writer *w, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
    va_end(ap);
    w->err = code;
    w->state = W_FAILED;
    return pf_fail(code, "%s", w->errmsg);
}

static int io_fail(struct gguf_writer *w, int e, const char *op)
{
    if (e == ENOSPC || e == EDQUOT)
        return wfail(w, PINFER_ENOSPC, "%s '%s': no space left on device", op, w->path);
    return wfail(w, PINFER_EIO, "%s '%s': %s", op, w->path, strerror(e));
}

static int flush(struct gguf_writer *w)
{
    size_t done = 0;
    while (done < w->buf_n) {
        ssize_t k = write(w->fd, w->buf + done, w->buf_n - done);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return io_fail(w, errno, "writing");
        if (k == 0) return io_fail(w, EIO, "writing");
        done += (size_t)k;
    }
    w->buf_n = 0;
    return 0;
}

static int out(struct gguf_writer *w, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        size_t k = WBUF_SIZE - w->buf_n < n ? WBUF_SIZE - w->buf_n : n;
        if (p) memcpy(w->buf + w->buf_n, p, k);
        else memset(w->buf + w->buf_n, 0, k); /* NULL data: padding */
        w->buf_n += k;
        w->bytes_out += k;
        n -= k;
        if (p) p += k;
        if (w->buf_n == WBUF_SIZE) {
            int rc = flush(w);
            if (rc) return rc;
        }
    }
    return 0;
}

static int out_u32(struct gguf_writer *w, uint32_t v) { return out(w, &v, 4); }
static int out_u64(struct gguf_writer *w, uint64_t v) { return out(w, &v, 8); }

/* Zeros up to the next multiple of the alignment. */
static int pad(struct gguf_writer *w)
{
    uint64_t to = w->bytes_out;
    ck_align_u64(w->bytes_out, w->alignment, &to);
    return out(w, NULL, (size_t)(to - w->bytes_out));
}

static int write_header(struct gguf_writer *w)
{
    int rc = 0;
    if (!rc) rc = out(w, "GGUF", 4);
    if (!rc) rc = out_u32(w, 3);
    if (!rc) rc = out_u64(w, w->n_t);
    if (!rc) rc = out_u64(w, w->n_kv);
    for (size_t i = 0; !rc && i < w->n_kv; i++) {
        rc = out_u64(w, w->kv[i].key_len);
        if (!rc) rc = out(w, w->kv[i].key, w->kv[i].key_len);
        if (!rc) rc = out(w, w->kv[i].val.p, w->kv[i].val.n);
    }
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        size_t len = strlen(t->name);
        rc = out_u64(w, len);
        if (!rc) rc = out(w, t->name, len);
        if (!rc) rc = out_u32(w, (uint32_t)t->n_dims);
        for (int d = 0; !rc && d < t->n_dims; d++) rc = out_u64(w, (uint64_t)t->ne[d]);
        if (!rc) rc = out_u32(w, (uint32_t)t->type);
        if (!rc) rc = out_u64(w, t->offset);
    }
    if (!rc) rc = pad(w);
    return rc;
}

int gguf_writer_begin(struct gguf_writer *w, const char *path)
{
    if (!w || !path || !*path) return pf_fail(PINFER_EINVAL, "gguf writer: no output path");
    int rc = check_declaring(w, "gguf_writer_begin");
    if (rc) return rc;
    if ((rc = pf_check_output_path(path))) return wfail(w, rc, "%s", pinfer_last_error());
    w->path = strdup(path);
    w->buf = malloc(WBUF_SIZE);
    if (!w->path || !w->buf) return wfail(w, PINFER_ENOMEM, "gguf writer: out of memory");
    char *tmp;
    w->fd = pf_tmpfile_create(path, &tmp);
    if (w->fd < 0) return wfail(w, w->fd, "%s", pinfer_last_error());
    w->tmp = tmp; /* from now on free() removes it unless finish renamed it */
    w->state = W_DATA;
    return write_header(w);
}

int gguf_writer_write(struct gguf_writer *w, const void *data, size_t n)
{
    if (!w) return pf_fail(PINFER_EINVAL, "gguf writer: NULL writer");
    if (w->state == W_FAILED) return pf_fail(w->err, "%s", w->errmsg);
    if (w->state != W_DATA)
        return pf_fail(PINFER_EINVAL, "gguf writer: write outside begin..finish");
    if (n == 0) return 0;
    if (!data) return wfail(w, PINFER_EINVAL, "gguf writer: NULL data");
    if (w->cur >= w->n_t)
        return wfail(w, PINFER_EINVAL, "gguf writer: %zu bytes written past the last tensor", n);
    const struct wtensor *t = &w->t[w->cur];
    if (n > t->nbytes - w->cur_done)
        return wfail(w, PINFER_EINVAL,
                     "gguf writer: write of %zu bytes crosses the end of tensor '%s' (%" PRIu64
                     " of %" PRIu64 " bytes left)", n, t->name, t->nbytes - w->cur_done,
                     t->nbytes);
    int rc = out(w, data, n);
    if (rc) return rc;
    w->cur_done += n;
    if (w->cur_done == t->nbytes) {
        w->cur++;
        w->cur_done = 0;
        rc = pad(w);
    }
    return rc;
}

/* Drops the temp file after a failure so nothing partial stays on disk. */
static void discard(struct gguf_writer *w)
{
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->tmp) unlink(w->tmp);
    free(w->tmp);
    w->tmp = NULL;
}

int gguf_writer_finish(struct gguf_writer *w)
{
    if (!w) return pf_fail(PINFER_EINVAL, "gguf writer: NULL writer");
    if (w->state == W_FAILED) {
        discard(w);
        return pf_fail(w->err, "%s", w->errmsg);
    }
    if (w->state != W_DATA) return pf_fail(PINFER_EINVAL, "gguf writer: finish without begin");
    int rc = 0;
    if (w->cur < w->n_t)
        rc = wfail(w, PINFER_EINVAL, "gguf writer: tensor '%s' got %" PRIu64 " of %" PRIu64
                   " bytes (%zu of %zu tensors complete) when finishing '%s'", w->t[w->cur].name,
                   w->cur_done, w->t[w->cur].nbytes, w->cur, w->n_t, w->path);
    if (!rc && w->bytes_out != gguf_writer_total_size(w))
        rc = wfail(w, PINFER_EIO, "gguf writer: wrote %" PRIu64 " bytes, expected %" PRIu64,
                   w->bytes_out, gguf_writer_total_size(w));
    if (!rc) rc = flush(w);
    /* a full disk may only show at fsync or close on some file systems */
    if (!rc && fsync(w->fd) != 0) rc = io_fail(w, errno, "syncing");
    if (!rc) {
        int fd = w->fd;
        w->fd = -1;
        if (close(fd) != 0) rc = io_fail(w, errno, "closing");
    }
    if (!rc && rename(w->tmp, w->path) != 0) rc = io_fail(w, errno, "renaming the temp file to");
    if (rc) {
        discard(w);
        return rc;
    }
    free(w->tmp);
    w->tmp = NULL;
    w->state = W_DONE;
    /* make the rename itself durable; failure here loses nothing already written */
    char *dir = strdup(w->path);
    if (dir) {
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return 0;
}
