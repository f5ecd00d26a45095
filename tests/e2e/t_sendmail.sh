#!/bin/bash
# t_sendmail.sh: kanjiki-milter behind a real sendmail (Debian's
# sendmail-bin 8.17), configured with contrib/sendmail/kanjiki.mc.
#
# sendmail-bin conflicts with the postfix package, so it is never
# installed: `apt-get download sendmail-bin sendmail-cf` fetches the two
# packages into a cache ($KANJIKI_SENDMAIL_DEBS, default
# /var/cache/kanjiki-test/sendmail; reused by later runs) and `dpkg -x`
# unpacks them into the test directory.  Libraries the binary needs that are
# missing (libwrap0) and m4 come from `make deps`; a run without them fetches
# and unpacks those packages too.  Without apt access: SKIP (exit 0), unless
# KANJIKI_REQUIRE_E2E=1, which makes it a failure.
#
# The private sendmail: sendmail.cf built with m4 from sendmail-cf's cf/
# tree and a private .mc (below) plus contrib/sendmail/kanjiki.mc with only
# the socket path changed; listens on 127.0.0.1 and [::1] on a high port;
# own queue, alias file, pid file, hosts file and service switch ("hosts
# files"; unresolvable sender domains accepted; PTR lookups of the clients
# still go to the system resolver, with 1s/1 retry) under the test directory
# (DontBlameSendmail=TrustStickyBit: the directory is under /tmp); local.test
# is local; local mail goes to a mailer that appends to
# $SM_DIR/mail/local/USER, everything else to a "sink" mailer that appends to
# $SM_DIR/mail/relayed/ADDRESS, so nothing leaves the machine.  Its own relay
# guard is deliberately too loose (RELAY_DOMAIN(127): it relays for every
# 127.x client), so that kanjiki alone stands guard; a second instance
# without the milter proves the hole.  sendmail runs as root in the
# foreground (-bD), started with LD_PRELOAD of a gethostname() (built here
# with cc) that answers mx.local.test: a host name without a dot makes sendmail
# sleep 60 seconds at every start ("My unqualified host name unknown;
# sleeping for retry") before it reads any configuration.  sendmail logs
# to syslog only; the evidence on failure is the SMTP transcript, the
# milter log, the mailer's delivery log and sendmail's queue listing.
#
# Checks:
#  - sendmail alone (no milter) relays for 127.0.0.20: the hole is real;
#  - local delivery from an unauthorised client accepted (250 at RCPT and
#    at the end of DATA), delivered to the local mailer; message verdict
#    accept, local_domain, with sendmail's queue id ({i});
#  - relay from 127.0.0.20 and from [::1] refused at RCPT with kanjiki's
#    "554 5.7.1 Relaying denied (kanjiki)" (sendmail alone would relay);
#    rcpt verdict relay_denied with the queue id (sendmail assigns it at
#    MAIL FROM) and the client address;
#  - relay from the trusted network 127.0.0.10 accepted and handed to the
#    sink mailer (trusted_network); its neighbour 127.0.0.11 refused;
#  - postmaster@[127.0.0.1] accepted as own_ip_literal: kanjiki got
#    {daemon_addr}; also from a third sendmail with only the
#    INPUT_MAIL_FILTER line (sendmail's default macro lists, which lack
#    {daemon_addr}): sendmail honours kanjiki's smfi_setsymlist;
#  - a forged Authentication-Results naming this MTA ($j, mx.local.test) and
#    a forged X-Kanjiki-Spam removed before delivery (j macro,
#    smfi_chgheader), a foreign Authentication-Results kept;
#  - score rules: a tagged message delivered with X-Kanjiki-Score and
#    X-Kanjiki-Spam (smfi_addheader), a quarantined one held in sendmail's
#    queue with kanjiki's reason (smfi_quarantine; `sendmail -bp -qQ`) and
#    delivered after `sendmail -Q -qQ -qIID` and a queue run, one refused at
#    the end of DATA with the threshold's reply;
#  - `kanjiki audit` (27 relay tests, nmap's 16 among them) from 127.0.0.1:
#    sendmail alone relays (exit 1); with kanjiki exit 0, and every test
#    sendmail alone relayed is refused at RCPT with kanjiki's reply;
#  - kanjiki-milter stopped: F=T makes sendmail answer 451 4.3.2, nothing is
#    delivered.
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
e2e_init

SNIPPET=$E2E_DIR/../../contrib/sendmail/kanjiki.mc
SM_DEBS=${KANJIKI_SENDMAIL_DEBS:-/var/cache/kanjiki-test/sendmail}
SM_DIR=$T/sendmail
SM_ROOT=$SM_DIR/root
SM_BIN=$SM_ROOT/usr/libexec/sendmail/sendmail
SM_MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
	cc -print-multiarch 2>/dev/null) || SM_MULTIARCH=
