/* cache_glue.c - the cache phase of a proxied request (RFC 9111 for a shared
 * cache): the key and its Vary variant, lookup and freshness, serving a hit
 * (zero copy from the stored object, 304 to matching conditional requests,
 * single ranges), request collapsing (a miss claims the key; other misses
 * wait for its fill, bounded), revalidation of stale objects with the
 * stored validators, stale-while-revalidate (served stale while one
 * background request refreshes) and stale-if-error, and starting and ending
 * the fill of an object from a response as it streams to the client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/common.h"
#include "filters/cache_store.h"
#include "filters/compress.h"
#include "http/cache_policy.h"
#include "log/errlog.h"
#include "proxy/engine.h"
#include "proxy/h2.h"

#define KEY_MAX 8192
/* How often a waiting request looks at the fill it waits for. */
#define WAIT_POLL_MS 2

static const char *const result_names[] = {
    [CR_NONE] = NULL,          [CR_HIT] = "HIT",     [CR_MISS] = "MISS",
    [CR_STALE] = "STALE",      [CR_BYPASS] = "BYPASS", [CR_REVALIDATED] = "REVALIDATED",
    [CR_EXPIRED] = "EXPIRED",
};

const char *cache_result_name(unsigned r)
{
    return r < ARRAY_SIZE(result_names) ? result_names[r] : NULL;
}

static int64_t now_s(void)
{
    return (int64_t)(clock_wall_ms() / 1000);
}

/* ---- keys ---- */

static bool build_key(struct stream *st)
{
    const struct conf_cache *cc = st->route->cache;
    char k[KEY_MAX];
    size_t n;
    if (cc->key) {
        n = tmpl_expand(cc->key, fwd_tmpl_var, st, k, KEY_MAX);
        if (n > KEY_MAX)
            return false;
    } else {
        struct str scheme = fwd_tmpl_var(st, TMPL_SCHEME, STR_NULL);
        struct str host = fwd_tmpl_var(st, TMPL_HOST, STR_NULL);
        struct str path = st->req.path, query = st->req.query;
        int w = snprintf(k, KEY_MAX, "%.*s://%.*s%.*s%s%.*s", STR_FMT(scheme), STR_FMT(host),
                         STR_FMT(path), query.p ? "?" : "", STR_FMT(query));
        if (w < 0 || w >= KEY_MAX)
            return false;
        n = (size_t)w;
        for (size_t i = scheme.len + 3; i < scheme.len + 3 + host.len; i++)
            if (k[i] >= 'A' && k[i] <= 'Z')
                k[i] = (char)(k[i] + 32);
    }
    /* '\n' separates a key from its variant part. */
    for (size_t i = 0; i < n; i++)
        if (k[i] == '\n')
            k[i] = ' ';
    st->cache_key = xmalloc(n + 1);
    memcpy(st->cache_key, k, n);
    st->cache_key[n] = '\0';
    st->cache_key_len = n;
    return true;
}

/* Variant key: the primary key, '\n', then "name=value\n" for each field the
 * origin varies on (names: lowercase, comma separated). */
static void build_vkey(struct stream *st, const char *names, size_t nl)
{
    char v[KEY_MAX + 1024];
    size_t n = st->cache_key_len;
    memcpy(v, st->cache_key, n);
    v[n++] = '\n';
    struct str rest = str_make(names, nl), name;
    while (str_list_next(&rest, &name)) {
        if (!name.len || n + name.len + 2 >= KEY_MAX + 1024)
            continue;
        memcpy(v + n, name.p, name.len);
        n += name.len;
        v[n++] = '=';
        size_t vstart = n;
        if (st->route->compress && str_eq_lit_ci(name, "accept-encoding")) {
            struct str c2 = str_c(zalg_name(bf_negotiate(st)));
            if (n + c2.len + 1 < KEY_MAX + 1024) {
                memcpy(v + n, c2.p, c2.len);
                n += c2.len;
            }
        } else if (name.len > 7 && strncasecmp(name.p, "accept-", 7) == 0) {
            /* Case-insensitive tokens: normalised, so equal preferences share. */
            size_t w = header_values_normalized(st->req.headers, st->req.n_headers, name, v + n,
                                                KEY_MAX + 1024 - n - 1);
            n += MIN(w, KEY_MAX + 1024 - n - 2);
        } else {
            /* Other fields (Cookie, Authorization, ...) may be case-sensitive:
             * their values are taken as sent. */
            for (unsigned i = 0; i < st->req.n_headers; i++) {
                const struct http_header *h = &st->req.headers[i];
                if (!str_eq_ci(h->name, name) || n + h->value.len + 2 >= KEY_MAX + 1024)
                    continue;
                memcpy(v + n, h->value.p, h->value.len);
                n += h->value.len;
                v[n++] = ',';
            }
        }
        for (size_t i = vstart; i < n; i++)
            if (v[i] == '\n')
                v[i] = ' ';
        v[n++] = '\n';
    }
    free(st->cache_vkey);
    st->cache_vkey = xmalloc(n);
    memcpy(st->cache_vkey, v, n);
    st->cache_vkey_len = n;
}

