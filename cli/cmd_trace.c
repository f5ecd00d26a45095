/* kanjiki trace: read one message's Received: chain the way an abuse desk
 * does by hand: each hop from the origin on (who handed it to whom, from
 * which address, when, how long after the hop before), the hops that look
 * forged or inconsistent, where the message entered this site (the first
 * address from the top outside trusted_networks and the private ranges),
 * and this server's kanjiki verdict when the message passed through it.
 *
 * Only the hops from the entry hop up were written by this site; the ones
 * below it are what the sender's side claims, so the checks say "looks",
 * never "is". A verdict is found by the queue id of a hop together with
 * that hop's client address, so that a short Postfix queue id reused later
 * cannot pull in another message's verdict, or by the Message-ID (then
 * said so: a sender can reuse one).
 * Everything from the message is untrusted and escaped on output. */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "esc.h"
#include "mailmsg.h"
#include "received.h"
#include "sbuf.h"
#include "store.h"
#include "table.h"
#include "timeutil.h"
#include "uri.h"
#include "xalloc.h"

#define PSL_PATH  "/usr/share/publicsuffix/public_suffix_list.dat"
#define MAX_FILE  (64u * 1024 * 1024)
#define MAX_HOPS  500                     /* Received fields read, from the top */
#define DAY_MS    (INT64_C(86400) * 1000)
#define MAX_VERDICTS 20                   /* per hop */

static const char *help_text =
    "usage: kanjiki [-c FILE | -d DB] trace [options] FILE.eml|-\n"
    "Read a message's Received: chain and print each hop from the origin on\n"
    "(hop 1 is the lowest Received: field): HELO and reverse name, address,\n"
    "receiving host, protocol, time in UTC and in local time, delay from the\n"
    "hop before (hop 1: from the Date: field). Notes mark hops that look\n"
    "forged or inconsistent (a broken hand-over, clock skew, dates in the\n"
    "future, private addresses after public ones, \"(may be forged)\", a HELO\n"
    "address that is not the client's, unreadable fields); the first hop from\n"
    "the top whose address is outside trusted_networks and the private ranges\n"
    "is where the message entered this site. This server's verdicts for a\n"
    "hop's queue id and client address, or for the Message-ID, are shown.\n"
    "  --format F        table (default) or json (one object: hops, notes, ...)\n"
    "  --skew DURATION   clock difference tolerated between hops (default 5m)\n"
    "  --host NAME       this server's name, to mark the hops it received\n"
    "                    (default: the system's host name)\n";

struct hop {
    struct rcvd_hop r;
    char *raw;              /* the unfolded value */
    bool internal;          /* loopback/private or in trusted_networks */
    bool here;              /* received by this host */
    bool has_delay;
    int64_t delay_ms;
    struct sbuf marks;      /* "entry,chain,..." */
};

struct note {
    size_t hop;             /* 1-based, origin order; 0: the whole message */
    const char *kind;
    char *text;             /* raw (untrusted parts inside): escaped on output */
};

struct found {
    size_t hop;             /* the hop with the verdict's queue id, 0 none */
    const char *matched;    /* "queue_id" (and address) or "message_id" */
    struct verdict *v;
    char *reasons;          /* "code: text; ..." */
};

struct trace {
    struct hop *h;          /* origin order once read */
    size_t n, cap;
    bool capped;            /* more than MAX_HOPS fields */
    struct note *notes;
    size_t nnotes;
    size_t entry;           /* hop number, 0 none */
    int64_t date_ms;        /* Date: field, 0 none */
    char *date;
    struct mailmsg m;
    const char *host;
    const struct psl *psl;
    int64_t skew_ms, now_ms;
    const char *db_path;
    char *store_err;        /* NULL when the store was read */
    struct found *found;
    size_t nfound;
    const char *kh_name;    /* the X-Kanjiki-* field being collected */
    struct sbuf kheaders;   /* X-Kanjiki-* fields, "name: value\n" each */
};

/* ---- reading ----------------------------------------------------------- */

static int read_all(const char *path, struct sbuf *out, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 && out->len <= MAX_FILE)
        sbuf_add(out, buf, n);
    bool bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad || out->len > MAX_FILE) {
        snprintf(err, errlen, "%s", bad ? "read error" : "larger than 64 MiB");
        return -1;
    }
    return 0;
}

static int on_received(const char *value, size_t len, void *arg)
{
    struct trace *t = arg;
    (void)len;
    if (t->n == MAX_HOPS) {
        t->capped = true;
        return 1;
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->h = xrealloc(t->h, t->cap * sizeof *t->h);
    }
    struct hop *h = &t->h[t->n++];
    memset(h, 0, sizeof *h);
    rcvd_parse(value, &h->r);
    h->raw = xstrdup(value);
    return 0;
}

static int on_kanjiki_header(const char *value, size_t len, void *arg)
{
    struct trace *t = arg;
    (void)len;
    sbuf_addf(&t->kheaders, "%s: %s\n", t->kh_name, value);
    return 0;
}

/* ---- small helpers --------------------------------------------------- */

