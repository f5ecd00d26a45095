/* Unit tests for lib/snowshoe.c: cluster signals over the sliding window
 * (block IPs, new domains, HELOs, repeated text, /16 spread, domain spread),
 * window arithmetic, shared platforms counted by sender domain, decaying
 * spam memory, aged domains, the per-message cap, the default actions and
 * bounded memory. The clock is the messages' own. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules.h"
#include "snowshoe.h"

#define HOUR (3600LL * 1000)
#define DAY (24 * HOUR)
#define WEEK (7 * DAY)
#define T0 (1700000000000LL)

/* The action the default snowshoe thresholds give a result. */
static enum verdict_action default_action(const struct snowshoe_result *r)
{
    const struct rules_threshold *t = rules_snowshoe_threshold_for(NULL, r->score, r->cluster);
    return t ? t->action : VERDICT_ACCEPT;
}

static struct snowshoe *mk(struct cidrset *plat)
{
    struct snowshoe_cfg c;
    snowshoe_cfg_defaults(&c);
    c.platform_nets = plat;
    return snowshoe_new(&c);
}

static bool has(const struct snowshoe_result *r, const char *signal)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->c[i].signal, signal))
            return true;
    return false;
}

static double weight(const struct snowshoe_result *r, const char *signal)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->c[i].signal, signal))
            return r->c[i].weight;
    return 0;
}

/* One message from ip with a sender domain and HELO of its own. */
static void msg(struct snowshoe *s, int64_t t, const char *ip, const char *helo,
                const char *ptr, const char *dom, const char *subject,
                struct snowshoe_result *r)
{
    struct ip a;
    ck_assert_int_eq(ip_parse(ip, &a), 0);
    char from[300];
    snprintf(from, sizeof from, "%s", dom);
    struct snowshoe_msg m = {
        .time_ms = t, .client = &a, .helo = helo, .ptr = ptr, .ptr_confirmed = ptr != NULL,
        .env_domain = dom, .from_domain = from, .msgid_domain = dom, .subject = subject,
    };
    snowshoe_eval(s, &m, r);
}

/* The snowshoe pattern of the issue: a new IP, a new random domain and a
 * new *.localhost HELO for every message, all in one /24. */
static void burst(struct snowshoe *s, int64_t t, int64_t step, int n, const char *net,
                  struct snowshoe_result *last)
{
    for (int i = 0; i < n; i++) {
        char ip[64], helo[64], dom[64];
        snprintf(ip, sizeof ip, "%s.%d", net, 10 + i);
        snprintf(helo, sizeof helo, "ary%03d.localhost", 50 + i);
        snprintf(dom, sizeof dom, "q%dz%dx%dk.pink", 7 * i + 3, i, 9 - i);
        msg(s, t + i * step, ip, helo, NULL, dom, "Your parcel is waiting", last);
    }
}

START_TEST(test_snowshoe_burst_builds_up_to_a_cluster_reject)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    burst(s, T0, 10 * 60 * 1000, 2, "203.0.113", &r);
    ck_assert(!r.cluster);   /* two messages are no cluster yet */
    ck_assert(r.msg_score <= SNOWSHOE_MSG_CAP);
    ck_assert_int_ne(default_action(&r), VERDICT_REJECT);
    burst(s, T0 + HOUR, 10 * 60 * 1000, 5, "203.0.113", &r);   /* 7 IPs, 7 domains */
    ck_assert(r.cluster);
    ck_assert(has(&r, "block_ips"));
    ck_assert(has(&r, "block_new_domains"));
    ck_assert(has(&r, "block_helos"));
    ck_assert_str_eq(r.block, "203.0.113.0/24");
    ck_assert_msg(r.score >= SNOWSHOE_REJECT, "score %.2f", r.score);
    ck_assert_int_eq(default_action(&r), VERDICT_REJECT);
    snowshoe_free(s);
}
END_TEST

START_TEST(test_the_same_burst_spread_beyond_the_window_is_no_cluster)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    burst(s, T0, 91 * DAY, 7, "203.0.113", &r);   /* one message a quarter */
    ck_assert(!has(&r, "block_ips"));
    ck_assert(!has(&r, "block_new_domains"));
    ck_assert(!has(&r, "block_history"));
    ck_assert(!r.cluster);
    ck_assert_int_lt(default_action(&r), VERDICT_TEMPFAIL);
    snowshoe_free(s);
}
END_TEST

