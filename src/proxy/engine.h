/* engine.h - private interfaces between the proxy engine's files
 * (client.c, stream.c, upstream.c, forward.c, relay.c, worker.c). */
#ifndef PORTICO_PROXY_ENGINE_H
#define PORTICO_PROXY_ENGINE_H

#include "proxy/proxy.h"

/* Results of a processing step. */
#define STEP_WAIT 0  /* nothing more to do until an I/O event or timer */
#define STEP_AGAIN 1 /* state changed: dispatch again */
#define STEP_GONE 2  /* the client connection was closed and released */

/* Results of a pump step inside a stream. */
#define PUMP_IDLE 0
#define PUMP_PROGRESS 1
#define PUMP_STOP 2   /* the stream changed course (error response, close): re-dispatch */
#define PUMP_FINISH 3 /* the response is complete and flushed */

/* client.c */
void client_accept(struct wlistener *wl, int fd, const struct sockaddr *sa, socklen_t len);
void client_run(struct client *cl);
/* Queues client_run() to run after the current batch (no recursion). */
void client_schedule(struct client *cl);
void client_close(struct client *cl);
/* A connection without a socket carrying one request (`head`, HTTP/1.1 with
 * Connection: close) as if from `like`'s peer on its listener; responses are
 * discarded. The caller sets refresh_obj and schedules it. NULL when the
 * head is too large. */
struct client *client_internal(struct worker *w, const struct client *like, const char *head,
                               size_t len);
/* Reads into cl->rbuf. Returns bytes, IO_AGAIN, IO_EOF or IO_ERROR. */
ssize_t client_fill(struct client *cl);
void client_rearm(struct client *cl);

/* stream.c */
struct stream *stream_get(struct worker *w, struct client *cl);
void stream_put(struct stream *st);
/* Frees this worker thread's scratch (at its exit). */
void stream_thread_exit(void);
/* Starts processing the parsed request in st->req. Returns a STEP_ value. */
int stream_start(struct stream *st);
/* The proxy action after the cache phase: upstream head, then a server.
 * Returns a STEP_ value. */
int stream_proxy_go(struct stream *st);
/* Runs the stream's connection after an event on its upstream side. The
 * stream may have ended (HTTP/1.1: its client closed) by then: only its
 * client pointer is read, and client objects outlive the event batch. */
void stream_kick(struct stream *st);
/* Moves bytes in both directions as far as readiness allows. STEP_ value. */
int stream_pump(struct stream *st);
/* Replaces whatever the stream was doing with a local response. `extra` holds
 * complete header lines ("Name: value\r\n"...) or is NULL. Drops the upstream
 * connection. Never fails. */
void stream_respond(struct stream *st, int status, const char *ctype, const char *body,
                    size_t body_len, const char *extra, size_t extra_len);
void stream_error(struct stream *st, int status);
/* Whether the client connection may stay open after this exchange (not
 * draining, no Connection: close, HTTP/1.0 only with keep-alive, keep-alive
 * not turned off). Whether the request body was read is the caller's check. */
bool stream_client_keeps_alive(const struct stream *st);
/* Ends the stream abruptly: closes the client (a cut response). STEP_GONE. */
int stream_abort(struct stream *st);

/* upstream.c */
enum upfail {
    UPF_CONNECT,         /* refused / reset while connecting */
    UPF_CONNECT_TIMEOUT, /* no connection within upstream_connect */
    UPF_SEND,            /* error writing the request */
    UPF_SEND_TIMEOUT,
    UPF_EOF_BEFORE_HEAD, /* closed before a complete response head */
    UPF_READ_TIMEOUT,
    UPF_BAD_RESPONSE, /* unparsable head / framing */
};
/* Picks a server and connects (or takes a pooled connection). On failure it
 * retries or answers an error itself. Returns a STEP_ value. */
