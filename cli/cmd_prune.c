/* kanjiki prune: delete old verdicts (and their lookups) in short batches,
 * so that a running kanjiki-milter's writer never waits for more than one
 * batch; kanjiki export: stream verdicts out as JSON lines or CSV without
 * holding them in memory. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "esc.h"
#include "sbuf.h"
#include "store.h"
#include "timeutil.h"

static const char *prune_help =
    "usage: kanjiki [-c FILE | -d DB] prune --older-than DURATION [--dry-run]\n"
    "                                      [--batch N] [--pause DURATION]\n"
    "Delete verdicts (and their blocklist lookups) older than DURATION (e.g.\n"
    "90d), oldest first, N at a time (default 500) with a pause between\n"
    "batches (default 10ms): a running kanjiki-milter keeps writing, its\n"
    "writer never waits longer than one batch. --dry-run only counts.\n"
    "kanjiki-milter does the same by itself with `retention = 90d`.\n";

int cmd_prune(struct cli_ctx *ctx, int argc, char **argv)
{
    int64_t older = -1, pause_ms = 10;
    const char *older_txt = "";
    long batch = 500;
    bool dry = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t secs;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(prune_help, stdout);
            return 0;
        } else if (!strcmp(o, "--dry-run")) {
            dry = true;
        } else if (!strcmp(o, "--older-than") && v && tu_parse_duration(v, &secs) == 0 &&
                   secs >= 0) {
            older = secs * 1000;
            older_txt = v;
            i++;
        } else if (!strcmp(o, "--batch") && v && (batch = strtol(v, NULL, 10)) >= 1 &&
                   batch <= 100000) {
            i++;
        } else if (!strcmp(o, "--pause") && v && tu_parse_duration_ms(v, &pause_ms) == 0 &&
                   pause_ms >= 0 && pause_ms <= 60000) {
            i++;
        } else {
            fprintf(stderr, "kanjiki prune: bad or incomplete option %s\n%s", o, prune_help);
            return 2;
        }
    }
    if (older < 0) {
        fprintf(stderr, "kanjiki prune: --older-than is required\n%s", prune_help);
        return 2;
    }
    struct store *s;
    char err[512];
    if (store_open(ctx->db_path, STORE_NOCREATE, 5000, &s, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki prune: %s\n", err);
        return 1;
    }
    int64_t before = tu_now_ms() - older;
    uint64_t total = 0;
    int rc = 0;
    if (store_count_before(s, before, &total, err, sizeof err) < 0) {
        rc = 1;
    } else if (dry) {
        printf("%" PRIu64 " verdicts older than %s would be deleted\n", total, older_txt);
    } else {
        uint64_t done = 0;
        int64_t t0 = tu_now_ms(), worst = 0;
        for (;;) {
            int n = 0;
            int64_t b0 = tu_now_ms();
            if (store_prune_batch(s, before, (int)batch, &n, err, sizeof err) < 0) {
                rc = 1;
                break;
            }
            if (tu_now_ms() - b0 > worst)
                worst = tu_now_ms() - b0;
            done += (uint64_t)n;
            if (n < batch)
                break;
            struct timespec ts = { pause_ms / 1000, (pause_ms % 1000) * 1000000 };
            nanosleep(&ts, NULL);
        }
        printf("%" PRIu64 " verdicts deleted in %lld ms (longest batch %lld ms)\n", done,
               (long long)(tu_now_ms() - t0), (long long)worst);
    }
    if (rc)
        fprintf(stderr, "kanjiki prune: %s\n", err);
    store_close(s);
    return rc;
}

static const char *export_help =
    "usage: kanjiki [-c FILE | -d DB] export [--since WHEN] [--until WHEN]\n"
    "                                       [--format jsonl|csv]\n"
    "Every verdict (newest first), streamed: JSON lines with the fields of\n"
    "kanjiki query --format json, or CSV with a header line.\n";

static const char *const csv_cols[] = {
    "id", "time", "kind", "queue_id", "message_id", "client_ip", "client_name", "helo", "sender",
    "auth_user", "rcpt", "recipients", "stage", "action", "monitor", "reply", "score",
    "degraded", "reasons",
};

/* RFC 4180: quoted when it holds a comma, quote or line break, quotes
 * doubled; the data stays as it is (JSON columns stay JSON, a negative
 * score stays a number), except control bytes, shown as \xNN so that the
 * export never carries terminal escapes. */
