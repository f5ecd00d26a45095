/* Unit tests for lib/spf.c: SPF results through libspf2 with DNS from a
 * static zone (spf_new_zone), and, in the "real_dns" case at the end,
 * through lib/dns.c against a tiny UDP DNS server run by the test on
 * 127.0.0.1. */
#include <check.h>
#include <stddef.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spf2/spf.h>

#include "dns.h"
#include "spf.h"

#define HOST "mx.example.org"
#define NREC(a) (sizeof(a) / sizeof((a)[0]))

static struct spf *zone_spf(const char *const *recs, size_t n)
{
    char err[200] = "";
    struct spf *s = spf_new_zone(HOST, recs, n, err, sizeof err);
    ck_assert_msg(s != NULL, "spf_new_zone: %s", err);
    return s;
}

static struct spf_result check_at(struct spf *s, const char *ip, const char *helo,
                                  const char *sender, int64_t deadline)
{
    struct ip a;
    ck_assert_int_eq(ip_parse(ip, &a), 0);
    struct spf_result r;
    ck_assert_int_eq(spf_check(s, &a, helo, sender, deadline, &r), 0);
    return r;
}

static struct spf_result check(struct spf *s, const char *ip, const char *helo,
                               const char *sender)
{
    return check_at(s, ip, helo, sender, dns_now_ms() + 5000);
}

/* A header value as spf.h promises it: printable ASCII only (so no CR, LF
 * or other control), every quoted-string and comment closed, bounded. */
static void assert_header_safe(const char *h, size_t max)
{
    size_t n = strlen(h);
    ck_assert_msg(n < max, "header too long (%zu): %s", n, h);
    bool quoted = false;
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        ck_assert_msg(c >= 0x20 && c < 0x7f, "byte 0x%02x at %zu in: %s", c, i, h);
        if (c == '\\') {
            ck_assert_msg(i + 1 < n, "dangling backslash: %s", h);
            i++;
        } else if (c == '"' && depth == 0) {
            quoted = !quoted;
        } else if (!quoted && c == '(') {
            depth++;
        } else if (!quoted && c == ')') {
            ck_assert_msg(depth > 0, "unbalanced ')' at %zu: %s", i, h);
            depth--;
        }
    }
    ck_assert_msg(!quoted && depth == 0, "unclosed quote or comment: %s", h);
}

static const char *const zone_basic[] = {
    "pass.test TXT v=spf1 ip4:192.0.2.0/24 -all",
    "soft.test TXT v=spf1 ip4:192.0.2.0/24 ~all",
    "neutral.test TXT v=spf1 ip4:192.0.2.0/24 ?all",
    "bare.test TXT v=spf1",
    "other.test TXT google-site-verification=abc",
    "syntax.test TXT v=spf1 ip4:192.0.2.0/24 frobnicate:x -all",
    "two.test TXT v=spf1 ip4:192.0.2.0/24 -all",
    "two.test TXT v=spf1 +all",
    "six.test TXT v=spf1 ip6:2001:db8:5::/48 -all",
    "four.test TXT v=spf1 ip4:192.0.2.1 ip6:::ffff:0:0/96 -all",
    "helo.test TXT v=spf1 ip4:192.0.2.9 -all",
    "tmp.test TXT !TRY_AGAIN",
    "exp.test TXT v=spf1 -all exp=why.test",
    "why.test TXT not for you",
    "xn--bcher-kva.test TXT v=spf1 ip4:192.0.2.0/24 -all",
    "ctl.test TXT v=spf1 ip4:192.0.2.0/24 \x01 -all",
    "crash.test TXT !LIBSPF2_ERROR",
};

START_TEST(test_listed_ip4_passes)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "192.0.2.1", "mail.client.test", "alice@pass.test");
    ck_assert_int_eq(r.result, RULES_SPF_PASS);
    ck_assert(!r.degraded);
    ck_assert_str_eq(r.identity, "mailfrom");
    ck_assert_str_eq(r.domain, "pass.test");
    ck_assert_int_eq(r.dns_lookups, 1);
    spf_free(s);
}
END_TEST

START_TEST(test_dash_all_fails)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "198.51.100.1", "mail.client.test", "alice@pass.test");
    ck_assert_int_eq(r.result, RULES_SPF_FAIL);
    ck_assert(!r.degraded);
    spf_free(s);
}
END_TEST

START_TEST(test_tilde_all_softfails)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    ck_assert_int_eq(check(s, "198.51.100.1", "h.test", "a@soft.test").result,
                     RULES_SPF_SOFTFAIL);
    ck_assert_int_eq(check(s, "192.0.2.77", "h.test", "a@soft.test").result, RULES_SPF_PASS);
    spf_free(s);
}
END_TEST

