/* kanjiki audit HOST[:PORT]: test a mail server for open relay the way an
 * attacker would, and for the leaks around it (AUTH in clear text, VRFY,
 * EXPN, banners, unknown recipients, submission without AUTH, early
 * talkers). The battery and the reading of answers are lib/audit.c; this
 * file talks to the server (cli/smtpc.c) and reports. */
#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "esc.h"
#include "sbuf.h"
#include "smtpc.h"
#include "table.h"
#include "timeutil.h"
#include "xalloc.h"

static const char *help_text =
    "usage: kanjiki audit [options] HOST[:PORT]\n"
    "Test HOST (and only it: one connection at a time) for open relay with\n"
    "every trick of nmap's smtp-open-relay and more, each in its own\n"
    "transaction, and for AUTH in clear text, VRFY/EXPN, banner versions,\n"
    "unknown recipients accepted, submission without AUTH, early talkers.\n"
    "  --port N             port (default 25; 465 with --tls); [IPv6]:PORT works too\n"
    "  --helo NAME          EHLO name (default kanjiki-audit.example.net)\n"
    "  --from ADDR          the foreign sender (default audit@example.org)\n"
    "  --to ADDR            the external target (default relaytest@example.net)\n"
    "  --local-domain D     a domain of the server's own (repeatable): senders\n"
    "                       forged in the first two, routing tricks and an\n"
    "                       unknown user through the first\n"
    "  --pause DURATION     between tests (default 200ms)\n"
    "  --timeout DURATION   for every reply (default 10s)\n"
    "  --fresh-connection   a new connection for every test (default: RSET)\n"
    "  --deliver            send a small message through DATA when a test relays\n"
    "  --starttls           every test after STARTTLS\n"
    "  --tls                implicit TLS (port 465)\n"
    "  --no-submission      do not try port 587 without AUTH\n"
    "  --json               one JSON object instead of the report\n"
    "Exit status: 0 no relay and no high-severity finding, 1 relay or a\n"
    "high-severity finding, 2 the audit could not run or decide (every\n"
    "relay test deferred with 4xx, or failed).\n";

struct opts {
    char host[256], port[16];
    const char *helo, *from, *to;
    const char *locals[16];
    size_t nlocal;
    int64_t pause_ms, timeout_ms;
    bool fresh, deliver, starttls, tls, submission, json;
};

struct sess {
    struct smtpc *c;
    struct smtp_reply banner, ehlo;
};

struct result {
    const struct audit_test *t;
    int mail, rcpt, data;
    char mail_r[300], rcpt_r[300], data_r[340], error[320];
    enum audit_verdict v;
};

#define MAX_FINDINGS 32
struct finding {
    const struct audit_kind *k;
    char detail[400];
};

struct audit {
    struct opts o;
    bool progress;              /* progress lines on a terminal */
    char srvname[256], ip[80];
    struct sess s;
    struct result r[AUDIT_MAX_TESTS];
    struct audit_test tests[AUDIT_MAX_TESTS];
    size_t ntests;
    struct finding f[MAX_FINDINGS];
    size_t nf;
    char banner[600];
    int failed_opens;           /* sessions in a row that could not be opened */
    int timeouts;               /* commands in a row that got no reply in time */
};

/* A server that cannot be reached, or leaves commands unanswered, twice in
 * a row is not tried for every remaining test (each try would wait for a
 * timeout). */
#define MAX_FAILURES 2

