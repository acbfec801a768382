/* admin_config.c - the admin API calls that change the configuration (see
 * admin_config.h and docs/admin-api.md), and the hand-over of a change to
 * the main thread (admin.h: admin_op).
 *
 * Every change is a whole new snapshot: PUT /config builds one from the
 * body, the server calls from an edited copy of the running tree, POST
 * /reload (in the main thread, like SIGHUP) from the file. Validation,
 * including the TLS contexts, happens here in the admin thread, off the
 * request path; the main thread then does what SIGHUP does (listeners,
 * posting the snapshot to every worker, carrying server state over) and
 * hands back the outcome. The admin thread serves one request at a time, so
 * at most one change is in flight; an edit computed from a snapshot that a
 * concurrent SIGHUP replaced is recomputed (the main thread refuses it). */
#include "admin/admin_config.h"
#include "admin/admin_path.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_node.h"
#include "core/common.h"
#include "core/jbuf.h"
#include "filters/cache_store.h"
#include "lb/server.h"
#include "log/errlog.h"
#include "net/tls.h"

#define CONFIG_BODY_MAX (1024 * 1024)
/* An edit whose base was replaced by a concurrent reload is recomputed at
 * most this many times. */
#define EDIT_ATTEMPTS 3

/* ---- the hand-over to the main thread ---- */

enum ops_state { OPS_STARTING = 0, OPS_OPEN, OPS_CLOSED };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum ops_state state; /* OPS_OPEN: the main thread takes ops */
    pthread_t main_thread;
    struct admin_op *pending; /* posted, not finished */
    bool taken;               /* the main thread is working on it */
} ops = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

int admin_wake_signal(void)
{
    return SIGRTMIN;
}

void admin_ops_open(void)
{
    pthread_mutex_lock(&ops.mu);
    ops.main_thread = pthread_self();
    ops.state = OPS_OPEN;
    pthread_cond_broadcast(&ops.cv);
    pthread_mutex_unlock(&ops.mu);
}

void admin_ops_close(void)
{
    pthread_mutex_lock(&ops.mu);
    ops.state = OPS_CLOSED;
    if (ops.pending && !ops.taken) {
        ops.pending->status = 503;
        ops.pending->done = true;
        ops.pending = NULL;
    }
    pthread_cond_broadcast(&ops.cv);
    pthread_mutex_unlock(&ops.mu);
}

struct admin_op *admin_op_take(void)
{
    struct admin_op *op = NULL;
    pthread_mutex_lock(&ops.mu);
    if (ops.pending && !ops.taken) {
        op = ops.pending;
        ops.taken = true;
    }
    pthread_mutex_unlock(&ops.mu);
    return op;
}

void admin_op_done(struct admin_op *op)
{
    pthread_mutex_lock(&ops.mu);
    op->done = true;
    if (ops.pending == op) {
        ops.pending = NULL;
        ops.taken = false;
    }
    pthread_cond_broadcast(&ops.cv);
    pthread_mutex_unlock(&ops.mu);
}

/* Posts op and waits for its outcome (op->status). A call that arrives
 * while the main thread is still starting waits for it; 503 once it is
 * stopping. */
static void run_op(struct admin_op *op)
{
    pthread_mutex_lock(&ops.mu);
    while (ops.state == OPS_STARTING || (ops.state == OPS_OPEN && ops.pending))
        pthread_cond_wait(&ops.cv, &ops.mu);
    if (ops.state != OPS_OPEN) {
        op->status = 503;
        pthread_mutex_unlock(&ops.mu);
        return;
    }
    op->done = false;
    ops.pending = op;
    ops.taken = false;
    pthread_kill(ops.main_thread, admin_wake_signal());
    while (!op->done)
        pthread_cond_wait(&ops.cv, &ops.mu);
    pthread_mutex_unlock(&ops.mu);
}

