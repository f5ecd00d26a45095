/* Unit tests for lib/popauth.c: the grants table (add, refresh, delete,
 * list, lookup with expiry and IPv6 prefixes), the milter's in-memory
 * cache (sees other connections' changes, survives a database that is
 * missing or goes away), the login-line parser for Dovecot, Courier and
 * qpopper, the timestamps it reads from each log format (the syslog year
 * guessed around New Year), and grants from logins: counted from the
 * login's time, clamped to now, skipped when too old. Every test that uses
 * a database works in its own temporary directory. */
#include <check.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "popauth.h"
#include "store.h"

#define NOW ((int64_t)1700000000)

static char dir[64];
static char dbpath[128];
static char logpath[128];

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
    snprintf(dir, sizeof dir, "/tmp/kanjiki-popauth-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(dbpath, sizeof dbpath, "%s/kanjiki.db", dir);
    snprintf(logpath, sizeof logpath, "%s/log", dir);
}

static void teardown(void)
{
    log_open("check_popauth", LOG_TO_STDERR, NULL);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

static struct store *open_store(void)
{
    struct store *s;
    char err[512] = "";
    ck_assert_msg(store_open(dbpath, 0, 1000, &s, err, sizeof err) == 0, "store_open: %s", err);
    return s;
}

static void add(struct store *s, const char *ip, const char *user, int64_t ttl, int64_t now)
{
    char err[512] = "";
    ck_assert_msg(popauth_add(s, ip, user, ttl, NULL, now, err, sizeof err) == 0,
                  "popauth_add %s: %s", ip, err);
}

static struct ip ip_of(const char *text)
{
    struct ip a;
    ck_assert_msg(ip_parse(text, &a) == 0, "bad test address %s", text);
    return a;
}

static bool lookup(struct store *s, const char *ip, unsigned prefix, int64_t now)
{
    struct ip a = ip_of(ip);
    return popauth_lookup(s, &a, prefix, now, NULL);
}

/* popauth_list collected into a small array */
struct rows {
    struct popauth_grant g[16];
    char user[16][64], source[16][16];
    size_t n;
};

static int collect(const struct popauth_grant *g, void *arg)
{
    struct rows *r = arg;
    ck_assert_uint_lt(r->n, 16);
    r->g[r->n] = *g;
    snprintf(r->user[r->n], sizeof r->user[0], "%s", g->user ? g->user : "(null)");
    snprintf(r->source[r->n], sizeof r->source[0], "%s", g->source ? g->source : "(null)");
    r->g[r->n].user = r->user[r->n];
    r->g[r->n].source = r->source[r->n];
    r->n++;
    return 0;
}

static void list(struct store *s, bool all, int64_t now, struct rows *r)
{
    char err[512] = "";
    memset(r, 0, sizeof *r);
    ck_assert_msg(popauth_list(s, all, now, collect, r, err, sizeof err) == 0, "list: %s", err);
}

/* ---- the table ---- */

START_TEST(test_add_then_list_shows_the_grant)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", "alice", 600, NOW);
    struct rows r;
    list(s, false, NOW, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.g[0].ip, "192.0.2.7");
    ck_assert_str_eq(r.g[0].user, "alice");
    ck_assert_str_eq(r.g[0].source, "cli");     /* NULL source means the CLI */
    ck_assert_int_eq(r.g[0].created, NOW);
    ck_assert_int_eq(r.g[0].expires, NOW + 600);
    store_close(s);
}
END_TEST

START_TEST(test_add_records_the_source_and_no_user)
{
    struct store *s = open_store();
    char err[256];
    ck_assert_int_eq(popauth_add(s, "192.0.2.8", NULL, 60, "dovecot", NOW, err, sizeof err), 0);
    struct rows r;
    list(s, false, NOW, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.g[0].user, "(null)");
    ck_assert_str_eq(r.g[0].source, "dovecot");
    store_close(s);
}
END_TEST

START_TEST(test_adding_again_replaces_the_older_grant)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", "alice", 60, NOW);
    char err[256];
    ck_assert_int_eq(popauth_add(s, "192.0.2.7", "bob", 3600, "courier", NOW + 30, err, sizeof err), 0);
    struct rows r;
    list(s, true, NOW + 30, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.g[0].user, "bob");
    ck_assert_str_eq(r.g[0].source, "courier");
    ck_assert_int_eq(r.g[0].created, NOW + 30);
    ck_assert_int_eq(r.g[0].expires, NOW + 30 + 3600);
    /* the old expiry no longer applies */
    ck_assert(lookup(s, "192.0.2.7", 128, NOW + 61));
    store_close(s);
}
END_TEST

START_TEST(test_cli_add_sets_expiry_exactly_even_shorter)
{
    struct store *s = open_store();
    char err[256];
    ck_assert_int_eq(popauth_add(s, "192.0.2.7", NULL, 7 * 86400, "cli", NOW, err, sizeof err), 0);
    ck_assert_int_eq(popauth_add(s, "192.0.2.7", NULL, 60, "cli", NOW, err, sizeof err), 0);
    ck_assert(!lookup(s, "192.0.2.7", 128, NOW + 61));
    store_close(s);
}
END_TEST

START_TEST(test_login_from_log_never_shortens_a_grant)
{
    struct store *s = open_store();
    char err[256];
    ck_assert_int_eq(popauth_add(s, "192.0.2.7", "boss", 7 * 86400, "cli", NOW, err, sizeof err), 0);
    ck_assert_int_eq(popauth_add(s, "192.0.2.7", "boss", 1800, "dovecot", NOW + 10, err, sizeof err), 0);
    ck_assert(lookup(s, "192.0.2.7", 128, NOW + 86400));
    /* but a login does extend a grant that is about to run out */
    ck_assert_int_eq(popauth_add(s, "192.0.2.7", "boss", 30 * 86400, "dovecot", NOW + 20, err, sizeof err), 0);
    ck_assert(lookup(s, "192.0.2.7", 128, NOW + 20 * 86400));
    store_close(s);
}
END_TEST

START_TEST(test_del_removes_the_grant_and_counts)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 60, NOW);
    add(s, "192.0.2.8", NULL, 60, NOW);
    char err[256];
    ck_assert_int_eq(popauth_del(s, "192.0.2.7", err, sizeof err), 1);
    ck_assert_int_eq(popauth_del(s, "192.0.2.7", err, sizeof err), 0);
    ck_assert(!lookup(s, "192.0.2.7", 128, NOW));
    ck_assert(lookup(s, "192.0.2.8", 128, NOW));
    store_close(s);
}
END_TEST

