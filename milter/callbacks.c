/* callbacks: libmilter glue. Each callback copies what the MTA says into
 * the connection's context and asks lib/ for the decision; verdicts go to
 * the store's writer queue (never to disk from here) and to the log. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <libmilter/mfapi.h>

#include "addr.h"
#include "esc.h"
#include "fcrdns.h"
#include "log.h"
#include "mailmsg.h"
#include "milter.h"
#include "sbuf.h"
#include "score.h"
#include "timeutil.h"
#include "xalloc.h"

#define MAX_HELO 255         /* RFC 5321 domain limit; longer is cut */
#define MAX_ARG 1024         /* an envelope argument longer than this is cut */
#define MAX_HEADER_ITEMS 8   /* monitor header lists this many recipients */
#define URI_MAX_BYTES (256 * 1024)   /* body bytes scanned for links */
#define URI_MAX_HOSTS 32             /* distinct link domains looked up */
#define MAX_FORGED 32               /* forged result headers deleted at most */
#define SNOW_BODY (32 * 1024)       /* body bytes kept for the text fingerprint */
#define MAX_HDR_VALUE 65536          /* a folded header may be long; libmilter
                                        bounds it too */

struct kj_daemon kj = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* One SMTP connection; txn_* fields are per MAIL transaction. */
struct conn {
    struct policy *policy;
    bool have_ip, have_daemon;
    struct ip ip, daemon;
    char ip_text[IP_STRLEN];
    char *client_name;
    char *helo;
    char *mta_name;         /* {j}: the MTA's name, authserv-id of our headers */
    bool trusted;           /* trusted_networks: no spam checks */
    bool granted;           /* a POP/IMAP-before-SMTP grant: no spam checks */
    struct dnscheck *dc;    /* blocklist lookups (client, HELO, then per message) */
    /* transaction */
    char *sender;
    char *auth_user;
    char *queue_id;
    bool in_txn;            /* counted in kj.busy */
    bool can_skip;          /* the MTA understands SMFIS_SKIP */
    bool can_chghdrs;       /* the MTA lets us delete headers */
    size_t nallowed;        /* recipients an allow rule accepted */
    struct verdict *msg;    /* the message verdict being built */
    struct sbuf monitor;    /* monitor mode: what would have been refused */
    size_t monitor_items, monitor_refused;
    bool spf_done;
    struct spf_result spf;
    bool early_done;        /* the RCPT-time score was computed */
    struct score_result early;
    struct verdict *early_ev;  /* its evidence, copied to refused recipients */
    bool have_from;
    char *ctype, *cte;      /* top-level Content-Type / -Transfer-Encoding */
    /* headers that claim to be ours, deleted at the end of the message:
     * Authentication-Results with our authserv-id (RFC 8601 section 5) and
     * any X-Kanjiki-* that a sender (or an earlier hop) put there */
    unsigned ar_seen;                 /* Authentication-Results so far */
    unsigned ar_forged[MAX_FORGED];   /* their 1-based indexes */
    size_t n_ar_forged;
    unsigned xk_seen[4];              /* X-Kanjiki-Score, -Spam, -Monitor, -Snowshoe */
    /* for the snowshoe detector */
    char *from_domain, *subject, *display, *message_id;
    struct sbuf body;                 /* the first SNOW_BODY bytes */
    struct fcrdns *fcr;               /* the client's PTR name, checked by us */
    bool fcr_done;
    struct fcrdns_result fcr_res;
    struct uri_scan *uri;
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
    c->spf_done = c->early_done = c->have_from = false;
    c->ar_seen = 0;
    c->n_ar_forged = 0;
    memset(c->xk_seen, 0, sizeof c->xk_seen);
    free(c->from_domain);
    free(c->subject);
    free(c->display);
    free(c->message_id);
    c->from_domain = c->subject = c->display = c->message_id = NULL;
    sbuf_free(&c->body);
    c->nallowed = 0;
    verdict_free(c->early_ev);
    c->early_ev = NULL;
    free(c->ctype);
    free(c->cte);
    c->ctype = c->cte = NULL;
    uri_scan_free(c->uri);
    c->uri = NULL;
    dnscheck_reset(c->dc, false);
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
    free(c->mta_name);
    dnscheck_free(c->dc);
    fcrdns_free(c->fcr);
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

/* One log line per verdict, every piece of mail data escaped; with
 * log_format = json, one JSON object with the verdict's fields. */
static void log_verdict(const struct verdict *v)
{
    if (log_is_json()) {
        char *m = verdict_json_members_brief(v);
        struct sbuf b = SBUF_INIT;
        sbuf_addf(&b, "\"event\":\"verdict\",%s", m);
        log_fields(LOG_INFO, sbuf_str(&b));
        sbuf_free(&b);
        free(m);
        return;
    }
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
    /* Adding headers (results, tags, monitor notes), deleting forged
     * ones, and quarantine. */
    if (!(f0 & SMFIF_ADDHDRS))
        log_msg(LOG_ERR, "MTA does not offer adding headers; result headers disabled");
    if (!(f0 & SMFIF_QUARANTINE))
        log_msg(LOG_WARNING, "MTA does not offer quarantine; quarantine acts as tag");
    *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_QUARANTINE | SMFIF_CHGHDRS);
    conn_of(ctx)->can_chghdrs = (f0 & SMFIF_CHGHDRS) != 0;
    /* Skip what we never read: DATA and unknown commands. Headers give the
     * From: domain and the MIME type; the body gives the links. SKIP lets
     * the body callback stop the body early when no URI list is used. */
    unsigned long want = SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP;
    *pf1 = f1 & want;
    conn_of(ctx)->can_skip = (f1 & SMFIP_SKIP) != 0;
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
    c->mta_name = macro(ctx, "j");
    /* Trusted clients are our own: blocklists and SPF are not for them. */
    const struct conf *cf = c->policy->conf;
    c->trusted = c->have_ip && cidrset_contains(cf->trusted_networks, &c->ip);
    if (!c->trusted && kj.dns && c->have_ip) {
        c->dc = dnscheck_new(kj.dns, c->policy->rules, kj.health, kj.dns_timeout_ms);
        dnscheck_client(c->dc, &c->ip);   /* all zones at once, harvested later */
        if (kj.snow && cf->snowshoe != CONF_SNOW_OFF)
            c->fcr = fcrdns_start(kj.dns, &c->ip, kj.dns_timeout_ms);
    }
    return SMFIS_CONTINUE;
}

