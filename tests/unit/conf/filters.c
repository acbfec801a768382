/* Unit tests for the config schema of the response filters (conf_filters.c):
 * routes[].cache and routes[].compress in every form, the top-level cache
 * and tracing keys, their defaults, and the exact "file:line:col: message"
 * of each bad value. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <string.h>

#include "conf/conf.h"

/* Line 1: listeners; line 2: upstreams; line 3: "routes:"; routes from line 4. */
#define BASE                                                                                     \
    "listeners: [{listen: ':8080'}]\n"                                                           \
    "upstreams: {app: {servers: ['127.0.0.1:3000']}}\n"                                          \
    "routes:\n"

static struct conf *load_ok_as(const char *name, const char *yaml)
{
    struct conf_errors e = {0};
    struct conf *c = conf_load_buffer(name, yaml, strlen(yaml), &e);

    for (size_t i = 0; i < e.n; i++)
        cr_log_error("%s", e.msgs[i]);
    cr_assert_not_null(c, "config should load:\n%s", yaml);
    cr_assert_eq(e.n, 0);
    conf_errors_free(&e);
    return c;
}

static struct conf *load_ok(const char *yaml)
{
    return load_ok_as("t.yaml", yaml);
}

/* Loads yaml and checks that it fails with exactly the n messages given. */
static void expect(const char *yaml, size_t n, ...)
{
    struct conf_errors e = {0};
    struct conf *c = conf_load_buffer("t.yaml", yaml, strlen(yaml), &e);
    va_list ap;

    for (size_t i = 0; i < e.n; i++)
        cr_log_info("got: %s", e.msgs[i]);
    cr_assert_null(c, "config should be rejected:\n%s", yaml);
    cr_assert_eq(e.n, n, "expected %zu errors, got %zu for:\n%s", n, e.n, yaml);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(e.msgs[i], va_arg(ap, const char *));
    va_end(ap);
    conf_errors_free(&e);
}

/* ---- good configs ---- */

Test(conf_filters, defaults)
{
    struct conf *c = load_ok(BASE "  - upstream: app\n");

    cr_assert_eq(c->cache.size, 256ull << 20);
    cr_assert_eq(c->cache.disk_size, 1ull << 30);
    cr_assert_null(c->cache.path);
    cr_assert_eq(c->tracing, false);
    cr_assert_null(c->routes[0].cache);
    cr_assert_null(c->routes[0].compress);
    conf_unref(c);
}

Test(conf_filters, globals)
{
    struct conf *c = load_ok("cache_size: 1g\n"
                             "cache_path: /var/cache/portico\n"
                             "cache_disk_size: 100g\n"
                             "tracing: true\n" BASE);

    cr_assert_eq(c->cache.size, 1ull << 30);
    cr_assert_str_eq(c->cache.path, "/var/cache/portico");
    cr_assert_eq(c->cache.disk_size, 100ull << 30);
    cr_assert_eq(c->tracing, true);
    conf_unref(c);

    c = load_ok("cache_size: 1m\ntracing: false\n" BASE);
    cr_assert_eq(c->cache.size, 1ull << 20);
    cr_assert_eq(c->tracing, false);
    conf_unref(c);

    /* A relative cache_path is taken against the config file's directory,
     * like certificate paths. */
    c = load_ok_as("etc/portico/p.yaml", "cache_path: cache\n" BASE);
    cr_assert_str_eq(c->cache.path, "etc/portico/cache");
    conf_unref(c);
    c = load_ok_as("p.yaml", "cache_path: cache\n" BASE);
    cr_assert_str_eq(c->cache.path, "cache");
    conf_unref(c);
}

