/* dnsbl: blocklist zones (RFC 5782) as data, and the pure parts of a
 * lookup: the query name for an IP or a domain, and what an answer means.
 * No I/O here: lib/dns.h does the asking.
 *
 * An answer is one of: listed (an address in the zone's accepted codes),
 * an error code (the list says "you may not query" or "error", such as
 * 127.255.255.252-255 on Spamhaus, or 127.0.0.1 on URI lists: counted as
 * an error, NEVER as a listing), clean (NXDOMAIN, or only codes outside
 * both sets), or degraded (timeout, SERVFAIL: the check could not be made).
 * Ownership: a struct dnsbl_zone owns its strings (dnsbl_zone_clear). */
#ifndef KANJIKI_DNSBL_H
#define KANJIKI_DNSBL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "ip.h"

enum dnsbl_kind {
    DNSBL_IP = 0,    /* client IP: reversed octets / nibbles */
    DNSBL_DOMAIN,    /* RHSBL: HELO, envelope sender and From: domains */
    DNSBL_URI,       /* domains and IPs of links in the body */
};

/* A set of IPv4 answer codes: ranges and bitmasks. Empty = "any
 * 127.0.0.0/8 address except the error codes". */
struct dnsbl_codes {
    struct { uint32_t lo, hi; } range[16];   /* host order, inclusive */
    size_t nrange;
    uint32_t mask[4];   /* listed when (code & mask) != 0, code in 127/8 */
    size_t nmask;
};

struct dnsbl_zone {
    char *name;                /* "zen.spamhaus.org" (lower case, no dots at ends) */
    enum dnsbl_kind kind;
    double weight;             /* added to the score when listed */
    struct dnsbl_codes codes;  /* what counts as listed */
    struct dnsbl_codes errors; /* what counts as a refusal/error */
    bool txt;                  /* fetch the TXT record for the reply text */
    int timeout_ms;            /* 0 = the configuration's dns_timeout */
    char *where;               /* "file:line" of its definition */
};

/* Parse "127.0.0.2", "127.0.0.2-127.0.0.11", "0x0e" / "mask:0x0e" (bitmask
 * on the whole address: listed when code & mask != 0 and code is in
 * 127.0.0.0/8) and add it to *c. Returns 0, or -1 with a reason. */
int dnsbl_codes_add(struct dnsbl_codes *c, const char *text, char *err, size_t errlen);
bool dnsbl_codes_match(const struct dnsbl_codes *c, uint32_t code);
/* "127.0.0.2,127.0.0.4-127.0.0.11,mask:0x0e" (what dnsbl_codes_add reads
 * back), or "" for an empty set. */
void dnsbl_codes_format(const struct dnsbl_codes *c, char *out, size_t outlen);

/* The zone defaults by kind: errors 127.255.255.252-127.255.255.255 for
 * every kind, plus 127.0.0.1 for DNSBL_URI (URI lists answer it to public
 * resolvers and to queries that are malformed). */
void dnsbl_zone_defaults(struct dnsbl_zone *z, enum dnsbl_kind kind);
void dnsbl_zone_clear(struct dnsbl_zone *z);

/* "2.0.0.127.zone" (IPv4: octets reversed), "<32 nibbles>.zone" (IPv6, RFC
 * 5782 2.4). Returns 0, or -1 when the result would not fit in out. */
int dnsbl_qname_ip(const struct ip *a, const char *zone, char *out, size_t outlen);
/* "example.com.zone" for a domain: lower-cased, one trailing dot dropped,
 * UTF-8 labels converted to IDNA A-labels (punycode, RFC 3492); -1 for a
 * name that is not a valid domain or would make a name over 253 octets. */
int dnsbl_qname_domain(const char *domain, const char *zone, char *out, size_t outlen);

/* UTF-8 label to "xn--..." (RFC 3492 punycode), ASCII labels lower-cased and
 * copied. Returns 0 or -1. */
int dnsbl_idna_label(const char *label, size_t len, char *out, size_t outlen);

enum dnsbl_outcome {
    DNSBL_CLEAN = 0,
    DNSBL_LISTED,
    DNSBL_REFUSED,   /* an error code: the list refuses us; never a listing */
    DNSBL_DEGRADED,  /* timeout / servfail / error: unknown */
};

/* Classify an A-record answer for zone z. code_out (optional) gets the
 * first address that decided (dotted text), or "" when none. */
enum dnsbl_outcome dnsbl_classify(const struct dnsbl_zone *z, const struct dns_result *r,
                                  char *code_out, size_t code_len);
const char *dnsbl_outcome_name(enum dnsbl_outcome o);   /* "clean", "listed", ... */

#endif
