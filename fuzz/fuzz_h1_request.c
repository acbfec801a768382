/* fuzz_h1_request.c - libFuzzer harness for h1_parse_request.
 * Parses the input under two sets of limits and checks the invariants of a
 * successful parse (every view inside the buffer, head_len bounds, framing
 * consistency), and that no proper prefix of a valid head parses as anything
 * but "incomplete". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c))                                                                      \
            __builtin_trap();                                                          \
    } while (0)

static const char *g_buf;
static size_t g_len;

static void check_view(struct str s)
{
    if (s.p == NULL) {
        CHECK(s.len == 0);
        return;
    }
    CHECK(s.p >= g_buf && s.p <= g_buf + g_len);
    CHECK(s.len <= (size_t)(g_buf + g_len - s.p));
}

static bool has_byte(struct str s, char c)
{
    return s.len && memchr(s.p, c, s.len) != NULL;
}

static void check_request(const struct http_request *r, ssize_t rc)
{
    CHECK(rc > 0 && (size_t)rc <= g_len && r->head_len == (size_t)rc);
    CHECK(rc >= 4 && memcmp(g_buf + rc - 4, "\r\n\r\n", 4) == 0);
    CHECK(r->version == 10 || r->version == 11);
    CHECK(r->method.len > 0 && r->target.len > 0);
    check_view(r->method);
    check_view(r->target);
    check_view(r->scheme);
    check_view(r->authority);
    check_view(r->path);
    check_view(r->query);
    check_view(r->upgrade);
    CHECK(r->method.p + r->method.len < g_buf + rc);
    CHECK(!has_byte(r->target, ' ') && !has_byte(r->target, '\r'));
    CHECK(r->n_headers <= HTTP_MAX_HEADERS);
    for (unsigned i = 0; i < r->n_headers; i++) {
        struct str n = r->headers[i].name, v = r->headers[i].value;
        check_view(n);
        check_view(v);
        CHECK(n.len > 0 && !has_byte(n, ':') && !has_byte(n, ' '));
        CHECK(n.p + n.len <= g_buf + rc && v.p + v.len <= g_buf + rc);
        CHECK(!has_byte(v, '\r') && !has_byte(v, '\n') && !has_byte(v, '\0'));
        if (v.len) {
            CHECK(v.p[0] != ' ' && v.p[0] != '\t');
            CHECK(v.p[v.len - 1] != ' ' && v.p[v.len - 1] != '\t');
        }
    }
    const struct http_framing *f = &r->framing;
    CHECK(!(f->has_content_length && f->chunked));
    CHECK(!(f->chunked && r->version == 10));
    CHECK(f->n_conn_tokens <= HTTP_MAX_CONN_TOKENS);
    for (unsigned i = 0; i < f->n_conn_tokens; i++) {
        check_view(f->conn_tokens[i]);
        CHECK(f->conn_tokens[i].len > 0);
    }
    if (r->version == 11)
        CHECK(r->authority.len > 0);
    if (r->query.p)
        CHECK(r->query.p[-1] == '?');
    CHECK(!has_byte(r->authority, '@') && !has_byte(r->authority, ' '));
}

static void run(const struct h1_limits *lim)
{
    static struct http_request req, req2;
    ssize_t rc = h1_parse_request(g_buf, g_len, &req, lim);

    CHECK(rc >= -505);
    if (rc < 0) {
        CHECK(rc == -400 || rc == -414 || rc == -431 || rc == -501 || rc == -505);
        return;
    }
    if (rc == 0)
        return;
    check_request(&req, rc);
    /* Limits: at most a few skipped empty lines, then a bounded head. */
    size_t skipped = (size_t)(req.method.p - g_buf);
    CHECK(skipped <= 8 && (size_t)rc - skipped <= lim->max_header_bytes);
    CHECK((size_t)(req.target.p + req.target.len - req.method.p) + 9 <= lim->max_request_line);
    /* Proper prefixes of a valid head are always "incomplete". */
    size_t prefixes[] = {0, 1, (size_t)rc / 2, (size_t)rc - 2, (size_t)rc - 1};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = prefixes[i];
        char *cp = malloc(n ? n : 1);
        memcpy(cp, g_buf, n);
        ssize_t prc = h1_parse_request(cp, n, &req2, lim);
        free(cp);
        CHECK(prc == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct h1_limits big = {.max_request_line = 8192, .max_header_bytes = 16384};
    static const struct h1_limits small = {.max_request_line = 40, .max_header_bytes = 200};

    g_buf = (const char *)data;
    g_len = size;
    run(&big);
    run(&small);
    return 0;
}
