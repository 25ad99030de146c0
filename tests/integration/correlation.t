#!/bin/bash
# One correlation id, end to end: a signed webhook arrives with a
# traceparent; the run takes its trace id as correlation id; the helpdesk
# (a system of record that keeps every request it applied) received the
# same X-Correlation-Id and a traceparent of the same trace; the run's
# audit entries carry it too.
. "$SLUICE_TOP/tests/lib/tap.sh"

export HELPDESK_TOKEN=test-token-corr EMAIL_HOOK_SECRET=whsec-corr-1
start_target --require-bearer "$HELPDESK_TOKEN" --state "$T_TMP/effects.jsonl"
P=$(project_copy "$TOP/examples/support-triage")
project_no_approval "$P"
start_serve_dir "$P"

trace=4bf92f3577b34da6a3ce929d0e0e4736
F="$P/fixtures/email-1.json"
sig=$(openssl dgst -sha256 -hmac "$EMAIL_HOOK_SECRET" <"$F" | sed 's/^.*= //')
resp=$(curl -s -H "X-Hub-Signature-256: sha256=$sig" -H 'X-GitHub-Delivery: corr-1' \
	-H "traceparent: 00-$trace-00f067aa0ba902b7-01" -H 'Content-Type: application/json' \
	--data-binary @"$F" "$URL/hooks/email")
run=$(printf '%s' "$resp" | jq -r .run_id)
t_like "$run" '^run_' "the webhook with a traceparent starts a run"
for _ in $(seq 100); do
	[ "$(curl -s "$URL/v1/runs/$run" | jq -r .status)" = completed ] && break
	sleep 0.05
done
doc=$(curl -s "$URL/v1/runs/$run")
t_is "$(printf '%s' "$doc" | jq -r .status)" completed "…which completes"
corr=$(printf '%s' "$doc" | jq -r .correlation_id)
t_is "$corr" "$trace" "…with the caller's trace id as its correlation id"
rec=$(jq -c 'select(.path | test("tickets"))' "$T_TMP/effects.jsonl" | tail -1)
t_is "$(printf '%s' "$rec" | jq -r .correlation_id)" "$trace" "the helpdesk received it as X-Correlation-Id"
t_like "$(printf '%s' "$rec" | jq -r .traceparent)" "^00-$trace-[0-9a-f]{16}-0[01]$" "…and a traceparent of the same trace"
entries=$(curl -s "$URL/v1/audit?run_id=$run&limit=100")
t_like "$(printf '%s' "$entries" | jq -r '[.entries[].action] | join(" ")')" 'step.write' "the run's audit entries include the write"
t_is "$(printf '%s' "$entries" | jq -r --arg c "$trace" '[.entries[] | select(.correlation_id != $c)] | length')" 0 \
	"…and every one of them carries the correlation id"
t_done
