#!/bin/bash
# PostgreSQL scale test (issue 8): one `sluice serve` and four `sluice
# worker` processes on one store run PG_SCALE_RUNS support-triage runs
# (default 5000) against the helpdesk simulator, while
#   - workers are killed with -9 and restarted (three times, four kills),
#   - one worker is stopped (SIGSTOP) for longer than its lease (2 s): it is
#     resumed only once the others have taken over every task it held (up
#     to 90 s), so its late commits must be refused (SL_EFENCED, logged
#     "lease lost"),
#   - every database backend of the store is terminated once
#     (pg_terminate_backend: what a database restart looks like).
# Every run completes, none is doubled, no step committed under a stale
# fencing token (no attempt of a step is recorded twice), and the simulator
# applied each ticket once.
# The chaos is paced by progress (completed runs), not by time, so a slow
# machine sees the same sequence. Runs are posted first (curl --parallel),
# so the workers drain a backlog. PG_SCALE_RUNS (default 5000) and
# PG_SCALE_BUDGET_S (default 170: the chaos loop's bound) are the knobs.
. "$SLUICE_TOP/tests/lib/tap.sh"
. "$SLUICE_TOP/tests/lib/pg.sh"
pg_need
pg_schema
N=${PG_SCALE_RUNS:-5000}
export HELPDESK_TOKEN=pg-scale-key EMAIL_HOOK_SECRET=pg-scale-hook
T0=$(date +%s)

out="$T_TMP/sim.out"
"$SLUICE" sim helpdesk --port 0 --api-key "$HELPDESK_TOKEN" --latency-ms "${PG_SCALE_LATENCY_MS:-30}" --error-rate 0.02 >"$out" 2>/dev/null &
T_PIDS="$T_PIDS $!"
for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
TARGET_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out")
P=$(project_copy "$TOP/examples/support-triage")
project_no_approval "$P"
export SLUICE_PG_URL=$PG_URL
sed -i 's#^store: .*#store: env:SLUICE_PG_URL#' "$P/sluice.yaml"
echo "lease: 2s" >>"$P/sluice.yaml"
# the test's admin key (on the store above): posting runs needs one
t_auth "$P" || { t_fail "no API key" "$(cat "$T_TMP/keys.err")"; t_done; }

