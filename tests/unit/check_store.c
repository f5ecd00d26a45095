/* Unit tests for lib/store.c: migrations, insert and query filters, and the
 * writer thread's failure policy (locked, read-only, missing database;
 * queue full). Every test works in its own temporary directory. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

static char dir[64];
static char dbpath[128];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    chmod(p, 0700);
    remove(p);
    return 0;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kanjiki-store-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(dbpath, sizeof dbpath, "%s/kanjiki.db", dir);
}

static void teardown(void)
{
    log_close();
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

static struct store *open_store(const char *path)
{
    struct store *s;
    char err[512] = "";
    ck_assert_msg(store_open(path, 0, 1000, &s, err, sizeof err) == 0, "store_open: %s", err);
    return s;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 1000);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t count_rows(const char *path)
{
    sqlite3 *db = raw_open(path);
    int64_t n = raw_int(db, "SELECT count(*) FROM verdicts");
    sqlite3_close(db);
    return n;
}

static struct verdict *mk(enum verdict_kind kind, int64_t t, const char *ip,
                          const char *sender, enum verdict_action action)
{
    struct verdict *v = verdict_new(kind);
    v->time_ms = t;
    verdict_set(&v->client_ip, ip);
    verdict_set(&v->sender, sender);
    v->action = action;
    v->stage = kind == VERDICT_KIND_RCPT ? VSTAGE_RCPT : VSTAGE_EOM;
    return v;
}

static void put(struct store *s, struct verdict *v)
{
    char err[512] = "";
    ck_assert_msg(store_insert_verdict(s, v, err, sizeof err) == 0, "insert: %s", err);
    ck_assert_int_gt(v->id, 0);
    verdict_free(v);
}

/* Query results collected as "queue_id" list, newest first. */
struct rows {
    char ids[64][32];
    int n;
    struct verdict *first;   /* a clone of the first row */
};

static int collect(const struct verdict *v, void *arg)
{
    struct rows *r = arg;
    if (r->n == 0)
        r->first = verdict_clone(v);
    if (r->n < 64)
        snprintf(r->ids[r->n], sizeof r->ids[0], "%s", v->queue_id ? v->queue_id : "-");
    r->n++;
    return 0;
}

/* Comma-joined queue ids matching f, e.g. "c,b,a". */
static const char *q(struct store *s, const struct store_filter *f)
{
    static char out[1024];
    struct rows r;
    memset(&r, 0, sizeof r);
    char err[512] = "";
    ck_assert_msg(store_query(s, f, collect, &r, err, sizeof err) == 0, "query: %s", err);
    out[0] = '\0';
    for (int i = 0; i < r.n && i < 64; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, r.ids[i]);
    }
    verdict_free(r.first);
    return out;
}

/* Insert one verdict with queue id qid. */
static void put_q(struct store *s, const char *qid, enum verdict_kind kind, int64_t t,
                  const char *ip, const char *sender, enum verdict_action action)
{
    struct verdict *v = mk(kind, t, ip, sender, action);
    verdict_set(&v->queue_id, qid);
    put(s, v);
}

/* ---- migrations ---- */

START_TEST(test_empty_file_migrates_to_latest_version)
{
    FILE *f = fopen(dbpath, "w");   /* an existing, empty file */
    ck_assert_ptr_nonnull(f);
    fclose(f);
    struct store *s = open_store(dbpath);
    ck_assert_int_ge(store_schema_latest(), 2);
    ck_assert_int_eq(store_schema_version(s), store_schema_latest());
    ck_assert_int_eq(raw_int(store_db(s), "SELECT count(*) FROM sqlite_master WHERE "
                                          "name IN ('verdicts', 'grants', 'meta', 'verdicts_rcpt')"), 4);
    ck_assert_int_eq(raw_int(store_db(s), "PRAGMA foreign_keys"), 1);
    store_close(s);
}
END_TEST

START_TEST(test_writable_open_uses_wal_journal)
{
    struct store *s = open_store(dbpath);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(store_db(s), "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    ck_assert_int_eq(raw_int(store_db(s), "PRAGMA synchronous"), 1);   /* NORMAL */
    store_close(s);
}
END_TEST

START_TEST(test_migrate_to_stops_at_target_version)
{
    sqlite3 *db = raw_open(dbpath);
    char err[512] = "";
    ck_assert_msg(store_migrate_to(db, 1, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), 1);
    ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'verdicts_rcpt'"), 0);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_old_database_upgrades_in_place_keeping_rows)
{
    sqlite3 *db = raw_open(dbpath);
    char err[512] = "";
    ck_assert_msg(store_migrate_to(db, 1, err, sizeof err) == 0, "%s", err);
    raw_exec(db, "INSERT INTO verdicts (time_ms, kind, queue_id, sender, rcpt, stage, action)"
                 " VALUES (1000, 'rcpt', 'OLD1', 'a@old.example', 'x@far.example', 'rcpt', 'reject')");
    sqlite3_close(db);

    struct store *s = open_store(dbpath);
    ck_assert_int_eq(store_schema_version(s), store_schema_latest());
    ck_assert_int_eq(raw_int(store_db(s), "SELECT count(*) FROM sqlite_master WHERE name = 'verdicts_rcpt'"), 1);
    struct store_filter f;
    store_filter_init(&f);
    f.rcpt = "x@far.example";
    ck_assert_str_eq(q(s, &f), "OLD1");
    store_close(s);
}
END_TEST

START_TEST(test_newer_database_is_refused_naming_both_versions)
{
    sqlite3 *db = raw_open(dbpath);
    raw_exec(db, "PRAGMA user_version = 999");
    sqlite3_close(db);
    char want[32], err[512] = "";
    snprintf(want, sizeof want, "(%d)", store_schema_latest());
    struct store *s = NULL;
    ck_assert_int_eq(store_open(dbpath, 0, 100, &s, err, sizeof err), -1);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "999") && strstr(err, want), "error was: %s", err);
    err[0] = '\0';
    ck_assert_int_eq(store_open(dbpath, STORE_READONLY, 100, &s, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "999") && strstr(err, want), "read-only error was: %s", err);
    db = raw_open(dbpath);
    ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), 999);   /* untouched */
    ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master"), 0);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_nocreate_and_readonly_never_create_a_file)
{
    struct store *s = NULL;
    char err[512] = "";
    ck_assert_int_eq(store_open(dbpath, STORE_NOCREATE, 100, &s, err, sizeof err), -1);
    ck_assert_msg(strstr(err, dbpath) != NULL, "error should name the path: %s", err);
    ck_assert_int_eq(store_open(dbpath, STORE_READONLY, 100, &s, err, sizeof err), -1);
    ck_assert_int_eq(access(dbpath, F_OK), -1);
}
END_TEST

