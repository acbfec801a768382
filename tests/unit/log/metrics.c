/* Unit tests for the metrics (log/metrics.c, log/metrics_history.c and the
 * Prometheus renderer admin/admin_metrics.c): bucket bounds, quantiles,
 * the name registry and per-snapshot ids across a "reload", counting at
 * the end of a request on two workers and the sums, connection gauges,
 * the history sampler, and the text format (escaping, cumulative
 * buckets). Each Criterion test runs in its own process, so the registry
 * starts empty in each. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_metrics.h"
#include "conf/conf.h"
#include "log/metrics.h"
#include "proxy/proxy.h"

static struct conf *load(const char *yaml)
{
    struct conf_errors e = {0};
    struct conf *c = conf_load_buffer("t.yaml", yaml, strlen(yaml), &e);
    for (size_t i = 0; i < e.n; i++)
        cr_log_error("%s", e.msgs[i]);
    cr_assert_not_null(c);
    conf_errors_free(&e);
    return c;
}

static const char yaml_a[] =
    "listeners:\n"
    "  - {name: web, listen: \"127.0.0.1:18080\"}\n"
    "upstreams:\n"
    "  app:\n"
    "    servers: [{address: \"127.0.0.1:19001\"}, {address: \"127.0.0.1:19002\"}]\n"
    "  other:\n"
    "    servers: [{address: \"127.0.0.1:19001\"}]\n"
    "routes:\n"
    "  - {name: static, match: {path: /s}, respond: {status: 200, body: x}}\n"
    "  - {name: api, upstream: app}\n";

/* Same names, other order, one route more and one listener more. */
static const char yaml_b[] =
    "listeners:\n"
    "  - {name: admin2, listen: \"127.0.0.1:18081\"}\n"
    "  - {name: web, listen: \"127.0.0.1:18080\"}\n"
    "upstreams:\n"
    "  other:\n"
    "    servers: [{address: \"127.0.0.1:19001\"}]\n"
    "  app:\n"
    "    servers: [{address: \"127.0.0.1:19002\"}, {address: \"127.0.0.1:19001\"}]\n"
    "routes:\n"
    "  - {name: new, match: {path: /n}, respond: {status: 204}}\n"
    "  - {name: api, upstream: app}\n"
    "  - {name: static, match: {path: /s}, respond: {status: 200, body: x}}\n";

Test(metrics, bucket_bounds_inclusive)
{
    cr_assert_eq(metrics_bucket(0), 0);
    cr_assert_eq(metrics_bucket(100), 0); /* le="0.0001" includes 100 us */
    cr_assert_eq(metrics_bucket(101), 1);
    cr_assert_eq(metrics_bucket(1000), 3);
    cr_assert_eq(metrics_bucket(10000000), METRICS_BUCKETS - 1);
    cr_assert_eq(metrics_bucket(10000001), METRICS_BUCKETS);
    for (unsigned i = 1; i < METRICS_BUCKETS; i++)
        cr_assert_gt(metrics_bucket_us[i], metrics_bucket_us[i - 1]);
}

Test(metrics, quantiles)
{
    uint64_t b[METRICS_BUCKETS + 1] = {0};
    cr_assert_eq(metrics_quantile_ms(b, 0.5), -1);
    /* 100 values in (1, 2.5] ms: linear inside the bucket. */
    b[metrics_bucket(2000)] = 100;
    cr_assert_float_eq(metrics_quantile_ms(b, 0.5), 1.75, 1e-9);
    cr_assert_float_eq(metrics_quantile_ms(b, 0.99), 1.0 + 1.5 * 0.99, 1e-9);
    /* 90 fast, 10 in (100, 250] ms: p50 fast, p99 slow. */
    memset(b, 0, sizeof(b));
    b[metrics_bucket(50)] = 90;
    b[metrics_bucket(200000)] = 10;
    cr_assert_lt(metrics_quantile_ms(b, 0.5), 0.1 + 1e-9);
    double p99 = metrics_quantile_ms(b, 0.99);
    cr_assert(p99 > 100 && p99 <= 250, "p99 %f", p99);
    /* Above the last bound: reported as the last bound. */
    memset(b, 0, sizeof(b));
    b[METRICS_BUCKETS] = 3;
    cr_assert_float_eq(metrics_quantile_ms(b, 0.5), 10000.0, 1e-9);
}

