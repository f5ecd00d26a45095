/* popauth: see popauth.h. Grants in the store's table `grants` (one row per
 * normalised address, with the 16-byte form in ip_bin for prefix ranges),
 * the milter's in-memory copy kept fresh by a polling thread, and the
 * parser for the mail servers' login lines.
 *
 * Ownership: popauth_list hands its callback a grant that lives only for
 * the call; popauth_lookup's *user_out is the caller's to free. The cache
 * owns its path copy, its connection (used only by its thread) and its
 * array; popauth_cache_match copies the user out under the lock. */
#include "errbuf.h"
#include "popauth.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "esc.h"
#include "log.h"
#include "sbuf.h"
#include "timeutil.h"
#include "xalloc.h"

#define USER_MAX 255   /* bytes kept of a user name from a log line */

/* "not an IP address: ..." with the (untrusted) text escaped and bounded. */
static int bad_ip(const char *ip, char *err, size_t errlen)
{
    struct sbuf b = SBUF_INIT;
    esc_text(&b, ip ? ip : "", ip ? strnlen(ip, 200) : 0);
    errbuf_set(err, errlen, "not an IP address: %s", sbuf_str(&b));
    sbuf_free(&b);
    return -1;
}

static int db_fail(sqlite3 *db, const char *what, char *err, size_t errlen)
{
    return errbuf_set(err, errlen, "%s: %s", what, sqlite3_errmsg(db));
}

/* The range of addresses a grant for a may cover when looked up from a:
 * the address itself for IPv4 (and when v6_prefix >= 128), else its
 * /v6_prefix. */