START_TEST(test_new_database_files_are_not_world_accessible)
{
    mode_t old = umask(0);   /* permissions must not depend on the caller's umask */
    struct store *s = open_store(dbpath);
    umask(old);
    put(s, mk(VERDICT_KIND_MESSAGE, 1, "192.0.2.1", "a@b.example", VERDICT_ACCEPT));
    static const char *suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        char p[160];
        struct stat st;
        snprintf(p, sizeof p, "%s%s", dbpath, suffix[i]);
        ck_assert_msg(stat(p, &st) == 0, "%s missing", p);
        ck_assert_msg((st.st_mode & 0007) == 0, "%s has mode %o", p, st.st_mode & 0777);
    }
    store_close(s);
}
END_TEST

/* ---- insert and query ---- */

START_TEST(test_round_trip_keeps_every_field_and_hostile_strings)
{
    static const char *nasty = "'\"); DROP TABLE verdicts; --\\ \x01\x1b[2J\t\r\n "
                               "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\xa7";
    struct store *s = open_store(dbpath);
    struct verdict *v = mk(VERDICT_KIND_MESSAGE, 1700000000123LL, "2001:db8::25", nasty,
                           VERDICT_QUARANTINE);
    verdict_set(&v->queue_id, "4ABCDEF");
    verdict_set(&v->client_name, nasty);
    verdict_set(&v->helo, nasty);
    verdict_set(&v->auth_user, nasty);
    verdict_set(&v->reply, nasty);
    v->monitor = true;
    verdict_add_rcpt(v, nasty);
    verdict_add_rcpt(v, "b@example.org");
    struct verdict_reason *r = verdict_add_reason(v, "rule", "deny_rule", nasty);
    verdict_set(&r->rcpt, nasty);
    verdict_set(&r->rule, "x.rules:7");
    char *want_reasons = verdict_reasons_to_json(v);
    char err[512] = "";
    ck_assert_msg(store_insert_verdict(s, v, err, sizeof err) == 0, "%s", err);
    int64_t id = v->id;
    ck_assert_int_gt(id, 0);
    verdict_free(v);

    struct store_filter f;
    store_filter_init(&f);
    struct rows got;
    memset(&got, 0, sizeof got);
    ck_assert_int_eq(store_query(s, &f, collect, &got, err, sizeof err), 0);
    ck_assert_int_eq(got.n, 1);
    struct verdict *g = got.first;
    ck_assert_int_eq(g->id, id);
    ck_assert_int_eq(g->kind, VERDICT_KIND_MESSAGE);
    ck_assert_int_eq(g->time_ms, 1700000000123LL);
    ck_assert_str_eq(g->queue_id, "4ABCDEF");
    ck_assert_str_eq(g->client_ip, "2001:db8::25");
    ck_assert_str_eq(g->client_name, nasty);
    ck_assert_str_eq(g->helo, nasty);
    ck_assert_str_eq(g->sender, nasty);
    ck_assert_str_eq(g->auth_user, nasty);
    ck_assert_ptr_null(g->rcpt);
    ck_assert_uint_eq(g->nrcpts, 2);
    ck_assert_str_eq(g->rcpts[0], nasty);
    ck_assert_str_eq(g->rcpts[1], "b@example.org");
    ck_assert_int_eq(g->stage, VSTAGE_EOM);
    ck_assert_int_eq(g->action, VERDICT_QUARANTINE);
    ck_assert(g->monitor);
    ck_assert_str_eq(g->reply, nasty);
    ck_assert_str_eq(g->reasons_json, want_reasons);
    ck_assert_uint_eq(g->nreasons, 0);
    ck_assert_int_eq(raw_int(store_db(s), "SELECT count(*) FROM sqlite_master WHERE name = 'verdicts'"), 1);
    free(want_reasons);
    verdict_free(g);
    store_close(s);
}
END_TEST

START_TEST(test_client_ip_stored_as_16_byte_blob_or_null)
{
    struct store *s = open_store(dbpath);
    put(s, mk(VERDICT_KIND_MESSAGE, 1, "192.0.2.9", "", VERDICT_ACCEPT));
    put(s, mk(VERDICT_KIND_MESSAGE, 2, "not an address", "", VERDICT_ACCEPT));
    put(s, mk(VERDICT_KIND_MESSAGE, 3, NULL, "", VERDICT_ACCEPT));
    sqlite3 *db = store_db(s);
    ck_assert_int_eq(raw_int(db, "SELECT hex(client_ip_bin) = '00000000000000000000FFFFC0000209'"
                                 " FROM verdicts WHERE time_ms = 1"), 1);
    ck_assert_int_eq(raw_int(db, "SELECT client_ip_bin IS NULL AND client_ip = 'not an address'"
                                 " FROM verdicts WHERE time_ms = 2"), 1);
    ck_assert_int_eq(raw_int(db, "SELECT client_ip_bin IS NULL AND client_ip IS NULL"
                                 " FROM verdicts WHERE time_ms = 3"), 1);
    store_close(s);
}
END_TEST

