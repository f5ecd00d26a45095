#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"
#include "addr.h"
#include "ip.h"
#include "sbuf.h"
#include "timeutil.h"
#include "xalloc.h"

#define CONF_MAX_LINE 8192

static void strlist_clear(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void strlist_add(struct strlist *l, const char *s)
{
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = xstrdup(s);
}

struct conf *conf_defaults(void)
{
    struct conf *c = xcalloc(1, sizeof *c);
    c->socket = xstrdup("unix:/run/kanjiki/kanjiki.sock");
    c->database = xstrdup("kanjiki.db");
    c->user = xstrdup("kanjiki");
    c->mode = CONF_MODE_ENFORCE;
    strlist_add(&c->local_domains, "localhost");
    c->trusted_networks = cidrset_new();
    cidrset_add_str(c->trusted_networks, "127.0.0.0/8", NULL, 0);
    cidrset_add_str(c->trusted_networks, "::1/128", NULL, 0);
    c->local_addresses = cidrset_new();
    c->dns_timeout_ms = 2000;
    c->log = xstrdup("syslog");
    c->popauth_ttl = 30 * 60;
    c->popauth_ipv6_prefix = 128;
    c->popauth_poll_ms = 1000;
    c->queue_size = 50000;
    c->retention_ms = 90LL * 86400 * 1000;
    return c;
}

void conf_free(struct conf *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->socket);
    free(c->database);
    free(c->user);
    free(c->pidfile);
    strlist_clear(&c->local_domains);
    strlist_clear(&c->relay_domains);
    cidrset_free(c->trusted_networks);
    cidrset_free(c->local_addresses);
    free(c->rules_dir);
    strlist_clear(&c->dns_servers);
    free(c->log);
    free(c);
}

static const char *const snow_names[] = { "off", "observe", "enforce" };

const char *conf_snowshoe_name(enum conf_snowshoe s)
{
    return (unsigned)s < 3 ? snow_names[s] : "?";
}

const char *conf_default_path(void)
{
    return access(CONF_DEFAULT_PATH, F_OK) == 0 ? CONF_DEFAULT_PATH : NULL;
}

/* --- parsing helpers: each returns NULL on success or a static reason --- */

struct ctx {
    struct conf *c;
    const char *dir;     /* directory of the file, for relative paths */
    char *why;           /* reason buffer for dynamic messages */
    size_t whylen;
};

static char *resolve_path(const struct ctx *x, const char *v)
{
    if (v[0] == '/' || !x->dir)
        return xstrdup(v);
    struct sbuf b = SBUF_INIT;
    sbuf_addf(&b, "%s/%s", x->dir, v);
    return sbuf_take(&b);
}

/* Split a list on commas and white space. */
static void split_list(const char *v, struct strlist *out)
{
    char *copy = xstrdup(v), *save = NULL;
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
        strlist_add(out, t);
    free(copy);
}

/* A domain for local_domains/relay_domains: validated by the address parser
 * so that the rules for names are the same everywhere; stored lower-case
 * without the trailing dot. */
static const char *norm_domain(const char *d, char *out, size_t outlen,
                               char *why, size_t whylen)
{
    struct addr a;
    char tmp[ADDR_MAX_DOMAIN + 8], err[128];
    if (strlen(d) > ADDR_MAX_DOMAIN) {
        snprintf(why, whylen, "domain too long: %.40s...", d);
        return why;
    }
    snprintf(tmp, sizeof tmp, "x@%s", d);
    if (addr_parse(tmp, strlen(tmp), &a, err, sizeof err) < 0 ||
        a.kind != ADDR_D_NAME || a.tricks) {
        snprintf(why, whylen, "not a domain name: %s", d);
        return why;
    }
    snprintf(out, outlen, "%s", a.domain);
    return NULL;
}

