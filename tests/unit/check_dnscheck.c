/* Unit tests for lib/dnscheck.c without a DNS server: which lookups a
 * connection starts for which identities, that one name is asked once,
 * what a transaction reset keeps, zone health (skip, expiry, recovery), and
 * that lookups that get no answer are degraded, never listed or clean. The
 * resolver points at a closed loopback port, so every query fails fast. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dnscheck.h"
#include "rules.h"

static const char *const dead_server[] = { "127.0.0.1:9" };

static struct dns *dead_dns(void)
{
    struct dns_config cfg = { .servers = dead_server, .nservers = 1, .timeout_ms = 200,
                              .tries = 1, .cache_max = 0, .neg_ttl_max = 0 };
    char err[256];
    struct dns *d = dns_new(&cfg, err, sizeof err);
    ck_assert_msg(d != NULL, "dns_new: %s", err);
    return d;
}

static struct ruleset *rules(const char *text)
{
    struct ruleset *rs = rules_new();
    char err[512];
    ck_assert_msg(rules_parse(rs, "t.rules", text, strlen(text), err, sizeof err) == 0, "%s",
                  err);
    return rs;
}

static const char *RULES =
    "zone a.test ip weight 3\n"
    "zone b.test ip weight 4\n"
    "zone d.test domain weight 5 check helo, sender\n"
    "zone f.test domain weight 5 check from\n"
    "zone u.test uri weight 6\n";

/* The queries a verdict records, as "zone:subject:query;..." */
static const char *recorded(struct dnscheck *dc)
{
    static char out[2048];
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    dnscheck_wait(dc);
    dnscheck_evidence(dc, v);
    out[0] = 0;
    for (size_t i = 0; i < v->nlookups; i++) {
        char one[400];
        snprintf(one, sizeof one, "%s%s:%s:%s", i ? ";" : "", v->lookups[i].zone,
                 v->lookups[i].subject, v->lookups[i].query);
        strncat(out, one, sizeof out - strlen(out) - 1);
    }
    verdict_free(v);
    return out;
}

START_TEST(test_client_starts_every_ip_zone_and_only_those)
{
    struct dns *d = dead_dns();
    struct ruleset *rs = rules(RULES);
    struct dnscheck *dc = dnscheck_new(d, rs, NULL, 500);
    struct ip a;
    ip_parse("192.0.2.1", &a);
    dnscheck_client(dc, &a);
    ck_assert_str_eq(recorded(dc), "a.test:client:1.2.0.192.a.test;b.test:client:1.2.0.192.b.test");
    dnscheck_free(dc);
    rules_free(rs);
    dns_free(d);
}
END_TEST

START_TEST(test_domain_zones_follow_their_check_list_and_ask_a_name_once)
{
    struct dns *d = dead_dns();
    struct ruleset *rs = rules(RULES);
    struct dnscheck *dc = dnscheck_new(d, rs, NULL, 500);
    dnscheck_domain(dc, "Mail.Example.ORG.", RULES_CHECK_HELO);
    dnscheck_domain(dc, "mail.example.org", RULES_CHECK_SENDER);   /* same name */
    dnscheck_domain(dc, "other.example", RULES_CHECK_FROM);
    ck_assert_str_eq(recorded(dc), "d.test:helo,sender:mail.example.org.d.test;"
                                   "f.test:from:other.example.f.test");
    dnscheck_free(dc);
    rules_free(rs);
    dns_free(d);
}
END_TEST

