/* conf_edit.c - edits of a running snapshot's document tree for the admin
 * API: add or remove one upstream server, and keep the settings a reload
 * cannot change. An edit never touches the running snapshot: it copies the
 * tree, changes the copy and builds a whole new snapshot from it with the
 * same validation as a file (errors located by JSON pointer), so whatever
 * the API applies is a config the file could have held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "conf/conf_node.h"
#include "core/addr.h"
#include "core/common.h"

/* ---- tree surgery (the tree's links: parent, idx, is_key) ---- */

static void renumber(struct cnode *n, size_t from)
{
    for (size_t i = from; i < n->n; i++) {
        n->kids[i]->idx = i;
        if (n->keys)
            n->keys[i]->idx = i;
    }
}

/* Removes and frees item i of a sequence or mapping. */
static void remove_at(struct cnode *n, size_t i)
{
    cnode_free(n->kids[i]);
    if (n->keys)
        cnode_free(n->keys[i]);
    memmove(n->kids + i, n->kids + i + 1, (n->n - i - 1) * sizeof(*n->kids));
    if (n->keys)
        memmove(n->keys + i, n->keys + i + 1, (n->n - i - 1) * sizeof(*n->keys));
    n->n--;
    renumber(n, i);
}

static ssize_t key_index(const struct cnode *map, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; map && map->type == CNODE_MAP && i < map->n; i++) {
        const struct cnode *k = map->keys[i];
        if (k->type == CNODE_SCALAR && k->len == klen && memcmp(k->s, key, klen) == 0)
            return (ssize_t)i;
    }
    return -1;
}

/* map[key] = value (owned; NULL removes the key). */
static void map_set(struct cnode *map, const char *key, struct cnode *value)
{
    ssize_t i = key_index(map, key);
    if (i >= 0 && value) {
        cnode_free(map->kids[i]);
        value->parent = map;
        value->idx = (size_t)i;
        value->is_key = false;
        map->kids[i] = value;
    } else if (i >= 0) {
        remove_at(map, (size_t)i);
    } else if (value) {
        cnode_map_put(map, cnode_new_scalar(key, strlen(key), false, 0, 0), value);
    }
}

/* ---- server edits ---- */

static struct conf *rebuild(const struct conf *c, const struct cnode *tree,
                            struct conf_errors *errs)
{
    struct conf_ctx cx = {.file = c->path ? c->path : "config", .json_pointer = true};
    struct conf *nc = conf_build(&cx, tree);
    conf_ctx_flush(&cx, errs);
    if (nc && c->path)
        nc->path = xstrdup(c->path);
    return nc;
}

/* The `servers` sequence of upstreams.NAME in tree, or NULL. */
static struct cnode *servers_of(struct cnode *tree, const char *upstream)
{
    struct cnode *ups = cnode_map_get(tree, "upstreams");
    struct cnode *u = cnode_map_get(ups, upstream);
    struct cnode *s = cnode_map_get(u, "servers");
    return s && s->type == CNODE_SEQ ? s : NULL;
}

enum conf_edit_rc conf_edit_add_server(const struct conf *c, const char *upstream,
                                       const char *json, size_t len, struct conf **out,
                                       struct conf_errors *errs)
{
    const struct conf_upstream *u = conf_find_upstream(c, upstream);
    char *err = NULL;
    struct cnode *item, *tree, *seq;
    const struct cnode *an;

    *out = NULL;
    if (!u || !c->tree)
        return CONF_EDIT_NO_UPSTREAM;
    if (!(item = conf_json_parse(json, len, &err))) {
        conf_errors_add(errs, "%s", err);
        free(err);
        return CONF_EDIT_BAD_JSON;
    }
    if (item->type != CNODE_MAP) {
        conf_errors_add(errs, "the body must be a JSON object like {\"address\": "
                        "\"127.0.0.1:3000\", \"weight\": 1, \"backup\": false}");
        cnode_free(item);
        return CONF_EDIT_BAD_JSON;
    }
    /* A duplicate is a conflict with the running state, not a malformed
     * request: it gets its own answer (409) before the schema runs. */
    an = cnode_map_get(item, "address");
    if (an && an->type == CNODE_SCALAR) {
        struct addr a;
        const char *aerr;
        bool parsed = addr_parse(an->s, &a, &aerr) == 0;
        for (size_t i = 0; i < u->n_servers; i++) {
            const struct conf_server *s = &u->servers[i];
            if (strcmp(s->address, an->s) == 0 ||
                (parsed && s->addr.len == a.len && memcmp(&s->addr.ss, &a.ss, a.len) == 0)) {
                conf_errors_add(errs, "upstream '%s' already has server '%s'", upstream,
                                s->address);
                cnode_free(item);
                return CONF_EDIT_DUPLICATE;
            }
        }
    }
    tree = cnode_clone(c->tree);
    if (!(seq = servers_of(tree, upstream))) {
        cnode_free(item);
        cnode_free(tree);
        return CONF_EDIT_NO_UPSTREAM;
    }
    cnode_seq_push(seq, item);
    *out = rebuild(c, tree, errs);
    if (!*out) {
        cnode_free(tree);
        return CONF_EDIT_INVALID;
    }
    (*out)->tree = tree;
    return CONF_EDIT_OK;
}

