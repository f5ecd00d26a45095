# tests/e2e/lib.sh: shared helpers for the end-to-end tests and the demo.
#
# Sourced (bash) by tests/e2e/t_*.sh and tests/e2e/demo.sh.  Everything runs
# in one private temporary directory ($T): a private Postfix instance (its
# own configuration, queue and data directories, listening on 127.0.0.1 and
# [::1] on a high port, every delivery discarded, chroot off, its log in
# $T/postfix/maillog) and kanjiki-milter on a unix socket under $T.  The
# system Postfix (/etc/postfix, port 25) is never touched: every postfix
# command gets -c $T/postfix/etc.
#
# Postfix's own relay guard is deliberately too loose (mynetworks =
# 127.0.0.0/8 [::1]/128): it would relay for every loopback client, so that
# kanjiki alone stands guard.
#
# Usage in a test:
#   . "$(dirname "$0")/lib.sh"
#   e2e_init                    # temp dir, traps, kanjiki user/group
#   kj_conf <<EOF               # extra kanjiki.conf lines (optional)
#   trusted_networks = 127.0.0.10/32
#   EOF
#   kj_start                    # kanjiki-milter -f -c $KJ_CONF
#   pf_start milter             # private postfix with smtpd_milters
#   smtp --from a@b.example --to x@example.net --local-interface 127.0.0.20
#   expect_rcpt x@example.net 554 '5.7.1' 'kanjiki'
#   wait_verdict --ip 127.0.0.20 --rcpt x@example.net --action reject
#
# Every failure goes through fail(), which prints the evidence (the SMTP
# transcript tail, the milter log tail, the Postfix log tail) and exits 1.

set -u

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${BUILD_DIR:=${1:-build}}"
BUILD=$(cd "$BUILD_DIR" 2>/dev/null && pwd) || BUILD=$BUILD_DIR
MILTER=$BUILD/kanjiki-milter
CLI=$BUILD/kanjiki

E2E_NAME=$(basename "$0" .sh)
T=
PF_PORT=
PF_PLAIN_PORT=
PF_ETC=
PF_RUNNING=0
KJ_PID=
KJ_CONF=
KJ_SOCK=
KJ_DB=
KJ_LOG=
SMTP_LOG=
E2E_FAILED=0
E2E_CHECKS=0
E2E_T0=$(date +%s)

# ---------------------------------------------------------------- reporting

say()  { printf '%s\n' "$*"; }
note() { printf '  %s\n' "$*"; }
# ok MESSAGE: one passed check.
ok()   { E2E_CHECKS=$((E2E_CHECKS + 1)); printf '  ok   %s\n' "$*"; }

# tail_of FILE N TITLE: print the last N lines of FILE under a heading.
tail_of() {
	[ -n "$1" ] && [ -s "$1" ] || return 0
	printf -- '---- %s (%s, last %s lines) ----\n' "$3" "$1" "$2"
	tail -n "$2" "$1" | cat -v
}

# evidence: the SMTP transcript tail, the milter log tail, the Postfix log
# tail.  Printed on every failure.
evidence() {
	tail_of "$SMTP_LOG" 30 "SMTP transcript"
	tail_of "$KJ_LOG" 25 "kanjiki-milter log"
	[ -n "$T" ] && tail_of "$T/postfix/maillog" 15 "Postfix log"
	return 0
}

# fail MESSAGE...: print the failure with evidence and stop the test.
fail() {
	E2E_FAILED=1
	printf '  FAIL %s\n' "$*"
	evidence
	exit 1
}

# fail_noev MESSAGE...: a failure whose evidence was printed by the caller.
fail_noev() {
	E2E_FAILED=1
	printf '  FAIL %s\n' "$*"
	exit 1
}

# ---------------------------------------------------------------- setup

# need_root_and_tools: the harness (run.sh) checks root/postfix; a test run
# on its own gets the same check.
need_tools() {
	local t
	for t in postfix postconf postmap swaks saslpasswd2 sqlite3 python3; do
		command -v "$t" >/dev/null 2>&1 || fail "missing tool: $t"
	done
	[ "$(id -u)" = 0 ] || fail "must run as root"
	[ -x "$MILTER" ] || fail "no executable $MILTER (build first: make)"
	[ -x "$CLI" ] || fail "no executable $CLI (build first: make)"
}

