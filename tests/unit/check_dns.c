/* Unit tests for lib/dns.c against a scripted DNS server in the test
 * process (a thread on a UDP socket at 127.0.0.1, port chosen by the
 * kernel) that answers from the table below and counts the queries it
 * sees per entry: answers parsed (A, AAAA, TXT joined per record, SPF, MX,
 * PTR, CNAME chains, records for other owners ignored); negative answers
 * cached for the SOA's min(TTL, minimum), capped, with a default when there
 * is no SOA; SERVFAIL/REFUSED, c-ares timeouts and refused connections
 * never cached; expiry by TTL; the LRU bound and order; deadlines that hold
 * against a silent server; a late answer that still fills the cache;
 * identical queries in flight coalesced; many threads at once; requests
 * freed while pending and after dns_free; server strings and names. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "fcrdns.h"
#include "ip.h"

/* ---- the scripted server ---- */

#define T_CNAME 5
#define T_SOA 6

/* FK_TCP: the answer over TCP; over UDP an empty reply with TC set */
enum fkind { FK_ANSWER, FK_TCP, FK_NX, FK_SERVFAIL, FK_REFUSED, FK_SILENT };

struct frr {
    int type;
    int ttl;
    const char *data;    /* address, name, or TXT strings separated by '|' */
    int pref;            /* MX */
    const char *owner;   /* NULL: the question's name */
};

struct frule {
    const char *name;    /* "*.many.test": any name below many.test */
    int qtype;           /* 0: any type */
    enum fkind kind;
    int delay_ms;
    int soa_ttl, soa_min;   /* negative answers: soa_ttl < 0 = no SOA */
    struct frr rr[4];       /* FK_ANSWER without records: NODATA */
};

#define S10 "0123456789"
#define S200 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10

static const struct frule rules[] = {
    { "a.test", DNS_T_A, FK_ANSWER, 0, -1, 0,
      { { DNS_T_A, 300, "192.0.2.1", 0, NULL }, { DNS_T_A, 100, "192.0.2.2", 0, NULL } } },
    { "a.test", DNS_T_AAAA, FK_ANSWER, 0, -1, 0, { { DNS_T_AAAA, 200, "2001:db8::1", 0, NULL } } },
    { "a.test", 0, FK_ANSWER, 0, 3600, 45, { { 0 } } },
    { "txt.test", DNS_T_TXT, FK_ANSWER, 0, -1, 0,
      { { DNS_T_TXT, 3600, "v=spf1 |ip4:192.0.2.0/24 |-all", 0, NULL },
        { DNS_T_TXT, 600, "second|record", 0, NULL },
        { DNS_T_TXT, 900, "", 0, NULL } } },
    { "spf.test", DNS_T_SPF, FK_ANSWER, 0, -1, 0, { { DNS_T_SPF, 60, "v=spf1 |-all", 0, NULL } } },
    { "mx.test", DNS_T_MX, FK_ANSWER, 0, -1, 0,
      { { DNS_T_MX, 300, "mail.test", 10, NULL }, { DNS_T_MX, 250, "backup.example", 20, NULL } } },
    { "1.2.0.192.in-addr.arpa", DNS_T_PTR, FK_ANSWER, 0, -1, 0,
      { { DNS_T_PTR, 300, "host.test", 0, NULL } } },
    { "alias.test", DNS_T_A, FK_ANSWER, 0, -1, 0,
      { { T_CNAME, 20, "target.test", 0, NULL }, { DNS_T_A, 50, "192.0.2.9", 0, "target.test" } } },
    { "stray.test", DNS_T_A, FK_ANSWER, 0, -1, 0,
      { { DNS_T_A, 300, "192.0.2.66", 0, "other.test" } } },
    { "nx.test", 0, FK_NX, 0, 600, 30, { { 0 } } },
    { "nxmin.test", 0, FK_NX, 0, 20, 3600, { { 0 } } },
    { "nxbig.test", 0, FK_NX, 0, 7200, 5000, { { 0 } } },
    { "nxnosoa.test", 0, FK_NX, 0, -1, 0, { { 0 } } },
    { "nodata.test", 0, FK_ANSWER, 0, 3600, 45, { { 0 } } },
    { "fail.test", 0, FK_SERVFAIL, 0, -1, 0, { { 0 } } },
    { "refused.test", 0, FK_REFUSED, 0, -1, 0, { { 0 } } },
    { "silent.test", 0, FK_SILENT, 0, -1, 0, { { 0 } } },
    { "short.test", DNS_T_A, FK_ANSWER, 0, -1, 0, { { DNS_T_A, 1, "192.0.2.10", 0, NULL } } },
    { "aging.test", DNS_T_A, FK_ANSWER, 0, -1, 0,
      { { DNS_T_A, 3, "192.0.2.13", 0, NULL }, { DNS_T_A, 5, "192.0.2.14", 0, NULL } } },
    { "zero.test", DNS_T_A, FK_ANSWER, 0, -1, 0, { { DNS_T_A, 0, "192.0.2.11", 0, NULL } } },
    { "slow.test", DNS_T_A, FK_ANSWER, 150, -1, 0, { { DNS_T_A, 300, "192.0.2.12", 0, NULL } } },
    { "late.test", DNS_T_A, FK_ANSWER, 150, -1, 0, { { DNS_T_A, 300, "192.0.2.15", 0, NULL } } },
    { "big.test", DNS_T_TXT, FK_TCP, 0, -1, 0,
      { { DNS_T_TXT, 300, "v=spf1 " S200 "|" S200 "|" S200, 0, NULL } } },
    { "*.nx.many.test", 0, FK_NX, 0, 600, 300, { { 0 } } },
    { "*.many.test", DNS_T_A, FK_ANSWER, 0, -1, 0, { { DNS_T_A, 300, "127.0.0.2", 0, NULL } } },
    { "*.quiet.test", 0, FK_SILENT, 0, -1, 0, { { 0 } } },
    /* forward-confirmed reverse DNS (lib/fcrdns.c) */
    { "5.2.0.192.in-addr.arpa", DNS_T_PTR, FK_ANSWER, 0, -1, 0,
      { { DNS_T_PTR, 300, "bad_name-.test", 0, NULL },
        { DNS_T_PTR, 300, "Mail.Good.test", 0, NULL } } },
    { "mail.good.test", DNS_T_A, FK_ANSWER, 0, -1, 0,
      { { DNS_T_A, 300, "192.0.2.50", 0, NULL }, { DNS_T_A, 300, "192.0.2.5", 0, NULL } } },
    /* would confirm, were the name not refused */
    { "bad_name-.test", DNS_T_A, FK_ANSWER, 0, -1, 0, { { DNS_T_A, 300, "192.0.2.5", 0, NULL } } },
    { "6.2.0.192.in-addr.arpa", DNS_T_PTR, FK_ANSWER, 0, -1, 0,
      { { DNS_T_PTR, 300, "liar.test", 0, NULL } } },
    { "liar.test", DNS_T_A, FK_ANSWER, 0, -1, 0, { { DNS_T_A, 300, "192.0.2.99", 0, NULL } } },
    { "7.2.0.192.in-addr.arpa", 0, FK_NX, 0, 600, 30, { { 0 } } },
    { "8.2.0.192.in-addr.arpa", 0, FK_SILENT, 0, -1, 0, { { 0 } } },
    { "9.2.0.192.in-addr.arpa", DNS_T_PTR, FK_ANSWER, 0, -1, 0,
      { { DNS_T_PTR, 300, "fwd.quiet.test", 0, NULL } } },
    { "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", DNS_T_PTR,
      FK_ANSWER, 0, -1, 0, { { DNS_T_PTR, 300, "a.test", 0, NULL } } },
};
#define NRULES (sizeof rules / sizeof rules[0])

