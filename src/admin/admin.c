/* admin.c - the admin API server: its thread and loop, the listening
 * socket, a strict one-request-per-connection HTTP/1.1 reader (the project's
 * parser; heads up to 16 KiB, bodies up to 64 KiB, else 431 / 413), bearer
 * token checks (constant time), routing and JSON errors (400 / 401 / 404 /
 * 405 / 411 / 413). Draining only flips the server's shared flag: workers
 * stop picking it and close their idle pooled connections to it on their
 * next tick; in-flight requests finish. */
#include "admin/admin.h"
#include "admin/admin_config.h"
#include "admin/admin_path.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/common.h"
#include "event/loop.h"
#include "http/h1_parse.h"
#include "lb/server.h"
#include "log/errlog.h"
#include "net/handover.h"
#include "net/sock.h"

#define ADMIN_HEAD_MAX (16 * 1024)
#define ADMIN_BODY_MAX (64 * 1024)
#define ADMIN_TIMEOUT_MS 10000
#define ADMIN_MAX_CONNS 64

struct admin_conn {
    struct ev_io io;
    struct timer timer;
    struct deferred dfr;
    struct admin *a;
    char *rbuf; /* rcap bytes: ADMIN_HEAD_MAX + ADMIN_BODY_MAX, more for PUT /config */
    size_t rlen, rcap;
    const char *body; /* the complete request's body (in rbuf) */
    size_t body_len;
    char *out;
    size_t out_len, out_off;
    bool responding;
    struct admin_conn *prev, *next;
};

struct admin {
    pthread_t thread;
    struct loop loop;
    struct ev_io lsn;
    struct ev_io wake;
    atomic_bool stop;
    pthread_mutex_t conf_mu; /* guards conf: a reload swaps it from main */
    struct conf *conf;
    char *token;
    size_t token_len;
    uint64_t started_wall_ms;
    struct admin_conn *conns;
    unsigned n_conns;
};

static void conn_free_deferred(struct deferred *d)
{
    struct admin_conn *c = container_of(d, struct admin_conn, dfr);
    free(c->rbuf);
    free(c->out);
    free(c);
}

static void conn_close(struct admin_conn *c)
{
    struct admin *a = c->a;
    timer_cancel(&a->loop, &c->timer);
    close(c->io.fd);
    c->io.dead = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->n_conns--;
    c->dfr.fn = conn_free_deferred;
    loop_defer(&a->loop, &c->dfr);
}

/* Writes what is pending; closes when all is out (one request per
 * connection). */
static void conn_flush(struct admin_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            break;
        }
        c->out_off += (size_t)w;
    }
    conn_close(c);
}

static void respond(struct admin_conn *c, int status, const char *extra, const char *body,
                    size_t body_len)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                     status, http_status_text(status), body_len, extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        n = 0;
    c->out = xmalloc((size_t)n + body_len);
    memcpy(c->out, head, (size_t)n);
    memcpy(c->out + n, body, body_len);
    c->out_len = (size_t)n + body_len;
    c->out_off = 0;
    c->responding = true;
    shutdown(c->io.fd, SHUT_RD);
    conn_flush(c);
}

/* Sends r (its body is freed here). HEAD gets the head only. */
static void send_reply(struct admin_conn *c, const struct http_request *rq, struct admin_reply *r)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                     r->status, http_status_text(r->status),
                     r->content_type ? r->content_type : "application/json", r->len,
                     r->extra ? r->extra : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        n = 0;
    size_t blen = rq->method_id == HTTP_M_HEAD ? 0 : r->len;
    c->out = xmalloc((size_t)n + blen + 1);
    memcpy(c->out, head, (size_t)n);
    if (blen)
        memcpy(c->out + n, r->body, blen);
    free(r->body);
    r->body = NULL;
    c->out_len = (size_t)n + blen;
    c->out_off = 0;
    c->responding = true;
    shutdown(c->io.fd, SHUT_RD);
    conn_flush(c);
}

static void respond_error(struct admin_conn *c, int status, const char *extra, const char *msg)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d}\n", msg, status);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = 0;
    respond(c, status, extra, body, (size_t)n);
}

/* Constant-time comparison of the presented token with ours: the time
 * taken depends only on the length of our token. */
