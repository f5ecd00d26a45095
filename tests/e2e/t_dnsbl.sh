#!/bin/bash
# t_dnsbl.sh: DNS blocklists (ip, domain and uri zones), score thresholds and
# zone health through a real Postfix, the real kanjiki-milter and real DNS
# servers (tests/dnsenv: dnsmasq in front of rbldnsd, plus a socket that
# never answers), all on loopback.
#
# Milter-added headers are seen through Postfix's milter_header_checks (WARN
# logs each one with its whole value); deliveries are discarded as in every
# e2e test, quarantined mail stays in the hold queue.
#
# Checks (the numbers are those of the scenarios in the commit that added
# this test):
#  - 7: kanjiki check --dns: bl/weak/dbl/uri OK, refuse.kanjiki.test (error
#    code) and open.kanjiki.test (lists everything) BROKEN, exit 1; exit 0
#    with the good zones only; NO ANSWER for a zone behind the silent server;
#  - 1: 127.0.0.66 (bl.kanjiki.test, weight 10, txt) is refused at RCPT by
#    "threshold 5 reject early" with postscreen's wording and the TXT; a
#    relay attempt in the same session still gets the relay guard's 554;
#    one rcpt verdict per refused recipient (score_reject, dnsbl_listed,
#    lookup listed 127.0.0.2 with the TXT); SMTP AUTH from that address and
#    the trusted network are not scored at all (no lookups, no header);
#  - 2: 127.0.0.68 (only weak.kanjiki.test, weight 3): accepted and tagged
#    (X-Kanjiki-Spam, X-Kanjiki-Score: 3.0), verdict action tag;
#  - 3: 127.0.0.20 (unlisted): X-Kanjiki-Score: 0.0, lookups clean, the SPF
#    headers (spf=none: libspf2 does not evaluate loopback clients);
#  - 4: 127.0.0.67 answers 127.0.0.4: clean under codes 127.0.0.2-127.0.0.3,
#    refused once the zone has no codes filter;
#  - 5: dbl.kanjiki.test lists HELO mail.badhelo.test, envelope sender
#    @spammer.test, From: @spammer.test: subject helo / sender / from;
#  - an IP list answering an error code for one client (weak.kanjiki.test,
#    edited to refuse 127.0.0.71): outcome refused, zone skipped for the
#    next client, used again after the probe that follows SIGHUP;
#  - 6: uri.kanjiki.test lists the link http://www.evil-link.test/x
#    (registrable domain); with a listed HELO the message is refused at end
#    of DATA; refused-uri.test and mixed-uri.test (answers with 127.0.0.1)
#    are outcome refused, never listed, and do not switch the list off;
#  - 7: refuse/open are skipped from the start (log lines), lookups outcome
#    skipped, a clean client is neither tagged nor refused although both
#    weigh 10;
#  - 11: mode = monitor (SIGHUP): a listed client passes, one
#    X-Kanjiki-Monitor header says what would have happened, verdicts
#    monitor = true; a would-be tag is not tagged;
#  - 8: a zone under dead.kanjiki.test (timeout 1s, dns_timeout 4s): a clean
#    client's session takes about 1 s (not 4), is accepted, verdict degraded,
#    X-Kanjiki-Score "0.0 (degraded)"; a listed client is still refused;
#  - quarantine: the message is held (postqueue '!'), verdict quarantine;
#  - 9: six zones of which three never answer (1.5 s each): about one
#    timeout, not three; tempfail early (451 4.7.1, default text), a
#    threshold's own reply, a negative score rule;
#  - 10: kanjiki query --zone / --listed / --reason, kanjiki stats;
#  - zone health re-tests: a URI list that broke (no longer lists "test")
#    is skipped after the next error answer re-tests it; an IP list that
#    broke is skipped after SIGHUP (these two do not stop the test when
#    they fail: it goes on and fails at the end);
#  - 8: the whole resolver silent (dns_servers = $DNS_DEAD, dns_timeout 1s,
#    milter restarted): mail flows within timeout + 3 s, every lookup
#    degraded, a listed client is not refused (a timeout is no listing).
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
e2e_init
dns_start   # tests/dnsenv, stopped at exit; $DNS_FRONT etc.

# ---------------------------------------------------------------- helpers

# tsmtp SWAKS-ARGS...: smtp, with the session's wall time in ELAPSED_MS.
tsmtp() {
	local t0
	t0=$(date +%s%N)
	smtp "$@"
	ELAPSED_MS=$((($(date +%s%N) - t0) / 1000000))
}

# hdrs QID: "Name: value" of every header the milter added to QID, as
# Postfix logged them (milter_header_checks WARN, text "kjhdr Name: value").
hdrs() { sed -n "s/^.* $1: milter-header-warning: .*: kjhdr \(.*\)\$/\1/p" "$T/postfix/maillog"; }

# wait_delivered QID: Postfix delivered it (to the discard transport): every
# header warning of its cleanup has been logged by then.
wait_delivered() {
	pf_log_wait "$1: to=<[^>]*>.*status=sent" 10 || fail "message $1 not delivered"
}

# expect_hdr QID "Name: value": the milter added exactly this header.
expect_hdr() {
	local end=$(($(date +%s) + 10))
	while ! hdrs "$1" | grep -Fxq -- "$2"; do
		if [ "$(date +%s)" -ge $end ]; then
			say "---- headers the milter added to $1 ----"
			hdrs "$1"
			fail "no header \"$2\" added to $1"
		fi
		sleep 0.2
	done
	ok "$1 has header $2"
}

# expect_no_hdr QID NAME: the (delivered) message got no NAME header.
expect_no_hdr() {
	wait_delivered "$1"
	if hdrs "$1" | grep -iq -- "^$2:"; then
		hdrs "$1"
		fail "$1 has a $2 header"
	fi
	ok "$1 has no $2 header"
}

