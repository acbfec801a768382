/* conf_node.h - the generic document tree (scalars, sequences, mappings
 * with source marks) that both the YAML loader and the JSON loader
 * (conf_json.c) produce, and the error collector every stage of loading
 * writes to. Private to src/conf, except that the admin API reads small
 * request bodies (POST /cache/purge) with the JSON parser. The schema code
 * (conf_build.c, conf_route.c) only ever sees this tree, never libyaml. */
#ifndef PORTICO_CONF_CONF_NODE_H
#define PORTICO_CONF_CONF_NODE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

enum cnode_type { CNODE_SCALAR = 0, CNODE_SEQ, CNODE_MAP };

struct cnode {
    enum cnode_type type;
    unsigned line, col;  /* 1-based source position; 0 when unknown (JSON) */
    struct cnode *parent; /* NULL for the root */
    bool is_key;          /* a mapping key (parent is that mapping) */
    size_t idx;           /* position within the parent sequence/mapping */
    /* CNODE_SCALAR */
    char *s;     /* NUL-terminated; may contain NULs inside when len says so */
    size_t len;
    bool quoted; /* written quoted (or a JSON string): never null/bool by form */
    /* CNODE_SEQ: kids are the items. CNODE_MAP: keys[i] -> kids[i]. */
    struct cnode **kids;
    struct cnode **keys;
    size_t n, cap;
};

struct cnode *cnode_new(enum cnode_type type, unsigned line, unsigned col);
struct cnode *cnode_new_scalar(const char *s, size_t len, bool quoted, unsigned line,
                               unsigned col);
void cnode_free(struct cnode *n);
/* Deep copy (YAML aliases); the copy has no parent. */
struct cnode *cnode_clone(const struct cnode *n);
/* Appends an item to a sequence (takes ownership). */
void cnode_seq_push(struct cnode *seq, struct cnode *item);
/* Appends key -> value to a mapping (takes ownership of both). The caller
 * checks for duplicates first (cnode_map_get). */
void cnode_map_put(struct cnode *map, struct cnode *key, struct cnode *value);
/* Value for a scalar key in a mapping, or NULL. */
struct cnode *cnode_map_get(const struct cnode *map, const char *key);
/* Key node for a value that sits in a mapping, or NULL. */
const struct cnode *cnode_key_of(const struct cnode *value);
/* A plain scalar "", "~", "null" (any case): YAML's null. */
bool cnode_is_null(const struct cnode *n);
/* "a mapping", "a sequence", "a string" - for type error messages. */
const char *cnode_type_name(const struct cnode *n);
/* JSON pointer (RFC 6901) of the node, e.g. "/upstreams/api/servers/0/address";
 * for a key node, the pointer of the member it names. Returns a malloc'd string
 * ("" for the root). */
char *cnode_pointer(const struct cnode *n);

/* ---- error collection ---- */

struct conf_err {
    unsigned line, col;
    char *msg; /* fully formatted "file:line:col: message" */
};

struct conf_ctx {
    const char *file;  /* name used in messages */
    bool json_pointer; /* locate by JSON pointer ("/a/b: msg") instead of line:col */
    struct conf_err *errs;
    size_t n_errs, cap_errs;
    size_t n_nodes; /* nodes created, bounded to stop alias bombs */
    bool upstreams_broken; /* `upstreams` unusable: routes don't report names */
};

/* Records an error located at node `at` (NULL: the whole document). */
void conf_err(struct conf_ctx *cx, const struct cnode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records an error at an explicit 1-based position (syntax errors). */
void conf_err_at(struct conf_ctx *cx, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sorts the collected errors by position (stable) and moves them to out. */
void conf_ctx_flush(struct conf_ctx *cx, struct conf_errors *out);

/* ---- loaders and the schema ---- */

/* Parses a YAML document into a tree; NULL (errors recorded) on syntax errors. */
struct cnode *conf_yaml_parse(struct conf_ctx *cx, const char *data, size_t len);
/* Builds a validated snapshot from a tree; NULL when any error was recorded.
 * The tree stays owned by the caller. */
struct conf *conf_build(struct conf_ctx *cx, const struct cnode *root);
/* Loads a whole snapshot from a tree (used by loaders of other formats):
 * `name` appears in messages; with json_pointer, errors are located by JSON
 * pointer instead of line:col. */
struct conf *conf_load_tree(const char *name, const struct cnode *root, bool json_pointer,
                            struct conf_errors *errs);

/* Parses strict JSON (RFC 8259) into a tree (conf_json.c). NULL on the
 * first error, with a malloc'd message in *err ("invalid JSON at line L,
 * column C (byte B): ..."). */
struct cnode *conf_json_parse(const char *data, size_t len, char **err);
/* The tree as indented JSON text (malloc'd, NUL-terminated, ends in '\n'). */
char *conf_json_render(const struct cnode *n, size_t *len);

/* Frees a (possibly partly built) snapshot regardless of its refs. */
void conf_free(struct conf *c);

#endif
