/* admin_metrics.c - GET /metrics in the Prometheus text exposition format
 * 0.0.4 (every family with HELP and TYPE, label values escaped, histograms
 * as cumulative _bucket{le} series with +Inf, _sum and _count), and the
 * dashboard: the page and the JSON it polls (GET /dashboard/data: the
 * history ring, totals, workers, routes and each upstream server's state
 * and load). Counters come summed across workers (log/metrics.h); server
 * states from the shared atomics of the running snapshot. docs/metrics.md
 * lists every metric. */
#include "admin/admin_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/jbuf.h"
#include "filters/cache_store.h"
#include "lb/server.h"
#include "log/metrics.h"
#include "net/tls.h"
#include "version.h"

static const char *const class_names[METRICS_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const proto_names[MP__COUNT] = {"http1", "h2"};
static const char *const zalg_names[ZALG__COUNT] = {"identity", "gzip", "br", "zstd"};

/* ---- Prometheus text ---- */

static void family(struct jbuf *b, const char *name, const char *type, const char *help)
{
    jb_printf(b, "# HELP portico_%s %s\n# TYPE portico_%s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and line feed are escaped (the
 * only escapes the format has). */
static void label_value(struct jbuf *b, const char *v)
{
    const char *run = v;
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        jb_raw(b, run, (size_t)(p - run));
        jb_cstr(b, esc);
        run = p + 1;
    }
    jb_cstr(b, run);
}

/* `portico_name{k1="v1",k2="v2"` (the caller closes the braces or adds
 * more labels); k2 may be NULL. */
static void series(struct jbuf *b, const char *name, const char *k1, const char *v1,
                   const char *k2, const char *v2)
{
    jb_printf(b, "portico_%s{%s=\"", name, k1);
    label_value(b, v1);
    jb_cstr(b, "\"");
    if (k2) {
        jb_printf(b, ",%s=\"", k2);
        label_value(b, v2);
        jb_cstr(b, "\"");
    }
}

static uint64_t hist_count(const struct metrics_hist *h)
{
    uint64_t n = 0;
    for (unsigned i = 0; i <= METRICS_BUCKETS; i++)
        n += h->b[i];
    return n;
}

static void hist_series(struct jbuf *b, const char *name, const char *k, const char *v,
                        const struct metrics_hist *h)
{
    char fam[96];
    uint64_t cum = 0;
    snprintf(fam, sizeof(fam), "%s_bucket", name);
    for (unsigned i = 0; i <= METRICS_BUCKETS; i++) {
        cum += h->b[i];
        series(b, fam, k, v, NULL, NULL);
        if (i < METRICS_BUCKETS)
            jb_printf(b, ",le=\"%g\"} %llu\n", (double)metrics_bucket_us[i] / 1e6,
                      (unsigned long long)cum);
        else
            jb_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    snprintf(fam, sizeof(fam), "%s_sum", name);
    series(b, fam, k, v, NULL, NULL);
    jb_printf(b, "} %.6f\n", (double)h->sum_us / 1e6);
    snprintf(fam, sizeof(fam), "%s_count", name);
    series(b, fam, k, v, NULL, NULL);
    jb_printf(b, "} %llu\n", (unsigned long long)cum);
}

static uint64_t route_requests(const struct metrics_counters *t, unsigned r)
{
    uint64_t n = 0;
    for (unsigned c = 0; c < METRICS_CLASSES; c++)
        for (unsigned m = 0; m < MM__COUNT; m++)
            n += t->requests[r][c][m];
    return n;
}

/* Id 0 ("no route", or over the cap) is shown only once it counted. */
static bool route_shown(const struct metrics_counters *t, unsigned r)
{
    return r > 0 || route_requests(t, r) > 0;
}

static void render_requests(struct jbuf *b, const struct metrics_counters *t, unsigned nr)
{
    family(b, "requests_total", "counter",
           "Requests ended, by route (\"\" when none matched), method and status class.");
    for (unsigned r = 0; r < nr; r++) {
        for (unsigned m = 0; m < MM__COUNT; m++) {
            for (unsigned c = 0; c < METRICS_CLASSES; c++) {
                uint64_t v = t->requests[r][c][m];
                if (!v)
                    continue;
                series(b, "requests_total", "route", metrics_name(MK_ROUTE, r, NULL), "method",
                       metrics_method_name((enum metrics_method)m));
                jb_printf(b, ",status_class=\"%s\"} %llu\n", class_names[c], (unsigned long long)v);
            }
        }
    }
    family(b, "request_duration_seconds", "histogram",
           "Time from the request head to the end of the response, by route.");
    for (unsigned r = 0; r < nr; r++)
        if (route_shown(t, r))
            hist_series(b, "request_duration_seconds", "route", metrics_name(MK_ROUTE, r, NULL),
                        &t->route_dur[r]);
    family(b, "bytes_received_total", "counter",
           "Bytes received from clients (request heads and bodies), by route.");
    for (unsigned r = 0; r < nr; r++) {
        if (!route_shown(t, r))
            continue;
        series(b, "bytes_received_total", "route", metrics_name(MK_ROUTE, r, NULL), NULL, NULL);
        jb_printf(b, "} %llu\n", (unsigned long long)t->bytes_in[r]);
    }
    family(b, "bytes_sent_total", "counter",
           "Bytes sent to clients (response heads and bodies), by route.");
    for (unsigned r = 0; r < nr; r++) {
        if (!route_shown(t, r))
            continue;
        series(b, "bytes_sent_total", "route", metrics_name(MK_ROUTE, r, NULL), NULL, NULL);
        jb_printf(b, "} %llu\n", (unsigned long long)t->bytes_out[r]);
    }
}

static void render_connections(struct jbuf *b, const struct metrics_counters *t, unsigned nl)
{
    family(b, "connections_active", "gauge",
           "Open client connections, by listener and protocol (a connection counts as http1 "
           "until it switches to h2).");
    for (unsigned l = 1; l < nl; l++) {
        for (unsigned p = 0; p < MP__COUNT; p++) {
            series(b, "connections_active", "listener", metrics_name(MK_LISTENER, l, NULL),
                   "protocol", proto_names[p]);
            int64_t v = t->conn_active[l][p];
            jb_printf(b, "} %lld\n", (long long)(v < 0 ? 0 : v));
        }
    }
    family(b, "connections_total", "counter", "Client connections accepted, by listener.");
    for (unsigned l = 1; l < nl; l++) {
        series(b, "connections_total", "listener", metrics_name(MK_LISTENER, l, NULL), NULL,
               NULL);
        jb_printf(b, "} %llu\n", (unsigned long long)t->conn_total[l]);
    }
}

static void lowercase(char *dst, const char *src, size_t cap)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
    dst[i] = '\0';
}

static void render_upstreams(struct jbuf *b, const struct conf *c, const struct metrics_counters *t,
                             unsigned nu, unsigned ns)
{
    uint64_t now = clock_update();
    family(b, "upstream_response_seconds", "histogram",
           "Time from the upstream attempt's start to the end of the response, by upstream.");
    for (unsigned u = 0; u < nu; u++)
        if (u > 0 || hist_count(&t->up_resp[u]))
            hist_series(b, "upstream_response_seconds", "upstream",
                        metrics_name(MK_UPSTREAM, u, NULL), &t->up_resp[u]);

    family(b, "upstream_server_up", "gauge",
           "1 when the server passes its health checks (or is not checked), else 0.");
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const struct conf_upstream *u = &c->upstreams[i];
        for (size_t j = 0; j < u->n_servers; j++) {
            const struct conf_server *s = &u->servers[j];
            bool up = !s->state || atomic_load(&s->state->health) == SERVER_UP;
            series(b, "upstream_server_up", "upstream", u->name, "server", s->address ? s->address : "");
            jb_printf(b, "} %d\n", up ? 1 : 0);
        }
    }
    family(b, "upstream_server_state", "gauge",
           "1 for the server's current state (up, down, draining, ejected), 0 for the others.");
    static const char *const states[] = {"up", "down", "draining", "ejected"};
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const struct conf_upstream *u = &c->upstreams[i];
        for (size_t j = 0; j < u->n_servers; j++) {
            const struct conf_server *s = &u->servers[j];
            char cur[16];
            lowercase(cur, server_state_name(s, now), sizeof(cur));
            for (size_t k = 0; k < ARRAY_SIZE(states); k++) {
                series(b, "upstream_server_state", "upstream", u->name, "server",
                       s->address ? s->address : "");
                jb_printf(b, ",state=\"%s\"} %d\n", states[k], strcmp(cur, states[k]) == 0);
            }
        }
    }
    family(b, "upstream_server_in_flight", "gauge", "Requests in flight to the server, all workers.");
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const struct conf_upstream *u = &c->upstreams[i];
        for (size_t j = 0; j < u->n_servers; j++) {
            const struct conf_server *s = &u->servers[j];
            series(b, "upstream_server_in_flight", "upstream", u->name, "server",
                   s->address ? s->address : "");
            jb_printf(b, "} %u\n", s->state ? atomic_load(&s->state->active) : 0);
        }
    }

    static const struct {
        const char *name, *help;
        size_t off;
    } per_server[] = {
        {"upstream_server_requests_total",
         "Requests whose last attempt went to the server (whatever the outcome).",
         offsetof(struct metrics_counters, srv_requests)},
        {"upstream_connect_errors_total", "Connections to the server that failed or timed out.",
         offsetof(struct metrics_counters, srv_connect_errors)},
        {"upstream_retries_total", "Requests sent to another server after this one failed.",
         offsetof(struct metrics_counters, srv_retries)},
    };
    for (size_t k = 0; k < ARRAY_SIZE(per_server); k++) {
        const _Atomic uint64_t *v =
            (const _Atomic uint64_t *)((const char *)t + per_server[k].off);
        family(b, per_server[k].name, "counter", per_server[k].help);
        for (unsigned s = 1; s < ns; s++) {
            unsigned uid;
            const char *addr = metrics_name(MK_SERVER, s, &uid);
            series(b, per_server[k].name, "upstream", metrics_name(MK_UPSTREAM, uid, NULL),
                   "server", addr);
            jb_printf(b, "} %llu\n", (unsigned long long)v[s]);
        }
    }
}