static const char *set_domains(struct ctx *x, const char *v, struct strlist *l)
{
    struct strlist raw = { 0 };
    split_list(v, &raw);
    strlist_clear(l);
    const char *bad = NULL;
    for (size_t i = 0; i < raw.n && !bad; i++) {
        char d[ADDR_MAX_DOMAIN + 1];
        bad = norm_domain(raw.v[i], d, sizeof d, x->why, x->whylen);
        if (!bad)
            strlist_add(l, d);
    }
    strlist_clear(&raw);
    return bad;
}

static const char *set_cidrs(struct ctx *x, const char *v, struct cidrset **set)
{
    struct strlist raw = { 0 };
    split_list(v, &raw);
    struct cidrset *s = cidrset_new();
    const char *bad = NULL;
    for (size_t i = 0; i < raw.n && !bad; i++) {
        char err[160];
        if (cidrset_add_str(s, raw.v[i], err, sizeof err) < 0) {
            snprintf(x->why, x->whylen, "%s", err);
            bad = x->why;
        }
    }
    strlist_clear(&raw);
    if (bad) {
        cidrset_free(s);
        return bad;
    }
    cidrset_free(*set);
    *set = s;
    return NULL;
}

static const char *set_socket(struct ctx *x, const char *v)
{
    char *val = NULL;
    if (v[0] == '/') {
        val = resolve_path(x, v);
        struct sbuf b = SBUF_INIT;
        sbuf_addf(&b, "unix:%s", val);
        free(val);
        val = sbuf_take(&b);
    } else if (!strncmp(v, "unix:", 5) || !strncmp(v, "local:", 6)) {
        const char *p = strchr(v, ':') + 1;
        if (!*p)
            return "unix socket needs a path: unix:/run/kanjiki/kanjiki.sock";
        char *path = resolve_path(x, p);
        struct sbuf b = SBUF_INIT;
        sbuf_addf(&b, "unix:%s", path);
        free(path);
        val = sbuf_take(&b);
    } else if (!strncmp(v, "inet:", 5) || !strncmp(v, "inet6:", 6)) {
        const char *p = strchr(v, ':') + 1;
        char *end;
        errno = 0;
        long port = strtol(p, &end, 10);
        if (errno || end == p || port < 1 || port > 65535 ||
            (*end && *end != '@'))
            return "inet socket must be inet:PORT@HOST with PORT 1-65535";
        if (*end == '@') {
            struct ip ip;
            if (ip_parse(end + 1, &ip) < 0 && !isalpha((unsigned char)end[1]))
                return "inet socket host must be an IP address or a name";
        }
        val = xstrdup(v);
    } else {
        return "socket must be unix:PATH or inet:PORT@HOST";
    }
    free(x->c->socket);
    x->c->socket = val;
    return NULL;
}

/* dns_servers entries: "IP", "IP:PORT", "[IPv6]:PORT" (c-ares wants IPs). */
static const char *check_dns_server(struct ctx *x, const char *s)
{
    char host[IP_STRLEN + 2];
    const char *port = NULL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || (size_t)(close - s - 1) >= sizeof host)
            goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(close - s - 1), s + 1);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1])
            goto bad;
    } else {
        const char *colon = strchr(s, ':');
        if (colon && !strchr(colon + 1, ':')) {   /* IPv4:port */
            if ((size_t)(colon - s) >= sizeof host)
                goto bad;
            snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
            port = colon + 1;
        } else {
            snprintf(host, sizeof host, "%s", s);
        }
    }
    struct ip ip;
    if (ip_parse(host, &ip) < 0)
        goto bad;
    if (port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (*end || end == port || p < 1 || p > 65535)
            goto bad;
    }
    return NULL;
bad:
    snprintf(x->why, x->whylen,
             "dns server must be IP, IP:PORT or [IPv6]:PORT: %s", s);
    return x->why;
}

static const char *set_dns_servers(struct ctx *x, const char *v)
{
    struct strlist raw = { 0 };
    split_list(v, &raw);
    const char *bad = NULL;
    for (size_t i = 0; i < raw.n && !bad; i++)
        bad = check_dns_server(x, raw.v[i]);
    if (bad) {
        strlist_clear(&raw);
        return bad;
    }
    strlist_clear(&x->c->dns_servers);
    x->c->dns_servers = raw;
    return NULL;
}

