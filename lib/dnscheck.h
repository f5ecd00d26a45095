/* dnscheck: the blocklist lookups of one SMTP connection. Every zone of the
 * rules is asked at once, as soon as its subject is known (client IP at
 * connect, HELO name, sender domain, From: domain, link hosts), through
 * the shared resolver; nothing waits until the answers are needed
 * (dnscheck_wait), and then never past each lookup's own deadline (its
 * start plus the zone's timeout). A lookup that times out or errs is
 * "degraded": it never counts as listed and never as clean.
 *
 * Zone health is shared by all connections (struct dnscheck_health): a
 * zone that answers with an error code ("you may not query", 127.0.0.1 from
 * a URI list) or fails the RFC 5782 test points is skipped for a while and
 * reported once, never counted as a listing.
 *
 * Ownership: dnscheck_new/dnscheck_free; the ruleset, resolver and health
 * passed in must outlive it (a connection holds a policy reference). */
#ifndef KANJIKI_DNSCHECK_H
#define KANJIKI_DNSCHECK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "ip.h"
#include "rules.h"
#include "verdict.h"

/* --- zone health, shared --- */
struct dnscheck_health;
struct dnscheck_health *dnscheck_health_new(void);
void dnscheck_health_free(struct dnscheck_health *h);
/* Skip zone until until_ms (monotonic, dns_now_ms) because of why; logged
 * once per incident. */
void dnscheck_health_skip(struct dnscheck_health *h, const char *zone, int64_t until_ms,
                          const char *why);
/* The zone is fine again (a probe passed): forget any skip. */
void dnscheck_health_ok(struct dnscheck_health *h, const char *zone);
/* true (and why) while the zone is being skipped. */
bool dnscheck_health_skipped(struct dnscheck_health *h, const char *zone, int64_t now_ms,
                             char *why, size_t whylen);

/* An ip zone that answers an error code is paused for DNSCHECK_SKIP_MS.
 * A domain or uri zone is not: its query names come from the message, and a
 * crafted name (URI lists answer 127.0.0.1 to malformed queries) must not
 * switch a list off for everyone. fn (called from any thread) is told
 * instead, so that the zone can be re-tested with its test points. */
void dnscheck_health_on_refused(struct dnscheck_health *h, void (*fn)(void));

/* How long a zone that refused us is skipped. */
#define DNSCHECK_SKIP_MS (10 * 60 * 1000)

/* RFC 5782 section 5 test points: an IP list must list 127.0.0.2 and not
 * 127.0.0.1; a domain or URI list must list "test" and not "invalid".
 * Blocks up to deadline_ms. Returns 1 healthy, 0 broken (why says how),
 * -1 unknown (timeouts: the list is slow, not broken). */
int dnscheck_probe(struct dns *d, const struct dnsbl_zone *z, int64_t deadline_ms,
                   char *why, size_t whylen);

/* --- one connection's lookups --- */
struct dnscheck;

/* timeout_ms: the default per-zone deadline (dns_timeout). d may be NULL:
 * then nothing is looked up and nothing is recorded. */
struct dnscheck *dnscheck_new(struct dns *d, const struct ruleset *rs,
                              struct dnscheck_health *h, int timeout_ms);
void dnscheck_free(struct dnscheck *dc);

/* Start the lookups of every ip zone for the client. */
void dnscheck_client(struct dnscheck *dc, const struct ip *client);
/* Start the domain-zone lookups for an identity: which is one of
 * RULES_CHECK_HELO, RULES_CHECK_SENDER, RULES_CHECK_FROM (zones whose
 * `check` list names it). An IP literal or a name that is not a domain is
 * not looked up. */
void dnscheck_domain(struct dnscheck *dc, const char *domain, unsigned which);
/* Start the uri-zone lookups for a link host (a registrable domain or an IP
 * address text). */
void dnscheck_uri(struct dnscheck *dc, const char *host, bool is_ip);
/* Forget the lookups of the last transaction (sender, From:, links) and,
 * when helo_too, of the HELO name; the client's stay. */
void dnscheck_reset(struct dnscheck *dc, bool helo_too);

/* Wait for every pending lookup, each no longer than its own deadline, and
 * fetch TXT reasons of listings where the zone asks for them (same
 * deadline). Safe to call again: resolved lookups keep their result. */
void dnscheck_wait(struct dnscheck *dc);
/* Append one verdict_lookup per lookup to v (after dnscheck_wait). A zone
 * adds its weight once, on its first listed lookup. Returns true when any
 * lookup was degraded. */
bool dnscheck_evidence(const struct dnscheck *dc, struct verdict *v);
size_t dnscheck_count(const struct dnscheck *dc);

#endif
