/* snowshoe: the cluster detector. Snowshoe spam comes at low volume from
 * many IPs inside a few address blocks, behind sender domains that rotate,
 * from IPs no blocklist knows yet. No single message shows it; the block
 * does. This module keeps, in memory and bounded, what recent messages
 * looked like per address block (/24 for IPv4, /48 for IPv6), per wider
 * prefix (/16, for spread), per registrable sender domain and per text
 * fingerprint, and scores each new message with per-message signals
 * (lib/snowsig.h) plus cluster signals over a sliding window.
 *
 * Per-message signals alone are capped below the cluster signals' reach:
 * a message is only ever scored high when its block (or its fingerprint)
 * behaves like a snowshoe cluster, so a legitimate server with a bad HELO
 * is never more than suspicious.
 *
 * Mail from large shared platforms (the networks and PTR suffixes in the
 * platform list: Google, Microsoft, Amazon SES, SendGrid...) is counted by
 * sender domain, not by block: thousands of customers share those blocks.
 *
 * Time is the caller's (the message's own time in a replay), so the same
 * input gives the same result. Thread-safe: one mutex inside.
 *
 * Ownership: snowshoe_new/snowshoe_free; the psl and tld list passed in
 * the configuration must outlive it. Strings in a result are inside it. */
#ifndef KANJIKI_SNOWSHOE_H
#define KANJIKI_SNOWSHOE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidrset.h"
#include "ip.h"
#include "snowsig.h"
#include "verdict.h"

struct psl;

struct snowshoe_cfg {
    int64_t window_ms;          /* cluster counts (default 7 d) */
    int64_t short_window_ms;    /* the same counts within this weigh more (24 h) */
    int64_t long_window_ms;     /* a block's history: IPs and domains (90 d) */
    int64_t new_domain_ms;      /* a domain first seen within this is new (7 d) */
    int64_t aged_domain_ms;     /* seen this long ago with a clean history: trusted (7 d) */
    int64_t memory_halflife_ms; /* a block's spam memory halves in this (7 d) */
    unsigned v4_prefix, v6_prefix;   /* block sizes (24, 48) */
    unsigned v4_wide, v6_wide;       /* spread prefixes (16, 32) */
    size_t max_blocks, max_domains, max_prints;   /* memory bounds (LRU) */
    const struct psl *psl;
    const struct snowsig_tlds *tlds;
    const struct cidrset *platform_nets;   /* may be NULL */
    const char *const *platform_ptrs;      /* ".google.com", ...; NULL-terminated */
};
/* The defaults above (psl, tlds, platform lists left NULL). */
void snowshoe_cfg_defaults(struct snowshoe_cfg *c);

struct snowshoe_msg {
    int64_t time_ms;
    const struct ip *client;    /* NULL: unknown (no cluster signals) */
    const char *helo;
    const char *ptr;            /* the client's PTR name, NULL when none */
    bool ptr_confirmed;         /* the PTR name resolves back to client */
    const char *env_domain;     /* envelope sender's domain, NULL for <> */
    const char *from_domain;
    const char *msgid_domain;
    const char *subject;        /* raw; fingerprinted here */
    const char *display;        /* From: display name */
    uint64_t body_fp;           /* mailmsg_body_fingerprint, 0 unknown */
    bool repeat;                /* the same message again (a retry of one that
                                   was delayed): scored, not remembered again */
};

#define SNOWSHOE_MAX_CONTRIB 24
struct snowshoe_contrib {
    const char *signal;         /* "helo_local", "block_ips", ... (static) */
    double weight;
    char detail[112];           /* "7 IPs in 198.51.100.0/24 in 24h" */
};

struct snowshoe_result {
    double score;               /* message part (capped) + cluster part */
    double msg_score, cluster_score;
    bool cluster;               /* some cluster signal fired */
    bool platform;              /* counted by sender domain (shared platform) */
    bool identified;            /* HELO matches a confirmed PTR name: counted
                                   by the PTR's domain (the operator) */
    char domain[256];           /* the registrable sender domain counted (the
                                   envelope's, else From:'s), or "" */
    uint64_t block_key;         /* the block's key (for snowshoe_spam) */
    char block[80];             /* "198.51.100.0/24", "platform:DOMAIN",
                                   "operator:DOMAIN", or "" */
    struct snowshoe_contrib c[SNOWSHOE_MAX_CONTRIB];
    size_t n;
};

