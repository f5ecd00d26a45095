#!/bin/bash
# t_snowshoe.sh: the snowshoe detector acting (snowshoe = enforce) through a
# real Postfix, the real kanjiki-milter and the test DNS (tests/dnsenv:
# dnsmasq serves the PTR and A records the milter checks itself).
#
# Many 127.0.0.x sources would be no address block at all, so the clients
# are benchmark and documentation addresses given to Postfix with XCLIENT
# (smtpd_authorized_xclient_hosts = 127.0.0.0/8): Postfix then treats the
# session as coming from that address, relay restrictions and milters
# included.
#
# Checks (shipped rules/20-snowshoe.rules, retry delay shortened to 2 s):
#  - a burst from 198.18.50.0/24 (a new address, *.localhost HELO and random
#    .pink sender domain per message, no PTR name): the first two messages
#    pass, then the end of DATA is answered 451 4.7.1 "Mail from
#    198.18.50.0/24 is delayed, try again later" (verdict tempfail, retry
#    "first attempt", cluster signals); nothing is refused before a cluster
#    shows;
#  - that message sent again at once is delayed again; after the retry
#    delay it is accepted and tagged (retry "retried: tagged");
#  - the block goes on: 550 5.7.1 "Mail from 198.18.50.0/24 looks like
#    snowshoe spam", verdict reject with its block signals;
#  - legitimate bulk: 8 messages from 203.0.113.10-17 whose HELO is their
#    PTR name (out0..7.bulk.example.com in the test DNS, each resolving back,
#    checked by the milter through its own resolver) are all accepted, block
#    operator:example.com, PTR confirmed;
#  - kanjiki clusters lists 198.18.50.0/24 after a restart (state saved).
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
e2e_init
dns_start   # tests/dnsenv, stopped at exit; $DNS_FRONT etc.

RULES_SRC=$E2E_DIR/../../rules
cp "$RULES_SRC/platforms.list" "$RULES_SRC/risky-tlds.list" "$T/rules/"
# the shipped snowshoe rules, with a short retry delay for the test
sed 's/^snowshoe retry-delay .*/snowshoe retry-delay 2s/' "$RULES_SRC/20-snowshoe.rules" \
	>"$T/rules/20-snowshoe.rules"
grep -q '^snowshoe retry-delay 2s$' "$T/rules/20-snowshoe.rules" ||
	fail "rules/20-snowshoe.rules has no retry-delay line to shorten"

kj_conf <<EOF
snowshoe = enforce
dns_servers = $DNS_FRONT
dns_timeout = 2s
EOF
kj_start
pf_start milter "smtpd_authorized_xclient_hosts = 127.0.0.0/8"

# xsend ADDR HELO SENDER SUBJECT: one message to u@local.test as if from
# ADDR (XCLIENT; NAME unavailable: the milter finds the PTR name itself).
xsend() {
	smtp --xclient-addr "$1" --xclient-name "[UNAVAILABLE]" --xclient-helo "$2" \
		--ehlo "$2" --from "$3" --to u@local.test \
		--header "Subject: $4" --header "From: $4 <$3>" --body "About $4"
}

# data_reply: the reply to the end of DATA in the last transcript.
data_reply() {
	sed -n '/^ -> \.$/,$p' "$T/last.smtp" | sed -n 's/^\(<-\|<\*\*\) *//p' | head -n 1
}

# snow EXPR: a Python expression on S, the snowshoe_score reason of V[0].
snow() {
	json_check "$1" "(lambda S: $2)([r for r in V[0]['reasons'] if r['code'] == 'snowshoe_score'][0])"
}

say "1. a burst from 198.18.50.0/24: delayed, then rejected"
LABELS=(ug53nhrhs09t uafyh7o09lz7 qx7kz2mw9p zk4v8q1xj3 w9x2cq8vbn p3mf7x0qzt h8v2kx9qwe
	j4z9xq2vmc k2v9x8q1zm m8q3z7vx2k v7k2q9zx1m)
# different texts at first (numbers alone would not do: fingerprints ignore
# them), one campaign text once the block has been delayed
WORDS=(invoice garden meeting holiday ticket refund lottery parcel)
first_tf= first_rj= accepted=0
for i in $(seq 0 10); do
	from="n$i@${LABELS[$i]}.pink"
	if [ -z "$first_tf" ]; then subject="Your ${WORDS[$((i % 8))]}"; else subject="Your prize"; fi
	xsend "198.18.50.$((20 + i))" "ary$((50 + i)).localhost" "$from" "$subject"
	r=$(data_reply)
	note "message $i from 198.18.50.$((20 + i)): $r"
	case $r in
	250*) accepted=$((accepted + 1)) ;;
	451*) [ -n "$first_tf" ] || { first_tf=$i; tf_subject=$subject; } ;;
	550*) [ -n "$first_rj" ] || first_rj=$i ;;
	*) fail "unexpected reply to DATA: $r" ;;
	esac
	[ -n "$first_rj" ] && break
	# the delayed message comes back before the block sends more: see 2.
	[ "$first_tf" = "$i" ] && break
