/* Unit tests for src/http/cache_policy.c: HTTP-dates, Cache-Control, the
 * storability verdicts, lifetime and age, conditional requests, byte ranges,
 * weak ETags, Vary value normalisation, and random input to the parsers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/cache_policy.h"

/* 2026-11-26 00:00:00 GMT, the "now" the two-digit-year tests are relative to. */
#define NOW_2026 INT64_C(1795651200)
/* The RFC 9110 5.6.7 example instant, Sun, 06 Nov 1994 08:49:37 GMT. */
#define T_1994 INT64_C(784111777)

static int64_t date_of(const char *s)
{
    int64_t t = -12345;
    cr_assert_eq(http_date_parse_at(str_c(s), NOW_2026, &t), 0, "should parse: [%s]", s);
    return t;
}

static void date_bad(const char *s)
{
    int64_t t = -12345;
    cr_assert_eq(http_date_parse_at(str_c(s), NOW_2026, &t), -1, "should fail: [%s]", s);
    cr_assert_eq(t, -12345, "out touched on failure: [%s]", s);
}

static void add_h(struct http_header *h, unsigned *n, const char *name, const char *value)
{
    cr_assert_lt(*n, HTTP_MAX_HEADERS);
    h[*n].name = str_c(name);
    h[*n].value = str_c(value);
    (*n)++;
}

static struct http_request rq_;
static struct http_response rs_;

static struct http_request *req(enum http_method m)
{
    memset(&rq_, 0, sizeof(rq_));
    rq_.method_id = m;
    return &rq_;
}

static struct http_response *resp(int status)
{
    memset(&rs_, 0, sizeof(rs_));
    rs_.status = status;
    return &rs_;
}

#define RQH(name, value) add_h(rq_.headers, &rq_.n_headers, name, value)
#define RSH(name, value) add_h(rs_.headers, &rs_.n_headers, name, value)

static struct cache_control cc_of(const char *s)
{
    struct cache_control cc;
    cc_init(&cc);
    cc_parse(str_c(s), &cc);
    return cc;
}

/* ---- dates -------------------------------------------------------------- */

