/* score: the spam score of a transaction and the action it leads to. Pure
 * logic: the evidence (blocklist lookups and the SPF result, as
 * verdict_lookup rows whose weight is already set) plus the `score` rules
 * give a total; the thresholds of the rules map it to an action and a
 * reply. No I/O, no DNS: lib/dnscheck.h gathers the evidence.
 *
 * At RCPT only `early` thresholds whose action refuses (tempfail, reject)
 * act: tagging or quarantining needs the message, so those wait for the
 * end of the message whatever their flag says. */
#ifndef KANJIKI_SCORE_H
#define KANJIKI_SCORE_H
#include <stdbool.h>
#include <stddef.h>

#include "rules.h"
#include "verdict.h"

struct score_result {
    double total;
    double rules;                          /* part from `score` rules */
    size_t rule_hits;
    const struct rules_threshold *threshold;   /* reached, or NULL */
    enum verdict_action action;            /* ACCEPT when none reached */
    int code;                              /* tempfail/reject reply */
    char xcode[16];
    char text[512];                        /* printable ASCII, no '%' */
};

/* in: the transaction's subjects (rcpt fields NULL: score rules on rcpt do
 * not count towards a message score). client_ip: text for the reply. */
void score_eval(const struct ruleset *rs, const struct rules_input *in,
                const struct verdict_lookup *lk, size_t nlk, bool at_rcpt,
                const char *client_ip, struct score_result *out);

/* What a lookup was about, for people: the client address for an ip zone,
 * else the name asked without the zone ("spam.example" for
 * "spam.example.dbl.example.org"). Raw text: escape it for its use. */
void score_lookup_name(const struct verdict_lookup *l, const char *client_ip, char *out,
                       size_t outlen);

/* Copy untrusted text (a TXT record) into out as a reply-safe string:
 * printable ASCII only, '%' and control characters replaced, at most
 * outlen - 1 bytes. */
void score_reply_safe(const char *in, char *out, size_t outlen);

#endif