static void cover_range(const struct ip *a, unsigned v6_prefix, struct ip *lo, struct ip *hi)
{
    *lo = *a;
    *hi = *a;
    if (ip_is_v4(a) || v6_prefix >= 128)
        return;
    ip_mask(lo, v6_prefix);
    for (unsigned bit = v6_prefix; bit < 128; bit++)
        hi->b[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
}

/* An IPv6 client's prefix may contain ::ffff:0:0/96 (e.g. ::1 with /64):
 * IPv4 grants never cover an IPv6 client. */
static bool covers(const struct ip *grant, const struct ip *client)
{
    return ip_is_v4(grant) == ip_is_v4(client);
}

/* ---- the table ---- */

int popauth_add(struct store *s, const char *ip, const char *user,
                int64_t ttl_secs, const char *source, int64_t now,
                char *err, size_t errlen)
{
    struct ip a;
    if (!ip || ip_parse(ip, &a) < 0)
        return bad_ip(ip, err, errlen);
    if (ttl_secs <= 0)
        return errbuf_set(err, errlen, "ttl must be > 0 (got %lld)", (long long)ttl_secs);
    if (now > INT64_MAX - ttl_secs)
        return errbuf_set(err, errlen, "ttl too large");
    char text[IP_STRLEN];
    ip_format(&a, text, sizeof text);
    sqlite3 *db = store_db(s);
    static const char sql[] =
        "INSERT INTO grants (ip, ip_bin, user, source, created, expires)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        " ON CONFLICT (ip) DO UPDATE SET ip_bin = excluded.ip_bin,"
        " user = excluded.user, source = excluded.source,"
        " created = excluded.created,"
        /* an administrator's `add` sets the expiry exactly; a login seen in
         * a log only ever extends it, so it cannot cut a long manual grant */
        " expires = CASE WHEN excluded.source = 'cli' THEN excluded.expires"
        "           ELSE max(grants.expires, excluded.expires) END";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, "add grant", err, errlen);
    sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, a.b, sizeof a.b, SQLITE_TRANSIENT);
    if (user)
        sqlite3_bind_text(st, 3, user, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, source && *source ? source : "cli", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, now + ttl_secs);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        db_fail(db, "add grant", err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int popauth_del(struct store *s, const char *ip, char *err, size_t errlen)
{
    struct ip a;
    if (!ip || ip_parse(ip, &a) < 0)
        return bad_ip(ip, err, errlen);
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "DELETE FROM grants WHERE ip_bin = ?1", -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, "delete grant", err, errlen);
    sqlite3_bind_blob(st, 1, a.b, sizeof a.b, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int n = rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
    if (rc != SQLITE_DONE)
        db_fail(db, "delete grant", err, errlen);
    sqlite3_finalize(st);
    return n;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

int popauth_list(struct store *s, bool include_expired, int64_t now,
                 popauth_grant_fn fn, void *arg, char *err, size_t errlen)
{
    sqlite3 *db = store_db(s);
    static const char sql[] =
        "SELECT ip, user, source, created, expires, ip_bin FROM grants"
        " WHERE ?1 OR expires > ?2 ORDER BY ip_bin, ip";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, "list grants", err, errlen);
    sqlite3_bind_int(st, 1, include_expired ? 1 : 0);
    sqlite3_bind_int64(st, 2, now);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct popauth_grant g;
        memset(&g, 0, sizeof g);
        const char *ip = col_text(st, 0);
        snprintf(g.ip, sizeof g.ip, "%s", ip ? ip : "");
        g.user = (char *)col_text(st, 1);
        g.source = (char *)col_text(st, 2);
        g.created = sqlite3_column_int64(st, 3);
        g.expires = sqlite3_column_int64(st, 4);
        if (fn(&g, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        db_fail(db, "list grants", err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int popauth_purge(struct store *s, int64_t now)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "DELETE FROM grants WHERE expires <= ?1", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, now);
    int rc = sqlite3_step(st);
    int n = rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
    sqlite3_finalize(st);
    return n;
}

bool popauth_lookup(struct store *s, const struct ip *a, unsigned v6_prefix,
                    int64_t now, char **user_out)
{
    if (user_out)
        *user_out = NULL;
    struct ip lo, hi;
    cover_range(a, v6_prefix, &lo, &hi);
    sqlite3 *db = store_db(s);
    static const char sql[] =
        "SELECT ip_bin, user FROM grants WHERE ip_bin BETWEEN ?1 AND ?2"
        " AND expires > ?3 ORDER BY expires DESC";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_blob(st, 1, lo.b, sizeof lo.b, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, hi.b, sizeof hi.b, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now);
    bool found = false;
    while (!found && sqlite3_step(st) == SQLITE_ROW) {
        struct ip g;
        if (sqlite3_column_bytes(st, 0) != (int)sizeof g.b)
            continue;
        memcpy(g.b, sqlite3_column_blob(st, 0), sizeof g.b);
        if (!covers(&g, a))
            continue;
        found = true;
        if (user_out)
            *user_out = xstrdup(col_text(st, 1));
    }
    sqlite3_finalize(st);
    return found;
}

/* ---- the milter's in-memory copy ---- */

struct centry {
    struct ip a;
    int64_t expires;
    char *user;   /* owned, may be NULL */
};

struct popauth_cache {
    char *path;
    int poll_ms;
    pthread_t thread;

    /* control, under mu */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    bool stopping;
    unsigned long requested, completed;   /* refresh requests and rounds */

    /* the copy, under data */
    pthread_rwlock_t data;
    struct centry *v;
    size_t n;

    /* the thread's own */
    struct store *s;
    sqlite3_stmt *gen_st;
    dev_t dev;
    ino_t ino;
    bool have_gen;
    int64_t gen;
    bool failing;
};

static void entries_free(struct centry *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].user);
    free(v);
}

static void cache_close(struct popauth_cache *c)
{
    sqlite3_finalize(c->gen_st);
    c->gen_st = NULL;
    store_close(c->s);
    c->s = NULL;
    c->have_gen = false;
}

/* Log once per incident; what is already escaped or our own text. */
static void incident(struct popauth_cache *c, const char *what)
{
    if (c->failing)
        return;
    c->failing = true;
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, c->path);
    log_msg(LOG_WARNING, "popauth: grants in %s unavailable: %s; keeping the %zu "
            "loaded, retrying every %d ms", sbuf_str(&b), what, c->n, c->poll_ms);
    sbuf_free(&b);
}

static void recovered(struct popauth_cache *c)
{
    if (!c->failing)
        return;
    c->failing = false;
    log_msg(LOG_NOTICE, "popauth: grants available again (%zu live)", c->n);
}

/* Open the connection when needed; reopen when the file was replaced. */
static bool cache_connect(struct popauth_cache *c)
{
    struct stat sb;
    if (stat(c->path, &sb) != 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", strerror(errno));
        cache_close(c);
        incident(c, msg);
        return false;
    }
    if (c->s && (sb.st_dev != c->dev || sb.st_ino != c->ino))
        cache_close(c);
    if (c->s)
        return true;
    char err[512];
    int busy = c->poll_ms < 1000 ? 1000 : c->poll_ms;
    if (store_open(c->path, STORE_READONLY, busy, &c->s, err, sizeof err) < 0) {
        struct sbuf b = SBUF_INIT;
        esc_text_s(&b, err);
        incident(c, sbuf_str(&b));
        sbuf_free(&b);
        return false;
    }
    c->dev = sb.st_dev;
    c->ino = sb.st_ino;
    c->have_gen = false;
    return true;
}

