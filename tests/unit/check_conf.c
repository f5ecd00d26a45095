/* Unit tests for lib/conf.c: kanjiki.conf as a mail administrator writes it.
 * Every file is written under a fresh mkdtemp directory. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "cidrset.h"
#include "conf.h"
#include "ip.h"

/* ---- helpers ---- */

static char tmpdir[256];
static char confpath[512];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kanjiki-check-conf-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(confpath, sizeof confpath, "%s/kanjiki.conf", tmpdir);
}

static void teardown(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_raw(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Load text as kanjiki.conf; the test fails if it does not load. */
static struct conf *load_ok(const char *text)
{
    char err[600] = "";
    struct conf *c = NULL;
    write_raw(confpath, text, strlen(text));
    ck_assert_msg(conf_load(confpath, &c, err, sizeof err) == 0,
                  "conf_load failed: %s\n--- file ---\n%s", err, text);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Load text (len bytes) that must fail; returns the error text. */
static const char *load_err_len(const char *text, size_t len)
{
    static char err[600];
    struct conf *c = NULL;
    err[0] = '\0';
    write_raw(confpath, text, len);
    int rc = conf_load(confpath, &c, err, sizeof err);
    if (rc == 0)
        conf_free(c);
    ck_assert_msg(rc == -1, "conf_load accepted a bad file:\n%.*s", (int)len, text);
    ck_assert_msg(err[0] != '\0', "no error message");
    return err;
}

static const char *load_err(const char *text)
{
    return load_err_len(text, strlen(text));
}

/* err must start with "PATH:LINE: " (and, when key, "PATH:LINE: key:"). */
static void assert_err_at(const char *err, int line, const char *key)
{
    char want[700];
    if (key)
        snprintf(want, sizeof want, "%s:%d: %s:", confpath, line, key);
    else
        snprintf(want, sizeof want, "%s:%d: ", confpath, line);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
                  "error '%s' does not start with '%s'", err, want);
}

static struct ip IP(const char *s)
{
    struct ip a;
    ck_assert_msg(ip_parse(s, &a) == 0, "ip_parse(%s)", s);
    return a;
}

static bool has_ip(const struct cidrset *s, const char *addr)
{
    struct ip a = IP(addr);
    return cidrset_contains(s, &a);
}

static char *in_dir(const char *rel)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, rel);
    return buf[k];
}

/* ---- defaults ---- */

START_TEST(test_defaults_apply_without_a_file)
{
    struct conf *c = conf_defaults();
    ck_assert_ptr_null(c->path);
    ck_assert_str_eq(c->socket, "unix:/run/kanjiki/kanjiki.sock");
    ck_assert_str_eq(c->database, "kanjiki.db");
    ck_assert_str_eq(c->user, "kanjiki");
    ck_assert_ptr_null(c->pidfile);
    ck_assert_int_eq(c->mode, CONF_MODE_ENFORCE);
    ck_assert_uint_eq(c->local_domains.n, 1);
    ck_assert_str_eq(c->local_domains.v[0], "localhost");
    ck_assert_uint_eq(c->relay_domains.n, 0);
    ck_assert(has_ip(c->trusted_networks, "127.0.0.1"));
    ck_assert(has_ip(c->trusted_networks, "127.255.0.9"));
    ck_assert(has_ip(c->trusted_networks, "::1"));
    ck_assert(!has_ip(c->trusted_networks, "192.0.2.1"));
    ck_assert(!has_ip(c->trusted_networks, "2001:db8::1"));
    ck_assert_uint_eq(cidrset_count(c->local_addresses), 0);
    ck_assert_ptr_null(c->rules_dir);
    ck_assert_uint_eq(c->dns_servers.n, 0);
    ck_assert_int_eq(c->dns_timeout_ms, 2000);
    ck_assert_str_eq(c->log, "syslog");
    ck_assert_uint_eq(c->allow_routing, 0);
    ck_assert_int_eq(c->popauth_ttl, 1800);
    ck_assert_uint_eq(c->popauth_ipv6_prefix, 128);
    ck_assert_int_eq(c->popauth_poll_ms, 1000);
    ck_assert_uint_eq(c->queue_size, 50000);
    ck_assert(conf_is_local_domain(c, "localhost"));
    ck_assert(!conf_is_local_domain(c, "local.test"));
    conf_free(c);
}
END_TEST