static const char *lookup_key(const struct stream *st, size_t *len)
{
    if (st->cache_vkey) {
        *len = st->cache_vkey_len;
        return st->cache_vkey;
    }
    *len = st->cache_key_len;
    return st->cache_key;
}

/* Takes the fill claim of the current lookup key, remembering which key it
 * was (the variant key may change once the response names its Vary). */
static bool claim(struct stream *st, uint64_t now_ms)
{
    size_t kl;
    const char *k = lookup_key(st, &kl);
    if (!cache_fill_claim(g_cache_store, k, kl, now_ms, st->route->cache->lock_timeout_ms))
        return false;
    free(st->cache_ckey);
    st->cache_ckey = xmalloc(kl ? kl : 1);
    memcpy(st->cache_ckey, k, kl);
    st->cache_ckey_len = kl;
    st->cache_claimed = true;
    return true;
}

/* One line of a stored head ("Name: value\r\n" lines) at *p, before e:
 * the whole line, and its name and trimmed value (both empty for a line
 * without a colon). *p moves past the line; false at the end. */
struct head_line {
    struct str line, name, value;
};

static bool head_next(const char **p, const char *e, struct head_line *hl)
{
    if (*p >= e)
        return false;
    const char *eol = memchr(*p, '\n', (size_t)(e - *p));
    const char *next = eol ? eol + 1 : e;
    const char *le = eol ? eol : e;
    if (le > *p && le[-1] == '\r')
        le--;
    const char *colon = memchr(*p, ':', (size_t)(le - *p));
    hl->line = str_make(*p, (size_t)(next - *p));
    if (colon) {
        hl->name = str_make(*p, (size_t)(colon - *p));
        hl->value = str_trim_ows(str_make(colon + 1, (size_t)(le - colon - 1)));
    } else {
        hl->name = hl->value = STR_NULL;
    }
    *p = next;
    return true;
}

/* A field of a stored head, or STR_NULL. */
static struct str head_field(const struct cache_obj *o, const char *name)
{
    struct str want = str_c(name);
    const char *p = o->head, *e = o->head + o->head_len;
    struct head_line hl;
    while (head_next(&p, e, &hl))
        if (hl.name.p && str_eq_ci(hl.name, want))
            return hl.value;
    return STR_NULL;
}

/* ---- serving from the cache ---- */

/* Fields a 304 carries from the stored response (RFC 9110 15.4.5). */
static bool field_in_304(struct str name)
{
    return str_eq_lit_ci(name, "etag") || str_eq_lit_ci(name, "cache-control") ||
           str_eq_lit_ci(name, "expires") || str_eq_lit_ci(name, "vary") ||
           str_eq_lit_ci(name, "last-modified") || str_eq_lit_ci(name, "date") ||
           str_eq_lit_ci(name, "content-location");
}

static int put_lines(struct buf *out, const char *p, size_t len, bool only_304,
                     const struct header_rules *rules)
{
    const char *e = p + len;
    struct head_line hl;
    while (head_next(&p, e, &hl)) {
        if (!hl.name.p || (only_304 && !field_in_304(hl.name)) ||
            fwd_rule_overrides(rules, hl.name))
            continue;
        if (buf_append(out, hl.line.p, hl.line.len) < 0)
            return -1;
    }
    return 0;
}