static void db_incident(struct popauth_cache *c, const char *what)
{
    struct sbuf b = SBUF_INIT;
    sbuf_addf(&b, "%s: ", what);
    esc_text_s(&b, sqlite3_errmsg(store_db(c->s)));
    incident(c, sbuf_str(&b));
    sbuf_free(&b);
    cache_close(c);   /* start afresh next round */
}

static int read_generation(struct popauth_cache *c, int64_t *gen)
{
    sqlite3 *db = store_db(c->s);
    if (!c->gen_st &&
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'grants_generation'",
                           -1, &c->gen_st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(c->gen_st);
    if (rc == SQLITE_ROW)
        *gen = sqlite3_column_int64(c->gen_st, 0);
    sqlite3_reset(c->gen_st);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int load_grants(struct popauth_cache *c, struct centry **out, size_t *nout)
{
    sqlite3 *db = store_db(c->s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT ip_bin, user, expires FROM grants"
                           " WHERE expires > ?1 ORDER BY ip_bin", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
    struct centry *v = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != 16)
            continue;   /* not written by us: ignore rather than guess */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            v = xrealloc(v, cap * sizeof *v);
        }
        memcpy(v[n].a.b, sqlite3_column_blob(st, 0), 16);
        v[n].user = xstrdup(col_text(st, 1));
        v[n].expires = sqlite3_column_int64(st, 2);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        entries_free(v, n);
        return -1;
    }
    *out = v;
    *nout = n;
    return 0;
}

/* One round on the cache's thread: look at the generation, reload when it
 * moved (or when forced). */
static void cache_round(struct popauth_cache *c, bool force)
{
    if (!cache_connect(c))
        return;
    int64_t gen = 0;
    if (read_generation(c, &gen) < 0) {
        db_incident(c, "reading the grants generation");
        return;
    }
    if (!force && c->have_gen && gen == c->gen) {
        recovered(c);
        return;
    }
    struct centry *v = NULL;
    size_t n = 0;
    if (load_grants(c, &v, &n) < 0) {
        db_incident(c, "loading grants");
        return;
    }
    pthread_rwlock_wrlock(&c->data);
    struct centry *old = c->v;
    size_t oldn = c->n;
    c->v = v;
    c->n = n;
    pthread_rwlock_unlock(&c->data);
    entries_free(old, oldn);
    c->gen = gen;
    c->have_gen = true;
    recovered(c);
}

static struct timespec deadline_after(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static void *cache_main(void *arg)
{
    struct popauth_cache *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        unsigned long ticket = c->requested;
        bool force = c->completed != ticket;
        pthread_mutex_unlock(&c->mu);
        cache_round(c, force);
        pthread_mutex_lock(&c->mu);
        c->completed = ticket;
        pthread_cond_broadcast(&c->done);
        struct timespec until = deadline_after(c->poll_ms);
        while (!c->stopping && c->requested == c->completed)
            if (pthread_cond_timedwait(&c->wake, &c->mu, &until) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&c->mu);
    cache_close(c);
    return NULL;
}

static void cache_free(struct popauth_cache *c)
{
    entries_free(c->v, c->n);
    pthread_rwlock_destroy(&c->data);
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->done);
    pthread_mutex_destroy(&c->mu);
    free(c->path);
    free(c);
}

struct popauth_cache *popauth_cache_start(const char *path, int poll_ms)
{
    struct popauth_cache *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path ? path : "");
    c->poll_ms = poll_ms > 0 ? poll_ms : 1000;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wake, &ca);
    pthread_cond_init(&c->done, &ca);
    pthread_condattr_destroy(&ca);
    pthread_rwlock_init(&c->data, NULL);
    /* the first round loads whatever is there */
    c->requested = 1;
    if (pthread_create(&c->thread, NULL, cache_main, c) != 0) {
        log_msg(LOG_ERR, "popauth: cannot start the grants thread");
        cache_free(c);
        return NULL;
    }
    /* give the first load a moment so that grants count from the start,
     * but never hold up the caller for long on a locked database */
    pthread_mutex_lock(&c->mu);
    struct timespec until = deadline_after(1000);
    while (c->completed < 1)
        if (pthread_cond_timedwait(&c->done, &c->mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&c->mu);
    return c;
}

