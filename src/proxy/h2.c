/* h2.c - HTTP/2 client connections on nghttp2 (see h2.h for the model).
 * nghttp2 is driven without socket callbacks: bytes read by the transport go
 * to nghttp2_session_mem_recv, frames come back from nghttp2_session_mem_send
 * into the connection's output vector, which the transport writes. */
#include "proxy/h2.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/common.h"
#include "filters/cache_store.h"
#include "log/errlog.h"
#include "net/tls.h"
#include "proxy/engine.h"

/* Request DATA a stream may hold before forwarding (its window). */
#define H2_STREAM_WINDOW 65535
/* Request DATA a whole connection may hold (connection window). */
#define H2_CONN_WINDOW (1 << 20)
/* Stop producing frames while this much output waits for the socket. */
#define H2_OUT_HIGH (64 * 1024)

struct h2conn {
    nghttp2_session *ng;
    struct client *cl;
    char *out;
    size_t out_len, out_off, out_cap;
    struct stream *runq;
    struct stream *all; /* every stream of the session (h2_next_run is for runq) */
    unsigned n_streams;
    uint64_t last_data_ms;
    bool goaway;
};

/* ---- output ---- */

static void out_append(struct h2conn *h, const uint8_t *p, size_t n)
{
    if (h->out_off && h->out_off == h->out_len)
        h->out_off = h->out_len = 0;
    if (h->out_len + n > h->out_cap) {
        if (h->out_off) {
            memmove(h->out, h->out + h->out_off, h->out_len - h->out_off);
            h->out_len -= h->out_off;
            h->out_off = 0;
        }
        if (h->out_len + n > h->out_cap) {
            h->out_cap = MAX(h->out_cap * 2, h->out_len + n);
            h->out = xrealloc(h->out, h->out_cap);
        }
    }
    memcpy(h->out + h->out_len, p, n);
    h->out_len += n;
}

/* Writes pending output. Returns 1 on progress, 0 when blocked or empty, -1
 * when the connection failed. */
static int out_write(struct h2conn *h)
{
    struct client *cl = h->cl;
    int progress = 0;
    while (h->out_len > h->out_off && cl->can_write) {
        struct iovec iov = {h->out + h->out_off, h->out_len - h->out_off};
        ssize_t w = xport_writev(&cl->x, &iov, 1);
        if (w == IO_AGAIN) {
            cl->can_write = false;
            break;
        }
        if (w == IO_WANT_READ) {
            cl->can_read = false;
            break;
        }
        if (w < 0)
            return -1;
        h->out_off += (size_t)w;
        cl->last_write = clock_ms();
        progress = 1;
        if ((size_t)w < iov.iov_len)
            cl->can_write = false;
    }
    if (h->out_off == h->out_len) {
        h->out_off = h->out_len = 0;
        if (h->out_cap > 256 * 1024) { /* a burst grew it: give it back */
            free(h->out);
            h->out = NULL;
            h->out_cap = 0;
        }
    }
    return progress;
}

/* Produces frames and writes them. 1 progress, 0 nothing, -1 fatal. */
static int h2_send(struct h2conn *h)
{
    int progress = 0;
    for (;;) {
        while (h->out_len - h->out_off < H2_OUT_HIGH) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(h->ng, &data);
            if (n < 0)
                return -1;
            if (n == 0)
                break;
            out_append(h, data, (size_t)n);
            progress = 1;
        }
        int w = out_write(h);
        if (w < 0)
            return -1;
        if (w == 0 || h->out_len - h->out_off >= H2_OUT_HIGH || !nghttp2_session_want_write(h->ng))
            break;
    }
    return progress;
}

/* ---- streams ---- */

static void runq_push(struct h2conn *h, struct stream *st)
{
    if (st->h2_queued || st->h2_finished)
        return;
    st->h2_queued = true;
    st->h2_next_run = h->runq;
    h->runq = st;
}

