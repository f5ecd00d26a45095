/* policy: one loaded configuration plus its rules, shared by every
 * connection. A connection takes a reference at connect and keeps that
 * policy for its whole life, so SIGHUP can swap in a new policy without
 * changing the rules under a transaction in flight. The last unref frees.
 *
 * policy_check_rcpt is the whole RCPT-time decision: the relay guard first
 * (lib/relay.h), then the allow/deny rules. */
#ifndef KANJIKI_POLICY_H
#define KANJIKI_POLICY_H
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "ip.h"
#include "relay.h"
#include "rules.h"
#include "verdict.h"

struct policy {
    struct conf *conf;
    struct ruleset *rules;     /* never NULL (may be empty) */
    int refs;                  /* atomic */
};

/* Load conf_path (NULL: built-in defaults) and the rules it names.
 * Returns 0, or -1 with "file:line[:col]: reason" in err. */
int policy_load(const char *conf_path, struct policy **out, char *err, size_t errlen);
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/* What is known about the transaction when a recipient arrives. */
struct policy_txn {
    const struct ip *client;      /* NULL when unknown */
    const struct ip *daemon;      /* the server address, or NULL */
    const char *helo;             /* NULL when none */
    const char *sender;           /* MAIL FROM argument, NULL when unknown */
    const char *auth_user;        /* {auth_authen} */
    bool popauth;                 /* a live grant covers client */
};

struct policy_rcpt {
    enum verdict_action action;   /* ACCEPT, REJECT or TEMPFAIL */
    int code;                     /* reply when not accepted */
    char xcode[16];
    char text[512];               /* ASCII, no mail data, no %: reply-safe */
    const char *check;            /* "relay", "route", "syntax", "rule" */
    const char *reason;           /* stable code (relay_denied, deny_rule, ...) */
    char detail[800];             /* for the verdict; holds mail data */
    const char *rule;             /* "file:line" of the deciding rule, or NULL */
    bool allowed_by_rule;         /* an allow rule matched (reason stays the relay one) */
};

void policy_check_rcpt(const struct policy *p, const struct policy_txn *t,
                       const char *rcpt, size_t len, struct policy_rcpt *out);

#endif
