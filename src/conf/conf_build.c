/* conf_build.c - the config schema, top half: document tree -> struct conf for
 * the global settings, listeners and upstreams (routes are in conf_route.c).
 * Every value is checked here, with the defaults of docs/config.md; an error
 * skips only the offending field, so one pass reports everything. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf_schema.h"
#include "core/addr.h"
#include "core/common.h"
#include "core/units.h"
#include "lb/server.h"

#define MAX_WORKERS 256
#define MAX_CONNECTIONS_LIMIT 10000000ull

/* Value of an optional key; a YAML null (`key:` or `key: null`) counts as
 * absent so a section can be left empty. */
static const struct cnode *opt(const struct cnode *map, const char *key)
{
    const struct cnode *v = cnode_map_get(map, key);
    return cnode_is_null(v) ? NULL : v;
}

static const char *const top_keys[] = {"workers", "shutdown_grace", "admin", "log",
                                       "trusted_proxies", "timeouts", "limits", "cache_size",
                                       "cache_path", "cache_disk_size", "tracing", "listeners",
                                       "upstreams", "routes", NULL};

static void set_defaults(struct conf *c)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    c->workers = n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (unsigned)n;
    c->shutdown_grace_ms = 30000;
    c->log.access = NULL;
    c->log.error = xstrdup("stderr");
    c->log.level = LOG_INFO;
    c->timeouts = (struct conf_timeouts){
        .client_header_ms = 10000,
        .client_body_ms = 60000,
        .keepalive_ms = 75000,
        .send_ms = 60000,
        .upstream_connect_ms = 5000,
        .upstream_read_ms = 60000,
        .upstream_write_ms = 60000,
    };
    c->limits = (struct conf_limits){
        .max_header_bytes = 16 * 1024,
        .max_request_line = 8 * 1024,
        .max_body_bytes = 10 * 1024 * 1024,
        .max_connections = 100000,
        .max_concurrent_streams = 128,
    };
}

static void build_workers(struct conf_ctx *cx, struct conf *c, const struct cnode *n)
{
    uint64_t v;

    if (n->type == CNODE_SCALAR && strcmp(n->s, "auto") == 0)
        return; /* default already is the CPU count */
    if (n->type == CNODE_SCALAR && n->len && n->s[0] >= '0' && n->s[0] <= '9') {
        if (sch_uint(cx, n, 1, MAX_WORKERS, &v))
            c->workers = (unsigned)v;
        return;
    }
    conf_err(cx, n, "'workers' must be \"auto\" or an integer between 1 and %d, got %s%s%s",
             MAX_WORKERS, n->type == CNODE_SCALAR ? "'" : "",
             n->type == CNODE_SCALAR ? n->s : cnode_type_name(n),
             n->type == CNODE_SCALAR ? "'" : "");
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool addr_is_loopback(const struct addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss.ss_family == AF_INET6) {
        const struct in6_addr *x = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(x))
            return true;
        return IN6_IS_ADDR_V4MAPPED(x) && x->s6_addr[12] == 127;
    }
    return false;
}

static void build_admin(struct conf_ctx *cx, struct conf *c, const struct cnode *n)
{
    static const char *const keys[] = {"listen", "token_file", NULL};
    const struct cnode *v;
    const char *s, *err;
    struct addr a;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "admin", keys, NULL);
    if ((v = cnode_map_get(n, "listen")) && sch_nonempty(cx, v, &s)) {
        if (addr_parse(s, &a, &err) < 0)
            conf_err(cx, v, "invalid address '%s': %s", s, err);
        else if (!addr_is_loopback(&a) && !opt(n, "token_file"))
            conf_err(cx, v, "admin.listen '%s' is not a loopback address: set token_file so "
                     "that every admin call needs a bearer token", s);
        else
            c->admin.listen = xstrdup(s);
    }
    if ((v = opt(n, "token_file")) && sch_nonempty(cx, v, &s))
        c->admin.token_file = xstrdup(s);
}

