/* kanjiki explain ID|QUEUE-ID|MESSAGE-ID: one decision in full, from the
 * store: the transaction, every check with its evidence (relay reason,
 * lookups with zone, answer and latency, SPF, snowshoe signals), the rules
 * that fired, the action and whether anything was degraded. The reasons and
 * lookups are kept as JSON in the store; SQLite's json_each reads them. */
#include <ctype.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "esc.h"
#include "sbuf.h"
#include "store.h"
#include "table.h"
#include "timeutil.h"

static const char *help_text =
    "usage: kanjiki [-c FILE | -d DB] explain [--format text|json] ID|QUEUE-ID|MESSAGE-ID\n"
    "One decision in full: the transaction, every check with its evidence\n"
    "(relay reason, blocklist lookups with answer and latency, SPF, snowshoe\n"
    "signals), the rules that fired, the action, what was degraded. ID is a\n"
    "verdict id (kanjiki query shows it), the MTA's queue id (every verdict of\n"
    "that message: its refused recipients too), or a Message-ID (with or\n"
    "without <>). --id, --queue-id, --message-id say which it is.\n";

struct found {
    struct verdict **v;
    size_t n;
};

static int collect(const struct verdict *v, void *arg)
{
    struct found *f = arg;
    f->v = realloc(f->v, (f->n + 1) * sizeof *f->v);
    if (!f->v)
        abort();
    f->v[f->n++] = verdict_clone(v);
    return f->n >= 100;   /* a queue id names one message: enough */
}

/* One line "label  value", the value escaped for the terminal. */
static void line(const char *label, const char *value)
{
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, value && *value ? value : "-");
    printf("%-12s %s\n", label, sbuf_str(&b));
    sbuf_free(&b);
}

/* The members of each object of a JSON array (our own, from the store),
 * through SQLite: fn(index, key, value) for each, in order. */
static void each_member(sqlite3 *db, const char *json,
                        void (*fn)(long idx, const char *key, const char *val, void *arg),
                        void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT r.key, a.key, a.value FROM json_each(CASE WHEN "
                               "json_valid(?1) THEN ?1 ELSE '[]' END) r, json_each(r.value) a "
                               "WHERE r.type = 'object' ORDER BY r.key, a.id",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(st, 1, json ? json : "[]", -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 1);
        if (key)   /* a member of an object; a bare array element has none */
            fn(sqlite3_column_int64(st, 0), key, (const char *)sqlite3_column_text(st, 2), arg);
    }
    sqlite3_finalize(st);
}

struct reasons_out {
    long last;
    struct sbuf fired;          /* "threshold f:l", "rule f:l" */
};

static void print_reason(long idx, const char *key, const char *val, void *arg)
{
    struct reasons_out *o = arg;
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, val ? val : "");
    if (idx != o->last) {
        o->last = idx;
        printf("  %ld.", idx + 1);
    }
    if (!strcmp(key, "check") || !strcmp(key, "code"))
        printf(" %s%s", sbuf_str(&b), !strcmp(key, "check") ? " /" : ":");
    else if (!strcmp(key, "text"))
        printf(" %s\n", sbuf_str(&b));
    else {
        struct sbuf k = SBUF_INIT;
        esc_text_s(&k, key);
        printf("       %s: %s\n", sbuf_str(&k), sbuf_str(&b));
        sbuf_free(&k);
    }
    /* what decided: the threshold or rule named by file:line */
    if (!strcmp(key, "threshold") || !strcmp(key, "rule")) {
        if (o->fired.len)
            sbuf_adds(&o->fired, ", ");
        sbuf_addf(&o->fired, "%s %s", key, sbuf_str(&b));
    }
    sbuf_free(&b);
}

static const struct table_col lk_cols[] = {
    { "zone", TABLE_COL_TEXT, 32 }, { "kind", TABLE_COL_TEXT, 0 },
    { "subject", TABLE_COL_TEXT, 0 }, { "query", TABLE_COL_TEXT, 40 },
    { "outcome", TABLE_COL_TEXT, 0 }, { "answer", TABLE_COL_TEXT, 20 },
    { "ttl", TABLE_COL_TEXT, 0 }, { "ms", TABLE_COL_TEXT, 0 },
    { "cached", TABLE_COL_TEXT, 0 }, { "weight", TABLE_COL_TEXT, 0 },
    { "txt", TABLE_COL_TEXT, 40 },
};
#define LK_COLS (sizeof lk_cols / sizeof lk_cols[0])