START_TEST(test_empty_file_gives_defaults)
{
    struct conf *c = load_ok("");
    ck_assert_str_eq(c->path, confpath);
    ck_assert_str_eq(c->socket, "unix:/run/kanjiki/kanjiki.sock");
    ck_assert_int_eq(c->mode, CONF_MODE_ENFORCE);
    ck_assert_uint_eq(c->local_domains.n, 1);
    ck_assert(has_ip(c->trusted_networks, "127.0.0.1"));
    conf_free(c);
}
END_TEST

START_TEST(test_missing_file_is_an_error_naming_it)
{
    char err[600] = "";
    struct conf *c = NULL;
    char *p = in_dir("no-such.conf");
    ck_assert_int_eq(conf_load(p, &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, p) != NULL, "error '%s' does not name %s", err, p);
}
END_TEST

/* ---- every key ---- */

START_TEST(test_every_key_is_parsed)
{
    struct conf *c = load_ok(
        "socket = unix:/run/k/k.sock\n"
        "database = /var/lib/kanjiki/k.db\n"
        "user = mailfilter\n"
        "pidfile = /run/k/k.pid\n"
        "mode = monitor\n"
        "local_domains = local.test, example.com\n"
        "relay_domains = relay.test\n"
        "trusted_networks = 192.0.2.0/24, 2001:db8::/32\n"
        "local_addresses = 198.51.100.25\n"
        "rules = /etc/k/rules\n"
        "dns_servers = 192.0.2.53, [2001:db8::53]:5353\n"
        "dns_timeout = 750ms\n"
        "log = stderr\n"
        "allow_routing = percent_hack\n"
        "popauth_ttl = 2h\n"
        "popauth_ipv6_prefix = 64\n"
        "popauth_poll = 250ms\n"
        "queue_size = 1000\n");
    ck_assert_str_eq(c->socket, "unix:/run/k/k.sock");
    ck_assert_str_eq(c->database, "/var/lib/kanjiki/k.db");
    ck_assert_str_eq(c->user, "mailfilter");
    ck_assert_str_eq(c->pidfile, "/run/k/k.pid");
    ck_assert_int_eq(c->mode, CONF_MODE_MONITOR);
    ck_assert_uint_eq(c->local_domains.n, 2);
    ck_assert_str_eq(c->local_domains.v[0], "local.test");
    ck_assert_str_eq(c->local_domains.v[1], "example.com");
    ck_assert_uint_eq(c->relay_domains.n, 1);
    ck_assert_str_eq(c->relay_domains.v[0], "relay.test");
    ck_assert(has_ip(c->trusted_networks, "192.0.2.77"));
    ck_assert(has_ip(c->trusted_networks, "2001:db8:ffff::1"));
    ck_assert(has_ip(c->local_addresses, "198.51.100.25"));
    ck_assert(!has_ip(c->local_addresses, "198.51.100.26"));
    ck_assert_str_eq(c->rules_dir, "/etc/k/rules");
    ck_assert_uint_eq(c->dns_servers.n, 2);
    ck_assert_str_eq(c->dns_servers.v[0], "192.0.2.53");
    ck_assert_str_eq(c->dns_servers.v[1], "[2001:db8::53]:5353");
    ck_assert_int_eq(c->dns_timeout_ms, 750);
    ck_assert_str_eq(c->log, "stderr");
    ck_assert_uint_eq(c->allow_routing, ADDR_T_PERCENT);
    ck_assert_int_eq(c->popauth_ttl, 7200);
    ck_assert_uint_eq(c->popauth_ipv6_prefix, 64);
    ck_assert_int_eq(c->popauth_poll_ms, 250);
    ck_assert_uint_eq(c->queue_size, 1000);
    conf_free(c);
}
END_TEST

START_TEST(test_mode_enforce_and_monitor)
{
    struct conf *c = load_ok("mode = monitor\n");
    ck_assert_int_eq(c->mode, CONF_MODE_MONITOR);
    conf_free(c);
    c = load_ok("mode = monitor\nmode = enforce\n");
    ck_assert_int_eq(c->mode, CONF_MODE_ENFORCE);
    conf_free(c);
}
END_TEST

START_TEST(test_snowshoe_off_observe_enforce)
{
    struct conf *c = load_ok("# nothing\n");
    ck_assert_int_eq(c->snowshoe, CONF_SNOW_OFF);
    conf_free(c);
    c = load_ok("snowshoe = observe\n");
    ck_assert_int_eq(c->snowshoe, CONF_SNOW_OBSERVE);
    conf_free(c);
    c = load_ok("snowshoe = observe\nsnowshoe = enforce\n");
    ck_assert_int_eq(c->snowshoe, CONF_SNOW_ENFORCE);
    ck_assert_str_eq(conf_snowshoe_name(c->snowshoe), "enforce");
    conf_free(c);
    const char *err = load_err("snowshoe = on\n");
    ck_assert_ptr_nonnull(strstr(err, ":1: snowshoe: snowshoe must be off, observe or enforce"));
}
END_TEST