struct fake {
    int fd, tcp, stop[2], port;
    pthread_t th;
    atomic_int hits[NRULES];
    atomic_int total;
};

struct delayed {
    int64_t due;
    struct sockaddr_in to;
    unsigned char buf[512];
    size_t len;
};

static void put16(unsigned char *b, size_t *n, unsigned v)
{
    b[(*n)++] = (unsigned char)(v >> 8);
    b[(*n)++] = (unsigned char)v;
}

static void put32(unsigned char *b, size_t *n, uint32_t v)
{
    put16(b, n, v >> 16);
    put16(b, n, v & 0xffff);
}

static void put_name(unsigned char *b, size_t *n, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        b[(*n)++] = (unsigned char)l;
        memcpy(b + *n, name, l);
        *n += l;
        name += l + (dot ? 1 : 0);
    }
    b[(*n)++] = 0;
}

static unsigned get_be16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static bool rule_matches(const struct frule *r, const char *name, int qtype)
{
    if (r->qtype && r->qtype != qtype)
        return false;
    if (r->name[0] == '*') {
        size_t sl = strlen(r->name + 1), nl = strlen(name);   /* ".many.test" */
        return nl > sl && !strcmp(name + nl - sl, r->name + 1);
    }
    return !strcmp(r->name, name);
}

/* The reply to query q (qlen bytes), or 0 for silence. */
static size_t answer(struct fake *f, const unsigned char *q, size_t qlen, unsigned char *out,
                     int *delay, bool udp)
{
    *delay = 0;
    if (qlen < 17 || get_be16(q + 4) != 1)
        return 0;
    char name[300];
    size_t nl = 0, off = 12;
    while (off < qlen && q[off]) {
        size_t l = q[off++];
        if (off + l > qlen || nl + l + 2 > sizeof name)
            return 0;
        if (nl)
            name[nl++] = '.';
        for (size_t i = 0; i < l; i++) {
            unsigned char c = q[off + i];
            name[nl++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        off += l;
    }
    name[nl] = '\0';
    if (off + 5 > qlen)
        return 0;
    off++;
    int qtype = (int)get_be16(q + off);
    off += 4;
    atomic_fetch_add(&f->total, 1);

    const struct frule *r = NULL;
    for (size_t i = 0; i < NRULES && !r; i++)
        if (rule_matches(&rules[i], name, qtype)) {
            r = &rules[i];
            atomic_fetch_add(&f->hits[i], 1);
        }
    static const struct frule nxdefault = { "", 0, FK_NX, 0, -1, 0, { { 0 } } };
    if (!r)
        r = &nxdefault;
    if (r->kind == FK_SILENT)
        return 0;
    *delay = r->delay_ms;

    size_t n = 0;
    unsigned rcode = r->kind == FK_NX ? 3 : r->kind == FK_SERVFAIL ? 2 : r->kind == FK_REFUSED ? 5 : 0;
    out[n++] = q[0];
    out[n++] = q[1];
    out[n++] = (unsigned char)(0x80 | (q[2] & 0x79));   /* QR, opcode, RD */
    out[n++] = (unsigned char)(0x80 | rcode);            /* RA */
    size_t nan = 0;
    while (nan < 4 && r->rr[nan].type)
        nan++;
    if (udp && r->kind == FK_TCP) {
        out[2] |= 0x02;   /* TC: ask again over TCP */
        nan = 0;
    }
    bool soa = (r->kind == FK_NX || (r->kind == FK_ANSWER && nan == 0)) && r->soa_ttl >= 0;
    put16(out, &n, 1);
    put16(out, &n, (unsigned)nan);
    put16(out, &n, soa ? 1 : 0);
    put16(out, &n, 0);
    memcpy(out + n, q + 12, off - 12);
    n += off - 12;
    for (size_t i = 0; i < nan; i++) {
        const struct frr *rr = &r->rr[i];
        if (rr->owner)
            put_name(out, &n, rr->owner);
        else
            put16(out, &n, 0xc00c);
        put16(out, &n, (unsigned)rr->type);
        put16(out, &n, 1);
        put32(out, &n, (uint32_t)rr->ttl);
        size_t lenat = n;
        n += 2;
        if (rr->type == DNS_T_A) {
            inet_pton(AF_INET, rr->data, out + n);
            n += 4;
        } else if (rr->type == DNS_T_AAAA) {
            inet_pton(AF_INET6, rr->data, out + n);
            n += 16;
        } else if (rr->type == DNS_T_TXT || rr->type == DNS_T_SPF) {
            const char *s = rr->data;
            do {
                const char *bar = strchr(s, '|');
                size_t l = bar ? (size_t)(bar - s) : strlen(s);
                out[n++] = (unsigned char)l;
                memcpy(out + n, s, l);
                n += l;
                s = bar ? bar + 1 : NULL;
            } while (s);
        } else if (rr->type == DNS_T_MX) {
            put16(out, &n, (unsigned)rr->pref);
            put_name(out, &n, rr->data);
        } else {   /* PTR, CNAME */
            put_name(out, &n, rr->data);
        }
        size_t rdlen = n - lenat - 2;
        put16(out, &lenat, (unsigned)rdlen);
    }
    if (soa) {
        put_name(out, &n, "test");
        put16(out, &n, T_SOA);
        put16(out, &n, 1);
        put32(out, &n, (uint32_t)r->soa_ttl);
        size_t lenat = n;
        n += 2;
        put_name(out, &n, "ns.test");
        put_name(out, &n, "hostmaster.test");
        put32(out, &n, 1);
        put32(out, &n, 3600);
        put32(out, &n, 600);
        put32(out, &n, 86400);
        put32(out, &n, (uint32_t)r->soa_min);
        size_t rdlen = n - lenat - 2;
        put16(out, &lenat, (unsigned)rdlen);
    }
    return n;
}

/* One TCP connection: length-prefixed queries until EOF or 300 ms of
 * silence, answered in full. */
static void tcp_client(struct fake *f)
{
    int c = accept(f->tcp, NULL, NULL);
    if (c < 0)
        return;
    struct timeval tv = { 0, 300000 };
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    unsigned char in[514], out[2050];
    for (;;) {
        if (recv(c, in, 2, MSG_WAITALL) != 2)
            break;
        size_t len = get_be16(in);
        if (len > 512 || recv(c, in, len, MSG_WAITALL) != (ssize_t)len)
            break;
        int delay;
        size_t n = answer(f, in, len, out + 2, &delay, false);
        if (!n)
            continue;
        out[0] = (unsigned char)(n >> 8);
        out[1] = (unsigned char)n;
        if (send(c, out, n + 2, MSG_NOSIGNAL) != (ssize_t)(n + 2))
            break;
    }
    close(c);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    static struct delayed q[256];
    size_t nq = 0;
    for (;;) {
        int64_t now = dns_now_ms();
        int timeout = -1;
        for (size_t i = 0; i < nq; i++) {
            int64_t left = q[i].due > now ? q[i].due - now : 0;
            if (timeout < 0 || left < timeout)
                timeout = (int)left;
        }
        struct pollfd p[3] = { { f->fd, POLLIN, 0 }, { f->stop[0], POLLIN, 0 },
                               { f->tcp, POLLIN, 0 } };
        if (poll(p, 3, timeout) < 0)
            continue;
        if (p[2].revents & POLLIN)
            tcp_client(f);
        if (p[1].revents)
            break;
        now = dns_now_ms();
        for (size_t i = 0; i < nq;) {
            if (q[i].due <= now) {
                sendto(f->fd, q[i].buf, q[i].len, 0, (struct sockaddr *)&q[i].to, sizeof q[i].to);
                q[i] = q[--nq];
            } else {
                i++;
            }
        }
        if (!(p[0].revents & POLLIN))
            continue;
        unsigned char in[512], out[2048];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t len = recvfrom(f->fd, in, sizeof in, 0, (struct sockaddr *)&from, &fl);
        if (len <= 0)
            continue;
        int delay;
        size_t n = answer(f, in, (size_t)len, out, &delay, true);
        if (!n)
            continue;
        if (delay > 0 && nq < sizeof q / sizeof q[0] && n <= sizeof q[0].buf) {
            q[nq].due = now + delay;
            q[nq].to = from;
            memcpy(q[nq].buf, out, n);
            q[nq].len = n;
            nq++;
        } else {
            sendto(f->fd, out, n, 0, (struct sockaddr *)&from, fl);
        }
    }
    return NULL;
}

static struct fake *fake_start(void)
{
    struct fake *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    /* a free UDP port whose TCP twin is free too (for answers too big for
     * UDP); another program may hold the TCP one: try the next port */
    for (int attempt = 0;; attempt++) {
        ck_assert_int_lt(attempt, 50);
        f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(f->fd, 0);
        int big = 1 << 20;   /* bursts of queries: drops here are not dns.c's */
        setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&a, sizeof a), 0);
        socklen_t al = sizeof a;
        ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&a, &al), 0);
        f->port = ntohs(a.sin_port);
        f->tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(f->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(f->tcp, (struct sockaddr *)&a, sizeof a) == 0)
            break;
        close(f->tcp);
        close(f->fd);
    }
    ck_assert_int_eq(listen(f->tcp, 8), 0);
    ck_assert_int_eq(pipe(f->stop), 0);
    ck_assert_int_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(struct fake *f)
{
    ck_assert_int_eq(write(f->stop[1], "x", 1), 1);
    pthread_join(f->th, NULL);
    close(f->fd);
    close(f->tcp);
    close(f->stop[0]);
    close(f->stop[1]);
    free(f);
}

