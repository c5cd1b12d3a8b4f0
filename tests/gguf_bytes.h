/* Byte-by-byte GGUF builder for the GGUF tests and the fuzz corpus generator: handcrafted files
 * (valid or broken on purpose) without going through the writer, which refuses bad input. */
#ifndef PF_TESTS_GGUF_BYTES_H
#define PF_TESTS_GGUF_BYTES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bytes { uint8_t *p; size_t n, cap; };

static inline void by_put(struct bytes *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) { fprintf(stderr, "out of memory\n"); exit(1); } /* test code only */
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static inline void by_u8(struct bytes *b, uint8_t v) { by_put(b, &v, 1); }
static inline void by_u32(struct bytes *b, uint32_t v) { by_put(b, &v, 4); }
static inline void by_u64(struct bytes *b, uint64_t v) { by_put(b, &v, 8); }
static inline void by_str(struct bytes *b, const char *s) { by_u64(b, strlen(s)); by_put(b, s, strlen(s)); }

/* magic + version + counts */
static inline void by_hdr(struct bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    by_put(b, "GGUF", 4);
    by_u32(b, version);
    by_u64(b, n_tensors);
    by_u64(b, n_kv);
}

/* key + value type; the caller appends the value */
static inline void by_key(struct bytes *b, const char *key, uint32_t type)
{
    by_str(b, key);
    by_u32(b, type);
}

static inline void by_kv_u32(struct bytes *b, const char *key, uint32_t v)
{
    by_key(b, key, 4 /* GGUF_U32 */);
    by_u32(b, v);
}

static inline void by_kv_str(struct bytes *b, const char *key, const char *v)
{
    by_key(b, key, 8 /* GGUF_STRING */);
    by_str(b, v);
}

/* One tensor info; ne has n_dims entries (n_dims may be bogus on purpose, up to 8). */
static inline void by_tensor(struct bytes *b, const char *name, uint32_t n_dims, const int64_t *ne,
                             uint32_t type, uint64_t offset)
{
    by_str(b, name);
    by_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) by_u64(b, (uint64_t)ne[i]);
    by_u32(b, type);
    by_u64(b, offset);
}

static inline void by_pad(struct bytes *b, size_t align)
{
    while (b->n % align) by_u8(b, 0);
}

/* n bytes of a recognisable pattern */
static inline void by_fill(struct bytes *b, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) by_u8(b, (uint8_t)(seed + i * 7));
}

static inline void by_free(struct bytes *b)
{
    free(b->p);
    *b = (struct bytes){ 0 };
}

#endif
