/* server.h - runtime state of an upstream server shared by all workers, the
 * health checker and the admin API: passive failure marks (fail_timeout),
 * outlier ejection, active health (rise/fall), draining, slow start, in-flight
 * count and the last error. Written rarely (on failures, checks and state
 * changes), read on every pick: relaxed atomics are enough because a stale
 * read only delays a state change by one request. The state machines here are
 * pure functions of the state and the clock, unit-tested without sockets
 * (tests/unit/lb/health_*.c); docs/internals/health.md has the rules. */
#ifndef PORTICO_LB_SERVER_H
#define PORTICO_LB_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

enum server_health { SERVER_UP = 0, SERVER_DOWN };

/* What went wrong last (server_state.last_error packs kind << 32 | detail). */
enum server_err {
    SERR_NONE = 0,
    SERR_REFUSED,         /* connect failed; detail = errno */
    SERR_CONNECT_TIMEOUT, /* no connection within the timeout */
    SERR_TIMEOUT,         /* no (complete) response within the timeout */
    SERR_RESET,           /* closed or reset before a complete response head */
    SERR_STATUS,          /* unexpected status; detail = status */
    SERR_BAD_RESPONSE,    /* unparsable response */
    SERR_BODY,            /* health check: expect_body not found */
};

/* Backoff cap for outlier ejection: eject << level, level <= this. */
#define SERVER_EJECT_MAX_LEVEL 4

struct server_state {
    /* Shared by the snapshots that list this server (reloads carry the state
     * over, so health, marks and draining survive a reload). */
    atomic_uint refs;
    /* fail_timeout: a server that refused a connection is skipped until
     * this time (monotonic ms). */
    _Atomic uint64_t down_until_ms;
    atomic_uint consecutive_fails; /* connect failures since the last success */
    atomic_int health;             /* enum server_health, set by active checks */
    atomic_bool draining;          /* no new requests (admin API) */
    atomic_uint active;            /* requests in flight, all workers */
    /* Slow start: when the server last came back (DOWN -> UP, or an
     * ejection ended early); 0 = in service since start-up. Monotonic ms. */
    _Atomic uint64_t up_since_ms;
    /* Outlier detection (upstreams.X.passive). */
    atomic_uint outlier_fails;        /* consecutive connect failures / 5xx */
    _Atomic uint64_t ejected_until_ms; /* ejected while now < this */
    atomic_uint eject_level;          /* backoff: ejection lasts eject << level */
    /* Active checks (written by the checker thread only). */
    atomic_uint check_ok, check_fail; /* consecutive results */
    _Atomic uint64_t last_check_wall_ms;
    atomic_int last_check_ok; /* 1 ok, 0 failed (valid when last_check_wall_ms) */
    /* Last error seen by anyone (worker or checker). */
    _Atomic uint64_t last_error; /* kind << 32 | detail */
    _Atomic uint64_t last_error_wall_ms;
    /* Counters (since start). */
    atomic_ulong n_went_down, n_went_up, n_ejections, n_checks, n_checks_failed;
};

struct server_state *server_state_new(void);
void server_state_free(struct server_state *st); /* = server_state_unref */
void server_state_ref(struct server_state *st);
void server_state_unref(struct server_state *st);
/* Reload: every server of `next` that `prev` also had (same upstream name and
 * address) takes over prev's state. Main thread, before `next` is published. */
void server_states_carry_over(struct conf *next, const struct conf *prev);
/* The host part of the server's "host:port" / "[v6]:port" (for TLS SNI and
 * certificate verification). */
void server_host(const struct conf_server *s, char *out, size_t cap);

/* True when the server may take a new request now: health UP, not
 * draining, not skipped for fail_timeout, not ejected. */
bool server_usable(const struct conf_server *s, uint64_t now_ms);
/* Records a connect failure (refused, reset before any byte, timeout): the
 * server is skipped for the upstream's fail_timeout. Any thread. */
void server_mark_failed(const struct conf_server *s, uint64_t now_ms);
/* Records a success: clears the consecutive failure count. Any thread. */
void server_mark_ok(const struct conf_server *s);

/* Remembers the last error (kind, detail) with the wall-clock time. */
void server_set_error(struct server_state *st, enum server_err kind, uint32_t detail,
                      uint64_t wall_ms);
/* Human text for an error: "connection refused", "status 503", "timeout".
 * Writes at most cap bytes (NUL-terminated) into out; returns out. */
const char *server_err_text(enum server_err kind, uint32_t detail, char *out, size_t cap);

/* ---- active checks ---- */

enum server_transition { SERVER_SAME = 0, SERVER_WENT_UP, SERVER_WENT_DOWN };

/* Applies one active check result: DOWN after `fall` consecutive failures,
 * UP after `rise` consecutive successes (a server starts UP). A success
 * also ends a fail_timeout mark and an ejection (the server returns, with
 * slow start from now). Returns the transition, if any. Checker thread. */
enum server_transition server_check_result(struct server_state *st, bool ok, unsigned rise,
                                           unsigned fall, uint64_t now_ms);

/* ---- passive outlier detection ---- */

/* Records a failed exchange (connect failure, timeout, reset, 5xx) when
 * the upstream has `passive`. After consecutive_failures of them in a row
 * the server is ejected for eject << level (level grows by one, up to
 * SERVER_EJECT_MAX_LEVEL, when it fails again within twice its last
 * ejection; else it restarts at 0), unless that would put more than
 * max_ejected_percent of the group's servers out. Returns true when this
 * call ejected the server. Any thread (ejection decisions are serialised). */
bool server_outlier_failure(const struct conf_server *s, uint64_t now_ms);
/* Records a good exchange: the consecutive count restarts. */
void server_outlier_success(const struct conf_server *s);
/* True while the server is ejected. */
bool server_ejected(const struct server_state *st, uint64_t now_ms);

/* ---- slow start ---- */

/* Scale of effective weights: weight 1 at full strength is this many units,
 * so a slow-starting server can get a fraction of a configured weight. */
#define SERVER_WEIGHT_SCALE 1024u

/* The weight balancers use, in SERVER_WEIGHT_SCALE units: weight × scale,
 * or during the upstream's slow_start after the server came back, a share
 * growing linearly from 1 unit to the full weight. Never 0. */
uint64_t server_effective_weight(const struct conf_server *s, uint64_t now_ms);

/* Display state for /status: "DRAINING", "DOWN" (active check or
 * fail_timeout), "EJECTED" or "UP". */
const char *server_state_name(const struct conf_server *s, uint64_t now_ms);

#endif
