/* Unit tests for lib/verdict.c: ownership, deep copies, JSON and names.
 * The JSON is checked by SQLite's own parser (the store reads it back with
 * json_each/json_extract), so "valid" means what the store needs. */
#include <check.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "verdict.h"

/* Evaluate json_extract(json, path) with SQLite; caller frees. NULL when
 * the path is absent. Fails the test when json is not valid JSON. */
static char *jx(const char *json, const char *path)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT json_valid(?1), json_extract(?1, ?2)",
                                        -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_msg(sqlite3_column_int(st, 0) == 1, "not valid JSON: %s", json);
    const char *v = (const char *)sqlite3_column_text(st, 1);
    char *out = v ? strdup(v) : NULL;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static void assert_jx(const char *json, const char *path, const char *want)
{
    char *got = jx(json, path);
    if (want)
        ck_assert_msg(got && !strcmp(got, want), "%s in %s: got '%s', want '%s'",
                      path, json, got ? got : "(absent)", want);
    else
        ck_assert_msg(!got, "%s in %s: got '%s', want absent", path, json, got);
    free(got);
}

START_TEST(test_new_verdict_is_empty_accept_at_connect)
{
    struct verdict *v = verdict_new(VERDICT_KIND_RCPT);
    ck_assert_int_eq(v->kind, VERDICT_KIND_RCPT);
    ck_assert_int_eq(v->action, VERDICT_ACCEPT);
    ck_assert_int_eq(v->stage, VSTAGE_CONNECT);
    ck_assert_int_eq(v->id, 0);
    ck_assert_ptr_null(v->sender);
    ck_assert_uint_eq(v->nrcpts, 0);
    ck_assert_uint_eq(v->nreasons, 0);
    verdict_free(v);
    verdict_free(NULL);
}
END_TEST

START_TEST(test_set_copies_replaces_and_clears)
{
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    char buf[] = "a@example.org";
    verdict_set(&v->sender, buf);
    buf[0] = 'X';
    ck_assert_str_eq(v->sender, "a@example.org");
    verdict_set(&v->sender, "b@example.org");
    ck_assert_str_eq(v->sender, "b@example.org");
    verdict_set(&v->sender, v->sender);   /* aliasing its own value */
    ck_assert_str_eq(v->sender, "b@example.org");
    verdict_set(&v->sender, NULL);
    ck_assert_ptr_null(v->sender);
    verdict_free(v);
}
END_TEST

START_TEST(test_clone_is_deep)
{
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    v->time_ms = 1234;
    v->action = VERDICT_REJECT;
    v->monitor = true;
    verdict_set(&v->client_ip, "192.0.2.1");
    verdict_set(&v->reply, "554 5.7.1 no");
    verdict_add_rcpt(v, "a@example.org");
    struct verdict_reason *r = verdict_add_reason(v, "relay", "relay_denied", "t");
    verdict_set(&r->rcpt, "a@example.org");
    verdict_reason_attr(r, "zone", "bl.example");
    struct verdict *c = verdict_clone(v);
    ck_assert_ptr_ne(c->client_ip, v->client_ip);
    ck_assert_ptr_ne(c->rcpts[0], v->rcpts[0]);
    ck_assert_ptr_ne(c->reasons[0].attrs[0].value, v->reasons[0].attrs[0].value);
    verdict_free(v);   /* the clone must not share anything with it */
    ck_assert_int_eq(c->time_ms, 1234);
    ck_assert_int_eq(c->action, VERDICT_REJECT);
    ck_assert(c->monitor);
    ck_assert_str_eq(c->client_ip, "192.0.2.1");
    ck_assert_str_eq(c->reply, "554 5.7.1 no");
    ck_assert_str_eq(c->rcpts[0], "a@example.org");
    ck_assert_str_eq(c->reasons[0].code, "relay_denied");
    ck_assert_str_eq(c->reasons[0].rcpt, "a@example.org");
    ck_assert_str_eq(c->reasons[0].attrs[0].key, "zone");
    ck_assert_str_eq(c->reasons[0].attrs[0].value, "bl.example");
    verdict_free(c);
}
END_TEST

