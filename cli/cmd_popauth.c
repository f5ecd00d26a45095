/* kanjiki popauth: add, remove and list POP/IMAP-before-SMTP grants, and
 * `watch`: follow mail server logs (lib/follow) and grant the client of
 * every successful POP3/IMAP login (popauth_parse_line) from the time it
 * was logged, skipping logins too old to grant (popauth_login_window), so
 * that --from-start on an old log opens nothing for old logins. Text from the
 * database or the logs reaches the terminal only through esc_text (or the
 * table printer, which escapes for its format). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "esc.h"
#include "follow.h"
#include "popauth.h"
#include "sbuf.h"
#include "store.h"
#include "table.h"
#include "timeutil.h"
#include "xalloc.h"

#define USER_MAX 255
#define PENDING_MAX 10000      /* grants kept while the database is failing */
#define RETRY_MS 1000

static const char *help_main =
    "usage: kanjiki [-c FILE | -d DB] popauth COMMAND [ARGS]\n"
    "POP/IMAP-before-SMTP grants: a grant lets a client address relay until it\n"
    "expires. One grant per address; adding one again replaces it.\n"
    "commands:\n"
    "  add IP [--user U] [--ttl DURATION]   grant IP (default ttl: popauth_ttl)\n"
    "  del IP                               remove the grant for IP\n"
    "  list [--all] [--format table|json|csv]\n"
    "                                       live grants (--all: expired too)\n"
    "  watch [--ttl DURATION] [--from-start] LOGFILE...\n"
    "                                       grant the client of every POP3/IMAP\n"
    "                                       login logged by Dovecot, Courier or\n"
    "                                       qpopper\n"
    "Each command takes --help.\n";

static const char *help_add =
    "usage: kanjiki popauth add IP [--user U] [--ttl DURATION]\n"
    "Grant IP (IPv4 or IPv6; ::ffff:a.b.c.d is stored as a.b.c.d) the right to\n"
    "relay for DURATION (30, 90s, 15m, 1h, 7d, 1h30m; default popauth_ttl),\n"
    "replacing any grant IP already has.\n"
    "  --user U        record who logged in (shown by list)\n"
    "  --ttl DURATION  how long the grant lasts\n";

static const char *help_del =
    "usage: kanjiki popauth del IP\n"
    "Remove the grant for IP. Exit status 1 when IP had none.\n";

static const char *help_list =
    "usage: kanjiki popauth list [--all] [--format table|json|csv]\n"
    "List live grants ordered by address: ip, user, source (cli, dovecot,\n"
    "courier, qpopper), created, expires (local time) and state.\n"
    "  --all        expired grants too\n"
    "  --format F   table (default), json (one object per line) or csv\n";

static const char *help_watch =
    "usage: kanjiki popauth watch [--ttl DURATION] [--from-start] LOGFILE...\n"
    "Follow the logs like tail -F (across rotation and truncation; a file that\n"
    "does not exist yet is waited for) and grant the client address of every\n"
    "successful POP3 or IMAP login by Dovecot, Courier or qpopper for DURATION\n"
    "(default popauth_ttl) from the time the line was logged (never later than\n"
    "now; from now when the line has no timestamp kanjiki reads). A login\n"
    "older than DURATION grants nothing: it is counted in a \"skipped\" line.\n"
    "Failed logins and SMTP/submission logins grant nothing. Prints one line\n"
    "per grant. Runs until interrupted (SIGINT, SIGTERM); database errors are\n"
    "reported and the grants retried.\n"
    "  --ttl DURATION  how long each grant lasts\n"
    "  --from-start    read what the files hold already, not only new lines\n";

