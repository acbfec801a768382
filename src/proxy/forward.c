/* forward.c - what crosses the proxy in the message heads: the upstream
 * request head (hop-by-hop fields dropped, X-Forwarded-* and X-Request-Id set,
 * the route's request header rules applied) and the client response head
 * (hop-by-hop fields dropped, framing chosen, response rules applied). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/rand.h"
#include "http/h1_parse.h"
#include "net/tls.h"
#include "proxy/engine.h"

#define HDR_TMP_MAX 8192

/* ---- helpers ---- */

static inline int put(struct buf *b, const char *p, size_t n)
{
    return buf_append(b, p, n);
}
static inline int puts_(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}
static inline int put_str(struct buf *b, struct str s)
{
    return buf_append(b, s.p, s.len);
}
static int put_header(struct buf *b, struct str name, struct str value)
{
    if (buf_room(b) < name.len + value.len + 4) {
        buf_compact(b);
        if (buf_room(b) < name.len + value.len + 4)
            return -1;
    }
    char *w = buf_wptr(b);
    memcpy(w, name.p, name.len);
    w += name.len;
    *w++ = ':';
    *w++ = ' ';
    memcpy(w, value.p, value.len);
    w += value.len;
    *w++ = '\r';
    *w++ = '\n';
    b->tail += (uint32_t)(name.len + value.len + 4);
    return 0;
}

static bool is_conn_token(const struct http_framing *f, struct str name)
{
    for (unsigned i = 0; i < f->n_conn_tokens; i++)
        if (str_eq_ci(f->conn_tokens[i], name))
            return true;
    return false;
}

/* Fields that only describe one connection (RFC 9110 §7.6.1). */
static bool is_hop_by_hop(struct str n)
{
    switch (n.len) {
    case 2:
        return str_eq_lit_ci(n, "te");
    case 7:
        return str_eq_lit_ci(n, "trailer") || str_eq_lit_ci(n, "upgrade");
    case 10:
        return str_eq_lit_ci(n, "connection") || str_eq_lit_ci(n, "keep-alive");
    case 16:
        return str_eq_lit_ci(n, "proxy-connection");
    case 17:
        return str_eq_lit_ci(n, "transfer-encoding");
    }
    return false;
}

bool fwd_connection_field(const struct http_framing *f, struct str name)
{
    return is_hop_by_hop(name) || is_conn_token(f, name);
}

bool fwd_rule_overrides(const struct header_rules *hr, struct str name)
{
    for (size_t i = 0; hr && i < hr->n; i++) {
        const struct header_rule *r = &hr->rules[i];
        if (r->op != HDR_ADD && str_eq_ci(str_make(r->name, r->name_len), name))
            return true;
    }
    return false;
}

static int put_rules(struct stream *st, struct buf *out, const struct header_rules *hr)
{
    char tmp[HDR_TMP_MAX];
    for (size_t i = 0; i < hr->n; i++) {
        const struct header_rule *r = &hr->rules[i];
        if (r->op == HDR_REMOVE)
            continue;
        size_t n = tmpl_expand(r->value, fwd_tmpl_var, st, tmp, sizeof(tmp));
        if (n > sizeof(tmp))
            n = sizeof(tmp);
        /* A placeholder may carry bytes a field must not hold. */
        for (size_t k = 0; k < n; k++)
            if (tmp[k] == '\r' || tmp[k] == '\n' || tmp[k] == '\0')
                tmp[k] = ' ';
        if (put_header(out, str_make(r->name, r->name_len), str_make(tmp, n)) < 0)
            return -1;
    }
    return 0;
}

/* ---- client address and request id ---- */

static bool ip_trusted(const struct conf *c, struct str ip)
{
    char tmp[64];
    if (ip.len == 0 || ip.len >= sizeof(tmp))
        return false;
    memcpy(tmp, ip.p, ip.len);
    tmp[ip.len] = '\0';
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, tmp, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, tmp, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        return false;
    return cidr_match_any(c->trusted_proxies, c->n_trusted_proxies, (struct sockaddr *)&ss);
}

static void set_client_ip(struct stream *st, struct str ip)
{
    size_t n = ip.len < sizeof(st->client_ip) ? ip.len : sizeof(st->client_ip) - 1;
    memcpy(st->client_ip, ip.p, n);
    st->client_ip_len = (uint8_t)n;
}

