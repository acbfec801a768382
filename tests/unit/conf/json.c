/* Unit tests for conf_json.c and conf_edit.c: the strict JSON parser (valid
 * documents, every class of malformed input with its reported position,
 * escapes and surrogate pairs, depth limit, big numbers), the renderer, the
 * round trip YAML -> tree -> JSON -> tree -> the same snapshot, errors by
 * JSON pointer, and the admin API's tree edits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/conf_node.h"
#include "core/common.h"
#include "lb/server.h"

static struct cnode *parse_ok(const char *text, size_t len)
{
    char *err = NULL;
    struct cnode *n = conf_json_parse(text, len, &err);
    cr_assert_not_null(n, "should parse: %s (%s)", text, err ? err : "");
    return n;
}

/* Parses text and expects a failure whose message contains want. */
static void bad(const char *text, size_t len, const char *want)
{
    char *err = NULL;
    struct cnode *n = conf_json_parse(text, len, &err);
    cr_assert_null(n, "should be rejected: %.*s", (int)len, text);
    cr_assert_not_null(err);
    cr_assert(strstr(err, want), "for %.*s: want '%s' in '%s'", (int)len, text, want, err);
    cr_assert(strncmp(err, "invalid JSON at line ", 21) == 0, "%s", err);
    free(err);
}
#define BAD(lit, want) bad(lit, sizeof(lit) - 1, want)

Test(conf_json, valid_values)
{
    const char *t = " {\"a\": [1, -2.5e+3, true, false, null, \"x\"], \"b\": {}, \"c\": []}\n";
    struct cnode *n = parse_ok(t, strlen(t));
    cr_assert_eq(n->type, CNODE_MAP);
    cr_assert_eq(n->n, 3);
    struct cnode *a = cnode_map_get(n, "a");
    cr_assert_eq(a->type, CNODE_SEQ);
    cr_assert_eq(a->n, 6);
    const char *want[] = {"1", "-2.5e+3", "true", "false", "null", "x"};
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(a->kids[i]->type, CNODE_SCALAR);
        cr_assert_str_eq(a->kids[i]->s, want[i]);
        cr_assert_eq(a->kids[i]->quoted, i == 5, "only strings are quoted");
    }
    cr_assert(cnode_is_null(a->kids[4]));
    cr_assert_eq(cnode_map_get(n, "b")->type, CNODE_MAP);
    cr_assert_eq(cnode_map_get(n, "c")->n, 0);
    /* positions are 1-based line:col */
    cr_assert_eq(n->line, 1);
    cr_assert_eq(n->col, 2);
    cr_assert_eq(a->kids[1]->col, 12);
    cnode_free(n);

    /* scalars at the top level are JSON too (the schema rejects them) */
    n = parse_ok("\"s\"", 3);
    cr_assert(n->quoted);
    cnode_free(n);
    n = parse_ok("0", 1);
    cr_assert_str_eq(n->s, "0");
    cnode_free(n);
    /* every whitespace character RFC 8259 allows */
    n = parse_ok("\t\r\n [ ]\t\r\n ", 11);
    cr_assert_eq(n->type, CNODE_SEQ);
    cnode_free(n);
}

Test(conf_json, escapes_and_utf8)
{
    const char t[] = "\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u0041\\u00e9\\u20AC \\ud83d\\ude00 \xc3\xa9\"";
    struct cnode *n = parse_ok(t, sizeof(t) - 1);
    const char want[] = "q\" b\\ s/ \b\f\n\r\t A\xc3\xa9\xe2\x82\xac \xf0\x9f\x98\x80 \xc3\xa9";
    cr_assert_eq(n->len, sizeof(want) - 1);
    cr_assert(memcmp(n->s, want, n->len) == 0);
    cnode_free(n);

    /* \u0000 is a NUL inside the string: kept, with its length */
    n = parse_ok("\"a\\u0000b\"", 10);
    cr_assert_eq(n->len, 3);
    cr_assert(memcmp(n->s, "a\0b", 3) == 0);
    cnode_free(n);

    /* the largest code point, as a pair */
    n = parse_ok("\"\\udbff\\udfff\"", 14);
    cr_assert_eq(n->len, 4);
    cr_assert(memcmp(n->s, "\xf4\x8f\xbf\xbf", 4) == 0);
    cnode_free(n);
}

