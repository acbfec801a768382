/* conf_json.c - JSON text <-> the generic document tree (conf_node.h), for
 * the admin API's GET and PUT /config. The parser is strict RFC 8259: one
 * value and nothing else but whitespace, strings with every escape (\u
 * surrogate pairs become one UTF-8 sequence; lone surrogates and invalid
 * UTF-8 are errors), exact number grammar (kept as text, so big numbers lose
 * nothing), true/false/null, nesting bounded at CONF_JSON_MAX_DEPTH, and
 * duplicate object keys refused. It stops at the first error and names its
 * position (line, column and byte offset). Strings become quoted scalars;
 * numbers, true, false and null plain ones, which is how the YAML loader
 * would have read the same values, so the schema code sees no difference.
 * The renderer is the reverse: plain scalars that read as JSON numbers,
 * booleans or YAML nulls are written as such, everything else as strings. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_node.h"
#include "core/common.h"
#include "core/jbuf.h"

#define CONF_JSON_MAX_DEPTH 64

struct jparse {
    const char *p;   /* the text */
    size_t len, off; /* length, read position */
    char *err;       /* first error (malloc'd) */
    size_t err_off;
};

static void position(const struct jparse *j, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < j->len; i++) {
        if (j->p[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void fail_at(struct jparse *j, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_at(struct jparse *j, size_t off, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    unsigned line, col;

    if (j->err)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    position(j, off, &line, &col);
    if (asprintf(&j->err, "invalid JSON at line %u, column %u (byte %zu): %s", line, col, off,
                 msg) < 0)
        abort();
    j->err_off = off;
}

/* "'x'" for a printable byte, else "byte 0xNN", or "end of input". */
static const char *what_at(const struct jparse *j, size_t off, char *buf, size_t cap)
{
    if (off >= j->len)
        return "end of input";
    unsigned char ch = (unsigned char)j->p[off];
    if (ch >= 0x21 && ch < 0x7f)
        snprintf(buf, cap, "'%c'", ch);
    else
        snprintf(buf, cap, "byte 0x%02x", ch);
    return buf;
}

static void skip_ws(struct jparse *j)
{
    while (j->off < j->len) {
        char ch = j->p[j->off];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            return;
        j->off++;
    }
}

/* Where the parser is, for messages about a container that is not linked
 * into the tree yet: one frame per open array or object. */
struct jframe {
    const struct jframe *up;
    const struct cnode *key; /* member being parsed (objects), else NULL */
    size_t idx;              /* item being parsed (arrays) */
};

/* The JSON pointer of the container of frame f ("" for the root). */
static char *frame_pointer(const struct jframe *f)
{
    struct jbuf b = {0};
    const struct jframe *chain[CONF_JSON_MAX_DEPTH + 1];
    size_t n = 0;
    for (const struct jframe *x = f ? f->up : NULL; x && n < ARRAY_SIZE(chain); x = x->up)
        chain[n++] = x;
    jb_raw(&b, "", 0);
    while (n--) {
        const struct jframe *x = chain[n];
        jb_raw(&b, "/", 1);
        if (!x->key) {
            jb_printf(&b, "%zu", x->idx);
            continue;
        }
        for (size_t i = 0; i < x->key->len; i++) {
            char ch = x->key->s[i];
            if (ch == '~')
                jb_raw(&b, "~0", 2);
            else if (ch == '/')
                jb_raw(&b, "~1", 2);
            else
                jb_raw(&b, &ch, 1);
        }
    }
    return jb_take(&b, NULL);
}

static struct cnode *node_at(const struct jparse *j, enum cnode_type type, size_t off)
{
    unsigned line, col;
    position(j, off, &line, &col);
    return cnode_new(type, line, col);
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char h = s[i];
        v <<= 4;
        if (h >= '0' && h <= '9')
            v |= h - '0';
        else if (h >= 'a' && h <= 'f')
            v |= h - 'a' + 10;
        else if (h >= 'A' && h <= 'F')
            v |= h - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static void put_utf8(struct jbuf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    jb_raw(b, u, n);
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    if (s[0] < 0x80)
        return 1;
    size_t n;
    unsigned cp, min;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1f;
        min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
        min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Reads the string whose opening quote is at j->off into out (decoded,
 * may contain NUL bytes). Returns false on error. */
static bool parse_string(struct jparse *j, struct jbuf *out)
{
    size_t start = j->off++;
    jb_raw(out, "", 0);
    for (;;) {
        if (j->off >= j->len) {
            fail_at(j, start, "unterminated string");
            return false;
        }
        unsigned char ch = (unsigned char)j->p[j->off];
        if (ch == '"') {
            j->off++;
            return true;
        }
        if (ch < 0x20) {
            fail_at(j, j->off, "control character 0x%02x in a string (escape it)", ch);
            return false;
        }
        if (ch != '\\') {
            size_t n = utf8_len((const unsigned char *)j->p + j->off, j->len - j->off);
            if (!n) {
                fail_at(j, j->off, "invalid UTF-8 in a string");
                return false;
            }
            jb_raw(out, j->p + j->off, n);
            j->off += n;
            continue;
        }
        size_t esc = j->off;
        if (j->off + 1 >= j->len) {
            fail_at(j, start, "unterminated string");
            return false;
        }
        char e = j->p[j->off + 1];
        j->off += 2;
        switch (e) {
        case '"': jb_raw(out, "\"", 1); break;
        case '\\': jb_raw(out, "\\", 1); break;
        case '/': jb_raw(out, "/", 1); break;
        case 'b': jb_raw(out, "\b", 1); break;
        case 'f': jb_raw(out, "\f", 1); break;
        case 'n': jb_raw(out, "\n", 1); break;
        case 'r': jb_raw(out, "\r", 1); break;
        case 't': jb_raw(out, "\t", 1); break;
        case 'u': {
            int cp = j->off + 4 <= j->len ? hex4(j->p + j->off) : -1;
            if (cp < 0) {
                fail_at(j, esc, "\\u must be followed by 4 hex digits");
                return false;
            }
            j->off += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                fail_at(j, esc, "lone low surrogate \\u%04x", (unsigned)cp);
                return false;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                int lo = j->off + 6 <= j->len && j->p[j->off] == '\\' && j->p[j->off + 1] == 'u'
                             ? hex4(j->p + j->off + 2)
                             : -1;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    fail_at(j, esc, "high surrogate \\u%04x not followed by a low surrogate",
                            (unsigned)cp);
                    return false;
                }
                j->off += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(out, (unsigned)cp);
            break;
        }
        default: {
            char b[16];
            fail_at(j, esc, "invalid escape \\%s in a string",
                    what_at(j, esc + 1, b, sizeof(b)));
            return false;
        }
        }
    }
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 number: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
static struct cnode *parse_number(struct jparse *j)
{
    size_t start = j->off, i = j->off;
    const char *p = j->p;
    if (i < j->len && p[i] == '-')
        i++;
    if (i >= j->len || !is_digit(p[i])) {
        fail_at(j, i, "a number needs digits");
        return NULL;
    }
    if (p[i] == '0') {
        i++;
        if (i < j->len && is_digit(p[i])) {
            fail_at(j, start, "numbers must not have leading zeros");
            return NULL;
        }
    } else {
        while (i < j->len && is_digit(p[i]))
            i++;
    }
    if (i < j->len && p[i] == '.') {
        i++;
        if (i >= j->len || !is_digit(p[i])) {
            fail_at(j, i, "digits must follow the decimal point");
            return NULL;
        }
        while (i < j->len && is_digit(p[i]))
            i++;
    }
    if (i < j->len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < j->len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= j->len || !is_digit(p[i])) {
            fail_at(j, i, "digits must follow the exponent");
            return NULL;
        }
        while (i < j->len && is_digit(p[i]))
            i++;
    }
    j->off = i;
    unsigned line, col;
    position(j, start, &line, &col);
    return cnode_new_scalar(p + start, i - start, false, line, col);
}

static struct cnode *parse_value(struct jparse *j, unsigned depth, struct jframe *up);

static struct cnode *parse_array(struct jparse *j, unsigned depth, struct jframe *up)
{
    struct cnode *seq = node_at(j, CNODE_SEQ, j->off);
    struct jframe fr = {.up = up};
    j->off++; /* '[' */
    skip_ws(j);
    if (j->off < j->len && j->p[j->off] == ']') {
        j->off++;
        return seq;
    }
    for (;;) {
        fr.idx = seq->n;
        struct cnode *v = parse_value(j, depth + 1, &fr);
        if (!v) {
            cnode_free(seq);
            return NULL;
        }
        cnode_seq_push(seq, v);
        skip_ws(j);
        char b[16];
        if (j->off < j->len && j->p[j->off] == ',') {
            j->off++;
            continue;
        }
        if (j->off < j->len && j->p[j->off] == ']') {
            j->off++;
            return seq;
        }
        fail_at(j, j->off, "expected ',' or ']' in an array, got %s",
                what_at(j, j->off, b, sizeof(b)));
        cnode_free(seq);
        return NULL;
    }
}

static struct cnode *parse_object(struct jparse *j, unsigned depth, struct jframe *up)
{
    struct cnode *map = node_at(j, CNODE_MAP, j->off);
    struct jframe fr = {.up = up};
    char b[16];
    j->off++; /* '{' */
    skip_ws(j);
    if (j->off < j->len && j->p[j->off] == '}') {
        j->off++;
        return map;
    }
    for (;;) {
        skip_ws(j);
        if (j->off >= j->len || j->p[j->off] != '"') {
            fail_at(j, j->off, "expected a string key in an object, got %s",
                    what_at(j, j->off, b, sizeof(b)));
            break;
        }
        size_t key_off = j->off;
        struct jbuf ks = {0};
        if (!parse_string(j, &ks)) {
            jb_free(&ks);
            break;
        }
        unsigned line, col;
        position(j, key_off, &line, &col);
        struct cnode *key = cnode_new_scalar(ks.p, ks.len, true, line, col);
        jb_free(&ks);
        /* Duplicate check by bytes (keys may hold NULs, so not by C string). */
        bool dup = false;
        for (size_t i = 0; i < map->n && !dup; i++)
            dup = map->keys[i]->len == key->len && memcmp(map->keys[i]->s, key->s, key->len) == 0;
        if (dup) {
            char *ptr = frame_pointer(&fr);
            fail_at(j, key_off, "duplicate key '%s' in the object at %s", key->s,
                    *ptr ? ptr : "/");
            free(ptr);
            cnode_free(key);
            break;
        }
        skip_ws(j);
        if (j->off >= j->len || j->p[j->off] != ':') {
            fail_at(j, j->off, "expected ':' after an object key, got %s",
                    what_at(j, j->off, b, sizeof(b)));
            cnode_free(key);
            break;
        }
        j->off++;
        fr.key = key;
        struct cnode *v = parse_value(j, depth + 1, &fr);
        fr.key = NULL;
        if (!v) {
            cnode_free(key);
            break;
        }
        cnode_map_put(map, key, v);
        skip_ws(j);
        if (j->off < j->len && j->p[j->off] == ',') {
            j->off++;
            continue;
        }
        if (j->off < j->len && j->p[j->off] == '}') {
            j->off++;
            return map;
        }
        fail_at(j, j->off, "expected ',' or '}' in an object, got %s",
                what_at(j, j->off, b, sizeof(b)));
        break;
    }
    cnode_free(map);
    return NULL;
}

static struct cnode *parse_value(struct jparse *j, unsigned depth, struct jframe *up)
{
    char b[16];
    skip_ws(j);
    if (j->off >= j->len) {
        fail_at(j, j->off, "expected a value, got end of input");
        return NULL;
    }
    char ch = j->p[j->off];
    if ((ch == '{' || ch == '[') && depth >= CONF_JSON_MAX_DEPTH) {
        fail_at(j, j->off, "nesting deeper than %d levels", CONF_JSON_MAX_DEPTH);
        return NULL;
    }
    switch (ch) {
    case '{':
        return parse_object(j, depth, up);
    case '[':
        return parse_array(j, depth, up);
    case '"': {
        size_t start = j->off;
        struct jbuf s = {0};
        if (!parse_string(j, &s)) {
            jb_free(&s);
            return NULL;
        }
        unsigned line, col;
        position(j, start, &line, &col);
        struct cnode *n = cnode_new_scalar(s.p, s.len, true, line, col);
        jb_free(&s);
        return n;
    }
    case 't':
    case 'f':
    case 'n': {
        static const char *const lits[] = {"true", "false", "null"};
        for (size_t i = 0; i < ARRAY_SIZE(lits); i++) {
            size_t n = strlen(lits[i]);
            if (j->len - j->off >= n && memcmp(j->p + j->off, lits[i], n) == 0) {
                unsigned line, col;
                position(j, j->off, &line, &col);
                j->off += n;
                return cnode_new_scalar(lits[i], n, false, line, col);
            }
        }
        break;
    }
    default:
        if (ch == '-' || is_digit(ch))
            return parse_number(j);
        break;
    }
    fail_at(j, j->off, "expected a value, got %s", what_at(j, j->off, b, sizeof(b)));
    return NULL;
}

struct cnode *conf_json_parse(const char *data, size_t len, char **err)
{
    struct jparse j = {.p = data, .len = len};
    char b[16];
    struct cnode *root = parse_value(&j, 0, NULL);
    if (root) {
        skip_ws(&j);
        if (j.off < j.len) {
            fail_at(&j, j.off, "unexpected %s after the value", what_at(&j, j.off, b, sizeof(b)));
            cnode_free(root);
            root = NULL;
        }
    }
    if (!root && err)
        *err = j.err;
    else
        free(j.err);
    return root;
}

/* ---- rendering ---- */

static bool json_number(const char *s, size_t len)
{
    struct jparse j = {.p = s, .len = len};
    struct cnode *n = len && (s[0] == '-' || is_digit(s[0])) ? parse_number(&j) : NULL;
    bool ok = n && j.off == len;
    cnode_free(n);
    free(j.err);
    return ok;
}

static void indent(struct jbuf *b, unsigned depth)
{
    jb_raw(b, "\n", 1);
    for (unsigned i = 0; i < depth; i++)
        jb_raw(b, "  ", 2);
}

static void render(struct jbuf *b, const struct cnode *n, unsigned depth)
{
    switch (n->type) {
    case CNODE_MAP:
    case CNODE_SEQ:
        if (n->n == 0) {
            jb_cstr(b, n->type == CNODE_MAP ? "{}" : "[]");
            return;
        }
        jb_raw(b, n->type == CNODE_MAP ? "{" : "[", 1);
        for (size_t i = 0; i < n->n; i++) {
            if (i)
                jb_raw(b, ",", 1);
            indent(b, depth + 1);
            if (n->type == CNODE_MAP) {
                const struct cnode *k = n->keys[i];
                if (k->type == CNODE_SCALAR)
                    jb_str(b, k->s, k->len);
                else
                    jb_str(b, "?", 1); /* the loaders never keep non-scalar keys */
                jb_raw(b, ": ", 2);
            }
            render(b, n->kids[i], depth + 1);
        }
        indent(b, depth);
        jb_raw(b, n->type == CNODE_MAP ? "}" : "]", 1);
        return;
    case CNODE_SCALAR:
        if (!n->quoted) {
            if (cnode_is_null(n)) {
                jb_raw(b, "null", 4);
                return;
            }
            if (strcmp(n->s, "true") == 0 || strcmp(n->s, "false") == 0 ||
                json_number(n->s, n->len)) {
                jb_raw(b, n->s, n->len);
                return;
            }
        }
        jb_str(b, n->s, n->len);
        return;
    }
}

char *conf_json_render(const struct cnode *n, size_t *len)
{
    struct jbuf b = {0};
    render(&b, n, 0);
    jb_raw(&b, "\n", 1);
    return jb_take(&b, len);
}

/* ---- the public side (conf.h) ---- */

struct conf *conf_load_json(const char *path, const char *data, size_t len,
                            struct conf_errors *errs, bool *bad_json)
{
    char *err = NULL;
    struct cnode *root = conf_json_parse(data, len, &err);
    if (bad_json)
        *bad_json = !root;
    if (!root) {
        conf_errors_add(errs, "%s", err);
        free(err);
        return NULL;
    }
    /* The file's name resolves relative paths (certificates) as the file
     * would; messages are located by JSON pointer. */
    struct conf_ctx cx = {.file = path ? path : "config", .json_pointer = true};
    struct conf *c = conf_build(&cx, root);
    conf_ctx_flush(&cx, errs);
    if (!c) {
        cnode_free(root);
        return NULL;
    }
    c->tree = root;
    c->path = path ? xstrdup(path) : NULL;
    return c;
}

char *conf_to_json(const struct conf *c, size_t *len)
{
    if (!c->tree) {
        /* Every loader keeps its tree; an empty mapping is the honest
         * answer for a snapshot built some other way. */
        struct jbuf b = {0};
        jb_cstr(&b, "{}\n");
        return jb_take(&b, len);
    }
    return conf_json_render(c->tree, len);
}
