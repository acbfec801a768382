/* Unit tests for core/str.h: the separator and comma-list splitters. */
#include <criterion/criterion.h>
#include <string.h>

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

Test(str, split_next_keeps_whitespace_and_any_separator)
{
    struct str rest = str_c("gzip ; q=0.5;x"), a = str_split_next(&rest, ';');
    cr_assert_eq(a.len, 5);
    cr_assert_eq(memcmp(a.p, "gzip ", 5), 0, "untrimmed");
    struct str b = str_split_next(&rest, ';');
    cr_assert_eq(b.len, 6);
    cr_assert_eq(memcmp(b.p, " q=0.5", 6), 0);
    struct str c = str_split_next(&rest, ';');
    cr_assert_eq(c.len, 1);
    cr_assert_eq(rest.len, 0, "the last piece takes the rest");
    struct str none = str_split_next(&rest, ';');
    cr_assert_eq(none.len, 0);
}
