/* uri: see uri.h. Three parts: the Public Suffix List (a hash table of
 * rules), a streaming MIME walker with quoted-printable / base64 / HTML
 * entity decoders, and a byte-at-a-time link scanner.
 *
 * Everything is a state machine fed one byte at a time behind a line buffer
 * of fixed size, so the result does not depend on where the MTA cut the
 * chunks, and memory stays bounded whatever the input (the kept hosts are
 * bounded by max_hosts).
 *
 * Choices, and why:
 * - PSL: ICANN and PRIVATE sections both count (as libpsl does by default).
 *   URI lists (SURBL's three-level list, Spamhaus DBL) list the abusive
 *   customer names under hosting suffixes such as blogspot.com or github.io;
 *   querying "github.io" itself would never match and would lump every
 *   customer together.
 * - Links are http, https and ftp URLs (any case, slashes or backslashes
 *   after the colon, as browsers accept), bare "www." hosts and
 *   protocol-relative href="//host". mailto: is skipped up to the next
 *   blank or quote: an address's domain is for e-mail lists, not URI lists.
 * - Preamble and epilogue of a multipart, and a multipart whose boundary is
 *   unusable (missing, too long, nesting too deep), are scanned as plain
 *   text, so breaking the MIME structure does not hide links.
 * - Loopback and "this network" IP literals (127/8, 0/8, ::1, ::) are not
 *   reported: 127.0.0.2 is every list's "listed" test point.
 * - A host cut by the byte budget is dropped rather than reported half
 *   ("example.co" out of "example.co.uk"). max_bytes 0 scans nothing. */
#include "uri.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnsbl.h"
#include "errbuf.h"
#include "ip.h"
#include "xalloc.h"

static bool is_alnum(unsigned c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_ws(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static int hexval(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? (int)(c - 'a' + 10) : -1;
}

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* ---------------------------------------------------------------------
 * Public Suffix List
 * ------------------------------------------------------------------- */

enum { PSL_RULE = 1, PSL_WILD = 2, PSL_EXC = 4 };
enum { PSL_LABELS = 128 };

struct psl_slot {
    uint32_t off;     /* key in the arena */
    uint32_t hash;
    uint16_t len;
    uint8_t flags;    /* 0: empty slot */
};

struct psl {
    char *keys;       /* NUL-separated rule names, A-labels, lower case */
    size_t klen, kcap;
    struct psl_slot *slot;
    size_t cap, n;    /* cap is a power of two */
};

/* Common suffixes for when the list cannot be read. Unknown TLDs are
 * covered by the implicit "*" rule anyway; what matters here are the
 * second-level registries. */
static const char *const psl_builtin[] = {
    "com", "net", "org", "info", "biz", "edu", "gov", "mil", "int", "name", "pro",
    "mobi", "io", "co", "me", "tv", "cc", "eu", "us", "xyz", "top", "online", "site",
    "club", "shop", "app", "dev",
    "uk", "co.uk", "org.uk", "me.uk", "ac.uk", "gov.uk", "ltd.uk", "plc.uk", "net.uk",
    "de", "fr", "it", "es", "nl", "be", "ch", "at", "se", "no", "dk", "fi", "pl", "cz",
    "ie", "pt", "gr", "hu", "ro", "ru", "su", "ua", "com.ua",
    "cn", "com.cn", "net.cn", "org.cn", "gov.cn", "hk", "com.hk", "tw", "com.tw",
    "jp", "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "kr", "co.kr", "in", "co.in",
    "sg", "com.sg", "il", "co.il", "tr", "com.tr",
    "br", "com.br", "net.br", "org.br", "mx", "com.mx", "ar", "com.ar",
    "au", "com.au", "net.au", "org.au", "nz", "co.nz", "ca", "za", "co.za",
};

static struct psl_slot *psl_find(const struct psl *p, const char *s, size_t n, uint32_t h)
{
    for (size_t i = h & (p->cap - 1);; i = (i + 1) & (p->cap - 1)) {
        struct psl_slot *e = &p->slot[i];
        if (!e->flags || (e->hash == h && e->len == n && !memcmp(p->keys + e->off, s, n)))
            return e;
    }
}

static void psl_grow(struct psl *p)
{
    struct psl_slot *old = p->slot;
    size_t oldcap = p->cap;
    p->cap = oldcap ? oldcap * 2 : 1024;
    p->slot = xcalloc(p->cap, sizeof *p->slot);
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].flags)
            continue;
        size_t j = old[i].hash & (p->cap - 1);
        while (p->slot[j].flags)
            j = (j + 1) & (p->cap - 1);
        p->slot[j] = old[i];
    }
    free(old);
}

static void psl_put(struct psl *p, const char *name, size_t n, uint8_t flags)
{
    if ((p->n + 1) * 2 > p->cap)
        psl_grow(p);
    uint32_t h = fnv1a(name, n);
    struct psl_slot *e = psl_find(p, name, n, h);
    if (e->flags) {
        e->flags |= flags;   /* "jp" and "*.jp" style pairs share a key */
        return;
    }
    if (p->klen + n + 1 > p->kcap) {
        while (p->klen + n + 1 > p->kcap)
            p->kcap = p->kcap ? p->kcap * 2 : 65536;
        p->keys = xrealloc(p->keys, p->kcap);
    }
    memcpy(p->keys + p->klen, name, n);
    p->keys[p->klen + n] = '\0';
    e->off = (uint32_t)p->klen;
    e->hash = h;
    e->len = (uint16_t)n;
    e->flags = flags;
    p->klen += n + 1;
    p->n++;
}

