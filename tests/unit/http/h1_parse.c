/* Unit tests for src/http/h1_parse.c: request and response heads, every known
 * smuggling vector, limits, and incremental (split) input. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1_parse.h"

static const struct h1_limits lim = {.max_request_line = 8192, .max_header_bytes = 16384};
static struct http_request req;
static struct http_response resp;

static ssize_t preq_n(const char *s, size_t n)
{
    return h1_parse_request(s, n, &req, &lim);
}

static ssize_t preq(const char *s)
{
    return preq_n(s, strlen(s));
}

static ssize_t presp(const char *s)
{
    return h1_parse_response(s, strlen(s), &resp, &lim);
}

/* Expects s to parse as a complete request consuming all of it. */
static void ok_req(const char *s)
{
    ssize_t rc = preq(s);
    cr_assert_eq(rc, (ssize_t)strlen(s), "expected success for %s, got %zd", s, rc);
    cr_assert_eq(req.head_len, strlen(s));
}

static void bad_req(const char *s, ssize_t code)
{
    ssize_t rc = preq(s);
    cr_assert_eq(rc, code, "expected %zd for %s, got %zd", code, s, rc);
}

#define STR_IS(v, lit)                                                                  \
    cr_assert((v).len == strlen(lit) && memcmp((v).p, (lit), strlen(lit)) == 0,        \
              "expected \"%s\", got \"%.*s\"", (lit), (int)(v).len, (v).p ? (v).p : "")

/* A request with a Host and one extra header line (hdr, including its CRLF). */
static char *with_hdr(const char *hdr)
{
    static char b[4096];
    snprintf(b, sizeof(b), "POST /x HTTP/1.1\r\nHost: a.example\r\n%s\r\n", hdr);
    return b;
}

/* ---- valid requests ------------------------------------------------------ */

Test(h1_req, simple_get_views)
{
    const char *s = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept:  */* \r\n"
                    "X-Empty:\r\nUser-Agent:\tcurl/8\t\r\n\r\n";
    ok_req(s);
    STR_IS(req.method, "GET");
    cr_assert_eq(req.method_id, HTTP_M_GET);
    STR_IS(req.target, "/index.html");
    STR_IS(req.path, "/index.html");
    cr_assert_null(req.query.p);
    cr_assert_eq(req.scheme.len, 0);
    STR_IS(req.authority, "example.com");
    cr_assert_eq(req.version, 11);
    cr_assert_eq(req.n_headers, 4);
    STR_IS(req.headers[0].name, "Host");
    STR_IS(req.headers[0].value, "example.com");
    STR_IS(req.headers[1].name, "Accept");
    STR_IS(req.headers[1].value, "*/*");
    STR_IS(req.headers[2].name, "X-Empty");
    cr_assert_eq(req.headers[2].value.len, 0);
    STR_IS(req.headers[3].value, "curl/8");
    cr_assert_not(req.framing.has_content_length);
    cr_assert_not(req.framing.chunked);
    cr_assert_not(req.expect_continue);
    cr_assert_eq(req.upgrade.len, 0);
    /* zero-copy: views point into the input */
    cr_assert_eq(req.method.p, s);
    cr_assert_eq(req.headers[1].value.p, strstr(s, "*/*"));
}

