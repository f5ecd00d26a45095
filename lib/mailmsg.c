/* mailmsg: read a stored message the way `kanjiki replay` needs it; see
 * mailmsg.h.
 *
 * Shape: one header iterator (hiter) walks the header section without
 * copying it (LF, CRLF or, for a text without any LF, CR-only lines; a
 * leading mbox "From " line skipped; the first line that is neither a
 * field nor a continuation ends the header, as in Postfix). mailmsg_parse
 * walks it twice: once for the single fields, Received-SPF and
 * Authentication-Results, once for the Received: hops. Nothing is kept per
 * field, so thousands of fields cost no memory; every copied value is
 * capped (MM_MAX_VALUE) and at most MM_MAX_HOPS Received fields are read,
 * so work is linear in the input and memory bounded.
 *
 * Trust: an address from any of the three sources counts only when it is
 * public and not in `trusted`. Only the receiving site's Received-SPF is
 * used: the topmost one, or the next one down when the topmost names a
 * private or trusted address (a recheck by an own relay); once a
 * Received-SPF without client-ip is met, the ones below belong to earlier
 * hops. When the client comes from Received-SPF or Authentication-Results,
 * HELO, PTR and time come from the topmost Received hop with that address;
 * with no such hop, HELO is Received-SPF's helo= and the time is Date:'s.
 *
 * The body fingerprint decodes the first text part that has words in it
 * (MIME walked through nested multiparts; an empty text/plain alternative
 * is skipped) and hashes its words after dropping what changes from copy to
 * copy of one mailing: HTML markup (tags, comments, style and script, for
 * HTML parts or text that looks like HTML), digits (a word holding a digit
 * is dropped whole: tracking codes), e-mail addresses, URL paths and
 * queries (the host is kept), up to three words after a greeting ("Dear
 * John Smith,"), words over 30 bytes, white space and punctuation. ASCII is
 * lower-cased; charsets are not converted. */
#include "mailmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "ip.h"
#include "received.h"
#include "sbuf.h"
#include "ascii.h"
#include "timeutil.h"
#include "xalloc.h"

#define MM_MAX_VALUE   (64 * 1024)    /* bytes kept of one unfolded field */
#define MM_MAX_HOP     RCVD_MAX_VALUE /* bytes of one Received field read */
#define MM_MAX_HOPS    100            /* Received fields examined */
#define MM_MAX_NAME    RCVD_MAX_NAME  /* HELO / PTR names kept */
#define MM_MAX_BODY    (8u << 20)     /* body bytes walked for MIME parts */
#define MM_MAX_TEXT    (256 * 1024)   /* decoded bytes fingerprinted */
#define MM_MAX_DEPTH   5              /* nested multiparts followed */


/* NUL-terminated s starts with prefix, ignoring case */
static bool istarts(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strnlen(s, n) == n && ascii_ieq_n(s, prefix, n);
}

/* case-insensitive search of the NUL-terminated needle in s[0..n) */
static const char *ifind(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    if (k == 0 || k > n)
        return k == 0 ? s : NULL;
    for (size_t i = 0; i + k <= n; i++)
        if (ascii_lc(s[i]) == ascii_lc(needle[0]) && ascii_ieq_n(s + i, needle, k))
            return s + i;
    return NULL;
}

static char *dup_lower(const char *s, size_t n)
{
    char *d = xstrndup(s, n);
    for (size_t i = 0; d[i]; i++)
        d[i] = ascii_lc(d[i]);
    return d;
}

/* ---- header section ---------------------------------------------------- */

struct hiter {
    const char *p, *end;   /* next unread line, end of text */
    char eol;              /* '\n', or '\r' for a text without any LF */
    bool done;
    const char *body;      /* where the body starts, once done */
};

/* An mbox "From " line (not "From : value", an obsolete field). */
static bool mbox_line(const char *s, size_t n)
{
    if (n < 5 || memcmp(s, "From ", 5) != 0)
        return false;
    size_t i = 5;
    while (i < n && ascii_is_wsp(s[i]))
        i++;
    return i < n && s[i] != ':';
}

static void hiter_init(struct hiter *it, const char *text, size_t len, bool skip_from)
{
    if (!text)
        len = 0;
    it->p = text;
    it->end = text + len;
    it->eol = len && !memchr(text, '\n', len) && memchr(text, '\r', len) ? '\r' : '\n';
    it->done = false;
    it->body = it->end;
    if (skip_from && mbox_line(text, len)) {
        const char *nl = memchr(text, it->eol, len);
        it->p = nl ? nl + 1 : it->end;
    }
}

/* One line at it->p: [*ls, *le) without its line break (trailing CRs of a
 * LF line dropped too). */
static bool hiter_line(struct hiter *it, const char **ls, const char **le)
{
    if (it->p >= it->end)
        return false;
    const char *s = it->p;
    const char *nl = memchr(s, it->eol, (size_t)(it->end - s));
    const char *e = nl ? nl : it->end;
    it->p = nl ? nl + 1 : it->end;
    if (it->eol == '\n')
        while (e > s && e[-1] == '\r')
            e--;
    *ls = s;
    *le = e;
    return true;
}

