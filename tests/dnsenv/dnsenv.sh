#!/bin/sh
# tests/dnsenv/dnsenv.sh: a private DNS for the DNSBL / SPF tests, on
# loopback high ports.
#
#   dnsenv.sh start DIR    start everything, state in DIR (created; made
#                          0755 so that rbldnsd's user can read DIR/zones),
#                          wait until each server answers, write DIR/env.sh
#   dnsenv.sh stop DIR     stop everything started in DIR (also after a
#                          start that failed halfway); exit 0 when nothing
#                          is left running
#
# In an e2e test (tests/e2e/lib.sh style):
#   sh "$E2E_DIR/../dnsenv/dnsenv.sh" start "$T/dns" || fail "dnsenv"
#   . "$T/dns/env.sh"                    # add "dnsenv.sh stop $T/dns" to cleanup
#   kj_conf <<EOF
#   dns_servers = $DNS_FRONT
#   EOF
#
# Exit status: 0 ok, 1 failure (message on stderr, logs shown; a failed
# start has already stopped what it started), 2 usage, 77 rbldnsd, dnsmasq
# or python3 missing ("SKIP" on stderr).  Needs root for the intended
# setup (rbldnsd drops to user rbldns, dnsmasq to nobody); as another user
# both simply keep that user.  DNSENV_FRONT_PORT / DNSENV_RBL_PORT pin a
# port instead of picking a free one (no retry then).  From Python:
# tests/dnsenv/dnsenv.py (start/stop/query).
#
# Three servers:
#
#   DNS_FRONT  dnsmasq: the only server the milter is given
#              (dns_servers = $DNS_FRONT).  Answers the SPF / A / PTR data
#              below itself; forwards the list zones and the SOA-only zones
#              to rbldnsd, the "dead" names to DNS_DEAD; NXDOMAIN (no SOA)
#              for every other name.  No cache (each query is forwarded;
#              TTLs arrive unchanged).  Query log: $DNS_FRONT_LOG.
#   DNS_RBL    rbldnsd with every list zone (also directly queryable;
#              names outside its zones get REFUSED there).
#   DNS_DEAD   a UDP+TCP socket that reads queries and never answers
#              (each query logged to $DNS_DEAD_LOG).
#
# DIR/env.sh sets (and exports): DNS_DIR, DNS_FRONT=127.0.0.1:PORT,
# DNS_FRONT_PORT, DNS_FRONT_PID, DNS_FRONT_LOG, DNS_RBL, DNS_RBL_PORT,
# DNS_RBL_PID, DNS_RBL_ZONES (DIR/zones), DNS_DEAD, DNS_DEAD_PORT,
# DNS_DEAD_PID, DNS_DEAD_LOG.
#
# ---------------------------------------------------------------- the data
# Through DNS_FRONT.  "NX" = NXDOMAIN; "+SOA" = the negative answer carries
# an SOA (TTL 30 = negative TTL).  Positive list answers have TTL 300,
# dnsmasq's own answers TTL 300.  IP lists take reversed octets
# (127.0.0.2 -> 2.0.0.127.bl.kanjiki.test) or, for IPv6, reversed nibbles.
#
# bl.kanjiki.test (IP list; rbldnsd ip4set + ip6trie)
#   127.0.0.2      A 127.0.0.2  TXT "Listed in bl.kanjiki.test: see http://bl.kanjiki.test/q?127.0.0.2"
#                  (RFC 5782 test point)
#   127.0.0.1      NX +SOA      (RFC 5782: must not be listed)
#   127.0.0.66     A 127.0.0.2  TXT "Listed in bl.kanjiki.test: see http://bl.kanjiki.test/q?127.0.0.66"
#   127.0.0.67     A 127.0.0.4  TXT "Listed in bl.kanjiki.test (code 4): see http://bl.kanjiki.test/q?127.0.0.67"
#                  (outside a "codes 127.0.0.2-127.0.0.3" filter)
#   198.51.100.7   A 127.0.0.2  TXT "... q?198.51.100.7"
#   203.0.113.0 - 203.0.113.15 (/28)  A 127.0.0.2  TXT "... q?203.0.113.N"
#                  (203.0.113.16 is not listed)
#   2001:db8:bad::1  A 127.0.0.2  TXT "... q?2001:db8:bad::1"
#                  = 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.a.b.0.8.b.d.0.1.0.0.2.bl.kanjiki.test
#                  (2001:db8:bad::2 NX)
#   anything else  NX +SOA
# weak.kanjiki.test (IP list; for tag-below-threshold and additive scores)
#   127.0.0.2 (RFC 5782 test point), 127.0.0.66, 127.0.0.68
#                  A 127.0.0.2  TXT "Listed in weak.kanjiki.test: see http://weak.kanjiki.test/q?IP"
#   anything else  NX +SOA
# refuse.kanjiki.test (a list that refuses us)
#   every name, IP or domain, test points included:
#                  A 127.255.255.254  TXT "Query refused: you may not query refuse.kanjiki.test"
# open.kanjiki.test (a broken list)
#   every name:    A 127.0.0.1, no TXT (TXT query: NOERROR, no answer)
# dbl.kanjiki.test (domain list / RHSBL; rbldnsd dnset; query NAME.dbl.kanjiki.test)
#   spammer.test   A 127.0.0.2  TXT "Listed in dbl.kanjiki.test: see http://dbl.kanjiki.test/q?spammer.test"
#                  (exactly: www.spammer.test is NX)
#   *.badhelo.test (any subdomain, e.g. mail.badhelo.test, a.b.badhelo.test)
#                  A 127.0.0.2  TXT "... q?badhelo.test"  (rbldnsd's $ is the
#                  listed entry); badhelo.test itself NX
#   test           A 127.0.0.2  (RFC 5782 test point: TEST listed)
#   invalid        NX +SOA      (RFC 5782: INVALID not listed)
# uri.kanjiki.test (URI list: dnset + ip4set)
#   evil-link.test A 127.0.0.2  TXT "Listed in uri.kanjiki.test: see http://uri.kanjiki.test/q?evil-link.test"
#                  (exactly: www.evil-link.test NX)
#   test           A 127.0.0.2  (test point); invalid NX
#   127.0.0.2      (2.0.0.127.uri.kanjiki.test) A 127.0.0.2  (test point)
#   192.0.2.99     (99.2.0.192.uri.kanjiki.test) A 127.0.0.2  TXT "... q?192.0.2.99"
#   refused-uri.test  A 127.0.0.1  TXT "Query refused"  (this list's error code)
#   mixed-uri.test    two A records: 127.0.0.2 and 127.0.0.1
#   anything else  NX +SOA
# dead.kanjiki.test and every name below it, spf-temp.test (any type),
# 70.0.0.127.in-addr.arpa (PTR of 127.0.0.70):
#   forwarded to DNS_DEAD: no answer ever over UDP.  dnsmasq sends no
#   SERVFAIL and no late answer (checked for 45 s); the client times out on
#   its own clock, and each retransmission is forwarded again.  Over TCP
#   dnsmasq holds the connection 150 s, then closes it without an answer.
#
# SPF (TXT, answered by dnsmasq)
#   spf-pass.test      "v=spf1 ip4:192.0.2.0/24 ip4:127.0.0.0/8 -all"
#   spf-fail.test      "v=spf1 -all"
#   spf-soft.test      "v=spf1 ~all"
#   spf-neutral.test   "v=spf1 ?all"
#   spf-perm.test      "v=spf1 ip4:bad -all"            (permerror)
#   spf-include.test   "v=spf1 include:spf-pass.test -all"
#   spf-include-temp.test "v=spf1 include:spf-temp.test -all" (temperror)
#   spf-redirect.test  "v=spf1 redirect=spf-fail.test"
#   spf-mx.test        "v=spf1 mx -all", MX 10 mx.kanjiki.test (A 127.0.0.1)
#   spf-a.test         "v=spf1 a -all", A 127.0.0.1 (dnsmasq address=: any
#                      name below spf-a.test also has A 127.0.0.1)
#   spf-split.test     one TXT of two strings "v=spf1 ip4:192.0.2.0/24 " +
#                      "ip4:127.0.0.0/8 -all" (query() joins them)
#   spf-multi.test     two SPF records "v=spf1 -all", "v=spf1 +all" (permerror)
#   spf-none.test      TXT "kanjiki test: this is not an SPF record" (none)
#   spf-temp.test      no answer (DNS_DEAD): temperror
#   nothing.test       NX +SOA (any other name under .test): none
#   other types of a name above (e.g. spf-pass.test A): NODATA +SOA
#
# A and PTR (answered by dnsmasq; "<->" = A and PTR agree)
#   mx.kanjiki.test          <-> 127.0.0.1
#   testpoint.kanjiki.test   <-> 127.0.0.2
#   listed.kanjiki.test      <-> 127.0.0.66
#   weak-host.kanjiki.test   <-> 127.0.0.68
#   spammer.test             <-> 127.0.0.69  (its name is in dbl.kanjiki.test)
#   doc-host.kanjiki.test    <-> 192.0.2.10
#   127.0.0.67  PTR nomatch.kanjiki.test, which has no A (NX +SOA):
#               forward confirmation fails
#   127.0.0.70  PTR query never answered (DNS_DEAD)
#   any other 127.0.0.x (e.g. 127.0.0.20, the e2e tests' usual client)
#               and any other reverse name: NX +SOA
#   AAAA queries for the names above: NODATA +SOA
# Outside .test/.example/.invalid/in-addr.arpa/ip6.arpa: NX without SOA.
#
# TCP: only dnsmasq's own data (SPF / A / PTR names with records) answers
# over TCP.  Everything forwarded to rbldnsd (the lists, and every NX/NODATA
# +SOA answer) is UDP only: rbldnsd has no TCP, so over TCP dnsmasq closes
# the connection at once without an answer.  No answer here is near 512
# bytes, so a UDP client never needs TCP.
#
# Notes: rbldnsd rereads a zone file within ~1 s after its mtime changes
# (-c 1); dnsmasq does not cache, so the next query sees the change.  To
# change a list in a test, edit $DNS_RBL_ZONES/FILE via a temp file + mv
# (rbldnsd may read a half-written file otherwise) and make sure the mtime
# changes (touch -d '+2 seconds' if you edit twice within a second).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
DNSENV_PY=$HERE/dnsenv.py

