#!/bin/sh
# tests/dnsenv/selftest.sh: prove the test DNS environment (dnsenv.sh).
#
# Starts it in a temporary directory, queries every name listed at the top
# of dnsenv.sh through the front dnsmasq (and a few directly at rbldnsd and
# at the silent socket) with the Python client of dnsenv.py, stops it and
# checks that no process is left.  Then the same through the Python API
# (dnsenv.start/stop), a start that fails halfway (its port taken) and a
# stop that must find a daemon whose pid file is gone.
#
# Prints PASS/FAIL per check and a summary; exit 1 on any failure.  Without
# rbldnsd, dnsmasq or python3: "SKIP" and exit 0, unless
# KANJIKI_REQUIRE_E2E=1, which makes a skip a failure.  KANJIKI_E2E_KEEP=1
# keeps the temporary directory (a failing run always keeps it).
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

missing=
for t in rbldnsd dnsmasq; do
	command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || missing="$missing $t"
done
command -v "$PY" >/dev/null 2>&1 || missing="$missing $PY"
if [ -n "$missing" ]; then
	echo "SKIP: dnsenv self test needs rbldnsd, dnsmasq and python3 (missing:$missing)"
	if [ "${KANJIKI_REQUIRE_E2E:-0}" = 1 ]; then
		echo "FAIL: KANJIKI_REQUIRE_E2E=1 but the dnsenv self test cannot run here"
		exit 1
	fi
	exit 0
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/kanjiki-dnsenv.XXXXXX") || { echo "FAIL: mktemp"; exit 1; }
chmod 0755 "$T"
FAILED=0
HOLDER=

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
	for d in "$T"/env*; do
		[ -d "$d" ] && sh "$HERE/dnsenv.sh" stop "$d" >/dev/null 2>&1
	done
	if [ "$FAILED" != 0 ] || [ "${KANJIKI_E2E_KEEP:-0}" = 1 ]; then
		echo "(test directory kept: $T)"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILED=1; }

# alive PID: exists and is not a zombie
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ]
}

# none_left DIR PIDS...: none of PIDS alive, no rbldnsd/dnsmasq/python
# process whose command line names DIR/.
none_left() {
	d=$1
	shift
	left=
	for p in "$@"; do
		alive "$p" && left="$left $p"
	done
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" = $$ ] && continue
		case "$(cat "$p/comm" 2>/dev/null)" in
		rbldnsd | dnsmasq | python*) ;;
		*) continue ;;
		esac
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$d/" && alive "$pid" &&
			left="$left $pid"
	done
	if [ -z "$left" ]; then
		return 0
	fi
	echo "  still running:$left"
	for p in $left; do
		echo "    $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-150)"
	done
	return 1
}

# ------------------------------------------------ 1. shell start, queries, stop
E=$T/env1
t0=$(date +%s)
if sh "$HERE/dnsenv.sh" start "$E" >"$T/start1.out" 2>&1; then
	pass "dnsenv.sh start $E ($(($(date +%s) - t0))s)"
else
	cat "$T/start1.out"
	fail "dnsenv.sh start $E"
	exit 1
fi
# shellcheck source=/dev/null
. "$E/env.sh"
for v in DNS_FRONT DNS_RBL DNS_DEAD DNS_FRONT_PID DNS_RBL_PID DNS_DEAD_PID; do
	eval "val=\${$v:-}"
	if [ -n "$val" ]; then pass "env.sh sets $v=$val"; else fail "env.sh lacks $v"; fi
done

PYTHONPATH=$HERE "$PY" - "$E" <<'PYEOF' || FAILED=1
import os, sys, time
import dnsenv

env = dnsenv.parse_env(os.path.join(sys.argv[1], "env.sh"))
F, R, X = env["DNS_FRONT"], env["DNS_RBL"], env["DNS_DEAD"]
failed = 0


def rev4(ip, zone):
    return ".".join(reversed(ip.split("."))) + "." + zone


def rev6(ip, zone):
    import ipaddress
    return ipaddress.ip_address(ip).reverse_pointer.replace("ip6.arpa", zone)


