#!/bin/bash
# Events per second from each stream (Redis Streams, NATS JetStream, Kafka
# on librdkafka's mock cluster) through a 1-step workflow (map) on
# `sluice serve` with SQLite: N events are written first, then sluice starts;
# "consumed" is when every event's run was committed (and the message
# acknowledged after it), "completed" when every run finished. A stream
# whose server is not installed is skipped.
set -u
: "${SLUICE_BIN:?}" "${SLUICE_BUILD:?}"
N=${BENCH_STREAM_EVENTS:-20000}
CONSUMERS=${BENCH_STREAM_CONSUMERS:-4}
TOOL="$SLUICE_BUILD/tests/stream_tool"
tmp=$(mktemp -d /tmp/sluice-bench-streams.XXXXXX)
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

free_port() {
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
now() { date +%s.%N; }

# bench NAME CONNECTOR_YAML: serves a project reading the stream, prints figures.
bench() {
	p="$tmp/$1"
	mkdir -p "$p/connectors" "$p/workflows"
	printf 'name: bench\nstore: sqlite:.sluice/sluice.db\n' >"$p/sluice.yaml"
	printf 'connector: events\n%s\n' "$2" >"$p/connectors/events.yaml"
	printf 'workflow: ingest\nversion: 1\ntrigger: { stream: { connector: events, consumers: %d } }\nsteps:\n  - id: m\n    map: "{n: .input.n}"\n' \
		"$CONSUMERS" >"$p/workflows/ingest.yaml"
	db="$p/.sluice/sluice.db"
	t0=$(now)
	"$SLUICE_BIN" serve --listen 127.0.0.1:0 --log-level error "$p" >"$p/serve.out" 2>&1 &
	srv=$!
	pids="$pids $srv"
	created="" done_at=""
	for _ in $(seq 3000); do
		c=$(sqlite3 "$db" "select count(*), sum(status='completed') from runs" 2>/dev/null || echo "0|0")
		[ -z "$created" ] && [ "${c%|*}" -ge "$N" ] && created=$(now)
		[ "${c#*|}" = "$N" ] && { done_at=$(now); break; }
		sleep 0.1
	done
	kill $srv 2>/dev/null; wait $srv 2>/dev/null
	if [ -z "$done_at" ]; then
		echo "$1: not all $N runs completed in 300 s ($(sqlite3 "$db" "select count(*) from runs") created)"
		return
	fi
	awk -v s="$1" -v n="$N" -v a="$t0" -v b="$created" -v c="$done_at" 'BEGIN {
		printf "%-13s %d events: consumed (runs committed, then acked) in %.1f s: %6.0f events/s; completed in %.1f s: %6.0f runs/s\n",
			s, n, b - a, n / (b - a), c - a, n / (c - a) }'
}

echo "($N events each, $CONSUMERS consumers, 1-step map workflow, SQLite store, $(nproc) cores)"
if command -v redis-server >/dev/null; then
	port=$(free_port)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >/dev/null 2>&1 &
	pids="$pids $!"
	wait_port "$port"
	for i in $(seq 1 "$N"); do printf 'XADD events * data "{\\"n\\":%d}"\n' "$i"; done | redis-cli -p "$port" >/dev/null
	bench redis_stream "type: redis_stream
url: redis://127.0.0.1:$port
stream: events"
else
	echo "redis_stream: skipped (no redis-server)"
fi
if command -v nats-server >/dev/null; then
	port=$(free_port)
	mkdir -p "$tmp/nats"
	nats-server -js -a 127.0.0.1 -p "$port" -sd "$tmp/nats" >/dev/null 2>&1 &
	pids="$pids $!"
	wait_port "$port"
	"$TOOL" nats-pub "nats://127.0.0.1:$port" EVENTS events.in 1 "$N"
	bench nats "type: nats
url: nats://127.0.0.1:$port
stream: EVENTS
subject: events.in"
else
	echo "nats: skipped (no nats-server)"
fi
"$TOOL" kafka-mock 3 events:4 >"$tmp/mock.out" 2>/dev/null &
pids="$pids $!"
for _ in $(seq 100); do grep -q '^bootstrap' "$tmp/mock.out" 2>/dev/null && break; sleep 0.05; done
b=$(sed -n 's/^bootstrap //p' "$tmp/mock.out")
"$TOOL" kafka-pub "$b" events 1 "$N"
bench kafka "type: kafka
brokers: $b
topic: events"
