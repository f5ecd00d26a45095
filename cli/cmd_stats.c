/* kanjiki stats: what kanjiki decided and how its blocklists behave,
 * computed from the store (verdicts and their lookups), so it needs no
 * running daemon and shows any period. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "esc.h"
#include "ip.h"
#include "sbuf.h"
#include "snowshoe.h"
#include "xalloc.h"
#include "store.h"
#include "table.h"
#include "timeutil.h"

static const char *help_text =
    "usage: kanjiki [-c FILE | -d DB] stats [--since WHEN] [--by hour|day]\n"
    "                                      [--top N] [--format F]\n"
    "Verdicts per action and over time, the top reasons, refused clients and\n"
    "address blocks, relay attempts refused, snowshoe clusters, and per\n"
    "blocklist zone (and SPF): lookups, listed, clean, refused (error codes:\n"
    "the list refuses us), degraded (timeouts, errors), skipped (zone failed\n"
    "its health test), cache hit rate and answer latency percentiles.\n"
    "  --since WHEN   a duration ago (1h, 7d) or a time; default 24h\n"
    "  --by hour|day  the timeline's buckets (default hour within 2 days, else day)\n"
    "  --top N        rows in each top list (default 10)\n"
    "  --format F     table (default on a terminal), json (one object per line),\n"
    "                 csv (zones only) or prometheus (text exposition, for\n"
    "                 node_exporter's textfile collector)\n";

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

static int by_key(const void *a, const void *b)
{
    return strcmp(((const struct store_count *)a)->key, ((const struct store_count *)b)->key);
}

/* Refused clients by address block: /24 for IPv4, /48 for IPv6 (sorted and
 * merged: many thousands of clients stay quick). */
static size_t blocks_of(const struct store_count *c, size_t n, struct store_count **out)
{
    *out = n ? xcalloc(n, sizeof **out) : NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        struct ip a;
        if (ip_parse(c[i].key, &a) < 0)
            continue;
        struct cidr b = { a, ip_is_v4(&a) ? 120 : 48 };
        ip_mask(&b.net, b.bits);
        cidr_format(&b, (*out)[m].key, sizeof (*out)[m].key);
        (*out)[m++].n = c[i].n;
    }
    if (m)
        qsort(*out, m, sizeof **out, by_key);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (k && !strcmp((*out)[k - 1].key, (*out)[i].key))
            (*out)[k - 1].n += (*out)[i].n;
        else
            (*out)[k++] = (*out)[i];
    }
    return k;
}

static int by_count(const void *a, const void *b)
{
    const struct store_count *x = a, *y = b;
    return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->key, y->key);
}

/* Suspicious snowshoe blocks in the saved state (as kanjiki clusters
 * counts them). */
struct snow_count {
    int64_t now;
    uint64_t n;
};

static int count_block(int kind, uint64_t key, const char *name, const void *data, size_t len,
                       int64_t last_ms, void *arg)
{
    (void)kind, (void)key, (void)name, (void)last_ms;
    struct snow_count *c = arg;
    struct snowshoe_block_info b;
    if (snowshoe_block_info(data, len, c->now, 7LL * 86400000, 7.0 * 86400000, &b) == 0 &&
        (b.ips >= 3 || b.new_domains >= 3 || b.memory >= 0.5))
        c->n++;
    return 0;
}

/* A Prometheus label value: backslash, quote and newline escaped; other
 * control bytes dropped (mail data never reaches it raw). */
static void prom_label(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            sbuf_addc(b, '\\'), sbuf_addc(b, *s);
        else if (*s == '\n')
            sbuf_adds(b, "\\n");
        else if ((unsigned char)*s >= 0x20 && *s != 0x7f)
            sbuf_addc(b, *s);
    }
}

static void prom_head(const char *name, const char *help)
{
    printf("# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void prom_list(const char *name, const char *label, const struct store_count *c,
                      size_t n)
{
    struct sbuf b = SBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        sbuf_reset(&b);
        prom_label(&b, c[i].key);
        printf("%s{%s=\"%s\"} %" PRIu64 "\n", name, label, sbuf_str(&b), c[i].n);
    }
    sbuf_free(&b);
}

