/* conf_get.c - typed accessors over the document tree (see conf_schema.h):
 * the one place the wording of type and value errors is decided. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_schema.h"
#include "core/common.h"
#include "core/tmpl.h"
#include "core/units.h"

/* Scalar values are quoted in messages; long ones are cut. */
#define SHOW_MAX 60

/* "'text'" for scalars (at most SHOW_MAX bytes), else "a mapping". Returns a
 * pointer into buf or a static string. */
static const char *show(const struct cnode *n, char *buf, size_t cap)
{
    if (n->type != CNODE_SCALAR)
        return cnode_type_name(n);
    if (n->len > SHOW_MAX)
        snprintf(buf, cap, "'%.*s...'", SHOW_MAX, n->s);
    else
        snprintf(buf, cap, "'%s'", n->s);
    return buf;
}

const char *sch_name(const struct cnode *n)
{
    const struct cnode *k = cnode_key_of(n);
    return k ? k->s : "item";
}

bool sch_map(struct conf_ctx *cx, const struct cnode *n)
{
    char b[SHOW_MAX + 8];
    if (n->type == CNODE_MAP)
        return true;
    conf_err(cx, n, "'%s' must be a mapping, got %s", sch_name(n), show(n, b, sizeof(b)));
    return false;
}

bool sch_seq(struct conf_ctx *cx, const struct cnode *n)
{
    char b[SHOW_MAX + 8];
    if (n->type == CNODE_SEQ)
        return true;
    conf_err(cx, n, "'%s' must be a list, got %s", sch_name(n), show(n, b, sizeof(b)));
    return false;
}

/* Finds s in a NULL-terminated list whose entries are "key" or
 * "key=message"; returns the entry or NULL. */
static const char *in_list(const char *const *list, const char *s)
{
    size_t n = strlen(s);
    for (; list && *list; list++)
        if (strncmp(*list, s, n) == 0 && ((*list)[n] == '\0' || (*list)[n] == '='))
            return *list;
    return NULL;
}

void sch_keys(struct conf_ctx *cx, const struct cnode *map, const char *what,
              const char *const *known, const char *const *unsupported)
{
    for (size_t i = 0; i < map->n; i++) {
        const struct cnode *k = map->keys[i];
        const char *u;
        if (k->type != CNODE_SCALAR || in_list(known, k->s))
            continue;
        if ((u = in_list(unsupported, k->s))) {
            if (u[k->len] == '=')
                conf_err(cx, k, "%s", u + k->len + 1);
            else
                conf_err(cx, k, "'%s' is not supported yet", k->s);
        } else {
            char list[512];
            size_t off = 0;
            for (const char *const *p = known; *p; p++) {
                int w = snprintf(list + off, sizeof(list) - off, "%s%s", off ? ", " : "", *p);
                if (w < 0 || (size_t)w >= sizeof(list) - off)
                    break;
                off += (size_t)w;
            }
            conf_err(cx, k, "unknown key '%s' in %s (expected one of: %s)", k->s, what, list);
        }
    }
}

const struct cnode *sch_require(struct conf_ctx *cx, const struct cnode *map, const char *key,
                                const char *what)
{
    const struct cnode *v = cnode_map_get(map, key);
    if (!v)
        conf_err(cx, map, "missing required key '%s' in %s", key, what);
    return v;
}

bool sch_str(struct conf_ctx *cx, const struct cnode *n, const char **out)
{
    if (n->type != CNODE_SCALAR) {
        conf_err(cx, n, "'%s' must be a string, got %s", sch_name(n), cnode_type_name(n));
        return false;
    }
    *out = n->s;
    return true;
}

bool sch_nonempty(struct conf_ctx *cx, const struct cnode *n, const char **out)
{
    if (!sch_str(cx, n, out))
        return false;
    if (n->len == 0) {
        conf_err(cx, n, "'%s' must not be empty", sch_name(n));
        return false;
    }
    if (strlen(n->s) != n->len) {
        conf_err(cx, n, "'%s' must not contain NUL bytes", sch_name(n));
        return false;
    }
    return true;
}

