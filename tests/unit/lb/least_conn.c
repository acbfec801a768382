/* Unit tests: least in-flight per weight (lb_least_conn.c). */
#include <criterion/criterion.h>

#include "lb_test.h"

#define LC (&lb_least_conn_ops)

/* Puts `n` requests in flight on server `idx` (others masked as tried). */
static void lc_load(void *st, const struct conf_upstream *up, unsigned idx, int n)
{
    uint8_t tried[1] = {(uint8_t)(0xffu & ~(1u << idx))};
    struct lb_pick_ctx ctx = {.now_ms = 1, .tried = tried};
    for (int k = 0; k < n; k++)
        cr_assert_eq(t_idx(up, LC->pick(st, up, &ctx)), (int)idx);
}

Test(lb_lc, picks_min_inflight)
{
    struct conf_upstream *up = t_upstream(3, NULL, NULL);
    void *st = LC->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    lc_load(st, up, 0, 3);
    lc_load(st, up, 1, 1);
    lc_load(st, up, 2, 2);
    /* Loads 3,1,2: server 1; then 3,2,2: 1 or 2; then the other one. */
    cr_assert_eq(t_idx(up, LC->pick(st, up, &ctx)), 1);
    int a = t_idx(up, LC->pick(st, up, &ctx));
    int b = t_idx(up, LC->pick(st, up, &ctx));
    cr_assert((a == 1 && b == 2) || (a == 2 && b == 1), "%d %d", a, b);
    /* Loads 3,3,3: a tie; release two on server 0 -> 1,3,3: server 0 twice. */
    LC->release(st, &up->servers[0]);
    LC->release(st, &up->servers[0]);
    cr_assert_eq(t_idx(up, LC->pick(st, up, &ctx)), 0);
    cr_assert_eq(t_idx(up, LC->pick(st, up, &ctx)), 0);
    LC->destroy(st);
    t_upstream_free(up);
}

Test(lb_lc, release_decrements)
{
    struct conf_upstream *up = t_upstream(2, NULL, NULL);
    void *st = LC->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    /* Load server 0 with 5, server 1 with 5. */
    for (int k = 0; k < 10; k++)
        LC->pick(st, up, &ctx);
    /* Releasing three on server 1 makes it the target for the next three. */
    for (int k = 0; k < 3; k++)
        LC->release(st, &up->servers[1]);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(t_idx(up, LC->pick(st, up, &ctx)), 1);
    /* Now 5,5 again: the next two picks split. */
    int a = t_idx(up, LC->pick(st, up, &ctx));
    int b = t_idx(up, LC->pick(st, up, &ctx));
    cr_assert_neq(a, b);
    LC->destroy(st);
    t_upstream_free(up);
}

Test(lb_lc, weights_respected)
{
    unsigned w[] = {3, 1};
    struct conf_upstream *up = t_upstream(2, w, NULL);
    void *st = LC->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    int count[2] = {0};
    for (int k = 0; k < 400; k++)
        count[t_idx(up, LC->pick(st, up, &ctx))]++; /* never released */
    /* in-flight / weight stays level: 300 and 100 (within one). */
    cr_assert(count[0] >= 299 && count[0] <= 301, "%d", count[0]);
    cr_assert(count[1] >= 99 && count[1] <= 101, "%d", count[1]);
    /* With 3 on the heavy and 1 on the light one in flight, equal ratios:
     * releasing one on the heavy one makes it strictly the least loaded. */
    LC->release(st, &up->servers[0]);
    cr_assert_eq(t_idx(up, LC->pick(st, up, &ctx)), 0);
    LC->destroy(st);
    t_upstream_free(up);
}

Test(lb_lc, ties_rotate)
{
    struct conf_upstream *up = t_upstream(4, NULL, NULL);
    void *st = LC->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    /* All idle: every pick is a tie, and the winner rotates. */
    for (int k = 0; k < 12; k++)
        cr_assert_eq(t_pick_release(LC, st, up, &ctx), k % 4);
    LC->destroy(st);
    t_upstream_free(up);
}

Test(lb_lc, down_tried_backup)
{
    bool backup[] = {false, false, true};
    struct conf_upstream *up = t_upstream(3, NULL, backup);
    void *st = LC->init(up);
    uint8_t tried[1] = {0};
    struct lb_pick_ctx ctx = {.now_ms = 1, .tried = tried};
    t_down(up, 0);
    for (int k = 0; k < 5; k++)
        cr_assert_eq(t_idx(up, LC->pick(st, up, &ctx)), 1); /* even though loaded */
    lb_set_tried(tried, 1);
    cr_assert_eq(t_idx(up, LC->pick(st, up, &ctx)), 2);
    t_down(up, 2);
    cr_assert_null(LC->pick(st, up, &ctx));
    LC->destroy(st);
    t_upstream_free(up);
}

Test(lb_lc, unpaired_release_does_not_wrap)
{
    struct conf_upstream *up = t_upstream(2, NULL, NULL);
    void *st = LC->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    LC->release(st, &up->servers[0]); /* 0 stays 0, not UINT32_MAX */
    int count[2] = {0};
    for (int k = 0; k < 10; k++)
        count[t_idx(up, LC->pick(st, up, &ctx))]++;
    cr_assert_eq(count[0], 5);
    cr_assert_eq(count[1], 5);
    LC->destroy(st);
    t_upstream_free(up);
}