# kj_user: the system user kanjiki-milter drops to, with postfix in its
# group so that smtpd may use the group-only socket.  Must happen before
# Postfix starts (its daemons pick up supplementary groups at start).
kj_user() {
	if ! id kanjiki >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin kanjiki ||
			fail "useradd kanjiki failed"
	fi
	if ! id -nG postfix | tr ' ' '\n' | grep -qx kanjiki; then
		usermod -aG kanjiki postfix || fail "usermod -aG kanjiki postfix failed"
	fi
}

# e2e_init [--no-binaries]: temp dir, traps, user.  With --no-binaries the
# kanjiki binaries are not required (Postfix-only self tests).
e2e_init() {
	local need_bin=1
	[ "${1:-}" = --no-binaries ] && need_bin=0
	if [ $need_bin = 1 ]; then
		need_tools
	else
		[ "$(id -u)" = 0 ] || fail "must run as root"
	fi
	T=$(mktemp -d "${TMPDIR:-/tmp}/kanjiki-e2e.$E2E_NAME.XXXXXX") || fail "mktemp"
	chmod 0755 "$T"
	SMTP_LOG=$T/smtp.log
	: >"$SMTP_LOG"
	trap e2e_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	kj_user
	mkdir -p "$T/rules" "$T/db"
	chown kanjiki:kanjiki "$T/db"
	chmod 0750 "$T/db"
	KJ_CONF=$T/kanjiki.conf
	KJ_SOCK=$T/run/kanjiki.sock
	KJ_DB=$T/db/kanjiki.db
	KJ_LOG=$T/milter.log
	kj_conf </dev/null
}

# dns_start: the private DNS of tests/dnsenv in $T/dns, its variables
# ($DNS_FRONT, $DNS_RBL, $DNS_DEAD...) set; stopped at exit before the
# harness's own cleanup (which removes $T). Without rbldnsd or dnsmasq the
# test is skipped (exit 0), unless KANJIKI_REQUIRE_E2E=1.
DNSENV=$E2E_DIR/../dnsenv/dnsenv.sh
dns_cleanup() {
	local rc=$?
	[ -n "$T" ] && [ -d "$T/dns" ] && sh "$DNSENV" stop "$T/dns" >>"$T/dnsenv.out" 2>&1
	(exit $rc)
	e2e_cleanup
}
dns_start() {
	trap dns_cleanup EXIT
	sh "$DNSENV" start "$T/dns" >"$T/dnsenv.out" 2>&1
	local rc=$?
	if [ $rc = 77 ]; then
		cat "$T/dnsenv.out"
		[ "${KANJIKI_REQUIRE_E2E:-0}" = 1 ] &&
			fail "KANJIKI_REQUIRE_E2E=1 but tests/dnsenv cannot run here (rbldnsd/dnsmasq missing)"
		say "SKIP: $E2E_NAME needs rbldnsd and dnsmasq (apt-get install rbldnsd dnsmasq-base)"
		exit 0
	fi
	[ $rc = 0 ] || { cat "$T/dnsenv.out"; fail "tests/dnsenv/dnsenv.sh start failed (exit $rc)"; }
	. "$T/dns/env.sh"
}

e2e_cleanup() {
	local rc=$?
	trap - EXIT
	set +e
	pf_stop
	kj_stop
	[ -n "${E2E_EXTRA_PIDS:-}" ] && kill $E2E_EXTRA_PIDS 2>/dev/null
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ $rc != 0 ] || [ "${KANJIKI_E2E_KEEP:-0}" = 1 ]; then
			say "  (test directory kept: $T)"
		else
			rm -rf "$T"
		fi
	fi
	exit $rc
}

# done_ok: last line of every test.
done_ok() {
	say "  $E2E_CHECKS checks passed in $(($(date +%s) - E2E_T0))s"
	exit 0
}

# free_port: a TCP port free on both 127.0.0.1 and ::1.
free_port() {
	python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    try:
        for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, p))
            s.close()
    except OSError:
        continue
    print(p)
    break
EOF
}

# wait_port HOST PORT SECONDS: until something accepts TCP connections there.
wait_port() {
	python3 - "$1" "$2" "$3" <<'EOF'
import socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + secs
while time.time() < end:
    try:
        s = socket.create_connection((host, port), timeout=1)
        s.close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
}

# ---------------------------------------------------------------- Postfix

