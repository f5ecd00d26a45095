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
    int64_t time;         /* when the line was logged (epoch seconds), from
                           * its timestamp; 0 when it has none we can read */
};
/* True when line (one syslog line) records a successful POP3 or IMAP login
 * by Dovecot, Courier or qpopper; fills *out. Failed logins, SMTP/submission
 * logins and anything else: false.
 *
 * out->time comes from the timestamp that starts the line:
 *   "Nov 22 15:04:05 host tag: ..."      traditional syslog (also "Nov  2")
 *   "2026-11-22T15:04:05.123456+01:00 host tag: ..."   RFC 3339 (rsyslog's
 *                                        high precision format; "Z", "+0100"
 *                                        and no offset too)
 *   "Nov 22 15:04:05 imap-login: ..."    Dovecot's own log file, and
 *   "2026-11-22 15:04:05 imap-login: ..." with a year in log_timestamp
 * Times without an offset are local time (TZ). The traditional format has
 * no year: the line gets the latest year (next, this or an earlier one)
 * that does not put it more than a day after now, the moment the line is
 * read; so a "Dec 31" line read on January 1st is from the year before.
 * An invalid date ("Feb 30") or any other header gives 0. */
bool popauth_parse_line(const char *line, int64_t now, struct popauth_login *out);

/* The grant for login l, read at now, for ttl_secs: from *start, the
 * login's time but no later than now (a clock running ahead cannot
 * lengthen a grant; now when l->time is 0), until *expires = *start +
 * ttl_secs. Returns false when that grant has expired by now (an old
 * line: *expires <= now), true when it is live. */
bool popauth_login_window(const struct popauth_login *l, int64_t ttl_secs, int64_t now,
                          int64_t *start, int64_t *expires);
/* Grant l's client for the window above, created at its start, with l's
 * user and source (so it only ever extends an existing grant, see
 * popauth_add). An old login grants nothing. Returns 1 when granted
 * (*expires set when not NULL), 0 when the login is too old, -1 on error
 * (err). */
int popauth_grant_login(struct store *s, const struct popauth_login *l, int64_t ttl_secs,
                        int64_t now, int64_t *expires, char *err, size_t errlen);

#endif
