/* Unit tests for lib/uri.c: registrable domains from the Public Suffix
 * List (the real Debian file when installed, the built-in fallback
 * always), and the link scanner over MIME bodies fed in chunks. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbuf.h"
#include "uri.h"
#include "xalloc.h"

#define PSL_FILE "/usr/share/publicsuffix/public_suffix_list.dat"

static struct psl *psl;

/* Scanner tests need only suffixes the built-in list has too, so they run
 * with whichever list is there. */
static void setup(void)
{
    char err[256];
    psl = psl_load(access(PSL_FILE, R_OK) == 0 ? PSL_FILE : NULL, err, sizeof err);
    ck_assert_ptr_nonnull(psl);
}

static void teardown(void)
{
    psl_free(psl);
    psl = NULL;
}

/* registrable domain of host, or "-" when psl_registrable refuses it */
static const char *reg(const struct psl *p, const char *host)
{
    static char out[256];
    if (psl_registrable(p, host, out, sizeof out) < 0)
        return "-";
    return out;
}

struct scan_opt {
    const char *ct, *cte;
    size_t max_bytes, max_hosts;
    size_t chunk;     /* 0: all at once */
};

/* The hosts found, space-separated, IPs as "ip:ADDR"; caller frees. */
static char *scan_with(const struct scan_opt *o, const char *body, size_t len, bool *trunc)
{
    struct uri_scan *s = uri_scan_new(psl, o->ct, o->cte, o->max_bytes ? o->max_bytes : 1 << 20,
                                      o->max_hosts ? o->max_hosts : 100);
    size_t step = o->chunk ? o->chunk : len;
    for (size_t off = 0; off < len; off += step)
        uri_scan_add(s, body + off, len - off < step ? len - off : step);
    uri_scan_finish(s);
    struct sbuf b = SBUF_INIT;
    for (size_t i = 0; i < uri_scan_count(s); i++) {
        bool is_ip = false;
        const char *h = uri_scan_get(s, i, &is_ip);
        ck_assert_ptr_nonnull(h);
        sbuf_addf(&b, "%s%s%s", i ? " " : "", is_ip ? "ip:" : "", h);
    }
    ck_assert_ptr_null(uri_scan_get(s, uri_scan_count(s), NULL));
    if (trunc)
        *trunc = uri_scan_truncated(s);
    uri_scan_free(s);
    sbuf_adds(&b, "");
    return sbuf_take(&b);
}

static char *scan_ct(const char *ct, const char *cte, const char *body)
{
    struct scan_opt o = { .ct = ct, .cte = cte };
    return scan_with(&o, body, strlen(body), NULL);
}

#define ASSERT_SCAN(ct, cte, body, want) do {                  \
        char *got_ = scan_ct((ct), (cte), (body));             \
        ck_assert_str_eq(got_, (want));                        \
        free(got_);                                            \
    } while (0)

/* base64 with CRLF every 76 characters, as MUAs write it */
static char *b64(const char *in)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct sbuf b = SBUF_INIT;
    size_t n = strlen(in), col = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        char q[4] = { al[v >> 18], al[(v >> 12) & 63], i + 1 < n ? al[(v >> 6) & 63] : '=',
                      i + 2 < n ? al[v & 63] : '=' };
        sbuf_add(&b, q, 4);
        if ((col += 4) == 76) {
            sbuf_adds(&b, "\r\n");
            col = 0;
        }
    }
    sbuf_adds(&b, "\r\n");
    return sbuf_take(&b);
}

/* --- Public Suffix List: the real file --- */

START_TEST(test_registrable_drops_subdomains_above_the_suffix)
{
    ck_assert_str_eq(reg(psl, "www.shop.example.co.uk"), "example.co.uk");
    ck_assert_str_eq(reg(psl, "a.b.example.com"), "example.com");
    ck_assert_str_eq(reg(psl, "example.com"), "example.com");
}
END_TEST

