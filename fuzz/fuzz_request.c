/* libFuzzer target for the server's request parser (src/server/request.c): any bytes as the
 * body of a chat (first byte even) or text completion (odd) request. What must hold: the parser
 * returns 0 or -1 and never crashes, leaks or reads out of bounds; an error is a 400/500 with a
 * type and a NUL-terminated message; a parsed request holds what its bounds promise (counts,
 * stop string lengths, ranges) and its text survives the stream helpers and the response
 * builder (stop search, the streamable prefix, UTF-8 repair, JSON). */
#include "server/request.h"
#include "server/response.h"
#include "server/text.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise_text(const char *text, const struct srv_request *r)
{
    size_t len = strlen(text);
    long at = srv_stop_find(text, len, 0, r->stop, r->n_stop);
    assert(at < (long)len);
    size_t ready = srv_stream_ready(text, len, r->stop, r->n_stop);
    assert(ready <= len);
    struct srv_resp_id rid = { .kind = r->kind, .id = "x", .created = 1, .model = "m" };
    struct srv_result res = { .text = text, .len = len, .finish = "stop" };
    free(srv_json_completion(&rid, &res));
    free(srv_json_chunk(&rid, false, text, ready, NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const enum srv_kind kind = (data[0] & 1) ? SRV_COMPLETION : SRV_CHAT;
    struct srv_request r;
    struct srv_error e;
    int rc = srv_request_parse(kind, (const char *)data + 1, size - 1, &r, &e);
    if (rc) {
        assert(rc == -1 && (e.status == 400 || e.status == 500) && e.type);
        assert(memchr(e.message, 0, sizeof e.message));
        free(srv_json_error(&e));
        srv_request_free(&r);
        return 0;
    }
    assert(rc == 0 && r.kind == kind);
    assert(r.n_stop >= 0 && r.n_stop <= SRV_MAX_STOP);
    for (int i = 0; i < r.n_stop; i++) assert(strlen(r.stop[i]) >= 1 && strlen(r.stop[i]) <= SRV_MAX_STOP_BYTES);
    assert(r.max_tokens == -1 || r.max_tokens >= 1);
    assert(!r.has_temperature || (r.temperature >= 0 && r.temperature <= 2));
    assert(!r.has_top_p || (r.top_p >= 0 && r.top_p <= 1));
    assert(!r.include_usage || r.stream);
    if (kind == SRV_CHAT) {
        assert(r.n_messages >= 1 && r.n_messages <= SRV_MAX_MESSAGES && !r.prompt);
        for (int i = 0; i < r.n_messages; i++) {
            assert(r.messages[i].role && r.messages[i].content);
            exercise_text(r.messages[i].content, &r);
        }
    } else {
        assert(r.prompt && r.n_messages == 0);
        exercise_text(r.prompt, &r);
    }
    srv_request_free(&r);
    return 0;
}