static uint8_t psl_flags(const struct psl *p, const char *s, size_t n)
{
    if (!p->cap)
        return 0;
    return psl_find(p, s, n, fnv1a(s, n))->flags;
}

/* host -> "a.b.c" in lower-case A-labels, label offsets in off[]. One
 * trailing dot is dropped. Returns the length, or -1 if not a domain. */
static int psl_normalise(const char *host, char name[256], size_t off[PSL_LABELS], size_t *nlab)
{
    size_t len = strlen(host);
    if (len && host[len - 1] == '.')
        len--;
    if (!len)
        return -1;
    size_t used = 0, n = 0;
    for (size_t i = 0;;) {
        const char *dot = memchr(host + i, '.', len - i);
        size_t l = dot ? (size_t)(dot - host) - i : len - i;
        char lab[64];
        if (!l || n == PSL_LABELS || dnsbl_idna_label(host + i, l, lab, sizeof lab) < 0)
            return -1;
        size_t ll = strlen(lab);
        for (size_t k = 0; k < ll; k++)
            if (!is_alnum((unsigned char)lab[k]) && lab[k] != '-' && lab[k] != '_')
                return -1;
        if (used + (used ? 1 : 0) + ll > 253)
            return -1;
        if (used)
            name[used++] = '.';
        off[n++] = used;
        memcpy(name + used, lab, ll);
        used += ll;
        if (!dot)
            break;
        i += l + 1;
    }
    name[used] = '\0';
    *nlab = n;
    return (int)used;
}

/* One line of the list: "rule", "*.rule" or "!rule". Rules with a "*"
 * anywhere else are allowed by the format but absent from the list. */
static void psl_add_rule(struct psl *p, const char *r, size_t len)
{
    uint8_t flags = PSL_RULE;
    if (len && r[0] == '!') {
        flags = PSL_EXC;
        r++;
        len--;
    } else if (len >= 2 && r[0] == '*' && r[1] == '.') {
        flags = PSL_WILD;
        r += 2;
        len -= 2;
    }
    char tmp[1024], name[256];
    size_t off[PSL_LABELS], n;
    if (!len || len >= sizeof tmp || memchr(r, '*', len) || memchr(r, '!', len))
        return;
    memcpy(tmp, r, len);
    tmp[len] = '\0';
    int nl = psl_normalise(tmp, name, off, &n);
    if (nl > 0)
        psl_put(p, name, (size_t)nl, flags);
}

static struct psl *psl_builtin_list(void)
{
    struct psl *p = xcalloc(1, sizeof *p);
    for (size_t i = 0; i < sizeof psl_builtin / sizeof psl_builtin[0]; i++)
        psl_add_rule(p, psl_builtin[i], strlen(psl_builtin[i]));
    return p;
}

static struct psl *psl_fallback(char *err, size_t errlen, const char *why, const char *path,
                                const char *detail)
{
    struct psl *p = psl_builtin_list();
    errbuf_set(err, errlen, "%s%s%s%s; using the built-in list of %zu common suffixes",
               why, path ? path : "", detail ? ": " : "", detail ? detail : "", p->n);
    return p;
}

struct psl *psl_load(const char *path, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!path)
        return psl_fallback(err, errlen, "no public suffix list given", NULL, NULL);
    FILE *f = fopen(path, "r");
    if (!f)
        return psl_fallback(err, errlen, "cannot open ", path, strerror(errno));
    struct psl *p = xcalloc(1, sizeof *p);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        /* the rule is the line up to the first blank; "//" starts a comment */
        size_t n = 0;
        while (n < (size_t)got && !is_ws((unsigned char)line[n]))
            n++;
        if (n && !(n >= 2 && line[0] == '/' && line[1] == '/'))
            psl_add_rule(p, line, n);
    }
    int bad = ferror(f);
    free(line);
    fclose(f);
    if (bad || !p->n) {
        psl_free(p);
        return psl_fallback(err, errlen, bad ? "cannot read " : "no rules in ", path, NULL);
    }
    return p;
}

void psl_free(struct psl *p)
{
    if (!p)
        return;
    free(p->keys);
    free(p->slot);
    free(p);
}

int psl_registrable(const struct psl *p, const char *host, char *out, size_t outlen)
{
    char name[256];
    size_t off[PSL_LABELS], n;
    if (!p || !host)
        return -1;
    int len = psl_normalise(host, name, off, &n);
    if (len < 0)
        return -1;
    /* an all-numeric TLD is no domain (RFC 3696 2): dotted quads land here */
    const char *tld = name + off[n - 1];
    if (strspn(tld, "0123456789") == strlen(tld))
        return -1;
    /* Check every suffix, shortest first: the longest matching rule
     * wins, an exception rule beats everything, and no match at all means
     * the implicit "*" (one label). */
    size_t ps = 1;
    for (size_t k = 1; k <= n; k++) {
        const char *suf = name + off[n - k];
        uint8_t fl = psl_flags(p, suf, (size_t)len - off[n - k]);
        if (fl & PSL_EXC) {
            ps = k - 1;
            break;
        }
        if ((fl & PSL_RULE) && k > ps)
            ps = k;
        if ((fl & PSL_WILD) && k < n && k + 1 > ps)
            ps = k + 1;
    }
    if (ps >= n)
        return -1;
    const char *reg = name + off[n - ps - 1];
    size_t rl = (size_t)len - off[n - ps - 1];
    if (rl >= outlen)
        return -1;
    memcpy(out, reg, rl + 1);
    return 0;
}

/* ---------------------------------------------------------------------
 * Scanner state
 * ------------------------------------------------------------------- */

