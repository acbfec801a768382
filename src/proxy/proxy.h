/* proxy.h - the proxy engine's per-worker objects and their contracts:
 * worker (one thread, one loop), client connection (downstream HTTP/1.1),
 * stream (one request's lifecycle), upconn (upstream HTTP/1.1 connection) and
 * relay (one body direction). All of these belong to exactly one worker and
 * are touched by no other thread. */
#ifndef PORTICO_PROXY_PROXY_H
#define PORTICO_PROXY_PROXY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"
#include "core/addr.h"
#include "core/buf.h"
#include "event/loop.h"
#include "http/chunked.h"
#include "http/msg.h"
#include "net/xport.h"

struct router_scratch;
struct access_log;
struct h2conn; /* proxy/h2.c: the HTTP/2 session of a client connection */
struct metrics_worker; /* log/metrics.h */
struct metrics_ids;
struct zenc;      /* filters/compress.h */
struct cache_obj; /* filters/cache_store.h */

/* ---- worker ---- */

struct wlistener {
    struct ev_io io;
    struct worker *w;
    const struct conf_listener *cl;
};

struct pool_bucket {
    struct upconn *head;
    unsigned count;
    void *tls_session; /* latest SSL_SESSION * for this server (upstream TLS resumption) */
};

/* A config snapshot as one worker uses it: the balancer states of its
 * upstreams. Streams point at the wsnap they started on; after a reload the
 * old one lives until its last stream ends. */
struct wsnap {
    struct conf *conf; /* ref held */
    void **lb_state;   /* per upstream index */
    unsigned streams;
    struct wsnap *next; /* retired list */
    struct metrics_ids *mids; /* log/metrics.h: this snapshot's metric ids */
};

/* Messages from the main thread, as bits in worker.inbox_flags. */
#define WORKER_MSG_DRAIN 1u /* graceful stop: stop accepting, finish in-flight */
#define WORKER_MSG_STOP 2u  /* stop now */
#define WORKER_MSG_CONF 4u  /* a new snapshot waits in pending_conf */

struct worker {
    unsigned id;
    pthread_t thread;
    struct loop loop;
    struct conf *conf; /* snapshot for new requests; this worker holds a ref */
    struct ev_io inbox;
    atomic_uint inbox_flags;
    struct conf *_Atomic pending_conf;
    int *pending_fds;       /* listen fds for pending_conf (set before the post) */
    atomic_uint applied_gen; /* reloads applied; main waits on it */
    struct wsnap *snap;     /* current: w->conf's balancer states */
    struct wsnap *retired;  /* older snapshots with streams still running */

    int *listen_fds; /* one per conf listener, owned */
    struct wlistener *listeners;
    size_t n_listeners;

    struct pool_bucket *pools; /* per server gid */
    struct router_scratch *rscratch;

    struct client *clients; /* all open client connections */
    unsigned n_clients;
    struct stream *free_streams;

    bool draining;
    /* Retry budget (upstream.c): proxied requests in flight on this worker
     * and how many of them have been retried. */
    unsigned proxy_active, retry_active;
    struct stream *pending_head, *pending_tail; /* waiting for a server slot */
    struct timer pending_timer;
    struct timer tick;
    struct access_log *alog;
    struct metrics_worker *metrics; /* log/metrics.h: written by this worker only */
    /* Requests waiting for another request's cache fill (cache_glue.c). */
    struct stream *cache_waiters;
    struct timer cache_wait_timer;
    atomic_bool exited;
};

/* Connection count across workers (limits.max_connections). */
extern atomic_ulong g_conn_count;

/* Creates a worker for `conf` (ref taken) with its pre-bound listen fds. */
struct worker *worker_new(unsigned id, struct conf *conf, int *listen_fds);
int worker_start(struct worker *w);
void worker_post(struct worker *w, unsigned msg);
/* Hands a new snapshot (ref transferred) and its listen fds (owned) to w. The
 * worker switches between events; w->applied_gen grows when it did. */
void worker_post_conf(struct worker *w, struct conf *c, int *listen_fds);
void worker_join_free(struct worker *w);
/* Opens the shared cache store once a config has a cached route (memory
 * size and disk tier from that config; later reloads keep the store). -1
 * with a message on failure. engine_cache_free closes it at exit. */