def check(server, name, qtype, rcode, answers=None, soa=None, ttl=None, note=""):
    """answers: exact list (order ignored), None = not checked.
    soa: True/False = an SOA must / must not be in the authority section."""
    global failed
    r = dnsenv.query_full(server, name, qtype, timeout=2)
    got = sorted(a["data"] for a in r["answer"] if a["type"] == qtype)
    rc, ans, t = dnsenv.query(server, name, qtype) if r["rcode"] != "TIMEOUT" else (r["rcode"], [], None)
    has_soa = any(a["type"] == "SOA" for a in r["authority"])
    problems = []
    if r["rcode"] != rcode:
        problems.append("rcode %s, wanted %s" % (r["rcode"], rcode))
    if answers is not None and got != sorted(answers):
        problems.append("answers %s, wanted %s" % (got, sorted(answers)))
    if soa is True and not has_soa:
        problems.append("no SOA in the authority section")
    if soa is False and has_soa:
        problems.append("unexpected SOA")
    if ttl is not None and t != ttl:
        problems.append("ttl %s, wanted %s" % (t, ttl))
    who = {F: "front", R: "rbldnsd", X: "dead"}.get(server, server)
    shown = ",".join(got) if got else ("+SOA" if has_soa else "")
    if len(shown) > 70:
        shown = shown[:67] + "..."
    line = "%-7s %s %s -> %s %s%s" % (who, name, qtype, r["rcode"], shown,
                                      (" ttl=%s" % t) if t is not None else "")
    if note:
        line += "  (" + note + ")"
    if problems:
        failed += 1
        print("FAIL " + line + ": " + "; ".join(problems))
    else:
        print("PASS " + line)
    return r


def listed(server, zone, key, a, txt=None, rev=rev4):
    name = rev(key, zone) if rev else key + "." + zone
    check(server, name, "A", "NOERROR", a, ttl=300)
    if txt is not None:
        check(server, name, "TXT", "NOERROR", [txt] if txt else [])


def nx(server, name, qtype="A"):
    check(server, name, qtype, "NXDOMAIN", [], soa=True, ttl=30)


BL = "Listed in bl.kanjiki.test: see http://bl.kanjiki.test/q?"
WK = "Listed in weak.kanjiki.test: see http://weak.kanjiki.test/q?"
DB = "Listed in dbl.kanjiki.test: see http://dbl.kanjiki.test/q?"
UR = "Listed in uri.kanjiki.test: see http://uri.kanjiki.test/q?"
RF = "Query refused: you may not query refuse.kanjiki.test"

