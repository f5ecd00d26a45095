/* Unit tests for lib/score.c: weights add up to a score, thresholds map it
 * to an action, early thresholds act at RCPT only when they refuse, and the
 * reply text is safe whatever a blocklist's TXT record says. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "score.h"

static struct ruleset *parse_ok(const char *text)
{
    struct ruleset *rs = rules_new();
    char err[512];
    int rc = rules_parse(rs, "t.rules", text, strlen(text), err, sizeof err);
    ck_assert_msg(rc == 0, "parse failed: %s", err);
    return rs;
}

static struct verdict_lookup lk(const char *zone, const char *kind, const char *subject,
                                const char *query, const char *outcome, double weight,
                                const char *txt)
{
    struct verdict_lookup l = {
        .zone = (char *)zone, .kind = (char *)kind, .subject = (char *)subject,
        .query = (char *)query, .outcome = (char *)outcome, .answer = (char *)"127.0.0.2",
        .txt = (char *)txt, .ttl = 60, .weight = weight,
    };
    return l;
}

static struct ip client;
static struct rules_input input(void)
{
    ip_parse("192.0.2.9", &client);
    struct rules_input in = { .client = &client, .helo = "mx.example.org",
                              .sender_local = "a", .sender_domain = "example.org" };
    return in;
}

START_TEST(test_listing_weights_and_score_rules_add_up_to_the_threshold)
{
    struct ruleset *rs = parse_ok("score 2 sender example.org\n"
                                  "threshold 5 tag\nthreshold 10 reject\n");
    struct verdict_lookup l[] = {
        lk("a.test", "ip", "client", "9.2.0.192.a.test", "listed", 4, NULL),
        lk("b.test", "ip", "client", "9.2.0.192.b.test", "clean", 0, NULL),
    };
    struct rules_input in = input();
    struct score_result r;
    score_eval(rs, &in, l, 2, false, "192.0.2.9", &r);
    ck_assert(r.total == 6);
    ck_assert(r.rules == 2);
    ck_assert_uint_eq(r.rule_hits, 1);
    ck_assert_int_eq(r.action, VERDICT_TAG);
    ck_assert_ptr_nonnull(r.threshold);
    ck_assert(r.threshold->score == 5);
    l[1].outcome = "listed";
    l[1].weight = 4;
    score_eval(rs, &in, l, 2, false, "192.0.2.9", &r);
    ck_assert(r.total == 10);
    ck_assert_int_eq(r.action, VERDICT_REJECT);
    ck_assert_int_eq(r.code, 550);
    ck_assert_str_eq(r.xcode, "5.7.1");
    rules_free(rs);
}
END_TEST

START_TEST(test_negative_score_rule_keeps_a_listed_partner_below_the_threshold)
{
    struct ruleset *rs = parse_ok("score -20 client 192.0.2.0/24\nthreshold 5 reject\n");
    struct verdict_lookup l[] = { lk("a.test", "ip", "client", "q", "listed", 8, NULL) };
    struct rules_input in = input();
    struct score_result r;
    score_eval(rs, &in, l, 1, false, "192.0.2.9", &r);
    ck_assert(r.total == -12);
    ck_assert_int_eq(r.action, VERDICT_ACCEPT);
    ck_assert_ptr_null(r.threshold);
    rules_free(rs);
}
END_TEST

START_TEST(test_at_rcpt_only_early_refusing_thresholds_act)
{
    struct ruleset *rs = parse_ok("threshold 3 tag early\nthreshold 8 reject\n"
                                  "threshold 12 tempfail early\n");
    struct verdict_lookup l[] = { lk("a.test", "ip", "client", "q", "listed", 9, NULL) };
    struct rules_input in = input();
    struct score_result r;
    /* 9 reaches the non-early reject: not at RCPT; the early tag never acts there */
    score_eval(rs, &in, l, 1, true, "192.0.2.9", &r);
    ck_assert_int_eq(r.action, VERDICT_ACCEPT);
    score_eval(rs, &in, l, 1, false, "192.0.2.9", &r);
    ck_assert_int_eq(r.action, VERDICT_REJECT);
    l[0].weight = 13;
    score_eval(rs, &in, l, 1, true, "192.0.2.9", &r);
    ck_assert_int_eq(r.action, VERDICT_TEMPFAIL);
    ck_assert_int_eq(r.code, 451);
    ck_assert_str_eq(r.xcode, "4.7.1");
    ck_assert_msg(strncmp(r.text, "Try again later", 15) == 0, "%s", r.text);
    rules_free(rs);
}
END_TEST

START_TEST(test_default_reply_names_client_zone_and_txt_like_postscreen)
{
    struct ruleset *rs = parse_ok("threshold 5 reject\n");
    struct verdict_lookup l[] = {
        lk("small.test", "ip", "client", "q1", "listed", 5, "small reason"),
        lk("big.test", "ip", "client", "q2", "listed", 7, "see http://big.test/q?192.0.2.9"),
    };
    struct rules_input in = input();
    struct score_result r;
    score_eval(rs, &in, l, 2, false, "192.0.2.9", &r);
    ck_assert_str_eq(r.text, "Service unavailable; client [192.0.2.9] blocked using big.test; "
                             "see http://big.test/q?192.0.2.9");
    rules_free(rs);
}
END_TEST

