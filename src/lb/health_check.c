/* health_check.c - the checker thread: per checked server a timer and at
 * most one probe in flight (non-blocking connect, then for HTTP a GET with
 * Connection: close whose response head goes through the project's strict
 * parser, and optionally a bounded body search). Intervals are jittered by
 * ±10% so that many servers do not fire together. Results go to
 * server_check_result(); transitions are logged with their reason. */
#include "lb/health_check.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/common.h"
#include "core/rand.h"
#include "event/loop.h"
#include "http/chunked.h"
#include "http/h1_parse.h"
#include "lb/server.h"
#include "log/errlog.h"
#include "net/sock.h"
#include "net/tls.h"

/* Response bytes kept per probe: the head plus the start of the body that
 * expect_body is searched in. */
#define HC_RBUF 65536

enum hc_phase { HC_IDLE = 0, HC_CONNECTING, HC_HANDSHAKE, HC_SENDING, HC_READING };

struct hc_probe {
    struct ev_io io;
    struct xport x; /* TCP, or TLS for a TLS upstream (checked like it is used) */
    struct timer timer;
    struct health_checker *hc;
    const struct conf_server *s;
    enum hc_phase phase;
    char req[2048];
    size_t req_len, req_off;
    char *rbuf;
    size_t rlen;
};

struct health_checker {
    pthread_t thread;
    bool started;
    struct loop loop;
    struct ev_io wake; /* eventfd: stop */
    atomic_bool stop;
    struct conf *conf;
    struct hc_probe *probes;
    size_t n_probes;
};

static uint64_t jittered(uint64_t interval)
{
    uint64_t span = interval / 5; /* ±10% */
    return interval - interval / 10 + (span ? rand64() % span : 0);
}

static void probe_close(struct hc_probe *p)
{
    if (p->io.fd >= 0) {
        xport_close(&p->x);
        p->io.fd = -1;
    }
    p->io.dead = true;
    p->phase = HC_IDLE;
    p->rlen = 0;
}

/* One result: state machine, log, next probe. */
static void probe_done(struct hc_probe *p, bool ok, enum server_err kind, uint32_t detail)
{
    struct health_checker *hc = p->hc;
    const struct conf_server *s = p->s;
    const struct conf_upstream *u = s->upstream;
    const struct conf_health *h = &u->health;
    struct server_state *st = s->state;
    uint64_t now = clock_ms();
    char why[128];

    probe_close(p);
    atomic_store_explicit(&st->last_check_wall_ms, clock_wall_ms(), memory_order_relaxed);
    if (!ok)
        server_set_error(st, kind, detail, clock_wall_ms());
    server_err_text(kind, detail, why, sizeof(why));
    switch (server_check_result(st, ok, h->rise, h->fall, now)) {
    case SERVER_WENT_DOWN:
        log_warn("upstream %s: server %s is DOWN (%s; %u failed check%s in a row)", u->name,
                 s->address, why, h->fall, h->fall == 1 ? "" : "s");
        break;
    case SERVER_WENT_UP:
        log_info("upstream %s: server %s is UP (%u good check%s in a row)", u->name, s->address,
                 h->rise, h->rise == 1 ? "" : "s");
        break;
    default:
        if (!ok)
            log_debug("upstream %s: server %s: check failed: %s", u->name, s->address, why);
        break;
    }
    timer_set(&hc->loop, &p->timer, now + jittered(h->interval_ms));
}

/* Decides on what was read so far; `eof` when the server closed. Returns
 * true when the probe is finished (probe_done called). */
