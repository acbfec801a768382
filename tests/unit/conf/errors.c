/* Unit tests for the config loader's error reports: the exact
 * "file:line:col: message" text of each error class, and several errors
 * reported together in file order. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <string.h>

#include "conf/conf.h"

/* Loads yaml and checks that it fails with exactly the n messages given. */
static void expect(const char *yaml, size_t n, ...)
{
    struct conf_errors e = {0};
    struct conf *c = conf_load_buffer("t.yaml", yaml, strlen(yaml), &e);
    va_list ap;

    for (size_t i = 0; i < e.n; i++)
        cr_log_info("got: %s", e.msgs[i]);
    cr_assert_null(c, "config should be rejected");
    cr_assert_eq(e.n, n, "expected %zu errors, got %zu", n, e.n);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(e.msgs[i], va_arg(ap, const char *));
    va_end(ap);
    conf_errors_free(&e);
}

#define L ":8080"
#define LISTENERS "listeners: [{listen: '" L "'}]\n"

Test(conf_errors, unknown_key)
{
    expect("listeners:\n"
           "  - listn: ':8080'\n",
           2,
           "t.yaml:2:5: unknown key 'listn' in listener (expected one of: name, listen, "
           "protocol, redirect_https, tls, h2c)",
           "t.yaml:2:5: missing required key 'listen' in listener");
    expect(LISTENERS "wrkers: 2\n", 1,
           "t.yaml:2:1: unknown key 'wrkers' in config (expected one of: workers, "
           "shutdown_grace, admin, log, trusted_proxies, timeouts, limits, cache_size, "
           "cache_path, cache_disk_size, tracing, listeners, upstreams, routes)");
    expect(LISTENERS "timeouts:\n  client_headr: 5s\n", 1,
           "t.yaml:3:3: unknown key 'client_headr' in timeouts (expected one of: "
           "client_header, client_body, keepalive, send, upstream_connect, upstream_read, "
           "upstream_write)");
}

Test(conf_errors, wrong_type)
{
    expect(LISTENERS "timeouts: 5s\n", 1, "t.yaml:2:11: 'timeouts' must be a mapping, got '5s'");
    expect("listeners: {listen: ':8080'}\n", 1,
           "t.yaml:1:12: 'listeners' must be a list, got a mapping");
    expect(LISTENERS "admin:\n  listen: [1, 2]\n", 1,
           "t.yaml:3:11: 'listen' must be a string, got a sequence");
    expect(LISTENERS "upstreams:\n  a:\n    servers:\n      - [1]\n", 1,
           "t.yaml:5:9: a server must be a mapping like {address: 127.0.0.1:3000} or an "
           "address, got a sequence");
    expect("- 1\n", 1, "t.yaml:1:1: the config must be a mapping of top-level keys, got a sequence");
    expect(LISTENERS "listeners2: x\nlog: {level: loud}\n", 2,
           "t.yaml:2:1: unknown key 'listeners2' in config (expected one of: workers, "
           "shutdown_grace, admin, log, trusted_proxies, timeouts, limits, cache_size, "
           "cache_path, cache_disk_size, tracing, listeners, upstreams, routes)",
           "t.yaml:3:14: unknown log level 'loud' (expected one of: debug, info, warn, error)");
}

Test(conf_errors, scalars)
{
    expect(LISTENERS "workers: many\n", 1,
           "t.yaml:2:10: 'workers' must be \"auto\" or an integer between 1 and 256, got 'many'");
    expect(LISTENERS "workers: 0\n", 1,
           "t.yaml:2:10: 'workers' must be an integer between 1 and 256, got '0'");
    expect(LISTENERS "workers: 257\n", 1,
           "t.yaml:2:10: 'workers' must be an integer between 1 and 256, got '257'");
    expect("listeners: [{listen: ':80', redirect_https: yes}]\n", 1,
           "t.yaml:1:45: 'redirect_https' must be true or false, got 'yes'");
}

Test(conf_errors, bad_duration)
{
    expect(LISTENERS "timeouts:\n  client_header: fast\n", 1,
           "t.yaml:3:18: expected a duration like 500ms, 5s, 2m, 1h, got 'fast'");
    expect(LISTENERS "shutdown_grace: 1.5s\n", 1,
           "t.yaml:2:17: expected a duration like 500ms, 5s, 2m, 1h, got '1.5s'");
    expect(LISTENERS "timeouts: {send: 0}\n", 1, "t.yaml:2:18: 'send' must be greater than 0");
}

Test(conf_errors, bad_size)
{
    expect(LISTENERS "limits:\n  max_body_bytes: 10 MB\n", 1,
           "t.yaml:3:19: expected a size like 512, 16k, 10m, 1g, got '10 MB'");
    expect(LISTENERS "limits:\n  max_header_bytes: 2m\n", 1,
           "t.yaml:3:21: 'max_header_bytes' must be between 1k and 1m, got '2m'");
    expect(LISTENERS "limits: {max_header_bytes: 8k, max_request_line: 9k}\n", 1,
           "t.yaml:2:50: 'max_request_line' (9216) must not exceed max_header_bytes (8192)");
    expect(LISTENERS "limits: {max_connections: 0}\n", 1,
           "t.yaml:2:27: 'max_connections' must be an integer between 1 and 10000000, got '0'");
}