Test(metrics, registry_stable_ids)
{
    unsigned a = metrics_id(MK_ROUTE, "api", NULL);
    unsigned s = metrics_id(MK_ROUTE, "static", NULL);
    cr_assert(a >= 1 && s >= 1 && a != s);
    cr_assert_eq(metrics_id(MK_ROUTE, "api", NULL), a);
    cr_assert_eq(metrics_lookup(MK_ROUTE, "api", NULL), a);
    cr_assert_eq(metrics_lookup(MK_ROUTE, "nope", NULL), 0);
    cr_assert_eq(metrics_count(MK_ROUTE), 3); /* id 0 + 2 */
    cr_assert_str_eq(metrics_name(MK_ROUTE, a, NULL), "api");
    cr_assert_str_eq(metrics_name(MK_ROUTE, 0, NULL), "");
    /* Servers: the same address in two upstreams is two series. */
    unsigned s1 = metrics_id(MK_SERVER, "app", "10.0.0.1:80");
    unsigned s2 = metrics_id(MK_SERVER, "other", "10.0.0.1:80");
    cr_assert_neq(s1, s2);
    unsigned up;
    cr_assert_str_eq(metrics_name(MK_SERVER, s2, &up), "10.0.0.1:80");
    cr_assert_str_eq(metrics_name(MK_UPSTREAM, up, NULL), "other");
    cr_assert_eq(metrics_lookup(MK_SERVER, "app", "10.0.0.1:80"), s1);
    cr_assert_eq(metrics_lookup(MK_SERVER, "none", "10.0.0.1:80"), 0);
}

Test(metrics, registry_cap)
{
    char name[32];
    for (unsigned i = 1; i < METRICS_MAX; i++) {
        snprintf(name, sizeof(name), "r%u", i);
        cr_assert_eq(metrics_id(MK_ROUTE, name, NULL), i);
    }
    cr_assert_eq(metrics_id(MK_ROUTE, "one-too-many", NULL), 0);
    cr_assert_eq(metrics_id(MK_ROUTE, "r5", NULL), 5);
    cr_assert_eq(metrics_count(MK_ROUTE), METRICS_MAX);
}

/* A reload that reorders everything keeps every name's id. */
Test(metrics, ids_follow_names_across_snapshots)
{
    struct conf *a = load(yaml_a), *b = load(yaml_b);
    struct metrics_ids *ia = metrics_ids_new(a), *ib = metrics_ids_new(b);
    cr_assert_eq(ia->route[1], ib->route[1]);     /* api */
    cr_assert_eq(ia->route[0], ib->route[2]);     /* static */
    cr_assert_neq(ib->route[0], ia->route[0]);    /* new */
    cr_assert_eq(ia->upstream[0], ib->upstream[1]); /* app */
    cr_assert_eq(ia->listener[0], ib->listener[1]); /* web */
    /* app/19001 is app's first server in a, its second in b */
    const struct conf_upstream *ua = conf_find_upstream(a, "app"), *ub = conf_find_upstream(b, "app");
    cr_assert_eq(ia->server[ua->servers[0].gid], ib->server[ub->servers[1].gid]);
    cr_assert_eq(ia->server[ua->servers[1].gid], ib->server[ub->servers[0].gid]);
    const struct conf_upstream *oa = conf_find_upstream(a, "other");
    cr_assert_neq(ia->server[oa->servers[0].gid], ia->server[ua->servers[0].gid]);
    metrics_ids_free(ia);
    metrics_ids_free(ib);
    conf_unref(a);
    conf_unref(b);
}

/* A worker, a snapshot and a finished stream, as far as metrics read them. */
struct fake {
    struct worker w;
    struct wsnap snap;
    struct client cl;
};

static void fake_init(struct fake *f, struct conf *c, unsigned id)
{
    memset(f, 0, sizeof(*f));
    f->w.id = id;
    f->w.conf = c;
    f->w.metrics = metrics_worker_new(id);
    f->snap.conf = c;
    f->snap.mids = metrics_ids_new(c);
    f->w.snap = &f->snap;
    f->cl.w = &f->w;
    f->cl.listener = &c->listeners[0];
}

static void fake_free(struct fake *f)
{
    metrics_ids_free(f->snap.mids);
    metrics_worker_free(f->w.metrics);
}

static void end_request(struct fake *f, int route, enum http_method m, int status,
                        uint64_t dur_us, const struct conf_server *s, uint64_t up_us)
{
    struct stream st;
    memset(&st, 0, sizeof(st));
    st.w = &f->w;
    st.cl = &f->cl;
    st.snap = &f->snap;
    st.conf = f->snap.conf;
    st.route = route >= 0 ? &f->snap.conf->routes[route] : NULL;
    st.req.method_id = m;
    st.status = status;
    st.bytes_in = 100;
    st.bytes_out = 1000;
    st.start_us = 1000000;
    st.log_server = s;
    if (s) {
        st.up_start_us = 1000000 + 10;
        st.up_end_us = st.up_start_us + up_us;
    }
    metrics_stream_end(&st, st.start_us + dur_us);
}

