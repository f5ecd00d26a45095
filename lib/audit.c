#include "audit.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- the findings and their fixes ---- */

static const struct audit_kind kinds[] = {
    { "open_relay", AUDIT_HIGH, "open relay: mail for a foreign domain is accepted from anyone",
      "Postfix: smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
      "reject_unauth_destination, and a mynetworks of your own hosts only (postconf "
      "mynetworks); sendmail: no RELAY entries in /etc/mail/access for foreign networks, "
      "no FEATURE(`promiscuous_relay') or FEATURE(`relay_entire_domain')" },
    { "percent_hack", AUDIT_HIGH, "relays through the percent hack (user%domain@server)",
      "Postfix: allow_percent_hack = no (with reject_unauth_destination); sendmail: "
      "no FEATURE(`loose_relay_check')" },
    { "quoted_local", AUDIT_HIGH, "relays a quoted local part holding '@' or '%'",
      "Postfix: reject_unauth_destination before any permit, and keep "
      "resolve_dequoted_address = yes; sendmail: no FEATURE(`loose_relay_check')" },
    { "routing", AUDIT_HIGH, "relays an address with a second '@'",
      "Postfix: reject_unauth_destination (and resolve_dequoted_address = yes); sendmail: "
      "no FEATURE(`loose_relay_check')" },
    { "source_route", AUDIT_HIGH, "relays a source route (@server:user@domain)",
      "Postfix: reject_unauth_destination, resolve_null_domain, and no permit before it; "
      "sendmail: leave FEATURE(`relay_based_on_MX') and source routes off "
      "(confDONT_PRUNE_ROUTES false)" },
    { "bang_path", AUDIT_HIGH, "relays a UUCP bang path (domain!user)",
      "Postfix: swap_bangpath = no, or reject_unauth_destination before any permit; "
      "sendmail: no FEATURE(`loose_relay_check'), no UUCP relay (UUCP_RELAY)" },
    { "submission_relay", AUDIT_HIGH, "the submission port relays without SMTP AUTH",
      "Postfix master.cf, submission: -o smtpd_relay_restrictions=permit_sasl_authenticated,"
      "reject -o smtpd_client_restrictions=permit_sasl_authenticated,reject; sendmail: "
      "DAEMON_OPTIONS(`Port=submission, Name=MSA, M=Ea')" },
    { "auth_cleartext", AUDIT_MEDIUM, "AUTH PLAIN is accepted over an unencrypted connection",
      "Postfix: smtpd_tls_auth_only = yes; sendmail: define(`confAUTH_OPTIONS', `A p')" },
    { "auth_bogus_accepted", AUDIT_HIGH, "AUTH accepted made-up credentials",
      "check the SASL setup: Postfix smtpd_sasl_* and the saslauthd/Dovecot backend must "
      "refuse unknown users; sendmail: confAUTH_MECHANISMS and the Cyrus SASL "
      "configuration (/etc/sasl2/Sendmail.conf)" },
    { "rcpt_then_data_refused", AUDIT_LOW,
      "foreign recipients are accepted at RCPT and refused at DATA",
      "refuse at RCPT (Postfix: reject_unauth_destination in smtpd_relay_restrictions; "
      "sendmail: the access database), so that nobody can harvest accepted addresses and "
      "the refusal comes from the policy that owns it" },
    { "auth_before_tls", AUDIT_LOW, "AUTH is advertised before STARTTLS",
      "Postfix: smtpd_tls_auth_only = yes; sendmail: define(`confAUTH_OPTIONS', `A p')" },
    { "no_starttls", AUDIT_LOW, "STARTTLS is not offered",
      "Postfix: smtpd_tls_security_level = may with smtpd_tls_chain_files; sendmail: "
      "define(`confSERVER_CERT', ...) and define(`confSERVER_KEY', ...)" },
    { "vrfy", AUDIT_MEDIUM, "VRFY confirms mailboxes (address harvesting)",
      "Postfix: disable_vrfy_command = yes; sendmail: define(`confPRIVACY_FLAGS', "
      "`goaway')" },
    { "expn", AUDIT_MEDIUM, "EXPN expands aliases and lists (address harvesting)",
      "sendmail: define(`confPRIVACY_FLAGS', `goaway') (noexpn); Postfix has no EXPN" },
    { "unknown_recipient", AUDIT_MEDIUM,
      "mail to an unknown local user is accepted at RCPT (backscatter: it bounces later)",
      "Postfix: smtpd_reject_unlisted_recipient = yes with working local_recipient_maps, "
      "virtual_mailbox_maps or relay_recipient_maps; sendmail: a virtusertable with "
      "\"@domain error:nouser User unknown\" or FEATURE(`ldap_routing') with bounce" },
    { "banner_version", AUDIT_LOW, "the banner names the software and its version",
      "Postfix: smtpd_banner = $myhostname ESMTP; sendmail: define(`confSMTP_LOGIN_MSG', "
      "`$j ESMTP')" },
    { "pregreet", AUDIT_INFO,
      "a client that talks before the greeting is served as usual (no pregreet test)",
      "Postfix: postscreen with postscreen_greet_action = enforce; sendmail: "
      "FEATURE(`greet_pause', `5000')" },
    { "no_greeting", AUDIT_MEDIUM, "the server sends no greeting",
      "check that the MTA listens on this port and is not overloaded (Postfix: "
      "postfix status, postconf -n smtpd_client_connection_count_limit)" },
};

