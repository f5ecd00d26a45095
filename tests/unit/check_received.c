/* Unit tests for lib/received.c: one Received: value taken apart into its
 * clauses (from, by, via, with, id, for, date) for each common MTA's shape,
 * IPv4 and IPv6 addresses, the "(may be forged)" mark, missing parts,
 * comments in comments, garbage and very long values; the dates with the
 * offset they were written in; which addresses count as public. Every
 * value is crafted; addresses are documentation ranges and example
 * domains. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ip.h"
#include "received.h"
#include "xalloc.h"

/* 2023-09-19 18:35:49 UTC */
#define T0 INT64_C(1695148549000)

static struct rcvd_hop H;

static void setup(void)
{
    memset(&H, 0, sizeof H);
}

static void teardown(void)
{
    rcvd_hop_clear(&H);
}

static void parse(const char *value)
{
    rcvd_hop_clear(&H);
    rcvd_parse(value, &H);
}

static void assert_ip(const char *want)
{
    char buf[IP_STRLEN];
    ck_assert_msg(H.has_ip, "no address, wanted %s", want);
    ip_format(&H.ip, buf, sizeof buf);
    ck_assert_str_eq(buf, want);
}

static void assert_by_ip(const char *want)
{
    char buf[IP_STRLEN];
    ck_assert_msg(H.has_by_ip, "no by address, wanted %s", want);
    ip_format(&H.by_ip, buf, sizeof buf);
    ck_assert_str_eq(buf, want);
}

/* ---- each MTA's shape ---------------------------------------------------- */

