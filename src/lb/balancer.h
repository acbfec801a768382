/* balancer.h - the load-balancing vtable: init / pick / release / destroy.
 * One file per algorithm (lb_round_robin.c, lb_least_conn.c, lb_ip_hash.c, lb_random.c,
 * lb_hash.c). State is per worker and per upstream, so picks take no lock;
 * only server health (lb/server.h) is shared. Balancers know nothing of sockets
 * and are unit-tested alone. */
#ifndef PORTICO_LB_BALANCER_H
#define PORTICO_LB_BALANCER_H

#include <stdbool.h>
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

/* The ops for an algorithm (a static table; never NULL for a valid enum). */
const struct balancer_ops *balancer_for(enum lb_algo algo);

/* The algorithms, one per file (balancer_for() returns these). */
extern const struct balancer_ops lb_round_robin_ops;
extern const struct balancer_ops lb_least_conn_ops;
extern const struct balancer_ops lb_ip_hash_ops;
extern const struct balancer_ops lb_random_ops;
extern const struct balancer_ops lb_hash_ops;

/* Helpers shared by the algorithms. */
static inline int lb_tried(const struct lb_pick_ctx *ctx, unsigned idx)
{
    return ctx->tried && (ctx->tried[idx / 8] >> (idx % 8)) & 1;
}
static inline void lb_set_tried(uint8_t *bitmap, unsigned idx)
{
    bitmap[idx / 8] |= (uint8_t)(1u << (idx % 8));
}
/* A fast 64-bit hash (for ip_hash / hash / rendezvous scores). Stable across
 * processes and restarts (no per-process secret): the same key maps to the
 * same server on every worker and after a reload. wyhash-style, little-endian
 * reads. */
uint64_t lb_hash64(const void *data, size_t len, uint64_t seed);

/* --- Shared by the algorithm files (lb_*.c), not needed by the engine. --- */

/* The weight every algorithm must use instead of conf_server.weight, in
 * SERVER_WEIGHT_SCALE units (lb/server.h): the configured weight, or less
 * while the server is in its slow start. Never 0. */
uint64_t lb_weight(const struct conf_server *s, const struct lb_pick_ctx *ctx);

/* True when up->servers[i] may take this request: server_usable() at
 * ctx->now_ms and not marked in ctx->tried. */
bool lb_eligible(const struct conf_upstream *up, const struct lb_pick_ctx *ctx, size_t i);

/* One algorithm's pick restricted to one tier: only servers with
 * `backup == backup` are candidates. Returns NULL when the tier has no
 * eligible server. */
typedef const struct conf_server *(*lb_tier_pick_fn)(void *state,
                                                     const struct conf_upstream *up,
                                                     const struct lb_pick_ctx *ctx,
                                                     bool backup);

/* The backup-tier rule shared by every algorithm: runs `fn` over the primary
 * servers, and over the backup servers only when no primary is eligible. */
const struct conf_server *lb_pick_tiered(lb_tier_pick_fn fn, void *state,
                                         const struct conf_upstream *up,
                                         const struct lb_pick_ctx *ctx);

/* Per-server in-flight counters kept by a worker's balancer state (least_conn
 * and random choose by them; the others keep them so release() is uniform). */
struct lb_inflight {
    uint32_t *n; /* by server index, n_servers entries */
    size_t n_servers;
};
void lb_inflight_init(struct lb_inflight *f, size_t n_servers);
void lb_inflight_free(struct lb_inflight *f);
void lb_inflight_acquire(struct lb_inflight *f, const struct conf_server *s);
/* Decrements; a release without a matching pick is ignored (never wraps). */
void lb_inflight_release(struct lb_inflight *f, const struct conf_server *s);

/* Weighted rendezvous (highest random weight) hashing on ctx->key, the whole
 * of ip_hash and hash (they differ only in what the engine puts in the key).
 * Among the eligible servers of the tier, the one with the highest score
 * -weight / ln(u(hash(key), hash(server address))) wins. The functions have
 * the vtable's signatures; the state keeps the server identity hashes and
 * in-flight counters. */
void *lb_hrw_init(const struct conf_upstream *up);
const struct conf_server *lb_hrw_pick(void *state, const struct conf_upstream *up,
                                      const struct lb_pick_ctx *ctx);
void lb_hrw_release(void *state, const struct conf_server *s);
void lb_hrw_destroy(void *state);

/* Test hook: reseeds the PRNG of an LB_RANDOM state (states are otherwise
 * seeded differently per state from a global counter and the clock). */
void lb_random_seed(void *state, uint64_t seed);

#endif
