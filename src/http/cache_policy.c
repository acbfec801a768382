/* cache_policy.c - HTTP caching rules as pure functions: Cache-Control,
 * HTTP-dates, storability, freshness and age, conditional requests, single
 * byte ranges, weak ETags and Vary value normalisation (contracts in
 * cache_policy.h).
 *
 * Everything here reads field values that came from the network, so every
 * parser is bounded by the view's length, never reads past it, never needs a
 * NUL, and treats anything it does not understand as "absent" or "invalid"
 * in the direction the RFC names as safe (an invalid Expires is expired, an
 * invalid max-age is 0, an unparsable Range is ignored). */
#include "http/cache_policy.h"

#include <stdio.h>
#include <time.h>

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(char ch)
{
    unsigned char c = (unsigned char)ch;
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

/* RFC 9110 8.8.3 etagc: %x21 / %x23-7E / obs-text. */
static bool is_etagc(char ch)
{
    unsigned char c = (unsigned char)ch;
    return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

static struct str first_field(const struct http_header *h, unsigned n, const char *name)
{
    int i = http_header_find(h, n, str_c(name), 0);
    return i < 0 ? STR_NULL : str_trim_ows(h[i].value);
}

static bool has_field(const struct http_header *h, unsigned n, const char *name)
{
    return http_header_find(h, n, str_c(name), 0) >= 0;
}

/* Cuts the next list member off *rest (up to a comma outside a
 * quoted-string), OWS-trimmed; the comma is consumed. Members may be empty.
 * Returns false when *rest is exhausted. */
static bool next_member(struct str *rest, struct str *member)
{
    if (rest->p == NULL || rest->len == 0)
        return false;
    const char *p = rest->p;
    size_t n = rest->len, i = 0;
    bool quoted = false;
    for (; i < n; i++) {
        char c = p[i];
        if (quoted) {
            if (c == '\\' && i + 1 < n)
                i++; /* quoted-pair: the next byte cannot end the string */
            else if (c == '"')
                quoted = false;
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            break;
        }
    }
    *member = str_trim_ows(str_make(p, i));
    if (i < n)
        i++;
    *rest = str_make(p + i, n - i);
    return true;
}

/* ---- Cache-Control ---------------------------------------------------- */

void cc_init(struct cache_control *cc)
{
    *cc = (struct cache_control){
        .max_age = -1,
        .s_maxage = -1,
        .stale_while_revalidate = -1,
        .stale_if_error = -1,
        .max_stale = -1,
        .min_fresh = -1,
    };
}

/* delta-seconds from a directive argument (a token, or a quoted-string
 * including its quotes): 1*DIGIT capped at CC_DELTA_MAX, or -1. */
static int64_t delta_seconds(struct str arg)
{
    const char *p = arg.p;
    size_t n = arg.len, i = 0;
    bool quoted = n >= 2 && p[0] == '"';
    if (quoted) {
        i = 1;
        n--; /* the closing quote, checked by the caller */
    }
    int64_t v = 0;
    size_t digits = 0;
    for (; i < n; i++) {
        char c = p[i];
        if (quoted && c == '\\' && i + 1 < n)
            c = p[++i];
        if (!is_digit(c))
            return -1;
        digits++;
        if (v < CC_DELTA_MAX)
            v = v * 10 + (c - '0');
    }
    if (digits == 0)
        return -1;
    return v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
}

/* One directive: name [ OWS "=" OWS ( token / quoted-string ) ]. has_arg is
 * false for a bare name; arg_ok false when something follows the name that is
 * not a well-formed argument. */
static void cc_directive(struct str el, struct cache_control *cc)
{
    size_t k = 0;
    while (k < el.len && is_tchar(el.p[k]))
        k++;
    if (k == 0)
        return;
    struct str name = str_make(el.p, k);
    struct str rest = str_trim_ows(str_make(el.p + k, el.len - k));
    bool has_arg = rest.len > 0, arg_ok = false;
    struct str arg = STR_NULL;
    if (has_arg && rest.p[0] == '=') {
        struct str a = str_trim_ows(str_make(rest.p + 1, rest.len - 1));
        size_t j = 0;
        if (a.len && a.p[0] == '"') {
            for (j = 1; j < a.len; j++) {
                if (a.p[j] == '\\' && j + 1 < a.len)
                    j++;
                else if (a.p[j] == '"')
                    break;
            }
            if (j < a.len)
                j++; /* closing quote; when missing, j == a.len and the check below fails */
            else
                j = a.len + 1;
        } else {
            while (j < a.len && is_tchar(a.p[j]))
                j++;
            if (j == 0)
                j = a.len + 1; /* "=" followed by nothing usable */
        }
        if (j == a.len) {
            arg = a;
            arg_ok = true;
        }
    }
    int64_t v = arg_ok ? delta_seconds(arg) : -1;

#define FLAG(lit, field)               \
    if (str_eq_lit_ci(name, lit)) {    \
        cc->field = true;              \
        return;                        \
    }
    FLAG("no-store", no_store)
    FLAG("no-cache", no_cache)
    FLAG("private", private_)
    FLAG("public", public_)
    FLAG("must-revalidate", must_revalidate)
    FLAG("proxy-revalidate", proxy_revalidate)
    FLAG("no-transform", no_transform)
    FLAG("only-if-cached", only_if_cached)
    FLAG("immutable", immutable)
#undef FLAG

    /* The first occurrence that yields a value wins (see the header). */
    if (str_eq_lit_ci(name, "max-age")) {
        if (cc->max_age < 0)
            cc->max_age = v < 0 ? 0 : v; /* invalid max-age: stale (RFC 9111 4.2.1) */
        return;
    }
    if (str_eq_lit_ci(name, "max-stale")) {
        if (cc->max_stale < 0)
            cc->max_stale = !has_arg ? INT64_MAX : v;
        return;
    }
    int64_t *slot = NULL;
    if (str_eq_lit_ci(name, "s-maxage"))
        slot = &cc->s_maxage;
    else if (str_eq_lit_ci(name, "stale-while-revalidate"))
        slot = &cc->stale_while_revalidate;
    else if (str_eq_lit_ci(name, "stale-if-error"))
        slot = &cc->stale_if_error;
    else if (str_eq_lit_ci(name, "min-fresh"))
        slot = &cc->min_fresh;
    if (slot && *slot < 0)
        *slot = v;
}

void cc_parse(struct str value, struct cache_control *cc)
{
    struct str rest = value, el;
    while (next_member(&rest, &el)) {
        if (el.len)
            cc_directive(el, cc);
    }
}

void cc_from_headers(const struct http_header *h, unsigned n, bool is_request,
                     struct cache_control *cc)
{
    cc_init(cc);
    bool seen = false;
    for (int i = http_header_find(h, n, STR_LIT("Cache-Control"), 0); i >= 0;
         i = http_header_find(h, n, STR_LIT("Cache-Control"), i + 1)) {
        seen = true;
        cc_parse(h[i].value, cc);
    }
    if (seen || !is_request)
        return;
    /* RFC 9111 5.4: a request's Pragma: no-cache means Cache-Control:
     * no-cache when no Cache-Control field is present. */
    for (int i = http_header_find(h, n, STR_LIT("Pragma"), 0); i >= 0;
         i = http_header_find(h, n, STR_LIT("Pragma"), i + 1)) {
        struct str rest = h[i].value, m;
        while (next_member(&rest, &m)) {
            if (str_eq_lit_ci(m, "no-cache"))
                cc->no_cache = true;
        }
    }
}

/* ---- HTTP-date -------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), valid for any year this file produces. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const wdays_long[7] = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};

/* A cursor over the date text: every reader checks the remaining length. */
struct dcur {
    const char *p;
    size_t n, i;
};

static bool d_char(struct dcur *c, char ch)
{
    if (c->i < c->n && c->p[c->i] == ch) {
        c->i++;
        return true;
    }
    return false;
}

/* Exactly k digits. */
static bool d_num(struct dcur *c, size_t k, int *out)
{
    if (c->n - c->i < k)
        return false;
    int v = 0;
    for (size_t j = 0; j < k; j++) {
        char ch = c->p[c->i + j];
        if (!is_digit(ch))
            return false;
        v = v * 10 + (ch - '0');
    }
    c->i += k;
    *out = v;
    return true;
}

static bool d_word(struct dcur *c, const char *w)
{
    size_t k = strlen(w);
    if (c->n - c->i < k || strncasecmp(c->p + c->i, w, k) != 0)
        return false;
    c->i += k;
    return true;
}

static bool d_month(struct dcur *c, int *m)
{
    for (int j = 0; j < 12; j++) {
        if (d_word(c, months[j])) {
            *m = j + 1;
            return true;
        }
    }
    return false;
}

/* day-name (Mon) or day-name-l (Monday); *is_long tells which. */
static bool d_wday(struct dcur *c, bool *is_long)
{
    for (int j = 0; j < 7; j++) {
        if (d_word(c, wdays_long[j])) {
            *is_long = true;
            return true;
        }
        char s[4] = {wdays_long[j][0], wdays_long[j][1], wdays_long[j][2], 0};
        if (d_word(c, s)) {
            *is_long = false;
            return true;
        }
    }
    return false;
}

/* time-of-day = hour ":" minute ":" second */
static bool d_time(struct dcur *c, int *hh, int *mm, int *ss)
{
    return d_num(c, 2, hh) && d_char(c, ':') && d_num(c, 2, mm) && d_char(c, ':') &&
           d_num(c, 2, ss);
}

int http_date_parse_at(struct str s, int64_t now, int64_t *out)
{
    s = str_trim_ows(s);
    if (s.p == NULL)
        return -1;
    struct dcur c = {s.p, s.len, 0};
    bool long_day;
    int day, mon, hh, mm, ss, y;
    int64_t year;
    if (!d_wday(&c, &long_day))
        return -1;
    if (d_char(&c, ',')) {
        /* IMF-fixdate: day-name "," SP DD SP Mon SP YYYY SP time SP GMT
         * rfc850-date: day-name-l "," SP DD-Mon-YY SP time SP GMT */
        if (!d_char(&c, ' ') || !d_num(&c, 2, &day))
            return -1;
        if (!long_day) {
            if (!d_char(&c, ' ') || !d_month(&c, &mon) || !d_char(&c, ' ') ||
                !d_num(&c, 4, &y))
                return -1;
            year = y;
        } else {
            if (!d_char(&c, '-') || !d_month(&c, &mon) || !d_char(&c, '-') ||
                !d_num(&c, 2, &y))
                return -1;
            /* RFC 9110 5.6.7: a two-digit year more than 50 years in the
             * future is the most recent past year with those digits; by
             * symmetry, one more than 50 years back is the next century. */
            int64_t cy;
            int cm, cd;
            civil_from_days(now >= 0 ? now / 86400 : (now - 86399) / 86400, &cy, &cm, &cd);
            year = cy - (cy % 100 + 100) % 100 + y;
            if (year > cy + 50)
                year -= 100;
            else if (year <= cy - 50)
                year += 100;
        }
        if (!d_char(&c, ' ') || !d_time(&c, &hh, &mm, &ss) || !d_char(&c, ' ') ||
            !d_word(&c, "GMT"))
            return -1;
    } else {
        /* asctime-date: day-name SP Mon SP ( 2DIGIT / ( SP DIGIT ) ) SP time SP YYYY */
        if (long_day || !d_char(&c, ' ') || !d_month(&c, &mon) || !d_char(&c, ' '))
            return -1;
        if (d_char(&c, ' ')) {
            if (!d_num(&c, 1, &day))
                return -1;
        } else if (!d_num(&c, 2, &day)) {
            return -1;
        }
        if (!d_char(&c, ' ') || !d_time(&c, &hh, &mm, &ss) || !d_char(&c, ' ') ||
            !d_num(&c, 4, &y))
            return -1;
        year = y;
    }
    if (c.i != c.n)
        return -1;
    if (day < 1 || day > days_in_month(year, mon) || hh > 23 || mm > 59 || ss > 60)
        return -1;
    if (ss == 60)
        ss = 59; /* a leap second: RFC 9111 4.2 asks for the nearest time not later */
    *out = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

int http_date_parse(struct str s, int64_t *out)
{
    return http_date_parse_at(s, (int64_t)time(NULL), out);
}

size_t http_date_format(int64_t t, char *out)
{
    static const char wd[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    const int64_t lo = days_from_civil(0, 1, 1) * 86400;
    const int64_t hi = days_from_civil(10000, 1, 1) * 86400 - 1;
    if (t < lo)
        t = lo;
    if (t > hi)
        t = hi;
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    int w = (int)(((days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    int len = snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[w], d, months[m - 1],
                       (int)y, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
    return len < 0 ? 0 : (size_t)len;
}

/* ---- storability -------------------------------------------------------- */

const char *cache_verdict_name(enum cache_verdict v)
{
    switch (v) {
    case CACHE_OK: return "ok";
    case CACHE_NO_METHOD: return "method";
    case CACHE_NO_STATUS: return "status";
    case CACHE_NO_STORE: return "no-store";
    case CACHE_PRIVATE: return "private";
    case CACHE_AUTHORIZATION: return "authorization";
    case CACHE_SET_COOKIE: return "set-cookie";
    case CACHE_VARY_STAR: return "vary-star";
    case CACHE_NO_LIFETIME: return "no-lifetime";
    case CACHE_PARTIAL: return "partial";
    }
    return "?";
}

/* The final statuses portico stores without explicit freshness: those RFC
 * 9110 15.1 calls heuristically cacheable, less 206 (ranges are cut from a
 * full stored response, never stored themselves). */
static bool status_understood(int s)
{
    switch (s) {
    case 200: case 203: case 204: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return true;
    default:
        return false;
    }
}

static bool explicit_freshness(const struct http_response *rs, const struct cache_control *cc)
{
    return cc->s_maxage >= 0 || cc->max_age >= 0 || has_field(rs->headers, rs->n_headers, "Expires");
}

static bool vary_star(const struct http_response *rs)
{
    for (int i = http_header_find(rs->headers, rs->n_headers, STR_LIT("Vary"), 0); i >= 0;
         i = http_header_find(rs->headers, rs->n_headers, STR_LIT("Vary"), i + 1)) {
        struct str rest = rs->headers[i].value, m;
        while (next_member(&rest, &m)) {
            if (m.len == 1 && m.p[0] == '*')
                return true;
        }
    }
    return false;
}

enum cache_verdict cache_storable(const struct http_request *rq, const struct cache_control *req_cc,
                                  const struct http_response *rs,
                                  const struct cache_control *resp_cc, bool allow_set_cookie,
                                  int64_t default_ttl_s)
{
    struct cache_control none;
    cc_init(&none);
    if (req_cc == NULL)
        req_cc = &none;
    if (resp_cc == NULL)
        resp_cc = &none;

    if (rq->method_id != HTTP_M_GET)
        return CACHE_NO_METHOD;
    if (rs->status == 206)
        return CACHE_PARTIAL;
    bool fresh = explicit_freshness(rs, resp_cc);
    /* 304 only freshens a stored response (RFC 9111 4.3.4). */
    if (rs->status < 200 || rs->status > 599 || rs->status == 304 ||
        (!status_understood(rs->status) && !fresh && default_ttl_s < 0))
        return CACHE_NO_STATUS;
    if (req_cc->no_store || resp_cc->no_store)
        return CACHE_NO_STORE;
    if (resp_cc->private_)
        return CACHE_PRIVATE;
    /* RFC 9111 3.5: a shared cache may reuse an authenticated response only
     * when the origin said so. */
    if (has_field(rq->headers, rq->n_headers, "Authorization") && !resp_cc->public_ &&
        resp_cc->s_maxage < 0 && !resp_cc->must_revalidate)
        return CACHE_AUTHORIZATION;
    if (!allow_set_cookie && has_field(rs->headers, rs->n_headers, "Set-Cookie"))
        return CACHE_SET_COOKIE;
    if (vary_star(rs))
        return CACHE_VARY_STAR;
    if (fresh || default_ttl_s >= 0)
        return CACHE_OK;
    bool validator = has_field(rs->headers, rs->n_headers, "ETag") ||
                     has_field(rs->headers, rs->n_headers, "Last-Modified");
    if (validator && resp_cc->no_cache)
        return CACHE_OK;
    return CACHE_NO_LIFETIME;
}

/* ---- freshness and age ------------------------------------------------ */

int64_t cache_lifetime(const struct http_response *rs, const struct cache_control *cc,
                       int64_t response_time, int64_t default_ttl_s)
{
    if (cc->s_maxage >= 0)
        return cc->s_maxage;
    if (cc->max_age >= 0)
        return cc->max_age;
    struct str exp = first_field(rs->headers, rs->n_headers, "Expires");
    if (exp.p != NULL) {
        int64_t e, date;
        if (http_date_parse(exp, &e) != 0)
            return 0; /* RFC 9111 5.3: invalid (e.g. "0") is in the past */
        if (http_date_parse(first_field(rs->headers, rs->n_headers, "Date"), &date) != 0)
            date = response_time;
        return e > date ? e - date : 0;
    }
    return default_ttl_s >= 0 ? default_ttl_s : 0;
}

int64_t cache_initial_age(const struct http_response *rs, int64_t request_time,
                          int64_t response_time)
{
    int64_t age_value = 0;
    struct str age = first_field(rs->headers, rs->n_headers, "Age"), m;
    /* RFC 9111 5.1: use the first member of a list; ignore an invalid value. */
    if (age.p != NULL && next_member(&age, &m)) {
        int64_t v = delta_seconds(m);
        if (v >= 0 && (m.len == 0 || m.p[0] != '"'))
            age_value = v;
    }
    int64_t date, apparent = 0;
    if (http_date_parse(first_field(rs->headers, rs->n_headers, "Date"), &date) == 0 &&
        response_time > date)
        apparent = response_time - date;
    int64_t delay = response_time > request_time ? response_time - request_time : 0;
    int64_t corrected = age_value + delay;
    return apparent > corrected ? apparent : corrected;
}

int64_t cache_current_age(int64_t initial_age, int64_t response_time, int64_t now)
{
    int64_t resident = now > response_time ? now - response_time : 0;
    int64_t age = initial_age + resident;
    return age < 0 ? 0 : age;
}

/* ---- conditional requests --------------------------------------------- */

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, at the start of s. Returns its
 * length (0 when s does not start with one) and the opaque-tag (with quotes). */
static size_t etag_scan(struct str s, struct str *opaque)
{
    size_t i = 0;
    if (s.len >= 2 && s.p[0] == 'W' && s.p[1] == '/')
        i = 2;
    if (i >= s.len || s.p[i] != '"')
        return 0;
    size_t q = i++;
    while (i < s.len && s.p[i] != '"') {
        if (!is_etagc(s.p[i]))
            return 0;
        i++;
    }
    if (i >= s.len)
        return 0;
    i++;
    if (opaque)
        *opaque = str_make(s.p + q, i - q);
    return i;
}

/* One If-None-Match field value against the stored tag: true when a member
 * is "*" or matches. stored_ok says whether stored_opaque is valid; without
 * it only a byte-identical malformed member matches stored_raw. */
static bool inm_match(struct str v, struct str stored_raw, bool stored_ok, struct str stored_opaque)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (is_ows(v.p[i]) || v.p[i] == ','))
            i++;
        if (i >= v.len)
            break;
        struct str at = str_make(v.p + i, v.len - i), op;
        size_t k = etag_scan(at, &op);
        if (k) {
            size_t j = i + k;
            while (j < v.len && is_ows(v.p[j]))
                j++;
            if (j == v.len || v.p[j] == ',') {
                if (stored_ok && str_eq(op, stored_opaque))
                    return true;
                i = j;
                continue;
            }
        }
        /* Not an entity-tag: "*" or junk, up to the next comma. */
        size_t j = i;
        while (j < v.len && v.p[j] != ',')
            j++;
        struct str raw = str_trim_ows(str_make(v.p + i, j - i));
        if (raw.len == 1 && raw.p[0] == '*')
            return true;
        if (!stored_ok && raw.len && str_eq(raw, stored_raw))
            return true;
        i = j;
    }
    return false;
}

bool cache_not_modified(const struct http_request *rq, struct str etag, struct str last_modified)
{
    if (rq->method_id != HTTP_M_GET && rq->method_id != HTTP_M_HEAD)
        return false;
    const struct http_header *h = rq->headers;
    unsigned n = rq->n_headers;

    int i = http_header_find(h, n, STR_LIT("If-None-Match"), 0);
    if (i >= 0) {
        /* RFC 9110 13.2.2: If-None-Match, when present, decides alone. */
        struct str raw = str_trim_ows(etag), opaque = STR_NULL;
        bool ok = raw.p != NULL && etag_scan(raw, &opaque) == raw.len && raw.len > 0;
        for (; i >= 0; i = http_header_find(h, n, STR_LIT("If-None-Match"), i + 1)) {
            if (inm_match(h[i].value, raw, ok, opaque))
                return true;
        }
        return false;
    }

    i = http_header_find(h, n, STR_LIT("If-Modified-Since"), 0);
    if (i < 0 || http_header_find(h, n, STR_LIT("If-Modified-Since"), i + 1) >= 0)
        return false; /* absent, or more than one member: ignored (13.1.3) */
    int64_t ims, lm;
    if (http_date_parse(h[i].value, &ims) != 0 || last_modified.p == NULL ||
        http_date_parse(last_modified, &lm) != 0)
        return false;
    return lm <= ims;
}

/* ---- ranges ------------------------------------------------------------- */

/* 1*DIGIT at s[*i..), saturating at UINT64_MAX (a huge first-pos is then
 * unsatisfiable and a huge last-pos or suffix covers everything, which is
 * what the exact value would give). */
static bool range_num(struct str s, size_t *i, uint64_t *out)
{
    size_t start = *i;
    uint64_t v = 0;
    while (*i < s.len && is_digit(s.p[*i])) {
        unsigned dgt = (unsigned)(s.p[*i] - '0');
        v = v > (UINT64_MAX - dgt) / 10 ? UINT64_MAX : v * 10 + dgt;
        (*i)++;
    }
    *out = v;
    return *i > start;
}

int range_single(struct str range, uint64_t len, uint64_t *first, uint64_t *last)
{
    struct str s = str_trim_ows(range);
    if (s.p == NULL || s.len < 6 || strncasecmp(s.p, "bytes=", 6) != 0)
        return 0;
    struct str rest = str_make(s.p + 6, s.len - 6), m, spec = STR_NULL;
    unsigned count = 0;
    while (next_member(&rest, &m)) {
        if (m.len == 0)
            continue;
        if (++count > 1)
            return 0; /* several ranges: portico sends the whole representation */
        spec = m;
    }
    if (count == 0)
        return 0;

    size_t i = 0;
    uint64_t a, b;
    if (spec.p[0] == '-') {
        i = 1;
        if (!range_num(spec, &i, &b) || i != spec.len)
            return 0;
        if (b == 0)
            return -1; /* a suffix of zero bytes is never satisfiable (14.1.3) */
        if (len == 0)
            return 0;
        *first = b >= len ? 0 : len - b;
        *last = len - 1;
        return 1;
    }
    if (!range_num(spec, &i, &a) || i >= spec.len || spec.p[i] != '-')
        return 0;
    i++;
    bool has_last = i < spec.len;
    if (has_last && (!range_num(spec, &i, &b) || i != spec.len))
        return 0;
    if (has_last && b < a)
        return 0; /* invalid range-spec: the field is ignored */
    if (a >= len)
        return -1;
    *first = a;
    *last = !has_last || b >= len ? len - 1 : b;
    return 1;
}

/* ---- field helpers ------------------------------------------------------ */

size_t etag_weaken(struct str etag, char *out, size_t cap)
{
    struct str e = str_trim_ows(etag);
    if (e.p == NULL || etag_scan(e, NULL) != e.len || e.len == 0)
        return 0;
    bool weak = e.p[0] == 'W';
    size_t need = e.len + (weak ? 0 : 2);
    if (need + 1 > cap)
        return 0;
    size_t o = 0;
    if (!weak) {
        out[o++] = 'W';
        out[o++] = '/';
    }
    memcpy(out + o, e.p, e.len);
    out[need] = '\0';
    return need;
}

size_t header_values_normalized(const struct http_header *h, unsigned n, struct str name,
                                char *out, size_t cap)
{
    size_t len = 0;
    bool any = false;
    /* Writes while there is room for the NUL, counts always (snprintf-like). */
#define EMIT(ch)                    \
    do {                            \
        if (len + 1 < cap)          \
            out[len] = (ch);        \
        len++;                      \
    } while (0)
    for (int i = http_header_find(h, n, name, 0); i >= 0; i = http_header_find(h, n, name, i + 1)) {
        struct str rest = h[i].value, m;
        while (next_member(&rest, &m)) {
            if (m.len == 0)
                continue;
            if (any)
                EMIT(',');
            any = true;
            bool quoted = false;
            for (size_t j = 0; j < m.len; j++) {
                char c = m.p[j];
                if (quoted) {
                    EMIT(c);
                    if (c == '\\' && j + 1 < m.len) {
                        j++; /* quoted-pair: kept as it is */
                        EMIT(m.p[j]);
                    } else if (c == '"')
                        quoted = false;
                } else {
                    if (c == '"')
                        quoted = true;
                    EMIT(lower(c));
                }
            }
        }
    }
#undef EMIT
    if (cap)
        out[len < cap ? len : cap - 1] = '\0';
    return len;
}