START_TEST(test_del_rejects_an_invalid_ip)
{
    struct store *s = open_store();
    char err[256] = "";
    ck_assert_int_eq(popauth_del(s, "192.0.2.x", err, sizeof err), -1);
    ck_assert_str_eq(err, "not an IP address: 192.0.2.x");
    store_close(s);
}
END_TEST

START_TEST(test_lookup_finds_a_live_grant_and_its_user)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", "alice", 60, NOW);
    struct ip a = ip_of("192.0.2.7");
    char *user = NULL;
    ck_assert(popauth_lookup(s, &a, 128, NOW, &user));
    ck_assert_str_eq(user, "alice");
    free(user);
    ck_assert(!lookup(s, "192.0.2.77", 128, NOW));
    store_close(s);
}
END_TEST

START_TEST(test_expiry_is_enforced_at_lookup)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 60, NOW);
    ck_assert(lookup(s, "192.0.2.7", 128, NOW + 59));
    ck_assert(!lookup(s, "192.0.2.7", 128, NOW + 60));   /* expires > now */
    ck_assert(!lookup(s, "192.0.2.7", 128, NOW + 3600));
    store_close(s);
}
END_TEST

START_TEST(test_list_hides_expired_grants_unless_asked)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 10, NOW);
    add(s, "192.0.2.8", NULL, 100, NOW);
    struct rows r;
    list(s, false, NOW + 50, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.g[0].ip, "192.0.2.8");
    list(s, true, NOW + 50, &r);
    ck_assert_uint_eq(r.n, 2);
    store_close(s);
}
END_TEST

START_TEST(test_list_is_ordered_by_address)
{
    struct store *s = open_store();
    add(s, "2001:db8::1", NULL, 60, NOW);
    add(s, "192.0.2.10", NULL, 60, NOW);
    add(s, "192.0.2.9", NULL, 60, NOW);
    struct rows r;
    list(s, false, NOW, &r);
    ck_assert_uint_eq(r.n, 3);
    ck_assert_str_eq(r.g[0].ip, "192.0.2.9");   /* numerically, not as text */
    ck_assert_str_eq(r.g[1].ip, "192.0.2.10");
    ck_assert_str_eq(r.g[2].ip, "2001:db8::1");
    store_close(s);
}
END_TEST

START_TEST(test_purge_removes_only_expired_grants)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 10, NOW);
    add(s, "192.0.2.8", NULL, 100, NOW);
    ck_assert_int_eq(popauth_purge(s, NOW + 50), 1);
    struct rows r;
    list(s, true, NOW + 50, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.g[0].ip, "192.0.2.8");
    store_close(s);
}
END_TEST

START_TEST(test_ipv4_mapped_address_is_stored_as_ipv4)
{
    struct store *s = open_store();
    add(s, "::ffff:192.0.2.1", "bob", 60, NOW);
    struct rows r;
    list(s, false, NOW, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.g[0].ip, "192.0.2.1");
    ck_assert(lookup(s, "192.0.2.1", 128, NOW));
    /* the plain form refreshes the same grant, and deletes it */
    add(s, "192.0.2.1", "carol", 60, NOW);
    list(s, false, NOW, &r);
    ck_assert_uint_eq(r.n, 1);
    char err[256];
    ck_assert_int_eq(popauth_del(s, "::ffff:192.0.2.1", err, sizeof err), 1);
    store_close(s);
}
END_TEST

START_TEST(test_ipv6_grant_covers_the_clients_slash64_when_prefix_is_64)
{
    struct store *s = open_store();
    add(s, "2001:db8:1:2::77", NULL, 60, NOW);
    ck_assert(lookup(s, "2001:db8:1:2::77", 64, NOW));
    ck_assert(lookup(s, "2001:db8:1:2:ffff:ffff:ffff:ffff", 64, NOW));
    ck_assert(lookup(s, "2001:db8:1:2::", 64, NOW));
    ck_assert(!lookup(s, "2001:db8:1:3::77", 64, NOW));
    ck_assert(!lookup(s, "2001:db8:1:1:ffff:ffff:ffff:ffff", 64, NOW));
    store_close(s);
}
END_TEST

START_TEST(test_ipv6_grant_is_exact_when_prefix_is_128)
{
    struct store *s = open_store();
    add(s, "2001:db8:1:2::77", NULL, 60, NOW);
    ck_assert(lookup(s, "2001:db8:1:2::77", 128, NOW));
    ck_assert(!lookup(s, "2001:db8:1:2::78", 128, NOW));
    store_close(s);
}
END_TEST

START_TEST(test_ipv4_grant_is_exact_whatever_the_prefix)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 60, NOW);
    ck_assert(lookup(s, "192.0.2.7", 64, NOW));
    ck_assert(!lookup(s, "192.0.2.8", 64, NOW));
    ck_assert(!lookup(s, "192.0.2.6", 16, NOW));
    store_close(s);
}
END_TEST

START_TEST(test_ipv4_grant_never_covers_an_ipv6_client_whose_prefix_holds_it)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 60, NOW);
    /* ::/64 contains ::ffff:192.0.2.7; an IPv6 client there is not it */
    ck_assert(!lookup(s, "::2", 64, NOW));
    store_close(s);
}
END_TEST

START_TEST(test_add_rejects_an_invalid_ip)
{
    struct store *s = open_store();
    char err[256] = "";
    ck_assert_int_eq(popauth_add(s, "999.0.2.1", NULL, 60, NULL, NOW, err, sizeof err), -1);
    ck_assert_str_eq(err, "not an IP address: 999.0.2.1");
    ck_assert_int_eq(popauth_add(s, "fe80::1%eth0", NULL, 60, NULL, NOW, err, sizeof err), -1);
    ck_assert_int_eq(popauth_add(s, "", NULL, 60, NULL, NOW, err, sizeof err), -1);
    struct rows r;
    list(s, true, NOW, &r);
    ck_assert_uint_eq(r.n, 0);
    store_close(s);
}
END_TEST

