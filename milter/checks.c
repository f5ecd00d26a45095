/* checks: the daemon's shared spam-check machinery: the one resolver, the
 * SPF evaluator, the public suffix list, and a thread that probes every
 * blocklist zone with the RFC 5782 test points at start and then every
 * PROBE_EVERY_MS, so that a broken or refusing list is skipped (and said
 * so in the log) instead of being believed. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "milter.h"
#include "xalloc.h"

#define PROBE_EVERY_MS (15 * 60 * 1000)
#define PROBE_MIN_GAP_MS 5000
#define PSL_PATH "/usr/share/publicsuffix/public_suffix_list.dat"

/* The probes have a resolver of their own, without a cache: a re-test must
 * ask the list now, not remember its answer from minutes ago. */
static struct dns *probe_dns;
static pthread_t probe_tid;
static bool probe_running;
static pthread_mutex_t probe_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t probe_cv = PTHREAD_COND_INITIALIZER;
static bool probe_stop;
static bool probe_kick;   /* kj_probe_now: probe again before the period ends */

static void probe_all(void)
{
    struct policy *p = kj_policy_get();
    const struct ruleset *rs = p->rules;
    for (size_t i = 0; i < rs->nzones && !probe_stop; i++) {
        const struct dnsbl_zone *z = &rs->zones[i].z;
        int tmo = z->timeout_ms > 0 ? z->timeout_ms : kj.dns_timeout_ms;
        char why[300];
        int ok = dnscheck_probe(probe_dns, z, dns_now_ms() + tmo, why, sizeof why);
        if (ok == 1)
            dnscheck_health_ok(kj.health, z->name);
        else if (ok == 0)
            dnscheck_health_skip(kj.health, z->name, dns_now_ms() + PROBE_EVERY_MS + 60000,
                                 why);
        else
            log_msg(LOG_WARNING, "blocklist %s: %s; used, its lookups may be degraded",
                    z->name, why);
    }
    policy_unref(p);
}

static void *probe_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&probe_mu);
    while (!probe_stop) {
        probe_kick = false;   /* kicks from now on ask for another probe */
        pthread_mutex_unlock(&probe_mu);
        probe_all();
        pthread_mutex_lock(&probe_mu);
        struct timespec gap, until;
        clock_gettime(CLOCK_REALTIME, &gap);
        until = gap;
        until.tv_sec += PROBE_EVERY_MS / 1000;
        /* not more often than PROBE_MIN_GAP_MS, whatever kicks: error
         * answers that kick a probe can be provoked by mail */
        gap.tv_sec += PROBE_MIN_GAP_MS / 1000;
        while (!probe_stop && pthread_cond_timedwait(&probe_cv, &probe_mu, &gap) != ETIMEDOUT)
            ;
        while (!probe_stop && !probe_kick)
            if (pthread_cond_timedwait(&probe_cv, &probe_mu, &until) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&probe_mu);
    return NULL;
}

void kj_probe_now(void)
{
    pthread_mutex_lock(&probe_mu);
    probe_kick = true;
    pthread_cond_signal(&probe_cv);
    pthread_mutex_unlock(&probe_mu);
}

/* ---- the snowshoe detector and its state in the database ---- */

#define SNOW_SAVE_MS 30000                      /* how often changes are saved */
/* State older than the longest window the detector looks back (and a day)
 * is dropped from the database; set with the windows (a reload on the
 * main thread, read by the saving thread: atomic). */
static int64_t snow_keep_ms = 91LL * 24 * 3600 * 1000;

static pthread_t snow_tid;
static bool snow_running, snow_stop;
static pthread_mutex_t snow_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t snow_cv = PTHREAD_COND_INITIALIZER;
static char *snow_db;

static int import_row(int kind, uint64_t key, const char *name, const void *data, size_t len,
                      int64_t last_ms, void *arg)
{
    (void)last_ms;
    size_t *n = arg;
    if (snowshoe_import(kj.snow, kind, key, name, data, len) == 0)
        (*n)++;
    return 0;
}

