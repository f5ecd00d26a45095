/* popauth: POP/IMAP-before-SMTP grants. A grant says "the client at IP
 * logged in to POP3/IMAP as USER and may relay until EXPIRES". Grants live
 * in the store (table grants); the CLI adds and removes them, `kanjiki
 * popauth watch` adds them from mail server logs, and the milter consults an
 * in-memory copy (popauth_cache) refreshed by a background thread, so the
 * message path never reads the disk. Expiry is enforced at lookup. */
#ifndef KANJIKI_POPAUTH_H
#define KANJIKI_POPAUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ip.h"
#include "store.h"

struct popauth_grant {
    char ip[IP_STRLEN];   /* normalised text (IPv4-mapped shown as IPv4) */
    char *user;           /* may be NULL */
    char *source;         /* "cli", "dovecot", "courier", "qpopper" */
    int64_t created;      /* epoch seconds */
    int64_t expires;      /* epoch seconds */
};

/* Add or refresh. From the command line (source "cli" or NULL) the new
 * grant replaces the old one for that IP; from a log (any other source) it
 * only extends the expiry, never shortens it. */
int popauth_add(struct store *s, const char *ip, const char *user,
                int64_t ttl_secs, const char *source, int64_t now,
                char *err, size_t errlen);
/* Returns the number of grants removed (0 when none), or -1. */
int popauth_del(struct store *s, const char *ip, char *err, size_t errlen);
typedef int (*popauth_grant_fn)(const struct popauth_grant *g, void *arg);
/* All grants, expired ones too when include_expired; ordered by IP. */
int popauth_list(struct store *s, bool include_expired, int64_t now,
                 popauth_grant_fn fn, void *arg, char *err, size_t errlen);
/* Remove grants expired before now. Returns count or -1. */
int popauth_purge(struct store *s, int64_t now);

/* Does a live grant cover a? IPv4 must match exactly; an IPv6 grant covers
 * every address in the same /v6_prefix (128 = exact). Reads the database:
 * for the CLI and tests, not for the milter. user_out (optional) gets a
 * copy of the user, caller frees. */
bool popauth_lookup(struct store *s, const struct ip *a, unsigned v6_prefix,
                    int64_t now, char **user_out);

/* --- the milter's in-memory copy --- */
struct popauth_cache;
/* Start a thread that reloads live grants from path whenever they change
 * (polled every poll_ms through a generation counter the schema's triggers
 * bump). Returns NULL only when the thread cannot start. */
struct popauth_cache *popauth_cache_start(const char *path, int poll_ms);
bool popauth_cache_match(struct popauth_cache *c, const struct ip *a,
                         unsigned v6_prefix, int64_t now,
                         char *user_out, size_t user_len);
/* Force a reload now (tests, SIGHUP). */
void popauth_cache_refresh(struct popauth_cache *c);
void popauth_cache_stop(struct popauth_cache *c);

/* --- log lines --- */
struct popauth_login {
    char ip[IP_STRLEN];
    char user[256];
    const char *source;   /* static: "dovecot", "courier", "qpopper" */
};
/* True when line (one syslog line) records a successful POP3 or IMAP login
 * by Dovecot, Courier or qpopper; fills *out. Failed logins, SMTP/submission
 * logins and anything else: false. */
bool popauth_parse_line(const char *line, struct popauth_login *out);

#endif
