#!/bin/bash
# The governed chat gateway and ai steps over real HTTP: `sluice serve` with
# a models.yaml whose routes point at `sluice sim model`. POST
# /v1/chat/completions plain and streamed, masking (the simulator's call log
# holds no masked value), fallback, cache, budget, errors in OpenAI's shape,
# call records, the official `openai` npm client, and an ai step whose
# invalid answers send the run to review.
. "$SLUICE_TOP/tests/lib/tap.sh"
export MODEL_KEY=sk-chat-test-7d1e

cat >"$T_TMP/rules.json" <<'EOF'
{"rules": [
  {"match": {"model": "flaky"}, "status": 503},
  {"match": {"model": "down"}, "status": 503},
  {"match": {"model": "c"}, "reply": {"json": {"label": "spam"}}},
  {"match": {"model": "b"}, "reply": {"text": "answered by b"}}
]}
EOF
start_model_sim --api-key env:MODEL_KEY --rules "$T_TMP/rules.json"

P="$T_TMP/proj"
mkdir -p "$P/workflows" "$P/prompts"
printf 'store: sqlite:.sluice/sluice.db\n' >"$P/sluice.yaml"
cat >"$P/models.yaml" <<EOF
providers:
  sim: { type: openai, base_url: "$SIM_URL/v1", api_key: env:MODEL_KEY }
models:
  a: { provider: sim, price: { input: 1, output: 2 } }
  b: { provider: sim, price: { input: 1, output: 2 } }
  flaky: { provider: sim }
  down: { provider: sim }
  c: { provider: sim }
  pricey: { provider: sim, price: { input: 100000, output: 100000 } }
routes:
  chat: { models: [a] }
  cached: { models: [a], cache: 1h }
  fallback: { models: [flaky, b] }
  tight: { models: [pricey], budget: { usd: 0.5, per: total } }
  dead: { models: [down] }
  strict: { models: [c] }
EOF
cat >"$P/prompts/triage.md" <<'EOF'
Sort this message into one of {{labels}}: {{input}}
EOF
cat >"$P/workflows/triage.yaml" <<'EOF'
workflow: triage
version: 1
steps:
  - id: classify
    ai: { task: classify, route: chat, prompt: triage, input: .input.text, labels: [billing, bug, account] }
  - id: after
    map: '{label: .classify.label}'
EOF
sed -e 's/^workflow: triage/workflow: strict/' -e 's/route: chat/route: strict/' "$P/workflows/triage.yaml" >"$P/workflows/strict.yaml"
t_ok "the project checks" "$SLUICE" check "$P"
start_serve_dir "$P"