/* Next field: name [*name, +*nlen), raw value [*vs, *ve) (continuation line
 * breaks still inside). false at the end of the header section. */
static bool hiter_next(struct hiter *it, const char **name, size_t *nlen,
                       const char **vs, const char **ve)
{
    while (!it->done) {
        const char *save = it->p, *ls, *le;
        if (!hiter_line(it, &ls, &le)) {
            it->done = true;
            it->body = it->end;
            break;
        }
        if (ls == le) {                   /* the blank line */
            it->done = true;
            it->body = it->p;
            break;
        }
        if (ascii_is_wsp(*ls))                  /* continuation of nothing */
            continue;
        const char *q = ls;
        while (q < le && (unsigned char)*q > 32 && (unsigned char)*q < 127 && *q != ':')
            q++;
        const char *nend = q;
        while (q < le && ascii_is_wsp(*q))
            q++;
        if (nend == ls || q == le || *q != ':') {
            it->done = true;              /* not a field: the body starts */
            it->body = save;
            break;
        }
        *name = ls;
        *nlen = (size_t)(nend - ls);
        *vs = q + 1;
        *ve = le;
        while (it->p < it->end && ascii_is_wsp(*it->p)) {
            const char *cs, *ce;
            hiter_line(it, &cs, &ce);
            *ve = ce;
        }
        return true;
    }
    return false;
}

/* The unfolded value: line breaks and NULs removed, white space at both
 * ends trimmed, at most max bytes. */
static char *unfold(const char *s, const char *e, size_t max)
{
    size_t n = (size_t)(e - s);
    char *d = xmalloc((n < max ? n : max) + 1);
    size_t o = 0;
    for (; s < e && o < max; s++) {
        char c = *s;
        if (c == '\r' || c == '\n' || c == '\0')
            continue;
        if (o == 0 && ascii_is_wsp(c))
            continue;
        d[o++] = c;
    }
    while (o && ascii_is_wsp(d[o - 1]))
        o--;
    d[o] = '\0';
    return d;
}

char *mailmsg_header(const char *text, size_t len, const char *name)
{
    struct hiter it;
    const char *n, *vs, *ve;
    size_t nl;
    if (!name)
        return NULL;
    hiter_init(&it, text, len, true);
    while (hiter_next(&it, &n, &nl, &vs, &ve))
        if (ascii_ieq(n, nl, name))
            return unfold(vs, ve, MM_MAX_VALUE);
    return NULL;
}

size_t mailmsg_each_header(const char *text, size_t len, const char *name, size_t max,
                           mailmsg_fn fn, void *arg)
{
    struct hiter it;
    const char *n, *vs, *ve;
    size_t nl, count = 0;
    if (!name)
        return 0;
    hiter_init(&it, text, len, true);
    while (hiter_next(&it, &n, &nl, &vs, &ve)) {
        if (!ascii_ieq(n, nl, name))
            continue;
        char *v = unfold(vs, ve, max);
        int stop = fn(v, strlen(v), arg);
        free(v);
        count++;
        if (stop)
            break;
    }
    return count;
}

/* ---- addresses ------------------------------------------------------------ */

static bool client_ok(const struct ip *a, const struct cidrset *trusted)
{
    return rcvd_ip_public(a) && !(trusted && cidrset_contains(trusted, a));
}

/* An address at s[0..n): "1.2.3.4", "[1.2.3.4]", "[IPv6:..]", "::ffff:..". */
static bool parse_ip_n(const char *s, size_t n, struct ip *out)
{
    char buf[IP_STRLEN + 16];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return ip_parse(buf, out) == 0;
}

/* The value after "key=" (a token start) in v: address into *out. */
static bool keyed_ip(const char *v, const char *key, struct ip *out)
{
    size_t n = strlen(v), kl = strlen(key);
    for (const char *p = v; (p = ifind(p, n - (size_t)(p - v), key)); p += kl) {
        if (p > v && !ascii_is_space(p[-1]) && p[-1] != ';' && p[-1] != '(')
            continue;
        const char *s = p + kl;
        while (ascii_is_wsp(*s) || *s == '"')
            s++;
        const char *e = s;
        while (*e && !ascii_is_space(*e) && !strchr(";\")(,", *e))
            e++;
        if (parse_ip_n(s, (size_t)(e - s), out))
            return true;
    }
    return false;
}

/* The token after "key=" in v (helo= of Received-SPF), or NULL. */
static char *keyed_word(const char *v, const char *key)
{
    size_t n = strlen(v), kl = strlen(key);
    for (const char *p = v; (p = ifind(p, n - (size_t)(p - v), key)); p += kl) {
        if (p > v && !ascii_is_space(p[-1]) && p[-1] != ';')
            continue;
        const char *s = p + kl;
        while (*s == '"')
            s++;
        const char *e = s;
        while (*e && !ascii_is_space(*e) && !strchr(";\")(", *e))
            e++;
        if (e > s)
            return xstrndup(s, (size_t)(e - s) < MM_MAX_NAME ? (size_t)(e - s) : MM_MAX_NAME);
    }
    return NULL;
}

