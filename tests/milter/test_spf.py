"""SPF (RFC 7208) through the real kanjiki-milter and the real test DNS of
tests/dnsenv (dnsmasq answers the SPF records listed in dnsenv.sh).

The clients are documentation addresses (192.0.2.0/24, 198.51.100.0/24,
2001:db8::/32), which libspf2 evaluates for real (a loopback client would
get a free pass).  Two daemons of their own:

  spf-eom    every SPF result has its own weight, a tag and a reject
             threshold: SPF is evaluated at the end of the message
  spf-early  spf fail 10 and an early reject threshold: SPF is evaluated at
             the first RCPT and a fail refuses the recipient there

What is checked: the result for each kind of record, its weight in the score
and the action it leads to, the Authentication-Results and Received-SPF
headers (inserted at the top, well formed whatever the client sends), the
verdict's evidence, the identity (MAIL FROM, or HELO for the null sender),
IPv6 and IPv4-mapped clients, a DNS server that never answers (temperror
within dns_timeout, degraded), and that our own clients (trusted networks,
SMTP AUTH) are not checked at all.
"""

import re
import socket
import threading
import time

from kjtest import OwnMilterCase, by_sender, codes, dns_conf

DNS_TIMEOUT = 2.0

EOM_RULES = """\
# every result weighs differently, so the score tells which one was found
spf pass -1
spf fail 10
spf softfail 3.5
spf neutral 1.5
spf none 0.5
spf permerror 4
spf temperror 2
threshold 3 tag
threshold 5 reject
"""

EARLY_RULES = """\
spf fail 10
threshold 5 reject early
"""

SCORE_REPLY_10 = "550 5.7.1 Message refused (kanjiki): spam score 10.0"


# ---------------------------------------------------------------- parsing