# pf_start [milter] [main.cf lines...]: start the private Postfix instance
# on 127.0.0.1:$PF_PORT and [::1]:$PF_PORT ($PF_PORT chosen here unless set).
# With "milter", smtpd talks to kanjiki-milter on $KJ_SOCK.  Extra
# arguments are appended to main.cf ("key = value").  PF_PLAIN=1 adds a
# listener without the milter on $PF_PLAIN_PORT; PF_MASTER_EXTRA holds more
# master.cf lines.
pf_start() {
	local with_milter=0 line
	if [ "${1:-}" = milter ]; then
		with_milter=1
		shift
	fi
	[ -n "$PF_PORT" ] || PF_PORT=$(free_port)
	[ -n "$PF_PORT" ] || fail "no free port"
	local P=$T/postfix
	PF_ETC=$P/etc
	mkdir -p "$PF_ETC/sasl" "$P/queue" "$P/data"
	chown postfix:postfix "$P/data"
	: >"$P/maillog"

	# Cyrus SASL: user alice@local.test, password in a sasldb in the test
	# dir.  Debian's Postfix reads smtpd.conf from $config_directory/sasl
	# (it ignores cyrus_sasl_config_path), so it goes there; the setting
	# below names the same directory for other builds.
	cat >"$PF_ETC/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $PF_ETC/sasl/sasldb2
EOF
	printf '%s' "${PF_SASL_PASSWORD:-wonderland}" |
		saslpasswd2 -p -c -f "$PF_ETC/sasl/sasldb2" -u local.test alice ||
		fail "saslpasswd2 failed"
	chown root:postfix "$PF_ETC/sasl/sasldb2"
	chmod 0640 "$PF_ETC/sasl/sasldb2"

	cat >"$PF_ETC/main.cf" <<EOF
# private Postfix instance for the kanjiki end-to-end tests ($T)
compatibility_level = 3.6
meta_directory = /etc/postfix
config_directory = $PF_ETC
queue_directory = $P/queue
data_directory = $P/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $P/maillog
maillog_file_prefixes = $P
myhostname = mx.local.test
mydomain = local.test
myorigin = local.test
mydestination = local.test
relay_domains = relay.test
# deliberately too loose: Postfix alone would relay for every loopback client
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions =
inet_interfaces = loopback-only
inet_protocols = all
# every delivery discarded
local_transport = discard:local delivery discarded
virtual_transport = discard:virtual delivery discarded
relay_transport = discard:relay delivery discarded
default_transport = discard:delivery discarded
local_recipient_maps =
alias_maps =
alias_database =
relayhost =
biff = no
smtpd_banner = \$myhostname ESMTP kanjiki-e2e
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
smtpd_junk_command_limit = 1000
in_flow_delay = 0
# SMTP AUTH through Cyrus SASL with a sasldb in the test directory
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $PF_ETC/sasl
smtpd_sasl_local_domain = local.test
smtpd_sasl_security_options = noanonymous
EOF
	if [ $with_milter = 1 ]; then
		cat >>"$PF_ETC/main.cf" <<EOF
smtpd_milters = unix:$KJ_SOCK
non_smtpd_milters =
milter_default_action = tempfail
milter_protocol = 6
EOF
	fi
	for line in "$@"; do
		printf '%s\n' "$line" >>"$PF_ETC/main.cf"
	done
	# PF_PLAIN=1: a second listener, 127.0.0.1:$PF_PLAIN_PORT, without the
	# milter (for "what Postfix alone does" comparisons)
	local plain=
	if [ "${PF_PLAIN:-0}" = 1 ]; then
		[ -n "${PF_PLAIN_PORT:-}" ] || PF_PLAIN_PORT=$(free_port)
		plain="127.0.0.1:$PF_PLAIN_PORT inet n - n - - smtpd -o smtpd_milters="
	fi

	# chroot off everywhere ("n" in column 5); only what the tests use
	cat >"$PF_ETC/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - - smtpd
[::1]:$PF_PORT inet n - n - - smtpd
$plain
${PF_MASTER_EXTRA:-}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	postfix -c "$PF_ETC" check >"$P/start.log" 2>&1 ||
		{ cat "$P/start.log"; fail "postfix check failed"; }
	postfix -c "$PF_ETC" start >>"$P/start.log" 2>&1 ||
		{ cat "$P/start.log"; fail "postfix start failed"; }
	PF_RUNNING=1
	wait_port 127.0.0.1 "$PF_PORT" 15 ||
		{ cat "$P/start.log"; fail "Postfix does not answer on 127.0.0.1:$PF_PORT"; }
	wait_port ::1 "$PF_PORT" 5 ||
		{ cat "$P/start.log"; fail "Postfix does not answer on [::1]:$PF_PORT"; }
	if [ -n "$plain" ]; then
		wait_port 127.0.0.1 "$PF_PLAIN_PORT" 5 ||
			fail "Postfix does not answer on 127.0.0.1:$PF_PLAIN_PORT"
	fi
}

