/* pinfer profile: runs a model over text, sampled or random tokens and measures its FFN
 * activations per layer through the forward pass's FFN hook (statistics in src/profile/act_stats.c).
 *
 * Token sources (run by runtime/token_feed.c): text is tokenized (BOS first) and decoded in
 * batches; "sample" feeds BOS and then the model's own samples one token at a time (temperature
 * 1, no truncation, repetition penalty 1.1 over 64 tokens so a synthetic model cannot sit in a
 * loop of one token); "random" feeds BOS and uniform random ids of ordinary pieces (ids from
 * 259 on, past the control and byte tokens), in batches. Statistics are per token in every
 * case: a batch is only a faster way to run the same tokens. Runs longer than the model's
 * training context (at most 8192) are cut into windows, each a new sequence from position 0
 * (sampling restarts from BOS); overlap is not counted across a window boundary. */
#include "pinfer.h"

#include "core/error.h"
#include "core/clock.h"
#include "core/rng.h"
#include "model/act.h"
#include "profile/act_stats.h"
#include "runtime/ctx.h"
#include "runtime/token_feed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pinfer_profile_params pinfer_profile_default_params(void)
{
    struct pinfer_profile_params p;
    memset(&p, 0, sizeof p);
    p.n_tokens = 128;
    p.seed = 1;
    p.n_batch = 64;
    p.hot_share = 0.8f;
    return p;
}

struct hook_state {
    struct pf_act_stats *st; /* dense: a layer per layer; MoE: a "layer" per (layer, expert), l * X + e */
    int n_ff;
    int bad_layer; /* a hook call that did not fit (-1: none) */
    /* mixture of experts: X experts, K chosen per token */
    int X, K, n_layer;
    uint64_t *routed;    /* (n_layer, X) (token, choice) pairs routed to each expert */
    int *prev_first;     /* (n_layer) the previous token's first choice; -1 at a sequence start */
    uint64_t *rep_num, *rep_den; /* (n_layer) consecutive pairs with the same first choice; pairs */
};

static void ffn_hook(void *ud, int layer, const float *act, int n_tok, int n_ff)
{
    struct hook_state *h = ud;
    if (n_ff != h->n_ff) { h->bad_layer = layer; return; }
    pf_act_stats_add(h->st, layer, act, n_tok);
}

/* dReLU: gate and up pre-activations, for up_given_gate */
static void pre_hook(void *ud, int layer, const float *gate, const float *up, int n_tok, int n_ff)
{
    struct hook_state *h = ud;
    pf_act_stats_add_gate_up(h->st, layer, gate, up, (size_t)n_tok * (size_t)n_ff);
}

/* Mixture of experts: each token's experts in routing order (sel[t*k] its first choice). */
static void route_hook(void *ud, int layer, const int *sel, const float *w, int n_tok, int k)
{
    struct hook_state *h = ud;
    (void)w;
    if (layer < 0 || layer >= h->n_layer || k != h->K) { h->bad_layer = layer; return; }
    uint64_t *routed = h->routed + (size_t)layer * h->X;
    for (int t = 0; t < n_tok; t++) {
        for (int j = 0; j < k; j++)
            if (sel[t * k + j] >= 0 && sel[t * k + j] < h->X) routed[sel[t * k + j]]++;
        int first = sel[t * k];
        if (h->prev_first[layer] >= 0) {
            h->rep_den[layer]++;
            h->rep_num[layer] += first == h->prev_first[layer];
        }
        h->prev_first[layer] = first;
    }
}

/* Mixture of experts: the rows expert `expert` ran (in token order within a batch, so the
 * expert's rows reach its statistics in the order of the run). */
static void expert_hook(void *ud, int layer, int expert, const int *choice, int k, const float *in, int n_embd,
                        const float *act, int n_ff, int n)
{
    struct hook_state *h = ud;
    (void)choice; (void)k; (void)in; (void)n_embd;
    if (layer < 0 || layer >= h->n_layer || expert < 0 || expert >= h->X || n_ff != h->n_ff) {
        h->bad_layer = layer;
        return;
    }
    pf_act_stats_add(h->st, layer * h->X + expert, act, n);
}

/* The tokens to run: text, or BOS + random ids. NULL tokens with *n set means "sample". */
static int make_tokens(const struct pinfer_model *m, const struct pinfer_profile_params *p, int32_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (p->text) {
        int rc = pf_token_feed_text(m, p->text, p->text_len, p->n_tokens, out, n);
        if (rc) return rc;
        if (*n < 2) {
            free(*out);
            *out = NULL;
            return pf_fail(PINFER_EINVAL, "the text has fewer than 2 tokens");
        }
        return 0;
    }
    if (p->n_tokens < 2) return pf_fail(PINFER_EINVAL, "profile needs at least 2 tokens");
    *n = p->n_tokens;
    if (!p->random_tokens) return 0;
    return pf_token_feed_random(m, p->n_tokens, p->seed, out);
}