/* Answers the request from o (reference taken over). */
static void serve_object(struct stream *st, struct cache_obj *o, enum cache_result res,
                         int64_t age)
{
    const struct http_request *rq = &st->req;
    int status = o->meta.status;
    uint64_t first = 0, last = o->body_len ? o->body_len - 1 : 0;
    bool has_body = o->body_len > 0;
    char extra[512];
    size_t xl = 0;

    if (st->up)
        upstream_release(st, false);
    upstream_release_server(st);
    if (status == 200 &&
        cache_not_modified(rq, head_field(o, "etag"), head_field(o, "last-modified"))) {
        status = 304;
        has_body = false;
    } else if (status == 200 && o->body_len &&
               http_header_find(rq->headers, rq->n_headers, STR_LIT("if-range"), 0) < 0) {
        int i = http_header_find(rq->headers, rq->n_headers, STR_LIT("range"), 0);
        int r = i >= 0 ? range_single(rq->headers[i].value, o->body_len, &first, &last) : 0;
        if (r == 1) {
            status = 206;
            xl += (size_t)snprintf(extra + xl, sizeof(extra) - xl,
                                   "Content-Range: bytes %llu-%llu/%zu\r\n",
                                   (unsigned long long)first, (unsigned long long)last,
                                   o->body_len);
        } else if (r < 0) {
            status = 416;
            has_body = false;
            xl += (size_t)snprintf(extra + xl, sizeof(extra) - xl,
                                   "Content-Range: bytes */%zu\r\n", o->body_len);
        }
    }
    uint64_t blen = has_body ? last - first + 1 : 0;
    if (status != 304)
        xl += (size_t)snprintf(extra + xl, sizeof(extra) - xl, "Content-Length: %llu\r\n",
                               (unsigned long long)blen);
    const char *detail = res == CR_STALE ? "; fwd=stale"
                         : res == CR_REVALIDATED ? "; fwd=stale; fwd-status=304"
                                                 : "";
    int64_t ttl = o->meta.lifetime - age;
    xl += (size_t)snprintf(extra + xl, sizeof(extra) - xl,
                           "Age: %lld\r\nCache-Status: portico; hit%s; ttl=%lld\r\n"
                           "X-Request-Id: %.*s\r\n",
                           (long long)(age > 0 ? age : 0), detail, (long long)ttl,
                           (int)st->req_id_len, st->req_id);
    if (st->is_head)
        has_body = false;
    st->cache_status = (uint8_t)res;
    st->status = status;
    st->resp_head_done = true;
    st->resp_started = true;
    st->finishing = true;
    relay_init(&st->resp_body, RIN_NONE, ROUT_RAW, 0);
    if (has_body && blen) {
        st->hit = o;
        st->hit_off = first;
        st->hit_end = first + blen;
    }
    const bool only_304 = status == 304;
    if (st->cl->h2) {
        if (st->resp_out)
            st->resp_out->head = st->resp_out->tail = 0;
        int rc;
        if (only_304) {
            struct buf *tmp = buf_get(o->head_len + 16 <= BUF_STD_SIZE ? BUF_STD_SIZE : o->head_len + 16);
            put_lines(tmp, o->head, o->head_len, true, NULL);
            rc = h2_submit_cached(st, status, buf_rptr(tmp), buf_len(tmp), extra, xl, false);
            buf_put(tmp);
        } else {
            rc = h2_submit_cached(st, status, o->head, o->head_len, extra, xl,
                                  has_body && blen);
        }
        if (rc < 0)
            h2_reset(st);
        if (!st->hit)
            cache_obj_put(o);
        return;
    }
    if (!st->req_body.done || !stream_client_keeps_alive(st))
        st->close_client = true;
    size_t need = o->head_len + xl + 1024;
    if (st->resp_out && st->resp_out->size < need) {
        buf_put(st->resp_out);
        st->resp_out = NULL;
    }
    if (!st->resp_out)
        st->resp_out = buf_get(need <= BUF_STD_SIZE ? BUF_STD_SIZE : need);
    struct buf *out = st->resp_out;
    out->head = out->tail = 0;
    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    buf_append(out, line, (size_t)n);
    const struct header_rules *rules = st->route ? &st->route->resp_headers : NULL;
    put_lines(out, o->head, o->head_len, only_304, rules);
    buf_append(out, extra, xl);
    if (st->close_client)
        buf_append(out, "Connection: close\r\n", 19);
    else if (rq->version == 10)
        buf_append(out, "Connection: keep-alive\r\n", 24);
    fwd_response_rules(st, out);
    buf_append(out, "\r\n", 2);
    if (!st->hit)
        cache_obj_put(o);
}

/* ---- collapsing: waiting for another request's fill ---- */