[ -n "$SM_MULTIARCH" ] || SM_MULTIARCH=x86_64-linux-gnu
# unpacked libraries (libwrap0 when make deps did not install it)
SM_LIBPATH=$SM_ROOT/lib/$SM_MULTIARCH:$SM_ROOT/usr/lib/$SM_MULTIARCH
SM_M4=
SM_PIDS=
SM_PORT=
SM_PLAIN_PORT=
SM_BARE_PORT=

# the evidence of lib.sh, with sendmail's instead of Postfix's
evidence() {
	tail_of "$SMTP_LOG" 30 "SMTP transcript"
	tail_of "$KJ_LOG" 25 "kanjiki-milter log"
	tail_of "$SM_DIR/deliver.log" 10 "sendmail mailer deliveries"
	if [ -x "$SM_BIN" ] && [ -f "$SM_DIR/milter/sendmail.cf" ]; then
		sm milter -bp >"$SM_DIR/mailq.out" 2>&1
		tail_of "$SM_DIR/mailq.out" 15 "sendmail -bp (queue)"
	fi
	for f in "$SM_DIR"/*/sendmail.out; do
		tail_of "$f" 10 "sendmail stdout/stderr"
	done
	return 0
}

# sm_skip REASON: no sendmail here.  SKIP, or a failure under
# KANJIKI_REQUIRE_E2E=1 (CI).
sm_skip() {
	[ "${KANJIKI_REQUIRE_E2E:-0}" = 1 ] &&
		fail "KANJIKI_REQUIRE_E2E=1 but t_sendmail cannot run: $*"
	say "SKIP: $E2E_NAME: $*"
	exit 0
}

# sm_cleanup: stop every sendmail started here, then lib.sh's cleanup.
sm_cleanup() {
	local rc=$? pid
	for pid in $SM_PIDS; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in $SM_PIDS; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	SM_PIDS=
	(exit $rc)
	e2e_cleanup
}
trap sm_cleanup EXIT

# newest_deb PACKAGE: the newest cached .deb of PACKAGE (empty if none).
newest_deb() {
	ls "$SM_DEBS/$1"_*.deb 2>/dev/null | sort -V | tail -n 1
}

# sm_fetch PACKAGE...: make sure the cache holds a .deb of each (apt-get
# download; once more after apt-get update when the package lists are
# missing or stale).
sm_fetch() {
	local p want=
	for p in "$@"; do
		[ -n "$(newest_deb "$p")" ] || want="$want $p"
	done
	[ -z "$want" ] && return 0
	command -v apt-get >/dev/null 2>&1 || sm_skip "no apt-get to fetch$want"
	mkdir -p "$SM_DEBS" || sm_skip "cannot create $SM_DEBS"
	note "apt-get download$want (into $SM_DEBS)"
	# shellcheck disable=SC2086
	if ! (cd "$SM_DEBS" && apt-get download -q -o APT::Sandbox::User=root $want) \
		>"$SM_DIR/apt.log" 2>&1; then
		note "apt-get download failed; apt-get update, then once more"
		apt-get update -qq >>"$SM_DIR/apt.log" 2>&1
		# shellcheck disable=SC2086
		(cd "$SM_DEBS" && apt-get download -q -o APT::Sandbox::User=root $want) \
			>>"$SM_DIR/apt.log" 2>&1 || {
			tail -n 5 "$SM_DIR/apt.log"
			sm_skip "apt-get download$want failed (no network or no Debian package lists?)"
		}
	fi
	for p in $want; do
		[ -n "$(newest_deb "$p")" ] || sm_skip "apt-get download $p left no .deb in $SM_DEBS"
	done
}

# sm_unpack PACKAGE...: dpkg -x the cached .debs into $SM_ROOT; a .deb
# that does not unpack (a broken download) is removed and fetched again.
sm_unpack() {
	local p deb
	for p in "$@"; do
		deb=$(newest_deb "$p")
		if ! dpkg -x "$deb" "$SM_ROOT" 2>>"$SM_DIR/apt.log"; then
			note "$deb does not unpack: fetching it again"
			rm -f "$deb"
			sm_fetch "$p"
			dpkg -x "$(newest_deb "$p")" "$SM_ROOT" ||
				fail "dpkg -x $(newest_deb "$p") failed"
		fi
	done
}

# sm INSTANCE ARGS...: the private sendmail binary with that instance's
# configuration.
sm() {
	local inst=$1
	shift
	LD_LIBRARY_PATH=$SM_LIBPATH LD_PRELOAD=$SM_DIR/gethostname.so \
		"$SM_BIN" -C "$SM_DIR/$inst/sendmail.cf" "$@"
}

# sm_config INSTANCE PORT [milter|bare]: $SM_DIR/INSTANCE/sendmail.cf, from
# the private .mc below, plus contrib/sendmail/kanjiki.mc with "milter", plus
# only its INPUT_MAIL_FILTER line (sendmail's default macro lists) with "bare".
sm_config() {
	local inst=$1 port=$2 with_milter=${3:-} D=$SM_DIR/$1
	mkdir -p "$D/queue"
	chmod 0700 "$D/queue"
	cat >"$D/sendmail.mc" <<EOF
divert(-1)
# private sendmail for kanjiki's end-to-end test ($T)
divert(0)dnl
VERSIONID(\`kanjiki t_sendmail $inst')dnl
OSTYPE(\`linux')dnl
FEATURE(\`no_default_msa')dnl
define(\`confDOMAIN_NAME', \`mx.local.test')dnl
define(\`confDONT_BLAME_SENDMAIL', \`TrustStickyBit')dnl
define(\`confSERVICE_SWITCH_FILE', \`$SM_DIR/service.switch')dnl
define(\`confHOSTS_FILE', \`$SM_DIR/hosts')dnl
define(\`ALIAS_FILE', \`$SM_DIR/aliases')dnl
define(\`QUEUE_DIR', \`$D/queue')dnl
define(\`STATUS_FILE', \`$D/statistics')dnl
define(\`confPID_FILE', \`$D/sendmail.pid')dnl
define(\`confCW_FILE', \`$SM_DIR/local-host-names')dnl
define(\`confCR_FILE', \`-o $SM_DIR/relay-domains')dnl
define(\`confCT_FILE', \`-o $SM_DIR/trusted-users')dnl
define(\`confHELP_FILE', \`$SM_ROOT/etc/mail/helpfile')dnl
define(\`confDEAD_LETTER_DROP', \`$SM_DIR/dead.letter')dnl
define(\`confEBINDIR', \`$SM_ROOT/usr/libexec/sendmail')dnl
define(\`confTO_IDENT', \`0s')dnl
define(\`confBIND_OPTS', \`-DNSRCH -DEFNAMES')dnl
define(\`confTO_RESOLVER_RETRANS', \`1s')dnl
define(\`confTO_RESOLVER_RETRY', \`1')dnl
FEATURE(\`nocanonify')dnl
FEATURE(\`accept_unresolvable_domains')dnl
FEATURE(\`use_cw_file')dnl
dnl deliberately too loose: sendmail alone relays for every 127.x client
RELAY_DOMAIN(\`127')dnl
DAEMON_OPTIONS(\`Family=inet, Name=MTA-v4, Port=$port, Addr=127.0.0.1')dnl
DAEMON_OPTIONS(\`Family=inet6, Name=MTA-v6, Port=$port, Addr=::1')dnl
dnl local users: no passwd lookup (no w flag), appended to mail/local/USER
define(\`LOCAL_MAILER_PATH', \`$SM_DIR/deliver')dnl
define(\`LOCAL_MAILER_ARGS', \`deliver local \$u')dnl
define(\`LOCAL_MAILER_FLAGS', \`S')dnl
MODIFY_MAILER_FLAGS(\`LOCAL', \`-w')dnl
dnl everything else goes to the sink mailer: nothing leaves the machine
define(\`SMART_HOST', \`sink:sink')dnl
EOF
	if [ -n "$with_milter" ]; then
		printf 'dnl ---- contrib/sendmail/kanjiki.mc (%s), socket path changed\n' "$with_milter" >>"$D/sendmail.mc"
		if [ "$with_milter" = bare ]; then
			grep '^INPUT_MAIL_FILTER' "$SNIPPET"
		else
			cat "$SNIPPET"
		fi | sed "s|unix:/run/kanjiki/kanjiki.sock|unix:$KJ_SOCK|" >>"$D/sendmail.mc"
		grep -q "^INPUT_MAIL_FILTER(.kanjiki', .S=unix:$KJ_SOCK," "$D/sendmail.mc" ||
			fail "contrib/sendmail/kanjiki.mc: no INPUT_MAIL_FILTER with unix:/run/kanjiki/kanjiki.sock to point at $KJ_SOCK"
	fi
	cat >>"$D/sendmail.mc" <<EOF
MAILER(\`local')dnl
MAILER(\`smtp')dnl
MAILER_DEFINITIONS
Msink, P=$SM_DIR/deliver, F=lsDFMS, A=deliver relayed \$u
EOF
	"$SM_M4" -D_CF_DIR_="$SM_ROOT/usr/share/sendmail/cf/" \
		"$SM_ROOT/usr/share/sendmail/cf/m4/cf.m4" "$D/sendmail.mc" \
		>"$D/sendmail.cf" 2>"$D/m4.err" || { cat "$D/m4.err"; fail "m4 $D/sendmail.mc failed"; }
	[ -s "$D/m4.err" ] && { cat "$D/m4.err"; fail "m4 $D/sendmail.mc: warnings"; }
	return 0
}

# sm_start INSTANCE PORT: sendmail -bD (foreground daemon) in the
# background; wait until it answers on 127.0.0.1 and [::1].
sm_start() {
	local inst=$1 port=$2
	# not through sm(): $! must be sendmail's pid, not a subshell's
	LD_LIBRARY_PATH=$SM_LIBPATH LD_PRELOAD=$SM_DIR/gethostname.so \
		"$SM_BIN" -C "$SM_DIR/$inst/sendmail.cf" -bD >"$SM_DIR/$inst/sendmail.out" 2>&1 &
	SM_PIDS="$SM_PIDS $!"
	wait_port 127.0.0.1 "$port" 10 ||
		fail "sendmail ($inst) does not answer on 127.0.0.1:$port"
	wait_port ::1 "$port" 5 ||
		fail "sendmail ($inst) does not answer on [::1]:$port"
}

# reply_after CMD-ERE: the reply (last line, "CODE TEXT") to the first
# command of the last transcript matching CMD-ERE (" -> " stripped).
reply_after() {
	RE=$1 awk '
		f && /^(<-|<\*\*) +[0-9][0-9][0-9] / { sub(/^(<-|<\*\*) +/, ""); print; exit }
		f && /^(<-|<\*\*) +[0-9][0-9][0-9]-/ { next }
		/^ -> / { l = substr($0, 5); if (!f && l ~ ENVIRON["RE"]) f = 1; else if (f) exit }
	' "$T/last.smtp"
}

# sm_expect_queued [WHAT]: the end of DATA got sendmail's "250 2.0.0 ID
# Message accepted for delivery"; sets QUEUE_ID.
sm_expect_queued() {
	local r
	r=$(reply_after '^\.$')
	QUEUE_ID=$(printf '%s\n' "$r" | sed -n 's/^250 2\.0\.0 \([0-9A-Za-z]*\) Message accepted.*/\1/p')
	[ -n "$QUEUE_ID" ] || fail "message not accepted at end of DATA${1:+ ($1)}: ${r:-no reply}"
	export QUEUE_ID
	ok "end of DATA -> $r"
}