Test(conf_json, malformed)
{
    BAD("", "expected a value, got end of input");
    BAD("   ", "got end of input");
    BAD("{", "expected a string key");
    BAD("[", "expected a value");
    BAD("[1,]", "expected a value, got ']'");
    BAD("[1 2]", "expected ',' or ']' in an array, got '2'");
    BAD("{\"a\":1,}", "expected a string key in an object, got '}'");
    BAD("{\"a\" 1}", "expected ':' after an object key, got '1'");
    BAD("{\"a\":1 \"b\":2}", "expected ',' or '}' in an object");
    BAD("{a:1}", "expected a string key in an object, got 'a'");
    BAD("{1:1}", "expected a string key");
    BAD("'x'", "expected a value, got '''");
    BAD("01", "leading zeros");
    BAD("-01", "leading zeros");
    BAD("1.", "digits must follow the decimal point");
    BAD("1.e3", "digits must follow the decimal point");
    BAD("1e", "digits must follow the exponent");
    BAD("1e+", "digits must follow the exponent");
    BAD("-", "a number needs digits");
    BAD("-a", "a number needs digits");
    BAD("+1", "expected a value, got '+'");
    BAD(".5", "expected a value, got '.'");
    BAD("NaN", "expected a value, got 'N'");
    BAD("Infinity", "expected a value");
    BAD("tru", "expected a value, got 't'");
    BAD("nul", "expected a value");
    BAD("True", "expected a value");
    BAD("\"abc", "unterminated string");
    BAD("\"abc\\", "unterminated string");
    BAD("\"\\x\"", "invalid escape \\'x'");
    BAD("\"\\u12\"", "\\u must be followed by 4 hex digits");
    BAD("\"\\u12g4\"", "4 hex digits");
    BAD("\"\\ud800\"", "high surrogate \\ud800 not followed by a low surrogate");
    BAD("\"\\ud800\\u0041\"", "not followed by a low surrogate");
    BAD("\"\\ud800x\"", "not followed by a low surrogate");
    BAD("\"\\udc00\"", "lone low surrogate");
    BAD("\"a\tb\"", "control character 0x09");
    BAD("\"a\nb\"", "control character 0x0a");
    BAD("\"\xc0\xaf\"", "invalid UTF-8");         /* overlong '/' */
    BAD("\"\xe0\x80\xaf\"", "invalid UTF-8");     /* overlong, 3 bytes */
    BAD("\"\xed\xa0\x80\"", "invalid UTF-8");     /* an encoded surrogate */
    BAD("\"\xf4\x90\x80\x80\"", "invalid UTF-8"); /* above U+10FFFF */
    BAD("\"\x80\"", "invalid UTF-8");             /* lone continuation byte */
    BAD("\"\xc3\"", "invalid UTF-8");             /* cut sequence */
    BAD("\"\xff\"", "invalid UTF-8");
    BAD("1 2", "unexpected '2' after the value");
    BAD("{}x", "unexpected 'x' after the value");
    BAD("{}{}", "unexpected '{' after the value");
    BAD("\xef\xbb\xbf{}", "expected a value, got byte 0xef"); /* no BOM */
    BAD("[\f1]", "byte 0x0c");                                 /* form feed is not whitespace */
    BAD("\x00", "byte 0x00");
    /* positions: line, column and byte offset of the offending byte */
    BAD("{\n  \"a\": [1,\n   ]\n}", "at line 3, column 4 (byte 16)");
    BAD("{\"a\":1}\n\n  x", "at line 3, column 3 (byte 11)");
}

Test(conf_json, duplicate_keys)
{
    BAD("{\"a\":1,\"a\":2}", "duplicate key 'a' in the object at /");
    BAD("{\"x\":[{\"k\":1,\"j\":2,\"k\":3}]}", "duplicate key 'k' in the object at /x/0");
    BAD("{\"a/b\":{\"c~\":{\"z\":1,\"z\":1}}}", "at /a~1b/c~0");
    /* keys that differ only after a NUL are different keys */
    struct cnode *n = parse_ok("{\"a\\u0000b\":1,\"a\\u0000c\":2}", 27);
    cr_assert_eq(n->n, 2);
    cnode_free(n);
}

