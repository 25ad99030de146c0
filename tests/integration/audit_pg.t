#!/bin/bash
# The audit log on PostgreSQL: `sluice serve` and two `sluice worker`
# processes append to one log at once (run starts through the API, the
# steps' writes, a cancel); the chain comes out as one line (audit verify,
# seq without gaps), GET /v1/audit lists and pages it, the table refuses
# UPDATE, DELETE and TRUNCATE, and a row edited with the triggers disabled
# is named by audit verify.
. "$SLUICE_TOP/tests/lib/tap.sh"
. "$SLUICE_TOP/tests/lib/pg.sh"
pg_need
pg_schema
N=${AUDIT_PG_RUNS:-40}
export HELPDESK_TOKEN=pg-audit-key EMAIL_HOOK_SECRET=pg-audit-hook

out="$T_TMP/sim.out"
"$SLUICE" sim helpdesk --port 0 --api-key "$HELPDESK_TOKEN" >"$out" 2>/dev/null &
T_PIDS="$T_PIDS $!"
for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
TARGET_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out")
P=$(project_copy "$TOP/examples/support-triage")
printf 'workflow: slow\nversion: 1\nsteps:\n  - id: nap\n    wait: 1h\n' >"$P/workflows/slow.yaml"
export SLUICE_AUDIT_PG=$PG_URL
sed -i 's#^store: .*#store: env:SLUICE_AUDIT_PG#' "$P/sluice.yaml"

start_worker() {
	"$SLUICE" worker --workers 2 "$P" >"$T_TMP/worker$1.out" 2>"$T_TMP/worker$1.err" &
	T_PIDS="$T_PIDS $!"
	for _ in $(seq 200); do grep -q 'sluice: worker' "$T_TMP/worker$1.out" 2>/dev/null && return 0; sleep 0.05; done
	echo "worker $1 did not start: $(cat "$T_TMP/worker$1.err")" >&2
	return 1
}
start_worker 1
start_worker 2
start_serve_dir "$P" --workers 1 || t_done
code() { m=$1; p=$2; shift 2; curl -s -o "$T_TMP/body" -w '%{http_code}' -X "$m" "$@" "$URL$p"; }

# ---- three processes appending at once -----------------------------------------
: >"$T_TMP/accepted"
for i in $(seq 1 "$N"); do
	printf '{"message_id":"pga-%05d@example.com","from":"p%d@example.com","to":"support@example.com","subject":"PG %d","text":"b","received_at":"2026-11-23T08:15:00Z"}' \
		"$i" "$i" "$i" >"$T_TMP/body.json"
	c=$(code POST /v1/workflows/support-triage/runs -H 'Content-Type: application/json' --data-binary @"$T_TMP/body.json")
	[ "${c:0:1}" = 2 ] && jq -r .run_id "$T_TMP/body" >>"$T_TMP/accepted"
done
t_is "$(sort -u "$T_TMP/accepted" | wc -l | tr -d ' ')" "$N" "the API accepted $N runs"
t_is "$(code POST /v1/workflows/slow/runs -H 'Content-Type: application/json' -d '{}')" 202 "a slow run starts"
SLOW=$(jq -r .run_id "$T_TMP/body")
t_is "$(code POST "/v1/runs/$SLOW/cancel")" 200 "…and is cancelled"
for _ in $(seq 600); do
	left=$(pg_q "SELECT count(*) FROM runs WHERE status NOT IN ('completed','dead','cancelled','compensated')")
	[ "$left" = 0 ] && break
	sleep 0.1
done
t_is "$(pg_q "SELECT count(*) FROM runs WHERE workflow = 'support-triage' AND status = 'completed'")" "$N" \
	"every run completed"

t_is "$(pg_q "SELECT count(*) FROM audit WHERE action = 'run.start'")" "$((N + 1))" "one run.start per run"
t_is "$(pg_q "SELECT count(*) FROM audit WHERE action = 'run.start' AND run_id IN (SELECT id FROM runs)")" "$((N + 1))" \
	"…each naming the run it created"
t_is "$(pg_q "SELECT count(*) FROM audit WHERE action = 'step.write' AND entry LIKE '%tickets.create%'")" "$N" \
	"one step.write per ticket created (committed with its step)"
