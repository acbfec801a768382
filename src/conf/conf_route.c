/* conf_route.c - the config schema, routes: match (host, path, methods), the
 * one action (upstream | respond | redirect) and header rules (cache and
 * compress are in conf_filters.c). Regexes are
 * compiled (and JIT-compiled when possible) here, once per snapshot. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_schema.h"
#include "core/common.h"
#include "http/msg.h"

static const char *const route_keys[] = {"name", "match", "upstream", "respond", "redirect",
                                         "headers", "cache", "compress", NULL};
static const char *const route_unsupported[] = {"rate_limit", "waf", NULL};
static const char *const action_keys[] = {"upstream", "respond", "redirect", NULL};

/* ---- match ---- */

static void build_host(struct conf_ctx *cx, struct conf_route *r, const struct cnode *n)
{
    const char *s;
    char *h;
    size_t len;

    if (!sch_nonempty(cx, n, &s))
        return;
    if (strcmp(s, "*") == 0)
        return; /* any host, same as leaving it out */
    h = xstrdup(s);
    len = strlen(h);
    for (size_t i = 0; i < len; i++)
        h[i] = (char)tolower((unsigned char)h[i]);
    if (strncmp(h, "*.", 2) == 0) {
        r->host_wildcard = true;
        memmove(h, h + 1, len); /* keep the dot: ".example.com" */
        len--;
        if (len < 2) {
            conf_err(cx, n, "a wildcard host needs a domain after '*.', like *.example.com");
            goto bad;
        }
    }
    if (strchr(h, '*')) {
        conf_err(cx, n, "a wildcard is only allowed as a leading '*.', like *.example.com");
        goto bad;
    }
    if (h[0] == '[') {
        /* IPv6 literal as it appears in a Host header: "[::1]" */
        char *close = strchr(h, ']');
        if (close && close[1] == ':') {
            conf_err(cx, n, "host must not include a port");
            goto bad;
        }
        if (!close || close[1] != '\0') {
            conf_err(cx, n, "invalid host '%s'", s);
            goto bad;
        }
    } else {
        if (strchr(h, ':')) {
            conf_err(cx, n, "host must not include a port");
            goto bad;
        }
        for (size_t i = 0; i < len; i++) {
            char ch = h[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                  ch == '.' || ch == '_')) {
                conf_err(cx, n, "invalid host '%s' (letters, digits, '-', '.' and a leading "
                         "'*.' only)", s);
                goto bad;
            }
        }
    }
    r->host = h;
    return;
bad:
    r->host_wildcard = false;
    free(h);
}

static bool clean_path(struct conf_ctx *cx, const struct cnode *n, const char *p)
{
    if (p[0] != '/') {
        conf_err(cx, n, "path must start with '/' (or '=' for an exact path, '~' for a "
                 "regex), got '%s'", n->s);
        return false;
    }
    for (const char *q = p; *q; q++) {
        if ((unsigned char)*q <= 0x20 || *q == 0x7f) {
            conf_err(cx, n, "path must not contain spaces or control characters");
            return false;
        }
    }
    return true;
}

static void build_path(struct conf_ctx *cx, struct conf_route *r, const struct cnode *n)
{
    const char *s;

    if (!sch_nonempty(cx, n, &s))
        return;
    if (s[0] == '~') {
        int errcode;
        PCRE2_SIZE off;
        pcre2_code *re;

        if (!s[1]) {
            conf_err(cx, n, "empty regex after '~'");
            return;
        }
        re = pcre2_compile((PCRE2_SPTR)(s + 1), strlen(s + 1), 0, &errcode, &off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(errcode, msg, sizeof(msg));
            conf_err(cx, n, "invalid regex: %s at offset %zu", (const char *)msg, (size_t)off);
            return;
        }
        /* JIT is an optimisation: without it (no JIT support, or memory
         * limits) pcre2_match still runs the interpreted code. */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        r->path_kind = PATH_REGEX;
        r->regex = re;
        r->path = xstrdup(s + 1);
    } else if (s[0] == '=') {
        if (!clean_path(cx, n, s + 1))
            return;
        r->path_kind = PATH_EXACT;
        r->path = xstrdup(s + 1);
    } else {
        if (!clean_path(cx, n, s))
            return;
        r->path_kind = PATH_PREFIX;
        r->path = xstrdup(s);
    }
    r->path_len = strlen(r->path);
}

