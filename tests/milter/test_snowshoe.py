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
import time

from kjtest import CLI, OwnMilterCase, by_sender, dns_conf

HERE = os.path.dirname(os.path.abspath(__file__))
RULES_DIR = os.path.join(HERE, "..", "..", "rules")
WORDS = ["parcel", "invoice", "garden", "meeting", "holiday", "ticket", "refund", "lottery"]
LABELS = ["ug53nhrhs09t", "uafyh7o09lz7", "qx7kz2mw9p", "zk4v8q1xj3", "w9x2cq8vbn",
          "p3mf7x0qzt", "h8v2kx9qwe", "j4z9xq2vmc"]


def read(name):
    with open(os.path.join(RULES_DIR, name)) as f:
        return f.read()


def snowshoe_reason(v):
    rs = [r for r in v.get("reasons") or [] if r["code"] == "snowshoe_score"]
    return rs[0] if rs else None


class SnowshoeCase(OwnMilterCase):
    """A daemon of its own with the detector's lists from rules/."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # the lists the detector reads from the rules directory at start
        for name in ("platforms.list", "risky-tlds.list"):
            with open(os.path.join(cls.inst.rules, name), "w") as f:
                f.write(read(name))
        cls.inst.stop(wait=True)
        cls.inst.start()

    def send(self, ip, hostname, helo, sender, headers=(), body=b"Hello there\r\n",
             subject="Your parcel is waiting", display="Offers"):
        with self.m.session(ip, hostname=hostname, helo=helo) as c:
            self.assertContinue(c.mail("<%s>" % sender))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.message(list(headers) + [("From", "%s <%s>" % (display, sender)),
                                             ("Subject", subject)], body)
            c.quit()
        return res


class SnowshoeObserve(SnowshoeCase):

    NAME = "snowshoe"
    RULES = "# no score rules: the detector observes on its own\n"

    @classmethod
    def extra_conf(cls):
        # PTR names come from the test DNS (tests/dnsenv), checked by the milter
        return "snowshoe = observe\n" + dns_conf()

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
            self.send("198.18.91.%d" % (100 + i), "unknown", "r%d.localhost" % i,
                      "r%d-%s@%s%s.pink" % (i, self.tok, LABELS[i], self.tok[:2]))
        self.m.stop(wait=True)   # saves what changed
        self.m.start()
        self.m.wait_log(r"snowshoe detector on \(observe\); [1-9][0-9]* saved entries loaded")
        sender = "r9-%s@%s%s.pink" % (self.tok, LABELS[5], self.tok[:2])
        res = self.send("198.18.91.109", "unknown", "r9.localhost", sender)
        self.assertContinue(res.final)
        r = snowshoe_reason(self.m.wait_verdicts(by_sender(sender))[0])
        # four addresses of 198.18.91.0/24: three remembered across the restart
        self.assertIn("signal_block_ips", r)
        self.assertIn("4 IPs in 198.18.91.0/24", r["signal_block_ips"])

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
        # the PTR names are the test DNS's (out0..7.bulk.example.com, each
        # resolving back); the MTA's name is deliberately not given
        for i in range(8):
            host = "out%d.bulk.example.com" % i
            res = self.send("203.0.113.%d" % (10 + i), "unknown", host,
                            "news-%d-%s@example.com" % (i, self.tok))
        hdr = res.headers("X-Kanjiki-Snowshoe")[0][1]
        self.assertIn("would accept; operator:example.com)", hdr)
        r = snowshoe_reason(self.m.wait_verdicts(by_sender("news-7-%s@example.com" % self.tok))[0])
        self.assertEqual(r["ptr"], "out7.bulk.example.com (confirmed)")

    def test_ptr_names_are_checked_by_the_milter(self):
        # a PTR name that does not resolve back: not confirmed, whatever the
        # MTA claims
        sender = "liar-%s@example.org" % self.tok
        self.send("203.0.113.66", "liar.bulk.example.com", "liar.bulk.example.com", sender)
        r = snowshoe_reason(self.m.wait_verdicts(by_sender(sender))[0])
        self.assertEqual(r["ptr"], "liar.bulk.example.com (not confirmed)")
        self.assertIn("signal_ptr_unconfirmed", r)
        # no PTR name at all (NXDOMAIN from the test DNS)
        sender = "nop-%s@example.org" % self.tok
        self.send("198.51.100.251", "claimed.example.net", "claimed.example.net", sender)
        r = snowshoe_reason(self.m.wait_verdicts(by_sender(sender))[0])
        self.assertEqual(r["ptr"], "- (none)")
        self.assertIn("signal_no_ptr", r)

    def test_forged_snowshoe_header_is_deleted(self):
        res = self.send("192.0.2.60", "unknown", "h.example", "a-%s@sender.test" % self.tok,
                        headers=[("X-Kanjiki-Snowshoe", "0.0 (no cluster; would accept; x)")])
        dels = [(m.name, m.index) for m in res.mods if m.cmd == "m" and m.value == ""]
        self.assertIn(("X-Kanjiki-Snowshoe", 1), dels)
        self.assertEqual(len(res.headers("X-Kanjiki-Snowshoe")), 1)   # ours only


class SnowshoeEnforce(SnowshoeCase):
    """snowshoe = enforce with the rules' own snowshoe thresholds: a lone
    message with bad per-message signals is tagged; a burst from one block
    is delayed (tempfail) and, once its cluster grows, rejected with the
    rules' reply; the retry of a delayed message is tagged; an immediate
    resend is not a retry."""

    NAME = "snowshoe-enforce"
    RULES = ("snowshoe threshold 2 tag\n"
             "snowshoe threshold 6 tempfail\n"
             "snowshoe threshold 15 reject reply \"554 5.7.1 Snowshoe from your block\"\n"
             "snowshoe retry-delay 1s\n")

    @classmethod
    def extra_conf(cls):
        return "snowshoe = enforce\n" + dns_conf()

    def test_lone_message_is_only_tagged(self):
        sender = "lone-%s@%s%s.pink" % (self.tok, LABELS[0], self.tok[:3])
        res = self.send("192.0.2.77", "unknown", "ary001.localhost", sender,
                        subject="lone " + self.tok, display="Lone " + self.tok,
                        body=b"lone message\r\n")
        self.assertContinue(res.final)
        spam = res.headers("X-Kanjiki-Spam")
        self.assertEqual(len(spam), 1, res.mods)
        self.assertRegex(spam[0][1], r"^yes, snowshoe=[23]\.\d$")
        self.assertRegex(res.headers("X-Kanjiki-Snowshoe")[0][1],
                         r"^\d\.\d \(no cluster; tag; 192\.0\.2\.0/24\)$")
        v = self.m.wait_verdicts(by_sender(sender))[0]
        self.assertEqual(v["action"], "tag")
        r = snowshoe_reason(v)
        self.assertEqual(r["action"], "tag")
        self.assertIn("50-test.rules:1", r["threshold"])

    def burst_one(self, i, same_text):
        """Message i of a burst from 198.18.44.0/24: new address, HELO and
        random domain each time; one text for all, or a different one each
        time (numbers alone would not do: fingerprints ignore them)."""
        tok = self.tok
        sender = "b%d-%s@%s%s%d.pink" % (i, tok, LABELS[i % len(LABELS)], tok[:2], i)
        word = "campaign" if same_text else WORDS[i % len(WORDS)]
        return sender, self.send("198.18.44.%d" % (20 + i), "unknown",
                                 "ary%03d.localhost" % (50 + i), sender,
                                 subject="Your %s is waiting" % word, display=word.title(),
                                 body=("About the %s\r\n" % word).encode())

    def resend(self, ip, sender):
        return self.send(ip, "unknown", "again.localhost", sender, subject="again",
                         display="Again", body=b"again\r\n")

    def test_burst_is_delayed_then_rejected_and_a_retry_is_tagged(self):
        actions = []
        for i in range(8):
            sender, res = self.burst_one(i, same_text=False)
            actions.append((res.final.cmd, res.final.code))
            if res.final.code == 451:
                break
        else:
            self.fail("never delayed: %r" % actions)
        self.assertEqual(res.final.text,
                         "451 4.7.1 Mail from 198.18.44.0/24 is delayed, try again later")
        v = self.m.wait_verdicts(by_sender(sender))[0]
        self.assertEqual(v["action"], "tempfail")
        self.assertEqual(snowshoe_reason(v)["retry"], "first attempt")
        self.assertIn("signal_block_new_domains", snowshoe_reason(v))
        # resent at once: still a first attempt (spamware that blasts twice)
        ip = "198.18.44.%d" % (20 + i)
        res = self.resend(ip, sender)
        self.assertEqual((res.final.cmd, res.final.code), ("y", 451), res.final)
        # a real MTA's retry, later: tagged, not refused
        time.sleep(1.2)
        res = self.resend(ip, sender)
        self.assertContinue(res.final)
        self.assertEqual(len(res.headers("X-Kanjiki-Spam")), 1, res.mods)
        vs = self.m.wait_verdicts(by_sender(sender), count=3)
        by_retry = {snowshoe_reason(x)["retry"]: x["action"] for x in vs}
        self.assertEqual(by_retry, {"first attempt": "tempfail", "resent too soon": "tempfail",
                                    "retried: tagged": "tag"}, vs)
        # the block keeps sending, now one text: rejected
        for k in range(i + 1, i + 12):
            sender, res = self.burst_one(k, same_text=True)
            actions.append((res.final.cmd, res.final.code))
            if res.final.code == 554:
                break
        else:
            self.fail("never rejected: %r" % actions)
        self.assertEqual(res.final.text, "554 5.7.1 Snowshoe from your block")
        v = self.m.wait_verdicts(by_sender(sender))[0]
        self.assertEqual((v["action"], v["reply"]),
                         ("reject", "554 5.7.1 Snowshoe from your block"))
        self.assertIn("signal_same_text", snowshoe_reason(v))


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


class SnowshoeRetryBelowEveryThreshold(SnowshoeCase):
    """A retry (same /24, sender and recipients as a delayed message) that
    now scores below every snowshoe threshold is tagged, and the milter
    lives on (it once dereferenced the missing threshold)."""

    NAME = "snowshoe-retry-low"
    RULES = ("snowshoe threshold 10 tempfail\n"
             "snowshoe threshold 30 reject\n"
             "snowshoe retry-delay 1s\n")

    @classmethod
    def extra_conf(cls):
        return "snowshoe = enforce\n" + dns_conf()

    def test_low_scoring_retry_is_tagged(self):
        tok = self.tok
        sender = None
        for i in range(8):
            s = "r%d-%s@%s%s%d.pink" % (i, tok, LABELS[i % len(LABELS)], tok[:2], i)
            res = self.send("198.18.61.%d" % (20 + i), "unknown", "ary%03d.localhost" % i, s,
                            subject="Same offer", display="Same")
            if res.final.cmd == "y" and res.final.code == 451:
                sender, ip = s, "198.18.61.%d" % (20 + i)
                break
        self.assertIsNotNone(sender, "never delayed")
        time.sleep(1.2)
        # the "retry": the same envelope, but a text of its own (no same_text)
        res = self.send(ip, "unknown", "ary000.localhost", sender, subject="Unique " + tok,
                        display="Unique " + tok, body=("unique %s\r\n" % tok).encode())
        self.assertContinue(res.final)
        vs = self.m.wait_verdicts(by_sender(sender), count=2)
        by_retry = {snowshoe_reason(v).get("retry"): v for v in vs}
        self.assertEqual(sorted(by_retry), ["first attempt", "retried: tagged"], vs)
        v = by_retry["retried: tagged"]
        self.assertLess(float(snowshoe_reason(v)["score"]), 10.0, v)   # below every threshold
        self.assertEqual(v["action"], "tag")
        self.assertEqual(len(res.headers("X-Kanjiki-Spam")), 1, res.mods)