START_TEST(test_filter_time_bounds_are_inclusive)
{
    struct store *s = open_store(dbpath);
    put_q(s, "t100", VERDICT_KIND_MESSAGE, 100, NULL, "", VERDICT_ACCEPT);
    put_q(s, "t200", VERDICT_KIND_MESSAGE, 200, NULL, "", VERDICT_ACCEPT);
    put_q(s, "t300", VERDICT_KIND_MESSAGE, 300, NULL, "", VERDICT_ACCEPT);
    struct store_filter f;
    store_filter_init(&f);
    ck_assert_str_eq(q(s, &f), "t300,t200,t100");
    f.since_ms = 200;
    ck_assert_str_eq(q(s, &f), "t300,t200");
    f.until_ms = 200;
    ck_assert_str_eq(q(s, &f), "t200");
    f.since_ms = 0;
    f.until_ms = 199;
    ck_assert_str_eq(q(s, &f), "t100");
    store_close(s);
}
END_TEST

static void set_net(struct store_filter *f, const char *cidr)
{
    char err[160] = "";
    ck_assert_msg(cidr_parse(cidr, &f->net, err, sizeof err) == 0, "%s: %s", cidr, err);
    f->has_net = true;
}

static void put_ips(struct store *s)
{
    put_q(s, "v4in", VERDICT_KIND_MESSAGE, 1, "192.0.2.7", "", VERDICT_ACCEPT);
    put_q(s, "v4mapped", VERDICT_KIND_MESSAGE, 2, "::ffff:192.0.2.200", "", VERDICT_ACCEPT);
    put_q(s, "v4next", VERDICT_KIND_MESSAGE, 3, "192.0.3.0", "", VERDICT_ACCEPT);
    put_q(s, "v4prev", VERDICT_KIND_MESSAGE, 4, "192.0.1.255", "", VERDICT_ACCEPT);
    put_q(s, "v6in", VERDICT_KIND_MESSAGE, 5, "2001:db8:1::25", "", VERDICT_ACCEPT);
    put_q(s, "v6out", VERDICT_KIND_MESSAGE, 6, "2001:db8:2::25", "", VERDICT_ACCEPT);
    put_q(s, "noip", VERDICT_KIND_MESSAGE, 7, "unknown", "", VERDICT_ACCEPT);
}

START_TEST(test_filter_ipv4_network_includes_mapped_clients_only_inside)
{
    struct store *s = open_store(dbpath);
    put_ips(s);
    struct store_filter f;
    store_filter_init(&f);
    set_net(&f, "192.0.2.0/24");
    ck_assert_str_eq(q(s, &f), "v4mapped,v4in");
    set_net(&f, "192.0.2.7");
    ck_assert_str_eq(q(s, &f), "v4in");
    set_net(&f, "::ffff:192.0.2.0/120");   /* the same network spelled as IPv6 */
    ck_assert_str_eq(q(s, &f), "v4mapped,v4in");
    store_close(s);
}
END_TEST

START_TEST(test_filter_ipv6_network)
{
    struct store *s = open_store(dbpath);
    put_ips(s);
    struct store_filter f;
    store_filter_init(&f);
    set_net(&f, "2001:db8:1::/48");
    ck_assert_str_eq(q(s, &f), "v6in");
    set_net(&f, "2001:db8::/32");
    ck_assert_str_eq(q(s, &f), "v6out,v6in");
    set_net(&f, "::/0");   /* everything with an address, not "unknown" */
    ck_assert_str_eq(q(s, &f), "v6out,v6in,v4prev,v4next,v4mapped,v4in");
    store_close(s);
}
END_TEST

static void put_senders(struct store *s)
{
    put_q(s, "alice", VERDICT_KIND_MESSAGE, 1, NULL, "alice@example.com", VERDICT_ACCEPT);
    put_q(s, "bob", VERDICT_KIND_MESSAGE, 2, NULL, "Bob@Example.COM", VERDICT_ACCEPT);
    put_q(s, "sub", VERDICT_KIND_MESSAGE, 3, NULL, "carol@sub.example.com", VERDICT_ACCEPT);
    put_q(s, "not", VERDICT_KIND_MESSAGE, 4, NULL, "dave@notexample.com", VERDICT_ACCEPT);
    put_q(s, "null", VERDICT_KIND_MESSAGE, 5, NULL, "", VERDICT_ACCEPT);
    put_q(s, "under", VERDICT_KIND_MESSAGE, 6, NULL, "eve@ex_mple.org", VERDICT_ACCEPT);
    put_q(s, "plain", VERDICT_KIND_MESSAGE, 7, NULL, "frank@exemple.org", VERDICT_ACCEPT);
    put_q(s, "pct", VERDICT_KIND_MESSAGE, 8, NULL, "gina@100%.org", VERDICT_ACCEPT);
}

START_TEST(test_filter_sender_address_is_exact_and_case_insensitive)
{
    struct store *s = open_store(dbpath);
    put_senders(s);
    struct store_filter f;
    store_filter_init(&f);
    f.sender = "bob@example.com";
    ck_assert_str_eq(q(s, &f), "bob");
    f.sender = "<ALICE@example.com>";
    ck_assert_str_eq(q(s, &f), "alice");
    f.sender = "lice@example.com";
    ck_assert_str_eq(q(s, &f), "");
    store_close(s);
}
END_TEST

START_TEST(test_filter_sender_domain_matches_any_user_at_exactly_that_domain)
{
    struct store *s = open_store(dbpath);
    put_senders(s);
    struct store_filter f;
    store_filter_init(&f);
    f.sender = "example.com";
    ck_assert_str_eq(q(s, &f), "bob,alice");
    f.sender = "@EXAMPLE.com";   /* a leading @ is ignored */
    ck_assert_str_eq(q(s, &f), "bob,alice");
    f.sender = "sub.example.com";
    ck_assert_str_eq(q(s, &f), "sub");
    store_close(s);
}
END_TEST

START_TEST(test_filter_like_wildcards_in_value_match_only_themselves)
{
    struct store *s = open_store(dbpath);
    put_senders(s);
    struct store_filter f;
    store_filter_init(&f);
    f.sender = "ex_mple.org";
    ck_assert_str_eq(q(s, &f), "under");
    f.sender = "%.org";
    ck_assert_str_eq(q(s, &f), "");
    f.sender = "100%.org";
    ck_assert_str_eq(q(s, &f), "pct");
    f.sender = "%";
    ck_assert_str_eq(q(s, &f), "");
    f.sender = "e%@ex_mple.org";   /* as an address too */
    ck_assert_str_eq(q(s, &f), "");
    store_close(s);
}
END_TEST