START_TEST(test_add_escapes_the_bad_ip_in_its_error)
{
    struct store *s = open_store();
    char err[256] = "";
    ck_assert_int_eq(popauth_add(s, "1.2.3\x1b[2J", NULL, 60, NULL, NOW, err, sizeof err), -1);
    ck_assert_ptr_null(strchr(err, '\x1b'));
    ck_assert_str_eq(err, "not an IP address: 1.2.3\\x1b[2J");
    store_close(s);
}
END_TEST

START_TEST(test_add_rejects_a_ttl_that_is_not_positive)
{
    struct store *s = open_store();
    char err[256] = "";
    ck_assert_int_eq(popauth_add(s, "192.0.2.7", NULL, 0, NULL, NOW, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "ttl"));
    ck_assert_int_eq(popauth_add(s, "192.0.2.7", NULL, -5, NULL, NOW, err, sizeof err), -1);
    ck_assert(!lookup(s, "192.0.2.7", 128, NOW));
    store_close(s);
}
END_TEST

static int64_t generation(struct store *s)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(store_db(s), "SELECT value FROM meta WHERE key = ?1",
                                        -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, "grants_generation", -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t g = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return g;
}

START_TEST(test_every_change_bumps_the_generation)
{
    struct store *s = open_store();
    int64_t g0 = generation(s);
    add(s, "192.0.2.7", NULL, 60, NOW);
    int64_t g1 = generation(s);
    ck_assert_int_gt(g1, g0);
    add(s, "192.0.2.7", NULL, 120, NOW);    /* refresh */
    int64_t g2 = generation(s);
    ck_assert_int_gt(g2, g1);
    char err[256];
    ck_assert_int_eq(popauth_del(s, "192.0.2.7", err, sizeof err), 1);
    ck_assert_int_gt(generation(s), g2);
    store_close(s);
}
END_TEST

/* ---- the cache ---- */

/* Poll match until it gives want, for at most ms (not a timed assertion:
 * the bound only keeps a broken cache from hanging the test). */
static bool wait_match(struct popauth_cache *c, const char *ip, unsigned prefix, bool want, int ms)
{
    struct ip a = ip_of(ip);
    for (int waited = 0; waited <= ms; waited += 10) {
        if (popauth_cache_match(c, &a, prefix, (int64_t)time(NULL), NULL, 0) == want)
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool cmatch(struct popauth_cache *c, const char *ip, unsigned prefix, int64_t now)
{
    struct ip a = ip_of(ip);
    return popauth_cache_match(c, &a, prefix, now, NULL, 0);
}

START_TEST(test_cache_sees_a_grant_added_through_another_connection)
{
    struct store *s = open_store();
    struct popauth_cache *c = popauth_cache_start(dbpath, 50);
    ck_assert_ptr_nonnull(c);
    ck_assert(!cmatch(c, "192.0.2.7", 128, (int64_t)time(NULL)));
    add(s, "192.0.2.7", "alice", 600, (int64_t)time(NULL));
    ck_assert(wait_match(c, "192.0.2.7", 128, true, 5000));
    char user[64];
    struct ip a = ip_of("192.0.2.7");
    ck_assert(popauth_cache_match(c, &a, 128, (int64_t)time(NULL), user, sizeof user));
    ck_assert_str_eq(user, "alice");
    /* and sees it go */
    char err[256];
    ck_assert_int_eq(popauth_del(s, "192.0.2.7", err, sizeof err), 1);
    ck_assert(wait_match(c, "192.0.2.7", 128, false, 5000));
    popauth_cache_stop(c);
    store_close(s);
}
END_TEST

START_TEST(test_cache_loads_existing_grants_at_start)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 600, (int64_t)time(NULL));
    struct popauth_cache *c = popauth_cache_start(dbpath, 50);
    ck_assert(wait_match(c, "192.0.2.7", 128, true, 5000));
    popauth_cache_stop(c);
    store_close(s);
}
END_TEST

START_TEST(test_cache_refresh_reloads_before_returning)
{
    struct store *s = open_store();
    struct popauth_cache *c = popauth_cache_start(dbpath, 60000);   /* no polling */
    add(s, "192.0.2.7", NULL, 600, (int64_t)time(NULL));
    popauth_cache_refresh(c);
    ck_assert(cmatch(c, "192.0.2.7", 128, (int64_t)time(NULL)));
    popauth_cache_stop(c);
    store_close(s);
}
END_TEST

START_TEST(test_cache_enforces_expiry_at_match)
{
    struct store *s = open_store();
    int64_t now = (int64_t)time(NULL);
    add(s, "192.0.2.7", NULL, 100, now);
    struct popauth_cache *c = popauth_cache_start(dbpath, 50);
    popauth_cache_refresh(c);
    ck_assert(cmatch(c, "192.0.2.7", 128, now + 99));
    ck_assert(!cmatch(c, "192.0.2.7", 128, now + 100));
    popauth_cache_stop(c);
    store_close(s);
}
END_TEST

START_TEST(test_cache_applies_the_ipv6_prefix_and_ipv4_exactness)
{
    struct store *s = open_store();
    int64_t now = (int64_t)time(NULL);
    add(s, "2001:db8:1:2::77", NULL, 600, now);
    add(s, "192.0.2.7", NULL, 600, now);
    add(s, "::ffff:192.0.2.9", NULL, 600, now);
    struct popauth_cache *c = popauth_cache_start(dbpath, 50);
    popauth_cache_refresh(c);
    ck_assert(cmatch(c, "2001:db8:1:2::1", 64, now));
    ck_assert(!cmatch(c, "2001:db8:1:2::1", 128, now));
    ck_assert(cmatch(c, "2001:db8:1:2::77", 128, now));
    ck_assert(!cmatch(c, "2001:db8:1:3::77", 64, now));
    ck_assert(cmatch(c, "192.0.2.7", 64, now));
    ck_assert(!cmatch(c, "192.0.2.8", 64, now));
    ck_assert(cmatch(c, "192.0.2.9", 128, now));
    ck_assert(cmatch(c, "::ffff:192.0.2.9", 128, now));
    ck_assert(!cmatch(c, "::2", 64, now));
    popauth_cache_stop(c);
    store_close(s);
}
END_TEST

START_TEST(test_cache_match_truncates_the_user_safely)
{
    struct store *s = open_store();
    int64_t now = (int64_t)time(NULL);
    add(s, "192.0.2.7", "a-rather-long-user-name", 600, now);
    struct popauth_cache *c = popauth_cache_start(dbpath, 50);
    popauth_cache_refresh(c);
    char user[8];
    memset(user, 'X', sizeof user);
    struct ip a = ip_of("192.0.2.7");
    ck_assert(popauth_cache_match(c, &a, 128, now, user, sizeof user));
    ck_assert_str_eq(user, "a-rathe");
    popauth_cache_stop(c);
    store_close(s);
}
END_TEST

