/* router.c - first-match routing on host, path and method over the routes of
 * a config snapshot, in file order. See router.h for the exact semantics. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "proxy/router.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* Ovector pairs kept in the scratch: a match needs one (the whole match);
 * more lets later features read capture groups. When a pattern has more
 * groups pcre2_match returns 0 ("ovector too small"), which is still a
 * match, so the size never changes a routing decision. */
#define ROUTER_OVECTOR_PAIRS 16

struct router_scratch {
    pcre2_match_data *md;
};

struct router_scratch *router_scratch_new(void)
{
    struct router_scratch *rs = xcalloc(1, sizeof(*rs));
    rs->md = pcre2_match_data_create(ROUTER_OVECTOR_PAIRS, NULL);
    if (!rs->md) {
        /* Only fails on OOM: keep the project's abort-on-OOM rule. */
        fputs("portico: out of memory allocating pcre2 match data\n", stderr);
        abort();
    }
    return rs;
}

void router_scratch_free(struct router_scratch *rs)
{
    if (!rs)
        return;
    pcre2_match_data_free(rs->md);
    free(rs);
}

struct str router_host_name(struct str h)
{
    if (h.len && h.p[0] == '[') {
        /* IPv6 literal: the port, if any, follows the closing bracket. */
        const char *close = memchr(h.p, ']', h.len);
        if (close)
            h.len = (size_t)(close - h.p) + 1;
        return h;
    }
    const char *colon = memchr(h.p, ':', h.len);
    if (colon && !memchr(colon + 1, ':', h.len - (size_t)(colon - h.p) - 1))
        h.len = (size_t)(colon - h.p);
    /* else: no port, or a bare IPv6 address (invalid in Host, left as is). */
    if (h.len > 1 && h.p[h.len - 1] == '.')
        h.len--; /* "example.com." is the fully qualified form of the same name */
    return h;
}

static bool host_matches(const struct conf_route *r, struct str host)
{
    if (!r->host)
        return true;
    struct str want = str_c(r->host);
    if (r->host_wildcard)
        return host.len > want.len && str_has_suffix_ci(host, want);
    if (str_eq_ci(host, want))
        return true;
    /* "[::1]" against a route written "::1". */
    if (host.len >= 2 && host.p[0] == '[' && host.p[host.len - 1] == ']')
        return str_eq_ci(str_make(host.p + 1, host.len - 2), want);
    return false;
}

static bool path_matches(const struct conf_route *r, struct str path,
                         struct router_scratch *scratch)
{
    switch (r->path_kind) {
    case PATH_ANY:
        return true;
    case PATH_PREFIX:
        return str_has_prefix(path, str_make(r->path, r->path_len));
    case PATH_EXACT:
        return str_eq(path, str_make(r->path, r->path_len));
    case PATH_REGEX: {
        const pcre2_code *re = r->regex;
        if (!re)
            return false;
        pcre2_match_data *md = scratch ? scratch->md : pcre2_match_data_create_from_pattern(re, NULL);
        if (!md)
            return false;
        /* An empty view may have p == NULL; PCRE2 wants a valid pointer. */
        PCRE2_SPTR subj = (PCRE2_SPTR)(path.p ? path.p : "");
        int rc = pcre2_match(re, subj, path.len, 0, 0, md, NULL);
        if (!scratch)
            pcre2_match_data_free(md);
        /* rc > 0 matched, 0 matched with a small ovector; < 0 no match or a
         * limit hit (treated as no match). */
        return rc >= 0;
    }
    }
    return false;
}

static bool method_matches(const struct conf_route *r, enum http_method m, struct str name)
{
    if (r->methods == 0 && r->n_method_names == 0)
        return true;
    if (m != HTTP_M_OTHER && m < HTTP_M__COUNT)
        return (r->methods >> m) & 1u;
    for (size_t i = 0; i < r->n_method_names; i++)
        if (str_eq(name, str_c(r->method_names[i])))
            return true;
    return false;
}

const struct conf_route *router_match(const struct conf *c, struct str host, struct str path,
                                      enum http_method method, struct str method_name,
                                      struct router_scratch *scratch)
{
    if (!host.p)
        host = STR_LIT("");
    host = router_host_name(host);
    if (path.p) {
        const char *q = memchr(path.p, '?', path.len);
        if (q)
            path.len = (size_t)(q - path.p);
    }
    for (size_t i = 0; i < c->n_routes; i++) {
        const struct conf_route *r = &c->routes[i];
        if (host_matches(r, host) && method_matches(r, method, method_name) &&
            path_matches(r, path, scratch))
            return r;
    }
    return NULL;
}
