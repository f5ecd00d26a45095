#!/usr/bin/env python3
"""tests/cli/test_trace.py BUILD: `kanjiki trace` on crafted chains and corpus mail.

Crafted messages: a normal three-hop chain (numbered from the origin, times
in UTC and local time, delays, where it entered the site), a forged bottom
hop whose receiver is not the next hop's sender, "(may be forged)", clock
skew and a date in the future, IPv6 hops, a private address after public
ones, no Received: at all, a file that is no mail, text with terminal
escapes. The verdict is looked up in a store created by `kanjiki` itself
and filled with sqlite3 through the schema's own columns: shown when queue
id and client address match, not shown when only one of them does. Corpus
messages (../shared/corpus, skipped when absent) must all trace."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
CLI = os.path.join(BUILD, "kanjiki")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CORPUS = os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus"))

# The receiving site: its own relays are 198.51.100.0/24 and
# 2001:db8:ffff::/48; everything else in these messages is outside.
CONF = """trusted_networks = 127.0.0.0/8, ::1/128, 198.51.100.0/24, 2001:db8:ffff::/48
local_domains = receiver.example
"""

NORMAL = [  # top first, as in the message
    "from mx1.receiver.example (mx1.receiver.example [198.51.100.5]) by "
    "store.receiver.example (Postfix) with ESMTP id CCC333; Tue, 02 Jan 2024 03:00:07 -0500",
    "from smtp.sender.example (smtp.sender.example [192.0.2.10])\r\n\t(using TLSv1.3 with "
    "cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\tby mx1.receiver.example (Postfix) "
    "with ESMTPS id BBB222 for <bob@receiver.example>; Tue, 02 Jan 2024 08:00:05 +0000",
    "from laptop.sender.example ([10.1.2.3]) by smtp.sender.example (Postfix) with ESMTPSA "
    "id AAA111; Tue, 02 Jan 2024 09:00:00 +0100",
]


def eml(received, date="Tue, 02 Jan 2024 08:59:58 +0100", extra=()):
    lines = ["Received: %s" % r for r in received]
    lines += list(extra)
    lines += ["From: Alice <alice@sender.example>", "To: bob@receiver.example",
              "Subject: quarterly report", "Message-ID: <r1@sender.example>"]
    if date:
        lines.append("Date: %s" % date)
    return "\r\n".join(lines + ["", "Hello Bob,", ""])


class Trace(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kanjiki-trace-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.conf = self.write("kanjiki.conf", CONF)
        self.db = os.path.join(self.dir, "kanjiki.db")

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
        return path

    def run_trace(self, path, *args, env=None, rc=0):
        e = dict(os.environ, TZ="UTC")
        e.update(env or {})
        p = subprocess.run([CLI, "-c", self.conf, "-d", self.db, "trace"] + list(args) + [path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, env=e)
        self.assertEqual(p.returncode, rc, p.stderr.decode(errors="replace"))
        return p

    def trace_json(self, text, *args, **kw):
        p = self.run_trace(self.write("m.eml", text), "--format", "json", *args, **kw)
        return json.loads(p.stdout.decode())

    def notes(self, out, kind=None):
        return [n for n in out["notes"] if kind is None or n["kind"] == kind]

    # ---- chains ----

    def test_normal_chain_numbered_from_the_origin_with_times_and_entry(self):
        out = self.trace_json(eml(NORMAL), env={"TZ": "JST-9"})
        hops = out["hops"]
        self.assertEqual(out["numbering"], "origin")
        self.assertEqual([h["hop"] for h in hops], [1, 2, 3])
        self.assertEqual([h["by"] for h in hops],
                         ["smtp.sender.example", "mx1.receiver.example", "store.receiver.example"])
        self.assertEqual(hops[0]["helo"], "laptop.sender.example")
        self.assertEqual(hops[0]["ip"], "10.1.2.3")
        self.assertEqual(hops[1]["ip"], "192.0.2.10")
        self.assertEqual(hops[1]["with"], "ESMTPS")     # "with cipher" is in a comment
        self.assertEqual(hops[1]["id"], "BBB222")
        self.assertEqual(hops[1]["for"], "bob@receiver.example")
        # each date in UTC, in local time (TZ), with the offset it was written in
        self.assertEqual([h["time_utc"] for h in hops],
                         ["2024-01-02T08:00:00.000Z", "2024-01-02T08:00:05.000Z",
                          "2024-01-02T08:00:07.000Z"])
        self.assertEqual(hops[1]["time_local"], "2024-01-02T17:00:05+0900")
        self.assertEqual([h["utc_offset"] for h in hops], ["+0100", "+0000", "-0500"])
        self.assertEqual([h["delay_s"] for h in hops], [2, 5, 2])    # hop 1: from Date:
        # it entered the site at hop 2: hop 3 comes from a trusted relay
        self.assertEqual(out["entry_hop"], 2)
        self.assertEqual([h["internal"] for h in hops], [True, False, True])
        self.assertIn("entry", hops[1]["marks"])
        # a private address at the origin, before any public one, is normal
        self.assertEqual(out["notes"], [])

        p = self.run_trace(self.write("m.eml", eml(NORMAL)), env={"TZ": "JST-9"})
        table = p.stdout.decode()
        self.assertIn("numbered from the origin", table)
        self.assertIn("entered this site at hop 2: from smtp.sender.example [192.0.2.10]", table)
        self.assertIn("hop 1 was written by a server outside this site", table)
        row = [l for l in table.splitlines() if l.startswith("2 ")][0]
        self.assertIn("2024-01-02 08:00:05", row)     # UTC
        self.assertIn("2024-01-02 17:00:05", row)     # local (JST)
        self.assertIn("+5s", row)

    def test_forged_bottom_hop_breaks_the_chain(self):
        # the sender's software added a hop that claims a bank's relay; the
        # real hop shows the message came from elsewhere
        out = self.trace_json(eml([
            NORMAL[0],
            "from ylmf-pc.example.net (unknown [203.0.113.66]) by mx1.receiver.example "
            "(Postfix) with ESMTP id REAL22; Tue, 02 Jan 2024 08:00:05 +0000",
            "from mail.bank.example (mail.bank.example [192.0.2.77]) by mx.bank.example "
            "(Postfix) with ESMTP id FAKE11; Tue, 02 Jan 2024 08:00:01 +0000",
        ]))
        chain = self.notes(out, "chain")
        self.assertEqual(len(chain), 1, out["notes"])
        self.assertEqual(chain[0]["hop"], 2)
        self.assertIn("ylmf-pc.example.net [203.0.113.66]", chain[0]["text"])
        self.assertIn("hop 1 handed the message to mx.bank.example", chain[0]["text"])
        self.assertEqual(out["entry_hop"], 2)
        self.assertIn("chain", out["hops"][1]["marks"])

    def test_may_be_forged_and_helo_literal_of_another_address(self):
        out = self.trace_json(eml([
            NORMAL[0],
            "from smtp.sender.example (ptr.other.example [192.0.2.10]) (may be forged) by "
            "mx1.receiver.example (8.17.1/8.17.1) with ESMTP id S1; Tue, 02 Jan 2024 08:00:05 +0000",
            "from [192.0.2.99] (smtp.sender.example [192.0.2.11]) by smtp.sender.example "
            "with ESMTP id S0; Tue, 02 Jan 2024 08:00:03 +0000",
        ]))
        forged = self.notes(out, "forged")
        self.assertEqual([n["hop"] for n in forged], [2])
        self.assertIn("ptr.other.example", forged[0]["text"])
        self.assertIn("may_be_forged", out["hops"][1]["flags"])
        helo = self.notes(out, "helo")
        self.assertEqual([n["hop"] for n in helo], [1])
        self.assertIn("HELO [192.0.2.99] but connected from 192.0.2.11", helo[0]["text"])

    def test_clock_skew_is_measured_and_tolerance_applies(self):
        msg = eml([
            NORMAL[0],
            "from smtp.sender.example (smtp.sender.example [192.0.2.10]) by "
            "mx1.receiver.example with ESMTP id B2; Tue, 02 Jan 2024 06:00:05 +0000",
            "from laptop.sender.example ([10.1.2.3]) by smtp.sender.example with ESMTPSA "
            "id A1; Tue, 02 Jan 2024 08:00:00 +0000",
        ], date="Tue, 02 Jan 2024 07:59:58 +0000")
        out = self.trace_json(msg)
        skew = self.notes(out, "skew")
        self.assertEqual([n["hop"] for n in skew], [2], out["notes"])
        self.assertIn("1h59m before hop 1", skew[0]["text"])
        self.assertEqual(out["hops"][1]["delay_s"], -7195)
        self.assertEqual(self.notes(out, "future"), [])
        # a wider tolerance accepts it
        out = self.trace_json(msg, "--skew", "3h")
        self.assertEqual(self.notes(out, "skew"), [])

    def test_date_in_the_future(self):
        out = self.trace_json(eml([
            "from smtp.sender.example (smtp.sender.example [192.0.2.10]) by "
            "mx1.receiver.example with ESMTP id F1; Fri, 02 Jan 2099 08:00:05 +0000",
        ], date=None))
        future = self.notes(out, "future")
        self.assertEqual([n["hop"] for n in future], [1])
        self.assertIn("2099-01-02 08:00:05 UTC", future[0]["text"])

    def test_ipv6_hops(self):
        out = self.trace_json(eml([
            "from relay.receiver.example (2001:db8:ffff::25) by store.receiver.example "
            "(2001:db8:ffff::26) with Microsoft SMTP Server id 15.20.1; Tue, 02 Jan 2024 08:00:07 +0000",
            "from smtp6.sender.example (smtp6.sender.example [IPv6:2001:DB8:0:0:1::10]) by "
            "relay.receiver.example (Postfix) with ESMTPS id V6B; Tue, 02 Jan 2024 08:00:05 +0000",
            "from [IPv6:2001:db8:1::99] (helo=laptop6) by smtp6.sender.example with esmtpsa "
            "(Exim 4.96) id 1rV6A; Tue, 02 Jan 2024 08:00:00 +0000",
        ]))
        hops = out["hops"]
        self.assertEqual([h["ip"] for h in hops], ["2001:db8:1::99", "2001:db8::1:0:0:10",
                                                   "2001:db8:ffff::25"])
        self.assertEqual(hops[0]["helo"], "laptop6")
        self.assertEqual(hops[2]["by_ip"], "2001:db8:ffff::26")
        self.assertEqual(hops[2]["with"], "Microsoft SMTP Server")
        self.assertEqual(out["entry_hop"], 2)       # hop 3 is a trusted IPv6 relay
        self.assertEqual(hops[2]["internal"], True)
        self.assertEqual(self.notes(out, "chain"), [])

    def test_private_address_after_public_ones(self):
        out = self.trace_json(eml([
            NORMAL[0],
            "from gw.forwarder.example (gw.forwarder.example [192.0.2.200]) by "
            "mx1.receiver.example with ESMTP id P4; Tue, 02 Jan 2024 08:00:09 +0000",
            "from inner.forwarder.example (inner.forwarder.example [10.9.8.7]) by "
            "gw.forwarder.example with ESMTP id P3; Tue, 02 Jan 2024 08:00:07 +0000",
            "from smtp.sender.example (smtp.sender.example [192.0.2.10]) by "
            "inner.forwarder.example with ESMTP id P2; Tue, 02 Jan 2024 08:00:05 +0000",
        ]))
        private = self.notes(out, "private")
        self.assertEqual([n["hop"] for n in private], [2], out["notes"])
        self.assertIn("10.9.8.7 after public ones (hop 1 from 192.0.2.10)", private[0]["text"])
        self.assertEqual(out["entry_hop"], 3)

    def test_no_received_fields(self):
        out = self.trace_json(eml([]))
        self.assertEqual(out["hops"], [])
        self.assertIsNone(out["entry_hop"])
        p = self.run_trace(self.write("m.eml", eml([])))
        self.assertIn("no Received: fields", p.stdout.decode())

    def test_unparseable_hops_are_named(self):
        out = self.trace_json(eml([
            "hello world; this is no trace line",
            "from smtp.sender.example (smtp.sender.example [192.0.2.10]) by "
            "mx1.receiver.example with ESMTP id U1; 22/08/2002 16:54:15",
            "(qmail 4242 invoked by uid 89); Tue, 02 Jan 2024 08:00:00 +0000",
        ]))
        unparsed = self.notes(out, "unparsed")
        self.assertEqual([n["hop"] for n in unparsed], [2, 3], out["notes"])
        self.assertIn("is not a date", unparsed[0]["text"])
        self.assertIn("neither a from nor a by", unparsed[1]["text"])
        self.assertIn("comment", out["hops"][0]["flags"])   # qmail's note is no error

    def test_not_a_mail_file_and_missing_file(self):
        p = self.run_trace(self.write("x.bin", bytes(range(256)) * 4), rc=1)
        self.assertIn("not a mail message", p.stderr.decode())
        p = self.run_trace(self.write("x.txt", "just some text\nno header here\n"), rc=1)
        self.assertIn("not a mail message", p.stderr.decode())
        p = self.run_trace(os.path.join(self.dir, "nope.eml"), rc=1)
        self.assertIn("No such file or directory", p.stderr.decode())
        p = subprocess.run([CLI, "trace", "--frobnicate", "x"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 2)

    def test_message_text_is_escaped_for_terminal_and_json(self):
        evil = ("from evil\x1b[2J\x07.example (x\x1b]0;pwned\x07 [192.0.2.66]) by "
                "mx1.receiver.example with ESMTP id E1; Tue, 02 Jan 2024 08:00:05 +0000")
        msg = eml([evil], extra=["Subject: \x1b[31mred"])
        p = self.run_trace(self.write("m.eml", msg))
        out = p.stdout.decode()
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        self.assertIn("\\x1b", out)
        out = self.trace_json(msg)
        self.assertEqual(out["hops"][0]["helo"], "evil\x1b[2J\x07.example")

    # ---- the verdict ----

    def make_store(self, rows):
        # kanjiki creates the database with its own schema...
        subprocess.run([CLI, "-c", self.conf, "-d", self.db, "popauth", "add", "192.0.2.250"],
                       check=True, stdout=subprocess.DEVNULL, timeout=10)
        # ...and the verdict rows go in through the schema's columns
        db = sqlite3.connect(self.db)
        for queue_id, ip, action, msgid in rows:
            octets = bytes(int(x) for x in ip.split("."))
            db.execute(
                "INSERT INTO verdicts (time_ms, kind, queue_id, client_ip, client_ip_bin, "
                "client_name, helo, sender, recipients, stage, action, reply, reasons, score, "
                "message_id) VALUES (?, 'message', ?, ?, ?, NULL, 'ylmf-pc.example.net', "
                "'alice@sender.example', '[\"bob@receiver.example\"]', 'eom', ?, ?, ?, 9.5, ?)",
                (1704182405000, queue_id, ip, b"\0" * 10 + b"\xff\xff" + octets, action,
                 "550 5.7.1 Message refused (kanjiki)",
                 json.dumps([{"check": "dnsbl", "code": "dnsbl_listed",
                              "text": "client listed in bl.example.org"}]), msgid))
        db.commit()
        db.close()

    def test_verdict_of_this_server_is_shown(self):
        self.make_store([("BBB222", "192.0.2.10", "reject", None),
                         ("BBB222", "192.0.2.99", "tag", None),         # same id, other client
                         ("OTHER1", "192.0.2.10", "quarantine", None)])  # same client, other id
        out = self.trace_json(eml(NORMAL), "--host", "mx1.receiver.example")
        self.assertIsNone(out["verdict_store"]["error"])
        self.assertEqual(len(out["verdicts"]), 1, out["verdicts"])
        v = out["verdicts"][0]
        self.assertEqual((v["hop"], v["queue_id"], v["action"], v["matched"]),
                         (2, "BBB222", "reject", "queue_id"))
        self.assertEqual(v["reasons"][0]["code"], "dnsbl_listed")
        self.assertTrue(out["hops"][1]["this_host"])
        self.assertIn("here", out["hops"][1]["marks"])

        p = self.run_trace(self.write("m.eml", eml(NORMAL)))
        table = p.stdout.decode()
        self.assertIn("kanjiki verdict (store %s):" % self.db, table)
        self.assertIn("hop 2, queue id BBB222: reject at stage eom", table)
        self.assertIn("reply: 550 5.7.1 Message refused (kanjiki)", table)
        self.assertIn("reasons: dnsbl_listed: client listed in bl.example.org", table)
        self.assertIn("every check and lookup: kanjiki explain %d" % v["id"], table)
        self.assertNotIn("quarantine", table)
        self.assertNotIn(": tag ", table)

    def test_verdict_found_by_message_id(self):
        # another copy of the message (its own transaction, its own queue id)
        self.make_store([("ZZZ999", "203.0.113.5", "tempfail", "r1@sender.example"),
                         ("YYY888", "192.0.2.10", "tag", "other@sender.example")])
        out = self.trace_json(eml(NORMAL))
        self.assertEqual([(v["hop"], v["queue_id"], v["matched"]) for v in out["verdicts"]],
                         [(None, "ZZZ999", "message_id")])
        p = self.run_trace(self.write("m.eml", eml(NORMAL)))
        self.assertIn("by Message-ID, queue id ZZZ999: tempfail", p.stdout.decode())

    def test_no_verdict_store_is_said_and_trace_goes_on(self):
        out = self.trace_json(eml(NORMAL))
        self.assertIsNotNone(out["verdict_store"]["error"])
        self.assertEqual(out["verdicts"], [])
        self.assertEqual(len(out["hops"]), 3)
        p = self.run_trace(self.write("m.eml", eml(NORMAL)))
        self.assertIn("no verdict store", p.stdout.decode())
        self.assertFalse(os.path.exists(self.db))        # and none was created

    def test_kanjiki_headers_are_listed(self):
        msg = eml(NORMAL, extra=["X-Kanjiki-Score: 3.0 (degraded)",
                                 "X-Kanjiki-Spam: yes, score=9.0"])
        out = self.trace_json(msg)
        self.assertEqual(out["kanjiki_headers"],
                         ["X-Kanjiki-Spam: yes, score=9.0", "X-Kanjiki-Score: 3.0 (degraded)"])

    # ---- real mail ----

    def test_corpus_messages_trace(self):
        if not os.path.isdir(CORPUS):
            self.skipTest("no corpus at %s" % CORPUS)
        files = []
        for sub in ("ham", "spam"):
            names = sorted(os.listdir(os.path.join(CORPUS, sub)))
            files += [os.path.join(CORPUS, sub, n) for n in names[::97]]
        self.assertGreater(len(files), 40)
        with_record = 0
        for path in files:
            p = self.run_trace(path, "--format", "json")
            out = json.loads(p.stdout.decode())
            with open(path, "rb") as f:
                header = f.read().replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
            fields = sum(1 for l in header.split(b"\n") if l.lower().startswith(b"received:"))
            self.assertEqual(len(out["hops"]), fields, path)
            if out["entry_hop"]:
                entry = out["hops"][out["entry_hop"] - 1]
                self.assertFalse(entry["internal"], path)
                self.assertTrue(all(h["internal"] or not h["ip"]
                                    for h in out["hops"][out["entry_hop"]:]), path)
            rec = out["site_record"]
            if rec:
                with_record += 1
                self.assertEqual(out["hops"][rec["hop"] - 1]["ip"], rec["ip"], path)
            self.run_trace(path)                          # the table too
        self.assertGreater(with_record, 0)

        # one known message: a 2002 mailing-list post, hop by hop
        path = os.path.join(CORPUS, "ham", "sa-easy_ham-00551.eml")
        if os.path.exists(path):
            out = json.loads(self.run_trace(path, "--format", "json").stdout.decode())
            self.assertEqual(len(out["hops"]), 6)
            self.assertEqual(out["hops"][1]["ip"], "64.4.22.195")
            self.assertEqual(out["hops"][1]["rdns"], "dav60.law15.hotmail.com")
            self.assertEqual(out["entry_hop"], 4)
            self.assertEqual(out["hops"][3]["ip"], "64.161.22.236")
            self.assertEqual(self.notes(out, "chain"), [])


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