/* ---- fixture and helpers ---- */

static struct fake *fk;
static char fkaddr[64];

static void setup(void)
{
    fk = fake_start();
    snprintf(fkaddr, sizeof fkaddr, "127.0.0.1:%d", fk->port);
}

static void teardown(void)
{
    fake_stop(fk);
    fk = NULL;
}

/* Queries the scripted server saw for the rule named name (first match). */
static int hits(const char *name)
{
    for (size_t i = 0; i < NRULES; i++)
        if (!strcmp(rules[i].name, name))
            return atomic_load(&fk->hits[i]);
    ck_abort_msg("no rule %s", name);
    return -1;
}

static int hits_type(const char *name, int qtype)
{
    for (size_t i = 0; i < NRULES; i++)
        if (!strcmp(rules[i].name, name) && rules[i].qtype == qtype)
            return atomic_load(&fk->hits[i]);
    ck_abort_msg("no rule %s/%d", name, qtype);
    return -1;
}

static struct dns *mk_full(size_t cache_max, int timeout_ms, int neg_ttl_max)
{
    const char *servers[] = { fkaddr };
    struct dns_config cfg = { servers, 1, timeout_ms, 1, cache_max, neg_ttl_max };
    char err[256] = "";
    struct dns *d = dns_new(&cfg, err, sizeof err);
    ck_assert_msg(d != NULL, "dns_new: %s", err);
    return d;
}

static struct dns *mk(size_t cache_max)
{
    return mk_full(cache_max, 1000, 3600);
}

/* Query and wait (3 s at most); *rp is the caller's to free. */
static const struct dns_result *ask(struct dns *d, const char *name, enum dns_type t,
                                    struct dns_req **rp)
{
    int64_t dl = dns_now_ms() + 3000;
    struct dns_req *r = dns_query(d, name, t, dl);
    ck_assert_msg(r != NULL, "dns_query(%s) refused", name);
    const struct dns_result *res = dns_wait(r, dl);
    ck_assert_ptr_nonnull(res);
    *rp = r;
    return res;
}

/* One query; returns the status, and whether it came from the cache. */
static enum dns_status ask_status(struct dns *d, const char *name, enum dns_type t, bool *cached,
                                  int *ttl)
{
    struct dns_req *r;
    const struct dns_result *res = ask(d, name, t, &r);
    enum dns_status s = res->status;
    if (cached)
        *cached = res->cached;
    if (ttl)
        *ttl = res->ttl;
    dns_req_free(r);
    return s;
}

static void assert_addr(const struct ip *got, const char *want)
{
    struct ip w;
    ck_assert_int_eq(ip_parse(want, &w), 0);
    char g[IP_STRLEN];
    ip_format(got, g, sizeof g);
    ck_assert_msg(ip_cmp(got, &w) == 0, "address %s, expected %s", g, want);
}

static void sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

/* ---- answers ---- */

START_TEST(test_a_records_parsed_with_min_ttl)
{
    struct dns *d = mk(100);
    struct dns_req *r;
    const struct dns_result *res = ask(d, "a.test", DNS_T_A, &r);
    ck_assert_str_eq(dns_status_name(res->status), "ok");
    ck_assert_uint_eq(res->nrr, 2);
    ck_assert_int_eq(res->rr[0].type, DNS_T_A);
    assert_addr(&res->rr[0].addr, "192.0.2.1");
    ck_assert(ip_is_v4(&res->rr[0].addr));
    assert_addr(&res->rr[1].addr, "192.0.2.2");
    ck_assert_int_eq(res->rr[0].ttl, 300);
    ck_assert_int_eq(res->rr[1].ttl, 100);
    ck_assert_int_eq(res->ttl, 100);
    ck_assert(!res->cached);
    ck_assert_int_ge(res->latency_ms, 0);
    ck_assert_int_lt(res->latency_ms, 1000);
    dns_req_free(r);
    dns_free(d);
}
END_TEST

START_TEST(test_aaaa_mx_ptr_parsed)
{
    struct dns *d = mk(100);
    struct dns_req *r;
    const struct dns_result *res = ask(d, "a.test", DNS_T_AAAA, &r);
    ck_assert_int_eq(res->status, DNS_OK);
    ck_assert_uint_eq(res->nrr, 1);
    ck_assert_int_eq(res->rr[0].type, DNS_T_AAAA);
    assert_addr(&res->rr[0].addr, "2001:db8::1");
    ck_assert_int_eq(res->ttl, 200);
    dns_req_free(r);

    res = ask(d, "mx.test", DNS_T_MX, &r);
    ck_assert_int_eq(res->status, DNS_OK);
    ck_assert_uint_eq(res->nrr, 2);
    ck_assert_int_eq(res->rr[0].pref, 10);
    ck_assert_str_eq(res->rr[0].text, "mail.test");
    ck_assert_int_eq(res->rr[1].pref, 20);
    ck_assert_str_eq(res->rr[1].text, "backup.example");
    ck_assert_int_eq(res->ttl, 250);
    dns_req_free(r);

    res = ask(d, "1.2.0.192.in-addr.arpa", DNS_T_PTR, &r);
    ck_assert_int_eq(res->status, DNS_OK);
    ck_assert_uint_eq(res->nrr, 1);
    ck_assert_int_eq(res->rr[0].type, DNS_T_PTR);
    ck_assert_str_eq(res->rr[0].text, "host.test");
    dns_req_free(r);
    dns_free(d);
}
END_TEST

