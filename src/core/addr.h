/* addr.h - socket address parsing and formatting, and CIDR sets for
 * trusted_proxies. */
#ifndef PORTICO_CORE_ADDR_H
#define PORTICO_CORE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Parses "host:port", ":port" (all IPv4 and IPv6 addresses: [::]), "[v6]:port"
 * or "v4:port". Hosts are numeric or "localhost"; no DNS lookups. Returns 0 or
 * -1 with *err set to a static message. */
int addr_parse(const char *s, struct addr *out, const char **err);

/* Formats the IP part only ("127.0.0.1", "::1") into out; returns its length. */
size_t addr_ip_str(const struct sockaddr *sa, char *out, size_t cap);
/* Formats "ip:port" or "[ip]:port"; returns its length. */
size_t addr_str(const struct sockaddr *sa, char *out, size_t cap);

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t bytes[16];
    unsigned prefix;
};

/* Parses "10.0.0.0/8", "::1/128", or a bare address (full prefix). 0 or -1. */
int cidr_parse(const char *s, struct cidr *out);
/* True when sa (IPv4, IPv6, or IPv4-mapped IPv6) lies in any of the n ranges. */
bool cidr_match_any(const struct cidr *set, size_t n, const struct sockaddr *sa);

#endif
