/* addr: parse one SMTP envelope address and report its routing tricks; see
 * addr.h. Pure: no allocation, no I/O, no static mutable state; every string
 * it produces lives in the caller's struct addr.
 *
 * Shape of the parse: trim spaces, drop one pair of angle brackets, reject
 * bytes no MTA should hand us (NUL, controls, broken UTF-8), split off a
 * source route, then split the mailbox at its last unquoted '@'. The local
 * part is classified twice: as written (unquoted '@', '%', '!') and dequoted
 * (quoted '@', '%', '!'), because an MTA that strips the quotes sees the
 * dequoted text. */
#include "addr.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define LOCAL_TRICKS (ADDR_T_PERCENT | ADDR_T_BANG | ADDR_T_DOUBLE_AT | ADDR_T_QUOTED)

/* ASCII only: domains are compared octet-wise and locale tolower() could
 * fold UTF-8 bytes. */
static char lc(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_caseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lc(a[i]) != lc(b[i]))
            return false;
    return true;
}

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Length of the well-formed UTF-8 sequence at s (Unicode table 3-7: no
 * overlongs, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need;
}

static const char *check_bytes(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x20 || u[i] == 0x7f)
            return "control character in address";
        size_t k = utf8_len(u + i, n - i);
        if (!k)
            return "invalid UTF-8 in address";
        i += k;
    }
    return NULL;
}

/* Validate d[0..n) and write its normalised form to dst (ADDR_MAX_DOMAIN + 1
 * bytes). n > 0. */
static const char *parse_domain(const char *d, size_t n, char *dst,
                                enum addr_domain_kind *kind)
{
    unsigned char bin[16];
    if (d[0] == '[') {
        char buf[INET6_ADDRSTRLEN];
        int af = AF_INET;
        if (n < 2 || d[n - 1] != ']')
            return "bad IP literal";
        d++;
        n -= 2;
        if (n >= 5 && ascii_caseeq(d, "IPv6:", 5)) {
            af = AF_INET6;
            d += 5;
            n -= 5;
        }
        if (n == 0 || n >= sizeof buf)
            return "bad IP literal";
        memcpy(buf, d, n);
        buf[n] = '\0';
        if (inet_pton(af, buf, bin) != 1)
            return "bad IP literal";
        memcpy(dst, buf, n + 1);
        *kind = af == AF_INET ? ADDR_D_IPV4 : ADDR_D_IPV6;
        return NULL;
    }
    if (d[n - 1] == '.')
        n--;                       /* the root label: same domain */
    if (n == 0)
        return "empty label in domain";
    if (n > ADDR_MAX_DOMAIN)
        return "domain too long";
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            if (label == 0)
                return "empty label in domain";
            if (d[i - 1] == '-')
                return "domain label ends with hyphen";
            label = 0;
        } else if (is_alnum(c) || c == '-' || c == '_' || c >= 0x80) {
            /* bytes >= 0x80 were checked as UTF-8 for the whole path */
            if (label == 0 && c == '-')
                return "domain label starts with hyphen";
            if (++label > 63)
                return "domain label too long";
        } else {
            return "bad character in domain";
        }
        dst[i] = lc((char)c);
    }
    if (label == 0)
        return "empty label in domain";
    if (d[n - 1] == '-')
        return "domain label ends with hyphen";
    dst[n] = '\0';
    /* MTAs route a bare dotted quad as the address itself, not as a name. */
    *kind = inet_pton(AF_INET, dst, bin) == 1 ? ADDR_D_IPV4 : ADDR_D_NAME;
    return NULL;
}

/* Source route "@a,@b:" at p[0..n): every hop must be a valid domain. The
 * hops are ignored for routing (RFC 5321 C: MUST ignore), only flagged. */
static const char *check_route(const char *p, size_t n)
{
    char scratch[ADDR_MAX_DOMAIN + 1];
    enum addr_domain_kind k;
    size_t i = 0;
    while (i < n) {
        size_t j = i + 1;
        while (j < n && p[j] != ',')
            j++;
        if (p[i] != '@' || j == i + 1 || parse_domain(p + i + 1, j - i - 1, scratch, &k))
            return "bad source route";
        i = j + 1;
        if (j < n && i == n)
            return "bad source route";   /* trailing comma */
    }
    return NULL;
}

/* The domain a routing trick in the dequoted local part points at: after
 * the last '@', else after the rightmost '%' (Postfix's percent hack), else
 * before the first '!' (UUCP bang path). Normalised like a domain but not
 * validated: an odd target simply matches no local domain. */
