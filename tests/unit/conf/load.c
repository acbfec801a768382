/* Unit tests for the config loader: a complete valid config, defaults, the
 * tree/JSON-pointer helpers, and quick mode. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/conf_node.h"
#include "http/msg.h"
#include "lb/server.h"

static struct conf *load(const char *yaml, struct conf_errors *e)
{
    return conf_load_buffer("t.yaml", yaml, strlen(yaml), e);
}

static struct conf *load_ok(const char *yaml)
{
    struct conf_errors e = {0};
    struct conf *c = load(yaml, &e);
    for (size_t i = 0; i < e.n; i++)
        cr_log_error("%s", e.msgs[i]);
    cr_assert_not_null(c, "config should load");
    cr_assert_eq(e.n, 0);
    conf_errors_free(&e);
    return c;
}

static const char full_yaml[] =
    "workers: 3\n"
    "shutdown_grace: 5s\n"
    "admin:\n"
    "  listen: 127.0.0.1:9901\n"
    "  token_file: admin.token\n"
    "log:\n"
    "  access: /var/log/portico/access.log\n"
    "  error: stdout\n"
    "  level: debug\n"
    "trusted_proxies: [127.0.0.1/32, 10.0.0.0/8, \"::1\"]\n"
    "timeouts:\n"
    "  client_header: 1s\n"
    "  client_body: 2s\n"
    "  keepalive: 3s\n"
    "  send: 4s\n"
    "  upstream_connect: 500ms\n"
    "  upstream_read: 6s\n"
    "  upstream_write: 7s\n"
    "limits:\n"
    "  max_header_bytes: 32k\n"
    "  max_request_line: 4k\n"
    "  max_body_bytes: 0\n"
    "  max_connections: 500\n"
    "listeners:\n"
    "  - name: web\n"
    "    listen: \":8080\"\n"
    "    protocol: http\n"
    "    redirect_https: true\n"
    "  - listen: \"[::1]:8081\"\n"
    "    tls: false\n"
    "upstreams:\n"
    "  api:\n"
    "    balance: hash\n"
    "    hash_key: \"{client_ip}\"\n"
    "    servers:\n"
    "      - {address: 127.0.0.1:3000, weight: 1}\n"
    "      - {address: 127.0.0.1:3001, weight: 2}\n"
    "      - {address: 127.0.0.1:3002, backup: true}\n"
    "    keepalive: 64\n"
    "    retries: 2\n"
    "    max_connections: 1000\n"
    "    fail_timeout: 3s\n"
    "    timeouts: {upstream_read: 90s}\n"
    "    tls: false\n"
    "  static.v2:\n"
    "    servers: [\"127.0.0.1:4000\"]\n"
    "routes:\n"
    "  - name: api\n"
    "    match:\n"
    "      host: API.Example.com\n"
    "      path: /api/\n"
    "      methods: [GET, POST, PURGE]\n"
    "    upstream: api\n"
    "    headers:\n"
    "      request:  {set: {X-Real-IP: \"{client_ip}\"}, remove: [X-Debug]}\n"
    "      response:\n"
    "        add: {Strict-Transport-Security: \"max-age=31536000\"}\n"
    "        set: {X-Route: api}\n"
    "        remove: [Server, X-Powered-By]\n"
    "  - match: {host: \"*.example.com\", path: \"=/exact\"}\n"
    "    upstream: static.v2\n"
    "  - match: {path: \"~^/re/[0-9]+$\"}\n"
    "    redirect: {to: \"https://{host}/new/\", status: 301}\n"
    "  - match: {path: /old/}\n"
    "    redirect: {to: \"/new\"}\n"
    "  - respond: {status: 404, body: \"not found\\n\", content_type: text/html}\n"
    "  - match:\n"
    "    respond: {}\n";

Test(conf_load, full_config)
{
    struct conf *c = load_ok(full_yaml);
    char buf[64];

    cr_assert_eq(atomic_load(&c->refs), 1);
    cr_assert_null(c->path, "a buffer has no path");
    cr_assert_eq(c->workers, 3);
    cr_assert_eq(c->shutdown_grace_ms, 5000);
    cr_assert_str_eq(c->admin.listen, "127.0.0.1:9901");
    cr_assert_str_eq(c->admin.token_file, "admin.token");
    cr_assert_str_eq(c->log.access, "/var/log/portico/access.log");
    cr_assert_str_eq(c->log.error, "stdout");
    cr_assert_eq(c->log.level, LOG_DEBUG);
    cr_assert_eq(c->n_trusted_proxies, 3);
    cr_assert_eq(c->trusted_proxies[1].prefix, 8);
    cr_assert_eq(c->trusted_proxies[2].family, AF_INET6);

    cr_assert_eq(c->timeouts.client_header_ms, 1000);
    cr_assert_eq(c->timeouts.client_body_ms, 2000);
    cr_assert_eq(c->timeouts.keepalive_ms, 3000);
    cr_assert_eq(c->timeouts.send_ms, 4000);
    cr_assert_eq(c->timeouts.upstream_connect_ms, 500);
    cr_assert_eq(c->timeouts.upstream_read_ms, 6000);
    cr_assert_eq(c->timeouts.upstream_write_ms, 7000);
    cr_assert_eq(c->limits.max_header_bytes, 32768);
    cr_assert_eq(c->limits.max_request_line, 4096);
    cr_assert_eq(c->limits.max_body_bytes, 0);
    cr_assert_eq(c->limits.max_connections, 500);

    cr_assert_eq(c->n_listeners, 2);
    cr_assert_str_eq(c->listeners[0].name, "web");
    cr_assert_str_eq(c->listeners[0].listen, ":8080");
    cr_assert_eq(c->listeners[0].protocol, LISTEN_HTTP);
    cr_assert(c->listeners[0].redirect_https);
    addr_str((struct sockaddr *)&c->listeners[0].addr.ss, buf, sizeof(buf));
    cr_assert_str_eq(buf, "0.0.0.0:8080");
    cr_assert_str_eq(c->listeners[1].name, "listener1");
    cr_assert_eq(c->listeners[1].index, 1);
    cr_assert_not(c->listeners[1].redirect_https);
    cr_assert_eq(c->listeners[1].addr.ss.ss_family, AF_INET6);

    cr_assert_eq(c->n_upstreams, 2);
    const struct conf_upstream *u = conf_find_upstream(c, "api");
    cr_assert_not_null(u);
    cr_assert_eq(u->index, 0);
    cr_assert_eq(u->balance, LB_HASH);
    cr_assert_not_null(u->hash_key);
    cr_assert_str_eq(u->hash_key->src, "{client_ip}");
    cr_assert_eq(u->n_servers, 3);
    cr_assert_str_eq(u->servers[1].address, "127.0.0.1:3001");
    cr_assert_eq(u->servers[0].weight, 1);
    cr_assert_eq(u->servers[1].weight, 2);
    cr_assert_eq(u->servers[2].weight, 1);
    cr_assert(u->servers[2].backup);
    cr_assert_not(u->servers[0].backup);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(u->servers[i].index, i);
        cr_assert_eq(u->servers[i].gid, i);
        cr_assert_eq(u->servers[i].upstream, u);
        cr_assert_not_null(u->servers[i].state);
    }
    cr_assert_eq(u->keepalive, 64);
    cr_assert_eq(u->retries, 2);
    cr_assert_eq(u->max_connections, 1000);
    cr_assert_eq(u->fail_timeout_ms, 3000);
    cr_assert_eq(u->connect_timeout_ms, 500, "inherited from the global timeouts");
    cr_assert_eq(u->read_timeout_ms, 90000, "overridden");
    cr_assert_eq(u->write_timeout_ms, 7000);

    const struct conf_upstream *s = conf_find_upstream(c, "static.v2");
    cr_assert_not_null(s);
    cr_assert_eq(s->index, 1);
    cr_assert_eq(s->balance, LB_ROUND_ROBIN);
    cr_assert_null(s->hash_key);
    cr_assert_eq(s->n_servers, 1);
    cr_assert_eq(s->servers[0].gid, 3);
    cr_assert_eq(s->keepalive, 32);
    cr_assert_eq(s->retries, 1);
    cr_assert_eq(s->fail_timeout_ms, 10000);
    cr_assert_eq(c->n_servers_total, 4);
    cr_assert_null(conf_find_upstream(c, "nope"));

    cr_assert_eq(c->n_routes, 6);
    const struct conf_route *r = &c->routes[0];
    cr_assert_str_eq(r->name, "api");
    cr_assert_str_eq(r->host, "api.example.com", "host is lowercased");
    cr_assert_not(r->host_wildcard);
    cr_assert_eq(r->path_kind, PATH_PREFIX);
    cr_assert_str_eq(r->path, "/api/");
    cr_assert_eq(r->path_len, 5);
    cr_assert_eq(r->methods, (1u << HTTP_M_GET) | (1u << HTTP_M_POST));
    cr_assert_eq(r->n_method_names, 1);
    cr_assert_str_eq(r->method_names[0], "PURGE");
    cr_assert_eq(r->action, ROUTE_PROXY);
    cr_assert_eq(r->upstream, u);
    cr_assert_eq(r->req_headers.n, 2);
    cr_assert_eq(r->req_headers.rules[0].op, HDR_REMOVE);
    cr_assert_str_eq(r->req_headers.rules[0].name, "X-Debug");
    cr_assert_null(r->req_headers.rules[0].value);
    cr_assert_eq(r->req_headers.rules[1].op, HDR_SET);
    cr_assert_str_eq(r->req_headers.rules[1].name, "X-Real-IP");
    cr_assert_eq(r->req_headers.rules[1].name_len, 9);
    cr_assert_str_eq(r->req_headers.rules[1].value->src, "{client_ip}");
    /* response: remove, remove, set, add - whatever the file order */
    cr_assert_eq(r->resp_headers.n, 4);
    cr_assert_eq(r->resp_headers.rules[0].op, HDR_REMOVE);
    cr_assert_str_eq(r->resp_headers.rules[0].name, "Server");
    cr_assert_eq(r->resp_headers.rules[1].op, HDR_REMOVE);
    cr_assert_str_eq(r->resp_headers.rules[1].name, "X-Powered-By");
    cr_assert_eq(r->resp_headers.rules[2].op, HDR_SET);
    cr_assert_str_eq(r->resp_headers.rules[2].name, "X-Route");
    cr_assert_eq(r->resp_headers.rules[3].op, HDR_ADD);
    cr_assert_str_eq(r->resp_headers.rules[3].value->src, "max-age=31536000");

    r = &c->routes[1];
    cr_assert_str_eq(r->name, "route1");
    cr_assert(r->host_wildcard);
    cr_assert_str_eq(r->host, ".example.com");
    cr_assert_eq(r->path_kind, PATH_EXACT);
    cr_assert_str_eq(r->path, "/exact");
    cr_assert_eq(r->methods, 0);
    cr_assert_eq(r->upstream, s);

    r = &c->routes[2];
    cr_assert_eq(r->path_kind, PATH_REGEX);
    cr_assert_str_eq(r->path, "^/re/[0-9]+$");
    cr_assert_not_null(r->regex);
    cr_assert_null(r->host);
    cr_assert_eq(r->action, ROUTE_REDIRECT);
    cr_assert_eq(r->redirect_status, 301);
    cr_assert_str_eq(r->redirect_to->src, "https://{host}/new/");

    r = &c->routes[3];
    cr_assert_eq(r->redirect_status, 302, "default redirect status");

    r = &c->routes[4];
    cr_assert_eq(r->path_kind, PATH_ANY);
    cr_assert_eq(r->action, ROUTE_RESPOND);
    cr_assert_eq(r->respond_status, 404);
    cr_assert_eq(r->respond_body_len, 10);
    cr_assert_str_eq(r->respond_body, "not found\n");
    cr_assert_str_eq(r->respond_content_type, "text/html");

    r = &c->routes[5];
    cr_assert_eq(r->respond_status, 200);
    cr_assert_null(r->respond_body);
    cr_assert_eq(r->respond_body_len, 0);
    cr_assert_null(r->respond_content_type);

    conf_ref(c);
    cr_assert_eq(atomic_load(&c->refs), 2);
    conf_unref(c);
    conf_unref(c);
}

