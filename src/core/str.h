/* str.h - non-owning string views ({ptr,len}) and the few helpers the parsers,
 * router and header rules need. A view never owns its bytes: for a parsed
 * message the bytes live in the connection's read buffer. */
#ifndef PORTICO_CORE_STR_H
#define PORTICO_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct str {
    const char *p;
    size_t len;
};

#define STR_LIT(s) ((struct str){(s), sizeof(s) - 1})
#define STR_NULL ((struct str){NULL, 0})
#define STR_FMT(s) (int)(s).len, (s).p

static inline struct str str_make(const char *p, size_t len)
{
    return (struct str){p, len};
}

static inline struct str str_c(const char *s)
{
    return (struct str){s, s ? strlen(s) : 0};
}

static inline bool str_eq(struct str a, struct str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* ASCII case-insensitive comparison (header names, tokens). */
static inline bool str_eq_ci(struct str a, struct str b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.p, b.p, a.len) == 0);
}

static inline bool str_eq_lit_ci(struct str a, const char *lit)
{
    return str_eq_ci(a, str_c(lit));
}

static inline bool str_has_prefix(struct str s, struct str prefix)
{
    return s.len >= prefix.len && memcmp(s.p, prefix.p, prefix.len) == 0;
}

static inline bool str_has_suffix_ci(struct str s, struct str suffix)
{
    return s.len >= suffix.len &&
           strncasecmp(s.p + s.len - suffix.len, suffix.p, suffix.len) == 0;
}

/* Trims optional whitespace (SP / HTAB) on both ends. */
static inline struct str str_trim_ows(struct str s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Takes the bytes up to the next `sep` (or the end) off the front of *rest,
 * which moves past that separator. The piece is returned untrimmed. */
static inline struct str str_split_next(struct str *rest, char sep)
{
    const char *p = rest->p;
    const char *c = rest->len ? memchr(p, sep, rest->len) : NULL;
    size_t n = c ? (size_t)(c - p) : rest->len;
    rest->p += c ? n + 1 : n;
    rest->len -= c ? n + 1 : n;
    return str_make(p, n);
}

/* Takes the next element of a comma-separated list (RFC 9110 5.6.1) off the
 * front of *rest, trimmed of OWS; empty elements ("a,,b") come back empty
 * and callers skip them. Returns false once *rest is used up. */
static inline bool str_list_next(struct str *rest, struct str *item)
{
    if (!rest->len)
        return false;
    *item = str_trim_ows(str_split_next(rest, ','));
    return true;
}

#endif