# start_worker I: (re)starts worker I, its pid in WI.
start_worker() {
	"$SLUICE" worker --workers 2 --log-level warn "$P" >"$T_TMP/worker$1.out" 2>>"$T_TMP/worker$1.err" &
	eval "W$1=$!"
	T_PIDS="$T_PIDS $!"
	for _ in $(seq 200); do grep -q 'sluice: worker' "$T_TMP/worker$1.out" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
kill_worker() {
	local pid
	pid=$(eval echo "\$W$1")
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	start_worker "$1"
}
"$SLUICE" serve --listen 127.0.0.1:0 --workers 1 --log-level warn "$P" >"$T_TMP/serve.out" 2>"$T_TMP/serve.err" &
SRV=$!
T_PIDS="$T_PIDS $SRV"
for _ in $(seq 200); do grep -q 'serving' "$T_TMP/serve.out" 2>/dev/null && break; sleep 0.05; done
URL=$(sed -n 's/.* on \(http:[^ ]*\).*/\1/p' "$T_TMP/serve.out" | head -1)
if [ -z "$URL" ]; then
	t_fail "sluice serve did not start" "$(cat "$T_TMP/serve.err")"
	t_done
fi

# post_all: posts runs 1..N with curl --parallel (16 at once), each with its
# own Idempotency-Key and the test's API key (curl -q: the key is sent once,
# from this config, not also from t_auth's); whatever was not answered 2xx
# is posted again (as a retrying client would), up to 30 passes. Leaves the
# accepted count in
# $T_TMP/accepted.
post_all() {
	seq 1 "$N" >"$T_TMP/pending"
	: >"$T_TMP/ok"
	for pass in $(seq 30); do
		[ -s "$T_TMP/pending" ] || break
		first=1
		while read -r i; do
			# `next` separates requests (one after the last would be an empty request)
			[ $first = 1 ] || echo next
			first=0
			printf 'url = "%s/v1/workflows/support-triage/runs"\n' "$URL"
			printf 'header = "Content-Type: application/json"\nheader = "Idempotency-Key: scale-%s"\n' "$i"
			printf 'header = "Authorization: Bearer %s"\n' "$SLUICE_TOKEN"
			printf 'data-binary = "{\\"message_id\\":\\"sc-%05d@example.com\\",\\"from\\":\\"c%d@example.com\\",\\"to\\":\\"support@example.com\\",\\"subject\\":\\"S %d\\",\\"text\\":\\"b\\",\\"received_at\\":\\"2026-11-23T08:15:00Z\\"}"\n' "$i" "$i" "$i"
			printf 'output = "/dev/null"\nwrite-out = "%s %%{http_code}\\n"\nmax-time = 10\n' "$i"
		done <"$T_TMP/pending" >"$T_TMP/curl.cfg"
		curl -q -s --parallel --parallel-max 16 -K "$T_TMP/curl.cfg" >"$T_TMP/codes.log" 2>/dev/null || true
		awk '$2 ~ /^2/ {print $1}' "$T_TMP/codes.log" >>"$T_TMP/ok"
		sort -n -u "$T_TMP/ok" -o "$T_TMP/ok"
		comm -23 <(seq 1 "$N" | sort) <(sort "$T_TMP/ok") | sort -n >"$T_TMP/pending"
		[ -s "$T_TMP/pending" ] && echo "pass $pass: $(wc -l <"$T_TMP/pending") to post again" >>"$T_TMP/post.out"
		[ -s "$T_TMP/pending" ] && sleep 0.5
	done
	wc -l <"$T_TMP/ok" | tr -d ' ' >"$T_TMP/accepted"
}
# All runs are posted first (the server's own worker thread starts on
# them), so the four workers start on a backlog: they hold leases all
# along, and the chaos below hits them busy.
post_all
t_diag "posted $N runs in $(($(date +%s) - T0))s; $(cat "$T_TMP/post.out" 2>/dev/null | tr '\n' ';')"
for i in 1 2 3 4; do start_worker "$i"; done

# stop_worker2 (in the background): stops worker 2 holding leases and
# resumes it once every task it held was claimed by another worker (its
# fences moved on; the expired tasks queue behind the backlog, so that can
# take a while), so its commits in hand are late. Writes "HELD TAKEN".
stop_worker2() {
	kill -STOP "$W2"
	pg_q "SELECT run_id || ' ' || fence FROM tasks WHERE lease_owner LIKE '%:$W2/%'" >"$T_TMP/w2.held"
	local held left=0 vals
	held=$(grep -c . "$T_TMP/w2.held")
	if [ "$held" -gt 0 ]; then
		vals=$(awk '{printf "%s(\x27%s\x27, %s)", (NR > 1 ? ", " : ""), $1, $2}' "$T_TMP/w2.held")
		for _ in $(seq 300); do
			sleep 0.3
			left=$(pg_q "SELECT count(*) FROM tasks t JOIN (VALUES $vals) h(r, f) ON t.run_id = h.r AND t.fence = h.f")
			[ "$left" = 0 ] && break
		done
	fi
	kill -CONT "$W2"
	echo "$held $((held - left))" >"$T_TMP/w2.result"
}
done_runs() { pg_q "SELECT count(*) FROM runs WHERE workflow = 'support-triage' AND status = 'completed'"; }
terminated=0 stage=0 STOPPER=""
limit=$((T0 + ${PG_SCALE_BUDGET_S:-170}))
while [ "$(date +%s)" -lt "$limit" ]; do
	n=$(done_runs)
	case $n in *[!0-9]* | '') n=0 ;; esac
	[ "$n" -ge "$N" ] && break
	if [ $stage = 0 ] && [ "$n" -ge $((N * 15 / 100)) ]; then
		stage=1
		kill_worker 1
	elif [ $stage = 1 ] && [ "$n" -ge $((N * 25 / 100)) ]; then
		stage=2
		stop_worker2 &
		STOPPER=$!
	elif [ $stage = 2 ] && [ "$n" -ge $((N * 40 / 100)) ]; then
		stage=3
		kill_worker 3
	elif [ $stage = 3 ] && [ "$n" -ge $((N * 55 / 100)) ]; then
		stage=4
		terminated=$(SLUICE_TEST_PG=$PG_ADMIN_URL pg_sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
			WHERE datname = current_database() AND pid <> pg_backend_pid()")
	elif [ $stage = 4 ] && [ "$n" -ge $((N * 70 / 100)) ]; then
		stage=5
		kill_worker 4
		kill_worker 1
	fi
	sleep 0.3
done
[ -n "$STOPPER" ] && wait "$STOPPER"
read -r held taken <"$T_TMP/w2.result" 2>/dev/null || { held=0; taken=0; }
for _ in $(seq 300); do
	left=$(pg_q "SELECT count(*) FROM runs WHERE status NOT IN ('completed','dead','cancelled','compensated')")
	[ "$left" = 0 ] && break
	[ "$(date +%s)" -ge $((limit + 30)) ] && break
	sleep 0.2
done
secs=$(($(date +%s) - T0))
t_diag "$N runs in ${secs}s"
t_is "$stage" 5 "every stage of the chaos ran (kills, SIGSTOP, terminated backends, kills)"
t_is "$([ "${terminated:-0}" -ge 3 ] && echo yes)" yes "the store's backends were terminated once ($terminated)"
t_is "$(cat "$T_TMP/accepted")" "$N" "every run was accepted in the end"
t_is "$(pg_q "SELECT count(*) FROM runs WHERE workflow = 'support-triage'")" "$N" "one run per accepted request, none doubled"
t_is "$(pg_q "SELECT count(*) FROM runs WHERE workflow = 'support-triage' AND status = 'completed'")" "$N" \
	"every run completed through the kills, the stop and the terminated backends"
t_is "$(pg_q "SELECT count(*) FROM (SELECT run_id, step_id, attempt FROM attempts GROUP BY 1, 2, 3 HAVING count(*) > 1) d")" 0 \
	"no step's attempt was committed twice (no commit under a stale fencing token)"
eff=$(curl -s "$TARGET_URL/_sim/effects")
t_diag "simulator: $(printf '%s' "$eff" | jq -c '{effects, replays}')"
t_is "$(printf '%s' "$eff" | jq -r '.by_route["POST /tickets"]')" "$N" "the helpdesk created one ticket per run"
fenced=$(grep -c "lease lost: the step's result was not committed" "$T_TMP/worker2.err")
all_fenced=$(cat "$T_TMP"/worker*.err "$T_TMP/serve.err" | grep -c "lease lost: the step's result was not committed")
t_diag "worker 2 held $held leases when stopped, $taken were taken over; commits refused for a stale fence: $fenced by worker 2, $all_fenced in all"
if [ "$taken" -gt 0 ]; then
	t_is "$([ "$fenced" -ge 1 ] && echo yes)" yes "the stopped worker's late commits were refused (SL_EFENCED)"
else
	t_pass "worker 2 held no lease when stopped: nothing of it to refuse"
fi
kill -TERM "$W1" "$W2" "$W3" "$W4" "$SRV" 2>/dev/null
t_done
