/* addr.c - socket address parsing/formatting and CIDR sets.
 * No DNS: listeners and upstream servers are numeric (or "localhost"), so a
 * config never blocks on a resolver and means the same thing on every load. */
#include "core/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Parses a decimal port 1..65535 from s[0..len). 0 or -1. */
static int parse_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v = 0;

    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static void set_v4(struct addr *out, const struct in_addr *ip, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;

    memset(out, 0, sizeof(*out));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr = *ip;
    out->len = sizeof(*sin);
}

static void set_v6(struct addr *out, const struct in6_addr *ip, uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

    memset(out, 0, sizeof(*out));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = *ip;
    out->len = sizeof(*sin6);
}

/* ":port" binds 0.0.0.0 (IPv4 only, the common case and what the config
 * reference documents); "[::]:port" is the way to ask for IPv6. */
int addr_parse(const char *s, struct addr *out, const char **err)
{
    const char *colon, *host;
    size_t hlen;
    uint16_t port;
    char buf[INET6_ADDRSTRLEN + 1];
    const char *dummy;

    if (!err)
        err = &dummy;
    if (!s || !*s) {
        *err = "empty address";
        return -1;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        struct in6_addr ip6;

        if (!close) {
            *err = "missing ']' after IPv6 address";
            return -1;
        }
        if (close[1] != ':') {
            *err = "missing port (expected host:port)";
            return -1;
        }
        if (parse_port(close + 2, strlen(close + 2), &port) < 0) {
            *err = "invalid port (expected 1..65535)";
            return -1;
        }
        hlen = (size_t)(close - s - 1);
        if (hlen == 0 || hlen >= sizeof(buf)) {
            *err = "invalid IPv6 address";
            return -1;
        }
        memcpy(buf, s + 1, hlen);
        buf[hlen] = '\0';
        if (inet_pton(AF_INET6, buf, &ip6) != 1) {
            *err = "invalid IPv6 address";
            return -1;
        }
        set_v6(out, &ip6, port);
        return 0;
    }

    colon = strrchr(s, ':');
    if (!colon) {
        *err = "missing port (expected host:port or :port)";
        return -1;
    }
    if (memchr(s, ':', (size_t)(colon - s))) {
        *err = "IPv6 addresses must be written in brackets, like [::1]:8080";
        return -1;
    }
    if (parse_port(colon + 1, strlen(colon + 1), &port) < 0) {
        *err = "invalid port (expected 1..65535)";
        return -1;
    }
    host = s;
    hlen = (size_t)(colon - s);
    if (hlen == 0) {
        struct in_addr any = {.s_addr = htonl(INADDR_ANY)};
        set_v4(out, &any, port);
        return 0;
    }
    if (hlen == 9 && strncasecmp(host, "localhost", 9) == 0) {
        struct in_addr lo = {.s_addr = htonl(INADDR_LOOPBACK)};
        set_v4(out, &lo, port);
        return 0;
    }
    if (hlen >= sizeof(buf)) {
        *err = "host must be a numeric IP address or localhost";
        return -1;
    }
    memcpy(buf, host, hlen);
    buf[hlen] = '\0';
    {
        struct in_addr ip4;
        if (inet_pton(AF_INET, buf, &ip4) != 1) {
            *err = "host must be a numeric IP address or localhost";
            return -1;
        }
        set_v4(out, &ip4, port);
    }
    return 0;
}

size_t addr_ip_str(const struct sockaddr *sa, char *out, size_t cap)
{
    char buf[INET6_ADDRSTRLEN];
    const char *r = NULL;
    size_t n;

    if (sa->sa_family == AF_INET)
        r = inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, sizeof(buf));
    else if (sa->sa_family == AF_INET6)
        r = inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
                      sizeof(buf));
    else if (sa->sa_family == AF_UNIX)
        r = memcpy(buf, "unix", 5);
    if (!r)
        buf[0] = '\0';
    n = strlen(buf);
    if (cap == 0)
        return 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, buf, n);
    out[n] = '\0';
    return n;
}

size_t addr_str(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned port = 0;
    int n;

    addr_ip_str(sa, ip, sizeof(ip));
    if (sa->sa_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    else if (sa->sa_family == AF_INET6)
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    if (cap == 0)
        return 0;
    if (sa->sa_family == AF_INET6)
        n = snprintf(out, cap, "[%s]:%u", ip, port);
    else
        n = snprintf(out, cap, "%s:%u", ip, port);
    if (n < 0)
        return 0;
    return (size_t)n >= cap ? cap - 1 : (size_t)n;
}

/* Clears the host bits beyond the prefix so matching is a plain compare. */
static void cidr_mask(struct cidr *c)
{
    size_t nbytes = c->family == AF_INET ? 4 : 16;

    for (size_t i = 0; i < nbytes; i++) {
        unsigned bit0 = (unsigned)i * 8;
        if (bit0 >= c->prefix)
            c->bytes[i] = 0;
        else if (bit0 + 8 > c->prefix)
            c->bytes[i] &= (uint8_t)(0xff << (8 - (c->prefix - bit0)));
    }
}

int cidr_parse(const char *s, struct cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 1];
    const char *slash;
    size_t alen;
    unsigned maxp, prefix;

    if (!s || !*s)
        return -1;
    slash = strchr(s, '/');
    alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(buf))
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->bytes) == 1) {
        out->family = AF_INET;
        maxp = 32;
    } else if (inet_pton(AF_INET6, buf, out->bytes) == 1) {
        out->family = AF_INET6;
        maxp = 128;
    } else {
        return -1;
    }
    prefix = maxp;
    if (slash) {
        const char *p = slash + 1;
        size_t n = strlen(p);
        if (n == 0 || n > 3)
            return -1;
        prefix = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] < '0' || p[i] > '9')
                return -1;
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        }
        if (prefix > maxp)
            return -1;
    }
    out->prefix = prefix;
    cidr_mask(out);
    return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned full = prefix / 8, rem = prefix % 8;

    if (full && memcmp(a, b, full) != 0)
        return false;
    if (rem) {
        uint8_t m = (uint8_t)(0xff << (8 - rem));
        if ((a[full] & m) != (b[full] & m))
            return false;
    }
    return true;
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool cidr_match_any(const struct cidr *set, size_t n, const struct sockaddr *sa)
{
    uint8_t v4[4], v6[16];
    bool has_v4 = false;

    /* Compute both views of the peer: an IPv4 peer also has its mapped IPv6
     * form, and a mapped IPv6 peer (dual-stack socket) its IPv4 form. */
    if (sa->sa_family == AF_INET) {
        memcpy(v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        memcpy(v6, v4mapped_prefix, 12);
        memcpy(v6 + 12, v4, 4);
        has_v4 = true;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(v6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        if (memcmp(v6, v4mapped_prefix, 12) == 0) {
            memcpy(v4, v6 + 12, 4);
            has_v4 = true;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (set[i].family == AF_INET) {
            if (has_v4 && prefix_eq(v4, set[i].bytes, set[i].prefix))
                return true;
        } else if (set[i].family == AF_INET6) {
            if (prefix_eq(v6, set[i].bytes, set[i].prefix))
                return true;
        }
    }
    return false;
}