/* A sequence ended: its last token is not compared with the next sequence's first. */
static int on_batch(void *ud, const struct pf_token_batch *b)
{
    struct hook_state *h = ud;
    if (b->seq_end) {
        pf_act_stats_break(h->st);
        for (int l = 0; h->prev_first && l < h->n_layer; l++) h->prev_first[l] = -1;
    }
    return 0;
}

/* Layer l of a mixture of experts: shares, repeat, each expert's sparsity and hot fraction. */
static int moe_layer(const struct hook_state *h, int l, double hot_share, struct pinfer_profile_layer *L)
{
    const int X = h->X;
    L->n_expert = X;
    L->expert_share = malloc((size_t)X * sizeof *L->expert_share);
    L->expert_sparsity = malloc((size_t)X * sizeof *L->expert_sparsity);
    L->expert_hot = malloc((size_t)X * sizeof *L->expert_hot);
    if (!L->expert_share || !L->expert_sparsity || !L->expert_hot) return pf_fail(PINFER_ENOMEM, "out of memory");
    uint64_t tot = 0;
    for (int e = 0; e < X; e++) tot += h->routed[(size_t)l * X + e];
    for (int e = 0; e < X; e++) {
        struct pf_act_summary s;
        int rc = pf_act_stats_summary(h->st, l * X + e, hot_share, &s);
        if (rc) return rc;
        L->expert_share[e] = tot ? (double)h->routed[(size_t)l * X + e] / (double)tot : NAN;
        L->expert_sparsity[e] = s.n_tokens ? 1 - s.active_frac : NAN;
        L->expert_hot[e] = s.n_tokens ? s.hot_frac : NAN;
    }
    L->expert_repeat = h->rep_den[l] ? (double)h->rep_num[l] / (double)h->rep_den[l] : NAN;
    return 0;
}

