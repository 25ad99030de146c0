#!/bin/bash
# Kill switches (issue 6): pause a workflow mid-traffic and no step of it
# runs (not even after a server restart while paused); resume and every run
# completes from where it stopped. A webhook to a paused workflow is
# accepted and queued. A paused connector gets no call, a paused provider
# holds the ai steps whose route may call it. Every pause and resume is an
# audit entry; only an admin may pull the switch.
. "$SLUICE_TOP/tests/lib/tap.sh"

export HELPDESK_TOKEN=test-token-77c1e0
export EMAIL_HOOK_SECRET=whsec-test-pause-41d9
start_target --require-bearer "$HELPDESK_TOKEN" --state "$T_TMP/effects.jsonl"
P=$(project_copy "$TOP/examples/support-triage")
project_no_approval "$P"
printf 'workflow: chain\nversion: 1\nsteps:\n  - id: nap\n    wait: 300ms\n  - id: a\n    map: .input\n  - id: b\n    map: .a\n  - id: c\n    map: .b\n' \
	>"$P/workflows/chain.yaml"
start_serve_dir "$P"
DB="$P/.sluice/sluice.db"
q() { sqlite3 "$DB" "$1"; }
attempts() { q "SELECT count(*) FROM attempts a JOIN runs r ON r.id = a.run_id WHERE r.workflow = '$1'"; }
completed() { q "SELECT count(*) FROM runs WHERE workflow = '$1' AND status = 'completed'"; }
sign() { printf 'sha256=%s' "$(openssl dgst -sha256 -hmac "$EMAIL_HOOK_SECRET" <"$1" | sed 's/^.*= //')"; }
hook() { # FILE DELIVERY: prints the run id
	curl -s -H "X-GitHub-Delivery: $2" -H "X-Hub-Signature-256: $(sign "$1")" -H 'Content-Type: application/json' \
		--data-binary @"$1" "$URL/hooks/email" | jq -r .run_id
}
wait_done() { # WORKFLOW N: waits up to 20 s for N completed runs
	for _ in $(seq 200); do [ "$(completed "$1")" -ge "$2" ] && return 0; sleep 0.1; done
	return 1
}
status() { q "SELECT status FROM runs WHERE id = '$1'"; }

# only an admin pulls the switch
VIEWER=$(t_api_key "$P" viewer '*')
OPERATOR=$(t_api_key "$P" operator '*')
t_like "$(SLUICE_TOKEN=$OPERATOR "$SLUICE" pause workflow chain --server "$URL" 2>&1)" "403" "an operator cannot pause"
t_like "$(SLUICE_TOKEN=$VIEWER "$SLUICE" pause list --server "$URL" 2>&1)" "^$" "…a viewer may list the pauses (none)"
t_like "$("$SLUICE" pause workflow nosuch --server "$URL" 2>&1)" "404.*no workflow named 'nosuch'" \
	"pausing a workflow the project does not have is 404"
t_like "$("$SLUICE" resume connector helpdesk --server "$URL" 2>&1)" "404" "resuming what is not paused is 404"

# ---- a workflow, mid-traffic ----
N=40
posters=""
for i in $(seq $N); do
	curl -s -o /dev/null -H 'Content-Type: application/json' -d "{\"i\": $i}" "$URL/v1/workflows/chain/runs" &
	posters="$posters $!"
done
wait $posters
sleep 0.1
t_like "$("$SLUICE" pause workflow chain --server "$URL")" "paused workflow chain" "sluice pause workflow chain"
sleep 0.6 # a step in hand when the switch went finishes; then nothing
a1=$(attempts chain)
c1=$(completed chain)
sleep 1.5
t_is "$(attempts chain)" "$a1" "while paused, no step of the workflow runs ($a1 attempts, $c1 of $N runs done)"
t_like "$c1" "^([0-9]|[1-3][0-9])$" "…runs were caught mid-way (fewer than $N completed)"
t_like "$("$SLUICE" pause list --server "$URL")" "workflow +chain +by user:t-admin" "sluice pause list shows it and who"
t_is "$(q "SELECT count(*) FROM runs WHERE workflow = 'chain' AND status IN ('dead', 'cancelled')")" 0 \
	"…the held runs are not failed, only waiting"
t_is "$("$SLUICE" pause workflow chain --server "$URL")" "paused workflow chain (it already was)" "pausing twice is harmless"

# a webhook to a paused workflow is accepted and queued, not lost
"$SLUICE" pause workflow support-triage --server "$URL" >/dev/null
H1=$(hook "$P/fixtures/email-1.json" pause-1)
t_like "$H1" '^run_' "a webhook to a paused workflow is accepted"
sleep 1
t_is "$(status "$H1")" queued "…and its run waits, queued"
t_is "$(curl -s "$URL/v1/runs/$H1" | jq -r .paused_by)" "workflow:support-triage" "…its run document says what holds it"

