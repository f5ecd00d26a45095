/* addr: parse one SMTP envelope address (an RFC 5321 path as the MTA hands
 * it to the milter, with or without angle brackets) and say which routing
 * tricks it hides. Pure: no allocation, no I/O; the caller owns struct addr.
 *
 * A "routing trick" is any form that makes the address route somewhere other
 * than its visible domain: the percent hack, bang paths, a second '@', a
 * quoted local part holding '@', '%' or '!', and source routes. For each, the
 * parser also works out the destination domain the trick points at
 * (addr.target), so that a site which permits a trick can still apply the
 * relay check to where the mail would really go. */
#ifndef KANJIKI_ADDR_H
#define KANJIKI_ADDR_H
#include <stdbool.h>
#include <stddef.h>

#define ADDR_MAX_PATH   256   /* RFC 5321 4.5.3.1.3, brackets included */
#define ADDR_MAX_LOCAL  64    /* RFC 5321 4.5.3.1.1 */
#define ADDR_MAX_DOMAIN 255   /* RFC 5321 4.5.3.1.2 */

/* Bit flags in addr.tricks. */
enum addr_trick {
    ADDR_T_PERCENT      = 1u << 0, /* u%d@local, u%d (unquoted '%' in local) */
    ADDR_T_BANG         = 1u << 1, /* d!u, d!u@local (unquoted '!' in local) */
    ADDR_T_DOUBLE_AT    = 1u << 2, /* u@d@local: a second unquoted '@'       */
    ADDR_T_QUOTED       = 1u << 3, /* "u@d"@local, "u%d"@local, "d!u"@local, "u@d" */
    ADDR_T_SOURCE_ROUTE = 1u << 4, /* @local:u@d, @a,@b:u@d                  */
    ADDR_T_NO_DOMAIN    = 1u << 5, /* u: no '@' at all (unqualified)         */
    ADDR_T_EMPTY_DOMAIN = 1u << 6, /* u@ : '@' followed by nothing           */
};

enum addr_domain_kind {
    ADDR_D_NONE = 0,   /* null path <>, or no/empty domain */
    ADDR_D_NAME,       /* an ordinary domain name */
    ADDR_D_IPV4,       /* [192.0.2.1] */
    ADDR_D_IPV6,       /* [IPv6:2001:db8::1] */
};

struct addr {
    bool null_path;               /* "<>" */
    bool postmaster;              /* bare "postmaster" (RFC 5321 4.5.1) */
    unsigned tricks;              /* enum addr_trick bits */
    enum addr_domain_kind kind;
    /* local part exactly as written (quotes kept), NUL-terminated */
    char local[ADDR_MAX_LOCAL * 2 + 1];
    /* domain: for names lower-cased (ASCII only) with one trailing dot
     * removed; for literals the address text without brackets or "IPv6:"
     * prefix (e.g. "192.0.2.1", "2001:db8::1"). */
    char domain[ADDR_MAX_DOMAIN + 1];
    /* the destination domain a routing trick points at, normalised like
     * domain (lower-case, no trailing dot; may be a literal's address
     * text); "" when tricks has no routing bit or no target can be found. */
    char target[ADDR_MAX_DOMAIN + 1];
};

/* Parse in[0..len) into *out. Accepts "<addr>", "addr", "<>" and ESMTP
 * style with surrounding spaces trimmed. Returns 0 on success (which
 * includes addresses with tricks: those are reported in out->tricks, not as
 * errors) or -1 for an address that cannot be parsed at all (unbalanced
 * quotes or brackets, NUL or control bytes, invalid UTF-8, a bad IP literal,
 * a domain with empty or over-long labels or characters outside
 * letters/digits/hyphen/UTF-8, a local part over 64 or a path over 256
 * octets); then err (if errlen > 0) holds a short reason in English, e.g.
 * "unbalanced quote in local part". UTF-8 local parts and domains (SMTPUTF8)
 * are accepted. */
int addr_parse(const char *in, size_t len, struct addr *out,
               char *err, size_t errlen);

/* Domain equality as mail routing needs it: exact on labels, ASCII
 * case-insensitive, one trailing dot on either side ignored.
 * "EvilTest.Example." vs "eviltest.example" -> true;
 * "eviltest.example" vs "test.example" -> false. */
bool addr_domain_eq(const char *a, const char *b);

/* Short stable name of one trick bit for logs and verdicts:
 * "percent_hack", "bang_path", "double_at", "quoted_local",
 * "source_route", "unqualified", "empty_domain"; "unknown" otherwise. */
const char *addr_trick_name(unsigned trick_bit);

/* The domain of the (first) mailbox in a From: header field value, e.g.
 * "Ann <ann@Example.COM>" -> "example.com": lower-cased, no trailing dot,
 * comments and display names skipped. Returns 0, or -1 when there is no
 * usable domain (no '@', an address literal, a character that cannot be in
 * a domain). Bytes of 0x80 and up are kept (IDN: the caller converts). */
int addr_header_domain(const char *value, char *out, size_t outlen);

#endif