static void runq_remove(struct h2conn *h, struct stream *st)
{
    if (!st->h2_queued)
        return;
    for (struct stream **pp = &h->runq; *pp; pp = &(*pp)->h2_next_run) {
        if (*pp == st) {
            *pp = st->h2_next_run;
            break;
        }
    }
    st->h2_queued = false;
}

/* The struct stream list of a session reuses next_free (unused while live). */
static void all_add(struct h2conn *h, struct stream *st)
{
    st->next_free = h->all;
    h->all = st;
}

static void all_remove(struct h2conn *h, struct stream *st)
{
    for (struct stream **pp = &h->all; *pp; pp = &(*pp)->next_free) {
        if (*pp == st) {
            *pp = st->next_free;
            break;
        }
    }
    st->next_free = NULL;
}

void h2_stream_end(struct stream *st, bool complete)
{
    if (st->h2_finished)
        return;
    st->h2_finished = true;
    struct h2conn *h = st->cl->h2;
    /* Request DATA that will never be forwarded is credited back, and so is
     * whatever still arrives (on_data_chunk): the client may finish its upload
     * and read the response. RST_STREAM(NO_ERROR) would be allowed here (RFC
     * 9113 §8.1), but common clients then discard the response. */
    if (h && st->h2_in && buf_len(st->h2_in)) {
        nghttp2_session_consume(h->ng, st->h2_id, buf_len(st->h2_in));
        st->h2_in->head = st->h2_in->tail = 0;
    }
    if (st->up) {
        bool reuse = complete && st->up_reusable && st->req_sent && st->resp_body.done &&
                     !st->resp_body.eof_seen && (!st->up->rbuf || buf_len(st->up->rbuf) == 0);
        upstream_release(st, reuse);
    }
    upstream_release_server(st);
    if (!complete && !st->status)
        st->status = 499;
    stream_log(st);
}

void h2_reset(struct stream *st)
{
    struct h2conn *h = st->cl->h2;
    if (st->h2_finished)
        return;
    nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, st->h2_id, NGHTTP2_INTERNAL_ERROR);
    h2_stream_end(st, false);
}

void h2_consumed(struct stream *st, size_t n)
{
    struct h2conn *h = st->cl->h2;
    if (n && !st->h2_finished)
        nghttp2_session_consume(h->ng, st->h2_id, n);
}

/* Runs a stream until it waits. */
static void stream_drive(struct stream *st)
{
    for (int guard = 0; guard < 32 && !st->h2_finished; guard++) {
        int r;
        if (!st->h2_started) {
            st->h2_started = true;
            r = stream_start(st);
        } else {
            r = stream_pump(st);
        }
        if (r != STEP_AGAIN)
            break;
    }
}

static int submit_trailers(struct stream *st, struct h2conn *h);

/* ---- DATA provider ---- */

static ssize_t data_read_cb(nghttp2_session *ng, int32_t id, uint8_t *dst, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)ng;
    (void)id;
    struct stream *st = src->ptr;
    struct h2conn *h = ud;
    size_t n = 0;
    if (st->resp_out && buf_len(st->resp_out)) {
        n = MIN(length, buf_len(st->resp_out));
        memcpy(dst, buf_rptr(st->resp_out), n);
        buf_consume(st->resp_out, n);
    } else if (st->hit) {
        n = MIN(length, (size_t)(st->hit_end - st->hit_off));
        memcpy(dst, st->hit->body + st->hit_off, n);
        st->hit_off += n;
    } else if (st->resp_body.raw_pending) {
        n = MIN(length, (size_t)st->resp_body.raw_pending);
        memcpy(dst, buf_rptr(st->up->rbuf), n);
        buf_consume(st->up->rbuf, n);
        st->resp_body.raw_pending -= (uint32_t)n;
    }
    bool pending = (st->resp_out && buf_len(st->resp_out)) || st->resp_body.raw_pending ||
                   (st->hit && st->hit_off < st->hit_end);
    bool done = st->finishing || st->resp_body.done;
    if (n == 0 && !(done && !pending)) {
        st->h2_deferred = true;
        runq_push(h, st); /* let the stream fetch more from the upstream */
        return NGHTTP2_ERR_DEFERRED;
    }
    if (done && !pending) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->resp_body.trailers && st->resp_body.dec.trailers_len && submit_trailers(st, h) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; /* the trailers end the stream */
    } else {
        runq_push(h, st);
    }
    st->bytes_out += n;
    h->last_data_ms = clock_ms();
    return (ssize_t)n;
}

