#!/bin/sh
# tests/e2e/run.sh BUILD_DIR: run every tests/e2e/t_*.sh (in name order)
# against the binaries in BUILD_DIR, each with a private Postfix on
# loopback; print PASS/FAIL per script and a summary; exit 1 if any failed.
#
# The tests need root (a private Postfix instance, a system user for the
# milter) and postfix.  Without them: "SKIP" and exit 0, unless
# KANJIKI_REQUIRE_E2E=1 (CI), which makes a skip a failure.
#
# KANJIKI_E2E_ONLY="t_relay t_auth" runs only those scripts;
# KANJIKI_E2E_KEEP=1 keeps every test directory; a failing test always
# keeps its directory (the path is printed).
BUILD_DIR=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" != 0 ] || ! command -v postfix >/dev/null 2>&1 ||
	! command -v swaks >/dev/null 2>&1; then
	echo "SKIP: e2e tests need root and postfix"
	if [ "${KANJIKI_REQUIRE_E2E:-0}" = 1 ]; then
		echo "FAIL: KANJIKI_REQUIRE_E2E=1 but the e2e tests cannot run here" \
			"(uid $(id -u), postfix: $(command -v postfix || echo missing)," \
			"swaks: $(command -v swaks || echo missing))"
		exit 1
	fi
	exit 0
fi
for b in kanjiki-milter kanjiki; do
	if [ ! -x "$BUILD_DIR/$b" ]; then
		echo "FAIL: $BUILD_DIR/$b not built (run make first)"
		exit 1
	fi
done
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
export BUILD_DIR

pass=0
failed=
t_all=$(date +%s)
for t in "$HERE"/t_*.sh; do
	name=$(basename "$t" .sh)
	if [ -n "${KANJIKI_E2E_ONLY:-}" ]; then
		case " $KANJIKI_E2E_ONLY " in
		*" $name "*) ;;
		*) continue ;;
		esac
	fi
	echo "== $name"
	t0=$(date +%s)
	# a hung test is killed (TERM lets it stop its Postfix and milter)
	timeout -k 15 180 bash "$t" "$BUILD_DIR"
	rc=$?
	secs=$(($(date +%s) - t0))
	if [ $rc = 0 ]; then
		echo "PASS $name (${secs}s)"
		pass=$((pass + 1))
	else
		[ $rc = 124 ] && echo "   (timed out after 180s)"
		echo "FAIL $name (exit $rc, ${secs}s)"
		failed="$failed $name"
	fi
done

echo "== e2e summary: $pass passed, $(echo $failed | wc -w) failed in $(($(date +%s) - t_all))s${failed:+ (failed:$failed)}"
[ -z "$failed" ]
