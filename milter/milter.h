/* milter: state shared between the daemon's startup code (main.c) and the
 * libmilter callbacks (callbacks.c). Only this folder includes mfapi.h;
 * every decision is made by lib/. */
#ifndef KANJIKI_MILTER_H
#define KANJIKI_MILTER_H
#include <pthread.h>
#include <stdbool.h>

#include "dns.h"
#include "dnscheck.h"
#include "policy.h"
#include "snowshoe.h"
#include "popauth.h"
#include "retrymem.h"
#include "spf.h"
#include "store.h"
#include "uri.h"

struct kj_daemon {
    pthread_mutex_t lock;           /* guards policy */
    struct policy *policy;          /* current; connections hold their own ref */
    struct store_writer *writer;
    struct popauth_cache *grants;
    struct dns *dns;                /* the one resolver (NULL: DNS checks off) */
    struct dnscheck_health *health; /* blocklist zones skipped for a while */
    struct spf *spf;
    struct psl *psl;                /* public suffixes for link domains */
    char hostname[256];             /* authserv-id when the MTA sends no {j} */
    int dns_timeout_ms;             /* dns_timeout at start (restart only) */
    struct snowshoe *snow;          /* the cluster detector, or NULL (off) */
    struct retrymem *retry;         /* messages it tempfailed, for their retry */
    struct snowsig_tlds *tlds;      /* RULES/risky-tlds.list, or NULL */
    struct snowshoe_platforms plat; /* RULES/platforms.list */
    int active;                     /* connections between connect and close */
    int busy;                       /* of those, inside a MAIL transaction */
    int stopping;                   /* SIGTERM seen: take no new work */
};

extern struct kj_daemon kj;

/* A new reference to the current policy (never NULL once started). */
struct policy *kj_policy_get(void);
/* Start the resolver, SPF, public suffixes and the zone probe thread
 * (checks.c). Returns 0, or -1 when no resolver could be made. */
int kj_checks_start(const struct conf *c);
/* The snowshoe detector and its lists from the rules directory (restart
 * only); NULL psl is fine. Its windows come from the rules. */
void kj_snowshoe_start(const struct policy *p);
/* A reloaded policy's windows (no-op when the detector is off). */
void kj_snowshoe_configure(const struct ruleset *rs);
void kj_snowshoe_stop(void);
/* Probe every zone again now (after a reload). */
void kj_probe_now(void);
/* After libmilter has stopped: no connection uses them any more. */
void kj_checks_stop(void);
/* Register the callbacks with libmilter. Returns 0 or -1. */
int kj_register(void);

#endif
