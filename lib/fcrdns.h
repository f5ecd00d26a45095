/* fcrdns: forward-confirmed reverse DNS of a client address, through the
 * shared resolver (lib/dns.h): the PTR names of the address, then the
 * addresses of those names; confirmed when one of them is the client.
 * Started at connect, advanced without blocking as the session goes on,
 * finished with a deadline when the answer is needed.
 *
 * PTR names come from whoever controls the reverse zone: only syntactically
 * valid host names are kept (at most FCRDNS_MAX_NAMES), lower-cased,
 * without the trailing dot. Ownership: fcrdns_start/fcrdns_free. */
#ifndef KANJIKI_FCRDNS_H
#define KANJIKI_FCRDNS_H
#include <stdint.h>

#include "dns.h"
#include "ip.h"

#define FCRDNS_MAX_NAMES 4

enum fcrdns_status {
    FCRDNS_NONE = 0,      /* no PTR name (NXDOMAIN, no data, or none valid) */
    FCRDNS_CONFIRMED,     /* a PTR name resolves back to the client */
    FCRDNS_UNCONFIRMED,   /* PTR names, none resolving back */
    FCRDNS_TEMPFAIL,      /* timeout or server failure: unknown */
};

struct fcrdns_result {
    enum fcrdns_status status;
    char name[256];       /* the confirmed name, else the first PTR name, else "" */
};

struct fcrdns;
/* Start the PTR lookup; it and, later, the forward lookups each get
 * timeout_ms from their start. NULL when the address has no reverse name. */
struct fcrdns *fcrdns_start(struct dns *d, const struct ip *client, int timeout_ms);
/* Non-blocking: start the forward lookups once the PTR answer is in. */
void fcrdns_poll(struct fcrdns *f);
/* Wait for what is missing until deadline_ms (dns_now_ms clock). */
void fcrdns_finish(struct fcrdns *f, int64_t deadline_ms, struct fcrdns_result *out);
void fcrdns_free(struct fcrdns *f);
const char *fcrdns_status_name(enum fcrdns_status s);   /* "confirmed", ... */

#endif