pf_stop() {
	[ "$PF_RUNNING" = 1 ] || return 0
	PF_RUNNING=0
	postfix -c "$PF_ETC" stop >>"$T/postfix/start.log" 2>&1
	# wait for master to go away, so that the next instance (and rm -rf)
	# finds nothing running
	local i pidf=$T/postfix/queue/pid/master.pid pid
	pid=$(tr -dc 0-9 <"$pidf" 2>/dev/null)
	for i in $(seq 50); do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	return 0
}

# pf_log_wait PATTERN SECONDS: until the Postfix log matches (ERE).
pf_log_wait() {
	local end=$(($(date +%s) + $2))
	while [ "$(date +%s)" -le $end ]; do
		grep -Eq -- "$1" "$T/postfix/maillog" && return 0
		sleep 0.2
	done
	return 1
}

# ---------------------------------------------------------------- kanjiki

# kj_conf: (re)write $KJ_CONF from the base settings plus stdin (later keys
# replace earlier ones).
kj_conf() {
	{
		cat <<EOF
# kanjiki.conf for $E2E_NAME (relative paths are relative to this file)
socket = unix:run/kanjiki.sock
database = db/kanjiki.db
user = kanjiki
mode = enforce
local_domains = local.test
relay_domains = relay.test
trusted_networks = 127.0.0.10/32
rules = rules
log = stderr
popauth_poll = 200ms
EOF
		cat
	} >"$KJ_CONF"
}

# kj_start: kanjiki-milter -f in the background, stderr to $KJ_LOG; wait
# until its socket accepts connections.
kj_start() {
	[ -z "$KJ_PID" ] || fail "kj_start: milter already running"
	"$MILTER" -f -c "$KJ_CONF" >>"$KJ_LOG" 2>&1 &
	KJ_PID=$!
	local i
	for i in $(seq 100); do
		[ -S "$KJ_SOCK" ] && python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])' "$KJ_SOCK" 2>/dev/null && return 0
		kill -0 "$KJ_PID" 2>/dev/null || {
			wait "$KJ_PID"
			local rc=$?
			KJ_PID=
			fail "kanjiki-milter exited with status $rc before opening $KJ_SOCK"
		}
		sleep 0.1
	done
	fail "kanjiki-milter did not create $KJ_SOCK within 10s"
}

# kj_stop: SIGTERM and wait (the milter writes queued verdicts, removes its
# socket).  Returns the exit status.
kj_stop() {
	[ -n "$KJ_PID" ] || return 0
	local pid=$KJ_PID rc i
	KJ_PID=
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 450); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "  kanjiki-milter (pid $pid) still running 45s after SIGTERM: SIGKILL"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	rc=$?
	return $rc
}

# kq ARGS...: kanjiki -c $KJ_CONF ARGS... (as root, like an administrator).
kq() { "$CLI" -c "$KJ_CONF" "$@"; }

# kq_kanjiki ARGS...: the same as the kanjiki user (as the README says
# commands that write should be run).
kq_kanjiki() { runuser -u kanjiki -- "$CLI" -c "$KJ_CONF" "$@"; }

# query_count ARGS...: number of JSON verdicts `kanjiki query ARGS` prints.
query_count() {
	kq query --format json --limit 0 "$@" 2>"$T/query.err" | grep -c '^{'
}