Test(conf_filters, cache_true_false_null)
{
    struct conf *c = load_ok(BASE "  - {upstream: app, cache: true}\n"
                                  "  - {upstream: app, cache: false}\n"
                                  "  - {upstream: app, cache: null}\n"
                                  "  - {upstream: app, cache: {}}\n"
                                  "  - {respond: {}, cache: false}\n");
    const struct conf_cache *cc = c->routes[0].cache;

    cr_assert_not_null(cc);
    cr_assert_eq(cc->n_valid, 0, "`cache: true` honours the origin's headers only");
    cr_assert_null(cc->key);
    cr_assert_eq(cc->max_object_size, 8ull << 20);
    cr_assert_eq(cc->store_set_cookie, false);
    cr_assert_eq(cc->lock_timeout_ms, 5000);
    cr_assert_eq(cc->stale_if_error_ms, 0);
    cr_assert_eq(cc->stale_while_revalidate_ms, 0);
    cr_assert_null(c->routes[1].cache);
    cr_assert_null(c->routes[2].cache);
    cc = c->routes[3].cache;
    cr_assert_not_null(cc);
    cr_assert_eq(cc->n_valid, 0);
    cr_assert_eq(cc->max_object_size, 8ull << 20);
    cr_assert_eq(cc->lock_timeout_ms, 5000);
    cr_assert_null(c->routes[4].cache);
    conf_unref(c);
}

Test(conf_filters, cache_mapping)
{
    struct conf *c = load_ok(BASE "  - upstream: app\n"
                                  "    cache:\n"
                                  "      valid:\n"
                                  "        any: 5s\n"
                                  "        200: 10m\n"
                                  "        \"404\": 1m\n"
                                  "        '301': 0\n"
                                  "        599: 1h\n"
                                  "      key: \"{host}{uri}\"\n"
                                  "      max_object_size: 1g\n"
                                  "      cookies: true\n"
                                  "      lock_timeout: 2s\n"
                                  "      stale_if_error: 1m\n"
                                  "      stale_while_revalidate: 30s\n");
    const struct conf_cache *cc = c->routes[0].cache;

    cr_assert_not_null(cc);
    cr_assert_eq(cc->n_valid, 5);
    /* Statuses in file order, "any" (status 0) last whatever its place. */
    cr_assert_eq(cc->valid[0].status, 200);
    cr_assert_eq(cc->valid[0].ttl_ms, 600000);
    cr_assert_eq(cc->valid[1].status, 404);
    cr_assert_eq(cc->valid[1].ttl_ms, 60000);
    cr_assert_eq(cc->valid[2].status, 301);
    cr_assert_eq(cc->valid[2].ttl_ms, 0);
    cr_assert_eq(cc->valid[3].status, 599);
    cr_assert_eq(cc->valid[3].ttl_ms, 3600000);
    cr_assert_eq(cc->valid[4].status, 0);
    cr_assert_eq(cc->valid[4].ttl_ms, 5000);
    cr_assert_not_null(cc->key);
    cr_assert_str_eq(cc->key->src, "{host}{uri}");
    cr_assert_eq(cc->key->n_parts, 2);
    cr_assert_eq(cc->key->parts[0].var, TMPL_HOST);
    cr_assert_eq(cc->key->parts[1].var, TMPL_URI);
    cr_assert_eq(cc->max_object_size, 1ull << 30);
    cr_assert_eq(cc->store_set_cookie, true);
    cr_assert_eq(cc->lock_timeout_ms, 2000);
    cr_assert_eq(cc->stale_if_error_ms, 60000);
    cr_assert_eq(cc->stale_while_revalidate_ms, 30000);
    conf_unref(c);

    /* DESIGN.md's example, flow style. */
    c = load_ok(BASE "  - {upstream: app, cache: {valid: {200: 10m, 404: 1m}}}\n");
    cc = c->routes[0].cache;
    cr_assert_eq(cc->n_valid, 2);
    cr_assert_eq(cc->valid[0].status, 200);
    cr_assert_eq(cc->valid[1].status, 404);
    cr_assert_eq(cc->valid[1].ttl_ms, 60000);
    cr_assert_null(cc->key);
    conf_unref(c);
}

static void check_algs(const struct conf_compress *z, size_t n, ...)
{
    va_list ap;

    cr_assert_not_null(z);
    cr_assert_eq(z->n_algs, n, "expected %zu algorithms, got %zu", n, z->n_algs);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(z->algs[i], va_arg(ap, int), "algorithm %zu", i);
    va_end(ap);
}

