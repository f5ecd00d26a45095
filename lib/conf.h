/* conf: kanjiki.conf, "key = value" lines. conf_load returns a struct conf
 * that owns everything in it (conf_free). With no file, conf_defaults gives
 * the built-in settings. Errors name "file:line: reason". Relative paths in
 * a file (database, rules, pidfile, unix socket, log file) are taken
 * relative to the directory of that file, so a configuration and its rules
 * can move together. */
#ifndef KANJIKI_CONF_H
#define KANJIKI_CONF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cidrset.h"

#define CONF_DEFAULT_PATH KANJIKI_SYSCONFDIR "/kanjiki.conf"

enum conf_mode { CONF_MODE_ENFORCE = 0, CONF_MODE_MONITOR };
/* snowshoe = off | observe (score and record) | enforce (and act) */
enum conf_snowshoe { CONF_SNOW_OFF = 0, CONF_SNOW_OBSERVE, CONF_SNOW_ENFORCE };

/* allow_routing bits beyond the addr_trick ones (lib/addr.h) */
#define CONF_ALLOW_IP_LITERAL (1u << 16)

struct strlist {
    char **v;
    size_t n;
};

struct conf {
    char *path;                     /* file read, NULL for built-in defaults */
    char *socket;                   /* "unix:/path" or "inet:port@host" */
    char *database;                 /* SQLite file */
    char *user;                     /* run as; NULL: stay who we are */
    char *pidfile;                  /* NULL: none */
    enum conf_mode mode;
    struct strlist local_domains;   /* lower-case, no trailing dot */
    struct strlist relay_domains;
    struct cidrset *trusted_networks;
    struct cidrset *local_addresses;/* the server's own IPs (IP literals) */
    char *rules_dir;                /* NULL: no rules */
    struct strlist dns_servers;     /* "host" or "host:port" / "[v6]:port" */
    int64_t dns_timeout_ms;
    char *log;                      /* "syslog", "stderr" or "file:PATH" */
    bool log_json;                  /* log_format = json: one JSON object per line */
    unsigned allow_routing;         /* ADDR_T_* | CONF_ALLOW_IP_LITERAL */
    int64_t popauth_ttl;            /* seconds, default for new grants */
    unsigned popauth_ipv6_prefix;   /* 128 = exact, 64 = the client's /64 */
    int popauth_poll_ms;            /* how often the milter looks for new grants */
    size_t queue_size;              /* verdicts kept in memory for the store */
    int64_t retention_ms;           /* verdicts older than this are deleted; 0 keeps all */
    enum conf_snowshoe snowshoe;    /* run the snowshoe detector, act on it */
};

struct conf *conf_defaults(void);
/* Read path. Returns 0, or -1 with "path:line: reason" in err. */
int conf_load(const char *path, struct conf **out, char *err, size_t errlen);
/* The file kanjiki uses when none is named: CONF_DEFAULT_PATH when it
 * exists, else NULL (built-in defaults). */
const char *conf_default_path(void);
const char *conf_snowshoe_name(enum conf_snowshoe s);   /* "off", ... */
void conf_free(struct conf *c);

bool conf_is_local_domain(const struct conf *c, const char *domain);
bool conf_is_relay_domain(const struct conf *c, const char *domain);
/* Print the effective settings as a valid kanjiki.conf. */
void conf_print(const struct conf *c, FILE *f);

#endif
