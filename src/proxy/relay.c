/* relay.c - moving one body direction from a source buffer towards a sink:
 * validating the source framing (length, chunked, until-close) and choosing
 * between writing bytes as they are (zero copy) and reframing them. */
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

#include "proxy/engine.h"

/* Trailer sections larger than this are refused (they are held in a buffer). */
#define RELAY_MAX_TRAILER 8192

void relay_init(struct relay *r, enum relay_in in, enum relay_out out, uint64_t length)
{
    free(r->trailers);
    memset(r, 0, sizeof(*r));
    r->in = (uint8_t)in;
    r->out = (uint8_t)out;
    r->remaining = length;
    if (in == RIN_CHUNKED)
        chunked_dec_init(&r->dec, RELAY_MAX_TRAILER);
    if (in == RIN_NONE || (in == RIN_LENGTH && length == 0))
        r->done = true;
}

static int take_raw(struct relay *r, struct buf *src)
{
    size_t avail = buf_len(src);
    switch (r->in) {
    case RIN_LENGTH: {
        size_t n = avail < r->remaining ? avail : (size_t)r->remaining;
        r->raw_pending = (uint32_t)n;
        r->remaining -= n;
        r->total += n;
        if (r->remaining == 0)
            r->done = true;
        return 0;
    }
    case RIN_CHUNKED: {
        /* Pass the validated chunked bytes through unchanged: extensions and
         * trailers survive, and nothing is copied. */
        const char *p = buf_rptr(src);
        size_t off = 0;
        while (off < avail) {
            size_t used, doff, dlen;
            int rc = chunked_decode(&r->dec, p + off, avail - off, &used, &doff, &dlen);
            if (rc == CHUNKED_ERROR)
                return -1;
            off += used;
            r->total += dlen;
            if (rc == CHUNKED_DONE) {
                r->done = true;
                break;
            }
            if (used == 0)
                break;
        }
        r->raw_pending = (uint32_t)off;
        return 0;
    }
    case RIN_EOF:
        r->raw_pending = (uint32_t)avail;
        r->total += avail;
        return 0;
    default:
        r->done = true;
        return 0;
    }
}

/* Wraps until-close data into chunks for an HTTP/1.1 client. */
static int take_chunk(struct relay *r, struct buf *src, struct buf *out)
{
    buf_compact(out);
    size_t room = buf_room(out);
    if (room < 32)
        return 0;
    size_t n = buf_len(src);
    if (n > room - 24)
        n = room - 24;
    char line[24];
    size_t ll = chunked_size_line(line, n);
    buf_append(out, line, ll);
    buf_append(out, buf_rptr(src), n);
    buf_append(out, "\r\n", 2);
    buf_consume(src, n);
    r->total += n;
    return 0;
}

/* Strips chunk framing for an HTTP/1.0 client (body then delimited by close). */
static int take_dechunk(struct relay *r, struct buf *src, struct buf *out)
{
    buf_compact(out);
    while (!r->done && buf_len(src) && buf_room(out)) {
        size_t feed = buf_len(src);
        if (feed > buf_room(out))
            feed = buf_room(out);
        size_t used, doff, dlen;
        int rc = chunked_decode(&r->dec, buf_rptr(src), feed, &used, &doff, &dlen);
        if (rc == CHUNKED_ERROR)
            return -1;
        if (dlen)
            buf_append(out, buf_rptr(src) + doff, dlen);
        r->total += dlen;
        buf_consume(src, used);
        if (rc == CHUNKED_DONE)
            r->done = true;
        if (used == 0)
            break;
    }
    return 0;
}

void relay_keep_trailers(struct relay *r)
{
    if (r->in != RIN_CHUNKED || r->trailers)
        return;
    r->trailers = xmalloc(RELAY_MAX_TRAILER);
    r->dec.trailers = r->trailers;
    r->dec.trailers_cap = RELAY_MAX_TRAILER;
    r->dec.trailers_len = 0;
}

void relay_free(struct relay *r)
{
    free(r->trailers);
    r->trailers = NULL;
    r->dec.trailers = NULL;
}

int relay_take(struct relay *r, struct buf *src, struct buf *out)
{
    if (r->done || r->raw_pending)
        return 0;
    switch (r->out) {
    case ROUT_CHUNK:
        return take_chunk(r, src, out);
    case ROUT_DECHUNK:
        return take_dechunk(r, src, out);
    default:
        return take_raw(r, src);
    }
}

int relay_eof(struct relay *r, struct buf *out)
{
    return relay_eof_trailers(r, out, NULL, 0);
}

int relay_eof_trailers(struct relay *r, struct buf *out, const char *trailers, size_t len)
{
    r->eof_seen = true;
    if (r->done)
        return 0;
    if (r->in != RIN_EOF)
        return -1;
    if (r->out == ROUT_CHUNK) {
        /* last-chunk, trailer fields, empty line: all or nothing */
        if (buf_room(out) < len + 5)
            buf_compact(out);
        if (buf_room(out) < len + 5)
            return -1;
        buf_append(out, "0\r\n", 3);
        if (len)
            buf_append(out, trailers, len);
        buf_append(out, "\r\n", 2);
    }
    r->done = true;
    return 0;
}
