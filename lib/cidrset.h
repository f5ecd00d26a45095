/* cidrset: a set of CIDR prefixes (IPv4 and IPv6 mixed) with fast
 * membership tests. Built once (add, then lookups; lookups are thread-safe
 * once no more adds happen). cidrset_new/cidrset_free; the set owns its
 * memory. */
#ifndef KANJIKI_CIDRSET_H
#define KANJIKI_CIDRSET_H
#include <stdbool.h>
#include <stddef.h>

#include "ip.h"

struct cidrset;

struct cidrset *cidrset_new(void);
void cidrset_free(struct cidrset *s);
/* Parse and add one prefix ("192.0.2.0/24", "2001:db8::/32", an address).
 * Returns 0, or -1 with the reason in err. */
int cidrset_add_str(struct cidrset *s, const char *text, char *err, size_t errlen);
void cidrset_add(struct cidrset *s, const struct cidr *c);
bool cidrset_contains(const struct cidrset *s, const struct ip *a);
/* If a matches, copy the most specific matching prefix into *hit. */
bool cidrset_match(const struct cidrset *s, const struct ip *a, struct cidr *hit);
size_t cidrset_count(const struct cidrset *s);
/* i-th prefix in insertion order, for printing the effective policy. */
const struct cidr *cidrset_get(const struct cidrset *s, size_t i);

#endif
