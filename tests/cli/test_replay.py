#!/usr/bin/env python3
"""tests/cli/test_replay.py BUILD: `kanjiki replay` on crafted mail.

A synthetic snowshoe burst (documentation addresses of one /24, a new
*.localhost HELO, a new random .pink sender domain and no PTR name per
message, Received-SPF written by the receiving site) must end in cluster
signals and a reject; a legitimate bulk burst (one domain, HELO = PTR name,
many addresses) must be accepted; mail through a shared platform must be
counted by sender domain; an mbox is split; a message without any header and
a missing path give clear errors without stopping the rest."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
CLI = os.path.join(BUILD, "kanjiki")
RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "rules")
LABELS = ["ug53nhrhs09t", "uafyh7o09lz7", "qx7kz2mw9p", "zk4v8q1xj3", "w9x2cq8vbn", "p3mf7x0qzt",
          "h8v2kx9qwe", "j4z9xq2vmc"]


def eml(ip, helo, sender, subject, day, hour, ptr=None, spf=True):
    rcvd = "from %s (%s[%s])" % (helo, ptr + " " if ptr else "unknown ", ip)
    lines = []
    if spf:
        lines.append("Received-SPF: None (mx.example.org: no SPF) client-ip=%s; "
                     "envelope-from=<%s>; helo=%s;" % (ip, sender, helo))
    lines += [
        "Received: %s by mx.example.org (Postfix) with ESMTP id 4X; "
        "Mon, %02d Jan 2024 %02d:15:00 +0000" % (rcvd, day, hour),
        "Return-Path: <%s>" % sender,
        "From: Offers <%s>" % sender,
        "To: user@example.org",
        "Subject: %s" % subject,
        "Message-ID: <%d.%d@%s>" % (day, hour, sender.split("@")[1]),
        "Date: Mon, %02d Jan 2024 %02d:14:00 +0000" % (day, hour),
        "",
        "Hello,",
        "",
    ]
    return "\r\n".join(lines) + "\r\n"


class Replay(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kanjiki-replay-")
        self.addCleanup(shutil.rmtree, self.dir)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def replay(self, *args, check=True):
        p = subprocess.run([CLI, "replay", "--format", "json",
                            "--platforms", os.path.join(RULES, "platforms.list"),
                            "--tlds", os.path.join(RULES, "risky-tlds.list")] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr.decode())
        rows = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        return p, rows

    def test_snowshoe_burst_ends_in_cluster_signals_and_a_reject(self):
        for i, label in enumerate(LABELS):
            self.write("burst/%d.eml" % i,
                       eml("198.51.100.%d" % (20 + i), "ary%03d.localhost" % (50 + i),
                           "n%d@%s.pink" % (i, label), "Your parcel is waiting", 2, 8 + i))
        p, rows = self.replay(os.path.join(self.dir, "burst"))
        self.assertEqual(len(rows), 8)
        self.assertEqual([r["client"] for r in rows], ["198.51.100.%d" % (20 + i) for i in range(8)])
        self.assertEqual({r["block"] for r in rows}, {"198.51.100.0/24"})
        self.assertEqual(rows[0]["action"], "accept")   # one message is no cluster
        last = rows[-1]
        sig = {s["signal"] for s in last["signals"]}
        self.assertTrue({"block_ips", "block_new_domains", "block_helos"} <= sig, sig)
        self.assertEqual(last["action"], "reject", last)
        self.assertIn("replayed 8 messages", p.stderr.decode())

    def test_legitimate_bulk_from_identified_hosts_is_accepted(self):
        for i in range(8):
            host = "out%d.mail.example.com" % i
            self.write("bulk/%d.eml" % i,
                       eml("203.0.113.%d" % (10 + i), host, "news@example.com",
                           "Your monthly statement", 3, 8 + i, ptr=host))
        _, rows = self.replay(os.path.join(self.dir, "bulk"))
        self.assertEqual(len(rows), 8)
        self.assertTrue(all(r["action"] == "accept" for r in rows), rows)
        self.assertEqual({r["block"] for r in rows}, {"operator:example.com"})

    def test_shared_platform_is_counted_by_sender_domain(self):
        for i, label in enumerate(LABELS):
            self.write("plat/%d.eml" % i,
                       eml("209.85.220.%d" % (40 + i), "mail-%d.google.com" % i,
                           "x@%s.pink" % label, "hello there friend", 4, 8 + i))
        _, rows = self.replay(os.path.join(self.dir, "plat"))
        self.assertTrue(all(r["block"].startswith("platform:") for r in rows), rows)
        self.assertTrue(all(r["action"] != "reject" for r in rows), rows)
        self.assertFalse(any(s["signal"].startswith("block_") for r in rows for s in r["signals"]))

    def test_mbox_is_split_and_bad_input_is_reported_without_stopping(self):
        mbox = "".join("From sender@example.net Mon Jan  1 00:00:00 2024\n" +
                       eml("192.0.2.%d" % (1 + i), "h%d.example.net" % i, "a@example.net",
                           "s", 5, 8 + i).replace("\r\n", "\n") + "\n" for i in range(3))
        self.write("mix/box.mbox", mbox)
        self.write("mix/garbage.eml", "\x00\x01 this is no mail at all")
        self.write("mix/empty.eml", "")
        missing = os.path.join(self.dir, "nope.eml")
        p, rows = self.replay(os.path.join(self.dir, "mix"), missing, check=False)
        self.assertEqual(p.returncode, 1)   # a missing argument is an error...
        err = p.stderr.decode()
        self.assertIn("nope.eml: No such file or directory", err)
        self.assertIn("skipped", err)       # ...the garbage is named and skipped...
        names = sorted(os.path.basename(r["file"]) for r in rows)
        self.assertEqual(names[:3], ["box.mbox#1", "box.mbox#2", "box.mbox#3"])  # ...the rest replayed
        self.assertEqual([r["client"] for r in rows if "box.mbox" in r["file"]],
                         ["192.0.2.1", "192.0.2.2", "192.0.2.3"])

    def test_unknown_option_is_a_usage_error(self):
        p = subprocess.run([CLI, "replay", "--frobnicate", self.dir], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown option --frobnicate", p.stderr.decode())


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
