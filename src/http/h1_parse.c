/* h1_parse.c - strict, zero-copy HTTP/1.1 head parser (RFC 9112).
 *
 * Owns: request-line / status-line / field-line parsing and the framing
 * decisions derived from Content-Length, Transfer-Encoding and Connection.
 * Pure functions: no allocation, no I/O, no global mutable state; safe to call
 * from any thread. docs/internals/h1.md lists what is accepted and why.
 *
 * Shape of a call. The connection calls the parser again, on every read, with
 * the whole buffer from its start, so the "not yet complete" path must be
 * cheap. A call therefore:
 *   1. skips at most H1_MAX_EMPTY_LINES leading CRLFs (requests only);
 *   2. walks the LFs with memchr, checking each is preceded by CR (a bare LF
 *      anywhere is an error) until it finds the empty line that ends the head;
 *      the walk never looks past max_header_bytes;
 *   3. if the head is incomplete: applies the limits (414 / 431), does a few
 *      cheap checks (NUL bytes, the start line if it is complete, the method
 *      characters so far) and returns 0;
 *   4. otherwise parses the head once, in a single pass. Because the head is
 *      known to end in CRLF CRLF and CR belongs to no character class, the inner
 *      scanning loops need no bounds checks: every class loop stops at a CR at
 *      the latest.
 */
#include "http/h1_parse.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/common.h"

/* RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
 * request-line. We ignore a few, not an unbounded number. */
#define H1_MAX_EMPTY_LINES 4
/* Content-Length and chunk sizes above this are refused: no real body is this
 * large and it keeps every later addition far from overflowing. */
#define H1_MAX_CONTENT_LENGTH (UINT64_C(1) << 62)

static const struct h1_limits h1_default_limits = {
    .max_request_line = 8192,
    .max_header_bytes = 16384,
};

/* ---- character classes ------------------------------------------------- */

#define CC_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define CC_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define CC_TCHAR(c)                                                                    \
    (CC_ALPHA(c) || CC_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' ||           \
     (c) == '%' || (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' ||            \
     (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || (c) == '`' ||             \
     (c) == '|' || (c) == '~')
#define CC_VCHAR(c) ((c) >= 0x21 && (c) <= 0x7e)
#define CC_FVAL(c) ((c) == '\t' || (c) == ' ' || CC_VCHAR(c) || (c) >= 0x80)
#define CC_HEX(c) (CC_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define CC_QDTEXT(c)                                                                   \
    ((c) == '\t' || (c) == ' ' || (c) == 0x21 || ((c) >= 0x23 && (c) <= 0x5b) ||       \
     ((c) >= 0x5d && (c) <= 0x7e) || (c) >= 0x80)
#define CC(c)                                                                          \
    ((CC_TCHAR(c) ? H1_C_TCHAR : 0) | (CC_FVAL(c) ? H1_C_FVAL : 0) |                   \
     (CC_VCHAR(c) && (c) != '#' ? H1_C_TARGET : 0) |                                   \
     (CC_ALPHA(c) || CC_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' ? H1_C_HOST \
                                                                            : 0) |     \
     (CC_DIGIT(c) ? H1_C_DIGIT : 0) | (CC_HEX(c) ? H1_C_HEX : 0) |                     \
     (CC_QDTEXT(c) ? H1_C_QDTEXT : 0))
#define CC4(c) CC(c), CC((c) + 1), CC((c) + 2), CC((c) + 3)
#define CC16(c) CC4(c), CC4((c) + 4), CC4((c) + 8), CC4((c) + 12)
#define CC64(c) CC16(c), CC16((c) + 16), CC16((c) + 32), CC16((c) + 48)

const unsigned char h1_cclass[256] = {CC64(0), CC64(64), CC64(128), CC64(192)};

#define IS(c, cls) (h1_cclass[(unsigned char)(c)] & (cls))

static inline struct str view(const unsigned char *b, size_t from, size_t to)
{
    return str_make((const char *)b + from, to - from);
}

static inline bool name_is(struct str name, const char *lit, size_t lit_len)
{
    return name.len == lit_len && strncasecmp(name.p, lit, lit_len) == 0;
}
#define NAME_IS(name, lit) name_is((name), (lit), sizeof(lit) - 1)

/* Fast skips over the long runs of the head: field values and the
 * request-target. Each returns the index of the first byte at or after p that
 * is not in the class; `end` bounds the 16-byte loads (the head is known to end
 * in CRLF before `end`, so the scalar tail always stops). With SSE2 a block of
 * 16 ordinary bytes costs a few instructions; the scalar loop then settles the
 * byte that stopped the block (HTAB in a value is legal but rare). */
static inline size_t skip_fval(const unsigned char *b, size_t p, size_t end)
{
#ifdef __SSE2__
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
    while (p + 16 <= end) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + p));
        /* good: v >= 0x20 (unsigned) and v != 0x7f; obs-text is good */
        __m128i ge = _mm_cmpeq_epi8(_mm_max_epu8(v, sp), v);
        __m128i good = _mm_andnot_si128(_mm_cmpeq_epi8(v, del), ge);
        unsigned bad = (unsigned)_mm_movemask_epi8(good) ^ 0xffffu;
        if (bad) {
            p += (size_t)__builtin_ctz(bad);
            break;
        }
        p += 16;
    }
#else
    (void)end;
#endif
    while (IS(b[p], H1_C_FVAL))
        p++;
    return p;
}

