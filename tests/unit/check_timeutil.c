/* Unit tests for lib/timeutil.c. Local-time tests set TZ to a POSIX rule
 * string, so they do not depend on the host's zone or on tzdata. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeutil.h"

#define CET "CET-1CEST,M3.5.0,M10.5.0/3"   /* Europe/Berlin's rules */
#define T_2026_11_22_140509 1795356309     /* 2026-11-22T14:05:09Z */

static void set_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static int64_t dur(const char *s)
{
    int64_t v = -42;
    ck_assert_msg(tu_parse_duration(s, &v) == 0, "'%s' refused", s);
    return v;
}

static int64_t dur_ms(const char *s)
{
    int64_t v = -42;
    ck_assert_msg(tu_parse_duration_ms(s, &v) == 0, "'%s' refused", s);
    return v;
}

static time_t when(const char *s, time_t now)
{
    time_t t = -42;
    ck_assert_msg(tu_parse_when(s, now, &t) == 0, "'%s' refused", s);
    return t;
}

/* ---- durations ---- */

START_TEST(test_duration_plain_number_is_seconds)
{
    ck_assert_int_eq(dur("30"), 30);
    ck_assert_int_eq(dur("0"), 0);
}
END_TEST

START_TEST(test_duration_units)
{
    ck_assert_int_eq(dur("90s"), 90);
    ck_assert_int_eq(dur("15m"), 900);
    ck_assert_int_eq(dur("1h"), 3600);
    ck_assert_int_eq(dur("7d"), 7 * 86400);
    ck_assert_int_eq(dur("2w"), 14 * 86400);
}
END_TEST

START_TEST(test_duration_compound)
{
    ck_assert_int_eq(dur("1h30m"), 5400);
    ck_assert_int_eq(dur("1w2d3h4m5s"), 7 * 86400 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
    ck_assert_int_eq(dur("1d12h"), 36 * 3600);
}
END_TEST

START_TEST(test_duration_rejects_ms_and_fractions)
{
    int64_t v;
    ck_assert_int_eq(tu_parse_duration("500ms", &v), -1);
    ck_assert_int_eq(tu_parse_duration("1.5m", &v), -1);
    ck_assert_int_eq(tu_parse_duration("1.5", &v), -1);
}
END_TEST

START_TEST(test_duration_rejects_garbage)
{
    const char *bad[] = { "", "s", "h1", "5x", "5 s", " 5", "5 ", "5S", "5H",
                          "1m30", "1hh", "1h 30m", "0x10", "1e3", "abc",
                          "5s\n" };
    int64_t v = 7;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tu_parse_duration(bad[i], &v) == -1, "'%s' accepted", bad[i]);
    ck_assert_int_eq(tu_parse_duration(NULL, &v), -1);
    ck_assert_int_eq(v, 7);   /* untouched on failure */
}
END_TEST

START_TEST(test_duration_rejects_negative_and_signed)
{
    int64_t v;
    ck_assert_int_eq(tu_parse_duration("-5", &v), -1);
    ck_assert_int_eq(tu_parse_duration("-5m", &v), -1);
    ck_assert_int_eq(tu_parse_duration("+5", &v), -1);
    ck_assert_int_eq(tu_parse_duration("1h-5m", &v), -1);
}
END_TEST

START_TEST(test_duration_units_in_descending_order_once)
{
    int64_t v;
    ck_assert_int_eq(tu_parse_duration("1m1m", &v), -1);
    ck_assert_int_eq(tu_parse_duration("30s1h", &v), -1);
    ck_assert_int_eq(tu_parse_duration("1d1w", &v), -1);
}
END_TEST

START_TEST(test_duration_rejects_overflow)
{
    int64_t v;
    ck_assert_int_eq(tu_parse_duration("99999999999999999999", &v), -1);
    ck_assert_int_eq(tu_parse_duration("9223372036854775807w", &v), -1);
    ck_assert_int_eq(tu_parse_duration("15250284453w", &v), -1);
    /* sum overflows although each part fits */
    ck_assert_int_eq(tu_parse_duration("15000000000w9000000000000000s", &v), -1);
    ck_assert_int_eq(dur("1000000w"), 1000000LL * 7 * 86400);
}
END_TEST

