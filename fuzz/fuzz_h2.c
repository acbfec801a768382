/* fuzz_h2.c - libFuzzer harness: arbitrary bytes to portico's HTTP/2 server
 * session, after the client connection preface.
 *
 * Approach: this links src/proxy/h2.c itself (and src/proxy/relay.c,
 * src/core, src/http), not a copy of its nghttp2 setup, so the real
 * callbacks run: header collection and its limits (keep/on_header,
 * max_header_bytes, HTTP_MAX_HEADERS), request assembly (finish_request,
 * content-length), DATA buffering and crediting (h2_in, h2_consumed,
 * nghttp2_session_consume), the run queue, the DATA provider, stream
 * close/free accounting, GOAWAY on drain and terminate, h2_free. The engine
 * functions h2.c calls (stream_get/put/start/pump, client_*, upstream_*,
 * stream_log, fwd_response_rules, fwd_rule_overrides, errlog) are stubbed
 * below with a small model of the engine: a started stream either answers at
 * once with a local response (h2_submit_local, sometimes with a body larger
 * than a window), answers with an upstream-style head (h2_submit_head:
 * connection-specific fields and tokens to strip, HEAD/204/304), is reset
 * (h2_reset, like stream_abort), or "forwards" its request body (drains h2_in,
 * credits it) and answers once END_STREAM arrived. No sockets: the
 * transport's writev swallows the output (sometimes only part of it, or
 * IO_AGAIN, so the output buffer and H2_OUT_HIGH paths run too).
 *
 * Input: byte 0 selects the engine behaviour and the feed pattern; the rest
 * follows the preface and is fed to h2_run in pieces of 1..4096 bytes.
 * LeakSanitizer catches streams or buffers the session fails to release.
 *
 * Build (besides src/core and src/http it links src/proxy/h2.c and
 * src/proxy/relay.c; Makefile rule):
 *   build-fuzz/fuzz_h2: fuzz/fuzz_h2.c $(LIB_SRCS)
 *   	clang $(FUZZ_CFLAGS) -o $@ $< $(filter src/core/% src/http/% src/proxy/h2.c \
 *   	  src/proxy/relay.c,$(LIB_SRCS)) $(LDLIBS)
 * -DFUZZ_H2_DEBUG prints, per input, the streams started and bytes written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "log/errlog.h"
#include "net/sock.h"
#include "net/tls.h"
#include "proxy/engine.h"
#include "proxy/h2.h"
#include "proxy/proxy.h"

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* ---- the fuzzed world ---- */

static struct conf g_conf;
static struct worker g_w;
static struct client g_cl;
static bool g_closed;
static uint8_t g_mode;   /* byte 0 of the input */
static unsigned g_nstreams;
static unsigned g_live;  /* stream_get - stream_put: must be 0 at the end */
static unsigned g_wcount;
static size_t g_wbytes;

static ssize_t fx_read(struct xport *x, void *p, size_t n)
{
    (void)x, (void)p, (void)n;
    return IO_AGAIN;
}

static ssize_t fx_writev(struct xport *x, const struct iovec *iov, int n)
{
    (void)x;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    g_wcount++;
    g_wbytes += total;
    /* Sometimes a blocked or short write: exercises the output buffer. */
    if ((g_mode & 0x40) && g_wcount % 7 == 0)
        return IO_AGAIN;
    if ((g_mode & 0x40) && total > 100 && g_wcount % 3 == 0)
        return (ssize_t)(total / 2);
    return (ssize_t)total;
}

static void fx_close(struct xport *x)
{
    (void)x;
}

static const struct xport_ops fx_ops = {fx_read, fx_writev, fx_close};

/* ---- stubs for what h2.c calls in the engine ---- */

bool tls_h2_enabled;

void errlog(enum log_level level, const char *fmt, ...)
{
    (void)level, (void)fmt;
}

struct stream *stream_get(struct worker *w, struct client *cl)
{
    struct stream *st = xcalloc(1, sizeof(*st));
    st->w = w;
    st->cl = cl;
    st->conf = w->conf;
    memcpy(st->req_id, "fuzzrid", 7);
    st->req_id_len = 7;
    g_live++;
    return st;
}

