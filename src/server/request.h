/* The body of an OpenAI request -> struct srv_request, and the errors the API answers with.
 *
 * srv_request_parse is a pure function (no I/O, no globals, no model): JSON text in, a request
 * or an OpenAI-style error out, so fuzz/fuzz_request.c drives it directly. What it checks is
 * what can be checked without the model: types, ranges, counts and lengths; the server then
 * checks the prompt against the context. Fields (docs/serving.md has the table):
 *
 *   both      model (string, echoed back, not matched), stream, stream_options.include_usage,
 *             max_tokens (>= 1), temperature (0..2), top_p (0..1), seed (integer), stop (a string
 *             or up to 4), n (1 only), and llama.cpp's top_k, min_p, repeat_penalty; unknown
 *             fields are ignored; features pinfer lacks (logprobs, tools, n > 1, penalties other
 *             than repeat_penalty, echo, suffix, a response_format other than text) are a 400
 *   chat      messages: 1..SRV_MAX_MESSAGES of {role: system|developer|user|assistant, content:
 *             a string or an array of {type: "text", text}}; max_completion_tokens
 *   text      prompt: a string, or an array of one string */
#ifndef PF_SERVER_REQUEST_H
#define PF_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum srv_kind { SRV_CHAT = 0, SRV_COMPLETION = 1 };

#define SRV_MAX_MESSAGES 4096 /* messages in one chat request */
#define SRV_MAX_STOP 4        /* stop strings, as OpenAI */
#define SRV_MAX_STOP_BYTES 256

struct srv_message {
    const char *role;  /* "system" (also for "developer"), "user", "assistant": static strings */
    char *content;     /* UTF-8, NUL-free; text parts joined with "\n" */
};

struct srv_request {
    enum srv_kind kind;
    struct srv_message *messages; /* (n_messages) chat */
    int n_messages;
    char *prompt;                 /* text completion */
    char *model;                  /* as given; NULL if absent */
    bool stream, include_usage;
    int max_tokens;               /* -1 = not given */
    bool has_temperature, has_top_p, has_min_p, has_top_k, has_repeat_penalty, has_seed;
    float temperature, top_p, min_p, repeat_penalty;
    int top_k;
    uint64_t seed;
    char *stop[SRV_MAX_STOP];     /* non-empty strings */
    int n_stop;
};

/* An error as the API reports it: {"error": {"message", "type", "code"}} with an HTTP status. */
struct srv_error {
    int status;        /* 400, 401, 404, 405, 413, 500, 503 */
    const char *type;  /* "invalid_request_error", "authentication_error", "server_error", ... */
    const char *code;  /* "invalid_json", "invalid_value", ... or NULL (JSON null) */
    char message[384];
};

/* Fills *err and returns -1 (for `return srv_error_set(...)`). */
int srv_error_set(struct srv_error *err, int status, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Parses body[0..len) (need not be NUL-terminated) as a request of the given kind. 0 and *req
 * (owned by the caller: srv_request_free), or -1 and *err, with *req holding nothing. */
int srv_request_parse(enum srv_kind kind, const char *body, size_t len, struct srv_request *req,
                      struct srv_error *err);
/* Frees what *req owns and zeroes it; a zeroed request is a no-op. */
void srv_request_free(struct srv_request *req);

#endif