RBL_ZONES="
bl.kanjiki.test:generic:soa.zone
bl.kanjiki.test:ip4set:bl4.zone
bl.kanjiki.test:ip6trie:bl6.zone
weak.kanjiki.test:generic:soa.zone
weak.kanjiki.test:ip4set:weak.zone
refuse.kanjiki.test:generic:soa.zone
refuse.kanjiki.test:dnset:empty.zone
refuse.kanjiki.test:acl:acl-refuse.zone
open.kanjiki.test:generic:soa.zone
open.kanjiki.test:dnset:empty.zone
open.kanjiki.test:acl:acl-open.zone
dbl.kanjiki.test:generic:soa.zone
dbl.kanjiki.test:dnset:dbl.zone
uri.kanjiki.test:generic:soa.zone
uri.kanjiki.test:dnset:uri.zone
uri.kanjiki.test:dnset:uri-extra.zone
uri.kanjiki.test:ip4set:uri-ip.zone
test:generic:soa.zone
example:generic:soa.zone
invalid:generic:soa.zone
in-addr.arpa:generic:soa.zone
ip6.arpa:generic:soa.zone
"

msg() { printf 'dnsenv: %s\n' "$*" >&2; }

usage() {
	msg "usage: $0 start DIR | stop DIR"
	exit 2
}

