/* upstream.c - upstream HTTP/1.1 connections: picking a server, connecting,
 * the per-worker keep-alive pool, failures (passive marking, retries,
 * 502/503/504) and the upstream-side timers. */
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/common.h"
#include "lb/balancer.h"
#include "lb/server.h"
#include "log/errlog.h"
#include "log/metrics.h"
#include "net/sock.h"
#include "net/tls.h"
#include "proxy/engine.h"
#include "proxy/h2.h"

static void upconn_io_cb(struct ev_io *io, uint32_t events);
static void upconn_timer_cb(struct timer *t);

static void upconn_free_deferred(struct deferred *d)
{
    struct upconn *up = container_of(d, struct upconn, dfr);
    free(up);
}

/* A resumable session this connection received goes to its server's pool
 * bucket (same snapshot only: buckets are per snapshot). */
static void upconn_keep_session(struct upconn *up)
{
    struct worker *w = up->w;
    if (!up->tls_session)
        return;
    tls_detach_session_slot(&up->x);
    if (up->snap == w->conf) {
        struct pool_bucket *b = &w->pools[up->server->gid];
        tls_session_free(b->tls_session);
        b->tls_session = up->tls_session;
    } else {
        tls_session_free(up->tls_session);
    }
    up->tls_session = NULL;
}

static void upconn_close(struct upconn *up)
{
    struct worker *w = up->w;
    timer_cancel(&w->loop, &up->timer);
    upconn_keep_session(up);
    if (up->io.fd >= 0) {
        xport_close(&up->x);
        up->io.fd = -1;
    }
    up->io.dead = true;
    buf_put(up->rbuf);
    up->rbuf = NULL;
    conf_unref(up->snap);
    up->snap = NULL;
    up->dfr.fn = upconn_free_deferred;
    loop_defer(&w->loop, &up->dfr);
}

/* ---- pool ---- */

static void pool_remove(struct worker *w, struct upconn *up)
{
    struct pool_bucket *b = &w->pools[up->server->gid];
    if (up->pprev)
        up->pprev->pnext = up->pnext;
    else
        b->head = up->pnext;
    if (up->pnext)
        up->pnext->pprev = up->pprev;
    up->pnext = up->pprev = NULL;
    b->count--;
}

static struct upconn *pool_take(struct worker *w, const struct conf_server *s)
{
    struct pool_bucket *b = &w->pools[s->gid];
    struct upconn *up = b->head;
    if (!up)
        return NULL;
    pool_remove(w, up);
    return up;
}

void pool_close_all(struct worker *w)
{
    if (!w->pools || !w->conf)
        return;
    for (size_t i = 0; i < w->conf->n_servers_total; i++) {
        while (w->pools[i].head) {
            struct upconn *up = w->pools[i].head;
            pool_remove(w, up);
            upconn_close(up);
        }
        tls_session_free(w->pools[i].tls_session);
        w->pools[i].tls_session = NULL;
    }
}

void pool_close_draining(struct worker *w)
{
    if (!w->pools || !w->conf)
        return;
    for (size_t i = 0; i < w->conf->n_upstreams; i++) {
        const struct conf_upstream *u = &w->conf->upstreams[i];
        for (size_t j = 0; j < u->n_servers; j++) {
            const struct conf_server *s = &u->servers[j];
            struct pool_bucket *b = &w->pools[s->gid];
            if (!b->head || !atomic_load_explicit(&s->state->draining, memory_order_relaxed))
                continue;
            while (b->head) {
                struct upconn *up = b->head;
                pool_remove(w, up);
                upconn_close(up);
            }
        }
    }
}

/* Idle connections beyond `keepalive` that have been idle this long are
 * closed by the worker's tick. A burst that briefly leaves more connections
 * idle than `keepalive` (many responses at once) keeps them for the next
 * burst instead of closing and reconnecting, up to POOL_BURST_CAP. */
#define POOL_SURPLUS_IDLE_MS 2000

void pool_trim(struct worker *w)
{
    if (!w->pools || !w->conf)
        return;
    uint64_t now = clock_ms();
    for (size_t i = 0; i < w->conf->n_upstreams; i++) {
        const struct conf_upstream *u = &w->conf->upstreams[i];
        for (size_t j = 0; j < u->n_servers; j++) {
            struct pool_bucket *b = &w->pools[u->servers[j].gid];
            if (b->count <= u->keepalive)
                continue;
            /* Most recently pooled first: skip the `keepalive` newest. */
            struct upconn *up = b->head;
            for (unsigned k = 0; up && k < u->keepalive; k++)
                up = up->pnext;
            while (up) {
                struct upconn *next = up->pnext;
                if (now >= up->last_read + POOL_SURPLUS_IDLE_MS) {
                    pool_remove(w, up);
                    upconn_close(up);
                }
                up = next;
            }
        }
    }
}