int upstream_attach(struct stream *st);
/* Handles an upstream failure: retry elsewhere, error response, or cut. */
int upstream_failed(struct stream *st, enum upfail why);
/* Detaches st->up from the stream: back to the pool when `reuse`, else closed. */
void upstream_release(struct stream *st, bool reuse);
/* Ends the stream's claim on st->server (balancer in-flight, connection
 * limit). Safe when there is none. */
void upstream_release_server(struct stream *st);
ssize_t upconn_fill(struct upconn *up);
void upconn_rearm(struct upconn *up);
void pool_close_all(struct worker *w);

/* retry.c */
/* First attach of a proxied request: counts it for the retry budget and
 * decides whether its body is copied for replay. */
void upstream_begin(struct stream *st, const struct conf_upstream *u);
/* pump_request hook: n body bytes from the client are about to be sent
 * upstream (and consumed); keeps them while a replay is possible. */
void stream_keep_body(struct stream *st, const char *p, size_t n);
/* stream_put hook: budget counters, pending queue, body copy. */
void stream_retry_end(struct stream *st);
/* True when the request may go to another server now (retries left, no
 * response byte sent, idempotent unless allowed when it may have `reached`
 * the origin, body replayable, a candidate left, budget): takes a budget
 * slot for the rest of the request. */
bool upstream_may_retry(struct stream *st, const struct conf_upstream *u, bool reached);
/* Rewinds the request for another attempt (head + copied body again). */
void upstream_prepare_replay(struct stream *st);
/* Passive recording of a failed exchange with s (outlier count, /status). */
void upstream_note_failure(const struct conf_server *s, enum upfail why, int err);
/* stream.c hook with the status of a final response head: records the
 * outcome; for a retry_on status it may drop the response and retry on
 * another server, returning true (the stream changed course). */
bool upstream_retry_on_status(struct stream *st, int status);
/* max_pending: queues a request for a full group (true), or false when the
 * queue is full or disabled. upstream_unqueue takes it out again. */
bool upstream_enqueue(struct stream *st, const struct conf_upstream *u);
void upstream_unqueue(struct stream *st);
/* upstream.c: 503 with Retry-After (every server full). */
void upstream_reject_full(struct stream *st);
/* upstream.c: closes idle pooled connections to draining servers (tick). */
void pool_close_draining(struct worker *w);
/* upstream.c: closes idle pooled connections beyond `keepalive` once they
 * have been idle a while (tick). */
void pool_trim(struct worker *w);
/* Idle connections a pool may hold during a burst (see pool_trim). */
#define POOL_BURST_CAP(keepalive) ((keepalive) * 2u)

/* forward.c */
/* Computes st->client_ip, st->peer_trusted and st->req_id. */
void fwd_prepare(struct stream *st);
/* Writes the upstream request head into st->req_head. 0 or -1 (too large). */
int fwd_request_head(struct stream *st);
/* Writes the client response head for `resp` into st->resp_out and sets up
 * st->resp_body. 0 or -1 (too large). */
int fwd_response_head(struct stream *st, const struct http_response *resp);
/* Resolver for templates in the context of a stream. */
struct str fwd_tmpl_var(void *ctx, enum tmpl_var v, struct str arg);
/* True for a field that describes one connection only (RFC 9110 7.6.1):
 * the hop-by-hop fields and those named by the message's Connection. */
bool fwd_connection_field(const struct http_framing *f, struct str name);
/* True when the rules (may be NULL) replace or remove field `name`. */
bool fwd_rule_overrides(const struct header_rules *hr, struct str name);
/* Appends the response header rules of the route (if any) to out. */
int fwd_response_rules(struct stream *st, struct buf *out);

/* body_filter.c */
/* The coding a compressing route chooses for this request's Accept-Encoding. */
enum zalg bf_negotiate(const struct stream *st);
/* Plans compression for response head rs: true when the client head must be
 * built from *out (headers rewritten; scratch holds new values) instead. */
