/* ip: IPv4/IPv6 addresses and CIDR prefixes. Every address is held as 16
 * bytes; IPv4 (and IPv4-mapped IPv6, ::ffff:a.b.c.d) is normalised to the
 * mapped form, so "192.0.2.1" and "::ffff:192.0.2.1" are the same address
 * and an IPv4 /24 is the mapped /120. Pure, no allocation. */
#ifndef KANJIKI_IP_H
#define KANJIKI_IP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IP_STRLEN 46   /* INET6_ADDRSTRLEN */

struct ip {
    uint8_t b[16];
};

struct cidr {
    struct ip net;     /* host bits cleared */
    unsigned bits;     /* 0..128, in the 16-byte space (IPv4 /24 = 120) */
};

/* "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", "[192.0.2.1]",
 * "[IPv6:2001:db8::1]", "IPv6:2001:db8::1"; an IPv6 zone ("%eth0") is
 * refused. Returns 0 or -1. */
int ip_parse(const char *s, struct ip *out);
bool ip_is_v4(const struct ip *a);
/* Dotted quad for IPv4 (mapped), RFC 5952 text for IPv6. buf >= IP_STRLEN. */
void ip_format(const struct ip *a, char *buf, size_t len);
/* Keep the first bits (in the 16-byte space), clear the rest. */
void ip_mask(struct ip *a, unsigned bits);
int ip_cmp(const struct ip *a, const struct ip *b);   /* memcmp order */

/* "192.0.2.0/24", "2001:db8::/32", "192.0.2.1" (= /32), "::1" (= /128).
 * IPv4 prefix lengths are 0..32 and are stored +96. Host bits set below the
 * prefix ("192.0.2.1/24") are an error, as in Postfix's mynetworks, so
 * that a typo does not silently widen a trusted network. Returns 0, or -1
 * with a reason in err. */
int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen);
bool cidr_contains(const struct cidr *c, const struct ip *a);
/* "192.0.2.0/24" or "2001:db8::/32"; buf >= IP_STRLEN + 4 */
void cidr_format(const struct cidr *c, char *buf, size_t len);
/* Lowest and highest address of the prefix (for range queries). */
void cidr_range(const struct cidr *c, struct ip *lo, struct ip *hi);

#endif