static void find_target(const char *p, size_t n, char *dst)
{
    const char *at = NULL, *pct = NULL, *bang = NULL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '@')
            at = p + i;
        else if (p[i] == '%')
            pct = p + i;
        else if (p[i] == '!' && !bang)
            bang = p + i;
    }
    const char *t = p;
    size_t tn = 0;
    if (at || pct) {
        t = (at ? at : pct) + 1;
        tn = (size_t)(p + n - t);
    } else if (bang) {
        tn = (size_t)(bang - p);
    }
    if (tn >= 2 && t[0] == '[' && t[tn - 1] == ']') {
        t++;
        tn -= 2;
        if (tn >= 5 && ascii_caseeq(t, "IPv6:", 5)) {
            t += 5;
            tn -= 5;
        }
    } else if (tn > 0 && t[tn - 1] == '.') {
        tn--;
    }
    for (size_t i = 0; i < tn; i++)
        dst[i] = lc(t[i]);
    dst[tn] = '\0';
}

/* Mailbox "local@domain" (or bare "local") at m[0..n). */
static const char *parse_mailbox(const char *m, size_t n, bool routed, struct addr *out)
{
    /* Pass 1: quoting, and the last unquoted '@' which ends the local part. */
    size_t at = SIZE_MAX;
    bool q = false;
    for (size_t i = 0; i < n; i++) {
        char c = m[i];
        if (q) {
            if (c == '\\' && ++i == n)
                return "unbalanced quote in local part";
            else if (c == '"')
                q = false;
        } else if (c == '"') {
            q = true;
        } else if (c == '@') {
            at = i;
        } else if (c == '\\') {
            /* MTAs disagree on what an unquoted backslash escapes. */
            return "backslash outside quotes";
        } else if (c == '<' || c == '>') {
            return "unbalanced angle brackets";
        }
    }
    if (q)
        return "unbalanced quote in local part";

    size_t ln = at == SIZE_MAX ? n : at;
    if (ln == 0)
        return "empty local part";
    if (ln > ADDR_MAX_LOCAL)
        return "local part too long";
    memcpy(out->local, m, ln);
    out->local[ln] = '\0';

    /* Pass 2: classify the local part and dequote it. */
    char plain[ADDR_MAX_LOCAL + 1];
    size_t pn = 0;
    q = false;
    for (size_t i = 0; i < ln; i++) {
        char c = m[i];
        if (q) {
            if (c == '"') {
                q = false;
                continue;
            }
            if (c == '\\')
                c = m[++i];
            if (c == '@' || c == '%' || c == '!')
                out->tricks |= ADDR_T_QUOTED;
        } else if (c == '"') {
            q = true;
            continue;
        } else if (c == '@') {
            out->tricks |= ADDR_T_DOUBLE_AT;
        } else if (c == '%') {
            out->tricks |= ADDR_T_PERCENT;
        } else if (c == '!') {
            out->tricks |= ADDR_T_BANG;
        } else if (c == ' ') {
            return "space outside quotes in local part";
        } else if (!is_alnum((unsigned char)c) && (unsigned char)c < 0x80 &&
                   !strchr(".#$&'*+-/=?^_`{|}~", c)) {
            /* Dots are not checked for placement: "a..b" and "a." local
             * parts are common (Japanese mobile carriers) and harmless. */
            return "bad character in local part";
        }
        plain[pn++] = c;
    }

    if (at == SIZE_MAX) {
        if (!routed && ln == 10 && ascii_caseeq(m, "postmaster", 10)) {
            out->postmaster = true;
            return NULL;
        }
        out->tricks |= ADDR_T_NO_DOMAIN;
    } else if (at + 1 == n) {
        out->tricks |= ADDR_T_EMPTY_DOMAIN;
    } else {
        const char *why = parse_domain(m + at + 1, n - at - 1, out->domain, &out->kind);
        if (why)
            return why;
    }
    if (out->tricks & LOCAL_TRICKS)
        find_target(plain, pn, out->target);
    return NULL;
}