START_TEST(test_question_all_is_neutral)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    ck_assert_int_eq(check(s, "198.51.100.1", "h.test", "a@neutral.test").result,
                     RULES_SPF_NEUTRAL);
    spf_free(s);
}
END_TEST

/* A record that is just "v=spf1" is valid (RFC 7208 4.5) and matches
 * nothing: neutral, not none. */
START_TEST(test_bare_version_record_is_neutral_not_none)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "198.51.100.1", "h.test", "a@bare.test");
    ck_assert_int_eq(r.result, RULES_SPF_NEUTRAL);
    spf_free(s);
}
END_TEST

START_TEST(test_no_record_is_none)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "198.51.100.1", "h.test", "a@nothing.test");
    ck_assert_int_eq(r.result, RULES_SPF_NONE);
    ck_assert_str_eq(r.domain, "nothing.test");
    ck_assert(!r.degraded);
    /* TXT records, none of them SPF: also none (libspf2 says INVALID) */
    r = check(s, "198.51.100.1", "h.test", "a@other.test");
    ck_assert_int_eq(r.result, RULES_SPF_NONE);
    spf_free(s);
}
END_TEST

START_TEST(test_syntax_error_is_permerror)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    /* even for a listed address: the record as a whole is invalid */
    struct spf_result r = check(s, "192.0.2.1", "h.test", "a@syntax.test");
    ck_assert_int_eq(r.result, RULES_SPF_PERMERROR);
    ck_assert(!r.degraded);
    ck_assert_ptr_nonnull(strstr(r.mechanism, "frobnicate"));
    spf_free(s);
}
END_TEST

START_TEST(test_two_records_are_permerror)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "192.0.2.1", "h.test", "a@two.test");
    ck_assert_int_eq(r.result, RULES_SPF_PERMERROR);
    ck_assert_ptr_nonnull(strstr(r.mechanism, "Multiple SPF records"));
    spf_free(s);
}
END_TEST

START_TEST(test_record_with_control_byte_is_permerror)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "192.0.2.1", "h.test", "a@ctl.test");
    ck_assert_int_eq(r.result, RULES_SPF_PERMERROR);
    ck_assert_ptr_nonnull(strstr(r.mechanism, "printable ASCII"));
    spf_free(s);
}
END_TEST

START_TEST(test_eleven_terms_in_one_record_are_permerror)
{
    const char *const z[] = {
        "many.test TXT v=spf1 a:h1.test a:h2.test a:h3.test a:h4.test a:h5.test a:h6.test "
        "a:h7.test a:h8.test a:h9.test a:h10.test a:h11.test ip4:198.51.100.1 -all",
        "ten.test TXT v=spf1 a:h1.test a:h2.test a:h3.test a:h4.test a:h5.test a:h6.test "
        "a:h7.test a:h8.test a:h9.test a:h10.test ip4:198.51.100.1 -all",
        "h1.test A 10.0.0.1", "h2.test A 10.0.0.2", "h3.test A 10.0.0.3",
        "h4.test A 10.0.0.4", "h5.test A 10.0.0.5", "h6.test A 10.0.0.6",
        "h7.test A 10.0.0.7", "h8.test A 10.0.0.8", "h9.test A 10.0.0.9",
        "h10.test A 10.0.0.10", "h11.test A 10.0.0.11",
    };
    struct spf *s = zone_spf(z, NREC(z));
    struct spf_result r = check(s, "198.51.100.1", "h.test", "a@many.test");
    ck_assert_int_eq(r.result, RULES_SPF_PERMERROR);
    ck_assert_int_le(r.dns_lookups, 11);   /* the record + at most 10 terms */
    /* exactly ten is allowed */
    ck_assert_int_eq(check(s, "198.51.100.1", "h.test", "a@ten.test").result, RULES_SPF_PASS);
    spf_free(s);
}
END_TEST

/* libspf2 counts per record (each include starts from 0): two includes of
 * six terms each pass its check; RFC 7208 4.6.4 counts the evaluation. */
START_TEST(test_terms_are_counted_across_includes)
{
    const char *const z[] = {
        "deep.test TXT v=spf1 include:d1.test include:d2.test -all",
        "d1.test TXT v=spf1 a:x1.test a:x2.test a:x3.test a:x4.test a:x5.test a:x6.test ?all",
        "d2.test TXT v=spf1 a:x7.test a:x8.test a:x9.test a:x10.test a:x11.test ip4:198.51.100.1",
        "x1.test A 10.0.0.1", "x2.test A 10.0.0.1", "x3.test A 10.0.0.1", "x4.test A 10.0.0.1",
        "x5.test A 10.0.0.1", "x6.test A 10.0.0.1", "x7.test A 10.0.0.1", "x8.test A 10.0.0.1",
        "x9.test A 10.0.0.1", "x10.test A 10.0.0.1", "x11.test A 10.0.0.1",
    };
    struct spf *s = zone_spf(z, NREC(z));
    struct spf_result r = check(s, "198.51.100.1", "h.test", "a@deep.test");
    ck_assert_int_eq(r.result, RULES_SPF_PERMERROR);
    ck_assert_ptr_nonnull(strstr(r.mechanism, "10 DNS-querying terms"));
    ck_assert_int_eq(r.dns_lookups, 11);
    spf_free(s);
}
END_TEST

