/* Unit tests for lib/relay.c (the relay decision at RCPT TO) and
 * lib/policy.c (configuration + rules: policy_check_rcpt).
 *
 * The site under test delivers local.test, relays for relay.test, trusts
 * 192.0.2.0/25 and 2001:db8:1::/48, and owns 198.51.100.25 and
 * 2001:db8:25::25; clients connect to 198.51.100.26. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "ip.h"
#include "policy.h"
#include "relay.h"
#include "rules.h"
#include "verdict.h"

#define UNKNOWN   "192.0.2.200"      /* not trusted */
#define UNKNOWN6  "2001:db8:2::7"    /* not trusted */
#define TRUSTED   "192.0.2.7"
#define TRUSTED6  "2001:db8:1::7"
#define MAPPED    "::ffff:192.0.2.7"
#define DAEMON    "198.51.100.26"

static const char base_conf[] =
    "local_domains = local.test\n"
    "relay_domains = relay.test\n"
    "trusted_networks = 192.0.2.0/25, 2001:db8:1::/48\n"
    "local_addresses = 198.51.100.25, 2001:db8:25::25\n";

/* ---- helpers ---- */

static char tmpdir[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kanjiki-check-relay-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *path_in(const char *rel)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, rel);
    return buf[k];
}

static void write_file(const char *rel, const char *a, const char *b)
{
    FILE *f = fopen(path_in(rel), "w");
    ck_assert_msg(f != NULL, "cannot write %s", rel);
    fputs(a, f);
    if (b)
        fputs(b, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* The base configuration plus extra lines. */
static struct conf *mkconf(const char *extra)
{
    write_file("kanjiki.conf", base_conf, extra);
    struct conf *c = NULL;
    char err[600] = "";
    ck_assert_msg(conf_load(path_in("kanjiki.conf"), &c, err, sizeof err) == 0,
                  "conf: %s", err);
    return c;
}

static struct ip ipv(const char *s)
{
    struct ip a;
    ck_assert_msg(ip_parse(s, &a) == 0, "ip_parse(%s)", s);
    return a;
}

struct who {
    const char *ip;        /* NULL: unknown */
    const char *auth;      /* NULL: not authenticated */
    bool popauth;
    const char *daemon;    /* NULL: unknown */
};

static const struct who W_UNKNOWN = { UNKNOWN, NULL, false, DAEMON };
static const struct who W_TRUSTED = { TRUSTED, NULL, false, DAEMON };
/* every kind of authorisation at once */
static const struct who W_ALL = { TRUSTED, "alice", true, DAEMON };

static struct relay_result check_as(const struct conf *c, struct who w, const char *rcpt)
{
    struct ip ip, dip;
    if (w.ip)
        ip = ipv(w.ip);
    if (w.daemon)
        dip = ipv(w.daemon);
    struct relay_client cl = { w.ip ? &ip : NULL, w.daemon ? &dip : NULL, w.auth, w.popauth };
    struct relay_result r;
    memset(&r, 0x5a, sizeof r);   /* relay_check must fill everything it reports */
    relay_check(c, &cl, rcpt, strlen(rcpt), &r);
    return r;
}

#define assert_accepted(r, rcpt, why)                                              \
    do {                                                                           \
        ck_assert_msg((r).ok, "%s refused (%s: %s), want accepted as %s", (rcpt), \
                      (r).reason, (r).detail, (why));                              \
        ck_assert_str_eq((r).check, "relay");                                      \
        ck_assert_str_eq((r).reason, (why));                                       \
    } while (0)

static void assert_reply_text_clean(const char *t)
{
    ck_assert_msg(t[0] != '\0', "empty reply text");
    for (const char *p = t; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f && *p != '%',
                      "reply text not plain ASCII without '%%': %s", t);
}

#define assert_refused(r, rcpt, c_, x_, chk, why)                                    \
    do {                                                                             \
        ck_assert_msg(!(r).ok, "%s accepted (%s), want refused as %s", (rcpt),      \
                      (r).reason, (why));                                            \
        ck_assert_msg(!strcmp((r).reason, (why)), "%s refused as %s, want %s",       \
                      (rcpt), (r).reason, (why));                                    \
        ck_assert_int_eq((r).code, (c_));                                            \
        ck_assert_str_eq((r).xcode, (x_));                                           \
        ck_assert_str_eq((r).check, (chk));                                          \
        assert_reply_text_clean((r).text);                                           \
    } while (0)

#define assert_relay_denied(r, rcpt) \
    assert_refused(r, rcpt, 554, "5.7.1", "relay", "relay_denied")

/* ---- destinations ---- */

START_TEST(test_local_domain_accepted_from_anyone)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_UNKNOWN, "<user@local.test>");
    assert_accepted(r, "user@local.test", "local_domain");
    r = check_as(c, (struct who){ NULL, NULL, false, NULL }, "user@local.test");
    assert_accepted(r, "user@local.test (no client ip)", "local_domain");
    r = check_as(c, (struct who){ UNKNOWN6, NULL, false, NULL }, "user@local.test");
    assert_accepted(r, "user@local.test (v6)", "local_domain");
    conf_free(c);
}
END_TEST

START_TEST(test_relay_domain_accepted_from_anyone)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_UNKNOWN, "<user@relay.test>");
    assert_accepted(r, "user@relay.test", "relay_domain");
    conf_free(c);
}
END_TEST