START_TEST(test_bad_mode_is_an_error_with_file_and_line)
{
    const char *err = load_err("# site settings\n\nmode = permissive\n");
    char want[700];
    snprintf(want, sizeof want, "%s:3: mode: mode must be enforce or monitor", confpath);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_empty_user_means_stay_who_we_are)
{
    struct conf *c = load_ok("user =\n");
    ck_assert_ptr_null(c->user);
    conf_free(c);
}
END_TEST

/* ---- socket ---- */

START_TEST(test_socket_unix_forms)
{
    struct conf *c = load_ok("socket = unix:/run/kanjiki/milter.sock\n");
    ck_assert_str_eq(c->socket, "unix:/run/kanjiki/milter.sock");
    conf_free(c);
    c = load_ok("socket = local:/run/kanjiki/milter.sock\n");
    ck_assert_str_eq(c->socket, "unix:/run/kanjiki/milter.sock");
    conf_free(c);
    c = load_ok("socket = /run/kanjiki/milter.sock\n");
    ck_assert_str_eq(c->socket, "unix:/run/kanjiki/milter.sock");
    conf_free(c);
}
END_TEST

START_TEST(test_socket_inet_forms)
{
    static const char *ok[] = { "inet:8890@127.0.0.1", "inet:8890", "inet:1@::1",
                                "inet6:65535@::1", "inet:8890@localhost" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "socket = %s\n", ok[i]);
        char err[600] = "";
        struct conf *c = NULL;
        write_raw(confpath, text, strlen(text));
        ck_assert_msg(conf_load(confpath, &c, err, sizeof err) == 0,
                      "socket %s refused: %s", ok[i], err);
        ck_assert_str_eq(c->socket, ok[i]);
        conf_free(c);
    }
}
END_TEST

START_TEST(test_bad_socket_is_an_error_with_file_and_line)
{
    static const char *bad[] = { "tcp:8890", "inet:0@127.0.0.1", "inet:65536@127.0.0.1",
                                 "inet:port@127.0.0.1", "inet:8890@", "inet:8890x",
                                 "unix:", "local:", "kanjiki.sock", "inet:-1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "mode = enforce\nsocket = %s\n", bad[i]);
        const char *err = load_err(text);
        assert_err_at(err, 2, "socket");
    }
}
END_TEST

/* ---- paths ---- */

START_TEST(test_relative_paths_resolve_against_the_files_directory)
{
    struct conf *c = load_ok("socket = unix:run/k.sock\n"
                             "database = data/k.db\n"
                             "pidfile = k.pid\n"
                             "rules = rules\n"
                             "log = file:log/k.log\n");
    char want[700];
    snprintf(want, sizeof want, "unix:%s", in_dir("run/k.sock"));
    ck_assert_str_eq(c->socket, want);
    ck_assert_str_eq(c->database, in_dir("data/k.db"));
    ck_assert_str_eq(c->pidfile, in_dir("k.pid"));
    ck_assert_str_eq(c->rules_dir, in_dir("rules"));
    snprintf(want, sizeof want, "file:%s", in_dir("log/k.log"));
    ck_assert_str_eq(c->log, want);
    conf_free(c);
}
END_TEST

START_TEST(test_relative_local_socket_resolves_too)
{
    struct conf *c = load_ok("socket = local:k.sock\n");
    char want[700];
    snprintf(want, sizeof want, "unix:%s", in_dir("k.sock"));
    ck_assert_str_eq(c->socket, want);
    conf_free(c);
}
END_TEST

START_TEST(test_absolute_paths_are_kept)
{
    struct conf *c = load_ok("database = /var/lib/kanjiki/kanjiki.db\n"
                             "rules = /etc/kanjiki/rules\n"
                             "pidfile = /run/kanjiki.pid\n"
                             "log = file:/var/log/kanjiki.log\n");
    ck_assert_str_eq(c->database, "/var/lib/kanjiki/kanjiki.db");
    ck_assert_str_eq(c->rules_dir, "/etc/kanjiki/rules");
    ck_assert_str_eq(c->pidfile, "/run/kanjiki.pid");
    ck_assert_str_eq(c->log, "file:/var/log/kanjiki.log");
    conf_free(c);
}
END_TEST