post() { curl -s -o "$T_TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' "$@"; }
chat() { post -d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"$2\"}]}" "$URL/v1/chat/completions"; }
body() { cat "$T_TMP/body"; }
sim_calls() { curl -s "$SIM_URL/_sim/calls" | jq '.calls // . | length'; }

t_like "$(curl -s "$URL/v1/models" | jq -r '[.data[].id] | join(",")')" "chat" "GET /v1/models lists the routes"

# plain
t_is "$(chat chat 'Summarize the outage report for the team')" 200 "POST /v1/chat/completions answers 200"
t_is "$(body | jq -r '.object + " " + .model + " " + .choices[0].message.role + " " + .choices[0].finish_reason')" \
	"chat.completion chat assistant stop" "…a chat.completion named after the route"
t_like "$(body | jq -r .choices[0].message.content)" "^Simulated answer: Summarize the outage" "…with the model's answer"
t_is "$(body | jq '.usage.total_tokens == .usage.prompt_tokens + .usage.completion_tokens and .usage.prompt_tokens > 0')" \
	true "…usage adds up"
t_is "$(body | jq -r .sluice.model)" a "…and says which model answered"
plain=$(body | jq -r .choices[0].message.content)

# streamed
ct=$(curl -s -o "$T_TMP/sse" -w '%{content_type}' -H 'Content-Type: application/json' \
	-d '{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Summarize the outage report for the team"}]}' \
	"$URL/v1/chat/completions")
t_like "$ct" "^text/event-stream" "stream: true answers text/event-stream"
t_is "$(grep '^data: ' "$T_TMP/sse" | tail -1)" "data: [DONE]" "…ending with data: [DONE]"
streamed=$(grep '^data: {' "$T_TMP/sse" | sed 's/^data: //' | jq -rj '.choices[0].delta.content // empty')
t_is "$streamed" "$plain" "…the chunks add up to the same answer"
t_is "$(grep '^data: {' "$T_TMP/sse" | sed 's/^data: //' | jq -s '[.[] | select(.usage != null)] | length')" 1 \
	"…with one usage chunk (include_usage)"

# masking: the provider is external, the simulator must not see the address
before=$(sim_calls)
t_is "$(chat chat 'Reply to jane.doe@example.com or +44 20 7946 0958 today')" 200 "a message with personal data answers 200"
t_unlike "$(curl -s "$SIM_URL/_sim/calls" | jq -c '.calls // .' )" "jane\\.doe@example\\.com|7946 0958" \
	"…the simulator never saw the e-mail address or the phone number"
t_like "$(curl -s "$SIM_URL/_sim/calls" | jq -c '.calls // .')" "PII_1" "…it saw tokens instead"
t_like "$(body | jq -r .choices[0].message.content)" "jane\\.doe@example\\.com" "…and the answer is re-filled locally"

# fallback on 503
t_is "$(chat fallback 'hello')" 200 "a route falls back past a 503"
t_is "$(body | jq -r '.sluice.model + " " + (.sluice.calls | tostring) + " " + .choices[0].message.content')" \
	"b 2 answered by b" "…to the next model (2 calls)"
t_is "$(chat dead 'hello')" 503 "every model down answers 503"
t_like "$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' -d '{"model":"dead","messages":[{"role":"user","content":"x"}]}' "$URL/v1/chat/completions" | tr -d '\r')" \
	"Retry-After: [0-9]+" "…with Retry-After"

# cache
chat cached 'What are your opening hours?' >/dev/null
n1=$(sim_calls)
t_is "$(chat cached 'What are your opening hours?')" 200 "a cached route answers"
t_is "$(body | jq -r .sluice.cache_hit)" true "…the repeat is a cache hit"
t_is "$(sim_calls)" "$n1" "…and reaches no model"

# budget
t_is "$(chat tight 'first')" 200 "a route with a budget answers while it lasts"
t_is "$(chat tight 'second')" 429 "…then answers 429"
t_is "$(body | jq -r '.error.code + " " + .type')" "insufficient_quota https://sluice.dev/problems/overloaded" \
	"…with OpenAI's insufficient_quota in a problem document"

# errors
t_is "$(chat nope 'x')" 404 "an unknown route is 404"
t_is "$(body | jq -r '.error.code + " " + .error.param')" "model_not_found model" "…model_not_found, param model"
t_is "$(post -d '{"model":"chat","messages":[]}' "$URL/v1/chat/completions")" 400 "no messages is 400"
t_is "$(post -d '{"model":"chat","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}' "$URL/v1/chat/completions")" \
	400 "tools are refused with 400"
t_is "$(post -d '{not json' "$URL/v1/chat/completions")" 400 "a body that is not JSON is 400"
t_is "$(body | jq -r .error.type)" invalid_request_error "…invalid_request_error"

# every call is recorded (no run)
sleep 0.2
recorded=$(sqlite3 "$P/.sluice/sluice.db" "SELECT COUNT(*) FROM ai_calls WHERE run_id = ''")
t_like "$recorded" "^([8-9]|[1-9][0-9]+)$" "gateway calls are recorded in ai_calls ($recorded)"
t_is "$(sqlite3 "$P/.sluice/sluice.db" "SELECT COUNT(*) FROM ai_calls WHERE input LIKE '%jane.doe@%'")" 0 \
	"…with the input as it was sent (masked)"

# an ai step whose answers are invalid twice: the run waits in review
run=$(curl -s -H 'Content-Type: application/json' -d '{"text":"please review me"}' "$URL/v1/workflows/strict/runs" | jq -r .run_id)
for _ in $(seq 100); do
	st=$(curl -s "$URL/v1/runs/$run" | jq -r .status)
	[ "$st" = review ] && break
	sleep 0.05
