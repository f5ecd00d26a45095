/* Unit tests for lib/rules.c: the allow/deny language of the rules files, its
 * error messages (file:line:column) and first-match-wins matching. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ip.h"
#include "rules.h"

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
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kanjiki-check-rules-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* Parse text as "t.rules"; the test fails if it does not parse. */
static struct ruleset *parse_ok(const char *text)
{
    char err[600] = "";
    struct ruleset *rs = rules_new();
    ck_assert_msg(rules_parse(rs, "t.rules", text, strlen(text), err, sizeof err) == 0,
                  "rules_parse failed: %s\n--- text ---\n%s", err, text);
    return rs;
}

/* Parse len bytes that must fail; returns the error message. */
static const char *parse_err_len(const char *text, size_t len)
{
    static char err[600];
    err[0] = '\0';
    struct ruleset *rs = rules_new();
    int rc = rules_parse(rs, "t.rules", text, len, err, sizeof err);
    rules_free(rs);
    ck_assert_msg(rc == -1, "rules_parse accepted:\n%.*s", (int)len, text);
    return err;
}

static const char *parse_err(const char *text)
{
    return parse_err_len(text, strlen(text));
}

/* err must be "t.rules:LINE:COL: ..." and hold reason (if given). */
static void assert_err(const char *err, int line, int col, const char *reason)
{
    char want[64];
    snprintf(want, sizeof want, "t.rules:%d:%d: ", line, col);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
                  "error '%s' does not start with '%s'", err, want);
    if (reason)
        ck_assert_msg(strstr(err, reason) != NULL, "error '%s' lacks '%s'", err, reason);
}

static struct ip IP(const char *s)
{
    struct ip a;
    ck_assert_msg(ip_parse(s, &a) == 0, "ip_parse(%s)", s);
    return a;
}

/* Inputs for rules_match. */
static struct rules_input sender_in(const char *local, const char *domain)
{
    struct rules_input in = { 0 };
    in.sender_local = local;
    in.sender_domain = domain;
    return in;
}

static struct rules_input rcpt_in(const char *local, const char *domain)
{
    struct rules_input in = { 0 };
    in.rcpt_local = local;
    in.rcpt_domain = domain;
    return in;
}

static struct rules_input helo_in(const char *helo)
{
    struct rules_input in = { 0 };
    in.helo = helo;
    return in;
}

static bool matches(const struct ruleset *rs, struct rules_input in)
{
    return rules_match(rs, &in) != NULL;
}

/* ---- statements ---- */

START_TEST(test_allow_and_deny_for_every_subject)
{
    struct ruleset *rs = parse_ok("allow client 192.0.2.25\n"
                                  "deny client 198.51.100.0/24\n"
                                  "allow sender friend@example.net\n"
                                  "deny sender example.com\n"
                                  "allow rcpt postmaster@local.test\n"
                                  "deny rcpt closed@local.test\n"
                                  "allow helo mail.example.net\n"
                                  "deny helo friend\n");
    ck_assert_uint_eq(rs->n, 8);
    ck_assert_uint_eq(rs->nfiles, 1);
    static const enum rule_subject subj[] = { RULE_CLIENT, RULE_CLIENT, RULE_SENDER,
                                              RULE_SENDER, RULE_RCPT, RULE_RCPT,
                                              RULE_HELO, RULE_HELO };
    for (size_t i = 0; i < 8; i++) {
        ck_assert_int_eq(rs->v[i].verb, i % 2 ? RULE_DENY : RULE_ALLOW);
        ck_assert_int_eq(rs->v[i].subject, subj[i]);
        char where[32];
        snprintf(where, sizeof where, "t.rules:%zu", i + 1);
        ck_assert_str_eq(rs->v[i].where, where);
    }
    ck_assert_str_eq(rules_subject_name(RULE_CLIENT), "client");
    ck_assert_str_eq(rules_subject_name(RULE_SENDER), "sender");
    ck_assert_str_eq(rules_subject_name(RULE_RCPT), "rcpt");
    ck_assert_str_eq(rules_subject_name(RULE_HELO), "helo");
    rules_free(rs);
}
END_TEST

START_TEST(test_values_separated_by_commas_spaces_or_both)
{
    struct ruleset *rs = parse_ok("deny sender a.example.net,b.example.net c.example.net ,"
                                  "\td.example.net , e.example.net\n"
                                  "deny client 192.0.2.1,198.51.100.0/24 2001:db8::/32\n");
    ck_assert_uint_eq(rs->n, 2);
    ck_assert_uint_eq(rs->v[0].npats, 5);
    ck_assert_str_eq(rs->v[0].pats[0].domain, "a.example.net");
    ck_assert_str_eq(rs->v[0].pats[4].domain, "e.example.net");
    ck_assert_uint_eq(cidrset_count(rs->v[1].nets), 3);
    rules_free(rs);
}
END_TEST

START_TEST(test_empty_text_and_comment_only_files_have_no_rules)
{
    struct ruleset *rs = parse_ok("");
    ck_assert_uint_eq(rs->n, 0);
    ck_assert_uint_eq(rs->nfiles, 1);
    const char *t2 = "# nothing\n\n   \n# x";
    ck_assert_int_eq(rules_parse(rs, "u.rules", t2, strlen(t2), NULL, 0), 0);
    ck_assert_uint_eq(rs->n, 0);
    ck_assert_uint_eq(rs->nfiles, 2);
    rules_free(rs);
}
END_TEST

START_TEST(test_comments_are_ignored_wherever_they_start)
{
    struct ruleset *rs = parse_ok("# header comment\n"
                                  "   # indented\n"
                                  "deny sender a.example.net # trailing, b.example.net\n"
                                  "deny sender c.example.net#glued d.example.net\n");
    ck_assert_uint_eq(rs->n, 2);
    ck_assert_uint_eq(rs->v[0].npats, 1);
    ck_assert_str_eq(rs->v[0].pats[0].domain, "a.example.net");
    ck_assert_str_eq(rs->v[0].where, "t.rules:3");
    ck_assert_uint_eq(rs->v[1].npats, 1);
    ck_assert_str_eq(rs->v[1].pats[0].domain, "c.example.net");
    rules_free(rs);
}
END_TEST

START_TEST(test_hash_inside_reply_string_is_text)
{
    struct ruleset *rs = parse_ok("deny sender example.com reply \"550 5.7.1 ticket #42\"\n");
    ck_assert_str_eq(rs->v[0].reply_text, "ticket #42");
    rules_free(rs);
}
END_TEST

