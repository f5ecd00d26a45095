"""kanjiki explain: one decision in full, found by verdict id, queue id
(every verdict of that message: its refused recipients too) or Message-ID
(with or without <>), as text and as JSON; the Message-ID is recorded for
every message, trusted clients' too; mail data is escaped."""

import json
import subprocess

from kjtest import CLI, KjTestCase, by_sender, codes


class Explain(KjTestCase):

    def explain(self, *args, rc=0):
        p = subprocess.run([CLI, "-d", self.m.db, "explain"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(p.returncode, rc, p.stderr)
        return p

    def send(self, qid, msgid, helo="client.example"):
        with self.m.session("198.51.100.7", helo=helo) as c:
            self.assertContinue(c.mail("<%s>" % self.sender, macros={"i": qid}))
            r = c.rcpt("<victim-%s@example.net>" % self.tok)
            self.assertEqual(r.cmd, "y")
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.message([("Message-ID", "<%s>" % msgid), ("Subject", "hi")], b"hi\r\n",
                            macros={"i": qid})
            self.assertContinue(res.final)
            c.quit()
        return self.m.wait_verdicts(by_sender(self.sender), count=2)

    def test_by_queue_id_message_id_and_id(self):
        qid = "Q%s" % self.tok.upper()
        msgid = "%s.1@sender.test" % self.tok
        vs = self.send(qid, msgid, helo="evil\x1b[2J.example")
        msg = [v for v in vs if v["kind"] == "message"][0]
        # the queue id: the refused recipient first, then the message
        p = self.explain(qid)
        out = p.stdout.decode()
        self.assertEqual(out.count("\nverdict ") + out.startswith("verdict "), 2, out)
        self.assertLess(out.index("verdict %d" % [v for v in vs if v["kind"] == "rcpt"][0]["id"]),
                        out.index("verdict %d" % msg["id"]))
        self.assertIn("refused      victim-%s@example.net" % self.tok, out)
        self.assertIn("relay / relay_denied:", out)
        self.assertIn("message-id   %s" % msgid, out)
        self.assertIn("recipients   u@local.test", out)
        self.assertIn("local_domain", out)
        self.assertIn("\\x1b[2J", out)          # escaped for the terminal
        self.assertNotIn("\x1b", out)
        # the Message-ID, with or without <>
        for arg in (msgid, "<%s>" % msgid):
            p = self.explain(arg, "--format", "json")
            rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
            self.assertEqual([r["id"] for r in rows], [msg["id"]])
            self.assertEqual(rows[0]["message_id"], msgid)
            self.assertEqual(rows[0]["queue_id"], qid)
            self.assertEqual([r["code"] for r in rows[0]["reasons"]], codes(msg))
        # export carries the same verdict, Message-ID included
        p = subprocess.run([CLI, "-d", self.m.db, "export"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        exported = [json.loads(l) for l in p.stdout.decode().splitlines()]
        mine = [r for r in exported if r["id"] == msg["id"]]
        self.assertEqual(len(mine), 1)
        self.assertEqual((mine[0]["message_id"], mine[0]["queue_id"]), (msgid, qid))
        # the verdict id
        p = self.explain("--id", str(msg["id"]))
        self.assertTrue(p.stdout.decode().startswith("verdict %d, message," % msg["id"]))

    def test_unknown_and_bad_arguments(self):
        p = self.explain("NOSUCHQUEUEID", rc=1)
        self.assertIn(b"no verdict for NOSUCHQUEUEID", p.stderr)
        self.explain(rc=2)
        self.explain("--format", "xml", "x", rc=2)
