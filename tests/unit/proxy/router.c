/* Unit tests: the router (proxy/router.c). Routes are built by hand; regexes
 * are compiled here the way the config loader does (pcre2 + JIT). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <criterion/criterion.h>
#include <pcre2.h>

#include "proxy/router.h"

#define MAX_ROUTES 16

static struct conf_route t_routes[MAX_ROUTES];
static struct conf t_conf;
static struct router_scratch *t_rs;

static void rt_setup(void)
{
    memset(t_routes, 0, sizeof(t_routes));
    memset(&t_conf, 0, sizeof(t_conf));
    t_conf.routes = t_routes;
    t_rs = router_scratch_new();
}

static void rt_teardown(void)
{
    for (size_t i = 0; i < t_conf.n_routes; i++)
        if (t_routes[i].regex)
            pcre2_code_free(t_routes[i].regex);
    router_scratch_free(t_rs);
}

/* Appends a route; host may be "*.x.com" (wildcard) or NULL. */
static struct conf_route *add(const char *host, enum path_kind kind, const char *path)
{
    cr_assert_lt(t_conf.n_routes, MAX_ROUTES);
    struct conf_route *r = &t_routes[t_conf.n_routes];
    r->index = (unsigned)t_conf.n_routes++;
    if (host && host[0] == '*') {
        r->host = (char *)host + 1;
        r->host_wildcard = true;
    } else {
        r->host = (char *)host;
    }
    r->path_kind = kind;
    r->path = (char *)path;
    r->path_len = path ? strlen(path) : 0;
    if (kind == PATH_REGEX) {
        int err;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)path, PCRE2_ZERO_TERMINATED, 0, &err, &off,
                                       NULL);
        cr_assert_not_null(re);
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* may fail without JIT: fine */
        r->regex = re;
    }
    return r;
}

/* Index of the matched route for a GET, or -1. */
static int m(const char *host, const char *path)
{
    const struct conf_route *r = router_match(&t_conf, str_c(host), str_c(path), HTTP_M_GET,
                                              STR_LIT("GET"), t_rs);
    return r ? (int)r->index : -1;
}

static int mm(enum http_method meth, const char *name, const char *path)
{
    const struct conf_route *r = router_match(&t_conf, STR_LIT("a.com"), str_c(path), meth,
                                              str_c(name), t_rs);
    return r ? (int)r->index : -1;
}

TestSuite(router, .init = rt_setup, .fini = rt_teardown);

Test(router, no_routes_null)
{
    cr_assert_eq(m("a.com", "/"), -1);
}

Test(router, path_any)
{
    add(NULL, PATH_ANY, NULL);
    cr_assert_eq(m("a.com", "/"), 0);
    cr_assert_eq(m("", "/x/y"), 0);
    cr_assert_eq(m("a.com", "*"), 0);
}

Test(router, path_prefix)
{
    add(NULL, PATH_PREFIX, "/api/");
    cr_assert_eq(m("a.com", "/api/"), 0);
    cr_assert_eq(m("a.com", "/api/v1/users"), 0);
    cr_assert_eq(m("a.com", "/api"), -1);
    cr_assert_eq(m("a.com", "/API/"), -1); /* bytes: case-sensitive */
    cr_assert_eq(m("a.com", "/apix"), -1);
    cr_assert_eq(m("a.com", "/"), -1);
}

Test(router, path_exact)
{
    add(NULL, PATH_EXACT, "/health");
    cr_assert_eq(m("a.com", "/health"), 0);
    cr_assert_eq(m("a.com", "/health/"), -1);
    cr_assert_eq(m("a.com", "/healt"), -1);
    cr_assert_eq(m("a.com", "/Health"), -1);
    /* A query that slipped into the path is ignored. */
    cr_assert_eq(m("a.com", "/health?full=1"), 0);
}

