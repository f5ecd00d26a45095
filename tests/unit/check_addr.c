/* Unit tests for lib/addr.c. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

static struct addr a;
static char err[128];

static int parse_n(const char *s, size_t n)
{
    err[0] = '\0';
    return addr_parse(s, n, &a, err, sizeof err);
}

/* String literals keep embedded NULs: sizeof, not strlen. */
#define PARSE(lit) parse_n(lit, sizeof lit - 1)
#define OK(lit) ck_assert_msg(PARSE(lit) == 0, "%s rejected: %s", lit, err)
#define BAD(lit) ck_assert_msg(PARSE(lit) == -1 && err[0], "%s accepted", lit)

/* Exactly the bits `want`, and the target that goes with them. */
static void tricks_are(unsigned want, const char *target)
{
    ck_assert_uint_eq(a.tricks, want);
    ck_assert_str_eq(a.target, target);
}

/* ---- plain forms ---- */

START_TEST(test_plain_address_has_no_tricks)
{
    OK("<user@example.com>");
    tricks_are(0, "");
    ck_assert(!a.null_path);
    ck_assert(!a.postmaster);
    ck_assert_int_eq(a.kind, ADDR_D_NAME);
    ck_assert_str_eq(a.local, "user");
    ck_assert_str_eq(a.domain, "example.com");
}
END_TEST

START_TEST(test_address_without_brackets_accepted)
{
    OK("user@example.com");
    tricks_are(0, "");
    ck_assert_str_eq(a.local, "user");
    ck_assert_str_eq(a.domain, "example.com");
}
END_TEST

START_TEST(test_spaces_around_are_trimmed)
{
    OK("  <user@example.com>  ");
    ck_assert_str_eq(a.local, "user");
    ck_assert_str_eq(a.domain, "example.com");
    OK(" user@example.com ");
    ck_assert_str_eq(a.domain, "example.com");
    OK("< user@example.com >");
    ck_assert_str_eq(a.local, "user");
    ck_assert_str_eq(a.domain, "example.com");
}
END_TEST

START_TEST(test_input_is_length_counted)
{
    ck_assert_int_eq(parse_n("user@example.comXYZ", 16), 0);
    ck_assert_str_eq(a.domain, "example.com");
}
END_TEST

START_TEST(test_null_path)
{
    OK("<>");
    ck_assert(a.null_path);
    tricks_are(0, "");
    ck_assert_int_eq(a.kind, ADDR_D_NONE);
    OK(" < > ");
    ck_assert(a.null_path);
}
END_TEST

START_TEST(test_empty_input_rejected)
{
    BAD("");
    BAD("   ");
    ck_assert_int_eq(addr_parse(NULL, 0, &a, err, sizeof err), -1);
}
END_TEST

START_TEST(test_domain_lowercased_local_kept)
{
    OK("<User.Name@Example.COM>");
    ck_assert_str_eq(a.local, "User.Name");
    ck_assert_str_eq(a.domain, "example.com");
}
END_TEST

START_TEST(test_one_trailing_dot_removed)
{
    OK("u@example.com.");
    ck_assert_str_eq(a.domain, "example.com");
    BAD("u@example.com..");
}
END_TEST

START_TEST(test_dots_anywhere_in_local_part_accepted)
{
    /* such local parts exist in the wild (Japanese mobile carriers) */
    OK("a..b.@docomo.ne.jp");
    tricks_are(0, "");
    ck_assert_str_eq(a.local, "a..b.");
}
END_TEST

START_TEST(test_atext_specials_in_local_part_accepted)
{
    OK("SRS0=ab+c/d#e$f&g'h*i=j?k^l_m`n{o|p}q~r-s@example.com");
    tricks_are(0, "");
}
END_TEST

/* ---- percent hack ---- */

START_TEST(test_percent_hack_target_is_rightmost)
{
    OK("<u%a.example%B.Example@local.test>");
    tricks_are(ADDR_T_PERCENT, "b.example");
    ck_assert_str_eq(a.local, "u%a.example%B.Example");
    ck_assert_str_eq(a.domain, "local.test");
}
END_TEST

