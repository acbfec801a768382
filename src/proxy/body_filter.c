/* body_filter.c - the response body path used when portico changes or keeps
 * the body it relays: compression (negotiated per request, streamed with
 * bounded memory) and the cache tee (the bytes sent are also appended to the
 * object being filled). It decodes the origin's framing, runs the encoder and
 * re-frames for the client: chunks for HTTP/1.1, plain bytes for HTTP/2 and
 * for HTTP/1.0 (ended by close). Bodies that need neither never come here:
 * they keep the zero-copy relay. */
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "filters/cache_store.h"
#include "filters/compress.h"
#include "filters/negotiate.h"
#include "http/cache_policy.h"
#include "proxy/engine.h"

/* Width of the chunk-size line reserved before encoder output: hex digits
 * with leading zeros (allowed by RFC 9112 7.1), then CRLF. */
#define CHUNK_HEAD 10
/* Room kept for a chunk's CRLF and the last chunk. */
#define CHUNK_TAIL 8

/* The coding the route would use for this request: every Accept-Encoding
 * field counts (joined as one list). The cache keys compressed variants by
 * the same answer (cache_glue.c), so both must come from here. */
enum zalg bf_negotiate(const struct stream *st)
{
    const struct conf_compress *cz = st->route->compress;
    const struct http_request *rq = &st->req;
    struct str ae = STR_NULL;
    char tmp[1024];
    size_t n = 0;
    unsigned fields = 0;
    for (unsigned i = 0; i < rq->n_headers; i++) {
        const struct http_header *h = &rq->headers[i];
        if (!str_eq_lit_ci(h->name, "accept-encoding"))
            continue;
        if (fields++ == 0) {
            ae = h->value; /* the common case: one field, no copy */
            continue;
        }
        if (fields == 2) {
            n = MIN(ae.len, sizeof(tmp));
            memcpy(tmp, ae.p, n);
        }
        if (n + 2 < sizeof(tmp)) {
            tmp[n++] = ',';
            tmp[n++] = ' ';
        }
        size_t k = MIN(h->value.len, sizeof(tmp) - n);
        memcpy(tmp + n, h->value.p, k);
        n += k;
        ae = str_make(tmp, n);
    }
    return ae_negotiate(ae, cz->algs, cz->n_algs);
}

/* Whether the route would compress this response for some client: decides
 * Vary even when this client gets it as it is. */
static bool compressible(const struct stream *st, const struct http_response *rs)
{
    const struct conf_compress *cz = st->route ? st->route->compress : NULL;
    if (!cz || st->is_head || st->tunnel)
        return false;
    int s = rs->status;
    if (s < 200 || s == 204 || s == 206 || s == 304)
        return false;
    if (rs->framing.has_content_length && rs->framing.content_length < cz->min_length)
        return false;
    int ce = http_header_find(rs->headers, rs->n_headers, STR_LIT("content-encoding"), 0);
    if (ce >= 0 && !str_eq_lit_ci(str_trim_ows(rs->headers[ce].value), "identity"))
        return false;
    int ct = http_header_find(rs->headers, rs->n_headers, STR_LIT("content-type"), 0);
    if (ct < 0)
        return false;
    struct str ctype = rs->headers[ct].value;
    if (cz->n_types ? !ctype_allowed(ctype, cz->types, cz->n_types)
                    : !ctype_compressible_default(ctype))
        return false;
    struct cache_control cc;
    cc_from_headers(rs->headers, rs->n_headers, false, &cc);
    return !cc.no_transform;
}

/* Whether the origin's Vary already covers Accept-Encoding: the field
 * itself, or "*". Compared by list element: "X-Accept-Encoding-Hint" is
 * another field. */
static bool vary_has_ae(const struct http_response *rs)
{
    for (unsigned i = 0; i < rs->n_headers; i++) {
        const struct http_header *h = &rs->headers[i];
        if (!str_eq_lit_ci(h->name, "vary"))
            continue;
        struct str rest = h->value, name;
        while (str_list_next(&rest, &name))
            if (str_eq_lit_ci(name, "accept-encoding") || (name.len == 1 && name.p[0] == '*'))
                return true;
    }
    return false;
}

