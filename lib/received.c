/* received: a Received: value taken apart; see received.h.
 *
 * Shape: the date is what follows the last ';' outside comments. Before
 * it, words outside comments are split into clauses at the keywords from,
 * by, via, with, id, for (a second "from" is an ordinary word); comments
 * belong to the clause they stand in. The from clause keeps its first
 * word, up to 8 more words and 8 comments, and the host facts come out of
 * those comments as each MTA writes them. Bounded: at most RCVD_MAX_VALUE
 * bytes are read, names are cut at RCVD_MAX_NAME and other text at
 * RCVD_MAX_TEXT, so work is linear and memory small whatever the input. */
#include "received.h"

#include <stdlib.h>
#include <string.h>

#include "ascii.h"
#include "timeutil.h"
#include "xalloc.h"


/* ---- dates (RFC 5322 with the obsolete forms, and asctime) ------------- */

static int month_of(const char *w, size_t n)
{
    static const char *const names[] = { "jan", "feb", "mar", "apr", "may", "jun",
                                         "jul", "aug", "sep", "oct", "nov", "dec" };
    static const char *const full[] = { "january", "february", "march", "april", "may",
                                        "june", "july", "august", "september",
                                        "october", "november", "december" };
    for (int i = 0; i < 12; i++)
        if (ascii_ieq(w, n, names[i]) || ascii_ieq(w, n, full[i]) || (i == 8 && ascii_ieq(w, n, "sept")))
            return i + 1;
    return 0;
}

static bool weekday(const char *w, size_t n)
{
    static const char *const names[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };
    static const char *const full[] = { "monday", "tuesday", "wednesday", "thursday",
                                        "friday", "saturday", "sunday" };
    for (int i = 0; i < 7; i++)
        if (ascii_ieq(w, n, names[i]) || ascii_ieq(w, n, full[i]))
            return true;
    return false;
}

/* Offset in minutes east of UTC of a zone name; false if unknown. RFC 5322
 * 4.3 names, military letters (as -0000, per the RFC) and a few common
 * ones. */
static bool zone_name(const char *w, size_t n, int *mins)
{
    static const struct { const char *name; int mins; } zones[] = {
        { "ut", 0 }, { "utc", 0 }, { "gmt", 0 }, { "z", 0 },
        { "est", -300 }, { "edt", -240 }, { "cst", -360 }, { "cdt", -300 },
        { "mst", -420 }, { "mdt", -360 }, { "pst", -480 }, { "pdt", -420 },
        { "akst", -540 }, { "akdt", -480 }, { "hst", -600 },
        { "wet", 0 }, { "west", 60 }, { "bst", 60 }, { "cet", 60 }, { "cest", 120 },
        { "met", 60 }, { "mest", 120 }, { "eet", 120 }, { "eest", 180 },
        { "msk", 180 }, { "jst", 540 }, { "kst", 540 }, { "hkt", 480 },
        { "aest", 600 }, { "aedt", 660 }, { "nzst", 720 }, { "nzdt", 780 },
    };
    for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++)
        if (ascii_ieq(w, n, zones[i].name)) {
            *mins = zones[i].mins;
            return true;
        }
    if (n == 1 && ascii_is_alpha(*w) && ascii_lc(*w) != 'j') {
        *mins = 0;
        return true;
    }
    return false;
}

