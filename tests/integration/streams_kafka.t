#!/bin/bash
# Kafka: 10,000 messages consumed through a consumer group by a workflow
# whose trigger is the topic, `sluice serve` killed with -9 twice while it
# consumes. Every message has exactly one completed run, the workflow's
# effect (an exactly-once file append) happened once per message, the emit
# step's CloudEvent reached the output topic once per run, and the group's
# committed offsets reach the end of the topic.
#
# No Kafka broker package exists, so the brokers are librdkafka's mock
# cluster. It lives inside the process that creates it, so
# tests/support/stream_tool hosts it (3 brokers on loopback) and prints its
# bootstrap servers, and `sluice serve` connects to them like to any
# cluster. The mock keeps its state in memory: it must outlive the kills.
. "$SLUICE_TOP/tests/lib/tap.sh"
. "$SLUICE_TOP/tests/lib/streams.sh"
N=${STREAM_EVENTS:-10000}
TOOL="$BUILD/tests/stream_tool"
"$TOOL" kafka-mock 3 events:4,events-out:4 >"$T_TMP/mock.out" 2>"$T_TMP/mock.err" &
T_PIDS="$T_PIDS $!"
for _ in $(seq 100); do grep -q '^bootstrap' "$T_TMP/mock.out" 2>/dev/null && break; sleep 0.05; done
B=$(sed -n 's/^bootstrap //p' "$T_TMP/mock.out")
t_like "$B" '^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$' \
	"the mock cluster's 3 brokers listen on loopback for other processes"
[ -n "$B" ] || t_done

P="$T_TMP/proj"
stream_project "$P" \
	"type: kafka
brokers: $B
topic: events
session_timeout: 3s" \
	"type: kafka
brokers: $B
topic: events-out"
t_ok "sluice check accepts the kafka connectors" "$SLUICE" check "$P"

cp -r "$P" "$T_TMP/bad"
printf 'password: kafka-t-sekrit\n' >>"$T_TMP/bad/connectors/out.yaml"
out=$("$SLUICE" check "$T_TMP/bad" 2>&1)
t_like "$out" "out.yaml:[0-9]+:[0-9]+: error: .*password" "a password written in the file is refused"
t_unlike "$out" "kafka-t-sekrit" "…without echoing it"

"$TOOL" kafka-pub "$B" events 1 $((N / 2)) || t_fail "produce the first half"
( sleep 1; "$TOOL" kafka-pub "$B" events $((N / 2 + 1)) "$N" ) &
T_PIDS="$T_PIDS $!"

t0=$(date +%s)
stream_crash_cycle "$P" "$T_TMP/sluice.log" "$N"
t_diag "killed at created/completed:$KILLED_AT; all done after $(($(date +%s) - t0)) s"
"$TOOL" kafka-dump "$B" events-out >"$T_TMP/emitted"
stream_checks "$P" "$N" "$T_TMP/emitted"
for _ in $(seq 50); do
	lag=$("$TOOL" kafka-lag "$B" events sluice)
	[ "$lag" = 0 ] && break
	sleep 0.1
done
t_is "$lag" 0 "the group's committed offsets reach the end of the topic"
stream_health_checks kafka

stream_stop_checks "$T_TMP/sluice.log"
t_done