# data_reply: the reply to the end of DATA in the last transcript.
data_reply() {
	sed -n '/^ -> \.$/,$p' "$T/last.smtp" | sed -n 's/^\(<-\|<\*\*\) *//p' | head -n 1
}

# vcheck WHAT PYEXPR: like json_check, with helpers over $T/verdicts.json:
# V (newest first), codes(v), lk(zone, v) its lookups, outs(zone, v) their
# outcomes (v defaults to V[0]).
vcheck() {
	local what=$1 expr=$2
	python3 - "$T/verdicts.json" "$expr" >"$T/vcheck.out" 2>&1 <<'EOF' || {
import json, sys
V = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def codes(v=None): return [r.get("code") for r in ((v or V[0]).get("reasons") or [])]
def lk(zone, v=None): return [l for l in ((v or V[0]).get("lookups") or []) if l.get("zone") == zone]
def outs(zone, v=None): return sorted(set(l.get("outcome") for l in lk(zone, v)))
if not eval("(" + sys.argv[2] + "\n)"):
    sys.exit(1)
EOF
		say "---- verdicts (newest first, cut) ----"
		cut -c1-2500 "$T/verdicts.json" | head -n 3
		cat "$T/vcheck.out"
		fail "$what"
	}
	ok "$what"
}

# expect_elapsed WHAT MS LO HI: LO < MS < HI (milliseconds).
expect_elapsed() {
	note "(timing) $1: ${2} ms"
	[ "$2" -gt "$3" ] && [ "$2" -lt "$4" ] ||
		fail "$1 took $2 ms, expected more than $3 ms and less than $4 ms"
	ok "$1 took $2 ms (bound: $3 .. $4 ms)"
}

# wait_log ERE SECONDS: until a line of the milter log matches.
wait_log() {
	local end=$(($(date +%s) + $2))
	while ! grep -Eq -- "$1" "$KJ_LOG"; do
		[ "$(date +%s)" -ge $end ] && return 1
		sleep 0.2
	done
}

# defer_fail MESSAGE...: a failed check after which the test goes on (so
# that the checks after it still run); the test fails at its end.
DEFERRED=
defer_fail() {
	E2E_FAILED=1
	printf '  FAIL %s\n       (the test goes on and fails at the end)\n' "$*"
	DEFERRED="$DEFERRED
    - $*"
}

# kj_restart: stop the milter, rewrite kanjiki.conf from stdin, start again.
kj_restart() {
	kj_stop || fail "kanjiki-milter did not exit 0 on SIGTERM"
	kj_conf
	kj_start
}

# kj_reload: SIGHUP and wait for "reloaded" in the milter log.
kj_reload() {
	local before
	before=$(log_count 'notice: reloaded ')
	kill -HUP "$KJ_PID"
	local end=$(($(date +%s) + 5))
	while [ "$(log_count 'notice: reloaded ')" = "$before" ]; do
		[ "$(date +%s)" -ge $end ] && fail "no \"reloaded\" line after SIGHUP"
		sleep 0.1
	done
}

BODY_EVIL='Cheap stuff at http://www.evil-link.test/x today only.'
BODY_REFUSED='Look at http://refused-uri.test/offer and https://mixed-uri.test/ please.'

# ================================================================ phase A
# every list zone of tests/dnsenv, early reject at 5, tag at 3
cat >"$T/rules/10-dnsbl.rules" <<'EOF'
# t_dnsbl phase A
zone bl.kanjiki.test     ip weight 10 codes 127.0.0.2-127.0.0.3 txt
zone weak.kanjiki.test   ip weight 3 txt
zone dbl.kanjiki.test    domain weight 4 txt check helo, sender, from
zone uri.kanjiki.test    uri weight 4 txt
zone refuse.kanjiki.test ip weight 10
zone open.kanjiki.test   ip weight 10
spf none 0
spf fail 4
threshold 3 tag
threshold 5 reject early
EOF
printf '/^(X-Kanjiki-[A-Za-z]+|Authentication-Results|Received-SPF): (.*)/ WARN kjhdr $1: $2\n' \
	>"$T/milter_header_checks"
# dns_timeout 4s: the 1 s of the silent zones below is clearly their own
kj_conf <<EOF
dns_servers = $DNS_FRONT
dns_timeout = 4s
EOF

say "-- 7: kanjiki check --dns"
kq check --dns >"$T/check.out" 2>&1
rc=$?
grep '^dns:' "$T/check.out" | sed 's/^/     /'
[ $rc = 1 ] || fail "kanjiki check --dns with a refusing and a broken zone: exit $rc, expected 1"
ok "kanjiki check --dns exits 1"
for z in bl.kanjiki.test weak.kanjiki.test dbl.kanjiki.test uri.kanjiki.test; do
	grep -Eq "^dns: $z +(ip|domain|uri) +OK: " "$T/check.out" || fail "check --dns: $z not OK"
done
ok "check --dns: bl, weak, dbl, uri OK"
grep -Eq '^dns: refuse\.kanjiki\.test +ip +BROKEN, would be skipped: answers the error code 127\.255\.255\.254' "$T/check.out" ||
	fail "check --dns: refuse.kanjiki.test not reported BROKEN (error code)"
grep -Eq '^dns: open\.kanjiki\.test +ip +BROKEN, would be skipped: .*2\.0\.0\.127\.open\.kanjiki\.test' "$T/check.out" ||
	fail "check --dns: open.kanjiki.test not reported BROKEN"
