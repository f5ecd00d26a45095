/* kanjiki stats: what kanjiki decided and how its blocklists behave,
 * computed from the store (verdicts and their lookups), so it needs no
 * running daemon and shows any period. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "store.h"
#include "table.h"
#include "timeutil.h"

static const char *help_text =
    "usage: kanjiki [-c FILE | -d DB] stats [--since WHEN] [--format F]\n"
    "Verdicts per action, and per blocklist zone (and SPF): lookups, listed,\n"
    "clean, refused (error codes: the list refuses us), degraded (timeouts,\n"
    "errors), skipped (zone failed its health test), cache hit rate and\n"
    "answer latency percentiles (answered, uncached lookups).\n"
    "  --since WHEN   a duration ago (1h, 7d) or a time; default 24h\n"
    "  --format F     table (default on a terminal), json (one object per line)\n"
    "                 or csv (zones only)\n";

static const struct table_col cols[] = {
    { "zone", TABLE_COL_TEXT, 48 },   { "kind", TABLE_COL_TEXT, 0 },
    { "lookups", TABLE_COL_INT, 0 },  { "listed", TABLE_COL_INT, 0 },
    { "clean", TABLE_COL_INT, 0 },    { "refused", TABLE_COL_INT, 0 },
    { "degraded", TABLE_COL_INT, 0 }, { "skipped", TABLE_COL_INT, 0 },
    { "cache_hit_pct", TABLE_COL_INT, 0 }, { "p50_ms", TABLE_COL_INT, 0 },
    { "p95_ms", TABLE_COL_INT, 0 },   { "p99_ms", TABLE_COL_INT, 0 },
    { "max_ms", TABLE_COL_INT, 0 },   { "last_listed", TABLE_COL_TEXT, 0 },
};
#define NCOLS (sizeof cols / sizeof cols[0])

static void add_zone(struct table *t, const struct store_zone_stat *z, enum cli_format fmt)
{
    char num[12][24];
    uint64_t vals[] = { z->lookups, z->listed, z->clean, z->refused, z->degraded, z->skipped };
    for (size_t i = 0; i < 6; i++)
        snprintf(num[i], sizeof num[i], "%" PRIu64, vals[i]);
    snprintf(num[6], sizeof num[6], "%" PRIu64,
             z->lookups ? (z->cached * 100 + z->lookups / 2) / z->lookups : 0);
    int64_t lat[] = { z->p50_ms, z->p95_ms, z->p99_ms, z->max_ms };
    const char *latp[4];
    for (size_t i = 0; i < 4; i++) {
        snprintf(num[7 + i], sizeof num[7 + i], "%lld", (long long)lat[i]);
        latp[i] = lat[i] >= 0 ? num[7 + i] : NULL;
    }
    char last[40] = "";
    if (z->last_listed_ms) {
        if (fmt == CLI_FMT_TABLE)
            tu_format_local(z->last_listed_ms, last, sizeof last);
        else
            tu_format_iso_ms(z->last_listed_ms, last, sizeof last);
    }
    const char *cells[NCOLS] = { z->zone, z->kind, num[0], num[1], num[2], num[3], num[4],
                                 num[5], num[6], latp[0], latp[1], latp[2], latp[3],
                                 *last ? last : NULL };
    table_add(t, cells);
}

int cmd_stats(struct cli_ctx *ctx, int argc, char **argv)
{
    enum cli_format fmt = ctx->tty ? CLI_FMT_TABLE : CLI_FMT_JSON;
    time_t now = time(NULL), since = now - 86400;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(help_text, stdout);
            return 0;
        }
        if (i + 1 >= argc || (strcmp(o, "--since") && strcmp(o, "--format"))) {
            fprintf(stderr, "kanjiki stats: bad or incomplete option %s\n%s", o, help_text);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(o, "--since") && tu_parse_when(v, now, &since) < 0) {
            fprintf(stderr, "kanjiki stats: bad time '%s'\n", v);
            return 2;
        }
        if (!strcmp(o, "--format") && cli_parse_format(v, &fmt) < 0) {
            fprintf(stderr, "kanjiki stats: bad format '%s'\n", v);
            return 2;
        }
    }
    struct store *s;
    char err[512];
    if (cli_open_existing(ctx, &s, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki stats: %s\n", err);
        return 1;
    }
    uint64_t counts[VERDICT_ACTION_COUNT], degraded;
    struct store_zone_stat *z = NULL;
    size_t nz = 0;
    int64_t since_ms = (int64_t)since * 1000;
    if (store_action_counts(s, since_ms, counts, &degraded, err, sizeof err) < 0 ||
        store_zone_stats(s, since_ms, &z, &nz, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki stats: %s\n", err);
        store_close(s);
        return 1;
    }
    store_close(s);
    char when[40];
    if (fmt == CLI_FMT_TABLE) {
        tu_format_local(since_ms, when, sizeof when);
        printf("verdicts since %s:", when);
        for (int a = 0; a < VERDICT_ACTION_COUNT; a++)
            printf(" %s %" PRIu64 "%s", verdict_action_name((enum verdict_action)a), counts[a],
                   a + 1 < VERDICT_ACTION_COUNT ? "," : "");
        printf(" (degraded %" PRIu64 ")\n\n", degraded);
    } else if (fmt == CLI_FMT_JSON) {
        tu_format_iso_ms(since_ms, when, sizeof when);
        printf("{\"type\":\"verdicts\",\"since\":\"%s\"", when);
        for (int a = 0; a < VERDICT_ACTION_COUNT; a++)
            printf(",\"%s\":%" PRIu64, verdict_action_name((enum verdict_action)a), counts[a]);
        printf(",\"degraded\":%" PRIu64 "}\n", degraded);
    }
    struct table *t = table_new(cols, NCOLS);
    for (size_t i = 0; i < nz; i++)
        add_zone(t, &z[i], fmt);
    if (fmt == CLI_FMT_TABLE && !nz)
        puts("no blocklist or SPF lookups in this period");
    else
        table_print(t, fmt, stdout);
    table_free(t);
    free(z);
    return 0;
}