/* "sender IP is ADDR" of Microsoft's Authentication-Results */
static bool ar_ip(const char *v, struct ip *out)
{
    size_t n = strlen(v);
    for (const char *p = v; (p = ifind(p, n - (size_t)(p - v), "sender IP is")); p += 12) {
        const char *s = p + 12;
        while (ascii_is_wsp(*s))
            s++;
        const char *e = s;
        while (*e && !ascii_is_space(*e) && !strchr(";)(,", *e))
            e++;
        if (parse_ip_n(s, (size_t)(e - s), out))
            return true;
    }
    return false;
}

/* ---- From:, Message-ID, Return-Path, RFC 2047 ------------------------ */

static int hexval(char c)
{
    if (ascii_is_digit(c))
        return c - '0';
    c = ascii_lc(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (ascii_is_digit(c))
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* base64 of s[0..n) appended to out (non-alphabet bytes skipped), stopping
 * when out holds cap bytes */
static void b64_decode(const char *s, size_t n, struct sbuf *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    char buf[512];
    size_t o = 0;
    for (size_t i = 0; i < n && out->len + o < cap; i++) {
        if (s[i] == '=') {
            acc = 0;
            bits = 0;
            continue;
        }
        int v = b64val(s[i]);
        if (v < 0)
            continue;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (char)((acc >> bits) & 0xff);
            if (o == sizeof buf) {
                sbuf_add(out, buf, o);
                o = 0;
            }
        }
    }
    if (o)
        sbuf_add(out, buf, o);
}

/* quoted-printable; in_header: '_' is a space (RFC 2047 Q) */
static void qp_decode(const char *s, size_t n, struct sbuf *out, size_t cap, bool in_header)
{
    size_t i = 0;
    while (i < n && out->len < cap) {
        char c = s[i];
        if (c == '=' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            sbuf_addc(out, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
            i += 3;
        } else if (c == '=' && i + 1 < n && (s[i + 1] == '\n' || s[i + 1] == '\r')) {
            i += 2;                          /* soft line break */
            if (s[i - 1] == '\r' && i < n && s[i] == '\n')
                i++;
        } else if (c == '=' && i + 1 < n && ascii_is_wsp(s[i + 1])) {
            size_t j = i + 1;                /* "=  \n": soft break with junk */
            while (j < n && ascii_is_wsp(s[j]))
                j++;
            if (j < n && (s[j] == '\r' || s[j] == '\n')) {
                i = j + 1;
                if (s[j] == '\r' && i < n && s[i] == '\n')
                    i++;
            } else {
                sbuf_addc(out, c);
                i++;
            }
        } else {
            sbuf_addc(out, in_header && c == '_' ? ' ' : c);
            i++;
        }
    }
}

enum cs { CS_NONE, CS_UTF8, CS_LATIN1 };

static enum cs charset_of(const char *s, size_t n)
{
    const char *star = memchr(s, '*', n);    /* RFC 2231 language */
    if (star)
        n = (size_t)(star - s);
    if (ascii_ieq(s, n, "utf-8") || ascii_ieq(s, n, "utf8"))
        return CS_UTF8;
    if (ascii_ieq(s, n, "us-ascii") || ascii_ieq(s, n, "ascii") || ascii_ieq(s, n, "iso-8859-1") ||
        ascii_ieq(s, n, "iso8859-1") || ascii_ieq(s, n, "iso_8859-1") || ascii_ieq(s, n, "latin1"))
        return CS_LATIN1;
    return CS_NONE;
}

/* One encoded word "=?cs?E?text?=" at s (NUL-terminated): its length, or 0. */
static size_t encoded_word(const char *s, enum cs *cs, char *enc, const char **t, size_t *tn)
{
    if (s[0] != '=' || s[1] != '?')
        return 0;
    const char *c = s + 2, *q = c;
    while (*q && *q != '?' && !ascii_is_space(*q) && q - c < 64)
        q++;
    if (*q != '?' || q == c || !q[1] || q[2] != '?')
        return 0;
    char e = ascii_lc(q[1]);
    if (e != 'b' && e != 'q')
        return 0;
    const char *txt = q + 3, *x = txt;
    while (*x && !(x[0] == '?' && x[1] == '=') && !ascii_is_space(*x) && x - txt < 2048)
        x++;                     /* RFC 2047 says 75 in all: bounded work */
    if (*x != '?')
        return 0;
    *cs = charset_of(c, (size_t)(q - c));
    *enc = e;
    *t = txt;
    *tn = (size_t)(x - txt);
    return (size_t)(x + 2 - s);
}

static void latin1_to_utf8(struct sbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            sbuf_addc(out, (char)c);
        } else {
            sbuf_addc(out, (char)(0xc0 | (c >> 6)));
            sbuf_addc(out, (char)(0x80 | (c & 0x3f)));
        }
    }
}

/* RFC 2047 words of utf-8/us-ascii/iso-8859-1 decoded to UTF-8; other
 * charsets left as written; white space between two decoded words
 * dropped. A new string. */
