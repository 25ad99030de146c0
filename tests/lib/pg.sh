# shellcheck shell=bash
# pg.sh: for tests that need PostgreSQL (source after tap.sh). pg_need
# skips the whole file when no server was given (SLUICE_TEST_PG, set by
# tests/run.sh from tests/support/pg.sh), except under CI=true, where that
# fails. pg_schema makes a fresh schema for this test and sets PG_URL to a
# URL that selects it (search_path), dropped again at exit.
pg_need() {
	if [ -z "${SLUICE_TEST_PG:-}" ]; then
		if [ "${CI:-}" = true ]; then
			echo "not ok 1 - CI: SLUICE_TEST_PG is not set: no PostgreSQL for $(basename "$0")"
			echo "1..1"
			exit 1
		fi
		echo "1..0 # SKIP no PostgreSQL (SLUICE_TEST_PG unset)"
		exit 0
	fi
}

# pg_sql SQL: runs SQL on PG_URL (or SLUICE_TEST_PG), prints the rows.
pg_sql() {
	"$TOP/tests/support/pg.sh" psql "$1" 2>&1
}

pg_schema() {
	PG_SCHEMA="t_$(basename "$0" .t)_$$"
	pg_sql "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE; CREATE SCHEMA $PG_SCHEMA" >/dev/null
	case $SLUICE_TEST_PG in *\?*) sep='&' ;; *) sep='?' ;; esac
	PG_URL="$SLUICE_TEST_PG${sep}options=-csearch_path%3D$PG_SCHEMA"
	PG_ADMIN_URL=$SLUICE_TEST_PG
	trap 'SLUICE_TEST_PG=$PG_ADMIN_URL pg_sql "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1; t_cleanup' EXIT
}

# pg_q SQL: one query in this test's schema.
pg_q() {
	SLUICE_TEST_PG=$PG_URL "$TOP/tests/support/pg.sh" psql "$1" 2>&1
}
