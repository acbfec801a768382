/* health_check.h - active health checks: one checker thread with its own
 * event loop probes every server of every upstream that has `health`
 * (HTTP GET or TCP connect), off the workers' request path, and feeds the
 * results to the rise/fall state machine of lb/server.h. Workers only read
 * the resulting atomics. docs/internals/health.md has the details. */
#ifndef PORTICO_LB_HEALTH_CHECK_H
#define PORTICO_LB_HEALTH_CHECK_H

#include "conf/conf.h"

struct health_checker;

/* Starts the checker thread for the upstreams of `c` that have health
 * checks (takes a reference on c). Returns NULL when no upstream has any
 * (no thread is started) or when the thread cannot start (logged). Main
 * thread. */
struct health_checker *health_start(struct conf *c);
/* Stops the thread, closes its sockets, drops the reference. NULL is
 * allowed. Main thread. */
void health_stop(struct health_checker *hc);

#endif