static const char *set_routing(struct ctx *x, const char *v)
{
    static const struct { const char *name; unsigned bit; } names[] = {
        { "percent_hack", ADDR_T_PERCENT },
        { "bang_path", ADDR_T_BANG },
        { "double_at", ADDR_T_DOUBLE_AT },
        { "quoted_local", ADDR_T_QUOTED },
        { "source_route", ADDR_T_SOURCE_ROUTE },
        { "unqualified", ADDR_T_NO_DOMAIN },
        { "ip_literal", CONF_ALLOW_IP_LITERAL },
    };
    struct strlist raw = { 0 };
    split_list(v, &raw);
    unsigned bits = 0;
    const char *bad = NULL;
    for (size_t i = 0; i < raw.n && !bad; i++) {
        if (!strcmp(raw.v[i], "none"))
            continue;
        size_t k = 0;
        while (k < sizeof names / sizeof names[0] && strcmp(names[k].name, raw.v[i]))
            k++;
        if (k == sizeof names / sizeof names[0]) {
            snprintf(x->why, x->whylen,
                     "unknown routing form '%s' (known: percent_hack bang_path "
                     "double_at quoted_local source_route unqualified ip_literal none)",
                     raw.v[i]);
            bad = x->why;
        } else {
            bits |= names[k].bit;
        }
    }
    strlist_clear(&raw);
    if (!bad)
        x->c->allow_routing = bits;
    return bad;
}

static const char *set_duration_ms(const char *v, int64_t lo, int64_t hi,
                                   int64_t *out)
{
    int64_t ms;
    if (tu_parse_duration_ms(v, &ms) < 0)
        return "not a duration (examples: 2s, 500ms, 1m)";
    if (ms < lo || ms > hi)
        return "duration out of range";
    *out = ms;
    return NULL;
}

static const char *set_uint(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi)
        return "number out of range";
    *out = n;
    return NULL;
}

static void set_str(char **field, char *val)
{
    free(*field);
    *field = val;
}