static void add_note(struct trace *t, size_t hop, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_note(struct trace *t, size_t hop, const char *kind, const char *fmt, ...)
{
    struct sbuf b = SBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    sbuf_vaddf(&b, fmt, ap);
    va_end(ap);
    t->notes = xrealloc(t->notes, (t->nnotes + 1) * sizeof *t->notes);
    t->notes[t->nnotes++] = (struct note){ hop, kind, sbuf_take(&b) };
    if (hop) {
        struct sbuf *mk = &t->h[hop - 1].marks;
        if (!strstr(sbuf_str(mk), kind)) {
            if (mk->len)
                sbuf_addc(mk, ',');
            sbuf_adds(mk, kind);
        }
    }
}

/* "+1h02m", "-3m05s", "+7s" */
static void fmt_dur(int64_t ms, char *buf, size_t len)
{
    char sign = ms < 0 ? '-' : '+';
    int64_t s = (ms < 0 ? -ms : ms) / 1000;
    if (s >= 86400)
        snprintf(buf, len, "%c%lldd%02lldh", sign, (long long)(s / 86400),
                 (long long)(s % 86400 / 3600));
    else if (s >= 3600)
        snprintf(buf, len, "%c%lldh%02lldm", sign, (long long)(s / 3600),
                 (long long)(s % 3600 / 60));
    else if (s >= 60)
        snprintf(buf, len, "%c%lldm%02llds", sign, (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(buf, len, "%c%llds", sign, (long long)s);
}

/* "2024-01-02 08:15:00" (UTC) */
static void fmt_utc(int64_t ms, char *buf, size_t len)
{
    char iso[40];
    tu_format_iso_ms(ms, iso, sizeof iso);
    iso[10] = ' ';
    snprintf(buf, len, "%.19s", iso);
}

/* "2024-01-02T17:15:00+0900" in this machine's time zone */
static void fmt_local_iso(int64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&s, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%S%z", &tm))
        snprintf(buf, len, "?");
}

static bool is_loopback(const struct ip *a)
{
    static const uint8_t v6[16] = { [15] = 1 };
    return (ip_is_v4(a) && a->b[12] == 127) || !memcmp(a->b, v6, 16);
}

/* A host name with a dot (letters, digits, '-', '_', '.') that is no
 * address and no "localhost.localdomain": what can be compared with
 * another host name. */
static bool is_fqdn(const char *s)
{
    static const char host_chars[] = "abcdefghijklmnopqrstuvwxyz"
                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
    struct ip tmp;
    return s && strchr(s, '.') && strncasecmp(s, "localhost.", 10) &&
           !s[strspn(s, host_chars)] && ip_parse(s, &tmp) < 0;
}

/* The first labels of a and b are one machine's own name: equal, 8 bytes
 * or more and holding a digit ("MW4PR04CA0122" under outlook.com and
 * office365.com), unlike "mail" or "smtp" that every domain has. */
static bool same_machine(const char *a, const char *b)
{
    size_t n = strcspn(a, ".");
    const char *digit = strpbrk(a, "0123456789");
    return n >= 8 && strcspn(b, ".") == n && !strncasecmp(a, b, n) && digit &&
           digit < a + n;
}

/* a is a bare label equal to the first label of b ("lair" and
 * "lair.xent.example") */
static bool short_name_of(const char *a, const char *b)
{
    size_t n = strlen(a);
    return !strchr(a, '.') && n && !strncasecmp(a, b, n) && b[n] == '.';
}

/* Same host or same organisation: equal, one the short name of the other,
 * or the same registrable domain (an operator's relays name themselves
 * differently; a hand-over between organisations is what matters). */
static bool same_org(const char *a, const char *b, const struct psl *psl)
{
    if (!strcasecmp(a, b) || short_name_of(a, b) || short_name_of(b, a) ||
        same_machine(a, b))
        return true;
    char ra[256], rb[256];
    return psl_registrable(psl, a, ra, sizeof ra) == 0 &&
           psl_registrable(psl, b, rb, sizeof rb) == 0 && !strcmp(ra, rb);
}

/* Does hop cur come from the host that prev says received the message?
 * 1 yes, 0 no, -1 cannot tell (no names to compare, bare host names, or a
 * hand-over on one host through loopback). */
static int chain_ok(const struct hop *prev, const struct hop *cur, const struct psl *psl)
{
    const struct rcvd_hop *p = &prev->r, *c = &cur->r;
    if (!p->by || (c->flags & RCVD_NO_FROM))
        return -1;
    if (c->has_ip && is_loopback(&c->ip))
        return -1;
    if (p->has_by_ip && c->has_ip && !ip_cmp(&p->by_ip, &c->ip))
        return 1;
    struct ip lit;
    if (ip_parse(p->by, &lit) == 0)
        return c->has_ip ? !ip_cmp(&lit, &c->ip) : -1;
    if (!is_fqdn(p->by))
        return -1;
    const char *cand[3] = { c->helo, c->rdns, c->from };
    bool comparable = false;
    for (size_t i = 0; i < 3; i++) {
        if (!cand[i])
            continue;
        if (short_name_of(cand[i], p->by))
            return 1;
        if (!is_fqdn(cand[i]))
            continue;
        comparable = true;
        if (same_org(cand[i], p->by, psl))
            return 1;
    }
    return comparable ? 0 : -1;
}

/* "helo (rdns)" as the table's from column shows it; for a field that is
 * no from/by trace, its own text before the date */
static void from_text(const struct hop *h, struct sbuf *b)
{
    const struct rcvd_hop *r = &h->r;
    if (r->flags & (RCVD_COMMENT | RCVD_UNPARSED)) {
        const char *semi = strrchr(h->raw, ';');
        sbuf_add(b, h->raw, semi ? (size_t)(semi - h->raw) : strlen(h->raw));
        return;
    }
    const char *name = r->helo ? r->helo : r->from;
    if (name)
        sbuf_adds(b, name);
    if (r->rdns && (!name || strcasecmp(r->rdns, name)))
        sbuf_addf(b, "%s(%s)", name ? " " : "", r->rdns);
}

static bool this_host(const char *by, const char *host)
{
    return by && host && *host &&
           (!strcasecmp(by, host) || short_name_of(host, by) || short_name_of(by, host));
}

/* ---- the checks -------------------------------------------------------- */

static void check_hop_flags(struct trace *t, size_t k)
{
    const struct rcvd_hop *r = &t->h[k - 1].r;
    char ip[IP_STRLEN];
    if (r->flags & RCVD_UNPARSED)
        add_note(t, k, "unparsed", "hop %zu has neither a from nor a by clause: no MTA "
                 "writes such a Received: field", k);
    if (r->flags & RCVD_TRUNCATED)
        add_note(t, k, "unparsed", "hop %zu is longer than %d bytes: the rest was not read",
                 k, RCVD_MAX_VALUE);
    if ((r->flags & RCVD_BAD_DATE) && !(r->flags & RCVD_UNPARSED))
        add_note(t, k, "unparsed", "hop %zu: its date \"%s\" is not a date", k, r->date);
    else if ((r->flags & RCVD_NO_DATE) && !(r->flags & RCVD_UNPARSED))
        add_note(t, k, "unparsed", "hop %zu has no date", k);
    if (r->flags & RCVD_MAY_BE_FORGED) {
        if (r->has_ip)
            ip_format(&r->ip, ip, sizeof ip);
        add_note(t, k, "forged", "hop %zu: %s marked it \"(may be forged)\": the reverse "
                 "name %s did not resolve back to the client's address %s", k,
                 r->by ? r->by : "the receiver", r->rdns ? r->rdns : "(none)",
                 r->has_ip ? ip : "(none)");
    }
    /* a client behind NAT may say its private address; a public one that
     * is not where it connected from is a lie */
    struct ip lit;
    if (r->helo && r->has_ip && r->helo[0] == '[' && ip_parse(r->helo, &lit) == 0 &&
        rcvd_ip_public(&lit) && rcvd_ip_public(&r->ip) && ip_cmp(&lit, &r->ip)) {
        ip_format(&r->ip, ip, sizeof ip);
        add_note(t, k, "helo", "hop %zu: the client said HELO %s but connected from %s", k,
                 r->helo, ip);
    }
}

static void check_times(struct trace *t)
{
    char d[32], when[40], tol[32];
    fmt_dur(t->skew_ms, tol, sizeof tol);
    int64_t prev_ms = t->date_ms;
    size_t prev = 0;                       /* 0: Date: */
    for (size_t k = 1; k <= t->n; k++) {
        struct hop *h = &t->h[k - 1];
        int64_t ms = h->r.time_ms;
        if (!ms)
            continue;
        if (ms > t->now_ms + t->skew_ms) {
            fmt_dur(ms - t->now_ms, d, sizeof d);
            fmt_utc(ms, when, sizeof when);
            add_note(t, k, "future", "hop %zu is dated %s UTC, %s in the future", k, when,
                     d + 1);
        }
        if (prev_ms) {
            h->has_delay = true;
            h->delay_ms = ms - prev_ms;
            if (h->delay_ms < -t->skew_ms) {
                fmt_dur(-h->delay_ms, d, sizeof d);
                if (prev)
                    add_note(t, k, "skew", "hop %zu is dated %s before hop %zu (more than "
                             "the %s tolerated): a clock on one of the two hosts is "
                             "wrong, or one of the hops is forged", k, d + 1, prev, tol + 1);
                else
                    add_note(t, k, "skew", "hop %zu is dated %s before the Date: field "
                             "(more than the %s tolerated): the sender's clock is "
                             "wrong, or the Date: is made up", k, d + 1, tol + 1);
            }
        }
        prev_ms = ms;
        prev = k;
    }
}

static void check_chain(struct trace *t)
{
    char ip[IP_STRLEN];
    size_t pk = 0;                       /* the hop before with a receiver */
    for (size_t k = 1; k <= t->n; k++) {
        const struct hop *c = &t->h[k - 1];
        const struct hop *p = pk ? &t->h[pk - 1] : NULL;
        if (c->r.by && !(c->r.flags & (RCVD_COMMENT | RCVD_UNPARSED)))
            pk = k;                      /* notes between hops are skipped over */
        if (!p || chain_ok(p, c, t->psl) != 0)
            continue;
        struct sbuf from = SBUF_INIT;
        from_text(c, &from);
        if (c->r.has_ip) {
            ip_format(&c->r.ip, ip, sizeof ip);
            sbuf_addf(&from, " [%s]", ip);
        }
        add_note(t, k, "chain", "hop %zu says it came from %s, but hop %zu handed the "
                 "message to %s: a hop is missing, one of the two is forged, or one "
                 "operator names its hosts in two domains", k,
                 sbuf_str(&from), (size_t)(p - t->h) + 1, p->r.by);
        sbuf_free(&from);
    }
}

/* Where the message entered the site, and what the hops below it claim. */
static void check_entry(struct trace *t, const struct cidrset *trusted)
{
    for (size_t k = 1; k <= t->n; k++) {
        struct hop *h = &t->h[k - 1];
        h->internal = h->r.has_ip && (!rcvd_ip_public(&h->r.ip) ||
                                      (trusted && cidrset_contains(trusted, &h->r.ip)));
        h->here = this_host(h->r.by, t->host);
        if (h->here) {
            if (h->marks.len)
                sbuf_addc(&h->marks, ',');
            sbuf_adds(&h->marks, "here");
        }
    }
    for (size_t k = t->n; k >= 1 && !t->entry; k--)
        if (t->h[k - 1].r.has_ip && !t->h[k - 1].internal)
            t->entry = k;
    if (!t->entry)
        return;
    struct sbuf *mk = &t->h[t->entry - 1].marks;
    sbuf_adds(mk, mk->len ? ",entry" : "entry");
    /* below the entry: a private address after a public one */
    size_t first_public = 0;
    char ip[IP_STRLEN], pip[IP_STRLEN];
    for (size_t k = 1; k < t->entry; k++) {
        const struct rcvd_hop *r = &t->h[k - 1].r;
        if (!r->has_ip)
            continue;
        if (rcvd_ip_public(&r->ip)) {
            if (!first_public)
                first_public = k;
        } else if (first_public && !is_loopback(&r->ip)) {
            ip_format(&r->ip, ip, sizeof ip);
            ip_format(&t->h[first_public - 1].r.ip, pip, sizeof pip);
            add_note(t, k, "private", "hop %zu comes from the private or reserved address "
                     "%s after public ones (hop %zu from %s), outside this site: a "
                     "forwarder's internal relay, or a forged hop", k, ip, first_public,
                     pip);
        }
    }
}

/* Notes grouped by hop, in the order found within one hop. */
static void sort_notes(struct trace *t)
{
    for (size_t i = 1; i < t->nnotes; i++) {
        struct note x = t->notes[i];
        size_t j = i;
        for (; j > 0 && t->notes[j - 1].hop > x.hop; j--)
            t->notes[j] = t->notes[j - 1];
        t->notes[j] = x;
    }
}

/* ---- the verdict --------------------------------------------------------- */

struct vq {
    struct trace *t;
    sqlite3 *db;
    size_t hop;             /* the hop asked about; 0: by Message-ID */
    size_t n;
};

/* "code: text; code: text" of the reasons the store keeps as JSON, read by
 * SQLite's own JSON functions. */
static char *reasons_text(sqlite3 *db, const char *json)
{
    struct sbuf b = SBUF_INIT;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT json_extract(value, '$.code'), "
                               "json_extract(value, '$.text') FROM json_each(?1)",
                           -1, &st, NULL) != SQLITE_OK)
        return sbuf_take(&b);
    sqlite3_bind_text(st, 1, json ? json : "[]", -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *code = (const char *)sqlite3_column_text(st, 0);
        const char *text = (const char *)sqlite3_column_text(st, 1);
        sbuf_addf(&b, "%s%s", b.len ? "; " : "", code ? code : "?");
        if (text && *text)
            sbuf_addf(&b, ": %s", text);
    }
    sqlite3_finalize(st);
    return sbuf_take(&b);
}

static int on_verdict(const struct verdict *v, void *arg)
{
    struct vq *q = arg;
    struct trace *t = q->t;
    for (size_t i = 0; i < t->nfound; i++)
        if (t->found[i].v->id == v->id)
            return 0;                   /* found already */
    size_t hop = q->hop;
    /* found by Message-ID: tied to a hop only when its queue id and its
     * client address are that hop's */
    for (size_t k = t->n; !hop && v->queue_id && k >= 1; k--) {
        const struct rcvd_hop *r = &t->h[k - 1].r;
        struct ip vip;
        if (r->id && !strcmp(r->id, v->queue_id) && r->has_ip && v->client_ip &&
            ip_parse(v->client_ip, &vip) == 0 && ip_cmp(&vip, &r->ip) == 0)
            hop = k;
    }
    t->found = xrealloc(t->found, (t->nfound + 1) * sizeof *t->found);
    t->found[t->nfound++] = (struct found){ hop, q->hop ? "queue_id" : "message_id",
                                            verdict_clone(v), reasons_text(q->db,
                                                                           v->reasons_json) };
    return ++q->n >= MAX_VERDICTS;
}

/* This server's verdicts: for each hop with an id, those with that queue
 * id and that hop's client address within a day of its date (a short
 * queue id comes back some day, on another client); then those with the
 * message's Message-ID (another copy, a recipient refused on its own). */
static void find_verdicts(struct trace *t, const struct cli_ctx *ctx)
{
    struct store *s;
    char err[512];
    if (!ctx->db_path) {
        t->store_err = xstrdup("no database configured");
        return;
    }
    if (cli_open_existing(ctx, &s, err, sizeof err) < 0) {
        t->store_err = xstrdup(err);
        return;
    }
    for (size_t k = t->n + 1; k-- > 0;) {
        const struct rcvd_hop *r = k ? &t->h[k - 1].r : NULL;
        struct store_filter f;
        store_filter_init(&f);
        f.limit = MAX_VERDICTS;
        if (!k) {
            if (!t->m.message_id)
                break;
            f.message_id = t->m.message_id;
        } else if (!r->id || !r->has_ip) {
            continue;
        } else {
            f.queue_id = r->id;
            f.has_net = true;
            f.net.net = r->ip;
            f.net.bits = 128;
            if (r->time_ms) {
                f.since_ms = r->time_ms - DAY_MS;
                f.until_ms = r->time_ms + DAY_MS;
            }
        }
        struct vq q = { t, store_db(s), k, 0 };
        if (store_query(s, &f, on_verdict, &q, err, sizeof err) < 0) {
            free(t->store_err);
            t->store_err = xstrdup(err);
            break;
        }
    }
    store_close(s);
}

/* ---- output -------------------------------------------------------------- */

static const struct table_col cols[] = {
    { "hop", TABLE_COL_TEXT, 0 },        { "from", TABLE_COL_TEXT, 44 },
    { "address", TABLE_COL_TEXT, 0 },    { "by", TABLE_COL_TEXT, 36 },
    { "with", TABLE_COL_TEXT, 16 },      { "time (UTC)", TABLE_COL_TEXT, 0 },
    { "local", TABLE_COL_TEXT, 0 },      { "delay", TABLE_COL_TEXT, 0 },
    { "marks", TABLE_COL_TEXT, 0 },
};
#define NCOLS (sizeof cols / sizeof cols[0])

static void print_line(const char *label, const char *value)
{
    if (!value)
        return;
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, value);
    printf("  %-11s %s\n", label, sbuf_str(&b));
    sbuf_free(&b);
}