# find_tool NAME: the path of NAME (also in /usr/sbin, /sbin, which a
# non-root PATH may lack), or nothing.
find_tool() {
	command -v "$1" 2>/dev/null && return 0
	for d in /usr/sbin /sbin /usr/local/sbin; do
		[ -x "$d/$1" ] && { echo "$d/$1"; return 0; }
	done
	return 1
}

# alive PID: the process exists and is not a zombie.
alive() {
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ]
}

# ours PID: the process's command line names $D/ (so a recycled pid is
# never killed).
ours() {
	[ -r "/proc/$1/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$D/"
}

# kill_wait PID NAME: SIGTERM, up to 5 s, then SIGKILL, up to 2 s.
kill_wait() {
	kill -TERM "$1" 2>/dev/null
	i=0
	while alive "$1" && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if alive "$1"; then
		msg "$2 (pid $1) still running 5 s after SIGTERM: SIGKILL"
		kill -KILL "$1" 2>/dev/null
		i=0
		while alive "$1" && [ $i -lt 20 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	fi
	! alive "$1"
}

# strays: pids of rbldnsd / dnsmasq / dead servers whose command line names
# $D/ but whose pid file is gone (e.g. killed start).  Each is checked by
# pid; nothing is matched by name alone.
strays() {
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ -r "$p/cmdline" ] || continue
		comm=$(cat "$p/comm" 2>/dev/null) || continue
		case "$comm" in
		rbldnsd | dnsmasq) ;;
		python*) tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q deadserver || continue ;;
		*) continue ;;
		esac
		ours "$pid" && alive "$pid" && echo "$pid"
	done
}

