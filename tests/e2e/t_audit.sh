#!/bin/bash
# t_audit.sh: `kanjiki audit` against real Postfix servers on loopback, each
# judged a second time by nmap's smtp-open-relay (the same 16 tricks, the
# same target relaytest@example.net, the same server name from the banner,
# the same IP literal [127.0.0.1]).
#
# One private Postfix (lib.sh: its own configuration and queue directories,
# high ports, every delivery discarded) serves five behaviours on five
# listeners of 127.0.0.1, each set by master.cf -o overrides: smtpd reads
# mynetworks, smtpd_relay_restrictions, allow_untrusted_routing,
# rewrite_service_name and smtpd_milters per listener.  allow_percent_hack,
# swap_bangpath and resolve_dequoted_address are trivial-rewrite
# parameters, not smtpd's: a listener gets its own resolver through
# rewrite_service_name and a second trivial-rewrite service with -o.
#
#   closed   mynetworks = 127.0.0.10/32 (the auditing client 127.0.0.1 is an
#            outsider), smtpd_relay_restrictions = permit_mynetworks,
#            permit_sasl_authenticated, reject_unauth_destination (lib.sh's;
#            lib.sh's own mynetworks, 127.0.0.0/8, would let us relay).
#   open     mynetworks = 0.0.0.0/0: permit_mynetworks lets everyone relay.
#            (A bare "smtpd_relay_restrictions = permit" is not possible:
#            smtpd dies with "specify at least one working instance of
#            reject_unauth_destination...", and Postfix ignores anything
#            written after a "permit".)
#   tricks   as closed, plus allow_untrusted_routing = yes, and its address
#            resolver (rewrite_service_name = rewrite-tricks, a second
#            trivial-rewrite) with allow_percent_hack = no, swap_bangpath = no,
#            resolve_dequoted_address = no.  smtpd then takes
#            relaytest%example.net@[127.0.0.1], example.net!relaytest,
#            "relaytest@example.net"@[127.0.0.1], ... for local mailboxes of
#            its own and, since untrusted routing is allowed, accepts them
#            although they carry routing operators; a plain foreign
#            recipient is still refused.  The queue manager resolves with the
#            main trivial-rewrite (percent hack, bang paths and dequoting
#            on), so the accepted tricks really go to relaytest@example.net
#            through the default (off-host) transport: a relay that only
#            routing tricks open.  The --deliver run proves it from the log.
#   backupmx as closed, plus allow_untrusted_routing = yes (default
#            resolver): routing through a relay_domains domain is accepted
#            and forwarded unchanged to that domain's next hop
#            (relaytest%example.net@relay.test), which may act on it.
#            nmap cannot see it (it routes only through the server's IP
#            literal and banner name); audit does with --local-domain.
#   guarded  the open one with kanjiki-milter in front (smtpd_milters from
#            main.cf; 127.0.0.1 is not in kanjiki's trusted_networks).
#   deferred the open one answering every relay attempt 4xx
#            (smtpd_relay_restrictions = defer), as greylisting answers a
#            first attempt: audit must not call it closed (exit 2,
#            "undecided").
#
# What was tried for a tricks-only relay and does NOT give one:
#  - allow_percent_hack / swap_bangpath (yes by default): the resolver turns
#    user%example.net@local into user@example.net, flags it routed, and
#    reject_unauth_destination refuses it like the plain address (closed);
#  - the rewrite-tricks resolver without allow_untrusted_routing: the
#    resolver flags every local part holding '@', '%' or '!' as routed,
#    whatever those settings, and reject_unauth_destination refuses routed
#    addresses: all 27 tests refused;
#  - allow_untrusted_routing = yes alone: routed addresses are still checked
#    against their final destination (example.net: refused); it only opens
#    routing to relay_domains destinations (backupmx);
#  - check_recipient_access with "local.test OK" before
#    reject_unauth_destination: smtpd looks the *resolved* address up
#    (relaytest@example.net), so the table never matches a trick;
#  - routes through mx.local.test (the banner name) stay refused on tricks:
#    the name is not in mydestination, so it is a foreign domain to Postfix.
#
# Checks, for each server:
#  - kanjiki audit's exit status (closed 0, open 1, tricks 1, backupmx 1,
#    guarded 0), "relays", the exact set of test ids that relay, the
#    findings (open_relay only for the open one, the trick kinds for
#    tricks and backupmx, no high finding on closed and guarded);
#  - nmap's verdict: "Server is an open relay (N/16 tests)" or "Server
#    doesn't seem to be an open relay" (N = 0); N equals the number of
#    audit's 16 nmap=true tests that relay (closed 0, open 16, tricks 6,
#    backupmx 0, guarded 0), and nmap's list of accepted MAIL FROM/RCPT TO
#    pairs is exactly audit's;
#  - Postfix's own log: one "Relay access denied" per test audit calls
#    refused by the relay guard (closed, tricks);
#  - --deliver: on the open one every test becomes "relay (delivered)" and
#    the log shows status=sent through the discard transport for
#    relaytest@example.net; on tricks every accepted trick is delivered to
#    relaytest@example.net by the off-host transport ("delivery
#    discarded", not "local delivery discarded"); on backupmx by the relay
#    transport, address unchanged;
#  - tricks: --fresh-connection gives the same answers as RSET on one
#    connection; the text report says "OPEN RELAY: 9 of 27" and names the
#    four trick findings, no open_relay finding;
#  - guarded: every refusal is kanjiki's (554 5.7.1 Relaying denied
#    (kanjiki), the trick named) and is in its verdict store;
#  - a port where nothing listens: exit 2, JSON {"error", "exit": 2}.
#
# nmap's portrule only fires on 25/465/587 or a port identified as smtp;
# "+smtp-open-relay" forces it on our high ports (as in t_nmap.sh).
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
command -v nmap >/dev/null || fail "nmap is not installed"
e2e_init
kj_start