static inline size_t skip_target(const unsigned char *b, size_t p, size_t end)
{
#ifdef __SSE2__
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
    const __m128i hash = _mm_set1_epi8('#');
    while (p + 16 <= end) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + p));
        /* signed compares: bytes >= 0x80 are negative, so not > 0x20 */
        __m128i good = _mm_and_si128(_mm_cmpgt_epi8(v, sp), _mm_cmplt_epi8(v, del));
        good = _mm_andnot_si128(_mm_cmpeq_epi8(v, hash), good);
        unsigned bad = (unsigned)_mm_movemask_epi8(good) ^ 0xffffu;
        if (bad) {
            p += (size_t)__builtin_ctz(bad);
            break;
        }
        p += 16;
    }
#else
    (void)end;
#endif
    while (IS(b[p], H1_C_TARGET))
        p++;
    return p;
}

/* ---- head boundary ----------------------------------------------------- */

/* Walks the lines of b[start..scan_end) with memchr. Returns 1 and sets
 * *head_end (index just past the final CRLF) when the empty line ending the head
 * was found, 0 when not (yet), -400 on a bare LF. *first_lf is the index of the
 * start line's LF, or SIZE_MAX when it was not seen. */
static int find_head_end(const unsigned char *b, size_t start, size_t scan_end,
                         size_t *first_lf, size_t *head_end)
{
    size_t line = start;

    *first_lf = SIZE_MAX;
    while (line < scan_end) {
        const unsigned char *q = memchr(b + line, '\n', scan_end - line);
        if (!q)
            break;
        size_t i = (size_t)(q - b);
        /* The LF must close a CR; i == line means the line was just "\n". */
        if (unlikely(i == line || b[i - 1] != '\r'))
            return -400;
        if (*first_lf == SIZE_MAX) {
            *first_lf = i;
        } else if (i - 1 == line) {
            *head_end = i + 1;
            return 1;
        }
        line = i + 1;
    }
    return 0;
}

/* Applies the limits to an incomplete head and rejects what is already
 * certainly invalid. Returns 0 (wait for more), or a negative status. */
static int incomplete_checks(const unsigned char *b, size_t start, size_t len,
                             size_t scan_end, size_t first_lf, const struct h1_limits *lim)
{
    size_t line_len;

    if (first_lf != SIZE_MAX) {
        line_len = first_lf - 1 - start;
    } else {
        /* The start line has at least this many bytes; a trailing CR may be
         * the first half of its CRLF. */
        line_len = scan_end - start;
        if (line_len && b[scan_end - 1] == '\r')
            line_len--;
    }
    if (line_len > lim->max_request_line)
        return -414;
    if (len - start > lim->max_header_bytes)
        return -431;
    if (memchr(b + start, '\0', scan_end - start))
        return -400;
    return 0;
}