START_TEST(test_address_literals_and_bad_names_are_not_looked_up)
{
    struct dns *d = dead_dns();
    struct ruleset *rs = rules(RULES);
    struct dnscheck *dc = dnscheck_new(d, rs, NULL, 500);
    dnscheck_domain(dc, "[192.0.2.1]", RULES_CHECK_HELO);
    dnscheck_domain(dc, "192.0.2.1", RULES_CHECK_HELO);
    dnscheck_domain(dc, "exa..mple", RULES_CHECK_HELO);
    dnscheck_domain(dc, "", RULES_CHECK_SENDER);
    dnscheck_domain(dc, NULL, RULES_CHECK_SENDER);
    dnscheck_uri(dc, "not-an-ip", true);
    ck_assert_uint_eq(dnscheck_count(dc), 0);
    dnscheck_uri(dc, "192.0.2.99", true);
    dnscheck_uri(dc, "evil.example", false);
    ck_assert_str_eq(recorded(dc), "u.test:uri:99.2.0.192.u.test;u.test:uri:evil.example.u.test");
    dnscheck_free(dc);
    rules_free(rs);
    dns_free(d);
}
END_TEST

START_TEST(test_reset_keeps_client_and_helo_lookups)
{
    struct dns *d = dead_dns();
    struct ruleset *rs = rules(RULES);
    struct dnscheck *dc = dnscheck_new(d, rs, NULL, 500);
    struct ip a;
    ip_parse("2001:db8::1", &a);
    dnscheck_client(dc, &a);
    dnscheck_domain(dc, "h.example", RULES_CHECK_HELO);
    dnscheck_domain(dc, "h.example", RULES_CHECK_SENDER);
    dnscheck_domain(dc, "s.example", RULES_CHECK_SENDER);
    dnscheck_uri(dc, "l.example", false);
    ck_assert_uint_eq(dnscheck_count(dc), 5);
    dnscheck_reset(dc, false);   /* next transaction: sender, From:, links go */
    ck_assert_uint_eq(dnscheck_count(dc), 3);
    const char *r = recorded(dc);
    ck_assert_msg(strstr(r, "d.test:helo:h.example.d.test") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "s.example") == NULL && strstr(r, "u.test") == NULL, "%s", r);
    ck_assert_msg(strstr(r, "a.test:client:1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.a.test") != NULL, "%s", r);
    dnscheck_reset(dc, true);    /* a new HELO: its lookups go too */
    ck_assert_uint_eq(dnscheck_count(dc), 2);
    dnscheck_free(dc);
    rules_free(rs);
    dns_free(d);
}
END_TEST

START_TEST(test_unanswered_lookups_are_degraded_and_weigh_nothing)
{
    struct dns *d = dead_dns();
    struct ruleset *rs = rules(RULES);
    struct dnscheck *dc = dnscheck_new(d, rs, NULL, 300);
    struct ip a;
    ip_parse("192.0.2.1", &a);
    dnscheck_client(dc, &a);
    int64_t t0 = dns_now_ms();
    dnscheck_wait(dc);
    ck_assert_int_lt(dns_now_ms() - t0, 1500);   /* bounded by the deadline */
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    ck_assert(dnscheck_evidence(dc, v));
    ck_assert_uint_eq(v->nlookups, 2);
    for (size_t i = 0; i < v->nlookups; i++) {
        ck_assert_str_eq(v->lookups[i].outcome, "degraded");
        ck_assert(v->lookups[i].weight == 0);
    }
    verdict_free(v);
    dnscheck_free(dc);
    rules_free(rs);
    dns_free(d);
}
END_TEST

START_TEST(test_skipped_zone_is_recorded_as_skipped_without_a_query)
{
    struct dns *d = dead_dns();
    struct ruleset *rs = rules(RULES);
    struct dnscheck_health *h = dnscheck_health_new();
    dnscheck_health_skip(h, "A.test", dns_now_ms() + 60000, "answers 127.255.255.254");
    struct dnscheck *dc = dnscheck_new(d, rs, h, 300);
    struct ip a;
    ip_parse("192.0.2.1", &a);
    dnscheck_client(dc, &a);
    struct dns_stats before;
    dns_get_stats(d, &before);
    ck_assert_uint_eq(before.queries, 1);   /* b.test only */
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    dnscheck_wait(dc);
    dnscheck_evidence(dc, v);
    ck_assert_str_eq(v->lookups[0].zone, "a.test");
    ck_assert_str_eq(v->lookups[0].outcome, "skipped");
    ck_assert_str_eq(v->lookups[1].outcome, "degraded");
    verdict_free(v);
    dnscheck_free(dc);
    dnscheck_health_free(h);
    rules_free(rs);
    dns_free(d);
}
END_TEST