static void finding(struct audit *a, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finding(struct audit *a, const char *id, const char *fmt, ...)
{
    const struct audit_kind *k = audit_kind(id);
    if (!k || a->nf >= MAX_FINDINGS)
        return;
    for (size_t i = 0; i < a->nf; i++)
        if (a->f[i].k == k)
            return;   /* one finding per kind; the tests show every case */
    struct finding *f = &a->f[a->nf++];
    f->k = k;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
}

/* "250 text" of a reply, one line, for the report (raw: escaped later). */
static void reply_text(const struct smtp_reply *r, char *out, size_t n)
{
    char first[256];
    const char *nl = strchr(r->text, '\n');
    size_t l = nl ? (size_t)(nl - r->text) : strlen(r->text);
    snprintf(first, sizeof first, "%.*s", (int)(l < 255 ? l : 255), r->text);
    snprintf(out, n, "%d %s%s", r->code, first, r->nlines > 1 ? " ..." : "");
}

static void sess_close(struct sess *s)
{
    if (s->c) {
        char err[200];
        smtpc_send(s->c, "QUIT", err, sizeof err);   /* no wait for the 221 */
        smtpc_close(s->c);
    }
    s->c = NULL;
}

/* One command and its reply. Returns the code, or -1 (err set). */
static int cmd(struct audit *a, const char *line, struct smtp_reply *r, char *err, size_t errlen)
{
    /* a reply nobody asked for would be read as the answer to this
     * command: a server out of step is an error, never a relay */
    if (smtpc_pending(a->s.c, 0)) {
        snprintf(err, errlen, "the server sent a reply nobody asked for");
        return -1;
    }
    if (smtpc_send(a->s.c, line, err, errlen) < 0 || smtpc_reply(a->s.c, r, err, errlen) < 0) {
        if (!strncmp(err, "no reply within", 15))
            a->timeouts++;
        return -1;
    }
    a->timeouts = 0;
    return r->code;
}

/* EHLO, falling back to HELO for a server that does not know it. */
static int greet(struct audit *a, char *err, size_t errlen)
{
    char line[300];
    snprintf(line, sizeof line, "EHLO %s", a->o.helo);
    int code = cmd(a, line, &a->s.ehlo, err, errlen);
    if (code >= 500) {
        snprintf(line, sizeof line, "HELO %s", a->o.helo);
        code = cmd(a, line, &a->s.ehlo, err, errlen);
    }
    if (code < 0)
        return -1;
    if (smtpr_class(code) != 2) {
        snprintf(err, errlen, "EHLO/HELO refused: %d", code);
        return -1;
    }
    return 0;
}

/* A new session: connect, greeting, EHLO, and STARTTLS when asked. */
static int sess_open(struct audit *a, char *err, size_t errlen)
{
    sess_close(&a->s);
    /* the address the first session reached, every time: a name resolved
     * again might lead elsewhere (round robin, rebinding) */
    if (smtpc_connect(a->ip[0] ? a->ip : a->o.host, a->o.port, a->o.host, (int)a->o.timeout_ms,
                      a->o.tls, &a->s.c, err, errlen) < 0)
        return -1;
    if (smtpc_reply(a->s.c, &a->s.banner, err, errlen) < 0)
        return -1;
    if (a->s.banner.code != 220) {
        snprintf(err, errlen, "the server greets with %d, not 220", a->s.banner.code);
        return -1;
    }
    if (greet(a, err, errlen) < 0)
        return -1;
    if (a->o.starttls) {
        struct smtp_reply r;
        int code = cmd(a, "STARTTLS", &r, err, errlen);
        if (code < 0)
            return -1;
        if (code != 220) {
            snprintf(err, errlen, "STARTTLS refused: %d", code);
            return -1;
        }
        if (smtpc_starttls(a->s.c, err, errlen) < 0 || greet(a, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static void pause_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };
    while (nanosleep(&t, &t) < 0)
        ;
}

static void progress(struct audit *a, size_t i, const char *what, const char *how)
{
    if (!a->progress)
        return;
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, how);
    fprintf(stderr, "[%2zu/%2zu] %-22s %s\n", i + 1, a->ntests, what, sbuf_str(&b));
    sbuf_free(&b);
}

/* One relay test in its own transaction. */
static void run_test(struct audit *a, size_t i)
{
    struct result *res = &a->r[i];
    const struct audit_test *t = &a->tests[i];
    res->t = t;
    char err[300] = "", line[AUDIT_ADDR_MAX + 16];
    struct smtp_reply r;
    for (int attempt = 0; attempt < 2; attempt++) {
        err[0] = '\0';
        res->mail = res->rcpt = res->data = 0;
        if (a->failed_opens >= MAX_FAILURES || a->timeouts >= MAX_FAILURES) {
            snprintf(err, sizeof err, "not run: the server stopped answering");
            break;
        }
        /* a fresh connection when asked, or when the last one broke */
        bool reset_ok = a->s.c && !a->o.fresh && cmd(a, "RSET", &r, err, sizeof err) == 250;
        if (!reset_ok) {
            if (sess_open(a, err, sizeof err) < 0) {
                a->failed_opens++;
                continue;
            }
            a->failed_opens = 0;
        }
        snprintf(line, sizeof line, "MAIL FROM:%s", t->mail);
        res->mail = cmd(a, line, &r, err, sizeof err);
        if (res->mail < 0) {
            res->mail = 0;
            sess_close(&a->s);
            continue;
        }
        reply_text(&r, res->mail_r, sizeof res->mail_r);
        if (smtpr_class(res->mail) == 2) {
            snprintf(line, sizeof line, "RCPT TO:%s", t->rcpt);
            res->rcpt = cmd(a, line, &r, err, sizeof err);
            if (res->rcpt < 0) {
                res->rcpt = 0;
                sess_close(&a->s);
                continue;
            }
            reply_text(&r, res->rcpt_r, sizeof res->rcpt_r);
        }
        if (a->o.deliver && smtpr_class(res->rcpt) == 2) {
            int code = cmd(a, "DATA", &r, err, sizeof err);
            if (code > 0 && code != 354 && smtpr_class(code) < 4) {
                /* no 354: nothing was sent, so nothing was delivered */
                snprintf(res->data_r, sizeof res->data_r, "DATA answered %d, not 354", code);
                sess_close(&a->s);
                break;
            }
            if (code == 354) {
                char msg[1200];
                int n = snprintf(msg, sizeof msg,
                                 "From: <%s>\r\nTo: <%s>\r\nSubject: kanjiki audit relay test "
                                 "%s\r\n\r\nThis message tests whether the server relays mail "
                                 "(kanjiki audit, test %s).\r\n.\r\n",
                                 a->o.from, a->o.to, t->id, t->id);
                if (n > 0 && (size_t)n < sizeof msg &&
                    smtpc_send_raw(a->s.c, msg, (size_t)n, err, sizeof err) == 0 &&
                    smtpc_reply(a->s.c, &r, err, sizeof err) == 0)
                    code = r.code;
                else
                    code = -1;
            }
            if (code > 0) {
                res->data = code;
                reply_text(&r, res->data_r, sizeof res->data_r);
            } else {
                /* the server broke off: accepted at RCPT, delivery unknown */
                snprintf(res->data_r, sizeof res->data_r, "no answer at DATA: %s", err);
                sess_close(&a->s);
            }
        }
        break;
    }
    res->v = audit_classify(res->mail, res->rcpt, res->data);
    if (res->v == AUDIT_ERROR)
        snprintf(res->error, sizeof res->error, "%s", err[0] ? err : "no answer");
    const char *how = audit_verdict_name(res->v);
    char shown[400];
    snprintf(shown, sizeof shown, "%s%s%s", how, res->v == AUDIT_ERROR ? ": " : "",
             res->v == AUDIT_ERROR ? (err[0] ? err : "no answer") : "");
    progress(a, i, t->id, shown);
    if (audit_relays(res->v))
        finding(a, t->finding, "MAIL FROM:%s RCPT TO:%s accepted (%s)", t->mail, t->rcpt, t->id);
    else if (res->v == AUDIT_RELAY_DATA_REFUSED)
        finding(a, "rcpt_then_data_refused", "MAIL FROM:%s RCPT TO:%s accepted, the message "
                "refused after DATA: %d (%s)", t->mail, t->rcpt, res->data, t->id);
    if (a->o.fresh)
        sess_close(&a->s);
}

/* A random local part for a recipient that cannot exist. */
static void random_user(char *out, size_t n)
{
    static const char cs[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    char r[13];
    for (size_t i = 0; i < 12; i++)
        r[i] = cs[rand_r(&seed) % 36];
    r[12] = '\0';
    snprintf(out, n, "kjaudit-%s", r);
}

/* Letters, digits, '-' and '.' only, 1-253 long: safe in a command. */
static bool host_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 253 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

/* What the greeting and EHLO of the first session tell. */
static void check_greeting(struct audit *a)
{
    struct sbuf b = SBUF_INIT;
    const char *nl = strchr(a->s.banner.text, '\n');
    size_t l = nl ? (size_t)(nl - a->s.banner.text) : strlen(a->s.banner.text);
    snprintf(a->banner, sizeof a->banner, "%.*s", (int)(l < 500 ? l : 500), a->s.banner.text);
    char what[200];
    if (audit_banner_software(a->s.banner.text, what, sizeof what) ||
        audit_banner_software(a->s.ehlo.text, what, sizeof what))
        finding(a, "banner_version", "the greeting or EHLO says \"%s\"", what);   /* raw: */
    sbuf_free(&b);   /* escaped where printed */
    /* the server's name: the first word of the banner, else of EHLO */
    const char *src = a->s.banner.text;
    size_t n = strcspn(src, " \n");
    if (!n) {
        src = a->s.ehlo.text;
        n = strcspn(src, " \n");
    }
    snprintf(a->srvname, sizeof a->srvname, "%.*s", (int)(n < 255 ? n : 255), src);
    if (!host_name(a->srvname))
        a->srvname[0] = '\0';   /* it goes into commands: the IP literal stands in */
    bool tls = smtpc_is_tls(a->s.c);
    if (!tls && !smtpr_has_ext(&a->s.ehlo, "STARTTLS", NULL, 0))
        finding(a, "no_starttls", "EHLO offers no STARTTLS");
    char params[200];
    if (!tls && smtpr_has_ext(&a->s.ehlo, "AUTH", params, sizeof params))
        finding(a, "auth_before_tls", "AUTH %s offered on the unencrypted connection", params);
}

/* AUTH PLAIN with bogus credentials on the unencrypted connection. */
static void check_auth(struct audit *a)
{
    if (smtpc_is_tls(a->s.c))
        return;
    struct smtp_reply r;
    char err[300];
    /* base64 of "\0kanjiki-audit\0bogus-password" */
    int code = cmd(a, "AUTH PLAIN AGthbmppa2ktYXVkaXQAYm9ndXMtcGFzc3dvcmQ=", &r, err, sizeof err);
    if (code == 334)   /* wants the response on its own line */
        code = cmd(a, "AGthbmppa2ktYXVkaXQAYm9ndXMtcGFzc3dvcmQ=", &r, err, sizeof err);
    if (code == 535 || code == 235)
        finding(a, "auth_cleartext", "AUTH PLAIN over the unencrypted connection was answered "
                "%d (%s): passwords travel in clear text",
                code, code == 235 ? "accepted!" : "credentials checked");
    if (code == 235)
        finding(a, "auth_bogus_accepted", "AUTH PLAIN kanjiki-audit / bogus-password: 235");
    /* an authenticated session would relay for the wrong reason: the
     * battery needs a new one (RSET keeps the authentication) */
    if (code < 0 || code == 235)
        sess_close(&a->s);
}

/* VRFY and EXPN: do they tell existing mailboxes from others? */
static void check_vrfy_expn(struct audit *a)
{
    if (!a->s.c)
        return;
    struct smtp_reply r;
    char err[300], line[80], user[40];
    /* a command without its reply leaves the session out of step: its
     * late reply would answer the next one; close it at once */
    int known = cmd(a, "VRFY postmaster", &r, err, sizeof err);
    if (known < 0) {
        sess_close(&a->s);
        return;
    }
    random_user(user, sizeof user);
    snprintf(line, sizeof line, "VRFY %s", user);
    int unknown = cmd(a, line, &r, err, sizeof err);
    if (unknown < 0) {
        sess_close(&a->s);
        return;
    }
    if ((known == 250 || known == 251) ||
        (smtpr_class(known) == 2 && smtpr_class(unknown) == 5))
        finding(a, "vrfy", "VRFY postmaster: %d, VRFY %s: %d", known, user, unknown);
    int expn = cmd(a, "EXPN postmaster", &r, err, sizeof err);
    if (expn == 250)
        finding(a, "expn", "EXPN postmaster: 250");
    if (expn < 0)
        sess_close(&a->s);
}

/* Mail to a user who cannot exist in a local domain, refused at RCPT? */
static void check_unknown_recipient(struct audit *a)
{
    if (!a->o.nlocal)
        return;
    char err[300], line[700], user[40];
    if (sess_open(a, err, sizeof err) < 0)
        return;
    struct smtp_reply r;
    snprintf(line, sizeof line, "MAIL FROM:<%s>", a->o.from);
    if (cmd(a, line, &r, err, sizeof err) != 250) {
        sess_close(&a->s);
        return;
    }
    random_user(user, sizeof user);
    snprintf(line, sizeof line, "RCPT TO:<%s@%s>", user, a->o.locals[0]);
    int code = cmd(a, line, &r, err, sizeof err);
    if (smtpr_class(code) == 2)
        finding(a, "unknown_recipient", "RCPT TO:<%s@%s> answered %d", user, a->o.locals[0],
                code);
    sess_close(&a->s);
}

/* A client talking before the greeting: refused, or served as usual? */
static void check_pregreet(struct audit *a)
{
    if (a->o.tls)
        return;   /* the TLS handshake comes first there */
    struct smtpc *c;
    char err[300], line[300];
    if (smtpc_connect(a->ip, a->o.port, a->o.host, (int)a->o.timeout_ms, false, &c, err,
                      sizeof err) < 0)
        return;
    snprintf(line, sizeof line, "EHLO %s", a->o.helo);
    struct smtp_reply g, e;
    if (smtpc_send(c, line, err, sizeof err) == 0 && smtpc_reply(c, &g, err, sizeof err) == 0 &&
        g.code == 220 && smtpc_reply(c, &e, err, sizeof err) == 0 && smtpr_class(e.code) == 2)
        finding(a, "pregreet", "EHLO sent before the greeting was answered %d", e.code);
    smtpc_send(c, "QUIT", err, sizeof err);
    smtpc_close(c);
}

/* Port 587 without AUTH (when the audited port is another). */
static void check_submission(struct audit *a)
{
    if (!a->o.submission || !strcmp(a->o.port, "587") || a->o.tls)
        return;
    struct opts saved = a->o;
    snprintf(a->o.port, sizeof a->o.port, "587");
    char err[300], line[700];
    if (sess_open(a, err, sizeof err) == 0) {
        struct smtp_reply r;
        snprintf(line, sizeof line, "MAIL FROM:<%s>", a->o.from);
        if (cmd(a, line, &r, err, sizeof err) == 250) {
            snprintf(line, sizeof line, "RCPT TO:<%s>", a->o.to);
            int code = cmd(a, line, &r, err, sizeof err);
            if (smtpr_class(code) == 2)
                finding(a, "submission_relay", "port 587: RCPT TO:<%s> without AUTH answered %d",
                        a->o.to, code);
        }
    }
    sess_close(&a->s);
    a->o = saved;
}

/* ---- output ---- */

static size_t count_relays(const struct audit *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->ntests; i++)
        n += audit_relays(a->r[i].v);
    return n;
}

static bool high_finding(const struct audit *a)
{
    for (size_t i = 0; i < a->nf; i++)
        if (a->f[i].k->severity == AUDIT_HIGH)
            return true;
    return false;
}

/* Relay tests refused for good (5xx at MAIL, RCPT, or after DATA). */
static size_t count_refused(const struct audit *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->ntests; i++)
        n += a->r[i].v == AUDIT_REFUSED || a->r[i].v == AUDIT_REFUSED_MAIL ||
             a->r[i].v == AUDIT_RELAY_DATA_REFUSED;
    return n;
}

/* A 4xx is no answer: greylisting defers everybody's first attempt, an
 * open relay behind it included. */
static void conclusion(const struct audit *a, char *out, size_t n)
{
    size_t relays = count_relays(a), refused = count_refused(a), deferred = 0;
    for (size_t i = 0; i < a->ntests; i++)
        deferred += a->r[i].v == AUDIT_DEFERRED;
    size_t errors = a->ntests - relays - refused - deferred;
    char rest[160] = "";
    if (deferred || errors)
        snprintf(rest, sizeof rest, "; %zu deferred (4xx: greylisting or a temporary error, "
                 "audit again later), %zu could not be run", deferred, errors);
    size_t data_refused = 0;
    for (size_t i = 0; i < a->ntests; i++)
        data_refused += a->r[i].v == AUDIT_RELAY_DATA_REFUSED;
    errors -= data_refused;
    refused += data_refused;   /* refused, if only after DATA */
    if (relays)
        snprintf(out, n, "OPEN RELAY: %zu of %zu relay tests were accepted", relays, a->ntests);
    else if (!refused && !deferred)
        snprintf(out, n, "undecided: no relay test could be run (%zu errors)", errors);
    else if (deferred || errors)
        snprintf(out, n, "undecided: %zu of %zu relay tests refused%s", refused, a->ntests,
                 rest);
    else
        snprintf(out, n, "not an open relay: all %zu relay tests refused", a->ntests);
}

static void print_json(const struct audit *a, int exit_code)
{
    struct sbuf b = SBUF_INIT;
    sbuf_adds(&b, "{\"target\":");
    char tgt[300];
    bool v6 = strchr(a->o.host, ':') != NULL;
    snprintf(tgt, sizeof tgt, "%s%s%s:%s", v6 ? "[" : "", a->o.host, v6 ? "]" : "", a->o.port);
    esc_json_s(&b, tgt);
    sbuf_adds(&b, ",\"address\":");
    esc_json_s(&b, a->ip);
    sbuf_addf(&b, ",\"tls\":\"%s\",\"banner\":",
              a->o.tls ? "implicit" : a->o.starttls ? "starttls" : "none");
    esc_json_s(&b, a->banner);
    sbuf_adds(&b, ",\"tests\":[");
    for (size_t i = 0; i < a->ntests; i++) {
        const struct result *r = &a->r[i];
        sbuf_adds(&b, i ? ",{\"id\":" : "{\"id\":");
        esc_json_s(&b, r->t->id);
        sbuf_adds(&b, ",\"title\":");
        esc_json_s(&b, r->t->title);
        sbuf_adds(&b, ",\"mail\":");
        esc_json_s(&b, r->t->mail);
        sbuf_adds(&b, ",\"rcpt\":");
        esc_json_s(&b, r->t->rcpt);
        sbuf_addf(&b, ",\"mail_code\":%d,\"rcpt_code\":%d,\"data_code\":%d,\"mail_reply\":",
                  r->mail, r->rcpt, r->data);
        esc_json_s(&b, r->mail_r);
        sbuf_adds(&b, ",\"rcpt_reply\":");
        esc_json_s(&b, r->rcpt_r);
        if (r->data_r[0]) {
            sbuf_adds(&b, ",\"data_reply\":");
            esc_json_s(&b, r->data_r);
        }
        sbuf_adds(&b, ",\"verdict\":");
        esc_json_s(&b, audit_verdict_name(r->v));
        sbuf_addf(&b, ",\"relay\":%s,\"nmap\":%s", audit_relays(r->v) ? "true" : "false",
                  r->t->nmap ? "true" : "false");
        if (r->error[0]) {
            sbuf_adds(&b, ",\"error\":");
            esc_json_s(&b, r->error);
        }
        sbuf_addc(&b, '}');
    }
    sbuf_adds(&b, "],\"findings\":[");
    for (size_t i = 0; i < a->nf; i++) {
        sbuf_adds(&b, i ? ",{\"id\":" : "{\"id\":");
        esc_json_s(&b, a->f[i].k->id);
        sbuf_addf(&b, ",\"severity\":\"%s\",\"title\":", audit_severity_name(a->f[i].k->severity));
        esc_json_s(&b, a->f[i].k->title);
        sbuf_adds(&b, ",\"detail\":");
        esc_json_s(&b, a->f[i].detail);
        sbuf_adds(&b, ",\"fix\":");
        esc_json_s(&b, a->f[i].k->fix);
        sbuf_addc(&b, '}');
    }
    char concl[200];
    conclusion(a, concl, sizeof concl);
    sbuf_addf(&b, "],\"relays\":%zu,\"conclusion\":", count_relays(a));
    esc_json_s(&b, concl);
    sbuf_addf(&b, ",\"exit\":%d}\n", exit_code);
    fputs(sbuf_str(&b), stdout);
    sbuf_free(&b);
}

static void print_report(const struct audit *a)
{
    static const struct table_col cols[] = {
        { "test", TABLE_COL_TEXT, 0 }, { "command", TABLE_COL_TEXT, 70 },
        { "reply", TABLE_COL_TEXT, 0 }, { "verdict", TABLE_COL_TEXT, 0 },
    };
    struct table *t = table_new(cols, 4);
    for (size_t i = 0; i < a->ntests; i++) {
        const struct result *r = &a->r[i];
        char command[2 * AUDIT_ADDR_MAX + 40], reply[16];
        snprintf(command, sizeof command, "MAIL FROM:%s RCPT TO:%s", r->t->mail, r->t->rcpt);
        int shown = r->data ? r->data : r->rcpt ? r->rcpt : r->mail;
        snprintf(reply, sizeof reply, "%d", shown);
        const char *cells[4] = { r->t->id, command, shown ? reply : "-",
                                 r->v == AUDIT_ERROR && r->error[0] ? r->error
                                                                    : audit_verdict_name(r->v) };
        table_add(t, cells);
    }
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, a->o.host);
    printf("kanjiki audit of %s port %s (%s)%s\n", sbuf_str(&b), a->o.port, a->ip,
           a->o.tls ? ", implicit TLS" : a->o.starttls ? ", after STARTTLS" : "");
    sbuf_reset(&b);
    esc_text_s(&b, a->banner);
    printf("greeting: %s\n\n", sbuf_str(&b));
    sbuf_free(&b);
    table_print(t, CLI_FMT_TABLE, stdout);
    table_free(t);
    char concl[200];
    conclusion(a, concl, sizeof concl);
    printf("\n%s\n", concl);
    if (!a->nf) {
        printf("no other findings\n");
        return;
    }
    printf("\nfindings:\n");
    for (int sev = AUDIT_HIGH; sev >= AUDIT_INFO; sev--)
        for (size_t i = 0; i < a->nf; i++) {
            const struct finding *f = &a->f[i];
            if ((int)f->k->severity != sev)
                continue;
            struct sbuf d = SBUF_INIT;
            esc_text_s(&d, f->detail);
            printf("  [%s] %s\n      %s\n      fix: %s\n", audit_severity_name(f->k->severity),
                   f->k->title, sbuf_str(&d), f->k->fix);
            sbuf_free(&d);
        }
}