# new_port VAR: a free port (free_port) not handed out before, in VAR
PORTS_USED=
new_port() {
	local p i
	for i in $(seq 20); do
		p=$(free_port)
		[ -n "$p" ] || continue
		case " $PORTS_USED " in *" $p "*) continue ;; esac
		PORTS_USED="$PORTS_USED $p"
		printf -v "$1" '%s' "$p"
		return 0
	done
	fail "no free port"
}
for v in CLOSED_PORT OPEN_PORT TRICKS_PORT BACKUP_PORT GUARD_PORT DEAD_PORT DEFER_PORT PF_PORT; do
	new_port $v
done

PF_MASTER_EXTRA="\
127.0.0.1:$CLOSED_PORT inet n - n - - smtpd -o smtpd_milters= -o mynetworks=127.0.0.10/32
127.0.0.1:$OPEN_PORT inet n - n - - smtpd -o smtpd_milters= -o mynetworks=0.0.0.0/0
127.0.0.1:$TRICKS_PORT inet n - n - - smtpd -o smtpd_milters= -o mynetworks=127.0.0.10/32
  -o allow_untrusted_routing=yes -o rewrite_service_name=rewrite-tricks
127.0.0.1:$BACKUP_PORT inet n - n - - smtpd -o smtpd_milters= -o mynetworks=127.0.0.10/32
  -o allow_untrusted_routing=yes
127.0.0.1:$GUARD_PORT inet n - n - - smtpd -o mynetworks=0.0.0.0/0
127.0.0.1:$DEFER_PORT inet n - n - - smtpd -o smtpd_milters= -o mynetworks=0.0.0.0/0
  -o smtpd_relay_restrictions=defer
rewrite-tricks unix - - n - - trivial-rewrite -o allow_percent_hack=no
  -o swap_bangpath=no -o resolve_dequoted_address=no"
pf_start milter
say "t_audit: closed 127.0.0.1:$CLOSED_PORT, open :$OPEN_PORT, tricks :$TRICKS_PORT," \
	"backupmx :$BACKUP_PORT, guarded (milter) :$GUARD_PORT, nothing on :$DEAD_PORT"

