#!/bin/bash
# sluice sim model: the LLM API simulator as a real process, spoken to with
# curl in the OpenAI and Anthropic wire formats: answers, JSON Schema
# synthesis, streams, rules (from a file and replaced at run time), auth,
# rate limits, faults and the call log.
. "$SLUICE_TOP/tests/lib/tap.sh"
export MODEL_KEY=sk-sim-42

# start_sim ARGS...: sets SIM_URL and SIM_PID.
start_sim() {
	out="$T_TMP/sim.model.$RANDOM"
	"$SLUICE" sim model --port 0 "$@" >"$out" 2>"$out.err" &
	SIM_PID=$!
	T_PIDS="$T_PIDS $SIM_PID"
	for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
	SIM_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out" | head -1)
}
oa() { curl -s -H "Authorization: Bearer $MODEL_KEY" -H 'Content-Type: application/json' "$@"; }
an() { curl -s -H "x-api-key: $MODEL_KEY" -H 'anthropic-version: 2023-06-01' -H 'Content-Type: application/json' "$@"; }

cat >"$T_TMP/rules.json" <<'EOF'
{"rules": [
  {"match": {"contains": "flaky"}, "status": 500, "times": 2},
  {"match": {"model": "cheap", "contains": "refund"}, "reply": {"json": {"category": "billing"}}, "confidence": 0.35},
  {"match": {"contains": "hello"}, "reply": {"text": "Hello from the rules file"}}
]}
EOF
start_sim --api-key env:MODEL_KEY --rules "$T_TMP/rules.json" --models gpt-4o-mini,cheap,claude-sonnet
t_like "$SIM_URL" '^http://127\.0\.0\.1:[0-9]+$' "sim model prints where it listens"

# OpenAI chat completions
r=$(oa -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}' "$SIM_URL/v1/chat/completions")
t_is "$(printf '%s' "$r" | jq -r '.object + " " + .choices[0].message.role + " " + .choices[0].finish_reason')" \
	"chat.completion assistant stop" "openai: a chat.completion"
t_is "$(printf '%s' "$r" | jq -r .choices[0].message.content)" "Hello from the rules file" "…answered by a rule"
t_is "$(printf '%s' "$r" | jq -c .usage)" '{"prompt_tokens":3,"completion_tokens":7,"total_tokens":10}' "…with usage"
t_like "$(printf '%s' "$r" | jq -r .id)" '^chatcmpl-' "…and a chatcmpl- id"

schema='{"type":"object","required":["category","confidence"],"properties":{"category":{"enum":["technical","billing","other"]},"confidence":{"type":"number"}}}'
r=$(oa -d "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"my invoice and billing are wrong\"}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"c\",\"schema\":$schema}}}" "$SIM_URL/v1/chat/completions")
t_is "$(printf '%s' "$r" | jq -c '.choices[0].message.content | fromjson')" '{"category":"billing","confidence":0.9}' \
	"openai: json_schema answers are synthesised from the schema"
r=$(oa -d '{"model":"cheap","messages":[{"role":"user","content":"A refund, please"}]}' "$SIM_URL/v1/chat/completions")
t_is "$(printf '%s' "$r" | jq -c '.choices[0].message.content | fromjson')" '{"category":"billing","confidence":0.35}' \
	"a rule's json reply carries its confidence"

codes=""
for _ in 1 2 3; do codes="$codes $(oa -o /dev/null -w '%{http_code}' -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"flaky"}]}' "$SIM_URL/v1/chat/completions")"; done
t_is "$codes" " 500 500 200" "a rule with times: fails twice, then answers"

s=$(oa -N -d '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}' "$SIM_URL/v1/chat/completions")
t_is "$(printf '%s\n' "$s" | grep '^data: ' | tail -1)" "data: [DONE]" "openai stream ends with [DONE]"
h=$(oa -D - -o /dev/null -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}' "$SIM_URL/v1/chat/completions")
t_like "$h" '[Tt]ransfer-[Ee]ncoding: chunked' "…sent chunked, as text/event-stream"
t_is "$(printf '%s\n' "$s" | grep '^data: {' | sed 's/^data: //' | jq -j '.choices[0].delta.content // empty')" \
	"Hello from the rules file" "…the deltas add up to the answer"
