/* msg.h - the protocol-neutral HTTP message model.
 * The HTTP/1.1 parser (and later the HTTP/2 glue) fill these structs; routing,
 * header rules, the cache and compression only ever see this form, never the
 * wire. Every struct str points into the receive buffer of the connection that
 * carried the message (zero-copy): the message is valid only as long as that
 * buffer region is not reused. */
#ifndef PORTICO_HTTP_MSG_H
#define PORTICO_HTTP_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/str.h"

/* Bounds the per-request header table; more fields than this is a 431. */
#define HTTP_MAX_HEADERS 128
/* Connection-option tokens remembered so the named fields are not forwarded. */
#define HTTP_MAX_CONN_TOKENS 16

enum http_method {
    HTTP_M_OTHER = 0,
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_CONNECT,
    HTTP_M_OPTIONS,
    HTTP_M_TRACE,
    HTTP_M_PATCH,
    HTTP_M__COUNT
};

struct http_header {
    struct str name;
    struct str value;
};

/* Message framing and connection semantics shared by requests and responses,
 * derived by the parser from Content-Length / Transfer-Encoding / Connection. */
struct http_framing {
    bool has_content_length;
    bool chunked;            /* Transfer-Encoding: chunked (the only coding accepted) */
    bool conn_close;         /* Connection: close present */
    bool conn_keep_alive;    /* Connection: keep-alive present */
    bool conn_upgrade;       /* Connection: upgrade present */
    uint64_t content_length; /* valid when has_content_length */
    /* Other Connection tokens: the fields they name are hop-by-hop. */
    struct str conn_tokens[HTTP_MAX_CONN_TOKENS];
    unsigned n_conn_tokens;
};

struct http_request {
    struct str method;
    enum http_method method_id;
    struct str target;    /* request-target exactly as received */
    struct str scheme;    /* absolute-form only ("http"/"https"), else empty */
    struct str authority; /* Host value (or absolute-form authority, which must agree) */
    struct str path;      /* path part of the target, without the query; "*" for OPTIONS * */
    struct str query;     /* after '?', without it; .p == NULL when no '?' */
    uint8_t version;      /* 10 or 11, or 20 for HTTP/2 */
    bool expect_continue; /* Expect: 100-continue */
    struct str upgrade;   /* Upgrade header value (empty if none) */
    struct http_framing framing;
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned n_headers;
    size_t head_len; /* bytes of request line + fields + final CRLF */
};

struct http_response {
    uint8_t version; /* 10 or 11 */
    int status;
    struct str reason;
    struct http_framing framing;
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned n_headers;
    size_t head_len;
};

/* Method token -> id, case-sensitively ("get" is HTTP_M_OTHER). */
enum http_method http_method_lookup(struct str m);
/* Canonical name of a known method; "" (never NULL) for HTTP_M_OTHER. */
const char *http_method_name(enum http_method m);
/* Standard reason phrase for a status code ("Unknown" when unknown). */
const char *http_status_text(int status);
/* Finds a header by case-insensitive name; returns its index or -1. */
int http_header_find(const struct http_header *h, unsigned n, struct str name, int from);

#endif
