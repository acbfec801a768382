/* Unit tests: hash (weighted rendezvous on the expanded hash_key). */
#include "hrw_common.h"

/* Keys look like request URIs. */
static struct str t_key(unsigned i, struct t_keybuf *kb)
{
    int n = snprintf(kb->b, sizeof(kb->b), "/static/img/%u.png", i);
    return str_make(kb->b, (size_t)n);
}

#define HS (&lb_hash_ops)

Test(lb_hash, same_key_same_server) { hrw_check_stable(HS); }
Test(lb_hash, even_distribution) { hrw_check_even(HS); }
Test(lb_hash, removal_remaps_only_its_keys) { hrw_check_removal(HS); }
Test(lb_hash, down_keys_move_and_return) { hrw_check_down_and_back(HS); }
Test(lb_hash, tried_skipped) { hrw_check_tried(HS); }
Test(lb_hash, weights_bias) { hrw_check_weights(HS); }
Test(lb_hash, backup_tier) { hrw_check_backup(HS); }

Test(lb_hash, empty_and_long_keys)
{
    struct conf_upstream *up = t_upstream(4, NULL, NULL);
    void *st = HS->init(up);
    struct lb_pick_ctx ctx = {.now_ms = 1, .key = STR_NULL};
    int e = t_pick_release(HS, st, up, &ctx);
    cr_assert(e >= 0);
    ctx.key = STR_LIT("");
    cr_assert_eq(t_pick_release(HS, st, up, &ctx), e);
    char big[300];
    memset(big, 'x', sizeof(big));
    ctx.key = str_make(big, sizeof(big));
    int l = t_pick_release(HS, st, up, &ctx);
    cr_assert_eq(t_pick_release(HS, st, up, &ctx), l);
    HS->destroy(st);
    t_upstream_free(up);
}

/* The server identity is its address: a reload that reorders the servers
 * keeps each key on the same address. */
Test(lb_hash, identity_is_address_not_position)
{
    struct conf_upstream *a = t_upstream(4, NULL, NULL);
    struct conf_upstream *b = t_upstream(4, NULL, NULL);
    /* Reverse b's addresses. */
    for (unsigned i = 0; i < 2; i++) {
        char *t = b->servers[i].address;
        b->servers[i].address = b->servers[3 - i].address;
        b->servers[3 - i].address = t;
    }
    void *sa = HS->init(a), *sb = HS->init(b);
    for (unsigned i = 0; i < 1000; i++) {
        struct t_keybuf kb;
        struct lb_pick_ctx ctx = {.now_ms = 1, .key = t_key(i, &kb)};
        int x = t_pick_release(HS, sa, a, &ctx);
        int y = t_pick_release(HS, sb, b, &ctx);
        cr_assert_str_eq(a->servers[x].address, b->servers[y].address);
    }
    HS->destroy(sa);
    HS->destroy(sb);
    t_upstream_free(a);
    t_upstream_free(b);
}