Test(cache_policy, date_three_formats)
{
    cr_assert_eq(date_of("Sun, 06 Nov 1994 08:49:37 GMT"), T_1994);
    cr_assert_eq(date_of("Sunday, 06-Nov-94 08:49:37 GMT"), T_1994);
    cr_assert_eq(date_of("Sun Nov  6 08:49:37 1994"), T_1994);
    cr_assert_eq(date_of("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    cr_assert_eq(date_of("Wed, 31 Dec 1969 23:59:59 GMT"), -1);
    cr_assert_eq(date_of("Sat Jan 16 08:49:37 2021"), INT64_C(1610786977));
    /* the public wrapper: the same, with the real clock for two-digit years */
    int64_t t = 0, t2 = 1;
    cr_assert_eq(http_date_parse(STR_LIT("Sun, 06 Nov 1994 08:49:37 GMT"), &t), 0);
    cr_assert_eq(t, T_1994);
    cr_assert_eq(http_date_parse(STR_LIT("Sunday, 06-Nov-94 08:49:37 GMT"), &t), 0);
    cr_assert_eq(http_date_parse_at(STR_LIT("Sunday, 06-Nov-94 08:49:37 GMT"), (int64_t)time(NULL), &t2), 0);
    cr_assert_eq(t, t2);
}

Test(cache_policy, date_tolerance)
{
    /* RFC 9111 4.2: a cache matches names case-insensitively; OWS around */
    cr_assert_eq(date_of("sUN, 06 nov 1994 08:49:37 gmt"), T_1994);
    cr_assert_eq(date_of("  Sun, 06 Nov 1994 08:49:37 GMT\t"), T_1994);
    cr_assert_eq(date_of("SUNDAY, 06-NOV-94 08:49:37 GMT"), T_1994);
    /* leap second reads as the second before */
    cr_assert_eq(date_of("Wed, 31 Dec 2008 23:59:60 GMT"), date_of("Wed, 31 Dec 2008 23:59:59 GMT"));
    /* leap days */
    cr_assert_eq(date_of("Thu, 29 Feb 2024 00:00:00 GMT") + 86400, date_of("Fri, 01 Mar 2024 00:00:00 GMT"));
    cr_assert_eq(date_of("Tue, 29 Feb 2000 12:00:00 GMT"), INT64_C(951825600));
    /* the weekday is not checked against the date */
    cr_assert_eq(date_of("Mon, 06 Nov 1994 08:49:37 GMT"), T_1994);
    /* asctime with a two-digit day */
    cr_assert_eq(date_of("Wed Nov 16 08:49:37 1994"), T_1994 + 10 * 86400);
}

Test(cache_policy, date_rfc850_two_digit_year)
{
    /* relative to 2026: within 50 years ahead stays in this century */
    cr_assert_eq(date_of("Thursday, 01-Jan-70 00:00:00 GMT"), date_of("Wed, 01 Jan 2070 00:00:00 GMT"));
    cr_assert_eq(date_of("Monday, 01-Jan-30 00:00:00 GMT"), date_of("Tue, 01 Jan 2030 00:00:00 GMT"));
    cr_assert_eq(date_of("Monday, 01-Jan-76 00:00:00 GMT"), date_of("Wed, 01 Jan 2076 00:00:00 GMT"));
    cr_assert_eq(date_of("Monday, 01-Jan-77 00:00:00 GMT"), date_of("Sat, 01 Jan 1977 00:00:00 GMT"));
    cr_assert_eq(date_of("Monday, 01-Jan-00 00:00:00 GMT"), date_of("Sat, 01 Jan 2000 00:00:00 GMT"));
    /* relative to another "now": 2090 reads "30" as 2130, "41" as 2041 */
    int64_t now2090 = date_of("Sun, 01 Jan 2090 00:00:00 GMT"), t;
    cr_assert_eq(http_date_parse_at(STR_LIT("Monday, 01-Jan-30 00:00:00 GMT"), now2090, &t), 0);
    cr_assert_eq(t, date_of("Mon, 01 Jan 2130 00:00:00 GMT"));
    cr_assert_eq(http_date_parse_at(STR_LIT("Monday, 01-Jan-41 00:00:00 GMT"), now2090, &t), 0);
    cr_assert_eq(t, date_of("Tue, 01 Jan 2041 00:00:00 GMT"));
}

Test(cache_policy, date_invalid)
{
    int64_t t = 7;
    cr_assert_eq(http_date_parse(STR_NULL, &t), -1);
    cr_assert_eq(t, 7);
    date_bad("");
    date_bad("0");
    date_bad("-1");
    date_bad("Sun, 06 Nov 1994 08:49:37 UTC");   /* only GMT (RFC 9111 4.2) */
    date_bad("Sun, 06 Nov 1994 08:49:37 +0000");
    date_bad("Sun, 06 Nov 1994 08:49:37");       /* no zone */
    date_bad("Sun, 06 Nov 1994 08:49:37 GMT x"); /* trailing junk */
    date_bad("Sun, 06 Nov 1994 08:49:37 GMTX");
    date_bad("Sun, 6 Nov 1994 08:49:37 GMT");    /* one-digit day */
    date_bad("Sun, 06 Nov 94 08:49:37 GMT");     /* two-digit year in IMF-fixdate */
    date_bad("Sun 06 Nov 1994 08:49:37 GMT");    /* missing comma */
    date_bad("Sun,06 Nov 1994 08:49:37 GMT");
    date_bad("Sun,  06 Nov 1994 08:49:37 GMT");
    date_bad("Sun, 06 Nox 1994 08:49:37 GMT");   /* month */
    date_bad("Sux, 06 Nov 1994 08:49:37 GMT");   /* weekday */
    date_bad("Sun, 06 Nov 1994 24:00:00 GMT");   /* hour */
    date_bad("Sun, 06 Nov 1994 08:60:00 GMT");   /* minute */
    date_bad("Sun, 06 Nov 1994 08:49:61 GMT");   /* second */
    date_bad("Sun, 06 Nov 1994 8:49:37 GMT");
    date_bad("Sun, 00 Nov 1994 08:49:37 GMT");   /* day 0 */
    date_bad("Sun, 31 Nov 1994 08:49:37 GMT");   /* day beyond the month */
    date_bad("Wed, 29 Feb 2023 00:00:00 GMT");   /* not a leap year */
    date_bad("Thu, 29 Feb 1900 00:00:00 GMT");   /* century, not a leap year */
    date_bad("Sunday, 06-Nov-1994 08:49:37 GMT"); /* four-digit year in rfc850 */
    date_bad("Sunday, 06 Nov 1994 08:49:37 GMT"); /* long name with IMF form */
    date_bad("Sun, 06-Nov-94 08:49:37 GMT");      /* short name with rfc850 form */
    date_bad("Sun Nov 6 08:49:37 1994");          /* asctime one-digit day needs two spaces */
    date_bad("Sun Nov  06 08:49:37 1994");
    date_bad("Sun Nov  6 08:49:37 94");
    date_bad("Sun Nov  6 08:49:37 1994 GMT");
    date_bad("Sunday Nov  6 08:49:37 1994");     /* asctime has the short name */
    date_bad("Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    /* a prefix never parses: the parser stops at the view's length */
    const char *full = "Sun, 06 Nov 1994 08:49:37 GMT";
    for (size_t k = 0; k < strlen(full); k++)
        cr_assert_eq(http_date_parse_at(str_make(full, k), NOW_2026, &t), -1, "prefix %zu", k);
}

Test(cache_policy, date_format_known_values)
{
    char b[30];
    cr_assert_eq(http_date_format(0, b), 29);
    cr_assert_str_eq(b, "Thu, 01 Jan 1970 00:00:00 GMT");
    cr_assert_eq(http_date_format(T_1994, b), 29);
    cr_assert_str_eq(b, "Sun, 06 Nov 1994 08:49:37 GMT");
    http_date_format(-1, b);
    cr_assert_str_eq(b, "Wed, 31 Dec 1969 23:59:59 GMT");
    http_date_format(INT64_C(951825600), b);
    cr_assert_str_eq(b, "Tue, 29 Feb 2000 12:00:00 GMT");
    /* clamped to four-digit years */
    cr_assert_eq(http_date_format(INT64_MAX, b), 29);
    cr_assert_str_eq(b, "Fri, 31 Dec 9999 23:59:59 GMT");
    cr_assert_eq(http_date_format(INT64_MIN, b), 29);
    cr_assert_str_eq(b, "Sat, 01 Jan 0000 00:00:00 GMT");
}

Test(cache_policy, date_format_round_trip_and_gmtime)
{
    uint64_t x = 0x9E3779B97F4A7C15u;
    const int64_t span = INT64_C(253402300800) + INT64_C(62167219200); /* year 0 .. 9999 */
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t t = (int64_t)(x % (uint64_t)span) - INT64_C(62167219200);
        if (i < 1000)
            t = (int64_t)(x % INT64_C(4102444800)); /* 1970-2100, where gmtime is sure to work */
        char b[30], g[64];
        cr_assert_eq(http_date_format(t, b), 29);
        cr_assert_eq(strlen(b), 29);
        int64_t back = 0;
        cr_assert_eq(http_date_parse_at(str_c(b), NOW_2026, &back), 0, "%s", b);
        cr_assert_eq(back, t, "%s", b);
        time_t tt = (time_t)t;
        struct tm tm;
        if (t >= 0 && gmtime_r(&tt, &tm) != NULL) {
            strftime(g, sizeof(g), "%a, %d %b %Y %H:%M:%S GMT", &tm);
            cr_assert_str_eq(b, g);
        }
    }
}

/* ---- Cache-Control ------------------------------------------------------ */

Test(cache_policy, cc_init_absent)
{
    struct cache_control cc;
    memset(&cc, 0x5a, sizeof(cc));
    cc_init(&cc);
    cr_assert(!cc.no_store && !cc.no_cache && !cc.private_ && !cc.public_ && !cc.must_revalidate &&
              !cc.proxy_revalidate && !cc.no_transform && !cc.only_if_cached && !cc.immutable);
    cr_assert(cc.max_age == -1 && cc.s_maxage == -1 && cc.stale_while_revalidate == -1 &&
              cc.stale_if_error == -1 && cc.max_stale == -1 && cc.min_fresh == -1);
}

Test(cache_policy, cc_every_directive)
{
    struct cache_control cc = cc_of("no-store, no-cache, private, public, must-revalidate, "
                                    "proxy-revalidate, no-transform, only-if-cached, immutable, "
                                    "max-age=1, s-maxage=2, stale-while-revalidate=3, "
                                    "stale-if-error=4, max-stale=5, min-fresh=6");
    cr_assert(cc.no_store && cc.no_cache && cc.private_ && cc.public_ && cc.must_revalidate &&
              cc.proxy_revalidate && cc.no_transform && cc.only_if_cached && cc.immutable);
    cr_assert_eq(cc.max_age, 1);
    cr_assert_eq(cc.s_maxage, 2);
    cr_assert_eq(cc.stale_while_revalidate, 3);
    cr_assert_eq(cc.stale_if_error, 4);
    cr_assert_eq(cc.max_stale, 5);
    cr_assert_eq(cc.min_fresh, 6);

    /* each flag alone sets only itself */
    cc = cc_of("public");
    cr_assert(cc.public_ && !cc.private_ && !cc.no_cache && !cc.no_store);
    cc = cc_of("immutable");
    cr_assert(cc.immutable && !cc.public_ && cc.max_age == -1);
}

Test(cache_policy, cc_case_whitespace_and_quotes)
{
    struct cache_control cc = cc_of("MAX-AGE=10,NO-STORE ,\tPublic");
    cr_assert_eq(cc.max_age, 10);
    cr_assert(cc.no_store && cc.public_);
    cc = cc_of("max-age=\"60\", s-maxage=\"7\"");
    cr_assert_eq(cc.max_age, 60);
    cr_assert_eq(cc.s_maxage, 7);
    cc = cc_of("max-age=\"6\\0\""); /* quoted-pair inside the argument */
    cr_assert_eq(cc.max_age, 60);
    cc = cc_of("max-age = 5"); /* BWS around '=' tolerated */
    cr_assert_eq(cc.max_age, 5);
    /* a field-name list counts as the plain directive; its commas do not split */
    cc = cc_of("no-cache=\"Set-Cookie, max-age=5\", private=\"X-A,X-B\", s-maxage=9");
    cr_assert(cc.no_cache && cc.private_);
    cr_assert_eq(cc.max_age, -1);
    cr_assert_eq(cc.s_maxage, 9);
    cc = cc_of("no-cache=Set-Cookie");
    cr_assert(cc.no_cache);
}

Test(cache_policy, cc_malformed)
{
    /* malformed max-age is 0 (stale), others are absent */
    cr_assert_eq(cc_of("max-age=abc").max_age, 0);
    cr_assert_eq(cc_of("max-age").max_age, 0);
    cr_assert_eq(cc_of("max-age=").max_age, 0);
    cr_assert_eq(cc_of("max-age=-5").max_age, 0);
    cr_assert_eq(cc_of("max-age=+5").max_age, 0);
    cr_assert_eq(cc_of("max-age=5x").max_age, 0);
    cr_assert_eq(cc_of("max-age=5 6").max_age, 0);
    cr_assert_eq(cc_of("max-age=5.0").max_age, 0);
    cr_assert_eq(cc_of("max-age=\"5").max_age, 0); /* unterminated quote */
    cr_assert_eq(cc_of("max-age=\"\"").max_age, 0);
    cr_assert_eq(cc_of("max-age junk").max_age, 0);
    cr_assert_eq(cc_of("s-maxage=abc").s_maxage, -1);
    cr_assert_eq(cc_of("s-maxage").s_maxage, -1);
    cr_assert_eq(cc_of("stale-while-revalidate").stale_while_revalidate, -1);
    cr_assert_eq(cc_of("stale-if-error=1e3").stale_if_error, -1);
    cr_assert_eq(cc_of("min-fresh=").min_fresh, -1);
    cr_assert_eq(cc_of("max-stale=x").max_stale, -1);
    cr_assert_eq(cc_of("max-stale").max_stale, INT64_MAX);
    cr_assert_eq(cc_of("max-stale=\"12\"").max_stale, 12);
    /* overflow is capped at 2^31 (RFC 9111 1.2.2) */
    cr_assert_eq(cc_of("max-age=99999999999999999999999999").max_age, CC_DELTA_MAX);
    cr_assert_eq(cc_of("max-age=2147483648").max_age, CC_DELTA_MAX);
    cr_assert_eq(cc_of("max-age=2147483647").max_age, 2147483647);
    cr_assert_eq(cc_of("max-age=0007").max_age, 7);
    /* garbage around valid directives does not hide them */
    struct cache_control cc = cc_of(",,, ;;; =5, \"q\", public ,, =, no-store;x, max-age=3");
    cr_assert(cc.public_);
    cr_assert_eq(cc.max_age, 3);
    cr_assert(cc.no_store); /* "no-store;x": junk after a flag still sets the flag */
    cc = cc_of("unknown=1, x-foo=\"a,b\", max-agex=5, max-age2=6");
    cr_assert_eq(cc.max_age, -1);
    cr_assert(!cc.public_ && !cc.no_store);
    cc = cc_of("");
    cr_assert_eq(cc.max_age, -1);
    cc_parse(STR_NULL, &cc);
    cr_assert_eq(cc.max_age, -1);
}

Test(cache_policy, cc_duplicates_first_value_wins)
{
    cr_assert_eq(cc_of("max-age=10, max-age=5").max_age, 10);
    cr_assert_eq(cc_of("max-age=5, max-age=10").max_age, 5);
    cr_assert_eq(cc_of("max-age=x, max-age=7").max_age, 0);  /* invalid first = stale */
    cr_assert_eq(cc_of("s-maxage=x, s-maxage=7").s_maxage, 7); /* absent first does not hide */
    cr_assert_eq(cc_of("max-stale, max-stale=5").max_stale, INT64_MAX);
    cr_assert_eq(cc_of("min-fresh=3, min-fresh=1").min_fresh, 3);
    /* and across field lines */
    struct http_header h[4];
    unsigned n = 0;
    add_h(h, &n, "Cache-Control", "public, max-age=100");
    add_h(h, &n, "Content-Type", "text/plain");
    add_h(h, &n, "cache-control", "max-age=1, no-transform");
    add_h(h, &n, "CACHE-CONTROL", "s-maxage=50");
    struct cache_control cc;
    cc_from_headers(h, n, false, &cc);
    cr_assert(cc.public_ && cc.no_transform);
    cr_assert_eq(cc.max_age, 100);
    cr_assert_eq(cc.s_maxage, 50);
}

Test(cache_policy, cc_pragma)
{
    struct http_header h[3];
    unsigned n = 0;
    struct cache_control cc;
    add_h(h, &n, "Pragma", "no-cache");
    cc_from_headers(h, n, true, &cc);
    cr_assert(cc.no_cache);
    cc_from_headers(h, n, false, &cc); /* responses: Pragma means nothing */
    cr_assert(!cc.no_cache);
    n = 0;
    add_h(h, &n, "Pragma", "x-foo, No-Cache");
    cc_from_headers(h, n, true, &cc);
    cr_assert(cc.no_cache);
    n = 0;
    add_h(h, &n, "Pragma", "x-no-cache");
    cc_from_headers(h, n, true, &cc);
    cr_assert(!cc.no_cache);
    /* any Cache-Control field overrides Pragma */
    n = 0;
    add_h(h, &n, "Pragma", "no-cache");
    add_h(h, &n, "Cache-Control", "max-age=5");
    cc_from_headers(h, n, true, &cc);
    cr_assert(!cc.no_cache);
    cr_assert_eq(cc.max_age, 5);
    cc_from_headers(h, 0, true, &cc);
    cr_assert(!cc.no_cache);
    cr_assert_eq(cc.max_age, -1);
}

/* ---- storability -------------------------------------------------------- */

static enum cache_verdict storable(bool allow_cookie, int64_t ttl)
{
    struct cache_control qc, sc;
    cc_from_headers(rq_.headers, rq_.n_headers, true, &qc);
    cc_from_headers(rs_.headers, rs_.n_headers, false, &sc);
    return cache_storable(&rq_, &qc, &rs_, &sc, allow_cookie, ttl);
}

Test(cache_policy, storable_method)
{
    enum http_method ms[] = {HTTP_M_HEAD, HTTP_M_POST, HTTP_M_PUT, HTTP_M_DELETE,
                             HTTP_M_OPTIONS, HTTP_M_PATCH, HTTP_M_OTHER};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        req(ms[i]);
        resp(200);
        RSH("Cache-Control", "max-age=60");
        cr_assert_eq(storable(false, -1), CACHE_NO_METHOD, "method %d", ms[i]);
    }
    req(HTTP_M_GET);
    cr_assert_eq(storable(false, -1), CACHE_OK);
}

Test(cache_policy, storable_status)
{
    static const int understood[] = {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501};
    for (size_t i = 0; i < sizeof(understood) / sizeof(understood[0]); i++) {
        req(HTTP_M_GET);
        resp(understood[i]);
        cr_assert_eq(storable(false, 0), CACHE_OK, "status %d with a default ttl", understood[i]);
        cr_assert_eq(storable(false, -1), CACHE_NO_LIFETIME, "status %d without", understood[i]);
    }
    /* other statuses need explicit freshness or a configured TTL for them
     * (`valid: {403: 10m}`, like nginx's proxy_cache_valid) */
    static const int other[] = {201, 202, 302, 303, 307, 400, 403, 500, 502, 503};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        req(HTTP_M_GET);
        resp(other[i]);
        cr_assert_eq(storable(false, -1), CACHE_NO_STATUS, "status %d", other[i]);
        cr_assert_eq(storable(false, 3600), CACHE_OK, "status %d with a ttl", other[i]);
        RSH("Cache-Control", "max-age=10");
        cr_assert_eq(storable(false, -1), CACHE_OK, "status %d + max-age", other[i]);
        resp(other[i]);
        RSH("Cache-Control", "s-maxage=10");
        cr_assert_eq(storable(false, -1), CACHE_OK, "status %d + s-maxage", other[i]);
        resp(other[i]);
        RSH("Expires", "Sun, 06 Nov 1994 08:49:37 GMT");
        cr_assert_eq(storable(false, -1), CACHE_OK, "status %d + Expires", other[i]);
    }
    /* never: interim, 304, nonsense; 206 has its own verdict */
    static const int never[] = {100, 101, 103, 304, 0, 99, 600, 999, -1};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        req(HTTP_M_GET);
        resp(never[i]);
        RSH("Cache-Control", "public, max-age=60");
        cr_assert_eq(storable(false, 60), CACHE_NO_STATUS, "status %d", never[i]);
    }
    req(HTTP_M_GET);
    resp(206);
    RSH("Cache-Control", "max-age=60, no-store"); /* partial is reported first */
    cr_assert_eq(storable(false, 60), CACHE_PARTIAL);
}

