/* Unit tests for core/tmpl.c: compile, expand, errors, truncation. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/tmpl.h"

static struct str resolve(void *ctx, enum tmpl_var v, struct str arg)
{
    (void)ctx;
    switch (v) {
    case TMPL_CLIENT_IP: return STR_LIT("10.0.0.1");
    case TMPL_HOST: return STR_LIT("example.com");
    case TMPL_PATH: return STR_LIT("/a/b");
    case TMPL_QUERY: return STR_LIT("x=1");
    case TMPL_SCHEME: return STR_LIT("https");
    case TMPL_REQUEST_ID: return STR_LIT("rid");
    case TMPL_METHOD: return STR_LIT("GET");
    case TMPL_URI: return STR_LIT("/a/b?x=1");
    case TMPL_TLS_CLIENT_SUBJECT: return STR_LIT("CN=me");
    case TMPL_HEADER:
        if (str_eq_lit_ci(arg, "x-test"))
            return STR_LIT("hv");
        return STR_NULL;
    default: return STR_NULL;
    }
}

static const char *expand(const char *src)
{
    static char out[256];
    const char *err = NULL;
    size_t off = 0, n;
    struct tmpl *t = tmpl_compile(src, &err, &off);

    cr_assert_not_null(t, "compile '%s': %s at %zu", src, err, off);
    n = tmpl_expand(t, resolve, NULL, out, sizeof(out) - 1);
    out[n] = '\0';
    tmpl_free(t);
    return out;
}

Test(tmpl, expand_all_vars)
{
    cr_assert_str_eq(expand("https://{host}/new/"), "https://example.com/new/");
    cr_assert_str_eq(expand("{client_ip}"), "10.0.0.1");
    cr_assert_str_eq(expand("{scheme}://{host}{uri}"), "https://example.com/a/b?x=1");
    cr_assert_str_eq(expand("{path}?{query}"), "/a/b?x=1");
    cr_assert_str_eq(expand("{method} {request_id}"), "GET rid");
    cr_assert_str_eq(expand("[{header.X-Test}]"), "[hv]");
    cr_assert_str_eq(expand("[{header.Missing}]"), "[]");
    cr_assert_str_eq(expand("{tls.client_subject}"), "CN=me");
    cr_assert_str_eq(expand(""), "");
    cr_assert_str_eq(expand("plain"), "plain");
}

Test(tmpl, literal_braces)
{
    cr_assert_str_eq(expand("{{x}}"), "{x}");
    cr_assert_str_eq(expand("a{{{host}}}b"), "a{example.com}b");
    cr_assert_str_eq(expand("}}"), "}");
}

Test(tmpl, parts_and_literal_flag)
{
    struct tmpl *t = tmpl_compile("a{{b", NULL, NULL);
    cr_assert_not_null(t);
    cr_assert_eq(t->n_parts, 1, "adjacent literal text is merged");
    cr_assert(tmpl_is_literal(t));
    cr_assert_str_eq(t->src, "a{{b");
    tmpl_free(t);

    t = tmpl_compile("x{header.Foo}y", NULL, NULL);
    cr_assert_not_null(t);
    cr_assert_eq(t->n_parts, 3);
    cr_assert_eq(t->parts[1].var, TMPL_HEADER);
    cr_assert(str_eq(t->parts[1].arg, STR_LIT("Foo")));
    cr_assert_not(tmpl_is_literal(t));
    tmpl_free(t);

    t = tmpl_compile("", NULL, NULL);
    cr_assert_not_null(t);
    cr_assert_eq(t->n_parts, 0);
    cr_assert(tmpl_is_literal(t));
    tmpl_free(t);
}

Test(tmpl, errors)
{
    struct {
        const char *src;
        size_t off;
        const char *msg_prefix;
    } cases[] = {
        {"{nope}", 0, "unknown placeholder"},
        {"abc{hots}", 3, "unknown placeholder"},
        {"{host", 0, "unclosed '{'"},
        {"x{ho{st}", 1, "unclosed '{'"},
        {"a}b", 1, "unbalanced '}'"},
        {"{host}}", 6, "unbalanced '}'"},
        {"{header.}", 0, "unknown placeholder"},
        {"{header.a b}", 0, "invalid header name"},
        {"{}", 0, "unknown placeholder"},
        {"{HOST}", 0, "unknown placeholder"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *err = NULL;
        size_t off = 999;
        cr_assert_null(tmpl_compile(cases[i].src, &err, &off), "'%s' should fail", cases[i].src);
        cr_assert_eq(off, cases[i].off, "offset for '%s': %zu", cases[i].src, off);
        cr_assert(strncmp(err, cases[i].msg_prefix, strlen(cases[i].msg_prefix)) == 0,
                  "message for '%s': %s", cases[i].src, err);
    }
}

Test(tmpl, truncation)
{
    struct tmpl *t = tmpl_compile("https://{host}/x", NULL, NULL);
    char out[10];
    size_t n;

    cr_assert_not_null(t);
    memset(out, '#', sizeof(out));
    n = tmpl_expand(t, resolve, NULL, out, 10);
    cr_assert_eq(n, strlen("https://example.com/x"), "returns the full length");
    cr_assert(memcmp(out, "https://ex", 10) == 0);

    memset(out, '#', sizeof(out));
    n = tmpl_expand(t, resolve, NULL, out, 3);
    cr_assert_eq(n, 21);
    cr_assert(memcmp(out, "htt###", 6) == 0, "never writes past cap");

    n = tmpl_expand(t, resolve, NULL, NULL, 0);
    cr_assert_eq(n, 21, "cap 0 just measures");
    tmpl_free(t);
}
