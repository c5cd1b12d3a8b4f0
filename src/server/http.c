/* The HTTP side (server.h): the listening socket, libmicrohttpd with a thread per connection,
 * routing, the API key, request bodies under a cap, and starting and stopping the whole server.
 *
 * Checks in order, each with OpenAI's error object: unknown path 404, wrong method 405 (with
 * Allow), missing or wrong key 401, a body over the cap 413 (from Content-Length before
 * anything is read, else once the cap is passed), then the endpoint's own (api.c). */
#include "server/http.h"
#include "server/response.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static _Thread_local char last_error[512];

const char *srv_last_error(void) { return last_error; }

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

struct srv_params srv_default_params(void)
{
    struct srv_params p = {
        .host = "127.0.0.1", .port = 8080, .parallel = 1, .queue_size = 16, .max_body = 1u << 20,
        .max_tokens = -1, .sp = pinfer_sampler_default_params(), .cp = pinfer_ctx_default_params(),
        .timeout_s = 600,
    };
    return p;
}

/* ==== Responses ==== */

enum MHD_Result http_send(struct srv *s, struct MHD_Connection *c, int status, char *body, const char *ctype,
                          const char *header, const char *value)
{
    static char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
    struct MHD_Response *r;
    if (body) {
        r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!r) free(body);
    } else {
        status = 500;
        ctype = "application/json";
        r = MHD_create_response_from_buffer(sizeof oom - 1, oom, MHD_RESPMEM_PERSISTENT);
    }
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (header) MHD_add_response_header(r, header, value);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    srv_metrics_response(&s->metrics, status);
    return ret;
}

enum MHD_Result http_error(struct srv *s, struct MHD_Connection *c, const struct srv_error *err)
{
    const char *h = NULL, *v = NULL;
    if (err->status == 503) { h = MHD_HTTP_HEADER_RETRY_AFTER; v = "1"; }
    if (err->status == 401) { h = MHD_HTTP_HEADER_WWW_AUTHENTICATE; v = "Bearer"; }
    return http_send(s, c, err->status, srv_json_error(err), "application/json", h, v);
}

/* ==== Routing ==== */

enum route { R_HEALTH, R_METRICS, R_MODELS, R_CHAT, R_COMPLETION };

static const struct {
    const char *path, *method;
} routes[] = {
    [R_HEALTH] = { "/health", "GET" },
    [R_METRICS] = { "/metrics", "GET" },
    [R_MODELS] = { "/v1/models", "GET" },
    [R_CHAT] = { "/v1/chat/completions", "POST" },
    [R_COMPLETION] = { "/v1/completions", "POST" },
};
#define N_ROUTES (int)(sizeof routes / sizeof *routes)

/* One request's state between the calls libmicrohttpd makes for it. */
struct req {
    enum route route;
    char *body;
    size_t len, cap;
    size_t dropped;   /* bytes past the cap, read and thrown away (chunked bodies) */
    bool body_wanted; /* a completion whose body is being read; else answered in the first call */
};

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c; (void)toe;
    struct srv *s = cls;
    struct req *r = *con_cls;
    if (!r) return;
    free(r->body);
    free(r);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Whether the request carries "Authorization: Bearer <key>"; compared in constant time. */
static bool key_ok(const struct srv *s, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    size_t n = strlen(h), k = strlen(s->api_key);
    unsigned char diff = n != k;
    for (size_t i = 0; i < k; i++) diff |= (unsigned char)(s->api_key[i] ^ (i < n ? h[i] : 0));
    return diff == 0;
}

static enum MHD_Result fail_with(struct srv *s, struct MHD_Connection *c, int status, const char *type, const char *code,
                                 const char *msg, const char *header, const char *value)
{
    struct srv_error e;
    srv_error_set(&e, status, type, code, "%s", msg);
    return http_send(s, c, status, srv_json_error(&e), "application/json", header, value);
}

