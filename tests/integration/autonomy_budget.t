#!/bin/bash
# Autonomy follows the budget signal: a supervised ai step with
# `demote_on: [budget]` acts as drafting (its write waits for a person)
# once the budget its route spends from is 80% spent; the move is audited
# and shown in /v1/slo.
. "$SLUICE_TOP/tests/lib/tap.sh"

start_model_sim
P="$T_TMP/proj"
mkdir -p "$P/workflows" "$P/connectors"
printf 'store: sqlite:.sluice/sluice.db\nworkers: 2\n' >"$P/sluice.yaml"
models() {
	cat >"$P/models.yaml" <<YAML
providers:
  sim: { type: openai, base_url: "$SIM_URL/v1" }
models:
  m: { provider: sim, price: { input: 1, output: 1 } }
routes:
  r: { models: [m], budget: { usd: $1, per: day } }
YAML
}
models 1000
printf 'connector: log\ntype: file\npath: out/log.jsonl\nformat: jsonl\n' >"$P/connectors/log.yaml"
cat >"$P/workflows/spend.yaml" <<'YAML'
workflow: spend
version: 1
allow_actions: [log.append]
slo: { max_error_rate: 0.5 }
steps:
  - id: classify
    ai: { task: classify, route: r, input: .input.text, labels: [billing, bug],
          autonomy: supervised, demote_on: [budget] }
  - id: record
    call: log.append
    with: '{text: .input.text}'
YAML
one() {
	id=$(curl -s -H 'Content-Type: application/json' -d "{\"text\":\"invoice $1\"}" "$URL/v1/workflows/spend/runs" | jq -r .run_id)
	for _ in $(seq 100); do
		case $(curl -s "$URL/v1/runs/$id" | jq -r .status) in completed | review | dead) break ;; esac
		sleep 0.1
	done
	curl -s "$URL/v1/runs/$id" >"$T_TMP/run.json"
	jq -r .status "$T_TMP/run.json"
}
SLUICE_SIGNALS_INTERVAL_MS=3600000 start_serve_dir "$P"
t_is "$(one a)" completed "with budget to spare, the supervised step's write goes through"
cost=$(jq -r '[.ai_calls[].cost_usd] | add' "$T_TMP/run.json")
t_like "$cost" '^[0-9.e-]+$' "…the run's model call cost something ($cost USD)"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null

# the same spend now is 90% of the budget (spend is seeded from the store)
models "$(jq -n --argjson c "$cost" '$c / 0.9')"
SLUICE_SIGNALS_INTERVAL_MS=3600000 start_serve_dir "$P"
a=$(curl -s "$URL/v1/slo" | jq -c '.workflows[0].autonomy[0]')
t_is "$(printf '%s' "$a" | jq -r '(.demoted | tostring) + " " + .acts_as + " " + (.signals | join(","))')" "true drafting budget" \
	"90% of the budget spent: /v1/slo shows the step demoted by the budget signal"
t_is "$(curl -s "$URL/v1/audit?action=autonomy.demote" | jq -r '.entries[0] | .target.id + " " + .detail.signal')" "spend/classify budget" \
	"…audited"
t_is "$(one b)" review "…and its next write waits for approval"
t_done
