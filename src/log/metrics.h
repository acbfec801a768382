/* metrics.h - request, connection, upstream, cache and compression counters
 * for GET /metrics and the dashboard.
 *
 * Model. Every worker owns one counter block (struct metrics_worker) and is
 * the only writer of it: an increment is a relaxed load and a relaxed store
 * of a 64-bit atomic (a plain add on x86-64, no lock prefix, no shared cache
 * line). Readers (the admin thread at scrape time, the history sampler once
 * a second) add the blocks of all workers up with relaxed loads; a reader
 * may see a request counted in one family and not yet in another, never a
 * torn value.
 *
 * Stable ids. Counters are indexed by small ids from a process-wide,
 * append-only registry of names (routes, upstreams, listeners, and servers
 * as upstream + address), so a series keeps counting across reloads as long
 * as its name is the same, and a name removed by a reload keeps its last
 * values (a Prometheus counter never goes back). The registry takes a mutex
 * only when a snapshot is prepared (metrics_ids_new, once per worker and
 * snapshot); the request path only indexes arrays through the snapshot's id
 * table (wsnap.mids). Id 0 of each kind is reserved: "no route" for routes,
 * and the bucket for names beyond the cap (METRICS_MAX, with one warning). */
#ifndef PORTICO_LOG_METRICS_H
#define PORTICO_LOG_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

struct stream;
struct client;

/* Names of each kind the registry can hold (id 0 included). */
#define METRICS_MAX 1024

enum metrics_kind { MK_ROUTE = 0, MK_UPSTREAM, MK_SERVER, MK_LISTENER, MK__COUNT };

/* Request methods with their own series; the others count as OTHER. */
enum metrics_method { MM_GET = 0, MM_HEAD, MM_POST, MM_PUT, MM_DELETE, MM_OTHER, MM__COUNT };
/* Status classes 1xx..5xx (index = status / 100 - 1, clamped). */
#define METRICS_CLASSES 5
enum metrics_proto { MP_HTTP1 = 0, MP_H2, MP__COUNT };

/* How the cache answered a request (nginx's $upstream_cache_status set). */
enum metrics_cache_result {
    MCACHE_HIT = 0,     /* served from the cache, fresh */
    MCACHE_MISS,        /* not in the cache: fetched (and maybe stored) */
    MCACHE_STALE,       /* served stale (stale-if-error / stale-while-revalidate) */
    MCACHE_UPDATING,    /* served stale while another request refreshes it */
    MCACHE_BYPASS,      /* not looked up (method, no-store, Authorization, ...) */
    MCACHE_REVALIDATED, /* stored copy confirmed by the origin (304) */
    MCACHE_EXPIRED,     /* stored copy too old: fetched again */
    MCACHE__COUNT
};

/* Histogram bucket upper bounds in microseconds: 0.1, 0.25, 0.5, 1, 2.5, 5,
 * 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 ms (the sub-millisecond
 * ones because a proxy's own answers and near origins are that fast); one
 * more bucket above. */
#define METRICS_BUCKETS 16
extern const uint64_t metrics_bucket_us[METRICS_BUCKETS];

struct metrics_hist {
    _Atomic uint64_t b[METRICS_BUCKETS + 1]; /* per bucket, not cumulative */
    _Atomic uint64_t sum_us;
};

/* Every counter a worker keeps. The totals summed across workers have the
 * same layout (metrics_sum). */
struct metrics_counters {
    _Atomic uint64_t requests[METRICS_MAX][METRICS_CLASSES][MM__COUNT]; /* by route */
    _Atomic uint64_t bytes_in[METRICS_MAX], bytes_out[METRICS_MAX];     /* by route */
    struct metrics_hist route_dur[METRICS_MAX];                          /* request duration */
    struct metrics_hist up_resp[METRICS_MAX]; /* upstream response time, by upstream */
    _Atomic uint64_t srv_requests[METRICS_MAX], srv_connect_errors[METRICS_MAX],
        srv_retries[METRICS_MAX];                      /* by server */
    _Atomic int64_t conn_active[METRICS_MAX][MP__COUNT]; /* by listener */
    _Atomic uint64_t conn_total[METRICS_MAX];          /* by listener */
    _Atomic uint64_t cache[MCACHE__COUNT];
    _Atomic uint64_t z_responses[ZALG__COUNT], z_in[ZALG__COUNT], z_out[ZALG__COUNT];
    /* this worker's totals (dashboard) */
    _Atomic uint64_t w_requests;
    _Atomic int64_t w_conns;
};

struct metrics_worker;

/* ---- workers ---- */

/* A zeroed counter block for worker `id`, registered for the readers. The
 * first one also starts the history sampler thread. Main thread. */
struct metrics_worker *metrics_worker_new(unsigned id);
/* Unregisters and frees the block (its counts leave the sums: only at
 * exit). The last one stops the sampler. NULL is allowed. Main thread. */