START_TEST(test_empty_database_is_an_error)
{
    assert_err_at(load_err("database =\n"), 1, "database");
}
END_TEST

START_TEST(test_empty_rules_means_no_rules)
{
    struct conf *c = load_ok("rules = rules\nrules =\n");
    ck_assert_ptr_null(c->rules_dir);
    conf_free(c);
}
END_TEST

/* ---- log ---- */

START_TEST(test_log_destinations)
{
    struct conf *c = load_ok("log = syslog\n");
    ck_assert_str_eq(c->log, "syslog");
    conf_free(c);
    c = load_ok("log = stderr\n");
    ck_assert_str_eq(c->log, "stderr");
    conf_free(c);
}
END_TEST

START_TEST(test_bad_log_is_an_error)
{
    assert_err_at(load_err("log = journal\n"), 1, "log");
    assert_err_at(load_err("\nlog = file:\n"), 2, "log");
}
END_TEST

/* ---- lists ---- */

START_TEST(test_lists_split_on_commas_spaces_or_both)
{
    struct conf *c = load_ok("local_domains = a.local.test, b.local.test c.local.test,d.local.test"
                             " ,\te.local.test\n");
    ck_assert_uint_eq(c->local_domains.n, 5);
    ck_assert_str_eq(c->local_domains.v[0], "a.local.test");
    ck_assert_str_eq(c->local_domains.v[1], "b.local.test");
    ck_assert_str_eq(c->local_domains.v[2], "c.local.test");
    ck_assert_str_eq(c->local_domains.v[3], "d.local.test");
    ck_assert_str_eq(c->local_domains.v[4], "e.local.test");
    conf_free(c);
}
END_TEST

START_TEST(test_domains_are_stored_lower_case_without_trailing_dot)
{
    struct conf *c = load_ok("local_domains = Local.TEST.\nrelay_domains = RELAY.test\n");
    ck_assert_uint_eq(c->local_domains.n, 1);
    ck_assert_str_eq(c->local_domains.v[0], "local.test");
    ck_assert_str_eq(c->relay_domains.v[0], "relay.test");
    conf_free(c);
}
END_TEST

START_TEST(test_a_list_key_replaces_its_default)
{
    struct conf *c = load_ok("trusted_networks = 192.0.2.0/24\nlocal_domains = local.test\n");
    ck_assert(!has_ip(c->trusted_networks, "127.0.0.1"));
    ck_assert(!has_ip(c->trusted_networks, "::1"));
    ck_assert(has_ip(c->trusted_networks, "192.0.2.1"));
    ck_assert(!conf_is_local_domain(c, "localhost"));
    conf_free(c);
}
END_TEST

START_TEST(test_a_key_given_again_replaces_not_extends)
{
    struct conf *c = load_ok("local_domains = local.test\nlocal_domains = example.com\n"
                             "trusted_networks = 192.0.2.0/24\n"
                             "trusted_networks = 198.51.100.0/24\n");
    ck_assert_uint_eq(c->local_domains.n, 1);
    ck_assert(!conf_is_local_domain(c, "local.test"));
    ck_assert(conf_is_local_domain(c, "example.com"));
    ck_assert(!has_ip(c->trusted_networks, "192.0.2.1"));
    ck_assert(has_ip(c->trusted_networks, "198.51.100.1"));
    conf_free(c);
}
END_TEST

START_TEST(test_an_empty_value_empties_a_list)
{
    struct conf *c = load_ok("local_domains =\ntrusted_networks =\n");
    ck_assert_uint_eq(c->local_domains.n, 0);
    ck_assert(!conf_is_local_domain(c, "localhost"));
    ck_assert_uint_eq(cidrset_count(c->trusted_networks), 0);
    ck_assert(!has_ip(c->trusted_networks, "127.0.0.1"));
    conf_free(c);
}
END_TEST

START_TEST(test_bad_domain_in_list_is_an_error)
{
    static const char *bad[] = { "-local.test", "exa$mple.test", "local..test", "u@local.test",
                                 "[192.0.2.1]", "local.test!x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "# x\nlocal_domains = local.test, %s\n", bad[i]);
        assert_err_at(load_err(text), 2, "local_domains");
        snprintf(text, sizeof text, "relay_domains = %s\n", bad[i]);
        assert_err_at(load_err(text), 1, "relay_domains");
    }
}
END_TEST

