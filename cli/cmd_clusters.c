/* kanjiki clusters: what the snowshoe detector of kanjiki-milter currently
 * remembers (the state it saves in the database every 30 seconds): the
 * address blocks and sender domains that look like snowshoe clusters, with
 * their counts, memory and first/last seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "snowshoe.h"
#include "store.h"
#include "table.h"
#include "timeutil.h"
#include "xalloc.h"

static const char *help_text =
    "usage: kanjiki [-c FILE | -d DB] clusters [options]\n"
    "The address blocks and sender domains the snowshoe detector remembers\n"
    "(kanjiki-milter with snowshoe = observe saves them every 30 s).\n"
    "  --window D      count messages within this (default 7d)\n"
    "  --domains       list sender domains instead of blocks\n"
    "  --all           every entry, not only suspicious ones (a block: 3 IPs\n"
    "                  or 3 new domains in the window, or spam memory; a\n"
    "                  domain: sent from 3 blocks, or called spam)\n"
    "  --limit N       at most N rows (default 100; 0 = all)\n"
    "  --format F      table (default on a terminal), json or csv\n";

static const struct table_col bcols[] = {
    { "block", TABLE_COL_TEXT, 48 }, { "messages", TABLE_COL_INT, 0 },
    { "ips", TABLE_COL_INT, 0 },     { "new_domains", TABLE_COL_INT, 0 },
    { "helos", TABLE_COL_INT, 0 },   { "suspicious", TABLE_COL_INT, 0 },
    { "memory", TABLE_COL_JSON, 0 }, { "first_seen", TABLE_COL_TEXT, 0 },
    { "last_seen", TABLE_COL_TEXT, 0 },
};
static const struct table_col dcols[] = {
    { "domain", TABLE_COL_TEXT, 48 }, { "blocks", TABLE_COL_INT, 0 },
    { "messages", TABLE_COL_INT, 0 }, { "spam", TABLE_COL_INT, 0 },
    { "first_seen", TABLE_COL_TEXT, 0 }, { "last_seen", TABLE_COL_TEXT, 0 },
};

struct row {
    char *name;
    struct snowshoe_block_info b;
    struct snowshoe_domain_info d;
    double rank;
};

struct ctx {
    struct row *v;
    size_t n;
    int64_t now, window;
    bool domains, all;
    size_t bad;
};

static int on_row(int kind, uint64_t key, const char *name, const void *data, size_t len,
                  int64_t last_ms, void *arg)
{
    (void)key;
    (void)last_ms;
    struct ctx *c = arg;
    struct row r = { 0 };
    if (!c->domains) {
        if (snowshoe_block_info(data, len, c->now, c->window, 7.0 * 86400000, &r.b) < 0) {
            c->bad++;
            return 0;
        }
        bool sus = r.b.ips >= 3 || r.b.new_domains >= 3 || r.b.memory >= 0.5;
        if (!c->all && !sus)
            return 0;
        r.rank = r.b.memory * 4 + r.b.new_domains * 2 + r.b.ips;
    } else {
        if (snowshoe_domain_info(data, len, c->now, c->window, &r.d) < 0) {
            c->bad++;
            return 0;
        }
        if (!c->all && r.d.blocks < 3 && !r.d.spam)
            return 0;
        r.rank = r.d.spam * 4.0 + r.d.blocks;
    }
    (void)kind;
    r.name = xstrdup(name ? name : "?");
    c->v = xrealloc(c->v, (c->n + 1) * sizeof *c->v);
    c->v[c->n++] = r;
    return 0;
}

static int by_rank(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    return x->rank < y->rank ? 1 : x->rank > y->rank ? -1 : strcmp(x->name, y->name);
}

static void when(int64_t ms, enum cli_format fmt, char *out, size_t len)
{
    if (fmt == CLI_FMT_TABLE)
        tu_format_local(ms, out, len);
    else
        tu_format_iso_ms(ms, out, len);
}

int cmd_clusters(struct cli_ctx *ctx, int argc, char **argv)
{
    enum cli_format fmt = ctx->tty ? CLI_FMT_TABLE : CLI_FMT_JSON;
    struct ctx c = { .window = 7LL * 86400000 };
    long long limit = 100;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(help_text, stdout);
            return 0;
        } else if (!strcmp(o, "--domains")) {
            c.domains = true;
        } else if (!strcmp(o, "--all")) {
            c.all = true;
        } else if (i + 1 < argc && !strcmp(o, "--window")) {
            int64_t secs;
            if (tu_parse_duration(argv[++i], &secs) < 0 || secs <= 0) {
                fprintf(stderr, "kanjiki clusters: bad duration '%s'\n", argv[i]);
                return 2;
            }
            c.window = secs * 1000;
        } else if (i + 1 < argc && !strcmp(o, "--limit")) {
            char *end;
            limit = strtoll(argv[++i], &end, 10);
            if (*end || limit < 0) {
                fprintf(stderr, "kanjiki clusters: bad limit '%s'\n", argv[i]);
                return 2;
            }
        } else if (i + 1 < argc && !strcmp(o, "--format")) {
            if (cli_parse_format(argv[++i], &fmt) < 0) {
                fprintf(stderr, "kanjiki clusters: bad format '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "kanjiki clusters: unknown or incomplete option %s\n%s", o,
                    help_text);
            return 2;
        }
    }
    struct store *s;
    char err[512];
    if (cli_open_existing(ctx, &s, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki clusters: %s\n", err);
        return 1;
    }
    c.now = tu_now_ms();
    int rc = store_snowshoe_load(s, c.domains ? SNOWSHOE_KIND_DOMAIN : SNOWSHOE_KIND_BLOCK,
                                 c.now - c.window, on_row, &c, err, sizeof err);
    store_close(s);
    if (rc < 0) {
        fprintf(stderr, "kanjiki clusters: %s\n", err);
        return 1;
    }
    qsort(c.v, c.n, sizeof *c.v, by_rank);
    struct table *t = c.domains ? table_new(dcols, sizeof dcols / sizeof dcols[0])
                                : table_new(bcols, sizeof bcols / sizeof bcols[0]);
    for (size_t i = 0; i < c.n && (!limit || (long long)i < limit); i++) {
        const struct row *r = &c.v[i];
        char n[6][24], first[40], last[40];
        if (c.domains) {
            when(r->d.first_ms, fmt, first, sizeof first);
            when(r->d.last_ms, fmt, last, sizeof last);
            snprintf(n[0], sizeof n[0], "%u", r->d.blocks);
            snprintf(n[1], sizeof n[1], "%u", r->d.messages);
            snprintf(n[2], sizeof n[2], "%u", r->d.spam);
            const char *cells[] = { r->name, n[0], n[1], n[2], first, last };
            table_add(t, cells);
        } else {
            when(r->b.first_ms, fmt, first, sizeof first);
            when(r->b.last_ms, fmt, last, sizeof last);
            snprintf(n[0], sizeof n[0], "%u", r->b.messages);
            snprintf(n[1], sizeof n[1], "%u", r->b.ips);
            snprintf(n[2], sizeof n[2], "%u", r->b.new_domains);
            snprintf(n[3], sizeof n[3], "%u", r->b.helos);
            snprintf(n[4], sizeof n[4], "%u", r->b.suspicious);
            snprintf(n[5], sizeof n[5], "%.2f", r->b.memory);
            const char *cells[] = { r->name, n[0], n[1], n[2], n[3], n[4], n[5], first, last };
            table_add(t, cells);
        }
    }
    table_print(t, fmt, stdout);
    if (fmt == CLI_FMT_TABLE && ctx->tty)
        printf("(%zu %s%s)\n", c.n, c.domains ? "domains" : "blocks",
               c.bad ? "; some rows from another kanjiki version skipped" : "");
    table_free(t);
    for (size_t i = 0; i < c.n; i++)
        free(c.v[i].name);
    free(c.v);
    return 0;
}
