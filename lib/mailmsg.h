/* mailmsg: a stored message (an .eml file, or one message of an mbox) read
 * the way `kanjiki replay` needs it: the SMTP facts of the hop that
 * delivered it to the receiving site (client address, HELO, reverse-DNS
 * name, time) recovered from its own trace headers, and the header fields
 * the spam signals use. No network access; every input is distrusted
 * (any bytes, any size, broken or missing headers).
 *
 * Client address, in this order of trust:
 *   1. Received-SPF: ... client-ip=ADDR   (written by the receiving site)
 *   2. Authentication-Results: ... sender IP is ADDR  (Microsoft's form)
 *   3. the first Received: hop, from the top, whose "from" address is
 *      public (not private, loopback, link-local, documentation-only ranges
 *      are public for tests) and not in `trusted` (the site's own relays).
 * HELO and reverse-DNS name come from that same Received: hop when one is
 * found (taken apart by lib/received.h, which knows the common shapes);
 * time from that hop's date (after ';'), else the Date: field.
 *
 * Ownership: mailmsg_parse fills a struct mailmsg that owns its strings
 * (mailmsg_clear). */
#ifndef KANJIKI_MAILMSG_H
#define KANJIKI_MAILMSG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidrset.h"

struct mailmsg {
    char *client_ip;       /* normalised text (ip_format), or NULL */
    const char *client_from;  /* "received-spf", "authentication-results",
                                 "received", or NULL: where client_ip came from */
    char *helo;            /* HELO/EHLO name of that hop, or NULL */
    char *ptr;             /* reverse-DNS name the receiver recorded, or NULL */
    int64_t time_ms;       /* epoch ms: that hop's time, else Date:, else 0 */
    char *env_sender;      /* Return-Path without <>: "" for <>, NULL absent */
    char *from;            /* From: value, unfolded (raw bytes), or NULL */
    char *from_addr;       /* the address in From:, or NULL */
    char *from_domain;     /* its domain, lower case, or NULL */
    char *from_display;    /* display name (RFC 2047 words decoded to UTF-8
                              when charset is utf-8/us-ascii/iso-8859-1),
                              or NULL */
    char *message_id;      /* Message-ID value without <>, or NULL */
    char *msgid_domain;    /* the part after '@', lower case, or NULL */
    char *subject;         /* Subject, unfolded, RFC 2047 decoded as above */
    char *content_type;    /* top-level Content-Type, or NULL */
    char *cte;             /* top-level Content-Transfer-Encoding, or NULL */
    const char *body;      /* points into the parsed text (not owned) */
    size_t body_len;
    size_t nheaders;       /* header fields seen */
};

/* Parse one message (headers, blank line, body; LF or CRLF). trusted may be
 * NULL. Returns 0, or -1 with a reason when there is no header at all. The
 * body pointer points into text: keep text alive while using it. */
int mailmsg_parse(const char *text, size_t len, const struct cidrset *trusted,
                  struct mailmsg *out, char *err, size_t errlen);
void mailmsg_clear(struct mailmsg *m);

/* One header field's unfolded value (first occurrence, case-insensitive
 * name), copied into a new string, or NULL. For callers that need fields
 * not in struct mailmsg. */
char *mailmsg_header(const char *text, size_t len, const char *name);

/* Each field called name (case-insensitive), top to bottom: fn gets its
 * unfolded value (at most max bytes, NUL-terminated, valid only during the
 * call) and stops the walk by returning non-zero. Returns how many fields
 * fn was given. */
typedef int (*mailmsg_fn)(const char *msg, size_t len, void *arg);
size_t mailmsg_each_header(const char *text, size_t len, const char *name, size_t max,
                           mailmsg_fn fn, void *arg);

/* A From: value's display name, decoded as from_display above (a new
 * string, or NULL when there is none): the milter sees header fields one
 * by one and must read them as a replay does. */
char *mailmsg_from_display(const char *from_value);
/* The domain of a Message-ID without its <> (after the last '@', lower
 * case, one trailing dot dropped): a new string, or NULL when none. */
char *mailmsg_id_domain(const char *message_id);
/* A header value with its RFC 2047 words decoded as above (new string). */
char *mailmsg_decode_words(const char *value);

/* mbox: split text into messages at "From " lines (mboxo/mboxrd: a line
 * ">From " in a body stays as it is). Calls fn for each message (without
 * its "From " line); fn returning non-zero stops. Returns how many
 * messages were given to fn. Text that does not start with "From " is one
 * message. */
size_t mailmsg_split_mbox(const char *text, size_t len, mailmsg_fn fn, void *arg);

/* A 64-bit fingerprint of a body for "the same text sent many times":
 * quoted-printable/base64 undone for the first text part, HTML tags,
 * digits, URLs' paths and white space ignored, lower-cased, so that
 * per-recipient tokens do not make every copy different. 0 for an empty
 * body. */
uint64_t mailmsg_body_fingerprint(const char *body, size_t len, const char *content_type,
                                  const char *cte);

#endif
