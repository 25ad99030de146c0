# shellcheck shell=bash
# streams.sh: for the stream tests (source after tap.sh). stream_need BIN
# skips the whole file when the server binary is missing, except under
# CI=true, where that fails (as pg_need does). free_port prints a loopback
# port nobody listens on. stream_project makes the test project: a stream
# trigger with TYPE's connector settings, a file connector (exactly-once
# appends, the workflow's effect) and an emit back to a second stream.
# stream_server starts the server under test on a free port.

stream_need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "${CI:-}" = true ]; then
		echo "not ok 1 - CI: $1 is not installed: $(basename "$0") cannot run"
		echo "1..1"
		exit 1
	fi
	echo "1..0 # SKIP $1 is not installed (apt-get install $2)"
	exit 0
}

free_port() {
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}

# stream_server LOG READY START: starts a stream server on a free port,
# START PORT in the background (it should exec the server) writing to LOG,
# until LOG shows READY (grep -E) and the process lives; sets PORT and
# SERVER_PID. free_port only saw the port free: another test may bind it
# before the server does, and then the server exits (bind: Address already
# in use), so that is retried on another port (5 tries). READY, not a
# connect, tells it is ours: the connect may reach the other test's server.
stream_server() {
	for _ in 1 2 3 4 5; do
		PORT=$(free_port) || return 1
		"$3" "$PORT" >"$1" 2>&1 &
		SERVER_PID=$!
		T_PIDS="$T_PIDS $SERVER_PID"
		for _ in $(seq 200); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			grep -Eq -- "$2" "$1" 2>/dev/null && return 0
			sleep 0.05
		done
		kill -9 "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
		cp "$1" "${1%.log}.port$PORT.log" # why, for keep_logs
	done
	return 1
}

# stream_project DIR IN_YAML OUT_YAML: IN_YAML/OUT_YAML are the connector
# bodies (after connector:) of the source and of the emit target.
stream_project() {
	mkdir -p "$1/connectors" "$1/workflows"
	printf 'name: streams\nstore: sqlite:.sluice/sluice.db\nworkers: 2\n' >"$1/sluice.yaml"
	printf 'connector: events\n%s\n' "$2" >"$1/connectors/events.yaml"
	printf 'connector: out\n%s\n' "$3" >"$1/connectors/out.yaml"
	printf 'connector: ledger\ntype: file\npath: out/ledger.jsonl\n' >"$1/connectors/ledger.yaml"
	cat >"$1/workflows/ingest.yaml" <<'YAML'
workflow: ingest
version: 1
trigger: { stream: { connector: events, consumers: 4 } }
steps:
  - id: record
    call: ledger.append
    with: '{n: .input.n}'
  - id: notify
    emit: { stream: out, type: test.recorded, payload: '{n: .input.n}' }
YAML
}

# stream_serve DIR LOG: starts sluice serve on DIR; sets SERVE_PID and URL.
# Every API call needs a key: the first serve makes the test's admin key
# (tap.sh's t_auth), which curl and `sluice connectors` then send.
stream_serve() {
	[ -n "${SLUICE_TOKEN:-}" ] || t_auth "$1" || return 1
	: >"$T_TMP/serve.out"
	"$SLUICE" serve --listen 127.0.0.1:0 "$1" >"$T_TMP/serve.out" 2>>"$2" &
	SERVE_PID=$!
	T_PIDS="$T_PIDS $SERVE_PID"
	for _ in $(seq 200); do
		grep -q 'serving' "$T_TMP/serve.out" 2>/dev/null && break
		kill -0 $SERVE_PID 2>/dev/null || break
		sleep 0.05
	done
	URL=$(sed -n 's/.* on \(http:[^ ]*\).*/\1/p' "$T_TMP/serve.out" | head -1)
	[ -n "$URL" ]
}

# runs_created DB / runs_completed DB (0 before the store exists)
runs_created() { sqlite3 "$1" "select count(*) from runs" 2>/dev/null || echo 0; }
runs_completed() { sqlite3 "$1" "select count(*) from runs where status='completed'" 2>/dev/null || echo 0; }

# stream_crash_cycle DIR LOG N: serves DIR, kill -9 once N/4 and again once
# N/2 runs were created, then serves until N runs completed (120 s at
# most). Sets KILLED_AT (created runs at each kill) and KILLED_PIDS.
stream_crash_cycle() {
	db="$1/.sluice/sluice.db"
	KILLED_AT="" KILLED_PIDS=""
	for at in $(($3 / 4)) $(($3 / 2)); do
		stream_serve "$1" "$2" || return 1
		for _ in $(seq 1200); do [ "$(runs_created "$db")" -ge "$at" ] && break; sleep 0.05; done
		kill -9 "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null
		KILLED_PIDS="$KILLED_PIDS $SERVE_PID"
		KILLED_AT="$KILLED_AT $(runs_created "$db")/$(runs_completed "$db")"
	done
	stream_serve "$1" "$2" || return 1
	for _ in $(seq 2400); do [ "$(runs_completed "$db")" -ge "$3" ] && break; sleep 0.05; done
}

