/* dns: see dns.h. One resolver thread owns the c-ares channel (c-ares 1.18
 * is not thread-safe); everything shared with callers is under one mutex:
 * the send queue, the queries in flight, the cache and the counters.
 *
 * A query in flight (struct flight) is shared by every request for the same
 * (name, type) made while it is pending, so that many connections asking
 * one DNSBL name cost one packet. An answer (struct answer) is immutable
 * and reference counted: the cache and every request it was handed to
 * share it, so a cache hit copies at most the record array (for TTLs
 * counted down).
 *
 * At most MAX_OUTSTANDING queries are at c-ares at once, the rest wait in
 * the queue: a burst of a thousand answers overflows a default-sized UDP
 * socket buffer, and a lost answer costs a whole timeout.
 *
 * A request's result is decided once, under the mutex: by the answer, or
 * by a timeout when its own deadline (dns_query's deadline_ms) has passed,
 * whichever comes first; the result is never written again. A dns_wait
 * whose deadline is earlier than the request's returns a separate
 * DNS_TIMEOUT result and leaves the request pending, so a later wait or
 * poll may still get the answer. Both stay valid until dns_req_free.
 *
 * Lifetime: every request holds a reference on the struct dns (its mutex
 * above all), so a request freed after dns_free is still safe; dns_free
 * stops the thread, ends the pending requests with DNS_ERROR and frees the
 * rest when the last request is gone.
 *
 * Counters: queries and cache_hits per dns_query call, sent per packet
 * handed to c-ares; timeouts, servfails and errors per request that ended
 * so (a request is counted once, however many waits timed out). */
#include "dns.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "errbuf.h"
#include "xalloc.h"

#define NAME_LEN_MAX 253       /* text form, without the trailing dot */
#define LABEL_LEN_MAX 63
#define NEG_TTL_DEFAULT 60     /* negative answer without an SOA */
#define TTL_CAP 86400          /* nothing is kept longer, whatever the TTL */
#define CHAIN_MAX 8            /* CNAMEs followed inside one answer */
#define SEND_BURST 64          /* queries sent between two reads */
#define MAX_OUTSTANDING 256    /* queries at c-ares at once: more would
                                  bring back bursts of answers that overflow
                                  a default-sized socket buffer (212 KB) */
#define SOCK_RCVBUF (1 << 20)  /* answers to many queries at once (the
                                  kernel caps it at net.core.rmem_max) */
#define DNS_CLASS_IN 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_SOA 6

/* ---- answers ---- */

struct answer {
    int refs;                /* atomic */
    enum dns_status status;
    int ttl;                 /* as in struct dns_result */
    int life;                /* seconds to cache; 0 = not cached */
    struct dns_rr *rr;
    size_t nrr;
    char error[sizeof ((struct dns_result *)0)->error];
};

static struct answer *answer_new(enum dns_status st, const char *error)
{
    struct answer *a = xcalloc(1, sizeof *a);
    a->refs = 1;
    a->status = st;
    if (error)
        snprintf(a->error, sizeof a->error, "%s", error);
    return a;
}

static struct answer *answer_ref(struct answer *a)
{
    __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
    return a;
}

static void answer_unref(struct answer *a)
{
    if (!a || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < a->nrr; i++)
        free(a->rr[i].text);
    free(a->rr);
    free(a);
}

/* ---- parsing an answer ---- */

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 2181 8: a TTL with the top bit set is read as zero. */
static int ttl_value(uint32_t v)
{
    return v > 0x7fffffffu ? 0 : (int)v;
}

/* ASCII only: the locale must not decide whether two names are equal. */
static int name_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
        if (!x)
            return 1;
    }
}

/* A (compressed) name at p, copied into *out (ours to free) when out is
 * given; its encoded length in *used. ares_expand_name follows pointers
 * with loop and bounds checks. */
static int read_name(const unsigned char *p, const unsigned char *abuf, int alen,
                     char **out, long *used)
{
    char *s = NULL;
    if (p >= abuf + alen || ares_expand_name(p, abuf, alen, &s, used) != ARES_SUCCESS)
        return -1;
    if (out)
        *out = xstrdup(s);
    ares_free_string(s);
    return 0;
}

/* One resource record as it sits in the message. */
struct rrview {
    char *owner;
    unsigned type, cls;
    int ttl;
    const unsigned char *rd;
    unsigned rdlen;
};

/* Read count records from *pp; views are appended to *v (owners owned). */
static int read_section(const unsigned char **pp, unsigned count, const unsigned char *abuf,
                        int alen, struct rrview **v, size_t *n)
{
    const unsigned char *p = *pp, *end = abuf + alen;
    for (unsigned i = 0; i < count; i++) {
        char *owner = NULL;
        long used = 0;
        if (read_name(p, abuf, alen, &owner, &used) < 0)
            return -1;
        p += used;
        if (end - p < 10) {
            free(owner);
            return -1;
        }
        struct rrview rv = { owner, get16(p), get16(p + 2), ttl_value(get32(p + 4)),
                             p + 10, get16(p + 8) };
        p += 10;
        if ((size_t)(end - p) < rv.rdlen) {
            free(owner);
            return -1;
        }
        p += rv.rdlen;
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = rv;
    }
    *pp = p;
    return 0;
}

