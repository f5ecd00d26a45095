/* kanjiki query: list verdicts from the store with filters, as an aligned
 * table, JSON lines or CSV. Every field from mail is escaped by the table
 * printer for the chosen format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sbuf.h"
#include "store.h"
#include "table.h"
#include "timeutil.h"

#define DEFAULT_LIMIT 1000

static const char *help_text =
    "usage: kanjiki [-c FILE | -d DB] query [options]\n"
    "  --since WHEN      verdicts at or after WHEN: a duration ago (1h, 7d) or a\n"
    "                    time (2026-11-22, \"2026-11-22 14:00\", 2026-11-22T14:00Z)\n"
    "  --until WHEN      verdicts at or before WHEN\n"
    "  --ip ADDR|CIDR    client address or network (192.0.2.0/24, 2001:db8::/32)\n"
    "  --sender S        envelope sender: user@domain exactly, or a domain\n"
    "  --rcpt R          recipient (refused or accepted): user@domain or a domain\n"
    "  --action A        accept, tag, quarantine, tempfail or reject\n"
    "  --kind K          message (one row per message) or rcpt (refused recipient)\n"
    "  --reason CODE     a reason code, e.g. relay_denied, percent_hack, dnsbl_listed\n"
    "  --zone ZONE       verdicts with a lookup in this blocklist zone (or spf)\n"
    "  --listed          verdicts where some blocklist listed a subject\n"
    "  --limit N         at most N rows, newest first (default 1000; 0 = all)\n"
    "  --format F        table (default on a terminal), json (one object per\n"
    "                    line; default otherwise) or csv\n";

static const struct table_col cols_table[] = {
    { "time", TABLE_COL_TEXT, 0 },     { "kind", TABLE_COL_TEXT, 0 },
    { "queue_id", TABLE_COL_TEXT, 12 }, { "client", TABLE_COL_TEXT, 40 },
    { "sender", TABLE_COL_TEXT, 32 },  { "rcpt", TABLE_COL_TEXT, 40 },
    { "action", TABLE_COL_TEXT, 0 },   { "score", TABLE_COL_TEXT, 0 },
    { "reasons", TABLE_COL_TEXT, 48 },
};

static const struct table_col cols_full[] = {
    { "id", TABLE_COL_INT, 0 },         { "time", TABLE_COL_TEXT, 0 },
    { "kind", TABLE_COL_TEXT, 0 },      { "queue_id", TABLE_COL_TEXT, 0 },
    { "client_ip", TABLE_COL_TEXT, 0 }, { "client_name", TABLE_COL_TEXT, 0 },
    { "helo", TABLE_COL_TEXT, 0 },      { "sender", TABLE_COL_TEXT, 0 },
    { "auth_user", TABLE_COL_TEXT, 0 }, { "rcpt", TABLE_COL_TEXT, 0 },
    { "recipients", TABLE_COL_JSON, 0 }, { "stage", TABLE_COL_TEXT, 0 },
    { "action", TABLE_COL_TEXT, 0 },    { "monitor", TABLE_COL_JSON, 0 },
    { "reply", TABLE_COL_TEXT, 0 },     { "reasons", TABLE_COL_JSON, 0 },
    { "score", TABLE_COL_JSON, 0 },     { "degraded", TABLE_COL_JSON, 0 },
    { "lookups", TABLE_COL_JSON, 0 },
};

struct qctx {
    struct table *t;
    enum cli_format fmt;
};

/* Reason codes as "a,b" for the table: parsed back out of the stored JSON
 * with a tiny scan, since the store wrote that JSON itself. */
static void reason_codes(const char *json, struct sbuf *out)
{
    const char *p = json;
    while (p && (p = strstr(p, "\"code\":\""))) {
        p += 8;
        const char *e = strchr(p, '"');
        if (!e)
            break;
        if (out->len)
            sbuf_addc(out, ',');
        sbuf_add(out, p, (size_t)(e - p));
        p = e;
    }
}

