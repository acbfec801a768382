/* loop.h - the per-worker event loop: epoll (edge-triggered), a timer heap
 * with lazy re-arming, and deferred release of closed handles.
 *
 * Handles are registered once with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET; the
 * owner keeps its own readiness flags, so the hot path makes no epoll_ctl
 * calls. Objects closed while events for them may still sit in the current
 * batch are released only after the batch (loop_defer). */
#ifndef PORTICO_EVENT_LOOP_H
#define PORTICO_EVENT_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_io;
typedef void (*ev_io_cb)(struct ev_io *io, uint32_t events);

struct ev_io {
    int fd;
    bool dead; /* closed: ignore events still queued for it */
    ev_io_cb cb;
};

struct timer;
typedef void (*timer_cb)(struct timer *t);

/* A timer may be set to a later time without touching the heap: `expires`
 * moves, `key` (its heap position) stays, and on firing early the heap entry
 * is re-keyed. Setting an earlier time sifts it up. */
struct timer {
    uint64_t expires; /* 0 = not armed */
    uint64_t key;
    int heap_idx; /* -1 when not in the heap */
    timer_cb cb;
};

struct deferred {
    struct deferred *next;
    void (*fn)(struct deferred *d);
};

struct loop {
    int epfd;
    struct timer **heap;
    size_t n_heap, cap_heap;
    struct deferred *deferred;
    bool stop;
};

int loop_init(struct loop *l);
void loop_destroy(struct loop *l);

/* Registers io (edge-triggered, read+write+rdhup). Returns 0 or -errno. */
int loop_add(struct loop *l, struct ev_io *io);
/* Registers io for EPOLLIN only, level-triggered (listeners, eventfds). */
int loop_add_level(struct loop *l, struct ev_io *io);
/* Unregisters io (before closing an fd that is shared or kept). */
void loop_del(struct loop *l, struct ev_io *io);

static inline void timer_init(struct timer *t, timer_cb cb)
{
    t->expires = 0;
    t->key = 0;
    t->heap_idx = -1;
    t->cb = cb;
}
/* Arms t to fire at `when` (monotonic ms), replacing any previous time. */
void timer_set(struct loop *l, struct timer *t, uint64_t when);
void timer_cancel(struct loop *l, struct timer *t);
/* Milliseconds until the next timer (capped at max_ms), 0 if one is due. */
int loop_next_timeout(struct loop *l, int max_ms);

/* Runs d->fn(d) after the current batch of events. */
void loop_defer(struct loop *l, struct deferred *d);

/* Waits for events up to max_wait_ms, dispatches them, fires due timers, runs
 * deferred releases. */
void loop_run_once(struct loop *l, int max_wait_ms);

#endif
