/* retry.c - what keeps a request alive when a server fails: the retry
 * decision (retry_on conditions, idempotency, the per-worker retry budget,
 * another server being available), the bounded copy of the request body that
 * makes a replay possible, passive outcome recording (outlier ejection and
 * the last error shown by /status) and the max_pending wait for a full
 * group. Called by upstream.c and stream.c; docs/internals/health.md. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/common.h"
#include "lb/balancer.h"
#include "lb/server.h"
#include "log/errlog.h"
#include "log/metrics.h"
#include "proxy/engine.h"

#define PENDING_POLL_MS 10

static bool method_idempotent(enum http_method m)
{
    return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_PUT || m == HTTP_M_DELETE ||
           m == HTTP_M_OPTIONS || m == HTTP_M_TRACE;
}

/* Whether a body copy is worth keeping for this request: retries beyond
 * connect failures are configured, the method may be retried and the body
 * (if its length is known) fits retry_body_max. */
static bool copy_wanted(const struct stream *st, const struct conf_upstream *u)
{
    bool beyond_connect = (u->retry_on & (RETRY_TIMEOUT | RETRY_RESET)) != 0;
    for (size_t i = 0; i < sizeof(u->retry_status) && !beyond_connect; i++)
        beyond_connect = u->retry_status[i] != 0;
    /* Only bodies forwarded as received are copied (req_taken); a body
     * reframed on the way up (HTTP/2 DATA to chunked) is not replayed. */
    if (!u->retries || !beyond_connect || !u->retry_body_max || st->req_body.done ||
        st->req_body.out != ROUT_RAW)
        return false;
    if (!method_idempotent(st->req.method_id) && !u->retry_non_idempotent)
        return false;
    const struct http_framing *f = &st->req.framing;
    return f->chunked || (f->has_content_length && f->content_length <= u->retry_body_max);
}

void upstream_begin(struct stream *st, const struct conf_upstream *u)
{
    if (st->counted)
        return;
    st->counted = true;
    st->w->proxy_active++;
    st->copy_body = copy_wanted(st, u);
    /* The engine reuses req_head once the body flows: keep the head too. */
    if (st->copy_body && st->req_head) {
        st->fwd_head = buf_get(buf_len(st->req_head));
        buf_append(st->fwd_head, buf_rptr(st->req_head), buf_len(st->req_head));
    }
}

void stream_keep_body(struct stream *st, const char *p, size_t n)
{
    const struct conf_upstream *u = st->route ? st->route->upstream : NULL;
    if (!u || st->tunnel || !n)
        return;
    size_t have = st->body_copy ? buf_len(st->body_copy) : 0;
    if (have + n > u->retry_body_max) {
        /* Too large to replay: stop copying, and never retry once sent. */
        buf_put(st->body_copy);
        st->body_copy = NULL;
        st->copy_body = false;
        st->body_copy_lost = true;
        return;
    }
    if (!st->body_copy) {
        const struct http_framing *f = &st->req.framing;
        size_t cap = f->has_content_length && !f->chunked ? (size_t)f->content_length
                                                          : (size_t)u->retry_body_max;
        st->body_copy = buf_get(cap < n ? n : cap);
    }
    buf_append(st->body_copy, p, n);
}

void stream_retry_end(struct stream *st)
{
    struct worker *w = st->w;
    if (st->pending)
        upstream_unqueue(st);
    if (st->counted) {
        w->proxy_active--;
        st->counted = false;
    }
    if (st->retry_token) {
        w->retry_active--;
        st->retry_token = false;
    }
    buf_put(st->body_copy);
    st->body_copy = NULL;
    buf_put(st->fwd_head);
    st->fwd_head = NULL;
    st->copy_body = false;
}

/* Another server could take the request (usable and not yet tried). */
static bool any_candidate(const struct stream *st, const struct conf_upstream *u)
{
    uint64_t now = clock_ms();
    for (size_t i = 0; i < u->n_servers; i++) {
        if (i < sizeof(st->tried) * 8 && (st->tried[i / 8] >> (i % 8)) & 1)
            continue;
        if (server_usable(&u->servers[i], now))
            return true;
    }
    return false;
}

bool upstream_may_retry(struct stream *st, const struct conf_upstream *u, bool reached)
{
    if (st->attempts > u->retries || st->resp_started || st->resp_head_done)
        return false;
    /* Once the request may have reached an origin, only methods that may
     * safely run twice are sent again. */
    if (reached && !method_idempotent(st->req.method_id) && !u->retry_non_idempotent)
        return false;
    /* Body bytes already taken from the client must be replayable. */
    if (st->req_body_sent &&
        (st->body_copy_lost || !st->body_copy || buf_len(st->body_copy) != st->req_body_sent))
        return false;
    if (!any_candidate(st, u))
        return false;
    if (!st->retry_token) {
        struct worker *w = st->w;
        unsigned limit = (unsigned)((uint64_t)w->proxy_active * u->retry_budget_pct / 100);
        if (limit < RETRY_BUDGET_MIN)
            limit = RETRY_BUDGET_MIN;
        if (w->retry_active >= limit) {
            log_debug("upstream %s: retry budget exhausted (%u retries of %u requests)",
                      u->name, w->retry_active, w->proxy_active);
            return false;
        }
        w->retry_active++;
        st->retry_token = true;
    }
    metrics_retry(st); /* callers retry whenever this says yes */
    return true;
}

