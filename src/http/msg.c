/* msg.c - helpers of the protocol-neutral message model: method ids, reason
 * phrases and header lookup. Pure functions, callable from any thread. */
#include "http/msg.h"

#include "core/common.h"

static const struct str method_names[HTTP_M__COUNT] = {
    [HTTP_M_OTHER] = {"", 0},
    [HTTP_M_GET] = STR_LIT("GET"),
    [HTTP_M_HEAD] = STR_LIT("HEAD"),
    [HTTP_M_POST] = STR_LIT("POST"),
    [HTTP_M_PUT] = STR_LIT("PUT"),
    [HTTP_M_DELETE] = STR_LIT("DELETE"),
    [HTTP_M_CONNECT] = STR_LIT("CONNECT"),
    [HTTP_M_OPTIONS] = STR_LIT("OPTIONS"),
    [HTTP_M_TRACE] = STR_LIT("TRACE"),
    [HTTP_M_PATCH] = STR_LIT("PATCH"),
};

/* Maps a method token to its id. Methods are case-sensitive (RFC 9110 §9.1):
 * "get" is HTTP_M_OTHER. */
enum http_method http_method_lookup(struct str m)
{
    /* Dispatch on the first byte so a lookup costs at most two compares. */
    if (m.len < 3 || m.len > 7)
        return HTTP_M_OTHER;
    switch (m.p[0]) {
    case 'G':
        return str_eq(m, method_names[HTTP_M_GET]) ? HTTP_M_GET : HTTP_M_OTHER;
    case 'H':
        return str_eq(m, method_names[HTTP_M_HEAD]) ? HTTP_M_HEAD : HTTP_M_OTHER;
    case 'P':
        if (str_eq(m, method_names[HTTP_M_POST]))
            return HTTP_M_POST;
        if (str_eq(m, method_names[HTTP_M_PUT]))
            return HTTP_M_PUT;
        return str_eq(m, method_names[HTTP_M_PATCH]) ? HTTP_M_PATCH : HTTP_M_OTHER;
    case 'D':
        return str_eq(m, method_names[HTTP_M_DELETE]) ? HTTP_M_DELETE : HTTP_M_OTHER;
    case 'C':
        return str_eq(m, method_names[HTTP_M_CONNECT]) ? HTTP_M_CONNECT : HTTP_M_OTHER;
    case 'O':
        return str_eq(m, method_names[HTTP_M_OPTIONS]) ? HTTP_M_OPTIONS : HTTP_M_OTHER;
    case 'T':
        return str_eq(m, method_names[HTTP_M_TRACE]) ? HTTP_M_TRACE : HTTP_M_OTHER;
    default:
        return HTTP_M_OTHER;
    }
}

/* Canonical name of a known method; "" for HTTP_M_OTHER or an out-of-range
 * value (use the request's own method view then). Never NULL. */
const char *http_method_name(enum http_method m)
{
    if ((unsigned)m >= HTTP_M__COUNT)
        return "";
    return method_names[m].p;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

/* Index of the first header at or after `from` (negative = 0) whose name
 * equals `name` case-insensitively, or -1. Call again with the result + 1 to
 * visit repeated fields. */
int http_header_find(const struct http_header *h, unsigned n, struct str name, int from)
{
    for (unsigned i = from < 0 ? 0 : (unsigned)from; i < n; i++) {
        if (str_eq_ci(h[i].name, name))
            return (int)i;
    }
    return -1;
}