void stream_put(struct stream *st)
{
    buf_put(st->resp_out);
    buf_put(st->h2_in);
    buf_put(st->req_head);
    free(st->head_copy);
    free(st);
    g_live--;
}

void stream_log(struct stream *st)
{
    /* What the access log reads must be sane. */
    if (st->req.method.len > st->h2_head_len || st->req.target.len > st->h2_head_len)
        __builtin_trap();
}

void upstream_release(struct stream *st, bool reuse)
{
    (void)reuse;
    st->up = NULL;
}

void upstream_release_server(struct stream *st)
{
    (void)st;
}

int fwd_response_rules(struct stream *st, struct buf *out)
{
    (void)st, (void)out;
    return -1;
}

bool fwd_rule_overrides(const struct header_rules *hr, struct str name)
{
    for (size_t i = 0; hr && i < hr->n; i++)
        if (hr->rules[i].op != HDR_ADD &&
            str_eq_ci(str_make(hr->rules[i].name, hr->rules[i].name_len), name))
            return true;
    return false;
}

void client_close(struct client *cl)
{
    (void)cl;
    g_closed = true;
}

ssize_t client_fill(struct client *cl)
{
    cl->can_read = false;
    return IO_AGAIN;
}

void client_schedule(struct client *cl)
{
    (void)cl;
}

static int g_depth;

void client_run(struct client *cl)
{
    if (g_closed || g_depth)
        return;
    g_depth++;
    h2_run(cl);
    g_depth--;
}

static void local_response(struct stream *st, int status, size_t body_len)
{
    static char body[200000];
    if (body[0] != 'b')
        memset(body, 'b', sizeof(body));
    st->resp_head_done = true;
    st->resp_started = true;
    st->finishing = true;
    relay_init(&st->resp_body, RIN_NONE, ROUT_RAW, 0);
    h2_submit_local(st, status, NULL, body, body_len, "x-extra: 1\r\n", 12);
}

/* An upstream-style head with fields h2 must drop. */
static void upstream_response(struct stream *st, int status)
{
    static const char *const names[] = {"Content-Type", "Connection", "Keep-Alive", "X-Token",
                                        "Transfer-Encoding", "Upgrade", "X-Request-Id", "Content-Length",
                                        "X-Kept"};
    static const char *const values[] = {"text/plain", "keep-alive, X-Token", "timeout=5", "t",
                                         "chunked", "foo", "upstream-rid", "0", "kept"};
    struct http_response rs;
    memset(&rs, 0, sizeof(rs));
    rs.status = status;
    rs.version = 11;
    for (unsigned i = 0; i < ARRAY_SIZE(names); i++) {
        rs.headers[i].name = str_make(names[i], strlen(names[i]));
        rs.headers[i].value = str_make(values[i], strlen(values[i]));
    }
    rs.n_headers = ARRAY_SIZE(names);
    rs.framing.has_content_length = true;
    rs.framing.content_length = 0;
    rs.framing.conn_tokens[0] = STR_LIT("keep-alive");
    rs.framing.conn_tokens[1] = STR_LIT("X-Token");
    rs.framing.n_conn_tokens = 2;
    st->resp_head_done = true;
    st->resp_started = true;
    if (h2_submit_head(st, &rs) < 0)
        h2_reset(st);
}

/* Request body "forwarded": drain h2_in and credit the window. */
static void forward_body(struct stream *st)
{
    if (st->h2_in && buf_len(st->h2_in)) {
        size_t n = buf_len(st->h2_in);
        /* sometimes only part of it, like a slow upstream */
        if ((g_mode & 0x20) && n > 1)
            n /= 2;
        buf_consume(st->h2_in, n);
        st->bytes_in += n;
        h2_consumed(st, n);
    }
}