Test(router, path_regex)
{
    add(NULL, PATH_REGEX, "^/users/[0-9]+$");
    add(NULL, PATH_REGEX, "\\.(png|jpg)$");
    cr_assert_eq(m("a.com", "/users/42"), 0);
    cr_assert_eq(m("a.com", "/users/42/posts"), -1);
    cr_assert_eq(m("a.com", "/users/abc"), -1);
    cr_assert_eq(m("a.com", "/img/a.png"), 1); /* unanchored start */
    cr_assert_eq(m("a.com", "/img/a.png?x=1"), 1);
    cr_assert_eq(m("a.com", "/img/a.gif"), -1);
}

Test(router, path_regex_without_scratch_and_many_groups)
{
    /* More capture groups than the scratch ovector holds: still a match. */
    add(NULL, PATH_REGEX,
        "^/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)(m)(n)(o)(p)(q)(r)(s)(t)$");
    cr_assert_eq(m("a.com", "/abcdefghijklmnopqrst"), 0);
    const struct conf_route *r = router_match(&t_conf, STR_LIT("a.com"),
                                              STR_LIT("/abcdefghijklmnopqrst"), HTTP_M_GET,
                                              STR_LIT("GET"), NULL);
    cr_assert_eq(r, &t_routes[0]);
    r = router_match(&t_conf, STR_LIT("a.com"), STR_LIT("/abc"), HTTP_M_GET, STR_LIT("GET"),
                     NULL);
    cr_assert_null(r);
}

Test(router, host_exact_case_port_dot)
{
    add("example.com", PATH_ANY, NULL);
    cr_assert_eq(m("example.com", "/"), 0);
    cr_assert_eq(m("EXAMPLE.com", "/"), 0);
    cr_assert_eq(m("example.com:8080", "/"), 0);
    cr_assert_eq(m("Example.Com:443", "/"), 0);
    cr_assert_eq(m("example.com.", "/"), 0);
    cr_assert_eq(m("example.com.:8080", "/"), 0);
    cr_assert_eq(m("www.example.com", "/"), -1);
    cr_assert_eq(m("example.co", "/"), -1);
    cr_assert_eq(m("example.com.evil", "/"), -1);
    cr_assert_eq(m("xexample.com", "/"), -1);
    cr_assert_eq(m("", "/"), -1);
    cr_assert_eq(m("example.com..", "/"), -1); /* only one trailing dot */
}

Test(router, host_wildcard)
{
    add("*.example.com", PATH_ANY, NULL);
    cr_assert_eq(m("a.example.com", "/"), 0);
    cr_assert_eq(m("a.b.example.com", "/"), 0);
    cr_assert_eq(m("A.EXAMPLE.COM:8443", "/"), 0);
    cr_assert_eq(m("a.example.com.", "/"), 0);
    cr_assert_eq(m("example.com", "/"), -1);
    cr_assert_eq(m(".example.com", "/"), -1);
    cr_assert_eq(m("aexample.com", "/"), -1);
    cr_assert_eq(m("a.example.org", "/"), -1);
    cr_assert_eq(m("a.example.com.org", "/"), -1);
}

Test(router, host_ipv6_literal)
{
    add("[::1]", PATH_ANY, NULL);
    add("fe80::2", PATH_ANY, NULL);
    add("10.0.0.1", PATH_ANY, NULL);
    cr_assert_eq(m("[::1]:8080", "/"), 0);
    cr_assert_eq(m("[::1]", "/"), 0);
    cr_assert_eq(m("[FE80::2]:80", "/"), 1);
    cr_assert_eq(m("10.0.0.1:8080", "/"), 2);
    cr_assert_eq(m("[::2]:8080", "/"), -1);
    /* The colons of an IPv6 literal are not a port separator. */
    cr_assert_eq(router_host_name(STR_LIT("[::1]:8080")).len, 5);
    cr_assert_eq(router_host_name(STR_LIT("[::1]")).len, 5);
    cr_assert_eq(router_host_name(STR_LIT("a.com:80")).len, 5);
    cr_assert_eq(router_host_name(STR_LIT("a.com.")).len, 5);
}