static char *decode_2047(const char *s)
{
    struct sbuf out = SBUF_INIT, raw = SBUF_INIT;
    bool after_word = false;            /* just after a decoded word */
    sbuf_add(&out, "", 0);
    while (*s) {
        enum cs cs;
        char enc;
        const char *t;
        size_t tn, k = encoded_word(s, &cs, &enc, &t, &tn);
        if (k && cs != CS_NONE) {
            sbuf_reset(&raw);
            if (enc == 'b')
                b64_decode(t, tn, &raw, MM_MAX_VALUE);
            else
                qp_decode(t, tn, &raw, MM_MAX_VALUE, true);
            if (cs == CS_UTF8)
                sbuf_add(&out, raw.s, raw.len);
            else
                latin1_to_utf8(&out, raw.s, raw.len);
            s += k;
            after_word = true;
            continue;
        }
        if (after_word && ascii_is_space(*s)) {
            const char *ws = s;
            while (ascii_is_space(*s))
                s++;
            if (!*s || !encoded_word(s, &cs, &enc, &t, &tn) || cs == CS_NONE) {
                sbuf_add(&out, ws, (size_t)(s - ws));
                after_word = false;
            }
            continue;
        }
        after_word = false;
        if (k) {                       /* unsupported charset: as written */
            sbuf_add(&out, s, k);
            s += k;
        } else {
            sbuf_addc(&out, *s++);
        }
    }
    sbuf_free(&raw);
    if (out.len > MM_MAX_VALUE) {
        out.len = MM_MAX_VALUE;
        out.s[out.len] = '\0';
    }
    return sbuf_take(&out);
}

static char *trimmed(const char *s, size_t n)
{
    while (n && ascii_is_space(*s)) {
        s++;
        n--;
    }
    while (n && ascii_is_space(s[n - 1]))
        n--;
    return xstrndup(s, n);
}

/* From: value -> address, display name (both new strings or NULL). The
 * first angle-addr outside quotes and comments, else the first word with
 * '@'; the display name is what precedes the angle-addr (quotes undone),
 * else the comment after a bare address. */
