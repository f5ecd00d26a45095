#!/bin/bash
# t_relay.sh: the relay guard behind a real Postfix whose own relay settings
# are too loose (mynetworks = 127.0.0.0/8: Postfix alone relays for every
# loopback client, which this test first proves on a listener without the
# milter).  kanjiki.conf: local_domains = local.test, relay_domains =
# relay.test, trusted_networks = 127.0.0.10/32.
#
# Checks:
#  - without kanjiki the same Postfix relays for 127.0.0.20 (the hole is real);
#  - local delivery from an unauthorised client is accepted end to end
#    (250 queued, Postfix discards it), message verdict local_domain with
#    the queue id;
#  - relay from unauthorised 127.0.0.20 refused at RCPT with 554 5.7.1
#    "Relaying denied (kanjiki)", rcpt verdict relay_denied, one log line;
#  - relay_domains accepted from anyone;
#  - relay from the trusted network accepted and delivered (trusted_network);
#    its neighbour 127.0.0.11 refused;
#  - an IPv6 client ([::1], not trusted) refused;
#  - a message with a local and a foreign recipient: the local one delivered,
#    the foreign one refused, the message verdict lists only the local one;
#  - domain comparison: case-insensitive, one trailing dot ignored, exact on
#    labels (evillocal.test, sub.local.test, local.test.example.net are not
#    local);
#  - kanjiki query filters (--ip address and CIDR, --rcpt address and
#    domain, --sender, --action, --kind, --reason) and the csv/table formats
#    find exactly these verdicts.
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
e2e_init
kj_start
PF_PLAIN=1 pf_start milter
say "t_relay: Postfix on 127.0.0.1:$PF_PORT and [::1]:$PF_PORT (milter), 127.0.0.1:$PF_PLAIN_PORT (no milter)"

say "-- Postfix alone is an open relay for loopback clients"
smtp --port "$PF_PLAIN_PORT" --local-interface 127.0.0.20 --from nobody@origin.example \
	--to victim0@example.net --quit-after RCPT
expect_rcpt victim0@example.net 250
[ "$(query_count --rcpt victim0@example.net)" = 0 ] ||
	fail "a session on the listener without the milter produced a verdict"
ok "no verdict for the session that bypassed the milter"

say "-- local delivery from an unauthorised client"
smtp --local-interface 127.0.0.20 --from alice@origin.example --to bob@local.test
expect_rcpt bob@local.test 250
expect_queued "local delivery"
export QUEUE_ID
pf_log_wait "$QUEUE_ID: to=<bob@local.test>.*status=sent \(local delivery discarded\)" 10 ||
	fail "Postfix did not discard $QUEUE_ID"
ok "Postfix delivered $QUEUE_ID to the discard transport"
wait_verdict --kind message --ip 127.0.0.20 --rcpt bob@local.test
json_check "message verdict: accept, local_domain, queue id $QUEUE_ID, sender, stage eom" \
	'len(V) == 1 and V[0]["action"] == "accept" and "local_domain" in codes(V[0])
	 and V[0]["queue_id"] == E["QUEUE_ID"] and V[0]["sender"] == "alice@origin.example"
	 and V[0]["stage"] == "eom" and V[0]["monitor"] is False
	 and [r.lower() for r in V[0]["recipients"]] == ["bob@local.test"]'

say "-- relay from an unauthorised client (127.0.0.20)"
smtp --local-interface 127.0.0.20 --from mallory@origin.example --to victim1@example.net
expect_rcpt victim1@example.net "554 5.7.1" "Relaying denied (kanjiki)"
wait_verdict --kind rcpt --ip 127.0.0.20 --rcpt victim1@example.net
json_check "rcpt verdict: reject at rcpt, relay_denied, reply 554 5.7.1, sender" \
	'len(V) == 1 and V[0]["action"] == "reject" and V[0]["stage"] == "rcpt"
	 and codes(V[0]) == ["relay_denied"] and V[0]["reply"].startswith("554 5.7.1")
	 and "kanjiki" in V[0]["reply"] and V[0]["client_ip"] == "127.0.0.20"
	 and V[0]["sender"] == "mallory@origin.example" and V[0]["monitor"] is False
	 and V[0]["rcpt"].strip("<>") == "victim1@example.net"'
expect_log_line verdict client=127.0.0.20 "rcpt=<victim1@example.net>" action=reject stage=rcpt reasons=relay_denied
[ "$(log_count 'rcpt=<victim1@example\.net>')" = 1 ] ||
	fail "expected exactly one log line for victim1@example.net"
ok "exactly one log line for that verdict"