bool sch_bool(struct conf_ctx *cx, const struct cnode *n, bool *out)
{
    char b[SHOW_MAX + 8];
    if (n->type == CNODE_SCALAR && strcmp(n->s, "true") == 0) {
        *out = true;
        return true;
    }
    if (n->type == CNODE_SCALAR && strcmp(n->s, "false") == 0) {
        *out = false;
        return true;
    }
    conf_err(cx, n, "'%s' must be true or false, got %s", sch_name(n), show(n, b, sizeof(b)));
    return false;
}

bool sch_uint(struct conf_ctx *cx, const struct cnode *n, uint64_t min, uint64_t max,
              uint64_t *out)
{
    char b[SHOW_MAX + 8];
    uint64_t v = 0;
    bool ok = n->type == CNODE_SCALAR && n->len > 0 && n->len <= 19;

    for (size_t i = 0; ok && i < n->len; i++) {
        if (n->s[i] < '0' || n->s[i] > '9')
            ok = false;
        else
            v = v * 10 + (uint64_t)(n->s[i] - '0');
    }
    if (!ok || v < min || v > max) {
        conf_err(cx, n, "'%s' must be an integer between %llu and %llu, got %s", sch_name(n),
                 (unsigned long long)min, (unsigned long long)max, show(n, b, sizeof(b)));
        return false;
    }
    *out = v;
    return true;
}

bool sch_duration(struct conf_ctx *cx, const struct cnode *n, uint64_t *out_ms)
{
    char b[SHOW_MAX + 8];
    if (n->type != CNODE_SCALAR || parse_duration_ms(n->s, n->len, out_ms) < 0) {
        conf_err(cx, n, "expected a duration like 500ms, 5s, 2m, 1h, got %s",
                 show(n, b, sizeof(b)));
        return false;
    }
    return true;
}

bool sch_size(struct conf_ctx *cx, const struct cnode *n, uint64_t min, uint64_t max,
              const char *min_txt, const char *max_txt, uint64_t *out)
{
    char b[SHOW_MAX + 8];
    if (n->type != CNODE_SCALAR || parse_size(n->s, n->len, out) < 0) {
        conf_err(cx, n, "expected a size like 512, 16k, 10m, 1g, got %s", show(n, b, sizeof(b)));
        return false;
    }
    if (*out < min || *out > max) {
        conf_err(cx, n, "'%s' must be between %s and %s, got %s", sch_name(n), min_txt, max_txt,
                 show(n, b, sizeof(b)));
        return false;
    }
    return true;
}

bool sch_enum(struct conf_ctx *cx, const struct cnode *n, const char *what,
              const char *const *names, unsigned *out)
{
    char b[SHOW_MAX + 8], list[256];
    size_t off = 0;

    if (n->type == CNODE_SCALAR) {
        for (unsigned i = 0; names[i]; i++) {
            if (strcmp(names[i], n->s) == 0) {
                *out = i;
                return true;
            }
        }
    }
    for (const char *const *p = names; *p; p++) {
        int w = snprintf(list + off, sizeof(list) - off, "%s%s", off ? ", " : "", *p);
        if (w < 0 || (size_t)w >= sizeof(list) - off)
            break;
        off += (size_t)w;
    }
    if (n->type == CNODE_SCALAR)
        conf_err(cx, n, "unknown %s %s (expected one of: %s)", what, show(n, b, sizeof(b)), list);
    else
        conf_err(cx, n, "'%s' must be one of: %s, got %s", sch_name(n), list,
                 cnode_type_name(n));
    return false;
}

struct tmpl *sch_tmpl(struct conf_ctx *cx, const struct cnode *n)
{
    const char *s, *err = NULL;
    size_t off = 0;
    struct tmpl *t;

    if (!sch_str(cx, n, &s))
        return NULL;
    if (strlen(s) != n->len) {
        conf_err(cx, n, "'%s' must not contain NUL bytes", sch_name(n));
        return NULL;
    }
    t = tmpl_compile(s, &err, &off);
    if (!t)
        conf_err(cx, n, "invalid template at offset %zu: %s", off, err);
    return t;
}

bool sch_is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c && strchr("!#$%&'*+-.^_`|~", c));
        if (!ok)
            return false;
    }
    return true;
}