/* The client is the right-most X-Forwarded-For entry not added by a trusted
 * proxy: entries further left could have been forged by the client. */
static void client_ip_from_xff(struct stream *st)
{
    const struct http_request *rq = &st->req;
    struct str last_untrusted = STR_NULL, leftmost = STR_NULL;
    for (int i = (int)rq->n_headers - 1; i >= 0 && !last_untrusted.p; i--) {
        if (!str_eq_lit_ci(rq->headers[i].name, "x-forwarded-for"))
            continue;
        struct str v = rq->headers[i].value;
        size_t end = v.len;
        while (end > 0) {
            size_t start = end;
            while (start > 0 && v.p[start - 1] != ',')
                start--;
            struct str item = str_trim_ows(str_make(v.p + start, end - start));
            end = start ? start - 1 : 0;
            if (!item.len)
                continue;
            leftmost = item;
            if (!ip_trusted(st->conf, item)) {
                last_untrusted = item;
                break;
            }
        }
    }
    if (last_untrusted.p)
        set_client_ip(st, last_untrusted);
    else if (leftmost.p)
        set_client_ip(st, leftmost);
}

static bool lower_hex(const char *p, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        *all_zero &= c == '0';
    }
    return true;
}

/* W3C Trace Context: "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>"
 * (later versions may append fields after the flags). */
static bool traceparent_valid(struct str v)
{
    bool z;
    if (v.len < 55 || v.p[2] != '-' || v.p[35] != '-' || v.p[52] != '-')
        return false;
    if (!lower_hex(v.p, 2, &z) || (v.p[0] == 'f' && v.p[1] == 'f'))
        return false;
    if (v.len > 55 && (v.p[0] == '0' && v.p[1] == '0'))
        return false; /* version 00 has exactly four fields */
    if (!lower_hex(v.p + 3, 32, &z) || z || !lower_hex(v.p + 36, 16, &z) || z)
        return false;
    return lower_hex(v.p + 53, 2, &z);
}

/* The trace id of the request for the log: taken from a valid traceparent,
 * or, with `tracing: true`, a new trace started here (sent upstream in place
 * of an invalid or missing one). */
static void trace_prepare(struct stream *st)
{
    st->trace_len = 0;
    st->trace_gen = false;
    int i = http_header_find(st->req.headers, st->req.n_headers, STR_LIT("traceparent"), 0);
    if (i >= 0 && http_header_find(st->req.headers, st->req.n_headers, STR_LIT("traceparent"),
                                   i + 1) < 0 &&
        traceparent_valid(st->req.headers[i].value)) {
        memcpy(st->trace, st->req.headers[i].value.p, 55);
        st->trace_len = 55;
        return;
    }
    if (!st->conf->tracing)
        return;
    memcpy(st->trace, "00-", 3);
    rand_hex(st->trace + 3, 16);
    st->trace[35] = '-';
    rand_hex(st->trace + 36, 8);
    memcpy(st->trace + 52, "-01", 3);
    st->trace_len = 55;
    st->trace_gen = true;
}

void fwd_prepare(struct stream *st)
{
    struct client *cl = st->cl;
    const struct conf *c = st->conf;
    st->peer_trusted = c->n_trusted_proxies &&
                       cidr_match_any(c->trusted_proxies, c->n_trusted_proxies,
                                      (const struct sockaddr *)&cl->peer.ss);
    set_client_ip(st, str_make(cl->peer_ip, cl->peer_ip_len));
    if (st->peer_trusted)
        client_ip_from_xff(st);

    st->req_id_len = 0;
    int i = http_header_find(st->req.headers, st->req.n_headers, STR_LIT("x-request-id"), 0);
    if (i >= 0) {
        struct str v = st->req.headers[i].value;
        bool ok = v.len > 0 && v.len < sizeof(st->req_id);
        for (size_t k = 0; ok && k < v.len; k++)
            ok = v.p[k] > 0x20 && v.p[k] < 0x7f;
        if (ok) {
            memcpy(st->req_id, v.p, v.len);
            st->req_id_len = (uint8_t)v.len;
        }
    }
    if (!st->req_id_len) {
        rand_hex(st->req_id, 16);
        st->req_id_len = 32;
    }
    trace_prepare(st);
}

