/* admin_status.c - the GET /status document: listeners, upstreams and each
 * server's state (UP / DOWN / DRAINING / EJECTED), health, in-flight count,
 * last check, last error and counters, as JSON. Reads the immutable
 * snapshot and the shared server-state atomics only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/jbuf.h"
#include "lb/balancer.h"
#include "lb/server.h"
#include "log/errlog.h"
#include "version.h"

/* A JSON string, or null for NULL. */
static void jb_json_str(struct jbuf *b, const char *s)
{
    if (s)
        jb_str(b, s, strlen(s));
    else
        jb_cstr(b, "null");
}

static void jb_time(struct jbuf *b, uint64_t wall_ms)
{
    char t[40];
    size_t n = fmt_rfc3339_ms(t, wall_ms);
    jb_str(b, t, n);
}

static const char *const algo_names[] = {"round_robin", "least_conn", "ip_hash", "random", "hash"};

static void server_json(struct jbuf *b, const struct conf_server *s, uint64_t now)
{
    const struct server_state *st = s->state;
    const struct conf_upstream *u = s->upstream;
    char err[160];

    jb_printf(b, "{\"address\":");
    jb_json_str(b, s->address);
    jb_printf(b, ",\"weight\":%u,\"backup\":%s,\"state\":\"%s\"", s->weight,
              s->backup ? "true" : "false", server_state_name(s, now));
    if (!st) {
        jb_printf(b, "}");
        return;
    }
    uint64_t ew = server_effective_weight(s, now);
    jb_printf(b, ",\"effective_weight\":%.3f", (double)ew / SERVER_WEIGHT_SCALE);
    jb_printf(b, ",\"health\":\"%s\"",
              !u->health.enabled ? "unchecked"
              : atomic_load(&st->health) == SERVER_UP ? "up"
                                                      : "down");
    jb_printf(b, ",\"draining\":%s,\"in_flight\":%u",
              atomic_load(&st->draining) ? "true" : "false", atomic_load(&st->active));
    uint64_t ej = atomic_load(&st->ejected_until_ms);
    if (ej > now)
        jb_printf(b, ",\"ejected_for_ms\":%llu", (unsigned long long)(ej - now));
    uint64_t du = atomic_load(&st->down_until_ms);
    if (du > now)
        jb_printf(b, ",\"failed_for_ms\":%llu", (unsigned long long)(du - now));
    uint64_t lc = atomic_load(&st->last_check_wall_ms);
    jb_printf(b, ",\"last_check\":");
    if (lc) {
        jb_printf(b, "{\"time\":");
        jb_time(b, lc);
        jb_printf(b, ",\"ok\":%s}", atomic_load(&st->last_check_ok) ? "true" : "false");
    } else {
        jb_printf(b, "null");
    }
    uint64_t le = atomic_load(&st->last_error);
    uint64_t lew = atomic_load(&st->last_error_wall_ms);
    jb_printf(b, ",\"last_error\":");
    if (lew) {
        jb_printf(b, "{\"time\":");
        jb_time(b, lew);
        jb_printf(b, ",\"error\":");
        jb_json_str(b, server_err_text((enum server_err)(le >> 32), (uint32_t)le, err,
                                       sizeof(err)));
        jb_printf(b, "}");
    } else {
        jb_printf(b, "null");
    }
    jb_printf(b,
              ",\"checks\":%lu,\"checks_failed\":%lu,\"went_down\":%lu,\"went_up\":%lu,"
              "\"ejections\":%lu}",
              atomic_load(&st->n_checks), atomic_load(&st->n_checks_failed),
              atomic_load(&st->n_went_down), atomic_load(&st->n_went_up),
              atomic_load(&st->n_ejections));
}

char *admin_status_json(const struct conf *c, uint64_t started_wall_ms, size_t *len)
{
    struct jbuf b = {0};
    uint64_t now = clock_ms();
    uint64_t wall = clock_wall_ms();

    jb_printf(&b, "{\"version\":");
    jb_json_str(&b, PORTICO_VERSION);
    jb_printf(&b, ",\"time\":");
    jb_time(&b, wall);
    jb_printf(&b, ",\"pid\":%d,\"generation\":%lu", (int)getpid(), c->generation);
    jb_printf(&b, ",\"uptime_ms\":%llu,\"workers\":%u,\"listeners\":[",
              (unsigned long long)(wall > started_wall_ms ? wall - started_wall_ms : 0),
              c->workers);
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        jb_printf(&b, "%s{\"name\":", i ? "," : "");
        jb_json_str(&b, l->name);
        jb_printf(&b, ",\"listen\":");
        jb_json_str(&b, l->listen);
        jb_printf(&b, ",\"tls\":%s}", l->tls ? "true" : "false");
    }
    jb_printf(&b, "],\"upstreams\":[");
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const struct conf_upstream *u = &c->upstreams[i];
        size_t up = 0;
        for (size_t j = 0; j < u->n_servers; j++)
            if (server_usable(&u->servers[j], now))
                up++;
        jb_printf(&b, "%s{\"name\":", i ? "," : "");
        jb_json_str(&b, u->name);
        jb_printf(&b, ",\"balance\":\"%s\",\"health_checks\":%s,\"usable\":%zu,\"servers\":[",
                  (unsigned)u->balance < ARRAY_SIZE(algo_names) ? algo_names[u->balance] : "?",
                  u->health.enabled ? "true" : "false", up);
        for (size_t j = 0; j < u->n_servers; j++) {
            if (j)
                jb_printf(&b, ",");
            server_json(&b, &u->servers[j], now);
        }
        jb_printf(&b, "]}");
    }
    jb_printf(&b, "]}\n");
    return jb_take(&b, len);
}