static bool probe_evaluate(struct hc_probe *p, bool eof)
{
    const struct conf_health *h = &p->s->upstream->health;
    struct http_response rs;
    ssize_t n = h1_parse_response(p->rbuf, p->rlen, &rs, NULL);
    bool full = p->rlen == HC_RBUF;

    if (n == H1_INCOMPLETE && !eof && !full)
        return false;
    if (n <= 0) {
        if (n == H1_INCOMPLETE && eof && p->rlen == 0)
            probe_done(p, false, SERR_RESET, 0);
        else
            probe_done(p, false, SERR_BAD_RESPONSE, 0);
        return true;
    }
    if ((unsigned)rs.status < h->status_min || (unsigned)rs.status > h->status_max) {
        probe_done(p, false, SERR_STATUS, (uint32_t)rs.status);
        return true;
    }
    if (!h->expect_body) {
        probe_done(p, true, SERR_NONE, 0);
        return true;
    }
    /* The body (or its first HC_RBUF bytes) must contain expect_body. */
    const char *body = p->rbuf + n;
    size_t blen = p->rlen - (size_t)n;
    char *dec = NULL;
    if (rs.framing.chunked) {
        struct chunked_dec d;
        size_t off = 0, dl = 0;
        chunked_dec_init(&d, 4096);
        dec = xmalloc(blen + 1);
        int r = CHUNKED_MORE;
        while (off < blen) {
            size_t used, doff, dlen;
            r = chunked_decode(&d, body + off, blen - off, &used, &doff, &dlen);
            if (r == CHUNKED_ERROR)
                break;
            memcpy(dec + dl, body + off + doff, dlen);
            dl += dlen;
            off += used;
            if (r == CHUNKED_DONE || used == 0)
                break;
        }
        if (r == CHUNKED_ERROR) {
            free(dec);
            probe_done(p, false, SERR_BAD_RESPONSE, 0);
            return true;
        }
        if (r != CHUNKED_DONE && !eof && !full) {
            free(dec);
            return false;
        }
        body = dec;
        blen = dl;
    } else if (rs.framing.has_content_length) {
        if (blen < rs.framing.content_length && !eof && !full)
            return false;
        if (blen > rs.framing.content_length)
            blen = (size_t)rs.framing.content_length;
    } else if (!eof && !full) {
        return false; /* delimited by close (we sent Connection: close) */
    }
    bool found = memmem(body, blen, h->expect_body, strlen(h->expect_body)) != NULL;
    free(dec);
    probe_done(p, found, found ? SERR_NONE : SERR_BODY, 0);
    return true;
}

static void probe_send(struct hc_probe *p)
{
    while (p->req_off < p->req_len) {
        struct iovec iov = {p->req + p->req_off, p->req_len - p->req_off};
        ssize_t w = xport_writev(&p->x, &iov, 1);
        if (w == IO_AGAIN || w == IO_WANT_READ)
            return;
        if (w < 0) {
            probe_done(p, false, SERR_RESET, 0);
            return;
        }
        p->req_off += (size_t)w;
    }
    p->phase = HC_READING;
}

static void probe_read(struct hc_probe *p)
{
    for (;;) {
        if (p->rlen == HC_RBUF) {
            probe_evaluate(p, false);
            return;
        }
        ssize_t r = xport_read(&p->x, p->rbuf + p->rlen, HC_RBUF - p->rlen);
        if (r == IO_AGAIN || r == IO_WANT_WRITE)
            return;
        if (r == IO_EOF || r == IO_ERROR) {
            probe_evaluate(p, true);
            return;
        }
        p->rlen += (size_t)r;
        if (probe_evaluate(p, false))
            return;
    }
}