/* The address lookups of an mx answer are not terms of their own: mx and
 * nine a: are ten terms, not eleven. */
START_TEST(test_mx_address_lookups_are_not_terms)
{
    const char *const z[] = {
        "mx.test TXT v=spf1 mx a:x1.test a:x2.test a:x3.test a:x4.test a:x5.test a:x6.test "
        "a:x7.test a:x8.test a:x9.test -all",
        "mx.test MX 10 m1.mx.test", "mx.test MX 20 m2.mx.test",
        "m1.mx.test A 203.0.113.1", "m2.mx.test A 203.0.113.2",
        "x1.test A 10.0.0.1", "x2.test A 10.0.0.1", "x3.test A 10.0.0.1", "x4.test A 10.0.0.1",
        "x5.test A 10.0.0.1", "x6.test A 10.0.0.1", "x7.test A 10.0.0.1", "x8.test A 10.0.0.1",
        "x9.test A 10.0.0.1",
    };
    struct spf *s = zone_spf(z, NREC(z));
    ck_assert_int_eq(check(s, "203.0.113.2", "h.test", "a@mx.test").result, RULES_SPF_PASS);
    struct spf_result r = check(s, "198.51.100.1", "h.test", "a@mx.test");
    ck_assert_int_eq(r.result, RULES_SPF_FAIL);
    ck_assert_int_eq(r.dns_lookups, 1 + 1 + 2 + 9);
    spf_free(s);
}
END_TEST

START_TEST(test_third_void_lookup_is_permerror)
{
    const char *const z[] = {
        "void.test TXT v=spf1 a:n1.test a:n2.test a:n3.test ip4:198.51.100.1 -all",
        "two-voids.test TXT v=spf1 a:n1.test a:n2.test ip4:198.51.100.1 -all",
    };
    struct spf *s = zone_spf(z, NREC(z));
    struct spf_result r = check(s, "198.51.100.1", "h.test", "a@void.test");
    ck_assert_int_eq(r.result, RULES_SPF_PERMERROR);
    ck_assert_ptr_nonnull(strstr(r.mechanism, "void"));
    ck_assert_int_eq(check(s, "198.51.100.1", "h.test", "a@two-voids.test").result,
                     RULES_SPF_PASS);
    spf_free(s);
}
END_TEST

START_TEST(test_include_chain_passes_and_include_without_record_is_permerror)
{
    const char *const z[] = {
        "top.test TXT v=spf1 include:mid.test -all",
        "mid.test TXT v=spf1 ip4:203.0.113.5 include:leaf.test -all",
        "leaf.test TXT v=spf1 ip4:192.0.2.0/24 -all",
        "broken.test TXT v=spf1 include:missing.test -all",
        "redir.test TXT v=spf1 redirect=leaf.test",
    };
    struct spf *s = zone_spf(z, NREC(z));
    struct spf_result r = check(s, "192.0.2.1", "h.test", "a@top.test");
    ck_assert_int_eq(r.result, RULES_SPF_PASS);
    ck_assert_int_eq(r.dns_lookups, 3);
    /* leaf's -all only means "no match" inside an include */
    ck_assert_int_eq(check(s, "198.51.100.1", "h.test", "a@top.test").result, RULES_SPF_FAIL);
    ck_assert_int_eq(check(s, "192.0.2.1", "h.test", "a@broken.test").result,
                     RULES_SPF_PERMERROR);
    ck_assert_int_eq(check(s, "192.0.2.1", "h.test", "a@redir.test").result, RULES_SPF_PASS);
    ck_assert_int_eq(check(s, "198.51.100.1", "h.test", "a@redir.test").result,
                     RULES_SPF_FAIL);
    spf_free(s);
}
END_TEST

START_TEST(test_ip6_mechanism_matches_ipv6_client)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "2001:db8:5::25", "h.test", "a@six.test");
    ck_assert_int_eq(r.result, RULES_SPF_PASS);
    ck_assert_ptr_nonnull(strstr(r.received_spf, "client-ip=\"2001:db8:5::25\";"));
    ck_assert_int_eq(check(s, "2001:db8:6::25", "h.test", "a@six.test").result,
                     RULES_SPF_FAIL);
    spf_free(s);
}
END_TEST