START_TEST(test_percent_hack_without_at_is_also_unqualified)
{
    OK("u%d.example");
    tricks_are(ADDR_T_PERCENT | ADDR_T_NO_DOMAIN, "d.example");
    ck_assert_int_eq(a.kind, ADDR_D_NONE);
    ck_assert_str_eq(a.domain, "");
}
END_TEST

START_TEST(test_trick_target_is_normalised)
{
    OK("u%D.Example.@local.test");
    tricks_are(ADDR_T_PERCENT, "d.example");
    OK("\"u@[IPv6:2001:db8::1]\"@local.test");
    tricks_are(ADDR_T_QUOTED, "2001:db8::1");
    OK("\"u@[192.0.2.7]\"@local.test");
    tricks_are(ADDR_T_QUOTED, "192.0.2.7");
}
END_TEST

/* ---- bang paths ---- */

START_TEST(test_bang_path_target_is_first_component)
{
    OK("a.example!b.example!u");
    tricks_are(ADDR_T_BANG | ADDR_T_NO_DOMAIN, "a.example");
}
END_TEST

START_TEST(test_bang_path_with_local_domain)
{
    OK("<d.example!u@local.test>");
    tricks_are(ADDR_T_BANG, "d.example");
    ck_assert_str_eq(a.local, "d.example!u");
    ck_assert_str_eq(a.domain, "local.test");
}
END_TEST

/* ---- double '@' ---- */

START_TEST(test_double_at_domain_is_after_last_at)
{
    OK("<u@d.example@local.test>");
    tricks_are(ADDR_T_DOUBLE_AT, "d.example");
    ck_assert_str_eq(a.local, "u@d.example");
    ck_assert_str_eq(a.domain, "local.test");
}
END_TEST

START_TEST(test_double_at_target_is_last_inner_domain)
{
    OK("a@b@c@local.test");
    tricks_are(ADDR_T_DOUBLE_AT, "c");
    ck_assert_str_eq(a.domain, "local.test");
}
END_TEST

/* ---- quoted local parts ---- */

START_TEST(test_quoted_at_is_trick)
{
    OK("<\"u@d.example\"@local.test>");
    tricks_are(ADDR_T_QUOTED, "d.example");
    ck_assert_str_eq(a.local, "\"u@d.example\"");
    ck_assert_str_eq(a.domain, "local.test");
}
END_TEST

START_TEST(test_quoted_percent_is_trick)
{
    OK("\"u%a.example%d.example\"@local.test");
    tricks_are(ADDR_T_QUOTED, "d.example");
}
END_TEST

START_TEST(test_quoted_bang_is_trick)
{
    OK("\"d.example!u\"@local.test");
    tricks_are(ADDR_T_QUOTED, "d.example");
}
END_TEST

START_TEST(test_quoted_without_domain_is_trick_and_unqualified)
{
    OK("\"u@d.example\"");
    tricks_are(ADDR_T_QUOTED | ADDR_T_NO_DOMAIN, "d.example");
}
END_TEST

START_TEST(test_quoted_local_without_specials_is_not_a_trick)
{
    OK("\"john smith\"@example.com");
    tricks_are(0, "");
    ck_assert_str_eq(a.local, "\"john smith\"");
    OK("\"\"@example.com");
    tricks_are(0, "");
}
END_TEST

START_TEST(test_quoted_pair_is_dequoted_for_target)
{
    OK("\"a\\\"b@evil.example\"@local.test");
    tricks_are(ADDR_T_QUOTED, "evil.example");
    OK("\"u\\@d.example\"@local.test");
    tricks_are(ADDR_T_QUOTED, "d.example");
}
END_TEST

START_TEST(test_quoted_pair_does_not_close_quote)
{
    OK("\"a\\\\\"@example.com");        /* "a\\" : escaped backslash, then close */
    tricks_are(0, "");
    BAD("\"a\\\"@example.com");         /* "a\"@example.com : never closed */
}
END_TEST

START_TEST(test_unbalanced_quote_rejected)
{
    BAD("\"abc@example.com");
    BAD("abc\"@example.com");
    BAD("u@\"example.com");
    BAD("\"abc\\");
}
END_TEST

START_TEST(test_backslash_outside_quotes_rejected)
{
    BAD("u\\@d.example@local.test");
    BAD("u\\x@example.com");
}
END_TEST

