/* Type table (ggml ids and block sizes) and the scalar fp16 / bf16 conversions every kernel
 * variant must agree with bit for bit. */
#include "tensor/types.h"
#include "pinfer.h"

#include "core/checked.h"
#include "tensor/quants_extra.h"
#include "tensor/kquants.h"

#include <string.h>
#include <strings.h>

static const struct pf_type_info type_table[PF_TYPE_COUNT] = {
    [PF_TYPE_F32] = { "f32", 1, 4, PF_TYPE_F32 },
    [PF_TYPE_F16] = { "f16", 1, 2, PF_TYPE_F16 },
    [PF_TYPE_Q4_0] = { "q4_0", QK4_0, sizeof(struct block_q4_0), PF_TYPE_Q8_0 },
    [PF_TYPE_Q4_1] = { "q4_1", QK4_1, sizeof(struct block_q4_1), PF_TYPE_Q8_1 },
    [PF_TYPE_Q5_0] = { "q5_0", QK5_0, sizeof(struct block_q5_0), PF_TYPE_Q8_0 },
    [PF_TYPE_Q5_1] = { "q5_1", QK5_1, sizeof(struct block_q5_1), PF_TYPE_Q8_1 },
    [PF_TYPE_IQ4_NL] = { "iq4_nl", QK4_NL, sizeof(struct block_iq4_nl), PF_TYPE_Q8_0 },
    [PF_TYPE_Q8_1] = { "q8_1", QK8_1, sizeof(struct block_q8_1), PF_TYPE_Q8_1 },
    [PF_TYPE_Q8_0] = { "q8_0", QK8_0, sizeof(struct block_q8_0), PF_TYPE_Q8_0 },
    [PF_TYPE_BF16] = { "bf16", 1, 2, PF_TYPE_BF16 },
    /* K-quants, named as ggml names them; every one is dotted with Q8_K activations */
    [PF_TYPE_Q2_K] = { "q2_K", QK_K, sizeof(struct block_q2_K), PF_TYPE_Q8_K },
    [PF_TYPE_Q3_K] = { "q3_K", QK_K, sizeof(struct block_q3_K), PF_TYPE_Q8_K },
    [PF_TYPE_Q4_K] = { "q4_K", QK_K, sizeof(struct block_q4_K), PF_TYPE_Q8_K },
    [PF_TYPE_Q5_K] = { "q5_K", QK_K, sizeof(struct block_q5_K), PF_TYPE_Q8_K },
    [PF_TYPE_Q6_K] = { "q6_K", QK_K, sizeof(struct block_q6_K), PF_TYPE_Q8_K },
    [PF_TYPE_Q8_K] = { "q8_K", QK_K, sizeof(struct block_q8_K), PF_TYPE_Q8_K },
    /* raw bytes: the bundle tensor of a prepared layer whose parts differ in type */
    [PF_TYPE_I8] = { "i8", 1, 1, -1 },
};

const struct pf_type_info *pf_type_get(int type)
{
    if (type < 0 || type >= PF_TYPE_COUNT || !type_table[type].name) return NULL;
    return &type_table[type];
}

bool pf_type_supported(int type)
{
    const struct pf_type_info *ti = pf_type_get(type);
    return ti && ti->vec_dot_type >= 0;
}

const char *pf_type_name(int type)
{
    const struct pf_type_info *ti = pf_type_get(type);
    return ti ? ti->name : "?";
}

int pf_type_parse(const char *name)
{
    if (!name) return -1;
    for (int t = 0; t < PF_TYPE_COUNT; t++)
        if (pf_type_supported(t) && strcasecmp(type_table[t].name, name) == 0) return t;
    return -1;
}

bool pf_row_size(int type, int64_t n, size_t *out)
{
    const struct pf_type_info *ti = pf_type_get(type);
    if (!ti || n < 0 || n % ti->blck != 0) return false;
    size_t r;
    if (ck_mul((size_t)(n / ti->blck), ti->size, &r)) return false;
    *out = r;
    return true;
}

/* ==== fp16 / bf16 ==== */

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Same results as the F16C instruction vcvtph2ps (which ggml uses on x86): exact, and a
 * signalling NaN comes back quiet with its payload kept. */
float pf_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {
        /* zero or subnormal: m * 2^-24 is exact in fp32 */
        float v = (float)m * 0x1p-24f;
        return bits_f32(f32_bits(v) | sign);
    }
    if (e == 31) return bits_f32(sign | 0x7f800000 | (m << 13) | (m ? 0x400000u : 0));
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

/* Round to nearest even, as vcvtps2ph with imm 0 (ggml's GGML_FP32_TO_FP16 on x86). NaN keeps
 * its sign and top payload bits and becomes quiet. */
uint16_t pf_fp32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
    if (ax >= 0x38800000) {                                 /* normal half */
        uint32_t r = ax + 0x0fff + ((ax >> 13) & 1);
        return (uint16_t)(sign | ((r - (112u << 23)) >> 13));
    }
    if (ax < 0x33000000) return sign; /* below half the smallest subnormal: zero */
    /* subnormal half: value in units of 2^-24 is m * 2^(e-126), rounded to nearest even */
    uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

float pf_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* ggml's ggml_compute_fp32_to_bf16: round to nearest even, subnormals kept, NaN forced quiet. */
uint16_t pf_fp32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

const char *pinfer_type_name(int type) { return pf_type_name(type); }