/* ---- networks ---- */

START_TEST(test_trusted_networks_take_ipv4_and_ipv6)
{
    struct conf *c = load_ok("trusted_networks = 192.0.2.0/25, 2001:db8:1::/48 198.51.100.7\n");
    ck_assert(has_ip(c->trusted_networks, "192.0.2.0"));
    ck_assert(has_ip(c->trusted_networks, "192.0.2.127"));
    ck_assert(!has_ip(c->trusted_networks, "192.0.2.128"));
    ck_assert(has_ip(c->trusted_networks, "2001:db8:1:ffff::1"));
    ck_assert(!has_ip(c->trusted_networks, "2001:db8:2::1"));
    ck_assert(has_ip(c->trusted_networks, "198.51.100.7"));
    ck_assert(!has_ip(c->trusted_networks, "198.51.100.8"));
    /* an IPv4 client seen over IPv6 (mapped) is still trusted */
    ck_assert(has_ip(c->trusted_networks, "::ffff:192.0.2.9"));
    conf_free(c);
}
END_TEST

START_TEST(test_cidr_with_host_bits_is_an_error)
{
    const char *err = load_err("\n\ntrusted_networks = 192.0.2.0/24, 198.51.100.1/24\n");
    assert_err_at(err, 3, "trusted_networks");
    ck_assert_msg(strstr(err, "host bits") != NULL, "error '%s'", err);
    assert_err_at(load_err("local_addresses = 2001:db8::1/32\n"), 1, "local_addresses");
}
END_TEST

START_TEST(test_bad_network_is_an_error)
{
    static const char *bad[] = { "192.0.2.0/33", "192.0.2", "2001:db8::/129",
                                 "192.0.2.0/", "example.net", "192.0.2.0/24/8" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "trusted_networks = %s\n", bad[i]);
        assert_err_at(load_err(text), 1, "trusted_networks");
    }
}
END_TEST

/* ---- dns ---- */

START_TEST(test_dns_server_forms)
{
    struct conf *c = load_ok("dns_servers = 192.0.2.53 192.0.2.54:5353, 2001:db8::53,"
                             " [2001:db8::54]:53\n");
    ck_assert_uint_eq(c->dns_servers.n, 4);
    ck_assert_str_eq(c->dns_servers.v[2], "2001:db8::53");
    conf_free(c);
}
END_TEST

START_TEST(test_bad_dns_server_is_an_error)
{
    static const char *bad[] = { "ns.example.net", "192.0.2.53:0", "192.0.2.53:65536",
                                 "192.0.2.53:", "[2001:db8::53", "[2001:db8::53]x",
                                 "192.0.2.256", "[2001:db8::53]:x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "log = stderr\ndns_servers = 192.0.2.1, %s\n", bad[i]);
        const char *err = load_err(text);
        assert_err_at(err, 2, "dns_servers");
    }
}
END_TEST

/* ---- durations and numbers ---- */

START_TEST(test_durations_with_units)
{
    struct conf *c = load_ok("dns_timeout = 1.5s\npopauth_ttl = 1h30m\npopauth_poll = 50ms\n");
    ck_assert_int_eq(c->dns_timeout_ms, 1500);
    ck_assert_int_eq(c->popauth_ttl, 5400);
    ck_assert_int_eq(c->popauth_poll_ms, 50);
    conf_free(c);
    c = load_ok("dns_timeout = 3\npopauth_ttl = 2d\npopauth_poll = 1m\n");
    ck_assert_int_eq(c->dns_timeout_ms, 3000);
    ck_assert_int_eq(c->popauth_ttl, 2 * 86400);
    ck_assert_int_eq(c->popauth_poll_ms, 60000);
    conf_free(c);
    c = load_ok("dns_timeout = 100ms\npopauth_ttl = 1s\n");
    ck_assert_int_eq(c->dns_timeout_ms, 100);
    ck_assert_int_eq(c->popauth_ttl, 1);
    conf_free(c);
    c = load_ok("dns_timeout = 60s\npopauth_ttl = 366d\n");
    ck_assert_int_eq(c->dns_timeout_ms, 60000);
    ck_assert_int_eq(c->popauth_ttl, 366 * 86400);
    conf_free(c);
}
END_TEST