enum {
    URI_LINE = 2048,        /* line fragment; a longer line is cut in pieces */
    URI_BOUNDARY = 512,     /* longest boundary followed (RFC 2046: 70) */
    URI_DEPTH = 12,         /* nested multiparts followed */
    URI_HDR = 1024,         /* Content-Type value kept */
    URI_HOSTBUF = 1024,     /* authority text kept (userinfo is dropped) */
    URI_ENT = 12,           /* "&#x0000002e" fits */
    URI_WORD = 6,           /* "mailto" */
};

enum mstate { M_HEADERS, M_BODY };
enum pkind { P_TEXT, P_SKIP };
enum penc { E_IDENT, E_QP, E_B64 };
enum qstate { Q_NORM, Q_EQ, Q_HEX1, Q_EQWS };
enum tstate { T_TEXT, T_SKIP, T_HREF_EQ, T_HREF_VAL, T_HREF_Q, T_HREF_S1, T_SLASHES, T_HOST };
enum hcap { H_NONE, H_CT, H_CTE };

struct uri_host {
    char *name;
    bool is_ip;
};

struct uri_scan {
    const struct psl *psl;
    size_t max_bytes, max_hosts, used;
    bool truncated, done, finished;

    struct uri_host *host;
    size_t nhost, caphost;
    uint32_t *idx;              /* open addressing over host[], i + 1; 0 empty */
    size_t idxcap;

    /* line layer */
    char line[URI_LINE];
    size_t llen;
    bool lcont;                 /* the next fragment continues a line */
    bool skipline;              /* rest of a boundary line */

    /* MIME */
    char *bound[URI_DEPTH];
    size_t blen[URI_DEPTH];
    size_t depth;
    enum mstate mstate;
    enum pkind kind;
    enum penc enc;
    bool html;
    enum hcap hcap;
    char hct[URI_HDR], hcte[64];
    size_t hctlen, hctelen;
    bool have_ct, have_cte;

    /* decoders */
    enum qstate qst;
    unsigned char qc;           /* first hex digit of "=X" */
    size_t qws;                 /* blanks held back: trailing ones are padding */
    uint32_t bacc;
    int bn;
    char ent[URI_ENT];
    size_t elen;

    /* link scanner */
    enum tstate tst;
    char word[URI_WORD];
    size_t wlen;                /* URI_WORD + 1: longer than any keyword */
    unsigned char wprev, last;
    unsigned char attrq;        /* quote of the href value we are in */
    char hbuf[URI_HOSTBUF];
    size_t hblen;
    bool hover;
};

/* ---------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------- */

static void idx_insert(struct uri_scan *s, size_t i)
{
    const char *k = s->host[i].name;
    size_t j = fnv1a(k, strlen(k)) & (s->idxcap - 1);
    while (s->idx[j])
        j = (j + 1) & (s->idxcap - 1);
    s->idx[j] = (uint32_t)(i + 1);
}

static void report(struct uri_scan *s, const char *name, bool is_ip)
{
    if (s->nhost >= s->max_hosts) {
        s->done = true;
        return;
    }
    size_t n = strlen(name);
    if (s->idxcap) {
        for (size_t j = fnv1a(name, n) & (s->idxcap - 1); s->idx[j];
             j = (j + 1) & (s->idxcap - 1))
            if (!strcmp(s->host[s->idx[j] - 1].name, name))
                return;
    }
    if (s->nhost == UINT32_MAX - 1)
        return;
    if (s->nhost == s->caphost) {
        s->caphost = s->caphost ? s->caphost * 2 : 16;
        s->host = xrealloc(s->host, s->caphost * sizeof *s->host);
    }
    s->host[s->nhost].name = xstrndup(name, n);
    s->host[s->nhost].is_ip = is_ip;
    s->nhost++;
    if (s->nhost * 2 > s->idxcap) {
        free(s->idx);
        s->idxcap = s->idxcap ? s->idxcap * 2 : 64;
        s->idx = xcalloc(s->idxcap, sizeof *s->idx);
        for (size_t i = 0; i < s->nhost; i++)
            idx_insert(s, i);
    } else {
        idx_insert(s, s->nhost - 1);
    }
    /* nothing more can be kept: stop reading */
    if (s->nhost == s->max_hosts)
        s->done = true;
}

static void report_ip(struct uri_scan *s, const struct ip *a)
{
    static const uint8_t zero[16], one[16] = { [15] = 1 };
    if (ip_is_v4(a) ? a->b[12] == 127 || a->b[12] == 0
                    : !memcmp(a->b, zero, 16) || !memcmp(a->b, one, 16))
        return;
    char txt[IP_STRLEN];
    ip_format(a, txt, sizeof txt);
    report(s, txt, true);
}

/* ---------------------------------------------------------------------
 * Host text -> registrable domain or IP
 * ------------------------------------------------------------------- */

/* One part of an IPv4 host as the URL standard reads it: decimal, 0x hex
 * or 0-prefixed octal. */
static int v4_number(const char *p, size_t n, uint64_t *v)
{
    unsigned base = 10;
    if (n >= 2 && p[0] == '0' && (p[1] | 0x20) == 'x') {
        base = 16;
        p += 2;
        n -= 2;
    } else if (n >= 2 && p[0] == '0') {
        base = 8;
        p++;
        n--;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hexval((unsigned char)p[i]);
        if (d < 0 || (unsigned)d >= base)
            return -1;
        x = x * base + (unsigned)d;
        if (x > 0xffffffffu)
            return -1;
    }
    *v = x;
    return 0;
}

/* WHATWG "ends in a number": such a host is an IPv4 address or invalid. */
static bool ends_in_number(const char *h, size_t n)
{
    const char *dot = memrchr(h, '.', n);
    const char *last = dot ? dot + 1 : h;
    size_t l = n - (size_t)(last - h);
    uint64_t v;
    return l && v4_number(last, l, &v) == 0;
}

