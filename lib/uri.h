/* uri: find the hosts of links in a message body, without any network
 * lookup, for URI blocklists. The caller feeds the body in chunks as the
 * MTA delivers it (uri_scan_add); the scanner decodes quoted-printable and
 * base64 text parts (MIME structure followed through multipart
 * boundaries), stops after a byte budget, and collects each distinct
 * registrable domain (example.co.uk for www.shop.example.co.uk, from the
 * Public Suffix List) or IP literal once.
 * Ownership: uri_scan_new/uri_scan_free; strings returned by uri_scan_get
 * belong to the scanner. */
#ifndef KANJIKI_URI_H
#define KANJIKI_URI_H
#include <stdbool.h>
#include <stddef.h>

struct psl;

/* Load a Public Suffix List file (Debian: /usr/share/publicsuffix/
 * public_suffix_list.dat). NULL path or an unreadable file: a small
 * built-in list of common suffixes, with err saying so. */
struct psl *psl_load(const char *path, char *err, size_t errlen);
void psl_free(struct psl *p);
/* The registrable domain (public suffix plus one label) of host, lower
 * case, into out. Returns 0, or -1 when host is itself a public suffix or
 * not a domain name. */
int psl_registrable(const struct psl *p, const char *host, char *out, size_t outlen);

struct uri_scan;

/* headers: the message's top-level Content-Type and
 * Content-Transfer-Encoding values (NULL when absent) so the scanner knows
 * how the body starts. max_bytes: decoded bytes scanned at most; max_hosts:
 * distinct hosts kept at most. */
struct uri_scan *uri_scan_new(const struct psl *psl, const char *content_type,
                              const char *transfer_encoding, size_t max_bytes,
                              size_t max_hosts);
void uri_scan_add(struct uri_scan *s, const char *chunk, size_t len);
/* Flush what is buffered; call once after the last chunk. */
void uri_scan_finish(struct uri_scan *s);
size_t uri_scan_count(const struct uri_scan *s);
/* i-th distinct host in order of first appearance: a registrable domain
 * ("example.com") or an IP address text ("192.0.2.1"); is_ip tells which. */
const char *uri_scan_get(const struct uri_scan *s, size_t i, bool *is_ip);
/* true when the byte budget cut the scan short */
bool uri_scan_truncated(const struct uri_scan *s);
void uri_scan_free(struct uri_scan *s);

#endif