grep -q '^dns: 2 zones failed the test' "$T/check.out" || fail "check --dns: no '2 zones failed' summary"
ok "check --dns: refuse and open BROKEN, would be skipped"
mkdir -p "$T/goodrules"
grep -v -e refuse -e open "$T/rules/10-dnsbl.rules" >"$T/goodrules/10-dnsbl.rules"
sed 's/^rules = rules$/rules = goodrules/' "$KJ_CONF" >"$T/good.conf"
"$CLI" -c "$T/good.conf" check --dns >"$T/check2.out" 2>&1
rc=$?
[ $rc = 0 ] || { cat "$T/check2.out"; fail "kanjiki check --dns with only good zones: exit $rc"; }
ok "kanjiki check --dns with the four good zones exits 0"

kj_start
pf_start milter "milter_header_checks = regexp:$T/milter_header_checks"
say "t_dnsbl: Postfix on 127.0.0.1:$PF_PORT, DNS $DNS_FRONT (dead: $DNS_DEAD)"
expect_log_line 'blocklist refuse.kanjiki.test skipped: answers the error code 127.255.255.254'
expect_log_line 'blocklist open.kanjiki.test skipped: does not list the test point'

say "-- 1: listed client refused at RCPT (threshold 5 reject early)"
BL66='Listed in bl.kanjiki.test: see http://bl.kanjiki.test/q?127.0.0.66'
tsmtp --local-interface 127.0.0.66 --helo clean.example --from a@nothing.test \
	--to s1a@local.test,s1b@local.test,s1c@example.net
expect_rcpt s1a@local.test "550 5.7.1 Service unavailable; client [127.0.0.66] blocked using bl.kanjiki.test; $BL66"
expect_rcpt s1b@local.test "550 5.7.1 Service unavailable; client [127.0.0.66] blocked using bl.kanjiki.test; $BL66"
expect_rcpt s1c@example.net "554 5.7.1" "Relaying denied"
note "(the relay guard decides before the score: relaying stays 554)"
note "(session: $ELAPSED_MS ms)"
expect_verdicts --kind rcpt --ip 127.0.0.66 -- s1a@local.test score_reject s1a@local.test dnsbl_listed \
	s1b@local.test score_reject s1b@local.test dnsbl_listed s1c@example.net relay_denied
wait_verdict --kind rcpt --rcpt s1a@local.test
export BL66
vcheck "verdict s1a: kind rcpt, action reject, score 13 (bl 10 + weak 3), reply with the TXT" \
	'V[0]["kind"] == "rcpt" and V[0]["stage"] == "rcpt" and V[0]["action"] == "reject"
	 and V[0]["score"] == 13 and V[0]["degraded"] is False
	 and V[0]["reply"] == "550 5.7.1 Service unavailable; client [127.0.0.66] blocked using bl.kanjiki.test; " + __import__("os").environ["BL66"]'
vcheck "lookup bl.kanjiki.test: listed, answer 127.0.0.2, the TXT, weight 10" \
	'[(l["subject"], l["query"], l["outcome"], l["answer"], l["txt"], l["weight"]) for l in lk("bl.kanjiki.test")]
	 == [("client", "66.0.0.127.bl.kanjiki.test", "listed", "127.0.0.2", __import__("os").environ["BL66"], 10)]'
vcheck "lookup weak.kanjiki.test listed (weight 3); refuse/open skipped with weight 0" \
	'outs("weak.kanjiki.test") == ["listed"] and lk("weak.kanjiki.test")[0]["weight"] == 3
	 and outs("refuse.kanjiki.test") == ["skipped"] and outs("open.kanjiki.test") == ["skipped"]
	 and all(l["weight"] == 0 for l in lk("refuse.kanjiki.test") + lk("open.kanjiki.test"))'

say "-- SMTP AUTH and trusted clients are not scored"
smtp --local-interface 127.0.0.66 --helo clean.example --auth PLAIN --auth-user alice \
	--auth-password wonderland --from alice@local.test --to auth1@local.test
expect_rcpt auth1@local.test 250
expect_queued "SMTP AUTH from the listed 127.0.0.66"
expect_no_hdr "$QUEUE_ID" X-Kanjiki-Score
wait_verdict --kind message --rcpt auth1@local.test
vcheck "AUTH message: action accept, not scored, no lookups" \
	'V[0]["action"] == "accept" and V[0]["score"] is None and not V[0]["lookups"]'
smtp --local-interface 127.0.0.10 --helo mail.badhelo.test --from a@nothing.test \
	--to trust1@local.test --body "$BODY_EVIL"
expect_rcpt trust1@local.test 250
expect_queued "trusted network, listed HELO and link"
expect_no_hdr "$QUEUE_ID" X-Kanjiki-Score
wait_verdict --kind message --rcpt trust1@local.test
vcheck "trusted message: action accept, not scored, no lookups" \
	'V[0]["action"] == "accept" and V[0]["score"] is None and not V[0]["lookups"]'

say "-- 2: weakly listed client tagged (threshold 3 tag)"
smtp --local-interface 127.0.0.68 --helo clean.example --from a@nothing.test --to s2@local.test
expect_rcpt s2@local.test 250
expect_queued "weak listing"
Q2=$QUEUE_ID
expect_hdr "$Q2" "X-Kanjiki-Score: 3.0"
expect_hdr "$Q2" "X-Kanjiki-Spam: yes, score=3.0"
wait_verdict --kind message --rcpt s2@local.test
vcheck "verdict s2: action tag, score 3, weak listed, bl clean" \
	'V[0]["action"] == "tag" and V[0]["score"] == 3 and "score_tag" in codes()
	 and "dnsbl_listed" in codes() and outs("weak.kanjiki.test") == ["listed"]
	 and outs("bl.kanjiki.test") == ["clean"]'