START_TEST(test_window_edges_count_inside_only)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    /* hosts without PTR names: counted by their /24 */
    msg(s, T0, "198.51.100.1", "a.example", NULL, "one.example", "x", &r);
    msg(s, T0 + WEEK, "198.51.100.2", "b.example", NULL, "two.example", "y", &r);
    /* exactly one window after the first: still inside (<= window) */
    msg(s, T0 + WEEK, "198.51.100.3", "c.example", NULL, "three.example", "z", &r);
    ck_assert_msg(has(&r, "block_ips"), "3 IPs within 7 days");
    ck_assert(!has(&r, "block_burst"));   /* the short window (24 h) holds two */
    msg(s, T0 + WEEK + 1, "198.51.100.4", "d.example", NULL, "four.example", "w", &r);
    ck_assert_msg(has(&r, "block_ips"), "2, 3 and 4 are inside");
    ck_assert(has(&r, "block_burst"));    /* 3 IPs, 3 new domains within 24 h */
    msg(s, T0 + 2 * WEEK + 2, "198.51.100.5", "e.example", NULL, "five.example", "v", &r);
    ck_assert_msg(!has(&r, "block_ips"), "everything else is older than 7 days");
    ck_assert_msg(has(&r, "block_history"), "but inside the 30-day history");
    snowshoe_free(s);
}
END_TEST

START_TEST(test_shared_platform_is_counted_by_sender_domain_not_block)
{
    struct cidrset *plat = cidrset_new();
    char err[128];
    ck_assert_int_eq(cidrset_add_str(plat, "209.85.128.0/17", err, sizeof err), 0);
    struct snowshoe *s = mk(plat);
    struct snowshoe_result r;
    burst(s, T0, 60 * 1000, 8, "209.85.220", &r);
    ck_assert(r.platform);
    ck_assert(!has(&r, "block_ips"));
    ck_assert(!has(&r, "block_new_domains"));
    ck_assert(!has(&r, "wide_spread"));
    ck_assert_msg(strncmp(r.block, "platform:", 9) == 0, "%s", r.block);
    ck_assert_int_lt(default_action(&r), VERDICT_TEMPFAIL);
    snowshoe_free(s);
    cidrset_free(plat);
}
END_TEST

START_TEST(test_legitimate_bulk_farm_with_one_domain_is_not_spam)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    for (int i = 0; i < 30; i++) {
        char ip[32], name[64];
        snprintf(ip, sizeof ip, "192.0.2.%d", 10 + i % 8);
        snprintf(name, sizeof name, "out%d.mail.example.com", i % 8);
        msg(s, T0 + i * 60000LL, ip, name, name, "example.com", "Your monthly statement", &r);
    }
    /* HELO = confirmed PTR name: counted by the operator's domain, where
     * many addresses are normal */
    ck_assert(r.identified);
    ck_assert_str_eq(r.block, "operator:example.com");
    ck_assert(!has(&r, "block_ips"));
    ck_assert(!has(&r, "block_new_domains"));
    ck_assert_msg(default_action(&r) == VERDICT_ACCEPT, "score %.2f", r.score);
    /* the same farm without PTR names is seen as a block of many IPs, but
     * one domain that does not rotate stays below the thresholds */
    for (int i = 0; i < 30; i++) {
        char ip[32], name[64];
        snprintf(ip, sizeof ip, "192.0.2.%d", 100 + i % 8);
        snprintf(name, sizeof name, "out%d.mail.example.net", i % 8);
        msg(s, T0 + DAY + i * 60000LL, ip, name, NULL, "example.net", "Statement", &r);
    }
    ck_assert(has(&r, "block_ips"));
    ck_assert(!has(&r, "block_new_domains"));
    ck_assert_msg(default_action(&r) < VERDICT_TEMPFAIL, "score %.2f", r.score);
    snowshoe_free(s);
}
END_TEST

START_TEST(test_spam_memory_decays_with_time)
{
    struct snowshoe *s = mk(NULL);
    struct ip a;
    ip_parse("198.51.100.9", &a);
    struct snowshoe_msg m = { .time_ms = T0, .client = &a, .helo = "x.example",
                              .env_domain = "spam.example" };
    struct snowshoe_result r;
    snowshoe_eval(s, &m, &r);
    snowshoe_spam(s, &m, &r);
    snowshoe_spam(s, &m, &r);
    msg(s, T0 + HOUR, "198.51.100.77", "h.example", NULL, "other.example", "s", &r);
    double w1 = weight(&r, "block_memory");
    ck_assert_msg(w1 > 1.9 && w1 <= 2.0, "memory after 1 h: %.3f", w1);
    msg(s, T0 + WEEK, "198.51.100.77", "h.example", NULL, "other.example", "s", &r);
    double w2 = weight(&r, "block_memory");
    ck_assert_msg(w2 > 0.95 && w2 < 1.05, "one half-life (7 days) later: %.3f", w2);
    msg(s, T0 + 5 * WEEK, "198.51.100.77", "h.example", NULL, "other.example", "s", &r);
    ck_assert(!has(&r, "block_memory"));   /* a month later: forgotten */
    /* another block never had any */
    msg(s, T0 + HOUR, "198.51.101.1", "h.example", NULL, "other.example", "s", &r);
    ck_assert(!has(&r, "block_memory"));
    snowshoe_free(s);
}
END_TEST