const struct audit_kind *audit_kind(const char *id)
{
    for (size_t i = 0; id && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i].id, id))
            return &kinds[i];
    return NULL;
}

const char *audit_severity_name(enum audit_severity s)
{
    static const char *names[] = { "info", "low", "medium", "high" };
    return (unsigned)s < 4 ? names[s] : "?";
}

/* ---- the battery ---- */

struct builder {
    struct audit_test *out;
    size_t max, n;
};

static void add(struct builder *b, const char *id, const char *title, bool nmap,
                const char *finding, const char *mail, const char *rcpt)
{
    if (b->n >= b->max)
        return;
    struct audit_test *t = &b->out[b->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->title, sizeof t->title, "%s", title);
    snprintf(t->mail, sizeof t->mail, "%s", mail);
    snprintf(t->rcpt, sizeof t->rcpt, "%s", rcpt);
    t->nmap = nmap;
    t->finding = finding;
}

/* "local" and "domain" of an address (no '@': all local, domain ""). */
static void split(const char *addr, char *local, size_t ln, char *dom, size_t dn)
{
    const char *at = strrchr(addr, '@');
    size_t l = at ? (size_t)(at - addr) : strlen(addr);
    snprintf(local, ln, "%.*s", (int)(l < ln ? l : ln - 1), addr);
    snprintf(dom, dn, "%s", at ? at + 1 : "");
}

