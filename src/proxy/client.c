/* client.c - a downstream HTTP/1.1 connection: accepting it, reading and
 * parsing request heads (pipelined requests in order), keep-alive, the
 * client-side timers (header, keep-alive, body, send) and closing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/common.h"
#include "filters/cache_store.h"
#include "http/h1_parse.h"
#include "log/errlog.h"
#include "log/metrics.h"
#include "net/sock.h"
#include "net/tls.h"
#include "proxy/engine.h"
#include "proxy/h2.h"

static void client_io_cb(struct ev_io *io, uint32_t events);
static void client_timer_cb(struct timer *t);

static void client_free_deferred(struct deferred *d)
{
    struct client *cl = container_of(d, struct client, dfr);
    if (cl->run_queued) {
        /* Its scheduled run (client_run_deferred) is still in the deferred
         * list: free after it has seen the client dead. */
        loop_defer(&cl->w->loop, &cl->dfr);
        return;
    }
    conf_unref(cl->conf);
    free(cl);
}

static void client_run_deferred(struct deferred *d)
{
    struct client *cl = container_of(d, struct client, run_dfr);
    cl->run_queued = false;
    if (cl->state != CL_DEAD)
        client_run(cl);
}

void client_schedule(struct client *cl)
{
    if (cl->run_queued || cl->state == CL_DEAD)
        return;
    cl->run_queued = true;
    cl->run_dfr.fn = client_run_deferred;
    loop_defer(&cl->w->loop, &cl->run_dfr);
}

/* Buffer for request heads: the whole head must fit, since it is parsed in
 * place. */
static size_t client_buf_size(const struct conf *c)
{
    size_t need = c->limits.max_header_bytes + 1024;
    return need <= BUF_STD_SIZE ? BUF_STD_SIZE : need;
}

void client_accept(struct wlistener *wl, int fd, const struct sockaddr *sa, socklen_t len)
{
    struct worker *w = wl->w;
    struct client *cl = xcalloc(1, sizeof(*cl));
    cl->io.fd = fd;
    cl->io.cb = client_io_cb;
    if (wl->cl->tls) {
        if (xport_init_tls(&cl->x, fd, wl->cl->tls) < 0) {
            close(fd);
            free(cl);
            atomic_fetch_sub_explicit(&g_conn_count, 1, memory_order_relaxed);
            return;
        }
    } else {
        xport_init_tcp(&cl->x, fd);
    }
    cl->w = w;
    cl->listener = wl->cl;
    cl->conf = w->conf; /* the listener lives in it */
    conf_ref(cl->conf);
    memcpy(&cl->peer.ss, sa, len);
    cl->peer.len = len;
    cl->peer_ip_len = (uint8_t)addr_ip_str(sa, cl->peer_ip, sizeof(cl->peer_ip));
    cl->state = CL_HEAD;
    cl->state_since = cl->last_read = cl->last_write = clock_ms();
    /* Deferred accept: data is usually there already; try before waiting. */
    cl->can_read = true;
    cl->can_write = true;
    timer_init(&cl->timer, client_timer_cb);
    if (loop_add(&w->loop, &cl->io) < 0) {
        xport_close(&cl->x);
        conf_unref(cl->conf);
        free(cl);
        atomic_fetch_sub_explicit(&g_conn_count, 1, memory_order_relaxed);
        return;
    }
    cl->next = w->clients;
    if (w->clients)
        w->clients->prev = cl;
    w->clients = cl;
    w->n_clients++;
    metrics_conn_open(cl);
    timer_set(&w->loop, &cl->timer, cl->state_since + w->conf->timeouts.client_header_ms);
    client_run(cl);
}

/* ---- internal connections (cache refresh) ---- */

static ssize_t null_read(struct xport *x, void *p, size_t n)
{
    (void)x;
    (void)p;
    (void)n;
    return IO_AGAIN;
}

static ssize_t null_writev(struct xport *x, const struct iovec *iov, int n)
{
    (void)x;
    size_t t = 0;
    for (int i = 0; i < n; i++)
        t += iov[i].iov_len;
    return (ssize_t)t;
}

