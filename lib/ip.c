/* ip: see ip.h. Parsing is delegated to inet_pton, which (unlike inet_aton)
 * refuses the ambiguous IPv4 spellings "127.1", "0x7f.0.0.1" and "010.0.0.1"
 * that other software reads differently. */
#include "ip.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "errbuf.h"

static const uint8_t v4_mapped_prefix[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* Parse one bare address (no brackets, no tag); v4 says how it was written. */
static int parse_bare(const char *s, size_t n, struct ip *out, bool *v4)
{
    char buf[IP_STRLEN + 1];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (memchr(buf, '%', n))   /* zones: refused whatever this libc allows */
        return -1;
    uint8_t v4b[4];
    if (inet_pton(AF_INET, buf, v4b) == 1) {
        memcpy(out->b, v4_mapped_prefix, 12);
        memcpy(out->b + 12, v4b, 4);
        *v4 = true;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->b) == 1) {
        *v4 = false;
        return 0;
    }
    return -1;
}

/* Shared by ip_parse and cidr_parse: accepts [..], "IPv6:" (only before an
 * IPv6 address), over exactly n bytes of s. */
static int parse_addr(const char *s, size_t n, struct ip *out, bool *v4)
{
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    bool tagged = n >= 5 && strncasecmp(s, "IPv6:", 5) == 0;
    if (tagged) {
        s += 5;
        n -= 5;
    }
    struct ip tmp;
    bool was_v4;
    if (parse_bare(s, n, &tmp, &was_v4) < 0 || (tagged && was_v4))
        return -1;
    *out = tmp;
    *v4 = was_v4;
    return 0;
}

int ip_parse(const char *s, struct ip *out)
{
    bool v4;
    if (!s)
        return -1;
    return parse_addr(s, strlen(s), out, &v4);
}

bool ip_is_v4(const struct ip *a)
{
    return memcmp(a->b, v4_mapped_prefix, 12) == 0;
}

void ip_format(const struct ip *a, char *buf, size_t len)
{
    char tmp[IP_STRLEN];
    if (!len)
        return;
    if (ip_is_v4(a))
        snprintf(tmp, sizeof tmp, "%u.%u.%u.%u",
                 a->b[12], a->b[13], a->b[14], a->b[15]);
    else if (!inet_ntop(AF_INET6, a->b, tmp, sizeof tmp))
        snprintf(tmp, sizeof tmp, "?");
    snprintf(buf, len, "%s", tmp);
}

void ip_mask(struct ip *a, unsigned bits)
{
    for (unsigned i = 0; i < 16; i++) {
        if (bits >= 8) {
            bits -= 8;
        } else {
            a->b[i] &= (uint8_t)(0xff00u >> bits);
            bits = 0;
        }
    }
}

int ip_cmp(const struct ip *a, const struct ip *b)
{
    int r = memcmp(a->b, b->b, 16);
    return (r > 0) - (r < 0);
}

int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen)
{
    if (!s || !*s)
        return errbuf_set(err, errlen, "empty network");
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    struct ip a;
    bool v4;
    if (parse_addr(s, alen, &a, &v4) < 0)
        return errbuf_set(err, errlen, "bad address in %.80s", s);
    unsigned max = v4 ? 32 : 128, bits = max;
    if (slash) {
        const char *p = slash + 1;
        unsigned long n = 0;
        size_t digits = 0;
        /* digits only: no sign, spaces or hex; 4 digits is already too many */
        while (p[digits] >= '0' && p[digits] <= '9' && digits < 4)
            n = n * 10 + (unsigned long)(p[digits++] - '0');
        if (digits == 0 || p[digits] != '\0')
            return errbuf_set(err, errlen, "bad prefix length in %.80s", s);
        if (n > max)
            return errbuf_set(err, errlen, "prefix length out of range in %.80s (%s)",
                        s, v4 ? "IPv4 allows 0-32" : "IPv6 allows 0-128");
        bits = (unsigned)n;
    }
    if (v4)
        bits += 96;
    struct cidr c = { a, bits };
    ip_mask(&c.net, bits);
    if (ip_cmp(&c.net, &a) != 0) {
        char want[IP_STRLEN + 4];
        cidr_format(&c, want, sizeof want);
        return errbuf_set(err, errlen, "host bits set in %.80s (did you mean %s?)",
                    s, want);
    }
    *out = c;
    return 0;
}

bool cidr_contains(const struct cidr *c, const struct ip *a)
{
    struct ip m = *a;
    ip_mask(&m, c->bits);
    return memcmp(m.b, c->net.b, 16) == 0;
}

void cidr_format(const struct cidr *c, char *buf, size_t len)
{
    char addr[IP_STRLEN];
    ip_format(&c->net, addr, sizeof addr);
    /* an IPv4 prefix is written the way it was parsed: 192.0.2.0/24 */
    bool v4 = ip_is_v4(&c->net) && c->bits >= 96;
    if (len)
        snprintf(buf, len, "%s/%u", addr, v4 ? c->bits - 96 : c->bits);
}

void cidr_range(const struct cidr *c, struct ip *lo, struct ip *hi)
{
    *lo = c->net;
    ip_mask(lo, c->bits);
    *hi = *lo;
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = c->bits > i * 8 ? c->bits - i * 8 : 0;
        if (keep < 8)
            hi->b[i] |= (uint8_t)(0xffu >> keep);
    }
}
