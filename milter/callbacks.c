/* callbacks: libmilter glue. Each callback copies what the MTA says into
 * the connection's context and asks lib/ for the decision; verdicts go to
 * the store's writer queue (never to disk from here) and to the log. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmilter/mfapi.h>

#include "esc.h"
#include "log.h"
#include "milter.h"
#include "sbuf.h"
#include "timeutil.h"
#include "xalloc.h"

#define MAX_HELO 255         /* RFC 5321 domain limit; longer is cut */
#define MAX_ARG 1024         /* an envelope argument longer than this is cut */
#define MAX_HEADER_ITEMS 8   /* monitor header lists this many recipients */

struct kj_daemon kj = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* One SMTP connection; txn_* fields are per MAIL transaction. */
struct conn {
    struct policy *policy;
    bool have_ip, have_daemon;
    struct ip ip, daemon;
    char ip_text[IP_STRLEN];
    char *client_name;
    char *helo;
    /* transaction */
    char *sender;
    char *auth_user;
    char *queue_id;
    bool in_txn;            /* counted in kj.busy */
    struct verdict *msg;    /* the message verdict being built */
    struct sbuf monitor;    /* monitor mode: what would have been refused */
    size_t monitor_items, monitor_refused;
};

struct policy *kj_policy_get(void)
{
    pthread_mutex_lock(&kj.lock);
    struct policy *p = policy_ref(kj.policy);
    pthread_mutex_unlock(&kj.lock);
    return p;
}

static struct conn *conn_new(SMFICTX *ctx)
{
    struct conn *c = xcalloc(1, sizeof *c);
    c->policy = kj_policy_get();
    __atomic_add_fetch(&kj.active, 1, __ATOMIC_RELAXED);
    smfi_setpriv(ctx, c);
    return c;
}

/* The connection's context. Should the MTA skip the connect callback (a
 * broken or hostile peer can), the client is simply unknown: never
 * trusted, so the relay guard fails closed rather than open. */
static struct conn *conn_of(SMFICTX *ctx)
{
    struct conn *c = smfi_getpriv(ctx);
    return c ? c : conn_new(ctx);
}

static char *copy_arg(const char *s, size_t max)
{
    return s ? xstrndup(s, max) : NULL;
}

/* Envelope address without its angle brackets; "" for <>. */
static char *strip_brackets(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strnlen(s, MAX_ARG);
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
        return xstrndup(s + 1, n - 2);
    return xstrndup(s, n);
}

static char *macro(SMFICTX *ctx, const char *name)
{
    const char *v = smfi_getsymval(ctx, (char *)name);
    return v && *v ? copy_arg(v, MAX_ARG) : NULL;
}

static void txn_reset(struct conn *c)
{
    if (c->in_txn) {
        c->in_txn = false;
        __atomic_sub_fetch(&kj.busy, 1, __ATOMIC_RELAXED);
    }
    free(c->sender);
    free(c->auth_user);
    free(c->queue_id);
    c->sender = c->auth_user = c->queue_id = NULL;
    verdict_free(c->msg);
    c->msg = NULL;
    sbuf_free(&c->monitor);
    c->monitor_items = c->monitor_refused = 0;
}

static void conn_free(struct conn *c)
{
    txn_reset(c);
    free(c->client_name);
    free(c->helo);
    policy_unref(c->policy);
    free(c);
}

static struct verdict *verdict_for(const struct conn *c, enum verdict_kind kind)
{
    struct verdict *v = verdict_new(kind);
    v->time_ms = tu_now_ms();
    verdict_set(&v->queue_id, c->queue_id);
    verdict_set(&v->client_ip, c->have_ip ? c->ip_text : NULL);
    verdict_set(&v->client_name, c->client_name);
    verdict_set(&v->helo, c->helo);
    verdict_set(&v->sender, c->sender);
    verdict_set(&v->auth_user, c->auth_user);
    v->monitor = c->policy->conf->mode == CONF_MODE_MONITOR;
    return v;
}

/* One log line per verdict, every piece of mail data escaped. */
static void log_verdict(const struct verdict *v)
{
    struct sbuf b = SBUF_INIT;
    sbuf_adds(&b, "verdict queue=");
    esc_text_s(&b, v->queue_id ? v->queue_id : "-");
    sbuf_adds(&b, " client=");
    esc_text_s(&b, v->client_ip ? v->client_ip : "unknown");
    sbuf_adds(&b, "[");
    esc_text_s(&b, v->client_name ? v->client_name : "unknown");
    sbuf_adds(&b, "] helo=");
    esc_text_s(&b, v->helo);
    sbuf_adds(&b, " from=<");
    esc_text_s(&b, v->sender);
    sbuf_adds(&b, ">");
    if (v->kind == VERDICT_KIND_RCPT) {
        sbuf_adds(&b, " rcpt=<");
        esc_text_s(&b, v->rcpt);
        sbuf_adds(&b, ">");
    } else {
        sbuf_addf(&b, " nrcpt=%zu", v->nrcpts);
    }
    sbuf_addf(&b, " action=%s%s stage=%s reasons=", verdict_action_name(v->action),
              v->monitor ? "(monitor)" : "", verdict_stage_name(v->stage));
    for (size_t i = 0; i < v->nreasons; i++) {
        if (i)
            sbuf_addc(&b, ',');
        esc_text_s(&b, v->reasons[i].code);
    }
    if (v->kind == VERDICT_KIND_RCPT && v->nreasons) {
        sbuf_adds(&b, " detail=\"");
        esc_text_s(&b, v->reasons[0].text);
        sbuf_adds(&b, "\"");
    }
    log_msg(LOG_INFO, "%s", sbuf_str(&b));
    sbuf_free(&b);
}

