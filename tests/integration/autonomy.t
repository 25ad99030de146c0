#!/bin/bash
# Autonomy follows signals (issue 7 item 7), drift and SLO burn: an ai step with
# `autonomy: supervised` and `demote_on: [drift]` writes through its
# allowlist while its answers are steady; when the model simulator's label
# distribution shifts, /v1/drift reports the drift, the step is demoted (to
# drafting: its write now waits for approval), both moves are audited and
# shown in /v1/drift and /v1/slo; when the answers return, it is promoted
# back and writes go through again.
. "$SLUICE_TOP/tests/lib/tap.sh"

normal='{"rules": [
  {"match": {"contains": "invoice"}, "reply": {"json": {"label": "billing"}}, "confidence": 0.9},
  {"match": {"contains": "crash"}, "reply": {"json": {"label": "bug"}}, "confidence": 0.8}]}'
shifted='{"rules": [{"reply": {"json": {"label": "account"}}, "confidence": 0.55}]}'
printf '%s' "$normal" >"$T_TMP/rules.json"
start_model_sim --rules "$T_TMP/rules.json"
P="$T_TMP/proj"
mkdir -p "$P/workflows" "$P/connectors"
printf 'store: sqlite:.sluice/sluice.db\nworkers: 4\n' >"$P/sluice.yaml"
cat >"$P/models.yaml" <<YAML
providers:
  sim: { type: openai, base_url: "$SIM_URL/v1" }
models:
  m: { provider: sim }
routes:
  r: { models: [m] }
YAML
printf 'connector: log\ntype: file\npath: out/log.jsonl\nformat: jsonl\n' >"$P/connectors/log.yaml"
cat >"$P/workflows/triage.yaml" <<'YAML'
workflow: triage
version: 1
allow_actions: [log.append]
slo: { max_error_rate: 0.5 }
steps:
  - id: classify
    ai: { task: classify, route: r, input: .input.text, labels: [billing, bug, account],
          autonomy: supervised, demote_on: [drift] }
  - id: record
    call: log.append
    with: '{text: .input.text, label: .classify.label}'
YAML
cat >"$P/workflows/flaky.yaml" <<'YAML'
workflow: flaky
version: 1
allow_actions: [log.append]
slo: { max_error_rate: 0.01 }
steps:
  - id: classify
    ai: { task: classify, route: r, input: .input.text, labels: [billing, bug, account],
          autonomy: supervised, demote_on: [slo_burn] }
  - id: check
    map: 'if .input.fail then error("boom") else . end'
  - id: record
    call: log.append
    with: '{text: .input.text}'
YAML
# only the test's own GET /v1/drift evaluates drift (with its small windows)
# a table a previous server left in the store: the new one replaces it at once
t_auth "$P" # creates the store
sqlite3 "$P/.sluice/sluice.db" "insert or replace into trigger_state(name, state, updated_at)
	values ('autonomy.signals', '{\"signals\":[\"drift:triage/classify\"]}', 0)"
SLUICE_SIGNALS_INTERVAL_MS=3600000 start_serve_dir "$P"
for _ in $(seq 50); do
	shared=$(sqlite3 "$P/.sluice/sluice.db" "select state from trigger_state where name = 'autonomy.signals'")
	[ "$shared" = '{"signals":[]}' ] && break
	sleep 0.1
done
t_is "$shared" '{"signals":[]}' "a starting server replaces the signals a previous one left for the workers"

send() {
	for i in $(seq "$1"); do
		if [ $((i % 4)) = 0 ]; then t="the app crashes $i"; else t="my invoice $i is wrong"; fi
		curl -s -o /dev/null -H 'Content-Type: application/json' -d "{\"text\":\"$t\"}" "$URL/v1/workflows/triage/runs"
	done
	for _ in $(seq 300); do
		[ "$(curl -s "$URL/v1/runs?status=queued" | jq '.runs | length')" = 0 ] &&
			[ "$(curl -s "$URL/v1/runs?status=running" | jq '.runs | length')" = 0 ] && break
		sleep 0.1
	done
}
drift() { curl -s "$URL/v1/drift?recent=40&baseline=60&min=30" | jq -c '.steps[] | select(.workflow == "triage")'; }
# one more run; prints its status and the record step's status
one() {
	id=$(curl -s -H 'Content-Type: application/json' -d "{\"text\":\"invoice $1\"}" "$URL/v1/workflows/triage/runs" | jq -r .run_id)
	for _ in $(seq 100); do
		st=$(curl -s "$URL/v1/runs/$id" | jq -r .status)
		case $st in completed | review | dead) break ;; esac
		sleep 0.1
	done
	curl -s "$URL/v1/runs/$id" >"$T_TMP/run.json"
	jq -r '.status + " " + ([.steps[] | select(.id == "record") | .status][0] // "none")' "$T_TMP/run.json"
}

