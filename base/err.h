/* Error codes: 0 is success, a negative errno is an OS failure read right after the call
 * (-EIO), and our own conditions live in a range of their own below -10000 so the two never
 * collide (STYLE.md §3). k_strerror() names either kind. errno never carries errors between
 * our functions. */
#ifndef KETCH_BASE_ERR_H
#define KETCH_BASE_ERR_H

enum k_err {
    K_EFIRST = -10000,
    K_ECORRUPT = -10001,     /* bytes from disk or network fail a check (CRC, length, order) */
    K_ELIMIT = -10002,       /* a configured bound was reached (size, count, depth) */
    K_EV2 = -10003,          /* an etcd v2 error; details in a struct kv_error */
    K_ENOTFOUND = -10004,    /* the thing asked for does not exist */
    K_EPROTO = -10005,       /* a peer or client broke the protocol */
    K_ECONFIG = -10006,      /* inconsistent configuration */
    K_ESTOPPED = -10007,     /* the component is shutting down or has stopped */
    K_ENOLEADER = -10008,    /* no leader is known, so a proposal cannot go anywhere */
    K_EBUSY = -10009,        /* refused for now (leadership transfer, change in flight) */
    K_ECOMPACTED = -10010,   /* the requested log index was compacted away */
    K_EUNAVAILABLE = -10011, /* the requested log index is not yet available */
    K_ELAST = -10012,
};

#include <stddef.h>

/* Returns a static, human-readable description of rc (never NULL). */
const char *k_strerror(int rc);

/* Writes a message (printf-style) into err[0..err_len) and returns rc: the one-line reasons
 * that start-up and parsing code hands back with an error code. */
int k_errf(char *err, size_t err_len, int rc, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

#endif
