/* jbuf.h - a growable text buffer for writing JSON: appending raw text,
 * printf-style text and correctly escaped JSON strings (RFC 8259). Used by
 * the config renderer (conf_json.c) and the admin API answers. The buffer is
 * always NUL-terminated once anything was appended. */
#ifndef PORTICO_CORE_JBUF_H
#define PORTICO_CORE_JBUF_H

#include <stddef.h>

struct jbuf {
    char *p; /* malloc'd, owned; NULL until the first append */
    size_t len, cap;
};

/* Appends n bytes as they are. */
void jb_raw(struct jbuf *b, const char *s, size_t n);
/* Appends a NUL-terminated string as it is. */
void jb_cstr(struct jbuf *b, const char *s);
void jb_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string: '"', '\\' and control characters
 * are escaped (\n, \t, ... or \u00XX), as is DEL; bytes >= 0x80 are copied
 * (the text is UTF-8 already). A NUL byte becomes \u0000. */
void jb_str(struct jbuf *b, const char *s, size_t n);
/* Takes the text out of b (NUL-terminated, never NULL; the caller frees it);
 * *len gets its length when len is not NULL. b is empty afterwards. */
char *jb_take(struct jbuf *b, size_t *len);
void jb_free(struct jbuf *b);

#endif