MAILLOG=$T/postfix/maillog
# both batteries: sender antispam@example.net, target relaytest@example.net
AUDIT_ARGS=(--no-submission --pause 0 --timeout 5s --from antispam@example.net
	--to relaytest@example.net)

# [AUDIT_LOCAL=D] audit NAME PORT [ARGS...]: kanjiki audit --json against
# 127.0.0.1:PORT, --local-domain D (default local.test), EHLO
# NAME.kanjiki-audit.example.net (Postfix logs it with each refusal);
# JSON in $T/audit.NAME.json, exit status in AUDIT_RC, the Postfix log
# line count before the run in AUDIT_LOG_FROM.
audit() {
	local name=$1 port=$2
	shift 2
	AUDIT_LOG_FROM=$(wc -l <"$MAILLOG")
	printf '\n=== kanjiki audit %s --local-domain %s --helo %s.kanjiki-audit.example.net --json %s 127.0.0.1:%s\n' \
		"${AUDIT_ARGS[*]}" "${AUDIT_LOCAL:-local.test}" "$name" "$*" "$port" >>"$SMTP_LOG"
	"$CLI" audit "${AUDIT_ARGS[@]}" --local-domain "${AUDIT_LOCAL:-local.test}" \
		--helo "$name.kanjiki-audit.example.net" --json "$@" \
		"127.0.0.1:$port" >"$T/audit.$name.json" 2>"$T/audit.$name.err"
	AUDIT_RC=$?
	cut -c1-2000 "$T/audit.$name.json" >>"$SMTP_LOG"
	cat "$T/audit.$name.err" >>"$SMTP_LOG"
}

# audit_summary NAME: one line per test (id, codes, verdict), for failures.
audit_summary() {
	say "---- kanjiki audit ($1): exit $AUDIT_RC ----"
	python3 - "$T/audit.$1.json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("no JSON: %s" % e)
    print(open(sys.argv[1]).read()[:2000])
    sys.exit(0)
for t in d.get("tests", []):
    print("  %-20s nmap=%-5s %s / %s -> %s" % (t["id"], t["nmap"], t["mail_code"],
          t["rcpt_reply"] or t["mail_reply"] or t.get("error", ""), t["verdict"]))
print("  relays=%s exit=%s findings=%s" % (d.get("relays"), d.get("exit"),
      [(f["id"], f["severity"]) for f in d.get("findings", [])]))
if "error" in d:
    print("  error: %s" % d["error"])
EOF
	cat "$T/audit.$1.err"
}

# aj NAME WHAT PYEXPR: a Python expression over audit NAME's JSON: J (the
# object), TS (tests by id), R (ids of the tests that relay), F (finding
# ids), H (ids of high-severity findings), E (os.environ), kj_code(ID)
# (the reason code kanjiki-milter gives for a test's trick, None for none).
aj() {
	local name=$1 what=$2 expr=$3
	python3 - "$T/audit.$name.json" "$expr" <<'EOF' || { audit_summary "$name"; fail "audit $name: $what"; }
import json, os, sys
E = os.environ
J = json.load(open(sys.argv[1]))
TS = {t["id"]: t for t in J.get("tests", [])}
R = {t["id"] for t in J.get("tests", []) if t["relay"]}
F = {f["id"] for f in J.get("findings", [])}
H = {f["id"] for f in J.get("findings", []) if f["severity"] == "high"}
def kj_code(i):
    """the reason code kanjiki-milter names for audit test i (None: plain relay)"""
    for pre, code in (("percent_hack", "percent_hack"), ("empty_domain", "percent_hack"),
                      ("quoted_", "quoted_local"), ("double_at", "double_at"),
                      ("trailing_at", "double_at"), ("source_route", "source_route"),
                      ("bang_path", "bang_path")):
        if i.startswith(pre):
            return code
    return None
ok = eval("(" + sys.argv[2] + "\n)")
sys.exit(0 if ok else 1)
EOF
	ok "audit $name: $what"
}