/* The first call for a request (its headers are in): route, method, key, Content-Length. */
static enum MHD_Result begin(struct srv *s, struct MHD_Connection *c, const char *url, const char *method, void **con_cls)
{
    struct req *r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    *con_cls = r; /* on_completed frees it and counts the request out */
    pthread_mutex_lock(&s->mu);
    s->in_flight++;
    pthread_mutex_unlock(&s->mu);
    int route = -1;
    for (int i = 0; i < N_ROUTES; i++)
        if (!strcmp(url, routes[i].path)) route = i;
    if (route < 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "no such endpoint: %.100s", url);
        return fail_with(s, c, 404, "invalid_request_error", "not_found", msg, NULL, NULL);
    }
    const char *want = routes[route].method;
    bool get = !strcmp(want, "GET");
    if (strcmp(method, want) && !(get && !strcmp(method, "HEAD"))) {
        char msg[160];
        snprintf(msg, sizeof msg, "%.20s is not allowed on %s; use %s", method, routes[route].path, want);
        return fail_with(s, c, 405, "invalid_request_error", "method_not_allowed", msg, MHD_HTTP_HEADER_ALLOW,
                         get ? "GET, HEAD" : want);
    }
    if (s->api_key && route != R_HEALTH && !key_ok(s, c))
        return fail_with(s, c, 401, "invalid_request_error", "invalid_api_key",
                         "a valid API key is needed: send it as \"Authorization: Bearer KEY\"", MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                         "Bearer");
    switch ((enum route)route) {
    case R_HEALTH: return api_health(s, c);
    case R_METRICS: return api_metrics(s, c);
    case R_MODELS: return api_models(s, c);
    case R_CHAT: case R_COMPLETION: break;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || n > s->p.max_body) {
            char msg[160];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->p.max_body);
            return fail_with(s, c, 413, "invalid_request_error", "request_too_large", msg, NULL, NULL);
        }
    }
    r->route = (enum route)route;
    r->body_wanted = true;
    return MHD_YES;
}

/* Appends a piece of the body; beyond the cap the rest is read and dropped, up to a limit. */
static enum MHD_Result take_body(struct srv *s, struct req *r, const char *data, size_t n)
{
    if (r->dropped || n > s->p.max_body - r->len) {
        r->dropped += n;
        /* a client that goes on sending far past the cap is cut off */
        return r->dropped > 16 * s->p.max_body ? MHD_NO : MHD_YES;
    }
    if (r->len + n + 1 > r->cap) {
        size_t nc = r->cap ? r->cap : 4096;
        while (nc < r->len + n + 1) nc *= 2;
        if (nc > s->p.max_body + 1) nc = s->p.max_body + 1;
        char *nb = realloc(r->body, nc);
        if (!nb) return MHD_NO;
        r->body = nb;
        r->cap = nc;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = 0;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct srv *s = cls;
    struct req *r = *con_cls;
    if (!r) return begin(s, c, url, method, con_cls);
    if (!r->body_wanted) { /* answered already: the rest of what the client sends is dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        enum MHD_Result ok = take_body(s, r, upload, *upload_size);
        *upload_size = 0;
        return ok;
    }
    if (r->dropped) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->p.max_body);
        return fail_with(s, c, 413, "invalid_request_error", "request_too_large", msg, NULL, NULL);
    }
    return api_completion(s, c, r->route == R_CHAT ? SRV_CHAT : SRV_COMPLETION, r->body ? r->body : "", r->len);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fprintf(stderr, "pinfer serve: http: ");
    vfprintf(stderr, fmt, ap);
}

/* ==== Start and stop ==== */

/* A listening TCP socket on host:port (port 0: any free one). fd, or a negative code. */
static int listen_on(const char *host, int port, int backlog)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res, *ai;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int g = getaddrinfo(host, ps, &hints, &res);
    if (g) return fail(PINFER_EINVAL, "cannot resolve host '%s': %s", host, gai_strerror(g));
    int fd = -1, err = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) { err = errno; continue; }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return fail(PINFER_EIO, "cannot listen on %s:%d: %s", host, port, strerror(err));
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len)) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

static char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".gguf")) n -= 5;
    return strndup(b, n);
}

