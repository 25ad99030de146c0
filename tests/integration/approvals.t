#!/bin/bash
# Approvals over real HTTP (DESIGN.md §7): approval steps approved,
# rejected and edited; timeouts that escalate then get approved, and that
# reject; a server killed (-9) while a run waits, then a decision after the
# restart completes it; an ai step's review resolved through /v1/approvals
# (approve and edit, an invalid edit refused with 422); the decisions
# exported as JSONL that `sluice model train` reads; the audit entries,
# metrics and the approval-wait span.
. "$SLUICE_TOP/tests/lib/tap.sh"
export MODEL_KEY=sk-approvals-test-5c1a
# approvals_pg.t runs the same on PostgreSQL (APPROVALS_ON_PG=1), audit
# checks included.
STORE=sqlite:.sluice/sluice.db
if [ -n "${APPROVALS_ON_PG:-}" ]; then
	. "$SLUICE_TOP/tests/lib/pg.sh"
	pg_need
	pg_schema
	export SLUICE_APPROVALS_PG=$PG_URL
	STORE=env:SLUICE_APPROVALS_PG
fi

cat >"$T_TMP/rules.json" <<'EOF'
{"rules": [{"match": {"model": "c"}, "reply": {"json": {"label": "spam"}}},
           {"match": {"model": "u"}, "reply": {"json": {"label": "bug"}}, "confidence": 0.5}]}
EOF
start_model_sim --api-key env:MODEL_KEY --rules "$T_TMP/rules.json"

P="$T_TMP/proj"
mkdir -p "$P/workflows" "$P/prompts" "$P/contracts"
cat >"$P/contracts/amount.json" <<'EOF'
{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "amount@1", "type": "object",
 "properties": {"amount": {"type": "integer", "maximum": 1000}}, "required": ["amount"]}
EOF
printf 'store: %s\n' "$STORE" >"$P/sluice.yaml"
cat >"$P/models.yaml" <<EOF
providers:
  sim: { type: openai, base_url: "$SIM_URL/v1", api_key: env:MODEL_KEY }
models:
  c: { provider: sim }
  u: { provider: sim }
routes:
  strict: { models: [c] }
  unsure: { models: [u] }
EOF
printf 'Sort this message into one of {{labels}}: {{input}}\n' >"$P/prompts/triage.md"
cat >"$P/workflows/strict.yaml" <<'EOF'
workflow: strict
version: 1
steps:
  - id: classify
    ai: { task: classify, route: strict, prompt: triage, input: .input.text, labels: [billing, bug, account] }
  - id: after
    map: '{label: .classify.label}'
EOF
cat >"$P/workflows/unsure.yaml" <<'EOF'
workflow: unsure
version: 1
steps:
  - id: classify
    ai: { task: classify, route: unsure, prompt: triage, input: .input.text, labels: [billing, bug, account],
          min_confidence: 0.9 }
EOF
cat >"$P/workflows/gate.yaml" <<'EOF'
workflow: gate
version: 1
reviewers: [role:operator]
steps:
  - id: confirm
    approval: { evidence: '{amount: .input.amount}' }
    contract: amount@1
  - id: after
    map: '{amount: .confirm.final.amount, by: .confirm.by, keys: (. | keys)}'
EOF
cat >"$P/workflows/gate_esc.yaml" <<'EOF'
workflow: gate_esc
version: 1
steps:
  - id: confirm
    approval: { reviewers: [alice], timeout: 1s, on_timeout: escalate, escalate_to: [role:admin] }
  - id: after
    map: '{decided_by: .confirm.by}'
EOF
cat >"$P/workflows/gate_rej.yaml" <<'EOF'
workflow: gate_rej
version: 1
steps:
  - id: confirm
    approval: { timeout: 1s, on_timeout: reject }
  - id: after
    map: '"never"'
EOF
t_ok "the project checks" "$SLUICE" check "$P"
start_serve_dir "$P"