START_TEST(test_reasons_json_has_fixed_keys_then_attrs)
{
    struct verdict *v = verdict_new(VERDICT_KIND_RCPT);
    struct verdict_reason *r = verdict_add_reason(v, "relay", "relay_denied", "not local");
    verdict_set(&r->rcpt, "u@d.example");
    verdict_set(&r->rule, "local.rules:3");
    verdict_reason_attr(r, "would", "reject");
    char *j = verdict_reasons_to_json(v);
    ck_assert_str_eq(j, "[{\"check\":\"relay\",\"code\":\"relay_denied\",\"text\":\"not local\","
                        "\"rcpt\":\"u@d.example\",\"rule\":\"local.rules:3\",\"would\":\"reject\"}]");
    free(j);
    verdict_free(v);
}
END_TEST

START_TEST(test_reasons_json_omits_unset_rcpt_and_rule)
{
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    verdict_add_reason(v, "route", "percent_hack", "u%d@local");
    verdict_add_reason(v, "syntax", "no_domain", NULL);
    char *j = verdict_reasons_to_json(v);
    ck_assert_str_eq(j, "[{\"check\":\"route\",\"code\":\"percent_hack\",\"text\":\"u%d@local\"},"
                        "{\"check\":\"syntax\",\"code\":\"no_domain\",\"text\":\"\"}]");
    free(j);
    verdict_free(v);
}
END_TEST

START_TEST(test_empty_lists_serialise_as_empty_arrays)
{
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    char *a = verdict_reasons_to_json(v), *b = verdict_rcpts_to_json(v);
    ck_assert_str_eq(a, "[]");
    ck_assert_str_eq(b, "[]");
    free(a);
    free(b);
    verdict_free(v);
}
END_TEST

START_TEST(test_hostile_strings_survive_json_round_trip)
{
    static const char *nasty[] = {
        "\"quoted\" and \\back\\slash",
        "ctl\x01\x1b[31m\ttab\nnl\rcr\x7f",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x93\xa7",   /* 日本語 📧 */
        "'); DROP TABLE verdicts; --",
        "}],\"code\":\"forged\"",
    };
    for (size_t i = 0; i < sizeof nasty / sizeof nasty[0]; i++) {
        struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
        struct verdict_reason *r = verdict_add_reason(v, "rule", "c", nasty[i]);
        verdict_set(&r->rcpt, nasty[i]);
        verdict_reason_attr(r, nasty[i], nasty[i]);
        verdict_add_rcpt(v, nasty[i]);
        char *j = verdict_reasons_to_json(v);
        assert_jx(j, "$[0].text", nasty[i]);
        assert_jx(j, "$[0].rcpt", nasty[i]);
        assert_jx(j, "$[0].code", "c");
        free(j);
        j = verdict_rcpts_to_json(v);
        assert_jx(j, "$[0]", nasty[i]);
        free(j);
        verdict_free(v);
    }
}
END_TEST

START_TEST(test_invalid_utf8_still_gives_valid_json)
{
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    verdict_add_reason(v, "syntax", "bad", "\xff\xfe\xc3(");
    verdict_add_rcpt(v, "\x80@example.org");
    char *j = verdict_reasons_to_json(v);
    assert_jx(j, "$[0].text", "\xc3\xbf\xc3\xbe\xc3\x83(");   /* bytes as U+00NN */
    free(j);
    j = verdict_rcpts_to_json(v);
    assert_jx(j, "$[0]", "\xc2\x80@example.org");
    free(j);
    verdict_free(v);
}
END_TEST

START_TEST(test_attr_set_twice_keeps_one_key_with_last_value)
{
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    struct verdict_reason *r = verdict_add_reason(v, "dnsbl", "listed", "x");
    verdict_reason_attr(r, "zone", "a.example");
    verdict_reason_attr(r, "zone", "b.example");
    ck_assert_uint_eq(r->nattrs, 1);
    char *j = verdict_reasons_to_json(v);
    ck_assert_ptr_null(strstr(j, "a.example"));
    assert_jx(j, "$[0].zone", "b.example");
    free(j);
    verdict_free(v);
}
END_TEST

START_TEST(test_attr_named_like_fixed_key_cannot_forge_it)
{
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    struct verdict_reason *r = verdict_add_reason(v, "relay", "relay_denied", "x");
    verdict_reason_attr(r, "code", "accepted");
    char *j = verdict_reasons_to_json(v);
    ck_assert_ptr_null(strstr(j, "accepted"));
    assert_jx(j, "$[0].code", "relay_denied");
    free(j);
    verdict_free(v);
}
END_TEST