/* ---- source routes ---- */

START_TEST(test_source_route_uses_final_mailbox)
{
    OK("<@local.test:u@D.Example>");
    tricks_are(ADDR_T_SOURCE_ROUTE, "d.example");
    ck_assert_str_eq(a.local, "u");
    ck_assert_str_eq(a.domain, "d.example");
    ck_assert_int_eq(a.kind, ADDR_D_NAME);
}
END_TEST

START_TEST(test_source_route_with_several_hops)
{
    OK("@a.example,@b.example:u@d.example");
    tricks_are(ADDR_T_SOURCE_ROUTE, "d.example");
    ck_assert_str_eq(a.domain, "d.example");
}
END_TEST

START_TEST(test_source_route_hop_may_be_ipv6_literal)
{
    OK("@[IPv6:2001:db8::1]:u@d.example");
    tricks_are(ADDR_T_SOURCE_ROUTE, "d.example");
}
END_TEST

START_TEST(test_bad_source_route_rejected)
{
    BAD("@:u@d.example");
    BAD("@a.example,:u@d.example");
    BAD("@a.example,@b.example,:u@d.example");
    BAD("@a.example,b.example:u@d.example");
    BAD("@a..example:u@d.example");
    BAD("@[300.0.0.1]:u@d.example");
    BAD("@a.example:@b.example:u@d.example");
    BAD("@a.example:");
}
END_TEST

START_TEST(test_at_domain_without_local_part_rejected)
{
    BAD("@example.com");
    BAD("<@example.com>");
}
END_TEST

/* ---- missing domain, postmaster ---- */

START_TEST(test_no_domain_is_unqualified)
{
    OK("<user>");
    tricks_are(ADDR_T_NO_DOMAIN, "");
    ck_assert_int_eq(a.kind, ADDR_D_NONE);
    ck_assert_str_eq(a.local, "user");
    ck_assert(!a.postmaster);
}
END_TEST

START_TEST(test_bare_postmaster_is_accepted)
{
    OK("postmaster");
    ck_assert(a.postmaster);
    tricks_are(0, "");
    OK("<PostMaster>");
    ck_assert(a.postmaster);
    tricks_are(0, "");
}
END_TEST

START_TEST(test_postmaster_with_domain_is_ordinary)
{
    OK("postmaster@example.com");
    ck_assert(!a.postmaster);
    tricks_are(0, "");
}
END_TEST

START_TEST(test_postmaster_lookalikes_are_unqualified)
{
    OK("postmasters");
    ck_assert(!a.postmaster);
    tricks_are(ADDR_T_NO_DOMAIN, "");
    OK("\"postmaster\"");
    ck_assert(!a.postmaster);
    tricks_are(ADDR_T_NO_DOMAIN, "");
    OK("@r.example:postmaster");
    ck_assert(!a.postmaster);
    ck_assert(a.tricks & ADDR_T_NO_DOMAIN);
}
END_TEST

START_TEST(test_empty_domain)
{
    OK("<u@>");
    tricks_are(ADDR_T_EMPTY_DOMAIN, "");
    ck_assert_int_eq(a.kind, ADDR_D_NONE);
    ck_assert_str_eq(a.local, "u");
}
END_TEST

/* ---- IP literals ---- */

START_TEST(test_ipv4_literal)
{
    OK("<u@[192.0.2.1]>");
    ck_assert_int_eq(a.kind, ADDR_D_IPV4);
    ck_assert_str_eq(a.domain, "192.0.2.1");
    tricks_are(0, "");
}
END_TEST

START_TEST(test_ipv6_literal)
{
    OK("<u@[IPv6:2001:db8::1]>");
    ck_assert_int_eq(a.kind, ADDR_D_IPV6);
    ck_assert_str_eq(a.domain, "2001:db8::1");
    OK("u@[ipv6:::1]");
    ck_assert_int_eq(a.kind, ADDR_D_IPV6);
    ck_assert_str_eq(a.domain, "::1");
}
END_TEST

