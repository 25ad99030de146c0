#!/bin/bash
# trigger {poll}: a sync of the CRM simulator's contacts, three to a page:
# one run per new or changed record (id, version), a run per deletion,
# nothing doubled across passes and restarts, a 429 storm ridden out, the
# sync lag reported; `sluice backfill` replays history without doubling.
. "$SLUICE_TOP/tests/lib/tap.sh"

export CRM_TOKEN=crm-test-key-7c1d
out="$T_TMP/sim.out"
"$SLUICE" sim crm --port 0 --api-key "$CRM_TOKEN" >"$out" 2>"$T_TMP/sim.err" &
T_PIDS="$T_PIDS $!"
for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
SIM=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out" | head -1)
# curl -q: the simulator's own key, not the test's Sluice key (tap.sh's
# curl config, read by plain curl once the server runs, would add that one)
crm() { m=$1; p=$2; shift 2; curl -q -s -X "$m" -H "Authorization: Bearer $CRM_TOKEN" -H 'Content-Type: application/json' "$@" "$SIM$p"; }
ACC=$(crm POST /accounts -d '{"name":"Acme"}' | jq -r .id)
for i in 1 2 3 4 5 6 7; do crm POST /contacts -d "{\"account_id\":\"$ACC\",\"email\":\"c$i@acme.test\"}" >/dev/null; done
N=$(crm GET '/contacts?per_page=100' | jq '.data | length') # its seed data and ours
t_like "$N" '^([7-9]|[1-9][0-9])$' "the CRM simulator holds $N contacts"

P="$T_TMP/proj"
mkdir -p "$P/workflows" "$P/connectors"
printf 'name: sync\nstore: sqlite:.sluice/sluice.db\nworkers: 2\nlog_level: info\n' >"$P/sluice.yaml"
cat >"$P/connectors/crm.yaml" <<EOF
connector: crm
type: http
base_url: $SIM
allow_hosts: [127.0.0.1]
auth: { type: bearer, token: env:CRM_TOKEN }
actions:
  contacts.list:
    effect: read
    method: GET
    path: /contacts
    query: '{updated_since: .since, page: .page, per_page: .per_page, include_deleted: true}'
EOF
cat >"$P/workflows/contacts-sync.yaml" <<'EOF'
workflow: contacts-sync
version: 1
trigger:
  poll: crm.contacts.list
  every: 1s
  sync: { pagination: page, per_page: 3 }
steps:
  - id: seen
    map: '{op: .input.op, id: .input.id, email: .input.record.email, version: .input.version}'
EOF
t_ok "the project checks" "$SLUICE" check "$P"
start_serve_dir "$P"

runs() { curl -s "$URL/v1/runs?workflow=contacts-sync&limit=500" | jq '.runs | length'; }
wait_runs() { for _ in $(seq 300); do [ "$(runs)" -ge "$1" ] && return 0; sleep 0.05; done; return 1; }
inputs() { curl -s "$URL/v1/runs?workflow=contacts-sync&limit=500" | jq -r '.runs[].id' |
	while read -r r; do curl -s "$URL/v1/runs/$r" | jq -c '.input | {op, id, version}'; done; }

PAGES=$(((N + 2) / 3))
wait_runs "$N"
t_is "$(runs)" "$N" "the first sync walks every page ($PAGES of 3) and starts a run per contact"
t_is "$(inputs | jq -s '[.[] | select(.op == "upsert" and .version == 1)] | length')" "$N" "…each an upsert with its id and version"

