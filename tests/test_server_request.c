/* The server's pure parts: request parsing (JSON -> struct srv_request, the field checks),
 * stop strings and the streamable part of generated text, UTF-8 repair, and the response
 * shapes. No model, no sockets. */
#include "testutil.h"

#include "server/request.h"
#include "server/response.h"
#include "server/text.h"

#include <string.h>

static int parse(enum srv_kind k, const char *body, struct srv_request *r, struct srv_error *e)
{
    return srv_request_parse(k, body, strlen(body), r, e);
}

static void expect_bad(enum srv_kind k, const char *body, const char *code)
{
    struct srv_request r;
    struct srv_error e;
    int rc = parse(k, body, &r, &e);
    CHECKF(rc == -1 && e.status == 400 && e.code && !strcmp(e.code, code), "%s: rc %d status %d code %s (%s)", body, rc,
           e.status, rc ? (e.code ? e.code : "null") : "-", rc ? e.message : "");
    CHECK(r.n_messages == 0 && !r.messages && !r.prompt && r.n_stop == 0); /* nothing left to free */
}

static void requests(void)
{
    struct srv_request r;
    struct srv_error e;
    /* a chat request with every field */
    const char *chat = "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                       "{\"role\":\"assistant\",\"content\":\"c\"},{\"role\":\"user\",\"content\":\"d\\u00e9\"}],"
                       "\"max_tokens\":5,\"max_completion_tokens\":7,\"temperature\":0,\"top_p\":0.5,\"top_k\":3,"
                       "\"min_p\":0.1,\"repeat_penalty\":1.1,\"seed\":-1,\"n\":1,\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},\"stop\":[\"x\",\"yz\"],\"user\":\"ignored\","
                       "\"presence_penalty\":0,\"logprobs\":false,\"tools\":[],\"response_format\":{\"type\":\"text\"}}";
    CHECKF(parse(SRV_CHAT, chat, &r, &e) == 0, "%s", e.message);
    CHECK(r.kind == SRV_CHAT && r.n_messages == 4);
    if (r.n_messages == 4) {
        CHECK(!strcmp(r.messages[0].role, "system") && !strcmp(r.messages[0].content, "be brief"));
        CHECK(!strcmp(r.messages[1].role, "user") && !strcmp(r.messages[1].content, "a\nb"));
        CHECK(!strcmp(r.messages[2].role, "assistant") && !strcmp(r.messages[2].content, "c"));
        CHECK(!strcmp(r.messages[3].content, "d\xc3\xa9"));
    }
    CHECK(r.model && !strcmp(r.model, "m"));
    CHECK(r.max_tokens == 7); /* max_completion_tokens wins */
    CHECK(r.has_temperature && r.temperature == 0 && r.has_top_p && r.top_p == 0.5f && r.has_top_k && r.top_k == 3);
    CHECK(r.has_min_p && r.has_repeat_penalty && r.has_seed && r.seed == UINT64_MAX);
    CHECK(r.stream && r.include_usage);
    CHECK(r.n_stop == 2 && !strcmp(r.stop[0], "x") && !strcmp(r.stop[1], "yz"));
    srv_request_free(&r);
    CHECK(r.n_messages == 0 && !r.messages);
    srv_request_free(&r); /* twice: a no-op */

    /* a text completion: defaults, nulls as absent, a one-string prompt array, one stop string */
    CHECK(parse(SRV_COMPLETION, "{\"prompt\":[\"hi\"],\"temperature\":null,\"stop\":\"\\n\",\"max_tokens\":null}", &r, &e) == 0);
    CHECK(r.prompt && !strcmp(r.prompt, "hi") && !r.has_temperature && r.max_tokens == -1 && !r.stream);
    CHECK(r.n_stop == 1 && !strcmp(r.stop[0], "\n"));
    srv_request_free(&r);
    CHECK(parse(SRV_COMPLETION, "{\"prompt\":\"\"}", &r, &e) == 0 && r.prompt && !r.prompt[0]);
    srv_request_free(&r);

    expect_bad(SRV_COMPLETION, "", "invalid_json");
    expect_bad(SRV_COMPLETION, "{", "invalid_json");
    expect_bad(SRV_COMPLETION, "null", "invalid_json");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\"} x", "invalid_json");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"\\ud800\"}", "invalid_json"); /* a lone surrogate */
    expect_bad(SRV_COMPLETION, "{\"prompt\":5}", "invalid_type");
    expect_bad(SRV_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "unsupported_value");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"model\":3}", "invalid_type");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"n\":0}", "unsupported_value");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"n\":\"1\"}", "invalid_type");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":-1}", "invalid_value");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":99999999999}", "invalid_value");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"temperature\":-0.1}", "invalid_value");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"top_k\":-1}", "invalid_value");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"a\",7]}", "invalid_type");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"stop\":{}}", "invalid_type");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}", "invalid_value");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"stream\":true,\"stream_options\":3}", "invalid_type");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"frequency_penalty\":0.5}", "unsupported_parameter");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"echo\":true}", "unsupported_parameter");
    expect_bad(SRV_COMPLETION, "{\"prompt\":\"a\",\"best_of\":2}", "unsupported_parameter");
    expect_bad(SRV_CHAT, "{\"messages\":{}}", "invalid_type");
    expect_bad(SRV_CHAT, "{\"messages\":[3]}", "invalid_type");
    expect_bad(SRV_CHAT, "{\"messages\":[{\"content\":\"a\"}]}", "invalid_type");
    expect_bad(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"tool\",\"content\":\"b\"}]}", "invalid_value");
    expect_bad(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":null}]}", "invalid_type");
    expect_bad(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}", "invalid_type");
    expect_bad(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":[{}]}", "unsupported_parameter");
    expect_bad(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"response_format\":{\"type\":\"json_object\"}}",
               "unsupported_parameter");
    /* too many messages */
    size_t cap = 64 + (SRV_MAX_MESSAGES + 1) * 32;
    char *many = malloc(cap);
    strcpy(many, "{\"messages\":[");
    for (int i = 0; i <= SRV_MAX_MESSAGES; i++) strcat(many, i ? ",{\"role\":\"user\",\"content\":\"a\"}" : "{\"role\":\"user\",\"content\":\"a\"}");
    strcat(many, "]}");
    expect_bad(SRV_CHAT, many, "invalid_value");
    free(many);
    /* a long stop string */
    char stop[600];
    snprintf(stop, sizeof stop, "{\"prompt\":\"a\",\"stop\":\"%0300d\"}", 0);
    expect_bad(SRV_COMPLETION, stop, "invalid_value");
    /* deep nesting is jansson's to refuse, without a crash */
    char *deep = malloc(200005);
    memset(deep, '[', 200000);
    deep[200000] = 0;
    expect_bad(SRV_COMPLETION, deep, "invalid_json");
    free(deep);
}

