/* conf_yaml.c - YAML text to the generic document tree (conf_node.h) through
 * libyaml's event parser. Owns: syntax errors with libyaml's own problem text
 * and mark, duplicate and non-scalar mapping keys, anchors and aliases (an
 * alias is a deep copy, bounded so a "billion laughs" document fails fast). */
#include <yaml.h>

#include <string.h>

#include "conf/conf_node.h"
#include "core/common.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 1000000

struct anchor {
    char *name;
    const struct cnode *node; /* owned by the tree */
};

struct yctx {
    yaml_parser_t parser;
    struct conf_ctx *cx;
    const char *data;
    size_t len;
    struct anchor *anchors;
    size_t n_anchors;
    struct cnode *trash; /* discarded pairs: anchors may still point into them */
    bool failed; /* a syntax error was reported: stop */
};

static size_t count_nodes(const struct cnode *n)
{
    size_t c = 1;
    for (size_t i = 0; i < n->n; i++)
        c += count_nodes(n->kids[i]) + (n->keys ? 1 : 0);
    return c;
}

/* Reports libyaml's error. Reader errors (bad encoding) only carry a byte
 * offset, so the line and column are computed from the text. */
static void syntax_error(struct yctx *y)
{
    yaml_parser_t *p = &y->parser;
    unsigned line = (unsigned)p->problem_mark.line + 1, col = (unsigned)p->problem_mark.column + 1;
    const char *problem = p->problem ? p->problem : "unknown error";

    y->failed = true;
    if (p->error == YAML_READER_ERROR) {
        size_t off = MIN(p->problem_offset, y->len);
        line = 1;
        col = 1;
        for (size_t i = 0; i < off; i++) {
            if (y->data[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        conf_err_at(y->cx, line, col, "invalid text: %s", problem);
    } else if (p->context) {
        conf_err_at(y->cx, line, col, "YAML syntax error: %s (%s at line %u, column %u)", problem,
                    p->context, (unsigned)p->context_mark.line + 1,
                    (unsigned)p->context_mark.column + 1);
    } else {
        conf_err_at(y->cx, line, col, "YAML syntax error: %s", problem);
    }
}

static bool next_event(struct yctx *y, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&y->parser, ev)) {
        syntax_error(y);
        return false;
    }
    return true;
}

static void add_anchor(struct yctx *y, const yaml_char_t *name, const struct cnode *n)
{
    if (!name)
        return;
    y->anchors = xrealloc(y->anchors, (y->n_anchors + 1) * sizeof(*y->anchors));
    y->anchors[y->n_anchors++] = (struct anchor){xstrdup((const char *)name), n};
}

static const struct cnode *find_anchor(struct yctx *y, const char *name)
{
    /* Latest definition wins: YAML allows re-defining an anchor. */
    for (size_t i = y->n_anchors; i-- > 0;)
        if (strcmp(y->anchors[i].name, name) == 0)
            return y->anchors[i].node;
    return NULL;
}

static struct cnode *parse_node(struct yctx *y, yaml_event_t *ev, unsigned depth);

/* Parses the items of a sequence or mapping whose start event was just read. */
static bool parse_children(struct yctx *y, struct cnode *parent, unsigned depth)
{
    for (;;) {
        yaml_event_t ev;
        struct cnode *key, *val;

        if (!next_event(y, &ev))
            return false;
        if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return true;
        }
        key = parse_node(y, &ev, depth + 1); /* consumes ev */
        if (!key)
            return false;
        if (parent->type == CNODE_SEQ) {
            cnode_seq_push(parent, key);
            continue;
        }
        if (!next_event(y, &ev)) {
            cnode_free(key);
            return false;
        }
        val = parse_node(y, &ev, depth + 1);
        if (!val) {
            cnode_free(key);
            return false;
        }
        if (key->type != CNODE_SCALAR) {
            conf_err(y->cx, key, "mapping keys must be plain strings, got %s",
                     cnode_type_name(key));
            cnode_seq_push(y->trash, key);
            cnode_seq_push(y->trash, val);
        } else if (cnode_map_get(parent, key->s)) {
            /* Keep the first; the position points at the repeated key. */
            conf_err(y->cx, key, "duplicate key '%s'", key->s);
            cnode_seq_push(y->trash, key);
            cnode_seq_push(y->trash, val);
        } else {
            cnode_map_put(parent, key, val);
        }
    }
}