t_is "$(printf '%s\n' "$s" | grep '^data: {' | tail -1 | sed 's/^data: //' | jq -c '[.choices, .usage.total_tokens]')" \
	'[[],9]' "…with a usage chunk last"

t_is "$(oa -d '{"model":"gpt-5","messages":[{"role":"user","content":"hi"}]}' "$SIM_URL/v1/chat/completions" | jq -r .error.code)" \
	model_not_found "a model not in --models: 404 model_not_found"
t_is "$(curl -s -H 'Authorization: Bearer wrong' -d '{}' "$SIM_URL/v1/chat/completions" | jq -r .error.code)" \
	invalid_api_key "a wrong key: 401 invalid_api_key"
t_is "$(oa "$SIM_URL/v1/models" | jq -r '[.data[].id] | join(",")')" "gpt-4o-mini,cheap,claude-sonnet" "GET /v1/models lists --models"

# Anthropic Messages
r=$(an -d '{"model":"claude-sonnet","max_tokens":64,"system":"be kind","messages":[{"role":"user","content":"hello"}]}' "$SIM_URL/v1/messages")
t_is "$(printf '%s' "$r" | jq -r '.type + " " + .content[0].type + " " + .stop_reason')" "message text end_turn" "anthropic: a message"
t_is "$(printf '%s' "$r" | jq -c .usage)" '{"input_tokens":3,"output_tokens":7}' "…with usage"
r=$(an -d "{\"model\":\"claude-sonnet\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":\"a technical fault\"}],\"tools\":[{\"name\":\"answer\",\"input_schema\":$schema}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"answer\"}}" "$SIM_URL/v1/messages")
t_is "$(printf '%s' "$r" | jq -c '[.stop_reason, .content[0].type, .content[0].name, .content[0].input]')" \
	'["tool_use","tool_use","answer",{"category":"technical","confidence":0.9}]' "…a forced tool gives a tool_use block"
r=$(an -w ' %{http_code}' -d '{"model":"claude-sonnet","messages":[{"role":"user","content":"hi"}]}' "$SIM_URL/v1/messages")
t_like "$r" '"invalid_request_error".* 400$' "…no max_tokens: 400 invalid_request_error"
s=$(an -N -d '{"model":"claude-sonnet","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello"}]}' "$SIM_URL/v1/messages")
t_is "$(printf '%s\n' "$s" | sed -n 's/^event: //p' | uniq | tr '\n' ' ')" \
	"message_start content_block_start ping content_block_delta content_block_stop message_delta message_stop " \
	"…a stream's events come in the Messages API order"

# The call log: what the model was sent
curl -s -X DELETE "$SIM_URL/_sim/calls" >/dev/null
oa -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Customer [EMAIL_1] wrote in"}]}' "$SIM_URL/v1/chat/completions" >/dev/null
calls=$(curl -s "$SIM_URL/_sim/calls")
t_is "$(printf '%s' "$calls" | jq -r '.calls | length')" 1 "DELETE /_sim/calls cleared the log"
t_is "$(printf '%s' "$calls" | jq -r '.calls[0] | [.api, .model, .status, .tokens_in, .messages[0].content] | join("|")')" \
	"openai|gpt-4o-mini|200|7|Customer [EMAIL_1] wrote in" "GET /_sim/calls shows what was sent"

# Rules replaced at run time; /_sim/reset goes back to the file's
curl -s -d '[{"match":{"contains":"hello"},"reply":{"text":"replaced"}}]' "$SIM_URL/_sim/rules" >/dev/null
t_is "$(oa -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}' "$SIM_URL/v1/chat/completions" | jq -r .choices[0].message.content)" \
	replaced "POST /_sim/rules replaces the rules"
t_is "$(curl -s -o /dev/null -w '%{http_code}' -d '[{"reply":{"nope":1}}]' "$SIM_URL/_sim/rules")" 422 "…a bad rules document: 422"
curl -s -X POST "$SIM_URL/_sim/reset" >/dev/null
t_is "$(oa -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}' "$SIM_URL/v1/chat/completions" | jq -r .choices[0].message.content)" \
	"Hello from the rules file" "POST /_sim/reset restores the start rules"

