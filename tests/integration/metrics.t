#!/bin/bash
# GET /metrics after real work: signed and rejected webhooks, API runs, a
# run that dies, model calls through the chat gateway. The exposition passes
# `promtool check metrics` (Debian's prometheus package) and counts what
# happened.
. "$SLUICE_TOP/tests/lib/tap.sh"

export HELPDESK_TOKEN=test-token-metrics
export EMAIL_HOOK_SECRET=whsec-metrics-5a1
start_target --require-bearer "$HELPDESK_TOKEN"
start_model_sim
P=$(project_copy "$TOP/examples/support-triage")
sed -i "s#base_url: http://127.0.0.1:9201/v1#base_url: $SIM_URL/v1#" "$P/models.yaml"
printf 'workflow: dies\nversion: 1\nsteps:\n  - id: boom\n    map: %s\n' "'error(\"boom\")'" >"$P/workflows/dies.yaml"
start_serve_dir "$P"

sign() { printf 'sha256=%s' "$(openssl dgst -sha256 -hmac "$EMAIL_HOOK_SECRET" <"$1" | sed 's/^.*= //')"; }
hook() { curl -s -o /dev/null -w '%{http_code}' -H "X-GitHub-Delivery: $2" -H "X-Hub-Signature-256: $3" \
	--data-binary @"$1" "$URL/hooks/email"; }
F="$P/fixtures/email-1.json"
for i in 1 2 3; do hook "$F" "m-$i" "$(sign "$F")" >/dev/null; done
t_is "$(hook "$F" m-bad 'sha256=00')" 401 "a bad signature is refused"
curl -s -o /dev/null -H 'Content-Type: application/json' -d '{}' "$URL/v1/workflows/dies/runs"
curl -s -o /dev/null -H 'Content-Type: application/json' \
	-d '{"model":"chat","messages":[{"role":"user","content":"hello"}]}' "$URL/v1/chat/completions"
for _ in $(seq 100); do
	[ "$(curl -s "$URL/v1/runs?status=completed" | jq '.runs | length')" -ge 3 ] && break
	sleep 0.1
done
sleep 0.3

curl -s -D "$T_TMP/h" -o "$T_TMP/m" "$URL/metrics"
m=$(cat "$T_TMP/m")
t_like "$(tr -d '\r' <"$T_TMP/h")" "Content-Type: text/plain; version=0.0.4" "GET /metrics is the Prometheus text format"
if command -v promtool >/dev/null; then
	out=$(promtool check metrics <"$T_TMP/m" 2>&1); rc=$?
	t_is "$rc" 0 "promtool check metrics passes" || t_diag "$out"
	t_is "$out" "" "…with no lint warnings"
elif [ "${CI:-}" = true ]; then
	t_fail "promtool is missing (make deps installs prometheus)"
else
	t_diag "SKIP promtool: not installed (make deps installs prometheus)"
fi
t_like "$m" 'sluice_runs_started_total\{workflow="support-triage",trigger="webhook"\} 3' "webhook runs are counted by workflow and trigger"
t_like "$m" 'sluice_webhook_accept_duration_seconds_count\{workflow="support-triage"\} 3' "…and their durable accept latency"
t_like "$m" 'sluice_webhooks_rejected_total\{workflow="support-triage",reason="signature_invalid"\} 1' "…and the refused one, by reason"
t_like "$m" 'sluice_runs_finished_total\{workflow="support-triage",version="1",outcome="completed"\} 3' "finished runs by workflow, version and outcome"
t_like "$m" 'sluice_runs_finished_total\{workflow="dies",version="1",outcome="dead"\} 1' "…a dead one too"
t_like "$m" 'sluice_dead_letters_total\{workflow="dies"\} 1' "dead letters are counted"
t_like "$m" 'sluice_dlq_entries 1' "…and the DLQ size is a gauge"
t_like "$m" 'sluice_step_duration_seconds_count\{workflow="support-triage",kind="call"\} [1-9]' "step durations by kind"
t_like "$m" 'sluice_ai_calls_total\{route="triage",model="triage-local",outcome="(ok|low_confidence)"\} [1-9]' "model calls by route, model and outcome"
t_like "$m" 'sluice_ai_tokens_total\{route="chat",model="gpt-mini",direction="input"\} [1-9]' "tokens by route, model and direction"
t_like "$m" 'sluice_ai_cost_usd_total\{route="chat",model="gpt-mini"\} [0-9.e-]+' "cost by route and model"
t_like "$m" 'sluice_ai_budget_remaining_usd\{scope="route",name="chat"\} 4\.9' "budgets left"
t_like "$m" 'sluice_runs\{status="queued"\} 0' "runs by status (the queue depth)"
t_like "$m" 'sluice_http_requests_total\{method="POST",route="/hooks/\{path\}",code="202"\} 3' "HTTP requests by route template and code"
t_unlike "$m" 'run_[0-9A-Z]{20}' "no run id ever becomes a label"
t_like "$m" 'sluice_connector_up\{connector="helpdesk"\} 1' "connectors are up"
t_like "$m" 'sluice_connector_calls_total\{connector="helpdesk"\} [3-9]' "…with their calls"
t_like "$m" 'sluice_connector_last_success_age_seconds\{connector="helpdesk"\} [0-9.]+' "…and the age of their last success"

# connector health
c=$(curl -s "$URL/v1/connectors")
t_is "$(printf '%s' "$c" | jq -r '.connectors[] | select(.name == "helpdesk") | .state + " " + (.calls >= 3 | tostring)')" \
	"healthy true" "GET /v1/connectors: the helpdesk is healthy"
out=$("$SLUICE" connectors --server "$URL"); rc=$?
t_is "$rc" 0 "sluice connectors exits 0 when all are healthy"
t_like "$out" 'helpdesk +http +healthy' "…and prints a table"
kill "$TARGET_PID" 2>/dev/null; wait "$TARGET_PID" 2>/dev/null
curl -s -o /dev/null -H 'Content-Type: application/json' --data-binary @"$F" "$URL/v1/workflows/support-triage/runs"
for _ in $(seq 100); do
	st=$(curl -s "$URL/v1/connectors" | jq -r '.connectors[] | select(.name == "helpdesk") | .state')
	[ "$st" = degraded ] && break
	sleep 0.1
done
t_is "$st" degraded "a connector failing since its last success is degraded"
t_is "$(curl -s "$URL/v1/connectors" | jq -r '.connectors[] | select(.name == "helpdesk") | .last_error_class')" transient \
	"…with the last error's class"
out=$("$SLUICE" connectors --server "$URL"); rc=$?
t_is "$rc" 1 "sluice connectors exits 1 then"
t_unlike "$(curl -s "$URL/v1/connectors")$out" "$HELPDESK_TOKEN" "no secret in connector health"
if command -v promtool >/dev/null; then
	t_ok "the scrape still passes promtool" sh -c "curl -s '$URL/metrics' | promtool check metrics"
fi
t_done
