/* balancer.h - the load-balancing vtable: init / pick / release / destroy.
 * One file per algorithm (lb_rr.c, lb_least_conn.c, lb_ip_hash.c, lb_random.c,
 * lb_hash.c). State is per worker and per upstream, so picks take no lock;
 * only server health (lb/server.h) is shared. Balancers know nothing of sockets
 * and are unit-tested alone. */
#ifndef PORTICO_LB_BALANCER_H
#define PORTICO_LB_BALANCER_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "core/str.h"

/* What a pick may depend on. */
struct lb_pick_ctx {
    uint64_t now_ms;
    struct str key;        /* ip_hash: client IP bytes; hash: expanded hash_key */
    const uint8_t *tried;  /* optional bitmap by server index: servers to avoid */
};

struct balancer_ops {
    const char *name;
    /* Creates per-worker state for `up`. Never fails (aborts on OOM). */
    void *(*init)(const struct conf_upstream *up);
    /* Picks a usable server (server_usable() and not in ctx->tried), preferring
     * non-backup servers; backups only when no primary is usable. Returns NULL
     * when none is usable. A non-NULL pick must be paired with release(). */
    const struct conf_server *(*pick)(void *state, const struct conf_upstream *up,
                                      const struct lb_pick_ctx *ctx);
    /* The request given to `s` has finished (success or not). */
    void (*release)(void *state, const struct conf_server *s);
    void (*destroy)(void *state);
};

/* The ops for an algorithm. */
const struct balancer_ops *balancer_for(enum lb_algo algo);

/* Helpers shared by the algorithms. */
static inline int lb_tried(const struct lb_pick_ctx *ctx, unsigned idx)
{
    return ctx->tried && (ctx->tried[idx / 8] >> (idx % 8)) & 1;
}
static inline void lb_set_tried(uint8_t *bitmap, unsigned idx)
{
    bitmap[idx / 8] |= (uint8_t)(1u << (idx % 8));
}
/* A fast 64-bit hash (for ip_hash / hash / rendezvous scores). */
uint64_t lb_hash64(const void *data, size_t len, uint64_t seed);

#endif