START_TEST(test_duration_ms_units)
{
    ck_assert_int_eq(dur_ms("500ms"), 500);
    ck_assert_int_eq(dur_ms("2s"), 2000);
    ck_assert_int_eq(dur_ms("1m500ms"), 60500);
    ck_assert_int_eq(dur_ms("1h"), 3600000);
    ck_assert_int_eq(dur_ms("0ms"), 0);
}
END_TEST

START_TEST(test_duration_ms_plain_number_is_seconds)
{
    ck_assert_int_eq(dur_ms("2"), 2000);
    ck_assert_int_eq(dur_ms("1.5"), 1500);
}
END_TEST

START_TEST(test_duration_ms_fractions)
{
    ck_assert_int_eq(dur_ms("1.5s"), 1500);
    ck_assert_int_eq(dur_ms("0.25s"), 250);
    ck_assert_int_eq(dur_ms("1.5m"), 90000);
    ck_assert_int_eq(dur_ms("0.001s"), 1);
    ck_assert_int_eq(dur_ms("1.500s"), 1500);
}
END_TEST

START_TEST(test_duration_ms_rejects_sub_millisecond_and_bad_fractions)
{
    const char *bad[] = { "0.0001s", "1.5ms", ".5s", "1.s", "1..5s", "1.5.5s",
                          "1.-5s", "1.0000000001s", "-500ms", "500 ms", "500MS",
                          "500ms1s", "" };
    int64_t v;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tu_parse_duration_ms(bad[i], &v) == -1, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_duration_ms_rejects_overflow)
{
    int64_t v;
    ck_assert_int_eq(tu_parse_duration_ms("9223372036854776s", &v), -1);
    ck_assert_int_eq(tu_parse_duration_ms("9223372036854775807ms", &v), 0);
    ck_assert_int_eq(v, INT64_MAX);
    ck_assert_int_eq(tu_parse_duration_ms("9223372036854775807ms1ms", &v), -1);
}
END_TEST

/* ---- points in time ---- */

START_TEST(test_when_duration_means_ago)
{
    ck_assert_int_eq(when("1h", 1000000), 1000000 - 3600);
    ck_assert_int_eq(when("7d", 1000000), 1000000 - 7 * 86400);
    ck_assert_int_eq(when("0", 1000000), 1000000);
    ck_assert_int_eq(when("90", 1000000), 1000000 - 90);
}
END_TEST

START_TEST(test_when_epoch)
{
    ck_assert_int_eq(when("@0", 5), 0);
    ck_assert_int_eq(when("@1795356309", 5), 1795356309);
}
END_TEST

START_TEST(test_when_epoch_rejects_garbage)
{
    const char *bad[] = { "@", "@-1", "@+1", "@12x", "@ 1", "@1.5",
                          "@99999999999999999999" };
    time_t t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tu_parse_when(bad[i], 0, &t) == -1, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_when_utc_timestamp_forms)
{
    ck_assert_int_eq(when("2026-11-22T14:05:09Z", 0), T_2026_11_22_140509);
    ck_assert_int_eq(when("2026-11-22 14:05:09Z", 0), T_2026_11_22_140509);
    ck_assert_int_eq(when("2026-11-22t14:05:09z", 0), T_2026_11_22_140509);
    ck_assert_int_eq(when("2026-11-22T14:05Z", 0), T_2026_11_22_140509 - 9);
    ck_assert_int_eq(when("2024-02-29T00:00:00Z", 0), 1709164800);
    ck_assert_int_eq(when("1900-01-01T00:00Z", 0), -2208988800LL);
}
END_TEST

