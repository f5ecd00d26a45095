#include "dnsbl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "xalloc.h"

static int parse_v4(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return -1;
    *out = ntohl(a.s_addr);
    return 0;
}

int dnsbl_codes_add(struct dnsbl_codes *c, const char *text, char *err, size_t errlen)
{
    const char *m = !strncmp(text, "mask:", 5) ? text + 5 : NULL;
    if (!m && !strncmp(text, "0x", 2))
        m = text;
    if (m) {
        char *end;
        unsigned long v = strtoul(m, &end, 0);
        if (end == m || *end || v == 0 || v > 0xffffffffUL)
            return errbuf_set(err, errlen, "bad bitmask '%.40s'", text);
        if (c->nmask == sizeof c->mask / sizeof c->mask[0])
            return errbuf_set(err, errlen, "too many bitmasks (at most 4)");
        c->mask[c->nmask++] = (uint32_t)v;
        return 0;
    }
    char lo_s[32], hi_s[32];
    const char *dash = strchr(text, '-');
    if (strlen(text) >= sizeof lo_s)
        return errbuf_set(err, errlen, "bad answer code '%.40s'", text);
    if (dash) {
        snprintf(lo_s, sizeof lo_s, "%.*s", (int)(dash - text), text);
        snprintf(hi_s, sizeof hi_s, "%s", dash + 1);
    } else {
        snprintf(lo_s, sizeof lo_s, "%s", text);
        snprintf(hi_s, sizeof hi_s, "%s", text);
    }
    uint32_t lo, hi;
    if (parse_v4(lo_s, &lo) < 0 || parse_v4(hi_s, &hi) < 0)
        return errbuf_set(err, errlen, "bad answer code '%.40s' (an IPv4 address, a range "
                          "A-B or mask:0xNN)", text);
    if (lo > hi)
        return errbuf_set(err, errlen, "range '%.40s' runs backwards", text);
    if (c->nrange == sizeof c->range / sizeof c->range[0])
        return errbuf_set(err, errlen, "too many answer codes (at most 16)");
    c->range[c->nrange].lo = lo;
    c->range[c->nrange].hi = hi;
    c->nrange++;
    return 0;
}

