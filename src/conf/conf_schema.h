/* conf_schema.h - private to src/conf: typed accessors over the document tree
 * used by the schema code. Each reports its own error (at the offending node)
 * and returns false, so callers just skip the field; nothing cascades. */
#ifndef PORTICO_CONF_CONF_SCHEMA_H
#define PORTICO_CONF_CONF_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/conf_node.h"

/* Name of the key a value sits under ("item" for sequence items). */
const char *sch_name(const struct cnode *n);

/* True when n is a mapping; otherwise reports "'KEY' must be a mapping". */
bool sch_map(struct conf_ctx *cx, const struct cnode *n);
/* True when n is a sequence; otherwise reports. */
bool sch_seq(struct conf_ctx *cx, const struct cnode *n);
/* Reports every key of map not in `known` (NULL-terminated) as unknown, and
 * every key in `unsupported` as "'KEY' is not supported yet" (or, for an entry
 * written "key=message", as that message). `what` names the mapping in
 * messages ("listener"). */
void sch_keys(struct conf_ctx *cx, const struct cnode *map, const char *what,
              const char *const *known, const char *const *unsupported);
/* Reports "missing required key 'KEY' in WHAT" at the mapping when absent. */
const struct cnode *sch_require(struct conf_ctx *cx, const struct cnode *map, const char *key,
                                const char *what);

/* A scalar as a string (the tree's own storage; never NULL on success). */
bool sch_str(struct conf_ctx *cx, const struct cnode *n, const char **out);
/* Like sch_str but also rejects the empty string. */
bool sch_nonempty(struct conf_ctx *cx, const struct cnode *n, const char **out);
bool sch_bool(struct conf_ctx *cx, const struct cnode *n, bool *out);
/* Decimal integer in [min, max]. */
bool sch_uint(struct conf_ctx *cx, const struct cnode *n, uint64_t min, uint64_t max,
              uint64_t *out);
bool sch_duration(struct conf_ctx *cx, const struct cnode *n, uint64_t *out_ms);
/* Size in [min, max]; min_txt/max_txt are how the bounds read in messages. */
bool sch_size(struct conf_ctx *cx, const struct cnode *n, uint64_t min, uint64_t max,
              const char *min_txt, const char *max_txt, uint64_t *out);
/* One of the NULL-terminated names; *out is its index. `what` e.g. "balance". */
bool sch_enum(struct conf_ctx *cx, const struct cnode *n, const char *what,
              const char *const *names, unsigned *out);
/* Compiles a template, reporting the error with its offset. */
struct tmpl *sch_tmpl(struct conf_ctx *cx, const struct cnode *n);

/* RFC 9110 token. */
bool sch_is_token(const char *s, size_t len);

/* upstreams.X.tls (conf_tls.c): `true` or a mapping; NULL for false/invalid. */
struct conf_upstream_tls *conf_build_upstream_tls(struct conf_ctx *cx, const struct cnode *n);

/* listeners[].tls (conf_tls.c); NULL when n is not a mapping. */
struct conf_tls *conf_build_tls(struct conf_ctx *cx, const struct cnode *n);

/* A path from the config: a relative one is taken against the directory of
 * the config file (conf_tls.c). Returns a malloc'd string. */
char *conf_resolve_path(const struct conf_ctx *cx, const char *p);

/* Response filter keys (conf_filters.c). conf_build_route_filters reads
 * `cache` and `compress` of route mapping n into r->cache / r->compress once
 * the route's action is built; `action` is the action's key ("upstream",
 * "respond", "redirect"), NULL when the route has none (already reported).
 * conf_route_free_filters releases them. conf_build_globals_filters sets the
 * defaults of c->cache and c->tracing, then reads the top-level keys
 * cache_size, cache_path, cache_disk_size and tracing of root. */
void conf_build_route_filters(struct conf_ctx *cx, struct conf_route *r, const struct cnode *n,
                              const char *action);
void conf_route_free_filters(struct conf_route *r);
void conf_build_globals_filters(struct conf_ctx *cx, struct conf *c, const struct cnode *root);

/* Upstream resilience keys (conf_upstream.c): defaults first, then the keys
 * health, passive, retry_*, slow_start, max_pending, pending_timeout of n;
 * free_extra releases what they allocated. */
void conf_upstream_defaults(struct conf_upstream *u);
void conf_build_upstream_extra(struct conf_ctx *cx, struct conf_upstream *u,
                               const struct cnode *n);
void conf_upstream_free_extra(struct conf_upstream *u);

/* Schema sections implemented in conf_route.c. */
void conf_build_routes(struct conf_ctx *cx, struct conf *c, const struct cnode *routes);

#endif