/* "3232235777", "0xC0.0xA8.1.1", "0300.0250.1.1", "192.168.257" ... */
static int v4_parse(const char *h, size_t n, struct ip *a)
{
    uint64_t part[4];
    size_t np = 0;
    for (size_t i = 0; i <= n;) {
        const char *dot = memchr(h + i, '.', n - i);
        size_t l = dot ? (size_t)(dot - h) - i : n - i;
        if (!l || np == 4 || v4_number(h + i, l, &part[np]) < 0)
            return -1;
        np++;
        if (!dot)
            break;
        i += l + 1;
    }
    uint64_t v = part[np - 1];
    if (v >= (uint64_t)1 << (8 * (5 - np)))
        return -1;
    for (size_t i = 0; i + 1 < np; i++) {
        if (part[i] > 255)
            return -1;
        v += part[i] << (8 * (3 - i));
    }
    memset(a, 0, sizeof *a);
    a->b[10] = a->b[11] = 0xff;
    a->b[12] = (uint8_t)(v >> 24);
    a->b[13] = (uint8_t)(v >> 16);
    a->b[14] = (uint8_t)(v >> 8);
    a->b[15] = (uint8_t)v;
    return 0;
}

/* The authority of a link, userinfo already gone: "Host:port", "[v6]" */
static void host_found(struct uri_scan *s, const char *h, size_t n)
{
    if (!n)
        return;
    if (h[0] == '[') {
        const char *close = memchr(h, ']', n);
        char tmp[IP_STRLEN + 1];
        size_t il = close ? (size_t)(close - h) - 1 : 0;
        struct ip a;
        if (!il || il >= sizeof tmp)
            return;
        memcpy(tmp, h + 1, il);
        tmp[il] = '\0';
        if (ip_parse(tmp, &a) == 0)
            report_ip(s, &a);
        return;
    }
    /* cut at the port or at punctuation that ends a link in prose
     * ("(see http://example.com)."), decoding %XX on the way */
    unsigned char d[URI_HOSTBUF + 1];
    size_t m = 0;
    for (size_t i = 0; i < n && m < URI_HOSTBUF; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '%' && i + 2 < n && hexval((unsigned char)h[i + 1]) >= 0 &&
            hexval((unsigned char)h[i + 2]) >= 0) {
            c = (unsigned char)(hexval((unsigned char)h[i + 1]) * 16 +
                                hexval((unsigned char)h[i + 2]));
            i += 2;
        } else if (!is_alnum(c) && c != '-' && c != '.' && c != '_' && c != '%' && c < 0x80) {
            break;
        }
        d[m++] = c;
    }
    /* lower case; the IDNA dots (U+3002, U+FF0E, U+FF61) are dots; a
     * Unicode blank (U+00A0, U+2000-U+206F, U+3000, U+FEFF) ends the host */
    char o[URI_HOSTBUF + 1];
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = d[i];
        if (c < 0x80) {
            c = lower(c);
            if (!is_alnum(c) && c != '-' && c != '.' && c != '_')
                return;   /* "%2F", a stray "%": no valid host */
            o[k++] = (char)c;
            continue;
        }
        if (c == 0xC2 && i + 1 < m && d[i + 1] == 0xA0)
            break;
        if (i + 2 < m) {
            unsigned char c1 = d[i + 1], c2 = d[i + 2];
            if ((c == 0xE3 && c1 == 0x80 && c2 == 0x82) || (c == 0xEF && c1 == 0xBC && c2 == 0x8E) ||
                (c == 0xEF && c1 == 0xBD && c2 == 0xA1)) {
                o[k++] = '.';
                i += 2;
                continue;
            }
            if ((c == 0xE2 && (c1 == 0x80 || c1 == 0x81)) || (c == 0xE3 && c1 == 0x80 && c2 == 0x80) ||
                (c == 0xEF && c1 == 0xBB && c2 == 0xBF))
                break;
        }
        o[k++] = (char)c;
    }
    while (k && (o[k - 1] == '.' || o[k - 1] == '-' || o[k - 1] == '_'))
        k--;
    if (!k)
        return;
    o[k] = '\0';
    if (ends_in_number(o, k)) {
        struct ip a;
        if (v4_parse(o, k, &a) == 0)
            report_ip(s, &a);
        return;
    }
    char reg[256];
    if (psl_registrable(s->psl, o, reg, sizeof reg) == 0)
        report(s, reg, false);
}

/* ---------------------------------------------------------------------
 * Link scanner: decoded text, one byte at a time
 * ------------------------------------------------------------------- */

static void scan_reset(struct uri_scan *s)
{
    s->tst = T_TEXT;
    s->wlen = 0;
    s->wprev = s->last = 0;
    s->attrq = 0;
    s->hblen = 0;
    s->hover = false;
}

static void host_begin(struct uri_scan *s, enum tstate st)
{
    s->hblen = 0;
    s->hover = false;
    s->tst = st;
}

static void host_end(struct uri_scan *s)
{
    if (!s->hover)
        host_found(s, s->hbuf, s->hblen);
    s->hblen = 0;
    s->hover = false;
}

static bool word_is(const struct uri_scan *s, const char *w)
{
    size_t n = strlen(w);
    return s->wlen == n && !memcmp(s->word, w, n);
}