static void waiters_remove(struct stream *st)
{
    struct worker *w = st->w;
    if (!st->cw_prev && w->cache_waiters != st)
        return;
    if (st->cw_prev)
        st->cw_prev->cw_next = st->cw_next;
    else if (w->cache_waiters == st)
        w->cache_waiters = st->cw_next;
    if (st->cw_next)
        st->cw_next->cw_prev = st->cw_prev;
    st->cw_next = st->cw_prev = NULL;
}

static void waiters_tick(struct timer *t);

static void waiters_add(struct stream *st)
{
    struct worker *w = st->w;
    st->cw_prev = NULL;
    st->cw_next = w->cache_waiters;
    if (w->cache_waiters)
        w->cache_waiters->cw_prev = st;
    w->cache_waiters = st;
    if (!w->cache_wait_timer.cb)
        timer_init(&w->cache_wait_timer, waiters_tick);
    timer_set(&w->loop, &w->cache_wait_timer, clock_ms() + WAIT_POLL_MS);
}

static int lookup_step(struct stream *st);
static void drop_claim(struct stream *st);

static void waiters_tick(struct timer *t)
{
    struct worker *w = container_of(t, struct worker, cache_wait_timer);
    uint64_t now = clock_ms();
    struct stream *st = w->cache_waiters;
    while (st) {
        struct stream *next = st->cw_next;
        size_t kl;
        const char *k = lookup_key(st, &kl);
        if (now >= st->cw_until ||
            !cache_fill_busy(g_cache_store, k, kl, now, st->route->cache->lock_timeout_ms)) {
            waiters_remove(st);
            int r = lookup_step(st);
            if (r != CG_WAIT) {
                if (r == CG_GO)
                    stream_proxy_go(st);
                stream_kick(st);
            }
        }
        st = next;
    }
    if (w->cache_waiters)
        timer_set(&w->loop, &w->cache_wait_timer, clock_ms() + WAIT_POLL_MS);
}

/* ---- the request side ---- */

static int64_t route_default_s(uint64_t ms)
{
    return (int64_t)(ms / 1000);
}

static int lookup_step(struct stream *st)
{
    struct cache_store *cs = g_cache_store;
    const struct conf_cache *cc = st->route->cache;
    uint64_t now_ms = clock_ms();
    if (st->stale) {
        cache_obj_put(st->stale);
        st->stale = NULL;
    }
    struct cache_obj *o = cache_lookup(cs, st->cache_key, st->cache_key_len);
    if (o && (o->meta.flags & CACHE_F_VARY)) {
        build_vkey(st, o->head, o->head_len);
        cache_obj_put(o);
        o = cache_lookup(cs, st->cache_vkey, st->cache_vkey_len);
    }
    if (o) {
        int64_t now = now_s();
        int64_t age = cache_current_age(o->meta.initial_age, o->meta.response_time, now);
        if (!(o->meta.flags & CACHE_F_NO_CACHE) && age < o->meta.lifetime) {
            serve_object(st, o, CR_HIT, age);
            return CG_DONE;
        }
        bool may_stale = !(o->meta.flags & (CACHE_F_MUST_REVALIDATE | CACHE_F_NO_CACHE));
        int64_t swr = o->meta.swr ? o->meta.swr : route_default_s(cc->stale_while_revalidate_ms);
        if (may_stale && swr > 0 && age < o->meta.lifetime + swr) {
            if (claim(st, now_ms)) {
                /* The refresh takes the claim over (or it is dropped here). */
                if (cache_refresh_start(st, o) == 0) {
                    free(st->cache_ckey);
                    st->cache_ckey = NULL;
                    st->cache_claimed = false;
                } else {
                    drop_claim(st);
                }
            }
            serve_object(st, o, CR_STALE, age);
            return CG_DONE;
        }
        st->stale = o; /* for revalidation, or stale-if-error */
        if (claim(st, now_ms)) {
            st->cache_reval = head_field(o, "etag").len || head_field(o, "last-modified").len;
            st->cache_status = CR_EXPIRED;
            return CG_GO;
        }
    } else if (st->cw_until) {
        /* The fill this request waited for ended without an object (not
         * storable, or cut): go to the origin at once, together with the
         * other waiters, rather than queueing behind one another. */
        st->cache_status = CR_MISS;
        return CG_GO;
    } else if (claim(st, now_ms)) {
        st->cache_status = CR_MISS;
        return CG_GO;
    }
    /* Another request is fetching this key: wait for it, bounded. */
    if (!st->cw_until) {
        st->cw_until = now_ms + cc->lock_timeout_ms;
    } else if (now_ms >= st->cw_until) {
        st->cache_status = st->stale ? CR_EXPIRED : CR_MISS;
        return CG_GO; /* waited long enough: fetch without storing */
    }
    waiters_add(st);
    return CG_WAIT;
}

