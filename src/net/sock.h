/* sock.h - socket set-up helpers: listening sockets (SO_REUSEPORT, one per
 * worker), non-blocking connects, and I/O wrappers returning the project's
 * OK / AGAIN / ERROR convention. */
#ifndef PORTICO_NET_SOCK_H
#define PORTICO_NET_SOCK_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/addr.h"

/* Creates, binds and listens a non-blocking SO_REUSEPORT socket. Returns the
 * fd, or -errno. */
int sock_listen(const struct addr *a, int backlog);
/* Starts a non-blocking connect. Returns the fd (connection in progress or
 * done), or -errno (e.g. -ECONNREFUSED for an immediate refusal). */
int sock_connect(const struct addr *a);
/* Returns the pending socket error (SO_ERROR), 0 if none. */
int sock_error(int fd);

/* I/O results: >= 0 bytes, or one of these. */
#define IO_AGAIN (-1)
#define IO_EOF (-2)
#define IO_ERROR (-3)

/* read(): bytes (> 0), IO_EOF, IO_AGAIN or IO_ERROR (errno kept). */
ssize_t sock_read(int fd, void *p, size_t n);
/* writev(): bytes written (>= 0), IO_AGAIN or IO_ERROR. */
ssize_t sock_writev(int fd, const struct iovec *iov, int n);

#endif