int srv_start(struct srv **out, struct pinfer_model *model, const char *model_path, const struct srv_params *p)
{
    *out = NULL;
    if (p->parallel < 1 || p->parallel > 256) return fail(PINFER_EINVAL, "parallel %d out of range 1..256", p->parallel);
    if (p->queue_size < 0 || p->queue_size > 65536) return fail(PINFER_EINVAL, "queue size %d out of range 0..65536", p->queue_size);
    if (p->max_body < 64) return fail(PINFER_EINVAL, "a body cap of %zu bytes is too small", p->max_body);
    struct srv *s = calloc(1, sizeof *s);
    if (!s) return fail(PINFER_ENOMEM, "out of memory");
    s->p = *p;
    s->model = model;
    s->listen_fd = -1;
    s->started = (long long)time(NULL);
    atomic_init(&s->next_id, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = PINFER_ENOMEM;
    s->model_id = p->model_id ? strdup(p->model_id) : base_name(model_path ? model_path : "model");
    s->api_key = p->api_key ? strdup(p->api_key) : NULL;
    s->chat_tmpl = p->chat_tmpl ? strdup(p->chat_tmpl) : NULL;
    s->host = strdup(p->host ? p->host : "127.0.0.1");
    if (!s->model_id || (p->api_key && !s->api_key) || (p->chat_tmpl && !s->chat_tmpl) || !s->host) {
        fail(rc, "out of memory");
        goto err;
    }
    json_t *id = json_string(s->model_id); /* NULL unless valid UTF-8 */
    if (!id) { rc = fail(PINFER_EINVAL, "the model id '%s' is not UTF-8", s->model_id); goto err; }
    json_decref(id);
    const char *tname; /* a model whose template is not one pinfer knows: say so now, not per request */
    if (pinfer_chat_template_name(model, s->chat_tmpl, &tname, NULL)) {
        rc = fail(PINFER_EINVAL, "%s (pass --chat-template NAME)", pinfer_last_error());
        goto err;
    }
    json_object_seed(0); /* before any thread uses jansson */
    if (srv_metrics_init(&s->metrics, p->parallel, p->queue_size, p->mem_budget)) { fail(rc, "out of memory"); goto err; }

    const char *delay = getenv("PINFER_SERVE_DELAY_MS");
    struct srv_engine_params ep = { .n_slots = p->parallel, .queue_cap = p->queue_size, .cp = p->cp,
                                    .delay_ms = delay ? atoi(delay) : 0 };
    if ((rc = srv_engine_new(&s->eng, model, &ep, &s->metrics))) {
        fail(rc, "cannot make %d slot%s: %s", p->parallel, p->parallel > 1 ? "s" : "", pinfer_last_error());
        goto err;
    }
    int max_conn = p->max_connections > 0 ? p->max_connections : 64 + p->parallel + p->queue_size;
    if ((rc = s->listen_fd = listen_on(s->host, p->port, max_conn)) < 0) goto err;
    s->port = bound_port(s->listen_fd);
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                                MHD_USE_ERROR_LOG,
                            0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conn, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)(p->timeout_s > 0 ? p->timeout_s : 0), MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                            s, MHD_OPTION_END);
    if (!s->d) { rc = fail(PINFER_EIO, "libmicrohttpd could not start on %s:%d", s->host, s->port); goto err; }
    *out = s;
    return 0;
err:
    srv_free(s);
    return rc < 0 ? rc : PINFER_EIO;
}

int srv_port(const struct srv *s) { return s->port; }
int srv_n_ctx(const struct srv *s) { return srv_engine_n_ctx(s->eng); }

void srv_stop(struct srv *s, double grace_s)
{
    if (!s) return;
    if (s->d) {
        /* no new connections; then the engine ends what runs, which ends the streams */
        int fd = MHD_quiesce_daemon(s->d);
        if (fd >= 0 && fd == s->listen_fd) {
            close(fd);
            s->listen_fd = -1;
        }
    }
    if (s->eng) srv_engine_stop(s->eng, grace_s);
    if (s->d) {
        /* every job has ended: let their responses go out (a stream's last events), for a few
           seconds at most, then close every connection */
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 5;
        pthread_mutex_lock(&s->mu);
        while (s->in_flight > 0)
            if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) break;
        pthread_mutex_unlock(&s->mu);
        MHD_stop_daemon(s->d);
        s->d = NULL;
    }
}

void srv_free(struct srv *s)
{
    if (!s) return;
    srv_stop(s, 0);
    srv_engine_free(s->eng);
    if (s->listen_fd >= 0) close(s->listen_fd);
    srv_metrics_free(&s->metrics);
    free(s->api_key);
    free(s->model_id);
    free(s->chat_tmpl);
    free(s->host);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
