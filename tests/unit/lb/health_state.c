/* Unit tests: server state machines (lb/server.c): active-check rise/fall,
 * outlier ejection with backoff and max_ejected_percent, slow-start weights
 * and how every balancer honours them. */
#include <criterion/criterion.h>

#include "lb_test.h"

static struct server_state *S(struct conf_upstream *up, size_t i)
{
    return up->servers[i].state;
}

Test(health_state, rise_fall)
{
    struct conf_upstream *up = t_upstream(1, NULL, NULL);
    struct server_state *st = S(up, 0);
    /* Starts UP; two failures are not enough with fall 3. */
    cr_assert_eq(server_check_result(st, false, 2, 3, 1000), SERVER_SAME);
    cr_assert_eq(server_check_result(st, false, 2, 3, 2000), SERVER_SAME);
    cr_assert(server_usable(&up->servers[0], 2000));
    /* A success in between restarts the count. */
    cr_assert_eq(server_check_result(st, true, 2, 3, 3000), SERVER_SAME);
    cr_assert_eq(server_check_result(st, false, 2, 3, 4000), SERVER_SAME);
    cr_assert_eq(server_check_result(st, false, 2, 3, 5000), SERVER_SAME);
    cr_assert_eq(server_check_result(st, false, 2, 3, 6000), SERVER_WENT_DOWN);
    cr_assert_not(server_usable(&up->servers[0], 6000));
    cr_assert_str_eq(server_state_name(&up->servers[0], 6000), "DOWN");
    cr_assert_eq(server_check_result(st, false, 2, 3, 7000), SERVER_SAME);
    /* Rise 2: one success is not enough, a failure restarts it. */
    cr_assert_eq(server_check_result(st, true, 2, 3, 8000), SERVER_SAME);
    cr_assert_eq(server_check_result(st, false, 2, 3, 9000), SERVER_SAME);
    cr_assert_eq(server_check_result(st, true, 2, 3, 10000), SERVER_SAME);
    cr_assert_not(server_usable(&up->servers[0], 10000));
    cr_assert_eq(server_check_result(st, true, 2, 3, 11000), SERVER_WENT_UP);
    cr_assert(server_usable(&up->servers[0], 11000));
    cr_assert_eq(atomic_load(&st->up_since_ms), 11000);
    cr_assert_eq(atomic_load(&st->n_went_down), 1);
    cr_assert_eq(atomic_load(&st->n_went_up), 1);
    cr_assert_eq(atomic_load(&st->n_checks), 11);
    cr_assert_eq(atomic_load(&st->n_checks_failed), 7);
    t_upstream_free(up);
}

Test(health_state, success_clears_passive_marks)
{
    struct conf_upstream *up = t_upstream(2, NULL, NULL);
    server_mark_failed(&up->servers[0], 1000);
    cr_assert_not(server_usable(&up->servers[0], 1000));
    cr_assert_eq(server_check_result(S(up, 0), true, 2, 3, 1500), SERVER_SAME);
    cr_assert(server_usable(&up->servers[0], 1500));
    t_upstream_free(up);
}

static void passive(struct conf_upstream *up, unsigned n, uint64_t eject, unsigned pct)
{
    up->passive.consecutive_failures = n;
    up->passive.eject_ms = eject;
    up->passive.max_ejected_percent = pct;
}

Test(health_state, ejection_after_consecutive_failures)
{
    struct conf_upstream *up = t_upstream(4, NULL, NULL);
    passive(up, 3, 1000, 50);
    const struct conf_server *s = &up->servers[0];
    cr_assert_not(server_outlier_failure(s, 100));
    cr_assert_not(server_outlier_failure(s, 100));
    server_outlier_success(s); /* not consecutive any more */
    cr_assert_not(server_outlier_failure(s, 100));
    cr_assert_not(server_outlier_failure(s, 100));
    cr_assert(server_outlier_failure(s, 100));
    cr_assert_not(server_usable(s, 100));
    cr_assert_str_eq(server_state_name(s, 100), "EJECTED");
    cr_assert_not(server_usable(s, 1099));
    cr_assert(server_usable(s, 1100)); /* the interval passed */
    cr_assert_eq(atomic_load(&S(up, 0)->n_ejections), 1);
    t_upstream_free(up);
}

Test(health_state, ejection_backoff_grows_and_resets)
{
    struct conf_upstream *up = t_upstream(2, NULL, NULL);
    passive(up, 1, 1000, 50);
    const struct conf_server *s = &up->servers[0];
    struct server_state *st = S(up, 0);
    cr_assert(server_outlier_failure(s, 0));
    cr_assert_eq(atomic_load(&st->ejected_until_ms), 1000);
    /* Fails again right after it returned: 2x, then 4x, 8x, 16x, capped. */
    uint64_t now = 1000, len = 2000;
    for (int k = 0; k < 6; k++) {
        cr_assert(server_outlier_failure(s, now));
        cr_assert_eq(atomic_load(&st->ejected_until_ms), now + len, "k=%d", k);
        now += len;
        if (len < (1000u << SERVER_EJECT_MAX_LEVEL))
            len *= 2;
    }
    cr_assert_eq(atomic_load(&st->eject_level), SERVER_EJECT_MAX_LEVEL);
    /* A long quiet time: back to the base interval. */
    now += 100000;
    cr_assert(server_outlier_failure(s, now));
    cr_assert_eq(atomic_load(&st->ejected_until_ms), now + 1000);
    t_upstream_free(up);
}