# stream_checks DIR N EMITTED: the checks every stream test makes after
# stream_crash_cycle; EMITTED holds the events the emit step published,
# one JSON document per line, as the test read them back from the stream.
stream_checks() {
	db="$1/.sluice/sluice.db"
	t_is "$(runs_completed "$db")" "$2" "every event has a completed run"
	t_is "$(sqlite3 "$db" "select count(*) from runs")" "$2" "…and only one: no run was created twice"
	t_is "$(sqlite3 "$db" "select count(distinct json_extract(input,'\$.n')) from runs where status='completed'")" \
		"$2" "each event's run carries that event"
	t_is "$(wc -l <"$1/out/ledger.jsonl" | tr -d ' ')" "$2" "the workflow's effect (a file append) happened $2 times"
	t_is "$(jq -r .n "$1/out/ledger.jsonl" | sort -u | wc -l | tr -d ' ')" "$2" "…once per event"
	t_is "$(wc -l <"$3" | tr -d ' ')" "$2" "the emit step published $2 events"
	t_is "$(jq -r .id "$3" | sort -u | wc -l | tr -d ' ')" "$2" "…one per run (distinct CloudEvents ids)"
	t_is "$(jq -r .data.n "$3" | sort -u | wc -l | tr -d ' ')" "$2" "…one per event"
	t_is "$(jq -r '.specversion + " " + .type + " " + .source' "$3" | sort -u)" "1.0 test.recorded sluice/ingest" \
		"the emitted events are CloudEvents 1.0 with the step's type"
}

# stream_health_checks TYPE: the connector `events` in GET /v1/connectors
# and /metrics of the server at URL, once all is acknowledged.
stream_health_checks() {
	t_is "$(curl -sf "$URL/v1/connectors" | jq -r '.connectors[] | select(.name=="events") | .type + " " + .state')" \
		"$1 healthy" "GET /v1/connectors shows the stream connector healthy"
	for _ in $(seq 50); do
		lag=$(curl -sf "$URL/v1/connectors" | jq -r '.connectors[] | select(.name=="events") | .stream.lag')
		[ "$lag" = 0 ] && break
		sleep 0.1
	done
	t_is "$lag" 0 "…with its consumer lag (0 once all is acknowledged)"
	t_like "$("$SLUICE" connectors --server "$URL" 2>&1)" "events +$1 +healthy +[^ ]+ +[0-9]+ +[0-9]+ +0 " \
		"sluice connectors prints the lag"
	metrics=$(curl -sf "$URL/metrics")
	t_like "$metrics" 'sluice_stream_consumer_lag\{connector="events",group=""\} 0' "the lag is a metric"
	t_like "$metrics" 'sluice_stream_events_consumed_total\{connector="events"\} [0-9]+' "consumed events are counted"
	DUPS=$(printf '%s' "$metrics" | sed -n 's/^sluice_stream_duplicates_skipped_total{connector="events"} //p')
	REDEL=$(printf '%s' "$metrics" | sed -n 's/^sluice_stream_redeliveries_total{connector="events"} //p')
	t_diag "after the last restart: ${REDEL:-0} redeliveries, ${DUPS:-0} duplicates skipped"
	# Kafka cannot tell a redelivery; its repeats show up as duplicates.
	t_like "$((${REDEL:-0} + ${DUPS:-0}))" '^[1-9][0-9]*$' \
		"what the killed process left unacknowledged came again (redeliveries and duplicates counted)"
}

# metric_value NAME: the value of one series line (NAME with its labels).
metric_value() {
	curl -sf "$URL/metrics" | grep -F "$1 " | sed 's/.* //' | head -1
}

# stream_stop_checks LOG: stops the server gracefully (consumers leave
# their groups, connections close) and checks the log holds no assertion
# and no sanitizer report (under make asan, leaks too).
stream_stop_checks() {
	kill -TERM "$SERVE_PID"
	wait "$SERVE_PID"
	t_is "$?" 0 "sluice serve stops cleanly on SIGTERM, consumers and all"
	t_is "$(grep -c -E 'assert|Sanitizer|runtime error' "$1")" 0 "no assertion or sanitizer report in the log"
}