static const char *parse(const char *in, size_t len, struct addr *out)
{
    if (memchr(in, '\0', len))
        return "NUL byte in address";
    const char *s = in, *e = in + len;
    while (s < e && *s == ' ')
        s++;
    while (e > s && e[-1] == ' ')
        e--;
    if (s == e)
        return "empty address";
    bool lt = *s == '<', gt = e[-1] == '>';
    if (lt != gt)       /* a lone "<" or ">" also lands here */
        return "unbalanced angle brackets";
    if (lt) {
        s++;
        e--;
        while (s < e && *s == ' ')
            s++;
        while (e > s && e[-1] == ' ')
            e--;
        if (s == e) {
            out->null_path = true;
            return NULL;
        }
    }
    size_t n = (size_t)(e - s);
    /* Brackets counted whether or not the MTA passed them, so the same
     * address gets the same verdict either way. */
    if (n + 2 > ADDR_MAX_PATH)
        return "path too long";
    const char *why = check_bytes(s, n);
    if (why)
        return why;

    if (*s != '@')
        return parse_mailbox(s, n, false, out);

    /* Source route: the hops end at the first ':' outside an IP literal
     * (IPv6 literals contain ':'). Without one, "@d" has no local part. */
    size_t colon = 0;
    bool lit = false;
    for (size_t i = 0; i < n && !colon; i++) {
        if (s[i] == '[')
            lit = true;
        else if (s[i] == ']')
            lit = false;
        else if (s[i] == ':' && !lit)
            colon = i;
    }
    if (!colon)
        return "empty local part";
    if ((why = check_route(s, colon)))
        return why;
    if ((why = parse_mailbox(s + colon + 1, n - colon - 1, true, out)))
        return why;
    out->tricks |= ADDR_T_SOURCE_ROUTE;
    /* The final mailbox's domain is where a source route really goes; a
     * trick inside that mailbox's local part keeps its own target. */
    if (!(out->tricks & LOCAL_TRICKS))
        memcpy(out->target, out->domain, sizeof out->target);
    return NULL;
}

int addr_parse(const char *in, size_t len, struct addr *out,
               char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *why = in ? parse(in, len, out) : "empty address";
    if (!why)
        return 0;
    memset(out, 0, sizeof *out);
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", why);
    return -1;
}

bool addr_domain_eq(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    size_t an = strlen(a), bn = strlen(b);
    if (an && a[an - 1] == '.')
        an--;
    if (bn && b[bn - 1] == '.')
        bn--;
    return an == bn && ascii_caseeq(a, b, an);
}

const char *addr_trick_name(unsigned trick_bit)
{
    switch (trick_bit) {
    case ADDR_T_PERCENT:      return "percent_hack";
    case ADDR_T_BANG:         return "bang_path";
    case ADDR_T_DOUBLE_AT:    return "double_at";
    case ADDR_T_QUOTED:       return "quoted_local";
    case ADDR_T_SOURCE_ROUTE: return "source_route";
    case ADDR_T_NO_DOMAIN:    return "unqualified";
    case ADDR_T_EMPTY_DOMAIN: return "empty_domain";
    default:                  return "unknown";
    }
}

int addr_header_domain(const char *value, char *out, size_t outlen)
{
    if (!value || outlen < 2)
        return -1;
    /* Skip comments and quoted display names, then take the first
     * angle-addr, else the first word holding '@'. */
    size_t n = strnlen(value, 65536);
    char *clean = xmalloc(n + 1);
    size_t o = 0;
    int depth = 0;
    bool quoted = false;
    for (size_t i = 0; i < n; i++) {
        char ch = value[i];
        if (ch == '\\' && i + 1 < n && (quoted || depth)) {
            i++;
            continue;
        }
        if (quoted) {
            quoted = ch != '"';
            continue;
        }
        if (depth) {
            depth += ch == '(' ? 1 : ch == ')' ? -1 : 0;
            continue;
        }
        if (ch == '"')
            quoted = true;
        else if (ch == '(')
            depth = 1;
        else
            clean[o++] = ch;
    }
    clean[o] = 0;
    const char *start = strchr(clean, '<'), *end;
    if (start) {
        start++;
        end = strchr(start, '>');
        if (!end)
            end = start + strlen(start);
    } else {
        const char *at = strchr(clean, '@');
        if (!at) {
            free(clean);
            return -1;
        }
        start = at;
        while (start > clean && !strchr(" \t\r\n,;:", start[-1]))
            start--;
        end = at;
        while (*end && !strchr(" \t\r\n,;>", *end))
            end++;
    }
    const char *at = NULL;
    for (const char *p = start; p < end; p++)
        if (*p == '@')
            at = p;
    int rc = -1;
    if (at) {
        const char *d = at + 1;
        size_t len = (size_t)(end - d);
        while (len && (d[len - 1] == ' ' || d[len - 1] == '\t'))
            len--;
        if (len && d[len - 1] == '.')
            len--;
        rc = len && len < outlen ? 0 : -1;
        for (size_t i = 0; rc == 0 && i < len; i++) {
            unsigned char ch = (unsigned char)d[i];
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch >= 0x80;
            if (!ok)
                rc = -1;
            else
                out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        if (rc == 0)
            out[len] = 0;
    }
    free(clean);
    return rc;
}