done
t_is "$st" review "an ai step invalid twice puts the run in review"
doc=$(curl -s "$URL/v1/runs/$run")
t_is "$(printf '%s' "$doc" | jq -r '[.ai_calls[].outcome] | join(",")')" "invalid,invalid" "…after one retry, both calls recorded"
t_like "$(printf '%s' "$doc" | jq -c .)" "spam" "…and the run shows why"
run=$(curl -s -H 'Content-Type: application/json' -d '{"text":"the invoice total is wrong"}' "$URL/v1/workflows/triage/runs" | jq -r .run_id)
for _ in $(seq 100); do
	st=$(curl -s "$URL/v1/runs/$run" | jq -r .status)
	[ "$st" = completed ] && break
	sleep 0.05
done
t_is "$st" completed "a valid answer completes the run"
t_is "$(curl -s "$URL/v1/runs/$run" | jq -r .output.label)" billing "…with the label the model chose"
doc=$(curl -s "$URL/v1/runs/$run")
t_is "$(printf '%s' "$doc" | jq '.ai.calls == (.ai_calls | length) and .ai.tokens_in == ([.ai_calls[].tokens_in] | add) and (.ai.cost_usd - ([.ai_calls[].cost_usd] | add) | fabs) < 1e-12 and .ai.cost_usd > 0')" \
	true "the run sums its calls' tokens and cost"
t_is "$(curl -s "$URL/v1/workflows" | jq '[.workflows[] | select(.name == "triage") | .ai_cost_usd.total > 0 and .ai_cost_usd.month == .ai_cost_usd.total] | .[0]')" \
	true "GET /v1/workflows says what each workflow's model calls cost"

# correlation: one id from the caller to the model
tp=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
run=$(curl -s -H 'Content-Type: application/json' -H "traceparent: $tp" -d '{"text":"my invoice is wrong"}' \
	"$URL/v1/workflows/triage/runs" | jq -r .run_id)
for _ in $(seq 100); do
	[ "$(curl -s "$URL/v1/runs/$run" | jq -r .status)" = completed ] && break
	sleep 0.05
done
t_is "$(curl -s "$URL/v1/runs/$run" | jq -r .correlation_id)" 0af7651916cd43dd8448eb211c80319c \
	"a run takes its correlation id from the caller's traceparent"
last=$(curl -s "$SIM_URL/_sim/calls" | jq -c '(.calls // .) | map(select(.correlation_id == "0af7651916cd43dd8448eb211c80319c")) | last')
t_like "$(printf '%s' "$last" | jq -r .traceparent)" "^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$" \
	"…the model call carries it (X-Correlation-Id and traceparent, same trace)"
# its span tree
tr=$(curl -s "$URL/v1/runs/$run/trace")
spans='.resourceSpans[0].scopeSpans[0].spans'
t_is "$(printf '%s' "$tr" | jq -r "[$spans[].traceId] | unique | join(\",\")")" 0af7651916cd43dd8448eb211c80319c \
	"GET /v1/runs/ID/trace: every span is in the caller's trace"
t_is "$(printf '%s' "$tr" | jq -r "$spans | map(.name) | join(\",\")")" \
	"run triage,step classify,attempt 1,model a,step after,attempt 1" "…run > step > attempt > model call"
