/* Threshold mode (CATS: Lee et al. 2024, "Contextually-Aware Thresholding for Sparsity"):
 * neuron i of layer l is skipped when |act(gate_i)| < t_l, where t_l is the sparsity_target
 * quantile of |act(gate)| over (token, neuron) pairs seen while calibrating. The gate alone
 * decides, so a skipped neuron's up row and down column are never read.
 *
 * The quantile comes from a histogram (no sample is kept): bin = the float's exponent and top 6
 * mantissa bits, i.e. 1/64-octave bins (relative width 1.1%) from 2^-40 to 2^24; bin 0 holds
 * exact zeros and anything smaller, the last bin anything larger. The cut is the upper edge of
 * the bin where the cumulative count crosses the target, so slightly more than the target
 * fraction falls under it (at most one bin's share more). */
#include "ffn/ffn_internal.h"

#include "tensor/ops.h"

#include <math.h>
#include <string.h>

#define EXP_LO (-40)
#define EXP_HI 24
#define SUB_BITS 6

static inline int bin_of(float a)
{
    if (!(a >= 0x1p-40f)) return 0;           /* zeros, tiny values (and NaN) */
    if (a >= 0x1p24f) return PF_HIST_BINS - 1;
    uint32_t u;
    memcpy(&u, &a, 4);
    uint32_t key = u >> (23 - SUB_BITS);      /* biased exponent and top mantissa bits */
    uint32_t lo = (uint32_t)(127 + EXP_LO) << SUB_BITS;
    return 1 + (int)(key - lo);
}

/* Upper edge of bin i (1 .. PF_HIST_BINS-2): the smallest float of bin i+1. */
static float bin_upper(int i)
{
    uint32_t key = ((uint32_t)(127 + EXP_LO) << SUB_BITS) + (uint32_t)i; /* bin i+1's key */
    uint32_t u = key << (23 - SUB_BITS);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

_Static_assert(PF_HIST_BINS == ((EXP_HI - EXP_LO) << SUB_BITS) + 2, "histogram size");

void pf_hist_add(struct pf_ffn *f, int layer, const float *g, size_t n)
{
    uint32_t *h = f->hist + (size_t)layer * PF_HIST_BINS;
    enum pinfer_act act = f->m->info.act;
    for (size_t i = 0; i < n; i++) h[bin_of(fabsf(pf_act_gate(act, g[i])))]++;
}

void pf_thresh_finish(struct pf_ffn *f)
{
    const int L = f->m->info.n_layer;
    for (int l = 0; l < L; l++) {
        const uint32_t *h = f->hist + (size_t)l * PF_HIST_BINS;
        uint64_t total = 0, cum = 0;
        for (int i = 0; i < PF_HIST_BINS; i++) total += h[i];
        double want = (double)f->sparsity_target * (double)total;
        float t = 0; /* skip nothing but exact zeros */
        if (total > 0 && f->sparsity_target > 0) {
            int i = 0;
            for (; i < PF_HIST_BINS; i++) {
                cum += h[i];
                if ((double)cum >= want) break;
            }
            if (i == 0) t = 0x1p-40f;
            else if (i >= PF_HIST_BINS - 1) t = INFINITY;
            else t = bin_upper(i);
        }
        f->thresh[l] = t;
    }
    f->thresh_ready = true;
}

uint64_t pf_hist_total(const struct pf_ffn *f)
{
    uint64_t total = 0;
    if (!f->hist) return 0;
    for (size_t i = 0; i < (size_t)f->m->info.n_layer * PF_HIST_BINS; i++) total += f->hist[i];
    return total;
}