/* ---- authority (Host, absolute-form, authority-form) ------------------- */

/* authority = host [ ":" port ] without userinfo (RFC 9110 §4.2.1 forbids it
 * in http(s) URIs). host is "[" IPv6 "]" or a reg-name/IPv4 restricted to
 * ALPHA DIGIT - . _ (no percent-encoding, no sub-delims: nothing a router or a
 * log line could misread). port is 1-5 digits <= 65535 and is required for
 * CONNECT (RFC 9110 §9.3.6). */
static bool valid_authority(struct str a, bool need_port)
{
    const unsigned char *s = (const unsigned char *)a.p;
    size_t n = a.len, i = 0;

    if (n == 0)
        return false;
    if (s[0] == '[') {
        bool colon = false;
        for (i = 1; i < n && (IS(s[i], H1_C_HEX) || s[i] == ':' || s[i] == '.'); i++)
            colon |= s[i] == ':';
        if (!colon || i >= n || s[i] != ']')
            return false;
        i++;
    } else {
        while (i < n && IS(s[i], H1_C_HOST))
            i++;
        if (i == 0)
            return false;
    }
    if (i == n)
        return !need_port;
    if (s[i++] != ':')
        return false;
    size_t d0 = i;
    unsigned port = 0;
    while (i < n && IS(s[i], H1_C_DIGIT) && i - d0 < 5)
        port = port * 10 + (unsigned)(s[i++] - '0');
    return i == n && i > d0 && port <= 65535;
}

/* ---- start lines ------------------------------------------------------- */

/* "HTTP/" DIGIT "." DIGIT at v[0..8): returns 10 or 11, -505 for another
 * well-formed version, -400 for anything else. */
static int parse_version(const unsigned char *v, size_t n)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || !IS(v[5], H1_C_DIGIT) || v[6] != '.' ||
        !IS(v[7], H1_C_DIGIT))
        return -400;
    if (v[5] == '1' && v[7] == '1')
        return 11;
    if (v[5] == '1' && v[7] == '0')
        return 10;
    return -505;
}

/* Splits "path[?query]" starting at target index `from`. */
static void split_path_query(struct http_request *req, const unsigned char *b, size_t from,
                             size_t to)
{
    const unsigned char *q = memchr(b + from, '?', to - from);
    if (q) {
        size_t qi = (size_t)(q - b);
        req->path = view(b, from, qi);
        req->query = view(b, qi + 1, to);
    } else {
        req->path = view(b, from, to);
        req->query = STR_NULL;
    }
}

/* Classifies and splits the request-target b[t0..t1) (RFC 9112 §3.2). */
static int parse_target(struct http_request *req, const unsigned char *b, size_t t0, size_t t1)
{
    req->scheme = STR_NULL;
    req->query = STR_NULL;
    if (req->method_id == HTTP_M_CONNECT) {
        /* authority-form, and only for CONNECT (§3.2.3). */
        if (!valid_authority(view(b, t0, t1), true))
            return -400;
        req->authority = view(b, t0, t1); /* replaced by Host when present */
        req->path = view(b, t1, t1);
        return 0;
    }
    if (b[t0] == '/') { /* origin-form (§3.2.1) */
        split_path_query(req, b, t0, t1);
        return 0;
    }
    if (b[t0] == '*') { /* asterisk-form, only for OPTIONS (§3.2.4) */
        if (t1 - t0 != 1 || req->method_id != HTTP_M_OPTIONS)
            return -400;
        req->path = view(b, t0, t1);
        return 0;
    }
    /* absolute-form (§3.2.2): only http and https URIs. */
    size_t i = t0;
    while (i < t1 && CC_ALPHA(b[i]))
        i++;
    struct str scheme = view(b, t0, i);
    if (!(NAME_IS(scheme, "http") || NAME_IS(scheme, "https")))
        return -400;
    if (t1 - i < 3 || memcmp(b + i, "://", 3) != 0)
        return -400;
    size_t a0 = i + 3, a1 = a0;
    while (a1 < t1 && b[a1] != '/' && b[a1] != '?')
        a1++;
    struct str auth = view(b, a0, a1);
    if (!valid_authority(auth, false))
        return -400;
    req->scheme = scheme;
    req->authority = auth;
    split_path_query(req, b, a1, t1);
    return 0;
}