Test(conf_load, defaults)
{
    struct conf *c = load_ok("listeners: [{listen: ':8080'}]\n");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    cr_assert_eq(c->workers, ncpu < 1 ? 1 : ncpu > 256 ? 256 : (unsigned)ncpu);
    cr_assert_eq(c->shutdown_grace_ms, 30000);
    cr_assert_null(c->admin.listen);
    cr_assert_null(c->admin.token_file);
    cr_assert_null(c->log.access);
    cr_assert_str_eq(c->log.error, "stderr");
    cr_assert_eq(c->log.level, LOG_INFO);
    cr_assert_eq(c->n_trusted_proxies, 0);
    cr_assert_eq(c->timeouts.client_header_ms, 10000);
    cr_assert_eq(c->timeouts.client_body_ms, 60000);
    cr_assert_eq(c->timeouts.keepalive_ms, 75000);
    cr_assert_eq(c->timeouts.send_ms, 60000);
    cr_assert_eq(c->timeouts.upstream_connect_ms, 5000);
    cr_assert_eq(c->timeouts.upstream_read_ms, 60000);
    cr_assert_eq(c->timeouts.upstream_write_ms, 60000);
    cr_assert_eq(c->limits.max_header_bytes, 16384);
    cr_assert_eq(c->limits.max_request_line, 8192);
    cr_assert_eq(c->limits.max_body_bytes, 10u << 20);
    cr_assert_eq(c->limits.max_connections, 100000);
    cr_assert_eq(c->n_listeners, 1);
    cr_assert_str_eq(c->listeners[0].name, "listener0");
    cr_assert_eq(c->n_upstreams, 0);
    cr_assert_eq(c->n_routes, 0, "no routes: everything is a 404");
    cr_assert_eq(c->n_servers_total, 0);
    conf_unref(c);
}

