#!/bin/bash
# sluice run: the example end to end against a local HTTP target.
. "$SLUICE_TOP/tests/lib/tap.sh"
export HELPDESK_TOKEN=test-token-5f2a9c
start_target --require-bearer "$HELPDESK_TOKEN" --state "$T_TMP/effects.jsonl"
P=$(project_copy "$TOP/examples/support-triage")

out=$("$SLUICE" run "$P" support-triage -i "$P/fixtures/email-1.json" 2>"$T_TMP/err1"); rc=$?
t_is "$rc" 0 "the example run completes (exit 0)"
t_like "$out" 'completed' "the run is reported completed"
t_like "$out" 'ticket +completed +1 ' "step ticket: completed, 1 attempt"
t_like "$out" 'create +completed +1 ' "step create: completed, 1 attempt"
t_like "$out" 'notify +skipped' "step notify: skipped (when false)"
t_like "$out" 'audit +completed' "step audit: completed"
t_like "$out" '"ticket_id": "tkt_' "the output carries the new ticket id"
t_is "$(target_stats | jq -r .effects)" 1 "the target saw one effect"
t_is "$(wc -l < "$P/out/audit.jsonl" | tr -d ' ')" 1 "one audit row"
t_unlike "$(cat "$T_TMP/err1")$out" "$HELPDESK_TOKEN" "the token never appears in the output"

# The same input again: the idempotency key of the create step is derived
# from the message id, so the target applies nothing new.
out=$("$SLUICE" run "$P" support-triage -i "$P/fixtures/email-1.json" 2>/dev/null); rc=$?
t_is "$rc" 0 "a second run of the same email completes"
t_is "$(target_stats | jq -r .effects)" 1 "…and the target still saw one effect"
t_is "$(target_stats | jq -r .replays)" 1 "…the repeat was answered as a replay"
t_is "$(wc -l < "$P/out/audit.jsonl" | tr -d ' ')" 1 "…and the audit file holds one row"

# --idempotency-key: the same key returns the first run.
a=$("$SLUICE" run --json --idempotency-key k1 "$P" support-triage -i "$P/fixtures/email-1.json" 2>/dev/null | jq -r .id)
b=$("$SLUICE" run --json --idempotency-key k1 "$P" support-triage -i "$P/fixtures/email-1.json" 2>/dev/null | jq -r .id)
t_is "$b" "$a" "--idempotency-key returns the same run"

# An urgent email emits ticket.urgent, which starts the escalate workflow.
out=$("$SLUICE" run --json "$P" support-triage -i "$P/fixtures/email-urgent.json" 2>/dev/null); rc=$?
t_is "$rc" 0 "the urgent email completes"
t_is "$(printf '%s' "$out" | jq -r '.steps[] | select(.id=="notify") | .status')" completed "notify emitted"
t_is "$(printf '%s' "$out" | jq -r '.output.priority')" high "the output says high priority"
t_is "$(target_stats | jq -r .effects)" 3 "create + the escalation comment reached the target"
t_like "$(cat "$T_TMP/effects.jsonl")" '/comments' "the comment was posted by the escalate run"

# A bad input is refused by the contract, naming the failing pointers.
out=$("$SLUICE" run "$P" support-triage -i "$P/fixtures/email-bad.json" 2>&1); rc=$?
t_is "$rc" 1 "a bad input exits 1"
t_like "$out" 'contract' "…as a contract error"
t_like "$out" '/from' "…naming /from"

# A flaky target: two 503s then success; the step is retried with backoff.
kill $TARGET_PID
start_target --require-bearer "$HELPDESK_TOKEN" --status-sequence 503,503
P2=$(project_copy "$TOP/examples/support-triage")
out=$("$SLUICE" run --json "$P2" support-triage -i "$P2/fixtures/email-1.json" 2>/dev/null); rc=$?
t_is "$rc" 0 "a run against a flaky target completes"
t_is "$(printf '%s' "$out" | jq -r '.steps[] | select(.id=="create") | .attempts')" 3 "create took 3 attempts"

# A target that is down: retries run out and the run goes to the DLQ.
kill $TARGET_PID
sed -i 's/max_attempts: 5/max_attempts: 2/' "$P2/workflows/support-triage.yaml"
sed -i 's/^version: 1$/version: 2/' "$P2/workflows/support-triage.yaml"
out=$("$SLUICE" run --json "$P2" support-triage -i "$P2/fixtures/email-urgent.json" 2>/dev/null); rc=$?
t_is "$rc" 1 "a run against a dead target exits 1"
t_is "$(printf '%s' "$out" | jq -r .status)" dead "the run is dead"
t_is "$(printf '%s' "$out" | jq -r .error.class)" transient "its error class is transient"
t_is "$(printf '%s' "$out" | jq -r .version)" 2 "it ran on version 2"
dlq=$(sqlite3 "$P2/.sluice/sluice.db" "select count(*) from dlq where step_id='create'")
t_is "$dlq" 1 "a DLQ entry was written for step create"

# Wrong token: auth class, no retry.
start_target --require-bearer "other-token"
P3=$(project_copy "$TOP/examples/support-triage")
out=$("$SLUICE" run --json "$P3" support-triage -i "$P3/fixtures/email-1.json" 2>/dev/null); rc=$?
t_is "$(printf '%s' "$out" | jq -r .error.class)" auth "a 401 is the auth class"
t_is "$(printf '%s' "$out" | jq -r '.steps[] | select(.id=="create") | .attempts')" 1 "auth errors are not retried"
t_unlike "$out" "$HELPDESK_TOKEN" "the token is not in the run's error"
t_done