/* four.test lists 192.0.2.1 as ip4 and all of ::ffff:0:0/96 as ip6: a
 * mapped client evaluated as IPv6 would pass through the ip6 term for any
 * address; as IPv4 only 192.0.2.1 passes. */
START_TEST(test_mapped_client_is_evaluated_as_ipv4)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "::ffff:192.0.2.1", "h.test", "a@four.test");
    ck_assert_int_eq(r.result, RULES_SPF_PASS);
    ck_assert_ptr_nonnull(strstr(r.received_spf, "client-ip=192.0.2.1;"));
    ck_assert_int_eq(check(s, "::ffff:198.51.100.1", "h.test", "a@four.test").result,
                     RULES_SPF_FAIL);
    spf_free(s);
}
END_TEST

START_TEST(test_null_sender_checks_helo_identity)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "192.0.2.9", "Helo.Test", "");
    ck_assert_int_eq(r.result, RULES_SPF_PASS);
    ck_assert_str_eq(r.identity, "helo");
    ck_assert_str_eq(r.domain, "helo.test");
    ck_assert_str_eq(r.auth_results, "spf=pass smtp.helo=helo.test");
    ck_assert_ptr_nonnull(strstr(r.received_spf, "identity=helo"));
    ck_assert_ptr_null(strstr(r.received_spf, "envelope-from="));
    ck_assert_int_eq(check(s, "192.0.2.10", "helo.test", "").result, RULES_SPF_FAIL);
    spf_free(s);
}
END_TEST

START_TEST(test_null_sender_without_usable_helo_is_none)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    const char *helos[] = { NULL, "", "localhost", "[192.0.2.9]", "bad..name.test" };
    for (size_t i = 0; i < NREC(helos); i++) {
        struct spf_result r = check(s, "192.0.2.9", helos[i], "");
        ck_assert_int_eq(r.result, RULES_SPF_NONE);
        ck_assert_str_eq(r.identity, "helo");
        ck_assert_str_eq(r.domain, "");
        ck_assert_int_eq(r.dns_lookups, 0);
        assert_header_safe(r.received_spf, 999);
        assert_header_safe(r.auth_results, sizeof r.auth_results);
    }
    spf_free(s);
}
END_TEST

START_TEST(test_loopback_is_none_without_lookup)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    const char *ips[] = { "127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1" };
    for (size_t i = 0; i < NREC(ips); i++) {
        /* pass.test would fail these addresses if they were evaluated */
        struct spf_result r = check(s, ips[i], "h.test", "a@pass.test");
        ck_assert_int_eq(r.result, RULES_SPF_NONE);
        ck_assert_str_eq(r.mechanism, "loopback client, not evaluated");
        ck_assert_int_eq(r.dns_lookups, 0);
        ck_assert_str_eq(r.domain, "pass.test");
    }
    spf_free(s);
}
END_TEST

START_TEST(test_sender_forms)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    /* no domain: not a valid identity */
    struct spf_result r = check(s, "198.51.100.1", "h.test", "alice");
    ck_assert_int_eq(r.result, RULES_SPF_NONE);
    ck_assert_str_eq(r.domain, "");
    ck_assert_int_eq(r.dns_lookups, 0);
    ck_assert_str_eq(r.auth_results, "spf=none smtp.mailfrom=\"alice\"");
    /* no local part: postmaster (RFC 7208 4.3), still evaluated */
    r = check(s, "198.51.100.1", "h.test", "@pass.test");
    ck_assert_int_eq(r.result, RULES_SPF_FAIL);
    /* malformed or single-label domains give none (RFC 7208 4.3) */
    const char *bad[] = { "a@", "a@test", "a@x..pass.test", "a@[192.0.2.1]", "a@pa ss.test",
                          "a@-" };
    for (size_t i = 0; i < NREC(bad); i++) {
        r = check(s, "198.51.100.1", "h.test", bad[i]);
        ck_assert_int_eq(r.result, RULES_SPF_NONE);
        ck_assert_int_eq(r.dns_lookups, 0);
    }
    /* upper case and a trailing dot are the same domain */
    r = check(s, "198.51.100.1", "h.test", "a@PASS.Test.");
    ck_assert_int_eq(r.result, RULES_SPF_FAIL);
    ck_assert_str_eq(r.domain, "pass.test");
    spf_free(s);
}
END_TEST

/* A local part libspf2's macros cannot carry is replaced, not a way out:
 * the forged domain's -all still applies. */