static void op_free(struct admin_op *op)
{
    conf_unref(op->conf);
    conf_errors_free(&op->errs);
    conf_errors_free(&op->warnings);
}

/* ---- answers ---- */

static void reply_json(struct admin_reply *r, int status, const char *extra, struct jbuf *b)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->content_type = "application/json";
    r->extra = extra;
    jb_raw(b, "\n", 1);
    r->body = jb_take(b, &r->len);
}

static void jb_list(struct jbuf *b, const char *name, const struct conf_errors *e)
{
    jb_printf(b, ",\"%s\":[", name);
    for (size_t i = 0; e && i < e->n; i++) {
        if (i)
            jb_raw(b, ",", 1);
        jb_str(b, e->msgs[i], strlen(e->msgs[i]));
    }
    jb_raw(b, "]", 1);
}

/* {"error": msg, "status": N[, "errors": [...]]} */
static void reply_error(struct admin_reply *r, int status, const char *extra, const char *msg,
                        const struct conf_errors *errs)
{
    struct jbuf b = {0};
    jb_cstr(&b, "{\"error\":");
    jb_str(&b, msg, strlen(msg));
    jb_printf(&b, ",\"status\":%d", status);
    if (errs && errs->n)
        jb_list(&b, "errors", errs);
    jb_raw(&b, "}", 1);
    reply_json(r, status, extra, &b);
}

/* The answer for a finished op that was not applied. */
static void reply_op_failure(struct admin_reply *r, const struct admin_op *op)
{
    switch (op->status) {
    case 400:
        reply_error(r, 400, NULL, "not applied: the running config is unchanged", &op->errs);
        break;
    case 409:
        reply_error(r, 409, NULL,
                    op->errs.n ? op->errs.msgs[0] : "the config changed meanwhile, try again",
                    NULL);
        break;
    default:
        reply_error(r, 503, NULL, "portico is starting or stopping: nothing was changed", NULL);
        break;
    }
}

/* {"status": what, "generation": N, "warnings": [...] ...more} */
static void jb_applied(struct jbuf *b, const char *what, const struct admin_op *op)
{
    jb_cstr(b, "{\"status\":");
    jb_str(b, what, strlen(what));
    jb_printf(b, ",\"generation\":%lu", op->generation);
    jb_list(b, "warnings", &op->warnings);
}

/* ---- paths ---- */

#define MAX_SEGS 6

enum which { W_NONE = 0, W_CONFIG, W_RELOAD, W_SERVERS, W_SERVER, W_PURGE };

static enum which which_path(const struct http_request *rq, struct str *seg)
{
    int n = admin_path_split(rq->path, seg, MAX_SEGS);
    if (n == 1 && str_eq(seg[0], STR_LIT("config")))
        return W_CONFIG;
    if (n == 1 && str_eq(seg[0], STR_LIT("reload")))
        return W_RELOAD;
    if (n == 2 && str_eq(seg[0], STR_LIT("cache")) && str_eq(seg[1], STR_LIT("purge")))
        return W_PURGE;
    if ((n == 3 || n == 4) && str_eq(seg[0], STR_LIT("upstreams")) &&
        str_eq(seg[2], STR_LIT("servers")))
        return n == 3 ? W_SERVERS : W_SERVER;
    return W_NONE;
}

size_t admin_config_body_max(const struct http_request *rq)
{
    struct str seg[MAX_SEGS];
    if (which_path(rq, seg) == W_CONFIG && rq->method_id == HTTP_M_PUT)
        return CONFIG_BODY_MAX;
    return 0;
}

/* ---- the calls ---- */

static void config_get(struct admin *a, struct admin_reply *r)
{
    struct conf *run = admin_running_conf(a);
    memset(r, 0, sizeof(*r));
    r->status = 200;
    r->content_type = "application/json";
    r->body = conf_to_json(run, &r->len);
    conf_unref(run);
}

/* Builds the TLS contexts of a new snapshot (certificate and key files are
 * read now, so a bad file is reported before anything changes). */