START_TEST(test_domain_listing_reply_names_the_identity)
{
    struct ruleset *rs = parse_ok("threshold 5 reject\n");
    struct verdict_lookup l[] = {
        lk("dbl.test", "domain", "helo,sender", "spam.example.dbl.test", "listed", 6, NULL),
    };
    struct rules_input in = input();
    struct score_result r;
    score_eval(rs, &in, l, 1, false, "192.0.2.9", &r);
    ck_assert_str_eq(r.text,
                     "Service unavailable; helo,sender spam.example blocked using dbl.test");
    rules_free(rs);
}
END_TEST

START_TEST(test_hostile_txt_cannot_inject_into_the_reply)
{
    struct ruleset *rs = parse_ok("threshold 1 reject\n");
    struct verdict_lookup l[] = {
        lk("a.test", "ip", "client", "q", "listed", 2, "100%\r\n250 ok\x01\xc3\xa9"),
    };
    struct rules_input in = input();
    struct score_result r;
    score_eval(rs, &in, l, 1, false, "192.0.2.9", &r);
    ck_assert_ptr_null(strchr(r.text, '%'));
    ck_assert_ptr_null(strchr(r.text, '\r'));
    ck_assert_ptr_null(strchr(r.text, '\n'));
    for (const unsigned char *p = (const unsigned char *)r.text; *p; p++)
        ck_assert_msg(*p >= 0x20 && *p < 0x7f, "byte 0x%02x in reply", *p);
    ck_assert_msg(strstr(r.text, "100?") != NULL, "%s", r.text);
    rules_free(rs);
}
END_TEST

START_TEST(test_threshold_reply_text_and_code_win)
{
    struct ruleset *rs = parse_ok("threshold 4 reject reply \"554 5.7.1 Go away\"\n");
    struct verdict_lookup l[] = { lk("a.test", "ip", "client", "q", "listed", 4, "txt") };
    struct rules_input in = input();
    struct score_result r;
    score_eval(rs, &in, l, 1, false, "192.0.2.9", &r);
    ck_assert_int_eq(r.code, 554);
    ck_assert_str_eq(r.xcode, "5.7.1");
    ck_assert_str_eq(r.text, "Go away");
    rules_free(rs);
}
END_TEST

START_TEST(test_score_without_listing_gets_a_score_reply)
{
    struct ruleset *rs = parse_ok("spf fail 6\nthreshold 5 reject\n");
    struct verdict_lookup l[] = { lk("spf", "spf", "mailfrom", "example.org", "fail", 6, NULL) };
    struct rules_input in = input();
    struct score_result r;
    score_eval(rs, &in, l, 1, false, "192.0.2.9", &r);
    ck_assert_int_eq(r.action, VERDICT_REJECT);
    ck_assert_str_eq(r.text, "Message refused (kanjiki): spam score 6.0");
    rules_free(rs);
}
END_TEST

START_TEST(test_no_thresholds_means_accept)
{
    struct ruleset *rs = parse_ok("score 50 client 0.0.0.0/0\n");
    struct rules_input in = input();
    struct score_result r;
    score_eval(rs, &in, NULL, 0, false, "192.0.2.9", &r);
    ck_assert(r.total == 50);
    ck_assert_int_eq(r.action, VERDICT_ACCEPT);
    ck_assert_int_eq(r.code, 0);
    rules_free(rs);
}
END_TEST

START_TEST(test_reply_safe_truncates_and_replaces)
{
    char out[8];
    score_reply_safe("abc\x7f" "defghij", out, sizeof out);
    ck_assert_str_eq(out, "abc?def");
    score_reply_safe(NULL, out, sizeof out);
    ck_assert_str_eq(out, "");
}
END_TEST

static Suite *score_suite(void)
{
    Suite *s = suite_create("score");
    TCase *t = tcase_create("score");
    tcase_add_test(t, test_listing_weights_and_score_rules_add_up_to_the_threshold);
    tcase_add_test(t, test_negative_score_rule_keeps_a_listed_partner_below_the_threshold);
    tcase_add_test(t, test_at_rcpt_only_early_refusing_thresholds_act);
    tcase_add_test(t, test_default_reply_names_client_zone_and_txt_like_postscreen);
    tcase_add_test(t, test_domain_listing_reply_names_the_identity);
    tcase_add_test(t, test_hostile_txt_cannot_inject_into_the_reply);
    tcase_add_test(t, test_threshold_reply_text_and_code_win);
    tcase_add_test(t, test_score_without_listing_gets_a_score_reply);
    tcase_add_test(t, test_no_thresholds_means_accept);
    tcase_add_test(t, test_reply_safe_truncates_and_replaces);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(score_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