/* ---- options ---- */

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, msg);   /* arguments are the user's, but may hold anything */
    fprintf(stderr, "kanjiki audit: %s\n%s", sbuf_str(&b), help_text);
    sbuf_free(&b);
    return 2;
}

/* HOST, HOST:PORT, [IPv6]:PORT, bare IPv6 */
static int parse_target(const char *s, struct opts *o)
{
    const char *colon = strrchr(s, ':');
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end == s + 1)
            return -1;
        snprintf(o->host, sizeof o->host, "%.*s", (int)(end - s - 1), s + 1);
        if (end[1] == ':') {
            if (!end[2] || strlen(end + 2) >= sizeof o->port)
                return -1;
            snprintf(o->port, sizeof o->port, "%s", end + 2);
        } else if (end[1]) {
            return -1;
        }
    } else if (colon && strchr(s, ':') == colon) {
        if (!colon[1] || strlen(colon + 1) >= sizeof o->port)
            return -1;
        snprintf(o->host, sizeof o->host, "%.*s", (int)(colon - s), s);
        snprintf(o->port, sizeof o->port, "%s", colon + 1);
    } else {
        snprintf(o->host, sizeof o->host, "%s", s);   /* a name, or IPv6 without a port */
    }
    if (!o->host[0] || strlen(s) > 250)
        return -1;
    return 0;
}

