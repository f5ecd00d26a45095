"""Daemon life cycle (daemons of their own): SIGTERM lets an in-flight
transaction finish and exits cleanly; a stale socket left by kill -9 is
replaced at the next start; a socket in use by a running milter is never
stolen."""

import os
import pwd
import signal
import stat
import time

from kjtest import KjTestCase, Milter, USER, by_sender, codes, socket_accepts


class SigtermWithTransactionInFlight(KjTestCase):

    def test_in_flight_transaction_finishes_after_sigterm_then_clean_exit(self):
        m = Milter("sigterm").start()
        self.m = m
        try:
            c = m.session("198.51.100.7")
            self.assertContinue(c.mail("<%s>" % self.sender, macros={"i": "QTERM"}))
            pos = m.log_len()
            m.signal(signal.SIGTERM)
            m.wait_log(r"stopping on signal 15", start=pos)
            time.sleep(0.2)
            # the connection is still served, with real decisions, at once
            # (an MTA waits milter_command_timeout, then gives up on it)
            c.sock.settimeout(3)
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.eom(macros={"i": "QTERM"}).final)
            c.quit()
            c.close()
            rc = m.wait_exit(20)
            self.assertEqual(rc, 0, "exit status after SIGTERM; log:\n" + m.log_tail())
        finally:
            if m.alive():
                m.kill9()
        self.assertFalse(os.path.exists(m.sock), "socket left behind")
        self.assertFalse(os.path.exists(m.pidfile), "pidfile left behind")
        self.assertRegex(m.log_text(), r"notice: stopped")
        # both verdicts of that transaction reached the database
        rows = m.verdicts()
        mine = sorted([v for v in rows if v["sender"] == self.sender], key=lambda v: v["id"])
        self.assertEqual([v["kind"] for v in mine], ["rcpt", "message"], mine)
        self.assertEqual(codes(mine[0]), ["relay_denied"])
        self.assertEqual(mine[1]["recipients"], ["u@local.test"])
        self.assertEqual(mine[1]["queue_id"], "QTERM")
        self.assertNotRegex(m.log_text(), r"lost|dropping")


class SigintWhenIdle(KjTestCase):

    def test_idle_daemon_stops_on_sigint_with_exit_0_and_cleans_up(self):
        m = Milter("sigint").start()
        try:
            with m.session("198.51.100.7") as c:
                self.assertContinue(c.mail("<%s>" % self.sender))
                self.assertRelayDenied(c.rcpt("<u@example.net>"))
                c.quit()
            m.signal(signal.SIGINT)
            rc = m.wait_exit(20)
        finally:
            if m.alive():
                m.kill9()
        self.assertEqual(rc, 0, m.log_tail())
        self.assertFalse(os.path.exists(m.sock), "socket left behind")
        self.assertFalse(os.path.exists(m.pidfile), "pidfile left behind")
        self.assertNotRegex(m.log_text(), r"connections still open|transactions unfinished")
        self.assertEqual(len(m.verdicts()), 1)


class SocketHandling(KjTestCase):

    def test_socket_is_not_world_accessible_and_belongs_to_the_run_as_user(self):
        st = os.stat(self.m.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(st.st_mode & 0o007, 0, "socket mode %o" % (st.st_mode & 0o777))
        if USER and os.geteuid() == 0:
            self.assertEqual(st.st_uid, pwd.getpwnam(USER).pw_uid)
        # and the process really runs as that user
        with open("/proc/%d/status" % self.m.pid) as f:
            uids = [ln.split()[1:] for ln in f if ln.startswith("Uid:")][0]
        want = pwd.getpwnam(USER).pw_uid if (USER and os.geteuid() == 0) else os.geteuid()
        self.assertEqual(set(int(u) for u in uids), {want})

    def test_stale_socket_left_by_kill_9_is_replaced_at_next_start(self):
        m = Milter("stale").start()
        try:
            with m.session("198.51.100.7") as c:
                self.assertContinue(c.mail("<%s>" % self.sender))
                self.assertRelayDenied(c.rcpt("<before@example.net>"))
                c.quit()
            m.wait_verdicts(by_sender(self.sender))
            m.kill9()
            # the leftovers a crash leaves: socket file nobody listens on
            self.assertTrue(stat.S_ISSOCK(os.stat(m.sock).st_mode), "no stale socket to test with")
            self.assertFalse(socket_accepts(m.sock))
            m.start()
            self.assertTrue(m.alive())
            with m.session("198.51.100.7") as c:
                self.assertContinue(c.mail("<%s>" % self.sender))
                self.assertRelayDenied(c.rcpt("<after@example.net>"))
                c.quit()
            rows = m.wait_verdicts(by_sender(self.sender), count=2)
            self.assertEqual([v["rcpt"] for v in rows], ["before@example.net", "after@example.net"])
            with open(m.pidfile) as f:
                self.assertEqual(int(f.read()), m.pid)
        finally:
            m.stop()

    def test_socket_in_use_by_a_running_milter_is_not_stolen(self):
        first = Milter("inuse").start()
        try:
            ino = os.stat(first.sock).st_ino
            second = Milter("inuse", fresh=False)
            pos = first.log_len()
            second.start(wait=False)
            rc = second.wait_exit(10)
            if rc is None:
                second.kill9()
            self.assertIsNotNone(rc, "second instance did not give up")
            self.assertNotEqual(rc, 0, "second instance exited 0")
            first.wait_log(r"another milter is listening on .*/inuse/k\.sock", start=pos)
            # the first one still owns the socket and answers on it
            self.assertTrue(first.alive())
            self.assertEqual(os.stat(first.sock).st_ino, ino, "socket file was replaced")
            with open(first.pidfile) as f:
                self.assertEqual(int(f.read()), first.pid, "pidfile overwritten")
            with first.session("198.51.100.7") as c:
                self.assertContinue(c.mail("<%s>" % self.sender))
                self.assertRelayDenied(c.rcpt("<u@example.net>"))
                c.quit()
            first.wait_verdicts(by_sender(self.sender))
        finally:
            first.stop()
