"""SIGHUP (a daemon of its own): configuration and rules are reloaded for
new connections, open connections keep the policy they started with, a bad
configuration or rules file is refused with its file:line and the running
policy kept, and the daemon survives every SIGHUP."""

import os
import signal
import time

from milterdrv import ProtocolError
from kjtest import KjTestCase, Milter, conf_text, give_to_user


class Reload(KjTestCase):

    @classmethod
    def setUpClass(cls):
        cls.inst = Milter("reload").start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def setUp(self):
        super().setUp()
        self.m = self.inst
        self.good_conf = conf_text(self.m.dir)
        self.added = []

    def tearDown(self):
        # back to the base configuration and no rules, for the next test
        self.write_conf(self.good_conf)
        for p in self.added:
            if os.path.exists(p):
                os.unlink(p)
        if self.m.alive():
            self.hup()

    # ------------------------------------------------------------ helpers

    def write_conf(self, text):
        with open(self.m.conf, "w") as f:
            f.write(text)

    def write_rules(self, name, text):
        path = os.path.join(self.m.rules, name)
        with open(path, "w") as f:
            f.write(text)
        give_to_user(self.m.rules)
        self.added.append(path)

    def hup(self, expect=r"reloaded "):
        """SIGHUP and wait for the log line saying how it went; returns the
        match.  The daemon must still be alive afterwards."""
        pos = self.m.log_len()
        self.m.signal(signal.SIGHUP)
        m = self.m.wait_log(expect, start=pos)
        # The daemon is still finishing the reload after its log line; a
        # SIGHUP in that window is test_daemon_survives_a_burst_of_sighups'
        # business, not this helper's.
        time.sleep(0.1)
        self.assertTrue(self.m.alive(), "daemon died on SIGHUP:\n" + self.m.log_tail())
        return m

    def rcpt_reply(self, sender, rcpt, client_ip="198.51.100.7"):
        with self.m.session(client_ip) as c:
            self.assertContinue(c.mail("<%s>" % sender))
            r = c.rcpt("<%s>" % rcpt)
            c.quit()
        return r

    # ------------------------------------------------------------ tests

    def test_open_connection_keeps_old_policy_new_connection_gets_new(self):
        late = "late-%s@example.com" % self.tok
        old = self.m.session("198.51.100.7")
        with old:
            self.assertContinue(old.mail("<%s>" % late))
            self.write_rules("20-late.rules",
                             'deny sender %s reply "550 5.7.1 too late"\n' % late)
            self.hup(r"reloaded .*: 1 rules, 0 zones, 0 thresholds from 1 files, mode enforce")
            # the connection opened before the reload: old policy (no rule)
            self.assertContinue(old.rcpt("<u@local.test>"))
            # a new connection: the new rule
            self.assertReply(self.rcpt_reply(late, "u@local.test"), "550 5.7.1 too late")
            # and the old one still, for a second recipient and the message
            self.assertContinue(old.rcpt("<v@local.test>"))
            self.assertContinue(old.eom().final)
            old.quit()
        v = self.m.wait_verdicts(lambda v: v["sender"] == late and v["kind"] == "message")[0]
        self.assertEqual(v["recipients"], ["u@local.test", "v@local.test"])

    def test_bad_configuration_on_reload_is_refused_with_file_and_line(self):
        late = "kept-%s@example.com" % self.tok
        self.write_rules("20-kept.rules", "deny sender %s\n" % late)
        self.hup()
        self.assertReply(self.rcpt_reply(late, "u@local.test"),
                         "550 5.7.1 Access denied (kanjiki)")
        # a configuration that would switch to monitor mode, then a bad line
        bad = self.good_conf + "mode = monitor\nlocal_domains = example.net\nfrobnicate = yes\n"
        bad_line = bad.count("\n")
        self.write_conf(bad)
        m = self.hup(r"reload refused, keeping the running policy: (.*)")
        self.assertIn("%s:%d" % (self.m.conf, bad_line), m.group(1))
        self.assertIn("frobnicate", m.group(1))
        # nothing of the bad file applies: still enforce, same domains, same rules
        self.assertRelayDenied(self.rcpt_reply(self.sender, "u@example.net"))
        self.assertReply(self.rcpt_reply(late, "u@local.test"),
                         "550 5.7.1 Access denied (kanjiki)")

    def test_bad_value_on_reload_is_refused(self):
        self.write_conf(self.good_conf + "trusted_networks = 198.51.100.1/24\n")
        m = self.hup(r"reload refused, keeping the running policy: (.*)")
        self.assertIn("%s:%d" % (self.m.conf, self.good_conf.count("\n") + 1), m.group(1))
        # the widened (and bad) network was not applied
        self.assertRelayDenied(self.rcpt_reply(self.sender, "u@example.net",
                                               client_ip="198.51.100.1"))

    def test_bad_rules_file_on_reload_is_refused_with_file_line_column(self):
        blocked = "still-%s@example.com" % self.tok
        self.write_rules("20-ok.rules", "deny sender %s\n" % blocked)
        self.hup()
        self.write_rules("30-bad.rules", "# fine\ndeny sender\nallow sender friend@x.test\n")
        m = self.hup(r"reload refused, keeping the running policy: (.*)")
        self.assertRegex(m.group(1), r"/rules/30-bad\.rules:2:\d+")
        self.assertReply(self.rcpt_reply(blocked, "u@local.test"),
                         "550 5.7.1 Access denied (kanjiki)")
        # a second refused reload, then a good one: the daemon is still fine
        self.hup(r"reload refused")
        os.unlink(os.path.join(self.m.rules, "30-bad.rules"))
        self.hup(r"reloaded .*: 1 rules, 0 zones, 0 thresholds from 1 files")

    def test_reload_into_monitor_mode_applies_to_new_connections_only(self):
        old = self.m.session("198.51.100.7")
        with old:
            self.assertContinue(old.mail("<%s>" % self.sender))
            self.write_conf(conf_text(self.m.dir, mode="monitor"))
            self.hup(r"reloaded .* mode monitor")
            self.assertRelayDenied(old.rcpt("<u@example.net>"))
            with self.m.session("198.51.100.7") as new:
                self.assertContinue(new.mail("<%s>" % self.sender))
                self.assertContinue(new.rcpt("<u@example.net>"))
                res = new.eom()
                self.assertEqual(res.headers("X-Kanjiki-Monitor"),
                                 [("X-Kanjiki-Monitor",
                                   "would reject <u@example.net> (relay_denied)")])
                new.quit()
            old.quit()

    def test_restart_only_setting_changed_on_reload_is_warned_about(self):
        self.write_conf(self.good_conf.replace("k.db", "other.db"))
        self.hup(r"reloaded ")
        self.m.wait_log(r"database changed; it takes effect at the next restart")


