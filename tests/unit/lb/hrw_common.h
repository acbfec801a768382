/* hrw_common.h - the consistent-hashing checks shared by the ip_hash and
 * hash tests (the algorithms are the same, only the keys differ). Each test
 * file provides t_key(i, buf) -> a struct str key for integer i. */
#ifndef PORTICO_TESTS_LB_HRW_COMMON_H
#define PORTICO_TESTS_LB_HRW_COMMON_H

#include <criterion/criterion.h>

#include "lb_test.h"

#define HRW_KEYS 10000

struct t_keybuf {
    char b[64];
};

static struct str t_key(unsigned i, struct t_keybuf *kb);

static inline int hrw_pick_key(const struct balancer_ops *o, void *st,
                               const struct conf_upstream *up, unsigned i, uint64_t now)
{
    struct t_keybuf kb;
    struct lb_pick_ctx ctx = {.now_ms = now, .key = t_key(i, &kb)};
    return t_pick_release(o, st, up, &ctx);
}

static inline void hrw_check_stable(const struct balancer_ops *o)
{
    struct conf_upstream *up = t_upstream(5, NULL, NULL);
    void *st = o->init(up);
    void *st2 = o->init(up); /* another worker: same answers */
    for (unsigned i = 0; i < 500; i++) {
        int a = hrw_pick_key(o, st, up, i, 1);
        cr_assert(a >= 0);
        cr_assert_eq(hrw_pick_key(o, st, up, i, 1), a);
        cr_assert_eq(hrw_pick_key(o, st2, up, i, 1), a);
    }
    o->destroy(st);
    o->destroy(st2);
    t_upstream_free(up);
}

static inline void hrw_check_even(const struct balancer_ops *o)
{
    struct conf_upstream *up = t_upstream(4, NULL, NULL);
    void *st = o->init(up);
    int count[4] = {0};
    for (unsigned i = 0; i < HRW_KEYS; i++)
        count[hrw_pick_key(o, st, up, i, 1)]++;
    double mean = HRW_KEYS / 4.0;
    for (int s = 0; s < 4; s++)
        cr_assert(count[s] > mean * 0.8 && count[s] < mean * 1.2, "server %d: %d", s,
                  count[s]);
    o->destroy(st);
    t_upstream_free(up);
}

/* Removing server 2 of 5 (a new snapshot with 4 servers at the same
 * addresses): only the keys server 2 had move. */
static inline void hrw_check_removal(const struct balancer_ops *o)
{
    struct conf_upstream *up5 = t_upstream(5, NULL, NULL);
    struct conf_upstream *up4 = t_upstream(5, NULL, NULL);
    /* Drop server 2 from up4, keeping the others' addresses. */
    free(up4->servers[2].address);
    server_state_free(up4->servers[2].state);
    memmove(&up4->servers[2], &up4->servers[3], 2 * sizeof(up4->servers[0]));
    up4->n_servers = 4;
    for (unsigned i = 0; i < 4; i++)
        up4->servers[i].index = i;
    void *s5 = o->init(up5), *s4 = o->init(up4);
    int moved = 0;
    for (unsigned i = 0; i < HRW_KEYS; i++) {
        int a = hrw_pick_key(o, s5, up5, i, 1);
        int b = hrw_pick_key(o, s4, up4, i, 1);
        const char *aa = up5->servers[a].address, *bb = up4->servers[b].address;
        if (a != 2)
            cr_assert_str_eq(aa, bb, "key %u moved from %s to %s", i, aa, bb);
        else
            moved++;
    }
    cr_assert(moved > HRW_KEYS / 5 * 0.8 && moved < HRW_KEYS / 5 * 1.2, "moved %d", moved);
    /* Free: up4 holds 4 live servers after the memmove. */
    o->destroy(s5);
    o->destroy(s4);
    t_upstream_free(up5);
    t_upstream_free(up4);
}

/* A down server's keys go elsewhere and come back when it is up; the others'
 * keys never move. */
