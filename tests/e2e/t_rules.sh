#!/bin/bash
# t_rules.sh: allow/deny rules (kanjiki.rules(5)), SIGHUP reload and
# monitor mode, through a real Postfix.
#
# Checks:
#  - deny client / sender (address and domain, not its subdomains) / rcpt /
#    helo refuse with "550 5.7.1 Access denied (kanjiki)" or the rule's own
#    reply; a 4xx reply is a temporary failure (action tempfail); the
#    verdict names deny_rule and the rule's file:line;
#  - deny rules apply to the trusted network too;
#  - the first match wins: "allow client 127.0.0.40" before a deny protects
#    it (allow_rule in the message verdict), but never opens relaying;
#  - SIGHUP with a broken rules file keeps the running policy and says why;
#    SIGHUP with a good file applies the new rules to new connections;
#  - mode = monitor: nothing is refused (relay attempt and deny rule get
#    250, the mail is delivered), the verdicts carry monitor = true and
#    action = reject, and Postfix sees the X-Kanjiki-Monitor header (logged
#    through milter_header_checks WARN).
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
e2e_init
cat >"$T/rules/50-site.rules" <<'EOF'
# site rules for t_rules
allow client 127.0.0.40
deny  client 127.0.0.50, 192.0.2.0/24
deny  sender spammer@example.com, spam.example
deny  rcpt   blocked@local.test reply "550 5.7.1 custom text"
deny  rcpt   closed@local.test reply "450 4.2.1 mailbox busy, try later"
deny  helo   badhelo
EOF
# Postfix logs a milter-added X-Kanjiki-Monitor header (cut at 60
# characters; the whole value follows as the WARN text)
printf '/^X-Kanjiki-Monitor: (.*)/ WARN monitor header: $1\n' >"$T/milter_header_checks"
kj_start
pf_start milter "milter_header_checks = regexp:$T/milter_header_checks"
say "t_rules: Postfix on 127.0.0.1:$PF_PORT"

say "-- deny rules"
smtp --local-interface 127.0.0.50 --from someone@origin.example --to r1@local.test
expect_rcpt r1@local.test "550 5.7.1" "Access denied (kanjiki)"
wait_verdict --kind rcpt --rcpt r1@local.test
json_check "deny client: deny_rule, rule 50-site.rules:3, reject" \
	'codes(V[0]) == ["deny_rule"] and V[0]["action"] == "reject"
	 and any("50-site.rules:3" in (r.get("rule") or "") for r in V[0]["reasons"])'

smtp --local-interface 127.0.0.20 --from spammer@example.com --to r2@local.test --quit-after RCPT
expect_rcpt r2@local.test "550 5.7.1" "Access denied (kanjiki)"
smtp --local-interface 127.0.0.20 --from anyone@spam.example --to r3@local.test --quit-after RCPT
expect_rcpt r3@local.test "550 5.7.1" "Access denied (kanjiki)"
smtp --local-interface 127.0.0.20 --from anyone@sub.spam.example --to r4@local.test
expect_rcpt r4@local.test 250
note "(sender domain rules match the domain exactly, not its subdomains)"
smtp --local-interface 127.0.0.20 --from someone@origin.example --to 'r5@local.test,blocked@local.test,closed@local.test'
expect_rcpt r5@local.test 250
expect_rcpt blocked@local.test "550 5.7.1 custom text"
expect_rcpt closed@local.test "450 4.2.1 mailbox busy, try later"
expect_queued "r5 only"
smtp --local-interface 127.0.0.20 --helo badhelo --from someone@origin.example --to r6@local.test --quit-after RCPT
expect_rcpt r6@local.test "550 5.7.1" "Access denied (kanjiki)"
smtp --local-interface 127.0.0.10 --from spammer@example.com --to r7@example.net --quit-after RCPT
expect_rcpt r7@example.net "550 5.7.1" "Access denied (kanjiki)"
note "(deny rules apply to the trusted network too)"
expect_verdicts --kind rcpt -- r2@local.test deny_rule r3@local.test deny_rule \
	blocked@local.test deny_rule closed@local.test deny_rule r6@local.test deny_rule r7@example.net deny_rule
wait_verdict --kind rcpt --rcpt closed@local.test
json_check "4xx rule reply: action tempfail, reply 450 4.2.1" \
	'V[0]["action"] == "tempfail" and V[0]["reply"].startswith("450 4.2.1")'
