#!/bin/bash
# Server crash test: a client posts signed webhooks (retrying, with the same
# delivery id, until it gets a 2xx, as webhook senders do) while the server
# is killed with -9 every 1-2 s and restarted. Every webhook answered 2xx has
# exactly one completed run, and the helpdesk simulator applied each effect
# once.
. "$SLUICE_TOP/tests/lib/tap.sh"
HOOKS=${CRASH_HOOKS:-2000}
export HELPDESK_TOKEN=crash-sim-key EMAIL_HOOK_SECRET=crash-hook-secret

out="$T_TMP/sim.out"
"$SLUICE" sim helpdesk --port 0 --api-key "$HELPDESK_TOKEN" >"$out" 2>/dev/null &
T_PIDS="$T_PIDS $!"
for _ in $(seq 100); do grep -q 'listening on' "$out" && break; sleep 0.05; done
TARGET_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out")
P=$(project_copy "$TOP/examples/support-triage")
project_no_approval "$P"
port=$((20000 + RANDOM % 20000))
URL="http://127.0.0.1:$port"
db="$P/.sluice/sluice.db"

start_server() {
	"$SLUICE" serve --listen "127.0.0.1:$port" --log-level error "$P" >/dev/null 2>>"$T_TMP/serve.err" &
	SRV=$!
}
start_server
disown $SRV # its death by kill -9 is the point, not news
T_PIDS="$T_PIDS $SRV"

# The killer: every 1-2 s, kill -9 and restart, until told to stop.
(
	k=0
	while [ ! -e "$T_TMP/stop" ]; do
		sleep "1.$((RANDOM % 10))"
		[ -e "$T_TMP/stop" ] && break
		pid=$(cat "$T_TMP/srv.pid" 2>/dev/null)
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && k=$((k + 1))
		"$SLUICE" serve --listen "127.0.0.1:$port" --log-level error "$P" >/dev/null 2>>"$T_TMP/serve.err" &
		echo $! > "$T_TMP/srv.pid"
		echo $k > "$T_TMP/kills"
	done
) 2>/dev/null &
KILLER=$!
echo $SRV > "$T_TMP/srv.pid"

# The sender: one webhook at a time, retried until 2xx.
: > "$T_TMP/accepted"
retries=0
for i in $(seq 1 "$HOOKS"); do
	body="$T_TMP/body.json"
	printf '{"message_id":"hook-%05d@example.com","from":"s%d@example.com","subject":"Hook %d","text":"b"}' "$i" "$i" "$i" > "$body"
	sig=$(openssl dgst -sha256 -hmac "$EMAIL_HOOK_SECRET" < "$body" | sed 's/^.*= //')
	# retried for up to 60 s: under load a restart can take seconds, and a
	# sender that gives up early proves nothing about the server
	deadline=$((SECONDS + 60))
	while [ $SECONDS -lt $deadline ]; do
		resp=$(curl -s -m 5 -w '\n%{http_code}' "$URL/hooks/email" -H 'Content-Type: application/json' \
			-H "X-GitHub-Delivery: delivery-$i" -H "X-Hub-Signature-256: sha256=$sig" --data-binary @"$body" 2>/dev/null)
		code=${resp##*$'\n'}
		if [ "${code:0:1}" = 2 ]; then
			printf '%s %s\n' "$i" "$(printf '%s' "${resp%$'\n'*}" | jq -r .run_id)" >> "$T_TMP/accepted"
			break
		fi
		retries=$((retries + 1))
		sleep 0.05
	done
done
touch "$T_TMP/stop"
wait $KILLER 2>/dev/null
kills=$(cat "$T_TMP/kills" 2>/dev/null || echo 0)
t_diag "$HOOKS webhooks sent, $retries retries, $kills kills"
t_is "$([ "$kills" -ge 3 ] && echo yes)" yes "the server was killed with -9 while webhooks arrived ($kills times)"
t_is "$(wc -l < "$T_TMP/accepted" | tr -d ' ')" "$HOOKS" "every webhook was answered 2xx in the end"
t_is "$(cut -d' ' -f2 "$T_TMP/accepted" | sort -u | wc -l | tr -d ' ')" "$HOOKS" "…each with its own run id"

# Let the last server finish the work.
for _ in $(seq 600); do
	left=$(sqlite3 "$db" "select count(*) from runs where status not in ('completed','dead','cancelled','compensated')" 2>/dev/null || echo 1)
	[ "$left" = 0 ] && break
	sleep 0.2
done
t_is "$(sqlite3 "$db" "select count(*) from runs where workflow='support-triage'")" "$HOOKS" "one run per webhook, none doubled"
t_is "$(sqlite3 "$db" "select count(*) from runs where workflow='support-triage' and status='completed'")" "$HOOKS" "every accepted webhook's run completed"
missing=0
while read -r _ id; do
	[ "$(sqlite3 "$db" "select status from runs where id='$id'")" = completed ] || missing=$((missing + 1))
done < "$T_TMP/accepted"
t_is "$missing" 0 "every run id answered is a completed run"
eff=$(curl -s "$TARGET_URL/_sim/effects")
t_diag "simulator: $(printf '%s' "$eff" | jq -c '{effects, replays}')"
t_is "$(printf '%s' "$eff" | jq -r '.by_route["POST /tickets"]')" "$HOOKS" "the helpdesk created one ticket per webhook"
t_is "$(wc -l < "$P/out/audit.jsonl" | tr -d ' ')" "$HOOKS" "one audit row per webhook"
kill -9 "$(cat "$T_TMP/srv.pid")" 2>/dev/null
t_done