# wait_file FILE ERE SECONDS: until FILE has a line matching ERE.
wait_file() {
	local end=$(($(date +%s) + $3))
	while :; do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		[ "$(date +%s)" -ge $end ] && return 1
		sleep 0.1
	done
}

# ---------------------------------------------------------------- sendmail

say "t_sendmail: obtaining sendmail"
mkdir -p "$SM_DIR/mail/local" "$SM_DIR/mail/relayed" "$SM_ROOT"
pkgs="sendmail-bin sendmail-cf"
need_m4=0
if command -v m4 >/dev/null 2>&1; then
	SM_M4=$(command -v m4)
else
	need_m4=1
	pkgs="$pkgs m4"
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libwrap\.so\.0 '; then
	pkgs="$pkgs libwrap0"
fi
# shellcheck disable=SC2086
sm_fetch $pkgs
# shellcheck disable=SC2086
sm_unpack $pkgs
[ $need_m4 = 1 ] && SM_M4=$SM_ROOT/usr/bin/m4
[ -x "$SM_M4" ] || sm_skip "no m4 (apt-get install m4, or make deps)"
[ -x "$SM_BIN" ] || fail "no $SM_BIN in the unpacked sendmail-bin"
# dpkg -x keeps the setgid bit (root:mail 2755), which would make the
# dynamic loader ignore LD_LIBRARY_PATH and LD_PRELOAD; root needs neither
chmod g-s "$SM_BIN"
missing=$(LD_LIBRARY_PATH=$SM_LIBPATH ldd "$SM_BIN" 2>&1 | awk '/not found/ { print $1 }' | tr '\n' ' ')
[ -z "$missing" ] || sm_skip "libraries missing for sendmail: $missing(make deps installs them)"
command -v cc >/dev/null 2>&1 || sm_skip "no C compiler (cc) for the gethostname shim"
cat >"$SM_DIR/gethostname.c" <<'EOF'
/* sendmail sleeps 60 s at every start when the host name has no dot */
#include <errno.h>
#include <string.h>
#include <unistd.h>
int gethostname(char *name, size_t len)
{
    static const char h[] = "mx.local.test";
    if (len < sizeof h) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(name, h, sizeof h);
    return 0;
}
EOF
cc -shared -fPIC -O2 -o "$SM_DIR/gethostname.so" "$SM_DIR/gethostname.c" ||
	fail "cannot build the gethostname shim"
