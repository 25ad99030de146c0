#!/bin/bash
# Crash test: kill -9 the process running 200 workflows at random moments,
# 20 times, restarting each time. At the end every run has completed, the
# HTTP target applied each idempotency key's effect once, and the audit file
# holds one row per email.
. "$SLUICE_TOP/tests/lib/tap.sh"
RUNS=${CRASH_RUNS:-200}
KILLS=${CRASH_KILLS:-20}
export HELPDESK_TOKEN=crash-token
start_target --require-bearer "$HELPDESK_TOKEN" --state "$T_TMP/effects.jsonl" --latency-ms 40 --fail-rate 0.05 --seed 7
P=$(project_copy "$TOP/examples/support-triage")
project_no_approval "$P"
# Every 10th email is urgent, so its run emits an event that starts a
# second workflow: runs spawned by runs must survive crashes too.
for i in $(seq 1 "$RUNS"); do
	subj="Question $i"
	[ $((i % 10)) -eq 0 ] && subj="URGENT outage $i"
	printf '{"message_id":"crash-%04d@example.com","from":"u%d@example.com","subject":"%s","text":"body %d"}\n' \
		"$i" "$i" "$subj" "$i"
done > "$T_TMP/inputs.jsonl"
URGENT=$((RUNS / 10))
db="$P/.sluice/sluice.db"
completed() { sqlite3 "$db" "select count(*) from runs where status='completed'" 2>/dev/null || echo 0; }
steps_done() { sqlite3 "$db" "select count(*) from steps" 2>/dev/null || echo 0; }

seed=${CRASH_SEED:-$$}
RANDOM=$seed
t_diag "crash seed $seed"
TOTAL=$((RUNS + URGENT))
killed_mid=0
for k in $(seq 1 "$KILLS"); do
	"$SLUICE" run --quiet --batch "$T_TMP/inputs.jsonl" "$P" support-triage 2>>"$T_TMP/sluice.log" &
	pid=$!
	# 30-700 ms: early kills land during start-up and run creation, later
	# ones between and inside steps.
	sleep "0.$(printf '%03d' $((30 + RANDOM % 670)))"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	done_now=$(completed)
	# A kill counts as "under load" when runs were still unfinished.
	[ "$done_now" -lt "$TOTAL" ] && killed_mid=$((killed_mid + 1))
	t_diag "kill $k: $done_now of $TOTAL runs completed, $(steps_done) steps committed"
done
t_is "$([ $killed_mid -ge $((KILLS / 2)) ] && echo yes)" yes "most kills landed while runs were unfinished ($killed_mid/$KILLS)"

# The last start runs everything to the end.
out=$(timeout 300 "$SLUICE" run --batch "$T_TMP/inputs.jsonl" --timeout 240s "$P" support-triage 2>>"$T_TMP/sluice.log"); rc=$?
t_is "$rc" 0 "after the crashes, the batch completes (exit 0)"
t_like "$out" "^$RUNS runs: $RUNS completed" "every one of the $RUNS runs completed"
t_is "$(sqlite3 "$db" "select count(*) from runs where workflow='support-triage'")" "$RUNS" "no run was created twice"
t_is "$(sqlite3 "$db" "select count(*) from runs where workflow='escalate' and status='completed'")" "$URGENT" "every spawned escalate run completed, none doubled"
t_is "$(sqlite3 "$db" "select count(*) from runs where status!='completed'")" 0 "no run is left unfinished"

stats=$(target_stats)
t_diag "target: $stats"
t_is "$(printf '%s' "$stats" | jq -r .effects)" $((RUNS + URGENT)) "the target applied $((RUNS + URGENT)) effects (one per key)"
t_is "$(printf '%s' "$stats" | jq -r .keys_distinct)" $((RUNS + URGENT)) "…with as many distinct idempotency keys"
t_is "$(printf '%s' "$stats" | jq -r .unkeyed)" 0 "every call carried an idempotency key"
dup=$(jq -r .key "$T_TMP/effects.jsonl" | sort | uniq -d | wc -l)
t_is "$dup" 0 "no key's effect was applied twice"
t_is "$(wc -l < "$P/out/audit.jsonl" | tr -d ' ')" "$RUNS" "the audit file has one row per email"
t_is "$(jq -r .message_id "$P/out/audit.jsonl" | sort -u | wc -l | tr -d ' ')" "$RUNS" "…each email once"
t_is "$(grep -c 'assert' "$T_TMP/sluice.log")" 0 "no assertion fired"
t_diag "replays answered by the target (re-run steps after a crash): $(printf '%s' "$stats" | jq -r .replays)"
t_done