static int count_in_file(const char *p, const char *needle)
{
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

START_TEST(test_cache_survives_a_database_that_appears_later)
{
    ck_assert_int_eq(log_open("check_popauth", LOG_TO_FILE, logpath), 0);
    struct popauth_cache *c = popauth_cache_start(dbpath, 20);
    ck_assert_ptr_nonnull(c);
    sleep_ms(200);   /* several polls of a missing database */
    ck_assert(!cmatch(c, "192.0.2.7", 128, (int64_t)time(NULL)));
    ck_assert_int_eq(count_in_file(logpath, "unavailable"), 1);   /* once per incident */
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 600, (int64_t)time(NULL));
    ck_assert(wait_match(c, "192.0.2.7", 128, true, 5000));
    popauth_cache_stop(c);
    store_close(s);
    ck_assert_int_eq(count_in_file(logpath, "unavailable"), 1);
    ck_assert_int_eq(count_in_file(logpath, "available again"), 1);
}
END_TEST

START_TEST(test_cache_keeps_its_grants_when_the_database_goes_away)
{
    ck_assert_int_eq(log_open("check_popauth", LOG_TO_FILE, logpath), 0);
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 600, (int64_t)time(NULL));
    struct popauth_cache *c = popauth_cache_start(dbpath, 20);
    ck_assert(wait_match(c, "192.0.2.7", 128, true, 5000));
    store_close(s);
    char p[160];
    ck_assert_int_eq(unlink(dbpath), 0);
    snprintf(p, sizeof p, "%s-wal", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath);
    unlink(p);
    /* wait until the cache noticed, then the grant must still count */
    for (int i = 0; i < 500 && !count_in_file(logpath, "unavailable"); i++)
        sleep_ms(10);
    ck_assert_int_eq(count_in_file(logpath, "unavailable"), 1);
    ck_assert(cmatch(c, "192.0.2.7", 128, (int64_t)time(NULL)));
    popauth_cache_stop(c);
}
END_TEST

START_TEST(test_cache_follows_a_database_replaced_by_a_new_file)
{
    struct store *s = open_store();
    add(s, "192.0.2.7", NULL, 600, (int64_t)time(NULL));
    struct popauth_cache *c = popauth_cache_start(dbpath, 20);
    ck_assert(wait_match(c, "192.0.2.7", 128, true, 5000));
    store_close(s);
    char p[160];
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath);
    unlink(p);
    s = open_store();                        /* a fresh database, generation 0 */
    add(s, "192.0.2.8", NULL, 600, (int64_t)time(NULL));
    ck_assert(wait_match(c, "192.0.2.8", 128, true, 5000));
    ck_assert(!cmatch(c, "192.0.2.7", 128, (int64_t)time(NULL)));
    popauth_cache_stop(c);
    store_close(s);
}
END_TEST

START_TEST(test_cache_match_is_false_for_a_null_cache)
{
    struct ip a = ip_of("192.0.2.7");
    ck_assert(!popauth_cache_match(NULL, &a, 128, NOW, NULL, 0));
    popauth_cache_refresh(NULL);
    popauth_cache_stop(NULL);
}
END_TEST

/* ---- log lines ---- */

static struct popauth_login login;

static bool parse(const char *line)
{
    memset(&login, 0, sizeof login);
    return popauth_parse_line(line, NOW, &login);
}

static void expect(const char *line, const char *ip, const char *user, const char *source)
{
    ck_assert_msg(parse(line), "not recognised: %s", line);
    ck_assert_str_eq(login.ip, ip);
    ck_assert_str_eq(login.user, user);
    ck_assert_str_eq(login.source, source);
}

static void reject(const char *line)
{
    ck_assert_msg(!parse(line), "wrongly recognised: %s", line);
}

START_TEST(test_parse_dovecot_imap_login)
{
    expect("Nov 22 10:00:00 mx dovecot: imap-login: Login: user=<bob>, method=PLAIN, "
           "rip=192.0.2.10, lip=192.0.2.1, mpid=1234, TLS, session=<abc>",
           "192.0.2.10", "bob", "dovecot");
}
END_TEST

START_TEST(test_parse_dovecot_pop3_login)
{
    expect("Nov 22 10:00:00 mx dovecot: pop3-login: Login: user=<alice@example.org>, "
           "method=PLAIN, rip=2001:db8::10, lip=2001:db8::1, mpid=99, TLS, session=<x>",
           "2001:db8::10", "alice@example.org", "dovecot");
}
END_TEST

START_TEST(test_parse_dovecot_old_format_with_mapped_rip)
{
    expect("Nov  2 10:00:00 mx dovecot: pop3-login: Login: user=<bob>, method=PLAIN, "
           "rip=::ffff:192.0.2.10, lip=::ffff:192.0.2.1",
           "192.0.2.10", "bob", "dovecot");
}
END_TEST

START_TEST(test_parse_dovecot_with_pid_and_iso_timestamp)
{
    expect("2026-11-22T10:00:00.123456+01:00 mx dovecot[812]: imap-login: Login: "
           "user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=1, TLS",
           "192.0.2.10", "bob", "dovecot");
}
END_TEST

START_TEST(test_parse_dovecot_own_log_file)
{
    expect("Nov 22 10:00:00 imap-login: Info: Login: user=<bob>, method=PLAIN, "
           "rip=192.0.2.10, lip=192.0.2.1, mpid=1, TLS, session=<abc>",
           "192.0.2.10", "bob", "dovecot");
}
END_TEST

START_TEST(test_parse_dovecot_disconnected_is_not_a_login)
{
    reject("Nov 22 10:00:00 mx dovecot: imap-login: Disconnected (auth failed, 1 "
           "attempts in 2 secs): user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, "
           "TLS, session=<abc>");
    reject("Nov 22 10:00:00 mx dovecot: imap: Disconnected: Logged out in=10 out=20");
}
END_TEST

