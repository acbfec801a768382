/* fuzz_cache_headers.c - libFuzzer harness for the header values the cache
 * and compression filters parse from clients and origins: Cache-Control,
 * HTTP-dates, Range, If-None-Match / If-Modified-Since against stored
 * validators, and Accept-Encoding negotiation. The input is split on NUL
 * bytes into fields; results are checked for consistency (a range lies
 * inside the representation, a parsed date formats and parses back, the
 * chosen coding is one offered). Each field is an exact-size heap copy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/negotiate.h"
#include "http/cache_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c))                                                                      \
            __builtin_trap();                                                          \
    } while (0)

static struct str field(const uint8_t **p, const uint8_t *end, char **owned)
{
    const uint8_t *s = *p;
    const uint8_t *z = memchr(s, 0, (size_t)(end - s));
    size_t n = z ? (size_t)(z - s) : (size_t)(end - s);
    *p = z ? z + 1 : end;
    *owned = malloc(n ? n : 1);
    memcpy(*owned, s, n);
    return str_make(*owned, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *o[6];
    struct str cc = field(&p, end, &o[0]);
    struct str date = field(&p, end, &o[1]);
    struct str range = field(&p, end, &o[2]);
    struct str inm = field(&p, end, &o[3]);
    struct str etag = field(&p, end, &o[4]);
    struct str ae = field(&p, end, &o[5]);

    struct cache_control c;
    cc_init(&c);
    cc_parse(cc, &c);
    CHECK(c.max_age >= -1 && c.s_maxage >= -1);

    int64_t t;
    if (http_date_parse(date, &t) == 0 && t >= 0 && t < 253402300800LL) {
        char buf[32];
        size_t n = http_date_format(t, buf);
        int64_t back;
        CHECK(http_date_parse(str_make(buf, n), &back) == 0 && back == t);
    }

    uint64_t len = size * 37u, first, last;
    int r = range_single(range, len, &first, &last);
    CHECK(r >= -1 && r <= 1);
    if (r == 1)
        CHECK(first <= last && last < len);

    struct http_request rq;
    memset(&rq, 0, sizeof(rq));
    rq.method_id = HTTP_M_GET;
    rq.headers[0] = (struct http_header){STR_LIT("If-None-Match"), inm};
    rq.headers[1] = (struct http_header){STR_LIT("If-Modified-Since"), date};
    rq.n_headers = 2;
    (void)cache_not_modified(&rq, etag, date);
    char weak[256];
    size_t wl = etag_weaken(etag, weak, sizeof(weak));
    CHECK(wl < sizeof(weak));

    static const uint8_t pref[] = {ZALG_ZSTD, ZALG_BR, ZALG_GZIP};
    enum zalg z = ae_negotiate(ae, pref, 3);
    CHECK(z == ZALG_IDENTITY || z == ZALG_GZIP || z == ZALG_BR || z == ZALG_ZSTD);
    (void)ctype_compressible_default(ae);

    for (int i = 0; i < 6; i++)
        free(o[i]);
    return 0;
}
