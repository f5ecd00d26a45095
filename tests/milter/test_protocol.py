"""The milter protocol itself: what kanjiki negotiates, MTAs that cannot
skip steps or speak an older version, session reuse (QUIT_NC), and many
sessions at once."""

import threading

from milterdrv import (SMFIF_ADDHDRS, SMFIF_CHGHDRS, SMFIF_QUARANTINE, SMFIP_NOBODY, SMFIP_NODATA, SMFIP_NOEOH,
                       SMFIP_NOHDRS, SMFIP_NOUNKNOWN, SMFIP_SKIP, SMFIM_CONNECT,
                       SMFIM_ENVFROM, SMFIM_ENVRCPT, SMFIM_EOM, SMFI_CURR_PROT)
from kjtest import KjTestCase, by_sender, codes

NR_BITS = 0x80 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000 | 0x40000 | 0x80000


class Negotiation(KjTestCase):

    def test_negotiates_header_adding_skips_unused_steps_and_requests_macros(self):
        with self.m.client(negotiate=False) as c:
            o = c.negotiate()
            c.quit()
        self.assertEqual(o.version, 6)
        # headers are added (results, tags), forged result headers deleted,
        # messages quarantined
        self.assertEqual(o.actions, SMFIF_ADDHDRS | SMFIF_QUARANTINE | SMFIF_CHGHDRS)
        # headers and body are read (From: domain, links); DATA and unknown
        # commands are not; SKIP lets the body stop early
        skip = SMFIP_NOUNKNOWN | SMFIP_NODATA
        self.assertEqual(o.protocol & skip, skip, "protocol %#x" % o.protocol)
        self.assertEqual(o.protocol & (SMFIP_NOHDRS | SMFIP_NOBODY | SMFIP_NOEOH), 0)
        self.assertTrue(o.protocol & SMFIP_SKIP, "protocol %#x" % o.protocol)
        # every step it does not skip is answered (no SMFIP_NR_*)
        self.assertEqual(o.protocol & NR_BITS, 0, "protocol %#x" % o.protocol)
        self.assertEqual(o.protocol & ~SMFI_CURR_PROT, 0)
        self.assertEqual(o.symlists, {
            SMFIM_CONNECT: ["{daemon_addr}", "j", "_"],
            SMFIM_ENVFROM: ["i", "{auth_authen}", "{auth_type}"],
            SMFIM_ENVRCPT: ["i"],
            SMFIM_EOM: ["i"],
        })

    def test_mta_that_cannot_skip_steps_gets_every_step_answered(self):
        with self.m.client(negotiate=False) as c:
            o = c.negotiate(protocol=SMFIP_SKIP)
            self.assertEqual(o.protocol & (SMFIP_NOHDRS | SMFIP_NOBODY | SMFIP_NODATA), 0)
            self.assertContinue(c.connect("client.example", "4", "198.51.100.7"))
            self.assertContinue(c.unknown("XFOO bar"))
            self.assertContinue(c.helo("client.example"))
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.data())
            self.assertContinue(c.header("From", "<%s>" % self.sender))
            self.assertContinue(c.header("Subject", "hello"))
            self.assertContinue(c.eoh())
            # no URI list in these rules: the rest of the body is skipped
            r = c.body(b"line one\r\nline two\r\n" * 100)
            self.assertEqual(r.cmd, "s", "expected skip, got %r" % r)
            res = c.eom()
            self.assertContinue(res.final)
            self.assertEqual(res.mods, [])
            c.quit()
        rows = self.m.wait_verdicts(by_sender(self.sender), count=2)
        self.assertEqual(rows[1]["recipients"], ["u@local.test"])

    def test_version_2_mta_is_served(self):
        with self.m.client(negotiate=False) as c:
            o = c.negotiate(version=2, actions=0x3F, protocol=0x7F)
            self.assertEqual(o.version, 2)
            self.assertContinue(c.connect("client.example", "4", "198.51.100.7"))
            self.assertContinue(c.helo("client.example"))
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.message(headers=[("Subject", "v2")], body=b"body\r\n")
            self.assertContinue(res.final)
            c.quit()


