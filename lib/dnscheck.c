#include "dnscheck.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sbuf.h"
#include "xalloc.h"

/* Subject bits: RULES_CHECK_HELO/SENDER/FROM from rules.h, plus these. */
#define SUBJ_CLIENT 0x100u
#define SUBJ_URI    0x200u
#define SUBJ_TXN    (RULES_CHECK_SENDER | RULES_CHECK_FROM | SUBJ_URI)

/* ---- zone health ---- */

struct zstate {
    char *zone;
    int64_t until_ms;
    char why[160];
};

struct dnscheck_health {
    pthread_mutex_t mu;
    struct zstate *v;
    size_t n;
    void (*on_refused)(void);
};

void dnscheck_health_on_refused(struct dnscheck_health *h, void (*fn)(void))
{
    if (h)
        h->on_refused = fn;
}

struct dnscheck_health *dnscheck_health_new(void)
{
    struct dnscheck_health *h = xcalloc(1, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    return h;
}

void dnscheck_health_free(struct dnscheck_health *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i].zone);
    free(h->v);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static struct zstate *zfind(struct dnscheck_health *h, const char *zone)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcasecmp(h->v[i].zone, zone))
            return &h->v[i];
    return NULL;
}

void dnscheck_health_skip(struct dnscheck_health *h, const char *zone, int64_t until_ms,
                          const char *why)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    struct zstate *z = zfind(h, zone);
    if (!z) {
        h->v = xrealloc(h->v, (h->n + 1) * sizeof *h->v);
        z = &h->v[h->n++];
        memset(z, 0, sizeof *z);
        z->zone = xstrdup(zone);
    }
    bool fresh = z->until_ms == 0;   /* one log line per incident */
    z->until_ms = until_ms;
    snprintf(z->why, sizeof z->why, "%s", why);
    pthread_mutex_unlock(&h->mu);
    if (fresh)
        log_msg(LOG_WARNING, "blocklist %s skipped: %s", zone, why);
}

void dnscheck_health_ok(struct dnscheck_health *h, const char *zone)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    struct zstate *z = zfind(h, zone);
    bool was = z && z->until_ms;
    if (z)
        z->until_ms = 0;
    pthread_mutex_unlock(&h->mu);
    if (was)
        log_msg(LOG_NOTICE, "blocklist %s answers correctly again: used again", zone);
}

bool dnscheck_health_skipped(struct dnscheck_health *h, const char *zone, int64_t now_ms,
                             char *why, size_t whylen)
{
    if (!h)
        return false;
    bool skip = false;
    pthread_mutex_lock(&h->mu);
    struct zstate *z = zfind(h, zone);
    if (z && z->until_ms) {
        if (now_ms < z->until_ms) {
            skip = true;
            if (why)
                snprintf(why, whylen, "%s", z->why);
        } else {
            z->until_ms = 0;   /* the pause is over: try the zone again */
        }
    }
    pthread_mutex_unlock(&h->mu);
    return skip;
}

/* ---- probes ---- */

