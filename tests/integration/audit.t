#!/bin/bash
# sluice audit: the hash-chained audit log with the real binary: what the
# engine records for the example (run starts, writes, ai calls, an emit),
# operator actions through the API (cancel, DLQ replay), GET /v1/audit
# paging and filters, `audit list`, `audit head`, and `audit verify` before
# and after tampering with the database file through sqlite3.
. "$SLUICE_TOP/tests/lib/tap.sh"

export HELPDESK_TOKEN=test-token-5f2a9c
export EMAIL_HOOK_SECRET=whsec-test-3b7e1d
start_target --require-bearer "$HELPDESK_TOKEN" --state "$T_TMP/effects.jsonl"
P=$(project_copy "$TOP/examples/support-triage")
printf 'workflow: dies\nversion: 1\nsteps:\n  - id: boom\n    map: %s\n' "'error(\"boom\")'" >"$P/workflows/dies.yaml"
printf 'workflow: slow\nversion: 1\nsteps:\n  - id: nap\n    wait: 1h\n' >"$P/workflows/slow.yaml"
DB="$P/.sluice/sluice.db"
q() { sqlite3 "$DB" "$1"; }

# ---- what the engine records ------------------------------------------------
"$SLUICE" run "$P" support-triage -i "$P/fixtures/email-1.json" >/dev/null 2>&1
t_is "$?" 0 "the example run completes"
"$SLUICE" run "$P" support-triage -i "$P/fixtures/email-urgent.json" >/dev/null 2>&1
t_is "$?" 0 "the urgent email completes (it emits ticket.urgent)"

t_is "$(q "SELECT COUNT(*) FROM audit WHERE action = 'run.start'")" 3 "three run.start entries (two from the CLI, one from the emit)"
t_is "$(q "SELECT json_extract(entry, '\$.actor.kind') FROM audit WHERE action = 'run.start' AND json_extract(entry, '\$.detail.trigger') = 'cli' LIMIT 1")" user \
	"a CLI start names a user as the actor"
t_is "$(q "SELECT json_extract(entry, '\$.detail.trigger') || ' ' || json_extract(entry, '\$.target.id') FROM audit WHERE json_extract(entry, '\$.detail.trigger') = 'emit'")" \
	"emit escalate" "the emitted run's start names its workflow"
t_is "$(q "SELECT COUNT(*) FROM audit WHERE action = 'run.start' AND run_id IN (SELECT id FROM runs)")" 3 \
	"each run.start names the run it created"
t_is "$(q "SELECT COUNT(*) FROM audit WHERE action = 'ai.call' AND json_extract(entry, '\$.step_id') = 'classify'")" 2 \
	"one ai.call entry per classify step"
t_is "$(q "SELECT COUNT(*) FROM audit WHERE action = 'ai.call' AND json_extract(entry, '\$.step_id') = 'draft'")" 2 \
	"…and per draft step (its model is down here: outcome error)"
t_like "$(q "SELECT entry FROM audit WHERE action = 'ai.call' LIMIT 1")" '"model":"[^"]+".*"prompt_hash":"[0-9a-f]{64}"' \
	"…with the model and the prompt hash"
t_like "$(q "SELECT entry FROM audit WHERE action = 'ai.call' LIMIT 1")" '"cost_micro_usd":[0-9]+' "…and the cost (integer micro-USD)"
t_is "$(q "SELECT COUNT(*) FROM audit WHERE action = 'step.write'")" 5 \
	"one step.write per write call (2 creates, 2 audit appends, 1 escalation comment)"
t_like "$(q "SELECT entry FROM audit WHERE action = 'step.write' AND json_extract(entry, '\$.step_id') = 'create' LIMIT 1")" \
	'"effect":\{"action":"tickets.create".*"idempotency_key":"msg-0001@example.com:create","outcome":"ok","status":201\}' \
	"a write names the connector action, the idempotency key and the outcome"

out=$("$SLUICE" audit verify "$P"); rc=$?
t_is "$rc" 0 "audit verify: exit 0 on an intact log"
t_like "$out" '^audit log intact: 12 entries, head 12 [0-9a-f]{64}$' "…and says so"

# ---- operator actions through the API ------------------------------------------
start_serve_dir "$P"
code() { m=$1; p=$2; shift 2; curl -s -o "$T_TMP/body" -w '%{http_code}' -X "$m" "$@" "$URL$p"; }
t_is "$(code POST /v1/workflows/slow/runs -H 'Content-Type: application/json' -d '{}')" 202 "a slow run starts"
SLOW=$(jq -r .run_id "$T_TMP/body")
t_is "$(code POST "/v1/runs/$SLOW/cancel")" 200 "…and is cancelled"
t_is "$(code POST /v1/workflows/dies/runs -H 'Content-Type: application/json' -d '{}')" 202 "a run that dies starts"
for _ in $(seq 100); do code GET /v1/dlq >/dev/null; [ "$(jq -r '.entries | length' "$T_TMP/body")" -ge 1 ] && break; sleep 0.05; done
DLQ=$(jq -r '.entries[0].id' "$T_TMP/body")
t_like "$DLQ" '^dlq_' "…and lands in the DLQ"
t_is "$(code POST "/v1/dlq/$DLQ/replay")" 202 "…and is replayed"

