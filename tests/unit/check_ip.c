/* Unit tests for lib/ip.c and lib/cidrset.c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidrset.h"
#include "ip.h"

static struct ip IP(const char *s)
{
    struct ip a;
    ck_assert_msg(ip_parse(s, &a) == 0, "ip_parse(%s) failed", s);
    return a;
}

static const char *fmt(const char *s)
{
    static char buf[IP_STRLEN];
    struct ip a = IP(s);
    ip_format(&a, buf, sizeof buf);
    return buf;
}

static struct cidr CIDR(const char *s)
{
    struct cidr c;
    char err[160] = "";
    ck_assert_msg(cidr_parse(s, &c, err, sizeof err) == 0,
                  "cidr_parse(%s): %s", s, err);
    return c;
}

static const char *cfmt(const char *s)
{
    static char buf[IP_STRLEN + 4];
    struct cidr c = CIDR(s);
    cidr_format(&c, buf, sizeof buf);
    return buf;
}

/* ---- ip ---- */

START_TEST(test_mapped_ipv4_equals_plain_ipv4)
{
    struct ip a = IP("192.0.2.1"), b = IP("::ffff:192.0.2.1");
    ck_assert_int_eq(ip_cmp(&a, &b), 0);
    ck_assert(ip_is_v4(&a));
    ck_assert(ip_is_v4(&b));
    static const unsigned char want[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                            0xff, 0xff, 192, 0, 2, 1 };
    ck_assert_mem_eq(a.b, want, 16);
}
END_TEST

START_TEST(test_ipv6_parsed_and_not_v4)
{
    struct ip a = IP("2001:db8::1");
    ck_assert(!ip_is_v4(&a));
    ck_assert_int_eq(a.b[0], 0x20);
    ck_assert_int_eq(a.b[1], 0x01);
    ck_assert_int_eq(a.b[15], 1);
}
END_TEST

START_TEST(test_ipv4_compatible_is_not_mapped)
{
    /* ::192.0.2.1 is a (deprecated) IPv6 address, not 192.0.2.1 */
    struct ip a = IP("::192.0.2.1"), b = IP("192.0.2.1");
    ck_assert(!ip_is_v4(&a));
    ck_assert_int_ne(ip_cmp(&a, &b), 0);
}
END_TEST

START_TEST(test_brackets_and_ipv6_tag_accepted)
{
    struct ip plain4 = IP("192.0.2.1"), plain6 = IP("2001:db8::1");
    struct ip a = IP("[192.0.2.1]");
    struct ip b = IP("[IPv6:2001:db8::1]");
    struct ip c = IP("IPv6:2001:db8::1");
    struct ip d = IP("[ipv6:2001:db8::1]");
    ck_assert_int_eq(ip_cmp(&a, &plain4), 0);
    ck_assert_int_eq(ip_cmp(&b, &plain6), 0);
    ck_assert_int_eq(ip_cmp(&c, &plain6), 0);
    ck_assert_int_eq(ip_cmp(&d, &plain6), 0);
}
END_TEST

START_TEST(test_ipv6_tag_before_ipv4_refused)
{
    struct ip a;
    ck_assert_int_eq(ip_parse("[IPv6:192.0.2.1]", &a), -1);
    ck_assert_int_eq(ip_parse("IPv6:192.0.2.1", &a), -1);
}
END_TEST

START_TEST(test_zone_id_refused)
{
    struct ip a;
    ck_assert_int_eq(ip_parse("fe80::1%eth0", &a), -1);
    ck_assert_int_eq(ip_parse("[IPv6:fe80::1%eth0]", &a), -1);
    ck_assert_int_eq(ip_parse("fe80::1%1", &a), -1);
}
END_TEST

START_TEST(test_ambiguous_ipv4_spellings_refused)
{
    /* inet_aton would read these as 127.0.0.1 or octal; others would not */
    const char *bad[] = { "127.1", "0x7f.0.0.1", "010.0.0.1", "2130706433",
                          "127.0.0.1.", "127.0.0.256", "1.2.3" };
    struct ip a;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(ip_parse(bad[i], &a) == -1, "%s accepted", bad[i]);
}
END_TEST

