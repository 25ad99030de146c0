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
echo "== store: fair claiming: a small tenant's run behind a 100,000-run backlog, and the claim cost"
"$SLUICE_BUILD/bench/bench_fair" sqlite "${BENCH_FAIR_BACKLOG:-100000}"
if [ -n "${SLUICE_TEST_PG:-}" ]; then
	"$SLUICE_BUILD/bench/bench_fair" "$SLUICE_TEST_PG" "${BENCH_FAIR_BACKLOG:-100000}"
else
	echo "(PostgreSQL: set SLUICE_TEST_PG, e.g. from tests/support/pg.sh start)"
fi

echo
echo "== observability: webhook accepts and end-to-end runs with metrics off, on, and with the OTLP exporter"
"$(dirname "$0")/obs.sh"

echo
echo "== streams: events per second from Redis Streams, NATS JetStream and Kafka (mock) through a 1-step workflow"
"$(dirname "$0")/streams.sh"
