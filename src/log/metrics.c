/* metrics.c - the name registry, the per-worker counter blocks, the hooks
 * the proxy calls at the end of a request and on connection and upstream
 * events, and the sums the readers take (see metrics.h for the model). */
#include "log/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/common.h"
#include "log/errlog.h"
#include "proxy/proxy.h"

/* The owning worker's increment: a relaxed load and store, not a
 * read-modify-write. Only one thread ever writes a given block. */
#define MADD(field, n)                                                                      \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n), \
                          memory_order_relaxed)
#define MLOAD(field) atomic_load_explicit(&(field), memory_order_relaxed)

const uint64_t metrics_bucket_us[METRICS_BUCKETS] = {
    100,    250,    500,     1000,    2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

struct metrics_worker {
    /* First, so the block starts on its own pages (it is far above the
     * allocator's mmap threshold): no line is shared with another thread's
     * data. */
    struct metrics_counters c;
    unsigned id;
    struct metrics_worker *next; /* registered blocks, under workers_mu */
};

/* ---- registry ---- */

static struct {
    pthread_mutex_t mu;
    /* names[k][id]; for servers the address, with its upstream's id in
     * srv_upstream. Written once before n[k] is raised past the id. */
    char *names[MK__COUNT][METRICS_MAX];
    uint16_t srv_upstream[METRICS_MAX];
    atomic_uint n[MK__COUNT]; /* id 0 is reserved */
    bool warned[MK__COUNT];
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER, .n = {1, 1, 1, 1}};

static const char *const kind_names[MK__COUNT] = {"route", "upstream", "server", "listener"};

/* The id of name (with upstream id `up` for servers) among the first n, or
 * 0. Under reg.mu, or lock-free with n read by metrics_count(). */
static unsigned find(enum metrics_kind k, const char *name, unsigned up, unsigned n)
{
    for (unsigned i = 1; i < n; i++)
        if (strcmp(reg.names[k][i], name) == 0 && (k != MK_SERVER || reg.srv_upstream[i] == up))
            return i;
    return 0;
}

unsigned metrics_lookup(enum metrics_kind k, const char *name, const char *address)
{
    unsigned up = 0;
    if (k == MK_SERVER) {
        up = metrics_lookup(MK_UPSTREAM, name, NULL);
        if (!up)
            return 0;
        name = address;
    }
    return find(k, name ? name : "", up, metrics_count(k));
}

unsigned metrics_id(enum metrics_kind k, const char *name, const char *address)
{
    if (!name)
        name = "";
    unsigned up = 0;
    if (k == MK_SERVER) {
        up = metrics_id(MK_UPSTREAM, name, NULL);
        name = address ? address : "";
    }
    pthread_mutex_lock(&reg.mu);
    unsigned n = atomic_load_explicit(&reg.n[k], memory_order_relaxed);
    unsigned id = find(k, name, up, n);
    if (id) {
        pthread_mutex_unlock(&reg.mu);
        return id;
    }
    if (n >= METRICS_MAX) {
        if (!reg.warned[k])
            log_warn("metrics: more than %d %s names since start; the others are counted "
                     "without a name",
                     METRICS_MAX - 1, kind_names[k]);
        reg.warned[k] = true;
        pthread_mutex_unlock(&reg.mu);
        return 0;
    }
    reg.names[k][n] = xstrdup(name);
    if (k == MK_SERVER)
        reg.srv_upstream[n] = (uint16_t)up;
    /* Release: a reader that sees the new count sees the name. */
    atomic_store_explicit(&reg.n[k], n + 1, memory_order_release);
    pthread_mutex_unlock(&reg.mu);
    return n;
}

unsigned metrics_count(enum metrics_kind k)
{
    return atomic_load_explicit(&reg.n[k], memory_order_acquire);
}

const char *metrics_name(enum metrics_kind k, unsigned id, unsigned *upstream_id)
{
    if (upstream_id)
        *upstream_id = k == MK_SERVER && id < METRICS_MAX ? reg.srv_upstream[id] : 0;
    if (id == 0 || id >= metrics_count(k))
        return "";
    return reg.names[k][id];
}

struct metrics_ids *metrics_ids_new(const struct conf *c)
{
    size_t n = c->n_routes + c->n_upstreams + c->n_servers_total + c->n_listeners;
    struct metrics_ids *ids = xcalloc(1, sizeof(*ids) + (n ? n : 1) * sizeof(uint16_t));
    uint16_t *p = (uint16_t *)(ids + 1);
    ids->route = p;
    ids->upstream = p += c->n_routes;
    ids->server = p += c->n_upstreams;
    ids->listener = p += c->n_servers_total;
    for (size_t i = 0; i < c->n_routes; i++)
        ids->route[i] = (uint16_t)metrics_id(MK_ROUTE, c->routes[i].name, NULL);
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const struct conf_upstream *u = &c->upstreams[i];
        ids->upstream[i] = (uint16_t)metrics_id(MK_UPSTREAM, u->name, NULL);
        for (size_t j = 0; j < u->n_servers; j++)
            if (u->servers[j].gid < c->n_servers_total)
                ids->server[u->servers[j].gid] =
                    (uint16_t)metrics_id(MK_SERVER, u->name, u->servers[j].address);
    }
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        ids->listener[i] = (uint16_t)metrics_id(MK_LISTENER, l->name ? l->name : l->listen, NULL);
    }
    return ids;
}