static sfsistat on_helo(SMFICTX *ctx, char *helohost)
{
    struct conn *c = conn_of(ctx);
    free(c->helo);
    c->helo = copy_arg(helohost, MAX_HELO);
    dnscheck_reset(c->dc, true);
    dnscheck_domain(c->dc, c->helo, RULES_CHECK_HELO);
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
    const char *at = c->sender ? strrchr(c->sender, '@') : NULL;
    if (at && !c->auth_user)
        dnscheck_domain(c->dc, at + 1, RULES_CHECK_SENDER);
    fcrdns_poll(c->fcr);   /* the forward lookups start as soon as they can */
    return SMFIS_CONTINUE;
}

/* ---- spam checks: blocklists, SPF, score rules ---- */

/* Our own clients (trusted networks, SMTP AUTH, POP/IMAP-before-SMTP
 * grants: roaming users on dynamic addresses, which IP lists list) are not
 * scored. */
static bool scoring_on(const struct conn *c)
{
    return !c->trusted && !c->granted && !c->auth_user && c->have_ip;
}

/* The snowshoe detector looks at this transaction: running (started) and
 * not switched off by a reload, and the client is scored. What only it
 * reads (display name, decoded subject, body text) is gathered only then. */
static bool snowshoe_on(const struct conn *c)
{
    return kj.snow && c->policy->conf->snowshoe != CONF_SNOW_OFF && scoring_on(c);
}

static void run_spf(struct conn *c)
{
    if (c->spf_done || !kj.spf || !c->policy->rules->spf_used)
        return;
    int64_t deadline = dns_now_ms() + kj.dns_timeout_ms;
    spf_check(kj.spf, &c->ip, c->helo, c->sender ? c->sender : "", deadline, &c->spf);
    c->spf_done = true;
}

static const char *check_of_kind(const char *kind)
{
    return !strcmp(kind, "ip") ? "dnsbl" : !strcmp(kind, "domain") ? "rhsbl" : "uribl";
}

