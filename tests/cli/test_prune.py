#!/usr/bin/env python3
"""tests/cli/test_prune.py BUILD: `kanjiki prune` and `kanjiki export` on a
database built from the schema in sql/ (the same migrations the binaries
carry): old verdicts and their lookups go, recent ones stay, --dry-run
changes nothing; export streams every verdict as JSON lines or CSV with
mail data escaped, and a closed pipe stops it cleanly."""
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
CLI = os.path.join(BUILD, "kanjiki")
SQL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sql")
DAY = 86400 * 1000


def make_db(path, rows):
    """rows: (age_days, helo) -> a verdict each, with one lookup."""
    db = sqlite3.connect(path)
    for name in sorted(f for f in os.listdir(SQL) if f[:1].isdigit()):
        with open(os.path.join(SQL, name)) as f:
            db.executescript(f.read())
    db.execute("PRAGMA user_version = %d" % len([f for f in os.listdir(SQL) if f[:1].isdigit()]))
    now = int(time.time() * 1000)
    for i, (age, helo) in enumerate(rows):
        t = now - int(age * DAY)
        cur = db.execute(
            "INSERT INTO verdicts (time_ms, kind, client_ip, helo, sender, rcpt, stage, action,"
            " reasons) VALUES (?, 'rcpt', '192.0.2.%d', ?, 'a@example.org', 'v@example.net',"
            " 'rcpt', 'reject', '[{\"check\":\"relay\",\"code\":\"relay_denied\"}]')" % (i % 250),
            (t, helo))
        db.execute("INSERT INTO lookups (verdict_id, time_ms, zone, kind, outcome) VALUES"
                   " (?, ?, 'bl.example', 'ip', 'clean')", (cur.lastrowid, t))
    db.commit()
    db.close()


class PruneExport(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kanjiki-prune-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.db = os.path.join(self.dir, "k.db")
        self.conf = os.path.join(self.dir, "k.conf")
        open(self.conf, "w").close()

    def cli(self, *args, **kw):
        return subprocess.run([CLI, "-c", self.conf, "-d", self.db] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, **kw)

    def counts(self):
        db = sqlite3.connect(self.db)
        v = db.execute("SELECT count(*) FROM verdicts").fetchone()[0]
        l = db.execute("SELECT count(*) FROM lookups").fetchone()[0]
        old = db.execute("SELECT count(*) FROM verdicts WHERE time_ms < ?",
                         (int(time.time() * 1000) - 90 * DAY,)).fetchone()[0]
        db.close()
        return v, l, old

    def test_prune_deletes_old_verdicts_and_their_lookups_in_batches(self):
        make_db(self.db, [(200, "old")] * 1234 + [(10, "new")] * 321)
        p = self.cli("prune", "--older-than", "90d", "--dry-run")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"1234 verdicts older than 90d would be deleted", p.stdout)
        self.assertEqual(self.counts(), (1555, 1555, 1234))
        p = self.cli("prune", "--older-than", "90d", "--batch", "100", "--pause", "0")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout.decode(), r"^1234 verdicts deleted in \d+ ms \(longest batch \d+ ms\)")
        self.assertEqual(self.counts(), (321, 321, 0))
        p = self.cli("prune", "--older-than", "90d")
        self.assertIn(b"0 verdicts deleted", p.stdout)

    def test_prune_needs_an_age_and_an_existing_database(self):
        self.assertEqual(self.cli("prune").returncode, 2)
        self.assertEqual(self.cli("prune", "--older-than", "soon").returncode, 2)
        self.assertEqual(self.cli("prune", "--older-than", "90d", "--batch", "0").returncode, 2)
        p = self.cli("prune", "--older-than", "90d")
        self.assertEqual(p.returncode, 1)
        self.assertFalse(os.path.exists(self.db))   # never created by prune

    def test_export_jsonl_and_csv(self):
        make_db(self.db, [(1, 'evil"\x1b[2J\r\nhelo'), (2, "plain")])
        p = self.cli("export")
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
        self.assertEqual([r["helo"] for r in rows], ['evil"\x1b[2J\r\nhelo', "plain"])
        self.assertNotIn(b"\x1b", p.stdout)   # escaped in the JSON text
        self.assertEqual(rows[0]["reasons"][0]["code"], "relay_denied")
        self.assertEqual(set(rows[0]) >= {"id", "time", "kind", "action", "lookups"}, True)
        p = self.cli("export", "--format", "csv")
        self.assertEqual(p.returncode, 0, p.stderr)
        table = list(csv.reader(io.StringIO(p.stdout.decode())))
        self.assertEqual(table[0][:3], ["id", "time", "kind"])
        self.assertEqual(len(table), 3)
        self.assertNotIn(b"\x1b", p.stdout)
        p = self.cli("export", "--since", "36h")
        self.assertEqual(len(p.stdout.decode().splitlines()), 1)
        self.assertEqual(self.cli("export", "--format", "xml").returncode, 2)

    def test_damaged_reasons_and_awkward_values(self):
        make_db(self.db, [(1, "a"), (1, "b"), (1, "c")])
        db = sqlite3.connect(self.db)
        db.execute("UPDATE verdicts SET reasons = '[1,{\"check\":\"a\"}]' WHERE id = 1")
        db.execute("UPDATE verdicts SET reasons = 'not json' WHERE id = 2")
        db.execute("UPDATE verdicts SET sender = '\"a b\"@x.example', score = -2.5, reasons ="
                   " '[{\"check\":\"relay\",\"code\":\"relay_denied\",\"text\":"
                   "\"said \\\"hi\\\", then -1\"}]' WHERE id = 3")
        db.commit()
        db.close()
        for i in ("1", "2", "3"):
            p = self.cli("explain", i)
            self.assertEqual(p.returncode, 0, p.stderr)
        p = self.cli("stats", "--format", "json", "--since", "7d")
        self.assertEqual(p.returncode, 0, p.stderr)
        for l in self.cli("export").stdout.decode().splitlines():
            json.loads(l)   # every line stays JSON, damaged reasons read as none
        p = self.cli("export", "--format", "csv")
        rows = list(csv.DictReader(io.StringIO(p.stdout.decode())))
        r3 = [r for r in rows if r["id"] == "3"][0]
        self.assertEqual(r3["sender"], '"a b"@x.example')          # as it is
        self.assertEqual(r3["score"], "-2.5")                      # still a number
        self.assertEqual(json.loads(r3["reasons"])[0]["text"], 'said "hi", then -1')
        self.assertIn("message_id", rows[0])

    def test_export_into_a_closed_pipe_stops(self):
        make_db(self.db, [(1, "h")] * 5000)
        p = subprocess.Popen([CLI, "-c", self.conf, "-d", self.db, "export"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.readline()
        p.stdout.close()   # like `| head -1`
        rc = p.wait(timeout=30)
        err = p.stderr.read()
        p.stderr.close()
        self.assertIn(rc, (1, -13), err)   # write error, or SIGPIPE


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