static void text(void)
{
    char *stops[] = { "END", "\n\n" };
    const char *t = "hello END world\n\nx";
    CHECK(srv_stop_find(t, strlen(t), 0, stops, 2) == 6);
    CHECK(srv_stop_find(t, 8, 0, stops, 1) == -1);          /* "hello EN": not yet */
    CHECK(srv_stop_find(t, 9, 8, stops, 1) == 6);           /* the match ends after `from` */
    CHECK(srv_stop_find(t, strlen(t), 10, stops + 1, 1) == 15);
    CHECK(srv_stop_find("ab", 2, 0, stops, 2) == -1);
    /* streamable: everything but a tail that may become a stop string or an incomplete character */
    CHECK(srv_stream_ready("hello E", 7, stops, 2) == 6);
    CHECK(srv_stream_ready("hello EN", 8, stops, 2) == 6);
    CHECK(srv_stream_ready("hello EX", 8, stops, 2) == 8);
    CHECK(srv_stream_ready("hi\n", 3, stops, 2) == 2);
    CHECK(srv_stream_ready("hi", 2, NULL, 0) == 2);
    CHECK(srv_stream_ready("a\xc3", 2, NULL, 0) == 1);           /* half of é */
    CHECK(srv_stream_ready("a\xc3\xa9", 3, NULL, 0) == 3);
    CHECK(srv_stream_ready("a\xe2\x82", 3, NULL, 0) == 1);       /* two thirds of € */
    CHECK(srv_stream_ready("a\xf0\x9f\x98", 4, NULL, 0) == 1);   /* three quarters of an emoji */
    CHECK(srv_stream_ready("a\xf0\x9f\x98\x80", 5, NULL, 0) == 5);
    CHECK(srv_stream_ready("a\xff", 2, NULL, 0) == 2);           /* invalid: sent (and repaired) */
    /* UTF-8 repair */
    char out[64];
    CHECK(srv_utf8_sanitize("ok\xc3\xa9", 4, out) == 4 && !strcmp(out, "ok\xc3\xa9"));
    CHECK(srv_utf8_sanitize("a\xff" "b", 3, out) == 5 && !strcmp(out, "a\xef\xbf\xbd" "b"));
    CHECK(srv_utf8_sanitize("\xc3", 1, out) == 3 && !strcmp(out, "\xef\xbf\xbd"));
    CHECK(srv_utf8_sanitize("\xc0\xaf", 2, out) == 6);            /* overlong '/' */
    CHECK(srv_utf8_sanitize("\xed\xa0\x80", 3, out) == 9);        /* a surrogate */
    CHECK(srv_utf8_sanitize("\xf4\x90\x80\x80", 4, out) == 12);   /* past U+10FFFF */
    CHECK(srv_utf8_sanitize("a\0b", 3, out) == 3 && out[1] == 0);  /* NUL is valid UTF-8; JSON escapes it */
}

