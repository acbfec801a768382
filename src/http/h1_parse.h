/* h1_parse.h - strict, zero-copy HTTP/1.1 message head parser (RFC 9112).
 * Pure functions: no allocation, no I/O, no global state. The parser is where
 * request smuggling is stopped, so anything ambiguous is an error. */
#ifndef PORTICO_HTTP_H1_PARSE_H
#define PORTICO_HTTP_H1_PARSE_H

#include <stddef.h>
#include <sys/types.h>

#include "http/msg.h"

struct h1_limits {
    size_t max_request_line; /* longer request line -> -414 */
    size_t max_header_bytes; /* larger head (line + fields) -> -431 */
};

/* Return values of the parse functions:
 *   > 0   the head is complete and valid; the value is its length in bytes
 *   0     incomplete: call again with more bytes (the limits are not yet exceeded)
 *   < 0   error: the negated HTTP status to answer (-400, -414, -431, -501, -505);
 *         for responses any error is -502. */
#define H1_INCOMPLETE 0

/* Character classes shared by the HTTP/1.1 parsers (h1_parse.c, chunked.c):
 * h1_cclass[byte] is a mask of these bits. Table-driven so the hot loops are
 * one load and one test per byte. */
enum {
    H1_C_TCHAR = 1 << 0,  /* token (RFC 9110 §5.6.2) */
    H1_C_FVAL = 1 << 1,   /* field-value byte: HTAB, SP, VCHAR, obs-text (§5.5) */
    H1_C_TARGET = 1 << 2, /* request-target byte: VCHAR except '#' */
    H1_C_HOST = 1 << 3,   /* reg-name byte accepted: ALPHA DIGIT '-' '.' '_' */
    H1_C_DIGIT = 1 << 4,  /* DIGIT */
    H1_C_HEX = 1 << 5,    /* HEXDIG (either case) */
    H1_C_QDTEXT = 1 << 6, /* qdtext of quoted-string (§5.6.4) */
};
extern const unsigned char h1_cclass[256];

/* Parses a request head from buf[0..len). On success fills *req (every view
 * points into buf). Rejects (400): CL+TE together, differing or repeated
 * Content-Length, any Transfer-Encoding other than a single final "chunked",
 * obs-fold, bare LF, NUL or CR inside a field, whitespace before a colon, more
 * than one Host, missing Host in HTTP/1.1, absolute-form whose authority differs
 * from Host, invalid method/target/version characters.
 * Details: up to 4 leading CRLFs are skipped (counted in head_len); -414 and
 * -431 are returned as soon as the buffered bytes prove the limit exceeded,
 * even before the head is complete; lim may be NULL (8 KiB line, 16 KiB head).
 * On 0 or an error *req holds no meaningful data. An absolute-form target
 * without a path gives an empty req->path (the forwarder sends "/"). Absent
 * views (query without '?', scheme, upgrade, authority in HTTP/1.0 without
 * Host) are {NULL, 0}. Never returns -501: unknown codings are 400.
 * Pure: any thread; allocates nothing. docs/internals/h1.md has the rules. */
ssize_t h1_parse_request(const char *buf, size_t len, struct http_request *req,
                         const struct h1_limits *lim);

/* Parses a response head (status line + fields). Same strictness; every error is
 * -502 (a bad origin). 1xx responses are returned like any other. No leading
 * empty lines are skipped; max_request_line bounds the status line. A
 * Transfer-Encoding other than exactly "chunked" (even "gzip, chunked"), TE in
 * HTTP/1.0, any repeated Content-Length and CL+TE are -502. Host, Expect and
 * Upgrade get no special treatment. */
ssize_t h1_parse_response(const char *buf, size_t len, struct http_response *resp,
                          const struct h1_limits *lim);

#endif
