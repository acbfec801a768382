/* conf_node.c - the generic document tree (see conf_node.h) and the error
 * collector: errors carry their source position so they can be reported in
 * file order whatever order the schema code checks things in. */
#include "conf/conf_node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"

struct cnode *cnode_new(enum cnode_type type, unsigned line, unsigned col)
{
    struct cnode *n = xcalloc(1, sizeof(*n));
    n->type = type;
    n->line = line;
    n->col = col;
    return n;
}

struct cnode *cnode_new_scalar(const char *s, size_t len, bool quoted, unsigned line,
                               unsigned col)
{
    struct cnode *n = cnode_new(CNODE_SCALAR, line, col);
    n->s = xstrndup(s ? s : "", len);
    n->len = len;
    n->quoted = quoted;
    return n;
}

void cnode_free(struct cnode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        cnode_free(n->kids[i]);
        if (n->keys)
            cnode_free(n->keys[i]);
    }
    free(n->kids);
    free(n->keys);
    free(n->s);
    free(n);
}

struct cnode *cnode_clone(const struct cnode *n)
{
    struct cnode *c;

    if (n->type == CNODE_SCALAR)
        return cnode_new_scalar(n->s, n->len, n->quoted, n->line, n->col);
    c = cnode_new(n->type, n->line, n->col);
    for (size_t i = 0; i < n->n; i++) {
        if (n->type == CNODE_MAP)
            cnode_map_put(c, cnode_clone(n->keys[i]), cnode_clone(n->kids[i]));
        else
            cnode_seq_push(c, cnode_clone(n->kids[i]));
    }
    return c;
}

static void grow(struct cnode *n)
{
    if (n->n < n->cap)
        return;
    n->cap = n->cap ? n->cap * 2 : 4;
    n->kids = xrealloc(n->kids, n->cap * sizeof(*n->kids));
    if (n->type == CNODE_MAP)
        n->keys = xrealloc(n->keys, n->cap * sizeof(*n->keys));
}

void cnode_seq_push(struct cnode *seq, struct cnode *item)
{
    grow(seq);
    item->parent = seq;
    item->idx = seq->n;
    seq->kids[seq->n++] = item;
}

void cnode_map_put(struct cnode *map, struct cnode *key, struct cnode *value)
{
    grow(map);
    key->parent = map;
    key->is_key = true;
    key->idx = map->n;
    value->parent = map;
    value->idx = map->n;
    map->keys[map->n] = key;
    map->kids[map->n] = value;
    map->n++;
}

struct cnode *cnode_map_get(const struct cnode *map, const char *key)
{
    size_t klen = strlen(key);

    if (!map || map->type != CNODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++) {
        const struct cnode *k = map->keys[i];
        if (k->type == CNODE_SCALAR && k->len == klen && memcmp(k->s, key, klen) == 0)
            return map->kids[i];
    }
    return NULL;
}

const struct cnode *cnode_key_of(const struct cnode *value)
{
    if (!value || !value->parent || value->is_key || value->parent->type != CNODE_MAP)
        return NULL;
    return value->parent->keys[value->idx];
}

bool cnode_is_null(const struct cnode *n)
{
    if (!n || n->type != CNODE_SCALAR || n->quoted)
        return false;
    return n->len == 0 || strcmp(n->s, "~") == 0 || strcasecmp(n->s, "null") == 0;
}

const char *cnode_type_name(const struct cnode *n)
{
    switch (n->type) {
    case CNODE_MAP: return "a mapping";
    case CNODE_SEQ: return "a sequence";
    default: return "a string";
    }
}

/* Appends the RFC 6901 escaped form of s ('~' -> "~0", '/' -> "~1"). */
static void ptr_append(char **buf, size_t *len, const char *s, size_t slen)
{
    *buf = xrealloc(*buf, *len + 2 * slen + 2);
    (*buf)[(*len)++] = '/';
    for (size_t i = 0; i < slen; i++) {
        if (s[i] == '~' || s[i] == '/') {
            (*buf)[(*len)++] = '~';
            (*buf)[(*len)++] = s[i] == '~' ? '0' : '1';
        } else {
            (*buf)[(*len)++] = s[i];
        }
    }
    (*buf)[*len] = '\0';
}

