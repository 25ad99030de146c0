/*
 * bench_fair: the wait of a small tenant's new run behind a large tenant's
 * backlog, and what a claim costs, on the store given (SQLite by default, or
 * a PostgreSQL URL).
 *
 *      On PostgreSQL also the claim statement before fair claiming against
 *      sluice_claim, alternating on one connection (pg_ab).
 *   2. wait: BACKLOG runs of tenant "big" are queued (inserted by SQL, all
 *      older), then one run of tenant "small" is created. A worker loop
 *      claims batches of 16 and commits each task done (one group commit
 *      per batch, as the engine does) until the small run is claimed: the
 *      wait is the time and the tasks of "big" served before it. With FIFO
 *      claiming (before fair claiming) that is the whole backlog.
 *   1. claim cost (first, on the whole backlog): mean µs per claim of 16
 *      (claim only, the leases left in place, given back after), with one
 *      tenant holding due work, then with two (a second tenant's backlog of
 *      1,000 beside it).
 *
 *   bench_fair [STORE_URL [BACKLOG]]   (default: a SQLite file in /tmp, 100000)
 *
 * Built with -DBENCH_FAIR_FIFO against a tree without fair claiming (no
 * sl_store_set_tenants) it measures the "before" figures.
 */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "util/util.h"

#define BATCH 16
#define COST_CLAIMS 200

static struct sl_err err;

/* CPU time of this process, µs (the store's work on SQLite; on PostgreSQL
 * the server's share is not in it, so wall time is printed too). */
static int64_t cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_fair: %s: %s\n", what, err.msg);
	exit(1);
}

/* Runs SQL on the store's database, through its own client. */
static void exec_sql(const char *url, const char *sql)
{
	if (strncmp(url, "postgres", 8) == 0) {
		PGconn *c = PQconnectdb(url);
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
			fprintf(stderr, "bench_fair: %s\n", PQerrorMessage(c));
			exit(1);
		}
		PQclear(r);
		PQfinish(c);
		return;
	}
	sqlite3 *db;
	char *msg = NULL;
	const char *path = strncmp(url, "sqlite:", 7) == 0 ? url + 7 : url;
	if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "bench_fair: %s\n", msg ? msg : sqlite3_errmsg(db));
		exit(1);
	}
	sqlite3_close(db);
}

/* n queued runs of tenant, ids PREFIX0000001..., with their tasks, due at 0
 * (older than anything created after). */
static void seed(const char *url, const char *tenant, const char *prefix, int n)
{
	char with[200] = "", gen[200], id[200], sql[2000];
	if (strncmp(url, "postgres", 8) == 0) {
		snprintf(gen, sizeof gen, "generate_series(1, %d) g(x)", n);
		snprintf(id, sizeof id, "'%s' || lpad(x::text, 7, '0')", prefix);
	} else {
		snprintf(with, sizeof with, "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < %d)",
			 n);
		snprintf(gen, sizeof gen, "g");
		snprintf(id, sizeof id, "printf('%s%%07d', x)", prefix);
	}
	snprintf(sql, sizeof sql,
		 "%s INSERT INTO runs(id, workflow, version, digest, status, phase, input, correlation_id, "
		 "root_run_id, \"trigger\", tenant, created_at, updated_at) SELECT %s, 'fair', 1, 'dfair', 'queued', "
		 "'forward', '{}', 'c' || x, %s, 'bench', '%s', 0, 0 FROM %s; "
		 "INSERT INTO tasks(run_id, due_at, tenant, priority) SELECT id, 0, '%s', 0 FROM runs "
		 "WHERE tenant = '%s'",
		 with, id, id, tenant, gen, tenant, tenant);
	exec_sql(url, sql);
}

/* PostgreSQL only: the claim statement before fair claiming (one CTE over
 * tasks, in priority order) against sluice_claim, on one connection,
 * alternating call by call so the machine's noise hits both alike; prints
 * the median wall time of each. One tenant with due work (the regression
 * that matters: the single-tenant path). */