START_TEST(test_bad_ip_literal_rejected)
{
    BAD("u@[192.0.2.256]");
    BAD("u@[192.0.2]");
    BAD("u@[2001:db8::1]");            /* IPv6 needs its tag */
    BAD("u@[IPv6:192.0.2.1]");
    BAD("u@[IPv6:2001:db8::1%eth0]");
    BAD("u@[]");
    BAD("u@[IPv6:]");
    BAD("u@[192.0.2.1");
    BAD("u@[example.com]");
    BAD("u@[192.0.2.1].");
}
END_TEST

START_TEST(test_bare_dotted_quad_is_ipv4_literal)
{
    OK("u@192.0.2.1");
    ck_assert_int_eq(a.kind, ADDR_D_IPV4);
    ck_assert_str_eq(a.domain, "192.0.2.1");
    OK("u@192.0.2.1.");
    ck_assert_int_eq(a.kind, ADDR_D_IPV4);
    ck_assert_str_eq(a.domain, "192.0.2.1");
}
END_TEST

/* ---- domain names ---- */

START_TEST(test_empty_label_rejected)
{
    BAD("u@a..example");
    BAD("u@.example");
    BAD("u@.");
}
END_TEST

START_TEST(test_hyphen_at_label_edge_rejected)
{
    BAD("u@-a.example");
    BAD("u@a-.example");
    BAD("u@a.example-");
    OK("u@a-b.example");
    ck_assert_str_eq(a.domain, "a-b.example");
}
END_TEST

START_TEST(test_underscore_in_domain_accepted)
{
    OK("u@_dmarc.Example.com");
    ck_assert_str_eq(a.domain, "_dmarc.example.com");
}
END_TEST

START_TEST(test_bad_character_in_domain_rejected)
{
    BAD("u@exa mple.com");
    BAD("u@example.com:25");
    BAD("u@exa%mple.com");
    BAD("u@example,com");
}
END_TEST

START_TEST(test_label_over_63_octets_rejected)
{
    char buf[128];
    memset(buf, 'x', sizeof buf);
    memcpy(buf, "u@", 2);
    memcpy(buf + 2 + 63, ".example", 8);
    ck_assert_int_eq(parse_n(buf, 2 + 63 + 8), 0);
    memset(buf, 'x', sizeof buf);
    memcpy(buf, "u@", 2);
    memcpy(buf + 2 + 64, ".example", 8);
    ck_assert_int_eq(parse_n(buf, 2 + 64 + 8), -1);
}
END_TEST

/* ---- lengths ---- */

START_TEST(test_local_part_over_64_octets_rejected)
{
    char buf[128];
    memset(buf, 'l', 64);
    memcpy(buf + 64, "@example.com", 12);
    ck_assert_int_eq(parse_n(buf, 76), 0);
    ck_assert_uint_eq(strlen(a.local), 64);
    memset(buf, 'l', 65);
    memcpy(buf + 65, "@example.com", 12);
    ck_assert_int_eq(parse_n(buf, 77), -1);
}
END_TEST

/* "<" + 50 octets local + "@" + domain + ">" totalling `total`. */
static size_t long_path(char *buf, size_t total, bool brackets)
{
    size_t dlen = total - 2 - 50 - 1, n = 0;
    if (brackets)
        buf[n++] = '<';
    memset(buf + n, 'l', 50);
    n += 50;
    buf[n++] = '@';
    for (size_t i = 0; i < dlen; i++)      /* labels of 49 x's and a dot */
        buf[n + i] = (i % 50 == 49) ? '.' : 'x';
    n += dlen;
    if (brackets)
        buf[n++] = '>';
    return n;
}

START_TEST(test_path_over_256_octets_rejected)
{
    char buf[300];
    ck_assert_int_eq(parse_n(buf, long_path(buf, 256, true)), 0);
    ck_assert_int_eq(parse_n(buf, long_path(buf, 257, true)), -1);
}
END_TEST

START_TEST(test_path_limit_counts_brackets_when_absent)
{
    char buf[300];
    ck_assert_int_eq(parse_n(buf, long_path(buf, 256, false)), 0);
    ck_assert_int_eq(parse_n(buf, long_path(buf, 257, false)), -1);
}
END_TEST

/* ---- bytes ---- */