START_TEST(test_rcpts_json_keeps_order)
{
    struct verdict *v = verdict_new(VERDICT_KIND_MESSAGE);
    verdict_add_rcpt(v, "a@x.example");
    verdict_add_rcpt(v, "b@y.example");
    char *j = verdict_rcpts_to_json(v);
    ck_assert_str_eq(j, "[\"a@x.example\",\"b@y.example\"]");
    free(j);
    verdict_free(v);
}
END_TEST

START_TEST(test_action_names_round_trip)
{
    static const char *names[] = { "accept", "tag", "quarantine", "tempfail", "reject" };
    for (int a = 0; a < VERDICT_ACTION_COUNT; a++) {
        ck_assert_str_eq(verdict_action_name((enum verdict_action)a), names[a]);
        enum verdict_action out = VERDICT_ACCEPT;
        ck_assert_int_eq(verdict_action_parse(names[a], &out), 0);
        ck_assert_int_eq(out, a);
    }
    enum verdict_action out;
    ck_assert_int_eq(verdict_action_parse("REJECT", &out), 0);
    ck_assert_int_eq(out, VERDICT_REJECT);
}
END_TEST

START_TEST(test_unknown_action_and_stage_are_refused)
{
    enum verdict_action a = VERDICT_TAG;
    enum verdict_stage s = VSTAGE_HELO;
    ck_assert_int_eq(verdict_action_parse("discard", &a), -1);
    ck_assert_int_eq(verdict_action_parse("", &a), -1);
    ck_assert_int_eq(verdict_action_parse(NULL, &a), -1);
    ck_assert_int_eq(verdict_stage_parse("body", &s), -1);
    ck_assert_int_eq(a, VERDICT_TAG);   /* untouched on failure */
    ck_assert_int_eq(s, VSTAGE_HELO);
    ck_assert_str_eq(verdict_action_name((enum verdict_action)99), "unknown");
    ck_assert_str_eq(verdict_stage_name((enum verdict_stage)99), "unknown");
}
END_TEST

START_TEST(test_stage_names_round_trip)
{
    static const char *names[] = { "connect", "helo", "mail", "rcpt", "data", "eom" };
    for (int i = 0; i <= VSTAGE_EOM; i++) {
        ck_assert_str_eq(verdict_stage_name((enum verdict_stage)i), names[i]);
        enum verdict_stage out = VSTAGE_CONNECT;
        ck_assert_int_eq(verdict_stage_parse(names[i], &out), 0);
        ck_assert_int_eq(out, i);
    }
}
END_TEST

START_TEST(test_kind_names)
{
    ck_assert_str_eq(verdict_kind_name(VERDICT_KIND_MESSAGE), "message");
    ck_assert_str_eq(verdict_kind_name(VERDICT_KIND_RCPT), "rcpt");
}
END_TEST

static Suite *verdict_suite(void)
{
    Suite *s = suite_create("verdict");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_new_verdict_is_empty_accept_at_connect);
    tcase_add_test(tc, test_set_copies_replaces_and_clears);
    tcase_add_test(tc, test_clone_is_deep);
    tcase_add_test(tc, test_reasons_json_has_fixed_keys_then_attrs);
    tcase_add_test(tc, test_reasons_json_omits_unset_rcpt_and_rule);
    tcase_add_test(tc, test_empty_lists_serialise_as_empty_arrays);
    tcase_add_test(tc, test_hostile_strings_survive_json_round_trip);
    tcase_add_test(tc, test_invalid_utf8_still_gives_valid_json);
    tcase_add_test(tc, test_attr_set_twice_keeps_one_key_with_last_value);
    tcase_add_test(tc, test_attr_named_like_fixed_key_cannot_forge_it);
    tcase_add_test(tc, test_rcpts_json_keeps_order);
    tcase_add_test(tc, test_action_names_round_trip);
    tcase_add_test(tc, test_unknown_action_and_stage_are_refused);
    tcase_add_test(tc, test_stage_names_round_trip);
    tcase_add_test(tc, test_kind_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(verdict_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
