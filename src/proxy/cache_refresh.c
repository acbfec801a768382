/* cache_refresh.c - stale-while-revalidate's background request: a copy of
 * the client's request (GET, same target, host and fields, minus its own
 * conditionals) run on an internal connection of the same worker, so it
 * takes the normal path (routing, balancing, pooling, compression, the
 * cache fill) while the client is answered from the stale object. */
#include <string.h>

#include "core/common.h"
#include "filters/cache_store.h"
#include "proxy/engine.h"

/* Fields the copy must not carry: connection-specific ones, the body's
 * framing (the copy has no body), Host (written first), the client's own
 * conditionals and range, and its request id (the copy gets its own). */
static bool skipped(const struct http_request *rq, struct str n)
{
    return fwd_connection_field(&rq->framing, n) || str_eq_lit_ci(n, "content-length") ||
           str_eq_lit_ci(n, "expect") ||
           str_eq_lit_ci(n, "host") || str_eq_lit_ci(n, "if-none-match") ||
           str_eq_lit_ci(n, "if-modified-since") || str_eq_lit_ci(n, "range") ||
           str_eq_lit_ci(n, "if-range") || str_eq_lit_ci(n, "x-request-id");
}

static bool add(struct buf *b, struct str s)
{
    return buf_append(b, s.p, s.len) == 0;
}

int cache_refresh_start(struct stream *st, struct cache_obj *o)
{
    const struct http_request *rq = &st->req;
    struct buf *b = buf_get(BUF_BIG_SIZE);
    bool ok = add(b, STR_LIT("GET "));
    if (rq->path.len) {
        ok &= add(b, rq->path);
        if (rq->query.p) {
            ok &= add(b, STR_LIT("?"));
            ok &= add(b, rq->query);
        }
    } else {
        ok &= add(b, STR_LIT("/"));
    }
    ok &= add(b, STR_LIT(" HTTP/1.1\r\nHost: "));
    ok &= add(b, rq->authority);
    ok &= add(b, STR_LIT("\r\n"));
    for (unsigned i = 0; i < rq->n_headers && ok; i++) {
        const struct http_header *h = &rq->headers[i];
        if (skipped(rq, h->name) || (h->name.len && h->name.p[0] == ':'))
            continue;
        ok &= add(b, h->name) && add(b, STR_LIT(": ")) && add(b, h->value) &&
              add(b, STR_LIT("\r\n"));
    }
    ok &= add(b, STR_LIT("Connection: close\r\n\r\n"));
    struct client *cl = ok ? client_internal(st->w, st->cl, buf_rptr(b), buf_len(b)) : NULL;
    buf_put(b);
    if (!cl)
        return -1;
    cache_obj_ref(o);
    cl->refresh_obj = o;
    client_schedule(cl);
    return 0;
}
