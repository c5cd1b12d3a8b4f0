/* Token runs for prepare and profile (runtime/token_feed.h). */
#include "runtime/token_feed.h"

#include "core/error.h"
#include "core/rng.h"

#include <stdlib.h>

static int window(const struct pf_token_feed *f)
{
    return f->window > 0 && f->window < f->n_tokens ? f->window : f->n_tokens;
}

static int batch(const struct pf_token_feed *f)
{
    if (!f->tokens) return 1;
    int win = window(f), nb = f->n_batch > 0 ? f->n_batch : 1;
    return nb < win ? nb : win;
}

void pf_token_feed_ctx_params(const struct pf_token_feed *f, struct pinfer_ctx_params *cp)
{
    cp->n_ctx = window(f);
    cp->n_batch = batch(f);
}

static int run_tokens(const struct pf_token_feed *f, struct pinfer_ctx *ctx)
{
    const int n = f->n_tokens, win = window(f), nb = batch(f);
    for (int w0 = 0; w0 < n; w0 += win) {
        const int len = n - w0 < win ? n - w0 : win;
        pinfer_ctx_reset(ctx);
        for (int i = 0; i < len; i += nb) {
            const int k = len - i < nb ? len - i : nb;
            struct pf_token_batch b = { f->tokens + w0 + i, k, w0 + i, i, i + k == len };
            int rc = pinfer_decode(ctx, b.tokens, k, i, false);
            if (!rc && f->on_batch) rc = f->on_batch(f->ud, &b);
            if (rc) return rc;
        }
    }
    return 0;
}

static int run_sampled(const struct pf_token_feed *f, const struct pinfer_model *m, struct pinfer_ctx *ctx)
{
    const int n = f->n_tokens, win = window(f);
    struct pinfer_model_info info;
    pinfer_model_get_info(m, &info);
    struct pinfer_sampler_params sp = pinfer_sampler_default_params();
    sp.temp = 1.0f; sp.top_k = 0; sp.top_p = 1.0f; sp.min_p = 0.0f;
    sp.repeat_penalty = 1.1f; sp.repeat_last_n = 64; sp.seed = f->seed;
    struct pinfer_sampler *smp = NULL;
    int rc = pinfer_sampler_new(&smp, info.n_vocab, &sp);
    if (rc) return rc;
    const int32_t bos = pinfer_token_bos(m);
    int32_t tok = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (i % win == 0) {
            pinfer_ctx_reset(ctx);
            tok = bos >= 0 ? bos : 0;
        }
        pinfer_sampler_accept(smp, tok);
        struct pf_token_batch b = { &tok, 1, i, i % win, (i + 1) % win == 0 || i + 1 == n };
        rc = pinfer_decode(ctx, &tok, 1, b.pos, false);
        if (!rc && f->on_batch) rc = f->on_batch(f->ud, &b);
        if (!rc) tok = pinfer_sampler_sample(smp, pinfer_ctx_logits(ctx, -1));
    }
    pinfer_sampler_free(smp);
    return rc;
}

int pf_token_feed_run(const struct pf_token_feed *f, const struct pinfer_model *m, struct pinfer_ctx *ctx)
{
    if (f->n_tokens <= 0) return 0;
    return f->tokens ? run_tokens(f, ctx) : run_sampled(f, m, ctx);
}

int pf_token_feed_text(const struct pinfer_model *m, const char *text, size_t len, int cap, int32_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    int k = pinfer_tokenize(m, text, len, true, NULL, 0);
    if (k < 0) return k;
    int32_t *t = malloc(sizeof *t * ((size_t)k + 1));
    if (!t) return pf_fail(PINFER_ENOMEM, "out of memory for %d tokens", k);
    k = pinfer_tokenize(m, text, len, true, t, k + 1);
    if (k < 0) { free(t); return k; }
    if (cap > 0 && k > cap) k = cap;
    *out = t;
    *n = k;
    return 0;
}

int pf_token_feed_random(const struct pinfer_model *m, int n, uint64_t seed, int32_t **out)
{
    *out = NULL;
    int32_t *t = malloc(sizeof *t * (size_t)(n > 0 ? n : 1));
    if (!t) return pf_fail(PINFER_ENOMEM, "out of memory");
    const int nv = pinfer_n_vocab(m), lo = nv > 260 ? 259 : 0;
    const int32_t bos = pinfer_token_bos(m);
    struct synth_rng r;
    synth_rng_init(&r, seed);
    for (int i = 0; i < n; i++) t[i] = i == 0 && bos >= 0 ? bos : lo + (int32_t)synth_rng_below(&r, (uint64_t)(nv - lo));
    *out = t;
    return 0;
}
