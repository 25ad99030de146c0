#!/bin/sh
# The AI gateway's cost in time: POST /v1/chat/completions straight to the
# model simulator, then through `sluice serve` (a route with no cache, every
# prompt different), then through a cached route (the same prompt: cache
# hits). One request at a time on a kept-alive connection, so the figures are
# per-request work, not queueing. Prints p50/p99 and the gateway's added
# latency (gateway minus direct).
set -eu
: "${SLUICE_BIN:?}" "${SLUICE_BUILD:?}"
tmp=$(mktemp -d /tmp/sluice-bench-ai.XXXXXX)
trap 'kill $sim $srv 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
N=${BENCH_CHATS:-2000}
sport=$((30000 + $$ % 15000))
gport=$((sport + 1))
"$SLUICE_BIN" sim model --port $sport --log-level error >"$tmp/sim.out" 2>&1 &
sim=$!
mkdir -p "$tmp/p"
printf 'store: sqlite:.sluice/sluice.db\nlog_level: error\n' >"$tmp/p/sluice.yaml"
cat >"$tmp/p/models.yaml" <<YAML
providers:
  sim: { type: openai, base_url: "http://127.0.0.1:$sport/v1" }
models:
  gpt: { provider: sim, model: gpt-4o-mini, price: { input: 0.15, output: 0.6 } }
routes:
  direct: { models: [gpt] }
  cached: { models: [gpt], cache: 1h }
YAML
# the gateway wants an API key (operator); bench_chat sends SLUICE_TOKEN
SLUICE_TOKEN=$("$SLUICE_BIN" keys create --principal bench --role operator "$tmp/p" 2>/dev/null)
export SLUICE_TOKEN
"$SLUICE_BIN" serve --listen 127.0.0.1:$gport --log-level error "$tmp/p" >"$tmp/serve.out" 2>&1 &
srv=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gport/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$sport/v1/models" && break; sleep 0.1; done

run() { "$SLUICE_BUILD/bench/bench_chat" "$@" | tee -a "$tmp/figures"; }
echo "simulator, direct:            $(run "http://127.0.0.1:$sport/v1/chat/completions" gpt-4o-mini "$N" vary)"
echo "gateway, route without cache: $(run "http://127.0.0.1:$gport/v1/chat/completions" direct "$N" vary)"
echo "gateway, cache hits:          $(run "http://127.0.0.1:$gport/v1/chat/completions" cached "$N" same)"
awk '/p50/ { for (i = 1; i <= NF; i++) { if ($i == "p50") p50[NR] = $(i+1); if ($i == "p99") p99[NR] = $(i+1) } }
END {
	printf "added by the gateway: p50 %+.3f ms, p99 %+.3f ms (gateway minus direct)\n", p50[2] - p50[1], p99[2] - p99[1]
	printf "cache hit vs a model call through the gateway: p50 %.3f ms vs %.3f ms (%.1fx faster)\n", p50[3], p50[2], p50[2] / p50[3]
}' "$tmp/figures"
calls=$(sqlite3 "$tmp/p/.sluice/sluice.db" "select count(*) from ai_calls" 2>/dev/null || echo "?")
echo "calls recorded by the gateway: $calls"
