/* audit: what `kanjiki audit` tries against a mail server and how it reads
 * the answers. Pure: the relay battery (every form nmap's smtp-open-relay
 * tries, and more), the verdict of one test from its reply codes, the
 * software a banner gives away, and the catalogue of findings with the
 * Postfix and sendmail settings that fix them. The network side is in
 * cli/cmd_audit.c.
 *
 * Addresses in a test are complete MAIL FROM / RCPT TO arguments: "<a@b>",
 * "<>", or a bare address for the test of commands without brackets. */
#ifndef KANJIKI_AUDIT_H
#define KANJIKI_AUDIT_H
#include <stdbool.h>
#include <stddef.h>

/* What the battery is built from. */
struct audit_params {
    const char *from;           /* the foreign sender, "audit@example.org" */
    const char *to;             /* the external target, "relaytest@example.net" */
    const char *srvname;        /* the name the server gave in its banner/EHLO */
    const char *ip;             /* the server's address, for "[ip]" literals
                                   ("192.0.2.1", or "IPv6:2001:db8::1") */
    const char *const *local_domains;   /* the server's own domains (may be none) */
    size_t nlocal;
};

#define AUDIT_ADDR_MAX 1024
struct audit_test {
    char id[40];                /* "percent_hack_ip", ... (stable, for JSON) */
    char title[96];             /* "percent hack through the IP literal" */
    char mail[AUDIT_ADDR_MAX];  /* MAIL FROM: argument */
    char rcpt[AUDIT_ADDR_MAX];  /* RCPT TO: argument */
    bool nmap;                  /* one of nmap smtp-open-relay's 16 */
    const char *finding;        /* the finding when it relays ("open_relay", ...) */
};

/* The relay battery into out (at most max); returns how many. Tests that
 * need a local domain are left out without one. */
size_t audit_battery(const struct audit_params *p, struct audit_test *out, size_t max);
#define AUDIT_MAX_TESTS 64

enum audit_verdict {
    AUDIT_ERROR = 0,            /* no answer (timeout, drop, garbage) */
    AUDIT_REFUSED_MAIL,         /* MAIL refused (5xx): the test never reached RCPT */
    AUDIT_REFUSED,              /* RCPT refused (5xx) */
    AUDIT_DEFERRED,             /* MAIL or RCPT refused for now (4xx): no answer yet */
    AUDIT_RELAY,                /* MAIL and RCPT accepted */
    AUDIT_RELAY_DATA_REFUSED,   /* --deliver: accepted at RCPT, refused at DATA */
    AUDIT_RELAY_DELIVERED,      /* --deliver: the message was accepted for delivery */
};
/* From the reply codes (0: that step was not reached or not tried). */
enum audit_verdict audit_classify(int mail_code, int rcpt_code, int data_code);
const char *audit_verdict_name(enum audit_verdict v);   /* "relay", "refused", ... */
/* Does the verdict count as relaying? AUDIT_RELAY and ..._DELIVERED; with
 * --deliver a refusal at DATA means the message was not taken: no relay
 * (a finding of its own). */
bool audit_relays(enum audit_verdict v);

/* A banner that names its software and version ("Postfix (Debian)",
 * "Sendmail 8.17.1", "Exim 4.96", "Microsoft ESMTP MAIL Service, Version:
 * 10.0"): what it gives away into what, true when something. */
bool audit_banner_software(const char *banner, char *what, size_t n);

enum audit_severity { AUDIT_INFO = 0, AUDIT_LOW, AUDIT_MEDIUM, AUDIT_HIGH };
const char *audit_severity_name(enum audit_severity s);   /* "info", ... */

/* The catalogue of findings: id, severity, and the fix. */
struct audit_kind {
    const char *id;
    enum audit_severity severity;
    const char *title;
    const char *fix;            /* the Postfix and sendmail settings */
};
const struct audit_kind *audit_kind(const char *id);   /* NULL when unknown */

#endif