Test(conf_errors, bad_address)
{
    expect("listeners:\n  - listen: 'example.com:80'\n", 1,
           "t.yaml:2:13: invalid address 'example.com:80': host must be a numeric IP address "
           "or localhost");
    expect("listeners:\n  - listen: ':0'\n", 1,
           "t.yaml:2:13: invalid address ':0': invalid port (expected 1..65535)");
    expect(LISTENERS "upstreams:\n  a:\n    servers: [{address: 10.0.0.1}]\n", 1,
           "t.yaml:4:25: invalid address '10.0.0.1': missing port (expected host:port or :port)");
    expect(LISTENERS "trusted_proxies: [10.0.0.0/33]\n", 1,
           "t.yaml:2:19: invalid address or CIDR range '10.0.0.0/33' (expected like "
           "10.0.0.0/8, ::1 or 127.0.0.1)");
    expect("listeners:\n  - listen: ':8080'\n  - {name: b, listen: '0.0.0.0:8080'}\n", 1,
           "t.yaml:3:23: address '0.0.0.0:8080' is already used by listener 'listener0'");
    expect("listeners:\n  - {name: a, listen: ':1'}\n  - {name: a, listen: ':2'}\n", 1,
           "t.yaml:3:12: duplicate listener name 'a'");
}

Test(conf_errors, undefined_upstream)
{
    expect(LISTENERS "upstreams:\n  api: {servers: ['127.0.0.1:1']}\n"
                     "routes:\n  - upstream: apii\n",
           1, "t.yaml:5:15: upstream 'apii' is not defined");
    /* a broken upstream is still defined: no cascade */
    expect(LISTENERS "upstreams:\n  api: {servers: []}\nroutes:\n  - upstream: api\n", 1,
           "t.yaml:3:18: 'servers' must not be empty");
    expect(LISTENERS "upstreams: [api]\nroutes:\n  - upstream: api\n", 1,
           "t.yaml:2:12: 'upstreams' must be a mapping, got a sequence");
}

Test(conf_errors, duplicate_key)
{
    expect(LISTENERS "workers: 2\nworkers: 3\n", 1, "t.yaml:3:1: duplicate key 'workers'");
    expect(LISTENERS "upstreams:\n  a: {servers: ['127.0.0.1:1'], retries: 1, retries: 2}\n", 1,
           "t.yaml:3:45: duplicate key 'retries'");
}

Test(conf_errors, yaml_syntax)
{
    expect("listeners: [{listen: ':80'}\nworkers: 2\n", 1,
           "t.yaml:2:1: YAML syntax error: did not find expected ',' or ']' (while parsing a "
           "flow sequence at line 1, column 12)");
    expect("a: b: c\n", 1,
           "t.yaml:1:5: YAML syntax error: mapping values are not allowed in this context");
    expect("a:\n\tb: 1\n", 1,
           "t.yaml:2:1: YAML syntax error: found character that cannot start any token "
           "(while scanning for the next token at line 2, column 1)");
    expect("a: *nope\n", 1, "t.yaml:1:4: unknown alias '*nope'");
    expect(LISTENERS "---\nb: 1\n", 1,
           "t.yaml:2:1: expected a single YAML document, found another one here");
}

Test(conf_errors, two_actions_and_none)
{
    expect(LISTENERS "routes:\n  - respond: {status: 204}\n    redirect: {to: /x}\n", 1,
           "t.yaml:4:5: a route takes exactly one action, got both 'respond' and 'redirect'");
    expect(LISTENERS "routes:\n  - match: {path: /}\n", 1,
           "t.yaml:3:5: route has no action (expected one of: upstream, respond, redirect)");
}

Test(conf_errors, regex)
{
    expect(LISTENERS "routes:\n  - match: {path: \"~^/a(b\"}\n    respond: {}\n", 1,
           "t.yaml:3:19: invalid regex: missing closing parenthesis at offset 5");
    expect(LISTENERS "routes:\n  - match: {path: api}\n    respond: {}\n", 1,
           "t.yaml:3:19: path must start with '/' (or '=' for an exact path, '~' for a regex), "
           "got 'api'");
}

Test(conf_errors, match_host_and_methods)
{
    expect(LISTENERS "routes:\n  - match: {host: 'a.com:8080', methods: [get, 'G T']}\n"
                     "    respond: {}\n",
           3, "t.yaml:3:19: host must not include a port",
           "t.yaml:3:43: methods are case-sensitive: did you mean 'GET'?",
           "t.yaml:3:48: invalid method 'G T' (must be an HTTP token)");
    expect(LISTENERS "routes:\n  - match: {host: 'a.*.com'}\n    respond: {}\n", 1,
           "t.yaml:3:19: a wildcard is only allowed as a leading '*.', like *.example.com");
}

