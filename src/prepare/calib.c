/* Calibration for pinfer prepare: runs the model over text or over its own samples and, through
 * the forward pass's FFN input/output hook, records per layer and neuron how often it is on and
 * its mean |activation|, and (for predictors) every token's FFN input and true active set.
 *
 * Tokens (runtime/token_feed.c): text is tokenized with BOS first and decoded in batches of 64 (256 for a mixture);
 * without text the model samples from BOS one token at a time with the sampler pinfer profile
 * uses, in one sequence.
 * "On": act != 0 for the ReLU family, which is exactly the set the sparse FFN must compute. SiLU
 * and GeLU activations are never exactly zero, so there a neuron counts as on when its |act| is
 * above the token's median |act| over the layer: the neurons a 50% threshold would keep. */
#include "prepare/prepare_internal.h"

#include "core/checked.h"
#include "core/error.h"
#include "prepare/lowrank.h"
#include "runtime/token_feed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* k-th smallest of v[0..n) (v is reordered). Deterministic middle pivot. */
static float select_kth(float *v, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float piv = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < piv) i++;
            while (v[j] > piv) j--;
            if (i <= j) { float t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    return v[k];
}

/* Row r of unit L: its input, active bits and statistics from one activation row a. */
static void add_row(struct pf_calib *c, struct pf_calib_layer *L, int r, const float *in, const float *a)
{
    const int n_ff = c->n_ff;
    uint8_t *mrow = c->gather ? L->mask + (size_t)r * c->mask_stride : NULL;
    if (c->gather) memcpy(L->x + (size_t)r * c->n_embd, in, (size_t)c->n_embd * sizeof *in);
    if (c->relu_family) {
        for (int i = 0; i < n_ff; i++) {
            if (a[i] == 0) continue;
            L->count[i]++;
            L->abs_sum[i] += fabsf(a[i]);
            if (mrow) mrow[i >> 3] |= (uint8_t)(1u << (i & 7));
        }
        return;
    }
    for (int i = 0; i < n_ff; i++) c->tmp[i] = fabsf(a[i]);
    float med = select_kth(c->tmp, n_ff, n_ff / 2);
    for (int i = 0; i < n_ff; i++) {
        float v = fabsf(a[i]);
        L->abs_sum[i] += v;
        if (v > med) L->count[i]++;
    }
}

/* Dense layers: every token of the batch is a row, at its token index. */
static void io_hook(void *ud, int layer, const float *in, int n_embd, const float *act, int n_ff, int n_tok)
{
    struct pf_calib *c = ud;
    if (c->n_expert || layer < 0 || layer >= c->n_layer || n_embd != c->n_embd || n_ff != c->n_ff || c->cur + n_tok > c->n_tok) {
        c->bad_layer = layer;
        return;
    }
    struct pf_calib_layer *L = &c->layers[layer];
    for (int t = 0; t < n_tok; t++) add_row(c, L, c->cur + t, in + (size_t)t * n_embd, act + (size_t)t * n_ff);
    L->n_rows = c->cur + n_tok;
}

/* Room for n rows in a mixture's unit (doubling). */
static bool grow(struct pf_calib *c, struct pf_calib_layer *L, int n)
{
    if (n <= L->cap) return true;
    int cap = L->cap ? L->cap : 64;
    while (cap < n) cap = cap > c->n_tok / 2 ? c->n_tok : 2 * cap;
    float *x = realloc(L->x, (size_t)cap * (size_t)c->n_embd * sizeof *x);
    if (x) L->x = x;
    uint8_t *m = realloc(L->mask, (size_t)cap * c->mask_stride);
    if (m) L->mask = m;
    uint8_t *h = realloc(L->heldout, (size_t)cap);
    if (h) L->heldout = h;
    if (!x || !m || !h) return false;
    memset(L->mask + (size_t)L->cap * c->mask_stride, 0, (size_t)(cap - L->cap) * c->mask_stride);
    L->cap = cap;
    return true;
}

/* Mixtures: expert e of layer l ran on n rows (in token order); row i is token choice[i] / k of
 * the batch. Appended to the unit's rows. */