void upstream_release(struct stream *st, bool reuse)
{
    struct upconn *up = st->up;
    struct worker *w = st->w;
    st->up = NULL;
    up->stream = NULL;
    const struct conf_upstream *u = up->server->upstream;
    /* A connection whose close was already seen (edge-triggered: no event
     * will say so again) is not pooled. */
    if (reuse && !up->rdhup && !w->draining && up->snap == w->conf &&
        w->pools[up->server->gid].count < POOL_BURST_CAP(u->keepalive) &&
        !atomic_load_explicit(&up->server->state->draining, memory_order_relaxed)) {
        struct pool_bucket *b = &w->pools[up->server->gid];
        upconn_keep_session(up); /* new connections to the server may resume it */
        up->state = UP_IDLE;
        up->reused = true;
        up->pprev = NULL;
        up->pnext = b->head;
        if (b->head)
            b->head->pprev = up;
        b->head = up;
        b->count++;
        if (up->rbuf && buf_len(up->rbuf) == 0) {
            buf_put(up->rbuf);
            up->rbuf = NULL;
        }
        up->last_read = clock_ms();
        timer_set(&w->loop, &up->timer, up->last_read + st->conf->timeouts.keepalive_ms);
        return;
    }
    upconn_close(up);
}

/* ---- I/O ---- */

ssize_t upconn_fill(struct upconn *up)
{
    if (!up->rbuf)
        up->rbuf = buf_get(BUF_BIG_SIZE);
    ssize_t n = xport_fill(&up->x, up->rbuf, &up->can_read, &up->can_write, up->rdhup);
    if (n > 0)
        up->last_read = clock_ms();
    return n;
}

void upconn_rearm(struct upconn *up)
{
    struct stream *st = up->stream;
    if (!st)
        return;
    const struct conf_upstream *u = up->server->upstream;
    uint64_t when;
    if (up->state == UP_CONNECTING || up->state == UP_HANDSHAKE)
        return; /* armed once at connect time: the handshake is part of connecting */
    if (st->tunnel)
        when = MAX(up->last_read, up->last_write) + u->read_timeout_ms;
    else if (!st->req_sent && !up->can_write)
        when = up->last_write + u->write_timeout_ms;
    else
        when = up->last_read + u->read_timeout_ms;
    timer_set(&up->w->loop, &up->timer, when);
}

/* The TCP connection is up: begin TLS on it, offering the server's last
 * session for resumption. */
static int start_tls(struct upconn *up)
{
    struct worker *w = up->w;
    char host[256];
    server_host(up->server, host, sizeof(host));
    int rc = xport_init_tls_client(&up->x, up->io.fd, up->server->upstream->tls, host,
                                   (struct ssl_session_st **)&up->tls_session);
    if (rc == 0 && up->snap == w->conf) {
        /* Offer the pool's session: set it directly, the slot collects new ones. */
        void *sess = w->pools[up->server->gid].tls_session;
        if (sess)
            tls_offer_session(&up->x, sess);
    }
    return rc;
}

static void upconn_io_cb(struct ev_io *io, uint32_t events)
{
    struct upconn *up = container_of(io, struct upconn, io);
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        up->can_read = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        up->rdhup = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        up->can_write = true;
    if (up->state == UP_IDLE) {
        /* An idle pooled connection has nothing to say: data or a close means
         * it can no longer be used (over TLS, a late session ticket is fine). */
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            if (up->x.ssl && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
                tls_idle_check(&up->x) == 0)
                return;
            pool_remove(up->w, up);
            upconn_close(up);
        }
        return;
    }
    struct stream *st = up->stream;
    if (!st)
        return;
    if (up->state == UP_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = sock_error(io->fd);
        if (err || (events & EPOLLERR)) {
            log_warn("upstream %s: connect failed: %s", up->server->address,
                     strerror(err ? err : ECONNREFUSED));
            upstream_failed(st, UPF_CONNECT);
            stream_kick(st);
            return;
        }
        if (up->server->upstream->tls) {
            if (start_tls(up) < 0) {
                upstream_failed(st, UPF_CONNECT);
                stream_kick(st);
                return;
            }
            up->state = UP_HANDSHAKE;
        } else {
            up->state = UP_ACTIVE;
            up->last_write = up->last_read = clock_ms();
            server_mark_ok(up->server);
        }
    }
    if (up->state == UP_HANDSHAKE) {
        char why[256];
        int r = tls_handshake(&up->x, why, sizeof(why));
        if (r == IO_AGAIN || r == IO_WANT_WRITE)
            return;
        if (r < 0) {
            log_warn("upstream %s: tls: %s", up->server->address, why);
            upstream_failed(st, UPF_CONNECT);
            stream_kick(st);
            return;
        }
        up->state = UP_ACTIVE;
        up->can_read = up->can_write = true;
        up->last_write = up->last_read = clock_ms();
        server_mark_ok(up->server);
    }
    stream_kick(st);
}