int engine_cache_setup(const struct conf *c, char *err, size_t errlen);
void engine_cache_free(void);

/* ---- relay: one body direction ---- */

enum relay_in { RIN_NONE = 0, RIN_LENGTH, RIN_CHUNKED, RIN_EOF };
enum relay_out { ROUT_RAW = 0, ROUT_CHUNK, ROUT_DECHUNK, ROUT_FILTER /* body_filter.c */ };

struct relay {
    uint8_t in;  /* enum relay_in: how the source frames the body */
    uint8_t out; /* enum relay_out: how it is written to the sink */
    bool done;   /* the source body has been fully taken from its buffer */
    bool eof_seen;
    uint32_t raw_pending; /* bytes at the source buffer head to write as-is */
    uint64_t remaining;   /* RIN_LENGTH */
    uint64_t total;       /* body bytes taken so far */
    struct chunked_dec dec;
    char *trailers; /* ROUT_DECHUNK for HTTP/2: captured trailer lines (owned) */
};

/* ---- client (downstream) connection ---- */

enum client_state { CL_HEAD = 0, CL_IDLE, CL_BUSY, CL_CLOSING, CL_H2, CL_DEAD };

struct client {
    struct ev_io io;
    struct xport x; /* x.fd == io.fd */
    struct timer timer;
    struct deferred dfr;
    struct deferred run_dfr;
    bool run_queued;
    struct worker *w;
    const struct conf_listener *listener;
    struct addr peer;
    char peer_ip[48];
    uint8_t peer_ip_len;
    uint8_t state; /* enum client_state */
    bool can_read, can_write;
    bool rdhup; /* the peer's FIN was reported: a short read no longer means drained */
    bool eof;
    uint64_t state_since;
    uint64_t last_read, last_write;
    struct buf *rbuf;
    struct buf *wbuf; /* CL_CLOSING leftovers (final error response) */
    struct conf *conf; /* snapshot of its listener (ref held for the connection) */
    struct stream *stream; /* HTTP/1.1: the current exchange */
    struct h2conn *h2;     /* HTTP/2: the session (NULL for HTTP/1.1) */
    struct client *prev, *next;
    unsigned requests;
    uint16_t m_lid;  /* metrics: listener id, */
    uint8_t m_proto; /* protocol counted (enum metrics_proto), */
    bool m_counted;  /* and whether the open connection is counted */
    /* An internal connection (cache_refresh.c): no socket; its one request
     * refreshes refresh_obj, whose fill claim it inherited. */
    bool refresh;
    struct cache_obj *refresh_obj;
};

/* ---- upstream connection ---- */

enum upconn_state { UP_CONNECTING = 0, UP_HANDSHAKE, UP_ACTIVE, UP_IDLE };

struct upconn {
    struct ev_io io;
    struct xport x; /* x.fd == io.fd */
    void *tls_session; /* SSL_SESSION * from this connection's tickets (upstream TLS) */
    struct timer timer;
    struct deferred dfr;
    struct worker *w;
    const struct conf_server *server;
    struct conf *snap; /* the snapshot `server` belongs to (pool key) */
    struct buf *rbuf;
    uint8_t state;
    bool can_read, can_write;
    bool rdhup;
    bool reused;
    uint64_t last_read, last_write;
    struct stream *stream;
    struct upconn *pnext, *pprev; /* pool links */
};

/* ---- stream: one request/response exchange ---- */

struct stream {
    struct worker *w;
    struct client *cl;
    struct upconn *up;
    struct conf *conf; /* snapshot the request started on (kept by snap) */
    struct wsnap *snap; /* its balancer states */
    const struct conf_route *route;
    struct stream *next_free;

    struct http_request req; /* views into head_copy */
    char *head_copy;
    size_t head_cap;

    char req_id[72];
    uint8_t req_id_len;
    char trace[56];    /* W3C traceparent (version 00 form) or empty */
    uint8_t trace_len;
    bool trace_gen;    /* started here (tracing: true): sent upstream */
    char client_ip[48];
    uint8_t client_ip_len;
    bool peer_trusted;
    bool tls_subject_done;
    uint16_t tls_subject_len;
    char tls_subject[256];

