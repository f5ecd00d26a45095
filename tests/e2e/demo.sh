#!/bin/bash
# tests/e2e/demo.sh BUILD_DIR (make demo): a private Postfix on loopback
# with kanjiki-milter in front of it, in a temporary directory; shows a
# local delivery accepted, relay attempts refused, relay from the trusted
# network accepted, then `kanjiki query`; stops everything and removes the
# directory.  Needs root (private Postfix instance, system user kanjiki).
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

kj_conf <<EOF
trusted_networks = 127.0.0.10/32
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

# verdicts are written by a background thread: wait for all five
wait_verdict --count 5 --secs 10 --since 10m >/dev/null

hr "6. What kanjiki recorded:  $CLI -c $KJ_CONF query"
kq query --format table

hr "   The same decisions in the kanjiki-milter log (one line per verdict):"
sed -n 's/^[^]]*\]: [a-z]*: \(verdict .*\)/    \1/p' "$KJ_LOG"

hr "Stopping kanjiki-milter and Postfix"
pf_stop
kj_stop && echo "    stopped; removing $T"
echo