START_TEST(test_parse_dovecot_aborted_login_is_not_a_login)
{
    reject("Nov 22 10:00:00 mx dovecot: pop3-login: Aborted login (auth failed, 1 "
           "attempts in 2 secs): user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1");
    reject("Nov 22 10:00:00 mx dovecot: imap-login: Login aborted: Connection closed "
           "(auth failed, 1 attempts in 2 secs) (auth_failed): user=<bob>, "
           "rip=192.0.2.10, lip=192.0.2.1");
}
END_TEST

START_TEST(test_parse_dovecot_auth_failure_is_not_a_login)
{
    reject("Nov 22 10:00:00 mx dovecot: auth: passwd-file(bob,192.0.2.10): unknown user");
    reject("Nov 22 10:00:00 mx dovecot: auth-worker(77): pam(bob,192.0.2.10): "
           "pam_authenticate() failed: Authentication failure");
}
END_TEST

START_TEST(test_parse_dovecot_submission_login_is_not_a_login)
{
    reject("Nov 22 10:00:00 mx dovecot: submission-login: Login: user=<bob>, "
           "method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=1, TLS");
}
END_TEST

START_TEST(test_parse_dovecot_managesieve_login_is_not_a_login)
{
    reject("Nov 22 10:00:00 mx dovecot: managesieve-login: Login: user=<bob>, "
           "method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=1, TLS");
}
END_TEST

START_TEST(test_parse_courier_pop3d_login)
{
    expect("Nov 22 10:00:00 mx courier-pop3d: LOGIN, user=bob, ip=[::ffff:192.0.2.10], "
           "port=[41234]", "192.0.2.10", "bob", "courier");
}
END_TEST

START_TEST(test_parse_courier_imapd_login)
{
    expect("Nov 22 10:00:00 mx imapd: LOGIN, user=bob, ip=[::ffff:192.0.2.10], "
           "port=[41234], protocol=IMAP", "192.0.2.10", "bob", "courier");
}
END_TEST

START_TEST(test_parse_courier_ssl_variants)
{
    expect("Nov 22 10:00:00 mx imapd-ssl: LOGIN, user=bob, ip=[2001:db8::10], "
           "port=[993], protocol=IMAP", "2001:db8::10", "bob", "courier");
    expect("Nov 22 10:00:00 mx pop3d-ssl: LOGIN, user=carol, ip=[::ffff:192.0.2.11], "
           "port=[995]", "192.0.2.11", "carol", "courier");
}
END_TEST

START_TEST(test_parse_courier_login_failed_is_not_a_login)
{
    reject("Nov 22 10:00:00 mx imapd: LOGIN FAILED, user=bob, ip=[::ffff:192.0.2.10]");
    reject("Nov 22 10:00:00 mx courier-pop3d: LOGIN FAILED, method=PLAIN, user=bob, "
           "ip=[::ffff:192.0.2.10]");
    reject("Nov 22 10:00:00 mx imapd: LOGOUT, user=bob, ip=[::ffff:192.0.2.10], "
           "headers=0, body=0, rcvd=10, sent=20, time=5");
}
END_TEST

START_TEST(test_parse_qpopper_pop_login)
{
    expect("Nov 22 10:00:00 mx popper[123]: (v4.1.0) POP login by user \"bob\" at "
           "(host.example.net) 192.0.2.10", "192.0.2.10", "bob", "qpopper");
}
END_TEST

START_TEST(test_parse_qpopper_stats)
{
    expect("Nov 22 10:00:00 mx popper[123]: Stats: bob 0 0 1 1234 host.example.net "
           "192.0.2.10 [pop_updt.c:264]", "192.0.2.10", "bob", "qpopper");
}
END_TEST

START_TEST(test_parse_qpopper_failures_and_malformed_stats_are_not_logins)
{
    reject("Nov 22 10:00:00 mx popper[123]: bob at host.example.net (192.0.2.10): "
           "-ERR [AUTH] Password supplied for \"bob\" is incorrect.");
    reject("Nov 22 10:00:00 mx popper[123]: Stats: bob 0 zero 1 1234 host 192.0.2.10");
    reject("Nov 22 10:00:00 mx popper[123]: Stats: bob 0 0 1 1234 host 192.0.2.10 junk");
    reject("Nov 22 10:00:00 mx popper[123]: (v4.1.0) POP login by user \"bob\" at "
           "(host.example.net) not-an-ip");
}
END_TEST

START_TEST(test_parse_ignores_login_text_inside_another_programs_message)
{
    /* a client sends this as its HELO name and Postfix logs it: no grant */
    reject("Nov 22 10:00:00 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from "
           "unknown[203.0.113.9]: 554 5.7.1 relay denied; helo=<dovecot: imap-login: "
           "Login: user=<x>, method=PLAIN, rip=203.0.113.9, lip=1.1.1.1>");
    reject("Nov 22 10:00:00 mx postfix/smtpd[9]: warning: x: imapd: LOGIN, user=x, "
           "ip=[203.0.113.9], port=[1]");
    reject("Nov 22 10:00:00 mx dovecot: auth: imap-login: Login: user=<x>, "
           "rip=203.0.113.9, lip=1.1.1.1");
}
END_TEST

START_TEST(test_parse_rejects_garbage)
{
    reject("");
    reject("dovecot:");
    reject(": : : :");
    reject("\x01\x02\xff\xfe");
    reject("Nov 22 10:00:00 mx dovecot: imap-login: Login: user=<bob>");
    reject("Nov 22 10:00:00 mx dovecot: imap-login: Login: user=<bob>, rip=");
    reject("Nov 22 10:00:00 mx dovecot: imap-login: Login: user=<bob>, method=PLAIN, "
           "rip=192.0.2.999, lip=192.0.2.1");
    reject("Nov 22 10:00:00 mx dovecot: imap-login: Login: user=<bob>, method=PLAIN, "
           "rip=fe80::1%eth0, lip=192.0.2.1");
    reject("Nov 22 10:00:00 mx dovecot[abc]: imap-login: Login: user=<bob>, "
           "method=PLAIN, rip=192.0.2.10, lip=192.0.2.1");
    reject("Nov 22 10:00:00 mx imapd: LOGIN, user=bob, ip=[192.0.2.10");
    reject("Nov 22 10:00:00 mx popper[1]: (v4.1.0) POP login by user \"bob\" at (h)");
    ck_assert(!popauth_parse_line(NULL, NOW, &login));
}
END_TEST

START_TEST(test_parse_rejects_an_address_longer_than_any_ip)
{
    char line[512];
    snprintf(line, sizeof line, "Nov 22 10:00:00 mx dovecot: imap-login: Login: user=<b>, "
             "method=PLAIN, rip=%0200d, lip=1.2.3.4", 1);
    reject(line);
}
END_TEST

