/* xport_tcp.c - the plain TCP transport, and the read step shared by every
 * transport (xport_fill). */
#include <unistd.h>

#include "core/buf.h"
#include "net/xport.h"

static ssize_t tcp_read(struct xport *x, void *p, size_t n)
{
    return sock_read(x->fd, p, n);
}

static ssize_t tcp_writev(struct xport *x, const struct iovec *iov, int n)
{
    return sock_writev(x->fd, iov, n);
}

static void tcp_close(struct xport *x)
{
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
}

const struct xport_ops xport_tcp_ops = {
    .read = tcp_read,
    .writev = tcp_writev,
    .close = tcp_close,
};

ssize_t xport_fill(struct xport *x, struct buf *b, bool *can_read, bool *can_write, bool rdhup)
{
    if (buf_room(b) == 0) {
        buf_compact(b);
        if (buf_room(b) == 0)
            return IO_AGAIN; /* full: the sink must drain first */
    }
    size_t room = buf_room(b);
    ssize_t n = xport_read(x, buf_wptr(b), room);
    if (n > 0) {
        b->tail += (uint32_t)n;
        if ((size_t)n < room && !rdhup && x->short_read_drains)
            *can_read = false;
    } else if (n == IO_AGAIN) {
        *can_read = false;
    } else if (n == IO_WANT_WRITE) {
        *can_write = false;
        n = IO_AGAIN;
    }
    return n;
}
