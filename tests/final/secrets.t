#!/bin/bash
# Runs last: the logs every integration and crash test kept (stderr of the
# servers, workers and simulators it started) hold none of the secrets those
# tests used: API keys, webhook secrets, tokens, passwords.
set -u
dir=${SLUICE_LOG_DIR:-}
n=0 fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; }
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
	echo "1..0 # SKIP no SLUICE_LOG_DIR (run through make test)"
	exit 0
fi
secrets=$(mktemp)
trap 'rm -f "$secrets"' EXIT
cat "$dir"/*/.secrets 2>/dev/null | grep -v '^$' | sort -u >"$secrets"
logs=$(find "$dir" -type f ! -name .secrets | wc -l)
ok "$(wc -l <"$secrets") secret values and $logs log files kept by the tests"
leaks=$(find "$dir" -type f ! -name .secrets -exec grep -lF -f "$secrets" {} + 2>/dev/null)
if [ -z "$leaks" ]; then
	ok "no secret appears in any log"
else
	bad "a secret appears in a log"
	# the file names only: printing the match would print the secret
	printf '%s\n' "$leaks" | sed "s#^$dir/#\#   #" >&2
fi
echo "1..$n"
[ "$fail" -eq 0 ]
