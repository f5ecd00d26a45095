/* Unit tests for lib/smtpreply.c: single and multi-line replies, enhanced
 * status codes, EHLO extensions, and everything a broken or hostile server
 * may send instead. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "smtpreply.h"

/* Feed lines (each without CRLF); returns the status of the last one. */
static enum smtpr_status feed(struct smtp_reply *r, const char *const *lines)
{
    smtpr_init(r);
    enum smtpr_status st = SMTPR_GARBAGE;
    for (; *lines; lines++) {
        st = smtpr_line(r, *lines, strlen(*lines));
        if (st != SMTPR_MORE)
            break;
    }
    return st;
}

START_TEST(test_single_line_with_enhanced_code)
{
    struct smtp_reply r;
    ck_assert_int_eq(feed(&r, (const char *[]){ "554 5.7.1 Relay access denied", NULL }),
                     SMTPR_DONE);
    ck_assert_int_eq(r.code, 554);
    ck_assert_str_eq(r.xcode, "5.7.1");
    ck_assert_str_eq(r.text, "5.7.1 Relay access denied");
    ck_assert_uint_eq(r.nlines, 1);
    ck_assert_int_eq(smtpr_class(r.code), 5);
    /* a bare code is a complete reply */
    ck_assert_int_eq(feed(&r, (const char *[]){ "250", NULL }), SMTPR_DONE);
    ck_assert_int_eq(r.code, 250);
    ck_assert_str_eq(r.text, "");
    ck_assert_str_eq(r.xcode, "");
}
END_TEST

START_TEST(test_enhanced_code_must_match_the_class)
{
    struct smtp_reply r;
    feed(&r, (const char *[]){ "250 5.7.1 odd", NULL });
    ck_assert_str_eq(r.xcode, "");
    feed(&r, (const char *[]){ "250 2.1.0x Ok", NULL });
    ck_assert_str_eq(r.xcode, "");
    feed(&r, (const char *[]){ "451 4.7.1234 too many digits", NULL });
    ck_assert_str_eq(r.xcode, "");
    feed(&r, (const char *[]){ "451 4.3.0", NULL });
    ck_assert_str_eq(r.xcode, "4.3.0");
}
END_TEST

START_TEST(test_multi_line_and_extensions)
{
    struct smtp_reply r;
    ck_assert_int_eq(feed(&r, (const char *[]){ "250-mx.example.com Hello", "250-PIPELINING",
                                                "250-SIZE 10240000", "250-AUTH PLAIN LOGIN",
                                                "250-STARTTLS", "250 8BITMIME", NULL }),
                     SMTPR_DONE);
    ck_assert_uint_eq(r.nlines, 6);
    ck_assert_str_eq(r.text, "mx.example.com Hello\nPIPELINING\nSIZE 10240000\nAUTH PLAIN "
                             "LOGIN\nSTARTTLS\n8BITMIME");
    char p[64];
    ck_assert(smtpr_has_ext(&r, "auth", p, sizeof p));
    ck_assert_str_eq(p, "PLAIN LOGIN");
    ck_assert(smtpr_has_ext(&r, "STARTTLS", p, sizeof p));
    ck_assert_str_eq(p, "");
    ck_assert(smtpr_has_ext(&r, "8bitmime", NULL, 0));
    ck_assert(!smtpr_has_ext(&r, "SIZ", NULL, 0));   /* whole keywords only */
    ck_assert(!smtpr_has_ext(&r, "mx.example.com", NULL, 0));   /* not the greeting line */
    /* a continuation line asks for more */
    smtpr_init(&r);
    ck_assert_int_eq(smtpr_line(&r, "220-first", 9), SMTPR_MORE);
}
END_TEST

START_TEST(test_garbage_is_refused_with_a_reason)
{
    struct smtp_reply r;
    ck_assert_int_eq(feed(&r, (const char *[]){ "hello there", NULL }), SMTPR_GARBAGE);
    ck_assert_ptr_nonnull(strstr(r.why, "reply code"));
    ck_assert_int_eq(feed(&r, (const char *[]){ "25", NULL }), SMTPR_GARBAGE);
    ck_assert_int_eq(feed(&r, (const char *[]){ "250Ok", NULL }), SMTPR_GARBAGE);
    ck_assert_int_eq(feed(&r, (const char *[]){ "199 too low", NULL }), SMTPR_GARBAGE);
    ck_assert_int_eq(feed(&r, (const char *[]){ "600 too high", NULL }), SMTPR_GARBAGE);
    ck_assert_int_eq(feed(&r, (const char *[]){ "250-a", "550 b", NULL }), SMTPR_GARBAGE);
    ck_assert_ptr_nonnull(strstr(r.why, "different codes"));
    /* NUL bytes and binary junk are just text after a good code */
    smtpr_init(&r);
    ck_assert_int_eq(smtpr_line(&r, "250 a\0b\x1b", 8), SMTPR_DONE);
    ck_assert_int_eq(r.code, 250);
}
END_TEST

START_TEST(test_endless_replies_are_bounded)
{
    struct smtp_reply r;
    smtpr_init(&r);
    enum smtpr_status st = SMTPR_MORE;
    int n = 0;
    char line[5000];
    memset(line, 'x', sizeof line);
    memcpy(line, "250-", 4);
    while (st == SMTPR_MORE && n < 1000) {
        st = smtpr_line(&r, line, sizeof line);
        n++;
    }
    ck_assert_int_eq(st, SMTPR_GARBAGE);
    ck_assert_int_eq(n, SMTPR_MAX_LINES + 1);
    ck_assert(r.truncated);
    ck_assert_uint_lt(strlen(r.text), SMTPR_MAX_TEXT);
}
END_TEST

static Suite *smtpreply_suite(void)
{
    Suite *s = suite_create("smtpreply");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_single_line_with_enhanced_code);
    tcase_add_test(t, test_enhanced_code_must_match_the_class);
    tcase_add_test(t, test_multi_line_and_extensions);
    tcase_add_test(t, test_garbage_is_refused_with_a_reason);
    tcase_add_test(t, test_endless_replies_are_bounded);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(smtpreply_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