static void counter1(struct jbuf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "counter", help);
    jb_printf(b, "portico_%s %llu\n", name, (unsigned long long)v);
}

static void render_cache(struct jbuf *b, const struct metrics_counters *t)
{
    family(b, "cache_requests_total", "counter",
           "Cacheable-route requests by cache outcome (hit, miss, stale, updating, bypass, "
           "revalidated, expired).");
    for (unsigned r = 0; r < MCACHE__COUNT; r++)
        jb_printf(b, "portico_cache_requests_total{result=\"%s\"} %llu\n",
                  metrics_cache_result_name((enum metrics_cache_result)r),
                  (unsigned long long)t->cache[r]);
    const struct cache_stats *cs = g_cache_store ? cache_store_stats(g_cache_store) : NULL;
    if (!cs)
        return;
    counter1(b, "cache_inserts_total", "Objects stored in the cache.", atomic_load(&cs->inserts));
    counter1(b, "cache_evictions_total", "Objects evicted to make room.",
             atomic_load(&cs->evictions));
    counter1(b, "cache_purged_total", "Objects removed by purges.", atomic_load(&cs->purged));
    counter1(b, "cache_disk_reads_total", "Objects read back from the disk tier.",
             atomic_load(&cs->disk_reads));
    counter1(b, "cache_disk_writes_total", "Objects written to the disk tier.",
             atomic_load(&cs->disk_writes));
    counter1(b, "cache_disk_errors_total", "Failed disk tier reads and writes.",
             atomic_load(&cs->disk_errors));
    family(b, "cache_bytes", "gauge", "Bytes held by the cache, by tier.");
    jb_printf(b, "portico_cache_bytes{tier=\"memory\"} %lu\nportico_cache_bytes{tier=\"disk\"} %lu\n",
              atomic_load(&cs->mem_bytes), atomic_load(&cs->disk_bytes));
    family(b, "cache_objects", "gauge", "Objects held by the cache, by tier.");
    jb_printf(b,
              "portico_cache_objects{tier=\"memory\"} %lu\nportico_cache_objects{tier=\"disk\"} %lu\n",
              atomic_load(&cs->mem_objects), atomic_load(&cs->disk_objects));
}

