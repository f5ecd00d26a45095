/* relay: the relay decision for one recipient at RCPT TO. Pure: it reads
 * the configuration and what the caller knows about the client, and fills a
 * struct relay_result owned by the caller.
 *
 * Order of checks: syntax (501 5.1.3), routing tricks (refused unless the
 * configuration's allow_routing permits them, and then the relay check
 * applies to where the trick really points), IP literals (only the
 * server's own addresses count as local), then the destination: local and
 * relay domains are accepted from anyone; any other destination needs an
 * authorised client (SMTP AUTH, trusted network, POP-before-SMTP grant). */
#ifndef KANJIKI_RELAY_H
#define KANJIKI_RELAY_H
#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "conf.h"
#include "ip.h"

struct relay_client {
    const struct ip *ip;          /* client address; NULL when unknown */
    const struct ip *daemon_ip;   /* the server address it connected to, or NULL */
    const char *auth_user;        /* {auth_authen}; NULL or "" = not authenticated */
    bool popauth;                 /* a live POP/IMAP-before-SMTP grant covers ip */
};

struct relay_result {
    bool ok;
    int code;                     /* SMTP reply code when !ok */
    char xcode[8];                /* enhanced status code when !ok */
    char text[160];               /* reply text when !ok: fixed ASCII, no mail data */
    const char *check;            /* "relay", "route" or "syntax" */
    const char *reason;           /* stable code, see relay.c */
    char detail[640];             /* one line for humans (holds mail data: escape it) */
    struct addr addr;             /* the parsed recipient (valid unless bad_syntax) */
};

void relay_check(const struct conf *c, const struct relay_client *cl,
                 const char *rcpt, size_t len, struct relay_result *out);

#endif
