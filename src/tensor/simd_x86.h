/* Small helpers every x86 SIMD kernel file shares (included only by *_avx2.c and *_avx512.c,
 * which the Makefile compiles with at least AVX2, FMA and F16C). */
#ifndef PF_TENSOR_SIMD_X86_H
#define PF_TENSOR_SIMD_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
/* Loops over the rows/tokens of a register tile must be fully unrolled, or the accumulators
 * live in memory and every block waits on a store-to-load round trip. */
#define UNROLL _Pragma("GCC unroll 16")

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t load_u16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum256_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

#endif