START_TEST(test_backslash_continues_a_statement)
{
    struct ruleset *rs = parse_ok("deny sender a.example.net, \\\n"
                                  "            b.example.net \\\n"
                                  "     reply \"550 5.7.1 Go away\"\n"
                                  "allow rcpt postmaster@\n");
    ck_assert_uint_eq(rs->n, 2);
    ck_assert_uint_eq(rs->v[0].npats, 2);
    ck_assert_str_eq(rs->v[0].reply_text, "Go away");
    ck_assert_str_eq(rs->v[0].where, "t.rules:1");
    ck_assert_str_eq(rs->v[1].where, "t.rules:4");
    rules_free(rs);
}
END_TEST

START_TEST(test_backslash_right_after_a_value_continues_too)
{
    /* kanjiki.rules(5): "A backslash immediately before the end of a line
     * joins the next line to it." */
    struct ruleset *rs = parse_ok("deny sender a.example.net\\\n"
                                  "  b.example.net\n");
    ck_assert_uint_eq(rs->n, 1);
    ck_assert_uint_eq(rs->v[0].npats, 2);
    ck_assert_str_eq(rs->v[0].pats[0].domain, "a.example.net");
    ck_assert_str_eq(rs->v[0].pats[1].domain, "b.example.net");
    rules_free(rs);
}
END_TEST

START_TEST(test_crlf_files_work)
{
    struct ruleset *rs = parse_ok("deny sender example.com\r\n"
                                  "deny client 192.0.2.0/24, \\\r\n  198.51.100.0/24\r\n");
    ck_assert_uint_eq(rs->n, 2);
    ck_assert_str_eq(rs->v[0].pats[0].domain, "example.com");
    ck_assert_uint_eq(cidrset_count(rs->v[1].nets), 2);
    ck_assert_str_eq(rs->v[1].where, "t.rules:2");
    rules_free(rs);
}
END_TEST

START_TEST(test_parse_appends_to_the_ruleset)
{
    struct ruleset *rs = parse_ok("deny sender example.com\n");
    char err[200];
    const char *t2 = "allow sender example.net\n";
    ck_assert_int_eq(rules_parse(rs, "u.rules", t2, strlen(t2), err, sizeof err), 0);
    ck_assert_uint_eq(rs->n, 2);
    ck_assert_uint_eq(rs->nfiles, 2);
    ck_assert_str_eq(rs->v[1].where, "u.rules:1");
    rules_free(rs);
}
END_TEST

/* ---- replies ---- */

START_TEST(test_deny_without_reply_answers_550_5_7_1)
{
    struct ruleset *rs = parse_ok("deny sender example.com\n");
    ck_assert_int_eq(rs->v[0].reply_code, 550);
    ck_assert_str_eq(rs->v[0].reply_xcode, "5.7.1");
    ck_assert_str_eq(rs->v[0].reply_text, "Access denied (kanjiki)");
    rules_free(rs);
}
END_TEST

START_TEST(test_reply_with_code_and_enhanced_code)
{
    struct ruleset *rs = parse_ok(
        "deny rcpt closed@local.test reply \"550 5.1.1 This mailbox is closed\"\n");
    ck_assert_int_eq(rs->v[0].reply_code, 550);
    ck_assert_str_eq(rs->v[0].reply_xcode, "5.1.1");
    ck_assert_str_eq(rs->v[0].reply_text, "This mailbox is closed");
    rules_free(rs);
}
END_TEST

START_TEST(test_reply_450_is_a_temporary_refusal)
{
    struct ruleset *rs = parse_ok("deny sender example.com reply \"450 4.7.1 later\"\n");
    ck_assert_int_eq(rs->v[0].reply_code, 450);
    ck_assert_str_eq(rs->v[0].reply_xcode, "4.7.1");
    ck_assert_str_eq(rs->v[0].reply_text, "later");
    rules_free(rs);
}
END_TEST

START_TEST(test_reply_with_code_only_gets_class_7_1)
{
    struct ruleset *rs = parse_ok("deny rcpt noreply@ reply \"450 Try again later\"\n"
                                  "deny rcpt old@ reply \"554 Gone\"\n");
    ck_assert_int_eq(rs->v[0].reply_code, 450);
    ck_assert_str_eq(rs->v[0].reply_xcode, "4.7.1");
    ck_assert_str_eq(rs->v[0].reply_text, "Try again later");
    ck_assert_int_eq(rs->v[1].reply_code, 554);
    ck_assert_str_eq(rs->v[1].reply_xcode, "5.7.1");
    rules_free(rs);
}
END_TEST

START_TEST(test_reply_with_text_only_is_550_5_7_1)
{
    struct ruleset *rs = parse_ok("deny sender example.com reply \"Not from you\"\n");
    ck_assert_int_eq(rs->v[0].reply_code, 550);
    ck_assert_str_eq(rs->v[0].reply_xcode, "5.7.1");
    ck_assert_str_eq(rs->v[0].reply_text, "Not from you");
    rules_free(rs);
}
END_TEST

START_TEST(test_reply_string_escapes)
{
    struct ruleset *rs = parse_ok("deny sender example.com reply \"550 say \\\"no\\\" \\\\ ok\"\n");
    ck_assert_str_eq(rs->v[0].reply_text, "say \"no\" \\ ok");
    rules_free(rs);
}
END_TEST

START_TEST(test_reply_class_mismatch_is_an_error)
{
    /*         1234567890123456789012345678901234 */
    assert_err(parse_err("deny sender example.com reply \"550 4.7.1 text\"\n"), 1, 31,
               "class");
    assert_err(parse_err("deny sender example.com reply \"450 5.7.1 text\"\n"), 1, 31,
               "class");
}
END_TEST

START_TEST(test_reply_code_outside_4xx_5xx_is_an_error)
{
    assert_err(parse_err("deny sender example.com reply \"250 2.0.0 fine\"\n"), 1, 31,
               "4xx or 5xx");
    assert_err(parse_err("deny sender example.com reply \"600 x\"\n"), 1, 31, "4xx or 5xx");
}
END_TEST

START_TEST(test_reply_without_text_is_an_error)
{
    assert_err(parse_err("deny sender example.com reply \"550 5.7.1\"\n"), 1, 31, "text");
    assert_err(parse_err("deny sender example.com reply \"\"\n"), 1, 31, "text");
}
END_TEST

START_TEST(test_reply_text_must_be_ascii_without_percent)
{
    assert_err(parse_err("deny sender example.com reply \"550 5.7.1 100% spam\"\n"), 1, 31,
               "printable ASCII");
    assert_err(parse_err("deny sender example.com reply \"550 5.7.1 caf\xc3\xa9\"\n"), 1, 31,
               "printable ASCII");
}
END_TEST

START_TEST(test_reply_on_allow_is_an_error)
{
    /*                    1234567890123456789012345 */
    assert_err(parse_err("allow sender example.com reply \"550 5.7.1 x\"\n"), 1, 26,
               "only deny rules and thresholds take a reply");
}
END_TEST