int h2_flush_stream(struct stream *st)
{
    struct h2conn *h = st->cl->h2;
    if (st->h2_deferred) {
        /* New bytes for a stream that waited for its upstream: the stall
         * clock (h2_deadline) starts from now. */
        st->h2_deferred = false;
        h->last_data_ms = clock_ms();
        nghttp2_session_resume_data(h->ng, st->h2_id);
    }
    return PUMP_IDLE;
}

/* ---- response heads ---- */

struct nvbuf {
    nghttp2_nv nv[HTTP_MAX_HEADERS + 16];
    size_t n;
    char mem[72 * 1024]; /* a response head may be up to 64 KiB (upstream buffer) */
    size_t used;
};

/* One per worker thread, made on first use (h2_thread_exit frees it). */
static __thread struct nvbuf *nvb;

static struct nvbuf *nvbuf_get(void)
{
    if (!nvb)
        nvb = xmalloc(sizeof(*nvb));
    return nvb;
}

void h2_thread_exit(void)
{
    free(nvb);
    nvb = NULL;
}

static char *nv_copy_lower(struct nvbuf *b, const char *p, size_t len, bool lower)
{
    if (b->used + len > sizeof(b->mem))
        return NULL;
    char *d = b->mem + b->used;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        d[i] = lower && c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    b->used += len;
    return d;
}

static int nv_add(struct nvbuf *b, const char *name, size_t nl, const char *value, size_t vl)
{
    if (b->n >= ARRAY_SIZE(b->nv))
        return -1;
    char *n = nv_copy_lower(b, name, nl, true);
    char *v = nv_copy_lower(b, value, vl, false);
    if (!n || !v)
        return -1;
    b->nv[b->n++] = (nghttp2_nv){(uint8_t *)n, (uint8_t *)v, nl, vl, NGHTTP2_NV_FLAG_NONE};
    return 0;
}

/* Adds "Name: value\r\n" lines (as written by the header-rule expander);
 * with `rules`, lines those rules replace are skipped. */
static int nv_add_lines_except(struct nvbuf *b, const char *p, size_t len,
                               const struct header_rules *rules)
{
    while (len) {
        const char *eol = memchr(p, '\n', len);
        size_t ll = eol ? (size_t)(eol - p) + 1 : len;
        size_t tl = ll;
        while (tl && (p[tl - 1] == '\n' || p[tl - 1] == '\r'))
            tl--;
        const char *colon = memchr(p, ':', tl);
        if (colon && !fwd_rule_overrides(rules, str_make(p, (size_t)(colon - p)))) {
            struct str v = str_trim_ows(str_make(colon + 1, tl - (size_t)(colon - p) - 1));
            if (nv_add(b, p, (size_t)(colon - p), v.p, v.len) < 0)
                return -1;
        }
        p += ll;
        len -= ll;
    }
    return 0;
}

static int nv_add_lines(struct nvbuf *b, const char *p, size_t len)
{
    return nv_add_lines_except(b, p, len, NULL);
}

static bool h2_forbidden(struct str n)
{
    /* Connection-specific fields are malformed in HTTP/2 (RFC 9113 §8.2.2). */
    return str_eq_lit_ci(n, "connection") || str_eq_lit_ci(n, "keep-alive") ||
           str_eq_lit_ci(n, "proxy-connection") || str_eq_lit_ci(n, "transfer-encoding") ||
           str_eq_lit_ci(n, "upgrade") || str_eq_lit_ci(n, "te");
}