int stream_start(struct stream *st)
{
    unsigned k = g_nstreams++ + (g_mode & 0x0f);
    /* The request the engine sees must be consistent. */
    const struct http_request *rq = &st->req;
    if (rq->method.len && !rq->method.p)
        __builtin_trap();
    for (unsigned i = 0; i < rq->n_headers; i++)
        if (!rq->headers[i].name.p || rq->headers[i].name.p < st->head_copy ||
            rq->headers[i].name.p + rq->headers[i].name.len > st->head_copy + st->h2_head_len)
            __builtin_trap();
    st->is_head = rq->method_id == HTTP_M_HEAD;
    switch (k % 6) {
    case 0:
        local_response(st, 200, 10);
        break;
    case 1:
        local_response(st, 200, 100000 + (k % 3) * 50000); /* beyond a window */
        break;
    case 2:
        upstream_response(st, (int[]){200, 204, 304}[k % 3]);
        break;
    case 3:
        h2_reset(st);
        break;
    default: /* wait for the body, answer at its end */
        forward_body(st);
        if (st->h2_in_eof && !(st->h2_in && buf_len(st->h2_in)))
            local_response(st, 201, 5);
        break;
    }
    return STEP_WAIT;
}

int stream_pump(struct stream *st)
{
    if (!st->resp_head_done) {
        forward_body(st);
        if (st->h2_in_eof && !(st->h2_in && buf_len(st->h2_in)))
            local_response(st, 201, 5);
    } else {
        forward_body(st); /* answered early: the rest is discarded */
    }
    return STEP_WAIT;
}

/* ---- driver ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    h2_init_global();
    g_conf.limits.max_header_bytes = 16384;
    g_conf.timeouts.send_ms = 1000;
    g_conf.timeouts.keepalive_ms = 75000;
    g_w.conf = &g_conf;
    return 0;
}

static void run(void)
{
    g_cl.can_read = true;
    g_cl.can_write = true;
    if (!g_closed)
        h2_run(&g_cl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    g_mode = data[0];
    data++;
    size--;
    g_closed = false;
    g_nstreams = 0;
    g_wcount = 0;
    g_wbytes = 0;
    g_w.draining = false;
    memset(&g_cl, 0, sizeof(g_cl));
    g_cl.w = &g_w;
    g_cl.conf = &g_conf;
    g_cl.x.ops = &fx_ops;
    g_cl.x.fd = -1;
    g_cl.can_read = g_cl.can_write = true;
    if (h2_start(&g_cl) < 0)
        return 0;

    /* The preface, then the input in pieces. */
    size_t piece = (g_mode & 0x80) ? 1 + (size_t)(g_mode & 0x0f) * 97 : 4096;
    g_cl.rbuf = buf_get(BUF_BIG_SIZE);
    buf_append(g_cl.rbuf, PREFACE, sizeof(PREFACE) - 1);
    size_t off = 0;
    int rounds = 0;
    while (!g_closed && rounds++ < 10000) {
        if (off < size) {
            if (!g_cl.rbuf)
                g_cl.rbuf = buf_get(BUF_BIG_SIZE);
            size_t room = g_cl.rbuf->size - buf_len(g_cl.rbuf);
            size_t n = size - off;
            if (n > piece)
                n = piece;
            if (n > room)
                n = room;
            if (n) {
                buf_compact(g_cl.rbuf);
                buf_append(g_cl.rbuf, data + off, n);
                off += n;
            }
        } else if (!g_cl.rbuf || buf_len(g_cl.rbuf) == 0) {
            break;
        }
        run();
        (void)h2_deadline(&g_cl);
    }
    /* A few more rounds to flush (pending DATA, blocked writes). */
    for (int i = 0; i < 8 && !g_closed; i++)
        run();
    if (!g_closed && (g_mode & 0x10)) {
        g_w.draining = true;
        h2_drain(&g_cl);
        for (int i = 0; i < 8 && !g_closed; i++)
            run();
    }
    if (!g_closed)
        h2_terminate(&g_cl);
    h2_free(&g_cl);
    buf_put(g_cl.rbuf);
    g_cl.rbuf = NULL;
#ifdef FUZZ_H2_DEBUG
    fprintf(stderr, "mode 0x%02x: %u streams started, %zu bytes out, closed %d\n", g_mode, g_nstreams,
            g_wbytes, g_closed);
#endif
    if (g_live != 0)
        __builtin_trap(); /* a stream was neither closed nor freed */
    return 0;
}