Test(cache_policy, storable_no_store_private)
{
    req(HTTP_M_GET);
    resp(200);
    RSH("Cache-Control", "max-age=60, no-store");
    cr_assert_eq(storable(false, 60), CACHE_NO_STORE);

    req(HTTP_M_GET);
    RQH("Cache-Control", "no-store");
    resp(200);
    RSH("Cache-Control", "max-age=60");
    cr_assert_eq(storable(false, 60), CACHE_NO_STORE);

    req(HTTP_M_GET);
    resp(200);
    RSH("Cache-Control", "max-age=60");
    RSH("Cache-Control", "private");
    cr_assert_eq(storable(false, 60), CACHE_PRIVATE);
    resp(200);
    RSH("Cache-Control", "private=\"X-User\", max-age=60");
    cr_assert_eq(storable(false, 60), CACHE_PRIVATE);
    /* no-store beats private */
    resp(200);
    RSH("Cache-Control", "private, no-store");
    cr_assert_eq(storable(false, 60), CACHE_NO_STORE);
    /* a request's private means nothing */
    req(HTTP_M_GET);
    RQH("Cache-Control", "private");
    resp(200);
    RSH("Cache-Control", "max-age=60");
    cr_assert_eq(storable(false, -1), CACHE_OK);
}

Test(cache_policy, storable_authorization)
{
    const char *allow[] = {"public", "s-maxage=60", "must-revalidate, max-age=60", "public, max-age=5"};
    const char *deny[] = {"max-age=60", "proxy-revalidate, max-age=60", "no-cache, max-age=60"};
    for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++) {
        req(HTTP_M_GET);
        RQH("Authorization", "Bearer x");
        resp(200);
        RSH("Cache-Control", allow[i]);
        cr_assert_eq(storable(false, 60), CACHE_OK, "%s", allow[i]);
    }
    for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++) {
        req(HTTP_M_GET);
        RQH("authorization", "");
        resp(200);
        RSH("Cache-Control", deny[i]);
        cr_assert_eq(storable(false, 60), CACHE_AUTHORIZATION, "%s", deny[i]);
    }
    /* Authorization on the response is not the rule */
    req(HTTP_M_GET);
    resp(200);
    RSH("Authorization", "x");
    RSH("Cache-Control", "max-age=60");
    cr_assert_eq(storable(false, -1), CACHE_OK);
}

