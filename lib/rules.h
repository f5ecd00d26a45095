/* rules: the policy language of the rules/ files (NAME.rules).
 *
 * A file is a list of statements, one per line ('\' at the end of a line
 * continues it, '#' starts a comment). A statement starts with a verb; the
 * verb decides the rest of its syntax, so new statements (blocklist zones,
 * weights, thresholds, actions) are new entries in the parser's verb table
 * and new fields in struct rule, not a new language. Today's verbs:
 *
 *   allow|deny  client|sender|rcpt|helo  VALUE [, VALUE ...]  [reply "TEXT"]
 *   score N     client|sender|rcpt|helo  VALUE [, VALUE ...]
 *   zone NAME   [ip|domain|uri] [weight N] [codes C,...] [errors C,...]
 *               [txt] [timeout DURATION] [check helo,sender,from]
 *   spf RESULT N          (RESULT: pass fail softfail neutral none
 *                          temperror permerror)
 *   threshold N tag|quarantine|tempfail|reject [reply "TEXT"] [early]
 *   snowshoe threshold N tag|quarantine|tempfail|reject [reply "TEXT"]
 *   snowshoe window|short-window|long-window|new-domain|aged-domain|
 *            memory-halflife|retry-delay|retry-window DURATION
 *
 * Rules are tried in order (files in name order, lines in file order); the
 * first allow/deny whose subject matches decides. `allow` stops the rules
 * for that recipient (it never authorises relaying: that is what
 * trusted_networks, SMTP AUTH and POP-before-SMTP are for); `deny` refuses
 * the recipient with its reply (default 550 5.7.1).
 *
 * Scores: `score` rules, listed blocklist zones and the SPF result add
 * their weights (negative weights count against a listing, as in Postfix's
 * postscreen); the highest threshold at or below the total decides the
 * action. `early` thresholds may act at RCPT, before DATA. Zones,
 * thresholds and SPF weights are collected here and used by the scoring
 * code; allow/deny keep deciding first.
 *
 * rules_load_dir/rules_parse return a ruleset that owns everything in it
 * (rules_free). Errors name "file:line:column: reason". */
#ifndef KANJIKI_RULES_H
#define KANJIKI_RULES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cidrset.h"
#include "dnsbl.h"
#include "ip.h"
#include "snowshoe.h"
#include "verdict.h"

enum rule_verb { RULE_ALLOW = 0, RULE_DENY, RULE_SCORE };
enum rule_subject { RULE_CLIENT = 0, RULE_SENDER, RULE_RCPT, RULE_HELO };

/* One address/domain/name pattern (sender, rcpt, helo). */
enum rule_pat_kind {
    RULE_PAT_NULL = 0,   /* "<>": the null sender */
    RULE_PAT_ADDRESS,    /* user@domain: exact address */
    RULE_PAT_LOCAL,      /* user@ : that local part at any domain */
    RULE_PAT_DOMAIN,     /* domain or @domain: exactly that domain */
    RULE_PAT_SUBDOMAIN,  /* .domain: any name below domain */
};

struct rule_pat {
    enum rule_pat_kind kind;
    char *local;         /* lower-case, RULE_PAT_ADDRESS / LOCAL */
    char *domain;        /* lower-case, no leading or trailing dot */
};

struct rule {
    enum rule_verb verb;
    enum rule_subject subject;
    struct cidrset *nets;      /* RULE_CLIENT */
    struct rule_pat *pats;     /* other subjects */
    size_t npats;
    int reply_code;            /* deny: 4xx or 5xx */
    char reply_xcode[16];      /* deny: "5.7.1" */
    char *reply_text;          /* deny: text after the codes */
    double weight;             /* score: added when the subject matches */
    char *where;               /* "file:line" */
};

/* Which identities a domain zone (RHSBL) is asked about. */
enum { RULES_CHECK_HELO = 1, RULES_CHECK_SENDER = 2, RULES_CHECK_FROM = 4 };

struct rules_zone {
    struct dnsbl_zone z;       /* owns name and where */
    unsigned check;            /* DNSBL_DOMAIN: RULES_CHECK_* bits */
};

struct rules_threshold {
    double score;              /* acts when the total is >= score */
    enum verdict_action action;
    int reply_code;            /* tempfail/reject */
    char reply_xcode[16];
    char *reply_text;
    bool early;                /* may act at RCPT TO */
    char *where;
};