say "-- 3 + 7: unlisted client passes untagged; refuse/open skipped"
smtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test --to s3@local.test
expect_rcpt s3@local.test 250
expect_queued "unlisted client"
Q3=$QUEUE_ID
expect_hdr "$Q3" "X-Kanjiki-Score: 0.0"
expect_hdr "$Q3" "Authentication-Results: mx.local.test; spf=none smtp.mailfrom=nothing.test"
hdrs "$Q3" | grep -q '^Received-SPF: none ' || { hdrs "$Q3"; fail "no Received-SPF: none header"; }
ok "$Q3 has Received-SPF: $(hdrs "$Q3" | sed -n 's/^Received-SPF: //p' | cut -c1-70)..."
expect_no_hdr "$Q3" X-Kanjiki-Spam
wait_verdict --kind message --rcpt s3@local.test
vcheck "verdict s3: accept, score 0, bl/weak/dbl clean, refuse/open skipped, spf none" \
	'V[0]["action"] == "accept" and V[0]["score"] == 0 and V[0]["degraded"] is False
	 and outs("bl.kanjiki.test") == ["clean"] and outs("weak.kanjiki.test") == ["clean"]
	 and outs("dbl.kanjiki.test") == ["clean"]
	 and outs("refuse.kanjiki.test") == ["skipped"] and outs("open.kanjiki.test") == ["skipped"]
	 and [l["outcome"] for l in lk("spf")] == ["none"]
	 and not any(c.endswith("_listed") for c in codes())'

say "-- 4: answer outside the codes filter is not a listing"
smtp --local-interface 127.0.0.67 --helo clean.example --from a@nothing.test --to s4@local.test
expect_rcpt s4@local.test 250
expect_queued "127.0.0.67 answers 127.0.0.4"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Score: 0.0"
wait_verdict --kind message --rcpt s4@local.test
vcheck "verdict s4: accept, score 0, bl lookup clean with weight 0" \
	'V[0]["action"] == "accept" and V[0]["score"] == 0 and outs("bl.kanjiki.test") == ["clean"]
	 and lk("bl.kanjiki.test")[0]["weight"] == 0'

say "-- 5: RHSBL on HELO, envelope sender, From: header"
smtp --local-interface 127.0.0.20 --helo mail.badhelo.test --from a@nothing.test --to s5a@local.test
expect_rcpt s5a@local.test 250
expect_queued "listed HELO"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Spam: yes, score=4.0"
wait_verdict --kind message --rcpt s5a@local.test
vcheck "verdict s5a: tag, rhsbl_listed, dbl lookup of the HELO listed" \
	'V[0]["action"] == "tag" and V[0]["score"] == 4 and "rhsbl_listed" in codes()
	 and [(l["subject"], l["query"], l["answer"]) for l in lk("dbl.kanjiki.test") if l["outcome"] == "listed"]
	     == [("helo", "mail.badhelo.test.dbl.kanjiki.test", "127.0.0.2")]'
smtp --local-interface 127.0.0.20 --helo clean.example --from x@spammer.test \
	--header 'From: Clean <clean@nothing.test>' --to s5b@local.test
expect_rcpt s5b@local.test 250
expect_queued "listed sender domain"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Spam: yes, score=4.0"
wait_verdict --kind message --rcpt s5b@local.test
vcheck "verdict s5b: tag, dbl lookup of the sender domain listed (subject sender)" \
	'V[0]["action"] == "tag" and V[0]["score"] == 4
	 and [(l["subject"], l["query"]) for l in lk("dbl.kanjiki.test") if l["outcome"] == "listed"]
	     == [("sender", "spammer.test.dbl.kanjiki.test")]'
smtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test \
	--header 'From: Boss <boss@spammer.test>' --to s5c@local.test
expect_rcpt s5c@local.test 250
expect_queued "listed From: domain"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Spam: yes, score=4.0"
wait_verdict --kind message --rcpt s5c@local.test
vcheck "verdict s5c: tag, dbl lookup of the From: domain listed (subject from)" \
	'V[0]["action"] == "tag" and V[0]["score"] == 4
	 and [(l["subject"], l["query"]) for l in lk("dbl.kanjiki.test") if l["outcome"] == "listed"]
	     == [("from", "spammer.test.dbl.kanjiki.test")]'

say "-- an IP list answering an error code in normal operation is skipped for 10 minutes"
# weak.kanjiki.test passes its test points but now refuses 127.0.0.71
zf=$DNS_RBL_ZONES/weak.zone
{ cat "$zf"; printf '127.0.0.71 :127.255.255.254:Query refused\n'; } >"$zf.tmp" && mv "$zf.tmp" "$zf" ||
	fail "cannot edit $zf"
touch -d '+2 seconds' "$zf"
python3 "$E2E_DIR/../dnsenv/dnsenv.py" wait "$DNS_FRONT" 71.0.0.127.weak.kanjiki.test A 127.255.255.254 10 ||
	fail "rbldnsd did not pick up the edited weak.zone"
ok "weak.kanjiki.test now answers 127.255.255.254 for 127.0.0.71"
smtp --local-interface 127.0.0.71 --helo clean.example --from a@nothing.test --to w1@local.test
expect_rcpt w1@local.test 250
expect_queued "client the IP list refuses to answer for"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Score: 0.0"
wait_verdict --kind message --rcpt w1@local.test
vcheck "verdict w1: weak lookup outcome refused (127.255.255.254), weight 0, dnsbl_refused" \
	'V[0]["action"] == "accept" and V[0]["score"] == 0 and "dnsbl_refused" in codes()
	 and [(l["outcome"], l["answer"], l["weight"]) for l in lk("weak.kanjiki.test")]
	     == [("refused", "127.255.255.254", 0)]'
expect_log_line 'blocklist weak.kanjiki.test skipped: answered the error code 127.255.255.254'
smtp --local-interface 127.0.0.68 --helo clean.example --from a@nothing.test --to w2@local.test
expect_rcpt w2@local.test 250
expect_queued "weakly listed client while weak.kanjiki.test is on skip"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Score: 0.0"
expect_no_hdr "$QUEUE_ID" X-Kanjiki-Spam
wait_verdict --kind message --rcpt w2@local.test
vcheck "verdict w2: weak.kanjiki.test skipped, not tagged (s2 was)" \
	'V[0]["action"] == "accept" and outs("weak.kanjiki.test") == ["skipped"]'