START_TEST(test_when_offsets)
{
    ck_assert_int_eq(when("2026-11-22T15:05:09+01:00", 0), T_2026_11_22_140509);
    ck_assert_int_eq(when("2026-11-22 09:35:09-04:30", 0), T_2026_11_22_140509);
    ck_assert_int_eq(when("2026-11-22T14:05:09+00:00", 0), T_2026_11_22_140509);
    ck_assert_int_eq(when("2026-11-22T14:05:09-00:00", 0), T_2026_11_22_140509);
}
END_TEST

START_TEST(test_when_fraction_accepted_so_iso_output_round_trips)
{
    char buf[32];
    tu_format_iso_ms(T_2026_11_22_140509 * 1000LL + 123, buf, sizeof buf);
    ck_assert_int_eq(when(buf, 0), T_2026_11_22_140509);
}
END_TEST

START_TEST(test_when_without_zone_is_local_time)
{
    set_tz(CET);   /* winter: UTC+1, summer: UTC+2 */
    ck_assert_int_eq(when("2026-11-22 15:05:09", 0), T_2026_11_22_140509);
    ck_assert_int_eq(when("2026-11-22T15:05:09", 0), T_2026_11_22_140509);
    ck_assert_int_eq(when("2026-11-22 15:05", 0), T_2026_11_22_140509 - 9);
    ck_assert_int_eq(when("2026-07-01 12:00", 0), 1782900000);
    set_tz("UTC0");
    ck_assert_int_eq(when("2026-11-22 14:05:09", 0), T_2026_11_22_140509);
}
END_TEST

START_TEST(test_when_date_only_is_local_midnight)
{
    set_tz("UTC0");
    ck_assert_int_eq(when("2026-11-22", 0), T_2026_11_22_140509 - (14 * 3600 + 5 * 60 + 9));
    set_tz(CET);
    ck_assert_int_eq(when("2026-11-22", 0), T_2026_11_22_140509 - (14 * 3600 + 5 * 60 + 9) - 3600);
}
END_TEST

START_TEST(test_when_local_second_before_epoch_is_not_an_error)
{
    /* mktime returns -1 for this instant; it must not be taken as failure */
    set_tz("UTC0");
    ck_assert_int_eq(when("1969-12-31 23:59:59", 0), -1);
}
END_TEST

START_TEST(test_when_rejects_impossible_dates)
{
    const char *bad[] = { "2026-02-29", "2026-13-01", "2026-00-10", "2026-11-31",
                          "2026-11-00", "2100-02-29", "2026-11-22T24:00Z",
                          "2026-11-22T14:60Z", "2026-11-22T14:05:60Z",
                          "2026-11-22T14:05+24:00", "2026-11-22T14:05+01:60" };
    time_t t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tu_parse_when(bad[i], 0, &t) == -1, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_when_rejects_malformed_timestamps)
{
    const char *bad[] = { "2026-1-22", "26-11-22", "2026/11/22", "2026-11-22 ",
                          "2026-11-22Z", "2026-11-22+01:00", "2026-11-22T",
                          "2026-11-22T14", "2026-11-22T14:5", "2026-11-22T14:05:9",
                          "2026-11-22T14:05:09.", "2026-11-22T14:05:09+0100",
                          "2026-11-22T14:05:09+01", "2026-11-22T14:05:09 Z",
                          "2026-11-22x14:05", "2026-11-22T14:05:09Zjunk",
                          "", "yesterday", "-1h", "1h ago", "2026-11-22T-1:05Z" };
    time_t t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tu_parse_when(bad[i], 0, &t) == -1, "'%s' accepted", bad[i]);
    ck_assert_int_eq(tu_parse_when(NULL, 0, &t), -1);
}
END_TEST

/* ---- clock and formatting ---- */

START_TEST(test_now_ms_tracks_wall_clock)
{
    int64_t before = (int64_t)time(NULL) * 1000;
    int64_t now = tu_now_ms();
    int64_t after = (int64_t)time(NULL) * 1000 + 1000;
    ck_assert_int_ge(now, before);
    ck_assert_int_lt(now, after);
}
END_TEST

