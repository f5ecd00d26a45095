/* Unit tests for lib/snowsig.c: HELO classes, label and domain
 * randomness (with the real Public Suffix List when installed, the
 * built-in fallback list and no list at all), Message-ID relatedness and
 * the risky-TLD list. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snowsig.h"
#include "uri.h"

#define PSL_FILE "/usr/share/publicsuffix/public_suffix_list.dat"
#define TLD_FILE "rules/risky-tlds.list"

static struct psl *psl;   /* the real list (psl_file cases) or the built-in one */

static void setup_real(void)
{
    char err[256];
    psl = psl_load(PSL_FILE, err, sizeof err);
    ck_assert_msg(psl && !err[0], "psl_load: %s", err);
}

static void setup_builtin(void)
{
    char err[256];
    psl = psl_load(NULL, err, sizeof err);
    ck_assert_ptr_nonnull(psl);
}

static void teardown(void)
{
    psl_free(psl);
    psl = NULL;
}

static double lr(const char *label)
{
    return snowsig_label_randomness(label, strlen(label));
}

/* ---- HELO ---- */

static const char *show(const char *s)
{
    return s ? s : "(null)";
}

static void helo_is(const char *h, const char *ptr, const struct psl *p, enum snowsig_helo want,
                    int line)
{
    enum snowsig_helo got = snowsig_helo_class(h, ptr, p);
    ck_assert_msg(got == want, "line %d: helo '%s' ptr '%s': got %s, want %s", line, show(h),
                  show(ptr), snowsig_helo_name(got), snowsig_helo_name(want));
}

#define HELO(h, ptr, p, want) helo_is((h), (ptr), (p), (want), __LINE__)

START_TEST(test_helo_none_when_absent_or_empty)
{
    HELO(NULL, NULL, NULL, SNOWSIG_HELO_NONE);
    HELO("", NULL, NULL, SNOWSIG_HELO_NONE);
    HELO(NULL, "mail.example.com", NULL, SNOWSIG_HELO_NONE);
}
END_TEST

START_TEST(test_helo_bare_single_label)
{
    HELO("WIN-3KD8", NULL, NULL, SNOWSIG_HELO_BARE);
    HELO("ary058", NULL, NULL, SNOWSIG_HELO_BARE);
    HELO("ary058.", NULL, NULL, SNOWSIG_HELO_BARE);
    HELO("desktop-4amanlo", "host.example.com", NULL, SNOWSIG_HELO_BARE);
}
END_TEST

START_TEST(test_helo_local_names)
{
    HELO("ary058.localhost", NULL, NULL, SNOWSIG_HELO_LOCAL);
    HELO("localhost", NULL, NULL, SNOWSIG_HELO_LOCAL);
    HELO("LOCALHOST.", NULL, NULL, SNOWSIG_HELO_LOCAL);
    HELO("localhost.localdomain", NULL, NULL, SNOWSIG_HELO_LOCAL);
    HELO("centos-s-1vcpu.localdomain", "x.example.com", NULL, SNOWSIG_HELO_LOCAL);
    HELO("printer.local", NULL, NULL, SNOWSIG_HELO_LOCAL);
    HELO("pc.lan", NULL, NULL, SNOWSIG_HELO_LOCAL);
    HELO("box.home", NULL, NULL, SNOWSIG_HELO_LOCAL);
    HELO("mx.corp.internal", NULL, NULL, SNOWSIG_HELO_LOCAL);
    HELO("router.home.arpa", NULL, NULL, SNOWSIG_HELO_LOCAL);
    HELO("Mail.Example.LOCAL.", NULL, NULL, SNOWSIG_HELO_LOCAL);
    /* a real TLD that merely contains the word is not local */
    HELO("mail.localhost.example.com", NULL, NULL, SNOWSIG_HELO_FQDN);
    HELO("mail.homes", NULL, NULL, SNOWSIG_HELO_FQDN);
}
END_TEST

