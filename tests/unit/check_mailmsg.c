/* Unit tests for lib/mailmsg.c: the SMTP facts of the delivering hop
 * recovered from a stored message's trace headers (each common Received
 * shape, the order of trust between Received-SPF, Authentication-Results
 * and Received), dates, the header fields the spam signals use, mbox
 * splitting, body fingerprints, and hostile input. Every message here is
 * crafted; addresses are documentation ranges and example domains. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidrset.h"
#include "mailmsg.h"
#include "sbuf.h"
#include "xalloc.h"

/* 2023-09-19 18:35:49 UTC */
#define T0 INT64_C(1695148549000)

static struct mailmsg M;
static char err[128];

static void setup(void)
{
    memset(&M, 0, sizeof M);
    err[0] = '\0';
}

static void teardown(void)
{
    mailmsg_clear(&M);
}

static int parse_t(const char *text, const struct cidrset *trusted)
{
    mailmsg_clear(&M);
    return mailmsg_parse(text, strlen(text), trusted, &M, err, sizeof err);
}

static int parse(const char *text)
{
    return parse_t(text, NULL);
}

/* A message whose only trace field is "Received: <value>". */
static void hop(const char *value)
{
    struct sbuf b = SBUF_INIT;
    sbuf_addf(&b, "Received: %s\r\nFrom: a@example.com\r\nSubject: x\r\n\r\nbody\r\n", value);
    ck_assert_int_eq(parse(sbuf_str(&b)), 0);
    sbuf_free(&b);
}

/* ---- Received shapes ------------------------------------------------- */

START_TEST(test_postfix_helo_ptr_addr)
{
    hop("from mail.example.org (mx1.example.org [192.0.2.10])\r\n"
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
        "\t(No client certificate requested)\r\n"
        "\tby mx.example.net (Postfix) with ESMTPS id 4RqK0x;\r\n"
        "\tTue, 19 Sep 2023 18:35:49 +0000 (UTC)");
    ck_assert_pstr_eq(M.client_ip, "192.0.2.10");
    ck_assert_pstr_eq(M.client_from, "received");
    ck_assert_pstr_eq(M.helo, "mail.example.org");
    ck_assert_pstr_eq(M.ptr, "mx1.example.org");
    ck_assert_int_eq(M.time_ms, T0);
}
END_TEST