START_TEST(test_format_iso_ms_utc)
{
    char buf[32];
    tu_format_iso_ms(T_2026_11_22_140509 * 1000LL + 123, buf, sizeof buf);
    ck_assert_str_eq(buf, "2026-11-22T14:05:09.123Z");
    tu_format_iso_ms(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
}
END_TEST

START_TEST(test_format_iso_ms_ignores_local_zone)
{
    char buf[32];
    set_tz(CET);
    tu_format_iso_ms(T_2026_11_22_140509 * 1000LL + 7, buf, sizeof buf);
    ck_assert_str_eq(buf, "2026-11-22T14:05:09.007Z");
}
END_TEST

START_TEST(test_format_iso_ms_negative_rounds_to_past)
{
    char buf[32];
    tu_format_iso_ms(-1, buf, sizeof buf);
    ck_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
}
END_TEST

START_TEST(test_format_local_uses_tz)
{
    char buf[32];
    set_tz(CET);
    tu_format_local(T_2026_11_22_140509 * 1000LL + 999, buf, sizeof buf);
    ck_assert_str_eq(buf, "2026-11-22 15:05:09");
    tu_format_local(1782900000 * 1000LL, buf, sizeof buf);
    ck_assert_str_eq(buf, "2026-07-01 12:00:00");
    set_tz("UTC0");
    tu_format_local(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "1970-01-01 00:00:00");
}
END_TEST

START_TEST(test_format_truncates_to_small_buffer)
{
    char buf[11];
    memset(buf, 'x', sizeof buf);
    tu_format_iso_ms(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "1970-01-01");
}
END_TEST

static Suite *timeutil_suite(void)
{
    Suite *s = suite_create("timeutil");
    TCase *t = tcase_create("duration");
    tcase_add_test(t, test_duration_plain_number_is_seconds);
    tcase_add_test(t, test_duration_units);
    tcase_add_test(t, test_duration_compound);
    tcase_add_test(t, test_duration_rejects_ms_and_fractions);
    tcase_add_test(t, test_duration_rejects_garbage);
    tcase_add_test(t, test_duration_rejects_negative_and_signed);
    tcase_add_test(t, test_duration_units_in_descending_order_once);
    tcase_add_test(t, test_duration_rejects_overflow);
    tcase_add_test(t, test_duration_ms_units);
    tcase_add_test(t, test_duration_ms_plain_number_is_seconds);
    tcase_add_test(t, test_duration_ms_fractions);
    tcase_add_test(t, test_duration_ms_rejects_sub_millisecond_and_bad_fractions);
    tcase_add_test(t, test_duration_ms_rejects_overflow);
    suite_add_tcase(s, t);

    t = tcase_create("when");
    tcase_add_test(t, test_when_duration_means_ago);
    tcase_add_test(t, test_when_epoch);
    tcase_add_test(t, test_when_epoch_rejects_garbage);
    tcase_add_test(t, test_when_utc_timestamp_forms);
    tcase_add_test(t, test_when_offsets);
    tcase_add_test(t, test_when_fraction_accepted_so_iso_output_round_trips);
    tcase_add_test(t, test_when_without_zone_is_local_time);
    tcase_add_test(t, test_when_date_only_is_local_midnight);
    tcase_add_test(t, test_when_local_second_before_epoch_is_not_an_error);
    tcase_add_test(t, test_when_rejects_impossible_dates);
    tcase_add_test(t, test_when_rejects_malformed_timestamps);
    suite_add_tcase(s, t);

    t = tcase_create("format");
    tcase_add_test(t, test_now_ms_tracks_wall_clock);
    tcase_add_test(t, test_format_iso_ms_utc);
    tcase_add_test(t, test_format_iso_ms_ignores_local_zone);
    tcase_add_test(t, test_format_iso_ms_negative_rounds_to_past);
    tcase_add_test(t, test_format_local_uses_tz);
    tcase_add_test(t, test_format_truncates_to_small_buffer);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(timeutil_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
