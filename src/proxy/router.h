/* router.h - maps a request (host, path, method) to the first matching route
 * of a config snapshot. Pure lookups over the immutable snapshot: no lock, no
 * allocation; the only mutable thing is a per-worker scratch holding PCRE2
 * match data for regex routes. */
#ifndef PORTICO_PROXY_ROUTER_H
#define PORTICO_PROXY_ROUTER_H

#include "conf/conf.h"
#include "core/str.h"
#include "http/msg.h"

/* Per-worker scratch for router_match (PCRE2 match data). Not thread-safe:
 * one per worker. router_scratch_new() aborts on OOM and never returns NULL. */
struct router_scratch;
struct router_scratch *router_scratch_new(void);
void router_scratch_free(struct router_scratch *rs); /* NULL is a no-op */

/* Returns the first route of c->routes (file order) whose host, path and
 * method conditions all match, or NULL when none does (the caller answers
 * 404). The result points into `c` and lives as long as the snapshot.
 *
 *  host   the Host / :authority value as received: may carry a port
 *         ("a.com:8080", "[::1]:8080"), uppercase letters and one trailing
 *         dot, all of which are ignored. Empty: only host-less routes match.
 *         Route host NULL = any; exact routes compare the whole name
 *         case-insensitively; wildcard routes ("*.example.com", stored as
 *         ".example.com") match any name with at least one more character
 *         before the suffix ("a.example.com", "a.b.example.com"), but not
 *         "example.com". An IPv6 literal matches a route written either as
 *         "[::1]" or "::1".
 *  path   the path without the query (anything from a '?' on is ignored):
 *         PATH_ANY, PATH_PREFIX (byte prefix), PATH_EXACT (byte equality) or
 *         PATH_REGEX (pcre2_match of route->regex, unanchored unless the
 *         pattern anchors itself; JIT is used when the loader JIT-compiled it).
 *  method method (the enum) and method_name (its bytes, used for
 *         HTTP_M_OTHER): a route with no method bits and no method names
 *         accepts any method; otherwise a known method must have its bit
 *         (1u << method) set and an extension method must equal one of
 *         route->method_names (case-sensitive, methods are). HEAD is NOT
 *         implied by GET: a route for GET only does not match HEAD.
 *
 *  scratch  this worker's scratch; NULL is allowed (regex routes then
 *           allocate match data per call: tests and cold paths only).
 * Any thread, each with its own scratch. */
const struct conf_route *router_match(const struct conf *c, struct str host, struct str path,
                                      enum http_method method, struct str method_name,
                                      struct router_scratch *scratch);

/* The host part of a Host value as router_match sees it: port and one
 * trailing dot removed, brackets of an IPv6 literal kept. Not lowercased. */
struct str router_host_name(struct str host);

#endif