static void views_free(struct rrview *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].owner);
    free(v);
}

/* Decode the data of one record of the asked type into rr. */
static int decode_rr(const struct rrview *v, const unsigned char *abuf, int alen,
                     struct dns_rr *rr)
{
    memset(rr, 0, sizeof *rr);
    rr->type = (enum dns_type)v->type;
    rr->ttl = v->ttl;
    long used = 0;
    switch (v->type) {
    case DNS_T_A:
        if (v->rdlen != 4)
            return -1;
        rr->addr.b[10] = rr->addr.b[11] = 0xff;   /* IPv4-mapped, as ip.h */
        memcpy(rr->addr.b + 12, v->rd, 4);
        return 0;
    case DNS_T_AAAA:
        if (v->rdlen != 16)
            return -1;
        memcpy(rr->addr.b, v->rd, 16);
        return 0;
    case DNS_T_TXT:
    case DNS_T_SPF: {
        /* the character-strings of one record joined (RFC 7208 3.3) */
        char *t = xmalloc(v->rdlen + 1);
        size_t n = 0;
        for (unsigned off = 0; off < v->rdlen;) {
            unsigned len = v->rd[off++];
            if (len > v->rdlen - off) {
                free(t);
                return -1;
            }
            memcpy(t + n, v->rd + off, len);
            n += len;
            off += len;
        }
        t[n] = '\0';
        rr->text = t;
        return 0;
    }
    case DNS_T_PTR:
        if (read_name(v->rd, abuf, alen, &rr->text, &used) < 0 || (unsigned long)used > v->rdlen)
            break;
        return 0;
    case DNS_T_MX:
        if (v->rdlen < 3)
            return -1;
        rr->pref = (int)get16(v->rd);
        if (read_name(v->rd + 2, abuf, alen, &rr->text, &used) < 0 ||
            (unsigned long)used > v->rdlen - 2)
            break;
        return 0;
    default:
        return -1;
    }
    free(rr->text);
    rr->text = NULL;
    return -1;
}

/* RFC 2308 5: a negative answer lives min(SOA TTL, SOA minimum), from the
 * authority section; capped by neg_max. */
static int negative_ttl(const struct rrview *ns, size_t nns, const unsigned char *abuf,
                        int alen, int neg_max)
{
    int ttl = NEG_TTL_DEFAULT;
    for (size_t i = 0; i < nns; i++) {
        const struct rrview *v = &ns[i];
        if (v->type != DNS_TYPE_SOA || v->cls != DNS_CLASS_IN)
            continue;
        long u1 = 0, u2 = 0;
        if (read_name(v->rd, abuf, alen, NULL, &u1) < 0 ||
            read_name(v->rd + u1, abuf, alen, NULL, &u2) < 0 ||
            (unsigned long)(u1 + u2 + 20) > v->rdlen)
            continue;
        int minimum = ttl_value(get32(v->rd + u1 + u2 + 16));
        ttl = v->ttl < minimum ? v->ttl : minimum;
        break;
    }
    if (ttl > neg_max)
        ttl = neg_max;
    return ttl < 0 ? 0 : ttl;
}

static struct answer *malformed(void)
{
    return answer_new(DNS_ERROR, "malformed answer");
}

static struct answer *parse_answer(const unsigned char *abuf, int alen, const char *qname,
                                   unsigned qtype, int neg_max)
{
    if (!abuf || alen < 12)
        return malformed();
    unsigned rcode = abuf[3] & 0x0f;
    unsigned qd = get16(abuf + 4), an = get16(abuf + 6), ns = get16(abuf + 8);
    const unsigned char *p = abuf + 12;
    for (unsigned i = 0; i < qd; i++) {
        long used = 0;
        if (read_name(p, abuf, alen, NULL, &used) < 0 || abuf + alen - (p + used) < 4)
            return malformed();
        p += used + 4;
    }
    struct rrview *av = NULL, *nv = NULL;
    size_t nav = 0, nnv = 0, ntargets = 0;
    char *targets[CHAIN_MAX + 1];
    struct answer *a = NULL;
    if (read_section(&p, an, abuf, alen, &av, &nav) < 0 ||
        read_section(&p, ns, abuf, alen, &nv, &nnv) < 0) {
        a = malformed();
        goto out;
    }
    if (rcode == 2 || rcode == 5) {
        a = answer_new(DNS_SERVFAIL, rcode == 2 ? "server failure (SERVFAIL)" : "query refused (REFUSED)");
        goto out;
    }
    if (rcode != 0 && rcode != 3) {
        char msg[64];
        snprintf(msg, sizeof msg, "server answered rcode %u", rcode);
        a = answer_new(DNS_ERROR, msg);
        goto out;
    }
    /* the names the answer is about: qname and the CNAMEs it leads to;
     * a record for any other owner is not ours to believe */
    const char *chain[CHAIN_MAX + 1] = { qname };
    size_t nchain = 1;
    int ttl = 0x7fffffff;
    for (size_t i = 0; i < nav && nchain <= CHAIN_MAX; i++) {
        const struct rrview *v = &av[i];
        if (v->type != DNS_TYPE_CNAME || v->cls != DNS_CLASS_IN ||
            !name_eq(v->owner, chain[nchain - 1]))
            continue;
        long used = 0;
        if (read_name(v->rd, abuf, alen, &targets[ntargets], &used) < 0) {
            a = malformed();
            goto out;
        }
        const char *t = targets[ntargets++];
        bool seen = false;
        for (size_t k = 0; k < nchain; k++)
            seen = seen || name_eq(chain[k], t);
        if (seen)
            break;   /* a loop: what we have is all there is */
        chain[nchain++] = t;
        if (v->ttl < ttl)
            ttl = v->ttl;
        i = (size_t)-1;   /* CNAMEs need not come in order: look again */
    }
    if (rcode == 3) {
        a = answer_new(DNS_NXDOMAIN, NULL);
        a->ttl = a->life = negative_ttl(nv, nnv, abuf, alen, neg_max);
        goto out;
    }
    a = answer_new(DNS_OK, NULL);
    for (size_t i = 0; i < nav; i++) {
        const struct rrview *v = &av[i];
        bool ours = false;
        for (size_t k = 0; k < nchain && !ours; k++)
            ours = name_eq(v->owner, chain[k]);
        if (v->type != qtype || v->cls != DNS_CLASS_IN || !ours)
            continue;
        a->rr = xrealloc(a->rr, (a->nrr + 1) * sizeof *a->rr);
        if (decode_rr(v, abuf, alen, &a->rr[a->nrr]) < 0) {
            answer_unref(a);
            a = malformed();
            goto out;
        }
        if (v->ttl < ttl)
            ttl = v->ttl;
        a->nrr++;
    }
    if (a->nrr == 0) {
        a->status = DNS_NODATA;
        a->ttl = a->life = negative_ttl(nv, nnv, abuf, alen, neg_max);
    } else {
        a->ttl = ttl;
        a->life = ttl < TTL_CAP ? ttl : TTL_CAP;
    }
out:
    for (size_t i = 0; i < ntargets; i++)
        free(targets[i]);
    views_free(av, nav);
    views_free(nv, nnv);
    return a;
}

