#include "snowshoe.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errbuf.h"
#include "uri.h"
#include "xalloc.h"

/* ---- bounded tables: hash + LRU, one node per key ---- */

#define RING_BLOCK 64   /* recent messages remembered per block */
#define RING_WIDE 64
#define RING_DOMAIN 16
#define RING_PRINT 32

struct node {
    uint64_t key;
    char *name;                 /* domains: the name, for exact matching;
                                   blocks: the label ("198.51.100.0/24") */
    struct node *hnext, *prev, *next;
    bool dirty;                 /* changed since the last export */
};

struct table {
    struct node **b;
    size_t nb, n, max;
    struct node *head, *tail;   /* most recently used first */
    size_t size;                /* node + payload bytes */
};

static void t_init(struct table *t, size_t max, size_t size)
{
    t->nb = 1024;
    while (t->nb < max / 2 && t->nb < (1u << 22))
        t->nb *= 2;
    t->b = xcalloc(t->nb, sizeof *t->b);
    t->max = max ? max : 1;
    t->size = size;
}

static void lru_unlink(struct table *t, struct node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        t->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        t->tail = n->prev;
    n->prev = n->next = NULL;
}

static void lru_front(struct table *t, struct node *n)
{
    n->next = t->head;
    if (t->head)
        t->head->prev = n;
    t->head = n;
    if (!t->tail)
        t->tail = n;
}

static void t_remove(struct table *t, struct node *n)
{
    struct node **pp = &t->b[n->key & (t->nb - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = n->hnext;
    lru_unlink(t, n);
    free(n->name);
    free(n);
    t->n--;
}

/* The node for key (and name), made zeroed when missing and create is
 * set; the least recently used node goes when the table is full. */
static void *t_get(struct table *t, uint64_t key, const char *name, bool create)
{
    struct node *n = t->b[key & (t->nb - 1)];
    for (; n; n = n->hnext)
        if (n->key == key && (!name || (n->name && !strcmp(n->name, name))))
            break;
    if (n) {
        lru_unlink(t, n);
        lru_front(t, n);
        n->dirty |= create;   /* create: the caller is about to change it */
        return n;
    }
    if (!create)
        return NULL;
    if (t->n >= t->max && t->tail)
        t_remove(t, t->tail);
    n = xcalloc(1, t->size);
    n->key = key;
    n->dirty = true;
    n->name = name ? xstrdup(name) : NULL;
    n->hnext = t->b[key & (t->nb - 1)];
    t->b[key & (t->nb - 1)] = n;
    lru_front(t, n);
    t->n++;
    return n;
}

static void t_free(struct table *t)
{
    while (t->head)
        t_remove(t, t->head);
    free(t->b);
}

/* ---- payloads ---- */

struct bevent {
    int64_t t;
    uint32_t ip, dom, helo;
    bool newdom;
    bool suspicious;
};

struct block {
    struct node n;
    struct bevent ev[RING_BLOCK];
    unsigned head, count;
    double memory;              /* spam memory at mem_t */
    int64_t mem_t;
};

struct wevent {
    int64_t t;
    uint32_t block;
    bool suspicious;
};

struct wide {
    struct node n;
    struct wevent ev[RING_WIDE];
    unsigned head, count;
};

struct devent {
    int64_t t;
    uint32_t block;
};

struct domain {
    struct node n;
    int64_t first, last;
    uint32_t msgs, spam;
    int64_t spam_t;             /* the last spam verdict for this domain */
    struct devent ev[RING_DOMAIN];
    unsigned head, count;
};

struct pevent {
    int64_t t;
    uint32_t ip, dom;
};

struct print {
    struct node n;
    struct pevent ev[RING_PRINT];
    unsigned head, count;
};

/* Append to a ring of cap entries (head = next slot). */
#define RING_PUSH(obj, cap, item)                              \
    do {                                                       \
        (obj)->ev[(obj)->head] = (item);                       \
        (obj)->head = ((obj)->head + 1) % (cap);               \
        if ((obj)->count < (cap))                              \
            (obj)->count++;                                    \
    } while (0)
/* i-th newest entry (0 = newest) */
#define RING_AT(obj, cap, i) (&(obj)->ev[((obj)->head + (cap) - 1 - (i)) % (cap)])

struct snowshoe {
    struct snowshoe_cfg cfg;
    pthread_mutex_t mu;
    struct table blocks, wides, domains, prints;
};

void snowshoe_cfg_defaults(struct snowshoe_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->window_ms = 7LL * 24 * 3600 * 1000;
    c->short_window_ms = 24LL * 3600 * 1000;
    c->long_window_ms = 90LL * 24 * 3600 * 1000;
    c->new_domain_ms = 7LL * 24 * 3600 * 1000;
    c->aged_domain_ms = 7LL * 24 * 3600 * 1000;
    c->memory_halflife_ms = 7LL * 24 * 3600 * 1000;
    c->v4_prefix = 24;
    c->v6_prefix = 48;
    c->v4_wide = 16;
    c->v6_wide = 32;
    c->max_blocks = 100000;
    c->max_domains = 200000;
    c->max_prints = 100000;
}

struct snowshoe *snowshoe_new(const struct snowshoe_cfg *cfg)
{
    struct snowshoe *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    pthread_mutex_init(&s->mu, NULL);
    t_init(&s->blocks, cfg->max_blocks, sizeof(struct block));
    t_init(&s->wides, cfg->max_blocks / 4 + 1, sizeof(struct wide));
    t_init(&s->domains, cfg->max_domains, sizeof(struct domain));
    t_init(&s->prints, cfg->max_prints, sizeof(struct print));
    return s;
}

void snowshoe_set_windows(struct snowshoe *s, const struct snowshoe_cfg *cfg)
{
    pthread_mutex_lock(&s->mu);
    s->cfg.window_ms = cfg->window_ms;
    s->cfg.short_window_ms = cfg->short_window_ms;
    s->cfg.long_window_ms = cfg->long_window_ms;
    s->cfg.new_domain_ms = cfg->new_domain_ms;
    s->cfg.aged_domain_ms = cfg->aged_domain_ms;
    s->cfg.memory_halflife_ms = cfg->memory_halflife_ms;
    pthread_mutex_unlock(&s->mu);
}

void snowshoe_free(struct snowshoe *s)
{
    if (!s)
        return;
    t_free(&s->blocks);
    t_free(&s->wides);
    t_free(&s->domains);
    t_free(&s->prints);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- hashing ---- */

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}
#define FNV0 14695981039346656037ULL

static uint64_t fnv_lower(const char *s)
{
    uint64_t h = FNV0;
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        ch = ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
        h = fnv(&ch, 1, h);
    }
    return h;
}

/* A text fingerprint that survives per-recipient tokens: letters only,
 * lower case. Too little text to mean anything: 0. */
static uint64_t text_print(const char *s)
{
    uint64_t h = FNV0;
    size_t letters = 0;
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch + 32);
        if ((ch >= 'a' && ch <= 'z') || ch >= 0x80) {
            h = fnv(&ch, 1, h);
            letters++;
        }
    }
    return letters >= 6 ? h : 0;
}