static void parse_from(const char *v, char **addr_out, char **disp_out)
{
    struct sbuf disp = SBUF_INIT, clean = SBUF_INIT;
    const char *angle = NULL, *angle_end = NULL, *comment = NULL;
    size_t comment_n = 0;
    bool quoted = false;
    int depth = 0;
    sbuf_add(&disp, "", 0);
    sbuf_add(&clean, "", 0);
    for (const char *p = v; *p && !angle; p++) {
        char c = *p;
        if (quoted) {
            if (c == '\\' && p[1])
                c = *++p;
            else if (c == '"') {
                quoted = false;
                continue;
            }
            sbuf_addc(&disp, c);
        } else if (depth) {
            if (c == '\\' && p[1]) {
                p++;
            } else if (c == '(') {
                depth++;
            } else if (c == ')' && --depth == 0) {
                if (comment && !comment_n)
                    comment_n = (size_t)(p - comment);
                sbuf_addc(&clean, ' ');
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == '(') {
            depth = 1;
            if (!comment)
                comment = p + 1;
        } else if (c == '<') {
            angle = p + 1;
            angle_end = strchr(angle, '>');
            if (!angle_end)
                angle_end = angle + strlen(angle);
        } else {
            sbuf_addc(&disp, c);
            sbuf_addc(&clean, c);
        }
    }
    *addr_out = NULL;
    *disp_out = NULL;
    char *d = NULL;
    if (angle) {
        const char *a = angle;
        /* obsolete source route "<@relay:user@domain>" */
        const char *colon = memchr(a, ':', (size_t)(angle_end - a));
        if (*a == '@' && colon)
            a = colon + 1;
        *addr_out = trimmed(a, (size_t)(angle_end - a));
        d = trimmed(disp.s, disp.len);
    } else {
        const char *c = clean.s, *at = strchr(c, '@');
        if (at) {
            const char *s = at, *e = at;
            while (s > c && !ascii_is_space(s[-1]) && s[-1] != ',' && s[-1] != ':')
                s--;
            while (*e && !ascii_is_space(*e) && *e != ',' && *e != ';')
                e++;
            *addr_out = xstrndup(s, (size_t)(e - s));
        }
        if (comment)
            d = trimmed(comment, comment_n ? comment_n : strlen(comment));
    }
    if (*addr_out && !**addr_out) {
        free(*addr_out);
        *addr_out = NULL;
    }
    if (d && *d)
        *disp_out = decode_2047(d);
    free(d);
    sbuf_free(&disp);
    sbuf_free(&clean);
}

char *mailmsg_from_display(const char *from_value)
{
    char *addr, *disp;
    parse_from(from_value, &addr, &disp);
    free(addr);
    return disp;
}

char *mailmsg_decode_words(const char *value)
{
    return decode_2047(value);
}

/* "<id@domain>" -> "id@domain" (a bare id kept as its first word) */
static char *angle_value(const char *v)
{
    const char *lt = strchr(v, '<');
    if (lt) {
        const char *gt = strchr(lt + 1, '>');
        return trimmed(lt + 1, gt ? (size_t)(gt - lt - 1) : strlen(lt + 1));
    }
    size_t n = 0;
    while (v[n] && !ascii_is_space(v[n]))
        n++;
    return xstrndup(v, n);
}

char *mailmsg_id_domain(const char *s)
{
    const char *at = strrchr(s, '@');
    if (!at)
        return NULL;
    size_t n = strlen(at + 1);
    if (n && at[n] == '.')
        n--;
    return n ? dup_lower(at + 1, n) : NULL;
}

/* ---- mailmsg_parse ------------------------------------------------------ */

void mailmsg_clear(struct mailmsg *m)
{
    if (!m)
        return;
    free(m->client_ip);
    free(m->helo);
    free(m->ptr);
    free(m->env_sender);
    free(m->from);
    free(m->from_addr);
    free(m->from_domain);
    free(m->from_display);
    free(m->message_id);
    free(m->msgid_domain);
    free(m->subject);
    free(m->content_type);
    free(m->cte);
    memset(m, 0, sizeof *m);
}

/* keep the first occurrence of a field */
static void first(char **slot, const char *vs, const char *ve)
{
    if (!*slot)
        *slot = unfold(vs, ve, MM_MAX_VALUE);
}

int mailmsg_parse(const char *text, size_t len, const struct cidrset *trusted,
                  struct mailmsg *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!text)
        len = 0;
    struct hiter it;
    const char *name, *vs, *ve;
    size_t nl;
    struct ip spf_ip = { { 0 } }, ar_addr = { { 0 } };
    bool have_spf = false, have_ar = false, spf_done = false;
    char *spf_helo = NULL, *date = NULL, *rpath = NULL, *msgid = NULL;

    hiter_init(&it, text, len, true);
    while (hiter_next(&it, &name, &nl, &vs, &ve)) {
        out->nheaders++;
        if (!spf_done && ascii_ieq(name, nl, "Received-SPF")) {
            /* The topmost field is the receiving site's. One of its own
             * relays may have checked again (private or trusted address:
             * look further down), but without client-ip at all the fields
             * below were written by earlier hops (a forwarder's SPF check
             * of its own client) and say nothing about ours. */
            char *v = unfold(vs, ve, MM_MAX_HOP);
            if (!keyed_ip(v, "client-ip=", &spf_ip)) {
                spf_done = true;
            } else if (client_ok(&spf_ip, trusted)) {
                have_spf = spf_done = true;
                spf_helo = keyed_word(v, "helo=");
            }
            free(v);
        } else if (!have_ar && ascii_ieq(name, nl, "Authentication-Results")) {
            char *v = unfold(vs, ve, MM_MAX_HOP);
            have_ar = ar_ip(v, &ar_addr) && client_ok(&ar_addr, trusted);
            free(v);
        } else if (ascii_ieq(name, nl, "Return-Path")) {
            first(&rpath, vs, ve);
        } else if (ascii_ieq(name, nl, "From")) {
            first(&out->from, vs, ve);
        } else if (ascii_ieq(name, nl, "Message-ID")) {
            first(&msgid, vs, ve);
        } else if (ascii_ieq(name, nl, "Subject")) {
            first(&out->subject, vs, ve);
        } else if (ascii_ieq(name, nl, "Content-Type")) {
            first(&out->content_type, vs, ve);
        } else if (ascii_ieq(name, nl, "Content-Transfer-Encoding")) {
            first(&out->cte, vs, ve);
        } else if (ascii_ieq(name, nl, "Date")) {
            first(&date, vs, ve);
        }
    }
    if (out->nheaders == 0) {
        mailmsg_clear(out);
        if (err && errlen)
            snprintf(err, errlen, "no header fields");
        return -1;
    }
    out->body = it.body;
    out->body_len = (size_t)(it.end - it.body);

    if (out->subject) {
        char *d = decode_2047(out->subject);
        free(out->subject);
        out->subject = d;
    }
    if (out->from) {
        char dom[ADDR_MAX_DOMAIN + 1];
        parse_from(out->from, &out->from_addr, &out->from_display);
        if (addr_header_domain(out->from, dom, sizeof dom) == 0)
            out->from_domain = xstrdup(dom);
    }
    if (msgid) {
        out->message_id = angle_value(msgid);
        if (!*out->message_id) {
            free(out->message_id);
            out->message_id = NULL;
        } else {
            out->msgid_domain = mailmsg_id_domain(out->message_id);
        }
    }
    if (rpath)
        out->env_sender = angle_value(rpath);

    /* the client, and the hop that names it */
    struct ip client = { { 0 } };
    bool have_client = have_spf || have_ar;
    if (have_spf) {
        client = spf_ip;
        out->client_from = "received-spf";
    } else if (have_ar) {
        client = ar_addr;
        out->client_from = "authentication-results";
    }
    struct rcvd_hop hop = { 0 };
    bool found = false;
    size_t hops = 0;
    hiter_init(&it, text, len, true);
    while (!found && hops < MM_MAX_HOPS && hiter_next(&it, &name, &nl, &vs, &ve)) {
        if (!ascii_ieq(name, nl, "Received"))
            continue;
        hops++;
        char *v = unfold(vs, ve, MM_MAX_HOP);
        rcvd_parse(v, &hop);
        free(v);
        if (hop.has_ip && (have_client ? ip_cmp(&hop.ip, &client) == 0
                                       : client_ok(&hop.ip, trusted))) {
            found = true;
            if (!have_client) {
                client = hop.ip;
                have_client = true;
                out->client_from = "received";
            }
        } else {
            rcvd_hop_clear(&hop);
        }
    }
    if (have_client) {
        char buf[IP_STRLEN];
        ip_format(&client, buf, sizeof buf);
        out->client_ip = xstrdup(buf);
    }
    if (found) {
        out->helo = hop.helo;
        out->ptr = hop.rdns;
        out->time_ms = hop.time_ms;
        hop.helo = hop.rdns = NULL;
    } else if (have_spf && spf_helo) {
        out->helo = spf_helo;
        spf_helo = NULL;
    }
    if (!out->time_ms)
        out->time_ms = rcvd_date(date, NULL);
    rcvd_hop_clear(&hop);
    free(spf_helo);
    free(date);
    free(rpath);
    free(msgid);
    return 0;
}