C1=$(crm GET '/contacts?per_page=100' | jq -r '.data[0].id')
C2=$(crm GET '/contacts?per_page=100' | jq -r '.data[4].id')
C3=$(crm GET '/contacts?per_page=100' | jq -r '.data[6].id')
crm PATCH "/contacts/$C1" -d '{"name":"One"}' >/dev/null
crm PATCH "/contacts/$C2" -d '{"name":"Two"}' >/dev/null
crm DELETE "/contacts/$C3" >/dev/null
wait_runs $((N + 3))
sleep 2.5 # two more passes: nothing more may start
t_is "$(runs)" $((N + 3)) "two changes and a delete start three runs, once"
t_is "$(inputs | jq -s -c "[.[] | select(.id == \"$C1\") | .version] | sort")" "[1,2]" "a changed record runs again with its new version"
t_is "$(inputs | jq -s -r "[.[] | select(.op == \"delete\") | .id] | join(\",\")")" "$C3" "the deletion is a run with op delete"

# a 429 storm: the next 6 requests are refused with Retry-After: 1
crm PATCH "/contacts/$C2" -d '{"name":"Two again"}' >/dev/null
crm POST /_sim/faults -d '{"storm_429": 6}' >/dev/null
wait_runs $((N + 4))
sleep 1.5
t_is "$(runs)" $((N + 4)) "through a 429 storm the change still arrives, once"
t_like "$(crm GET /_sim/effects | jq -r '.rejected."429"')" '^[6-9]|^[1-9][0-9]' "…after the simulator refused requests with 429"
m=$(curl -s "$URL/metrics")
t_like "$m" 'sluice_sync_lag_seconds\{workflow="contacts-sync"\} [0-9.e+-]+' "the sync lag is a gauge"
lag=$(printf '%s\n' "$m" | sed -n 's/^sluice_sync_lag_seconds{workflow="contacts-sync"} //p')
t_ok "…of a few seconds at most ($lag)" awk "BEGIN { exit !($lag < 10) }"
t_like "$m" 'sluice_sync_records_total\{workflow="contacts-sync",op="delete"\} 1' "synced records are counted by op"
t_like "$m" 'sluice_duplicates_skipped_total\{trigger="poll"\} [1-9]' "records seen again are counted as duplicates"
t_is "$(curl -s "$URL/v1/connectors" | jq -r '.connectors[] | select(.name == "crm") | .syncs[0] |
	[.workflow, .action, (.lag_seconds < 10), (.since | test("^20"))] | map(tostring) | join(" ")')" \
	"contacts-sync contacts.list true true" "GET /v1/connectors shows the sync, its lag and position"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null

# backfill: a contact created while nothing ran; the rest is already synced
crm POST /contacts -d "{\"account_id\":\"$ACC\",\"email\":\"c8@acme.test\"}" >/dev/null
"$SLUICE" backfill "$P" contacts-sync --since 2000-01-01 >"$T_TMP/bf.out" 2>"$T_TMP/bf.err"
t_is "$?" 0 "sluice backfill completes"
M=$((N + 1)) PAGES=$(((N + 1) / 3 + 1)) # a short (or empty) page is the last
t_like "$(cat "$T_TMP/bf.err")" "page 1, 3 records: 0 new runs, 3 already synced" "…showing its progress page by page"
t_like "$(cat "$T_TMP/bf.err")" "page $PAGES, $M records: 1 new runs, $N already synced" "…to the last page"
t_like "$(cat "$T_TMP/bf.out")" "$PAGES pages, $M records, 1 runs started, $N already synced" "…and what it did"
t_is "$("$SLUICE" backfill --json "$P" contacts-sync --since 2000-01-01 2>/dev/null | jq -c '[.started, .already_synced]')" \
	"[0,$M]" "a second backfill starts nothing"
t_like "$("$SLUICE" backfill "$P" contacts-sync 2>&1)" "since DATE is required" "--since is required"
rm -f "$T_TMP/serve.out" # or start_serve_dir may read the last server's address
start_serve_dir "$P"
wait_runs $((N + 5))
sleep 2.5
t_is "$(runs)" $((N + 5)) "after the backfill the sync doubles nothing"
t_is "$(curl -s "$URL/v1/runs?workflow=contacts-sync&status=completed&limit=500" | jq '.runs | length')" $((N + 5)) \
	"…and every run completes"

# Link header pages (the ERP simulator): a cursor sync whose `next` is the
# page number of the rel="next" link, read by the action's output
out="$T_TMP/erp.out"
"$SLUICE" sim erp --port 0 >"$out" 2>/dev/null &
T_PIDS="$T_PIDS $!"
for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
ERP=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out" | head -1)
for i in 1 2 3 4; do
	curl -q -s -H 'Content-Type: application/json' "$ERP/invoices" \
		-d "{\"supplier_id\":\"sup_1\",\"number\":\"N-$i\",\"amount\":1$i.5,\"currency\":\"EUR\",\"due_date\":\"2026-12-0$i\"}" >/dev/null
done
NI=$(curl -q -s "$ERP/invoices?per_page=100" | jq length)
{
	printf 'connector: erp\ntype: http\nbase_url: %s\nallow_hosts: [127.0.0.1]\nactions:\n' "$ERP"
	printf '  invoices.list:\n    effect: read\n    method: GET\n    path: /invoices\n'
	printf "    query: '{page: (.cursor // 1), per_page: .per_page}'\n"
	printf "    output: '{data: .body, next: (first((.headers.link // \"\") | capture(\"[?&]page=(?<p>[0-9]+)[^>]*>; *rel=\\\\\"next\\\\\"\").p) // null)}'\n"
} >"$P/connectors/erp.yaml"
printf 'workflow: invoices-sync\nversion: 1\ntrigger:\n  poll: erp.invoices.list\n  every: 1s\n  sync: { pagination: cursor, per_page: 2, next: .next, version: .updated_at }\nsteps:\n  - id: seen\n    map: .input.id\n' \
	>"$P/workflows/invoices-sync.yaml"
t_ok "a Link header sync checks" "$SLUICE" check "$P"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null
rm -f "$T_TMP/serve.out"
start_serve_dir "$P"
iruns() { curl -s "$URL/v1/runs?workflow=invoices-sync&limit=500" | jq '.runs | length'; }
for _ in $(seq 300); do [ "$(iruns)" -ge "$NI" ] && break; sleep 0.05; done
sleep 2
t_is "$(iruns)" "$NI" "Link header pages: each of the ERP's $NI invoices (2 a page) starts one run"
t_done