static void print_esc(const char *prefix, const char *text)
{
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, text);
    printf("%s%s\n", prefix, sbuf_str(&b));
    sbuf_free(&b);
}

static void print_entry_text(const struct trace *t)
{
    char ip[IP_STRLEN];
    if (!t->entry) {
        puts("no hop comes from outside trusted_networks and the private ranges: the "
             "message was sent from inside this site, or its Received: fields name no "
             "address");
        return;
    }
    const struct rcvd_hop *r = &t->h[t->entry - 1].r;
    struct sbuf b = SBUF_INIT;
    ip_format(&r->ip, ip, sizeof ip);
    from_text(&t->h[t->entry - 1], &b);
    sbuf_addf(&b, " [%s]", ip);
    if (r->by)
        sbuf_addf(&b, " by %s", r->by);
    struct sbuf e = SBUF_INIT;
    esc_text_s(&e, sbuf_str(&b));
    printf("entered this site at hop %zu: from %s (the first address, from the top, outside "
           "trusted_networks and the private ranges)\n", t->entry, sbuf_str(&e));
    if (t->entry == 2)
        puts("hop 1 was written by a server outside this site: what it says cannot be "
             "checked here");
    else if (t->entry > 2)
        printf("hops 1-%zu were written by servers outside this site: what they say cannot "
               "be checked here\n", t->entry - 1);
    sbuf_free(&b);
    sbuf_free(&e);
}