static bool build_tls(struct conf *nc, struct conf_errors *errs)
{
    return tls_build_listeners(nc, "config", errs) == 0;
}

static void config_put(struct admin *a, const char *body, size_t len, struct admin_reply *r)
{
    struct conf *run = admin_running_conf(a);
    struct conf_errors errs = {0};
    bool bad_json = false;
    struct conf *nc = conf_load_json(run->path, body, len, &errs, &bad_json);
    conf_unref(run);
    if (nc && !build_tls(nc, &errs)) {
        conf_unref(nc);
        nc = NULL;
    }
    if (!nc) {
        reply_error(r, 400, NULL, bad_json ? "invalid JSON" : "invalid config: nothing was changed",
                    &errs);
        conf_errors_free(&errs);
        return;
    }
    struct admin_op op = {.kind = ADMIN_OP_APPLY, .conf = nc};
    run_op(&op);
    if (op.status == 200) {
        struct jbuf b = {0};
        jb_applied(&b, "applied", &op);
        jb_raw(&b, "}", 1);
        reply_json(r, 200, NULL, &b);
    } else {
        reply_op_failure(r, &op);
    }
    op_free(&op);
}

static void reload(struct admin_reply *r)
{
    struct admin_op op = {.kind = ADMIN_OP_RELOAD};
    run_op(&op);
    if (op.status == 200) {
        struct jbuf b = {0};
        jb_applied(&b, "reloaded", &op);
        jb_raw(&b, "}", 1);
        reply_json(r, 200, NULL, &b);
    } else {
        reply_op_failure(r, &op);
    }
    op_free(&op);
}

static void server_add(struct admin *a, const char *uname, const char *body, size_t len,
                       struct admin_reply *r)
{
    for (int attempt = 0;; attempt++) {
        struct conf *run = admin_running_conf(a), *nc = NULL;
        struct conf_errors errs = {0};
        enum conf_edit_rc rc = conf_edit_add_server(run, uname, body, len, &nc, &errs);
        if (rc == CONF_EDIT_OK && !build_tls(nc, &errs))
            rc = CONF_EDIT_INVALID;
        if (rc != CONF_EDIT_OK) {
            if (rc == CONF_EDIT_NO_UPSTREAM)
                reply_error(r, 404, NULL, "no such upstream", NULL);
            else if (rc == CONF_EDIT_DUPLICATE)
                reply_error(r, 409, NULL, errs.n ? errs.msgs[0] : "duplicate server", NULL);
            else if (rc == CONF_EDIT_BAD_JSON)
                reply_error(r, 400, NULL, "invalid JSON", &errs);
            else
                reply_error(r, 400, NULL, "invalid server: nothing was changed", &errs);
            conf_unref(nc);
            conf_unref(run);
            conf_errors_free(&errs);
            return;
        }
        conf_errors_free(&errs);
        const struct conf_upstream *u = conf_find_upstream(nc, uname);
        const struct conf_server *s = &u->servers[u->n_servers - 1];
        char *address = xstrdup(s->address);
        unsigned weight = s->weight;
        bool backup = s->backup;
        struct admin_op op = {.kind = ADMIN_OP_APPLY, .conf = nc, .base = run};
        run_op(&op);
        conf_unref(run);
        if (op.status == 409 && attempt + 1 < EDIT_ATTEMPTS) {
            free(address);
            op_free(&op);
            continue;
        }
        if (op.status == 200) {
            log_info("upstream %s: server %s added (admin API)", uname, address);
            struct jbuf b = {0};
            jb_applied(&b, "applied", &op);
            jb_cstr(&b, ",\"upstream\":");
            jb_str(&b, uname, strlen(uname));
            jb_cstr(&b, ",\"server\":{\"address\":");
            jb_str(&b, address, strlen(address));
            jb_printf(&b, ",\"weight\":%u,\"backup\":%s}}", weight, backup ? "true" : "false");
            reply_json(r, 201, NULL, &b);
        } else {
            reply_op_failure(r, &op);
        }
        free(address);
        op_free(&op);
        return;
    }
}

