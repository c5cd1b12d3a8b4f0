/* pinfer serve from outside, with curl, on stories260K (../shared): every error status with
 * OpenAI's error object (400 malformed JSON and fields, 401, 404, 405, 413, 503 with a full
 * queue), KV-prefix reuse between requests of one slot, a queued request served once the slot
 * frees, a client that disconnects mid-stream freeing its slot, SIGTERM finishing the running
 * request and exiting 0, and the memory budget on a tiny prepared model: slots that fit start,
 * slots that do not are refused with a message.
 *
 * PINFER_SERVE_DELAY_MS (the server's test hook) makes each token take 20-50 ms, so that a
 * request holds its slot long enough to look at. Curl is needed (scripts/deps.sh). */
#include "serve_util.h"

#include <sys/stat.h>

static const char *AUTH = "-H 'Authorization: Bearer k'";
static const char *JSON = "-H 'Content-Type: application/json'";

/* Expects status `want` and an OpenAI error object with this code from the request. */
static void expect_error(const struct tserver *s, int want, const char *code, const char *what, const char *args)
{
    char body[8192], hdr[4096], needle[128];
    int got = ts_curl(s, body, sizeof body, hdr, sizeof hdr, "%s", args);
    snprintf(needle, sizeof needle, "\"code\":\"%s\"", code);
    CHECKF(got == want, "%s: status %d, expected %d: %.300s", what, got, want, body);
    CHECKF(strstr(body, "{\"error\":{\"message\":\"") == body && strstr(body, needle) && strstr(body, "\"type\":\""),
           "%s: not an OpenAI error object with %s: %.300s", what, needle, body);
    CHECKF(strstr(hdr, "application/json") != NULL, "%s: content type: %.300s", what, hdr);
    printf("%-58s -> %d %s\n", what, got, code);
}