LD_LIBRARY_PATH=$SM_LIBPATH LD_PRELOAD=$SM_DIR/gethostname.so \
	"$SM_BIN" -d0.1 -bt -C /dev/null </dev/null >"$SM_DIR/version.out" 2>&1
version=$(sed -n 's/^Version //p' "$SM_DIR/version.out" | head -n 1)
[ -n "$version" ] || { cat "$SM_DIR/version.out"; fail "the unpacked sendmail does not run"; }
ok "sendmail $version unpacked from $(basename "$(newest_deb sendmail-bin)") (Postfix stays installed: $(dpkg-query -W -f='${Status}' postfix 2>/dev/null))"

# the mailer: appends the message to mail/local/USER or mail/relayed/ADDRESS
cat >"$SM_DIR/deliver" <<EOF
#!/bin/sh
# \$1: local or relayed, \$2: the user or address
case "\$2" in */*|.*|'') echo "deliver: bad mailbox name \$2" >&2; exit 64 ;; esac
cat >>"$SM_DIR/mail/\$1/\$2" || exit 75
echo "\$(date '+%T') \$1 \$2" >>"$SM_DIR/deliver.log"
EOF
chmod 0755 "$SM_DIR/deliver"
printf 'postmaster: root\nMAILER-DAEMON: postmaster\n' >"$SM_DIR/aliases"
printf 'hosts files\naliases files\n' >"$SM_DIR/service.switch"
printf '127.0.0.1 mx.local.test localhost\n::1 localhost\n' >"$SM_DIR/hosts"
printf 'local.test\n' >"$SM_DIR/local-host-names"
: >"$SM_DIR/relay-domains"
: >"$SM_DIR/trusted-users"
chmod 0644 "$SM_DIR"/aliases "$SM_DIR"/service.switch "$SM_DIR"/hosts \
	"$SM_DIR"/local-host-names "$SM_DIR"/relay-domains "$SM_DIR"/trusted-users

# ---------------------------------------------------------------- kanjiki

cat >"$T/rules/50-sendmail.rules" <<'EOF'
score 4 helo tag.example
score 7 helo hold.example
score 12 helo refuse.example
threshold 3 tag
threshold 6 quarantine
threshold 10 reject reply "550 5.7.1 Score too high (kanjiki test)"
EOF
kj_start

SM_PORT=$(free_port)
SM_PLAIN_PORT=$(free_port)
SM_BARE_PORT=$(free_port)
[ "$(printf '%s\n' "$SM_PORT" "$SM_PLAIN_PORT" "$SM_BARE_PORT" | grep -c '^[0-9][0-9]*$' | tr -d ' ')" = 3 ] &&
	[ "$(printf '%s\n' "$SM_PORT" "$SM_PLAIN_PORT" "$SM_BARE_PORT" | sort -u | wc -l | tr -d ' ')" = 3 ] ||
	fail "no three free ports"
sm_config milter "$SM_PORT" milter
sm_config plain "$SM_PLAIN_PORT"
sm_config bare "$SM_BARE_PORT" bare
grep -q "^Xkanjiki, S=unix:$KJ_SOCK, F=T, " "$SM_DIR/milter/sendmail.cf" ||
	fail "sendmail.cf lacks the kanjiki filter line: $(grep '^X' "$SM_DIR/milter/sendmail.cf")"
grep -q '^O Milter.macros.connect=.*{daemon_addr}' "$SM_DIR/milter/sendmail.cf" ||
	fail "sendmail.cf: {daemon_addr} not among the connect macros"
ok "sendmail.cf from the private .mc + contrib/sendmail/kanjiki.mc: $(grep '^Xkanjiki' "$SM_DIR/milter/sendmail.cf")"
grep '^O Milter.macros' "$SM_DIR/milter/sendmail.cf" | sed 's/^/     /'
sm milter -bi >"$SM_DIR/newaliases.out" 2>&1 || { cat "$SM_DIR/newaliases.out"; fail "sendmail -bi (aliases) failed"; }
sm_start milter "$SM_PORT"
sm_start plain "$SM_PLAIN_PORT"
sm_start bare "$SM_BARE_PORT"
say "t_sendmail: sendmail on 127.0.0.1:$SM_PORT and [::1]:$SM_PORT (kanjiki.mc), :$SM_PLAIN_PORT (no milter)," \
	":$SM_BARE_PORT (INPUT_MAIL_FILTER only)"
export PF_PORT=$SM_PORT   # smtp() of lib.sh talks to 127.0.0.1:$PF_PORT

say "-- sendmail alone is an open relay for loopback clients"
smtp --port "$SM_PLAIN_PORT" --local-interface 127.0.0.20 --from nobody@origin.example \
	--to victim0@example.net --quit-after RCPT
expect_rcpt victim0@example.net 250
[ "$(query_count --rcpt victim0@example.net)" = 0 ] ||
	fail "a session on the sendmail without the milter produced a verdict"
ok "no verdict for the session without the milter"

say "-- local delivery from an unauthorised client"
smtp --local-interface 127.0.0.20 --from alice@origin.example --to bob@local.test
expect_rcpt bob@local.test 250
sm_expect_queued "local delivery"
wait_file "$SM_DIR/mail/local/bob" "with ESMTP id $QUEUE_ID" 10 ||
	fail "sendmail did not deliver $QUEUE_ID to the local mailer (mail/local/bob)"
ok "sendmail delivered $QUEUE_ID to mail/local/bob"
wait_verdict --kind message --ip 127.0.0.20 --rcpt bob@local.test
json_check "message verdict: accept, local_domain, sendmail's queue id $QUEUE_ID, stage eom" \
	'len(V) == 1 and V[0]["action"] == "accept" and "local_domain" in codes(V[0])
	 and V[0]["queue_id"] == E["QUEUE_ID"] and V[0]["sender"] == "alice@origin.example"
	 and V[0]["client_ip"] == "127.0.0.20" and V[0]["stage"] == "eom"
	 and [r.lower() for r in V[0]["recipients"]] == ["bob@local.test"]'

say "-- relay from an unauthorised client (127.0.0.20)"
smtp --local-interface 127.0.0.20 --from mallory@origin.example --to victim1@example.net
expect_rcpt victim1@example.net "554 5.7.1" "Relaying denied (kanjiki)"
wait_verdict --kind rcpt --ip 127.0.0.20 --rcpt victim1@example.net
json_check "rcpt verdict: reject at rcpt, relay_denied, 554 5.7.1, a queue id ({i} at MAIL FROM)" \
	'len(V) == 1 and V[0]["action"] == "reject" and V[0]["stage"] == "rcpt"
	 and codes(V[0]) == ["relay_denied"] and V[0]["reply"].startswith("554 5.7.1")
	 and V[0]["client_ip"] == "127.0.0.20" and V[0]["sender"] == "mallory@origin.example"
	 and (V[0]["queue_id"] or "").isalnum() and len(V[0]["queue_id"]) >= 12'
expect_log_line verdict client=127.0.0.20 "rcpt=<victim1@example.net>" action=reject reasons=relay_denied
[ -z "$(ls "$SM_DIR/mail/relayed")" ] || fail "something was relayed: $(ls "$SM_DIR/mail/relayed")"
ok "nothing reached the sink mailer"

say "-- relay from [::1] (not trusted)"
smtp --server ::1 --port "$SM_PORT" -6 --from mallory@origin.example --to victim6@example.net --quit-after RCPT
expect_rcpt victim6@example.net "554 5.7.1" "Relaying denied (kanjiki)"
wait_verdict --kind rcpt --ip ::1 --rcpt victim6@example.net
json_check "IPv6 verdict: client_ip ::1, relay_denied" \
	'V[0]["client_ip"] == "::1" and codes(V[0]) == ["relay_denied"]'

say "-- relay from the trusted network (127.0.0.10)"
smtp --local-interface 127.0.0.10 --from office@local.test --to partner@example.net
expect_rcpt partner@example.net 250
sm_expect_queued "relay from the trusted network"
wait_file "$SM_DIR/mail/relayed/partner@example.net" "with ESMTP id $QUEUE_ID" 10 ||
	fail "sendmail did not hand $QUEUE_ID to the sink mailer"
ok "sendmail relayed $QUEUE_ID (to the sink mailer)"
wait_verdict --kind message --ip 127.0.0.10 --rcpt partner@example.net
json_check "message verdict: accept, trusted_network, queue id $QUEUE_ID" \
	'V[0]["action"] == "accept" and "trusted_network" in codes(V[0]) and V[0]["queue_id"] == E["QUEUE_ID"]'
smtp --local-interface 127.0.0.11 --from office@local.test --to partner2@example.net --quit-after RCPT
expect_rcpt partner2@example.net "554 5.7.1" "kanjiki"

say "-- postmaster@[127.0.0.1]: the daemon address ({daemon_addr}) reached kanjiki"
smtp --local-interface 127.0.0.20 --from alice@origin.example --to 'postmaster@[127.0.0.1]'
expect_rcpt 'postmaster@[127.0.0.1]' 250
sm_expect_queued "own IP literal"
wait_verdict --kind message --sender alice@origin.example --rcpt 'postmaster@[127.0.0.1]'
json_check "message verdict: own_ip_literal (needs {daemon_addr})" \
	'V[0]["action"] == "accept" and codes(V[0]) == ["own_ip_literal"] and V[0]["queue_id"] == E["QUEUE_ID"]'
wait_file "$SM_DIR/mail/local/root" "with ESMTP id $QUEUE_ID" 10 ||
	fail "postmaster (alias root) did not get $QUEUE_ID"
ok "delivered to postmaster (alias root)"
# the control: a literal that is not the daemon address (local_addresses is empty)
smtp --local-interface 127.0.0.20 --from alice@origin.example --to 'postmaster@[127.0.0.2]' --quit-after RCPT
expect_rcpt 'postmaster@[127.0.0.2]' "554 5.7.1" "kanjiki"

say "-- INPUT_MAIL_FILTER alone (sendmail's default macro lists): kanjiki's own request is honoured"
grep '^O Milter.macros.connect=' "$SM_DIR/bare/sendmail.cf" | grep -q 'daemon_addr' &&
	fail "the bare sendmail.cf lists {daemon_addr}: $(grep '^O Milter.macros.connect=' "$SM_DIR/bare/sendmail.cf")"
smtp --port "$SM_BARE_PORT" --local-interface 127.0.0.20 --from bare@origin.example --to 'postmaster@[127.0.0.1]'
expect_rcpt 'postmaster@[127.0.0.1]' 250
sm_expect_queued "own IP literal, default macro lists"
wait_verdict --kind message --sender bare@origin.example
json_check "own_ip_literal with sendmail's default macros: {daemon_addr} came by smfi_setsymlist" \
	'V[0]["action"] == "accept" and codes(V[0]) == ["own_ip_literal"] and V[0]["queue_id"] == E["QUEUE_ID"]'

say "-- forged headers naming this MTA (\$j = mx.local.test) removed"
smtp --local-interface 127.0.0.20 --from alice@origin.example --to carol@local.test \
	--add-header 'Authentication-Results: mx.local.test; spf=pass smtp.mailfrom=origin.example' \
	--add-header 'X-Kanjiki-Spam: no' \
	--add-header 'Authentication-Results: other.example; spf=fail smtp.mailfrom=origin.example'
sm_expect_queued "forged headers"
wait_file "$SM_DIR/mail/local/carol" "with ESMTP id $QUEUE_ID" 10 || fail "carol did not get $QUEUE_ID"
M=$SM_DIR/mail/local/carol
grep -q '^Authentication-Results: mx\.local\.test' "$M" &&
	{ cat "$M"; fail "the forged Authentication-Results (authserv-id mx.local.test) was delivered"; }
grep -q '^X-Kanjiki-Spam' "$M" && { cat "$M"; fail "the forged X-Kanjiki-Spam was delivered"; }
grep -q '^Authentication-Results: other\.example' "$M" ||
	{ cat "$M"; fail "the foreign Authentication-Results was removed"; }
grep -q '^X-Kanjiki-Score: 0\.0' "$M" || { cat "$M"; fail "no X-Kanjiki-Score: 0.0"; }
ok "delivered copy: forged Authentication-Results and X-Kanjiki-Spam gone, other.example's kept, X-Kanjiki-Score: 0.0 added"

say "-- scores: tag, quarantine, reject"
smtp --local-interface 127.0.0.20 --helo tag.example --from alice@origin.example --to dave@local.test
sm_expect_queued "tagged"
wait_file "$SM_DIR/mail/local/dave" "with ESMTP id $QUEUE_ID" 10 || fail "dave did not get $QUEUE_ID"
grep -q '^X-Kanjiki-Spam: yes, score=4\.0' "$SM_DIR/mail/local/dave" &&
	grep -q '^X-Kanjiki-Score: 4\.0' "$SM_DIR/mail/local/dave" ||
	{ cat "$SM_DIR/mail/local/dave"; fail "the tagged message lacks X-Kanjiki-Spam/X-Kanjiki-Score"; }
ok "tagged message delivered with X-Kanjiki-Score: 4.0 and X-Kanjiki-Spam: yes, score=4.0"
wait_verdict --kind message --rcpt dave@local.test
json_check "verdict: tag, score 4, queue id $QUEUE_ID" \
	'V[0]["action"] == "tag" and V[0]["score"] == 4 and V[0]["queue_id"] == E["QUEUE_ID"]'

smtp --local-interface 127.0.0.20 --helo hold.example --from alice@origin.example --to erin@local.test
sm_expect_queued "quarantined"
HOLD_ID=$QUEUE_ID
wait_verdict --kind message --rcpt erin@local.test
json_check "verdict: quarantine, queue id $QUEUE_ID" \
	'V[0]["action"] == "quarantine" and V[0]["queue_id"] == E["QUEUE_ID"]'
sm milter -bp -qQ >"$SM_DIR/quarantine.out" 2>&1
grep -q "^$HOLD_ID " "$SM_DIR/quarantine.out" && grep -q 'QUARANTINE: kanjiki: spam score 7\.0' "$SM_DIR/quarantine.out" ||
	{ cat "$SM_DIR/quarantine.out"; fail "sendmail -bp -qQ does not list $HOLD_ID as quarantined by kanjiki"; }
ok "sendmail holds $HOLD_ID: $(grep -m1 QUARANTINE "$SM_DIR/quarantine.out" | sed 's/^ *//')"
[ -e "$SM_DIR/mail/local/erin" ] && fail "the quarantined message was delivered"
ok "not delivered"
# what an administrator does with a false positive: release it, run the queue
sm milter -Q -qQ -qI"$HOLD_ID" >"$SM_DIR/release.out" 2>&1 ||
	{ cat "$SM_DIR/release.out"; fail "sendmail -Q -qQ -qI$HOLD_ID failed"; }