START_TEST(test_utf8_accepted)
{
    OK("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>");
    tricks_are(0, "");
    ck_assert_int_eq(a.kind, ADDR_D_NAME);
    ck_assert_str_eq(a.local, "\xe7\x94\xa8\xe6\x88\xb7");
    ck_assert_str_eq(a.domain, "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a");
}
END_TEST

START_TEST(test_only_ascii_is_lowercased)
{
    OK("Jos\xc3\x89@\xc3\x89XAMPLE.COM");          /* JosÉ@ÉXAMPLE.COM */
    ck_assert_str_eq(a.local, "Jos\xc3\x89");
    ck_assert_str_eq(a.domain, "\xc3\x89xample.com");
}
END_TEST

START_TEST(test_invalid_utf8_rejected)
{
    BAD("u\xc3@example.com");                      /* truncated */
    BAD("u\x80@example.com");                      /* lone continuation */
    BAD("u\xc0\xaf@example.com");                  /* overlong */
    BAD("u\xed\xa0\x80@example.com");              /* surrogate */
    BAD("u\xf4\x90\x80\x80@example.com");          /* above U+10FFFF */
    BAD("u@exampl\xff.com");
    BAD("u@example.com\xe4\xbe");
}
END_TEST

START_TEST(test_nul_byte_rejected)
{
    BAD("us\0er@example.com");
    BAD("user@example.com\0");
    BAD("\0");
    ck_assert_ptr_nonnull(strstr(err, "NUL"));
}
END_TEST

START_TEST(test_control_characters_rejected)
{
    BAD("us\ter@example.com");
    BAD("user@example.com\r\n");
    BAD("u\x1b[2J@example.com");
    BAD("u\x7f@example.com");
    BAD("\"a\tb\"@example.com");                    /* not even quoted */
}
END_TEST

/* ---- structure ---- */

START_TEST(test_unbalanced_angle_brackets_rejected)
{
    BAD("<user@example.com");
    BAD("user@example.com>");
    BAD("<<user@example.com>>");
    BAD("<");
    BAD(">");
    BAD("<user@example.com> <x@y.example>");
}
END_TEST

START_TEST(test_space_outside_quotes_rejected)
{
    BAD("john smith@example.com");
    BAD("user @example.com");
}
END_TEST

START_TEST(test_bad_character_in_local_part_rejected)
{
    BAD("a,b@example.com");
    BAD("a:b@example.com");
    BAD("a;b@example.com");
    BAD("a(b)@example.com");
    BAD("a[b]@example.com");
}
END_TEST

/* ---- several tricks ---- */

START_TEST(test_mixed_tricks_set_every_bit)
{
    OK("a.example!u%b.example@local.test");
    tricks_are(ADDR_T_BANG | ADDR_T_PERCENT, "b.example");   /* '%' beats '!' */
    OK("\"x@y.example\"%z.example@local.test");
    ck_assert_uint_eq(a.tricks, ADDR_T_QUOTED | ADDR_T_PERCENT);
    OK("u%p.example@d.example@local.test");
    tricks_are(ADDR_T_PERCENT | ADDR_T_DOUBLE_AT, "d.example"); /* '@' beats '%' */
}
END_TEST

START_TEST(test_source_route_with_local_trick_keeps_local_target)
{
    OK("@r.example:a.example!u@d.example");
    tricks_are(ADDR_T_SOURCE_ROUTE | ADDR_T_BANG, "a.example");
    ck_assert_str_eq(a.domain, "d.example");
}
END_TEST

/* ---- nmap smtp-open-relay probes ---- */

START_TEST(test_nmap_percent_at_ip_literal)
{
    OK("<relaytest%nmap.scanme.org@[127.0.0.1]>");
    tricks_are(ADDR_T_PERCENT, "nmap.scanme.org");
    ck_assert_int_eq(a.kind, ADDR_D_IPV4);
    ck_assert_str_eq(a.domain, "127.0.0.1");
}
END_TEST

START_TEST(test_nmap_quoted_at_without_domain)
{
    OK("<\"relaytest@nmap.scanme.org\">");
    tricks_are(ADDR_T_QUOTED | ADDR_T_NO_DOMAIN, "nmap.scanme.org");
}
END_TEST