static void build_log(struct conf_ctx *cx, struct conf *c, const struct cnode *n)
{
    static const char *const keys[] = {"access", "error", "level", NULL};
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    const struct cnode *v;
    const char *s;
    unsigned lv;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "log", keys, NULL);
    if ((v = cnode_map_get(n, "access")) && sch_nonempty(cx, v, &s))
        c->log.access = strcmp(s, "off") == 0 ? NULL : xstrdup(s);
    if ((v = cnode_map_get(n, "error")) && sch_nonempty(cx, v, &s)) {
        if (strcmp(s, "off") == 0) {
            conf_err(cx, v, "the error log cannot be off (use stderr, stdout or a path)");
        } else {
            free(c->log.error);
            c->log.error = xstrdup(s);
        }
    }
    if ((v = cnode_map_get(n, "level")) && sch_enum(cx, v, "log level", levels, &lv))
        c->log.level = (enum log_level)lv;
}

static void build_trusted(struct conf_ctx *cx, struct conf *c, const struct cnode *n)
{
    if (!sch_seq(cx, n))
        return;
    c->trusted_proxies = xcalloc(n->n, sizeof(*c->trusted_proxies));
    for (size_t i = 0; i < n->n; i++) {
        const struct cnode *it = n->kids[i];
        const char *s;
        if (!sch_nonempty(cx, it, &s))
            continue;
        if (cidr_parse(s, &c->trusted_proxies[c->n_trusted_proxies]) < 0) {
            conf_err(cx, it, "invalid address or CIDR range '%s' (expected like 10.0.0.0/8, "
                     "::1 or 127.0.0.1)", s);
            continue;
        }
        c->n_trusted_proxies++;
    }
}

/* Reads the timeouts present in n into t. `upstream_only` restricts the keys
 * to the three that an upstream may override. */
static void build_timeouts(struct conf_ctx *cx, const struct cnode *n, struct conf_timeouts *t,
                           bool upstream_only)
{
    static const char *const all[] = {"client_header", "client_body", "keepalive", "send",
                                      "upstream_connect", "upstream_read", "upstream_write",
                                      NULL};
    const struct {
        const char *key;
        uint64_t *dst;
        bool zero_ok;
    } fields[] = {
        {"client_header", &t->client_header_ms, false},
        {"client_body", &t->client_body_ms, false},
        {"keepalive", &t->keepalive_ms, true}, /* 0 turns client keep-alive off */
        {"send", &t->send_ms, false},
        {"upstream_connect", &t->upstream_connect_ms, false},
        {"upstream_read", &t->upstream_read_ms, false},
        {"upstream_write", &t->upstream_write_ms, false},
    };

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, upstream_only ? "upstream timeouts" : "timeouts", upstream_only ? all + 4 : all,
             NULL);
    for (size_t i = upstream_only ? 4 : 0; i < ARRAY_SIZE(fields); i++) {
        const struct cnode *v = cnode_map_get(n, fields[i].key);
        uint64_t ms;
        if (!v || !sch_duration(cx, v, &ms))
            continue;
        if (ms == 0 && !fields[i].zero_ok) {
            conf_err(cx, v, "'%s' must be greater than 0", fields[i].key);
            continue;
        }
        *fields[i].dst = ms;
    }
}

static void build_limits(struct conf_ctx *cx, struct conf *c, const struct cnode *n)
{
    static const char *const keys[] = {"max_header_bytes", "max_request_line", "max_body_bytes",
                                       "max_connections", "max_concurrent_streams", NULL};
    const struct cnode *v, *rl;
    uint64_t x;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "limits", keys, NULL);
    if ((v = cnode_map_get(n, "max_header_bytes")) &&
        sch_size(cx, v, 1024, 1024 * 1024, "1k", "1m", &x))
        c->limits.max_header_bytes = x;
    if ((rl = cnode_map_get(n, "max_request_line"))) {
        if (sch_size(cx, rl, 256, 1024 * 1024, "256", "1m", &x)) {
            if (x > c->limits.max_header_bytes)
                conf_err(cx, rl, "'max_request_line' (%llu) must not exceed max_header_bytes "
                         "(%llu)", (unsigned long long)x,
                         (unsigned long long)c->limits.max_header_bytes);
            else
                c->limits.max_request_line = x;
        }
    } else if (c->limits.max_request_line > c->limits.max_header_bytes) {
        /* Default 8k, but never above a smaller max_header_bytes. */
        c->limits.max_request_line = c->limits.max_header_bytes;
    }
    if ((v = cnode_map_get(n, "max_body_bytes")) &&
        sch_size(cx, v, 0, UINT64_MAX, "0", "any size", &x))
        c->limits.max_body_bytes = x;
    if ((v = cnode_map_get(n, "max_concurrent_streams")) && sch_uint(cx, v, 1, 10000, &x))
        c->limits.max_concurrent_streams = x;
    if ((v = cnode_map_get(n, "max_connections")) &&
        sch_uint(cx, v, 1, MAX_CONNECTIONS_LIMIT, &x))
        c->limits.max_connections = x;
}

