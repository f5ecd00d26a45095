"""IP-literal recipients: local only when the literal is one of the server's
own addresses (local_addresses, or {daemon_addr}, the address the client
connected to)."""

from kjtest import KjTestCase, by_sender, codes

NOT_OURS = "554 5.7.1 Relaying denied (kanjiki): IP literal is not an address of this server"


class IpLiterals(KjTestCase):

    def rcpts(self, rcpts, client_ip="198.51.100.7", daemon_addr=None):
        out = []
        with self.m.session(client_ip, daemon_addr=daemon_addr) as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            for r in rcpts:
                out.append(c.rcpt(r))
            self.assertContinue(c.eom().final)
            c.quit()
        return out

    def test_literal_of_a_local_address_is_accepted(self):
        (r,) = self.rcpts(["<u@[192.0.2.1]>"])
        self.assertContinue(r)
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(v["recipients"], ["u@[192.0.2.1]"])
        self.assertEqual(codes(v), ["own_ip_literal"])

    def test_literal_of_a_foreign_address_is_refused_ip_literal(self):
        (r,) = self.rcpts(["<u@[198.51.100.9]>"])
        self.assertReply(r, NOT_OURS)
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(v["kind"], "rcpt")
        self.assertEqual(codes(v), ["ip_literal"])
        self.assertEqual(v["rcpt"], "u@[198.51.100.9]")

    def test_foreign_literal_is_refused_even_for_a_trusted_client(self):
        (r,) = self.rcpts(["<u@[198.51.100.9]>"], client_ip="192.0.2.10")
        self.assertReply(r, NOT_OURS)

    def test_daemon_addr_macro_makes_its_literal_local(self):
        r = self.rcpts(["<u@[203.0.113.7]>", "<v@[203.0.113.8]>"],
                       daemon_addr="203.0.113.7")
        self.assertContinue(r[0])
        self.assertReply(r[1], NOT_OURS)
        rows = self.m.wait_verdicts(by_sender(self.sender), count=2)
        msg = [v for v in rows if v["kind"] == "message"][0]
        self.assertEqual(msg["recipients"], ["u@[203.0.113.7]"])
        self.assertEqual(codes(msg), ["own_ip_literal"])

    def test_daemon_addr_of_one_connection_does_not_carry_to_the_next(self):
        self.assertContinue(self.rcpts(["<u@[203.0.113.7]>"], daemon_addr="203.0.113.7")[0])
        self.assertReply(self.rcpts(["<u@[203.0.113.7]>"])[0], NOT_OURS)

    def test_ipv6_daemon_addr_makes_its_ipv6_literal_local(self):
        r = self.rcpts(["<u@[IPv6:2001:db8:25::1]>", "<u@[IPv6:2001:db8:25::2]>"],
                       client_ip="2001:db8:ff::9", daemon_addr="2001:db8:25::1")
        self.assertContinue(r[0])
        self.assertReply(r[1], NOT_OURS)

    def test_malformed_literals_are_bad_syntax(self):
        for lit in ("<u@[192.0.2.256]>", "<u@[192.0.2.1>", "<u@[IPv6:2001:db8::g]>",
                    "<u@[]>"):
            with self.subTest(lit=lit):
                (r,) = self.rcpts([lit])
                self.assertReply(r, "501 5.1.3 Bad recipient address syntax (kanjiki)")

    def test_unparsable_daemon_addr_macro_is_ignored(self):
        r = self.rcpts(["<u@[192.0.2.1]>", "<u@[198.51.100.9]>"], daemon_addr="not-an-ip")
        self.assertContinue(r[0])
        self.assertReply(r[1], NOT_OURS)
