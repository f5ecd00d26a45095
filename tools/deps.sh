#!/bin/sh
# deps.sh: install the Debian 12 packages that building and testing kanjiki
# need, but only those missing; without root, say what is missing and stop.
set -eu
PKGS="build-essential pkg-config libmilter-dev libspf2-dev libc-ares-dev
libsqlite3-dev sqlite3 check python3 postfix swaks nmap sasl2-bin libsasl2-modules
rbldnsd dnsmasq-base iproute2 procps publicsuffix libio-socket-inet6-perl
libssl-dev openssl m4 libwrap0"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages:$missing" >&2
  echo "deps: run 'make deps' as root (apt-get install -y$missing)" >&2
  exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# postfix asks debconf questions; answer them so the install never blocks.
# The system Postfix is never used by kanjiki's tests (they run private
# instances), so it is installed unconfigured ("No configuration").
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