static bool token_ok(const struct admin *a, struct str got)
{
    unsigned char diff = got.len != a->token_len;
    for (size_t i = 0; i < a->token_len; i++)
        diff |= (unsigned char)(a->token[i] ^ (i < got.len ? got.p[i] : 0));
    return diff == 0;
}

static bool authorized(const struct admin *a, const struct http_request *rq)
{
    if (!a->token)
        return true;
    int i = http_header_find(rq->headers, rq->n_headers, STR_LIT("authorization"), 0);
    if (i < 0)
        return false;
    struct str v = rq->headers[i].value;
    if (v.len < 7 || strncasecmp(v.p, "Bearer ", 7) != 0)
        return false;
    return token_ok(a, str_make(v.p + 7, v.len - 7));
}

/* The running snapshot, with a reference for the caller. */
static struct conf *admin_conf(struct admin *a)
{
    pthread_mutex_lock(&a->conf_mu);
    struct conf *c = a->conf;
    conf_ref(c);
    pthread_mutex_unlock(&a->conf_mu);
    return c;
}

struct conf *admin_running_conf(struct admin *a)
{
    return admin_conf(a);
}

int admin_listen_fd(const struct admin *a)
{
    return a ? a->lsn.fd : -1;
}

void admin_set_conf(struct admin *a, struct conf *c)
{
    if (!a)
        return;
    conf_ref(c);
    pthread_mutex_lock(&a->conf_mu);
    struct conf *old = a->conf;
    a->conf = c;
    pthread_mutex_unlock(&a->conf_mu);
    conf_unref(old);
}

static void handle_drain(struct admin_conn *c, struct str *seg, bool drain)
{
    char uname[256], saddr[256];
    if (!admin_path_decode(seg[1], uname, sizeof(uname)) ||
        !admin_path_decode(seg[3], saddr, sizeof(saddr))) {
        respond_error(c, 400, NULL, "bad path encoding");
        return;
    }
    struct conf *cf = admin_conf(c->a);
    const struct conf_upstream *u = conf_find_upstream(cf, uname);
    if (!u) {
        conf_unref(cf);
        respond_error(c, 404, NULL, "no such upstream");
        return;
    }
    const struct conf_server *s = NULL;
    for (size_t i = 0; i < u->n_servers; i++)
        if (u->servers[i].address && strcmp(u->servers[i].address, saddr) == 0)
            s = &u->servers[i];
    if (!s || !s->state) {
        conf_unref(cf);
        respond_error(c, 404, NULL, "no such server in this upstream");
        return;
    }
    bool was = atomic_exchange(&s->state->draining, drain);
    if (was && !drain)
        atomic_store(&s->state->up_since_ms, clock_ms() ? clock_ms() : 1); /* slow start */
    if (was != drain)
        log_info("upstream %s: server %s %s (admin API)", u->name, s->address,
                 drain ? "is DRAINING" : "is back from draining");
    char body[1024];
    int n = snprintf(body, sizeof(body),
                     "{\"upstream\":\"%s\",\"server\":\"%s\",\"draining\":%s,\"in_flight\":%u}\n",
                     u->name, s->address, drain ? "true" : "false",
                     atomic_load(&s->state->active));
    conf_unref(cf);
    respond(c, 200, NULL, body, n < 0 || (size_t)n >= sizeof(body) ? 0 : (size_t)n);
}