bool bf_plan(struct stream *st, const struct http_response *rs, struct http_response *out,
             char *scratch, size_t cap);
/* After the client head is queued: switches st->resp_body to the filter path
 * for the origin framing of rs; `up_reusable` as the origin's framing allows. */
void bf_setup(struct stream *st, const struct http_response *rs, bool up_reusable);
/* Filter counterparts of relay_take / relay_eof for ROUT_FILTER. */
int bf_take(struct stream *st, struct buf *src, struct buf *out);
int bf_eof(struct stream *st, struct buf *src, struct buf *out);
/* The source has nothing more for now: flushes the encoder into out.
 * Returns 1 when bytes were added, 0, or -1. */
int bf_flush(struct stream *st, struct buf *out);
/* True when the filter has work left without new source bytes. */
bool bf_pending(const struct stream *st);
void bf_end(struct stream *st);

/* cache_glue.c */
enum cache_result {
    CR_NONE = 0,
    CR_HIT,
    CR_MISS,
    CR_STALE,       /* served stale (stale-while-revalidate, stale-if-error) */
    CR_BYPASS,      /* not cacheable request */
    CR_REVALIDATED, /* stale object confirmed by a 304 */
    CR_EXPIRED,     /* stale object replaced by the origin's answer */
};
const char *cache_result_name(unsigned r);
#define CG_GO 0   /* go to the origin */
#define CG_DONE 1 /* answered from the cache */
#define CG_WAIT 2 /* waiting for another request's fill */
int cache_request(struct stream *st);
/* The request fetches an object to store: client conditionals and Range are
 * not forwarded; cache_validators() gives the fields to send instead. */
bool cache_fetching(const struct stream *st);
size_t cache_validators(const struct stream *st, char *out, size_t cap);
/* Response head from the origin: 1 when the cache answered instead (304
 * revalidation, stale-if-error on a 5xx); head_len bytes are consumed then. */
int cache_on_head(struct stream *st, const struct http_response *rs, size_t head_len);
/* Decides whether the response is stored (st->fill) and adds Cache-Status. */
void cache_begin_fill(struct stream *st, struct http_response *rs);
void cache_fill_data(struct stream *st, const void *p, size_t n);
void cache_fill_done(struct stream *st);
/* The origin failed: serves the stale object when stale-if-error allows. */
bool cache_serve_stale_on_error(struct stream *st);
void cache_stream_end(struct stream *st);
/* cache_refresh.c: a background request that refreshes o (claim held by
 * the caller and handed over). 0, or -1 when it could not start. */
int cache_refresh_start(struct stream *st, struct cache_obj *o);

/* relay.c */
void relay_init(struct relay *r, enum relay_in in, enum relay_out out, uint64_t length);
/* Takes body bytes from src as r->in frames them (only when r->raw_pending is
 * 0). ROUT_RAW marks bytes to write as-is; other modes copy reframed data into
 * out. Returns 0, or -1 on a framing error. */
int relay_take(struct relay *r, struct buf *src, struct buf *out);
/* RIN_CHUNKED: keep the trailer fields (r->dec.trailers, trailers_len) so the
 * sink can re-frame them (HTTP/2 trailers). relay_free releases them. */
void relay_keep_trailers(struct relay *r);
/* relay_eof() that ends a ROUT_CHUNK body with the given trailer field lines
 * ("Name: value\r\n"...). */
int relay_eof_trailers(struct relay *r, struct buf *out, const char *trailers, size_t len);
void relay_free(struct relay *r);
/* The source closed: for RIN_EOF the body ends (and ROUT_CHUNK gets its last
 * chunk); returns 0, or -1 when the body was cut short. */
int relay_eof(struct relay *r, struct buf *out);

/* worker.c: frees retired snapshots whose last stream ended. */
void worker_retire_snaps(struct worker *w);

/* access.c (log/) hook */
void stream_log(struct stream *st);

#endif