/* First index whose address is >= a. */
static size_t lower_bound(const struct centry *v, size_t n, const struct ip *a)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ip_cmp(&v[mid].a, a) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool popauth_cache_match(struct popauth_cache *c, const struct ip *a,
                         unsigned v6_prefix, int64_t now,
                         char *user_out, size_t user_len)
{
    if (user_out && user_len)
        user_out[0] = '\0';
    if (!c || !a)
        return false;
    struct ip lo, hi;
    cover_range(a, v6_prefix, &lo, &hi);
    bool found = false;
    pthread_rwlock_rdlock(&c->data);
    for (size_t i = lower_bound(c->v, c->n, &lo);
         i < c->n && ip_cmp(&c->v[i].a, &hi) <= 0; i++) {
        if (c->v[i].expires <= now || !covers(&c->v[i].a, a))
            continue;
        found = true;
        if (user_out && user_len)
            snprintf(user_out, user_len, "%s", c->v[i].user ? c->v[i].user : "");
        break;
    }
    pthread_rwlock_unlock(&c->data);
    return found;
}

void popauth_cache_refresh(struct popauth_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    unsigned long ticket = ++c->requested;
    pthread_cond_signal(&c->wake);
    /* wait (bounded) for the round that serves this request */
    struct timespec until = deadline_after(2000);
    while (!c->stopping && c->completed < ticket)
        if (pthread_cond_timedwait(&c->done, &c->mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&c->mu);
}

void popauth_cache_stop(struct popauth_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->wake);
    pthread_cond_broadcast(&c->done);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    cache_free(c);
}

/* ---- log lines ----
 *
 * A syslog line is "HEADER TAG: MESSAGE", where HEADER (timestamp, host) is
 * the logger's own and TAG ("dovecot", "popper[123]") names the program.
 * The first ": " of the line ends the tag: timestamps ("12:00:00",
 * "+01:00") and host names hold no ": ". Everything after it may quote what
 * a remote client sent (a HELO name in a Postfix line, a user name in a
 * failed login), so a login is recognised only from the tag and the very
 * start of the message, never from text found further along the line:
 * otherwise a client could grant itself relay by sending a HELO that looks
 * like a Dovecot login. */

#define PARSE_LINE_MAX 16384

struct span {
    const char *p, *e;   /* [p, e) */
};

static size_t span_len(struct span s)
{
    return (size_t)(s.e - s.p);
}

/* Consume lit at the start of *s. */
static bool eat(struct span *s, const char *lit)
{
    size_t n = strlen(lit);
    if (span_len(*s) < n || memcmp(s->p, lit, n) != 0)
        return false;
    s->p += n;
    return true;
}

static const char *find(struct span s, const char *lit)
{
    size_t n = strlen(lit);
    if (!n || span_len(s) < n)
        return NULL;
    return memmem(s.p, span_len(s), lit, n);
}

static bool span_is(struct span s, const char *lit)
{
    return span_len(s) == strlen(lit) && memcmp(s.p, lit, span_len(s)) == 0;
}

/* The tag without "[pid]" (the pid must be digits). */
static bool split_line(const char *line, struct span *name, struct span *msg)
{
    size_t len = strnlen(line, PARSE_LINE_MAX + 1);
    if (len > PARSE_LINE_MAX)
        return false;
    struct span all = { line, line + len };
    while (all.e > all.p && (all.e[-1] == '\n' || all.e[-1] == '\r'))
        all.e--;
    const char *colon = find(all, ": ");
    if (!colon)
        return false;
    const char *t = colon;
    while (t > all.p && t[-1] != ' ')
        t--;
    const char *te = colon;
    if (te > t && te[-1] == ']') {
        const char *b = te - 1;
        while (b > t && b[-1] >= '0' && b[-1] <= '9')
            b--;
        if (b == te - 1 || b == t || b[-1] != '[')
            return false;
        te = b - 1;
    }
    if (te == t)
        return false;
    name->p = t;
    name->e = te;
    msg->p = colon + 2;
    msg->e = all.e;
    return true;
}