START_TEST(test_filter_empty_sender_means_null_sender)
{
    struct store *s = open_store(dbpath);
    put_senders(s);
    struct store_filter f;
    store_filter_init(&f);
    f.sender = "";
    ck_assert_str_eq(q(s, &f), "null");
    f.sender = "<>";
    ck_assert_str_eq(q(s, &f), "null");
    store_close(s);
}
END_TEST

static void put_rcpts(struct store *s)
{
    struct verdict *v = mk(VERDICT_KIND_RCPT, 1, NULL, "", VERDICT_REJECT);
    verdict_set(&v->queue_id, "refused");
    verdict_set(&v->rcpt, "victim@far.example");
    put(s, v);
    v = mk(VERDICT_KIND_MESSAGE, 2, NULL, "", VERDICT_ACCEPT);
    verdict_set(&v->queue_id, "accepted");
    verdict_add_rcpt(v, "one@local.example");
    verdict_add_rcpt(v, "Two@Far.Example");
    put(s, v);
    v = mk(VERDICT_KIND_MESSAGE, 3, NULL, "", VERDICT_ACCEPT);
    verdict_set(&v->queue_id, "other");
    verdict_add_rcpt(v, "x@elsewhere.example");
    verdict_add_rcpt(v, "far.example@elsewhere.example");
    put(s, v);
}

START_TEST(test_filter_rcpt_matches_refused_and_accepted_recipients)
{
    struct store *s = open_store(dbpath);
    put_rcpts(s);
    struct store_filter f;
    store_filter_init(&f);
    f.rcpt = "victim@far.example";
    ck_assert_str_eq(q(s, &f), "refused");
    f.rcpt = "two@far.example";
    ck_assert_str_eq(q(s, &f), "accepted");
    f.rcpt = "far.example";
    ck_assert_str_eq(q(s, &f), "accepted,refused");
    f.rcpt = "@local.example";
    ck_assert_str_eq(q(s, &f), "accepted");
    f.rcpt = "_ar.example";
    ck_assert_str_eq(q(s, &f), "");
    store_close(s);
}
END_TEST

START_TEST(test_filter_action_and_kind)
{
    struct store *s = open_store(dbpath);
    put_q(s, "acc", VERDICT_KIND_MESSAGE, 1, NULL, "", VERDICT_ACCEPT);
    put_q(s, "rej", VERDICT_KIND_RCPT, 2, NULL, "", VERDICT_REJECT);
    put_q(s, "rejmsg", VERDICT_KIND_MESSAGE, 3, NULL, "", VERDICT_REJECT);
    put_q(s, "tmp", VERDICT_KIND_RCPT, 4, NULL, "", VERDICT_TEMPFAIL);
    struct store_filter f;
    store_filter_init(&f);
    f.has_action = true;
    f.action = VERDICT_REJECT;
    ck_assert_str_eq(q(s, &f), "rejmsg,rej");
    f.kind = VERDICT_KIND_RCPT;
    ck_assert_str_eq(q(s, &f), "rej");
    f.has_action = false;
    ck_assert_str_eq(q(s, &f), "tmp,rej");
    f.kind = VERDICT_KIND_MESSAGE;
    ck_assert_str_eq(q(s, &f), "rejmsg,acc");
    store_close(s);
}
END_TEST

START_TEST(test_filter_reason_code_matches_code_field_only)
{
    struct store *s = open_store(dbpath);
    struct verdict *v = mk(VERDICT_KIND_RCPT, 1, NULL, "", VERDICT_REJECT);
    verdict_set(&v->queue_id, "relay");
    verdict_add_reason(v, "route", "percent_hack", "x");
    verdict_add_reason(v, "relay", "relay_denied", "x");
    put(s, v);
    v = mk(VERDICT_KIND_RCPT, 2, NULL, "", VERDICT_REJECT);
    verdict_set(&v->queue_id, "mention");   /* the code only in text and attrs */
    struct verdict_reason *r = verdict_add_reason(v, "rule", "deny_rule", "relay_denied");
    verdict_reason_attr(r, "note", "relay_denied");
    put(s, v);
    v = mk(VERDICT_KIND_MESSAGE, 3, NULL, "", VERDICT_ACCEPT);
    verdict_set(&v->queue_id, "none");
    put(s, v);
    struct store_filter f;
    store_filter_init(&f);
    f.reason_code = "relay_denied";
    ck_assert_str_eq(q(s, &f), "relay");
    f.reason_code = "percent_hack";
    ck_assert_str_eq(q(s, &f), "relay");
    f.reason_code = "relay%";
    ck_assert_str_eq(q(s, &f), "");
    store_close(s);
}
END_TEST

START_TEST(test_limit_returns_newest_first)
{
    struct store *s = open_store(dbpath);
    put_q(s, "a", VERDICT_KIND_MESSAGE, 10, NULL, "", VERDICT_ACCEPT);
    put_q(s, "c", VERDICT_KIND_MESSAGE, 30, NULL, "", VERDICT_ACCEPT);
    put_q(s, "b", VERDICT_KIND_MESSAGE, 20, NULL, "", VERDICT_ACCEPT);
    put_q(s, "c2", VERDICT_KIND_MESSAGE, 30, NULL, "", VERDICT_ACCEPT);   /* same ms: later id first */
    struct store_filter f;
    store_filter_init(&f);
    f.limit = 2;
    ck_assert_str_eq(q(s, &f), "c2,c");
    f.limit = 0;
    ck_assert_str_eq(q(s, &f), "c2,c,b,a");
    store_close(s);
}
END_TEST

static int stop_after_one(const struct verdict *v, void *arg)
{
    (void)v;
    (*(int *)arg)++;
    return 1;
}

