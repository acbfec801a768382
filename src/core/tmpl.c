/* tmpl.c - placeholder templates: compiled once per config snapshot into a
 * flat list of parts (literal runs and variables), expanded per request with
 * nothing but memcpy and one resolver call per variable. */
#include "core/tmpl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

static const struct {
    const char *name;
    enum tmpl_var var;
} tmpl_vars[] = {
    {"client_ip", TMPL_CLIENT_IP},   {"host", TMPL_HOST},
    {"path", TMPL_PATH},             {"query", TMPL_QUERY},
    {"scheme", TMPL_SCHEME},         {"request_id", TMPL_REQUEST_ID},
    {"method", TMPL_METHOD},         {"uri", TMPL_URI},
    {"tls.client_subject", TMPL_TLS_CLIENT_SUBJECT},
};

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Growable part list used while compiling. */
struct tbuild {
    struct tmpl_part *parts;
    size_t n, cap;
    char *lit;      /* pending literal run */
    size_t lit_len;
};

static void push_part(struct tbuild *b, enum tmpl_var v, const char *arg, size_t len)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 4;
        b->parts = xrealloc(b->parts, b->cap * sizeof(*b->parts));
    }
    b->parts[b->n].var = v;
    b->parts[b->n].arg = str_make(xstrndup(arg ? arg : "", len), len);
    b->n++;
}

static void flush_lit(struct tbuild *b)
{
    if (b->lit_len) {
        push_part(b, TMPL_LITERAL, b->lit, b->lit_len);
        b->lit_len = 0;
    }
}

static void free_parts(struct tmpl_part *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)parts[i].arg.p);
    free(parts);
}

struct tmpl *tmpl_compile(const char *src, const char **err, size_t *err_off)
{
    size_t len = strlen(src), i = 0;
    struct tbuild b = {0};
    struct tmpl *t;
    const char *dummy_err;
    size_t dummy_off;

    if (!err)
        err = &dummy_err;
    if (!err_off)
        err_off = &dummy_off;
    b.lit = xmalloc(len + 1);

    while (i < len) {
        char c = src[i];
        if (c == '{' && i + 1 < len && src[i + 1] == '{') {
            b.lit[b.lit_len++] = '{';
            i += 2;
        } else if (c == '}') {
            if (i + 1 < len && src[i + 1] == '}') {
                b.lit[b.lit_len++] = '}';
                i += 2;
                continue;
            }
            *err = "unbalanced '}' (write '}}' for a literal brace)";
            *err_off = i;
            goto fail;
        } else if (c == '{') {
            const char *name = src + i + 1;
            const char *close = memchr(name, '}', len - i - 1);
            size_t nlen;
            bool found = false;

            if (!close) {
                *err = "unclosed '{' (write '{{' for a literal brace)";
                *err_off = i;
                goto fail;
            }
            nlen = (size_t)(close - name);
            if (memchr(name, '{', nlen)) {
                *err = "unclosed '{' (write '{{' for a literal brace)";
                *err_off = i;
                goto fail;
            }
            flush_lit(&b);
            if (nlen > 7 && memcmp(name, "header.", 7) == 0) {
                for (size_t k = 7; k < nlen; k++) {
                    if (!is_tchar((unsigned char)name[k])) {
                        *err = "invalid header name in placeholder";
                        *err_off = i;
                        goto fail;
                    }
                }
                push_part(&b, TMPL_HEADER, name + 7, nlen - 7);
                found = true;
            } else {
                for (size_t k = 0; k < ARRAY_SIZE(tmpl_vars); k++) {
                    if (strlen(tmpl_vars[k].name) == nlen &&
                        memcmp(tmpl_vars[k].name, name, nlen) == 0) {
                        push_part(&b, tmpl_vars[k].var, NULL, 0);
                        found = true;
                        break;
                    }
                }
            }
            if (!found) {
                *err = "unknown placeholder (expected one of {client_ip}, {host}, {path}, "
                       "{query}, {scheme}, {request_id}, {method}, {uri}, {header.NAME}, "
                       "{tls.client_subject})";
                *err_off = i;
                goto fail;
            }
            i += nlen + 2;
        } else {
            b.lit[b.lit_len++] = c;
            i++;
        }
    }
    flush_lit(&b);
    free(b.lit);

    t = xcalloc(1, sizeof(*t));
    t->parts = b.parts;
    t->n_parts = b.n;
    t->src = xstrndup(src, len);
    return t;

fail:
    free(b.lit);
    free_parts(b.parts, b.n);
    return NULL;
}

void tmpl_free(struct tmpl *t)
{
    if (!t)
        return;
    free_parts(t->parts, t->n_parts);
    free(t->src);
    free(t);
}

size_t tmpl_expand(const struct tmpl *t, tmpl_resolve_fn resolve, void *ctx, char *out,
                   size_t cap)
{
    size_t need = 0;

    for (size_t i = 0; i < t->n_parts; i++) {
        const struct tmpl_part *p = &t->parts[i];
        struct str v = p->var == TMPL_LITERAL ? p->arg : resolve(ctx, p->var, p->arg);

        if (v.len && need < cap)
            memcpy(out + need, v.p, MIN(v.len, cap - need));
        need += v.len;
    }
    return need;
}

int tmpl_is_literal(const struct tmpl *t)
{
    return t->n_parts == 0 || (t->n_parts == 1 && t->parts[0].var == TMPL_LITERAL);
}
