/* Unit tests: shared balancer pieces (balancer.c): the table and lb_hash64. */
#include <criterion/criterion.h>

#include "lb_test.h"

Test(lb_common, table_complete)
{
    cr_assert_eq(balancer_for(LB_ROUND_ROBIN), &lb_round_robin_ops);
    cr_assert_eq(balancer_for(LB_LEAST_CONN), &lb_least_conn_ops);
    cr_assert_eq(balancer_for(LB_IP_HASH), &lb_ip_hash_ops);
    cr_assert_eq(balancer_for(LB_RANDOM), &lb_random_ops);
    cr_assert_eq(balancer_for(LB_HASH), &lb_hash_ops);
    for (int a = LB_ROUND_ROBIN; a <= LB_HASH; a++) {
        const struct balancer_ops *o = balancer_for((enum lb_algo)a);
        cr_assert(o->name && o->init && o->pick && o->release && o->destroy);
    }
}

Test(lb_common, hash64_deterministic_and_seeded)
{
    const char *s = "hello, world";
    cr_assert_eq(lb_hash64(s, strlen(s), 0), lb_hash64(s, strlen(s), 0));
    cr_assert_neq(lb_hash64(s, strlen(s), 0), lb_hash64(s, strlen(s), 1));
    cr_assert_neq(lb_hash64(s, strlen(s), 0), lb_hash64(s, strlen(s) - 1, 0));
    cr_assert_neq(lb_hash64("", 0, 0), lb_hash64("", 0, 1));
}

/* Every length 0..200 (all code paths), single-bit flips: each output bit
 * flips about half the time (avalanche). */
Test(lb_common, hash64_avalanche)
{
    uint8_t buf[200];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    long flips = 0, trials = 0;
    for (size_t len = 1; len <= sizeof(buf); len++) {
        uint64_t h0 = lb_hash64(buf, len, 42);
        for (size_t bit = 0; bit < len * 8; bit += 3) {
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            uint64_t h1 = lb_hash64(buf, len, 42);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            cr_assert_neq(h0, h1, "len %zu bit %zu", len, bit);
            flips += __builtin_popcountll(h0 ^ h1);
            trials++;
        }
    }
    double avg = (double)flips / (double)trials;
    cr_assert(avg > 31.0 && avg < 33.0, "average flipped bits %f", avg);
}

/* Sequential small keys (like IPv4 addresses) spread over buckets. */
Test(lb_common, hash64_buckets)
{
    int bucket[16] = {0};
    for (uint32_t i = 0; i < 160000; i++)
        bucket[lb_hash64(&i, sizeof(i), 0) >> 60]++;
    for (int b = 0; b < 16; b++)
        cr_assert(bucket[b] > 9500 && bucket[b] < 10500, "bucket %d: %d", b, bucket[b]);
}

Test(lb_common, eligible_and_tiered)
{
    struct conf_upstream *up = t_upstream(10, NULL, NULL);
    uint8_t tried[2] = {0};
    struct lb_pick_ctx ctx = {.now_ms = 100, .tried = tried};
    lb_set_tried(tried, 9);
    cr_assert(lb_tried(&ctx, 9));
    cr_assert_not(lb_tried(&ctx, 8));
    cr_assert_not(lb_eligible(up, &ctx, 9));
    cr_assert(lb_eligible(up, &ctx, 8));
    atomic_store(&up->servers[8].state->down_until_ms, 101);
    cr_assert_not(lb_eligible(up, &ctx, 8));
    ctx.now_ms = 101;
    cr_assert(lb_eligible(up, &ctx, 8));
    t_upstream_free(up);
}

/* Every algorithm: a pool of backups alone is used; an empty pool gives NULL. */
Test(lb_common, all_algorithms_backup_and_empty)
{
    for (int a = LB_ROUND_ROBIN; a <= LB_HASH; a++) {
        const struct balancer_ops *o = balancer_for((enum lb_algo)a);
        bool backup[] = {false, false, true, true};
        struct conf_upstream *up = t_upstream(4, NULL, backup);
        void *st = o->init(up);
        struct lb_pick_ctx ctx = {.now_ms = 1, .key = STR_LIT("k")};
        for (int k = 0; k < 50; k++) {
            int i = t_pick_release(o, st, up, &ctx);
            cr_assert(i == 0 || i == 1, "%s picked %d", o->name, i);
        }
        t_down(up, 0);
        t_down(up, 1);
        for (int k = 0; k < 50; k++) {
            int i = t_pick_release(o, st, up, &ctx);
            cr_assert(i == 2 || i == 3, "%s picked %d", o->name, i);
        }
        t_down(up, 2);
        t_down(up, 3);
        cr_assert_null(o->pick(st, up, &ctx), "%s", o->name);
        o->destroy(st);
        t_upstream_free(up);

        struct conf_upstream *empty = t_upstream(0, NULL, NULL);
        st = o->init(empty);
        cr_assert_null(o->pick(st, empty, &ctx), "%s", o->name);
        o->destroy(st);
        t_upstream_free(empty);
    }
}