send 100
d=$(drift)
t_is "$(printf '%s' "$d" | jq -r '(.drifted | tostring) + " " + (.demoted | tostring) + " " + .autonomy.acts_as')" \
	"false false supervised" "steady answers: no drift, the step acts as supervised"
t_is "$(one a)" "completed completed" "…and its write (on allow_actions) goes through without approval"

curl -s -o /dev/null -d "$shifted" "$SIM_URL/_sim/rules"
send 40
d=$(drift)
t_is "$(printf '%s' "$d" | jq -r '(.drifted | tostring) + " " + (.demoted | tostring) + " " + .autonomy.acts_as + " " + (.autonomy.signals | join(","))')" \
	"true true drafting drift" "the labels shift: drift reported, the step demoted to drafting"
t_is "$(curl -s "$URL/v1/slo" | jq -r '.workflows[] | select(.workflow == "triage") | .autonomy[0] | (.demoted | tostring) + " " + .acts_as')" "true drafting" \
	"…/v1/slo shows it demoted too"
for _ in $(seq 50); do
	shared=$(sqlite3 "$P/.sluice/sluice.db" "select state from trigger_state where name = 'autonomy.signals'" 2>/dev/null)
	case $shared in *drift:triage/classify*) break ;; esac
	sleep 0.1
done
t_like "$shared" '"drift:triage/classify"' "…and the store holds the signal for worker processes"
a=$(curl -s "$URL/v1/audit?action=autonomy.demote" | jq -c '.entries[0]')
t_is "$(printf '%s' "$a" | jq -r '.target.id + " " + .detail.signal + " " + .detail.acts_as')" "triage/classify drift drafting" \
	"…the demotion is audited (step, signal, new level)"
t_is "$(one b)" "review review" "a demoted step's write now waits for approval"
t_is "$(jq -r '.steps[] | select(.id == "record") | .output.kind + " " + .output.proposed.action' "$T_TMP/run.json")" \
	"autonomy append" "…an autonomy approval proposing the append"
# the evidence is the approval's (GET /v1/approvals/ID), not the step output's
apr=$(jq -r '.steps[] | select(.id == "record") | .output.approval_id' "$T_TMP/run.json")
t_like "$(curl -s "$URL/v1/approvals/$apr" | jq -c '.evidence.ai[0]')" \
	'"step":"classify".*"acts_as":"drafting"|"acts_as":"drafting".*"step":"classify"' "…with the ai step's answer as evidence"
t_is "$(curl -s "$URL/v1/audit?action=policy.require_approval" | jq -r '.entries[0] | .policy.rule + " " + .policy.decision')" \
	"autonomy require_approval" "…and the request is audited with its rule"
m=$(curl -s "$URL/metrics")
t_like "$m" 'sluice_ai_autonomy_demoted\{workflow="triage",step="classify"\} 1' "…/metrics shows the step demoted"
t_like "$m" 'sluice_policy_decisions_total\{decision="require_approval",rule="autonomy"\} 1' "…and counts the decision"

printf '%s' "$normal" | curl -s -o /dev/null --data-binary @- "$SIM_URL/_sim/rules"
send 100
d=$(drift)
t_is "$(printf '%s' "$d" | jq -r '(.drifted | tostring) + " " + (.demoted | tostring) + " " + .autonomy.acts_as')" \
	"false false supervised" "answers back to normal: drift cleared, the step promoted back"
t_is "$(curl -s "$URL/v1/audit?action=autonomy.promote" | jq -r '.entries[0] | .target.id + " " + .detail.acts_as')" \
	"triage/classify supervised" "…the promotion is audited"
t_is "$(one c)" "completed completed" "…and writes go through again"
# SLO burn: a workflow failing far above its objective demotes its step
flaky() {
	id=$(curl -s -H 'Content-Type: application/json' -d "{\"text\":\"invoice $1\",\"fail\":$2}" "$URL/v1/workflows/flaky/runs" | jq -r .run_id)
	for _ in $(seq 100); do
		case $(curl -s "$URL/v1/runs/$id" | jq -r .status) in completed | review | dead) break ;; esac
		sleep 0.1
	done
	curl -s "$URL/v1/runs/$id" | jq -r .status
}
t_is "$(flaky ok false)" completed "a supervised step's workflow runs while its SLO holds"
for i in 1 2 3 4 5; do flaky "f$i" true >/dev/null; done
slo=$(curl -s "$URL/v1/slo" | jq -c '.workflows[] | select(.workflow == "flaky")')
t_is "$(printf '%s' "$slo" | jq -r '.objectives[0].state + " " + (.autonomy[0] | (.demoted | tostring) + " " + .acts_as + " " + (.signals | join(",")))')" \
	"fast_burn true drafting slo_burn" "the error rate burns its budget: /v1/slo shows the step demoted by slo_burn"
t_is "$(curl -s "$URL/v1/audit?action=autonomy.demote" | jq -r '[.entries[] | select(.target.id == "flaky/classify")][0].detail.signal')" \
	slo_burn "…audited"
t_is "$(flaky later false)" review "…and its next write waits for approval"
t_done
