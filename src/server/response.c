/* Response bodies in OpenAI's shapes (response.h), built with jansson. */
#include "server/response.h"

#include "server/text.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Serializes and frees obj (NULL in, NULL out: a failed json_pack). */
static char *dump(json_t *obj)
{
    if (!obj) return NULL;
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return s;
}

/* A JSON string of text[0..len), invalid UTF-8 replaced. */
static json_t *text_value(const char *text, size_t len)
{
    if (len > ((size_t)1 << 40)) return NULL;
    char *clean = malloc(3 * len + 1);
    if (!clean) return NULL;
    size_t n = srv_utf8_sanitize(text ? text : "", text ? len : 0, clean);
    json_t *s = json_stringn_nocheck(clean, n);
    free(clean);
    return s;
}

char *srv_json_error(const struct srv_error *e)
{
    json_t *msg = text_value(e->message, strnlen(e->message, sizeof e->message));
    if (!msg) return NULL;
    return dump(json_pack("{s:{s:o, s:s, s:n, s:s?}}", "error", "message", msg, "type", e->type ? e->type : "server_error",
                          "param", "code", e->code));
}

char *srv_json_models(const char *model, long long created)
{
    return dump(json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list", "data", "id", model, "object", "model",
                          "created", (json_int_t)created, "owned_by", "pinfer"));
}

static json_t *usage(const struct srv_result *r)
{
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", r->prompt_tokens, "completion_tokens",
                     r->completion_tokens, "total_tokens", r->prompt_tokens + r->completion_tokens,
                     "prompt_tokens_details", "cached_tokens", r->cached_tokens);
}

char *srv_json_completion(const struct srv_resp_id *rid, const struct srv_result *r)
{
    json_t *text = text_value(r->text, r->len), *u = usage(r), *choice;
    if (!text || !u) { json_decref(text); json_decref(u); return NULL; }
    if (rid->kind == SRV_CHAT)
        choice = json_pack("{s:i, s:{s:s, s:o}, s:n, s:s}", "index", 0, "message", "role", "assistant", "content", text,
                           "logprobs", "finish_reason", r->finish);
    else
        choice = json_pack("{s:o, s:i, s:n, s:s}", "text", text, "index", 0, "logprobs", "finish_reason", r->finish);
    if (!choice) { json_decref(u); return NULL; }
    return dump(json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", rid->id, "object",
                          rid->kind == SRV_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)rid->created,
                          "model", rid->model, "choices", choice, "usage", u));
}

char *srv_json_chunk(const struct srv_resp_id *rid, bool role, const char *text, size_t len, const char *finish)
{
    json_t *choice;
    if (rid->kind == SRV_CHAT) {
        json_t *delta = json_object();
        if (!delta) return NULL;
        if (role) json_object_set_new(delta, "role", json_string("assistant"));
        if (role || !finish) json_object_set_new(delta, "content", text_value(text, len));
        choice = json_pack("{s:i, s:o, s:n, s:s?}", "index", 0, "delta", delta, "logprobs", "finish_reason", finish);
    } else {
        json_t *t = text_value(text, len);
        if (!t) return NULL;
        choice = json_pack("{s:o, s:i, s:n, s:s?}", "text", t, "index", 0, "logprobs", "finish_reason", finish);
    }
    if (!choice) return NULL;
    return dump(json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", rid->id, "object",
                          rid->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)rid->created, "model", rid->model, "choices", choice));
}

char *srv_json_usage_chunk(const struct srv_resp_id *rid, const struct srv_result *r)
{
    json_t *u = usage(r);
    if (!u) return NULL;
    return dump(json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", rid->id, "object",
                          rid->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)rid->created, "model", rid->model, "choices", "usage", u));
}