static int add_row(const struct verdict *v, void *arg)
{
    struct qctx *q = arg;
    char when[40];
    if (q->fmt == CLI_FMT_TABLE)
        tu_format_local(v->time_ms, when, sizeof when);
    else
        tu_format_iso_ms(v->time_ms, when, sizeof when);
    if (q->fmt == CLI_FMT_TABLE) {
        struct sbuf client = SBUF_INIT, rcpt = SBUF_INIT, codes = SBUF_INIT, act = SBUF_INIT;
        sbuf_adds(&client, v->client_ip ? v->client_ip : "unknown");
        if (v->client_name && *v->client_name)
            sbuf_addf(&client, " (%s)", v->client_name);
        if (v->kind == VERDICT_KIND_RCPT)
            sbuf_adds(&rcpt, v->rcpt ? v->rcpt : "");
        for (size_t i = 0; v->kind == VERDICT_KIND_MESSAGE && i < v->nrcpts; i++)
            sbuf_addf(&rcpt, "%s%s", i ? "," : "", v->rcpts[i]);
        reason_codes(v->reasons_json, &codes);
        sbuf_addf(&act, "%s%s", verdict_action_name(v->action), v->monitor ? " (monitor)" : "");
        char score[32] = "";
        if (v->scored)
            snprintf(score, sizeof score, "%.1f%s", v->score, v->degraded ? "*" : "");
        const char *cells[] = { when, verdict_kind_name(v->kind), v->queue_id,
                                sbuf_str(&client), v->sender, sbuf_str(&rcpt),
                                sbuf_str(&act), score, sbuf_str(&codes) };
        table_add(q->t, cells);
        sbuf_free(&client);
        sbuf_free(&rcpt);
        sbuf_free(&codes);
        sbuf_free(&act);
        return 0;
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)v->id);
    char *rcpts = verdict_rcpts_to_json(v);
    char score[32] = "null";
    if (v->scored)
        snprintf(score, sizeof score, "%g", v->score);
    const char *cells[] = { id, when, verdict_kind_name(v->kind), v->queue_id, v->client_ip,
                            v->client_name, v->helo, v->sender, v->auth_user, v->rcpt,
                            rcpts, verdict_stage_name(v->stage),
                            verdict_action_name(v->action), v->monitor ? "true" : "false",
                            v->reply, v->reasons_json ? v->reasons_json : "[]", score,
                            v->degraded ? "true" : "false",
                            v->lookups_json ? v->lookups_json : "[]" };
    table_add(q->t, cells);
    free(rcpts);
    return 0;
}

static int bad(const char *what, const char *val)
{
    fprintf(stderr, "kanjiki query: bad %s '%s' (kanjiki query --help)\n", what, val);
    return 2;
}

int cmd_query(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_filter f;
    store_filter_init(&f);
    f.limit = DEFAULT_LIMIT;
    enum cli_format fmt = ctx->tty ? CLI_FMT_TABLE : CLI_FMT_JSON;
    time_t now = time(NULL);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(help_text, stdout);
            return 0;
        }
        if (!strcmp(o, "--listed")) {
            f.listed_only = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "kanjiki query: %s needs a value\n%s", o, help_text);
            return 2;
        }
        const char *v = argv[++i];
        time_t t;
        if (!strcmp(o, "--since") || !strcmp(o, "--until")) {
            if (tu_parse_when(v, now, &t) < 0)
                return bad("time", v);
            if (o[2] == 's')
                f.since_ms = (int64_t)t * 1000;
            else
                f.until_ms = (int64_t)t * 1000 + 999;
        } else if (!strcmp(o, "--ip")) {
            char err[160];
            if (cidr_parse(v, &f.net, err, sizeof err) < 0)
                return bad("address or network", v);
            f.has_net = true;
        } else if (!strcmp(o, "--sender")) {
            f.sender = v;
        } else if (!strcmp(o, "--rcpt")) {
            f.rcpt = v;
        } else if (!strcmp(o, "--action")) {
            if (verdict_action_parse(v, &f.action) < 0)
                return bad("action", v);
            f.has_action = true;
        } else if (!strcmp(o, "--kind")) {
            if (!strcmp(v, "message"))
                f.kind = VERDICT_KIND_MESSAGE;
            else if (!strcmp(v, "rcpt"))
                f.kind = VERDICT_KIND_RCPT;
            else
                return bad("kind", v);
        } else if (!strcmp(o, "--reason")) {
            f.reason_code = v;
        } else if (!strcmp(o, "--zone")) {
            f.zone = v;
        } else if (!strcmp(o, "--limit")) {
            char *end;
            long long n = strtoll(v, &end, 10);
            if (*end || end == v || n < 0)
                return bad("limit", v);
            f.limit = n;
        } else if (!strcmp(o, "--format")) {
            if (cli_parse_format(v, &fmt) < 0)
                return bad("format", v);
        } else {
            fprintf(stderr, "kanjiki query: unknown option %s\n%s", o, help_text);
            return 2;
        }
    }
    struct store *s;
    char err[512];
    if (cli_open_existing(ctx, &s, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki query: %s\n", err);
        return 1;
    }
    struct qctx q = { NULL, fmt };
    q.t = fmt == CLI_FMT_TABLE ? table_new(cols_table, sizeof cols_table / sizeof cols_table[0])
                               : table_new(cols_full, sizeof cols_full / sizeof cols_full[0]);
    int rc = store_query(s, &f, add_row, &q, err, sizeof err);
    store_close(s);
    if (rc < 0) {
        fprintf(stderr, "kanjiki query: %s\n", err);
        table_free(q.t);
        return 1;
    }
    table_print(q.t, fmt, stdout);
    if (fmt == CLI_FMT_TABLE && ctx->tty)
        printf("(%zu verdicts)\n", table_rows(q.t));
    table_free(q.t);
    return 0;
}