int dnscheck_probe(struct dns *d, const struct dnsbl_zone *z, int64_t deadline_ms,
                   char *why, size_t whylen)
{
    char yes[300], no[300];
    int rc;
    if (z->kind == DNSBL_IP) {
        struct ip a2, a1;
        ip_parse("127.0.0.2", &a2);
        ip_parse("127.0.0.1", &a1);
        rc = dnsbl_qname_ip(&a2, z->name, yes, sizeof yes) |
             dnsbl_qname_ip(&a1, z->name, no, sizeof no);
    } else {
        rc = dnsbl_qname_domain("test", z->name, yes, sizeof yes) |
             dnsbl_qname_domain("invalid", z->name, no, sizeof no);
    }
    if (rc < 0) {
        snprintf(why, whylen, "zone name too long for a query");
        return 0;
    }
    /* both at once: a probe costs one round trip */
    struct dns_req *ry = dns_query(d, yes, DNS_T_A, deadline_ms);
    struct dns_req *rn = dns_query(d, no, DNS_T_A, deadline_ms);
    char cy[64] = "", cn[64] = "";
    enum dnsbl_outcome oy = DNSBL_DEGRADED, on = DNSBL_DEGRADED;
    if (ry)
        oy = dnsbl_classify(z, dns_wait(ry, deadline_ms), cy, sizeof cy);
    if (rn)
        on = dnsbl_classify(z, dns_wait(rn, deadline_ms), cn, sizeof cn);
    dns_req_free(ry);
    dns_req_free(rn);
    if (oy == DNSBL_REFUSED || on == DNSBL_REFUSED) {
        snprintf(why, whylen, "answers the error code %s (queries refused)",
                 oy == DNSBL_REFUSED ? cy : cn);
        return 0;
    }
    if (on == DNSBL_LISTED) {
        snprintf(why, whylen, "lists the test point %s that must not be listed (answer %s)",
                 no, cn);
        return 0;
    }
    if (oy == DNSBL_DEGRADED || on == DNSBL_DEGRADED) {
        snprintf(why, whylen, "no answer in time for the test points");
        return -1;
    }
    if (oy != DNSBL_LISTED) {
        snprintf(why, whylen, "does not list the test point %s", yes);
        return 0;
    }
    snprintf(why, whylen, "%s listed (%s), %s not listed", yes, cy, no);
    return 1;
}

/* ---- one connection's lookups ---- */

struct item {
    const struct rules_zone *rz;
    unsigned subj;
    char qname[300];
    int64_t start_ms, deadline_ms;
    struct dns_req *req, *txt_req;
    bool done, skipped;
    enum dnsbl_outcome outcome;
    char code[64];
    char *txt;
    int ttl;
    int64_t latency_ms;
    bool cached;
};

struct dnscheck {
    struct dns *d;
    const struct ruleset *rs;
    struct dnscheck_health *h;
    int timeout_ms;
    struct item *v;
    size_t n, cap;
};

struct dnscheck *dnscheck_new(struct dns *d, const struct ruleset *rs,
                              struct dnscheck_health *h, int timeout_ms)
{
    struct dnscheck *dc = xcalloc(1, sizeof *dc);
    dc->d = d;
    dc->rs = rs;
    dc->h = h;
    dc->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    return dc;
}

static void item_clear(struct item *it)
{
    dns_req_free(it->req);
    dns_req_free(it->txt_req);
    free(it->txt);
    memset(it, 0, sizeof *it);
}

void dnscheck_free(struct dnscheck *dc)
{
    if (!dc)
        return;
    for (size_t i = 0; i < dc->n; i++)
        item_clear(&dc->v[i]);
    free(dc->v);
    free(dc);
}

size_t dnscheck_count(const struct dnscheck *dc)
{
    return dc ? dc->n : 0;
}

/* Start (or join) the lookup of qname in zone rz for subject bit subj. */
static void start(struct dnscheck *dc, const struct rules_zone *rz, const char *qname,
                  unsigned subj)
{
    for (size_t i = 0; i < dc->n; i++)
        if (dc->v[i].rz == rz && !strcasecmp(dc->v[i].qname, qname)) {
            dc->v[i].subj |= subj;   /* same name asked once: HELO = sender domain */
            return;
        }
    if (dc->n == dc->cap) {
        dc->cap = dc->cap ? dc->cap * 2 : 8;
        dc->v = xrealloc(dc->v, dc->cap * sizeof *dc->v);
    }
    struct item *it = &dc->v[dc->n++];
    memset(it, 0, sizeof *it);
    it->rz = rz;
    it->subj = subj;
    it->ttl = -1;
    snprintf(it->qname, sizeof it->qname, "%s", qname);
    it->start_ms = dns_now_ms();
    int tmo = rz->z.timeout_ms > 0 ? rz->z.timeout_ms : dc->timeout_ms;
    it->deadline_ms = it->start_ms + tmo;
    char why[160];
    if (dnscheck_health_skipped(dc->h, rz->z.name, it->start_ms, why, sizeof why)) {
        it->skipped = it->done = true;
        snprintf(it->code, sizeof it->code, "%.60s", why);
        return;
    }
    it->req = dns_query(dc->d, qname, DNS_T_A, it->deadline_ms);
    if (!it->req) {
        it->done = true;
        it->outcome = DNSBL_DEGRADED;
        snprintf(it->code, sizeof it->code, "bad query name");
    }
}