static void probe_io_cb(struct ev_io *io, uint32_t events)
{
    struct hc_probe *p = container_of(io, struct hc_probe, io);
    if (p->phase == HC_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = sock_error(io->fd);
        if (err || (events & EPOLLERR)) {
            probe_done(p, false, SERR_REFUSED, (uint32_t)(err ? err : ECONNREFUSED));
            return;
        }
        if (p->s->upstream->health.tcp) {
            probe_done(p, true, SERR_NONE, 0);
            return;
        }
        p->req_off = 0;
        p->phase = HC_SENDING;
        if (p->s->upstream->tls) {
            char host[256];
            server_host(p->s, host, sizeof(host));
            if (xport_init_tls_client(&p->x, io->fd, p->s->upstream->tls, host, NULL) < 0) {
                probe_done(p, false, SERR_RESET, 0);
                return;
            }
            p->phase = HC_HANDSHAKE;
        }
    }
    if (p->phase == HC_HANDSHAKE) {
        char why[256];
        int r = tls_handshake(&p->x, why, sizeof(why));
        if (r == IO_AGAIN || r == IO_WANT_WRITE)
            return;
        if (r < 0) {
            log_debug("health check %s: tls: %s", p->s->address, why);
            probe_done(p, false, SERR_RESET, 0);
            return;
        }
        p->phase = HC_SENDING;
    }
    if (p->phase == HC_SENDING)
        probe_send(p);
    if (p->phase == HC_READING && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        probe_read(p);
}

static void probe_start(struct hc_probe *p)
{
    const struct conf_health *h = &p->s->upstream->health;
    int fd = sock_connect(&p->s->addr);
    if (fd < 0) {
        probe_done(p, false, SERR_REFUSED, (uint32_t)-fd);
        return;
    }
    p->io.fd = fd;
    xport_init_tcp(&p->x, fd);
    p->io.cb = probe_io_cb;
    p->rlen = 0;
    p->phase = HC_CONNECTING;
    if (loop_add(&p->hc->loop, &p->io) < 0) {
        probe_done(p, false, SERR_REFUSED, (uint32_t)errno);
        return;
    }
    timer_set(&p->hc->loop, &p->timer, clock_ms() + h->timeout_ms);
}

static void probe_timer_cb(struct timer *t)
{
    struct hc_probe *p = container_of(t, struct hc_probe, timer);
    if (p->phase == HC_IDLE) {
        probe_start(p);
        return;
    }
    probe_done(p, false, p->phase == HC_CONNECTING ? SERR_CONNECT_TIMEOUT : SERR_TIMEOUT, 0);
}

static void wake_cb(struct ev_io *io, uint32_t events)
{
    struct health_checker *hc = container_of(io, struct health_checker, wake);
    uint64_t v;
    ssize_t r = read(io->fd, &v, sizeof(v));
    (void)r;
    (void)events;
    if (atomic_load(&hc->stop))
        hc->loop.stop = true;
}

static void *checker_main(void *arg)
{
    struct health_checker *hc = arg;
    clock_update();
    loop_add_level(&hc->loop, &hc->wake);
    uint64_t now = clock_ms();
    for (size_t i = 0; i < hc->n_probes; i++) {
        struct hc_probe *p = &hc->probes[i];
        /* First probe soon, spread over the first half interval. */
        uint64_t iv = p->s->upstream->health.interval_ms;
        timer_set(&hc->loop, &p->timer, now + 1 + rand64() % (iv / 2 + 1));
    }
    while (!hc->loop.stop)
        loop_run_once(&hc->loop, 1000);
    for (size_t i = 0; i < hc->n_probes; i++) {
        timer_cancel(&hc->loop, &hc->probes[i].timer);
        probe_close(&hc->probes[i]);
    }
    return NULL;
}

static void build_request(struct hc_probe *p)
{
    const struct conf_health *h = &p->s->upstream->health;
    int n = snprintf(p->req, sizeof(p->req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portico-health-check\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     h->uri, h->host ? h->host : p->s->address);
    p->req_len = n < 0 ? 0 : MIN((size_t)n, sizeof(p->req) - 1);
}

struct health_checker *health_start(struct conf *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_upstreams; i++)
        if (c->upstreams[i].health.enabled)
            n += c->upstreams[i].n_servers;
    if (!n)
        return NULL;
    struct health_checker *hc = xcalloc(1, sizeof(*hc));
    hc->conf = c;
    conf_ref(c);
    hc->probes = xcalloc(n, sizeof(*hc->probes));
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const struct conf_upstream *u = &c->upstreams[i];
        if (!u->health.enabled)
            continue;
        for (size_t j = 0; j < u->n_servers; j++) {
            struct hc_probe *p = &hc->probes[hc->n_probes++];
            p->hc = hc;
            p->s = &u->servers[j];
            p->io.fd = -1;
            p->rbuf = xmalloc(HC_RBUF);
            timer_init(&p->timer, probe_timer_cb);
            build_request(p);
        }
    }
    hc->wake.cb = wake_cb;
    hc->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = hc->wake.fd < 0 ? -errno : loop_init(&hc->loop);
    if (rc == 0) {
        rc = -pthread_create(&hc->thread, NULL, checker_main, hc);
        if (rc < 0)
            loop_destroy(&hc->loop);
    }
    if (rc < 0) {
        log_error("health checks: cannot start the checker thread: %s", strerror(-rc));
        if (hc->wake.fd >= 0)
            close(hc->wake.fd);
        health_stop(hc);
        return NULL;
    }
    hc->started = true;
    log_info("health checks: %zu server%s checked", hc->n_probes, hc->n_probes == 1 ? "" : "s");
    return hc;
}

void health_stop(struct health_checker *hc)
{
    if (!hc)
        return;
    if (hc->started) {
        atomic_store(&hc->stop, true);
        uint64_t one = 1;
        ssize_t r = write(hc->wake.fd, &one, sizeof(one));
        (void)r;
        pthread_join(hc->thread, NULL);
        close(hc->wake.fd);
        loop_destroy(&hc->loop);
    }
    for (size_t i = 0; i < hc->n_probes; i++)
        free(hc->probes[i].rbuf);
    free(hc->probes);
    conf_unref(hc->conf);
    free(hc);
}