int cache_request(struct stream *st)
{
    const struct conf_cache *cc = st->route->cache;
    if (!cc || !g_cache_store)
        return CG_GO;
    const struct http_request *rq = &st->req;
    if (rq->method_id != HTTP_M_GET && rq->method_id != HTTP_M_HEAD) {
        /* Unsafe methods invalidate what is stored for the URI (RFC 9111 4.4). */
        st->cache_status = CR_BYPASS;
        if (rq->method_id != HTTP_M_OPTIONS && rq->method_id != HTTP_M_TRACE && build_key(st))
            cache_purge(g_cache_store, st->cache_key, st->cache_key_len, true);
        return CG_GO;
    }
    struct cache_control rcc;
    cc_from_headers(rq->headers, rq->n_headers, true, &rcc);
    if (rcc.no_store || !build_key(st)) {
        st->cache_status = CR_BYPASS;
        st->cache_nostore = true;
        return CG_GO;
    }
    st->cache_req_time = now_s();
    if (st->cl->refresh) {
        /* A background refresh: the request that started it took the claim
         * of the object's key for us and handed the stale object over. */
        st->stale = st->cl->refresh_obj;
        st->cl->refresh_obj = NULL;
        if (!st->stale)
            return CG_GO;
        if (st->stale->key_len != st->cache_key_len) {
            st->cache_vkey = xmalloc(st->stale->key_len);
            memcpy(st->cache_vkey, st->stale->key, st->stale->key_len);
            st->cache_vkey_len = st->stale->key_len;
        }
        st->cache_ckey = xmalloc(st->stale->key_len);
        memcpy(st->cache_ckey, st->stale->key, st->stale->key_len);
        st->cache_ckey_len = st->stale->key_len;
        st->cache_claimed = true;
        st->cache_reval = st->stale && (head_field(st->stale, "etag").len ||
                                         head_field(st->stale, "last-modified").len);
        st->cache_status = CR_EXPIRED;
        return CG_GO;
    }
    return lookup_step(st);
}

/* Whether the forwarded request must drop the client's conditional and
 * range fields (portico fetches the full object to store it) and which
 * validators to send instead. */
bool cache_fetching(const struct stream *st)
{
    return st->cache_claimed;
}

size_t cache_validators(const struct stream *st, char *out, size_t cap)
{
    if (!st->cache_reval || !st->stale)
        return 0;
    struct str etag = head_field(st->stale, "etag");
    struct str lm = head_field(st->stale, "last-modified");
    size_t n = 0;
    if (etag.len && n + etag.len + 20 < cap)
        n += (size_t)snprintf(out + n, cap - n, "If-None-Match: %.*s\r\n", STR_FMT(etag));
    if (lm.len && n + lm.len + 24 < cap)
        n += (size_t)snprintf(out + n, cap - n, "If-Modified-Since: %.*s\r\n", STR_FMT(lm));
    return n;
}

/* ---- stale-if-error ---- */

static bool stale_usable_on_error(struct stream *st, int64_t *age)
{
    struct cache_obj *o = st->stale;
    if (!o || st->resp_started || (o->meta.flags & (CACHE_F_MUST_REVALIDATE | CACHE_F_NO_CACHE)))
        return false;
    int64_t sie = o->meta.sie ? o->meta.sie : route_default_s(st->route->cache->stale_if_error_ms);
    *age = cache_current_age(o->meta.initial_age, o->meta.response_time, now_s());
    return sie > 0 && *age < o->meta.lifetime + sie;
}

static void drop_claim(struct stream *st)
{
    if (st->cache_claimed) {
        cache_fill_release(g_cache_store, st->cache_ckey, st->cache_ckey_len);
        st->cache_claimed = false;
    }
    free(st->cache_ckey);
    st->cache_ckey = NULL;
    st->cache_ckey_len = 0;
}

bool cache_serve_stale_on_error(struct stream *st)
{
    int64_t age;
    if (!stale_usable_on_error(st, &age))
        return false;
    struct cache_obj *o = st->stale;
    st->stale = NULL;
    drop_claim(st);
    if (st->fill) {
        cache_obj_put(st->fill);
        st->fill = NULL;
    }
    serve_object(st, o, CR_STALE, age);
    return true;
}