int pinfer_profile_run(struct pinfer_profile **out, struct pinfer_model *m, const struct pinfer_profile_params *params)
{
    struct pinfer_profile_params p = params ? *params : pinfer_profile_default_params();
    *out = NULL;
    if (p.n_batch <= 0) p.n_batch = 64;
    if (!(p.hot_share > 0 && p.hot_share <= 1)) return pf_fail(PINFER_EINVAL, "hot share %g must be in (0, 1]", (double)p.hot_share);
    if (p.n_tokens < 0 || p.n_tokens > (1 << 20)) return pf_fail(PINFER_EINVAL, "token count %d out of range", p.n_tokens);
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    int32_t *toks = NULL;
    int n = 0, rc;
    struct pinfer_ctx *ctx = NULL;
    struct hook_state hs = { .n_ff = info.n_ff, .bad_layer = -1, .X = info.n_expert, .K = info.n_expert_used,
                             .n_layer = info.n_layer };
    const int X = info.n_expert, n_exp = X > 0 ? X : 1;
    struct pinfer_profile *prof = NULL;
    if ((rc = make_tokens(m, &p, &toks, &n))) return rc;
    const bool sample = toks == NULL;

    /* runs longer than the training context go in windows, each a new sequence from position 0 */
    int win = info.n_ctx_train > 0 ? info.n_ctx_train : 4096;
    if (win > 8192) win = 8192;
    struct pf_token_feed feed = { .tokens = toks, .n_tokens = n, .n_batch = p.n_batch, .window = win, .seed = p.seed,
                                  .on_batch = on_batch, .ud = &hs };
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_threads = p.n_threads;
    pf_token_feed_ctx_params(&feed, &cp);
    if ((rc = pinfer_ctx_new(&ctx, m, &cp))) goto out;
    if ((rc = pf_act_stats_new(&hs.st, info.n_layer * n_exp, info.n_ff))) goto out;
    if (X) {
        hs.routed = calloc((size_t)info.n_layer * X, sizeof *hs.routed);
        hs.prev_first = malloc((size_t)info.n_layer * sizeof *hs.prev_first);
        hs.rep_num = calloc((size_t)info.n_layer, sizeof *hs.rep_num);
        hs.rep_den = calloc((size_t)info.n_layer, sizeof *hs.rep_den);
        if (!hs.routed || !hs.prev_first || !hs.rep_num || !hs.rep_den) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto out; }
        for (int l = 0; l < info.n_layer; l++) hs.prev_first[l] = -1;
        pf_ctx_set_moe_hooks(ctx, route_hook, expert_hook, &hs);
    } else {
        pf_ctx_set_ffn_hook(ctx, ffn_hook, &hs);
        if (info.act == PINFER_ACT_DRELU) pf_ctx_set_ffn_pre_hook(ctx, pre_hook, &hs);
    }

    double t0 = pf_now();
    if ((rc = pf_token_feed_run(&feed, m, ctx))) goto out;
    double secs = pf_now() - t0;
    if (hs.bad_layer >= 0) {
        rc = X ? pf_fail(PINFER_EUNSUPPORTED, "layer %d reported routing or an expert that does not fit the model "
                                              "(%d experts, %d used, n_ff %d)", hs.bad_layer, X, hs.K, info.n_ff)
               : pf_fail(PINFER_EUNSUPPORTED, "layer %d reported an FFN of another width than %d (mixture of experts?)",
                         hs.bad_layer, info.n_ff);
        goto out;
    }

    prof = calloc(1, sizeof *prof);
    if (!prof || !(prof->layers = calloc((size_t)info.n_layer, sizeof *prof->layers))) {
        rc = pf_fail(PINFER_ENOMEM, "out of memory");
        goto out;
    }
    prof->n_layer = info.n_layer;
    prof->n_tokens = n;
    prof->act = info.act;
    prof->hot_share = p.hot_share;
    prof->source = p.text ? "text" : sample ? "sample" : "random";
    prof->seconds = secs;
    prof->n_expert = X;
    prof->n_expert_used = X ? info.n_expert_used : 0;
    for (int l = 0; l < info.n_layer; l++) {
        struct pf_act_summary s;
        struct pinfer_profile_layer *L = &prof->layers[l];
        L->expert_repeat = NAN;
        if (X) pf_act_stats_summary_pool(hs.st, l * X, X, p.hot_share, &s);
        else pf_act_stats_summary(hs.st, l, p.hot_share, &s);
        L->n_ff = s.n_ff;
        L->active_frac = s.active_frac;
        L->active_frac_min = s.active_frac_min;
        L->active_frac_max = s.active_frac_max;
        L->hot_frac = s.hot_frac;
        L->hot_frac_mag = s.hot_frac_mag;
        L->overlap = s.overlap;
        L->new_vs_window5 = s.new_vs_window5;
        L->lru_hit_at_50 = s.lru_hit_at_50;
        L->up_given_gate = s.up_given_gate;
        L->abs_mean = s.abs_mean;
        memcpy(L->abs_q, s.abs_q, sizeof L->abs_q);
        if (!(L->freq = malloc((size_t)n_exp * s.n_ff * sizeof *L->freq))) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto out; }
        for (int e = 0; e < n_exp; e++) {
            const uint32_t *cnt = pf_act_stats_counts(hs.st, l * n_exp + e);
            uint64_t nt = pf_act_stats_tokens(hs.st, l * n_exp + e);
            for (int i = 0; i < s.n_ff; i++)
                L->freq[(size_t)e * s.n_ff + i] = nt ? (float)((double)cnt[i] / (double)nt) : 0;
        }
        if (X && (rc = moe_layer(&hs, l, p.hot_share, L))) goto out;
    }
    *out = prof;
    prof = NULL;
out:
    pinfer_profile_free(prof);
    pf_act_stats_free(hs.st);
    free(hs.routed);
    free(hs.prev_first);
    free(hs.rep_num);
    free(hs.rep_den);
    pinfer_ctx_free(ctx);
    free(toks);
    return rc;
}

void pinfer_profile_free(struct pinfer_profile *prof)
{
    if (!prof) return;
    if (prof->layers)
        for (int l = 0; l < prof->n_layer; l++) {
            free(prof->layers[l].freq);
            free(prof->layers[l].expert_share);
            free(prof->layers[l].expert_sparsity);
            free(prof->layers[l].expert_hot);
        }
    free(prof->layers);
    free(prof);
}