/* The receiving site's own record of the client (Received-SPF,
 * Authentication-Results), when the message has one: which hop it is. */
static size_t record_hop(const struct trace *t)
{
    struct ip a;
    if (!t->m.client_ip || !t->m.client_from || !strcmp(t->m.client_from, "received") ||
        ip_parse(t->m.client_ip, &a) < 0)
        return 0;
    for (size_t k = t->n; k >= 1; k--)
        if (t->h[k - 1].r.has_ip && !ip_cmp(&t->h[k - 1].r.ip, &a))
            return k;
    return 0;
}

static void print_verdict_text(const struct trace *t)
{
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, t->db_path ? t->db_path : "");
    if (t->store_err) {
        struct sbuf e = SBUF_INIT;
        esc_text_s(&e, t->store_err);
        printf("kanjiki verdict: no verdict store (%s)\n", sbuf_str(&e));
        sbuf_free(&e);
    } else if (!t->nfound) {
        size_t here = 0;
        for (size_t k = t->n; k >= 1 && !here; k--)
            if (t->h[k - 1].here)
                here = k;
        if (here)
            printf("kanjiki verdict: none in %s, although hop %zu was received by this "
                   "host\n", sbuf_str(&b), here);
        else
            printf("kanjiki verdict: none in %s for the queue ids and addresses of these "
                   "hops or the Message-ID (the message did not pass through this server, "
                   "or its verdict was pruned)\n", sbuf_str(&b));
    }
    if (t->nfound)
        printf("kanjiki verdict (store %s):\n", sbuf_str(&b));
    for (size_t i = 0; i < t->nfound; i++) {
        const struct verdict *v = t->found[i].v;
        char when[40], score[32] = "";
        tu_format_local(v->time_ms, when, sizeof when);
        if (v->scored)
            snprintf(score, sizeof score, ", score %.1f%s", v->score, v->degraded ? "*" : "");
        struct sbuf line = SBUF_INIT;
        if (t->found[i].hop)
            sbuf_addf(&line, "hop %zu, ", t->found[i].hop);
        if (strcmp(t->found[i].matched, "queue_id"))
            sbuf_adds(&line, "by Message-ID, ");
        sbuf_addf(&line, "queue id %s: %s%s at stage %s, %s%s",
                  v->queue_id ? v->queue_id : "-", verdict_action_name(v->action),
                  v->monitor ? " (monitor mode: the mail passed)" : "",
                  verdict_stage_name(v->stage), when, score);
        print_esc("  ", sbuf_str(&line));
        sbuf_reset(&line);
        sbuf_addf(&line, "client %s", v->client_ip ? v->client_ip : "unknown");
        if (v->client_name && *v->client_name)
            sbuf_addf(&line, " (%s)", v->client_name);
        if (v->helo)
            sbuf_addf(&line, ", helo %s", v->helo);
        if (v->sender)
            sbuf_addf(&line, ", sender <%s>", v->sender);
        if (v->kind == VERDICT_KIND_RCPT && v->rcpt)
            sbuf_addf(&line, ", refused recipient <%s>", v->rcpt);
        print_esc("    ", sbuf_str(&line));
        if (v->reply)
            print_esc("    reply: ", v->reply);
        if (*t->found[i].reasons)
            print_esc("    reasons: ", t->found[i].reasons);
        printf("    every check and lookup: kanjiki explain %lld\n", (long long)v->id);
        sbuf_free(&line);
    }
    if (t->kheaders.len) {
        puts("X-Kanjiki fields in the message:");
        const char *p = sbuf_str(&t->kheaders);
        for (const char *nl; (nl = strchr(p, '\n')); p = nl + 1) {
            char *one = xstrndup(p, (size_t)(nl - p));
            print_esc("  ", one);
            free(one);
        }
    }
    sbuf_free(&b);
}