kj_reload
expect_log_line 'blocklist weak.kanjiki.test answers correctly again: used again'
smtp --local-interface 127.0.0.68 --helo clean.example --from a@nothing.test --to w3@local.test
expect_rcpt w3@local.test 250
expect_queued "weakly listed client after SIGHUP"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Spam: yes, score=3.0"
note "(the probe after SIGHUP found the zone healthy: used again)"

say "-- 6: URI list"
smtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test --to s6a@local.test \
	--body "$BODY_EVIL"
expect_rcpt s6a@local.test 250
expect_queued "listed link"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Spam: yes, score=4.0"
wait_verdict --kind message --rcpt s6a@local.test
vcheck "verdict s6a: tag, uribl_listed, lookup of the registrable domain evil-link.test" \
	'V[0]["action"] == "tag" and "uribl_listed" in codes()
	 and [(l["subject"], l["query"], l["outcome"], l["answer"]) for l in lk("uri.kanjiki.test")]
	     == [("uri", "evil-link.test.uri.kanjiki.test", "listed", "127.0.0.2")]
	 and lk("uri.kanjiki.test")[0]["txt"].startswith("Listed in uri.kanjiki.test")'
smtp --local-interface 127.0.0.20 --helo mail.badhelo.test --from a@nothing.test --to s6b@local.test \
	--body "$BODY_EVIL"
expect_rcpt s6b@local.test 250
r=$(data_reply)
case "$r" in
"550 5.7.1 Service unavailable; "*" blocked using "*) ok "listed HELO (4) + listed link (4): refused at end of DATA: ${r:0:110}" ;;
*) fail "listed HELO + listed link: expected 550 5.7.1 Service unavailable at end of DATA, got: $r" ;;
esac
wait_verdict --kind message --rcpt s6b@local.test
vcheck "verdict s6b: reject at stage eom, score 8, rhsbl_listed + uribl_listed" \
	'V[0]["action"] == "reject" and V[0]["stage"] == "eom" and V[0]["score"] == 8
	 and "rhsbl_listed" in codes() and "uribl_listed" in codes() and "score_reject" in codes()
	 and V[0]["reply"].startswith("550 5.7.1 Service unavailable; ")'
smtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test --to s6c@local.test \
	--body "$BODY_REFUSED"
expect_rcpt s6c@local.test 250
expect_queued "links the URI list answers with its error code 127.0.0.1"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Score: 0.0"
expect_no_hdr "$QUEUE_ID" X-Kanjiki-Spam
wait_verdict --kind message --rcpt s6c@local.test
vcheck "verdict s6c: refused-uri.test and mixed-uri.test (127.0.0.2 + 127.0.0.1) outcome refused, weight 0" \
	'V[0]["action"] == "accept" and V[0]["score"] == 0 and "uribl_refused" in codes()
	 and sorted((l["query"], l["outcome"], l["answer"], l["weight"]) for l in lk("uri.kanjiki.test"))
	     == [("mixed-uri.test.uri.kanjiki.test", "refused", "127.0.0.1", 0),
	         ("refused-uri.test.uri.kanjiki.test", "refused", "127.0.0.1", 0)]'
smtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test --to s6d@local.test \
	--body "$BODY_EVIL"
expect_rcpt s6d@local.test 250
expect_queued "listed link right after the refusals"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Spam: yes, score=4.0"
wait_verdict --kind message --rcpt s6d@local.test
vcheck "verdict s6d: a link that provoked the error code does not switch the URI list off" \
	'V[0]["action"] == "tag" and outs("uri.kanjiki.test") == ["listed"]'
[ "$(log_count 'blocklist uri\.kanjiki\.test skipped')" = 0 ] ||
	fail "uri.kanjiki.test was skipped after an error answer provoked by links"
ok "uri.kanjiki.test not skipped"

say "-- 11: mode = monitor (SIGHUP)"
kj_conf <<EOF
dns_servers = $DNS_FRONT
dns_timeout = 4s
mode = monitor
EOF
kj_reload
smtp --local-interface 127.0.0.66 --helo clean.example --from a@nothing.test --to m1@local.test
expect_rcpt m1@local.test 250
expect_queued "listed client in monitor mode"
QM=$QUEUE_ID
wait_delivered "$QM"
ok "delivered (to the discard transport)"
expect_hdr "$QM" "X-Kanjiki-Score: 13.0"
expect_hdr "$QM" "X-Kanjiki-Monitor: would reject <m1@local.test> (score_reject); would reject (score 13.0)"
[ "$(hdrs "$QM" | grep -c '^X-Kanjiki-Monitor:')" = 1 ] || { hdrs "$QM"; fail "more than one X-Kanjiki-Monitor header"; }
ok "one X-Kanjiki-Monitor header"
wait_verdict --ip 127.0.0.66 --rcpt m1@local.test
vcheck "monitor verdicts: monitor=true, action reject, score_reject" \
	'all(v["monitor"] is True and v["action"] == "reject" for v in V)
	 and any("score_reject" in codes(v) for v in V)'
wait_verdict --kind message --rcpt m1@local.test
vcheck "monitor message verdict: monitor=true, score 13, bl listed" \
	'V[0]["monitor"] is True and V[0]["score"] == 13 and outs("bl.kanjiki.test") == ["listed"]'