do_stop() {
	left=0
	for name in dnsmasq rbldnsd dead; do
		pidf=$D/$name.pid
		[ -f "$pidf" ] || continue
		pid=$(tr -dc 0-9 <"$pidf")
		if [ -n "$pid" ] && alive "$pid" && ours "$pid"; then
			kill_wait "$pid" "$name" || {
				msg "$name (pid $pid) does not die"
				left=1
			}
		fi
		rm -f "$pidf"
	done
	for pid in $(strays); do
		msg "stray process $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) of $D: stopping it"
		kill_wait "$pid" "stray" || left=1
	done
	[ -d "$D" ] && rm -f "$D/env.sh"
	return $left
}

# show_log FILE: its tail on stderr.
show_log() {
	[ -s "$1" ] || return 0
	printf -- '---- %s (last 15 lines) ----\n' "$1" >&2
	tail -n 15 "$1" >&2
}

# fail MESSAGE: a start that went wrong: logs, stop what runs, exit 1.
fail() {
	msg "start failed: $*"
	for f in "$D/dead.out" "$D/rbldnsd.out" "$D/dnsmasq.out" "$D/dnsmasq.log"; do
		show_log "$f"
	done
	do_stop
	exit 1
}

free_port() { "$PY" "$DNSENV_PY" freeport; }

start_dead() {
	rm -f "$D/dead.port"
	: >"$D/dead.log"
	"$PY" "$DNSENV_PY" deadserver "$D/dead.port" "$D/dead.log" \
		</dev/null >"$D/dead.out" 2>&1 &
	DEAD_PID=$!
	echo "$DEAD_PID" >"$D/dead.pid"
	i=0
	while [ ! -s "$D/dead.port" ]; do
		alive "$DEAD_PID" || fail "the silent server (python3 dnsenv.py deadserver) exited"
		[ $i -ge 100 ] && fail "the silent server did not bind within 10 s"
		sleep 0.1
		i=$((i + 1))
	done
	DEAD_PORT=$(tr -dc 0-9 <"$D/dead.port")
}

