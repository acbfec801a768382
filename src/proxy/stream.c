/* stream.c - one request's lifecycle on a client connection: routing, the
 * route action (respond, redirect, proxy), pumping both body directions with
 * back-pressure, local and error responses, and the end of the exchange
 * (access log, upstream connection back to the pool, keep-alive or close). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "core/common.h"
#include "http/h1_parse.h"
#include "lb/balancer.h"
#include "net/sock.h"
#include "filters/cache_store.h"
#include "proxy/engine.h"
#include "proxy/h2.h"
#include "proxy/router.h"

struct stream *stream_get(struct worker *w, struct client *cl)
{
    struct stream *st = w->free_streams;
    if (st) {
        w->free_streams = st->next_free;
    } else {
        st = xcalloc(1, sizeof(*st));
    }
    char *hc = st->head_copy;
    size_t hcap = st->head_cap;
    /* Only the fields before `req` need resetting; the message is filled by
     * the parser. */
    memset(st, 0, offsetof(struct stream, req));
    st->head_copy = hc;
    st->head_cap = hcap;
    memset(&st->req_id, 0, sizeof(*st) - offsetof(struct stream, req_id));
    st->w = w;
    st->cl = cl;
    st->conf = w->conf;
    st->snap = w->snap;
    w->snap->streams++;
    return st;
}

void stream_put(struct stream *st)
{
    struct worker *w = st->w;
    if (st->snap) {
        st->snap->streams--;
        if (st->snap != w->snap && st->snap->streams == 0)
            worker_retire_snaps(w);
        st->snap = NULL;
    }
    stream_retry_end(st);
    buf_put(st->req_head);
    st->req_head = NULL;
    buf_put(st->resp_out);
    st->resp_out = NULL;
    buf_put(st->h2_in);
    st->h2_in = NULL;
    relay_free(&st->req_body);
    relay_free(&st->resp_body);
    bf_end(st);
    cache_stream_end(st);
    free(st->h2_trailers);
    st->h2_trailers = NULL;
    if (st->head_cap > 64 * 1024) {
        free(st->head_copy);
        st->head_copy = NULL;
        st->head_cap = 0;
    }
    st->next_free = w->free_streams;
    w->free_streams = st;
}

static void ensure_resp_out(struct stream *st, size_t need)
{
    if (st->resp_out && st->resp_out->size - buf_len(st->resp_out) >= need)
        return;
    size_t size = need <= BUF_STD_SIZE ? BUF_STD_SIZE : need;
    struct buf *nb = buf_get(size);
    if (st->resp_out) {
        buf_append(nb, buf_rptr(st->resp_out), buf_len(st->resp_out));
        buf_put(st->resp_out);
    }
    st->resp_out = nb;
}

void stream_kick(struct stream *st)
{
    struct client *cl = st->cl;
    if (cl->h2 && cl->state != CL_DEAD)
        h2_stream_kick(st);
    else
        client_run(cl);
}

bool stream_client_keeps_alive(const struct stream *st)
{
    const struct http_request *rq = &st->req;
    return !(st->w->draining || rq->framing.conn_close || st->conf->timeouts.keepalive_ms == 0 ||
             (rq->version == 10 && !rq->framing.conn_keep_alive));
}

/* ---- local responses ---- */

void stream_respond(struct stream *st, int status, const char *ctype, const char *body,
                    size_t body_len, const char *extra, size_t extra_len)
{
    if (st->up)
        upstream_release(st, false);
    upstream_release_server(st);
    if (st->cl->h2) {
        st->resp_head_done = true;
        st->resp_started = true;
        st->finishing = true;
        relay_init(&st->resp_body, RIN_NONE, ROUT_RAW, 0);
        h2_submit_local(st, status, ctype, body, body_len, extra, extra_len);
        return;
    }
    /* Keep an unsent 100-continue out: the final status replaces it. */
    if (st->resp_out)
        st->resp_out->head = st->resp_out->tail = 0;
    if (!st->req_body.done || !stream_client_keeps_alive(st) || status == 400 ||
        status == 408 || status == 413 || status == 414 || status == 431 || status == 505)
        st->close_client = true;
    ensure_resp_out(st, body_len + extra_len + 1024);
    struct buf *out = st->resp_out;
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "X-Request-Id: %.*s\r\n%s",
                     status, http_status_text(status), ctype ? ctype : "text/plain; charset=utf-8",
                     st->is_head ? 0 : body_len, (int)st->req_id_len, st->req_id,
                     st->close_client ? "Connection: close\r\n" : "");
    if (st->is_head)
        body_len = 0;
    buf_append(out, head, (size_t)n);
    if (extra)
        buf_append(out, extra, extra_len);
    if (status < 500 && status != 408 && fwd_response_rules(st, out) < 0) {
        /* Rules that do not fit are dropped rather than failing the reply. */
    }
    buf_append(out, "\r\n", 2);
    if (body_len)
        buf_append(out, body, body_len);
    st->status = status;
    st->resp_head_done = true;
    st->resp_started = true;
    st->finishing = true;
    relay_init(&st->resp_body, RIN_NONE, ROUT_RAW, 0);
}