static void server_remove(struct admin *a, const char *uname, const char *saddr,
                          struct admin_reply *r)
{
    for (int attempt = 0;; attempt++) {
        struct conf *run = admin_running_conf(a), *nc = NULL;
        struct conf_errors errs = {0};
        const struct conf_upstream *u = conf_find_upstream(run, uname);
        const struct conf_server *s = NULL;
        for (size_t i = 0; u && i < u->n_servers && !s; i++)
            if (strcmp(u->servers[i].address, saddr) == 0)
                s = &u->servers[i];
        if (!u || !s) {
            reply_error(r, 404, NULL, u ? "no such server in this upstream" : "no such upstream",
                        NULL);
            conf_unref(run);
            return;
        }
        /* Drain first: from now on no new request picks it, in this
         * snapshot or in any older one still finishing requests. */
        struct server_state *st = s->state;
        server_state_ref(st);
        bool was_draining = atomic_exchange(&st->draining, true);
        enum conf_edit_rc rc = conf_edit_remove_server(run, uname, saddr, &nc, &errs);
        if (rc == CONF_EDIT_OK && !build_tls(nc, &errs))
            rc = CONF_EDIT_INVALID;
        struct admin_op op = {.kind = ADMIN_OP_APPLY, .conf = nc, .base = run};
        if (rc == CONF_EDIT_OK) {
            run_op(&op);
        } else {
            op.status = 400;
            op.errs = errs;
            errs = (struct conf_errors){0};
        }
        conf_unref(run);
        if (op.status != 200 && !was_draining)
            atomic_store(&st->draining, false); /* nothing changed after all */
        if (op.status == 409 && attempt + 1 < EDIT_ATTEMPTS) {
            server_state_unref(st);
            op_free(&op);
            continue;
        }
        if (op.status == 200) {
            log_info("upstream %s: server %s removed (admin API); %u request%s in flight finish",
                     uname, saddr, atomic_load(&st->active),
                     atomic_load(&st->active) == 1 ? "" : "s");
            struct jbuf b = {0};
            jb_applied(&b, "applied", &op);
            jb_cstr(&b, ",\"upstream\":");
            jb_str(&b, uname, strlen(uname));
            jb_cstr(&b, ",\"server\":");
            jb_str(&b, saddr, strlen(saddr));
            jb_printf(&b, ",\"in_flight\":%u}", atomic_load(&st->active));
            reply_json(r, 200, NULL, &b);
        } else if (op.status == 400) {
            reply_error(r, 400, NULL, "cannot remove this server: nothing was changed",
                        &op.errs);
        } else {
            reply_op_failure(r, &op);
        }
        server_state_unref(st);
        op_free(&op);
        return;
    }
}

/* POST /cache/purge: {"key": K} (K and its variants), {"prefix": P}, {} or
 * {"all": true} (everything). An empty body counts as {}. */
