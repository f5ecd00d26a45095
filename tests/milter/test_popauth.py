"""POP/IMAP-before-SMTP grants as the running daemon sees them: a grant
added with `kanjiki popauth add` authorises relaying from that address
(reason popauth_grant) once the daemon's grant cache has picked it up, and
stops doing so when deleted or expired."""

import subprocess
import time

from kjtest import CLI, KjTestCase, by_sender, codes


class PopBeforeSmtp(KjTestCase):

    def popauth(self, *args):
        p = subprocess.run([CLI, "-d", self.m.db, "popauth"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        self.assertEqual(p.returncode, 0, p.stdout.decode("utf-8", "replace"))

    def relay_reply(self, ip, sender):
        with self.m.session(ip) as c:
            self.assertContinue(c.mail("<%s>" % sender))
            r = c.rcpt("<far@example.net>")
            if r.cmd == "c":
                self.assertContinue(c.eom().final)
            c.quit()
        return r

    def wait_reply(self, ip, want, timeout=5.0):
        """Try until the relay answer is WANT ('c' or 'y'); the daemon polls
        the database for grant changes (popauth_poll, 1 s by default)."""
        deadline = time.time() + timeout
        n = 0
        while True:
            n += 1
            sender = "try%d-%s" % (n, self.sender)
            r = self.relay_reply(ip, sender)
            if r.cmd == want or time.time() >= deadline:
                return r, sender
            time.sleep(0.2)

    def test_grant_authorises_relaying_until_deleted(self):
        ip = "198.51.100.%d" % (200 + int(self.tok, 16) % 50)
        self.assertRelayDenied(self.relay_reply(ip, self.sender))
        self.popauth("add", ip, "--user", "carol", "--ttl", "1h")
        r, sender = self.wait_reply(ip, "c")
        self.assertContinue(r)
        v = self.m.wait_verdicts(by_sender(sender))[0]
        self.assertEqual(codes(v), ["popauth_grant"])
        self.popauth("del", ip)
        r, _ = self.wait_reply(ip, "y")
        self.assertRelayDenied(r)

    def test_ipv4_grant_covers_the_ipv4_mapped_client(self):
        self.popauth("add", "198.51.100.44", "--ttl", "1h")
        try:
            r, sender = self.wait_reply("::ffff:198.51.100.44", "c")
            self.assertContinue(r)
            v = self.m.wait_verdicts(by_sender(sender))[0]
            self.assertEqual(codes(v), ["popauth_grant"])
        finally:
            self.popauth("del", "198.51.100.44")

    def test_expired_grant_no_longer_authorises(self):
        ip = "198.51.100.45"
        self.popauth("add", ip, "--ttl", "2s")
        try:
            r, _ = self.wait_reply(ip, "c")
            self.assertContinue(r)
            time.sleep(2.2)
            # expiry is checked at lookup: no cache refresh needed
            self.assertRelayDenied(self.relay_reply(ip, self.sender))
        finally:
            self.popauth("del", ip)
