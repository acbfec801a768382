/* admin.h - the admin API (DESIGN.md "Admin API"), minimal for now: a
 * small thread with its own event loop serving GET /status and server
 * draining (POST /upstreams/NAME/servers/ADDR/drain, .../undrain) over a
 * strict HTTP/1.1 reader, one request per connection, JSON answers, with an
 * optional bearer token. It reads the config snapshot and the shared server
 * states; it never touches a worker's connections. */
#ifndef PORTICO_ADMIN_ADMIN_H
#define PORTICO_ADMIN_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

struct admin;

/* Starts the API on c->admin.listen (takes a reference on c): binds, reads
 * the token file, starts the thread. Returns NULL with a message in err on
 * failure (the caller exits). Main thread, before or after the workers. */
struct admin *admin_start(struct conf *c, char *err, size_t errlen);
/* Stops the thread, closes every socket, drops the reference. NULL is
 * allowed. Main thread. */
void admin_stop(struct admin *a);
/* Reload: the API now shows and acts on c (a reference is taken). Main
 * thread; a NULL admin is ignored. */
void admin_set_conf(struct admin *a, struct conf *c);

/* The /status document for snapshot c as a malloc'd NUL-terminated JSON
 * string (admin_status.c). `started_wall_ms` is the process start time.
 * Any thread; reads only atomics and the immutable snapshot. */
char *admin_status_json(const struct conf *c, uint64_t started_wall_ms, size_t *len);

#endif