static struct metrics_counters *sum(struct metrics_worker_total *wt, size_t max, size_t *nw)
{
    struct metrics_counters *t = calloc(1, sizeof(*t));
    cr_assert_not_null(t);
    size_t n = metrics_sum(t, wt, max);
    if (nw)
        *nw = n;
    return t;
}

Test(metrics, requests_summed_across_workers)
{
    struct conf *c = load(yaml_a);
    struct fake w0, w1;
    fake_init(&w0, c, 0);
    fake_init(&w1, c, 1);
    const struct conf_server *s0 = &c->upstreams[0].servers[0];
    for (int i = 0; i < 3; i++)
        end_request(&w0, 1, HTTP_M_GET, 200, 1500, s0, 800);
    end_request(&w1, 1, HTTP_M_GET, 200, 20000, s0, 15000);
    end_request(&w1, 1, HTTP_M_POST, 502, 300, s0, 200);
    end_request(&w1, 0, HTTP_M_PATCH, 404, 50, NULL, 0);
    end_request(&w0, -1, HTTP_M_DELETE, 400, 50, NULL, 0); /* no route */

    struct metrics_worker_total wt[4];
    size_t nw;
    struct metrics_counters *t = sum(wt, 4, &nw);
    unsigned api = w0.snap.mids->route[1], stat = w0.snap.mids->route[0];
    cr_assert_eq(t->requests[api][1][MM_GET], 4);
    cr_assert_eq(t->requests[api][4][MM_POST], 1);
    cr_assert_eq(t->requests[stat][3][MM_OTHER], 1);
    cr_assert_eq(t->requests[0][3][MM_DELETE], 1);
    cr_assert_eq(t->bytes_in[api], 500);
    cr_assert_eq(t->bytes_out[api], 5000);
    /* durations: 3 x 1.5 ms, 20 ms, 0.3 ms */
    const struct metrics_hist *h = &t->route_dur[api];
    cr_assert_eq(h->b[metrics_bucket(1500)], 3);
    cr_assert_eq(h->b[metrics_bucket(20000)], 1);
    cr_assert_eq(h->b[metrics_bucket(300)], 1);
    cr_assert_eq(h->sum_us, 3 * 1500 + 20000 + 300);
    /* upstream response time and the server's requests */
    unsigned app = w0.snap.mids->upstream[0], sid = w0.snap.mids->server[s0->gid];
    cr_assert_eq(t->up_resp[app].sum_us, 3 * 800 + 15000 + 200);
    cr_assert_eq(t->srv_requests[sid], 5);
    /* per worker */
    cr_assert_eq(nw, 2);
    cr_assert_eq(wt[0].id, 0);
    cr_assert_eq(wt[0].requests, 4);
    cr_assert_eq(wt[1].requests, 3);
    cr_assert_eq(t->w_requests, 7);
    free(t);
    fake_free(&w0);
    fake_free(&w1);
    /* a freed worker leaves the sums */
    t = sum(NULL, 0, &nw);
    cr_assert_eq(nw, 0);
    cr_assert_eq(t->w_requests, 0);
    free(t);
    conf_unref(c);
}

Test(metrics, connections_gauge)
{
    struct conf *c = load(yaml_a);
    struct fake f;
    fake_init(&f, c, 0);
    struct client a = f.cl, b = f.cl;
    metrics_conn_open(&a);
    metrics_conn_open(&b);
    metrics_conn_h2(&b);
    metrics_conn_h2(&b); /* twice: counted once */
    unsigned web = f.snap.mids->listener[0];
    struct metrics_counters *t = sum(NULL, 0, NULL);
    cr_assert_eq(t->conn_active[web][MP_HTTP1], 1);
    cr_assert_eq(t->conn_active[web][MP_H2], 1);
    cr_assert_eq(t->conn_total[web], 2);
    free(t);
    metrics_conn_close(&a);
    metrics_conn_close(&b);
    metrics_conn_close(&b); /* twice: counted once */
    t = sum(NULL, 0, NULL);
    cr_assert_eq(t->conn_active[web][MP_HTTP1], 0);
    cr_assert_eq(t->conn_active[web][MP_H2], 0);
    cr_assert_eq(t->conn_total[web], 2);
    cr_assert_eq(t->w_conns, 0);
    free(t);
    fake_free(&f);
    conf_unref(c);
}

