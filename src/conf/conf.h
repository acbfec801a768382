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
struct cnode;        /* conf_node.h: the document tree a snapshot was built from */

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
    uint64_t max_concurrent_streams; /* HTTP/2 streams per connection (SETTINGS) */
};

enum listener_proto { LISTEN_HTTP = 0, LISTEN_TCP, LISTEN_TLS_PASSTHROUGH };

struct conf_tls_cert {
    char *cert, *key; /* resolved paths (relative ones against the config's directory) */
    char *ocsp;       /* DER OCSP response to staple, or NULL */
    unsigned line, col;
};

/* listeners[].tls: settings only. The OpenSSL contexts are built from them by
 * net/tls.c (tls_build_listeners) once the snapshot is validated. */
struct conf_tls {
    struct conf_tls_cert *certs;
    size_t n_certs;
    int min_version; /* 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3) */
    bool alpn_h2, alpn_http11;
    bool alpn_h2_first; /* server preference order */
    bool resumption;
    char *client_ca; /* require client certificates signed by it (mTLS) */
    unsigned ca_line, ca_col;
    unsigned line, col;
    void *ctx;                 /* built context (net/tls.c), NULL until built */
    void (*ctx_free)(void *);  /* how the snapshot releases ctx */
};

struct conf_listener {
    char *name;
    char *listen; /* as written */
    struct addr addr;
    enum listener_proto protocol;
    bool redirect_https;
    bool h2c; /* extension: HTTP/2 with prior knowledge on a plain listener */
    struct conf_tls *tls; /* NULL for plain HTTP */
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

/* upstreams.X.health: active checks, run by the checker thread. */
struct conf_health {
    bool enabled;
    bool tcp;          /* type: tcp (connect only) */
    char *uri;         /* default "/" */
    char *host;        /* Host header; NULL: the server's address */
    char *expect_body; /* substring the body must contain; NULL: any */
    uint64_t interval_ms, timeout_ms;
    unsigned rise, fall;
    unsigned status_min, status_max; /* expect_status range, inclusive */
};

/* upstreams.X.tls: TLS towards the servers (client side). */
struct conf_upstream_tls {
    bool verify;       /* verify the server certificate (default true) */
    char *ca;          /* CA file; NULL = the system's trust store */
    char *sni;         /* server name to send and verify; NULL = the server's host */
    char *cert, *key;  /* client certificate (mTLS to the upstream) */
    unsigned line, col;
    void *ctx;                /* SSL_CTX * built by net/tls.c */
    void (*ctx_free)(void *); /* how the snapshot releases ctx */
};

struct conf_upstream {
    char *name;
    struct conf_upstream_tls *tls; /* NULL = plain TCP */
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
    struct conf_health health;
    struct {
        unsigned consecutive_failures; /* 0 = outlier detection off */
        uint64_t eject_ms;
        unsigned max_ejected_percent;
    } passive;
    /* Retries (see docs/config.md, retry_on). */
    unsigned retry_on;         /* RETRY_CONNECT | RETRY_TIMEOUT | RETRY_RESET */
    uint8_t retry_status[13];  /* bitmap of statuses 500..599 (bit = status - 500) */
    bool retry_non_idempotent;
    unsigned retry_budget_pct; /* retries in flight as a share of requests, per worker */
    uint64_t retry_body_max;   /* request bodies up to this are kept for replay */
    uint64_t slow_start_ms;    /* 0 = off */
    unsigned max_pending;      /* requests that may wait for a full group; 0 = 503 at once */
    uint64_t pending_timeout_ms;
    _Atomic unsigned *pending; /* shared count of waiting requests (owned) */
};

#define RETRY_CONNECT 1u /* connect refused / failed / timed out: any method */
#define RETRY_TIMEOUT 2u /* no response head within upstream_read */
#define RETRY_RESET 4u   /* closed or reset before a response head */
/* Minimum concurrent retries per worker whatever retry_budget says. */
#define RETRY_BUDGET_MIN 3

static inline bool conf_retry_status(const struct conf_upstream *u, int status)
{
    return status >= 500 && status <= 599 &&
           (u->retry_status[(status - 500) / 8] >> ((status - 500) % 8)) & 1;
}

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

/* Content codings portico can produce (filters/compress.c); the values
 * index conf_compress.levels. */
enum zalg { ZALG_IDENTITY = 0, ZALG_GZIP, ZALG_BR, ZALG_ZSTD, ZALG__COUNT };

/* routes[].compress */
struct conf_compress {
    uint8_t algs[ZALG__COUNT]; /* enum zalg, server preference order */
    size_t n_algs;
    uint64_t min_length;       /* bodies known to be shorter are sent as they are (256) */
    char **types;              /* lowercase media types; a trailing "/ *" (no space) matches a family */
    size_t n_types;
    int levels[ZALG__COUNT];   /* gzip 1, br 4, zstd 3 unless set */
};

/* routes[].cache: `true` or a mapping */
struct conf_cache_valid {
    int status;      /* 0 = any status ("any") */
    uint64_t ttl_ms; /* used when the origin gives no freshness information */
};
struct conf_cache {
    struct conf_cache_valid *valid;
    size_t n_valid;
    struct tmpl *key;          /* NULL = default: {scheme}://{host}{path} plus ?{query} when present */
    uint64_t max_object_size;  /* larger bodies pass through uncached (default 8m) */
    bool store_set_cookie;     /* `cookies: true`: store responses with Set-Cookie (the header kept) */
    uint64_t lock_timeout_ms;  /* request collapsing: how long a miss waits for another's fill (5s) */
    uint64_t stale_if_error_ms;        /* default stale-if-error when the origin gives none (0) */
    uint64_t stale_while_revalidate_ms; /* likewise for stale-while-revalidate (0) */
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
    struct conf_cache *cache;       /* NULL = not cached */
    struct conf_compress *compress; /* NULL = not compressed */
};

struct conf {
    atomic_int refs;
    char *path; /* config file, NULL in quick mode */
    /* The document tree this snapshot was built from (owned): GET /config
     * renders it, the admin API's edits start from a copy of it. */
    struct cnode *tree;
    /* Set by the main thread before publishing: 1 for the start-up config,
     * +1 for every config applied since (reload or admin API). */
    unsigned long generation;
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
    struct {
        uint64_t size;      /* `cache_size`: memory tier bytes (default 256m) */
        char *path;         /* `cache_path`: disk tier directory, NULL = none */
        uint64_t disk_size; /* `cache_disk_size`: disk tier bytes (default 1g) */
    } cache;
    bool tracing; /* `tracing: true`: generate a W3C traceparent when absent */
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
/* Appends a message without a position (e is allowed to be NULL). */
void conf_errors_add(struct conf_errors *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Loads and validates a YAML file. Returns a snapshot with refs = 1, or NULL
 * with every error found appended to errs. */
struct conf *conf_load_file(const char *path, struct conf_errors *errs);
/* Same from an in-memory document; `name` is used in error messages. */
struct conf *conf_load_buffer(const char *name, const char *data, size_t len,
                              struct conf_errors *errs);
/* Quick mode: listen on `from`, round-robin over `to[0..n)`. */
struct conf *conf_quick(const char *from, const char *const *to, size_t n,
                        struct conf_errors *errs);

/* ---- admin API (conf_json.c, conf_edit.c) ---- */

/* Loads and validates a JSON document (the tree the YAML file would give).
 * `path` is the running config file (NULL in quick mode): relative paths
 * resolve against its directory, and the snapshot keeps it as its path.
 * Errors are located by JSON pointer ("/upstreams/api/servers/0/address:
 * ..."); a syntax error is one message with line, column and byte offset,
 * and sets *bad_json (when not NULL). Any thread. */
struct conf *conf_load_json(const char *path, const char *data, size_t len,
                            struct conf_errors *errs, bool *bad_json);
/* The tree of c as JSON text (malloc'd, NUL-terminated, indented). */
char *conf_to_json(const struct conf *c, size_t *len);

enum conf_edit_rc {
    CONF_EDIT_OK = 0,
    CONF_EDIT_BAD_JSON,    /* body is not JSON, or not an object (errs says why) */
    CONF_EDIT_NO_UPSTREAM, /* no upstream of that name */
    CONF_EDIT_NO_SERVER,   /* no server of that address in the upstream */
    CONF_EDIT_DUPLICATE,   /* the upstream already has a server at that address */
    CONF_EDIT_INVALID,     /* the edited config does not validate (errs lists why) */
};
/* A new, validated snapshot (refs 1, in *out): c's tree with the server
 * described by `json` (an object {address, weight, backup}) appended to
 * upstreams.UPSTREAM.servers. Any thread; c is only read. */
enum conf_edit_rc conf_edit_add_server(const struct conf *c, const char *upstream,
                                       const char *json, size_t len, struct conf **out,
                                       struct conf_errors *errs);
/* Same with the server at `address` (as written in the config) removed. */
enum conf_edit_rc conf_edit_remove_server(const struct conf *c, const char *upstream,
                                          const char *address, struct conf **out,
                                          struct conf_errors *errs);
/* Before next replaces prev: the settings a reload cannot change (workers,
 * admin, log.access, log.error) are given prev's values, in the snapshot and
 * in its tree, so that GET /config shows what runs; one warning per setting
 * kept is appended to warnings. Main thread, before next is published. */
void conf_keep_restart_settings(struct conf *next, const struct conf *prev, unsigned n_workers,
                                struct conf_errors *warnings);

void conf_tls_free(struct conf_tls *t);
void conf_upstream_tls_free(struct conf_upstream_tls *t);

void conf_ref(struct conf *c);
/* Drops a reference; frees the snapshot (and its compiled regexes and
 * templates) when it was the last. */
void conf_unref(struct conf *c);

const struct conf_upstream *conf_find_upstream(const struct conf *c, const char *name);

#endif
