/* Unit tests for lib/retrymem.c: first attempt, too-early retry, retry
 * within the window, expiry, and the bound on memory. */
#include <check.h>
#include <stdlib.h>

#include "retrymem.h"

#define MIN 60000LL
#define DAY (24 * 60 * MIN)

/* What the milter does: a message it has not seen is noted as a first
 * attempt. */
static enum retrymem_state seen(struct retrymem *m, uint64_t key, int64_t now, int64_t delay,
                                int64_t window)
{
    enum retrymem_state st = retrymem_check(m, key, now, delay, window);
    if (st == RETRYMEM_NONE)
        retrymem_note(m, key, now);
    return st;
}

START_TEST(test_check_changes_nothing)
{
    struct retrymem *m = retrymem_new(64);
    ck_assert_int_eq(retrymem_check(m, 9, 0, MIN, DAY), RETRYMEM_NONE);
    ck_assert_int_eq(retrymem_check(m, 9, 2 * MIN, MIN, DAY), RETRYMEM_NONE);
    ck_assert_uint_eq(retrymem_count(m), 0);
    retrymem_note(m, 9, 0);
    ck_assert_int_eq(retrymem_check(m, 9, 2 * MIN, MIN, DAY), RETRYMEM_RETRY);
    /* noting again restarts the clock */
    retrymem_note(m, 9, 2 * MIN);
    ck_assert_int_eq(retrymem_check(m, 9, 2 * MIN + 1, MIN, DAY), RETRYMEM_EARLY);
    ck_assert_uint_eq(retrymem_count(m), 1);
    /* forgotten: a new first attempt; a key behind it is still found */
    retrymem_note(m, 9 + 64, 0);   /* probably the same home slot: behind 9 */
    retrymem_forget(m, 9);
    ck_assert_uint_eq(retrymem_count(m), 1);
    ck_assert_int_eq(retrymem_check(m, 9, 3 * MIN, MIN, DAY), RETRYMEM_NONE);
    ck_assert_int_eq(retrymem_check(m, 9 + 64, 3 * MIN, MIN, DAY), RETRYMEM_RETRY);
    retrymem_forget(m, 12345);   /* unknown: nothing happens */
    ck_assert_uint_eq(retrymem_count(m), 1);
    retrymem_free(m);
}
END_TEST

START_TEST(test_first_early_retry_expired)
{
    struct retrymem *m = retrymem_new(64);
    int64_t t0 = 1000000;
    ck_assert_int_eq(seen(m, 42, t0, MIN, DAY), RETRYMEM_NONE);
    /* an immediate resend is still a first attempt, and does not move the clock */
    ck_assert_int_eq(seen(m, 42, t0 + 30000, MIN, DAY), RETRYMEM_EARLY);
    ck_assert_int_eq(seen(m, 42, t0 + MIN - 1, MIN, DAY), RETRYMEM_EARLY);
    ck_assert_int_eq(seen(m, 42, t0 + MIN, MIN, DAY), RETRYMEM_RETRY);
    /* further retries in the window (more recipients, a second copy) pass */
    ck_assert_int_eq(seen(m, 42, t0 + 5 * MIN, MIN, DAY), RETRYMEM_RETRY);
    ck_assert_int_eq(seen(m, 42, t0 + DAY, MIN, DAY), RETRYMEM_RETRY);
    /* past the window it starts again */
    ck_assert_int_eq(seen(m, 42, t0 + DAY + 1, MIN, DAY), RETRYMEM_NONE);
    ck_assert_int_eq(seen(m, 42, t0 + DAY + 2, MIN, DAY), RETRYMEM_EARLY);
    /* other keys are independent; key 0 works */
    ck_assert_int_eq(seen(m, 43, t0 + MIN, MIN, DAY), RETRYMEM_NONE);
    ck_assert_int_eq(seen(m, 0, t0, MIN, DAY), RETRYMEM_NONE);
    ck_assert_int_eq(seen(m, 0, t0 + MIN, MIN, DAY), RETRYMEM_RETRY);
    ck_assert_uint_eq(retrymem_count(m), 3);
    retrymem_free(m);
}
END_TEST

START_TEST(test_clock_going_back_restarts)
{
    struct retrymem *m = retrymem_new(8);
    ck_assert_int_eq(seen(m, 7, 10 * MIN, MIN, DAY), RETRYMEM_NONE);
    ck_assert_int_eq(seen(m, 7, 5 * MIN, MIN, DAY), RETRYMEM_NONE);
    ck_assert_int_eq(seen(m, 7, 6 * MIN, MIN, DAY), RETRYMEM_RETRY);
    retrymem_free(m);
}
END_TEST

START_TEST(test_bounded_oldest_goes)
{
    struct retrymem *m = retrymem_new(1024);
    /* a flood of distinct attempts never holds more than the table */
    for (uint64_t k = 1; k <= 100000; k++)
        seen(m, retrymem_hash(RETRYMEM_HASH_INIT, &k, sizeof k), (int64_t)k, MIN,
                      DAY);
    ck_assert_uint_le(retrymem_count(m), 1024);
    ck_assert_uint_ge(retrymem_count(m), 1000);
    /* the newest ones are still there */
    uint64_t k = 100000;
    ck_assert_int_eq(seen(m, retrymem_hash(RETRYMEM_HASH_INIT, &k, sizeof k),
                                   100000 + MIN, MIN, DAY),
                     RETRYMEM_RETRY);
    /* the first ones were pushed out */
    k = 1;
    ck_assert_int_eq(seen(m, retrymem_hash(RETRYMEM_HASH_INIT, &k, sizeof k),
                                   100000 + MIN, MIN, DAY),
                     RETRYMEM_NONE);
    retrymem_free(m);
}
END_TEST

START_TEST(test_hash_chains)
{
    uint64_t a = retrymem_hash(RETRYMEM_HASH_INIT, "ab", 2);
    uint64_t b = retrymem_hash(retrymem_hash(RETRYMEM_HASH_INIT, "a", 1), "b", 1);
    ck_assert(a == b);
    ck_assert(a != retrymem_hash(RETRYMEM_HASH_INIT, "ba", 2));
    ck_assert(retrymem_hash(RETRYMEM_HASH_INIT, "", 0) == RETRYMEM_HASH_INIT);
}
END_TEST

static Suite *retrymem_suite(void)
{
    Suite *s = suite_create("retrymem");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_check_changes_nothing);
    tcase_add_test(t, test_first_early_retry_expired);
    tcase_add_test(t, test_clock_going_back_restarts);
    tcase_add_test(t, test_bounded_oldest_goes);
    tcase_add_test(t, test_hash_chains);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(retrymem_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