    /* request direction: req_head then raw body bytes from cl->rbuf */
    struct buf *req_head;
    uint32_t req_head_off;
    struct relay req_body;
    uint64_t req_body_sent;
    bool req_sent;
    bool req_abandoned; /* the origin stopped reading the body after answering */

    /* response direction: resp_out then raw body bytes from up->rbuf */
    struct buf *resp_out;
    struct relay resp_body;
    bool resp_head_done; /* upstream head parsed and client head queued */
    bool resp_started;   /* some response byte (not 100-continue) queued to the client */
    bool finishing;      /* local response queued: finish once flushed */
    bool tunnel;         /* after a 101: raw two-way relay */
    bool close_client;   /* close the client after this response */
    bool up_reusable;
    bool is_head;
    bool expect_sent;
    int status;

    const struct conf_server *server;
    const struct conf_server *log_server; /* last server tried, for the access log */
    unsigned attempts;
    uint8_t tried[32];
    /* Retries (upstream.c): a copy of the request body bytes sent so far,
     * kept while a replay on another server is possible (bounded by
     * retry_body_max), HTTP/1.1 clients only. */
    struct buf *body_copy;
    bool copy_body;     /* keep copying body bytes as they are sent */
    bool body_copy_lost; /* the body outgrew the copy: no replay */
    bool counted;       /* counted in worker.proxy_active */
    bool retry_token;   /* holds one of the worker's retry budget slots */
    bool pending;       /* waiting for a server slot (max_pending) */
    struct buf *fwd_head; /* the forwarded head, kept with body_copy */
    uint64_t pending_until; /* monotonic ms */
    struct stream *pnext, *pprev; /* worker.pending list */

    uint64_t start_us, up_start_us, up_end_us;
    uint64_t bytes_in, bytes_out;

    /* HTTP/2 only */
    int32_t h2_id;
    bool h2_in_eof;     /* END_STREAM received: the request body is complete */
    bool h2_deferred;   /* the DATA provider waits for bytes */
    bool h2_finished;   /* response complete (END_STREAM sent), upstream released */
    bool h2_queued;     /* on the session's run queue */
    bool h2_started;
    size_t h2_head_len; /* bytes of header data collected in head_copy */
    struct buf *h2_in;  /* request DATA waiting to be forwarded */
    char *h2_trailers;  /* request trailer lines for the chunked upstream body */
    size_t h2_trailers_len;
    struct stream *h2_next_run;

    /* Response body filter (body_filter.c): compression and the cache tee.
     * Active when resp_body.out == ROUT_FILTER. */
    struct zenc *zenc;
    struct buf *bf_stage; /* dechunked body bytes waiting for the encoder */
    bool bf_chunk;        /* frame the output as chunks (HTTP/1.1 client) */
    bool bf_in_done;      /* the source body is complete */
    bool bf_unflushed;    /* the encoder holds input not yet flushed out */
    bool bf_flush;        /* a sync flush is under way */
    uint8_t zalg;         /* enum zalg applied (ZALG_IDENTITY = none) */
    uint64_t z_in, z_out;

    /* Cache (cache_glue.c) */
    uint8_t cache_status;    /* enum cache_result: Cache-Status and the log */
    bool cache_claimed;      /* holds the fill claim of cache_key */
    bool cache_reval;        /* the upstream request revalidates `stale` */
    bool cache_nostore;      /* the request must not be answered from or stored in the cache */
    char *cache_key;         /* primary key (malloc'd) */
    char *cache_ckey;        /* the key whose fill claim is held (malloc'd) */
    size_t cache_ckey_len;
    size_t cache_key_len;
    char *cache_vkey;        /* key of the variant (primary + '\n' + values) or NULL */
    size_t cache_vkey_len;
    struct cache_obj *fill;  /* being filled from this response */
    struct cache_obj *hit;   /* being served from the cache (zero copy) */
    uint64_t hit_off, hit_end;
    struct cache_obj *stale; /* stored object under revalidation / for stale-if-error */
    int64_t cache_req_time;  /* wall seconds when the request went to the origin */
    struct stream *cw_next, *cw_prev; /* worker.cache_waiters */
    uint64_t cw_until;       /* monotonic ms: stop waiting for another fill */
};

#endif