START_TEST(test_a_slow_block_is_caught_by_its_long_history)
{
    /* one message every 3 weeks from a new address of the block: never 3
     * IPs within 7 days, but 3 and then 5 within the 90-day history */
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    burst(s, T0, 21 * DAY, 2, "198.51.100", &r);
    ck_assert(!has(&r, "block_history"));
    burst(s, T0 + 42 * DAY, 21 * DAY, 1, "198.51.100", &r);   /* .10 again: 2 IPs */
    ck_assert(!has(&r, "block_history"));
    msg(s, T0 + 63 * DAY, "198.51.100.40", "ary1.localhost", NULL, "zq8x1kv.pink", "a", &r);
    ck_assert(has(&r, "block_history"));
    ck_assert(!has(&r, "block_ips"));
    ck_assert(r.cluster);
    double w3 = weight(&r, "block_history");
    msg(s, T0 + 70 * DAY, "198.51.100.41", "ary2.localhost", NULL, "kq9v2zx.pink", "b", &r);
    msg(s, T0 + 80 * DAY, "198.51.100.42", "ary3.localhost", NULL, "vx7q3kz.pink", "c", &r);
    ck_assert(has(&r, "block_history"));
    ck_assert_msg(weight(&r, "block_history") > w3, "5 IPs weigh more than 3");
    snowshoe_free(s);
}
END_TEST

START_TEST(test_a_domain_called_spam_is_remembered_when_it_comes_back)
{
    struct snowshoe *s = mk(NULL);
    struct ip a;
    ip_parse("198.51.100.9", &a);
    struct snowshoe_msg m = { .time_ms = T0, .client = &a, .env_domain = "throwaway.example" };
    struct snowshoe_result r;
    snowshoe_eval(s, &m, &r);
    ck_assert(!has(&r, "domain_spam"));
    snowshoe_spam(s, &m, &r);
    msg(s, T0 + 3 * DAY, "203.0.113.50", "x.example", NULL, "throwaway.example", "s", &r);
    ck_assert(has(&r, "domain_spam"));
    ck_assert(r.cluster);
    msg(s, T0 + 100 * DAY, "203.0.113.51", "x.example", NULL, "throwaway.example", "s", &r);
    ck_assert(!has(&r, "domain_spam"));   /* older than the 90-day history */
    snowshoe_free(s);
}
END_TEST

START_TEST(test_per_message_signals_alone_never_reach_a_reject)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    /* everything wrong with one message, but no cluster */
    msg(s, T0, "198.51.100.5", "[198.51.100.5]", NULL, "zq8x7k2v9w.pink", "hi", &r);
    ck_assert(r.msg_score <= SNOWSHOE_MSG_CAP);
    ck_assert(!r.cluster);
    ck_assert_int_eq(default_action(&r), VERDICT_ACCEPT);
    ck_assert(has(&r, "no_ptr"));
    ck_assert(has(&r, "helo"));
    snowshoe_free(s);
}
END_TEST

START_TEST(test_aged_clean_domain_is_trusted)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    for (int d = 0; d < 8; d++)
        msg(s, T0 + d * DAY, "192.0.2.1", "mx.example.org", "mx.example.org", "example.org",
            "news", &r);
    ck_assert(has(&r, "aged_domain"));
    ck_assert(weight(&r, "aged_domain") < 0);
    ck_assert(!has(&r, "new_domain"));
    snowshoe_free(s);
}
END_TEST

START_TEST(test_same_subject_from_many_blocks_and_domains)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    msg(s, T0, "198.51.100.1", "a.example", "a.example", "one.example", "Claim your prize now", &r);
    msg(s, T0 + 1000, "203.0.113.1", "b.example", "b.example", "two.example", "Claim your prize now!", &r);
    ck_assert(!has(&r, "same_text"));
    msg(s, T0 + 2000, "192.0.2.1", "c.example", "c.example", "three.example", "claim YOUR prize 4 now", &r);
    ck_assert(has(&r, "same_text"));
    snowshoe_free(s);
}
END_TEST

