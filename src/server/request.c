/* OpenAI request bodies -> struct srv_request (request.h): jansson parses, each field is checked
 * for its type and range, and the first problem becomes a 400 naming the field. */
#include "server/request.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int error_setv(struct srv_error *err, int status, const char *type, const char *code, const char *fmt, va_list ap)
{
    err->status = status;
    err->type = type;
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return -1;
}

int srv_error_set(struct srv_error *err, int status, const char *type, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(err, status, type, code, fmt, ap);
    va_end(ap);
    return -1;
}

/* A malformed request: 400, invalid_request_error. */
static int bad(struct srv_error *err, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(struct srv_error *err, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(err, 400, "invalid_request_error", code, fmt, ap);
    va_end(ap);
    return -1;
}

void srv_request_free(struct srv_request *req)
{
    for (int i = 0; i < req->n_messages; i++) free(req->messages[i].content);
    free(req->messages);
    free(req->prompt);
    free(req->model);
    for (int i = 0; i < req->n_stop; i++) free(req->stop[i]);
    memset(req, 0, sizeof *req);
}

/* ==== Fields ==== */

/* A field that is absent or JSON null counts as not given. */
static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* A number field in [lo, hi]; 0 with *has false when absent. */
static int get_number(json_t *obj, const char *key, double lo, double hi, bool *has, float *out, struct srv_error *err)
{
    json_t *v = field(obj, key);
    *has = false;
    if (!v) return 0;
    if (!json_is_number(v)) return bad(err, "invalid_type", "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return bad(err, "invalid_value", "'%s' must be in [%g, %g], got %g", key, lo, hi, d);
    *has = true;
    *out = (float)d;
    return 0;
}

static int get_int(json_t *obj, const char *key, long long lo, long long hi, bool *has, long long *out,
                   struct srv_error *err)
{
    json_t *v = field(obj, key);
    *has = false;
    if (!v) return 0;
    if (!json_is_integer(v)) return bad(err, "invalid_type", "'%s' must be an integer", key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return bad(err, "invalid_value", "'%s' must be in [%lld, %lld], got %lld", key, lo, hi, x);
    *has = true;
    *out = x;
    return 0;
}

static int get_bool(json_t *obj, const char *key, bool *out, struct srv_error *err)
{
    json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return bad(err, "invalid_type", "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

static char *dup_string(json_t *s)
{
    return strndup(json_string_value(s), json_string_length(s));
}

static int oom(struct srv_error *err)
{
    return srv_error_set(err, 500, "server_error", NULL, "out of memory parsing the request");
}

/* stop: a string or an array of 1..SRV_MAX_STOP strings, each 1..SRV_MAX_STOP_BYTES bytes. */
static int get_stop(json_t *obj, struct srv_request *r, struct srv_error *err)
{
    json_t *v = field(obj, "stop");
    if (!v) return 0;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v)) return bad(err, "invalid_type", "'stop' must be a string or an array of strings");
    if (n > SRV_MAX_STOP) return bad(err, "invalid_value", "'stop' holds %zu strings; at most %d", n, SRV_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(s)) return bad(err, "invalid_type", "'stop[%zu]' must be a string", i);
        size_t len = json_string_length(s);
        if (len == 0 || len > SRV_MAX_STOP_BYTES)
            return bad(err, "invalid_value", "a stop string must have 1 to %d bytes, 'stop[%zu]' has %zu", SRV_MAX_STOP_BYTES, i, len);
        if (!(r->stop[r->n_stop] = dup_string(s))) return oom(err);
        r->n_stop++;
    }
    return 0;
}

/* A message's content: a string, or an array of {type: "text", text} parts joined with "\n". */
static int get_content(json_t *m, size_t i, char **out, struct srv_error *err)
{
    json_t *c = json_object_get(m, "content");
    if (json_is_string(c)) return (*out = dup_string(c)) ? 0 : oom(err);
    if (!json_is_array(c)) return bad(err, "invalid_type", "'messages[%zu].content' must be a string or an array of text parts", i);
    size_t total = 0, n = json_array_size(c);
    for (size_t k = 0; k < n; k++) {
        json_t *part = json_array_get(c, k), *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) || strcmp(json_string_value(type), "text"))
            return bad(err, "unsupported_content", "'messages[%zu].content[%zu]': only parts of type \"text\" are supported", i, k);
        if (!json_is_string(text)) return bad(err, "invalid_type", "'messages[%zu].content[%zu].text' must be a string", i, k);
        total += json_string_length(text) + 1; /* bounded by the body's size */
    }
    char *s = malloc(total + 1), *p = s;
    if (!s) return oom(err);
    for (size_t k = 0; k < n; k++) {
        json_t *text = json_object_get(json_array_get(c, k), "text");
        if (k) *p++ = '\n';
        memcpy(p, json_string_value(text), json_string_length(text));
        p += json_string_length(text);
    }
    *p = 0;
    *out = s;
    return 0;
}