static void check_compress_defaults(const struct conf_compress *z)
{
    cr_assert_eq(z->min_length, 256);
    cr_assert_eq(z->n_types, 0, "no types: the built-in allowlist");
    cr_assert_eq(z->levels[ZALG_GZIP], 1);
    cr_assert_eq(z->levels[ZALG_BR], 4);
    cr_assert_eq(z->levels[ZALG_ZSTD], 3);
}

Test(conf_filters, compress_short_forms)
{
    struct conf *c = load_ok(BASE "  - {upstream: app, compress: [zstd, br, gzip]}\n"
                                  "  - {upstream: app, compress: [gzip]}\n"
                                  "  - {upstream: app, compress: [br, gzip]}\n"
                                  "  - {upstream: app, compress: true}\n"
                                  "  - {upstream: app, compress: false}\n"
                                  "  - {upstream: app, compress: ~}\n"
                                  "  - {respond: {body: hello}, compress: [gzip]}\n");

    check_algs(c->routes[0].compress, 3, ZALG_ZSTD, ZALG_BR, ZALG_GZIP);
    check_compress_defaults(c->routes[0].compress);
    check_algs(c->routes[1].compress, 1, ZALG_GZIP);
    check_compress_defaults(c->routes[1].compress);
    check_algs(c->routes[2].compress, 2, ZALG_BR, ZALG_GZIP);
    check_algs(c->routes[3].compress, 3, ZALG_ZSTD, ZALG_BR, ZALG_GZIP);
    check_compress_defaults(c->routes[3].compress);
    cr_assert_null(c->routes[4].compress);
    cr_assert_null(c->routes[5].compress);
    check_algs(c->routes[6].compress, 1, ZALG_GZIP);
    conf_unref(c);
}

Test(conf_filters, compress_long_form)
{
    struct conf *c = load_ok(BASE "  - upstream: app\n"
                                  "    compress:\n"
                                  "      algorithms: [br, gzip]\n"
                                  "      min_length: 1k\n"
                                  "      types: [Text/HTML, \"text/*\", application/json, "
                                  "image/svg+xml]\n"
                                  "      levels: {gzip: 9, br: 11, zstd: 19}\n"
                                  "  - upstream: app\n"
                                  "    compress: {min_length: 0, levels: {br: 0}}\n"
                                  "  - {upstream: app, compress: {}}\n");
    const struct conf_compress *z = c->routes[0].compress;

    check_algs(z, 2, ZALG_BR, ZALG_GZIP);
    cr_assert_eq(z->min_length, 1024);
    cr_assert_eq(z->n_types, 4);
    cr_assert_str_eq(z->types[0], "text/html");
    cr_assert_str_eq(z->types[1], "text/*");
    cr_assert_str_eq(z->types[2], "application/json");
    cr_assert_str_eq(z->types[3], "image/svg+xml");
    cr_assert_eq(z->levels[ZALG_GZIP], 9);
    cr_assert_eq(z->levels[ZALG_BR], 11);
    cr_assert_eq(z->levels[ZALG_ZSTD], 19);

    /* Without `algorithms`: the default order; unset levels keep theirs. */
    z = c->routes[1].compress;
    check_algs(z, 3, ZALG_ZSTD, ZALG_BR, ZALG_GZIP);
    cr_assert_eq(z->min_length, 0);
    cr_assert_eq(z->n_types, 0);
    cr_assert_eq(z->levels[ZALG_GZIP], 1);
    cr_assert_eq(z->levels[ZALG_BR], 0);
    cr_assert_eq(z->levels[ZALG_ZSTD], 3);

    check_algs(c->routes[2].compress, 3, ZALG_ZSTD, ZALG_BR, ZALG_GZIP);
    check_compress_defaults(c->routes[2].compress);
    conf_unref(c);
}