START_TEST(test_callback_returning_nonzero_stops_the_query)
{
    struct store *s = open_store(dbpath);
    put_q(s, "a", VERDICT_KIND_MESSAGE, 1, NULL, "", VERDICT_ACCEPT);
    put_q(s, "b", VERDICT_KIND_MESSAGE, 2, NULL, "", VERDICT_ACCEPT);
    struct store_filter f;
    store_filter_init(&f);
    int calls = 0;
    char err[512] = "";
    ck_assert_int_eq(store_query(s, &f, stop_after_one, &calls, err, sizeof err), 0);
    ck_assert_int_eq(calls, 1);
    store_close(s);
}
END_TEST

START_TEST(test_damaged_json_row_does_not_break_queries)
{
    struct store *s = open_store(dbpath);
    put_q(s, "good", VERDICT_KIND_MESSAGE, 1, NULL, "", VERDICT_ACCEPT);
    raw_exec(store_db(s), "INSERT INTO verdicts (time_ms, kind, queue_id, recipients, stage,"
                          " action, reasons) VALUES (2, 'message', 'bad', 'not json',"
                          " 'eom', 'accept', '{broken')");
    struct store_filter f;
    store_filter_init(&f);
    f.reason_code = "x";
    ck_assert_str_eq(q(s, &f), "");
    store_filter_init(&f);
    f.rcpt = "example.org";
    ck_assert_str_eq(q(s, &f), "");
    store_filter_init(&f);
    ck_assert_str_eq(q(s, &f), "bad,good");
    store_close(s);
}
END_TEST

START_TEST(test_readonly_store_can_query)
{
    struct store *s = open_store(dbpath);
    put_q(s, "a", VERDICT_KIND_MESSAGE, 1, NULL, "", VERDICT_ACCEPT);
    store_close(s);
    char err[512] = "";
    ck_assert_msg(store_open(dbpath, STORE_READONLY | STORE_NOCREATE, 100, &s, err,
                             sizeof err) == 0, "%s", err);
    struct store_filter f;
    store_filter_init(&f);
    ck_assert_str_eq(q(s, &f), "a");
    struct verdict *v = mk(VERDICT_KIND_MESSAGE, 2, NULL, "", VERDICT_ACCEPT);
    ck_assert_int_eq(store_insert_verdict(s, v, err, sizeof err), -1);
    verdict_free(v);
    store_close(s);
}
END_TEST

/* ---- the writer ---- */

static struct verdict *numbered(int i)
{
    char qid[32];
    snprintf(qid, sizeof qid, "Q%06d", i);
    struct verdict *v = mk(VERDICT_KIND_MESSAGE, 1000 + i, "198.51.100.1", "s@example.net",
                           VERDICT_ACCEPT);
    verdict_set(&v->queue_id, qid);
    return v;
}

static void submit_n(struct store_writer *w, int from, int n)
{
    for (int i = from; i < from + n; i++)
        ck_assert(store_writer_submit(w, numbered(i)));
}

static struct store_writer_stats stats(struct store_writer *w)
{
    struct store_writer_stats st;
    store_writer_stats(w, &st);
    return st;
}

/* Poll until the writer has failed at least n times (bounded). */
static void wait_failures(struct store_writer *w, uint64_t n)
{
    for (int i = 0; i < 1000 && stats(w).failures < n; i++)
        sleep_ms(5);
    ck_assert_uint_ge(stats(w).failures, n);
}

/* The rows carry queue ids in submission order: ids ascend with them. */
static void assert_rows_in_order(const char *path, int64_t n)
{
    sqlite3 *db = raw_open(path);
    ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM verdicts"), n);
    ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM verdicts a JOIN verdicts b"
                                 " ON b.id = a.id + 1 WHERE b.queue_id <= a.queue_id"), 0);
    sqlite3_close(db);
}

static sqlite3 *lock_db(const char *path)
{
    sqlite3 *db = raw_open(path);
    raw_exec(db, "BEGIN EXCLUSIVE");
    return db;
}

static void unlock_db(sqlite3 *db)
{
    raw_exec(db, "COMMIT");
    sqlite3_close(db);
}

static void make_db(const char *path)
{
    store_close(open_store(path));
}

/* Count lines of the log file containing needle. */
static int log_lines(const char *logpath, const char *needle)
{
    FILE *f = fopen(logpath, "r");
    if (!f)
        return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

static void log_to_dir(char *logpath, size_t len)
{
    snprintf(logpath, len, "%s/test.log", dir);
    ck_assert_int_eq(log_open("check_store", LOG_TO_FILE, logpath), 0);
}

START_TEST(test_writer_writes_everything_submitted_in_bounded_batches)
{
    struct store_writer *w = store_writer_start(dbpath, 5000, 20);
    ck_assert_ptr_nonnull(w);
    submit_n(w, 0, 2000);
    ck_assert(store_writer_flush(w, 5000));
    struct store_writer_stats st = stats(w);
    ck_assert_uint_eq(st.submitted, 2000);
    ck_assert_uint_eq(st.written, 2000);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.dropped, 0);
    ck_assert_uint_ge(st.batches, 4);   /* never more than 500 per transaction */
    ck_assert_uint_le(st.batches, 2000);
    ck_assert(st.healthy);
    assert_rows_in_order(dbpath, 2000);
    store_writer_stop(w, 1000);
}
END_TEST

START_TEST(test_writer_writes_backlog_in_transactions_of_500)
{
    make_db(dbpath);
    sqlite3 *lock = lock_db(dbpath);
    struct store_writer *w = store_writer_start(dbpath, 5000, 20);
    submit_n(w, 0, 1234);
    wait_failures(w, 1);
    unlock_db(lock);
    ck_assert(store_writer_flush(w, 5000));
    struct store_writer_stats st = stats(w);
    ck_assert_uint_eq(st.written, 1234);
    ck_assert_uint_eq(st.batches, 3);   /* 500 + 500 + 234 */
    assert_rows_in_order(dbpath, 1234);
    store_writer_stop(w, 1000);
}
END_TEST

