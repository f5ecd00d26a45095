/* dns: every DNS lookup kanjiki makes goes through one resolver thread that
 * owns the c-ares channel, because c-ares 1.18 (Debian 12) is not
 * thread-safe. Callers on any thread start a query (dns_query: queued, the
 * thread woken through an eventfd) and collect it later (dns_wait) with a
 * deadline: a wait never lasts past its deadline, whatever the servers do;
 * the query itself may go on, and a late answer still fills the cache.
 *
 * Answers are cached by TTL in one bounded cache (least recently used
 * entries go first) shared by all callers; negative answers (NXDOMAIN, no
 * data) are cached too, for the SOA minimum when the server gives one,
 * never longer than neg_ttl_max. Timeouts and server failures are never
 * cached.
 *
 * Ownership: dns_new/dns_free. A struct dns_req from dns_query belongs to
 * the caller until dns_req_free, which is safe while the query is still
 * pending. The result returned by dns_wait/dns_result stays valid until
 * dns_req_free. */
#ifndef KANJIKI_DNS_H
#define KANJIKI_DNS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ip.h"

enum dns_type {
    DNS_T_A = 1,
    DNS_T_PTR = 12,
    DNS_T_MX = 15,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
    DNS_T_SPF = 99,
};

enum dns_status {
    DNS_PENDING = 0,
    DNS_OK,          /* at least one record of the asked type */
    DNS_NXDOMAIN,    /* the name does not exist */
    DNS_NODATA,      /* the name exists, no record of that type */
    DNS_TIMEOUT,     /* deadline passed, or the servers did not answer */
    DNS_SERVFAIL,    /* SERVFAIL / REFUSED from the server */
    DNS_ERROR,       /* anything else (bad name, malformed answer, ...) */
};

struct dns_rr {
    enum dns_type type;
    int ttl;
    struct ip addr;   /* A (IPv4-mapped, see ip.h) and AAAA */
    int pref;         /* MX preference */
    char *text;       /* PTR and MX: the name; TXT/SPF: the character
                         strings of one record joined (RFC 7208 3.3) */
};

struct dns_result {
    enum dns_status status;
    struct dns_rr *rr;
    size_t nrr;
    int ttl;              /* seconds the answer may be cached (min of the RRs,
                             or the negative TTL) */
    int64_t latency_ms;   /* from dns_query to the answer; 0 when cached */
    bool cached;
    char error[96];       /* DNS_SERVFAIL / DNS_ERROR: what went wrong */
};

struct dns_config {
    const char *const *servers;  /* "IP", "IP:PORT", "[IPv6]:PORT"; NULL/0 =
                                    the system's /etc/resolv.conf */
    size_t nservers;
    int timeout_ms;              /* per try, passed to c-ares */
    int tries;                   /* c-ares tries per server (>= 1) */
    size_t cache_max;            /* entries; 0 disables the cache */
    int neg_ttl_max;             /* cap for negative caching, seconds */
};

struct dns;
struct dns_req;

struct dns *dns_new(const struct dns_config *cfg, char *err, size_t errlen);
void dns_free(struct dns *d);

/* Monotonic clock in milliseconds; deadlines are on this clock. */
int64_t dns_now_ms(void);

/* Start a query (never blocks on the network). name is a domain name in
 * ASCII (callers convert IDNs first). Returns NULL only for a name that
 * cannot be a DNS name (too long, empty label): callers treat that as
 * DNS_ERROR. */
struct dns_req *dns_query(struct dns *d, const char *name, enum dns_type type,
                          int64_t deadline_ms);
/* Block until the answer or deadline_ms (whichever first); then the result
 * (status DNS_TIMEOUT if the deadline came first). */
const struct dns_result *dns_wait(struct dns_req *r, int64_t deadline_ms);
/* Non-blocking: the result if the answer is in, else NULL. */
const struct dns_result *dns_poll(struct dns_req *r);
void dns_req_free(struct dns_req *r);

struct dns_stats {
    uint64_t queries;       /* dns_query calls */
    uint64_t cache_hits;    /* answered from the cache */
    uint64_t sent;          /* handed to c-ares */
    uint64_t timeouts, servfails, errors;
    size_t cache_entries;
};
void dns_get_stats(struct dns *d, struct dns_stats *out);

const char *dns_status_name(enum dns_status s);  /* "ok", "nxdomain", ... */

#endif
