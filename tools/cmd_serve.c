/* pinfer serve: the OpenAI-compatible HTTP server (src/server/, docs/serving.md) with run's
 * model and sampling flags. The main thread only waits for SIGTERM or SIGINT (blocked in every
 * thread, taken with sigwait): then the server stops accepting, lets running requests finish
 * for --shutdown-grace seconds, cancels the rest, and the process exits 0. */
#include "args.h"
#include "cmds.h"
#include "gen_flags.h"
#include "model_flags.h"
#include "pinfer.h"
#include "server/server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *C = "serve";

static void help(const struct model_flags *mf, const struct gen_flags *gf)
{
    printf("usage: pinfer serve -m MODEL [--host 127.0.0.1] [--port 8080] [--parallel N] [options]\n"
           "An HTTP server with OpenAI's endpoints: POST /v1/chat/completions, POST /v1/completions,\n"
           "GET /v1/models, GET /health, GET /metrics (docs/serving.md). SIGTERM or Ctrl-C stops it.\n");
    model_flags_help(mf);
    printf("                          (serve: the budget covers the model and every slot's context)\n"
           "      --host ADDR         address to listen on (default 127.0.0.1)\n"
           "      --port N            port (default 8080; 0 = any free port, printed at start)\n"
           "  -np, --parallel N       slots: requests served at once, each with its own KV cache of -c tokens\n"
           "                          (default 1)\n"
           "      --queue-size N      requests that may wait for a slot; more get 503 (default 16)\n"
           "      --api-key KEY       require \"Authorization: Bearer KEY\" (all but /health)\n"
           "      --max-body SIZE     largest request body, K/M suffix (default 1M; 413 beyond)\n"
           "      --alias NAME        the model's name in the API (default: the file's base name)\n"
           "      --timeout S         close idle connections after S seconds (default 600; 0 = never)\n"
           "      --shutdown-grace S  on SIGTERM, let running requests finish for S seconds (default 10)\n"
           "      --max-connections N (default 64 + parallel + queue size)\n"
           "Request defaults (a request's own fields override them):\n");
    gen_flags_help(gf);
}

/* SIZE with an optional K or M suffix (powers of 1024). */
static bool parse_body_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *s == '-') return false;
    if (*end == 'K' || *end == 'k') { v <<= 10; end++; }
    else if (*end == 'M' || *end == 'm') { v <<= 20; end++; }
    if (*end || v < 64 || v > (1ull << 30)) return false;
    *out = (size_t)v;
    return true;
}

int cmd_serve(int argc, char **argv)
{
    struct model_flags mf;
    struct gen_flags gf;
    struct srv_params sp = srv_default_params();
    long lv;
    float grace = 10;
    model_flags_init(&mf, MODEL_FLAGS_THREADS | MODEL_FLAGS_CTX | MODEL_FLAGS_MMAP | MODEL_FLAGS_BUDGET | MODEL_FLAGS_BATCH);
    gen_flags_init(&gf, GEN_FLAGS_PREDICT | GEN_FLAGS_SAMPLING | GEN_FLAGS_CHAT);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int took = model_flags_parse(C, argc, argv, &i, &mf);
        if (!took) took = gen_flags_parse(C, argc, argv, &i, &gf);
        if (took < 0) return 2;
        if (took) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(&mf, &gf); return 0; }
        else if (!strcmp(a, "--host")) { ARGS_TAKE(); sp.host = v; }
        else if (!strcmp(a, "--port")) { ARGS_TAKE(); if (!args_int(C, a, v, 0, 65535, &lv)) return 2; sp.port = (int)lv; }
        else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 256, &lv)) return 2; sp.parallel = (int)lv; }
        else if (!strcmp(a, "--queue-size")) { ARGS_TAKE(); if (!args_int(C, a, v, 0, 65536, &lv)) return 2; sp.queue_size = (int)lv; }
        else if (!strcmp(a, "--api-key")) { ARGS_TAKE(); if (!*v) return args_usage_error(C, "--api-key is empty"); sp.api_key = v; }
        else if (!strcmp(a, "--alias")) { ARGS_TAKE(); if (!*v) return args_usage_error(C, "--alias is empty"); sp.model_id = v; }
        else if (!strcmp(a, "--max-body")) {
            ARGS_TAKE();
            if (!parse_body_size(v, &sp.max_body)) return args_usage_error(C, "--max-body expects 64..1G bytes (K, M suffixes), got '%s'", v);
        }
        else if (!strcmp(a, "--timeout")) { ARGS_TAKE(); if (!args_int(C, a, v, 0, 86400, &lv)) return 2; sp.timeout_s = (int)lv; }
        else if (!strcmp(a, "--shutdown-grace")) { ARGS_TAKE(); if (!args_float(C, a, v, 0, 86400, &grace)) return 2; }
        else if (!strcmp(a, "--max-connections")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 65536, &lv)) return 2; sp.max_connections = (int)lv; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (model_flags_check(C, &mf) || gen_flags_check(C, &gf)) return 2;
    if (mf.calib) return args_usage_error(C, "--calib is not supported by serve");

    /* every thread made from here on inherits the mask: the signals reach sigwait only */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    struct pinfer_model *model = NULL;
    struct srv *srv = NULL;
    int lrc = model_flags_load(C, &mf, &model);
    if (lrc) return lrc;
    sp.cp = mf.cp;
    sp.sp = gf.sp;
    sp.max_tokens = (int)gf.n_predict;
    sp.ignore_eos = gf.ignore_eos;
    sp.chat_tmpl = gf.chat_tmpl;
    sp.mem_budget = model_flags_budget_bytes(&mf);
    if (srv_start(&srv, model, mf.model, &sp)) {
        args_error(C, "%s", srv_last_error());
        goto out;
    }
    char desc[256];
    const char *tname = "?";
    bool tdefault = false;
    pinfer_model_desc(model, desc, sizeof desc);
    pinfer_chat_template_name(model, sp.chat_tmpl, &tname, &tdefault);
    fprintf(stderr, "pinfer serve: %s; %d slot%s of %d tokens, queue %d; chat template %s%s%s\n", desc, sp.parallel,
            sp.parallel > 1 ? "s" : "", srv_n_ctx(srv), sp.queue_size, tname,
            tdefault ? " (the model has none: the default)" : "", sp.api_key ? "; API key required" : "");
    printf("pinfer serve: listening on http://%s%s%s:%d\n", strchr(sp.host, ':') ? "[" : "", sp.host,
           strchr(sp.host, ':') ? "]" : "", srv_port(srv));
    fflush(stdout);

    int sig = 0;
    sigwait(&stop_sigs, &sig);
    fprintf(stderr, "pinfer serve: %s: no new connections; running requests have %.0f s to finish\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", (double)grace);
    srv_stop(srv, grace);
    fprintf(stderr, "pinfer serve: stopped\n");
    rc = 0;
out:
    srv_free(srv);
    pinfer_model_free(model);
    return rc;
}
