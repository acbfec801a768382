/* tmpl.h - placeholder templates ("https://{host}/new/", "{client_ip}").
 * Compiled once when a config snapshot is built, expanded per request through a
 * caller-supplied variable resolver, so this module knows nothing of HTTP. */
#ifndef PORTICO_CORE_TMPL_H
#define PORTICO_CORE_TMPL_H

#include <stddef.h>

#include "core/str.h"

enum tmpl_var {
    TMPL_LITERAL = 0,
    TMPL_CLIENT_IP,
    TMPL_HOST,
    TMPL_PATH,
    TMPL_QUERY,
    TMPL_SCHEME,
    TMPL_REQUEST_ID,
    TMPL_METHOD,
    TMPL_URI,     /* path plus "?query" when there is one */
    TMPL_HEADER,  /* {header.NAME}: arg holds NAME */
    TMPL_TLS_CLIENT_SUBJECT,
};

struct tmpl_part {
    enum tmpl_var var;
    struct str arg; /* literal text, or the header name; owned by the template */
};

struct tmpl {
    struct tmpl_part *parts;
    size_t n_parts;
    char *src; /* the template text as written */
};

/* Compiles src. Returns NULL and sets *err to a static message (with *err_off
 * the byte offset in src) on an unknown placeholder or an unbalanced brace.
 * "{{" and "}}" are literal braces. */
struct tmpl *tmpl_compile(const char *src, const char **err, size_t *err_off);
void tmpl_free(struct tmpl *t);

/* Returns the value of variable v (arg for TMPL_HEADER); an empty view when
 * the variable has no value. */
typedef struct str (*tmpl_resolve_fn)(void *ctx, enum tmpl_var v, struct str arg);

/* Expands t into out[0..cap). Returns the full length the expansion needs (like
 * snprintf); the output is truncated (not NUL-terminated) when that exceeds cap. */
size_t tmpl_expand(const struct tmpl *t, tmpl_resolve_fn resolve, void *ctx, char *out,
                   size_t cap);

/* True when the template is a single literal (no variables). */
int tmpl_is_literal(const struct tmpl *t);

#endif