START_TEST(test_odd_local_part_still_fails)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    char longlocal[300];
    memset(longlocal, 'x', 200);
    snprintf(longlocal + 200, sizeof longlocal - 200, "@pass.test");
    const char *senders[] = { "a\r\nb@pass.test", "\x01@pass.test", "j\xc3\xb6rg@pass.test",
                              longlocal, "\"a@b\"@pass.test" };
    for (size_t i = 0; i < NREC(senders); i++) {
        struct spf_result r = check(s, "198.51.100.1", "h.test", senders[i]);
        ck_assert_msg(r.result == RULES_SPF_FAIL, "sender %zu: %d", i, r.result);
        assert_header_safe(r.received_spf, 999);
    }
    spf_free(s);
}
END_TEST

START_TEST(test_idn_domain_is_checked_as_a_label)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "192.0.2.1", "h.test", "a@b\xc3\xbc" "cher.test");
    ck_assert_int_eq(r.result, RULES_SPF_PASS);
    ck_assert_str_eq(r.domain, "xn--bcher-kva.test");
    ck_assert_str_eq(r.auth_results, "spf=pass smtp.mailfrom=xn--bcher-kva.test");
    assert_header_safe(r.received_spf, 999);
    spf_free(s);
}
END_TEST

START_TEST(test_headers_have_the_rfc_fields)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "192.0.2.1", "mail.client.test", "alice@pass.test");
    ck_assert_str_eq(r.received_spf,
                     "pass (mx.example.org: domain of pass.test designates 192.0.2.1 as "
                     "permitted sender) client-ip=192.0.2.1; envelope-from=\"alice@pass.test\"; "
                     "helo=mail.client.test; receiver=mx.example.org; identity=mailfrom");
    ck_assert_str_eq(r.auth_results, "spf=pass smtp.mailfrom=pass.test");
    ck_assert_str_eq(r.mechanism, "domain of pass.test designates 192.0.2.1 as permitted sender");

    r = check(s, "198.51.100.1", NULL, "alice@pass.test");
    ck_assert_str_eq(r.received_spf,
                     "fail (mx.example.org: domain of pass.test does not designate "
                     "198.51.100.1 as permitted sender) client-ip=198.51.100.1; "
                     "envelope-from=\"alice@pass.test\"; receiver=mx.example.org; "
                     "identity=mailfrom");
    ck_assert_str_eq(r.auth_results, "spf=fail smtp.mailfrom=pass.test");

    r = check(s, "198.51.100.1", "h.test", "a@syntax.test");
    ck_assert_str_eq(r.auth_results, "spf=permerror smtp.mailfrom=syntax.test");
    ck_assert(!strncmp(r.received_spf, "permerror (mx.example.org: error in processing", 46));
    assert_header_safe(r.received_spf, 999);
    spf_free(s);
}
END_TEST

START_TEST(test_headers_stay_safe_with_hostile_input)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    char big[2000];
    memset(big, '"', 900);
    memset(big + 900, '\r', 100);
    memset(big + 1000, '\\', 300);
    memset(big + 1300, 0xff, 400);
    snprintf(big + 1700, sizeof big - 1700, "@pass.test");
    const char *helos[] = { "h\r\nX-Evil: 1", "\"quoted\" (paren) \\", big, NULL,
                            "\x7f\x1b[31m" };
    const char *senders[] = { "a\"b\r\nX-Evil: 1@pass.test", big, "\x01(x)\\@pass.test",
                              "", "no-at-all\r\n" };
    for (size_t i = 0; i < NREC(helos); i++)
        for (size_t j = 0; j < NREC(senders); j++) {
            struct spf_result r = check(s, "192.0.2.1", helos[i], senders[j]);
            assert_header_safe(r.received_spf, 999);   /* one RFC 5322 line */
            assert_header_safe(r.auth_results, sizeof r.auth_results);
            assert_header_safe(r.mechanism, sizeof r.mechanism);
            ck_assert_ptr_null(strchr(r.domain, '\r'));
        }
    /* the quote inside the sender is escaped, not closing the value */
    struct spf_result r = check(s, "192.0.2.1", "h.test", "a\"b@pass.test");
    ck_assert_ptr_nonnull(strstr(r.received_spf, "envelope-from=\"a\\\"b@pass.test\";"));
    r = check(s, "192.0.2.1", "h\r\nX", "a@pass.test");
    ck_assert_ptr_nonnull(strstr(r.received_spf, "helo=\"h\\\\r\\\\nX\";"));
    spf_free(s);
}
END_TEST

START_TEST(test_try_again_is_degraded_temperror)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "192.0.2.1", "h.test", "a@tmp.test");
    ck_assert_int_eq(r.result, RULES_SPF_TEMPERROR);
    ck_assert(r.degraded);
    ck_assert_str_eq(r.auth_results, "spf=temperror smtp.mailfrom=tmp.test");
    spf_free(s);
}
END_TEST