void metrics_worker_free(struct metrics_worker *m);

/* ---- registry and per-snapshot id tables ---- */

/* The id of a name of kind k, registered on first use (`address` only for
 * MK_SERVER, whose name is the upstream's). Returns 0 when the registry is
 * full. Any thread; takes the registry mutex. */
unsigned metrics_id(enum metrics_kind k, const char *name, const char *address);
/* The id of a registered name, or 0 (nothing is registered). Any thread. */
unsigned metrics_lookup(enum metrics_kind k, const char *name, const char *address);
/* Names registered so far of kind k (ids 0..n-1 are valid). Any thread,
 * lock-free: names never move nor change once published. */
unsigned metrics_count(enum metrics_kind k);
/* The name of an id ("" for id 0). For MK_SERVER: the server's address,
 * and its upstream's id in *upstream_id. */
const char *metrics_name(enum metrics_kind k, unsigned id, unsigned *upstream_id);

/* A snapshot's ids: route[i] for conf.routes[i], upstream[i] for
 * conf.upstreams[i], server[gid] for every server, listener[i]. */
struct metrics_ids {
    uint16_t *route, *upstream, *server, *listener;
};
/* Builds the id table of c (registering its names). Main or worker
 * thread, off the request path; free with metrics_ids_free. */
struct metrics_ids *metrics_ids_new(const struct conf *c);
void metrics_ids_free(struct metrics_ids *ids);

/* ---- hooks (the owning worker's thread only) ---- */

/* The end of a request (stream_log): requests by route x class x method,
 * bytes, duration, the upstream's response time, the server's requests.
 * now_us is clock_mono_us() at the end. */
void metrics_stream_end(const struct stream *st, uint64_t now_us);
/* A client connection was accepted (counted as HTTP/1.1), switched to
 * HTTP/2, or is closing. */
void metrics_conn_open(struct client *cl);
void metrics_conn_h2(struct client *cl);
void metrics_conn_close(struct client *cl);
/* A connect to s failed (refused, timeout) for st. */
void metrics_connect_error(const struct stream *st, const struct conf_server *s);
/* st goes to another server after a failure of st->log_server. */
void metrics_retry(const struct stream *st);
/* Cache outcome of one request. */
void metrics_cache(struct metrics_worker *m, enum metrics_cache_result r);
/* One compressed response: body bytes before and after the encoder. */
void metrics_compress(struct metrics_worker *m, enum zalg alg, uint64_t in_bytes,
                      uint64_t out_bytes);
/* The outcome of a reload (SIGHUP, POST /reload, PUT /config). Any thread. */
void metrics_reload(bool ok);

/* ---- readers (any thread) ---- */

const char *metrics_cache_result_name(enum metrics_cache_result r); /* "hit", ... */
const char *metrics_method_name(enum metrics_method m);            /* "GET", ... */

/* Adds every worker's counters into *out (zeroed by the caller), for ids
 * below the registry counts. Per worker: up to max entries of its id,
 * requests and open connections into the arrays (may be NULL); returns the
 * number of workers. */
struct metrics_worker_total {
    unsigned id;
    uint64_t requests;
    int64_t conns;
};
size_t metrics_sum(struct metrics_counters *out, struct metrics_worker_total *workers,
                   size_t max);
void metrics_reloads(uint64_t *ok, uint64_t *failed);
/* Wall-clock ms when the first worker block was made (start-up). */
uint64_t metrics_started(void);

/* The bucket of a duration (0..METRICS_BUCKETS). */
unsigned metrics_bucket(uint64_t us);
/* The q-quantile (0 < q < 1) in milliseconds of a histogram given as
 * non-cumulative bucket counts, interpolated linearly inside the bucket
 * (as Prometheus' histogram_quantile); values above the last bound count
 * as that bound. Returns -1 when the histogram is empty. */
double metrics_quantile_ms(const uint64_t b[METRICS_BUCKETS + 1], double q);

/* ---- history (metrics_history.c) ---- */

/* One second of the whole proxy, as the dashboard draws it. */
struct metrics_sample {
    uint64_t t_ms;     /* wall clock at the end of the interval */
    uint32_t span_ms;  /* length of the interval */
    uint64_t requests; /* requests ended in the interval */
    uint64_t classes[METRICS_CLASSES];
    double p50_ms, p90_ms, p99_ms; /* request duration; -1 without requests */
    uint64_t bytes_in, bytes_out;
    int64_t conns; /* open client connections at the end */
};
#define METRICS_HISTORY 300 /* samples kept: five minutes */

/* Starts / stops the sampler thread (metrics_worker_new / _free do it). */
void metrics_history_start(void);
void metrics_history_stop(void);
/* Copies the samples, oldest first; returns how many (<= max). */
size_t metrics_history(struct metrics_sample *out, size_t max);
/* Takes one sample now (the sampler calls it every second; tests too). */
void metrics_history_sample(void);

#endif