static inline void hrw_check_down_and_back(const struct balancer_ops *o)
{
    struct conf_upstream *up = t_upstream(5, NULL, NULL);
    void *st = o->init(up);
    int before[HRW_KEYS];
    for (unsigned i = 0; i < HRW_KEYS; i++)
        before[i] = hrw_pick_key(o, st, up, i, 1);
    t_down(up, 3);
    int moved = 0;
    for (unsigned i = 0; i < HRW_KEYS; i++) {
        int now = hrw_pick_key(o, st, up, i, 1);
        cr_assert_neq(now, 3);
        if (before[i] == 3)
            moved++;
        else
            cr_assert_eq(now, before[i], "key %u", i);
    }
    cr_assert(moved > 1500 && moved < 2500, "moved %d", moved);
    /* Passive failure window: same effect until it expires. */
    t_up(up, 3);
    atomic_store(&up->servers[3].state->down_until_ms, 50);
    for (unsigned i = 0; i < 200; i++)
        cr_assert_neq(hrw_pick_key(o, st, up, i, 49), 3);
    for (unsigned i = 0; i < HRW_KEYS; i++)
        cr_assert_eq(hrw_pick_key(o, st, up, i, 50), before[i], "key %u", i);
    o->destroy(st);
    t_upstream_free(up);
}

static inline void hrw_check_tried(const struct balancer_ops *o)
{
    struct conf_upstream *up = t_upstream(3, NULL, NULL);
    void *st = o->init(up);
    for (unsigned i = 0; i < 100; i++) {
        struct t_keybuf kb;
        uint8_t tried[1] = {0};
        struct lb_pick_ctx ctx = {.now_ms = 1, .key = t_key(i, &kb), .tried = tried};
        int a = t_pick_release(o, st, up, &ctx);
        lb_set_tried(tried, (unsigned)a);
        int b = t_pick_release(o, st, up, &ctx);
        cr_assert(b >= 0 && b != a);
        lb_set_tried(tried, (unsigned)b);
        int c = t_pick_release(o, st, up, &ctx);
        cr_assert(c >= 0 && c != a && c != b);
        lb_set_tried(tried, (unsigned)c);
        cr_assert_eq(t_pick_release(o, st, up, &ctx), -1);
    }
    o->destroy(st);
    t_upstream_free(up);
}

static inline void hrw_check_weights(const struct balancer_ops *o)
{
    unsigned w[] = {1, 2, 3, 4};
    struct conf_upstream *up = t_upstream(4, w, NULL);
    void *st = o->init(up);
    int count[4] = {0};
    for (unsigned i = 0; i < HRW_KEYS; i++)
        count[hrw_pick_key(o, st, up, i, 1)]++;
    for (int s = 0; s < 4; s++) {
        double want = HRW_KEYS * w[s] / 10.0;
        cr_assert(count[s] > want * 0.85 && count[s] < want * 1.15, "server %d: %d (want %.0f)",
                  s, count[s], want);
    }
    o->destroy(st);
    t_upstream_free(up);
}

static inline void hrw_check_backup(const struct balancer_ops *o)
{
    bool backup[] = {false, false, true, true};
    struct conf_upstream *up = t_upstream(4, NULL, backup);
    void *st = o->init(up);
    int count[4] = {0};
    for (unsigned i = 0; i < 2000; i++)
        count[hrw_pick_key(o, st, up, i, 1)]++;
    cr_assert_eq(count[2] + count[3], 0);
    cr_assert(count[0] > 0 && count[1] > 0);
    t_down(up, 0);
    t_down(up, 1);
    int b[2] = {0};
    for (unsigned i = 0; i < 2000; i++) {
        int s = hrw_pick_key(o, st, up, i, 1);
        cr_assert(s == 2 || s == 3);
        b[s - 2]++;
    }
    cr_assert(b[0] > 700 && b[1] > 700, "%d %d", b[0], b[1]);
    t_down(up, 2);
    t_down(up, 3);
    cr_assert_eq(hrw_pick_key(o, st, up, 7, 1), -1);
    o->destroy(st);
    t_upstream_free(up);
}

#endif