static void errors(const struct tserver *s)
{
    char big[8192], args[9000];
    expect_error(s, 404, "not_found", "unknown path", "-H 'Authorization: Bearer k' URL/v1/nothing");
    expect_error(s, 405, "method_not_allowed", "GET on a POST endpoint", "-H 'Authorization: Bearer k' URL/v1/chat/completions");
    expect_error(s, 405, "method_not_allowed", "DELETE on /v1/models", "-X DELETE -H 'Authorization: Bearer k' URL/v1/models");
    expect_error(s, 401, "invalid_api_key", "no API key", "URL/v1/models");
    expect_error(s, 401, "invalid_api_key", "a wrong API key", "-H 'Authorization: Bearer kk' URL/v1/models");
    expect_error(s, 401, "invalid_api_key", "a wrong key on a completion",
                 "-H 'Authorization: Bearer x' -d '{\"prompt\":\"a\"}' URL/v1/completions");
    char hdr[4096];
    CHECK(ts_curl(s, NULL, 0, hdr, sizeof hdr, "-H 'Authorization: Bearer k' -X GET URL/v1/completions") == 405 &&
          strstr(hdr, "Allow: POST"));
    CHECKF(ts_curl(s, NULL, 0, NULL, 0, "URL/health") == 200, "/health needs no key");

    /* 413: a body over the 4 KiB cap, with Content-Length and chunked */
    memset(big, 'a', 6000);
    big[6000] = 0;
    snprintf(args, sizeof args, "%s -d '{\"prompt\":\"%s\"}' URL/v1/completions", AUTH, big);
    expect_error(s, 413, "request_too_large", "a 6 KB body (cap 4 KB)", args);
    snprintf(args, sizeof args, "%s -H 'Transfer-Encoding: chunked' -d '{\"prompt\":\"%s\"}' URL/v1/completions", AUTH, big);
    expect_error(s, 413, "request_too_large", "a 6 KB chunked body", args);

    /* 400: malformed JSON, missing and wrong fields, a context too small */
    static const struct { const char *path, *body, *code, *what; } bad[] = {
        { "completions", "{\"prompt\": \"a\"", "invalid_json", "truncated JSON" },
        { "completions", "[1, 2]", "invalid_json", "not an object" },
        { "completions", "", "invalid_json", "empty body" },
        { "completions", "{\"prompt\":\"a\",\"prompt\":\"b\"}", "invalid_json", "duplicate key" },
        { "completions", "{\"max_tokens\":3}", "missing_field", "no prompt" },
        { "chat/completions", "{\"prompt\":\"a\"}", "missing_field", "chat without messages" },
        { "chat/completions", "{\"messages\":[]}", "invalid_value", "no messages" },
        { "chat/completions", "{\"messages\":[{\"role\":\"wizard\",\"content\":\"a\"}]}", "invalid_value", "unknown role" },
        { "chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", "invalid_type", "content a number" },
        { "chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "unsupported_content", "an image part" },
        { "completions", "{\"prompt\":\"a\",\"n\":2}", "unsupported_value", "n = 2" },
        { "completions", "{\"prompt\":\"a\",\"temperature\":3}", "invalid_value", "temperature 3" },
        { "completions", "{\"prompt\":\"a\",\"temperature\":\"hot\"}", "invalid_type", "temperature a string" },
        { "completions", "{\"prompt\":\"a\",\"top_p\":1.5}", "invalid_value", "top_p 1.5" },
        { "completions", "{\"prompt\":\"a\",\"max_tokens\":0}", "invalid_value", "max_tokens 0" },
        { "completions", "{\"prompt\":\"a\",\"max_tokens\":2.5}", "invalid_type", "max_tokens 2.5" },
        { "completions", "{\"prompt\":\"a\",\"seed\":\"x\"}", "invalid_type", "seed a string" },
        { "completions", "{\"prompt\":\"a\",\"stream\":1}", "invalid_type", "stream a number" },
        { "completions", "{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "invalid_value", "5 stop strings" },
        { "completions", "{\"prompt\":\"a\",\"stop\":\"\"}", "invalid_value", "an empty stop string" },
        { "completions", "{\"prompt\":\"a\",\"logprobs\":3}", "unsupported_parameter", "logprobs" },
        { "completions", "{\"prompt\":[1,2,3]}", "unsupported_value", "a token-id prompt" },
        { "completions", "{\"prompt\":\"a\\u0000b\"}", "invalid_json", "a NUL in a string" },
        { "completions", "{\"prompt\":\"a\",\"max_tokens\":100000}", "context_length_exceeded", "prompt + max_tokens > context" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "%s %s --data-binary '%s' URL/v1/%s", AUTH, JSON, bad[i].body, bad[i].path);
        expect_error(s, 400, bad[i].code, bad[i].what, args);
    }
    /* a prompt longer than the context (stories260K: 128 tokens) */
    memset(big, 0, sizeof big);
    for (int i = 0; i < 200; i++) strcat(big, "dog ");
    snprintf(args, sizeof args, "%s -d '{\"prompt\":\"%s\"}' URL/v1/completions", AUTH, big);
    expect_error(s, 400, "context_length_exceeded", "a prompt longer than the context", args);
}

/* Two requests with one prompt on one slot: the second decodes only the last prompt token. */
static void prefix_reuse(const struct tserver *s)
{
    char body[8192];
    const char *req = "-d '{\"prompt\":\"Once upon a time there was\",\"max_tokens\":3,\"temperature\":0}' URL/v1/completions";
    double reused0 = ts_metric(s, AUTH, "pinfer_prompt_tokens_reused_total");
    CHECK(ts_curl(s, body, sizeof body, NULL, 0, "%s %s", AUTH, req) == 200);
    CHECK(ts_curl(s, body, sizeof body, NULL, 0, "%s %s", AUTH, req) == 200);
    int prompt = -1, cached = -1;
    const char *u = strstr(body, "\"prompt_tokens\":"), *c = strstr(body, "\"cached_tokens\":");
    if (u) prompt = atoi(u + 16);
    if (c) cached = atoi(c + 16);
    CHECKF(prompt > 2 && cached == prompt - 1, "the same prompt again: %d prompt tokens, %d cached: %.300s", prompt, cached, body);
    double reused1 = ts_metric(s, AUTH, "pinfer_prompt_tokens_reused_total");
    CHECKF(reused1 - reused0 >= prompt - 1, "reused metric %g -> %g", reused0, reused1);
    printf("prefix reuse: the same prompt of %d tokens again: %d from the KV cache\n", prompt, cached);
}

/* --parallel 1 --queue-size 0: a streaming request holds the slot, another gets 503 with
 * Retry-After; the stream's client hangs up and the slot is free again. */
static void busy_and_disconnect(const struct tserver *s)
{
    char path[1100], body[8192], hdr[4096];
    snprintf(path, sizeof path, "%s/stream1.txt", tu_tmpdir());
    pid_t c = ts_curl_bg(s, path, "/v1/completions -H 'Authorization: Bearer k' "
                                  "-d '{\"prompt\":\"Once\",\"max_tokens\":100,\"stream\":true,\"temperature\":0}'");
    CHECKF(ts_file_wait(path, "data: ", 10000), "the stream did not start");
    CHECK(ts_metric(s, AUTH, "pinfer_slots_busy") == 1);
    int got = ts_curl(s, body, sizeof body, hdr, sizeof hdr, "%s -d '{\"prompt\":\"a\",\"max_tokens\":2}' URL/v1/completions", AUTH);
    CHECKF(got == 503 && strstr(body, "\"code\":\"server_busy\"") && strstr(hdr, "Retry-After: 1"), "busy: %d %.300s", got, body);
    printf("%-58s -> %d server_busy\n", "a request while the only slot is busy", got);
    CHECK(ts_metric(s, AUTH, "pinfer_requests_rejected_total") >= 1);

    /* the client goes away mid-stream (100 tokens of 20 ms: 2 s) */
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    CHECKF(ts_metric_wait(s, AUTH, "pinfer_slots_busy", 0, 5000), "the slot stayed busy after the client disconnected");
    CHECK(ts_metric(s, AUTH, "pinfer_requests_cancelled_total") >= 1);
    got = ts_curl(s, body, sizeof body, NULL, 0, "%s -d '{\"prompt\":\"a\",\"max_tokens\":2}' URL/v1/completions", AUTH);
    CHECKF(got == 200, "after the disconnect: %d %.300s", got, body);
    printf("%-58s -> %d\n", "a request after the streaming client disconnected", got);

    /* the same with a whole (not streamed) response: cancelled, not run to its end */
    double cancelled = ts_metric(s, AUTH, "pinfer_requests_cancelled_total");
    c = ts_curl_bg(s, path, "/v1/completions -H 'Authorization: Bearer k' -d '{\"prompt\":\"Once\",\"max_tokens\":100}'");
    CHECK(ts_metric_wait(s, AUTH, "pinfer_slots_busy", 1, 5000));
    ts_sleep_ms(300);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    CHECKF(ts_metric_wait(s, AUTH, "pinfer_slots_busy", 0, 5000), "the slot stayed busy after the client disconnected");
    CHECKF(ts_metric(s, AUTH, "pinfer_requests_cancelled_total") == cancelled + 1, "the request was not cancelled");
    printf("%-58s -> cancelled, slot free\n", "a client gone while waiting for a whole response");
}

int main(void)
{
    const char *model = tu_shared_path("models/stories260K/stories260K.gguf");
    if (!model) TEST_SKIP("../shared is absent: no model for the server tests");
    if (system("curl --version >/dev/null 2>&1") != 0) TEST_SKIP("curl is not installed (scripts/deps.sh installs it)");
    char m[1024], args[4096];
    snprintf(m, sizeof m, "%s", model);

    struct tserver s;
    snprintf(args, sizeof args, "-m %s --api-key k --max-body 4K --parallel 1 --queue-size 0 -t 1", m);
    if (ts_start(&s, "serve1", "PINFER_SERVE_DELAY_MS=20", args, NULL)) {
        char *e = tu_read_file(s.err, NULL);
        fprintf(stderr, "the server did not start: %s\n", e ? e : "");
        free(e);
        return 1;
    }
    printf("pinfer serve on port %d\n", s.port);
    errors(&s);
    prefix_reuse(&s);
    busy_and_disconnect(&s);
    CHECK(ts_stop(&s, SIGTERM, 20) == 0);

    /* a queue of one */
    snprintf(args, sizeof args, "-m %s --parallel 1 --queue-size 1 -t 1", m);
    if (ts_start(&s, "serve2", "PINFER_SERVE_DELAY_MS=20", args, NULL) == 0) {
        char a[1100], b[1100], body[8192];
        snprintf(a, sizeof a, "%s/qa.txt", tu_tmpdir());
        snprintf(b, sizeof b, "%s/qb.txt", tu_tmpdir());
        pid_t ca = ts_curl_bg(&s, a, "/v1/completions -d '{\"prompt\":\"Once\",\"max_tokens\":60,\"stream\":true}'");
        CHECK(ts_file_wait(a, "data: ", 10000));
        pid_t cb = ts_curl_bg(&s, b, "/v1/completions -d '{\"prompt\":\"Once\",\"max_tokens\":2}'");
        CHECKF(ts_metric_wait(&s, "", "pinfer_queue_length", 1, 5000), "the second request is not waiting");
        int got = ts_curl(&s, body, sizeof body, NULL, 0, "-d '{\"prompt\":\"a\",\"max_tokens\":2}' URL/v1/completions");
        CHECKF(got == 503 && strstr(body, "server_busy"), "a third request with the queue full: %d", got);
        printf("%-58s -> %d\n", "one running, one waiting, a third request", got);
        int st;
        waitpid(ca, &st, 0);
        waitpid(cb, &st, 0);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && ts_file_wait(b, "\"finish_reason\":\"length\"", 1000),
               "the waiting request was not served");
        CHECK(ts_file_wait(a, "data: [DONE]", 1000));

        /* SIGTERM with a request running: it finishes, new connections are refused, exit 0 */
        char c[1100];
        snprintf(c, sizeof c, "%s/qc.txt", tu_tmpdir());
        pid_t cc = ts_curl_bg(&s, c, "/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                                     "\"max_tokens\":40,\"stream\":true}'");
        CHECK(ts_file_wait(c, "data: ", 10000));
        kill(s.pid, SIGTERM);
        ts_sleep_ms(200);
        CHECKF(ts_curl(&s, NULL, 0, NULL, 0, "URL/health") == 0, "a connection after SIGTERM was accepted");
        int rc = ts_stop(&s, SIGTERM, 20);
        CHECKF(rc == 0, "exit status after SIGTERM: %d", rc);
        waitpid(cc, &st, 0);
        CHECKF(ts_file_wait(c, "\"finish_reason\":\"length\"", 100) && ts_file_wait(c, "data: [DONE]", 100),
               "the running request did not finish after SIGTERM");
        printf("%-58s -> exit %d, the running stream finished\n", "SIGTERM with a stream running", rc);
    } else {
        CHECKF(0, "the second server did not start");
    }

    /* SIGTERM with a stream that outlasts the grace period: cancelled with an error event */
    snprintf(args, sizeof args, "-m %s --shutdown-grace 0.3 -t 1", m);
    if (ts_start(&s, "serve-grace", "PINFER_SERVE_DELAY_MS=20", args, NULL) == 0) {
        char g[1100];
        snprintf(g, sizeof g, "%s/grace.txt", tu_tmpdir());
        pid_t cg = ts_curl_bg(&s, g, "/v1/completions -d '{\"prompt\":\"Once\",\"max_tokens\":100,\"stream\":true}'");
        CHECK(ts_file_wait(g, "data: ", 10000));
        int rc = ts_stop(&s, SIGTERM, 20);
        int st;
        waitpid(cg, &st, 0);
        CHECKF(rc == 0 && ts_file_wait(g, "\"code\":\"shutting_down\"", 100) && ts_file_wait(g, "data: [DONE]", 100),
               "a stream cancelled by SIGTERM: exit %d", rc);
        printf("%-58s -> exit %d, the stream ended with an error event\n", "SIGTERM, a stream longer than the grace period", rc);
    } else {
        CHECKF(0, "the grace server did not start");
    }

    /* two slots, six requests at once (four wait): every one served, greedy text the same in
       each slot, streamed or not, with the slots' tokens decoded together */
    snprintf(args, sizeof args, "-m %s --parallel 2 --queue-size 4 -t 1", m);
    if (ts_start(&s, "serve-par", "PINFER_SERVE_DELAY_MS=5", args, NULL) == 0) {
        char path[6][1100];
        pid_t pids[6];
        for (int i = 0; i < 6; i++) {
            snprintf(path[i], sizeof path[i], "%s/par%d.txt", tu_tmpdir(), i);
            pids[i] = ts_curl_bg(&s, path[i], i % 3 == 2 ? "/v1/completions -d '{\"prompt\":\"Once upon a time\",\"max_tokens\":24,"
                                                           "\"temperature\":0,\"stream\":true}'"
                                                         : "/v1/completions -d '{\"prompt\":\"Once upon a time\",\"max_tokens\":24,"
                                                           "\"temperature\":0}'");
        }
        char *first = NULL, *text = NULL;
        for (int i = 0; i < 6; i++) {
            int st;
            waitpid(pids[i], &st, 0);
            char *f = tu_read_file(path[i], NULL);
            /* the whole responses' text, or the streamed pieces joined */
            size_t cap = f ? strlen(f) + 1 : 1, n = 0;
            text = calloc(1, cap);
            for (const char *q = f; q && text && (q = strstr(q, "\"text\":\"")); ) {
                q += 8;
                const char *e = q;
                while (*e && !(*e == '"' && e[-1] != '\\')) e++;
                memcpy(text + n, q, (size_t)(e - q));
                n += (size_t)(e - q);
                q = e;
            }
            CHECKF(f && strstr(f, "\"finish_reason\":\"length\"") && n > 0, "parallel request %d: %.300s", i, f ? f : "");
            if (!first) first = text, text = NULL;
            else CHECKF(text && !strcmp(first, text), "parallel request %d: '%s' vs '%s'", i, text ? text : "", first);
            free(text);
            free(f);
        }
        printf("%-58s -> all served: '%.40s...'\n", "6 requests at once on 2 slots", first ? first : "");
        free(first);
        CHECK(ts_metric(&s, "", "pinfer_requests_total") == 6);
        /* the two slots' tokens were decoded together (one pass over the weights) */
        double passes = ts_metric(&s, "", "pinfer_decode_passes_total"),
               seqs = ts_metric(&s, "", "pinfer_decode_pass_sequences_total");
        CHECKF(passes > 0 && seqs > passes && seqs <= 2 * passes, "decode passes %g for %g sequences", passes, seqs);
        printf("%-58s -> %g passes, %.2f slots per pass\n", "their decode steps", passes, passes > 0 ? seqs / passes : 0);
        CHECK(ts_stop(&s, SIGTERM, 20) == 0);
    } else {
        CHECKF(0, "the parallel server did not start");
    }

    /* a memory budget covers every slot: a tiny prepared model, slots that fit and that do not */
    char raw[1100], prep[1100], cmd[8192];
    snprintf(raw, sizeof raw, "%s/raw.gguf", tu_tmpdir());
    snprintf(prep, sizeof prep, "%s/prep.gguf", tu_tmpdir());
    const char *bin = getenv("PINFER_BIN") ? getenv("PINFER_BIN") : "build/pinfer";
    snprintf(cmd, sizeof cmd, "%s synth -o %s --dim 64 --layers 2 --heads 2 --kv-heads 1 --ffn 256 --vocab 384 --ctx 64 "
                              "--act relu --type q8_0 >/dev/null 2>&1 && %s prepare -m %s -o %s --tokens 96 --steps 20 -t 1 "
                              ">/dev/null 2>&1", bin, raw, bin, raw, prep);
    CHECK(system(cmd) == 0);
    snprintf(args, sizeof args, "-m %s --mem-budget 3M --parallel 2 --sparse predictor -t 1", prep);
    if (ts_start(&s, "serve3", "", args, NULL) == 0) {
        char body[8192];
        int got = ts_curl(&s, body, sizeof body, NULL, 0, "-d '{\"prompt\":\"a b c\",\"max_tokens\":8}' URL/v1/completions");
        CHECKF(got == 200 && strstr(body, "\"completion_tokens\":8"), "under a budget: %d %.300s", got, body);
        CHECK(ts_metric(&s, "", "pinfer_memory_budget_bytes") == 3 << 20);
        double hit = ts_metric(&s, "", "pinfer_cache_hit_ratio"), bpt = ts_metric(&s, "", "pinfer_storage_bytes_per_token");
        CHECKF(hit >= 0 && hit <= 1 && bpt >= 0, "budget metrics: hit ratio %g, bytes/token %g", hit, bpt);
        printf("%-58s -> %d; cache hit ratio %.3f, %.0f bytes/token\n", "2 slots in a 3 MiB budget", got, hit, bpt);
        CHECK(ts_stop(&s, SIGTERM, 20) == 0);
    } else {
        CHECKF(0, "2 slots in 3 MiB did not start");
    }
    snprintf(args, sizeof args, "-m %s --mem-budget 3M --parallel 16 -t 1", prep);
    int st = 0;
    CHECKF(ts_start(&s, "serve4", "", args, &st) != 0 && st == 1, "16 slots in 3 MiB: exit %d", st);
    char *err = tu_read_file(s.err, NULL);
    CHECKF(err && strstr(err, "too small for 16 contexts") && strstr(err, "smallest workable budget"),
           "16 slots in 3 MiB: %s", err ? err : "");
    printf("%-58s -> exit %d: %.150s", "16 slots in a 3 MiB budget", st, err ? err : "\n");
    free(err);
    TEST_DONE();
}
