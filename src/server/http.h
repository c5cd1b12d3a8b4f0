/* Inside the server: its state, and the helpers the endpoints (api.c) answer with. */
#ifndef PF_SERVER_HTTP_H
#define PF_SERVER_HTTP_H

#include "server/engine.h"
#include "server/metrics.h"
#include "server/request.h"
#include "server/server.h"

#include <microhttpd.h>
#include <stdatomic.h>

struct srv {
    struct srv_params p;     /* strings below are the server's copies */
    char *api_key, *model_id, *chat_tmpl, *host;
    struct pinfer_model *model;
    struct srv_engine *eng;
    struct srv_metrics metrics;
    struct MHD_Daemon *d;
    int listen_fd, port;
    atomic_uint_fast64_t next_id; /* response ids */
    long long started;       /* unix time */
    /* requests between their first call and their end (the response sent or the connection
       gone): srv_stop lets them finish before it closes the connections */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;
};

/* Sends body (malloc'd; owned from here on; NULL = out of memory, a 500) with status.
 * header/value: one extra header or NULL. */
enum MHD_Result http_send(struct srv *s, struct MHD_Connection *c, int status, char *body, const char *ctype,
                          const char *header, const char *value);
/* Sends err as OpenAI's error object, with its status. */
enum MHD_Result http_error(struct srv *s, struct MHD_Connection *c, const struct srv_error *err);

/* The endpoints (api.c). body is the request's, len bytes. */
enum MHD_Result api_completion(struct srv *s, struct MHD_Connection *c, enum srv_kind kind, const char *body,
                               size_t len);
enum MHD_Result api_models(struct srv *s, struct MHD_Connection *c);
enum MHD_Result api_health(struct srv *s, struct MHD_Connection *c);
enum MHD_Result api_metrics(struct srv *s, struct MHD_Connection *c);

#endif
