/* loop.c - epoll event loop, lazy timer heap, deferred releases. */
#include "event/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/common.h"

#define LOOP_MAX_EVENTS 256

int loop_init(struct loop *l)
{
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        return -errno;
    l->heap = NULL;
    l->n_heap = l->cap_heap = 0;
    l->deferred = NULL;
    l->stop = false;
    return 0;
}

void loop_destroy(struct loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    l->epfd = -1;
    free(l->heap);
    l->heap = NULL;
    l->n_heap = l->cap_heap = 0;
}

int loop_add(struct loop *l, struct ev_io *io)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = io};
    io->dead = false;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return -errno;
    return 0;
}

int loop_add_level(struct loop *l, struct ev_io *io)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = io};
    io->dead = false;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return -errno;
    return 0;
}

void loop_del(struct loop *l, struct ev_io *io)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

/* ---- timer heap (min-heap on key) ---- */

static void heap_swap(struct loop *l, size_t a, size_t b)
{
    struct timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_idx = (int)a;
    l->heap[b]->heap_idx = (int)b;
}

static void heap_up(struct loop *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->key <= l->heap[i]->key)
            break;
        heap_swap(l, i, p);
        i = p;
    }
}

static void heap_down(struct loop *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < l->n_heap && l->heap[c]->key < l->heap[m]->key)
            m = c;
        if (c + 1 < l->n_heap && l->heap[c + 1]->key < l->heap[m]->key)
            m = c + 1;
        if (m == i)
            break;
        heap_swap(l, i, m);
        i = m;
    }
}

static void heap_remove(struct loop *l, struct timer *t)
{
    size_t i = (size_t)t->heap_idx;
    size_t last = --l->n_heap;
    if (i != last) {
        l->heap[i] = l->heap[last];
        l->heap[i]->heap_idx = (int)i;
        heap_down(l, i);
        heap_up(l, i);
    }
    t->heap_idx = -1;
}

void timer_set(struct loop *l, struct timer *t, uint64_t when)
{
    if (when == 0) {
        timer_cancel(l, t);
        return;
    }
    t->expires = when;
    if (t->heap_idx >= 0) {
        if (when >= t->key)
            return; /* lazy: re-keyed when the old key comes due */
        t->key = when;
        heap_up(l, (size_t)t->heap_idx);
        return;
    }
    if (l->n_heap == l->cap_heap) {
        l->cap_heap = l->cap_heap ? l->cap_heap * 2 : 256;
        l->heap = xrealloc(l->heap, l->cap_heap * sizeof(*l->heap));
    }
    t->key = when;
    t->heap_idx = (int)l->n_heap;
    l->heap[l->n_heap++] = t;
    heap_up(l, (size_t)t->heap_idx);
}

void timer_cancel(struct loop *l, struct timer *t)
{
    t->expires = 0;
    if (t->heap_idx >= 0)
        heap_remove(l, t);
}

int loop_next_timeout(struct loop *l, int max_ms)
{
    if (l->n_heap == 0)
        return max_ms;
    uint64_t now = clock_ms();
    uint64_t k = l->heap[0]->key;
    if (k <= now)
        return 0;
    uint64_t d = k - now;
    return d < (uint64_t)max_ms ? (int)d : max_ms;
}

static void run_timers(struct loop *l)
{
    uint64_t now = clock_ms();
    while (l->n_heap && l->heap[0]->key <= now) {
        struct timer *t = l->heap[0];
        if (t->expires > now) {
            t->key = t->expires;
            heap_down(l, 0);
            continue;
        }
        heap_remove(l, t);
        t->expires = 0;
        t->cb(t);
    }
}

void loop_defer(struct loop *l, struct deferred *d)
{
    d->next = l->deferred;
    l->deferred = d;
}

static void run_deferred(struct loop *l)
{
    while (l->deferred) {
        struct deferred *d = l->deferred;
        l->deferred = NULL;
        while (d) {
            struct deferred *next = d->next;
            d->fn(d);
            d = next;
        }
    }
}

void loop_run_once(struct loop *l, int max_wait_ms)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    int timeout = loop_next_timeout(l, max_wait_ms);
    int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout);
    clock_update();
    for (int i = 0; i < n; i++) {
        struct ev_io *io = evs[i].data.ptr;
        if (!io->dead)
            io->cb(io, evs[i].events);
    }
    run_timers(l);
    run_deferred(l);
}
