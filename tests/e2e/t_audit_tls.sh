#!/bin/bash
# t_audit_tls.sh: kanjiki audit over TLS against a real Postfix: STARTTLS on
# the usual listener, implicit TLS (smtpd_tls_wrappermode) on a second one,
# with a self-signed certificate made for the test; kanjiki-milter in front.
#
# Checks:
#  - plain: STARTTLS is offered (no no_starttls finding), AUTH is offered
#    in clear (auth_before_tls) and AUTH PLAIN answered 535 in clear
#    (auth_cleartext), no relay (exit 0);
#  - --starttls: every test runs after STARTTLS (JSON tls "starttls"), the
#    relay battery is refused (554 from kanjiki) as without TLS, and the
#    clear-text AUTH findings are gone;
#  - --tls on the wrappermode port: JSON tls "implicit", same verdicts;
#  - --tls against the plain port (no TLS there): exit 2, a TLS error;
#  - smtpd_tls_auth_only = yes on a third listener: no AUTH before
#    STARTTLS, so neither AUTH finding.
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || fail "openssl is not installed"
e2e_init

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mx.local.test" \
	-keyout "$T/key.pem" -out "$T/cert.pem" >"$T/openssl.log" 2>&1 ||
	{ cat "$T/openssl.log"; fail "openssl could not make a test certificate"; }
chmod 0644 "$T/cert.pem"
chmod 0600 "$T/key.pem"

kj_start
TLS_PORT=$(free_port)
AUTHONLY_PORT=$(free_port)
[ "$TLS_PORT" != "$AUTHONLY_PORT" ] || AUTHONLY_PORT=$(free_port)
# tlsmgr: Postfix's TLS session cache and entropy (smtpd disables TLS without it)
PF_MASTER_EXTRA="127.0.0.1:$TLS_PORT inet n - n - - smtpd -o smtpd_tls_wrappermode=yes
127.0.0.1:$AUTHONLY_PORT inet n - n - - smtpd -o smtpd_tls_auth_only=yes
tlsmgr unix - - n 1000? 1 tlsmgr" \
	pf_start milter "smtpd_tls_security_level = may" \
	"smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem"
say "t_audit_tls: Postfix on 127.0.0.1:$PF_PORT (STARTTLS), :$TLS_PORT (implicit TLS), :$AUTHONLY_PORT (AUTH only after TLS)"

# audit NAME ARGS...: kanjiki audit --json into $T/NAME.json, exit status in AUDIT_RC
audit() {
	local name=$1
	shift
	"$CLI" audit --json --pause 0 --timeout 5s --no-submission "$@" >"$T/$name.json" 2>"$T/$name.err"
	AUDIT_RC=$?
	printf '\n=== kanjiki audit %s (exit %s)\n' "$*" "$AUDIT_RC" >>"$SMTP_LOG"
	cat "$T/$name.json" "$T/$name.err" >>"$SMTP_LOG"
}

# jcheck NAME WHAT PYEXPR: a Python expression over J, the JSON of NAME
jcheck() {
	python3 - "$T/$1.json" "$3" <<'EOF' || { cat "$T/$1.json" "$T/$1.err" | tail -c 3000; fail "$2"; }
import json, sys
J = json.load(open(sys.argv[1]))
F = {f["id"] for f in J.get("findings", [])}
R = [t for t in J.get("tests", []) if t["relay"]]
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
	ok "$2"
}

say "-- plain connection"
audit plain "127.0.0.1:$PF_PORT"
[ "$AUDIT_RC" = 0 ] || fail "plain: exit $AUDIT_RC, expected 0"
jcheck plain "plain: STARTTLS offered, AUTH in clear flagged, no relay" \
	'J["tls"] == "none" and "no_starttls" not in F and "auth_before_tls" in F and "auth_cleartext" in F and not R'

say "-- after STARTTLS"
audit starttls --starttls "127.0.0.1:$PF_PORT"
[ "$AUDIT_RC" = 0 ] || fail "starttls: exit $AUDIT_RC, expected 0"
jcheck starttls "--starttls: TLS session, every relay test refused with 554, no clear-text AUTH findings" \
	'J["tls"] == "starttls" and not R and all(t["rcpt_code"] == 554 for t in J["tests"]) and len(J["tests"]) >= 22 and not F & {"auth_before_tls", "auth_cleartext", "no_starttls"}'

say "-- implicit TLS"
audit implicit --tls --port "$TLS_PORT" 127.0.0.1
[ "$AUDIT_RC" = 0 ] || fail "implicit: exit $AUDIT_RC, expected 0"
jcheck implicit "--tls: implicit TLS session, every relay test refused" \
	'J["tls"] == "implicit" and not R and all(t["rcpt_code"] == 554 for t in J["tests"]) and not F & {"auth_before_tls", "auth_cleartext"}'

say "-- implicit TLS against a plain port"
audit notls --tls --timeout 3s "127.0.0.1:$PF_PORT"
[ "$AUDIT_RC" = 2 ] || fail "--tls against plain SMTP: exit $AUDIT_RC, expected 2"
jcheck notls "--tls against plain SMTP: the audit could not run, a TLS error" \
	'J["exit"] == 2 and "TLS" in J["error"]'

say "-- AUTH only after STARTTLS"
audit authonly "127.0.0.1:$AUTHONLY_PORT"
[ "$AUDIT_RC" = 0 ] || fail "authonly: exit $AUDIT_RC, expected 0"
jcheck authonly "smtpd_tls_auth_only = yes: no AUTH finding" \
	'not F & {"auth_before_tls", "auth_cleartext"} and not R'
done_ok