static void upconn_timer_cb(struct timer *t)
{
    struct upconn *up = container_of(t, struct upconn, timer);
    if (up->state == UP_IDLE) {
        pool_remove(up->w, up);
        upconn_close(up);
        return;
    }
    struct stream *st = up->stream;
    if (!st)
        return;
    uint64_t now = clock_ms();
    const struct conf_upstream *u = up->server->upstream;
    if (up->state == UP_CONNECTING || up->state == UP_HANDSHAKE) {
        log_warn("upstream %s: connect timeout%s", up->server->address,
                 up->state == UP_HANDSHAKE ? " (tls handshake)" : "");
        upstream_failed(st, UPF_CONNECT_TIMEOUT);
    } else if (st->tunnel) {
        if (now < MAX(up->last_read, up->last_write) + u->read_timeout_ms) {
            upconn_rearm(up);
            return;
        }
        stream_abort(st);
        return;
    } else if (!st->req_sent && !up->can_write) {
        if (now < up->last_write + u->write_timeout_ms) {
            upconn_rearm(up);
            return;
        }
        upstream_failed(st, UPF_SEND_TIMEOUT);
    } else {
        if (now < up->last_read + u->read_timeout_ms) {
            upconn_rearm(up);
            return;
        }
        upstream_failed(st, UPF_READ_TIMEOUT);
    }
    stream_kick(st);
}

/* ---- attach, fail ---- */

static int attach_conn(struct stream *st, const struct conf_server *s)
{
    struct worker *w = st->w;
    /* Pools hold connections of the worker's current snapshot only. */
    struct upconn *up = st->conf == w->conf ? pool_take(w, s) : NULL;
    if (up) {
        /* Its idle deadline stays armed: upconn_rearm() moves it. */
        up->state = UP_ACTIVE;
        up->stream = st;
        up->last_read = up->last_write = clock_ms();
        st->up = up;
        return 0;
    }
    int fd = sock_connect(&s->addr);
    if (fd < 0)
        return fd;
    up = xcalloc(1, sizeof(*up));
    up->io.fd = fd;
    xport_init_tcp(&up->x, fd);
    up->io.cb = upconn_io_cb;
    up->w = w;
    up->server = s;
    up->snap = st->conf;
    conf_ref(up->snap);
    up->state = UP_CONNECTING;
    up->can_write = false;
    up->stream = st;
    timer_init(&up->timer, upconn_timer_cb);
    if (loop_add(&w->loop, &up->io) < 0) {
        int e = errno;
        close(fd);
        conf_unref(up->snap);
        free(up);
        return -(e ? e : EIO);
    }
    timer_set(&w->loop, &up->timer, clock_ms() + s->upstream->connect_timeout_ms);
    st->up = up;
    return 0;
}

