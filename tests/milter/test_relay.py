"""The relay decision at RCPT TO, as the MTA sees it over the milter
protocol: who may relay, who may not, and what is recorded."""

from kjtest import KjTestCase, by_sender, codes


class RelayByClientAddress(KjTestCase):

    def refused(self, client_ip, family=None, rcpt="u@example.net"):
        c = self.m.session(client_ip, family=family)
        with c:
            self.assertContinue(c.mail("<%s>" % self.sender, macros={"i": "QRELAY1"}))
            r = c.rcpt("<%s>" % rcpt)
            self.assertRelayDenied(r, "recipient domain is not local and the client is "
                                      "not authorised")
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(v["kind"], "rcpt")
        self.assertEqual(v["action"], "reject")
        self.assertEqual(v["stage"], "rcpt")
        self.assertEqual(v["rcpt"], rcpt)
        self.assertEqual(v["reply"], r.text)
        self.assertEqual(v["monitor"], False)
        self.assertEqual(codes(v), ["relay_denied"])
        self.assertEqual(v["reasons"][0]["rcpt"], rcpt)
        self.assertEqual(v["queue_id"], "QRELAY1")
        return v

    def accepted(self, client_ip, family=None, rcpt="u@example.net"):
        c = self.m.session(client_ip, family=family)
        with c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertContinue(c.rcpt("<%s>" % rcpt))
            res = c.eom(macros={"i": "QRELAY2"})
            self.assertContinue(res.final)
            self.assertEqual(res.mods, [], "no header in enforce mode")
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(v["kind"], "message")
        self.assertEqual(v["action"], "accept")
        self.assertEqual(v["stage"], "eom")
        self.assertEqual(v["recipients"], [rcpt])
        self.assertEqual(v["queue_id"], "QRELAY2")
        return v

    def test_unknown_ipv4_client_relaying_to_example_net_is_refused_554(self):
        v = self.refused("198.51.100.7")
        self.assertEqual(v["client_ip"], "198.51.100.7")
        self.assertEqual(v["client_name"], "client.example")
        self.assertEqual(v["helo"], "client.example")

    def test_unknown_ipv4_client_to_local_domain_continues(self):
        v = self.accepted("198.51.100.7", rcpt="user@local.test")
        self.assertEqual(codes(v), ["local_domain"])

    def test_unknown_client_to_relay_domain_continues(self):
        v = self.accepted("198.51.100.7", rcpt="user@relay.test")
        self.assertEqual(codes(v), ["relay_domain"])

    def test_trusted_ipv4_client_may_relay(self):
        v = self.accepted("192.0.2.10")
        self.assertEqual(codes(v), ["trusted_network"])

    def test_neighbour_of_trusted_ipv4_host_is_refused(self):
        self.refused("192.0.2.11")

    def test_ipv6_client_outside_trusted_networks_is_refused(self):
        v = self.refused("2001:db8::5")
        self.assertEqual(v["client_ip"], "2001:db8::5")

    def test_ipv6_client_in_trusted_48_may_relay(self):
        v = self.accepted("2001:db8:1::5")
        self.assertEqual(codes(v), ["trusted_network"])
        self.assertEqual(v["client_ip"], "2001:db8:1::5")

    def test_ipv6_client_in_trusted_48_last_address_may_relay(self):
        v = self.accepted("2001:db8:1:ffff:ffff:ffff:ffff:ffff")
        self.assertEqual(codes(v), ["trusted_network"])

    def test_ipv6_client_just_past_trusted_48_is_refused(self):
        self.refused("2001:db8:2::")

    def test_ipv4_mapped_ipv6_client_of_trusted_host_may_relay(self):
        v = self.accepted("::ffff:192.0.2.10", family="6")
        self.assertEqual(codes(v), ["trusted_network"])
        self.assertEqual(v["client_ip"], "192.0.2.10")

    def test_ipv4_mapped_ipv6_client_of_untrusted_host_is_refused(self):
        v = self.refused("::ffff:192.0.2.11", family="6")
        # recorded as the IPv4 address, so that kanjiki query --ip finds it
        self.assertEqual(v["client_ip"], "192.0.2.11")
        found = self.m.verdicts("--ip", "192.0.2.0/24", "--sender", self.sender)
        self.assertEqual([x["id"] for x in found], [v["id"]])


