/* Names for the error codes of base/err.h and for negated errnos. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *k_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
    case K_ECORRUPT:
        return "data is corrupt";
    case K_ELIMIT:
        return "limit exceeded";
    case K_EV2:
        return "etcd v2 error";
    case K_ENOTFOUND:
        return "not found";
    case K_EPROTO:
        return "protocol error";
    case K_ECONFIG:
        return "inconsistent configuration";
    case K_ESTOPPED:
        return "stopped";
    case K_ENOLEADER:
        return "no leader";
    case K_EBUSY:
        return "busy";
    case K_ECOMPACTED:
        return "log index compacted";
    case K_EUNAVAILABLE:
        return "log index unavailable";
    default:
        break;
    }
    if (rc < 0 && rc > K_EFIRST) return strerror(-rc);
    return "unknown error";
}

int k_errf(char *err, size_t err_len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return rc;
}
