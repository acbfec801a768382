/* worker.c - a worker thread: its loop, its listening sockets and accepts,
 * its inbox from the main thread (drain, stop), its per-upstream balancer
 * states and keep-alive pools, and its graceful drain. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/common.h"
#include "lb/balancer.h"
#include "log/access.h"
#include "log/errlog.h"
#include "log/log_writer.h"
#include "log/metrics.h"
#include "filters/compress.h"
#include "proxy/engine.h"
#include "proxy/h2.h"
#include "proxy/router.h"

atomic_ulong g_conn_count;

#define ACCEPT_BATCH 64
#define TICK_MS 200

static void listener_cb(struct ev_io *io, uint32_t events)
{
    struct wlistener *wl = container_of(io, struct wlistener, io);
    struct worker *w = wl->w;
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH && !w->draining; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                log_error("accept: %s", strerror(errno));
            return;
        }
        unsigned long n = atomic_fetch_add_explicit(&g_conn_count, 1, memory_order_relaxed);
        if (n >= w->conf->limits.max_connections) {
            /* Over the limit: refuse at once rather than let it linger. */
            atomic_fetch_sub_explicit(&g_conn_count, 1, memory_order_relaxed);
            close(fd);
            continue;
        }
        client_accept(wl, fd, (struct sockaddr *)&ss, len);
    }
}

static void close_listeners(struct worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        struct wlistener *wl = &w->listeners[i];
        if (wl->io.fd >= 0) {
            loop_del(&w->loop, &wl->io);
            close(wl->io.fd);
            wl->io.fd = -1;
            wl->io.dead = true;
        }
    }
}

static void start_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    close_listeners(w);
    pool_close_all(w);
    /* Idle connections close now; busy ones after their current response.
     * A connection that has not sent its first request yet stays: it was
     * accepted before the listeners closed, and its client is sending that
     * request now; it is answered with Connection: close (and bounded by
     * timeouts.client_header). Closing it would refuse a client that only
     * connected a moment too early, which a binary upgrade, where the new
     * process accepts from the same sockets, must never do. */
    struct client *cl = w->clients;
    while (cl) {
        struct client *next = cl->next;
        if (cl->state == CL_IDLE ||
            (cl->state == CL_HEAD && cl->requests > 0 && !(cl->rbuf && buf_len(cl->rbuf))))
            client_close(cl);
        else if (cl->state == CL_H2)
            h2_drain(cl);
        cl = next;
    }
}

/* ---- snapshots ---- */

static struct wsnap *snap_new(struct conf *c)
{
    struct wsnap *s = xcalloc(1, sizeof(*s));
    s->conf = c;
    s->lb_state = xcalloc(c->n_upstreams ? c->n_upstreams : 1, sizeof(void *));
    for (size_t i = 0; i < c->n_upstreams; i++)
        s->lb_state[i] = balancer_for(c->upstreams[i].balance)->init(&c->upstreams[i]);
    s->mids = metrics_ids_new(c); /* metrics: name ids, off the request path */
    return s;
}

static void snap_free(struct wsnap *s)
{
    for (size_t i = 0; i < s->conf->n_upstreams; i++)
        balancer_for(s->conf->upstreams[i].balance)->destroy(s->lb_state[i]);
    free(s->lb_state);
    metrics_ids_free(s->mids);
    conf_unref(s->conf);
    free(s);
}

void worker_retire_snaps(struct worker *w)
{
    for (struct wsnap **pp = &w->retired; *pp;) {
        struct wsnap *s = *pp;
        if (s->streams == 0) {
            *pp = s->next;
            snap_free(s);
        } else {
            pp = &s->next;
        }
    }
}

static void listeners_build(struct worker *w, struct conf *c, int *fds)
{
    w->listen_fds = fds;
    w->n_listeners = c->n_listeners;
    w->listeners = xcalloc(c->n_listeners ? c->n_listeners : 1, sizeof(*w->listeners));
    for (size_t i = 0; i < c->n_listeners; i++) {
        w->listeners[i].io.fd = fds[i];
        w->listeners[i].io.cb = listener_cb;
        w->listeners[i].w = w;
        w->listeners[i].cl = &c->listeners[i];
    }
}

struct deferred_free {
    struct deferred d;
    void *p;
};

static void deferred_free_fn(struct deferred *d)
{
    struct deferred_free *f = container_of(d, struct deferred_free, d);
    free(f->p);
    free(f);
}

/* Frees p after the current batch: events for the objects in it may still be
 * queued behind the one being handled. */
static void free_after_batch(struct worker *w, void *p)
{
    struct deferred_free *f = xmalloc(sizeof(*f));
    f->p = p;
    f->d.fn = deferred_free_fn;
    loop_defer(&w->loop, &f->d);
}

/* Switches to the snapshot the main thread posted. Listening sockets present
 * in both keep their fd (and their accept queue): they are only re-registered
 * with the new listener objects; removed ones are closed here. */
