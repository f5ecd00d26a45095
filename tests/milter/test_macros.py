"""What the MTA may leave out or get wrong: missing macros, unknown client
addresses, missing HELO, commands out of order, broken packets.  Each must
give a sane verdict (an unknown client is not an authorised one) and never
take the daemon down."""

import time

from kjtest import KjTestCase, by_sender, codes


class MissingMacros(KjTestCase):

    def tearDown(self):
        self.assertTrue(self.m.alive(), "kanjiki-milter died:\n" + self.m.log_tail())

    def test_no_macros_at_all_still_decides_relay_and_records_no_queue_id(self):
        c = self.m.client()
        with c:
            # no MACRO packet anywhere: no {daemon_addr}, no i, no {auth_authen}
            self.assertContinue(c.connect("client.example", "4", "198.51.100.7"))
            self.assertContinue(c.helo("client.example"))
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            res = c.eom()
            self.assertContinue(res.final)
            c.quit()
        rows = self.m.wait_verdicts(by_sender(self.sender), count=2)
        for v in rows:
            self.assertIsNone(v["queue_id"])
            self.assertIsNone(v["auth_user"])
        self.assertEqual([v["kind"] for v in rows], ["rcpt", "message"])
        self.assertEqual(rows[1]["recipients"], ["u@local.test"])

    def test_empty_auth_authen_macro_does_not_authorise_relaying(self):
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender,
                                       macros={"i": "QE", "{auth_authen}": "",
                                               "{auth_type}": "PLAIN"}))
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertIsNone(v["auth_user"])
        self.assertEqual(codes(v), ["relay_denied"])

    def test_unknown_address_family_counts_as_unauthorised_client(self):
        c = self.m.client()
        with c:
            # family 'U': the MTA does not know the client address at all
            self.assertContinue(c.connect("unknown", "U"))
            self.assertContinue(c.helo("client.example"))
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.eom().final)
            c.quit()
        rows = self.m.wait_verdicts(by_sender(self.sender), count=2)
        for v in rows:
            self.assertIsNone(v["client_ip"])
            self.assertEqual(v["client_name"], "unknown")
        self.assertEqual(codes(rows[0]), ["relay_denied"])
        self.assertIn("client=unknown[unknown]", self.m.log_text())

    def test_unix_socket_client_counts_as_unauthorised_client(self):
        c = self.m.client()
        with c:
            self.assertContinue(c.connect("localhost", "L", "/var/run/some.sock", port=0))
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertIsNone(v["client_ip"])

    def test_missing_helo_gives_normal_verdicts_without_helo(self):
        with self.m.session("198.51.100.7", helo=None) as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertRelayDenied(c.rcpt("<u@example.net>"))
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.eom().final)
            c.quit()
        rows = self.m.wait_verdicts(by_sender(self.sender), count=2)
        for v in rows:
            self.assertIsNone(v["helo"])
            self.assertEqual(v["client_ip"], "198.51.100.7")

    def test_queue_id_given_only_at_eom_is_recorded(self):
        # Postfix assigns the queue id after the first accepted recipient
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.eom(macros={"i": "QLATE42"}).final)
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(v["queue_id"], "QLATE42")


