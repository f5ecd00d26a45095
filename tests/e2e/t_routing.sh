#!/bin/bash
# t_routing.sh: recipients that hide routing are refused whatever the client
# (unauthorised, trusted network, SMTP AUTH) and whatever the domain, with
# 554 5.7.1, "kanjiki" and the name of the trick in the reply and the trick's
# reason code in the verdict; the server's own IP literals, bare postmaster
# and a harmless quoted local part still pass; allow_routing permits a trick
# without opening relaying, and several tricks at once stay refused.
#
# Postfix itself (mynetworks = 127.0.0.0/8) accepts every one of these
# tricks from these clients, which the first block proves on a listener
# without the milter; only "u@" (empty domain) is refused by Postfix
# before any milter sees it (501 5.1.3), so kanjiki's empty_domain check is
# covered by the milter-protocol tests, not here.
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
e2e_init
kj_conf <<EOF
local_addresses = 192.0.2.25
EOF
kj_start
PF_PLAIN=1 pf_start milter
say "t_routing: Postfix on 127.0.0.1:$PF_PORT (milter), 127.0.0.1:$PF_PLAIN_PORT (no milter)"

# recipient  reason-code  text-in-reply, per client kind; the local part
# carries the client tag so that every verdict is told apart.
tricks() {
	local t=$1
	cat <<EOF
$t-pct%example.net@local.test percent_hack (percent_hack)
$t-pctlit%example.net@[127.0.0.1] percent_hack (percent_hack)
example.net!$t-bang bang_path (bang_path)
example.net!$t-banglocal@local.test bang_path (bang_path)
$t-dbl@example.net@local.test double_at (double_at)
"$t-q@example.net"@local.test quoted_local (quoted_local)
"$t-q%example.net"@local.test quoted_local (quoted_local)
"$t-qbare@example.net" quoted_local (quoted_local)
@local.test:$t-src@example.net source_route (source_route)
@[127.0.0.1]:$t-srclit@example.net source_route (source_route)
$t-unqualified unqualified (unqualified)
$t-lit@[192.0.2.1] ip_literal IP literal
EOF
}