START_TEST(test_reply_needs_a_quoted_text)
{
    assert_err(parse_err("deny sender example.com reply go-away\n"), 1, 31, "quoted");
    assert_err(parse_err("deny sender example.com reply\n"), 1, 30, "quoted");
}
END_TEST

START_TEST(test_value_after_reply_is_an_error)
{
    /*                    123456789012345678901234567890123456 */
    assert_err(parse_err("deny sender a.example.net reply \"x\" b.example.net\n"), 1, 37,
               "before reply");
}
END_TEST

START_TEST(test_second_reply_is_an_error)
{
    /* The grammar allows one reply ("[ reply ]"); a second one must not
     * silently replace the first. */
    /*                    1234567890123456789012345678901234567 */
    assert_err(parse_err("deny sender example.com reply \"550 a\" reply \"450 b\"\n"), 1, 39,
               NULL);
}
END_TEST

/* ---- errors with file:line:column ---- */

START_TEST(test_unknown_statement_is_an_error)
{
    assert_err(parse_err("block sender example.com\n"), 1, 1,
               "unknown statement 'block' (expected allow, deny, score, zone, spf, threshold or snowshoe)");
    assert_err(parse_err("deny sender example.com\n\n   greylist dnsbl.example.net\n"), 3, 4,
               "unknown statement 'greylist'");
    assert_err(parse_err("Deny sender example.com\n"), 1, 1, "unknown statement");
}
END_TEST

START_TEST(test_statement_must_start_with_a_word)
{
    assert_err(parse_err("  \"deny\" sender example.com\n"), 1, 3, "expected a statement");
    assert_err(parse_err(", deny sender example.com\n"), 1, 1, "expected a statement");
}
END_TEST

START_TEST(test_missing_or_unknown_subject_is_an_error)
{
    assert_err(parse_err("deny\n"), 1, 5, "expected client, sender, rcpt or helo after 'deny'");
    assert_err(parse_err("allow from example.com\n"), 1, 7,
               "expected client, sender, rcpt or helo after 'allow'");
    assert_err(parse_err("deny \"sender\" example.com\n"), 1, 6, "expected client");
}
END_TEST

START_TEST(test_rule_without_values_is_an_error)
{
    assert_err(parse_err("deny sender\n"), 1, 12, "needs at least one value");
    assert_err(parse_err("deny client   # nothing\n"), 1, 24, "needs at least one value");
    assert_err(parse_err("deny rcpt reply \"550 5.7.1 x\"\n"), 1, 30, "needs at least one value");
    assert_err(parse_err("deny helo , ,\n"), 1, 14, "needs at least one value");
}
END_TEST

START_TEST(test_bad_cidr_is_an_error_at_its_column)
{
    /*                    12345678901234567890123456 */
    const char *err = parse_err("deny client 192.0.2.0/24, 198.51.100.1/24\n");
    assert_err(err, 1, 27, "host bits");
    assert_err(parse_err("\nallow client 192.0.2.0/33\n"), 2, 14, NULL);
    assert_err(parse_err("allow client example.net\n"), 1, 14, NULL);
    assert_err(parse_err("deny client 2001:db8::1/32\n"), 1, 13, "host bits");
}
END_TEST

START_TEST(test_unterminated_string_is_an_error_at_its_quote)
{
    /*                    1234567890123456789012345678901 */
    assert_err(parse_err("deny sender example.com reply \"550 5.7.1 no end\n"
                         "deny sender example.net\n"),
               1, 31, "unterminated string");
    assert_err(parse_err("deny sender example.com reply \"550 at eof"), 1, 31,
               "unterminated string");
}
END_TEST

START_TEST(test_bad_domain_is_an_error_at_its_column)
{
    /*                    12345678901234567890123456 */
    assert_err(parse_err("deny sender example.com, -bad.example\n"), 1, 26,
               "not a valid domain name: '-bad.example'");
    assert_err(parse_err("deny sender .-bad.example\n"), 1, 13, "not a valid domain name");
    assert_err(parse_err("deny sender example..com\n"), 1, 13, "not a valid domain name");
    assert_err(parse_err("deny sender @\n"), 1, 13, NULL);
    assert_err(parse_err("deny rcpt <>\n"), 1, 11, NULL);
}
END_TEST

START_TEST(test_bad_domain_in_address_pattern_is_an_error)
{
    /* user@BADDOMAIN: the error path must report, not crash (a typo in a
     * rules file must leave a running milter with its old policy) */
    assert_err(parse_err("deny rcpt user@-bad.example\n"), 1, 11, "not a valid domain name");
    assert_err(parse_err("allow sender boss@example..com\n"), 1, 14, "not a valid domain name");
}
END_TEST

START_TEST(test_lone_dot_pattern_is_an_error)
{
    /* "." names no domain. Accepting it leaves a pattern without a domain,
     * which the matcher then dereferences (a crash at the first RCPT). */
    assert_err(parse_err("deny sender .\n"), 1, 13, NULL);
    assert_err(parse_err("deny rcpt .\n"), 1, 11, NULL);
    assert_err(parse_err("deny helo .\n"), 1, 11, NULL);
}
END_TEST

START_TEST(test_nul_byte_is_an_error_at_its_position)
{
    static const char t[] = "deny sender example.com\nallow sender ab\0c.example.net\n";
    /*                                                  12345678901234 */
    assert_err(parse_err_len(t, sizeof t - 1), 2, 16, "NUL");
}
END_TEST

START_TEST(test_control_character_is_an_error)
{
    assert_err(parse_err("deny sender exam\x01ple.com\n"), 1, 17, "control character");
    assert_err(parse_err("deny sender x reply \"550 a\x1b[31m\"\n"), 1, 27, "control character");
}
END_TEST

START_TEST(test_error_line_counts_continuations)
{
    assert_err(parse_err("# one\n"
                         "deny sender a.example.net, \\\n"
                         "   b.example.net, \\\n"
                         "   -bad.example\n"),
               4, 4, "not a valid domain name");
}
END_TEST

START_TEST(test_error_columns_count_characters_not_bytes)
{
    /* "ééé" is three characters (six bytes); helo takes any word */
    /*                    deny helo ééé reply "... : the string starts at 21 */
    assert_err(parse_err("deny helo \xc3\xa9\xc3\xa9\xc3\xa9 reply \"550 5.7.1 50%\"\n"), 1, 21,
               "printable ASCII");
}
END_TEST

