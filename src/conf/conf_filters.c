/* conf_filters.c - the config schema of the response filters: a route's
 * `cache` and `compress`, and the top-level keys of the shared cache store
 * (`cache_size`, `cache_path`, `cache_disk_size`) and of `tracing`. Only
 * settings are checked and stored here; filters/ applies them (conf/ must not
 * include filters/, so the coding names and level ranges are spelled out
 * again below and must match filters/compress.c). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_schema.h"
#include "core/common.h"

#define MB (1ull << 20)
#define GB (1ull << 30)

/* Value of an optional key; a YAML null counts as absent. */
static const struct cnode *opt(const struct cnode *map, const char *key)
{
    const struct cnode *v = cnode_map_get(map, key);
    return cnode_is_null(v) ? NULL : v;
}

/* `key: false` (true when it is, so the caller leaves the setting off). */
static bool is_false(const struct cnode *n)
{
    return n->type == CNODE_SCALAR && strcmp(n->s, "false") == 0;
}

static bool is_true(const struct cnode *n)
{
    return n->type == CNODE_SCALAR && strcmp(n->s, "true") == 0;
}

/* ---- routes[].cache ---- */

/* A `valid` key: a status 100..599 (written as a number or a string) or
 * "any". Exactly three digits, so two keys naming the same status are the
 * same string and the YAML loader already reports the second as a duplicate
 * key. Returns the status (0 for "any"), or -1. */
static int valid_status(const struct cnode *k)
{
    int st = 0;

    if (strcmp(k->s, "any") == 0)
        return 0;
    if (k->len != 3)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        if (k->s[i] < '0' || k->s[i] > '9')
            return -1;
        st = st * 10 + (k->s[i] - '0');
    }
    return st >= 100 && st <= 599 ? st : -1;
}

/* Statuses in file order, then "any" last: a first-match scan by the cache
 * filter then lets a status's own entry win over "any" wherever it is written. */
static void build_valid(struct conf_ctx *cx, struct conf_cache *cc, const struct cnode *n)
{
    uint64_t any_ms = 0;
    bool any = false;

    if (!sch_map(cx, n))
        return;
    cc->valid = xcalloc(n->n ? n->n : 1, sizeof(*cc->valid));
    for (size_t i = 0; i < n->n; i++) {
        const struct cnode *k = n->keys[i], *v = n->kids[i];
        int st = valid_status(k);
        uint64_t ms;

        if (st < 0) {
            conf_err(cx, k, "cache 'valid' keys must be a status 100..599 or 'any', got '%s'",
                     k->s);
            continue;
        }
        if (!sch_duration(cx, v, &ms))
            continue;
        if (st == 0) {
            any = true;
            any_ms = ms;
            continue;
        }
        cc->valid[cc->n_valid++] = (struct conf_cache_valid){.status = st, .ttl_ms = ms};
    }
    if (any)
        cc->valid[cc->n_valid++] = (struct conf_cache_valid){.status = 0, .ttl_ms = any_ms};
}

static void build_cache_key(struct conf_ctx *cx, struct conf_cache *cc, const struct cnode *n)
{
    const char *s;

    if (!sch_nonempty(cx, n, &s))
        return;
    /* Stored keys end at '\n' where a Vary variant's suffix begins
     * (filters/cache_store.h), so a key must never contain one. */
    if (strpbrk(s, "\r\n")) {
        conf_err(cx, n, "cache 'key' must not contain CR or LF");
        return;
    }
    cc->key = sch_tmpl(cx, n);
}

static void build_cache_map(struct conf_ctx *cx, struct conf_cache *cc, const struct cnode *n)
{
    static const char *const keys[] = {"valid", "key", "max_object_size", "cookies",
                                       "lock_timeout", "stale_if_error",
                                       "stale_while_revalidate", NULL};
    const struct cnode *v;

    sch_keys(cx, n, "cache", keys, NULL);
    if ((v = opt(n, "valid")))
        build_valid(cx, cc, v);
    if ((v = opt(n, "key")))
        build_cache_key(cx, cc, v);
    if ((v = cnode_map_get(n, "max_object_size")))
        sch_size(cx, v, 1, GB, "1", "1g", &cc->max_object_size);
    if ((v = cnode_map_get(n, "cookies")))
        sch_bool(cx, v, &cc->store_set_cookie);
    if ((v = cnode_map_get(n, "lock_timeout")))
        sch_duration(cx, v, &cc->lock_timeout_ms);
    if ((v = cnode_map_get(n, "stale_if_error")))
        sch_duration(cx, v, &cc->stale_if_error_ms);
    if ((v = cnode_map_get(n, "stale_while_revalidate")))
        sch_duration(cx, v, &cc->stale_while_revalidate_ms);
}