bool bf_plan(struct stream *st, const struct http_response *rs, struct http_response *out,
             char *scratch, size_t cap)
{
    st->zalg = ZALG_IDENTITY;
    if (!compressible(st, rs))
        return false;
    enum zalg alg = bf_negotiate(st);
    *out = *rs;
    out->n_headers = 0;
    bool vary = vary_has_ae(rs);
    for (unsigned i = 0; i < rs->n_headers; i++) {
        const struct http_header *h = &rs->headers[i];
        if (alg != ZALG_IDENTITY) {
            if (str_eq_lit_ci(h->name, "content-length") ||
                str_eq_lit_ci(h->name, "content-encoding") ||
                str_eq_lit_ci(h->name, "accept-ranges") || str_eq_lit_ci(h->name, "content-md5"))
                continue;
            if (str_eq_lit_ci(h->name, "etag")) {
                size_t n = etag_weaken(h->value, scratch, cap / 2);
                if (!n)
                    continue;
                out->headers[out->n_headers++] = (struct http_header){h->name, str_make(scratch, n)};
                scratch += n;
                cap -= n;
                continue;
            }
        }
        out->headers[out->n_headers++] = *h;
    }
    if (!vary && out->n_headers < HTTP_MAX_HEADERS)
        out->headers[out->n_headers++] =
            (struct http_header){STR_LIT("Vary"), STR_LIT("Accept-Encoding")};
    if (alg != ZALG_IDENTITY && out->n_headers < HTTP_MAX_HEADERS) {
        out->headers[out->n_headers++] =
            (struct http_header){STR_LIT("Content-Encoding"), str_c(zalg_name(alg))};
        out->framing.has_content_length = false;
        out->framing.chunked = false;
        st->zalg = (uint8_t)alg;
    }
    return true;
}

void bf_setup(struct stream *st, const struct http_response *rs, bool up_reusable)
{
    if (st->is_head || rs->status == 204 || rs->status == 304 || st->resp_body.done)
        return;
    bool chunk_out = st->resp_body.out == ROUT_CHUNK ||
                     (st->resp_body.out == ROUT_RAW && st->resp_body.in == RIN_CHUNKED &&
                      !st->cl->h2 && st->req.version != 10);
    if (st->zalg != ZALG_IDENTITY) {
        int level = st->route->compress->levels[st->zalg];
        st->zenc = zenc_new((enum zalg)st->zalg, level);
        if (!st->zenc) {
            /* Out of memory: the head already promised an encoding. */
            st->zalg = ZALG_IDENTITY;
        }
    }
    if (rs->framing.chunked)
        relay_init(&st->resp_body, RIN_CHUNKED, ROUT_FILTER, 0);
    else if (rs->framing.has_content_length)
        relay_init(&st->resp_body, RIN_LENGTH, ROUT_FILTER, rs->framing.content_length);
    else
        relay_init(&st->resp_body, RIN_EOF, ROUT_FILTER, 0);
    st->bf_chunk = chunk_out;
    st->bf_in_done = st->resp_body.done;
    st->resp_body.done = false;
    st->up_reusable = up_reusable && st->resp_body.in != RIN_EOF;
}

void bf_end(struct stream *st)
{
    if (st->zenc) {
        zenc_free(st->zenc);
        st->zenc = NULL;
    }
    buf_put(st->bf_stage);
    st->bf_stage = NULL;
}

bool bf_pending(const struct stream *st)
{
    return st->resp_body.out == ROUT_FILTER && !st->resp_body.done &&
           (st->bf_in_done || (st->bf_stage && buf_len(st->bf_stage)));
}

/* The next run of plain body bytes: straight from the source buffer, or, for
 * a chunked source, decoded into the stage buffer first. */
static int plain_input(struct stream *st, struct buf *src, const uint8_t **in, size_t *len)
{
    struct relay *r = &st->resp_body;
    switch (r->in) {
    case RIN_LENGTH:
        *in = (const uint8_t *)buf_rptr(src);
        *len = MIN(buf_len(src), r->remaining);
        return 0;
    case RIN_EOF:
        *in = (const uint8_t *)buf_rptr(src);
        *len = buf_len(src);
        return 0;
    case RIN_CHUNKED: {
        if (!st->bf_stage)
            st->bf_stage = buf_get(BUF_STD_SIZE);
        struct buf *sg = st->bf_stage;
        buf_compact(sg);
        while (!st->bf_in_done && buf_len(src) && buf_room(sg)) {
            size_t feed = MIN(buf_len(src), buf_room(sg));
            size_t used, doff, dlen;
            int rc = chunked_decode(&r->dec, buf_rptr(src), feed, &used, &doff, &dlen);
            if (rc == CHUNKED_ERROR)
                return -1;
            if (dlen)
                buf_append(sg, buf_rptr(src) + doff, dlen);
            buf_consume(src, used);
            if (rc == CHUNKED_DONE)
                st->bf_in_done = true;
            if (used == 0)
                break;
        }
        *in = (const uint8_t *)buf_rptr(sg);
        *len = buf_len(sg);
        return 0;
    }
    default:
        *in = NULL;
        *len = 0;
        return 0;
    }
}