static void expert_hook(void *ud, int layer, int e, const int *choice, int k, const float *in, int n_embd, const float *act,
                        int n_ff, int n)
{
    struct pf_calib *c = ud;
    if (layer < 0 || layer >= c->n_layer || e < 0 || e >= c->n_expert || n_embd != c->n_embd || n_ff != c->n_ff ||
        k != c->n_expert_used) {
        c->bad_layer = layer;
        return;
    }
    struct pf_calib_layer *L = &c->layers[(size_t)layer * c->n_expert + e];
    if (L->n_rows + n > c->n_tok || (c->gather && !grow(c, L, L->n_rows + n))) {
        c->bad_layer = layer;
        c->oom = c->gather && L->n_rows + n <= c->n_tok;
        return;
    }
    for (int i = 0; i < n; i++) {
        const int T = c->cur + choice[i] / k, r = L->n_rows++;
        if (c->gather) L->heldout[r] = pf_prepare_heldout(T);
        add_row(c, L, r, in + (size_t)i * n_embd, act + (size_t)i * n_ff);
    }
}

static int alloc_layers(struct pf_calib *c)
{
    size_t xs, ms;
    if (ck_mul((size_t)c->n_tok, (size_t)c->n_embd, &xs) || ck_mul(xs, sizeof(float), &xs) ||
        ck_mul((size_t)c->n_tok, c->mask_stride, &ms))
        return pf_fail(PINFER_ENOMEM, "calibration data size overflows");
    if (!(c->layers = calloc((size_t)c->n_units, sizeof *c->layers)))
        return pf_fail(PINFER_ENOMEM, "out of memory");
    for (int l = 0; l < c->n_units; l++) {
        struct pf_calib_layer *L = &c->layers[l];
        L->count = calloc((size_t)c->n_ff, sizeof *L->count);
        L->abs_sum = calloc((size_t)c->n_ff, sizeof *L->abs_sum);
        if (!L->count || !L->abs_sum) return pf_fail(PINFER_ENOMEM, "out of memory");
        if (c->gather && !c->n_expert) { /* a mixture's units grow as tokens are routed to them */
            L->cap = c->n_tok;
            L->x = malloc(xs);
            L->mask = calloc(1, ms);
            if (!L->x || !L->mask)
                return pf_fail(PINFER_ENOMEM, "out of memory for calibration data: %d tokens need %.1f MiB per layer, %d layers",
                               c->n_tok, (double)(xs + ms) / (1 << 20), c->n_layer);
        }
    }
    return 0;
}

/* After each decoded batch: the hook writes the next batch's rows from here on. */
struct calib_run {
    struct pf_calib *c;
    struct pf_progress *pg;
};

static int on_batch(void *ud, const struct pf_token_batch *b)
{
    struct calib_run *r = ud;
    r->c->cur = b->index + b->n;
    pf_progress_update(r->pg, (double)r->c->cur / r->c->n_tok);
    return 0;
}

