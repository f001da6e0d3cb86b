/* ocn_error: messages returned, never printed (GSL style). */
#include "ocn/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ocn_fail(ocn_error *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

int ocn_error_prefix(ocn_error *e, const char *fmt, ...)
{
    if (!e) return OCN_OK;
    char pre[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    int k = snprintf(e->msg, sizeof e->msg, "%s: ", pre);
    if (k > 0 && (size_t)k < sizeof e->msg) snprintf(e->msg + k, sizeof e->msg - (size_t)k, "%.*s", (int)(sizeof e->msg - (size_t)k - 1), old);
    return e->code;
}

const char *ocn_error_message(const ocn_error *e)
{
    return (e && e->msg[0]) ? e->msg : "no error";
}

const char *ocn_status_string(int code)
{
    switch (code) {
    case OCN_OK: return "ok";
    case OCN_EINVAL: return "invalid input";
    case OCN_EIO: return "i/o error";
    case OCN_ENOMEM: return "out of memory";
    case OCN_ENUMERIC: return "numerical failure";
    case OCN_EUNSUPPORTED: return "unsupported request";
    default: return "unknown status";
    }
}