struct snowshoe;
struct snowshoe *snowshoe_new(const struct snowshoe_cfg *cfg);
void snowshoe_free(struct snowshoe *s);
/* Take the windows (the *_ms durations) of cfg; the rest stays (a reload
 * changes windows, not table sizes or lists). */
void snowshoe_set_windows(struct snowshoe *s, const struct snowshoe_cfg *cfg);

/* Score m against what came before, then remember it (unless it is a
 * repeat). */
void snowshoe_eval(struct snowshoe *s, const struct snowshoe_msg *m,
                   struct snowshoe_result *out);
/* The final action for m was spam-like (tag or worse): the block's spam
 * memory grows (and decays with time), the sender domain loses its clean
 * history. r: what snowshoe_eval said of m. */
void snowshoe_spam(struct snowshoe *s, const struct snowshoe_msg *m,
                   const struct snowshoe_result *r);

struct snowshoe_stats {
    size_t blocks, domains, prints, wides;
    size_t bytes;               /* memory held, approximately */
};
void snowshoe_get_stats(struct snowshoe *s, struct snowshoe_stats *out);

/* The message part never exceeds this: alone it can make a message
 * suspicious, never spam. */
#define SNOWSHOE_MSG_CAP 3.0

/* The default actions (rules_snowshoe_threshold_for in lib/rules.h): tag
 * from 4.5, tempfail from 8, reject from 10 but only when a cluster signal
 * is present (never on per-message signals). */
#define SNOWSHOE_TAG 4.5
#define SNOWSHOE_TEMPFAIL 8.0
#define SNOWSHOE_REJECT 10.0

/* ---- persistence (the milter saves the state in SQLite; kanjiki clusters
 * reads it) ---- */
enum {
    SNOWSHOE_KIND_BLOCK = 0,    /* a /24, /48, operator:DOMAIN or platform:DOMAIN */
    SNOWSHOE_KIND_WIDE,         /* a /16 or /32 */
    SNOWSHOE_KIND_DOMAIN,
    SNOWSHOE_KIND_PRINT,
    SNOWSHOE_KINDS,
};
struct snowshoe_row {
    int kind;
    uint64_t key;
    char *name;                 /* domain name, or block label, or NULL */
    void *data;                 /* the entry's state (this build's layout) */
    size_t len;
    int64_t last_ms;            /* its newest event, for pruning */
};
struct snowshoe_rows {
    struct snowshoe_row *v;
    size_t n, cap;
};
/* Copy the entries (changed since the last export when dirty_only) out
 * under the lock, so that writing them never holds the detector up. */
void snowshoe_export(struct snowshoe *s, bool dirty_only, struct snowshoe_rows *out);
void snowshoe_rows_free(struct snowshoe_rows *r);
/* Put one saved entry back. Returns 0, or -1 for a row of another layout
 * (another version of kanjiki: dropped). */
int snowshoe_import(struct snowshoe *s, int kind, uint64_t key, const char *name,
                    const void *data, size_t len);

/* What a saved block row says, for `kanjiki clusters`. */
struct snowshoe_block_info {
    unsigned messages, ips, new_domains, helos, suspicious;   /* within window */
    int64_t first_ms, last_ms;  /* of the remembered messages (at most 64) */
    double memory;              /* spam memory, decayed to now */
};
int snowshoe_block_info(const void *data, size_t len, int64_t now, int64_t window_ms,
                        double halflife_ms, struct snowshoe_block_info *out);

/* What a saved domain row says. */
struct snowshoe_domain_info {
    unsigned blocks;            /* distinct blocks it came from within window */
    uint32_t messages, spam;    /* all remembered time */
    int64_t first_ms, last_ms;
};
int snowshoe_domain_info(const void *data, size_t len, int64_t now, int64_t window_ms,
                         struct snowshoe_domain_info *out);

/* The shared platforms file: "net CIDR" and "ptr .suffix" lines, '#'
 * comments. ptrs is NULL-terminated (for snowshoe_cfg.platform_ptrs).
 * Errors name "file:line: reason". */
struct snowshoe_platforms {
    struct cidrset *nets;
    char **ptrs;
    size_t nptrs;
};
int snowshoe_platforms_load(const char *path, struct snowshoe_platforms *out, char *err,
                            size_t errlen);
void snowshoe_platforms_clear(struct snowshoe_platforms *p);

#endif
