"""kanjiki stats on verdicts the real daemon recorded: the action counts,
the timeline, top reasons, refused clients and blocks, relay attempts
refused, as JSON lines and as a Prometheus text exposition whose every line
is a comment or a well-formed sample (label values escaped)."""

import json
import re
import subprocess

from kjtest import CLI, OwnMilterCase, by_sender

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})?'
                    r' -?[0-9.e+]+$')


class Stats(OwnMilterCase):

    NAME = "stats"

    def stats(self, *args):
        p = subprocess.run([CLI, "-d", self.m.db, "stats"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode()

    def test_counts_tops_and_prometheus(self):
        senders = []
        for i, ip in enumerate(("198.51.100.5", "198.51.100.6", "203.0.113.9")):
            sender = "s%d-%s@sender.test" % (i, self.tok)
            senders.append(sender)
            with self.m.session(ip, helo='q"uote\\back.example') as c:
                self.assertContinue(c.mail("<%s>" % sender))
                self.assertEqual(c.rcpt("<v%d@example.net>" % i).cmd, "y")   # relay refused
                self.assertEqual(c.rcpt("<x%d%%example.net@local.test>" % i).cmd, "y")
                self.assertContinue(c.rcpt("<u@local.test>"))
                self.assertContinue(c.eom().final)
                c.quit()
        for s in senders:
            self.m.wait_verdicts(by_sender(s), count=3)
        rows = [json.loads(l) for l in self.stats("--format", "json", "--by", "hour").splitlines()]
        head = [r for r in rows if r["type"] == "verdicts"][0]
        self.assertEqual((head["accept"], head["reject"]), (3, 6))
        self.assertEqual(head["relay_refused"], 6)
        tl = [r for r in rows if r["type"] == "timeline"]
        self.assertEqual(sum(r["reject"] for r in tl), 6)
        reasons = {r["code"]: r["count"] for r in rows if r["type"] == "reason"}
        self.assertEqual(reasons, {"relay_denied": 3, "percent_hack": 3})
        clients = {r["client"]: r["count"] for r in rows if r["type"] == "refused_client"}
        self.assertEqual(clients, {"198.51.100.5": 2, "198.51.100.6": 2, "203.0.113.9": 2})
        blocks = [(r["block"], r["count"]) for r in rows if r["type"] == "refused_block"]
        self.assertEqual(blocks, [("198.51.100.0/24", 4), ("203.0.113.0/24", 2)])
        prom = self.stats("--format", "prometheus")
        for line in prom.splitlines():
            self.assertTrue(line.startswith("# HELP ") or line.startswith("# TYPE ") or
                            SAMPLE.match(line), line)
        self.assertIn('kanjiki_verdicts{action="reject"} 6', prom)
        self.assertIn("kanjiki_relay_attempts_refused 6", prom)
        self.assertIn('kanjiki_reason_verdicts{code="percent_hack"} 3', prom)
        self.assertIn('kanjiki_refused_block_verdicts{block="198.51.100.0/24"} 4', prom)
        table = self.stats("--format", "table")
        self.assertIn("relay attempts refused: 6", table)
        self.assertIn("top refused blocks", table)