say "-- relay_domains are accepted from anyone"
smtp --local-interface 127.0.0.20 --from alice@origin.example --to backup@relay.test
expect_rcpt backup@relay.test 250
expect_queued "relay domain"
wait_verdict --kind message --rcpt backup@relay.test
json_check "message verdict: relay_domain" \
	'V[0]["action"] == "accept" and "relay_domain" in codes(V[0])'

say "-- relay from the trusted network (127.0.0.10/32)"
smtp --local-interface 127.0.0.10 --from office@local.test --to partner@example.net
expect_rcpt partner@example.net 250
expect_queued "relay from trusted network"
pf_log_wait "$QUEUE_ID: to=<partner@example.net>.*status=sent" 10 ||
	fail "Postfix did not pass $QUEUE_ID to its (discard) transport"
ok "Postfix relayed $QUEUE_ID (to the discard transport)"
wait_verdict --kind message --ip 127.0.0.10 --rcpt partner@example.net
json_check "message verdict: accept, trusted_network" \
	'V[0]["action"] == "accept" and "trusted_network" in codes(V[0])'

smtp --local-interface 127.0.0.11 --from office@local.test --to partner2@example.net --quit-after RCPT
expect_rcpt partner2@example.net "554 5.7.1" "kanjiki"
wait_verdict --kind rcpt --ip 127.0.0.11 --reason relay_denied

say "-- IPv6 client [::1] (not trusted)"
smtp --server ::1 --port "$PF_PORT" -6 --from mallory@origin.example --to victim6@example.net --quit-after RCPT
expect_rcpt victim6@example.net "554 5.7.1" "Relaying denied (kanjiki)"
wait_verdict --kind rcpt --ip ::1 --rcpt victim6@example.net
json_check "IPv6 verdict: client_ip ::1, relay_denied" \
	'V[0]["client_ip"] == "::1" and codes(V[0]) == ["relay_denied"]'

say "-- one local and one foreign recipient in one message"
smtp --local-interface 127.0.0.20 --from mixed@origin.example --to carol@local.test,victim2@example.net
expect_rcpt carol@local.test 250
expect_rcpt victim2@example.net "554 5.7.1" "kanjiki"
expect_queued "the local recipient only"
pf_log_wait "$QUEUE_ID: to=<carol@local.test>.*status=sent" 10 || fail "carol not delivered"
grep -q "$QUEUE_ID: to=<victim2@example.net>" "$T/postfix/maillog" &&
	fail "Postfix delivered the refused recipient victim2@example.net"
ok "only carol@local.test delivered"
wait_verdict --kind message --sender mixed@origin.example
json_check "message verdict lists only the accepted recipient" \
	'[r.lower() for r in V[0]["recipients"]] == ["carol@local.test"] and V[0]["queue_id"] == E["QUEUE_ID"]'
wait_verdict --kind rcpt --sender mixed@origin.example
json_check "rcpt verdict for victim2@example.net" \
	'len(V) == 1 and V[0]["rcpt"].strip("<>") == "victim2@example.net"'

say "-- domain comparison (case, trailing dot, exact labels)"
smtp --local-interface 127.0.0.20 --from domains@origin.example \
	--to 'd1@LOCAL.TEST.,d2@Local.Test,d3@evillocal.test,d4@sub.local.test,d5@local.test.example.net,d6@relay.test,d7@RELAY.TEST.,d8@xrelay.test'
for a in d1@LOCAL.TEST. d2@Local.Test d6@relay.test d7@RELAY.TEST.; do
	expect_rcpt "$a" 250
done
for a in d3@evillocal.test d4@sub.local.test d5@local.test.example.net d8@xrelay.test; do
	expect_rcpt "$a" "554 5.7.1" "Relaying denied (kanjiki)"
done
expect_queued "the four local/relay-domain recipients"
wait_verdict --count 4 --kind rcpt --sender domains@origin.example
json_check "4 rcpt verdicts, all relay_denied, for d3 d4 d5 d8" \
	'len(V) == 4 and all(codes(v) == ["relay_denied"] for v in V)
	 and sorted(v["rcpt"].strip("<>").split("@")[0] for v in V) == ["d3", "d4", "d5", "d8"]'
wait_verdict --kind message --sender domains@origin.example
json_check "message verdict: d1 d2 local_domain, d6 d7 relay_domain" \
	'sorted(r.split("@")[0] for r in V[0]["recipients"]) == ["d1", "d2", "d6", "d7"]
	 and codes(V[0]).count("local_domain") == 2 and codes(V[0]).count("relay_domain") == 2'