START_TEST(test_txt_strings_joined_per_record)
{
    struct dns *d = mk(100);
    struct dns_req *r;
    const struct dns_result *res = ask(d, "txt.test", DNS_T_TXT, &r);
    ck_assert_int_eq(res->status, DNS_OK);
    ck_assert_uint_eq(res->nrr, 3);
    ck_assert_str_eq(res->rr[0].text, "v=spf1 ip4:192.0.2.0/24 -all");
    ck_assert_str_eq(res->rr[1].text, "secondrecord");
    ck_assert_str_eq(res->rr[2].text, "");
    ck_assert_int_eq(res->rr[0].ttl, 3600);
    ck_assert_int_eq(res->ttl, 600);
    dns_req_free(r);

    res = ask(d, "spf.test", DNS_T_SPF, &r);
    ck_assert_int_eq(res->status, DNS_OK);
    ck_assert_uint_eq(res->nrr, 1);
    ck_assert_int_eq(res->rr[0].type, DNS_T_SPF);
    ck_assert_str_eq(res->rr[0].text, "v=spf1 -all");
    dns_req_free(r);
    dns_free(d);
}
END_TEST

/* SPF records often pass 512 bytes: the truncated UDP reply makes c-ares
 * ask again over TCP, whose socket we must watch for writing too. */
START_TEST(test_truncated_answer_retried_over_tcp)
{
    struct dns *d = mk(100);
    struct dns_req *r;
    const struct dns_result *res = ask(d, "big.test", DNS_T_TXT, &r);
    ck_assert_msg(res->status == DNS_OK, "%s: %s", dns_status_name(res->status), res->error);
    ck_assert_uint_eq(res->nrr, 1);
    ck_assert_uint_eq(strlen(res->rr[0].text), 7 + 3 * 200);
    ck_assert(!strncmp(res->rr[0].text, "v=spf1 0123456789", 17));
    ck_assert_int_eq(hits("big.test"), 2);   /* UDP, then TCP */
    dns_req_free(r);
    dns_free(d);
}
END_TEST

START_TEST(test_cname_chain_followed_and_strays_ignored)
{
    struct dns *d = mk(100);
    struct dns_req *r;
    const struct dns_result *res = ask(d, "alias.test", DNS_T_A, &r);
    ck_assert_int_eq(res->status, DNS_OK);
    ck_assert_uint_eq(res->nrr, 1);   /* the CNAME is not an A record */
    assert_addr(&res->rr[0].addr, "192.0.2.9");
    ck_assert_int_eq(res->rr[0].ttl, 50);
    ck_assert_int_eq(res->ttl, 20);   /* the alias lives no longer than the CNAME */
    dns_req_free(r);

    /* an A record for a name nobody asked about is not an answer */
    res = ask(d, "stray.test", DNS_T_A, &r);
    ck_assert_str_eq(dns_status_name(res->status), "nodata");
    ck_assert_uint_eq(res->nrr, 0);
    ck_assert_int_eq(res->ttl, 60);   /* no SOA in that answer: the default */
    dns_req_free(r);
    dns_free(d);
}
END_TEST

/* ---- negative answers and failures ---- */

START_TEST(test_nxdomain_cached_for_soa_minimum)
{
    struct dns *d = mk(100);
    bool cached;
    int ttl;
    ck_assert_int_eq(ask_status(d, "nx.test", DNS_T_A, &cached, &ttl), DNS_NXDOMAIN);
    ck_assert(!cached);
    ck_assert_int_eq(ttl, 30);   /* SOA TTL 600, minimum 30 */
    ck_assert_int_eq(hits("nx.test"), 1);
    ck_assert_int_eq(ask_status(d, "nx.test", DNS_T_A, &cached, &ttl), DNS_NXDOMAIN);
    ck_assert(cached);
    ck_assert_int_eq(ttl, 30);
    ck_assert_int_eq(hits("nx.test"), 1);

    struct dns_stats st;
    dns_get_stats(d, &st);
    ck_assert_uint_eq(st.queries, 2);
    ck_assert_uint_eq(st.cache_hits, 1);
    ck_assert_uint_eq(st.sent, 1);
    ck_assert_uint_eq(st.cache_entries, 1);

    /* the TTL of the SOA record bounds its minimum (RFC 2308 5) */
    ck_assert_int_eq(ask_status(d, "nxmin.test", DNS_T_A, NULL, &ttl), DNS_NXDOMAIN);
    ck_assert_int_eq(ttl, 20);
    /* no SOA: the default */
    ck_assert_int_eq(ask_status(d, "nxnosoa.test", DNS_T_A, NULL, &ttl), DNS_NXDOMAIN);
    ck_assert_int_eq(ttl, 60);
    ck_assert_int_eq(ask_status(d, "nxnosoa.test", DNS_T_A, &cached, NULL), DNS_NXDOMAIN);
    ck_assert(cached);
    dns_free(d);
}
END_TEST

START_TEST(test_negative_ttl_capped_by_neg_ttl_max)
{
    struct dns *d = mk_full(100, 1000, 900);
    int ttl;
    ck_assert_int_eq(ask_status(d, "nxbig.test", DNS_T_A, NULL, &ttl), DNS_NXDOMAIN);
    ck_assert_int_eq(ttl, 900);
    dns_free(d);

    d = mk_full(100, 1000, 40);
    ck_assert_int_eq(ask_status(d, "nxnosoa.test", DNS_T_A, NULL, &ttl), DNS_NXDOMAIN);
    ck_assert_int_eq(ttl, 40);
    dns_free(d);

    /* 0: negative answers are not cached at all */
    d = mk_full(100, 1000, 0);
    bool cached;
    ck_assert_int_eq(ask_status(d, "nx.test", DNS_T_A, &cached, &ttl), DNS_NXDOMAIN);
    ck_assert_int_eq(ask_status(d, "nx.test", DNS_T_A, &cached, &ttl), DNS_NXDOMAIN);
    ck_assert(!cached);
    ck_assert_int_eq(hits("nx.test"), 2);
    dns_free(d);
}
END_TEST

START_TEST(test_nodata_cached)
{
    struct dns *d = mk(100);
    bool cached;
    int ttl;
    ck_assert_int_eq(ask_status(d, "nodata.test", DNS_T_TXT, &cached, &ttl), DNS_NODATA);
    ck_assert_int_eq(ttl, 45);
    ck_assert_int_eq(ask_status(d, "nodata.test", DNS_T_TXT, &cached, &ttl), DNS_NODATA);
    ck_assert(cached);
    ck_assert_int_eq(hits("nodata.test"), 1);
    /* another type of a name that has A records */
    ck_assert_int_eq(ask_status(d, "a.test", DNS_T_MX, NULL, &ttl), DNS_NODATA);
    ck_assert_int_eq(ttl, 45);
    ck_assert_int_eq(hits_type("a.test", 0), 1);
    dns_free(d);
}
END_TEST

