/* Where single-token steps spend their time: pinfer_decode adds each phase's seconds into
 * c->ph (forward.c; the predictors' share is timed by the FFN), this reports them per token with
 * the bytes the timed matrix products read, so a phase's bandwidth can be set against the
 * machine's roof (pinfer bench prints it). */
#include "runtime/ctx.h"

#include <string.h>

int pinfer_ctx_time_stats(const struct pinfer_ctx *c, struct pinfer_time_stats *out)
{
    memset(out, 0, sizeof *out);
    const struct pinfer_model *m = c->m;
    for (int l = 0; l < m->info.n_layer; l++) {
        const struct pf_layer *L = &m->layers[l];
        out->attn_mm_bytes += pf_weight_bytes(&L->wq) + pf_weight_bytes(&L->wk) + pf_weight_bytes(&L->wv) + pf_weight_bytes(&L->wo);
    }
    out->head_bytes = pf_weight_bytes(&m->output);
    out->n_tokens = c->ph_tokens;
    if (!c->ph_tokens) return 0;
    const double T = (double)c->ph_tokens;
    out->total = c->ph_total / T;
    out->attn_mm = c->ph[PF_PH_ATTN_MM] / T;
    out->attn = c->ph[PF_PH_ATTN] / T;
    const double pred = pf_ffn_pred_seconds(c->ffn);
    out->predictor = pred / T;
    out->ffn = (c->ph[PF_PH_FFN] - pred) / T;
    out->head = c->ph[PF_PH_HEAD] / T;
    out->other = out->total - out->attn_mm - out->attn - out->predictor - out->ffn - out->head;
    return 0;
}

void pinfer_ctx_time_stats_reset(struct pinfer_ctx *c)
{
    memset(c->ph, 0, sizeof c->ph);
    c->ph_total = 0;
    c->ph_tokens = 0;
    pf_ffn_time_reset(c->ffn);
}