void metrics_ids_free(struct metrics_ids *ids)
{
    free(ids);
}

/* ---- worker blocks ---- */

static pthread_mutex_t workers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_worker *workers;
static unsigned n_workers;
static _Atomic uint64_t started_wall_ms;

uint64_t metrics_started(void)
{
    return atomic_load_explicit(&started_wall_ms, memory_order_relaxed);
}

struct metrics_worker *metrics_worker_new(unsigned id)
{
    struct metrics_worker *m = xcalloc(1, sizeof(*m));
    m->id = id;
    pthread_mutex_lock(&workers_mu);
    struct metrics_worker **pp = &workers;
    while (*pp && (*pp)->id < id)
        pp = &(*pp)->next;
    m->next = *pp;
    *pp = m;
    bool first = n_workers++ == 0;
    if (!metrics_started())
        atomic_store_explicit(&started_wall_ms, clock_wall_ms(), memory_order_relaxed);
    pthread_mutex_unlock(&workers_mu);
    if (first)
        metrics_history_start();
    return m;
}

void metrics_worker_free(struct metrics_worker *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&workers_mu);
    for (struct metrics_worker **pp = &workers; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    bool last = --n_workers == 0;
    pthread_mutex_unlock(&workers_mu);
    if (last)
        metrics_history_stop();
    free(m);
}

/* ---- hooks ---- */

unsigned metrics_bucket(uint64_t us)
{
    unsigned i = 0;
    while (i < METRICS_BUCKETS && us > metrics_bucket_us[i])
        i++;
    return i;
}

static void hist_add(struct metrics_hist *h, uint64_t us)
{
    MADD(h->b[metrics_bucket(us)], 1);
    MADD(h->sum_us, us);
}

static enum metrics_method method_of(enum http_method m)
{
    switch (m) {
    case HTTP_M_GET:
        return MM_GET;
    case HTTP_M_HEAD:
        return MM_HEAD;
    case HTTP_M_POST:
        return MM_POST;
    case HTTP_M_PUT:
        return MM_PUT;
    case HTTP_M_DELETE:
        return MM_DELETE;
    default:
        return MM_OTHER;
    }
}