Test(conf_json, depth_limit)
{
    char buf[300];
    for (int depth = 63; depth <= 66; depth++) {
        memset(buf, '[', (size_t)depth);
        memset(buf + depth, ']', (size_t)depth);
        char *err = NULL;
        struct cnode *n = conf_json_parse(buf, 2 * (size_t)depth, &err);
        if (depth <= 64) {
            cr_assert_not_null(n, "depth %d: %s", depth, err);
            cnode_free(n);
        } else {
            cr_assert_null(n, "depth %d should be refused", depth);
            cr_assert(strstr(err, "nesting deeper than 64 levels"), "%s", err);
            free(err);
        }
    }
    /* objects count the same way */
    char obj[64 * 6 + 64 + 8];
    size_t o = 0;
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(obj + o, sizeof(obj) - o, "{\"a\":");
    o += (size_t)snprintf(obj + o, sizeof(obj) - o, "1");
    memset(obj + o, '}', 65);
    char *err = NULL;
    cr_assert_null(conf_json_parse(obj, o + 65, &err));
    cr_assert(strstr(err, "nesting deeper"), "%s", err);
    free(err);
}

Test(conf_json, big_numbers_kept_as_text)
{
    const char *nums[] = {"123456789012345678901234567890", "-0", "-0.0e-10", "1E+400",
                          "18446744073709551616", "0.000000000000000000000000001"};
    for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
        struct cnode *n = parse_ok(nums[i], strlen(nums[i]));
        cr_assert_str_eq(n->s, nums[i]);
        cr_assert_not(n->quoted);
        size_t len;
        char *out = conf_json_render(n, &len);
        cr_assert_eq(len, strlen(nums[i]) + 1);
        cr_assert(strncmp(out, nums[i], len - 1) == 0, "rendered %s", out);
        free(out);
        cnode_free(n);
    }
}

Test(conf_json, render_scalars)
{
    /* YAML reads these plain scalars; JSON must say the same thing */
    const char *yaml = "a: 5s\nb: 8\nc: '8'\nd: true\ne: ~\nf:\ng: Null\nh: \"null\"\n"
                       "i: 007\nj: 1e3\nk: \"tab\\there \\\" \\\\ \\u0001 \\x7f\"\nl: [x, 1]\n"
                       "m: {}\nn: []\n";
    struct conf_ctx cx = {.file = "t"};
    struct cnode *t = conf_yaml_parse(&cx, yaml, strlen(yaml));
    cr_assert_not_null(t);
    char *out = conf_json_render(t, NULL);
    const char *want = "{\n"
                       "  \"a\": \"5s\",\n"
                       "  \"b\": 8,\n"
                       "  \"c\": \"8\",\n"
                       "  \"d\": true,\n"
                       "  \"e\": null,\n"
                       "  \"f\": null,\n"
                       "  \"g\": null,\n"
                       "  \"h\": \"null\",\n"
                       "  \"i\": \"007\",\n"
                       "  \"j\": 1e3,\n"
                       "  \"k\": \"tab\\there \\\" \\\\ \\u0001 \\u007f\",\n"
                       "  \"l\": [\n    \"x\",\n    1\n  ],\n"
                       "  \"m\": {},\n"
                       "  \"n\": []\n"
                       "}\n";
    cr_assert_str_eq(out, want);
    /* parse(render(t)) renders the same, and nulls stay nulls */
    struct cnode *back = parse_ok(out, strlen(out));
    char *again = conf_json_render(back, NULL);
    cr_assert_str_eq(again, out);
    cr_assert(cnode_is_null(cnode_map_get(back, "e")));
    cr_assert_not(cnode_is_null(cnode_map_get(back, "h")));
    free(again);
    free(out);
    cnode_free(back);
    cnode_free(t);
    conf_ctx_flush(&cx, NULL);
}

