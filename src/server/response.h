/* The JSON the API answers with, in OpenAI's shapes: errors, the model list, a whole completion
 * and the chunks of a stream. Each function returns a malloc'd NUL-terminated string (free()),
 * or NULL when out of memory. Text is passed as bytes and made valid UTF-8 here. */
#ifndef PF_SERVER_RESPONSE_H
#define PF_SERVER_RESPONSE_H

#include "server/request.h"

#include <stddef.h>

/* What one completion produced. */
struct srv_result {
    const char *text;   /* the generated text (not NUL-terminated) */
    size_t len;
    const char *finish; /* "stop" or "length" */
    int prompt_tokens;  /* the prompt's tokens */
    int cached_tokens;  /* of those, reused from the slot's KV cache (not decoded) */
    int completion_tokens;
};

/* Identifies one response: "chatcmpl-..." or "cmpl-..." id, creation time, model id. */
struct srv_resp_id {
    enum srv_kind kind;
    char id[48];
    long long created;
    const char *model;
};

/* {"error": {"message", "type", "param": null, "code"}} */
char *srv_json_error(const struct srv_error *err);
/* {"object": "list", "data": [{"id", "object": "model", "created", "owned_by": "pinfer"}]} */
char *srv_json_models(const char *model, long long created);
/* chat.completion or text_completion, with usage */
char *srv_json_completion(const struct srv_resp_id *rid, const struct srv_result *r);
/* One chunk of a stream: the role (chat, first chunk: role != 0), text, or the finish reason
 * (finish != NULL: an empty delta). */
char *srv_json_chunk(const struct srv_resp_id *rid, bool role, const char *text, size_t len, const char *finish);
/* The last chunk when the client asked for stream_options.include_usage: no choices, usage. */
char *srv_json_usage_chunk(const struct srv_resp_id *rid, const struct srv_result *r);

#endif
