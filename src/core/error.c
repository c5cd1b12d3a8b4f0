/* Thread-local last-error message. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char pf_err_msg[512];

int pf_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pf_err_msg, sizeof pf_err_msg, fmt, ap);
    va_end(ap);
    return code;
}

int pf_fail_context(int code, const char *fmt, ...)
{
    char prefix[200], old[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, pf_err_msg, sizeof old);
    snprintf(pf_err_msg, sizeof pf_err_msg, "%.200s: %.300s", prefix, old);
    return code;
}

const char *pinfer_last_error(void)
{
    return pf_err_msg[0] ? pf_err_msg : "no error recorded";
}

const char *pinfer_status_str(int code)
{
    switch (code) {
    case PINFER_OK: return "ok";
    case PINFER_EINVAL: return "invalid argument";
    case PINFER_ENOMEM: return "out of memory";
    case PINFER_EIO: return "I/O error";
    case PINFER_EFORMAT: return "malformed file";
    case PINFER_EUNSUPPORTED: return "unsupported";
    case PINFER_ENOSPC: return "no space left";
    case PINFER_ERANGE: return "out of range";
    }
    return "unknown error";
}