class RelayByRecipientDomain(KjTestCase):

    def rcpt_reply(self, rcpt, client_ip="198.51.100.7"):
        with self.m.session(client_ip) as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            r = c.rcpt(rcpt)
            c.quit()
        return r

    def test_local_domain_matches_case_insensitively_with_trailing_dot(self):
        self.assertContinue(self.rcpt_reply("<User@LOCAL.Test.>"))

    def test_domain_ending_in_a_local_domain_name_is_not_local(self):
        self.assertRelayDenied(self.rcpt_reply("<u@evillocal.test>"))

    def test_subdomain_of_local_domain_is_not_local(self):
        self.assertRelayDenied(self.rcpt_reply("<u@sub.local.test>"))

    def test_recipient_without_angle_brackets_is_judged_the_same(self):
        self.assertRelayDenied(self.rcpt_reply("u@example.net"))
        self.assertContinue(self.rcpt_reply("u@local.test"))

    def test_routing_tricks_are_refused_even_from_a_trusted_client(self):
        tricks = [
            ("<u%example.net@local.test>", "percent_hack"),
            ("<example.net!u@local.test>", "bang_path"),
            ("<u@example.net@local.test>", "double_at"),
            ('<"u@example.net"@local.test>', "quoted_local"),
            ("<@local.test:u@example.net>", "source_route"),
        ]
        for rcpt, name in tricks:
            for ip in ("198.51.100.7", "192.0.2.10"):
                with self.subTest(rcpt=rcpt, client=ip):
                    r = self.rcpt_reply(rcpt, ip)
                    self.assertRelayDenied(r, "(%s)" % name)
                    self.assertIn("routing trick", r.text)
        rows = self.m.wait_verdicts(by_sender(self.sender), count=len(tricks) * 2)
        self.assertEqual(sorted(codes(v)[0] for v in rows),
                         sorted([n for _, n in tricks] * 2))

    def test_several_recipients_are_decided_one_by_one(self):
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertContinue(c.rcpt("<a@local.test>"))
            self.assertRelayDenied(c.rcpt("<b@example.net>"))
            self.assertContinue(c.rcpt("<c@relay.test>"))
            self.assertRelayDenied(c.rcpt("<d@example.org>"))
            self.assertContinue(c.eom().final)
            c.quit()
        rows = self.m.wait_verdicts(by_sender(self.sender), count=3)
        msg = [v for v in rows if v["kind"] == "message"]
        rej = [v for v in rows if v["kind"] == "rcpt"]
        self.assertEqual(len(msg), 1)
        self.assertEqual(msg[0]["recipients"], ["a@local.test", "c@relay.test"])
        self.assertEqual(sorted(v["rcpt"] for v in rej), ["b@example.net", "d@example.org"])

    def test_second_transaction_on_one_connection_is_decided_afresh(self):
        other = "second-" + self.sender
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender, macros={"i": "QA"}))
            self.assertContinue(c.rcpt("<a@local.test>"))
            c.abort()
            self.assertContinue(c.mail("<%s>" % other, macros={"i": "QB"}))
            self.assertRelayDenied(c.rcpt("<b@example.net>"))
            self.assertContinue(c.rcpt("<c@local.test>"))
            self.assertContinue(c.eom().final)
            c.quit()
        rows = self.m.wait_verdicts(by_sender(other), count=2)
        msg = [v for v in rows if v["kind"] == "message"][0]
        self.assertEqual(msg["recipients"], ["c@local.test"])
        self.assertEqual(msg["queue_id"], "QB")
        # the aborted transaction left no message verdict
        self.assertEqual(self.m.verdicts("--sender", self.sender), [])