enum conf_edit_rc conf_edit_remove_server(const struct conf *c, const char *upstream,
                                          const char *address, struct conf **out,
                                          struct conf_errors *errs)
{
    const struct conf_upstream *u = conf_find_upstream(c, upstream);
    const struct conf_server *s = NULL;
    struct cnode *tree, *seq;

    *out = NULL;
    if (!u || !c->tree)
        return CONF_EDIT_NO_UPSTREAM;
    for (size_t i = 0; i < u->n_servers && !s; i++)
        if (strcmp(u->servers[i].address, address) == 0)
            s = &u->servers[i];
    if (!s)
        return CONF_EDIT_NO_SERVER;
    tree = cnode_clone(c->tree);
    seq = servers_of(tree, upstream);
    /* Servers are built in tree order, one per item: the index matches. */
    if (!seq || s->index >= seq->n) {
        cnode_free(tree);
        return CONF_EDIT_NO_SERVER;
    }
    remove_at(seq, s->index);
    *out = rebuild(c, tree, errs);
    if (!*out) {
        cnode_free(tree);
        return CONF_EDIT_INVALID;
    }
    (*out)->tree = tree;
    return CONF_EDIT_OK;
}

/* ---- settings a reload cannot change ---- */

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* A copy of prev's value at map `sect` (NULL: the root), key `key`, or NULL. */
static struct cnode *copy_of(const struct conf *prev, const char *sect, const char *key)
{
    const struct cnode *m = sect ? cnode_map_get(prev->tree, sect) : prev->tree;
    const struct cnode *v = cnode_map_get(m, key);
    return v ? cnode_clone(v) : NULL;
}

static void replace_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? xstrdup(src) : NULL;
}

void conf_keep_restart_settings(struct conf *next, const struct conf *prev, unsigned n_workers,
                                struct conf_errors *warnings)
{
    struct cnode *t = next->tree;
    bool have_trees = t && t->type == CNODE_MAP && prev->tree;

    if (next->workers != n_workers) {
        conf_errors_add(warnings, "'workers' changes need a restart (keeping %u)", n_workers);
        next->workers = n_workers;
        if (have_trees)
            map_set(t, "workers", copy_of(prev, NULL, "workers"));
    }
    if (!same_str(next->admin.listen, prev->admin.listen) ||
        !same_str(next->admin.token_file, prev->admin.token_file)) {
        conf_errors_add(warnings, "'admin' changes need a restart (keeping listen %s)",
                        prev->admin.listen ? prev->admin.listen : "off");
        replace_str(&next->admin.listen, prev->admin.listen);
        replace_str(&next->admin.token_file, prev->admin.token_file);
        if (have_trees)
            map_set(t, "admin", copy_of(prev, NULL, "admin"));
    }
    static const char *const log_keys[] = {"access", "error"};
    for (size_t i = 0; i < ARRAY_SIZE(log_keys); i++) {
        char **dst = i == 0 ? &next->log.access : &next->log.error;
        const char *was = i == 0 ? prev->log.access : prev->log.error;
        if (same_str(*dst, was))
            continue;
        conf_errors_add(warnings, "'log.%s' changes need a restart (keeping %s)", log_keys[i],
                        was ? was : "off");
        replace_str(dst, was);
        if (!have_trees)
            continue;
        struct cnode *log = cnode_map_get(t, "log");
        struct cnode *v = copy_of(prev, "log", log_keys[i]);
        if (!log || log->type != CNODE_MAP) {
            if (!v)
                continue;
            map_set(t, "log", cnode_new(CNODE_MAP, 0, 0));
            log = cnode_map_get(t, "log");
        }
        map_set(log, log_keys[i], v);
    }
}