static void render_compress(struct jbuf *b, const struct metrics_counters *t)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } fams[] = {
        {"compress_responses_total", "Responses compressed, by algorithm.",
         offsetof(struct metrics_counters, z_responses)},
        {"compress_input_bytes_total", "Body bytes given to the encoder, by algorithm.",
         offsetof(struct metrics_counters, z_in)},
        {"compress_output_bytes_total", "Body bytes the encoder produced, by algorithm.",
         offsetof(struct metrics_counters, z_out)},
    };
    for (size_t k = 0; k < ARRAY_SIZE(fams); k++) {
        const _Atomic uint64_t *v = (const _Atomic uint64_t *)((const char *)t + fams[k].off);
        family(b, fams[k].name, "counter", fams[k].help);
        for (unsigned a = ZALG_GZIP; a < ZALG__COUNT; a++)
            jb_printf(b, "portico_%s{algorithm=\"%s\"} %llu\n", fams[k].name, zalg_names[a],
                      (unsigned long long)v[a]);
    }
}

/* The counters of every worker added up (metrics_sum), heap-allocated:
 * the block is large but only the pages of ids in use are touched. */
static struct metrics_counters *totals(struct metrics_worker_total *wt, size_t max, size_t *nw)
{
    struct metrics_counters *t = xcalloc(1, sizeof(*t));
    size_t n = metrics_sum(t, wt, max);
    if (nw)
        *nw = n;
    return t;
}

