/* Private parts of the GGUF reader shared by gguf_read.c (which builds them) and gguf_get.c
 * (which looks things up). Not for use outside src/gguf/. */
#ifndef PF_GGUF_INTERNAL_H
#define PF_GGUF_INTERNAL_H

#include "gguf/gguf.h"

/* A parsed file is allocated as this larger struct so lookups can use hash indexes without
 * widening the public struct gguf_file (which callers read directly). */
struct gguf_file_priv {
    struct gguf_file pub;        /* must stay first: gguf_file pointers are cast back */
    uint32_t *kv_index;          /* open addressing: slot holds kv index + 1, 0 = empty */
    uint32_t *tensor_index;      /* same for tensors */
    uint64_t kv_mask, tensor_mask; /* table size - 1 (power of two) */
};

static inline struct gguf_file_priv *gguf_priv(const struct gguf_file *f)
{
    return (struct gguf_file_priv *)f;
}

/* FNV-1a: keys are short and few; speed here is irrelevant next to loading weights. */
static inline uint64_t gguf_hash(const char *s, uint64_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* Index of a key / tensor by exact bytes, or -1. */
int64_t gguf_find_kv_n(const struct gguf_file *f, const char *key, uint64_t len);
int64_t gguf_find_tensor_n(const struct gguf_file *f, const char *name, uint64_t len);

/* Bytes of one element of a scalar value type; 0 for STRING/ARRAY/unknown. */
size_t gguf_vtype_size(enum gguf_vtype t);

#endif