static void plain_consumed(struct stream *st, struct buf *src, size_t n)
{
    struct relay *r = &st->resp_body;
    r->total += n;
    if (r->in == RIN_CHUNKED) {
        buf_consume(st->bf_stage, n);
        return;
    }
    buf_consume(src, n);
    if (r->in == RIN_LENGTH) {
        r->remaining -= n;
        if (r->remaining == 0)
            st->bf_in_done = true;
    }
}

static void tee(struct stream *st, const void *p, size_t n)
{
    if (st->fill && n)
        cache_fill_data(st, p, n);
}

/* Emits encoder output or plain bytes into out, framed; returns the number
 * of input bytes used, or -1. */
static int emit(struct stream *st, struct buf *out, const uint8_t *in, size_t len, bool last,
                size_t *used, bool *ended)
{
    size_t room = buf_room(out);
    size_t head = st->bf_chunk ? CHUNK_HEAD : 0;
    size_t tail = st->bf_chunk ? CHUNK_TAIL : 0;
    *used = 0;
    *ended = false;
    if (room < head + tail + 64)
        return 0;
    uint8_t *dst = (uint8_t *)buf_wptr(out) + head;
    size_t cap = room - head - tail;
    size_t made = 0;
    if (st->zenc) {
        enum zflush mode = last ? ZFLUSH_FINISH : st->bf_flush ? ZFLUSH_SYNC : ZFLUSH_NONE;
        int rc = zenc_run(st->zenc, in, len, used, dst, cap, &made, mode);
        if (rc < 0)
            return -1;
        *ended = rc == 1;
        if (*used)
            st->bf_unflushed = true;
        if (mode == ZFLUSH_SYNC && rc == 0 && made < cap) {
            st->bf_unflushed = false; /* everything given so far is out */
            st->bf_flush = false;
        }
        st->z_in += *used;
        st->z_out += made;
    } else {
        made = MIN(len, cap);
        memcpy(dst, in, made);
        *used = made;
        *ended = last && made == len;
    }
    tee(st, dst, made);
    if (made && st->bf_chunk) {
        char line[32];
        snprintf(line, sizeof(line), "%08x\r\n", (unsigned)made);
        memcpy(buf_wptr(out), line, CHUNK_HEAD);
        out->tail += (uint32_t)(head + made);
        buf_append(out, "\r\n", 2);
    } else if (made) {
        out->tail += (uint32_t)made;
    }
    if (*ended && st->bf_chunk)
        buf_append(out, "0\r\n\r\n", 5);
    return 0;
}

int bf_take(struct stream *st, struct buf *src, struct buf *out)
{
    struct relay *r = &st->resp_body;
    if (r->done)
        return 0;
    buf_compact(out);
    for (int guard = 0; guard < 64; guard++) {
        const uint8_t *in;
        size_t len;
        if (plain_input(st, src, &in, &len) < 0)
            return -1;
        bool last = st->bf_in_done &&
                    (r->in == RIN_CHUNKED ? true : r->in == RIN_EOF ? len == buf_len(src) : true);
        if (!len && !last)
            return 0;
        size_t used;
        bool ended;
        if (emit(st, out, in, len, last, &used, &ended) < 0)
            return -1;
        plain_consumed(st, src, used);
        if (ended) {
            r->done = true;
            cache_fill_done(st);
            return 0;
        }
        if (!used && (!last || buf_room(out) < CHUNK_HEAD + CHUNK_TAIL + 64))
            return 0;
        if (r->in == RIN_LENGTH && st->bf_in_done)
            continue; /* the remaining bytes are beyond the body */
    }
    return 0;
}

int bf_flush(struct stream *st, struct buf *out)
{
    if (!st->zenc || st->resp_body.done || !st->bf_unflushed ||
        (st->resp_body.in == RIN_CHUNKED && st->bf_stage && buf_len(st->bf_stage)))
        return 0;
    /* The origin has nothing more for now: what the encoder holds goes out,
     * so a slow or streaming origin's bytes reach the client promptly. */
    buf_compact(out);
    st->bf_flush = true;
    size_t used;
    bool ended;
    uint32_t before = out->tail;
    if (emit(st, out, NULL, 0, false, &used, &ended) < 0)
        return -1;
    return out->tail != before;
}

int bf_eof(struct stream *st, struct buf *src, struct buf *out)
{
    struct relay *r = &st->resp_body;
    r->eof_seen = true;
    if (r->done)
        return 0;
    if (r->in != RIN_EOF && !st->bf_in_done)
        return -1; /* cut before the declared end */
    st->bf_in_done = true;
    return bf_take(st, src, out);
}