struct str fwd_tmpl_var(void *ctx, enum tmpl_var v, struct str arg)
{
    struct stream *st = ctx;
    const struct http_request *rq = &st->req;
    switch (v) {
    case TMPL_CLIENT_IP:
        return str_make(st->client_ip, st->client_ip_len);
    case TMPL_HOST: {
        /* The host without its port. */
        struct str h = rq->authority;
        if (h.len && h.p[0] == '[') {
            const char *e = memchr(h.p, ']', h.len);
            if (e)
                h.len = (size_t)(e - h.p) + 1;
        } else {
            const char *c = memchr(h.p, ':', h.len);
            if (c)
                h.len = (size_t)(c - h.p);
        }
        return h;
    }
    case TMPL_PATH:
        return rq->path;
    case TMPL_QUERY:
        return rq->query.p ? rq->query : STR_NULL;
    case TMPL_SCHEME:
        return st->cl->listener->tls ? STR_LIT("https") : STR_LIT("http");
    case TMPL_TLS_CLIENT_SUBJECT:
        if (!st->tls_subject_done) {
            st->tls_subject_len = (uint16_t)tls_client_subject(&st->cl->x, st->tls_subject,
                                                               sizeof(st->tls_subject));
            st->tls_subject_done = true;
        }
        return str_make(st->tls_subject, st->tls_subject_len);
    case TMPL_REQUEST_ID:
        return str_make(st->req_id, st->req_id_len);
    case TMPL_METHOD:
        return rq->method;
    case TMPL_URI:
        if (rq->query.p)
            return str_make(rq->path.p, (size_t)(rq->query.p + rq->query.len - rq->path.p));
        return rq->path;
    case TMPL_HEADER: {
        int i = http_header_find(rq->headers, rq->n_headers, arg, 0);
        return i >= 0 ? rq->headers[i].value : STR_NULL;
    }
    default:
        return STR_NULL;
    }
}

/* ---- upstream request head ---- */

static bool is_conditional(struct str n)
{
    return str_eq_lit_ci(n, "if-none-match") || str_eq_lit_ci(n, "if-modified-since") ||
           str_eq_lit_ci(n, "if-match") || str_eq_lit_ci(n, "if-unmodified-since") ||
           str_eq_lit_ci(n, "if-range") || str_eq_lit_ci(n, "range");
}

static bool is_forwarding_header(struct str n)
{
    return str_eq_lit_ci(n, "x-forwarded-for") || str_eq_lit_ci(n, "x-forwarded-proto") ||
           str_eq_lit_ci(n, "x-forwarded-host") || str_eq_lit_ci(n, "x-real-ip") ||
           str_eq_lit_ci(n, "x-request-id");
}

/* Joins every value of a field (in order) with ", ". */
static int put_joined(struct buf *out, const struct http_request *rq, struct str name)
{
    bool first = true;
    for (unsigned i = 0; i < rq->n_headers; i++) {
        if (!str_eq_ci(rq->headers[i].name, name))
            continue;
        if (!first && put(out, ", ", 2) < 0)
            return -1;
        if (put_str(out, rq->headers[i].value) < 0)
            return -1;
        first = false;
    }
    return first ? 1 : 0;
}