/* ---- the response side ---- */

static bool stored_field_skipped(const struct http_response *rs, struct str n)
{
    /* Framing and per-response fields are written anew at each use. */
    return fwd_connection_field(&rs->framing, n) || str_eq_lit_ci(n, "content-length") ||
           str_eq_lit_ci(n, "x-request-id") || str_eq_lit_ci(n, "age") ||
           str_eq_lit_ci(n, "cache-status");
}

/* The stored head: the response's fields as "name: value\r\n" lines, less
 * the skipped ones. Returns a heap copy of exactly that size. */
static char *stored_head(const struct http_response *rs, size_t *len)
{
    size_t n = 0;
    for (unsigned i = 0; i < rs->n_headers; i++) {
        const struct http_header *h = &rs->headers[i];
        if (!stored_field_skipped(rs, h->name))
            n += h->name.len + h->value.len + 4;
    }
    char *out = xmalloc(n ? n : 1);
    *len = n;
    n = 0;
    for (unsigned i = 0; i < rs->n_headers; i++) {
        const struct http_header *h = &rs->headers[i];
        if (stored_field_skipped(rs, h->name))
            continue;
        memcpy(out + n, h->name.p, h->name.len);
        n += h->name.len;
        out[n++] = ':';
        out[n++] = ' ';
        memcpy(out + n, h->value.p, h->value.len);
        n += h->value.len;
        out[n++] = '\r';
        out[n++] = '\n';
    }
    return out;
}

/* Lowercase names of every Vary field, comma separated; false for "*". */
static bool vary_names(const struct http_response *rs, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    for (unsigned i = 0; i < rs->n_headers; i++) {
        if (!str_eq_lit_ci(rs->headers[i].name, "vary"))
            continue;
        struct str rest = rs->headers[i].value, name;
        while (str_list_next(&rest, &name)) {
            if (!name.len)
                continue;
            if (name.len == 1 && name.p[0] == '*')
                return false;
            if (n + name.len + 1 >= cap)
                return false;
            if (n)
                out[n++] = ',';
            for (size_t k = 0; k < name.len; k++) {
                char ch = name.p[k];
                out[n++] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
            }
        }
    }
    *len = n;
    return true;
}

static int64_t default_ttl(const struct conf_cache *cc, int status)
{
    int64_t any = -1;
    for (size_t i = 0; i < cc->n_valid; i++) {
        if (cc->valid[i].status == status)
            return (int64_t)(cc->valid[i].ttl_ms / 1000);
        if (cc->valid[i].status == 0)
            any = (int64_t)(cc->valid[i].ttl_ms / 1000);
    }
    return any;
}

static void fill_meta(struct stream *st, const struct http_response *rs,
                      const struct cache_control *cc, int64_t ttl, struct cache_meta *m)
{
    const struct conf_cache *rc = st->route->cache;
    int64_t now = now_s();
    memset(m, 0, sizeof(*m));
    m->version = CACHE_META_VERSION;
    m->status = rs->status;
    m->request_time = st->cache_req_time ? st->cache_req_time : now;
    m->response_time = now;
    int d = http_header_find(rs->headers, rs->n_headers, STR_LIT("date"), 0);
    if (d < 0 || http_date_parse(rs->headers[d].value, &m->date) < 0)
        m->date = now;
    m->initial_age = cache_initial_age(rs, m->request_time, m->response_time);
    m->lifetime = cache_lifetime(rs, cc, m->response_time, ttl);
    m->swr = cc->stale_while_revalidate >= 0 ? cc->stale_while_revalidate
                                             : route_default_s(rc->stale_while_revalidate_ms);
    m->sie = cc->stale_if_error >= 0 ? cc->stale_if_error : route_default_s(rc->stale_if_error_ms);
    if (cc->must_revalidate || cc->proxy_revalidate || cc->s_maxage >= 0)
        m->flags |= CACHE_F_MUST_REVALIDATE;
    if (cc->no_cache)
        m->flags |= CACHE_F_NO_CACHE;
    if (st->zalg != ZALG_IDENTITY)
        m->flags |= CACHE_F_ENCODED;
}

/* 304 to a revalidation: the stored object with the fields the 304 carries
 * replaced (RFC 9111 4.3.4), as a new object. */