static void prefix_of(const struct ip *a, unsigned bits, struct ip *out)
{
    *out = *a;
    ip_mask(out, ip_is_v4(a) ? 96 + bits : bits);
}

static uint64_t ip_key(const struct ip *a, unsigned bits)
{
    struct ip p;
    prefix_of(a, bits, &p);
    uint64_t h = fnv(p.b, sizeof p.b, FNV0);
    unsigned char b = (unsigned char)bits;
    return fnv(&b, 1, h);
}

/* The registrable domain of d into out ("" when none). */
static void reg_domain(const struct snowshoe *s, const char *d, char *out, size_t len)
{
    out[0] = 0;
    if (!d || !*d)
        return;
    if (s->cfg.psl && psl_registrable(s->cfg.psl, d, out, len) == 0)
        return;
    /* without a list, or for a name that is itself a suffix: last two labels */
    const char *p = d + strlen(d), *dot = NULL;
    int dots = 0;
    while (p > d) {
        p--;
        if (*p == '.' && ++dots == 2) {
            dot = p;
            break;
        }
    }
    snprintf(out, len, "%s", dot ? dot + 1 : d);
    for (char *q = out; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q + 32);
}

static bool is_platform(const struct snowshoe *s, const struct snowshoe_msg *m)
{
    if (m->client && s->cfg.platform_nets && cidrset_contains(s->cfg.platform_nets, m->client))
        return true;
    if (!m->ptr || !m->ptr_confirmed || !s->cfg.platform_ptrs)
        return false;
    size_t pl = strlen(m->ptr);
    for (const char *const *suf = s->cfg.platform_ptrs; *suf; suf++) {
        size_t sl = strlen(*suf);
        if (pl >= sl && !strcasecmp(m->ptr + pl - sl, *suf))
            return true;
    }
    return false;
}