# wait_verdict [--count N] [--secs S] QUERY ARGS...: poll `kanjiki query`
# (verdicts are written asynchronously) until at least N (default 1)
# verdicts match; print them (JSON) to $T/verdicts.json.  Fails with the
# query output otherwise.
wait_verdict() {
	local n=1 secs=6 end got
	while :; do
		case "${1:-}" in
		--count) n=$2; shift 2 ;;
		--secs) secs=$2; shift 2 ;;
		*) break ;;
		esac
	done
	end=$(($(date +%s) + secs))
	while :; do
		kq query --format json --limit 0 "$@" >"$T/verdicts.json" 2>"$T/query.err"
		got=$(grep -c '^{' "$T/verdicts.json")
		[ "$got" -ge "$n" ] && return 0
		[ "$(date +%s)" -ge $end ] && break
		sleep 0.25
	done
	say "---- kanjiki query --format json $* (stdout/stderr) ----"
	cat "$T/verdicts.json" "$T/query.err" | tail -n 20
	say "---- kanjiki query --format json --limit 8 (everything, newest first) ----"
	kq query --format json --limit 8 2>&1 | tail -n 8
	fail "expected >= $n verdict(s) for: kanjiki query $*; found $got within ${secs}s"
}

# json_check WHAT PYEXPR: evaluate a Python expression over the verdicts in
# $T/verdicts.json (list V of dicts, V[0] newest; E is os.environ; codes(v)
# lists a verdict's reason codes); fail with WHAT when false.
json_check() {
	local what=$1 expr=$2
	python3 - "$T/verdicts.json" "$expr" <<'EOF' || { cat "$T/verdicts.json" | tail -n 5; fail "$what"; }
import json, os, sys
E = os.environ
V = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def codes(v): return [r.get("code") for r in (v.get("reasons") or [])]
def anycode(c): return any(c in codes(v) for v in V)
ok = eval("(" + sys.argv[2] + "\n)")
sys.exit(0 if ok else 1)
EOF
	ok "$what"
}

# ---------------------------------------------------------------- SMTP

# smtp SWAKS-ARGS...: run swaks against the private Postfix (127.0.0.1 by
# default; give --server/--port/-6 yourself for IPv6), transcript appended
# to $SMTP_LOG and kept alone in $T/last.smtp.  Never fails by itself.
smtp() {
	local args=("$@") has_server=0 a
	for a in "${args[@]}"; do
		[ "$a" = --server ] || [ "$a" = -s ] && has_server=1
	done
	[ $has_server = 1 ] || args=(--server 127.0.0.1 --port "$PF_PORT" "${args[@]}")
	{
		printf '\n=== swaks'
		printf ' %q' "${args[@]}"
		printf '\n'
	} >>"$SMTP_LOG"
	swaks --timeout 40 --hide-informational "${args[@]}" >"$T/last.smtp" 2>&1
	SMTP_RC=$?
	cat "$T/last.smtp" >>"$SMTP_LOG"
	printf '=== swaks exit status %s\n' "$SMTP_RC" >>"$SMTP_LOG"
	return 0
}

# rcpt_reply ADDR: the (last) reply to RCPT TO:<ADDR> in $T/last.smtp, as
# "CODE TEXT" on one line (multi-line replies joined with " | ").
rcpt_reply() {
	python3 - "$T/last.smtp" "$1" <<'EOF'
import re, sys
addr = sys.argv[2]
lines = open(sys.argv[1], encoding="latin-1").read().splitlines()
want = "RCPT TO:<%s>" % addr
reply, cur = None, None
for l in lines:
    m = re.match(r"^ -> (.*)$", l)
    if m:
        cur = m.group(1) == want
        if cur:
            reply = []
        continue
    m = re.match(r"^(<-|<\*\*)\s+(\d{3})([ -])(.*)$", l)
    if m and cur:
        reply.append(m.group(2) + " " + m.group(4))
        if m.group(3) == " ":
            cur = False
if reply is None:
    print("NONE (no RCPT TO:<%s> in the transcript)" % addr)
else:
    print(" | ".join(reply) if reply else "NONE (no reply)")
EOF
}

# expect_rcpt ADDR CODE [SUBSTRING...]: the reply to RCPT TO:<ADDR> in the
# last transcript starts with CODE (a prefix: "250", "554 5.7.1", "5") and
# contains every SUBSTRING (case-sensitive).
expect_rcpt() {
	local addr=$1 code=$2 r s
	shift 2
	r=$(rcpt_reply "$addr")
	case "$r" in
	"$code"*) ;;
	*) fail "RCPT TO:<$addr>: expected $code..., got: $r" ;;
	esac
	for s in "$@"; do
		case "$r" in
		*"$s"*) ;;
		*) fail "RCPT TO:<$addr>: reply lacks \"$s\": $r" ;;
		esac
	done
	ok "RCPT TO:<$addr> -> ${r:0:110}"
}

