/* kanjiki: the command line. Global options, configuration, dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "store.h"

static const char *usage_text =
    "usage: kanjiki [-c FILE | -d DB] COMMAND [ARGS]\n"
    "  -c FILE   configuration (default " CONF_DEFAULT_PATH " if it exists)\n"
    "  -d DB     use this database instead of the configuration's\n"
    "commands:\n"
    "  check [--dns]         validate configuration and rules, print the policy;\n"
    "                        --dns also tests every blocklist zone (RFC 5782)\n"
    "  query [FILTERS]       list verdicts (kanjiki query --help)\n"
    "  explain ID|QUEUE-ID|MESSAGE-ID   one verdict in full, with its evidence\n"
    "  stats [--since WHEN]  verdicts per action, blocklist zone health\n"
    "  replay FILE|DIR...    run stored mail through the snowshoe detector\n"
    "                        (kanjiki replay --help)\n"
    "  clusters              suspicious blocks and domains the snowshoe detector\n"
    "                        remembers (kanjiki clusters --help)\n"
    "  prune --older-than D  delete old verdicts in short batches (kanjiki prune --help)\n"
    "  export [--format F]   stream verdicts as JSON lines or CSV\n"
    "  audit HOST[:PORT]     test a mail server for open relay and leaks\n"
    "                        (kanjiki audit --help)\n"
    "  trace FILE.eml        a message's Received: hops, forged ones, its verdict\n"
    "  popauth add|del|list|watch   POP/IMAP-before-SMTP grants\n"
    "                        (kanjiki popauth --help)\n"
    "See kanjiki(1).\n";

int cli_open_existing(const struct cli_ctx *ctx, struct store **out, char *err, size_t errlen)
{
    if (store_open(ctx->db_path, STORE_NOCREATE, 2000, out, err, errlen) == 0)
        return 0;
    return store_open(ctx->db_path, STORE_NOCREATE | STORE_READONLY, 2000, out, err, errlen);
}

int cli_parse_format(const char *s, enum cli_format *out)
{
    if (!strcmp(s, "table"))
        *out = CLI_FMT_TABLE;
    else if (!strcmp(s, "json"))
        *out = CLI_FMT_JSON;
    else if (!strcmp(s, "csv"))
        *out = CLI_FMT_CSV;
    else
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL, *db = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-c") || !strcmp(a, "-d")) && i + 1 < argc) {
            if (a[1] == 'c')
                conf_path = argv[++i];
            else
                db = argv[++i];
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            puts("kanjiki " KANJIKI_VERSION);
            return 0;
        } else {
            fprintf(stderr, "kanjiki: unknown option %s\n%s", a, usage_text);
            return 2;
        }
    }
    if (i >= argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[i];
    if (!conf_path)
        conf_path = conf_default_path();

    struct conf *c = NULL;
    char err[1024];
    if (!conf_path) {
        c = conf_defaults();
    } else if (conf_load(conf_path, &c, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki: %s\n", err);
        return 1;
    }
    struct cli_ctx ctx = { db ? db : c->database, c, isatty(1) != 0 };
    int rc;
    if (!strcmp(cmd, "check"))
        rc = cmd_check(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "query"))
        rc = cmd_query(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "clusters"))
        rc = cmd_clusters(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "replay"))
        rc = cmd_replay(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "stats"))
        rc = cmd_stats(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "explain"))
        rc = cmd_explain(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "prune"))
        rc = cmd_prune(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "export"))
        rc = cmd_export(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "audit"))
        rc = cmd_audit(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "trace"))
        rc = cmd_trace(&ctx, argc - i, argv + i);
    else if (!strcmp(cmd, "popauth"))
        rc = cmd_popauth(&ctx, argc - i, argv + i);
    else {
        fprintf(stderr, "kanjiki: unknown command '%s'\n%s", cmd, usage_text);
        rc = 2;
    }
    conf_free(c);
    return rc;
}