/* c-ares gave no usable message: map its status. */
static struct answer *status_answer(int status)
{
    char msg[96];
    switch (status) {
    case ARES_ESERVFAIL:
        return answer_new(DNS_SERVFAIL, "server failure (SERVFAIL)");
    case ARES_EREFUSED:
        return answer_new(DNS_SERVFAIL, "query refused (REFUSED)");
    case ARES_ETIMEOUT:
        return answer_new(DNS_TIMEOUT, "no answer from the DNS servers");
    case ARES_ECONNREFUSED:
        return answer_new(DNS_TIMEOUT, "DNS servers refused the connection");
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
        return answer_new(DNS_ERROR, "resolver stopped");
    default:
        snprintf(msg, sizeof msg, "c-ares: %s", ares_strerror(status));
        return answer_new(DNS_ERROR, msg);
    }
}

/* ---- hash table (cache entries and queries in flight) ---- */

struct hnode {
    struct hnode *hnext;
    char *name;          /* lower case, no trailing dot */
    uint32_t hash;
    unsigned type;
};

struct htab {
    struct hnode **b;
    size_t mask, n;
};

static uint32_t key_hash(const char *name, unsigned type)
{
    uint32_t h = 2166136261u ^ type;   /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static void ht_init(struct htab *t, size_t want)
{
    size_t nb = 16;
    while (nb < want && nb < ((size_t)1 << 20))
        nb <<= 1;
    t->b = xcalloc(nb, sizeof *t->b);
    t->mask = nb - 1;
    t->n = 0;
}

static struct hnode *ht_find(const struct htab *t, uint32_t hash, unsigned type, const char *name)
{
    for (struct hnode *n = t->b[hash & t->mask]; n; n = n->hnext)
        if (n->hash == hash && n->type == type && !strcmp(n->name, name))
            return n;
    return NULL;
}

static void ht_add(struct htab *t, struct hnode *n)
{
    if (t->n > t->mask && t->mask < ((size_t)1 << 22)) {   /* grow at load 1 */
        size_t nb = (t->mask + 1) * 2;
        struct hnode **b = xcalloc(nb, sizeof *b);
        for (size_t i = 0; i <= t->mask; i++)
            for (struct hnode *x = t->b[i], *next; x; x = next) {
                next = x->hnext;
                x->hnext = b[x->hash & (nb - 1)];
                b[x->hash & (nb - 1)] = x;
            }
        free(t->b);
        t->b = b;
        t->mask = nb - 1;
    }
    struct hnode **slot = &t->b[n->hash & t->mask];
    n->hnext = *slot;
    *slot = n;
    t->n++;
}

static void ht_del(struct htab *t, struct hnode *n)
{
    for (struct hnode **pp = &t->b[n->hash & t->mask]; *pp; pp = &(*pp)->hnext)
        if (*pp == n) {
            *pp = n->hnext;
            t->n--;
            return;
        }
}

/* ---- the resolver ---- */

struct dns_req;

struct flight {
    struct hnode h;              /* first: the table holds &h */
    struct dns_req *waiters;     /* requests still waiting for the answer */
    struct flight *qnext;        /* send queue */
    struct dns *d;
    bool sent;                   /* handed to c-ares (under mu) */
    bool abandoned;              /* sent, and nobody waits any more */
};

struct centry {
    struct hnode h;
    struct centry *prev, *next;  /* LRU, most recent first */
    int64_t expires;             /* dns_now_ms */
    struct answer *a;
};

struct sockw {
    ares_socket_t fd;
    bool r, w;
};

struct dns {
    /* set up by dns_new, read-only afterwards */
    ares_channel ch;
    int efd;
    size_t cache_max;
    int neg_ttl_max;
    pthread_t thread;
    pthread_condattr_t cattr;

    pthread_mutex_t mu;          /* everything below */
    int refs;                    /* dns_new's + one per live request */
    bool stopping;
    bool kicked;                 /* the eventfd has been written since the
                                    thread last took the queue */
    struct flight *qhead, *qtail;
    struct htab flights;
    struct htab cache;
    struct centry *lru_head, *lru_tail;
    struct dns_stats st;

    size_t outstanding;          /* handed to c-ares, not answered yet;
                                    written by the resolver thread only */
    size_t abandoned;            /* of those, how many nobody waits for
                                    (under mu): they do not count against
                                    MAX_OUTSTANDING, so a list that stops
                                    answering cannot starve the others */

    /* the resolver thread's own */
    struct sockw *socks;
    size_t nsocks, capsocks;
};

struct dns_req {
    struct dns *d;
    struct flight *f;            /* under d->mu; NULL once decided or left */
    struct dns_req *wprev, *wnext;
    unsigned type;
    int64_t start, deadline;
    int done;                    /* atomic: res is final */
    bool counted;                /* in the timeout/error counters */
    bool has_cv;
    pthread_cond_t cv;           /* made on the first blocking wait */
    struct answer *a;
    struct dns_rr *rrcopy;       /* cache hit: TTLs aged */
    struct dns_result res;
    struct dns_result tmo;       /* a wait that ended before the deadline */
};

int64_t dns_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

const char *dns_status_name(enum dns_status s)
{
    static const char *names[] = { "pending", "ok", "nxdomain", "nodata",
                                   "timeout", "servfail", "error" };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/* Lower-cased copy without the trailing dot; -1 for what cannot be a DNS
 * name. The backslash is refused too: c-ares reads it as an escape. */
static int normalize(const char *name, char out[NAME_LEN_MAX + 1])
{
    size_t len = strnlen(name, NAME_LEN_MAX + 2);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > NAME_LEN_MAX)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
        } else {
            if (c <= ' ' || c >= 0x7f || c == '\\' || ++label > LABEL_LEN_MAX)
                return -1;
        }
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (label == 0)
        return -1;
    out[len] = '\0';
    return 0;
}