static void responses(void)
{
    struct srv_resp_id rid = { .kind = SRV_CHAT, .id = "chatcmpl-1", .created = 5, .model = "m" };
    struct srv_result r = { .text = "hi\xff", .len = 3, .finish = "stop", .prompt_tokens = 4, .cached_tokens = 2,
                            .completion_tokens = 1 };
    char *s = srv_json_completion(&rid, &r);
    CHECKF(s && !strcmp(s, "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":5,\"model\":\"m\",\"choices\":"
                           "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi\xef\xbf\xbd\"},\"logprobs\":null,"
                           "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5,"
                           "\"prompt_tokens_details\":{\"cached_tokens\":2}}}"),
           "%s", s ? s : "NULL");
    free(s);
    s = srv_json_chunk(&rid, true, "", 0, NULL);
    CHECKF(s && strstr(s, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}") && strstr(s, "\"finish_reason\":null") &&
           strstr(s, "chat.completion.chunk"), "%s", s ? s : "NULL");
    free(s);
    s = srv_json_chunk(&rid, false, NULL, 0, "length");
    CHECKF(s && strstr(s, "\"delta\":{}") && strstr(s, "\"finish_reason\":\"length\""), "%s", s ? s : "NULL");
    free(s);
    rid.kind = SRV_COMPLETION;
    s = srv_json_chunk(&rid, false, "a\"b", 3, NULL);
    CHECKF(s && strstr(s, "\"object\":\"text_completion\"") && strstr(s, "\"text\":\"a\\\"b\""), "%s", s ? s : "NULL");
    free(s);
    s = srv_json_usage_chunk(&rid, &r);
    CHECKF(s && strstr(s, "\"choices\":[]") && strstr(s, "\"total_tokens\":5"), "%s", s ? s : "NULL");
    free(s);
    struct srv_error e;
    srv_error_set(&e, 400, "invalid_request_error", NULL, "bad \"x\"");
    s = srv_json_error(&e);
    CHECKF(s && !strcmp(s, "{\"error\":{\"message\":\"bad \\\"x\\\"\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}"),
           "%s", s ? s : "NULL");
    free(s);
    s = srv_json_models("m", 7);
    CHECKF(s && !strcmp(s, "{\"object\":\"list\",\"data\":[{\"id\":\"m\",\"object\":\"model\",\"created\":7,\"owned_by\":\"pinfer\"}]}"),
           "%s", s ? s : "NULL");
    free(s);
}

int main(void)
{
    requests();
    text();
    responses();
    TEST_DONE();
}