/* ---- mbox ---------------------------------------------------------------- */

/* "From sender Wed Oct 30 21:38:11 2002": a sender word, then a time. */
static bool postmark(const char *s, size_t n)
{
    if (n < 5 || memcmp(s, "From ", 5) != 0)
        return false;
    size_t i = 5;
    while (i < n && s[i] == ' ')
        i++;
    size_t w = i;
    while (i < n && !ascii_is_space(s[i]))
        i++;
    if (i == w)
        return false;
    for (; i + 2 < n; i++)
        if (ascii_is_digit(s[i]) && s[i + 1] == ':' && ascii_is_digit(s[i + 2]))
            return true;
    return false;
}

size_t mailmsg_split_mbox(const char *text, size_t len, mailmsg_fn fn, void *arg)
{
    if (!text || !len || !fn)
        return 0;
    if (len < 5 || memcmp(text, "From ", 5) != 0) {
        fn(text, len, arg);
        return 1;
    }
    size_t count = 0;
    const char *p = text, *end = text + len, *msg = NULL;
    for (;;) {
        bool last = p == end;
        const char *nl = last ? NULL : memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end;
        if (last || p == text || postmark(p, (size_t)(next - p))) {
            if (msg) {
                size_t n = (size_t)(p - msg);
                /* the blank line mbox puts before "From " is not the message's */
                if (n >= 4 && memcmp(msg + n - 4, "\r\n\r\n", 4) == 0)
                    n -= 2;
                else if (n >= 2 && msg[n - 1] == '\n' && msg[n - 2] == '\n')
                    n--;
                if (n) {
                    count++;
                    if (fn(msg, n, arg) != 0)
                        break;
                }
            }
            msg = next;
        }
        if (last)
            break;
        p = next;
    }
    return count;
}

/* ---- body fingerprint -------------------------------------------------- */

static bool ct_is(const char *ct, const char *type)
{
    if (!ct)
        return false;
    while (ascii_is_space(*ct))
        ct++;
    return istarts(ct, type);
}

/* boundary= parameter of a Content-Type value, into buf; false if none */
static bool boundary_of(const char *ct, char *buf, size_t size)
{
    size_t n = strlen(ct);
    for (const char *p = ct; (p = ifind(p, n - (size_t)(p - ct), "boundary")); p += 8) {
        if (p > ct && !ascii_is_space(p[-1]) && p[-1] != ';')
            continue;
        const char *s = p + 8;
        while (ascii_is_space(*s))
            s++;
        if (*s != '=')
            continue;
        s++;
        while (ascii_is_space(*s))
            s++;
        size_t o = 0;
        if (*s == '"') {
            for (s++; *s && *s != '"' && o + 1 < size; s++) {
                if (*s == '\\' && s[1])
                    s++;
                buf[o++] = *s;
            }
        } else {
            for (; *s && !ascii_is_space(*s) && *s != ';' && o + 1 < size; s++)
                buf[o++] = *s;
        }
        buf[o] = '\0';
        return o > 0;
    }
    return false;
}

static void decode_part(const char *s, size_t n, const char *cte, struct sbuf *out)
{
    while (cte && ascii_is_space(*cte))
        cte++;
    if (cte && istarts(cte, "base64"))
        b64_decode(s, n, out, MM_MAX_TEXT);
    else if (cte && istarts(cte, "quoted-printable"))
        qp_decode(s, n, out, MM_MAX_TEXT, false);
    else
        sbuf_add(out, s, n < MM_MAX_TEXT ? n : MM_MAX_TEXT);
}

struct leaf {
    const char *s;
    size_t n;
    char *cte;
    bool html;             /* Content-Type text/html */
};

struct want {
    struct leaf any;       /* the first part of any type */
    struct leaf text;      /* the skip-th text part */
    int skip;
};

