/* Unit tests for lib/follow.c: following log files like `tail -F`
 * (appends, rotation, truncation, files that appear later, over-long
 * lines). Each test works in its own temporary directory and drives
 * follow_poll directly, so nothing here depends on timing. */
#include <check.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "follow.h"

static char dir[64];
static char path[128], path2[128], rotated[128];

struct seen {
    char *lines[64];
    size_t len[64];
    bool cut[64];
    size_t n;
    int stop_after;       /* > 0: ask to stop after this many lines */
    char notes[512];
};

static struct seen seen;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static void seen_reset(void)
{
    for (size_t i = 0; i < seen.n; i++)
        free(seen.lines[i]);
    memset(&seen, 0, sizeof seen);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kanjiki-follow-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/mail.log", dir);
    snprintf(path2, sizeof path2, "%s/other.log", dir);
    snprintf(rotated, sizeof rotated, "%s/mail.log.1", dir);
    seen_reset();
}

static void teardown(void)
{
    seen_reset();
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int on_line(const struct follow_line *l, void *arg)
{
    struct seen *s = arg;
    ck_assert_uint_lt(s->n, 64);
    ck_assert_uint_eq(l->text[l->len], '\0');
    s->lines[s->n] = malloc(l->len + 1);
    memcpy(s->lines[s->n], l->text, l->len + 1);
    s->len[s->n] = l->len;
    s->cut[s->n] = l->cut;
    s->n++;
    return s->stop_after > 0 && (int)s->n >= s->stop_after;
}

static void on_note(const char *p, const char *what, void *arg)
{
    struct seen *s = arg;
    (void)p;
    size_t used = strlen(s->notes);
    snprintf(s->notes + used, sizeof s->notes - used, "%s;", what);
}

static void append(const char *p, const char *text)
{
    FILE *f = fopen(p, "a");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void overwrite(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static struct follow *follow1(const char *p, unsigned flags)
{
    const char *paths[] = { p };
    return follow_new(paths, 1, flags, on_line, on_note, &seen);
}

START_TEST(test_appended_lines_are_delivered_and_existing_ones_are_not)
{
    overwrite(path, "before 1\nbefore 2\n");
    struct follow *f = follow1(path, 0);
    ck_assert_int_eq(follow_poll(f), 0);
    append(path, "one\ntwo\n");
    ck_assert_int_eq(follow_poll(f), 2);
    append(path, "three\n");
    ck_assert_int_eq(follow_poll(f), 1);
    ck_assert_uint_eq(seen.n, 3);
    ck_assert_str_eq(seen.lines[0], "one");
    ck_assert_str_eq(seen.lines[1], "two");
    ck_assert_str_eq(seen.lines[2], "three");
    ck_assert(!seen.cut[0]);
    follow_free(f);
}
END_TEST

START_TEST(test_from_start_delivers_existing_lines)
{
    overwrite(path, "before 1\nbefore 2\n");
    struct follow *f = follow1(path, FOLLOW_FROM_START);
    ck_assert_int_eq(follow_poll(f), 2);
    ck_assert_str_eq(seen.lines[0], "before 1");
    ck_assert_str_eq(seen.lines[1], "before 2");
    follow_free(f);
}
END_TEST

START_TEST(test_partial_line_waits_for_its_newline)
{
    overwrite(path, "");
    struct follow *f = follow1(path, 0);
    append(path, "half a li");
    ck_assert_int_eq(follow_poll(f), 0);
    append(path, "ne\r\nnext");
    ck_assert_int_eq(follow_poll(f), 1);
    ck_assert_str_eq(seen.lines[0], "half a line");   /* and the \r went too */
    follow_free(f);
}
END_TEST

START_TEST(test_start_at_end_skips_the_rest_of_a_line_begun_before)
{
    overwrite(path, "complete\nbegun before us");
    struct follow *f = follow1(path, 0);
    append(path, " and ended later\nnew line\n");
    ck_assert_int_eq(follow_poll(f), 1);
    ck_assert_str_eq(seen.lines[0], "new line");
    follow_free(f);
}
END_TEST

START_TEST(test_rotation_by_rename_loses_no_line)
{
    overwrite(path, "");
    struct follow *f = follow1(path, 0);
    append(path, "a\n");
    ck_assert_int_eq(follow_poll(f), 1);
    append(path, "b\n");                      /* written, not yet read */
    ck_assert_int_eq(rename(path, rotated), 0);
    append(rotated, "c\n");                   /* logger still on the old file */
    ck_assert_int_ge(follow_poll(f), 0);      /* path missing for now */
    overwrite(path, "d\n");                   /* new file created */
    append(rotated, "e\n");
    ck_assert_int_ge(follow_poll(f), 0);
    append(rotated, "f\n");                   /* until the logger reopens */
    append(path, "g\n");
    ck_assert_int_ge(follow_poll(f), 0);
    ck_assert_uint_eq(seen.n, 7);
    /* every line once, each file's lines in order */
    const char *want = "abcdefg";
    for (const char *w = want; *w; w++) {
        int count = 0;
        for (size_t i = 0; i < seen.n; i++)
            count += seen.lines[i][0] == *w && seen.lines[i][1] == '\0';
        ck_assert_msg(count == 1, "line %c seen %d times", *w, count);
    }
    ck_assert_ptr_nonnull(strstr(seen.notes, "rotated"));
    follow_free(f);
}
END_TEST

START_TEST(test_rotation_reads_the_new_file_from_its_start)
{
    overwrite(path, "old\n");
    struct follow *f = follow1(path, 0);
    ck_assert_int_eq(rename(path, rotated), 0);
    overwrite(path, "first of new\nsecond of new\n");
    ck_assert_int_eq(follow_poll(f), 2);
    ck_assert_str_eq(seen.lines[0], "first of new");
    ck_assert_str_eq(seen.lines[1], "second of new");
    follow_free(f);
}
END_TEST

START_TEST(test_truncation_rereads_from_start)
{
    overwrite(path, "");
    struct follow *f = follow1(path, 0);
    append(path, "a long first line\nanother long line\n");
    ck_assert_int_eq(follow_poll(f), 2);
    ck_assert_int_eq(truncate(path, 0), 0);   /* copytruncate */
    append(path, "x\n");
    ck_assert_int_eq(follow_poll(f), 1);
    ck_assert_str_eq(seen.lines[2], "x");
    ck_assert_ptr_nonnull(strstr(seen.notes, "truncated"));
    follow_free(f);
}
END_TEST

START_TEST(test_missing_file_is_read_from_start_when_it_appears)
{
    struct follow *f = follow1(path, 0);
    ck_assert_int_eq(follow_poll(f), 0);
    ck_assert_int_eq(follow_poll(f), 0);
    ck_assert_str_eq(seen.notes, "missing;");     /* said once, not per poll */
    overwrite(path, "hello\nworld\n");
    ck_assert_int_eq(follow_poll(f), 2);
    ck_assert_str_eq(seen.lines[0], "hello");
    ck_assert_str_eq(seen.notes, "missing;appeared;");
    follow_free(f);
}
END_TEST

START_TEST(test_overlong_line_is_cut_and_the_rest_skipped)
{
    overwrite(path, "");
    struct follow *f = follow1(path, 0);
    size_t big = 3 * FOLLOW_LINE_MAX + 17;
    char *line = malloc(big + 1);
    memset(line, 'x', big);
    line[big] = '\0';
    append(path, line);
    ck_assert_int_eq(follow_poll(f), 1);      /* cut as soon as it is too long */
    append(path, "yyy tail of the long line\nshort\n");
    ck_assert_int_eq(follow_poll(f), 1);
    ck_assert_uint_eq(seen.n, 2);
    ck_assert(seen.cut[0]);
    ck_assert_uint_eq(seen.len[0], FOLLOW_LINE_MAX);
    ck_assert_uint_eq(strspn(seen.lines[0], "x"), FOLLOW_LINE_MAX);
    ck_assert(!seen.cut[1]);
    ck_assert_str_eq(seen.lines[1], "short");
    free(line);
    follow_free(f);
}
END_TEST

START_TEST(test_line_of_exactly_the_maximum_is_not_cut)
{
    overwrite(path, "");
    struct follow *f = follow1(path, 0);
    char *line = malloc(FOLLOW_LINE_MAX + 2);
    memset(line, 'z', FOLLOW_LINE_MAX);
    line[FOLLOW_LINE_MAX] = '\n';
    line[FOLLOW_LINE_MAX + 1] = '\0';
    append(path, line);
    append(path, "after\n");
    ck_assert_int_eq(follow_poll(f), 2);
    ck_assert(!seen.cut[0]);
    ck_assert_uint_eq(seen.len[0], FOLLOW_LINE_MAX);
    ck_assert_str_eq(seen.lines[1], "after");
    free(line);
    follow_free(f);
}
END_TEST

START_TEST(test_several_files_are_followed)
{
    overwrite(path, "");
    const char *paths[] = { path, path2 };
    struct follow *f = follow_new(paths, 2, 0, on_line, NULL, &seen);
    append(path, "from one\n");
    overwrite(path2, "from two\n");           /* appeared later: from its start */
    ck_assert_int_eq(follow_poll(f), 2);
    ck_assert_str_eq(seen.lines[0], "from one");
    ck_assert_str_eq(seen.lines[1], "from two");
    follow_free(f);
}
END_TEST

START_TEST(test_callback_can_stop_the_poll)
{
    overwrite(path, "");
    struct follow *f = follow1(path, 0);
    seen.stop_after = 2;
    append(path, "1\n2\n3\n");
    ck_assert_int_eq(follow_poll(f), -1);
    ck_assert_uint_eq(seen.n, 2);
    ck_assert(follow_stopped(f));
    follow_free(f);
}
END_TEST

static void *stop_later(void *arg)
{
    struct timespec t = { 0, 200 * 1000000L };
    nanosleep(&t, NULL);
    follow_stop(arg);
    return NULL;
}

START_TEST(test_follow_stop_ends_follow_run)
{
    overwrite(path, "");
    struct follow *f = follow1(path, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, stop_later, f), 0);
    follow_run(f, 50);   /* returns only because of follow_stop */
    pthread_join(th, NULL);
    ck_assert(follow_stopped(f));
    ck_assert(!follow_sleep(f, 10000));       /* returns at once when stopped */
    follow_free(f);
}
END_TEST

static Suite *follow_suite(void)
{
    Suite *s = suite_create("follow");
    TCase *tc = tcase_create("follow");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_appended_lines_are_delivered_and_existing_ones_are_not);
    tcase_add_test(tc, test_from_start_delivers_existing_lines);
    tcase_add_test(tc, test_partial_line_waits_for_its_newline);
    tcase_add_test(tc, test_start_at_end_skips_the_rest_of_a_line_begun_before);
    tcase_add_test(tc, test_rotation_by_rename_loses_no_line);
    tcase_add_test(tc, test_rotation_reads_the_new_file_from_its_start);
    tcase_add_test(tc, test_truncation_rereads_from_start);
    tcase_add_test(tc, test_missing_file_is_read_from_start_when_it_appears);
    tcase_add_test(tc, test_overlong_line_is_cut_and_the_rest_skipped);
    tcase_add_test(tc, test_line_of_exactly_the_maximum_is_not_cut);
    tcase_add_test(tc, test_several_files_are_followed);
    tcase_add_test(tc, test_callback_can_stop_the_poll);
    tcase_add_test(tc, test_follow_stop_ends_follow_run);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(follow_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