#define MAX_WORKERS 1024

char *admin_metrics_text(const struct conf *c, size_t *len)
{
    /* The running config's names get their series from the first scrape,
     * even before a worker has prepared its snapshot (start-up). */
    metrics_ids_free(metrics_ids_new(c));
    /* Counts first: the sums cover at least these ids. */
    unsigned nr = metrics_count(MK_ROUTE), nu = metrics_count(MK_UPSTREAM);
    unsigned ns = metrics_count(MK_SERVER), nl = metrics_count(MK_LISTENER);
    struct metrics_worker_total *wt = xcalloc(MAX_WORKERS, sizeof(*wt));
    size_t nw;
    struct metrics_counters *t = totals(wt, MAX_WORKERS, &nw);
    struct jbuf b = {0};

    family(&b, "build_info", "gauge", "Always 1; the version is a label.");
    jb_printf(&b, "portico_build_info{version=\"%s\"} 1\n", PORTICO_VERSION);
    render_requests(&b, t, nr);
    render_connections(&b, t, nl);
    render_upstreams(&b, c, t, nu, ns);
    counter1(&b, "tls_handshakes_total", "TLS handshakes completed with clients.",
             atomic_load(&tls_handshakes_total));
    counter1(&b, "tls_handshake_failures_total", "TLS handshakes with clients that failed.",
             atomic_load(&tls_handshake_failures_total));
    uint64_t ok, failed;
    metrics_reloads(&ok, &failed);
    family(&b, "config_reloads_total", "counter",
           "Config changes (SIGHUP, POST /reload, PUT /config, server add/remove) by outcome.");
    jb_printf(&b, "portico_config_reloads_total{result=\"ok\"} %llu\n",
              (unsigned long long)ok);
    jb_printf(&b, "portico_config_reloads_total{result=\"failed\"} %llu\n",
              (unsigned long long)failed);
    render_cache(&b, t);
    render_compress(&b, t);
    family(&b, "worker_requests_total", "counter", "Requests ended, by worker thread.");
    for (size_t i = 0; i < nw && i < MAX_WORKERS; i++)
        jb_printf(&b, "portico_worker_requests_total{worker=\"%u\"} %llu\n", wt[i].id,
                  (unsigned long long)wt[i].requests);
    family(&b, "worker_connections_active", "gauge", "Open client connections, by worker thread.");
    for (size_t i = 0; i < nw && i < MAX_WORKERS; i++)
        jb_printf(&b, "portico_worker_connections_active{worker=\"%u\"} %lld\n", wt[i].id,
                  (long long)(wt[i].conns < 0 ? 0 : wt[i].conns));
    free(t);
    free(wt);
    return jb_take(&b, len);
}