static const char full_yaml[] =
    "workers: 3\n"
    "shutdown_grace: 5s\n"
    "admin: {listen: 127.0.0.1:9901}\n"
    "log: {access: stdout, level: warn}\n"
    "trusted_proxies: [127.0.0.1/32, \"::1\"]\n"
    "timeouts: {client_header: 1s, keepalive: 0s, upstream_read: 6s}\n"
    "limits: {max_header_bytes: 32k, max_body_bytes: 0, max_connections: 500}\n"
    "listeners:\n"
    "  - {name: web, listen: \"127.0.0.1:8080\"}\n"
    "  - {listen: \"[::1]:8081\", h2c: true}\n"
    "upstreams:\n"
    "  api: &up\n"
    "    balance: least_conn\n"
    "    servers:\n"
    "      - {address: 127.0.0.1:3000, weight: 3}\n"
    "      - 127.0.0.1:3001\n"
    "      - {address: 127.0.0.1:3002, backup: true}\n"
    "    retries: 2\n"
    "    health: {uri: /healthz, interval: 2s}\n"
    "  copy: *up\n"
    "  h:\n"
    "    balance: hash\n"
    "    hash_key: \"{header.x-user}\"\n"
    "    servers: [\"127.0.0.1:4000\"]\n"
    "routes:\n"
    "  - match: {host: \"*.example.com\", path: /api/, methods: [GET, POST]}\n"
    "    upstream: api\n"
    "    headers:\n"
    "      request: {set: {X-Real-IP: \"{client_ip}\"}, remove: [X-Debug]}\n"
    "      response: {add: {X-A: \"1\"}}\n"
    "  - match: {path: \"~^/re/[0-9]+$\"}\n"
    "    respond: {status: 404, body: \"gone\\n\\u00e9\"}\n"
    "  - match: {path: /old/}\n"
    "    redirect: {to: \"https://{host}/new/\", status: 301}\n"
    "  - upstream: h\n";

static void same_str(const char *a, const char *b)
{
    cr_assert((!a && !b) || (a && b && strcmp(a, b) == 0), "'%s' != '%s'", a ? a : "(null)",
              b ? b : "(null)");
}

/* The fields a route, upstream or listener is made of, compared one by one. */
static void same_conf(const struct conf *a, const struct conf *b)
{
    cr_assert_eq(a->workers, b->workers);
    cr_assert_eq(a->shutdown_grace_ms, b->shutdown_grace_ms);
    same_str(a->admin.listen, b->admin.listen);
    same_str(a->log.access, b->log.access);
    cr_assert_eq(a->log.level, b->log.level);
    cr_assert_eq(a->n_trusted_proxies, b->n_trusted_proxies);
    cr_assert(memcmp(&a->timeouts, &b->timeouts, sizeof(a->timeouts)) == 0);
    cr_assert(memcmp(&a->limits, &b->limits, sizeof(a->limits)) == 0);
    cr_assert_eq(a->n_listeners, b->n_listeners);
    for (size_t i = 0; i < a->n_listeners; i++) {
        cr_assert_str_eq(a->listeners[i].name, b->listeners[i].name);
        cr_assert_str_eq(a->listeners[i].listen, b->listeners[i].listen);
        cr_assert_eq(a->listeners[i].h2c, b->listeners[i].h2c);
    }
    cr_assert_eq(a->n_upstreams, b->n_upstreams);
    for (size_t i = 0; i < a->n_upstreams; i++) {
        const struct conf_upstream *x = &a->upstreams[i], *y = &b->upstreams[i];
        cr_assert_str_eq(x->name, y->name);
        cr_assert_eq(x->balance, y->balance);
        cr_assert_eq(x->retries, y->retries);
        cr_assert_eq(x->health.enabled, y->health.enabled);
        cr_assert_eq(x->health.interval_ms, y->health.interval_ms);
        cr_assert_eq(x->n_servers, y->n_servers);
        cr_assert_eq(!x->hash_key, !y->hash_key);
        for (size_t j = 0; j < x->n_servers; j++) {
            cr_assert_str_eq(x->servers[j].address, y->servers[j].address);
            cr_assert_eq(x->servers[j].weight, y->servers[j].weight);
            cr_assert_eq(x->servers[j].backup, y->servers[j].backup);
        }
    }
    cr_assert_eq(a->n_routes, b->n_routes);
    for (size_t i = 0; i < a->n_routes; i++) {
        const struct conf_route *x = &a->routes[i], *y = &b->routes[i];
        cr_assert_str_eq(x->name, y->name);
        cr_assert_eq(x->path_kind, y->path_kind);
        cr_assert_eq(!x->host, !y->host);
        if (x->host)
            cr_assert_str_eq(x->host, y->host);
        cr_assert_eq(x->host_wildcard, y->host_wildcard);
        cr_assert_eq(x->methods, y->methods);
        cr_assert_eq(x->action, y->action);
        cr_assert_eq(!x->upstream, !y->upstream);
        if (x->upstream)
            cr_assert_str_eq(x->upstream->name, y->upstream->name);
        cr_assert_eq(x->respond_status, y->respond_status);
        cr_assert_eq(x->respond_body_len, y->respond_body_len);
        if (x->respond_body_len)
            cr_assert(memcmp(x->respond_body, y->respond_body, x->respond_body_len) == 0);
        cr_assert_eq(x->redirect_status, y->redirect_status);
        cr_assert_eq(x->req_headers.n, y->req_headers.n);
        cr_assert_eq(x->resp_headers.n, y->resp_headers.n);
    }
}