static bool type_supported(unsigned t)
{
    return t == DNS_T_A || t == DNS_T_AAAA || t == DNS_T_TXT || t == DNS_T_SPF ||
           t == DNS_T_PTR || t == DNS_T_MX;
}

static void count_outcome(struct dns *d, struct dns_req *r, enum dns_status s)
{
    if (r->counted)
        return;
    if (s == DNS_TIMEOUT)
        d->st.timeouts++;
    else if (s == DNS_SERVFAIL)
        d->st.servfails++;
    else if (s == DNS_ERROR)
        d->st.errors++;
    else
        return;
    r->counted = true;
}

static void waiter_unlink(struct dns_req *r)
{
    struct flight *f = r->f;
    if (!f)
        return;
    if (r->wprev)
        r->wprev->wnext = r->wnext;
    else
        f->waiters = r->wnext;
    if (r->wnext)
        r->wnext->wprev = r->wprev;
    r->f = NULL;
    r->wprev = r->wnext = NULL;
    if (f->sent && !f->waiters && !f->abandoned) {
        f->abandoned = true;
        r->d->abandoned++;
    }
}

static void req_finish(struct dns_req *r)
{
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    if (r->has_cv)
        pthread_cond_signal(&r->cv);
}

/* Under mu: the request's result is a, as answered now. */
static void req_answer(struct dns *d, struct dns_req *r, struct answer *a, int64_t now)
{
    waiter_unlink(r);
    r->a = answer_ref(a);
    r->res.status = a->status;
    r->res.rr = a->rr;
    r->res.nrr = a->nrr;
    r->res.ttl = a->ttl;
    r->res.latency_ms = now - r->start;
    r->res.cached = false;
    memcpy(r->res.error, a->error, sizeof r->res.error);
    count_outcome(d, r, a->status);
    req_finish(r);
}

/* Under mu: the request's deadline passed before any answer. */
static void req_timeout(struct dns *d, struct dns_req *r, int64_t now)
{
    waiter_unlink(r);
    r->res.status = DNS_TIMEOUT;
    r->res.latency_ms = now - r->start;
    snprintf(r->res.error, sizeof r->res.error, "no answer before the deadline");
    count_outcome(d, r, DNS_TIMEOUT);
    req_finish(r);
}

/* ---- the cache (under mu) ---- */