static bool find_text(const char *body, size_t len, const char *ct, const char *cte,
                      int depth, struct want *w);

/* One MIME part (its header, blank line, body) at s[0..n). */
static bool part_text(const char *s, size_t n, int depth, struct want *w)
{
    struct hiter it;
    const char *name, *vs, *ve;
    size_t nl;
    char *ct = NULL, *cte = NULL;
    hiter_init(&it, s, n, false);
    while (hiter_next(&it, &name, &nl, &vs, &ve)) {
        if (ascii_ieq(name, nl, "Content-Type"))
            first(&ct, vs, ve);
        else if (ascii_ieq(name, nl, "Content-Transfer-Encoding"))
            first(&cte, vs, ve);
    }
    bool done = find_text(it.body, (size_t)(it.end - it.body), ct, cte, depth, w);
    free(ct);
    free(cte);
    return done;
}

/* The w->skip-th text part of a body (MIME order) into w->text (true once
 * found), and the first part of any type into w->any. */
static bool find_text(const char *body, size_t len, const char *ct, const char *cte,
                      int depth, struct want *w)
{
    char bnd[256];
    if (!(ct_is(ct, "multipart/") && depth < MM_MAX_DEPTH && boundary_of(ct, bnd, sizeof bnd))) {
        bool text = !ct || !*ct || ct_is(ct, "text/");
        if (text && w->skip > 0) {
            w->skip--;
            text = false;
        }
        struct leaf *l = text ? &w->text : &w->any;
        if (!l->s) {
            l->s = body;
            l->n = len;
            l->cte = cte ? xstrdup(cte) : NULL;
            l->html = ct_is(ct, "text/html");
        }
        return text;
    }
    size_t blen = strlen(bnd);
    const char *p = body, *end = body + len, *part = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end;
        size_t ln = (size_t)(next - p);
        if (ln >= 2 + blen && p[0] == '-' && p[1] == '-' && memcmp(p + 2, bnd, blen) == 0) {
            bool closing = ln >= 4 + blen && p[2 + blen] == '-' && p[3 + blen] == '-';
            if (part) {
                const char *pe = p;           /* the delimiter owns the line break */
                if (pe > part && pe[-1] == '\n')
                    pe--;
                if (pe > part && pe[-1] == '\r')
                    pe--;
                if (part_text(part, (size_t)(pe - part), depth + 1, w))
                    return true;
            }
            if (closing)
                return false;
            part = next;
        }
        p = next;
    }
    if (part)                                 /* cut short: the last part */
        return part_text(part, (size_t)(end - part), depth + 1, w);
    if (!w->any.s) {                          /* no delimiter at all: the raw body */
        w->any.s = body;
        w->any.n = len;
    }
    return false;
}

struct fp {
    uint64_t h;
    bool any;
    int greet_skip;        /* words still to skip after a greeting */
};

static void fp_bytes(struct fp *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        f->h ^= (unsigned char)ascii_lc(s[i]);
        f->h *= 0x100000001b3ULL;
    }
    f->any = true;
}

static bool greeting(const char *w, size_t n)
{
    static const char *const words[] = {
        "dear", "hi", "hello", "hey", "hallo", "hola", "ola", "ol\xc3\xa1", "prezado",
        "prezada", "prezado(a)", "caro", "cara", "estimado", "estimada", "querido",
        "querida", "bonjour", "cher", "ch\xc3\xa8re", "chere", "ciao", "gentile",
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (ascii_ieq(w, n, words[i]))
            return true;
    return false;
}

/* one word (letters, digits, bytes >= 0x80) */
static void fp_word(struct fp *f, const char *w, size_t n)
{
    bool digit = false;
    for (size_t i = 0; i < n; i++)
        digit |= ascii_is_digit(w[i]);
    if (f->greet_skip > 0) {
        f->greet_skip--;
        return;
    }
    if (digit || n > 30)
        return;
    if (greeting(w, n))
        f->greet_skip = 3;
    fp_bytes(f, w, n);
}

static bool word_byte(char c)
{
    return ascii_is_alpha(c) || ascii_is_digit(c) || (unsigned char)c >= 0x80;
}

/* "&name;" / "&#123;" at s: its length, or 0 */
static size_t entity(const char *s, size_t n)
{
    size_t i = 1;
    while (i < n && i <= 10 && (ascii_is_alpha(s[i]) || ascii_is_digit(s[i]) || s[i] == '#'))
        i++;
    return i > 1 && i < n && s[i] == ';' ? i + 1 : 0;
}

/* The words of one white-space-free chunk of text. */
static void fp_chunk(struct fp *f, const char *s, size_t n)
{
    const char *scheme = ifind(s, n, "://");
    if (scheme || (n > 4 && ascii_ieq_n(s, "www.", 4))) {
        const char *h = scheme ? scheme + 3 : s;
        const char *e = h;
        while (e < s + n && !strchr("/?#:@\\", *e))
            e++;
        if (e < s + n && *e == '@') {          /* user@host: skip the user */
            h = e + 1;
            for (e = h; e < s + n && !strchr("/?#:\\", *e); e++)
                ;
        }
        f->greet_skip = 0;
        for (const char *p = h; p < e;) {
            const char *w = p;
            while (p < e && word_byte(*p))
                p++;
            if (p > w)
                fp_word(f, w, (size_t)(p - w));
            else
                p++;
        }
        return;
    }
    const char *at = memchr(s, '@', n);
    if (at && at > s && at + 1 < s + n && word_byte(at[-1]) && word_byte(at[1]))
        return;                                /* an e-mail address */
    size_t i = 0;
    while (i < n) {
        if (word_byte(s[i])) {
            size_t j = i;
            while (j < n && word_byte(s[j]))
                j++;
            fp_word(f, s + i, j - i);
            i = j;
        } else if (s[i] == '&' && entity(s + i, n - i)) {
            i += entity(s + i, n - i);
        } else {
            if (strchr(",:;!?.", s[i]))
                f->greet_skip = 0;
            i++;
        }
    }
}

static bool chunk_byte(char c)
{
    return !ascii_is_space(c) && c != '<' && c != '>' && c != '"' && c != '\'' && c != '\0';
}

/* HTML without saying so (no or a wrong Content-Type)? */
static bool looks_html(const char *t, size_t n)
{
    static const char *const tags[] = { "html", "body", "div", "br", "table", "p>", "p ",
                                        "a href", "!doctype", "span", "font" };
    if (n > 8192)
        n = 8192;
    for (const char *p = t, *end = t + n; (p = memchr(p, '<', (size_t)(end - p))); p++)
        for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
            size_t k = strlen(tags[i]);
            if ((size_t)(end - p - 1) >= k && ascii_ieq_n(p + 1, tags[i], k))
                return true;
        }
    return false;
}