/* `rules`: the route's response header rules apply (proxied and cached
 * responses always; local ones as stream_respond decides for HTTP/1.1). */
static int submit(struct stream *st, struct nvbuf *b, bool has_body, bool rules)
{
    struct h2conn *h = st->cl->h2;
    if (rules && st->route && st->route->resp_headers.n) {
        struct buf *tmp = buf_get(BUF_STD_SIZE);
        if (fwd_response_rules(st, tmp) == 0)
            nv_add_lines(b, buf_rptr(tmp), buf_len(tmp));
        buf_put(tmp);
    }
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read_cb};
    int rv = nghttp2_submit_response(h->ng, st->h2_id, b->nv, b->n, has_body ? &prd : NULL);
    if (rv != 0)
        return -1;
    if (!has_body)
        st->resp_body.done = true;
    return 0;
}

/* Trailer fields of a chunked upstream body, as an HTTP/2 trailer block. */
static int submit_trailers(struct stream *st, struct h2conn *h)
{
    struct nvbuf *nb = nvbuf_get();
    nb->n = nb->used = 0;
    if (nv_add_lines(nb, st->resp_body.dec.trailers, st->resp_body.dec.trailers_len) < 0)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < nb->n; i++) { /* connection-specific fields never travel */
        struct str name = str_make((const char *)nb->nv[i].name, nb->nv[i].namelen);
        if (!h2_forbidden(name) && !str_eq_lit_ci(name, "content-length"))
            nb->nv[k++] = nb->nv[i];
    }
    if (k == 0)
        return -1;
    return nghttp2_submit_trailer(h->ng, st->h2_id, nb->nv, k) == 0 ? 0 : -1;
}

int h2_submit_head(struct stream *st, const struct http_response *rs)
{
    struct nvbuf *nb = nvbuf_get();
    nb->n = nb->used = 0;
    int status = rs->status;
    bool no_body = st->is_head || status == 204 || status == 304;
    const struct header_rules *rules = st->route ? &st->route->resp_headers : NULL;
    char sb[4];
    snprintf(sb, sizeof(sb), "%03d", status);
    nv_add(nb, ":status", 7, sb, 3);
    for (unsigned i = 0; i < rs->n_headers; i++) {
        const struct http_header *hd = &rs->headers[i];
        if (h2_forbidden(hd->name) || str_eq_lit_ci(hd->name, "x-request-id") ||
            fwd_rule_overrides(rules, hd->name))
            continue;
        bool tok = false;
        for (unsigned k = 0; k < rs->framing.n_conn_tokens; k++)
            tok |= str_eq_ci(rs->framing.conn_tokens[k], hd->name);
        if (tok)
            continue;
        if (str_eq_lit_ci(hd->name, "content-length") && status == 204)
            continue;
        if (nv_add(nb, hd->name.p, hd->name.len, hd->value.p, hd->value.len) < 0)
            return -1;
    }
    nv_add(nb, "x-request-id", 12, st->req_id, st->req_id_len);

    st->status = status;
    st->up_reusable = !(rs->framing.conn_close || (rs->version == 10 && !rs->framing.conn_keep_alive));
    if (no_body)
        relay_init(&st->resp_body, RIN_NONE, ROUT_RAW, 0);
    else if (rs->framing.chunked) {
        relay_init(&st->resp_body, RIN_CHUNKED, ROUT_DECHUNK, 0);
        relay_keep_trailers(&st->resp_body); /* sent as HTTP/2 trailers */
    }
    else if (rs->framing.has_content_length)
        relay_init(&st->resp_body, RIN_LENGTH, ROUT_RAW, rs->framing.content_length);
    else {
        relay_init(&st->resp_body, RIN_EOF, ROUT_RAW, 0);
        st->up_reusable = false;
    }
    return submit(st, nb, !no_body, true);
}