struct lookups_out {
    struct table *t;
    long cur;
    char *cells[LK_COLS];
};

static void flush_lookup(struct lookups_out *o)
{
    if (o->cur < 0)
        return;
    table_add(o->t, (const char *const *)o->cells);
    for (size_t i = 0; i < LK_COLS; i++) {
        free(o->cells[i]);
        o->cells[i] = NULL;
    }
}

static void collect_lookup(long idx, const char *key, const char *val, void *arg)
{
    struct lookups_out *o = arg;
    if (idx != o->cur) {
        flush_lookup(o);
        o->cur = idx;
    }
    static const char *const keys[LK_COLS] = { "zone", "kind", "subject", "query", "outcome",
                                               "answer", "ttl", "latency_ms", "cached",
                                               "weight", "txt" };
    for (size_t i = 0; i < LK_COLS; i++)
        if (!strcmp(key, keys[i])) {
            free(o->cells[i]);
            o->cells[i] = val ? strdup(val) : NULL;
        }
}

static void print_text(sqlite3 *db, const struct verdict *v)
{
    char utc[40], local[40], id[24];
    tu_format_iso_ms(v->time_ms, utc, sizeof utc);
    tu_format_local(v->time_ms, local, sizeof local);
    snprintf(id, sizeof id, "%lld", (long long)v->id);
    printf("verdict %s, %s, %s (%s local)\n", id, verdict_kind_name(v->kind), utc, local);
    line("queue id", v->queue_id);
    if (v->kind == VERDICT_KIND_MESSAGE)
        line("message-id", v->message_id);
    struct sbuf b = SBUF_INIT;
    sbuf_addf(&b, "%s [%s]", v->client_ip ? v->client_ip : "-",
              v->client_name ? v->client_name : "unknown");
    line("client", sbuf_str(&b));
    line("helo", v->helo);
    sbuf_reset(&b);
    sbuf_addf(&b, "<%s>", v->sender ? v->sender : "");
    line("sender", v->sender ? sbuf_str(&b) : NULL);
    line("smtp auth", v->auth_user);
    if (v->kind == VERDICT_KIND_RCPT) {
        line("refused", v->rcpt);
    } else {
        sbuf_reset(&b);
        for (size_t i = 0; i < v->nrcpts; i++)
            sbuf_addf(&b, "%s%s", i ? ", " : "", v->rcpts[i]);
        line("recipients", sbuf_str(&b));
    }
    line("stage", verdict_stage_name(v->stage));
    sbuf_reset(&b);
    sbuf_addf(&b, "%s%s", verdict_action_name(v->action),
              v->monitor ? " (monitor mode: what would have been done; the mail passed)" : "");
    line("action", sbuf_str(&b));
    line("reply", v->reply);
    sbuf_reset(&b);
    if (v->scored)
        sbuf_addf(&b, "%g", v->score);
    line("score", v->scored ? sbuf_str(&b) : "not scored (trusted, authenticated or no rules)");
    line("degraded", v->degraded ? "yes: a check could not be made in time (see the lookups)"
                                 : "no");
    sbuf_free(&b);
    printf("\nchecks, in the order they were made:\n");
    struct reasons_out ro = { -1, SBUF_INIT };
    each_member(db, v->reasons_json, print_reason, &ro);
    if (ro.last < 0)
        printf("  (none recorded)\n");
    printf("\nrules that decided: %s\n", ro.fired.len ? sbuf_str(&ro.fired)
                                                     : "none named (built-in policy)");
    sbuf_free(&ro.fired);
    struct lookups_out lo = { table_new(lk_cols, LK_COLS), -1, { 0 } };
    each_member(db, v->lookups_json, collect_lookup, &lo);
    flush_lookup(&lo);
    if (table_rows(lo.t)) {
        printf("\nlookups (blocklists and SPF):\n");
        table_print(lo.t, CLI_FMT_TABLE, stdout);
    } else {
        printf("\nlookups: none\n");
    }
    table_free(lo.t);
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

int cmd_explain(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *arg = NULL, *how = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(help_text, stdout);
            return 0;
        } else if (!strcmp(o, "--format") && v && (!strcmp(v, "text") || !strcmp(v, "json"))) {
            json = !strcmp(v, "json");
            i++;
        } else if ((!strcmp(o, "--id") || !strcmp(o, "--queue-id") ||
                    !strcmp(o, "--message-id")) && v && !arg) {
            how = o + 2;
            arg = v;
            i++;
        } else if (o[0] != '-' && !arg) {
            arg = o;
        } else {
            fprintf(stderr, "kanjiki explain: bad or extra argument %s\n%s", o, help_text);
            return 2;
        }
    }
    if (!arg || !*arg) {
        fprintf(stderr, "kanjiki explain: which verdict?\n%s", help_text);
        return 2;
    }
    struct store *s;
    char err[512];
    if (cli_open_existing(ctx, &s, err, sizeof err) < 0) {
        fprintf(stderr, "kanjiki explain: %s\n", err);
        return 1;
    }
    /* "<id@host>" and "id@host" are the same Message-ID */
    char mid[1000];
    size_t al = strlen(arg);
    snprintf(mid, sizeof mid, "%.*s", (int)(arg[0] == '<' && al > 1 && arg[al - 1] == '>'
                                                ? al - 2 : al),
             arg[0] == '<' && al > 1 && arg[al - 1] == '>' ? arg + 1 : arg);
    struct found f = { NULL, 0 };
    int rc = 0;
    for (int step = 0; step < 3 && !f.n && rc == 0; step++) {
        struct store_filter q;
        store_filter_init(&q);
        if (step == 0 && (how ? !strcmp(how, "id") : all_digits(arg)))
            q.id = strtoll(arg, NULL, 10);
        else if (step == 1 && (how ? !strcmp(how, "queue-id") : true))
            q.queue_id = arg;
        else if (step == 2 && (how ? !strcmp(how, "message-id") : true))
            q.message_id = mid;
        else
            continue;
        if (step == 0 && q.id <= 0)
            continue;
        rc = store_query(s, &q, collect, &f, err, sizeof err);
    }
    if (rc < 0) {
        fprintf(stderr, "kanjiki explain: %s\n", err);
        store_close(s);
        return 1;
    }
    if (!how && f.n && all_digits(arg) && f.v[0]->id == strtoll(arg, NULL, 10)) {
        struct store_filter q;   /* the digits might be a queue id as well */
        store_filter_init(&q);
        q.queue_id = arg;
        q.limit = 1;
        struct found other = { NULL, 0 };
        if (store_query(s, &q, collect, &other, err, sizeof err) == 0 && other.n)
            fprintf(stderr, "kanjiki explain: note: %s is also a queue id; this is verdict %s "
                    "(kanjiki explain --queue-id %s for the other)\n", arg, arg, arg);
        for (size_t k = 0; k < other.n; k++)
            verdict_free(other.v[k]);
        free(other.v);
    }
    if (!f.n) {
        struct sbuf b = SBUF_INIT;
        esc_text_s(&b, arg);
        fprintf(stderr, "kanjiki explain: no verdict for %s (not a verdict id, queue id or "
                "Message-ID in %s)\n", sbuf_str(&b), ctx->db_path);
        sbuf_free(&b);
        store_close(s);
        return 1;
    }
    /* a short queue id comes back (Postfix reuses them): verdicts of other
     * clients or days under one queue id are most likely other messages */
    if (f.n > 1) {
        int64_t lo = f.v[0]->time_ms, hi = lo;
        bool clients = false;
        for (size_t k = 1; k < f.n; k++) {
            lo = f.v[k]->time_ms < lo ? f.v[k]->time_ms : lo;
            hi = f.v[k]->time_ms > hi ? f.v[k]->time_ms : hi;
            const char *a = f.v[k]->client_ip, *b = f.v[0]->client_ip;
            clients |= (a == NULL) != (b == NULL) || (a && b && strcmp(a, b));
        }
        if (clients || hi - lo > 86400000)
            fprintf(stderr, "kanjiki explain: note: these %zu verdicts come from %s: the MTA "
                    "may have used the queue id again; check the times and clients\n", f.n,
                    clients ? "different clients" : "more than a day apart");
    }
    /* oldest first: the refused recipients come before the message */
    for (size_t k = f.n; k-- > 0;) {
        const struct verdict *v = f.v[k];
        if (json) {
            char *m = verdict_json_members(v);
            printf("{\"id\":%lld,%s}\n", (long long)v->id, m);
            free(m);
        } else {
            if (k + 1 < f.n)
                printf("\n");
            print_text(store_db(s), v);
        }
        verdict_free(f.v[k]);
    }
    free(f.v);
    store_close(s);
    return 0;
}