START_TEST(test_parse_truncates_a_long_user_safely)
{
    size_t n = 5000;
    char *line = malloc(n + 256);
    char *p = line + sprintf(line, "Nov 22 10:00:00 mx dovecot: imap-login: Login: user=<");
    /* "é" is two bytes: the cut must not split one */
    for (size_t i = 0; i < n / 2; i++) {
        *p++ = '\xc3';
        *p++ = '\xa9';
    }
    strcpy(p, ">, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1");
    ck_assert(parse(line));
    size_t len = strnlen(login.user, sizeof login.user);
    ck_assert_uint_lt(len, sizeof login.user);
    ck_assert_uint_ge(len, 250);
    ck_assert_uint_eq(len % 2, 0);
    ck_assert_str_eq(login.ip, "192.0.2.10");
    free(line);
}
END_TEST

START_TEST(test_parse_rejects_a_huge_line)
{
    size_t n = 100000;
    char *line = malloc(n + 256);
    int k = sprintf(line, "Nov 22 10:00:00 mx dovecot: imap-login: Login: user=<bob>, "
                          "method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, ");
    memset(line + k, 'x', n);
    line[k + n] = '\0';
    reject(line);
    free(line);
}
END_TEST

START_TEST(test_parse_leaves_out_untouched_when_not_a_login)
{
    struct popauth_login l;
    memset(&l, 0x5a, sizeof l);
    ck_assert(!popauth_parse_line("Nov 22 10:00:00 mx imapd: LOGIN, user=bob, "
                                  "ip=[nope], port=[1]", NOW, &l));
    ck_assert_int_eq((unsigned char)l.ip[0], 0x5a);
    ck_assert_int_eq((unsigned char)l.user[0], 0x5a);
}
END_TEST

/* ---- line timestamps ----
 *
 * Times below: 2026-11-22T14:04:05Z = 1795356245, written as 15:04:05 in
 * a zone one hour east of UTC (TZ "XXX-1", no daylight saving time). */

#define T_1404 ((int64_t)1795356245)     /* 2026-11-22T14:04:05Z */
#define T_NOV23 ((int64_t)1795392000)    /* 2026-11-23T00:00:00Z */

#define DOVECOT_REST " mx dovecot: imap-login: Login: user=<bob>, method=PLAIN, " \
                     "rip=192.0.2.10, lip=192.0.2.1, mpid=1, TLS"
#define OWN_LOG_REST " imap-login: Info: Login: user=<bob>, method=PLAIN, " \
                     "rip=192.0.2.10, lip=192.0.2.1, mpid=1, TLS"

static void use_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

/* The time popauth_parse_line gives line (a login) read at now. */
static int64_t time_of(const char *line, int64_t now)
{
    struct popauth_login l;
    memset(&l, 0, sizeof l);
    ck_assert_msg(popauth_parse_line(line, now, &l), "not recognised: %s", line);
    return l.time;
}

START_TEST(test_time_of_a_syslog_line_is_local_time_this_year)
{
    use_tz("XXX-1");
    ck_assert_int_eq(time_of("Nov 22 15:04:05" DOVECOT_REST, T_NOV23), T_1404);
}
END_TEST

START_TEST(test_time_of_a_syslog_line_with_a_space_padded_day)
{
    use_tz("UTC0");
    /* 2026-11-02T15:04:05Z */
    ck_assert_int_eq(time_of("Nov  2 15:04:05" DOVECOT_REST, T_NOV23), 1793631845);
    ck_assert_int_eq(time_of("Nov 02 15:04:05" DOVECOT_REST, T_NOV23), 1793631845);
}
END_TEST

START_TEST(test_time_of_an_rfc3339_line_uses_its_offset_not_tz)
{
    use_tz("XXX+5");
    ck_assert_int_eq(time_of("2026-11-22T15:04:05.123456+01:00 mx dovecot[812]: "
                             "imap-login: Login: user=<bob>, method=PLAIN, "
                             "rip=192.0.2.10, lip=192.0.2.1", T_NOV23), T_1404);
}
END_TEST

START_TEST(test_time_of_an_iso_line_with_z_or_a_compact_offset)
{
    use_tz("XXX+5");
    ck_assert_int_eq(time_of("2026-11-22T14:04:05Z" DOVECOT_REST, T_NOV23), T_1404);
    /* journalctl -o short-iso */
    ck_assert_int_eq(time_of("2026-11-22T15:04:05+0100" DOVECOT_REST, T_NOV23), T_1404);
    ck_assert_int_eq(time_of("2026-11-22T09:04:05-05:00" DOVECOT_REST, T_NOV23), T_1404);
}
END_TEST

START_TEST(test_time_of_an_iso_line_without_offset_is_local_time)
{
    use_tz("XXX-1");
    ck_assert_int_eq(time_of("2026-11-22T15:04:05" DOVECOT_REST, T_NOV23), T_1404);
}
END_TEST

START_TEST(test_time_of_a_line_in_dovecots_own_log_file)
{
    use_tz("XXX-1");
    ck_assert_int_eq(time_of("Nov 22 15:04:05" OWN_LOG_REST, T_NOV23), T_1404);
}
END_TEST

START_TEST(test_time_of_a_line_in_dovecots_own_log_file_with_a_year)
{
    use_tz("XXX-1");
    ck_assert_int_eq(time_of("2026-11-22 15:04:05" OWN_LOG_REST, T_NOV23), T_1404);
}
END_TEST

START_TEST(test_time_of_a_dec_31_line_read_on_jan_1_is_last_year)
{
    use_tz("UTC0");
    /* read at 2027-01-01T00:10:00Z: 2026-12-31T23:59:00Z */
    ck_assert_int_eq(time_of("Dec 31 23:59:00" DOVECOT_REST, 1798762200), 1798761540);
}
END_TEST

START_TEST(test_time_of_a_jan_1_line_read_just_before_it_is_next_year)
{
    use_tz("UTC0");
    /* the logger's clock is a little ahead: read at 2026-12-31T23:50:00Z,
     * the line is from 2027-01-01T00:05:00Z, not from January 2026 */
    ck_assert_int_eq(time_of("Jan  1 00:05:00" DOVECOT_REST, 1798761000), 1798761900);
}
END_TEST