START_TEST(test_passed_deadline_sends_no_lookup)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check_at(s, "192.0.2.1", "h.test", "a@pass.test", dns_now_ms() - 1);
    ck_assert_int_eq(r.result, RULES_SPF_TEMPERROR);
    ck_assert(r.degraded);
    ck_assert_int_eq(r.dns_lookups, 0);
    ck_assert_ptr_nonnull(strstr(r.mechanism, "deadline"));
    spf_free(s);
}
END_TEST

/* exp= names a TXT record to fetch on fail; the explanation is never used
 * here, so no query is sent for it. */
START_TEST(test_explanation_is_not_fetched)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "198.51.100.1", "h.test", "a@exp.test");
    ck_assert_int_eq(r.result, RULES_SPF_FAIL);
    ck_assert_int_eq(r.dns_lookups, 1);
    spf_free(s);
}
END_TEST

/* libspf2's error handler must not return (libspf2 aborts if it does);
 * spf.c's jumps back into spf_check, which reports temperror. */
START_TEST(test_libspf2_internal_error_is_temperror_not_abort)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r = check(s, "192.0.2.1", "h.test", "a@crash.test");
    ck_assert_int_eq(r.result, RULES_SPF_TEMPERROR);
    ck_assert(r.degraded);
    ck_assert_ptr_nonnull(strstr(r.mechanism, "libspf2 internal error"));
    /* and the next check works */
    ck_assert_int_eq(check(s, "192.0.2.1", "h.test", "a@pass.test").result, RULES_SPF_PASS);
    spf_free(s);
}
END_TEST

START_TEST(test_every_libspf2_result_is_mapped)
{
    ck_assert_int_eq(spf_map_result(SPF_RESULT_PASS), RULES_SPF_PASS);
    ck_assert_int_eq(spf_map_result(SPF_RESULT_FAIL), RULES_SPF_FAIL);
    ck_assert_int_eq(spf_map_result(SPF_RESULT_SOFTFAIL), RULES_SPF_SOFTFAIL);
    ck_assert_int_eq(spf_map_result(SPF_RESULT_NEUTRAL), RULES_SPF_NEUTRAL);
    ck_assert_int_eq(spf_map_result(SPF_RESULT_NONE), RULES_SPF_NONE);
    ck_assert_int_eq(spf_map_result(SPF_RESULT_TEMPERROR), RULES_SPF_TEMPERROR);
    ck_assert_int_eq(spf_map_result(SPF_RESULT_PERMERROR), RULES_SPF_PERMERROR);
    ck_assert_int_eq(spf_map_result(SPF_RESULT_INVALID), RULES_SPF_PERMERROR);
    ck_assert_int_eq(spf_map_result(42), RULES_SPF_PERMERROR);
}
END_TEST

START_TEST(test_no_client_address_is_not_evaluated)
{
    struct spf *s = zone_spf(zone_basic, NREC(zone_basic));
    struct spf_result r;
    ck_assert_int_eq(spf_check(s, NULL, "h.test", "a@pass.test", dns_now_ms() + 1000, &r), -1);
    ck_assert_int_eq(r.result, RULES_SPF_NONE);
    struct ip zero;
    ck_assert_int_eq(ip_parse("0.0.0.0", &zero), 0);
    ck_assert_int_eq(spf_check(s, &zero, "h.test", "a@pass.test", dns_now_ms() + 1000, &r), -1);
    ck_assert_int_eq(r.result, RULES_SPF_NONE);
    spf_free(s);
}
END_TEST

START_TEST(test_constructors_refuse_bad_arguments)
{
    char err[200] = "";
    ck_assert_ptr_null(spf_new_zone("mx example", NULL, 0, err, sizeof err));
    ck_assert_str_ne(err, "");
    ck_assert_ptr_null(spf_new_zone("mx\r\n.example", NULL, 0, err, sizeof err));
    ck_assert_ptr_null(spf_new_zone("", NULL, 0, err, sizeof err));
    const char *bad_type[] = { "a.test CNAME b.test" };
    ck_assert_ptr_null(spf_new_zone(HOST, bad_type, 1, err, sizeof err));
    const char *bad_a[] = { "a.test A not-an-address" };
    ck_assert_ptr_null(spf_new_zone(HOST, bad_a, 1, err, sizeof err));
    err[0] = '\0';
    ck_assert_ptr_null(spf_new(NULL, HOST, err, sizeof err));
    ck_assert_str_ne(err, "");
}
END_TEST

/* One struct spf, several threads checking at once. */
struct mt_arg {
    struct spf *s;
    atomic_int *wrong;
};

static void *mt_worker(void *p)
{
    struct mt_arg *a = p;
    for (int i = 0; i < 200; i++) {
        struct ip ip;
        ip_parse(i % 2 ? "192.0.2.1" : "198.51.100.1", &ip);
        struct spf_result r;
        spf_check(a->s, &ip, "h.test", "a@top.test", dns_now_ms() + 5000, &r);
        if (r.result != (i % 2 ? RULES_SPF_PASS : RULES_SPF_FAIL))
            atomic_fetch_add(a->wrong, 1);
    }
    return NULL;
}