START_TEST(test_foreign_domain_refused_for_unknown_client)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_UNKNOWN, "<user@example.net>");
    assert_relay_denied(r, "user@example.net");
    ck_assert_msg(strstr(r.text, "elaying denied") != NULL, "text: %s", r.text);
    ck_assert_msg(strstr(r.detail, "example.net") != NULL, "detail: %s", r.detail);
    r = check_as(c, (struct who){ UNKNOWN6, NULL, false, DAEMON }, "user@example.net");
    assert_relay_denied(r, "user@example.net (v6 client)");
    r = check_as(c, (struct who){ NULL, NULL, false, NULL }, "user@example.net");
    assert_relay_denied(r, "user@example.net (no client ip)");
    conf_free(c);
}
END_TEST

START_TEST(test_foreign_domain_accepted_for_smtp_auth)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, (struct who){ UNKNOWN, "alice", false, DAEMON },
                                     "user@example.net");
    assert_accepted(r, "user@example.net", "smtp_auth");
    ck_assert_msg(strstr(r.detail, "alice") != NULL, "detail: %s", r.detail);
    r = check_as(c, (struct who){ NULL, "alice@local.test", false, NULL }, "user@example.com");
    assert_accepted(r, "user@example.com (no ip)", "smtp_auth");
    conf_free(c);
}
END_TEST

START_TEST(test_empty_auth_user_is_not_authenticated)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, (struct who){ UNKNOWN, "", false, DAEMON },
                                     "user@example.net");
    assert_relay_denied(r, "user@example.net (auth \"\")");
    conf_free(c);
}
END_TEST

START_TEST(test_foreign_domain_accepted_from_trusted_ipv4)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_TRUSTED, "user@example.net");
    assert_accepted(r, "user@example.net", "trusted_network");
    r = check_as(c, (struct who){ "192.0.2.127", NULL, false, DAEMON }, "user@example.net");
    assert_accepted(r, "user@example.net (edge of /25)", "trusted_network");
    r = check_as(c, (struct who){ "192.0.2.128", NULL, false, DAEMON }, "user@example.net");
    assert_relay_denied(r, "user@example.net (just outside /25)");
    conf_free(c);
}
END_TEST

START_TEST(test_foreign_domain_accepted_from_trusted_ipv6)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, (struct who){ TRUSTED6, NULL, false, DAEMON },
                                     "user@example.net");
    assert_accepted(r, "user@example.net", "trusted_network");
    conf_free(c);
}
END_TEST

START_TEST(test_foreign_domain_accepted_from_ipv4_mapped_trusted_client)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, (struct who){ MAPPED, NULL, false, DAEMON },
                                     "user@example.net");
    assert_accepted(r, "user@example.net", "trusted_network");
    r = check_as(c, (struct who){ "::ffff:192.0.2.200", NULL, false, DAEMON },
                 "user@example.net");
    assert_relay_denied(r, "user@example.net (mapped untrusted)");
    conf_free(c);
}
END_TEST

START_TEST(test_foreign_domain_accepted_under_popauth_grant)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, (struct who){ UNKNOWN, NULL, true, DAEMON },
                                     "user@example.net");
    assert_accepted(r, "user@example.net", "popauth_grant");
    conf_free(c);
}
END_TEST

START_TEST(test_default_configuration_trusts_only_loopback)
{
    struct conf *c = conf_defaults();
    struct relay_result r = check_as(c, (struct who){ "127.0.0.1", NULL, false, NULL },
                                     "user@example.net");
    assert_accepted(r, "user@example.net from 127.0.0.1", "trusted_network");
    r = check_as(c, (struct who){ "::1", NULL, false, NULL }, "user@example.net");
    assert_accepted(r, "user@example.net from ::1", "trusted_network");
    r = check_as(c, W_UNKNOWN, "user@example.net");
    assert_relay_denied(r, "user@example.net");
    r = check_as(c, W_UNKNOWN, "user@localhost");
    assert_accepted(r, "user@localhost", "local_domain");
    conf_free(c);
}
END_TEST

/* ---- domain comparison ---- */

START_TEST(test_domain_comparison_ignores_case_and_one_trailing_dot)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_UNKNOWN, "<user@LOCAL.TEST.>");
    assert_accepted(r, "user@LOCAL.TEST.", "local_domain");
    r = check_as(c, W_UNKNOWN, "user@Relay.Test");
    assert_accepted(r, "user@Relay.Test", "relay_domain");
    conf_free(c);
}
END_TEST

START_TEST(test_domain_comparison_is_exact_on_labels)
{
    struct conf *c = mkconf(NULL);
    static const char *foreign[] = { "user@evillocal.test", "user@local.test.example",
                                     "user@sub.local.test", "user@evilrelay.test",
                                     "user@relay.test.example.net", "user@test" };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        struct relay_result r = check_as(c, W_UNKNOWN, foreign[i]);
        assert_relay_denied(r, foreign[i]);
    }
    conf_free(c);
}
END_TEST

/* ---- routing tricks ---- */

static const struct {
    const char *rcpt, *reason;
} tricks[] = {
    { "<u%example.net@local.test>", "percent_hack" },
    { "u%local.test@local.test", "percent_hack" },
    { "u%example.net", "percent_hack" },
    { "example.net!u@local.test", "bang_path" },
    { "example.net!u", "bang_path" },
    { "u@example.net@local.test", "double_at" },
    { "\"u@example.net\"@local.test", "quoted_local" },
    { "\"u%example.net\"@local.test", "quoted_local" },
    { "\"example.net!u\"@local.test", "quoted_local" },
    { "<@local.test:u@example.net>", "source_route" },
    { "@relay.test,@local.test:u@example.net", "source_route" },
    { "u", "unqualified" },
    { "<u@>", "empty_domain" },
};

