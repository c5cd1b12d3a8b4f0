/* Activation statistics accumulators (definitions in stats.h).
 *
 * The |activation| histogram indexes bins by the top 12 bits of the float's magnitude (8
 * exponent bits + 4 mantissa bits): 16 linear bins per octave, every float value has a bin,
 * and binning costs a shift, which matters because a 7B model produces 350k activations per
 * token. A bin's representative value is its midpoint: relative error below 1/32. */
#include "profile/act_stats.h"
#include "profile/act_temporal.h"

#include "core/checked.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HIST_BITS 12
#define HIST_N (1 << HIST_BITS)
#define HIST_SHIFT (31 - HIST_BITS)

const double pf_act_quantile_levels[PF_ACT_NQ] = { 0.1, 0.25, 0.5, 0.75, 0.9, 0.99 };

struct layer_acc {
    uint32_t *count;    /* (n_ff) tokens each neuron was active on */
    double *mag;        /* (n_ff) sum of |act| per neuron */
    uint8_t *prev;      /* (n_ff) active at the previous token */
    uint64_t *hist;     /* (HIST_N) |act| histogram, zeros in bin 0 */
    uint64_t n_tok, n_active, ov_num, ov_den;
    double min_frac, max_frac, abs_sum;
    bool have_prev;
    struct pf_act_temporal tmp; /* window and LRU statistics */
    uint64_t gate_pos, both_pos; /* pre-activations seen: gate > 0; gate > 0 and up > 0 */
};

struct pf_act_stats {
    int n_layer, n_ff;
    struct layer_acc *L;
};

int pf_act_stats_new(struct pf_act_stats **out, int n_layer, int n_ff)
{
    *out = NULL;
    if (n_layer <= 0 || n_ff <= 0 || n_layer > 4096 || n_ff > (1 << 24))
        return pf_fail(PINFER_EINVAL, "activation stats: bad size %d layers x %d neurons", n_layer, n_ff);
    struct pf_act_stats *s = calloc(1, sizeof *s);
    if (!s) return pf_fail(PINFER_ENOMEM, "out of memory");
    s->n_layer = n_layer;
    s->n_ff = n_ff;
    s->L = calloc((size_t)n_layer, sizeof *s->L);
    if (!s->L) goto nomem;
    for (int l = 0; l < n_layer; l++) {
        struct layer_acc *a = &s->L[l];
        a->count = calloc((size_t)n_ff, sizeof *a->count);
        a->mag = calloc((size_t)n_ff, sizeof *a->mag);
        a->prev = calloc((size_t)n_ff, 1);
        a->hist = calloc(HIST_N, sizeof *a->hist);
        if (!a->count || !a->mag || !a->prev || !a->hist) goto nomem;
        if (pf_act_temporal_init(&a->tmp, n_ff, n_ff / 2 > 0 ? n_ff / 2 : 1)) goto nomem;
        a->min_frac = 1;
    }
    *out = s;
    return 0;
nomem:
    pf_act_stats_free(s);
    return pf_fail(PINFER_ENOMEM, "out of memory for activation statistics");
}

void pf_act_stats_free(struct pf_act_stats *s)
{
    if (!s) return;
    if (s->L)
        for (int l = 0; l < s->n_layer; l++) {
            free(s->L[l].count); free(s->L[l].mag); free(s->L[l].prev); free(s->L[l].hist);
            pf_act_temporal_free(&s->L[l].tmp);
        }
    free(s->L);
    free(s);
}

static inline uint32_t abs_bits(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return b & 0x7fffffffu;
}

void pf_act_stats_add(struct pf_act_stats *s, int layer, const float *act, int n_tok)
{
    if (layer < 0 || layer >= s->n_layer) return;
    struct layer_acc *a = &s->L[layer];
    const int F = s->n_ff;
    for (int t = 0; t < n_tok; t++) {
        const float *x = act + (size_t)t * F;
        uint64_t k = 0, o = 0;
        double asum = 0;
        for (int i = 0; i < F; i++) {
            uint32_t b = abs_bits(x[i]);
            uint8_t on = b != 0; /* +0 and -0 are both inactive */
            float ax = fabsf(x[i]);
            a->count[i] += on;
            a->mag[i] += ax;
            asum += ax;
            o += on & a->prev[i];
            a->prev[i] = on;
            k += on;
            a->hist[b >> HIST_SHIFT]++;
        }
        pf_act_temporal_add(&a->tmp, a->prev); /* prev now holds this token's active set */
        if (a->have_prev) { a->ov_num += o; a->ov_den += k; }
        a->have_prev = true;
        a->n_tok++;
        a->n_active += k;
        a->abs_sum += asum;
        double f = (double)k / F;
        if (f < a->min_frac) a->min_frac = f;
        if (f > a->max_frac) a->max_frac = f;
    }
}

void pf_act_stats_break(struct pf_act_stats *s)
{
    for (int l = 0; l < s->n_layer; l++) {
        s->L[l].have_prev = false;
        pf_act_temporal_break(&s->L[l].tmp);
    }
}

void pf_act_stats_add_gate_up(struct pf_act_stats *s, int layer, const float *gate, const float *up, size_t n)
{
    if (layer < 0 || layer >= s->n_layer) return;
    struct layer_acc *a = &s->L[layer];
    uint64_t g = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        int gp = gate[i] > 0;
        g += (uint64_t)gp;
        b += (uint64_t)(gp & (up[i] > 0));
    }
    a->gate_pos += g;
    a->both_pos += b;
}