START_TEST(test_servfail_and_refused_not_cached)
{
    struct dns *d = mk(100);
    struct dns_req *r;
    const struct dns_result *res = ask(d, "fail.test", DNS_T_A, &r);
    ck_assert_msg(res->status == DNS_SERVFAIL, "%s: %s", dns_status_name(res->status), res->error);
    ck_assert(strstr(res->error, "SERVFAIL") != NULL);
    dns_req_free(r);
    bool cached = true;
    ck_assert_int_eq(ask_status(d, "fail.test", DNS_T_A, &cached, NULL), DNS_SERVFAIL);
    ck_assert(!cached);
    ck_assert_int_eq(hits("fail.test"), 2);

    ck_assert_int_eq(ask_status(d, "refused.test", DNS_T_A, NULL, NULL), DNS_SERVFAIL);
    ck_assert_int_eq(ask_status(d, "refused.test", DNS_T_A, &cached, NULL), DNS_SERVFAIL);
    ck_assert(!cached);
    ck_assert_int_eq(hits("refused.test"), 2);

    struct dns_stats st;
    dns_get_stats(d, &st);
    ck_assert_uint_eq(st.servfails, 4);
    ck_assert_uint_eq(st.cache_hits, 0);
    ck_assert_uint_eq(st.cache_entries, 0);
    dns_free(d);
}
END_TEST

START_TEST(test_cares_timeout_is_timeout_and_not_cached)
{
    struct dns *d = mk_full(100, 150, 3600);   /* 150 ms per try, 1 try */
    int64_t t0 = dns_now_ms();
    struct dns_req *r;
    const struct dns_result *res = ask(d, "silent.test", DNS_T_A, &r);
    int64_t took = dns_now_ms() - t0;
    ck_assert_str_eq(dns_status_name(res->status), "timeout");
    ck_assert_msg(took >= 140 && took < 1000, "took %lld ms", (long long)took);
    ck_assert(strstr(res->error, "no answer") != NULL);
    dns_req_free(r);
    bool cached = true;
    ck_assert_int_eq(ask_status(d, "silent.test", DNS_T_A, &cached, NULL), DNS_TIMEOUT);
    ck_assert(!cached);
    ck_assert_int_eq(hits("silent.test"), 2);
    struct dns_stats st;
    dns_get_stats(d, &st);
    ck_assert_uint_eq(st.timeouts, 2);
    ck_assert_uint_eq(st.sent, 2);
    dns_free(d);
}
END_TEST

/* A closed port answers with ICMP "port unreachable": a timeout for the
 * caller, without waiting for the c-ares timeout; a second server is then
 * asked. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

START_TEST(test_refused_connection_is_timeout_and_next_server_asked)
{
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", closed_port());
    const char *one[] = { dead };
    struct dns_config cfg = { one, 1, 2000, 1, 100, 3600 };
    char err[256];
    struct dns *d = dns_new(&cfg, err, sizeof err);
    ck_assert_ptr_nonnull(d);
    int64_t t0 = dns_now_ms();
    struct dns_req *r;
    const struct dns_result *res = ask(d, "a.test", DNS_T_A, &r);
    ck_assert_int_eq(res->status, DNS_TIMEOUT);
    ck_assert_int_lt(dns_now_ms() - t0, 1500);
    dns_req_free(r);
    dns_free(d);

    const char *two[] = { dead, fkaddr };
    cfg.servers = two;
    cfg.nservers = 2;
    d = dns_new(&cfg, err, sizeof err);
    ck_assert_ptr_nonnull(d);
    res = ask(d, "a.test", DNS_T_A, &r);
    ck_assert_int_eq(res->status, DNS_OK);
    assert_addr(&res->rr[0].addr, "192.0.2.1");
    dns_req_free(r);
    dns_free(d);
}
END_TEST

/* ---- the cache ---- */

START_TEST(test_cache_hit_is_immediate_with_remaining_ttl)
{
    struct dns *d = mk(100);
    struct dns_req *r1, *r2;
    ask(d, "a.test", DNS_T_A, &r1);
    /* another spelling of the same name */
    const struct dns_result *res = ask(d, "A.Test.", DNS_T_A, &r2);
    ck_assert_int_eq(res->status, DNS_OK);
    ck_assert(res->cached);
    ck_assert_int_eq(res->latency_ms, 0);
    ck_assert_int_eq(res->ttl, 100);
    ck_assert_uint_eq(res->nrr, 2);
    assert_addr(&res->rr[1].addr, "192.0.2.2");
    ck_assert_int_eq(hits_type("a.test", DNS_T_A), 1);
    /* the first result is untouched by the second */
    const struct dns_result *first = dns_poll(r1);
    ck_assert_ptr_nonnull(first);
    ck_assert(!first->cached);
    dns_req_free(r1);
    dns_req_free(r2);
    /* the type is part of the key */
    ck_assert_int_eq(ask_status(d, "a.test", DNS_T_AAAA, NULL, NULL), DNS_OK);
    ck_assert_int_eq(hits_type("a.test", DNS_T_AAAA), 1);
    dns_free(d);
}
END_TEST

START_TEST(test_cache_entries_expire_by_ttl)
{
    struct dns *d = mk(100);
    bool cached;
    int ttl;
    ck_assert_int_eq(ask_status(d, "short.test", DNS_T_A, &cached, &ttl), DNS_OK);
    ck_assert_int_eq(ttl, 1);
    ck_assert_int_eq(ask_status(d, "short.test", DNS_T_A, &cached, NULL), DNS_OK);
    ck_assert(cached);
    ck_assert_int_eq(ask_status(d, "aging.test", DNS_T_A, NULL, NULL), DNS_OK);
    /* TTL 0: used for this answer only (RFC 1035 3.2.1) */
    ck_assert_int_eq(ask_status(d, "zero.test", DNS_T_A, NULL, &ttl), DNS_OK);
    ck_assert_int_eq(ttl, 0);
    ck_assert_int_eq(ask_status(d, "zero.test", DNS_T_A, &cached, NULL), DNS_OK);
    ck_assert(!cached);
    ck_assert_int_eq(hits("zero.test"), 2);

    sleep_ms(1100);
    ck_assert_int_eq(ask_status(d, "short.test", DNS_T_A, &cached, NULL), DNS_OK);
    ck_assert(!cached);
    ck_assert_int_eq(hits("short.test"), 2);
    /* still cached, with TTLs counted down */
    struct dns_req *r;
    const struct dns_result *res = ask(d, "aging.test", DNS_T_A, &r);
    ck_assert(res->cached);
    ck_assert_int_eq(res->ttl, 2);
    ck_assert_int_eq(res->rr[0].ttl, 2);
    ck_assert_int_eq(res->rr[1].ttl, 4);
    dns_req_free(r);
    ck_assert_int_eq(hits("aging.test"), 1);
    dns_free(d);
}
END_TEST