/* Parses the request-line b[start..cr) (cr indexes its CR). Fills method,
 * target and version. Returns 0 or a negative status. */
static int parse_request_line(struct http_request *req, const unsigned char *b, size_t start,
                              size_t cr)
{
    size_t p = start;

    while (IS(b[p], H1_C_TCHAR))
        p++;
    if (p == start || b[p] != ' ')
        return -400;
    req->method = view(b, start, p);
    req->method_id = http_method_lookup(req->method);
    size_t t0 = ++p;
    p = skip_target(b, p, cr);
    if (p == t0 || b[p] != ' ')
        return -400;
    size_t t1 = p++;
    /* The version is checked before the target form so that "PRI * HTTP/2.0"
     * (the HTTP/2 preface) is answered 505, not 400. */
    int v = parse_version(b + p, cr - p);
    if (v < 0)
        return v;
    req->version = (uint8_t)v;
    req->target = view(b, t0, t1);
    req->authority = STR_NULL;
    return parse_target(req, b, t0, t1);
}

/* Parses the status-line b[0..cr). Returns 0 or -502. */
static int parse_status_line(struct http_response *resp, const unsigned char *b, size_t cr)
{
    if (cr < 12 || parse_version(b, 8) < 0 || b[8] != ' ' || !IS(b[9], H1_C_DIGIT) ||
        !IS(b[10], H1_C_DIGIT) || !IS(b[11], H1_C_DIGIT) || b[9] == '0')
        return -502;
    resp->version = (uint8_t)parse_version(b, 8);
    resp->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    if (cr == 12) { /* "HTTP/1.1 200" with no SP: tolerated, reason empty */
        resp->reason = view(b, cr, cr);
        return 0;
    }
    if (b[12] != ' ')
        return -502;
    size_t p = 13;
    while (IS(b[p], H1_C_FVAL))
        p++;
    if (p != cr)
        return -502;
    resp->reason = view(b, 13, cr);
    return 0;
}

/* ---- field semantics --------------------------------------------------- */