static void lru_unlink(struct dns *d, struct centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        d->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        d->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(struct dns *d, struct centry *e)
{
    e->prev = NULL;
    e->next = d->lru_head;
    if (d->lru_head)
        d->lru_head->prev = e;
    d->lru_head = e;
    if (!d->lru_tail)
        d->lru_tail = e;
}

static void cache_drop(struct dns *d, struct centry *e)
{
    lru_unlink(d, e);
    ht_del(&d->cache, &e->h);
    answer_unref(e->a);
    free(e->h.name);
    free(e);
}

static struct centry *cache_get(struct dns *d, uint32_t hash, unsigned type, const char *name,
                                int64_t now)
{
    if (!d->cache_max)
        return NULL;
    struct centry *e = (struct centry *)ht_find(&d->cache, hash, type, name);
    if (!e)
        return NULL;
    if (now >= e->expires) {
        cache_drop(d, e);
        return NULL;
    }
    if (d->lru_head != e) {
        lru_unlink(d, e);
        lru_front(d, e);
    }
    return e;
}

static void cache_put(struct dns *d, const struct hnode *key, struct answer *a, int64_t now)
{
    if (!d->cache_max || a->life <= 0)
        return;
    int life = a->life < TTL_CAP ? a->life : TTL_CAP;
    struct centry *e = (struct centry *)ht_find(&d->cache, key->hash, key->type, key->name);
    if (e) {
        answer_unref(e->a);
        lru_unlink(d, e);
    } else {
        while (d->cache.n >= d->cache_max && d->lru_tail)
            cache_drop(d, d->lru_tail);
        e = xcalloc(1, sizeof *e);
        e->h.name = xstrdup(key->name);
        e->h.hash = key->hash;
        e->h.type = key->type;
        ht_add(&d->cache, &e->h);
    }
    e->a = answer_ref(a);
    e->expires = now + (int64_t)life * 1000;
    lru_front(d, e);
}

static void cache_clear(struct dns *d)
{
    while (d->lru_head)
        cache_drop(d, d->lru_head);
}

/* ---- the resolver thread ---- */

/* An answer for flight f: to the cache, to every waiter; f is freed. */
static void flight_done(struct dns *d, struct flight *f, struct answer *a)
{
    int64_t now = dns_now_ms();
    pthread_mutex_lock(&d->mu);
    ht_del(&d->flights, &f->h);
    if (!d->stopping)
        cache_put(d, &f->h, a, now);
    while (f->waiters)
        req_answer(d, f->waiters, a, now);
    if (f->abandoned)
        d->abandoned--;
    pthread_mutex_unlock(&d->mu);
    answer_unref(a);
    free(f->h.name);
    free(f);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct flight *f = arg;
    struct dns *d = f->d;
    d->outstanding--;
    struct answer *a = status == ARES_SUCCESS
                           ? parse_answer(abuf, alen, f->h.name, f->h.type, d->neg_ttl_max)
                           : status_answer(status);
    flight_done(d, f, a);
}

/* Under mu: true when no waiter of f can still use an answer. A list that
 * stops answering must not fill the c-ares slots with queries nobody waits
 * for any more, ahead of the queries of healthy lists. */
static bool flight_stale(const struct flight *f, int64_t now)
{
    for (const struct dns_req *r = f->waiters; r; r = r->wnext)
        if (r->deadline > now)
            return false;
    return true;
}

static void send_flights(struct dns *d, struct flight *q)
{
    while (q) {
        struct flight *f = q;
        q = q->qnext;
        pthread_mutex_lock(&d->mu);
        int64_t now = dns_now_ms();
        if (flight_stale(f, now)) {
            while (f->waiters)
                req_timeout(d, f->waiters, now);
            ht_del(&d->flights, &f->h);
            pthread_mutex_unlock(&d->mu);
            free(f->h.name);
            free(f);
            continue;
        }
        pthread_mutex_unlock(&d->mu);
        unsigned char *buf = NULL;
        int len = 0;
        int rc = ares_create_query(f->h.name, DNS_CLASS_IN, (int)f->h.type, 0, 1, &buf, &len, 0);
        if (rc != ARES_SUCCESS) {
            flight_done(d, f, status_answer(rc));
            continue;
        }
        pthread_mutex_lock(&d->mu);
        d->st.sent++;
        d->outstanding++;
        f->sent = true;
        pthread_mutex_unlock(&d->mu);
        ares_send(d->ch, buf, len, on_answer, f);   /* may call back at once */
        ares_free_string(buf);
    }
}

/* c-ares tells us which sockets to watch (ARES_OPT_SOCK_STATE_CB); only
 * ever called on the resolver thread, inside c-ares calls. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns *d = data;
    for (size_t i = 0; i < d->nsocks; i++) {
        if (d->socks[i].fd != fd)
            continue;
        if (!readable && !writable)
            d->socks[i] = d->socks[--d->nsocks];
        else
            d->socks[i] = (struct sockw){ fd, readable != 0, writable != 0 };
        return;
    }
    if (!readable && !writable)
        return;
    if (d->nsocks == d->capsocks) {
        d->capsocks = d->capsocks ? d->capsocks * 2 : 8;
        d->socks = xrealloc(d->socks, d->capsocks * sizeof *d->socks);
    }
    d->socks[d->nsocks++] = (struct sockw){ fd, readable != 0, writable != 0 };
}

static void *resolver_main(void *arg)
{
    struct dns *d = arg;
    struct pollfd *pf = NULL;
    size_t cap = 0;
    for (;;) {
        /* a burst at a time, reading answers in between, and never more
         * than MAX_OUTSTANDING at c-ares (see the top) */
        pthread_mutex_lock(&d->mu);
        bool stop = d->stopping;
        struct flight *q = d->qhead, *last = NULL;
        size_t live = d->outstanding - d->abandoned;
        size_t room = live < MAX_OUTSTANDING ? MAX_OUTSTANDING - live : 0;
        for (size_t i = 0; i < SEND_BURST && i < room && d->qhead; i++) {
            last = d->qhead;
            d->qhead = last->qnext;
        }
        if (last)
            last->qnext = NULL;
        else
            q = NULL;
        /* more to send now: poll without waiting; queued beyond the
         * room: the next answers make room (kicks are not needed) */
        bool more = d->qhead != NULL && room > SEND_BURST;
        if (!d->qhead) {
            d->qtail = NULL;
            d->kicked = false;
        }
        pthread_mutex_unlock(&d->mu);
        if (stop) {
            pthread_mutex_lock(&d->mu);
            if (last)
                last->qnext = d->qhead;   /* fail the whole queue */
            else
                q = d->qhead;
            d->qhead = d->qtail = NULL;
            pthread_mutex_unlock(&d->mu);
            while (q) {
                struct flight *f = q;
                q = q->qnext;
                flight_done(d, f, status_answer(ARES_EDESTRUCTION));
            }
            break;
        }
        send_flights(d, q);

        size_t n = 1 + d->nsocks;
        if (n > cap) {
            cap = n * 2;
            pf = xrealloc(pf, cap * sizeof *pf);
        }
        pf[0] = (struct pollfd){ .fd = d->efd, .events = POLLIN };
        for (size_t i = 0; i < d->nsocks; i++)
            pf[i + 1] = (struct pollfd){ .fd = d->socks[i].fd,
                                         .events = (short)((d->socks[i].r ? POLLIN : 0) |
                                                           (d->socks[i].w ? POLLOUT : 0)) };
        struct timeval tv, *tvp = ares_timeout(d->ch, NULL, &tv);
        int ms = more ? 0 : tvp ? (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000) : -1;
        int rc = poll(pf, (nfds_t)n, ms);
        if (rc < 0 && errno != EINTR) {
            struct timespec pause = { 0, 10 * 1000000L };   /* never spin */
            nanosleep(&pause, NULL);
        }
        if (rc > 0 && (pf[0].revents & POLLIN)) {
            uint64_t v;
            if (read(d->efd, &v, sizeof v) < 0 && errno != EAGAIN)
                continue;
        }
        bool any = false;
        /* pf is our copy: c-ares may close and open sockets meanwhile */
        for (size_t i = 1; rc > 0 && i < n; i++) {
            short ev = pf[i].revents;
            if (!ev)
                continue;
            any = true;
            ares_socket_t rfd = ev & (POLLIN | POLLERR | POLLHUP) ? pf[i].fd : ARES_SOCKET_BAD;
            ares_socket_t wfd = ev & (POLLOUT | POLLERR | POLLHUP) ? pf[i].fd : ARES_SOCKET_BAD;
            ares_process_fd(d->ch, rfd, wfd);
        }
        if (!any)
            ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);   /* timeouts */
    }
    free(pf);
    ares_destroy(d->ch);   /* calls back every query with ARES_EDESTRUCTION */
    d->ch = NULL;
    return NULL;
}

