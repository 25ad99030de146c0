#!/bin/sh
# Durable steps per second with 1, 2 and 4 `sluice worker` processes (2
# threads each) on PostgreSQL, and the same workload on SQLite, side by
# side. The workload: BENCH_PG_RUNS runs (default 2000) of a five-step map
# workflow, queued at once (inserted by SQL while the workers idle), timed
# from the first step's start to the last step's end (the steps table).
# PostgreSQL is a private cluster (tests/support/pg.sh) with fsync and
# synchronous_commit on, as durable as SQLite's synchronous=FULL.
set -eu
: "${SLUICE_BIN:?}"
top=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_PG_RUNS:-2000}
tmp=$(mktemp -d /tmp/sluice-bench-pg.XXXXXX)
pids=""
pgdir=""
cleanup() {
	# run_case runs in a subshell ($(...)): its workers are listed in a file
	for p in $pids $(cat "$tmp/pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "$pgdir" ] && "$top/tests/support/pg.sh" stop "$pgdir"
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
if ! env=$(PG_FSYNC=on "$top/tests/support/pg.sh" start 2>"$tmp/pg.err"); then
	echo "bench/pg.sh: no PostgreSQL: $(cat "$tmp/pg.err")"
	exit 0
fi
eval "$env"
pgdir=$SLUICE_TEST_PG_DIR
pgsql() { SLUICE_TEST_PG=$1 "$top/tests/support/pg.sh" psql "$2"; }

mkdir -p "$tmp/p/workflows"
echo "name: bench" >"$tmp/p/sluice.yaml"
cat >"$tmp/p/workflows/five.yaml" <<'YAML'
workflow: five
version: 1
steps:
  - id: a
    map: '{n: .input.n}'
  - id: b
    map: '{n: (.a.n + 1)}'
  - id: c
    map: '{n: (.b.n + 1)}'
  - id: d
    map: '{n: (.c.n + 1)}'
  - id: e
    map: '{n: (.d.n + 1)}'
YAML

# The rows a created run has (run_create's), for N runs at once.
seed_sql() { # $1: the generator ("generate_series(1, N) g(x)" or a CTE name), $2: the id of x
	cat <<SQL
INSERT INTO runs(id, workflow, version, digest, status, phase, input, correlation_id, root_run_id,
	"trigger", tenant, created_at, updated_at)
	SELECT $2, 'five', 1,
	(SELECT digest FROM workflow_defs WHERE name = 'five'), 'queued', 'forward', '{"n":1}',
	'corr_bench' || x, $2, 'bench', 'default', 0, 0 FROM $1;
INSERT INTO tasks(run_id, due_at, tenant, priority) SELECT id, 0, 'default', 0 FROM runs;
SQL
}

# run_case KIND PROCS: prints steps/s.
run_case() {
	kind=$1 procs=$2
	if [ "$kind" = postgres ]; then
		schema="b_${procs}_$$"
		pgsql "$SLUICE_TEST_PG" "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
		url="$SLUICE_TEST_PG?options=-csearch_path%3D$schema"
	else
		rm -rf "$tmp/db"
		url="sqlite:$tmp/db/sluice.db"
	fi
	pids=""
	for i in $(seq "$procs"); do
		"$SLUICE_BIN" worker --store "$url" --workers 2 --log-level error "$tmp/p" >"$tmp/w$i.out" 2>"$tmp/w$i.err" &
		pids="$pids $!"
		echo $! >>"$tmp/pids"
	done
	for i in $(seq "$procs"); do
		for _ in $(seq 200); do grep -q 'sluice: worker' "$tmp/w$i.out" 2>/dev/null && break; sleep 0.05; done
	done
	if [ "$kind" = postgres ]; then
		pgsql "$url" "BEGIN; $(seed_sql "generate_series(1, $N) g(x)" "'run_bench' || lpad(x::text, 8, '0')") NOTIFY sluice_work; COMMIT;" >/dev/null
		q() { pgsql "$url" "$1"; }
	else
		sqlite3 "$tmp/db/sluice.db" ".timeout 10000" \
			"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $N) $(seed_sql g "printf('run_bench%08d', x)")" \
			>/dev/null
		q() { sqlite3 -cmd ".timeout 10000" "$tmp/db/sluice.db" "$1"; }
	fi
	while [ "$(q "SELECT count(*) FROM runs WHERE status = 'completed'")" -lt "$N" ]; do sleep 0.1; done
	ms=$(q "SELECT max(finished_at) - min(started_at) FROM steps")
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=""
	: >"$tmp/pids"
	[ "$kind" = postgres ] && pgsql "$SLUICE_TEST_PG" "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
	awk -v n="$((N * 5))" -v ms="$ms" 'BEGIN { printf "%.0f", n * 1000 / (ms > 0 ? ms : 1) }'
}

echo "durable steps per second: $N five-step map runs, worker processes of 2 threads each"
echo "(PostgreSQL $(pgsql "$SLUICE_TEST_PG" "SHOW server_version" | cut -d' ' -f1), fsync on, loopback; SQLite WAL, synchronous=FULL)"
echo
printf '%-10s %16s %16s\n' processes postgres sqlite
for procs in 1 2 4; do
	pg=$(run_case postgres "$procs")
	sq=$(run_case sqlite "$procs")
	printf '%-10s %16s %16s\n' "$procs" "$pg" "$sq"
done
