#!/bin/bash
# SLOs: a workflow's error rate is driven over its objective by a failing
# connector; GET /v1/slo and sluice slo show the fast burn, /metrics the
# burn rates and the alert, and one log line says it started burning.
. "$SLUICE_TOP/tests/lib/tap.sh"

export HELPDESK_TOKEN=test-token-slo EMAIL_HOOK_SECRET=whsec-slo
start_target --require-bearer "$HELPDESK_TOKEN"
P=$(project_copy "$TOP/examples/support-triage")
cat >>"$P/workflows/support-triage.yaml" <<'YAML'
slo: { max_error_rate: 0.01, p95_ms: 60000, max_cost_usd: 1 }
YAML
start_serve_dir "$P"
post() { curl -s -o /dev/null -H 'Content-Type: application/json' --data-binary @"$P/fixtures/email-1.json" \
	"$URL/v1/workflows/support-triage/runs"; }
settle() {
	for _ in $(seq 200); do
		n=$(curl -s "$URL/metrics" | awk '/^sluice_runs\{status="(queued|running|waiting)"\}/ {s += $2} END {print s + 0}')
		[ "${n:-0}" = 0 ] && break
		sleep 0.1
	done
}

for _ in $(seq 5); do post; done
settle
s=$(curl -s "$URL/v1/slo")
t_is "$(printf '%s' "$s" | jq -r '.workflows[0].workflow + " " + ([.workflows[0].objectives[].objective] | join(","))')" \
	"support-triage error_rate,latency_p95,cost_per_run" "GET /v1/slo lists the workflow's objectives"
t_is "$(printf '%s' "$s" | jq -r '[.workflows[0].objectives[].state] | unique | join(",")')" ok "…all ok while runs succeed"
out=$("$SLUICE" slo --server "$URL"); rc=$?
t_is "$rc" 0 "sluice slo exits 0 when nothing burns"
t_like "$out" 'support-triage +error_rate +0.01 +ok' "…and prints a table"

# the helpdesk goes away: every run dies
kill "$TARGET_PID"; wait "$TARGET_PID" 2>/dev/null
sed -i 's/retry: { max_attempts: 5, base_ms: 100, max_ms: 2000 }/retry: { max_attempts: 1 }/' "$P/workflows/support-triage.yaml"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null
start_serve_dir "$P"
for _ in $(seq 20); do post; done
settle
s=$(curl -s "$URL/v1/slo")
e=$(printf '%s' "$s" | jq -c '.workflows[0].objectives[] | select(.objective == "error_rate")')
t_is "$(printf '%s' "$e" | jq -r .state)" fast_burn "20 dead runs of 25: the error rate objective burns fast"
t_is "$(printf '%s' "$e" | jq '.burn_rate["5m"] >= 14.4 and .burn_rate["1h"] >= 14.4')" true "…both windows past 14.4"
t_is "$(printf '%s' "$e" | jq '.indicator["1h"] == 0.8 and .budget_left == 0')" true "…an 80% error rate, no budget left"
out=$("$SLUICE" slo --server "$URL"); rc=$?
t_is "$rc" 1 "sluice slo exits 1 while an objective burns"
m=$(curl -s "$URL/metrics")
t_like "$m" 'sluice_slo_alert\{workflow="support-triage",objective="error_rate"\} 1' "/metrics has the alert"
t_like "$m" 'sluice_slo_burn_rate\{workflow="support-triage",objective="error_rate",window="5m"\} 80' "…and the burn rate"
t_like "$m" 'sluice_slo_breaches_total\{workflow="support-triage",objective="error_rate"\} 1' "…and counts the breach once"
t_like "$(cat "$T_TMP/serve.err")" '"msg":"slo burning".*"objective":"error_rate".*"state":"fast_burn"' "a log line says it"
t_done