static const char *const old_claim =
	"WITH c AS (SELECT run_id, priority, due_at FROM tasks WHERE due_at <= $1 "
	"ORDER BY priority DESC, due_at, run_id LIMIT $2 FOR UPDATE SKIP LOCKED), "
	"u AS (UPDATE tasks t SET lease_owner = $3, lease_until = $4, due_at = $4, "
	"fence = t.fence + 1 FROM c WHERE t.run_id = c.run_id "
	"RETURNING t.run_id, t.fence, c.priority AS p, c.due_at AS d) "
	"SELECT run_id, fence FROM u ORDER BY p DESC, d, run_id";
static const char *const new_claim =
	"SELECT o_run_id, o_fence FROM sluice_claim($1, $2, $3, $4, '{}', '{}', '{}', 1.0)";

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void pg_ab(const char *url)
{
	enum { CALLS = 300 };
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		return;
	/* the index the old statement walked (dropped by migration 3), for the
	 * duration: both statements pay for its upkeep alike */
	PQclear(PQexec(c, "CREATE INDEX ab_old ON tasks(priority DESC, due_at, run_id)"));
	PQclear(PQprepare(c, "old", old_claim, 0, NULL));
	PQclear(PQprepare(c, "new", new_claim, 0, NULL));
	static double t[2][CALLS];
	for (int i = 0; i < CALLS; i++) {
		for (int k = 0; k < 2; k++) {
			char now[24], until[24];
			snprintf(now, sizeof now, "%lld", (long long)sl_now_ms());
			snprintf(until, sizeof until, "%lld", (long long)(sl_now_ms() + 600000));
			const char *v[] = {now, "16", "ab", until};
			int64_t t0 = sl_mono_us();
			PGresult *r = PQexecPrepared(c, k ? "new" : "old", 4, v, NULL, NULL, 0);
			t[k][i] = (double)(sl_mono_us() - t0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != BATCH) {
				fprintf(stderr, "bench_fair: a/b claim: %s\n", PQerrorMessage(c));
				exit(1);
			}
			PQclear(r);
		}
	}
	PQclear(PQexec(c, "DROP INDEX ab_old"));
	PQfinish(c);
	qsort(t[0], CALLS, sizeof t[0][0], dbl_cmp);
	qsort(t[1], CALLS, sizeof t[1][0], dbl_cmp);
	printf("claim statement A/B on one connection, one tenant, %d calls each: before (one CTE) median %.0f us "
	       "(p90 %.0f), sluice_claim median %.0f us (p90 %.0f): %+.0f %%\n",
	       CALLS, t[0][CALLS / 2], t[0][CALLS * 9 / 10], t[1][CALLS / 2], t[1][CALLS * 9 / 10],
	       100.0 * (t[1][CALLS / 2] / t[0][CALLS / 2] - 1));
}

/* Commits every claimed task done, in one group commit. */
static void finish(struct sl_store *s, const struct sl_task *t, size_t n)
{
	struct sl_commit c[BATCH];
	int res[BATCH];
	for (size_t i = 0; i < n; i++)
		c[i] = (struct sl_commit){.run_id = t[i].run_id, .fence = t[i].fence, .status = SL_RUN_COMPLETED,
					  .next = SL_TASK_DONE};
	if (sl_store_commit(s, c, n, res, &err))
		die("commit");
}