/* c ends a word in running text: does word + c start something? */
static void word_trigger(struct uri_scan *s, unsigned char c)
{
    if (c == ':') {
        if (word_is(s, "http") || word_is(s, "https") || word_is(s, "ftp"))
            host_begin(s, T_SLASHES);
        else if (word_is(s, "mailto"))
            s->tst = T_SKIP;
    } else if (c == '.' && word_is(s, "www")) {
        /* not part of a longer name or of an address: "a.www.", "x@www." */
        unsigned char p = s->wprev;
        if (p != '.' && p != '@' && p != '-' && p != '_') {
            host_begin(s, T_HOST);
            memcpy(s->hbuf, "www.", 4);
            s->hblen = 4;
        }
    } else if (word_is(s, "href")) {
        if (c == '=')
            s->tst = T_HREF_VAL;
        else if (is_ws(c))
            s->tst = T_HREF_EQ;
    }
}

static bool ends_authority(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '?' || c == '#' ||
           c == '"' || c == '\'' || c == '<' || c == '>' || c == '`' || c == '{' ||
           c == '}' || c == '|' || c == '^';
}

static void scan_byte(struct uri_scan *s, unsigned char c)
{
    /* inside a quoted href, browsers drop tabs and line breaks from the
     * URL: "http://exa<LF>mple.com" is example.com */
    bool attr_nl = s->attrq && (c == '\t' || c == '\n' || c == '\r');
again:
    switch (s->tst) {
    case T_TEXT:
        if (attr_nl)
            return;
        if (c == s->attrq || c == '>')
            s->attrq = 0;
        if (is_alnum(c)) {
            if (!s->wlen)
                s->wprev = s->last;
            if (s->wlen < URI_WORD)
                s->word[s->wlen] = (char)lower(c);
            if (s->wlen <= URI_WORD)
                s->wlen++;
        } else {
            word_trigger(s, c);
            s->wlen = 0;
        }
        s->last = c;
        return;
    case T_SKIP:
        if (c <= 0x20 || c == '"' || c == '\'' || c == '<' || c == '>')
            break;
        return;
    case T_HREF_EQ:
        if (is_ws(c))
            return;
        if (c == '=') {
            s->tst = T_HREF_VAL;
            return;
        }
        break;
    case T_HREF_VAL:
        if (is_ws(c))
            return;
        if (c == '"' || c == '\'') {
            s->attrq = c;
            s->tst = T_HREF_Q;
            return;
        }
        if (c == '/') {
            s->tst = T_HREF_S1;
            return;
        }
        break;
    case T_HREF_Q:
        if (is_ws(c))
            return;
        if (c == '/') {
            s->tst = T_HREF_S1;
            return;
        }
        break;
    case T_HREF_S1:
        if (c == '/' || c == '\\') {
            host_begin(s, T_SLASHES);   /* href="//host/": scheme-relative */
            return;
        }
        break;
    case T_SLASHES:
        if (attr_nl || c == '/' || c == '\\')
            return;
        s->tst = T_HOST;
        goto again;
    case T_HOST:
        if (attr_nl)
            return;
        if (ends_authority(c)) {
            host_end(s);
            break;
        }
        if (c == '@') {   /* what came before was userinfo */
            s->hblen = 0;
            s->hover = false;
            return;
        }
        if (s->hblen < sizeof s->hbuf)
            s->hbuf[s->hblen++] = (char)c;
        else
            s->hover = true;
        return;
    }
    /* the byte ends the construct: read it again as running text */
    s->tst = T_TEXT;
    s->wlen = 0;
    goto again;
}

static void scan_end(struct uri_scan *s)
{
    if (s->tst == T_HOST && !s->truncated)
        host_end(s);
    scan_reset(s);
}

/* ---------------------------------------------------------------------
 * HTML character references (text/html only)
 * ------------------------------------------------------------------- */

