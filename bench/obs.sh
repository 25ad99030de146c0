#!/bin/sh
# What observability costs: bench/webhooks.sh in three variants on the
# same machine, taking turns:
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
# figures of one run: accepts/s at 1, 16, 64 connections, then end-to-end runs/s
figs() {
	awk '/conns:/ { printf "%s ", $3 } /^end to end:/ { for (i = 1; i <= NF; i++) if ($i == "runs/s") printf "%s ", $(i - 1) }' "$1"
}
# The variants take turns, ROUNDS times (2), and each keeps its best
# figures: the first run on a cold machine is slower whatever it measures.
variant() {
	case $1 in
	off) SLUICE_METRICS=off "$here/webhooks.sh" ;;
	metrics) SLUICE_METRICS=on "$here/webhooks.sh" ;;
	otlp) SLUICE_METRICS=on BENCH_OTLP="$colurl" "$here/webhooks.sh" ;;
	esac
}
for r in $(seq "${ROUNDS:-2}"); do
	for v in off metrics otlp; do
		variant $v >"$tmp/$v.$r" 2>&1
		f=$(figs "$tmp/$v.$r")
		if [ "$(echo $f | wc -w)" -ne 4 ]; then
			echo "obs.sh: the $v run did not finish; its output:" >&2
			cat "$tmp/$v.$r" >&2
			exit 1
		fi
		echo "$f" >>"$tmp/$v"
	done
done
best() { awk '{ for (i = 1; i <= 4; i++) if ($i > m[i]) m[i] = $i } END { printf "%s %s %s %s ", m[1], m[2], m[3], m[4] }' "$tmp/$1"; }
set -- $(best off) $(best metrics) $(best otlp)
printf '%-28s %10s %10s %8s %10s %8s\n' "" off metrics ratio +otlp ratio
row() { awk -v n="$1" -v a="$2" -v b="$3" -v c="$4" 'BEGIN { printf "%-28s %10.0f %10.0f %7.3fx %10.0f %7.3fx\n", n, a, b, b / a, c, c / a }'; }
row "accepts/s, 1 connection" "$1" "$5" "$9"
row "accepts/s, 16 connections" "$2" "$6" "${10}"
row "accepts/s, 64 connections" "$3" "$7" "${11}"
row "end to end runs/s" "$4" "$8" "${12}"
echo "(ratio > 1: faster than with metrics off; runs of a few seconds on a shared machine vary by ~10%)"