static int get_messages(json_t *obj, struct srv_request *r, struct srv_error *err)
{
    json_t *v = json_object_get(obj, "messages");
    if (!v) return bad(err, "missing_field", "'messages' is required");
    if (!json_is_array(v)) return bad(err, "invalid_type", "'messages' must be an array");
    size_t n = json_array_size(v);
    if (n == 0) return bad(err, "invalid_value", "'messages' is empty");
    if (n > SRV_MAX_MESSAGES) return bad(err, "invalid_value", "'messages' holds %zu messages; at most %d", n, SRV_MAX_MESSAGES);
    if (!(r->messages = calloc(n, sizeof *r->messages))) return oom(err);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(v, i), *role = json_object_get(m, "role");
        if (!json_is_object(m)) return bad(err, "invalid_type", "'messages[%zu]' must be an object", i);
        if (!json_is_string(role)) return bad(err, "invalid_type", "'messages[%zu].role' must be a string", i);
        const char *rs = json_string_value(role);
        if (!strcmp(rs, "system") || !strcmp(rs, "developer")) r->messages[i].role = "system";
        else if (!strcmp(rs, "user")) r->messages[i].role = "user";
        else if (!strcmp(rs, "assistant")) r->messages[i].role = "assistant";
        else return bad(err, "invalid_value", "'messages[%zu].role' must be system, developer, user or assistant", i);
        r->n_messages = (int)i + 1; /* content freed by srv_request_free from here on */
        if (get_content(m, i, &r->messages[i].content, err)) return -1;
    }
    return 0;
}

static int get_prompt(json_t *obj, struct srv_request *r, struct srv_error *err)
{
    json_t *v = json_object_get(obj, "prompt");
    if (!v) return bad(err, "missing_field", "'prompt' is required");
    if (json_is_array(v)) {
        if (json_array_size(v) != 1 || !json_is_string(json_array_get(v, 0)))
            return bad(err, "unsupported_value", "'prompt' must be a string or an array of one string (token arrays and "
                                                 "several prompts are not supported)");
        v = json_array_get(v, 0);
    }
    if (!json_is_string(v)) return bad(err, "invalid_type", "'prompt' must be a string");
    return (r->prompt = dup_string(v)) ? 0 : oom(err);
}

/* Features pinfer does not have: a 400 rather than a silent difference. */
static int unsupported(json_t *obj, enum srv_kind kind, struct srv_error *err)
{
    json_t *v;
    const char *zero[] = { "presence_penalty", "frequency_penalty" };
    for (size_t i = 0; i < 2; i++)
        if ((v = field(obj, zero[i])) && !(json_is_number(v) && json_number_value(v) == 0))
            return bad(err, "unsupported_parameter", "'%s' is not supported (repeat_penalty is)", zero[i]);
    if ((v = field(obj, "logprobs")) && !json_is_false(v) && !(kind == SRV_COMPLETION && json_is_integer(v) && json_integer_value(v) == 0))
        return bad(err, "unsupported_parameter", "'logprobs' is not supported");
    if ((v = field(obj, "top_logprobs")) && !(json_is_integer(v) && json_integer_value(v) == 0))
        return bad(err, "unsupported_parameter", "'top_logprobs' is not supported");
    if ((v = field(obj, "tools")) && !(json_is_array(v) && json_array_size(v) == 0))
        return bad(err, "unsupported_parameter", "'tools' is not supported");
    if ((v = field(obj, "functions")) && !(json_is_array(v) && json_array_size(v) == 0))
        return bad(err, "unsupported_parameter", "'functions' is not supported");
    if ((v = field(obj, "logit_bias")) && !(json_is_object(v) && json_object_size(v) == 0))
        return bad(err, "unsupported_parameter", "'logit_bias' is not supported");
    if ((v = field(obj, "echo")) && !json_is_false(v)) return bad(err, "unsupported_parameter", "'echo' is not supported");
    if ((v = field(obj, "suffix")) && !(json_is_string(v) && json_string_length(v) == 0))
        return bad(err, "unsupported_parameter", "'suffix' is not supported");
    if ((v = field(obj, "best_of")) && !(json_is_integer(v) && json_integer_value(v) == 1))
        return bad(err, "unsupported_parameter", "'best_of' must be 1");
    if ((v = field(obj, "response_format"))) {
        json_t *t = json_object_get(v, "type");
        if (!json_is_object(v) || !json_is_string(t) || strcmp(json_string_value(t), "text"))
            return bad(err, "unsupported_parameter", "'response_format' other than {\"type\": \"text\"} is not supported");
    }
    return 0;
}

