/* h2.h - HTTP/2 on client connections (nghttp2, server side). Each HTTP/2
 * stream becomes a struct stream that the protocol-neutral engine (routing,
 * forwarding, upstream pool) runs exactly like an HTTP/1.1 exchange; only the
 * edges differ: request fields and DATA come from nghttp2 callbacks, and the
 * response leaves through nghttp2_submit_response and a DATA provider that
 * reads from the same buffers the HTTP/1.1 path writes from. Flow control is
 * tied to back-pressure: request DATA is credited back (WINDOW_UPDATE) only
 * once forwarded upstream, and response DATA is produced only when the
 * client's window allows. */
#ifndef PORTICO_PROXY_H2_H
#define PORTICO_PROXY_H2_H

#include "proxy/proxy.h"

/* Makes cl an HTTP/2 connection (after ALPN "h2", or a prior-knowledge
 * preface on an h2c listener). Returns 0 or -1. */
int h2_start(struct client *cl);
/* Runs the connection: reads frames, starts and pumps streams, writes frames.
 * Returns a STEP_ value. */
int h2_run(struct client *cl);
/* Pumps one stream after an upstream event, then writes what it produced. */
void h2_stream_kick(struct stream *st);
/* Called by stream.c instead of the HTTP/1.1 edges. */
int h2_submit_head(struct stream *st, const struct http_response *rs);
/* Response head of a cached object: stored header lines (those the route's
 * rules replace are skipped) plus `extra` lines (length, Age, Cache-Status,
 * request id). The body comes from st->hit. 0 or -1. */
int h2_submit_cached(struct stream *st, int status, const char *lines, size_t len,
                     const char *extra, size_t extra_len, bool has_body);
void h2_submit_local(struct stream *st, int status, const char *ctype, const char *body,
                     size_t body_len, const char *extra, size_t extra_len);
/* Pushes pending response bytes of st into DATA frames. PUMP_ value. */
int h2_flush_stream(struct stream *st);
/* The exchange is over (complete, or abandoned): release the stream's
 * upstream side now; the struct itself goes when nghttp2 closes the stream. */
void h2_stream_end(struct stream *st, bool complete);
/* Ends the stream with RST_STREAM (a cut response, a failed request). */
void h2_reset(struct stream *st);
/* Request body bytes forwarded upstream: credit the client's window. */
void h2_consumed(struct stream *st, size_t n);
/* Graceful stop: GOAWAY, finish open streams. */
void h2_drain(struct client *cl);
/* When the session's timer should fire (send stall, idle), 0 for none. */
uint64_t h2_deadline(struct client *cl);
/* At the timer: true when the connection must be closed (idle, stalled). */
bool h2_expired(struct client *cl, uint64_t now);
void h2_free(struct client *cl);
/* Sends GOAWAY at once (best effort) before the connection is closed. */
void h2_terminate(struct client *cl);
/* Frees this worker thread's HTTP/2 scratch (at thread exit). */
void h2_thread_exit(void);
/* HTTP/2 is available (ALPN may offer "h2"). */
void h2_init_global(void);

#endif
