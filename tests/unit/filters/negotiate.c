/* Unit tests for filters/negotiate.c: Accept-Encoding negotiation (q-values,
 * ties, "*", identity, aliases, malformed and random input) and the media
 * type allowlists. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "filters/negotiate.h"

static const uint8_t PREF_ALL[] = {ZALG_ZSTD, ZALG_BR, ZALG_GZIP};
static const uint8_t PREF_GZ_BR[] = {ZALG_GZIP, ZALG_BR};
static const uint8_t PREF_BR_GZ[] = {ZALG_BR, ZALG_GZIP};

/* The header bytes are copied to a buffer of exactly their length (no NUL),
 * so a read past the view is an overread under ASan. */
static enum zalg neg_pref(const char *ae, const uint8_t *pref, size_t n)
{
    size_t len = strlen(ae);
    char *p = malloc(len ? len : 1);
    memcpy(p, ae, len);
    enum zalg r = ae_negotiate(str_make(p, len), pref, n);
    free(p);
    return r;
}

#define NEG(ae, pref) neg_pref((ae), (pref), ARRAY_SIZE(pref))

Test(negotiate, absent_and_empty)
{
    cr_assert_eq(ae_negotiate(STR_NULL, PREF_ALL, 3), ZALG_IDENTITY);
    cr_assert_eq(NEG("", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("   ", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(neg_pref("gzip", PREF_ALL, 0), ZALG_IDENTITY, "no coding configured");
}

Test(negotiate, single_codings)
{
    cr_assert_eq(NEG("gzip", PREF_ALL), ZALG_GZIP);
    cr_assert_eq(NEG("br", PREF_ALL), ZALG_BR);
    cr_assert_eq(NEG("zstd", PREF_ALL), ZALG_ZSTD);
    cr_assert_eq(NEG("deflate", PREF_ALL), ZALG_IDENTITY, "we do not produce deflate");
    cr_assert_eq(NEG("zstd", PREF_GZ_BR), ZALG_IDENTITY, "not configured on the route");
    cr_assert_eq(NEG("compress, deflate, gzip", PREF_ALL), ZALG_GZIP);
}

Test(negotiate, ties_go_to_server_preference)
{
    cr_assert_eq(NEG("gzip, deflate, br, zstd", PREF_ALL), ZALG_ZSTD);
    cr_assert_eq(NEG("gzip, br", PREF_GZ_BR), ZALG_GZIP);
    cr_assert_eq(NEG("gzip, br", PREF_BR_GZ), ZALG_BR);
    cr_assert_eq(NEG("br;q=0.8, gzip;q=0.8", PREF_GZ_BR), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q=0.8, br;q=0.800", PREF_BR_GZ), ZALG_BR);
}

Test(negotiate, q_values)
{
    cr_assert_eq(NEG("gzip;q=0.5, br;q=0.8", PREF_GZ_BR), ZALG_BR);
    cr_assert_eq(NEG("gzip;q=0.9, br;q=0.8", PREF_BR_GZ), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q=1, br;q=0.999", PREF_BR_GZ), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q=0.001, br;q=0", PREF_BR_GZ), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q=1.0, br;q=1.00", PREF_BR_GZ), ZALG_BR);
    cr_assert_eq(NEG("gzip;q=1.000", PREF_ALL), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q=0.", PREF_ALL), ZALG_IDENTITY, "\"0.\" is q=0");
    cr_assert_eq(NEG("gzip;q=1.", PREF_ALL), ZALG_GZIP);
    cr_assert_eq(NEG("zstd;q=0.01, gzip;q=0.02", PREF_ALL), ZALG_GZIP);
    /* missing q means 1 */
    cr_assert_eq(NEG("zstd;q=0.9, gzip", PREF_ALL), ZALG_GZIP);
}

Test(negotiate, q_zero_excludes)
{
    cr_assert_eq(NEG("gzip;q=0", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("gzip;q=0.000", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("br;q=0, gzip", PREF_BR_GZ), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q=0, br;q=0", PREF_BR_GZ), ZALG_IDENTITY);
}

Test(negotiate, star)
{
    cr_assert_eq(NEG("*", PREF_ALL), ZALG_ZSTD, "* takes the first preference");
    cr_assert_eq(NEG("*", PREF_GZ_BR), ZALG_GZIP);
    cr_assert_eq(NEG("*;q=0", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("*;q=0.5, gzip;q=0.9", PREF_BR_GZ), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q=0.4, *;q=0.5", PREF_GZ_BR), ZALG_BR,
                 "* covers br at 0.5, above gzip's own 0.4");
    cr_assert_eq(NEG("gzip;q=0, *", PREF_GZ_BR), ZALG_BR, "gzip's own entry wins over *");
    cr_assert_eq(NEG("*, br;q=0", PREF_BR_GZ), ZALG_GZIP);
    cr_assert_eq(NEG("*;q=0, gzip", PREF_BR_GZ), ZALG_GZIP);
}

Test(negotiate, identity)
{
    /* identity;q=0 with nothing else: the body goes out unencoded anyway */
    cr_assert_eq(NEG("identity;q=0", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("identity;q=0, *;q=0", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("identity;q=0, gzip", PREF_ALL), ZALG_GZIP);
    cr_assert_eq(NEG("identity", PREF_ALL), ZALG_IDENTITY);
    /* identity weighed above every coding the client accepts */
    cr_assert_eq(NEG("gzip;q=0.5, identity", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("gzip;q=0.5, *", PREF_GZ_BR), ZALG_BR, "* gives br 1");
    cr_assert_eq(NEG("gzip;q=0.5, *;q=0.7", (const uint8_t[]){ZALG_GZIP}), ZALG_IDENTITY,
                 "identity is covered by * at 0.7");
    /* a tie with identity goes to the coding; unweighed identity does not compete */
    cr_assert_eq(NEG("gzip, identity", PREF_ALL), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q=0.1", PREF_ALL), ZALG_GZIP);
    /* an identity entry in the preference list is not a coding to pick */
    cr_assert_eq(NEG("gzip;q=0.5", ((const uint8_t[]){ZALG_IDENTITY, ZALG_GZIP})), ZALG_GZIP);
}

Test(negotiate, x_gzip_and_case)
{
    cr_assert_eq(NEG("x-gzip", PREF_ALL), ZALG_GZIP);
    cr_assert_eq(NEG("X-GZIP;Q=0.5, br;q=0.4", PREF_BR_GZ), ZALG_GZIP);
    cr_assert_eq(NEG("GZIP", PREF_ALL), ZALG_GZIP);
    cr_assert_eq(NEG("Br", PREF_ALL), ZALG_BR);
    cr_assert_eq(NEG("ZSTD;Q=1", PREF_ALL), ZALG_ZSTD);
    cr_assert_eq(NEG("IDENTITY;q=1, gzip;q=0.2", PREF_ALL), ZALG_IDENTITY);
    /* listed twice: the higher weight counts */
    cr_assert_eq(NEG("gzip;q=0, x-gzip", PREF_ALL), ZALG_GZIP);
    cr_assert_eq(NEG("x-gzip;q=0.9, gzip;q=0.1, br;q=0.5", PREF_BR_GZ), ZALG_GZIP);
}

Test(negotiate, whitespace)
{
    cr_assert_eq(NEG("  gzip  ;  q=0.5  ,br ; q=1", PREF_GZ_BR), ZALG_BR);
    cr_assert_eq(NEG("\tgzip\t;\tq=0.9\t,\tbr;q=0.1", PREF_BR_GZ), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q = 0.3, br;q=0.2", PREF_BR_GZ), ZALG_GZIP);
    cr_assert_eq(NEG(",,, ,gzip,,,", PREF_ALL), ZALG_GZIP);
    /* joined from two header lines by the caller */
    cr_assert_eq(NEG("br;q=0.1, zstd;q=0, gzip;q=0.2", PREF_ALL), ZALG_GZIP);
}

Test(negotiate, malformed)
{
    /* invalid q-values void their element only */
    const char *bad_q[] = {"q=2",    "q=1.001", "q=0.5555", "q=abc", "q=",     "q=-1",
                           "q=.5",   "q=01",    "q=1.5",    "q=0,5", "q=0.5x", "q=0x1",
                           "q=1e0",  "q=+1",    "q=0 .5",   "q=1.0000"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_q); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "gzip;%s", bad_q[i]);
        cr_assert_eq(NEG(buf, PREF_ALL), ZALG_IDENTITY, "%s", buf);
        snprintf(buf, sizeof(buf), "gzip;%s, br;q=0.1", bad_q[i]);
        cr_assert_eq(NEG(buf, PREF_GZ_BR), ZALG_BR, "%s", buf);
    }
    cr_assert_eq(NEG("gzipx", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("gz ip", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("xgzip", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG(";;;", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG(";q=1", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("=,;=", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("**", PREF_ALL), ZALG_IDENTITY);
    cr_assert_eq(NEG("gzip\"", PREF_ALL), ZALG_IDENTITY);
    /* other parameters are not in the grammar, but do not void the coding */
    cr_assert_eq(NEG("gzip;level=9", PREF_ALL), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;foo;q=0.5, br;q=0.4", PREF_GZ_BR), ZALG_GZIP);
    cr_assert_eq(NEG("gzip;q=0.5;q=0, br;q=0.1", PREF_GZ_BR), ZALG_BR, "the last q counts");
    /* a view that stops mid-token: the rest of the buffer is not read */
    cr_assert_eq(ae_negotiate(STR_LIT("gzip, br"), PREF_BR_GZ, 2), ZALG_BR);
    cr_assert_eq(ae_negotiate(str_make("gzip, br", 7), PREF_BR_GZ, 2), ZALG_GZIP);
    cr_assert_eq(ae_negotiate(str_make("gzip;q=0.5", 8), PREF_BR_GZ, 2), ZALG_IDENTITY,
                 "q=0 once cut");
    /* NUL and high bytes are just bytes */
    cr_assert_eq(ae_negotiate(str_make("gz\0ip, br", 9), PREF_GZ_BR, 2), ZALG_BR);
    cr_assert_eq(NEG("\xff\xfe, gzip", PREF_ALL), ZALG_GZIP);
}

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

Test(negotiate, random_input_never_crashes)
{
    /* half random bytes, half drawn from the grammar's own alphabet so deep
     * paths (q parsing, aliases, star) are reached too */
    static const char *const parts[] = {"gzip", "x-gzip", "br", "zstd", "identity", "*",
                                        ",",    ";",      "q=", "0.",   "1",        "0",
                                        " ",    "\t",     "=",  "5",    "Q=",       "BR"};
    uint8_t buf[128];
    size_t hits[ZALG__COUNT] = {0};
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = rnd() % sizeof(buf);
        if (iter & 1) {
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)rnd();
        } else {
            size_t i = 0;
            while (i < len) {
                const char *p = parts[rnd() % ARRAY_SIZE(parts)];
                size_t n = strlen(p);
                if (n > len - i)
                    n = len - i;
                memcpy(buf + i, p, n);
                i += n;
            }
        }
        uint8_t pref[3];
        size_t n = rnd() % 4;
        for (size_t i = 0; i < n; i++)
            pref[i] = (uint8_t)(rnd() % (ZALG__COUNT + 1)); /* also invalid values */
        /* a private copy of exactly len bytes, so ASan sees any overread */
        char *p = malloc(len ? len : 1);
        memcpy(p, buf, len);
        enum zalg r = ae_negotiate(str_make(p, len), pref, n);
        free(p);
        cr_assert_lt((unsigned)r, ZALG__COUNT);
        bool in_pref = r == ZALG_IDENTITY;
        for (size_t i = 0; i < n; i++)
            in_pref |= pref[i] == r;
        cr_assert(in_pref, "picked %d, not offered", r);
        hits[r]++;
    }
    /* the generator did reach every outcome */
    for (int a = 0; a < ZALG__COUNT; a++)
        cr_assert_gt(hits[a], 0, "alg %d never chosen", a);
}

/* ---- media types ---------------------------------------------------------- */

static bool allowed(const char *ctype, char *const *types, size_t n)
{
    return ctype_allowed(str_c(ctype), types, n);
}

Test(ctype, allowlist)
{
    char *types[] = {"text/html", "application/json", "image/*"};
    size_t n = ARRAY_SIZE(types);
    cr_assert(allowed("text/html", types, n));
    cr_assert(allowed("text/html; charset=utf-8", types, n));
    cr_assert(allowed("TEXT/HTML;charset=UTF-8", types, n));
    cr_assert(allowed("  text/html  ", types, n));
    cr_assert(allowed("text/html ; q=1", types, n));
    cr_assert(allowed("Application/JSON", types, n));
    cr_assert(allowed("image/png", types, n), "a family entry");
    cr_assert(allowed("IMAGE/svg+xml", types, n));
    cr_assert_not(allowed("text/htmlx", types, n));
    cr_assert_not(allowed("text/htm", types, n));
    cr_assert_not(allowed("text/plain", types, n));
    cr_assert_not(allowed("imagex/png", types, n));
    cr_assert_not(allowed("image/", types, n), "no subtype");
    cr_assert_not(allowed("image", types, n));
    cr_assert_not(allowed("application/json+x", types, n));
    cr_assert_not(allowed("", types, n));
    cr_assert_not(allowed(";text/html", types, n));
    cr_assert_not(ctype_allowed(STR_NULL, types, n));
    cr_assert_not(allowed("text/html", types, 0));
    /* a view is bounded by its length */
    cr_assert_not(ctype_allowed(str_make("text/html", 8), types, n));

    char *all[] = {"*/*"};
    cr_assert(allowed("video/mp4", all, 1));
    cr_assert_not(allowed("video", all, 1));
}

Test(ctype, default_list)
{
    const char *yes[] = {"text/html",
                         "text/plain; charset=us-ascii",
                         "text/css",
                         "text/javascript",
                         "TEXT/CSV",
                         "application/json",
                         "application/json; charset=utf-8",
                         "Application/JavaScript",
                         "application/xml",
                         "application/wasm",
                         "image/svg+xml",
                         "application/ld+json",
                         "application/problem+json",
                         "application/atom+xml",
                         "application/rss+xml",
                         "application/vnd.api+json ; ext=x",
                         "application/a+XML"};
    const char *no[] = {"image/png",
                        "image/jpeg",
                        "image/svg",
                        "application/octet-stream",
                        "application/zip",
                        "application/gzip",
                        "video/mp4",
                        "font/woff2",
                        "application/jsonx",
                        "application/json-seq",
                        "application/+json",
                        "application/x+jsonp",
                        "application/xml-dtd",
                        "text",
                        "text/",
                        "/html",
                        "",
                        "json",
                        "multipart/form-data; boundary=\"a+json\""};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
        cr_assert(ctype_compressible_default(str_c(yes[i])), "%s", yes[i]);
    for (size_t i = 0; i < ARRAY_SIZE(no); i++)
        cr_assert_not(ctype_compressible_default(str_c(no[i])), "%s", no[i]);
    cr_assert_not(ctype_compressible_default(STR_NULL));
}
