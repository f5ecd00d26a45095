/* cli: the kanjiki command. main.c parses the global options (-c FILE,
 * -d DB), loads the configuration and dispatches to one cmd_* per
 * subcommand. Each cmd_* returns the process exit status: 0 success, 1 a
 * failure it reported on stderr, 2 a usage error. */
#ifndef KANJIKI_CLI_H
#define KANJIKI_CLI_H
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

struct cli_ctx {
    const char *db_path;        /* -d DB, else the configuration's database */
    const struct conf *conf;    /* loaded configuration (defaults if none) */
    bool tty;                   /* stdout is a terminal */
};

int cmd_check(struct cli_ctx *ctx, int argc, char **argv);
int cmd_query(struct cli_ctx *ctx, int argc, char **argv);
int cmd_popauth(struct cli_ctx *ctx, int argc, char **argv);
int cmd_stats(struct cli_ctx *ctx, int argc, char **argv);
int cmd_replay(struct cli_ctx *ctx, int argc, char **argv);
int cmd_clusters(struct cli_ctx *ctx, int argc, char **argv);
int cmd_audit(struct cli_ctx *ctx, int argc, char **argv);
int cmd_prune(struct cli_ctx *ctx, int argc, char **argv);
int cmd_explain(struct cli_ctx *ctx, int argc, char **argv);
int cmd_export(struct cli_ctx *ctx, int argc, char **argv);
int cmd_trace(struct cli_ctx *ctx, int argc, char **argv);

struct store;
/* Open the existing database for reading: writable when possible (so an
 * older schema is upgraded), else read-only; never creates one. Returns 0,
 * or -1 with the reason in err. */
int cli_open_existing(const struct cli_ctx *ctx, struct store **out, char *err, size_t errlen);

/* Output formats shared by the listing commands. */
enum cli_format { CLI_FMT_TABLE = 0, CLI_FMT_JSON, CLI_FMT_CSV };
/* "table", "json", "csv"; returns 0 or -1. */
int cli_parse_format(const char *s, enum cli_format *out);

#endif