/* Content-Length = 1*DIGIT, nothing else (no sign, list, or inner space). */
static bool parse_content_length(struct str v, uint64_t *out)
{
    uint64_t n = 0;

    if (v.len == 0)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (!IS(c, H1_C_DIGIT))
            return false;
        unsigned d = c - '0';
        if (n > (H1_MAX_CONTENT_LENGTH - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

/* Connection = #connection-option: a comma list of tokens, empty elements
 * ignored (RFC 9110 §5.6.1). Returns false on a malformed list or too many
 * tokens. */
static bool parse_connection(struct str v, struct http_framing *f)
{
    const unsigned char *s = (const unsigned char *)v.p, *e = s + v.len;

    while (s < e) {
        if (*s == ',' || *s == ' ' || *s == '\t') {
            s++;
            continue;
        }
        const unsigned char *t = s;
        while (s < e && IS(*s, H1_C_TCHAR))
            s++;
        if (s == t)
            return false;
        struct str tok = str_make((const char *)t, (size_t)(s - t));
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        if (s < e && *s != ',')
            return false;
        if (NAME_IS(tok, "close")) {
            f->conn_close = true;
        } else if (NAME_IS(tok, "keep-alive")) {
            f->conn_keep_alive = true;
        } else if (NAME_IS(tok, "upgrade")) {
            f->conn_upgrade = true;
        } else {
            if (f->n_conn_tokens == HTTP_MAX_CONN_TOKENS)
                return false;
            f->conn_tokens[f->n_conn_tokens++] = tok;
        }
    }
    return true;
}

/* State of the field-section walk shared by requests and responses. */
struct field_ctx {
    struct http_framing *f;
    struct http_request *req; /* NULL for a response */
    uint8_t version;
    bool seen_te;
    unsigned n_host;
    struct str host;
};

/* Applies the meaning of one field line. Returns 0 or -400. */
static int field_semantics(struct field_ctx *c, struct str name, struct str value)
{
    switch (name.len) {
    case 4:
        if (c->req && NAME_IS(name, "host")) {
            if (++c->n_host > 1)
                return -400;
            if (value.len && !valid_authority(value, false))
                return -400;
            c->host = value;
        }
        break;
    case 6:
        if (c->req && NAME_IS(name, "expect") && NAME_IS(value, "100-continue"))
            c->req->expect_continue = true;
        break;
    case 7:
        if (c->req && NAME_IS(name, "upgrade") && !c->req->upgrade.p)
            c->req->upgrade = value;
        break;
    case 10:
        if (NAME_IS(name, "connection") && !parse_connection(value, c->f))
            return -400;
        break;
    case 14:
        if (NAME_IS(name, "content-length")) {
            /* Repeated, even with an equal value, is refused: a peer that
             * sends two may be talking to someone who honours the other. */
            if (c->f->has_content_length ||
                !parse_content_length(value, &c->f->content_length))
                return -400;
            c->f->has_content_length = true;
        }
        break;
    case 17:
        if (NAME_IS(name, "transfer-encoding")) {
            /* Exactly one field whose value is exactly "chunked": any other
             * coding would have to be decoded or passed through and every
             * such case has been a smuggling vector somewhere. */
            if (c->seen_te || c->version == 10 || !NAME_IS(value, "chunked"))
                return -400;
            c->seen_te = true;
            c->f->chunked = true;
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Parses the field lines from b[p] to the final empty line at b[head_end-2].
 * The head is known to end in CRLF CRLF with every LF preceded by CR, which is
 * why the class loops below need no bounds check. Returns 0 or a negative
 * status (-400, -431). */
static int parse_fields(const unsigned char *b, size_t p, size_t head_end,
                        struct http_header *hdrs, unsigned *n_out, struct field_ctx *c)
{
    unsigned n = 0;

    for (;;) {
        if (b[p] == '\r') {
            /* An empty line: it can only be the one that ends the head (the
             * first CRLF CRLF), otherwise this is a CR not followed by LF. */
            if (p + 2 != head_end)
                return -400;
            break;
        }
        size_t n0 = p;
        while (IS(b[p], H1_C_TCHAR))
            p++;
        /* Also refuses obs-fold (line starting with SP/HTAB, §5.2), an empty
         * name and whitespace between name and colon (§5.1). */
        if (unlikely(p == n0 || b[p] != ':'))
            return -400;
        size_t n1 = p++;
        while (b[p] == ' ' || b[p] == '\t')
            p++;
        size_t v0 = p;
        p = skip_fval(b, p, head_end);
        /* Anything but the CRLF ending the line (NUL, lone CR, other CTLs). */
        if (unlikely(b[p] != '\r' || b[p + 1] != '\n'))
            return -400;
        size_t v1 = p;
        while (v1 > v0 && (b[v1 - 1] == ' ' || b[v1 - 1] == '\t'))
            v1--;
        p += 2;
        if (unlikely(n == HTTP_MAX_HEADERS))
            return -431;
        hdrs[n].name = view(b, n0, n1);
        hdrs[n].value = view(b, v0, v1);
        int rc = field_semantics(c, hdrs[n].name, hdrs[n].value);
        n++;
        if (rc < 0)
            return rc;
    }
    *n_out = n;
    if (c->f->has_content_length && c->f->chunked)
        return -400; /* §6.3: CL with TE is a smuggling attempt; never guess */
    return 0;
}

static void framing_init(struct http_framing *f)
{
    f->has_content_length = false;
    f->chunked = false;
    f->conn_close = false;
    f->conn_keep_alive = false;
    f->conn_upgrade = false;
    f->content_length = 0;
    f->n_conn_tokens = 0;
}

/* ---- public entry points ----------------------------------------------- */

ssize_t h1_parse_request(const char *buf, size_t len, struct http_request *req,
                         const struct h1_limits *lim)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t start = 0, first_lf, head_end;
    int rc;

    if (!lim)
        lim = &h1_default_limits;
    /* §2.2: ignore a few empty lines (CRLF) before the request-line. */
    for (unsigned i = 0;; i++) {
        if (start == len)
            return H1_INCOMPLETE;
        if (b[start] != '\r')
            break;
        if (start + 1 == len)
            return H1_INCOMPLETE;
        if (b[start + 1] != '\n' || i == H1_MAX_EMPTY_LINES)
            return -400;
        start += 2;
    }
    if (b[start] == '\n')
        return -400;

    /* Past max_header_bytes the answer is 431 whatever follows. */
    size_t scan_end = len - start > lim->max_header_bytes ? start + lim->max_header_bytes : len;
    rc = find_head_end(b, start, scan_end, &first_lf, &head_end);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        rc = incomplete_checks(b, start, len, scan_end, first_lf, lim);
        if (rc < 0)
            return rc;
        if (first_lf != SIZE_MAX) {
            rc = parse_request_line(req, b, start, first_lf - 1);
            return rc < 0 ? rc : H1_INCOMPLETE;
        }
        /* Request-line still arriving: its method must already be a token. */
        size_t p = start;
        while (p < scan_end && IS(b[p], H1_C_TCHAR))
            p++;
        if (p < scan_end && (p == start || b[p] != ' '))
            return -400;
        return H1_INCOMPLETE;
    }

    if (first_lf - 1 - start > lim->max_request_line)
        return -414;
    rc = parse_request_line(req, b, start, first_lf - 1);
    if (rc < 0)
        return rc;

    framing_init(&req->framing);
    req->expect_continue = false;
    req->upgrade = STR_NULL;
    struct field_ctx c = {.f = &req->framing, .req = req, .version = req->version};
    rc = parse_fields(b, first_lf + 1, head_end, req->headers, &req->n_headers, &c);
    if (rc < 0)
        return rc;

    /* Host (RFC 9112 §3.2): exactly one in HTTP/1.1, never empty there; an
     * absolute-form target must name the same authority. */
    if (c.n_host == 0) {
        if (req->version == 11)
            return -400;
    } else {
        if (c.host.len == 0 && req->version == 11)
            return -400;
        if (req->scheme.len && !str_eq_ci(req->authority, c.host))
            return -400;
        req->authority = c.host;
    }
    req->head_len = head_end;
    return (ssize_t)head_end;
}

ssize_t h1_parse_response(const char *buf, size_t len, struct http_response *resp,
                          const struct h1_limits *lim)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t first_lf, head_end;
    int rc;

    if (!lim)
        lim = &h1_default_limits;
    if (len == 0)
        return H1_INCOMPLETE;
    size_t scan_end = len > lim->max_header_bytes ? lim->max_header_bytes : len;
    rc = find_head_end(b, 0, scan_end, &first_lf, &head_end);
    if (rc < 0)
        return -502;
    if (rc == 0) {
        if (incomplete_checks(b, 0, len, scan_end, first_lf, lim) < 0)
            return -502;
        if (first_lf != SIZE_MAX)
            return parse_status_line(resp, b, first_lf - 1) < 0 ? -502 : 0;
        /* Status-line still arriving: it must start with "HTTP/1.". */
        size_t n = MIN(scan_end, (size_t)7);
        return memcmp(b, "HTTP/1.", n) == 0 ? H1_INCOMPLETE : -502;
    }
    if (first_lf - 1 > lim->max_request_line)
        return -502;
    if (parse_status_line(resp, b, first_lf - 1) < 0)
        return -502;
    framing_init(&resp->framing);
    struct field_ctx c = {.f = &resp->framing, .req = NULL, .version = resp->version};
    if (parse_fields(b, first_lf + 1, head_end, resp->headers, &resp->n_headers, &c) < 0)
        return -502;
    resp->head_len = head_end;
    return (ssize_t)head_end;
}
