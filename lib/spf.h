/* spf: SPF (RFC 7208) for one transaction through libspf2, with every DNS
 * lookup going through kanjiki's own resolver (lib/dns.h) by a libspf2 DNS
 * layer of our own, so that one setting (dns_servers) points all DNS at one
 * server and every lookup honours the caller's deadline.
 *
 * libspf2's traps, handled here: its default error handler calls abort(),
 * and so does libspf2 itself if a handler returns, so spf.c installs
 * handlers that log and, for an error, jump back into spf_check, which
 * reports temperror (degraded); it gives loopback
 * clients (127.0.0.0/8, ::1) a free "pass", so such clients are reported as
 * "none" with a note (a local client is not an SPF identity); its results
 * are mapped onto enum rules_spf.
 *
 * The identity is MAIL FROM, or the HELO name for the null sender
 * (RFC 7208 2.4). spf_check blocks the calling thread until the result or
 * the deadline, whichever comes first: a deadline hit is "temperror" with
 * degraded set.
 *
 * Ownership: spf_new/spf_free; a struct spf may be used by many threads at
 * once (each spf_check has its own libspf2 request and DNS layer state).
 * Strings in struct spf_result are inside it. */
#ifndef KANJIKI_SPF_H
#define KANJIKI_SPF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "ip.h"
#include "rules.h"

struct spf;

/* receiving_host: this server's name for the headers ("mx.example.com").
 * d: the shared resolver (not owned). */
struct spf *spf_new(struct dns *d, const char *receiving_host, char *err, size_t errlen);
void spf_free(struct spf *s);

struct spf_result {
    enum rules_spf result;
    bool degraded;             /* deadline passed or DNS failed: temperror */
    char identity[16];         /* "mailfrom" or "helo" */
    char domain[256];          /* the domain checked ("" when none) */
    char mechanism[128];       /* libspf2's comment/explanation, escaped ASCII */
    int64_t latency_ms;
    int dns_lookups;           /* DNS lookups this check made (0: none sent) */
    /* Header field values, ready for smfi_addheader (ASCII, escaped, no
     * CR/LF): "pass (mx.example.com: domain of a@b designates 192.0.2.1 as
     * permitted sender) client-ip=192.0.2.1; envelope-from=\"a@b\";
     * helo=h; receiver=mx.example.com; identity=mailfrom" */
    char received_spf[1024];
    /* RFC 8601 method result, without the authserv-id:
     * "spf=pass smtp.mailfrom=b" (or smtp.helo=h) */
    char auth_results[512];
};

/* Evaluate. sender: MAIL FROM without brackets ("" for the null sender);
 * helo may be NULL. Returns 0; -1 only when nothing could be evaluated
 * (no client address, or 0.0.0.0 / ::), with out->result = RULES_SPF_NONE
 * and empty header strings. */
int spf_check(struct spf *s, const struct ip *client, const char *helo,
              const char *sender, int64_t deadline_ms, struct spf_result *out);

/* libspf2's SPF_result_t (passed as int so that this header does not need
 * libspf2's) onto enum rules_spf. SPF_RESULT_INVALID, libspf2's "no
 * verdict", is permerror: spf_check resolves the cases it understands
 * (no record: none; DNS failure: temperror) before mapping. */
enum rules_spf spf_map_result(int spf2_result);

/* For tests: like spf_new, but DNS answers come from a static zone
 * (libspf2's zone layer) instead of the resolver; the deadline, lookup
 * limits and everything else work as with spf_new. records[i] is
 * "NAME TYPE DATA": TYPE one of A AAAA MX PTR TXT, DATA as in a zone file
 * ("10 mx.example.com" for MX, the text unquoted for TXT), or one of
 * "!NXDOMAIN", "!NODATA", "!TRY_AGAIN" (alone for its NAME and TYPE),
 * or "!LIBSPF2_ERROR" (the lookup makes libspf2 hit its internal error
 * handler, to test the recovery). Names not in the zone do not exist. */
struct spf *spf_new_zone(const char *receiving_host, const char *const *records,
                         size_t nrecords, char *err, size_t errlen);

#endif