# expect_queued: the last transcript shows the message accepted at end of
# DATA ("250 ... queued as ID"); sets QUEUE_ID.
expect_queued() {
	QUEUE_ID=$(sed -n 's/^<-  250 .*queued as \([0-9A-Za-z]*\).*/\1/p' "$T/last.smtp" | tail -n 1)
	[ -n "$QUEUE_ID" ] || fail "message not accepted at end of DATA (${1:-})"
	ok "message accepted, queued as $QUEUE_ID${1:+ ($1)}"
}

# log_count ERE: how many lines of the milter log match.
log_count() { grep -Ec -- "$1" "$KJ_LOG"; }

# expect_log_line WORD...: some line of the milter log contains every WORD
# (fixed strings).  Waits up to 5 s (the log line follows the reply).
expect_log_line() {
	local end=$(($(date +%s) + 5))
	while :; do
		if python3 - "$KJ_LOG" "$@" <<'EOF'
import sys
words = sys.argv[2:]
for l in open(sys.argv[1], encoding="latin-1"):
    if all(w in l for w in words):
        sys.exit(0)
sys.exit(1)
EOF
		then
			ok "milter log: $*"
			return 0
		fi
		[ "$(date +%s)" -ge $end ] && break
		sleep 0.2
	done
	fail "no line in the milter log with all of: $*"
}

# expect_verdicts QUERY-ARGS... -- ADDR CODE [ADDR CODE...]: wait until
# `kanjiki query QUERY-ARGS` holds a verdict for every ADDR (the refused
# recipient of a rcpt verdict, or an accepted one of a message verdict) with
# CODE among its reasons (for a message verdict: a reason for that
# recipient, or any reason when the reasons name no recipient).
expect_verdicts() {
	local q=() secs=8 end
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		q+=("$1")
		shift
	done
	shift
	end=$(($(date +%s) + secs))
	while :; do
		kq query --format json --limit 0 "${q[@]}" >"$T/verdicts.json" 2>"$T/query.err"
		if python3 - "$T/verdicts.json" "$@" >"$T/expect.out" <<'PYEOF'
import json, sys
V = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
pairs = sys.argv[2:]
def bare(a): return (a or "").strip()[1:-1] if (a or "").strip().startswith("<") and (a or "").strip().endswith(">") else (a or "").strip()
missing = []
for addr, code in zip(pairs[0::2], pairs[1::2]):
    found = False
    for v in V:
        rs = v.get("reasons") or []
        if v.get("kind") == "rcpt" and bare(v.get("rcpt")) == addr:
            found = found or any(r.get("code") == code for r in rs)
        elif v.get("kind") == "message" and addr in [bare(x) for x in v.get("recipients") or []]:
            found = found or any(r.get("code") == code and bare(r.get("rcpt")) in ("", addr) for r in rs)
    if not found:
        missing.append("%s (%s)" % (addr, code))
if missing:
    print("missing: " + ", ".join(missing))
    sys.exit(1)
PYEOF
		then
			ok "verdicts (kanjiki query ${q[*]}): $(($# / 2)) recipient(s) with the expected reason codes"
			return 0
		fi
		[ "$(date +%s)" -ge $end ] && break
		sleep 0.3
	done
	say "---- kanjiki query --format json ${q[*]} ----"
	cut -c1-400 "$T/verdicts.json" | tail -n 25
	cat "$T/query.err"
	fail "verdicts not as expected: $(cat "$T/expect.out")"
}

# raw_smtp SOURCE-ADDR COMMAND...: tests/e2e/smtpraw.py against the private
# Postfix (127.0.0.1:$PF_PORT, or RAW_HOST/RAW_PORT); \xNN escapes in the
# commands become bytes.  Transcript as for smtp().
raw_smtp() {
	local host=${RAW_HOST:-127.0.0.1} port=${RAW_PORT:-$PF_PORT}
	{
		printf '\n=== smtpraw %s:%s from %s:' "$host" "$port" "$1"
		printf ' %q' "${@:2}"
		printf '\n'
	} >>"$SMTP_LOG"
	python3 "$E2E_DIR/smtpraw.py" "$host" "$port" "$@" >"$T/last.smtp" 2>&1
	SMTP_RC=$?
	cat "$T/last.smtp" >>"$SMTP_LOG"
	return 0
}
