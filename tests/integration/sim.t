#!/bin/bash
# sluice sim: the vendor simulators as a real process, and the example
# workflow run against the helpdesk simulator (auth, idempotency, faults).
. "$SLUICE_TOP/tests/lib/tap.sh"
export HELPDESK_TOKEN=sim-key-7c1e

# start_sim KIND ARGS...: sets SIM_URL and SIM_PID.
start_sim() {
	kind=$1; shift
	out="$T_TMP/sim.$kind.$RANDOM"
	"$SLUICE" sim "$kind" --port 0 "$@" >"$out" 2>"$out.err" &
	SIM_PID=$!
	T_PIDS="$T_PIDS $SIM_PID"
	for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
	SIM_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out" | head -1)
}

start_sim helpdesk --api-key "$HELPDESK_TOKEN"
t_like "$SIM_URL" '^http://127\.0\.0\.1:[0-9]+$' "sim helpdesk prints where it listens"
t_is "$(curl -s -o /dev/null -w '%{http_code}' "$SIM_URL/tickets")" 401 "no key: 401"
t_is "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $HELPDESK_TOKEN" "$SIM_URL/tickets")" 200 "with the key: 200"
t_like "$(curl -s -H "X-Api-Key: $HELPDESK_TOKEN" "$SIM_URL/tickets?limit=2")" '"next_cursor"' "tickets list pages with a cursor"

TARGET_URL=$SIM_URL
P=$(project_copy "$TOP/examples/support-triage")
out=$("$SLUICE" run --json "$P" support-triage -i "$P/fixtures/email-urgent.json" 2>/dev/null); rc=$?
t_is "$rc" 0 "the example completes against the helpdesk simulator"
tid=$(printf '%s' "$out" | jq -r .output.ticket_id)
t_like "$tid" '^tkt_' "…creating a ticket ($tid)"
t_is "$(curl -s -H "X-Api-Key: $HELPDESK_TOKEN" "$SIM_URL/tickets/$tid" | jq -r '.comments | length')" 1 "…and the escalate run commented on it"
eff=$(curl -s "$SIM_URL/_sim/effects" | jq -r .effects)
"$SLUICE" run --quiet "$P" support-triage -i "$P/fixtures/email-urgent.json" 2>/dev/null
t_is "$(curl -s "$SIM_URL/_sim/effects" | jq -r .effects)" "$eff" "the same email again applies no new effect"
t_like "$(curl -s "$SIM_URL/_sim/effects" | jq -r .replays)" '^[1-9]' "…the simulator answered replays"

# Faults by admin endpoint: every write fails with a 5xx until they clear.
curl -s -X POST -d '{"error_rate": 1.0}' "$SIM_URL/_sim/faults" >/dev/null
sed -i 's/max_attempts: 5/max_attempts: 2/' "$P/workflows/support-triage.yaml"
sed -i 's/^version: 1$/version: 2/' "$P/workflows/support-triage.yaml"
out=$("$SLUICE" run --json "$P" support-triage -i "$P/fixtures/email-1.json" 2>/dev/null); rc=$?
t_is "$(printf '%s' "$out" | jq -r .status)" dead "with error_rate 1.0 the run goes dead"
t_is "$(printf '%s' "$out" | jq -r .error.class)" transient "…as transient"
curl -s -X POST -d '{"error_rate": 0}' "$SIM_URL/_sim/faults" >/dev/null

start_sim crm
t_like "$(curl -s "$SIM_URL/accounts?page=1&per_page=1")" '"total"' "sim crm pages by number"
start_sim erp
t_like "$(curl -s -D - -o /dev/null "$SIM_URL/invoices?per_page=1")" 'rel="next"' "sim erp pages with a Link header"
t_is "$("$SLUICE" sim nope >/dev/null 2>&1; echo $?)" 2 "an unknown simulator is a usage error"
t_done
