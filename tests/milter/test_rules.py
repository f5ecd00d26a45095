"""Allow/deny rules as the shared daemon loaded them from run.sh's
rules/10-test.rules:

  1 deny sender spammer@example.com reply "550 5.7.1 go away"
  2 deny rcpt blocked@local.test
  3 deny client 198.51.100.66 reply "451 4.7.1 come back later"
  4 allow sender friend@rules.test
  5 deny sender rules.test
  6 deny helo bad.helo.test reply "550 5.7.0 bad helo"
"""

from kjtest import KjTestCase, ACCESS_DENIED, by_sender, codes


class DenyAndAllowRules(KjTestCase):

    def one_rcpt(self, sender, rcpt, client_ip="198.51.100.7", helo="client.example",
                 macros=None):
        with self.m.session(client_ip, helo=helo) as c:
            self.assertContinue(c.mail("<%s>" % sender, macros=macros))
            r = c.rcpt("<%s>" % rcpt)
            self.assertContinue(c.eom().final)
            c.quit()
        return r

    def rule_verdict(self, pred, line):
        v = self.m.wait_verdicts(pred)[0]
        self.assertEqual(v["kind"], "rcpt")
        self.assertEqual(codes(v), ["deny_rule"])
        self.assertTrue(v["reasons"][0]["rule"].endswith("/rules/10-test.rules:%d" % line),
                        v["reasons"][0])
        self.assertEqual(v["reasons"][0]["check"], "rule")
        return v

    def test_deny_sender_rule_answers_its_own_reply(self):
        r = self.one_rcpt("spammer@example.com", "rules-%s@local.test" % self.tok)
        self.assertReply(r, "550 5.7.1 go away")
        v = self.rule_verdict(lambda v: v["rcpt"] == "rules-%s@local.test" % self.tok, 1)
        self.assertEqual(v["reply"], "550 5.7.1 go away")
        self.assertEqual(v["action"], "reject")

    def test_deny_rcpt_rule_without_reply_answers_access_denied(self):
        r = self.one_rcpt(self.sender, "blocked@local.test")
        self.assertReply(r, ACCESS_DENIED)
        self.rule_verdict(by_sender(self.sender), 2)

    def test_deny_rule_with_4xx_reply_is_a_temporary_failure(self):
        r = self.one_rcpt(self.sender, "u@local.test", client_ip="198.51.100.66")
        self.assertReply(r, "451 4.7.1 come back later")
        v = self.rule_verdict(by_sender(self.sender), 3)
        self.assertEqual(v["action"], "tempfail")

    def test_deny_helo_rule_matches_case_insensitively(self):
        r = self.one_rcpt(self.sender, "u@local.test", helo="BAD.Helo.Test.")
        self.assertReply(r, "550 5.7.0 bad helo")
        self.rule_verdict(by_sender(self.sender), 6)

    def test_deny_sender_domain_rule(self):
        sender = "x%s@rules.test" % self.tok
        r = self.one_rcpt(sender, "u@local.test")
        self.assertReply(r, ACCESS_DENIED)
        self.rule_verdict(by_sender(sender), 5)

    def test_allow_rule_before_deny_lets_mail_through_and_is_recorded(self):
        # friend@rules.test is allowed by line 4 before line 5 denies rules.test
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<friend@rules.test>", macros={"i": "QFRIEND" + self.tok}))
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.eom(macros={"i": "QFRIEND" + self.tok}).final)
            c.quit()
        v = self.m.wait_verdicts(lambda v: v["queue_id"] == "QFRIEND" + self.tok)[0]
        self.assertEqual(v["kind"], "message")
        self.assertEqual(codes(v), ["local_domain", "allow_rule"])
        self.assertTrue(v["reasons"][1]["rule"].endswith("/rules/10-test.rules:4"), v)

    def test_allow_rule_never_authorises_relaying(self):
        r = self.one_rcpt("friend@rules.test", "someone-%s@example.net" % self.tok)
        self.assertRelayDenied(r)

    def test_relay_refusal_comes_before_deny_rules(self):
        # a spammer relaying is refused as a relay, not by the rule
        r = self.one_rcpt("spammer@example.com", "victim-%s@example.net" % self.tok)
        self.assertRelayDenied(r)

    def test_sender_pattern_does_not_match_lookalike_domain(self):
        r = self.one_rcpt(self.sender.replace("@sender.test", "@notrules.test"), "u@local.test")
        self.assertContinue(r)