void pinfer_profile_overall(const struct pinfer_profile *prof, struct pinfer_profile_overall *o)
{
    memset(o, 0, sizeof *o);
    o->sparsity_min = 1;
    const int nl = prof->n_layer > 0 ? prof->n_layer : 1;
    for (int l = 0; l < prof->n_layer; l++) {
        const struct pinfer_profile_layer *L = &prof->layers[l];
        double s = 1 - L->active_frac;
        o->sparsity += s / nl;
        if (s < o->sparsity_min) o->sparsity_min = s;
        if (s > o->sparsity_max) o->sparsity_max = s;
        o->hot_frac += L->hot_frac / nl;
        o->overlap += L->overlap / nl;
        o->new_vs_window5 += L->new_vs_window5 / nl;
        o->lru_hit_at_50 += L->lru_hit_at_50 / nl;
        o->up_given_gate += L->up_given_gate / nl; /* NaN stays NaN: not measured */
    }
    if (prof->n_layer <= 0) o->sparsity_min = 0;
    o->expert_share_min = o->expert_share_max = o->expert_sparsity_min = o->expert_sparsity_max = NAN;
    o->expert_repeat = o->expert_repeat_min = o->expert_repeat_max = NAN;
    if (!prof->n_expert || prof->n_layer <= 0) return;
    o->expert_share_min = o->expert_sparsity_min = o->expert_repeat_min = INFINITY;
    o->expert_share_max = o->expert_sparsity_max = o->expert_repeat_max = -INFINITY;
    o->expert_repeat = 0;
    for (int l = 0; l < prof->n_layer; l++) {
        const struct pinfer_profile_layer *L = &prof->layers[l];
        for (int e = 0; e < L->n_expert; e++) {
            /* fmin / fmax skip NaN (an expert no token chose has no sparsity) */
            o->expert_share_min = fmin(o->expert_share_min, L->expert_share[e]);
            o->expert_share_max = fmax(o->expert_share_max, L->expert_share[e]);
            o->expert_sparsity_min = fmin(o->expert_sparsity_min, L->expert_sparsity[e]);
            o->expert_sparsity_max = fmax(o->expert_sparsity_max, L->expert_sparsity[e]);
        }
        o->expert_repeat += L->expert_repeat / nl;
        o->expert_repeat_min = fmin(o->expert_repeat_min, L->expert_repeat);
        o->expert_repeat_max = fmax(o->expert_repeat_max, L->expert_repeat);
    }
}

/* ==== JSON ==== */

static void json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(fp, "\\%c", c);
        else if (c < 0x20) fprintf(fp, "\\u%04x", c);
        else fputc(c, fp);
    }
    fputc('"', fp);
}

/* JSON has no NaN or infinity: those become null. */
static void json_num(FILE *fp, double v)
{
    if (isfinite(v)) fprintf(fp, "%.6g", v);
    else fputs("null", fp);
}

/* sep "key": v */
static void json_field(FILE *fp, const char *sep, const char *key, double v)
{
    fprintf(fp, "%s\"%s\": ", sep, key);
    json_num(fp, v);
}

/* , "key": [v, ...] */
static void json_array(FILE *fp, const char *key, const double *v, int n)
{
    fprintf(fp, ", \"%s\": [", key);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", fp);
        json_num(fp, v[i]);
    }
    fputc(']', fp);
}

