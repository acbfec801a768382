/* xport_tcp.c - the plain TCP transport. */
#include <unistd.h>

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