/* One reason per lookup that matters: listings, refusals, degraded ones. */
static void lookup_reasons(struct verdict *v, const char *client_ip)
{
    for (size_t i = 0; i < v->nlookups; i++) {
        const struct verdict_lookup *l = &v->lookups[i];
        struct sbuf code = SBUF_INIT, text = SBUF_INIT;
        if (!strcmp(l->kind, "spf")) {
            sbuf_addf(&code, "spf_%s", l->outcome);
            sbuf_addf(&text, "SPF %s for %s %s", l->outcome, l->subject, l->query);
            if (l->answer && *l->answer)
                sbuf_addf(&text, ": %s", l->answer);
        } else if (!strcmp(l->outcome, "clean")) {
            continue;
        } else {
            const char *chk = check_of_kind(l->kind);
            char name[300];
            score_lookup_name(l, client_ip, name, sizeof name);
            sbuf_addf(&code, "%s_%s", chk, l->outcome);
            sbuf_addf(&text, "%s %s %s in %s", l->subject, name, l->outcome, l->zone);
            if (l->answer && *l->answer)
                sbuf_addf(&text, " (%s)", l->answer);
            if (l->txt)
                sbuf_addf(&text, ": %s", l->txt);
        }
        struct verdict_reason *r = verdict_add_reason(
            v, !strcmp(l->kind, "spf") ? "spf" : check_of_kind(l->kind), sbuf_str(&code),
            sbuf_str(&text));
        verdict_reason_attr(r, "zone", l->zone);
        if (l->weight != 0) {
            char w[32];
            snprintf(w, sizeof w, "%g", l->weight);
            verdict_reason_attr(r, "weight", w);
        }
        sbuf_free(&code);
        sbuf_free(&text);
    }
}

/* Wait for the lookups (bounded), then put the evidence into v. */
static void gather(struct conn *c, struct verdict *v)
{
    dnscheck_wait(c->dc);
    if (dnscheck_evidence(c->dc, v))
        v->degraded = true;
    if (c->spf_done) {
        const struct spf_result *sr = &c->spf;
        struct verdict_lookup l = {
            .zone = "spf",
            .kind = "spf",
            .subject = (char *)sr->identity,
            .query = (char *)sr->domain,
            .outcome = (char *)rules_spf_name(sr->result),
            .answer = (char *)sr->mechanism,
            .ttl = -1,
            .latency_ms = sr->latency_ms,
            .weight = c->policy->rules->spf_weight[sr->result],
        };
        verdict_add_lookup(v, &l);
        if (sr->degraded)
            v->degraded = true;
    }
}

static void score_input(const struct conn *c, struct addr *sender, struct rules_input *in)
{
    char err[64];
    bool have = c->sender && addr_parse(c->sender, strlen(c->sender), sender, err, sizeof err) == 0;
    memset(in, 0, sizeof *in);
    in->client = c->have_ip ? &c->ip : NULL;
    in->helo = c->helo;
    in->sender_null = have && sender->null_path;
    in->sender_local = have && !sender->null_path ? sender->local : NULL;
    in->sender_domain = have && sender->domain[0] ? sender->domain : NULL;
}

/* Score v's evidence; record the score and a reason when a threshold is
 * reached (score_ACTION, or score_exempt when allow rules took every
 * recipient out of its reach). */
static void score_verdict(struct conn *c, struct verdict *v, bool at_rcpt, bool exempt,
                          struct score_result *res)
{
    struct addr sender;
    struct rules_input in;
    score_input(c, &sender, &in);
    score_eval(c->policy->rules, &in, v->lookups, v->nlookups, at_rcpt, c->ip_text, res);
    v->scored = true;
    v->score = res->total;
    lookup_reasons(v, c->ip_text);
    if (res->threshold) {
        char text[240];
        snprintf(text, sizeof text, "score %.1f reached threshold %g (%s)%s", res->total,
                 res->threshold->score, verdict_action_name(res->action),
                 v->degraded ? "; some checks degraded" : "");
        char code[32];
        snprintf(code, sizeof code, "score_%s",
                 exempt ? "exempt" : verdict_action_name(res->action));
        if (exempt)
            snprintf(text + strlen(text), sizeof text - strlen(text),
                     "; not applied: every recipient was accepted by an allow rule");
        struct verdict_reason *r = verdict_add_reason(v, "score", code, text);
        verdict_set(&r->rule, res->threshold->where);
    }
}

/* The RCPT-time score, computed once per transaction when an early
 * threshold could refuse: it waits for the client and HELO lookups. */
