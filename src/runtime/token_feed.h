/* A run of tokens through a model for the offline tools (pinfer prepare's calibration, pinfer
 * profile): given tokens (a text's, random ids) decoded in batches, or the model's own samples
 * decoded one at a time, with a callback after every batch. Runs longer than a window are cut
 * into sequences that each start over at position 0. What the tools measure they read from the
 * forward pass's hooks, which they install on the context themselves; this module uses only
 * the public API (include/pinfer.h).
 *
 * Sampling: from BOS (token 0 if the model has none), temperature 1, no truncation, repetition
 * penalty 1.1 over the last 64 tokens (so a small model cannot sit in a loop of one token),
 * seeded. A new window starts again from BOS; the sampler's history carries over. */
#ifndef PF_RUNTIME_TOKEN_FEED_H
#define PF_RUNTIME_TOKEN_FEED_H

#include "pinfer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The batch just decoded. */
struct pf_token_batch {
    const int32_t *tokens;
    int n;
    int index;      /* of its first token in the run */
    int pos;        /* of its first token in its sequence */
    bool seq_end;   /* it ends a sequence: the next batch, if any, starts over at position 0 */
};

/* Called after each batch; a nonzero return stops the run, which returns it. */
typedef int (*pf_token_feed_fn)(void *ud, const struct pf_token_batch *b);

struct pf_token_feed {
    const int32_t *tokens;   /* n_tokens to decode; NULL: sample n_tokens */
    int n_tokens;
    int n_batch;             /* given tokens per decode call (samples go one at a time) */
    int window;              /* tokens per sequence; 0 or >= n_tokens: one sequence */
    uint64_t seed;           /* sampling */
    pf_token_feed_fn on_batch; /* may be NULL */
    void *ud;
};

/* Sets cp->n_ctx and cp->n_batch to what the run needs; the caller sets the rest. */
void pf_token_feed_ctx_params(const struct pf_token_feed *f, struct pinfer_ctx_params *cp);

/* Runs f through ctx (a context of m made with pf_token_feed_ctx_params). The context is reset
 * at the start of every sequence. Returns 0 or a negative code (from pinfer_decode, the
 * sampler or the callback). */
int pf_token_feed_run(const struct pf_token_feed *f, const struct pinfer_model *m, struct pinfer_ctx *ctx);

/* The tokens of text, BOS first, at most cap of them (0: all). On success *out (*n entries) is
 * owned by the caller (free). */
int pf_token_feed_text(const struct pinfer_model *m, const char *text, size_t len, int cap, int32_t **out, int *n);

/* BOS, then n - 1 uniform random ids of ordinary pieces (ids from 259 on when the vocabulary
 * has more: not the control and byte tokens of a SentencePiece vocabulary), seeded. On success
 * *out is owned by the caller (free). */
int pf_token_feed_random(const struct pinfer_model *m, int n, uint64_t seed, int32_t **out);

#endif