int h2_submit_cached(struct stream *st, int status, const char *lines, size_t len,
                     const char *extra, size_t extra_len, bool has_body)
{
    struct nvbuf *nb = nvbuf_get();
    nb->n = nb->used = 0;
    char sb[4];
    snprintf(sb, sizeof(sb), "%03d", status);
    nv_add(nb, ":status", 7, sb, 3);
    const struct header_rules *rules = st->route ? &st->route->resp_headers : NULL;
    if (nv_add_lines_except(nb, lines, len, rules) < 0 || nv_add_lines(nb, extra, extra_len) < 0)
        return -1;
    st->status = status;
    return submit(st, nb, has_body, true);
}

void h2_submit_local(struct stream *st, int status, const char *ctype, const char *body,
                     size_t body_len, const char *extra, size_t extra_len)
{
    struct nvbuf *nb = nvbuf_get();
    nb->n = nb->used = 0;
    char sb[4], cl[24];
    snprintf(sb, sizeof(sb), "%03d", status);
    nv_add(nb, ":status", 7, sb, 3);
    const char *ct = ctype ? ctype : "text/plain; charset=utf-8";
    nv_add(nb, "content-type", 12, ct, strlen(ct));
    int n = snprintf(cl, sizeof(cl), "%zu", body_len);
    nv_add(nb, "content-length", 14, cl, (size_t)n);
    nv_add(nb, "x-request-id", 12, st->req_id, st->req_id_len);
    if (extra)
        nv_add_lines(nb, extra, extra_len);
    if (st->resp_out)
        st->resp_out->head = st->resp_out->tail = 0;
    bool has_body = body_len && !st->is_head;
    if (has_body) {
        if (!st->resp_out || st->resp_out->size < body_len) {
            buf_put(st->resp_out);
            st->resp_out = buf_get(body_len <= BUF_STD_SIZE ? BUF_STD_SIZE : body_len);
        }
        buf_append(st->resp_out, body, body_len);
    }
    st->status = status;
    if (submit(st, nb, has_body, status < 500 && status != 408) < 0)
        nghttp2_submit_rst_stream(st->cl->h2->ng, NGHTTP2_FLAG_NONE, st->h2_id,
                                  NGHTTP2_INTERNAL_ERROR);
}

/* ---- nghttp2 callbacks ---- */

