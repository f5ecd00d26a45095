#!/bin/bash
# t_auth.sh: the three ways a client becomes authorised to relay, through a
# real Postfix: SMTP AUTH (Cyrus SASL, sasldb in the test directory), and
# POP/IMAP-before-SMTP grants made with `kanjiki popauth`.
#
# Checks:
#  - AUTH PLAIN and AUTH LOGIN as alice@local.test let 127.0.0.21 relay:
#    250, delivered, message verdict smtp_auth with auth_user;
#  - a failed login (535 from Postfix) leaves the client unauthorised: the
#    relay attempt that follows is refused by kanjiki (relay_denied);
#  - 127.0.0.30 is refused, `kanjiki popauth add 127.0.0.30 --user bob` lets
#    it relay (popauth_grant), `popauth list` shows the grant, a neighbour
#    (127.0.0.31) stays refused, a routing trick stays refused under the
#    grant, and `popauth del` takes it away again;
#  - a grant with --ttl 3s works, then expires: refused again, gone from
#    `popauth list`, still in `popauth list --all`;
#  - an IPv4-mapped grant (::ffff:127.0.0.32) is stored as 127.0.0.32 and
#    works for that IPv4 client;
#  - an IPv6 grant for ::1 lets [::1] relay; with popauth_ipv6_prefix = 64
#    (set by SIGHUP reload) a grant for ::2 covers ::1 (same /64), with the
#    default 128 it does not.
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
e2e_init
kj_start
pf_start milter
say "t_auth: Postfix on 127.0.0.1:$PF_PORT and [::1]:$PF_PORT"

# relay_try TAG CLIENT-ARGS...: one message to TAG@example.net (swaks goes on
# to DATA when the recipient is accepted, so that a message verdict exists)
relay_try() {
	local tag=$1
	shift
	smtp "$@" --from "$tag@origin.example" --to "$tag@example.net"
}

say "-- SMTP AUTH through Postfix"
smtp --local-interface 127.0.0.21 --auth PLAIN --auth-user alice --auth-password wonderland \
	--from alice@local.test --to friend1@example.net
grep -q '^<-  235 ' "$T/last.smtp" || fail "AUTH PLAIN did not succeed"
ok "AUTH PLAIN alice: 235"
expect_rcpt friend1@example.net 250
expect_queued "relay after AUTH PLAIN"
wait_verdict --kind message --rcpt friend1@example.net
json_check "message verdict: smtp_auth, auth_user alice@local.test, client 127.0.0.21" \
	'"smtp_auth" in codes(V[0]) and V[0]["auth_user"] in ("alice@local.test", "alice")
	 and V[0]["client_ip"] == "127.0.0.21"'

smtp --local-interface 127.0.0.21 --auth LOGIN --auth-user alice --auth-password wonderland \
	--from alice@local.test --to friend2@example.net --quit-after RCPT
grep -q '^<-  235 ' "$T/last.smtp" || fail "AUTH LOGIN did not succeed"
expect_rcpt friend2@example.net 250

smtp --local-interface 127.0.0.21 --auth PLAIN --auth-user alice --auth-password wrong --auth-optional \
	--from alice@local.test --to friend3@example.net --quit-after RCPT
grep -q '^<\*\* 535 ' "$T/last.smtp" || fail "the wrong password was not refused by Postfix (535)"
ok "wrong password: 535 from Postfix"
expect_rcpt friend3@example.net "554 5.7.1" "Relaying denied (kanjiki)"
wait_verdict --kind rcpt --rcpt friend3@example.net --reason relay_denied
json_check "no auth_user on the refused verdict" 'not V[0].get("auth_user")'

say "-- POP-before-SMTP grant for 127.0.0.30"
relay_try pop1 --local-interface 127.0.0.30
expect_rcpt pop1@example.net "554 5.7.1" "kanjiki"
kq_kanjiki popauth add 127.0.0.30 --user bob >"$T/out" 2>&1 || fail "popauth add failed: $(cat "$T/out")"
ok "kanjiki popauth add 127.0.0.30 --user bob"
kq_kanjiki popauth list --format json >"$T/out" 2>&1 || fail "popauth list failed: $(cat "$T/out")"
grep -q '127\.0\.0\.30' "$T/out" && grep -q 'bob' "$T/out" || { cat "$T/out"; fail "popauth list lacks 127.0.0.30/bob"; }
ok "popauth list shows 127.0.0.30 (bob)"
sleep 1 # popauth_poll = 200ms
relay_try pop2 --local-interface 127.0.0.30
expect_rcpt pop2@example.net 250
smtp --local-interface 127.0.0.30 --from pop3@origin.example --to pop3@example.net
expect_rcpt pop3@example.net 250
expect_queued "relay under a grant"
wait_verdict --kind message --rcpt pop3@example.net
json_check "message verdict: popauth_grant" '"popauth_grant" in codes(V[0])'
relay_try pop4 --local-interface 127.0.0.31
expect_rcpt pop4@example.net "554 5.7.1" "kanjiki"
note "(the neighbour 127.0.0.31 has no grant)"
smtp --local-interface 127.0.0.30 --from pop5@origin.example --to 'pop5%example.net@local.test' --quit-after RCPT
expect_rcpt 'pop5%example.net@local.test' "554 5.7.1" "(percent_hack)"
kq_kanjiki popauth del 127.0.0.30 >"$T/out" 2>&1 || fail "popauth del failed: $(cat "$T/out")"
ok "kanjiki popauth del 127.0.0.30"
sleep 1
relay_try pop6 --local-interface 127.0.0.30
expect_rcpt pop6@example.net "554 5.7.1" "Relaying denied (kanjiki)"
expect_verdicts --ip 127.0.0.30 -- pop1@example.net relay_denied pop2@example.net popauth_grant \
	pop3@example.net popauth_grant 'pop5%example.net@local.test' percent_hack pop6@example.net relay_denied