for S in (F, R):
    # bl.kanjiki.test
    listed(S, "bl.kanjiki.test", "127.0.0.2", ["127.0.0.2"], BL + "127.0.0.2")
    nx(S, rev4("127.0.0.1", "bl.kanjiki.test"))
    nx(S, rev4("127.0.0.1", "bl.kanjiki.test"), "TXT")
    listed(S, "bl.kanjiki.test", "127.0.0.66", ["127.0.0.2"],
           "Listed in bl.kanjiki.test: see http://bl.kanjiki.test/q?127.0.0.66")
    listed(S, "bl.kanjiki.test", "127.0.0.67", ["127.0.0.4"],
           "Listed in bl.kanjiki.test (code 4): see http://bl.kanjiki.test/q?127.0.0.67")
    listed(S, "bl.kanjiki.test", "198.51.100.7", ["127.0.0.2"], BL + "198.51.100.7")
    listed(S, "bl.kanjiki.test", "203.0.113.0", ["127.0.0.2"], BL + "203.0.113.0")
    listed(S, "bl.kanjiki.test", "203.0.113.15", ["127.0.0.2"], BL + "203.0.113.15")
    nx(S, rev4("203.0.113.16", "bl.kanjiki.test"))
    nx(S, rev4("127.0.0.20", "bl.kanjiki.test"))
    listed(S, "bl.kanjiki.test", "2001:db8:bad::1", ["127.0.0.2"], BL + "2001:db8:bad::1", rev=rev6)
    nx(S, rev6("2001:db8:bad::2", "bl.kanjiki.test"))
    # weak.kanjiki.test
    listed(S, "weak.kanjiki.test", "127.0.0.66", ["127.0.0.2"], WK + "127.0.0.66")
    listed(S, "weak.kanjiki.test", "127.0.0.68", ["127.0.0.2"], WK + "127.0.0.68")
    listed(S, "weak.kanjiki.test", "127.0.0.2", ["127.0.0.2"], WK + "127.0.0.2")
    nx(S, rev4("127.0.0.67", "weak.kanjiki.test"))
    # refuse.kanjiki.test: everything refused
    for key in ("127.0.0.2", "127.0.0.1", "127.0.0.66"):
        listed(S, "refuse.kanjiki.test", key, ["127.255.255.254"], RF)
    listed(S, "refuse.kanjiki.test", "2001:db8:bad::1", ["127.255.255.254"], RF, rev=rev6)
    listed(S, "refuse.kanjiki.test", "spammer.test", ["127.255.255.254"], RF, rev=None)
    # open.kanjiki.test: 127.0.0.1 for everything, no TXT
    for key in ("127.0.0.2", "127.0.0.1", "127.0.0.20"):
        listed(S, "open.kanjiki.test", key, ["127.0.0.1"], "")
    listed(S, "open.kanjiki.test", "invalid", ["127.0.0.1"], rev=None)
    # dbl.kanjiki.test
    listed(S, "dbl.kanjiki.test", "spammer.test", ["127.0.0.2"], DB + "spammer.test", rev=None)
    nx(S, "www.spammer.test.dbl.kanjiki.test")
    listed(S, "dbl.kanjiki.test", "mail.badhelo.test", ["127.0.0.2"], DB + "badhelo.test", rev=None)
    listed(S, "dbl.kanjiki.test", "a.b.badhelo.test", ["127.0.0.2"], rev=None)
    nx(S, "badhelo.test.dbl.kanjiki.test")
    listed(S, "dbl.kanjiki.test", "test", ["127.0.0.2"], DB + "test", rev=None)
    nx(S, "invalid.dbl.kanjiki.test")
    nx(S, "spf-pass.test.dbl.kanjiki.test")
    # uri.kanjiki.test
    listed(S, "uri.kanjiki.test", "evil-link.test", ["127.0.0.2"], UR + "evil-link.test", rev=None)
    nx(S, "www.evil-link.test.uri.kanjiki.test")
    listed(S, "uri.kanjiki.test", "127.0.0.2", ["127.0.0.2"], UR + "127.0.0.2")
    listed(S, "uri.kanjiki.test", "192.0.2.99", ["127.0.0.2"], UR + "192.0.2.99")
    nx(S, rev4("127.0.0.1", "uri.kanjiki.test"))
    listed(S, "uri.kanjiki.test", "test", ["127.0.0.2"], rev=None)
    nx(S, "invalid.uri.kanjiki.test")
    listed(S, "uri.kanjiki.test", "refused-uri.test", ["127.0.0.1"], "Query refused", rev=None)
    listed(S, "uri.kanjiki.test", "mixed-uri.test", ["127.0.0.1", "127.0.0.2"], rev=None)

# SOA records of the zones (rbldnsd)
for z in ("bl", "weak", "refuse", "open", "dbl", "uri"):
    check(R, z + ".kanjiki.test", "SOA", "NOERROR",
          ["ns.kanjiki.test hostmaster.kanjiki.test 1 600 300 86400 30"])
# rbldnsd answers nothing outside its zones
check(R, "www.example.com", "A", "REFUSED", [])

# SPF TXT (dnsmasq)
spf = {
    "spf-pass.test": ["v=spf1 ip4:192.0.2.0/24 ip4:127.0.0.0/8 -all"],
    "spf-fail.test": ["v=spf1 -all"],
    "spf-soft.test": ["v=spf1 ~all"],
    "spf-neutral.test": ["v=spf1 ?all"],
    "spf-perm.test": ["v=spf1 ip4:bad -all"],
    "spf-include.test": ["v=spf1 include:spf-pass.test -all"],
    "spf-include-temp.test": ["v=spf1 include:spf-temp.test -all"],
    "spf-redirect.test": ["v=spf1 redirect=spf-fail.test"],
    "spf-mx.test": ["v=spf1 mx -all"],
    "spf-a.test": ["v=spf1 a -all"],
    "spf-split.test": ["v=spf1 ip4:192.0.2.0/24 ip4:127.0.0.0/8 -all"],
    "spf-multi.test": ["v=spf1 -all", "v=spf1 +all"],
    "spf-none.test": ["kanjiki test: this is not an SPF record"],
}
for name, txt in spf.items():
    check(F, name, "TXT", "NOERROR", txt, ttl=300)
