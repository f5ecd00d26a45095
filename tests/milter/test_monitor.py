"""Monitor mode (a daemon of its own with mode = monitor): every decision is
made and recorded as what would have happened, nothing is refused, and the
message gets an X-Kanjiki-Monitor header saying what would have been done."""

import re

from kjtest import KjTestCase, Milter, BAD_SYNTAX, codes

RULES = {"10-test.rules": 'deny sender spammer@example.com reply "550 5.7.1 go away"\n'}


class MonitorMode(KjTestCase):

    @classmethod
    def setUpClass(cls):
        cls.mon = Milter("monitor", mode="monitor", rules=RULES).start()

    @classmethod
    def tearDownClass(cls):
        cls.mon.stop()

    def setUp(self):
        super().setUp()
        self.m = self.mon

    def tearDown(self):
        self.assertTrue(self.m.alive(), "monitor daemon died:\n" + self.m.log_tail())

    def mine(self):
        return lambda v: v["sender"] == self.sender

    def test_refused_recipient_continues_and_eom_adds_monitor_header(self):
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender, macros={"i": "QMON1"}))
            self.assertContinue(c.rcpt("<victim@example.net>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.eom(macros={"i": "QMON1"})
            c.quit()
        self.assertContinue(res.final)
        self.assertEqual(len(res.mods), 1, res)
        self.assertEqual(res.mods[0].cmd, "h")
        self.assertEqual(res.headers("X-Kanjiki-Monitor"),
                         [("X-Kanjiki-Monitor", "would reject <victim@example.net> (relay_denied)")])

        rows = self.m.wait_verdicts(self.mine(), count=2)
        rej = [v for v in rows if v["kind"] == "rcpt"]
        msg = [v for v in rows if v["kind"] == "message"]
        self.assertEqual(len(rej), 1)
        self.assertEqual(len(msg), 1)
        self.assertIs(rej[0]["monitor"], True)
        self.assertEqual(rej[0]["action"], "reject")
        self.assertEqual(rej[0]["rcpt"], "victim@example.net")
        self.assertTrue(rej[0]["reply"].startswith("554 5.7.1 Relaying denied (kanjiki)"))
        self.assertIs(msg[0]["monitor"], True)
        self.assertEqual(msg[0]["action"], "accept")
        self.assertEqual(msg[0]["recipients"], ["victim@example.net", "u@local.test"])
        self.assertEqual(codes(msg[0]), ["relay_denied", "local_domain"])
        would = [r for r in msg[0]["reasons"] if r["code"] == "relay_denied"][0]
        self.assertEqual(would.get("would"), "reject")
        self.assertEqual(would["rcpt"], "victim@example.net")
        self.assertRegex(self.m.log_text(),
                         r"rcpt=<victim@example.net> action=reject\(monitor\) stage=rcpt")

    def test_message_whose_every_recipient_would_be_refused_is_recorded_as_reject(self):
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertContinue(c.rcpt("<a@example.net>"))
            self.assertContinue(c.rcpt("<b%example.org@local.test>"))
            self.assertContinue(c.rcpt(b"<\xff@local.test>"))
            res = c.eom()
            c.quit()
        self.assertContinue(res.final)
        (hdr,) = res.headers("X-Kanjiki-Monitor")
        self.assertEqual(hdr[1], "would reject <a@example.net> (relay_denied); "
                                 "would reject <b%example.org@local.test> (percent_hack); "
                                 "would reject <\\xff@local.test> (bad_syntax)")
        rows = self.m.wait_verdicts(self.mine(), count=4)
        msg = [v for v in rows if v["kind"] == "message"][0]
        self.assertEqual(msg["action"], "reject")
        self.assertIs(msg["monitor"], True)
        bad = [v for v in rows if v["kind"] == "rcpt" and codes(v) == ["bad_syntax"]][0]
        self.assertEqual(bad["reply"], BAD_SYNTAX)

    def test_deny_rule_in_monitor_mode_continues_and_is_named(self):
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<spammer@example.com>", macros={"i": "QMON" + self.tok}))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.eom(macros={"i": "QMON" + self.tok})
            c.quit()
        self.assertEqual(res.headers("X-Kanjiki-Monitor"),
                         [("X-Kanjiki-Monitor", "would reject <u@local.test> (deny_rule)")])
        rows = self.m.wait_verdicts(lambda v: v["queue_id"] == "QMON" + self.tok, count=2)
        self.assertTrue(all(v["monitor"] is True for v in rows), rows)

    def test_clean_message_gets_no_monitor_header(self):
        with self.m.session("192.0.2.10") as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.rcpt("<v@example.net>"))
            res = c.eom()
            c.quit()
        self.assertContinue(res.final)
        self.assertEqual(res.mods, [])
        v = self.m.wait_verdicts(self.mine())[0]
        self.assertEqual(v["action"], "accept")
        self.assertEqual(codes(v), ["local_domain", "trusted_network"])

    def test_monitor_header_is_printable_ascii_and_bounded(self):
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertContinue(c.rcpt("<jörg\x1b[1m@example.net>".encode("utf-8")))
            for i in range(11):
                self.assertContinue(c.rcpt("<r%d@example.net>" % i))
            res = c.eom()
            c.quit()
        (hdr,) = res.headers("X-Kanjiki-Monitor")
        value = hdr[1]
        self.assertTrue(re.fullmatch(r"[\x20-\x7e]+", value), repr(value))
        self.assertTrue(value.startswith(
            "would reject <j\\xc3\\xb6rg\\x1b[1m@example.net> (bad_syntax); "), value)
        # 8 recipients listed, then the count of the rest
        self.assertEqual(value.count("would reject"), 8, value)
        self.assertTrue(value.endswith("; and 4 more"), value)
        rows = self.m.wait_verdicts(self.mine(), count=13)
        msg = [v for v in rows if v["kind"] == "message"][0]
        self.assertEqual(len(msg["recipients"]), 12)
