/* "q8x": the activation layout the SIMD Q4_0 fast paths read (internal to src/tensor/).
 *
 * It holds exactly the Q8_0 quantization of llama.cpp's quantize_row_q8_0_ref (same quants, same
 * fp16-rounded scales), plus per-activation sums precomputed once and reused by every weight
 * row: with them a Q4_0 block needs no "-8" per weight. u8 x s8 dot instructions (vpdpbusd,
 * vpmaddubsw) multiply the raw nibble (0..15) by q, and sum((nib - 8) * q) = sum(nib * q) - 8 * sum(q).
 *
 * One row of n = 32*nb values, q8x_row_size(n) bytes, 64-byte aligned when the base is:
 *   int8_t  qs[32*nb]    at 0        the quants, blocks back to back
 *   int32_t corr[8*nb]   at 32*nb    -8 * (sum of qs[4i..4i+3]) for i < 4, -128 * (same) for
 *                                    i >= 4: the term for 32-bit lane i of a 256-bit u8 x s8 dot
 *                                    over one block whose u8 operand holds the low nibbles in the
 *                                    low half and the high nibbles *16 (unshifted) in the high
 *                                    half; the lanes 4..7 then carry 16x the block's value
 *   int32_t bsum[nb]     at 64*nb    -8 * (sum of the block's 32 quants)
 *   float   d[nb]        at 68*nb    the block scale, fp16-rounded, as float
 *
 * corr and bsum are stored plus Q8X_MAGIC. Kernels start their int32 accumulators from them, so
 * the finished integer i comes out as the bit pattern of the float 12582912 + i (exact while
 * |i| < 2^22; here |i| < 2^18) and one float subtraction of Q8X_MAGIC_F turns it into i: cheaper
 * than vcvtdq2ps, which has half the throughput of the other vector ops on Zen 4.
 */
#define Q8X_MAGIC 0x4b400000
#define Q8X_MAGIC_F 12582912.0f
#ifndef PF_TENSOR_Q8X_H
#define PF_TENSOR_Q8X_H

#include <stddef.h>
#include <stdint.h>

static inline size_t q8x_row_size(int64_t n) { return ((size_t)(n / 32) * 72 + 63) & ~(size_t)63; }

static inline const int8_t *q8x_qs(const void *row) { return row; }
static inline const int32_t *q8x_corr(const void *row, int64_t nb) { return (const int32_t *)((const char *)row + 32 * nb); }
static inline const int32_t *q8x_bsum(const void *row, int64_t nb) { return (const int32_t *)((const char *)row + 64 * nb); }
static inline const float *q8x_d(const void *row, int64_t nb) { return (const float *)((const char *)row + 68 * nb); }

#endif