START_TEST(test_duration_out_of_range_is_an_error)
{
    static const struct { const char *line; const char *key; } bad[] = {
        { "dns_timeout = 99ms", "dns_timeout" },
        { "dns_timeout = 61s", "dns_timeout" },
        { "dns_timeout = soon", "dns_timeout" },
        { "dns_timeout = -2s", "dns_timeout" },
        { "popauth_ttl = 0", "popauth_ttl" },
        { "popauth_ttl = 367d", "popauth_ttl" },
        { "popauth_ttl = 500ms", "popauth_ttl" },
        { "popauth_ttl = forever", "popauth_ttl" },
        { "popauth_poll = 10ms", "popauth_poll" },
        { "popauth_poll = 2m", "popauth_poll" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "mode = enforce\n\n%s\n", bad[i].line);
        assert_err_at(load_err(text), 3, bad[i].key);
    }
}
END_TEST

START_TEST(test_numbers_out_of_range_are_errors)
{
    static const struct { const char *line; const char *key; } bad[] = {
        { "popauth_ipv6_prefix = 15", "popauth_ipv6_prefix" },
        { "popauth_ipv6_prefix = 129", "popauth_ipv6_prefix" },
        { "popauth_ipv6_prefix = 64x", "popauth_ipv6_prefix" },
        { "queue_size = 99", "queue_size" },
        { "queue_size = 10000001", "queue_size" },
        { "queue_size = lots", "queue_size" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "%s\n", bad[i].line);
        assert_err_at(load_err(text), 1, bad[i].key);
    }
}
END_TEST

/* ---- allow_routing ---- */

START_TEST(test_allow_routing_names_every_trick)
{
    struct conf *c = load_ok("allow_routing = percent_hack, bang_path double_at quoted_local,"
                             "source_route unqualified ip_literal\n");
    ck_assert_uint_eq(c->allow_routing,
                      ADDR_T_PERCENT | ADDR_T_BANG | ADDR_T_DOUBLE_AT | ADDR_T_QUOTED |
                          ADDR_T_SOURCE_ROUTE | ADDR_T_NO_DOMAIN | CONF_ALLOW_IP_LITERAL);
    conf_free(c);
    c = load_ok("allow_routing = bang_path\nallow_routing = none\n");
    ck_assert_uint_eq(c->allow_routing, 0);
    conf_free(c);
}
END_TEST

START_TEST(test_allow_routing_unknown_name_is_an_error)
{
    const char *err = load_err("allow_routing = percent_hack relay_everything\n");
    assert_err_at(err, 1, "allow_routing");
    ck_assert_msg(strstr(err, "relay_everything") != NULL, "error '%s'", err);
    /* an empty domain (u@) can never be permitted */
    assert_err_at(load_err("allow_routing = empty_domain\n"), 1, "allow_routing");
}
END_TEST

/* ---- syntax ---- */

START_TEST(test_comments_and_blank_lines_are_ignored)
{
    struct conf *c = load_ok("# kanjiki.conf\n"
                             "\n"
                             "   # indented comment\n"
                             "\t\n"
                             "mode = monitor   # trailing comment\n"
                             "  local_domains=local.test#no space\n"
                             "#mode = enforce\n");
    ck_assert_int_eq(c->mode, CONF_MODE_MONITOR);
    ck_assert_uint_eq(c->local_domains.n, 1);
    ck_assert_str_eq(c->local_domains.v[0], "local.test");
    conf_free(c);
}
END_TEST

START_TEST(test_crlf_lines_work)
{
    struct conf *c = load_ok("mode = monitor\r\nlocal_domains = local.test\r\n");
    ck_assert_int_eq(c->mode, CONF_MODE_MONITOR);
    ck_assert_str_eq(c->local_domains.v[0], "local.test");
    conf_free(c);
}
END_TEST

START_TEST(test_last_line_without_newline_is_read)
{
    struct conf *c = load_ok("mode = monitor");
    ck_assert_int_eq(c->mode, CONF_MODE_MONITOR);
    conf_free(c);
}
END_TEST

START_TEST(test_unknown_key_is_an_error_naming_file_line_and_key)
{
    const char *err = load_err("# comment\nmode = enforce\n\ncolour = blue\n");
    assert_err_at(err, 4, NULL);
    ck_assert_msg(strstr(err, "colour") != NULL, "error '%s' does not name the key", err);
}
END_TEST

START_TEST(test_line_without_equals_is_an_error)
{
    assert_err_at(load_err("mode = enforce\nmonitor\n"), 2, NULL);
}
END_TEST

START_TEST(test_key_with_capitals_is_an_error)
{
    assert_err_at(load_err("Mode = enforce\n"), 1, NULL);
}
END_TEST