void dnscheck_client(struct dnscheck *dc, const struct ip *client)
{
    if (!dc || !dc->d || !client)
        return;
    for (size_t i = 0; i < dc->rs->nzones; i++) {
        const struct rules_zone *rz = &dc->rs->zones[i];
        char q[300];
        if (rz->z.kind == DNSBL_IP && dnsbl_qname_ip(client, rz->z.name, q, sizeof q) == 0)
            start(dc, rz, q, SUBJ_CLIENT);
    }
}

void dnscheck_domain(struct dnscheck *dc, const char *domain, unsigned which)
{
    if (!dc || !dc->d || !domain || !*domain)
        return;
    struct ip lit;
    if (domain[0] == '[' || ip_parse(domain, &lit) == 0)
        return;   /* an address literal is no domain to look up */
    for (size_t i = 0; i < dc->rs->nzones; i++) {
        const struct rules_zone *rz = &dc->rs->zones[i];
        char q[300];
        if (rz->z.kind == DNSBL_DOMAIN && (rz->check & which) &&
            dnsbl_qname_domain(domain, rz->z.name, q, sizeof q) == 0)
            start(dc, rz, q, which);
    }
}

void dnscheck_uri(struct dnscheck *dc, const char *host, bool is_ip)
{
    if (!dc || !dc->d || !host || !*host)
        return;
    struct ip a;
    if (is_ip && ip_parse(host, &a) < 0)
        return;
    for (size_t i = 0; i < dc->rs->nzones; i++) {
        const struct rules_zone *rz = &dc->rs->zones[i];
        char q[300];
        if (rz->z.kind != DNSBL_URI)
            continue;
        int rc = is_ip ? dnsbl_qname_ip(&a, rz->z.name, q, sizeof q)
                       : dnsbl_qname_domain(host, rz->z.name, q, sizeof q);
        if (rc == 0)
            start(dc, rz, q, SUBJ_URI);
    }
}

void dnscheck_reset(struct dnscheck *dc, bool helo_too)
{
    if (!dc)
        return;
    unsigned drop = SUBJ_TXN | (helo_too ? (unsigned)RULES_CHECK_HELO : 0u);
    size_t o = 0;
    for (size_t i = 0; i < dc->n; i++) {
        dc->v[i].subj &= ~drop;
        if (!dc->v[i].subj) {
            item_clear(&dc->v[i]);
            continue;
        }
        if (o != i)
            dc->v[o] = dc->v[i];
        o++;
    }
    dc->n = o;
}

static void harvest(struct dnscheck *dc, struct item *it)
{
    const struct dns_result *r = dns_wait(it->req, it->deadline_ms);
    it->outcome = dnsbl_classify(&it->rz->z, r, it->code, sizeof it->code);
    it->ttl = r->status == DNS_TIMEOUT ? -1 : r->ttl;
    it->cached = r->cached;
    /* an answer knows its own latency; a timeout lasted until now */
    bool answered = r->status == DNS_OK || r->status == DNS_NXDOMAIN || r->status == DNS_NODATA;
    it->latency_ms = r->cached ? 0 : answered ? r->latency_ms : dns_now_ms() - it->start_ms;
    if (it->outcome == DNSBL_DEGRADED && !it->code[0])
        snprintf(it->code, sizeof it->code, "%s", dns_status_name(r->status));
    /* an answer outside the zone's codes is clean, but keep it as evidence */
    if (it->outcome == DNSBL_CLEAN && !it->code[0] && r->status == DNS_OK && r->nrr)
        ip_format(&r->rr[0].addr, it->code, sizeof it->code);
    it->done = true;
    if (it->outcome == DNSBL_REFUSED && it->rz->z.kind == DNSBL_IP) {
        char why[160];
        snprintf(why, sizeof why, "answered the error code %.20s for %.80s (queries refused)",
                 it->code, it->qname);
        dnscheck_health_skip(dc->h, it->rz->z.name, dns_now_ms() + DNSCHECK_SKIP_MS, why);
    } else if (it->outcome == DNSBL_REFUSED && dc->h && dc->h->on_refused) {
        dc->h->on_refused();   /* a name from the message: re-test, don't trust it */
    }
    if (it->outcome == DNSBL_LISTED && it->rz->z.txt && dns_now_ms() < it->deadline_ms)
        it->txt_req = dns_query(dc->d, it->qname, DNS_T_TXT, it->deadline_ms);
}

