#!/bin/bash
# tests/e2e/demo.sh BUILD_DIR (make demo): a private Postfix on loopback
# with kanjiki-milter in front of it, in a temporary directory; shows a
# local delivery accepted, relay attempts refused, relay from the trusted
# network accepted, a blocklisted client refused and a lightly listed one
# tagged (against a private test DNS: rbldnsd and dnsmasq on loopback, see
# tests/dnsenv), then `kanjiki query` and `kanjiki stats`; stops everything
# and removes the directory.  Needs root (private Postfix instance, system user kanjiki).
# The system Postfix is not touched.
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then
	echo "make demo needs root (it starts a private Postfix instance and creates the user kanjiki)" >&2
	exit 1
fi
e2e_init

hr() { printf '\n\033[1m%s\033[0m\n' "$*" 2>/dev/null || printf '\n%s\n' "$*"; }
[ -t 1 ] || hr() { printf '\n%s\n' "$*"; }

# show SUMMARY SWAKS-ARGS...: run one SMTP session and print its envelope
# commands with the server's answers.
show() {
	hr "$1"
	shift
	smtp "$@"
	sed -n -e 's/^ -> \(MAIL FROM:.*\)/    client: \1/p' \
		-e 's/^ -> \(RCPT TO:.*\)/    client: \1/p' \
		-e 's/^ -> \(AUTH.*\)/    client: \1/p' \
		-e 's/^<-  \(2[0-9][0-9] .*\)/    server: \1/p' \
		-e 's/^<\*\* \([45][0-9][0-9] .*\)/    server: \1   <== REFUSED/p' \
		"$T/last.smtp" | grep -v -e 'server: 220 ' -e 'server: 221 ' -e 'server: 250 CHUNKING'
}

# A private DNS (rbldnsd behind dnsmasq) with test blocklists: stopped
# before the harness's own cleanup, which removes $T.
DNSENV=$E2E_DIR/../dnsenv/dnsenv.sh
dns_cleanup() {
	local rc=$?
	[ -d "$T/dns" ] && sh "$DNSENV" stop "$T/dns" >/dev/null 2>&1
	(exit $rc)
	e2e_cleanup
}
trap dns_cleanup EXIT
sh "$DNSENV" start "$T/dns" >"$T/dnsenv.out" 2>&1 || { cat "$T/dnsenv.out"; fail "demo: the test DNS did not start"; }
. "$T/dns/env.sh"
cat >"$T/rules/10-blocklists.rules" <<EOF
zone bl.kanjiki.test   ip weight 8 txt
zone weak.kanjiki.test ip weight 3
zone dbl.kanjiki.test  domain weight 6 check helo, sender, from
threshold 3 tag
threshold 8 reject early
EOF

kj_conf <<EOF
trusted_networks = 127.0.0.10/32
dns_servers = $DNS_FRONT
dns_timeout = 2s
EOF
kj_start
pf_start milter

cat <<EOF

kanjiki demo
============
Everything runs in $T and stops at the end.

  Postfix (private instance)  127.0.0.1:$PF_PORT and [::1]:$PF_PORT, every delivery discarded
    mynetworks = 127.0.0.0/8     <- deliberately too loose: Postfix alone would
                                    relay for every loopback address
    smtpd_milters = unix:$KJ_SOCK
  kanjiki-milter              $KJ_CONF
    local_domains    = local.test
    relay_domains    = relay.test
    trusted_networks = 127.0.0.10/32
    dns_servers      = $DNS_FRONT (dnsmasq in front of rbldnsd: test blocklists)
  rules ($T/rules/10-blocklists.rules):
$(sed 's/^/    /' "$T/rules/10-blocklists.rules")
EOF

show "1. Local delivery from an ordinary client (127.0.0.20): accepted" \
	--local-interface 127.0.0.20 --from alice@origin.example --to bob@local.test
expect_queued >/dev/null

show "2. Relay attempt from an unauthorised address (127.0.0.20 -> example.net): refused" \
	--local-interface 127.0.0.20 --from spammer@origin.example --to victim@example.net
r=$(rcpt_reply victim@example.net)
case "$r" in 554*kanjiki*) ;; *) fail "demo: the relay attempt was not refused by kanjiki: $r" ;; esac

show "3. Percent hack (victim%example.net@local.test): refused" \
	--local-interface 127.0.0.20 --from spammer@origin.example --to 'victim%example.net@local.test'
r=$(rcpt_reply 'victim%example.net@local.test')
case "$r" in 554*kanjiki*) ;; *) fail "demo: the percent hack was not refused by kanjiki: $r" ;; esac

show "4. Bang path (example.net!victim): refused" \
	--local-interface 127.0.0.20 --from spammer@origin.example --to 'example.net!victim'
r=$(rcpt_reply 'example.net!victim')
case "$r" in 554*kanjiki*) ;; *) fail "demo: the bang path was not refused by kanjiki: $r" ;; esac

show "5. Relay from the trusted network (127.0.0.10 -> example.net): accepted" \
	--local-interface 127.0.0.10 --from office@local.test --to partner@example.net
expect_queued >/dev/null

show "6. A client listed in bl.kanjiki.test (127.0.0.66, weight 8): refused at RCPT TO with the list's reason" \
	--local-interface 127.0.0.66 --from someone@origin.example --to bob@local.test
r=$(rcpt_reply bob@local.test)
case "$r" in 550*"blocked using bl.kanjiki.test"*) ;; *) fail "demo: the listed client was not refused: $r" ;; esac

show "7. A client listed only in weak.kanjiki.test (127.0.0.68, weight 3): accepted, tagged" \
	--local-interface 127.0.0.68 --from someone@origin.example --to bob@local.test
expect_queued >/dev/null

# verdicts are written by a background thread: wait for all seven
wait_verdict --count 7 --secs 10 --since 10m >/dev/null
tagged=$(kq query --action tag --format json | head -n 1)
case "$tagged" in *'"score":3'*) ;; *) fail "demo: no tagged verdict with score 3: $tagged" ;; esac

hr "8. What kanjiki recorded:  $CLI -c $KJ_CONF query"
kq query --format table

hr "9. Why the tagged message was tagged (its lookups):  kanjiki query --action tag --format json"
echo "$tagged" | python3 -c 'import json,sys
v = json.loads(sys.stdin.read())
print("    score %s, degraded %s" % (v["score"], v["degraded"]))
for l in v["lookups"]:
    print("    %-18s %-7s %-44s %-8s %-10s weight %s  %s ms%s" % (l["zone"], l["subject"], l["query"],
          l["outcome"], l["answer"] or "-", l["weight"], l["latency_ms"], " (cached)" if l["cached"] else ""))'

hr "10. Blocklist health:  kanjiki stats   and   kanjiki check --dns"
kq stats --format table
kq check --dns --quiet | sed 's/^/    /'

hr "   The same decisions in the kanjiki-milter log (one line per verdict):"
sed -n 's/^[^]]*\]: [a-z]*: \(verdict .*\)/    \1/p' "$KJ_LOG"

hr "Stopping kanjiki-milter and Postfix"
pf_stop
kj_stop && echo "    stopped; removing $T"
echo