/* ==== The request ==== */

static int parse_object(json_t *obj, struct srv_request *r, struct srv_error *err)
{
    json_t *v;
    bool has;
    long long x;
    if (r->kind == SRV_CHAT ? get_messages(obj, r, err) : get_prompt(obj, r, err)) return -1;
    if ((v = field(obj, "model"))) {
        if (!json_is_string(v)) return bad(err, "invalid_type", "'model' must be a string");
        if (!(r->model = dup_string(v))) return oom(err);
    }
    if (get_int(obj, "n", 1, 1, &has, &x, err)) {
        /* a precise message for the common case */
        if (json_is_integer(field(obj, "n"))) return bad(err, "unsupported_value", "'n' must be 1: one choice per request");
        return -1;
    }
    r->max_tokens = -1;
    if (get_int(obj, "max_tokens", 1, 1 << 30, &has, &x, err)) return -1;
    if (has) r->max_tokens = (int)x;
    if (r->kind == SRV_CHAT) { /* the newer name wins */
        if (get_int(obj, "max_completion_tokens", 1, 1 << 30, &has, &x, err)) return -1;
        if (has) r->max_tokens = (int)x;
    }
    if (get_number(obj, "temperature", 0, 2, &r->has_temperature, &r->temperature, err)) return -1;
    if (get_number(obj, "top_p", 0, 1, &r->has_top_p, &r->top_p, err)) return -1;
    if (get_number(obj, "min_p", 0, 1, &r->has_min_p, &r->min_p, err)) return -1;
    if (get_number(obj, "repeat_penalty", 0, 100, &r->has_repeat_penalty, &r->repeat_penalty, err)) return -1;
    if (get_int(obj, "top_k", 0, 1 << 30, &r->has_top_k, &x, err)) return -1;
    if (r->has_top_k) r->top_k = (int)x;
    if (get_int(obj, "seed", INT64_MIN, INT64_MAX, &r->has_seed, &x, err)) return -1;
    if (r->has_seed) r->seed = (uint64_t)x;
    if (get_bool(obj, "stream", &r->stream, err)) return -1;
    if ((v = field(obj, "stream_options"))) {
        if (!json_is_object(v)) return bad(err, "invalid_type", "'stream_options' must be an object");
        if (!r->stream) return bad(err, "invalid_value", "'stream_options' is only allowed with \"stream\": true");
        if (get_bool(v, "include_usage", &r->include_usage, err)) return -1;
    }
    if (get_stop(obj, r, err)) return -1;
    return unsupported(obj, r->kind, err);
}

int srv_request_parse(enum srv_kind kind, const char *body, size_t len, struct srv_request *req, struct srv_error *err)
{
    memset(req, 0, sizeof *req);
    req->kind = kind;
    if (kind != SRV_CHAT && kind != SRV_COMPLETION) return srv_error_set(err, 500, "server_error", NULL, "unknown endpoint");
    json_error_t je;
    /* duplicate keys are refused: which one counts would be the parser's choice */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return bad(err, "invalid_json", "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    int rc = json_is_object(root) ? parse_object(root, req, err) : bad(err, "invalid_json", "the body must be a JSON object");
    json_decref(root);
    if (rc) {
        srv_request_free(req);
        req->kind = kind;
    }
    return rc;
}