static void apply_conf(struct worker *w)
{
    struct conf *nc = atomic_exchange(&w->pending_conf, NULL);
    if (!nc)
        return;
    int *nfds = w->pending_fds;
    w->pending_fds = NULL;
    for (size_t i = 0; i < w->n_listeners; i++) {
        struct wlistener *wl = &w->listeners[i];
        if (wl->io.fd < 0)
            continue;
        loop_del(&w->loop, &wl->io);
        bool kept = false;
        for (size_t j = 0; j < nc->n_listeners && !kept; j++)
            kept = nfds[j] == wl->io.fd;
        if (!kept)
            close(wl->io.fd);
        wl->io.dead = true;
    }
    free_after_batch(w, w->listeners);
    free(w->listen_fds);
    listeners_build(w, nc, nfds);
    if (!w->draining) {
        for (size_t i = 0; i < w->n_listeners; i++)
            if (loop_add_level(&w->loop, &w->listeners[i].io) < 0)
                log_error("worker %u: cannot watch listener %s: %s", w->id,
                          nc->listeners[i].listen, strerror(errno));
    } else {
        close_listeners(w);
    }
    /* Pooled connections belong to the old snapshot's servers. */
    pool_close_all(w);
    free(w->pools);
    w->pools = xcalloc(nc->n_servers_total ? nc->n_servers_total : 1, sizeof(*w->pools));
    struct wsnap *old = w->snap;
    w->snap = snap_new(nc);
    w->conf = nc;
    old->next = w->retired;
    w->retired = old;
    worker_retire_snaps(w);
    /* HTTP/2 connections get GOAWAY: their open streams finish, and clients
     * reconnect to the new listener settings (certificates, ALPN, limits). */
    for (struct client *cl = w->clients; cl; cl = cl->next)
        if (cl->state == CL_H2)
            h2_drain(cl);
    atomic_fetch_add(&w->applied_gen, 1);
}

void worker_post_conf(struct worker *w, struct conf *c, int *listen_fds)
{
    w->pending_fds = listen_fds;
    struct conf *prev = atomic_exchange(&w->pending_conf, c);
    BUG_ON(prev != NULL); /* main waits for each reload to be applied */
    worker_post(w, WORKER_MSG_CONF);
}

static void inbox_cb(struct ev_io *io, uint32_t events)
{
    struct worker *w = container_of(io, struct worker, inbox);
    (void)events;
    uint64_t v;
    ssize_t r = read(io->fd, &v, sizeof(v));
    (void)r;
    unsigned msg = atomic_exchange(&w->inbox_flags, 0);
    if (msg & WORKER_MSG_STOP) {
        w->loop.stop = true;
        return;
    }
    if (msg & WORKER_MSG_CONF)
        apply_conf(w);
    if (msg & WORKER_MSG_DRAIN)
        start_drain(w);
}

static void tick_cb(struct timer *t)
{
    struct worker *w = container_of(t, struct worker, tick);
    access_log_flush(w->alog);
    pool_close_draining(w); /* admin drain: idle connections go now */
    pool_trim(w);
    timer_set(&w->loop, &w->tick, clock_ms() + TICK_MS);
}

struct worker *worker_new(unsigned id, struct conf *conf, int *listen_fds)
{
    struct worker *w = xcalloc(1, sizeof(*w));
    w->id = id;
    w->conf = conf;
    conf_ref(conf);
    w->metrics = metrics_worker_new(id);
    w->snap = snap_new(conf); /* holds the reference just taken */
    listeners_build(w, conf, listen_fds);
    w->pools = xcalloc(conf->n_servers_total ? conf->n_servers_total : 1, sizeof(*w->pools));
    atomic_init(&w->inbox_flags, 0);
    w->inbox.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->inbox.cb = inbox_cb;
    return w;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    clock_update();
    w->rscratch = router_scratch_new();
    if (log_writer_active())
        w->alog = access_log_new();
    for (size_t i = 0; i < w->n_listeners; i++)
        if (loop_add_level(&w->loop, &w->listeners[i].io) < 0)
            log_error("worker %u: cannot watch listener: %s", w->id, strerror(errno));
    loop_add_level(&w->loop, &w->inbox);
    timer_init(&w->tick, tick_cb);
    timer_set(&w->loop, &w->tick, clock_ms() + TICK_MS);

    while (!w->loop.stop) {
        loop_run_once(&w->loop, 1000);
        if (w->draining && w->n_clients == 0)
            break;
    }

    /* Stop: whatever is still open is closed now. */
    close_listeners(w);
    while (w->clients)
        client_close(w->clients);
    pool_close_all(w);
    timer_cancel(&w->loop, &w->tick);
    /* Run the deferred releases queued by the closes above. */
    loop_run_once(&w->loop, 0);
    access_log_free(w->alog);
    w->alog = NULL;
    while (w->free_streams) {
        struct stream *st = w->free_streams;
        w->free_streams = st->next_free;
        free(st->head_copy);
        free(st);
    }
    router_scratch_free(w->rscratch);
    h2_thread_exit();
    stream_thread_exit();
    zenc_thread_exit();
    buf_cache_drain();
    atomic_store(&w->exited, true);
    return NULL;
}

int worker_start(struct worker *w)
{
    int rc = loop_init(&w->loop);
    if (rc < 0)
        return rc;
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    return rc ? -rc : 0;
}

void worker_post(struct worker *w, unsigned msg)
{
    atomic_fetch_or(&w->inbox_flags, msg);
    uint64_t one = 1;
    ssize_t r = write(w->inbox.fd, &one, sizeof(one));
    (void)r;
}

void worker_join_free(struct worker *w)
{
    pthread_join(w->thread, NULL);
    loop_destroy(&w->loop);
    /* Every stream ended with its client: all snapshots can go. */
    while (w->retired) {
        struct wsnap *s = w->retired;
        w->retired = s->next;
        snap_free(s);
    }
    snap_free(w->snap);
    /* Main waits for every reload to be applied, so this is only a stop that
     * raced one: its fds may be shared with the current set, so only memory
     * goes here (the process is exiting). */
    struct conf *pending = atomic_exchange(&w->pending_conf, NULL);
    if (pending) {
        free(w->pending_fds);
        conf_unref(pending);
    }
    free(w->pools);
    free(w->listeners);
    free(w->listen_fds);
    close(w->inbox.fd);
    metrics_worker_free(w->metrics);
    free(w);
}