static void json_list(const char *type, const char *key, const struct store_count *c, size_t n)
{
    struct sbuf b = SBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        sbuf_reset(&b);
        esc_json_s(&b, c[i].key);
        printf("{\"type\":\"%s\",\"%s\":%s,\"count\":%" PRIu64 "}\n", type, key, sbuf_str(&b),
               c[i].n);
    }
    sbuf_free(&b);
}

static void table_list(const char *title, const char *col, const struct store_count *c,
                       size_t n)
{
    printf("\n%s:\n", title);
    if (!n) {
        printf("  none\n");
        return;
    }
    struct table_col lcols[] = { { col, TABLE_COL_TEXT, 60 }, { "count", TABLE_COL_INT, 0 } };
    struct table *t = table_new(lcols, 2);
    for (size_t i = 0; i < n; i++) {
        char num[24];
        snprintf(num, sizeof num, "%" PRIu64, c[i].n);
        const char *cells[2] = { c[i].key, num };
        table_add(t, cells);
    }
    table_print(t, CLI_FMT_TABLE, stdout);
    table_free(t);
}

static void print_prometheus(const uint64_t *counts, uint64_t degraded,
                             const struct store_zone_stat *z, size_t nz,
                             const struct store_count *reasons, size_t nr,
                             const struct store_count *blocks, size_t nb, uint64_t relay,
                             uint64_t snow, int64_t since_ms)
{
    prom_head("kanjiki_window_start_seconds", "start of the period these figures cover");
    printf("kanjiki_window_start_seconds %lld\n", (long long)(since_ms / 1000));
    prom_head("kanjiki_verdicts", "verdicts in the period by action");
    for (int a = 0; a < VERDICT_ACTION_COUNT; a++)
        printf("kanjiki_verdicts{action=\"%s\"} %" PRIu64 "\n",
               verdict_action_name((enum verdict_action)a), counts[a]);
    prom_head("kanjiki_verdicts_degraded", "verdicts made without every check in time");
    printf("kanjiki_verdicts_degraded %" PRIu64 "\n", degraded);
    prom_head("kanjiki_relay_attempts_refused", "recipients refused by the relay guard");
    printf("kanjiki_relay_attempts_refused %" PRIu64 "\n", relay);
    prom_head("kanjiki_snowshoe_suspicious_blocks", "suspicious blocks the detector remembers");
    printf("kanjiki_snowshoe_suspicious_blocks %" PRIu64 "\n", snow);
    prom_head("kanjiki_reason_verdicts", "verdicts other than accept by reason code (top)");
    prom_list("kanjiki_reason_verdicts", "code", reasons, nr);
    prom_head("kanjiki_refused_block_verdicts", "refusals by client block /24 or /48 (top)");
    prom_list("kanjiki_refused_block_verdicts", "block", blocks, nb);
    static const char *const m[] = { "lookups", "listed", "clean", "refused", "degraded",
                                     "skipped", "cached" };
    for (size_t k = 0; k < 7; k++) {
        char name[64], help[96];
        snprintf(name, sizeof name, "kanjiki_zone_%s", m[k]);
        snprintf(help, sizeof help, "blocklist/SPF lookups in the period: %s", m[k]);
        prom_head(name, help);
        for (size_t i = 0; i < nz; i++) {
            uint64_t v[] = { z[i].lookups, z[i].listed, z[i].clean, z[i].refused,
                             z[i].degraded, z[i].skipped, z[i].cached };
            struct sbuf b = SBUF_INIT;
            prom_label(&b, z[i].zone);
            struct sbuf kb = SBUF_INIT;
            prom_label(&kb, z[i].kind);
            printf("%s{zone=\"%s\",kind=\"%s\"} %" PRIu64 "\n", name, sbuf_str(&b),
                   sbuf_str(&kb), v[k]);
            sbuf_free(&kb);
            sbuf_free(&b);
        }
    }
    prom_head("kanjiki_zone_latency_milliseconds", "answer latency of uncached lookups");
    for (size_t i = 0; i < nz; i++) {
        int64_t q[] = { z[i].p50_ms, z[i].p95_ms, z[i].p99_ms };
        static const char *const qn[] = { "0.5", "0.95", "0.99" };
        struct sbuf b = SBUF_INIT;
        prom_label(&b, z[i].zone);
        for (size_t k = 0; k < 3; k++)
            if (q[k] >= 0)
                printf("kanjiki_zone_latency_milliseconds{zone=\"%s\",quantile=\"%s\"} %lld\n",
                       sbuf_str(&b), qn[k], (long long)q[k]);
        sbuf_free(&b);
    }
}

