/* lb_hash.c - consistent hashing on a configured key: the engine expands the
 * upstream's hash_key template (e.g. "$request_uri", "$cookie_session") and
 * passes the bytes in ctx->key. Same weighted rendezvous hashing as ip_hash
 * (balancer.c, lb_hrw_*). An empty expansion is a key like any other: every
 * such request goes to one server. */
#include "lb/balancer.h"

const struct balancer_ops lb_hash_ops = {
    .name = "hash",
    .init = lb_hrw_init,
    .pick = lb_hrw_pick,
    .release = lb_hrw_release,
    .destroy = lb_hrw_destroy,
};