char *cnode_pointer(const struct cnode *n)
{
    const struct cnode *chain[256];
    size_t depth = 0, len = 0;
    char *buf = xstrdup("");

    /* Collect the path root-wards, then emit it from the root down. */
    for (const struct cnode *c = n; c && c->parent && depth < ARRAY_SIZE(chain); c = c->parent)
        chain[depth++] = c;
    while (depth--) {
        const struct cnode *c = chain[depth];
        if (c->parent->type == CNODE_MAP) {
            const struct cnode *k = c->parent->keys[c->idx];
            if (k->type == CNODE_SCALAR)
                ptr_append(&buf, &len, k->s, k->len);
            else
                ptr_append(&buf, &len, "?", 1);
        } else {
            char num[32];
            int nl = snprintf(num, sizeof(num), "%zu", c->idx);
            ptr_append(&buf, &len, num, (size_t)nl);
        }
    }
    return buf;
}

/* ---- errors ---- */

static void push_err(struct conf_ctx *cx, unsigned line, unsigned col, char *msg)
{
    if (cx->n_errs == cx->cap_errs) {
        cx->cap_errs = cx->cap_errs ? cx->cap_errs * 2 : 8;
        cx->errs = xrealloc(cx->errs, cx->cap_errs * sizeof(*cx->errs));
    }
    cx->errs[cx->n_errs++] = (struct conf_err){line, col, msg};
}

static char *vfmt(const char *fmt, va_list ap)
{
    char *s;
    if (vasprintf(&s, fmt, ap) < 0)
        abort(); /* only fails on out of memory, like xmalloc */
    return s;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s;
    va_start(ap, f);
    s = vfmt(f, ap);
    va_end(ap);
    return s;
}

void conf_err(struct conf_ctx *cx, const struct cnode *at, const char *f, ...)
{
    va_list ap;
    char *m, *full;
    unsigned line = at ? at->line : 0, col = at ? at->col : 0;

    va_start(ap, f);
    m = vfmt(f, ap);
    va_end(ap);
    if (cx->json_pointer) {
        char *p = at ? cnode_pointer(at) : xstrdup("");
        full = fmt("%s: %s", *p ? p : "/", m);
        free(p);
    } else if (line) {
        full = fmt("%s:%u:%u: %s", cx->file, line, col, m);
    } else {
        full = fmt("%s: %s", cx->file, m);
    }
    free(m);
    push_err(cx, line, col, full);
}

void conf_err_at(struct conf_ctx *cx, unsigned line, unsigned col, const char *f, ...)
{
    va_list ap;
    char *m, *full;

    va_start(ap, f);
    m = vfmt(f, ap);
    va_end(ap);
    full = fmt("%s:%u:%u: %s", cx->file, line, col, m);
    free(m);
    push_err(cx, line, col, full);
}

static int err_cmp(const void *a, const void *b)
{
    const struct conf_err *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return 0;
}

void conf_ctx_flush(struct conf_ctx *cx, struct conf_errors *out)
{
    /* Insertion sort: stable, and error lists are short. */
    for (size_t i = 1; i < cx->n_errs; i++) {
        struct conf_err e = cx->errs[i];
        size_t j = i;
        while (j > 0 && err_cmp(&cx->errs[j - 1], &e) > 0) {
            cx->errs[j] = cx->errs[j - 1];
            j--;
        }
        cx->errs[j] = e;
    }
    for (size_t i = 0; i < cx->n_errs; i++) {
        if (out) {
            out->msgs = xrealloc(out->msgs, (out->n + 1) * sizeof(*out->msgs));
            out->msgs[out->n++] = cx->errs[i].msg;
        } else {
            free(cx->errs[i].msg);
        }
    }
    free(cx->errs);
    cx->errs = NULL;
    cx->n_errs = cx->cap_errs = 0;
}

void conf_errors_add(struct conf_errors *e, const char *f, ...)
{
    va_list ap;
    char *m;

    if (!e)
        return;
    va_start(ap, f);
    m = vfmt(f, ap);
    va_end(ap);
    e->msgs = xrealloc(e->msgs, (e->n + 1) * sizeof(*e->msgs));
    e->msgs[e->n++] = m;
}

void conf_errors_free(struct conf_errors *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = 0;
}
