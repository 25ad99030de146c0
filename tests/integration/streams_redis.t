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
PORT=$(free_port)
mkdir -p "$T_TMP/redis"
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T_TMP/redis" \
	--requirepass redis-t-sekrit >"$T_TMP/redis.log" 2>&1 &
T_PIDS="$T_PIDS $!"
wait_port "$PORT" || { t_fail "redis-server starts" "$(tail -5 "$T_TMP/redis.log")"; t_done; }
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
t_is "$(runs_completed "$db")" "$N" "every entry has a completed run"
t_is "$(sqlite3 "$db" "select count(*) from runs")" "$N" "…and only one: no run was created twice"
t_is "$(sqlite3 "$db" "select count(distinct json_extract(input,'\$.n')) from runs where status='completed'")" "$N" \
	"each entry's run carries that entry"
t_is "$(wc -l <"$P/out/ledger.jsonl" | tr -d ' ')" "$N" "the workflow's effect (a file append) happened $N times"
t_is "$(jq -r .n "$P/out/ledger.jsonl" | sort -u | wc -l | tr -d ' ')" "$N" "…once per entry"
t_is "$(rcli XLEN events-out)" "$N" "the emit step published $N events"
rcli XRANGE events-out - + | grep specversion >"$T_TMP/emitted"
t_is "$(jq -r .id "$T_TMP/emitted" | sort -u | wc -l | tr -d ' ')" "$N" "…one per run (distinct CloudEvents ids)"
t_is "$(jq -r .data.n "$T_TMP/emitted" | sort -u | wc -l | tr -d ' ')" "$N" "…one per entry"
t_is "$(jq -r '.specversion + " " + .type + " " + .source' "$T_TMP/emitted" | sort -u)" "1.0 test.recorded sluice/ingest" \
	"the emitted events are CloudEvents 1.0 with the step's type"

# acknowledged after the commit: nothing left pending once all is done
for _ in $(seq 100); do
	pending=$(rcli XINFO GROUPS events | sed -n '/^pending$/{n;p}')
	[ "$pending" = 0 ] && break
	sleep 0.1
done
t_is "$pending" 0 "every entry was acknowledged (XACK after the run was committed)"

conn=$(curl -sf "$URL/v1/connectors")
t_is "$(printf '%s' "$conn" | jq -r '.connectors[] | select(.name=="events") | .type + " " + .state')" \
	"redis_stream healthy" "GET /v1/connectors shows the stream connector healthy"
for _ in $(seq 40); do
	lag=$(curl -sf "$URL/v1/connectors" | jq -r '.connectors[] | select(.name=="events") | .stream.lag')
	[ "$lag" = 0 ] && break
	sleep 0.1
done
t_is "$lag" 0 "…with its consumer lag (0 once all is acknowledged)"
metrics=$(curl -sf "$URL/metrics")
t_like "$metrics" 'sluice_stream_consumer_lag\{connector="events",group=""\} 0' "the lag is a metric"
t_like "$metrics" 'sluice_stream_events_consumed_total\{connector="events"\} [0-9]+' "consumed events are counted"
dups=$(printf '%s' "$metrics" | sed -n 's/^sluice_stream_duplicates_skipped_total{connector="events"} //p')
redel=$(printf '%s' "$metrics" | sed -n 's/^sluice_stream_redeliveries_total{connector="events"} //p')
t_diag "after the last restart: ${redel:-0} redeliveries, ${dups:-0} duplicates skipped"
t_like "${redel:-0}" '^[1-9][0-9]*$' "entries left pending by the killed process were reclaimed (redeliveries counted)"

# a redelivery of entries whose runs exist is a duplicate, not a second run:
# rewinding the group by 100 entries delivers them again
id=$(rcli XREVRANGE events + - COUNT 101 | awk 'NR % 3 == 1' | tail -1)
rcli XGROUP SETID events sluice "$id" >/dev/null
for _ in $(seq 100); do
	d2=$(curl -sf "$URL/metrics" | sed -n 's/^sluice_stream_duplicates_skipped_total{connector="events"} //p')
	[ "$((${d2:-0} - ${dups:-0}))" -ge 100 ] && break
	sleep 0.1
done
t_is "$((${d2:-0} - ${dups:-0}))" 100 "entries delivered again after their runs exist count as duplicates skipped"
t_is "$(sqlite3 "$db" "select count(*) from runs")" "$N" "…and start no run"

t_is "$(grep -c 'redis-t-sekrit' "$T_TMP/sluice.log")" 0 "the Redis password never reaches the log"
t_is "$(grep -c 'assert' "$T_TMP/sluice.log")" 0 "no assertion fired"
t_done