START_TEST(test_writer_keeps_verdicts_queued_while_locked_then_writes_them)
{
    make_db(dbpath);
    sqlite3 *lock = lock_db(dbpath);
    struct store_writer *w = store_writer_start(dbpath, 100, 20);
    submit_n(w, 0, 5);
    wait_failures(w, 2);
    struct store_writer_stats st = stats(w);
    ck_assert(!st.healthy);
    ck_assert_uint_eq(st.queued, 5);
    ck_assert_uint_eq(st.written, 0);
    ck_assert_int_eq(count_rows(dbpath), 0);   /* WAL: readers still read */
    ck_assert(!store_writer_flush(w, 50));
    submit_n(w, 5, 3);   /* still accepted while failing */
    unlock_db(lock);
    ck_assert(store_writer_flush(w, 5000));
    st = stats(w);
    ck_assert(st.healthy);
    ck_assert_uint_eq(st.written, 8);
    ck_assert_uint_eq(st.queued, 0);
    assert_rows_in_order(dbpath, 8);
    store_writer_stop(w, 1000);
}
END_TEST

START_TEST(test_writer_logs_one_line_per_incident_and_one_on_recovery)
{
    char logpath[160];
    log_to_dir(logpath, sizeof logpath);
    make_db(dbpath);
    sqlite3 *lock = lock_db(dbpath);
    struct store_writer *w = store_writer_start(dbpath, 100, 10);
    submit_n(w, 0, 4);
    wait_failures(w, 3);
    unlock_db(lock);
    ck_assert(store_writer_flush(w, 5000));
    store_writer_stop(w, 1000);
    ck_assert_int_eq(log_lines(logpath, "verdict store unavailable: "), 1);
    ck_assert_int_eq(log_lines(logpath, "keeping 4 verdicts queued, retrying every 10 ms"), 1);
    ck_assert_int_eq(log_lines(logpath, "verdict store back: wrote 4 queued verdicts"), 1);
    ck_assert_int_eq(log_lines(logpath, "lost"), 0);
}
END_TEST

START_TEST(test_writer_submit_does_not_wait_for_a_locked_database)
{
    make_db(dbpath);
    sqlite3 *lock = lock_db(dbpath);
    struct store_writer *w = store_writer_start(dbpath, 1000, 20);
    submit_n(w, 0, 1);
    sleep_ms(20);   /* the writer is now inside its 200 ms busy wait */
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    submit_n(w, 1, 200);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    ck_assert_msg(ms < 100, "200 submits took %.1f ms", ms);
    unlock_db(lock);
    ck_assert(store_writer_flush(w, 5000));
    ck_assert_int_eq(count_rows(dbpath), 201);
    store_writer_stop(w, 1000);
}
END_TEST

START_TEST(test_writer_catches_up_when_database_directory_appears)
{
    char sub[128], path[192];
    snprintf(sub, sizeof sub, "%s/later", dir);
    snprintf(path, sizeof path, "%s/kanjiki.db", sub);
    struct store_writer *w = store_writer_start(path, 100, 20);
    submit_n(w, 0, 7);
    wait_failures(w, 1);
    ck_assert_uint_eq(stats(w).queued, 7);
    ck_assert_int_eq(mkdir(sub, 0750), 0);
    ck_assert(store_writer_flush(w, 5000));
    assert_rows_in_order(path, 7);
    store_writer_stop(w, 1000);
}
END_TEST

static int count_cb(const struct verdict *v, void *arg)
{
    (void)v;
    (*(int *)arg)++;
    return 0;
}

/* The read-only scenario in a child process, as an unprivileged user when
 * run as root (root writes through chmod 0444). Returns 0 or the number of
 * the step that failed. */
static int readonly_scenario(void)
{
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("nobody");
        if (!pw || chown(dir, pw->pw_uid, pw->pw_gid) < 0 || setgroups(0, NULL) < 0 ||
            setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
            return 1;
    }
    struct store *s;
    char err[512];
    if (store_open(dbpath, 0, 100, &s, err, sizeof err) < 0)
        return 2;
    store_close(s);
    if (chmod(dbpath, 0444) < 0 || access(dbpath, W_OK) == 0)
        return 3;
    struct store_writer *w = store_writer_start(dbpath, 100, 20);
    for (int i = 0; i < 6; i++)
        store_writer_submit(w, numbered(i));
    struct store_writer_stats st;
    for (int i = 0; i < 400; i++) {
        store_writer_stats(w, &st);
        if (st.failures >= 2)
            break;
        sleep_ms(5);
    }
    if (st.failures < 2 || st.queued != 6 || st.healthy)
        return 4;
    if (chmod(dbpath, 0640) < 0)
        return 5;
    if (!store_writer_flush(w, 5000))
        return 6;
    store_writer_stop(w, 1000);
    if (store_open(dbpath, STORE_READONLY, 100, &s, err, sizeof err) < 0)
        return 7;
    /* no ck_assert in this child: count with the store's own query */
    struct store_filter f;
    store_filter_init(&f);
    int n = 0;
    int rc = store_query(s, &f, count_cb, &n, err, sizeof err);
    store_close(s);
    return rc == 0 && n == 6 ? 0 : 8;
}

START_TEST(test_writer_catches_up_when_readonly_database_becomes_writable)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(readonly_scenario());
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "scenario crashed (status %d)", status);
    ck_assert_msg(WEXITSTATUS(status) == 0, "read-only scenario failed at step %d",
                  WEXITSTATUS(status));
}
END_TEST

START_TEST(test_writer_queue_full_drops_and_counts_logging_once)
{
    char logpath[160];
    log_to_dir(logpath, sizeof logpath);
    char path[192];
    snprintf(path, sizeof path, "%s/missing/kanjiki.db", dir);   /* never written */
    struct store_writer *w = store_writer_start(path, 4, 1000);
    int accepted = 0;
    for (int i = 0; i < 10; i++)
        accepted += store_writer_submit(w, numbered(i));
    ck_assert_int_eq(accepted, 4);
    struct store_writer_stats st = stats(w);
    ck_assert_uint_eq(st.submitted, 10);
    ck_assert_uint_eq(st.dropped, 6);
    ck_assert_uint_eq(st.queued, 4);
    ck_assert_int_eq(log_lines(logpath, "verdict queue full (4)"), 1);
    store_writer_stop(w, 50);
    ck_assert_int_eq(log_lines(logpath, "4 queued verdicts lost"), 1);
}
END_TEST