sm milter -q -qI"$HOLD_ID" >>"$SM_DIR/release.out" 2>&1 ||
	{ cat "$SM_DIR/release.out"; fail "sendmail -q -qI$HOLD_ID failed"; }
wait_file "$SM_DIR/mail/local/erin" "with ESMTP id $HOLD_ID" 10 ||
	{ cat "$SM_DIR/release.out"; fail "$HOLD_ID not delivered after its release"; }
grep -q '^X-Kanjiki-Spam: yes, score=7\.0' "$SM_DIR/mail/local/erin" ||
	{ cat "$SM_DIR/mail/local/erin"; fail "the released message lacks X-Kanjiki-Spam"; }
ok "released (sendmail -Q -qQ -qI$HOLD_ID, then a queue run): delivered with X-Kanjiki-Spam: yes, score=7.0"

smtp --local-interface 127.0.0.20 --helo refuse.example --from alice@origin.example --to frank@local.test
r=$(reply_after '^\.$')
case "$r" in
"550 5.7.1 Score too high (kanjiki test)"*) ok "end of DATA -> $r" ;;
*) fail "end of DATA: expected the threshold's 550 reply, got: ${r:-no reply}" ;;
esac
wait_verdict --kind message --rcpt frank@local.test
json_check "verdict: reject at eom, score 12" \
	'V[0]["action"] == "reject" and V[0]["stage"] == "eom" and V[0]["score"] == 12'
