/* The public side of the sparse FFN: mode names, parameter checks and the per-token statistics
 * (bytes read, fractions of neurons and clusters touched, recall). */
#include "ffn/ffn_internal.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct { const char *name; enum pinfer_sparse_mode mode; } modes[] = {
    { "off", PINFER_SPARSE_OFF }, { "oracle", PINFER_SPARSE_ORACLE },
    { "predictor", PINFER_SPARSE_PREDICTOR }, { "threshold", PINFER_SPARSE_THRESHOLD },
};
#define N_MODES (int)(sizeof modes / sizeof *modes)

int pinfer_sparse_mode_parse(const char *name, enum pinfer_sparse_mode *out)
{
    for (int i = 0; i < N_MODES; i++)
        if (name && strcasecmp(name, modes[i].name) == 0) { *out = modes[i].mode; return 0; }
    return pf_fail(PINFER_EINVAL, "unknown sparse mode '%s' (expected off, oracle, predictor or threshold)", name ? name : "(null)");
}

const char *pinfer_sparse_mode_name(enum pinfer_sparse_mode mode)
{
    for (int i = 0; i < N_MODES; i++)
        if (modes[i].mode == mode) return modes[i].name;
    return "?";
}

int pf_ffn_check_params(const struct pinfer_model *m, const struct pinfer_ctx_params *p)
{
    if ((unsigned)p->sparse > PINFER_SPARSE_THRESHOLD)
        return pf_fail(PINFER_EINVAL, "unknown sparse mode %d (expected off, oracle, predictor or threshold)", (int)p->sparse);
    if (!(p->sparsity_target >= 0 && p->sparsity_target < 1))
        return pf_fail(PINFER_EINVAL, "sparsity target %g must be at least 0 and below 1", (double)p->sparsity_target);
    if (p->sparse != PINFER_SPARSE_OFF && m->info.n_expert && !m->bundles)
        return pf_fail(PINFER_EUNSUPPORTED, "sparse mode %s on a mixture of experts needs a prepared model (make one with pinfer prepare)",
                       pinfer_sparse_mode_name(p->sparse));
    if (p->sparse == PINFER_SPARSE_THRESHOLD && m->info.n_expert)
        return pf_fail(PINFER_EUNSUPPORTED, "sparse mode threshold on a mixture of experts is not supported (use oracle or predictor)");
    if (p->sparse == PINFER_SPARSE_PREDICTOR && !m->info.has_predictors)
        return pf_fail(PINFER_EUNSUPPORTED, "predictor mode needs a prepared model with a predictor in every layer%s",
                       m->info.prepared ? "; this one has none (SiLU models: use --sparse threshold)"
                                        : " (make one with pinfer prepare)");
    return 0;
}

/* ==== Statistics ==== */

void pf_ffn_sparse_stats_reset(struct pf_ffn *f)
{
    memset(f->lstats, 0, sizeof *f->lstats * (size_t)f->m->info.n_layer);
    f->n_sparse_tokens = 0;
}

/* Bytes of the gate row, up row and down column of one neuron of layer l. */
static void neuron_bytes(const struct pinfer_model *m, int l, double *g, double *u, double *d)
{
    const struct pf_layer *L = &m->layers[l];
    if (L->ffn_b) {
        *g = (double)L->ffn_b->row[PF_PART_GATE];
        *u = (double)L->ffn_b->row[PF_PART_UP];
        *d = (double)L->ffn_b->row[PF_PART_DOWN];
        return;
    }
    /* a mixture: the mean expert's (a step's counts cover its n_expert_used experts) */
    const double X = L->exp ? m->info.n_expert : 1;
    *g = *u = *d = 0;
    for (int e = 0; e < (int)X; e++) {
        const struct pf_weight *wg = L->exp ? &L->exp[e].gate : &L->ffn_gate, *wu = L->exp ? &L->exp[e].up : &L->ffn_up,
                               *wd = L->exp ? &L->exp[e].down : &L->ffn_down;
        *g += (double)wg->row_size / X;
        *u += (double)wu->row_size / X;
        *d += pf_weight_bytes(wd) / (double)m->info.n_ff / X;
    }
}