/* The snowshoe detector's part of the policy (`snowshoe` statements).
 * Durations of 0 leave the detector's defaults. */
struct rules_snowshoe {
    int64_t window_ms, short_window_ms, long_window_ms;
    int64_t new_domain_ms, aged_domain_ms, halflife_ms;
    int64_t retry_delay_ms, retry_window_ms;   /* a tempfailed message's retry */
    struct rules_threshold *thresholds;        /* highest first; none: defaults */
    size_t nthresholds;
};
/* Defaults of the retry memory: a retry counts from 1 minute after the
 * first attempt (a real MTA's queue) until 24 hours after it. */
#define RULES_SNOW_RETRY_DELAY_MS (60 * 1000LL)
#define RULES_SNOW_RETRY_WINDOW_MS (24 * 3600 * 1000LL)

enum rules_spf {
    RULES_SPF_NONE = 0, RULES_SPF_NEUTRAL, RULES_SPF_PASS, RULES_SPF_FAIL,
    RULES_SPF_SOFTFAIL, RULES_SPF_TEMPERROR, RULES_SPF_PERMERROR,
};
#define RULES_SPF_COUNT 7

struct ruleset {
    struct rule *v;
    size_t n;
    size_t nfiles;             /* files read */
    struct rules_zone *zones;  /* in definition order */
    size_t nzones;
    struct rules_threshold *thresholds;   /* highest score first */
    size_t nthresholds;
    double spf_weight[RULES_SPF_COUNT];
    bool spf_used;             /* some `spf` statement: SPF is evaluated */
    struct rules_snowshoe snow;
    /* derived once per parse, read on every message */
    bool scoring;              /* zones, spf, thresholds or score rules */
    bool early_refusal;        /* an early tempfail/reject threshold */
    bool uri_zones;            /* some uri zone: links are looked for */
};

struct ruleset *rules_new(void);
void rules_free(struct ruleset *rs);
/* Parse text (len bytes; may hold anything) named fname into rs (appended).
 * Returns 0, or -1 with "fname:line:column: reason" in err. */
int rules_parse(struct ruleset *rs, const char *fname, const char *text,
                size_t len, char *err, size_t errlen);
/* Read every "*.rules" file of dir in name order into a new ruleset. A
 * missing or unreadable directory is an error. */
int rules_load_dir(const char *dir, struct ruleset **out, char *err, size_t errlen);
/* What only the whole rule set can tell (rules_load_dir runs it after the
 * last file): snowshoe retry-delay shorter than retry-window, windows that
 * grow (short <= window <= long). Returns 0, or -1 with the reason. */
int rules_check(const struct ruleset *rs, char *err, size_t errlen);

/* What a recipient's rules are matched against. Strings lower-case or not;
 * NULL means unknown (a rule on an unknown subject does not match). */
struct rules_input {
    const struct ip *client;
    const char *helo;
    bool sender_null;
    const char *sender_local, *sender_domain;
    const char *rcpt_local, *rcpt_domain;
};

/* The first allow/deny rule that matches, or NULL. */
const struct rule *rules_match(const struct ruleset *rs, const struct rules_input *in);
/* Sum of the weights of every score rule that matches; *nhit (optional)
 * gets how many matched. */
double rules_score(const struct ruleset *rs, const struct rules_input *in, size_t *nhit);
/* The threshold a total reaches (the highest at or below it), only early
 * ones when at_rcpt; NULL when none. */
const struct rules_threshold *rules_threshold_for(const struct ruleset *rs, double total,
                                                  bool at_rcpt);
/* The snowshoe threshold a detector result reaches: the rules' own, else
 * the defaults (tag 4.5, tempfail 8, reject 10). Thresholds that refuse
 * (tempfail, reject) need a cluster signal: per-message signals alone
 * never refuse mail. NULL rs: the defaults. NULL when none is reached. */
const struct rules_threshold *rules_snowshoe_threshold_for(const struct ruleset *rs,
                                                           double score, bool cluster);
/* The detector's windows from the rules, over its defaults in cfg. */
void rules_snowshoe_cfg(const struct ruleset *rs, struct snowshoe_cfg *cfg);
const char *rules_spf_name(enum rules_spf r);   /* "fail", ... */
int rules_spf_parse(const char *s, enum rules_spf *out);

/* Print the rules back in canonical form, with their origin. */
void rules_print(const struct ruleset *rs, FILE *f);
const char *rules_subject_name(enum rule_subject s);

#endif