Test(router, host_any_and_mixed)
{
    add("api.example.com", PATH_PREFIX, "/v1/");
    add("*.example.com", PATH_PREFIX, "/static/");
    add(NULL, PATH_PREFIX, "/");
    cr_assert_eq(m("api.example.com", "/v1/x"), 0);
    cr_assert_eq(m("api.example.com", "/static/a.css"), 1);
    cr_assert_eq(m("cdn.example.com", "/static/a.css"), 1);
    cr_assert_eq(m("cdn.example.com", "/v1/x"), 2);
    cr_assert_eq(m("other.org", "/v1/x"), 2);
    cr_assert_eq(m("", "/"), 2);
}

Test(router, first_match_wins)
{
    add(NULL, PATH_PREFIX, "/api/");
    add(NULL, PATH_EXACT, "/api/special"); /* shadowed by route 0 */
    add(NULL, PATH_ANY, NULL);
    cr_assert_eq(m("a.com", "/api/special"), 0);
    cr_assert_eq(m("a.com", "/other"), 2);
}

Test(router, methods_known)
{
    struct conf_route *r = add(NULL, PATH_PREFIX, "/w");
    r->methods = (1u << HTTP_M_POST) | (1u << HTTP_M_PUT);
    struct conf_route *g = add(NULL, PATH_PREFIX, "/r");
    g->methods = 1u << HTTP_M_GET;
    add(NULL, PATH_PREFIX, "/");
    cr_assert_eq(mm(HTTP_M_POST, "POST", "/w"), 0);
    cr_assert_eq(mm(HTTP_M_PUT, "PUT", "/w"), 0);
    cr_assert_eq(mm(HTTP_M_GET, "GET", "/w"), 2);
    cr_assert_eq(mm(HTTP_M_DELETE, "DELETE", "/w"), 2);
    cr_assert_eq(mm(HTTP_M_GET, "GET", "/r"), 1);
    /* HEAD is not implied by GET. */
    cr_assert_eq(mm(HTTP_M_HEAD, "HEAD", "/r"), 2);
    /* An extension method never matches a known-method-only route. */
    cr_assert_eq(mm(HTTP_M_OTHER, "PURGE", "/w"), 2);
}

Test(router, methods_any)
{
    add(NULL, PATH_ANY, NULL);
    cr_assert_eq(mm(HTTP_M_GET, "GET", "/"), 0);
    cr_assert_eq(mm(HTTP_M_HEAD, "HEAD", "/"), 0);
    cr_assert_eq(mm(HTTP_M_OTHER, "PROPFIND", "/"), 0);
}

Test(router, methods_extension)
{
    static char *names[] = {"PURGE", "PROPFIND"};
    struct conf_route *r = add(NULL, PATH_ANY, NULL);
    r->method_names = names;
    r->n_method_names = 2;
    r->methods = 1u << HTTP_M_DELETE;
    cr_assert_eq(mm(HTTP_M_OTHER, "PURGE", "/"), 0);
    cr_assert_eq(mm(HTTP_M_OTHER, "PROPFIND", "/"), 0);
    cr_assert_eq(mm(HTTP_M_DELETE, "DELETE", "/"), 0);
    cr_assert_eq(mm(HTTP_M_OTHER, "purge", "/"), -1); /* methods are case-sensitive */
    cr_assert_eq(mm(HTTP_M_OTHER, "PURGEX", "/"), -1);
    cr_assert_eq(mm(HTTP_M_OTHER, "PURG", "/"), -1);
    cr_assert_eq(mm(HTTP_M_GET, "GET", "/"), -1);
    /* Names only (no bits): known methods are refused. */
    r->methods = 0;
    cr_assert_eq(mm(HTTP_M_DELETE, "DELETE", "/"), -1);
    cr_assert_eq(mm(HTTP_M_OTHER, "PURGE", "/"), 0);
}

Test(router, all_conditions_must_hold)
{
    struct conf_route *r = add("a.com", PATH_EXACT, "/x");
    r->methods = 1u << HTTP_M_GET;
    cr_assert_eq(m("a.com", "/x"), 0);
    cr_assert_eq(m("b.com", "/x"), -1);
    cr_assert_eq(m("a.com", "/y"), -1);
    cr_assert_eq(mm(HTTP_M_POST, "POST", "/x"), -1);
}