static void null_close(struct xport *x)
{
    x->fd = -1;
}

/* Reads nothing and swallows every response byte. */
static const struct xport_ops null_ops = {.read = null_read, .writev = null_writev,
                                          .close = null_close};

struct client *client_internal(struct worker *w, const struct client *like, const char *head,
                               size_t len)
{
    size_t size = client_buf_size(w->conf);
    if (len > size)
        return NULL;
    struct client *cl = xcalloc(1, sizeof(*cl));
    cl->io.fd = -1;
    cl->x.ops = &null_ops;
    cl->x.fd = -1;
    cl->w = w;
    cl->listener = like->listener;
    cl->conf = like->conf;
    conf_ref(cl->conf);
    cl->peer = like->peer;
    memcpy(cl->peer_ip, like->peer_ip, sizeof(cl->peer_ip));
    cl->peer_ip_len = like->peer_ip_len;
    cl->state = CL_HEAD;
    cl->state_since = cl->last_read = cl->last_write = clock_ms();
    cl->can_read = cl->can_write = true;
    cl->refresh = true;
    cl->rbuf = buf_get(size);
    buf_append(cl->rbuf, head, len);
    timer_init(&cl->timer, client_timer_cb);
    atomic_fetch_add_explicit(&g_conn_count, 1, memory_order_relaxed);
    cl->next = w->clients;
    if (w->clients)
        w->clients->prev = cl;
    w->clients = cl;
    w->n_clients++;
    timer_set(&w->loop, &cl->timer, cl->state_since + w->conf->timeouts.client_header_ms);
    return cl;
}

void client_close(struct client *cl)
{
    struct worker *w = cl->w;
    if (cl->state == CL_DEAD)
        return;
    metrics_conn_close(cl);
    if (cl->stream) {
        struct stream *st = cl->stream;
        cl->stream = NULL;
        if (st->up)
            upstream_release(st, false);
        stream_put(st);
    }
    if (cl->h2)
        h2_free(cl);
    if (cl->refresh_obj) { /* an internal request that never started */
        cache_fill_release(g_cache_store, cl->refresh_obj->key, cl->refresh_obj->key_len);
        cache_obj_put(cl->refresh_obj);
        cl->refresh_obj = NULL;
    }
    cl->state = CL_DEAD;
    timer_cancel(&w->loop, &cl->timer);
    xport_close(&cl->x);
    cl->io.dead = true;
    buf_put(cl->rbuf);
    cl->rbuf = NULL;
    buf_put(cl->wbuf);
    cl->wbuf = NULL;
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        w->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    w->n_clients--;
    atomic_fetch_sub_explicit(&g_conn_count, 1, memory_order_relaxed);
    cl->dfr.fn = client_free_deferred;
    loop_defer(&w->loop, &cl->dfr);
}

ssize_t client_fill(struct client *cl)
{
    if (!cl->rbuf)
        cl->rbuf = buf_get(client_buf_size(cl->w->conf));
    ssize_t n = xport_fill(&cl->x, cl->rbuf, &cl->can_read, &cl->can_write, cl->rdhup);
    if (n > 0) {
        cl->last_read = clock_ms();
    } else if (n != IO_AGAIN) {
        cl->eof = true;
        cl->can_read = false;
    }
    return n;
}

/* Sends a final error for a request that could not be parsed, then closes. */
static int client_fail(struct client *cl, int status)
{
    struct stream *st = stream_get(cl->w, cl);
    memset(&st->req, 0, sizeof(st->req));
    st->req.version = 11;
    cl->stream = st;
    st->start_us = clock_mono_us();
    st->req_id_len = 0;
    stream_error(st, status);
    st->close_client = true;
    cl->state = CL_BUSY;
    return STEP_AGAIN;
}

/* Copies the parsed head out of the read buffer so the buffer can be reused
 * for the body while the request (for logs, rules, retries) stays valid. */