int64_t rcvd_date(const char *s, int *tz_mins)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int nums[2], nnum = 0, month = 0, h = -1, mi = 0, sec = 0, frac = 0;
    bool have_zone = false, have_czone = false, pm = false, am = false;
    int zone = 0, czone = 0;
    if (tz_mins)
        *tz_mins = 0;
    if (!s)
        return 0;
    size_t n = strnlen(s, 512);
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '(') {                          /* comment: maybe a zone name */
            int depth = 0;
            size_t j = i;
            for (; j < n; j++) {
                if (s[j] == '(')
                    depth++;
                else if (s[j] == ')' && --depth == 0)
                    break;
            }
            size_t k = i + 1;
            while (k < j && ascii_is_wsp(s[k]))
                k++;
            size_t w = k;
            while (w < j && ascii_is_alpha(s[w]))
                w++;
            int m;
            if (!have_czone && w > k && zone_name(s + k, w - k, &m)) {
                have_czone = true;
                czone = m;
            }
            i = j < n ? j + 1 : n;
        } else if ((c == '+' || c == '-') && i + 2 < n && ascii_is_digit(s[i + 1]) &&
                   ascii_is_digit(s[i + 2])) {
            size_t j = i + 3;
            if (j < n && s[j] == ':')
                j++;
            if (j + 2 > n || !ascii_is_digit(s[j]) || !ascii_is_digit(s[j + 1]) ||
                (j + 2 < n && ascii_is_digit(s[j + 2])))
                return 0;
            int zh = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
            int zm = (s[j] - '0') * 10 + (s[j + 1] - '0');
            if (have_zone || h < 0 || zh > 23 || zm > 59)
                return 0;
            have_zone = true;
            zone = (zh * 60 + zm) * (c == '-' ? -1 : 1);
            i = j + 2;
            if (nnum == 2 && month)
                break;                   /* complete: junk after it ignored */
        } else if (ascii_is_digit(c)) {
            size_t j = i;
            while (j < n && (ascii_is_digit(s[j]) || s[j] == ':'))
                j++;
            if (memchr(s + i, ':', j - i)) {      /* hh:mm[:ss] */
                int part[3] = { 0, 0, 0 }, np = 0, nd = 0;
                if (h >= 0)
                    return 0;
                for (size_t k = i; k < j; k++) {
                    if (s[k] == ':') {
                        if (nd == 0 || ++np > 2)
                            return 0;
                        nd = 0;
                    } else {
                        if (++nd > 2)
                            return 0;
                        part[np] = part[np] * 10 + (s[k] - '0');
                    }
                }
                if (nd == 0 || np < 1)
                    return 0;
                h = part[0];
                mi = part[1];
                sec = np == 2 ? part[2] : 0;
                if (h > 23 || mi > 59 || sec > 60)
                    return 0;
                if (sec == 60)
                    sec = 59;
                if (np == 2 && j + 1 < n && s[j] == '.' && ascii_is_digit(s[j + 1])) {
                    int scale = 100;             /* ".123": milliseconds */
                    for (j++; j < n && ascii_is_digit(s[j]); j++, scale /= 10)
                        frac += (s[j] - '0') * scale;
                }
            } else {
                if (j - i > 4 || nnum == 2)
                    return 0;
                int v = 0;
                for (size_t k = i; k < j; k++)
                    v = v * 10 + (s[k] - '0');
                if (nnum == 1)              /* the year keeps its width */
                    v = j - i == 2 ? (v < 50 ? 2000 + v : 1900 + v)
                                   : j - i == 3 ? 1900 + v : v;
                else if (j - i > 2)
                    return 0;
                nums[nnum++] = v;
            }
            i = j;
        } else if (ascii_is_alpha(c)) {
            size_t j = i;
            while (j < n && ascii_is_alpha(s[j]))
                j++;
            int m;
            if (weekday(s + i, j - i)) {
                /* ignored */
            } else if (!month && (m = month_of(s + i, j - i))) {
                month = m;
            } else if (ascii_ieq(s + i, j - i, "pm") || ascii_ieq(s + i, j - i, "am")) {
                if (h < 0)
                    return 0;
                pm = ascii_lc(c) == 'p';
                am = !pm;
            } else if (h >= 0 && zone_name(s + i, j - i, &m)) {
                if (!have_zone)                /* "-0400 EDT": the number wins */
                    zone = m;
                have_zone = true;
            } else {
                return 0;                  /* a word that is no part of a date */
            }
            i = j;
        } else if (ascii_is_space(c) || c == ',' || c == '.' || c == '-' || c == '/') {
            i++;
        } else if ((unsigned char)c >= 0x80 && nnum == 0 && !month) {
            while (i < n && (unsigned char)s[i] >= 0x80)
                i++;                     /* a weekday in another language */
        } else {
            return 0;
        }
    }
    if (nnum != 2 || !month || h < 0)
        return 0;
    if (pm && h < 12)
        h += 12;
    else if (am && h == 12)
        h = 0;
    int day = nums[0], year = nums[1];
    if (year < 1970 || year > 9999 || day < 1 ||
        day > mdays[month - 1] + (month == 2 && ((year % 4 == 0 && year % 100 != 0) ||
                                                 year % 400 == 0)))
        return 0;
    if (!have_zone && have_czone)
        zone = czone;
    int64_t t = tu_days_from_civil(year, month, day) * 86400 + h * 3600 + mi * 60 + sec -
                (int64_t)zone * 60;
    if (t <= 0)
        return 0;
    if (tz_mins)
        *tz_mins = zone;
    return t * 1000 + frac;
}