static struct str lb_key(struct stream *st, const struct conf_upstream *u, char *tmp,
                         size_t cap)
{
    if (u->balance == LB_IP_HASH) {
        const struct sockaddr_storage *ss = &st->cl->peer.ss;
        if (ss->ss_family == AF_INET)
            return str_make((const char *)&((const struct sockaddr_in *)ss)->sin_addr, 4);
        if (ss->ss_family == AF_INET6)
            return str_make((const char *)&((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
        return STR_NULL;
    }
    if (u->balance == LB_HASH && u->hash_key) {
        size_t n = tmpl_expand(u->hash_key, fwd_tmpl_var, st, tmp, cap);
        return str_make(tmp, n < cap ? n : cap);
    }
    return STR_NULL;
}

void upstream_release_server(struct stream *st)
{
    const struct conf_server *s = st->server;
    if (!s)
        return;
    const struct conf_upstream *u = s->upstream;
    balancer_for(u->balance)->release(st->snap->lb_state[u->index], s);
    atomic_fetch_sub_explicit(&s->state->active, 1, memory_order_relaxed);
    st->server = NULL;
}

/* Claims a slot under the server's max_connections; false when it is full.
 * The in-flight count is kept for every server (admin /status, draining). */
static bool server_claim(const struct conf_server *s)
{
    unsigned max = s->upstream->max_connections;
    if (!max) {
        atomic_fetch_add_explicit(&s->state->active, 1, memory_order_relaxed);
        return true;
    }
    unsigned cur = atomic_load_explicit(&s->state->active, memory_order_relaxed);
    do {
        if (cur >= max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&s->state->active, &cur, cur + 1,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void upstream_reject_full(struct stream *st)
{
    static const char body[] = "503 Service Unavailable\n";
    static const char hdr[] = "Retry-After: 1\r\n";
    stream_respond(st, 503, NULL, body, sizeof(body) - 1, hdr, sizeof(hdr) - 1);
}

int upstream_attach(struct stream *st)
{
    const struct conf_upstream *u = st->route->upstream;
    const struct balancer_ops *ops = balancer_for(u->balance);
    void *lbs = st->snap->lb_state[u->index];
    char keybuf[1024];
    bool saw_full = false;
    upstream_begin(st, u);
    for (;;) {
        struct lb_pick_ctx ctx = {.now_ms = clock_ms(),
                                  .key = lb_key(st, u, keybuf, sizeof(keybuf)),
                                  .tried = st->tried};
        const struct conf_server *s = ops->pick(lbs, u, &ctx);
        if (!s) {
            if (saw_full && !st->attempts) {
                /* Every server is at its limit: wait for a slot (max_pending)
                 * or shed load at once. */
                if (upstream_enqueue(st, u))
                    return STEP_AGAIN;
                upstream_reject_full(st);
                return STEP_AGAIN;
            }
            stream_error(st, st->attempts ? 502 : 503);
            return STEP_AGAIN;
        }
        if (s->index < sizeof(st->tried) * 8)
            lb_set_tried(st->tried, s->index);
        if (!server_claim(s)) {
            ops->release(lbs, s);
            saw_full = true;
            if (s->index >= sizeof(st->tried) * 8) {
                stream_error(st, 503);
                return STEP_AGAIN;
            }
            continue;
        }
        st->server = s;
        st->log_server = s;
        st->attempts++;
        if (!st->up_start_us)
            st->up_start_us = clock_mono_us();
        int rc = attach_conn(st, s);
        if (rc == 0)
            return STEP_AGAIN;
        log_warn("upstream %s: connect failed: %s", s->address, strerror(-rc));
        server_mark_failed(s, clock_ms());
        metrics_connect_error(st, s);
        upstream_note_failure(s, UPF_CONNECT, -rc);
        upstream_release_server(st);
        if (!(u->retry_on & RETRY_CONNECT) || !upstream_may_retry(st, u, false)) {
            stream_error(st, 502);
            return STEP_AGAIN;
        }
        upstream_prepare_replay(st);
    }
}

static bool method_idempotent(enum http_method m)
{
    return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_PUT || m == HTTP_M_DELETE ||
           m == HTTP_M_OPTIONS || m == HTTP_M_TRACE;
}

int upstream_failed(struct stream *st, enum upfail why)
{
    struct upconn *up = st->up;
    const struct conf_server *s = st->server;
    const struct conf_upstream *u = s->upstream;
    bool reused = up && up->reused;
    if (up)
        upstream_release(st, false);
    upstream_release_server(st);

    bool connect_fail = why == UPF_CONNECT || why == UPF_CONNECT_TIMEOUT;
    if (connect_fail) {
        server_mark_failed(s, clock_ms());
        metrics_connect_error(st, s);
    }
    if (st->resp_head_done)
        return stream_abort(st);

    bool nothing_sent = st->req_body_sent == 0;
    /* A pooled connection the origin closed just as it was reused: the request
     * never reached it. Retry on a fresh connection without counting it. */
    if (reused && nothing_sent && (why == UPF_SEND || why == UPF_EOF_BEFORE_HEAD) &&
        method_idempotent(st->req.method_id) && st->attempts <= u->retries + 8) {
        if (s->index < sizeof(st->tried) * 8)
            st->tried[s->index / 8] &= (uint8_t)~(1u << (s->index % 8));
        st->attempts--;
        upstream_prepare_replay(st);
        return upstream_attach(st);
    }
    upstream_note_failure(s, why, connect_fail ? ECONNREFUSED : 0);
    /* Another server, when retry_on names this failure (see retry.c). */
    unsigned cond = connect_fail ? RETRY_CONNECT
                    : (why == UPF_READ_TIMEOUT || why == UPF_SEND_TIMEOUT) ? RETRY_TIMEOUT
                    : (why == UPF_SEND || why == UPF_EOF_BEFORE_HEAD)      ? RETRY_RESET
                                                                           : 0;
    if ((u->retry_on & cond) && upstream_may_retry(st, u, !connect_fail)) {
        upstream_prepare_replay(st);
        return upstream_attach(st);
    }
    int status = (why == UPF_READ_TIMEOUT || why == UPF_CONNECT_TIMEOUT ||
                  why == UPF_SEND_TIMEOUT)
                     ? 504
                     : 502;
    stream_error(st, status);
    return STEP_AGAIN;
}
