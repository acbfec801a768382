/* conf.c - the snapshot's life: loading entry points (file, buffer, tree,
 * quick mode), reference counting and freeing, and lookups. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_node.h"
#include "conf/conf_schema.h"
#include "core/common.h"
#include "lb/server.h"

#define CONF_MAX_FILE_BYTES (16u << 20)

static void free_rules(struct header_rules *hr)
{
    for (size_t i = 0; i < hr->n; i++) {
        free(hr->rules[i].name);
        tmpl_free(hr->rules[i].value);
    }
    free(hr->rules);
}

void conf_free(struct conf *c)
{
    if (!c)
        return;
    free(c->path);
    cnode_free(c->tree);
    free(c->admin.listen);
    free(c->admin.token_file);
    free(c->log.access);
    free(c->log.error);
    free(c->trusted_proxies);
    free(c->cache.path);
    for (size_t i = 0; i < c->n_listeners; i++) {
        free(c->listeners[i].name);
        free(c->listeners[i].listen);
        conf_tls_free(c->listeners[i].tls);
    }
    free(c->listeners);
    for (size_t i = 0; i < c->n_upstreams; i++) {
        struct conf_upstream *u = &c->upstreams[i];
        free(u->name);
        tmpl_free(u->hash_key);
        conf_upstream_tls_free(u->tls);
        conf_upstream_free_extra(u);
        for (size_t j = 0; j < u->n_servers; j++) {
            free(u->servers[j].address);
            if (u->servers[j].state)
                server_state_free(u->servers[j].state);
        }
        free(u->servers);
    }
    free(c->upstreams);
    for (size_t i = 0; i < c->n_routes; i++) {
        struct conf_route *r = &c->routes[i];
        free(r->name);
        free(r->host);
        free(r->path);
        if (r->regex)
            pcre2_code_free(r->regex);
        for (size_t j = 0; j < r->n_method_names; j++)
            free(r->method_names[j]);
        free(r->method_names);
        free(r->respond_body);
        free(r->respond_content_type);
        tmpl_free(r->redirect_to);
        free_rules(&r->req_headers);
        free_rules(&r->resp_headers);
        conf_route_free_filters(r);
    }
    free(c->routes);
    free(c);
}

void conf_ref(struct conf *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void conf_unref(struct conf *c)
{
    if (!c)
        return;
    /* acq_rel: the freeing thread must see every other thread's last reads
     * finished before it frees (same reasoning as for shared_ptr). */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        conf_free(c);
}

const struct conf_upstream *conf_find_upstream(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_upstreams; i++)
        if (c->upstreams[i].name && strcmp(c->upstreams[i].name, name) == 0)
            return &c->upstreams[i];
    return NULL;
}

struct conf *conf_load_tree(const char *name, const struct cnode *root, bool json_pointer,
                            struct conf_errors *errs)
{
    struct conf_ctx cx = {.file = name, .json_pointer = json_pointer};
    struct conf *c = conf_build(&cx, root);

    conf_ctx_flush(&cx, errs);
    if (c)
        c->tree = cnode_clone(root);
    return c;
}

struct conf *conf_load_buffer(const char *name, const char *data, size_t len,
                              struct conf_errors *errs)
{
    struct conf_ctx cx = {.file = name ? name : "<config>"};
    struct cnode *root = conf_yaml_parse(&cx, data, len);
    struct conf *c = NULL;

    if (root) {
        c = conf_build(&cx, root);
        if (c)
            c->tree = root; /* kept for GET /config */
        else
            cnode_free(root);
    }
    conf_ctx_flush(&cx, errs);
    return c;
}

struct conf *conf_load_file(const char *path, struct conf_errors *errs)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0;
    struct conf *c;

    if (!f) {
        conf_errors_add(errs, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        size_t got;
        if (len == cap) {
            if (cap >= CONF_MAX_FILE_BYTES) {
                conf_errors_add(errs, "%s: file larger than %u bytes", path,
                                CONF_MAX_FILE_BYTES);
                free(data);
                fclose(f);
                return NULL;
            }
            cap = cap ? cap * 2 : 8192;
            data = xrealloc(data, cap);
        }
        got = fread(data + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        conf_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    c = conf_load_buffer(path, data, len, errs);
    free(data);
    if (c)
        c->path = xstrdup(path);
    return c;
}

/* Quick mode builds the same document tree a file would give, so every
 * default and check is the file's: listeners: [{listen: FROM}],
 * upstreams: {default: {servers: [TO...]}}, routes: [{upstream: default}].
 * Only the address errors are worded for the command line. */
struct conf *conf_quick(const char *from, const char *const *to, size_t n,
                        struct conf_errors *errs)
{
    struct cnode *root, *listeners, *l, *ups, *u, *servers, *routes, *r;
    struct addr a;
    const char *err;
    bool bad = false;
    struct conf *c;

    if (!from || addr_parse(from, &a, &err) < 0) {
        conf_errors_add(errs, "--from: invalid address '%s': %s", from ? from : "",
                        from ? err : "missing");
        bad = true;
    }
    if (n == 0) {
        conf_errors_add(errs, "--to: at least one upstream server is required");
        bad = true;
    }
    for (size_t i = 0; i < n; i++) {
        struct addr b;
        if (addr_parse(to[i], &a, &err) < 0) {
            conf_errors_add(errs, "--to: invalid address '%s': %s", to[i], err);
            bad = true;
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (addr_parse(to[j], &b, &err) == 0 && a.len == b.len &&
                memcmp(&a.ss, &b.ss, a.len) == 0) {
                conf_errors_add(errs, "--to: duplicate server '%s'", to[i]);
                bad = true;
                break;
            }
        }
    }
    if (bad)
        return NULL;

    root = cnode_new(CNODE_MAP, 0, 0);
    listeners = cnode_new(CNODE_SEQ, 0, 0);
    l = cnode_new(CNODE_MAP, 0, 0);
    cnode_map_put(l, cnode_new_scalar("listen", 6, false, 0, 0),
                  cnode_new_scalar(from, strlen(from), true, 0, 0));
    cnode_seq_push(listeners, l);
    cnode_map_put(root, cnode_new_scalar("listeners", 9, false, 0, 0), listeners);

    ups = cnode_new(CNODE_MAP, 0, 0);
    u = cnode_new(CNODE_MAP, 0, 0);
    servers = cnode_new(CNODE_SEQ, 0, 0);
    for (size_t i = 0; i < n; i++)
        cnode_seq_push(servers, cnode_new_scalar(to[i], strlen(to[i]), true, 0, 0));
    cnode_map_put(u, cnode_new_scalar("servers", 7, false, 0, 0), servers);
    cnode_map_put(ups, cnode_new_scalar("default", 7, false, 0, 0), u);
    cnode_map_put(root, cnode_new_scalar("upstreams", 9, false, 0, 0), ups);

    routes = cnode_new(CNODE_SEQ, 0, 0);
    r = cnode_new(CNODE_MAP, 0, 0);
    cnode_map_put(r, cnode_new_scalar("upstream", 8, false, 0, 0),
                  cnode_new_scalar("default", 7, true, 0, 0));
    cnode_seq_push(routes, r);
    cnode_map_put(root, cnode_new_scalar("routes", 6, false, 0, 0), routes);

    c = conf_load_tree("quick", root, false, errs);
    cnode_free(root);
    return c;
}
