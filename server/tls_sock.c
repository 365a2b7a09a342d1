/* tls_sock.h: the engine on a non-blocking socket, poll() for each wait. */
#include "server/tls_sock.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"

enum { SOCK_READ_BYTES = 16 << 10 };

int srv_sock_wait(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = k_mono_ns();
        if (now >= deadline_ns) return K_EUNAVAILABLE;
        struct pollfd pfd = { .fd = fd, .events = events };
        int rc = poll(&pfd, 1, (int)((deadline_ns - now) / 1000000 + 1));
        if (rc > 0) return 0;
        if (rc < 0 && errno != EINTR) return -errno;
    }
}

/* Writes all of the engine's waiting output. */
static int sock_send_output(struct srv_tls *t, int fd, uint64_t deadline_ns)
{
    size_t len;
    char *bytes = srv_tls_take_output(t, &len);
    size_t done = 0;
    int rc = 0;
    while (rc == 0 && done < len) {
        ssize_t n = write(fd, bytes + done, len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
            rc = -errno;
        } else {
            rc = srv_sock_wait(fd, POLLOUT, deadline_ns);
        }
    }
    free(bytes);
    return rc;
}

int srv_tls_sock_write(struct srv_tls *t, int fd, const void *data, size_t len,
                       uint64_t deadline_ns)
{
    int rc = srv_tls_write(t, data, len);
    if (rc < 0) return rc;
    return sock_send_output(t, fd, deadline_ns);
}

int srv_tls_sock_read_full(struct srv_tls *t, int fd, void *buf, size_t len, uint64_t deadline_ns)
{
    size_t got = 0;
    while (got < len) {
        size_t n = 0;
        int rc = srv_tls_read(t, (char *)buf + got, len - got, &n);
        int wrc = sock_send_output(t, fd, deadline_ns); /* handshake records, held data */
        if (rc != 0) return K_EPROTO;                   /* failed, or closed too early */
        if (wrc < 0) return wrc;
        got += n;
        if (n > 0) continue;
        rc = srv_sock_wait(fd, POLLIN, deadline_ns);
        if (rc < 0) return rc;
        char cipher[SOCK_READ_BYTES];
        ssize_t r = read(fd, cipher, sizeof(cipher));
        if (r == 0) return K_EPROTO;
        if (r < 0 && errno != EINTR && errno != EAGAIN) return -errno;
        if (r > 0) srv_tls_feed(t, cipher, (size_t)r);
    }
    return 0;
}