static const char *apply(struct ctx *x, const char *key, const char *v)
{
    struct conf *c = x->c;
    long n;
    int64_t ms;

    if (!strcmp(key, "socket"))
        return set_socket(x, v);
    if (!strcmp(key, "database")) {
        if (!*v)
            return "database needs a file name";
        set_str(&c->database, resolve_path(x, v));
        return NULL;
    }
    if (!strcmp(key, "user")) {
        set_str(&c->user, *v ? xstrdup(v) : NULL);
        return NULL;
    }
    if (!strcmp(key, "pidfile")) {
        set_str(&c->pidfile, *v ? resolve_path(x, v) : NULL);
        return NULL;
    }
    if (!strcmp(key, "mode")) {
        if (!strcmp(v, "enforce"))
            c->mode = CONF_MODE_ENFORCE;
        else if (!strcmp(v, "monitor"))
            c->mode = CONF_MODE_MONITOR;
        else
            return "mode must be enforce or monitor";
        return NULL;
    }
    if (!strcmp(key, "local_domains"))
        return set_domains(x, v, &c->local_domains);
    if (!strcmp(key, "relay_domains"))
        return set_domains(x, v, &c->relay_domains);
    if (!strcmp(key, "trusted_networks"))
        return set_cidrs(x, v, &c->trusted_networks);
    if (!strcmp(key, "local_addresses"))
        return set_cidrs(x, v, &c->local_addresses);
    if (!strcmp(key, "rules")) {
        set_str(&c->rules_dir, *v ? resolve_path(x, v) : NULL);
        return NULL;
    }
    if (!strcmp(key, "dns_servers"))
        return set_dns_servers(x, v);
    if (!strcmp(key, "dns_timeout")) {
        if (set_duration_ms(v, 100, 60000, &ms))
            return "dns_timeout must be a duration from 100ms to 60s";
        c->dns_timeout_ms = ms;
        return NULL;
    }
    if (!strcmp(key, "log")) {
        if (strcmp(v, "syslog") && strcmp(v, "stderr") &&
            (strncmp(v, "file:", 5) || !v[5]))
            return "log must be syslog, stderr or file:PATH";
        if (!strncmp(v, "file:", 5)) {
            char *p = resolve_path(x, v + 5);
            struct sbuf b = SBUF_INIT;
            sbuf_addf(&b, "file:%s", p);
            free(p);
            set_str(&c->log, sbuf_take(&b));
        } else {
            set_str(&c->log, xstrdup(v));
        }
        return NULL;
    }
    if (!strcmp(key, "retention")) {
        int64_t secs;
        if (!strcmp(v, "off") || !strcmp(v, "0")) {
            c->retention_ms = 0;
            return NULL;
        }
        if (tu_parse_duration(v, &secs) < 0 || secs < 86400 || secs > 100LL * 366 * 86400)
            return "retention must be off or a duration from 1d to 100 years";
        c->retention_ms = secs * 1000;
        return NULL;
    }
    if (!strcmp(key, "log_format")) {
        if (strcmp(v, "text") && strcmp(v, "json"))
            return "log_format must be text or json";
        c->log_json = !strcmp(v, "json");
        return NULL;
    }
    if (!strcmp(key, "allow_routing"))
        return set_routing(x, v);
    if (!strcmp(key, "popauth_ttl")) {
        int64_t s;
        if (tu_parse_duration(v, &s) < 0 || s <= 0 || s > 366 * 86400)
            return "popauth_ttl must be a duration from 1s to 366d";
        c->popauth_ttl = s;
        return NULL;
    }
    if (!strcmp(key, "popauth_ipv6_prefix")) {
        if (set_uint(v, 16, 128, &n))
            return "popauth_ipv6_prefix must be a prefix length from 16 to 128";
        c->popauth_ipv6_prefix = (unsigned)n;
        return NULL;
    }
    if (!strcmp(key, "popauth_poll")) {
        if (set_duration_ms(v, 50, 60000, &ms))
            return "popauth_poll must be a duration from 50ms to 60s";
        c->popauth_poll_ms = (int)ms;
        return NULL;
    }
    if (!strcmp(key, "snowshoe")) {
        size_t k = 0;
        while (k < 3 && strcmp(v, snow_names[k]))
            k++;
        if (k == 3)
            return "snowshoe must be off, observe or enforce";
        c->snowshoe = (enum conf_snowshoe)k;
        return NULL;
    }
    if (!strcmp(key, "queue_size")) {
        if (set_uint(v, 100, 10000000, &n))
            return "queue_size must be a number from 100 to 10000000";
        c->queue_size = (size_t)n;
        return NULL;
    }
    snprintf(x->why, x->whylen, "unknown key '%s'", key);
    return x->why;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int conf_load(const char *path, struct conf **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errbuf_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct conf *c = conf_defaults();
    c->path = xstrdup(path);
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    char why[512];
    struct ctx x = { c, slash ? dir : NULL, why, sizeof why };

    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    /* getline, not fgets: it reports the true length, so a NUL byte inside
     * a line is seen instead of silently ending the line there. */
    while ((got = getline(&line, &cap, f)) > 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len > CONF_MAX_LINE) {
            rc = errbuf_set(err, errlen, "%s:%d: line longer than %d bytes", path,
                      lineno, CONF_MAX_LINE);
            break;
        }
        if (strlen(line) != len) {
            rc = errbuf_set(err, errlen, "%s:%d: NUL byte in line", path, lineno);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = errbuf_set(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        for (char *k = key; *k; k++) {
            if (!islower((unsigned char)*k) && *k != '_' && !isdigit((unsigned char)*k)) {
                rc = errbuf_set(err, errlen, "%s:%d: bad key '%s'", path, lineno, key);
                break;
            }
        }
        if (rc)
            break;
        const char *bad = apply(&x, key, val);
        if (bad) {
            rc = errbuf_set(err, errlen, "%s:%d: %s: %s", path, lineno, key, bad);
            break;
        }
    }
    if (!rc && ferror(f))
        rc = errbuf_set(err, errlen, "%s: read error", path);
    free(line);
    fclose(f);
    free(dir);
    if (rc) {
        conf_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

static bool in_list(const struct strlist *l, const char *domain)
{
    for (size_t i = 0; i < l->n; i++)
        if (addr_domain_eq(l->v[i], domain))
            return true;
    return false;
}

bool conf_is_local_domain(const struct conf *c, const char *domain)
{
    return in_list(&c->local_domains, domain);
}

bool conf_is_relay_domain(const struct conf *c, const char *domain)
{
    return in_list(&c->relay_domains, domain);
}

static void print_list(FILE *f, const char *key, const struct strlist *l)
{
    fprintf(f, "%s =", key);
    for (size_t i = 0; i < l->n; i++)
        fprintf(f, " %s", l->v[i]);
    fputc('\n', f);
}

static void print_cidrs(FILE *f, const char *key, const struct cidrset *s)
{
    fprintf(f, "%s =", key);
    for (size_t i = 0; i < cidrset_count(s); i++) {
        char buf[IP_STRLEN + 8];
        cidr_format(cidrset_get(s, i), buf, sizeof buf);
        fprintf(f, " %s", buf);
    }
    fputc('\n', f);
}

void conf_print(const struct conf *c, FILE *f)
{
    fprintf(f, "# effective configuration (%s)\n",
            c->path ? c->path : "built-in defaults");
    fprintf(f, "socket = %s\n", c->socket);
    fprintf(f, "database = %s\n", c->database);
    fprintf(f, "user = %s\n", c->user ? c->user : "");
    fprintf(f, "pidfile = %s\n", c->pidfile ? c->pidfile : "");
    fprintf(f, "mode = %s\n", c->mode == CONF_MODE_MONITOR ? "monitor" : "enforce");
    print_list(f, "local_domains", &c->local_domains);
    print_list(f, "relay_domains", &c->relay_domains);
    print_cidrs(f, "trusted_networks", c->trusted_networks);
    print_cidrs(f, "local_addresses", c->local_addresses);
    fprintf(f, "rules = %s\n", c->rules_dir ? c->rules_dir : "");
    print_list(f, "dns_servers", &c->dns_servers);
    fprintf(f, "dns_timeout = %lldms\n", (long long)c->dns_timeout_ms);
    fprintf(f, "log = %s\n", c->log);
    fprintf(f, "log_format = %s\n", c->log_json ? "json" : "text");
    if (c->retention_ms)
        fprintf(f, "retention = %llds\n", (long long)(c->retention_ms / 1000));
    else
        fprintf(f, "retention = off\n");
    fprintf(f, "allow_routing =");
    static const unsigned bits[] = { ADDR_T_PERCENT, ADDR_T_BANG, ADDR_T_DOUBLE_AT,
                                     ADDR_T_QUOTED, ADDR_T_SOURCE_ROUTE,
                                     ADDR_T_NO_DOMAIN };
    int any = 0;
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (c->allow_routing & bits[i]) {
            fprintf(f, " %s", addr_trick_name(bits[i]));
            any = 1;
        }
    if (c->allow_routing & CONF_ALLOW_IP_LITERAL) {
        fprintf(f, " ip_literal");
        any = 1;
    }
    fprintf(f, "%s\n", any ? "" : " none");
    fprintf(f, "popauth_ttl = %llds\n", (long long)c->popauth_ttl);
    fprintf(f, "popauth_ipv6_prefix = %u\n", c->popauth_ipv6_prefix);
    fprintf(f, "popauth_poll = %dms\n", c->popauth_poll_ms);
    fprintf(f, "queue_size = %zu\n", c->queue_size);
    fprintf(f, "snowshoe = %s\n", conf_snowshoe_name(c->snowshoe));
}
