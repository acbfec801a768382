/* Unit tests: weighted power of two choices (lb_random.c). */
#include <criterion/criterion.h>

#include "lb_test.h"

#define RND (&lb_random_ops)

Test(lb_random, never_down_or_tried)
{
    struct conf_upstream *up = t_upstream(5, NULL, NULL);
    void *st = RND->init(up);
    uint8_t tried[1] = {0};
    struct lb_pick_ctx ctx = {.now_ms = 1, .tried = tried};
    t_down(up, 1);
    atomic_store(&up->servers[3].state->down_until_ms, 100);
    lb_set_tried(tried, 4);
    int count[5] = {0};
    for (int k = 0; k < 5000; k++)
        count[t_pick_release(RND, st, up, &ctx)]++;
    cr_assert_eq(count[1] + count[3] + count[4], 0);
    cr_assert(count[0] > 2000 && count[2] > 2000, "%d %d", count[0], count[2]);
    /* Single eligible server: always it. */
    lb_set_tried(tried, 0);
    for (int k = 0; k < 100; k++)
        cr_assert_eq(t_pick_release(RND, st, up, &ctx), 2);
    lb_set_tried(tried, 2);
    cr_assert_null(RND->pick(st, up, &ctx));
    RND->destroy(st);
    t_upstream_free(up);
}

Test(lb_random, loaded_server_gets_fewer)
{
    struct conf_upstream *up = t_upstream(4, NULL, NULL);
    void *st = RND->init(up);
    lb_random_seed(st, 12345);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    /* Put 50 requests in flight on server 0: force them with tried masks. */
    uint8_t only0[1] = {0x0e}; /* 1, 2, 3 tried */
    ctx.tried = only0;
    for (int k = 0; k < 50; k++)
        cr_assert_eq(t_idx(up, RND->pick(st, up, &ctx)), 0);
    ctx.tried = NULL;
    int count[4] = {0};
    for (int k = 0; k < 4000; k++)
        count[t_pick_release(RND, st, up, &ctx)]++;
    /* With two choices the loaded server wins only when drawn twice, which
     * cannot happen (distinct draws): it gets nothing while others are idle. */
    cr_assert_eq(count[0], 0, "%d", count[0]);
    for (int s = 1; s < 4; s++)
        cr_assert(count[s] > 1000, "server %d: %d", s, count[s]);
    RND->destroy(st);
    t_upstream_free(up);
}

Test(lb_random, balances_without_release)
{
    struct conf_upstream *up = t_upstream(4, NULL, NULL);
    void *st = RND->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    int count[4] = {0};
    for (int k = 0; k < 4000; k++)
        count[t_idx(up, RND->pick(st, up, &ctx))]++;
    /* Two choices keep the in-flight counts tight (plain random would spread
     * by ~sqrt(1000) = 30). */
    for (int s = 0; s < 4; s++)
        cr_assert(count[s] >= 990 && count[s] <= 1010, "server %d: %d", s, count[s]);
    RND->destroy(st);
    t_upstream_free(up);
}

Test(lb_random, weights_bias)
{
    unsigned w[] = {1, 3};
    struct conf_upstream *up = t_upstream(2, w, NULL);
    void *st = RND->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    int count[2] = {0};
    /* Unreleased: in-flight / weight is levelled, so 1:3. */
    for (int k = 0; k < 4000; k++)
        count[t_idx(up, RND->pick(st, up, &ctx))]++;
    cr_assert(count[0] > 950 && count[0] < 1050, "%d", count[0]);
    RND->destroy(st);

    /* Three servers idle (released at once): picks are the first draw, which
     * is weighted. Weights 1:2:5. */
    unsigned w3[] = {1, 2, 5};
    struct conf_upstream *up3 = t_upstream(3, w3, NULL);
    st = RND->init(up3);
    int c3[3] = {0};
    for (int k = 0; k < 16000; k++)
        c3[t_pick_release(RND, st, up3, &ctx)]++;
    /* P(first draw = i) = w_i / 8. */
    cr_assert(c3[0] > 1700 && c3[0] < 2300, "%d", c3[0]);
    cr_assert(c3[1] > 3500 && c3[1] < 4500, "%d", c3[1]);
    cr_assert(c3[2] > 9400 && c3[2] < 10600, "%d", c3[2]);
    RND->destroy(st);
    t_upstream_free(up);
    t_upstream_free(up3);
}

Test(lb_random, states_seeded_differently)
{
    struct conf_upstream *up = t_upstream(8, NULL, NULL);
    void *a = RND->init(up), *b = RND->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    int same = 0;
    for (int k = 0; k < 64; k++)
        same += t_pick_release(RND, a, up, &ctx) == t_pick_release(RND, b, up, &ctx);
    cr_assert(same < 40, "%d of 64 identical picks", same);
    /* And reseeding makes them identical. */
    lb_random_seed(a, 7);
    lb_random_seed(b, 7);
    for (int k = 0; k < 64; k++)
        cr_assert_eq(t_pick_release(RND, a, up, &ctx), t_pick_release(RND, b, up, &ctx));
    RND->destroy(a);
    RND->destroy(b);
    t_upstream_free(up);
}