START_TEST(test_garbage_refused)
{
    const char *bad[] = { "", " 192.0.2.1", "192.0.2.1 ", "[192.0.2.1",
                          "192.0.2.1]", "[]", "IPv6:", "[IPv6:]", "example.com",
                          "2001:db8:::1", "2001:db8::1::2", "[[::1]]",
                          "192.0.2.1/24",
                          "0000:0000:0000:0000:0000:0000:0000:0000:0000" };
    struct ip a;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(ip_parse(bad[i], &a) == -1, "'%s' accepted", bad[i]);
    ck_assert_int_eq(ip_parse(NULL, &a), -1);
}
END_TEST

START_TEST(test_overlong_input_refused_without_overflow)
{
    char big[4096];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct ip a;
    ck_assert_int_eq(ip_parse(big, &a), -1);
}
END_TEST

START_TEST(test_failed_parse_leaves_output_untouched)
{
    struct ip a = IP("192.0.2.7"), before = a;
    ck_assert_int_eq(ip_parse("IPv6:192.0.2.1", &a), -1);
    ck_assert_int_eq(ip_cmp(&a, &before), 0);
}
END_TEST

START_TEST(test_format_mapped_as_dotted_quad)
{
    ck_assert_str_eq(fmt("::ffff:192.0.2.1"), "192.0.2.1");
    ck_assert_str_eq(fmt("[10.1.2.3]"), "10.1.2.3");
}
END_TEST