/* ---- scoring ---- */

static void add(struct snowshoe_result *r, const char *signal, double w, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add(struct snowshoe_result *r, const char *signal, double w, const char *fmt, ...)
{
    if (r->n == SNOWSHOE_MAX_CONTRIB || w == 0)
        return;
    struct snowshoe_contrib *c = &r->c[r->n++];
    c->signal = signal;
    c->weight = w;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
}

static double helo_weight(enum snowsig_helo h)
{
    switch (h) {
    case SNOWSIG_HELO_LOCAL: return 2.0;
    case SNOWSIG_HELO_BARE: return 1.5;
    case SNOWSIG_HELO_LITERAL: return 1.5;
    case SNOWSIG_HELO_INVALID: return 1.5;
    case SNOWSIG_HELO_NONE: return 1.0;
    case SNOWSIG_HELO_MISMATCH: return 0.5;
    default: return 0;
    }
}

/* Count distinct values among up to n (n small: quadratic is fine). */
static unsigned distinct(const uint32_t *v, unsigned n)
{
    unsigned d = 0;
    for (unsigned i = 0; i < n; i++) {
        bool seen = false;
        for (unsigned j = 0; j < i && !seen; j++)
            seen = v[j] == v[i];
        d += !seen;
    }
    return d;
}

static double decayed(const struct snowshoe *s, const struct block *b, int64_t now)
{
    if (b->memory <= 0 || s->cfg.memory_halflife_ms <= 0)
        return 0;
    double age = (double)(now - b->mem_t);
    return b->memory * pow(0.5, (age > 0 ? age : 0) / (double)s->cfg.memory_halflife_ms);
}

/* What a message is counted under: its address block; the sender domain
 * for a shared platform; the PTR name's domain (the operator) for a host
 * whose HELO matches its forward-confirmed PTR name, since one operator's
 * farm of servers, a mailing list host or an ESP sending for many domains
 * from many addresses is normal. label gets the printable key. */
static uint64_t cluster_key(const struct snowshoe *s, const struct snowshoe_msg *m,
                            const char *sdom, bool platform, bool identified, char *label,
                            size_t len)
{
    unsigned bits = ip_is_v4(m->client) ? s->cfg.v4_prefix : s->cfg.v6_prefix;
    if (platform) {
        snprintf(label, len, "platform:%.60s", *sdom ? sdom : "?");
        return fnv_lower(sdom) ^ 0x5bd1e995ULL;
    }
    if (identified) {
        char op[256];
        reg_domain(s, m->ptr, op, sizeof op);
        snprintf(label, len, "operator:%.60s", op);
        return fnv_lower(op) ^ 0x9e3779b97f4a7c15ULL;
    }
    struct cidr c;
    prefix_of(m->client, bits, &c.net);
    c.bits = ip_is_v4(m->client) ? 96 + bits : bits;
    cidr_format(&c, label, len);
    return ip_key(m->client, bits);
}

/* hc: the message's HELO class (classified once per message). */
static bool is_identified(const struct snowshoe_msg *m, enum snowsig_helo hc)
{
    return m->ptr && m->ptr_confirmed &&
           (hc == SNOWSIG_HELO_FQDN_PTR || hc == SNOWSIG_HELO_FQDN_SAME);
}

/* Per-message part: what one message says on its own. */
static double message_signals(struct snowshoe *s, const struct snowshoe_msg *m,
                              enum snowsig_helo hc,
                              const char *env_reg, const char *from_reg, bool dom_new,
                              struct snowshoe_result *r)
{
    size_t first = r->n;
    add(r, "helo", helo_weight(hc), "HELO %s", snowsig_helo_name(hc));
    if (!m->ptr)
        add(r, "no_ptr", 1.0, "client has no PTR name");
    else if (!m->ptr_confirmed)
        add(r, "ptr_unconfirmed", 0.5, "PTR name does not resolve back to the client");
    double re = snowsig_domain_randomness(m->env_domain, s->cfg.psl);
    double rf = snowsig_domain_randomness(m->from_domain, s->cfg.psl);
    double rnd = re > rf ? re : rf;
    const char *rd = re > rf ? env_reg : from_reg;
    if (rnd >= 0.7)
        add(r, "random_domain", 1.5, "%s looks random (%.2f)", rd, rnd);
    else if (rnd >= 0.5)
        add(r, "random_domain", 0.75, "%s looks somewhat random (%.2f)", rd, rnd);
    double te = snowsig_tld_risk(s->cfg.tlds, m->env_domain);
    double tf = snowsig_tld_risk(s->cfg.tlds, m->from_domain);
    double tr = te > tf ? te : tf;
    add(r, "risky_tld", tr, "risky TLD (%s)", te > tf ? env_reg : from_reg);
    if (snowsig_msgid_unrelated(m->msgid_domain, m->env_domain, m->from_domain, s->cfg.psl))
        /* weak: measured on the corpus it fires on ham as often as on
         * spam (old mail programs, anonymised domains) */
        add(r, "msgid_unrelated", 0.25, "Message-ID domain %.60s unrelated to the sender",
            m->msgid_domain);
    if (dom_new)
        add(r, "new_domain", 0.5, "sender domain %.60s first seen recently",
            *env_reg ? env_reg : from_reg);
    double sum = 0;
    for (size_t i = first; i < r->n; i++)
        sum += r->c[i].weight;
    return sum;
}

void snowshoe_eval(struct snowshoe *s, const struct snowshoe_msg *m,
                   struct snowshoe_result *r)
{
    memset(r, 0, sizeof *r);
    const int64_t now = m->time_ms;
    char env_reg[256], from_reg[256];
    reg_domain(s, m->env_domain, env_reg, sizeof env_reg);
    reg_domain(s, m->from_domain, from_reg, sizeof from_reg);
    const char *sdom = *env_reg ? env_reg : from_reg;   /* who claims to send */
    snprintf(r->domain, sizeof r->domain, "%s", sdom);

    pthread_mutex_lock(&s->mu);
    const int64_t win = s->cfg.window_ms;   /* a reload may change it: under the lock */
    struct domain *dn = *sdom ? t_get(&s->domains, fnv_lower(sdom), sdom, true) : NULL;
    bool dom_new = dn && (!dn->msgs || now - dn->first < s->cfg.new_domain_ms);
    r->platform = is_platform(s, m);
    enum snowsig_helo hc = snowsig_helo_class(m->helo, m->ptr, s->cfg.psl);
    r->identified = !r->platform && is_identified(m, hc);
    bool by_block = !r->platform && !r->identified;
    /* trust is earned by a domain that sends from identified hosts: a
     * snowshoe domain sent from hosts without a PTR name earns none */
    bool dom_aged = dn && !by_block && dn->msgs >= 5 && !dn->spam &&
                    now - dn->first >= s->cfg.aged_domain_ms;

    double msg = message_signals(s, m, hc, env_reg, from_reg, dom_new, r);
    r->msg_score = msg > SNOWSHOE_MSG_CAP ? SNOWSHOE_MSG_CAP : msg;

    uint32_t iph = m->client ? (uint32_t)fnv(m->client->b, sizeof m->client->b, FNV0) : 0;
    uint32_t domh = (uint32_t)fnv_lower(sdom);
    uint32_t heloh = (uint32_t)fnv_lower(m->helo ? m->helo : "");
    double cl = 0;
    bool rotating = false;   /* signals of rotating sender domains fired */
    struct block *b = NULL;
    uint32_t blockh = 0;
    if (m->client) {
        uint64_t bk = cluster_key(s, m, sdom, r->platform, r->identified, r->block,
                                  sizeof r->block);
        r->block_key = bk;
        blockh = (uint32_t)bk;
        b = t_get(&s->blocks, bk, NULL, true);
        if (!b->n.name)
            b->n.name = xstrdup(r->block);
        /* distinct IPs, new sender domains and HELO names, over the window
         * and over the short window (a burst weighs more) */
        uint32_t ips[2][RING_BLOCK + 1], doms[2][RING_BLOCK + 1], helos[2][RING_BLOCK + 1];
        unsigned ni[2] = { 0, 0 }, nd[2] = { 0, 0 }, nh[2] = { 0, 0 };
        for (int w = 0; w < 2; w++) {
            ips[w][ni[w]++] = iph;
            if (dom_new && *sdom)
                doms[w][nd[w]++] = domh;
            if (m->helo)
                helos[w][nh[w]++] = heloh;
        }
        for (unsigned i = 0; i < b->count; i++) {
            const struct bevent *e = RING_AT(b, RING_BLOCK, i);
            for (int w = 0; w < 2; w++) {
                int64_t span = w ? s->cfg.short_window_ms : win;
                if (now - e->t > span || e->t > now + 60000)
                    continue;
                ips[w][ni[w]++] = e->ip;
                if (e->newdom)
                    doms[w][nd[w]++] = e->dom;
                helos[w][nh[w]++] = e->helo;
            }
        }
        unsigned dips = distinct(ips[0], ni[0]), ddoms = distinct(doms[0], nd[0]);
        unsigned dhelos = distinct(helos[0], nh[0]);
        unsigned sips = distinct(ips[1], ni[1]), sdoms = distinct(doms[1], nd[1]);
        /* the longer history: IPs and sender domains (new or not) */
        uint32_t lips[RING_BLOCK + 1], ldoms[RING_BLOCK + 1];
        unsigned nl = 0;
        lips[nl] = iph;
        ldoms[nl++] = domh;
        for (unsigned i = 0; i < b->count; i++) {
            const struct bevent *e = RING_AT(b, RING_BLOCK, i);
            if (now - e->t <= s->cfg.long_window_ms && e->t <= now + 60000) {
                lips[nl] = e->ip;
                ldoms[nl++] = e->dom;
            }
        }
        unsigned lip = distinct(lips, nl), ldom = distinct(ldoms, nl);
        if (by_block) {
            if (dips >= 3) {
                double w = dips >= 6 ? 3.0 : 2.0;
                add(r, "block_ips", w, "%u IPs in %s within the window", dips, r->block);
                cl += w;
            }
            if (ddoms >= 3) {
                double w = ddoms >= 6 ? 3.5 : 2.5;
                add(r, "block_new_domains", w, "%u new sender domains from %s", ddoms, r->block);
                cl += w;
                rotating = true;
            }
            if (dhelos >= 3 && dips >= 3) {
                add(r, "block_helos", 1.0, "%u HELO names from %s", dhelos, r->block);
                cl += 1.0;
            }
            if (dips < 3 && ddoms < 3 && lip >= 3 && ldom >= 2) {
                double w = lip >= 5 ? 3.5 : 2.5;
                add(r, "block_history", w, "%u IPs and %u sender domains from %s in "
                    "the long window", lip, ldom, r->block);
                cl += w;
                rotating = ldom >= 3;   /* two domains are no rotation yet */
            }
            if (sips >= 3 && sdoms >= 3) {
                add(r, "block_burst", 1.0, "%u IPs and %u new domains from %s within the "
                    "short window", sips, sdoms, r->block);
                cl += 1.0;
            }
        }
        double mem = decayed(s, b, now);
        if (mem >= 0.5) {
            double w = mem > 3 ? 3 : mem;
            add(r, "block_memory", w, "%s sent spam recently (memory %.1f)", r->block, mem);
            cl += w;
        }
    }

    /* the same text from many IPs and domains */
    uint64_t fps[3] = { text_print(m->subject), m->body_fp, text_print(m->display) };
    static const char *const fpname[3] = { "subject", "body", "display name" };
    bool fp_hit = false;
    for (int k = 0; k < 3 && m->client; k++) {
        if (!fps[k])
            continue;
        struct print *p = t_get(&s->prints, fps[k] ^ (uint64_t)k, NULL, true);
        uint32_t ips[RING_PRINT + 1], doms[RING_PRINT + 1];
        unsigned n = 0;
        ips[n] = iph;
        doms[n++] = domh;
        for (unsigned i = 0; i < p->count; i++) {
            const struct pevent *e = RING_AT(p, RING_PRINT, i);
            if (now - e->t > win || e->t > now + 60000)
                continue;
            ips[n] = e->ip;
            doms[n++] = e->dom;
        }
        unsigned di = distinct(ips, n), dd = distinct(doms, n);
        if (!fp_hit && di >= 3 && dd >= 3 && !r->platform) {   /* operators too */
            add(r, "same_text", 2.0, "same %s from %u IPs and %u domains", fpname[k], di, dd);
            cl += 2.0;
            rotating = true;
            fp_hit = true;
        }
        if (!m->repeat) {
            struct pevent pe = { now, iph, domh };
            RING_PUSH(p, RING_PRINT, pe);
        }
    }

    /* spread: several suspicious blocks inside one wider prefix */
    bool suspicious = r->msg_score >= 1.5 || cl > 0;
    if (m->client && by_block) {
        unsigned bits = ip_is_v4(m->client) ? s->cfg.v4_wide : s->cfg.v6_wide;
        struct wide *w = t_get(&s->wides, ip_key(m->client, bits), NULL, true);
        uint32_t bl[RING_WIDE + 1] = { 0 };   /* (-O1 cannot see n bounds it) */
        unsigned n = 0;
        if (suspicious)
            bl[n++] = blockh;
        for (unsigned i = 0; i < w->count; i++) {
            const struct wevent *e = RING_AT(w, RING_WIDE, i);
            if (e->suspicious && now - e->t <= win && e->t <= now + 60000)
                bl[n++] = e->block;
        }
        unsigned db = distinct(bl, n);
        if (db >= 3 && suspicious) {
            add(r, "wide_spread", 1.5, "%u suspicious /%u blocks in the /%u", db,
                ip_is_v4(m->client) ? s->cfg.v4_prefix : s->cfg.v6_prefix, bits);
            cl += 1.5;
        }
        if (!m->repeat) {
            struct wevent we = { now, blockh, suspicious };
            RING_PUSH(w, RING_WIDE, we);
        }
    }

    /* one throwaway domain sent from many blocks */
    if (dn && m->client && by_block) {
        uint32_t bl[RING_DOMAIN + 1];
        unsigned n = 0;
        bl[n++] = blockh;
        for (unsigned i = 0; i < dn->count; i++) {
            const struct devent *e = RING_AT(dn, RING_DOMAIN, i);
            if (now - e->t <= win && e->t <= now + 60000)
                bl[n++] = e->block;
        }
        unsigned db = distinct(bl, n);
        if (db >= 3 && !dom_aged) {
            add(r, "domain_blocks", 1.5, "%s sent from %u blocks", sdom, db);
            cl += 1.5;
            rotating = true;
        }
    }
    if (dn && !m->repeat) {
        struct devent de = { now, blockh };
        RING_PUSH(dn, RING_DOMAIN, de);
        if (!dn->msgs)
            dn->first = now;
        dn->msgs++;
        dn->last = now;
    }

    /* a throwaway domain comes back: it was called spam before */
    if (dn && dn->spam && now - dn->spam_t <= s->cfg.long_window_ms && !r->platform) {
        add(r, "domain_spam", 2.0, "%s was called spam %u times, last %lld days ago", sdom,
            dn->spam, (long long)((now - dn->spam_t) / 86400000));
        cl += 2.0;
    }
    double trust = 0;
    if (dom_aged) {
        add(r, "aged_domain", -2.0, "%s known for %lld days, no spam", sdom,
            (long long)((now - dn->first) / 86400000));
        trust = -2.0;
    }
    if (b && !m->repeat) {
        struct bevent be = { now, iph, domh, heloh, dom_new && *sdom, suspicious };
        RING_PUSH(b, RING_BLOCK, be);
        /* a block showing cluster signals is remembered even when this
         * message stays below the thresholds: snowshoe blocks send a few
         * messages a week, and the next one should not start from zero */
        /* only rotation counts: many addresses sending for one domain
         * is a farm, and memory must not feed itself */
        if (by_block && rotating) {
            b->memory = decayed(s, b, now) + 0.5;
            b->mem_t = now;
        }
    }
    pthread_mutex_unlock(&s->mu);
    r->cluster_score = cl;
    r->cluster = cl > 0;
    r->score = r->msg_score + cl + trust;
}

void snowshoe_spam(struct snowshoe *s, const struct snowshoe_msg *m,
                   const struct snowshoe_result *r)
{
    /* the block key and sender domain snowshoe_eval worked out: not again */
    pthread_mutex_lock(&s->mu);
    if (m->client && !r->platform) {
        /* the block, or the operator, remembers; a shared platform does not
         * (its next customer is somebody else) */
        struct block *b = t_get(&s->blocks, r->block_key, NULL, true);
        b->memory = decayed(s, b, m->time_ms) + 1.0;
        b->mem_t = m->time_ms;
    }
    struct domain *dn =
        r->domain[0] ? t_get(&s->domains, fnv_lower(r->domain), r->domain, false) : NULL;
    if (dn) {
        dn->spam++;
        dn->spam_t = m->time_ms;
    }
    pthread_mutex_unlock(&s->mu);
}

void snowshoe_get_stats(struct snowshoe *s, struct snowshoe_stats *o)
{
    pthread_mutex_lock(&s->mu);
    o->blocks = s->blocks.n;
    o->domains = s->domains.n;
    o->prints = s->prints.n;
    o->wides = s->wides.n;
    o->bytes = s->blocks.n * sizeof(struct block) + s->wides.n * sizeof(struct wide) +
               s->domains.n * (sizeof(struct domain) + 32) + s->prints.n * sizeof(struct print) +
               (s->blocks.nb + s->wides.nb + s->domains.nb + s->prints.nb) * sizeof(void *);
    pthread_mutex_unlock(&s->mu);
}

int snowshoe_platforms_load(const char *path, struct snowshoe_platforms *p, char *err,
                            size_t errlen)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "r");
    if (!f)
        return errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
    p->nets = cidrset_new();
    p->ptrs = xcalloc(1, sizeof *p->ptrs);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char kind[16], val[300], extra[8];
        int n = sscanf(line, "%15s %299s %7s", kind, val, extra);
        if (n <= 0)
            continue;
        char why[160];
        if (n != 2) {
            rc = errbuf_set(err, errlen, "%s:%d: expected \"net CIDR\" or \"ptr .suffix\"",
                            path, lineno);
        } else if (!strcmp(kind, "net")) {
            if (cidrset_add_str(p->nets, val, why, sizeof why) < 0)
                rc = errbuf_set(err, errlen, "%s:%d: %s", path, lineno, why);
        } else if (!strcmp(kind, "ptr")) {
            if (val[0] != '.' || strlen(val) < 3)
                rc = errbuf_set(err, errlen, "%s:%d: a PTR suffix starts with '.': %.60s",
                                path, lineno, val);
            else {
                p->ptrs = xrealloc(p->ptrs, (p->nptrs + 2) * sizeof *p->ptrs);
                p->ptrs[p->nptrs++] = xstrdup(val);
                p->ptrs[p->nptrs] = NULL;
            }
        } else {
            rc = errbuf_set(err, errlen, "%s:%d: unknown entry '%.20s' (net or ptr)", path,
                            lineno, kind);
        }
    }
    free(line);
    fclose(f);
    if (rc < 0)
        snowshoe_platforms_clear(p);
    return rc;
}