Test(conf_errors, actions)
{
    expect(LISTENERS "routes:\n"
                     "  - respond: {status: 600}\n"
                     "  - redirect: {status: 301}\n"
                     "  - redirect: {to: '/{nope}', status: 304}\n",
           4, "t.yaml:3:23: 'status' must be an integer between 100 and 599, got '600'",
           "t.yaml:4:15: missing required key 'to' in redirect",
           "t.yaml:5:20: invalid template at offset 1: unknown placeholder (expected one of "
           "{client_ip}, {host}, {path}, {query}, {scheme}, {request_id}, {method}, {uri}, "
           "{header.NAME}, {tls.client_subject})",
           "t.yaml:5:39: redirect 'status' must be one of 301, 302, 303, 307, 308, got '304'");
}

Test(conf_errors, header_rules)
{
    expect(LISTENERS "routes:\n"
                     "  - respond: {}\n"
                     "    headers:\n"
                     "      request: {set: {'Bad Name': x, X-A: \"a\\nb\"}, remove: [Content-Length]}\n"
                     "      respnse: {}\n",
           4, "t.yaml:5:23: invalid header name 'Bad Name' (must be an HTTP token)",
           "t.yaml:5:43: header value must not contain CR, LF or NUL",
           "t.yaml:5:61: header 'Content-Length' is managed by the proxy and cannot be changed "
           "by rules",
           "t.yaml:6:7: unknown key 'respnse' in headers (expected one of: request, response)");
}

Test(conf_errors, upstreams)
{
    expect(LISTENERS "upstreams:\n"
                     "  'bad name': {servers: ['127.0.0.1:1']}\n"
                     "  h: {balance: hash, servers: ['127.0.0.1:1']}\n"
                     "  r: {hash_key: '{host}', servers: ['127.0.0.1:2']}\n"
                     "  x: {balance: fair, hash_key: '{host}', servers: ['127.0.0.1:3']}\n"
                     "  w: {servers: [{address: '127.0.0.1:4', weight: 10001}, '127.0.0.1:4']}\n"
                     "  t: {servers: ['127.0.0.1:5'], tls: true, health: {uri: x}, retries: 11}\n"
                     "  m: {}\n",
           9, "t.yaml:3:3: invalid upstream name 'bad name' (use letters, digits, '_', '.', '-')",
           "t.yaml:4:6: missing required key 'hash_key' in upstream 'h' (required with balance: "
           "hash)",
           "t.yaml:5:7: 'hash_key' is only valid with balance: hash",
           "t.yaml:6:16: unknown balance 'fair' (expected one of: round_robin, least_conn, "
           "ip_hash, random, hash)",
           "t.yaml:7:50: 'weight' must be an integer between 1 and 10000, got '10001'",
           "t.yaml:7:58: duplicate server '127.0.0.1:4' in upstream 'w'",
           "t.yaml:8:58: 'uri' must start with '/' and contain no spaces or control characters",
           "t.yaml:8:71: 'retries' must be an integer between 0 and 10, got '11'",
           "t.yaml:9:6: missing required key 'servers' in upstream 'm'");
}

Test(conf_errors, not_supported_yet)
{
    expect("listeners:\n"
           "  - {listen: ':1', protocol: tcp, upstream: pg}\n"
           "  - {listen: ':2', tls: {certificates: []}}\n"
           "routes:\n"
           "  - {respond: {}, rate_limit: {}, waf: {mode: block}}\n",
           5, "t.yaml:2:30: protocol 'tcp' is not supported yet",
           "t.yaml:2:35: 'upstream' is not supported yet",
           "t.yaml:3:40: 'certificates' must not be empty",
           "t.yaml:5:19: 'rate_limit' is not supported yet",
           "t.yaml:5:35: 'waf' is not supported yet");
}

Test(conf_errors, missing_listeners)
{
    expect("workers: 1\n", 1, "t.yaml:1:1: missing required key 'listeners' in config");
    expect("", 1, "t.yaml:1:1: missing required key 'listeners' in config");
    expect("listeners: []\n", 1, "t.yaml:1:12: 'listeners' must not be empty");
}

Test(conf_errors, many_errors_in_file_order)
{
    /* Errors come back sorted by position whatever order they were found in. */
    expect("routes:\n"
           "  - upstream: nope\n"
           "workers: zero\n"
           "listeners:\n"
           "  - listen: ':99999'\n"
           "timeouts: {keepalive: soon}\n"
           "upstreams:\n"
           "  a: {servers: ['1.2.3.4:5'], keepalive: -1}\n",
           5, "t.yaml:2:15: upstream 'nope' is not defined",
           "t.yaml:3:10: 'workers' must be \"auto\" or an integer between 1 and 256, got 'zero'",
           "t.yaml:5:13: invalid address ':99999': invalid port (expected 1..65535)",
           "t.yaml:6:23: expected a duration like 500ms, 5s, 2m, 1h, got 'soon'",
           "t.yaml:8:42: 'keepalive' must be an integer between 0 and 100000, got '-1'");
}