Test(cache_policy, storable_set_cookie_and_vary)
{
    req(HTTP_M_GET);
    resp(200);
    RSH("Cache-Control", "max-age=60");
    RSH("Set-Cookie", "a=b");
    cr_assert_eq(storable(false, -1), CACHE_SET_COOKIE);
    cr_assert_eq(storable(true, -1), CACHE_OK);

    const char *stars[] = {"*", "Accept-Encoding, *", " * ", "*,Accept"};
    for (size_t i = 0; i < sizeof(stars) / sizeof(stars[0]); i++) {
        resp(200);
        RSH("Cache-Control", "max-age=60");
        RSH("Vary", stars[i]);
        cr_assert_eq(storable(false, -1), CACHE_VARY_STAR, "[%s]", stars[i]);
    }
    resp(200);
    RSH("Cache-Control", "max-age=60");
    RSH("Vary", "Accept-Encoding");
    cr_assert_eq(storable(false, -1), CACHE_OK);
    RSH("vary", "*"); /* on a second field line */
    cr_assert_eq(storable(false, -1), CACHE_VARY_STAR);
    resp(200);
    RSH("Cache-Control", "max-age=60");
    RSH("Vary", "X-*");
    cr_assert_eq(storable(false, -1), CACHE_OK);
}

Test(cache_policy, storable_lifetime_sources)
{
    req(HTTP_M_GET);
    resp(200);
    cr_assert_eq(storable(false, -1), CACHE_NO_LIFETIME);
    cr_assert_eq(storable(false, 0), CACHE_OK);
    /* a validator alone is not enough; with no-cache it is (revalidated on use) */
    RSH("ETag", "\"v1\"");
    cr_assert_eq(storable(false, -1), CACHE_NO_LIFETIME);
    RSH("Cache-Control", "no-cache");
    cr_assert_eq(storable(false, -1), CACHE_OK);
    resp(200);
    RSH("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT");
    RSH("Cache-Control", "no-cache");
    cr_assert_eq(storable(false, -1), CACHE_OK);
    resp(200);
    RSH("Cache-Control", "no-cache"); /* no validator */
    cr_assert_eq(storable(false, -1), CACHE_NO_LIFETIME);
    resp(200);
    RSH("Cache-Control", "max-age=0");
    cr_assert_eq(storable(false, -1), CACHE_OK);
    resp(200);
    RSH("Expires", "0"); /* explicit, already expired: stored, and stale at once */
    cr_assert_eq(storable(false, -1), CACHE_OK);
    resp(200);
    RSH("Cache-Control", "public"); /* public alone gives no lifetime here */
    cr_assert_eq(storable(false, -1), CACHE_NO_LIFETIME);
}

