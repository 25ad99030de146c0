#!/bin/sh
# `make run`: the demo. Serves examples/support-triage on its embedded SQLite
# store with a helpdesk simulator on 127.0.0.1:9101 and a model API
# simulator (OpenAI's wire format) on 127.0.0.1:9201, prints the console URL
# and a curl command that posts a signed email webhook. The API wants a key:
# the demo makes an admin key on first start (sluice keys create, on the
# store directly) and keeps it beside its store, in .sluice/demo-admin.key,
# so every start prints the same one. Ctrl-C stops it.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
ex="$top/examples/support-triage"
rel=examples/support-triage
listen=${SLUICE_LISTEN:-127.0.0.1:8080}
export HELPDESK_TOKEN=${HELPDESK_TOKEN:-demo-token}
export EMAIL_HOOK_SECRET=${EMAIL_HOOK_SECRET:-demo-hook-secret}
export OPENAI_API_KEY=${OPENAI_API_KEY:-demo-openai-key}

"$top/sluice" check "$ex"
keyfile="$ex/.sluice/demo-admin.key"
if [ ! -s "$keyfile" ]; then
	mkdir -p "$ex/.sluice"
	(umask 077 && "$top/sluice" keys create --principal demo-admin --role admin --tenant '*' \
		--name "make run" "$ex" >"$keyfile" 2>/dev/null)
fi
admin_key=$(cat "$keyfile")
"$top/sluice" sim model --port 9201 --api-key env:OPENAI_API_KEY --rules "$ex/fixtures/model-rules.json" \
	--log-level warn >/dev/null &
model_sim=$!
"$top/sluice" serve --listen "$listen" --sim helpdesk:9101 --sim-key env:HELPDESK_TOKEN \
	--log-level warn "$ex" &
server=$!
trap 'kill $server $model_sim 2>/dev/null; wait $server $model_sim 2>/dev/null' EXIT INT TERM
i=0
until curl -sf "http://$listen/healthz" >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 $server 2>/dev/null; then
		echo "make run: the server did not start (is $listen, 9101 or 9201 in use? SLUICE_LISTEN=host:port picks another)" >&2
		exit 1
	fi
	sleep 0.1
done
cat <<MSG

  Console:   http://$listen/
  API:       http://$listen/v1/openapi.json
  Helpdesk:  http://127.0.0.1:9101 (simulator; key: $HELPDESK_TOKEN)
  Models:    http://127.0.0.1:9201/v1 (OpenAI-format simulator; GET /_sim/calls shows what it was sent)

The API wants a key (webhooks are signed instead). The demo's admin key:

  export SLUICE_TOKEN=$admin_key

Send a signed email webhook (from the repository folder, in another terminal):

  curl -s http://$listen/hooks/email -H 'Content-Type: application/json' \\
    -H "X-GitHub-Delivery: demo-\$(date +%s)" \\
    -H "X-Hub-Signature-256: sha256=\$(openssl dgst -sha256 -hmac $EMAIL_HOOK_SECRET < $rel/fixtures/email-urgent.json | sed 's/^.*= //')" \\
    --data-binary @$rel/fixtures/email-urgent.json

Then see it (the CLI sends \$SLUICE_TOKEN):

  ./sluice runs list --server http://$listen
  ./sluice runs show RUN_ID --server http://$listen     # the model calls and cost, the reply draft
  curl -s -H 'X-Api-Key: $HELPDESK_TOKEN' http://127.0.0.1:9101/tickets | jq .

A billing email waits for a person before the helpdesk is written to:

  curl -s http://$listen/hooks/email -H 'Content-Type: application/json' \\
    -H "X-GitHub-Delivery: demo-\$(date +%s)-b" \\
    -H "X-Hub-Signature-256: sha256=\$(openssl dgst -sha256 -hmac $EMAIL_HOOK_SECRET < $rel/fixtures/email-billing.json | sed 's/^.*= //')" \\
    --data-binary @$rel/fixtures/email-billing.json
  ./sluice approvals list --server http://$listen              # the pending approval, its evidence
  ./sluice approvals approve APPROVAL_ID --server http://$listen
  ./sluice approvals edit APPROVAL_ID --value '{"label":"account"}' --reason "a login issue" --server http://$listen

Ask the governed chat gateway (any OpenAI client works; the model is a route):

  curl -s http://$listen/v1/chat/completions -H "Authorization: Bearer \$SLUICE_TOKEN" \\
    -H 'Content-Type: application/json' \\
    -d '{"model": "chat", "messages": [{"role": "user", "content": "Draft a reply to ada@example.com"}]}' | jq .

Ctrl-C stops the server.
MSG
wait $server