static bool port_ok(const char *p)
{
    size_t n = strlen(p);
    if (!n || n > 5 || strspn(p, "0123456789") != n)
        return false;
    long v = strtol(p, NULL, 10);
    return v > 0 && v < 65536;
}

int cmd_audit(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    struct audit *a = xcalloc(1, sizeof *a);
    struct opts *o = &a->o;
    o->helo = "kanjiki-audit.example.net";
    o->from = "audit@example.org";
    o->to = "relaytest@example.net";
    o->pause_ms = 200;
    o->timeout_ms = 10000;
    o->submission = true;
    const char *target = NULL, *port = NULL;
    int rc = 2;
    /* OpenSSL writes with write(): a server that hangs up must not kill us */
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(help_text, stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(s, "--fresh-connection")) {
            o->fresh = true;
        } else if (!strcmp(s, "--deliver")) {
            o->deliver = true;
        } else if (!strcmp(s, "--starttls")) {
            o->starttls = true;
        } else if (!strcmp(s, "--tls")) {
            o->tls = true;
        } else if (!strcmp(s, "--no-submission")) {
            o->submission = false;
        } else if (!strcmp(s, "--json")) {
            o->json = true;
        } else if (s[0] == '-' && s[1] == '-' && !v) {
            rc = usage("%s needs a value (or is unknown)", s);
            goto out;
        } else if (!strcmp(s, "--port")) {
            port = argv[++i];
        } else if (!strcmp(s, "--helo")) {
            o->helo = argv[++i];
        } else if (!strcmp(s, "--from")) {
            o->from = argv[++i];
        } else if (!strcmp(s, "--to")) {
            o->to = argv[++i];
        } else if (!strcmp(s, "--local-domain")) {
            if (o->nlocal == sizeof o->locals / sizeof o->locals[0]) {
                rc = usage("%s", "too many --local-domain");
                goto out;
            }
            if (!host_name(v)) {
                rc = usage("--local-domain %s: not a domain name", v);
                goto out;
            }
            o->locals[o->nlocal++] = argv[++i];
        } else if (!strcmp(s, "--pause") || !strcmp(s, "--timeout")) {
            int64_t ms;
            if (tu_parse_duration_ms(v, &ms) < 0 || ms < 0 || ms > 600000 ||
                (s[2] == 't' && ms < 100)) {
                rc = usage("bad duration for %s (e.g. 200ms, 10s)", s);
                goto out;
            }
            *(s[2] == 'p' ? &o->pause_ms : &o->timeout_ms) = ms;
            i++;
        } else if (s[0] == '-') {
            rc = usage("unknown option %s", s);
            goto out;
        } else if (!target) {
            target = s;
        } else {
            rc = usage("one HOST only (%s is extra)", s);
            goto out;
        }
    }
    if (!target) {
        rc = usage("%s", "no HOST given");
        goto out;
    }
    if (o->tls && o->starttls) {
        rc = usage("%s", "--tls and --starttls exclude each other");
        goto out;
    }
    if (parse_target(target, o) < 0) {
        rc = usage("not a HOST[:PORT]: %s", target);
        goto out;
    }
    if (port && o->port[0]) {
        rc = usage("--port %s and a port in %s: one only", port, target);
        goto out;
    }
    if (port) {
        if (strlen(port) >= sizeof o->port) {
            rc = usage("not a port: %s", port);
            goto out;
        }
        snprintf(o->port, sizeof o->port, "%s", port);
    }
    if (!o->port[0])
        snprintf(o->port, sizeof o->port, "%s", o->tls ? "465" : "25");
    if (!port_ok(o->port)) {
        rc = usage("not a port: %s", o->port);
        goto out;
    }
    for (const char **p = (const char *[]){ o->helo, o->from, o->to, NULL }; *p; p++)
        for (const char *q = *p; *q; q++)
            if ((unsigned char)*q <= ' ' || *q == 0x7f || *q == '<' || *q == '>') {
                rc = usage("%s: no spaces, control characters or angle brackets", *p);
                goto out;
            }
    a->progress = !o->json && isatty(2);

    /* the first session: greeting, EHLO, AUTH, VRFY, EXPN */
    char err[300];
    if (sess_open(a, err, sizeof err) < 0) {
        if (o->json) {
            struct sbuf b = SBUF_INIT;
            sbuf_adds(&b, "{\"error\":");
            esc_json_s(&b, err);
            sbuf_adds(&b, ",\"exit\":2}\n");
            fputs(sbuf_str(&b), stdout);
            sbuf_free(&b);
        }
        struct sbuf b = SBUF_INIT;
        esc_text_s(&b, o->host);
        sbuf_addf(&b, ":%s: ", o->port);
        esc_text_s(&b, err);
        fprintf(stderr, "kanjiki audit: %s\n", sbuf_str(&b));
        sbuf_free(&b);
        rc = 2;
        goto out;
    }
    snprintf(a->ip, sizeof a->ip, "%s", smtpc_peer(a->s.c));
    check_greeting(a);
    check_auth(a);
    check_vrfy_expn(a);

    /* the relay battery */
    char lit[90];
    snprintf(lit, sizeof lit, "%s%s", strchr(a->ip, ':') ? "IPv6:" : "", a->ip);
    struct audit_params p = { o->from, o->to, a->srvname, lit, o->locals, o->nlocal };
    a->ntests = audit_battery(&p, a->tests, AUDIT_MAX_TESTS);
    for (size_t i = 0; i < a->ntests; i++) {
        if (i)
            pause_ms(o->pause_ms);
        run_test(a, i);
    }
    sess_close(&a->s);
    pause_ms(o->pause_ms);
    check_unknown_recipient(a);
    pause_ms(o->pause_ms);
    check_pregreet(a);
    check_submission(a);

    /* 0 only when every relay test was refused for good: a test deferred
     * (greylisting) or not run might have relayed */
    rc = count_relays(a) || high_finding(a) ? 1 : count_refused(a) < a->ntests ? 2 : 0;
    if (o->json)
        print_json(a, rc);
    else
        print_report(a);
out:
    sess_close(&a->s);
    free(a);
    return rc;
}
