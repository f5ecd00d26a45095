/* snowsig: the per-message signals of snowshoe spam, pure functions (no
 * state, no network; the caller supplies PTR and forward-confirmation
 * results it looked up). The cluster signals over time are lib/snowshoe.h.
 *
 * Ownership: snowsig_tlds_load returns a list the caller frees with
 * snowsig_tlds_free. */
#ifndef KANJIKI_SNOWSIG_H
#define KANJIKI_SNOWSIG_H
#include <stdbool.h>
#include <stddef.h>

struct psl;

enum snowsig_helo {
    SNOWSIG_HELO_NONE = 0,    /* no HELO given */
    SNOWSIG_HELO_FQDN_PTR,    /* a full name equal to the client's PTR name */
    SNOWSIG_HELO_FQDN_SAME,   /* a full name in the PTR name's registrable domain */
    SNOWSIG_HELO_FQDN,        /* a full name, no PTR to compare with */
    SNOWSIG_HELO_MISMATCH,    /* a full name unrelated to the PTR name */
    SNOWSIG_HELO_BARE,        /* one label: "ary058", "WIN-3KD8" */
    SNOWSIG_HELO_LOCAL,       /* *.localhost, *.localdomain, *.local, *.lan,
                                 *.home, *.internal, "localhost" */
    SNOWSIG_HELO_LITERAL,     /* [192.0.2.1] or a bare address */
    SNOWSIG_HELO_INVALID,     /* not a host name at all */
};
#define SNOWSIG_HELO_COUNT 9
const char *snowsig_helo_name(enum snowsig_helo h);   /* "fqdn_ptr", "bare", ... */

/* ptr: the client's PTR name (NULL when none). psl: for the registrable
 * domain comparison (may be NULL: exact comparison only). */
enum snowsig_helo snowsig_helo_class(const char *helo, const char *ptr, const struct psl *psl);

/* How random a label looks, from 0 (a word, a brand) to 1 (keyboard noise
 * such as "ug53nhrhs09t"): digit/letter switches, consonant runs, vowel
 * ratio, rare bigrams. Measured on real domains (see the module's tests),
 * not guessed. Non-ASCII or empty labels: 0. */
double snowsig_label_randomness(const char *label, size_t len);
/* The randomness of a domain's distinctive label: the label left of the
 * public suffix ("ug53nhrhs09t" in ug53nhrhs09t.pink; "example" in
 * mail.example.co.uk). psl may be NULL (last two labels). */
double snowsig_domain_randomness(const char *domain, const struct psl *psl);

/* Is the Message-ID's domain unrelated to the sender's? Related: equal, or
 * the same registrable domain as the envelope sender or the From: domain,
 * or one of a known set of big-platform Message-ID domains used on behalf
 * of customers. NULL msgid_domain: false (no evidence). */
bool snowsig_msgid_unrelated(const char *msgid_domain, const char *env_domain,
                             const char *from_domain, const struct psl *psl);

/* Risky top-level domains: one per line in a file ("pink", "xyz  # comment"),
 * with an optional weight after the name ("top 2.0"); default weight 1. */
struct snowsig_tlds;
struct snowsig_tlds *snowsig_tlds_load(const char *path, char *err, size_t errlen);
void snowsig_tlds_free(struct snowsig_tlds *t);
/* The weight of domain's TLD in the list, 0 when not listed. */
double snowsig_tld_risk(const struct snowsig_tlds *t, const char *domain);

#endif