START_TEST(test_nul_byte_is_an_error)
{
    /* kanjiki.conf(5): "a NUL byte is an error". Two cases: a NUL that would
     * silently cut a value short, and one hiding a whole setting. */
    static const char t1[] = "mode = monitor\0 ignored\nlog = stderr\n";
    assert_err_at(load_err_len(t1, sizeof t1 - 1), 1, NULL);
    static const char t2[] = "log = stderr\n\0colour = blue\n";
    assert_err_at(load_err_len(t2, sizeof t2 - 1), 2, NULL);
}
END_TEST

START_TEST(test_overlong_line_is_an_error)
{
    size_t n = 9000;
    char *text = malloc(n + 64);
    strcpy(text, "mode = enforce\nlocal_domains = ");
    size_t l = strlen(text);
    /* a list of valid names, so only the length can be wrong */
    while (l < n) {
        memcpy(text + l, "d.local.test ", 13);
        l += 13;
    }
    text[l++] = '\n';
    text[l] = '\0';
    assert_err_at(load_err(text), 2, NULL);
    free(text);
}
END_TEST

/* ---- domain matching ---- */

START_TEST(test_local_domain_match_is_exact_on_labels)
{
    struct conf *c = load_ok("local_domains = local.test\nrelay_domains = relay.test\n");
    ck_assert(conf_is_local_domain(c, "local.test"));
    ck_assert(!conf_is_local_domain(c, "evillocal.test"));
    ck_assert(!conf_is_local_domain(c, "sub.local.test"));
    ck_assert(!conf_is_local_domain(c, "local.test.example"));
    ck_assert(!conf_is_local_domain(c, "local"));
    ck_assert(!conf_is_local_domain(c, "test"));
    ck_assert(!conf_is_local_domain(c, ""));
    ck_assert(!conf_is_local_domain(c, "relay.test"));
    ck_assert(conf_is_relay_domain(c, "relay.test"));
    ck_assert(!conf_is_relay_domain(c, "evilrelay.test"));
    ck_assert(!conf_is_relay_domain(c, "local.test"));
    conf_free(c);
}
END_TEST

START_TEST(test_local_domain_match_ignores_case_and_one_trailing_dot)
{
    struct conf *c = load_ok("local_domains = local.test\nrelay_domains = relay.test.\n");
    ck_assert(conf_is_local_domain(c, "LOCAL.Test"));
    ck_assert(conf_is_local_domain(c, "local.test."));
    ck_assert(conf_is_local_domain(c, "Local.TEST."));
    ck_assert(!conf_is_local_domain(c, "local.test.."));
    ck_assert(conf_is_relay_domain(c, "relay.test"));
    ck_assert(conf_is_relay_domain(c, "RELAY.TEST."));
    conf_free(c);
}
END_TEST

/* ---- conf_print ---- */

