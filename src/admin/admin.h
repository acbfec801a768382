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

/* The running snapshot, with a reference for the caller. Any thread. */
struct conf *admin_running_conf(struct admin *a);
/* The listening socket (to hand to a new process on upgrade), or -1 for a
 * NULL admin. */
int admin_listen_fd(const struct admin *a);

/* ---- config changes asked through the API (admin_config.c) ----
 * The admin thread validates a change, then hands it to the main thread,
 * which alone swaps snapshots (as for SIGHUP), and waits for the outcome. */
enum admin_op_kind {
    ADMIN_OP_APPLY = 0, /* make `conf` the running config */
    ADMIN_OP_RELOAD,    /* re-read the config file (POST /reload) */
};
struct admin_op {
    enum admin_op_kind kind;
    struct conf *conf;       /* APPLY: the validated snapshot (the op holds a reference) */
    const struct conf *base; /* APPLY of an edit: the snapshot it was computed from
                              * (applied only if that one still runs); NULL for PUT */
    /* Outcome, set by the main thread before admin_op_done: */
    int status;                  /* 200 applied; 400 refused (errs); 409 base no longer
                                  * running, or nothing to reload (errs); 503 stopping */
    struct conf_errors errs;     /* why not */
    struct conf_errors warnings; /* applied, but e.g. 'workers' needs a restart */
    unsigned long generation;    /* the running config's generation afterwards */
    bool done;                   /* private to admin_config.c */
};
/* The signal the admin thread sends the main thread when an op waits (a
 * real-time signal): main blocks it with the others before any thread
 * starts and treats it as "call admin_op_take". */
int admin_wake_signal(void);
/* Main thread: ops are taken from now on (records the thread to signal). */
void admin_ops_open(void);
/* Stop taking ops; one waiting fails with 503, as do later ones (calls
 * made before admin_ops_open wait for it). admin_stop calls it. */
void admin_ops_close(void);
/* Main thread: the op waiting, or NULL. */
struct admin_op *admin_op_take(void);
/* Main thread: op's outcome is set; wakes the admin thread. */
void admin_op_done(struct admin_op *op);

/* The /status document for snapshot c as a malloc'd NUL-terminated JSON
 * string (admin_status.c). `started_wall_ms` is the process start time.
 * Any thread; reads only atomics and the immutable snapshot. */
char *admin_status_json(const struct conf *c, uint64_t started_wall_ms, size_t *len);

#endif