static bool set_ip(struct span s, struct popauth_login *out)
{
    char buf[64];
    if (!span_len(s) || span_len(s) >= sizeof buf)
        return false;
    memcpy(buf, s.p, span_len(s));
    buf[span_len(s)] = '\0';
    struct ip a;
    if (ip_parse(buf, &a) < 0)
        return false;
    ip_format(&a, out->ip, sizeof out->ip);
    return true;
}

/* Bounded copy, cut (if at all) before a UTF-8 continuation byte. Control
 * bytes are kept: everything printing a user escapes it. */
static bool set_user(struct span s, struct popauth_login *out)
{
    size_t n = span_len(s);
    if (!n)
        return false;
    size_t max = sizeof out->user - 1;
    if (max > USER_MAX)
        max = USER_MAX;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s.p[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out->user, s.p, n);
    out->user[n] = '\0';
    return true;
}

/* Dovecot: "imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10,
 * lip=..., ..." from the tag "dovecot", or "Login: ..." (after "Info: " in
 * Dovecot's own log file) from the tag "imap-login"/"pop3-login". */
static bool parse_dovecot(struct span name, struct span m, struct popauth_login *out)
{
    if (span_is(name, "dovecot")) {
        if (!eat(&m, "imap-login: ") && !eat(&m, "pop3-login: "))
            return false;
    } else if (!span_is(name, "imap-login") && !span_is(name, "pop3-login")) {
        return false;
    }
    eat(&m, "Info: ");
    if (!eat(&m, "Login: user=<"))
        return false;
    const char *ue = find(m, ">, ");
    if (!ue)
        return false;
    struct span user = { m.p, ue };
    m.p = ue + 1;
    const char *r = find(m, ", rip=");
    if (!r)
        return false;
    struct span ip = { r + 6, r + 6 };
    while (ip.e < m.e && *ip.e != ',' && *ip.e != ' ')
        ip.e++;
    if (ip.e < m.e && *ip.e != ',')
        return false;
    if (!set_ip(ip, out) || !set_user(user, out))
        return false;
    out->source = "dovecot";
    return true;
}

static bool courier_tag(struct span name)
{
    static const char *const tags[] = {
        "imapd", "imapd-ssl", "pop3d", "pop3d-ssl",
        "courier-imapd", "courier-imapd-ssl", "courier-pop3d", "courier-pop3d-ssl",
        "courierpop3d", "courierpop3login",
    };
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
        if (span_is(name, tags[i]))
            return true;
    return false;
}

/* Courier: "LOGIN, user=bob, ip=[::ffff:192.0.2.10], port=[41234]..."
 * ("LOGIN FAILED, ..." is not a login). */
static bool parse_courier(struct span name, struct span m, struct popauth_login *out)
{
    if (!courier_tag(name) || !eat(&m, "LOGIN, user="))
        return false;
    const char *ue = find(m, ", ip=[");
    if (!ue)
        return false;
    struct span user = { m.p, ue };
    struct span ip = { ue + 6, ue + 6 };
    while (ip.e < m.e && *ip.e != ']')
        ip.e++;
    if (ip.e >= m.e || (ip.e + 1 < m.e && ip.e[1] != ','))
        return false;
    if (!set_ip(ip, out) || !set_user(user, out))
        return false;
    out->source = "courier";
    return true;
}

/* The next space-separated word of *s (empty at the end). */
static struct span word(struct span *s)
{
    while (s->p < s->e && *s->p == ' ')
        s->p++;
    struct span w = { s->p, s->p };
    while (w.e < s->e && *w.e != ' ')
        w.e++;
    s->p = w.e;
    return w;
}