Test(conf_json, round_trip_yaml_json_same_conf)
{
    struct conf_errors e = {0};
    struct conf *a = conf_load_buffer("/etc/p/t.yaml", full_yaml, sizeof(full_yaml) - 1, &e);
    for (size_t i = 0; i < e.n; i++)
        cr_log_error("%s", e.msgs[i]);
    cr_assert_not_null(a);
    cr_assert_not_null(a->tree, "a snapshot keeps its tree");
    size_t len;
    char *json = conf_to_json(a, &len);
    cr_assert_eq(len, strlen(json));
    bool bad_json = true;
    struct conf *b = conf_load_json("/etc/p/t.yaml", json, len, &e, &bad_json);
    for (size_t i = 0; i < e.n; i++)
        cr_log_error("%s", e.msgs[i]);
    cr_assert_not_null(b, "the JSON of a valid config must load: %s", json);
    cr_assert_not(bad_json);
    cr_assert_str_eq(b->path, "/etc/p/t.yaml");
    same_conf(a, b);
    char *json2 = conf_to_json(b, NULL);
    cr_assert_str_eq(json, json2, "tree -> JSON -> tree changed the tree");
    /* the alias was expanded into a copy */
    cr_assert(strstr(json, "\"copy\": {\n      \"balance\": \"least_conn\""), "%s", json);
    free(json);
    free(json2);
    conf_unref(a);
    conf_unref(b);
    conf_errors_free(&e);

    /* quick mode has a tree too */
    const char *to[] = {"127.0.0.1:9001", "127.0.0.1:9002"};
    struct conf *q = conf_quick(":8080", to, 2, &e);
    cr_assert_not_null(q);
    json = conf_to_json(q, NULL);
    cr_assert(strstr(json, "\"servers\": [\n        \"127.0.0.1:9001\""), "%s", json);
    struct conf *q2 = conf_load_json(NULL, json, strlen(json), &e, NULL);
    cr_assert_not_null(q2);
    same_conf(q, q2);
    free(json);
    conf_unref(q);
    conf_unref(q2);
}

Test(conf_json, schema_errors_by_pointer)
{
    const char *j = "{\"listeners\": [{\"listen\": \"127.0.0.1:8080\", \"bogus\": 1}],\n"
                    " \"upstreams\": {\"api\": {\"servers\": [{\"address\": \"127.0.0.1:1\", "
                    "\"weight\": 0}, {\"address\": \"nope\"}]}},\n"
                    " \"routes\": [{\"upstream\": \"missing\"}]}";
    struct conf_errors e = {0};
    bool bad_json = true;
    struct conf *c = conf_load_json(NULL, j, strlen(j), &e, &bad_json);
    cr_assert_null(c);
    cr_assert_not(bad_json);
    for (size_t i = 0; i < e.n; i++)
        cr_log_info("%s", e.msgs[i]);
    cr_assert_eq(e.n, 4);
    /* in document order */
    cr_assert(strncmp(e.msgs[0], "/listeners/0/bogus: unknown key 'bogus'", 39) == 0, "%s",
              e.msgs[0]);
    cr_assert(strncmp(e.msgs[1], "/upstreams/api/servers/0/weight: ", 33) == 0, "%s", e.msgs[1]);
    cr_assert(strncmp(e.msgs[2], "/upstreams/api/servers/1/address: invalid address 'nope'", 56) ==
                  0,
              "%s", e.msgs[2]);
    cr_assert(strncmp(e.msgs[3], "/routes/0/upstream: ", 20) == 0, "%s", e.msgs[3]);
    conf_errors_free(&e);

    c = conf_load_json(NULL, "{\"a\":", 5, &e, &bad_json);
    cr_assert_null(c);
    cr_assert(bad_json);
    cr_assert_eq(e.n, 1);
    cr_assert(strstr(e.msgs[0], "invalid JSON at line 1, column 6 (byte 5)"), "%s", e.msgs[0]);
    conf_errors_free(&e);

    c = conf_load_json(NULL, "[]", 2, &e, &bad_json);
    cr_assert_null(c);
    cr_assert_not(bad_json);
    cr_assert_str_eq(e.msgs[0], "/: the config must be a mapping of top-level keys, got a sequence");
    conf_errors_free(&e);
}