START_TEST(test_overlong_word_is_an_error)
{
    size_t n = 1100;
    char *t = malloc(n + 64);
    strcpy(t, "deny sender ");
    size_t l = strlen(t);
    while (l < n)
        t[l++] = 'a';
    strcpy(t + l, "\n");
    assert_err(parse_err(t), 1, 13, "longer than");
    free(t);
}
END_TEST

/* ---- patterns ---- */

START_TEST(test_pattern_kinds)
{
    struct ruleset *rs = parse_ok("deny sender Spammer@Example.NET, noreply@, @example.com,"
                                  " example.org, .spam.example, <>, trailing.example.\n");
    const struct rule *r = &rs->v[0];
    ck_assert_uint_eq(r->npats, 7);
    ck_assert_int_eq(r->pats[0].kind, RULE_PAT_ADDRESS);
    ck_assert_str_eq(r->pats[0].local, "spammer");
    ck_assert_str_eq(r->pats[0].domain, "example.net");
    ck_assert_int_eq(r->pats[1].kind, RULE_PAT_LOCAL);
    ck_assert_str_eq(r->pats[1].local, "noreply");
    ck_assert_int_eq(r->pats[2].kind, RULE_PAT_DOMAIN);
    ck_assert_str_eq(r->pats[2].domain, "example.com");
    ck_assert_int_eq(r->pats[3].kind, RULE_PAT_DOMAIN);
    ck_assert_str_eq(r->pats[3].domain, "example.org");
    ck_assert_int_eq(r->pats[4].kind, RULE_PAT_SUBDOMAIN);
    ck_assert_str_eq(r->pats[4].domain, "spam.example");
    ck_assert_int_eq(r->pats[5].kind, RULE_PAT_NULL);
    ck_assert_int_eq(r->pats[6].kind, RULE_PAT_DOMAIN);
    ck_assert_str_eq(r->pats[6].domain, "trailing.example");
    rules_free(rs);
}
END_TEST

START_TEST(test_address_pattern_matches_that_address_only)
{
    struct ruleset *rs = parse_ok("deny sender spammer@example.net\n");
    ck_assert(matches(rs, sender_in("spammer", "example.net")));
    ck_assert(matches(rs, sender_in("SPAMMER", "Example.Net.")));
    ck_assert(!matches(rs, sender_in("friend", "example.net")));
    ck_assert(!matches(rs, sender_in("spammer", "example.com")));
    ck_assert(!matches(rs, sender_in("spammer", "sub.example.net")));
    ck_assert(!matches(rs, sender_in("spammer", NULL)));
    ck_assert(!matches(rs, sender_in(NULL, "example.net")));
    rules_free(rs);
}
END_TEST

START_TEST(test_local_pattern_matches_at_any_domain)
{
    struct ruleset *rs = parse_ok("deny rcpt noreply@\n");
    ck_assert(matches(rs, rcpt_in("noreply", "local.test")));
    ck_assert(matches(rs, rcpt_in("NoReply", "example.net")));
    ck_assert(!matches(rs, rcpt_in("noreply2", "local.test")));
    ck_assert(!matches(rs, rcpt_in("reply", "local.test")));
    rules_free(rs);
}
END_TEST

START_TEST(test_domain_pattern_is_exact_on_labels)
{
    struct ruleset *rs = parse_ok("deny sender example.net\n"
                                  "deny rcpt @local.test\n");
    ck_assert(matches(rs, sender_in("a", "example.net")));
    ck_assert(matches(rs, sender_in("b", "EXAMPLE.net.")));
    ck_assert(!matches(rs, sender_in("a", "evilexample.net")));
    ck_assert(!matches(rs, sender_in("a", "sub.example.net")));
    ck_assert(!matches(rs, sender_in("a", "example.net.example")));
    ck_assert(matches(rs, rcpt_in("u", "local.test")));
    ck_assert(!matches(rs, rcpt_in("u", "evillocal.test")));
    ck_assert(!matches(rs, rcpt_in("u", "sub.local.test")));
    rules_free(rs);
}
END_TEST

START_TEST(test_subdomain_pattern_matches_below_only)
{
    struct ruleset *rs = parse_ok("deny sender .example.net\n");
    ck_assert(matches(rs, sender_in("u", "a.example.net")));
    ck_assert(matches(rs, sender_in("u", "b.a.example.net")));
    ck_assert(matches(rs, sender_in("u", "A.EXAMPLE.NET.")));
    ck_assert(!matches(rs, sender_in("u", "example.net")));
    ck_assert(!matches(rs, sender_in("u", "evilexample.net")));
    ck_assert(!matches(rs, sender_in("u", "a.example.net.example")));
    rules_free(rs);
}
END_TEST

START_TEST(test_null_sender_pattern_matches_bounces_only)
{
    struct ruleset *rs = parse_ok("deny sender <>\n");
    struct rules_input in = { 0 };
    in.sender_null = true;
    ck_assert(matches(rs, in));
    ck_assert(!matches(rs, sender_in("mailer-daemon", "example.net")));
    rules_free(rs);

    /* no other pattern matches the null sender */
    rs = parse_ok("deny sender mailer-daemon@, example.net, .example.net\n");
    ck_assert(!matches(rs, in));
    rules_free(rs);
}
END_TEST

START_TEST(test_unknown_subject_matches_no_rule)
{
    struct ruleset *rs = parse_ok("deny sender example.net\n"
                                  "deny client 0.0.0.0/0, ::/0\n"
                                  "deny helo friend, .example.net\n"
                                  "deny rcpt noreply@\n");
    struct rules_input in = { 0 };
    ck_assert_ptr_null(rules_match(rs, &in));
    rules_free(rs);
}
END_TEST

START_TEST(test_client_rule_matches_ipv4_ipv6_and_mapped)
{
    struct ruleset *rs = parse_ok("deny client 198.51.100.0/24, 2001:db8:bad::/48, 192.0.2.25\n");
    struct ip a;
    struct rules_input in = { 0 };
    in.client = &a;
    a = IP("198.51.100.200");
    ck_assert(matches(rs, in));
    a = IP("::ffff:198.51.100.7");
    ck_assert(matches(rs, in));
    a = IP("2001:db8:bad:1::1");
    ck_assert(matches(rs, in));
    a = IP("192.0.2.25");
    ck_assert(matches(rs, in));
    a = IP("192.0.2.26");
    ck_assert(!matches(rs, in));
    a = IP("2001:db8:bae::1");
    ck_assert(!matches(rs, in));
    rules_free(rs);
}
END_TEST