size_t audit_battery(const struct audit_params *p, struct audit_test *out, size_t max)
{
    struct builder b = { out, max, 0 };
    char fl[128], fd[256], tl[128], td[256], lit[80], srv[256];
    split(p->from, fl, sizeof fl, fd, sizeof fd);
    split(p->to, tl, sizeof tl, td, sizeof td);
    snprintf(lit, sizeof lit, "[%s]", p->ip);
    snprintf(srv, sizeof srv, "%s", p->srvname && *p->srvname ? p->srvname : lit);
    char m[AUDIT_ADDR_MAX], r[AUDIT_ADDR_MAX], mlit[AUDIT_ADDR_MAX], to[AUDIT_ADDR_MAX];
    snprintf(mlit, sizeof mlit, "<%s@%s>", fl, lit);
    snprintf(to, sizeof to, "<%s@%s>", tl, td);

    /* nmap smtp-open-relay's 16, in its order */
    add(&b, "null_sender", "null sender", true, "open_relay", "<>", to);
    snprintf(m, sizeof m, "<%s@%s>", fl, fd);
    add(&b, "foreign_sender", "foreign sender", true, "open_relay", m, to);
    snprintf(m, sizeof m, "<%s@%s>", fl, srv);
    add(&b, "sender_server_name", "sender at the server's own name", true, "open_relay", m, to);
    add(&b, "sender_ip_literal", "sender at the server's IP literal", true, "open_relay", mlit,
        to);
    snprintf(r, sizeof r, "<%s%%%s@%s>", tl, td, lit);
    add(&b, "percent_hack_ip", "percent hack through the IP literal", true, "percent_hack", mlit,
        r);
    snprintf(r, sizeof r, "<%s%%%s@%s>", tl, td, srv);
    add(&b, "percent_hack_name", "percent hack through the server's name", true,
        "percent_hack", mlit, r);
    snprintf(r, sizeof r, "<\"%s@%s\">", tl, td);
    add(&b, "quoted_at", "quoted local part with '@'", true, "quoted_local", mlit, r);
    snprintf(r, sizeof r, "<\"%s%%%s\">", tl, td);
    add(&b, "quoted_percent", "quoted local part with '%'", true, "quoted_local", mlit, r);
    snprintf(r, sizeof r, "<%s@%s@%s>", tl, td, lit);
    add(&b, "double_at_ip", "double '@' through the IP literal", true, "routing", mlit, r);
    snprintf(r, sizeof r, "<\"%s@%s\"@%s>", tl, td, lit);
    add(&b, "quoted_at_ip", "quoted '@' through the IP literal", true, "quoted_local", mlit, r);
    snprintf(r, sizeof r, "<%s@%s@%s>", tl, td, srv);
    add(&b, "double_at_name", "double '@' through the server's name", true, "routing", mlit, r);
    snprintf(r, sizeof r, "<@%s:%s@%s>", lit, tl, td);
    add(&b, "source_route_ip", "source route through the IP literal", true, "source_route",
        mlit, r);
    snprintf(r, sizeof r, "<@%s:%s@%s>", srv, tl, td);
    add(&b, "source_route_name", "source route through the server's name", true,
        "source_route", mlit, r);
    snprintf(r, sizeof r, "<%s!%s>", td, tl);
    add(&b, "bang_path", "bang path", true, "bang_path", mlit, r);
    snprintf(r, sizeof r, "<%s!%s@%s>", td, tl, lit);
    add(&b, "bang_path_ip", "bang path through the IP literal", true, "bang_path", mlit, r);
    snprintf(r, sizeof r, "<%s!%s@%s>", td, tl, srv);
    add(&b, "bang_path_name", "bang path through the server's name", true, "bang_path", mlit, r);

    /* more than nmap */
    snprintf(m, sizeof m, "<%s>", fl);
    add(&b, "unqualified_sender", "unqualified sender", false, "open_relay", m, to);
    snprintf(m, sizeof m, "%s@%s", fl, fd);
    snprintf(r, sizeof r, "%s@%s", tl, td);
    add(&b, "no_brackets", "addresses without angle brackets", false, "open_relay", m, r);
    snprintf(m, sizeof m, "<%s@%s>", fl, fd);
    snprintf(r, sizeof r, "<%s@%s@>", tl, td);
    add(&b, "trailing_at", "a trailing '@'", false, "routing", m, r);
    snprintf(r, sizeof r, "<%s%%%s@>", tl, td);
    add(&b, "empty_domain", "percent hack with an empty domain", false, "percent_hack", m, r);
    char up[400];
    snprintf(up, sizeof up, "%s@%s", tl, td);
    for (size_t i = 0; up[i]; i++)   /* alternate case: a case-sensitive check misses it */
        up[i] = (char)(i % 2 ? toupper((unsigned char)up[i]) : tolower((unsigned char)up[i]));
    snprintf(r, sizeof r, "<%s>", up);
    add(&b, "mixed_case", "mixed-case recipient", false, "open_relay", m, r);
    snprintf(r, sizeof r, "<%s@%s.>", tl, td);
    add(&b, "trailing_dot", "recipient domain with a trailing dot", false, "open_relay", m, r);
    for (size_t i = 0; i < p->nlocal && i < 4; i++) {
        const char *ld = p->local_domains[i];
        char id[40];
        snprintf(m, sizeof m, "<postmaster@%s>", ld);
        snprintf(id, sizeof id, "forged_local_sender%s", i ? "_2" : "");
        if (i < 2)
            add(&b, id, "sender forged in a local domain", false, "open_relay", m, to);
        if (i)
            continue;   /* the routing tricks through the first local domain */
        snprintf(m, sizeof m, "<%s@%s>", fl, fd);
        snprintf(r, sizeof r, "<%s%%%s@%s>", tl, td, ld);
        add(&b, "percent_hack_local", "percent hack through a local domain", false,
            "percent_hack", m, r);
        snprintf(r, sizeof r, "<\"%s@%s\"@%s>", tl, td, ld);
        add(&b, "quoted_at_local", "quoted '@' through a local domain", false, "quoted_local",
            m, r);
        snprintf(r, sizeof r, "<@%s:%s@%s>", ld, tl, td);
        add(&b, "source_route_local", "source route through a local domain", false,
            "source_route", m, r);
        snprintf(r, sizeof r, "<%s!%s@%s>", td, tl, ld);
        add(&b, "bang_path_local", "bang path through a local domain", false, "bang_path", m, r);
    }
    return b.n;
}