say "-- SMTPUTF8 (UTF-8 addresses): local accepted, foreign refused"
raw_smtp 127.0.0.20 'EHLO utf8.example' 'MAIL FROM:<s\xc3\xa9nder@origin.example> SMTPUTF8' \
	'RCPT TO:<m\xc3\xbcller@local.test>' 'RCPT TO:<m\xc3\xbcller@ex\xc3\xa4mple.net>' DATA QUIT
expect_rcpt 'm\xc3\xbcller@local.test' 250
expect_rcpt 'm\xc3\xbcller@ex\xc3\xa4mple.net' "554 5.7.1" "Relaying denied (kanjiki)"
expect_queued "UTF-8 local recipient"
wait_verdict --kind rcpt --ip 127.0.0.20 --rcpt "$(printf 'm\xc3\xbcller@ex\xc3\xa4mple.net')"
json_check "UTF-8 verdict: relay_denied, recipient and sender kept as UTF-8" \
	'codes(V[0]) == ["relay_denied"] and V[0]["rcpt"].strip("<>") == "m\u00fcller@ex\u00e4mple.net"
	 and V[0]["sender"] == "s\u00e9nder@origin.example"'

say "-- kanjiki query filters"
# refusals from 127.0.0.20 in this test: victim1, victim2, d3 d4 d5 d8, müller
n=$(query_count --ip 127.0.0.20 --kind rcpt --action reject --reason relay_denied)
[ "$n" = 7 ] || fail "--ip 127.0.0.20 --kind rcpt --action reject --reason relay_denied: $n verdicts, expected 7"
ok "--ip 127.0.0.20 --kind rcpt --action reject --reason relay_denied: 7"
n=$(query_count --ip 127.0.0.0/24 --kind rcpt)
[ "$n" = 8 ] || fail "--ip 127.0.0.0/24 --kind rcpt: $n verdicts, expected 8 (7 from .20, 1 from .11)"
ok "--ip 127.0.0.0/24 --kind rcpt: 8"
n=$(query_count --ip 127.0.0.10 --action reject)
[ "$n" = 0 ] || fail "--ip 127.0.0.10 --action reject: $n verdicts, expected 0"
ok "--ip 127.0.0.10 --action reject: 0"
n=$(query_count --ip ::1/128)
[ "$n" = 1 ] || fail "--ip ::1/128: $n verdicts, expected 1"
ok "--ip ::1/128: 1"
n=$(query_count --rcpt example.net --action reject)
# victim1 victim2 victim6 partner2; not d5@local.test.example.net (another domain)
[ "$n" = 4 ] || fail "--rcpt example.net --action reject: $n, expected 4"
ok "--rcpt example.net --action reject: 4 (domain form, exact domain)"
n=$(query_count --rcpt victim1@example.net)
[ "$n" = 1 ] || fail "--rcpt victim1@example.net: $n, expected 1"
ok "--rcpt victim1@example.net: 1"
n=$(query_count --sender alice@origin.example --action accept --kind message)
[ "$n" = 2 ] || fail "--sender alice@origin.example --action accept --kind message: $n, expected 2"
ok "--sender alice@origin.example --action accept --kind message: 2"
n=$(query_count --since 10m --limit 3)
[ "$n" = 3 ] || fail "--since 10m --limit 3: $n rows"
ok "--limit 3: 3 rows"
n=$(query_count --until 2000-01-01)
[ "$n" = 0 ] || fail "--until 2000-01-01: $n rows, expected 0"
ok "--until 2000-01-01: 0 rows"

kq query --ip 127.0.0.20 --kind rcpt --format csv >"$T/q.csv" 2>&1 || fail "query --format csv failed: $(cat "$T/q.csv")"
python3 - "$T/q.csv" <<'EOF' || { cat "$T/q.csv"; fail "csv output"; }
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert len(rows) == 7, len(rows)
assert all(r["client_ip"] == "127.0.0.20" and r["action"] == "reject" for r in rows)
assert any("victim1@example.net" in r["rcpt"] for r in rows)
EOF
ok "--format csv: header + 7 rows with client_ip/action/rcpt"
kq query --ip 127.0.0.20 --kind rcpt --format table >"$T/q.txt" 2>&1 || fail "query --format table failed"
grep -q 'victim1@example.net' "$T/q.txt" && grep -q '127.0.0.20' "$T/q.txt" &&
	grep -q 'relay_denied' "$T/q.txt" || { cat "$T/q.txt"; fail "table lacks the verdict"; }
ok "--format table shows client, recipient, reason"

done_ok
