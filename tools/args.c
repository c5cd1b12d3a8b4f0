/* Flag parsing helpers for the CLI. */
#include "args.h"

#include "pinfer.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void vmsg(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "pinfer %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int args_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "run 'pinfer %s --help' for usage\n", cmd);
    return 2;
}

int args_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(cmd, fmt, ap);
    va_end(ap);
    return 1;
}

int args_pinfer_error(const char *cmd)
{
    return args_error(cmd, "%s", pinfer_last_error());
}

const char *args_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        /* called before the flag is matched: it may also be unknown */
        args_usage_error(cmd, "flag %s is unknown or needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool args_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        args_usage_error(cmd, "%s expects an integer in %ld..%ld, got '%s'", flag, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool args_float(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        args_usage_error(cmd, "%s expects a number in %g..%g, got '%s'", flag, lo, hi, s);
        return false;
    }
    *out = (float)v;
    return true;
}

bool args_u64(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-') { args_usage_error(cmd, "%s expects a non-negative integer, got '%s'", flag, s); return false; }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) {
        args_usage_error(cmd, "%s expects a non-negative integer, got '%s'", flag, s);
        return false;
    }
    *out = v;
    return true;
}

int args_int_list(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out, int cap)
{
    int n = 0;
    char buf[256];
    if (strlen(s) >= sizeof buf) { args_usage_error(cmd, "%s: list too long", flag); return -1; }
    strcpy(buf, s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (n == cap) { args_usage_error(cmd, "%s: at most %d values", flag, cap); return -1; }
        if (!args_int(cmd, flag, tok, lo, hi, &v)) return -1;
        out[n++] = (int)v;
    }
    if (n == 0) { args_usage_error(cmd, "%s: empty list", flag); return -1; }
    return n;
}

char *args_read_file(const char *cmd, const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) { args_error(cmd, "cannot open %s: %s", path, strerror(errno)); return NULL; }
    /* no more than the tokenizer takes: /dev/zero or a huge file stops here, not after GiBs */
    const size_t max = PINFER_MAX_TEXT_BYTES;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf && n <= max) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        size_t want = cap - n - 1;
        if (want > max + 1 - n) want = max + 1 - n;
        size_t r = fread(buf + n, 1, want, fp);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (buf && n > max) {
        free(buf);
        args_error(cmd, "%s is larger than %zu MiB, the most text pinfer tokenizes", path, max >> 20);
        return NULL;
    }
    if (!buf || err) { free(buf); args_error(cmd, "cannot read %s: %s", path, buf ? "I/O error" : "out of memory"); return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}
