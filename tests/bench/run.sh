#!/bin/sh
# tests/bench/run.sh BUILD: the snowshoe detector's cost and memory on
# synthetic traffic, then resolver figures, first against a DNS server
# inside the benchmark process, then (as root, with rbldnsd and dnsmasq)
# against the real test DNS of tests/dnsenv: dnsmasq in front of rbldnsd,
# with names under dead.kanjiki.test going to a socket that never answers.
# Prints "metric value unit" lines; never fails on a figure.
set -eu
B=${1:-build}
here=$(dirname "$0")
echo "== snowshoe detector, synthetic traffic"
"$B/bench_snowshoe"
echo "== kanjiki prune on a large database while the writer writes"
"$B/bench_prune" || echo "bench_prune: a verdict was lost (see above)"
echo "== in-process server"
"$B/bench_dns"
[ "$(id -u)" = 0 ] || { echo "== real servers: skipped (needs root)"; exit 0; }
d=$(mktemp -d /tmp/kanjiki-bench.XXXXXX)
chmod 755 "$d"   # rbldnsd reads its zones as its own user
trap 'sh "$here/../dnsenv/dnsenv.sh" stop "$d/dns" >/dev/null 2>&1; rm -rf "$d"' EXIT
if ! sh "$here/../dnsenv/dnsenv.sh" start "$d/dns" >/dev/null 2>&1; then
	echo "== real servers: skipped (tests/dnsenv could not start)"
	exit 0
fi
. "$d/dns/env.sh"
echo "== dnsmasq -> rbldnsd on $DNS_FRONT (names under bl.kanjiki.test; one silent name)"
BENCH_BATCH=${BENCH_BATCH:-100} "$B/bench_dns" "$DNS_FRONT" bl.kanjiki.test silent.dead.kanjiki.test