F="$P/fixtures/email-1.json"
sig=$(openssl dgst -sha256 -hmac "$EMAIL_HOOK_SECRET" <"$F" | sed 's/^.*= //')
t_is "$(code POST /hooks/email -H "X-Hub-Signature-256: sha256=$sig" -H 'X-GitHub-Delivery: d-1' --data-binary @"$F")" 202 \
	"a signed webhook starts a run"
HOOK=$(jq -r .run_id "$T_TMP/body")
for _ in $(seq 200); do code GET "/v1/runs/$HOOK" >/dev/null; [ "$(jq -r .status "$T_TMP/body")" = completed ] && break; sleep 0.05; done
t_is "$(code GET "/v1/audit?run_id=$HOOK&action=run.start")" 200 "GET /v1/audit?run_id=&action= answers 200"
t_is "$(jq -r '.entries[0].actor.kind + ":" + .entries[0].actor.id + " " + .entries[0].detail.trigger' "$T_TMP/body")" \
	"service:webhook:/hooks/email webhook" "…the webhook's start names the webhook as the actor"

t_is "$(code GET '/v1/audit?action=run.cancel')" 200 "GET /v1/audit?action=run.cancel answers 200"
t_is "$(jq -r '.entries | length' "$T_TMP/body")" 1 "…one entry"
t_is "$(jq -r '.entries[0].run_id + " " + .entries[0].actor.kind + ":" + .entries[0].actor.id' "$T_TMP/body")" \
	"$SLOW user:t-admin" "…naming the run and the API caller (its key's principal)"
t_is "$(code GET "/v1/audit?action=dlq.replay")" 200 "GET /v1/audit?action=dlq.replay answers 200"
t_is "$(jq -r '.entries[0].target.id' "$T_TMP/body")" "$DLQ" "…naming the DLQ entry"
t_is "$(code GET "/v1/audit?run_id=$SLOW")" 200 "GET /v1/audit?run_id= answers 200"
t_is "$(jq -r '[.entries[].action] | join(",")' "$T_TMP/body")" "run.cancel,run.start" "…the run's entries, newest first"
t_like "$(jq -r '.entries[0].actor.id' "$T_TMP/body")" 't-admin' "…a start through the API names its caller"

# paging: every entry once, newest first, each linked to the one before
total=$(q "SELECT MAX(seq) FROM audit")
cursor=""; seen=0; pages=0; ok=1; prev=""
while :; do
	t=$(code GET "/v1/audit?limit=4${cursor:+&cursor=$cursor}")
	[ "$t" = 200 ] || { ok=0; break; }
	pages=$((pages + 1))
	seen=$((seen + $(jq -r '.entries | length' "$T_TMP/body")))
	# within a page, each entry's prev_hash is the next (older) entry's hash
	[ "$(jq -r '[range(0; (.entries|length) - 1) as $i | .entries[$i].prev_hash == .entries[$i+1].hash] | all' "$T_TMP/body")" = true ] || ok=0
	[ -z "$prev" ] || [ "$(jq -r '.entries[0].hash' "$T_TMP/body")" = "$prev" ] || ok=0
	prev=$(jq -r '.entries[-1].prev_hash' "$T_TMP/body")
	cursor=$(jq -r '.next_cursor // empty' "$T_TMP/body")
	[ -n "$cursor" ] || break
done
t_is "$ok" 1 "GET /v1/audit pages link up (prev_hash = the older entry's hash)"
t_is "$seen" "$total" "…and cover all $total entries once"
t_is "$pages" "$(( (total + 3) / 4 ))" "…in pages of 4"
t_is "$prev" 0000000000000000000000000000000000000000000000000000000000000000 "…down to the genesis hash"
t_is "$(code GET '/v1/audit?cursor=abc')" 400 "a bad cursor answers 400"
t_is "$(code GET '/v1/audit?limit=0')" 400 "a bad limit answers 400"
t_is "$(code GET '/v1/audit?since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z')" 200 "since/until filter"
t_is "$(jq -r '.entries | length' "$T_TMP/body")" 0 "…nothing in 2020"

