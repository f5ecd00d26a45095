"""Snowshoe detector in the milter, observing (snowshoe = observe): a burst
of documentation addresses from one /24, each with a new *.localhost HELO,
a new random .pink sender domain and no PTR name, ends in cluster signals
and "would reject" in the verdict and an X-Kanjiki-Snowshoe header, while
mail is never refused by it; legitimate bulk from hosts whose HELO is their
PTR name is counted by the operator and stays clean; forged
X-Kanjiki-Snowshoe headers are deleted; with snowshoe off (the default)
nothing of it appears."""

import json
import os
import subprocess

from kjtest import CLI, OwnMilterCase, by_sender

HERE = os.path.dirname(os.path.abspath(__file__))
RULES_DIR = os.path.join(HERE, "..", "..", "rules")
LABELS = ["ug53nhrhs09t", "uafyh7o09lz7", "qx7kz2mw9p", "zk4v8q1xj3", "w9x2cq8vbn",
          "p3mf7x0qzt", "h8v2kx9qwe", "j4z9xq2vmc"]


def read(name):
    with open(os.path.join(RULES_DIR, name)) as f:
        return f.read()


def snowshoe_reason(v):
    rs = [r for r in v.get("reasons") or [] if r["code"] == "snowshoe_score"]
    return rs[0] if rs else None


class SnowshoeObserve(OwnMilterCase):

    NAME = "snowshoe"
    RULES = "# no score rules: the detector observes on its own\n"

    @classmethod
    def extra_conf(cls):
        return "snowshoe = observe\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # the lists the detector reads from the rules directory at start
        for name in ("platforms.list", "risky-tlds.list"):
            with open(os.path.join(cls.inst.rules, name), "w") as f:
                f.write(read(name))
        cls.inst.stop(wait=True)
        cls.inst.start()

    def send(self, ip, hostname, helo, sender, headers=(), body=b"Hello there\r\n"):
        with self.m.session(ip, hostname=hostname, helo=helo) as c:
            self.assertContinue(c.mail("<%s>" % sender))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.message(list(headers) + [("From", "Offers <%s>" % sender),
                                             ("Subject", "Your parcel is waiting")], body)
            c.quit()
        return res

    def test_burst_from_one_block_is_seen_as_a_cluster_but_not_refused(self):
        tok = self.tok
        senders = []
        for i, label in enumerate(LABELS):
            sender = "n%d-%s@%s%s.pink" % (i, tok, label, tok[:2])
            senders.append(sender)
            res = self.send("198.51.100.%d" % (20 + i), "unknown", "ary%03d.localhost" % (50 + i),
                            sender)
            self.assertContinue(res.final)   # observing: nothing is refused
        hdr = res.headers("X-Kanjiki-Snowshoe")
        self.assertEqual(len(hdr), 1, res.mods)
        self.assertRegex(hdr[0][1], r"^\d+\.\d \(cluster; would reject; 198\.51\.100\.0/24\)$")
        v = self.m.wait_verdicts(by_sender(senders[-1]))[0]
        r = snowshoe_reason(v)
        self.assertIsNotNone(r, v)
        self.assertEqual(r["would"], "reject")
        self.assertEqual(r["block"], "198.51.100.0/24")
        for sig in ("signal_block_ips", "signal_block_new_domains", "signal_block_helos",
                    "signal_no_ptr"):
            self.assertIn(sig, r)
        self.assertEqual(v["action"], "accept")
        first = snowshoe_reason(self.m.wait_verdicts(by_sender(senders[0]))[0])
        self.assertEqual(first["would"], "accept")   # one message is no cluster

    def test_state_survives_a_restart(self):
        for i in range(3):
            self.send("203.0.113.%d" % (100 + i), "unknown", "r%d.localhost" % i,
                      "r%d-%s@%s%s.pink" % (i, self.tok, LABELS[i], self.tok[:2]))
        self.m.stop(wait=True)   # saves what changed
        self.m.start()
        self.m.wait_log(r"snowshoe detector observing; [1-9][0-9]* saved entries loaded")
        sender = "r9-%s@%s%s.pink" % (self.tok, LABELS[5], self.tok[:2])
        res = self.send("203.0.113.109", "unknown", "r9.localhost", sender)
        self.assertContinue(res.final)
        r = snowshoe_reason(self.m.wait_verdicts(by_sender(sender))[0])
        # four addresses of 203.0.113.0/24: three remembered across the restart
        self.assertIn("signal_block_ips", r)
        self.assertIn("4 IPs in 203.0.113.0/24", r["signal_block_ips"])

    def test_clusters_lists_the_remembered_block_and_domains(self):
        doms = []
        for i in range(4):
            dom = "%s%s.pink" % (LABELS[i + 2], self.tok[:3])
            doms.append(dom)
            self.send("198.18.7.%d" % (10 + i), "unknown", "c%d.localhost" % i,
                      "c%d-%s@%s" % (i, self.tok, dom))
        self.m.stop(wait=True)   # the state is saved at stop (and every 30 s)
        self.m.start()
        p = subprocess.run([CLI, "-d", self.m.db, "clusters", "--format", "json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
        mine = [r for r in rows if r["block"] == "198.18.7.0/24"]
        self.assertEqual(len(mine), 1, rows)
        self.assertEqual((mine[0]["messages"], mine[0]["ips"], mine[0]["new_domains"]),
                         (4, 4, 4))
        self.assertTrue(mine[0]["first_seen"] and mine[0]["last_seen"])
        p = subprocess.run([CLI, "-d", self.m.db, "clusters", "--domains", "--all",
                            "--format", "json"], stdout=subprocess.PIPE, timeout=10)
        names = {json.loads(l)["domain"] for l in p.stdout.decode().splitlines()}
        self.assertTrue(set(doms) <= names, names)
        p = subprocess.run([CLI, "-d", self.m.db, "clusters", "--window", "bogus"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 2)

    def test_bulk_from_identified_hosts_is_counted_by_operator(self):
        for i in range(8):
            host = "out%d.mail%s.example.com" % (i, self.tok)
            res = self.send("203.0.113.%d" % (10 + i), host, host,
                            "news-%d-%s@example.com" % (i, self.tok))
        hdr = res.headers("X-Kanjiki-Snowshoe")[0][1]
        self.assertIn("would accept; operator:example.com)", hdr)

    def test_forged_snowshoe_header_is_deleted(self):
        res = self.send("192.0.2.60", "unknown", "h.example", "a-%s@sender.test" % self.tok,
                        headers=[("X-Kanjiki-Snowshoe", "0.0 (no cluster; would accept; x)")])
        dels = [(m.name, m.index) for m in res.mods if m.cmd == "m" and m.value == ""]
        self.assertIn(("X-Kanjiki-Snowshoe", 1), dels)
        self.assertEqual(len(res.headers("X-Kanjiki-Snowshoe")), 1)   # ours only


class SnowshoeOffByDefault(OwnMilterCase):

    NAME = "snowshoe-off"

    def test_no_snowshoe_header_or_reason_when_off(self):
        with self.m.session("198.51.100.99", hostname="unknown", helo="x1.localhost") as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.message([("From", self.sender)], b"hi\r\n")
            c.quit()
        self.assertEqual(res.headers("X-Kanjiki-Snowshoe"), [])
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertIsNone(snowshoe_reason(v))