void dnscheck_wait(struct dnscheck *dc)
{
    if (!dc)
        return;
    /* every query is already in flight, so waiting on them in turn costs
     * the slowest one, not their sum */
    for (size_t i = 0; i < dc->n; i++)
        if (!dc->v[i].done)
            harvest(dc, &dc->v[i]);
    for (size_t i = 0; i < dc->n; i++) {
        struct item *it = &dc->v[i];
        if (!it->txt_req)
            continue;
        const struct dns_result *r = dns_wait(it->txt_req, it->deadline_ms);
        if (r->status == DNS_OK && r->nrr && r->rr[0].text)
            it->txt = xstrndup(r->rr[0].text, 400);
        dns_req_free(it->txt_req);
        it->txt_req = NULL;
    }
}

static const char *kind_name(enum dnsbl_kind k)
{
    return k == DNSBL_IP ? "ip" : k == DNSBL_DOMAIN ? "domain" : "uri";
}

static void subj_names(unsigned s, struct sbuf *b)
{
    static const struct { unsigned bit; const char *name; } names[] = {
        { SUBJ_CLIENT, "client" }, { RULES_CHECK_HELO, "helo" },
        { RULES_CHECK_SENDER, "sender" }, { RULES_CHECK_FROM, "from" }, { SUBJ_URI, "uri" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (s & names[i].bit) {
            if (b->len)
                sbuf_addc(b, ',');
            sbuf_adds(b, names[i].name);
        }
}

bool dnscheck_evidence(const struct dnscheck *dc, struct verdict *v)
{
    bool degraded = false;
    if (!dc)
        return false;
    for (size_t i = 0; i < dc->n; i++) {
        const struct item *it = &dc->v[i];
        bool first_listing = false;
        if (it->done && !it->skipped && it->outcome == DNSBL_LISTED) {
            first_listing = true;
            for (size_t j = 0; j < i; j++)
                if (dc->v[j].rz == it->rz && !dc->v[j].skipped &&
                    dc->v[j].outcome == DNSBL_LISTED)
                    first_listing = false;   /* a zone weighs once per message */
        }
        struct sbuf subj = SBUF_INIT;
        subj_names(it->subj, &subj);
        bool deg = !it->done || (!it->skipped && it->outcome == DNSBL_DEGRADED);
        degraded |= deg;
        struct verdict_lookup l = {
            .zone = it->rz->z.name,
            .kind = (char *)kind_name(it->rz->z.kind),
            .subject = (char *)sbuf_str(&subj),
            .query = (char *)it->qname,
            .outcome = (char *)(it->skipped ? "skipped"
                                : !it->done ? "degraded"
                                            : dnsbl_outcome_name(it->outcome)),
            .answer = (char *)it->code,
            .txt = it->txt,
            .ttl = it->ttl,
            .latency_ms = it->latency_ms,
            .cached = it->cached,
            .weight = first_listing ? it->rz->z.weight : 0,
        };
        verdict_add_lookup(v, &l);
        sbuf_free(&subj);
    }
    return degraded;
}