static bool all_digits(struct span s)
{
    if (!span_len(s))
        return false;
    for (const char *p = s.p; p < s.e; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* qpopper: "(v4.1.0) POP login by user "bob" at (host) 192.0.2.10" when the
 * password was accepted, and "Stats: bob 0 0 1 1234 host 192.0.2.10
 * [pop_updt.c:264]" at the end of a session (which needed a login). */
static bool parse_qpopper(struct span name, struct span m, struct popauth_login *out)
{
    if (!span_is(name, "popper") && !span_is(name, "qpopper"))
        return false;
    if (eat(&m, "Stats: ")) {
        struct span user = word(&m);
        for (int i = 0; i < 4; i++)
            if (!all_digits(word(&m)))
                return false;
        struct span host = word(&m), ip = word(&m), where = word(&m);
        if (!span_len(host) || !span_len(ip))
            return false;
        if (span_len(where) && (where.p[0] != '[' || where.e[-1] != ']'))
            return false;
        if (span_len(word(&m)))
            return false;
        if (!set_ip(ip, out) || !set_user(user, out))
            return false;
        out->source = "qpopper";
        return true;
    }
    if (span_len(m) > 2 && m.p[0] == '(' && m.p[1] == 'v') {
        struct span head = { m.p, m.p + (span_len(m) < 40 ? span_len(m) : 40) };
        const char *v = find(head, ") ");
        if (!v)
            return false;
        m.p = v + 2;
    }
    if (!eat(&m, "POP login by user \""))
        return false;
    const char *ue = find(m, "\" at (");
    if (!ue)
        return false;
    struct span user = { m.p, ue };
    /* the address is the last word, right after the host's ")" */
    const char *sp = m.e;
    while (sp > ue && sp[-1] != ' ')
        sp--;
    if (sp - ue < 8 || sp[-2] != ')')
        return false;
    struct span ip = { sp, m.e };
    if (!set_ip(ip, out) || !set_user(user, out))
        return false;
    out->source = "qpopper";
    return true;
}

/* ---- the time at the start of a line ----
 *
 * Parsed by hand (no strptime: it skips spaces and accepts what a header
 * never holds) into a civil date, checked, and turned into epoch seconds:
 * directly when the stamp has an offset, through mktime (TZ) when not. */

struct civil {
    int y, mo, d, h, mi, s;
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool eat_char(struct span *s, char c)
{
    if (s->p >= s->e || *s->p != c)
        return false;
    s->p++;
    return true;
}

/* Exactly n digits. */
static bool num(struct span *s, int n, int *v)
{
    if (span_len(*s) < (size_t)n)
        return false;
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s->p[i]))
            return false;
        x = x * 10 + (s->p[i] - '0');
    }
    s->p += n;
    *v = x;
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool valid_civil(const struct civil *c)
{
    static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (c->y < 1970 || c->y > 9999 || c->mo < 1 || c->mo > 12 || c->d < 1)
        return false;
    int last = mdays[c->mo - 1] + (c->mo == 2 && leap_year(c->y));
    return c->d <= last && c->h <= 23 && c->mi <= 59 && c->s <= 60;   /* 60: leap second */
}

static int64_t utc_seconds(const struct civil *c)
{
    return tu_days_from_civil(c->y, c->mo, c->d) * 86400 + c->h * 3600 + c->mi * 60 + c->s;
}

/* c as local time. */
static bool local_seconds(const struct civil *c, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = c->y - 1900;
    tm.tm_mon = c->mo - 1;
    tm.tm_mday = c->d;
    tm.tm_hour = c->h;
    tm.tm_min = c->mi;
    tm.tm_sec = c->s;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1)
        return false;
    *out = (int64_t)t;
    return true;
}

/* "15:04:05", optionally with a fraction (".123456"), which is dropped. */
static bool clock_time(struct span *s, struct civil *c)
{
    if (!num(s, 2, &c->h) || !eat_char(s, ':') || !num(s, 2, &c->mi) ||
        !eat_char(s, ':') || !num(s, 2, &c->s))
        return false;
    if (eat_char(s, '.') || eat_char(s, ',')) {
        if (s->p >= s->e || !is_digit(*s->p))
            return false;
        while (s->p < s->e && is_digit(*s->p))
            s->p++;
    }
    return true;
}

/* "2026-11-22T15:04:05[.frac][Z|+01:00|+0100]" or the same with a space for
 * the "T" (Dovecot's log_timestamp = "%Y-%m-%d %H:%M:%S "). *zoned tells
 * whether an offset (east of UTC, seconds) was given. */
static bool iso_stamp(struct span *s, struct civil *c, bool *zoned, int *offset)
{
    if (!num(s, 4, &c->y) || !eat_char(s, '-') || !num(s, 2, &c->mo) ||
        !eat_char(s, '-') || !num(s, 2, &c->d))
        return false;
    if (!eat_char(s, 'T') && !eat_char(s, 't') && !eat_char(s, ' '))
        return false;
    if (!clock_time(s, c))
        return false;
    *zoned = false;
    *offset = 0;
    if (eat_char(s, 'Z') || eat_char(s, 'z')) {
        *zoned = true;
    } else if (s->p < s->e && (*s->p == '+' || *s->p == '-')) {
        int sign = *s->p == '-' ? -1 : 1, oh, om;
        s->p++;
        if (!num(s, 2, &oh))
            return false;
        eat_char(s, ':');
        if (!num(s, 2, &om) || oh > 23 || om > 59)
            return false;
        *zoned = true;
        *offset = sign * (oh * 3600 + om * 60);
    }
    return true;
}