def esc_header(raw):
    """What the milter's esc_header makes of RAW (bytes or str): printable
    ASCII kept, backslash doubled, \\n \\r \\t named, every other byte \\xNN."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    out = []
    for b in raw:
        if b == 0x5c:
            out.append("\\\\")
        elif 0x20 <= b < 0x7f:
            out.append(chr(b))
        elif b == 0x0a:
            out.append("\\n")
        elif b == 0x0d:
            out.append("\\r")
        elif b == 0x09:
            out.append("\\t")
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


class HeaderSyntax(AssertionError):
    pass


def _quoted(s, i):
    """The quoted-string starting at s[i] ('"'): (unquoted text, index after
    the closing quote)."""
    assert s[i] == '"'
    i += 1
    out = []
    while True:
        if i >= len(s):
            raise HeaderSyntax("unterminated quoted-string in %r" % s)
        ch = s[i]
        if ch == "\\":
            if i + 1 >= len(s):
                raise HeaderSyntax("dangling backslash in %r" % s)
            out.append(s[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1


DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def parse_received_spf(v):
    """RFC 7208 9.1: result FWS [comment FWS] key=value *(";" key=value).
    Returns (result, comment text, {key: unquoted value}); raises
    HeaderSyntax on anything else (a repeated key included)."""
    m = re.match(r"([a-z]+) ", v)
    if not m:
        raise HeaderSyntax("no result word in %r" % v)
    result, i = m.group(1), m.end()
    comment = None
    if i < len(v) and v[i] == "(":
        depth, out = 0, []
        while True:
            if i >= len(v):
                raise HeaderSyntax("unterminated comment in %r" % v)
            ch = v[i]
            if ch == "\\":
                out.append(v[i + 1])
                i += 2
                continue
            if ch == "(":
                depth += 1
                if depth > 1:
                    out.append(ch)
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    i += 1
                    break
                out.append(ch)
            else:
                out.append(ch)
            i += 1
        comment = "".join(out)
    pairs = {}
    while True:
        m = re.compile(r" *([A-Za-z][A-Za-z0-9-]*)=").match(v, i)
        if not m:
            raise HeaderSyntax("expected key= at %d in %r" % (i, v))
        key, i = m.group(1), m.end()
        if key in pairs:
            raise HeaderSyntax("key %s twice in %r" % (key, v))
        if i < len(v) and v[i] == '"':
            val, i = _quoted(v, i)
        else:
            m = DOT_ATOM.match(v, i)
            if not m:
                raise HeaderSyntax("bad value for %s at %d in %r" % (key, i, v))
            val, i = m.group(0), m.end()
        pairs[key] = val
        if i == len(v):
            break
        if v[i] != ";":
            raise HeaderSyntax("expected ';' at %d in %r" % (i, v))
        i += 1
    return result, comment, pairs


def parse_auth_results(v):
    """'AUTHSERV-ID; spf=RESULT smtp.PROP=VALUE' (RFC 8601) as produced
    here: (authserv-id, result, prop, unquoted value)."""
    m = re.match(r"([^;\s]+); spf=([a-z]+) (smtp\.(?:mailfrom|helo))=", v)
    if not m:
        raise HeaderSyntax("unexpected Authentication-Results %r" % v)
    i = m.end()
    if i < len(v) and v[i] == '"':
        val, i = _quoted(v, i)
    else:
        t = re.compile(r"[^\s;\"()\\]+").match(v, i)
        if not t:
            raise HeaderSyntax("bad property value in %r" % v)
        val, i = t.group(0), t.end()
    if i != len(v):
        raise HeaderSyntax("text after the property in %r" % v)
    return m.group(1), m.group(2), m.group(3), val


# ---------------------------------------------------------------- base

class SpfCase(OwnMilterCase):
    """A daemon of the class's own with RULES and the test DNS."""

    RULES_FILE = "50-spf.rules"

    @classmethod
    def extra_conf(cls):
        return dns_conf("%gs" % DNS_TIMEOUT)

    def addr(self, domain, tag="s"):
        """An address at DOMAIN unique to this test (for by_sender)."""
        return "%s%s-%s@%s" % (tag, self.tok, self._testMethodName[5:30].replace("_", "-"),
                               domain)

    def spf_lookup(self, v):
        rows = [l for l in v["lookups"] if l["kind"] == "spf"]
        self.assertEqual(len(rows), 1, "one SPF evaluation expected: %r" % v["lookups"])
        self.assertEqual(rows[0]["zone"], "spf")
        return rows[0]

    def assertSpfHeaders(self, res, result, prop, value, client_ip, identity,
                         envelope_from=None, helo="client.example", authserv="mx.local.test"):
        """Authentication-Results and Received-SPF inserted at index 0 and
        saying RESULT for the identity."""
        ins = [r for r in res.mods if r.cmd == "i"]
        names = sorted(r.name for r in ins)
        self.assertEqual(names, ["Authentication-Results", "Received-SPF"], res.mods)
        for r in ins:
            self.assertEqual(r.index, 0, "%s not inserted at the top: %r" % (r.name, r))
        ar = [r.value for r in ins if r.name == "Authentication-Results"][0]
        self.assertEqual(parse_auth_results(ar), (authserv, result, prop, value), ar)
        rs = [r.value for r in ins if r.name == "Received-SPF"][0]
        res_word, comment, kv = parse_received_spf(rs)
        self.assertEqual(res_word, result, rs)
        self.assertTrue(comment.startswith(socket.gethostname() + ": "), rs)
        want = {"client-ip": client_ip, "helo": helo, "receiver": socket.gethostname(),
                "identity": identity}
        if envelope_from is not None:
            want["envelope-from"] = envelope_from
        self.assertEqual(kv, want, rs)
        return ar, rs, comment

    def deliver(self, client_ip, sender, helo="client.example", mail_macros=None,
                family=None):
        """One message to u@local.test; the RCPT must be accepted.
        Returns (EomResult, seconds the end of message took)."""
        with self.m.session(client_ip, helo=helo, family=family) as c:
            self.assertContinue(c.mail("<%s>" % sender if isinstance(sender, str)
                                       else b"<" + sender + b">", macros=mail_macros))
            self.assertContinue(c.rcpt("<u@local.test>"))
            t0 = time.monotonic()
            res = c.eom()
            took = time.monotonic() - t0
            c.quit()
        return res, took


# ---------------------------------------------------------------- at EOM