static int failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *help, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int failure(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kanjiki popauth: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* A usage error: the message and where to read more (exit status 2). */
static int usage(const char *help, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kanjiki popauth: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *sub = help == help_add ? " add" : help == help_del ? " del"
                    : help == help_list ? " list" : help == help_watch ? " watch" : "";
    fprintf(stderr, " (kanjiki popauth%s --help)\n", sub);
    return 2;
}

/* Escaped copy of untrusted text for one message; caller frees. */
static char *esc(const char *s)
{
    struct sbuf b = SBUF_INIT;
    esc_text(&b, s ? s : "", s ? strnlen(s, 1024) : 0);
    return sbuf_take(&b);
}

static bool is_help(const char *a)
{
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]. Returns 1 and *val when it
 * is this option, 0 when it is not, -1 when the value is missing. */
static int opt_val(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

static int parse_ttl(const char *help, const char *v, int64_t *ttl)
{
    if (tu_parse_duration(v, ttl) < 0 || *ttl <= 0) {
        char *e = esc(v);
        usage(help, "bad duration '%s' (a positive duration: 30, 90s, 15m, 1h, 7d)", e);
        free(e);
        return -1;
    }
    return 0;
}

static int parse_ip_arg(const char *help, const char *v, struct ip *a)
{
    if (ip_parse(v, a) < 0) {
        char *e = esc(v);
        usage(help, "not an IP address: %s", e);
        free(e);
        return -1;
    }
    return 0;
}

static int64_t default_ttl(const struct cli_ctx *ctx)
{
    return ctx->conf && ctx->conf->popauth_ttl > 0 ? ctx->conf->popauth_ttl : 30 * 60;
}

static void fmt_time(int64_t secs, char *buf, size_t len)
{
    tu_format_local(secs * 1000, buf, len);
}

static int open_rw(struct cli_ctx *ctx, struct store **s, char *err, size_t errlen)
{
    return store_open(ctx->db_path, 0, 2000, s, err, errlen);
}

static int report_db(const char *err)
{
    char *e = esc(err);
    failure("%s", e);
    free(e);
    return 1;
}

/* ---- add ---- */

static int do_add(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *ip = NULL, *user = NULL, *v = NULL;
    int64_t ttl = default_ttl(ctx);
    for (int i = 1; i < argc; i++) {
        int r;
        if (is_help(argv[i])) {
            fputs(help_add, stdout);
            return 0;
        }
        if ((r = opt_val(argc, argv, &i, "--user", &v)) != 0) {
            if (r < 0)
                return usage(help_add, "--user needs a value");
            if (!*v || strlen(v) > USER_MAX)
                return usage(help_add, "--user needs 1 to %d bytes", USER_MAX);
            user = v;
        } else if ((r = opt_val(argc, argv, &i, "--ttl", &v)) != 0) {
            if (r < 0)
                return usage(help_add, "--ttl needs a value");
            if (parse_ttl(help_add, v, &ttl) < 0)
                return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            char *e = esc(argv[i]);
            usage(help_add, "unknown option %s", e);
            free(e);
            return 2;
        } else if (ip) {
            return usage(help_add, "one address at a time");
        } else {
            ip = argv[i];
        }
    }
    if (!ip)
        return usage(help_add, "which address?");
    struct ip a;
    if (parse_ip_arg(help_add, ip, &a) < 0)
        return 2;
    struct store *s;
    char err[512];
    if (open_rw(ctx, &s, err, sizeof err) < 0)
        return report_db(err);
    int64_t now = (int64_t)time(NULL);
    int rc = popauth_add(s, ip, user, ttl, "cli", now, err, sizeof err);
    store_close(s);
    if (rc < 0)
        return report_db(err);
    char text[IP_STRLEN], until[40];
    ip_format(&a, text, sizeof text);
    fmt_time(now + ttl, until, sizeof until);
    char *u = esc(user);
    printf("granted %s%s%s until %s\n", text, user ? " to " : "", user ? u : "", until);
    free(u);
    return 0;
}

/* ---- del ---- */

static int do_del(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *ip = NULL;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(help_del, stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            char *e = esc(argv[i]);
            usage(help_del, "unknown option %s", e);
            free(e);
            return 2;
        }
        if (ip)
            return usage(help_del, "one address at a time");
        ip = argv[i];
    }
    if (!ip)
        return usage(help_del, "which address?");
    struct ip a;
    if (parse_ip_arg(help_del, ip, &a) < 0)
        return 2;
    char text[IP_STRLEN];
    ip_format(&a, text, sizeof text);
    struct store *s;
    char err[512];
    if (open_rw(ctx, &s, err, sizeof err) < 0)
        return report_db(err);
    int n = popauth_del(s, ip, err, sizeof err);
    store_close(s);
    if (n < 0)
        return report_db(err);
    if (n == 0)
        return failure("no grant for %s", text);
    printf("removed the grant for %s\n", text);
    return 0;
}

/* ---- list ---- */

static const struct table_col list_cols[] = {
    { "ip", TABLE_COL_TEXT, 0 },      { "user", TABLE_COL_TEXT, 32 },
    { "source", TABLE_COL_TEXT, 0 },  { "created", TABLE_COL_TEXT, 0 },
    { "expires", TABLE_COL_TEXT, 0 }, { "state", TABLE_COL_TEXT, 0 },
};

struct list_ctx {
    struct table *t;
    int64_t now;
};

static int list_row(const struct popauth_grant *g, void *arg)
{
    struct list_ctx *l = arg;
    char created[40], expires[40];
    fmt_time(g->created, created, sizeof created);
    fmt_time(g->expires, expires, sizeof expires);
    const char *cells[] = { g->ip, g->user, g->source, created, expires,
                            g->expires > l->now ? "live" : "expired" };
    table_add(l->t, cells);
    return 0;
}

static int do_list(struct cli_ctx *ctx, int argc, char **argv)
{
    bool all = false;
    enum cli_format fmt = CLI_FMT_TABLE;
    const char *v = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if (is_help(argv[i])) {
            fputs(help_list, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--all")) {
            all = true;
        } else if ((r = opt_val(argc, argv, &i, "--format", &v)) != 0) {
            if (r < 0)
                return usage(help_list, "--format needs a value");
            if (cli_parse_format(v, &fmt) < 0) {
                char *e = esc(v);
                usage(help_list, "bad format '%s' (table, json or csv)", e);
                free(e);
                return 2;
            }
        } else {
            char *e = esc(argv[i]);
            usage(help_list, "unexpected argument %s", e);
            free(e);
            return 2;
        }
    }
    /* listing never creates a database, and works read-only too */
    struct store *s;
    char err[512];
    if (cli_open_existing(ctx, &s, err, sizeof err) < 0)
        return report_db(err);
    struct list_ctx l = { table_new(list_cols, sizeof list_cols / sizeof list_cols[0]),
                          (int64_t)time(NULL) };
    int rc = popauth_list(s, all, l.now, list_row, &l, err, sizeof err);
    store_close(s);
    if (rc < 0) {
        table_free(l.t);
        return report_db(err);
    }
    table_print(l.t, fmt, stdout);
    table_free(l.t);
    return 0;
}

/* ---- watch ---- */

struct watch {
    struct cli_ctx *ctx;
    struct store *s;
    int64_t ttl;
    struct popauth_login *q;    /* waiting for the database; each login's
                                 * time is pinned to when its grant starts */
    size_t nq;
    bool failing;
    unsigned long lost;         /* dropped: queue full or expired meanwhile */
    int64_t next_retry_ms;
    /* logins older than the ttl since the last report: first and last time */
    unsigned long skipped;
    int64_t skipped_from, skipped_to;
    bool warned_undated;
};

static struct follow *watch_follow;   /* for the signal handler */

static void on_signal(int sig)
{
    (void)sig;
    follow_stop(watch_follow);
}

static void print_grant(const struct popauth_login *l, int64_t expires)
{
    char seen[40], until[40];
    fmt_time(l->time, seen, sizeof seen);
    fmt_time(expires, until, sizeof until);
    struct sbuf b = SBUF_INIT;
    sbuf_addf(&b, "%s granted %s user=", seen, l->ip);
    esc_text_s(&b, l->user);
    sbuf_addf(&b, " source=%s until %s\n", l->source, until);
    fputs(sbuf_str(&b), stdout);
    fflush(stdout);
    sbuf_free(&b);
}

/* One line for the logins skipped since the last one, if any. */
static void report_skipped(struct watch *w)
{
    if (!w->skipped)
        return;
    char now[40], from[40], to[40];
    fmt_time((int64_t)time(NULL), now, sizeof now);
    fmt_time(w->skipped_from, from, sizeof from);
    fmt_time(w->skipped_to, to, sizeof to);
    if (w->skipped == 1)
        printf("%s skipped 1 login logged at %s: older than the ttl\n", now, from);
    else
        printf("%s skipped %lu logins logged from %s to %s: older than the ttl\n",
               now, w->skipped, from, to);
    fflush(stdout);
    w->skipped = 0;
}

static void watch_failed(struct watch *w, const char *err)
{
    if (w->s) {
        store_close(w->s);   /* start afresh: the file may have been replaced */
        w->s = NULL;
    }
    w->next_retry_ms = tu_now_ms() + RETRY_MS;
    if (w->failing)
        return;
    w->failing = true;
    char *e = esc(err);
    failure("cannot record grants: %s; keeping them queued, retrying every %d ms",
            e, RETRY_MS);
    free(e);
}

/* Record the grant for l (its time pinned by on_line) now: 1 when granted,
 * 0 when it has expired by now, -1 when the database failed. */
static int record(struct watch *w, const struct popauth_login *l)
{
    char err[512];
    if (!w->s && open_rw(w->ctx, &w->s, err, sizeof err) < 0) {
        watch_failed(w, err);
        return -1;
    }
    int64_t expires;
    int r = popauth_grant_login(w->s, l, w->ttl, (int64_t)time(NULL), &expires,
                                err, sizeof err);
    if (r < 0) {
        watch_failed(w, err);
        return -1;
    }
    if (r > 0)
        print_grant(l, expires);
    return r;
}

/* Keep l for later: one entry per address (the latest login wins). */
static void enqueue(struct watch *w, const struct popauth_login *l)
{
    for (size_t i = 0; i < w->nq; i++) {
        if (!strcmp(w->q[i].ip, l->ip)) {
            if (w->q[i].time > l->time)
                return;   /* read later, logged earlier (another file) */
            memmove(&w->q[i], &w->q[i + 1], (w->nq - i - 1) * sizeof *w->q);
            w->nq--;
            break;
        }
    }
    if (w->nq == PENDING_MAX) {
        memmove(&w->q[0], &w->q[1], (w->nq - 1) * sizeof *w->q);
        w->nq--;
        w->lost++;
    }
    if (!w->q)
        w->q = xcalloc(PENDING_MAX, sizeof *w->q);
    w->q[w->nq++] = *l;
}

/* Write what is queued, oldest first, stopping at the first failure. */
static void retry(struct watch *w)
{
    if (!w->nq || tu_now_ms() < w->next_retry_ms)
        return;
    size_t done = 0;
    while (done < w->nq) {
        int r = record(w, &w->q[done]);
        if (r < 0)
            break;
        if (r == 0)
            w->lost++;   /* it has expired meanwhile */
        done++;
    }
    memmove(&w->q[0], &w->q[done], (w->nq - done) * sizeof *w->q);
    w->nq -= done;
    if (!w->nq && w->failing) {
        w->failing = false;
        fprintf(stderr, "kanjiki popauth: database back, queued grants recorded");
        if (w->lost)
            fprintf(stderr, " (%lu lost: expired meanwhile or queue full)", w->lost);
        fputc('\n', stderr);
        w->lost = 0;
    }
}

static void skip_old(struct watch *w, int64_t at)
{
    if (!w->skipped || at < w->skipped_from)
        w->skipped_from = at;
    if (!w->skipped || at > w->skipped_to)
        w->skipped_to = at;
    w->skipped++;
}

static int on_line(const struct follow_line *fl, void *arg)
{
    struct watch *w = arg;
    struct popauth_login l;
    int64_t now = (int64_t)time(NULL);
    /* a cut line is not the whole line, a NUL byte is not syslog's */
    if (fl->cut || strlen(fl->text) != fl->len || !popauth_parse_line(fl->text, now, &l))
        return 0;
    if (!l.time && !w->warned_undated) {
        w->warned_undated = true;
        char *p = esc(fl->path);
        failure("%s: a login line without a timestamp kanjiki can read; such logins "
                "are granted from when they are read", p);
        free(p);
    }
    /* the grant starts at the login (never later than now): pin that, so
     * that a grant waiting for the database does not start later */
    int64_t start;
    if (!popauth_login_window(&l, w->ttl, now, &start, NULL)) {
        skip_old(w, start);
        return 0;
    }
    l.time = start;
    if (w->nq) {           /* keep order: behind what is already waiting */
        enqueue(w, &l);
        retry(w);
    } else {
        int r = record(w, &l);
        if (r < 0)
            enqueue(w, &l);
        else if (r == 0)
            skip_old(w, start);
    }
    return 0;
}

static void on_note(const char *path, const char *what, void *arg)
{
    (void)arg;
    char *p = esc(path);
    failure("%s: %s", p, what);
    free(p);
}

static int do_watch(struct cli_ctx *ctx, int argc, char **argv)
{
    int64_t ttl = default_ttl(ctx);
    unsigned flags = 0;
    const char **files = xcalloc((size_t)argc, sizeof *files);
    size_t nfiles = 0;
    const char *v = NULL;
    bool opts = true;
    for (int i = 1; i < argc; i++) {
        int r;
        if (opts && is_help(argv[i])) {
            fputs(help_watch, stdout);
            free(files);
            return 0;
        }
        if (opts && !strcmp(argv[i], "--")) {
            opts = false;
        } else if (opts && !strcmp(argv[i], "--from-start")) {
            flags |= FOLLOW_FROM_START;
        } else if (opts && (r = opt_val(argc, argv, &i, "--ttl", &v)) != 0) {
            if (r < 0 || parse_ttl(help_watch, v, &ttl) < 0) {
                free(files);
                return r < 0 ? usage(help_watch, "--ttl needs a value") : 2;
            }
        } else if (opts && argv[i][0] == '-' && argv[i][1]) {
            char *e = esc(argv[i]);
            usage(help_watch, "unknown option %s", e);
            free(e);
            free(files);
            return 2;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (!nfiles) {
        free(files);
        return usage(help_watch, "which log files?");
    }

    struct watch w = { .ctx = ctx, .ttl = ttl };
    char err[512];
    /* a database that cannot be opened yet is retried like any failure */
    if (open_rw(ctx, &w.s, err, sizeof err) < 0)
        watch_failed(&w, err);

    struct follow *f = follow_new(files, nfiles, flags, on_line, on_note, &w);
    free(files);
    watch_follow = f;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    while (follow_poll(f) >= 0) {
        report_skipped(&w);
        retry(&w);
        if (!follow_sleep(f, FOLLOW_POLL_MS))
            break;
    }
    report_skipped(&w);   /* when stopped in the middle of a poll */

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    watch_follow = NULL;
    follow_free(f);
    w.next_retry_ms = 0;
    retry(&w);   /* one last try for what is queued */
    int rc = 0;
    if (w.nq) {
        failure("stopping with %zu grants not recorded", w.nq);
        rc = 1;
    }
    store_close(w.s);
    free(w.q);
    return rc;
}

int cmd_popauth(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2)
        return usage(help_main, "which command?");
    const char *sub = argv[1];
    if (is_help(sub) || !strcmp(sub, "help")) {
        fputs(help_main, stdout);
        return 0;
    }
    if (!strcmp(sub, "add"))
        return do_add(ctx, argc - 1, argv + 1);
    if (!strcmp(sub, "del"))
        return do_del(ctx, argc - 1, argv + 1);
    if (!strcmp(sub, "list"))
        return do_list(ctx, argc - 1, argv + 1);
    if (!strcmp(sub, "watch"))
        return do_watch(ctx, argc - 1, argv + 1);
    char *e = esc(sub);
    usage(help_main, "unknown command '%s'", e);
    free(e);
    return 2;
}