class ReloadBurst(KjTestCase):
    """A daemon of its own: when this fails, the daemon is gone."""

    def test_daemon_survives_a_burst_of_sighups(self):
        # SIGHUPs arriving while a reload is still running (an admin or a
        # config tool signalling twice) must be reloads too, never a stop.
        self.m = Milter("reload-burst").start()
        self.addCleanup(self.m.stop)
        pos = self.m.log_len()
        sent = 0
        t0 = time.time()
        # pairs back to back (say logrotate and a config deploy at once):
        # the second arrives while the daemon reloads for the first
        while time.time() - t0 < 1.0 and self.m.alive():
            self.m.signal(signal.SIGHUP)
            self.m.signal(signal.SIGHUP)
            sent += 2
            time.sleep(0.005)
        time.sleep(0.2)
        self.m.wait_log(r"reloaded ", start=pos)
        # a daemon that took one of them for a stop no longer serves
        # sessions (and exits a few seconds later)
        problem = None
        try:
            with self.m.client() as c:
                c.sock.settimeout(3)
                self.assertContinue(c.connect("client.example", "4", "198.51.100.7"))
                self.assertContinue(c.mail("<%s>" % self.sender))
                self.assertRelayDenied(c.rcpt("<u@example.net>"))
                c.quit()
        except ProtocolError as e:
            problem = str(e)
        if problem:
            self.fail("after a burst of %d SIGHUPs the daemon no longer serves sessions "
                      "(%s); log:\n%s" % (sent, problem, self.m.log_tail(4)))
        self.assertTrue(self.m.alive(), "daemon died on a burst of SIGHUP:\n" +
                        self.m.log_tail())
        self.assertNotIn("stopping", self.m.log_text()[pos:],
                         "a burst of %d SIGHUPs stopped the daemon" % sent)