static void emit_cp(struct uri_scan *s, uint32_t cp)
{
    if (!cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        scan_byte(s, (unsigned char)cp);
    } else if (cp < 0x800) {
        scan_byte(s, (unsigned char)(0xC0 | cp >> 6));
        scan_byte(s, (unsigned char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        scan_byte(s, (unsigned char)(0xE0 | cp >> 12));
        scan_byte(s, (unsigned char)(0x80 | ((cp >> 6) & 0x3F)));
        scan_byte(s, (unsigned char)(0x80 | (cp & 0x3F)));
    } else {
        scan_byte(s, (unsigned char)(0xF0 | cp >> 18));
        scan_byte(s, (unsigned char)(0x80 | ((cp >> 12) & 0x3F)));
        scan_byte(s, (unsigned char)(0x80 | ((cp >> 6) & 0x3F)));
        scan_byte(s, (unsigned char)(0x80 | (cp & 0x3F)));
    }
}

/* s->ent holds "&name" or "&#123"; semi: it ended with ';'. Browsers
 * accept numeric references and the old names without the ';'. */
static void ent_resolve(struct uri_scan *s, bool semi)
{
    static const struct { const char *name; uint32_t cp; bool legacy; } names[] = {
        { "amp", '&', true },   { "lt", '<', true },    { "gt", '>', true },
        { "quot", '"', true },  { "nbsp", ' ', true },  { "apos", '\'', false },
        { "period", '.', false }, { "colon", ':', false }, { "sol", '/', false },
        { "commat", '@', false }, { "percnt", '%', false }, { "quest", '?', false },
        { "equals", '=', false }, { "num", '#', false },
    };
    const char *e = s->ent + 1;
    size_t n = s->elen - 1;
    s->elen = 0;
    if (n >= 2 && e[0] == '#') {
        bool hex = (e[1] | 0x20) == 'x';
        uint32_t cp = 0;
        size_t i = hex ? 2 : 1, digits = 0;
        for (; i < n; i++, digits++) {
            int v = hexval((unsigned char)e[i]);
            if (v < 0 || (!hex && v > 9))
                break;
            cp = cp > 0x10FFFF ? cp : cp * (hex ? 16 : 10) + (uint32_t)v;
        }
        if (i == n && digits) {
            emit_cp(s, cp);
            return;
        }
    } else {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == n && !memcmp(names[i].name, e, n) &&
                (semi || names[i].legacy)) {
                emit_cp(s, names[i].cp);
                return;
            }
    }
    /* not a reference: the text as written */
    for (size_t i = 0; i <= n; i++)
        scan_byte(s, (unsigned char)s->ent[i]);
    if (semi)
        scan_byte(s, ';');
}

static void ent_byte(struct uri_scan *s, unsigned char c)
{
    if (s->elen) {
        if (c == ';') {
            ent_resolve(s, true);
            return;
        }
        if ((is_alnum(c) || (c == '#' && s->elen == 1)) && s->elen < URI_ENT) {
            s->ent[s->elen++] = (char)c;
            return;
        }
        ent_resolve(s, false);
    }
    if (c == '&') {
        s->ent[0] = '&';
        s->elen = 1;
        return;
    }
    scan_byte(s, c);
}

/* A decoded byte of a text part: counted against the budget. */
static void text_byte(struct uri_scan *s, unsigned char c)
{
    if (s->done)
        return;
    if (s->used >= s->max_bytes) {
        s->truncated = s->done = true;
        return;
    }
    s->used++;
    if (s->html)
        ent_byte(s, c);
    else
        scan_byte(s, c);
}

/* ---------------------------------------------------------------------
 * Transfer decoding
 * ------------------------------------------------------------------- */

static void qp_blanks(struct uri_scan *s)
{
    for (; s->qws; s->qws--)
        text_byte(s, ' ');
}

static void qp_byte(struct uri_scan *s, unsigned char c)
{
again:
    switch (s->qst) {
    case Q_NORM:
        if (c == '=') {
            qp_blanks(s);   /* blanks before "=" are text, not padding */
            s->qst = Q_EQ;
        } else if (c == ' ' || c == '\t') {
            if (s->qws < SIZE_MAX)
                s->qws++;
        } else {
            qp_blanks(s);
            text_byte(s, c);
        }
        return;
    case Q_EQ:
        if (hexval(c) >= 0) {
            s->qc = c;
            s->qst = Q_HEX1;
            return;
        }
        if (c == ' ' || c == '\t') {
            s->qst = Q_EQWS;
            return;
        }
        text_byte(s, '=');   /* a lone "=": taken literally */
        break;
    case Q_HEX1:
        if (hexval(c) >= 0) {
            text_byte(s, (unsigned char)(hexval(s->qc) * 16 + hexval(c)));
            s->qst = Q_NORM;
            return;
        }
        text_byte(s, '=');
        text_byte(s, s->qc);
        break;
    case Q_EQWS:
        if (c == ' ' || c == '\t')
            return;
        text_byte(s, '=');
        text_byte(s, ' ');
        break;
    }
    s->qst = Q_NORM;
    goto again;
}

static void qp_eol(struct uri_scan *s)
{
    s->qws = 0;   /* trailing blanks are transport padding */
    switch (s->qst) {
    case Q_NORM:
        text_byte(s, '\n');
        break;
    case Q_EQ:
    case Q_EQWS:
        break;      /* soft line break */
    case Q_HEX1:
        text_byte(s, '=');
        text_byte(s, s->qc);
        text_byte(s, '\n');
        break;
    }
    s->qst = Q_NORM;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static void b64_flush(struct uri_scan *s)
{
    if (s->bn == 2) {
        text_byte(s, (unsigned char)(s->bacc >> 4));
    } else if (s->bn == 3) {
        text_byte(s, (unsigned char)(s->bacc >> 10));
        text_byte(s, (unsigned char)(s->bacc >> 2));
    }
    s->bn = 0;
    s->bacc = 0;
}

static void b64_byte(struct uri_scan *s, unsigned char c)
{
    int v = b64val(c);
    if (c == '=') {   /* padding ends a group; data may follow (concatenated) */
        b64_flush(s);
        return;
    }
    if (v < 0)
        return;   /* line breaks and junk */
    s->bacc = s->bacc << 6 | (uint32_t)v;
    if (++s->bn == 4) {
        text_byte(s, (unsigned char)(s->bacc >> 16));
        text_byte(s, (unsigned char)(s->bacc >> 8));
        text_byte(s, (unsigned char)s->bacc);
        s->bn = 0;
        s->bacc = 0;
    }
}

static void decode(struct uri_scan *s, const char *d, size_t n, bool eol)
{
    for (size_t i = 0; i < n && !s->done; i++) {
        unsigned char c = (unsigned char)d[i];
        switch (s->enc) {
        case E_IDENT:
            text_byte(s, c);
            break;
        case E_QP:
            qp_byte(s, c);
            break;
        case E_B64:
            b64_byte(s, c);
            break;
        }
    }
    if (eol && !s->done) {
        if (s->enc == E_IDENT)
            text_byte(s, '\n');
        else if (s->enc == E_QP)
            qp_eol(s);
    }
}

/* End of a text part: flush what each layer holds, then reset them. */
static void text_end(struct uri_scan *s)
{
    if (!s->done) {
        if (s->enc == E_QP) {
            s->qws = 0;
            if (s->qst == Q_EQ || s->qst == Q_EQWS || s->qst == Q_HEX1)
                text_byte(s, '=');
            if (s->qst == Q_HEX1)
                text_byte(s, s->qc);
            else if (s->qst == Q_EQWS)
                text_byte(s, ' ');
        } else if (s->enc == E_B64) {
            b64_flush(s);
        }
        if (s->elen && !s->done)
            ent_resolve(s, false);
    }
    scan_end(s);
    s->qst = Q_NORM;
    s->qws = 0;
    s->bn = 0;
    s->bacc = 0;
    s->elen = 0;
}

/* ---------------------------------------------------------------------
 * MIME structure
 * ------------------------------------------------------------------- */

/* A parameter value, quoted or not, copied into out (when not NULL) up
 * to cap; *len gets the full length. Returns where parsing stopped. */
static const char *param_value(const char *v, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    if (*v == '"') {
        for (v++; *v && *v != '"'; v++, n++) {
            if (*v == '\\' && v[1])
                v++;
            if (out && n + 1 < cap)
                out[n] = *v;
        }
        if (*v == '"')
            v++;
    } else {
        for (; *v && *v != ';' && !is_ws((unsigned char)*v); v++, n++)
            if (out && n + 1 < cap)
                out[n] = *v;
    }
    if (out && cap)
        out[n < cap ? n : cap - 1] = '\0';
    *len = n;
    return v;
}

/* "multipart/mixed; boundary=\"x\"" -> type "multipart/mixed" (lower
 * case, "" when absent or malformed) and the boundary (blen 0: none). */
static void ct_parse(const char *v, char *type, size_t tcap, char *bnd, size_t bcap,
                     size_t *blen)
{
    type[0] = '\0';
    *blen = 0;
    if (!v)
        return;
    while (is_ws((unsigned char)*v))
        v++;
    size_t t = 0;
    for (; *v && *v != ';' && *v != '(' && !is_ws((unsigned char)*v); v++)
        if (t + 1 < tcap)
            type[t++] = (char)lower((unsigned char)*v);
    type[t] = '\0';
    if (!strchr(type, '/'))
        type[0] = '\0';
    while (*v) {
        if (*v != ';') {
            v++;
            continue;
        }
        v++;
        while (is_ws((unsigned char)*v))
            v++;
        const char *name = v;
        while (*v && *v != '=' && *v != ';' && !is_ws((unsigned char)*v))
            v++;
        size_t nl = (size_t)(v - name);
        while (is_ws((unsigned char)*v))
            v++;
        if (*v != '=')
            continue;
        for (v++; is_ws((unsigned char)*v);)
            v++;
        size_t len;
        bool is_b = nl == 8 && !strncasecmp(name, "boundary", 8);
        v = param_value(v, is_b ? bnd : NULL, bcap, &len);
        if (is_b && !*blen)
            *blen = len;
    }
}

static enum penc cte_parse(const char *v)
{
    if (!v)
        return E_IDENT;
    while (is_ws((unsigned char)*v))
        v++;
    if (!strncasecmp(v, "quoted-printable", 16))
        return E_QP;
    if (!strncasecmp(v, "base64", 6))
        return E_B64;
    return E_IDENT;   /* 7bit, 8bit, binary, and the unknown read as is */
}

static void hdr_reset(struct uri_scan *s)
{
    s->hcap = H_NONE;
    s->hctlen = s->hctelen = 0;
    s->have_ct = s->have_cte = false;
}

/* A part starts with these headers (NULL: absent). */
static void part_begin(struct uri_scan *s, const char *ct, const char *cte)
{
    char type[64], bnd[URI_BOUNDARY + 1];
    size_t blen;
    ct_parse(ct, type, sizeof type, bnd, sizeof bnd, &blen);
    enum penc enc = cte_parse(cte);
    if (!type[0])
        snprintf(type, sizeof type, "text/plain");   /* RFC 2045 5.2 default */
    s->mstate = M_BODY;
    s->kind = P_TEXT;
    s->enc = enc;
    s->html = false;
    if (!strncmp(type, "multipart/", 10)) {
        if (blen && blen <= URI_BOUNDARY && s->depth < URI_DEPTH) {
            s->bound[s->depth] = xstrndup(bnd, blen);
            s->blen[s->depth] = blen;
            s->depth++;
            s->enc = E_IDENT;   /* the preamble, read as plain text */
        }
        return;
    }
    if (!strcmp(type, "message/rfc822") || !strcmp(type, "message/global")) {
        if (enc == E_IDENT) {   /* a forwarded message: its own headers next */
            s->mstate = M_HEADERS;
            hdr_reset(s);
        } else {
            s->kind = P_SKIP;
        }
        return;
    }
    if (!strncmp(type, "text/", 5)) {
        s->html = !strcmp(type, "text/html");
        return;
    }
    if (!strcmp(type, "application/xhtml+xml")) {
        s->html = true;
        return;
    }
    s->kind = P_SKIP;   /* images, attachments: only boundaries matter */
}

static void cap_add(struct uri_scan *s, const char *d, size_t n)
{
    if (s->hcap == H_NONE)
        return;
    char *buf = s->hcap == H_CT ? s->hct : s->hcte;
    size_t cap = s->hcap == H_CT ? sizeof s->hct : sizeof s->hcte;
    size_t *len = s->hcap == H_CT ? &s->hctlen : &s->hctelen;
    size_t room = cap - 1 - *len;
    if (n > room)
        n = room;
    memcpy(buf + *len, d, n);
    *len += n;
    buf[*len] = '\0';
}

static void header_line(struct uri_scan *s, const char *d, size_t n, bool first, bool eol)
{
    if (!first) {
        cap_add(s, d, n);
        return;
    }
    if (!n && eol) {
        s->hcap = H_NONE;
        part_begin(s, s->have_ct ? s->hct : NULL, s->have_cte ? s->hcte : NULL);
        return;
    }
    if (n && (d[0] == ' ' || d[0] == '\t')) {   /* folded */
        cap_add(s, d, n);
        return;
    }
    s->hcap = H_NONE;
    const char *colon = memchr(d, ':', n);
    if (!colon)
        return;
    size_t nl = (size_t)(colon - d);
    while (nl && (d[nl - 1] == ' ' || d[nl - 1] == '\t'))
        nl--;
    if (nl == 12 && !strncasecmp(d, "content-type", 12) && !s->have_ct) {
        s->hcap = H_CT;
        s->have_ct = true;
        s->hct[0] = '\0';
    } else if (nl == 25 && !strncasecmp(d, "content-transfer-encoding", 25) && !s->have_cte) {
        s->hcap = H_CTE;
        s->have_cte = true;
        s->hcte[0] = '\0';
    } else {
        return;
    }
    cap_add(s, colon + 1, n - (size_t)(colon + 1 - d));
}

/* "--boundary" (a new part) or "--boundary--" (the end) of any open
 * multipart, innermost first; an inner boundary that is a prefix of an
 * outer one must not match it, hence the check of what follows. */
static bool boundary_line(struct uri_scan *s, const char *d, size_t n)
{
    for (size_t i = s->depth; i-- > 0;) {
        size_t bl = s->blen[i];
        if (n < 2 + bl || memcmp(d + 2, s->bound[i], bl))
            continue;
        const char *r = d + 2 + bl;
        size_t rl = n - 2 - bl;
        bool close = rl >= 2 && r[0] == '-' && r[1] == '-';
        if (!close) {
            size_t k = 0;
            while (k < rl && (r[k] == ' ' || r[k] == '\t'))
                k++;
            if (k < rl)
                continue;
        }
        text_end(s);
        while (s->depth > i + 1)
            free(s->bound[--s->depth]);
        if (close) {
            free(s->bound[--s->depth]);
            s->mstate = M_BODY;   /* the epilogue, read as plain text */
            s->kind = P_TEXT;
            s->enc = E_IDENT;
            s->html = false;
        } else {
            s->mstate = M_HEADERS;
            hdr_reset(s);
        }
        return true;
    }
    return false;
}

/* A line of the body, or a URI_LINE piece of a longer one. */
static void line_piece(struct uri_scan *s, const char *d, size_t n, bool eol)
{
    bool first = !s->lcont;
    s->lcont = !eol;
    if (first)
        s->skipline = false;
    if (s->skipline)
        return;
    if (first && s->depth && n >= 2 && d[0] == '-' && d[1] == '-' && boundary_line(s, d, n)) {
        s->skipline = !eol;
        return;
    }
    if (s->mstate == M_HEADERS)
        header_line(s, d, n, first, eol);
    else if (s->kind == P_TEXT)
        decode(s, d, n, eol);
}

/* ---------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------- */

struct uri_scan *uri_scan_new(const struct psl *psl, const char *content_type,
                              const char *transfer_encoding, size_t max_bytes,
                              size_t max_hosts)
{
    struct uri_scan *s = xcalloc(1, sizeof *s);
    s->psl = psl;
    s->max_bytes = max_bytes;
    s->max_hosts = max_hosts;
    s->done = max_hosts == 0;
    scan_reset(s);
    part_begin(s, content_type, transfer_encoding);
    return s;
}

void uri_scan_add(struct uri_scan *s, const char *chunk, size_t len)
{
    if (!s || !chunk)
        return;
    while (len && !s->done && !s->finished) {
        const char *nl = memchr(chunk, '\n', len);
        size_t span = nl ? (size_t)(nl - chunk) : len;
        size_t room = URI_LINE - s->llen;
        if (span >= room) {
            /* a full buffer is a piece of a long line; a CR at its end
             * waits, it may be half of the CRLF */
            memcpy(s->line + s->llen, chunk, room);
            chunk += room;
            len -= room;
            bool cr = s->line[URI_LINE - 1] == '\r';
            line_piece(s, s->line, cr ? URI_LINE - 1 : URI_LINE, false);
            s->llen = 0;
            if (cr)
                s->line[s->llen++] = '\r';
            continue;
        }
        memcpy(s->line + s->llen, chunk, span);
        s->llen += span;
        chunk += span;
        len -= span;
        if (nl) {
            chunk++;
            len--;
            size_t n = s->llen;
            if (n && s->line[n - 1] == '\r')
                n--;
            s->llen = 0;
            line_piece(s, s->line, n, true);
        }
    }
}

void uri_scan_finish(struct uri_scan *s)
{
    if (!s || s->finished)
        return;
    if (!s->done) {
        if (s->llen || s->lcont) {
            size_t n = s->llen;
            if (n && s->line[n - 1] == '\r')
                n--;
            s->llen = 0;
            line_piece(s, s->line, n, true);
        }
        if (!s->done && s->mstate == M_BODY && s->kind == P_TEXT)
            text_end(s);
    }
    s->finished = true;
}

size_t uri_scan_count(const struct uri_scan *s)
{
    return s ? s->nhost : 0;
}

const char *uri_scan_get(const struct uri_scan *s, size_t i, bool *is_ip)
{
    if (!s || i >= s->nhost)
        return NULL;
    if (is_ip)
        *is_ip = s->host[i].is_ip;
    return s->host[i].name;
}

bool uri_scan_truncated(const struct uri_scan *s)
{
    return s && s->truncated;
}

void uri_scan_free(struct uri_scan *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nhost; i++)
        free(s->host[i].name);
    free(s->host);
    free(s->idx);
    for (size_t i = 0; i < s->depth; i++)
        free(s->bound[i]);
    free(s);
}