static const struct score_result *early_score(struct conn *c)
{
    if (c->early_done)
        return &c->early;
    c->early_done = true;
    memset(&c->early, 0, sizeof c->early);
    if (!scoring_on(c) || !c->policy->rules->early_refusal)
        return &c->early;
    run_spf(c);
    c->early_ev = verdict_new(VERDICT_KIND_RCPT);
    gather(c, c->early_ev);
    score_verdict(c, c->early_ev, true, false, &c->early);
    return &c->early;
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
    if (grant)
        c->granted = true;   /* one of our users, like SMTP AUTH */
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

    /* A recipient the relay guard and the rules accept may still be refused
     * by an early score threshold (unless an allow rule named it). */
    bool by_score = false;
    if (d.action == VERDICT_ACCEPT && !d.allowed_by_rule && scoring_on(c)) {
        const struct score_result *er = early_score(c);
        if (er->action == VERDICT_TEMPFAIL || er->action == VERDICT_REJECT) {
            by_score = true;
            d.action = er->action;
            d.code = er->code;
            snprintf(d.xcode, sizeof d.xcode, "%s", er->xcode);
            snprintf(d.text, sizeof d.text, "%s", er->text);
            d.check = "score";
            d.reason = er->action == VERDICT_REJECT ? "score_reject" : "score_tempfail";
            snprintf(d.detail, sizeof d.detail, "score %.1f reached threshold %g",
                     er->total, er->threshold->score);
            d.rule = er->threshold->where;
        }
    }

    if (d.action == VERDICT_ACCEPT) {
        if (d.allowed_by_rule)
            c->nallowed++;
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
    struct verdict_reason *r;
    if (by_score) {
        verdict_add_evidence(v, c->early_ev);   /* its reasons include the score's */
    } else {
        r = verdict_add_reason(v, d.check, d.reason, d.detail);
        verdict_set(&r->rcpt, rcpt);
        verdict_set(&r->rule, d.rule);
    }
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

static const char *const our_headers[4] = {
    "X-Kanjiki-Score", "X-Kanjiki-Spam", "X-Kanjiki-Monitor", "X-Kanjiki-Snowshoe",
};
#define N_OUR_HEADERS (sizeof our_headers / sizeof our_headers[0])

static const char *authserv_id(const struct conn *c)
{
    return c->mta_name ? c->mta_name : kj.hostname;
}

/* Remember headers that pretend to come from us (see struct conn). */
static void note_forged(struct conn *c, const char *name, const char *value)
{
    for (size_t i = 0; i < N_OUR_HEADERS; i++)
        if (!strcasecmp(name, our_headers[i]))
            c->xk_seen[i]++;
    if (strcasecmp(name, "Authentication-Results"))
        return;
    c->ar_seen++;
    const char *p = value + strspn(value, " \t\r\n");
    size_t n = strcspn(p, "; \t\r\n");
    const char *id = authserv_id(c);
    if (n == strlen(id) && !strncasecmp(p, id, n) && c->n_ar_forged < MAX_FORGED)
        c->ar_forged[c->n_ar_forged++] = c->ar_seen;
}

/* Delete them, last first so that the indexes of the others stay right. */
static void delete_forged(SMFICTX *ctx, struct conn *c)
{
    if (!c->can_chghdrs)
        return;
    for (size_t i = c->n_ar_forged; i-- > 0;)
        if (smfi_chgheader(ctx, "Authentication-Results", (int)c->ar_forged[i], NULL) !=
            MI_SUCCESS)
            log_msg(LOG_WARNING, "could not delete a forged Authentication-Results header");
    for (size_t h = 0; h < N_OUR_HEADERS; h++)
        for (unsigned i = c->xk_seen[h]; i > 0; i--)
            if (smfi_chgheader(ctx, (char *)our_headers[h], (int)i, NULL) != MI_SUCCESS)
                log_msg(LOG_WARNING, "could not delete a forged %s header", our_headers[h]);
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
    struct conn *c = smfi_getpriv(ctx);
    if (!c || !c->msg || !name || !value)
        return SMFIS_CONTINUE;
    note_forged(c, name, value);
    if (!strcasecmp(name, "Message-ID") && !c->message_id) {
        /* the id without its <> (the first one), for kanjiki explain */
        const char *lt = strchr(value, '<');
        const char *start = lt ? lt + 1 : value;
        size_t idn = strcspn(start, lt ? ">" : " \t\r\n");
        if (idn && idn <= 998)
            c->message_id = xstrndup(start, idn);
    }
    if (!scoring_on(c))
        return SMFIS_CONTINUE;
    if (!strcasecmp(name, "From") && !c->have_from) {
        /* only the first From: counts; a second one is a forgery trick */
        c->have_from = true;
        char dom[256];
        char *v = copy_arg(value, MAX_HDR_VALUE);
        if (addr_header_domain(v, dom, sizeof dom) == 0) {
            dnscheck_domain(c->dc, dom, RULES_CHECK_FROM);
            c->from_domain = xstrdup(dom);
        }
        if (snowshoe_on(c))
            c->display = mailmsg_from_display(v);
        free(v);
    } else if (!strcasecmp(name, "Subject") && !c->subject && snowshoe_on(c)) {
        char *raw = copy_arg(value, 998);
        c->subject = mailmsg_decode_words(raw);   /* as kanjiki replay reads it */
        free(raw);
    } else if (!strcasecmp(name, "Content-Type") && !c->ctype) {
        c->ctype = copy_arg(value, MAX_HDR_VALUE);
    } else if (!strcasecmp(name, "Content-Transfer-Encoding") && !c->cte) {
        c->cte = copy_arg(value, MAX_HDR_VALUE);
    }
    return SMFIS_CONTINUE;
}

static sfsistat on_eoh(SMFICTX *ctx)
{
    struct conn *c = smfi_getpriv(ctx);
    if (c && c->msg && scoring_on(c) && c->dc && kj.psl && c->policy->rules->uri_zones)
        c->uri = uri_scan_new(kj.psl, c->ctype, c->cte, URI_MAX_BYTES, URI_MAX_HOSTS);
    return SMFIS_CONTINUE;
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
    struct conn *c = smfi_getpriv(ctx);
    if (c && c->uri && !uri_scan_truncated(c->uri))
        uri_scan_add(c->uri, (const char *)chunk, len);
    bool want_text = c && c->msg && snowshoe_on(c) && c->body.len < SNOW_BODY;
    if (want_text)
        sbuf_add(&c->body, (const char *)chunk,
                 len < SNOW_BODY - c->body.len ? len : SNOW_BODY - c->body.len);
    /* nothing (more) to read: let the MTA stop sending the body */
    if (c && c->can_skip && (!c->uri || uri_scan_truncated(c->uri)) &&
        (!c->msg || !snowshoe_on(c) || c->body.len >= SNOW_BODY))
        return SMFIS_SKIP;
    return SMFIS_CONTINUE;
}

static void add_header(SMFICTX *ctx, bool top, const char *name, const char *value)
{
    int rc = top ? smfi_insheader(ctx, 0, (char *)name, (char *)value)
                 : smfi_addheader(ctx, (char *)name, (char *)value);
    if (rc != MI_SUCCESS)
        log_msg(LOG_WARNING, "could not add %s header", name);
}

/* Authentication-Results (RFC 8601) and Received-SPF (RFC 7208 9.1), at
 * the top like a Received: line: they describe this hop. */
static void spf_headers(SMFICTX *ctx, const struct conn *c)
{
    if (!c->spf_done)
        return;
    struct sbuf b = SBUF_INIT;
    const char *id = authserv_id(c);
    esc_header(&b, id, strnlen(id, MAX_HELO));
    sbuf_addf(&b, "; %s", c->spf.auth_results);
    add_header(ctx, true, "Authentication-Results", sbuf_str(&b));
    sbuf_free(&b);
    add_header(ctx, true, "Received-SPF", c->spf.received_spf);
}

/* Every recipient kept is exempt from scoring by an allow rule. */
static bool all_exempt(const struct conn *c, const struct verdict *v)
{
    /* recipients that would have been refused (monitor) do not count */
    size_t kept = v->nrcpts - c->monitor_refused;
    return c->nallowed && c->nallowed == kept;
}

/* Monitor mode: the action is only noted, in the verdict and in the one
 * X-Kanjiki-Monitor header on_eom writes (with the notes about recipients
 * an early threshold would have refused). */
static void note_would(struct conn *c, struct verdict *v, enum verdict_action a,
                       const char *what, double score)
{
    v->monitor = true;
    if (a > v->action)
        v->action = a;
    if (c->monitor.len)
        sbuf_adds(&c->monitor, "; ");
    sbuf_addf(&c->monitor, "would %s (%s %.1f)", verdict_action_name(a), what, score);
}

/* Carry out an action at the end of the message: tag (X-Kanjiki-Spam: yes,
 * WHAT=SCORE), quarantine, or a tempfail/reject reply. Returns the libmilter
 * status. */
static sfsistat act(SMFICTX *ctx, struct verdict *v, enum verdict_action a, const char *what,
                    double score, int code, const char *xcode, const char *text)
{
    enum verdict_action before = v->action;
    v->action = a;
    char hv[96];
    if (a == VERDICT_TAG || a == VERDICT_QUARANTINE) {
        if (before < VERDICT_TAG) {
            snprintf(hv, sizeof hv, "yes, %s=%.1f", what, score);
            add_header(ctx, false, "X-Kanjiki-Spam", hv);
        }
        if (a == VERDICT_QUARANTINE) {
            snprintf(hv, sizeof hv, "kanjiki: %s score %.1f",
                     strcmp(what, "score") ? what : "spam", score);
            if (smfi_quarantine(ctx, hv) != MI_SUCCESS) {
                log_msg(LOG_WARNING, "quarantine refused by the MTA; message tagged only");
                v->action = VERDICT_TAG;
            }
        }
        return SMFIS_CONTINUE;
    }
    /* libmilter takes non-const strings */
    char num[8], xc[16], tx[512];
    snprintf(num, sizeof num, "%d", code);
    snprintf(xc, sizeof xc, "%s", xcode);
    snprintf(tx, sizeof tx, "%s", text);
    struct sbuf reply = SBUF_INIT;
    sbuf_addf(&reply, "%d %s %s", code, xc, tx);
    verdict_set(&v->reply, sbuf_str(&reply));
    sbuf_free(&reply);
    if (smfi_setreply(ctx, num, xc, tx) != MI_SUCCESS)
        log_msg(LOG_WARNING, "could not set reply text %s %s", num, xcode);
    return a == VERDICT_TEMPFAIL ? SMFIS_TEMPFAIL : SMFIS_REJECT;
}

/* Blocklists, SPF and score rules on the whole message: evidence into v,
 * headers, and the action. Returns the libmilter status. */
static sfsistat score_message(SMFICTX *ctx, struct conn *c, struct verdict *v)
{
    const struct ruleset *rs = c->policy->rules;
    if (!scoring_on(c) || !rs->scoring)
        return SMFIS_CONTINUE;
    if (c->uri) {
        uri_scan_finish(c->uri);
        for (size_t i = 0; i < uri_scan_count(c->uri); i++) {
            bool is_ip;
            const char *h = uri_scan_get(c->uri, i, &is_ip);
            dnscheck_uri(c->dc, h, is_ip);
        }
    }
    run_spf(c);
    gather(c, v);
    bool exempt = all_exempt(c, v);
    struct score_result res;
    score_verdict(c, v, false, exempt, &res);
    spf_headers(ctx, c);
    char hv[96];
    snprintf(hv, sizeof hv, "%.1f%s", res.total, v->degraded ? " (degraded)" : "");
    add_header(ctx, false, "X-Kanjiki-Score", hv);
    if (res.action == VERDICT_ACCEPT || exempt)
        return SMFIS_CONTINUE;
    if (v->monitor || c->policy->conf->mode == CONF_MODE_MONITOR) {
        note_would(c, v, res.action, "score", res.total);
        return SMFIS_CONTINUE;
    }
    return act(ctx, v, res.action, "score", res.total, res.code, res.xcode, res.text);
}

/* What identifies a message across its delivery attempts: the client's
 * /24 (IPv4) or /48 (IPv6), the envelope sender and the recipients (as
 * greylisting's triplet; by prefix so that a retry from the pool's next
 * address counts). Known before scoring, so that a repeat is scored without
 * being counted again. */
static uint64_t retry_key(const struct conn *c, const struct verdict *v)
{
    struct ip p = c->ip;
    ip_mask(&p, ip_is_v4(&p) ? 120 : 48);
    uint64_t h = retrymem_hash(RETRYMEM_HASH_INIT, p.b, sizeof p.b);
    const char *snd = c->sender ? c->sender : "";
    h = retrymem_hash(h, snd, strlen(snd) + 1);
    for (size_t i = 0; i < v->nrcpts; i++)
        h = retrymem_hash(h, v->rcpts[i], strlen(v->rcpts[i]) + 1);
    return h;
}

/* The client's PTR name (NULL: none) and whether it resolves back to the
 * client: our own lookups through the shared resolver (started at
 * connect), or, when they could not say, the MTA's: Postfix and sendmail
 * pass a name only when it resolves back to the client (else "unknown" or
 * "[address]"). */
static bool client_ptr(struct conn *c, const char **name)
{
    if (c->fcr && !c->fcr_done) {
        fcrdns_finish(c->fcr, dns_now_ms() + kj.dns_timeout_ms, &c->fcr_res);
        c->fcr_done = true;
    }
    if (c->fcr && c->fcr_res.status != FCRDNS_TEMPFAIL) {
        *name = c->fcr_res.name[0] ? c->fcr_res.name : NULL;
        return c->fcr_res.status == FCRDNS_CONFIRMED;
    }
    *name = c->client_name && strcasecmp(c->client_name, "unknown") ? c->client_name : NULL;
    return *name != NULL;
}

/* The snowshoe detector: its score and signals go into the verdict and an
 * X-Kanjiki-Snowshoe header; with snowshoe = enforce the rules' snowshoe
 * thresholds act (kanjiki.rules(5)) when they ask more than the score did.
 * A tempfail is for the first attempt: the retry of a message it delayed
 * (retry-delay after it, within retry-window) is tagged instead. rc: the
 * status so far; returns the final one. */
static sfsistat snowshoe_message(SMFICTX *ctx, struct conn *c, struct verdict *v, sfsistat rc)
{
    const struct conf *conf = c->policy->conf;
    const struct ruleset *rules = c->policy->rules;
    if (!snowshoe_on(c))
        return rc;
    const char *at = c->sender ? strrchr(c->sender, '@') : NULL;
    const char *ptr;
    bool confirmed = client_ptr(c, &ptr);
    int64_t now = tu_now_ms();
    /* the Message-ID's domain, read as replay reads it */
    char msgid_domain[256] = "";
    char *md = c->message_id ? mailmsg_id_domain(c->message_id) : NULL;
    if (md && strlen(md) < sizeof msgid_domain)
        memcpy(msgid_domain, md, strlen(md) + 1);
    free(md);
    struct snowshoe_msg m = {
        .time_ms = now,
        .client = &c->ip,
        .helo = c->helo,
        .ptr = ptr,
        .ptr_confirmed = confirmed,
        .env_domain = at && at[1] ? at + 1 : NULL,
        .from_domain = c->from_domain,
        .msgid_domain = msgid_domain[0] ? msgid_domain : NULL,
        .subject = c->subject,
        .display = c->display,
        .body_fp = c->body.len ? mailmsg_body_fingerprint(sbuf_str(&c->body), c->body.len,
                                                          c->ctype, c->cte)
                               : 0,
    };
    bool enforce = conf->snowshoe == CONF_SNOW_ENFORCE && !all_exempt(c, v);
    bool monitor = v->monitor || conf->mode == CONF_MODE_MONITOR;
    /* a message delayed before comes again: scored, not counted again */
    int64_t delay = rules->snow.retry_delay_ms ? rules->snow.retry_delay_ms
                                               : RULES_SNOW_RETRY_DELAY_MS;
    int64_t window = rules->snow.retry_window_ms ? rules->snow.retry_window_ms
                                                 : RULES_SNOW_RETRY_WINDOW_MS;
    bool remember = enforce && !monitor && kj.retry;   /* only then is there a retry */
    uint64_t rkey = remember ? retry_key(c, v) : 0;
    enum retrymem_state again =
        remember ? retrymem_check(kj.retry, rkey, now, delay, window) : RETRYMEM_NONE;
    m.repeat = again != RETRYMEM_NONE;
    struct snowshoe_result r;
    snowshoe_eval(kj.snow, &m, &r);
    const struct rules_threshold *th = rules_snowshoe_threshold_for(rules, r.score, r.cluster);
    enum verdict_action want = th ? th->action : VERDICT_ACCEPT;
    const char *retry = NULL;
    if (again == RETRYMEM_EARLY && want < VERDICT_REJECT) {
        retry = "resent too soon";   /* still the first attempt */
        want = VERDICT_TEMPFAIL;
        if (!th || th->action != VERDICT_TEMPFAIL)   /* for its reply */
            th = rules_snowshoe_threshold_for(NULL, SNOWSHOE_TEMPFAIL, true);
    } else if (again == RETRYMEM_RETRY && want < VERDICT_REJECT) {
        /* the retry passes, tagged (quarantined if that is what it
         * scores); the memory is used up: the next message is new */
        retry = "retried: tagged";
        if (want != VERDICT_QUARANTINE)
            want = VERDICT_TAG;
        retrymem_forget(kj.retry, rkey);
    } else if (again != RETRYMEM_NONE) {
        retry = "retried: the block is rejected meanwhile";
        retrymem_forget(kj.retry, rkey);
    } else if (want == VERDICT_TEMPFAIL && want > v->action && remember) {
        retry = "first attempt";   /* only when this tempfail is what happens */
        retrymem_note(kj.retry, rkey, now);
    }
    /* spam memory grows once per message, by its final action: not for a
     * first attempt that may yet be retried */
    if (want >= VERDICT_TAG && want != VERDICT_TEMPFAIL)
        snowshoe_spam(kj.snow, &m, &r);
    const char *mode = conf->snowshoe == CONF_SNOW_ENFORCE ? "" : "would ";
    struct sbuf t = SBUF_INIT;
    sbuf_addf(&t, "snowshoe score %.1f (%s), %s: %s%s", r.score,
              r.cluster ? "cluster signals" : "no cluster signal", r.block[0] ? r.block : "-",
              mode, verdict_action_name(want));
    if (retry)
        sbuf_addf(&t, " (%s)", retry);
    struct verdict_reason *rs = verdict_add_reason(v, "snowshoe", "snowshoe_score",
                                                   sbuf_str(&t));
    char num[32];
    snprintf(num, sizeof num, "%.2f", r.score);
    verdict_reason_attr(rs, "score", num);
    verdict_reason_attr(rs, "block", r.block);
    char pt[300];
    snprintf(pt, sizeof pt, "%s (%s%s)", ptr ? ptr : "-",
             !ptr ? "none" : confirmed ? "confirmed" : "not confirmed",
             c->fcr && c->fcr_res.status != FCRDNS_TEMPFAIL ? "" : ", by the MTA");
    verdict_reason_attr(rs, "ptr", pt);
    verdict_reason_attr(rs, conf->snowshoe == CONF_SNOW_ENFORCE ? "action" : "would",
                        verdict_action_name(want));
    if (th)
        verdict_reason_attr(rs, "threshold", th->where);
    if (retry)
        verdict_reason_attr(rs, "retry", retry);
    for (size_t i = 0; i < r.n; i++) {
        char key[48], val[160];
        snprintf(key, sizeof key, "signal_%s", r.c[i].signal);
        snprintf(val, sizeof val, "%+g: %s", r.c[i].weight, r.c[i].detail);
        verdict_reason_attr(rs, key, val);
    }
    sbuf_reset(&t);
    sbuf_addf(&t, "%.1f (%s; %s%s; ", r.score, r.cluster ? "cluster" : "no cluster", mode,
              verdict_action_name(want));
    esc_header(&t, r.block[0] ? r.block : "-", strlen(r.block[0] ? r.block : "-"));
    sbuf_addc(&t, ')');
    add_header(ctx, false, "X-Kanjiki-Snowshoe", sbuf_str(&t));
    sbuf_free(&t);
    /* the more severe of the score's action and this one */
    if (!enforce || want <= v->action)
        return rc;
    if (monitor) {
        note_would(c, v, want, "snowshoe", r.score);
        return rc;
    }
    if (want < VERDICT_TEMPFAIL || !th)   /* no reply: a tagged retry has no threshold */
        return act(ctx, v, want, "snowshoe", r.score, 0, "", "");
    char text[256], safe[96];
    if (th->reply_text) {
        snprintf(text, sizeof text, "%s", th->reply_text);
    } else {
        score_reply_safe(r.block[0] ? r.block : "your network", safe, sizeof safe);
        snprintf(text, sizeof text,
                 want == VERDICT_REJECT ? "Mail from %s looks like snowshoe spam"
                                        : "Mail from %s is delayed, try again later",
                 safe);
    }
    return act(ctx, v, want, "snowshoe", r.score, th->reply_code, th->reply_xcode, text);
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
    verdict_set(&v->message_id, c->message_id);
    v->stage = VSTAGE_EOM;
    v->action = VERDICT_ACCEPT;
    if (c->monitor_refused) {
        v->monitor = true;
        /* every recipient would have been refused: no message in enforce mode */
        if (c->monitor_refused == v->nrcpts)
            v->action = VERDICT_REJECT;
        if (c->monitor_items > MAX_HEADER_ITEMS)
            sbuf_addf(&c->monitor, "; and %zu more", c->monitor_items - MAX_HEADER_ITEMS);
    }
    delete_forged(ctx, c);
    sfsistat rc = score_message(ctx, c, v);
    rc = snowshoe_message(ctx, c, v, rc);
    if (c->monitor.len)
        add_header(ctx, false, "X-Kanjiki-Monitor", sbuf_str(&c->monitor));
    v->time_ms = tu_now_ms();
    record(v);
    txn_reset(c);
    return rc;
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
        .xxfi_flags = SMFIF_ADDHDRS | SMFIF_QUARANTINE | SMFIF_CHGHDRS,
        .xxfi_connect = on_connect,
        .xxfi_helo = on_helo,
        .xxfi_envfrom = on_envfrom,
        .xxfi_envrcpt = on_envrcpt,
        .xxfi_header = on_header,
        .xxfi_eoh = on_eoh,
        .xxfi_body = on_body,
        .xxfi_eom = on_eom,
        .xxfi_abort = on_abort,
        .xxfi_close = on_close,
        .xxfi_negotiate = on_negotiate,
    };
    return smfi_register(desc) == MI_SUCCESS ? 0 : -1;
}