static void handle(struct admin_conn *c, const struct http_request *rq)
{
    struct str seg[6];
    int n = admin_path_split(rq->path, seg, 6);
    bool get = rq->method_id == HTTP_M_GET || rq->method_id == HTTP_M_HEAD;
    bool post = rq->method_id == HTTP_M_POST;

    /* /metrics, /dashboard and its data (admin_metrics.c): before the token
     * check, which it applies itself (the page holds no data). */
    struct admin_reply mr;
    if (admin_metrics_route(c->a, rq, authorized(c->a, rq), &mr)) {
        send_reply(c, rq, &mr);
        return;
    }
    if (!authorized(c->a, rq)) {
        respond_error(c, 401, "WWW-Authenticate: Bearer\r\n", "missing or wrong bearer token");
        return;
    }
    if (n == 1 && str_eq(seg[0], STR_LIT("status"))) {
        if (!get) {
            respond_error(c, 405, "Allow: GET, HEAD\r\n", "method not allowed");
            return;
        }
        size_t len;
        struct conf *cf = admin_conf(c->a);
        char *doc = admin_status_json(cf, c->a->started_wall_ms, &len);
        conf_unref(cf);
        respond(c, 200, NULL, doc, rq->method_id == HTTP_M_HEAD ? 0 : len);
        free(doc);
        return;
    }
    if (n == 5 && str_eq(seg[0], STR_LIT("upstreams")) && str_eq(seg[2], STR_LIT("servers")) &&
        (str_eq(seg[4], STR_LIT("drain")) || str_eq(seg[4], STR_LIT("undrain")))) {
        if (!post) {
            respond_error(c, 405, "Allow: POST\r\n", "method not allowed");
            return;
        }
        handle_drain(c, seg, str_eq(seg[4], STR_LIT("drain")));
        return;
    }
    struct admin_reply r;
    if (admin_config_route(c->a, rq, c->body, c->body_len, &r)) {
        send_reply(c, rq, &r);
        return;
    }
    respond_error(c, 404, NULL, "not found");
}

/* Parses what was read; answers when a whole request is there. */
static void conn_process(struct admin_conn *c, bool eof)
{
    struct http_request rq;
    struct h1_limits lim = {.max_request_line = 8192, .max_header_bytes = ADMIN_HEAD_MAX};
    ssize_t n = h1_parse_request(c->rbuf, c->rlen, &rq, &lim);
    if (n < 0) {
        respond_error(c, (int)-n, NULL, "malformed request");
        return;
    }
    if (n == H1_INCOMPLETE) {
        if (eof)
            conn_close(c);
        return;
    }
    if (rq.framing.chunked) {
        respond_error(c, 411, NULL, "chunked request bodies are not accepted");
        return;
    }
    uint64_t cl = rq.framing.has_content_length ? rq.framing.content_length : 0;
    size_t max = admin_config_body_max(&rq);
    if (cl > (max ? max : ADMIN_BODY_MAX)) {
        respond_error(c, 413, NULL, "request body too large");
        return;
    }
    if (c->rlen < (size_t)n + cl) {
        if (eof) {
            conn_close(c);
        } else if ((size_t)n + cl > c->rcap) {
            /* A big body that is allowed: room for exactly this request. */
            c->rcap = (size_t)n + cl;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        return;
    }
    c->body = c->rbuf + n;
    c->body_len = (size_t)cl;
    handle(c, &rq);
}

static void conn_io_cb(struct ev_io *io, uint32_t events)
{
    struct admin_conn *c = container_of(io, struct admin_conn, io);
    if (c->responding) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_flush(c);
        return;
    }
    for (;;) {
        size_t cap = c->rcap;
        if (c->rlen == cap) {
            conn_process(c, true);
            if (!c->responding && !c->io.dead)
                respond_error(c, 413, NULL, "request too large");
            return;
        }
        ssize_t r = sock_read(io->fd, c->rbuf + c->rlen, cap - c->rlen);
        if (r == IO_AGAIN)
            return;
        if (r < 0) {
            conn_process(c, true);
            if (!c->responding && !c->io.dead)
                conn_close(c);
            return;
        }
        c->rlen += (size_t)r;
        conn_process(c, false);
        if (c->responding || c->io.dead)
            return;
    }
}

static void conn_timer_cb(struct timer *t)
{
    struct admin_conn *c = container_of(t, struct admin_conn, timer);
    conn_close(c);
}

static void lsn_cb(struct ev_io *io, uint32_t events)
{
    struct admin *a = container_of(io, struct admin, lsn);
    (void)events;
    for (int k = 0; k < 16; k++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (a->n_conns >= ADMIN_MAX_CONNS) {
            close(fd);
            continue;
        }
        struct admin_conn *c = xcalloc(1, sizeof(*c));
        c->a = a;
        c->io.fd = fd;
        c->io.cb = conn_io_cb;
        c->rcap = ADMIN_HEAD_MAX + ADMIN_BODY_MAX;
        c->rbuf = xmalloc(c->rcap);
        timer_init(&c->timer, conn_timer_cb);
        if (loop_add(&a->loop, &c->io) < 0) {
            close(fd);
            free(c->rbuf);
            free(c);
            continue;
        }
        c->next = a->conns;
        if (a->conns)
            a->conns->prev = c;
        a->conns = c;
        a->n_conns++;
        timer_set(&a->loop, &c->timer, clock_ms() + ADMIN_TIMEOUT_MS);
        conn_io_cb(&c->io, EPOLLIN);
    }
}

