#!/bin/bash
# PostgreSQL: `sluice serve` and two `sluice worker` processes share one
# project's store (store: env:NAME holding a postgres:// URL with a
# password); N runs posted to the API complete exactly once, the helpdesk
# simulator applies each ticket once, and the password is never printed.
. "$SLUICE_TOP/tests/lib/tap.sh"
. "$SLUICE_TOP/tests/lib/pg.sh"
pg_need
pg_schema
N=${PG_RUNS:-200}
export HELPDESK_TOKEN=pg-sim-key EMAIL_HOOK_SECRET=pg-hook-secret

out="$T_TMP/sim.out"
"$SLUICE" sim helpdesk --port 0 --api-key "$HELPDESK_TOKEN" >"$out" 2>/dev/null &
T_PIDS="$T_PIDS $!"
for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
TARGET_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out")
P=$(project_copy "$TOP/examples/support-triage")
# A password in the URL (trust auth ignores it): it must never be printed.
export SLUICE_PG_URL=${PG_URL/:\/\/postgres@/://postgres:pg-t-sekrit@}
sed -i 's#^store: .*#store: env:SLUICE_PG_URL#' "$P/sluice.yaml"

start_worker() {
	"$SLUICE" worker --workers 2 --log-level info "$P" >"$T_TMP/worker$1.out" 2>"$T_TMP/worker$1.err" &
	eval "W$1=$!"
	T_PIDS="$T_PIDS $!"
	for _ in $(seq 200); do grep -q 'sluice: worker' "$T_TMP/worker$1.out" 2>/dev/null && return 0; sleep 0.05; done
	echo "worker $1 did not start: $(cat "$T_TMP/worker$1.err")" >&2
	return 1
}
start_worker 1
t_is "$(cat "$T_TMP/worker1.out")" "sluice: worker $P on postgres" "sluice worker starts on the PostgreSQL store"
start_worker 2
"$SLUICE" serve --listen 127.0.0.1:0 --workers 1 --log-level info "$P" >"$T_TMP/serve.out" 2>"$T_TMP/serve.err" &
SRV=$!
T_PIDS="$T_PIDS $SRV"
for _ in $(seq 200); do grep -q 'serving' "$T_TMP/serve.out" 2>/dev/null && break; sleep 0.05; done
URL=$(sed -n 's/.* on \(http:[^ ]*\).*/\1/p' "$T_TMP/serve.out" | head -1)
t_like "$URL" '^http://127\.0\.0\.1:[0-9]+$' "sluice serve runs beside them on the same store"
[ -n "$URL" ] || t_done
t_is "$(pg_q "SELECT max(version) FROM schema_migrations")" 3 "the schema was migrated once, to version 3"

# Who holds leases while the runs go through (sampled): more than one process.
( while [ ! -e "$T_TMP/stop" ]; do
	pg_q "SELECT DISTINCT split_part(lease_owner, '/', 1) FROM tasks WHERE lease_owner IS NOT NULL" >>"$T_TMP/owners"
	sleep 0.05
done ) &
SAMPLER=$!

: >"$T_TMP/accepted"
for i in $(seq 1 "$N"); do
	printf '{"message_id":"pg-%05d@example.com","from":"p%d@example.com","to":"support@example.com","subject":"PG %d","text":"b","received_at":"2026-11-23T08:15:00Z"}' \
		"$i" "$i" "$i" >"$T_TMP/body.json"
	code=$(curl -s -o "$T_TMP/resp" -w '%{http_code}' "$URL/v1/workflows/support-triage/runs" \
		-H 'Content-Type: application/json' -H "Idempotency-Key: pg-$i" --data-binary @"$T_TMP/body.json")
	[ "${code:0:1}" = 2 ] && jq -r .run_id "$T_TMP/resp" >>"$T_TMP/accepted"
done
t_is "$(sort -u "$T_TMP/accepted" | wc -l | tr -d ' ')" "$N" "the API accepted $N runs"

for _ in $(seq 600); do
	left=$(pg_q "SELECT count(*) FROM runs WHERE status NOT IN ('completed','dead','cancelled','compensated')")
	[ "$left" = 0 ] && break
	sleep 0.1
done
touch "$T_TMP/stop"
wait $SAMPLER 2>/dev/null
t_is "$(pg_q "SELECT count(*) FROM runs WHERE workflow = 'support-triage' AND status = 'completed'")" "$N" \
	"every run completed"
t_is "$(pg_q "SELECT count(*) FROM tasks")" 0 "no task is left"
eff=$(curl -s "$TARGET_URL/_sim/effects")
t_diag "simulator: $(printf '%s' "$eff" | jq -c '{effects, replays}')"
t_is "$(printf '%s' "$eff" | jq -r '.by_route["POST /tickets"]')" "$N" "the helpdesk created one ticket per run"
owners=$(sort -u "$T_TMP/owners" | grep -c .)
t_diag "processes seen holding leases: $owners"
t_is "$([ "$owners" -ge 2 ] && echo yes)" yes "the work was shared by more than one process ($owners)"

kill -TERM "$W1" "$W2" "$SRV"
wait "$W1"; rc1=$?
wait "$W2"; rc2=$?
t_is "$rc1 $rc2" "0 0" "SIGTERM stops the workers cleanly"
t_unlike "$(cat "$T_TMP"/*.out "$T_TMP"/*.err)" "pg-t-sekrit" "the URL's password is never printed"
t_ok "sluice worker --help" "$SLUICE" worker --help
"$SLUICE" worker --store "postgres://u:pg-t-sekrit@127.0.0.1:1/none" "$P" >"$T_TMP/bad.out" 2>"$T_TMP/bad.err"
t_is "$?" 2 "a store that cannot be reached: exit 2"
t_like "$(cat "$T_TMP/bad.err")" 'u:\*\*\*@127\.0\.0\.1:1' "…naming the URL with the password hidden"
t_unlike "$(cat "$T_TMP/bad.err")" "pg-t-sekrit" "…and not the password"
t_done