START_TEST(test_suspicious_blocks_spread_over_a_16)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    msg(s, T0, "198.18.1.5", "x1.localhost", NULL, "a1b2c3.pink", "a", &r);
    msg(s, T0 + 1000, "198.18.2.5", "x2.localhost", NULL, "d4e5f6.pink", "b", &r);
    ck_assert(!has(&r, "wide_spread"));
    msg(s, T0 + 2000, "198.18.3.5", "x3.localhost", NULL, "g7h8i9.pink", "c", &r);
    ck_assert(has(&r, "wide_spread"));
    snowshoe_free(s);
}
END_TEST

START_TEST(test_memory_stays_bounded_under_a_flood_of_blocks)
{
    struct snowshoe_cfg c;
    snowshoe_cfg_defaults(&c);
    c.max_blocks = 100;
    c.max_domains = 200;
    c.max_prints = 50;
    struct snowshoe *s = snowshoe_new(&c);
    struct snowshoe_result r;
    for (int i = 0; i < 5000; i++) {
        char ip[32], dom[40], subj[40];
        snprintf(ip, sizeof ip, "10.%d.%d.1", i / 256, i % 256);
        snprintf(dom, sizeof dom, "d%d.example", i);
        snprintf(subj, sizeof subj, "subject number %c%c%c", 'a' + i % 26, 'a' + i / 26 % 26,
                 'a' + i / 676 % 26);
        msg(s, T0 + i, ip, "h.example", NULL, dom, subj, &r);
    }
    struct snowshoe_stats st;
    snowshoe_get_stats(s, &st);
    ck_assert_uint_le(st.blocks, 100);
    ck_assert_uint_le(st.domains, 200);
    ck_assert_uint_le(st.prints, 50);
    ck_assert_uint_gt(st.bytes, 0);
    snowshoe_free(s);
}
END_TEST

START_TEST(test_ipv6_blocks_are_48s)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    msg(s, T0, "2001:db8:1:1::5", "a.localhost", NULL, "k3j4h5.pink", "a", &r);
    ck_assert_str_eq(r.block, "2001:db8:1::/48");
    msg(s, T0 + 1, "2001:db8:1:2::5", "b.localhost", NULL, "m6n7b8.pink", "b", &r);
    msg(s, T0 + 2, "2001:db8:1:ffff::9", "c.localhost", NULL, "z9x8c7.pink", "c", &r);
    ck_assert(has(&r, "block_ips"));
    msg(s, T0 + 3, "2001:db8:2::1", "d.localhost", NULL, "p0o9i8.pink", "d", &r);
    ck_assert(!has(&r, "block_ips"));   /* another /48 */
    snowshoe_free(s);
}
END_TEST

