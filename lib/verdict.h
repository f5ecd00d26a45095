/* verdict: what kanjiki decided about one message or one refused recipient,
 * and why. A verdict owns every string in it; verdict_free releases all.
 * Reasons are structured (check, code, text, optional recipient and rule,
 * plus free key/value attributes for later signals such as DNS evidence)
 * and serialise to a JSON array for the store. */
#ifndef KANJIKI_VERDICT_H
#define KANJIKI_VERDICT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ordered by severity: a later one wins when several apply. */
enum verdict_action {
    VERDICT_ACCEPT = 0,
    VERDICT_TAG,         /* headers only */
    VERDICT_QUARANTINE,  /* smfi_quarantine */
    VERDICT_TEMPFAIL,    /* 4xx */
    VERDICT_REJECT,      /* 5xx */
};
#define VERDICT_ACTION_COUNT 5

enum verdict_stage {
    VSTAGE_CONNECT = 0,
    VSTAGE_HELO,
    VSTAGE_MAIL,
    VSTAGE_RCPT,
    VSTAGE_DATA,
    VSTAGE_EOM,
};

enum verdict_kind {
    VERDICT_KIND_MESSAGE = 0,  /* one row per message (end of message) */
    VERDICT_KIND_RCPT,         /* one row per refused recipient */
};

struct verdict_attr {
    char *key;
    char *value;
};

struct verdict_reason {
    char *check;    /* area: "relay", "route", "rule", "syntax", ... */
    char *code;     /* stable machine name: "relay_denied", "percent_hack" */
    char *text;     /* one line for humans */
    char *rcpt;     /* the recipient it concerns, or NULL */
    char *rule;     /* "file:line" of the rule that fired, or NULL */
    struct verdict_attr *attrs;
    size_t nattrs;
};

/* One DNS check that fed the verdict (blocklist zone or SPF): the evidence
 * an administrator needs to answer "why". */
struct verdict_lookup {
    char *zone;          /* "bl.example.org", or "spf" */
    char *kind;          /* "ip", "domain", "uri", "spf" */
    char *subject;       /* what was checked: "client", "helo", "sender",
                            "from", "uri" (several joined by ',') */
    char *query;         /* the DNS name asked, or the SPF domain */
    char *outcome;       /* "listed", "clean", "refused", "degraded",
                            "skipped"; SPF: its result */
    char *answer;        /* "127.0.0.2", or "" */
    char *txt;           /* the list's TXT reason, or NULL */
    int ttl;             /* seconds; -1 unknown */
    int64_t latency_ms;
    bool cached;
    double weight;       /* what it added to the score (0 when nothing) */
};

struct verdict {
    int64_t id;                 /* store row id; 0 until stored */
    enum verdict_kind kind;
    int64_t time_ms;            /* epoch milliseconds */
    char *queue_id;
    char *message_id;           /* KIND_MESSAGE: Message-ID without <>, or NULL */
    char *client_ip;
    char *client_name;          /* PTR name as the MTA reported it */
    char *helo;
    char *sender;               /* envelope sender without brackets; "" for <> */
    char *auth_user;            /* {auth_authen}, or NULL */
    char *rcpt;                 /* KIND_RCPT: the refused recipient */
    char **rcpts;               /* KIND_MESSAGE: accepted recipients */
    size_t nrcpts;
    enum verdict_stage stage;
    enum verdict_action action; /* done, or in monitor mode would be done */
    bool monitor;               /* true: only recorded, the mail passed */
    char *reply;                /* "554 5.7.1 text" as sent (or would be) */
    struct verdict_reason *reasons;
    size_t nreasons;
    char *reasons_json;         /* set when loaded from the store */
    struct verdict_lookup *lookups;
    size_t nlookups;
    char *lookups_json;         /* set when loaded from the store */
    bool scored;                /* blocklists/SPF/score rules were evaluated */
    double score;               /* their total */
    bool degraded;              /* some check could not be made in time */
};

struct verdict *verdict_new(enum verdict_kind kind);
void verdict_free(struct verdict *v);
/* Deep copy. */
struct verdict *verdict_clone(const struct verdict *v);

/* Replace *field with a copy of value (NULL allowed). */
void verdict_set(char **field, const char *value);
void verdict_add_rcpt(struct verdict *v, const char *rcpt);
/* Append a reason; strings are copied; returns it for attributes. The
 * pointer stays valid until the next verdict_add_reason on v. */
struct verdict_reason *verdict_add_reason(struct verdict *v, const char *check,
                                          const char *code, const char *text);
void verdict_reason_attr(struct verdict_reason *r, const char *key,
                         const char *value);

/* Copy from's reasons, lookups, score and degraded flag onto to (the
 * evidence of an early decision, onto each recipient it refused). */
void verdict_add_evidence(struct verdict *to, const struct verdict *from);
/* Append a copy of l (strings copied, NULL allowed). */
void verdict_add_lookup(struct verdict *v, const struct verdict_lookup *l);
/* JSON array of the lookups, e.g. [{"zone":"bl.example","kind":"ip",
 * "subject":"client","query":"2.0.0.127.bl.example","outcome":"listed",
 * "answer":"127.0.0.2","txt":"...","ttl":300,"latency_ms":3,"cached":false,
 * "weight":5}]. Caller frees. */
char *verdict_lookups_to_json(const struct verdict *v);

/* JSON array of the reasons, e.g.
 * [{"check":"relay","code":"relay_denied","text":"...","rcpt":"u@d"}].
 * Caller frees. Everything is escaped with esc_json. */
char *verdict_reasons_to_json(const struct verdict *v);
/* JSON array of strings for rcpts. Caller frees. */
char *verdict_rcpts_to_json(const struct verdict *v);
/* The verdict as JSON object members (no braces): "time", "kind",
 * "queue_id", "message_id", "client_ip", "client_name", "helo", "sender", "auth_user",
 * "rcpt" or "recipients", "stage", "action", "monitor", "reply", "score",
 * "degraded", "reasons", "lookups" (absent values are null), as `kanjiki
 * query --format json` names them; the structured log line (log_format =
 * json). Works on a verdict built in memory or loaded from the store.
 * Caller frees. */
char *verdict_json_members(const struct verdict *v);
/* The same for a log line: at most 20 recipients ("recipients_total" gives
 * the number when there are more) and "lookups_count" instead of the
 * lookups (in the store, and in `kanjiki explain`), so that one verdict
 * stays one syslog message. */
char *verdict_json_members_brief(const struct verdict *v);

const char *verdict_action_name(enum verdict_action a);  /* "accept" ... */
int verdict_action_parse(const char *s, enum verdict_action *out);
const char *verdict_stage_name(enum verdict_stage s);    /* "rcpt" ... */
int verdict_stage_parse(const char *s, enum verdict_stage *out);
const char *verdict_kind_name(enum verdict_kind k);      /* "message"|"rcpt" */

#endif
