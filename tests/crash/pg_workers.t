#!/bin/bash
# PostgreSQL crash test: `sluice serve` and two `sluice worker` processes on
# one store (leases of 2 s) while runs are posted; one worker is killed with
# -9 (and restarted), the other is stopped (SIGSTOP) for longer than its
# lease and then resumed (its late commits must be fenced), and every
# database backend of the store is terminated once (pg_terminate_backend:
# what a database restart looks like to a client).
# Every accepted run completes, and the helpdesk simulator applies each
# ticket once (no step's effect doubled); the audit log, appended to by all
# three processes through all that, verifies.
. "$SLUICE_TOP/tests/lib/tap.sh"
. "$SLUICE_TOP/tests/lib/pg.sh"
pg_need
pg_schema
N=${PG_CRASH_RUNS:-300}
export HELPDESK_TOKEN=pg-crash-key EMAIL_HOOK_SECRET=pg-crash-hook

out="$T_TMP/sim.out"
"$SLUICE" sim helpdesk --port 0 --api-key "$HELPDESK_TOKEN" >"$out" 2>/dev/null &
T_PIDS="$T_PIDS $!"
for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
TARGET_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out")
P=$(project_copy "$TOP/examples/support-triage")
export SLUICE_PG_URL=$PG_URL
sed -i 's#^store: .*#store: env:SLUICE_PG_URL#' "$P/sluice.yaml"
echo "lease: 2s" >>"$P/sluice.yaml"

start_worker() {
	"$SLUICE" worker --workers 2 --log-level warn "$P" >"$T_TMP/worker$1.out" 2>>"$T_TMP/worker$1.err" &
	eval "W$1=$!"
	T_PIDS="$T_PIDS $!"
	for _ in $(seq 200); do grep -q 'sluice: worker' "$T_TMP/worker$1.out" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
start_worker 1
start_worker 2
t_auth "$P" || exit 1
"$SLUICE" serve --listen 127.0.0.1:0 --workers 1 --log-level warn "$P" >"$T_TMP/serve.out" 2>"$T_TMP/serve.err" &
SRV=$!
T_PIDS="$T_PIDS $SRV"
for _ in $(seq 200); do grep -q 'serving' "$T_TMP/serve.out" 2>/dev/null && break; sleep 0.05; done
URL=$(sed -n 's/.* on \(http:[^ ]*\).*/\1/p' "$T_TMP/serve.out" | head -1)
if [ -z "$URL" ]; then
	t_fail "sluice serve did not start" "$(cat "$T_TMP/serve.err")"
	t_done
fi

: >"$T_TMP/accepted"
: >"$T_TMP/retries"
# post_one I: posts run I until it is answered 2xx (the same Idempotency-Key
# each time, as a client retrying would).
post_one() {
	printf '{"message_id":"pgc-%05d@example.com","from":"c%d@example.com","to":"support@example.com","subject":"C %d","text":"b","received_at":"2026-11-23T08:15:00Z"}' \
		"$1" "$1" "$1" >"$T_TMP/body.$1.json"
	for _ in $(seq 100); do
		code=$(curl -s -m 5 -o "$T_TMP/resp.$1" -w '%{http_code}' "$URL/v1/workflows/support-triage/runs" \
			-H 'Content-Type: application/json' -H "Idempotency-Key: pgc-$1" --data-binary @"$T_TMP/body.$1.json")
		if [ "${code:0:1}" = 2 ]; then
			jq -r .run_id "$T_TMP/resp.$1" >>"$T_TMP/accepted"
			return
		fi
		echo x >>"$T_TMP/retries"
		sleep 0.05
	done
}
terminated=0
STOPPER=""
# Ten at a time, so the workers have a backlog in hand when hit.
posters=""
for i in $(seq 1 "$N"); do
	post_one "$i" &
	posters="$posters $!"
	[ $((i % 10)) = 0 ] || continue
	# shellcheck disable=SC2086
	wait $posters
	posters=""
	if [ "$i" = $((N / 3 / 10 * 10)) ]; then
		kill -9 "$W1"
		wait "$W1" 2>/dev/null
		start_worker 1
	fi
	if [ "$i" = $((N / 2 / 10 * 10)) ]; then
		kill -STOP "$W2"
		( sleep 5; kill -CONT "$W2" ) &
		STOPPER=$!
	fi
	if [ "$i" = $((2 * N / 3 / 10 * 10)) ]; then
		terminated=$(SLUICE_TEST_PG=$PG_ADMIN_URL pg_sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
			WHERE datname = current_database() AND pid <> pg_backend_pid()")
	fi
done
# shellcheck disable=SC2086
[ -z "$posters" ] || wait $posters
retries=$(wc -l <"$T_TMP/retries" | tr -d ' ')
[ -n "$STOPPER" ] && wait "$STOPPER" 2>/dev/null
t_diag "$N runs posted, $retries retries, $terminated backends terminated"
t_is "$([ "${terminated:-0}" -ge 3 ] && echo yes)" yes "the store's backends were terminated once ($terminated)"
t_is "$(sort -u "$T_TMP/accepted" | wc -l | tr -d ' ')" "$N" "every run was accepted in the end"

for _ in $(seq 900); do
	left=$(pg_q "SELECT count(*) FROM runs WHERE status NOT IN ('completed','dead','cancelled','compensated')")
	[ "$left" = 0 ] && break
	sleep 0.1
done
t_is "$(pg_q "SELECT count(*) FROM runs WHERE workflow = 'support-triage'")" "$N" "one run per accepted request, none doubled"
t_is "$(pg_q "SELECT count(*) FROM runs WHERE workflow = 'support-triage' AND status = 'completed'")" "$N" \
	"every run completed after the kill and the terminated backends"
t_is "$(pg_q "SELECT count(*) FROM audit WHERE action = 'run.start' AND run_id IN (SELECT id FROM runs WHERE workflow = 'support-triage')")" \
	"$N" "one run.start audit entry per run, none lost or doubled"
t_like "$("$SLUICE" audit verify --store "$PG_URL" 2>&1)" '^audit log intact: ' \
	"the audit log is one unbroken chain after the kill, the stop and the terminated backends"
eff=$(curl -s "$TARGET_URL/_sim/effects")
t_diag "simulator: $(printf '%s' "$eff" | jq -c '{effects, replays}')"
t_is "$(printf '%s' "$eff" | jq -r '.by_route["POST /tickets"]')" "$N" "the helpdesk created one ticket per run"
fenced=$(cat "$T_TMP"/worker*.err "$T_TMP/serve.err" | grep -c "lease lost: the step's result was not committed")
t_diag "commits refused for a stale fencing token (logged): $fenced"
kill -TERM "$W1" "$W2" "$SRV" 2>/dev/null
t_done
