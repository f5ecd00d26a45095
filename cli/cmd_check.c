/* kanjiki check: load the configuration and every rules file the way the
 * milter does, and print the effective policy. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "policy.h"

int cmd_check(struct cli_ctx *ctx, int argc, char **argv)
{
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("usage: kanjiki [-c FILE] check [--quiet]\n"
                 "Validate the configuration and the rules it names; print the\n"
                 "effective settings and rules (exit 0), or the first error as\n"
                 "FILE:LINE[:COLUMN]: reason (exit 1).");
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
    size_t nscore = 0;
    for (size_t i = 0; i < p->rules->n; i++)
        nscore += p->rules->v[i].verb == RULE_SCORE;
    if (nscore || p->rules->nzones || p->rules->nthresholds)
        printf("note: score, zone, spf and threshold statements are checked but not yet "
               "applied by kanjiki-milter in this version\n");
    printf("%s: configuration OK\n", p->conf->path ? p->conf->path : "built-in defaults");
    policy_unref(p);
    return 0;
}
