"""retention = 1d: kanjiki-milter deletes verdicts older than a day (and
their lookups) by itself, soon after it starts, while it goes on recording
new ones; the log says how many went."""

import sqlite3
import time

from kjtest import OwnMilterCase, by_sender

DAY = 86400 * 1000


class Retention(OwnMilterCase):

    NAME = "retention"

    @classmethod
    def extra_conf(cls):
        return "retention = 1d\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()   # creates the database
        cls.inst.stop(wait=True)
        db = sqlite3.connect(cls.inst.db)
        now = int(time.time() * 1000)
        for i in range(1200):
            t = now - (3 * DAY if i < 1100 else 3600 * 1000)   # 1100 old, 100 recent
            cur = db.execute(
                "INSERT INTO verdicts (time_ms, kind, client_ip, sender, stage, action)"
                " VALUES (?, 'message', '192.0.2.9', 'old@example.org', 'eom', 'accept')", (t,))
            db.execute("INSERT INTO lookups (verdict_id, time_ms, zone, kind, outcome)"
                       " VALUES (?, ?, 'bl.example', 'ip', 'clean')", (cur.lastrowid, t))
        db.commit()
        db.close()
        cls.inst.start()

    def counts(self):
        db = sqlite3.connect(self.m.db)
        try:
            return (db.execute("SELECT count(*) FROM verdicts WHERE sender = 'old@example.org'")
                    .fetchone()[0],
                    db.execute("SELECT count(*) FROM lookups").fetchone()[0])
        finally:
            db.close()

    def test_old_verdicts_go_new_ones_stay(self):
        with self.m.session("198.51.100.9") as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.eom().final)
            c.quit()
        self.m.wait_verdicts(by_sender(self.sender))
        end = time.time() + 25
        while time.time() < end and self.counts()[0] != 100:
            time.sleep(0.5)
        self.assertEqual(self.counts(), (100, 100))   # the recent ones, with their lookups
        self.m.wait_log(r"retention: 1100 verdicts older than 1 days deleted")
        self.assertEqual(len(self.m.wait_verdicts(by_sender(self.sender))), 1)
