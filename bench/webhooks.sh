#!/bin/sh
# Webhooks accepted per second at 1, 16 and 64 connections against
# `sluice serve` on a copy of the example (a helpdesk simulator in the same
# process), then the same runs measured end to end (all completed).
# BENCH_HOOKS=N requests per connection count (3000); BENCH_OTLP=URL adds
# an OTLP/HTTP exporter; SLUICE_METRICS=off turns metrics recording off.
set -eu
: "${SLUICE_BIN:?}" "${SLUICE_BUILD:?}"
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/sluice-bench-http.XXXXXX)
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf "$tmp"' EXIT
cp -r "$top/examples/support-triage" "$tmp/p" && rm -rf "$tmp/p/.sluice" "$tmp/p/out"
sed -i "s#^base_url: .*#base_url: http://127.0.0.1:19101#" "$tmp/p/connectors/helpdesk.yaml"
# BENCH_OTLP=URL: every ended run's spans go to that collector (bench/obs.sh)
[ -n "${BENCH_OTLP:-}" ] && printf 'otlp_endpoint: %s\n' "$BENCH_OTLP" >>"$tmp/p/sluice.yaml"
export HELPDESK_TOKEN=bench EMAIL_HOOK_SECRET=bench-secret OPENAI_API_KEY=bench-openai-key
port=$((30000 + $$ % 20000))
"$SLUICE_BIN" serve --listen 127.0.0.1:$port --log-level error --max-inflight 1024 \
	--sim helpdesk:19101 --sim-key bench "$tmp/p" >"$tmp/serve.out" 2>&1 &
srv=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
if ! curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
	echo "webhooks.sh: the server did not start:" >&2
	cat "$tmp/serve.out" >&2
	exit 1
fi
N=${BENCH_HOOKS:-3000}
t0=$(date +%s.%N)
for c in 1 16 64; do
	"$SLUICE_BUILD/bench/bench_http" "http://127.0.0.1:$port/hooks/email" "$EMAIL_HOOK_SECRET" \
		"$top/examples/support-triage/fixtures/email-1.json" $c $N
done
# End to end: wait until every accepted run (the support-triage workflow: classify with the local
# model, map, helpdesk call, audit append) completed.
total=$((N * 3))
while :; do
	n=$(sqlite3 "$tmp/p/.sluice/sluice.db" "select count(*) from runs where workflow='support-triage' and status='completed'")
	[ "$n" -ge "$total" ] && break
	sleep 0.2
done
t1=$(date +%s.%N)
awk -v n="$total" -v a="$t0" -v b="$t1" 'BEGIN { printf "end to end: %d webhook runs (local classify, map, helpdesk simulator call, audit append) completed in %.1f s: %.0f runs/s\n", n, b - a, n / (b - a) }'
# Per-run latency from accept (created_at) to completion (finished_at), ms.
db="$tmp/p/.sluice/sluice.db"
pct() {
	sqlite3 "$db" "select finished_at - created_at from runs where workflow='support-triage' order by 1
		limit 1 offset (select cast(count(*) * $1 as int) from runs where workflow='support-triage')"
}
echo "end to end per run (accept to completed, under the load above): p50 $(pct 0.50) ms  p99 $(pct 0.99) ms"