START_TEST(test_health_skip_expires_and_ok_clears_it)
{
    struct dnscheck_health *h = dnscheck_health_new();
    char why[64];
    ck_assert(!dnscheck_health_skipped(h, "z.test", 1000, why, sizeof why));
    dnscheck_health_skip(h, "z.test", 2000, "refused");
    ck_assert(dnscheck_health_skipped(h, "Z.TEST", 1999, why, sizeof why));
    ck_assert_str_eq(why, "refused");
    ck_assert(!dnscheck_health_skipped(h, "other.test", 1999, why, sizeof why));
    ck_assert(!dnscheck_health_skipped(h, "z.test", 2000, why, sizeof why));   /* expired */
    dnscheck_health_skip(h, "z.test", 5000, "again");
    ck_assert(dnscheck_health_skipped(h, "z.test", 3000, NULL, 0));
    dnscheck_health_ok(h, "z.test");
    ck_assert(!dnscheck_health_skipped(h, "z.test", 3000, NULL, 0));
    dnscheck_health_free(h);
    /* no health table: nothing is ever skipped */
    dnscheck_health_skip(NULL, "z.test", 5000, "x");
    ck_assert(!dnscheck_health_skipped(NULL, "z.test", 1, NULL, 0));
}
END_TEST

START_TEST(test_without_a_resolver_nothing_is_looked_up_or_recorded)
{
    struct ruleset *rs = rules(RULES);
    struct dnscheck *dc = dnscheck_new(NULL, rs, NULL, 300);
    struct ip a;
    ip_parse("192.0.2.1", &a);
    dnscheck_client(dc, &a);
    dnscheck_domain(dc, "x.example", RULES_CHECK_HELO);
    ck_assert_uint_eq(dnscheck_count(dc), 0);
    ck_assert_str_eq(recorded(dc), "");
    dnscheck_free(dc);
    dnscheck_free(NULL);
    rules_free(rs);
}
END_TEST

START_TEST(test_probe_of_a_silent_zone_is_unknown_not_broken)
{
    struct dns *d = dead_dns();
    struct ruleset *rs = rules(RULES);
    char why[300];
    int rc = dnscheck_probe(d, &rs->zones[0].z, dns_now_ms() + 300, why, sizeof why);
    ck_assert_int_eq(rc, -1);
    ck_assert_str_eq(why, "no answer in time for the test points");
    rules_free(rs);
    dns_free(d);
}
END_TEST

static Suite *dnscheck_suite(void)
{
    Suite *s = suite_create("dnscheck");
    TCase *t = tcase_create("dnscheck");
    tcase_set_timeout(t, 20);
    tcase_add_test(t, test_client_starts_every_ip_zone_and_only_those);
    tcase_add_test(t, test_domain_zones_follow_their_check_list_and_ask_a_name_once);
    tcase_add_test(t, test_address_literals_and_bad_names_are_not_looked_up);
    tcase_add_test(t, test_reset_keeps_client_and_helo_lookups);
    tcase_add_test(t, test_unanswered_lookups_are_degraded_and_weigh_nothing);
    tcase_add_test(t, test_skipped_zone_is_recorded_as_skipped_without_a_query);
    tcase_add_test(t, test_health_skip_expires_and_ok_clears_it);
    tcase_add_test(t, test_without_a_resolver_nothing_is_looked_up_or_recorded);
    tcase_add_test(t, test_probe_of_a_silent_zone_is_unknown_not_broken);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dnscheck_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