post() { curl -s -o "$T_TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' "$@"; }
start() { curl -s -H 'Content-Type: application/json' -d "$2" "$URL/v1/workflows/$1/runs" | jq -r .run_id; }
# wait_status RUN STATUS: polls until the run has STATUS (10 s); prints the last
wait_status() {
	for _ in $(seq 200); do
		s=$(curl -s "$URL/v1/runs/$1" | jq -r .status)
		[ "$s" = "$2" ] && break
		sleep 0.05
	done
	echo "$s"
}
approval_of() { curl -s "$URL/v1/approvals?run_id=$1&status=${2:-pending}" | jq -r '.approvals[0].id'; }
decide() { post -d "$2" "$URL/v1/approvals/$1/decision"; }

# approve
R=$(start gate '{"amount": 120}')
t_is "$(wait_status "$R" review)" review "an approval step parks the run (status review)"
A=$(approval_of "$R")
t_like "$A" '^apr_[0-9A-Z]{26}$' "…with a pending approval apr_ULID"
t_like "$("$SLUICE" runs show "$R" --server "$URL")" "waits for approval $A \\(approval, step confirm\\)" \
	"sluice runs show says what the run waits for"
doc=$(curl -s "$URL/v1/approvals/$A")
t_is "$(printf '%s' "$doc" | jq -c '[.kind, .status, .reviewers, .proposed, .workflow, .step_id, .tenant]')" \
	'["approval","pending",["role:operator"],{"amount":120},"gate","confirm","default"]' \
	"GET /v1/approvals/ID: kind, status, reviewers, proposed, workflow, step, tenant"
t_is "$(decide "$A" '{"decision":"approve"}')" 200 "approve answers 200"
t_is "$(jq -r .status "$T_TMP/body")" approved "…status approved"
t_is "$(wait_status "$R" completed)" completed "…and the run completes"
out=$(curl -s "$URL/v1/runs/$R" | jq -c .output)
t_is "$(printf '%s' "$out" | jq -c '[.amount, .by]')" '[120,"t-admin"]' "…the step's output is the decision (final, by)"
t_unlike "$(printf '%s' "$out" | jq -c .keys)" '_approvals' "…and _approvals is not in the context later steps see"
t_is "$(decide "$A" '{"decision":"reject","reason":"late"}')" 409 "a second decision answers 409"
t_is "$(curl -s -o /dev/null -w '%{content_type}' -X POST -d '{"decision":"approve"}' "$URL/v1/approvals/$A/decision")" \
	application/problem+json "…as problem+json"
t_is "$(decide apr_NOPE '{"decision":"approve"}')" 404 "an unknown approval answers 404"
R_OK=$R A_OK=$A

# reject: the step fails with class policy, then its on_error (dead)
R=$(start gate '{"amount": 900}')
wait_status "$R" review >/dev/null
A=$(approval_of "$R")
t_is "$(decide "$A" '{"decision":"reject"}')" 400 "a reject without a reason answers 400"
t_is "$(decide "$A" '{"decision":"reject","reason":"too much"}')" 200 "reject with a reason answers 200"
t_is "$(wait_status "$R" dead)" dead "…the run fails (on_error: dead)"
err=$(curl -s "$URL/v1/runs/$R" | jq -c .error)
t_is "$(printf '%s' "$err" | jq -r .class)" policy "…with error class policy"
t_is "$(printf '%s' "$err" | jq -r .message)" "rejected by t-admin: too much" "…\"rejected by BY: REASON\""

# edit an approval step: the step's output carries the edited value
R=$(start gate '{"amount": 500}')
wait_status "$R" review >/dev/null
A=$(approval_of "$R")
t_is "$(decide "$A" '{"decision":"edit","value":{"amount":250}}')" 400 "an edit without a reason answers 400"
t_is "$(decide "$A" '{"decision":"edit","value":{"amount":"lots"},"reason":"cap"}')" 422 "an edit that fails the step's contract answers 422"
t_like "$(jq -r .detail "$T_TMP/body")" "amount@1.*/amount" "…naming the contract and the field"
t_is "$(decide "$A" '{"decision":"edit","value":{"amount":250},"reason":"cap"}')" 200 "edit answers 200"
t_is "$(wait_status "$R" completed)" completed "…the run completes"
t_is "$(curl -s "$URL/v1/runs/$R" | jq -r .output.amount)" 250 "…on the edited value"

# a timeout that escalates, then a decision
R=$(start gate_esc '{}')
wait_status "$R" review >/dev/null
A=$(approval_of "$R")
for _ in $(seq 100); do
	doc=$(curl -s "$URL/v1/approvals/$A")
	[ "$(printf '%s' "$doc" | jq -r .escalated)" = true ] && break
	sleep 0.05
done
t_is "$(printf '%s' "$doc" | jq -c '[.status, .escalated, .reviewers]')" '["pending",true,["role:admin"]]' \
	"on timeout the approval escalates to escalate_to (still pending)"
t_is "$(curl -s "$URL/v1/runs/$R" | jq -r .status)" review "…the run still waits"
t_is "$(decide "$A" '{"decision":"approve","reason":"ok by admin"}')" 200 "approving after the escalation answers 200"
t_is "$(wait_status "$R" completed)" completed "…and the run completes"
t_is "$(curl -s "$URL/v1/audit?action=approval.escalate&run_id=$R" | jq '.entries | length')" 1 "the escalation is audited"

# a timeout that rejects
R=$(start gate_rej '{}')
t_is "$(wait_status "$R" dead)" dead "on_timeout: reject fails the run after the timeout"
t_is "$(curl -s "$URL/v1/runs/$R" | jq -r .error.message)" "rejected by system:timeout: no decision before the timeout" \
	"…rejected by system:timeout"
t_is "$(curl -s "$URL/v1/approvals?run_id=$R&status=rejected" | jq -r '.approvals[0].decision.by')" system:timeout \
	"…and the approval records the decision"

# the review state of an ai step: approve reuses the answer without a new model call
R=$(start unsure '{"text":"the page is blank"}')
t_is "$(wait_status "$R" review)" review "an ai step's unsure answer parks the run in review"
A=$(approval_of "$R")
doc=$(curl -s "$URL/v1/approvals/$A")
t_is "$(printf '%s' "$doc" | jq -c '[.kind, .proposed.label, .input]')" '["review","bug","the page is blank"]' \
	"…as a review approval with the proposal and the input"
t_is "$(printf '%s' "$doc" | jq -c '[.evidence.confidence, .evidence.model, (.evidence.reason | test("confidence"))]')" \
	'[0.5,"u",true]' "…and evidence (confidence, model, why it waits)"
calls=$(curl -s "$URL/v1/runs/$R" | jq '.ai_calls | length')
t_is "$(decide "$A" '{"decision":"approve"}')" 200 "approving the review answers 200"
t_is "$(wait_status "$R" completed)" completed "…the run completes"
t_is "$(curl -s "$URL/v1/runs/$R" | jq -r .output.label)" bug "…with the proposed answer"
t_is "$(curl -s "$URL/v1/runs/$R" | jq '.ai_calls | length')" "$calls" "…without calling the model again"

# edit a review: an invalid value is refused with 422 and decides nothing
R=$(start strict '{"text":"my invoice is wrong"}')
wait_status "$R" review >/dev/null
A=$(approval_of "$R")
t_is "$(decide "$A" '{"decision":"approve"}')" 422 "approving an invalid answer (a label the step does not have) answers 422"
t_like "$(jq -r .detail "$T_TMP/body")" "edit it" "…asking for an edit"
t_is "$(decide "$A" '{"decision":"edit","value":"nope","reason":"fix"}')" 422 "an edit outside the step's labels answers 422"
t_like "$(jq -r .detail "$T_TMP/body")" "labels" "…with the validation error"
t_is "$(curl -s "$URL/v1/approvals/$A" | jq -r .status)" pending "…and the approval is still pending"
t_is "$(decide "$A" '{"decision":"edit","value":"billing","reason":"it is an invoice"}')" 200 "a valid edit answers 200"
t_is "$(wait_status "$R" completed)" completed "…the run completes"
t_is "$(curl -s "$URL/v1/runs/$R" | jq -r .output.label)" billing "…with the edited label"

# the CLI: list and decide
R=$(start strict '{"text":"the app crashes"}')
wait_status "$R" review >/dev/null
A=$(approval_of "$R")
t_like "$("$SLUICE" approvals list --server "$URL")" "$A +review +pending +strict +classify" "sluice approvals list shows the pending one"
t_ok "sluice approvals edit ID --value --reason" "$SLUICE" approvals edit "$A" --server "$URL" --value '"bug"' --reason "a crash"
t_is "$(wait_status "$R" completed)" completed "…and the run completes"
t_is "$("$SLUICE" approvals reject "$A" --server "$URL" --reason again >/dev/null 2>&1; echo $?)" 1 "deciding again exits 1 (409)"
t_is "$("$SLUICE" approvals reject "$A" --server "$URL" >/dev/null 2>&1; echo $?)" 2 "reject without --reason is a usage error"
for text in "the app crashes on start" "I was charged twice"; do
	R=$(start strict "{\"text\":\"$text\"}")
	wait_status "$R" review >/dev/null
	A=$(approval_of "$R")
	case $text in *charged*) l=billing ;; *) l=bug ;; esac
	"$SLUICE" approvals edit "$A" --server "$URL" --value "\"$l\"" --reason label >/dev/null
	wait_status "$R" completed >/dev/null
