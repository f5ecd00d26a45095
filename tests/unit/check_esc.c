/* Unit tests for lib/esc.c. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "esc.h"
#include "sbuf.h"

typedef void (*escfn)(struct sbuf *, const char *, size_t);

/* Escape n bytes with f; the result is static so asserts stay short. */
static const char *run(escfn f, const char *s, size_t n)
{
    static char out[1024];
    struct sbuf b = SBUF_INIT;
    f(&b, s, n);
    ck_assert_uint_eq(strlen(sbuf_str(&b)), b.len);   /* no NUL inside */
    ck_assert_uint_lt(b.len, sizeof out);
    memcpy(out, sbuf_str(&b), b.len + 1);
    sbuf_free(&b);
    return out;
}

#define TEXT(lit) run(esc_text, lit, sizeof lit - 1)
#define JSON(lit) run(esc_json, lit, sizeof lit - 1)
#define CSV(lit) run(esc_csv, lit, sizeof lit - 1)
#define HDR(lit) run(esc_header, lit, sizeof lit - 1)

/* ---- esc_text ---- */

START_TEST(test_text_keeps_printable_ascii)
{
    ck_assert_str_eq(TEXT("user@example.com <a> 'q' \"x\" ~!"),
                     "user@example.com <a> 'q' \"x\" ~!");
}
END_TEST

START_TEST(test_text_doubles_backslash)
{
    /* else "\x1b" typed by a sender would be read as an escaped ESC */
    ck_assert_str_eq(TEXT("a\\x1b"), "a\\\\x1b");
}
END_TEST

START_TEST(test_text_named_whitespace_escapes)
{
    ck_assert_str_eq(TEXT("a\nb\rc\td"), "a\\nb\\rc\\td");
}
END_TEST

START_TEST(test_text_escapes_controls_del_and_nul)
{
    ck_assert_str_eq(TEXT("\x1b[2J\x7f\x00z"), "\\x1b[2J\\x7f\\x00z");
}
END_TEST

START_TEST(test_text_keeps_valid_utf8)
{
    ck_assert_str_eq(TEXT("caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x93\xa7"),
                     "caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x93\xa7");
}
END_TEST

START_TEST(test_text_escapes_invalid_utf8)
{
    /* lone continuation, truncated sequence, lone lead byte at end */
    ck_assert_str_eq(TEXT("a\x80" "b\xe6\xbc" "c\xc3"),
                     "a\\x80b\\xe6\\xbcc\\xc3");
    /* 0xff and 0xfe never occur in UTF-8 */
    ck_assert_str_eq(TEXT("\xff\xfe"), "\\xff\\xfe");
}
END_TEST