out=$("$SLUICE" audit list --server "$URL" --action run.cancel); rc=$?
t_is "$rc" 0 "sluice audit list: exit 0"
t_like "$out" "run\.cancel +user:t-admin +$SLOW" "…a table row for the cancel"
t_is "$("$SLUICE" audit list --server "$URL" --json --limit 1 | jq -r '.entries | length')" 1 "audit list --json --limit 1"
t_like "$("$SLUICE" audit list --server "$URL" --limit 2)" 'more: sluice audit list --cursor [0-9]+' "audit list says how to go on"
t_is "$("$SLUICE" audit list --server http://127.0.0.1:1 >/dev/null 2>&1; echo $?)" 2 "audit list: a server that is not there is exit 2"
kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null

# ---- head, verify, tampering ----------------------------------------------------
head=$("$SLUICE" audit head "$P"); rc=$?
t_is "$rc" 0 "audit head: exit 0"
t_like "$head" '^[0-9]+ [0-9a-f]{64}$' "…prints seq and hash"
N=${head%% *}; H=${head#* }
t_is "$N" "$(q "SELECT MAX(seq) FROM audit")" "…the last seq"
t_is "$("$SLUICE" audit head --json --store "sqlite:$DB" | jq -r .hash)" "$H" "audit head --store --json"
out=$("$SLUICE" audit verify --head "$H" "$P"); rc=$?
t_is "$rc" 0 "audit verify --head: exit 0 while the anchored head is there"
t_like "$out" "anchored head found at seq $N" "…and says where"
cp "$DB" "$T_TMP/pristine.db"

t_like "$(sqlite3 "$DB" "UPDATE audit SET action = 'x' WHERE seq = 1" 2>&1)" 'append-only' \
	"the table refuses an UPDATE while its triggers stand"
untrigger() { sqlite3 "$DB" "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;"; }
restore() { cp "$T_TMP/pristine.db" "$DB"; rm -f "$DB-wal" "$DB-shm"; untrigger; }

restore
W=$(q "SELECT MIN(seq) FROM audit WHERE action = 'step.write'")
q "UPDATE audit SET entry = replace(entry, '\"outcome\":\"ok\"', '\"outcome\":\"error\"') WHERE seq = $W"
out=$("$SLUICE" audit verify "$P"); rc=$?
t_is "$rc" 1 "an edited entry: exit 1"
t_like "$out" "first bad seq $W: .*edited" "…naming its seq"

restore
q "DELETE FROM audit WHERE seq = 5"
out=$("$SLUICE" audit verify "$P"); rc=$?
t_is "$rc" 1 "a deleted entry: exit 1"
t_like "$out" 'first bad seq 5: entry 5 is missing' "…naming seq 5"

restore
q "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -1"
out=$("$SLUICE" audit verify "$P"); rc=$?
t_is "$rc" 1 "two entries swapped: exit 1"
t_like "$out" 'first bad seq 2' "…naming seq 2"

restore
q "UPDATE audit SET seq = -seq WHERE seq >= 6; UPDATE audit SET seq = 1 - seq WHERE seq < 0;
   INSERT INTO audit SELECT 6, at, tenant, action, run_id, entry, prev_hash, hash FROM audit WHERE seq = 5"
out=$("$SLUICE" audit verify "$P"); rc=$?
t_is "$rc" 1 "an inserted entry: exit 1"
t_like "$out" 'first bad seq 6' "…naming seq 6"

restore
q "UPDATE audit SET run_id = 'run_other' WHERE seq = 7"
t_is "$("$SLUICE" audit verify "$P" >/dev/null; echo $?)" 1 "an edited filter column: exit 1"

restore
q "DELETE FROM audit WHERE seq > $((N - 2))"
out=$("$SLUICE" audit verify "$P"); rc=$?
t_is "$rc" 0 "a cut-off tail is a shorter valid chain without the anchor (exit 0)"
out=$("$SLUICE" audit verify --head "$H" "$P"); rc=$?
t_is "$rc" 1 "…and found with --head: exit 1"
t_like "$out" "first bad seq $((N - 1)): .*truncated" "…naming the first missing seq"
out=$("$SLUICE" audit verify --json --head "$H" "$P")
t_is "$(printf '%s' "$out" | jq -r '.intact, .bad_seq' | tr '\n' ' ')" "false $((N - 1)) " "verify --json"

# ---- usage ------------------------------------------------------------------------
t_is "$("$SLUICE" audit verify --head abc "$P" >/dev/null 2>&1; echo $?)" 2 "--head that is not a hash: exit 2"
t_is "$("$SLUICE" audit frobnicate >/dev/null 2>&1; echo $?)" 2 "an unknown subcommand: exit 2"
t_is "$("$SLUICE" audit >/dev/null 2>&1; echo $?)" 2 "no subcommand: exit 2"
t_is "$("$SLUICE" audit verify "$T_TMP/nope" >/dev/null 2>&1; echo $?)" 2 "verify of a folder that is no project: exit 2"
t_like "$("$SLUICE" audit --help)" 'Usage: sluice audit verify' "audit --help"
t_like "$("$SLUICE" --help)" 'audit +verify the hash-chained audit log' "the verb is listed in sluice --help"

t_done
