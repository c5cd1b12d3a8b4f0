/* Perplexity the way llama.cpp's perplexity tool computes it (examples/perplexity,
 * perplexity()): chunks of n_ctx tokens, each from an empty cache with its first token set to
 * BOS; the first half of a chunk is context only, and the model's predictions for the tokens
 * at positions n_ctx/2+1 .. n_ctx-1 are scored: nll = -log softmax(logits[j])[token j+1]. */
#include "runtime/ctx.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* -log softmax(logits)[tok], in double. */
static double nll_of(const float *logits, int n_vocab, int32_t tok)
{
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++) if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    return log(sum) - ((double)logits[tok] - mx);
}

int pinfer_perplexity(struct pinfer_ctx *c, const int32_t *tokens, int n, bool one_token_steps,
                      struct pinfer_ppl_result *out)
{
    const int n_ctx = c->n_ctx, nv = c->m->info.n_vocab;
    const int32_t bos = pinfer_token_bos(c->m);
    out->ppl = out->nll = 0;
    out->n_chunks = out->n_scored = 0;
    if (n_ctx < 4) return pf_fail(PINFER_EINVAL, "a context of %d tokens is too short for perplexity", n_ctx);
    const int n_chunks = n / n_ctx, first = n_ctx / 2;
    if (n_chunks < 1)
        return pf_fail(PINFER_EINVAL, "the text has %d tokens; perplexity needs at least one chunk of %d (lower -c)", n, n_ctx);
    if (!one_token_steps && c->n_batch < n_ctx)
        return pf_fail(PINFER_EINVAL, "batched perplexity needs n_batch >= n_ctx (%d < %d)", c->n_batch, n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= nv) return pf_fail(PINFER_EINVAL, "token id %d is outside the vocabulary", tokens[i]);
    int32_t *buf = malloc(sizeof *buf * (size_t)n_ctx);
    if (!buf) return pf_fail(PINFER_ENOMEM, "out of memory");
    double nll = 0;
    int scored = 0;
    for (int ch = 0; ch < n_chunks; ch++) {
        const int32_t *tk = tokens + (size_t)ch * n_ctx;
        pinfer_ctx_reset(c);
        if (one_token_steps) {
            for (int j = 0; j < n_ctx - 1; j++) {
                int32_t in = j == 0 && bos >= 0 ? bos : tk[j];
                int rc = pinfer_decode(c, &in, 1, j, false);
                if (rc) { free(buf); return rc; }
                if (j >= first) { nll += nll_of(pinfer_ctx_logits(c, -1), nv, tk[j + 1]); scored++; }
            }
        } else {
            /* the last token is only a target: n_ctx - 1 inputs */
            memcpy(buf, tk, sizeof *buf * (size_t)(n_ctx - 1));
            if (bos >= 0) buf[0] = bos;
            int rc = pinfer_decode(c, buf, n_ctx - 1, 0, true);
            if (rc) { free(buf); return rc; }
            for (int j = first; j < n_ctx - 1; j++) { nll += nll_of(pinfer_ctx_logits(c, j), nv, tk[j + 1]); scored++; }
        }
    }
    free(buf);
    out->n_chunks = n_chunks;
    out->n_scored = scored;
    out->nll = nll / scored;
    out->ppl = exp(out->nll);
    return 0;
}