START_TEST(test_text_escapes_overlong_and_surrogates)
{
    /* overlong "/" and NUL, a UTF-16 surrogate, and a code point > U+10FFFF */
    ck_assert_str_eq(TEXT("\xc0\xaf"), "\\xc0\\xaf");
    ck_assert_str_eq(TEXT("\xc0\x80"), "\\xc0\\x80");
    ck_assert_str_eq(TEXT("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");
    ck_assert_str_eq(TEXT("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    ck_assert_str_eq(TEXT("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
    ck_assert_str_eq(TEXT("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf");   /* U+10FFFF ok */
}
END_TEST

START_TEST(test_text_escapes_c1_controls_and_line_separators)
{
    /* U+009B is CSI on some terminals; U+2028/2029 break log lines */
    ck_assert_str_eq(TEXT("\xc2\x9b" "2J"), "\\xc2\\x9b2J");
    ck_assert_str_eq(TEXT("a\xe2\x80\xa8" "b\xe2\x80\xa9"),
                     "a\\xe2\\x80\\xa8b\\xe2\\x80\\xa9");
    ck_assert_str_eq(TEXT("\xc2\xa0"), "\xc2\xa0");   /* U+00A0 is printable */
}
END_TEST

START_TEST(test_text_escapes_bidi_overrides)
{
    /* U+202E RIGHT-TO-LEFT OVERRIDE would make "evil\u202Egpj.exe" print as
     * "evilexe.jpg" in a log line */
    ck_assert_str_eq(TEXT("a\xe2\x80\xae" "b"), "a\\xe2\\x80\\xaeb");
    ck_assert_str_eq(TEXT("\xe2\x81\xa6" "x"), "\\xe2\\x81\\xa6x");   /* U+2066 */
    ck_assert_str_eq(TEXT("\xe2\x80\x8f"), "\\xe2\\x80\\x8f");        /* U+200F */
}
END_TEST

START_TEST(test_text_empty_input_gives_empty_string)
{
    struct sbuf b = SBUF_INIT;
    esc_text(&b, "", 0);
    ck_assert_ptr_nonnull(b.s);
    ck_assert_str_eq(b.s, "");
    sbuf_free(&b);
}
END_TEST

START_TEST(test_text_appends_to_existing_buffer)
{
    struct sbuf b = SBUF_INIT;
    sbuf_adds(&b, "from=");
    esc_text(&b, "x\ny", 3);
    ck_assert_str_eq(sbuf_str(&b), "from=x\\ny");
    sbuf_free(&b);
}
END_TEST

START_TEST(test_text_s_accepts_null)
{
    struct sbuf b = SBUF_INIT;
    esc_text_s(&b, NULL);
    ck_assert_str_eq(sbuf_str(&b), "");
    esc_text_s(&b, "a\tb");
    ck_assert_str_eq(sbuf_str(&b), "a\\tb");
    sbuf_free(&b);
}
END_TEST

START_TEST(test_text_output_has_no_raw_control_bytes)
{
    /* every byte value, alone and after a lead byte */
    char in[512];
    for (int i = 0; i < 256; i++) {
        in[2 * i] = (char)i;
        in[2 * i + 1] = (char)0xe2;
    }
    struct sbuf b = SBUF_INIT;
    esc_text(&b, in, sizeof in);
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.s[i];
        ck_assert_msg(c >= 0x20 && c != 0x7f, "raw 0x%02x at %zu", c, i);
    }
    sbuf_free(&b);
}
END_TEST

/* ---- esc_json ---- */

START_TEST(test_json_quotes_and_escapes_quote_backslash)
{
    ck_assert_str_eq(JSON("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
    ck_assert_str_eq(JSON(""), "\"\"");
}
END_TEST

START_TEST(test_json_escapes_nul_and_invalid_utf8)
{
    ck_assert_str_eq(JSON("a\x00" "b\xff" "c\xc3"), "\"a\\u0000b\\u00ffc\\u00c3\"");
}
END_TEST

START_TEST(test_json_escapes_controls_as_u00nn)
{
    ck_assert_str_eq(JSON("\n\r\t\x1b\x7f"), "\"\\u000a\\u000d\\u0009\\u001b\\u007f\"");
}
END_TEST

START_TEST(test_json_keeps_valid_utf8)
{
    ck_assert_str_eq(JSON("\xe6\xbc\xa2\xe5\xad\x97"), "\"\xe6\xbc\xa2\xe5\xad\x97\"");
}
END_TEST

START_TEST(test_json_escapes_line_separators_and_c1)
{
    ck_assert_str_eq(JSON("\xe2\x80\xa8\xe2\x80\xa9\xc2\x85"),
                     "\"\\u2028\\u2029\\u0085\"");
}
END_TEST

START_TEST(test_json_s_null_is_empty_string)
{
    struct sbuf b = SBUF_INIT;
    esc_json_s(&b, NULL);
    ck_assert_str_eq(sbuf_str(&b), "\"\"");
    sbuf_free(&b);
}
END_TEST

/* ---- esc_csv ---- */

START_TEST(test_csv_plain_field_unquoted)
{
    ck_assert_str_eq(CSV("192.0.2.1"), "192.0.2.1");
    ck_assert_str_eq(CSV(""), "");
}
END_TEST

START_TEST(test_csv_quotes_and_doubles_quotes)
{
    ck_assert_str_eq(CSV("a,b"), "\"a,b\"");
    ck_assert_str_eq(CSV("say \"hi\""), "\"say \"\"hi\"\"\"");
    ck_assert_str_eq(CSV("a;b"), "\"a;b\"");
    ck_assert_str_eq(CSV(" padded "), "\" padded \"");
}
END_TEST

START_TEST(test_csv_escapes_newlines_and_controls)
{
    /* a raw newline would split the record; a raw ESC would reach a tty */
    ck_assert_str_eq(CSV("a\nb\x1b"), "a\\nb\\x1b");
}
END_TEST

START_TEST(test_csv_neutralises_formula)
{
    ck_assert_str_eq(CSV("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
    ck_assert_str_eq(CSV("+1"), "'+1");
    ck_assert_str_eq(CSV("-2+3"), "'-2+3");
    ck_assert_str_eq(CSV("@SUM(A1)"), "'@SUM(A1)");
    ck_assert_str_eq(CSV("a=1"), "a=1");   /* only a leading sign matters */
}
END_TEST

START_TEST(test_csv_leading_tab_cannot_start_formula)
{
    /* OWASP also lists tab and CR; esc_text turns them into "\t", "\r" */
    ck_assert_str_eq(CSV("\t=1"), "\\t=1");
    ck_assert_str_eq(CSV("\r=1"), "\\r=1");
}
END_TEST

/* ---- esc_header ---- */

START_TEST(test_header_is_7bit)
{
    ck_assert_str_eq(HDR("caf\xc3\xa9"), "caf\\xc3\\xa9");
    ck_assert_str_eq(HDR("ok \xff"), "ok \\xff");
}
END_TEST

START_TEST(test_header_cannot_inject_lines)
{
    ck_assert_str_eq(HDR("x\r\nBcc: victim@example.com"), "x\\r\\nBcc: victim@example.com");
}
END_TEST

START_TEST(test_header_output_all_printable_ascii)
{
    char in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (char)i;
    struct sbuf b = SBUF_INIT;
    esc_header(&b, in, sizeof in);
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.s[i];
        ck_assert_msg(c >= 0x20 && c < 0x7f, "0x%02x at %zu", c, i);
    }
    sbuf_free(&b);
}
END_TEST

static Suite *esc_suite(void)
{
    Suite *s = suite_create("esc");
    TCase *t = tcase_create("text");
    tcase_add_test(t, test_text_keeps_printable_ascii);
    tcase_add_test(t, test_text_doubles_backslash);
    tcase_add_test(t, test_text_named_whitespace_escapes);
    tcase_add_test(t, test_text_escapes_controls_del_and_nul);
    tcase_add_test(t, test_text_keeps_valid_utf8);
    tcase_add_test(t, test_text_escapes_invalid_utf8);
    tcase_add_test(t, test_text_escapes_overlong_and_surrogates);
    tcase_add_test(t, test_text_escapes_c1_controls_and_line_separators);
    tcase_add_test(t, test_text_escapes_bidi_overrides);
    tcase_add_test(t, test_text_empty_input_gives_empty_string);
    tcase_add_test(t, test_text_appends_to_existing_buffer);
    tcase_add_test(t, test_text_s_accepts_null);
    tcase_add_test(t, test_text_output_has_no_raw_control_bytes);
    suite_add_tcase(s, t);

    t = tcase_create("json");
    tcase_add_test(t, test_json_quotes_and_escapes_quote_backslash);
    tcase_add_test(t, test_json_escapes_nul_and_invalid_utf8);
    tcase_add_test(t, test_json_escapes_controls_as_u00nn);
    tcase_add_test(t, test_json_keeps_valid_utf8);
    tcase_add_test(t, test_json_escapes_line_separators_and_c1);
    tcase_add_test(t, test_json_s_null_is_empty_string);
    suite_add_tcase(s, t);

    t = tcase_create("csv");
    tcase_add_test(t, test_csv_plain_field_unquoted);
    tcase_add_test(t, test_csv_quotes_and_doubles_quotes);
    tcase_add_test(t, test_csv_escapes_newlines_and_controls);
    tcase_add_test(t, test_csv_neutralises_formula);
    tcase_add_test(t, test_csv_leading_tab_cannot_start_formula);
    suite_add_tcase(s, t);

    t = tcase_create("header");
    tcase_add_test(t, test_header_is_7bit);
    tcase_add_test(t, test_header_cannot_inject_lines);
    tcase_add_test(t, test_header_output_all_printable_ascii);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(esc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
