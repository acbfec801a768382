/* conf.h - the config snapshot: an immutable, reference-counted tree built from
 * YAML (or, for the admin API, JSON) and validated before any worker sees it.
 * Workers read it without locks; a reload builds a new one and swaps a pointer.
 * The only mutable parts are the runtime states the snapshot points at
 * (server_state), which are shared atomics. */
#ifndef PORTICO_CONF_CONF_H
#define PORTICO_CONF_CONF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/tmpl.h"

struct server_state; /* lb/server.h: health and passive-failure state */

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

enum lb_algo { LB_ROUND_ROBIN = 0, LB_LEAST_CONN, LB_IP_HASH, LB_RANDOM, LB_HASH };

struct conf_timeouts {
    uint64_t client_header_ms;
    uint64_t client_body_ms;
    uint64_t keepalive_ms;
    uint64_t send_ms;
    uint64_t upstream_connect_ms;
    uint64_t upstream_read_ms;
    uint64_t upstream_write_ms;
};

struct conf_limits {
    uint64_t max_header_bytes;
    uint64_t max_request_line; /* extension: request line longer than this -> 414 */
    uint64_t max_body_bytes;   /* 0 = unlimited */
    uint64_t max_connections;
};

enum listener_proto { LISTEN_HTTP = 0, LISTEN_TCP, LISTEN_TLS_PASSTHROUGH };

struct conf_listener {
    char *name;
    char *listen; /* as written */
    struct addr addr;
    enum listener_proto protocol;
    bool redirect_https;
    unsigned index;
};

struct conf_server {
    char *address; /* as written, "127.0.0.1:3000" */
    struct addr addr;
    unsigned weight; /* >= 1 */
    bool backup;
    unsigned index; /* position within its upstream */
    unsigned gid;   /* position among all servers of the snapshot */
    struct server_state *state; /* shared runtime state, see lb/server.h */
    const struct conf_upstream *upstream;
};

struct conf_upstream {
    char *name;
    enum lb_algo balance;
    struct tmpl *hash_key; /* for LB_HASH; NULL otherwise */
    struct conf_server *servers;
    size_t n_servers;
    unsigned keepalive;       /* idle pooled connections per worker */
    unsigned retries;         /* extra attempts on another server */
    unsigned max_connections; /* per server, 0 = unlimited */
    uint64_t connect_timeout_ms, read_timeout_ms, write_timeout_ms; /* resolved */
    uint64_t fail_timeout_ms; /* passive: a refusing server is skipped this long */
    unsigned index;
};

enum header_op { HDR_SET = 0, HDR_ADD, HDR_REMOVE };

struct header_rule {
    enum header_op op;
    char *name;
    size_t name_len;
    struct tmpl *value; /* NULL for HDR_REMOVE */
};

struct header_rules {
    struct header_rule *rules;
    size_t n;
};

enum path_kind { PATH_ANY = 0, PATH_PREFIX, PATH_EXACT, PATH_REGEX };
enum route_action { ROUTE_PROXY = 0, ROUTE_RESPOND, ROUTE_REDIRECT };

struct conf_route {
    char *name; /* `name:` if given, else "route<N>" */
    unsigned index;
    /* match */
    char *host;          /* NULL = any host; lowercase */
    bool host_wildcard;  /* "*.example.com": host holds ".example.com" */
    enum path_kind path_kind;
    char *path; /* prefix or exact path, or the regex source */
    size_t path_len;
    void *regex;          /* pcre2_code * (JIT-compiled) for PATH_REGEX */
    uint32_t methods;     /* bit (1 << enum http_method); 0 = any */
    char **method_names;  /* methods not in enum http_method (extension methods) */
    size_t n_method_names;
    /* action */
    enum route_action action;
    const struct conf_upstream *upstream;
    int respond_status;
    char *respond_body;
    size_t respond_body_len;
    char *respond_content_type; /* NULL: text/plain */
    struct tmpl *redirect_to;
    int redirect_status;
    struct header_rules req_headers, resp_headers;
};

struct conf {
    atomic_int refs;
    char *path; /* config file, NULL in quick mode */
    unsigned workers;
    uint64_t shutdown_grace_ms;
    struct {
        char *listen; /* NULL = no admin API */
        char *token_file;
    } admin;
    struct {
        char *access; /* NULL = off; "stdout"; or a path */
        char *error;  /* "stderr" (default), "stdout" or a path */
        enum log_level level;
    } log;
    struct cidr *trusted_proxies;
    size_t n_trusted_proxies;
    struct conf_timeouts timeouts;
    struct conf_limits limits;
    struct conf_listener *listeners;
    size_t n_listeners;
    struct conf_upstream *upstreams;
    size_t n_upstreams;
    struct conf_route *routes;
    size_t n_routes;
    size_t n_servers_total; /* for per-worker arrays indexed by conf_server.gid */
};

/* Error list filled by the loaders: each entry is "file:line:col: message". */
struct conf_errors {
    char **msgs;
    size_t n;
};
void conf_errors_free(struct conf_errors *e);

/* Loads and validates a YAML file. Returns a snapshot with refs = 1, or NULL
 * with every error found appended to errs. */
struct conf *conf_load_file(const char *path, struct conf_errors *errs);
/* Same from an in-memory document; `name` is used in error messages. */
struct conf *conf_load_buffer(const char *name, const char *data, size_t len,
                              struct conf_errors *errs);
/* Quick mode: listen on `from`, round-robin over `to[0..n)`. */
struct conf *conf_quick(const char *from, const char *const *to, size_t n,
                        struct conf_errors *errs);

void conf_ref(struct conf *c);
/* Drops a reference; frees the snapshot (and its compiled regexes and
 * templates) when it was the last. */
void conf_unref(struct conf *c);

const struct conf_upstream *conf_find_upstream(const struct conf *c, const char *name);

#endif