START_TEST(test_time_of_a_line_more_than_a_day_ahead_is_last_year)
{
    use_tz("UTC0");
    /* read on 2026-11-23: "Nov 25" is 2025-11-25T15:04:05Z */
    ck_assert_int_eq(time_of("Nov 25 15:04:05" DOVECOT_REST, T_NOV23), 1764083045);
    /* within a day ahead, it is this year's */
    ck_assert_int_eq(time_of("Nov 23 23:59:59" DOVECOT_REST, T_NOV23), T_NOV23 + 86399);
}
END_TEST

START_TEST(test_time_of_feb_29_is_in_the_last_leap_year)
{
    use_tz("UTC0");
    /* read on 2027-03-01: 2024-02-29T12:00:00Z */
    ck_assert_int_eq(time_of("Feb 29 12:00:00" DOVECOT_REST, 1803859200), 1709208000);
}
END_TEST

START_TEST(test_time_is_zero_without_a_readable_timestamp)
{
    use_tz("UTC0");
    ck_assert_int_eq(time_of("mx dovecot: imap-login: Login: user=<bob>, method=PLAIN, "
                             "rip=192.0.2.10, lip=192.0.2.1", T_NOV23), 0);
    ck_assert_int_eq(time_of("Feb 30 10:00:00" DOVECOT_REST, T_NOV23), 0);
    ck_assert_int_eq(time_of("2026-13-01T10:00:00Z" DOVECOT_REST, T_NOV23), 0);
    ck_assert_int_eq(time_of("2026-11-22T25:00:00Z" DOVECOT_REST, T_NOV23), 0);
    ck_assert_int_eq(time_of("Nov 22 10:00" DOVECOT_REST, T_NOV23), 0);
    ck_assert_int_eq(time_of("@1795356245" DOVECOT_REST, T_NOV23), 0);
}
END_TEST

/* ---- grants from logins ---- */

static int grant_line(struct store *s, const char *line, int64_t ttl, int64_t now,
                      int64_t *expires)
{
    struct popauth_login l;
    memset(&l, 0, sizeof l);
    ck_assert_msg(popauth_parse_line(line, now, &l), "not recognised: %s", line);
    char err[512] = "";
    int r = popauth_grant_login(s, &l, ttl, now, expires, err, sizeof err);
    ck_assert_msg(r >= 0, "popauth_grant_login: %s", err);
    return r;
}

START_TEST(test_grant_skips_a_week_old_login_read_from_the_start)
{
    use_tz("UTC0");
    struct store *s = open_store();
    /* --from-start on 2026-11-23 reads a login of 2026-11-16 */
    ck_assert_int_eq(grant_line(s, "Nov 16 00:00:00" DOVECOT_REST, 1800, T_NOV23, NULL), 0);
    ck_assert(!lookup(s, "192.0.2.10", 128, T_NOV23));
    struct rows r;
    list(s, true, T_NOV23, &r);
    ck_assert_uint_eq(r.n, 0);
    store_close(s);
}
END_TEST

START_TEST(test_grant_skips_a_login_exactly_one_ttl_old)
{
    use_tz("UTC0");
    struct store *s = open_store();
    ck_assert_int_eq(grant_line(s, "Nov 22 23:30:00" DOVECOT_REST, 1800, T_NOV23, NULL), 0);
    ck_assert(!lookup(s, "192.0.2.10", 128, T_NOV23));
    store_close(s);
}
END_TEST

START_TEST(test_grant_of_a_recent_login_expires_ttl_after_the_login)
{
    use_tz("UTC0");
    struct store *s = open_store();
    int64_t login_time = T_NOV23 - 600, expires = 0;
    ck_assert_int_eq(grant_line(s, "Nov 22 23:50:00" DOVECOT_REST, 1800, T_NOV23, &expires), 1);
    ck_assert_int_eq(expires, login_time + 1800);
    struct rows r;
    list(s, true, T_NOV23, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.g[0].ip, "192.0.2.10");
    ck_assert_str_eq(r.g[0].user, "bob");
    ck_assert_str_eq(r.g[0].source, "dovecot");
    ck_assert_int_eq(r.g[0].created, login_time);
    ck_assert_int_eq(r.g[0].expires, login_time + 1800);
    ck_assert(lookup(s, "192.0.2.10", 128, login_time + 1799));
    ck_assert(!lookup(s, "192.0.2.10", 128, login_time + 1800));
    store_close(s);
}
END_TEST

START_TEST(test_grant_of_a_future_dated_login_is_clamped_to_now)
{
    use_tz("UTC0");
    struct store *s = open_store();
    int64_t expires = 0;
    /* the logger's clock is an hour ahead */
    ck_assert_int_eq(grant_line(s, "2026-11-23T01:00:00Z" DOVECOT_REST, 1800, T_NOV23,
                                &expires), 1);
    ck_assert_int_eq(expires, T_NOV23 + 1800);
    struct rows r;
    list(s, true, T_NOV23, &r);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_int_eq(r.g[0].created, T_NOV23);
    ck_assert_int_eq(r.g[0].expires, T_NOV23 + 1800);
    store_close(s);
}
END_TEST

START_TEST(test_grant_of_an_undated_login_counts_from_now)
{
    struct store *s = open_store();
    int64_t expires = 0;
    ck_assert_int_eq(grant_line(s, "mx dovecot: imap-login: Login: user=<bob>, method=PLAIN, "
                                "rip=192.0.2.10, lip=192.0.2.1", 1800, T_NOV23, &expires), 1);
    ck_assert_int_eq(expires, T_NOV23 + 1800);
    store_close(s);
}
END_TEST

START_TEST(test_grant_of_a_login_never_shortens_a_longer_grant)
{
    use_tz("UTC0");
    struct store *s = open_store();
    char err[256];
    ck_assert_int_eq(popauth_add(s, "192.0.2.10", "boss", 7 * 86400, "cli", T_NOV23 - 3600,
                                 err, sizeof err), 0);
    ck_assert_int_eq(grant_line(s, "Nov 22 23:50:00" DOVECOT_REST, 1800, T_NOV23, NULL), 1);
    ck_assert(lookup(s, "192.0.2.10", 128, T_NOV23 + 86400));
    store_close(s);
}
END_TEST