/* ---- dashboard data ---- */

static void jnum(struct jbuf *b, double v)
{
    if (v < 0)
        jb_cstr(b, "null");
    else
        jb_printf(b, "%.3f", v);
}

static void jstr(struct jbuf *b, const char *s)
{
    jb_str(b, s ? s : "", s ? strlen(s) : 0);
}

char *admin_dashboard_json(const struct conf *c, size_t *len)
{
    unsigned nr = metrics_count(MK_ROUTE);
    struct metrics_worker_total *wt = xcalloc(MAX_WORKERS, sizeof(*wt));
    size_t nw;
    struct metrics_counters *t = totals(wt, MAX_WORKERS, &nw);
    struct metrics_sample *hist = xmalloc(METRICS_HISTORY * sizeof(*hist));
    size_t nh = metrics_history(hist, METRICS_HISTORY);
    uint64_t wall = clock_wall_ms(), now = clock_update(), started_wall_ms = metrics_started();
    struct jbuf b = {0};

    jb_cstr(&b, "{\"version\":");
    jstr(&b, PORTICO_VERSION);
    jb_printf(&b, ",\"time\":%llu,\"uptime_ms\":%llu,\"samples\":[", (unsigned long long)wall,
              (unsigned long long)(wall > started_wall_ms ? wall - started_wall_ms : 0));
    for (size_t i = 0; i < nh; i++) {
        const struct metrics_sample *s = &hist[i];
        jb_printf(&b, "%s{\"t\":%llu,\"span\":%u,\"req\":%llu,\"cls\":[%llu,%llu,%llu,%llu,%llu]",
                  i ? "," : "", (unsigned long long)s->t_ms, s->span_ms,
                  (unsigned long long)s->requests, (unsigned long long)s->classes[0],
                  (unsigned long long)s->classes[1], (unsigned long long)s->classes[2],
                  (unsigned long long)s->classes[3], (unsigned long long)s->classes[4]);
        jb_cstr(&b, ",\"p50\":");
        jnum(&b, s->p50_ms);
        jb_cstr(&b, ",\"p90\":");
        jnum(&b, s->p90_ms);
        jb_cstr(&b, ",\"p99\":");
        jnum(&b, s->p99_ms);
        jb_printf(&b, ",\"in\":%llu,\"out\":%llu,\"conns\":%lld}", (unsigned long long)s->bytes_in,
                  (unsigned long long)s->bytes_out, (long long)s->conns);
    }

    /* totals since start, and per route */
    uint64_t classes[METRICS_CLASSES] = {0};
    jb_cstr(&b, "],\"routes\":[");
    bool first = true;
    for (unsigned r = 0; r < nr; r++) {
        if (!route_shown(t, r))
            continue;
        uint64_t rc[METRICS_CLASSES] = {0}, n = 0, hb[METRICS_BUCKETS + 1];
        for (unsigned k = 0; k < METRICS_CLASSES; k++) {
            for (unsigned m = 0; m < MM__COUNT; m++)
                rc[k] += t->requests[r][k][m];
            classes[k] += rc[k];
            n += rc[k];
        }
        for (unsigned k = 0; k <= METRICS_BUCKETS; k++)
            hb[k] = t->route_dur[r].b[k];
        jb_cstr(&b, first ? "{\"name\":" : ",{\"name\":");
        first = false;
        jstr(&b, metrics_name(MK_ROUTE, r, NULL));
        jb_printf(&b, ",\"requests\":%llu,\"cls\":[%llu,%llu,%llu,%llu,%llu],\"p50\":",
                  (unsigned long long)n, (unsigned long long)rc[0], (unsigned long long)rc[1],
                  (unsigned long long)rc[2], (unsigned long long)rc[3], (unsigned long long)rc[4]);
        jnum(&b, metrics_quantile_ms(hb, 0.5));
        jb_cstr(&b, ",\"p99\":");
        jnum(&b, metrics_quantile_ms(hb, 0.99));
        jb_printf(&b, ",\"in\":%llu,\"out\":%llu}", (unsigned long long)t->bytes_in[r],
                  (unsigned long long)t->bytes_out[r]);
    }
    jb_printf(&b,
              "],\"totals\":{\"requests\":%llu,\"cls\":[%llu,%llu,%llu,%llu,%llu],"
              "\"conns\":%lld},\"workers\":[",
              (unsigned long long)t->w_requests, (unsigned long long)classes[0],
              (unsigned long long)classes[1], (unsigned long long)classes[2],
              (unsigned long long)classes[3], (unsigned long long)classes[4],
              (long long)(t->w_conns < 0 ? 0 : t->w_conns));
    for (size_t i = 0; i < nw && i < MAX_WORKERS; i++)
        jb_printf(&b, "%s{\"id\":%u,\"requests\":%llu,\"conns\":%lld}", i ? "," : "", wt[i].id,
                  (unsigned long long)wt[i].requests, (long long)(wt[i].conns < 0 ? 0 : wt[i].conns));

    jb_cstr(&b, "],\"upstreams\":[");
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const struct conf_upstream *u = &c->upstreams[i];
        jb_cstr(&b, i ? ",{\"name\":" : "{\"name\":");
        jstr(&b, u->name);
        jb_cstr(&b, ",\"servers\":[");
        for (size_t j = 0; j < u->n_servers; j++) {
            const struct conf_server *s = &u->servers[j];
            unsigned id = metrics_lookup(MK_SERVER, u->name, s->address);
            char state[16];
            lowercase(state, server_state_name(s, now), sizeof(state));
            jb_cstr(&b, j ? ",{\"address\":" : "{\"address\":");
            jstr(&b, s->address);
            jb_printf(&b,
                      ",\"state\":\"%s\",\"weight\":%u,\"backup\":%s,\"in_flight\":%u,"
                      "\"requests\":%llu,\"connect_errors\":%llu,\"retries\":%llu}",
                      state, s->weight, s->backup ? "true" : "false",
                      s->state ? atomic_load(&s->state->active) : 0,
                      (unsigned long long)(id ? t->srv_requests[id] : 0),
                      (unsigned long long)(id ? t->srv_connect_errors[id] : 0),
                      (unsigned long long)(id ? t->srv_retries[id] : 0));
        }
        jb_cstr(&b, "]}");
    }
    jb_cstr(&b, "]}\n");
    free(hist);
    free(t);
    free(wt);
    return jb_take(&b, len);
}