void snowshoe_platforms_clear(struct snowshoe_platforms *p)
{
    cidrset_free(p->nets);
    for (size_t i = 0; i < p->nptrs; i++)
        free(p->ptrs[i]);
    free(p->ptrs);
    memset(p, 0, sizeof *p);
}

/* ---- persistence: the tables as rows of raw payload ---- */

static struct table *table_of(struct snowshoe *s, int kind)
{
    switch (kind) {
    case SNOWSHOE_KIND_BLOCK: return &s->blocks;
    case SNOWSHOE_KIND_WIDE: return &s->wides;
    case SNOWSHOE_KIND_DOMAIN: return &s->domains;
    case SNOWSHOE_KIND_PRINT: return &s->prints;
    }
    return NULL;
}

/* The newest event time of an entry, for pruning. */
static int64_t last_time(int kind, const struct node *n)
{
    switch (kind) {
    case SNOWSHOE_KIND_BLOCK: {
        const struct block *b = (const struct block *)n;
        int64_t t = b->count ? RING_AT(b, RING_BLOCK, 0)->t : 0;
        return b->mem_t > t ? b->mem_t : t;
    }
    case SNOWSHOE_KIND_WIDE: {
        const struct wide *w = (const struct wide *)n;
        return w->count ? RING_AT(w, RING_WIDE, 0)->t : 0;
    }
    case SNOWSHOE_KIND_DOMAIN: {
        const struct domain *d = (const struct domain *)n;
        return d->last > d->spam_t ? d->last : d->spam_t;
    }
    default: {
        const struct print *p = (const struct print *)n;
        return p->count ? RING_AT(p, RING_PRINT, 0)->t : 0;
    }
    }
}

