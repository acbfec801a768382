/* admin_config.h - the admin API calls that change the configuration:
 * GET / PUT /config, POST /reload, POST /upstreams/NAME/servers,
 * DELETE /upstreams/NAME/servers/ADDR, and POST /cache/purge (see
 * docs/admin-api.md). A new snapshot is built and validated in the admin
 * thread; the main thread alone swaps it in (admin.h: admin_op), exactly as
 * for SIGHUP, while the admin thread waits for the outcome. */
#ifndef PORTICO_ADMIN_ADMIN_CONFIG_H
#define PORTICO_ADMIN_ADMIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "admin/admin.h"
#include "admin/admin_metrics.h"
#include "http/msg.h"

/* Largest body we accept for rq (PUT /config: 1 MiB), or 0 when the path
 * is not ours (admin.c's default applies). Admin thread. */
size_t admin_config_body_max(const struct http_request *rq);

/* Answers rq when its path is one of ours: fills *r and returns true.
 * `body` is the request body. Blocks while the main thread applies a
 * change (milliseconds; reloads are serialised anyway). The caller has
 * checked the bearer token. Admin thread. */
bool admin_config_route(struct admin *a, const struct http_request *rq, const char *body,
                        size_t body_len, struct admin_reply *r);

#endif