t_is "$(printf '%s' "$tr" | jq -r "$spans as \$s | [\$s[] | select(.name == \"model a\") | .parentSpanId] == [\$s[] | select(.name == \"attempt 1\") | .spanId][0:1]")" \
	true "…the model call is a child of the step's attempt"
t_is "$(printf '%s' "$tr" | jq -r "$spans as \$s | [\$s[1:][] | select(.name | startswith(\"step\")) | .parentSpanId] | unique == [\$s[0].spanId]")" \
	true "…and the steps children of the run"
t_is "$(printf '%s' "$tr" | jq -r "$spans[] | select(.name == \"model a\") | .kind")" 3 "…the model call a CLIENT span"
t_like "$(printf '%s' "$tr" | jq -c "$spans[] | select(.name == \"model a\") | .attributes")" 'gen_ai.usage.input_tokens' \
	"…with its tokens"
out=$("$SLUICE" runs show "$run" --trace --server "$URL"); rc=$?
t_is "$rc" 0 "sluice runs show --trace exits 0"
t_like "$out" "trace 0af7651916cd43dd8448eb211c80319c" "…names the trace"
t_like "$out" "      model a +\\+ +[0-9]+ ms" "…and prints the tree, indented"
curl -s -o /dev/null -H 'Content-Type: application/json' -H 'X-Correlation-Id: chat-corr-42' \
	-d '{"model":"chat","messages":[{"role":"user","content":"trace me"}]}' "$URL/v1/chat/completions"
t_is "$(curl -s "$SIM_URL/_sim/calls" | jq -r '(.calls // .) | last | .correlation_id')" chat-corr-42 \
	"the gateway passes the caller's X-Correlation-Id to the model"

# costs
c=$(curl -s "$URL/v1/costs?group_by=route")
t_is "$(printf '%s' "$c" | jq -r '.group_by')" route "GET /v1/costs groups by route"
t_is "$(printf '%s' "$c" | jq '[.groups[] | select(.key == "chat") | .calls >= 4] | .[0]')" true "…counting the chat route's calls"
t_is "$(printf '%s' "$c" | jq '((.total.cost_usd - ([.groups[].cost_usd] | add)) | fabs) < 1e-12')" true "…and a total that adds up"
c=$(curl -s "$URL/v1/costs")
t_is "$(printf '%s' "$c" | jq '[.groups[] | select(.key == "triage")][0] | .runs_completed >= 1 and .cost_per_completed_run > 0')" \
	true "by workflow (the default), with the cost per completed run"
t_is "$(printf '%s' "$c" | jq '[.groups[] | select(.key == null)] | length')" 1 "…and the gateway's calls as a group of their own"
t_is "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/costs?group_by=colour")" 400 "an unknown group_by is 400"
out=$("$SLUICE" costs --server "$URL" --group-by model); rc=$?
t_is "$rc" 0 "sluice costs exits 0"
t_like "$out" "^GROUP +CALLS +TOKENS_IN" "…prints a table"
t_like "$out" "total +[0-9]+" "…with the total"

# the official openai client
js="$TOP/tests/js"
if [ ! -d "$js/node_modules/openai" ] && command -v npm >/dev/null; then
	(cd "$js" && npm ci --no-audit --no-fund >"$T_TMP/npm.log" 2>&1)
fi
if [ -d "$js/node_modules/openai" ]; then
	out=$(node "$js/chat.mjs" "$URL/v1" chat 2>"$T_TMP/node.err")
	t_is "$(printf '%s' "$out" | jq -r '.plain.object + " " + .plain.finish')" "chat.completion stop" \
		"openai npm client: a completion" || t_diag "$(cat "$T_TMP/node.err")"
	t_like "$(printf '%s' "$out" | jq -r .plain.content)" "^Simulated answer" "openai npm client: …with the answer"
	t_is "$(printf '%s' "$out" | jq -r '(.stream.chunks > 2) and (.stream.finish == "stop") and (.stream.usage.total_tokens > 0)')" \
		true "openai npm client: a streamed completion, with usage"
	t_like "$(printf '%s' "$out" | jq -r .stream.text)" "^Simulated answer: Stream a greeting" "openai npm client: …the streamed text"
	t_is "$(printf '%s' "$out" | jq -r '(.error.status|tostring) + " " + .error.code')" "404 model_not_found" \
		"openai npm client: an unknown route is its NotFoundError"
	t_like "$(printf '%s' "$out" | jq -r '.models | join(",")')" "chat" "openai npm client: models.list"
elif [ "${CI:-}" = true ]; then
	t_fail "the openai npm package could not be installed" "$(tail -5 "$T_TMP/npm.log" 2>/dev/null)"
else
	t_diag "SKIP the openai npm client checks: npm could not install it ($(tail -1 "$T_TMP/npm.log" 2>/dev/null))"
fi
t_done