static int cmp_u32_desc(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

static int cmp_f64_desc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

double pf_hot_fraction_u32(const uint32_t *v, int n, double share)
{
    uint32_t *c = malloc((size_t)n * sizeof *c);
    if (!c || n <= 0) { free(c); return 0; }
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_u32_desc);
    uint64_t tot = 0, acc = 0;
    for (int i = 0; i < n; i++) tot += c[i];
    double r = 0;
    if (tot) {
        int i = 0;
        /* integer comparison avoids rounding at exact shares: acc >= share * tot */
        while (i < n && (double)acc < share * (double)tot) acc += c[i++];
        r = (double)i / n;
    }
    free(c);
    return r;
}

double pf_hot_fraction_f64(const double *v, int n, double share)
{
    double *c = malloc((size_t)n * sizeof *c);
    if (!c || n <= 0) { free(c); return 0; }
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_f64_desc);
    double tot = 0, acc = 0, r = 0;
    for (int i = 0; i < n; i++) tot += c[i];
    if (tot > 0) {
        int i = 0;
        while (i < n && acc < share * tot) acc += c[i++];
        r = (double)i / n;
    }
    free(c);
    return r;
}

static double bin_value(int bin)
{
    if (bin == 0) return 0;
    uint32_t b = ((uint32_t)bin << HIST_SHIFT) | (1u << (HIST_SHIFT - 1));
    float f;
    memcpy(&f, &b, 4);
    return f;
}

int pf_act_stats_summary(const struct pf_act_stats *s, int layer, double share, struct pf_act_summary *out)
{
    memset(out, 0, sizeof *out);
    out->new_vs_window5 = out->lru_hit_at_50 = out->up_given_gate = NAN;
    if (layer < 0 || layer >= s->n_layer) return pf_fail(PINFER_EINVAL, "activation stats: no layer %d", layer);
    const struct layer_acc *a = &s->L[layer];
    const int F = s->n_ff;
    out->n_ff = F;
    out->n_tokens = a->n_tok;
    if (!a->n_tok) return 0;
    double cells = (double)a->n_tok * F;
    out->active_frac = (double)a->n_active / cells;
    out->active_frac_min = a->min_frac;
    out->active_frac_max = a->max_frac;
    out->hot_frac = pf_hot_fraction_u32(a->count, F, share);
    out->hot_frac_mag = pf_hot_fraction_f64(a->mag, F, share);
    out->overlap = a->ov_den ? (double)a->ov_num / (double)a->ov_den : 0;
    out->new_vs_window5 = pf_act_temporal_new_frac(&a->tmp);
    out->lru_hit_at_50 = pf_act_temporal_lru_hit(&a->tmp);
    out->up_given_gate = a->gate_pos ? (double)a->both_pos / (double)a->gate_pos : NAN;
    out->abs_mean = a->abs_sum / cells;
    uint64_t acc = 0;
    int q = 0;
    for (int b = 0; b < HIST_N && q < PF_ACT_NQ; b++) {
        acc += a->hist[b];
        while (q < PF_ACT_NQ && (double)acc >= pf_act_quantile_levels[q] * cells) out->abs_q[q++] = bin_value(b);
    }
    return 0;
}

int pf_act_stats_summary_pool(const struct pf_act_stats *s, int first, int n, double share, struct pf_act_summary *out)
{
    memset(out, 0, sizeof *out);
    out->overlap = out->new_vs_window5 = out->lru_hit_at_50 = out->up_given_gate = NAN;
    if (first < 0 || n < 1 || first > s->n_layer - n)
        return pf_fail(PINFER_EINVAL, "activation stats: no layers %d..%d", first, first + n - 1);
    const int F = s->n_ff;
    out->n_ff = F;
    uint64_t rows = 0, act = 0;
    double abs_sum = 0, mn = 1, mx = 0;
    int members = 0;
    for (int k = first; k < first + n; k++) {
        const struct layer_acc *a = &s->L[k];
        if (!a->n_tok) continue;
        rows += a->n_tok;
        act += a->n_active;
        abs_sum += a->abs_sum;
        if (a->min_frac < mn) mn = a->min_frac;
        if (a->max_frac > mx) mx = a->max_frac;
        out->hot_frac += pf_hot_fraction_u32(a->count, F, share);
        out->hot_frac_mag += pf_hot_fraction_f64(a->mag, F, share);
        members++;
    }
    out->n_tokens = rows;
    if (!rows) return 0;
    const double cells = (double)rows * F;
    out->active_frac = (double)act / cells;
    out->active_frac_min = mn;
    out->active_frac_max = mx;
    out->hot_frac /= members;
    out->hot_frac_mag /= members;
    out->abs_mean = abs_sum / cells;
    uint64_t acc = 0;
    int q = 0;
    for (int b = 0; b < HIST_N && q < PF_ACT_NQ; b++) {
        for (int k = first; k < first + n; k++) acc += s->L[k].hist[b];
        while (q < PF_ACT_NQ && (double)acc >= pf_act_quantile_levels[q] * cells) out->abs_q[q++] = bin_value(b);
    }
    return 0;
}

const uint32_t *pf_act_stats_counts(const struct pf_act_stats *s, int layer)
{
    return layer >= 0 && layer < s->n_layer ? s->L[layer].count : NULL;
}

uint64_t pf_act_stats_tokens(const struct pf_act_stats *s, int layer)
{
    return layer >= 0 && layer < s->n_layer ? s->L[layer].n_tok : 0;
}