static void print_table(const struct trace *t, const char *file)
{
    print_esc("trace of ", file);
    print_line("Message-ID:", t->m.message_id);
    print_line("From:", t->m.from);
    print_line("Subject:", t->m.subject);
    if (t->date) {
        struct sbuf d = SBUF_INIT;
        sbuf_adds(&d, t->date);
        if (t->date_ms) {
            char utc[40];
            fmt_utc(t->date_ms, utc, sizeof utc);
            sbuf_addf(&d, "  (%s UTC)", utc);
        }
        print_line("Date:", sbuf_str(&d));
        sbuf_free(&d);
    }
    if (!t->n) {
        puts("\nno Received: fields: the message never passed through a mail server, or "
             "they were removed");
    } else {
        printf("\n%zu Received: field%s, numbered from the origin (hop 1 is the lowest); "
               "local time is this machine's; delay is from the hop before (hop 1: from "
               "Date:)\n\n", t->n, t->n == 1 ? "" : "s");
        struct table *tb = table_new(cols, NCOLS);
        for (size_t k = 1; k <= t->n; k++) {
            const struct hop *h = &t->h[k - 1];
            char num[24], ip[IP_STRLEN] = "", utc[40] = "", loc[40] = "", d[32] = "";
            snprintf(num, sizeof num, "%zu", k);
            if (h->r.has_ip)
                ip_format(&h->r.ip, ip, sizeof ip);
            if (h->r.time_ms) {
                fmt_utc(h->r.time_ms, utc, sizeof utc);
                tu_format_local(h->r.time_ms, loc, sizeof loc);
            }
            if (h->has_delay)
                fmt_dur(h->delay_ms, d, sizeof d);
            struct sbuf from = SBUF_INIT;
            from_text(h, &from);
            const char *cells[NCOLS] = { num, sbuf_str(&from), ip, h->r.by, h->r.with,
                                         utc, loc, d, sbuf_str(&h->marks) };
            table_add(tb, cells);
            sbuf_free(&from);
        }
        table_print(tb, CLI_FMT_TABLE, stdout);
        table_free(tb);
        putchar('\n');
        print_entry_text(t);
    }
    size_t rec = record_hop(t);
    if (rec)
        printf("the receiving site's %s names the client %s: hop %zu\n",
               !strcmp(t->m.client_from, "received-spf") ? "Received-SPF"
                                                         : "Authentication-Results",
               t->m.client_ip, rec);
    if (!t->nnotes && t->n)
        puts("\nnotes: none");
    if (t->nnotes) {
        puts("\nnotes:");
        for (size_t i = 0; i < t->nnotes; i++) {
            char prefix[48];
            snprintf(prefix, sizeof prefix, "  [%s] ", t->notes[i].kind);
            print_esc(prefix, t->notes[i].text);
        }
    }
    putchar('\n');
    print_verdict_text(t);
}