START_TEST(test_rfc5321_all_clauses)
{
    parse("from mail.example.org (mail.example.org [192.0.2.10]) by mx.example.net"
          " via TCP with ESMTP id 4RqK0x for <user@example.net>;"
          " Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(H.from, "mail.example.org");
    ck_assert_pstr_eq(H.helo, "mail.example.org");
    ck_assert_pstr_eq(H.rdns, "mail.example.org");
    assert_ip("192.0.2.10");
    ck_assert_pstr_eq(H.by, "mx.example.net");
    ck_assert_pstr_eq(H.via, "TCP");
    ck_assert_pstr_eq(H.with, "ESMTP");
    ck_assert_pstr_eq(H.id, "4RqK0x");
    ck_assert_pstr_eq(H.rcpt, "user@example.net");
    ck_assert_pstr_eq(H.date, "Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_int_eq(H.time_ms, T0);
    ck_assert_int_eq(H.tz_mins, 0);
    ck_assert_uint_eq(H.flags, 0);
}
END_TEST

START_TEST(test_postfix_tls_comments_and_unknown_rdns)
{
    parse("from mail.example.org (mx1.example.org [192.0.2.10])\t(using TLSv1.3 with cipher"
          " TLS_AES_256_GCM_SHA384 (256/256 bits))\t(No client certificate requested)\t"
          "by mx.example.net (Postfix) with ESMTPS id 4RqK0x;\tTue, 19 Sep 2023 20:35:49"
          " +0200 (CEST)");
    ck_assert_pstr_eq(H.helo, "mail.example.org");
    ck_assert_pstr_eq(H.rdns, "mx1.example.org");
    ck_assert_pstr_eq(H.by, "mx.example.net");
    ck_assert_pstr_eq(H.with, "ESMTPS");          /* "with cipher" was in a comment */
    ck_assert_pstr_eq(H.id, "4RqK0x");
    ck_assert_int_eq(H.time_ms, T0);
    ck_assert_int_eq(H.tz_mins, 120);
    ck_assert_uint_eq(H.flags, 0);

    parse("from WIN-3KD8 (unknown [203.0.113.77]) by mx.example.net (Postfix) with ESMTP"
          " id 1; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(H.helo, "WIN-3KD8");
    ck_assert_ptr_null(H.rdns);
    assert_ip("203.0.113.77");
}
END_TEST

START_TEST(test_exim_forms)
{
    parse("from [203.0.113.5] (helo=ylmf-pc) by mx.example.net with esmtp (Exim 4.96)"
          " (envelope-from <x@example.com>) id 1qiKxY-000123-AB for v@example.net;"
          " Tue, 19 Sep 2023 18:35:49 +0000");
    assert_ip("203.0.113.5");
    ck_assert_pstr_eq(H.helo, "ylmf-pc");
    ck_assert_ptr_null(H.rdns);
    ck_assert_pstr_eq(H.from, "[203.0.113.5]");
    ck_assert_pstr_eq(H.with, "esmtp");
    ck_assert_pstr_eq(H.id, "1qiKxY-000123-AB");
    ck_assert_pstr_eq(H.rcpt, "v@example.net");

    parse("from mta7.example.org ([198.51.100.7]:41234 helo=bulk01.example.biz)"
          " by mx.example.net with esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384 (Exim 4.94.2)"
          " id 1q; Tue, 19 Sep 2023 18:35:49 +0000");
    assert_ip("198.51.100.7");
    ck_assert_pstr_eq(H.rdns, "mta7.example.org");
    ck_assert_pstr_eq(H.helo, "bulk01.example.biz");
    ck_assert_pstr_eq(H.with, "esmtps tls TLS_AES_256_GCM_SHA384");

    parse("from mta7.example.org ([198.51.100.7]) by mx.example.net with esmtp (Exim 4.96)"
          " id 1q; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(H.rdns, "mta7.example.org");   /* Exim: HELO was the PTR name */
    ck_assert_pstr_eq(H.helo, "mta7.example.org");
}
END_TEST

START_TEST(test_sendmail_ident_and_forged_marks)
{
    parse("from lugh.example.org (root@lugh.example.org [192.0.2.45]) by mx.example.net"
          " (8.9.3/8.9.3) with ESMTP id g8B6aQC04905; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(H.rdns, "lugh.example.org");
    ck_assert_pstr_eq(H.by, "mx.example.net");
    ck_assert_pstr_eq(H.id, "g8B6aQC04905");
    ck_assert_uint_eq(H.flags & RCVD_MAY_BE_FORGED, 0);

    parse("from helo.example.com (ptr.example.org [192.0.2.74]) (may be forged)"
          " by mx.example.net (8.11.6/8.11.6) with ESMTP id g9; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(H.helo, "helo.example.com");
    ck_assert_pstr_eq(H.rdns, "ptr.example.org");
    assert_ip("192.0.2.74");
    ck_assert_uint_ne(H.flags & RCVD_MAY_BE_FORGED, 0);

    parse("from cpu59.example.com (slashdot.example.org [192.0.2.73] (May Be Forged))"
          " by mx.example.net; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(H.rdns, "slashdot.example.org");
    ck_assert_uint_ne(H.flags & RCVD_MAY_BE_FORGED, 0);

    /* the words outside the from clause's comments do not count */
    parse("from a.example.com (a.example.com [192.0.2.1]) by mx.example.net with ESMTP"
          " id x (may be forged); Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_uint_eq(H.flags & RCVD_MAY_BE_FORGED, 0);
}
END_TEST

START_TEST(test_microsoft_by_address_with_and_via)
{
    parse("from ubuntu-s-1vcpu (203.0.113.4) by BN8NAM11FT066.mail.protection.outlook.com"
          " (10.13.177.138) with Microsoft SMTP Server (version=TLS1_2,"
          " cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.6813.19 via Frontend"
          " Transport; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(H.helo, "ubuntu-s-1vcpu");
    ck_assert_ptr_null(H.rdns);
    assert_ip("203.0.113.4");
    ck_assert_pstr_eq(H.by, "BN8NAM11FT066.mail.protection.outlook.com");
    assert_by_ip("10.13.177.138");
    ck_assert_pstr_eq(H.with, "Microsoft SMTP Server");
    ck_assert_pstr_eq(H.id, "15.20.6813.19");
    ck_assert_pstr_eq(H.via, "Frontend Transport");
    ck_assert_int_eq(H.time_ms, T0);

    parse("from mail pickup service by hotmail.example.com with Microsoft SMTPSVC;"
          " Tue, 19 Sep 2023 11:35:49 -0700");
    ck_assert_pstr_eq(H.from, "mail");
    ck_assert_pstr_eq(H.by, "hotmail.example.com");
    ck_assert_pstr_eq(H.with, "Microsoft SMTPSVC");
    ck_assert(!H.has_ip);
    ck_assert_int_eq(H.tz_mins, -420);
}
END_TEST

START_TEST(test_qmail_forms_and_comment_only)
{
    parse("from unknown (HELO mail.example.biz) (203.0.113.9) by mx.example.net with SMTP;"
          " 19 Sep 2023 18:35:49 -0000");
    ck_assert_ptr_null(H.from);                 /* "unknown" is none */
    ck_assert_pstr_eq(H.helo, "mail.example.biz");
    ck_assert_ptr_null(H.rdns);
    assert_ip("203.0.113.9");
    ck_assert_int_eq(H.time_ms, T0);

    parse("from www6.example.com (HELO example.com) (user@192.0.2.240) by mx.example.net"
          " with SMTP; 19 Sep 2023 18:35:49 -0000");
    assert_ip("192.0.2.240");
    ck_assert_pstr_eq(H.helo, "example.com");
    ck_assert_pstr_eq(H.rdns, "www6.example.com");

    parse("(qmail 26320 invoked by uid 104); 19 Sep 2023 18:35:49 -0000");
    ck_assert_uint_ne(H.flags & RCVD_COMMENT, 0);
    ck_assert_uint_eq(H.flags & RCVD_UNPARSED, 0);
    ck_assert_uint_ne(H.flags & RCVD_NO_FROM, 0);
    ck_assert_uint_ne(H.flags & RCVD_NO_BY, 0);
    ck_assert_int_eq(H.time_ms, T0);
}
END_TEST

START_TEST(test_by_only_and_local_submission)
{
    parse("by mail-ej1-f46.example.com with SMTP id 13so4667213ejn.3 for <phish@example.net>;"
          " Tue, 19 Sep 2023 11:35:49 -0700 (PDT)");
    ck_assert_uint_ne(H.flags & RCVD_NO_FROM, 0);
    ck_assert_uint_eq(H.flags & (RCVD_NO_BY | RCVD_UNPARSED), 0);
    ck_assert_pstr_eq(H.by, "mail-ej1-f46.example.com");
    ck_assert_pstr_eq(H.id, "13so4667213ejn.3");
    ck_assert_pstr_eq(H.rcpt, "phish@example.net");
    ck_assert_ptr_null(H.helo);
    ck_assert_int_eq(H.time_ms, T0);

    /* "from" only inside a comment is no from clause */
    parse("(from tony@localhost) by hobbit.example.com (8.11.6/8.11.6) id g8D1QUf21470;"
          " Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_uint_ne(H.flags & RCVD_NO_FROM, 0);
    ck_assert_pstr_eq(H.by, "hobbit.example.com");
    ck_assert_pstr_eq(H.id, "g8D1QUf21470");
}
END_TEST

START_TEST(test_fetchmail_bracket_after_name)
{
    parse("from mail4.example.net [198.51.100.201] by localhost with POP3 (fetchmail-5.9.0)"
          " for jm@localhost (single-drop); Tue, 19 Sep 2023 18:35:49 +0000");
    assert_ip("198.51.100.201");
    ck_assert_pstr_eq(H.helo, "mail4.example.net");
    ck_assert_pstr_eq(H.by, "localhost");
    ck_assert_pstr_eq(H.with, "POP3");
    ck_assert_pstr_eq(H.rcpt, "jm@localhost");
}
END_TEST

/* ---- IPv6 ------------------------------------------------------------------ */

START_TEST(test_ipv6_tagged_bracketed_and_bare)
{
    parse("from mail.example.org (mail.example.org [IPv6:2001:DB8:0:0::1]) by mx.example.net"
          " (Postfix) with ESMTPS id 1; Tue, 19 Sep 2023 18:35:49 +0000");
    assert_ip("2001:db8::1");
    ck_assert_pstr_eq(H.rdns, "mail.example.org");

    parse("from mx.example.org (mx.example.org. [2001:db8:f400:7d00::802]) by mx.example.net"
          " with ESMTPS id x; Tue, 19 Sep 2023 18:35:49 +0000");
    assert_ip("2001:db8:f400:7d00::802");
    ck_assert_pstr_eq(H.rdns, "mx.example.org");       /* trailing dot dropped */

    parse("from EUR05-obe.outbound.example.com (2001:db8:408:e6::28) by"
          " BN0PR03CA0023.example.com (2001:db8:806:317::17) with Microsoft SMTP"
          " Server id 15.20.6792.28; Tue, 19 Sep 2023 18:35:49 +0000");
    assert_ip("2001:db8:408:e6::28");
    assert_by_ip("2001:db8:806:317::17");
    ck_assert_pstr_eq(H.helo, "EUR05-obe.outbound.example.com");

    parse("from [IPv6:2001:db8::25] (helo=[IPv6:2001:db8::25]) by mx.example.net with esmtp"
          " (Exim 4.96) id 1; Tue, 19 Sep 2023 18:35:49 +0000");
    assert_ip("2001:db8::25");

    parse("from x (x [::ffff:192.0.2.1]) by y; Tue, 19 Sep 2023 18:35:49 +0000");
    assert_ip("192.0.2.1");                          /* mapped IPv4 is IPv4 */
}
END_TEST

/* ---- missing parts, comments, garbage, size ---------------------------- */

START_TEST(test_missing_and_bad_dates)
{
    parse("from a.example.com (a.example.com [192.0.2.1]) by mx.example.net");
    ck_assert_uint_ne(H.flags & RCVD_NO_DATE, 0);
    ck_assert_ptr_null(H.date);
    ck_assert_int_eq(H.time_ms, 0);

    parse("from a.example.com (a.example.com [192.0.2.1]) by mx.example.net;   ");
    ck_assert_uint_ne(H.flags & RCVD_NO_DATE, 0);

    parse("from a.example.com (a.example.com [192.0.2.1]) by mx.example.net; 22/08/2002 16:54:15");
    ck_assert_uint_ne(H.flags & RCVD_BAD_DATE, 0);
    ck_assert_uint_eq(H.flags & RCVD_NO_DATE, 0);
    ck_assert_pstr_eq(H.date, "22/08/2002 16:54:15");
    ck_assert_int_eq(H.time_ms, 0);

    /* no ';': a date right after the id still counts (a platform's habit) */
    parse("from MTgyNjM3Mg (unknown) by geopod-ismtpd-2 (SG) with HTTP id U2C3InC4Tmm"
          " Tue, 19 Sep 2023 18:35:49.483 +0000 (UTC)");
    ck_assert_uint_eq(H.flags & (RCVD_NO_DATE | RCVD_BAD_DATE), 0);
    ck_assert_int_eq(H.time_ms, T0 + 483);
    ck_assert_pstr_eq(H.id, "U2C3InC4Tmm");

    /* ...but not words that are no date */
    parse("by filterdrecv-5bb with SMTP id filterdrecv-5bb-1 2023-10-18 20:26:44.77 +0000 UTC"
          " m=+92807.787996798");
    ck_assert_uint_ne(H.flags & RCVD_NO_DATE, 0);
    ck_assert_ptr_null(H.date);
}
END_TEST

START_TEST(test_nested_comments_and_semicolons_inside)
{
    parse("from a.example.com (a.example.com [192.0.2.1] (x (y; z) w)) (comment; by q)"
          " by mx.example.net with ESMTP id 7; Tue, 19 Sep 2023 18:35:49 +0000");
    assert_ip("192.0.2.1");
    ck_assert_pstr_eq(H.rdns, "a.example.com");
    ck_assert_pstr_eq(H.by, "mx.example.net");      /* "by q" was in a comment */
    ck_assert_pstr_eq(H.id, "7");
    ck_assert_int_eq(H.time_ms, T0);

    /* an escaped parenthesis does not close the comment */
    parse("from a.example.com (a.example.com \\) [192.0.2.1]) by mx.example.net;"
          " Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(H.by, "mx.example.net");
    ck_assert_int_eq(H.time_ms, T0);

    /* a comment that never closes: the date is still found */
    parse("from a.example.com (a.example.com [192.0.2.1] by mx.example.net;"
          " Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_int_eq(H.time_ms, T0);
    ck_assert_uint_ne(H.flags & RCVD_NO_BY, 0);
}
END_TEST

START_TEST(test_garbage_is_unparsed_never_a_crash)
{
    parse("hello world; this is not a trace line");
    ck_assert_uint_ne(H.flags & RCVD_UNPARSED, 0);
    ck_assert_uint_ne(H.flags & RCVD_BAD_DATE, 0);
    ck_assert_ptr_null(H.by);

    parse("");
    ck_assert_uint_ne(H.flags & RCVD_UNPARSED, 0);
    ck_assert_uint_ne(H.flags & RCVD_NO_DATE, 0);

    rcvd_hop_clear(&H);
    rcvd_parse(NULL, &H);
    ck_assert_uint_ne(H.flags & RCVD_UNPARSED, 0);

    parse("from");
    ck_assert_uint_eq(H.flags & RCVD_UNPARSED, 0);
    ck_assert_ptr_null(H.helo);
    ck_assert(!H.has_ip);

    parse("from (((((( by ;;;; with )))) id");
    parse("from \x01\x02\xff\xfe (\x80 [999.1.1.1]) by \x7f; \xff");
    ck_assert(!H.has_ip);
    parse("by by by by; ;");
    parse("for <; id >");
}
END_TEST

START_TEST(test_very_long_values_are_bounded)
{
    size_t n = 100 * 1024;
    char *v = xmalloc(n + 1);
    memset(v, 'a', n);
    memcpy(v, "from ", 5);
    v[n] = '\0';
    parse(v);
    ck_assert_uint_ne(H.flags & RCVD_TRUNCATED, 0);
    ck_assert_uint_eq(strlen(H.helo), RCVD_MAX_NAME);

    /* a long with phrase and id are cut too */
    memset(v, 'b', n);
    memcpy(v, "from x by y with ", 17);
    for (size_t i = 17; i < 4000; i += 10)
        v[i] = ' ';
    v[4000] = '\0';
    parse(v);
    ck_assert_uint_le(strlen(H.with), RCVD_MAX_TEXT);
    ck_assert_uint_eq(H.flags & RCVD_TRUNCATED, 0);

    /* many comments and words (within the limit): only the first ones are
     * looked at, the clauses after them are still found */
    char *w = xmalloc(16000);
    strcpy(w, "from h");
    for (int i = 0; i < 600; i++)
        strcat(w, " (c [192.0.2.1]) word");
    strcat(w, " by mx.example.net; Tue, 19 Sep 2023 18:35:49 +0000");
    parse(w);
    assert_ip("192.0.2.1");
    ck_assert_pstr_eq(H.by, "mx.example.net");
    ck_assert_int_eq(H.time_ms, T0);
    ck_assert_uint_eq(H.flags, 0);
    free(w);
    free(v);
}
END_TEST

static uint32_t rnd_state = 4242;

static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state;
}

START_TEST(test_random_mutations_do_not_break_anything)
{
    static const char *const seeds[] = {
        "from a (b [192.0.2.1]) (may be forged) by c (10.0.0.1) with ESMTP id 1 for <x@y>;"
        " Tue, 19 Sep 2023 18:35:49 +0000",
        "from [IPv6:2001:db8::1] (helo=x) by y with esmtp (Exim) id 2 1 Jan 2000 00:00:00 +0000",
        "(qmail 1 invoked (by (uid)) 2); 19 Sep 2023 18:35:49 -0000",
    };
    char buf[512];
    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[iter % 3];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        for (int e = 1 + (int)(rnd() % 8); e > 0; e--) {
            size_t pos = rnd() % (n + 1);
            if (rnd() % 3 == 0)
                n = pos;                                     /* truncate */
            else if (pos < n)
                buf[pos] = rnd() % 2 ? (char)rnd() : "();[]<>@: \\"[rnd() % 11];
        }
        char *copy = xmalloc(n + 1);   /* exact size: overreads are caught */
        memcpy(copy, buf, n);
        copy[n] = '\0';
        parse(copy);
        free(copy);
    }
}
END_TEST

/* ---- dates and addresses ------------------------------------------------- */

START_TEST(test_date_keeps_its_offset)
{
    int tz = 99;
    ck_assert_int_eq(rcvd_date("Wed, 20 Sep 2023 03:35:49 +0900", &tz), T0);
    ck_assert_int_eq(tz, 540);
    ck_assert_int_eq(rcvd_date("Tue, 19 Sep 2023 11:35:49 -0700 (PDT)", &tz), T0);
    ck_assert_int_eq(tz, -420);
    ck_assert_int_eq(rcvd_date("Tue, 19 Sep 2023 14:35:49 EDT", &tz), T0);
    ck_assert_int_eq(tz, -240);
    ck_assert_int_eq(rcvd_date("Wed, 20 Sep 2023 00:05:49 +05:30", &tz), T0);
    ck_assert_int_eq(tz, 330);
    ck_assert_int_eq(rcvd_date("Tue Sep 19 18:35:49 2023", &tz), T0);   /* asctime */
    ck_assert_int_eq(tz, 0);
    ck_assert_int_eq(rcvd_date("Tue, 19 Sep 2023 18:35:49 +0000", NULL), T0);
    tz = 99;
    ck_assert_int_eq(rcvd_date("not a date +0900", &tz), 0);
    ck_assert_int_eq(tz, 0);
    ck_assert_int_eq(rcvd_date("31 Feb 2023 10:00:00 +0000", &tz), 0);
    ck_assert_int_eq(rcvd_date(NULL, &tz), 0);
}
END_TEST

static bool public_of(const char *s)
{
    struct ip a;
    ck_assert_int_eq(ip_parse(s, &a), 0);
    return rcvd_ip_public(&a);
}

START_TEST(test_public_and_private_addresses)
{
    static const char *const private[] = {
        "10.1.2.3", "127.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "100.64.0.1", "169.254.1.1", "0.1.2.3", "224.0.0.1", "192.0.0.8", "198.18.0.1",
        "::1", "::", "fe80::1", "fd00::1", "ff02::1",
    };
    static const char *const public[] = {
        "192.0.2.1", "198.51.100.7", "203.0.113.9", "172.32.0.1", "100.128.0.1",
        "8.8.8.8", "2001:db8::1", "2a00:1450::1",
    };
    for (size_t i = 0; i < sizeof private / sizeof private[0]; i++)
        ck_assert_msg(!public_of(private[i]), "%s counted as public", private[i]);
    for (size_t i = 0; i < sizeof public / sizeof public[0]; i++)
        ck_assert_msg(public_of(public[i]), "%s counted as private", public[i]);
}
END_TEST

static Suite *received_suite(void)
{
    Suite *s = suite_create("received");
    TCase *t = tcase_create("shapes");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_rfc5321_all_clauses);
    tcase_add_test(t, test_postfix_tls_comments_and_unknown_rdns);
    tcase_add_test(t, test_exim_forms);
    tcase_add_test(t, test_sendmail_ident_and_forged_marks);
    tcase_add_test(t, test_microsoft_by_address_with_and_via);
    tcase_add_test(t, test_qmail_forms_and_comment_only);
    tcase_add_test(t, test_by_only_and_local_submission);
    tcase_add_test(t, test_fetchmail_bracket_after_name);
    tcase_add_test(t, test_ipv6_tagged_bracketed_and_bare);
    suite_add_tcase(s, t);

    t = tcase_create("hostile");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_missing_and_bad_dates);
    tcase_add_test(t, test_nested_comments_and_semicolons_inside);
    tcase_add_test(t, test_garbage_is_unparsed_never_a_crash);
    tcase_add_test(t, test_very_long_values_are_bounded);
    tcase_add_test(t, test_random_mutations_do_not_break_anything);
    suite_add_tcase(s, t);

    t = tcase_create("dates and addresses");
    tcase_add_test(t, test_date_keeps_its_offset);
    tcase_add_test(t, test_public_and_private_addresses);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(received_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