START_TEST(test_routing_trick_refused_even_from_an_authorised_client)
{
    struct conf *c = mkconf(NULL);
    for (size_t i = 0; i < sizeof tricks / sizeof tricks[0]; i++) {
        struct relay_result r = check_as(c, W_ALL, tricks[i].rcpt);
        assert_refused(r, tricks[i].rcpt, 554, "5.7.1", "route", tricks[i].reason);
        r = check_as(c, W_UNKNOWN, tricks[i].rcpt);
        assert_refused(r, tricks[i].rcpt, 554, "5.7.1", "route", tricks[i].reason);
    }
    conf_free(c);
}
END_TEST

START_TEST(test_empty_domain_refused_even_when_every_trick_is_allowed)
{
    struct conf *c = mkconf("allow_routing = percent_hack bang_path double_at quoted_local "
                            "source_route unqualified ip_literal\n");
    struct relay_result r = check_as(c, W_ALL, "u@");
    assert_refused(r, "u@", 554, "5.7.1", "route", "empty_domain");
    conf_free(c);
}
END_TEST

START_TEST(test_allowed_percent_hack_is_checked_against_its_target)
{
    struct conf *c = mkconf("allow_routing = percent_hack\n");
    struct relay_result r = check_as(c, W_UNKNOWN, "u%example.net@local.test");
    assert_relay_denied(r, "u%example.net@local.test from unknown");
    ck_assert_msg(strstr(r.detail, "example.net") != NULL, "detail: %s", r.detail);
    r = check_as(c, W_UNKNOWN, "u%local.test@local.test");
    ck_assert_msg(r.ok, "u%%local.test@local.test refused: %s", r.reason);
    r = check_as(c, W_UNKNOWN, "u%relay.test@local.test");
    ck_assert_msg(r.ok, "u%%relay.test@local.test refused: %s", r.reason);
    r = check_as(c, W_UNKNOWN, "u%local.test@example.net");
    assert_relay_denied(r, "u%local.test@example.net from unknown");
    r = check_as(c, W_TRUSTED, "u%example.net@local.test");
    assert_accepted(r, "u%example.net@local.test from trusted", "trusted_network");
    /* only the named trick is allowed */
    r = check_as(c, W_ALL, "example.net!u@local.test");
    assert_refused(r, "example.net!u@local.test", 554, "5.7.1", "route", "bang_path");
    conf_free(c);
}
END_TEST

START_TEST(test_allowed_bang_path_is_checked_against_its_target)
{
    struct conf *c = mkconf("allow_routing = bang_path\n");
    struct relay_result r = check_as(c, W_UNKNOWN, "example.net!u@local.test");
    assert_relay_denied(r, "example.net!u@local.test from unknown");
    r = check_as(c, W_UNKNOWN, "local.test!u@local.test");
    ck_assert_msg(r.ok, "local.test!u@local.test refused: %s", r.reason);
    r = check_as(c, W_TRUSTED, "example.net!u@local.test");
    assert_accepted(r, "example.net!u@local.test from trusted", "trusted_network");
    conf_free(c);
}
END_TEST

START_TEST(test_bare_bang_path_needs_unqualified_too_and_then_authorisation)
{
    /* kanjiki.conf(5): a bang path without '@' (d!u) is unqualified as well:
     * permitting it needs unqualified too; then, like Postfix's
     * swap_bangpath, it goes where d says: local if d is ours, else only
     * for an authorised client. */
    struct conf *c = mkconf("allow_routing = bang_path\n");
    struct relay_result r = check_as(c, W_TRUSTED, "local.test!u");
    assert_refused(r, "local.test!u (bang_path only)", 554, "5.7.1", "route", "unqualified");
    conf_free(c);

    c = mkconf("allow_routing = bang_path unqualified\n");
    r = check_as(c, W_UNKNOWN, "local.test!u");
    assert_accepted(r, "local.test!u from unknown", "local_domain");
    r = check_as(c, W_UNKNOWN, "example.net!u");
    assert_relay_denied(r, "example.net!u from unknown");
    r = check_as(c, W_TRUSTED, "example.net!u");
    assert_accepted(r, "example.net!u from trusted", "trusted_network");
    conf_free(c);
}
END_TEST

START_TEST(test_bare_percent_hack_needs_unqualified_too_and_then_authorisation)
{
    struct conf *c = mkconf("allow_routing = percent_hack\n");
    struct relay_result r = check_as(c, W_TRUSTED, "u%local.test");
    assert_refused(r, "u%local.test (percent_hack only)", 554, "5.7.1", "route",
                   "unqualified");
    conf_free(c);

    c = mkconf("allow_routing = percent_hack unqualified\n");
    r = check_as(c, W_UNKNOWN, "u%local.test");
    assert_accepted(r, "u%local.test from unknown", "local_domain");
    r = check_as(c, W_UNKNOWN, "u%example.net");
    assert_relay_denied(r, "u%example.net from unknown");
    r = check_as(c, (struct who){ UNKNOWN, "alice", false, DAEMON }, "u%example.net");
    assert_accepted(r, "u%example.net with auth", "smtp_auth");
    conf_free(c);
}
END_TEST

START_TEST(test_allowed_double_at_is_checked_against_its_target)
{
    struct conf *c = mkconf("allow_routing = double_at\n");
    struct relay_result r = check_as(c, W_UNKNOWN, "u@example.net@local.test");
    assert_relay_denied(r, "u@example.net@local.test from unknown");
    r = check_as(c, W_TRUSTED, "u@example.net@local.test");
    assert_accepted(r, "u@example.net@local.test from trusted", "trusted_network");
    conf_free(c);
}
END_TEST

