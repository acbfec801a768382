/* handover.h - binary upgrade without dropping a connection: the running
 * process has a new one started (fork + exec of the same binary path with
 * the same arguments, by a helper process) that inherits its listening
 * sockets, and learns through a pipe when the new one serves; the new process takes those sockets instead
 * of binding its own, matched by address. Listening sockets are shared, not
 * re-created, so connections waiting in their accept queues are accepted by
 * whichever process accepts first and none is refused.
 *
 * Environment of the new process: PORTICO_LISTEN_FDS, a comma-separated list
 * of inherited listening descriptors, and PORTICO_UPGRADE_FD, the pipe to
 * write one byte to once it serves. Both are removed at start-up. See
 * docs/operations.md "Binary upgrade". */
#ifndef PORTICO_NET_HANDOVER_H
#define PORTICO_NET_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/addr.h"

/* ---- the new process ---- */

/* Reads and removes the environment above; keeps every inherited fd that
 * is a listening TCP socket (marking it close-on-exec again). Returns how
 * many were inherited. Call first thing in main, before any thread. */
size_t handover_init(void);
/* An inherited listening socket bound to exactly a (not yet taken), or -1.
 * The caller owns it. Main thread, at start-up. */
int handover_take(const struct addr *a);
/* Closes the inherited sockets nobody took (a listener the new config
 * dropped, or more workers in the old process than in this one). */
void handover_close_unused(void);
/* Tells the old process that this one serves (writes to the pipe and
 * closes it). Does nothing when not started by an upgrade. */
void handover_ready(void);

/* ---- the old process ---- */

/* Forks the spawner, the helper that will start the new process: now,
 * while this process has no thread and no connection (see handover.c).
 * Records the path of the running binary as it is now (so that a binary
 * replaced at that path since is the one started) and argv. Returns 0, or
 * -1 with a message in err. Call after the config is loaded (not for -t),
 * before any thread starts. */
int handover_spawner_start(char **argv, char *err, size_t errlen);

struct handover_child {
    pid_t pid;         /* 0: no upgrade in progress */
    int ready_fd;      /* read end of the readiness pipe */
    uint64_t deadline; /* monotonic ms: not ready by then = failed */
};

/* Starts the new process (through the spawner) with fds[0..n) (listening
 * sockets) inherited. Returns 0 with *h filled, or -1 with a message in
 * err. Main thread; waits up to 5 s for the spawner's answer. */
int handover_spawn(const int *fds, size_t n, uint64_t now_ms, uint64_t timeout_ms,
                   struct handover_child *h, char *err, size_t errlen);
/* Checks on the new process without blocking (up to a second when it just
 * failed, for its exit status): 1 it serves, 0 not yet, -1 it failed
 * (exited, or not ready by the deadline: then it is killed); the reason is
 * in msg. After 1 or -1, h is reset. */
int handover_poll(struct handover_child *h, uint64_t now_ms, char *msg, size_t len);

#endif
