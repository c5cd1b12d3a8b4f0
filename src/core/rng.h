/* Fast deterministic random numbers for pinfer synth.
 *
 * Every weight row gets its own generator seeded from (seed, tensor, row), so the bytes of a
 * file depend only on the seed and the shape, never on the number of threads or the order the
 * rows are produced in. xoshiro256+ gives 64 random bits in about a nanosecond; a normal
 * deviate is approximated by the sum of four 16-bit uniforms (Irwin-Hall, n = 4), which is what
 * makes a 7B file in well under a minute possible. Its tails stop at +-3.46 sigma; nothing in a
 * synthetic model needs more (firing probabilities are set through sums of thousands of weights,
 * which are Gaussian by the central limit theorem whatever the weights' own shape). */
#ifndef PF_CORE_RNG_H
#define PF_CORE_RNG_H

#include <stdint.h>

struct synth_rng { uint64_t s[4]; };

static inline uint64_t synth_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Mixes any number of 64-bit words into one seed (order matters). */
static inline uint64_t synth_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xd1342543de82ef95ull);
    return synth_splitmix(&x);
}

static inline void synth_rng_init(struct synth_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = synth_splitmix(&x);
}

static inline uint64_t synth_rng_next(struct synth_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t res = s[0] + s[3];
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double synth_rng_uniform(struct synth_rng *r)
{
    return (double)(synth_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n > 0 (multiply-shift; the bias is below 2^-32 for our n). */
static inline uint64_t synth_rng_below(struct synth_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)synth_rng_next(r) * n) >> 64);
}

/* Approximately N(0, 1): four 16-bit uniforms summed, centred and scaled to unit variance. */
static inline float synth_rng_normal(struct synth_rng *r)
{
    uint64_t v = synth_rng_next(r);
    int32_t s = (int32_t)(v & 0xffff) + (int32_t)((v >> 16) & 0xffff) +
                (int32_t)((v >> 32) & 0xffff) + (int32_t)(v >> 48);
    return (float)(s - 131070) * (1.7320508075688772f / 65536.0f);
}

/* Fills out[0..n) with N(0, sigma^2) deviates. */
static inline void synth_rng_normals(struct synth_rng *r, float *out, int64_t n, float sigma)
{
    const float k = sigma * (1.7320508075688772f / 65536.0f);
    for (int64_t i = 0; i < n; i++) {
        uint64_t v = synth_rng_next(r);
        int32_t s = (int32_t)(v & 0xffff) + (int32_t)((v >> 16) & 0xffff) +
                    (int32_t)((v >> 32) & 0xffff) + (int32_t)(v >> 48);
        out[i] = (float)(s - 131070) * k;
    }
}

#endif
