/* Unit tests for core/units.c: durations and sizes. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/units.h"

static int dur(const char *s, uint64_t *out)
{
    return parse_duration_ms(s, strlen(s), out);
}

static int size(const char *s, uint64_t *out)
{
    return parse_size(s, strlen(s), out);
}

Test(units, durations_good)
{
    uint64_t v;
    cr_assert_eq(dur("500ms", &v), 0);
    cr_assert_eq(v, 500);
    cr_assert_eq(dur("5s", &v), 0);
    cr_assert_eq(v, 5000);
    cr_assert_eq(dur("5", &v), 0, "a bare number is seconds");
    cr_assert_eq(v, 5000);
    cr_assert_eq(dur("2m", &v), 0);
    cr_assert_eq(v, 120000);
    cr_assert_eq(dur("1h", &v), 0);
    cr_assert_eq(v, 3600000);
    cr_assert_eq(dur("2d", &v), 0);
    cr_assert_eq(v, 2ull * 86400000);
    cr_assert_eq(dur("0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(dur("0ms", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(dur("007s", &v), 0);
    cr_assert_eq(v, 7000);
    /* len bounds the input: "10s" read as "10" */
    cr_assert_eq(parse_duration_ms("10sXX", 2, &v), 0);
    cr_assert_eq(v, 10000);
}

Test(units, durations_bad)
{
    uint64_t v = 42;
    const char *bad[] = {"", "fast", "s", "ms", "-1s", "+1s", "1.5s", "1 s", " 1s", "1s ",
                         "1sec", "1S", "1M", "1H", "1msx", "1mss", "5w", "1e3", "0x10",
                         "1ms1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(dur(bad[i], &v), -1, "'%s' should be rejected", bad[i]);
    cr_assert_eq(parse_duration_ms(NULL, 0, &v), -1);
}

Test(units, durations_overflow)
{
    uint64_t v;
    /* UINT64_MAX ms itself is fine; one more digit overflows the number. */
    cr_assert_eq(dur("18446744073709551615ms", &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(dur("18446744073709551616ms", &v), -1);
    cr_assert_eq(dur("99999999999999999999999", &v), -1);
    /* the multiplication overflows */
    cr_assert_eq(dur("18446744073709551615s", &v), -1);
    cr_assert_eq(dur("213503982334601d", &v), -1);
    cr_assert_eq(dur("213503982334d", &v), 0);
}

Test(units, sizes_good)
{
    uint64_t v;
    cr_assert_eq(size("512", &v), 0);
    cr_assert_eq(v, 512);
    cr_assert_eq(size("0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(size("16k", &v), 0);
    cr_assert_eq(v, 16384);
    cr_assert_eq(size("16K", &v), 0);
    cr_assert_eq(v, 16384);
    cr_assert_eq(size("16kb", &v), 0);
    cr_assert_eq(v, 16384);
    cr_assert_eq(size("16KB", &v), 0);
    cr_assert_eq(v, 16384);
    cr_assert_eq(size("10m", &v), 0);
    cr_assert_eq(v, 10u << 20);
    cr_assert_eq(size("1g", &v), 0);
    cr_assert_eq(v, 1u << 30);
    cr_assert_eq(size("1Gb", &v), 0);
    cr_assert_eq(v, 1u << 30);
    cr_assert_eq(size("100b", &v), 0);
    cr_assert_eq(v, 100);
}

Test(units, sizes_bad)
{
    uint64_t v;
    const char *bad[] = {"", "big", "k", "-1", "+1", "1.5k", "1 k", " 1k", "1k ", "1t",
                         "1kk", "1bk", "1kbb", "0x10", "1e3", "1kib"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(size(bad[i], &v), -1, "'%s' should be rejected", bad[i]);
}

Test(units, sizes_overflow)
{
    uint64_t v;
    cr_assert_eq(size("18446744073709551615", &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(size("18446744073709551616", &v), -1);
    cr_assert_eq(size("17179869184g", &v), -1); /* 2^34 * 2^30 = 2^64 */
    cr_assert_eq(size("17179869183g", &v), 0);
    cr_assert_eq(size("18014398509481984k", &v), -1); /* 2^54 * 2^10 */
}
