/*
 * migrations_sqlite.h: the SQLite schema as numbered migrations, included
 * by sqlite.c only. Applied at open, in order, each one once, all in one
 * write transaction (schema_migrations records what was applied), so a
 * reopen is a no-op and a crash mid-migration leaves the old schema.
 *
 * Never edit a migration that has shipped: append a new one. Versions are
 * 1, 2, 3, ... with no gaps (sqlite.c asserts it).
 *
 * Conventions: times are INTEGER ms since the epoch, 0 meaning "none";
 * statuses, phases and error classes are their names (as store.c spells
 * them) so the database reads well in the sqlite3 shell; JSON is compact
 * text. Small hot rows (tasks, idempotency) are WITHOUT ROWID tables
 * clustered on their key; rows that carry JSON documents keep a rowid.
 */
#ifndef SL_STORE_MIGRATIONS_SQLITE_H
#define SL_STORE_MIGRATIONS_SQLITE_H

struct sq_migration {
	int version;
	const char *name;
	const char *sql;
};

static const struct sq_migration sq_migrations[] = {
	{1, "initial schema",
	 "CREATE TABLE workflow_defs ("
	 " digest TEXT PRIMARY KEY,"
	 " name TEXT NOT NULL,"
	 " version INTEGER NOT NULL,"
	 " file TEXT,"
	 " source TEXT NOT NULL,"
	 " created_at INTEGER NOT NULL);"

	 /* task_fence: the fencing token the run's task held when it was last
	  * deleted (done, cancelled), so that a task created again by a replay
	  * continues above every token ever issued for the run. */
	 "CREATE TABLE runs ("
	 " id TEXT PRIMARY KEY,"
	 " workflow TEXT NOT NULL,"
	 " version INTEGER NOT NULL,"
	 " digest TEXT NOT NULL,"
	 " status TEXT NOT NULL,"
	 " phase TEXT NOT NULL DEFAULT 'forward',"
	 " cursor INTEGER NOT NULL DEFAULT 0,"
	 " attempt INTEGER NOT NULL DEFAULT 0,"
	 " wake_at INTEGER NOT NULL DEFAULT 0,"
	 " input TEXT,"
	 " output TEXT,"
	 " error TEXT,"
	 " correlation_id TEXT NOT NULL,"
	 " parent_run_id TEXT,"
	 " root_run_id TEXT NOT NULL,"
	 " trigger TEXT,"
	 " tenant TEXT NOT NULL,"
	 " priority INTEGER NOT NULL DEFAULT 0,"
	 " task_fence INTEGER NOT NULL DEFAULT 0,"
	 " created_at INTEGER NOT NULL,"
	 " updated_at INTEGER NOT NULL,"
	 " finished_at INTEGER NOT NULL DEFAULT 0);"
	 /* id order is creation order (ULIDs): these serve the filtered,
	  * newest-first listings without a sort. */
	 "CREATE INDEX runs_status ON runs(status, id);"
	 "CREATE INDEX runs_workflow ON runs(workflow, id);"
	 "CREATE INDEX runs_root ON runs(root_run_id, status);"
	 "CREATE INDEX runs_correlation ON runs(correlation_id);"

	 "CREATE TABLE steps ("
	 " run_id TEXT NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " idx INTEGER NOT NULL,"
	 " status TEXT NOT NULL,"
	 " output TEXT,"
	 " error TEXT,"
	 " attempts INTEGER NOT NULL DEFAULT 0,"
	 " started_at INTEGER NOT NULL DEFAULT 0,"
	 " finished_at INTEGER NOT NULL DEFAULT 0,"
	 " PRIMARY KEY (run_id, step_id));"

	 /* A log, not a keyed table: a replay resets the run's attempt counter,
	  * so (run_id, step_id, attempt) repeats and both histories are kept. */
	 "CREATE TABLE attempts ("
	 " seq INTEGER PRIMARY KEY,"
	 " run_id TEXT NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " attempt INTEGER NOT NULL,"
	 " started_at INTEGER NOT NULL,"
	 " duration_ms INTEGER NOT NULL,"
	 " outcome TEXT,"
	 " error_class TEXT NOT NULL,"
	 " error TEXT);"
	 "CREATE INDEX attempts_run ON attempts(run_id, step_id, attempt);"

	 /* due_at is when the task is next claimable: while it is leased, the
	  * lease's end. Claimable is then just due_at <= now, which both
	  * indexes serve: (priority, due_at) walks one priority level in due
	  * order, (due_at) answers next_due. */
	 "CREATE TABLE tasks ("
	 " run_id TEXT PRIMARY KEY,"
	 " due_at INTEGER NOT NULL,"
	 " lease_owner TEXT,"
	 " lease_until INTEGER NOT NULL DEFAULT 0,"
	 " fence INTEGER NOT NULL DEFAULT 0,"
	 " tenant TEXT NOT NULL,"
	 " priority INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	 "CREATE INDEX tasks_claim ON tasks(priority, due_at);"
	 "CREATE INDEX tasks_due ON tasks(due_at);"

	 "CREATE TABLE dlq ("
	 " id TEXT PRIMARY KEY,"
	 " run_id TEXT NOT NULL,"
	 " workflow TEXT NOT NULL,"
	 " version INTEGER NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " error_class TEXT NOT NULL,"
	 " error TEXT,"
	 " evidence TEXT,"
	 " created_at INTEGER NOT NULL,"
	 " replayed_at INTEGER NOT NULL DEFAULT 0);"
	 "CREATE INDEX dlq_run ON dlq(run_id);"
	 "CREATE INDEX dlq_workflow ON dlq(workflow, id);"
	 "CREATE INDEX dlq_created ON dlq(created_at);"

	 "CREATE TABLE idempotency ("
	 " scope TEXT NOT NULL,"
	 " key TEXT NOT NULL,"
	 " run_id TEXT NOT NULL,"
	 " created_at INTEGER NOT NULL,"
	 " expires_at INTEGER NOT NULL DEFAULT 0,"
	 " PRIMARY KEY (scope, key)) WITHOUT ROWID;"
	 "CREATE INDEX idempotency_expiry ON idempotency(expires_at) WHERE expires_at > 0;"},

	/* One row per model call (or cache hit) of an ai step, committed with
	 * the step: what it cost, what it saw (redacted) and said. Budgets sum
	 * cost_usd by route or workflow since a period's start. */
	{2, "ai calls",
	 "CREATE TABLE ai_calls ("
	 " seq INTEGER PRIMARY KEY,"
	 " run_id TEXT NOT NULL,"
	 " workflow TEXT NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " tenant TEXT NOT NULL,"
	 " route TEXT NOT NULL,"
	 " model TEXT NOT NULL,"
	 " provider TEXT NOT NULL,"
	 " prompt_hash TEXT,"
	 " input TEXT,"
	 " output TEXT,"
	 " confidence REAL,"
	 " tokens_in INTEGER NOT NULL DEFAULT 0,"
	 " tokens_out INTEGER NOT NULL DEFAULT 0,"
	 " cost_usd REAL NOT NULL DEFAULT 0,"
	 " latency_ms INTEGER NOT NULL DEFAULT 0,"
	 " cache_hit INTEGER NOT NULL DEFAULT 0,"
	 " outcome TEXT NOT NULL,"
	 " error_class TEXT,"
	 " error TEXT,"
	 " created_at INTEGER NOT NULL);"
	 "CREATE INDEX ai_calls_run ON ai_calls(run_id, seq);"
	 "CREATE INDEX ai_calls_route ON ai_calls(route, created_at);"
	 "CREATE INDEX ai_calls_workflow ON ai_calls(workflow, created_at);"},

	/* The audit log (src/gov/audit.h): entry is the canonical text the
	 * hash covers; at, tenant, action and run_id are copies for filtering
	 * (sluice audit verify checks that they agree). seq is assigned by the
	 * store (head + 1), not by AUTOINCREMENT, so a gap means a deletion.
	 * One index only: entries are written with every audited step and read
	 * rarely, and each index costs ~5 us of CPU per entry (bench_audit).
	 * A run's entries are the common question; the other filters walk seq
	 * newest first and stop at a page (a recent window or a frequent action
	 * is quick; a rare action in a long log walks it).
	 * The triggers make the table append-only for every writer that goes
	 * through SQLite with the schema intact; the hash chain is what catches
	 * the writers that do not. */
	{3, "audit log",
	 "CREATE TABLE audit ("
	 " seq INTEGER PRIMARY KEY,"
	 " at INTEGER NOT NULL,"
	 " tenant TEXT NOT NULL,"
	 " action TEXT NOT NULL,"
	 " run_id TEXT,"
	 " entry TEXT NOT NULL,"
	 " prev_hash TEXT NOT NULL,"
	 " hash TEXT NOT NULL);"
	 "CREATE INDEX audit_run ON audit(run_id, seq) WHERE run_id IS NOT NULL;"
	 "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
	 "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	 "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
	 "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"},

	/* API keys and kill switches (src/gov/auth.h). A key keeps only the
	 * SHA-256 of its secret. A pause is a row; a task the engine parked
	 * for one carries its key ("KIND:NAME") in tasks.parked, so a resume
	 * wakes exactly those (the partial index keeps that cheap and costs
	 * nothing to tasks that were never parked). */
	{4, "api keys and pauses",
	 "CREATE TABLE api_keys ("
	 " id TEXT PRIMARY KEY,"
	 " hash TEXT NOT NULL,"
	 " principal TEXT NOT NULL,"
	 " kind TEXT NOT NULL,"
	 " role TEXT NOT NULL,"
	 " tenant TEXT NOT NULL,"
	 " name TEXT NOT NULL DEFAULT '',"
	 " created_at INTEGER NOT NULL,"
	 " expires_at INTEGER NOT NULL DEFAULT 0,"
	 " revoked_at INTEGER NOT NULL DEFAULT 0);"
	 "CREATE TABLE pauses ("
	 " kind TEXT NOT NULL,"
	 " name TEXT NOT NULL,"
	 " by TEXT NOT NULL,"
	 " at INTEGER NOT NULL,"
	 " PRIMARY KEY (kind, name));"
	 "ALTER TABLE tasks ADD COLUMN parked TEXT;"
	 "CREATE INDEX tasks_parked ON tasks(parked) WHERE parked IS NOT NULL;"},
	/* Fair claiming: tasks_claim now leads with the tenant, so a claim
	 * walks each tenant's priority levels (one probe per level, then a
	 * range of due tasks); tenant_share keeps each tenant's virtual time
	 * (store_int.h, SL_FAIR_LAG). A claim for a tenant with a
	 * max_concurrency sets `capped` to the tenant, and tasks_capped counts
	 * its live leases (capped = T AND lease_until > now) without touching
	 * its backlog; claims for other tenants leave it NULL, so they pay no
	 * index entry for it. */
	{5, "tenant fair share",
	 "CREATE TABLE tenant_share ("
	 " tenant TEXT PRIMARY KEY,"
	 " pass REAL NOT NULL) WITHOUT ROWID;"
	 "DROP INDEX tasks_claim;"
	 "CREATE INDEX tasks_claim ON tasks(tenant, priority, due_at);"
	 "ALTER TABLE tasks ADD COLUMN capped TEXT;"
	 "CREATE INDEX tasks_capped ON tasks(capped, lease_until) WHERE capped IS NOT NULL;"},
	/* Approvals (DESIGN.md §7): a run parked on a decision. Created in the
	 * commit that parks the run; decided by a person (the API) or by its
	 * timeout (the engine). consumed_at: the step read the decision, so a
	 * replay of that step asks again instead of reusing it. */
	{6, "approvals",
	 "CREATE TABLE approvals ("
	 " id TEXT PRIMARY KEY,"
	 " run_id TEXT NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " tenant TEXT NOT NULL,"
	 " workflow TEXT NOT NULL,"
	 " kind TEXT NOT NULL,"
	 " status TEXT NOT NULL,"
	 " reviewers TEXT NOT NULL,"
	 " escalate_to TEXT,"
	 " escalated INTEGER NOT NULL DEFAULT 0,"
	 " due_at INTEGER NOT NULL DEFAULT 0,"
	 " timeout_ms INTEGER NOT NULL DEFAULT 0,"
	 " on_timeout TEXT,"
	 " input TEXT,"
	 " evidence TEXT,"
	 " proposed TEXT,"
	 " reason TEXT,"
	 " decision TEXT,"
	 " created_at INTEGER NOT NULL,"
	 " decided_at INTEGER NOT NULL DEFAULT 0,"
	 " consumed_at INTEGER NOT NULL DEFAULT 0);"
	 "CREATE INDEX approvals_run ON approvals(run_id, created_at);"
	 "CREATE INDEX approvals_status ON approvals(status, created_at);"},
	/* What a trigger remembers between ticks and restarts: a schedule's
	 * last fired slot, a sync's cursor and counts. One row per trigger,
	 * replaced as a whole (the state is small JSON). */
	{7, "trigger state",
	 "CREATE TABLE trigger_state ("
	 " name TEXT PRIMARY KEY,"
	 " state TEXT NOT NULL,"
	 " updated_at INTEGER NOT NULL);"},
};

#define SQ_SCHEMA_VERSION ((int)(sizeof sq_migrations / sizeof sq_migrations[0]))

#endif