/* ---- configuration ---- */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status;

static void lib_init(void)
{
    lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* Printable and bounded, for error messages about configuration text. */
static void shown(const char *s, char *out, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        out[i] = (unsigned char)s[i] >= ' ' && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    out[i] = '\0';
}

/* "IP", "IP:PORT", "[IPv6]:PORT" (also "[IPv4]" and a bare IPv6 address). */
static int parse_server(const char *s, struct ares_addr_port_node *n, char *err, size_t errlen)
{
    const char *orig = s;
    char host[INET6_ADDRSTRLEN + 1];
    const char *port = NULL;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            goto bad;
        hlen = (size_t)(close - s - 1);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1])
            goto bad;
        s++;
    } else {
        const char *colon = strchr(s, ':');
        if (colon && !strchr(colon + 1, ':')) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
        } else {
            hlen = strlen(s);
        }
    }
    if (hlen == 0 || hlen >= sizeof host)
        goto bad;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    memset(n, 0, sizeof *n);
    if (inet_pton(AF_INET, host, &n->addr.addr4) == 1)
        n->family = AF_INET;
    else if (inet_pton(AF_INET6, host, &n->addr.addr6) == 1)
        n->family = AF_INET6;
    else
        goto bad;
    long p = 53;
    if (port) {
        char *end;
        errno = 0;
        p = strtol(port, &end, 10);
        if (end == port || *end || errno || p < 1 || p > 65535 || *port == '+' || *port == '-')
            goto bad;
    }
    n->udp_port = n->tcp_port = (int)p;
    return 0;
bad:;
    char text[80];
    shown(orig, text, sizeof text);
    return errbuf_set(err, errlen, "dns server must be IP, IP:PORT or [IPv6]:PORT: \"%s\"", text);
}