# 3s rather than 2s: expiry times have whole-second resolution, so a 2s
# grant may live only a little over 1s, too close to the first check below
say "-- a grant that expires (--ttl 3s)"
kq_kanjiki popauth add 127.0.0.35 --ttl 3s >"$T/out" 2>&1 || fail "popauth add --ttl 3s failed: $(cat "$T/out")"
t0=$(date +%s.%N)
sleep 0.8
relay_try exp1 --local-interface 127.0.0.35
expect_rcpt exp1@example.net 250
elapsed=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
note "(accepted ${elapsed}s after the grant)"
python3 -c "import time; time.sleep(max(0, $t0 + 3.6 - time.time()))"
relay_try exp2 --local-interface 127.0.0.35
expect_rcpt exp2@example.net "554 5.7.1" "Relaying denied (kanjiki)"
expect_verdicts --ip 127.0.0.35 -- exp1@example.net popauth_grant exp2@example.net relay_denied
kq popauth list --format json >"$T/out" 2>&1 || fail "popauth list failed: $(cat "$T/out")"
grep -q '127\.0\.0\.35' "$T/out" && { cat "$T/out"; fail "popauth list still shows the expired grant"; }
ok "popauth list: expired grant not shown"
kq popauth list --all --format json >"$T/out" 2>&1 || fail "popauth list --all failed: $(cat "$T/out")"
grep -q '127\.0\.0\.35' "$T/out" || { cat "$T/out"; fail "popauth list --all lacks the expired grant"; }
ok "popauth list --all: expired grant shown"

say "-- IPv4-mapped IPv6 grant"
kq_kanjiki popauth add ::ffff:127.0.0.32 >"$T/out" 2>&1 || fail "popauth add ::ffff:127.0.0.32 failed: $(cat "$T/out")"
kq popauth list --format json >"$T/out" 2>&1
grep -q '"127\.0\.0\.32"' "$T/out" || { cat "$T/out"; fail "::ffff:127.0.0.32 not stored as 127.0.0.32"; }
ok "stored as 127.0.0.32"
sleep 1
relay_try mapped --local-interface 127.0.0.32
expect_rcpt mapped@example.net 250

say "-- IPv6 grants"
relay_try v6a --server ::1 --port "$PF_PORT" -6
expect_rcpt v6a@example.net "554 5.7.1" "kanjiki"
kq_kanjiki popauth add ::2 >"$T/out" 2>&1 || fail "popauth add ::2 failed: $(cat "$T/out")"
sleep 1
relay_try v6b --server ::1 --port "$PF_PORT" -6
expect_rcpt v6b@example.net "554 5.7.1" "kanjiki"
note "(a grant for ::2 does not cover ::1 with popauth_ipv6_prefix = 128)"
kj_conf <<EOF
popauth_ipv6_prefix = 64
EOF
kill -HUP "$KJ_PID"
sleep 1.5
kill -0 "$KJ_PID" 2>/dev/null || fail "kanjiki-milter died on SIGHUP"
grep -qi 'reload refused' "$KJ_LOG" && fail "SIGHUP reload refused"
relay_try v6c --server ::1 --port "$PF_PORT" -6
expect_rcpt v6c@example.net 250
note "(after SIGHUP with popauth_ipv6_prefix = 64 the grant for ::2 covers ::1)"
kq_kanjiki popauth del ::2 >"$T/out" 2>&1 || fail "popauth del ::2 failed: $(cat "$T/out")"
kq_kanjiki popauth add ::1 >"$T/out" 2>&1 || fail "popauth add ::1 failed: $(cat "$T/out")"
sleep 1
relay_try v6d --server ::1 --port "$PF_PORT" -6
expect_rcpt v6d@example.net 250
expect_verdicts --ip ::1 -- v6a@example.net relay_denied v6b@example.net relay_denied \
	v6c@example.net popauth_grant v6d@example.net popauth_grant
n=$(query_count --ip ::1 --kind rcpt)
[ "$n" = 2 ] || fail "expected 2 refusals for ::1, found $n"
ok "exactly 2 refusals for ::1 (v6a, v6b)"

done_ok