/* `true`, or a mapping (`{}` is the same as `true`); NULL for false and
 * for a value of the wrong type (reported). */
static struct conf_cache *build_cache(struct conf_ctx *cx, const struct cnode *n)
{
    struct conf_cache *cc;

    if (is_false(n))
        return NULL;
    if (!is_true(n) && n->type != CNODE_MAP) {
        conf_err(cx, n, "'cache' must be true, false or a mapping, got %s%s%s",
                 n->type == CNODE_SCALAR ? "'" : "",
                 n->type == CNODE_SCALAR ? n->s : cnode_type_name(n),
                 n->type == CNODE_SCALAR ? "'" : "");
        return NULL;
    }
    cc = xcalloc(1, sizeof(*cc));
    cc->max_object_size = 8 * MB;
    cc->lock_timeout_ms = 5000;
    if (n->type == CNODE_MAP)
        build_cache_map(cx, cc, n);
    return cc;
}

static void free_cache(struct conf_cache *cc)
{
    if (!cc)
        return;
    free(cc->valid);
    tmpl_free(cc->key);
    free(cc);
}

/* ---- routes[].compress ---- */

/* Indexed by enum zalg; same names and ranges as filters/compress.c. */
static const char *const zalg_names[] = {"identity", "gzip", "br", "zstd", NULL};
static const char *const alg_names[] = {"gzip", "br", "zstd", NULL}; /* enum zalg - 1 */
static const int level_min[ZALG__COUNT] = {0, 1, 0, 1};
static const int level_max[ZALG__COUNT] = {0, 9, 11, 19};
static const int level_default[ZALG__COUNT] = {0, 1, 4, 3};
/* `compress: true` and a long form without `algorithms` (DESIGN.md's order). */
static const uint8_t default_algs[] = {ZALG_ZSTD, ZALG_BR, ZALG_GZIP};

/* A list of coding names, in server preference order, none twice. */
static void build_algs(struct conf_ctx *cx, struct conf_compress *z, const struct cnode *n)
{
    if (!sch_seq(cx, n))
        return;
    if (n->n == 0) {
        conf_err(cx, n, "'%s' must not be empty (use compress: false to turn compression off)",
                 sch_name(n));
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        const struct cnode *it = n->kids[i];
        unsigned a;
        bool dup = false;

        if (!sch_enum(cx, it, "compression algorithm", alg_names, &a))
            continue;
        a += 1; /* alg_names starts at ZALG_GZIP */
        for (size_t j = 0; j < z->n_algs; j++)
            dup = dup || z->algs[j] == a;
        if (dup) {
            conf_err(cx, it, "duplicate compression algorithm '%s'", it->s);
            continue;
        }
        z->algs[z->n_algs++] = (uint8_t)a;
    }
}

/* "type/subtype" of RFC 9110 tokens, or "type" then a slash and a star for a
 * whole family; stored lower case. Returns the stored copy, or NULL. */
static char *media_type(struct conf_ctx *cx, const struct cnode *n)
{
    const char *s, *slash;
    char *low;
    size_t len;

    if (!sch_nonempty(cx, n, &s))
        return NULL;
    len = strlen(s);
    slash = strchr(s, '/');
    if (!slash || !sch_is_token(s, (size_t)(slash - s)) || (slash - s == 1 && s[0] == '*') ||
        !(strcmp(slash + 1, "*") == 0 || sch_is_token(slash + 1, strlen(slash + 1))) ||
        strchr(slash + 1, '/')) {
        conf_err(cx, n, "invalid media type '%s' (expected type/subtype without parameters, "
                 "like text/html, or a family like text/*)", s);
        return NULL;
    }
    low = xstrdup(s);
    for (size_t i = 0; i < len; i++)
        low[i] = (char)tolower((unsigned char)low[i]);
    return low;
}

static void build_types(struct conf_ctx *cx, struct conf_compress *z, const struct cnode *n)
{
    if (!sch_seq(cx, n))
        return;
    if (n->n == 0) {
        conf_err(cx, n, "'types' must not be empty (leave it out for the default list)");
        return;
    }
    z->types = xcalloc(n->n, sizeof(*z->types));
    for (size_t i = 0; i < n->n; i++) {
        char *t = media_type(cx, n->kids[i]);
        bool dup = false;

        if (!t)
            continue;
        for (size_t j = 0; j < z->n_types; j++)
            dup = dup || strcmp(z->types[j], t) == 0;
        if (dup) {
            conf_err(cx, n->kids[i], "duplicate media type '%s'", t);
            free(t);
            continue;
        }
        z->types[z->n_types++] = t;
    }
}