smtp --local-interface 127.0.0.68 --helo clean.example --from a@nothing.test --to m2@local.test
expect_rcpt m2@local.test 250
expect_queued "weakly listed client in monitor mode"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Monitor: would tag (score 3.0)"
expect_no_hdr "$QUEUE_ID" X-Kanjiki-Spam
wait_verdict --kind message --rcpt m2@local.test
vcheck "monitor verdict m2: monitor=true, action tag" 'V[0]["monitor"] is True and V[0]["action"] == "tag"'

# ================================================================ phase B
say "-- 8: a zone that never answers (timeout 1s; dns_timeout 4s)"
cat >"$T/rules/10-dnsbl.rules" <<'EOF'
# t_dnsbl phase B
zone bl.kanjiki.test   ip weight 10 txt
zone weak.kanjiki.test ip weight 3
zone dbl.kanjiki.test  domain weight 4
zone dead.kanjiki.test ip weight 10 timeout 1s
threshold 3 quarantine
threshold 5 reject early
EOF
kj_conf <<EOF
dns_servers = $DNS_FRONT
dns_timeout = 4s
EOF
kj_reload
kq check --dns >"$T/check3.out" 2>&1
rc=$?
grep '^dns: dead' "$T/check3.out" | sed 's/^/     /'
[ $rc = 1 ] && grep -Eq '^dns: dead\.kanjiki\.test +ip +NO ANSWER' "$T/check3.out" ||
	{ cat "$T/check3.out"; fail "check --dns: dead.kanjiki.test not reported NO ANSWER with exit 1 (exit $rc)"; }
ok "check --dns: dead.kanjiki.test NO ANSWER, exit 1"
expect_log_line 'blocklist dead.kanjiki.test' 'no answer in time for the test points'
dead_before=$(grep -c '20\.0\.0\.127\.dead\.kanjiki\.test' "$DNS_DEAD_LOG")
tsmtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test --to s8a@local.test
expect_rcpt s8a@local.test 250
expect_queued "clean client, one zone silent"
expect_elapsed "session with one silent zone (timeout 1s)" "$ELAPSED_MS" 700 3000
S8A_MS=$ELAPSED_MS
[ "$(grep -c '20\.0\.0\.127\.dead\.kanjiki\.test' "$DNS_DEAD_LOG")" -gt "$dead_before" ] ||
	fail "the query 20.0.0.127.dead.kanjiki.test never reached the silent server"
ok "the query reached the silent server ($DNS_DEAD_LOG)"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Score: 0.0 (degraded)"
wait_verdict --kind message --rcpt s8a@local.test
vcheck "verdict s8a: accept, degraded, dead lookup degraded (weight 0), bl clean" \
	'V[0]["action"] == "accept" and V[0]["degraded"] is True and V[0]["score"] == 0
	 and outs("dead.kanjiki.test") == ["degraded"] and lk("dead.kanjiki.test")[0]["weight"] == 0
	 and outs("bl.kanjiki.test") == ["clean"] and "dnsbl_degraded" in codes()'
tsmtp --local-interface 127.0.0.66 --helo clean.example --from a@nothing.test --to s8b@local.test
expect_rcpt s8b@local.test "550 5.7.1 Service unavailable; client [127.0.0.66] blocked using bl.kanjiki.test; $BL66"
expect_elapsed "refusal of a listed client with one silent zone" "$ELAPSED_MS" 700 3000
wait_verdict --kind rcpt --rcpt s8b@local.test
vcheck "verdict s8b: reject, degraded, bl listed, dead degraded" \
	'V[0]["action"] == "reject" and V[0]["degraded"] is True and outs("bl.kanjiki.test") == ["listed"]
	 and outs("dead.kanjiki.test") == ["degraded"]'
smtp --local-interface 127.0.0.67 --helo clean.example --from a@nothing.test --to s4b@local.test
expect_rcpt s4b@local.test "550 5.7.1 Service unavailable; client [127.0.0.67] blocked using bl.kanjiki.test"
note "(4: without a codes filter the answer 127.0.0.4 is a listing)"

say "-- quarantine (threshold 3 quarantine)"
smtp --local-interface 127.0.0.68 --helo clean.example --from a@nothing.test --to q1@local.test
expect_rcpt q1@local.test 250
expect_queued "weak listing, quarantine"
QQ=$QUEUE_ID
pf_log_wait "$QQ: milter-hold: END-OF-MESSAGE" 10 || fail "Postfix did not hold $QQ"
ok "Postfix logged milter-hold for $QQ"
postqueue -c "$PF_ETC" -p >"$T/postqueue.out" 2>&1
grep -q "^$QQ!" "$T/postqueue.out" || { cat "$T/postqueue.out"; fail "$QQ not in the hold queue"; }
ok "postqueue -p shows $QQ! (on hold)"
postcat -c "$PF_ETC" -hq "$QQ" >"$T/postcat.out" 2>&1 || true
grep -q '^X-Kanjiki-Spam: yes, score=3.0' "$T/postcat.out" ||
	{ cat "$T/postcat.out"; fail "held message lacks X-Kanjiki-Spam"; }
ok "the held message carries X-Kanjiki-Spam: yes, score=3.0"
wait_verdict --kind message --rcpt q1@local.test
vcheck "verdict q1: action quarantine" 'V[0]["action"] == "quarantine" and "score_quarantine" in codes()'

# ================================================================ phase C
say "-- 9: six zones, three of them silent (1.5 s each)"
cat >"$T/rules/10-dnsbl.rules" <<'EOF'
# t_dnsbl phase C
zone bl.kanjiki.test      ip weight 10 txt
zone weak.kanjiki.test    ip weight 3
zone dbl.kanjiki.test     domain weight 4 check helo, sender
zone d1.dead.kanjiki.test ip weight 10 timeout 1500ms
zone d2.dead.kanjiki.test ip weight 10 timeout 1500ms
zone d3.dead.kanjiki.test ip weight 10 timeout 1500ms
score -10 helo friendly.example
threshold 3 tag
threshold 5 tempfail early
threshold 15 reject reply "550 5.7.2 Go away, score too high" early
EOF
kj_reload
tsmtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test --to s9@local.test
expect_rcpt s9@local.test 250
expect_queued "clean client, three of six zones silent"
expect_elapsed "session with 3 of 6 zones silent (1.5 s each; one after another would be >= 4.5 s)" \
	"$ELAPSED_MS" 1200 4000
