/* conf_upstream.c - the config schema for an upstream's resilience keys:
 * health (active checks), passive (outlier ejection), retry_on,
 * retry_non_idempotent, retry_budget, retry_body_max, slow_start,
 * max_pending and pending_timeout. Called by build_upstream (conf_build.c);
 * defaults are those of docs/config.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_schema.h"
#include "core/common.h"

void conf_upstream_defaults(struct conf_upstream *u)
{
    u->retry_on = RETRY_CONNECT;
    u->retry_budget_pct = 20;
    u->retry_body_max = 64 * 1024;
    u->pending_timeout_ms = 1000;
    u->health = (struct conf_health){
        .interval_ms = 5000,
        .timeout_ms = 2000,
        .rise = 2,
        .fall = 3,
        .status_min = 200,
        .status_max = 399,
    };
}

/* "200-399", "200" or 200: a status range within 100..599. */
static void build_expect_status(struct conf_ctx *cx, struct conf_health *h, const struct cnode *v)
{
    unsigned a = 0, b = 0;
    int used = 0;
    if (v->type == CNODE_SCALAR && strspn(v->s, "0123456789-") == v->len &&
        ((sscanf(v->s, "%3u-%3u%n", &a, &b, &used) == 2 && (size_t)used == v->len) ||
         (sscanf(v->s, "%3u%n", &a, &used) == 1 && (size_t)used == v->len && (b = a))) &&
        a >= 100 && b <= 599 && a <= b && v->s[0] >= '0' && v->s[0] <= '9') {
        h->status_min = a;
        h->status_max = b;
        return;
    }
    conf_err(cx, v, "'expect_status' must be a status or a range like 200-399 (100..599), got %s%s%s",
             v->type == CNODE_SCALAR ? "'" : "", v->type == CNODE_SCALAR ? v->s : cnode_type_name(v),
             v->type == CNODE_SCALAR ? "'" : "");
}

static void build_health(struct conf_ctx *cx, struct conf_upstream *u, const struct cnode *n)
{
    static const char *const keys[] = {"type", "uri", "interval", "timeout", "rise", "fall",
                                       "expect_status", "expect_body", "host", NULL};
    static const char *const types[] = {"http", "tcp", NULL};
    struct conf_health *h = &u->health;
    const struct cnode *v;
    const char *s;
    uint64_t x;
    unsigned t;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "health", keys, NULL);
    h->enabled = true;
    if ((v = cnode_map_get(n, "type")) && sch_enum(cx, v, "health type", types, &t))
        h->tcp = t == 1;
    if ((v = cnode_map_get(n, "uri")) && sch_nonempty(cx, v, &s)) {
        bool ok = s[0] == '/';
        for (const char *p = s; *p && ok; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                ok = false;
        if (!ok)
            conf_err(cx, v, "'uri' must start with '/' and contain no spaces or control "
                     "characters");
        else
            h->uri = xstrdup(s);
    }
    if ((v = cnode_map_get(n, "host")) && sch_nonempty(cx, v, &s)) {
        bool ok = true;
        for (const char *p = s; *p && ok; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == ',')
                ok = false;
        if (!ok)
            conf_err(cx, v, "'host' must not contain spaces, commas or control characters");
        else
            h->host = xstrdup(s);
    }
    if ((v = cnode_map_get(n, "expect_body")) && sch_nonempty(cx, v, &s))
        h->expect_body = xstrdup(s);
    if ((v = cnode_map_get(n, "interval")) && sch_duration(cx, v, &x)) {
        if (x < 100)
            conf_err(cx, v, "'interval' must be at least 100ms");
        else
            h->interval_ms = x;
    }
    if ((v = cnode_map_get(n, "timeout")) && sch_duration(cx, v, &x)) {
        if (x == 0)
            conf_err(cx, v, "'timeout' must be greater than 0");
        else
            h->timeout_ms = x;
    }
    if ((v = cnode_map_get(n, "rise")) && sch_uint(cx, v, 1, 100, &x))
        h->rise = (unsigned)x;
    if ((v = cnode_map_get(n, "fall")) && sch_uint(cx, v, 1, 100, &x))
        h->fall = (unsigned)x;
    if ((v = cnode_map_get(n, "expect_status")))
        build_expect_status(cx, h, v);
    if (h->tcp) {
        static const char *const http_only[] = {"uri", "expect_status", "expect_body", "host"};
        for (size_t i = 0; i < ARRAY_SIZE(http_only); i++)
            if ((v = cnode_map_get(n, http_only[i])))
                conf_err(cx, cnode_key_of(v), "'%s' is only valid with type: http",
                         http_only[i]);
    }
    if (!h->uri)
        h->uri = xstrdup("/");
}