[ -e "$SM_DIR/mail/local/frank" ] && fail "the refused message was delivered"
ok "not delivered"

say "-- kanjiki audit: sendmail alone relays, with kanjiki it does not"
# sm_audit INSTANCE PORT: kanjiki audit --json from 127.0.0.1 (not trusted);
# JSON in $T/audit.INSTANCE.json, exit status in AUDIT_RC
sm_audit() {
	printf '\n=== kanjiki audit --local-domain local.test --no-submission --pause 0 --json 127.0.0.1:%s\n' "$2" >>"$SMTP_LOG"
	"$CLI" audit --local-domain local.test --no-submission --pause 0 --json \
		"127.0.0.1:$2" >"$T/audit.$1.json" 2>"$T/audit.$1.err"
	AUDIT_RC=$?
	cut -c1-2000 "$T/audit.$1.json" >>"$SMTP_LOG"
	cat "$T/audit.$1.err" >>"$SMTP_LOG"
}
sm_audit plain "$SM_PLAIN_PORT"
[ "$AUDIT_RC" = 1 ] || fail "kanjiki audit of sendmail alone: exit $AUDIT_RC, expected 1 (relays)"
ok "kanjiki audit of sendmail alone: exit 1 (relays)"
sm_audit milter "$SM_PORT"
[ "$AUDIT_RC" = 0 ] || fail "kanjiki audit of sendmail with kanjiki: exit $AUDIT_RC, expected 0"
ok "kanjiki audit of sendmail with kanjiki: exit 0"
python3 - "$T/audit.plain.json" "$T/audit.milter.json" >"$T/audit.out" 2>&1 <<'EOF' ||
import json, sys
plain, milter = ({t["id"]: t for t in json.load(open(f))["tests"]} for f in sys.argv[1:3])
assert plain.keys() == milter.keys(), "different test lists"
relayed = [i for i, t in plain.items() if t["relay"]]
nmap = [i for i, t in plain.items() if t.get("nmap")]
assert relayed, "sendmail alone relayed nothing"
assert not any(t["relay"] for t in milter.values()), \
    "relays with kanjiki: %s" % [i for i, t in milter.items() if t["relay"]]