/* Predictor bytes a token reads in layer l: the layer's, or the mean expert's times the experts
 * a token uses. */
static double layer_pred_bytes(const struct pinfer_model *m, int l)
{
    const struct pf_bundles *b = m->layers[l].ffn_b;
    if (!b) return 0;
    const int X = pf_model_experts(m);
    double s = 0;
    for (int e = 0; e < X; e++)
        if (b[e].fc1.name) s += pf_weight_bytes(&b[e].fc1) + pf_weight_bytes(&b[e].fc2);
    return s / X * (m->info.n_expert ? m->info.n_expert_used : 1);
}

int pf_ffn_sparse_stats(const struct pf_ffn *f, int layer, struct pinfer_sparse_stats *out)
{
    const struct pinfer_model *m = f->m;
    const int L = m->info.n_layer, F = m->info.n_ff;
    if (layer < -1 || layer >= L) return pf_fail(PINFER_EINVAL, "layer %d is out of range -1..%d", layer, L - 1);
    memset(out, 0, sizeof *out);
    const int l0 = layer < 0 ? 0 : layer, l1 = layer < 0 ? L : layer + 1;
    const double T = (double)f->n_sparse_tokens;
    const enum pinfer_sparse_mode mode = f->sparse;
    const bool prepared = m->bundles != NULL, pred = mode == PINFER_SPARSE_PREDICTOR;
    const double fan = m->info.n_expert ? m->info.n_expert_used : 1; /* FFNs a token runs per layer */
    struct pf_sparse_layer_stats s;
    memset(&s, 0, sizeof s);
    double bytes = 0, pbytes = 0, ffn_full = 0, thr = 0, n_clusters = 0;
    for (int l = 0; l < L; l++) {
        double g, u, d;
        neuron_bytes(m, l, &g, &u, &d);
        ffn_full += (g + u + d) * F * fan;
        if (l < l0 || l >= l1) continue;
        const struct pf_sparse_layer_stats *k = &f->lstats[l];
        s.gate += k->gate; s.up += k->up; s.down += k->down; s.clusters += k->clusters;
        s.predicted += k->predicted; s.active += k->active; s.true_active += k->true_active;
        s.hit += k->hit; s.mass_all += k->mass_all; s.mass_kept += k->mass_kept;
        if (T > 0) bytes += ((double)k->gate * g + (double)k->up * u + (double)k->down * d) / T;
        if (pred) pbytes += layer_pred_bytes(m, l);
        thr += f->thresh[l];
        if (prepared) n_clusters += (double)((F + m->info.cluster_size - 1) / m->info.cluster_size) * fan;
    }
    const double nl = (double)(l1 - l0), N = T * (double)F * nl * fan;
    out->n_tokens = f->n_sparse_tokens;
    out->threshold = mode == PINFER_SPARSE_THRESHOLD ? thr / nl : 0;
    out->true_frac = out->recall = out->precision = out->pred_frac = out->cluster_frac = -1;
    bytes += pbytes;
    if (layer < 0) bytes += (double)m->info.decode_bytes - ffn_full; /* attention, norms, head */
    out->bytes = bytes;
    out->pred_bytes = pbytes;
    if (N == 0) return 0;
    out->gate_frac = (double)s.gate / N;
    out->up_frac = (double)s.up / N;
    out->down_frac = (double)s.down / N;
    out->active_frac = (double)s.active / N;
    if (prepared) out->cluster_frac = (double)s.clusters / (T * n_clusters);
    if (pred) out->pred_frac = (double)s.predicted / N;
    if (mode == PINFER_SPARSE_OFF || mode == PINFER_SPARSE_ORACLE) {
        out->true_frac = out->active_frac;
        out->recall = out->precision = 1;
    } else if (f->verify || !prepared) {
        out->true_frac = (double)s.true_active / N;
        if (mode == PINFER_SPARSE_THRESHOLD)
            out->recall = s.mass_all > 0 ? s.mass_kept / s.mass_all : 1;
        else
            out->recall = s.true_active ? (double)s.hit / (double)s.true_active : 1;
        if (pred) out->precision = s.predicted ? (double)s.hit / (double)s.predicted : 1;
    }
    return 0;
}