/* Builds the node that starts with event ev (consumed). NULL on error. */
static struct cnode *parse_node(struct yctx *y, yaml_event_t *ev, unsigned depth)
{
    unsigned line = (unsigned)ev->start_mark.line + 1, col = (unsigned)ev->start_mark.column + 1;
    struct cnode *n = NULL;

    if (++y->cx->n_nodes > YAML_MAX_NODES) {
        conf_err_at(y->cx, line, col, "document too large (more than %u nodes)",
                    YAML_MAX_NODES);
        y->failed = true;
        yaml_event_delete(ev);
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = cnode_new_scalar((const char *)ev->data.scalar.value, ev->data.scalar.length,
                             ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE, line, col);
        add_anchor(y, ev->data.scalar.anchor, n);
        yaml_event_delete(ev);
        return n;
    case YAML_ALIAS_EVENT: {
        const struct cnode *target = find_anchor(y, (const char *)ev->data.alias.anchor);
        if (!target) {
            conf_err_at(y->cx, line, col, "unknown alias '*%s'", ev->data.alias.anchor);
            y->failed = true;
            yaml_event_delete(ev);
            return NULL;
        }
        y->cx->n_nodes += count_nodes(target);
        if (y->cx->n_nodes > YAML_MAX_NODES) {
            conf_err_at(y->cx, line, col, "document too large (aliases expand to more "
                        "than %u nodes)", YAML_MAX_NODES);
            y->failed = true;
            yaml_event_delete(ev);
            return NULL;
        }
        n = cnode_clone(target);
        yaml_event_delete(ev);
        return n;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        const yaml_char_t *anchor_src = ev->type == YAML_SEQUENCE_START_EVENT
                                            ? ev->data.sequence_start.anchor
                                            : ev->data.mapping_start.anchor;
        char *anchor = anchor_src ? xstrdup((const char *)anchor_src) : NULL;

        if (depth >= YAML_MAX_DEPTH) {
            conf_err_at(y->cx, line, col, "nesting deeper than %u levels", YAML_MAX_DEPTH);
            y->failed = true;
            free(anchor);
            yaml_event_delete(ev);
            return NULL;
        }
        n = cnode_new(ev->type == YAML_SEQUENCE_START_EVENT ? CNODE_SEQ : CNODE_MAP, line, col);
        yaml_event_delete(ev);
        if (!parse_children(y, n, depth)) {
            free(anchor);
            cnode_free(n);
            return NULL;
        }
        add_anchor(y, (const yaml_char_t *)anchor, n);
        free(anchor);
        return n;
    }
    default:
        /* Stream/document events cannot appear inside a node. */
        conf_err_at(y->cx, line, col, "unexpected YAML event");
        y->failed = true;
        yaml_event_delete(ev);
        return NULL;
    }
}

struct cnode *conf_yaml_parse(struct conf_ctx *cx, const char *data, size_t len)
{
    struct yctx y = {.cx = cx, .data = data, .len = len};
    struct cnode *root = NULL;
    yaml_event_t ev;
    bool done = false;

    if (!yaml_parser_initialize(&y.parser))
        abort(); /* out of memory */
    yaml_parser_set_input_string(&y.parser, (const unsigned char *)data, len);
    y.trash = cnode_new(CNODE_SEQ, 0, 0);

    while (!done && next_event(&y, &ev)) {
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            yaml_event_delete(&ev);
            break;
        case YAML_STREAM_END_EVENT:
            yaml_event_delete(&ev);
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (root) {
                conf_err_at(cx, (unsigned)ev.start_mark.line + 1,
                            (unsigned)ev.start_mark.column + 1,
                            "expected a single YAML document, found another one here");
                yaml_event_delete(&ev);
                y.failed = true;
                done = true;
                break;
            }
            yaml_event_delete(&ev);
            if (!next_event(&y, &ev)) {
                done = true;
                break;
            }
            root = parse_node(&y, &ev, 0);
            if (!root)
                done = true;
            break;
        default:
            yaml_event_delete(&ev);
            break;
        }
    }

    for (size_t i = 0; i < y.n_anchors; i++)
        free(y.anchors[i].name);
    free(y.anchors);
    cnode_free(y.trash);
    yaml_parser_delete(&y.parser);
    if (y.failed) {
        cnode_free(root);
        return NULL;
    }
    if (!root) /* empty document: an empty mapping, so "missing listeners" reports */
        root = cnode_new(CNODE_MAP, 1, 1);
    return root;
}