void stream_error(struct stream *st, int status)
{
    if (st->stale && status >= 500 && cache_serve_stale_on_error(st))
        return;
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, http_status_text(status));
    stream_respond(st, status, NULL, body, (size_t)n, NULL, 0);
}

/* ---- start ---- */

static int start_proxy(struct stream *st)
{
    if (st->route->cache) {
        int r = cache_request(st);
        if (r == CG_DONE)
            return STEP_AGAIN;
        if (r == CG_WAIT)
            return STEP_WAIT;
    }
    return stream_proxy_go(st);
}

int stream_proxy_go(struct stream *st)
{
    const struct http_request *rq = &st->req;
    st->req_head = buf_get(rq->head_len + 2048 <= BUF_STD_SIZE ? BUF_STD_SIZE
                                                               : rq->head_len + 4096);
    if (fwd_request_head(st) < 0) {
        stream_error(st, 431);
        return STEP_AGAIN;
    }
    if (rq->framing.chunked && rq->version == 20)
        relay_init(&st->req_body, RIN_EOF, ROUT_CHUNK, 0); /* DATA frames -> chunks */
    else if (rq->framing.chunked)
        relay_init(&st->req_body, RIN_CHUNKED, ROUT_RAW, 0);
    else if (rq->framing.has_content_length)
        relay_init(&st->req_body, RIN_LENGTH, ROUT_RAW, rq->framing.content_length);
    else
        relay_init(&st->req_body, RIN_NONE, ROUT_RAW, 0);
    if (rq->expect_continue && rq->version == 11 && !st->req_body.done &&
        !(st->cl->rbuf && buf_len(st->cl->rbuf))) {
        ensure_resp_out(st, 64);
        buf_append(st->resp_out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        st->expect_sent = true;
    }
    return upstream_attach(st);
}

int stream_start(struct stream *st)
{
    struct client *cl = st->cl;
    const struct conf *c = st->conf;
    const struct http_request *rq = &st->req;

    st->start_us = clock_mono_us();
    st->is_head = rq->method_id == HTTP_M_HEAD;
    st->bytes_in = rq->head_len;
    fwd_prepare(st);
    cl->requests++;

    /* Until the body is known to be consumed, the connection cannot be reused. */
    st->req_body.done = !rq->framing.chunked &&
                        !(rq->framing.has_content_length && rq->framing.content_length);

    if (c->limits.max_body_bytes && rq->framing.has_content_length &&
        rq->framing.content_length > c->limits.max_body_bytes) {
        stream_error(st, 413);
        return STEP_AGAIN;
    }
    if (rq->method_id == HTTP_M_CONNECT) {
        stream_error(st, 405);
        return STEP_AGAIN;
    }
    if (cl->listener->redirect_https) {
        char loc[8192];
        struct str host = fwd_tmpl_var(st, TMPL_HOST, STR_NULL);
        struct str uri = fwd_tmpl_var(st, TMPL_URI, STR_NULL);
        int n = snprintf(loc, sizeof(loc), "Location: https://%.*s%.*s\r\n", STR_FMT(host),
                         STR_FMT(uri));
        if (n >= (int)sizeof(loc))
            n = sizeof(loc) - 1;
        stream_respond(st, 308, NULL, "", 0, loc, (size_t)n);
        return STEP_AGAIN;
    }

    st->route = router_match(c, rq->authority, rq->path, rq->method_id, rq->method,
                             st->w->rscratch);
    if (!st->route) {
        stream_error(st, 404);
        return STEP_AGAIN;
    }
    switch (st->route->action) {
    case ROUTE_RESPOND:
        stream_respond(st, st->route->respond_status, st->route->respond_content_type,
                       st->route->respond_body, st->route->respond_body_len, NULL, 0);
        return STEP_AGAIN;
    case ROUTE_REDIRECT: {
        char loc[8192];
        memcpy(loc, "Location: ", 10);
        size_t cap = sizeof(loc) - 12;
        size_t n = tmpl_expand(st->route->redirect_to, fwd_tmpl_var, st, loc + 10, cap);
        if (n > cap)
            n = cap;
        for (size_t k = 10; k < 10 + n; k++)
            if (loc[k] == '\r' || loc[k] == '\n' || loc[k] == '\0')
                loc[k] = '_';
        memcpy(loc + 10 + n, "\r\n", 2);
        stream_respond(st, st->route->redirect_status, NULL, "", 0, loc, n + 12);
        return STEP_AGAIN;
    }
    default:
        return start_proxy(st);
    }
}

/* ---- finish ---- */

static int stream_finish(struct stream *st)
{
    struct client *cl = st->cl;
    if (cl->h2) {
        /* The DATA provider sends END_STREAM once it sees the body done;
         * h2_stream_end() releases the upstream side then. */
        h2_flush_stream(st);
        return STEP_WAIT;
    }
    if (st->up) {
        bool reuse = st->up_reusable && st->req_sent && st->resp_body.done && !st->tunnel &&
                     !st->resp_body.eof_seen && (!st->up->rbuf || buf_len(st->up->rbuf) == 0);
        upstream_release(st, reuse);
    }
    upstream_release_server(st);
    stream_log(st);
    bool close = st->close_client || !st->req_body.done || cl->eof;
    cl->stream = NULL;
    stream_put(st);
    if (close) {
        client_close(cl);
        return STEP_GONE;
    }
    cl->state = CL_IDLE;
    cl->state_since = clock_ms();
    return STEP_AGAIN;
}

int stream_abort(struct stream *st)
{
    struct client *cl = st->cl;
    if (cl->h2) {
        h2_reset(st);
        return STEP_WAIT;
    }
    if (st->up)
        upstream_release(st, false);
    upstream_release_server(st);
    if (!st->status)
        st->status = 499;
    stream_log(st);
    cl->stream = NULL;
    stream_put(st);
    client_close(cl);
    return STEP_GONE;
}

/* ---- pumping ---- */

/* Writes pending response bytes (resp_out, then raw body bytes held in the
 * upstream buffer) to the client. */
static int flush_client(struct stream *st)
{
    struct client *cl = st->cl;
    if (cl->h2)
        return h2_flush_stream(st);
    struct buf *out = st->resp_out;
    size_t olen = out ? buf_len(out) : 0;
    size_t raw = st->resp_body.raw_pending;
    if (st->hit)
        raw = (size_t)(st->hit_end - st->hit_off); /* body straight from the cached object */
    if (!olen && !raw)
        return PUMP_IDLE;
    if (!cl->can_write)
        return PUMP_IDLE;
    struct iovec iov[2];
    int n = 0;
    if (olen)
        iov[n++] = (struct iovec){buf_rptr(out), olen};
    if (raw && st->hit)
        iov[n++] = (struct iovec){st->hit->body + st->hit_off, raw};
    else if (raw)
        iov[n++] = (struct iovec){buf_rptr(st->up->rbuf), raw};
    ssize_t w = xport_writev(&cl->x, iov, n);
    if (w == IO_AGAIN) {
        cl->can_write = false;
        return PUMP_IDLE;
    }
    if (w == IO_WANT_READ) {
        /* TLS needs to receive before it can send on: retry once readable. */
        cl->can_read = false;
        return PUMP_IDLE;
    }
    if (w < 0)
        return stream_abort(st), PUMP_STOP;
    cl->last_write = clock_ms();
    st->bytes_out += (uint64_t)w;
    size_t k = (size_t)w;
    if (olen) {
        size_t a = k < olen ? k : olen;
        buf_consume(out, a);
        k -= a;
    }
    if (k && st->hit) {
        st->hit_off += k;
    } else if (k) {
        buf_consume(st->up->rbuf, k);
        st->resp_body.raw_pending -= (uint32_t)k;
    }
    if ((size_t)w < olen + raw)
        cl->can_write = false;
    return PUMP_PROGRESS;
}

/* Where the request body comes from: the client's read buffer for HTTP/1.1,
 * the stream's DATA buffer for HTTP/2. */
static inline struct buf *req_src(struct stream *st)
{
    return st->cl->h2 ? st->h2_in : st->cl->rbuf;
}

/* Raw body bytes left for the upstream: drop them from the source. */
static inline void req_taken(struct stream *st, struct buf *src, size_t k)
{
    if (st->copy_body) /* kept for a replay on another server (retry.c) */
        stream_keep_body(st, buf_rptr(src), k);
    buf_consume(src, k);
    st->req_body_sent += k;
    st->bytes_in += k;
    if (st->cl->h2)
        h2_consumed(st, k);
}

/* Body bytes were copied, reframed, into req_head (the source already
 * consumed them). */
static inline void req_taken_copy(struct stream *st, size_t k)
{
    st->req_body_sent += k;
    st->bytes_in += k;
    if (st->cl->h2)
        h2_consumed(st, k);
}

/* Request direction: head and body to the upstream. */
static int pump_request(struct stream *st)
{
    struct client *cl = st->cl;
    struct upconn *up = st->up;
    const struct conf *c = st->conf;
    int progress = PUMP_IDLE;
    for (;;) {
        struct buf *src = req_src(st);
        size_t hrem = st->req_head ? st->req_head->tail - st->req_head_off : 0;
        size_t raw = st->req_body.raw_pending;
        if (hrem || raw) {
            if (!up->can_write)
                return progress;
            struct iovec iov[2];
            int n = 0;
            if (hrem)
                iov[n++] = (struct iovec){st->req_head->data + st->req_head_off, hrem};
            if (raw)
                iov[n++] = (struct iovec){buf_rptr(src), raw};
            ssize_t w = xport_writev(&up->x, iov, n);
            if (w == IO_AGAIN) {
                up->can_write = false;
                return progress;
            }
            if (w == IO_WANT_READ) {
                up->can_read = false;
                return progress;
            }
            if (w < 0) {
                if (st->resp_head_done || st->req_body_sent) {
                    /* The origin stopped reading, maybe after answering early
                     * (the answer can still be in our socket buffer): read
                     * what it sent; no head before EOF is then a 502. The
                     * client is closed after the response, since its body was
                     * not consumed. */
                    st->req_abandoned = true;
                    up->can_read = true;
                    return PUMP_PROGRESS;
                }
                upstream_failed(st, UPF_SEND);
                return PUMP_STOP;
            }
            up->last_write = clock_ms();
            size_t k = (size_t)w;
            size_t a = k < hrem ? k : hrem;
            st->req_head_off += (uint32_t)a;
            k -= a;
            if (k) {
                st->req_body.raw_pending -= (uint32_t)k;
                req_taken(st, src, k);
            }
            if ((size_t)w < hrem + raw)
                up->can_write = false;
            /* Reframed body bytes sit behind the head in req_head: once all of
             * it left and the body has begun (no retry can need the head),
             * the space is reused. */
            if (st->req_head_off == st->req_head->tail && st->req_body_sent) {
                st->req_head->tail = 0;
                st->req_head_off = 0;
            }
            progress = PUMP_PROGRESS;
            continue;
        }
        if (st->req_body.done) {
            st->req_sent = true;
            return progress;
        }
        if (src && buf_len(src)) {
            size_t before = buf_len(src);
            if (relay_take(&st->req_body, src, st->req_head) < 0) {
                if (st->resp_started)
                    return stream_abort(st), PUMP_STOP;
                stream_error(st, 400);
                return PUMP_STOP;
            }
            if (buf_len(src) < before) /* reframed: taken by copy */
                req_taken_copy(st, before - buf_len(src));
            if (c->limits.max_body_bytes && st->req_body.total > c->limits.max_body_bytes) {
                if (st->resp_started)
                    return stream_abort(st), PUMP_STOP;
                stream_error(st, 413);
                return PUMP_STOP;
            }
            if (st->req_body.raw_pending || st->req_body.done || buf_len(src) < before) {
                progress = PUMP_PROGRESS;
                continue;
            }
        }
        if (cl->h2) {
            /* DATA arrives through the session; the end is END_STREAM. */
            if (st->h2_in_eof && (!src || !buf_len(src))) {
                if (relay_eof_trailers(&st->req_body, st->req_head, st->h2_trailers,
                                       st->h2_trailers_len) < 0) {
                    /* Shorter than its content-length (nghttp2 resets such
                     * streams itself). */
                    return stream_abort(st), PUMP_STOP;
                }
                progress = PUMP_PROGRESS;
                continue;
            }
            return progress;
        }
        if (!cl->can_read)
            return progress;
        ssize_t r = client_fill(cl);
        if (r == IO_AGAIN)
            return progress;
        if (r < 0) /* the client went away mid-body */
            return stream_abort(st), PUMP_STOP;
        progress = PUMP_PROGRESS;
    }
}

/* A response head rewritten by the filters; the message is large, so one
 * per thread rather than on the stack of every pump. */
static __thread struct http_response *filter_rs;
static __thread char filter_values[4096];

static struct http_response *filter_scratch(void)
{
    if (!filter_rs)
        filter_rs = xmalloc(sizeof(*filter_rs));
    return filter_rs;
}

void stream_thread_exit(void)
{
    free(filter_rs);
    filter_rs = NULL;
}

static int parse_response_head(struct stream *st)
{
    struct upconn *up = st->up;
    struct http_response rs;
    const struct conf *c = st->conf;
    if (!up->rbuf || !buf_len(up->rbuf))
        return PUMP_IDLE;
    struct h1_limits lim = {.max_request_line = c->limits.max_header_bytes,
                            .max_header_bytes = MIN(up->rbuf->size - 1024,
                                                    MAX(c->limits.max_header_bytes, 32768))};
    for (;;) {
        if (!buf_len(up->rbuf))
            return PUMP_IDLE;
        ssize_t n = h1_parse_response(buf_rptr(up->rbuf), buf_len(up->rbuf), &rs, &lim);
        if (n == H1_INCOMPLETE)
            return PUMP_IDLE;
        if (n < 0) {
            upstream_failed(st, UPF_BAD_RESPONSE);
            return PUMP_STOP;
        }
        if (rs.status < 200 && rs.status != 101) {
            /* Interim responses are not relayed (100-continue is ours). */
            buf_consume(up->rbuf, (size_t)n);
            continue;
        }
        if (rs.status == 101 && !(st->req.framing.conn_upgrade && st->req.upgrade.len)) {
            upstream_failed(st, UPF_BAD_RESPONSE);
            return PUMP_STOP;
        }
        /* A retry_on status may send the request elsewhere (retry.c). */
        if (upstream_retry_on_status(st, rs.status))
            return PUMP_STOP;
        st->up_end_us = clock_mono_us();
        if (st->route && st->route->cache && cache_on_head(st, &rs, (size_t)n))
            return PUMP_PROGRESS; /* answered from the cache (304, stale-if-error) */
        ensure_resp_out(st, (size_t)n + 2048);
        if (st->resp_out && buf_len(st->resp_out) && st->expect_sent) {
            /* An unsent 100-continue is pointless now that the answer is here. */
            st->resp_out->head = st->resp_out->tail = 0;
        }
        const struct http_response *use = &rs;
        struct http_response *alt = NULL;
        bool up_reusable = !(rs.framing.conn_close ||
                             (rs.version == 10 && !rs.framing.conn_keep_alive));
        if (st->route && (st->route->compress || st->route->cache) && rs.status != 101) {
            alt = filter_scratch();
            if (!bf_plan(st, &rs, alt, filter_values, sizeof(filter_values)))
                *alt = rs;
            if (st->route->cache && g_cache_store)
                cache_begin_fill(st, alt);
            use = alt;
        }
        if ((st->cl->h2 ? h2_submit_head(st, use) : fwd_response_head(st, use)) < 0) {
            upstream_failed(st, UPF_BAD_RESPONSE);
            return PUMP_STOP;
        }
        if (alt && (st->zalg != ZALG_IDENTITY || st->fill))
            bf_setup(st, &rs, up_reusable);
        buf_consume(up->rbuf, (size_t)n);
        st->resp_head_done = true;
        st->resp_started = true;
        if (st->tunnel) {
            /* Everything after the 101 is tunnel data, in both directions. */
            relay_init(&st->req_body, RIN_EOF, ROUT_RAW, 0);
        }
        return PUMP_PROGRESS;
    }
}

static inline int take_body(struct stream *st, struct buf *src)
{
    if (st->resp_body.out == ROUT_FILTER)
        return bf_take(st, src, st->resp_out);
    return relay_take(&st->resp_body, src, st->resp_out);
}

/* Response direction: head and body from the upstream to the client. */
static int pump_response(struct stream *st)
{
    struct upconn *up = st->up;
    int progress = PUMP_IDLE;
    for (;;) {
        /* Take body bytes already read before flushing, so that the head and
         * the first body bytes leave in one writev. */
        if (st->resp_head_done && !st->resp_body.done && !st->resp_body.raw_pending && up &&
            up->rbuf && (buf_len(up->rbuf) || bf_pending(st)) && !st->finishing) {
            if (take_body(st, up->rbuf) < 0)
                return stream_abort(st), PUMP_STOP;
        }
        /* The server's part is over once its body is in: free its slot
         * (in-flight counts, least_conn) before the last bytes reach the
         * client, so a client that looks right after sees it free. */
        if (st->resp_body.done && st->resp_head_done && st->server)
            upstream_release_server(st);
        int r = flush_client(st);
        if (r == PUMP_STOP)
            return r;
        if (r == PUMP_PROGRESS) {
            progress = PUMP_PROGRESS;
            continue;
        }
        if ((st->resp_out && buf_len(st->resp_out)) || st->resp_body.raw_pending ||
            (st->hit && st->hit_off < st->hit_end))
            return progress; /* the client is not writable */
        if (st->finishing || (st->resp_head_done && st->resp_body.done))
            return PUMP_FINISH;
        if (!up || up->state != UP_ACTIVE)
            return progress;
        if (!st->resp_head_done) {
            r = parse_response_head(st);
            if (r != PUMP_IDLE) {
                if (r == PUMP_STOP)
                    return r;
                progress = PUMP_PROGRESS;
                continue;
            }
        } else if (up->rbuf && (buf_len(up->rbuf) || bf_pending(st))) {
            if (take_body(st, up->rbuf) < 0) {
                /* Bad framing mid-body: the client must not see it complete. */
                return stream_abort(st), PUMP_STOP;
            }
            if (st->resp_body.raw_pending || st->resp_body.done ||
                (st->resp_out && buf_len(st->resp_out))) {
                progress = PUMP_PROGRESS;
                continue;
            }
        }
        ssize_t n = up->can_read ? upconn_fill(up) : IO_AGAIN;
        if (n == IO_AGAIN) {
            if (st->resp_body.out == ROUT_FILTER && st->resp_head_done) {
                /* Nothing more from the origin for now: flush the encoder. */
                int f = bf_flush(st, st->resp_out);
                if (f < 0)
                    return stream_abort(st), PUMP_STOP;
                if (f > 0) {
                    progress = PUMP_PROGRESS;
                    continue;
                }
            }
            return progress;
        }
        if (n < 0) {
            if (!st->resp_head_done) {
                if (buf_len(up->rbuf))
                    upstream_failed(st, UPF_BAD_RESPONSE);
                else
                    upstream_failed(st, UPF_EOF_BEFORE_HEAD);
                return PUMP_STOP;
            }
            if (n == IO_EOF && (st->resp_body.out == ROUT_FILTER
                                    ? bf_eof(st, up->rbuf, st->resp_out)
                                    : relay_eof(&st->resp_body, st->resp_out)) == 0) {
                st->up_reusable = false;
                progress = PUMP_PROGRESS;
                continue;
            }
            /* Cut by the origin: close the client before the body completes. */
            return stream_abort(st), PUMP_STOP;
        }
        progress = PUMP_PROGRESS;
    }
}

/* After a 101: bytes flow both ways until either side closes. */
static int pump_tunnel(struct stream *st)
{
    int r = pump_response(st);
    if (r == PUMP_STOP)
        return r;
    if (r == PUMP_FINISH) /* the upstream closed and everything was flushed */
        return PUMP_FINISH;
    if (st->up && st->up->state == UP_ACTIVE) {
        int q = pump_request(st);
        if (q == PUMP_STOP)
            return q;
        if (st->cl->eof && !st->req_body.raw_pending)
            return PUMP_FINISH;
        if (q == PUMP_PROGRESS)
            r = PUMP_PROGRESS;
    }
    return r;
}

int stream_pump(struct stream *st)
{
    for (int guard = 0; guard < 256; guard++) {
        int r;
        if (st->tunnel) {
            r = pump_tunnel(st);
        } else {
            r = PUMP_IDLE;
            if (st->up && st->up->state == UP_ACTIVE && !st->req_sent && !st->finishing &&
                !st->req_abandoned) {
                r = pump_request(st);
                if (r == PUMP_STOP)
                    return STEP_AGAIN;
            }
            int q = pump_response(st);
            if (q == PUMP_STOP)
                return STEP_AGAIN;
            if (q != PUMP_IDLE)
                r = q;
        }
        if (r == PUMP_STOP)
            return STEP_AGAIN;
        if (r == PUMP_FINISH)
            return stream_finish(st);
        if (r == PUMP_IDLE)
            return STEP_WAIT;
    }
    client_schedule(st->cl);
    return STEP_WAIT;
}
