/* xport.h - the transport under a connection: plain TCP or TLS, behind one
 * small vtable (read, writev, close). The engine above never calls read(2)
 * or SSL_read directly, so HTTP/1.1 (and later HTTP/2) work the same over both.
 *
 * Results, beyond byte counts and IO_EOF / IO_ERROR of sock.h:
 *   read:   IO_AGAIN       wait until the socket is readable
 *           IO_WANT_WRITE  wait until it is writable (TLS handshake/key update)
 *   writev: IO_AGAIN       wait until the socket is writable
 *           IO_WANT_READ   wait until it is readable (TLS handshake) */
#ifndef PORTICO_NET_XPORT_H
#define PORTICO_NET_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "net/sock.h"

#define IO_WANT_WRITE (-4)
#define IO_WANT_READ (-5)

struct xport;

struct xport_ops {
    ssize_t (*read)(struct xport *x, void *p, size_t n);
    ssize_t (*writev)(struct xport *x, const struct iovec *iov, int n);
    /* Ends the protocol politely where it can without blocking (TLS
     * close_notify), frees the transport state and closes the fd. */
    void (*close)(struct xport *x);
};

struct xport {
    const struct xport_ops *ops;
    int fd;
    /* A read shorter than asked means the socket was drained (true for TCP;
     * not for TLS, whose library may hold decrypted bytes). */
    bool short_read_drains;
    bool hs_counted; /* TLS: the handshake outcome was counted */
    void *ssl;       /* SSL * for TLS, NULL for TCP */
};

extern const struct xport_ops xport_tcp_ops;

static inline void xport_init_tcp(struct xport *x, int fd)
{
    x->ops = &xport_tcp_ops;
    x->fd = fd;
    x->short_read_drains = true;
    x->hs_counted = true;
    x->ssl = NULL;
}

static inline ssize_t xport_read(struct xport *x, void *p, size_t n)
{
    return x->ops->read(x, p, n);
}
static inline ssize_t xport_writev(struct xport *x, const struct iovec *iov, int n)
{
    return x->ops->writev(x, iov, n);
}
static inline void xport_close(struct xport *x)
{
    x->ops->close(x);
}

struct buf;
/* Reads into the free tail of b and keeps the owner's edge-triggered
 * readiness flags true to the socket: a drained socket clears *can_read
 * (a short TCP read counts as drained unless the peer's FIN was reported),
 * a TLS read that must first write clears *can_write. Returns bytes,
 * IO_AGAIN (also when b is full), IO_EOF or IO_ERROR. */
ssize_t xport_fill(struct xport *x, struct buf *b, bool *can_read, bool *can_write, bool rdhup);

#endif