Test(metrics, history_deltas)
{
    struct conf *c = load(yaml_a);
    struct fake f;
    fake_init(&f, c, 0);
    metrics_history_stop(); /* sample by hand */
    metrics_history_sample();
    for (int i = 0; i < 10; i++)
        end_request(&f, 0, HTTP_M_GET, i < 9 ? 200 : 503, 2000, NULL, 0);
    metrics_history_sample();
    end_request(&f, 0, HTTP_M_GET, 301, 2000, NULL, 0);
    metrics_history_sample();
    /* The sampler thread may have taken its baseline (and a sample)
     * before it stopped: the newest two are ours. */
    struct metrics_sample s[METRICS_HISTORY];
    size_t n = metrics_history(s, 2);
    cr_assert_eq(n, 2);
    cr_assert_eq(s[0].requests, 10);
    cr_assert_eq(s[0].classes[1], 9);
    cr_assert_eq(s[0].classes[4], 1);
    cr_assert(s[0].p50_ms > 1 && s[0].p50_ms <= 2.5);
    cr_assert_eq(s[0].bytes_in, 1000);
    cr_assert_eq(s[1].requests, 1);
    cr_assert_eq(s[1].classes[2], 1);
    /* the newest only */
    n = metrics_history(s, 1);
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].requests, 1);
    fake_free(&f);
    conf_unref(c);
}

/* The value of the first line starting with `prefix` (a series with its
 * labels), or -1. */
static double value_of(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ')
            return strtod(p + pl + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

Test(metrics, prometheus_text)
{
    struct conf *c = load("listeners:\n  - {name: \"we\\\"b\\\\1\", listen: \"127.0.0.1:18080\"}\n"
                          "routes:\n  - {name: \"r\\\"x\\\\y\", respond: {status: 200}}\n");
    struct fake f;
    fake_init(&f, c, 0);
    end_request(&f, 0, HTTP_M_HEAD, 200, 700, NULL, 0);
    end_request(&f, 0, HTTP_M_HEAD, 200, 3000, NULL, 0);
    metrics_cache(f.w.metrics, MCACHE_HIT);
    metrics_cache(f.w.metrics, MCACHE_HIT);
    metrics_cache(f.w.metrics, MCACHE_MISS);
    metrics_compress(f.w.metrics, ZALG_GZIP, 1000, 300);
    metrics_reload(true);
    metrics_reload(false);
    metrics_reload(true);
    size_t len;
    char *txt = admin_metrics_text(c, &len);
    cr_assert_eq(strlen(txt), len);
    /* label values escaped: " and \ */
    cr_assert_eq(value_of(txt, "portico_requests_total{route=\"r\\\"x\\\\y\",method=\"HEAD\","
                               "status_class=\"2xx\"}"),
                 2);
    cr_assert_eq(value_of(txt, "portico_request_duration_seconds_bucket{route=\"r\\\"x\\\\y\","
                               "le=\"0.0005\"}"),
                 0);
    cr_assert_eq(value_of(txt, "portico_request_duration_seconds_bucket{route=\"r\\\"x\\\\y\","
                               "le=\"0.001\"}"),
                 1);
    cr_assert_eq(value_of(txt, "portico_request_duration_seconds_bucket{route=\"r\\\"x\\\\y\","
                               "le=\"+Inf\"}"),
                 2);
    cr_assert_eq(value_of(txt, "portico_request_duration_seconds_count{route=\"r\\\"x\\\\y\"}"), 2);
    cr_assert_float_eq(
        value_of(txt, "portico_request_duration_seconds_sum{route=\"r\\\"x\\\\y\"}"), 0.0037,
        1e-9);
    cr_assert_eq(value_of(txt, "portico_connections_total{listener=\"we\\\"b\\\\1\"}"), 0);
    cr_assert_eq(value_of(txt, "portico_cache_requests_total{result=\"hit\"}"), 2);
    cr_assert_eq(value_of(txt, "portico_cache_requests_total{result=\"miss\"}"), 1);
    cr_assert_eq(value_of(txt, "portico_compress_output_bytes_total{algorithm=\"gzip\"}"), 300);
    cr_assert_eq(value_of(txt, "portico_config_reloads_total{result=\"ok\"}"), 2);
    cr_assert_eq(value_of(txt, "portico_config_reloads_total{result=\"failed\"}"), 1);
    /* every family has HELP then TYPE, once */
    cr_assert_not_null(strstr(txt, "# HELP portico_requests_total "));
    cr_assert_not_null(strstr(txt, "# TYPE portico_request_duration_seconds histogram\n"));
    cr_assert_null(strstr(strstr(txt, "# TYPE portico_requests_total") + 1,
                          "# TYPE portico_requests_total"));
    free(txt);
    fake_free(&f);
    conf_unref(c);
}
