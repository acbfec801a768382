/* lb_least_conn.c - least in-flight requests relative to weight.
 *
 * Picks the eligible server with the smallest (inflight + 1) / weight, with
 * the effective weight (lb_weight: slow start), compared by
 * cross-multiplication so no division and no rounding. The scan starts one past the previous winner and
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

/* (inflight_i + 1) / w_i < (inflight_b + 1) / w_b, without division. The
 * +1 (the request being placed) makes a slow-starting server with a tiny
 * weight look loaded even when idle; for equal weights it changes nothing. */
static bool lhs_lt(const struct lc_state *st, size_t i, uint64_t wi, size_t b, uint64_t wb)
{
    unsigned __int128 lhs = (unsigned __int128)(st->inflight.n[i] + 1ull) * wb;
    unsigned __int128 rhs = (unsigned __int128)(st->inflight.n[b] + 1ull) * wi;
    return lhs < rhs;
}

static const struct conf_server *lc_pick_tier(void *state, const struct conf_upstream *up,
                                              const struct lb_pick_ctx *ctx, bool backup)
{
    struct lc_state *st = state;
    size_t n = up->n_servers;
    size_t best = SIZE_MAX;
    uint64_t best_w = 0;

    if (!n)
        return NULL;
    for (size_t k = 0, i = st->next % n; k < n; k++, i = (i + 1 == n) ? 0 : i + 1) {
        const struct conf_server *s = &up->servers[i];
        if (s->backup != backup || !lb_eligible(up, ctx, i))
            continue;
        if (best == SIZE_MAX) {
            best = i;
            best_w = lb_weight(s, ctx);
            continue;
        }
        if (lhs_lt(st, i, lb_weight(s, ctx), best, best_w))
            best = i;
        else
            continue;
        best_w = lb_weight(s, ctx);
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