/* ---- listeners ---- */

static void build_listener(struct conf_ctx *cx, struct conf_listener *l, const struct cnode *n)
{
    static const char *const keys[] = {"name", "listen", "protocol", "redirect_https", "tls",
                                       "h2c", NULL};
    static const char *const unsupported[] = {"sni_routes", "upstream", NULL};
    static const char *const protos[] = {"http", "tcp", "tls_passthrough", NULL};
    const struct cnode *v;
    const char *s, *err;
    unsigned p;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "listener", keys, unsupported);
    if ((v = cnode_map_get(n, "name")) && sch_nonempty(cx, v, &s)) {
        free(l->name);
        l->name = xstrdup(s);
    }
    if ((v = sch_require(cx, n, "listen", "listener")) && sch_nonempty(cx, v, &s)) {
        if (addr_parse(s, &l->addr, &err) < 0)
            conf_err(cx, v, "invalid address '%s': %s", s, err);
        else
            l->listen = xstrdup(s);
    }
    if ((v = cnode_map_get(n, "protocol")) && sch_enum(cx, v, "protocol", protos, &p)) {
        if (p != LISTEN_HTTP)
            conf_err(cx, v, "protocol '%s' is not supported yet", protos[p]);
        l->protocol = (enum listener_proto)p;
    }
    if ((v = cnode_map_get(n, "redirect_https")))
        sch_bool(cx, v, &l->redirect_https);
    if ((v = cnode_map_get(n, "h2c")))
        sch_bool(cx, v, &l->h2c);
    if ((v = opt(n, "tls"))) {
        bool b;
        /* `tls: false` is accepted as "no TLS". */
        if (v->type == CNODE_SCALAR && strcmp(v->s, "false") == 0 && sch_bool(cx, v, &b))
            return;
        if (v->type != CNODE_MAP) {
            conf_err(cx, v, "'tls' must be a mapping (or false)");
            return;
        }
        l->tls = conf_build_tls(cx, v);
        if (l->redirect_https)
            conf_err(cx, cnode_map_get(n, "redirect_https"),
                     "redirect_https is for plain listeners, this one has tls");
    }
}

static void build_listeners(struct conf_ctx *cx, struct conf *c, const struct cnode *root)
{
    const struct cnode *n = cnode_map_get(root, "listeners");

    if (!n) {
        conf_err(cx, root, "missing required key 'listeners' in config");
        return;
    }
    if (!sch_seq(cx, n))
        return;
    if (n->n == 0) {
        conf_err(cx, n, "'listeners' must not be empty");
        return;
    }
    c->listeners = xcalloc(n->n, sizeof(*c->listeners));
    c->n_listeners = n->n;
    for (size_t i = 0; i < n->n; i++) {
        struct conf_listener *l = &c->listeners[i];
        char nm[32];
        snprintf(nm, sizeof(nm), "listener%zu", i);
        l->name = xstrdup(nm);
        l->index = (unsigned)i;
        build_listener(cx, l, n->kids[i]);
    }
    /* Uniqueness, reported at the later one. */
    for (size_t i = 0; i < n->n; i++) {
        const struct cnode *ni = n->kids[i];
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->listeners[i].name, c->listeners[j].name) == 0) {
                const struct cnode *at = cnode_map_get(ni, "name");
                conf_err(cx, at ? at : ni, "duplicate listener name '%s'", c->listeners[i].name);
                break;
            }
        }
        for (size_t j = 0; j < i && c->listeners[i].listen; j++) {
            if (c->listeners[j].listen && c->listeners[i].addr.len == c->listeners[j].addr.len &&
                memcmp(&c->listeners[i].addr.ss, &c->listeners[j].addr.ss,
                       c->listeners[i].addr.len) == 0) {
                conf_err(cx, cnode_map_get(ni, "listen"),
                         "address '%s' is already used by listener '%s'",
                         c->listeners[i].listen, c->listeners[j].name);
                break;
            }
        }
    }
}

