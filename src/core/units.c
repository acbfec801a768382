/* units.c - durations and sizes as written in the config ("500ms", "16k").
 * Strict on purpose: no signs, spaces, fractions or empty numbers, and any
 * overflow of uint64_t is an error rather than a silently wrapped value. */
#include "core/units.h"

#include <stdbool.h>

/* Parses the leading decimal digits of s[0..len) into *out. Returns the number
 * of digits consumed (0 when s does not start with a digit), or -1 on
 * overflow. */
static int parse_digits(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;

    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return (int)(i > 0x7fffffff ? 0x7fffffff : i);
}

static bool mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

int parse_duration_ms(const char *s, size_t len, uint64_t *out_ms)
{
    uint64_t v, mult;
    int nd;

    if (!s || len == 0)
        return -1;
    nd = parse_digits(s, len, &v);
    if (nd <= 0)
        return -1;
    s += nd;
    len -= (size_t)nd;

    /* Units are lower case only: "5M" would be ambiguous to a reader. */
    if (len == 0 || (len == 1 && s[0] == 's'))
        mult = 1000;
    else if (len == 2 && s[0] == 'm' && s[1] == 's')
        mult = 1;
    else if (len == 1 && s[0] == 'm')
        mult = 60ull * 1000;
    else if (len == 1 && s[0] == 'h')
        mult = 3600ull * 1000;
    else if (len == 1 && s[0] == 'd')
        mult = 86400ull * 1000;
    else
        return -1;
    return mul_ok(v, mult, out_ms) ? 0 : -1;
}

int parse_size(const char *s, size_t len, uint64_t *out)
{
    uint64_t v, mult = 1;
    int nd;

    if (!s || len == 0)
        return -1;
    nd = parse_digits(s, len, &v);
    if (nd <= 0)
        return -1;
    s += nd;
    len -= (size_t)nd;

    if (len > 0) {
        switch (s[0]) {
        case 'k': case 'K': mult = 1ull << 10; s++; len--; break;
        case 'm': case 'M': mult = 1ull << 20; s++; len--; break;
        case 'g': case 'G': mult = 1ull << 30; s++; len--; break;
        default: break;
        }
    }
    if (len == 1 && (s[0] == 'b' || s[0] == 'B'))
        len = 0;
    if (len != 0)
        return -1;
    return mul_ok(v, mult, out) ? 0 : -1;
}