START_TEST(test_nmap_quoted_percent_at_ip_literal)
{
    OK("<\"relaytest%nmap.scanme.org\"@[127.0.0.1]>");
    tricks_are(ADDR_T_QUOTED, "nmap.scanme.org");
    ck_assert_int_eq(a.kind, ADDR_D_IPV4);
}
END_TEST

START_TEST(test_nmap_source_route_via_ip_literal)
{
    OK("<@[127.0.0.1]:relaytest@nmap.scanme.org>");
    tricks_are(ADDR_T_SOURCE_ROUTE, "nmap.scanme.org");
    ck_assert_str_eq(a.local, "relaytest");
    ck_assert_str_eq(a.domain, "nmap.scanme.org");
}
END_TEST

START_TEST(test_nmap_bang_without_domain)
{
    OK("<nmap.scanme.org!relaytest>");
    tricks_are(ADDR_T_BANG | ADDR_T_NO_DOMAIN, "nmap.scanme.org");
}
END_TEST

START_TEST(test_nmap_bang_at_ip_literal)
{
    OK("<nmap.scanme.org!relaytest@[127.0.0.1]>");
    tricks_are(ADDR_T_BANG, "nmap.scanme.org");
    ck_assert_str_eq(a.domain, "127.0.0.1");
}
END_TEST

START_TEST(test_nmap_percent_at_local_name)
{
    OK("<relaytest%nmap.scanme.org@local.test>");
    tricks_are(ADDR_T_PERCENT, "nmap.scanme.org");
    ck_assert_str_eq(a.domain, "local.test");
}
END_TEST

/* ---- errors ---- */

START_TEST(test_error_reason_is_reported)
{
    BAD("\"abc@example.com");
    ck_assert_ptr_nonnull(strstr(err, "quote"));
    BAD("u@[192.0.2.256]");
    ck_assert_ptr_nonnull(strstr(err, "IP literal"));
}
END_TEST

START_TEST(test_error_output_is_bounded_and_optional)
{
    char small[4] = "zzz";
    ck_assert_int_eq(addr_parse("<a", 2, &a, small, sizeof small), -1);
    ck_assert_uint_eq(strlen(small), 3);
    ck_assert_int_eq(addr_parse("<a", 2, &a, NULL, 0), -1);
}
END_TEST

START_TEST(test_failed_parse_leaves_nothing_behind)
{
    OK("u%d.example@local.test");
    BAD("u%d.example@local..test");
    ck_assert_uint_eq(a.tricks, 0);
    ck_assert_str_eq(a.local, "");
    ck_assert_str_eq(a.domain, "");
    ck_assert_str_eq(a.target, "");
    ck_assert(!a.null_path && !a.postmaster);
}
END_TEST

/* ---- helpers ---- */

START_TEST(test_domain_eq_ignores_case_and_one_trailing_dot)
{
    ck_assert(addr_domain_eq("EvilTest.Example.", "eviltest.example"));
    ck_assert(addr_domain_eq("example.com", "EXAMPLE.COM."));
    ck_assert(addr_domain_eq("a.example.", "a.example."));
}
END_TEST

START_TEST(test_domain_eq_is_exact_on_labels)
{
    ck_assert(!addr_domain_eq("eviltest.example", "test.example"));
    ck_assert(!addr_domain_eq("test.example", "eviltest.example"));
    ck_assert(!addr_domain_eq("sub.test.example", "test.example"));
    ck_assert(!addr_domain_eq("test.example..", "test.example"));
    ck_assert(!addr_domain_eq("test.example", NULL));
    ck_assert(!addr_domain_eq("\xc3\x89.example", "\xc3\xa9.example"));
}
END_TEST

START_TEST(test_trick_names)
{
    ck_assert_str_eq(addr_trick_name(ADDR_T_PERCENT), "percent_hack");
    ck_assert_str_eq(addr_trick_name(ADDR_T_BANG), "bang_path");
    ck_assert_str_eq(addr_trick_name(ADDR_T_DOUBLE_AT), "double_at");
    ck_assert_str_eq(addr_trick_name(ADDR_T_QUOTED), "quoted_local");
    ck_assert_str_eq(addr_trick_name(ADDR_T_SOURCE_ROUTE), "source_route");
    ck_assert_str_eq(addr_trick_name(ADDR_T_NO_DOMAIN), "unqualified");
    ck_assert_str_eq(addr_trick_name(ADDR_T_EMPTY_DOMAIN), "empty_domain");
    ck_assert_str_eq(addr_trick_name(0), "unknown");
    ck_assert_str_eq(addr_trick_name(ADDR_T_PERCENT | ADDR_T_BANG), "unknown");
}
END_TEST

