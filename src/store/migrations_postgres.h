/*
 * migrations_postgres.h: the PostgreSQL schema as numbered migrations,
 * included by postgres.c only. Applied at open, in order, each one once,
 * in one transaction that first takes a transaction-scoped advisory lock
 * (PG_MIGRATE_LOCK), so two processes opening a new database at once
 * queue instead of racing; schema_migrations records what was applied.
 *
 * Never edit a migration that has shipped: append a new one. Versions are
 * 1, 2, 3, ... with no gaps (postgres.c asserts it).
 *
 * The same tables as SQLite's (migrations_sqlite.h) with the same
 * conventions: times are BIGINT ms since the epoch (0: none), statuses,
 * phases and error classes are their names, JSON is compact text (not
 * jsonb: what was written is what run_get gives back, byte for byte as on
 * SQLite). Ids are COLLATE "C": they are ULIDs whose byte order is creation
 * order, which the lists' cursors rely on whatever the database's locale.
 */
#ifndef SL_STORE_MIGRATIONS_POSTGRES_H
#define SL_STORE_MIGRATIONS_POSTGRES_H

struct pg_migration {
	int version;
	const char *name;
	const char *sql;
};

static const struct pg_migration pg_migrations[] = {
	{1, "initial schema",
	 "CREATE TABLE workflow_defs ("
	 " digest TEXT PRIMARY KEY,"
	 " name TEXT NOT NULL,"
	 " version INTEGER NOT NULL,"
	 " file TEXT,"
	 " source TEXT NOT NULL,"
	 " created_at BIGINT NOT NULL);"

	 /* task_fence: as on SQLite, the last token of a deleted task, so a
	  * replayed run's new task continues above every token issued. */
	 "CREATE TABLE runs ("
	 " id TEXT COLLATE \"C\" PRIMARY KEY,"
	 " workflow TEXT NOT NULL,"
	 " version INTEGER NOT NULL,"
	 " digest TEXT NOT NULL,"
	 " status TEXT NOT NULL,"
	 " phase TEXT NOT NULL DEFAULT 'forward',"
	 " cursor INTEGER NOT NULL DEFAULT 0,"
	 " attempt INTEGER NOT NULL DEFAULT 0,"
	 " wake_at BIGINT NOT NULL DEFAULT 0,"
	 " input TEXT,"
	 " output TEXT,"
	 " error TEXT,"
	 " correlation_id TEXT NOT NULL,"
	 " parent_run_id TEXT COLLATE \"C\","
	 " root_run_id TEXT COLLATE \"C\" NOT NULL,"
	 " \"trigger\" TEXT,"
	 " tenant TEXT NOT NULL,"
	 " priority INTEGER NOT NULL DEFAULT 0,"
	 " task_fence BIGINT NOT NULL DEFAULT 0,"
	 " created_at BIGINT NOT NULL,"
	 " updated_at BIGINT NOT NULL,"
	 " finished_at BIGINT NOT NULL DEFAULT 0);"
	 "CREATE INDEX runs_status ON runs(status, id);"
	 "CREATE INDEX runs_workflow ON runs(workflow, id);"
	 "CREATE INDEX runs_root ON runs(root_run_id, status);"
	 "CREATE INDEX runs_correlation ON runs(correlation_id);"

	 "CREATE TABLE steps ("
	 " run_id TEXT COLLATE \"C\" NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " idx INTEGER NOT NULL,"
	 " status TEXT NOT NULL,"
	 " output TEXT,"
	 " error TEXT,"
	 " attempts INTEGER NOT NULL DEFAULT 0,"
	 " started_at BIGINT NOT NULL DEFAULT 0,"
	 " finished_at BIGINT NOT NULL DEFAULT 0,"
	 " PRIMARY KEY (run_id, step_id));"

	 "CREATE TABLE attempts ("
	 " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	 " run_id TEXT COLLATE \"C\" NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " attempt INTEGER NOT NULL,"
	 " started_at BIGINT NOT NULL,"
	 " duration_ms BIGINT NOT NULL,"
	 " outcome TEXT,"
	 " error_class TEXT NOT NULL,"
	 " error TEXT);"
	 "CREATE INDEX attempts_run ON attempts(run_id, seq);"

	 /* due_at is when the task is next claimable (a leased task's is its
	  * lease end). The claim walks tasks_claim in its order (priority
	  * first, then due) and skips rows another claimer has locked. */
	 "CREATE TABLE tasks ("
	 " run_id TEXT COLLATE \"C\" PRIMARY KEY,"
	 " due_at BIGINT NOT NULL,"
	 " lease_owner TEXT,"
	 " lease_until BIGINT NOT NULL DEFAULT 0,"
	 " fence BIGINT NOT NULL DEFAULT 0,"
	 " tenant TEXT NOT NULL,"
	 " priority INTEGER NOT NULL DEFAULT 0);"
	 "CREATE INDEX tasks_claim ON tasks(priority DESC, due_at, run_id);"
	 "CREATE INDEX tasks_due ON tasks(due_at);"
	 "CREATE INDEX tasks_owner ON tasks(lease_owner) WHERE lease_owner IS NOT NULL;"

	 "CREATE TABLE dlq ("
	 " id TEXT COLLATE \"C\" PRIMARY KEY,"
	 " run_id TEXT COLLATE \"C\" NOT NULL,"
	 " workflow TEXT NOT NULL,"
	 " version INTEGER NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " error_class TEXT NOT NULL,"
	 " error TEXT,"
	 " evidence TEXT,"
	 " created_at BIGINT NOT NULL,"
	 " replayed_at BIGINT NOT NULL DEFAULT 0);"
	 "CREATE INDEX dlq_run ON dlq(run_id);"
	 "CREATE INDEX dlq_workflow ON dlq(workflow, id);"
	 "CREATE INDEX dlq_created ON dlq(created_at);"

	 "CREATE TABLE idempotency ("
	 " scope TEXT NOT NULL,"
	 " key TEXT NOT NULL,"
	 " run_id TEXT COLLATE \"C\" NOT NULL,"
	 " created_at BIGINT NOT NULL,"
	 " expires_at BIGINT NOT NULL DEFAULT 0,"
	 " PRIMARY KEY (scope, key));"
	 "CREATE INDEX idempotency_expiry ON idempotency(expires_at) WHERE expires_at > 0;"},

	{2, "ai calls",
	 "CREATE TABLE ai_calls ("
	 " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	 " run_id TEXT COLLATE \"C\" NOT NULL,"
	 " workflow TEXT NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " tenant TEXT NOT NULL,"
	 " route TEXT NOT NULL,"
	 " model TEXT NOT NULL,"
	 " provider TEXT NOT NULL,"
	 " prompt_hash TEXT,"
	 " input TEXT,"
	 " output TEXT,"
	 " confidence DOUBLE PRECISION,"
	 " tokens_in BIGINT NOT NULL DEFAULT 0,"
	 " tokens_out BIGINT NOT NULL DEFAULT 0,"
	 " cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,"
	 " latency_ms BIGINT NOT NULL DEFAULT 0,"
	 " cache_hit INTEGER NOT NULL DEFAULT 0,"
	 " outcome TEXT NOT NULL,"
	 " error_class TEXT,"
	 " error TEXT,"
	 " created_at BIGINT NOT NULL);"
	 "CREATE INDEX ai_calls_run ON ai_calls(run_id, seq);"
	 "CREATE INDEX ai_calls_route ON ai_calls(route, created_at);"
	 "CREATE INDEX ai_calls_workflow ON ai_calls(workflow, created_at);"},
	/* What a trigger remembers between ticks and restarts (sqlite: 4). */
	{3, "trigger state",
	 "CREATE TABLE trigger_state ("
	 " name TEXT PRIMARY KEY,"
	 " state TEXT NOT NULL,"
	 " updated_at BIGINT NOT NULL);"},
};

#define PG_SCHEMA_VERSION ((int)(sizeof pg_migrations / sizeof pg_migrations[0]))

#endif