static void req_reset(struct http_request *rq)
{
    rq->method = rq->target = rq->scheme = rq->authority = rq->path = rq->query = STR_NULL;
    rq->upgrade = STR_NULL;
    rq->method_id = HTTP_M_OTHER;
    rq->version = 20;
    rq->expect_continue = false;
    memset(&rq->framing, 0, sizeof(rq->framing));
    rq->n_headers = 0;
    rq->head_len = 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2conn *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct client *cl = h->cl;
    if (h->goaway || cl->w->draining) {
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    struct stream *st = stream_get(cl->w, cl);
    req_reset(&st->req);
    st->h2_id = f->hd.stream_id;
    if (!st->head_copy) {
        st->head_cap = 1024;
        st->head_copy = xmalloc(st->head_cap);
    }
    all_add(h, st);
    h->n_streams++;
    cl->requests++;
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
    return 0;
}

/* Header bytes are collected in head_copy; views hold offsets until the block
 * is complete (the buffer may move while it grows). */
static struct str off_str(size_t off, size_t len)
{
    return (struct str){(const char *)(uintptr_t)off, len};
}

static int keep(struct stream *st, const uint8_t *p, size_t len, size_t *off)
{
    size_t max = st->conf->limits.max_header_bytes;
    if (st->h2_head_len + len > max)
        return -1;
    if (st->h2_head_len + len > st->head_cap) {
        size_t cap = MAX(st->head_cap * 2, st->h2_head_len + len);
        st->head_copy = xrealloc(st->head_copy, cap);
        st->head_cap = cap;
    }
    memcpy(st->head_copy + st->h2_head_len, p, len);
    *off = st->h2_head_len;
    st->h2_head_len += len;
    return 0;
}

/* A request trailer field: kept as "name: value\r\n" for the last chunk of
 * the upstream body (only a body of unknown length is chunked; trailers of a
 * body with a content-length have nowhere to go in HTTP/1.1 and are dropped). */
static int keep_trailer(struct stream *st, const uint8_t *name, size_t nl, const uint8_t *value,
                        size_t vl)
{
    if (!st->req.framing.chunked || (nl && name[0] == ':') ||
        h2_forbidden(str_make((const char *)name, nl)))
        return 0;
    size_t need = st->h2_trailers_len + nl + vl + 4;
    if (need > 8192)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->h2_trailers = xrealloc(st->h2_trailers, need);
    char *w = st->h2_trailers + st->h2_trailers_len;
    memcpy(w, name, nl);
    w += nl;
    *w++ = ':';
    *w++ = ' ';
    memcpy(w, value, vl);
    w += vl;
    *w++ = '\r';
    *w++ = '\n';
    st->h2_trailers_len = need;
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!st)
        return 0;
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return keep_trailer(st, name, nl, value, vl);
    struct http_request *rq = &st->req;
    size_t noff, voff;
    if (keep(st, name, nl, &noff) < 0 || keep(st, value, vl, &voff) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    struct str v = off_str(voff, vl);
    if (nl && name[0] == ':') {
        if (nl == 7 && memcmp(name, ":method", 7) == 0)
            rq->method = v;
        else if (nl == 5 && memcmp(name, ":path", 5) == 0)
            rq->target = v;
        else if (nl == 7 && memcmp(name, ":scheme", 7) == 0)
            rq->scheme = v;
        else if (nl == 10 && memcmp(name, ":authority", 10) == 0)
            rq->authority = v;
        return 0;
    }
    if (rq->n_headers >= HTTP_MAX_HEADERS)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (nl == 4 && memcmp(name, "host", 4) == 0 && !rq->authority.len)
        rq->authority = v;
    rq->headers[rq->n_headers++] = (struct http_header){off_str(noff, nl), v};
    return 0;
}

static void rebase(struct str *s, const char *base)
{
    if (s->len || s->p)
        s->p = base + (uintptr_t)s->p;
}

/* The request's fields are complete: make the views real and derive the rest. */
static int finish_request(struct stream *st)
{
    struct http_request *rq = &st->req;
    const char *base = st->head_copy;
    rebase(&rq->method, base);
    rebase(&rq->target, base);
    rebase(&rq->scheme, base);
    rebase(&rq->authority, base);
    for (unsigned i = 0; i < rq->n_headers; i++) {
        rebase(&rq->headers[i].name, base);
        rebase(&rq->headers[i].value, base);
    }
    rq->method_id = http_method_lookup(rq->method);
    rq->head_len = st->h2_head_len;
    const char *q = memchr(rq->target.p, '?', rq->target.len);
    if (q) {
        rq->path = str_make(rq->target.p, (size_t)(q - rq->target.p));
        rq->query = str_make(q + 1, rq->target.len - rq->path.len - 1);
    } else {
        rq->path = rq->target;
        rq->query = STR_NULL;
    }
    int i = http_header_find(rq->headers, rq->n_headers, STR_LIT("content-length"), 0);
    if (i >= 0) {
        uint64_t v = 0;
        struct str s = rq->headers[i].value;
        for (size_t k = 0; k < s.len; k++)
            v = v * 10 + (uint64_t)(s.p[k] - '0'); /* digits checked by nghttp2 */
        rq->framing.has_content_length = true;
        rq->framing.content_length = v;
    }
    /* A body of unknown length goes upstream chunked. */
    rq->framing.chunked = !st->h2_in_eof && !rq->framing.has_content_length;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2conn *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    struct stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!st)
        return 0;
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        st->h2_in_eof = true;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (finish_request(st) < 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    runq_push(h, st);
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    struct h2conn *h = ud;
    struct stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st || st->h2_finished || st->req_body.done) {
        nghttp2_session_consume(ng, id, len); /* nobody wants it: credit at once */
        return 0;
    }
    if (!st->h2_in)
        st->h2_in = buf_get(BUF_BIG_SIZE);
    if (buf_append(st->h2_in, data, len) < 0) /* more than the window we gave */
        return nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_FLOW_CONTROL_ERROR);
    runq_push(h, st);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st)
            h2_stream_end(st, true);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
    (void)err;
    struct h2conn *h = ud;
    struct stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    h2_stream_end(st, false);
    runq_remove(h, st);
    all_remove(h, st);
    buf_put(st->h2_in);
    st->h2_in = NULL;
    h->n_streams--;
    stream_put(st);
    return 0;
}

