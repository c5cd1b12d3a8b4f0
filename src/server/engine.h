/* The engine: N slots, each a context of its own (its own KV cache) on one shared model, a
 * bounded queue of jobs waiting for a slot, and one thread that runs them.
 *
 * Handoff: an HTTP thread makes a job (the prompt's tokens, the sampling parameters), submits
 * it and waits on the job's condition variable; the engine thread takes queued jobs into free
 * slots and steps every busy slot in turn (a prompt batch, or one generated token), appending
 * text to the job and signalling it. Nothing spins: the engine sleeps on its own condition
 * variable when no slot is busy, an HTTP thread on the job's.
 *
 * One thread steps all slots so that batching can come later without changing the design: a
 * step that decodes one token per busy slot is one forward pass over a batch of slots once the
 * runtime decodes several sequences at once (docs/serving.md).
 *
 * A slot keeps the tokens its KV cache holds after a job; the next job in that slot decodes
 * only what follows the prefix it shares with them, and a queued job goes to the free slot with
 * the longest such prefix (the least recently used on a tie). */
#ifndef PF_SERVER_ENGINE_H
#define PF_SERVER_ENGINE_H

#include "pinfer.h"
#include "server/metrics.h"
#include "server/request.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One completion request on its way through the engine. Made by the HTTP side (srv_job_new),
 * which fills the inputs and then only reads the outputs under mu. Reference counted: the HTTP
 * side and, once submitted, the engine; srv_job_release frees it with the last reference. */
struct srv_job {
    /* inputs, fixed at submission */
    int32_t *prompt;      /* (n_prompt) tokens, owned */
    int n_prompt;
    int max_tokens;       /* >= 1, or -1: until EOS or the context is full */
    bool ignore_eos;
    struct pinfer_sampler_params sp;
    char *stop[SRV_MAX_STOP]; /* owned */
    int n_stop;

    /* outputs, under mu; cv is signalled on every change */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text;           /* generated text, cut before a stop string (NUL-terminated) */
    size_t len, cap;
    size_t ready;         /* text[0..ready) may be streamed: no stop string can start in it */
    bool done;
    const char *finish;   /* when done: "stop", "length", or NULL after an error */
    struct srv_error err; /* when done with finish NULL */
    int n_cached;         /* prompt tokens reused from the slot's KV cache */
    int n_gen;            /* tokens generated */

    atomic_bool cancel;   /* set by the HTTP side: the client went away */
    int refs;             /* under mu */

    /* the engine's: where the job is */
    int slot;             /* -1 while queued */
    bool queued;
    double t_start, t_prompt, t_end;
    int n_processed;      /* prompt tokens decoded */
    int steps;            /* single-token decode steps */
};

/* A job with one reference (the caller's), outputs empty; NULL when out of memory. The caller
 * fills the inputs. */
struct srv_job *srv_job_new(void);
/* Drops a reference; the last one frees the job. NULL is a no-op. */
void srv_job_release(struct srv_job *job);

struct srv_engine_params {
    int n_slots;       /* >= 1 */
    int queue_cap;     /* jobs that may wait; 0 = none (a job finding every slot busy is refused) */
    struct pinfer_ctx_params cp; /* every slot's context */
    int delay_ms;      /* test hook: sleep this long after each generated token (0 = none) */
};

struct srv_engine;

/* Creates the slots' contexts (the model must outlive the engine) and starts the engine
 * thread. 0 and *out, or a negative PINFER_E* code with pinfer_last_error() naming the slot
 * that could not be made. metrics receives the engine's counters. */
int srv_engine_new(struct srv_engine **out, struct pinfer_model *model, const struct srv_engine_params *p,
                   struct srv_metrics *metrics);
/* The context length of every slot. */
int srv_engine_n_ctx(const struct srv_engine *e);
/* Queues a job (the engine takes a reference). 0; -1 when the queue is full; -2 when the
 * engine is stopping. */
int srv_engine_submit(struct srv_engine *e, struct srv_job *job);
/* The client of job went away: a queued job leaves the queue at once, a running one stops at
 * its next step. Either way it ends done (with an error). */
void srv_engine_cancel(struct srv_engine *e, struct srv_job *job);
/* Stops: new jobs are refused, queued jobs end with 503, running ones get grace_s seconds to
 * finish and are cancelled after that; returns when the engine thread has ended. */
void srv_engine_stop(struct srv_engine *e, double grace_s);
/* Stops (no grace) if still running, frees the slots. NULL is a no-op. */
void srv_engine_free(struct srv_engine *e);

#endif
