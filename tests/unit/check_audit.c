/* Unit tests for lib/audit.c: the relay battery (nmap smtp-open-relay's 16
 * forms exactly, the extra ones, local-domain ones only when given), the
 * verdict of a test from its reply codes, banner software, and that every
 * finding a test can raise has a fix in the catalogue. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

static size_t battery(const char *const *locals, size_t nlocal, struct audit_test *t)
{
    struct audit_params p = { "antispam@example.org", "relaytest@example.net",
                              "mx.example.com", "192.0.2.25", locals, nlocal };
    return audit_battery(&p, t, AUDIT_MAX_TESTS);
}

START_TEST(test_nmap_forms_are_all_there_in_order)
{
    /* nmap's smtp-open-relay.nse (domain example.net, from antispam, ip
     * 192.0.2.25, srvname from the banner), its 16 MAIL/RCPT pairs */
    static const char *const want[16][2] = {
        { "<>", "<relaytest@example.net>" },
        { "<antispam@example.org>", "<relaytest@example.net>" },
        { "<antispam@mx.example.com>", "<relaytest@example.net>" },
        { "<antispam@[192.0.2.25]>", "<relaytest@example.net>" },
        { "<antispam@[192.0.2.25]>", "<relaytest%example.net@[192.0.2.25]>" },
        { "<antispam@[192.0.2.25]>", "<relaytest%example.net@mx.example.com>" },
        { "<antispam@[192.0.2.25]>", "<\"relaytest@example.net\">" },
        { "<antispam@[192.0.2.25]>", "<\"relaytest%example.net\">" },
        { "<antispam@[192.0.2.25]>", "<relaytest@example.net@[192.0.2.25]>" },
        { "<antispam@[192.0.2.25]>", "<\"relaytest@example.net\"@[192.0.2.25]>" },
        { "<antispam@[192.0.2.25]>", "<relaytest@example.net@mx.example.com>" },
        { "<antispam@[192.0.2.25]>", "<@[192.0.2.25]:relaytest@example.net>" },
        { "<antispam@[192.0.2.25]>", "<@mx.example.com:relaytest@example.net>" },
        { "<antispam@[192.0.2.25]>", "<example.net!relaytest>" },
        { "<antispam@[192.0.2.25]>", "<example.net!relaytest@[192.0.2.25]>" },
        { "<antispam@[192.0.2.25]>", "<example.net!relaytest@mx.example.com>" },
    };
    struct audit_test t[AUDIT_MAX_TESTS];
    size_t n = battery(NULL, 0, t);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t[i].nmap)
            continue;
        ck_assert_uint_lt(k, 16);
        ck_assert_str_eq(t[i].mail, want[k][0]);
        ck_assert_str_eq(t[i].rcpt, want[k][1]);
        k++;
    }
    ck_assert_uint_eq(k, 16);
    /* and more than nmap */
    ck_assert_uint_ge(n, 22);
    int extras = 0;
    for (size_t i = 0; i < n; i++) {
        extras += !t[i].nmap;
        if (!strcmp(t[i].id, "no_brackets")) {
            ck_assert_str_eq(t[i].mail, "antispam@example.org");
            ck_assert_str_eq(t[i].rcpt, "relaytest@example.net");
        }
        if (!strcmp(t[i].id, "trailing_dot"))
            ck_assert_str_eq(t[i].rcpt, "<relaytest@example.net.>");
        if (!strcmp(t[i].id, "mixed_case"))
            ck_assert_str_eq(t[i].rcpt, "<rElAyTeSt@eXaMpLe.nEt>");
        ck_assert_msg(strchr(t[i].id, ' ') == NULL, "ids are single words: %s", t[i].id);
    }
    ck_assert_int_ge(extras, 6);
}
END_TEST

START_TEST(test_local_domain_tests_only_with_local_domains)
{
    struct audit_test t[AUDIT_MAX_TESTS];
    size_t n0 = battery(NULL, 0, t);
    for (size_t i = 0; i < n0; i++)
        ck_assert_ptr_null(strstr(t[i].id, "local"));
    const char *locals[] = { "example.com", "example.edu" };
    size_t n = battery(locals, 2, t);
    ck_assert_uint_eq(n, n0 + 6);
    int forged = 0, percent = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(t[i].id, "forged_local_sender", 19)) {
            forged++;
            ck_assert(!strcmp(t[i].mail, "<postmaster@example.com>") ||
                      !strcmp(t[i].mail, "<postmaster@example.edu>"));
        }
        if (!strcmp(t[i].id, "percent_hack_local")) {
            percent++;
            ck_assert_str_eq(t[i].rcpt, "<relaytest%example.net@example.com>");
        }
    }
    ck_assert_int_eq(forged, 2);
    ck_assert_int_eq(percent, 1);
    /* the bound holds whatever is passed */
    struct audit_test few[3];
    struct audit_params p = { "a@b.example", "c@d.example", "", "192.0.2.1", locals, 2 };
    ck_assert_uint_eq(audit_battery(&p, few, 3), 3);
}
END_TEST

START_TEST(test_ipv6_literal_and_missing_server_name)
{
    struct audit_test t[AUDIT_MAX_TESTS];
    struct audit_params p = { "a@example.org", "r@example.net", NULL, "IPv6:2001:db8::25", NULL,
                              0 };
    size_t n = audit_battery(&p, t, AUDIT_MAX_TESTS);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].id, "percent_hack_name"))   /* no name: the literal stands in */
            ck_assert_str_eq(t[i].rcpt, "<r%example.net@[IPv6:2001:db8::25]>");
        else if (!strcmp(t[i].id, "sender_ip_literal"))
            ck_assert_str_eq(t[i].mail, "<a@[IPv6:2001:db8::25]>");
}
END_TEST

