#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "xalloc.h"

int policy_load(const char *conf_path, struct policy **out, char *err, size_t errlen)
{
    struct conf *c = NULL;
    if (conf_path) {
        if (conf_load(conf_path, &c, err, errlen) < 0)
            return -1;
    } else {
        c = conf_defaults();
    }
    struct ruleset *rs = NULL;
    if (c->rules_dir) {
        if (rules_load_dir(c->rules_dir, &rs, err, errlen) < 0) {
            conf_free(c);
            return -1;
        }
    } else {
        rs = rules_new();
    }
    struct policy *p = xcalloc(1, sizeof *p);
    p->conf = c;
    p->rules = rs;
    p->refs = 1;
    *out = p;
    return 0;
}

struct policy *policy_ref(struct policy *p)
{
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void policy_unref(struct policy *p)
{
    if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        conf_free(p->conf);
        rules_free(p->rules);
        free(p);
    }
}

static void from_relay(struct policy_rcpt *o, const struct relay_result *r)
{
    o->action = r->ok ? VERDICT_ACCEPT : VERDICT_REJECT;
    o->code = r->code;
    snprintf(o->xcode, sizeof o->xcode, "%s", r->xcode);
    snprintf(o->text, sizeof o->text, "%s", r->text);
    o->check = r->check;
    o->reason = r->reason;
    snprintf(o->detail, sizeof o->detail, "%s", r->detail);
}

void policy_check_rcpt(const struct policy *p, const struct policy_txn *t,
                       const char *rcpt, size_t len, struct policy_rcpt *o)
{
    memset(o, 0, sizeof *o);
    struct relay_client cl = { t->client, t->daemon, t->auth_user, t->popauth };
    struct relay_result r;
    relay_check(p->conf, &cl, rcpt, len, &r);
    from_relay(o, &r);
    if (!r.ok)
        return;

    struct addr sender;
    char err[64];
    bool have_sender = t->sender &&
                       addr_parse(t->sender, strlen(t->sender), &sender, err, sizeof err) == 0;
    struct rules_input in = {
        .client = t->client,
        .helo = t->helo,
        .sender_null = have_sender && sender.null_path,
        .sender_local = have_sender && !sender.null_path ? sender.local : NULL,
        .sender_domain = have_sender && sender.domain[0] ? sender.domain : NULL,
        .rcpt_local = r.addr.local,
        .rcpt_domain = r.addr.domain[0] ? r.addr.domain : NULL,
    };
    const struct rule *hit = rules_match(p->rules, &in);
    if (!hit)
        return;
    o->rule = hit->where;
    o->check = "rule";
    if (hit->verb == RULE_ALLOW) {
        /* allow ends the rules; the relay reason above stays the verdict's */
        snprintf(o->detail + strlen(o->detail), sizeof o->detail - strlen(o->detail),
                 "; allowed by %s rule at %s", rules_subject_name(hit->subject), hit->where);
        o->check = r.check;
        o->allowed_by_rule = true;
        return;
    }
    o->action = hit->reply_code >= 500 ? VERDICT_REJECT : VERDICT_TEMPFAIL;
    o->code = hit->reply_code;
    snprintf(o->xcode, sizeof o->xcode, "%s", hit->reply_xcode);
    snprintf(o->text, sizeof o->text, "%s", hit->reply_text);
    o->reason = "deny_rule";
    snprintf(o->detail, sizeof o->detail, "denied by %s rule at %s",
             rules_subject_name(hit->subject), hit->where);
}
