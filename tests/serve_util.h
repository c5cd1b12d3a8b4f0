/* Helpers of the tests that drive `pinfer serve` from outside (test_serve.c, test_serve_openai.c):
 * start the binary on a free port (--port 0; the port is read from its first stdout line),
 * send it requests with curl, stop it with a signal and collect its exit status.
 * Header-only: each test program includes it once. */
#ifndef PF_TESTS_SERVE_UTIL_H
#define PF_TESTS_SERVE_UTIL_H

#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tserver {
    pid_t pid;
    int port;
    char out[1024], err[1024]; /* its stdout and stderr */
};

static inline void ts_sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

/* Starts `env pinfer serve args --port 0` (env: "VAR=value ..." or ""), named `name` in the
 * temp dir. 0 once it listens (its port in s->port); -1 if it exited or did not listen within
 * 30 s (then s->pid is 0 and its exit status is in *status if not NULL). */
static inline int ts_start(struct tserver *s, const char *name, const char *env, const char *args, int *status)
{
    const char *bin = getenv("PINFER_BIN");
    if (!bin) bin = "build/pinfer";
    snprintf(s->out, sizeof s->out, "%s/%s.out", tu_tmpdir(), name);
    snprintf(s->err, sizeof s->err, "%s/%s.err", tu_tmpdir(), name);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "exec env %s %s serve %s --port 0 >%s 2>%s </dev/null", env, bin, args, s->out, s->err);
    s->port = 0;
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000; i++) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return -1;
        }
        char *o = tu_read_file(s->out, NULL);
        const char *p = o ? strstr(o, "listening on http://") : NULL;
        const char *colon = p ? strrchr(p, ':') : NULL;
        if (colon && strchr(colon, '\n')) s->port = atoi(colon + 1);
        free(o);
        if (s->port > 0) return 0;
        ts_sleep_ms(10);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

/* Sends sig and waits up to timeout_s for the exit; its exit status (128+signal if killed by
 * one), or -1 if it had to be killed after the timeout. */
static inline int ts_stop(struct tserver *s, int sig, int timeout_s)
{
    if (s->pid <= 0) return -1;
    kill(s->pid, sig);
    for (int i = 0; i < timeout_s * 100; i++) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        ts_sleep_ms(10);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

/* Runs `curl -s <args>` against the server (the string "URL" in args is replaced by
 * http://127.0.0.1:PORT). The response body goes to body (cap bytes, NUL-terminated) and the
 * headers to hdr when not NULL. Returns the HTTP status, 0 when there was no response. */
static inline int ts_curl(const struct tserver *s, char *body, size_t cap, char *hdr, size_t hcap, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static inline int ts_curl(const struct tserver *s, char *body, size_t cap, char *hdr, size_t hcap, const char *fmt, ...)
{
    char args[16384], exp[16384 + 64], url[64], cmd[20000], bpath[1100], hpath[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s->port);
    /* replace each URL */
    exp[0] = 0;
    for (const char *a = args, *u; *a; a = u + 3) {
        if (!(u = strstr(a, "URL"))) { strncat(exp, a, sizeof exp - strlen(exp) - 1); break; }
        strncat(exp, a, (size_t)(u - a) < sizeof exp - strlen(exp) - 1 ? (size_t)(u - a) : sizeof exp - strlen(exp) - 1);
        strncat(exp, url, sizeof exp - strlen(exp) - 1);
    }
    static int seq;
    snprintf(bpath, sizeof bpath, "%s/curl%d.body", tu_tmpdir(), seq);
    snprintf(hpath, sizeof hpath, "%s/curl%d.hdr", tu_tmpdir(), seq++);
    snprintf(cmd, sizeof cmd, "curl -s --max-time 60 -o %s -D %s -w '%%{http_code}' %s", bpath, hpath, exp);
    FILE *p = popen(cmd, "r");
    int code = 0;
    if (p) {
        if (fscanf(p, "%d", &code) != 1) code = 0;
        pclose(p);
    }
    char *b = tu_read_file(bpath, NULL), *h = tu_read_file(hpath, NULL);
    if (body) snprintf(body, cap, "%s", b ? b : "");
    if (hdr) snprintf(hdr, hcap, "%s", h ? h : "");
    free(b);
    free(h);
    return code;
}

/* A metric's value from GET /metrics (the line "name value"), or -1. */
static inline double ts_metric(const struct tserver *s, const char *auth, const char *name)
{
    static char body[1 << 16];
    if (ts_curl(s, body, sizeof body, NULL, 0, "%s URL/metrics", auth) != 200) return -1;
    size_t n = strlen(name);
    for (char *line = body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, name, n) && line[n] == ' ') return atof(line + n + 1);
    return -1;
}

/* Polls a metric until it equals want (up to timeout_ms); true when it did. */
static inline bool ts_metric_wait(const struct tserver *s, const char *auth, const char *name, double want, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 20) {
        if (ts_metric(s, auth, name) == want) return true;
        ts_sleep_ms(20);
    }
    return false;
}

/* A background `curl -sN -o path URL<args>` (args: the path, then options); its pid. */
static inline pid_t ts_curl_bg(const struct tserver *s, const char *path, const char *args)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "exec curl -sN --max-time 120 -o %s http://127.0.0.1:%d%s", path, s->port, args);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits until the file at path holds needle (up to timeout_ms). */
static inline bool ts_file_wait(const char *path, const char *needle, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 10) {
        char *f = tu_read_file(path, NULL);
        bool ok = f && strstr(f, needle);
        free(f);
        if (ok) return true;
        ts_sleep_ms(10);
    }
    return false;
}

#endif
