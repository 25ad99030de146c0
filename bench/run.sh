#!/bin/sh
# make bench: every benchmark, one after the other, printing figures and
# ratios against the baselines they name. Not a test: nothing fails on a
# slow machine.
set -eu
: "${SLUICE_BUILD:?}"
echo "== engine: durable steps per second"
"$SLUICE_BUILD/bench/bench_engine" "${BENCH_RUNS:-2000}"

echo
echo "== audit log: what an entry costs where the engine writes it, and verify speed"
"$SLUICE_BUILD/bench/bench_audit" "${BENCH_AUDIT_ROUNDS:-7}"

echo
echo "== server: durable webhook accepts (sluice serve, SQLite, signed GitHub-style webhooks)"
"$(dirname "$0")/webhooks.sh"

echo
echo "== local models: the support-triage classifier and the pattern extractors (one thread)"
"$SLUICE_BUILD/bench/bench_local" "${BENCH_LOCAL_SECONDS:-2}"

echo
echo "== AI gateway: POST /v1/chat/completions direct to the model simulator vs through sluice serve"
"$(dirname "$0")/ai.sh"

echo
echo "== store: worker processes on PostgreSQL and on SQLite (sluice worker, five-step map runs)"
"$(dirname "$0")/pg.sh"

echo
echo "== observability: webhook accepts and end-to-end runs with metrics off, on, and with the OTLP exporter"
"$(dirname "$0")/obs.sh"

echo
echo "== streams: events per second from Redis Streams, NATS JetStream and Kafka (mock) through a 1-step workflow"
"$(dirname "$0")/streams.sh"