/* ---- From: header domain ---- */

static const char *hdom(const char *v)
{
    static char out[256];
    if (addr_header_domain(v, out, sizeof out) < 0)
        return "(none)";
    return out;
}

START_TEST(test_header_domain_from_angle_addr_with_display_name)
{
    ck_assert_str_eq(hdom("Ann Example <ann@Mail.Example.COM>"), "mail.example.com");
    ck_assert_str_eq(hdom(" <x@example.org.> "), "example.org");
}
END_TEST

START_TEST(test_header_domain_ignores_at_signs_in_quotes_and_comments)
{
    ck_assert_str_eq(hdom("\"evil@phish.example\" <real@bank.example>"), "bank.example");
    ck_assert_str_eq(hdom("(boss@phish.example) real@bank.example"), "bank.example");
    ck_assert_str_eq(hdom("\"a \\\" b@x.example\" <c@d.example>"), "d.example");
}
END_TEST

START_TEST(test_header_domain_bare_address_and_lists)
{
    ck_assert_str_eq(hdom("user@example.net"), "example.net");
    ck_assert_str_eq(hdom("a@one.example, b@two.example"), "one.example");
}
END_TEST

START_TEST(test_header_domain_rejects_what_is_not_a_domain)
{
    ck_assert_str_eq(hdom("no address here"), "(none)");
    ck_assert_str_eq(hdom("<user@[192.0.2.1]>"), "(none)");
    ck_assert_str_eq(hdom("<user@>"), "(none)");
    ck_assert_str_eq(hdom("<user@exa mple.com>"), "(none)");
    ck_assert_str_eq(hdom(""), "(none)");
    ck_assert_int_eq(addr_header_domain(NULL, NULL, 0), -1);
}
END_TEST

START_TEST(test_header_domain_keeps_utf8_for_idna_and_bounds_output)
{
    ck_assert_str_eq(hdom("<a@b\xc3\xbc" "cher.example>"), "b\xc3\xbc" "cher.example");
    char small[8];
    ck_assert_int_eq(addr_header_domain("<a@longer-than-eight.example>", small, sizeof small), -1);
}
END_TEST

