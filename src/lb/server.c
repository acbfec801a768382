/* server.c - shared runtime state of upstream servers: usability, passive
 * failure marks (fail_timeout), the active-check rise/fall state machine,
 * outlier ejection with backoff and max_ejected_percent, slow-start weights
 * and the last error. See server.h for the contracts and
 * docs/internals/health.md for the rules. */
#include "lb/server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

struct server_state *server_state_new(void)
{
    struct server_state *st = xcalloc(1, sizeof(*st));
    atomic_init(&st->refs, 1);
    atomic_init(&st->down_until_ms, 0);
    atomic_init(&st->consecutive_fails, 0);
    atomic_init(&st->health, SERVER_UP);
    atomic_init(&st->draining, false);
    atomic_init(&st->active, 0);
    atomic_init(&st->up_since_ms, 0);
    atomic_init(&st->outlier_fails, 0);
    atomic_init(&st->ejected_until_ms, 0);
    atomic_init(&st->eject_level, 0);
    return st;
}

void server_state_ref(struct server_state *st)
{
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
}

void server_state_unref(struct server_state *st)
{
    if (st && atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) == 1)
        free(st);
}

void server_state_free(struct server_state *st)
{
    server_state_unref(st);
}

void server_states_carry_over(struct conf *next, const struct conf *prev)
{
    for (size_t i = 0; i < next->n_upstreams; i++) {
        struct conf_upstream *nu = &next->upstreams[i];
        const struct conf_upstream *pu = conf_find_upstream(prev, nu->name);
        if (!pu)
            continue;
        for (size_t j = 0; j < nu->n_servers; j++) {
            struct conf_server *ns = &nu->servers[j];
            for (size_t k = 0; k < pu->n_servers; k++) {
                const struct conf_server *ps = &pu->servers[k];
                if (strcmp(ps->address, ns->address) != 0 || !ps->state)
                    continue;
                server_state_ref(ps->state);
                server_state_unref(ns->state);
                ns->state = ps->state;
                break;
            }
        }
    }
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

bool server_ejected(const struct server_state *st, uint64_t now_ms)
{
    return LOAD(st->ejected_until_ms) > now_ms;
}

bool server_usable(const struct conf_server *s, uint64_t now_ms)
{
    const struct server_state *st = s->state;
    if (!st)
        return true;
    if (LOAD(st->health) != SERVER_UP)
        return false;
    if (LOAD(st->draining))
        return false;
    if (LOAD(st->down_until_ms) > now_ms)
        return false;
    return !server_ejected(st, now_ms);
}

void server_mark_failed(const struct conf_server *s, uint64_t now_ms)
{
    struct server_state *st = s->state;
    if (!st)
        return;
    atomic_fetch_add_explicit(&st->consecutive_fails, 1, memory_order_relaxed);
    if (s->upstream->fail_timeout_ms)
        STORE(st->down_until_ms, now_ms + s->upstream->fail_timeout_ms);
}

void server_mark_ok(const struct conf_server *s)
{
    struct server_state *st = s->state;
    if (st && LOAD(st->consecutive_fails))
        STORE(st->consecutive_fails, 0);
}

void server_set_error(struct server_state *st, enum server_err kind, uint32_t detail,
                      uint64_t wall_ms)
{
    if (!st)
        return;
    STORE(st->last_error, ((uint64_t)kind << 32) | detail);
    STORE(st->last_error_wall_ms, wall_ms);
}

const char *server_err_text(enum server_err kind, uint32_t detail, char *out, size_t cap)
{
    switch (kind) {
    case SERR_NONE:
        snprintf(out, cap, "none");
        break;
    case SERR_REFUSED:
        snprintf(out, cap, "connect failed: %s", detail ? strerror((int)detail) : "refused");
        break;
    case SERR_CONNECT_TIMEOUT:
        snprintf(out, cap, "connect timeout");
        break;
    case SERR_TIMEOUT:
        snprintf(out, cap, "timeout");
        break;
    case SERR_RESET:
        snprintf(out, cap, "connection closed before a response");
        break;
    case SERR_STATUS:
        snprintf(out, cap, "status %u", detail);
        break;
    case SERR_BAD_RESPONSE:
        snprintf(out, cap, "bad response");
        break;
    case SERR_BODY:
        snprintf(out, cap, "expected body text not found");
        break;
    }
    return out;
}

/* ---- active checks ---- */

enum server_transition server_check_result(struct server_state *st, bool ok, unsigned rise,
                                           unsigned fall, uint64_t now_ms)
{
    atomic_fetch_add_explicit(&st->n_checks, 1, memory_order_relaxed);
    STORE(st->last_check_ok, ok ? 1 : 0);
    if (!ok) {
        atomic_fetch_add_explicit(&st->n_checks_failed, 1, memory_order_relaxed);
        STORE(st->check_ok, 0);
        unsigned f = LOAD(st->check_fail) + 1;
        STORE(st->check_fail, f);
        if (LOAD(st->health) == SERVER_UP && f >= fall) {
            STORE(st->health, SERVER_DOWN);
            atomic_fetch_add_explicit(&st->n_went_down, 1, memory_order_relaxed);
            return SERVER_WENT_DOWN;
        }
        return SERVER_SAME;
    }
    STORE(st->check_fail, 0);
    unsigned k = LOAD(st->check_ok) + 1;
    STORE(st->check_ok, k);
    /* A working server is back at once from the passive marks; the
     * ejection history (ejected_until in the past) stays for the backoff. */
    if (LOAD(st->down_until_ms) > now_ms)
        STORE(st->down_until_ms, 0);
    if (LOAD(st->ejected_until_ms) > now_ms) {
        STORE(st->ejected_until_ms, now_ms);
        STORE(st->outlier_fails, 0);
    }
    if (LOAD(st->health) == SERVER_DOWN && k >= rise) {
        STORE(st->up_since_ms, now_ms ? now_ms : 1);
        STORE(st->health, SERVER_UP);
        atomic_fetch_add_explicit(&st->n_went_up, 1, memory_order_relaxed);
        return SERVER_WENT_UP;
    }
    return SERVER_SAME;
}

/* ---- outlier ejection ---- */

/* Ejection decisions are rare (one per consecutive_failures failures) and
 * must see the whole group at once to honour max_ejected_percent: one
 * process-wide mutex keeps two workers from ejecting past the limit. */
static pthread_mutex_t eject_lock = PTHREAD_MUTEX_INITIALIZER;

bool server_outlier_failure(const struct conf_server *s, uint64_t now_ms)
{
    struct server_state *st = s->state;
    const struct conf_upstream *u = s->upstream;
    if (!st || !u->passive.consecutive_failures)
        return false;
    unsigned n = atomic_fetch_add_explicit(&st->outlier_fails, 1, memory_order_relaxed) + 1;
    if (n < u->passive.consecutive_failures)
        return false;

    bool ejected = false;
    pthread_mutex_lock(&eject_lock);
    if (server_ejected(st, now_ms))
        goto out;
    size_t out_now = 0;
    for (size_t i = 0; i < u->n_servers; i++)
        if (u->servers[i].state && server_ejected(u->servers[i].state, now_ms))
            out_now++;
    /* Never more than max_ejected_percent of the group (rounded down). */
    if ((out_now + 1) * 100 > (size_t)u->passive.max_ejected_percent * u->n_servers)
        goto out;
    uint64_t prev_until = LOAD(st->ejected_until_ms);
    unsigned level = LOAD(st->eject_level);
    uint64_t prev_len = u->passive.eject_ms << level;
    /* Failing again soon after the last ejection ended: eject longer. */
    if (prev_until && now_ms < prev_until + prev_len)
        level = level < SERVER_EJECT_MAX_LEVEL ? level + 1 : SERVER_EJECT_MAX_LEVEL;
    else
        level = 0;
    STORE(st->eject_level, level);
    STORE(st->ejected_until_ms, now_ms + (u->passive.eject_ms << level));
    STORE(st->outlier_fails, 0);
    atomic_fetch_add_explicit(&st->n_ejections, 1, memory_order_relaxed);
    ejected = true;
out:
    pthread_mutex_unlock(&eject_lock);
    return ejected;
}

void server_outlier_success(const struct conf_server *s)
{
    struct server_state *st = s->state;
    if (st && LOAD(st->outlier_fails))
        STORE(st->outlier_fails, 0);
}

/* ---- slow start ---- */

uint64_t server_effective_weight(const struct conf_server *s, uint64_t now_ms)
{
    uint64_t full = (uint64_t)s->weight * SERVER_WEIGHT_SCALE;
    const struct server_state *st = s->state;
    uint64_t ramp = s->upstream ? s->upstream->slow_start_ms : 0;
    if (!ramp || !st)
        return full;
    /* Back in service since the later of: coming UP, an ejection ending. */
    uint64_t since = LOAD(st->up_since_ms);
    uint64_t ej = LOAD(st->ejected_until_ms);
    if (ej > since && ej <= now_ms)
        since = ej;
    if (!since || now_ms >= since + ramp)
        return full;
    uint64_t elapsed = now_ms > since ? now_ms - since : 0;
    uint64_t w = full * elapsed / ramp;
    return w ? w : 1;
}

const char *server_state_name(const struct conf_server *s, uint64_t now_ms)
{
    const struct server_state *st = s->state;
    if (!st)
        return "UP";
    if (LOAD(st->draining))
        return "DRAINING";
    if (LOAD(st->health) != SERVER_UP || LOAD(st->down_until_ms) > now_ms)
        return "DOWN";
    if (server_ejected(st, now_ms))
        return "EJECTED";
    return "UP";
}

void server_host(const struct conf_server *s, char *out, size_t cap)
{
    const char *address = s->address;
    const char *end = strrchr(address, ':');
    const char *start = address;
    if (address[0] == '[') {
        start = address + 1;
        end = strchr(start, ']');
    }
    size_t n = end ? (size_t)(end - start) : strlen(start);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, start, n);
    out[n] = '\0';
}