Test(h1_req, path_query_split)
{
    ok_req("GET /a/b?x=1&y=2?z HTTP/1.1\r\nHost: h\r\n\r\n");
    STR_IS(req.path, "/a/b");
    STR_IS(req.query, "x=1&y=2?z");
    ok_req("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n");
    STR_IS(req.path, "/p");
    cr_assert_not_null(req.query.p);
    cr_assert_eq(req.query.len, 0);
    ok_req("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    STR_IS(req.path, "/");
    cr_assert_null(req.query.p);
}

Test(h1_req, absolute_form)
{
    ok_req("GET http://Example.com:8080/p/q?x=y HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
    STR_IS(req.scheme, "http");
    STR_IS(req.authority, "example.com:8080");
    STR_IS(req.path, "/p/q");
    STR_IS(req.query, "x=y");
    STR_IS(req.target, "http://Example.com:8080/p/q?x=y");

    ok_req("GET HTTPS://a.com HTTP/1.1\r\nHost: a.com\r\n\r\n");
    STR_IS(req.scheme, "HTTPS");
    cr_assert_eq(req.path.len, 0);
    cr_assert_null(req.query.p);

    ok_req("GET https://a.com?q HTTP/1.1\r\nHost: a.com\r\n\r\n");
    cr_assert_eq(req.path.len, 0);
    STR_IS(req.query, "q");

    /* HTTP/1.0 without Host: the authority comes from the target */
    ok_req("GET http://b.org/x HTTP/1.0\r\n\r\n");
    STR_IS(req.authority, "b.org");
}

Test(h1_req, absolute_form_rejects)
{
    bad_req("GET http://a.com/ HTTP/1.1\r\nHost: b.com\r\n\r\n", -400);
    bad_req("GET http://a.com/ HTTP/1.1\r\nHost: a.com:80\r\n\r\n", -400);
    bad_req("GET http://a.com/ HTTP/1.1\r\n\r\n", -400); /* Host still required */
    bad_req("GET http://u:p@a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n", -400);
    bad_req("GET ftp://a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n", -400);
    bad_req("GET http:/a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n", -400);
    bad_req("GET http:///p HTTP/1.1\r\nHost: a.com\r\n\r\n", -400);
    bad_req("GET a.com/p HTTP/1.1\r\nHost: a.com\r\n\r\n", -400);
    bad_req("GET http://a.com/ HTTP/1.0\r\nHost: \r\n\r\n", -400);
}

Test(h1_req, asterisk_form)
{
    ok_req("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(req.method_id, HTTP_M_OPTIONS);
    STR_IS(req.path, "*");
    bad_req("GET * HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", -400);
}

Test(h1_req, authority_form)
{
    ok_req("CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n");
    cr_assert_eq(req.method_id, HTTP_M_CONNECT);
    STR_IS(req.target, "a.com:443");
    STR_IS(req.authority, "a.com:443");
    cr_assert_eq(req.path.len, 0);
    ok_req("CONNECT [::1]:8443 HTTP/1.0\r\n\r\n");
    STR_IS(req.authority, "[::1]:8443");
    bad_req("CONNECT a.com HTTP/1.1\r\nHost: a.com\r\n\r\n", -400);
    bad_req("CONNECT /x HTTP/1.1\r\nHost: a.com\r\n\r\n", -400);
    bad_req("CONNECT http://a.com:443/ HTTP/1.1\r\nHost: a.com\r\n\r\n", -400);
    bad_req("GET a.com:443 HTTP/1.1\r\nHost: a.com\r\n\r\n", -400);
}

Test(h1_req, method_ids)
{
    static const struct {
        const char *m;
        enum http_method id;
    } t[] = {
        {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},       {"POST", HTTP_M_POST},
        {"PUT", HTTP_M_PUT},         {"DELETE", HTTP_M_DELETE},   {"OPTIONS", HTTP_M_OPTIONS},
        {"TRACE", HTTP_M_TRACE},     {"PATCH", HTTP_M_PATCH},     {"get", HTTP_M_OTHER},
        {"PROPFIND", HTTP_M_OTHER},  {"GETX", HTTP_M_OTHER},      {"X-Y~!", HTTP_M_OTHER},
    };
    char b[256];
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        snprintf(b, sizeof(b), "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", t[i].m);
        ok_req(b);
        cr_assert_eq(req.method_id, t[i].id, "method %s", t[i].m);
        STR_IS(req.method, t[i].m);
    }
}

Test(h1_req, http10_without_host)
{
    ok_req("GET / HTTP/1.0\r\n\r\n");
    cr_assert_eq(req.version, 10);
    cr_assert_eq(req.n_headers, 0);
    cr_assert_eq(req.authority.len, 0);
    ok_req("GET / HTTP/1.0\r\nHost: \r\n\r\n"); /* empty Host tolerated in 1.0 */
    cr_assert_eq(req.authority.len, 0);
}

Test(h1_req, leading_empty_lines)
{
    const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    ok_req(s);
    cr_assert_eq(req.method.p, s + 4);
    ok_req("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    bad_req("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    cr_assert_eq(preq("\r\n"), 0);
    cr_assert_eq(preq("\r"), 0);
    cr_assert_eq(preq(""), 0);
}

Test(h1_req, value_bytes)
{
    ok_req(with_hdr("X: a \"b\"\t c \r\n"));
    STR_IS(req.headers[1].value, "a \"b\"\t c");
    ok_req(with_hdr("X: caf\xc3\xa9 \x80\xff\r\n")); /* obs-text */
    STR_IS(req.headers[1].value, "caf\xc3\xa9 \x80\xff");
    ok_req(with_hdr("X:\t\t\r\n"));
    cr_assert_eq(req.headers[1].value.len, 0);
    bad_req(with_hdr("X: a\x01 b\r\n"), -400);
    bad_req(with_hdr("X: a\x7f\r\n"), -400);
    bad_req(with_hdr("X: a\x1b[0m\r\n"), -400);
    bad_req(with_hdr("X: a\rb\r\n"), -400);    /* CR inside a value */
    bad_req(with_hdr("X: a\r\r\n"), -400);     /* CR before the line's CRLF */
    bad_req(with_hdr("X: a\nb\r\n"), -400);    /* bare LF inside a value */
    bad_req(with_hdr("X: a\n"), -400);         /* bare LF as line end */
}

/* The value and target scans skip 16 bytes at a time: put the offending byte
 * at every position of long values and targets. */
Test(h1_req, long_value_every_position)
{
    static const struct {
        unsigned char c;
        bool ok;
    } t[] = {{0x01, false}, {0x00, false}, {0x7f, false}, {'\r', false}, {'\n', false},
             {0x1f, false}, {'\t', true},  {0x80, true},  {0xff, true},  {' ', true},
             {'~', true},   {'#', true}};
    char b[256];
    for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        for (size_t pos = 0; pos < 48; pos++) {
            char v[49];
            memset(v, 'v', 48);
            v[48] = '\0';
            v[pos] = (char)t[k].c;
            /* built with memcpy: v may hold a NUL */
            memcpy(b, "GET / HTTP/1.1\r\nHost: h\r\nX: ", 28);
            int n = 28 + 48 + 4;
            memcpy(b + 28, v, 48);
            memcpy(b + 76, "\r\n\r\n", 4);
            ssize_t rc = preq_n(b, (size_t)n);
            if (t[k].ok) {
                cr_assert_eq(rc, n, "byte 0x%02x at %zu: %zd", t[k].c, pos, rc);
                cr_assert_eq(req.headers[1].value.len, 48 - (pos == 47 && t[k].c == '\t') -
                                                           (pos == 0 && t[k].c == '\t') -
                                                           (pos == 47 && t[k].c == ' ') -
                                                           (pos == 0 && t[k].c == ' '));
            } else {
                cr_assert_eq(rc, -400, "byte 0x%02x at %zu: %zd", t[k].c, pos, rc);
            }
        }
    }
}

Test(h1_req, long_target_every_position)
{
    static const unsigned char badc[] = {0x00, 0x01, 0x7f, 0x80, 0xff, '#', '\t', '\r', '\n'};
    char b[256];
    for (size_t k = 0; k < sizeof(badc); k++) {
        for (size_t pos = 1; pos < 48; pos++) {
            memcpy(b, "GET ", 4);
            memset(b + 4, 'p', 48);
            b[4] = '/';
            b[4 + pos] = (char)badc[k];
            memcpy(b + 52, " HTTP/1.1\r\nHost: h\r\n\r\n", 22);
            ssize_t rc = preq_n(b, 74);
            cr_assert_eq(rc, -400, "byte 0x%02x at %zu: %zd", badc[k], pos, rc);
        }
    }
    memcpy(b, "GET ", 4);
    for (int i = 0; i < 48; i++) { /* a spread of the accepted bytes */
        char c = (char)(0x21 + (i * 7) % 94);
        b[4 + i] = c == '#' ? 'x' : c;
    }
    b[4] = '/';
    memcpy(b + 52, " HTTP/1.1\r\nHost: h\r\n\r\n", 22);
    cr_assert_eq(preq_n(b, 74), 74);
    cr_assert_eq(req.target.len, 48);
}

Test(h1_req, nul_in_value)
{
    char b[128];
    int n = snprintf(b, sizeof(b), "GET / HTTP/1.1\r\nHost: h\r\nX: a_b\r\n\r\n");
    *strchr(b, '_') = '\0';
    cr_assert_eq(preq_n(b, (size_t)n), -400);
    /* also rejected before the head is complete */
    cr_assert_eq(preq_n(b, (size_t)n - 4), -400);
}

Test(h1_req, field_names)
{
    bad_req(with_hdr(": x\r\n"), -400);                  /* empty name */
    bad_req(with_hdr("X Y: x\r\n"), -400);
    bad_req(with_hdr("X(y): x\r\n"), -400);
    bad_req(with_hdr("X\r\n"), -400);                    /* no colon */
    bad_req(with_hdr("X-Name : x\r\n"), -400);           /* space before colon */
    bad_req(with_hdr("X-Name\t: x\r\n"), -400);
    bad_req(with_hdr("\xc3\xa9: x\r\n"), -400);
    ok_req(with_hdr("!#$%&'*+-.^_`|~09azAZ: x\r\n"));
}

Test(h1_req, obs_fold)
{
    bad_req(with_hdr("X: a\r\n b\r\n"), -400);
    bad_req(with_hdr("X: a\r\n\tb\r\n"), -400);
    bad_req("GET / HTTP/1.1\r\n Host: h\r\n\r\n", -400);
}

Test(h1_req, bare_lf_line_ends)
{
    bad_req("GET / HTTP/1.1\nHost: h\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: h\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: h\r\n\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: h\n\n", -400);
    /* early: rejected though the head is not complete */
    bad_req("GET / HTTP/1.1\r\nX: y\nmore", -400);
    bad_req("GET /\n", -400);
}

/* ---- smuggling: Content-Length / Transfer-Encoding ------------------------ */

Test(h1_req, content_length_valid)
{
    ok_req(with_hdr("Content-Length: 42\r\n"));
    cr_assert(req.framing.has_content_length);
    cr_assert_eq(req.framing.content_length, 42);
    cr_assert_not(req.framing.chunked);
    ok_req(with_hdr("content-length:0\r\n"));
    cr_assert_eq(req.framing.content_length, 0);
    ok_req(with_hdr("Content-Length: 007 \r\n"));
    cr_assert_eq(req.framing.content_length, 7);
    ok_req(with_hdr("Content-Length: 4611686018427387904\r\n")); /* 2^62 */
    cr_assert_eq(req.framing.content_length, UINT64_C(4611686018427387904));
}

Test(h1_req, content_length_invalid)
{
    static const char *const bad[] = {
        "+5", "-1", "5 5", "0x5", "5,5", "5, 5", "", "5a", "a", "5.0", "\xd9\xa5",
        "4611686018427387905",   /* 2^62 + 1 */
        "18446744073709551616",  /* 2^64 */
        "99999999999999999999999999",
    };
    char h[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(h, sizeof(h), "Content-Length: %s\r\n", bad[i]);
        bad_req(with_hdr(h), -400);
    }
}

Test(h1_req, content_length_repeated)
{
    bad_req(with_hdr("Content-Length: 5\r\nContent-Length: 5\r\n"), -400);
    bad_req(with_hdr("Content-Length: 5\r\nContent-Length: 6\r\n"), -400);
    bad_req(with_hdr("Content-Length: 5\r\nX: y\r\ncontent-length: 5\r\n"), -400);
}

Test(h1_req, transfer_encoding_valid)
{
    ok_req(with_hdr("Transfer-Encoding: chunked\r\n"));
    cr_assert(req.framing.chunked);
    cr_assert_not(req.framing.has_content_length);
    ok_req(with_hdr("transfer-encoding:   ChUnKeD \t\r\n"));
    cr_assert(req.framing.chunked);
    ok_req(with_hdr("Transfer-Encoding:chunked\r\n"));
    cr_assert(req.framing.chunked);
}

Test(h1_req, transfer_encoding_invalid)
{
    static const char *const bad[] = {
        "chunked, chunked", "gzip, chunked", "chunked, gzip", "identity", "",
        "chunked;q=1", "chunked,", ",chunked", "chunke", "xchunked", "\"chunked\"",
        "chunked\x0b", "gzip",
    };
    char h[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(h, sizeof(h), "Transfer-Encoding: %s\r\n", bad[i]);
        bad_req(with_hdr(h), -400);
    }
    bad_req(with_hdr("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), -400);
    bad_req(with_hdr("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), -400);
    bad_req(with_hdr("Transfer-Encoding : chunked\r\n"), -400);
    bad_req(with_hdr("Transfer-Encoding\t: chunked\r\n"), -400);
    bad_req(with_hdr("Transfer-Encoding: \r\n chunked\r\n"), -400);
    /* a different field name: not Transfer-Encoding, so no framing conflict */
    ok_req(with_hdr("Transfer_Encoding: chunked\r\nContent-Length: 1\r\n"));
    cr_assert_not(req.framing.chunked);
    cr_assert_eq(req.framing.content_length, 1);
}

Test(h1_req, transfer_encoding_http10)
{
    bad_req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400);
    bad_req("POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", -400);
}

Test(h1_req, cl_and_te)
{
    bad_req(with_hdr("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), -400);
    bad_req(with_hdr("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), -400);
    bad_req(with_hdr("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"), -400);
}

/* ---- Host ----------------------------------------------------------------- */

Test(h1_req, host_rules)
{
    bad_req("GET / HTTP/1.1\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", -400);
    bad_req("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: \r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: u@a.com\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: a.com:\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: a.com:99999\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: a.com:123456\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: a.com:8x\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: a.com/x\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: []\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: a%2ecom\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\nHost: \xc3\xa9.com\r\n\r\n", -400);
    ok_req("GET / HTTP/1.1\r\nHost:  Sub.Example-1.com:65535 \r\n\r\n");
    STR_IS(req.authority, "Sub.Example-1.com:65535");
    ok_req("GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n");
    STR_IS(req.authority, "[2001:db8::1]:8080");
    ok_req("GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n");
    STR_IS(req.authority, "10.0.0.1");
}

/* ---- Connection, Expect, Upgrade -------------------------------------------- */

Test(h1_req, connection_tokens)
{
    ok_req(with_hdr("Connection: keep-alive, Upgrade , X-Foo\r\nConnection: ,close,,\r\n"
                    "Upgrade: websocket\r\n"));
    cr_assert(req.framing.conn_keep_alive);
    cr_assert(req.framing.conn_upgrade);
    cr_assert(req.framing.conn_close);
    cr_assert_eq(req.framing.n_conn_tokens, 1);
    STR_IS(req.framing.conn_tokens[0], "X-Foo");
    STR_IS(req.upgrade, "websocket");

    ok_req(with_hdr("Connection: CLOSE\r\n"));
    cr_assert(req.framing.conn_close);
    cr_assert_not(req.framing.conn_keep_alive);
    cr_assert_eq(req.framing.n_conn_tokens, 0);

    bad_req(with_hdr("Connection: a b\r\n"), -400);
    bad_req(with_hdr("Connection: close;x\r\n"), -400);
    bad_req(with_hdr("Connection: \"close\"\r\n"), -400);
}

Test(h1_req, connection_token_limit)
{
    char h[512] = "Connection: ";
    for (int i = 0; i < HTTP_MAX_CONN_TOKENS; i++)
        snprintf(h + strlen(h), sizeof(h) - strlen(h), "t%d,", i);
    size_t hl = strlen(h);
    snprintf(h + hl, sizeof(h) - hl, "\r\n");
    ok_req(with_hdr(h));
    cr_assert_eq(req.framing.n_conn_tokens, HTTP_MAX_CONN_TOKENS);
    STR_IS(req.framing.conn_tokens[15], "t15");
    snprintf(h + hl, sizeof(h) - hl, "one-more\r\n");
    bad_req(with_hdr(h), -400);
}

Test(h1_req, expect_continue)
{
    ok_req(with_hdr("Expect: 100-Continue\r\nContent-Length: 3\r\n"));
    cr_assert(req.expect_continue);
    ok_req(with_hdr("Expect: 100-continuex\r\n"));
    cr_assert_not(req.expect_continue);
}

/* ---- request-line syntax ---------------------------------------------------- */

Test(h1_req, request_line_syntax)
{
    bad_req("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET /  HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", -400);
    bad_req("GET /\r\nHost: h\r\n\r\n", -400);
    bad_req("GET / \r\nHost: h\r\n\r\n", -400);
    bad_req("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET / http/1.1\r\nHost: h\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1x\r\nHost: h\r\n\r\n", -400);
    bad_req("GET / HTTP/11\r\nHost: h\r\n\r\n", -400);
    bad_req("GET / HTTP/1.10\r\nHost: h\r\n\r\n", -400);
    bad_req("GET / HTTP/a.b\r\nHost: h\r\n\r\n", -400);
    bad_req("GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", -400);
}

Test(h1_req, version_505)
{
    bad_req("GET / HTTP/2.0\r\nHost: h\r\n\r\n", -505);
    bad_req("GET / HTTP/1.2\r\nHost: h\r\n\r\n", -505);
    bad_req("GET / HTTP/0.9\r\nHost: h\r\n\r\n", -505);
    bad_req("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", -505);
    /* known as soon as the request-line is complete */
    bad_req("GET / HTTP/3.0\r\nHost: h", -505);
}

Test(h1_req, early_rejects_when_incomplete)
{
    bad_req("G@T / HTTP/1.1", -400);
    bad_req("GET\t", -400);
    bad_req("GET /a b HTTP/1.1\r\n", -400);
    static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: \0";
    cr_assert_eq(preq_n(nul, sizeof(nul) - 1), -400);
    cr_assert_eq(preq("GET"), 0);
    cr_assert_eq(preq("GET /long/path?q"), 0);
    cr_assert_eq(preq("GET / HTTP/1.1\r\nHost: h\r\n"), 0);
    cr_assert_eq(preq("GET / HTTP/1.1\r\nHost: h\r\n\r"), 0);
}

/* ---- limits ------------------------------------------------------------------ */

Test(h1_req, limit_414)
{
    struct h1_limits l = {.max_request_line = 30, .max_header_bytes = 1000};
    /* "GET /<n> HTTP/1.1" is 14 + n bytes */
    char b[256];
    snprintf(b, sizeof(b), "GET /%.*s HTTP/1.1\r\nHost: h\r\n\r\n", 16, "aaaaaaaaaaaaaaaaaaaaaaaa");
    cr_assert_eq(h1_parse_request(b, strlen(b), &req, &l), (ssize_t)strlen(b));
    snprintf(b, sizeof(b), "GET /%.*s HTTP/1.1\r\nHost: h\r\n\r\n", 17, "aaaaaaaaaaaaaaaaaaaaaaaa");
    cr_assert_eq(h1_parse_request(b, strlen(b), &req, &l), -414);
    /* incomplete: the line without CRLF already too long */
    cr_assert_eq(h1_parse_request(b, 31, &req, &l), -414);
    cr_assert_eq(h1_parse_request(b, 30, &req, &l), 0);
    /* 30 bytes + a CR: may still be a 30-byte line */
    snprintf(b, sizeof(b), "GET /%.*s HTTP/1.1\r\n", 16, "aaaaaaaaaaaaaaaaaaaaaaaa");
    cr_assert_eq(h1_parse_request(b, 31, &req, &l), 0);
    /* the complete line is known to be too long even if the head is not */
    snprintf(b, sizeof(b), "GET /%.*s HTTP/1.1\r\nHost", 17, "aaaaaaaaaaaaaaaaaaaaaaaa");
    cr_assert_eq(h1_parse_request(b, strlen(b), &req, &l), -414);
    /* with no CRLF at all in a huge buffer: 414, not 431 */
    char big[4096];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    cr_assert_eq(h1_parse_request(big, sizeof(big), &req, &l), -414);
}

Test(h1_req, limit_431)
{
    struct h1_limits l = {.max_request_line = 100, .max_header_bytes = 60};
    const char *base = "GET / HTTP/1.1\r\nHost: h\r\n"; /* 25 bytes */
    char b[256];
    /* head = 25 + "X: " + n + CRLF + CRLF = 32 + n */
    snprintf(b, sizeof(b), "%sX: %.*s\r\n\r\n", base, 28, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    cr_assert_eq(strlen(b), 60);
    cr_assert_eq(h1_parse_request(b, strlen(b), &req, &l), 60);
    snprintf(b, sizeof(b), "%sX: %.*s\r\n\r\n", base, 29, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    cr_assert_eq(h1_parse_request(b, strlen(b), &req, &l), -431);
    /* incomplete: as soon as more than the limit is buffered without an end */
    cr_assert_eq(h1_parse_request(b, 60, &req, &l), 0);
    cr_assert_eq(h1_parse_request(b, 61, &req, &l), -431);
    /* a complete head within the limit followed by more data is fine */
    snprintf(b, sizeof(b), "%s\r\n%s", base, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    cr_assert_eq(h1_parse_request(b, strlen(b), &req, &l), 27);
}

Test(h1_req, too_many_headers)
{
    const size_t cap = 8192;
    char *b = malloc(cap);
    size_t n = (size_t)snprintf(b, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(b + n, cap - n, "X%d: v\r\n", i);
    snprintf(b + n, cap - n, "\r\n");
    cr_assert_eq(preq(b), (ssize_t)(n + 2));
    cr_assert_eq(req.n_headers, HTTP_MAX_HEADERS);
    STR_IS(req.headers[HTTP_MAX_HEADERS - 1].name, "X127");
    n += (size_t)snprintf(b + n, cap - n, "Y: v\r\n\r\n");
    cr_assert_eq(preq(b), -431);
    free(b);
}

Test(h1_req, null_limits_use_defaults)
{
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    cr_assert_eq(h1_parse_request(s, strlen(s), &req, NULL), (ssize_t)strlen(s));
}

/* ---- incremental input ------------------------------------------------------- */

Test(h1_req, pipelined)
{
    const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\n"
                    "Content-Length: 0\r\n\r\n";
    ssize_t n1 = preq(s);
    cr_assert_eq(n1, (ssize_t)(strstr(s, "POST") - s));
    STR_IS(req.path, "/a");
    ssize_t n2 = preq(s + n1);
    cr_assert_eq(n2, (ssize_t)strlen(s + n1));
    STR_IS(req.path, "/b");
    cr_assert(req.framing.has_content_length);
}

static const char *const valid_reqs[] = {
    "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "\r\nPOST /up?x=1 HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 12\r\n"
    "Connection: keep-alive, X-A\r\nExpect: 100-continue\r\n\r\n",
    "PUT http://a.com/p HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: chunked\r\n\r\n",
    "OPTIONS * HTTP/1.0\r\n\r\n",
    "CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nX: \x80\xfe\r\n\r\n",
};

Test(h1_req, incomplete_at_every_split)
{
    for (size_t k = 0; k < sizeof(valid_reqs) / sizeof(valid_reqs[0]); k++) {
        const char *s = valid_reqs[k];
        size_t len = strlen(s);
        cr_assert_eq(preq(s), (ssize_t)len, "request %zu", k);
        for (size_t n = 0; n < len; n++) {
            /* a heap copy of exactly n bytes: ASan catches any over-read */
            char *cp = malloc(n ? n : 1);
            memcpy(cp, s, n);
            ssize_t rc = preq_n(cp, n);
            free(cp);
            cr_assert_eq(rc, 0, "request %zu prefix %zu: %zd", k, n, rc);
        }
    }
}

/* ---- responses ------------------------------------------------------------------ */

Test(h1_resp, simple)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
    cr_assert_eq(presp(s), (ssize_t)(strlen(s) - 5));
    cr_assert_eq(resp.head_len, strlen(s) - 5);
    cr_assert_eq(resp.version, 11);
    cr_assert_eq(resp.status, 200);
    STR_IS(resp.reason, "OK");
    cr_assert_eq(resp.n_headers, 2);
    STR_IS(resp.headers[1].name, "Server");
    cr_assert(resp.framing.has_content_length);
    cr_assert_eq(resp.framing.content_length, 5);
}

Test(h1_resp, reasons)
{
    cr_assert_gt(presp("HTTP/1.1 200\r\n\r\n"), 0);
    cr_assert_eq(resp.reason.len, 0);
    cr_assert_gt(presp("HTTP/1.1 200 \r\n\r\n"), 0);
    cr_assert_eq(resp.reason.len, 0);
    cr_assert_gt(presp("HTTP/1.1 404 Not  Found \xe9\r\n\r\n"), 0);
    STR_IS(resp.reason, "Not  Found \xe9");
    cr_assert_eq(resp.status, 404);
    cr_assert_gt(presp("HTTP/1.0 999 X\r\n\r\n"), 0);
    cr_assert_eq(resp.status, 999);
    cr_assert_eq(resp.version, 10);
    cr_assert_gt(presp("HTTP/1.1 100 Continue\r\n\r\n"), 0);
    cr_assert_eq(resp.status, 100);
}

Test(h1_resp, close_delimited)
{
    cr_assert_gt(presp("HTTP/1.0 200 OK\r\nServer: old\r\n\r\n"), 0);
    cr_assert_not(resp.framing.has_content_length);
    cr_assert_not(resp.framing.chunked);
}

Test(h1_resp, framing)
{
    cr_assert_gt(presp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       "Connection: close, X-Y\r\n\r\n"),
                 0);
    cr_assert(resp.framing.chunked);
    cr_assert(resp.framing.conn_close);
    cr_assert_eq(resp.framing.n_conn_tokens, 1);
    STR_IS(resp.framing.conn_tokens[0], "X-Y");
}

Test(h1_resp, rejects)
{
    static const char *const bad[] = {
        "HTTP/1.1 099 X\r\n\r\n",
        "HTTP/1.1 000\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\nX: y\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: y\n\r\n",
        "HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n",
        /* incomplete but already wrong */
        "XTTP/1.1",
        "HTTP/1.1 200 OK\r\nX: y\nZ",
        "HTTP/1.1 2000 OK\r\nX",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(presp(bad[i]), -502, "case %zu: %s", i, bad[i]);
    char b[64] = "HTTP/1.1 200 OK\r\nX: a_\r\n\r\n";
    *strchr(b, '_') = '\0';
    cr_assert_eq(h1_parse_response(b, 27, &resp, &lim), -502);
}

Test(h1_resp, limits)
{
    struct h1_limits l = {.max_request_line = 20, .max_header_bytes = 40};
    cr_assert_eq(h1_parse_response("HTTP/1.1 200 OK\r\n\r\n", 19, &resp, &l), 19);
    cr_assert_eq(h1_parse_response("HTTP/1.1 200 OK-long-reason\r\n\r\n", 31, &resp, &l), -502);
    const char *s = "HTTP/1.1 200 OK\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    cr_assert_eq(h1_parse_response(s, strlen(s), &resp, &l), -502);
    cr_assert_eq(h1_parse_response(s, 40, &resp, &l), 0);
    cr_assert_eq(h1_parse_response(s, 41, &resp, &l), -502);
}

Test(h1_resp, incomplete_at_every_split)
{
    const char *s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n\r\n";
    size_t len = strlen(s);
    cr_assert_eq(presp(s), (ssize_t)len);
    cr_assert(resp.framing.conn_upgrade);
    for (size_t n = 0; n < len; n++) {
        char *cp = malloc(n ? n : 1);
        memcpy(cp, s, n);
        ssize_t rc = h1_parse_response(cp, n, &resp, &lim);
        free(cp);
        cr_assert_eq(rc, 0, "prefix %zu: %zd", n, rc);
    }
}