void metrics_stream_end(const struct stream *st, uint64_t now_us)
{
    struct metrics_worker *m = st->w->metrics;
    const struct metrics_ids *ids = st->snap ? st->snap->mids : NULL;
    if (!m)
        return;
    struct metrics_counters *c = &m->c;
    unsigned route = st->route && ids ? ids->route[st->route->index] : 0;
    /* 101 (a finished tunnel) is 1xx; 499 (client gone) is 4xx. */
    int cls = st->status / 100 - 1;
    cls = cls < 0 ? 0 : cls >= METRICS_CLASSES ? METRICS_CLASSES - 1 : cls;
    MADD(c->requests[route][cls][method_of(st->req.method_id)], 1);
    MADD(c->bytes_in[route], st->bytes_in);
    MADD(c->bytes_out[route], st->bytes_out);
    MADD(c->w_requests, 1);
    if (st->start_us && now_us >= st->start_us)
        hist_add(&c->route_dur[route], now_us - st->start_us);
    const struct conf_server *s = st->log_server;
    if (s && ids) {
        if (st->up_start_us) {
            uint64_t end = st->up_end_us > st->up_start_us ? st->up_end_us : now_us;
            hist_add(&c->up_resp[ids->upstream[s->upstream->index]], end - st->up_start_us);
        }
        MADD(c->srv_requests[ids->server[s->gid]], 1);
    }
}

void metrics_conn_open(struct client *cl)
{
    struct worker *w = cl->w;
    if (!w->metrics || !w->snap->mids)
        return;
    /* At accept, the worker's current snapshot is the listener's. */
    cl->m_lid = w->snap->mids->listener[cl->listener->index];
    cl->m_proto = MP_HTTP1;
    cl->m_counted = true;
    MADD(w->metrics->c.conn_active[cl->m_lid][MP_HTTP1], 1);
    MADD(w->metrics->c.conn_total[cl->m_lid], 1);
    MADD(w->metrics->c.w_conns, 1);
}

void metrics_conn_h2(struct client *cl)
{
    struct metrics_counters *c = &cl->w->metrics->c;
    if (!cl->m_counted || cl->m_proto == MP_H2)
        return;
    MADD(c->conn_active[cl->m_lid][cl->m_proto], -1);
    MADD(c->conn_active[cl->m_lid][MP_H2], 1);
    cl->m_proto = MP_H2;
}

void metrics_conn_close(struct client *cl)
{
    if (!cl->m_counted)
        return;
    struct metrics_counters *c = &cl->w->metrics->c;
    cl->m_counted = false;
    MADD(c->conn_active[cl->m_lid][cl->m_proto], -1);
    MADD(c->w_conns, -1);
}

void metrics_connect_error(const struct stream *st, const struct conf_server *s)
{
    struct metrics_worker *m = st->w->metrics;
    if (m && st->snap && st->snap->mids && s)
        MADD(m->c.srv_connect_errors[st->snap->mids->server[s->gid]], 1);
}

void metrics_retry(const struct stream *st)
{
    struct metrics_worker *m = st->w->metrics;
    const struct conf_server *s = st->log_server;
    if (m && st->snap && st->snap->mids && s)
        MADD(m->c.srv_retries[st->snap->mids->server[s->gid]], 1);
}

void metrics_cache(struct metrics_worker *m, enum metrics_cache_result r)
{
    if (m && (unsigned)r < MCACHE__COUNT)
        MADD(m->c.cache[r], 1);
}

void metrics_compress(struct metrics_worker *m, enum zalg alg, uint64_t in_bytes,
                      uint64_t out_bytes)
{
    if (!m || (unsigned)alg >= ZALG__COUNT)
        return;
    MADD(m->c.z_responses[alg], 1);
    MADD(m->c.z_in[alg], in_bytes);
    MADD(m->c.z_out[alg], out_bytes);
}

/* Reloads are rare and may come from two threads (signals on main, the
 * admin API): shared atomics are right here. */
static atomic_ulong reloads_ok, reloads_failed;

void metrics_reload(bool ok)
{
    atomic_fetch_add_explicit(ok ? &reloads_ok : &reloads_failed, 1, memory_order_relaxed);
}

void metrics_reloads(uint64_t *ok, uint64_t *failed)
{
    *ok = atomic_load_explicit(&reloads_ok, memory_order_relaxed);
    *failed = atomic_load_explicit(&reloads_failed, memory_order_relaxed);
}

