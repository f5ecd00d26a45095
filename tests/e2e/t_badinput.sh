#!/bin/bash
# t_badinput.sh: bad configuration, bad rules and bad SMTP input.
#
# Checks:
#  - kanjiki-milter -n: a good configuration prints "configuration OK" and
#    exits 0; each bad configuration (unknown key, bad mode, prefix with
#    host bits, bad duration, unknown allow_routing form) exits non-zero
#    naming FILE:LINE; each bad rules file (misspelt subject, prefix with
#    host bits, unknown verb, unterminated string, reply on allow) exits
#    non-zero naming FILE:LINE:COLUMN; `kanjiki check` reports the same
#    place; started for real, a bad configuration never opens its socket;
#  - through Postfix (with smtputf8_enable = no, so that Postfix passes
#    8-bit and control bytes in HELO and RCPT on to the milter): a UTF-8
#    recipient is accepted, invalid UTF-8, a control character, a 65-octet
#    local part and a path over 256 octets get "501 5.1.3 Bad recipient
#    address syntax (kanjiki)" (bad_syntax), an 8-bit foreign recipient is
#    refused as relay_denied; the HELO and sender with 8-bit/control bytes
#    are escaped in every query format and in the milter log;
#  - the socket is kanjiki:kanjiki and closed to others, the pidfile holds
#    the pid; the milter is still running and mail still flows after all
#    this, and it exits 0 on SIGTERM and removes its socket and pidfile.
#
# Not here: SMTPUTF8 recipients (t_relay, whose Postfix has SMTPUTF8 on); a
# client without an address (Postfix's XCLIENT ADDR=[UNAVAILABLE] sends the
# milter an INET connect with the address "unknown", which libmilter itself
# rejects before kanjiki sees it) and missing macros: tests/milter.
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
e2e_init

say "-- configuration errors: kanjiki-milter -n"
C=$T/cfg
mkdir -p "$C"
"$MILTER" -n -c "$KJ_CONF" >"$T/n.out" 2>"$T/n.err"
rc=$?
[ $rc = 0 ] && grep -q 'configuration OK' "$T/n.out" ||
	fail "kanjiki-milter -n on a good configuration: exit $rc, stdout: $(cat "$T/n.out"), stderr: $(cat "$T/n.err")"
ok "good configuration: exit 0, $(head -n 1 "$T/n.out")"

# bad_conf NAME LINE CONTENT: CONTENT (printf format, \n separated) in
# $C/NAME must be refused with NAME:LINE:
bad_conf() {
	local name=$1 line=$2 rc
	printf "$3" >"$C/$name"
	"$MILTER" -n -c "$C/$name" >"$T/n.out" 2>"$T/n.err"
	rc=$?
	[ $rc != 0 ] || fail "kanjiki-milter -n -c $name exited 0 (stdout: $(cat "$T/n.out"))"
	grep -q "$name:$line:" "$T/n.err" ||
		fail "kanjiki-milter -n -c $name: stderr lacks $name:$line: -- got: $(cat "$T/n.err")"
	ok "$name: exit $rc, $(head -n 1 "$T/n.err")"
}
bad_conf unknown-key.conf 5 '# kanjiki\nlocal_domains = local.test\nmode = enforce\n\nno_such_key = 1\n'
bad_conf bad-mode.conf 2 'local_domains = local.test\nmode = sometimes\n'
bad_conf host-bits.conf 3 '# trusted\n\ntrusted_networks = 127.0.0.0/8, 192.0.2.1/24\n'
bad_conf bad-duration.conf 1 'popauth_ttl = forever\n'
bad_conf bad-routing.conf 2 'mode = monitor\nallow_routing = percent_hack, teleport\n'