/* ---- reading the answers ---- */

enum audit_verdict audit_classify(int mail_code, int rcpt_code, int data_code)
{
    if (mail_code < 200 || mail_code > 599)
        return AUDIT_ERROR;
    if (mail_code >= 500)
        return AUDIT_REFUSED_MAIL;
    if (mail_code >= 400)
        return AUDIT_DEFERRED;   /* 4xx is no answer, at MAIL as at RCPT */
    if (mail_code >= 300)
        return AUDIT_ERROR;
    if (rcpt_code < 200 || rcpt_code > 599)
        return AUDIT_ERROR;
    if (rcpt_code >= 500)
        return AUDIT_REFUSED;
    if (rcpt_code >= 400)
        return AUDIT_DEFERRED;
    if (rcpt_code >= 300)
        return AUDIT_ERROR;   /* 3xx to RCPT is no SMTP */
    if (!data_code)
        return AUDIT_RELAY;
    return data_code >= 200 && data_code < 300 ? AUDIT_RELAY_DELIVERED : AUDIT_RELAY_DATA_REFUSED;
}

const char *audit_verdict_name(enum audit_verdict v)
{
    static const char *names[] = { "error", "refused at MAIL", "refused", "deferred", "relay",
                                   "accepted at RCPT, refused at DATA", "relay (delivered)" };
    return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "?";
}

bool audit_relays(enum audit_verdict v)
{
    return v == AUDIT_RELAY || v == AUDIT_RELAY_DELIVERED;
}

/* The word at s (letters, digits, '.', '-', '_', '/', '(' ')'). */
static size_t word_len(const char *s)
{
    size_t n = 0;
    while (s[n] && (isalnum((unsigned char)s[n]) || strchr(".-_/()", s[n])))
        n++;
    return n;
}

bool audit_banner_software(const char *banner, char *what, size_t n)
{
    static const char *const names[] = {
        "Postfix", "Sendmail", "Exim", "Microsoft ESMTP MAIL Service", "Exchange", "qmail",
        "OpenSMTPD", "Haraka", "MDaemon", "IceWarp", "Zimbra", "Kerio", "Courier", "hMailServer",
        "Lotus Domino", "CommuniGate", "Postini", "Merak", "XMail", "smtpd (OpenBSD)",
    };
    what[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t nl = strlen(names[i]);
        for (const char *p = banner; (p = strcasestr(p, names[i])); p += nl) {
            /* a whole word, not "postfixadmin.example" or "exchange.example.com" */
            if ((p > banner && (isalnum((unsigned char)p[-1]) || p[-1] == '.' || p[-1] == '-')) ||
                isalnum((unsigned char)p[nl]) || p[nl] == '.' || p[nl] == '-')
                continue;
            /* the rest up to the end of a version-looking word */
            const char *q = p + nl;
            while (*q == ' ' || *q == '/' || *q == ',' || *q == ':')
                q++;
            if (!strncasecmp(q, "Version", 7)) {
                q += 7;
                while (*q == ' ' || *q == ':')
                    q++;
            }
            size_t wl = isdigit((unsigned char)*q) || *q == '(' ? word_len(q) : 0;
            size_t total = (size_t)(q - p) + wl;
            while (total > nl && (p[total - 1] == ' ' || p[total - 1] == ',' ||
                                  p[total - 1] == ':' || p[total - 1] == '/'))
                total--;
            snprintf(what, n, "%.*s", (int)total, p);
            return true;
        }
    }
    /* a bare version number after the host name: "mx ESMTP 8.15.2/8.15.2" */
    for (const char *p = banner; *p; p++)
        if (isdigit((unsigned char)*p) && (p == banner || p[-1] == ' ') &&
            strchr(p, '.') && word_len(p) >= 3) {
            size_t wl = word_len(p), dots = 0;
            for (size_t i = 0; i < wl; i++)
                dots += p[i] == '.';
            unsigned a, b2, c, d;
            char tail;
            bool addr = sscanf(p, "%u.%u.%u.%u%c", &a, &b2, &c, &d, &tail) >= 4 &&
                        a < 256 && b2 < 256 && c < 256 && d < 256;
            if (dots >= 2 && !addr && isdigit((unsigned char)p[wl - 1])) {
                snprintf(what, n, "version %.*s", (int)wl, p);
                return true;
            }
        }
    return false;
}