bad = [i + ": " + str(milter[i]["rcpt_reply"]) for i in relayed
       if milter[i]["verdict"] != "refused" or "(kanjiki)" not in (milter[i]["rcpt_reply"] or "")]
assert not bad, "relayed without kanjiki, but not refused by kanjiki at RCPT: %s" % bad
print("sendmail alone relays %d of %d audit tests (%d of nmap's %d); with kanjiki every one of them is "
      "refused at RCPT with kanjiki's reply, the other %d are refused by sendmail itself"
      % (len(relayed), len(plain), len([i for i in nmap if i in relayed]), len(nmap), len(plain) - len(relayed)))
EOF
	{ cat "$T/audit.out"; fail "kanjiki audit: the relays of sendmail alone are not all refused by kanjiki"; }
ok "$(cat "$T/audit.out")"

say "-- kanjiki-milter stopped: F=T makes sendmail defer"
kj_stop
smtp --local-interface 127.0.0.20 --from alice@origin.example --to grace@local.test
r=$(reply_after '^MAIL FROM:')
case "$r" in
"451 4.3.2"*) ok "MAIL FROM -> $r" ;;
*) fail "milter down: expected 451 4.3.2 at MAIL FROM, got: ${r:-no reply}" ;;
esac
sleep 0.5
[ -e "$SM_DIR/mail/local/grace" ] && fail "a message passed while the milter was down"
ok "nothing delivered while the milter was down"

done_ok