# the pauses are durable: a restart keeps holding
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
start_serve_dir "$P"
sleep 1.5
t_is "$(attempts chain)" "$a1" "after a restart while paused, still no step runs"
t_is "$(status "$H1")" queued "…and the webhook's run still waits"

# resume: every run goes on from where it stopped
t_like "$("$SLUICE" resume workflow chain --server "$URL")" "resumed workflow chain" "sluice resume workflow chain"
t_ok "…and all $N runs complete" wait_done chain $N
t_is "$(q "SELECT count(*) FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.workflow = 'chain' AND s.step_id = 'a'")" $N \
	"…each step ran once per run (none repeated, none skipped)"
"$SLUICE" resume workflow support-triage --server "$URL" >/dev/null
t_ok "the queued webhook run completes on resume" wait_done support-triage 1

# ---- a connector: the call waits, nothing reaches the system ----
calls0=$(target_stats | jq -r .effects)
t_like "$("$SLUICE" pause connector helpdesk --server "$URL")" "paused connector helpdesk" "sluice pause connector helpdesk"
sed 's/"message_id": *"[^"]*"/"message_id": "pause-2@example.com"/' "$P/fixtures/email-1.json" >"$T_TMP/email-2.json"
H2=$(hook "$T_TMP/email-2.json" pause-2)
sleep 1.5
# the steps before the call are done (a loaded machine may take longer than the sleep)
for _ in $(seq 100); do
	[ "$(q "SELECT count(*) FROM steps WHERE run_id = '$H2' AND step_id = 'ticket'")" = 1 ] && break
	sleep 0.1
done
t_is "$(target_stats | jq -r .effects)" "$calls0" "while the connector is paused, it gets no call"
t_is "$(q "SELECT group_concat(step_id) FROM (SELECT step_id FROM steps WHERE run_id = '$H2' ORDER BY idx)")" "classify,ticket" \
	"…the steps before the call ran, the call waits"
t_is "$(curl -s "$URL/v1/runs/$H2" | jq -r .paused_by)" "connector:helpdesk" "…held by the connector, says its run"
"$SLUICE" resume connector helpdesk --server "$URL" >/dev/null
t_ok "on resume the run completes" wait_done support-triage 2
t_is "$(target_stats | jq -r .effects)" "$((calls0 + 1))" "…and the call reached the system once"

# ---- a provider: the ai steps whose route may call it wait ----
t_like "$("$SLUICE" pause provider openai --server "$URL")" "paused provider openai" "sluice pause provider openai"
sed 's/"message_id": *"[^"]*"/"message_id": "pause-3@example.com"/' "$P/fixtures/email-1.json" >"$T_TMP/email-3.json"
H3=$(hook "$T_TMP/email-3.json" pause-3)
sleep 1.5
t_is "$(q "SELECT count(*) FROM attempts WHERE run_id = '$H3'")" 0 "while the provider is paused, the classify step does not start"
t_is "$(curl -s -o "$T_TMP/chat.json" -w '%{http_code}' -H 'Content-Type: application/json' \
	-d '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' "$URL/v1/chat/completions") $(jq -r .error.code "$T_TMP/chat.json")" \
	"503 provider_paused" "…and the chat gateway answers 503 for a route that would call it"
t_is "$(curl -s "$URL/v1/runs/$H3" | jq -r .paused_by)" "provider:openai" "…held by the provider, says its run"
"$SLUICE" resume provider openai --server "$URL" >/dev/null
t_ok "on resume the run completes" wait_done support-triage 3
t_is "$(curl -s "$URL/v1/runs/$H3" | jq -r '.paused_by // "none"')" none "…and nothing holds it any more"

# every switch is in the audit log
aud() { curl -s "$URL/v1/audit?action=$1&limit=100" | jq -r '[.entries[] | .target.kind + ":" + .target.id] | sort | join(",")'; }
t_is "$(aud pause)" "connector:helpdesk,provider:openai,workflow:chain,workflow:support-triage" \
	"each pause is an audit entry (a repeated one is not)"
t_is "$(aud resume)" "connector:helpdesk,provider:openai,workflow:chain,workflow:support-triage" "…and each resume"
t_is "$(curl -s "$URL/v1/audit?action=pause&limit=1" | jq -r '.entries[0].actor.id')" t-admin "…naming who pulled it"
t_is "$("$SLUICE" pause list --server "$URL")" "" "nothing is paused at the end"
t_done
