/* The endpoints: chat and text completions (whole, or streamed as server-sent events), the
 * model list, health and metrics.
 *
 * A completion is checked and tokenized here, on the connection's thread, so that a request
 * that cannot run (bad JSON, a prompt the context cannot hold) is answered before it takes a
 * place in the queue; then it is a job for the engine, and this thread waits on the job's
 * condition variable: for the end (whole responses) or for each piece of text (streams). While
 * waiting it looks at the socket every WAIT_MS for a client that hung up, whose job is then
 * cancelled so its slot is freed. */
#include "server/http.h"
#include "server/response.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 200

/* ==== Waiting for a job ==== */

/* Whether the client at fd closed its side (or the socket failed). */
static bool peer_gone(int fd)
{
    if (fd < 0) return false;
    struct pollfd p = { .fd = fd, .events = POLLRDHUP };
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void deadline_in(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_nsec += ms * 1000000L;
    while (t->tv_nsec >= 1000000000L) { t->tv_sec++; t->tv_nsec -= 1000000000L; }
}

/* Waits (j->mu held) until the job is done or, when sent != SIZE_MAX, has more than `sent`
 * bytes ready; false when the client at fd is gone first. The socket is looked at every
 * WAIT_MS, however often the job signals meanwhile. */
static bool wait_job(struct srv_job *j, int fd, size_t sent)
{
    struct timespec next;
    deadline_in(&next, WAIT_MS);
    while (!j->done && !(sent != SIZE_MAX && j->ready > sent)) {
        if (pthread_cond_timedwait(&j->cv, &j->mu, &next) == ETIMEDOUT) {
            if (peer_gone(fd)) return false;
            deadline_in(&next, WAIT_MS);
        }
    }
    return true;
}

static int conn_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static void resp_id(struct srv *s, enum srv_kind kind, struct srv_resp_id *rid)
{
    rid->kind = kind;
    rid->created = (long long)time(NULL);
    rid->model = s->model_id;
    unsigned long long n = atomic_fetch_add(&s->next_id, 1);
    snprintf(rid->id, sizeof rid->id, "%s-%llx%06llx", kind == SRV_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)s->started, n);
}

/* ==== From a request to a job ==== */

/* The prompt's tokens: a chat rendered through the template (its special tokens parsed), or the
 * text as `pinfer run -p` tokenizes it. 0, or -1 with *err. */
static int prompt_tokens(struct srv *s, const struct srv_request *rq, struct srv_job *j, struct srv_error *err)
{
    char *text = NULL;
    const char *src = rq->prompt;
    bool special = false;
    int rc = -1;
    if (rq->kind == SRV_CHAT) {
        struct pinfer_chat_msg *msgs = malloc(sizeof *msgs * (size_t)rq->n_messages);
        if (!msgs) return srv_error_set(err, 500, "server_error", NULL, "out of memory");
        for (int i = 0; i < rq->n_messages; i++) msgs[i] = (struct pinfer_chat_msg){ rq->messages[i].role, rq->messages[i].content };
        int need = pinfer_chat_apply(s->model, s->chat_tmpl, msgs, rq->n_messages, true, NULL, 0);
        if (need >= 0 && (text = malloc((size_t)need + 1)))
            need = pinfer_chat_apply(s->model, s->chat_tmpl, msgs, rq->n_messages, true, text, need + 1);
        free(msgs);
        if (need < 0) { srv_error_set(err, 400, "invalid_request_error", "chat_template", "%s", pinfer_last_error()); goto out; }
        if (!text) { srv_error_set(err, 500, "server_error", NULL, "out of memory"); goto out; }
        src = text;
        special = true;
    }
    size_t len = strlen(src);
    int n = pinfer_tokenize_ex(s->model, src, len, true, special, NULL, 0);
    if (n < 0) { srv_error_set(err, 400, "invalid_request_error", "tokenize_failed", "%s", pinfer_last_error()); goto out; }
    if (!(j->prompt = malloc(sizeof *j->prompt * (size_t)(n > 0 ? n : 1)))) {
        srv_error_set(err, 500, "server_error", NULL, "out of memory");
        goto out;
    }
    j->n_prompt = pinfer_tokenize_ex(s->model, src, len, true, special, j->prompt, n);
    if (j->n_prompt == 0) {
        int32_t bos = pinfer_token_bos(s->model);
        if (bos < 0) { srv_error_set(err, 400, "invalid_request_error", "empty_prompt", "the prompt has no tokens"); goto out; }
        j->prompt[0] = bos; /* as pinfer run does with an empty prompt */
        j->n_prompt = 1;
    }
    rc = 0;
out:
    free(text);
    return rc;
}