Test(conf_load, workers_auto_and_small_header_limit)
{
    struct conf *c = load_ok("workers: auto\n"
                             "log: {access: \"off\", error: /tmp/e.log}\n"
                             "limits: {max_header_bytes: 4k}\n"
                             "listeners: [{listen: ':8080'}]\n");
    cr_assert_geq(c->workers, 1);
    cr_assert_null(c->log.access);
    cr_assert_str_eq(c->log.error, "/tmp/e.log");
    cr_assert_eq(c->limits.max_request_line, 4096,
                 "the default request line limit follows a smaller header limit");
    conf_unref(c);
}

Test(conf_load, aliases_and_empty_sections)
{
    struct conf *c = load_ok("timeouts:\n"
                             "admin:\n"
                             "listeners: [{listen: ':8080'}]\n"
                             "upstreams:\n"
                             "  a:\n"
                             "    servers: &pool\n"
                             "      - 127.0.0.1:1\n"
                             "      - {address: 127.0.0.1:2, weight: 5}\n"
                             "  b: {servers: *pool, balance: least_conn}\n"
                             "routes:\n"
                             "  - upstream: b\n");
    const struct conf_upstream *b = conf_find_upstream(c, "b");
    cr_assert_null(c->admin.listen, "an empty section is absent");
    cr_assert_eq(c->timeouts.send_ms, 60000);
    cr_assert_not_null(b);
    cr_assert_eq(b->balance, LB_LEAST_CONN);
    cr_assert_eq(b->n_servers, 2);
    cr_assert_eq(b->servers[1].weight, 5);
    cr_assert_eq(b->servers[0].gid, 2);
    cr_assert_eq(c->n_servers_total, 4);
    cr_assert_eq(c->routes[0].upstream, b);
    conf_unref(c);
}