START_TEST(test_allowed_quoted_local_is_checked_against_its_target)
{
    struct conf *c = mkconf("allow_routing = quoted_local\n");
    struct relay_result r = check_as(c, W_UNKNOWN, "\"u@example.net\"@local.test");
    assert_relay_denied(r, "\"u@example.net\"@local.test from unknown");
    r = check_as(c, W_UNKNOWN, "\"u@local.test\"@local.test");
    ck_assert_msg(r.ok, "\"u@local.test\"@local.test refused: %s", r.reason);
    conf_free(c);
}
END_TEST

START_TEST(test_allowed_source_route_is_checked_against_its_target)
{
    struct conf *c = mkconf("allow_routing = source_route\n");
    struct relay_result r = check_as(c, W_UNKNOWN, "@local.test:u@example.net");
    assert_relay_denied(r, "@local.test:u@example.net from unknown");
    r = check_as(c, W_TRUSTED, "@local.test:u@example.net");
    assert_accepted(r, "@local.test:u@example.net from trusted", "trusted_network");
    conf_free(c);
}
END_TEST

START_TEST(test_allowed_trick_without_a_destination_is_still_refused)
{
    struct conf *c = mkconf("allow_routing = percent_hack bang_path\n");
    struct relay_result r = check_as(c, W_ALL, "u%@local.test");
    assert_refused(r, "u%@local.test", 554, "5.7.1", "route", "percent_hack");
    r = check_as(c, W_ALL, "!u@local.test");
    assert_refused(r, "!u@local.test", 554, "5.7.1", "route", "bang_path");
    conf_free(c);
}
END_TEST

START_TEST(test_allowed_unqualified_is_taken_as_local)
{
    struct conf *c = mkconf("allow_routing = unqualified\n");
    struct relay_result r = check_as(c, W_UNKNOWN, "u");
    assert_accepted(r, "u", "local_domain");
    /* still no bang path */
    r = check_as(c, W_ALL, "example.net!u");
    assert_refused(r, "example.net!u", 554, "5.7.1", "route", "bang_path");
    conf_free(c);
}
END_TEST

START_TEST(test_combined_tricks_refused_even_when_each_is_allowed)
{
    struct conf *c = mkconf("allow_routing = percent_hack bang_path\n");
    struct relay_result r = check_as(c, W_ALL, "local.test!u%local.test@local.test");
    assert_refused(r, "local.test!u%local.test@local.test", 554, "5.7.1", "route",
                   "multiple_tricks");
    r = check_as(c, W_UNKNOWN, "example.net!u%example.com@local.test");
    assert_refused(r, "example.net!u%example.com@local.test", 554, "5.7.1", "route",
                   "multiple_tricks");
    conf_free(c);
}
END_TEST

/* ---- IP literals ---- */

START_TEST(test_own_ip_literal_is_local)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_UNKNOWN, "<postmaster@[198.51.100.25]>");
    assert_accepted(r, "postmaster@[198.51.100.25]", "own_ip_literal");
    r = check_as(c, W_UNKNOWN, "user@[IPv6:2001:db8:25::25]");
    assert_accepted(r, "user@[IPv6:2001:db8:25::25]", "own_ip_literal");
    /* the address the client connected to counts as ours */
    r = check_as(c, W_UNKNOWN, "user@[198.51.100.26]");
    assert_accepted(r, "user@[198.51.100.26] (daemon address)", "own_ip_literal");
    conf_free(c);
}
END_TEST

START_TEST(test_other_ip_literal_refused_even_from_an_authorised_client)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_ALL, "user@[198.51.100.27]");
    assert_refused(r, "user@[198.51.100.27]", 554, "5.7.1", "route", "ip_literal");
    r = check_as(c, W_ALL, "user@[IPv6:2001:db8:25::26]");
    assert_refused(r, "user@[IPv6:2001:db8:25::26]", 554, "5.7.1", "route", "ip_literal");
    /* without a daemon address, that address is not known to be ours */
    r = check_as(c, (struct who){ UNKNOWN, NULL, false, NULL }, "user@[198.51.100.26]");
    assert_refused(r, "user@[198.51.100.26] (no daemon ip)", 554, "5.7.1", "route",
                   "ip_literal");
    conf_free(c);
}
END_TEST

START_TEST(test_allowed_ip_literal_is_a_foreign_destination)
{
    struct conf *c = mkconf("allow_routing = ip_literal\n");
    struct relay_result r = check_as(c, W_UNKNOWN, "user@[198.51.100.27]");
    assert_relay_denied(r, "user@[198.51.100.27] from unknown");
    r = check_as(c, W_TRUSTED, "user@[198.51.100.27]");
    assert_accepted(r, "user@[198.51.100.27] from trusted", "trusted_network");
    r = check_as(c, (struct who){ UNKNOWN, "alice", false, DAEMON }, "user@[IPv6:2001:db8::9]");
    assert_accepted(r, "user@[IPv6:2001:db8::9] with auth", "smtp_auth");
    r = check_as(c, W_UNKNOWN, "user@[198.51.100.25]");
    assert_accepted(r, "user@[198.51.100.25]", "own_ip_literal");
    conf_free(c);
}
END_TEST

/* ---- postmaster and syntax ---- */

