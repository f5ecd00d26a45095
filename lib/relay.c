#include "relay.h"

#include <stdio.h>
#include <string.h>

/* Routing bits in the order they are reported: the most telling first, so
 * that "d!u" is called a bang path rather than an unqualified address. */
static const unsigned trick_order[] = {
    ADDR_T_SOURCE_ROUTE, ADDR_T_DOUBLE_AT, ADDR_T_QUOTED, ADDR_T_BANG,
    ADDR_T_PERCENT, ADDR_T_NO_DOMAIN, ADDR_T_EMPTY_DOMAIN,
};
#define ROUTING_BITS (ADDR_T_SOURCE_ROUTE | ADDR_T_DOUBLE_AT | ADDR_T_QUOTED | \
                      ADDR_T_BANG | ADDR_T_PERCENT)

static void refuse(struct relay_result *r, int code, const char *xcode,
                   const char *check, const char *reason, const char *text)
{
    r->ok = false;
    r->code = code;
    snprintf(r->xcode, sizeof r->xcode, "%s", xcode);
    r->check = check;
    r->reason = reason;
    snprintf(r->text, sizeof r->text, "%s", text);
}

static void pass(struct relay_result *r, const char *reason)
{
    r->ok = true;
    r->check = "relay";
    r->reason = reason;
}

static bool own_address(const struct conf *c, const struct relay_client *cl,
                        const char *text)
{
    struct ip ip;
    if (ip_parse(text, &ip) < 0)
        return false;
    return cidrset_contains(c->local_addresses, &ip) ||
           (cl->daemon_ip && ip_cmp(cl->daemon_ip, &ip) == 0);
}

/* Where a destination stands: local, relay, or foreign. */
static const char *classify(const struct conf *c, const struct relay_client *cl,
                            const char *dom, bool literal)
{
    if (literal)
        return own_address(c, cl, dom) ? "own_ip_literal" : NULL;
    if (conf_is_local_domain(c, dom))
        return "local_domain";
    if (conf_is_relay_domain(c, dom))
        return "relay_domain";
    return NULL;
}

static bool is_literal_text(const char *s)
{
    struct ip ip;
    return ip_parse(s, &ip) == 0;
}

void relay_check(const struct conf *c, const struct relay_client *cl,
                 const char *rcpt, size_t len, struct relay_result *r)
{
    memset(r, 0, sizeof *r);
    char err[128];
    if (addr_parse(rcpt, len, &r->addr, err, sizeof err) < 0 || r->addr.null_path) {
        refuse(r, 501, "5.1.3", "syntax", "bad_syntax",
               "Bad recipient address syntax (kanjiki)");
        snprintf(r->detail, sizeof r->detail, "unparsable recipient: %s",
                 r->addr.null_path ? "null path <> as recipient" : err);
        return;
    }
    const struct addr *a = &r->addr;
    if (a->postmaster) {
        pass(r, "postmaster");
        snprintf(r->detail, sizeof r->detail, "bare postmaster is always local (RFC 5321)");
        return;
    }

    unsigned allowed = c->allow_routing;
    for (size_t i = 0; i < sizeof trick_order / sizeof trick_order[0]; i++) {
        unsigned bit = trick_order[i];
        if ((a->tricks & bit) && !(allowed & bit)) {
            const char *name = addr_trick_name(bit);
            char text[160];
            if (bit & (ADDR_T_NO_DOMAIN | ADDR_T_EMPTY_DOMAIN))
                snprintf(text, sizeof text,
                         "Relaying denied (kanjiki): recipient address has no domain (%s)", name);
            else
                snprintf(text, sizeof text,
                         "Relaying denied (kanjiki): recipient address uses a routing trick (%s)",
                         name);
            refuse(r, 554, "5.7.1", "route", name, text);
            /* the address as written: a parsed form would hide the route */
            snprintf(r->detail, sizeof r->detail, "%s in recipient %.*s", name,
                     (int)(len < 512 ? len : 512), rcpt);
            return;
        }
    }
    unsigned routing = a->tricks & ROUTING_BITS;
    if (routing & (routing - 1)) {
        /* Several permitted tricks at once: no MTA agrees on where that goes. */
        refuse(r, 554, "5.7.1", "route", "multiple_tricks",
               "Relaying denied (kanjiki): recipient address combines routing tricks");
        snprintf(r->detail, sizeof r->detail, "several routing tricks in %s@%s",
                 a->local, a->domain);
        return;
    }

    if (routing && !a->target[0]) {
        /* "u%@local", "!u@local": a permitted trick that points nowhere is
         * still a trick; refuse it rather than judge the visible domain. */
        const char *name = addr_trick_name(routing);
        refuse(r, 554, "5.7.1", "route", name,
               "Relaying denied (kanjiki): recipient address uses a routing trick");
        snprintf(r->detail, sizeof r->detail, "%s without a destination in %s@%s", name,
                 a->local, a->domain);
        return;
    }

    bool literal = a->kind == ADDR_D_IPV4 || a->kind == ADDR_D_IPV6;
    const char *where;
    if (a->tricks & ADDR_T_NO_DOMAIN) {
        /* permitted unqualified: the MTA appends its own domain */
        where = "local_domain";
    } else {
        where = classify(c, cl, a->domain, literal);
        if (literal && !where && !(allowed & CONF_ALLOW_IP_LITERAL)) {
            refuse(r, 554, "5.7.1", "route", "ip_literal",
                   "Relaying denied (kanjiki): IP literal is not an address of this server");
            snprintf(r->detail, sizeof r->detail, "IP literal [%s] is not ours", a->domain);
            return;
        }
    }
    /* A permitted trick routes onwards to its target: that must be ours too. */
    if (where && routing && !classify(c, cl, a->target, is_literal_text(a->target)))
        where = NULL;
    if (where) {
        pass(r, where);
        snprintf(r->detail, sizeof r->detail, "%s is %s", a->domain[0] ? a->domain : a->local,
                 !strcmp(where, "relay_domain") ? "a relay domain" : "local");
        return;
    }
    const char *dest = routing && a->target[0] ? a->target : a->domain;
    if (cl->auth_user && cl->auth_user[0]) {
        pass(r, "smtp_auth");
        snprintf(r->detail, sizeof r->detail, "relay to %s for SMTP AUTH user %s", dest,
                 cl->auth_user);
    } else if (cl->ip && cidrset_contains(c->trusted_networks, cl->ip)) {
        pass(r, "trusted_network");
        snprintf(r->detail, sizeof r->detail, "relay to %s from a trusted network", dest);
    } else if (cl->popauth) {
        pass(r, "popauth_grant");
        snprintf(r->detail, sizeof r->detail, "relay to %s under a POP/IMAP-before-SMTP grant",
                 dest);
    } else {
        refuse(r, 554, "5.7.1", "relay", "relay_denied",
               "Relaying denied (kanjiki): recipient domain is not local and the "
               "client is not authorised");
        snprintf(r->detail, sizeof r->detail,
                 "relay to %s denied: client not authenticated, not trusted, no grant", dest);
    }
}
