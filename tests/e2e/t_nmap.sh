#!/bin/bash
# t_nmap.sh: nmap's smtp-open-relay script (16 relay tricks) against the
# private Postfix, from 127.0.0.1, which is in Postfix's mynetworks but NOT
# in kanjiki's trusted_networks (127.0.0.10/32).
#
# Checks:
#  - without kanjiki (a second smtpd listener of the same Postfix, milter
#    off) nmap reports an open relay, 16 of 16 tests;
#  - with kanjiki nmap finds no open relay, and each of the 16 refusals is in
#    the verdict store (client 127.0.0.1, kind rcpt, action reject) with the
#    reason code of its trick;
#  - with the script's target domain set to our own local domain
#    (smtp-open-relay.domain=local.test), the only "relays" nmap counts are
#    the four plain local deliveries to relaytest@local.test, which a relay
#    guard must accept; all twelve trick variants are refused.
#
# The portrule of smtp-open-relay only fires on ports 25/465/587 or a port
# identified as smtp; "+smtp-open-relay" forces it on our high port.
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
command -v nmap >/dev/null || fail "nmap is not installed"
e2e_init
kj_start
PF_PLAIN=1 pf_start milter
say "t_nmap: Postfix on 127.0.0.1:$PF_PORT (milter), 127.0.0.1:$PF_PLAIN_PORT (no milter)"

# open_relay PORT DOMAIN: run the script, output in $T/nmap.out
open_relay() {
	printf '\n=== nmap -Pn -vv -p %s --script +smtp-open-relay --script-args smtp-open-relay.domain=%s,smtp-open-relay.ip=127.0.0.1 127.0.0.1\n' "$1" "$2" >>"$SMTP_LOG"
	nmap -Pn -vv -p "$1" --script +smtp-open-relay \
		--script-args "smtp-open-relay.domain=$2,smtp-open-relay.ip=127.0.0.1" \
		127.0.0.1 >"$T/nmap.out" 2>&1
	sed -n '/^PORT/,/^$/p' "$T/nmap.out" >>"$SMTP_LOG"
}

say "-- without kanjiki: an open relay"
open_relay "$PF_PLAIN_PORT" example.net
grep -q 'smtp-open-relay: Server is an open relay (16/16 tests)' "$T/nmap.out" ||
	{ cat "$T/nmap.out"; fail "expected 'open relay (16/16 tests)' without the milter"; }
ok "nmap: Server is an open relay (16/16 tests)"
[ "$(query_count)" = 0 ] || fail "the listener without milter produced verdicts"

say "-- with kanjiki: no open relay"
open_relay "$PF_PORT" example.net
grep -q "smtp-open-relay: Server doesn't seem to be an open relay, all tests failed" "$T/nmap.out" ||
	{ cat "$T/nmap.out"; fail "expected 'doesn't seem to be an open relay' with the milter"; }
ok "nmap: Server doesn't seem to be an open relay, all tests failed"
expect_verdicts --ip 127.0.0.1 --kind rcpt --action reject -- \
	relaytest@example.net relay_denied \
	'relaytest%example.net@[127.0.0.1]' percent_hack \
	'relaytest%example.net@mx.local.test' percent_hack \
	'"relaytest@example.net"' quoted_local \
	'"relaytest%example.net"' quoted_local \
	'relaytest@example.net@[127.0.0.1]' double_at \
	'"relaytest@example.net"@[127.0.0.1]' quoted_local \
	'relaytest@example.net@mx.local.test' double_at \
	'@[127.0.0.1]:relaytest@example.net' source_route \
	'@mx.local.test:relaytest@example.net' source_route \
	'example.net!relaytest' bang_path \
	'example.net!relaytest@[127.0.0.1]' bang_path \
	'example.net!relaytest@mx.local.test' bang_path
n=$(query_count --ip 127.0.0.1 --kind rcpt --action reject)
[ "$n" = 16 ] || fail "expected 16 refusals from 127.0.0.1, found $n"
ok "16 refusals from 127.0.0.1 in the verdict store"
n=$(query_count --ip 127.0.0.1 --reason relay_denied)
[ "$n" = 4 ] || fail "expected 4 relay_denied from 127.0.0.1, found $n"
ok "4 of them relay_denied (plain relaytest@example.net), 12 routing tricks"
expect_log_line verdict client=127.0.0.1 'rcpt=<example.net!relaytest>' action=reject reasons=bang_path

say "-- smtp-open-relay.domain=local.test (our own domain)"
open_relay "$PF_PORT" local.test
grep -q 'smtp-open-relay: Server is an open relay (4/16 tests)' "$T/nmap.out" ||
	{ cat "$T/nmap.out"; fail "expected exactly the 4 plain local deliveries to be accepted"; }
accepted=$(grep -c -- '-> RCPT TO:<relaytest@local.test>$' "$T/nmap.out")
[ "$accepted" = 4 ] ||
	{ cat "$T/nmap.out"; fail "the 4 accepted tests are not all RCPT TO:<relaytest@local.test>"; }
ok "nmap counts 4/16: all four are RCPT TO:<relaytest@local.test> (local delivery), every trick refused"
n=$(query_count --ip 127.0.0.1 --kind rcpt --action reject)
[ "$n" = 28 ] || fail "expected 16 + 12 = 28 refusals from 127.0.0.1, found $n"
ok "12 more refusals recorded (28 in all)"

done_ok
