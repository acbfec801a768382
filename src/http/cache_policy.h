/* cache_policy.h - HTTP caching rules as pure functions, for a shared cache:
 * Cache-Control parsing (RFC 9111 5.2), HTTP-date parsing and formatting
 * (RFC 9110 5.6.7), storability (RFC 9111 3), freshness lifetime and age
 * (RFC 9111 4.2), conditional requests answered from a stored response
 * (RFC 9110 13.1-13.2), single byte ranges (RFC 9110 14) and the small field
 * helpers the cache key and the compressor need (weak ETags, Vary values).
 * Nothing here keeps state or allocates; the only clock read is the current
 * year http_date_parse needs for two-digit years (so the functions that parse
 * dates depend on it for RFC 850 dates only). Every function may be called
 * from any thread. */
#ifndef PORTICO_HTTP_CACHE_POLICY_H
#define PORTICO_HTTP_CACHE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "http/msg.h"

/* Delta-seconds values are capped here (RFC 9111 1.2.2: "a cache ... MUST use
 * 2147483648 (2^31) if it receives a delta-seconds greater than that"). */
#define CC_DELTA_MAX INT64_C(2147483648)

/* The directives portico acts on. Numeric ones are -1 when absent;
 * max_stale given without a value is INT64_MAX ("any staleness"). */
struct cache_control {
    bool no_store, no_cache, private_, public_, must_revalidate, proxy_revalidate,
        no_transform, only_if_cached, immutable;
    int64_t max_age, s_maxage, stale_while_revalidate, stale_if_error, max_stale, min_fresh;
};

/* Every flag false, every number -1 (absent). */
void cc_init(struct cache_control *cc);

/* Accumulates one Cache-Control field value into cc (call it for every field
 * line, after cc_init). Tolerant, never fails:
 *   - directive names are case-insensitive; unknown directives are ignored;
 *   - arguments may be tokens or quoted-strings (max-age="60" is 60); commas
 *     inside a quoted-string do not split directives;
 *   - delta-seconds are 1*DIGIT, capped at CC_DELTA_MAX; a missing or
 *     malformed one (also: junk after the argument, or after the name) makes
 *     the directive absent, except max-age, which then counts as 0 (RFC 9111
 *     4.2.1: treat as stale); max-stale without '=' is INT64_MAX;
 *   - no-cache / private with a field-name list count as plain no-cache /
 *     private (the whole response, which is the safe reading for a cache that
 *     does not strip fields);
 *   - duplicates: the first occurrence that yields a value wins (RFC 9111
 *     4.2.1 allows "the first occurrence"); a malformed max-age yields 0, so a
 *     later max-age is then ignored; a malformed s-maxage (absent) does not
 *     hide a later valid one. Flags are simply or-ed. */
void cc_parse(struct str value, struct cache_control *cc);

/* cc_init + cc_parse of every Cache-Control field among h[0..n). For a
 * request (is_request) without any Cache-Control field, "Pragma: no-cache"
 * counts as no-cache (RFC 9111 5.4). */
void cc_from_headers(const struct http_header *h, unsigned n, bool is_request,
                     struct cache_control *cc);

/* HTTP-date (IMF-fixdate, obsolete RFC 850 and asctime forms) -> epoch
 * seconds in *out. Returns 0, or -1 when s is not a valid date (out is then
 * untouched). As RFC 9111 4.2 asks of caches, names are matched
 * case-insensitively and only the zone "GMT" is accepted; OWS around the value
 * is allowed, nothing else is. Fields are range-checked (day within its month,
 * 23:59:60 reads as 23:59:59). A two-digit RFC 850 year more than 50 years in
 * the future is taken from the previous century (RFC 9110 5.6.7), relative to
 * the current clock; http_date_parse_at takes that clock as a parameter. */
int http_date_parse(struct str s, int64_t *out);
int http_date_parse_at(struct str s, int64_t now, int64_t *out);

/* Writes t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and a NUL into
 * out (at least 30 bytes); returns the length (29). t is clamped to years
 * 0000-9999 so the length never changes. */
size_t http_date_format(int64_t t, char *out);

/* Why a response may not be stored by a shared cache; CACHE_OK when it may. */
enum cache_verdict {
    CACHE_OK = 0,
    CACHE_NO_METHOD,     /* request method is not GET */
    CACHE_NO_STATUS,     /* status not final, or not understood without explicit freshness or a default TTL */
    CACHE_NO_STORE,      /* no-store in the request or the response */
    CACHE_PRIVATE,       /* response private */
    CACHE_AUTHORIZATION, /* request had Authorization, response did not allow sharing */
    CACHE_SET_COOKIE,    /* response sets a cookie and the route does not allow storing it */
    CACHE_VARY_STAR,     /* Vary: * (never matches a later request) */
    CACHE_NO_LIFETIME,   /* nothing would ever let the stored response be used */
    CACHE_PARTIAL        /* 206: portico stores only complete responses */
};

/* Short stable name ("ok", "no-store", ...) for logs and metrics; "?" for an
 * unknown value. */
const char *cache_verdict_name(enum cache_verdict v);

