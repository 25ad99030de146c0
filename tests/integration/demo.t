#!/bin/bash
# The `make run` demo as a new user meets it: start it, run the curl it
# prints, and find the run in `sluice runs` and the ticket in the helpdesk.
. "$SLUICE_TOP/tests/lib/tap.sh"
if curl -s -o /dev/null "http://127.0.0.1:9101/" 2>/dev/null; then
	echo "1..0 # SKIP port 9101 (the demo's helpdesk) is in use"
	exit 0
fi
port=$((20000 + RANDOM % 20000))
export SLUICE_LISTEN=127.0.0.1:$port
# The demo serves the example in place: keep its store out of the tree.
cp -r "$TOP/examples" "$T_TMP/examples" && rm -rf "$T_TMP/examples/support-triage/.sluice"
mkdir -p "$T_TMP/tools" && cp "$TOP/tools/demo.sh" "$T_TMP/tools/" && ln -s "$SLUICE" "$T_TMP/sluice"
(cd "$T_TMP" && exec tools/demo.sh) >"$T_TMP/demo.out" 2>"$T_TMP/demo.err" &
demo=$!
T_PIDS="$T_PIDS $demo"
for _ in $(seq 300); do grep -q 'Ctrl-C stops' "$T_TMP/demo.out" && break; sleep 0.1; done
out=$(cat "$T_TMP/demo.out")
t_like "$out" "Console: +http://127.0.0.1:$port/" "the demo prints the console URL"
# not exported: the key is in the demo's output on purpose (keep_logs would
# take an exported *TOKEN for a secret that leaked)
admin=$(sed -n 's/^  export SLUICE_TOKEN=\(sk_sluice_[0-9a-f_]*\)$/\1/p' "$T_TMP/demo.out")
t_like "$admin" '^sk_sluice_[0-9a-f]{16}_[0-9a-f]{64}$' "the demo prints an admin API key to export"
t_is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/runs")" 401 "…which the API wants"
t_is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" 200 "the console page answers"
sed -n '/^  curl -s http/,/--data-binary/{p;/--data-binary/q}' "$T_TMP/demo.out" > "$T_TMP/send.sh"
t_like "$(cat "$T_TMP/send.sh")" 'X-Hub-Signature-256' "the printed curl signs the webhook"
resp=$(cd "$T_TMP" && sh send.sh)
t_like "$resp" '"run_id"' "the printed curl is accepted (202 with a run id)"
run=$(printf '%s' "$resp" | jq -r .run_id)
for _ in $(seq 100); do
	st=$(SLUICE_TOKEN=$admin "$SLUICE" runs show "$run" --json --server "http://127.0.0.1:$port" 2>/dev/null | jq -r .status)
	[ "$st" = completed ] && break
	sleep 0.1
done
t_is "$st" completed "the webhook's run completes"
t_like "$(SLUICE_TOKEN=$admin "$SLUICE" runs list --server "http://127.0.0.1:$port" 2>&1)" "$run" "…and shows in sluice runs list"
t_like "$(curl -s -H 'X-Api-Key: demo-token' http://127.0.0.1:9101/tickets)" 'URGENT: outage on checkout' "…and its ticket is in the helpdesk simulator"
doc=$(SLUICE_TOKEN=$admin "$SLUICE" runs show "$run" --json --server "http://127.0.0.1:$port")
t_is "$(printf '%s' "$doc" | jq -r .output.category)" bug "…classified as a bug"
t_is "$(printf '%s' "$doc" | jq -r '[.ai_calls[] | select(.step == "classify") | .model] | join(",")')" "triage-local,gpt-mini" \
	"…by the local classifier, escalated to the model simulator when unsure"
t_like "$(printf '%s' "$doc" | jq -r .output.reply_draft)" "^Hello, thank you" "…with a reply draft from the drafting step"
t_is "$(printf '%s' "$doc" | jq -r '.steps[] | select(.id == "confirm_billing") | .status')" skipped "…and no approval (not billing)"

# The billing approval: the printed curl with the billing email parks the run
sed -n '/A billing email waits/,/--data-binary/p' "$T_TMP/demo.out" | sed -n '/^  curl -s http/,/--data-binary/p' >"$T_TMP/billing.sh"
t_like "$(cat "$T_TMP/billing.sh")" 'email-billing.json' "the demo prints the billing email's curl"
resp=$(cd "$T_TMP" && sh billing.sh)
brun=$(printf '%s' "$resp" | jq -r .run_id)
for _ in $(seq 100); do
	st=$(SLUICE_TOKEN=$admin "$SLUICE" runs show "$brun" --json --server "http://127.0.0.1:$port" 2>/dev/null | jq -r .status)
	[ "$st" = review ] && break
	sleep 0.1
done
t_is "$st" review "a billing email waits for an approval"
t_unlike "$(curl -s -H 'X-Api-Key: demo-token' http://127.0.0.1:9101/tickets)" 'Charged twice' "…before the helpdesk is written to"
list=$(sed -n 's#^  \./sluice approvals list --server \([^ ]*\).*#\1#p' "$T_TMP/demo.out")
t_is "$list" "http://127.0.0.1:$port" "the demo prints how to list approvals"
out=$(SLUICE_TOKEN=$admin "$SLUICE" approvals list --server "$list")
t_like "$out" "apr_[0-9A-Z]+ +approval +pending +support-triage +confirm_billing" "sluice approvals list shows it"
apr=$(printf '%s\n' "$out" | sed -n 's/^\(apr_[0-9A-Z]*\) .*/\1/p' | head -1)
t_like "$(SLUICE_TOKEN=$admin "$SLUICE" approvals show "$apr" --server "$list" | jq -c .proposed)" '"label":"billing"' "…with the evidence (the label)"
t_like "$(grep -c 'sluice approvals approve APPROVAL_ID' "$T_TMP/demo.out")" '^1$' "the demo prints how to approve"
t_ok "sluice approvals approve ID" env SLUICE_TOKEN="$admin" "$SLUICE" approvals approve "$apr" --server "$list"
for _ in $(seq 100); do
	st=$(SLUICE_TOKEN=$admin "$SLUICE" runs show "$brun" --json --server "http://127.0.0.1:$port" 2>/dev/null | jq -r .status)
	[ "$st" = completed ] && break
	sleep 0.1
done
t_is "$st" completed "…and the run completes"
t_like "$(curl -s -H 'X-Api-Key: demo-token' http://127.0.0.1:9101/tickets)" 'Charged twice' "…its ticket in the helpdesk"
t_is "$(SLUICE_TOKEN=$admin "$SLUICE" runs show "$brun" --json --server "http://127.0.0.1:$port" | jq -r .output.category)" billing "…labelled billing"
sed -n '/v1\/chat\/completions/,/jq/p' "$T_TMP/demo.out" | sed 's/ | jq \.$//' > "$T_TMP/chat.sh"
t_like "$(cd "$T_TMP" && SLUICE_TOKEN=$admin sh chat.sh)" '"object":"chat.completion"' "the printed chat gateway curl answers"
t_like "$(curl -s http://127.0.0.1:9201/_sim/calls)" "PII_1" "…masking the address before the model simulator"
t_unlike "$(curl -s http://127.0.0.1:9201/_sim/calls)" "ada@example\\.com" "…which never sees it"
kill -INT $demo 2>/dev/null
wait $demo 2>/dev/null
t_is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" 2>/dev/null)" 000 "Ctrl-C stops the demo"
t_done