START_TEST(test_bare_postmaster_accepted_from_anyone)
{
    struct conf *c = mkconf(NULL);
    static const char *forms[] = { "postmaster", "<postmaster>", "<Postmaster>" };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        struct relay_result r = check_as(c, W_UNKNOWN, forms[i]);
        assert_accepted(r, forms[i], "postmaster");
        r = check_as(c, (struct who){ NULL, NULL, false, NULL }, forms[i]);
        assert_accepted(r, forms[i], "postmaster");
    }
    /* a postmaster elsewhere is just another foreign address */
    struct relay_result r = check_as(c, W_UNKNOWN, "postmaster@example.net");
    assert_relay_denied(r, "postmaster@example.net");
    conf_free(c);
}
END_TEST

START_TEST(test_unparsable_recipient_is_bad_syntax)
{
    struct conf *c = mkconf(NULL);
    char longlocal[80], longpath[300];
    memset(longlocal, 'a', 65);
    strcpy(longlocal + 65, "@local.test");
    strcpy(longpath, "u@");
    for (size_t l = 2; l < 270; l += 11)
        strcat(longpath, "abcdefghij.");
    strcat(longpath, "local.test");
    const char *bad[] = { "<u@local.test", "u@local.test>", "\"u@local.test",
                          "u@local..test", "u@[192.0.2.300]", "u\x01@local.test",
                          "\xff@local.test", longlocal, longpath, "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct relay_result r = check_as(c, W_ALL, bad[i]);
        assert_refused(r, bad[i], 501, "5.1.3", "syntax", "bad_syntax");
    }
    conf_free(c);
}
END_TEST

START_TEST(test_nul_byte_in_recipient_is_bad_syntax)
{
    struct conf *c = mkconf(NULL);
    static const char rcpt[] = "u@local.test\0@example.net";
    struct ip ip = ipv(TRUSTED);
    struct relay_client cl = { &ip, NULL, "alice", true };
    struct relay_result r;
    relay_check(c, &cl, rcpt, sizeof rcpt - 1, &r);
    assert_refused(r, "u@local.test<NUL>@example.net", 501, "5.1.3", "syntax", "bad_syntax");
    conf_free(c);
}
END_TEST

START_TEST(test_null_path_as_recipient_is_bad_syntax)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_ALL, "<>");
    assert_refused(r, "<>", 501, "5.1.3", "syntax", "bad_syntax");
    conf_free(c);
}
END_TEST

START_TEST(test_utf8_recipient_at_local_domain_accepted)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_UNKNOWN, "<j\xc3\xbcrgen@local.test>");
    assert_accepted(r, "jürgen@local.test", "local_domain");
    conf_free(c);
}
END_TEST

START_TEST(test_result_keeps_the_parsed_recipient)
{
    struct conf *c = mkconf(NULL);
    struct relay_result r = check_as(c, W_UNKNOWN, "<User@LOCAL.test>");
    ck_assert(r.ok);
    ck_assert_str_eq(r.addr.local, "User");
    ck_assert_str_eq(r.addr.domain, "local.test");
    conf_free(c);
}
END_TEST

/* ---- policy: configuration + rules ---- */