static void fp_text(struct fp *f, const char *t, size_t n, bool html)
{
    size_t i = 0;
    while (i < n) {
        char c = t[i];
        if (html && c == '<' && i + 1 < n &&
            (ascii_is_alpha(t[i + 1]) || t[i + 1] == '/' || t[i + 1] == '!' || t[i + 1] == '?')) {
            if (i + 3 < n && memcmp(t + i, "<!--", 4) == 0) {
                const char *e = NULL;
                for (size_t k = i + 4; k + 2 < n && !e; k++)
                    if (t[k] == '-' && t[k + 1] == '-' && t[k + 2] == '>')
                        e = t + k + 3;
                i = e ? (size_t)(e - t) : n;
                continue;
            }
            size_t k = i + 1;
            while (k < n && ascii_is_alpha(t[k]))
                k++;
            bool style = ascii_ieq(t + i + 1, k - i - 1, "style");
            bool script = ascii_ieq(t + i + 1, k - i - 1, "script");
            char q = 0;           /* quotes count only as attribute values */
            bool eq = false;
            for (; k < n; k++) {
                if (q) {
                    if (t[k] == q)
                        q = 0;
                } else if ((t[k] == '"' || t[k] == '\'') && eq) {
                    q = t[k];
                } else if (t[k] == '>') {
                    break;
                }
                if (!ascii_is_space(t[k]))
                    eq = t[k] == '=';
            }
            i = k < n ? k + 1 : n;
            if (style || script) {
                const char *close = script ? "</script" : "</style";
                const char *e = ifind(t + i, n - i, close);
                i = e ? (size_t)(e - t) : n;
            }
            continue;
        }
        if (!chunk_byte(c)) {
            if (c == '\n')
                f->greet_skip = 0;
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && chunk_byte(t[j]))
            j++;
        fp_chunk(f, t + i, j - i);
        i = j;
    }
}

/* The fingerprint state after the text of the skip-th text part (or, with
 * no text part at all, the first part); false when there is no such part. */
static bool fp_part(const char *body, size_t len, const char *ct, const char *cte, int skip,
                    struct fp *f)
{
    struct want w;
    memset(&w, 0, sizeof w);
    w.skip = skip;
    bool text = find_text(body, len, ct, cte, 0, &w);
    struct leaf *l = text ? &w.text : skip == 0 ? &w.any : NULL;
    if (l && l->s) {
        struct sbuf t = SBUF_INIT;
        decode_part(l->s, l->n, l->cte, &t);
        const char *s = t.s ? t.s : "";
        fp_text(f, s, t.len, l->html || looks_html(s, t.len));
        sbuf_free(&t);
    }
    free(w.any.cte);
    free(w.text.cte);
    return text;
}

uint64_t mailmsg_body_fingerprint(const char *body, size_t len, const char *content_type,
                                  const char *cte)
{
    if (!body || !len)
        return 0;
    if (len > MM_MAX_BODY)
        len = MM_MAX_BODY;
    struct fp f = { 0xcbf29ce484222325ULL, false, 0 };
    /* the first text part with any words in it: an empty text/plain
     * alternative is common in spam */
    for (int skip = 0; skip < 4 && !f.any; skip++)
        if (!fp_part(body, len, content_type, cte, skip, &f))
            break;
    if (!f.any)
        return 0;
    uint64_t h = f.h;                          /* splitmix64 finaliser */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}