say "-- rules errors: kanjiki-milter -n and kanjiki check"
# bad_rules NAME LINE COLUMN CONTENT
bad_rules() {
	local name=$1 line=$2 col=$3 dir rc
	dir=$C/rules-${name%.rules}
	mkdir -p "$dir"
	printf 'deny client 198.51.100.7\n' >"$dir/00-ok.rules"
	printf "$4" >"$dir/$name"
	printf 'local_domains = local.test\nrules = %s\n' "$(basename "$dir")" >"$dir.conf"
	"$MILTER" -n -c "$dir.conf" >"$T/n.out" 2>"$T/n.err"
	rc=$?
	[ $rc != 0 ] || fail "kanjiki-milter -n with $name exited 0 (stdout: $(cat "$T/n.out"))"
	grep -q "$name:$line:$col:" "$T/n.err" ||
		fail "kanjiki-milter -n with $name: stderr lacks $name:$line:$col: -- got: $(cat "$T/n.err")"
	ok "$name: exit $rc, $(head -n 1 "$T/n.err")"
	"$CLI" -c "$dir.conf" check >"$T/n.out" 2>"$T/n.err"
	rc=$?
	[ $rc = 1 ] && grep -q "$name:$line:$col:" "$T/n.err" ||
		fail "kanjiki check with $name: exit $rc (want 1), stderr: $(cat "$T/n.err")"
	ok "kanjiki check: exit 1, same place"
}
bad_rules 10-subject.rules 2 6 '# a comment\ndeny clinet 192.0.2.1\n'
bad_rules 20-hostbits.rules 1 13 'deny client 192.0.2.1/24\n'
bad_rules 30-verb.rules 3 1 'allow client 127.0.0.40\n\nblock client 192.0.2.9\n'
bad_rules 40-string.rules 1 30 'deny rcpt x@local.test reply "550 5.7.1 unterminated\n'
bad_rules 50-allowreply.rules 1 24 'allow client 127.0.0.1 reply "550 5.7.1 no"\n'

say "-- a bad configuration never opens its socket"
cp "$C/bad-mode.conf" "$T/bad-start.conf"
printf 'socket = unix:run-bad/kanjiki.sock\ndatabase = db/bad.db\n' >>"$T/bad-start.conf"
timeout 20 "$MILTER" -f -c "$T/bad-start.conf" >"$T/n.out" 2>&1
rc=$?
[ $rc != 0 ] && [ $rc != 124 ] || fail "kanjiki-milter -f with a bad mode: exit $rc, output: $(cat "$T/n.out")"
[ -e "$T/run-bad/kanjiki.sock" ] && fail "a socket was created despite the bad configuration"
grep -q 'bad-start.conf:2:' "$T/n.out" || fail "no bad-start.conf:2: in: $(cat "$T/n.out")"
ok "kanjiki-milter -f with a bad configuration: exit $rc, no socket, $(head -n 1 "$T/n.out")"

say "-- bad SMTP input through Postfix"
kj_conf <<EOF
pidfile = run/kanjiki-milter.pid
EOF
kj_start
[ "$(stat -c %U:%G "$KJ_SOCK")" = kanjiki:kanjiki ] || fail "socket owned by $(stat -c %U:%G "$KJ_SOCK"), expected kanjiki:kanjiki"
case $(stat -c %a "$KJ_SOCK") in
660 | 770) ok "socket $(stat -c '%A %U:%G' "$KJ_SOCK") (owner and group only)" ;;
*) fail "socket mode $(stat -c %a "$KJ_SOCK"), expected 660 or 770" ;;
esac
[ "$(cat "$T/run/kanjiki-milter.pid" 2>/dev/null)" = "$KJ_PID" ] ||
	fail "pidfile run/kanjiki-milter.pid holds '$(cat "$T/run/kanjiki-milter.pid" 2>&1)', expected $KJ_PID"
ok "pidfile holds $KJ_PID"
pf_start milter "smtputf8_enable = no"
say "   Postfix on 127.0.0.1:$PF_PORT (smtputf8_enable = no)"
long65=$(printf 'a%.0s' $(seq 65))
long250=$(printf 'b%.0s' $(seq 250))
raw_smtp 127.0.0.20 'EHLO h\xe9lo\x01\x1b[31mx' 'MAIL FROM:<ev\xe9l@origin.example>' \
	'RCPT TO:<j\xc3\xbcrgen@local.test>' \
	'RCPT TO:<\xff\xfe@local.test>' \
	'RCPT TO:<u\x01x@local.test>' \
	"RCPT TO:<$long65@local.test>" \
	"RCPT TO:<$long250@local.test>" \
	'RCPT TO:<j\xc3\xbcrgen@example.net>' \
	DATA QUIT
