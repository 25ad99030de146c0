#!/bin/sh
# Runs the test tiers under one prove, so the closing lines are prove's
# summary ("Result: PASS"). Unit tests are cmocka binaries speaking TAP.
#   tests/run.sh [all|unit|conformance|integration|crash]
# Needs SLUICE_BIN (the binary) and SLUICE_BUILD (its build folder).
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
if [ -z "$files" ]; then
	echo "tests/run.sh: no tests found for '$tier'" >&2
	exit 1
fi
# shellcheck disable=SC2086
exec prove --exec '' --timer $files