# run_tricks TAG SWAKS-ARGS...: one session, every trick as a recipient.
run_tricks() {
	local tag=$1 addrs= a code text pairs=()
	shift
	while read -r a code text; do
		addrs=${addrs:+$addrs,}$a
	done < <(tricks "$tag")
	smtp "$@" --from "$tag@origin.example" --to "$addrs" --quit-after RCPT
	while read -r a code text; do
		expect_rcpt "$a" "554 5.7.1" "kanjiki" "$text"
		pairs+=("$a" "$code")
	done < <(tricks "$tag")
	expect_verdicts --kind rcpt --action reject --sender "$tag@origin.example" -- "${pairs[@]}"
	local n
	n=$(query_count --kind rcpt --sender "$tag@origin.example")
	[ "$n" = $((${#pairs[@]} / 2)) ] ||
		fail "expected exactly $((${#pairs[@]} / 2)) rcpt verdicts for $tag, found $n"
	ok "exactly $n rcpt verdicts for $tag"
}

say "-- Postfix alone accepts every trick from a loopback client"
addrs=
while read -r a code text; do addrs=${addrs:+$addrs,}$a; done < <(tricks plain)
smtp --port "$PF_PLAIN_PORT" --local-interface 127.0.0.20 --from plain@origin.example --to "$addrs" --quit-after RCPT
while read -r a code text; do expect_rcpt "$a" 250; done < <(tricks plain)
smtp --port "$PF_PLAIN_PORT" --local-interface 127.0.0.20 --from plain@origin.example --to 'plain-empty@' --quit-after RCPT
expect_rcpt 'plain-empty@' "501 5.1.3"
note "(Postfix refuses u@ itself: the milter never sees an empty domain from Postfix)"

say "-- every trick refused for an unauthorised client (127.0.0.20)"
run_tricks untrusted --local-interface 127.0.0.20

say "-- every trick refused for the trusted network (127.0.0.10)"
run_tricks trusted --local-interface 127.0.0.10

say "-- every trick refused for an SMTP AUTH client (alice, from 127.0.0.21)"
run_tricks sasl --local-interface 127.0.0.21 --auth PLAIN --auth-user alice --auth-password wonderland
grep -q '^<-  235 ' "$T/last.smtp" || fail "SMTP AUTH did not succeed, so this block proved nothing"
ok "SMTP AUTH had succeeded in that session"

say "-- empty domain: refused by Postfix before kanjiki"
smtp --local-interface 127.0.0.20 --from empty@origin.example --to 'u@' --quit-after RCPT
expect_rcpt 'u@' "501 5.1.3"

say "-- what is not a trick passes (unauthorised client 127.0.0.20)"
smtp --local-interface 127.0.0.20 --from harmless@origin.example \
	--to 'own@[127.0.0.1],listed@[192.0.2.25],postmaster,"quoted"@local.test,"first.last"@local.test'
for a in 'own@[127.0.0.1]' 'listed@[192.0.2.25]' postmaster '"quoted"@local.test' '"first.last"@local.test'; do
	expect_rcpt "$a" 250
done
expect_queued
expect_verdicts --kind message --sender harmless@origin.example -- \
	'own@[127.0.0.1]' own_ip_literal 'listed@[192.0.2.25]' own_ip_literal \
	postmaster postmaster '"quoted"@local.test' local_domain

say "-- IP literals over IPv6: [IPv6:::1] is the server's own, another is not"
smtp --server ::1 --port "$PF_PORT" -6 --from v6@origin.example \
	--to 'own6@[IPv6:::1],other6@[IPv6:2001:db8::1]' --quit-after RCPT
expect_rcpt 'own6@[IPv6:::1]' 250
expect_rcpt 'other6@[IPv6:2001:db8::1]' "554 5.7.1" "kanjiki" "IP literal"
expect_verdicts --kind rcpt --ip ::1 -- 'other6@[IPv6:2001:db8::1]' ip_literal

say "-- allow_routing = percent_hack bang_path: permitted, but never opens relaying"
kj_stop || fail "kanjiki-milter did not stop cleanly"
kj_conf <<EOF
local_addresses = 192.0.2.25
allow_routing = percent_hack bang_path
EOF
kj_start
smtp --local-interface 127.0.0.20 --from allow@origin.example \
	--to 'a1%local.test@local.test,a2%example.net@local.test,example.net!a3@local.test,example.net!a4%example.org@local.test,a5@example.net@local.test,"a6@example.net"@local.test'
expect_rcpt 'a1%local.test@local.test' 250
expect_rcpt 'a2%example.net@local.test' "554 5.7.1" "Relaying denied (kanjiki)"
expect_rcpt 'example.net!a3@local.test' "554 5.7.1" "Relaying denied (kanjiki)"
expect_rcpt 'example.net!a4%example.org@local.test' "554 5.7.1" "kanjiki"
expect_rcpt 'a5@example.net@local.test' "554 5.7.1" "(double_at)"
expect_rcpt '"a6@example.net"@local.test' "554 5.7.1" "(quoted_local)"
expect_verdicts --sender allow@origin.example -- \
	'a1%local.test@local.test' local_domain \
	'a2%example.net@local.test' relay_denied \
	'example.net!a3@local.test' relay_denied \
	'example.net!a4%example.org@local.test' multiple_tricks \
	'a5@example.net@local.test' double_at \
	'"a6@example.net"@local.test' quoted_local
smtp --local-interface 127.0.0.10 --from allowtrusted@origin.example \
	--to 'b1%example.net@local.test,example.net!b2@local.test,example.net!b3%example.org@local.test'
expect_rcpt 'b1%example.net@local.test' 250
expect_rcpt 'example.net!b2@local.test' 250
expect_rcpt 'example.net!b3%example.org@local.test' "554 5.7.1" "kanjiki"
expect_verdicts --sender allowtrusted@origin.example -- \
	'b1%example.net@local.test' trusted_network \
	'example.net!b2@local.test' trusted_network \
	'example.net!b3%example.org@local.test' multiple_tricks

done_ok