check(F, "spf-pass.test", "A", "NOERROR", [], soa=True, note="NODATA")
check(F, "spf-pass.test", "MX", "NOERROR", [], soa=True, note="NODATA")
nx(F, "nothing.test", "TXT")
nx(F, "nothing.example", "TXT")
nx(F, "nothing.invalid", "TXT")
check(F, "spf-mx.test", "MX", "NOERROR", ["10 mx.kanjiki.test"])
check(F, "spf-a.test", "A", "NOERROR", ["127.0.0.1"])

# A / PTR (dnsmasq)
for name, ip in (("mx.kanjiki.test", "127.0.0.1"), ("testpoint.kanjiki.test", "127.0.0.2"),
                 ("listed.kanjiki.test", "127.0.0.66"), ("weak-host.kanjiki.test", "127.0.0.68"),
                 ("spammer.test", "127.0.0.69"), ("doc-host.kanjiki.test", "192.0.2.10")):
    check(F, name, "A", "NOERROR", [ip], ttl=300)
    check(F, rev4(ip, "in-addr.arpa"), "PTR", "NOERROR", [name], ttl=300)
check(F, "mx.kanjiki.test", "AAAA", "NOERROR", [], soa=True, note="NODATA")
check(F, rev4("127.0.0.67", "in-addr.arpa"), "PTR", "NOERROR", ["nomatch.kanjiki.test"])
nx(F, "nomatch.kanjiki.test")
nx(F, rev4("127.0.0.20", "in-addr.arpa"), "PTR")
nx(F, rev4("198.51.100.7", "in-addr.arpa"), "PTR")
nx(F, rev6("2001:db8:bad::1", "ip6.arpa"), "PTR")
# nothing leaves the machine: other names NXDOMAIN at once, without SOA
for name in ("www.example.com", "localhost", "kanjiki.example.net"):
    r = check(F, name, "A", "NXDOMAIN", [], soa=False)

# the names that are never answered
t0 = time.monotonic()
for server, name, qtype in ((F, "x.dead.kanjiki.test", "A"), (F, "a.b.dead.kanjiki.test", "TXT"),
                            (F, "spf-temp.test", "TXT"), (F, rev4("127.0.0.70", "in-addr.arpa"), "PTR"),
                            (X, "anything.test", "A")):
    r = dnsenv.query_full(server, name, qtype, timeout=1.0)
    who = {F: "front", X: "dead"}[server]
    line = "%-7s %s %s -> %s after %.2fs" % (who, name, qtype, r["rcode"], r["elapsed"])
    if r["rcode"] in ("TIMEOUT", "SERVFAIL"):
        print("PASS " + line + " (no answer within 1 s)" if r["rcode"] == "TIMEOUT" else "PASS " + line)
    else:
        failed += 1
        print("FAIL " + line + ": wanted no answer (or SERVFAIL)")
# ...and dnsmasq really forwarded them to the silent socket
time.sleep(0.2)
log = open(env["DNS_DEAD_LOG"]).read()
for want in ("x.dead.kanjiki.test A", "a.b.dead.kanjiki.test TXT", "spf-temp.test TXT",
             "70.0.0.127.in-addr.arpa PTR", "anything.test A"):
    if want in log:
        print("PASS dead socket received %s" % want)
    else:
        failed += 1
        print("FAIL dead socket did not receive %s; its log:\n%s" % (want, log))
# a late answer would be a bug: ask once more, wait 3 s
r = dnsenv.query_full(F, "late.dead.kanjiki.test", "A", timeout=3.0)
if r["rcode"] == "TIMEOUT":
    print("PASS front late.dead.kanjiki.test A -> still no answer (no SERVFAIL) after %.1fs" % r["elapsed"])
else:
    failed += 1
    print("FAIL front late.dead.kanjiki.test A -> %s after %.1fs" % (r["rcode"], r["elapsed"]))

# TCP: dnsmasq's own data only (rbldnsd has no TCP)
r = dnsenv.query_full(F, "spf-pass.test", "TXT", tcp=True)
ok = r["rcode"] == "NOERROR" and [a["data"] for a in r["answer"]] == spf["spf-pass.test"]
print("%s front spf-pass.test TXT over TCP -> %s" % ("PASS" if ok else "FAIL", r["rcode"]))
failed += 0 if ok else 1