START_TEST(test_helo_names_words_and_literals)
{
    struct ruleset *rs = parse_ok("deny helo localhost, friend, [192.0.2.1], .dyn.example.net\n");
    ck_assert(matches(rs, helo_in("localhost")));
    ck_assert(matches(rs, helo_in("LOCALHOST.")));
    ck_assert(matches(rs, helo_in("Friend")));
    ck_assert(matches(rs, helo_in("[192.0.2.1]")));
    ck_assert(matches(rs, helo_in("host-1.dyn.example.net")));
    ck_assert(!matches(rs, helo_in("dyn.example.net")));
    ck_assert(!matches(rs, helo_in("friendly")));
    ck_assert(!matches(rs, helo_in("[192.0.2.10]")));
    ck_assert(!matches(rs, helo_in("mail.example.net")));
    rules_free(rs);
}
END_TEST

START_TEST(test_rcpt_pattern_does_not_look_at_sender)
{
    struct ruleset *rs = parse_ok("deny rcpt example.net\n");
    ck_assert(!matches(rs, sender_in("u", "example.net")));
    ck_assert(matches(rs, rcpt_in("u", "example.net")));
    rules_free(rs);
}
END_TEST

/* ---- order ---- */

START_TEST(test_first_matching_rule_wins)
{
    struct ruleset *rs = parse_ok("allow sender boss@example.net\n"
                                  "deny sender example.net reply \"550 5.7.1 first\"\n"
                                  "deny sender boss@ reply \"550 5.7.1 second\"\n"
                                  "deny sender .example.net\n");
    struct rules_input in = sender_in("boss", "example.net");
    const struct rule *r = rules_match(rs, &in);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->verb, RULE_ALLOW);
    ck_assert_str_eq(r->where, "t.rules:1");

    in = sender_in("clerk", "example.net");
    r = rules_match(rs, &in);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->reply_text, "first");
    ck_assert_str_eq(r->where, "t.rules:2");

    in = sender_in("boss", "example.com");
    r = rules_match(rs, &in);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->reply_text, "second");

    in = sender_in("x", "a.example.net");
    r = rules_match(rs, &in);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->where, "t.rules:4");

    in = sender_in("x", "example.org");
    ck_assert_ptr_null(rules_match(rs, &in));
    rules_free(rs);
}
END_TEST

START_TEST(test_match_on_empty_or_null_ruleset_is_none)
{
    struct ruleset *rs = rules_new();
    struct rules_input in = sender_in("u", "example.net");
    ck_assert_ptr_null(rules_match(rs, &in));
    ck_assert_ptr_null(rules_match(NULL, &in));
    rules_free(rs);
}
END_TEST

/* ---- printing ---- */

START_TEST(test_printed_rules_parse_back_the_same)
{
    struct ruleset *rs = parse_ok("deny client 198.51.100.0/24, 2001:db8:bad::/48 \\\n"
                                  "  reply \"550 5.7.1 Mail from your network is refused\"\n"
                                  "allow sender <>, friend@example.net, noreply@, .example.org\n"
                                  "deny helo localhost friend\n"
                                  "deny rcpt closed@local.test reply \"450 4.2.1 later\"\n");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    rules_print(rs, f);
    ck_assert_int_eq(fclose(f), 0);
    char err[600] = "";
    struct ruleset *back = rules_new();
    ck_assert_msg(rules_parse(back, "p.rules", buf, len, err, sizeof err) == 0,
                  "printed rules do not parse: %s\n%s", err, buf);
    ck_assert_msg(strstr(buf, "t.rules:4") != NULL, "origin missing:\n%s", buf);
    ck_assert_uint_eq(back->n, rs->n);
    for (size_t i = 0; i < rs->n; i++) {
        ck_assert_int_eq(back->v[i].verb, rs->v[i].verb);
        ck_assert_int_eq(back->v[i].subject, rs->v[i].subject);
        ck_assert_uint_eq(back->v[i].npats, rs->v[i].npats);
        ck_assert_int_eq(back->v[i].reply_code, rs->v[i].reply_code);
        if (rs->v[i].reply_text) {
            ck_assert_str_eq(back->v[i].reply_xcode, rs->v[i].reply_xcode);
            ck_assert_str_eq(back->v[i].reply_text, rs->v[i].reply_text);
        }
        for (size_t k = 0; k < rs->v[i].npats; k++)
            ck_assert_int_eq(back->v[i].pats[k].kind, rs->v[i].pats[k].kind);
        if (rs->v[i].nets)
            ck_assert_uint_eq(cidrset_count(back->v[i].nets), cidrset_count(rs->v[i].nets));
    }
    rules_free(back);
    rules_free(rs);
    free(buf);
}
END_TEST

/* ---- directories ---- */