static void build_methods(struct conf_ctx *cx, struct conf_route *r, const struct cnode *n)
{
    if (!sch_seq(cx, n))
        return;
    if (n->n == 0) {
        conf_err(cx, n, "'methods' must not be empty (leave it out to match any method)");
        return;
    }
    r->method_names = xcalloc(n->n, sizeof(*r->method_names));
    for (size_t i = 0; i < n->n; i++) {
        const struct cnode *it = n->kids[i];
        const char *s;
        char up[32];
        size_t len;
        enum http_method m;

        if (!sch_nonempty(cx, it, &s))
            continue;
        len = strlen(s);
        if (!sch_is_token(s, len)) {
            conf_err(cx, it, "invalid method '%s' (must be an HTTP token)", s);
            continue;
        }
        /* Methods are case-sensitive (RFC 9110); "get" is almost surely a typo. */
        if (len < sizeof(up)) {
            for (size_t k = 0; k <= len; k++)
                up[k] = (char)toupper((unsigned char)s[k]);
            if (strcmp(up, s) != 0 && http_method_lookup(str_c(up)) != HTTP_M_OTHER) {
                conf_err(cx, it, "methods are case-sensitive: did you mean '%s'?", up);
                continue;
            }
        }
        m = http_method_lookup(str_make(s, len));
        if (m != HTTP_M_OTHER)
            r->methods |= 1u << m;
        else
            r->method_names[r->n_method_names++] = xstrdup(s);
    }
}

static void build_match(struct conf_ctx *cx, struct conf_route *r, const struct cnode *n)
{
    static const char *const keys[] = {"host", "path", "methods", NULL};
    const struct cnode *v;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "match", keys, NULL);
    if ((v = cnode_map_get(n, "host")))
        build_host(cx, r, v);
    if ((v = cnode_map_get(n, "path")))
        build_path(cx, r, v);
    if ((v = cnode_map_get(n, "methods")))
        build_methods(cx, r, v);
}

/* ---- actions ---- */

static void build_respond(struct conf_ctx *cx, struct conf_route *r, const struct cnode *n)
{
    static const char *const keys[] = {"status", "body", "content_type", NULL};
    const struct cnode *v;
    const char *s;
    uint64_t st;

    r->action = ROUTE_RESPOND;
    r->respond_status = 200;
    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "respond", keys, NULL);
    if ((v = cnode_map_get(n, "status")) && sch_uint(cx, v, 100, 599, &st))
        r->respond_status = (int)st;
    if ((v = cnode_map_get(n, "body")) && !cnode_is_null(v) && sch_str(cx, v, &s)) {
        r->respond_body = xstrndup(s, v->len); /* may hold NULs: keep the length */
        r->respond_body_len = v->len;
    }
    if ((v = cnode_map_get(n, "content_type")) && sch_nonempty(cx, v, &s)) {
        if (strpbrk(s, "\r\n"))
            conf_err(cx, v, "'content_type' must not contain CR or LF");
        else
            r->respond_content_type = xstrdup(s);
    }
}

static void build_redirect(struct conf_ctx *cx, struct conf_route *r, const struct cnode *n)
{
    static const char *const keys[] = {"to", "status", NULL};
    const struct cnode *v;
    uint64_t st;

    r->action = ROUTE_REDIRECT;
    r->redirect_status = 302;
    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "redirect", keys, NULL);
    if ((v = sch_require(cx, n, "to", "redirect"))) {
        if (v->type == CNODE_SCALAR && (v->len == 0 || strpbrk(v->s, "\r\n")))
            conf_err(cx, v, "'to' must be a non-empty URL without CR or LF");
        else
            r->redirect_to = sch_tmpl(cx, v);
    }
    if ((v = cnode_map_get(n, "status")) && sch_uint(cx, v, 301, 308, &st)) {
        if (st == 304 || st == 305 || st == 306)
            conf_err(cx, v, "redirect 'status' must be one of 301, 302, 303, 307, 308, got "
                     "'%s'", v->s);
        else
            r->redirect_status = (int)st;
    }
}

static void build_proxy(struct conf_ctx *cx, const struct conf *c, struct conf_route *r,
                        const struct cnode *n)
{
    const char *s;

    r->action = ROUTE_PROXY;
    if (!sch_nonempty(cx, n, &s))
        return;
    r->upstream = conf_find_upstream(c, s);
    if (!r->upstream && !cx->upstreams_broken)
        conf_err(cx, n, "upstream '%s' is not defined", s);
}

/* ---- header rules ---- */

/* Framing and connection management stay with the proxy: letting a rule
 * touch these would let a config desynchronise message boundaries. */
static const char *const managed_headers[] = {"content-length", "transfer-encoding",
                                              "connection", NULL};

static bool check_header_name(struct conf_ctx *cx, const struct cnode *n, const char *name,
                              size_t len)
{
    if (!sch_is_token(name, len)) {
        conf_err(cx, n, "invalid header name '%s' (must be an HTTP token)", name);
        return false;
    }
    for (const char *const *m = managed_headers; *m; m++) {
        if (strcasecmp(*m, name) == 0) {
            conf_err(cx, n, "header '%s' is managed by the proxy and cannot be changed by rules",
                     name);
            return false;
        }
    }
    return true;
}

static void push_rule(struct header_rules *hr, enum header_op op, const char *name,
                      struct tmpl *value)
{
    struct header_rule *rule = &hr->rules[hr->n++];
    rule->op = op;
    rule->name = xstrdup(name);
    rule->name_len = strlen(name);
    rule->value = value;
}