Test(conf_load, from_file)
{
    char path[] = "/tmp/portico-conf-XXXXXX";
    int fd = mkstemp(path);
    struct conf_errors e = {0};
    struct conf *c;

    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, full_yaml, strlen(full_yaml)), (ssize_t)strlen(full_yaml));
    close(fd);
    c = conf_load_file(path, &e);
    cr_assert_not_null(c);
    cr_assert_str_eq(c->path, path);
    cr_assert_eq(c->n_routes, 6);
    conf_unref(c);
    unlink(path);

    c = conf_load_file("/nonexistent/portico.yaml", &e);
    cr_assert_null(c);
    cr_assert_eq(e.n, 1);
    cr_assert_str_eq(e.msgs[0], "/nonexistent/portico.yaml: cannot open: No such file or directory");
    conf_errors_free(&e);
}

Test(conf_load, example_file)
{
    struct conf_errors e = {0};
    struct conf *c = conf_load_file("examples/portico.yaml", &e);

    if (!c && e.n && strstr(e.msgs[0], "cannot open"))
        cr_skip_test("run from the repository root to check examples/portico.yaml");
    for (size_t i = 0; i < e.n; i++)
        cr_log_error("%s", e.msgs[i]);
    cr_assert_not_null(c, "examples/portico.yaml must load");
    cr_assert_not_null(conf_find_upstream(c, "demo"));
    conf_unref(c);
    conf_errors_free(&e);
}