START_TEST(test_format_ipv6_rfc5952)
{
    ck_assert_str_eq(fmt("2001:0DB8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
    ck_assert_str_eq(fmt("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
    ck_assert_str_eq(fmt("::1"), "::1");
    ck_assert_str_eq(fmt("::"), "::");
}
END_TEST

START_TEST(test_format_truncates_to_small_buffer)
{
    char buf[5];
    struct ip a = IP("192.0.2.1");
    memset(buf, 'x', sizeof buf);
    ip_format(&a, buf, sizeof buf);
    ck_assert_str_eq(buf, "192.");
}
END_TEST

START_TEST(test_ip_mask_clears_host_bits)
{
    struct ip a = IP("192.0.2.255"), want = IP("192.0.2.128");
    ip_mask(&a, 96 + 25);
    ck_assert_int_eq(ip_cmp(&a, &want), 0);
    struct ip b = IP("2001:db8:ffff::1"), wantb = IP("2001:db8::");
    ip_mask(&b, 32);
    ck_assert_int_eq(ip_cmp(&b, &wantb), 0);
    struct ip c = IP("2001:db8::1"), wantc = IP("::");
    ip_mask(&c, 0);
    ck_assert_int_eq(ip_cmp(&c, &wantc), 0);
    struct ip d = IP("2001:db8::1"), wantd = d;
    ip_mask(&d, 128);
    ck_assert_int_eq(ip_cmp(&d, &wantd), 0);
}
END_TEST

START_TEST(test_ip_cmp_orders_bytewise)
{
    struct ip a = IP("192.0.2.1"), b = IP("192.0.2.2"), c = IP("2001:db8::1");
    ck_assert_int_eq(ip_cmp(&a, &b), -1);
    ck_assert_int_eq(ip_cmp(&b, &a), 1);
    ck_assert_int_eq(ip_cmp(&a, &a), 0);
    ck_assert_int_eq(ip_cmp(&a, &c), -1);   /* ::ffff:... sorts before 2001:: */
}
END_TEST

/* ---- cidr ---- */

START_TEST(test_cidr_ipv4_length_stored_plus_96)
{
    struct cidr c = CIDR("192.0.2.0/24");
    ck_assert_uint_eq(c.bits, 120);
    struct ip net = IP("192.0.2.0");
    ck_assert_int_eq(ip_cmp(&c.net, &net), 0);
}
END_TEST

START_TEST(test_cidr_bare_address_is_host_prefix)
{
    ck_assert_uint_eq(CIDR("192.0.2.1").bits, 128);
    ck_assert_uint_eq(CIDR("::1").bits, 128);
    ck_assert_str_eq(cfmt("192.0.2.1"), "192.0.2.1/32");
    ck_assert_str_eq(cfmt("::1"), "::1/128");
}
END_TEST

START_TEST(test_cidr_host_bits_rejected)
{
    struct cidr c;
    char err[160] = "";
    ck_assert_int_eq(cidr_parse("192.0.2.1/24", &c, err, sizeof err), -1);
    ck_assert_str_eq(err, "host bits set in 192.0.2.1/24 (did you mean 192.0.2.0/24?)");
    ck_assert_int_eq(cidr_parse("2001:db8::1/32", &c, err, sizeof err), -1);
    ck_assert_str_eq(err, "host bits set in 2001:db8::1/32 (did you mean 2001:db8::/32?)");
}
END_TEST

START_TEST(test_cidr_length_out_of_range_rejected)
{
    struct cidr c;
    char err[160] = "";
    ck_assert_int_eq(cidr_parse("192.0.2.0/33", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "0-32"));
    ck_assert_int_eq(cidr_parse("2001:db8::/129", &c, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "0-128"));
    /* a mapped address written as IPv6 takes IPv6 lengths */
    ck_assert_uint_eq(CIDR("::ffff:192.0.2.0/120").bits, 120);
}
END_TEST

START_TEST(test_cidr_bad_length_syntax_rejected)
{
    const char *bad[] = { "192.0.2.0/", "192.0.2.0/+24", "192.0.2.0/-1",
                          "192.0.2.0/ 24", "192.0.2.0/24 ", "192.0.2.0/0x18",
                          "192.0.2.0/24/24", "192.0.2.0/99999999999999999999",
                          "/24", "", "example.com/24", "192.0.2.0/2a" };
    struct cidr c;
    char err[160];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ck_assert_msg(cidr_parse(bad[i], &c, err, sizeof err) == -1,
                      "'%s' accepted", bad[i]);
        ck_assert_msg(err[0] != '\0', "no reason for '%s'", bad[i]);
    }
}
END_TEST

START_TEST(test_cidr_error_buffer_optional)
{
    struct cidr c;
    ck_assert_int_eq(cidr_parse("192.0.2.1/24", &c, NULL, 0), -1);
    char tiny[8];
    ck_assert_int_eq(cidr_parse("192.0.2.1/24", &c, tiny, sizeof tiny), -1);
    ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1);
}
END_TEST

START_TEST(test_cidr_zero_prefixes)
{
    struct cidr v4all = CIDR("0.0.0.0/0"), all = CIDR("::/0");
    ck_assert_uint_eq(v4all.bits, 96);
    ck_assert_uint_eq(all.bits, 0);
    struct ip a4 = IP("203.0.113.9"), a6 = IP("2001:db8::1");
    ck_assert(cidr_contains(&v4all, &a4));
    ck_assert(!cidr_contains(&v4all, &a6));   /* IPv4 /0 is only IPv4 */
    ck_assert(cidr_contains(&all, &a4));
    ck_assert(cidr_contains(&all, &a6));
}
END_TEST

START_TEST(test_cidr_contains_boundaries)
{
    struct cidr c = CIDR("192.0.2.0/25");
    struct ip in_lo = IP("192.0.2.0"), in_hi = IP("192.0.2.127");
    struct ip out_lo = IP("192.0.1.255"), out_hi = IP("192.0.2.128");
    struct ip mapped = IP("::ffff:192.0.2.5");
    ck_assert(cidr_contains(&c, &in_lo));
    ck_assert(cidr_contains(&c, &in_hi));
    ck_assert(cidr_contains(&c, &mapped));
    ck_assert(!cidr_contains(&c, &out_lo));
    ck_assert(!cidr_contains(&c, &out_hi));
}
END_TEST

START_TEST(test_cidr_format_round_trips)
{
    const char *cases[] = { "192.0.2.0/24", "10.0.0.0/8", "0.0.0.0/0",
                            "2001:db8::/32", "::/0", "::1/128",
                            "203.0.113.7/32", "2001:db8:0:1::/64" };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_str_eq(cfmt(cases[i]), cases[i]);
    ck_assert_str_eq(cfmt("::ffff:192.0.2.0/120"), "192.0.2.0/24");
    ck_assert_str_eq(cfmt("[IPv6:2001:DB8::]/32"), "2001:db8::/32");
    /* a short IPv6 prefix that covers the mapped range stays IPv6 */
    ck_assert_str_eq(cfmt("::/80"), "::/80");
}
END_TEST

START_TEST(test_cidr_range_v4_and_v6)
{
    struct ip lo, hi;
    struct cidr c = CIDR("192.0.2.0/23");
    cidr_range(&c, &lo, &hi);
    struct ip wlo = IP("192.0.2.0"), whi = IP("192.0.3.255");
    ck_assert_int_eq(ip_cmp(&lo, &wlo), 0);
    ck_assert_int_eq(ip_cmp(&hi, &whi), 0);

    c = CIDR("2001:db8::/33");
    cidr_range(&c, &lo, &hi);
    wlo = IP("2001:db8::");
    whi = IP("2001:db8:7fff:ffff:ffff:ffff:ffff:ffff");
    ck_assert_int_eq(ip_cmp(&lo, &wlo), 0);
    ck_assert_int_eq(ip_cmp(&hi, &whi), 0);

    c = CIDR("198.51.100.7");
    cidr_range(&c, &lo, &hi);
    ck_assert_int_eq(ip_cmp(&lo, &c.net), 0);
    ck_assert_int_eq(ip_cmp(&hi, &c.net), 0);
}
END_TEST

/* ---- cidrset ---- */

START_TEST(test_cidrset_contains_mixed_families)
{
    struct cidrset *s = cidrset_new();
    ck_assert_int_eq(cidrset_add_str(s, "192.0.2.0/24", NULL, 0), 0);
    ck_assert_int_eq(cidrset_add_str(s, "2001:db8::/32", NULL, 0), 0);
    struct ip a = IP("192.0.2.200"), b = IP("2001:db8:1::5");
    struct ip c = IP("192.0.3.1"), d = IP("2001:db9::1"), e = IP("::ffff:192.0.2.1");
    ck_assert(cidrset_contains(s, &a));
    ck_assert(cidrset_contains(s, &b));
    ck_assert(cidrset_contains(s, &e));
    ck_assert(!cidrset_contains(s, &c));
    ck_assert(!cidrset_contains(s, &d));
    cidrset_free(s);
}
END_TEST

START_TEST(test_cidrset_empty_matches_nothing)
{
    struct cidrset *s = cidrset_new();
    struct ip a = IP("192.0.2.1"), z = IP("::");
    struct cidr hit;
    ck_assert(!cidrset_contains(s, &a));
    ck_assert(!cidrset_match(s, &z, &hit));
    ck_assert_uint_eq(cidrset_count(s), 0);
    ck_assert_ptr_null(cidrset_get(s, 0));
    cidrset_free(s);
}
END_TEST

START_TEST(test_cidrset_match_returns_most_specific)
{
    struct cidrset *s = cidrset_new();
    /* added widest last, so insertion order cannot be what picks */
    cidrset_add_str(s, "192.0.2.128/25", NULL, 0);
    cidrset_add_str(s, "192.0.2.0/24", NULL, 0);
    cidrset_add_str(s, "192.0.2.130", NULL, 0);
    cidrset_add_str(s, "0.0.0.0/0", NULL, 0);
    struct cidr hit;
    char buf[IP_STRLEN + 4];
    struct ip a = IP("192.0.2.130"), b = IP("192.0.2.129"), c = IP("192.0.2.1"),
              d = IP("198.51.100.1"), e = IP("2001:db8::1");
    ck_assert(cidrset_match(s, &a, &hit));
    cidr_format(&hit, buf, sizeof buf);
    ck_assert_str_eq(buf, "192.0.2.130/32");
    ck_assert(cidrset_match(s, &b, &hit));
    cidr_format(&hit, buf, sizeof buf);
    ck_assert_str_eq(buf, "192.0.2.128/25");
    ck_assert(cidrset_match(s, &c, &hit));
    cidr_format(&hit, buf, sizeof buf);
    ck_assert_str_eq(buf, "192.0.2.0/24");
    ck_assert(cidrset_match(s, &d, &hit));
    cidr_format(&hit, buf, sizeof buf);
    ck_assert_str_eq(buf, "0.0.0.0/0");
    ck_assert(!cidrset_match(s, &e, &hit));
    cidrset_free(s);
}
END_TEST

START_TEST(test_cidrset_ipv6_default_route_matches_everything)
{
    struct cidrset *s = cidrset_new();
    cidrset_add_str(s, "::/0", NULL, 0);
    struct ip a = IP("192.0.2.1"), b = IP("2001:db8::1");
    struct cidr hit;
    ck_assert(cidrset_match(s, &a, &hit));
    ck_assert_uint_eq(hit.bits, 0);
    ck_assert(cidrset_contains(s, &b));
    cidrset_free(s);
}
END_TEST

START_TEST(test_cidrset_keeps_insertion_order)
{
    const char *in[] = { "2001:db8::/32", "10.0.0.0/8", "192.0.2.0/24", "::1/128" };
    struct cidrset *s = cidrset_new();
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(cidrset_add_str(s, in[i], NULL, 0), 0);
    ck_assert_uint_eq(cidrset_count(s), 4);
    char buf[IP_STRLEN + 4];
    for (size_t i = 0; i < 4; i++) {
        cidr_format(cidrset_get(s, i), buf, sizeof buf);
        ck_assert_str_eq(buf, in[i]);
    }
    ck_assert_ptr_null(cidrset_get(s, 4));
    cidrset_free(s);
}
END_TEST

START_TEST(test_cidrset_duplicate_add_harmless)
{
    struct cidrset *s = cidrset_new();
    cidrset_add_str(s, "192.0.2.0/24", NULL, 0);
    cidrset_add_str(s, "10.0.0.0/8", NULL, 0);
    cidrset_add_str(s, "192.0.2.0/24", NULL, 0);
    cidrset_add_str(s, "::ffff:192.0.2.0/120", NULL, 0);   /* same prefix */
    ck_assert_uint_eq(cidrset_count(s), 2);
    struct ip a = IP("192.0.2.9");
    ck_assert(cidrset_contains(s, &a));
    cidrset_free(s);
}
END_TEST

START_TEST(test_cidrset_add_str_reports_error)
{
    struct cidrset *s = cidrset_new();
    char err[160] = "";
    ck_assert_int_eq(cidrset_add_str(s, "192.0.2.1/24", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "did you mean 192.0.2.0/24"));
    ck_assert_int_eq(cidrset_add_str(s, "bogus", NULL, 0), -1);
    ck_assert_uint_eq(cidrset_count(s), 0);
    cidrset_free(s);
}
END_TEST

START_TEST(test_cidrset_add_masks_unmasked_prefix)
{
    struct cidrset *s = cidrset_new();
    struct cidr c = { IP("192.0.2.77"), 120 };
    cidrset_add(s, &c);
    struct ip a = IP("192.0.2.1");
    ck_assert(cidrset_contains(s, &a));
    char buf[IP_STRLEN + 4];
    cidr_format(cidrset_get(s, 0), buf, sizeof buf);
    ck_assert_str_eq(buf, "192.0.2.0/24");
    cidrset_free(s);
}
END_TEST

START_TEST(test_cidrset_many_prefixes)
{
    /* 4096 /24s and as many /48s; every other one present */
    struct cidrset *s = cidrset_new();
    char text[64];
    for (unsigned i = 0; i < 4096; i += 2) {
        snprintf(text, sizeof text, "10.%u.%u.0/24", i >> 8, i & 255);
        ck_assert_int_eq(cidrset_add_str(s, text, NULL, 0), 0);
        snprintf(text, sizeof text, "2001:db8:%x::/48", i);
        ck_assert_int_eq(cidrset_add_str(s, text, NULL, 0), 0);
    }
    ck_assert_uint_eq(cidrset_count(s), 4096);
    for (unsigned i = 0; i < 4096; i++) {
        snprintf(text, sizeof text, "10.%u.%u.9", i >> 8, i & 255);
        struct ip a = IP(text);
        ck_assert_msg(cidrset_contains(s, &a) == (i % 2 == 0), "%s", text);
        snprintf(text, sizeof text, "2001:db8:%x:1::9", i);
        struct ip b = IP(text);
        ck_assert_msg(cidrset_contains(s, &b) == (i % 2 == 0), "%s", text);
    }
    cidrset_free(s);
}
END_TEST

START_TEST(test_cidrset_null_is_empty)
{
    struct ip a = IP("192.0.2.1");
    ck_assert(!cidrset_contains(NULL, &a));
    ck_assert_uint_eq(cidrset_count(NULL), 0);
    cidrset_free(NULL);
}
END_TEST

static Suite *ip_suite(void)
{
    Suite *s = suite_create("ip");
    TCase *t = tcase_create("ip");
    tcase_add_test(t, test_mapped_ipv4_equals_plain_ipv4);
    tcase_add_test(t, test_ipv6_parsed_and_not_v4);
    tcase_add_test(t, test_ipv4_compatible_is_not_mapped);
    tcase_add_test(t, test_brackets_and_ipv6_tag_accepted);
    tcase_add_test(t, test_ipv6_tag_before_ipv4_refused);
    tcase_add_test(t, test_zone_id_refused);
    tcase_add_test(t, test_ambiguous_ipv4_spellings_refused);
    tcase_add_test(t, test_garbage_refused);
    tcase_add_test(t, test_overlong_input_refused_without_overflow);
    tcase_add_test(t, test_failed_parse_leaves_output_untouched);
    tcase_add_test(t, test_format_mapped_as_dotted_quad);
    tcase_add_test(t, test_format_ipv6_rfc5952);
    tcase_add_test(t, test_format_truncates_to_small_buffer);
    tcase_add_test(t, test_ip_mask_clears_host_bits);
    tcase_add_test(t, test_ip_cmp_orders_bytewise);
    suite_add_tcase(s, t);

    t = tcase_create("cidr");
    tcase_add_test(t, test_cidr_ipv4_length_stored_plus_96);
    tcase_add_test(t, test_cidr_bare_address_is_host_prefix);
    tcase_add_test(t, test_cidr_host_bits_rejected);
    tcase_add_test(t, test_cidr_length_out_of_range_rejected);
    tcase_add_test(t, test_cidr_bad_length_syntax_rejected);
    tcase_add_test(t, test_cidr_error_buffer_optional);
    tcase_add_test(t, test_cidr_zero_prefixes);
    tcase_add_test(t, test_cidr_contains_boundaries);
    tcase_add_test(t, test_cidr_format_round_trips);
    tcase_add_test(t, test_cidr_range_v4_and_v6);
    suite_add_tcase(s, t);

    t = tcase_create("cidrset");
    tcase_add_test(t, test_cidrset_contains_mixed_families);
    tcase_add_test(t, test_cidrset_empty_matches_nothing);
    tcase_add_test(t, test_cidrset_match_returns_most_specific);
    tcase_add_test(t, test_cidrset_ipv6_default_route_matches_everything);
    tcase_add_test(t, test_cidrset_keeps_insertion_order);
    tcase_add_test(t, test_cidrset_duplicate_add_harmless);
    tcase_add_test(t, test_cidrset_add_str_reports_error);
    tcase_add_test(t, test_cidrset_add_masks_unmasked_prefix);
    tcase_add_test(t, test_cidrset_many_prefixes);
    tcase_add_test(t, test_cidrset_null_is_empty);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ip_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
