/* Unit tests for lib/dnsbl.c: query names, answer codes, IDNA, and what an
 * answer means (listed / refused / clean / degraded). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl.h"

static struct ip ip_of(const char *s)
{
    struct ip a;
    ck_assert_int_eq(ip_parse(s, &a), 0);
    return a;
}

START_TEST(test_ipv4_octets_are_reversed)
{
    char q[300];
    struct ip a = ip_of("192.0.2.99");
    ck_assert_int_eq(dnsbl_qname_ip(&a, "zen.example.net", q, sizeof q), 0);
    ck_assert_str_eq(q, "99.2.0.192.zen.example.net");
    a = ip_of("::ffff:192.0.2.99");   /* mapped is IPv4 */
    ck_assert_int_eq(dnsbl_qname_ip(&a, "z.test", q, sizeof q), 0);
    ck_assert_str_eq(q, "99.2.0.192.z.test");
}
END_TEST

START_TEST(test_ipv6_uses_32_reversed_nibbles)
{
    char q[300];
    struct ip a = ip_of("2001:db8::1");
    ck_assert_int_eq(dnsbl_qname_ip(&a, "z.test", q, sizeof q), 0);
    ck_assert_str_eq(q, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.z.test");
    ck_assert_int_eq(dnsbl_qname_ip(&a, "z.test", q, 20), -1);
}
END_TEST

START_TEST(test_domain_is_lower_cased_and_loses_one_trailing_dot)
{
    char q[300];
    ck_assert_int_eq(dnsbl_qname_domain("Mail.Example.COM.", "dbl.test", q, sizeof q), 0);
    ck_assert_str_eq(q, "mail.example.com.dbl.test");
    ck_assert_int_eq(dnsbl_qname_domain("a..b", "dbl.test", q, sizeof q), -1);
    ck_assert_int_eq(dnsbl_qname_domain("", "dbl.test", q, sizeof q), -1);
}
END_TEST

START_TEST(test_idna_labels_become_punycode)
{
    char q[300];
    ck_assert_int_eq(dnsbl_idna_label("b\xc3\xbc" "cher", 7, q, sizeof q), 0);
    ck_assert_str_eq(q, "xn--bcher-kva");
    ck_assert_int_eq(dnsbl_idna_label("m\xc3\xbcnchen", 8, q, sizeof q), 0);
    ck_assert_str_eq(q, "xn--mnchen-3ya");
    /* "пример" */
    ck_assert_int_eq(dnsbl_idna_label("\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80", 12,
                                      q, sizeof q), 0);
    ck_assert_str_eq(q, "xn--e1afmkfd");
    ck_assert_int_eq(dnsbl_qname_domain("B\xc3\xbc" "cher.example", "z.test", q, sizeof q), 0);
    ck_assert_str_eq(q, "xn--bcher-kva.example.z.test");
    ck_assert_int_eq(dnsbl_qname_domain("b\xff.example", "z.test", q, sizeof q), -1);
}
END_TEST

START_TEST(test_codes_single_range_mask_and_garbage)
{
    struct dnsbl_codes c = { 0 };
    char err[160];
    ck_assert_int_eq(dnsbl_codes_add(&c, "127.0.0.2", err, sizeof err), 0);
    ck_assert_int_eq(dnsbl_codes_add(&c, "127.0.0.10-127.0.0.11", err, sizeof err), 0);
    ck_assert_int_eq(dnsbl_codes_add(&c, "mask:0x08", err, sizeof err), 0);
    ck_assert(dnsbl_codes_match(&c, 0x7f000002));
    ck_assert(dnsbl_codes_match(&c, 0x7f00000b));
    ck_assert(dnsbl_codes_match(&c, 0x7f000008));   /* by the mask */
    ck_assert(!dnsbl_codes_match(&c, 0x7f000004));
    ck_assert(!dnsbl_codes_match(&c, 0x0a000008));  /* masks only inside 127/8 */
    ck_assert_int_eq(dnsbl_codes_add(&c, "127.0.0.x", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "127.0.0.x"));
    ck_assert_int_eq(dnsbl_codes_add(&c, "127.0.0.9-127.0.0.3", err, sizeof err), -1);
    ck_assert_int_eq(dnsbl_codes_add(&c, "mask:0", err, sizeof err), -1);
}
END_TEST

static struct dns_result answer(const char *const *codes, size_t n, struct dns_rr *rr)
{
    struct dns_result r = { .status = DNS_OK, .rr = rr, .nrr = n };
    for (size_t i = 0; i < n; i++) {
        memset(&rr[i], 0, sizeof rr[i]);
        rr[i].type = DNS_T_A;
        rr[i].addr = ip_of(codes[i]);
    }
    return r;
}

START_TEST(test_listed_clean_and_test_point)
{
    struct dnsbl_zone z;
    dnsbl_zone_defaults(&z, DNSBL_IP);
    struct dns_rr rr[2];
    char code[64];
    const char *a[] = { "127.0.0.2" };
    struct dns_result r = answer(a, 1, rr);
    ck_assert_int_eq(dnsbl_classify(&z, &r, code, sizeof code), DNSBL_LISTED);
    ck_assert_str_eq(code, "127.0.0.2");
    const char *one[] = { "127.0.0.1" };   /* RFC 5782: never a listing */
    r = answer(one, 1, rr);
    ck_assert_int_eq(dnsbl_classify(&z, &r, code, sizeof code), DNSBL_CLEAN);
    const char *junk[] = { "192.0.2.1" };
    r = answer(junk, 1, rr);
    ck_assert_int_eq(dnsbl_classify(&z, &r, code, sizeof code), DNSBL_CLEAN);
    struct dns_result nx = { .status = DNS_NXDOMAIN };
    ck_assert_int_eq(dnsbl_classify(&z, &nx, code, sizeof code), DNSBL_CLEAN);
}
END_TEST

START_TEST(test_error_codes_win_over_listings_and_are_never_listings)
{
    struct dnsbl_zone z;
    dnsbl_zone_defaults(&z, DNSBL_IP);
    struct dns_rr rr[2];
    char code[64];
    const char *a[] = { "127.0.0.2", "127.255.255.254" };
    struct dns_result r = answer(a, 2, rr);
    ck_assert_int_eq(dnsbl_classify(&z, &r, code, sizeof code), DNSBL_REFUSED);
    ck_assert_str_eq(code, "127.255.255.254");
    dnsbl_zone_defaults(&z, DNSBL_URI);
    const char *u[] = { "127.0.0.1" };
    r = answer(u, 1, rr);
    ck_assert_int_eq(dnsbl_classify(&z, &r, code, sizeof code), DNSBL_REFUSED);
}
END_TEST

START_TEST(test_timeouts_and_failures_are_degraded)
{
    struct dnsbl_zone z;
    dnsbl_zone_defaults(&z, DNSBL_IP);
    enum dns_status st[] = { DNS_TIMEOUT, DNS_SERVFAIL, DNS_ERROR, DNS_PENDING };
    for (size_t i = 0; i < 4; i++) {
        struct dns_result r = { .status = st[i] };
        ck_assert_int_eq(dnsbl_classify(&z, &r, NULL, 0), DNSBL_DEGRADED);
    }
    ck_assert_str_eq(dnsbl_outcome_name(DNSBL_DEGRADED), "degraded");
}
END_TEST

static Suite *dnsbl_suite(void)
{
    Suite *s = suite_create("dnsbl");
    TCase *t = tcase_create("dnsbl");
    tcase_add_test(t, test_ipv4_octets_are_reversed);
    tcase_add_test(t, test_ipv6_uses_32_reversed_nibbles);
    tcase_add_test(t, test_domain_is_lower_cased_and_loses_one_trailing_dot);
    tcase_add_test(t, test_idna_labels_become_punycode);
    tcase_add_test(t, test_codes_single_range_mask_and_garbage);
    tcase_add_test(t, test_listed_clean_and_test_point);
    tcase_add_test(t, test_error_codes_win_over_listings_and_are_never_listings);
    tcase_add_test(t, test_timeouts_and_failures_are_degraded);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dnsbl_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