void snowshoe_export(struct snowshoe *s, bool dirty_only, struct snowshoe_rows *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    for (int kind = 0; kind < SNOWSHOE_KINDS; kind++) {
        struct table *t = table_of(s, kind);
        size_t len = t->size - sizeof(struct node);
        for (struct node *n = t->head; n; n = n->next) {
            if (dirty_only && !n->dirty)
                continue;
            n->dirty = false;
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 256;
                out->v = xrealloc(out->v, out->cap * sizeof *out->v);
            }
            struct snowshoe_row *r = &out->v[out->n++];
            r->kind = kind;
            r->key = n->key;
            r->name = n->name ? xstrdup(n->name) : NULL;
            r->len = len;
            r->data = xmalloc(len);
            memcpy(r->data, (const char *)n + sizeof(struct node), len);
            r->last_ms = last_time(kind, n);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void snowshoe_rows_free(struct snowshoe_rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].name);
        free(r->v[i].data);
    }
    free(r->v);
    memset(r, 0, sizeof *r);
}

int snowshoe_import(struct snowshoe *s, int kind, uint64_t key, const char *name,
                    const void *data, size_t len)
{
    struct table *t = table_of(s, kind);
    /* a row of another layout (another version) is dropped, never guessed at */
    if (!t || len != t->size - sizeof(struct node) ||
        (kind == SNOWSHOE_KIND_DOMAIN && (!name || !*name)))
        return -1;
    /* a damaged row must not index outside a ring */
    union {
        struct block b;
        struct wide w;
        struct domain d;
        struct print p;
    } u;
    memcpy((char *)&u + sizeof(struct node), data, len);
    unsigned head, count, cap;
    switch (kind) {
    case SNOWSHOE_KIND_BLOCK: head = u.b.head; count = u.b.count; cap = RING_BLOCK; break;
    case SNOWSHOE_KIND_WIDE: head = u.w.head; count = u.w.count; cap = RING_WIDE; break;
    case SNOWSHOE_KIND_DOMAIN: head = u.d.head; count = u.d.count; cap = RING_DOMAIN; break;
    default: head = u.p.head; count = u.p.count; cap = RING_PRINT; break;
    }
    if (head >= cap || count > cap ||
        (kind == SNOWSHOE_KIND_BLOCK && !(u.b.memory >= 0 && u.b.memory < 1e6)))
        return -1;
    pthread_mutex_lock(&s->mu);
    struct node *n = t_get(t, key, kind == SNOWSHOE_KIND_DOMAIN ? name : NULL, true);
    memcpy((char *)n + sizeof(struct node), data, len);
    if (kind != SNOWSHOE_KIND_DOMAIN && name && !n->name)
        n->name = xstrdup(name);
    n->dirty = false;   /* it is what the database holds */
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int snowshoe_block_info(const void *data, size_t len, int64_t now, int64_t window_ms,
                        double halflife_ms, struct snowshoe_block_info *out)
{
    memset(out, 0, sizeof *out);
    if (len != sizeof(struct block) - sizeof(struct node))
        return -1;
    struct block b;
    memcpy((char *)&b + sizeof(struct node), data, len);
    if (b.count > RING_BLOCK || b.head >= RING_BLOCK)
        return -1;
    uint32_t ips[RING_BLOCK], doms[RING_BLOCK], helos[RING_BLOCK];
    unsigned n = 0, nd = 0;
    for (unsigned i = 0; i < b.count; i++) {
        const struct bevent *e = RING_AT(&b, RING_BLOCK, i);
        if (!out->last_ms || e->t > out->last_ms)
            out->last_ms = e->t;
        if (!out->first_ms || e->t < out->first_ms)
            out->first_ms = e->t;
        if (now - e->t > window_ms)
            continue;
        ips[n] = e->ip;
        helos[n++] = e->helo;
        if (e->newdom)
            doms[nd++] = e->dom;
        out->suspicious += e->suspicious;
    }
    out->messages = n;
    out->ips = distinct(ips, n);
    out->new_domains = distinct(doms, nd);
    out->helos = distinct(helos, n);
    double age = (double)(now - b.mem_t);
    out->memory = b.memory > 0 && halflife_ms > 0
                      ? b.memory * pow(0.5, (age > 0 ? age : 0) / halflife_ms)
                      : 0;
    return 0;
}

int snowshoe_domain_info(const void *data, size_t len, int64_t now, int64_t window_ms,
                         struct snowshoe_domain_info *out)
{
    memset(out, 0, sizeof *out);
    if (len != sizeof(struct domain) - sizeof(struct node))
        return -1;
    struct domain d;
    memcpy((char *)&d + sizeof(struct node), data, len);
    if (d.count > RING_DOMAIN || d.head >= RING_DOMAIN)
        return -1;
    uint32_t bl[RING_DOMAIN];
    unsigned n = 0;
    for (unsigned i = 0; i < d.count; i++) {
        const struct devent *e = RING_AT(&d, RING_DOMAIN, i);
        if (now - e->t <= window_ms)
            bl[n++] = e->block;
    }
    out->blocks = distinct(bl, n);
    out->messages = d.msgs;
    out->spam = d.spam;
    out->first_ms = d.first;
    out->last_ms = d.last;
    return 0;
}