static void json_member(struct sbuf *b, const char *name, const char *value)
{
    sbuf_addf(b, ",\"%s\":", name);
    if (value)
        esc_json_s(b, value);
    else
        sbuf_adds(b, "null");
}

static void json_flags(struct sbuf *b, unsigned flags)
{
    static const struct { unsigned bit; const char *name; } names[] = {
        { RCVD_MAY_BE_FORGED, "may_be_forged" }, { RCVD_NO_FROM, "no_from" },
        { RCVD_NO_BY, "no_by" },                 { RCVD_NO_DATE, "no_date" },
        { RCVD_BAD_DATE, "bad_date" },           { RCVD_UNPARSED, "unparsed" },
        { RCVD_COMMENT, "comment" },             { RCVD_TRUNCATED, "truncated" },
    };
    sbuf_adds(b, ",\"flags\":[");
    bool any = false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (flags & names[i].bit) {
            sbuf_addf(b, "%s\"%s\"", any ? "," : "", names[i].name);
            any = true;
        }
    sbuf_addc(b, ']');
}

static void json_hop(struct sbuf *b, const struct hop *h, size_t k)
{
    const struct rcvd_hop *r = &h->r;
    char ip[IP_STRLEN], utc[40], loc[40];
    sbuf_addf(b, "{\"hop\":%zu", k);
    json_member(b, "from", r->from);
    json_member(b, "helo", r->helo);
    json_member(b, "rdns", r->rdns);
    if (r->has_ip)
        ip_format(&r->ip, ip, sizeof ip);
    json_member(b, "ip", r->has_ip ? ip : NULL);
    json_member(b, "by", r->by);
    if (r->has_by_ip)
        ip_format(&r->by_ip, ip, sizeof ip);
    json_member(b, "by_ip", r->has_by_ip ? ip : NULL);
    json_member(b, "with", r->with);
    json_member(b, "via", r->via);
    json_member(b, "id", r->id);
    json_member(b, "for", r->rcpt);
    json_member(b, "date", r->date);
    if (r->time_ms) {
        tu_format_iso_ms(r->time_ms, utc, sizeof utc);
        fmt_local_iso(r->time_ms, loc, sizeof loc);
        int z = r->tz_mins < 0 ? -r->tz_mins : r->tz_mins;
        sbuf_addf(b, ",\"time_utc\":\"%s\",\"time_local\":\"%s\",\"utc_offset\":\"%c%02d%02d\"",
                  utc, loc, r->tz_mins < 0 ? '-' : '+', z / 60, z % 60);
    } else {
        sbuf_adds(b, ",\"time_utc\":null,\"time_local\":null,\"utc_offset\":null");
    }
    if (h->has_delay)
        sbuf_addf(b, ",\"delay_s\":%.3f", (double)h->delay_ms / 1000);
    else
        sbuf_adds(b, ",\"delay_s\":null");
    sbuf_addf(b, ",\"internal\":%s,\"this_host\":%s", h->internal ? "true" : "false",
              h->here ? "true" : "false");
    json_flags(b, r->flags);
    sbuf_adds(b, ",\"marks\":[");
    const char *m = sbuf_str(&h->marks);
    for (bool first = true; *m; first = false) {
        size_t n = strcspn(m, ",");
        sbuf_addf(b, "%s\"%.*s\"", first ? "" : ",", (int)n, m);
        m += n + (m[n] == ',');
    }
    sbuf_addc(b, ']');
    json_member(b, "raw", h->raw);
    sbuf_addc(b, '}');
}

