/* Two `pinfer serve` processes behind nginx as an upstream pool, the setup docs/serving.md
 * ("Scale-out behind nginx") describes, on stories260K: nginx started as an ordinary user
 * (prefix, temp paths, logs and pid in the test's temp dir, loopback on a free port) with the
 * nginx.conf of the docs. Through nginx: /health without a key, 401 without one elsewhere
 * (Authorization passed through), a chat completion whole and streamed with the greedy text a
 * direct request gives (the stream arriving token by token, not buffered by nginx), requests
 * landing on both backends (each one's pinfer_requests_total rises), and requests after one
 * backend is killed all served by the other (nginx fails over on the refused connection).
 *
 * Skips when nginx is not installed (scripts/deps.sh installs Debian's nginx), or curl, or
 * ../shared. PINFER_SERVE_DELAY_MS slows tokens so that streaming can be seen. */
#include "serve_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <limits.h>
#include <sys/stat.h>

static const char *AUTH = "-H 'Authorization: Bearer k'";

/* nginx's path: PATH first, then /usr/sbin (not in an ordinary user's PATH on Debian). */
static const char *nginx_bin(void)
{
    if (system("command -v nginx >/dev/null 2>&1") == 0) return "nginx";
    if (access("/usr/sbin/nginx", X_OK) == 0) return "/usr/sbin/nginx";
    return NULL;
}

/* A loopback port nobody listens on now (bound to port 0, read back, closed); 0 on failure. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Writes dir/nginx.conf: the docs' configuration, with paths inside dir. */
static int write_conf(const char *dir, int port, int a, int b)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/nginx.conf", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "worker_processes 1;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "    access_log %s/access.log;\n"
            "    client_body_temp_path %s/client_body;\n"
            "    proxy_temp_path %s/proxy;\n"
            "    fastcgi_temp_path %s/fastcgi;\n"
            "    uwsgi_temp_path %s/uwsgi;\n"
            "    scgi_temp_path %s/scgi;\n"
            "    upstream pinfer {\n"
            "        server 127.0.0.1:%d max_fails=1 fail_timeout=10s;\n"
            "        server 127.0.0.1:%d max_fails=1 fail_timeout=10s;\n"
            "        keepalive 16;\n"
            "    }\n"
            "    server {\n"
            "        listen 127.0.0.1:%d;\n"
            "        client_max_body_size 1m;\n"
            "        location / {\n"
            "            proxy_pass http://pinfer;\n"
            "            proxy_http_version 1.1;\n"
            "            proxy_set_header Connection \"\";\n"
            "            proxy_set_header Authorization $http_authorization;\n"
            "            proxy_buffering off;\n"
            "            proxy_connect_timeout 2s;\n"
            "            proxy_send_timeout 600s;\n"
            "            proxy_read_timeout 600s;\n"
            "            proxy_next_upstream error timeout;\n"
            "            proxy_next_upstream_tries 2;\n"
            "        }\n"
            "    }\n"
            "}\n",
            dir, dir, dir, dir, dir, dir, a, b, port);
    return fclose(f) == 0 ? 0 : -1;
}

/* Starts nginx on dir/nginx.conf in the foreground (daemon off; its pid is ours to signal);
 * 0 once /health answers through it within 10 s. */
static int nginx_start(struct tserver *n, const char *bin, const char *dir, int port)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "exec %s -e %s/error.log -p %s -c %s/nginx.conf -g 'daemon off; pid %s/nginx.pid; error_log %s/error.log;' "
             ">%s/nginx.out 2>&1 </dev/null", bin, dir, dir, dir, dir, dir, dir);
    n->port = port;
    snprintf(n->out, sizeof n->out, "%s/nginx.out", dir);
    snprintf(n->err, sizeof n->err, "%s/error.log", dir);
    n->pid = fork();
    if (n->pid < 0) return -1;
    if (n->pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        int st;
        if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
            n->pid = 0;
            return -1;
        }
        if (ts_curl(n, NULL, 0, NULL, 0, "URL/health") == 200) return 0;
        ts_sleep_ms(50);
    }
    ts_stop(n, SIGKILL, 5);
    return -1;
}