class OutOfOrder(KjTestCase):

    def tearDown(self):
        self.assertTrue(self.m.alive(), "kanjiki-milter died:\n" + self.m.log_tail())

    def test_rcpt_before_mail_is_not_answered_and_the_session_goes_on(self):
        # libmilter drops a RCPT that cannot follow HELO without calling the
        # filter (an MTA never sends one); what matters is that the
        # connection and the daemon carry on and decide the next RCPT.
        with self.m.session("198.51.100.7") as c:
            c.send_packet(b"R", b"<early@example.net>\0")
            self.assertFalse(c.at_eof(wait=0.5), "milter closed the connection")
            self.assertContinue(c.mail("<%s>" % self.sender))
            r = c.rcpt("<u@example.net>")
            self.assertRelayDenied(r)
            self.assertContinue(c.rcpt("<u@local.test>"))
            self.assertContinue(c.eom().final)
            c.quit()
        rows = self.m.wait_verdicts(by_sender(self.sender), count=2)
        self.assertEqual([v.get("rcpt") for v in rows], ["u@example.net", None])
        self.assertNotIn("early@example.net", self.m.log_text())

    def test_mail_and_rcpt_without_connect_do_not_open_relaying(self):
        # No CONNECT at all (the MTA skipped it or lost it): the client is
        # unknown, so a foreign recipient must be refused like one from an
        # unknown client, and the decision recorded.
        c = self.m.client()
        with c:
            r = c.mail("<%s>" % self.sender)
            self.assertContinue(r)
            r = c.rcpt("<u@example.net>")
            self.assertRelayDenied(r)
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertEqual(codes(v), ["relay_denied"])

    def test_second_mail_without_abort_starts_a_new_transaction(self):
        first = "first-" + self.sender
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % first, macros={"{auth_authen}": "alice"}))
            self.assertContinue(c.rcpt("<u@example.net>"))
            # a new MAIL: libmilter aborts the old transaction itself; the
            # authentication of the first must not carry over
            self.assertContinue(c.mail("<%s>" % self.sender, macros={"i": "Q2"}))
            self.assertRelayDenied(c.rcpt("<v@example.net>"))
            c.quit()
        v = self.m.wait_verdicts(by_sender(self.sender))[0]
        self.assertIsNone(v["auth_user"])
        self.assertEqual(v["rcpt"], "v@example.net")


class BrokenPackets(KjTestCase):

    def assertStillServing(self):
        self.assertTrue(self.m.alive(), "kanjiki-milter died:\n" + self.m.log_tail())
        with self.m.session("198.51.100.7") as c:
            self.assertContinue(c.mail("<%s>" % self.sender))
            r = c.rcpt("<after-broken@example.net>")
            self.assertRelayDenied(r)
            c.quit()

    def test_connect_with_unparsable_ipv4_address_ends_only_that_session(self):
        c = self.m.client()
        with c:
            c.send_packet(b"C", b"host.example\0" + b"4" + b"\x00\x19" + b"not-an-ip\0")
            try:
                r = c.read_reply()
            except Exception:
                r = None
            # libmilter gives up on the session; it must not be accepted
            self.assertTrue(r is None or r.cmd != "a", r)
        self.assertStillServing()

    def test_connect_with_truncated_data_ends_only_that_session(self):
        c = self.m.client()
        with c:
            c.send_packet(b"C", b"host.example")     # no NUL, no family
            try:
                r = c.read_reply()
            except Exception:
                r = None
            self.assertTrue(r is None or r.cmd != "a", r)
        self.assertStillServing()

    def test_oversized_packet_length_is_refused(self):
        c = self.m.client()
        with c:
            c.send_raw(b"\x7f\xff\xff\xffR<u@example.net>\0")
            self.assertTrue(c.at_eof(wait=3), "milter kept a session with a 2 GB packet")
        self.assertStillServing()

    def test_zero_length_and_unknown_command_packets_do_not_crash(self):
        c = self.m.client()
        with c:
            c.send_raw(b"\x00\x00\x00\x00")
            c.send_packet(b"Z", b"garbage")
            c.at_eof(wait=0.3)
        c = self.m.client(negotiate=False)
        with c:
            c.send_raw(b"\x00\x00\x00\x05Ojunk")   # OPTNEG too short
            c.at_eof(wait=0.3)
        self.assertStillServing()

    def test_connection_dropped_mid_transaction_leaves_daemon_serving(self):
        c = self.m.session("198.51.100.7")
        self.assertContinue(c.mail("<%s>" % self.sender))
        c.send_raw(b"\x00\x00\x00\x20R<half")       # half a packet, then gone
        c.close()
        time.sleep(0.1)
        self.assertStillServing()