static void dns_destroy(struct dns *d)
{
    close(d->efd);
    free(d->flights.b);
    free(d->cache.b);
    free(d->socks);
    pthread_condattr_destroy(&d->cattr);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

struct dns *dns_new(const struct dns_config *cfg, char *err, size_t errlen)
{
    if (!cfg) {
        errbuf_set(err, errlen, "no DNS configuration");
        return NULL;
    }
    struct ares_addr_port_node *servers = NULL;
    if (cfg->nservers) {
        servers = xcalloc(cfg->nservers, sizeof *servers);
        for (size_t i = 0; i < cfg->nservers; i++) {
            if (!cfg->servers || !cfg->servers[i] ||
                parse_server(cfg->servers[i], &servers[i], err, errlen) < 0) {
                if (!cfg->servers || !cfg->servers[i])
                    errbuf_set(err, errlen, "dns server %zu missing", i + 1);
                free(servers);
                return NULL;
            }
            servers[i].next = i + 1 < cfg->nservers ? &servers[i + 1] : NULL;
        }
    }
    pthread_once(&lib_once, lib_init);
    if (lib_status != ARES_SUCCESS) {
        free(servers);
        errbuf_set(err, errlen, "c-ares: %s", ares_strerror(lib_status));
        return NULL;
    }

    struct dns *d = xcalloc(1, sizeof *d);
    d->cache_max = cfg->cache_max;
    d->neg_ttl_max = cfg->neg_ttl_max > 0 ? cfg->neg_ttl_max : 0;
    struct ares_options o;
    memset(&o, 0, sizeof o);
    /* names are absolute: no search list, no HOSTALIASES (ares_send does
     * neither anyway, but nothing should depend on that). NOCHECKRESP:
     * c-ares 1.18 turns a SERVFAIL or REFUSED it checks itself into
     * ARES_ECONNREFUSED ("could not contact DNS servers"), so we take the
     * answer and read the rcode; the price is no retry on another server
     * after such an answer. */
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_NOCHECKRESP;
    o.timeout = cfg->timeout_ms > 0 ? cfg->timeout_ms : 2000;
    o.tries = cfg->tries > 0 ? cfg->tries : 1;
    o.ndots = 1;
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = d;
    o.socket_receive_buffer_size = SOCK_RCVBUF;
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_NDOTS |
               ARES_OPT_SOCK_STATE_CB | ARES_OPT_SOCK_RCVBUF;
    int rc = ares_init_options(&d->ch, &o, mask);
    if (rc != ARES_SUCCESS) {
        free(servers);
        free(d);
        errbuf_set(err, errlen, "c-ares: %s", ares_strerror(rc));
        return NULL;
    }
    if (servers)
        rc = ares_set_servers_ports(d->ch, servers);
    free(servers);
    if (rc != ARES_SUCCESS) {
        errbuf_set(err, errlen, "c-ares: setting the servers: %s", ares_strerror(rc));
        ares_destroy(d->ch);
        free(d);
        return NULL;
    }
    d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->efd < 0) {
        errbuf_set(err, errlen, "eventfd: %s", strerror(errno));
        ares_destroy(d->ch);
        free(d);
        return NULL;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_init(&d->cattr);
    pthread_condattr_setclock(&d->cattr, CLOCK_MONOTONIC);
    ht_init(&d->flights, 64);
    ht_init(&d->cache, d->cache_max);
    d->refs = 1;

    /* the thread takes no signals: they belong to the milter's own
     * handling (and a SIGPIPE from a TCP query must not kill us) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&d->thread, NULL, resolver_main, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errbuf_set(err, errlen, "cannot start the resolver thread: %s", strerror(rc));
        ares_destroy(d->ch);
        dns_destroy(d);
        return NULL;
    }
    return d;
}

static void kick(struct dns *d)
{
    uint64_t one = 1;
    while (write(d->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;   /* EAGAIN: the counter is full, so the thread is awake anyway */
}

void dns_free(struct dns *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    bool already = d->stopping;
    d->stopping = true;
    pthread_mutex_unlock(&d->mu);
    if (already)
        return;
    kick(d);
    pthread_join(d->thread, NULL);   /* it ends every pending request */
    pthread_mutex_lock(&d->mu);
    cache_clear(d);
    bool last = --d->refs == 0;
    pthread_mutex_unlock(&d->mu);
    if (last)
        dns_destroy(d);
}

/* ---- requests ---- */

/* A request answered from cache entry e (called under mu). */
static void req_from_cache(struct dns_req *r, struct centry *e, int64_t now)
{
    struct answer *a = e->a;
    int life = a->life < TTL_CAP ? a->life : TTL_CAP;
    int remaining = (int)((e->expires - now + 999) / 1000);
    int age = life - remaining;
    r->a = answer_ref(a);
    r->res.status = a->status;
    r->res.nrr = a->nrr;
    r->res.rr = a->rr;
    r->res.ttl = remaining < a->ttl ? remaining : a->ttl;
    r->res.latency_ms = 0;
    r->res.cached = true;
    memcpy(r->res.error, a->error, sizeof r->res.error);
    r->done = 1;   /* not yet visible to anyone */
    if (age > 0 && a->nrr) {
        r->rrcopy = xmalloc(a->nrr * sizeof *r->rrcopy);
        memcpy(r->rrcopy, a->rr, a->nrr * sizeof *r->rrcopy);
        for (size_t i = 0; i < a->nrr; i++)
            r->rrcopy[i].ttl = r->rrcopy[i].ttl > age ? r->rrcopy[i].ttl - age : 0;
        r->res.rr = r->rrcopy;
    }
}

struct dns_req *dns_query(struct dns *d, const char *name, enum dns_type type,
                          int64_t deadline_ms)
{
    char key[NAME_LEN_MAX + 1];
    if (!name || normalize(name, key) < 0) {
        pthread_mutex_lock(&d->mu);
        d->st.queries++;
        d->st.errors++;
        pthread_mutex_unlock(&d->mu);
        return NULL;
    }
    uint32_t hash = key_hash(key, (unsigned)type);
    struct dns_req *r = xcalloc(1, sizeof *r);
    r->d = d;
    r->type = (unsigned)type;
    r->start = dns_now_ms();
    r->deadline = deadline_ms;
    bool wake = false;

    pthread_mutex_lock(&d->mu);
    d->st.queries++;
    d->refs++;
    if (d->stopping || !type_supported((unsigned)type)) {
        r->res.status = DNS_ERROR;
        snprintf(r->res.error, sizeof r->res.error, "%s",
                 d->stopping ? "resolver stopped" : "query type not supported");
        count_outcome(d, r, DNS_ERROR);
        r->done = 1;
        pthread_mutex_unlock(&d->mu);
        return r;
    }
    struct centry *e = cache_get(d, hash, (unsigned)type, key, r->start);
    if (e) {
        d->st.cache_hits++;
        req_from_cache(r, e, r->start);
        pthread_mutex_unlock(&d->mu);
        return r;
    }
    struct flight *f = (struct flight *)ht_find(&d->flights, hash, (unsigned)type, key);
    if (!f) {
        f = xcalloc(1, sizeof *f);
        f->h.name = xstrdup(key);
        f->h.hash = hash;
        f->h.type = (unsigned)type;
        f->d = d;
        ht_add(&d->flights, &f->h);
        if (d->qtail)
            d->qtail->qnext = f;
        else
            d->qhead = f;
        d->qtail = f;
        wake = !d->kicked;
        d->kicked = true;
    }
    if (f->abandoned) {   /* someone wants its answer again */
        f->abandoned = false;
        d->abandoned--;
    }
    r->f = f;
    r->wnext = f->waiters;
    if (f->waiters)
        f->waiters->wprev = r;
    f->waiters = r;
    pthread_mutex_unlock(&d->mu);
    if (wake)
        kick(d);
    return r;
}

static struct timespec ms_to_ts(int64_t ms)
{
    struct timespec t = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    return t;
}

const struct dns_result *dns_wait(struct dns_req *r, int64_t deadline_ms)
{
    if (!r)
        return NULL;
    if (__atomic_load_n(&r->done, __ATOMIC_ACQUIRE))
        return &r->res;
    struct dns *d = r->d;
    int64_t until = deadline_ms < r->deadline ? deadline_ms : r->deadline;
    const struct dns_result *out = &r->res;
    pthread_mutex_lock(&d->mu);
    while (!__atomic_load_n(&r->done, __ATOMIC_RELAXED)) {
        int64_t now = dns_now_ms();
        if (now >= until) {
            if (now >= r->deadline) {
                req_timeout(d, r, now);
            } else {
                r->tmo.status = DNS_TIMEOUT;
                r->tmo.latency_ms = now - r->start;
                snprintf(r->tmo.error, sizeof r->tmo.error, "no answer before the deadline");
                count_outcome(d, r, DNS_TIMEOUT);
                out = &r->tmo;
            }
            break;
        }
        if (!r->has_cv) {
            pthread_cond_init(&r->cv, &d->cattr);
            r->has_cv = true;
        }
        struct timespec ts = ms_to_ts(until);
        pthread_cond_timedwait(&r->cv, &d->mu, &ts);
    }
    pthread_mutex_unlock(&d->mu);
    return out;
}

const struct dns_result *dns_poll(struct dns_req *r)
{
    if (!r)
        return NULL;
    if (__atomic_load_n(&r->done, __ATOMIC_ACQUIRE))
        return &r->res;
    struct dns *d = r->d;
    int64_t now = dns_now_ms();
    if (now < r->deadline)
        return NULL;
    pthread_mutex_lock(&d->mu);
    if (!__atomic_load_n(&r->done, __ATOMIC_RELAXED))
        req_timeout(d, r, now);
    pthread_mutex_unlock(&d->mu);
    return &r->res;
}

void dns_req_free(struct dns_req *r)
{
    if (!r)
        return;
    struct dns *d = r->d;
    pthread_mutex_lock(&d->mu);
    waiter_unlink(r);   /* the query goes on: its answer still fills the cache */
    bool last = --d->refs == 0;
    pthread_mutex_unlock(&d->mu);
    if (r->has_cv)
        pthread_cond_destroy(&r->cv);
    answer_unref(r->a);
    free(r->rrcopy);
    free(r);
    if (last)
        dns_destroy(d);
}

void dns_get_stats(struct dns *d, struct dns_stats *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->st;
    out->cache_entries = d->cache.n;
    pthread_mutex_unlock(&d->mu);
}