/* "Nov 22 15:04:05", "Nov  2 15:04:05" or "Nov 02 15:04:05" (no year). */
static bool syslog_stamp(struct span *s, struct civil *c)
{
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    if (span_len(*s) < 4 || s->p[3] != ' ')
        return false;
    c->mo = 0;
    for (int i = 0; i < 12 && !c->mo; i++)
        if (!memcmp(s->p, months[i], 3))
            c->mo = i + 1;
    if (!c->mo)
        return false;
    s->p += 4;
    eat_char(s, ' ');   /* "Nov  2": a day padded with a space */
    int d;
    if (!num(s, 1, &c->d))
        return false;
    if (num(s, 1, &d))
        c->d = c->d * 10 + d;
    return eat_char(s, ' ') && clock_time(s, c);
}

/* The time that starts line, or 0 (see popauth_parse_line). */
static int64_t line_time(const char *line, int64_t now)
{
    struct span all = { line, line + strnlen(line, PARSE_LINE_MAX) };
    struct civil c;
    bool zoned;
    int offset;
    struct span s = all;
    memset(&c, 0, sizeof c);
    if (iso_stamp(&s, &c, &zoned, &offset)) {
        int64_t t;
        if (!eat_char(&s, ' ') || !valid_civil(&c))
            return 0;
        if (zoned)
            return utc_seconds(&c) - offset;
        return local_seconds(&c, &t) ? t : 0;
    }
    s = all;
    memset(&c, 0, sizeof c);
    if (!syslog_stamp(&s, &c) || !eat_char(&s, ' '))
        return 0;
    /* no year: the latest that does not put the line more than a day
     * ahead of now; going back up to 8 years finds the last Feb 29 */
    tzset();
    time_t tnow = (time_t)now;
    struct tm tm;
    if (!localtime_r(&tnow, &tm))
        return 0;
    int year = tm.tm_year + 1900;
    for (int y = year + 1; y >= year - 8; y--) {
        c.y = y;
        int64_t t;
        if (valid_civil(&c) && local_seconds(&c, &t) && t - 86400 <= now)
            return t;
    }
    return 0;
}

bool popauth_parse_line(const char *line, int64_t now, struct popauth_login *out)
{
    if (!line || !out)
        return false;
    struct span name, msg;
    if (!split_line(line, &name, &msg))
        return false;
    struct popauth_login tmp;
    memset(&tmp, 0, sizeof tmp);
    if (parse_dovecot(name, msg, &tmp) || parse_courier(name, msg, &tmp) ||
        parse_qpopper(name, msg, &tmp)) {
        tmp.time = line_time(line, now);
        *out = tmp;
        return true;
    }
    return false;
}

/* ---- grants from logins ---- */

bool popauth_login_window(const struct popauth_login *l, int64_t ttl_secs, int64_t now,
                          int64_t *start, int64_t *expires)
{
    int64_t from = l->time != 0 && l->time < now ? l->time : now;
    int64_t until = ttl_secs > 0 && from <= INT64_MAX - ttl_secs ? from + ttl_secs
                  : ttl_secs > 0 ? INT64_MAX : from;
    if (start)
        *start = from;
    if (expires)
        *expires = until;
    return until > now;
}

int popauth_grant_login(struct store *s, const struct popauth_login *l, int64_t ttl_secs,
                        int64_t now, int64_t *expires, char *err, size_t errlen)
{
    if (!l || !l->source || !*l->source || !strcmp(l->source, "cli"))
        return errbuf_set(err, errlen, "a login needs the source that logged it");
    if (ttl_secs <= 0)
        return errbuf_set(err, errlen, "ttl must be > 0 (got %lld)", (long long)ttl_secs);
    int64_t start, until;
    if (!popauth_login_window(l, ttl_secs, now, &start, &until))
        return 0;
    if (popauth_add(s, l->ip, l->user, ttl_secs, l->source, start, err, errlen) < 0)
        return -1;
    if (expires)
        *expires = until;
    return 1;
}