static void stream_keep_head(struct stream *st, const char *base, size_t len)
{
    if (st->head_cap < len) {
        free(st->head_copy);
        st->head_cap = len < 1024 ? 1024 : len;
        st->head_copy = xmalloc(st->head_cap);
    }
    memcpy(st->head_copy, base, len);
    ptrdiff_t d = st->head_copy - base;
    struct http_request *rq = &st->req;
#define REBASE(s)                                                                      \
    do {                                                                               \
        if ((s).p)                                                                     \
            (s).p += d;                                                                \
    } while (0)
    REBASE(rq->method);
    REBASE(rq->target);
    REBASE(rq->scheme);
    REBASE(rq->authority);
    REBASE(rq->path);
    REBASE(rq->query);
    REBASE(rq->upgrade);
    for (unsigned i = 0; i < rq->framing.n_conn_tokens; i++)
        REBASE(rq->framing.conn_tokens[i]);
    for (unsigned i = 0; i < rq->n_headers; i++) {
        REBASE(rq->headers[i].name);
        REBASE(rq->headers[i].value);
    }
#undef REBASE
}

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Decides, before the first request, whether the connection speaks HTTP/2:
 * ALPN "h2" on TLS, or the connection preface on an h2c listener. Returns 1
 * when it switched, 0 to stay HTTP/1.1, -1 to wait for more bytes. */
static int maybe_h2(struct client *cl)
{
    if (cl->requests || cl->h2)
        return 0;
    bool want = false;
    if (cl->x.ssl) {
        const char *alpn = tls_alpn(&cl->x);
        want = alpn && strcmp(alpn, "h2") == 0;
    } else if (cl->listener->h2c && cl->rbuf) {
        size_t n = MIN(buf_len(cl->rbuf), sizeof(h2_preface) - 1);
        if (memcmp(buf_rptr(cl->rbuf), h2_preface, n) != 0)
            return 0;
        if (n < sizeof(h2_preface) - 1)
            return -1;
        want = true;
    }
    if (!want)
        return 0;
    if (h2_start(cl) != 0)
        return 0;
    metrics_conn_h2(cl);
    return 1;
}

static int client_do_head(struct client *cl)
{
    struct worker *w = cl->w;
    const struct conf *c = w->conf;
    for (;;) {
        if (cl->rbuf && buf_len(cl->rbuf)) {
            int h2 = maybe_h2(cl);
            if (h2 > 0)
                return STEP_AGAIN;
            if (h2 < 0)
                goto read_more;
            if (cl->state == CL_IDLE) {
                /* The header deadline is armed by client_rearm() only if the
                 * head turns out incomplete. */
                cl->state = CL_HEAD;
                cl->state_since = clock_ms();
            }
            if (w->draining && cl->requests > 0) {
                client_close(cl);
                return STEP_GONE;
            }
            struct stream *st = stream_get(w, cl);
            struct h1_limits lim = {.max_request_line = c->limits.max_request_line,
                                    .max_header_bytes = c->limits.max_header_bytes};
            ssize_t n = h1_parse_request(buf_rptr(cl->rbuf), buf_len(cl->rbuf), &st->req, &lim);
            if (n > 0) {
                stream_keep_head(st, buf_rptr(cl->rbuf), (size_t)n);
                buf_consume(cl->rbuf, (size_t)n);
                cl->stream = st;
                cl->state = CL_BUSY;
                return stream_start(st);
            }
            stream_put(st);
            if (n < 0) {
                log_debug("client %s: bad request (%d)", cl->peer_ip, (int)-n);
                return client_fail(cl, (int)-n);
            }
            if (buf_room(cl->rbuf) == 0 && cl->rbuf->head == 0)
                return client_fail(cl, 431);
        }
    read_more:
        if (!cl->can_read)
            break;
        ssize_t r = client_fill(cl);
        if (r == IO_AGAIN)
            break;
        if (r > 0 && cl->x.ssl && !cl->requests && maybe_h2(cl) > 0)
            return STEP_AGAIN;
        if (r < 0) {
            client_close(cl);
            return STEP_GONE;
        }
    }
    /* Idle with nothing buffered: give the buffer back (memory per idle
     * keep-alive connection stays small). */
    if (cl->rbuf && buf_len(cl->rbuf) == 0) {
        buf_put(cl->rbuf);
        cl->rbuf = NULL;
    }
    return STEP_WAIT;
}

