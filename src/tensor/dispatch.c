/* Picks the kernel table once: the best ISA this CPU supports, unless PINFER_KERNELS names one.
 * An unknown or unsupported PINFER_KERNELS value falls back to the automatic choice (the library
 * has nowhere to report it at this point, and a wrong guess must not stop inference). */
#include "tensor/kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
/* F16C and AVX512-BF16 straight from CPUID: clang 14's __builtin_cpu_supports knows neither
 * name (and `make fuzz` builds with clang). */
static bool cpuid_bit(unsigned leaf, unsigned sub, int reg, int bit)
{
    unsigned r[4];
    if (!__get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3])) return false;
    return (r[reg] >> bit) & 1;
}
#endif

static bool cpu_has_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           cpuid_bit(1, 0, 2, 29) /* ECX.F16C */;
#else
    return false;
#endif
}

static bool cpu_has_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni") &&
           cpuid_bit(7, 1, 0, 5) /* EAX.AVX512_BF16 */;
#else
    return false;
#endif
}

/* The one dispatcher (ggml's pattern): one table per ISA, dense and bundle kernels alike; every
 * entry an ISA leaves NULL is taken from the reference, so every caller sees a complete table. */
static struct pf_kernels full_ref, full_avx2, full_avx512;
static pthread_once_t full_once = PTHREAD_ONCE_INIT;

static void complete(struct pf_kernels *dst, const struct pf_kernels *src)
{
    const struct pf_kernels *ref = &pf_kernels_ref;
    *dst = *src;
    for (int t = 0; t < PF_TYPE_COUNT; t++) {
        if (!dst->dot[t]) dst->dot[t] = ref->dot[t];
        if (!dst->gemm[t]) dst->gemm[t] = ref->gemm[t];
        if (!dst->dequant[t]) dst->dequant[t] = ref->dequant[t];
        if (!dst->from_f32[t]) dst->from_f32[t] = ref->from_f32[t];
        if (!dst->down_accum[t]) dst->down_accum[t] = ref->down_accum[t];
        if (!dst->down_panel[t]) dst->down_panel[t] = ref->down_panel[t];
        if (!dst->gather_dot[t]) dst->gather_dot[t] = ref->gather_dot[t];
    }
}

static void build_full(void)
{
    complete(&full_ref, &pf_kernels_ref);
#if defined(__x86_64__)
    complete(&full_avx2, &pf_kernels_avx2); /* no AVX2 bundle kernels: the reference's */
    complete(&full_avx512, &pf_kernels_avx512);
#endif
}

const struct pf_kernels *pf_kernels_get(const char *name)
{
    if (!name) return NULL;
    pthread_once(&full_once, build_full);
    if (strcmp(name, "ref") == 0) return &full_ref;
#if defined(__x86_64__)
    if (strcmp(name, "avx2") == 0) return cpu_has_avx2() ? &full_avx2 : NULL;
    if (strcmp(name, "avx512") == 0) return cpu_has_avx512() ? &full_avx512 : NULL;
#endif
    return NULL;
}

static const struct pf_kernels *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    const char *env = getenv("PINFER_KERNELS");
    const struct pf_kernels *k = env && *env ? pf_kernels_get(env) : NULL;
    if (!k) k = pf_kernels_get("avx512");
    if (!k) k = pf_kernels_get("avx2");
    if (!k) k = pf_kernels_get("ref");
    chosen = k;
}

const struct pf_kernels *pf_kernels(void)
{
    pthread_once(&chosen_once, choose);
    return chosen;
}