static void cache_purge_call(const char *body, size_t len, struct admin_reply *r)
{
    char *err = NULL;
    struct cnode *n = NULL;
    size_t ws = 0;
    while (ws < len && strchr(" \t\r\n", body[ws]))
        ws++;
    if (ws < len && !(n = conf_json_parse(body, len, &err))) {
        struct conf_errors e = {.msgs = &err, .n = 1};
        reply_error(r, 400, NULL, "invalid JSON", &e);
        free(err);
        return;
    }
    const char *msg = NULL;
    const struct cnode *key = NULL, *prefix = NULL;
    if (n && n->type != CNODE_MAP)
        msg = "the body must be a JSON object: {\"key\": ...}, {\"prefix\": ...} or {\"all\": true}";
    for (size_t i = 0; n && !msg && i < n->n; i++) {
        const struct cnode *k = n->keys[i], *v = n->kids[i];
        if (strcmp(k->s, "key") == 0 || strcmp(k->s, "prefix") == 0) {
            if (v->type != CNODE_SCALAR || !v->quoted)
                msg = "'key' and 'prefix' must be strings";
            else if (strcmp(k->s, "key") == 0 && v->len == 0)
                msg = "'key' must not be empty";
            else if (strcmp(k->s, "key") == 0)
                key = v;
            else
                prefix = v;
        } else if (strcmp(k->s, "all") == 0) {
            if (v->type != CNODE_SCALAR || v->quoted || strcmp(v->s, "true") != 0)
                msg = "'all' must be true";
        } else {
            msg = "unknown key (expected one of: key, prefix, all)";
        }
    }
    if (!msg && n && n->n > 1)
        msg = "give one of key, prefix or all";
    if (msg) {
        reply_error(r, 400, NULL, msg, NULL);
        cnode_free(n);
        return;
    }
    struct cache_store *cs = g_cache_store;
    if (!cs) {
        reply_error(r, 501, NULL, "no cache configured", NULL);
        cnode_free(n);
        return;
    }
    size_t purged;
    if (key)
        purged = cache_purge(cs, key->s, key->len, true);
    else if (prefix)
        purged = cache_purge(cs, prefix->s, prefix->len, false);
    else
        purged = cache_purge(cs, "", 0, false);
    log_info("cache: %zu object%s purged (admin API)", purged, purged == 1 ? "" : "s");
    struct jbuf b = {0};
    jb_printf(&b, "{\"purged\":%zu}", purged);
    reply_json(r, 200, NULL, &b);
    cnode_free(n);
}

static bool method_ok(const struct http_request *rq, struct admin_reply *r, const char *allow,
                      enum http_method m1, enum http_method m2, enum http_method m3)
{
    enum http_method m = rq->method_id;
    if (m != HTTP_M_OTHER && (m == m1 || m == m2 || m == m3))
        return true;
    reply_error(r, 405, allow, "method not allowed", NULL);
    return false;
}

bool admin_config_route(struct admin *a, const struct http_request *rq, const char *body,
                        size_t body_len, struct admin_reply *r)
{
    struct str seg[MAX_SEGS];
    char uname[256], saddr[256];
    enum http_method none = HTTP_M_OTHER;

    switch (which_path(rq, seg)) {
    case W_NONE:
        return false;
    case W_CONFIG:
        if (!method_ok(rq, r, "Allow: GET, HEAD, PUT\r\n", HTTP_M_GET, HTTP_M_HEAD, HTTP_M_PUT))
            return true;
        if (rq->method_id == HTTP_M_PUT)
            config_put(a, body, body_len, r);
        else
            config_get(a, r);
        return true;
    case W_RELOAD:
        if (method_ok(rq, r, "Allow: POST\r\n", HTTP_M_POST, none, none))
            reload(r);
        return true;
    case W_PURGE:
        if (method_ok(rq, r, "Allow: POST\r\n", HTTP_M_POST, none, none))
            cache_purge_call(body, body_len, r);
        return true;
    case W_SERVERS:
        if (!method_ok(rq, r, "Allow: POST\r\n", HTTP_M_POST, none, none))
            return true;
        if (!admin_path_decode(seg[1], uname, sizeof(uname)))
            reply_error(r, 400, NULL, "bad path encoding", NULL);
        else
            server_add(a, uname, body, body_len, r);
        return true;
    case W_SERVER:
        if (!method_ok(rq, r, "Allow: DELETE\r\n", HTTP_M_DELETE, none, none))
            return true;
        if (!admin_path_decode(seg[1], uname, sizeof(uname)) ||
            !admin_path_decode(seg[3], saddr, sizeof(saddr)))
            reply_error(r, 400, NULL, "bad path encoding", NULL);
        else
            server_remove(a, uname, saddr, r);
        return true;
    }
    return false;
}
