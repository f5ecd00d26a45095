#!/bin/sh
# tests/milter/run.sh BUILD_DIR: milter-protocol tests against the real
# kanjiki-milter, driven over its unix socket by our own MTA-side client
# (tests/milter/milterdrv.py), no MTA involved.
#
# Starts one shared kanjiki-milter (-f, its stderr in a log file) with the
# configuration and rules below in a private temporary directory, runs every
# tests/milter/test_*.py (some start daemons of their own: monitor mode,
# reload, SIGTERM, socket handling), stops the shared daemon with SIGTERM and
# checks that it exits 0 and cleans up.  The blocklist and SPF tests share
# one private DNS (tests/dnsenv), started by the first of them that needs it
# and stopped at the end (checked: nothing of it left running).  Prints
# PASS/FAIL per test; exits
# non-zero on any failure.  KEEP=1 keeps the temporary directory (it is
# always kept when something failed).  Extra arguments select tests by
# substring of their names.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD_ARG=${1:-build}
[ $# -gt 0 ] && shift
BUILD=$(cd "$BUILD_ARG" 2>/dev/null && pwd) || { echo "FAIL milter-tests: no build directory $BUILD_ARG"; exit 1; }
MILTER=$BUILD/kanjiki-milter
CLI=$BUILD/kanjiki

for b in "$MILTER" "$CLI"; do
    if [ ! -x "$b" ]; then
        echo "FAIL milter-tests: $b is missing (run make)"
        exit 1
    fi
done
if ! command -v python3 >/dev/null 2>&1; then
    echo "FAIL milter-tests: python3 is needed"
    exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/kanjiki-milter-tests.XXXXXX") || exit 1
chmod 755 "$T"

# Started as root, kanjiki-milter drops to `user`: use the system user
# kanjiki (created if missing) and give it the temporary directory.
KJ_USER=
if [ "$(id -u)" = 0 ]; then
    KJ_USER=kanjiki
    if ! id "$KJ_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$KJ_USER" ||
            { echo "FAIL milter-tests: cannot create user $KJ_USER"; exit 1; }
    fi
fi

S=$T/shared
mkdir -p "$S/rules"
{
    echo "# shared instance of tests/milter/run.sh"
    echo "socket = unix:$S/k.sock"
    echo "database = $S/k.db"
    [ -n "$KJ_USER" ] && echo "user = $KJ_USER"
    echo "mode = enforce"
    echo "local_domains = local.test"
    echo "relay_domains = relay.test"
    echo "trusted_networks = 192.0.2.10/32, 2001:db8:1::/48"
    echo "local_addresses = 192.0.2.1"
    echo "rules = $S/rules"
} >"$S/k.conf"
# tests/milter/test_rules.py relies on these lines and their numbers.
cat >"$S/rules/10-test.rules" <<'EOF'
deny sender spammer@example.com reply "550 5.7.1 go away"
deny rcpt blocked@local.test
deny client 198.51.100.66 reply "451 4.7.1 come back later"
allow sender friend@rules.test
deny sender rules.test
deny helo bad.helo.test reply "550 5.7.0 bad helo"
EOF
[ -n "$KJ_USER" ] && chown -R "$KJ_USER" "$T"

# The private DNS of tests/dnsenv for the blocklist and SPF tests: started
# by the first test that needs it (kjtest.dns_env()) in $KJ_DNS_DIR, stopped
# by the tests' process when it exits and here again, whatever happened.
KJ_DNS_DIR=$T/dns
DNSENV=$HERE/../dnsenv/dnsenv.sh
dns_stop() {
    [ -d "$KJ_DNS_DIR" ] || return 0
    sh "$DNSENV" stop "$KJ_DNS_DIR" >>"$T/dnsenv-stop.log" 2>&1
}

MPID=
cleanup() {
    if [ -n "$MPID" ] && kill -0 "$MPID" 2>/dev/null; then
        kill -KILL "$MPID" 2>/dev/null
    fi
    dns_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$MILTER" -f -c "$S/k.conf" -p "$S/milter.pid" </dev/null >>"$S/milter.log" 2>&1 &
MPID=$!

# up when the socket file exists and the pidfile is written
i=0
while [ $i -lt 100 ]; do
    if [ -S "$S/k.sock" ] && [ -s "$S/milter.pid" ] && grep -q 'started on' "$S/milter.log"; then
        break
    fi
    if ! kill -0 "$MPID" 2>/dev/null; then
        echo "FAIL milter-tests: kanjiki-milter did not start:"
        sed 's/^/    /' "$S/milter.log"
        exit 1
    fi
    sleep 0.05
    i=$((i + 1))
done
if [ $i -ge 100 ]; then
    echo "FAIL milter-tests: kanjiki-milter did not open $S/k.sock within 5 s"
    sed 's/^/    /' "$S/milter.log"
    exit 1
fi

fails=0
PYTHONDONTWRITEBYTECODE=1 KJ_BUILD=$BUILD KJ_TMP=$T KJ_USER=$KJ_USER KJ_SHARED=$S \
    KJ_DNS_DIR=$KJ_DNS_DIR python3 "$HERE/runtests.py" "$@" || fails=$((fails + 1))

# The test DNS, if a test started it, is stopped and nothing of it is left.
if [ -d "$KJ_DNS_DIR" ]; then
    name="test DNS (tests/dnsenv) stopped with nothing left running"
    if dns_stop; then
        echo "PASS $name"
    else
        echo "FAIL $name:"
        sed 's/^/    /' "$T/dnsenv-stop.log"
        fails=$((fails + 1))
    fi
fi

# The shared daemon stops cleanly: exit 0, socket and pidfile removed.
name="shared daemon exits 0 on SIGTERM and removes socket and pidfile"
if kill -0 "$MPID" 2>/dev/null; then
    kill -TERM "$MPID"
    # a daemon that hangs on SIGTERM must not hang the suite
    ( sleep 20; kill -KILL "$MPID" ) </dev/null >/dev/null 2>&1 &
    WPID=$!
    wait "$MPID"
    rc=$?
    kill "$WPID" 2>/dev/null
    MPID=
    if [ "$rc" = 0 ] && [ ! -e "$S/k.sock" ] && [ ! -e "$S/milter.pid" ]; then
        echo "PASS $name"
    else
        echo "FAIL $name (exit $rc; socket $( [ -e "$S/k.sock" ] && echo left || echo removed);" \
             "pidfile $( [ -e "$S/milter.pid" ] && echo left || echo removed))"
        fails=$((fails + 1))
    fi
    # every session the tests opened was closed again: none may be counted
    # as still open (a leaked count makes the daemon wait 30 s at stop)
    name="shared daemon counts no session as open at stop"
    if grep -qE 'connections still open|transactions unfinished' "$S/milter.log"; then
        echo "FAIL $name: $(grep -E 'connections still open|transactions unfinished' "$S/milter.log")"
        fails=$((fails + 1))
    else
        echo "PASS $name"
    fi
else
    echo "FAIL $name: the shared daemon died during the tests"
    tail -n 20 "$S/milter.log" | sed 's/^/    /'
    fails=$((fails + 1))
fi

if [ $fails -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$T"
else
    echo "milter-tests: files kept in $T"
fi
[ $fails -eq 0 ]