static void write_json(FILE *fp, const struct pinfer_profile *prof, const struct pinfer_model *m, bool neurons)
{
    static const char *qn[6] = { "p10", "p25", "p50", "p75", "p90", "p99" };
    fprintf(fp, "{\n");
    if (m) {
        char desc[256];
        fprintf(fp, "  \"model\": ");
        json_str(fp, pinfer_model_desc(m, desc, sizeof desc));
        fprintf(fp, ",\n");
        float f;
        uint64_t seed = 0;
        int64_t sv;
        if (m->gguf && gguf_get_f32(m->gguf, "pinfer.synth.sparsity", &f) == 0) {
            float h = 0, s = 0;
            gguf_get_f32(m->gguf, "pinfer.synth.hot_frac", &h);
            gguf_get_f32(m->gguf, "pinfer.synth.hot_share", &s);
            if (gguf_get_i64(m->gguf, "pinfer.synth.seed", &sv) == 0) seed = (uint64_t)sv;
            json_field(fp, "  \"synth_request\": {", "sparsity", f);
            json_field(fp, ", ", "hot_frac", h);
            json_field(fp, ", ", "hot_share", s);
            char law[32];
            if (gguf_get_str(m->gguf, "pinfer.synth.law", law, sizeof law) != 0) strcpy(law, "basic");
            fprintf(fp, ", \"law\": ");
            json_str(fp, law);
            fprintf(fp, ", \"seed\": %llu},\n", (unsigned long long)seed);
        }
    }
    fprintf(fp, "  \"act\": \"%s\",\n  \"source\": \"%s\",\n  \"n_tokens\": %d,\n  \"n_layer\": %d,\n",
            pf_act_name(prof->act), prof->source, prof->n_tokens, prof->n_layer);
    if (prof->n_expert) fprintf(fp, "  \"n_expert\": %d,\n  \"n_expert_used\": %d,\n", prof->n_expert, prof->n_expert_used);
    json_field(fp, "  ", "hot_share", prof->hot_share);
    json_field(fp, ",\n  ", "seconds", prof->seconds);
    struct pinfer_profile_overall o;
    pinfer_profile_overall(prof, &o);
    json_field(fp, ",\n  \"mean\": {", "sparsity", o.sparsity);
    json_field(fp, ", ", "sparsity_min", o.sparsity_min);
    json_field(fp, ", ", "sparsity_max", o.sparsity_max);
    json_field(fp, ", ", "hot_frac", o.hot_frac);
    json_field(fp, ", ", "overlap", o.overlap);
    json_field(fp, ", ", "new_vs_window5", o.new_vs_window5);
    json_field(fp, ", ", "lru_hit_at_50", o.lru_hit_at_50);
    json_field(fp, ", ", "up_given_gate", o.up_given_gate);
    if (prof->n_expert) {
        json_field(fp, ", ", "expert_share_min", o.expert_share_min);
        json_field(fp, ", ", "expert_share_max", o.expert_share_max);
        json_field(fp, ", ", "expert_repeat", o.expert_repeat);
        json_field(fp, ", ", "expert_repeat_min", o.expert_repeat_min);
        json_field(fp, ", ", "expert_repeat_max", o.expert_repeat_max);
        json_field(fp, ", ", "expert_sparsity_min", o.expert_sparsity_min);
        json_field(fp, ", ", "expert_sparsity_max", o.expert_sparsity_max);
    }
    fprintf(fp, "},\n  \"layers\": [\n");
    for (int l = 0; l < prof->n_layer; l++) {
        const struct pinfer_profile_layer *L = &prof->layers[l];
        fprintf(fp, "    {\"layer\": %d, \"n_ff\": %d", l, L->n_ff);
        json_field(fp, ", ", "sparsity", 1 - L->active_frac);
        json_field(fp, ", ", "active_frac", L->active_frac);
        json_field(fp, ", ", "active_frac_min", L->active_frac_min);
        json_field(fp, ", ", "active_frac_max", L->active_frac_max);
        json_field(fp, ", ", "hot_frac", L->hot_frac);
        json_field(fp, ", ", "hot_frac_mag", L->hot_frac_mag);
        json_field(fp, ", ", "overlap", L->overlap);
        json_field(fp, ", ", "new_vs_window5", L->new_vs_window5);
        json_field(fp, ", ", "lru_hit_at_50", L->lru_hit_at_50);
        json_field(fp, ", ", "up_given_gate", L->up_given_gate);
        json_field(fp, ", ", "abs_mean", L->abs_mean);
        fprintf(fp, ", \"abs_quantiles\": {");
        for (int q = 0; q < 6; q++) json_field(fp, q ? ", " : "", qn[q], L->abs_q[q]);
        fprintf(fp, "}");
        if (L->n_expert) {
            json_field(fp, ", ", "expert_repeat", L->expert_repeat);
            json_array(fp, "expert_share", L->expert_share, L->n_expert);
            json_array(fp, "expert_sparsity", L->expert_sparsity, L->n_expert);
            json_array(fp, "expert_hot", L->expert_hot, L->n_expert);
        }
        if (neurons && L->freq) {
            fprintf(fp, ", \"freq\": [");
            for (int i = 0; i < L->n_ff * (L->n_expert ? L->n_expert : 1); i++) {
                if (i) fputc(',', fp);
                json_num(fp, L->freq[i]);
            }
            fprintf(fp, "]");
        }
        fprintf(fp, "}%s\n", l + 1 < prof->n_layer ? "," : "");
    }
    fprintf(fp, "  ]\n}\n");
}

int pinfer_profile_write_json(const struct pinfer_profile *prof, const struct pinfer_model *m, const char *path,
                              bool neurons)
{
    if (!prof || !path) return pf_fail(PINFER_EINVAL, "profile JSON: nothing to write");
    if (strcmp(path, "-") == 0) {
        write_json(stdout, prof, m, neurons);
        return fflush(stdout) == 0 ? 0 : pf_fail(PINFER_EIO, "writing the profile to stdout failed");
    }
    struct pinfer_outfile *f;
    int rc = pinfer_outfile_open(&f, path);
    if (rc) return rc;
    write_json(pinfer_outfile_stream(f), prof, m, neurons);
    return pinfer_outfile_commit(f);
}
