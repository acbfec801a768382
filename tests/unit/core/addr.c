/* Unit tests for core/addr.c: address parsing, formatting, CIDR sets. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/addr.h"

static const char *fmt(const struct addr *a)
{
    static char buf[64];
    addr_str((const struct sockaddr *)&a->ss, buf, sizeof(buf));
    return buf;
}

Test(addr, parse_forms)
{
    struct addr a;
    const char *err = NULL;

    cr_assert_eq(addr_parse("127.0.0.1:3000", &a, &err), 0);
    cr_assert_eq(a.ss.ss_family, AF_INET);
    cr_assert_eq(a.len, sizeof(struct sockaddr_in));
    cr_assert_str_eq(fmt(&a), "127.0.0.1:3000");

    cr_assert_eq(addr_parse(":8080", &a, &err), 0);
    cr_assert_eq(a.ss.ss_family, AF_INET);
    cr_assert_str_eq(fmt(&a), "0.0.0.0:8080");

    cr_assert_eq(addr_parse("[::]:8443", &a, &err), 0);
    cr_assert_eq(a.ss.ss_family, AF_INET6);
    cr_assert_eq(a.len, sizeof(struct sockaddr_in6));
    cr_assert_str_eq(fmt(&a), "[::]:8443");

    cr_assert_eq(addr_parse("[::1]:1", &a, &err), 0);
    cr_assert_str_eq(fmt(&a), "[::1]:1");

    cr_assert_eq(addr_parse("localhost:65535", &a, &err), 0);
    cr_assert_str_eq(fmt(&a), "127.0.0.1:65535");

    cr_assert_eq(addr_parse("10.1.2.3:80", &a, NULL), 0, "err may be NULL");
}

Test(addr, parse_errors)
{
    struct addr a;
    const char *err;
    struct {
        const char *in, *msg;
    } cases[] = {
        {"", "empty address"},
        {"127.0.0.1", "missing port (expected host:port or :port)"},
        {"127.0.0.1:", "invalid port (expected 1..65535)"},
        {"127.0.0.1:0", "invalid port (expected 1..65535)"},
        {"127.0.0.1:65536", "invalid port (expected 1..65535)"},
        {"127.0.0.1:123456", "invalid port (expected 1..65535)"},
        {"127.0.0.1:-1", "invalid port (expected 1..65535)"},
        {"127.0.0.1:80x", "invalid port (expected 1..65535)"},
        {"example.com:80", "host must be a numeric IP address or localhost"},
        {"256.0.0.1:80", "host must be a numeric IP address or localhost"},
        {"::1:80", "IPv6 addresses must be written in brackets, like [::1]:8080"},
        {"[::1]", "missing port (expected host:port)"},
        {"[::1:80", "missing ']' after IPv6 address"},
        {"[zz]:80", "invalid IPv6 address"},
        {"[]:80", "invalid IPv6 address"},
        {"[::1]:0", "invalid port (expected 1..65535)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err = NULL;
        cr_assert_eq(addr_parse(cases[i].in, &a, &err), -1, "'%s' should fail", cases[i].in);
        cr_assert_str_eq(err, cases[i].msg, "for '%s'", cases[i].in);
    }
}

Test(addr, ip_str_and_truncation)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(80)};
    char buf[8];

    inet_pton(AF_INET, "192.168.100.200", &sin.sin_addr);
    cr_assert_eq(addr_ip_str((struct sockaddr *)&sin, buf, sizeof(buf)), 7);
    cr_assert_str_eq(buf, "192.168");
    cr_assert_eq(addr_str((struct sockaddr *)&sin, buf, sizeof(buf)), 7);
    cr_assert_str_eq(buf, "192.168");
    {
        char big[64];
        cr_assert_eq(addr_ip_str((struct sockaddr *)&sin, big, sizeof(big)), 15);
        cr_assert_str_eq(big, "192.168.100.200");
        cr_assert_eq(addr_str((struct sockaddr *)&sin, big, sizeof(big)), 18);
        cr_assert_str_eq(big, "192.168.100.200:80");
    }
}

static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

static bool match(const struct cidr *set, size_t n, const char *ip)
{
    struct sockaddr_storage ss = sa_of(ip);
    return cidr_match_any(set, n, (struct sockaddr *)&ss);
}

Test(addr, cidr_parse)
{
    struct cidr c;
    cr_assert_eq(cidr_parse("10.0.0.0/8", &c), 0);
    cr_assert_eq(c.family, AF_INET);
    cr_assert_eq(c.prefix, 8);
    cr_assert_eq(cidr_parse("127.0.0.1", &c), 0);
    cr_assert_eq(c.prefix, 32);
    cr_assert_eq(cidr_parse("::1", &c), 0);
    cr_assert_eq(c.family, AF_INET6);
    cr_assert_eq(c.prefix, 128);
    cr_assert_eq(cidr_parse("10.1.2.3/8", &c), 0, "host bits are masked");
    cr_assert_eq(c.bytes[1], 0);
    cr_assert_eq(cidr_parse("0.0.0.0/0", &c), 0);

    const char *bad[] = {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "/8",
                         "10.0.0/8", "host/8", "10.0.0.0/-1", "10.0.0.0/1000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cidr_parse(bad[i], &c), -1, "'%s' should fail", bad[i]);
}

Test(addr, cidr_match)
{
    struct cidr set[3];
    cr_assert_eq(cidr_parse("10.0.0.0/8", &set[0]), 0);
    cr_assert_eq(cidr_parse("192.168.1.0/25", &set[1]), 0);
    cr_assert_eq(cidr_parse("2001:db8::/32", &set[2]), 0);

    cr_assert(match(set, 3, "10.255.0.1"));
    cr_assert(match(set, 3, "192.168.1.127"));
    cr_assert_not(match(set, 3, "192.168.1.128"));
    cr_assert_not(match(set, 3, "11.0.0.1"));
    cr_assert(match(set, 3, "2001:db8::1"));
    cr_assert_not(match(set, 3, "2001:db9::1"));
    /* IPv4-mapped IPv6 peers match IPv4 ranges */
    cr_assert(match(set, 3, "::ffff:10.1.1.1"));
    cr_assert(match(set, 3, "::ffff:192.168.1.5"));
    cr_assert_not(match(set, 3, "::ffff:11.1.1.1"));
    cr_assert_not(match(set, 0, "10.0.0.1"));
}

Test(addr, cidr_match_loopback_mapped)
{
    struct cidr lo;
    cr_assert_eq(cidr_parse("127.0.0.1", &lo), 0);
    cr_assert(match(&lo, 1, "127.0.0.1"));
    cr_assert(match(&lo, 1, "::ffff:127.0.0.1"));
    cr_assert_not(match(&lo, 1, "::1"));
    cr_assert_not(match(&lo, 1, "127.0.0.2"));

    struct cidr v6map;
    cr_assert_eq(cidr_parse("::ffff:0:0/96", &v6map), 0);
    cr_assert(match(&v6map, 1, "1.2.3.4"), "an IPv4 peer matches a mapped IPv6 range");
}
