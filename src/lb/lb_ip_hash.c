/* lb_ip_hash.c - client-IP affinity: weighted rendezvous hashing on the
 * client address bytes the engine puts in ctx->key (4 bytes for IPv4, 16 for
 * IPv6; the address after trusted-proxy resolution). The algorithm is shared
 * with lb_hash.c and lives in balancer.c (lb_hrw_*): a client keeps its
 * server while that server is eligible; removing one of N servers remaps
 * only the ~1/N of the clients it had. */
#include "lb/balancer.h"

const struct balancer_ops lb_ip_hash_ops = {
    .name = "ip_hash",
    .init = lb_hrw_init,
    .pick = lb_hrw_pick,
    .release = lb_hrw_release,
    .destroy = lb_hrw_destroy,
};
