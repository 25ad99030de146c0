#!/bin/sh
# Runs the test tiers under one prove, so the closing lines are prove's
# summary ("Result: PASS"). Unit tests are cmocka binaries speaking TAP.
#   tests/run.sh [all|unit|conformance|integration|crash]
# Needs SLUICE_BIN (the binary) and SLUICE_BUILD (its build folder).
#
# The PostgreSQL variants need a server: unless SLUICE_TEST_PG is already
# set, a private cluster is started (tests/support/pg.sh) before the tests
# and stopped after, also on failure or interrupt. Without PostgreSQL
# binaries they are skipped with a message, except in CI (CI=true), where
# that is a failure. SLUICE_TEST_PG=off skips them on purpose.
set -u
: "${SLUICE_BIN:?set SLUICE_BIN}" "${SLUICE_BUILD:?set SLUICE_BUILD}"
top=$(cd "$(dirname "$0")/.." && pwd)
export SLUICE_TOP="$top"
export CMOCKA_MESSAGE_OUTPUT=TAP
tier=${1:-all}
files=""
add() { for f in "$@"; do case $f in *.d) continue ;; esac; [ -e "$f" ] && files="$files $f"; done; }
case $tier in
all | unit) add "$SLUICE_BUILD"/tests/test_* ;;
esac
case $tier in
all | conformance) add "$top"/tests/conformance/*.t ;;
esac
case $tier in
all | integration) add "$top"/tests/integration/*.t ;;
esac
case $tier in
all | crash) add "$top"/tests/crash/*.t ;;
esac
# Last: every log the tests above kept is searched for their secrets.
case $tier in
all | integration | crash) add "$top"/tests/final/*.t ;;
esac
# Each integration test keeps its logs here when it ends (tests/lib/tap.sh).
export SLUICE_LOG_DIR="$SLUICE_BUILD/test-logs"
rm -rf "$SLUICE_LOG_DIR" && mkdir -p "$SLUICE_LOG_DIR"
if [ -z "$files" ]; then
	echo "tests/run.sh: no tests found for '$tier'" >&2
	exit 1
fi
pg_started=""
stop_pg() { [ -n "$pg_started" ] && "$top/tests/support/pg.sh" stop "$pg_started"; pg_started=""; }
if [ "${SLUICE_TEST_PG:-}" = off ]; then
	unset SLUICE_TEST_PG
	echo "tests/run.sh: SLUICE_TEST_PG=off: the PostgreSQL variants are skipped" >&2
elif [ -z "${SLUICE_TEST_PG:-}" ]; then
	if env=$("$top/tests/support/pg.sh" start); then
		eval "$env"
		pg_started=$SLUICE_TEST_PG_DIR
		trap 'stop_pg' EXIT
		trap 'stop_pg; exit 130' INT TERM
	elif [ "${CI:-}" = true ]; then
		echo "tests/run.sh: CI: no PostgreSQL server for the PostgreSQL variants (see above)" >&2
		exit 1
	else
		echo "tests/run.sh: no PostgreSQL: the PostgreSQL variants are SKIPPED" >&2
	fi
fi
# shellcheck disable=SC2086
prove --exec '' --timer $files
rc=$?
stop_pg
exit $rc