done

# audit, metrics, trace
t_like "$(curl -s "$URL/v1/audit?action=approval.decide&run_id=$R_OK" | jq -c '.entries[0] | [.actor, .approval_id]')" \
	"\"t-admin\".*\"$A_OK\"" "every decision is audited with who decided and the approval"
t_is "$(curl -s "$URL/v1/audit?action=approval.request&run_id=$R_OK" | jq '.entries | length')" 1 "…and the request too"
t_like "$("$SLUICE" audit verify "$P" 2>&1)" '^audit log intact: [0-9]+ entries' "the log with every request, decision and escalation verifies"
m=$(curl -s "$URL/metrics")
t_like "$m" 'sluice_approvals_decided_total\{kind="approval",decision="approved"\} [1-9]' "metrics: decisions by kind and decision"
t_like "$m" 'sluice_approval_wait_seconds_count\{kind="approval"\} [1-9]' "…the approval wait histogram"
t_like "$m" 'sluice_ai_review_decisions_total\{workflow="strict",decision="edited"\} [1-9]' "…AI review edits"
t_like "$m" 'sluice_ai_review_decisions_total\{workflow="unsure",decision="accepted"\} [1-9]' "…AI review accepts"
t_like "$m" 'sluice_approval_escalations_total\{kind="approval"\} [1-9]' "…escalations"
tr=$(curl -s "$URL/v1/runs/$R_OK/trace")
t_is "$(printf '%s' "$tr" | jq -r '[.resourceSpans[0].scopeSpans[0].spans[] | select(.name == "approval wait approval")] | length')" 1 \
	"the trace has an approval-wait span"
