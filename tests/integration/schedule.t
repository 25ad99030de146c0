#!/bin/bash
# trigger {schedule}: with a fake clock (SLUICE_FAKE_CLOCK, test-only), a
# slot fires once; a restart does not double it, even when the stored last
# slot is lost (the idempotency key holds); after a downtime catch_up none,
# one and all do what they say; a slot skipped by a DST jump still fires;
# on PostgreSQL two processes fire each slot once.
. "$SLUICE_TOP/tests/lib/tap.sh"

P="$T_TMP/proj"
mkdir -p "$P/workflows"
printf 'name: sched\nstore: sqlite:.sluice/sluice.db\nworkers: 1\nlog_level: info\n' >"$P/sluice.yaml"
for c in none one all; do
	cat >"$P/workflows/tick-$c.yaml" <<EOF
workflow: tick-$c
version: 1
trigger: { schedule: "*/5 * * * *", timezone: Europe/Paris, catch_up: $c }
steps:
  - id: at
    map: '{slot: .input.slot, missed: .input.missed}'
EOF
done
cat >"$P/workflows/nightly.yaml" <<'EOF'
workflow: nightly
version: 1
trigger: { schedule: "30 2 * * *", timezone: Europe/Paris }
steps:
  - id: at
    map: '.input.slot'
EOF
t_ok "the project checks" "$SLUICE" check "$P"

# serve_at TIME: serves $P with the wall clock starting at TIME.
serve_at() {
	# start_serve_dir greps serve.out for "serving": the last server's line
	# must be gone before the new one starts, or its URL is taken
	rm -f "$T_TMP/serve.out"
	SLUICE_FAKE_CLOCK=$1 start_serve_dir "$P"
}
stop() { kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null; }
# runs WORKFLOW: how many runs it has
runs() { curl -s "$URL/v1/runs?workflow=$1&limit=500" | jq '.runs | length'; }
# wait_runs WORKFLOW N: until it has N runs (at most ~20 s)
wait_runs() { for _ in $(seq 400); do [ "$(runs "$1")" -ge "$2" ] && return 0; sleep 0.05; done; return 1; }
slots() { curl -s "$URL/v1/runs?workflow=$1&limit=500" | jq -r '[.runs[].id] | .[]' |
	while read -r id; do curl -s "$URL/v1/runs/$id" | jq -r .input.slot; done | sort | tr '\n' ' '; }

# 1. On time. DST starts in Paris on 2026-03-29 at 01:00Z (02:00 -> 03:00):
# nightly's 02:30 does not exist that day and fires at 03:30 (01:30Z).
serve_at 2026-03-29T01:29:57Z
wait_runs tick-one 1
wait_runs nightly 1
for c in none one all; do t_is "$(runs tick-$c)" 1 "catch_up $c: the 01:30 slot fires once, on time"; done
t_is "$(slots tick-one)" "2026-03-29T01:30:00.000Z " "…with the slot as input"
t_is "$(slots nightly)" "2026-03-29T01:30:00.000Z " "a daily 02:30 Paris slot skipped by DST fires at 03:30 (01:30Z)"
t_is "$(curl -s "$URL/v1/workflows" | jq -r '.workflows[] | select(.name == "tick-all") | .trigger |
	[.kind, .schedule, .timezone, .catch_up] | join(" ")')" "schedule */5 * * * * Europe/Paris all" \
	"GET /v1/workflows shows the schedule"
t_like "$(curl -s "$URL/metrics")" 'sluice_schedule_fires_total\{workflow="tick-one"\} 1' "fires are counted"
stop

# 2. A restart at the same time does not fire the slot again; nor does one
# that lost the stored last slot (the run's idempotency key holds).
serve_at 2026-03-29T01:29:57Z
sleep 4
t_is "$(runs tick-one)" 1 "a restart does not double the slot"
stop
sqlite3 "$P/.sluice/sluice.db" "DELETE FROM trigger_state WHERE name = 'schedule:tick-all'"
serve_at 2026-03-29T01:29:57Z
sleep 4
t_is "$(runs tick-all)" 1 "…nor a restart that lost the last slot"
t_like "$(curl -s "$URL/metrics")" 'sluice_duplicates_skipped_total\{trigger="schedule"\} 1' "…counted as a duplicate"
stop

# 3. Down from 01:30Z to 03:04:58Z: the 18 slots 01:35..03:00 were missed;
# 03:05 comes on time.
serve_at 2026-03-29T03:04:58Z
wait_runs tick-all 20
wait_runs tick-one 3
wait_runs tick-none 2
t_is "$(runs tick-none)" 2 "catch_up none: no missed slot fires, the next on-time one does"
t_is "$(runs tick-one)" 3 "catch_up one: the latest missed slot fires once, then the on-time one"
t_like "$(slots tick-one)" "2026-03-29T03:00:00.000Z 2026-03-29T03:05:00.000Z" "…03:00 and 03:05"
t_is "$(runs tick-all)" 20 "catch_up all: every missed slot fires, then the on-time one"
m=$(curl -s "$URL/metrics")
t_like "$m" 'sluice_schedule_misses_total\{workflow="tick-none"\} 18' "misses are counted (none: 18)"
t_like "$m" 'sluice_schedule_misses_total\{workflow="tick-one"\} 17' "…(one: 17)"
t_unlike "$m" 'sluice_schedule_misses_total\{workflow="tick-all"\}' "…(all: none)"
id=$(curl -s "$URL/v1/runs?workflow=tick-one&limit=500" | jq -r '.runs[].id' | while read -r r; do
	[ "$(curl -s "$URL/v1/runs/$r" | jq -r .input.slot)" = 2026-03-29T03:00:00.000Z ] && echo "$r"; done)
t_is "$(curl -s "$URL/v1/runs/$id" | jq -r .input.missed)" 17 "the catch-up run says how many slots it stands for"
stop

# 4. PostgreSQL: a serve and a worker on one store fire each slot once.
if [ -n "${SLUICE_TEST_PG:-}" ]; then
	. "$SLUICE_TOP/tests/lib/pg.sh"
	pg_schema
	export SCHED_PG_URL=$PG_URL
	sed -i 's#^store: .*#store: env:SCHED_PG_URL#' "$P/sluice.yaml"
	t_auth "$P" # the admin key made so far lives in the SQLite store
	SLUICE_FAKE_CLOCK=2026-06-01T09:59:57Z "$SLUICE" worker "$P" >"$T_TMP/worker.out" 2>"$T_TMP/worker.err" &
	T_PIDS="$T_PIDS $!"
	WPID=$!
	serve_at 2026-06-01T09:59:57Z
	wait_runs tick-all 1
	sleep 2
	for c in none one all; do t_is "$(runs tick-$c)" 1 "PostgreSQL, two processes: tick-$c fires the 10:00 slot once"; done
	t_is "$(pg_q "SELECT count(*) FROM idempotency WHERE scope = 'schedule'" | tr -d ' ')" 3 \
		"…one idempotency record per slot"
	t_is "$(grep -l 'this process runs the schedules' "$T_TMP/worker.err" "$T_TMP/serve.err" | wc -l)" 1 \
		"…and one process holds the scheduler singleton"
	kill "$WPID"
	stop
fi
t_done