S9_MS=$ELAPSED_MS
wait_verdict --kind message --rcpt s9@local.test
vcheck "verdict s9: six zones asked, the three dead ones degraded" \
	'V[0]["action"] == "accept" and V[0]["degraded"] is True
	 and [outs(z) for z in ("d1.dead.kanjiki.test", "d2.dead.kanjiki.test", "d3.dead.kanjiki.test")] == [["degraded"]] * 3
	 and outs("bl.kanjiki.test") == ["clean"] and outs("weak.kanjiki.test") == ["clean"]
	 and outs("dbl.kanjiki.test") == ["clean"]'
smtp --local-interface 127.0.0.66 --helo clean.example --from a@nothing.test --to s9t@local.test
expect_rcpt s9t@local.test "451 4.7.1 Try again later (kanjiki): Service unavailable; client [127.0.0.66] blocked using bl.kanjiki.test; $BL66"
expect_verdicts --kind rcpt -- s9t@local.test score_tempfail
wait_verdict --kind rcpt --rcpt s9t@local.test
vcheck "verdict s9t: action tempfail" 'V[0]["action"] == "tempfail" and V[0]["score"] == 13'
smtp --local-interface 127.0.0.66 --helo mail.badhelo.test --from a@nothing.test --to s9r@local.test
expect_rcpt s9r@local.test "550 5.7.2 Go away, score too high"
note "(score 17 = bl 10 + weak 3 + dbl 4 reaches the threshold with its own reply)"
smtp --local-interface 127.0.0.66 --helo friendly.example --from a@nothing.test --to s9f@local.test
expect_rcpt s9f@local.test 250
expect_queued "score -10 for the HELO"
expect_hdr "$QUEUE_ID" "X-Kanjiki-Spam: yes, score=3.0"
note "(13 - 10 = 3: tagged, not refused)"

# ================================================================ zone health
say "-- zone health: re-tests ask DNS again"
cat >"$T/rules/10-dnsbl.rules" <<'EOF'
# t_dnsbl zone health
zone bl.kanjiki.test   ip weight 10 txt
zone weak.kanjiki.test ip weight 3
zone uri.kanjiki.test  uri weight 4
threshold 3 tag
EOF
kj_reload
sleep 0.5
# the URI list stops listing its test point "test" (a broken list)
zf=$DNS_RBL_ZONES/uri.zone
grep -vx 'test' "$zf" >"$zf.tmp" && mv "$zf.tmp" "$zf" || fail "cannot edit $zf"
touch -d '+4 seconds' "$zf"
python3 "$E2E_DIR/../dnsenv/dnsenv.py" wait "$DNS_FRONT" test.uri.kanjiki.test A rcode=NXDOMAIN 10 ||
	fail "rbldnsd did not pick up the edited uri.zone"
ok "uri.kanjiki.test no longer lists its test point \"test\""
URI_BROKEN_AT=$(date +%s)

# ================================================================ 10
say "-- 10: kanjiki query and stats"
wait_verdict --zone bl.kanjiki.test --kind rcpt --ip 127.0.0.66
vcheck "query --zone bl.kanjiki.test: the refusals of s1a and s1b are there" \
	'{"s1a@local.test", "s1b@local.test"} <= {v["rcpt"] for v in V}
	 and all(lk("bl.kanjiki.test", v) for v in V)'
wait_verdict --listed
vcheck "query --listed: s1a, s2 (weak) and s5a (helo) there; s3 and s4 (clean) not" \
	'{"s1a@local.test", "s2@local.test", "s5a@local.test"} <= {r for v in V for r in ([v["rcpt"]] + (v["recipients"] or []))}
	 and not {"s3@local.test", "s4@local.test"} & {r for v in V for r in ([v["rcpt"]] + (v["recipients"] or []))}
	 and all(any(l["outcome"] == "listed" for l in v["lookups"]) for v in V)'
wait_verdict --reason uribl_refused
vcheck "query --reason uribl_refused: s6c" '[v["recipients"] for v in V] == [["s6c@local.test"]]'
wait_verdict --zone d2.dead.kanjiki.test
vcheck "query --zone d2.dead.kanjiki.test: only phase C verdicts" \
	'len(V) >= 4 and all(lk("d2.dead.kanjiki.test", v) for v in V)'
kq stats --format json >"$T/stats.json" 2>"$T/stats.err" || { cat "$T/stats.err"; fail "kanjiki stats failed"; }
cp "$T/stats.json" "$T/verdicts.json"
vcheck "stats: a verdicts line with reject, tag, quarantine, tempfail and degraded counted" \
	'[v for v in V if v.get("type") == "verdicts"] and all([v for v in V if v.get("type") == "verdicts"][0][k] >= 1
	     for k in ("reject", "tag", "quarantine", "tempfail", "degraded"))'
vcheck "stats: bl.kanjiki.test/weak/dbl/uri with lookups, listings and p50_ms" \
	'all(any(z.get("zone") == n and z["lookups"] > 0 and z["listed"] > 0
	         and (z["clean"] > 0 or n.startswith("uri")) and isinstance(z.get("p50_ms"), int) for z in V)
	     for n in ("bl.kanjiki.test", "weak.kanjiki.test", "dbl.kanjiki.test", "uri.kanjiki.test"))'