static void record(struct verdict *v)
{
    log_verdict(v);
    store_writer_submit(kj.writer, v);
}

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                             unsigned long f2, unsigned long f3, unsigned long *pf0,
                             unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    (void)f2;
    (void)f3;
    /* Only adding headers (monitor mode) is needed from the MTA. */
    if (!(f0 & SMFIF_ADDHDRS)) {
        log_msg(LOG_ERR, "MTA does not offer adding headers; monitor headers disabled");
        *pf0 = 0;
    } else {
        *pf0 = SMFIF_ADDHDRS;
    }
    /* Skip what we never read: headers, body, DATA, unknown commands. */
    unsigned long want = SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOBODY |
                         SMFIP_NOUNKNOWN | SMFIP_NODATA;
    *pf1 = f1 & want;
    *pf2 = 0;
    *pf3 = 0;
    /* Ask only for the macros the decisions use (smfi_setsymlist). */
    smfi_setsymlist(ctx, SMFIM_CONNECT, "{daemon_addr} j _");
    smfi_setsymlist(ctx, SMFIM_ENVFROM, "i {auth_authen} {auth_type}");
    smfi_setsymlist(ctx, SMFIM_ENVRCPT, "i");
    smfi_setsymlist(ctx, SMFIM_EOM, "i");
    return SMFIS_CONTINUE;
}

static void set_ip(struct ip *out, bool *have, const struct sockaddr *sa)
{
    char buf[IP_STRLEN];
    *have = false;
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, sizeof buf);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, sizeof buf);
    else
        return;
    *have = ip_parse(buf, out) == 0;
}

/* While stopping, new work gets a temporary failure, never a pass. */
static sfsistat shutting_down(SMFICTX *ctx)
{
    smfi_setreply(ctx, "421", "4.3.2", "kanjiki is restarting, try again later");
    return SMFIS_TEMPFAIL;
}

static sfsistat on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
    if (__atomic_load_n(&kj.stopping, __ATOMIC_RELAXED))
        return shutting_down(ctx);
    struct conn *c = conn_of(ctx);
    set_ip(&c->ip, &c->have_ip, hostaddr);
    if (c->have_ip)
        ip_format(&c->ip, c->ip_text, sizeof c->ip_text);
    /* "[192.0.2.1]" is the MTA saying it found no PTR name: keep no name
     * rather than repeat the address */
    c->client_name = hostname && hostname[0] != '[' ? copy_arg(hostname, MAX_HELO) : NULL;
    char *daemon = macro(ctx, "{daemon_addr}");
    c->have_daemon = daemon && ip_parse(daemon, &c->daemon) == 0;
    free(daemon);
    return SMFIS_CONTINUE;
}

static sfsistat on_helo(SMFICTX *ctx, char *helohost)
{
    struct conn *c = conn_of(ctx);
    free(c->helo);
    c->helo = copy_arg(helohost, MAX_HELO);
    return SMFIS_CONTINUE;
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv)
{
    if (__atomic_load_n(&kj.stopping, __ATOMIC_RELAXED))
        return shutting_down(ctx);
    struct conn *c = conn_of(ctx);
    txn_reset(c);
    c->in_txn = true;
    __atomic_add_fetch(&kj.busy, 1, __ATOMIC_RELAXED);
    c->sender = strip_brackets(argv ? argv[0] : NULL);
    c->auth_user = macro(ctx, "{auth_authen}");
    c->queue_id = macro(ctx, "i");
    c->msg = verdict_for(c, VERDICT_KIND_MESSAGE);
    return SMFIS_CONTINUE;
}