/* ---- routing ---- */

static void reply_error(struct admin_reply *r, int status, const char *extra, const char *msg)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d}\n", msg, status);
    r->status = status;
    r->content_type = "application/json";
    r->extra = extra;
    r->len = n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0;
    r->body = xstrndup(body, r->len);
}

bool admin_metrics_route(struct admin *a, const struct http_request *rq, bool authorized,
                         struct admin_reply *r)
{
    struct str p = rq->path;
    /* A trailing slash is tolerated (the page finds its data either way). */
    while (p.len > 1 && p.p[p.len - 1] == '/')
        p.len--;
    int which = str_eq(p, STR_LIT("/metrics"))           ? 1
                : str_eq(p, STR_LIT("/dashboard"))      ? 2
                : str_eq(p, STR_LIT("/dashboard/data")) ? 3
                                                        : 0;
    if (!which)
        return false;
    memset(r, 0, sizeof(*r));
    if (which != 2 && !authorized) {
        reply_error(r, 401, "WWW-Authenticate: Bearer\r\n", "missing or wrong bearer token");
        return true;
    }
    if (rq->method_id != HTTP_M_GET && rq->method_id != HTTP_M_HEAD) {
        reply_error(r, 405, "Allow: GET, HEAD\r\n", "method not allowed");
        return true;
    }
    r->status = 200;
    if (which == 2) {
        r->content_type = "text/html; charset=utf-8";
        r->body = xstrndup(admin_dashboard_html, admin_dashboard_html_len);
        r->len = admin_dashboard_html_len;
        return true;
    }
    struct conf *c = admin_running_conf(a);
    if (which == 1) {
        r->content_type = "text/plain; version=0.0.4; charset=utf-8";
        r->body = admin_metrics_text(c, &r->len);
    } else {
        r->content_type = "application/json";
        r->body = admin_dashboard_json(c, &r->len);
    }
    conf_unref(c);
    return true;
}
