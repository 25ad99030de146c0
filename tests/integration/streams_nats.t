#!/bin/bash
# NATS JetStream: 10,000 messages consumed through a durable pull consumer
# by a workflow whose trigger is the stream, `sluice serve` killed with -9
# twice while it consumes. Every message has exactly one completed run, the
# workflow's effect (an exactly-once file append) happened once per message,
# the emit step's CloudEvent reached the output stream once per run, and
# the consumer has nothing pending. A real `nats-server -js` on a free
# loopback port; skipped when it is not installed (fails under CI=true).
. "$SLUICE_TOP/tests/lib/tap.sh"
. "$SLUICE_TOP/tests/lib/streams.sh"
stream_need nats-server nats-server
N=${STREAM_EVENTS:-10000}
TOOL="$BUILD/tests/stream_tool"
mkdir -p "$T_TMP/nats"
nats() { exec nats-server -js -a 127.0.0.1 -p "$1" -sd "$T_TMP/nats" --user sluice --pass nats-t-sekrit; }
stream_server "$T_TMP/nats.log" 'Server is ready' nats ||
	{ t_fail "nats-server starts" "$(tail -5 "$T_TMP/nats.log")"; t_done; }
export NATS_PASSWORD=nats-t-sekrit
NURL="nats://sluice:$NATS_PASSWORD@127.0.0.1:$PORT" # the tool's; the connector takes user/password apart

P="$T_TMP/proj"
stream_project "$P" \
	"type: nats
url: nats://127.0.0.1:$PORT
user: sluice
password: env:NATS_PASSWORD
stream: EVENTS
subject: events.in
ack_wait: 2s" \
	"type: nats
url: nats://127.0.0.1:$PORT
user: sluice
password: env:NATS_PASSWORD
stream: EVENTSOUT
subject: events.out"
t_ok "sluice check accepts the nats connectors" "$SLUICE" check "$P"

cp -r "$P" "$T_TMP/bad"
printf 'url: nats://u:%s@127.0.0.1:%s\n' "$NATS_PASSWORD" "$PORT" >>"$T_TMP/bad/connectors/out.yaml"
sed -i '0,/^url:/{/^url:/d}' "$T_TMP/bad/connectors/out.yaml"
out=$("$SLUICE" check "$T_TMP/bad" 2>&1)
t_like "$out" "out.yaml:[0-9]+:[0-9]+: error: url must not hold credentials" "credentials in the url are refused"
t_unlike "$out" "$NATS_PASSWORD" "…without echoing them"

# the messages, published before and while sluice consumes
"$TOOL" nats-pub "$NURL" EVENTS events.in 1 $((N / 2)) || t_fail "publish the first half"
( sleep 1; "$TOOL" nats-pub "$NURL" EVENTS events.in $((N / 2 + 1)) "$N" ) &
T_PIDS="$T_PIDS $!"

t0=$(date +%s)
stream_crash_cycle "$P" "$T_TMP/sluice.log" "$N"
t_diag "killed at created/completed:$KILLED_AT; all done after $(($(date +%s) - t0)) s"
db="$P/.sluice/sluice.db"
"$TOOL" nats-dump "$NURL" EVENTSOUT events.out >"$T_TMP/emitted"
stream_checks "$P" "$N" "$T_TMP/emitted"
stream_health_checks nats

t_is "$(grep -c 'nats-t-sekrit' "$T_TMP/sluice.log")" 0 "the NATS password never reaches the log"
stream_stop_checks "$T_TMP/sluice.log"
t_done
