/* GGUF v2/v3 reader and writer.
 *
 * File layout (little-endian), as llama.cpp's ggml/include/gguf.h documents it:
 *   u32 magic "GGUF" | u32 version (2 or 3) | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 value type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset }
 *   padding to `general.alignment` (u32, default 32, a power of two)
 *   tensor data; each tensor's offset is relative to the start of this section and aligned.
 * string = u64 length + bytes (no NUL). Array value = u32 element type + u64 count + elements
 * (arrays of arrays are rejected here: llama.cpp never writes them).
 *
 * The reader never trusts a size from the file: every count, length and offset is checked
 * against the file size and against caps before use, and each failure class gets its own
 * message (PINFER_EFORMAT, or PINFER_EUNSUPPORTED for a valid-but-unknown version/type). */
#ifndef PF_GGUF_H
#define PF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
    GGUF_I64 = 11, GGUF_F64 = 12,
    GGUF_VTYPE_COUNT
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 64          /* llama.cpp's GGML_MAX_NAME, including the NUL */

/* Caps the reader enforces on top of "fits in the file" (docs/gguf.md says why each). */
#define GGUF_MAX_KEY_LEN   65535u               /* bytes in a key */
#define GGUF_MAX_STR_LEN   (64ull << 20)        /* bytes in one string value or array element */
#define GGUF_MAX_ARR_N     (1ull << 28)         /* elements in one array */
#define GGUF_MAX_KV        (1ull << 20)         /* key/value pairs in a file */
#define GGUF_MAX_TENSORS   (1ull << 20)         /* tensors in a file */

struct gguf_str { const char *s; uint64_t len; }; /* points into the file; not NUL-terminated */

struct gguf_kv {
    struct gguf_str key;
    enum gguf_vtype type;
    /* scalar value (numbers, bools) widened: */
    union { uint64_t u; int64_t i; double f; bool b; } v;
    struct gguf_str str;            /* type == GGUF_STRING */
    enum gguf_vtype arr_type;       /* type == GGUF_ARRAY */
    uint64_t arr_n;
    const void *arr_data;           /* raw elements (numbers) in the file */
    struct gguf_str *arr_str;       /* string arrays: arr_n entries (owned by the gguf_file) */
};

struct gguf_tensor {
    char name[GGUF_MAX_NAME];
    int type;                       /* ggml type id */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];      /* ne[0] is the contiguous (row) dimension; unused dims = 1 */
    uint64_t offset;                /* from the start of the data section */
    uint64_t nbytes;
    uint64_t file_offset;           /* absolute offset of the data in the file */
};

struct gguf_file {
    uint32_t version;
    uint64_t n_kv, n_tensors;
    struct gguf_kv *kv;
    struct gguf_tensor *tensors;
    uint32_t alignment;
    uint64_t data_offset;           /* absolute offset of the data section */
    const uint8_t *data;            /* the whole file (mapped or caller's buffer) */
    uint64_t size;
    int fd;                         /* -1 when parsed from memory */
    bool mapped;
};

/* Parses a GGUF image in memory. buf must stay valid while the result lives (strings point
 * into it). On success *out is owned by the caller (gguf_close). */
int gguf_parse(struct gguf_file **out, const void *buf, uint64_t size);
/* Opens and maps a file read-only, then parses it. The mapping is released by gguf_close. */
int gguf_open(struct gguf_file **out, const char *path);
void gguf_close(struct gguf_file *f);

/* Key lookup; NULL when absent. */
const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key);
int gguf_find_tensor(const struct gguf_file *f, const char *name); /* index or -1 */

/* Typed getters: 0 on success; PINFER_EFORMAT when the key exists with an incompatible type;
 * 1 when the key is absent (out untouched, so callers can preset defaults). Integer getters
 * accept any integer type whose value fits. */
int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const struct gguf_file *f, const char *key, float *out);
int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out);
/* Copies a string value into buf (NUL-terminated, truncated to cap-1). */
int gguf_get_str(const struct gguf_file *f, const char *key, char *buf, size_t cap);

const char *gguf_vtype_name(enum gguf_vtype t);

/* ==== Writer ====
 * Streams a GGUF file: set keys and declare tensors first, then gguf_writer_begin writes the
 * header and tensor infos; the caller then writes each tensor's data in declaration order with
 * gguf_writer_write (any number of pieces), and gguf_writer_finish pads and completes the file.
 * Output goes to a temp file beside the destination and is renamed into place only by
 * gguf_writer_finish; gguf_writer_free before finish removes the temp file (nothing on disk lost). */
struct gguf_writer;

int gguf_writer_new(struct gguf_writer **out);
void gguf_writer_free(struct gguf_writer *w);
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
/* Numeric array: elem_type one of the scalar types; data has n elements of that type. */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem_type,
                        const void *data, uint64_t n);
int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *v, uint64_t n);
/* Copies one key/value (any type) from a parsed file. */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv);
/* Declares a tensor; offsets are assigned in declaration order with the writer's alignment
 * (set "general.alignment" before the first tensor if you want another one). */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type, int n_dims,
                           const int64_t *ne);
/* Total bytes the finished file will have (valid after all keys and tensors are declared). */
uint64_t gguf_writer_total_size(const struct gguf_writer *w);
int gguf_writer_begin(struct gguf_writer *w, const char *path);
/* A single write must not cross the end of the current tensor (so a wrong-sized tensor is caught
 * at once, not as a shifted file); padding between tensors is written automatically. Errors
 * (PINFER_ENOSPC on a full disk, PINFER_EIO) are sticky: finish then fails too. */
int gguf_writer_write(struct gguf_writer *w, const void *data, size_t n);
/* Fails (and removes the temp file) if any tensor got fewer bytes than declared. */
int gguf_writer_finish(struct gguf_writer *w);

#endif