START_TEST(test_writer_drops_a_verdict_the_database_refuses_and_writes_the_rest)
{
    char logpath[160];
    log_to_dir(logpath, sizeof logpath);
    struct store_writer *w = store_writer_start(dbpath, 100, 20);
    submit_n(w, 0, 2);
    struct verdict *bad = numbered(2);
    bad->kind = (enum verdict_kind)7;   /* fails the schema's CHECK on kind */
    ck_assert(store_writer_submit(w, bad));
    submit_n(w, 3, 2);
    ck_assert(store_writer_flush(w, 5000));
    struct store_writer_stats st = stats(w);
    ck_assert_uint_eq(st.written, 4);
    ck_assert_uint_eq(st.dropped, 1);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert(st.healthy);
    assert_rows_in_order(dbpath, 4);
    ck_assert_int_eq(log_lines(logpath, "cannot store (queue Q000002)"), 1);
    store_writer_stop(w, 1000);
}
END_TEST

START_TEST(test_writer_stop_writes_what_is_queued)
{
    struct store_writer *w = store_writer_start(dbpath, 100, 20);
    submit_n(w, 0, 50);
    store_writer_stop(w, 5000);
    assert_rows_in_order(dbpath, 50);
}
END_TEST

/* ---- lookups: the evidence of blocklist and SPF checks ---- */

static void add_lk(struct verdict *v, const char *zone, const char *outcome, int64_t lat,
                   bool cached, double weight)
{
    struct verdict_lookup l = {
        .zone = (char *)zone, .kind = (char *)(strcmp(zone, "spf") ? "ip" : "spf"),
        .subject = (char *)"client", .query = (char *)"2.0.0.127.zone",
        .outcome = (char *)outcome, .answer = (char *)"127.0.0.2",
        .txt = (char *)"why \"listed\"\n", .ttl = 300, .latency_ms = lat, .cached = cached,
        .weight = weight,
    };
    verdict_add_lookup(v, &l);
}