void client_rearm(struct client *cl)
{
    struct worker *w = cl->w;
    const struct conf *c = w->conf;
    switch (cl->state) {
    case CL_HEAD:
        timer_set(&w->loop, &cl->timer, cl->state_since + c->timeouts.client_header_ms);
        break;
    case CL_IDLE:
        timer_set(&w->loop, &cl->timer,
                  cl->state_since + (w->draining ? 0 : c->timeouts.keepalive_ms));
        break;
    case CL_H2: {
        uint64_t when = h2_deadline(cl);
        if (when)
            timer_set(&w->loop, &cl->timer, when);
        else
            timer_cancel(&w->loop, &cl->timer);
        break;
    }
    case CL_BUSY: {
        struct stream *st = cl->stream;
        uint64_t when = 0;
        if (!cl->can_write && ((st->resp_out && buf_len(st->resp_out)) ||
                               st->resp_body.raw_pending || st->hit_off < st->hit_end))
            when = cl->last_write + st->conf->timeouts.send_ms;
        else if (!st->req_body.done && st->up && st->up->state == UP_ACTIVE &&
                 !st->req_body.raw_pending && !st->tunnel)
            when = cl->last_read + st->conf->timeouts.client_body_ms;
        /* Nothing to time on the client side (the upstream side has its own
         * timer): park the timer far out instead of cancelling it, so that the
         * next request's deadlines are usually lazy updates, not heap work. */
        timer_set(&w->loop, &cl->timer, when ? when : clock_ms() + c->timeouts.keepalive_ms + 1000);
        break;
    }
    default:
        break;
    }
}

void client_run(struct client *cl)
{
    for (int guard = 0; guard < 64; guard++) {
        int r;
        switch (cl->state) {
        case CL_HEAD:
        case CL_IDLE:
            r = client_do_head(cl);
            break;
        case CL_BUSY:
            r = stream_pump(cl->stream);
            break;
        case CL_H2:
            r = h2_run(cl);
            break;
        default:
            return;
        }
        if (r == STEP_GONE)
            return;
        if (r == STEP_WAIT) {
            client_rearm(cl);
            if (cl->stream && cl->stream->up)
                upconn_rearm(cl->stream->up);
            return;
        }
    }
    client_schedule(cl);
}

static void client_io_cb(struct ev_io *io, uint32_t events)
{
    struct client *cl = container_of(io, struct client, io);
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        cl->can_read = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        cl->rdhup = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        cl->can_write = true;
    client_run(cl);
}

static void client_timer_cb(struct timer *t)
{
    struct client *cl = container_of(t, struct client, timer);
    uint64_t now = clock_ms();
    const struct conf *c = cl->w->conf;
    switch (cl->state) {
    case CL_HEAD:
        if (now < cl->state_since + c->timeouts.client_header_ms) {
            client_rearm(cl);
            return;
        }
        if (cl->rbuf && buf_len(cl->rbuf)) {
            client_fail(cl, 408);
            client_run(cl);
        } else {
            client_close(cl);
        }
        return;
    case CL_IDLE:
        client_close(cl);
        return;
    case CL_H2: {
        if (h2_expired(cl, now)) {
            /* Idle, or a client that stopped reading (zero window, full socket). */
            h2_terminate(cl);
            client_close(cl);
            return;
        }
        client_rearm(cl);
        return;
    }
    case CL_BUSY: {
        struct stream *st = cl->stream;
        if (!cl->can_write && ((st->resp_out && buf_len(st->resp_out)) ||
                               st->resp_body.raw_pending || st->hit_off < st->hit_end)) {
            if (now >= cl->last_write + st->conf->timeouts.send_ms) {
                log_debug("client %s: send timeout", cl->peer_ip);
                stream_abort(st);
                return;
            }
        } else if (!st->req_body.done && !st->tunnel) {
            if (now >= cl->last_read + st->conf->timeouts.client_body_ms) {
                if (st->resp_started) {
                    stream_abort(st);
                    return;
                }
                stream_error(st, 408);
                client_run(cl);
                return;
            }
        }
        client_rearm(cl);
        return;
    }
    default:
        return;
    }
}