/* The assistant's text of a chat completion, whole (message.content) or streamed (the
 * delta.content pieces joined), JSON escapes kept; malloc'd. */
static char *chat_text(const char *body)
{
    size_t cap = strlen(body) + 1, n = 0;
    char *t = calloc(1, cap);
    for (const char *q = body; t && (q = strstr(q, "\"content\":\"")); ) {
        q += 11;
        const char *e = q;
        while (*e && !(*e == '"' && e[-1] != '\\')) e++;
        memcpy(t + n, q, (size_t)(e - q));
        n += (size_t)(e - q);
        q = e;
    }
    return t;
}

static const char *CHAT = "-d '{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
                          "\"max_tokens\":24,\"temperature\":0%s}' URL/v1/chat/completions";

int main(void)
{
    const char *model = tu_shared_path("models/stories260K/stories260K.gguf");
    if (!model) TEST_SKIP("../shared is absent: no model for the server tests");
    if (system("curl --version >/dev/null 2>&1") != 0) TEST_SKIP("curl is not installed (scripts/deps.sh installs it)");
    const char *ngx = nginx_bin();
    if (!ngx) TEST_SKIP("nginx is not installed (scripts/deps.sh installs Debian's nginx)");
    char m[1024], args[4096], dir[900], req[2048];
    snprintf(m, sizeof m, "%s", model);
    /* absolute: nginx takes relative paths from its prefix */
    char *tmp = realpath(tu_tmpdir(), NULL);
    snprintf(dir, sizeof dir, "%s/nginx", tmp ? tmp : tu_tmpdir());
    free(tmp);
    mkdir(dir, 0755);

    /* two backends, one slot each; tokens slowed so that a stream is seen arriving */
    struct tserver b[2], n = { 0 };
    snprintf(args, sizeof args, "-m %s --api-key k --parallel 1 --queue-size 8 -t 1", m);
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "backend%d", i);
        if (ts_start(&b[i], name, "PINFER_SERVE_DELAY_MS=20", args, NULL)) {
            CHECKF(0, "backend %d did not start", i);
            if (i == 1) ts_stop(&b[0], SIGKILL, 5);
            TEST_DONE();
        }
        printf("backend %d: pinfer serve on port %d\n", i, b[i].port);
    }

    /* nginx in front, on a free port (retried: another process may take it in between) */
    int started = -1;
    for (int tries = 0; tries < 3 && started; tries++) {
        int port = free_port();
        if (port > 0 && write_conf(dir, port, b[0].port, b[1].port) == 0) started = nginx_start(&n, ngx, dir, port);
    }
    if (started) {
        char *e = tu_read_file(n.err, NULL), *o = tu_read_file(n.out, NULL);
        CHECKF(0, "nginx did not start: %s %s", o ? o : "", e ? e : "");
        free(e);
        free(o);
        goto out;
    }
    printf("nginx on port %d, upstream 127.0.0.1:%d and 127.0.0.1:%d\n", n.port, b[0].port, b[1].port);

    /* the key passes through; /health needs none */
    char body[16384];
    int got = ts_curl(&n, body, sizeof body, NULL, 0, "URL/v1/models");
    CHECKF(got == 401 && strstr(body, "invalid_api_key"), "no key through nginx: %d %.300s", got, body);
    got = ts_curl(&n, body, sizeof body, NULL, 0, "%s URL/v1/models", AUTH);
    CHECKF(got == 200 && strstr(body, "\"object\":\"list\""), "the key through nginx: %d %.300s", got, body);
    printf("%-58s -> 401 without the key, 200 with it\n", "GET /v1/models through nginx");

    /* greedy text: direct, then through nginx whole and streamed */
    snprintf(req, sizeof req, CHAT, "");
    got = ts_curl(&b[0], body, sizeof body, NULL, 0, "%s %s", AUTH, req);
    char *direct = chat_text(body);
    CHECKF(got == 200 && direct && *direct, "direct chat completion: %d %.300s", got, body);
    got = ts_curl(&n, body, sizeof body, NULL, 0, "%s %s", AUTH, req);
    char *proxied = chat_text(body);
    CHECKF(got == 200 && proxied && direct && !strcmp(direct, proxied), "through nginx: %d '%s' vs direct '%s'", got,
           proxied ? proxied : "", direct ? direct : "");
    printf("%-58s -> '%s'\n", "a chat completion through nginx, as direct", proxied ? proxied : "");
    free(proxied);

    char spath[1200];
    snprintf(spath, sizeof spath, "%s/stream.txt", dir);
    snprintf(req, sizeof req, "/v1/chat/completions -H 'Authorization: Bearer k' "
                              "-d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"max_tokens\":24,"
                              "\"temperature\":0,\"stream\":true}'");
    pid_t c = ts_curl_bg(&n, spath, req);
    CHECKF(ts_file_wait(spath, "\"delta\":{\"content\"", 10000), "the stream through nginx did not start");
    /* 24 tokens at >= 20 ms each: the first pieces arrive before the end unless nginx buffers */
    char *partial = tu_read_file(spath, NULL);
    CHECKF(partial && !strstr(partial, "[DONE]"), "the stream arrived at once: nginx buffered it");
    free(partial);
    int st;
    waitpid(c, &st, 0);
    char *sbody = tu_read_file(spath, NULL);
    char *streamed = sbody ? chat_text(sbody) : NULL;
    CHECKF(sbody && strstr(sbody, "data: [DONE]") && streamed && direct && !strcmp(streamed, direct),
           "streamed through nginx: '%s' vs direct '%s'", streamed ? streamed : "", direct ? direct : "");
    printf("%-58s -> token by token, the same text\n", "a streamed chat completion through nginx");
    free(streamed);
    free(sbody);

    /* round robin: eight requests (four at a time) land on both backends */
    double r0[2], r1[2];
    for (int i = 0; i < 2; i++) r0[i] = ts_metric(&b[i], AUTH, "pinfer_requests_total");
    for (int round = 0; round < 2; round++) {
        char path[4][1200];
        pid_t p[4];
        for (int i = 0; i < 4; i++) {
            snprintf(path[i], sizeof path[i], "%s/rr%d.txt", dir, round * 4 + i);
            p[i] = ts_curl_bg(&n, path[i], "/v1/completions -H 'Authorization: Bearer k' "
                                           "-d '{\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}'");
        }
        for (int i = 0; i < 4; i++) {
            waitpid(p[i], &st, 0);
            CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && ts_file_wait(path[i], "\"finish_reason\":\"length\"", 100),
                   "request %d through nginx was not served", round * 4 + i);
        }
    }
    for (int i = 0; i < 2; i++) r1[i] = ts_metric(&b[i], AUTH, "pinfer_requests_total");
    CHECKF(r1[0] > r0[0] && r1[1] > r0[1] && (r1[0] - r0[0]) + (r1[1] - r0[1]) == 8,
           "requests per backend: %g -> %g and %g -> %g", r0[0], r1[0], r0[1], r1[1]);
    printf("%-58s -> %g on backend 0, %g on backend 1\n", "8 requests through nginx", r1[0] - r0[0], r1[1] - r0[1]);

    /* one backend dies: every request still served, by the other */
    CHECK(ts_stop(&b[1], SIGKILL, 5) == 128 + SIGKILL);
    double before = ts_metric(&b[0], AUTH, "pinfer_requests_total");
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(req, sizeof req, CHAT, "");
        got = ts_curl(&n, body, sizeof body, NULL, 0, "%s %s", AUTH, req);
        char *t = chat_text(body);
        ok += got == 200 && t && direct && !strcmp(t, direct);
        free(t);
    }
    double after = ts_metric(&b[0], AUTH, "pinfer_requests_total");
    CHECKF(ok == 4 && after - before == 4, "after backend 1 was killed: %d of 4 served, backend 0 %g -> %g", ok, before, after);
    printf("%-58s -> %d of 4 served by backend 0\n", "backend 1 killed, 4 requests through nginx", ok);
    free(direct);

out:
    if (n.pid > 0) CHECKF(ts_stop(&n, SIGQUIT, 10) == 0, "nginx did not stop cleanly on SIGQUIT");
    for (int i = 0; i < 2; i++)
        if (b[i].pid > 0) CHECK(ts_stop(&b[i], SIGTERM, 20) == 0);
    TEST_DONE();
}
