/* Tensor element types with ggml's exact ids and block layouts, and scalar conversions.
 *
 *   Q4_0: 32 weights per 18-byte block: f16 scale d, then 16 bytes; byte j holds element j in
 *         its low nibble and element j+16 in its high nibble; value = (nibble - 8) * d.
 *   Q8_0: 32 weights per 34-byte block: f16 scale d, then 32 int8; value = q * d.
 *   F16 / BF16: IEEE half / bfloat16, 2 bytes per element.
 *   Q4_1, Q5_0, Q5_1, IQ4_NL, Q8_1: tensor/quants_extra.h.
 *   Q2_K .. Q6_K, Q8_K: 256 weights per super-block; layouts in tensor/kquants.h.
 */
#ifndef PF_TENSOR_TYPES_H
#define PF_TENSOR_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pf_type {
    PF_TYPE_F32 = 0,
    PF_TYPE_F16 = 1,
    PF_TYPE_Q4_0 = 2,
    PF_TYPE_Q4_1 = 3, PF_TYPE_Q5_0 = 6, PF_TYPE_Q5_1 = 7, PF_TYPE_Q8_1 = 9, PF_TYPE_IQ4_NL = 20,
    PF_TYPE_Q8_0 = 8,
    PF_TYPE_Q2_K = 10, /* K-quants: 256-weight super-blocks, layouts in tensor/kquants.h */
    PF_TYPE_Q3_K = 11,
    PF_TYPE_Q4_K = 12,
    PF_TYPE_Q5_K = 13,
    PF_TYPE_Q6_K = 14,
    PF_TYPE_Q8_K = 15, /* the activations K-quant weights are dotted with */
    PF_TYPE_I8 = 24,   /* storage only: raw bytes (a prepared file's mixed-type bundles) */
    PF_TYPE_BF16 = 30,
    PF_TYPE_COUNT = 40, /* table size: ggml ids go up to 39 */
};

#define QK4_0 32
#define QK8_0 32

struct block_q4_0 { uint16_t d; uint8_t qs[QK4_0 / 2]; };
struct block_q8_0 { uint16_t d; int8_t qs[QK8_0]; };
_Static_assert(sizeof(struct block_q4_0) == 18, "block_q4_0 must be 18 bytes");
_Static_assert(sizeof(struct block_q8_0) == 34, "block_q8_0 must be 34 bytes");

struct pf_type_info {
    const char *name;    /* "q4_0" */
    int blck;            /* elements per block (1 for float types) */
    size_t size;         /* bytes per block */
    int vec_dot_type;    /* type activations are converted to for dots with this type; -1 for a
                            storage-only type (I8), which no kernel computes with */
};

/* NULL for ids pinfer does not know (type ids from files must be checked with this). Known
 * includes the storage-only I8, which a GGUF file may hold but no weight may have. */
const struct pf_type_info *pf_type_get(int type);
/* A type pinfer computes with (known and not storage-only): what a weight tensor must have. */
bool pf_type_supported(int type);
const char *pf_type_name(int type); /* "?" for unknown */
/* Parses "f32", "q4_0", ... (case-insensitive; types pinfer computes with); -1 if unknown. */
int pf_type_parse(const char *name);
/* Bytes of a row of n elements; false if the type is unknown, n is not a multiple of the block
 * size, or the size overflows. */
bool pf_row_size(int type, int64_t n, size_t *out);

/* Scalar conversions, bit-exact with ggml (round to nearest even; NaN stays NaN). */
float pf_fp16_to_fp32(uint16_t h);
uint16_t pf_fp32_to_fp16(float f);
float pf_bf16_to_fp32(uint16_t h);
uint16_t pf_fp32_to_bf16(float f);

#endif