START_TEST(test_cache_bounded_least_recently_used_goes)
{
    struct dns *d = mk(4);
    char name[64];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "n%d.many.test", i);
        ck_assert_int_eq(ask_status(d, name, DNS_T_A, NULL, NULL), DNS_OK);
    }
    bool cached;
    ck_assert_int_eq(ask_status(d, "n0.many.test", DNS_T_A, &cached, NULL), DNS_OK);
    ck_assert(cached);   /* n0 is now the most recent, n1 the least */
    ck_assert_int_eq(ask_status(d, "n4.many.test", DNS_T_A, NULL, NULL), DNS_OK);
    struct dns_stats st;
    dns_get_stats(d, &st);
    ck_assert_uint_eq(st.cache_entries, 4);
    ck_assert_int_eq(hits("*.many.test"), 5);
    ck_assert_int_eq(ask_status(d, "n0.many.test", DNS_T_A, &cached, NULL), DNS_OK);
    ck_assert(cached);
    ck_assert_int_eq(ask_status(d, "n1.many.test", DNS_T_A, &cached, NULL), DNS_OK);
    ck_assert(!cached);
    ck_assert_int_eq(hits("*.many.test"), 6);

    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "m%d.many.test", i);
        ck_assert_int_eq(ask_status(d, name, DNS_T_A, NULL, NULL), DNS_OK);
    }
    dns_get_stats(d, &st);
    ck_assert_uint_eq(st.cache_entries, 4);
    dns_free(d);

    /* 0: no cache at all */
    d = mk(0);
    ck_assert_int_eq(ask_status(d, "a.test", DNS_T_A, NULL, NULL), DNS_OK);
    ck_assert_int_eq(ask_status(d, "a.test", DNS_T_A, &cached, NULL), DNS_OK);
    ck_assert(!cached);
    dns_get_stats(d, &st);
    ck_assert_uint_eq(st.cache_entries, 0);
    ck_assert_uint_eq(st.sent, 2);
    dns_free(d);
}
END_TEST

/* ---- deadlines ---- */

START_TEST(test_wait_ends_at_its_deadline_with_silent_server)
{
    struct dns *d = mk_full(100, 2000, 3600);
    int64_t t0 = dns_now_ms();
    struct dns_req *r = dns_query(d, "silent.test", DNS_T_A, t0 + 5000);
    ck_assert_ptr_nonnull(r);
    const struct dns_result *res = dns_wait(r, t0 + 300);
    int64_t took = dns_now_ms() - t0;
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(res->status, DNS_TIMEOUT);
    ck_assert_msg(took >= 300 && took <= 450, "took %lld ms", (long long)took);
    ck_assert_int_ge(res->latency_ms, 290);   /* counted from inside dns_query */
    /* the request itself goes on until its own deadline */
    ck_assert_ptr_null(dns_poll(r));

    /* the request's deadline bounds a longer wait */
    t0 = dns_now_ms();
    struct dns_req *r2 = dns_query(d, "silent.test", DNS_T_TXT, t0 + 200);
    res = dns_wait(r2, t0 + 5000);
    took = dns_now_ms() - t0;
    ck_assert_int_eq(res->status, DNS_TIMEOUT);
    ck_assert_msg(took >= 200 && took <= 350, "took %lld ms", (long long)took);
    ck_assert_ptr_eq(dns_poll(r2), res);   /* decided, for good */
    ck_assert_ptr_eq(dns_wait(r2, t0 + 5000), res);

    /* a deadline already past: no wait at all */
    struct dns_req *r3 = dns_query(d, "silent.test", DNS_T_MX, dns_now_ms() - 1);
    res = dns_poll(r3);
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(res->status, DNS_TIMEOUT);

    struct dns_stats st;
    dns_get_stats(d, &st);
    ck_assert_uint_eq(st.timeouts, 3);
    dns_req_free(r);
    dns_req_free(r2);
    dns_req_free(r3);
    dns_free(d);
}
END_TEST

START_TEST(test_late_answer_still_fills_cache)
{
    struct dns *d = mk(100);
    int64_t t0 = dns_now_ms();
    struct dns_req *r = dns_query(d, "late.test", DNS_T_A, t0 + 50);
    const struct dns_result *res = dns_wait(r, t0 + 50);
    ck_assert_int_eq(res->status, DNS_TIMEOUT);
    dns_req_free(r);   /* nobody waits any more */
    sleep_ms(300);     /* the server answers after 150 ms */
    bool cached;
    ck_assert_int_eq(ask_status(d, "late.test", DNS_T_A, &cached, NULL), DNS_OK);
    ck_assert(cached);
    ck_assert_int_eq(hits("late.test"), 1);
    dns_free(d);
}
END_TEST

START_TEST(test_poll_does_not_block)
{
    struct dns *d = mk(100);
    int64_t t0 = dns_now_ms();
    struct dns_req *r = dns_query(d, "slow.test", DNS_T_A, t0 + 3000);
    ck_assert_ptr_null(dns_poll(r));
    ck_assert_int_lt(dns_now_ms() - t0, 100);
    const struct dns_result *res = dns_wait(r, t0 + 3000);
    ck_assert_int_eq(res->status, DNS_OK);
    ck_assert_int_ge(res->latency_ms, 140);
    ck_assert_ptr_eq(dns_poll(r), res);
    dns_req_free(r);
    dns_free(d);
}
END_TEST

/* ---- concurrency ---- */

START_TEST(test_identical_queries_in_flight_share_one_packet)
{
    struct dns *d = mk(0);   /* no cache: only coalescing can save the packet */
    int64_t dl = dns_now_ms() + 3000;
    struct dns_req *r1 = dns_query(d, "slow.test", DNS_T_A, dl);
    struct dns_req *r2 = dns_query(d, "SLOW.test", DNS_T_A, dl);
    const struct dns_result *a = dns_wait(r1, dl), *b = dns_wait(r2, dl);
    ck_assert_int_eq(a->status, DNS_OK);
    ck_assert_int_eq(b->status, DNS_OK);
    assert_addr(&b->rr[0].addr, "192.0.2.12");
    ck_assert(!a->cached && !b->cached);
    ck_assert_int_eq(hits("slow.test"), 1);
    struct dns_stats st;
    dns_get_stats(d, &st);
    ck_assert_uint_eq(st.sent, 1);
    dns_req_free(r1);
    dns_req_free(r2);
    dns_free(d);
}
END_TEST

struct together {
    struct dns *d;
    pthread_barrier_t *go;
    const char *name;
    enum dns_status got;
};

static void *ask_together(void *arg)
{
    struct together *t = arg;
    pthread_barrier_wait(t->go);
    int64_t dl = dns_now_ms() + 3000;
    struct dns_req *r = dns_query(t->d, t->name, DNS_T_A, dl);
    t->got = r ? dns_wait(r, dl)->status : DNS_ERROR;
    dns_req_free(r);
    return NULL;
}

START_TEST(test_concurrent_threads_coalesced)
{
    struct dns *d = mk(100);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 4);
    pthread_t th[4];
    struct together t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct together){ d, &go, "slow.test", DNS_PENDING };
        ck_assert_int_eq(pthread_create(&th[i], NULL, ask_together, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(t[i].got, DNS_OK);
    }
    pthread_barrier_destroy(&go);
    ck_assert_int_eq(hits("slow.test"), 1);
    dns_free(d);
}
END_TEST

#define NTHREADS 8
#define PER_THREAD 200

struct worker {
    struct dns *d;
    int id;
    int bad;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    char name[64];
    for (int i = 0; i < PER_THREAD; i++) {
        int k = (i * 7 + w->id * 13) % 60;
        bool nx = k % 5 == 0;
        snprintf(name, sizeof name, nx ? "x%d.nx.many.test" : "h%d.many.test", k);
        int64_t dl = dns_now_ms() + 3000;
        struct dns_req *r = dns_query(w->d, name, DNS_T_A, dl);
        if (!r) {
            w->bad++;
            continue;
        }
        const struct dns_result *res = i % 3 ? dns_wait(r, dl) : NULL;
        if (!res) {
            while (!(res = dns_poll(r)))
                sleep_ms(1);
        }
        struct ip want;
        ip_parse("127.0.0.2", &want);
        if (nx ? res->status != DNS_NXDOMAIN
               : res->status != DNS_OK || res->nrr != 1 || ip_cmp(&res->rr[0].addr, &want))
            w->bad++;
        if (i % 11 == 0)
            dns_req_free(dns_query(w->d, "silent.test", DNS_T_A, dl));   /* abandoned */
        dns_req_free(r);
    }
    return NULL;
}