static Suite *popauth_suite(void)
{
    Suite *s = suite_create("popauth");
    TCase *tc = tcase_create("table");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_add_then_list_shows_the_grant);
    tcase_add_test(tc, test_add_records_the_source_and_no_user);
    tcase_add_test(tc, test_adding_again_replaces_the_older_grant);
    tcase_add_test(tc, test_cli_add_sets_expiry_exactly_even_shorter);
    tcase_add_test(tc, test_login_from_log_never_shortens_a_grant);
    tcase_add_test(tc, test_del_removes_the_grant_and_counts);
    tcase_add_test(tc, test_del_rejects_an_invalid_ip);
    tcase_add_test(tc, test_lookup_finds_a_live_grant_and_its_user);
    tcase_add_test(tc, test_expiry_is_enforced_at_lookup);
    tcase_add_test(tc, test_list_hides_expired_grants_unless_asked);
    tcase_add_test(tc, test_list_is_ordered_by_address);
    tcase_add_test(tc, test_purge_removes_only_expired_grants);
    tcase_add_test(tc, test_ipv4_mapped_address_is_stored_as_ipv4);
    tcase_add_test(tc, test_ipv6_grant_covers_the_clients_slash64_when_prefix_is_64);
    tcase_add_test(tc, test_ipv6_grant_is_exact_when_prefix_is_128);
    tcase_add_test(tc, test_ipv4_grant_is_exact_whatever_the_prefix);
    tcase_add_test(tc, test_ipv4_grant_never_covers_an_ipv6_client_whose_prefix_holds_it);
    tcase_add_test(tc, test_add_rejects_an_invalid_ip);
    tcase_add_test(tc, test_add_escapes_the_bad_ip_in_its_error);
    tcase_add_test(tc, test_add_rejects_a_ttl_that_is_not_positive);
    tcase_add_test(tc, test_every_change_bumps_the_generation);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_cache_sees_a_grant_added_through_another_connection);
    tcase_add_test(tc, test_cache_loads_existing_grants_at_start);
    tcase_add_test(tc, test_cache_refresh_reloads_before_returning);
    tcase_add_test(tc, test_cache_enforces_expiry_at_match);
    tcase_add_test(tc, test_cache_applies_the_ipv6_prefix_and_ipv4_exactness);
    tcase_add_test(tc, test_cache_match_truncates_the_user_safely);
    tcase_add_test(tc, test_cache_survives_a_database_that_appears_later);
    tcase_add_test(tc, test_cache_keeps_its_grants_when_the_database_goes_away);
    tcase_add_test(tc, test_cache_follows_a_database_replaced_by_a_new_file);
    tcase_add_test(tc, test_cache_match_is_false_for_a_null_cache);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_dovecot_imap_login);
    tcase_add_test(tc, test_parse_dovecot_pop3_login);
    tcase_add_test(tc, test_parse_dovecot_old_format_with_mapped_rip);
    tcase_add_test(tc, test_parse_dovecot_with_pid_and_iso_timestamp);
    tcase_add_test(tc, test_parse_dovecot_own_log_file);
    tcase_add_test(tc, test_parse_dovecot_disconnected_is_not_a_login);
    tcase_add_test(tc, test_parse_dovecot_aborted_login_is_not_a_login);
    tcase_add_test(tc, test_parse_dovecot_auth_failure_is_not_a_login);
    tcase_add_test(tc, test_parse_dovecot_submission_login_is_not_a_login);
    tcase_add_test(tc, test_parse_dovecot_managesieve_login_is_not_a_login);
    tcase_add_test(tc, test_parse_courier_pop3d_login);
    tcase_add_test(tc, test_parse_courier_imapd_login);
    tcase_add_test(tc, test_parse_courier_ssl_variants);
    tcase_add_test(tc, test_parse_courier_login_failed_is_not_a_login);
    tcase_add_test(tc, test_parse_qpopper_pop_login);
    tcase_add_test(tc, test_parse_qpopper_stats);
    tcase_add_test(tc, test_parse_qpopper_failures_and_malformed_stats_are_not_logins);
    tcase_add_test(tc, test_parse_ignores_login_text_inside_another_programs_message);
    tcase_add_test(tc, test_parse_rejects_garbage);
    tcase_add_test(tc, test_parse_rejects_an_address_longer_than_any_ip);
    tcase_add_test(tc, test_parse_truncates_a_long_user_safely);
    tcase_add_test(tc, test_parse_rejects_a_huge_line);
    tcase_add_test(tc, test_parse_leaves_out_untouched_when_not_a_login);
    suite_add_tcase(s, tc);

    tc = tcase_create("time");
    tcase_add_test(tc, test_time_of_a_syslog_line_is_local_time_this_year);
    tcase_add_test(tc, test_time_of_a_syslog_line_with_a_space_padded_day);
    tcase_add_test(tc, test_time_of_an_rfc3339_line_uses_its_offset_not_tz);
    tcase_add_test(tc, test_time_of_an_iso_line_with_z_or_a_compact_offset);
    tcase_add_test(tc, test_time_of_an_iso_line_without_offset_is_local_time);
    tcase_add_test(tc, test_time_of_a_line_in_dovecots_own_log_file);
    tcase_add_test(tc, test_time_of_a_line_in_dovecots_own_log_file_with_a_year);
    tcase_add_test(tc, test_time_of_a_dec_31_line_read_on_jan_1_is_last_year);
    tcase_add_test(tc, test_time_of_a_jan_1_line_read_just_before_it_is_next_year);
    tcase_add_test(tc, test_time_of_a_line_more_than_a_day_ahead_is_last_year);
    tcase_add_test(tc, test_time_of_feb_29_is_in_the_last_leap_year);
    tcase_add_test(tc, test_time_is_zero_without_a_readable_timestamp);
    suite_add_tcase(s, tc);

    tc = tcase_create("grant");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_grant_skips_a_week_old_login_read_from_the_start);
    tcase_add_test(tc, test_grant_skips_a_login_exactly_one_ttl_old);
    tcase_add_test(tc, test_grant_of_a_recent_login_expires_ttl_after_the_login);
    tcase_add_test(tc, test_grant_of_a_future_dated_login_is_clamped_to_now);
    tcase_add_test(tc, test_grant_of_an_undated_login_counts_from_now);
    tcase_add_test(tc, test_grant_of_a_login_never_shortens_a_longer_grant);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* the cache's incident lines go to stderr unless a test captures them */
    log_open("check_popauth", LOG_TO_STDERR, NULL);
    SRunner *sr = srunner_create(popauth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
