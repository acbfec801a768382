/* lb_random.c - weighted power of two choices.
 *
 * Draws two distinct eligible servers at random, each with probability
 * proportional to its weight, and sends the request to the one with the
 * lower in-flight / weight (ties: the first draw). Weights are the
 * effective ones (lb_weight: slow start). Compared with plain
 * least_conn this needs no global scan order and does not herd every worker
 * onto the same momentarily idle server; compared with plain random it
 * avoids a slow server whose requests pile up.
 *
 * State per worker: in-flight counters and a splitmix64 PRNG. Each state is
 * seeded from a process-wide counter, the clock and its own address, so
 * workers (and successive snapshots) draw different sequences. */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/common.h"
#include "lb/balancer.h"

struct rnd_state {
    struct lb_inflight inflight;
    uint64_t rng;
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound), bound > 0 (Lemire's multiply-shift; the bias is
 * at most bound / 2^64, irrelevant for weights). */
static uint64_t rnd_below(struct rnd_state *st, uint64_t bound)
{
    return (uint64_t)(((__uint128_t)splitmix64(&st->rng) * bound) >> 64);
}

static void *rnd_init(const struct conf_upstream *up)
{
    static _Atomic uint64_t counter;
    struct rnd_state *st = xcalloc(1, sizeof(*st));
    struct timespec ts;

    lb_inflight_init(&st->inflight, up->n_servers);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t seed = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    seed ^= (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
    seed ^= (uint64_t)(uintptr_t)st << 17;
    st->rng = seed;
    splitmix64(&st->rng);
    return st;
}

void lb_random_seed(void *state, uint64_t seed)
{
    struct rnd_state *st = state;
    st->rng = seed;
}

/* The server at weight offset r among eligible servers of the tier, skipping
 * index `skip` (SIZE_MAX for none). */
static size_t rnd_at(const struct conf_upstream *up, const struct lb_pick_ctx *ctx,
                     bool backup, uint64_t r, size_t skip)
{
    size_t last = SIZE_MAX;
    for (size_t i = 0; i < up->n_servers; i++) {
        const struct conf_server *s = &up->servers[i];
        if (i == skip || s->backup != backup || !lb_eligible(up, ctx, i))
            continue;
        uint64_t w = lb_weight(s, ctx);
        if (r < w)
            return i;
        r -= w;
        last = i;
    }
    /* Unreachable while r < the total weight; a server whose state changed
     * between the scans (another thread) can shorten the total: take the last. */
    return last;
}

static const struct conf_server *rnd_pick_tier(void *state, const struct conf_upstream *up,
                                               const struct lb_pick_ctx *ctx, bool backup)
{
    struct rnd_state *st = state;
    uint64_t total = 0;
    size_t count = 0, only = SIZE_MAX;

    for (size_t i = 0; i < up->n_servers; i++) {
        const struct conf_server *s = &up->servers[i];
        if (s->backup != backup || !lb_eligible(up, ctx, i))
            continue;
        total += lb_weight(s, ctx);
        count++;
        only = i;
    }
    if (count == 0)
        return NULL;
    if (count == 1)
        return &up->servers[only];

    size_t a = rnd_at(up, ctx, backup, rnd_below(st, total), SIZE_MAX);
    if (a == SIZE_MAX)
        return NULL;
    uint64_t wa = lb_weight(&up->servers[a], ctx);
    if (total <= wa) /* the others vanished meanwhile */
        return &up->servers[a];
    size_t b = rnd_at(up, ctx, backup, rnd_below(st, total - wa), a);
    if (b == SIZE_MAX)
        return &up->servers[a];

    uint64_t wb = lb_weight(&up->servers[b], ctx);
    /* inflight_b / wb < inflight_a / wa, without division. (No +1 as in
     * least_conn: the draws already follow the effective weights, and idle
     * picks must stay the weighted first draw.) */
    if ((unsigned __int128)st->inflight.n[b] * wa < (unsigned __int128)st->inflight.n[a] * wb)
        return &up->servers[b];
    return &up->servers[a];
}

static const struct conf_server *rnd_pick(void *state, const struct conf_upstream *up,
                                          const struct lb_pick_ctx *ctx)
{
    struct rnd_state *st = state;
    const struct conf_server *s = lb_pick_tiered(rnd_pick_tier, state, up, ctx);
    if (s)
        lb_inflight_acquire(&st->inflight, s);
    return s;
}

static void rnd_release(void *state, const struct conf_server *s)
{
    struct rnd_state *st = state;
    lb_inflight_release(&st->inflight, s);
}

static void rnd_destroy(void *state)
{
    struct rnd_state *st = state;
    if (!st)
        return;
    lb_inflight_free(&st->inflight);
    free(st);
}

const struct balancer_ops lb_random_ops = {
    .name = "random",
    .init = rnd_init,
    .pick = rnd_pick,
    .release = rnd_release,
    .destroy = rnd_destroy,
};