START_TEST(test_many_threads_many_queries)
{
    struct dns *d = mk(16);   /* small: evictions under load */
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){ d, i, 0 };
        ck_assert_int_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
    }
    ck_assert_int_eq(bad, 0);
    struct dns_stats st;
    dns_get_stats(d, &st);
    int abandoned = NTHREADS * ((PER_THREAD + 10) / 11);
    ck_assert_uint_eq(st.queries, (uint64_t)(NTHREADS * PER_THREAD + abandoned));
    ck_assert_uint_le(st.cache_entries, 16);
    ck_assert_uint_gt(st.cache_hits, 0);
    /* every answered query either hit the cache or reached the server once
     * (shared by the queries coalesced with it) */
    ck_assert_uint_le(st.sent, (uint64_t)(NTHREADS * PER_THREAD) - st.cache_hits + 1);
    ck_assert_int_eq(hits("*.many.test") + hits("*.nx.many.test") + hits("silent.test"),
                     (int)st.sent);
    dns_free(d);
}
END_TEST

/* Rounds of a thousand distinct names at once: every one answered by its
 * one packet (tries 1: a lost answer would be a timeout). */
START_TEST(test_bursts_of_distinct_names_all_answered)
{
    struct dns *d = mk_full(5000, 2000, 3600);
    enum { N = 1000, ROUNDS = 4 };
    static struct dns_req *rs[N];
    char name[64];
    int ok = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int64_t dl = dns_now_ms() + 4000;
        for (int i = 0; i < N; i++) {
            snprintf(name, sizeof name, "burst%d-%d.many.test", round, i);
            rs[i] = dns_query(d, name, DNS_T_A, dl);
            ck_assert_ptr_nonnull(rs[i]);
        }
        for (int i = 0; i < N; i++) {
            const struct dns_result *res = dns_wait(rs[i], dl);
            ok += res->status == DNS_OK;
            dns_req_free(rs[i]);
        }
    }
    ck_assert_int_eq(ok, N * ROUNDS);
    ck_assert_int_eq(hits("*.many.test"), N * ROUNDS);
    struct dns_stats st;
    dns_get_stats(d, &st);
    ck_assert_uint_eq(st.sent, N * ROUNDS);
    ck_assert_uint_eq(st.cache_entries, N * ROUNDS);
    dns_free(d);
}
END_TEST

/* A list that stops answering: thousands of abandoned queries to it must
 * not hold every c-ares slot, nor queue ahead of a healthy name. */
START_TEST(test_abandoned_queries_to_a_silent_list_do_not_starve_others)
{
    struct dns *d = mk_full(0, 3000, 3600);   /* c-ares would wait 3 s per try */
    int64_t dl = dns_now_ms() + 100;
    char name[64];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "q%d.quiet.test", i);
        struct dns_req *r = dns_query(d, name, DNS_T_A, dl);
        ck_assert_ptr_nonnull(r);
        dns_req_free(r);   /* the caller's deadline passes; nobody waits */
    }
    sleep_ms(200);
    int64_t t0 = dns_now_ms();
    struct dns_req *r = dns_query(d, "a.test", DNS_T_A, t0 + 1500);
    const struct dns_result *res = dns_wait(r, t0 + 1500);
    ck_assert_msg(res->status == DNS_OK, "healthy name: %s after %lld ms (%s)",
                  dns_status_name(res->status), (long long)(dns_now_ms() - t0), res->error);
    ck_assert_int_lt(dns_now_ms() - t0, 500);
    dns_req_free(r);
    ck_assert_int_lt(hits("*.quiet.test"), 2000);   /* stale ones were never sent */
    dns_free(d);
}
END_TEST

START_TEST(test_free_while_pending_and_after_dns_free)
{
    struct dns *d = mk(100);
    int64_t dl = dns_now_ms() + 5000;
    dns_req_free(dns_query(d, "silent.test", DNS_T_A, dl));
    dns_req_free(dns_query(d, "slow.test", DNS_T_A, dl));
    struct dns_req *kept = dns_query(d, "silent.test", DNS_T_TXT, dl);
    struct dns_req *twin = dns_query(d, "silent.test", DNS_T_TXT, dl);
    dns_req_free(twin);   /* one of two waiters on one query leaves */
    sleep_ms(20);         /* let the queries reach the server */
    dns_free(d);
    /* the request outlives the resolver: decided, and still safe to free */
    const struct dns_result *res = dns_poll(kept);
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(res->status, DNS_ERROR);
    ck_assert_ptr_eq(dns_wait(kept, dl), res);
    dns_req_free(kept);
}
END_TEST

/* ---- configuration and names ---- */

START_TEST(test_server_strings)
{
    static const char *good[] = { "127.0.0.1", "127.0.0.1:5353", "[::1]:5353", "::1",
                                  "[192.0.2.1]:53", "2001:db8::53", "[2001:db8::53]" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *one[] = { good[i] };
        struct dns_config cfg = { one, 1, 1000, 1, 10, 60 };
        char err[256] = "";
        struct dns *d = dns_new(&cfg, err, sizeof err);
        ck_assert_msg(d != NULL, "%s refused: %s", good[i], err);
        dns_free(d);
    }
    static const char *bad[] = { "example.com", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:",
                                 "[::1", "[::1]x", "[::1]:", "1.2.3.4:53x", "", "1.2.3",
                                 "[]:53", "1.2.3.4:-53", "fe80::1%eth0" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *two[] = { "127.0.0.1", bad[i] };
        struct dns_config cfg = { two, 2, 1000, 1, 10, 60 };
        char err[256] = "";
        struct dns *d = dns_new(&cfg, err, sizeof err);
        ck_assert_msg(d == NULL, "%s accepted", bad[i]);
        ck_assert_msg(strstr(err, "dns server must be") != NULL, "err: %s", err);
        char quoted[80];
        snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
        ck_assert_msg(strstr(err, quoted) != NULL, "err does not show %s: %s", quoted, err);
    }
    /* no servers: the system's resolv.conf */
    struct dns_config sys = { NULL, 0, 1000, 2, 10, 60 };
    struct dns *d = dns_new(&sys, NULL, 0);
    ck_assert_ptr_nonnull(d);
    dns_free(d);
}
END_TEST