START_TEST(test_printed_configuration_loads_back_the_same)
{
    struct conf *c = load_ok("socket = inet:8890@127.0.0.1\n"
                             "database = /var/lib/kanjiki/k.db\n"
                             "user = mailfilter\n"
                             "mode = monitor\n"
                             "local_domains = local.test example.com\n"
                             "relay_domains = relay.test\n"
                             "trusted_networks = 192.0.2.0/24 2001:db8::/32\n"
                             "local_addresses = 198.51.100.25\n"
                             "dns_servers = 192.0.2.53\n"
                             "dns_timeout = 1.5s\n"
                             "allow_routing = bang_path ip_literal\n"
                             "popauth_ttl = 1h\n"
                             "popauth_ipv6_prefix = 64\n"
                             "popauth_poll = 200ms\n"
                             "queue_size = 500\n");
    char *p2 = in_dir("printed.conf");
    FILE *f = fopen(p2, "w");
    ck_assert_ptr_nonnull(f);
    conf_print(c, f);
    ck_assert_int_eq(fclose(f), 0);
    struct conf *d = NULL;
    char err[600] = "";
    ck_assert_msg(conf_load(p2, &d, err, sizeof err) == 0, "printed conf refused: %s", err);
    ck_assert_str_eq(d->socket, c->socket);
    ck_assert_str_eq(d->database, c->database);
    ck_assert_str_eq(d->user, c->user);
    ck_assert_ptr_null(d->pidfile);
    ck_assert_ptr_null(d->rules_dir);
    ck_assert_int_eq(d->mode, CONF_MODE_MONITOR);
    ck_assert_uint_eq(d->local_domains.n, 2);
    ck_assert_str_eq(d->local_domains.v[1], "example.com");
    ck_assert_str_eq(d->relay_domains.v[0], "relay.test");
    ck_assert_uint_eq(cidrset_count(d->trusted_networks), 2);
    ck_assert(has_ip(d->trusted_networks, "2001:db8::9"));
    ck_assert(has_ip(d->local_addresses, "198.51.100.25"));
    ck_assert_uint_eq(d->dns_servers.n, 1);
    ck_assert_int_eq(d->dns_timeout_ms, 1500);
    ck_assert_str_eq(d->log, "syslog");
    ck_assert_uint_eq(d->allow_routing, ADDR_T_BANG | CONF_ALLOW_IP_LITERAL);
    ck_assert_int_eq(d->popauth_ttl, 3600);
    ck_assert_uint_eq(d->popauth_ipv6_prefix, 64);
    ck_assert_int_eq(d->popauth_poll_ms, 200);
    ck_assert_uint_eq(d->queue_size, 500);
    conf_free(d);
    conf_free(c);
}
END_TEST

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *t = tcase_create("defaults");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_defaults_apply_without_a_file);
    tcase_add_test(t, test_empty_file_gives_defaults);
    tcase_add_test(t, test_missing_file_is_an_error_naming_it);
    suite_add_tcase(s, t);

    t = tcase_create("keys");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_every_key_is_parsed);
    tcase_add_test(t, test_mode_enforce_and_monitor);
    tcase_add_test(t, test_bad_mode_is_an_error_with_file_and_line);
    tcase_add_test(t, test_snowshoe_off_observe_enforce);
    tcase_add_test(t, test_empty_user_means_stay_who_we_are);
    tcase_add_test(t, test_socket_unix_forms);
    tcase_add_test(t, test_socket_inet_forms);
    tcase_add_test(t, test_bad_socket_is_an_error_with_file_and_line);
    tcase_add_test(t, test_relative_paths_resolve_against_the_files_directory);
    tcase_add_test(t, test_relative_local_socket_resolves_too);
    tcase_add_test(t, test_absolute_paths_are_kept);
    tcase_add_test(t, test_empty_database_is_an_error);
    tcase_add_test(t, test_empty_rules_means_no_rules);
    tcase_add_test(t, test_log_destinations);
    tcase_add_test(t, test_bad_log_is_an_error);
    tcase_add_test(t, test_lists_split_on_commas_spaces_or_both);
    tcase_add_test(t, test_domains_are_stored_lower_case_without_trailing_dot);
    tcase_add_test(t, test_a_list_key_replaces_its_default);
    tcase_add_test(t, test_a_key_given_again_replaces_not_extends);
    tcase_add_test(t, test_an_empty_value_empties_a_list);
    tcase_add_test(t, test_bad_domain_in_list_is_an_error);
    tcase_add_test(t, test_trusted_networks_take_ipv4_and_ipv6);
    tcase_add_test(t, test_cidr_with_host_bits_is_an_error);
    tcase_add_test(t, test_bad_network_is_an_error);
    tcase_add_test(t, test_dns_server_forms);
    tcase_add_test(t, test_bad_dns_server_is_an_error);
    tcase_add_test(t, test_durations_with_units);
    tcase_add_test(t, test_duration_out_of_range_is_an_error);
    tcase_add_test(t, test_numbers_out_of_range_are_errors);
    tcase_add_test(t, test_allow_routing_names_every_trick);
    tcase_add_test(t, test_allow_routing_unknown_name_is_an_error);
    suite_add_tcase(s, t);

    t = tcase_create("syntax");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_comments_and_blank_lines_are_ignored);
    tcase_add_test(t, test_crlf_lines_work);
    tcase_add_test(t, test_last_line_without_newline_is_read);
    tcase_add_test(t, test_unknown_key_is_an_error_naming_file_line_and_key);
    tcase_add_test(t, test_line_without_equals_is_an_error);
    tcase_add_test(t, test_key_with_capitals_is_an_error);
    tcase_add_test(t, test_nul_byte_is_an_error);
    tcase_add_test(t, test_overlong_line_is_an_error);
    suite_add_tcase(s, t);

    t = tcase_create("domains");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_local_domain_match_is_exact_on_labels);
    tcase_add_test(t, test_local_domain_match_ignores_case_and_one_trailing_dot);
    tcase_add_test(t, test_printed_configuration_loads_back_the_same);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