# Faults at run time, in each API's error shape
curl -s -d '{"error_rate": 1}' "$SIM_URL/_sim/faults" >/dev/null
t_is "$(oa -o /dev/null -w '%{http_code}' -d '{"model":"cheap","messages":[{"role":"user","content":"x"}]}' "$SIM_URL/v1/chat/completions")" \
	503 "error_rate 1: openai 503"
t_is "$(an -d '{"model":"cheap","max_tokens":5,"messages":[{"role":"user","content":"x"}]}' "$SIM_URL/v1/messages" | jq -r .error.type)" \
	overloaded_error "…anthropic 529 overloaded_error"
curl -s -d '{"error_rate": 0}' "$SIM_URL/_sim/faults" >/dev/null

# End to end: a project whose AI steps use the simulator through both
# providers; the x-pii field is masked before it leaves, which the call
# log proves.
P="$T_TMP/e2e"
mkdir -p "$P/workflows" "$P/contracts"
printf 'name: e2e\nstore: sqlite:.sluice/sluice.db\n' >"$P/sluice.yaml"
cat >"$P/models.yaml" <<EOF
providers:
  oa: { type: openai, base_url: $SIM_URL/v1, api_key: env:MODEL_KEY }
  an: { type: anthropic, base_url: $SIM_URL, api_key: env:MODEL_KEY }
models:
  cheap: { provider: oa, model: gpt-4o-mini }
  smart: { provider: an, model: claude-sonnet }
routes:
  triage: { models: [cheap] }
  deep: { models: [smart] }
EOF
cat >"$P/workflows/classify.yaml" <<'EOF'
workflow: classify
version: 1
trigger:
  webhook: { path: /hooks/classify, contract: email@1 }
steps:
  - id: quick
    ai: { task: classify, route: triage, input: .input.text, labels: [billing, technical, other] }
  - id: careful
    ai: { task: classify, route: deep, input: .input.text, labels: [billing, technical, other] }
output: '{quick: .quick.label, careful: .careful.label}'
EOF
cat >"$P/contracts/email.json" <<'EOF'
{"$id": "email@1", "type": "object", "required": ["text", "from"],
 "properties": {"text": {"type": "string"}, "from": {"type": "string", "x-pii": true}}}
EOF
printf '{"text": "My invoice is wrong, write to ana.lopez@example.com", "from": "ana.lopez@example.com"}' >"$P/in.json"
curl -s -X DELETE "$SIM_URL/_sim/calls" >/dev/null
out=$("$SLUICE" run --json "$P" classify -i "$P/in.json" 2>"$T_TMP/e2e.err")
t_is "$(printf '%s' "$out" | jq -c '[.status, .output]')" '["completed",{"quick":"billing","careful":"billing"}]' \
	"a workflow classifies through the simulator, openai and anthropic"
calls=$(curl -s "$SIM_URL/_sim/calls")
t_is "$(printf '%s' "$calls" | jq -r '[.calls[].api] | join(",")')" "openai,anthropic" "…one call to each API"
t_unlike "$calls" 'ana\.lopez' "…and the x-pii address never reached the model"

# Rate limit
start_sim --rate 0.2 --burst 1
curl -s -o /dev/null -d '{"model":"m","messages":[{"role":"user","content":"x"}]}' "$SIM_URL/v1/chat/completions"
h=$(curl -s -D - -o "$T_TMP/429.json" -d '{"model":"m","messages":[{"role":"user","content":"x"}]}' "$SIM_URL/v1/chat/completions")
t_like "$h" '^HTTP/1\.1 429' "past --rate: 429"
t_like "$h" '[Rr]etry-[Aa]fter: [1-9]' "…with Retry-After"
t_is "$(jq -r .error.code "$T_TMP/429.json")" rate_limit_exceeded "…and code rate_limit_exceeded"

# Usage errors
printf '{"rules": [{"match": {"contains": 5}}]}' >"$T_TMP/bad.json"
t_is "$("$SLUICE" sim model --rules "$T_TMP/bad.json" >/dev/null 2>"$T_TMP/bad.err"; echo $?)" 2 "a bad rules file is a usage error"
t_like "$(cat "$T_TMP/bad.err")" 'rules\[0\]\.match' "…naming the rule"
t_is "$("$SLUICE" sim crm --rules "$T_TMP/rules.json" >/dev/null 2>&1; echo $?)" 2 "--rules is only for sim model"
t_done