Test(conf_filters, cache_and_compress_together)
{
    struct conf *c = load_ok(BASE "  - match: {path: /static/}\n"
                                  "    upstream: app\n"
                                  "    cache: {valid: {200: 1h}, key: \"{uri}\"}\n"
                                  "    compress: [zstd, gzip]\n"
                                  "  - upstream: app\n");

    cr_assert_not_null(c->routes[0].cache);
    check_algs(c->routes[0].compress, 2, ZALG_ZSTD, ZALG_GZIP);
    cr_assert_null(c->routes[1].cache);
    cr_assert_null(c->routes[1].compress);
    conf_unref(c);
}

/* ---- bad values ---- */

Test(conf_filters, cache_wrong_type)
{
    expect(BASE "  - {upstream: app, cache: yes}\n", 1,
           "t.yaml:4:28: 'cache' must be true, false or a mapping, got 'yes'");
    expect(BASE "  - upstream: app\n"
                "    cache: [200]\n",
           1, "t.yaml:5:12: 'cache' must be true, false or a mapping, got a sequence");
}

Test(conf_filters, cache_needs_a_proxy_route)
{
    expect(BASE "  - respond: {status: 200}\n"
                "    cache: true\n"
                "  - redirect: {to: /x}\n"
                "    cache: {valid: {200: 1m}}\n",
           2,
           "t.yaml:5:5: 'cache' is only for routes that proxy (with 'upstream'), this route "
           "has 'respond'",
           "t.yaml:7:5: 'cache' is only for routes that proxy (with 'upstream'), this route "
           "has 'redirect'");
    /* No action at all: that is the error; the cache value is still checked. */
    expect(BASE "  - cache: {cookies: 1}\n", 2,
           "t.yaml:4:5: route has no action (expected one of: upstream, respond, redirect)",
           "t.yaml:4:22: 'cookies' must be true or false, got '1'");
}

Test(conf_filters, cache_unknown_key)
{
    expect(BASE "  - upstream: app\n"
                "    cache:\n"
                "      ttl: 5m\n",
           1,
           "t.yaml:6:7: unknown key 'ttl' in cache (expected one of: valid, key, "
           "max_object_size, cookies, lock_timeout, stale_if_error, stale_while_revalidate)");
}

Test(conf_filters, cache_valid)
{
    expect(BASE "  - upstream: app\n"
                "    cache:\n"
                "      valid:\n"
                "        2xx: 1m\n"
                "        99: 1m\n"
                "        600: 1m\n"
                "        0200: 1m\n"
                "        all: 1m\n"
                "        200: fast\n"
                "        404: -1s\n",
           7,
           "t.yaml:7:9: cache 'valid' keys must be a status 100..599 or 'any', got '2xx'",
           "t.yaml:8:9: cache 'valid' keys must be a status 100..599 or 'any', got '99'",
           "t.yaml:9:9: cache 'valid' keys must be a status 100..599 or 'any', got '600'",
           "t.yaml:10:9: cache 'valid' keys must be a status 100..599 or 'any', got '0200'",
           "t.yaml:11:9: cache 'valid' keys must be a status 100..599 or 'any', got 'all'",
           "t.yaml:12:14: expected a duration like 500ms, 5s, 2m, 1h, got 'fast'",
           "t.yaml:13:14: expected a duration like 500ms, 5s, 2m, 1h, got '-1s'");
    /* 200 and "200" name the same status: a duplicate key. */
    expect(BASE "  - {upstream: app, cache: {valid: {200: 1m, \"200\": 2m}}}\n", 1,
           "t.yaml:4:46: duplicate key '200'");
    expect(BASE "  - {upstream: app, cache: {valid: [200]}}\n", 1,
           "t.yaml:4:36: 'valid' must be a mapping, got a sequence");
}

