/* admin_path.h - request-path handling shared by the admin API's handlers:
 * splitting a path into segments and percent-decoding one segment (names and
 * addresses such as "127.0.0.1%3A3000"). */
#ifndef PORTICO_ADMIN_ADMIN_PATH_H
#define PORTICO_ADMIN_ADMIN_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

/* Splits path into at most max segments (no empty ones). Returns the count,
 * or -1 when there are more. */
int admin_path_split(struct str path, struct str *segs, int max);
/* Percent-decodes one segment into out (cap bytes, NUL-terminated). Returns
 * false on a bad escape, a NUL or an overflow. */
bool admin_path_decode(struct str seg, char *out, size_t cap);

#endif