class SpfAtEndOfMessage(SpfCase):

    NAME = "spf-eom"
    RULES = EOM_RULES

    def test_pass_inserts_authentication_results_and_received_spf_at_the_top(self):
        s = self.addr("spf-pass.test")
        res, _ = self.deliver("192.0.2.5", s)
        self.assertContinue(res.final)
        _, _, comment = self.assertSpfHeaders(
            res, "pass", "smtp.mailfrom", "spf-pass.test", "192.0.2.5", "mailfrom",
            envelope_from=s)
        self.assertIn("domain of spf-pass.test designates 192.0.2.5 as permitted sender",
                      comment)
        self.assertEqual(res.headers("X-Kanjiki-Score"), [("X-Kanjiki-Score", "-1.0")])
        self.assertEqual(res.headers("X-Kanjiki-Spam"), [])
        v = self.m.wait_verdicts(by_sender(s))[0]
        self.assertEqual(v["action"], "accept")
        self.assertEqual(v["score"], -1)
        self.assertIs(v["degraded"], False)
        self.assertIn("spf_pass", codes(v))
        l = self.spf_lookup(v)
        self.assertEqual((l["subject"], l["query"], l["outcome"], l["weight"]),
                         ("mailfrom", "spf-pass.test", "pass", -1.0))

    def test_fail_is_rejected_at_end_of_message_with_the_score_reply(self):
        s = self.addr("spf-fail.test")
        res, _ = self.deliver("192.0.2.5", s)
        self.assertReply(res.final, SCORE_REPLY_10)
        v = self.m.wait_verdicts(by_sender(s))[0]
        self.assertEqual((v["kind"], v["stage"], v["action"]), ("message", "eom", "reject"))
        self.assertEqual(v["reply"], SCORE_REPLY_10)
        self.assertEqual(v["score"], 10)
        self.assertIn("spf_fail", codes(v))
        self.assertIn("score_reject", codes(v))
        l = self.spf_lookup(v)
        self.assertEqual((l["outcome"], l["weight"], l["query"]), ("fail", 10.0, "spf-fail.test"))

    def test_each_result_maps_to_its_weight_and_action(self):
        # domain, client, result, X-Kanjiki-Score, action
        cases = [
            ("spf-soft.test", "192.0.2.5", "softfail", "3.5", "tag"),
            ("spf-neutral.test", "192.0.2.5", "neutral", "1.5", "accept"),
            ("spf-none.test", "192.0.2.5", "none", "0.5", "accept"),      # TXT, not SPF
            ("nothing.test", "192.0.2.5", "none", "0.5", "accept"),       # NXDOMAIN
            ("spf-perm.test", "192.0.2.5", "permerror", "4.0", "tag"),    # syntax error
            ("spf-multi.test", "192.0.2.5", "permerror", "4.0", "tag"),   # two records
            ("spf-split.test", "192.0.2.5", "pass", "-1.0", "accept"),    # two strings
            ("spf-redirect.test", "192.0.2.5", "fail", "10.0", "reject"),
            ("spf-mx.test", "192.0.2.5", "fail", "10.0", "reject"),
            ("spf-a.test", "192.0.2.5", "fail", "10.0", "reject"),
        ]
        for domain, ip, result, score, action in cases:
            with self.subTest(domain=domain):
                s = self.addr(domain)
                res, _ = self.deliver(ip, s)
                ar = res.headers("Authentication-Results")
                self.assertEqual(ar, [("Authentication-Results",
                                       "mx.local.test; spf=%s smtp.mailfrom=%s"
                                       % (result, domain))])
                self.assertEqual(res.headers("X-Kanjiki-Score"), [("X-Kanjiki-Score", score)])
                if action == "tag":
                    self.assertEqual(res.headers("X-Kanjiki-Spam"),
                                     [("X-Kanjiki-Spam", "yes, score=%s" % score)])
                else:
                    self.assertEqual(res.headers("X-Kanjiki-Spam"), [])
                if action == "reject":
                    self.assertReply(res.final, SCORE_REPLY_10)
                else:
                    self.assertContinue(res.final)
                v = self.m.wait_verdicts(by_sender(s))[0]
                self.assertEqual(v["action"], action)
                self.assertEqual(v["score"], float(score))
                self.assertIn("spf_" + result, codes(v))
                l = self.spf_lookup(v)
                self.assertEqual((l["outcome"], l["query"]), (result, domain))
                self.assertEqual(l["weight"], {"pass": -1, "fail": 10, "softfail": 3.5,
                                               "neutral": 1.5, "none": 0.5,
                                               "permerror": 4}[result])

    def test_include_chain_passes_inside_the_included_network_and_fails_outside(self):
        s = self.addr("spf-include.test", "in")
        res, _ = self.deliver("192.0.2.5", s)
        self.assertContinue(res.final)
        self.assertSpfHeaders(res, "pass", "smtp.mailfrom", "spf-include.test", "192.0.2.5",
                              "mailfrom", envelope_from=s)
        s2 = self.addr("spf-include.test", "out")
        res, _ = self.deliver("198.51.100.20", s2)
        self.assertReply(res.final, SCORE_REPLY_10)
        self.assertSpfHeaders(res, "fail", "smtp.mailfrom", "spf-include.test",
                              "198.51.100.20", "mailfrom", envelope_from=s2)
        self.assertEqual(self.spf_lookup(self.m.wait_verdicts(by_sender(s))[0])["outcome"],
                         "pass")
        self.assertEqual(self.spf_lookup(self.m.wait_verdicts(by_sender(s2))[0])["outcome"],
                         "fail")

    def test_null_sender_is_checked_against_the_helo_name(self):
        helo = "spf-pass.test"
        with self.m.session("192.0.2.5", helo=helo) as c:
            qid = "QNULL" + self.tok
            self.assertContinue(c.mail("<>", macros={"i": qid}))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.eom()
            c.quit()
        self.assertContinue(res.final)
        _, rs, _ = self.assertSpfHeaders(res, "pass", "smtp.helo", "spf-pass.test",
                                         "192.0.2.5", "helo", helo=helo)
        self.assertNotIn("envelope-from", rs)
        v = self.m.wait_verdicts(lambda v: v["queue_id"] == qid)[0]
        l = self.spf_lookup(v)
        self.assertEqual((l["subject"], l["query"], l["outcome"]), ("helo", helo, "pass"))
        # and a HELO the record does not cover fails the same way a sender would
        with self.m.session("198.51.100.20", helo=helo) as c:
            self.assertContinue(c.mail("<>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.eom()
            c.quit()
        self.assertReply(res.final, SCORE_REPLY_10)
        self.assertEqual(res.headers("Authentication-Results"),
                         [("Authentication-Results",
                           "mx.local.test; spf=fail smtp.helo=spf-pass.test")])

    def test_ipv6_client_fails_a_record_without_ip6_mechanisms(self):
        s = self.addr("spf-pass.test")
        res, _ = self.deliver("2001:db8::5", s)
        self.assertReply(res.final, SCORE_REPLY_10)
        self.assertSpfHeaders(res, "fail", "smtp.mailfrom", "spf-pass.test", "2001:db8::5",
                              "mailfrom", envelope_from=s)
        v = self.m.wait_verdicts(by_sender(s))[0]
        self.assertEqual(v["client_ip"], "2001:db8::5")
        self.assertEqual(self.spf_lookup(v)["outcome"], "fail")

    def test_ipv4_mapped_client_is_checked_as_ipv4(self):
        s = self.addr("spf-pass.test")
        res, _ = self.deliver("::ffff:192.0.2.5", s, family="6")
        self.assertContinue(res.final)
        self.assertSpfHeaders(res, "pass", "smtp.mailfrom", "spf-pass.test", "192.0.2.5",
                              "mailfrom", envelope_from=s)
        v = self.m.wait_verdicts(by_sender(s))[0]
        self.assertEqual(self.spf_lookup(v)["outcome"], "pass")
        self.assertEqual(v["score"], -1)

    def test_unanswered_spf_query_gives_temperror_within_dns_timeout(self):
        s = self.addr("spf-temp.test")
        res, took = self.deliver("192.0.2.5", s)
        self.assertLess(took, DNS_TIMEOUT + 1.5,
                        "end of message took %.2fs with dns_timeout %gs" % (took, DNS_TIMEOUT))
        self.assertContinue(res.final)
        _, _, comment = self.assertSpfHeaders(res, "temperror", "smtp.mailfrom",
                                              "spf-temp.test", "192.0.2.5", "mailfrom",
                                              envelope_from=s)
        self.assertEqual(res.headers("X-Kanjiki-Score"),
                         [("X-Kanjiki-Score", "2.0 (degraded)")])
        v = self.m.wait_verdicts(by_sender(s))[0]
        self.assertIs(v["degraded"], True)
        self.assertEqual(v["action"], "accept")
        self.assertIn("spf_temperror", codes(v))
        l = self.spf_lookup(v)
        self.assertEqual((l["outcome"], l["weight"]), ("temperror", 2.0))

    def test_hostile_helo_and_sender_stay_inside_well_formed_headers(self):
        cases = [
            # (name, client, HELO, MAIL FROM bytes, result, A-R property value)
            ("quotes-crlf-8bit", "192.0.2.5",
             b'evil";\r\n X-Injected: yes\xff(\\', b'"we;ird\\"q(uo)te"@spf-pass.test',
             "pass", "spf-pass.test"),
            ("key-injection", "192.0.2.5",
             b"a; identity=helo; receiver=evil.test; client-ip=192.0.2.5",
             b'x@spf-pass.test";\r\nX-Evil: y', "none", None),
            ("8bit-and-long", "192.0.2.5", b"\xc3\xa9" * 127,
             b"j\xf6rg@spf-pass.test", "pass", "spf-pass.test"),
            ("null-sender-crlf-helo", "192.0.2.5", b"spf-pass.test\r\nX: y", b"",
             "none", None),
            ("idn-sender-domain", "192.0.2.5", b"(comment)",
             "x@b\u00fccher.test".encode("utf-8"), "none", "xn--bcher-kva.test"),
        ]
        for name, ip, helo, sender, result, value in cases:
            with self.subTest(case=name):
                with self.m.session(ip, helo=helo) as c:
                    self.assertContinue(c.mail(b"<" + sender + b">"))
                    self.assertContinue(c.rcpt("<u@local.test>"))
                    res = c.eom()
                    c.quit()
                self.assertContinue(res.final)
                for r in res.mods:
                    if r.cmd in ("h", "i"):
                        self.assertRegex(r.name, r"^[\x21-\x39\x3b-\x7e]+$")
                        self.assertTrue(re.fullmatch(r"[\x20-\x7e]*", r.value),
                                        "%s: %r" % (r.name, r.value))
                        self.assertLessEqual(len(r.name) + 2 + len(r.value), 998, r)
                ar = res.headers("Authentication-Results")
                rs = res.headers("Received-SPF")
                self.assertEqual(len(ar), 1, res.mods)
                self.assertEqual(len(rs), 1, res.mods)
                authserv, res_word, prop, pval = parse_auth_results(ar[0][1])
                self.assertEqual((authserv, res_word), ("mx.local.test", result))
                identity = "helo" if sender == b"" else "mailfrom"
                self.assertEqual(prop, "smtp." + identity)
                if value is not None:
                    self.assertEqual(pval, value)
                else:
                    # not evaluated: the raw identity, escaped and quoted
                    self.assertEqual(pval, esc_header(helo if sender == b"" else sender))
                word, _, kv = parse_received_spf(rs[0][1])
                self.assertEqual(word, result)
                want_keys = {"client-ip", "helo", "receiver", "identity"}
                if sender != b"":
                    want_keys.add("envelope-from")
                    self.assertEqual(kv["envelope-from"], esc_header(sender))
                self.assertEqual(set(kv), want_keys, rs)
                self.assertEqual(kv["identity"], identity)
                self.assertEqual(kv["client-ip"], ip)
                self.assertEqual(kv["receiver"], socket.gethostname())
                want_helo = esc_header(helo)
                if len(want_helo) > 140:
                    # cut, never inside a quoted pair, and marked
                    self.assertTrue(kv["helo"].endswith("..."), kv["helo"])
                    self.assertTrue(want_helo.startswith(kv["helo"][:-3].rstrip("\\")),
                                    kv["helo"])
                else:
                    self.assertEqual(kv["helo"], want_helo)

    def test_without_the_j_macro_the_hostname_is_the_authserv_id(self):
        s = self.addr("spf-pass.test")
        c = self.m.client()
        with c:
            self.assertContinue(c.connect("client.example", "4", "192.0.2.5"))
            self.assertContinue(c.helo("client.example"))
            self.assertContinue(c.mail("<%s>" % s))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.eom()
            c.quit()
        self.assertContinue(res.final)
        self.assertSpfHeaders(res, "pass", "smtp.mailfrom", "spf-pass.test", "192.0.2.5",
                              "mailfrom", envelope_from=s, authserv=socket.gethostname())

    def test_trusted_client_gets_no_spf_check_and_no_headers(self):
        for ip in ("192.0.2.10", "2001:db8:1::25"):
            with self.subTest(client=ip):
                s = self.addr("spf-fail.test", "t%d" % len(ip))
                res, _ = self.deliver(ip, s)
                self.assertContinue(res.final)
                self.assertEqual(res.mods, [])
                v = self.m.wait_verdicts(by_sender(s))[0]
                self.assertEqual(v["action"], "accept")
                self.assertIsNone(v["score"])
                self.assertEqual([l for l in v["lookups"] if l["kind"] == "spf"], [])
                self.assertEqual(v["client_ip"], ip)

    def test_authenticated_client_gets_no_spf_check_and_no_headers(self):
        s = self.addr("spf-fail.test")
        res, _ = self.deliver("192.0.2.5", s, mail_macros={"{auth_authen}": "alice",
                                                            "{auth_type}": "PLAIN"})
        self.assertContinue(res.final)
        self.assertEqual(res.mods, [])
        v = self.m.wait_verdicts(by_sender(s))[0]
        self.assertEqual(v["auth_user"], "alice")
        self.assertEqual(v["action"], "accept")
        self.assertIsNone(v["score"])
        self.assertEqual([l for l in v["lookups"] if l["kind"] == "spf"], [])

    def test_each_transaction_of_a_connection_gets_its_own_result(self):
        fail = self.addr("spf-fail.test", "a")
        ok = self.addr("spf-pass.test", "b")
        with self.m.session("192.0.2.5") as c:
            self.assertContinue(c.mail("<%s>" % fail))
            self.assertContinue(c.rcpt("<u@local.test>"))
            r1 = c.eom()
            self.assertContinue(c.mail("<%s>" % ok))
            self.assertContinue(c.rcpt("<u@local.test>"))
            r2 = c.eom()
            c.quit()
        self.assertReply(r1.final, SCORE_REPLY_10)
        self.assertContinue(r2.final)
        self.assertSpfHeaders(r2, "pass", "smtp.mailfrom", "spf-pass.test", "192.0.2.5",
                              "mailfrom", envelope_from=ok)
        self.assertEqual(self.m.wait_verdicts(by_sender(ok))[0]["score"], -1)


    def test_concurrent_evaluations_each_get_their_own_result(self):
        # (domain, client, result): 20 sessions at once, results interleaved
        kinds = [("spf-pass.test", "192.0.2.%d", "pass"),
                 ("spf-pass.test", "198.51.100.%d", "fail"),
                 ("spf-soft.test", "203.0.113.%d", "softfail"),
                 ("spf-include.test", "192.0.2.%d", "pass"),
                 ("spf-neutral.test", "2001:db8::%d", "neutral")]
        jobs = []
        for i in range(20):
            domain, pattern, result = kinds[i % len(kinds)]
            jobs.append((domain, pattern % (100 + i), result,
                         "c%d-%s@%s" % (i, self.tok, domain)))
        errors = []
        barrier = threading.Barrier(len(jobs))

        def one(domain, ip, result, sender):
            try:
                with self.m.session(ip) as c:
                    barrier.wait(10)
                    assert c.mail("<%s>" % sender).cmd == "c"
                    assert c.rcpt("<u@local.test>").cmd == "c"
                    res = c.eom()
                    c.quit()
                ar = res.headers("Authentication-Results")
                assert ar == [("Authentication-Results", "mx.local.test; spf=%s "
                               "smtp.mailfrom=%s" % (result, domain))], (ip, res)
                word, _, kv = parse_received_spf(res.headers("Received-SPF")[0][1])
                assert (word, kv["client-ip"], kv["envelope-from"]) == (result, ip, sender), \
                    (ip, res)
            except Exception as e:     # reported below
                errors.append("%s from %s: %r" % (sender, ip, e))

        threads = [threading.Thread(target=one, args=j) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        for domain, ip, result, sender in jobs:
            v = self.m.wait_verdicts(by_sender(sender))[0]
            self.assertEqual(v["client_ip"], ip)
            self.assertEqual(self.spf_lookup(v)["outcome"], result, sender)


# ---------------------------------------------------------------- at RCPT

class SpfAtFirstRecipient(SpfCase):

    NAME = "spf-early"
    RULES = EARLY_RULES

    def test_fail_with_early_reject_threshold_refuses_at_rcpt(self):
        s = self.addr("spf-fail.test")
        with self.m.session("192.0.2.5") as c:
            self.assertContinue(c.mail("<%s>" % s))
            self.assertReply(c.rcpt("<u@local.test>"), SCORE_REPLY_10)
            # the next recipient of the same transaction: the same answer
            self.assertReply(c.rcpt("<v@local.test>"), SCORE_REPLY_10)
            c.abort()
            c.quit()
        rows = self.m.wait_verdicts(lambda v: v["sender"] == s and v["kind"] == "rcpt", count=2)
        for v, rcpt in zip(rows, ("u@local.test", "v@local.test")):
            self.assertEqual((v["stage"], v["action"], v["rcpt"]), ("rcpt", "reject", rcpt))
            self.assertEqual(v["reply"], SCORE_REPLY_10)
            self.assertEqual(codes(v), ["spf_fail", "score_reject"])
            l = self.spf_lookup(v)
            self.assertEqual((l["outcome"], l["weight"], l["query"]),
                             ("fail", 10.0, "spf-fail.test"))

    def test_pass_is_accepted_at_rcpt_and_reported_at_end_of_message(self):
        s = self.addr("spf-pass.test")
        res, _ = self.deliver("192.0.2.5", s)
        self.assertContinue(res.final)
        self.assertSpfHeaders(res, "pass", "smtp.mailfrom", "spf-pass.test", "192.0.2.5",
                              "mailfrom", envelope_from=s)
        self.assertEqual(res.headers("X-Kanjiki-Score"), [("X-Kanjiki-Score", "0.0")])
        v = self.m.wait_verdicts(by_sender(s))[0]
        self.assertEqual(self.spf_lookup(v)["outcome"], "pass")

    def test_null_sender_with_failing_helo_is_refused_at_rcpt(self):
        with self.m.session("192.0.2.5", helo="spf-fail.test") as c:
            qid = "QNF" + self.tok
            self.assertContinue(c.mail("<>", macros={"i": qid}))
            self.assertReply(c.rcpt("<u@local.test>", macros={"i": qid}), SCORE_REPLY_10)
            c.abort()
            c.quit()
        v = self.m.wait_verdicts(lambda v: v["queue_id"] == qid)[0]
        l = self.spf_lookup(v)
        self.assertEqual((l["subject"], l["query"], l["outcome"]),
                         ("helo", "spf-fail.test", "fail"))

    def test_refused_transaction_does_not_decide_the_next_one(self):
        fail = self.addr("spf-fail.test", "a")
        ok = self.addr("spf-pass.test", "b")
        with self.m.session("192.0.2.5") as c:
            self.assertContinue(c.mail("<%s>" % fail))
            self.assertReply(c.rcpt("<u@local.test>"), SCORE_REPLY_10)
            c.abort()
            self.assertContinue(c.mail("<%s>" % ok))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.eom()
            c.quit()
        self.assertContinue(res.final)
        self.assertSpfHeaders(res, "pass", "smtp.mailfrom", "spf-pass.test", "192.0.2.5",
                              "mailfrom", envelope_from=ok)


# ---------------------------------------------------------------- with a list

class SpfAndBlocklistTogether(SpfCase):
    """The SPF weight adds to the blocklist weights: neither alone reaches
    the threshold, both together do."""

    NAME = "spf-dnsbl"
    RULES = """\
zone bl.kanjiki.test ip weight 3
spf softfail 3
threshold 5 reject
"""

    def test_spf_weight_and_listing_add_up(self):
        cases = [("203.0.113.4", "spf-soft.test", "6.0",
                  "550 5.7.1 Service unavailable; client [203.0.113.4] blocked using "
                  "bl.kanjiki.test"),
                 ("203.0.113.4", "spf-pass.test", "3.0", None),
                 ("192.0.2.5", "spf-soft.test", "3.0", None)]
        for ip, domain, score, reply in cases:
            with self.subTest(client=ip, domain=domain):
                s = self.addr(domain, "x%s" % ip.replace(".", ""))
                res, _ = self.deliver(ip, s)
                self.assertEqual(res.headers("X-Kanjiki-Score"), [("X-Kanjiki-Score", score)])
                if reply:
                    self.assertReply(res.final, reply)
                else:
                    self.assertContinue(res.final)
                v = self.m.wait_verdicts(by_sender(s))[0]
                self.assertEqual(v["score"], float(score))
                self.assertEqual(v["action"], "reject" if reply else "accept")
