#!/bin/bash
# Drift: an ai step's label distribution shifts (the model simulator's
# rules change), GET /v1/drift and /metrics report it and a log line says
# so; when the outputs return to normal, the drift clears.
. "$SLUICE_TOP/tests/lib/tap.sh"

normal='{"rules": [
  {"match": {"contains": "invoice"}, "reply": {"json": {"label": "billing"}}, "confidence": 0.9},
  {"match": {"contains": "crash"}, "reply": {"json": {"label": "bug"}}, "confidence": 0.8}]}'
shifted='{"rules": [{"reply": {"json": {"label": "account"}}, "confidence": 0.55}]}'
printf '%s' "$normal" >"$T_TMP/rules.json"
start_model_sim --rules "$T_TMP/rules.json"
P="$T_TMP/proj"
mkdir -p "$P/workflows"
printf 'store: sqlite:.sluice/sluice.db\nworkers: 4\n' >"$P/sluice.yaml"
cat >"$P/models.yaml" <<YAML
providers:
  sim: { type: openai, base_url: "$SIM_URL/v1" }
models:
  m: { provider: sim }
routes:
  r: { models: [m] }
YAML
cat >"$P/workflows/triage.yaml" <<'YAML'
workflow: triage
version: 1
steps:
  - id: classify
    ai: { task: classify, route: r, input: .input.text, labels: [billing, bug, account] }
YAML
start_serve_dir "$P"

# send N texts, 3 in 4 about an invoice, then wait until all are done
send() {
	for i in $(seq "$1"); do
		if [ $((i % 4)) = 0 ]; then t="the app crashes $i"; else t="my invoice $i is wrong"; fi
		curl -s -o /dev/null -H 'Content-Type: application/json' -d "{\"text\":\"$t\"}" "$URL/v1/workflows/triage/runs"
	done
	for _ in $(seq 200); do
		[ "$(curl -s "$URL/v1/runs?status=queued" | jq '.runs | length')" = 0 ] &&
			[ "$(curl -s "$URL/v1/runs?status=running" | jq '.runs | length')" = 0 ] && break
		sleep 0.1
	done
}
drift() { curl -s "$URL/v1/drift?recent=40&baseline=60&min=30" | jq -c '.steps[0]'; }

send 100
d=$(drift)
t_is "$(printf '%s' "$d" | jq -r '.workflow + "/" + .step + " " + (.drifted | tostring)')" "triage/classify false" \
	"a steady step has not drifted"
t_like "$(printf '%s' "$d" | jq -r .psi.label)" '^0(\.0[0-9]*)?$|e-' "…its label PSI is near 0"

curl -s -o /dev/null -d "$shifted" "$SIM_URL/_sim/rules"
send 40
d=$(drift)
t_is "$(printf '%s' "$d" | jq -r '(.drifted | tostring) + " " + .signal')" "true label" \
	"after the model's answers shift, the step has drifted, on its labels"
t_is "$(printf '%s' "$d" | jq '.psi.label > 1 and .recent.labels.account == 40')" true "…with a large PSI and the recent labels"
m=$(curl -s "$URL/metrics")
t_like "$m" 'sluice_ai_drifted\{workflow="triage",step="classify"\} 1' "…/metrics says so"
t_like "$m" 'sluice_ai_drift_psi\{workflow="triage",step="classify",signal="label"\} [1-9]' "…with the PSI by signal"
t_like "$(cat "$T_TMP/serve.err")" '"msg":"ai step drifted".*"signal":"label"' "…and one log line says it drifted"

printf '%s' "$normal" | curl -s -o /dev/null --data-binary @- "$SIM_URL/_sim/rules"
send 100
d=$(drift)
t_is "$(printf '%s' "$d" | jq -r '.drifted')" false "when the answers are back to normal, the drift clears"
t_like "$(cat "$T_TMP/serve.err")" '"msg":"ai step drift cleared"' "…and a log line says so"
t_is "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/drift?recent=0")" 400 "a bad window is 400"
t_done
