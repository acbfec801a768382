/* balancer.c - what the balancing algorithms share: the algorithm table
 * (balancer_for), the 64-bit hash, the eligibility and backup-tier rules,
 * the per-worker in-flight counters and weighted rendezvous hashing (used by
 * both ip_hash and hash). The algorithms themselves live in lb_*.c; see
 * docs/internals/lb.md. */
#include "lb/balancer.h"

#include <endian.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "lb/server.h"

const struct balancer_ops *balancer_for(enum lb_algo algo)
{
    switch (algo) {
    case LB_ROUND_ROBIN:
        return &lb_round_robin_ops;
    case LB_LEAST_CONN:
        return &lb_least_conn_ops;
    case LB_IP_HASH:
        return &lb_ip_hash_ops;
    case LB_RANDOM:
        return &lb_random_ops;
    case LB_HASH:
        return &lb_hash_ops;
    }
    BUG_ON(1 && "unknown lb_algo");
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* lb_hash64: a wyhash-style hash (Wang Yi's design, rewritten here). Every
 * input byte goes through a 64x64->128 multiply whose two halves are folded
 * (the "mum"), which mixes well and is fast on 64-bit CPUs. The constants
 * are wyhash's odd 64-bit secrets. Reads are little-endian so a key hashes
 * the same on every architecture. */

static const uint64_t WY_S0 = 0xa0761d6478bd642full;
static const uint64_t WY_S1 = 0xe7037ed1a0b428dbull;
static const uint64_t WY_S2 = 0x8ebc6af09c88c6e3ull;
static const uint64_t WY_S3 = 0x589965cc75374cc3ull;

static inline void wy_mum(uint64_t *a, uint64_t *b)
{
    __uint128_t r = (__uint128_t)*a * *b;
    *a = (uint64_t)r;
    *b = (uint64_t)(r >> 64);
}

static inline uint64_t wy_mix(uint64_t a, uint64_t b)
{
    wy_mum(&a, &b);
    return a ^ b;
}

static inline uint64_t wy_r8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

static inline uint64_t wy_r4(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

/* 1..3 bytes: first, middle and last byte (they may overlap). */
static inline uint64_t wy_r3(const uint8_t *p, size_t k)
{
    return ((uint64_t)p[0] << 16) | ((uint64_t)p[k >> 1] << 8) | p[k - 1];
}

uint64_t lb_hash64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t a, b;

    seed ^= wy_mix(seed ^ WY_S0, WY_S1);
    if (likely(len <= 16)) {
        if (len >= 4) {
            /* Two overlapping 4-byte reads from each end cover 4..16 bytes. */
            size_t off = (len >> 3) << 2;
            a = (wy_r4(p) << 32) | wy_r4(p + off);
            b = (wy_r4(p + len - 4) << 32) | wy_r4(p + len - 4 - off);
        } else if (len > 0) {
            a = wy_r3(p, len);
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        if (i > 48) {
            /* Three independent lanes keep the multipliers busy. */
            uint64_t see1 = seed, see2 = seed;
            do {
                seed = wy_mix(wy_r8(p) ^ WY_S1, wy_r8(p + 8) ^ seed);
                see1 = wy_mix(wy_r8(p + 16) ^ WY_S2, wy_r8(p + 24) ^ see1);
                see2 = wy_mix(wy_r8(p + 32) ^ WY_S3, wy_r8(p + 40) ^ see2);
                p += 48;
                i -= 48;
            } while (i > 48);
            seed ^= see1 ^ see2;
        }
        while (i > 16) {
            seed = wy_mix(wy_r8(p) ^ WY_S1, wy_r8(p + 8) ^ seed);
            i -= 16;
            p += 16;
        }
        /* The last 16 bytes, overlapping what was already mixed if needed. */
        a = wy_r8(p + i - 16);
        b = wy_r8(p + i - 8);
    }
    a ^= WY_S1;
    b ^= seed;
    wy_mum(&a, &b);
    return wy_mix(a ^ WY_S0 ^ len, b ^ WY_S1);
}

/* ------------------------------------------------------------------------ */
/* Eligibility, weights and tiers. */

uint64_t lb_weight(const struct conf_server *s, const struct lb_pick_ctx *ctx)
{
    return server_effective_weight(s, ctx->now_ms);
}

bool lb_eligible(const struct conf_upstream *up, const struct lb_pick_ctx *ctx, size_t i)
{
    return !lb_tried(ctx, (unsigned)i) && server_usable(&up->servers[i], ctx->now_ms);
}

const struct conf_server *lb_pick_tiered(lb_tier_pick_fn fn, void *state,
                                         const struct conf_upstream *up,
                                         const struct lb_pick_ctx *ctx)
{
    const struct conf_server *s = fn(state, up, ctx, false);
    if (likely(s != NULL))
        return s;
    /* No primary can take the request (down, draining, failed or already
     * tried): only now are the backups candidates. */
    return fn(state, up, ctx, true);
}

/* ------------------------------------------------------------------------ */
/* In-flight counters. */

void lb_inflight_init(struct lb_inflight *f, size_t n_servers)
{
    f->n = xcalloc(n_servers ? n_servers : 1, sizeof(*f->n));
    f->n_servers = n_servers;
}

void lb_inflight_free(struct lb_inflight *f)
{
    free(f->n);
    f->n = NULL;
    f->n_servers = 0;
}

void lb_inflight_acquire(struct lb_inflight *f, const struct conf_server *s)
{
    BUG_ON(s->index >= f->n_servers);
    f->n[s->index]++;
}

void lb_inflight_release(struct lb_inflight *f, const struct conf_server *s)
{
    BUG_ON(s->index >= f->n_servers);
    /* Tolerate an unpaired release rather than wrapping to 4 billion, which
     * would starve the server for good under least_conn. */
    if (f->n[s->index])
        f->n[s->index]--;
}

/* ------------------------------------------------------------------------ */
/* Weighted rendezvous hashing (HRW).
 *
 * Each (key, server) pair gets a pseudo-random u in (0,1); the server with
 * the highest -weight / ln(u) wins. For a fixed key this is the minimum of
 * exponential variables with rates weight_i, so server i wins with
 * probability weight_i / sum(weights): exactly proportional. Because a
 * server's score does not depend on the other servers, removing (or skipping
 * a down) server only moves the keys it was winning, each to its own
 * second-best server; when it returns, those keys come back. */

struct hrw_state {
    struct lb_inflight inflight;
    uint64_t *ids; /* identity hash by server index */
};

/* Server identity: its address as written, so scores survive a reload that
 * reorders or adds servers. Duplicated addresses get distinct seeds (their
 * ordinal among equal addresses) so they are not permanently tied. */
void *lb_hrw_init(const struct conf_upstream *up)
{
    struct hrw_state *st = xcalloc(1, sizeof(*st));
    lb_inflight_init(&st->inflight, up->n_servers);
    st->ids = xcalloc(up->n_servers ? up->n_servers : 1, sizeof(*st->ids));
    for (size_t i = 0; i < up->n_servers; i++) {
        const char *a = up->servers[i].address;
        uint64_t dup = 0;
        if (!a) {
            uint64_t idx = i;
            st->ids[i] = lb_hash64(&idx, sizeof(idx), 0x5eed);
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (up->servers[j].address && strcmp(up->servers[j].address, a) == 0)
                dup++;
        st->ids[i] = lb_hash64(a, strlen(a), dup);
    }
    return st;
}

/* The key's hash is computed once per pick (not once per tier). */
struct hrw_pick_arg {
    const struct hrw_state *st;
    uint64_t kh;
};

static const struct conf_server *hrw_pick_tier(void *arg, const struct conf_upstream *up,
                                               const struct lb_pick_ctx *ctx, bool backup)
{
    const struct hrw_pick_arg *a = arg;
    const struct conf_server *best = NULL;
    double best_score = -1.0;

    for (size_t i = 0; i < up->n_servers; i++) {
        const struct conf_server *s = &up->servers[i];
        if (s->backup != backup || !lb_eligible(up, ctx, i))
            continue;
        uint64_t pair[2] = {a->kh, a->st->ids[i]};
        uint64_t h = lb_hash64(pair, sizeof(pair), 0);
        /* Top 53 bits, centred in their cell: u in (0,1), never 0 or 1, so
         * ln(u) is finite and negative. */
        double u = ((double)(h >> 11) + 0.5) * 0x1p-53;
        double score = (double)lb_weight(s, ctx) / -log(u);
        if (score > best_score) {
            best_score = score;
            best = s;
        }
    }
    return best;
}

const struct conf_server *lb_hrw_pick(void *state, const struct conf_upstream *up,
                                      const struct lb_pick_ctx *ctx)
{
    struct hrw_state *st = state;
    struct hrw_pick_arg arg = {
        .st = st,
        .kh = lb_hash64(ctx->key.p ? ctx->key.p : "", ctx->key.len, 0),
    };
    const struct conf_server *s = lb_pick_tiered(hrw_pick_tier, &arg, up, ctx);
    if (s)
        lb_inflight_acquire(&st->inflight, s);
    return s;
}

void lb_hrw_release(void *state, const struct conf_server *s)
{
    struct hrw_state *st = state;
    lb_inflight_release(&st->inflight, s);
}

void lb_hrw_destroy(void *state)
{
    struct hrw_state *st = state;
    if (!st)
        return;
    lb_inflight_free(&st->inflight);
    free(st->ids);
    free(st);
}