Test(cache_policy, storable_null_cc_and_names)
{
    req(HTTP_M_GET);
    resp(200);
    cr_assert_eq(cache_storable(&rq_, NULL, &rs_, NULL, false, 10), CACHE_OK);
    cr_assert_eq(cache_storable(&rq_, NULL, &rs_, NULL, false, -1), CACHE_NO_LIFETIME);
    const char *seen[16] = {0};
    for (int v = CACHE_OK; v <= CACHE_PARTIAL; v++) {
        const char *name = cache_verdict_name((enum cache_verdict)v);
        cr_assert(name && *name && strcmp(name, "?") != 0);
        for (int j = 0; j < v; j++)
            cr_assert_str_neq(seen[j], name);
        seen[v] = name;
    }
    cr_assert_str_eq(cache_verdict_name(CACHE_OK), "ok");
    cr_assert_str_eq(cache_verdict_name(CACHE_NO_STORE), "no-store");
    cr_assert_str_eq(cache_verdict_name((enum cache_verdict)77), "?");
}

/* ---- lifetime and age --------------------------------------------------- */

static int64_t lifetime(int64_t rt, int64_t ttl)
{
    struct cache_control cc;
    cc_from_headers(rs_.headers, rs_.n_headers, false, &cc);
    return cache_lifetime(&rs_, &cc, rt, ttl);
}

