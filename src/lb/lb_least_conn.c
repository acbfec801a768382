/* lb_least_conn.c - least in-flight requests relative to weight.
 *
 * Picks the eligible server with the smallest inflight / weight, compared by
 * cross-multiplication (inflight_a * weight_b < inflight_b * weight_a) so no
 * division and no rounding. The scan starts one past the previous winner and
 * only a strictly smaller load replaces the candidate, so ties rotate instead
 * of always landing on the first server (which would otherwise get every
 * request of an idle pool).
 *
 * In-flight counts are this worker's only: a pick increments, release()
 * decrements. Workers do not see each other's load; with SO_REUSEPORT each
 * worker sees a fair share of the traffic, which keeps the sum balanced too,
 * and no counter is shared between CPUs on the hot path. */
#include <stdlib.h>

#include "core/common.h"
#include "lb/balancer.h"

struct lc_state {
    struct lb_inflight inflight;
    size_t next; /* where the next scan starts */
};

static void *lc_init(const struct conf_upstream *up)
{
    struct lc_state *st = xcalloc(1, sizeof(*st));
    lb_inflight_init(&st->inflight, up->n_servers);
    return st;
}

static const struct conf_server *lc_pick_tier(void *state, const struct conf_upstream *up,
                                              const struct lb_pick_ctx *ctx, bool backup)
{
    struct lc_state *st = state;
    size_t n = up->n_servers;
    size_t best = SIZE_MAX;

    if (!n)
        return NULL;
    for (size_t k = 0, i = st->next % n; k < n; k++, i = (i + 1 == n) ? 0 : i + 1) {
        const struct conf_server *s = &up->servers[i];
        if (s->backup != backup || !lb_eligible(up, ctx, i))
            continue;
        if (best == SIZE_MAX) {
            best = i;
            continue;
        }
        uint64_t lhs = (uint64_t)st->inflight.n[i] * up->servers[best].weight;
        uint64_t rhs = (uint64_t)st->inflight.n[best] * s->weight;
        if (lhs < rhs)
            best = i;
    }
    if (best == SIZE_MAX)
        return NULL;
    st->next = best + 1;
    return &up->servers[best];
}

static const struct conf_server *lc_pick(void *state, const struct conf_upstream *up,
                                         const struct lb_pick_ctx *ctx)
{
    struct lc_state *st = state;
    const struct conf_server *s = lb_pick_tiered(lc_pick_tier, state, up, ctx);
    if (s)
        lb_inflight_acquire(&st->inflight, s);
    return s;
}

static void lc_release(void *state, const struct conf_server *s)
{
    struct lc_state *st = state;
    lb_inflight_release(&st->inflight, s);
}

static void lc_destroy(void *state)
{
    struct lc_state *st = state;
    if (!st)
        return;
    lb_inflight_free(&st->inflight);
    free(st);
}

const struct balancer_ops lb_least_conn_ops = {
    .name = "least_conn",
    .init = lc_init,
    .pick = lc_pick,
    .release = lc_release,
    .destroy = lc_destroy,
};