/* Save what changed; on a failure, everything next time (nothing lost). */
static void snow_save(bool *all)
{
    struct snowshoe_rows rows;
    snowshoe_export(kj.snow, !*all, &rows);
    struct store *st;
    char err[512];
    static bool failing;
    int rc = store_open(snow_db, 0, 2000, &st, err, sizeof err);
    if (rc == 0) {
        rc = store_snowshoe_save(st, &rows, tu_now_ms() - __atomic_load_n(&snow_keep_ms, __ATOMIC_RELAXED), err, sizeof err);
        store_close(st);
    }
    if (rc < 0 && !failing)
        log_msg(LOG_ERR, "snowshoe state not saved: %s; retrying every %d s", err,
                SNOW_SAVE_MS / 1000);
    else if (rc == 0 && failing)
        log_msg(LOG_NOTICE, "snowshoe state saved again");
    failing = rc < 0;
    *all = rc < 0;
    snowshoe_rows_free(&rows);
}

static void *snow_thread(void *arg)
{
    (void)arg;
    bool all = false;
    pthread_mutex_lock(&snow_mu);
    while (!snow_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += SNOW_SAVE_MS / 1000;
        while (!snow_stop && pthread_cond_timedwait(&snow_cv, &snow_mu, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&snow_mu);
        snow_save(&all);   /* off the message path: the detector is not held */
        pthread_mutex_lock(&snow_mu);
    }
    pthread_mutex_unlock(&snow_mu);
    return NULL;
}

/* Attempts remembered for their retry: 16 bytes each. */
#define RETRY_SLOTS 65536

static void snow_cfg(const struct ruleset *rs, struct snowshoe_cfg *cfg)
{
    snowshoe_cfg_defaults(cfg);
    cfg->psl = kj.psl;
    cfg->tlds = kj.tlds;
    cfg->platform_nets = kj.plat.nets;
    cfg->platform_ptrs = (const char *const *)kj.plat.ptrs;
    rules_snowshoe_cfg(rs, cfg);
    int64_t keep = cfg->long_window_ms;   /* rules_check: window <= long window */
    if (cfg->new_domain_ms > keep)
        keep = cfg->new_domain_ms;
    if (cfg->aged_domain_ms > keep)
        keep = cfg->aged_domain_ms;
    __atomic_store_n(&snow_keep_ms, keep + 24LL * 3600 * 1000, __ATOMIC_RELAXED);
}

void kj_snowshoe_configure(const struct ruleset *rs)
{
    if (!kj.snow)
        return;
    struct snowshoe_cfg cfg;
    snow_cfg(rs, &cfg);
    snowshoe_set_windows(kj.snow, &cfg);
}

void kj_snowshoe_start(const struct policy *p)
{
    const struct conf *c = p->conf;
    char path[4200], err[512];
    if (c->rules_dir) {
        snprintf(path, sizeof path, "%s/risky-tlds.list", c->rules_dir);
        if (access(path, F_OK) == 0 && !(kj.tlds = snowsig_tlds_load(path, err, sizeof err)))
            log_msg(LOG_ERR, "snowshoe: %s (TLDs not weighed)", err);
        snprintf(path, sizeof path, "%s/platforms.list", c->rules_dir);
        if (access(path, F_OK) == 0 &&
            snowshoe_platforms_load(path, &kj.plat, err, sizeof err) < 0)
            log_msg(LOG_ERR, "snowshoe: %s (shared platforms not recognised)", err);
    }
    struct snowshoe_cfg cfg;
    snow_cfg(p->rules, &cfg);
    kj.snow = snowshoe_new(&cfg);
    kj.retry = retrymem_new(RETRY_SLOTS);
    /* what the last run knew */
    snow_db = xstrdup(c->database);
    struct store *st;
    size_t n = 0;
    if (store_open(snow_db, STORE_NOCREATE, 2000, &st, err, sizeof err) == 0) {
        if (store_snowshoe_load(st, -1, tu_now_ms() - __atomic_load_n(&snow_keep_ms, __ATOMIC_RELAXED), import_row, &n, err,
                                sizeof err) < 0)
            log_msg(LOG_ERR, "snowshoe state not loaded: %s; starting empty", err);
        store_close(st);
    }
    log_msg(LOG_NOTICE, "snowshoe detector on (%s); %zu saved entries loaded",
            conf_snowshoe_name(c->snowshoe), n);
    snow_stop = false;
    snow_running = pthread_create(&snow_tid, NULL, snow_thread, NULL) == 0;
}

void kj_snowshoe_stop(void)
{
    if (snow_running) {
        pthread_mutex_lock(&snow_mu);
        snow_stop = true;
        pthread_cond_signal(&snow_cv);
        pthread_mutex_unlock(&snow_mu);
        pthread_join(snow_tid, NULL);
        snow_running = false;
        bool all = false;
        snow_save(&all);   /* the last changes */
    }
    free(snow_db);
    snow_db = NULL;
    snowshoe_free(kj.snow);
    retrymem_free(kj.retry);
    kj.retry = NULL;
    snowsig_tlds_free(kj.tlds);
    snowshoe_platforms_clear(&kj.plat);
    kj.snow = NULL;
    kj.tlds = NULL;
}

int kj_checks_start(const struct conf *c)
{
    if (gethostname(kj.hostname, sizeof kj.hostname - 1) < 0 || !kj.hostname[0])
        snprintf(kj.hostname, sizeof kj.hostname, "localhost");
    /* c-ares doubles the wait on each try: T/3 then 2T/3, so a retry (or
     * a second server) still fits in T; the deadlines themselves are ours
     * (every wait is cut there). T is the longest deadline in use at start:
     * dns_timeout or a zone's own longer timeout. */
    int64_t longest = c->dns_timeout_ms;
    for (size_t i = 0; kj.policy && i < kj.policy->rules->nzones; i++)
        if (kj.policy->rules->zones[i].z.timeout_ms > longest)
            longest = kj.policy->rules->zones[i].z.timeout_ms;
    int per_try = (int)(longest / 3);
    struct dns_config dc = {
        .servers = (const char *const *)c->dns_servers.v,
        .nservers = c->dns_servers.n,
        .timeout_ms = per_try < 100 ? 100 : per_try,
        .tries = 2,
        .cache_max = 50000,
        .neg_ttl_max = 300,
    };
    char err[256];
    kj.dns = dns_new(&dc, err, sizeof err);
    if (!kj.dns) {
        log_msg(LOG_ERR, "DNS resolver: %s", err);
        return -1;
    }
    kj.dns_timeout_ms = (int)c->dns_timeout_ms;
    dc.cache_max = 0;
    probe_dns = dns_new(&dc, err, sizeof err);
    kj.health = dnscheck_health_new();
    dnscheck_health_on_refused(kj.health, kj_probe_now);
    kj.spf = spf_new(kj.dns, kj.hostname, err, sizeof err);
    if (!kj.spf)
        log_msg(LOG_ERR, "SPF disabled: %s", err);
    err[0] = 0;
    kj.psl = psl_load(PSL_PATH, err, sizeof err);
    if (err[0])
        log_msg(LOG_WARNING, "public suffix list: %s", err);
    probe_stop = false;
    probe_running = probe_dns && pthread_create(&probe_tid, NULL, probe_thread, NULL) == 0;
    if (!probe_running)
        log_msg(LOG_WARNING, "cannot start the blocklist probe thread");
    return 0;
}

void kj_checks_stop(void)
{
    if (probe_running) {
        pthread_mutex_lock(&probe_mu);
        probe_stop = true;
        pthread_cond_signal(&probe_cv);
        pthread_mutex_unlock(&probe_mu);
        pthread_join(probe_tid, NULL);
        probe_running = false;
    }
    spf_free(kj.spf);
    psl_free(kj.psl);
    dnscheck_health_free(kj.health);
    dns_free(kj.dns);
    dns_free(probe_dns);
    probe_dns = NULL;
    kj.spf = NULL;
    kj.psl = NULL;
    kj.health = NULL;
    kj.dns = NULL;
}