static struct conf *edit_base(void)
{
    static const char y[] = "listeners: [{listen: \"127.0.0.1:8080\"}]\n"
                            "upstreams:\n"
                            "  api: {servers: [127.0.0.1:3000, {address: 127.0.0.1:3001}]}\n"
                            "  one: {servers: [127.0.0.1:4000]}\n"
                            "routes: [{upstream: api}, {upstream: one}]\n";
    struct conf_errors e = {0};
    struct conf *c = conf_load_buffer("/x/t.yaml", y, sizeof(y) - 1, &e);
    cr_assert_not_null(c);
    c->path = strdup("/x/t.yaml");
    return c;
}

Test(conf_edit, add_server)
{
    struct conf *c = edit_base(), *n = NULL;
    struct conf_errors e = {0};
    const char *body = "{\"address\": \"127.0.0.1:3002\", \"weight\": 5, \"backup\": true}";
    cr_assert_eq(conf_edit_add_server(c, "api", body, strlen(body), &n, &e), CONF_EDIT_OK);
    cr_assert_eq(e.n, 0);
    const struct conf_upstream *u = conf_find_upstream(n, "api");
    cr_assert_eq(u->n_servers, 3);
    cr_assert_str_eq(u->servers[2].address, "127.0.0.1:3002");
    cr_assert_eq(u->servers[2].weight, 5);
    cr_assert(u->servers[2].backup);
    cr_assert_str_eq(n->path, "/x/t.yaml");
    /* the running snapshot is untouched, and the new tree shows the server */
    cr_assert_eq(conf_find_upstream(c, "api")->n_servers, 2);
    char *json = conf_to_json(n, NULL);
    cr_assert(strstr(json, "\"address\": \"127.0.0.1:3002\""), "%s", json);
    free(json);
    conf_unref(n);

    /* duplicates, by text or by address */
    body = "{\"address\": \"127.0.0.1:3001\"}";
    cr_assert_eq(conf_edit_add_server(c, "api", body, strlen(body), &n, &e), CONF_EDIT_DUPLICATE);
    cr_assert_null(n);
    cr_assert_str_eq(e.msgs[0], "upstream 'api' already has server '127.0.0.1:3001'");
    conf_errors_free(&e);
    body = "{\"address\": \"127.000.0.1:3000\"}";
    enum conf_edit_rc rc = conf_edit_add_server(c, "api", body, strlen(body), &n, &e);
    cr_assert(rc == CONF_EDIT_DUPLICATE || rc == CONF_EDIT_INVALID);
    conf_errors_free(&e);

    cr_assert_eq(conf_edit_add_server(c, "nope", body, strlen(body), &n, &e),
                 CONF_EDIT_NO_UPSTREAM);
    cr_assert_eq(conf_edit_add_server(c, "api", "{", 1, &n, &e), CONF_EDIT_BAD_JSON);
    cr_assert(strstr(e.msgs[0], "invalid JSON"), "%s", e.msgs[0]);
    conf_errors_free(&e);
    cr_assert_eq(conf_edit_add_server(c, "api", "\"127.0.0.1:9\"", 13, &n, &e), CONF_EDIT_BAD_JSON);
    conf_errors_free(&e);

    /* the schema judges the rest, located in the whole tree */
    body = "{\"address\": \"127.0.0.1:3009\", \"weight\": \"x\", \"color\": 1}";
    cr_assert_eq(conf_edit_add_server(c, "api", body, strlen(body), &n, &e), CONF_EDIT_INVALID);
    cr_assert_null(n);
    cr_assert_eq(e.n, 2);
    cr_assert(strncmp(e.msgs[0], "/upstreams/api/servers/2/", 25) == 0, "%s", e.msgs[0]);
    cr_assert(strncmp(e.msgs[1], "/upstreams/api/servers/2/", 25) == 0, "%s", e.msgs[1]);
    conf_errors_free(&e);
    body = "{\"weight\": 2}";
    cr_assert_eq(conf_edit_add_server(c, "api", body, strlen(body), &n, &e), CONF_EDIT_INVALID);
    cr_assert_str_eq(e.msgs[0], "/upstreams/api/servers/2: missing required key 'address' in server");
    conf_errors_free(&e);
    conf_unref(c);
}

