/* server.h - runtime state of an upstream server shared by all workers:
 * passive failure marks now, active health and draining later. Written rarely
 * (on failures and state changes), read on every pick: plain atomics with
 * relaxed ordering are enough because a stale read only delays a state change
 * by one request. */
#ifndef PORTICO_LB_SERVER_H
#define PORTICO_LB_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"

enum server_health { SERVER_UP = 0, SERVER_DOWN };

struct server_state {
    _Atomic uint64_t down_until_ms; /* passive: skipped until this time (monotonic ms) */
    atomic_uint consecutive_fails;
    atomic_int health;   /* enum server_health, set by active checks */
    atomic_bool draining; /* no new requests */
    atomic_uint active;   /* requests in flight, counted only with max_connections */
};

struct server_state *server_state_new(void);
void server_state_free(struct server_state *st);

/* True when the server may take a new request now. */
bool server_usable(const struct conf_server *s, uint64_t now_ms);
/* Records a connect failure (refused, reset before any byte, timeout): the
 * server is skipped for the upstream's fail_timeout. Any thread. */
void server_mark_failed(const struct conf_server *s, uint64_t now_ms);
/* Records a success: clears the consecutive failure count. Any thread. */
void server_mark_ok(const struct conf_server *s);

#endif