/* ---- session ---- */

static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;

void h2_init_global(void)
{
    if (callbacks)
        return;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_option_new(&options);
    /* Request DATA is credited only once forwarded: back-pressure. */
    nghttp2_option_set_no_auto_window_update(options, 1);
    /* Floods: rapid reset (CVE-2023-44487), CONTINUATION (CVE-2024-27316),
     * SETTINGS and PING/ACK floods make nghttp2 end the session with GOAWAY. */
    nghttp2_option_set_stream_reset_rate_limit(options, 1000, 33);
    nghttp2_option_set_max_continuations(options, 8);
    nghttp2_option_set_max_settings(options, 32);
    nghttp2_option_set_max_outbound_ack(options, 1000);
    nghttp2_option_set_no_closed_streams(options, 1);
    tls_h2_enabled = true;
}

int h2_start(struct client *cl)
{
    struct h2conn *h = xcalloc(1, sizeof(*h));
    h->cl = cl;
    if (nghttp2_session_server_new2(&h->ng, callbacks, h, options) != 0) {
        free(h);
        return -1;
    }
    const struct conf *c = cl->w->conf;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)c->limits.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)c->limits.max_header_bytes},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        /* RFC 9218: no RFC 7540 priority tree to maintain per stream (and
         * closed streams are not kept for it). */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
    cl->h2 = h;
    cl->state = CL_H2;
    h->last_data_ms = clock_ms();
    return 0;
}

void h2_free(struct client *cl)
{
    struct h2conn *h = cl->h2;
    if (!h)
        return;
    /* Streams still open end here (nghttp2_session_del does not report them). */
    while (h->all) {
        struct stream *st = h->all;
        h->all = st->next_free;
        st->next_free = NULL;
        h2_stream_end(st, false);
        buf_put(st->h2_in);
        st->h2_in = NULL;
        st->h2_queued = false;
        stream_put(st);
    }
    nghttp2_session_del(h->ng);
    free(h->out);
    free(h);
    cl->h2 = NULL;
}

void h2_terminate(struct client *cl)
{
    struct h2conn *h = cl->h2;
    if (!h)
        return;
    nghttp2_session_terminate_session(h->ng, h->n_streams ? NGHTTP2_ENHANCE_YOUR_CALM
                                                           : NGHTTP2_NO_ERROR);
    h2_send(h);
}

void h2_drain(struct client *cl)
{
    struct h2conn *h = cl->h2;
    if (!h || h->goaway)
        return;
    h->goaway = true;
    nghttp2_submit_shutdown_notice(h->ng);
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h->ng), NGHTTP2_NO_ERROR,
                          NULL, 0);
    client_schedule(cl);
}

static void run_queue(struct h2conn *h)
{
    for (int guard = 0; h->runq && guard < 1024; guard++) {
        struct stream *st = h->runq;
        h->runq = st->h2_next_run;
        st->h2_queued = false;
        if (!st->h2_finished)
            stream_drive(st);
    }
}

