#!/bin/bash
# otlp_endpoint: every ended run's span tree reaches an OTLP/HTTP collector
# (a loopback stand-in that keeps each POST), batched, as OTLP/JSON; a dead
# collector costs the runs nothing.
. "$SLUICE_TOP/tests/lib/tap.sh"

export HELPDESK_TOKEN=test-token-otlp EMAIL_HOOK_SECRET=whsec-otlp-1
start_target --require-bearer "$HELPDESK_TOKEN"
HELPDESK_URL=$TARGET_URL
start_target --state "$T_TMP/collector.jsonl" # the collector
COLLECTOR_URL=$TARGET_URL
TARGET_URL=$HELPDESK_URL
P=$(project_copy "$TOP/examples/support-triage")
printf 'otlp_endpoint: %s\n' "$COLLECTOR_URL" >>"$P/sluice.yaml"
t_ok "a project with otlp_endpoint checks" "$SLUICE" check "$P"
start_serve_dir "$P"

for i in 1 2 3; do
	curl -s -o /dev/null -H 'Content-Type: application/json' -H "X-Correlation-Id: otlp-$i" \
		--data-binary @"$P/fixtures/email-1.json" "$URL/v1/workflows/support-triage/runs"
done
for _ in $(seq 100); do
	n=$(grep -c '"/v1/traces"' "$T_TMP/collector.jsonl" 2>/dev/null)
	got=$(jq -s '[.[] | select(.path == "/v1/traces") | .body.resourceSpans[]] | length' "$T_TMP/collector.jsonl" 2>/dev/null)
	[ "${got:-0}" -ge 3 ] && break
	sleep 0.1
done
t_is "$got" 3 "each ended run's spans reach the collector (in $n request(s))"
spans=$(jq -s '[.[] | select(.path == "/v1/traces") | .body.resourceSpans[].scopeSpans[].spans[]]' "$T_TMP/collector.jsonl")
want=$(for i in 1 2 3; do printf 'otlp-%s' "$i" | sha256sum | cut -c1-32; done | sort | tr '\n' ',')
t_is "$(printf '%s' "$spans" | jq -r '[.[].traceId] | unique | sort | join(",")'),"  "$want" \
	"…one trace per run, the trace of its correlation id"
t_is "$(printf '%s' "$spans" | jq '[.[] | select(.name == "run support-triage")] | length')" 3 "…each with its run span"
t_is "$(printf '%s' "$spans" | jq '[.[] | select(.name == "step create")] | length')" 3 "…and its steps"
t_like "$(curl -s "$URL/metrics")" 'sluice_otlp_spans_exported_total [1-9][0-9]*' "exported spans are counted"

# a run parked for a person is exported once, when it ends (not at the park)
spans_of() { jq -s --arg t "$1" '[.[] | select(.path == "/v1/traces") | .body.resourceSpans[].scopeSpans[].spans[]
	| select(.traceId == $t)] | length' "$T_TMP/collector.jsonl"; }
run=$(curl -s -H 'Content-Type: application/json' -H "X-Correlation-Id: otlp-billing" \
	--data-binary @"$P/fixtures/email-billing.json" "$URL/v1/workflows/support-triage/runs" | jq -r .run_id)
for _ in $(seq 100); do
	[ "$(curl -s "$URL/v1/runs/$run" | jq -r .status)" = review ] && break
	sleep 0.05
done
t_is "$(curl -s "$URL/v1/runs/$run" | jq -r .status)" review "a billing email waits for its approval"
sleep 0.5 # the exporter's linger (200 ms) has passed
billing=$(printf 'otlp-billing' | sha256sum | cut -c1-32)
t_is "$(spans_of "$billing")" 0 "…and its spans are not sent while it waits"
apr=$(curl -s "$URL/v1/approvals?run_id=$run" | jq -r '.approvals[0].id')
curl -s -o /dev/null -H 'Content-Type: application/json' -d '{"decision": "approve"}' "$URL/v1/approvals/$apr/decision"
for _ in $(seq 100); do
	[ "$(spans_of "$billing")" -gt 0 ] && break
	sleep 0.1
done
t_like "$(jq -s --arg t "$billing" '[.[] | select(.path == "/v1/traces") | .body.resourceSpans[].scopeSpans[].spans[]
	| select(.traceId == $t) | .name]' "$T_TMP/collector.jsonl")" '"approval wait approval"' \
	"…once it ends, with its approval wait"
t_is "$(jq -s --arg t "$billing" '[.[] | select(.path == "/v1/traces") | .body.resourceSpans[].scopeSpans[].spans[]
	| select(.traceId == $t and (.name | startswith("run ")))] | length' "$T_TMP/collector.jsonl")" 1 "…and once"

# a dead collector: runs go on, spans are counted as dropped
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null
sed -i "s#^otlp_endpoint: .*#otlp_endpoint: http://127.0.0.1:9#" "$P/sluice.yaml"
start_serve_dir "$P"
t0=$(date +%s%N)
run=$(curl -s -H 'Content-Type: application/json' --data-binary @"$P/fixtures/email-1.json" \
	"$URL/v1/workflows/support-triage/runs" | jq -r .run_id)
for _ in $(seq 100); do
	[ "$(curl -s "$URL/v1/runs/$run" | jq -r .status)" = completed ] && break
	sleep 0.05
done
t_is "$(curl -s "$URL/v1/runs/$run" | jq -r .status)" completed "with the collector down, runs still complete"
for _ in $(seq 50); do
	curl -s "$URL/metrics" | grep -Eq 'sluice_otlp_spans_dropped_total [1-9]' && break
	sleep 0.1
done
t_like "$(curl -s "$URL/metrics")" 'sluice_otlp_spans_dropped_total [1-9]' "…and the spans they could not send are counted"
t_done
