/* Unit tests: ip_hash (weighted rendezvous on client IP bytes). */
#include <arpa/inet.h>

#include "hrw_common.h"

/* Keys are IPv4 addresses 10.1.x.y, as raw network-order bytes. */
static struct str t_key(unsigned i, struct t_keybuf *kb)
{
    uint32_t ip = htonl(0x0a010000u + i);
    memcpy(kb->b, &ip, 4);
    return str_make(kb->b, 4);
}

#define IPH (&lb_ip_hash_ops)

Test(lb_ip_hash, same_key_same_server) { hrw_check_stable(IPH); }
Test(lb_ip_hash, even_distribution) { hrw_check_even(IPH); }
Test(lb_ip_hash, removal_remaps_only_its_keys) { hrw_check_removal(IPH); }
Test(lb_ip_hash, down_keys_move_and_return) { hrw_check_down_and_back(IPH); }
Test(lb_ip_hash, tried_skipped) { hrw_check_tried(IPH); }
Test(lb_ip_hash, weights_bias) { hrw_check_weights(IPH); }
Test(lb_ip_hash, backup_tier) { hrw_check_backup(IPH); }

Test(lb_ip_hash, ipv6_keys)
{
    struct conf_upstream *up = t_upstream(3, NULL, NULL);
    void *st = IPH->init(up);
    int count[3] = {0};
    for (unsigned i = 0; i < 3000; i++) {
        struct in6_addr a;
        inet_pton(AF_INET6, "2001:db8::", &a);
        a.s6_addr[14] = (uint8_t)(i >> 8);
        a.s6_addr[15] = (uint8_t)i;
        struct lb_pick_ctx ctx = {.now_ms = 1, .key = str_make((const char *)a.s6_addr, 16)};
        count[t_pick_release(IPH, st, up, &ctx)]++;
    }
    for (int s = 0; s < 3; s++)
        cr_assert(count[s] > 800 && count[s] < 1200, "server %d: %d", s, count[s]);
    IPH->destroy(st);
    t_upstream_free(up);
}
