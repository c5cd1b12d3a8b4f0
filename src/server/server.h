/* pinfer serve: an HTTP server with OpenAI's chat and text completion endpoints, on the public
 * API (include/pinfer.h) only. libmicrohttpd runs the connections (a thread each); the engine
 * (engine.h) runs the model in N slots; docs/serving.md describes the endpoints and metrics.
 *
 *   srv_start     creates the slots, binds host:port and starts serving
 *   srv_stop      stops accepting, ends or cancels what is running, closes the connections
 *   srv_free      frees (stopping first if needed)
 *
 * Environment (a test hook, read once by srv_start): PINFER_SERVE_DELAY_MS=N sleeps N ms after
 * each generated token, so that a test can hold a slot busy on a tiny model. */
#ifndef PF_SERVER_SERVER_H
#define PF_SERVER_SERVER_H

#include "pinfer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct srv_params {
    const char *host;      /* address to bind: "127.0.0.1" (an IPv4 or IPv6 address or a name) */
    int port;              /* 8080; 0 = a free port the system picks (srv_port tells which) */
    int parallel;          /* slots: requests served at once, each with its own KV cache; 1 */
    int queue_size;        /* requests that may wait for a slot (more get 503); 16 */
    const char *api_key;   /* when set, requests need "Authorization: Bearer KEY" (not /health) */
    size_t max_body;       /* largest request body (413 beyond); 1 MiB */
    const char *model_id;  /* the model's name in responses and /v1/models; NULL = the file's
                              base name */
    const char *chat_tmpl; /* chat template name; NULL = the model's (pinfer_chat_apply) */
    int max_tokens;        /* for requests without max_tokens; -1 = until EOS or the context is full */
    bool ignore_eos;
    struct pinfer_sampler_params sp; /* defaults for what a request does not say */
    struct pinfer_ctx_params cp;     /* every slot's context (budget_shares is set to parallel) */
    int max_connections;   /* 0 = 64 + parallel + queue_size */
    int timeout_s;         /* idle connections are closed after this long; 600; 0 = never */
    uint64_t mem_budget;   /* the model's budget in bytes (0 = none), for /metrics */
};
struct srv_params srv_default_params(void);

struct srv;

/* Starts serving model (which must outlive the server); model_path names it when model_id is
 * NULL. 0 and *out, or a negative PINFER_E* code with srv_last_error() saying why (a budget
 * the slots do not fit in, an address in use, ...). */
int srv_start(struct srv **out, struct pinfer_model *model, const char *model_path, const struct srv_params *p);
/* The port the server listens on. */
int srv_port(const struct srv *s);
/* Every slot's context length in tokens. */
int srv_n_ctx(const struct srv *s);
/* Stops accepting connections, refuses queued requests (503), gives running ones grace_s
 * seconds to finish and cancels the rest, then closes every connection. */
void srv_stop(struct srv *s, double grace_s);
void srv_free(struct srv *s);
/* The calling thread's last srv_start failure. */
const char *srv_last_error(void);

#endif