vcheck "stats: refuse/open skipped only, uri refused (not skipped), weak refused and skipped, dead degraded" \
	'any(z.get("zone") == "refuse.kanjiki.test" and z["skipped"] > 0 and z["listed"] == 0 for z in V)
	 and any(z.get("zone") == "open.kanjiki.test" and z["skipped"] > 0 and z["listed"] == 0 for z in V)
	 and any(z.get("zone") == "uri.kanjiki.test" and z["refused"] >= 2 and z["skipped"] == 0 for z in V)
	 and any(z.get("zone") == "weak.kanjiki.test" and z["refused"] >= 1 and z["skipped"] >= 1 for z in V)
	 and any(z.get("zone") == "dead.kanjiki.test" and z["degraded"] >= 2 and z["listed"] == 0 for z in V)'

say "-- zone health: an error answer re-tests the URI list (with its test points)"
before=$(grep -c 'query\[A\] test\.uri\.kanjiki\.test ' "$DNS_FRONT_LOG")
smtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test --to h1@local.test \
	--body "$BODY_REFUSED"
expect_queued "links answered with the error code"
if wait_log 'blocklist uri\.kanjiki\.test skipped: does not list the test point' 10; then
	ok "the re-test found the URI list broken: skipped"
else
	defer_fail "uri.kanjiki.test broken since $(($(date +%s) - URI_BROKEN_AT)) s, an error answer should re-test it at once (kanjiki-milter(8)): not skipped;" \
		"queries for test.uri.kanjiki.test reaching DNS since: $(($(grep -c 'query\[A\] test\.uri\.kanjiki\.test ' "$DNS_FRONT_LOG") - before))"
fi

say "-- zone health: SIGHUP re-tests every zone (with its test points)"
zf=$DNS_RBL_ZONES/weak.zone
grep -vx '127\.0\.0\.2' "$zf" >"$zf.tmp" && mv "$zf.tmp" "$zf" || fail "cannot edit $zf"
touch -d '+6 seconds' "$zf"
python3 "$E2E_DIR/../dnsenv/dnsenv.py" wait "$DNS_FRONT" 2.0.0.127.weak.kanjiki.test A rcode=NXDOMAIN 10 ||
	fail "rbldnsd did not pick up the edited weak.zone"
ok "weak.kanjiki.test no longer lists its test point 127.0.0.2"
before=$(grep -c 'query\[A\] 2\.0\.0\.127\.weak\.kanjiki\.test ' "$DNS_FRONT_LOG")
kj_reload
if wait_log 'blocklist weak\.kanjiki\.test skipped: does not list the test point' 10; then
	ok "the probe after SIGHUP found weak.kanjiki.test broken: skipped"
else
	defer_fail "weak.kanjiki.test broken, SIGHUP should re-test it (kanjiki-milter(8)): not skipped;" \
		"queries for 2.0.0.127.weak.kanjiki.test reaching DNS since: $(($(grep -c 'query\[A\] 2\.0\.0\.127\.weak\.kanjiki\.test ' "$DNS_FRONT_LOG") - before))"
fi

# ================================================================ last: restart
say "-- 8: the whole resolver silent (dns_servers = DNS_DEAD, dns_timeout 1s)"
cat >"$T/rules/10-dnsbl.rules" <<'EOF'
# t_dnsbl: no DNS at all
zone bl.kanjiki.test   ip weight 10 txt
zone weak.kanjiki.test ip weight 3
zone dbl.kanjiki.test  domain weight 4
zone uri.kanjiki.test  uri weight 4
threshold 3 tag
threshold 5 reject early
EOF
kj_restart <<EOF
dns_servers = $DNS_DEAD
dns_timeout = 1s
EOF
tsmtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test --to s8r@local.test \
	--quit-after RCPT
expect_rcpt s8r@local.test 250
note "(timing) up to the reply to RCPT TO (where the early threshold waits): $ELAPSED_MS ms"
S8R_MS=$ELAPSED_MS
# a From: domain and a link not asked before: lookups that start during DATA
tsmtp --local-interface 127.0.0.20 --helo clean.example --from a@nothing.test --to s8c@local.test \
	--header 'From: Boss <boss@other-domain.test>' --body "$BODY_EVIL"
expect_rcpt s8c@local.test 250
expect_queued "clean client, resolver silent"
expect_elapsed "whole session with the resolver silent (dns_timeout 1s)" "$ELAPSED_MS" 700 4000
S8C_MS=$ELAPSED_MS
expect_hdr "$QUEUE_ID" "X-Kanjiki-Score: 0.0 (degraded)"
wait_verdict --kind message --rcpt s8c@local.test
vcheck "verdict s8c: accept, degraded, every lookup degraded (client, helo, sender, from, uri)" \
	'V[0]["action"] == "accept" and V[0]["degraded"] is True
	 and {l["outcome"] for l in V[0]["lookups"] if l["zone"] != "spf"} == {"degraded"}
	 and {l["subject"] for l in V[0]["lookups"]} >= {"client", "helo", "sender", "from", "uri"}'
tsmtp --local-interface 127.0.0.66 --helo clean.example --from a@nothing.test --to s8d@local.test
expect_rcpt s8d@local.test 250
expect_queued "listed client while the resolver is silent"
expect_elapsed "session of a listed client with the resolver silent" "$ELAPSED_MS" 700 4000
S8D_MS=$ELAPSED_MS
wait_verdict --kind message --rcpt s8d@local.test
vcheck "verdict s8d: a timeout is never a listing (accept, degraded, score 0)" \
	'V[0]["action"] == "accept" and V[0]["degraded"] is True and V[0]["score"] == 0'

[ -z "$DEFERRED" ] || fail_noev "failed checks above (the test went on after them):$DEFERRED"
note "(timings: one silent zone $S8A_MS ms; resolver silent: RCPT $S8R_MS ms, whole sessions $S8C_MS / $S8D_MS ms; 3 of 6 silent $S9_MS ms)"
done_ok
