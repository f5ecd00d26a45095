"""Recipients and envelope data no well-behaved client sends: 8-bit bytes,
invalid UTF-8, over-long addresses, NUL bytes, control characters.  Each
gets a clear verdict; nothing raw reaches the log; the JSON stays valid."""

import json

from kjtest import KjTestCase, BAD_SYNTAX, by_sender, codes


class EightBitRecipients(KjTestCase):

    def rcpt(self, arg, client_ip="198.51.100.7"):
        with self.m.session(client_ip) as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            r = c.rcpt(arg)
            self.assertContinue(c.eom().final)
            c.quit()
        return r

    def assertBadSyntax(self, r):
        self.assertReply(r, BAD_SYNTAX)
        self.assertEqual(r.code, 501)
        self.assertEqual(r.xcode, "5.1.3")

    def rcpt_verdict(self):
        rows = self.m.wait_verdicts(lambda v: v["sender"] == self.sender and v["kind"] == "rcpt")
        self.assertEqual(len(rows), 1, rows)
        v = rows[0]
        self.assertEqual(v["action"], "reject")
        self.assertEqual(v["reply"], BAD_SYNTAX)
        self.assertEqual(codes(v), ["bad_syntax"])
        return v

    def test_valid_utf8_recipient_in_local_domain_is_accepted(self):
        self.assertContinue(self.rcpt("<jörg@local.test>".encode("utf-8")))
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(v["recipients"], ["jörg@local.test"])
        self.assertEqual(codes(v), ["local_domain"])

    def test_valid_utf8_recipient_elsewhere_is_still_a_relay(self):
        self.assertRelayDenied(self.rcpt("<jörg@exämple.net>".encode("utf-8")))

    def test_invalid_utf8_recipient_is_bad_syntax_501(self):
        self.assertBadSyntax(self.rcpt(b"<\xff\xfe@local.test>"))
        v = self.rcpt_verdict()
        self.assertIn("UTF-8", v["reasons"][0]["text"])

    def test_truncated_utf8_sequence_is_bad_syntax(self):
        self.assertBadSyntax(self.rcpt(b"<j\xc3@local.test>"))

    def test_overlong_utf8_encoding_of_at_sign_is_bad_syntax(self):
        # 0xC0 0x80 is an overlong NUL, 0xC1 0x80 an overlong '@'
        self.assertBadSyntax(self.rcpt(b"<u\xc1\x80example.net@local.test>"))

    def test_local_part_of_64_octets_is_accepted(self):
        self.assertContinue(self.rcpt("<%s@local.test>" % ("a" * 64)))

    def test_local_part_of_65_octets_is_bad_syntax(self):
        self.assertBadSyntax(self.rcpt("<%s@local.test>" % ("a" * 65)))

    def test_local_part_of_300_octets_is_bad_syntax(self):
        self.assertBadSyntax(self.rcpt("<%s@local.test>" % ("a" * 300)))
        self.rcpt_verdict()

    def test_path_of_2000_octets_is_bad_syntax(self):
        domain = ("b" * 60 + ".") * 33 + "local.test"
        arg = "<%s@%s>" % ("a" * 10, domain)
        self.assertGreater(len(arg), 2000)
        self.assertBadSyntax(self.rcpt(arg))
        v = self.rcpt_verdict()
        # what is recorded is bounded
        self.assertLessEqual(len(v["rcpt"]), 1100)

    def test_path_over_256_octets_in_local_domain_is_bad_syntax(self):
        arg = "<%s@%s>" % ("a" * 60, ("c" * 60 + ".") * 4 + "local.test")
        self.assertGreater(len(arg) - 2, 256)
        self.assertBadSyntax(self.rcpt(arg))

    def test_nul_inside_recipient_cannot_hide_a_foreign_domain(self):
        # libmilter splits arguments at NUL: the milter sees "<u" and
        # "x@example.net>" as two arguments.  Neither reading may be
        # accepted as local.
        for raw in (b"<u\x00x@example.net>", b"<u@local.test\x00@example.net>",
                    b"<u@example.net\x00@local.test>", b"\x00<u@local.test>"):
            with self.subTest(raw=raw):
                r = self.rcpt(raw)
                self.assertTrue(r.is_refusal, "%r was answered %r" % (raw, r))
                self.assertBadSyntax(r)

    def test_empty_and_null_recipients_are_bad_syntax(self):
        for raw in (b"", b"<>", b"<  >"):
            with self.subTest(raw=raw):
                self.assertBadSyntax(self.rcpt(raw))

    def test_control_characters_in_recipient_are_bad_syntax(self):
        self.assertBadSyntax(self.rcpt(b"<u\x1b[0m@local.test>"))
        self.assertBadSyntax(self.rcpt(b"<u\r\n@local.test>"))


class ControlCharactersInEnvelope(KjTestCase):

    HELO = "evil\x1b[31m.helo\x07\r\nX-Injected: yes"

    def test_control_characters_are_escaped_in_log_and_intact_in_json(self):
        sender = "ctl\x1b]0;pwned\x07%s" % self.sender
        with self.m.session("198.51.100.7", helo=self.HELO) as c:
            self.assertContinue(c.mail("<%s>" % sender, macros={"i": "QCTL\x1b1"}))
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.eom(macros={"i": "QCTL\x1b1"}).final)
            c.quit()
        rows = self.m.wait_verdicts(by_sender(sender), count=2)
        for v in rows:
            self.assertEqual(v["helo"], self.HELO)
            self.assertEqual(v["sender"], sender)
            self.assertEqual(v["queue_id"], "QCTL\x1b1")

        # the raw JSON output holds no control byte and parses line by line
        raw = self.m.query_raw()
        for b in range(0x20):
            if b != 0x0a:
                self.assertNotIn(bytes([b]), raw, "raw control byte %#x in query output" % b)
        for line in raw.splitlines():
            json.loads(line)

        # the log: no raw ESC, BEL or CR anywhere, no injected line, and
        # this transaction's lines carry the escaped forms
        log = self.m.log_bytes()
        for b in (b"\x1b", b"\x07", b"\r"):
            self.assertNotIn(b, log)
        self.assertNotIn(b"\nX-Injected", log)
        text = log.decode("utf-8", "replace")
        mine = [ln for ln in text.splitlines() if self.sender in ln]
        self.assertEqual(len(mine), 2, mine)
        for ln in mine:
            self.assertIn("helo=evil\\x1b[31m.helo\\x07\\r\\nX-Injected: yes", ln)
            self.assertIn("from=<ctl\\x1b]0;pwned\\x07", ln)
            self.assertIn("queue=QCTL\\x1b1", ln)

    def test_invalid_utf8_and_bidi_controls_in_sender_are_escaped_in_log(self):
        raw_sender = ("bidi\u202egnp.exe").encode("utf-8") + b"\xff" + self.sender.encode()
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail(b"<" + raw_sender + b">"))
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            c.quit()
        rows = self.m.wait_verdicts(lambda v: self.sender in (v["sender"] or ""))
        self.assertEqual(len(rows), 1)
        log = self.m.log_bytes()
        self.assertNotIn("\u202e".encode("utf-8"), log)
        self.assertNotIn(b"\xff", log)
        mine = [ln for ln in log.decode("utf-8", "replace").splitlines() if self.sender in ln]
        self.assertEqual(len(mine), 1, mine)
        self.assertIn("from=<bidi\\xe2\\x80\\xaegnp.exe\\xff", mine[0])
        raw = self.m.query_raw()
        self.assertNotIn("\u202e".encode("utf-8"), raw)
        self.assertNotIn(b"\xff", raw)