Test(conf_filters, cache_key)
{
    expect(BASE "  - {upstream: app, cache: {key: \"{host}{nope}\"}}\n", 1,
           "t.yaml:4:34: invalid template at offset 6: unknown placeholder (expected one of "
           "{client_ip}, {host}, {path}, {query}, {scheme}, {request_id}, {method}, {uri}, "
           "{header.NAME}, {tls.client_subject})");
    expect(BASE "  - {upstream: app, cache: {key: \"\"}}\n", 1,
           "t.yaml:4:34: 'key' must not be empty");
    expect(BASE "  - {upstream: app, cache: {key: \"{host}\\n{path}\"}}\n", 1,
           "t.yaml:4:34: cache 'key' must not contain CR or LF");
    expect(BASE "  - {upstream: app, cache: {key: [a]}}\n", 1,
           "t.yaml:4:34: 'key' must be a string, got a sequence");
}

Test(conf_filters, cache_scalars)
{
    expect(BASE "  - upstream: app\n"
                "    cache:\n"
                "      max_object_size: 2g\n"
                "      cookies: yes\n"
                "      lock_timeout: 5x\n"
                "      stale_if_error: 1.5s\n"
                "      stale_while_revalidate: soon\n",
           5, "t.yaml:6:24: 'max_object_size' must be between 1 and 1g, got '2g'",
           "t.yaml:7:16: 'cookies' must be true or false, got 'yes'",
           "t.yaml:8:21: expected a duration like 500ms, 5s, 2m, 1h, got '5x'",
           "t.yaml:9:23: expected a duration like 500ms, 5s, 2m, 1h, got '1.5s'",
           "t.yaml:10:31: expected a duration like 500ms, 5s, 2m, 1h, got 'soon'");
    expect(BASE "  - {upstream: app, cache: {max_object_size: 0}}\n", 1,
           "t.yaml:4:46: 'max_object_size' must be between 1 and 1g, got '0'");
    expect(BASE "  - {upstream: app, cache: {max_object_size: 8q}}\n", 1,
           "t.yaml:4:46: expected a size like 512, 16k, 10m, 1g, got '8q'");
}

Test(conf_filters, compress_wrong_type)
{
    expect(BASE "  - {upstream: app, compress: gzip}\n", 1,
           "t.yaml:4:31: 'compress' must be true, false, a list of algorithms like "
           "[zstd, br, gzip] or a mapping, got 'gzip'");
    expect(BASE "  - {upstream: app, compress: []}\n", 1,
           "t.yaml:4:31: 'compress' must not be empty (use compress: false to turn "
           "compression off)");
}

Test(conf_filters, compress_algorithms)
{
    expect(BASE "  - {upstream: app, compress: [gzip, lz4, gzip, deflate, [br]]}\n", 4,
           "t.yaml:4:38: unknown compression algorithm 'lz4' (expected one of: gzip, br, zstd)",
           "t.yaml:4:43: duplicate compression algorithm 'gzip'",
           "t.yaml:4:49: unknown compression algorithm 'deflate' (expected one of: gzip, br, "
           "zstd)",
           "t.yaml:4:58: 'item' must be one of: gzip, br, zstd, got a sequence");
    expect(BASE "  - upstream: app\n"
                "    compress:\n"
                "      algorithms: []\n",
           1,
           "t.yaml:6:19: 'algorithms' must not be empty (use compress: false to turn "
           "compression off)");
    expect(BASE "  - upstream: app\n"
                "    compress:\n"
                "      algorithms: gzip\n",
           1, "t.yaml:6:19: 'algorithms' must be a list, got 'gzip'");
}