int pf_calib_run(struct pf_calib **out, struct pinfer_model *m, const struct pinfer_prepare_params *p, bool stats,
                 bool gather, struct pf_progress *pg)
{
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    *out = NULL;
    int32_t *toks = NULL;
    int n = 0, rc;
    struct pinfer_ctx *ctx = NULL;
    struct pf_calib *c = calloc(1, sizeof *c);
    if (!c) return pf_fail(PINFER_ENOMEM, "out of memory");
    /* the statistics run: the text's next tokens, or as many samples (random ids) of another seed */
    const uint64_t seed = stats ? pf_mix64(p->seed + 0x57A7u) : p->seed;
    bool text = p->text != NULL;
    if (text) {
        const int cap = stats && p->n_tokens > 0 ? 2 * p->n_tokens : p->n_tokens;
        if ((rc = pf_token_feed_text(m, p->text, p->text_len, cap, &toks, &n))) goto out;
        if (stats) {
            const int first = p->n_tokens > 0 && p->n_tokens < n ? p->n_tokens : n;
            if (n - first >= PF_MIN_CALIB_TOKENS) {
                memmove(toks, toks + first, (size_t)(n - first) * sizeof *toks);
                n -= first;
            } else { /* the text has no more: samples */
                free(toks);
                toks = NULL;
                text = false;
                n = first;
            }
        }
    } else {
        n = p->n_tokens;
    }
    if (!text && p->random_tokens && n > 0 && (rc = pf_token_feed_random(m, n, seed, &toks))) goto out;
    if (n < PF_MIN_CALIB_TOKENS) {
        rc = pf_fail(PINFER_EINVAL, "calibration has %d tokens; prepare needs at least %d (%s)", n, PF_MIN_CALIB_TOKENS,
                     p->text ? "use a longer text" : "raise --tokens");
        goto out;
    }
    c->n_layer = info.n_layer;
    c->n_expert = info.n_expert;
    c->n_expert_used = info.n_expert_used;
    c->n_units = info.n_layer * (info.n_expert ? info.n_expert : 1);
    c->n_embd = info.n_embd;
    c->n_ff = info.n_ff;
    c->n_tok = n;
    c->mask_stride = ((size_t)info.n_ff + 7) / 8;
    c->relu_family = pf_act_relu_family(info.act);
    c->gather = gather;
    c->source = text ? "text" : p->random_tokens ? "random" : "sample";
    c->bad_layer = -1;
    c->heldout = malloc((size_t)n);
    c->tmp = malloc((size_t)info.n_ff * sizeof *c->tmp);
    if (!c->heldout || !c->tmp) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto out; }
    for (int t = 0; t < n; t++) c->heldout[t] = pf_prepare_heldout(t);
    if ((rc = alloc_layers(c))) goto out;

    struct calib_run run = { c, pg };
    /* a mixture's batch reads every expert (each token routes to a few, a batch to all): fewer,
       larger batches read a model larger than memory fewer times from storage */
    struct pf_token_feed feed = { .tokens = toks, .n_tokens = n, .n_batch = info.n_expert ? 256 : 64, .seed = seed,
                                  .on_batch = on_batch, .ud = &run };
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_threads = p->n_threads;
    pf_token_feed_ctx_params(&feed, &cp);
    if ((rc = pinfer_ctx_new(&ctx, m, &cp))) goto out;
    if (c->n_expert) pf_ctx_set_moe_hooks(ctx, NULL, expert_hook, c);
    else pf_ctx_set_ffn_io_hook(ctx, io_hook, c);
    if ((rc = pf_token_feed_run(&feed, m, ctx))) goto out;
    if (c->oom) {
        rc = pf_fail(PINFER_ENOMEM, "out of memory for calibration data (%d tokens, %d units of %d neurons)", c->n_tok,
                     c->n_units, c->n_ff);
        goto out;
    }
    if (c->bad_layer >= 0) {
        rc = pf_fail(PINFER_EUNSUPPORTED, "layer %d reported an FFN of another shape than the model's", c->bad_layer);
        goto out;
    }
    free(c->tmp);
    c->tmp = NULL;
    *out = c;
    c = NULL;
out:
    pf_calib_free(c);
    pinfer_ctx_free(ctx);
    free(toks);
    return rc;
}

struct pf_pred_data pf_calib_data(const struct pf_calib *c, int unit)
{
    const struct pf_calib_layer *L = &c->layers[unit];
    struct pf_pred_data d = {
        .n_embd = c->n_embd, .n_ff = c->n_ff, .n_tok = L->n_rows,
        .x = L->x, .mask = L->mask, .mask_stride = c->mask_stride,
        .heldout = L->heldout ? L->heldout : c->heldout,
    };
    return d;
}

void pf_calib_release_layer(struct pf_calib *c, int unit)
{
    struct pf_calib_layer *L = &c->layers[unit];
    free(L->x);
    free(L->mask);
    free(L->heldout);
    L->x = NULL;
    L->mask = NULL;
    L->heldout = NULL;
    L->cap = 0;
}

void pf_calib_free(struct pf_calib *c)
{
    if (!c) return;
    if (c->layers)
        for (int l = 0; l < c->n_units; l++) {
            pf_calib_release_layer(c, l);
            free(c->layers[l].count);
            free(c->layers[l].abs_sum);
        }
    free(c->layers);
    free(c->heldout);
    free(c->tmp);
    free(c);
}