expect_rcpt 'j\xc3\xbcrgen@local.test' 250
expect_rcpt '\xff\xfe@local.test' "501 5.1.3" "(kanjiki)"
expect_rcpt 'u\x01x@local.test' "501 5.1.3" "(kanjiki)"
expect_rcpt "$long65@local.test" "501 5.1.3" "(kanjiki)"
expect_rcpt "$long250@local.test" "501 5.1.3" "(kanjiki)"
expect_rcpt 'j\xc3\xbcrgen@example.net' "554 5.7.1" "Relaying denied (kanjiki)"
expect_queued "the UTF-8 local recipient"
wait_verdict --count 5 --ip 127.0.0.20 --kind rcpt
json_check "5 rcpt verdicts: 4 bad_syntax (501), 1 relay_denied" \
	'len(V) == 5 and sum(codes(v) == ["bad_syntax"] for v in V) == 4
	 and sum(codes(v) == ["relay_denied"] for v in V) == 1
	 and all(v["reply"].startswith("501 5.1.3") for v in V if codes(v) == ["bad_syntax"])'
wait_verdict --ip 127.0.0.20 --kind message
json_check "message verdict for the UTF-8 recipient, local_domain" \
	'len(V) == 1 and len(V[0]["recipients"]) == 1 and "local_domain" in codes(V[0])
	 and V[0]["recipients"][0].startswith("j") and V[0]["recipients"][0].endswith("rgen@local.test")'

# every output format escapes control characters and invalid UTF-8
for fmt in json csv table; do
	kq query --ip 127.0.0.20 --limit 0 --format $fmt >"$T/q.$fmt" 2>&1 || fail "query --format $fmt failed: $(cat "$T/q.$fmt")"
	python3 - "$T/q.$fmt" "$fmt" <<'EOF' || { cat -v "$T/q.$fmt" | head -n 20; fail "--format $fmt: unescaped bytes (above, cat -v)"; }
import sys
data = open(sys.argv[1], "rb").read()
fmt = sys.argv[2]
bad = [b for b in data if (b < 0x20 and b not in (0x0a, 0x0d)) or b == 0x7f]
if bad:
    print("control bytes in output: %r" % sorted(set(bad)))
    sys.exit(1)
try:
    data.decode("utf-8")
except UnicodeDecodeError as e:
    print("invalid UTF-8 in output: %s" % e)
    sys.exit(1)
if fmt == "json":
    import json
    for l in data.decode().splitlines():
        if l.strip():
            json.loads(l)
EOF
	ok "--format $fmt: valid, no raw control bytes or invalid UTF-8"
done
# shown_as FILE TEXT...: every TEXT (fixed string) occurs in FILE
shown_as() {
	local f=$1 w
	shift
	for w in "$@"; do
		grep -qF -- "$w" "$f" || { head -n 20 "$f"; fail "$(basename "$f") does not show $w"; }
	done
	ok "$(basename "$f") shows: $*"
}
shown_as "$T/q.table" 'ev\xe9l@origin.example' 'u\x01x@local.test' '\xff\xfe@local.test'
shown_as "$T/q.csv" 'h\xe9lo\x01\x1b[31mx' 'ev\xe9l@origin.example' 'u\x01x@local.test' '\xff\xfe@local.test'
python3 - "$KJ_LOG" <<'EOF' || fail "raw control bytes in the milter log"
import sys
for n, l in enumerate(open(sys.argv[1], "rb"), 1):
    if any((b < 0x20 and b not in (0x09, 0x0a)) or b == 0x7f for b in l):
        print("line %d: %r" % (n, l[:200]))
        sys.exit(1)
EOF
ok "milter log: no raw control bytes"

say "-- still alive, mail still flows"
kill -0 "$KJ_PID" 2>/dev/null || fail "kanjiki-milter is gone"
smtp --local-interface 127.0.0.20 --from after@origin.example --to after@local.test
expect_rcpt after@local.test 250
expect_queued
kj_stop || fail "kanjiki-milter did not exit 0 on SIGTERM (status $?)"
ok "kanjiki-milter exited 0 on SIGTERM"
[ -e "$KJ_SOCK" ] && fail "socket $KJ_SOCK left behind after SIGTERM"
ok "socket removed at exit"
[ -e "$T/run/kanjiki-milter.pid" ] && fail "pidfile left behind after SIGTERM"
ok "pidfile removed at exit"

done_ok