static void print_json(const struct trace *t, const char *file)
{
    struct sbuf b = SBUF_INIT;
    char utc[40];
    sbuf_adds(&b, "{\"file\":");
    esc_json_s(&b, file);
    json_member(&b, "message_id", t->m.message_id);
    json_member(&b, "from", t->m.from);
    json_member(&b, "subject", t->m.subject);
    json_member(&b, "date", t->date);
    if (t->date_ms)
        tu_format_iso_ms(t->date_ms, utc, sizeof utc);
    json_member(&b, "date_utc", t->date_ms ? utc : NULL);
    sbuf_adds(&b, ",\"numbering\":\"origin\",\"hops\":[");
    for (size_t k = 1; k <= t->n; k++) {
        if (k > 1)
            sbuf_addc(&b, ',');
        json_hop(&b, &t->h[k - 1], k);
    }
    sbuf_adds(&b, "]");
    if (t->entry)
        sbuf_addf(&b, ",\"entry_hop\":%zu", t->entry);
    else
        sbuf_adds(&b, ",\"entry_hop\":null");
    size_t rec = record_hop(t);
    if (rec) {
        sbuf_addf(&b, ",\"site_record\":{\"source\":\"%s\"", t->m.client_from);
        json_member(&b, "ip", t->m.client_ip);
        sbuf_addf(&b, ",\"hop\":%zu}", rec);
    } else {
        sbuf_adds(&b, ",\"site_record\":null");
    }
    json_member(&b, "this_host", t->host);
    sbuf_adds(&b, ",\"notes\":[");
    for (size_t i = 0; i < t->nnotes; i++) {
        sbuf_adds(&b, i ? ",{" : "{");
        if (t->notes[i].hop)
            sbuf_addf(&b, "\"hop\":%zu", t->notes[i].hop);
        else
            sbuf_adds(&b, "\"hop\":null");
        json_member(&b, "kind", t->notes[i].kind);
        json_member(&b, "text", t->notes[i].text);
        sbuf_addc(&b, '}');
    }
    sbuf_adds(&b, "],\"verdict_store\":{\"path\":");
    if (t->db_path)
        esc_json_s(&b, t->db_path);
    else
        sbuf_adds(&b, "null");
    json_member(&b, "error", t->store_err);
    sbuf_adds(&b, "},\"verdicts\":[");
    for (size_t i = 0; i < t->nfound; i++) {
        char *mem = verdict_json_members(t->found[i].v);
        sbuf_adds(&b, i ? ",{" : "{");
        if (t->found[i].hop)
            sbuf_addf(&b, "\"hop\":%zu", t->found[i].hop);
        else
            sbuf_adds(&b, "\"hop\":null");
        sbuf_addf(&b, ",\"matched\":\"%s\",\"id\":%lld,%s}", t->found[i].matched,
                  (long long)t->found[i].v->id, mem);
        free(mem);
    }
    sbuf_adds(&b, "],\"kanjiki_headers\":[");
    const char *p = sbuf_str(&t->kheaders);
    bool first = true;
    for (const char *nl; (nl = strchr(p, '\n')); p = nl + 1, first = false) {
        sbuf_adds(&b, first ? "" : ",");
        esc_json(&b, p, (size_t)(nl - p));
    }
    sbuf_adds(&b, "]}\n");
    fputs(sbuf_str(&b), stdout);
    sbuf_free(&b);
}