total=$(pg_q "SELECT max(seq) FROM audit")
t_is "$(pg_q "SELECT count(*) FROM audit")" "$total" "seq runs 1..$total without a gap"
t_diag "audit entries: $total"

out=$("$SLUICE" audit verify "$P"); rc=$?
t_is "$rc" 0 "audit verify on the PostgreSQL store: exit 0"
t_like "$out" "^audit log intact: $total entries, head $total [0-9a-f]{64}\$" "…one unbroken chain"
t_is "$("$SLUICE" audit verify --store "$PG_URL" >/dev/null; echo $?)" 0 "audit verify --store postgres://..."

# ---- the API ----------------------------------------------------------------------
t_is "$(code GET "/v1/audit?action=run.start&limit=500")" 200 "GET /v1/audit?action=run.start answers 200"
t_is "$(jq -r '.entries | length' "$T_TMP/body")" "$((N + 1))" "…every start"
t_is "$(code GET "/v1/audit?run_id=$SLOW")" 200 "GET /v1/audit?run_id= answers 200"
t_is "$(jq -r '[.entries[].action] | join(",")' "$T_TMP/body")" "run.cancel,run.start" "…the run's entries, newest first"
R1=$(head -1 "$T_TMP/accepted")
t_is "$(code GET "/v1/audit?run_id=$R1&action=step.write")" 200 "GET /v1/audit?run_id=&action=step.write"
t_like "$(jq -r '[.entries[].effect.action] | join(",")' "$T_TMP/body")" 'tickets\.create' "…the steps' writes"
cursor=""; seen=0; ok=1; prev=""
while :; do
	[ "$(code GET "/v1/audit?limit=25${cursor:+&cursor=$cursor}")" = 200 ] || { ok=0; break; }
	seen=$((seen + $(jq -r '.entries | length' "$T_TMP/body")))
	[ "$(jq -r '[range(0; (.entries|length) - 1) as $i | .entries[$i].prev_hash == .entries[$i+1].hash] | all' "$T_TMP/body")" = true ] || ok=0
	[ -z "$prev" ] || [ "$(jq -r '.entries[0].hash' "$T_TMP/body")" = "$prev" ] || ok=0
	prev=$(jq -r '.entries[-1].prev_hash' "$T_TMP/body")
	cursor=$(jq -r '.next_cursor // empty' "$T_TMP/body")
	[ -n "$cursor" ] || break
done
t_is "$ok $seen" "1 $total" "GET /v1/audit pages link up and cover all $total entries once"
t_is "$prev" 0000000000000000000000000000000000000000000000000000000000000000 "…down to the genesis hash"
kill -TERM $T_PIDS 2>/dev/null
wait 2>/dev/null

# ---- append-only, and a tamperer ---------------------------------------------------
head=$("$SLUICE" audit head "$P")
t_like "$head" "^$total [0-9a-f]{64}\$" "audit head: the last seq and hash"
t_like "$(pg_q "UPDATE audit SET action = 'x' WHERE seq = 5")" 'append-only' "UPDATE is refused"
t_like "$(pg_q "DELETE FROM audit WHERE seq = $total")" 'append-only' "DELETE is refused"
t_like "$(pg_q "TRUNCATE audit")" 'append-only' "TRUNCATE is refused"
t_is "$("$SLUICE" audit verify "$P" >/dev/null; echo $?)" 0 "…and the log is intact"
pg_q "ALTER TABLE audit DISABLE TRIGGER USER; UPDATE audit SET entry = replace(entry, '\"run.start\"', '\"run.stop\"'), action = 'run.stop' WHERE seq = 5; ALTER TABLE audit ENABLE TRIGGER USER" >/dev/null
out=$("$SLUICE" audit verify "$P"); rc=$?
t_is "$rc" 1 "a row edited with the triggers disabled: audit verify exit 1"
t_like "$out" 'TAMPERED: first bad seq 5' "…naming the row"
pg_q "ALTER TABLE audit DISABLE TRIGGER USER; DELETE FROM audit WHERE seq >= $((total - 2)); ALTER TABLE audit ENABLE TRIGGER USER" >/dev/null
out=$("$SLUICE" audit verify --head "${head#* }" --store "$PG_URL"); rc=$?
t_is "$rc" 1 "a cut-off tail: verify --head exit 1"
t_done