static Suite *addr_suite(void)
{
    Suite *s = suite_create("addr");
    TCase *t = tcase_create("plain");
    tcase_add_test(t, test_plain_address_has_no_tricks);
    tcase_add_test(t, test_address_without_brackets_accepted);
    tcase_add_test(t, test_spaces_around_are_trimmed);
    tcase_add_test(t, test_input_is_length_counted);
    tcase_add_test(t, test_null_path);
    tcase_add_test(t, test_empty_input_rejected);
    tcase_add_test(t, test_domain_lowercased_local_kept);
    tcase_add_test(t, test_one_trailing_dot_removed);
    tcase_add_test(t, test_dots_anywhere_in_local_part_accepted);
    tcase_add_test(t, test_atext_specials_in_local_part_accepted);
    suite_add_tcase(s, t);

    t = tcase_create("tricks");
    tcase_add_test(t, test_percent_hack_target_is_rightmost);
    tcase_add_test(t, test_percent_hack_without_at_is_also_unqualified);
    tcase_add_test(t, test_trick_target_is_normalised);
    tcase_add_test(t, test_bang_path_target_is_first_component);
    tcase_add_test(t, test_bang_path_with_local_domain);
    tcase_add_test(t, test_double_at_domain_is_after_last_at);
    tcase_add_test(t, test_double_at_target_is_last_inner_domain);
    tcase_add_test(t, test_quoted_at_is_trick);
    tcase_add_test(t, test_quoted_percent_is_trick);
    tcase_add_test(t, test_quoted_bang_is_trick);
    tcase_add_test(t, test_quoted_without_domain_is_trick_and_unqualified);
    tcase_add_test(t, test_quoted_local_without_specials_is_not_a_trick);
    tcase_add_test(t, test_quoted_pair_is_dequoted_for_target);
    tcase_add_test(t, test_quoted_pair_does_not_close_quote);
    tcase_add_test(t, test_unbalanced_quote_rejected);
    tcase_add_test(t, test_backslash_outside_quotes_rejected);
    tcase_add_test(t, test_source_route_uses_final_mailbox);
    tcase_add_test(t, test_source_route_with_several_hops);
    tcase_add_test(t, test_source_route_hop_may_be_ipv6_literal);
    tcase_add_test(t, test_bad_source_route_rejected);
    tcase_add_test(t, test_at_domain_without_local_part_rejected);
    tcase_add_test(t, test_no_domain_is_unqualified);
    tcase_add_test(t, test_bare_postmaster_is_accepted);
    tcase_add_test(t, test_postmaster_with_domain_is_ordinary);
    tcase_add_test(t, test_postmaster_lookalikes_are_unqualified);
    tcase_add_test(t, test_empty_domain);
    tcase_add_test(t, test_mixed_tricks_set_every_bit);
    tcase_add_test(t, test_source_route_with_local_trick_keeps_local_target);
    suite_add_tcase(s, t);

    t = tcase_create("domain");
    tcase_add_test(t, test_ipv4_literal);
    tcase_add_test(t, test_ipv6_literal);
    tcase_add_test(t, test_bad_ip_literal_rejected);
    tcase_add_test(t, test_bare_dotted_quad_is_ipv4_literal);
    tcase_add_test(t, test_empty_label_rejected);
    tcase_add_test(t, test_hyphen_at_label_edge_rejected);
    tcase_add_test(t, test_underscore_in_domain_accepted);
    tcase_add_test(t, test_bad_character_in_domain_rejected);
    tcase_add_test(t, test_label_over_63_octets_rejected);
    suite_add_tcase(s, t);

    t = tcase_create("limits");
    tcase_add_test(t, test_local_part_over_64_octets_rejected);
    tcase_add_test(t, test_path_over_256_octets_rejected);
    tcase_add_test(t, test_path_limit_counts_brackets_when_absent);
    tcase_add_test(t, test_utf8_accepted);
    tcase_add_test(t, test_only_ascii_is_lowercased);
    tcase_add_test(t, test_invalid_utf8_rejected);
    tcase_add_test(t, test_nul_byte_rejected);
    tcase_add_test(t, test_control_characters_rejected);
    tcase_add_test(t, test_unbalanced_angle_brackets_rejected);
    tcase_add_test(t, test_space_outside_quotes_rejected);
    tcase_add_test(t, test_bad_character_in_local_part_rejected);
    tcase_add_test(t, test_error_reason_is_reported);
    tcase_add_test(t, test_error_output_is_bounded_and_optional);
    tcase_add_test(t, test_failed_parse_leaves_nothing_behind);
    suite_add_tcase(s, t);

    t = tcase_create("nmap");
    tcase_add_test(t, test_nmap_percent_at_ip_literal);
    tcase_add_test(t, test_nmap_quoted_at_without_domain);
    tcase_add_test(t, test_nmap_quoted_percent_at_ip_literal);
    tcase_add_test(t, test_nmap_source_route_via_ip_literal);
    tcase_add_test(t, test_nmap_bang_without_domain);
    tcase_add_test(t, test_nmap_bang_at_ip_literal);
    tcase_add_test(t, test_nmap_percent_at_local_name);
    suite_add_tcase(s, t);

    t = tcase_create("helpers");
    tcase_add_test(t, test_domain_eq_ignores_case_and_one_trailing_dot);
    tcase_add_test(t, test_domain_eq_is_exact_on_labels);
    tcase_add_test(t, test_trick_names);
    suite_add_tcase(s, t);
    t = tcase_create("header_domain");
    tcase_add_test(t, test_header_domain_from_angle_addr_with_display_name);
    tcase_add_test(t, test_header_domain_ignores_at_signs_in_quotes_and_comments);
    tcase_add_test(t, test_header_domain_bare_address_and_lists);
    tcase_add_test(t, test_header_domain_rejects_what_is_not_a_domain);
    tcase_add_test(t, test_header_domain_keeps_utf8_for_idna_and_bounds_output);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(addr_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