/* ---- the command ---------------------------------------------------------- */

static void trace_free(struct trace *t)
{
    for (size_t i = 0; i < t->n; i++) {
        rcvd_hop_clear(&t->h[i].r);
        free(t->h[i].raw);
        sbuf_free(&t->h[i].marks);
    }
    free(t->h);
    for (size_t i = 0; i < t->nnotes; i++)
        free(t->notes[i].text);
    free(t->notes);
    for (size_t i = 0; i < t->nfound; i++) {
        verdict_free(t->found[i].v);
        free(t->found[i].reasons);
    }
    free(t->found);
    free(t->date);
    free(t->store_err);
    mailmsg_clear(&t->m);
    sbuf_free(&t->kheaders);
}

int cmd_trace(struct cli_ctx *ctx, int argc, char **argv)
{
    enum cli_format fmt = CLI_FMT_TABLE;
    int64_t skew_s = 300;
    const char *host = NULL, *file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(help_text, stdout);
            return 0;
        } else if ((!strcmp(o, "--format") || !strcmp(o, "--skew") || !strcmp(o, "--host")) &&
                   i + 1 < argc) {
            const char *v = argv[++i];
            if (o[2] == 'h')
                host = v;
            else if (o[2] == 's' ? tu_parse_duration(v, &skew_s) < 0 || skew_s < 0
                                 : cli_parse_format(v, &fmt) < 0 || fmt == CLI_FMT_CSV) {
                fprintf(stderr, "kanjiki trace: bad %s '%s' (kanjiki trace --help)\n", o + 2, v);
                return 2;
            }
        } else if (o[0] == '-' && o[1]) {
            fprintf(stderr, "kanjiki trace: unknown option %s\n%s", o, help_text);
            return 2;
        } else if (!file) {
            file = o;
        } else {
            fprintf(stderr, "kanjiki trace: one FILE only\n%s", help_text);
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "kanjiki trace: no FILE given\n%s", help_text);
        return 2;
    }

    struct sbuf text = SBUF_INIT;
    char err[512];
    struct trace t;
    memset(&t, 0, sizeof t);
    if (read_all(file, &text, err, sizeof err) < 0 ||
        mailmsg_parse(text.len ? text.s : "", text.len, ctx->conf->trusted_networks, &t.m,
                      err, sizeof err) < 0) {
        struct sbuf e = SBUF_INIT;
        esc_text_s(&e, file);
        fprintf(stderr, "kanjiki trace: %s: %s%s\n", sbuf_str(&e), err,
                strstr(err, "no header") ? " (not a mail message)" : "");
        sbuf_free(&e);
        sbuf_free(&text);
        return 1;
    }
    char hostname[256] = "";
    if (!host && gethostname(hostname, sizeof hostname - 1) == 0)
        host = hostname;
    char perr[256];
    struct psl *psl = psl_load(PSL_PATH, perr, sizeof perr);   /* else a built-in list */
    t.host = host;
    t.psl = psl;
    t.skew_ms = skew_s * 1000;
    t.now_ms = tu_now_ms();
    t.db_path = ctx->db_path;

    mailmsg_each_header(text.s, text.len, "Received", RCVD_MAX_VALUE + 1, on_received, &t);
    for (size_t i = 0; i < t.n / 2; i++) {            /* origin first */
        struct hop tmp = t.h[i];
        t.h[i] = t.h[t.n - 1 - i];
        t.h[t.n - 1 - i] = tmp;
    }
    t.date = mailmsg_header(text.s, text.len, "Date");
    t.date_ms = rcvd_date(t.date, NULL);
    static const char *const kh[] = { "X-Kanjiki-Spam", "X-Kanjiki-Score",
                                       "X-Kanjiki-Snowshoe", "X-Kanjiki-Monitor" };
    for (size_t i = 0; i < sizeof kh / sizeof kh[0]; i++) {
        t.kh_name = kh[i];
        mailmsg_each_header(text.s, text.len, kh[i], 1024, on_kanjiki_header, &t);
    }

    if (t.capped)
        add_note(&t, 0, "limit", "more than %d Received: fields: only the top %d were read, "
                 "so hop 1 is not the origin", MAX_HOPS, MAX_HOPS);
    check_entry(&t, ctx->conf->trusted_networks);
    for (size_t k = 1; k <= t.n; k++)
        check_hop_flags(&t, k);
    check_chain(&t);
    check_times(&t);
    sort_notes(&t);
    find_verdicts(&t, ctx);

    if (fmt == CLI_FMT_JSON)
        print_json(&t, file);
    else
        print_table(&t, file);
    trace_free(&t);
    psl_free(psl);
    sbuf_free(&text);
    return 0;
}