int h2_run(struct client *cl)
{
    struct h2conn *h = cl->h2;
    for (int guard = 0; guard < 64; guard++) {
        bool progress = false;
        if (cl->rbuf && buf_len(cl->rbuf)) {
            ssize_t n = nghttp2_session_mem_recv(h->ng, (const uint8_t *)buf_rptr(cl->rbuf),
                                                 buf_len(cl->rbuf));
            if (n < 0) {
                log_debug("client %s: http/2 error: %s", cl->peer_ip, nghttp2_strerror((int)n));
                /* nghttp2 queued a GOAWAY where it could: try to send it. */
                h2_send(h);
                client_close(cl);
                return STEP_GONE;
            }
            buf_consume(cl->rbuf, (size_t)n);
            progress = true;
        } else if (cl->can_read) {
            ssize_t r = client_fill(cl);
            if (r > 0)
                progress = true;
            else if (r != IO_AGAIN) {
                client_close(cl);
                return STEP_GONE;
            }
        }
        run_queue(h);
        int s = h2_send(h);
        if (s < 0) {
            client_close(cl);
            return STEP_GONE;
        }
        if (s > 0)
            progress = true;
        run_queue(h);
        if (!progress && !h->runq)
            break;
    }
    if (cl->rbuf && buf_len(cl->rbuf) == 0) {
        buf_put(cl->rbuf);
        cl->rbuf = NULL;
    }
    if (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng) &&
        h->out_len == h->out_off) {
        client_close(cl);
        return STEP_GONE;
    }
    if (cl->w->draining && !h->goaway)
        h2_drain(cl);
    /* Whether by stop or by reload: once GOAWAY went out, the connection
     * ends with its last stream. */
    if (h->goaway && h->n_streams == 0 && h->out_len == h->out_off) {
        client_close(cl);
        return STEP_GONE;
    }
    return STEP_WAIT;
}

void h2_stream_kick(struct stream *st)
{
    struct client *cl = st->cl;
    struct h2conn *h = cl->h2;
    if (!st->h2_finished)
        runq_push(h, st);
    /* Run the session once after this batch of events: the responses of all
     * streams whose upstreams answered in the batch leave in one write. */
    client_schedule(cl);
}

/* True when some stream has response bytes the client's window keeps back. */
static bool h2_window_stalled(const struct h2conn *h)
{
    for (const struct stream *st = h->all; st; st = st->next_free)
        if (!st->h2_finished && ((st->resp_out && buf_len(st->resp_out)) ||
                                 st->resp_body.raw_pending || st->hit_off < st->hit_end))
            return true;
    return false;
}

uint64_t h2_deadline(struct client *cl)
{
    struct h2conn *h = cl->h2;
    const struct conf *c = cl->w->conf;
    if (h->out_len > h->out_off)
        return cl->last_write + c->timeouts.send_ms;
    if (h->n_streams == 0)
        return MAX(cl->last_read, cl->last_write) + c->timeouts.keepalive_ms;
    /* Zero-window stall check: armed cheaply here, decided by h2_expired()
     * when it fires (walking the streams on every event would cost). */
    uint64_t when = h->last_data_ms + c->timeouts.send_ms;
    return MAX(when, clock_ms() + 1);
}

bool h2_expired(struct client *cl, uint64_t now)
{
    struct h2conn *h = cl->h2;
    const struct conf *c = cl->w->conf;
    if (h->out_len > h->out_off)
        return now >= cl->last_write + c->timeouts.send_ms;
    if (h->n_streams == 0)
        return now >= MAX(cl->last_read, cl->last_write) + c->timeouts.keepalive_ms;
    if (now < h->last_data_ms + c->timeouts.send_ms)
        return false;
    if (h2_window_stalled(h))
        return true;
    h->last_data_ms = now; /* streams wait for their upstreams: look again later */
    return false;
}
