/* Unit tests for core/str.h: the comma-list splitter. */
#include <criterion/criterion.h>

#include "core/str.h"

static int split(const char *in, struct str *items, int max)
{
    struct str rest = str_c(in), item;
    int n = 0;
    while (str_list_next(&rest, &item)) {
        cr_assert_lt(n, max);
        items[n++] = item;
    }
    return n;
}

Test(str, list_elements_are_trimmed)
{
    struct str it[8];
    cr_assert_eq(split(" a ,\tb-c , d", it, 8), 3);
    cr_assert(str_eq_lit_ci(it[0], "a"));
    cr_assert(str_eq_lit_ci(it[1], "b-c"));
    cr_assert(str_eq_lit_ci(it[2], "d"));
}

Test(str, empty_elements_come_back_empty)
{
    struct str it[8];
    cr_assert_eq(split("a,,b,", it, 8), 3, "the trailing comma ends the list");
    cr_assert_eq(it[1].len, 0);
    cr_assert(str_eq_lit_ci(it[2], "b"));
    cr_assert_eq(split(" , ", it, 8), 2);
    cr_assert_eq(it[0].len + it[1].len, 0);
}

Test(str, empty_list)
{
    struct str it[1];
    cr_assert_eq(split("", it, 1), 0);
}

Test(str, a_name_inside_another_is_not_an_element)
{
    struct str it[4];
    int n = split("X-Accept-Encoding-Hint, Accept-Language", it, 4);
    cr_assert_eq(n, 2);
    for (int i = 0; i < n; i++)
        cr_assert(!str_eq_lit_ci(it[i], "accept-encoding"));
}