/* Fills job j from request rq (taking its stop strings) and the server's defaults; checks that
 * the prompt and max_tokens fit the context. 0, or -1 with *err. */
static int make_job(struct srv *s, struct srv_request *rq, struct srv_job *j, struct srv_error *err)
{
    if (prompt_tokens(s, rq, j, err)) return -1;
    const int n_ctx = srv_engine_n_ctx(s->eng);
    j->max_tokens = rq->max_tokens > 0 ? rq->max_tokens : s->p.max_tokens;
    if (j->max_tokens > 0 && (long long)j->n_prompt + j->max_tokens > n_ctx)
        return srv_error_set(err, 400, "invalid_request_error", "context_length_exceeded",
                             "the prompt is %d tokens and max_tokens %d: together more than the context of %d tokens",
                             j->n_prompt, j->max_tokens, n_ctx);
    if (j->n_prompt >= n_ctx)
        return srv_error_set(err, 400, "invalid_request_error", "context_length_exceeded",
                             "the prompt is %d tokens: the context holds %d, with room for at least one more", j->n_prompt, n_ctx);
    j->ignore_eos = s->p.ignore_eos;
    j->sp = s->p.sp;
    if (rq->has_temperature) j->sp.temp = rq->temperature;
    if (rq->has_top_p) j->sp.top_p = rq->top_p;
    if (rq->has_top_k) j->sp.top_k = rq->top_k;
    if (rq->has_min_p) j->sp.min_p = rq->min_p;
    if (rq->has_repeat_penalty) j->sp.repeat_penalty = rq->repeat_penalty;
    if (rq->has_seed) j->sp.seed = rq->seed;
    for (int i = 0; i < rq->n_stop; i++) {
        j->stop[i] = rq->stop[i];
        rq->stop[i] = NULL;
    }
    j->n_stop = rq->n_stop;
    rq->n_stop = 0;
    return 0;
}

static void result_of(const struct srv_job *j, struct srv_result *r)
{
    *r = (struct srv_result){ .text = j->text, .len = j->len, .finish = j->finish, .prompt_tokens = j->n_prompt,
                              .cached_tokens = j->n_cached, .completion_tokens = j->n_gen };
}

/* ==== Streams ==== */

struct stream {
    struct srv *s;
    struct srv_job *j;
    int fd;
    struct srv_resp_id rid;
    bool include_usage;
    bool role_sent, ended; /* the chat's first chunk; [DONE] formatted */
    size_t sent;           /* job text already formatted */
    char *out;             /* formatted events not yet handed to libmicrohttpd */
    size_t out_len, out_pos, out_cap;
};

/* Appends "data: <json>\n\n" (json freed); false when out of memory. */
static bool put_event(struct stream *st, char *json)
{
    if (!json) return false;
    size_t n = strlen(json), need = st->out_len + n + 9;
    if (need > st->out_cap) {
        size_t nc = need * 2;
        char *nb = realloc(st->out, nc);
        if (!nb) { free(json); return false; }
        st->out = nb;
        st->out_cap = nc;
    }
    st->out_len += (size_t)sprintf(st->out + st->out_len, "data: %s\n\n", json);
    free(json);
    return true;
}

/* The next events: waits for text or the end. false: stop the stream (client gone, or out of
 * memory). */
static bool next_events(struct stream *st)
{
    struct srv_job *j = st->j;
    st->out_len = st->out_pos = 0;
    if (st->rid.kind == SRV_CHAT && !st->role_sent) {
        st->role_sent = true;
        return put_event(st, srv_json_chunk(&st->rid, true, "", 0, NULL));
    }
    pthread_mutex_lock(&j->mu);
    bool alive = wait_job(j, st->fd, st->sent);
    if (!alive) {
        pthread_mutex_unlock(&j->mu);
        return false;
    }
    /* the text so far (copied under the lock) and, if it has ended, how */
    size_t from = st->sent, to = j->ready;
    char *piece = to > from ? malloc(to - from) : NULL;
    if (piece) memcpy(piece, j->text + from, to - from);
    const bool done = j->done;
    struct srv_result r;
    result_of(j, &r);
    struct srv_error err = j->err;
    pthread_mutex_unlock(&j->mu);
    if (to > from && !piece) return false;
    st->sent = to;
    bool ok = true;
    if (piece) ok = put_event(st, srv_json_chunk(&st->rid, false, piece, to - from, NULL));
    free(piece);
    if (ok && done) {
        if (r.finish) {
            ok = put_event(st, srv_json_chunk(&st->rid, false, NULL, 0, r.finish));
            if (ok && st->include_usage) ok = put_event(st, srv_json_usage_chunk(&st->rid, &r));
        } else {
            ok = put_event(st, srv_json_error(&err)); /* OpenAI's clients raise it */
        }
        if (ok) ok = put_event(st, strdup("[DONE]"));
        st->ended = true;
    }
    return ok;
}