/* ---- the generic tree ---- */

Test(conf_node, json_pointer)
{
    struct conf_ctx cx = {.file = "t"};
    const char *y = "upstreams:\n  api:\n    servers:\n      - {address: x}\n  \"a/b~c\": 1\n";
    struct cnode *root = conf_yaml_parse(&cx, y, strlen(y));
    struct cnode *ups, *addr;
    char *p;

    cr_assert_not_null(root);
    cr_assert_eq(cx.n_errs, 0);
    ups = cnode_map_get(root, "upstreams");
    addr = cnode_map_get(cnode_map_get(cnode_map_get(ups, "api"), "servers")->kids[0], "address");
    cr_assert_not_null(addr);
    cr_assert_eq(addr->line, 4);
    cr_assert_eq(addr->col, 19);
    p = cnode_pointer(addr);
    cr_assert_str_eq(p, "/upstreams/api/servers/0/address");
    free(p);
    p = cnode_pointer(cnode_key_of(addr));
    cr_assert_str_eq(p, "/upstreams/api/servers/0/address", "a key names its member");
    free(p);
    p = cnode_pointer(cnode_map_get(ups, "a/b~c"));
    cr_assert_str_eq(p, "/upstreams/a~1b~0c");
    free(p);
    p = cnode_pointer(root);
    cr_assert_str_eq(p, "");
    free(p);
    cnode_free(root);
    conf_ctx_flush(&cx, NULL);
}

Test(conf_node, errors_by_json_pointer)
{
    struct conf_ctx cx = {.file = "t"};
    struct conf_errors e = {0};
    const char *y = "listeners: [{listen: ':8080'}]\n"
                    "upstreams: {api: {servers: [{address: 'bad'}]}}\n";
    struct cnode *root = conf_yaml_parse(&cx, y, strlen(y));
    struct conf *c;

    cr_assert_not_null(root);
    conf_ctx_flush(&cx, NULL);
    c = conf_load_tree("PUT /config", root, true, &e);
    cr_assert_null(c);
    cr_assert_eq(e.n, 1);
    cr_assert_str_eq(e.msgs[0], "/upstreams/api/servers/0/address: invalid address 'bad': "
                                "missing port (expected host:port or :port)");
    conf_errors_free(&e);
    cnode_free(root);
}