Test(cache_policy, lifetime_precedence)
{
    resp(200);
    RSH("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
    RSH("Expires", "Sun, 06 Nov 1994 09:49:37 GMT");
    RSH("Cache-Control", "max-age=60, s-maxage=30");
    cr_assert_eq(lifetime(T_1994, 5), 30);
    resp(200);
    RSH("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
    RSH("Expires", "Sun, 06 Nov 1994 09:49:37 GMT");
    RSH("Cache-Control", "max-age=60");
    cr_assert_eq(lifetime(T_1994, 5), 60);
    resp(200);
    RSH("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
    RSH("Expires", "Sun, 06 Nov 1994 09:49:37 GMT");
    cr_assert_eq(lifetime(T_1994 + 500, 5), 3600); /* Expires - Date, not - now */
    resp(200);
    cr_assert_eq(lifetime(T_1994, 5), 5);
    cr_assert_eq(lifetime(T_1994, 0), 0);
    cr_assert_eq(lifetime(T_1994, -1), 0);
    resp(200);
    RSH("Cache-Control", "max-age=0");
    cr_assert_eq(lifetime(T_1994, 100), 0); /* explicit 0 is not "absent" */
    resp(200);
    RSH("Cache-Control", "s-maxage=0, max-age=100");
    cr_assert_eq(lifetime(T_1994, 100), 0);
}

Test(cache_policy, lifetime_expires_cases)
{
    resp(200); /* no Date: the response time stands in */
    RSH("Expires", "Sun, 06 Nov 1994 08:59:37 GMT");
    cr_assert_eq(lifetime(T_1994, -1), 600);
    resp(200); /* invalid Date: same */
    RSH("Date", "yesterday");
    RSH("Expires", "Sun, 06 Nov 1994 08:59:37 GMT");
    cr_assert_eq(lifetime(T_1994 + 100, -1), 500);
    resp(200); /* invalid Expires: expired, whatever the default */
    RSH("Expires", "0");
    cr_assert_eq(lifetime(T_1994, 3600), 0);
    resp(200); /* Expires before Date */
    RSH("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
    RSH("Expires", "Sun, 06 Nov 1994 08:00:00 GMT");
    cr_assert_eq(lifetime(T_1994, 3600), 0);
    resp(200); /* the first Expires counts */
    RSH("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
    RSH("Expires", "Sun, 06 Nov 1994 08:50:37 GMT");
    RSH("Expires", "Sun, 06 Nov 1994 10:00:00 GMT");
    cr_assert_eq(lifetime(T_1994, -1), 60);
    resp(200); /* other date forms */
    RSH("Date", "sun, 06 nov 1994 08:49:37 gmt");
    RSH("Expires", "Sun Nov  6 08:50:07 1994");
    cr_assert_eq(lifetime(0, -1), 30);
}

Test(cache_policy, initial_age)
{
    resp(200); /* nothing: the round trip */
    cr_assert_eq(cache_initial_age(&rs_, 1000, 1003), 3);
    resp(200); /* Age + response delay */
    RSH("Age", "100");
    cr_assert_eq(cache_initial_age(&rs_, 1000, 1002), 102);
    resp(200); /* apparent age (Date) wins when larger */
    RSH("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
    RSH("Age", "10");
    cr_assert_eq(cache_initial_age(&rs_, T_1994 + 49, T_1994 + 50), 50);
    cr_assert_eq(cache_initial_age(&rs_, T_1994, T_1994 + 5), 15);
    resp(200); /* Date in the future (skew): apparent age 0 */
    RSH("Date", "Sun, 06 Nov 1994 08:59:37 GMT");
    cr_assert_eq(cache_initial_age(&rs_, T_1994, T_1994 + 1), 1);
    resp(200); /* invalid Age is ignored; a list uses its first member */
    RSH("Age", "abc");
    cr_assert_eq(cache_initial_age(&rs_, 10, 12), 2);
    resp(200);
    RSH("Age", "-5");
    cr_assert_eq(cache_initial_age(&rs_, 10, 12), 2);
    resp(200);
    RSH("Age", "\"30\"");
    cr_assert_eq(cache_initial_age(&rs_, 10, 12), 2);
    resp(200);
    RSH("Age", "30, 40");
    cr_assert_eq(cache_initial_age(&rs_, 10, 12), 32);
    resp(200);
    RSH("Age", " 7 ");
    RSH("Age", "99");
    cr_assert_eq(cache_initial_age(&rs_, 10, 10), 7);
    resp(200); /* huge Age is capped */
    RSH("Age", "999999999999999999999999");
    cr_assert_eq(cache_initial_age(&rs_, 10, 10), CC_DELTA_MAX);
    resp(200); /* response before request (clock step): no delay */
    RSH("Age", "4");
    cr_assert_eq(cache_initial_age(&rs_, 20, 10), 4);
}

Test(cache_policy, current_age)
{
    cr_assert_eq(cache_current_age(5, 100, 100), 5);
    cr_assert_eq(cache_current_age(5, 100, 160), 65);
    cr_assert_eq(cache_current_age(5, 100, 90), 5); /* clock went back */
    cr_assert_eq(cache_current_age(-50, 100, 110), 0);
    cr_assert_eq(cache_current_age(0, 0, 0), 0);
}

/* ---- conditional requests ---------------------------------------------- */

static bool nm(struct str etag, struct str lm)
{
    return cache_not_modified(&rq_, etag, lm);
}

#define LM STR_LIT("Sun, 06 Nov 1994 08:49:37 GMT")

Test(cache_policy, inm_etags)
{
    req(HTTP_M_GET);
    RQH("If-None-Match", "\"a\"");
    cr_assert(nm(STR_LIT("\"a\""), STR_NULL));
    cr_assert(nm(STR_LIT("W/\"a\""), STR_NULL));   /* weak comparison */
    cr_assert(nm(STR_LIT(" \"a\" "), STR_NULL));
    cr_assert(!nm(STR_LIT("\"b\""), STR_NULL));
    cr_assert(!nm(STR_LIT("\"A\""), STR_NULL));    /* opaque tags are case-sensitive */
    cr_assert(!nm(STR_NULL, STR_NULL));
    req(HTTP_M_GET);
    RQH("If-None-Match", "W/\"a\"");
    cr_assert(nm(STR_LIT("\"a\""), STR_NULL));
    cr_assert(nm(STR_LIT("W/\"a\""), STR_NULL));
    req(HTTP_M_GET);
    RQH("If-None-Match", "w/\"a\""); /* "W/" is case-sensitive: not an entity-tag */
    cr_assert(!nm(STR_LIT("\"a\""), STR_NULL));
    /* lists, across field lines */
    req(HTTP_M_GET);
    RQH("If-None-Match", "\"x\", W/\"y\"");
    RQH("If-None-Match", " ,\"z\" , \"a\"");
    cr_assert(nm(STR_LIT("\"a\""), STR_NULL));
    cr_assert(nm(STR_LIT("\"y\""), STR_NULL));
    cr_assert(nm(STR_LIT("\"x\""), STR_NULL));
    cr_assert(!nm(STR_LIT("\"q\""), STR_NULL));
    /* a comma inside a tag is part of it */
    req(HTTP_M_GET);
    RQH("If-None-Match", "\"a,b\"");
    cr_assert(nm(STR_LIT("\"a,b\""), STR_NULL));
    cr_assert(!nm(STR_LIT("\"a\""), STR_NULL));
    cr_assert(!nm(STR_LIT("\"b\""), STR_NULL));
    /* an empty opaque tag is a tag */
    req(HTTP_M_GET);
    RQH("If-None-Match", "\"\"");
    cr_assert(nm(STR_LIT("\"\""), STR_NULL));
    cr_assert(!nm(STR_LIT("\"a\""), STR_NULL));
}

Test(cache_policy, inm_star_and_malformed)
{
    req(HTTP_M_GET);
    RQH("If-None-Match", "*");
    cr_assert(nm(STR_LIT("\"a\""), STR_NULL));
    cr_assert(nm(STR_NULL, STR_NULL)); /* a stored response exists */
    req(HTTP_M_GET);
    RQH("If-None-Match", " * ");
    cr_assert(nm(STR_LIT("\"a\""), STR_NULL));
    req(HTTP_M_GET);
    RQH("If-None-Match", "**");
    cr_assert(!nm(STR_LIT("\"a\""), STR_NULL));
    /* malformed members never match a valid stored tag ... */
    req(HTTP_M_GET);
    RQH("If-None-Match", "a, \"a, \"a\"x, W/a");
    cr_assert(!nm(STR_LIT("\"a\""), STR_NULL));
    /* ... and match a malformed stored tag only byte for byte */
    req(HTTP_M_GET);
    RQH("If-None-Match", "abc");
    cr_assert(nm(STR_LIT("abc"), STR_NULL));
    cr_assert(!nm(STR_LIT("abd"), STR_NULL));
    req(HTTP_M_GET);
    RQH("If-None-Match", "\"abc\"");
    cr_assert(!nm(STR_LIT("abc"), STR_NULL));
    req(HTTP_M_GET);
    RQH("If-None-Match", "");
    cr_assert(!nm(STR_LIT("\"a\""), LM)); /* present though empty: IMS not looked at */
}

Test(cache_policy, ims)
{
    req(HTTP_M_GET);
    RQH("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT");
    cr_assert(nm(STR_NULL, LM));                                        /* equal */
    cr_assert(nm(STR_NULL, STR_LIT("Sun, 06 Nov 1994 08:00:00 GMT")));  /* older */
    cr_assert(!nm(STR_NULL, STR_LIT("Sun, 06 Nov 1994 08:49:38 GMT"))); /* newer */
    cr_assert(nm(STR_NULL, STR_LIT("Sunday, 06-Nov-94 08:49:37 GMT"))); /* compared as dates */
    cr_assert(!nm(STR_NULL, STR_NULL));                                 /* no Last-Modified */
    cr_assert(!nm(STR_NULL, STR_LIT("garbage")));
    cr_assert(nm(STR_LIT("\"a\""), LM)); /* the ETag plays no part without If-None-Match */
    req(HTTP_M_GET);
    RQH("If-Modified-Since", "Sun Nov  6 09:00:00 1994");
    cr_assert(nm(STR_NULL, LM));
    req(HTTP_M_GET);
    RQH("If-Modified-Since", "last week");
    cr_assert(!nm(STR_NULL, LM));
    req(HTTP_M_GET); /* two members: ignored */
    RQH("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT");
    RQH("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT");
    cr_assert(!nm(STR_NULL, LM));
    req(HTTP_M_GET); /* no conditional at all */
    cr_assert(!nm(STR_LIT("\"a\""), LM));
}

Test(cache_policy, inm_beats_ims_and_methods)
{
    req(HTTP_M_GET);
    RQH("If-Modified-Since", "Sun, 06 Nov 1994 09:00:00 GMT"); /* would say 304 */
    RQH("If-None-Match", "\"other\"");                         /* says 200 */
    cr_assert(!nm(STR_LIT("\"a\""), LM));
    req(HTTP_M_GET);
    RQH("If-None-Match", "\"a\"");                             /* says 304 */
    RQH("If-Modified-Since", "Sun, 06 Nov 1994 08:00:00 GMT"); /* would say 200 */
    cr_assert(nm(STR_LIT("\"a\""), LM));

    enum http_method ms[] = {HTTP_M_POST, HTTP_M_PUT, HTTP_M_DELETE, HTTP_M_OTHER};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        req(ms[i]);
        RQH("If-None-Match", "*");
        RQH("If-Modified-Since", "Sun, 06 Nov 1994 09:00:00 GMT");
        cr_assert(!nm(STR_LIT("\"a\""), LM), "method %d", ms[i]);
    }
    req(HTTP_M_HEAD);
    RQH("If-None-Match", "\"a\"");
    cr_assert(nm(STR_LIT("\"a\""), LM));
}

/* ---- ranges ------------------------------------------------------------- */

static int rng(const char *s, uint64_t len, uint64_t *a, uint64_t *b)
{
    *a = *b = 0xdead;
    return range_single(str_c(s), len, a, b);
}

#define RANGE_OK(s, len, fa, fb)                                          \
    do {                                                                  \
        uint64_t a_, b_;                                                  \
        cr_assert_eq(rng(s, len, &a_, &b_), 1, "[%s] len %d", s, (int)(len)); \
        cr_assert_eq(a_, (uint64_t)(fa), "[%s] first", s);                \
        cr_assert_eq(b_, (uint64_t)(fb), "[%s] last", s);                 \
    } while (0)
#define RANGE_IS(s, len, want)                                            \
    do {                                                                  \
        uint64_t a_, b_;                                                  \
        cr_assert_eq(rng(s, len, &a_, &b_), want, "[%s] len %d", s, (int)(len)); \
    } while (0)

Test(cache_policy, range_forms)
{
    RANGE_OK("bytes=0-499", 1000, 0, 499);
    RANGE_OK("bytes=500-999", 1000, 500, 999);
    RANGE_OK("bytes=500-", 1000, 500, 999);
    RANGE_OK("bytes=-200", 1000, 800, 999);
    RANGE_OK("bytes=0-0", 1000, 0, 0);
    RANGE_OK("bytes=999-999", 1000, 999, 999);
    RANGE_OK("bytes=0-", 1, 0, 0);
    RANGE_OK("BYTES=1-2", 10, 1, 2);        /* the unit is case-insensitive */
    RANGE_OK(" bytes=1-2 ", 10, 1, 2);
    RANGE_OK("bytes= 1-2", 10, 1, 2);       /* list OWS */
    RANGE_OK("bytes=1-2,", 10, 1, 2);       /* empty list elements */
    RANGE_OK("bytes=, ,1-2", 10, 1, 2);
}

Test(cache_policy, range_clamping)
{
    RANGE_OK("bytes=0-5000", 1000, 0, 999);
    RANGE_OK("bytes=990-1000", 1000, 990, 999);
    RANGE_OK("bytes=-2000", 1000, 0, 999);
    RANGE_OK("bytes=-1000", 1000, 0, 999);
    RANGE_OK("bytes=-1", 1000, 999, 999);
    RANGE_OK("bytes=0-99999999999999999999999999", 1000, 0, 999);
    RANGE_OK("bytes=-99999999999999999999999999", 1000, 0, 999);
    RANGE_OK("bytes=0-18446744073709551615", UINT64_MAX, 0, UINT64_MAX - 1);
}

Test(cache_policy, range_unsatisfiable)
{
    RANGE_IS("bytes=1000-", 1000, -1);
    RANGE_IS("bytes=1000-2000", 1000, -1);
    RANGE_IS("bytes=5000-6000", 1000, -1);
    RANGE_IS("bytes=-0", 1000, -1);
    RANGE_IS("bytes=0-", 0, -1);
    RANGE_IS("bytes=0-0", 0, -1);
    RANGE_IS("bytes=99999999999999999999999-", 1000, -1);
    /* a suffix of an empty representation: the full (empty) 200 answers it */
    RANGE_IS("bytes=-5", 0, 0);
}

Test(cache_policy, range_ignored)
{
    uint64_t a, b;
    cr_assert_eq(range_single(STR_NULL, 100, &a, &b), 0);
    const char *bad[] = {
        "", "bytes", "bytes=", "bytes=,", "bytes=-", "bytes=--1", "bytes=a-b", "bytes=1-a",
        "bytes=5-1",           /* last before first */
        "bytes=0-1,5-6",       /* several ranges */
        "bytes=0-1, 0-1",
        "bytes=-1,0-",
        "items=0-1", "bytes 0-1", "bytes =0-1", "bytes:0-1", "byte=0-1", "bytesx=0-1",
        "bytes=0 -1", "bytes=0- 1", "bytes=+1-2", "bytes=1-+2", "bytes=1-2x", "bytes=1-2-3",
        "bytes=0x10-", "bytes=1.5-2", "bytes=\"0-1\"", "bytes=-1-2", "bytes=-1 2", "=0-1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        RANGE_IS(bad[i], 1000, 0);
}

/* ---- field helpers ------------------------------------------------------ */

Test(cache_policy, etag_weaken_forms)
{
    char out[64];
    cr_assert_eq(etag_weaken(STR_LIT("\"x\""), out, sizeof(out)), 5);
    cr_assert_str_eq(out, "W/\"x\"");
    cr_assert_eq(etag_weaken(STR_LIT("W/\"x\""), out, sizeof(out)), 5);
    cr_assert_str_eq(out, "W/\"x\"");
    cr_assert_eq(etag_weaken(STR_LIT(" \"a,b\"\t"), out, sizeof(out)), 7);
    cr_assert_str_eq(out, "W/\"a,b\"");
    cr_assert_eq(etag_weaken(STR_LIT("\"\""), out, sizeof(out)), 4);
    cr_assert_str_eq(out, "W/\"\"");
    /* exactly fitting (with the NUL), and one byte short */
    cr_assert_eq(etag_weaken(STR_LIT("\"x\""), out, 6), 5);
    cr_assert_eq(etag_weaken(STR_LIT("\"x\""), out, 5), 0);
    cr_assert_eq(etag_weaken(STR_LIT("W/\"x\""), out, 5), 0);
    cr_assert_eq(etag_weaken(STR_LIT("\"x\""), out, 0), 0);
    /* not entity-tags */
    const char *bad[] = {"x", "", "W/x", "w/\"x\"", "\"x", "x\"", "\"a b\"", "\"x\"y", "\"x\" \"y\"",
                         "W/", "W/\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(etag_weaken(str_c(bad[i]), out, sizeof(out)), 0, "[%s]", bad[i]);
    cr_assert_eq(etag_weaken(STR_NULL, out, sizeof(out)), 0);
}

Test(cache_policy, header_normalisation)
{
    struct http_header h[6];
    unsigned n = 0;
    add_h(h, &n, "Accept-Encoding", "gzip , Deflate");
    add_h(h, &n, "Host", "x");
    add_h(h, &n, "accept-encoding", "  BR\t");
    add_h(h, &n, "ACCEPT-ENCODING", " , ,");
    add_h(h, &n, "Accept-Encoding", "Zstd;Q=0.5, text/html; q=1");
    char out[128];
    size_t len = header_values_normalized(h, n, STR_LIT("Accept-Encoding"), out, sizeof(out));
    cr_assert_str_eq(out, "gzip,deflate,br,zstd;q=0.5,text/html; q=1");
    cr_assert_eq(len, strlen(out));
    /* absent field: empty */
    memset(out, 'x', sizeof(out));
    cr_assert_eq(header_values_normalized(h, n, STR_LIT("Accept-Language"), out, sizeof(out)), 0);
    cr_assert_str_eq(out, "");
    /* quoted-strings keep case, spaces and commas */
    n = 0;
    add_h(h, &n, "X-Q", "A=\"Hello, World\\\" X\" , B");
    len = header_values_normalized(h, n, STR_LIT("x-q"), out, sizeof(out));
    cr_assert_str_eq(out, "a=\"Hello, World\\\" X\",b");
    cr_assert_eq(len, strlen(out));
    /* truncation: snprintf-like */
    n = 0;
    add_h(h, &n, "Accept-Encoding", "GZIP, br");
    memset(out, 'x', sizeof(out));
    cr_assert_eq(header_values_normalized(h, n, STR_LIT("Accept-Encoding"), out, 5), 7);
    cr_assert_str_eq(out, "gzip");
    cr_assert_eq(header_values_normalized(h, n, STR_LIT("Accept-Encoding"), out, 8), 7);
    cr_assert_str_eq(out, "gzip,br");
    memset(out, 'x', sizeof(out));
    cr_assert_eq(header_values_normalized(h, n, STR_LIT("Accept-Encoding"), out, 0), 7);
    cr_assert_eq(out[0], 'x');
    /* same values, different spelling: same key */
    char o2[64];
    n = 0;
    add_h(h, &n, "Accept-Language", "EN-us,fr ;q=0.5");
    header_values_normalized(h, n, STR_LIT("Accept-Language"), out, sizeof(out));
    n = 0;
    add_h(h, &n, "Accept-Language", "en-US");
    add_h(h, &n, "Accept-Language", "  fr ;q=0.5 ");
    header_values_normalized(h, n, STR_LIT("Accept-Language"), o2, sizeof(o2));
    cr_assert_str_eq(out, o2);
}

/* ---- random input ------------------------------------------------------- */

static uint64_t rnd_state = 0x2545F4914F6CDD1Du;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Random bytes, or pieces of the grammar, or a valid sample with a few bytes
 * changed, so that the deeper branches of each parser get exercised too. The
 * buffer is malloc'd at the exact length so a sanitizer build sees any read
 * past the view. */
static char *rnd_input(size_t *len, const char *const *samples, size_t n_samples)
{
    static const char *const pieces[] = {
        "max-age", "s-maxage", "=", "\"", "\\", ",", " ", "\t", "-", "bytes=", "W/", "*",
        "GMT", "Sun", "Sunday", ", ", "Nov", "06", "1994", "94", ":", "no-cache", "private",
        "max-stale", "0", "9", "99999999999999999999", "\xff", "\x00", "stale-if-error"};
    char *buf = malloc(256);
    cr_assert_not_null(buf);
    size_t n = 0;
    unsigned mode = (unsigned)(rnd() % 3);
    if (mode == 0) {
        n = rnd() % 64;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)rnd();
    } else if (mode == 1) {
        unsigned k = (unsigned)(rnd() % 12);
        for (unsigned i = 0; i < k; i++) {
            const char *p = pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = p[0] ? strlen(p) : 1;
            if (n + pl > 200)
                break;
            memcpy(buf + n, p, pl);
            n += pl;
        }
    } else {
        const char *s = samples[rnd() % n_samples];
        n = strlen(s);
        memcpy(buf, s, n);
        unsigned k = (unsigned)(rnd() % 3) + 1;
        for (unsigned i = 0; i < k && n; i++)
            buf[rnd() % n] = (char)rnd();
        if (rnd() % 4 == 0)
            n = rnd() % (n + 1);
    }
    char *exact = malloc(n ? n : 1);
    cr_assert_not_null(exact);
    memcpy(exact, buf, n);
    free(buf);
    *len = n;
    return exact;
}

Test(cache_policy, random_input_no_crash)
{
    static const char *const samples[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994", "max-age=60, s-maxage=\"30\", no-cache=\"a,b\", max-stale",
        "bytes=0-499", "bytes=-5", "bytes=7-", "\"abc\", W/\"x\", *", "W/\"a,b\""};
    const size_t ns = sizeof(samples) / sizeof(samples[0]);
    for (int it = 0; it < 100000; it++) {
        size_t n;
        char *in = rnd_input(&n, samples, ns);
        struct str s = str_make(in, n);

        struct cache_control cc;
        cc_init(&cc);
        cc_parse(s, &cc);
        int64_t nums[] = {cc.max_age, cc.s_maxage, cc.stale_while_revalidate, cc.stale_if_error,
                          cc.min_fresh};
        for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
            cr_assert(nums[i] >= -1 && nums[i] <= CC_DELTA_MAX);
        cr_assert(cc.max_stale == INT64_MAX || (cc.max_stale >= -1 && cc.max_stale <= CC_DELTA_MAX));

        int64_t t;
        if (http_date_parse(s, &t) == 0) {
            /* anything accepted is a real instant: it formats and reads back */
            char b[30];
            cr_assert_eq(http_date_format(t, b), 29);
            int64_t t2;
            cr_assert_eq(http_date_parse(str_c(b), &t2), 0);
            cr_assert_eq(t2, t);
        }

        uint64_t len = rnd() % 4 == 0 ? 0 : rnd() % 2000, a, b;
        int r = range_single(s, len, &a, &b);
        cr_assert(r >= -1 && r <= 1);
        if (r == 1)
            cr_assert(a <= b && b < len);

        char out[64];
        size_t w = etag_weaken(s, out, sizeof(out));
        if (w)
            cr_assert(w == strlen(out) && memcmp(out, "W/\"", 3) == 0 && out[w - 1] == '"');

        struct http_header h[2] = {{STR_LIT("Vary"), s}, {STR_LIT("vary"), s}};
        size_t need = header_values_normalized(h, 2, STR_LIT("Vary"), out, sizeof(out));
        cr_assert_eq(out[need < sizeof(out) ? need : sizeof(out) - 1], '\0'); /* values may hold NULs */
        for (size_t i = 0; i < need && i < sizeof(out) - 1; i++)
            cr_assert(out[i] < 'A' || out[i] > 'Z' || memchr(in, '"', n) != NULL);

        req(HTTP_M_GET);
        RQH("If-None-Match", n && in[0] == 'x' ? "*" : "\"abc\"");
        rq_.headers[0].value = s;
        RQH("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT");
        (void)cache_not_modified(&rq_, s, s);
        resp(200);
        RSH("Age", "1");
        rs_.headers[0].value = s;
        RSH("Date", "x");
        rs_.headers[1].value = s;
        RSH("Expires", "x");
        rs_.headers[2].value = s;
        cr_assert_geq(cache_initial_age(&rs_, 0, 0), 0);
        cr_assert_geq(cache_lifetime(&rs_, &cc, 0, -1), 0);
        (void)storable(false, -1);
        free(in);
    }
}
