/* fuzz_h1_response.c - libFuzzer harness for h1_parse_response: invariants of
 * a successful parse and "incomplete" for proper prefixes of a valid head. */
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

static void run(const struct h1_limits *lim)
{
    static struct http_response resp, resp2;
    ssize_t rc = h1_parse_response(g_buf, g_len, &resp, lim);

    CHECK(rc >= 0 || rc == -502);
    if (rc <= 0)
        return;
    CHECK((size_t)rc <= g_len && resp.head_len == (size_t)rc);
    CHECK(rc >= 4 && memcmp(g_buf + rc - 4, "\r\n\r\n", 4) == 0);
    CHECK((size_t)rc <= lim->max_header_bytes);
    CHECK(resp.version == 10 || resp.version == 11);
    CHECK(resp.status >= 100 && resp.status <= 999);
    check_view(resp.reason);
    CHECK(!has_byte(resp.reason, '\r') && !has_byte(resp.reason, '\n'));
    CHECK(resp.n_headers <= HTTP_MAX_HEADERS);
    for (unsigned i = 0; i < resp.n_headers; i++) {
        struct str n = resp.headers[i].name, v = resp.headers[i].value;
        check_view(n);
        check_view(v);
        CHECK(n.len > 0 && !has_byte(n, ':'));
        CHECK(!has_byte(v, '\r') && !has_byte(v, '\n') && !has_byte(v, '\0'));
    }
    const struct http_framing *f = &resp.framing;
    CHECK(!(f->has_content_length && f->chunked));
    CHECK(!(f->chunked && resp.version == 10));
    CHECK(f->n_conn_tokens <= HTTP_MAX_CONN_TOKENS);
    for (unsigned i = 0; i < f->n_conn_tokens; i++)
        check_view(f->conn_tokens[i]);
    size_t prefixes[] = {0, 1, (size_t)rc / 2, (size_t)rc - 2, (size_t)rc - 1};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = prefixes[i];
        char *cp = malloc(n ? n : 1);
        memcpy(cp, g_buf, n);
        ssize_t prc = h1_parse_response(cp, n, &resp2, lim);
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