Test(health_state, max_ejected_percent)
{
    struct conf_upstream *up = t_upstream(4, NULL, NULL);
    passive(up, 1, 10000, 50); /* at most 2 of 4 */
    cr_assert(server_outlier_failure(&up->servers[0], 10));
    cr_assert(server_outlier_failure(&up->servers[1], 10));
    cr_assert_not(server_outlier_failure(&up->servers[2], 10));
    cr_assert(server_usable(&up->servers[2], 10));
    /* Once one returns, another may go. */
    cr_assert(server_outlier_failure(&up->servers[2], 10011));
    t_upstream_free(up);

    /* A group of one is never ejected under 100%. */
    up = t_upstream(1, NULL, NULL);
    passive(up, 1, 10000, 50);
    cr_assert_not(server_outlier_failure(&up->servers[0], 10));
    cr_assert(server_usable(&up->servers[0], 10));
    passive(up, 1, 10000, 100);
    cr_assert(server_outlier_failure(&up->servers[0], 10));
    t_upstream_free(up);

    /* Off: never ejected. */
    up = t_upstream(3, NULL, NULL);
    for (int k = 0; k < 100; k++)
        cr_assert_not(server_outlier_failure(&up->servers[0], 10));
    t_upstream_free(up);
}

Test(health_state, check_success_ends_ejection)
{
    struct conf_upstream *up = t_upstream(2, NULL, NULL);
    passive(up, 1, 30000, 50);
    up->slow_start_ms = 1000;
    cr_assert(server_outlier_failure(&up->servers[0], 100));
    cr_assert_not(server_usable(&up->servers[0], 200));
    server_check_result(S(up, 0), true, 2, 3, 200);
    cr_assert(server_usable(&up->servers[0], 200));
    /* ... and it slow-starts from then. */
    cr_assert_lt(server_effective_weight(&up->servers[0], 700), SERVER_WEIGHT_SCALE);
    cr_assert_eq(server_effective_weight(&up->servers[0], 1200), SERVER_WEIGHT_SCALE);
    t_upstream_free(up);
}

Test(health_state, slow_start_weights)
{
    unsigned w[] = {4, 4};
    struct conf_upstream *up = t_upstream(2, w, NULL);
    const struct conf_server *s = &up->servers[0];
    const uint64_t full = 4 * SERVER_WEIGHT_SCALE;
    /* Off, or never came back: full weight. */
    cr_assert_eq(server_effective_weight(s, 5000), full);
    up->slow_start_ms = 10000;
    cr_assert_eq(server_effective_weight(s, 5000), full);
    /* Came UP at 1000: linear ramp from ~0. */
    atomic_store(&S(up, 0)->up_since_ms, 1000);
    cr_assert_eq(server_effective_weight(s, 1000), 1);
    cr_assert_eq(server_effective_weight(s, 3500), full / 4);
    cr_assert_eq(server_effective_weight(s, 6000), full / 2);
    cr_assert_eq(server_effective_weight(s, 10999), full * 9999 / 10000);
    cr_assert_eq(server_effective_weight(s, 11000), full);
    /* An ejection that ended restarts the ramp. */
    atomic_store(&S(up, 0)->ejected_until_ms, 20000);
    cr_assert_eq(server_effective_weight(s, 25000), full / 2);
    t_upstream_free(up);
}

/* During slow start each algorithm sends the returning server a share that
 * grows with time. */
static double share(enum lb_algo algo, uint64_t now)
{
    struct conf_upstream *up = t_upstream(4, NULL, NULL);
    up->slow_start_ms = 10000;
    atomic_store(&up->servers[0].state->up_since_ms, 1000);
    const struct balancer_ops *ops = balancer_for(algo);
    void *st = ops->init(up);
    int hits = 0, n = 8000;
    for (int k = 0; k < n; k++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "k%d", k);
        struct lb_pick_ctx ctx = {.now_ms = now, .key = str_make(key, (size_t)len)};
        const struct conf_server *s = ops->pick(st, up, &ctx);
        if (s == &up->servers[0])
            hits++;
        /* least_conn: keep a little load on everyone so weights matter. */
        if (algo != LB_LEAST_CONN || k % 4 == 3)
            ops->release(st, s);
    }
    ops->destroy(st);
    t_upstream_free(up);
    return (double)hits / n;
}

Test(health_state, slow_start_every_algorithm)
{
    enum lb_algo algos[] = {LB_ROUND_ROBIN, LB_RANDOM, LB_IP_HASH, LB_HASH, LB_LEAST_CONN};
    for (size_t a = 0; a < ARRAY_SIZE(algos); a++) {
        double early = share(algos[a], 1500);  /* 5% of its weight */
        double mid = share(algos[a], 6000);    /* 50% */
        double late = share(algos[a], 20000);  /* full: 1/4 of the traffic */
        cr_assert_lt(early, 0.05, "algo %d early %f", algos[a], early);
        cr_assert_lt(early, mid, "algo %d %f %f", algos[a], early, mid);
        cr_assert_lt(mid, late, "algo %d %f %f", algos[a], mid, late);
        cr_assert(late > 0.2 && late < 0.3, "algo %d late %f", algos[a], late);
    }
}