/* ---- upstreams ---- */

static bool valid_upstream_name(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

/* A server is {address, weight, backup} or, as a shorthand, just the address. */
static void build_server(struct conf_ctx *cx, struct conf_server *s, const struct cnode *n)
{
    static const char *const keys[] = {"address", "weight", "backup", NULL};
    const struct cnode *v = n, *wn, *bn;
    const char *a, *err;
    uint64_t w;

    s->weight = 1;
    if (n->type == CNODE_MAP) {
        sch_keys(cx, n, "server", keys, NULL);
        v = sch_require(cx, n, "address", "server");
        if ((wn = cnode_map_get(n, "weight")) && sch_uint(cx, wn, 1, 10000, &w))
            s->weight = (unsigned)w;
        if ((bn = cnode_map_get(n, "backup")))
            sch_bool(cx, bn, &s->backup);
    } else if (n->type != CNODE_SCALAR) {
        conf_err(cx, n, "a server must be a mapping like {address: 127.0.0.1:3000} or an "
                 "address, got %s", cnode_type_name(n));
        return;
    }
    if (v && sch_nonempty(cx, v, &a)) {
        if (addr_parse(a, &s->addr, &err) < 0)
            conf_err(cx, v, "invalid address '%s': %s", a, err);
        else
            s->address = xstrdup(a);
    }
}

static void build_upstream(struct conf_ctx *cx, const struct conf *c, struct conf_upstream *u,
                           const struct cnode *n)
{
    static const char *const keys[] = {"balance", "hash_key", "servers", "keepalive", "retries",
                                       "max_connections", "fail_timeout", "timeouts", "tls",
                                       "health", "passive", "retry_on", "retry_non_idempotent",
                                       "retry_budget", "retry_body_max", "slow_start",
                                       "max_pending", "pending_timeout", NULL};
    static const char *const algos[] = {"round_robin", "least_conn", "ip_hash", "random", "hash",
                                        NULL};
    char what[300];
    const struct cnode *v, *hk;
    struct conf_timeouts t = c->timeouts;
    unsigned algo;
    uint64_t x;
    bool bal_ok = true;

    u->keepalive = 32;
    u->retries = 1;
    u->fail_timeout_ms = 10000;
    u->connect_timeout_ms = t.upstream_connect_ms;
    u->read_timeout_ms = t.upstream_read_ms;
    u->write_timeout_ms = t.upstream_write_ms;
    conf_upstream_defaults(u);
    if (n->type != CNODE_MAP) {
        conf_err(cx, n, "upstream '%s' must be a mapping, got %s", u->name, cnode_type_name(n));
        return;
    }
    snprintf(what, sizeof(what), "upstream '%s'", u->name);
    sch_keys(cx, n, what, keys, NULL);
    if ((v = cnode_map_get(n, "balance"))) {
        if (!sch_enum(cx, v, "balance", algos, &algo))
            bal_ok = false; /* then hash_key cannot be judged: say nothing */
        else
            u->balance = (enum lb_algo)algo;
    }
    hk = cnode_map_get(n, "hash_key");
    if (!bal_ok) {
        /* balance is wrong: whether hash_key belongs cannot be judged */
    } else if (u->balance == LB_HASH && !hk) {
        conf_err(cx, n, "missing required key 'hash_key' in %s (required with balance: hash)",
                 what);
    } else if (hk && u->balance != LB_HASH) {
        conf_err(cx, cnode_key_of(hk), "'hash_key' is only valid with balance: hash");
    } else if (hk) {
        u->hash_key = sch_tmpl(cx, hk);
    }
    if ((v = cnode_map_get(n, "keepalive")) && sch_uint(cx, v, 0, 100000, &x))
        u->keepalive = (unsigned)x;
    if ((v = cnode_map_get(n, "retries")) && sch_uint(cx, v, 0, 10, &x))
        u->retries = (unsigned)x;
    if ((v = cnode_map_get(n, "max_connections")) && sch_uint(cx, v, 0, MAX_CONNECTIONS_LIMIT, &x))
        u->max_connections = (unsigned)x;
    if ((v = cnode_map_get(n, "fail_timeout")))
        sch_duration(cx, v, &u->fail_timeout_ms);
    if ((v = opt(n, "timeouts"))) {
        build_timeouts(cx, v, &t, true);
        u->connect_timeout_ms = t.upstream_connect_ms;
        u->read_timeout_ms = t.upstream_read_ms;
        u->write_timeout_ms = t.upstream_write_ms;
    }
    if ((v = opt(n, "tls")))
        u->tls = conf_build_upstream_tls(cx, v);
    conf_build_upstream_extra(cx, u, n);

    if (!(v = sch_require(cx, n, "servers", what)) || !sch_seq(cx, v))
        return;
    if (v->n == 0) {
        conf_err(cx, v, "'servers' must not be empty");
        return;
    }
    u->servers = xcalloc(v->n, sizeof(*u->servers));
    u->n_servers = v->n;
    for (size_t i = 0; i < v->n; i++) {
        struct conf_server *s = &u->servers[i];
        s->index = (unsigned)i;
        s->upstream = u;
        s->state = server_state_new();
        build_server(cx, s, v->kids[i]);
        for (size_t j = 0; j < i && s->address; j++) {
            if (u->servers[j].address && s->addr.len == u->servers[j].addr.len &&
                memcmp(&s->addr.ss, &u->servers[j].addr.ss, s->addr.len) == 0) {
                const struct cnode *it = v->kids[i];
                const struct cnode *at = it->type == CNODE_MAP ? cnode_map_get(it, "address") : it;
                conf_err(cx, at, "duplicate server '%s' in %s", s->address, what);
                break;
            }
        }
    }
}

static void build_upstreams(struct conf_ctx *cx, struct conf *c, const struct cnode *n)
{
    unsigned gid = 0;

    if (!sch_map(cx, n)) {
        cx->upstreams_broken = true;
        return;
    }
    c->upstreams = xcalloc(n->n ? n->n : 1, sizeof(*c->upstreams));
    c->n_upstreams = n->n;
    /* Names first, so every upstream exists (even one with errors) when
     * routes are resolved: a broken upstream must not also be reported as
     * "not defined" by each route using it. */
    for (size_t i = 0; i < n->n; i++) {
        const struct cnode *k = n->keys[i];
        c->upstreams[i].name = xstrdup(k->s);
        c->upstreams[i].index = (unsigned)i;
        if (!valid_upstream_name(k->s, k->len))
            conf_err(cx, k, "invalid upstream name '%s' (use letters, digits, '_', '.', '-')",
                     k->s);
    }
    for (size_t i = 0; i < n->n; i++) {
        struct conf_upstream *u = &c->upstreams[i];
        build_upstream(cx, c, u, n->kids[i]);
        for (size_t j = 0; j < u->n_servers; j++)
            u->servers[j].gid = gid++;
    }
    c->n_servers_total = gid;
}

struct conf *conf_build(struct conf_ctx *cx, const struct cnode *root)
{
    struct conf *c = xcalloc(1, sizeof(*c));
    const struct cnode *v;

    atomic_init(&c->refs, 1);
    set_defaults(c);
    if (root->type != CNODE_MAP) {
        conf_err(cx, root, "the config must be a mapping of top-level keys, got %s",
                 cnode_type_name(root));
        conf_free(c);
        return NULL;
    }
    sch_keys(cx, root, "config", top_keys, NULL);
    if ((v = cnode_map_get(root, "workers")))
        build_workers(cx, c, v);
    if ((v = cnode_map_get(root, "shutdown_grace")))
        sch_duration(cx, v, &c->shutdown_grace_ms);
    if ((v = opt(root, "admin")))
        build_admin(cx, c, v);
    if ((v = opt(root, "log")))
        build_log(cx, c, v);
    if ((v = opt(root, "trusted_proxies")))
        build_trusted(cx, c, v);
    if ((v = opt(root, "timeouts")))
        build_timeouts(cx, v, &c->timeouts, false);
    if ((v = opt(root, "limits")))
        build_limits(cx, c, v);
    conf_build_globals_filters(cx, c, root); /* cache_*, tracing (conf_filters.c) */
    /* Upstreams before routes (routes name them) and after timeouts (they
     * inherit the global upstream timeouts). */
    if ((v = opt(root, "upstreams")))
        build_upstreams(cx, c, v);
    build_listeners(cx, c, root);
    if ((v = opt(root, "routes")))
        conf_build_routes(cx, c, v);

    if (cx->n_errs) {
        conf_free(c);
        return NULL;
    }
    return c;
}
