/* server.c - shared runtime state of upstream servers (passive failures now,
 * active health and draining in later stages). */
#include "lb/server.h"

#include <stdlib.h>

#include "core/common.h"

struct server_state *server_state_new(void)
{
    struct server_state *st = xcalloc(1, sizeof(*st));
    atomic_init(&st->down_until_ms, 0);
    atomic_init(&st->consecutive_fails, 0);
    atomic_init(&st->health, SERVER_UP);
    atomic_init(&st->draining, false);
    return st;
}

void server_state_free(struct server_state *st)
{
    free(st);
}

bool server_usable(const struct conf_server *s, uint64_t now_ms)
{
    const struct server_state *st = s->state;
    if (!st)
        return true;
    if (atomic_load_explicit(&st->health, memory_order_relaxed) != SERVER_UP)
        return false;
    if (atomic_load_explicit(&st->draining, memory_order_relaxed))
        return false;
    return atomic_load_explicit(&st->down_until_ms, memory_order_relaxed) <= now_ms;
}

void server_mark_failed(const struct conf_server *s, uint64_t now_ms)
{
    struct server_state *st = s->state;
    if (!st)
        return;
    atomic_fetch_add_explicit(&st->consecutive_fails, 1, memory_order_relaxed);
    atomic_store_explicit(&st->down_until_ms, now_ms + s->upstream->fail_timeout_ms,
                          memory_order_relaxed);
}

void server_mark_ok(const struct conf_server *s)
{
    struct server_state *st = s->state;
    if (st && atomic_load_explicit(&st->consecutive_fails, memory_order_relaxed))
        atomic_store_explicit(&st->consecutive_fails, 0, memory_order_relaxed);
}
