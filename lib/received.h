/* received: one Received: field value taken apart, and the dates in it.
 * Pure: no network, no allocation beyond the strings of a hop; every input
 * is distrusted (any bytes, any size, broken or missing clauses).
 *
 * Clauses are those of RFC 5321 4.4 ("from X (Y [ADDR]) by Z via V with W
 * id Q for <R>; DATE"), found as words outside comments, plus what real
 * MTAs put in the from clause's comments:
 *   Postfix/sendmail  from HELO (PTR [ADDR]) [(may be forged)]
 *                     from HELO (ident@PTR [ADDR]), from HELO ([ADDR])
 *   Exim              from PTR ([ADDR]:port helo=HELO), from [ADDR] (helo=HELO),
 *                     from PTR ([ADDR])  (HELO was PTR)
 *   Microsoft         from HELO (ADDR) by NAME (ADDR) with Microsoft SMTP Server
 *   qmail, Yahoo      from PTR (HELO helo) (ident@ADDR), from X (EHLO helo) (ADDR)
 *   fetchmail         from HOST [ADDR]
 * with IPv6 as [IPv6:..], [..] or bare in parentheses. A value made only of
 * comments and a date (qmail's "(qmail 123 invoked by uid 89)") is a local
 * note, flagged as such rather than as unparsed.
 *
 * Ownership: rcvd_parse fills a struct rcvd_hop that owns its strings
 * (rcvd_hop_clear). */
#ifndef KANJIKI_RECEIVED_H
#define KANJIKI_RECEIVED_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ip.h"

#define RCVD_MAX_VALUE (16 * 1024)   /* bytes of one value read; the rest ignored */
#define RCVD_MAX_NAME  255           /* bytes kept of a host name */
#define RCVD_MAX_TEXT  128           /* bytes kept of with/via/id/for/date text */

enum {
    RCVD_MAY_BE_FORGED = 1u << 0,  /* the receiver wrote "(may be forged)" */
    RCVD_NO_FROM       = 1u << 1,  /* no from clause */
    RCVD_NO_BY         = 1u << 2,  /* no by clause */
    RCVD_NO_DATE       = 1u << 3,  /* nothing after the ';' (or no ';') */
    RCVD_BAD_DATE      = 1u << 4,  /* text after the ';' that is no date */
    RCVD_UNPARSED      = 1u << 5,  /* neither from nor by: not an MTA's trace */
    RCVD_COMMENT       = 1u << 6,  /* only comments (and a date): a local note */
    RCVD_TRUNCATED     = 1u << 7,  /* longer than RCVD_MAX_VALUE */
};

struct rcvd_hop {
    char *from;       /* the from clause's first word, as written, or NULL */
    char *helo;       /* HELO/EHLO name (helo=, "HELO x", else the first word) */
    char *rdns;       /* reverse-DNS name the receiver recorded, or NULL
                         ("unknown" and ident@ dropped, one trailing dot too) */
    bool has_ip;
    struct ip ip;     /* the address the receiver saw the client at */
    char *by;         /* the receiving host's name (by clause's first word) */
    bool has_by_ip;
    struct ip by_ip;  /* its own address, when written ("by X (ADDR)") */
    char *with;       /* protocol words: "ESMTPS", "Microsoft SMTP Server" */
    char *via;
    char *id;         /* the receiver's id (queue id), as written */
    char *rcpt;       /* the for clause, without <> */
    char *date;       /* the text after the ';', trimmed, or NULL */
    int64_t time_ms;  /* epoch ms of date, 0 when none or not a date */
    int tz_mins;      /* date's offset east of UTC in minutes */
    unsigned flags;   /* RCVD_* */
};

/* Parse one unfolded Received value (NUL-terminated; at most
 * RCVD_MAX_VALUE bytes of it are read). Always fills *out. */
void rcvd_parse(const char *value, struct rcvd_hop *out);
void rcvd_hop_clear(struct rcvd_hop *h);

/* Epoch milliseconds of an RFC 5322 date-time ("Tue, 19 Sep 2023 18:35:49
 * +0000 (UTC)", also without weekday, with 2- or 3-digit years, obsolete
 * zone names, a zone only in the trailing comment, or asctime order "Wed
 * Oct 30 21:38:11 2002"); 0 when it is not one. *tz_mins (may be NULL)
 * gets the offset east of UTC it was written in (0 when none). */
int64_t rcvd_date(const char *s, int *tz_mins);

/* Not private, loopback, link-local, unspecified, shared (CGN),
 * benchmarking, multicast or reserved. Documentation ranges count as
 * public so that tests can use them. */
bool rcvd_ip_public(const struct ip *a);

#endif