Test(conf_filters, compress_long_form_errors)
{
    expect(BASE "  - upstream: app\n"
                "    compress:\n"
                "      algorithm: [gzip]\n"
                "      min_length: 2g\n"
                "      types: [html, \"*/*\", \"text/html; charset=utf-8\", text/, "
                "a/b/c, text/html, TEXT/HTML]\n"
                "      levels: {gzip: 0, br: 12, zstd: 20, lz4: 1}\n",
           12,
           "t.yaml:6:7: unknown key 'algorithm' in compress (expected one of: algorithms, "
           "min_length, types, levels)",
           "t.yaml:7:19: 'min_length' must be between 0 and 1g, got '2g'",
           "t.yaml:8:15: invalid media type 'html' (expected type/subtype without "
           "parameters, like text/html, or a family like text/*)",
           "t.yaml:8:21: invalid media type '*/*' (expected type/subtype without "
           "parameters, like text/html, or a family like text/*)",
           "t.yaml:8:28: invalid media type 'text/html; charset=utf-8' (expected "
           "type/subtype without parameters, like text/html, or a family like text/*)",
           "t.yaml:8:56: invalid media type 'text/' (expected type/subtype without "
           "parameters, like text/html, or a family like text/*)",
           "t.yaml:8:63: invalid media type 'a/b/c' (expected type/subtype without "
           "parameters, like text/html, or a family like text/*)",
           "t.yaml:8:81: duplicate media type 'text/html'",
           "t.yaml:9:22: 'gzip' must be an integer between 1 and 9, got '0'",
           "t.yaml:9:29: 'br' must be an integer between 0 and 11, got '12'",
           "t.yaml:9:39: 'zstd' must be an integer between 1 and 19, got '20'",
           "t.yaml:9:43: unknown key 'lz4' in compress levels (expected one of: gzip, br, "
           "zstd)");
    /* Errors are sorted by position, whatever order they were found in. */
    expect(BASE "  - {upstream: app, compress: {levels: {lz4: 1, gzip: x}}}\n", 2,
           "t.yaml:4:41: unknown key 'lz4' in compress levels (expected one of: gzip, br, zstd)",
           "t.yaml:4:55: 'gzip' must be an integer between 1 and 9, got 'x'");
    expect(BASE "  - {upstream: app, compress: {types: [], levels: 3}}\n", 2,
           "t.yaml:4:39: 'types' must not be empty (leave it out for the default list)",
           "t.yaml:4:51: 'levels' must be a mapping, got '3'");
}

Test(conf_filters, globals_errors)
{
    expect("cache_size: 512k\n" BASE, 1,
           "t.yaml:1:13: 'cache_size' must be between 1m and 64g, got '512k'");
    expect("cache_size: 65g\n" BASE, 1,
           "t.yaml:1:13: 'cache_size' must be between 1m and 64g, got '65g'");
    expect("cache_size: big\n" BASE, 1,
           "t.yaml:1:13: expected a size like 512, 16k, 10m, 1g, got 'big'");
    expect("cache_disk_size: 10g\n" BASE, 1, "t.yaml:1:1: cache_disk_size needs cache_path");
    expect("cache_path:\ncache_disk_size: 10g\n" BASE, 1,
           "t.yaml:2:1: cache_disk_size needs cache_path");
    expect("cache_path: /c\ncache_disk_size: 1k\n" BASE, 1,
           "t.yaml:2:18: 'cache_disk_size' must be between 1m and 65536g, got '1k'");
    expect("cache_path: ''\n" BASE, 1, "t.yaml:1:13: 'cache_path' must not be empty");
    expect("cache_path: [a]\n" BASE, 1, "t.yaml:1:13: 'cache_path' must be a string, got a sequence");
    expect("tracing: 1\n" BASE, 1, "t.yaml:1:10: 'tracing' must be true or false, got '1'");
}

Test(conf_filters, every_error_in_file_order)
{
    expect("tracing: on\n" BASE "  - upstream: app\n"
           "    compress: [gzip, gzip]\n"
           "    cache: {valid: {200: x}}\n"
           "  - respond: {}\n"
           "    cache: true\n"
           "    compress: {levels: {br: 99}}\n",
           5, "t.yaml:1:10: 'tracing' must be true or false, got 'on'",
           "t.yaml:6:22: duplicate compression algorithm 'gzip'",
           "t.yaml:7:26: expected a duration like 500ms, 5s, 2m, 1h, got 'x'",
           "t.yaml:9:5: 'cache' is only for routes that proxy (with 'upstream'), this route "
           "has 'respond'",
           "t.yaml:10:29: 'br' must be an integer between 0 and 11, got '99'");
}