/* RFC 9111 3 and 3.5 for a shared cache. The rules, in the order they are
 * checked (the first that fails gives the verdict):
 *   1. method GET only (HEAD responses have no body to store);
 *   2. status: 206 -> CACHE_PARTIAL; 1xx, 304 (it freshens a stored response,
 *      it is not one) and anything outside 200-599 -> CACHE_NO_STATUS; the
 *      statuses portico understands (200 203 204 300 301 308 404 405 410 414
 *      501) pass; any other passes only with explicit freshness (s-maxage,
 *      max-age or an Expires field) or a configured TTL (default_ttl_s >= 0);
 *   3. no-store in the request or the response;
 *   4. private in the response;
 *   5. Authorization in the request, unless the response has public,
 *      s-maxage or must-revalidate;
 *   6. Set-Cookie in the response, unless allow_set_cookie;
 *   7. Vary with a "*" member;
 *   8. a way to be used: explicit freshness, or default_ttl_s >= 0 (the
 *      configured default for this status), or a validator (ETag or
 *      Last-Modified) together with no-cache (revalidated on every use);
 *      otherwise CACHE_NO_LIFETIME.
 * req_cc / resp_cc are the parsed Cache-Control of rq / rs (cc_from_headers);
 * NULL counts as "no directives". */
enum cache_verdict cache_storable(const struct http_request *rq, const struct cache_control *req_cc,
                                  const struct http_response *rs,
                                  const struct cache_control *resp_cc, bool allow_set_cookie,
                                  int64_t default_ttl_s);

/* Freshness lifetime in seconds (RFC 9111 4.2.1, shared cache): s-maxage,
 * else max-age, else Expires - Date (the first Expires field; an invalid one
 * means already expired, i.e. 0; Date absent or invalid: response_time; a
 * negative difference is 0), else default_ttl_s when >= 0, else 0. */
int64_t cache_lifetime(const struct http_response *rs, const struct cache_control *cc,
                       int64_t response_time, int64_t default_ttl_s);

/* corrected_initial_age (RFC 9111 4.2.3) of rs, received at response_time for
 * a request sent at request_time:
 *   max(max(0, response_time - Date), Age + (response_time - request_time)).
 * Age is the first member of the first Age field, capped at CC_DELTA_MAX, and
 * ignored (0) when invalid (RFC 9111 5.1); a missing or invalid Date gives an
 * apparent age of 0; a response_time before request_time counts as no delay. */
int64_t cache_initial_age(const struct http_response *rs, int64_t request_time,
                          int64_t response_time);

/* current_age = initial_age + (now - response_time); a clock that went
 * backwards adds nothing, and the result is never negative. */
int64_t cache_current_age(int64_t initial_age, int64_t response_time, int64_t now);

/* True when the conditional GET/HEAD rq would be answered 304 from a stored
 * response whose ETag and Last-Modified are etag / last_modified (STR_NULL
 * when absent). RFC 9110 13.1.2 / 13.1.3 / 13.2.2:
 *   - only GET and HEAD (for other methods these fields mean 412, which is
 *     the origin's business);
 *   - If-None-Match (all its field lines form one list) decides when present:
 *     "*" matches, else any member matching etag by weak comparison (W/ is
 *     ignored on both sides); members are entity-tags (commas inside the
 *     quotes are part of the tag); a member that is not a valid entity-tag
 *     matches only a stored etag that is byte-identical to it;
 *   - otherwise If-Modified-Since (exactly one field line, a valid date)
 *     against last_modified (a valid date): 304 when last_modified <= IMS. */
bool cache_not_modified(const struct http_request *rq, struct str etag, struct str last_modified);

/* The single byte range the Range field value `range` asks of a
 * representation of len bytes (RFC 9110 14.1.2 / 14.2):
 *   1: satisfiable, [*first, *last] (inclusive) set: "a-b" (b clamped to
 *      len - 1), "a-" (to the end), "-n" (the last n bytes, all of them when
 *      n >= len);
 *  -1: unsatisfiable, answer 416: a >= len, or "-0";
 *   0: ignore the field and send the full 200: absent (empty), unit not
 *      "bytes" (case-insensitive), more than one range, malformed (b < a,
 *      signs, inner spaces, empty set), or a suffix range of an empty
 *      representation (the whole of it is the full response).
 * Empty list elements ("bytes=0-1,") are allowed, as for any list. */
int range_single(struct str range, uint64_t len, uint64_t *first, uint64_t *last);

/* The weak form of an entity-tag (OWS around it is dropped): W/"x" stays,
 * "x" becomes W/"x". Written with a NUL into out (cap bytes). Returns its
 * length, or 0 when etag is not a valid entity-tag or the result and its NUL
 * do not fit. */
size_t etag_weaken(struct str etag, char *out, size_t cap);

/* The values of every field named `name` in h[0..n), joined by ",", written
 * into out with a NUL, normalised for a cache key (Vary secondary keys):
 * lowercase, OWS around commas and at both ends removed, empty list members
 * dropped. Quoted-strings are copied as they are (case and inner spaces kept;
 * their commas do not separate). Returns the length of the whole normalised
 * value, like snprintf: when it is >= cap, out holds a truncated prefix (cap
 * 0: nothing written). Note: lowercasing assumes case-insensitive values
 * (Accept-Encoding, Accept-Language...); fields such as Cookie lose case. */
size_t header_values_normalized(const struct http_header *h, unsigned n, struct str name,
                                char *out, size_t cap);

#endif
