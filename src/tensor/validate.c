/* Finite-value checks of tensor data read from a file (llama.cpp checks the same with
 * --check-tensors, ggml_validate_row_data). A block type is as good as its scales: a NaN or
 * infinite f16 scale (d, and dmin or m where the type has one) makes every weight of the block
 * non-finite and every logit NaN, which sampling would turn into a silent wrong answer. The
 * quantized values themselves cannot be out of range (every bit pattern of qs/qh/scales is a
 * valid small integer), so the scales are all there is to check; float types are checked
 * element by element. */
#include "tensor/validate.h"

#include <math.h>
#include <string.h>

#include "tensor/kquants.h"
#include "tensor/quants_extra.h"

static bool f16_finite(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return (h & 0x7c00) != 0x7c00;
}

/* Byte offsets of the f16 scales in one block of `type`; returns how many (0: not a block type). */
static int scale_offsets(int type, size_t off[2])
{
    switch (type) {
    case PF_TYPE_Q4_0: off[0] = offsetof(struct block_q4_0, d); return 1;
    case PF_TYPE_Q8_0: off[0] = offsetof(struct block_q8_0, d); return 1;
    case PF_TYPE_Q5_0: off[0] = offsetof(struct block_q5_0, d); return 1;
    case PF_TYPE_IQ4_NL: off[0] = offsetof(struct block_iq4_nl, d); return 1;
    case PF_TYPE_Q4_1: off[0] = offsetof(struct block_q4_1, d); off[1] = offsetof(struct block_q4_1, m); return 2;
    case PF_TYPE_Q5_1: off[0] = offsetof(struct block_q5_1, d); off[1] = offsetof(struct block_q5_1, m); return 2;
    case PF_TYPE_Q8_1: off[0] = offsetof(struct block_q8_1, d); return 1; /* s is d x sum(qs), unused by dequantize */
    case PF_TYPE_Q2_K: off[0] = offsetof(struct block_q2_K, d); off[1] = offsetof(struct block_q2_K, dmin); return 2;
    case PF_TYPE_Q3_K: off[0] = offsetof(struct block_q3_K, d); return 1;
    case PF_TYPE_Q4_K: off[0] = offsetof(struct block_q4_K, d); off[1] = offsetof(struct block_q4_K, dmin); return 2;
    case PF_TYPE_Q5_K: off[0] = offsetof(struct block_q5_K, d); off[1] = offsetof(struct block_q5_K, dmin); return 2;
    case PF_TYPE_Q6_K: off[0] = offsetof(struct block_q6_K, d); return 1;
    default: return 0;
    }
}

bool pf_validate_data(int type, const void *data, size_t nbytes, size_t *bad)
{
    const uint8_t *p = data;
    const struct pf_type_info *ti = pf_type_get(type);
    if (!ti || nbytes % ti->size) { *bad = 0; return false; }
    const size_t n = nbytes / ti->size;
    size_t off[2];
    int ns = scale_offsets(type, off);
    if (ns) {
        for (size_t i = 0; i < n; i++) {
            const uint8_t *b = p + i * ti->size;
            if (!f16_finite(b + off[0]) || (ns > 1 && !f16_finite(b + off[1]))) { *bad = i; return false; }
        }
        return true;
    }
    switch (type) {
    case PF_TYPE_F16:
        for (size_t i = 0; i < n; i++)
            if (!f16_finite(p + 2 * i)) { *bad = i; return false; }
        return true;
    case PF_TYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if ((h & 0x7f80) == 0x7f80) { *bad = i; return false; }
        }
        return true;
    case PF_TYPE_F32:
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            if (!isfinite(f)) { *bad = i; return false; }
        }
        return true;
    case PF_TYPE_Q8_K:
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, p + i * ti->size + offsetof(struct block_q8_K, d), 4);
            if (!isfinite(f)) { *bad = i; return false; }
        }
        return true;
    default:
        *bad = 0;
        return false;
    }
}