start_rbl() {
	# rbldnsd reads the zones after dropping to $RBL_USER
	if [ "$(id -u)" = 0 ]; then
		if id rbldns >/dev/null 2>&1; then RBL_USER=rbldns; else RBL_USER=nobody; fi
		if command -v runuser >/dev/null 2>&1 &&
			! runuser -u "$RBL_USER" -- test -r "$D/zones/soa.zone"; then
			fail "user $RBL_USER cannot read $D/zones/soa.zone (every directory above $D must be searchable by others: chmod o+x)"
		fi
		RBL_UOPT="-u $RBL_USER"
	else
		# not root: rbldnsd keeps the current user (-u would fail)
		RBL_UOPT=
	fi
	tries=0
	while :; do
		tries=$((tries + 1))
		RBL_PORT=${DNSENV_RBL_PORT:-$(free_port)}
		[ -n "$RBL_PORT" ] || fail "no free port for rbldnsd"
		rm -f "$D/rbldnsd.pid"
		# daemon mode: the parent exits 0 only once the zones are loaded and
		# the socket is bound; the daemon writes rbldnsd.pid
		# shellcheck disable=SC2086
		(cd "$D/zones" && exec "$RBLDNSD" $RBL_UOPT -b "127.0.0.1/$RBL_PORT" \
			-p "$D/rbldnsd.pid" -w "$D/zones" -t 300 -c 1 -a $RBL_ZONES) \
			</dev/null >"$D/rbldnsd.out" 2>&1
		rc=$?
		[ $rc = 0 ] && break
		if [ -z "${DNSENV_RBL_PORT:-}" ] && [ $tries -lt 5 ] &&
			grep -qi 'in use' "$D/rbldnsd.out"; then
			continue
		fi
		fail "rbldnsd exited with status $rc"
	done
	i=0
	while [ ! -s "$D/rbldnsd.pid" ]; do
		[ $i -ge 50 ] && fail "rbldnsd wrote no pid file"
		sleep 0.1
		i=$((i + 1))
	done
	RBL_PID=$(tr -dc 0-9 <"$D/rbldnsd.pid")
	"$PY" "$DNSENV_PY" wait "127.0.0.1:$RBL_PORT" 2.0.0.127.bl.kanjiki.test A 127.0.0.2 10 ||
		fail "rbldnsd on 127.0.0.1:$RBL_PORT does not answer"
}

start_front() {
	tries=0
	while :; do
		tries=$((tries + 1))
		FRONT_PORT=${DNSENV_FRONT_PORT:-$(free_port)}
		[ -n "$FRONT_PORT" ] || fail "no free port for dnsmasq"
		{
			echo "# generated by $0 for $D"
			echo "port=$FRONT_PORT"
			echo "listen-address=127.0.0.1"
			echo "bind-interfaces"
			echo "pid-file=$D/dnsmasq.pid"
			echo "log-facility=$D/dnsmasq.log"
			echo "log-queries=extra"
			if [ "$(id -u)" = 0 ]; then
				echo "user=nobody"
				echo "group=nogroup"
			fi
			sed -e "s/@RBL@/127.0.0.1#$RBL_PORT/g" -e "s/@DEAD@/127.0.0.1#$DEAD_PORT/g" \
				"$HERE/dnsmasq.conf.in"
		} >"$D/dnsmasq.conf"
		rm -f "$D/dnsmasq.pid"
		# daemon mode: exits non-zero when it cannot bind; the daemon
		# writes dnsmasq.pid
		"$DNSMASQ" --conf-file="$D/dnsmasq.conf" </dev/null >"$D/dnsmasq.out" 2>&1
		rc=$?
		[ $rc = 0 ] && break
		if [ -z "${DNSENV_FRONT_PORT:-}" ] && [ $tries -lt 5 ] &&
			grep -qi 'in use' "$D/dnsmasq.out"; then
			continue
		fi
		fail "dnsmasq exited with status $rc"
	done
	i=0
	while [ ! -s "$D/dnsmasq.pid" ]; do
		[ $i -ge 50 ] && fail "dnsmasq wrote no pid file"
		sleep 0.1
		i=$((i + 1))
	done
	FRONT_PID=$(tr -dc 0-9 <"$D/dnsmasq.pid")
	"$PY" "$DNSENV_PY" wait "127.0.0.1:$FRONT_PORT" mx.kanjiki.test A 127.0.0.1 10 ||
		fail "dnsmasq on 127.0.0.1:$FRONT_PORT does not answer"
	"$PY" "$DNSENV_PY" wait "127.0.0.1:$FRONT_PORT" 2.0.0.127.bl.kanjiki.test A 127.0.0.2 10 ||
		fail "dnsmasq on 127.0.0.1:$FRONT_PORT does not forward to rbldnsd"
}

