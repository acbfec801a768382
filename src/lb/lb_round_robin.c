/* lb_round_robin.c - smooth weighted round-robin (nginx's algorithm).
 *
 * Every pick, each eligible server's current weight grows by its weight; the
 * server with the highest current weight wins and loses the total weight of
 * the eligible servers. Over any window of sum(weights) picks each server is
 * chosen exactly `weight` times, and the heavy server's turns are spread out:
 * weights {5,1,1} give a a b a c a a, never a a a a a b c. Ties go to the
 * lowest index, which makes the sequence deterministic (and testable).
 *
 * Servers that are not eligible for a pick (down, draining, tried, or in the
 * other tier) are left untouched: they neither gain nor lose credit, so a
 * server coming back does not receive a burst. State is per worker. */
#include <stdlib.h>

#include "core/common.h"
#include "lb/balancer.h"

struct rr_state {
    struct lb_inflight inflight;
    int64_t *cw; /* current weight by server index */
};

static void *rr_init(const struct conf_upstream *up)
{
    struct rr_state *st = xcalloc(1, sizeof(*st));
    lb_inflight_init(&st->inflight, up->n_servers);
    st->cw = xcalloc(up->n_servers ? up->n_servers : 1, sizeof(*st->cw));
    return st;
}

static const struct conf_server *rr_pick_tier(void *state, const struct conf_upstream *up,
                                              const struct lb_pick_ctx *ctx, bool backup)
{
    struct rr_state *st = state;
    int64_t total = 0;
    size_t best = SIZE_MAX;

    for (size_t i = 0; i < up->n_servers; i++) {
        const struct conf_server *s = &up->servers[i];
        if (s->backup != backup || !lb_eligible(up, ctx, i))
            continue;
        int64_t w = (int64_t)lb_weight(s, ctx);
        st->cw[i] += w;
        total += w;
        if (best == SIZE_MAX || st->cw[i] > st->cw[best])
            best = i;
    }
    if (best == SIZE_MAX)
        return NULL;
    st->cw[best] -= total;
    return &up->servers[best];
}

static const struct conf_server *rr_pick(void *state, const struct conf_upstream *up,
                                         const struct lb_pick_ctx *ctx)
{
    struct rr_state *st = state;
    const struct conf_server *s = lb_pick_tiered(rr_pick_tier, state, up, ctx);
    if (s)
        lb_inflight_acquire(&st->inflight, s);
    return s;
}

static void rr_release(void *state, const struct conf_server *s)
{
    struct rr_state *st = state;
    lb_inflight_release(&st->inflight, s);
}

static void rr_destroy(void *state)
{
    struct rr_state *st = state;
    if (!st)
        return;
    lb_inflight_free(&st->inflight);
    free(st->cw);
    free(st);
}

const struct balancer_ops lb_round_robin_ops = {
    .name = "round_robin",
    .init = rr_init,
    .pick = rr_pick,
    .release = rr_release,
    .destroy = rr_destroy,
};