START_TEST(test_concurrent_checks_share_one_spf)
{
    const char *const z[] = {
        "top.test TXT v=spf1 include:leaf.test -all",
        "leaf.test TXT v=spf1 ip4:192.0.2.0/24 -all",
    };
    struct spf *s = zone_spf(z, NREC(z));
    atomic_int wrong = 0;
    struct mt_arg a = { s, &wrong };
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, mt_worker, &a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&wrong), 0);
    spf_free(s);
}
END_TEST

/* ------------------------------------------------------------------------
 * Real DNS path: lib/dns.c against a fake UDP DNS server on 127.0.0.1.
 * These tests need lib/dns.c (written in parallel with spf.c); they use
 * only lib/dns.h's interface. good.test answers TXT
 * "v=spf1 ip4:192.0.2.0/24 -all", silent.test never answers, every other
 * name is NXDOMAIN and other types of good.test are "no data".
 * ---------------------------------------------------------------------- */

static int fake_fd = -1;
static int fake_port;
static atomic_bool fake_stop;
static atomic_int fake_queries;
static pthread_t fake_thread;

/* The question's name (dotted, lower-case) and end offset, or -1. */
static int parse_question(const unsigned char *q, int n, char *name, size_t len, int *qtype)
{
    int off = 12;
    size_t o = 0;
    while (off < n && q[off]) {
        int l = q[off++];
        if (l > 63 || off + l > n || o + (size_t)l + 2 > len)
            return -1;
        if (o)
            name[o++] = '.';
        for (int i = 0; i < l; i++) {
            char c = (char)q[off + i];
            name[o++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        off += l;
    }
    name[o] = '\0';
    if (off + 5 > n)
        return -1;
    off++;
    *qtype = q[off] << 8 | q[off + 1];
    return off + 4;
}

static void *fake_dns(void *arg)
{
    (void)arg;
    while (!atomic_load(&fake_stop)) {
        struct pollfd p = { .fd = fake_fd, .events = POLLIN };
        if (poll(&p, 1, 50) <= 0)
            continue;
        unsigned char q[512], a[1024];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fake_fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
        if (n < 12)
            continue;
        atomic_fetch_add(&fake_queries, 1);
        char name[256];
        int qtype;
        int end = parse_question(q, (int)n, name, sizeof name, &qtype);
        if (end < 0 || !strcmp(name, "silent.test"))
            continue;
        static const char txt[] = "v=spf1 ip4:192.0.2.0/24 -all";
        bool good = !strcmp(name, "good.test");
        bool answer = good && qtype == 16;
        memcpy(a, q, (size_t)end);
        a[2] = 0x84 | (q[2] & 0x01);              /* QR, AA, RD copied */
        a[3] = good ? 0x80 : 0x83;                /* RA; NXDOMAIN unless good */
        a[4] = 0, a[5] = 1;                       /* one question */
        a[6] = 0, a[7] = answer ? 1 : 0;
        memset(a + 8, 0, 4);                      /* no authority, no additional */
        int off = end;
        if (answer) {
            unsigned char rr[] = { 0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60, 0,
                                   (unsigned char)(sizeof txt), (unsigned char)(sizeof txt - 1) };
            memcpy(a + off, rr, sizeof rr);
            off += (int)sizeof rr;
            memcpy(a + off, txt, sizeof txt - 1);
            off += (int)sizeof txt - 1;
        }
        sendto(fake_fd, a, (size_t)off, 0, (struct sockaddr *)&from, fl);
    }
    return NULL;
}

static void fake_start(void)
{
    fake_fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fake_fd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fake_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(getsockname(fake_fd, (struct sockaddr *)&sa, &sl), 0);
    fake_port = ntohs(sa.sin_port);
    atomic_store(&fake_stop, false);
    atomic_store(&fake_queries, 0);
    ck_assert_int_eq(pthread_create(&fake_thread, NULL, fake_dns, NULL), 0);
}

static void fake_stop_server(void)
{
    atomic_store(&fake_stop, true);
    pthread_join(fake_thread, NULL);
    close(fake_fd);
    fake_fd = -1;
}

static struct dns *real_dns(void)
{
    char server[64], err[200] = "";
    snprintf(server, sizeof server, "127.0.0.1:%d", fake_port);
    const char *servers[] = { server };
    /* c-ares' own timeout far beyond the deadlines used here, so that only
     * the deadline can end a wait for silent.test */
    struct dns_config cfg = { .servers = servers, .nservers = 1, .timeout_ms = 5000,
                              .tries = 1, .cache_max = 64, .neg_ttl_max = 60 };
    struct dns *d = dns_new(&cfg, err, sizeof err);
    ck_assert_msg(d != NULL, "dns_new: %s", err);
    return d;
}

START_TEST(test_real_dns_pass_and_fail)
{
    struct dns *d = real_dns();
    char err[200] = "";
    struct spf *s = spf_new(d, HOST, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    struct spf_result r = check(s, "192.0.2.1", "h.test", "a@good.test");
    ck_assert_int_eq(r.result, RULES_SPF_PASS);
    ck_assert_int_eq(r.dns_lookups, 1);
    r = check(s, "198.51.100.1", "h.test", "a@good.test");
    ck_assert_int_eq(r.result, RULES_SPF_FAIL);
    ck_assert(!r.degraded);
    ck_assert_int_ge(atomic_load(&fake_queries), 1);
    r = check(s, "192.0.2.1", "h.test", "a@absent.test");
    ck_assert_int_eq(r.result, RULES_SPF_NONE);
    spf_free(s);
    dns_free(d);
}
END_TEST

START_TEST(test_real_dns_silent_server_hits_deadline)
{
    struct dns *d = real_dns();
    char err[200] = "";
    struct spf *s = spf_new(d, HOST, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    int64_t t0 = dns_now_ms();
    struct spf_result r = check_at(s, "192.0.2.1", "h.test", "a@silent.test", t0 + 300);
    int64_t took = dns_now_ms() - t0;
    ck_assert_int_eq(r.result, RULES_SPF_TEMPERROR);
    ck_assert(r.degraded);
    ck_assert_msg(took >= 250 && took < 500, "took %lld ms", (long long)took);
    ck_assert_str_eq(r.auth_results, "spf=temperror smtp.mailfrom=silent.test");
    spf_free(s);
    dns_free(d);
}
END_TEST

static Suite *spf_suite(void)
{
    Suite *su = suite_create("spf");
    TCase *tc = tcase_create("zone");
    tcase_add_test(tc, test_listed_ip4_passes);
    tcase_add_test(tc, test_dash_all_fails);
    tcase_add_test(tc, test_tilde_all_softfails);
    tcase_add_test(tc, test_question_all_is_neutral);
    tcase_add_test(tc, test_bare_version_record_is_neutral_not_none);
    tcase_add_test(tc, test_no_record_is_none);
    tcase_add_test(tc, test_syntax_error_is_permerror);
    tcase_add_test(tc, test_two_records_are_permerror);
    tcase_add_test(tc, test_record_with_control_byte_is_permerror);
    tcase_add_test(tc, test_eleven_terms_in_one_record_are_permerror);
    tcase_add_test(tc, test_terms_are_counted_across_includes);
    tcase_add_test(tc, test_mx_address_lookups_are_not_terms);
    tcase_add_test(tc, test_third_void_lookup_is_permerror);
    tcase_add_test(tc, test_include_chain_passes_and_include_without_record_is_permerror);
    tcase_add_test(tc, test_ip6_mechanism_matches_ipv6_client);
    tcase_add_test(tc, test_mapped_client_is_evaluated_as_ipv4);
    tcase_add_test(tc, test_null_sender_checks_helo_identity);
    tcase_add_test(tc, test_null_sender_without_usable_helo_is_none);
    tcase_add_test(tc, test_loopback_is_none_without_lookup);
    tcase_add_test(tc, test_sender_forms);
    tcase_add_test(tc, test_odd_local_part_still_fails);
    tcase_add_test(tc, test_idn_domain_is_checked_as_a_label);
    tcase_add_test(tc, test_headers_have_the_rfc_fields);
    tcase_add_test(tc, test_headers_stay_safe_with_hostile_input);
    tcase_add_test(tc, test_try_again_is_degraded_temperror);
    tcase_add_test(tc, test_passed_deadline_sends_no_lookup);
    tcase_add_test(tc, test_explanation_is_not_fetched);
    tcase_add_test(tc, test_libspf2_internal_error_is_temperror_not_abort);
    tcase_add_test(tc, test_every_libspf2_result_is_mapped);
    tcase_add_test(tc, test_no_client_address_is_not_evaluated);
    tcase_add_test(tc, test_constructors_refuse_bad_arguments);
    tcase_add_test(tc, test_concurrent_checks_share_one_spf);
    suite_add_tcase(su, tc);

    TCase *rd = tcase_create("real_dns");   /* needs lib/dns.c */
    tcase_add_checked_fixture(rd, fake_start, fake_stop_server);
    tcase_set_timeout(rd, 10);
    tcase_add_test(rd, test_real_dns_pass_and_fail);
    tcase_add_test(rd, test_real_dns_silent_server_hits_deadline);
    suite_add_tcase(su, rd);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(spf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