/* ---- readers ---- */

const char *metrics_cache_result_name(enum metrics_cache_result r)
{
    static const char *const names[MCACHE__COUNT] = {
        "hit", "miss", "stale", "updating", "bypass", "revalidated", "expired"};
    return (unsigned)r < MCACHE__COUNT ? names[r] : "unknown";
}

const char *metrics_method_name(enum metrics_method m)
{
    static const char *const names[MM__COUNT] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OTHER"};
    return (unsigned)m < MM__COUNT ? names[m] : "OTHER";
}

/* dst += src for n 64-bit counters (relaxed loads of the worker's values;
 * dst is the reader's own). */
static void add_u64(_Atomic uint64_t *dst, _Atomic uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        MADD(dst[i], MLOAD(src[i]));
}

static void add_i64(_Atomic int64_t *dst, _Atomic int64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        MADD(dst[i], MLOAD(src[i]));
}

static void add_hist(struct metrics_hist *dst, struct metrics_hist *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        add_u64(dst[i].b, src[i].b, METRICS_BUCKETS + 1);
        MADD(dst[i].sum_us, MLOAD(src[i].sum_us));
    }
}

size_t metrics_sum(struct metrics_counters *out, struct metrics_worker_total *wt, size_t max)
{
    unsigned nr = metrics_count(MK_ROUTE), nu = metrics_count(MK_UPSTREAM);
    unsigned ns = metrics_count(MK_SERVER), nl = metrics_count(MK_LISTENER);
    size_t k = 0;
    pthread_mutex_lock(&workers_mu);
    for (struct metrics_worker *m = workers; m; m = m->next, k++) {
        struct metrics_counters *c = &m->c;
        add_u64(&out->requests[0][0][0], &c->requests[0][0][0],
                (size_t)nr * METRICS_CLASSES * MM__COUNT);
        add_u64(out->bytes_in, c->bytes_in, nr);
        add_u64(out->bytes_out, c->bytes_out, nr);
        add_hist(out->route_dur, c->route_dur, nr);
        add_hist(out->up_resp, c->up_resp, nu);
        add_u64(out->srv_requests, c->srv_requests, ns);
        add_u64(out->srv_connect_errors, c->srv_connect_errors, ns);
        add_u64(out->srv_retries, c->srv_retries, ns);
        add_i64(&out->conn_active[0][0], &c->conn_active[0][0], (size_t)nl * MP__COUNT);
        add_u64(out->conn_total, c->conn_total, nl);
        add_u64(out->cache, c->cache, MCACHE__COUNT);
        add_u64(out->z_responses, c->z_responses, ZALG__COUNT);
        add_u64(out->z_in, c->z_in, ZALG__COUNT);
        add_u64(out->z_out, c->z_out, ZALG__COUNT);
        uint64_t wr = MLOAD(c->w_requests);
        int64_t wc = MLOAD(c->w_conns);
        MADD(out->w_requests, wr);
        MADD(out->w_conns, wc);
        if (wt && k < max)
            wt[k] = (struct metrics_worker_total){.id = m->id, .requests = wr, .conns = wc};
    }
    pthread_mutex_unlock(&workers_mu);
    return k;
}

double metrics_quantile_ms(const uint64_t b[METRICS_BUCKETS + 1], double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i <= METRICS_BUCKETS; i++)
        total += b[i];
    if (!total)
        return -1;
    double rank = q * (double)total, cum = 0;
    for (unsigned i = 0; i < METRICS_BUCKETS; i++) {
        if (b[i] && cum + (double)b[i] >= rank) {
            double lo = i ? (double)metrics_bucket_us[i - 1] : 0;
            double hi = (double)metrics_bucket_us[i];
            return (lo + (hi - lo) * (rank - cum) / (double)b[i]) / 1000.0;
        }
        cum += (double)b[i];
    }
    return (double)metrics_bucket_us[METRICS_BUCKETS - 1] / 1000.0;
}