START_TEST(test_lookups_score_and_degraded_round_trip)
{
    struct store *s = open_store(dbpath);
    struct verdict *v = mk(VERDICT_KIND_MESSAGE, 1000, "192.0.2.1", "a@b.example",
                           VERDICT_REJECT);
    verdict_set(&v->queue_id, "L1");
    add_lk(v, "bl.test", "listed", 12, false, 5);
    add_lk(v, "slow.test", "degraded", 2000, false, 0);
    v->scored = true;
    v->score = 5.5;
    v->degraded = true;
    put(s, v);
    put_q(s, "L2", VERDICT_KIND_MESSAGE, 2000, "192.0.2.2", "c@d.example", VERDICT_ACCEPT);
    struct rows r;
    memset(&r, 0, sizeof r);
    struct store_filter f;
    store_filter_init(&f);
    f.until_ms = 1500;
    char err[256];
    ck_assert_int_eq(store_query(s, &f, collect, &r, err, sizeof err), 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert(r.first->scored);
    ck_assert(r.first->score == 5.5);
    ck_assert(r.first->degraded);
    const char *j = r.first->lookups_json;
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(strstr(j, "\"zone\":\"bl.test\"") && strstr(j, "\"outcome\":\"listed\"") &&
                  strstr(j, "\"cached\":false") && strstr(j, "\"weight\":5") &&
                  strstr(j, "\"zone\":\"slow.test\"") && strstr(j, "why \\\"listed\\\"\\u000a"),
                  "lookups json: %s", j);
    ck_assert(strstr(j, "bl.test") < strstr(j, "slow.test"));   /* kept in order */
    verdict_free(r.first);
    /* a verdict without checks is not scored and has no lookups */
    memset(&r, 0, sizeof r);
    f.until_ms = 0;
    f.since_ms = 1500;
    ck_assert_int_eq(store_query(s, &f, collect, &r, err, sizeof err), 0);
    ck_assert(!r.first->scored);
    ck_assert_str_eq(r.first->lookups_json, "[]");
    verdict_free(r.first);
    store_close(s);
}
END_TEST

START_TEST(test_filter_zone_and_listed)
{
    struct store *s = open_store(dbpath);
    struct verdict *v = mk(VERDICT_KIND_MESSAGE, 1000, "192.0.2.1", "", VERDICT_ACCEPT);
    verdict_set(&v->queue_id, "clean");
    add_lk(v, "bl.test", "clean", 3, false, 0);
    put(s, v);
    v = mk(VERDICT_KIND_MESSAGE, 2000, "192.0.2.1", "", VERDICT_REJECT);
    verdict_set(&v->queue_id, "listed");
    add_lk(v, "bl.test", "listed", 3, true, 5);
    put(s, v);
    v = mk(VERDICT_KIND_MESSAGE, 3000, "192.0.2.1", "", VERDICT_ACCEPT);
    verdict_set(&v->queue_id, "other");
    add_lk(v, "other.test", "clean", 3, false, 0);
    put(s, v);
    struct store_filter f;
    store_filter_init(&f);
    f.zone = "BL.test";
    ck_assert_str_eq(q(s, &f), "listed,clean");
    f.listed_only = true;
    ck_assert_str_eq(q(s, &f), "listed");
    f.zone = NULL;
    ck_assert_str_eq(q(s, &f), "listed");
    f.listed_only = false;
    f.zone = "none.test";
    ck_assert_str_eq(q(s, &f), "");
    store_close(s);
}
END_TEST

START_TEST(test_zone_stats_count_outcomes_and_latency_percentiles)
{
    struct store *s = open_store(dbpath);
    /* bl.test: 100 answered lookups with latencies 1..100 ms, 10 cached,
     * 3 degraded, 2 refused, 1 skipped; spf: 2 results */
    for (int i = 1; i <= 100; i++) {
        struct verdict *v = mk(VERDICT_KIND_MESSAGE, 10000 + i, "192.0.2.1", "",
                               i <= 5 ? VERDICT_REJECT : VERDICT_ACCEPT);
        add_lk(v, "bl.test", i <= 5 ? "listed" : "clean", i, false, 0);
        if (i <= 10)
            add_lk(v, "bl.test", "clean", 0, true, 0);
        if (i <= 3)
            add_lk(v, "bl.test", "degraded", 2000, false, 0);
        if (i <= 2)
            add_lk(v, "bl.test", "refused", 4, false, 0);
        if (i == 1)
            add_lk(v, "bl.test", "skipped", 0, false, 0);
        if (i <= 2)
            add_lk(v, "spf", i == 1 ? "pass" : "temperror", 7, false, 0);
        if (i == 1)
            v->degraded = true;
        put(s, v);
    }
    struct store_zone_stat *z = NULL;
    size_t n = 0;
    char err[256];
    ck_assert_int_eq(store_zone_stats(s, 0, &z, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(z[0].zone, "bl.test");
    ck_assert_uint_eq(z[0].lookups, 116);
    ck_assert_uint_eq(z[0].listed, 5);
    ck_assert_uint_eq(z[0].clean, 105);
    ck_assert_uint_eq(z[0].cached, 10);
    ck_assert_uint_eq(z[0].degraded, 3);
    ck_assert_uint_eq(z[0].refused, 2);
    ck_assert_uint_eq(z[0].skipped, 1);
    /* answered and uncached: 1..100 plus the two refused at 4 ms */
    ck_assert_int_eq(z[0].p50_ms, 49);   /* nearest rank of 102 values */
    ck_assert_int_eq(z[0].p99_ms, 99);
    ck_assert_int_eq(z[0].max_ms, 100);
    ck_assert_int_eq(z[0].last_listed_ms, 10005);
    ck_assert_str_eq(z[1].zone, "spf");
    ck_assert_uint_eq(z[1].degraded, 1);
    ck_assert_uint_eq(z[1].clean, 1);
    free(z);
    ck_assert_int_eq(store_zone_stats(s, 10050, &z, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(z[0].lookups, 51);
    free(z);
    uint64_t counts[VERDICT_ACTION_COUNT], degraded;
    ck_assert_int_eq(store_action_counts(s, 0, counts, &degraded, err, sizeof err), 0);
    ck_assert_uint_eq(counts[VERDICT_REJECT], 5);
    ck_assert_uint_eq(counts[VERDICT_ACCEPT], 95);
    ck_assert_uint_eq(degraded, 1);
    store_close(s);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("schema");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_empty_file_migrates_to_latest_version);
    tcase_add_test(tc, test_writable_open_uses_wal_journal);
    tcase_add_test(tc, test_migrate_to_stops_at_target_version);
    tcase_add_test(tc, test_old_database_upgrades_in_place_keeping_rows);
    tcase_add_test(tc, test_newer_database_is_refused_naming_both_versions);
    tcase_add_test(tc, test_nocreate_and_readonly_never_create_a_file);
    tcase_add_test(tc, test_new_database_files_are_not_world_accessible);
    suite_add_tcase(s, tc);

    tc = tcase_create("query");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip_keeps_every_field_and_hostile_strings);
    tcase_add_test(tc, test_client_ip_stored_as_16_byte_blob_or_null);
    tcase_add_test(tc, test_filter_time_bounds_are_inclusive);
    tcase_add_test(tc, test_filter_ipv4_network_includes_mapped_clients_only_inside);
    tcase_add_test(tc, test_filter_ipv6_network);
    tcase_add_test(tc, test_filter_sender_address_is_exact_and_case_insensitive);
    tcase_add_test(tc, test_filter_sender_domain_matches_any_user_at_exactly_that_domain);
    tcase_add_test(tc, test_filter_like_wildcards_in_value_match_only_themselves);
    tcase_add_test(tc, test_filter_empty_sender_means_null_sender);
    tcase_add_test(tc, test_filter_rcpt_matches_refused_and_accepted_recipients);
    tcase_add_test(tc, test_filter_action_and_kind);
    tcase_add_test(tc, test_filter_reason_code_matches_code_field_only);
    tcase_add_test(tc, test_limit_returns_newest_first);
    tcase_add_test(tc, test_callback_returning_nonzero_stops_the_query);
    tcase_add_test(tc, test_damaged_json_row_does_not_break_queries);
    tcase_add_test(tc, test_readonly_store_can_query);
    suite_add_tcase(s, tc);

    tc = tcase_create("writer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_writer_writes_everything_submitted_in_bounded_batches);
    tcase_add_test(tc, test_writer_writes_backlog_in_transactions_of_500);
    tcase_add_test(tc, test_writer_keeps_verdicts_queued_while_locked_then_writes_them);
    tcase_add_test(tc, test_writer_logs_one_line_per_incident_and_one_on_recovery);
    tcase_add_test(tc, test_writer_submit_does_not_wait_for_a_locked_database);
    tcase_add_test(tc, test_writer_catches_up_when_database_directory_appears);
    tcase_add_test(tc, test_writer_catches_up_when_readonly_database_becomes_writable);
    tcase_add_test(tc, test_writer_queue_full_drops_and_counts_logging_once);
    tcase_add_test(tc, test_writer_drops_a_verdict_the_database_refuses_and_writes_the_rest);
    tcase_add_test(tc, test_writer_stop_writes_what_is_queued);
    suite_add_tcase(s, tc);
    tc = tcase_create("lookups");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_lookups_score_and_degraded_round_trip);
    tcase_add_test(tc, test_filter_zone_and_listed);
    tcase_add_test(tc, test_zone_stats_count_outcomes_and_latency_percentiles);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* the writer's incident lines go to stderr unless a test captures them */
    log_open("check_store", LOG_TO_STDERR, NULL);
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