int cmd_stats(struct cli_ctx *ctx, int argc, char **argv)
{
    enum cli_format fmt = ctx->tty ? CLI_FMT_TABLE : CLI_FMT_JSON;
    bool prom = false;
    time_t now = time(NULL), since = now - 86400;
    int64_t bucket_ms = 0;
    long top = 10;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(help_text, stdout);
            return 0;
        }
        if (i + 1 >= argc || (strcmp(o, "--since") && strcmp(o, "--format") &&
                              strcmp(o, "--by") && strcmp(o, "--top"))) {
            fprintf(stderr, "kanjiki stats: bad or incomplete option %s\n%s", o, help_text);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(o, "--since") && (tu_parse_when(v, now, &since) < 0 || since < 0 ||
                                      since > (time_t)(INT64_MAX / 1000))) {
            fprintf(stderr, "kanjiki stats: bad time '%s'\n", v);
            return 2;
        }
        if (!strcmp(o, "--format")) {
            prom = !strcmp(v, "prometheus");
            if (!prom && cli_parse_format(v, &fmt) < 0) {
                fprintf(stderr, "kanjiki stats: bad format '%s'\n", v);
                return 2;
            }
        }
        if (!strcmp(o, "--by")) {
            if (strcmp(v, "hour") && strcmp(v, "day")) {
                fprintf(stderr, "kanjiki stats: --by hour or day, not '%s'\n", v);
                return 2;
            }
            bucket_ms = v[0] == 'h' ? 3600000 : 86400000;
        }
        if (!strcmp(o, "--top") && ((top = strtol(v, NULL, 10)) < 1 || top > 1000)) {
            fprintf(stderr, "kanjiki stats: --top from 1 to 1000\n");
            return 2;
        }
    }
    int64_t since_ms = (int64_t)since * 1000;
    if (!bucket_ms)
        bucket_ms = (int64_t)now * 1000 - since_ms <= 2 * 86400000LL ? 3600000 : 86400000;
    struct store *s;
    char err[512];
    if (cli_open_existing(ctx, &s, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki stats: %s\n", err);
        return 1;
    }
    uint64_t counts[VERDICT_ACTION_COUNT], degraded, relay = 0;
    struct store_zone_stat *z = NULL;
    struct store_bucket *tl = NULL;
    struct store_count *reasons = NULL, *clients = NULL, *blocks = NULL, *rel = NULL;
    size_t nz = 0, ntl = 0, nr = 0, nc = 0, nb = 0, nrel = 0;
    struct snow_count snow = { tu_now_ms(), 0 };
    int rc = 0;
    if (store_action_counts(s, since_ms, counts, &degraded, err, sizeof err) < 0 ||
        store_zone_stats(s, since_ms, &z, &nz, err, sizeof err) < 0 ||
        store_timeline(s, since_ms, bucket_ms, &tl, &ntl, err, sizeof err) < 0 ||
        store_top(s, STORE_TOP_REASONS, since_ms, (size_t)top, &reasons, &nr, err,
                  sizeof err) < 0 ||
        store_top(s, STORE_TOP_CLIENTS, since_ms, 0, &clients, &nc, err, sizeof err) < 0 ||
        store_top(s, STORE_RELAY_REFUSED, since_ms, 1, &rel, &nrel, err, sizeof err) < 0 ||
        store_snowshoe_load(s, SNOWSHOE_KIND_BLOCK, snow.now - 30LL * 86400000, count_block,
                            &snow, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki stats: %s\n", err);
        rc = 1;
        goto out;
    }
    relay = nrel ? rel[0].n : 0;
    nb = blocks_of(clients, nc, &blocks);
    if (nb)
        qsort(blocks, nb, sizeof *blocks, by_count);
    if (nb > (size_t)top)
        nb = (size_t)top;
    if (nc > (size_t)top)
        nc = (size_t)top;   /* already most first */
    if (prom) {
        print_prometheus(counts, degraded, z, nz, reasons, nr, blocks, nb, relay, snow.n,
                         since_ms);
        goto out;
    }
    char when[40];
    if (fmt == CLI_FMT_TABLE) {
        tu_format_local(since_ms, when, sizeof when);
        printf("verdicts since %s:", when);
        for (int a = 0; a < VERDICT_ACTION_COUNT; a++)
            printf(" %s %" PRIu64 "%s", verdict_action_name((enum verdict_action)a), counts[a],
                   a + 1 < VERDICT_ACTION_COUNT ? "," : "");
        printf(" (degraded %" PRIu64 ")\n", degraded);
        printf("relay attempts refused: %" PRIu64 "; snowshoe: %" PRIu64
               " suspicious blocks remembered\n", relay, snow.n);
        printf("\nper %s:\n", bucket_ms == 3600000 ? "hour" : "day");
        struct table_col tcols[VERDICT_ACTION_COUNT + 1] = { { "start", TABLE_COL_TEXT, 0 } };
        for (int a = 0; a < VERDICT_ACTION_COUNT; a++)
            tcols[a + 1] = (struct table_col){ verdict_action_name((enum verdict_action)a),
                                               TABLE_COL_INT, 0 };
        struct table *t = table_new(tcols, VERDICT_ACTION_COUNT + 1);
        for (size_t i = 0; i < ntl; i++) {
            char start[40], num[VERDICT_ACTION_COUNT][24];
            const char *cells[VERDICT_ACTION_COUNT + 1] = { start };
            tu_format_local(tl[i].start_ms, start, sizeof start);
            for (int a = 0; a < VERDICT_ACTION_COUNT; a++) {
                snprintf(num[a], sizeof num[a], "%" PRIu64, tl[i].counts[a]);
                cells[a + 1] = num[a];
            }
            table_add(t, cells);
        }
        if (ntl)
            table_print(t, CLI_FMT_TABLE, stdout);
        else
            printf("  no verdicts\n");
        table_free(t);
        table_list("top reasons (verdicts other than accept)", "reason", reasons, nr);
        table_list("top refused clients", "client", clients, nc);
        table_list("top refused blocks", "block", blocks, nb);
        printf("\n");
    } else if (fmt == CLI_FMT_JSON) {
        tu_format_iso_ms(since_ms, when, sizeof when);
        printf("{\"type\":\"verdicts\",\"since\":\"%s\"", when);
        for (int a = 0; a < VERDICT_ACTION_COUNT; a++)
            printf(",\"%s\":%" PRIu64, verdict_action_name((enum verdict_action)a), counts[a]);
        printf(",\"degraded\":%" PRIu64 ",\"relay_refused\":%" PRIu64
               ",\"snowshoe_suspicious_blocks\":%" PRIu64 "}\n", degraded, relay, snow.n);
        for (size_t i = 0; i < ntl; i++) {
            tu_format_iso_ms(tl[i].start_ms, when, sizeof when);
            printf("{\"type\":\"timeline\",\"start\":\"%s\",\"bucket\":\"%s\"", when,
                   bucket_ms == 3600000 ? "hour" : "day");
            for (int a = 0; a < VERDICT_ACTION_COUNT; a++)
                printf(",\"%s\":%" PRIu64, verdict_action_name((enum verdict_action)a),
                       tl[i].counts[a]);
            printf("}\n");
        }
        json_list("reason", "code", reasons, nr);
        json_list("refused_client", "client", clients, nc);
        json_list("refused_block", "block", blocks, nb);
    }
    struct table *t = table_new(cols, NCOLS);
    for (size_t i = 0; i < nz; i++)
        add_zone(t, &z[i], fmt);
    if (fmt == CLI_FMT_TABLE && !nz)
        puts("no blocklist or SPF lookups in this period");
    else
        table_print(t, fmt, stdout);
    table_free(t);
out:
    store_close(s);
    free(z);
    free(tl);
    free(reasons);
    free(clients);
    free(blocks);
    free(rel);
    return rc;
}