START_TEST(test_load_dir_reads_rules_files_in_name_order)
{
    /* written in reverse so directory order is unlikely to be name order */
    write_file("50-site.rules", "deny sender example.net reply \"550 5.7.1 site\"\n");
    write_file("10-exceptions.rules", "\n\nallow sender boss@example.net\n");
    write_file("00-first.rules", "# nothing yet\n");
    char err[600] = "";
    struct ruleset *rs = NULL;
    ck_assert_msg(rules_load_dir(tmpdir, &rs, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(rs->nfiles, 3);
    ck_assert_uint_eq(rs->n, 2);
    char want[700];
    snprintf(want, sizeof want, "%s/10-exceptions.rules:3", tmpdir);
    ck_assert_str_eq(rs->v[0].where, want);
    snprintf(want, sizeof want, "%s/50-site.rules:1", tmpdir);
    ck_assert_str_eq(rs->v[1].where, want);
    struct rules_input in = sender_in("boss", "example.net");
    ck_assert_int_eq(rules_match(rs, &in)->verb, RULE_ALLOW);
    rules_free(rs);
}
END_TEST

START_TEST(test_load_dir_orders_by_bytes_not_numbers)
{
    write_file("9-late.rules", "deny sender example.net reply \"550 5.7.1 nine\"\n");
    write_file("10-early.rules", "deny sender example.net reply \"550 5.7.1 ten\"\n");
    char err[600] = "";
    struct ruleset *rs = NULL;
    ck_assert_msg(rules_load_dir(tmpdir, &rs, err, sizeof err) == 0, "%s", err);
    struct rules_input in = sender_in("u", "example.net");
    ck_assert_str_eq(rules_match(rs, &in)->reply_text, "ten");
    rules_free(rs);
}
END_TEST

START_TEST(test_load_dir_ignores_other_files)
{
    write_file("50-site.rules", "deny sender example.net\n");
    write_file("README", "not rules at all\n");
    write_file("60-old.rules~", "garbage {\n");
    write_file("70-off.rules.disabled", "garbage {\n");
    write_file(".80-hidden.rules", "garbage {\n");
    write_file(".rules", "garbage {\n");
    write_file("rules", "garbage {\n");
    char err[600] = "";
    struct ruleset *rs = NULL;
    ck_assert_msg(rules_load_dir(tmpdir, &rs, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(rs->nfiles, 1);
    ck_assert_uint_eq(rs->n, 1);
    rules_free(rs);
}
END_TEST

START_TEST(test_load_dir_empty_dir_gives_no_rules)
{
    char err[600] = "";
    struct ruleset *rs = NULL;
    ck_assert_msg(rules_load_dir(tmpdir, &rs, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(rs->n, 0);
    ck_assert_uint_eq(rs->nfiles, 0);
    rules_free(rs);
}
END_TEST

START_TEST(test_load_dir_missing_dir_is_an_error)
{
    char dir[600], err[600] = "";
    snprintf(dir, sizeof dir, "%s/no-such-dir", tmpdir);
    struct ruleset *rs = NULL;
    ck_assert_int_eq(rules_load_dir(dir, &rs, err, sizeof err), -1);
    ck_assert_ptr_null(rs);
    ck_assert_msg(strstr(err, dir) != NULL, "error '%s' does not name %s", err, dir);
}
END_TEST

START_TEST(test_load_dir_error_names_the_file_line_and_column)
{
    write_file("10-good.rules", "deny sender example.net\n");
    write_file("20-bad.rules", "deny sender example.com\n\ndeny sendr example.org\n");
    char err[600] = "", want[700];
    struct ruleset *rs = NULL;
    ck_assert_int_eq(rules_load_dir(tmpdir, &rs, err, sizeof err), -1);
    ck_assert_ptr_null(rs);
    snprintf(want, sizeof want, "%s/20-bad.rules:3:6: ", tmpdir);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "error '%s', want '%s'", err, want);
}
END_TEST

START_TEST(test_shipped_example_rules_load)
{
    /* the rules/ folder installed as /etc/kanjiki/rules must be valid */
    char err[600] = "";
    struct ruleset *rs = NULL;
    ck_assert_msg(rules_load_dir("rules", &rs, err, sizeof err) == 0,
                  "rules/: %s (run from the repository root)", err);
    ck_assert_uint_ge(rs->nfiles, 1);
    rules_free(rs);
}
END_TEST

/* ---- scores, zones, SPF weights, thresholds ---- */

START_TEST(test_zone_with_every_option)
{
    struct ruleset *rs = parse_ok(
        "zone Zen.Spamhaus.Org. ip weight 8 codes 127.0.0.2-127.0.0.11, 127.0.0.20 "
        "errors 127.255.255.254 txt timeout 1500ms\n");
    ck_assert_uint_eq(rs->nzones, 1);
    const struct dnsbl_zone *z = &rs->zones[0].z;
    ck_assert_str_eq(z->name, "zen.spamhaus.org");
    ck_assert_int_eq(z->kind, DNSBL_IP);
    ck_assert(z->weight == 8);
    ck_assert(z->txt);
    ck_assert_int_eq(z->timeout_ms, 1500);
    ck_assert(dnsbl_codes_match(&z->codes, 0x7f00000b));   /* 127.0.0.11 */
    ck_assert(dnsbl_codes_match(&z->codes, 0x7f000014));   /* 127.0.0.20 */
    ck_assert(!dnsbl_codes_match(&z->codes, 0x7f00000c));  /* 127.0.0.12 */
    ck_assert(dnsbl_codes_match(&z->errors, 0x7ffffffe));
    ck_assert(!dnsbl_codes_match(&z->errors, 0x7fffffff)); /* explicit list replaced */
    ck_assert_str_eq(z->where, "t.rules:1");
    rules_free(rs);
}
END_TEST

START_TEST(test_uri_zone_defaults_count_127_0_0_1_as_an_error)
{
    struct ruleset *rs = parse_ok("zone multi.uribl.com uri weight 5 codes mask:0x0e\n");
    const struct dnsbl_zone *z = &rs->zones[0].z;
    ck_assert_int_eq(z->kind, DNSBL_URI);
    ck_assert(dnsbl_codes_match(&z->errors, 0x7f000001));
    ck_assert(dnsbl_codes_match(&z->codes, 0x7f000002));
    ck_assert(!dnsbl_codes_match(&z->codes, 0x7f000001 & ~0x0eu));
    rules_free(rs);
}
END_TEST

START_TEST(test_domain_zone_checks_all_identities_unless_told)
{
    struct ruleset *rs = parse_ok("zone dbl.spamhaus.org domain weight 6\n"
                                  "zone rhs.example.net domain weight 2 check helo, from\n");
    ck_assert_uint_eq(rs->zones[0].check,
                      RULES_CHECK_HELO | RULES_CHECK_SENDER | RULES_CHECK_FROM);
    ck_assert_uint_eq(rs->zones[1].check, RULES_CHECK_HELO | RULES_CHECK_FROM);
    rules_free(rs);
}
END_TEST

START_TEST(test_zone_errors_name_their_column)
{
    assert_err(parse_err("zone zen.spamhaus.org ip\nzone zen.spamhaus.org uri\n"), 2, 6,
               "already defined at t.rules:1");
    assert_err(parse_err("zone zen.spamhaus.org weight heavy\n"), 1, 30, "number");
    assert_err(parse_err("zone zen.spamhaus.org codes 127.0.0.x\n"), 1, 29, NULL);
    assert_err(parse_err("zone zen.spamhaus.org colour blue\n"), 1, 23, "unknown zone option");
    assert_err(parse_err("zone zen.spamhaus.org ip check helo\n"), 1, 1, "domain zones only");
    assert_err(parse_err("zone -bad-.example ip\n"), 1, 6, "zone name");
}
END_TEST

START_TEST(test_thresholds_are_kept_highest_first_and_reached_by_total)
{
    struct ruleset *rs = parse_ok("threshold 5 tag\n"
                                  "threshold 15 reject reply \"550 5.7.1 Listed\" early\n"
                                  "threshold 10 tempfail\n");
    ck_assert_uint_eq(rs->nthresholds, 3);
    ck_assert(rs->thresholds[0].score == 15);
    ck_assert(rs->thresholds[2].score == 5);
    ck_assert_ptr_null(rules_threshold_for(rs, 4.9, false));
    ck_assert_int_eq(rules_threshold_for(rs, 5, false)->action, VERDICT_TAG);
    ck_assert_int_eq(rules_threshold_for(rs, 12, false)->action, VERDICT_TEMPFAIL);
    ck_assert_str_eq(rules_threshold_for(rs, 12, false)->reply_xcode, "4.7.1");
    const struct rules_threshold *t = rules_threshold_for(rs, 20, false);
    ck_assert_int_eq(t->action, VERDICT_REJECT);
    ck_assert_str_eq(t->reply_text, "Listed");
    /* at RCPT only early thresholds may act */
    ck_assert_ptr_null(rules_threshold_for(rs, 12, true));
    ck_assert_ptr_eq(rules_threshold_for(rs, 20, true), t);
    rules_free(rs);
}
END_TEST

START_TEST(test_threshold_errors)
{
    assert_err(parse_err("threshold 5 discard\n"), 1, 13, "tag, quarantine");
    assert_err(parse_err("threshold 5 tag reply \"550 no\"\n"), 1, 17, "only tempfail and reject");
    assert_err(parse_err("threshold 5 reject reply \"451 later\"\n"), 1, 26, "5xx");
    assert_err(parse_err("threshold 5 tag\nthreshold 5 reject\n"), 2, 1, "already defined");
}
END_TEST

START_TEST(test_snowshoe_defaults_refuse_only_with_a_cluster)
{
    struct ruleset *rs = parse_ok("threshold 4 tag\n");
    const struct rules_threshold *t;
    ck_assert_ptr_null(rules_snowshoe_threshold_for(rs, 4.4, true));
    t = rules_snowshoe_threshold_for(rs, 4.5, false);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->action, VERDICT_TAG);
    /* a high score without a cluster signal only tags */
    ck_assert_int_eq(rules_snowshoe_threshold_for(rs, 12, false)->action, VERDICT_TAG);
    ck_assert_int_eq(rules_snowshoe_threshold_for(rs, 8, true)->action, VERDICT_TEMPFAIL);
    t = rules_snowshoe_threshold_for(rs, 10, true);
    ck_assert_int_eq(t->action, VERDICT_REJECT);
    ck_assert_int_eq(t->reply_code, 550);
    ck_assert_ptr_null(t->reply_text);   /* the milter names the block */
    /* the score thresholds are not the snowshoe ones */
    ck_assert_uint_eq(rs->nthresholds, 1);
    ck_assert_int_eq(rules_snowshoe_threshold_for(NULL, 9, true)->action, VERDICT_TEMPFAIL);
    rules_free(rs);
}
END_TEST

START_TEST(test_snowshoe_statements_replace_the_defaults)
{
    struct ruleset *rs = parse_ok("snowshoe threshold 3 tag\n"
                                  "snowshoe threshold 6 reject reply \"554 5.7.1 go away\"\n"
                                  "snowshoe window 3d\n"
                                  "snowshoe short-window 6h\n"
                                  "snowshoe memory-halflife 2d\n"
                                  "snowshoe retry-delay 5m\n"
                                  "snowshoe retry-window 12h\n");
    ck_assert_uint_eq(rs->snow.nthresholds, 2);
    ck_assert_int_eq(rules_snowshoe_threshold_for(rs, 9, false)->action, VERDICT_TAG);
    const struct rules_threshold *t = rules_snowshoe_threshold_for(rs, 6, true);
    ck_assert_int_eq(t->action, VERDICT_REJECT);
    ck_assert_int_eq(t->reply_code, 554);
    ck_assert_str_eq(t->reply_text, "go away");
    ck_assert_ptr_null(rules_snowshoe_threshold_for(rs, 2.9, true));
    ck_assert_int_eq(rs->snow.retry_delay_ms, 300000);
    ck_assert_int_eq(rs->snow.retry_window_ms, 12 * 3600000LL);
    struct snowshoe_cfg cfg;
    snowshoe_cfg_defaults(&cfg);
    int64_t long_win = cfg.long_window_ms, newdom = cfg.new_domain_ms;
    rules_snowshoe_cfg(rs, &cfg);
    ck_assert_int_eq(cfg.window_ms, 3 * 86400000LL);
    ck_assert_int_eq(cfg.short_window_ms, 6 * 3600000LL);
    ck_assert_int_eq(cfg.memory_halflife_ms, 2 * 86400000LL);
    ck_assert_int_eq(cfg.long_window_ms, long_win);   /* not set: the default */
    ck_assert_int_eq(cfg.new_domain_ms, newdom);
    /* printed back */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    rules_print(rs, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "snowshoe threshold 6 reject reply \"554 5.7.1 go away\""));
    ck_assert_ptr_nonnull(strstr(buf, "snowshoe window 259200s"));
    free(buf);
    rules_free(rs);
}
END_TEST

START_TEST(test_snowshoe_statement_errors)
{
    assert_err(parse_err("snowshoe\n"), 1, 9, "expected threshold, window");
    assert_err(parse_err("snowshoe windows 7d\n"), 1, 10, "expected threshold, window");
    assert_err(parse_err("snowshoe window seven\n"), 1, 17, "expected a duration");
    assert_err(parse_err("snowshoe window 10s\n"), 1, 17, "from 60s");
    assert_err(parse_err("snowshoe window 7d 8d\n"), 1, 20, "after the duration");
    assert_err(parse_err("snowshoe threshold 5 tag early\n"), 1, 26, "reply \"TEXT\")");
    assert_err(parse_err("snowshoe threshold 5 tempfail reply \"550 no\"\n"), 1, 37, "4xx");
    assert_err(parse_err("snowshoe threshold 5 tag\nsnowshoe threshold 5 reject\n"), 2, 1,
               "already defined");
}
END_TEST

START_TEST(test_snowshoe_settings_must_agree_across_the_rule_set)
{
    char err[300];
    struct ruleset *rs = parse_ok("snowshoe retry-delay 2h\n");
    ck_assert_int_eq(rules_check(rs, err, sizeof err), 0);   /* < the 24h default */
    rules_free(rs);
    rs = parse_ok("snowshoe retry-delay 2h\nsnowshoe retry-window 1h\n");
    ck_assert_int_eq(rules_check(rs, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "retry-delay (7200s) must be shorter than retry-window (3600s)"));
    rules_free(rs);
    rs = parse_ok("snowshoe window 60d\nsnowshoe long-window 30d\n");
    ck_assert_int_eq(rules_check(rs, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "windows must grow"));
    rules_free(rs);
    rs = parse_ok("snowshoe short-window 3d\nsnowshoe window 2d\n");
    ck_assert_int_eq(rules_check(rs, err, sizeof err), -1);
    rules_free(rs);
    rs = parse_ok("snowshoe short-window 1h\nsnowshoe window 2d\nsnowshoe long-window 20d\n");
    ck_assert_int_eq(rules_check(rs, err, sizeof err), 0);
    rules_free(rs);
}
END_TEST

START_TEST(test_score_rules_add_up_and_negative_weights_count_against)
{
    struct ruleset *rs = parse_ok("score 3 helo .dynamic.example\n"
                                  "score 2.5 sender .example.biz\n"
                                  "score -10 client 192.0.2.0/24\n"
                                  "deny sender spammer@example.biz\n");
    struct ip a;
    ck_assert_int_eq(ip_parse("192.0.2.7", &a), 0);
    struct rules_input in = { .client = &a, .helo = "host1.dynamic.example",
                              .sender_local = "x", .sender_domain = "shop.example.biz" };
    size_t hits = 0;
    ck_assert(rules_score(rs, &in, &hits) == -4.5);
    ck_assert_uint_eq(hits, 3);
    /* score rules never decide allow/deny */
    ck_assert_ptr_null(rules_match(rs, &in));
    rules_free(rs);
}
END_TEST

START_TEST(test_spf_weights)
{
    struct ruleset *rs = parse_ok("spf fail 5\nspf softfail 2\nspf pass -1\n");
    ck_assert(rs->spf_weight[RULES_SPF_FAIL] == 5);
    ck_assert(rs->spf_weight[RULES_SPF_SOFTFAIL] == 2);
    ck_assert(rs->spf_weight[RULES_SPF_PASS] == -1);
    ck_assert(rs->spf_weight[RULES_SPF_NONE] == 0);
    rules_free(rs);
    assert_err(parse_err("spf maybe 3\n"), 1, 5, "SPF result");
    assert_err(parse_err("spf fail 3 now\n"), 1, 12, NULL);
}
END_TEST

static Suite *rules_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *t = tcase_create("statements");
    tcase_add_test(t, test_allow_and_deny_for_every_subject);
    tcase_add_test(t, test_values_separated_by_commas_spaces_or_both);
    tcase_add_test(t, test_empty_text_and_comment_only_files_have_no_rules);
    tcase_add_test(t, test_comments_are_ignored_wherever_they_start);
    tcase_add_test(t, test_hash_inside_reply_string_is_text);
    tcase_add_test(t, test_backslash_continues_a_statement);
    tcase_add_test(t, test_backslash_right_after_a_value_continues_too);
    tcase_add_test(t, test_crlf_files_work);
    tcase_add_test(t, test_parse_appends_to_the_ruleset);
    suite_add_tcase(s, t);

    t = tcase_create("replies");
    tcase_add_test(t, test_deny_without_reply_answers_550_5_7_1);
    tcase_add_test(t, test_reply_with_code_and_enhanced_code);
    tcase_add_test(t, test_reply_450_is_a_temporary_refusal);
    tcase_add_test(t, test_reply_with_code_only_gets_class_7_1);
    tcase_add_test(t, test_reply_with_text_only_is_550_5_7_1);
    tcase_add_test(t, test_reply_string_escapes);
    tcase_add_test(t, test_reply_class_mismatch_is_an_error);
    tcase_add_test(t, test_reply_code_outside_4xx_5xx_is_an_error);
    tcase_add_test(t, test_reply_without_text_is_an_error);
    tcase_add_test(t, test_reply_text_must_be_ascii_without_percent);
    tcase_add_test(t, test_reply_on_allow_is_an_error);
    tcase_add_test(t, test_reply_needs_a_quoted_text);
    tcase_add_test(t, test_value_after_reply_is_an_error);
    tcase_add_test(t, test_second_reply_is_an_error);
    suite_add_tcase(s, t);

    t = tcase_create("errors");
    tcase_add_test(t, test_unknown_statement_is_an_error);
    tcase_add_test(t, test_statement_must_start_with_a_word);
    tcase_add_test(t, test_missing_or_unknown_subject_is_an_error);
    tcase_add_test(t, test_rule_without_values_is_an_error);
    tcase_add_test(t, test_bad_cidr_is_an_error_at_its_column);
    tcase_add_test(t, test_unterminated_string_is_an_error_at_its_quote);
    tcase_add_test(t, test_bad_domain_is_an_error_at_its_column);
    tcase_add_test(t, test_bad_domain_in_address_pattern_is_an_error);
    tcase_add_test(t, test_lone_dot_pattern_is_an_error);
    tcase_add_test(t, test_nul_byte_is_an_error_at_its_position);
    tcase_add_test(t, test_control_character_is_an_error);
    tcase_add_test(t, test_error_line_counts_continuations);
    tcase_add_test(t, test_error_columns_count_characters_not_bytes);
    tcase_add_test(t, test_overlong_word_is_an_error);
    suite_add_tcase(s, t);

    t = tcase_create("patterns");
    tcase_add_test(t, test_pattern_kinds);
    tcase_add_test(t, test_address_pattern_matches_that_address_only);
    tcase_add_test(t, test_local_pattern_matches_at_any_domain);
    tcase_add_test(t, test_domain_pattern_is_exact_on_labels);
    tcase_add_test(t, test_subdomain_pattern_matches_below_only);
    tcase_add_test(t, test_null_sender_pattern_matches_bounces_only);
    tcase_add_test(t, test_unknown_subject_matches_no_rule);
    tcase_add_test(t, test_client_rule_matches_ipv4_ipv6_and_mapped);
    tcase_add_test(t, test_helo_names_words_and_literals);
    tcase_add_test(t, test_rcpt_pattern_does_not_look_at_sender);
    tcase_add_test(t, test_first_matching_rule_wins);
    tcase_add_test(t, test_match_on_empty_or_null_ruleset_is_none);
    tcase_add_test(t, test_printed_rules_parse_back_the_same);
    suite_add_tcase(s, t);

    t = tcase_create("directories");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_load_dir_reads_rules_files_in_name_order);
    tcase_add_test(t, test_load_dir_orders_by_bytes_not_numbers);
    tcase_add_test(t, test_load_dir_ignores_other_files);
    tcase_add_test(t, test_load_dir_empty_dir_gives_no_rules);
    tcase_add_test(t, test_load_dir_missing_dir_is_an_error);
    tcase_add_test(t, test_load_dir_error_names_the_file_line_and_column);
    tcase_add_test(t, test_shipped_example_rules_load);
    suite_add_tcase(s, t);

    t = tcase_create("scores");
    tcase_add_test(t, test_zone_with_every_option);
    tcase_add_test(t, test_uri_zone_defaults_count_127_0_0_1_as_an_error);
    tcase_add_test(t, test_domain_zone_checks_all_identities_unless_told);
    tcase_add_test(t, test_zone_errors_name_their_column);
    tcase_add_test(t, test_thresholds_are_kept_highest_first_and_reached_by_total);
    tcase_add_test(t, test_threshold_errors);
    tcase_add_test(t, test_snowshoe_defaults_refuse_only_with_a_cluster);
    tcase_add_test(t, test_snowshoe_statements_replace_the_defaults);
    tcase_add_test(t, test_snowshoe_statement_errors);
    tcase_add_test(t, test_snowshoe_settings_must_agree_across_the_rule_set);
    tcase_add_test(t, test_score_rules_add_up_and_negative_weights_count_against);
    tcase_add_test(t, test_spf_weights);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rules_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