Test(conf_edit, remove_server)
{
    struct conf *c = edit_base(), *n = NULL;
    struct conf_errors e = {0};
    cr_assert_eq(conf_edit_remove_server(c, "api", "127.0.0.1:3000", &n, &e), CONF_EDIT_OK);
    const struct conf_upstream *u = conf_find_upstream(n, "api");
    cr_assert_eq(u->n_servers, 1);
    cr_assert_str_eq(u->servers[0].address, "127.0.0.1:3001");
    cr_assert_eq(u->servers[0].index, 0);
    /* the edited tree can be edited again (its links were renumbered) */
    struct conf *n2 = NULL;
    cr_assert_eq(conf_edit_remove_server(n, "api", "127.0.0.1:3001", &n2, &e), CONF_EDIT_INVALID);
    cr_assert_str_eq(e.msgs[0], "/upstreams/api/servers: 'servers' must not be empty");
    conf_errors_free(&e);
    const char *body = "{\"address\": \"127.0.0.1:3000\"}";
    cr_assert_eq(conf_edit_add_server(n, "api", body, strlen(body), &n2, &e), CONF_EDIT_OK);
    cr_assert_eq(conf_find_upstream(n2, "api")->n_servers, 2);
    conf_unref(n2);
    conf_unref(n);

    cr_assert_eq(conf_edit_remove_server(c, "api", "127.0.0.1:9", &n, &e), CONF_EDIT_NO_SERVER);
    cr_assert_eq(conf_edit_remove_server(c, "zzz", "127.0.0.1:3000", &n, &e),
                 CONF_EDIT_NO_UPSTREAM);
    cr_assert_eq(conf_edit_remove_server(c, "one", "127.0.0.1:4000", &n, &e), CONF_EDIT_INVALID);
    conf_errors_free(&e);
    conf_unref(c);
}

Test(conf_edit, keep_restart_settings)
{
    static const char y1[] = "workers: 2\nadmin: {listen: 127.0.0.1:9901}\n"
                             "log: {access: /tmp/a.log}\nlisteners: [{listen: \":1\"}]\n";
    static const char y2[] = "workers: 4\nlog: {level: debug, error: stdout}\n"
                             "listeners: [{listen: \":1\"}]\n";
    struct conf_errors e = {0}, w = {0};
    struct conf *a = conf_load_buffer("t", y1, sizeof(y1) - 1, &e);
    struct conf *b = conf_load_buffer("t", y2, sizeof(y2) - 1, &e);
    cr_assert(a && b);
    conf_keep_restart_settings(b, a, 2, &w);
    for (size_t i = 0; i < w.n; i++)
        cr_log_info("%s", w.msgs[i]);
    cr_assert_eq(w.n, 4);
    cr_assert_str_eq(w.msgs[0], "'workers' changes need a restart (keeping 2)");
    cr_assert_eq(b->workers, 2);
    cr_assert_str_eq(b->admin.listen, "127.0.0.1:9901");
    cr_assert_str_eq(b->log.access, "/tmp/a.log");
    cr_assert_str_eq(b->log.error, "stderr");
    cr_assert_eq(b->log.level, LOG_DEBUG, "log.level applies");
    /* the tree says the same: it builds into the same settings */
    char *json = conf_to_json(b, NULL);
    struct conf *c = conf_load_json(NULL, json, strlen(json), &e, NULL);
    cr_assert_not_null(c, "%s", json);
    cr_assert_eq(c->workers, 2);
    cr_assert_str_eq(c->admin.listen, "127.0.0.1:9901");
    cr_assert_str_eq(c->log.access, "/tmp/a.log");
    cr_assert_str_eq(c->log.error, "stderr");
    cr_assert_eq(c->log.level, LOG_DEBUG);
    conf_errors_free(&w);
    /* nothing to keep: no warning */
    conf_keep_restart_settings(c, b, 2, &w);
    cr_assert_eq(w.n, 0);
    free(json);
    conf_unref(a);
    conf_unref(b);
    conf_unref(c);
}