wait_verdict --kind rcpt --rcpt blocked@local.test
json_check "custom reply recorded" 'V[0]["reply"].startswith("550 5.7.1 custom text")'
wait_verdict --kind rcpt --action tempfail
json_check "only closed@local.test is a tempfail" 'len(V) == 1'

say "-- allow comes first, and never opens relaying"
smtp --local-interface 127.0.0.40 --from spammer@example.com --to r8@local.test
expect_rcpt r8@local.test 250
expect_queued "allow client beats deny sender"
expect_verdicts --kind message --ip 127.0.0.40 -- r8@local.test allow_rule
smtp --local-interface 127.0.0.40 --from friend@origin.example --to r9@example.net --quit-after RCPT
expect_rcpt r9@example.net "554 5.7.1" "Relaying denied (kanjiki)"
expect_verdicts --kind rcpt --ip 127.0.0.40 -- r9@example.net relay_denied

say "-- SIGHUP with a broken rules file keeps the running policy"
cp "$T/rules/50-site.rules" "$T/good.rules"
printf 'deny client 127.0.0.51\ndeny clinet 127.0.0.52\n' >>"$T/rules/50-site.rules"
before=$(log_count 'reload refused')
kill -HUP "$KJ_PID"
end=$(($(date +%s) + 5))
while [ "$(log_count 'reload refused')" = "$before" ] && [ "$(date +%s)" -lt $end ]; do sleep 0.2; done
kill -0 "$KJ_PID" 2>/dev/null || fail "kanjiki-milter died on SIGHUP"
expect_log_line 'reload refused, keeping the running policy' '50-site.rules:9:6:'
smtp --local-interface 127.0.0.51 --from someone@origin.example --to r10@local.test --quit-after RCPT
expect_rcpt r10@local.test 250
smtp --local-interface 127.0.0.50 --from someone@origin.example --to r11@local.test --quit-after RCPT
expect_rcpt r11@local.test "550 5.7.1" "kanjiki"
note "(old rules still in force)"

say "-- SIGHUP with a good rules file applies it"
cp "$T/good.rules" "$T/rules/50-site.rules"
printf 'deny client 127.0.0.51 reply "550 5.7.1 new rule in force"\n' >>"$T/rules/50-site.rules"
kill -HUP "$KJ_PID"
sleep 1.5
kill -0 "$KJ_PID" 2>/dev/null || fail "kanjiki-milter died on SIGHUP"
smtp --local-interface 127.0.0.51 --from someone@origin.example --to r12@local.test --quit-after RCPT
expect_rcpt r12@local.test "550 5.7.1 new rule in force"

say "-- monitor mode: decisions recorded, nothing refused"
kj_stop || fail "kanjiki-milter did not exit 0 on SIGTERM"
kj_conf <<EOF
mode = monitor
EOF
kj_start
smtp --local-interface 127.0.0.20 --from watcher@origin.example --to mon1@example.net
expect_rcpt mon1@example.net 250
expect_queued "relay attempt passes in monitor mode"
MON_QID=$QUEUE_ID
pf_log_wait "$MON_QID: to=<mon1@example.net>.*status=sent" 10 || fail "monitor-mode message not delivered"
ok "delivered (to the discard transport)"
pf_log_wait "$MON_QID: milter-header-warning: header X-Kanjiki-Monitor: .*: monitor header: would reject <mon1@example.net> \(relay_denied\)" 10 ||
	fail "no X-Kanjiki-Monitor header naming mon1@example.net and relay_denied seen by Postfix"
ok "Postfix saw X-Kanjiki-Monitor: would reject <mon1@example.net> (relay_denied)"
wait_verdict --ip 127.0.0.20 --rcpt mon1@example.net --action reject
json_check "monitor verdict(s): monitor=true, action=reject, relay_denied" \
	'all(v["monitor"] is True and v["action"] == "reject" for v in V) and anycode("relay_denied")'
smtp --local-interface 127.0.0.50 --from someone@origin.example --to mon2@local.test,mon3@local.test
expect_rcpt mon2@local.test 250
expect_rcpt mon3@local.test 250
expect_queued "deny rule passes in monitor mode"
wait_verdict --ip 127.0.0.50 --rcpt mon2@local.test --action reject
json_check "monitor verdict for the deny rule: monitor=true, deny_rule" \
	'all(v["monitor"] is True for v in V) and anycode("deny_rule")'
expect_log_line verdict client=127.0.0.20 'reject(monitor)'
n=$(query_count --ip 127.0.0.20 --rcpt mon1@example.net)
note "($n verdict(s) recorded for mon1@example.net)"

done_ok