parent=$(printf '%s' "$tr" | jq -r '.resourceSpans[0].scopeSpans[0].spans[] | select(.name == "approval wait approval") | .parentSpanId')
t_is "$(printf '%s' "$tr" | jq -r --arg p "$parent" '.resourceSpans[0].scopeSpans[0].spans[] | select(.spanId == $p) | .name')" \
	"step confirm" "…under its step"

# export -> train
t_ok "sluice approvals export --out FILE" "$SLUICE" approvals export --server "$URL" --out "$T_TMP/feedback.jsonl"
t_is "$(jq -r .label "$T_TMP/feedback.jsonl" | sort | uniq -c | awk '{print $2 "=" $1}' | paste -sd' ')" \
	"billing=2 bug=3" "…one line per labelled decision"
t_is "$(jq -c 'select(.text == "my invoice is wrong") | [.text, .proposed.label, .final.label, .reason, .workflow, .step]' "$T_TMP/feedback.jsonl" | head -1)" \
	'["my invoice is wrong","spam","billing","it is an invoice","strict","classify"]' "…with input, proposed, final, reason, workflow, step"
mkdir -p "$T_TMP/m"
t_ok "sluice model train reads the export" "$SLUICE" model train --data "$T_TMP/feedback.jsonl" "$T_TMP/m" feedback
t_ok "…and writes a model" test -s "$T_TMP/m/models/feedback.json"
# a server killed while a run waits: the decision after the restart completes it
R=$(start gate '{"amount": 7}')
wait_status "$R" review >/dev/null
A=$(approval_of "$R")
# and one whose timeout falls while the server is down: its timer is durable
T=$(start gate_rej '{}')
wait_status "$T" review >/dev/null
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
sleep 1.2
start_serve_dir "$P"
t_is "$(curl -s "$URL/v1/approvals/$A" | jq -r .status)" pending "after kill -9 and a restart the approval is still pending"
t_is "$(decide "$A" '{"decision":"approve","reason":"after restart"}')" 200 "…a decision is taken"
t_is "$(wait_status "$R" completed)" completed "…and the run completes"
t_is "$(wait_status "$T" dead)" dead "a timeout that fell while the server was down applies after the restart"
t_is "$(curl -s "$URL/v1/approvals?run_id=$T" | jq -r '.approvals[0].decision.by')" system:timeout "…decided by system:timeout"
t_done