START_TEST(test_every_finding_has_a_fix)
{
    const char *locals[] = { "example.com" };
    struct audit_test t[AUDIT_MAX_TESTS];
    size_t n = battery(locals, 1, t);
    for (size_t i = 0; i < n; i++) {
        const struct audit_kind *k = audit_kind(t[i].finding);
        ck_assert_msg(k != NULL, "%s: finding %s unknown", t[i].id, t[i].finding);
        ck_assert_int_eq(k->severity, AUDIT_HIGH);   /* relaying is always high */
        ck_assert_ptr_nonnull(strstr(k->fix, "Postfix"));
        ck_assert_ptr_nonnull(strstr(k->fix, "sendmail"));
    }
    static const char *const others[] = { "auth_cleartext", "vrfy", "expn", "banner_version",
                                           "unknown_recipient", "pregreet", "submission_relay",
                                           "no_starttls", "auth_before_tls" };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        ck_assert_msg(audit_kind(others[i]) != NULL, "%s", others[i]);
    ck_assert_ptr_null(audit_kind("nonsense"));
    ck_assert_ptr_null(audit_kind(NULL));
    ck_assert_str_eq(audit_severity_name(AUDIT_MEDIUM), "medium");
}
END_TEST

START_TEST(test_classify)
{
    ck_assert_int_eq(audit_classify(0, 0, 0), AUDIT_ERROR);
    ck_assert_int_eq(audit_classify(550, 0, 0), AUDIT_REFUSED_MAIL);
    ck_assert_int_eq(audit_classify(421, 0, 0), AUDIT_DEFERRED);   /* 4xx: no answer */
    ck_assert_int_eq(audit_classify(354, 0, 0), AUDIT_ERROR);
    ck_assert_int_eq(audit_classify(250, 0, 0), AUDIT_ERROR);   /* RCPT never answered */
    ck_assert_int_eq(audit_classify(250, 554, 0), AUDIT_REFUSED);
    ck_assert_int_eq(audit_classify(250, 450, 0), AUDIT_DEFERRED);
    ck_assert_int_eq(audit_classify(250, 354, 0), AUDIT_ERROR);
    ck_assert_int_eq(audit_classify(250, 250, 0), AUDIT_RELAY);
    ck_assert_int_eq(audit_classify(250, 251, 0), AUDIT_RELAY);
    ck_assert_int_eq(audit_classify(250, 250, 250), AUDIT_RELAY_DELIVERED);
    ck_assert_int_eq(audit_classify(250, 250, 554), AUDIT_RELAY_DATA_REFUSED);
    ck_assert(!audit_relays(AUDIT_RELAY_DATA_REFUSED));   /* not taken: no relay */
    ck_assert(audit_relays(AUDIT_RELAY_DELIVERED));
    ck_assert(!audit_relays(AUDIT_DEFERRED));
    ck_assert(!audit_relays(AUDIT_ERROR));
    ck_assert_str_eq(audit_verdict_name(AUDIT_REFUSED), "refused");
}
END_TEST

static const char *soft(const char *banner)
{
    static char what[200];
    return audit_banner_software(banner, what, sizeof what) ? what : NULL;
}

START_TEST(test_banner_software)
{
    ck_assert_str_eq(soft("mx.example.com ESMTP Postfix (Debian/GNU)"),
                     "Postfix (Debian/GNU)");
    ck_assert_str_eq(soft("mx.example.com ESMTP Sendmail 8.17.1.9/8.17.1.9; Tue, 1 Dec 2026"),
                     "Sendmail 8.17.1.9/8.17.1.9");
    ck_assert_ptr_nonnull(strstr(soft("mx ESMTP Exim 4.96 Tue, 01 Dec 2026"), "Exim 4.96"));
    ck_assert_ptr_nonnull(
        strstr(soft("mail.example.com Microsoft ESMTP MAIL Service, Version: 10.0.17763.1 ready"),
               "10.0.17763.1"));
    ck_assert_str_eq(soft("mx.example.com ESMTP 8.15.2/8.15.2"), "version 8.15.2/8.15.2");
    ck_assert_ptr_null(soft("mx.example.com ESMTP"));
    ck_assert_ptr_null(soft("mx.example.com ESMTP ready"));
    ck_assert_ptr_null(soft("postfixadmin.example.com ESMTP"));   /* a host name, not software */
    ck_assert_ptr_null(soft("mx.example.com ESMTP kanjiki-e2e"));
    ck_assert_ptr_null(soft("192.0.2.1 ESMTP"));   /* an address is no version */
    ck_assert_ptr_null(soft("exchange.example.com ESMTP"));   /* a host name */
    ck_assert_ptr_null(soft("mx.example.com ESMTP postfix-gw"));
}
END_TEST

static Suite *audit_suite(void)
{
    Suite *s = suite_create("audit");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_nmap_forms_are_all_there_in_order);
    tcase_add_test(t, test_local_domain_tests_only_with_local_domains);
    tcase_add_test(t, test_ipv6_literal_and_missing_server_name);
    tcase_add_test(t, test_every_finding_has_a_fix);
    tcase_add_test(t, test_classify);
    tcase_add_test(t, test_banner_software);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(audit_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