int fwd_request_head(struct stream *st)
{
    const struct http_request *rq = &st->req;
    const struct conf_route *rt = st->route;
    struct buf *out = st->req_head;
    bool upgrade = rq->framing.conn_upgrade && rq->upgrade.len;

    /* Request line: always origin-form towards the upstream. */
    int rc = put_str(out, rq->method);
    rc |= put(out, " ", 1);
    if (rq->scheme.len) {
        rc |= put_str(out, rq->path.len ? rq->path : STR_LIT("/"));
        if (rq->query.p) {
            rc |= put(out, "?", 1);
            rc |= put_str(out, rq->query);
        }
    } else {
        rc |= put_str(out, rq->target);
    }
    rc |= puts_(out, " HTTP/1.1\r\n");
    if (rc)
        return -1;

    bool have_host = false, cookies_done = false;
    bool fetching = cache_fetching(st);
    for (unsigned i = 0; i < rq->n_headers; i++) {
        const struct http_header *h = &rq->headers[i];
        if (is_hop_by_hop(h->name) || is_conn_token(&rq->framing, h->name) ||
            is_forwarding_header(h->name))
            continue;
        if (rq->version == 20 && str_eq_lit_ci(h->name, "cookie")) {
            /* HTTP/2 clients split cookies into one field per crumb; an
             * HTTP/1.1 origin gets them joined (RFC 9113 §8.2.3). */
            if (cookies_done || fwd_rule_overrides(&rt->req_headers, h->name))
                continue;
            cookies_done = true;
            rc = puts_(out, "Cookie: ");
            bool first = true;
            for (unsigned k = i; k < rq->n_headers; k++) {
                if (!str_eq_lit_ci(rq->headers[k].name, "cookie"))
                    continue;
                if (!first)
                    rc |= put(out, "; ", 2);
                rc |= put_str(out, rq->headers[k].value);
                first = false;
            }
            if (rc || put(out, "\r\n", 2) < 0)
                return -1;
            continue;
        }
        if (str_eq_lit_ci(h->name, "expect"))
            continue; /* 100-continue is answered by portico itself */
        if (fetching && is_conditional(h->name))
            continue; /* the cache fetches the whole object for itself */
        if (st->trace_gen && str_eq_lit_ci(h->name, "traceparent"))
            continue; /* invalid: replaced by the trace started here */
        if (fwd_rule_overrides(&rt->req_headers, h->name))
            continue;
        if (str_eq_lit_ci(h->name, "host")) {
            have_host = true;
            if (rq->scheme.len) { /* absolute-form: Host = its authority */
                if (put_header(out, h->name, rq->authority) < 0)
                    return -1;
                continue;
            }
        }
        if (put_header(out, h->name, h->value) < 0)
            return -1;
    }
    if (!have_host) {
        struct str host = rq->authority.len ? rq->authority : STR_NULL;
        char tmp[64];
        if (!host.len && st->server) {
            /* HTTP/1.0 without Host: name the server. */
            host = str_c(st->server->address);
        } else if (!host.len) {
            snprintf(tmp, sizeof(tmp), "localhost");
            host = str_c(tmp);
        }
        if (put_header(out, STR_LIT("Host"), host) < 0)
            return -1;
    }

    /* X-Forwarded-For: appended to only for a trusted peer. */
    if (!fwd_rule_overrides(&rt->req_headers, STR_LIT("x-forwarded-for"))) {
        rc = puts_(out, "X-Forwarded-For: ");
        if (st->peer_trusted) {
            int r = put_joined(out, rq, STR_LIT("x-forwarded-for"));
            if (r < 0)
                return -1;
            if (r == 0)
                rc |= put(out, ", ", 2);
        }
        rc |= put(out, st->cl->peer_ip, st->cl->peer_ip_len);
        rc |= put(out, "\r\n", 2);
        if (rc)
            return -1;
    }
    if (!fwd_rule_overrides(&rt->req_headers, STR_LIT("x-forwarded-proto"))) {
        int i = st->peer_trusted ? http_header_find(rq->headers, rq->n_headers,
                                                    STR_LIT("x-forwarded-proto"), 0)
                                 : -1;
        if (put_header(out, STR_LIT("X-Forwarded-Proto"),
                       i >= 0 ? rq->headers[i].value
                              : fwd_tmpl_var(st, TMPL_SCHEME, STR_NULL)) < 0)
            return -1;
    }
    if (!fwd_rule_overrides(&rt->req_headers, STR_LIT("x-forwarded-host"))) {
        int i = st->peer_trusted ? http_header_find(rq->headers, rq->n_headers,
                                                    STR_LIT("x-forwarded-host"), 0)
                                 : -1;
        struct str v = i >= 0 ? rq->headers[i].value : rq->authority;
        if (v.len && put_header(out, STR_LIT("X-Forwarded-Host"), v) < 0)
            return -1;
    }
    if (!fwd_rule_overrides(&rt->req_headers, STR_LIT("x-real-ip")) &&
        put_header(out, STR_LIT("X-Real-IP"), str_make(st->client_ip, st->client_ip_len)) < 0)
        return -1;
    if (!fwd_rule_overrides(&rt->req_headers, STR_LIT("x-request-id")) &&
        put_header(out, STR_LIT("X-Request-Id"), str_make(st->req_id, st->req_id_len)) < 0)
        return -1;
    if (rq->framing.chunked && puts_(out, "Transfer-Encoding: chunked\r\n") < 0)
        return -1;
    if (upgrade) {
        if (puts_(out, "Connection: upgrade\r\n") < 0 ||
            put_header(out, STR_LIT("Upgrade"), rq->upgrade) < 0)
            return -1;
    }
    if (put_rules(st, out, &rt->req_headers) < 0)
        return -1;
    if (st->trace_gen && put_header(out, STR_LIT("traceparent"), str_make(st->trace, 55)) < 0)
        return -1;
    if (fetching) {
        char v[1024];
        size_t n = cache_validators(st, v, sizeof(v));
        if (n && put(out, v, n) < 0)
            return -1;
    }
    return put(out, "\r\n", 2);
}

