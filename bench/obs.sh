#!/bin/sh
# What observability costs: bench/webhooks.sh three times on the same
# machine, one after the other:
#   off      SLUICE_METRICS=off, no exporter (the floor)
#   metrics  the default: every counter and histogram recorded
#   +otlp    metrics, and every ended run's span tree exported over
#            OTLP/HTTP to a loopback collector (tests' target_server)
# then each figure side by side with its ratio to "off". Span trees are
# built from the stored run when read or exported, so tracing costs
# nothing on the path of a step beyond the exporter's queue.
set -eu
: "${SLUICE_BIN:?}" "${SLUICE_BUILD:?}"
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/sluice-bench-obs.XXXXXX)
col=""
trap '[ -n "$col" ] && kill $col 2>/dev/null; rm -rf "$tmp"' EXIT
"$SLUICE_BUILD/tests/target_server" --port 0 >"$tmp/collector.out" 2>&1 &
col=$!
for _ in $(seq 50); do grep -q listening "$tmp/collector.out" && break; sleep 0.1; done
colurl="http://$(sed -n 's/^listening on //p' "$tmp/collector.out")"
export BENCH_HOOKS="${BENCH_HOOKS:-2000}"
SLUICE_METRICS=off "$here/webhooks.sh" >"$tmp/off" 2>&1
SLUICE_METRICS=on "$here/webhooks.sh" >"$tmp/metrics" 2>&1
SLUICE_METRICS=on BENCH_OTLP="$colurl" "$here/webhooks.sh" >"$tmp/otlp" 2>&1
# figures: accepts/s at 1, 16, 64 connections, then end-to-end runs/s
figs() {
	awk '/conns:/ { printf "%s ", $3 } /^end to end:/ { for (i = 1; i <= NF; i++) if ($i == "runs/s") printf "%s ", $(i - 1) }' "$1"
}
set -- $(figs "$tmp/off") $(figs "$tmp/metrics") $(figs "$tmp/otlp")
if [ $# -ne 12 ]; then
	echo "obs.sh: a run did not finish; its output:" >&2
	cat "$tmp/off" "$tmp/metrics" "$tmp/otlp" >&2
	exit 1
fi
printf '%-28s %10s %10s %8s %10s %8s\n' "" off metrics ratio +otlp ratio
row() { awk -v n="$1" -v a="$2" -v b="$3" -v c="$4" 'BEGIN { printf "%-28s %10.0f %10.0f %7.3fx %10.0f %7.3fx\n", n, a, b, b / a, c, c / a }'; }
row "accepts/s, 1 connection" "$1" "$5" "$9"
row "accepts/s, 16 connections" "$2" "$6" "${10}"
row "accepts/s, 64 connections" "$3" "$7" "${11}"
row "end to end runs/s" "$4" "$8" "${12}"
echo "(ratio > 1: faster than with metrics off; runs of a few seconds on a shared machine vary by ~10%)"