print("%d query check(s) failed" % failed if failed else "all query checks passed")
sys.exit(1 if failed else 0)
PYEOF

pids="$DNS_FRONT_PID $DNS_RBL_PID $DNS_DEAD_PID"
if sh "$HERE/dnsenv.sh" stop "$E"; then
	pass "dnsenv.sh stop $E"
else
	fail "dnsenv.sh stop $E"
fi
# shellcheck disable=SC2086
if none_left "$E" $pids; then pass "no process left after stop"; else fail "processes left after stop"; fi
if sh "$HERE/dnsenv.sh" stop "$E"; then pass "second stop is harmless"; else fail "second stop"; fi

# ------------------------------------------------ 2. the Python API
E2=$T/env2
if PYTHONPATH=$HERE "$PY" - "$E2" <<'PYEOF'; then
import sys
import dnsenv
d = sys.argv[1]
env = dnsenv.start(d)
ok = dnsenv.query(env["DNS_FRONT"], "66.0.0.127.bl.kanjiki.test", "A") == ("NOERROR", ["127.0.0.2"], 300)
ok = ok and dnsenv.query(env["DNS_FRONT"], "spf-fail.test", "TXT")[1] == ["v=spf1 -all"]
ok = ok and dnsenv.query(env["DNS_FRONT"], "1.0.0.127.bl.kanjiki.test", "A") == ("NXDOMAIN", [], 30)
with open(d + "/pids", "w") as f:
    f.write(" ".join(env[k] for k in ("DNS_FRONT_PID", "DNS_RBL_PID", "DNS_DEAD_PID")))
rc = dnsenv.stop(d)
sys.exit(0 if ok and rc == 0 else 1)
PYEOF
	pass "dnsenv.py start/query/stop"
else
	fail "dnsenv.py start/query/stop"
fi
# shellcheck disable=SC2046
if none_left "$E2" $(cat "$E2/pids" 2>/dev/null); then pass "no process left after dnsenv.stop()"; else fail "processes left after dnsenv.stop()"; fi

# ------------------------------------------------ 3. a start that fails halfway
# The front port is taken (UDP and TCP): the silent socket and rbldnsd are
# already up when dnsmasq cannot bind; start must fail and stop them.
E3=$T/env3
PORT=$("$PY" "$HERE/dnsenv.py" freeport)
"$PY" - "$PORT" "$T/holder.ready" <<'PYEOF' &
import socket, sys, time
p = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", p)); t.listen(1)
open(sys.argv[2], "w").write("ok")
time.sleep(120)
PYEOF
HOLDER=$!
i=0
while [ ! -s "$T/holder.ready" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
DNSENV_FRONT_PORT=$PORT sh "$HERE/dnsenv.sh" start "$E3" >"$T/start3.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q 'dnsmasq exited' "$T/start3.out"; then
	pass "start with the front port taken fails (exit 1): $(grep 'start failed' "$T/start3.out")"
else
	cat "$T/start3.out"
	fail "start with the front port taken: exit $rc"
fi
if none_left "$E3"; then pass "no process left after the failed start"; else fail "processes left after the failed start"; fi
[ -f "$E3/env.sh" ] && fail "failed start left $E3/env.sh"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
HOLDER=

# ------------------------------------------------ 4. stop without pid files
E4=$T/env4
if sh "$HERE/dnsenv.sh" start "$E4" >"$T/start4.out" 2>&1; then
	# shellcheck source=/dev/null
	. "$E4/env.sh"
	rm -f "$E4/rbldnsd.pid" "$E4/dead.pid"
	sh "$HERE/dnsenv.sh" stop "$E4" >"$T/stop4.out" 2>&1
	rc=$?
	if [ $rc = 0 ] && none_left "$E4" "$DNS_FRONT_PID" "$DNS_RBL_PID" "$DNS_DEAD_PID"; then
		pass "stop finds processes whose pid file is gone ($(grep -c stray "$T/stop4.out") stray(s))"
	else
		cat "$T/stop4.out"
		fail "stop without pid files (exit $rc)"
	fi
else
	cat "$T/start4.out"
	fail "dnsenv.sh start $E4"
fi

if [ $FAILED = 0 ]; then
	echo "PASS dnsenv self test"
else
	echo "FAIL dnsenv self test"
fi
exit $FAILED