done
[ -n "$first_tf" ] || fail "the burst was never delayed"
[ "$accepted" -ge 2 ] || fail "fewer than 2 messages passed before a cluster could show ($accepted)"
ok "first $accepted messages passed, delayed at message $first_tf"
tf_from="n$first_tf@${LABELS[$first_tf]}.pink"
wait_verdict --sender "$tf_from"
json_check "delayed message: verdict tempfail with the 451 4.7.1 reply" \
	'V[0]["action"] == "tempfail" and V[0]["reply"] == "451 4.7.1 Mail from 198.18.50.0/24 is delayed, try again later"'
snow "delayed message: first attempt, cluster signals, no PTR name" \
	'S["retry"] == "first attempt" and "signal_block_new_domains" in S and S["ptr"] == "- (none)"'

say "2. the delayed message again: at once (delayed), after the retry delay (tagged)"
tf_addr="198.18.50.$((20 + first_tf))"
xsend "$tf_addr" "ary$((50 + first_tf)).localhost" "$tf_from" "$tf_subject"
r=$(data_reply)
case $r in 451*) ok "resent at once: $r" ;; *) fail "resent at once: expected 451, got $r" ;; esac
sleep 2.5
xsend "$tf_addr" "ary$((50 + first_tf)).localhost" "$tf_from" "$tf_subject"
r=$(data_reply)
case $r in 250*) ok "retried after the delay: accepted ($r)" ;; *) fail "retry: expected 250, got $r" ;; esac
wait_verdict --count 3 --sender "$tf_from"
json_check "retry verdicts: first attempt, resent too soon, retried: tagged (action tag)" \
	'sorted([r for r in v["reasons"] if r["code"] == "snowshoe_score"][0].get("retry") for v in V) == ["first attempt", "resent too soon", "retried: tagged"] and V[0]["action"] == "tag"'

say "2b. the block goes on with one campaign text: rejected"
for i in $(seq $((first_tf + 1)) 10); do
	from="n$i@${LABELS[$i]}.pink"
	xsend "198.18.50.$((20 + i))" "ary$((50 + i)).localhost" "$from" "Your prize"
	r=$(data_reply)
	note "message $i from 198.18.50.$((20 + i)): $r"
	case $r in 550*) first_rj=$i; break ;; 250* | 451*) ;; *) fail "unexpected reply: $r" ;; esac
done
[ -n "$first_rj" ] || fail "the burst was never rejected"
[ "$(data_reply)" = "550 5.7.1 Mail from 198.18.50.0/24 looks like snowshoe spam" ] ||
	fail "reject reply: $(data_reply)"
ok "rejected at message $first_rj; the reply names the block"
wait_verdict --sender "n$first_rj@${LABELS[$first_rj]}.pink"
json_check "rejected message: verdict reject" 'V[0]["action"] == "reject"'
snow "its snowshoe reason: action reject, cluster signals" \
	'S["action"] == "reject" and "signal_block_ips" in S and "signal_block_new_domains" in S'

say "3. legitimate bulk from hosts whose HELO is their confirmed PTR name"
for i in $(seq 0 7); do
	xsend "203.0.113.$((10 + i))" "out$i.bulk.example.com" "news$i@example.com" "Newsletter $i"
	r=$(data_reply)
	case $r in 250*) ;; *) fail "bulk message $i from 203.0.113.$((10 + i)): $r" ;; esac
done
ok "all 8 bulk messages accepted"
wait_verdict --sender "news7@example.com"
json_check "bulk: accepted" 'V[0]["action"] == "accept"'
snow "bulk: counted by operator:example.com, PTR confirmed by the milter" \
	'S["block"] == "operator:example.com" and S["ptr"] == "out7.bulk.example.com (confirmed)"'

say "4. kanjiki clusters after a restart"
kj_stop || fail "kanjiki-milter did not stop cleanly"
kq clusters --format json >"$T/clusters.json" 2>"$T/clusters.err" ||
	{ cat "$T/clusters.err"; fail "kanjiki clusters failed"; }
python3 - "$T/clusters.json" <<'EOF' || { cat "$T/clusters.json"; fail "clusters"; }
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
b = [r for r in rows if r["block"] == "198.18.50.0/24"]
sys.exit(0 if b and b[0]["ips"] >= 4 and b[0]["new_domains"] >= 4 else 1)
EOF
ok "kanjiki clusters lists 198.18.50.0/24 with its IPs and new domains"
done_ok