static void build_levels(struct conf_ctx *cx, struct conf_compress *z, const struct cnode *n)
{
    const struct cnode *v;
    uint64_t x;

    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "compress levels", alg_names, NULL);
    for (int a = ZALG_GZIP; a < ZALG__COUNT; a++) {
        if ((v = cnode_map_get(n, zalg_names[a])) &&
            sch_uint(cx, v, (uint64_t)level_min[a], (uint64_t)level_max[a], &x))
            z->levels[a] = (int)x;
    }
}

static void build_compress_map(struct conf_ctx *cx, struct conf_compress *z,
                               const struct cnode *n)
{
    static const char *const keys[] = {"algorithms", "min_length", "types", "levels", NULL};
    const struct cnode *v;

    sch_keys(cx, n, "compress", keys, NULL);
    if ((v = cnode_map_get(n, "algorithms"))) {
        z->n_algs = 0;
        build_algs(cx, z, v);
    }
    if ((v = cnode_map_get(n, "min_length")))
        sch_size(cx, v, 0, GB, "0", "1g", &z->min_length);
    if ((v = opt(n, "types")))
        build_types(cx, z, v);
    if ((v = opt(n, "levels")))
        build_levels(cx, z, v);
}

/* `true`, a list of algorithms or a mapping; NULL for false and for a value
 * of the wrong type (reported). */
static struct conf_compress *build_compress(struct conf_ctx *cx, const struct cnode *n)
{
    struct conf_compress *z;

    if (is_false(n))
        return NULL;
    if (!is_true(n) && n->type != CNODE_MAP && n->type != CNODE_SEQ) {
        conf_err(cx, n, "'compress' must be true, false, a list of algorithms like "
                 "[zstd, br, gzip] or a mapping, got %s%s%s",
                 n->type == CNODE_SCALAR ? "'" : "",
                 n->type == CNODE_SCALAR ? n->s : cnode_type_name(n),
                 n->type == CNODE_SCALAR ? "'" : "");
        return NULL;
    }
    z = xcalloc(1, sizeof(*z));
    memcpy(z->algs, default_algs, sizeof(default_algs));
    z->n_algs = ARRAY_SIZE(default_algs);
    z->min_length = 256;
    memcpy(z->levels, level_default, sizeof(z->levels));
    if (n->type == CNODE_SEQ) {
        z->n_algs = 0;
        build_algs(cx, z, n);
    } else if (n->type == CNODE_MAP) {
        build_compress_map(cx, z, n);
    }
    return z;
}

static void free_compress(struct conf_compress *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->n_types; i++)
        free(z->types[i]);
    free(z->types);
    free(z);
}

/* ---- entry points ---- */

void conf_build_route_filters(struct conf_ctx *cx, struct conf_route *r, const struct cnode *n,
                              const char *action)
{
    const struct cnode *v;

    if ((v = opt(n, "cache"))) {
        /* Only a proxied response has an origin to cache; on a route with no
         * action that error is already reported, so judge the value alone. */
        if (action && r->action != ROUTE_PROXY && !is_false(v))
            conf_err(cx, cnode_key_of(v), "'cache' is only for routes that proxy (with "
                     "'upstream'), this route has '%s'", action);
        else
            r->cache = build_cache(cx, v);
    }
    if ((v = opt(n, "compress")))
        r->compress = build_compress(cx, v);
}

void conf_route_free_filters(struct conf_route *r)
{
    free_cache(r->cache);
    free_compress(r->compress);
    r->cache = NULL;
    r->compress = NULL;
}

void conf_build_globals_filters(struct conf_ctx *cx, struct conf *c, const struct cnode *root)
{
    const struct cnode *v, *disk;
    const char *s;

    c->cache.size = 256 * MB;
    c->cache.disk_size = GB;
    if ((v = cnode_map_get(root, "cache_size")))
        sch_size(cx, v, MB, 64 * GB, "1m", "64g", &c->cache.size);
    if ((v = opt(root, "cache_path")) && sch_nonempty(cx, v, &s))
        c->cache.path = conf_resolve_path(cx, s);
    if ((disk = cnode_map_get(root, "cache_disk_size")) &&
        sch_size(cx, disk, MB, 65536 * GB, "1m", "65536g", &c->cache.disk_size) &&
        !opt(root, "cache_path"))
        conf_err(cx, cnode_key_of(disk), "cache_disk_size needs cache_path");
    if ((v = cnode_map_get(root, "tracing")))
        sch_bool(cx, v, &c->tracing);
}