START_TEST(test_wildcard_and_exception_rules)
{
    /* *.ck and !www.ck */
    ck_assert_str_eq(reg(psl, "test.ck"), "-");
    ck_assert_str_eq(reg(psl, "b.test.ck"), "b.test.ck");
    ck_assert_str_eq(reg(psl, "a.b.test.ck"), "b.test.ck");
    ck_assert_str_eq(reg(psl, "www.ck"), "www.ck");
    ck_assert_str_eq(reg(psl, "www.www.ck"), "www.ck");
    /* *.kawasaki.jp and !city.kawasaki.jp */
    ck_assert_str_eq(reg(psl, "c.kawasaki.jp"), "-");
    ck_assert_str_eq(reg(psl, "a.b.c.kawasaki.jp"), "b.c.kawasaki.jp");
    ck_assert_str_eq(reg(psl, "city.kawasaki.jp"), "city.kawasaki.jp");
    ck_assert_str_eq(reg(psl, "www.city.kawasaki.jp"), "city.kawasaki.jp");
}
END_TEST

START_TEST(test_public_suffix_itself_is_refused)
{
    char out[256];
    ck_assert_int_eq(psl_registrable(psl, "com", out, sizeof out), -1);
    ck_assert_int_eq(psl_registrable(psl, "co.uk", out, sizeof out), -1);
    ck_assert_int_eq(psl_registrable(psl, "ck", out, sizeof out), -1);
    /* the PRIVATE section counts: customers of a hosting suffix are apart */
    ck_assert_int_eq(psl_registrable(psl, "github.io", out, sizeof out), -1);
    ck_assert_str_eq(reg(psl, "www.evil.github.io"), "evil.github.io");
}
END_TEST

START_TEST(test_unknown_tld_takes_the_implicit_rule)
{
    ck_assert_str_eq(reg(psl, "a.b.example.zzqx"), "example.zzqx");
    ck_assert_str_eq(reg(psl, "zzqx"), "-");
}
END_TEST

START_TEST(test_case_and_trailing_dot_and_bad_names)
{
    ck_assert_str_eq(reg(psl, "WWW.Shop.Example.CO.UK."), "example.co.uk");
    ck_assert_str_eq(reg(psl, "a..example.com"), "-");
    ck_assert_str_eq(reg(psl, ".example.com"), "-");
    ck_assert_str_eq(reg(psl, ""), "-");
    ck_assert_str_eq(reg(psl, "."), "-");
    ck_assert_str_eq(reg(psl, "exa$mple.com"), "-");
    ck_assert_str_eq(reg(psl, "192.0.2.1"), "-");   /* numeric TLD: not a name */
    char small[8];
    ck_assert_int_eq(psl_registrable(psl, "www.example.com", small, sizeof small), -1);
}
END_TEST

START_TEST(test_idn_hosts_and_rules_become_a_labels)
{
    ck_assert_str_eq(reg(psl, "www.b\xc3\xbc" "cher.de"), "xn--bcher-kva.de");
    /* rule "公司.cn" is UTF-8 in the file */
    ck_assert_str_eq(reg(psl, "www.\xe9\xa3\x9f\xe7\x8b\xae.\xe5\x85\xac\xe5\x8f\xb8.cn"),
                     "xn--85x722f.xn--55qx5d.cn");
    ck_assert_str_eq(reg(psl, "www.shishi.xn--55qx5d.cn"), "shishi.xn--55qx5d.cn");
    ck_assert_str_eq(reg(psl, "xn--55qx5d.cn"), "-");
}
END_TEST