class SessionReuse(KjTestCase):

    def test_quit_nc_starts_a_fresh_session_on_the_same_socket(self):
        second = "second-" + self.sender
        c = self.m.session("192.0.2.10", helo="trusted.example")
        with c:
            self.assertContinue(c.mail("<%s>" % self.sender, macros={"{auth_authen}": "bob"}))
            self.assertContinue(c.rcpt("<x@example.net>"))
            self.assertContinue(c.eom().final)
            c.quit_nc()
            # no new OPTNEG: the next session starts with CONNECT
            self.assertContinue(c.connect("stranger.example", "4", "198.51.100.8"))
            self.assertContinue(c.mail("<%s>" % second))
            self.assertRelayDenied(c.rcpt("<y@example.net>"))
            c.quit()
        v = self.m.wait_verdicts(by_sender(second))[0]
        self.assertEqual(v["client_ip"], "198.51.100.8")
        self.assertEqual(v["client_name"], "stranger.example")
        self.assertIsNone(v["helo"], "HELO of the previous session leaked")
        self.assertIsNone(v["auth_user"])
        self.assertEqual(codes(v), ["relay_denied"])

    def test_sessions_open_at_the_same_time_do_not_share_state(self):
        a_sender = "a-" + self.sender
        b_sender = "b-" + self.sender
        a = self.m.session("192.0.2.10", helo="a.example", daemon_addr="203.0.113.7")
        b = self.m.session("198.51.100.9", helo="b.example")
        with a, b:
            self.assertContinue(a.mail("<%s>" % a_sender, macros={"{auth_authen}": "alice"}))
            self.assertContinue(b.mail("<%s>" % b_sender))
            self.assertContinue(a.rcpt("<x@example.net>"))
            self.assertRelayDenied(b.rcpt("<x@example.net>"))
            self.assertContinue(a.rcpt("<x@[203.0.113.7]>"))
            self.assertRelayDenied(b.rcpt("<x@[203.0.113.7]>"))
            self.assertContinue(a.eom().final)
            self.assertContinue(b.eom().final)
            a.quit()
            b.quit()
        va = self.m.wait_verdicts(by_sender(a_sender))[0]
        self.assertEqual(va["helo"], "a.example")
        self.assertEqual(va["auth_user"], "alice")
        self.assertEqual(codes(va), ["smtp_auth", "own_ip_literal"])
        vb = self.m.wait_verdicts(by_sender(b_sender), count=2)
        for v in vb:
            self.assertEqual(v["helo"], "b.example")
            self.assertIsNone(v["auth_user"])

    def test_many_concurrent_sessions_each_get_their_own_decisions(self):
        n = 40
        errors = []

        def one(i):
            try:
                ip = "198.51.100.%d" % (100 + i)
                with self.m.session(ip, helo="h%d.example" % i) as c:
                    s = "c%d-%s" % (i, self.sender)
                    r = c.mail("<%s>" % s, macros={"i": "QC%d%s" % (i, self.tok)})
                    assert r.cmd == "c", r
                    r = c.rcpt("<far%d@example.net>" % i)
                    assert r.cmd == "y" and r.code == 554, r
                    r = c.rcpt("<near%d@local.test>" % i)
                    assert r.cmd == "c", r
                    r = c.eom().final
                    assert r.cmd == "c", r
                    c.quit()
            except Exception as e:     # reported below
                errors.append("session %d: %r" % (i, e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        rows = self.m.wait_verdicts(lambda v: (v["sender"] or "").endswith(self.sender),
                                    count=2 * n, timeout=10)
        self.assertEqual(len(rows), 2 * n)
        for v in rows:
            i = int(v["sender"].split("-", 1)[0][1:])
            self.assertEqual(v["client_ip"], "198.51.100.%d" % (100 + i))
            self.assertEqual(v["helo"], "h%d.example" % i)
            if v["kind"] == "rcpt":
                self.assertEqual(v["rcpt"], "far%d@example.net" % i)
            else:
                self.assertEqual(v["recipients"], ["near%d@local.test" % i])
                self.assertEqual(v["queue_id"], "QC%d%s" % (i, self.tok))