/* ---- client response head ---- */

int fwd_response_rules(struct stream *st, struct buf *out)
{
    if (!st->route)
        return 0;
    return put_rules(st, out, &st->route->resp_headers);
}

static int put_status_line(struct buf *out, int status)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    return put(out, line, (size_t)n);
}

int fwd_response_head(struct stream *st, const struct http_response *rs)
{
    struct buf *out = st->resp_out;
    const struct http_request *rq = &st->req;
    const struct header_rules *rules = st->route ? &st->route->resp_headers : NULL;
    int status = rs->status;
    bool client_10 = rq->version == 10;
    bool upstream_close = rs->framing.conn_close || (rs->version == 10 && !rs->framing.conn_keep_alive);
    bool no_body = st->is_head || status == 204 || status == 304 || (status >= 100 && status < 200);
    bool switching = status == 101;

    st->status = status;
    st->up_reusable = !upstream_close;
    if (switching) {
        relay_init(&st->resp_body, RIN_EOF, ROUT_RAW, 0);
        st->tunnel = true;
        st->close_client = true;
    } else if (no_body) {
        relay_init(&st->resp_body, RIN_NONE, ROUT_RAW, 0);
    } else if (rs->framing.chunked) {
        relay_init(&st->resp_body, RIN_CHUNKED, client_10 ? ROUT_DECHUNK : ROUT_RAW, 0);
        if (client_10)
            st->close_client = true;
    } else if (rs->framing.has_content_length) {
        relay_init(&st->resp_body, RIN_LENGTH, ROUT_RAW, rs->framing.content_length);
    } else {
        relay_init(&st->resp_body, RIN_EOF, client_10 ? ROUT_RAW : ROUT_CHUNK, 0);
        st->up_reusable = false;
        if (client_10)
            st->close_client = true;
    }
    if (!stream_client_keeps_alive(st))
        st->close_client = true;

    if (put_status_line(out, status) < 0)
        return -1;
    bool have_cl = false;
    for (unsigned i = 0; i < rs->n_headers; i++) {
        const struct http_header *h = &rs->headers[i];
        if (is_hop_by_hop(h->name) || is_conn_token(&rs->framing, h->name))
            continue;
        if (str_eq_lit_ci(h->name, "x-request-id"))
            continue;
        if (rules && fwd_rule_overrides(rules, h->name))
            continue;
        if (str_eq_lit_ci(h->name, "content-length")) {
            /* 204 and 1xx never carry a length; HEAD and 304 keep it. */
            if (status == 204 || status < 200)
                continue;
            have_cl = true;
        }
        if (put_header(out, h->name, h->value) < 0)
            return -1;
    }
    (void)have_cl;
    if (put_header(out, STR_LIT("X-Request-Id"), str_make(st->req_id, st->req_id_len)) < 0)
        return -1;
    if (switching) {
        if (puts_(out, "Connection: upgrade\r\n") < 0)
            return -1;
        int i = http_header_find(rs->headers, rs->n_headers, STR_LIT("upgrade"), 0);
        if (i >= 0 && put_header(out, STR_LIT("Upgrade"), rs->headers[i].value) < 0)
            return -1;
    } else if (!no_body && st->resp_body.in == RIN_CHUNKED && !client_10) {
        if (puts_(out, "Transfer-Encoding: chunked\r\n") < 0)
            return -1;
    } else if (!no_body && st->resp_body.out == ROUT_CHUNK) {
        if (puts_(out, "Transfer-Encoding: chunked\r\n") < 0)
            return -1;
    }
    if (!switching) {
        if (st->close_client) {
            if (puts_(out, "Connection: close\r\n") < 0)
                return -1;
        } else if (client_10 && puts_(out, "Connection: keep-alive\r\n") < 0) {
            return -1;
        }
    }
    if (rules && put_rules(st, out, rules) < 0)
        return -1;
    return put(out, "\r\n", 2);
}
