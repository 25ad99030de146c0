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