/* set: and add: are mappings Name -> template. */
static void build_value_rules(struct conf_ctx *cx, struct header_rules *hr, const struct cnode *n,
                              enum header_op op)
{
    for (size_t i = 0; i < n->n; i++) {
        const struct cnode *k = n->keys[i], *v = n->kids[i];
        struct tmpl *t;

        if (!check_header_name(cx, k, k->s, k->len))
            continue;
        if (v->type == CNODE_SCALAR && (memchr(v->s, '\0', v->len) || strpbrk(v->s, "\r\n"))) {
            conf_err(cx, v, "header value must not contain CR, LF or NUL");
            continue;
        }
        if ((t = sch_tmpl(cx, v)))
            push_rule(hr, op, k->s, t);
    }
}

/* Stored in a fixed order whatever the file order: remove, then set, then add,
 * so `remove: [X]` + `add: {X: v}` yields exactly one X. */
static void build_rule_set(struct conf_ctx *cx, struct header_rules *hr, const struct cnode *n,
                           const char *what)
{
    static const char *const keys[] = {"set", "add", "remove", NULL};
    const struct cnode *set, *add, *rm;
    size_t cap = 0;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, what, keys, NULL);
    set = cnode_map_get(n, "set");
    add = cnode_map_get(n, "add");
    rm = cnode_map_get(n, "remove");
    if (set && !sch_map(cx, set))
        set = NULL;
    if (add && !sch_map(cx, add))
        add = NULL;
    if (rm && !sch_seq(cx, rm))
        rm = NULL;
    cap = (set ? set->n : 0) + (add ? add->n : 0) + (rm ? rm->n : 0);
    if (cap == 0)
        return;
    hr->rules = xcalloc(cap, sizeof(*hr->rules));
    for (size_t i = 0; rm && i < rm->n; i++) {
        const char *s;
        if (sch_nonempty(cx, rm->kids[i], &s) && check_header_name(cx, rm->kids[i], s, strlen(s)))
            push_rule(hr, HDR_REMOVE, s, NULL);
    }
    if (set)
        build_value_rules(cx, hr, set, HDR_SET);
    if (add)
        build_value_rules(cx, hr, add, HDR_ADD);
}

static void build_headers(struct conf_ctx *cx, struct conf_route *r, const struct cnode *n)
{
    static const char *const keys[] = {"request", "response", NULL};
    const struct cnode *v;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "headers", keys, NULL);
    if ((v = cnode_map_get(n, "request")) && !cnode_is_null(v))
        build_rule_set(cx, &r->req_headers, v, "headers.request");
    if ((v = cnode_map_get(n, "response")) && !cnode_is_null(v))
        build_rule_set(cx, &r->resp_headers, v, "headers.response");
}

/* ---- routes ---- */

static bool is_action(const char *k)
{
    for (const char *const *a = action_keys; *a; a++)
        if (strcmp(*a, k) == 0)
            return true;
    return false;
}

static void build_route(struct conf_ctx *cx, const struct conf *c, struct conf_route *r,
                        const struct cnode *n)
{
    const struct cnode *v, *first = NULL;
    const char *s;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "route", route_keys, route_unsupported);
    if ((v = cnode_map_get(n, "name")) && sch_nonempty(cx, v, &s)) {
        free(r->name);
        r->name = xstrdup(s);
    }
    if ((v = cnode_map_get(n, "match")) && !cnode_is_null(v))
        build_match(cx, r, v);
    if ((v = cnode_map_get(n, "headers")) && !cnode_is_null(v))
        build_headers(cx, r, v);

    /* Exactly one action; the first one written is built, later ones are
     * reported (not built, so their own errors do not pile up). */
    for (size_t i = 0; i < n->n; i++) {
        const struct cnode *k = n->keys[i];
        if (!is_action(k->s))
            continue;
        if (first) {
            conf_err(cx, k, "a route takes exactly one action, got both '%s' and '%s'",
                     cnode_key_of(first)->s, k->s);
            continue;
        }
        first = n->kids[i];
    }
    if (!first) {
        conf_err(cx, n, "route has no action (expected one of: upstream, respond, redirect)");
        conf_build_route_filters(cx, r, n, NULL);
        return;
    }
    s = cnode_key_of(first)->s;
    if (strcmp(s, "upstream") == 0)
        build_proxy(cx, c, r, first);
    else if (strcmp(s, "respond") == 0)
        build_respond(cx, r, first);
    else
        build_redirect(cx, r, first);
    conf_build_route_filters(cx, r, n, s); /* cache depends on the action */
}

void conf_build_routes(struct conf_ctx *cx, struct conf *c, const struct cnode *n)
{
    if (!sch_seq(cx, n))
        return;
    c->routes = xcalloc(n->n ? n->n : 1, sizeof(*c->routes));
    c->n_routes = n->n;
    for (size_t i = 0; i < n->n; i++) {
        struct conf_route *r = &c->routes[i];
        char nm[32];
        snprintf(nm, sizeof(nm), "route%zu", i);
        r->name = xstrdup(nm);
        r->index = (unsigned)i;
        build_route(cx, c, r, n->kids[i]);
    }
}