START_TEST(test_psl_file_loads_without_error)
{
    char err[256] = "untouched";
    struct psl *p = psl_load(PSL_FILE, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(err, "");
    /* a rule the built-in list lacks: the file really was read */
    ck_assert_str_eq(reg(p, "x.example.kawasaki.jp"), "x.example.kawasaki.jp");
    psl_free(p);
}
END_TEST

/* --- Public Suffix List: built-in fallback (always runs) --- */

START_TEST(test_fallback_list_when_the_file_is_missing)
{
    char err[256] = "";
    struct psl *p = psl_load("/nonexistent/public_suffix_list.dat", err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(strstr(err, "built-in"));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/public_suffix_list.dat"));
    ck_assert_str_eq(reg(p, "www.shop.example.co.uk"), "example.co.uk");
    ck_assert_str_eq(reg(p, "a.b.example.com.au"), "example.com.au");
    ck_assert_str_eq(reg(p, "a.example.com"), "example.com");
    ck_assert_str_eq(reg(p, "co.jp"), "-");
    ck_assert_str_eq(reg(p, "x.y.example.zzqx"), "example.zzqx");
    psl_free(p);

    err[0] = '\0';
    p = psl_load(NULL, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(strstr(err, "built-in"));
    ck_assert_str_eq(reg(p, "www.example.com.br"), "example.com.br");
    psl_free(p);
}
END_TEST

START_TEST(test_fallback_when_the_file_has_no_rules)
{
    char path[] = "/tmp/check_uri_pslXXXXXX", err[256] = "";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "// only a comment\n\n", 19), 19);
    close(fd);
    struct psl *p = psl_load(path, err, sizeof err);
    unlink(path);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(strstr(err, "built-in"));
    ck_assert_str_eq(reg(p, "www.example.co.uk"), "example.co.uk");
    psl_free(p);
}
END_TEST

/* --- link scanner --- */

START_TEST(test_plain_text_urls_and_www_hosts)
{
    ASSERT_SCAN(NULL, NULL,
                "Hi,\r\nsee http://www.example.com/path?x=1 and HTTPS://Shop.Example.CO.UK/x,\r\n"
                "ftp://files.example.net/pub or www.example.org.\r\n"
                "(https://paren.example.info)\r\n",
                "example.com example.co.uk example.net example.org example.info");
    /* not links: a scheme inside a word, an address, a bare dotted word */
    ASSERT_SCAN(NULL, NULL,
                "xhttp://nope1.example.com joe@www.nope2.example.com a.www.nope3.example.com "
                "nope4.example.com\r\n",
                "");
}
END_TEST

START_TEST(test_mailto_is_not_a_link)
{
    ASSERT_SCAN("text/html", NULL,
                "<a href=\"mailto:www.nope.example.com@mail.example.net\">mail us</a>\r\n"
                "<a href=\"http://web.example.org/\">web</a>\r\n",
                "example.org");
}
END_TEST

START_TEST(test_html_href_forms_and_entities)
{
    ASSERT_SCAN("text/html; charset=utf-8", "8bit",
                "<a href=\"http://click.example.com/x\">a</a>"
                "<A HREF = 'hTTp://Mixed.Example.org'>b</A>"
                "<a href=\"//cdn.example.net/img\">c</a>\r\n"
                "<a href=\"http://phish&#46;example&#x2E;biz/?a=1&amp;b=2\">d</a>\r\n"
                "<a href=\"https&colon;&sol;&sol;enc.example.info\">e</a>\r\n",
                "example.com example.org example.net example.biz example.info");
    /* browsers drop line breaks inside a quoted href */
    ASSERT_SCAN("text/html", NULL, "<a href=\"http://split.exam\r\nple.com/\">x</a>\r\n",
                "example.com");
    /* entities are not decoded in plain text */
    ASSERT_SCAN("text/plain", NULL, "http://a&#46;example.com/\r\n", "");
}
END_TEST

START_TEST(test_userinfo_is_not_the_host)
{
    ASSERT_SCAN(NULL, NULL,
                "http://www.paypal.com.secure@evil.example.net/login\r\n"
                "https://user:pa:ss@www.other.example.org:8443/\r\n",
                "example.net example.org");
    /* userinfo far longer than any buffer */
    struct sbuf b = SBUF_INIT;
    sbuf_adds(&b, "http://");
    for (int i = 0; i < 20000; i++)
        sbuf_adds(&b, "paypal.com.");
    sbuf_adds(&b, "@far.example.com/\r\n");
    ASSERT_SCAN(NULL, NULL, sbuf_str(&b), "example.com");
    sbuf_free(&b);
}
END_TEST

START_TEST(test_port_is_not_part_of_the_host)
{
    ASSERT_SCAN(NULL, NULL, "http://www.example.com:8080/a http://ex%61mple.net:1/\r\n",
                "example.com example.net");
}
END_TEST

START_TEST(test_ip_literals_in_all_spellings)
{
    ASSERT_SCAN(NULL, NULL,
                "http://192.0.2.1/a http://[2001:db8::1]:8080/b http://3232235777/c "
                "http://0xC0.0xA8.0x01.0x02/d http://0300.0250.1.3/e "
                "http://[::ffff:198.51.100.7]/f\r\n",
                "ip:192.0.2.1 ip:2001:db8::1 ip:192.168.1.1 ip:192.168.1.2 ip:192.168.1.3 "
                "ip:198.51.100.7");
    /* loopback is every list's test point; a number that is no address */
    ASSERT_SCAN(NULL, NULL, "http://127.0.0.2/ http://[::1]/ http://1.2.3.4.5/ http://256.1.1.1/\r\n",
                "");
}
END_TEST

START_TEST(test_idn_and_encoded_hosts)
{
    ASSERT_SCAN("text/plain; charset=utf-8", NULL,
                "http://www.b\xc3\xbc" "cher.de/ http://shop.example\xe3\x80\x82" "org/\r\n",
                "xn--bcher-kva.de example.org");
}
END_TEST

START_TEST(test_quoted_printable_soft_breaks_and_escapes)
{
    ASSERT_SCAN("text/html", "quoted-printable",
                "<a href=3D\"http://www.exam=\r\nple.com/foo\">x</a>\r\n"
                "=68ttp://qp.example.net/  \r\n"
                "<a href=3d\"http://pad.exa=  \r\nmple.org/\">y</a>\r\n",
                "example.com example.net example.org");
    /* a soft break whose CR is byte 2048 of the line: the size of the
     * scanner's line buffer, where a long line is cut */
    struct sbuf m = SBUF_INIT;
    for (size_t i = 0; i < 2047 - strlen(" http://long.exa="); i++)
        sbuf_addc(&m, 'A');
    sbuf_adds(&m, " http://long.exa=\r\nmple.net/\r\n");
    ASSERT_SCAN("text/plain", "quoted-printable", sbuf_str(&m), "example.net");
    sbuf_free(&m);
}
END_TEST

START_TEST(test_base64_padding_mid_stream)
{
    /* two base64 blocks back to back, the first ending in "==" with the
     * last letter of its link in the padded group */
    char *one = b64("http://pad.example.com"), *two = b64(" http://next.example.net/");
    ck_assert_ptr_nonnull(strstr(one, "=="));
    struct sbuf m = SBUF_INIT;
    sbuf_adds(&m, one);
    sbuf_adds(&m, two);
    ASSERT_SCAN("text/plain", "base64", sbuf_str(&m), "example.com example.net");
    ASSERT_SCAN("text/plain", "base64", one, "example.com");
    free(one);
    free(two);
    sbuf_free(&m);
}
END_TEST

START_TEST(test_base64_html_part_in_multipart_alternative)
{
    char *enc = b64("<html><body><a href=\"http://b64.example.org/offer\">Click</a>"
                    "</body></html>");
    struct sbuf m = SBUF_INIT;
    sbuf_addf(&m,
              "This is a multi-part message in MIME format.\r\n"
              "--alt-1\r\n"
              "Content-Type: text/plain; charset=us-ascii\r\n"
              "Content-Transfer-Encoding: 7bit\r\n"
              "\r\n"
              "Click (no link here)\r\n"
              "--alt-1\r\n"
              "Content-Type: text/html;\r\n"
              "\tcharset=\"utf-8\"\r\n"
              "Content-Transfer-Encoding: BASE64\r\n"
              "\r\n"
              "%s"
              "--alt-1--\r\n",
              enc);
    ASSERT_SCAN("multipart/alternative; boundary=\"alt-1\"", "7bit", sbuf_str(&m),
                "example.org");
    /* the same bytes read as plain text would show nothing */
    ASSERT_SCAN("text/plain", NULL, enc, "");
    free(enc);
    sbuf_free(&m);
}
END_TEST

START_TEST(test_image_and_attachment_parts_are_not_scanned)
{
    char *att = b64("see http://inattach.example.com/");
    struct sbuf m = SBUF_INIT;
    sbuf_addf(&m,
              "--mix\r\n"
              "Content-Type: image/png\r\n"
              "\r\n"
              "\x89PNG http://inimage.example.com/ \x01\r\n"
              "--mix\r\n"
              "Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
              "Content-Transfer-Encoding: base64\r\n"
              "\r\n"
              "%s"
              "--mix\r\n"
              "Content-Type: text/plain\r\n"
              "\r\n"
              "http://shown.example.net/\r\n"
              "--mix--\r\n",
              att);
    ASSERT_SCAN("multipart/mixed; boundary=mix", NULL, sbuf_str(&m), "example.net");
    free(att);
    sbuf_free(&m);
}
END_TEST

START_TEST(test_nested_multipart_long_boundary_and_forwarded_message)
{
    char outer[101];
    memset(outer, 'B', 100);
    outer[100] = '\0';
    struct sbuf m = SBUF_INIT;
    sbuf_addf(&m,
              "--%s\r\n"
              "Content-Type: multipart/alternative; boundary=\"%s-in\"\r\n"
              "\r\n"
              "--%s-in\r\n"
              "Content-Type: text/html\r\n"
              "Content-Transfer-Encoding: quoted-printable\r\n"
              "\r\n"
              "<a href=3D\"http://inner.example.com/\">x</a>\r\n"
              "--%s-in--\r\n"
              "--%s\r\n"
              "Content-Type: message/rfc822\r\n"
              "\r\n"
              "Subject: fwd\r\n"
              "Content-Type: text/plain\r\n"
              "Content-Transfer-Encoding: quoted-printable\r\n"
              "\r\n"
              "http://fwd.exa=\r\nmple.net/\r\n"
              "--%s\r\n"
              "Content-Type: image/gif\r\n"
              "\r\n"
              "http://hidden.example.org/\r\n"
              "--%s--\r\n",
              outer, outer, outer, outer, outer, outer, outer);
    struct sbuf ct = SBUF_INIT;
    sbuf_addf(&ct, "multipart/mixed;\r\n boundary=\"%s\"", outer);
    ASSERT_SCAN(sbuf_str(&ct), NULL, sbuf_str(&m), "example.com example.net");
    sbuf_free(&m);
    sbuf_free(&ct);
}
END_TEST

START_TEST(test_boundary_must_be_followed_by_blanks_or_dashes)
{
    /* "--xxjunk" is content of a part delimited by "xx"; inner "xx" is a
     * prefix of outer "xx-long" and must not take its lines */
    ASSERT_SCAN("multipart/mixed; boundary=\"xx-long\"", NULL,
                "--xx-long\r\n"
                "Content-Type: multipart/alternative; boundary=xx\r\n\r\n"
                "--xx \r\n"
                "Content-Type: text/plain\r\n\r\n"
                "--xxjunk http://content.example.com/\r\n"
                "--xx--\r\n"
                "--xx-long\r\n"
                "Content-Type: image/png\r\n\r\n"
                "http://image.example.org/\r\n"
                "--xx-long--\r\n"
                "epilogue http://epi.example.net/\r\n",
                "example.com example.net");
}
END_TEST

START_TEST(test_missing_boundary_still_scans_the_text)
{
    ASSERT_SCAN("multipart/mixed; boundary=\"never-seen\"", NULL,
                "Content-Type: text/plain\r\n\r\nhttp://stray.example.com/\r\n", "example.com");
    ASSERT_SCAN("multipart/mixed", NULL, "http://noboundary.example.net/\r\n", "example.net");
}
END_TEST

START_TEST(test_duplicates_are_reported_once_in_order)
{
    ASSERT_SCAN(NULL, NULL,
                "http://b.example.com/ http://a.example.org/ http://192.0.2.9/ "
                "http://c.example.com/ HTTP://B.EXAMPLE.COM/ www.example.org "
                "http://0xc0000209/\r\n",
                "example.com example.org ip:192.0.2.9");
}
END_TEST

START_TEST(test_max_hosts_keeps_the_first)
{
    const char *body = "http://a.example.com http://b.example.net http://a.example.com "
                       "http://c.example.org http://d.example.info http://e.example.biz\r\n";
    struct scan_opt o = { .max_hosts = 3 };
    bool trunc = true;
    char *got = scan_with(&o, body, strlen(body), &trunc);
    ck_assert_str_eq(got, "example.com example.net example.org");
    ck_assert(!trunc);   /* the host cap is not the byte budget */
    free(got);
}
END_TEST

START_TEST(test_max_bytes_truncates_the_scan)
{
    const char *body = "http://first.example.com/ then a long way down............... "
                       "http://second.example.net/\r\n";
    struct scan_opt o = { .max_bytes = 40 };
    bool trunc = false;
    char *got = scan_with(&o, body, strlen(body), &trunc);
    ck_assert_str_eq(got, "example.com");
    ck_assert(trunc);
    free(got);
    /* a link cut by the budget is dropped, not reported half: read on,
     * "second.example.co" would give example.co */
    const char *two = "http://first.example.com/ http://second.example.co.uk/";
    o.max_bytes = 26 + 25;   /* up to "http://second.example.co." */
    got = scan_with(&o, two, strlen(two), &trunc);
    ck_assert_str_eq(got, "example.com");
    ck_assert(trunc);
    free(got);
    o.max_bytes = 0;
    got = scan_with(&o, two, strlen(two), &trunc);
    ck_assert_str_eq(got, "example.com example.co.uk");
    ck_assert(!trunc);
    free(got);
    /* exactly the budget: all scanned, nothing cut ("\n" added per line) */
    o.max_bytes = 27;
    got = scan_with(&o, "http://first.example.com/ \r\n", 28, &trunc);
    ck_assert_str_eq(got, "example.com");
    ck_assert(!trunc);
    free(got);
    o.max_bytes = 26;
    got = scan_with(&o, "http://first.example.com/ \r\n", 28, &trunc);
    ck_assert_str_eq(got, "example.com");
    ck_assert(trunc);
    free(got);
}
END_TEST

/* A message with every decoder and lines longer than the line buffer,
 * with a link across the place where a long line is cut. */
static char *complex_message(void)
{
    struct sbuf m = SBUF_INIT;
    char *h = b64("<p>Hi <a href=\"https://b64.example.org/x?a=1&amp;b=2\">go</a> "
                  "http&#58;//ent&#46;example&#46;info/</p>");
    sbuf_adds(&m, "preamble http://pre.example.com/\r\n--outer\r\n"
                  "Content-Type: multipart/alternative; boundary=\"in\"\r\n\r\n--in\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    for (int i = 0; i < 3000; i++)
        sbuf_adds(&m, "=41");   /* one 9000-byte line */
    sbuf_adds(&m, " http://long.exa=\r\nmple.net/ www.qp.example.com.au=E2=80=8Bjunk\r\n--in\r\n"
                  "Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    sbuf_adds(&m, h);
    sbuf_adds(&m, "--in--\r\n--outer\r\nContent-Type: text/plain\r\n\r\n");
    for (int i = 0; i < 2040; i++)
        sbuf_addc(&m, 'x');
    sbuf_adds(&m, " http://cut.example.co.uk/ \r\n");
    for (int i = 0; i < 2047; i++)   /* the CR lands last in the line buffer */
        sbuf_addc(&m, 'y');
    sbuf_adds(&m, "\r\nhttp://[2001:db8::7]/ end\r\n--outer--\r\nepilogue");
    free(h);
    return sbuf_take(&m);
}

START_TEST(test_byte_by_byte_feeding_equals_whole_feeding)
{
    char *msg = complex_message();
    size_t len = strlen(msg);
    struct scan_opt o = { .ct = "multipart/mixed; boundary=outer", .cte = "7bit" };
    bool t0, t1;
    char *whole = scan_with(&o, msg, len, &t0);
    ck_assert_str_eq(whole, "example.com example.net example.com.au example.org "
                            "example.info example.co.uk ip:2001:db8::7");
    ck_assert(!t0);
    size_t chunks[] = { 1, 2, 3, 7, 64, 2047, 2048, 2049 };
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        o.chunk = chunks[i];
        char *got = scan_with(&o, msg, len, &t1);
        ck_assert_msg(!strcmp(got, whole), "chunk %zu: '%s'", chunks[i], got);
        ck_assert(t1 == t0);
        free(got);
    }
    /* and with a budget that cuts in the middle */
    o.max_bytes = 5000;
    o.chunk = 0;
    char *cut = scan_with(&o, msg, len, &t0);
    ck_assert(t0);
    o.chunk = 1;
    char *cut1 = scan_with(&o, msg, len, &t1);
    ck_assert_str_eq(cut1, cut);
    ck_assert(t1);
    free(cut);
    free(cut1);
    free(whole);
    free(msg);
}
END_TEST

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

START_TEST(test_garbage_input_does_not_crash)
{
    /* random bytes (NULs included) salted with the tokens the parsers
     * react to, under every top-level type, fed whole and in random
     * chunks: same result, within the limits */
    static const char *tokens[] = {
        "http://", "www.", "href=\"//", "\r\n", "\n", "--b\r\n", "--b--\r\n", "=", "=\r\n",
        "&#", "&amp;", "[", "]", "@", ":", "%", "Content-Type: text/html\r\n\r\n",
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n",
        "Content-Transfer-Encoding: base64\r\n\r\n", ".com", "\xe3\x80\x82", "\0",
    };
    static const char *cts[] = { NULL, "text/html", "multipart/mixed; boundary=b",
                                 "multipart/alternative; boundary=\"b\"", "image/png",
                                 "message/rfc822" };
    static const char *ctes[] = { NULL, "quoted-printable", "base64" };
    size_t len = 64 * 1024;
    char *buf = xmalloc(len);
    for (int round = 0; round < 24; round++) {
        for (size_t i = 0; i < len;) {
            if (rng() % 8 == 0) {
                const char *t = tokens[rng() % (sizeof tokens / sizeof tokens[0])];
                size_t tl = t[0] ? strlen(t) : 1;
                for (size_t k = 0; k < tl && i < len; k++)
                    buf[i++] = t[k];
            } else {
                buf[i++] = (char)(rng() & 0xff);
            }
        }
        struct scan_opt o = { .ct = cts[round % 6], .cte = ctes[round % 3], .max_hosts = 1000 };
        bool t0, t1;
        char *a = scan_with(&o, buf, len, &t0);
        struct uri_scan *s = uri_scan_new(psl, o.ct, o.cte, 1 << 20, 1000);
        for (size_t off = 0; off < len;) {
            size_t n = 1 + rng() % 3000;
            if (n > len - off)
                n = len - off;
            uri_scan_add(s, buf + off, n);
            off += n;
        }
        uri_scan_finish(s);
        uri_scan_finish(s);   /* twice is harmless */
        uri_scan_add(s, "http://late.example.com/\n", 25);   /* after finish: ignored */
        t1 = uri_scan_truncated(s);
        struct sbuf b = SBUF_INIT;
        for (size_t i = 0; i < uri_scan_count(s); i++) {
            bool ip;
            const char *h = uri_scan_get(s, i, &ip);
            sbuf_addf(&b, "%s%s%s", i ? " " : "", ip ? "ip:" : "", h);
        }
        sbuf_adds(&b, "");
        ck_assert_msg(!strcmp(a, sbuf_str(&b)), "round %d differs", round);
        ck_assert(t0 == t1);
        sbuf_free(&b);
        uri_scan_free(s);
        free(a);
    }
    free(buf);
}
END_TEST

START_TEST(test_pathological_structure_stays_bounded)
{
    /* 2000 nested multiparts: deeper than followed, read as text */
    struct sbuf m = SBUF_INIT;
    for (int i = 0; i < 2000; i++)
        sbuf_addf(&m, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i, i + 1);
    sbuf_adds(&m, "--b2000\r\nContent-Type: text/plain\r\n\r\nhttp://deep.example.com/\r\n");
    ASSERT_SCAN("multipart/mixed; boundary=b0", NULL, sbuf_str(&m), "example.com");
    sbuf_reset(&m);
    /* one 4 MB line with NULs, a link at its end */
    for (int i = 0; i < 1 << 20; i++)
        sbuf_add(&m, "a\0b ", 4);
    sbuf_adds(&m, "http://end.example.com/");
    struct scan_opt o = { .max_bytes = 8 << 20 };
    bool trunc = true;
    char *got = scan_with(&o, m.s, m.len, &trunc);
    ck_assert_str_eq(got, "example.com");
    ck_assert(!trunc);
    free(got);
    sbuf_reset(&m);
    sbuf_adds(&m, "--x");
    for (int i = 0; i < 5000; i++)
        sbuf_addc(&m, ' ');
    sbuf_adds(&m, "\r\nContent-Type: text/plain\r\n\r\nhttp://after.example.net/\r\n");
    ASSERT_SCAN("multipart/mixed; boundary=x", NULL, sbuf_str(&m), "example.net");
    sbuf_reset(&m);
    sbuf_adds(&m, "multipart/mixed; boundary=\"");
    for (int i = 0; i < 600; i++)
        sbuf_addc(&m, 'q');
    sbuf_adds(&m, "\"");
    ASSERT_SCAN(sbuf_str(&m), NULL, "http://toolong.example.org/\r\n", "example.org");
    sbuf_free(&m);
}
END_TEST

static Suite *uri_suite(void)
{
    Suite *s = suite_create("uri");
    TCase *t;
    if (access(PSL_FILE, R_OK) == 0) {
        t = tcase_create("psl_file");
        tcase_add_checked_fixture(t, setup, teardown);
        tcase_add_test(t, test_registrable_drops_subdomains_above_the_suffix);
        tcase_add_test(t, test_wildcard_and_exception_rules);
        tcase_add_test(t, test_public_suffix_itself_is_refused);
        tcase_add_test(t, test_unknown_tld_takes_the_implicit_rule);
        tcase_add_test(t, test_case_and_trailing_dot_and_bad_names);
        tcase_add_test(t, test_idn_hosts_and_rules_become_a_labels);
        tcase_add_test(t, test_psl_file_loads_without_error);
        suite_add_tcase(s, t);
    } else {
        fprintf(stderr, "check_uri: %s absent (Debian package publicsuffix): "
                "skipping the tests of the full list\n", PSL_FILE);
    }
    t = tcase_create("psl_fallback");
    tcase_add_test(t, test_fallback_list_when_the_file_is_missing);
    tcase_add_test(t, test_fallback_when_the_file_has_no_rules);
    suite_add_tcase(s, t);

    t = tcase_create("scan");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_plain_text_urls_and_www_hosts);
    tcase_add_test(t, test_mailto_is_not_a_link);
    tcase_add_test(t, test_html_href_forms_and_entities);
    tcase_add_test(t, test_userinfo_is_not_the_host);
    tcase_add_test(t, test_port_is_not_part_of_the_host);
    tcase_add_test(t, test_ip_literals_in_all_spellings);
    tcase_add_test(t, test_idn_and_encoded_hosts);
    tcase_add_test(t, test_quoted_printable_soft_breaks_and_escapes);
    tcase_add_test(t, test_base64_padding_mid_stream);
    tcase_add_test(t, test_base64_html_part_in_multipart_alternative);
    tcase_add_test(t, test_image_and_attachment_parts_are_not_scanned);
    tcase_add_test(t, test_nested_multipart_long_boundary_and_forwarded_message);
    tcase_add_test(t, test_boundary_must_be_followed_by_blanks_or_dashes);
    tcase_add_test(t, test_missing_boundary_still_scans_the_text);
    tcase_add_test(t, test_duplicates_are_reported_once_in_order);
    tcase_add_test(t, test_max_hosts_keeps_the_first);
    tcase_add_test(t, test_max_bytes_truncates_the_scan);
    tcase_add_test(t, test_byte_by_byte_feeding_equals_whole_feeding);
    tcase_add_test(t, test_garbage_input_does_not_crash);
    tcase_add_test(t, test_pathological_structure_stays_bounded);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(uri_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