/* libmicrohttpd asks for the next bytes of the stream; on this connection's own thread, so it
 * may block until there are some. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *st = cls;
    while (st->out_pos == st->out_len) {
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!next_events(st)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->out_len - st->out_pos < max ? st->out_len - st->out_pos : max;
    memcpy(buf, st->out + st->out_pos, n);
    st->out_pos += n;
    return (ssize_t)n;
}

/* The response is gone (sent, or the connection closed): a job still running is cancelled. */
static void stream_free(void *cls)
{
    struct stream *st = cls;
    pthread_mutex_lock(&st->j->mu);
    bool done = st->j->done;
    pthread_mutex_unlock(&st->j->mu);
    if (!done) srv_engine_cancel(st->s->eng, st->j);
    srv_job_release(st->j);
    free(st->out);
    free(st);
}

static enum MHD_Result start_stream(struct srv *s, struct MHD_Connection *c, struct srv_job *j, const struct srv_request *rq,
                                    const struct srv_resp_id *rid)
{
    struct stream *st = calloc(1, sizeof *st);
    struct MHD_Response *r = st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free) : NULL;
    if (!r) {
        free(st);
        srv_engine_cancel(s->eng, j);
        srv_job_release(j);
        return http_send(s, c, 500, NULL, NULL, NULL, NULL);
    }
    st->s = s;
    st->j = j; /* the stream owns the caller's reference now */
    st->fd = conn_fd(c);
    st->rid = *rid;
    st->include_usage = rq->include_usage;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r); /* stream_free runs when libmicrohttpd is done with it */
    srv_metrics_response(&s->metrics, 200);
    return ret;
}

/* ==== Endpoints ==== */

enum MHD_Result api_completion(struct srv *s, struct MHD_Connection *c, enum srv_kind kind, const char *body, size_t len)
{
    struct srv_request rq;
    struct srv_error err;
    if (srv_request_parse(kind, body, len, &rq, &err)) return http_error(s, c, &err);
    struct srv_job *j = srv_job_new();
    enum MHD_Result ret;
    if (!j) {
        srv_request_free(&rq);
        return http_send(s, c, 500, NULL, NULL, NULL, NULL);
    }
    if (make_job(s, &rq, j, &err)) {
        ret = http_error(s, c, &err);
        goto out;
    }
    int rc = srv_engine_submit(s->eng, j);
    if (rc) {
        srv_metrics_rejected(&s->metrics);
        if (rc == -1)
            srv_error_set(&err, 503, "server_error", "server_busy",
                          "all %d slots are busy and %d requests wait already; retry later", s->p.parallel, s->p.queue_size);
        else
            srv_error_set(&err, 503, "server_error", "shutting_down", "the server is shutting down");
        ret = http_error(s, c, &err);
        goto out;
    }
    struct srv_resp_id rid;
    resp_id(s, kind, &rid);
    if (rq.stream) {
        ret = start_stream(s, c, j, &rq, &rid);
        j = NULL; /* the stream's now */
        goto out;
    }
    /* a whole response: wait for the end */
    const int fd = conn_fd(c);
    pthread_mutex_lock(&j->mu);
    bool alive = wait_job(j, fd, SIZE_MAX);
    pthread_mutex_unlock(&j->mu);
    if (!alive) { /* nobody to answer: free the slot, close the connection */
        srv_engine_cancel(s->eng, j);
        ret = MHD_NO;
        goto out;
    }
    if (!j->finish) {
        ret = http_error(s, c, &j->err);
        goto out;
    }
    struct srv_result r;
    result_of(j, &r);
    ret = http_send(s, c, 200, srv_json_completion(&rid, &r), "application/json", NULL, NULL);
out:
    srv_job_release(j);
    srv_request_free(&rq);
    return ret;
}

enum MHD_Result api_models(struct srv *s, struct MHD_Connection *c)
{
    return http_send(s, c, 200, srv_json_models(s->model_id, s->started), "application/json", NULL, NULL);
}

enum MHD_Result api_health(struct srv *s, struct MHD_Connection *c)
{
    return http_send(s, c, 200, strdup("{\"status\":\"ok\"}"), "application/json", NULL, NULL);
}

enum MHD_Result api_metrics(struct srv *s, struct MHD_Connection *c)
{
    return http_send(s, c, 200, srv_metrics_render(&s->metrics), "text/plain; version=0.0.4", NULL, NULL);
}