static struct cache_obj *freshened(struct stream *st, const struct http_response *rs)
{
    struct cache_obj *old = st->stale;
    struct http_response merged;
    memset(&merged, 0, sizeof(merged));
    merged.status = old->meta.status;
    merged.version = 11;
    /* Old lines first, skipping those the 304 replaces. */
    const char *p = old->head, *e = old->head + old->head_len;
    struct head_line hl;
    while (merged.n_headers < HTTP_MAX_HEADERS && head_next(&p, e, &hl)) {
        if (hl.name.p && (http_header_find(rs->headers, rs->n_headers, hl.name, 0) < 0 ||
                          str_eq_lit_ci(hl.name, "content-length") ||
                          str_eq_lit_ci(hl.name, "content-encoding")))
            merged.headers[merged.n_headers++] = (struct http_header){hl.name, hl.value};
    }
    for (unsigned i = 0; i < rs->n_headers && merged.n_headers < HTTP_MAX_HEADERS; i++) {
        struct str n = rs->headers[i].name;
        if (str_eq_lit_ci(n, "content-length") || str_eq_lit_ci(n, "content-encoding") ||
            str_eq_lit_ci(n, "content-type") || str_eq_lit_ci(n, "vary"))
            continue;
        merged.headers[merged.n_headers++] = rs->headers[i];
    }
    struct cache_control cc;
    cc_from_headers(merged.headers, merged.n_headers, false, &cc);
    struct cache_meta m;
    fill_meta(st, &merged, &cc, default_ttl(st->route->cache, merged.status), &m);
    /* The body is the old one: so is its coding. */
    m.flags = (m.flags & ~CACHE_F_ENCODED) | (old->meta.flags & CACHE_F_ENCODED);
    size_t head_len;
    char *head = stored_head(&merged, &head_len);
    struct cache_obj *o = cache_obj_new(old->key, old->key_len, &m, head, head_len, old->body_len);
    free(head);
    if (cache_obj_append(o, old->body, old->body_len, SIZE_MAX) < 0) {
        cache_obj_put(o);
        o = NULL;
    }
    return o;
}

int cache_on_head(struct stream *st, const struct http_response *rs, size_t head_len)
{
    if (!st->route || !st->route->cache || !g_cache_store)
        return 0;
    struct upconn *up = st->up;
    if (st->cache_reval && st->stale && rs->status == 304) {
        struct cache_obj *o = freshened(st, rs);
        buf_consume(up->rbuf, head_len);
        bool reuse = !(rs->framing.conn_close || (rs->version == 10 && !rs->framing.conn_keep_alive)) &&
                     st->req_sent && buf_len(up->rbuf) == 0;
        upstream_release(st, reuse);
        upstream_release_server(st);
        if (o) {
            cache_insert(g_cache_store, o);
        } else {
            o = st->stale;
            cache_obj_ref(o);
        }
        drop_claim(st);
        serve_object(st, o, CR_REVALIDATED, 0);
        return 1;
    }
    if (rs->status >= 500 && st->stale) {
        int64_t age;
        if (stale_usable_on_error(st, &age)) {
            buf_consume(up->rbuf, head_len);
            cache_serve_stale_on_error(st);
            return 1;
        }
    }
    return 0;
}