static void v4_text(uint32_t a, char *out, size_t len)
{
    snprintf(out, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

void dnsbl_codes_format(const struct dnsbl_codes *c, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen)
        return;
    out[0] = 0;
    for (size_t i = 0; i < c->nrange + c->nmask && o < outlen; i++) {
        char one[40], lo[16], hi[16];
        if (i < c->nrange) {
            v4_text(c->range[i].lo, lo, sizeof lo);
            v4_text(c->range[i].hi, hi, sizeof hi);
            if (c->range[i].lo == c->range[i].hi)
                snprintf(one, sizeof one, "%s", lo);
            else
                snprintf(one, sizeof one, "%s-%s", lo, hi);
        } else {
            snprintf(one, sizeof one, "mask:0x%x", c->mask[i - c->nrange]);
        }
        int n = snprintf(out + o, outlen - o, "%s%s", i ? "," : "", one);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

bool dnsbl_codes_match(const struct dnsbl_codes *c, uint32_t code)
{
    for (size_t i = 0; i < c->nrange; i++)
        if (code >= c->range[i].lo && code <= c->range[i].hi)
            return true;
    /* masks only mean something for answers inside 127.0.0.0/8 */
    for (size_t i = 0; i < c->nmask; i++)
        if ((code >> 24) == 127 && (code & c->mask[i]))
            return true;
    return false;
}

static bool codes_empty(const struct dnsbl_codes *c)
{
    return !c->nrange && !c->nmask;
}

void dnsbl_zone_defaults(struct dnsbl_zone *z, enum dnsbl_kind kind)
{
    memset(z, 0, sizeof *z);
    z->kind = kind;
    z->weight = 1;
    dnsbl_codes_add(&z->errors, "127.255.255.252-127.255.255.255", NULL, 0);
    /* URI lists answer 127.0.0.1 to queries through public resolvers and to
     * malformed queries: a refusal, never a listing */
    if (kind == DNSBL_URI)
        dnsbl_codes_add(&z->errors, "127.0.0.1", NULL, 0);
}

void dnsbl_zone_clear(struct dnsbl_zone *z)
{
    free(z->name);
    free(z->where);
    z->name = z->where = NULL;
}

int dnsbl_qname_ip(const struct ip *a, const char *zone, char *out, size_t outlen)
{
    int n;
    if (ip_is_v4(a)) {
        n = snprintf(out, outlen, "%u.%u.%u.%u.%s", a->b[15], a->b[14], a->b[13], a->b[12],
                     zone);
    } else {
        /* RFC 5782 2.4: 32 nibbles, least significant first */
        char nib[64];
        for (int i = 0; i < 16; i++) {
            static const char hex[] = "0123456789abcdef";
            nib[4 * i] = hex[a->b[15 - i] & 0xf];
            nib[4 * i + 1] = '.';
            nib[4 * i + 2] = hex[a->b[15 - i] >> 4];
            nib[4 * i + 3] = '.';
        }
        n = snprintf(out, outlen, "%.64s%s", nib, zone);
    }
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* --- punycode (RFC 3492 section 6.3) --- */

enum { PC_BASE = 36, PC_TMIN = 1, PC_TMAX = 26, PC_SKEW = 38, PC_DAMP = 700,
       PC_BIAS = 72, PC_N = 128 };

static char pc_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

static uint32_t pc_adapt(uint32_t delta, uint32_t numpoints, bool first)
{
    delta = first ? delta / PC_DAMP : delta / 2;
    delta += delta / numpoints;
    uint32_t k = 0;
    while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
        delta /= PC_BASE - PC_TMIN;
        k += PC_BASE;
    }
    return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

/* Decode UTF-8 into code points; -1 on invalid input. */
static int utf8_decode(const char *s, size_t len, uint32_t *cp, size_t max, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t v;
        size_t k;
        if (c < 0x80) {
            v = c;
            k = 1;
        } else if ((c & 0xE0) == 0xC0) {
            v = c & 0x1F;
            k = 2;
        } else if ((c & 0xF0) == 0xE0) {
            v = c & 0x0F;
            k = 3;
        } else if ((c & 0xF8) == 0xF0) {
            v = c & 0x07;
            k = 4;
        } else {
            return -1;
        }
        if (i + k > len)
            return -1;
        for (size_t j = 1; j < k; j++) {
            unsigned char d = (unsigned char)s[i + j];
            if ((d & 0xC0) != 0x80)
                return -1;
            v = (v << 6) | (d & 0x3F);
        }
        static const uint32_t minv[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (v < minv[k] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || *n == max)
            return -1;
        cp[(*n)++] = v;
        i += k;
    }
    return 0;
}

int dnsbl_idna_label(const char *label, size_t len, char *out, size_t outlen)
{
    uint32_t cp[64];
    size_t n;
    if (!len || utf8_decode(label, len, cp, 64, &n) < 0)
        return -1;
    /* ASCII letters lower-cased; full Unicode case folding and NFC are out
     * of scope (senders' names are taken as written) */
    size_t basic = 0;
    for (size_t i = 0; i < n; i++) {
        if (cp[i] < 0x80)
            cp[i] = (uint32_t)tolower((int)cp[i]);
        basic += cp[i] < 0x80;
    }
    struct { char *p; size_t left; } o = { out, outlen };
#define PUT(ch) do { if (o.left < 2) return -1; *o.p++ = (ch); o.left--; } while (0)
    if (basic == n) {
        for (size_t i = 0; i < n; i++)
            PUT((char)cp[i]);
        *o.p = '\0';
        return 0;
    }
    PUT('x'); PUT('n'); PUT('-'); PUT('-');
    for (size_t i = 0; i < n; i++)
        if (cp[i] < 0x80)
            PUT((char)cp[i]);
    if (basic)
        PUT('-');
    uint32_t nn = PC_N, delta = 0, bias = PC_BIAS, h = (uint32_t)basic;
    while (h < n) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cp[i] >= nn && cp[i] < m)
                m = cp[i];
        delta += (m - nn) * (h + 1);
        nn = m;
        for (size_t i = 0; i < n; i++) {
            if (cp[i] < nn)
                delta++;
            if (cp[i] == nn) {
                uint32_t q = delta;
                for (uint32_t k = PC_BASE;; k += PC_BASE) {
                    uint32_t t = k <= bias ? PC_TMIN : k >= bias + PC_TMAX ? PC_TMAX : k - bias;
                    if (q < t)
                        break;
                    PUT(pc_digit(t + (q - t) % (PC_BASE - t)));
                    q = (q - t) / (PC_BASE - t);
                }
                PUT(pc_digit(q));
                bias = pc_adapt(delta, h + 1, h == basic);
                delta = 0;
                h++;
            }
        }
        delta++;
        nn++;
    }
#undef PUT
    *o.p = '\0';
    return (size_t)(o.p - out) > 63 ? -1 : 0;
}

int dnsbl_qname_domain(const char *domain, const char *zone, char *out, size_t outlen)
{
    size_t len = strlen(domain);
    if (len && domain[len - 1] == '.')
        len--;
    if (!len)
        return -1;
    char name[256];
    size_t used = 0;
    for (size_t start = 0; start <= len;) {
        const char *dot = memchr(domain + start, '.', len - start);
        size_t l = dot ? (size_t)(dot - domain) - start : len - start;
        char label[64];
        if (!l || dnsbl_idna_label(domain + start, l, label, sizeof label) < 0)
            return -1;
        for (const char *p = label; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
                return -1;
        int w = snprintf(name + used, sizeof name - used, "%s%s", used ? "." : "", label);
        if (w < 0 || (size_t)w >= sizeof name - used)
            return -1;
        used += (size_t)w;
        if (!dot)
            break;
        start += l + 1;
    }
    int n = snprintf(out, outlen, "%s.%s", name, zone);
    return n < 0 || (size_t)n >= outlen || n > 253 ? -1 : 0;
}

enum dnsbl_outcome dnsbl_classify(const struct dnsbl_zone *z, const struct dns_result *r,
                                  char *code_out, size_t code_len)
{
    if (code_out && code_len)
        code_out[0] = '\0';
    switch (r->status) {
    case DNS_NXDOMAIN:
    case DNS_NODATA:
        return DNSBL_CLEAN;
    case DNS_OK:
        break;
    default:
        return DNSBL_DEGRADED;
    }
    const struct dns_rr *listed = NULL;
    for (size_t i = 0; i < r->nrr; i++) {
        const struct dns_rr *rr = &r->rr[i];
        if (rr->type != DNS_T_A || !ip_is_v4(&rr->addr))
            continue;
        uint32_t code = (uint32_t)rr->addr.b[12] << 24 | (uint32_t)rr->addr.b[13] << 16 |
                        (uint32_t)rr->addr.b[14] << 8 | rr->addr.b[15];
        if (dnsbl_codes_match(&z->errors, code)) {
            /* an error code anywhere in the answer wins over a listing */
            if (code_out)
                ip_format(&rr->addr, code_out, code_len);
            return DNSBL_REFUSED;
        }
        /* no codes given: 127.0.0.2 and up (127.0.0.1 is RFC 5782's
         * "never listed" test point), answers outside 127/8 are junk */
        bool hit = codes_empty(&z->codes)
                       ? (code >> 24) == 127 && code >= 0x7f000002
                       : dnsbl_codes_match(&z->codes, code);
        if (hit && !listed)
            listed = rr;
    }
    if (!listed)
        return DNSBL_CLEAN;
    if (code_out)
        ip_format(&listed->addr, code_out, code_len);
    return DNSBL_LISTED;
}

const char *dnsbl_outcome_name(enum dnsbl_outcome o)
{
    static const char *names[] = { "clean", "listed", "refused", "degraded" };
    return (unsigned)o < 4 ? names[o] : "?";
}