do_start() {
	missing=
	RBLDNSD=$(find_tool rbldnsd) || missing="$missing rbldnsd"
	DNSMASQ=$(find_tool dnsmasq) || missing="$missing dnsmasq"
	command -v "$PY" >/dev/null 2>&1 || missing="$missing $PY"
	if [ -n "$missing" ]; then
		msg "SKIP: missing:$missing (apt-get install rbldnsd dnsmasq-base)"
		exit 77
	fi
	for name in dnsmasq rbldnsd dead; do
		[ -f "$D/$name.pid" ] || continue
		pid=$(tr -dc 0-9 <"$D/$name.pid")
		if [ -n "$pid" ] && alive "$pid" && ours "$pid"; then
			msg "$name already running for $D (pid $pid): stop it first"
			exit 1
		fi
	done
	chmod 0755 "$D" || { msg "cannot chmod $D"; exit 1; }
	rm -rf "$D/zones"
	if ! { mkdir "$D/zones" && cp "$HERE"/zones/*.zone "$D/zones/" &&
		chmod 0755 "$D/zones" && chmod 0644 "$D"/zones/*.zone; }; then
		fail "cannot copy the zone files to $D/zones"
	fi
	rm -f "$D/env.sh" "$D/dnsmasq.log"

	start_dead
	start_rbl
	start_front

	cat >"$D/env.sh.tmp" <<EOF
# written by tests/dnsenv/dnsenv.sh start $D
DNS_DIR='$D'
DNS_FRONT='127.0.0.1:$FRONT_PORT'
DNS_FRONT_PORT='$FRONT_PORT'
DNS_FRONT_PID='$FRONT_PID'
DNS_FRONT_LOG='$D/dnsmasq.log'
DNS_RBL='127.0.0.1:$RBL_PORT'
DNS_RBL_PORT='$RBL_PORT'
DNS_RBL_PID='$RBL_PID'
DNS_RBL_ZONES='$D/zones'
DNS_DEAD='127.0.0.1:$DEAD_PORT'
DNS_DEAD_PORT='$DEAD_PORT'
DNS_DEAD_PID='$DEAD_PID'
DNS_DEAD_LOG='$D/dead.log'
export DNS_DIR DNS_FRONT DNS_FRONT_PORT DNS_FRONT_PID DNS_FRONT_LOG DNS_RBL DNS_RBL_PORT DNS_RBL_PID DNS_RBL_ZONES DNS_DEAD DNS_DEAD_PORT DNS_DEAD_PID DNS_DEAD_LOG
EOF
	mv "$D/env.sh.tmp" "$D/env.sh" || fail "cannot write $D/env.sh"
}

[ $# = 2 ] || usage
case "$2" in
"" | *"'"* | *" "*) msg "DIR must be non-empty, without quotes or spaces: '$2'"; exit 2 ;;
esac
cmd=$1
case "$cmd" in
start)
	mkdir -p "$2" || { msg "cannot create $2"; exit 1; }
	D=$(cd "$2" && pwd) || exit 1
	# an interrupted start stops what it started
	trap 'trap - EXIT; msg "interrupted"; do_stop; exit 130' INT TERM HUP
	do_start
	;;
stop)
	if [ -d "$2" ]; then
		D=$(cd "$2" && pwd) || exit 1
	else
		# DIR already removed: no pid files, but its processes are still
		# found by their command lines
		case "$2" in
		/*) D=${2%/} ;;
		*) D=$PWD/${2%/} ;;
		esac
		msg "$D does not exist; looking for its processes anyway"
	fi
	do_stop || { msg "some processes of $D are still running"; exit 1; }
	;;
*) usage ;;
esac
exit 0