void cache_begin_fill(struct stream *st, struct http_response *rs)
{
    const struct conf_cache *rc = st->route->cache;
    const char *detail = st->cache_status == CR_BYPASS  ? "fwd=bypass"
                         : st->cache_status == CR_EXPIRED ? "fwd=stale"
                                                          : "fwd=miss";
    bool storing = false;
    if (st->cache_claimed && st->req.method_id == HTTP_M_GET) {
        struct cache_control qcc, scc;
        cc_from_headers(st->req.headers, st->req.n_headers, true, &qcc);
        cc_from_headers(rs->headers, rs->n_headers, false, &scc);
        int64_t ttl = default_ttl(rc, rs->status);
        enum cache_verdict v =
            cache_storable(&st->req, &qcc, rs, &scc, rc->store_set_cookie, ttl);
        char names[1024];
        size_t nl = 0;
        if (v == CACHE_OK && !vary_names(rs, names, sizeof(names), &nl))
            v = CACHE_VARY_STAR;
        if (v == CACHE_OK && rs->framing.has_content_length &&
            rs->framing.content_length > rc->max_object_size && st->zalg == ZALG_IDENTITY)
            v = CACHE_NO_LIFETIME; /* too large: passed through */
        if (v == CACHE_OK) {
            if (nl) {
                build_vkey(st, names, nl);
                /* The marker tells later lookups which fields select the variant. */
                struct cache_meta mm = {.version = CACHE_META_VERSION, .flags = CACHE_F_VARY,
                                        .status = 0, .lifetime = INT64_MAX / 4};
                struct cache_obj *marker =
                    cache_obj_new(st->cache_key, st->cache_key_len, &mm, names, nl, 0);
                cache_insert(g_cache_store, marker);
                cache_obj_put(marker);
            } else if (st->cache_vkey) {
                free(st->cache_vkey);
                st->cache_vkey = NULL;
                /* The origin stopped varying: the primary key holds the object. */
            }
            struct cache_meta m;
            fill_meta(st, rs, &scc, ttl, &m);
            size_t hl, kl;
            char *head = stored_head(rs, &hl);
            const char *k = lookup_key(st, &kl);
            size_t hint = rs->framing.has_content_length && st->zalg == ZALG_IDENTITY
                              ? (size_t)rs->framing.content_length
                              : 16384;
            st->fill = cache_obj_new(k, kl, &m, head, hl, hint);
            free(head);
            storing = true;
        } else {
            /* Keys claimed under the primary key: release that one. */
            drop_claim(st);
        }
    }
    if (st->stale && !storing && rs->status < 500) {
        /* The origin answered with something not storable: forget the old object. */
        cache_remove(g_cache_store, st->stale->key, st->stale->key_len);
    }
    if (rs->n_headers < HTTP_MAX_HEADERS) {
        static __thread char cs[64];
        int n = snprintf(cs, sizeof(cs), "portico; %s%s", detail, storing ? "; stored" : "");
        rs->headers[rs->n_headers++] =
            (struct http_header){STR_LIT("Cache-Status"), str_make(cs, (size_t)n)};
    }
}

void cache_fill_data(struct stream *st, const void *p, size_t n)
{
    if (!st->fill)
        return;
    if (cache_obj_append(st->fill, p, n, st->route->cache->max_object_size) < 0) {
        cache_obj_put(st->fill);
        st->fill = NULL;
        drop_claim(st);
    }
}

void cache_fill_done(struct stream *st)
{
    if (st->fill) {
        if (cache_insert(g_cache_store, st->fill) == 0 && st->stale &&
            (st->stale->key_len != st->fill->key_len ||
             memcmp(st->stale->key, st->fill->key, st->fill->key_len) != 0))
            cache_remove(g_cache_store, st->stale->key, st->stale->key_len);
        cache_obj_put(st->fill);
        st->fill = NULL;
    }
    drop_claim(st);
}

void cache_stream_end(struct stream *st)
{
    waiters_remove(st);
    st->cw_until = 0;
    if (st->fill) {
        cache_obj_put(st->fill);
        st->fill = NULL;
    }
    if (g_cache_store)
        drop_claim(st);
    if (st->hit) {
        cache_obj_put(st->hit);
        st->hit = NULL;
    }
    if (st->stale) {
        cache_obj_put(st->stale);
        st->stale = NULL;
    }
    free(st->cache_ckey);
    st->cache_ckey = NULL;
    free(st->cache_key);
    free(st->cache_vkey);
    st->cache_key = st->cache_vkey = NULL;
    st->cache_key_len = st->cache_vkey_len = 0;
}

/* ---- the store's lifetime ---- */

int engine_cache_setup(const struct conf *c, char *err, size_t errlen)
{
    if (g_cache_store)
        return 0;
    bool any = false;
    for (size_t i = 0; i < c->n_routes; i++)
        any |= c->routes[i].cache != NULL;
    if (!any)
        return 0;
    g_cache_store = cache_store_new(c->cache.size, c->cache.path, c->cache.disk_size, err, errlen);
    if (!g_cache_store && c->cache.path) {
        /* Typically a binary upgrade: the old process still holds the
         * directory. Serve from memory rather than not at all. */
        log_warn("cache: disk tier off: %s; caching in memory only", err);
        g_cache_store = cache_store_new(c->cache.size, NULL, 0, err, errlen);
    }
    return g_cache_store ? 0 : -1;
}

void engine_cache_free(void)
{
    if (g_cache_store) {
        cache_store_free(g_cache_store);
        g_cache_store = NULL;
    }
}
