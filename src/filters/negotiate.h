/* negotiate.h - choosing a response content coding from the request's
 * Accept-Encoding (RFC 9110 12.5.3) and the route's preference order, and
 * deciding whether a response is worth compressing at all. */
#ifndef PORTICO_FILTERS_NEGOTIATE_H
#define PORTICO_FILTERS_NEGOTIATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "core/str.h"

/* Picks the coding for a response from `ae` (the Accept-Encoding field
 * values joined by ", ", or STR_NULL when the request had none) and the
 * server preference order pref[0..n). Highest q-value wins, ties go to the
 * earlier entry of pref; "*" covers codings not listed; q=0 excludes. Returns
 * ZALG_IDENTITY when none is acceptable (also when there is no header:
 * an absent Accept-Encoding is treated as "identity only" for safety). */
enum zalg ae_negotiate(struct str ae, const uint8_t *pref, size_t n);

/* True when media type `ctype` (a Content-Type value; parameters ignored,
 * case-insensitive) is in types[0..n) (an entry "text/" followed by a star matches the family). */
bool ctype_allowed(struct str ctype, char *const *types, size_t n);

/* The default allowlist used when a route does not give `types`:
 * every text/ type, application/json, application/javascript, application/xml,
 * application/wasm, image/svg+xml, and +json / +xml suffixed types. */
bool ctype_compressible_default(struct str ctype);

#endif