static void build_passive(struct conf_ctx *cx, struct conf_upstream *u, const struct cnode *n)
{
    static const char *const keys[] = {"consecutive_failures", "eject", "max_ejected_percent",
                                       NULL};
    const struct cnode *v;
    uint64_t x;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "passive", keys, NULL);
    u->passive.consecutive_failures = 5;
    u->passive.eject_ms = 30000;
    u->passive.max_ejected_percent = 50;
    if ((v = cnode_map_get(n, "consecutive_failures")) && sch_uint(cx, v, 1, 1000, &x))
        u->passive.consecutive_failures = (unsigned)x;
    if ((v = cnode_map_get(n, "eject")) && sch_duration(cx, v, &x)) {
        if (x == 0 || x > 3600 * 1000)
            conf_err(cx, v, "'eject' must be between 1ms and 1h");
        else
            u->passive.eject_ms = x;
    }
    if ((v = cnode_map_get(n, "max_ejected_percent")) && sch_uint(cx, v, 0, 100, &x))
        u->passive.max_ejected_percent = (unsigned)x;
}

static void build_retry_on(struct conf_ctx *cx, struct conf_upstream *u, const struct cnode *n)
{
    if (!sch_seq(cx, n))
        return;
    u->retry_on = 0;
    memset(u->retry_status, 0, sizeof(u->retry_status));
    for (size_t i = 0; i < n->n; i++) {
        const struct cnode *it = n->kids[i];
        if (it->type == CNODE_SCALAR) {
            if (strcmp(it->s, "connect") == 0) {
                u->retry_on |= RETRY_CONNECT;
                continue;
            }
            if (strcmp(it->s, "timeout") == 0) {
                u->retry_on |= RETRY_TIMEOUT;
                continue;
            }
            if (strcmp(it->s, "reset") == 0) {
                u->retry_on |= RETRY_RESET;
                continue;
            }
            if (it->len == 3 && it->s[0] == '5' && it->s[1] >= '0' && it->s[1] <= '9' &&
                it->s[2] >= '0' && it->s[2] <= '9') {
                unsigned st = (unsigned)(it->s[1] - '0') * 10 + (unsigned)(it->s[2] - '0');
                u->retry_status[st / 8] |= (uint8_t)(1u << (st % 8));
                continue;
            }
        }
        conf_err(cx, it, "unknown retry_on condition %s%s%s (expected connect, timeout, reset or a "
                 "status 500..599)",
                 it->type == CNODE_SCALAR ? "'" : "",
                 it->type == CNODE_SCALAR ? it->s : cnode_type_name(it),
                 it->type == CNODE_SCALAR ? "'" : "");
    }
}

/* "20%" (or a bare 20): 0..100. */
static void build_percent(struct conf_ctx *cx, const struct cnode *v, unsigned *out)
{
    unsigned x = 0;
    int used = 0;
    if (v->type == CNODE_SCALAR && v->len && v->s[0] >= '0' && v->s[0] <= '9' &&
        strspn(v->s, "0123456789%") == v->len && sscanf(v->s, "%3u%n", &x, &used) == 1 &&
        ((size_t)used == v->len || ((size_t)used + 1 == v->len && v->s[used] == '%')) &&
        x <= 100) {
        *out = x;
        return;
    }
    conf_err(cx, v, "'%s' must be a percentage like 20%% (0..100), got %s%s%s", sch_name(v),
             v->type == CNODE_SCALAR ? "'" : "", v->type == CNODE_SCALAR ? v->s : cnode_type_name(v),
             v->type == CNODE_SCALAR ? "'" : "");
}

void conf_build_upstream_extra(struct conf_ctx *cx, struct conf_upstream *u,
                               const struct cnode *n)
{
    const struct cnode *v;
    uint64_t x;

    if ((v = cnode_map_get(n, "health")) && !cnode_is_null(v))
        build_health(cx, u, v);
    if ((v = cnode_map_get(n, "passive")) && !cnode_is_null(v)) {
        if (v->type == CNODE_MAP && v->n == 0) {
            u->passive.consecutive_failures = 5; /* `passive: {}`: the defaults */
            u->passive.eject_ms = 30000;
            u->passive.max_ejected_percent = 50;
        } else {
            build_passive(cx, u, v);
        }
    }
    if ((v = cnode_map_get(n, "retry_on")))
        build_retry_on(cx, u, v);
    if ((v = cnode_map_get(n, "retry_non_idempotent")))
        sch_bool(cx, v, &u->retry_non_idempotent);
    if ((v = cnode_map_get(n, "retry_budget")))
        build_percent(cx, v, &u->retry_budget_pct);
    if ((v = cnode_map_get(n, "retry_body_max")) &&
        sch_size(cx, v, 0, 16 * 1024 * 1024, "0", "16m", &x))
        u->retry_body_max = x;
    if ((v = cnode_map_get(n, "slow_start")))
        sch_duration(cx, v, &u->slow_start_ms);
    if ((v = cnode_map_get(n, "max_pending")) && sch_uint(cx, v, 0, 1000000, &x))
        u->max_pending = (unsigned)x;
    if ((v = cnode_map_get(n, "pending_timeout")) && sch_duration(cx, v, &x)) {
        if (x == 0)
            conf_err(cx, v, "'pending_timeout' must be greater than 0");
        else
            u->pending_timeout_ms = x;
    }
    u->pending = xcalloc(1, sizeof(*u->pending));
}

void conf_upstream_free_extra(struct conf_upstream *u)
{
    free(u->health.uri);
    free(u->health.host);
    free(u->health.expect_body);
    free((void *)u->pending);
}
