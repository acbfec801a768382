/* lb_test.h - builds upstreams by hand for the balancer unit tests (no config
 * loader involved). Header-only, static helpers. */
#ifndef PORTICO_TESTS_LB_TEST_H
#define PORTICO_TESTS_LB_TEST_H

#include <stdio.h>
#include <stdlib.h>

#include "core/common.h"
#include "lb/balancer.h"
#include "lb/server.h"

/* An upstream of n servers "10.0.<i/250>.<i%250>:80" with the given weights
 * (NULL: all 1) and backup flags (NULL: none), each with its own state. */
static inline struct conf_upstream *t_upstream(size_t n, const unsigned *weights,
                                               const bool *backup)
{
    struct conf_upstream *up = xcalloc(1, sizeof(*up));
    up->name = xstrdup("pool");
    up->servers = xcalloc(n, sizeof(*up->servers));
    up->n_servers = n;
    up->fail_timeout_ms = 10000;
    for (size_t i = 0; i < n; i++) {
        struct conf_server *s = &up->servers[i];
        char buf[64];
        snprintf(buf, sizeof(buf), "10.0.%zu.%zu:80", i / 250, i % 250);
        s->address = xstrdup(buf);
        s->weight = weights ? weights[i] : 1;
        s->backup = backup ? backup[i] : false;
        s->index = (unsigned)i;
        s->gid = (unsigned)i;
        s->state = server_state_new();
        s->upstream = up;
    }
    return up;
}

static inline void t_upstream_free(struct conf_upstream *up)
{
    for (size_t i = 0; i < up->n_servers; i++) {
        server_state_free(up->servers[i].state);
        free(up->servers[i].address);
    }
    free(up->servers);
    free(up->name);
    free(up);
}

static inline void t_down(struct conf_upstream *up, size_t i)
{
    atomic_store(&up->servers[i].state->health, SERVER_DOWN);
}

static inline void t_up(struct conf_upstream *up, size_t i)
{
    atomic_store(&up->servers[i].state->health, SERVER_UP);
    atomic_store(&up->servers[i].state->down_until_ms, 0);
}

/* Index of the pick, or -1 for NULL. */
static inline int t_idx(const struct conf_upstream *up, const struct conf_server *s)
{
    if (!s)
        return -1;
    return (int)(s - up->servers);
}

/* Picks and immediately releases; returns the index or -1. */
static inline int t_pick_release(const struct balancer_ops *ops, void *st,
                                 const struct conf_upstream *up, const struct lb_pick_ctx *ctx)
{
    const struct conf_server *s = ops->pick(st, up, ctx);
    if (s)
        ops->release(st, s);
    return t_idx(up, s);
}

#endif
