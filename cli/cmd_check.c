/* kanjiki check: load the configuration and every rules file the way the
 * milter does, and print the effective policy. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dnscheck.h"
#include "policy.h"

/* RFC 5782 test points for every zone, through the configured resolver,
 * all zones at once. Returns how many zones are broken or silent. */
static int check_dns(const struct policy *p)
{
    const struct conf *c = p->conf;
    struct dns_config dc = {
        .servers = (const char *const *)c->dns_servers.v,
        .nservers = c->dns_servers.n,
        .timeout_ms = (int)c->dns_timeout_ms,
        .tries = 1,
        .cache_max = 0,
        .neg_ttl_max = 0,
    };
    char err[256];
    struct dns *d = dns_new(&dc, err, sizeof err);
    if (!d) {
        fprintf(stderr, "kanjiki check: DNS resolver: %s\n", err);
        return 1;
    }
    const struct ruleset *rs = p->rules;
    if (!rs->nzones)
        printf("dns: no blocklist zones in the rules\n");
    int bad = 0;
    for (size_t i = 0; i < rs->nzones; i++) {
        const struct dnsbl_zone *z = &rs->zones[i].z;
        int tmo = z->timeout_ms > 0 ? z->timeout_ms : (int)c->dns_timeout_ms;
        char why[300];
        int64_t t0 = dns_now_ms();
        int ok = dnscheck_probe(d, z, t0 + tmo, why, sizeof why);
        printf("dns: %-32s %-6s %s: %s (%lld ms)\n", z->name,
               z->kind == DNSBL_IP ? "ip" : z->kind == DNSBL_DOMAIN ? "domain" : "uri",
               ok == 1 ? "OK" : ok == 0 ? "BROKEN, would be skipped" : "NO ANSWER",
               why, (long long)(dns_now_ms() - t0));
        bad += ok != 1;
    }
    dns_free(d);
    return bad;
}

int cmd_check(struct cli_ctx *ctx, int argc, char **argv)
{
    bool quiet = false, dns = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (!strcmp(argv[i], "--dns")) {
            dns = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("usage: kanjiki [-c FILE] check [--quiet] [--dns]\n"
                 "Validate the configuration and the rules it names; print the\n"
                 "effective settings and rules (exit 0), or the first error as\n"
                 "FILE:LINE[:COLUMN]: reason (exit 1).\n"
                 "--dns: also ask every blocklist zone for its RFC 5782 test points\n"
                 "(127.0.0.2 / \"test\" listed, 127.0.0.1 / \"invalid\" not) through\n"
                 "dns_servers; exit 1 when a zone is broken, refuses us or is silent.");
            return 0;
        } else {
            fprintf(stderr, "kanjiki check: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    struct policy *p;
    char err[1024];
    if (policy_load(ctx->conf->path, &p, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki check: %s\n", err);
        return 1;
    }
    if (!quiet) {
        conf_print(p->conf, stdout);
        printf("\n# rules (%zu from %zu files), first match wins\n", p->rules->n,
               p->rules->nfiles);
        rules_print(p->rules, stdout);
    }
    int bad = dns ? check_dns(p) : 0;
    printf("%s: configuration OK\n", p->conf->path ? p->conf->path : "built-in defaults");
    if (bad)
        printf("dns: %d zone%s failed the test\n", bad, bad == 1 ? "" : "s");
    policy_unref(p);
    return bad ? 1 : 0;
}