static void csv_field(struct sbuf *b, const char *s)
{
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        sbuf_addc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"')
            sbuf_adds(b, "\"\"");
        else if (c < 0x20 || c == 0x7f)
            sbuf_addf(b, "\\x%02x", c);
        else
            sbuf_addc(b, (char)c);
    }
    if (quote)
        sbuf_addc(b, '"');
}

struct export {
    bool csv;
    struct sbuf b;
    uint64_t n;
};

static int export_row(const struct verdict *v, void *arg)
{
    struct export *x = arg;
    sbuf_reset(&x->b);
    if (!x->csv) {
        char *m = verdict_json_members(v);
        sbuf_addf(&x->b, "{\"id\":%lld,%s}\n", (long long)v->id, m);
        free(m);
    } else {
        char id[24], when[40], score[32] = "";
        snprintf(id, sizeof id, "%lld", (long long)v->id);
        tu_format_iso_ms(v->time_ms, when, sizeof when);
        if (v->scored)
            snprintf(score, sizeof score, "%g", v->score);
        char *rcpts = verdict_rcpts_to_json(v);
        const char *cells[] = { id, when, verdict_kind_name(v->kind), v->queue_id, v->message_id,
                                v->client_ip,
                                v->client_name, v->helo, v->sender, v->auth_user, v->rcpt,
                                rcpts, verdict_stage_name(v->stage),
                                verdict_action_name(v->action), v->monitor ? "1" : "0",
                                v->reply, score, v->degraded ? "1" : "0",
                                v->reasons_json ? v->reasons_json : "[]" };
        for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
            if (i)
                sbuf_addc(&x->b, ',');
            csv_field(&x->b, cells[i] ? cells[i] : "");
        }
        sbuf_addc(&x->b, '\n');
        free(rcpts);
    }
    fwrite(sbuf_str(&x->b), 1, x->b.len, stdout);
    x->n++;
    return ferror(stdout) ? 1 : 0;   /* a closed pipe stops the query */
}

int cmd_export(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_filter f;
    store_filter_init(&f);
    struct export x = { false, SBUF_INIT, 0 };
    time_t now = time(NULL), t;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(export_help, stdout);
            return 0;
        } else if ((!strcmp(o, "--since") || !strcmp(o, "--until")) && v &&
                   tu_parse_when(v, now, &t) == 0 && t >= 0 &&
                   t <= (time_t)(INT64_MAX / 1000)) {
            *(o[2] == 's' ? &f.since_ms : &f.until_ms) = (int64_t)t * 1000;
            i++;
        } else if (!strcmp(o, "--format") && v && (!strcmp(v, "jsonl") || !strcmp(v, "json") ||
                                                   !strcmp(v, "csv"))) {
            x.csv = !strcmp(v, "csv");
            i++;
        } else {
            fprintf(stderr, "kanjiki export: bad or incomplete option %s\n%s", o, export_help);
            return 2;
        }
    }
    struct store *s;
    char err[512];
    if (cli_open_existing(ctx, &s, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki export: %s\n", err);
        return 1;
    }
    if (x.csv) {
        for (size_t i = 0; i < sizeof csv_cols / sizeof csv_cols[0]; i++)
            printf("%s%s", i ? "," : "", csv_cols[i]);
        putchar('\n');
    }
    int rc = store_query(s, &f, export_row, &x, err, sizeof err);
    store_close(s);
    sbuf_free(&x.b);
    if (rc < 0) {
        fprintf(stderr, "kanjiki export: %s\n", err);
        return 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "kanjiki export: write error after %" PRIu64 " verdicts\n", x.n);
        return 1;
    }
    return 0;
}