START_TEST(test_invalid_names_rejected)
{
    struct dns *d = mk(100);
    int64_t dl = dns_now_ms() + 2000;
    char l63[64], l64[65], n253[300], n254[300];
    memset(l63, 'a', 63);
    l63[63] = '\0';
    memset(l64, 'a', 64);
    l64[64] = '\0';
    snprintf(n253, sizeof n253, "%s.%s.%s.%.61s", l63, l63, l63, l63);
    snprintf(n254, sizeof n254, "%s.%s.%s.%.62s", l63, l63, l63, l63);
    ck_assert_uint_eq(strlen(n253), 253);
    char l64name[80];
    snprintf(l64name, sizeof l64name, "%s.test", l64);
    const char *bad[] = { "", ".", "..", "a..test", ".a.test", "a.test..", l64name, n254,
                          "a b.test", "a\\.test", "caf\xc3\xa9.test", "a\n.test" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(dns_query(d, bad[i], DNS_T_A, dl) == NULL, "accepted \"%s\"", bad[i]);
    ck_assert_ptr_null(dns_query(d, NULL, DNS_T_A, dl));
    struct dns_stats st;
    dns_get_stats(d, &st);
    size_t nbad = sizeof bad / sizeof bad[0] + 1;
    ck_assert_uint_eq(st.errors, nbad);
    ck_assert_uint_eq(st.queries, nbad);
    ck_assert_uint_eq(st.sent, 0);

    /* the longest name and label are fine (the server has no such name) */
    char l63name[80];
    snprintf(l63name, sizeof l63name, "%s.test.", l63);
    const char *fine[] = { n253, l63name, "_spf.example.test" };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        bool cached;
        ck_assert_int_eq(ask_status(d, fine[i], DNS_T_A, &cached, NULL), DNS_NXDOMAIN);
    }
    /* a type this module does not decode is an error, not a crash */
    struct dns_req *r = dns_query(d, "a.test", (enum dns_type)255, dl);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(dns_wait(r, dl)->status, DNS_ERROR);
    dns_req_free(r);
    dns_free(d);
}
END_TEST

START_TEST(test_status_names)
{
    ck_assert_str_eq(dns_status_name(DNS_OK), "ok");
    ck_assert_str_eq(dns_status_name(DNS_NXDOMAIN), "nxdomain");
    ck_assert_str_eq(dns_status_name(DNS_NODATA), "nodata");
    ck_assert_str_eq(dns_status_name(DNS_TIMEOUT), "timeout");
    ck_assert_str_eq(dns_status_name(DNS_SERVFAIL), "servfail");
    ck_assert_str_eq(dns_status_name(DNS_ERROR), "error");
    ck_assert_str_eq(dns_status_name((enum dns_status)42), "?");
}
END_TEST

/* ---- lib/fcrdns.c on the scripted server ---- */

static void fcr(struct dns *d, const char *addr, int wait_ms, struct fcrdns_result *out)
{
    struct ip a;
    ck_assert_int_eq(ip_parse(addr, &a), 0);
    int64_t dl = dns_now_ms() + wait_ms;
    struct fcrdns *f = fcrdns_start(d, &a, wait_ms);
    ck_assert_ptr_nonnull(f);
    fcrdns_poll(f);   /* never blocks, whatever has arrived */
    fcrdns_finish(f, dl, out);
    fcrdns_free(f);
}

START_TEST(test_fcrdns_confirmed_name_is_kept_lower_case)
{
    struct dns *d = mk(100);
    struct fcrdns_result r;
    /* the first PTR name is not a host name: skipped, not looked up */
    fcr(d, "192.0.2.5", 3000, &r);
    ck_assert_str_eq(fcrdns_status_name(r.status), "confirmed");
    ck_assert_str_eq(r.name, "mail.good.test");
    ck_assert_int_eq(hits("bad_name-.test"), 0);
    /* IPv6: nibbles under ip6.arpa, AAAA back */
    fcr(d, "2001:db8::1", 3000, &r);
    ck_assert_int_eq(r.status, FCRDNS_CONFIRMED);
    ck_assert_str_eq(r.name, "a.test");
    dns_free(d);
}
END_TEST

START_TEST(test_fcrdns_forward_lookups_get_their_own_time)
{
    /* the session goes on longer than one timeout between connect and
     * MAIL: the forward lookups still get a whole timeout of their own */
    struct dns *d = mk(100);
    struct ip a;
    ck_assert_int_eq(ip_parse("192.0.2.5", &a), 0);
    struct fcrdns *f = fcrdns_start(d, &a, 300);
    sleep_ms(450);
    fcrdns_poll(f);
    struct fcrdns_result r;
    fcrdns_finish(f, dns_now_ms() + 300, &r);
    ck_assert_int_eq(r.status, FCRDNS_CONFIRMED);
    fcrdns_free(f);
    dns_free(d);
}
END_TEST

START_TEST(test_fcrdns_unconfirmed_none_and_tempfail)
{
    struct dns *d = mk_full(100, 200, 3600);
    struct fcrdns_result r;
    fcr(d, "192.0.2.6", 3000, &r);   /* liar.test points elsewhere */
    ck_assert_int_eq(r.status, FCRDNS_UNCONFIRMED);
    ck_assert_str_eq(r.name, "liar.test");
    fcr(d, "192.0.2.7", 3000, &r);   /* NXDOMAIN */
    ck_assert_int_eq(r.status, FCRDNS_NONE);
    ck_assert_str_eq(r.name, "");
    /* the PTR query unanswered, and the forward one: unknown, within the deadline */
    int64_t t0 = dns_now_ms();
    fcr(d, "192.0.2.8", 400, &r);
    ck_assert_int_eq(r.status, FCRDNS_TEMPFAIL);
    fcr(d, "192.0.2.9", 400, &r);
    ck_assert_int_eq(r.status, FCRDNS_TEMPFAIL);
    ck_assert_str_eq(r.name, "fwd.quiet.test");
    ck_assert_int_le(dns_now_ms() - t0, 1000);
    dns_free(d);
}
END_TEST

static Suite *dns_suite(void)
{
    Suite *s = suite_create("dns");
    TCase *tc = tcase_create("dns");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_a_records_parsed_with_min_ttl);
    tcase_add_test(tc, test_aaaa_mx_ptr_parsed);
    tcase_add_test(tc, test_txt_strings_joined_per_record);
    tcase_add_test(tc, test_truncated_answer_retried_over_tcp);
    tcase_add_test(tc, test_cname_chain_followed_and_strays_ignored);
    tcase_add_test(tc, test_nxdomain_cached_for_soa_minimum);
    tcase_add_test(tc, test_negative_ttl_capped_by_neg_ttl_max);
    tcase_add_test(tc, test_nodata_cached);
    tcase_add_test(tc, test_servfail_and_refused_not_cached);
    tcase_add_test(tc, test_cares_timeout_is_timeout_and_not_cached);
    tcase_add_test(tc, test_refused_connection_is_timeout_and_next_server_asked);
    tcase_add_test(tc, test_cache_hit_is_immediate_with_remaining_ttl);
    tcase_add_test(tc, test_cache_entries_expire_by_ttl);
    tcase_add_test(tc, test_cache_bounded_least_recently_used_goes);
    tcase_add_test(tc, test_wait_ends_at_its_deadline_with_silent_server);
    tcase_add_test(tc, test_abandoned_queries_to_a_silent_list_do_not_starve_others);
    tcase_add_test(tc, test_late_answer_still_fills_cache);
    tcase_add_test(tc, test_poll_does_not_block);
    tcase_add_test(tc, test_identical_queries_in_flight_share_one_packet);
    tcase_add_test(tc, test_concurrent_threads_coalesced);
    tcase_add_test(tc, test_many_threads_many_queries);
    tcase_add_test(tc, test_bursts_of_distinct_names_all_answered);
    tcase_add_test(tc, test_free_while_pending_and_after_dns_free);
    tcase_add_test(tc, test_server_strings);
    tcase_add_test(tc, test_invalid_names_rejected);
    tcase_add_test(tc, test_status_names);
    tcase_add_test(tc, test_fcrdns_confirmed_name_is_kept_lower_case);
    tcase_add_test(tc, test_fcrdns_unconfirmed_none_and_tempfail);
    tcase_add_test(tc, test_fcrdns_forward_lookups_get_their_own_time);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dns_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
