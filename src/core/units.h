/* units.h - parsing of the config's durations ("500ms", "5s", "2m", "1h") and
 * sizes ("512", "16k", "10m", "1g"). */
#ifndef PORTICO_CORE_UNITS_H
#define PORTICO_CORE_UNITS_H

#include <stdint.h>
#include <stddef.h>

/* Parses a duration into milliseconds. A bare number is seconds. Accepts the
 * units ms, s, m, h, d. Returns 0, or -1 on a malformed or overflowing value. */
int parse_duration_ms(const char *s, size_t len, uint64_t *out_ms);

/* Parses a size in bytes: a number with an optional k/m/g suffix (powers of
 * 1024, case-insensitive, an optional trailing 'b' allowed). Returns 0 or -1. */
int parse_size(const char *s, size_t len, uint64_t *out);

#endif
