/* Unit tests for src/http/msg.c: method ids, status texts, header lookup. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/msg.h"

Test(http_msg, method_round_trip)
{
    for (int m = HTTP_M_GET; m < HTTP_M__COUNT; m++) {
        const char *name = http_method_name((enum http_method)m);
        cr_assert_gt(strlen(name), 0);
        cr_assert_eq(http_method_lookup(str_c(name)), m, "%s", name);
    }
    cr_assert_str_eq(http_method_name(HTTP_M_GET), "GET");
    cr_assert_str_eq(http_method_name(HTTP_M_PATCH), "PATCH");
    cr_assert_str_eq(http_method_name(HTTP_M_OTHER), "");
    cr_assert_str_eq(http_method_name((enum http_method)99), "");
}

Test(http_msg, method_lookup_exact)
{
    cr_assert_eq(http_method_lookup(STR_LIT("get")), HTTP_M_OTHER); /* case-sensitive */
    cr_assert_eq(http_method_lookup(STR_LIT("GE")), HTTP_M_OTHER);
    cr_assert_eq(http_method_lookup(STR_LIT("GETS")), HTTP_M_OTHER);
    cr_assert_eq(http_method_lookup(STR_LIT("POS")), HTTP_M_OTHER);
    cr_assert_eq(http_method_lookup(STR_LIT("PUTT")), HTTP_M_OTHER);
    cr_assert_eq(http_method_lookup(STR_LIT("CONNECTX")), HTTP_M_OTHER);
    cr_assert_eq(http_method_lookup(STR_NULL), HTTP_M_OTHER);
    cr_assert_eq(http_method_lookup(str_make("GETX", 3)), HTTP_M_GET);
}

Test(http_msg, status_text)
{
    cr_assert_str_eq(http_status_text(200), "OK");
    cr_assert_str_eq(http_status_text(404), "Not Found");
    cr_assert_str_eq(http_status_text(414), "URI Too Long");
    cr_assert_str_eq(http_status_text(431), "Request Header Fields Too Large");
    cr_assert_str_eq(http_status_text(502), "Bad Gateway");
    cr_assert_str_eq(http_status_text(505), "HTTP Version Not Supported");
    cr_assert_str_eq(http_status_text(599), "Unknown");
    cr_assert_str_eq(http_status_text(-1), "Unknown");
}

Test(http_msg, header_find)
{
    struct http_header h[] = {
        {STR_LIT("Host"), STR_LIT("a")},
        {STR_LIT("X-A"), STR_LIT("1")},
        {STR_LIT("x-a"), STR_LIT("2")},
        {STR_LIT("X-AB"), STR_LIT("3")},
    };
    cr_assert_eq(http_header_find(h, 4, STR_LIT("host"), 0), 0);
    cr_assert_eq(http_header_find(h, 4, STR_LIT("X-a"), 0), 1);
    cr_assert_eq(http_header_find(h, 4, STR_LIT("X-a"), 2), 2);
    cr_assert_eq(http_header_find(h, 4, STR_LIT("X-a"), 3), -1);
    cr_assert_eq(http_header_find(h, 4, STR_LIT("X-a"), -5), 1);
    cr_assert_eq(http_header_find(h, 4, STR_LIT("X-ABC"), 0), -1);
    cr_assert_eq(http_header_find(h, 2, STR_LIT("X-AB"), 0), -1); /* n bounds the search */
    cr_assert_eq(http_header_find(h, 0, STR_LIT("Host"), 0), -1);
}