static struct sl_store *open_fresh(const char *url, const char *dir, char *buf, size_t len)
{
	if (strncmp(url, "postgres", 8) == 0) {
		/* a schema of its own, dropped first */
		PGconn *c = PQconnectdb(url);
		PQclear(PQexec(c, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_fair CASCADE; "
				  "CREATE SCHEMA bench_fair"));
		PQfinish(c);
		snprintf(buf, len, "%s%soptions=-csearch_path%%3Dbench_fair", url, strchr(url, '?') ? "&" : "?");
	} else {
		snprintf(buf, len, "sqlite:%s/sluice.db", dir);
		char *rm = sl_asprintf("rm -rf '%s'", dir);
		if (system(rm) != 0)
			exit(1);
		free(rm);
	}
	struct sl_store *s;
	if (sl_store_open(buf, &s, &err))
		die("open");
	if (sl_store_def_put(s, "dfair", "fair", 1, "fair.yaml", "workflow: fair\n", &err))
		die("def_put");
	return s;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/sluice-bench-fair";
	const char *base = argc > 1 ? argv[1] : "sqlite";
	int backlog = argc > 2 ? atoi(argv[2]) : 100000;
	char url[1200];
	struct sl_store *s = open_fresh(base, dir, url, sizeof url);
	printf("store: %s, backlog of tenant big: %d runs, batch %d, %s\n", sl_store_kind(s), backlog, BATCH,
#ifdef BENCH_FAIR_FIFO
	       "before: FIFO/priority claims"
#else
	       "fair claims"
#endif
	);
	seed(url, "big", "run_big", backlog);

	/* 1. claim cost: one tenant with due work, then two; the leases are
	 * given back after, so the backlog is whole again for the wait */
	for (int tenants = 1; tenants <= 2; tenants++) {
#ifndef BENCH_FAIR_FIFO
		if (tenants == 2 && strncmp(url, "postgres", 8) == 0)
			pg_ab(url);
#endif
		if (tenants == 2)
			seed(url, "mid", "run_mid", 1000);
		int64_t c0 = sl_mono_us(), p0 = cpu_us();
		size_t got = 0;
		for (int i = 0; i < COST_CLAIMS; i++) {
			struct sl_task t[BATCH];
			size_t n = 0;
			if (sl_store_claim(s, "cost", 600000, BATCH, t, &n, &err))
				die("claim");
			got += n;
		}
		double us = (double)(sl_mono_us() - c0) / COST_CLAIMS;
		double cpu = (double)(cpu_us() - p0) / COST_CLAIMS;
		printf("claim of %d from the backlog, %d tenant%s with due work: %.0f us wall, %.0f us CPU per claim "
		       "(%zu tasks)\n",
		       BATCH, tenants, tenants > 1 ? "s" : "", us, cpu, got);
	}
	int64_t released = 0;
	if (sl_store_release_owner(s, "cost", &released, &err) || sl_store_release_owner(s, "ab", &released, &err))
		die("release");
	exec_sql(url, "DELETE FROM tasks WHERE tenant = 'mid'");

	/* 2. the small tenant's wait */
	struct sl_run_new r = {.workflow = "fair", .version = 1, .digest = "dfair", .tenant = "small"};
	char small[SL_ID_MAX];
	if (sl_store_run_create(s, &r, small, NULL, &err))
		die("create");
	int64_t t0 = sl_mono_us();
	size_t before = 0, claims = 0;
	bool found = false;
	while (!found) {
		struct sl_task t[BATCH];
		size_t n = 0;
		if (sl_store_claim(s, "w", 60000, BATCH, t, &n, &err))
			die("claim");
		if (n == 0)
			break;
		claims++;
		for (size_t i = 0; i < n; i++)
			found |= strcmp(t[i].run_id, small) == 0;
		if (!found) /* tasks claimed in earlier batches than the small run's */
			before += n;
		finish(s, t, n);
	}
	double wait_ms = (double)(sl_mono_us() - t0) / 1000.0;
	printf("wait of the small tenant's run: %.1f ms, %zu of big's tasks claimed before its batch, in claim %zu%s\n",
	       wait_ms, before, claims, found ? "" : " (never claimed)");

	sl_store_close(s);
	if (strncmp(base, "postgres", 8) == 0) {
		PGconn *c = PQconnectdb(base);
		PQclear(PQexec(c, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_fair CASCADE"));
		PQfinish(c);
	} else {
		char *rm = sl_asprintf("rm -rf '%s'", dir);
		if (system(rm) != 0)
			return 1;
		free(rm);
	}
	return 0;
}