START_TEST(test_postfix_unknown_ptr_is_none)
{
    hop("from WIN-3KD8 (unknown [203.0.113.77]) by mx.example.net (Postfix) with ESMTP id 1;"
        " Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "203.0.113.77");
    ck_assert_pstr_eq(M.helo, "WIN-3KD8");
    ck_assert_ptr_null(M.ptr);
}
END_TEST

START_TEST(test_postfix_literal_helo_and_trailing_dot_ptr)
{
    hop("from [10.1.2.3] (mail-sor-f41.example.com. [198.51.100.41]) by mx.example.net"
        " with SMTPS id x; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "198.51.100.41");
    ck_assert_pstr_eq(M.helo, "[10.1.2.3]");
    ck_assert_pstr_eq(M.ptr, "mail-sor-f41.example.com");
}
END_TEST

START_TEST(test_exim_bracket_addr_with_helo)
{
    hop("from [203.0.113.5] (helo=ylmf-pc)\n\tby mx.example.net with esmtp (Exim 4.96)\n"
        "\t(envelope-from <x@example.com>) id 1qiKxY-000123-AB; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "203.0.113.5");
    ck_assert_pstr_eq(M.helo, "ylmf-pc");
    ck_assert_ptr_null(M.ptr);
}
END_TEST

START_TEST(test_exim_ptr_addr_port_and_helo)
{
    hop("from mta7.example.org ([198.51.100.7]:41234 helo=bulk01.example.biz)"
        " by mx.example.net with esmtps (TLS1.3) (Exim 4.94.2) id 1q; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "198.51.100.7");
    ck_assert_pstr_eq(M.ptr, "mta7.example.org");
    ck_assert_pstr_eq(M.helo, "bulk01.example.biz");
}
END_TEST

START_TEST(test_exim_ptr_only_means_helo_equals_ptr)
{
    hop("from mta7.example.org ([198.51.100.7]) by mx.example.net with esmtp (Exim 4.96)"
        " id 1q; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "198.51.100.7");
    ck_assert_pstr_eq(M.ptr, "mta7.example.org");
    ck_assert_pstr_eq(M.helo, "mta7.example.org");
}
END_TEST

START_TEST(test_sendmail_may_be_forged_both_forms)
{
    hop("from cpu59.example.com (slashdot.example.org [192.0.2.73] (may be forged))\n"
        "\tby mx.example.net (8.12.5/8.12.5) with ESMTP id g8; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "192.0.2.73");
    ck_assert_pstr_eq(M.helo, "cpu59.example.com");
    ck_assert_pstr_eq(M.ptr, "slashdot.example.org");

    hop("from helo.example.com (ptr.example.org [192.0.2.74]) (may be forged)\n"
        "\tby mx.example.net (8.11.6/8.11.6) with ESMTP id g9; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "192.0.2.74");
    ck_assert_pstr_eq(M.helo, "helo.example.com");
    ck_assert_pstr_eq(M.ptr, "ptr.example.org");
}
END_TEST

START_TEST(test_sendmail_ident_prefix_dropped_from_ptr)
{
    hop("from lugh.example.org (root@lugh.example.org [192.0.2.45]) by mx.example.net"
        " (8.9.3/8.9.3) with ESMTP id; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.ptr, "lugh.example.org");
    hop("from smtp1.example.net (IDENT:qmailr@smtp1.example.net [192.0.2.14]) by mx.example.net;"
        " Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "192.0.2.14");
    ck_assert_pstr_eq(M.ptr, "smtp1.example.net");
}
END_TEST

START_TEST(test_sendmail_no_ptr)
{
    hop("from xent.example.com ([198.51.100.236]) by mx.example.net (8.11.6/8.11.6) with ESMTP"
        " id g8; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "198.51.100.236");
    ck_assert_pstr_eq(M.helo, "xent.example.com");
    ck_assert_ptr_null(M.ptr);
}
END_TEST

START_TEST(test_microsoft_bare_addr_in_parentheses)
{
    hop("from ubuntu-s-1vcpu-1gb-35gb-intel-sfo3-06 (203.0.113.4) by\r\n"
        " BN8NAM11FT066.mail.protection.outlook.com (10.13.177.138) with Microsoft SMTP\r\n"
        " Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\r\n"
        " 15.20.6813.19 via Frontend Transport; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "203.0.113.4");
    ck_assert_pstr_eq(M.helo, "ubuntu-s-1vcpu-1gb-35gb-intel-sfo3-06");
    ck_assert_ptr_null(M.ptr);
    ck_assert_int_eq(M.time_ms, T0);
}
END_TEST

START_TEST(test_qmail_unknown_with_helo)
{
    hop("from unknown (HELO mail.example.biz) (203.0.113.9)\n  by mx.example.net with SMTP;"
        " 19 Sep 2023 18:35:49 -0000");
    ck_assert_pstr_eq(M.client_ip, "203.0.113.9");
    ck_assert_pstr_eq(M.helo, "mail.example.biz");
    ck_assert_ptr_null(M.ptr);
    ck_assert_int_eq(M.time_ms, T0);
}
END_TEST

START_TEST(test_qmail_ptr_helo_ident_addr)
{
    hop("from www6.example.com (HELO example.com) (user@192.0.2.240) by mx.example.net"
        " with SMTP; 19 Sep 2023 18:35:49 -0000");
    ck_assert_pstr_eq(M.client_ip, "192.0.2.240");
    ck_assert_pstr_eq(M.helo, "example.com");
    ck_assert_pstr_eq(M.ptr, "www6.example.com");
}
END_TEST

START_TEST(test_yahoo_ehlo_form)
{
    hop("from 127.0.0.1 (EHLO mail.example.biz) (203.0.113.33) by mta1.example.net with"
        " SMTPS; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "203.0.113.33");
    ck_assert_pstr_eq(M.helo, "mail.example.biz");
    ck_assert_ptr_null(M.ptr);
}
END_TEST

START_TEST(test_fetchmail_bracket_after_name)
{
    hop("from mail4.example.net [198.51.100.201] by localhost with POP3 (fetchmail-5.9.0)"
        " for jm@localhost (single-drop); Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "198.51.100.201");
    ck_assert_pstr_eq(M.helo, "mail4.example.net");
}
END_TEST

START_TEST(test_ipv6_tagged_literal)
{
    hop("from mail.example.org (mail.example.org [IPv6:2001:DB8:0:0::1]) by mx.example.net"
        " (Postfix) with ESMTPS id 1; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "2001:db8::1");
    ck_assert_pstr_eq(M.ptr, "mail.example.org");
    ck_assert_pstr_eq(M.helo, "mail.example.org");
}
END_TEST

START_TEST(test_ipv6_bare_microsoft_and_bracketed)
{
    hop("from EUR05-VI1-obe.outbound.protection.outlook.com (2001:db8:408:e6::28) by"
        " BN0PR03CA0023.outlook.office365.com (2001:db8:806:317::17) with Microsoft SMTP"
        " Server id 15.20.6792.28; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "2001:db8:408:e6::28");
    ck_assert_pstr_eq(M.helo, "EUR05-VI1-obe.outbound.protection.outlook.com");

    hop("from mx.example.org (mx.example.org. [2001:db8:f400:7d00::802]) by mx.example.net"
        " with ESMTPS id x; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "2001:db8:f400:7d00::802");
    ck_assert_pstr_eq(M.ptr, "mx.example.org");
}
END_TEST

START_TEST(test_ipv4_mapped_normalised_to_ipv4)
{
    hop("from mail.example.org (mail.example.org [::ffff:192.0.2.1]) by courier.example.net"
        " with ESMTP; Tue, 19 Sep 2023 18:35:49 +0000");
    ck_assert_pstr_eq(M.client_ip, "192.0.2.1");
    ck_assert_int_eq(parse("Received-SPF: pass client-ip=::FFFF:198.51.100.9;\n\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.9");
}
END_TEST

START_TEST(test_hop_without_from_clause_or_address_is_skipped)
{
    ck_assert_int_eq(parse("Received: by mx.example.net (Postfix, from userid 0) id 39;"
                           " Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: (qmail 1234 invoked from network); 19 Sep 2023\n"
                           "Received: from helo.example.com by mx.example.net; 19 Sep 2023\n"
                           "Received: from a.example.com (a.example.com [192.0.2.8]) by b;"
                           " Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "\nbody\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "192.0.2.8");
    ck_assert_pstr_eq(M.helo, "a.example.com");
}
END_TEST

/* ---- order of trust -------------------------------------------------- */

#define SPF_FIELD "Received-SPF: Pass (mx.example.net: domain of a@example.com designates\n" \
                  " 198.51.100.1 as permitted sender) receiver=mx.example.net;\n" \
                  " client-ip=198.51.100.1; helo=spf-helo.example.com;\n"
#define AR_FIELD  "Authentication-Results: spf=pass (sender IP is 198.51.100.2)\n" \
                  " smtp.mailfrom=example.com; dkim=none (message not signed)\n"
#define RCV_FIELD "Received: from rcv.example.com (rcv.example.com [198.51.100.3]) by mx;" \
                  " Tue, 19 Sep 2023 18:35:49 +0000\n"

START_TEST(test_received_spf_beats_authentication_results_and_received)
{
    ck_assert_int_eq(parse(RCV_FIELD AR_FIELD SPF_FIELD "\nbody\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.1");
    ck_assert_pstr_eq(M.client_from, "received-spf");
}
END_TEST

START_TEST(test_authentication_results_beats_received)
{
    ck_assert_int_eq(parse(RCV_FIELD AR_FIELD "\nbody\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.2");
    ck_assert_pstr_eq(M.client_from, "authentication-results");
    ck_assert_int_eq(parse(RCV_FIELD "\nbody\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.3");
    ck_assert_pstr_eq(M.client_from, "received");
}
END_TEST

START_TEST(test_received_spf_without_client_ip_falls_through)
{
    ck_assert_int_eq(parse("Received-SPF: TempError (mx.example.net: error in processing during\n"
                           " lookup of ubuntu: DNS Timeout)\n" AR_FIELD RCV_FIELD "\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.2");
    ck_assert_pstr_eq(M.client_from, "authentication-results");
}
END_TEST

START_TEST(test_received_spf_of_an_earlier_hop_not_used)
{
    /* The receiving site's own Received-SPF has no client-ip; the one
     * further down is a forwarder's check of its own client. */
    ck_assert_int_eq(parse("Received: from mx-int.example.net (::1) by store.example.net with HTTPS;"
                           " Tue, 19 Sep 2023 18:35:50 +0000\n"
                           "Authentication-Results: spf=none (sender IP is 198.51.100.2)\n"
                           " smtp.mailfrom=example.com; dkim=none\n"
                           "Received-SPF: None (mx.example.net: example.com does not designate\n"
                           " permitted sender hosts)\n"
                           "Received: from fwd.example.org (198.51.100.2) by mx.example.net with"
                           " Microsoft SMTP Server id 15.20; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from origin.example.com (origin.example.com. [203.0.113.65])"
                           " by fwd.example.org with SMTPS id x; Tue, 19 Sep 2023 18:35:40 +0000\n"
                           "Received-SPF: pass (fwd.example.org: domain of a@example.com designates"
                           " 203.0.113.65 as permitted sender) client-ip=203.0.113.65;\n\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.2");
    ck_assert_pstr_eq(M.client_from, "authentication-results");
    ck_assert_pstr_eq(M.helo, "fwd.example.org");
    ck_assert_int_eq(M.time_ms, T0);
}
END_TEST

START_TEST(test_received_spf_of_an_internal_recheck_skipped)
{
    ck_assert_int_eq(parse("Received-SPF: pass (localhost is always allowed.) client-ip=127.0.0.1;\n"
                           SPF_FIELD "\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.1");
    ck_assert_pstr_eq(M.client_from, "received-spf");
}
END_TEST

START_TEST(test_helo_and_ptr_come_from_the_hop_of_the_spf_address)
{
    ck_assert_int_eq(parse("Received: from inner.example.net (inner.example.net [203.0.113.50])"
                           " by mx; Tue, 19 Sep 2023 18:40:00 +0000\n"
                           SPF_FIELD
                           "Received: from bulk.example.biz (ptr.example.biz [198.51.100.1])"
                           " by inner.example.net; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Date: Tue, 19 Sep 2023 10:00:00 +0000\n\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.1");
    ck_assert_pstr_eq(M.helo, "bulk.example.biz");
    ck_assert_pstr_eq(M.ptr, "ptr.example.biz");
    ck_assert_int_eq(M.time_ms, T0);
}
END_TEST

START_TEST(test_spf_helo_used_when_no_hop_matches)
{
    ck_assert_int_eq(parse(SPF_FIELD "Date: Tue, 19 Sep 2023 18:35:49 +0000\n\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.1");
    ck_assert_pstr_eq(M.helo, "spf-helo.example.com");
    ck_assert_ptr_null(M.ptr);
    ck_assert_int_eq(M.time_ms, T0);
}
END_TEST

START_TEST(test_private_and_loopback_hops_skipped)
{
    ck_assert_int_eq(parse("Received: from localhost (localhost [127.0.0.1]) by a; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from a (a [10.0.0.5]) by b; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from b (b [192.168.7.1]) by c; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from c (c [172.20.0.1]) by d; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from d (d [100.64.1.1]) by e; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from e (e [169.254.1.1]) by f; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from f (::1) by g; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from g (g [IPv6:fe80::1]) by h; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from h (h [IPv6:fd00::1]) by i; Tue, 19 Sep 2023 18:35:49 +0000\n"
                           "Received: from pub.example.org (pub.example.org [192.0.2.99]) by j;"
                           " Tue, 19 Sep 2023 18:35:49 +0000\n\n"), 0);
    ck_assert_pstr_eq(M.client_ip, "192.0.2.99");
    ck_assert_pstr_eq(M.helo, "pub.example.org");
}
END_TEST

START_TEST(test_trusted_relays_skipped)
{
    struct cidrset *tr = cidrset_new();
    char e[128];
    ck_assert_int_eq(cidrset_add_str(tr, "198.51.100.0/24", e, sizeof e), 0);
    ck_assert_int_eq(cidrset_add_str(tr, "2001:db8:10::/48", e, sizeof e), 0);
    const char *msg =
        "Received: from relay1.example.net (2001:db8:10::5) by mx; Tue, 19 Sep 2023 18:35:49 +0000\n"
        "Received: from relay2.example.net (relay2.example.net [198.51.100.20]) by relay1;"
        " Tue, 19 Sep 2023 18:35:49 +0000\n"
        "Received: from sender.example.com (sender.example.com [203.0.113.20]) by relay2;"
        " Tue, 19 Sep 2023 18:35:49 +0000\n\n";
    ck_assert_int_eq(parse_t(msg, tr), 0);
    ck_assert_pstr_eq(M.client_ip, "203.0.113.20");
    ck_assert_pstr_eq(M.helo, "sender.example.com");
    ck_assert_int_eq(parse_t(msg, NULL), 0);
    ck_assert_pstr_eq(M.client_ip, "2001:db8:10::5");
    cidrset_free(tr);
}
END_TEST

START_TEST(test_private_or_trusted_spf_and_ar_addresses_ignored)
{
    struct cidrset *tr = cidrset_new();
    char e[128];
    ck_assert_int_eq(cidrset_add_str(tr, "198.51.100.2", e, sizeof e), 0);
    ck_assert_int_eq(parse_t("Received-SPF: pass client-ip=10.9.8.7;\n" AR_FIELD RCV_FIELD "\n", tr), 0);
    ck_assert_pstr_eq(M.client_ip, "198.51.100.3");
    ck_assert_pstr_eq(M.client_from, "received");
    cidrset_free(tr);
}
END_TEST

START_TEST(test_no_trace_fields_no_client)
{
    ck_assert_int_eq(parse("From: a@example.com\nSubject: hi\n\nbody\n"), 0);
    ck_assert_ptr_null(M.client_ip);
    ck_assert_ptr_null(M.client_from);
    ck_assert_ptr_null(M.helo);
}
END_TEST

/* ---- time ------------------------------------------------------------ */

static int64_t date_ms(const char *date)
{
    struct sbuf b = SBUF_INIT;
    sbuf_addf(&b, "Date: %s\nSubject: x\n\n", date);
    ck_assert_int_eq(parse(sbuf_str(&b)), 0);
    sbuf_free(&b);
    return M.time_ms;
}

START_TEST(test_time_from_hop_before_date_field)
{
    ck_assert_int_eq(parse("Received: from a.example.com (a.example.com [192.0.2.1]) by mx;\n"
                           "\tTue, 19 Sep 2023 18:36:45 +0000\n"
                           "Date: Tue, 19 Sep 2023 18:35:49 +0000\n\n"), 0);
    ck_assert_int_eq(M.time_ms, INT64_C(1695148605000));
}
END_TEST

START_TEST(test_time_falls_back_to_date_field)
{
    ck_assert_int_eq(parse("Received: from a.example.com (a.example.com [192.0.2.1]) by mx;"
                           " not a date\n"
                           "Date: Tue, 19 Sep 2023 18:35:49 +0000\n\n"), 0);
    ck_assert_int_eq(M.time_ms, T0);
    ck_assert_int_eq(parse("Received: from a.example.com (a.example.com [192.0.2.1]) by mx\n"
                           "Date: Tue, 19 Sep 2023 18:35:49 +0000\n\n"), 0);
    ck_assert_int_eq(M.time_ms, T0);
}
END_TEST

START_TEST(test_date_numeric_zones)
{
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 18:35:49 +0000 (UTC)"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 20:35:49 +0200"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 11:35:49 -0700"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 11:35:49 -0700 (PDT)"), T0);
    ck_assert_int_eq(date_ms("Wed, 20 Sep 2023 00:05:49 +05:30"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 18:35:49 +0000-62495-238"), T0);
}
END_TEST

START_TEST(test_date_named_zones)
{
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 18:35:49 GMT"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 18:35:49 UT"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 14:35:49 EDT"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 11:35:49 (PDT)"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 14:35:49 -0400 EDT"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 18:35:49 Z"), T0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 18:35:49"), T0);    /* none: UTC */
}
END_TEST

START_TEST(test_date_obsolete_forms)
{
    ck_assert_int_eq(date_ms("19 Sep 2023 18:35:49 +0000"), T0);          /* no weekday */
    ck_assert_int_eq(date_ms("Tue, 19 Sep 23 18:35:49 +0000"), T0);       /* 2-digit year */
    ck_assert_int_eq(date_ms("Sat, 2 Jan 99 03:04:05 +0000"), INT64_C(915246245000));
    ck_assert_int_eq(date_ms("Tue,\t19  September 2023 18:35:49 +0000"), T0);
    ck_assert_int_eq(date_ms("Tue Sep 19 18:35:49 2023"), T0);           /* asctime */
    ck_assert_int_eq(date_ms("19 Sep 2023 18:35:49.250 +0000"), T0 + 250);
    ck_assert_int_eq(date_ms("Thu, 29 Feb 2024 12:00:00 +0000"), INT64_C(1709208000000));
}
END_TEST

START_TEST(test_garbage_dates_give_zero)
{
    ck_assert_int_eq(date_ms("yesterday"), 0);
    ck_assert_int_eq(date_ms(""), 0);
    ck_assert_int_eq(date_ms("Tue, 31 Feb 2023 10:00:00 +0000"), 0);
    ck_assert_int_eq(date_ms("Thu, 29 Feb 2023 12:00:00 +0000"), 0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 25:00:00 +0000"), 0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 +0000"), 0);
    ck_assert_int_eq(date_ms("Tue, 19 Foo 2023 18:35:49 +0000"), 0);
    ck_assert_int_eq(date_ms("19/09/2023 18:35:49"), 0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 1960 18:35:49 +0000"), 0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 18:35:49 +9999"), 0);
    ck_assert_int_eq(date_ms("Tue, 19 Sep 2023 18:35:49 03:32:34 -0700"), 0);
    ck_assert_int_eq(date_ms("Tue, 123 Sep 2023 18:35:49 +0000"), 0);
}
END_TEST

/* ---- header fields --------------------------------------------------- */

START_TEST(test_return_path_null_sender_is_empty_string)
{
    ck_assert_int_eq(parse("Return-Path: <>\nSubject: x\n\n"), 0);
    ck_assert_pstr_eq(M.env_sender, "");
    ck_assert_int_eq(parse("Return-Path: <bounce+abc@mail.example.com>\n\n"), 0);
    ck_assert_pstr_eq(M.env_sender, "bounce+abc@mail.example.com");
    ck_assert_int_eq(parse("Return-Path: root@host.example.com\n\n"), 0);
    ck_assert_pstr_eq(M.env_sender, "root@host.example.com");
    ck_assert_int_eq(parse("Subject: x\n\n"), 0);
    ck_assert_ptr_null(M.env_sender);
}
END_TEST

START_TEST(test_from_display_name_address_domain)
{
    ck_assert_int_eq(parse("From: BANCO EXEMPLO<banco.exemplo@Atendimento.Example.COM>\n\n"), 0);
    ck_assert_pstr_eq(M.from, "BANCO EXEMPLO<banco.exemplo@Atendimento.Example.COM>");
    ck_assert_pstr_eq(M.from_addr, "banco.exemplo@Atendimento.Example.COM");
    ck_assert_pstr_eq(M.from_domain, "atendimento.example.com");
    ck_assert_pstr_eq(M.from_display, "BANCO EXEMPLO");

    ck_assert_int_eq(parse("From: plain@example.org (Old Style Name)\n\n"), 0);
    ck_assert_pstr_eq(M.from_addr, "plain@example.org");
    ck_assert_pstr_eq(M.from_display, "Old Style Name");
    ck_assert_pstr_eq(M.from_domain, "example.org");

    ck_assert_int_eq(parse("From: bare@example.org\n\n"), 0);
    ck_assert_pstr_eq(M.from_addr, "bare@example.org");
    ck_assert_ptr_null(M.from_display);
}
END_TEST

START_TEST(test_from_quoted_at_in_display_name)
{
    ck_assert_int_eq(parse("From: \"service@paypal.example\" <x9@evil.example.net>\n\n"), 0);
    ck_assert_pstr_eq(M.from_addr, "x9@evil.example.net");
    ck_assert_pstr_eq(M.from_domain, "evil.example.net");
    ck_assert_pstr_eq(M.from_display, "service@paypal.example");

    ck_assert_int_eq(parse("From: \"A \\\"quoted\\\" <name>\" <a@b.example>\n\n"), 0);
    ck_assert_pstr_eq(M.from_addr, "a@b.example");
    ck_assert_pstr_eq(M.from_display, "A \"quoted\" <name>");
}
END_TEST

START_TEST(test_rfc2047_display_name_and_subject)
{
    /* "Itaucard - Você tem pontos" in UTF-8 base64, a Latin-1 Q word */
    ck_assert_int_eq(parse("From: =?utf-8?B?SXRhdWNhcmQgLSBWb2PDqiB0ZW0gcG9udG9z?= <a@example.com>\n"
                           "Subject: =?iso-8859-1?Q?Ihr_Gutschein_f=FCr_Sie?=\n\n"), 0);
    ck_assert_pstr_eq(M.from_display, "Itaucard - Voc\xc3\xaa tem pontos");
    ck_assert_pstr_eq(M.subject, "Ihr Gutschein f\xc3\xbcr Sie");
    ck_assert_pstr_eq(M.from_addr, "a@example.com");
}
END_TEST

START_TEST(test_rfc2047_adjacent_words_joined_others_kept)
{
    ck_assert_int_eq(parse("Subject: =?UTF-8?B?Q2zDoQ==?=\n =?utf-8?q?ssico?= and\n"
                           " =?koi8-r?B?8NLJ18XU?= =?us-ascii?Q?plain?= =?utf-8?x?bad?=\n\n"), 0);
    ck_assert_pstr_eq(M.subject, "Cl\xc3\xa1ssico and =?koi8-r?B?8NLJ18XU?= plain =?utf-8?x?bad?=");
}
END_TEST

START_TEST(test_message_id_and_domain)
{
    ck_assert_int_eq(parse("Message-Id: <20230919183549.39DEA3F725@Ubuntu-S-1.Example.NET>\n\n"), 0);
    ck_assert_pstr_eq(M.message_id, "20230919183549.39DEA3F725@Ubuntu-S-1.Example.NET");
    ck_assert_pstr_eq(M.msgid_domain, "ubuntu-s-1.example.net");
    ck_assert_int_eq(parse("Message-ID:\n <abc@[192.0.2.1]>\n\n"), 0);
    ck_assert_pstr_eq(M.msgid_domain, "[192.0.2.1]");
    ck_assert_int_eq(parse("Message-ID: <no-at-sign>\n\n"), 0);
    ck_assert_pstr_eq(M.message_id, "no-at-sign");
    ck_assert_ptr_null(M.msgid_domain);
    ck_assert_int_eq(parse("Message-ID: <>\nMessage-ID: <late@example.com>\n\n"), 0);
    ck_assert_ptr_null(M.message_id);
    ck_assert_ptr_null(M.msgid_domain);
}
END_TEST

START_TEST(test_folded_fields_unfolded)
{
    ck_assert_int_eq(parse("Subject: [Notification] Order Update: Your Purchase\r\n"
                           " Successfully Processed\r\n"
                           "Content-Type: multipart/alternative;\r\n"
                           "\tboundary=\"b1\"\r\n"
                           "From:\r\n \"Shop\" <shop@example.com>\r\n\r\nbody"), 0);
    ck_assert_pstr_eq(M.subject, "[Notification] Order Update: Your Purchase Successfully Processed");
    ck_assert_pstr_eq(M.content_type, "multipart/alternative;\tboundary=\"b1\"");
    ck_assert_pstr_eq(M.from_addr, "shop@example.com");
    ck_assert_int_eq(M.nheaders, 3);
    ck_assert_int_eq(M.body_len, 4);
    ck_assert_int_eq(memcmp(M.body, "body", 4), 0);
}
END_TEST

START_TEST(test_first_occurrence_and_case_insensitive_names)
{
    ck_assert_int_eq(parse("SUBJECT: first\nsubject: second\ncontent-transfer-encoding: BASE64\n\n"), 0);
    ck_assert_pstr_eq(M.subject, "first");
    ck_assert_pstr_eq(M.cte, "BASE64");
}
END_TEST

START_TEST(test_header_lookup)
{
    const char *msg = "X-Mailer: Foo\r\n  Bar 1.0\r\nX-Mailer: second\r\n\r\nX-Body: not a field\r\n";
    char *v = mailmsg_header(msg, strlen(msg), "x-mailer");
    ck_assert_pstr_eq(v, "Foo  Bar 1.0");
    free(v);
    ck_assert_ptr_null(mailmsg_header(msg, strlen(msg), "X-Body"));
    ck_assert_ptr_null(mailmsg_header(msg, strlen(msg), "X-Missing"));
    ck_assert_ptr_null(mailmsg_header(NULL, 0, "X-Mailer"));
}
END_TEST

START_TEST(test_leading_mbox_line_skipped)
{
    ck_assert_int_eq(parse("From sender@example.com  Wed Oct 30 21:38:11 2002\n"
                           "Subject: old\n\nbody\n"), 0);
    ck_assert_pstr_eq(M.subject, "old");
    ck_assert_int_eq(M.nheaders, 1);
    /* the obsolete "From : value" is a field, not an mbox line */
    ck_assert_int_eq(parse("From : a@example.com\n\n"), 0);
    ck_assert_pstr_eq(M.from_addr, "a@example.com");
}
END_TEST

/* ---- mbox ------------------------------------------------------------ */

struct got {
    size_t n;
    char *msg[8];
    size_t stop_after;
};

static int collect(const char *msg, size_t len, void *arg)
{
    struct got *g = arg;
    if (g->n < 8)
        g->msg[g->n] = xstrndup(msg, len);
    g->n++;
    return g->stop_after && g->n >= g->stop_after;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n && i < 8; i++)
        free(g->msg[i]);
}

static const char mbox[] =
    "From alice@example.org Tue Sep 19 18:35:49 2023\n"
    "From: alice@example.org\n"
    "Subject: one\n"
    "\n"
    "hello\n"
    ">From the start, mboxrd escapes this\n"
    "From here on it is body text\n"
    "\n"
    "From bob@example.org  Wed Sep 20 10:00:00 2023\n"
    "From: bob@example.org\n"
    "Subject: two\n"
    "\n"
    "second\n"
    "\n"
    "From MAILER-DAEMON Thu Sep 21 01:02:03 2023\n"
    "Subject: three\n"
    "\n"
    "third\n";

START_TEST(test_mbox_split_keeps_escaped_and_body_from_lines)
{
    struct got g = { 0 };
    ck_assert_uint_eq(mailmsg_split_mbox(mbox, strlen(mbox), collect, &g), 3);
    ck_assert_uint_eq(g.n, 3);
    ck_assert_str_eq(g.msg[0], "From: alice@example.org\nSubject: one\n\nhello\n"
                               ">From the start, mboxrd escapes this\n"
                               "From here on it is body text\n");
    ck_assert_str_eq(g.msg[1], "From: bob@example.org\nSubject: two\n\nsecond\n");
    ck_assert_str_eq(g.msg[2], "Subject: three\n\nthird\n");
    ck_assert_int_eq(parse(g.msg[1]), 0);
    ck_assert_pstr_eq(M.subject, "two");
    got_free(&g);
}
END_TEST

START_TEST(test_mbox_callback_stops_and_plain_text_is_one_message)
{
    struct got g = { 0 };
    g.stop_after = 2;
    ck_assert_uint_eq(mailmsg_split_mbox(mbox, strlen(mbox), collect, &g), 2);
    got_free(&g);

    struct got h = { 0 };
    const char *one = "Subject: x\n\nFrom a@b Tue Sep 19 18:35:49 2023\n";
    ck_assert_uint_eq(mailmsg_split_mbox(one, strlen(one), collect, &h), 1);
    ck_assert_str_eq(h.msg[0], one);
    got_free(&h);

    struct got e = { 0 };
    ck_assert_uint_eq(mailmsg_split_mbox("", 0, collect, &e), 0);
    const char *empties = "From a Tue Sep 19 18:35:49 2023\nFrom b Tue Sep 19 18:35:49 2023\n";
    ck_assert_uint_eq(mailmsg_split_mbox(empties, strlen(empties), collect, &e), 0);
    ck_assert_uint_eq(e.n, 0);
}
END_TEST

START_TEST(test_mbox_crlf)
{
    const char *crlf = "From a@example.org Tue Sep 19 18:35:49 2023\r\nSubject: one\r\n\r\nx\r\n\r\n"
                       "From b@example.org Tue Sep 19 18:35:49 2023\r\nSubject: two\r\n\r\ny\r\n";
    struct got g = { 0 };
    ck_assert_uint_eq(mailmsg_split_mbox(crlf, strlen(crlf), collect, &g), 2);
    ck_assert_str_eq(g.msg[0], "Subject: one\r\n\r\nx\r\n");
    ck_assert_str_eq(g.msg[1], "Subject: two\r\n\r\ny\r\n");
    got_free(&g);
}
END_TEST

/* ---- fingerprints ---------------------------------------------------- */

static uint64_t fp(const char *body, const char *ct, const char *cte)
{
    return mailmsg_body_fingerprint(body, strlen(body), ct, cte);
}

static const char copy_a[] =
    "Dear John Smith,\n\n"
    "Your parcel 1Z999AA10123456784 is waiting at our depot since 19/09/2023.\n"
    "Track it here: https://track.example.com/p/abc123?u=john@example.org&t=8812\n"
    "Questions? Write to john.smith@example.org or call 555-0100.\n\n"
    "Regards, Parcel Service\n";
static const char copy_b[] =
    "Dear Maria Lopez,\n\n"
    "Your parcel 1Z888BB20987654321 is waiting at our depot since 21/09/2023.\n"
    "Track it here: https://track.example.com/q/zzz999?u=maria@example.net&t=1\n"
    "Questions? Write to maria.lopez@example.net or call 555-0199.\n\n"
    "Regards, Parcel Service\n";

START_TEST(test_fingerprint_same_spam_different_recipients)
{
    uint64_t a = fp(copy_a, "text/plain; charset=utf-8", "7bit");
    ck_assert_uint_ne(a, 0);
    ck_assert_uint_eq(a, fp(copy_b, "text/plain; charset=utf-8", "7bit"));
}
END_TEST

START_TEST(test_fingerprint_different_texts_differ)
{
    uint64_t a = fp(copy_a, NULL, NULL);
    ck_assert_uint_ne(a, fp("Your invoice is attached. Please pay within 30 days.\n", NULL, NULL));
    ck_assert_uint_ne(a, fp("Dear John Smith,\n\nYour parcel is lost.\n\nRegards, Parcel Service\n",
                            NULL, NULL));
    /* the link's host is part of the text, its path is not */
    char other[sizeof copy_a + 16];
    snprintf(other, sizeof other, "%s", copy_a);
    char *host = strstr(other, "track.example.com");
    memcpy(host, "trick", 5);
    ck_assert_uint_ne(a, fp(other, NULL, NULL));
    ck_assert_uint_ne(fp("one two three", NULL, NULL), fp("one two four", NULL, NULL));
}
END_TEST

START_TEST(test_fingerprint_empty_body_is_zero)
{
    ck_assert_uint_eq(mailmsg_body_fingerprint("", 0, NULL, NULL), 0);
    ck_assert_uint_eq(mailmsg_body_fingerprint(NULL, 5, NULL, NULL), 0);
    ck_assert_uint_eq(fp(" \r\n\t 12345 \n", "text/plain", NULL), 0);
}
END_TEST

START_TEST(test_fingerprint_undoes_base64_and_quoted_printable)
{
    const char *text = "Caro cliente, seus pontos expiram hoje! Resgate agora.\n";
    const char *b64 = "Q2FybyBjbGllbnRlLCBzZXVzIHBvbnRvcyBleHBpcmFtIGhvamUhIFJlc2dhdGUg\r\n"
                      "YWdvcmEuCg==\r\n";
    const char *qp = "Caro cliente, seus pontos expiram hoje! Resgate =\r\nagora=2E\r\n";
    uint64_t a = fp(text, "text/plain", NULL);
    ck_assert_uint_eq(a, fp(b64, "text/plain; charset=utf-8", "base64"));
    ck_assert_uint_eq(a, fp(qp, "text/plain", "Quoted-Printable"));
}
END_TEST

START_TEST(test_fingerprint_ignores_html_markup)
{
    const char *h1 = "<html><head><style>.x{color:red}</style><title>Offer</title></head>"
                     "<body><!-- 8f3a9c --><p>Your <b>account</b> is suspended.</p>"
                     "<a href=\"https://bad.example/verify/123\">Verify&nbsp;now</a></body></html>";
    const char *h2 = "<HTML><BODY><div class=\"a7\" style=\"x\">Offer</div><!-- zz91 -->\n"
                     "<table><tr><td>Your account is <i>suspended</i>.</td></tr></table>\n"
                     "<a href='https://bad.example/v/99'>Verify now</a></BODY></HTML>";
    ck_assert_uint_eq(fp(h1, "text/html", NULL), fp(h2, "text/html; charset=utf-8", NULL));
    ck_assert_uint_eq(fp(h1, "text/html", NULL),
                      fp("Offer. Your account is suspended. Verify now", "text/plain", NULL));
}
END_TEST

START_TEST(test_fingerprint_first_text_part_of_multipart)
{
    const char *mp =
        "This is a multi-part message in MIME format.\r\n"
        "--outer\r\n"
        "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
        "--inner\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "Caro cliente, seus pontos expiram hoje! Resgate =\r\nagora.\r\n"
        "--inner\r\n"
        "Content-Type: text/html\r\n\r\n"
        "<p>something else entirely</p>\r\n"
        "--inner--\r\n"
        "--outer\r\n"
        "Content-Type: application/pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "JVBERi0xLjQK\r\n"
        "--outer--\r\n";
    ck_assert_uint_eq(fp(mp, "multipart/mixed; boundary=outer", NULL),
                      fp("Caro cliente, seus pontos expiram hoje! Resgate agora.", NULL, NULL));
}
END_TEST

START_TEST(test_fingerprint_skips_empty_text_alternative)
{
    const char *mp =
        "--b\n"
        "Content-Type: text/plain; charset=UTF-8\n\n\n"
        "--b\n"
        "Content-Type: text/html; charset=UTF-8\n"
        "Content-Transfer-Encoding: base64\n\n"
        "PHA+WW91ciBhY2NvdW50IGlzIHN1c3BlbmRlZDwvcD4=\n"     /* <p>Your account is suspended</p> */
        "--b--\n";
    ck_assert_uint_eq(fp(mp, "multipart/alternative; boundary=\"b\"", NULL),
                      fp("Your account is suspended", NULL, NULL));
}
END_TEST

START_TEST(test_fingerprint_from_parsed_message)
{
    const char *msg =
        "From: a@example.com\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\n"
        "Q2FybyBjbGllbnRlLCBzZXVzIHBvbnRvcyBleHBpcmFtIGhvamUhIFJlc2dhdGUg\n"
        "YWdvcmEuCg==\n";
    ck_assert_int_eq(parse(msg), 0);
    ck_assert_uint_eq(mailmsg_body_fingerprint(M.body, M.body_len, M.content_type, M.cte),
                      fp("Caro cliente, seus pontos expiram hoje! Resgate agora.", NULL, NULL));
}
END_TEST

/* ---- hostile input --------------------------------------------------- */

START_TEST(test_no_header_at_all_is_an_error)
{
    ck_assert_int_eq(mailmsg_parse("", 0, NULL, &M, err, sizeof err), -1);
    ck_assert_str_eq(err, "no header fields");
    ck_assert_int_eq(parse("\nbody only\n"), -1);
    ck_assert_int_eq(parse("this is not a header\nSubject: x\n\n"), -1);
    ck_assert_int_eq(mailmsg_parse(NULL, 10, NULL, &M, NULL, 0), -1);
    ck_assert_ptr_null(M.subject);
}
END_TEST

START_TEST(test_only_headers_no_blank_line)
{
    ck_assert_int_eq(parse("Subject: only\nFrom: a@example.com"), 0);
    ck_assert_pstr_eq(M.subject, "only");
    ck_assert_pstr_eq(M.from_addr, "a@example.com");
    ck_assert_uint_eq(M.body_len, 0);
}
END_TEST

START_TEST(test_non_field_line_starts_the_body)
{
    ck_assert_int_eq(parse("Subject: x\nthis line has no colon\nFrom: hidden@example.com\n"), 0);
    ck_assert_ptr_null(M.from);
    ck_assert_uint_eq(M.nheaders, 1);
    ck_assert_int_eq(strncmp(M.body, "this line", 9), 0);
}
END_TEST

START_TEST(test_nul_bytes_inside)
{
    const char msg[] = "Subject: a\0b\nFrom: x@exa\0mple.com\n\nbo\0dy";
    ck_assert_int_eq(mailmsg_parse(msg, sizeof msg - 1, NULL, &M, err, sizeof err), 0);
    ck_assert_pstr_eq(M.subject, "ab");
    ck_assert_pstr_eq(M.from_domain, "example.com");
    ck_assert_uint_eq(M.body_len, 5);
}
END_TEST

START_TEST(test_cr_only_line_ends)
{
    ck_assert_int_eq(parse("Subject: old mac\r folded\rFrom: a@example.com\r\rbody\r"), 0);
    ck_assert_pstr_eq(M.subject, "old mac folded");
    ck_assert_pstr_eq(M.from_addr, "a@example.com");
    ck_assert_uint_eq(M.body_len, 5);
}
END_TEST

START_TEST(test_long_lines_and_many_fields)
{
    struct sbuf b = SBUF_INIT;
    sbuf_adds(&b, "Subject: ");
    for (int i = 0; i < 100000; i++)
        sbuf_addc(&b, (char)('a' + i % 26));
    sbuf_adds(&b, "\n");
    for (int i = 0; i < 5000; i++)
        sbuf_addf(&b, "X-Filler-%d: %d\n", i, i);
    for (int i = 0; i < 2000; i++)
        sbuf_adds(&b, "Received: from x (x [10.0.0.1]) by y; Tue, 19 Sep 2023 18:35:49 +0000\n");
    sbuf_adds(&b, "Received: from late.example.com (late [192.0.2.1]) by y\n");
    sbuf_adds(&b, "Received-SPF: pass client-ip=");
    for (int i = 0; i < 50000; i++)
        sbuf_addc(&b, '1');
    sbuf_adds(&b, "\nFrom: \"");
    for (int i = 0; i < 100000; i++)
        sbuf_addc(&b, '(');
    sbuf_adds(&b, "\n\nbody");
    ck_assert_int_eq(parse(sbuf_str(&b)), 0);
    ck_assert_uint_eq(M.nheaders, 1 + 5000 + 2000 + 1 + 1 + 1);
    ck_assert_uint_eq(strlen(M.subject), 65536);               /* capped */
    ck_assert_uint_eq(strlen(M.from), 65536);
    ck_assert_ptr_null(M.client_ip);      /* hops past the examined limit are not read */
    ck_assert_uint_eq(M.body_len, 4);
    sbuf_free(&b);
}
END_TEST

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state;
}

static const char *const seeds[] = {
    "Received: from a (b [192.0.2.1]) (may be forged) by c; Tue, 19 Sep 2023 18:35:49 +0000\n"
    "Received-SPF: pass client-ip=198.51.100.1; helo=x\n"
    "Authentication-Results: spf=pass (sender IP is 2001:db8::1)\n"
    "From: =?utf-8?B?w6k=?= \"q@x\" (c) <a@b.example>\nMessage-ID: <a@b>\nReturn-Path: <>\n"
    "Subject: =?iso-8859-1?Q?=E9_t?=\nDate: Tue, 19 Sep 2023 18:35:49 -0700 (PDT)\n"
    "Content-Type: multipart/alternative; boundary=\"b\"\n\n"
    "--b\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nQ2Fybw==\n"
    "--b\nContent-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n<p>x=3D</p>\n--b--\n",
    "From a Tue Sep 19 18:35:49 2023\nSubject: x\n\n>From y\nFrom b Tue Sep 19 18:35:49 2023\n"
    "Received: from [1.2.3.4] (helo=x) by y with esmtp (Exim); 1 Jan 2000 00:00:00 +0000\n\n"
    "<style>a</style><!-- x --> &amp; https://x.example/y <a href='z'>",
};

START_TEST(test_random_mutations_do_not_break_anything)
{
    char buf[4096];
    for (int iter = 0; iter < 4000; iter++) {
        const char *seed = seeds[iter % 2];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)(rnd() % 16);
        for (int e = 0; e < edits; e++) {
            size_t pos = rnd() % (n + 1);
            switch (rnd() % 5) {
            case 0:                         /* random byte */
                if (pos < n)
                    buf[pos] = (char)rnd();
                break;
            case 1:                         /* interesting byte */
                if (pos < n)
                    buf[pos] = "\0\r\n \t:;()<>[]\"\\=?@"[rnd() % 19];
                break;
            case 2:                         /* truncate */
                n = pos;
                break;
            case 3: {                       /* duplicate a slice */
                size_t len = rnd() % 64;
                if (pos + len <= n && n + len < sizeof buf) {
                    memmove(buf + pos + len, buf + pos, n - pos);
                    n += len;
                }
                break;
            }
            default:                        /* delete a slice */
                if (pos < n) {
                    size_t len = rnd() % (n - pos + 1);
                    memmove(buf + pos, buf + pos + len, n - pos - len);
                    n -= len;
                }
            }
        }
        if (iter % 7 == 0)                  /* pure noise, too */
            for (size_t i = 0; i < n; i++)
                buf[i] = (char)rnd();
        char *copy = xmalloc(n ? n : 1);    /* exact size: overreads are caught */
        memcpy(copy, buf, n);
        struct mailmsg m;
        if (mailmsg_parse(copy, n, NULL, &m, err, sizeof err) == 0) {
            ck_assert(m.body >= copy && m.body + m.body_len == copy + n);
            (void)mailmsg_body_fingerprint(m.body, m.body_len, m.content_type, m.cte);
            mailmsg_clear(&m);
        }
        (void)mailmsg_body_fingerprint(copy, n, "multipart/mixed; boundary=b", "base64");
        free(mailmsg_header(copy, n, "Subject"));
        struct got g = { 0 };
        mailmsg_split_mbox(copy, n, collect, &g);
        got_free(&g);
        free(copy);
    }
}
END_TEST

static Suite *mailmsg_suite(void)
{
    Suite *s = suite_create("mailmsg");
    TCase *t = tcase_create("received");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_postfix_helo_ptr_addr);
    tcase_add_test(t, test_postfix_unknown_ptr_is_none);
    tcase_add_test(t, test_postfix_literal_helo_and_trailing_dot_ptr);
    tcase_add_test(t, test_exim_bracket_addr_with_helo);
    tcase_add_test(t, test_exim_ptr_addr_port_and_helo);
    tcase_add_test(t, test_exim_ptr_only_means_helo_equals_ptr);
    tcase_add_test(t, test_sendmail_may_be_forged_both_forms);
    tcase_add_test(t, test_sendmail_ident_prefix_dropped_from_ptr);
    tcase_add_test(t, test_sendmail_no_ptr);
    tcase_add_test(t, test_microsoft_bare_addr_in_parentheses);
    tcase_add_test(t, test_qmail_unknown_with_helo);
    tcase_add_test(t, test_qmail_ptr_helo_ident_addr);
    tcase_add_test(t, test_yahoo_ehlo_form);
    tcase_add_test(t, test_fetchmail_bracket_after_name);
    tcase_add_test(t, test_ipv6_tagged_literal);
    tcase_add_test(t, test_ipv6_bare_microsoft_and_bracketed);
    tcase_add_test(t, test_ipv4_mapped_normalised_to_ipv4);
    tcase_add_test(t, test_hop_without_from_clause_or_address_is_skipped);
    suite_add_tcase(s, t);

    t = tcase_create("trust");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_received_spf_beats_authentication_results_and_received);
    tcase_add_test(t, test_authentication_results_beats_received);
    tcase_add_test(t, test_received_spf_without_client_ip_falls_through);
    tcase_add_test(t, test_received_spf_of_an_earlier_hop_not_used);
    tcase_add_test(t, test_received_spf_of_an_internal_recheck_skipped);
    tcase_add_test(t, test_helo_and_ptr_come_from_the_hop_of_the_spf_address);
    tcase_add_test(t, test_spf_helo_used_when_no_hop_matches);
    tcase_add_test(t, test_private_and_loopback_hops_skipped);
    tcase_add_test(t, test_trusted_relays_skipped);
    tcase_add_test(t, test_private_or_trusted_spf_and_ar_addresses_ignored);
    tcase_add_test(t, test_no_trace_fields_no_client);
    suite_add_tcase(s, t);

    t = tcase_create("time");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_time_from_hop_before_date_field);
    tcase_add_test(t, test_time_falls_back_to_date_field);
    tcase_add_test(t, test_date_numeric_zones);
    tcase_add_test(t, test_date_named_zones);
    tcase_add_test(t, test_date_obsolete_forms);
    tcase_add_test(t, test_garbage_dates_give_zero);
    suite_add_tcase(s, t);

    t = tcase_create("fields");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_return_path_null_sender_is_empty_string);
    tcase_add_test(t, test_from_display_name_address_domain);
    tcase_add_test(t, test_from_quoted_at_in_display_name);
    tcase_add_test(t, test_rfc2047_display_name_and_subject);
    tcase_add_test(t, test_rfc2047_adjacent_words_joined_others_kept);
    tcase_add_test(t, test_message_id_and_domain);
    tcase_add_test(t, test_folded_fields_unfolded);
    tcase_add_test(t, test_first_occurrence_and_case_insensitive_names);
    tcase_add_test(t, test_header_lookup);
    tcase_add_test(t, test_leading_mbox_line_skipped);
    suite_add_tcase(s, t);

    t = tcase_create("mbox");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_mbox_split_keeps_escaped_and_body_from_lines);
    tcase_add_test(t, test_mbox_callback_stops_and_plain_text_is_one_message);
    tcase_add_test(t, test_mbox_crlf);
    suite_add_tcase(s, t);

    t = tcase_create("fingerprint");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_fingerprint_same_spam_different_recipients);
    tcase_add_test(t, test_fingerprint_different_texts_differ);
    tcase_add_test(t, test_fingerprint_empty_body_is_zero);
    tcase_add_test(t, test_fingerprint_undoes_base64_and_quoted_printable);
    tcase_add_test(t, test_fingerprint_ignores_html_markup);
    tcase_add_test(t, test_fingerprint_first_text_part_of_multipart);
    tcase_add_test(t, test_fingerprint_skips_empty_text_alternative);
    tcase_add_test(t, test_fingerprint_from_parsed_message);
    suite_add_tcase(s, t);

    t = tcase_create("hostile");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_no_header_at_all_is_an_error);
    tcase_add_test(t, test_only_headers_no_blank_line);
    tcase_add_test(t, test_non_field_line_starts_the_body);
    tcase_add_test(t, test_nul_bytes_inside);
    tcase_add_test(t, test_cr_only_line_ends);
    tcase_add_test(t, test_long_lines_and_many_fields);
    tcase_add_test(t, test_random_mutations_do_not_break_anything);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mailmsg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