START_TEST(test_state_round_trips_and_damaged_rows_are_refused)
{
    struct snowshoe *s = mk(NULL);
    struct snowshoe_result r;
    burst(s, T0, 60000, 4, "203.0.113", &r);
    struct snowshoe_rows rows;
    snowshoe_export(s, true, &rows);
    ck_assert_uint_gt(rows.n, 4);
    struct snowshoe_rows again;
    snowshoe_export(s, true, &again);   /* nothing changed since */
    ck_assert_uint_eq(again.n, 0);
    snowshoe_rows_free(&again);
    struct snowshoe *t = mk(NULL);
    size_t blocks = 0;
    for (size_t i = 0; i < rows.n; i++) {
        ck_assert_int_eq(snowshoe_import(t, rows.v[i].kind, rows.v[i].key, rows.v[i].name,
                                         rows.v[i].data, rows.v[i].len), 0);
        if (rows.v[i].kind == SNOWSHOE_KIND_BLOCK) {
            blocks++;
            ck_assert_str_eq(rows.v[i].name, "203.0.113.0/24");
            struct snowshoe_block_info bi;
            ck_assert_int_eq(snowshoe_block_info(rows.v[i].data, rows.v[i].len, T0 + HOUR,
                                                 WEEK, WEEK, &bi), 0);
            ck_assert_uint_eq(bi.ips, 4);
            ck_assert_uint_eq(bi.messages, 4);
        }
    }
    ck_assert_uint_eq(blocks, 1);
    /* the restored detector knows the block: a fifth address is the fifth IP */
    msg(t, T0 + HOUR, "203.0.113.99", "z.localhost", NULL, "zz9q8x7w.pink", "s", &r);
    ck_assert(has(&r, "block_ips"));
    for (size_t i = 0; i < r.n; i++)
        if (!strcmp(r.c[i].signal, "block_ips"))
            ck_assert_msg(strstr(r.c[i].detail, "5 IPs") != NULL, "%s", r.c[i].detail);
    /* damaged or foreign rows: refused, never read out of bounds */
    struct snowshoe_row *b = NULL;
    for (size_t i = 0; i < rows.n; i++)
        if (rows.v[i].kind == SNOWSHOE_KIND_BLOCK)
            b = &rows.v[i];
    ck_assert_int_eq(snowshoe_import(t, SNOWSHOE_KIND_BLOCK, 1, "x", b->data, b->len - 1), -1);
    unsigned char *bad = malloc(b->len);
    memcpy(bad, b->data, b->len);
    memset(bad + b->len - 32, 0xff, 32);   /* ring position and count garbage */
    ck_assert_int_eq(snowshoe_import(t, SNOWSHOE_KIND_BLOCK, 2, "y", bad, b->len), -1);
    struct snowshoe_block_info bi;
    ck_assert_int_eq(snowshoe_block_info(bad, b->len, T0, WEEK, WEEK, &bi), -1);
    ck_assert_int_eq(snowshoe_import(t, 99, 3, "z", b->data, b->len), -1);
    free(bad);
    snowshoe_rows_free(&rows);
    snowshoe_free(s);
    snowshoe_free(t);
}
END_TEST

START_TEST(test_platform_list_file_errors_name_the_line)
{
    char path[] = "/tmp/kanjiki-plat-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("# comment\nnet 209.85.128.0/17\nptr .google.com  # trailing\n\nptr google.com\n", f);
    fclose(f);
    struct snowshoe_platforms p;
    char err[256];
    ck_assert_int_eq(snowshoe_platforms_load(path, &p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, ":5: a PTR suffix starts with '.'") != NULL, "%s", err);
    f = fopen(path, "w");
    fputs("net 209.85.128.0/17\nptr .google.com\nnet 2a00:1450:4000::/36\n", f);
    fclose(f);
    ck_assert_int_eq(snowshoe_platforms_load(path, &p, err, sizeof err), 0);
    ck_assert_uint_eq(p.nptrs, 1);
    ck_assert_str_eq(p.ptrs[0], ".google.com");
    ck_assert_ptr_null(p.ptrs[1]);
    struct ip a;
    ip_parse("209.85.220.41", &a);
    ck_assert(cidrset_contains(p.nets, &a));
    snowshoe_platforms_clear(&p);
    f = fopen(path, "w");
    fputs("host 1.2.3.4\n", f);
    fclose(f);
    ck_assert_int_eq(snowshoe_platforms_load(path, &p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, ":1: unknown entry 'host'") != NULL, "%s", err);
    unlink(path);
}
END_TEST

static Suite *snowshoe_suite(void)
{
    Suite *s = suite_create("snowshoe");
    TCase *t = tcase_create("snowshoe");
    tcase_add_test(t, test_snowshoe_burst_builds_up_to_a_cluster_reject);
    tcase_add_test(t, test_the_same_burst_spread_beyond_the_window_is_no_cluster);
    tcase_add_test(t, test_window_edges_count_inside_only);
    tcase_add_test(t, test_shared_platform_is_counted_by_sender_domain_not_block);
    tcase_add_test(t, test_legitimate_bulk_farm_with_one_domain_is_not_spam);
    tcase_add_test(t, test_spam_memory_decays_with_time);
    tcase_add_test(t, test_a_domain_called_spam_is_remembered_when_it_comes_back);
    tcase_add_test(t, test_a_slow_block_is_caught_by_its_long_history);
    tcase_add_test(t, test_per_message_signals_alone_never_reach_a_reject);
    tcase_add_test(t, test_aged_clean_domain_is_trusted);
    tcase_add_test(t, test_same_subject_from_many_blocks_and_domains);
    tcase_add_test(t, test_suspicious_blocks_spread_over_a_16);
    tcase_add_test(t, test_memory_stays_bounded_under_a_flood_of_blocks);
    tcase_add_test(t, test_ipv6_blocks_are_48s);
    tcase_add_test(t, test_state_round_trips_and_damaged_rows_are_refused);
    tcase_add_test(t, test_platform_list_file_errors_name_the_line);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(snowshoe_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
