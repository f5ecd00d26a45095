"""SMTP AUTH as the MTA reports it: the {auth_authen} macro sent with
MAIL FROM authorises relaying for that transaction only."""

from kjtest import KjTestCase, by_sender, codes


class SmtpAuth(KjTestCase):

    def test_auth_authen_macro_with_mail_authorises_relaying(self):
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender,
                                       macros={"i": "QAUTH1", "{auth_authen}": "alice",
                                               "{auth_type}": "PLAIN"}))
            self.assertContinue(c.rcpt("<friend@example.net>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.eom(macros={"i": "QAUTH1"})
            self.assertContinue(res.final)
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(v["kind"], "message")
        self.assertEqual(v["auth_user"], "alice")
        self.assertEqual(v["recipients"], ["friend@example.net", "u@local.test"])
        self.assertEqual(codes(v), ["smtp_auth", "local_domain"])
        self.assertEqual(v["reasons"][0]["rcpt"], "friend@example.net")
        self.assertEqual(v["queue_id"], "QAUTH1")

    def test_authentication_does_not_outlive_its_transaction(self):
        later = "later-" + self.sender
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender,
                                       macros={"{auth_authen}": "alice"}))
            self.assertContinue(c.rcpt("<friend@example.net>"))
            self.assertContinue(c.eom().final)
            # next transaction, the MTA sends MAIL macros without auth
            self.assertContinue(c.mail("<%s>" % later, macros={"i": "QAUTH2"}))
            self.assertRelayDenied(c.rcpt("<friend@example.net>"))
            c.quit()
        v = self.m.wait_verdicts(by_sender(later))[0]
        self.assertEqual(codes(v), ["relay_denied"])
        self.assertIsNone(v["auth_user"])

    def test_auth_does_not_excuse_routing_tricks(self):
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender,
                                       macros={"{auth_authen}": "alice"}))
            self.assertRelayDenied(c.rcpt("<u%example.net@local.test>"), "(percent_hack)")
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(codes(v), ["percent_hack"])
        self.assertEqual(v["auth_user"], "alice")

    def test_auth_user_with_control_characters_is_recorded_intact_in_json(self):
        user = "mallory\x1b[2J\r\nforged"
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender,
                                       macros={"{auth_authen}": user}))
            self.assertContinue(c.rcpt("<friend@example.net>"))
            self.assertContinue(c.eom().final)
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(v["auth_user"], user)
        self.assertEqual(codes(v), ["smtp_auth"])