static struct policy *mkpolicy(const char *conf_extra, const char *rules)
{
    mkdir(path_in("rules"), 0755);
    if (rules)
        write_file("rules/50-site.rules", rules, NULL);
    char conf[2048];
    snprintf(conf, sizeof conf, "%srules = rules\n%s", base_conf, conf_extra ? conf_extra : "");
    write_file("kanjiki.conf", conf, NULL);
    struct policy *p = NULL;
    char err[600] = "";
    ck_assert_msg(policy_load(path_in("kanjiki.conf"), &p, err, sizeof err) == 0,
                  "policy_load: %s", err);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* "<tmpdir>/rules/50-site.rules:LINE" */
static const char *site_rule(int line)
{
    static char buf[700];
    snprintf(buf, sizeof buf, "%s/rules/50-site.rules:%d", tmpdir, line);
    return buf;
}

struct txn {
    const char *ip, *auth, *sender, *helo;
    bool popauth;
};

static struct policy_rcpt decide(const struct policy *p, struct txn t, const char *rcpt)
{
    struct ip ip, dip = ipv(DAEMON);
    if (t.ip)
        ip = ipv(t.ip);
    struct policy_txn pt = { t.ip ? &ip : NULL, &dip, t.helo, t.sender, t.auth, t.popauth };
    struct policy_rcpt o;
    memset(&o, 0x5a, sizeof o);
    policy_check_rcpt(p, &pt, rcpt, strlen(rcpt), &o);
    return o;
}

static const struct txn T_UNKNOWN = { UNKNOWN, NULL, "<sender@example.com>", "mail.example.com",
                                      false };

START_TEST(test_policy_without_file_uses_defaults_and_no_rules)
{
    struct policy *p = NULL;
    char err[200] = "";
    ck_assert_msg(policy_load(NULL, &p, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_nonnull(p->rules);
    ck_assert_uint_eq(p->rules->n, 0);
    struct policy_rcpt o = decide(p, (struct txn){ "127.0.0.1", NULL, "<a@example.com>", NULL,
                                                   false }, "u@example.net");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    ck_assert_str_eq(o.reason, "trusted_network");
    o = decide(p, T_UNKNOWN, "u@example.net");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_str_eq(o.reason, "relay_denied");
    policy_unref(p);
}
END_TEST

START_TEST(test_policy_load_reports_rules_errors_with_file_line_column)
{
    mkdir(path_in("rules"), 0755);
    write_file("rules/50-site.rules", "deny sender example.com\nallow sender x reply \"x\"\n",
               NULL);
    char conf[1024];
    snprintf(conf, sizeof conf, "%srules = rules\n", base_conf);
    write_file("kanjiki.conf", conf, NULL);
    struct policy *p = NULL;
    char err[600] = "", want[700];
    ck_assert_int_eq(policy_load(path_in("kanjiki.conf"), &p, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s/rules/50-site.rules:2:16: ", tmpdir);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "error '%s', want '%s'", err, want);
}
END_TEST

START_TEST(test_policy_load_reports_conf_errors_with_file_line)
{
    write_file("kanjiki.conf", base_conf, "mode = loose\n");
    struct policy *p = NULL;
    char err[600] = "", want[700];
    ck_assert_int_eq(policy_load(path_in("kanjiki.conf"), &p, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:5: mode:", path_in("kanjiki.conf"));
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "error '%s', want '%s'", err, want);
}
END_TEST

START_TEST(test_policy_load_missing_rules_directory_is_an_error)
{
    write_file("kanjiki.conf", base_conf, "rules = no-such-rules\n");
    struct policy *p = NULL;
    char err[600] = "";
    ck_assert_int_eq(policy_load(path_in("kanjiki.conf"), &p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "no-such-rules") != NULL, "error '%s'", err);
}
END_TEST

START_TEST(test_policy_references_keep_it_alive)
{
    struct policy *p = mkpolicy(NULL, "deny sender example.com\n");
    ck_assert_int_eq(p->refs, 1);
    ck_assert_ptr_eq(policy_ref(p), p);
    ck_assert_int_eq(p->refs, 2);
    policy_unref(p);
    ck_assert_int_eq(p->refs, 1);
    /* still usable after one of two references is dropped */
    struct policy_rcpt o = decide(p, T_UNKNOWN, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    policy_unref(p);
    policy_unref(NULL);
}
END_TEST

START_TEST(test_policy_accepts_local_recipient_when_no_rule_matches)
{
    struct policy *p = mkpolicy(NULL, "deny sender example.org\n");
    struct policy_rcpt o = decide(p, T_UNKNOWN, "<u@local.test>");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    ck_assert_str_eq(o.check, "relay");
    ck_assert_str_eq(o.reason, "local_domain");
    ck_assert_ptr_null(o.rule);
    ck_assert(!o.allowed_by_rule);
    policy_unref(p);
}
END_TEST

START_TEST(test_policy_relay_refusal_is_554_relay_denied)
{
    struct policy *p = mkpolicy(NULL, "# no rules yet\n");
    struct policy_rcpt o = decide(p, T_UNKNOWN, "u@example.net");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_int_eq(o.code, 554);
    ck_assert_str_eq(o.xcode, "5.7.1");
    ck_assert_str_eq(o.check, "relay");
    ck_assert_str_eq(o.reason, "relay_denied");
    ck_assert_ptr_null(o.rule);
    assert_reply_text_clean(o.text);
    policy_unref(p);
}
END_TEST

START_TEST(test_deny_rule_refuses_with_its_reply_and_origin)
{
    struct policy *p = mkpolicy(NULL, "# site rules\n"
                                      "deny sender spammer@example.com \\\n"
                                      "  reply \"550 5.7.1 Go away\"\n");
    struct policy_rcpt o = decide(p, (struct txn){ UNKNOWN, NULL, "<Spammer@Example.com>",
                                                   NULL, false }, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_int_eq(o.code, 550);
    ck_assert_str_eq(o.xcode, "5.7.1");
    ck_assert_str_eq(o.text, "Go away");
    ck_assert_str_eq(o.check, "rule");
    ck_assert_str_eq(o.reason, "deny_rule");
    ck_assert_ptr_nonnull(o.rule);
    ck_assert_str_eq(o.rule, site_rule(2));
    ck_assert_msg(strstr(o.detail, site_rule(2)) != NULL, "detail: %s", o.detail);
    ck_assert(!o.allowed_by_rule);
    policy_unref(p);
}
END_TEST

START_TEST(test_deny_rule_with_default_reply)
{
    struct policy *p = mkpolicy(NULL, "deny helo friend\n");
    struct policy_rcpt o = decide(p, (struct txn){ UNKNOWN, NULL, "<a@example.com>", "FRIEND",
                                                   false }, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_int_eq(o.code, 550);
    ck_assert_str_eq(o.xcode, "5.7.1");
    ck_assert_str_eq(o.text, "Access denied (kanjiki)");
    ck_assert_str_eq(o.reason, "deny_rule");
    policy_unref(p);
}
END_TEST

START_TEST(test_deny_rule_with_4xx_reply_is_a_tempfail)
{
    struct policy *p = mkpolicy(NULL, "deny rcpt busy@local.test reply \"450 4.2.1 later\"\n");
    struct policy_rcpt o = decide(p, T_UNKNOWN, "<BUSY@local.test>");
    ck_assert_int_eq(o.action, VERDICT_TEMPFAIL);
    ck_assert_int_eq(o.code, 450);
    ck_assert_str_eq(o.xcode, "4.2.1");
    ck_assert_str_eq(o.text, "later");
    ck_assert_str_eq(o.reason, "deny_rule");
    o = decide(p, T_UNKNOWN, "<idle@local.test>");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    policy_unref(p);
}
END_TEST

START_TEST(test_deny_rule_applies_to_authorised_clients_and_postmaster)
{
    struct policy *p = mkpolicy(NULL, "deny client 192.0.2.0/24\n");
    struct policy_rcpt o = decide(p, (struct txn){ TRUSTED, "alice", "<a@example.com>", NULL,
                                                   true }, "u@example.net");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_str_eq(o.reason, "deny_rule");
    ck_assert_str_eq(o.rule, site_rule(1));
    o = decide(p, T_UNKNOWN, "postmaster");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_str_eq(o.reason, "deny_rule");
    /* another client is not concerned */
    o = decide(p, (struct txn){ "198.51.100.7", NULL, "<a@example.com>", NULL, false },
               "postmaster");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    ck_assert_str_eq(o.reason, "postmaster");
    policy_unref(p);
}
END_TEST

START_TEST(test_allow_rule_marks_the_recipient_and_keeps_the_relay_reason)
{
    struct policy *p = mkpolicy(NULL, "allow sender boss@example.com\n"
                                      "deny sender example.com\n");
    struct policy_rcpt o = decide(p, (struct txn){ UNKNOWN, NULL, "<boss@example.com>", NULL,
                                                   false }, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    ck_assert(o.allowed_by_rule);
    ck_assert_str_eq(o.check, "relay");
    ck_assert_str_eq(o.reason, "local_domain");
    ck_assert_ptr_nonnull(o.rule);
    ck_assert_str_eq(o.rule, site_rule(1));
    o = decide(p, (struct txn){ UNKNOWN, NULL, "<clerk@example.com>", NULL, false },
               "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_str_eq(o.rule, site_rule(2));
    policy_unref(p);
}
END_TEST

START_TEST(test_allow_rule_never_authorises_relaying)
{
    struct policy *p = mkpolicy(NULL, "allow client 192.0.2.200\n"
                                      "allow sender <>, sender@example.com\n"
                                      "allow rcpt example.net, u@\n"
                                      "allow helo mail.example.com\n");
    struct policy_rcpt o = decide(p, T_UNKNOWN, "u@example.net");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_int_eq(o.code, 554);
    ck_assert_str_eq(o.reason, "relay_denied");
    ck_assert(!o.allowed_by_rule);
    ck_assert_ptr_null(o.rule);
    o = decide(p, (struct txn){ UNKNOWN, NULL, "<>", NULL, false }, "u@example.net");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_str_eq(o.reason, "relay_denied");
    policy_unref(p);
}
END_TEST

START_TEST(test_allow_rule_does_not_excuse_a_routing_trick)
{
    struct policy *p = mkpolicy(NULL, "allow client 192.0.2.0/24\nallow rcpt @local.test\n");
    struct policy_rcpt o = decide(p, (struct txn){ TRUSTED, "alice", NULL, NULL, true },
                                  "u%example.net@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_str_eq(o.check, "route");
    ck_assert_str_eq(o.reason, "percent_hack");
    ck_assert(!o.allowed_by_rule);
    policy_unref(p);
}
END_TEST

START_TEST(test_relay_refusal_comes_before_deny_rules)
{
    struct policy *p = mkpolicy(NULL, "deny rcpt example.net reply \"450 4.7.1 later\"\n");
    struct policy_rcpt o = decide(p, T_UNKNOWN, "u@example.net");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_int_eq(o.code, 554);
    ck_assert_str_eq(o.reason, "relay_denied");
    ck_assert_ptr_null(o.rule);
    policy_unref(p);
}
END_TEST

START_TEST(test_rules_files_are_tried_in_name_order)
{
    mkdir(path_in("rules"), 0755);
    write_file("rules/10-exceptions.rules", "allow client 198.51.100.7\n", NULL);
    struct policy *p = mkpolicy(NULL, "deny client 198.51.100.0/24\n");
    struct policy_rcpt o = decide(p, (struct txn){ "198.51.100.7", NULL, NULL, NULL, false },
                                  "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    ck_assert(o.allowed_by_rule);
    o = decide(p, (struct txn){ "198.51.100.8", NULL, NULL, NULL, false }, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_str_eq(o.rule, site_rule(1));
    policy_unref(p);
}
END_TEST

START_TEST(test_null_sender_rule_matches_bounces)
{
    struct policy *p = mkpolicy(NULL, "deny sender <>\n");
    struct policy_rcpt o = decide(p, (struct txn){ UNKNOWN, NULL, "<>", NULL, false },
                                  "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_str_eq(o.reason, "deny_rule");
    o = decide(p, T_UNKNOWN, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    policy_unref(p);
}
END_TEST

START_TEST(test_unparsable_or_missing_sender_matches_no_sender_rule)
{
    struct policy *p = mkpolicy(NULL, "deny sender example.com, .example.com, a@\n");
    struct policy_rcpt o = decide(p, (struct txn){ UNKNOWN, NULL, "<a@example.com", NULL,
                                                   false }, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    o = decide(p, (struct txn){ UNKNOWN, NULL, NULL, NULL, false }, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    o = decide(p, (struct txn){ UNKNOWN, NULL, "a@example.com", NULL, false }, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    policy_unref(p);
}
END_TEST

START_TEST(test_client_and_helo_rules_need_a_known_client_and_helo)
{
    struct policy *p = mkpolicy(NULL, "deny client 0.0.0.0/0, ::/0\n");
    struct policy_rcpt o = decide(p, (struct txn){ NULL, NULL, NULL, NULL, false },
                                  "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    o = decide(p, (struct txn){ UNKNOWN6, NULL, NULL, NULL, false }, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    policy_unref(p);

    p = mkpolicy(NULL, "deny helo .example.com\n");
    o = decide(p, (struct txn){ UNKNOWN, NULL, NULL, NULL, false }, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    o = decide(p, T_UNKNOWN, "u@local.test");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    policy_unref(p);
}
END_TEST

START_TEST(test_rcpt_rule_matches_the_recipient_being_decided)
{
    struct policy *p = mkpolicy(NULL, "deny rcpt former@local.test reply "
                                      "\"550 5.1.1 This mailbox is closed\"\n");
    struct policy_rcpt o = decide(p, T_UNKNOWN, "<Former@LOCAL.TEST.>");
    ck_assert_int_eq(o.action, VERDICT_REJECT);
    ck_assert_int_eq(o.code, 550);
    ck_assert_str_eq(o.xcode, "5.1.1");
    ck_assert_str_eq(o.text, "This mailbox is closed");
    o = decide(p, T_UNKNOWN, "<current@local.test>");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    /* the sender being former@local.test does not matter */
    o = decide(p, (struct txn){ UNKNOWN, NULL, "<former@local.test>", NULL, false },
               "current@local.test");
    ck_assert_int_eq(o.action, VERDICT_ACCEPT);
    policy_unref(p);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *t = tcase_create("destinations");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_local_domain_accepted_from_anyone);
    tcase_add_test(t, test_relay_domain_accepted_from_anyone);
    tcase_add_test(t, test_foreign_domain_refused_for_unknown_client);
    tcase_add_test(t, test_foreign_domain_accepted_for_smtp_auth);
    tcase_add_test(t, test_empty_auth_user_is_not_authenticated);
    tcase_add_test(t, test_foreign_domain_accepted_from_trusted_ipv4);
    tcase_add_test(t, test_foreign_domain_accepted_from_trusted_ipv6);
    tcase_add_test(t, test_foreign_domain_accepted_from_ipv4_mapped_trusted_client);
    tcase_add_test(t, test_foreign_domain_accepted_under_popauth_grant);
    tcase_add_test(t, test_default_configuration_trusts_only_loopback);
    tcase_add_test(t, test_domain_comparison_ignores_case_and_one_trailing_dot);
    tcase_add_test(t, test_domain_comparison_is_exact_on_labels);
    suite_add_tcase(s, t);

    t = tcase_create("routing");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_routing_trick_refused_even_from_an_authorised_client);
    tcase_add_test(t, test_empty_domain_refused_even_when_every_trick_is_allowed);
    tcase_add_test(t, test_allowed_percent_hack_is_checked_against_its_target);
    tcase_add_test(t, test_allowed_bang_path_is_checked_against_its_target);
    tcase_add_test(t, test_bare_bang_path_needs_unqualified_too_and_then_authorisation);
    tcase_add_test(t, test_bare_percent_hack_needs_unqualified_too_and_then_authorisation);
    tcase_add_test(t, test_allowed_double_at_is_checked_against_its_target);
    tcase_add_test(t, test_allowed_quoted_local_is_checked_against_its_target);
    tcase_add_test(t, test_allowed_source_route_is_checked_against_its_target);
    tcase_add_test(t, test_allowed_trick_without_a_destination_is_still_refused);
    tcase_add_test(t, test_allowed_unqualified_is_taken_as_local);
    tcase_add_test(t, test_combined_tricks_refused_even_when_each_is_allowed);
    tcase_add_test(t, test_own_ip_literal_is_local);
    tcase_add_test(t, test_other_ip_literal_refused_even_from_an_authorised_client);
    tcase_add_test(t, test_allowed_ip_literal_is_a_foreign_destination);
    suite_add_tcase(s, t);

    t = tcase_create("syntax");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_bare_postmaster_accepted_from_anyone);
    tcase_add_test(t, test_unparsable_recipient_is_bad_syntax);
    tcase_add_test(t, test_nul_byte_in_recipient_is_bad_syntax);
    tcase_add_test(t, test_null_path_as_recipient_is_bad_syntax);
    tcase_add_test(t, test_utf8_recipient_at_local_domain_accepted);
    tcase_add_test(t, test_result_keeps_the_parsed_recipient);
    suite_add_tcase(s, t);

    t = tcase_create("policy");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_policy_without_file_uses_defaults_and_no_rules);
    tcase_add_test(t, test_policy_load_reports_rules_errors_with_file_line_column);
    tcase_add_test(t, test_policy_load_reports_conf_errors_with_file_line);
    tcase_add_test(t, test_policy_load_missing_rules_directory_is_an_error);
    tcase_add_test(t, test_policy_references_keep_it_alive);
    tcase_add_test(t, test_policy_accepts_local_recipient_when_no_rule_matches);
    tcase_add_test(t, test_policy_relay_refusal_is_554_relay_denied);
    tcase_add_test(t, test_deny_rule_refuses_with_its_reply_and_origin);
    tcase_add_test(t, test_deny_rule_with_default_reply);
    tcase_add_test(t, test_deny_rule_with_4xx_reply_is_a_tempfail);
    tcase_add_test(t, test_deny_rule_applies_to_authorised_clients_and_postmaster);
    tcase_add_test(t, test_allow_rule_marks_the_recipient_and_keeps_the_relay_reason);
    tcase_add_test(t, test_allow_rule_never_authorises_relaying);
    tcase_add_test(t, test_allow_rule_does_not_excuse_a_routing_trick);
    tcase_add_test(t, test_relay_refusal_comes_before_deny_rules);
    tcase_add_test(t, test_rules_files_are_tried_in_name_order);
    tcase_add_test(t, test_null_sender_rule_matches_bounces);
    tcase_add_test(t, test_unparsable_or_missing_sender_matches_no_sender_rule);
    tcase_add_test(t, test_client_and_helo_rules_need_a_known_client_and_helo);
    tcase_add_test(t, test_rcpt_rule_matches_the_recipient_being_decided);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(relay_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
