"""log_format = json: every log line of the daemon (diagnostics and one per
verdict) is one JSON object; verdict lines carry the verdict's fields as
`kanjiki query --format json` names them; mail data with control
characters, quotes and non-ASCII bytes stays valid JSON."""

import json
import time

from kjtest import OwnMilterCase, RELAY_DENIED


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate members: %r" % keys
    return dict(pairs)


def json_lines(m):
    lines = [l for l in m.log_text().splitlines() if l.strip()]
    # every line must parse, and name each member once
    return [json.loads(l, object_pairs_hook=no_duplicates) for l in lines]


class JsonLog(OwnMilterCase):

    NAME = "jsonlog"

    @classmethod
    def extra_conf(cls):
        return "log_format = json\n"

    def wait_event(self, pred, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            got = [o for o in json_lines(self.m) if o.get("event") == "verdict" and pred(o)]
            if got:
                return got
            time.sleep(0.1)
        self.fail("no verdict line matching; log:\n" + self.m.log_tail())

    def test_every_line_is_json_with_the_common_members(self):
        objs = json_lines(self.m)
        self.assertTrue(objs)
        for o in objs:
            for k in ("time", "level", "program", "pid"):
                self.assertIn(k, o)
            self.assertRegex(o["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertEqual(o["program"], "kanjiki-milter")
        self.assertTrue(any("started on" in o.get("message", "") for o in objs), objs)

    def test_a_refusal_and_a_message_each_log_one_verdict_object(self):
        helo = 'we"ird\x01\x7f\xe2\x82\xac.example'
        with self.m.session("198.51.100.44", helo=helo) as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            r = c.rcpt("<victim-%s@example.net>" % self.tok)
            self.assertEqual(r.cmd, "y")
            self.assertTrue(r.text.startswith(RELAY_DENIED), r.text)
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.eom().final)
            c.quit()
        refused = self.wait_event(lambda o: o.get("rcpt") == "victim-%s@example.net" % self.tok)
        self.assertEqual(len(refused), 1)
        o = refused[0]
        self.assertEqual((o["kind"], o["action"], o["stage"]), ("rcpt", "reject", "rcpt"))
        self.assertEqual(o["client_ip"], "198.51.100.44")
        self.assertEqual(o["sender"], self.sender)
        self.assertTrue(o["reply"].startswith("554 5.7.1"), o)
        self.assertEqual([r["code"] for r in o["reasons"]], ["relay_denied"])
        # the HELO with a quote, control characters and UTF-8 survives intact
        self.assertEqual(o["helo"].encode("utf-8", "surrogateescape"),
                         helo.encode("utf-8"), o["helo"])
        msg = self.wait_event(lambda o: o.get("kind") == "message" and
                              o.get("sender") == self.sender)
        self.assertEqual(msg[0]["recipients"], ["u@local.test"])
        self.assertEqual(msg[0]["action"], "accept")
        self.assertIn("lookups_count", msg[0])   # the lookups themselves stay in the store

    def test_a_message_to_many_recipients_stays_one_short_line(self):
        with self.m.session("198.51.100.45") as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            for i in range(300):
                self.assertContinue(c.rcpt("<user%03d-%s@local.test>" % (i, self.tok)))
            self.assertContinue(c.eom().final)
            c.quit()
        o = self.wait_event(lambda o: o.get("kind") == "message" and
                            o.get("sender") == self.sender)[0]
        self.assertEqual(len(o["recipients"]), 20)
        self.assertEqual(o["recipients_total"], 300)
        line = [l for l in self.m.log_text().splitlines() if self.sender in l and
                '"kind":"message"' in l][0]
        self.assertLess(len(line.encode()), 8192)   # rsyslog's default message size
