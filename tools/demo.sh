#!/bin/sh
# `make run`: the demo. Starts a stand-in helpdesk on 127.0.0.1:9101, checks
# the example project and runs it on its embedded SQLite store.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
ex="$top/examples/support-triage"
export HELPDESK_TOKEN=${HELPDESK_TOKEN:-demo-token}
mkdir -p "$ex/.sluice"
"$top/build/tests/target_server" --port 9101 --require-bearer "$HELPDESK_TOKEN" \
	--state "$ex/.sluice/helpdesk-effects.jsonl" >/dev/null &
target=$!
trap 'kill $target 2>/dev/null' EXIT INT TERM
sleep 0.3
echo "== sluice check $ex"
"$top/sluice" check "$ex"
for f in email-1 email-urgent; do
	echo
	echo "== sluice run examples/support-triage support-triage -i fixtures/$f.json"
	"$top/sluice" run "$ex" support-triage -i "$ex/fixtures/$f.json"
done
echo
echo "== the audit trail ($ex/out/audit.jsonl)"
tail -n 5 "$ex/out/audit.jsonl"
echo
echo "Runs are kept in $ex/.sluice/sluice.db; run it again and the same emails"
echo "create no second ticket (their idempotency keys were seen):"
curl -s http://127.0.0.1:9101/__stats; echo
