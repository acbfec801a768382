/* sock.c - socket set-up and non-blocking I/O wrappers. */
#include "net/sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

int sock_listen(const struct addr *a, int backlog)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* Wake the worker only once the client has sent something: saves a loop
     * turn per connection; idle connectors are accepted after the delay. */
    int defer = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
        goto fail;
    if (listen(fd, backlog) < 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return -e;
}

int sock_connect(const struct addr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

ssize_t sock_read(int fd, void *p, size_t n)
{
    for (;;) {
        ssize_t r = read(fd, p, n);
        if (r > 0)
            return r;
        if (r == 0)
            return IO_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return IO_AGAIN;
        return IO_ERROR;
    }
}

ssize_t sock_writev(int fd, const struct iovec *iov, int n)
{
    for (;;) {
        ssize_t r = writev(fd, iov, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return IO_AGAIN;
        return IO_ERROR;
    }
}