/* ---- addresses ------------------------------------------------------------ */

bool rcvd_ip_public(const struct ip *a)
{
    const uint8_t *b = a->b;
    if (ip_is_v4(a)) {
        uint8_t x = b[12], y = b[13];
        if (x == 0 || x == 10 || x == 127 || x >= 224)
            return false;
        if (x == 100 && (y & 0xc0) == 64)
            return false;
        if (x == 169 && y == 254)
            return false;
        if (x == 172 && (y & 0xf0) == 16)
            return false;
        if (x == 192 && y == 168)
            return false;
        if (x == 192 && y == 0 && b[14] == 0)
            return false;
        if (x == 198 && (y & 0xfe) == 18)
            return false;
        return true;
    }
    static const uint8_t zero[16];
    if (memcmp(b, zero, 15) == 0)           /* :: and ::1 */
        return false;
    if (b[0] == 0xff || (b[0] & 0xfe) == 0xfc)          /* multicast, ULA */
        return false;
    if (b[0] == 0xfe && (b[1] & 0x80) == 0x80)          /* link/site-local */
        return false;
    return true;
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

/* ---- the from clause ------------------------------------------------------ */

struct span {
    const char *s;
    size_t n;
};

/* A host name as a Received field writes it: "unknown" and empty are none,
 * one trailing dot and an "ident@" prefix dropped. */
static char *name_of(struct span w, bool ptr)
{
    if (ptr) {
        const char *at = NULL;
        for (size_t i = 0; i < w.n; i++)
            if (w.s[i] == '@')
                at = w.s + i;
        if (at) {
            w.n -= (size_t)(at + 1 - w.s);
            w.s = at + 1;
        }
        if (w.n && w.s[w.n - 1] == '.')
            w.n--;
    }
    if (w.n == 0 || ascii_ieq(w.s, w.n, "unknown"))
        return NULL;
    return xstrndup(w.s, w.n < RCVD_MAX_NAME ? w.n : RCVD_MAX_NAME);
}

static bool is_literal(struct span w)
{
    struct ip tmp;
    return (w.n && w.s[0] == '[') || parse_ip_n(w.s, w.n, &tmp);
}

/* "[ADDR]" or "[ADDR]:port" at the start of w */
static bool bracket_ip(struct span w, struct ip *out)
{
    if (w.n < 3 || w.s[0] != '[')
        return false;
    const char *e = memchr(w.s, ']', w.n);
    return e && parse_ip_n(w.s, (size_t)(e + 1 - w.s), out);
}

/* A bare address, after an "ident@" prefix when there is one (qmail). */
static bool bare_ip(struct span w, struct ip *out)
{
    const char *at = memchr(w.s, '@', w.n);
    if (at) {
        w.n -= (size_t)(at + 1 - w.s);
        w.s = at + 1;
    }
    return parse_ip_n(w.s, w.n, out);
}

/* Words of a comment's text c[0..n), nested comments skipped; at most max. */
static size_t comment_words(const char *c, size_t n, struct span *w, size_t max)
{
    size_t k = 0, i = 0;
    int depth = 0;
    while (i < n && k < max) {
        if (c[i] == '(') {
            depth++;
            i++;
        } else if (c[i] == ')') {
            depth -= depth > 0;
            i++;
        } else if (depth || ascii_is_space(c[i]) || c[i] == ',') {
            i++;
        } else {
            size_t j = i;
            while (j < n && !ascii_is_space(c[j]) && c[j] != '(' && c[j] != ')' && c[j] != ',')
                j++;
            w[k].s = c + i;
            w[k++].n = j - i;
            i = j;
        }
    }
    return k;
}

#define FROM_MAX 8

struct from_clause {
    struct span tok0;               /* the first word */
    struct span words[FROM_MAX];    /* the words after it */
    struct span comments[FROM_MAX]; /* comment texts without the parentheses */
    size_t nwords, ncomments;
};

/* HELO, PTR name and address out of the from clause (see received.h for
 * the shapes). exim: the value names Exim, which writes "PTR ([ADDR])"
 * when the HELO was the PTR name. */
static void from_facts(const struct from_clause *f, bool exim, struct rcvd_hop *h)
{
    struct span helo = { NULL, 0 }, ptr = { NULL, 0 }, tok0 = f->tok0;
    bool explicit_helo = false, ip_from_tok0 = false;
    for (size_t c = 0; c < f->ncomments; c++) {
        struct span w[32];
        size_t nw = comment_words(f->comments[c].s, f->comments[c].n, w, 32);
        for (size_t i = 0; i < nw; i++) {
            struct ip a;
            if (!explicit_helo && w[i].n > 5 && ascii_ieq_n(w[i].s, "helo=", 5)) {
                helo.s = w[i].s + 5;
                helo.n = w[i].n - 5;
                explicit_helo = true;
            } else if (!explicit_helo && i + 1 < nw &&
                       (ascii_ieq(w[i].s, w[i].n, "helo") || ascii_ieq(w[i].s, w[i].n, "ehlo"))) {
                helo = w[++i];
                explicit_helo = true;
            } else if (!h->has_ip && bracket_ip(w[i], &a)) {
                h->has_ip = true;
                h->ip = a;
                if (i > 0 && !memchr(w[i - 1].s, '=', w[i - 1].n))
                    ptr = w[i - 1];
            } else if (!h->has_ip && bare_ip(w[i], &a)) {
                h->has_ip = true;
                h->ip = a;
                if (i > 0 && !memchr(w[i - 1].s, '=', w[i - 1].n) &&
                    memchr(w[i - 1].s, '.', w[i - 1].n))
                    ptr = w[i - 1];
            }
        }
    }
    for (size_t i = 0; i < f->nwords && !h->has_ip; i++)
        h->has_ip = bracket_ip(f->words[i], &h->ip);
    if (!h->has_ip) {
        struct ip a;
        if (bracket_ip(tok0, &a) || parse_ip_n(tok0.s, tok0.n, &a)) {
            h->has_ip = true;
            h->ip = a;
            ip_from_tok0 = true;
        }
    }
    if (explicit_helo) {
        if (!ptr.s && !is_literal(tok0))
            ptr = tok0;                 /* Exim, qmail: the name is the PTR */
    } else if (exim) {
        if (!is_literal(tok0))
            helo = ptr = tok0;
    } else if (!ip_from_tok0 || tok0.s[0] == '[') {
        helo = tok0;
    }
    h->from = name_of(tok0, false);
    if (helo.s)
        h->helo = name_of(helo, false);
    if (ptr.s)
        h->rdns = name_of(ptr, true);
}

/* ---- clauses ---------------------------------------------------------------- */

enum clause { CL_NONE, CL_FROM, CL_BY, CL_VIA, CL_WITH, CL_ID, CL_FOR };

static enum clause keyword(struct span w, bool have_from)
{
    static const struct { const char *word; enum clause cl; } kw[] = {
        { "by", CL_BY }, { "via", CL_VIA }, { "with", CL_WITH }, { "id", CL_ID },
        { "for", CL_FOR },
    };
    if (!have_from && ascii_ieq(w.s, w.n, "from"))
        return CL_FROM;
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (ascii_ieq(w.s, w.n, kw[i].word))
            return kw[i].cl;
    return CL_NONE;
}

/* Append word w to *slot, words separated by one space, at most
 * RCVD_MAX_TEXT bytes in all. */
static void add_word(char **slot, struct span w)
{
    size_t have = *slot ? strlen(*slot) : 0;
    if (have + (have > 0) >= RCVD_MAX_TEXT)
        return;
    size_t room = RCVD_MAX_TEXT - have - (have > 0);
    size_t n = w.n < room ? w.n : room;
    *slot = xrealloc(*slot, have + (have > 0) + n + 1);
    if (have)
        (*slot)[have++] = ' ';
    memcpy(*slot + have, w.s, n);
    (*slot)[have + n] = '\0';
}

/* The end of the comment that starts at p (or e when it never closes). */
static const char *comment_end(const char *p, const char *e)
{
    int depth = 0;
    for (; p < e; p++) {
        if (*p == '\\' && p + 1 < e)
            p++;
        else if (*p == '(')
            depth++;
        else if (*p == ')' && --depth == 0)
            return p;
    }
    return e;
}

/* The ';' before the date: the last one outside comments, else the last. */
static const char *date_semicolon(const char *v, const char *e)
{
    const char *semi = NULL;
    for (const char *p = v; p < e; p++) {
        if (*p == '(') {
            p = comment_end(p, e);
            if (p == e)
                break;
        } else if (*p == ';') {
            semi = p;
        }
    }
    return semi ? semi : memrchr(v, ';', (size_t)(e - v));
}

static bool has_forged_mark(const struct from_clause *f)
{
    static const char mark[] = "may be forged";
    size_t k = sizeof mark - 1;
    for (size_t c = 0; c < f->ncomments; c++)
        for (size_t i = 0; i + k <= f->comments[c].n; i++)
            if (ascii_ieq_n(f->comments[c].s + i, mark, k))
                return true;
    return false;
}

static char *trimmed_text(const char *s, const char *e)
{
    while (s < e && ascii_is_space(*s))
        s++;
    while (e > s && ascii_is_space(e[-1]))
        e--;
    size_t n = (size_t)(e - s);
    return n ? xstrndup(s, n < RCVD_MAX_TEXT ? n : RCVD_MAX_TEXT) : NULL;
}

void rcvd_parse(const char *value, struct rcvd_hop *h)
{
    memset(h, 0, sizeof *h);
    size_t len = value ? strnlen(value, RCVD_MAX_VALUE + 1) : 0;
    if (len > RCVD_MAX_VALUE) {
        len = RCVD_MAX_VALUE;
        h->flags |= RCVD_TRUNCATED;
    }
    const char *v = value ? value : "", *e = v + len;

    const char *semi = date_semicolon(v, e);
    if (semi) {
        h->date = trimmed_text(semi + 1, e);
        h->time_ms = h->date ? rcvd_date(h->date, &h->tz_mins) : 0;
    }
    if (!h->date)
        h->flags |= RCVD_NO_DATE;
    else if (!h->time_ms)
        h->flags |= RCVD_BAD_DATE;

    struct from_clause f;
    memset(&f, 0, sizeof f);
    enum clause cl = CL_NONE;
    bool have_from = false, have_by = false, any_word = false, any_comment = false;
    const char *end = semi ? semi : e;
    const char *after_single = NULL;   /* just after an id or for clause's word */
    for (const char *p = v; p < end;) {
        if (ascii_is_space(*p) || *p == ';') {
            p++;
            continue;
        }
        if (*p == '(') {
            const char *ce = comment_end(p, end);
            struct span c = { p + 1, (size_t)(ce - p - 1) };
            any_comment = true;
            if (cl == CL_FROM && f.ncomments < FROM_MAX) {
                f.comments[f.ncomments++] = c;
            } else if (cl == CL_BY && !h->has_by_ip) {
                struct span w[8];
                size_t nw = comment_words(c.s, c.n, w, 8);
                for (size_t i = 0; i < nw && !h->has_by_ip; i++)
                    h->has_by_ip = bracket_ip(w[i], &h->by_ip) ||
                                   parse_ip_n(w[i].s, w[i].n, &h->by_ip);
            }
            p = ce < end ? ce + 1 : end;
            continue;
        }
        const char *s = p;
        while (p < end && !ascii_is_space(*p) && *p != '(' && *p != ';')
            p++;
        struct span w = { s, (size_t)(p - s) };
        any_word = true;
        enum clause k = keyword(w, have_from);
        if (k != CL_NONE) {
            after_single = NULL;
            cl = k;
            have_from |= k == CL_FROM;
            have_by |= k == CL_BY;
            continue;
        }
        switch (cl) {
        case CL_FROM:
            if (!f.tok0.s)
                f.tok0 = w;
            else if (f.nwords < FROM_MAX)
                f.words[f.nwords++] = w;
            break;
        case CL_BY:
            if (!h->by)
                h->by = name_of(w, true);
            break;
        case CL_WITH:
            add_word(&h->with, w);
            break;
        case CL_VIA:
            add_word(&h->via, w);
            break;
        case CL_ID:
            if (!h->id) {
                h->id = xstrndup(w.s, w.n < RCVD_MAX_TEXT ? w.n : RCVD_MAX_TEXT);
                after_single = p;
            }
            break;
        case CL_FOR:
            if (!h->rcpt && w.n > 0) {
                if (w.s[0] == '<') {
                    w.s++;
                    w.n--;
                }
                const char *gt = memchr(w.s, '>', w.n);
                if (gt)
                    w.n = (size_t)(gt - w.s);
                h->rcpt = xstrndup(w.s, w.n < RCVD_MAX_TEXT ? w.n : RCVD_MAX_TEXT);
                after_single = p;
            }
            break;
        case CL_NONE:
            break;
        }
    }
    if (!semi && after_single) {
        /* no ';' before the date, as some platforms write it: a date right
         * after the last id or for clause still counts */
        char *d = trimmed_text(after_single, end);
        int64_t ms = d ? rcvd_date(d, &h->tz_mins) : 0;
        if (ms) {
            h->date = d;
            h->time_ms = ms;
            h->flags &= ~(unsigned)RCVD_NO_DATE;
        } else {
            free(d);
        }
    }
    if (!have_from)
        h->flags |= RCVD_NO_FROM;
    if (!have_by)
        h->flags |= RCVD_NO_BY;
    if (!have_from && !have_by)
        h->flags |= any_word || !any_comment ? RCVD_UNPARSED : RCVD_COMMENT;
    if (f.tok0.s) {
        from_facts(&f, memmem(v, len, "Exim", 4) != NULL, h);
        if (has_forged_mark(&f))
            h->flags |= RCVD_MAY_BE_FORGED;
    }
}

void rcvd_hop_clear(struct rcvd_hop *h)
{
    if (!h)
        return;
    free(h->from);
    free(h->helo);
    free(h->rdns);
    free(h->by);
    free(h->with);
    free(h->via);
    free(h->id);
    free(h->rcpt);
    free(h->date);
    memset(h, 0, sizeof *h);
}
