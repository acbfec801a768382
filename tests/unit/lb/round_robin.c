/* Unit tests: smooth weighted round-robin (lb_round_robin.c). */
#include <criterion/criterion.h>

#include "lb_test.h"

static void rr_expect(const unsigned *w, size_t n, const char *expected)
{
    struct conf_upstream *up = t_upstream(n, w, NULL);
    const struct balancer_ops *ops = balancer_for(LB_ROUND_ROBIN);
    void *st = ops->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1000};
    size_t len = strlen(expected);
    char got[64] = {0};

    /* Twice the cycle: the sequence must repeat exactly. */
    for (size_t k = 0; k < 2 * len && k < sizeof(got) - 1; k++)
        got[k] = (char)('a' + t_pick_release(ops, st, up, &ctx));
    char want[64] = {0};
    snprintf(want, sizeof(want), "%s%s", expected, expected);
    cr_assert_str_eq(got, want);
    ops->destroy(st);
    t_upstream_free(up);
}

Test(lb_rr, name_and_table)
{
    cr_assert_eq(balancer_for(LB_ROUND_ROBIN), &lb_round_robin_ops);
    cr_assert_str_eq(lb_round_robin_ops.name, "round_robin");
}

Test(lb_rr, smooth_3_1)
{
    rr_expect((unsigned[]){3, 1}, 2, "aaba");
}

Test(lb_rr, smooth_5_1_1)
{
    /* nginx's documented sequence for weights 5, 1, 1. */
    rr_expect((unsigned[]){5, 1, 1}, 3, "aabacaa");
}

Test(lb_rr, smooth_1_3_lighter_first)
{
    rr_expect((unsigned[]){1, 3}, 2, "babb"); /* ties go to the lower index */
}

Test(lb_rr, equal_weights_rotate)
{
    rr_expect((unsigned[]){1, 1, 1, 1}, 4, "abcd");
    rr_expect((unsigned[]){2, 2, 2}, 3, "abc");
}

Test(lb_rr, weights_exact_over_cycle)
{
    unsigned w[] = {7, 3, 2, 1};
    struct conf_upstream *up = t_upstream(4, w, NULL);
    void *st = lb_round_robin_ops.init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    int count[4] = {0};
    for (int k = 0; k < 13 * 10; k++)
        count[t_pick_release(&lb_round_robin_ops, st, up, &ctx)]++;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(count[i], (int)w[i] * 10, "server %d: %d picks", i, count[i]);
    lb_round_robin_ops.destroy(st);
    t_upstream_free(up);
}

Test(lb_rr, down_server_skipped)
{
    struct conf_upstream *up = t_upstream(3, NULL, NULL);
    void *st = lb_round_robin_ops.init(up);
    struct lb_pick_ctx ctx = {.now_ms = 5000};
    t_down(up, 1);
    for (int k = 0; k < 10; k++) {
        int i = t_pick_release(&lb_round_robin_ops, st, up, &ctx);
        cr_assert_neq(i, 1);
        cr_assert_eq(i, k % 2 == 0 ? 0 : 2);
    }
    /* Passive failure (down_until in the future) is skipped too, and the
     * server is back once the time has passed. */
    t_up(up, 1);
    atomic_store(&up->servers[0].state->down_until_ms, 6000);
    for (int k = 0; k < 10; k++)
        cr_assert_neq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), 0);
    ctx.now_ms = 6000;
    int seen0 = 0;
    for (int k = 0; k < 3; k++)
        seen0 += t_pick_release(&lb_round_robin_ops, st, up, &ctx) == 0;
    cr_assert_eq(seen0, 1);
    lb_round_robin_ops.destroy(st);
    t_upstream_free(up);
}

Test(lb_rr, draining_skipped)
{
    struct conf_upstream *up = t_upstream(2, NULL, NULL);
    void *st = lb_round_robin_ops.init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    atomic_store(&up->servers[0].state->draining, true);
    for (int k = 0; k < 5; k++)
        cr_assert_eq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), 1);
    lb_round_robin_ops.destroy(st);
    t_upstream_free(up);
}

Test(lb_rr, tried_skipped)
{
    struct conf_upstream *up = t_upstream(3, NULL, NULL);
    void *st = lb_round_robin_ops.init(up);
    uint8_t tried[1] = {0};
    struct lb_pick_ctx ctx = {.now_ms = 1, .tried = tried};
    int first = t_pick_release(&lb_round_robin_ops, st, up, &ctx);
    cr_assert(first >= 0 && first < 8);
    lb_set_tried(tried, (unsigned)first);
    int second = t_pick_release(&lb_round_robin_ops, st, up, &ctx);
    cr_assert_neq(second, first);
    cr_assert(second >= 0 && second < 8);
    lb_set_tried(tried, (unsigned)second);
    int third = t_pick_release(&lb_round_robin_ops, st, up, &ctx);
    cr_assert(third != first && third != second && third >= 0);
    cr_assert(third >= 0 && third < 8);
    lb_set_tried(tried, (unsigned)third);
    cr_assert_eq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), -1);
    lb_round_robin_ops.destroy(st);
    t_upstream_free(up);
}

Test(lb_rr, backup_only_when_primaries_down)
{
    bool backup[] = {false, false, true};
    struct conf_upstream *up = t_upstream(3, NULL, backup);
    void *st = lb_round_robin_ops.init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    for (int k = 0; k < 20; k++)
        cr_assert_neq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), 2);
    t_down(up, 0);
    for (int k = 0; k < 5; k++)
        cr_assert_eq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), 1);
    t_down(up, 1);
    for (int k = 0; k < 5; k++)
        cr_assert_eq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), 2);
    t_up(up, 1);
    cr_assert_eq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), 1);
    /* A tried primary also lets the backup in. */
    uint8_t tried[1] = {0};
    lb_set_tried(tried, 1);
    ctx.tried = tried;
    cr_assert_eq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), 2);
    lb_round_robin_ops.destroy(st);
    t_upstream_free(up);
}

Test(lb_rr, null_when_all_down)
{
    bool backup[] = {false, true};
    struct conf_upstream *up = t_upstream(2, NULL, backup);
    void *st = lb_round_robin_ops.init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    t_down(up, 0);
    t_down(up, 1);
    cr_assert_null(lb_round_robin_ops.pick(st, up, &ctx));
    lb_round_robin_ops.destroy(st);
    t_upstream_free(up);
}

Test(lb_rr, release_is_safe)
{
    struct conf_upstream *up = t_upstream(2, NULL, NULL);
    void *st = lb_round_robin_ops.init(up);
    /* Unpaired release must not crash or corrupt later picks. */
    lb_round_robin_ops.release(st, &up->servers[1]);
    struct lb_pick_ctx ctx = {.now_ms = 1};
    cr_assert_eq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), 0);
    cr_assert_eq(t_pick_release(&lb_round_robin_ops, st, up, &ctx), 1);
    lb_round_robin_ops.destroy(st);
    t_upstream_free(up);
}