START_TEST(test_helo_address_literals)
{
    HELO("[192.0.2.1]", NULL, NULL, SNOWSIG_HELO_LITERAL);
    HELO("192.0.2.1", NULL, NULL, SNOWSIG_HELO_LITERAL);
    HELO("[IPv6:2001:db8::1]", NULL, NULL, SNOWSIG_HELO_LITERAL);
    HELO("2001:db8::1", NULL, NULL, SNOWSIG_HELO_LITERAL);
    HELO("[192.0.2.1]", "mail.example.com", NULL, SNOWSIG_HELO_LITERAL);
    /* brackets around something that is not an address */
    HELO("[mail.example.com]", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("[300.1.1.1]", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("[192.0.2.1", NULL, NULL, SNOWSIG_HELO_INVALID);
}
END_TEST

START_TEST(test_helo_invalid_names)
{
    HELO("exa mple", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("-bad-.com", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("bad-.example.com", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("mail.example-", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("mail..example.com", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO(".example.com", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO(".", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("mail.example.com..", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("mail@example.com", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("m\xc3\xa4il.example.com", NULL, NULL, SNOWSIG_HELO_INVALID);
    /* all-numeric last label that is no address */
    HELO("192.0.2", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("1.2.3.4.5", NULL, NULL, SNOWSIG_HELO_INVALID);
    HELO("300.1.1.1", NULL, NULL, SNOWSIG_HELO_INVALID);

    char long_name[301];
    memset(long_name, 'a', 300);
    for (int i = 50; i < 300; i += 51)
        long_name[i] = '.';
    long_name[300] = '\0';
    HELO(long_name, NULL, NULL, SNOWSIG_HELO_INVALID);

    char label64[80];
    memset(label64, 'a', 64);
    strcpy(label64 + 64, ".example.com");
    HELO(label64, NULL, NULL, SNOWSIG_HELO_INVALID);
    label64[63] = '.';   /* 63 + ".example.com" after it is fine */
    memmove(label64 + 63, ".example.com", 13);
    HELO(label64, NULL, NULL, SNOWSIG_HELO_FQDN);
}
END_TEST

START_TEST(test_helo_253_octets_is_the_limit)
{
    char name[260];
    /* 4 labels of 63 + 3 dots = 255: too long; 3*63 + 61 + 3 dots = 253 */
    memset(name, 'a', sizeof name);
    for (int i = 63; i < 255; i += 64)
        name[i] = '.';
    name[253] = '\0';
    ck_assert_uint_eq(strlen(name), 253);
    HELO(name, NULL, NULL, SNOWSIG_HELO_FQDN);
    name[253] = 'a';
    name[254] = '\0';
    HELO(name, NULL, NULL, SNOWSIG_HELO_INVALID);
}
END_TEST

START_TEST(test_helo_compared_with_ptr)
{
    HELO("mail.example.com", "mail.example.com", psl, SNOWSIG_HELO_FQDN_PTR);
    HELO("MAIL.Example.COM.", "mail.example.com", psl, SNOWSIG_HELO_FQDN_PTR);
    HELO("mail.example.com", "Mail.Example.Com.", psl, SNOWSIG_HELO_FQDN_PTR);
    HELO("mx1.example.com", "out-7.example.com", psl, SNOWSIG_HELO_FQDN_SAME);
    HELO("example.com", "out-7.mail.example.com", psl, SNOWSIG_HELO_FQDN_SAME);
    HELO("mx1.example.co.uk", "out.example.co.uk", psl, SNOWSIG_HELO_FQDN_SAME);
    /* sharing only the public suffix is no relation */
    HELO("mx1.example.co.uk", "host.other.co.uk", psl, SNOWSIG_HELO_MISMATCH);
    HELO("mail.example.com", "host.other.net", psl, SNOWSIG_HELO_MISMATCH);
    HELO("mail.example.com", "example.com.evil.net", psl, SNOWSIG_HELO_MISMATCH);
    HELO("mail.example.com", NULL, psl, SNOWSIG_HELO_FQDN);
    HELO("mail.example.com", "", psl, SNOWSIG_HELO_FQDN);
    /* what MTAs pass when there is no PTR */
    HELO("mail.example.com", "unknown", psl, SNOWSIG_HELO_FQDN);
    HELO("mail.example.com", "[192.0.2.1]", psl, SNOWSIG_HELO_FQDN);
    HELO("mail.example.com", "192.0.2.1", psl, SNOWSIG_HELO_FQDN);
    HELO("mail_1.example.com", "mail_1.example.com", psl, SNOWSIG_HELO_FQDN_PTR);
}
END_TEST

START_TEST(test_helo_without_psl_compares_exactly)
{
    HELO("mail.example.com", "mail.example.com", NULL, SNOWSIG_HELO_FQDN_PTR);
    HELO("mx1.example.com", "out-7.example.com", NULL, SNOWSIG_HELO_MISMATCH);
    HELO("mail.example.com", NULL, NULL, SNOWSIG_HELO_FQDN);
}
END_TEST

START_TEST(test_helo_names_of_every_class)
{
    static const char *const want[SNOWSIG_HELO_COUNT] = {
        "none", "fqdn_ptr", "fqdn_same", "fqdn", "mismatch", "bare", "local", "literal",
        "invalid",
    };
    for (int i = 0; i < SNOWSIG_HELO_COUNT; i++)
        ck_assert_str_eq(snowsig_helo_name((enum snowsig_helo)i), want[i]);
    ck_assert_str_eq(snowsig_helo_name((enum snowsig_helo)SNOWSIG_HELO_COUNT), "unknown");
    ck_assert_str_eq(snowsig_helo_name((enum snowsig_helo)-1), "unknown");
}
END_TEST

/* ---- label randomness ---- */

START_TEST(test_known_snowshoe_labels_score_high)
{
    static const char *const random[] = {
        "ug53nhrhs09t", "uafyh7o09lz7", "mybmfyzw", "dkodrj", "ary058", "nrzbims9ex32",
        "53aaz5cgme", "lb8iirbjwx3s8h4fpgaz", "js1cqvupqn", "pmdswk", "zxjxjm", "bxyicq",
        "lflwfzlvwz", "iscpvvuw",
    };
    for (size_t i = 0; i < sizeof random / sizeof random[0]; i++)
        ck_assert_msg(lr(random[i]) >= 0.7, "%s: %.3f", random[i], lr(random[i]));
}
END_TEST

START_TEST(test_real_names_score_low)
{
    static const char *const real[] = {
        /* brands and platforms */
        "google", "microsoft", "amazonses", "sendgrid", "mailchimp", "salesforce", "github",
        "paypal", "bankofamerica", "chase", "linkedin", "facebook", "outlook", "yahoo",
        "wellsfargo", "mercadolibre", "bradesco", "correios", "santander", "telekom",
        "wikipedia", "instagram", "netflix", "dropbox", "docusign",
        /* long compounds */
        "stackoverflow", "spamassassin", "bankofamerica", "constantcontact", "sourceforge",
        "washingtonpost", "marksandspencer",
        /* short names and acronyms */
        "ibm", "bbc", "cnn", "hp", "qq", "ups", "dhl", "nasa", "ietf", "hsbc", "usps", "mcsv",
        "fedex", "ovh", "gmx", "aol",
        /* digits */
        "163", "126", "1und1", "3com", "7eleven", "99designs", "web1", "o2",
        /* hyphenated */
        "t-online", "mobile-retter", "crous-montpellier",
    };
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++)
        ck_assert_msg(lr(real[i]) <= 0.3, "%s: %.3f", real[i], lr(real[i]));
}
END_TEST

START_TEST(test_punycode_and_non_ascii_labels_are_zero)
{
    ck_assert_double_eq(lr("xn--bcher-kva"), 0);
    ck_assert_double_eq(lr("xn--80ak6aa92e"), 0);
    ck_assert_double_eq(lr("XN--FIQS8S"), 0);
    ck_assert_double_eq(lr("b\xc3\xbc" "cher"), 0);
    ck_assert_double_eq(lr(""), 0);
    ck_assert_double_eq(snowsig_label_randomness(NULL, 5), 0);
    ck_assert_double_eq(lr("---"), 0);
}
END_TEST

START_TEST(test_randomness_is_case_insensitive_and_bounded_by_len)
{
    ck_assert_double_eq(lr("UG53NHRHS09T"), lr("ug53nhrhs09t"));
    ck_assert_double_eq(lr("StackOverflow"), lr("stackoverflow"));
    /* only len bytes count: a label inside a longer name */
    const char *name = "ug53nhrhs09t.pink";
    ck_assert_double_eq(snowsig_label_randomness(name, 12), lr("ug53nhrhs09t"));
    ck_assert_double_eq(snowsig_label_randomness("google.ug53nhrhs09t", 6), lr("google"));
    /* always within [0, 1] */
    static const char *const any[] = {
        "a", "0", "9999999999", "q1w2e3r4t5y6u7i8o9p0",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    };
    for (size_t i = 0; i < sizeof any / sizeof any[0]; i++) {
        double s = lr(any[i]);
        ck_assert_msg(s >= 0 && s <= 1, "%s: %f", any[i], s);
    }
}
END_TEST

START_TEST(test_short_labels_never_score_random)
{
    /* four characters or fewer are too short to tell from an acronym */
    static const char *const shortl[] = { "zxq", "qxzj", "x9k2", "j3b", "hq", "q" };
    for (size_t i = 0; i < sizeof shortl / sizeof shortl[0]; i++)
        ck_assert_msg(lr(shortl[i]) <= 0.3, "%s: %.3f", shortl[i], lr(shortl[i]));
}
END_TEST

START_TEST(test_digit_letter_switches_raise_the_score)
{
    ck_assert(lr("a1b2c3d4e5") > lr("abcde12345"));
    ck_assert(lr("k9jxwyexvw") > lr("kjxwyexvw"));
    ck_assert(lr("stack0verflow") > lr("stackoverflow"));
}
END_TEST

/* ---- domain randomness ---- */

#define DR(d, p) snowsig_domain_randomness((d), (p))

START_TEST(test_domain_uses_label_left_of_public_suffix)
{
    ck_assert_double_eq(DR("ug53nhrhs09t.pink", psl), lr("ug53nhrhs09t"));
    ck_assert_double_eq(DR("mail.example.co.uk", psl), lr("example"));
    ck_assert_double_eq(DR("www.stackoverflow.com", psl), lr("stackoverflow"));
    ck_assert_double_eq(DR("ug53nhrhs09t.google.com", psl), lr("google"));
    ck_assert_double_eq(DR("google.ug53nhrhs09t.com", psl), lr("ug53nhrhs09t"));
    ck_assert_double_eq(DR("mail.ug53nhrhs09t.co.uk", psl), lr("ug53nhrhs09t"));
    ck_assert(DR("UG53NHRHS09T.PINK.", psl) >= 0.7);
    ck_assert(DR("mybmfyzw.ownpcip", psl) >= 0.7);
    ck_assert(DR("dkodrj.etddmf", psl) >= 0.7);
    ck_assert(DR("ary058.localhost", psl) >= 0.7);
    ck_assert(DR("nrzbims9ex32", psl) >= 0.7);   /* one label: itself */
    ck_assert(DR("mail.bankofamerica.com", psl) <= 0.3);
}
END_TEST

START_TEST(test_domain_with_real_psl_private_suffixes)
{
    /* github.io and blogspot.com are suffixes in the real list only */
    ck_assert_double_eq(DR("x7kq2vbz9w.github.io", psl), lr("x7kq2vbz9w"));
    ck_assert(DR("x7kq2vbz9w.github.io", psl) >= 0.7);
    ck_assert_double_eq(DR("ug53nhrhs09t.com.br", psl), lr("ug53nhrhs09t"));
    ck_assert_double_eq(DR("lmnzzunfc.ppbikppnduutyc.com.br", psl), lr("ppbikppnduutyc"));
}
END_TEST

START_TEST(test_domain_without_psl_takes_last_two_labels)
{
    ck_assert_double_eq(DR("ug53nhrhs09t.pink", NULL), lr("ug53nhrhs09t"));
    ck_assert_double_eq(DR("mail.google.com", NULL), lr("google"));
    ck_assert_double_eq(DR("google.ug53nhrhs09t.com.", NULL), lr("ug53nhrhs09t"));
    /* the fallback's known weakness: a two-label suffix hides the name */
    ck_assert_double_eq(DR("mail.ug53nhrhs09t.co.uk", NULL), lr("co"));
    ck_assert(DR("nrzbims9ex32", NULL) >= 0.7);
    ck_assert(DR("ary058.localhost", NULL) >= 0.7);
}
END_TEST

START_TEST(test_domain_not_a_name_is_zero)
{
    ck_assert_double_eq(DR(NULL, psl), 0);
    ck_assert_double_eq(DR("", psl), 0);
    ck_assert_double_eq(DR("192.0.2.1", psl), 0);
    ck_assert_double_eq(DR("192.0.2.1", NULL), 0);
    ck_assert_double_eq(DR("exa mple.com", psl), 0);
    ck_assert_double_eq(DR("xn--bcher-kva.de", psl), 0);
    ck_assert_double_eq(DR("b\xc3\xbc" "cher.de", NULL), 0);
}
END_TEST

/* ---- Message-ID ---- */

#define UNREL(m, e, f, p) snowsig_msgid_unrelated((m), (e), (f), (p))

START_TEST(test_msgid_related_to_the_sender)
{
    ck_assert(!UNREL("example.com", "example.com", NULL, psl));
    ck_assert(!UNREL("EXAMPLE.COM.", "example.com", NULL, psl));
    ck_assert(!UNREL("mail.example.com", "bounce.example.com", NULL, psl));
    ck_assert(!UNREL("mail.example.com", NULL, "example.com", psl));
    ck_assert(!UNREL("mx.example.co.uk", "example.co.uk", "other.net", psl));
    ck_assert(!UNREL("host.other.net", "example.com", "news.other.net", psl));
}
END_TEST

START_TEST(test_msgid_unrelated_to_the_sender)
{
    ck_assert(UNREL("ug53nhrhs09t.pink", "example.com", "example.com", psl));
    ck_assert(UNREL("ubuntu-s-1vcpu-1gb-35gb-intel-sfo3-06", "atendimento.com.br",
                    "atendimento.com.br", psl));
    ck_assert(UNREL("localhost.localdomain", "example.com", NULL, psl));
    ck_assert(UNREL("a.example.co.uk", "b.other.co.uk", NULL, psl));
    ck_assert(UNREL("[192.0.2.1]", "example.com", NULL, psl));
    ck_assert(UNREL("192.0.2.1", "example.com", NULL, psl));
    ck_assert(UNREL("example.com.evil.net", "example.com", NULL, psl));
    /* a platform's name must match on a label boundary */
    ck_assert(UNREL("notoutlook.com", "example.com", NULL, psl));
    ck_assert(UNREL("outlook.com.evil.net", "example.com", NULL, psl));
}
END_TEST

START_TEST(test_msgid_of_big_platforms_is_related)
{
    static const char *const platforms[] = {
        "mail.gmail.com", "SA3PR19MB7370.namprd19.prod.outlook.com",
        "BN8NAM11FT066.eop-nam11.prod.protection.outlook.com", "email.amazonses.com",
        "eu-west-1.amazonses.com", "ismtpd0001p1las1.sendgrid.net", "mail123.atl11.mcsv.net",
        "mandrillapp.com", "sparkpostmail.com", "mailgun.org", "s7.exacttarget.com",
        "xt.local", "mtasv.net",
    };
    for (size_t i = 0; i < sizeof platforms / sizeof platforms[0]; i++)
        ck_assert_msg(!UNREL(platforms[i], "shop.example.com", "example.com", psl), "%s",
                      platforms[i]);
}
END_TEST

START_TEST(test_msgid_no_evidence_is_not_unrelated)
{
    ck_assert(!UNREL(NULL, "example.com", "example.com", psl));
    ck_assert(!UNREL("", "example.com", NULL, psl));
    ck_assert(!UNREL("ug53nhrhs09t.pink", NULL, NULL, psl));
    ck_assert(!UNREL("ug53nhrhs09t.pink", "", "", psl));
}
END_TEST

START_TEST(test_msgid_without_psl_uses_last_two_labels)
{
    ck_assert(!UNREL("mail.example.com", "bounce.example.com", NULL, NULL));
    ck_assert(UNREL("ug53nhrhs09t.pink", "example.com", NULL, NULL));
    ck_assert(!UNREL("mail.gmail.com", "example.com", NULL, NULL));
    /* the fallback's known weakness: co.uk counts as the domain */
    ck_assert(!UNREL("a.example.co.uk", "b.other.co.uk", NULL, NULL));
}
END_TEST

/* ---- risky TLDs ---- */

static char tmp_path[64];

static const char *write_tmp(const char *text)
{
    strcpy(tmp_path, "/tmp/check_snowsig_XXXXXX");
    int fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return tmp_path;
}

static struct snowsig_tlds *load_text(const char *text, char *err, size_t errlen)
{
    struct snowsig_tlds *t = snowsig_tlds_load(write_tmp(text), err, errlen);
    unlink(tmp_path);
    return t;
}

/* err must start with "<file>:<line>: " and contain want */
static void assert_load_error(const char *text, unsigned line, const char *want)
{
    char err[512] = "";
    ck_assert_ptr_null(load_text(text, err, sizeof err));
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s:%u: ", tmp_path, line);
    ck_assert_msg(!strncmp(err, prefix, strlen(prefix)), "error '%s' lacks '%s'", err, prefix);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

START_TEST(test_tld_weights_default_and_given)
{
    char err[256] = "x";
    struct snowsig_tlds *t = load_text("# risky\n\npink\ntop 2.5\n  xyz\t0.5   # cheap\n",
                                       err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_str_eq(err, "");
    ck_assert_double_eq(snowsig_tld_risk(t, "ug53nhrhs09t.pink"), 1.0);
    ck_assert_double_eq(snowsig_tld_risk(t, "a.b.example.top"), 2.5);
    ck_assert_double_eq(snowsig_tld_risk(t, "example.xyz"), 0.5);
    ck_assert_double_eq(snowsig_tld_risk(t, "example.com"), 0);
    ck_assert_double_eq(snowsig_tld_risk(t, "pink.example.com"), 0);
    ck_assert_double_eq(snowsig_tld_risk(t, "example.pinkish"), 0);
    ck_assert_double_eq(snowsig_tld_risk(t, "pink"), 1.0);
    snowsig_tlds_free(t);
}
END_TEST

START_TEST(test_tld_case_and_dots_do_not_matter)
{
    char err[256];
    struct snowsig_tlds *t = load_text(".Top.\nCLICK 3\n", err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_double_eq(snowsig_tld_risk(t, "EXAMPLE.TOP"), 1.0);
    ck_assert_double_eq(snowsig_tld_risk(t, "example.top."), 1.0);
    ck_assert_double_eq(snowsig_tld_risk(t, "Example.Click."), 3.0);
    ck_assert_double_eq(snowsig_tld_risk(t, "example.top.."), 0);
    snowsig_tlds_free(t);
}
END_TEST

START_TEST(test_tld_unicode_and_a_label_are_one)
{
    char err[256];
    /* .онлайн ("online" in Russian) is xn--80asehdb */
    struct snowsig_tlds *t = load_text("\xd0\xbe\xd0\xbd\xd0\xbb\xd0\xb0\xd0\xb9\xd0\xbd 2\n",
                                       err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_double_eq(snowsig_tld_risk(t, "example.xn--80asehdb"), 2.0);
    ck_assert_double_eq(
        snowsig_tld_risk(t, "example.\xd0\xbe\xd0\xbd\xd0\xbb\xd0\xb0\xd0\xb9\xd0\xbd"), 2.0);
    snowsig_tlds_free(t);
}
END_TEST

START_TEST(test_tld_not_a_domain_is_zero)
{
    char err[256];
    struct snowsig_tlds *t = load_text("top\n", err, sizeof err);
    ck_assert_ptr_nonnull(t);
    ck_assert_double_eq(snowsig_tld_risk(t, NULL), 0);
    ck_assert_double_eq(snowsig_tld_risk(t, ""), 0);
    ck_assert_double_eq(snowsig_tld_risk(t, "192.0.2.1"), 0);
    ck_assert_double_eq(snowsig_tld_risk(t, "[192.0.2.1]"), 0);
    ck_assert_double_eq(snowsig_tld_risk(NULL, "example.top"), 0);
    snowsig_tlds_free(t);
    snowsig_tlds_free(NULL);
}
END_TEST

START_TEST(test_tld_empty_list_loads)
{
    char err[256];
    struct snowsig_tlds *t = load_text("# nothing yet\n\n", err, sizeof err);
    ck_assert_ptr_nonnull(t);
    ck_assert_double_eq(snowsig_tld_risk(t, "example.top"), 0);
    snowsig_tlds_free(t);
}
END_TEST

START_TEST(test_tld_errors_name_the_line)
{
    assert_load_error("pink\ntop heavy\n", 2, "weight 'heavy'");
    assert_load_error("pink\n\n# c\ntop -1\n", 4, "weight '-1'");
    assert_load_error("top 0\n", 1, "weight '0'");
    assert_load_error("top 1e9\n", 1, "weight '1e9'");
    assert_load_error("top nan\n", 1, "weight 'nan'");
    assert_load_error("top 2x\n", 1, "weight '2x'");
    assert_load_error("pink\nred\ntop 1 2\n", 3, "3 words");
    assert_load_error("exa mple 1\n", 1, "3 words");
    assert_load_error("pink\nba_d\n", 2, "'ba_d' is not a top-level domain");
    assert_load_error("co.uk\n", 1, "'co.uk' is not a top-level domain");
    assert_load_error("-top\n", 1, "is not a top-level domain");
    assert_load_error("123\n", 1, "'123' is not a top-level domain");
    assert_load_error("pink\ntop\nred\nTOP. 2\n", 4, "'top' is already listed on line 2");
    assert_load_error("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\nr\ns\nt\n"
                      "u\nv\nw\nx\ny\nz\n!\n", 27, "'!' is not a top-level domain");
}
END_TEST

START_TEST(test_tld_missing_file_is_an_error)
{
    char err[256] = "";
    ck_assert_ptr_null(snowsig_tlds_load("/nonexistent/risky-tlds.list", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/risky-tlds.list"));
    ck_assert_ptr_null(snowsig_tlds_load(NULL, err, sizeof err));
    ck_assert_str_ne(err, "");
    /* a NULL error buffer is allowed */
    ck_assert_ptr_null(snowsig_tlds_load("/nonexistent/risky-tlds.list", NULL, 0));
}
END_TEST

START_TEST(test_shipped_tld_list_loads)
{
    char err[256];
    struct snowsig_tlds *t = snowsig_tlds_load(TLD_FILE, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert(snowsig_tld_risk(t, "ug53nhrhs09t.pink") > 0);
    ck_assert(snowsig_tld_risk(t, "uafyh7o09lz7.red") > 0);
    ck_assert(snowsig_tld_risk(t, "example.top") >= 1);
    ck_assert(snowsig_tld_risk(t, "example.xyz") >= 1);
    static const char *const clean[] = { "example.com", "example.net", "example.org",
                                         "example.de", "example.co.uk", "example.edu" };
    for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++)
        ck_assert_msg(snowsig_tld_risk(t, clean[i]) == 0, "%s", clean[i]);
    snowsig_tlds_free(t);
}
END_TEST

static Suite *snowsig_suite(void)
{
    Suite *s = suite_create("snowsig");
    bool have_psl = access(PSL_FILE, R_OK) == 0;
    TCase *t;

    t = tcase_create("helo");
    tcase_add_test(t, test_helo_none_when_absent_or_empty);
    tcase_add_test(t, test_helo_bare_single_label);
    tcase_add_test(t, test_helo_local_names);
    tcase_add_test(t, test_helo_address_literals);
    tcase_add_test(t, test_helo_invalid_names);
    tcase_add_test(t, test_helo_253_octets_is_the_limit);
    tcase_add_test(t, test_helo_without_psl_compares_exactly);
    tcase_add_test(t, test_helo_names_of_every_class);
    suite_add_tcase(s, t);

    /* cases whose answers are the same with the real and built-in lists */
    t = tcase_create("psl_builtin");
    tcase_add_checked_fixture(t, setup_builtin, teardown);
    tcase_add_test(t, test_helo_compared_with_ptr);
    tcase_add_test(t, test_domain_uses_label_left_of_public_suffix);
    tcase_add_test(t, test_domain_not_a_name_is_zero);
    tcase_add_test(t, test_msgid_related_to_the_sender);
    tcase_add_test(t, test_msgid_unrelated_to_the_sender);
    tcase_add_test(t, test_msgid_of_big_platforms_is_related);
    tcase_add_test(t, test_msgid_no_evidence_is_not_unrelated);
    suite_add_tcase(s, t);

    if (have_psl) {
        t = tcase_create("psl_file");
        tcase_add_checked_fixture(t, setup_real, teardown);
        tcase_add_test(t, test_helo_compared_with_ptr);
        tcase_add_test(t, test_domain_uses_label_left_of_public_suffix);
        tcase_add_test(t, test_domain_with_real_psl_private_suffixes);
        tcase_add_test(t, test_domain_not_a_name_is_zero);
        tcase_add_test(t, test_msgid_related_to_the_sender);
        tcase_add_test(t, test_msgid_unrelated_to_the_sender);
        tcase_add_test(t, test_msgid_of_big_platforms_is_related);
        suite_add_tcase(s, t);
    } else {
        fprintf(stderr, "check_snowsig: %s absent (Debian package publicsuffix): "
                "skipping the tests with the full list\n", PSL_FILE);
    }

    t = tcase_create("no_psl");
    tcase_add_test(t, test_domain_without_psl_takes_last_two_labels);
    tcase_add_test(t, test_msgid_without_psl_uses_last_two_labels);
    suite_add_tcase(s, t);

    t = tcase_create("randomness");
    tcase_add_test(t, test_known_snowshoe_labels_score_high);
    tcase_add_test(t, test_real_names_score_low);
    tcase_add_test(t, test_punycode_and_non_ascii_labels_are_zero);
    tcase_add_test(t, test_randomness_is_case_insensitive_and_bounded_by_len);
    tcase_add_test(t, test_short_labels_never_score_random);
    tcase_add_test(t, test_digit_letter_switches_raise_the_score);
    suite_add_tcase(s, t);

    t = tcase_create("tlds");
    tcase_add_test(t, test_tld_weights_default_and_given);
    tcase_add_test(t, test_tld_case_and_dots_do_not_matter);
    tcase_add_test(t, test_tld_unicode_and_a_label_are_one);
    tcase_add_test(t, test_tld_not_a_domain_is_zero);
    tcase_add_test(t, test_tld_empty_list_loads);
    tcase_add_test(t, test_tld_errors_name_the_line);
    tcase_add_test(t, test_tld_missing_file_is_an_error);
    if (access(TLD_FILE, R_OK) == 0)
        tcase_add_test(t, test_shipped_tld_list_loads);
    else
        fprintf(stderr, "check_snowsig: %s not found (run from the repository root): "
                "skipping the shipped list's test\n", TLD_FILE);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(snowsig_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