Test(conf_node, null_forms)
{
    struct conf_ctx cx = {.file = "t"};
    const char *y = "a:\nb: ~\nc: null\nd: ''\ne: 'null'\nf: x\n";
    struct cnode *root = conf_yaml_parse(&cx, y, strlen(y));

    cr_assert_not_null(root);
    cr_assert(cnode_is_null(cnode_map_get(root, "a")));
    cr_assert(cnode_is_null(cnode_map_get(root, "b")));
    cr_assert(cnode_is_null(cnode_map_get(root, "c")));
    cr_assert_not(cnode_is_null(cnode_map_get(root, "d")), "quoted empty is a string");
    cr_assert_not(cnode_is_null(cnode_map_get(root, "e")));
    cr_assert_not(cnode_is_null(cnode_map_get(root, "f")));
    cnode_free(root);
    conf_ctx_flush(&cx, NULL);
}

/* ---- quick mode ---- */

Test(conf_quick, builds_a_proxy)
{
    const char *to[] = {"127.0.0.1:3000", "[::1]:3001"};
    struct conf_errors e = {0};
    struct conf *c = conf_quick(":8080", to, 2, &e);
    char buf[64];

    cr_assert_not_null(c);
    cr_assert_eq(e.n, 0);
    cr_assert_null(c->path);
    cr_assert_eq(c->n_listeners, 1);
    addr_str((struct sockaddr *)&c->listeners[0].addr.ss, buf, sizeof(buf));
    cr_assert_str_eq(buf, "0.0.0.0:8080");
    cr_assert_eq(c->n_upstreams, 1);
    cr_assert_str_eq(c->upstreams[0].name, "default");
    cr_assert_eq(c->upstreams[0].balance, LB_ROUND_ROBIN);
    cr_assert_eq(c->upstreams[0].n_servers, 2);
    cr_assert_str_eq(c->upstreams[0].servers[1].address, "[::1]:3001");
    cr_assert_not_null(c->upstreams[0].servers[1].state);
    cr_assert_eq(c->n_servers_total, 2);
    cr_assert_eq(c->n_routes, 1);
    cr_assert_eq(c->routes[0].action, ROUTE_PROXY);
    cr_assert_eq(c->routes[0].path_kind, PATH_ANY);
    cr_assert_null(c->routes[0].host);
    cr_assert_eq(c->routes[0].methods, 0);
    cr_assert_eq(c->routes[0].upstream, &c->upstreams[0]);
    cr_assert_eq(c->timeouts.upstream_connect_ms, 5000);
    conf_unref(c);
}

Test(conf_quick, errors)
{
    const char *to[] = {"127.0.0.1", "127.0.0.1:3000", "localhost:3000"};
    struct conf_errors e = {0};

    cr_assert_null(conf_quick("8080", to, 3, &e));
    cr_assert_eq(e.n, 3);
    cr_assert_str_eq(e.msgs[0], "--from: invalid address '8080': missing port (expected "
                                "host:port or :port)");
    cr_assert_str_eq(e.msgs[1], "--to: invalid address '127.0.0.1': missing port (expected "
                                "host:port or :port)");
    cr_assert_str_eq(e.msgs[2], "--to: duplicate server 'localhost:3000'");
    conf_errors_free(&e);

    cr_assert_null(conf_quick(":8080", to, 0, &e));
    cr_assert_eq(e.n, 1);
    cr_assert_str_eq(e.msgs[0], "--to: at least one upstream server is required");
    conf_errors_free(&e);
}
