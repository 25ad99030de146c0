#!/bin/bash
# Redis Streams: 10,000 entries consumed through a consumer group by a
# workflow whose trigger is the stream, `sluice serve` killed with -9 twice
# while it consumes. Every entry has exactly one completed run, the
# workflow's effect (an exactly-once file append) happened once per entry,
# the emit step's CloudEvent reached the output stream once per run, and
# the group has nothing pending. A real redis-server on a free loopback
# port; skipped when it is not installed (fails under CI=true).
. "$SLUICE_TOP/tests/lib/tap.sh"
. "$SLUICE_TOP/tests/lib/streams.sh"
stream_need redis-server redis-server
N=${STREAM_EVENTS:-10000}
mkdir -p "$T_TMP/redis"
redis() {
	exec redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$T_TMP/redis" \
		--requirepass redis-t-sekrit
}
stream_server "$T_TMP/redis.log" 'Ready to accept connections' redis ||
	{ t_fail "redis-server starts" "$(tail -5 "$T_TMP/redis.log")"; t_done; }
export REDIS_PASSWORD=redis-t-sekrit
rcli() { REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -p "$PORT" "$@"; }

P="$T_TMP/proj"
stream_project "$P" \
	"type: redis_stream
url: redis://127.0.0.1:$PORT
password: env:REDIS_PASSWORD
stream: events
claim_idle: 2s
reclaim_every: 1s" \
	"type: redis_stream
url: redis://127.0.0.1:$PORT
password: env:REDIS_PASSWORD
stream: events-out"
t_ok "sluice check accepts the stream trigger and the emit to a stream" "$SLUICE" check "$P"

# config errors name the place
cp -r "$P" "$T_TMP/bad"
sed -i 's/connector: ledger, consumers/connector: ledger, consumers/; s/connector: events, consumers: 4/connector: ledger, consumers: 4/' "$T_TMP/bad/workflows/ingest.yaml"
out=$("$SLUICE" check "$T_TMP/bad" 2>&1)
t_like "$out" "ingest.yaml:3:[0-9]+: error: connector 'ledger' is of type file, not a stream" \
	"a trigger on a connector that is not a stream is an error at its line"

# the entries, written before and while sluice consumes
for i in $(seq 1 $((N / 2))); do printf 'XADD events * data "{\\"n\\":%d}"\n' "$i"; done | rcli >/dev/null
( for i in $(seq $((N / 2 + 1)) "$N"); do printf 'XADD events * data "{\\"n\\":%d}"\n' "$i"; done | rcli >/dev/null ) &
T_PIDS="$T_PIDS $!"

t0=$(date +%s)
stream_crash_cycle "$P" "$T_TMP/sluice.log" "$N"
t_diag "killed at created/completed:$KILLED_AT; all done after $(($(date +%s) - t0)) s"
db="$P/.sluice/sluice.db"
t_is "$(rcli XLEN events)" "$N" "the stream holds $N entries"
rcli XRANGE events-out - + | grep specversion >"$T_TMP/emitted"
stream_checks "$P" "$N" "$T_TMP/emitted"

# acknowledged after the commit: nothing left pending once all is done
for _ in $(seq 100); do
	pending=$(rcli XINFO GROUPS events | sed -n '/^pending$/{n;p}')
	[ "$pending" = 0 ] && break
	sleep 0.1
done
t_is "$pending" 0 "every entry was acknowledged (XACK after the run was committed)"

stream_health_checks redis_stream

# the killed processes' consumer names leave the group once idle (twice
# claim_idle) with nothing pending
dead() {
	n=0
	for pid in $KILLED_PIDS; do
		n=$((n + $(rcli XINFO CONSUMERS events sluice | grep -c -- "-$pid-ingest-")))
	done
	echo $n
}
for _ in $(seq 100); do [ "$(dead)" = 0 ] && break; sleep 0.1; done
t_is "$(dead)" 0 "the consumer names of the killed processes are removed from the group"

# a redelivery of entries whose runs exist is a duplicate, not a second run:
# rewinding the group by 100 entries delivers them again
id=$(rcli XREVRANGE events + - COUNT 101 | awk 'NR % 3 == 1' | tail -1)
rcli XGROUP SETID events sluice "$id" >/dev/null
for _ in $(seq 100); do
	d2=$(metric_value 'sluice_stream_duplicates_skipped_total{connector="events"}')
	[ "$((${d2:-0} - ${DUPS:-0}))" -ge 100 ] && break
	sleep 0.1
done
t_is "$((${d2:-0} - ${DUPS:-0}))" 100 "entries delivered again after their runs exist count as duplicates skipped"
t_is "$(sqlite3 "$db" "select count(*) from runs")" "$N" "…and start no run"

t_is "$(grep -c 'redis-t-sekrit' "$T_TMP/sluice.log")" 0 "the Redis password never reaches the log"
# a message that can never start a run (it fails the trigger's contract) is
# acknowledged and counted as rejected, and does not hold up the next one
kill -TERM "$SERVE_PID"; wait "$SERVE_PID"
mkdir -p "$P/contracts"
printf '{"$id": "num@1", "type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}\n' \
	>"$P/contracts/num.json"
printf 'connector: strict\ntype: redis_stream\nurl: redis://127.0.0.1:%s\npassword: env:REDIS_PASSWORD\nstream: strict\n' \
	"$PORT" >"$P/connectors/strict.yaml"
printf 'workflow: strict\nversion: 1\ntrigger: { stream: { connector: strict, contract: num@1, consumers: 1 } }\nsteps:\n  - id: a\n    map: .input\n' \
	>"$P/workflows/strict.yaml"
rcli XADD strict '*' data '{"n":"seven"}' >/dev/null
rcli XADD strict '*' data '{"n":7}' >/dev/null
stream_serve "$P" "$T_TMP/sluice.log"
for _ in $(seq 100); do
	[ "$(sqlite3 "$db" "select count(*) from runs where workflow='strict' and status='completed'")" = 1 ] && break
	sleep 0.1
done
t_is "$(sqlite3 "$db" "select count(*) || ' ' || json_extract(min(input),'\$.n') from runs where workflow='strict'")" "1 7" \
	"a message failing the trigger's contract starts no run; the next one does"
for _ in $(seq 30); do
	pending=$(rcli XINFO GROUPS strict | sed -n '/^pending$/{n;p}')
	[ "$pending" = 0 ] && break
	sleep 0.1
done
t_is "$pending" 0 "…and both are acknowledged"
t_like "$(curl -sf "$URL/metrics")" 'sluice_stream_events_rejected_total\{connector="strict",reason="contract"\} 1' \
	"…the rejected one counted with its reason"

stream_stop_checks "$T_TMP/sluice.log"
t_done