void upstream_prepare_replay(struct stream *st)
{
    /* Without a body copy no body byte was sent (upstream_may_retry checked)
     * and req_head still holds the whole head. */
    if (st->fwd_head && st->req_body_sent) {
        size_t hl = buf_len(st->fwd_head);
        size_t copy = buf_len(st->body_copy);
        if (st->req_head->size < hl + copy) {
            buf_put(st->req_head);
            st->req_head = buf_get(hl + copy);
        }
        st->req_head->head = st->req_head->tail = 0;
        buf_append(st->req_head, buf_rptr(st->fwd_head), hl);
        /* The body bytes sent before travel again behind the head; what the
         * client has not sent yet follows from its buffer as usual. */
        buf_append(st->req_head, buf_rptr(st->body_copy), copy);
    }
    st->req_head_off = 0;
    st->req_sent = false;
    st->req_abandoned = false;
}

static enum server_err fail_kind(enum upfail why)
{
    switch (why) {
    case UPF_CONNECT:
        return SERR_REFUSED;
    case UPF_CONNECT_TIMEOUT:
        return SERR_CONNECT_TIMEOUT;
    case UPF_SEND_TIMEOUT:
    case UPF_READ_TIMEOUT:
        return SERR_TIMEOUT;
    case UPF_BAD_RESPONSE:
        return SERR_BAD_RESPONSE;
    default:
        return SERR_RESET;
    }
}

static void note_outlier(const struct conf_server *s)
{
    if (server_outlier_failure(s, clock_ms())) {
        const struct conf_upstream *u = s->upstream;
        unsigned level = atomic_load_explicit(&s->state->eject_level, memory_order_relaxed);
        log_warn("upstream %s: server %s EJECTED for %llu ms (%u consecutive failures)", u->name,
                 s->address, (unsigned long long)(u->passive.eject_ms << level),
                 u->passive.consecutive_failures);
    }
}

void upstream_note_failure(const struct conf_server *s, enum upfail why, int err)
{
    server_set_error(s->state, fail_kind(why), (uint32_t)err, clock_wall_ms());
    note_outlier(s);
}

bool upstream_retry_on_status(struct stream *st, int status)
{
    const struct conf_server *s = st->server;
    if (!s)
        return false;
    const struct conf_upstream *u = s->upstream;
    if (status < 500) {
        server_outlier_success(s);
        return false;
    }
    server_set_error(s->state, SERR_STATUS, (uint32_t)status, clock_wall_ms());
    note_outlier(s);
    if (!conf_retry_status(u, status) || !upstream_may_retry(st, u, true))
        return false;
    log_debug("upstream %s: server %s answered %d: retrying on another server", u->name,
              s->address, status);
    /* The head is dropped unseen and the connection closed (never pooled:
     * the rest of that response is not read). */
    upstream_release(st, false);
    upstream_release_server(st);
    upstream_prepare_replay(st);
    upstream_attach(st);
    return true;
}

/* ---- max_pending: waiting for a slot in a full group ---- */

static void pending_timer_cb(struct timer *t);

bool upstream_enqueue(struct stream *st, const struct conf_upstream *u)
{
    struct worker *w = st->w;
    if (!u->max_pending || !u->pending)
        return false;
    unsigned cur = atomic_load_explicit(u->pending, memory_order_relaxed);
    do {
        if (cur >= u->max_pending)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(u->pending, &cur, cur + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    if (!st->pending_until)
        st->pending_until = clock_ms() + u->pending_timeout_ms;
    st->pending = true;
    st->pnext = NULL;
    st->pprev = w->pending_tail;
    if (w->pending_tail)
        w->pending_tail->pnext = st;
    else
        w->pending_head = st;
    w->pending_tail = st;
    if (!w->pending_timer.cb)
        timer_init(&w->pending_timer, pending_timer_cb);
    if (w->pending_timer.expires == 0)
        timer_set(&w->loop, &w->pending_timer, clock_ms() + PENDING_POLL_MS);
    return true;
}

void upstream_unqueue(struct stream *st)
{
    struct worker *w = st->w;
    const struct conf_upstream *u = st->route->upstream;
    if (!st->pending)
        return;
    if (st->pprev)
        st->pprev->pnext = st->pnext;
    else
        w->pending_head = st->pnext;
    if (st->pnext)
        st->pnext->pprev = st->pprev;
    else
        w->pending_tail = st->pprev;
    st->pnext = st->pprev = NULL;
    st->pending = false;
    atomic_fetch_sub_explicit(u->pending, 1, memory_order_relaxed);
}

/* Every few ms while requests wait: each tries again for a slot (freed by
 * any worker), or gets 503 + Retry-After when its wait is over. In order,
 * so the oldest goes first. */
static void pending_timer_cb(struct timer *t)
{
    struct worker *w = container_of(t, struct worker, pending_timer);
    uint64_t now = clock_ms();
    size_t n = 0;
    for (struct stream *st = w->pending_head; st; st = st->pnext)
        n++;
    /* Only the streams waiting now, oldest first: one that must wait longer
     * goes back to the tail. Always take the head again, since kicking a
     * stream may end others (an HTTP/2 connection closing). */
    for (size_t k = 0; k < n; k++) {
        struct stream *st = w->pending_head;
        if (!st)
            break;
        upstream_unqueue(st);
        memset(st->tried, 0, sizeof(st->tried));
        if (now >= st->pending_until)
            upstream_reject_full(st);
        else
            upstream_attach(st);
        client_schedule(st->cl); /* runs it after this batch */
    }
    if (w->pending_head)
        timer_set(&w->loop, &w->pending_timer, now + PENDING_POLL_MS);
}