static void wake_cb(struct ev_io *io, uint32_t events)
{
    struct admin *a = container_of(io, struct admin, wake);
    uint64_t v;
    ssize_t r = read(io->fd, &v, sizeof(v));
    (void)r;
    (void)events;
    if (atomic_load(&a->stop))
        a->loop.stop = true;
}

static void *admin_main(void *arg)
{
    struct admin *a = arg;
    clock_update();
    while (!a->loop.stop)
        loop_run_once(&a->loop, 1000);
    while (a->conns)
        conn_close(a->conns);
    loop_run_once(&a->loop, 0); /* the deferred frees */
    return NULL;
}

/* Reads the token: the file's first line, surrounding whitespace removed. */
static int read_token(struct admin *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char buf[1024];
    if (!f) {
        snprintf(err, errlen, "admin token_file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = buf;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t len = strcspn(s, "\r\n");
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len < 16) {
        snprintf(err, errlen, "admin token_file %s: the token must be at least 16 characters",
                 path);
        return -1;
    }
    a->token = xstrndup(s, len);
    a->token_len = len;
    return 0;
}

struct admin *admin_start(struct conf *c, char *err, size_t errlen)
{
    struct addr addr;
    const char *aerr;
    if (!c->admin.listen || addr_parse(c->admin.listen, &addr, &aerr) < 0) {
        snprintf(err, errlen, "admin.listen: invalid address");
        return NULL;
    }
    struct admin *a = xcalloc(1, sizeof(*a));
    pthread_mutex_init(&a->conf_mu, NULL);
    a->started_wall_ms = clock_wall_ms();
    a->lsn.fd = a->wake.fd = -1;
    if (c->admin.token_file && read_token(a, c->admin.token_file, err, errlen) < 0)
        goto fail;
    int fd = handover_take(&addr); /* binary upgrade: the old process's socket */
    if (fd < 0)
        fd = sock_listen(&addr, 128);
    if (fd < 0) {
        snprintf(err, errlen, "admin listen %s: %s", c->admin.listen, strerror(-fd));
        goto fail;
    }
    a->lsn.fd = fd;
    a->lsn.cb = lsn_cb;
    a->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->wake.cb = wake_cb;
    int rc = loop_init(&a->loop);
    if (rc < 0 || a->wake.fd < 0) {
        snprintf(err, errlen, "admin: %s", strerror(rc < 0 ? -rc : errno));
        goto fail;
    }
    if (loop_add_level(&a->loop, &a->lsn) < 0 || loop_add_level(&a->loop, &a->wake) < 0) {
        snprintf(err, errlen, "admin: %s", strerror(errno));
        loop_destroy(&a->loop);
        goto fail;
    }
    a->conf = c;
    conf_ref(c);
    rc = pthread_create(&a->thread, NULL, admin_main, a);
    if (rc) {
        snprintf(err, errlen, "admin: cannot start thread: %s", strerror(rc));
        conf_unref(c);
        loop_destroy(&a->loop);
        goto fail;
    }
    log_info("admin API on %s%s", c->admin.listen, a->token ? " (bearer token required)" : "");
    return a;
fail:
    if (a->lsn.fd >= 0)
        close(a->lsn.fd);
    if (a->wake.fd >= 0)
        close(a->wake.fd);
    free(a->token);
    free(a);
    return NULL;
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    admin_ops_close(); /* a call waiting for the main thread gets 503 */
    atomic_store(&a->stop, true);
    uint64_t one = 1;
    ssize_t r = write(a->wake.fd, &one, sizeof(one));
    (void)r;
    pthread_join(a->thread, NULL);
    loop_destroy(&a->loop);
    close(a->lsn.fd);
    close(a->wake.fd);
    conf_unref(a->conf);
    if (a->token)
        memset(a->token, 0, a->token_len);
    free(a->token);
    free(a);
}