# expect_relays NAME RC ID...: exit status RC, JSON exit RC, "relays" = the
# number of IDs, and exactly the tests IDs relay ("-" for none).
expect_relays() {
	local name=$1 rc=$2
	shift 2
	[ "$1" = - ] && shift
	[ "$AUDIT_RC" = "$rc" ] || { audit_summary "$name"; fail "audit $name: exit status $AUDIT_RC, expected $rc"; }
	ok "audit $name: exit status $rc"
	local what="relays = $#"
	[ $# -le 10 ] && what="$what (${*:-none})"
	[ $# = 27 ] && what="$what (every test)"
	WANT="$*" aj "$name" "$what, JSON exit $rc" \
		"J['exit'] == $rc and J['relays'] == $# and R == set(E['WANT'].split())"
}

# nmap_vs_audit NAME PORT N: nmap's smtp-open-relay against 127.0.0.1:PORT
# says N of 16 (0: "doesn't seem to be an open relay"), N equals the number
# of audit NAME's nmap=true tests that relay, and both list the same
# accepted MAIL FROM / RCPT TO pairs.
nmap_vs_audit() {
	local name=$1 port=$2 n=$3
	printf '\n=== nmap -Pn -vv -p %s --script +smtp-open-relay --script-args smtp-open-relay.domain=example.net,smtp-open-relay.ip=127.0.0.1 127.0.0.1 (%s)\n' "$port" "$name" >>"$SMTP_LOG"
	nmap -Pn -vv -p "$port" --script +smtp-open-relay \
		--script-args "smtp-open-relay.domain=example.net,smtp-open-relay.ip=127.0.0.1" \
		127.0.0.1 >"$T/nmap.$name.out" 2>&1
	sed -n '/^PORT/,/^$/p' "$T/nmap.$name.out" >>"$SMTP_LOG"
	python3 - "$T/nmap.$name.out" "$T/audit.$name.json" "$n" >"$T/nmap.$name.cmp" 2>&1 <<'EOF'
import json, re, sys
out = open(sys.argv[1]).read()
want = int(sys.argv[3])
m = re.search(r"smtp-open-relay: Server is an open relay \((\d+)/16 tests\)", out)
if m:
    n = int(m.group(1))
elif "smtp-open-relay: Server doesn't seem to be an open relay, all tests failed" in out:
    n = 0
else:
    print("nmap gave no verdict")
    sys.exit(1)
pairs = set(re.findall(r"(MAIL FROM:<[^\n]*?> -> RCPT TO:<[^\n]*>)\s*$", out, re.M))
J = json.load(open(sys.argv[2]))
nm = [t for t in J["tests"] if t["nmap"]]
mine = {"MAIL FROM:%s -> RCPT TO:%s" % (t["mail"], t["rcpt"]) for t in nm if t["relay"]}
print("nmap: %d/16, audit: %d of its %d nmap tests relay" % (n, len(mine), len(nm)))
bad = []
if len(nm) != 16:
    bad.append("audit has %d nmap tests, not 16" % len(nm))
if n != want:
    bad.append("nmap says %d/16, expected %d" % (n, want))
if n != len(mine):
    bad.append("nmap %d != audit %d" % (n, len(mine)))
if len(pairs) != n:
    bad.append("nmap lists %d pairs for %d tests" % (len(pairs), n))
if pairs != mine:
    bad.append("only nmap: %s; only audit: %s" % (sorted(pairs - mine), sorted(mine - pairs)))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
EOF
	if [ $? != 0 ]; then
		cat "$T/nmap.$name.cmp"
		sed -n '/^PORT/,/^$/p' "$T/nmap.$name.out"
		audit_summary "$name"
		fail "nmap and kanjiki audit disagree on $name"
	fi
	ok "$name: nmap and audit agree: $(head -n 1 "$T/nmap.$name.cmp")$( [ "$n" -gt 0 ] && echo ", the same $n pairs")"
}

# denied_in_log NAME: Postfix logged (postlogd writes asynchronously: wait
# up to 10 s) one "Relay access denied" with helo=<NAME...> per audit test
# whose RCPT was answered "554 5.7.1 ... Relay access denied".
denied_in_log() {
	local name=$1 want got end=$(($(date +%s) + 10))
	want=$(python3 -c '
import json, sys
J = json.load(open(sys.argv[1]))
print(sum(1 for t in J["tests"] if "Relay access denied" in (t["rcpt_reply"] or "")))' "$T/audit.$name.json")
	while :; do
		got=$(grep -c "NOQUEUE: reject: RCPT from .*: 554 5.7.1 .*Relay access denied; .* helo=<$name\.kanjiki-audit\.example\.net>" "$MAILLOG")
		[ "$got" -ge "$want" ] && break
		[ "$(date +%s)" -ge $end ] && break
		sleep 0.2
	done
	[ "$want" = "$got" ] && [ "$want" -gt 0 ] ||
		{ grep -F "helo=<$name." "$MAILLOG" | tail -n 30; fail "audit $name: $want refusals in the JSON, $got \"Relay access denied\" in Postfix's log"; }
	ok "audit $name: Postfix logged the $got \"Relay access denied\" refusals audit reports"
}

# deliveries NAME N: wait (up to 15 s) until Postfix's log since audit NAME
# began holds N deliveries by the discard agent; they go to
# $T/deliveries.NAME (JSON lines: to, orig_to, status, text).
deliveries() {
	local name=$1 n=$2 end=$(($(date +%s) + 15)) got
	while :; do
		tail -n +"$((AUDIT_LOG_FROM + 1))" "$MAILLOG" >"$T/audit.$name.log"
		got=$(grep -Ec 'postfix/discard\[[0-9]+\]: [0-9A-F]+: to=<' "$T/audit.$name.log")
		[ "$got" -ge "$n" ] && break
		[ "$(date +%s)" -ge $end ] && break
		sleep 0.3
	done
	# one more look: a delivery too many would show now
	sleep 0.5
	tail -n +"$((AUDIT_LOG_FROM + 1))" "$MAILLOG" >"$T/audit.$name.log"
	python3 - "$T/audit.$name.log" >"$T/deliveries.$name" <<'EOF'
import json, re, sys
for l in open(sys.argv[1], encoding="latin-1"):
    m = re.search(r"postfix/discard\[\d+\]: \w+: to=<(.*?)>, (?:orig_to=<(.*?)>, )?relay=.*status=(\w+) \((.*)\)$", l)
    if m:
        print(json.dumps(dict(zip(("to", "orig_to", "status", "text"), m.groups()))))
EOF
}

# expect_deliveries NAME TEXT WHAT PYEXPR: every delivery since audit NAME
# is status=sent with the discard text TEXT (the transport that took it:
# "delivery discarded" default_transport, off-host; "relay delivery
# discarded" relay_transport, to a relay_domains next hop; "local delivery
# discarded" local), and a Python expression over the deliveries (D, a list
# of dicts) and audit NAME's JSON (J) holds.
expect_deliveries() {
	local name=$1 text=$2 what=$3 expr=$4
	python3 - "$T/deliveries.$name" "$T/audit.$name.json" "$text" "$expr" <<'EOF' ||
import json, sys
D = [json.loads(l) for l in open(sys.argv[1])]
J = json.load(open(sys.argv[2]))
ok = all(d["status"] == "sent" and d["text"] == sys.argv[3] for d in D)
sys.exit(0 if ok and eval("(" + sys.argv[4] + "\n)") else 1)
EOF
		{ grep discard "$T/audit.$name.log" | tail -n 30; fail "$name: Postfix's log: not $what"; }
	ok "Postfix log ($name): $what (status=sent, \"$text\")"
}

# every test id, in audit's order (lib/audit.c), with --local-domain
ALL_IDS="null_sender foreign_sender sender_server_name sender_ip_literal
percent_hack_ip percent_hack_name quoted_at quoted_percent double_at_ip
quoted_at_ip double_at_name source_route_ip source_route_name bang_path
bang_path_ip bang_path_name unqualified_sender no_brackets trailing_at
empty_domain mixed_case trailing_dot forged_local_sender percent_hack_local
quoted_at_local source_route_local bang_path_local"
# on the open one (permit_mynetworks first) every test relays, even the
# trailing '@' forms that the relay guard refuses as bad syntax elsewhere
OPEN_RELAYS=$ALL_IDS
# what the tricks listener accepts: routing through its IP literal and its
# local domain, and unqualified quoted/bang forms (local to it)
TRICK_RELAYS="percent_hack_ip quoted_percent double_at_ip quoted_at_ip bang_path
bang_path_ip percent_hack_local quoted_at_local bang_path_local"

# ---------------------------------------------------------------- closed
say "-- closed: default relay restrictions, the client outside mynetworks"
audit closed "$CLOSED_PORT"
expect_relays closed 0 -
aj closed "27 tests (nmap's 16 and 11 more), every RCPT refused with 5xx" \
	"len(TS) == 27 and sum(t['nmap'] for t in TS.values()) == 16 and all(t['mail_code'] == 250 and 500 <= t['rcpt_code'] < 600 for t in TS.values())"
aj closed "verdicts \"refused\", conclusion \"not an open relay\", no high finding" \
	"all(t['verdict'] == 'refused' for t in TS.values()) and J['conclusion'].startswith('not an open relay') and not H"
denied_in_log closed
nmap_vs_audit closed "$CLOSED_PORT" 0

# ---------------------------------------------------------------- open
say "-- open: mynetworks = 0.0.0.0/0"
audit open "$OPEN_PORT"
expect_relays open 1 $OPEN_RELAYS
aj open "every test answered 250 at RCPT, verdict \"relay\"" \
	"all(t['verdict'] == 'relay' and t['rcpt_code'] == 250 for t in TS.values())"
aj open "findings: open_relay (high) and every trick kind" \
	"{'open_relay', 'percent_hack', 'quoted_local', 'routing', 'source_route', 'bang_path'} <= H and J['conclusion'].startswith('OPEN RELAY: 27 of 27')"
sleep 0.5
grep -F 'helo=<open.kanjiki-audit.example.net>' "$MAILLOG" | grep -q 'NOQUEUE: reject: RCPT' &&
	{ grep -F 'helo=<open.' "$MAILLOG" | head; fail "audit open: Postfix refused a recipient"; }
ok "audit open: Postfix's log shows no refused recipient"
nmap_vs_audit open "$OPEN_PORT" 16

say "-- open, --deliver: the relayed messages reach the discard transport"
audit open-deliver "$OPEN_PORT" --deliver
expect_relays open-deliver 1 $OPEN_RELAYS
aj open-deliver "every relaying test \"relay (delivered)\" (DATA 250)" \
	"all(t['verdict'] == 'relay (delivered)' and t['data_code'] == 250 for t in TS.values() if t['relay']) and all(t['data_code'] == 0 for t in TS.values() if not t['relay'])"
# (the three routes through mx.local.test, the banner name but not in
# mydestination, go unchanged to that host: relaytest%example.net@mx.local.test)
deliveries open-deliver 27
expect_deliveries open-deliver "delivery discarded" "27 messages sent to relaytest@example.net" \
	"len(D) == 27 and all(d['to'].lower() == 'relaytest@example.net' or d['to'].endswith('@mx.local.test') for d in D) and sum(d['to'].endswith('@mx.local.test') for d in D) == sum(t['rcpt'].endswith('@mx.local.test>') for t in J['tests'] if t['relay'])"

# ---------------------------------------------------------------- tricks
say "-- tricks: closed to a plain foreign recipient, open to routing tricks"
audit tricks "$TRICKS_PORT"
expect_relays tricks 1 $TRICK_RELAYS
aj tricks "the plain foreign recipient refused (554 Relay access denied), whatever the sender" \
	"all(TS[i]['rcpt_code'] == 554 and 'Relay access denied' in TS[i]['rcpt_reply'] for i in ['null_sender', 'foreign_sender', 'sender_server_name', 'sender_ip_literal', 'unqualified_sender', 'no_brackets', 'mixed_case', 'trailing_dot', 'forged_local_sender'])"
aj tricks "findings: percent_hack, quoted_local, routing, bang_path (high); no open_relay, no source_route" \
	"{'percent_hack', 'quoted_local', 'routing', 'bang_path'} <= H and not H & {'open_relay', 'source_route'} and J['conclusion'].startswith('OPEN RELAY: 9 of 27')"
aj tricks "the trailing-'@' forms refused as bad syntax (501 5.1.3)" \
	"all(TS[i]['rcpt_code'] == 501 and '5.1.3' in TS[i]['rcpt_reply'] for i in ['trailing_at', 'empty_domain'])"
denied_in_log tricks
nmap_vs_audit tricks "$TRICKS_PORT" 6

say "-- tricks, --fresh-connection: a connection per test, the same answers"
audit tricks-fresh "$TRICKS_PORT" --fresh-connection
expect_relays tricks-fresh 1 $TRICK_RELAYS
python3 - "$T/audit.tricks.json" "$T/audit.tricks-fresh.json" <<'EOF' ||
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
key = lambda J: [(t["id"], t["mail_code"], t["rcpt_code"], t["verdict"]) for t in J["tests"]]
sys.exit(0 if key(a) == key(b) else 1)
EOF
	{ audit_summary tricks; audit_summary tricks-fresh; fail "tricks: --fresh-connection answers differ from RSET's"; }
ok "audit tricks-fresh: every MAIL/RCPT code and verdict as with RSET on one connection"

say "-- tricks, the report (no --json)"
printf '\n=== kanjiki audit %s --local-domain local.test 127.0.0.1:%s (report)\n' "${AUDIT_ARGS[*]}" "$TRICKS_PORT" >>"$SMTP_LOG"
"$CLI" audit "${AUDIT_ARGS[@]}" --local-domain local.test "127.0.0.1:$TRICKS_PORT" >"$T/report.tricks" 2>&1
rc=$?
cat "$T/report.tricks" >>"$SMTP_LOG"
[ $rc = 1 ] || { cat "$T/report.tricks"; fail "audit tricks (report): exit status $rc, expected 1"; }
for want in "OPEN RELAY: 9 of 27 relay tests were accepted" \
	"[high] relays through the percent hack" "[high] relays a UUCP bang path" \
	"[high] relays a quoted local part" "[high] relays an address with a second '@'"; do
	grep -qF -- "$want" "$T/report.tricks" || { cat "$T/report.tricks"; fail "audit tricks (report): no \"$want\""; }
done
grep -qF -- "open relay: mail for a foreign domain" "$T/report.tricks" &&
	{ cat "$T/report.tricks"; fail "audit tricks (report): an open_relay finding for a server that refuses plain relaying"; }
ok "audit tricks (report): exit 1, \"OPEN RELAY: 9 of 27\", the four trick findings, no open_relay finding"

say "-- tricks, --deliver: the queue manager sends the tricks to relaytest@example.net"
audit tricks-deliver "$TRICKS_PORT" --deliver
expect_relays tricks-deliver 1 $TRICK_RELAYS
aj tricks-deliver "every accepted trick \"relay (delivered)\"" \
	"all(t['verdict'] == 'relay (delivered)' for t in TS.values() if t['relay'])"
deliveries tricks-deliver 9
expect_deliveries tricks-deliver "delivery discarded" "9 tricks sent to relaytest@example.net" \
	"len(D) == 9 and all(d['to'] == 'relaytest@example.net' for d in D)"

# ---------------------------------------------------------------- backupmx
say "-- backupmx: allow_untrusted_routing = yes, audited with --local-domain relay.test"
AUDIT_LOCAL=relay.test audit backupmx "$BACKUP_PORT" --deliver
expect_relays backupmx 1 percent_hack_local quoted_at_local bang_path_local
aj backupmx "every nmap test refused (nothing routes through the IP literal or the name), the three tricks delivered" \
	"not any(t['relay'] for t in TS.values() if t['nmap']) and all(t['verdict'] == 'relay (delivered)' for t in TS.values() if t['relay']) and TS['percent_hack_local']['rcpt'] == '<relaytest%example.net@relay.test>'"
aj backupmx "findings percent_hack, quoted_local, bang_path; no open_relay" \
	"H == {'percent_hack', 'quoted_local', 'bang_path'}"
deliveries backupmx 3
expect_deliveries backupmx "relay delivery discarded" \
	"the 3 tricks forwarded unchanged to relay.test's next hop" \
	"sorted(d['to'] for d in D) == sorted(t['rcpt'][1:-1] for t in J['tests'] if t['relay'])"
nmap_vs_audit backupmx "$BACKUP_PORT" 0

# ---------------------------------------------------------------- guarded
say "-- guarded: the open one behind kanjiki-milter"
audit guarded "$GUARD_PORT"
expect_relays guarded 0 -
aj guarded "all 27 refused by kanjiki: 554 5.7.1 Relaying denied (kanjiki), the trick named" \
	"len(TS) == 27 and all(t['rcpt_code'] == 554 and t['rcpt_reply'].startswith('554 5.7.1 Relaying denied (kanjiki)') for t in TS.values()) and all(('(%s)' % kj_code(i)) in t['rcpt_reply'] if kj_code(i) else 'domain is not local' in t['rcpt_reply'] for i, t in TS.items())"
aj guarded "no high finding, conclusion \"not an open relay\"" \
	"not H and J['conclusion'].startswith('not an open relay')"
wait_verdict --count 27 --ip 127.0.0.1 --kind rcpt --action reject
n=$(query_count --ip 127.0.0.1 --kind rcpt --action reject)
[ "$n" = 27 ] || fail "expected 27 refusals of 127.0.0.1 in kanjiki's verdict store, found $n"
ok "the 27 refusals are in kanjiki's verdict store (client 127.0.0.1, rcpt, reject)"
expect_verdicts --ip 127.0.0.1 --kind rcpt --action reject -- \
	relaytest@example.net relay_denied \
	'relaytest%example.net@[127.0.0.1]' percent_hack \
	'example.net!relaytest@local.test' bang_path \
	'relaytest@example.net@mx.local.test' double_at \
	'@local.test:relaytest@example.net' source_route \
	'"relaytest@example.net"@local.test' quoted_local
nmap_vs_audit guarded "$GUARD_PORT" 0

# ---------------------------------------------------------------- greylisted
# an open relay behind a 4xx for everybody (what greylisting does to a first
# attempt): no test is refused for good, so the audit cannot decide
say "-- deferred: every relay test answered 4xx"
audit deferred "$DEFER_PORT"
[ "$AUDIT_RC" = 2 ] || { audit_summary deferred; fail "audit deferred: exit $AUDIT_RC, expected 2"; }
ok "audit deferred: exit status 2 (undecided)"
aj deferred "every test deferred, no relay, conclusion undecided" \
	"set(t['verdict'] for t in TS.values()) == {'deferred'} and J['relays'] == 0 and J['conclusion'].startswith('undecided') and 'deferred' in J['conclusion']"

# ---------------------------------------------------------------- nothing
say "-- a port where nothing listens"
audit dead "$DEAD_PORT"
[ "$AUDIT_RC" = 2 ] || { audit_summary dead; fail "audit of a closed port: exit $AUDIT_RC, expected 2"; }
ok "audit of 127.0.0.1:$DEAD_PORT (nothing listening): exit status 2"
aj dead "JSON {\"error\": ..., \"exit\": 2}, no tests" \
	"J['exit'] == 2 and J.get('error') and 'tests' not in J"
grep -q "kanjiki audit: 127.0.0.1:$DEAD_PORT: " "$T/audit.dead.err" ||
	{ cat "$T/audit.dead.err"; fail "audit dead: no error message on stderr"; }
ok "audit dead: stderr says why: $(head -n 1 "$T/audit.dead.err" | cut -c1-90)"

done_ok
