/* The server's counters and gauges, and their rendering in Prometheus' text format for
 * GET /metrics (docs/serving.md lists them). Updated by the HTTP threads (responses) and the
 * engine thread (tokens, queue, slots, the neuron cache's counters), under one mutex. */
#ifndef PF_SERVER_METRICS_H
#define PF_SERVER_METRICS_H

#include "pinfer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SRV_METRICS_CODES 10 /* the status codes counted one by one; others count as "other" */

struct srv_metrics {
    pthread_mutex_t mu;
    uint64_t by_code[SRV_METRICS_CODES + 1];
    uint64_t completions;        /* completions generated to their end */
    uint64_t cancelled;          /* stopped because the client went away or the server stopped */
    uint64_t rejected;           /* refused with 503: queue full or shutting down */
    uint64_t prompt_tokens, prompt_processed, prompt_reused, completion_tokens;
    uint64_t decode_steps;       /* single-token decode steps (the neuron cache counts those) */
    uint64_t engine_steps, engine_step_seqs; /* the engine's multi-sequence decodes and their sequences */
    double prompt_s, gen_s;      /* summed over completions */
    int queue_len, queue_cap, slots, slots_busy;
    uint64_t budget;             /* bytes; 0 = none */
    struct pinfer_cache_stats *cache; /* (slots) each slot's latest counters, under a budget */
};

int srv_metrics_init(struct srv_metrics *m, int slots, int queue_cap, uint64_t budget);
void srv_metrics_free(struct srv_metrics *m);

/* One HTTP response with this status. */
void srv_metrics_response(struct srv_metrics *m, int status);
/* One completion ended: its token counts and times. cancelled: it did not run to its end. */
void srv_metrics_completion(struct srv_metrics *m, bool cancelled, int prompt, int processed, int reused, int generated,
                            int steps, double prompt_s, double gen_s);
void srv_metrics_rejected(struct srv_metrics *m);
/* One engine step decoded the next tokens of n generating slots together (pinfer_decode_multi). */
void srv_metrics_step(struct srv_metrics *m, int n);
void srv_metrics_gauges(struct srv_metrics *m, int queue_len, int slots_busy);
/* A slot's neuron-cache counters (pinfer_ctx_cache_stats), kept until the next call. */
void srv_metrics_cache(struct srv_metrics *m, int slot, const struct pinfer_cache_stats *st);

/* The Prometheus text; malloc'd (free()), NULL when out of memory. */
char *srv_metrics_render(struct srv_metrics *m);

#endif
