#!/bin/bash
# t_store.sh: the verdict store failing under a real Postfix: mail must keep
# flowing with unchanged decisions, the incident is logged once, and every
# queued verdict is written when the database is usable again.
#
# Checks:
#  - LOCKED: while another process holds BEGIN EXCLUSIVE on the database for
#    5 s, five sessions (each a local delivery and a refused relay attempt)
#    get 250 / 554 as usual; "verdict store unavailable" appears exactly once
#    in the milter log; after the lock is released all 10 verdicts are in the
#    database and the milter logs that the store is back;
#  - READ-ONLY: a database pre-created by root (root-owned, 0644, in a
#    directory owned by kanjiki) and a milter running as kanjiki: mail flows,
#    one "verdict store unavailable"; after `chown kanjiki` the queued
#    verdicts appear.
#  - KILLED: after kill -9 of kanjiki-milter, Postfix (milter_default_action
#    = tempfail) answers 4xx and relays nothing; restarted over the stale
#    socket, the milter finds its database intact (integrity_check, every
#    verdict written before the kill still there) and mail flows again.
# run by sh (the Makefile does): these scripts need bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
e2e_init
kj_start
pf_start milter
say "t_store: Postfix on 127.0.0.1:$PF_PORT"

# session TAG: a local delivery and a refused relay attempt, both checked
session() {
	smtp --local-interface 127.0.0.20 --from "$1@origin.example" --to "$1@local.test,$1@example.net"
	expect_rcpt "$1@local.test" 250
	expect_rcpt "$1@example.net" "554 5.7.1" "Relaying denied (kanjiki)"
	expect_queued "$1"
}

say "-- the database works"
session warmup
wait_verdict --count 2 --sender warmup@origin.example
[ "$(log_count 'verdict store unavailable')" = 0 ] || fail "store unavailable before any incident"

say "-- a locked database (BEGIN EXCLUSIVE held for 5 s)"
runuser -u kanjiki -- /usr/bin/python3 - "$KJ_DB" >"$T/locker.out" 2>&1 <<'EOF' &
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(5)
con.execute("ROLLBACK")
print("released", flush=True)
EOF
LOCKER=$!
E2E_EXTRA_PIDS=$LOCKER
for i in $(seq 50); do grep -q locked "$T/locker.out" && break; sleep 0.1; done
grep -q locked "$T/locker.out" || fail "could not lock the database: $(cat "$T/locker.out")"
ok "database locked by pid $LOCKER"
t0=$(date +%s)
for i in 1 2 3 4 5; do
	session "locked$i"
done
[ $(($(date +%s) - t0)) -lt 5 ] || note "(the five sessions took $(($(date +%s) - t0))s: part of them after the lock)"
n=$(query_count --sender locked1@origin.example)
[ "$n" = 0 ] || note "(verdicts readable while locked: $n - the lock was not yet contended?)"
wait "$LOCKER"
E2E_EXTRA_PIDS=
grep -q released "$T/locker.out" || fail "locker did not finish: $(cat "$T/locker.out")"
ok "lock released"
for i in 1 2 3 4 5; do
	wait_verdict --count 2 --secs 8 --sender "locked$i@origin.example"
done
ok "all 10 verdicts of the locked period are in the database"
n=$(log_count 'verdict store unavailable')
[ "$n" = 1 ] || { grep -n 'verdict store' "$KJ_LOG"; fail "\"verdict store unavailable\" logged $n times, expected exactly once"; }
ok "\"verdict store unavailable\" logged exactly once"
expect_log_line 'verdict store back'

say "-- a read-only database"
kj_stop || fail "kanjiki-milter did not exit 0 on SIGTERM"
RO=$T/ro
mkdir -p "$RO"
chown kanjiki:kanjiki "$RO"
chmod 0750 "$RO"
# `kanjiki query` needs an existing database (kanjiki(1)), so the database
# is created, as root, by a grant that is taken back at once
"$CLI" -c "$KJ_CONF" -d "$RO/kanjiki.db" popauth add 192.0.2.99 >"$T/out" 2>&1 &&
	"$CLI" -c "$KJ_CONF" -d "$RO/kanjiki.db" popauth del 192.0.2.99 >>"$T/out" 2>&1 ||
	fail "could not create the database as root with popauth add/del: $(cat "$T/out")"
[ -e "$RO/kanjiki.db" ] || fail "the database was not created by the CLI"
"$CLI" -c "$KJ_CONF" -d "$RO/kanjiki.db" query >"$T/out" 2>&1 ||
	fail "kanjiki -d DB query on the new database failed: $(cat "$T/out")"
chmod 0644 "$RO/kanjiki.db"
rm -f "$RO/kanjiki.db-wal" "$RO/kanjiki.db-shm"
[ "$(stat -c %U:%a "$RO/kanjiki.db")" = root:644 ] || fail "database is $(stat -c %U:%a "$RO/kanjiki.db"), expected root:644"
ok "database root-owned 0644 in a kanjiki-owned directory"
KJ_LOG=$T/milter-ro.log
kj_conf <<EOF
database = ro/kanjiki.db
EOF
kj_start
session ro1
session ro2
end=$(($(date +%s) + 5))
while [ "$(log_count 'verdict store unavailable')" = 0 ] && [ "$(date +%s)" -lt $end ]; do sleep 0.2; done
n=$(log_count 'verdict store unavailable')
[ "$n" = 1 ] || { grep -n 'verdict store' "$KJ_LOG"; fail "\"verdict store unavailable\" logged $n times for the read-only database, expected once"; }
ok "\"verdict store unavailable\" logged once"
n=$(query_count --sender ro1@origin.example)
[ "$n" = 0 ] || fail "verdicts written to a read-only database?"
chown kanjiki:kanjiki "$RO"/kanjiki.db*
ok "chown kanjiki $RO/kanjiki.db*"
wait_verdict --count 2 --secs 8 --sender ro1@origin.example
wait_verdict --count 2 --secs 8 --sender ro2@origin.example
ok "the queued verdicts were written after the chown"
session ro3
wait_verdict --count 2 --sender ro3@origin.example
n=$(log_count 'verdict store unavailable')
[ "$n" = 1 ] || fail "\"verdict store unavailable\" logged $n times, expected once"
ok "still logged only once"

say "-- kanjiki-milter killed (kill -9)"
before=$(query_count)
kill -KILL "$KJ_PID"
wait "$KJ_PID" 2>/dev/null
KJ_PID=
ok "kanjiki-milter killed; $before verdicts in the database"
smtp --local-interface 127.0.0.20 --from crash@origin.example --to crash@example.net --quit-after RCPT
grep -q '^<\*\* 4[0-9][0-9] ' "$T/last.smtp" || fail "no 4xx from Postfix while the milter is down"
grep -q '^<-  250 2\.1\.5' "$T/last.smtp" && fail "a recipient was accepted while the milter was down"
ok "Postfix: $(grep -m1 '^<\*\* 4' "$T/last.smtp" | cut -c5-) (no recipient accepted)"
[ -S "$KJ_SOCK" ] && note "(stale socket left by the killed milter)"
kj_start
ok "restarted"
[ "$(sqlite3 "$RO/kanjiki.db" 'PRAGMA integrity_check;')" = ok ] || fail "integrity_check failed after kill -9"
ok "PRAGMA integrity_check: ok"
n=$(query_count)
[ "$n" = "$before" ] || fail "$n verdicts after the restart, $before before the kill"
ok "all $n verdicts still there"
session crash2
wait_verdict --count 2 --sender crash2@origin.example

done_ok