static void monitor_note(struct conn *c, const char *rcpt, const struct policy_rcpt *d)
{
    c->monitor_refused++;
    if (c->monitor_items++ >= MAX_HEADER_ITEMS)
        return;
    if (c->monitor.len)
        sbuf_adds(&c->monitor, "; ");
    sbuf_addf(&c->monitor, "would %s <", verdict_action_name(d->action));
    esc_header(&c->monitor, rcpt, strlen(rcpt));
    sbuf_addf(&c->monitor, "> (%s)", d->reason);
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv)
{
    struct conn *c = conn_of(ctx);
    if (!argv || !argv[0])
        return SMFIS_CONTINUE;
    const struct conf *cf = c->policy->conf;
    if (!c->msg)   /* RCPT without MAIL: the MTA would not do it, but be safe */
        c->msg = verdict_for(c, VERDICT_KIND_MESSAGE);
    if (!c->queue_id)
        c->queue_id = macro(ctx, "i");

    char *rcpt = strip_brackets(argv[0]);
    bool grant = c->have_ip && kj.grants &&
                 popauth_cache_match(kj.grants, &c->ip, cf->popauth_ipv6_prefix,
                                     tu_now_ms() / 1000, NULL, 0);
    struct policy_txn t = {
        .client = c->have_ip ? &c->ip : NULL,
        .daemon = c->have_daemon ? &c->daemon : NULL,
        .helo = c->helo,
        .sender = c->sender,
        .auth_user = c->auth_user,
        .popauth = grant,
    };
    struct policy_rcpt d;
    policy_check_rcpt(c->policy, &t, argv[0], strnlen(argv[0], MAX_ARG), &d);

    if (d.action == VERDICT_ACCEPT) {
        verdict_add_rcpt(c->msg, rcpt);
        struct verdict_reason *r = verdict_add_reason(c->msg, d.check, d.reason, d.detail);
        verdict_set(&r->rcpt, rcpt);
        if (d.allowed_by_rule) {
            r = verdict_add_reason(c->msg, "rule", "allow_rule", d.detail);
            verdict_set(&r->rcpt, rcpt);
            verdict_set(&r->rule, d.rule);
        }
        free(rcpt);
        return SMFIS_CONTINUE;
    }

    struct verdict *v = verdict_for(c, VERDICT_KIND_RCPT);
    v->stage = VSTAGE_RCPT;
    v->action = d.action;
    verdict_set(&v->rcpt, rcpt);
    struct sbuf reply = SBUF_INIT;
    sbuf_addf(&reply, "%d %s %s", d.code, d.xcode, d.text);
    v->reply = sbuf_take(&reply);
    struct verdict_reason *r = verdict_add_reason(v, d.check, d.reason, d.detail);
    verdict_set(&r->rcpt, rcpt);
    verdict_set(&r->rule, d.rule);
    record(v);

    sfsistat rc = SMFIS_CONTINUE;
    if (cf->mode == CONF_MODE_MONITOR) {
        monitor_note(c, rcpt, &d);
        verdict_add_rcpt(c->msg, rcpt);
        r = verdict_add_reason(c->msg, d.check, d.reason, d.detail);
        verdict_set(&r->rcpt, rcpt);
        verdict_reason_attr(r, "would", verdict_action_name(d.action));
    } else {
        char code[8];
        snprintf(code, sizeof code, "%d", d.code);
        if (smfi_setreply(ctx, code, d.xcode, d.text) != MI_SUCCESS)
            log_msg(LOG_WARNING, "could not set reply text %s %s", code, d.xcode);
        rc = d.action == VERDICT_TEMPFAIL ? SMFIS_TEMPFAIL : SMFIS_REJECT;
    }
    free(rcpt);
    return rc;
}

static sfsistat on_eom(SMFICTX *ctx)
{
    struct conn *c = smfi_getpriv(ctx);
    if (!c || !c->msg)
        return SMFIS_CONTINUE;
    char *qid = macro(ctx, "i");
    if (qid) {
        free(c->queue_id);
        c->queue_id = qid;
    }
    struct verdict *v = c->msg;
    c->msg = NULL;
    verdict_set(&v->queue_id, c->queue_id);
    v->time_ms = tu_now_ms();
    v->stage = VSTAGE_EOM;
    v->action = VERDICT_ACCEPT;
    if (c->monitor_refused) {
        v->monitor = true;
        /* every recipient would have been refused: no message in enforce mode */
        if (c->monitor_refused == v->nrcpts)
            v->action = VERDICT_REJECT;
        if (c->monitor_items > MAX_HEADER_ITEMS)
            sbuf_addf(&c->monitor, "; and %zu more", c->monitor_items - MAX_HEADER_ITEMS);
        if (smfi_addheader(ctx, "X-Kanjiki-Monitor", (char *)sbuf_str(&c->monitor)) !=
            MI_SUCCESS)
            log_msg(LOG_WARNING, "could not add X-Kanjiki-Monitor header");
    }
    record(v);
    txn_reset(c);
    return SMFIS_CONTINUE;
}

static sfsistat on_abort(SMFICTX *ctx)
{
    struct conn *c = smfi_getpriv(ctx);
    if (c)
        txn_reset(c);
    return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx)
{
    struct conn *c = smfi_getpriv(ctx);
    if (c) {
        smfi_setpriv(ctx, NULL);
        conn_free(c);
        __atomic_sub_fetch(&kj.active, 1, __ATOMIC_RELAXED);
    }
    return SMFIS_CONTINUE;
}

int kj_register(void)
{
    static struct smfiDesc desc = {
        .xxfi_name = "kanjiki",
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = SMFIF_ADDHDRS,
        .xxfi_connect = on_connect,
        .xxfi_helo = on_helo,
        .xxfi_envfrom = on_envfrom,
        .xxfi_envrcpt = on_envrcpt,
        .xxfi_eom = on_eom,
        .xxfi_abort = on_abort,
        .xxfi_close = on_close,
        .xxfi_negotiate = on_negotiate,
    };
    return smfi_register(desc) == MI_SUCCESS ? 0 : -1;
}
