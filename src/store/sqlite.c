/*
 * sqlite.c: the SQLite store (the embedded default). See
 * docs/internals/store.md for the model; the why of each choice is here.
 *
 * Connections. SQLite serializes writers anyway, so there is one writer
 * connection behind a mutex: every write is a BEGIN IMMEDIATE transaction
 * on it, so a write never fails half-way on a lock upgrade. Reads
 * (run_load, run_get, lists, next_due) use a small pool of reader
 * connections: in WAL mode each read transaction sees one committed
 * snapshot and neither blocks nor waits for the writer. An in-memory
 * database cannot be shared between connections, so there the writer
 * serves the reads too (under the same mutex).
 *
 * Every connection is used by one thread at a time (the mutex, or a reader
 * taken from the pool), so connections are opened NOMUTEX, and each caches
 * its prepared statements (SQLITE_PREPARE_PERSISTENT) in a table indexed
 * by the statement's enum.
 *
 * Durability: journal_mode=WAL, synchronous=FULL: a transaction is durable
 * when COMMIT returns, even on power loss. sl_store_commit applies a batch
 * in one transaction, so a batch costs one WAL fsync.
 */
#include "store/store.h"
#include "store/store_int.h"
#include "store/migrations_sqlite.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQ_BUSY_TIMEOUT_MS 5000 /* another process (the CLI) holding the lock */
#define SQ_READERS_MAX 8
#define SQ_QUERY_MAX 2048       /* a list query built from its filters */

/* ---- statements -------------------------------------------------------------- */

/* The columns of a run as run_load and run_get read them (RC_* below). */
#define RUN_COLS                                                                                    \
	"id, workflow, version, digest, status, phase, cursor, attempt, wake_at, input, output, "  \
	"error, correlation_id, parent_run_id, root_run_id, \"trigger\", tenant, priority, "      \
	"created_at, updated_at, finished_at"
enum {
	RC_ID, RC_WORKFLOW, RC_VERSION, RC_DIGEST, RC_STATUS, RC_PHASE, RC_CURSOR, RC_ATTEMPT, RC_WAKE_AT,
	RC_INPUT, RC_OUTPUT, RC_ERROR, RC_CORRELATION, RC_PARENT, RC_ROOT, RC_TRIGGER, RC_TENANT,
	RC_PRIORITY, RC_CREATED, RC_UPDATED, RC_FINISHED,
};

/* A run's summary in lists: no input or output, which may be large. */
#define SUM_COLS                                                                                    \
	"id, workflow, version, status, correlation_id, parent_run_id, root_run_id, \"trigger\", "  \
	"tenant, priority, created_at, updated_at, finished_at, error"
enum {
	SC_ID, SC_WORKFLOW, SC_VERSION, SC_STATUS, SC_CORRELATION, SC_PARENT, SC_ROOT, SC_TRIGGER,
	SC_TENANT, SC_PRIORITY, SC_CREATED, SC_UPDATED, SC_FINISHED, SC_ERROR,
};

#define DLQ_COLS "id, run_id, workflow, version, step_id, error_class, error, evidence, created_at, replayed_at"
enum { DC_ID, DC_RUN, DC_WORKFLOW, DC_VERSION, DC_STEP, DC_CLASS, DC_ERROR, DC_EVIDENCE, DC_CREATED, DC_REPLAYED };

#define KEY_COLS "id, hash, principal, kind, role, tenant, name, created_at, expires_at, revoked_at"

/* The terminal statuses, as sl_run_status_terminal() has them (a unit test
 * checks the two agree). */
#define SQL_TERMINAL "('completed', 'dead', 'cancelled', 'compensated')"

/* The columns of an ai_calls row, and the values a call record (JSON, ?3)
 * gives them; AI_CALL_PUT and AI_CALL_LOG differ in where the run's fields
 * come from. */
#define AI_CALL_INSERT                                                                                  \
	"INSERT INTO ai_calls(run_id, workflow, step_id, tenant, route, model, provider, prompt_hash, "  \
	"input, output, confidence, tokens_in, tokens_out, cost_usd, latency_ms, cache_hit, outcome, "   \
	"error_class, error, created_at)"
#define AI_CALL_FIELDS                                                                                  \
	"json_extract(?3, '$.route'), json_extract(?3, '$.model'), json_extract(?3, '$.provider'), "     \
	"json_extract(?3, '$.prompt_hash'), json_extract(?3, '$.input'), json_extract(?3, '$.output'), " \
	"json_extract(?3, '$.confidence'), IFNULL(json_extract(?3, '$.tokens_in'), 0), "                 \
	"IFNULL(json_extract(?3, '$.tokens_out'), 0), IFNULL(json_extract(?3, '$.cost_usd'), 0), "       \
	"IFNULL(json_extract(?3, '$.latency_ms'), 0), IFNULL(json_extract(?3, '$.cache_hit'), 0), "      \
	"IFNULL(json_extract(?3, '$.outcome'), 'ok'), json_extract(?3, '$.error_class'), "               \
	"json_extract(?3, '$.error')"

/* Spend grouped by one column of ai_calls since ?1; completed runs are the
 * distinct runs of the group whose status is completed. */
#define AI_COSTS_SQL(col)                                                                               \
	"SELECT " col ", COUNT(*), IFNULL(SUM(c.tokens_in), 0), IFNULL(SUM(c.tokens_out), 0), "          \
	"IFNULL(SUM(c.cost_usd), 0), IFNULL(SUM(c.cache_hit), 0), "                                      \
	"COUNT(DISTINCT CASE WHEN r.status = 'completed' THEN c.run_id END) "                            \
	"FROM ai_calls c LEFT JOIN runs r ON r.id = c.run_id WHERE c.created_at >= ?1 "                  \
	"AND (?2 IS NULL OR c.tenant = ?2) GROUP BY " col " ORDER BY 5 DESC"

/* the statuses a run's SLO counts it in: ended, or parked for review */
#define SQL_ENDED "('completed', 'dead', 'cancelled', 'compensated', 'review')"

#define SQ_STMTS(X)                                                                                         \
	X(BEGIN_WRITE, "BEGIN IMMEDIATE")                                                                   \
	X(BEGIN_READ, "BEGIN")                                                                              \
	X(COMMIT, "COMMIT")                                                                                 \
	X(ROLLBACK, "ROLLBACK")                                                                             \
	X(SAVEPOINT, "SAVEPOINT one_commit")                                                                \
	X(RELEASE, "RELEASE one_commit")                                                                    \
	X(ROLLBACK_TO, "ROLLBACK TO one_commit")                                                            \
	X(DEF_PUT, "INSERT INTO workflow_defs(digest, name, version, file, source, created_at) "           \
		   "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(digest) DO NOTHING")                        \
	X(DEF_GET, "SELECT file, source FROM workflow_defs WHERE digest = ?1")                              \
	X(IDEM_GET, "SELECT run_id, expires_at FROM idempotency WHERE scope = ?1 AND key = ?2")             \
	X(IDEM_PUT, "INSERT INTO idempotency(scope, key, run_id, created_at, expires_at) "                  \
		    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(scope, key) DO UPDATE SET "                    \
		    "run_id = excluded.run_id, created_at = excluded.created_at, "                          \
		    "expires_at = excluded.expires_at")                                                     \
	X(IDEM_PURGE, "DELETE FROM idempotency WHERE expires_at > 0 AND expires_at <= ?1")                  \
	X(TRIG_GET, "SELECT state FROM trigger_state WHERE name = ?1")                                        \
	X(TRIG_PUT, "INSERT INTO trigger_state(name, state, updated_at) VALUES (?1, ?2, ?3) "                 \
		    "ON CONFLICT(name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at")  \
	X(RUN_INSERT, "INSERT INTO runs(id, workflow, version, digest, status, phase, input, "              \
		      "correlation_id, parent_run_id, root_run_id, \"trigger\", tenant, priority, "         \
		      "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'queued', 'forward', ?5, ?6, ?7, "  \
		      "?8, ?9, ?10, ?11, ?12, ?12)")                                                        \
	/* On conflict (a replay finding a task left over): release it and move the                 \
	 * fence on, so whoever held it is fenced out. */                                          \
	X(TASK_PUT, "INSERT INTO tasks(run_id, due_at, lease_owner, lease_until, fence, tenant, priority) " \
		    "VALUES (?1, ?2, NULL, 0, ?3, ?4, ?5) ON CONFLICT(run_id) DO UPDATE SET "              \
		    "due_at = excluded.due_at, lease_owner = NULL, lease_until = 0, "                       \
		    "fence = MAX(tasks.fence, excluded.fence) + 1")                                         \
	/* fair claiming: the tenants with tasks (a skip scan of tasks_claim), each  \
	 * tenant's levels and due tasks, its live leases, its virtual time */        \
	X(TENANT_NEXT, "SELECT tenant FROM tasks WHERE tenant > ?1 ORDER BY tenant LIMIT 1")              \
	X(PRIO_NEXT, "SELECT priority FROM tasks WHERE tenant = ?1 AND priority < ?2 "                      \
		     "ORDER BY priority DESC LIMIT 1")                                                      \
	X(CLAIM_LEVEL, "SELECT run_id FROM tasks WHERE tenant = ?1 AND priority = ?2 AND due_at <= ?3 "     \
		       "ORDER BY due_at, run_id LIMIT ?4")                                                  \
	X(INFLIGHT, "SELECT COUNT(*) FROM tasks WHERE capped = ?1 AND lease_until > ?2")                    \
	X(SHARE_GET, "SELECT pass FROM tenant_share WHERE tenant = ?1")                                     \
	X(SHARE_PUT, "INSERT INTO tenant_share(tenant, pass) VALUES (?1, ?2) "                              \
		     "ON CONFLICT(tenant) DO UPDATE SET pass = excluded.pass")                              \
	X(CLAIM_TAKE, "UPDATE tasks SET lease_owner = ?2, lease_until = ?3, due_at = ?3, fence = fence + 1 " \
		      "WHERE run_id = ?1 RETURNING fence")                                                  \
	/* the same for a tenant with a max_concurrency: counted on tasks_capped */                   \
	X(CLAIM_TAKE_CAPPED, "UPDATE tasks SET lease_owner = ?2, lease_until = ?3, due_at = ?3, "          \
			     "fence = fence + 1, capped = tenant WHERE run_id = ?1 RETURNING fence")        \
	/* renew, and a commit that continues: the lease (and so due_at) moves on */                \
	X(TASK_EXTEND, "UPDATE tasks SET lease_until = ?3, due_at = ?3 WHERE run_id = ?1 AND fence = ?2")   \
	X(TASK_RESCHEDULE, "UPDATE tasks SET due_at = ?3, lease_owner = NULL, lease_until = 0 "             \
			   "WHERE run_id = ?1 AND fence = ?2")                                              \
	/* only a leased task: a rescheduled one (same fence) keeps its timer */                     \
	X(TASK_RELEASE, "UPDATE tasks SET lease_owner = NULL, lease_until = 0, due_at = MIN(due_at, ?3) "    \
			"WHERE run_id = ?1 AND fence = ?2 AND lease_owner IS NOT NULL")                     \
	X(TASK_DONE, "DELETE FROM tasks WHERE run_id = ?1 AND fence = ?2")                                  \
	X(TASK_DELETE, "DELETE FROM tasks WHERE run_id = ?1 RETURNING fence")                               \
	X(NEXT_DUE, "SELECT MIN(due_at) FROM tasks")                                                        \
	X(LEASE_OWNERS, "SELECT lease_owner, COUNT(*) FROM tasks WHERE lease_owner IS NOT NULL "            \
			"AND lease_until > ?1 GROUP BY lease_owner")                                        \
	X(OWNER_RELEASE, "UPDATE tasks SET lease_owner = NULL, lease_until = 0, due_at = ?2 "               \
			 "WHERE lease_owner = ?1")                                                          \
	X(STEP_PUT, "INSERT INTO steps(run_id, step_id, idx, status, output, error, attempts, started_at, " \
		    "finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "                             \
		    "ON CONFLICT(run_id, step_id) DO UPDATE SET idx = excluded.idx, "                       \
		    "status = excluded.status, output = excluded.output, error = excluded.error, "          \
		    "attempts = excluded.attempts, started_at = excluded.started_at, "                      \
		    "finished_at = excluded.finished_at")                                                   \
	X(ATTEMPT_PUT, "INSERT INTO attempts(run_id, step_id, attempt, started_at, duration_ms, outcome, "   \
		       "error_class, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")                       \
	X(RUN_UPDATE, "UPDATE runs SET status = ?2, phase = ?3, cursor = ?4, attempt = ?5, wake_at = ?6, "  \
		      "output = COALESCE(?7, output), error = COALESCE(?8, error), updated_at = ?9, "       \
		      "finished_at = ?10, task_fence = MAX(task_fence, ?11) WHERE id = ?1")                 \
	X(DLQ_PUT, "INSERT INTO dlq(id, run_id, workflow, version, step_id, error_class, error, evidence, "  \
		   "created_at) SELECT ?1, id, workflow, version, ?3, ?4, ?5, ?6, ?7 FROM runs WHERE id = ?2") \
	X(RUN_LOAD, "SELECT " RUN_COLS " FROM runs WHERE id = ?1")                                          \
	X(STEPS_LOAD, "SELECT step_id, status, output, error, attempts, started_at, finished_at, idx "      \
		      "FROM steps WHERE run_id = ?1 ORDER BY idx, step_id")                                 \
	X(ATTEMPTS_LOAD, "SELECT step_id, attempt, started_at, duration_ms, outcome, error_class, error "   \
			 "FROM attempts WHERE run_id = ?1 ORDER BY seq")                                    \
	X(RUN_STATUS, "SELECT status FROM runs WHERE id = ?1")                                              \
	/* a run parked for review is settled for whoever waits on the tree */                      \
	X(TREE_PENDING, "SELECT COUNT(*) FROM runs WHERE root_run_id = ?1 AND status NOT IN " SQL_TERMINAL   \
			" AND status != 'review'")                                                            \
	X(COUNTS, "SELECT status, COUNT(*) FROM runs GROUP BY status")                                      \
	X(RUN_CANCEL, "UPDATE runs SET status = 'cancelled', updated_at = ?2, finished_at = ?2, "           \
		      "task_fence = MAX(task_fence, ?3) WHERE id = ?1")                                     \
	X(DLQ_GET, "SELECT run_id, replayed_at FROM dlq WHERE id = ?1")                                     \
	X(DEF_EXISTS, "SELECT 1 FROM workflow_defs WHERE digest = ?1")                                      \
	X(RUN_REPLAY, "UPDATE runs SET status = 'queued', attempt = 0, wake_at = 0, output = NULL, "        \
		      "error = NULL, finished_at = 0, updated_at = ?2, input = COALESCE(?3, input), "       \
		      "digest = COALESCE(?4, digest), version = CASE WHEN ?5 > 0 THEN ?5 ELSE version END " \
		      "WHERE id = ?1 RETURNING task_fence, tenant, priority")                               \
	X(STEP_DEL_DEAD, "DELETE FROM steps WHERE run_id = ?1 AND status = 'dead'")                         \
	X(DLQ_MARK, "UPDATE dlq SET replayed_at = ?2 WHERE id = ?1")                                        \
	X(DLQ_PURGE, "DELETE FROM dlq WHERE created_at < ?1")                                              \
	/* ?3 is one call record (JSON); the run gives workflow and tenant */                        \
	X(AI_CALL_PUT, AI_CALL_INSERT " SELECT id, workflow, ?2, tenant, " AI_CALL_FIELDS ", ?4 FROM runs WHERE id = ?1") \
	/* a call outside any run (the chat gateway): ?2 tenant, ?3 the record */                   \
	X(AI_CALL_LOG, AI_CALL_INSERT " VALUES ('', '', '', ?2, " AI_CALL_FIELDS ", ?4)")           \
	X(AI_CALLS_LOAD, "SELECT json_object('step', step_id, 'route', route, 'model', model, 'provider', "  \
			 "provider, 'prompt_hash', prompt_hash, 'input', input, 'output', output, "          \
			 "'confidence', confidence, 'tokens_in', tokens_in, 'tokens_out', tokens_out, "       \
			 "'cost_usd', cost_usd, 'latency_ms', latency_ms, 'cache_hit', "                     \
			 "json(CASE WHEN cache_hit THEN 'true' ELSE 'false' END), 'outcome', outcome, "      \
			 "'error_class', error_class, 'error', error, 'at', created_at) "                    \
			 "FROM ai_calls WHERE run_id = ?1 ORDER BY seq")                                     \
	X(AI_COSTS_WORKFLOW, AI_COSTS_SQL("c.workflow"))                                                    \
	X(AI_COSTS_ROUTE, AI_COSTS_SQL("c.route"))                                                          \
	X(AI_COSTS_MODEL, AI_COSTS_SQL("c.model"))                                                          \
	X(AI_COSTS_TENANT, AI_COSTS_SQL("c.tenant"))                                                        \
	X(RUN_STATS, "SELECT COUNT(*), IFNULL(SUM(status = 'completed'), 0), IFNULL(SUM(status IN ('dead', 'compensated')), 0), " \
		     "IFNULL(SUM(status = 'review'), 0), "                                                      \
		     "IFNULL(SUM(status = 'completed' AND finished_at - created_at > ?3), 0), "                \
		     "IFNULL(SUM((SELECT IFNULL(SUM(a.cost_usd), 0) FROM ai_calls a WHERE a.run_id = r.id)), 0) " \
		     "FROM runs r WHERE workflow = ?1 AND updated_at >= ?2 AND status IN " SQL_ENDED)     \
	X(RUN_P95, "SELECT finished_at - created_at AS d FROM runs WHERE workflow = ?1 AND updated_at >= ?2 " \
		   "AND status = 'completed' ORDER BY d LIMIT 1 OFFSET ?3")                                 \
	X(STEP_OUTPUTS, "SELECT s.output FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.workflow = ?1 "  \
			"AND s.step_id = ?2 AND s.status = 'completed' AND s.output IS NOT NULL "            \
			"ORDER BY s.finished_at DESC, s.run_id DESC LIMIT ?3 OFFSET ?4")                    \
	X(AUDIT_HEAD, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")                              \
	X(AUDIT_PUT, "INSERT INTO audit(seq, at, tenant, action, run_id, entry, prev_hash, hash) "          \
		     "VALUES (?1, ?5, ?6, ?7, ?8, ?2, ?3, ?4)")                                             \
	X(AUDIT_SCAN, "SELECT seq, prev_hash, hash, entry, at, tenant, action, run_id FROM audit ORDER BY seq") \
	X(AI_SPENT_ROUTE, "SELECT IFNULL(SUM(cost_usd), 0) FROM ai_calls WHERE route = ?1 AND created_at >= ?2") \
	X(AI_SPENT_WORKFLOW, "SELECT IFNULL(SUM(cost_usd), 0) FROM ai_calls WHERE workflow = ?1 "           \
			     "AND created_at >= ?2")                                                        \
	X(KEY_PUT, "INSERT INTO api_keys(id, hash, principal, kind, role, tenant, name, created_at, "      \
		   "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")                               \
	X(KEY_GET, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?1")                                       \
	X(KEY_LIST, "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at, id")                            \
	X(KEY_REVOKE, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at = 0")               \
	X(KEY_EXISTS, "SELECT 1 FROM api_keys WHERE id = ?1")                                               \
	X(PAUSE_PUT, "INSERT INTO pauses(kind, name, by, at) VALUES (?1, ?2, ?3, ?4) "                      \
		     "ON CONFLICT(kind, name) DO NOTHING")                                                  \
	X(PAUSE_DEL, "DELETE FROM pauses WHERE kind = ?1 AND name = ?2")                                    \
	X(PAUSE_LIST, "SELECT kind, name, by, at FROM pauses ORDER BY at, kind, name")                      \
	/* a leased task's due_at is its lease end: leave those to their holder */                  \
	X(PAUSE_WAKE, "UPDATE tasks SET due_at = MIN(due_at, ?2), parked = NULL "                          \
		      "WHERE parked = ?1 AND lease_owner IS NULL")                                          \
	X(TASK_PARK, "UPDATE tasks SET due_at = ?3, lease_owner = NULL, lease_until = 0, parked = ?4 "     \
		     "WHERE run_id = ?1 AND fence = ?2")                                                    \
	/* tenant and workflow come from the run, like a dead letter's */                            \
	X(APR_PUT, "INSERT INTO approvals(id, run_id, step_id, tenant, workflow, kind, status, reviewers, "  \
		   "escalate_to, due_at, timeout_ms, on_timeout, input, evidence, proposed, reason, created_at) " \
		   "SELECT ?1, id, ?3, tenant, workflow, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, " \
		   "?14 FROM runs WHERE id = ?2")                                                            \
	/* a timeout: an escalation (status stays pending) or a decision */                          \
	X(APR_SET, "UPDATE approvals SET status = ?2, decision = ?3, reviewers = COALESCE(?4, reviewers), "  \
		   "due_at = CASE WHEN ?5 > 0 THEN ?5 ELSE due_at END, "                                    \
		   "escalated = escalated + (?2 = 'pending'), decided_at = CASE WHEN ?2 = 'pending' THEN 0 ELSE ?6 END " \
		   "WHERE id = ?1 AND status = 'pending'")                                                   \
	X(APR_CANCEL, "UPDATE approvals SET status = 'expired', decided_at = ?2, decision = json_object('decision', " \
		      "'expired', 'final', NULL, 'by', 'system:cancel', 'reason', 'the run was cancelled', 'at', ?2) " \
		      "WHERE run_id = ?1 AND status = 'pending'")                                           \
	X(APR_CONSUME, "UPDATE approvals SET consumed_at = ?2 WHERE id = ?1")                               \
	X(APR_LOAD, "SELECT " APR_COLS " FROM approvals WHERE run_id = ?1 AND consumed_at = 0 "            \
		    "ORDER BY created_at, id")                                                              \
	X(APR_OF_RUN, "SELECT " APR_COLS " FROM approvals WHERE run_id = ?1 ORDER BY created_at, id")       \
	X(APR_GET, "SELECT " APR_COLS " FROM approvals WHERE id = ?1")                                      \
	X(APR_DECIDE, "UPDATE approvals SET status = ?2, decision = ?3, decided_at = ?4 "                   \
		      "WHERE id = ?1 AND status = 'pending'")                                                \
	/* a decision puts the parked run back at its cursor */                                      \
	X(RUN_RESUME, "UPDATE runs SET status = 'running', updated_at = ?2 WHERE id = ?1 AND status = 'review' " \
		      "RETURNING task_fence, tenant, priority")

enum sq_st {
#define SQ_ENUM(name, sql) SQ_##name,
	SQ_STMTS(SQ_ENUM)
#undef SQ_ENUM
	SQ__COUNT
};

static const char *const sq_sql[SQ__COUNT] = {
#define SQ_SQL(name, sql) [SQ_##name] = sql,
	SQ_STMTS(SQ_SQL)
#undef SQ_SQL
};

/* ---- the handle ----------------------------------------------------------------- */

struct sq_conn {
	sqlite3 *db;
	sqlite3_stmt *st[SQ__COUNT]; /* prepared on first use */
	struct sq_conn *next;        /* the reader pool's free list */
};

struct sq_store {
	struct sl_store base;
	char *path;
	bool memory;  /* ":memory:": the writer serves the reads */
	int version;  /* schema version after migrations */

	pthread_mutex_t wmu; /* the writer connection (and, in memory, all) */
	struct sq_conn w;

	pthread_mutex_t rmu; /* the reader pool */
	pthread_cond_t rcv;
	struct sq_conn *rfree;
	int ropen;
};

static struct sq_store *sq(struct sl_store *s)
{
	return (struct sq_store *)s;
}

/* ---- errors, statements, binding, columns ------------------------------------------ */

static int db_err(struct sq_conn *c, struct sl_err *err, const char *what)
{
	return sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "sqlite: %s: %s", what, sqlite3_errmsg(c->db));
}

static int bind_err(int rc, struct sl_err *err, const char *what)
{
	return sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "sqlite: %s: binding: %s", what, sqlite3_errstr(rc));
}

static sqlite3_stmt *st_get(struct sq_conn *c, enum sq_st id, struct sl_err *err)
{
	if (!c->st[id] &&
	    sqlite3_prepare_v3(c->db, sq_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL) != SQLITE_OK) {
		db_err(c, err, "prepare");
		c->st[id] = NULL;
	}
	return c->st[id];
}

/* After every use: a statement left un-reset would hold its read
 * transaction open (and keep the WAL from being checkpointed); bindings are
 * cleared because they may point at the caller's strings (SQLITE_STATIC). */
static void st_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Runs a cached statement without parameters or rows (BEGIN, COMMIT, ...). */
static int x_exec(struct sq_conn *c, enum sq_st id, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, id, err);
	if (!st)
		return SL_ESTORE;
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(c, err, sq_sql[id]);
	st_done(st);
	return rc;
}

/* Steps a bound statement that returns no rows; *changes gets the rows it
 * changed when wanted. */
static int x_run(struct sq_conn *c, sqlite3_stmt *st, int64_t *changes, struct sl_err *err, const char *what)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(c, err, what);
	if (rc == 0 && changes)
		*changes = sqlite3_changes64(c->db);
	st_done(st);
	return rc;
}

static int b_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int b_i64(sqlite3_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(st, i, v);
}

/* JSON is stored as compact text; a NULL document is SQL NULL. */
static int b_json(sqlite3_stmt *st, int i, const json_t *j)
{
	if (!j)
		return sqlite3_bind_null(st, i);
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
	if (!s)
		return SQLITE_NOMEM;
	int rc = sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	free(s);
	return rc;
}

static const char *c_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static char *c_strdup(sqlite3_stmt *st, int i)
{
	return sl_strdup(c_text(st, i));
}

/* SQL NULL and unreadable text come back as JSON null: a damaged document
 * must not make a run unloadable. */
static json_t *c_json(sqlite3_stmt *st, int i)
{
	const char *t = c_text(st, i);
	if (!t)
		return json_null();
	json_error_t je;
	json_t *j = json_loadb(t, (size_t)sqlite3_column_bytes(st, i), JSON_DECODE_ANY, &je);
	if (!j) {
		sl_log(SL_LOG_WARN, "store", "unreadable JSON column", "error", je.text, NULL);
		return json_null();
	}
	return j;
}

static json_t *jstr(const char *s)
{
	json_t *j = s ? json_string(s) : NULL;
	return j ? j : json_null();
}

static json_t *c_jstr(sqlite3_stmt *st, int i)
{
	return jstr(c_text(st, i));
}

static json_t *jtime(int64_t ms)
{
	return ms > 0 ? json_integer(ms) : json_null();
}

/* ---- connections -------------------------------------------------------------------- */

static void conn_close(struct sq_conn *c)
{
	for (int i = 0; i < SQ__COUNT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	memset(c, 0, sizeof *c);
}

static int conn_exec(struct sq_conn *c, const char *sql, struct sl_err *err)
{
	char *msg = NULL;
	if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "sqlite: %.80s: %s", sql,
		   msg ? msg : sqlite3_errmsg(c->db));
	sqlite3_free(msg);
	return SL_ESTORE;
}

/* WAL is what lets readers run beside the writer; a file that cannot switch
 * (an unusual VFS) is refused rather than run with a weaker promise. */
static int set_wal(struct sq_conn *c, bool memory, struct sl_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
		return db_err(c, err, "journal_mode");
	int rc = sqlite3_step(st);
	const char *mode = rc == SQLITE_ROW ? c_text(st, 0) : NULL;
	bool ok = mode && (strcmp(mode, "wal") == 0 || (memory && strcmp(mode, "memory") == 0));
	int ret = 0;
	if (rc != SQLITE_ROW)
		ret = db_err(c, err, "journal_mode");
	else if (!ok)
		ret = sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "sqlite: cannot use WAL (journal mode is %s)",
				 mode ? mode : "?");
	sqlite3_finalize(st);
	return ret;
}

static int conn_open(struct sq_conn *c, const char *path, bool writer, bool memory, struct sl_err *err)
{
	memset(c, 0, sizeof *c);
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
	int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
	if (rc != SQLITE_OK) {
		sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "sqlite: open %s: %s", path,
			   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		conn_close(c);
		return SL_ESTORE;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
	if (writer) {
		/* synchronous=FULL: acknowledged is durable even on power loss
		 * (NORMAL would only survive a process crash). */
		rc = set_wal(c, memory, err);
		if (!rc)
			rc = conn_exec(c,
				       "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
				       "PRAGMA cache_size=-16384; PRAGMA journal_size_limit=67108864;",
				       err);
	} else {
		rc = conn_exec(c, "PRAGMA query_only=1; PRAGMA cache_size=-8192;", err);
	}
	if (rc) {
		sl_err_prefix(err, "%s", path);
		conn_close(c);
	}
	return rc;
}

/* ---- transactions -------------------------------------------------------------------- */

static int wr_begin(struct sq_store *s, struct sl_err *err)
{
	pthread_mutex_lock(&s->wmu);
	if (x_exec(&s->w, SQ_BEGIN_WRITE, err)) {
		pthread_mutex_unlock(&s->wmu);
		return SL_ESTORE;
	}
	return 0;
}

static void wr_abort(struct sq_store *s)
{
	/* After some errors (I/O, full disk) SQLite has already rolled back. */
	if (!sqlite3_get_autocommit(s->w.db))
		x_exec(&s->w, SQ_ROLLBACK, NULL);
	pthread_mutex_unlock(&s->wmu);
}

/* Commits when rc is 0, else rolls back; returns the outcome. */
static int wr_end(struct sq_store *s, int rc, struct sl_err *err)
{
	if (rc == 0)
		rc = x_exec(&s->w, SQ_COMMIT, err);
	if (rc) {
		wr_abort(s);
		return rc;
	}
	pthread_mutex_unlock(&s->wmu);
	return 0;
}

/* A reader connection for one read transaction; NULL (err set) on failure.
 * In memory the writer serves, under its mutex. */
static struct sq_conn *rd_get(struct sq_store *s, struct sl_err *err)
{
	if (s->memory) {
		pthread_mutex_lock(&s->wmu);
		return &s->w;
	}
	pthread_mutex_lock(&s->rmu);
	while (!s->rfree && s->ropen >= SQ_READERS_MAX)
		pthread_cond_wait(&s->rcv, &s->rmu);
	struct sq_conn *c = s->rfree;
	if (c) {
		s->rfree = c->next;
		pthread_mutex_unlock(&s->rmu);
		return c;
	}
	s->ropen++;
	pthread_mutex_unlock(&s->rmu);

	/* Opened outside the pool's lock: it touches the file. */
	c = sl_xmalloc(sizeof *c);
	if (conn_open(c, s->path, false, false, err) == 0)
		return c;
	free(c);
	pthread_mutex_lock(&s->rmu);
	s->ropen--;
	pthread_cond_signal(&s->rcv);
	pthread_mutex_unlock(&s->rmu);
	return NULL;
}

static void rd_put(struct sq_store *s, struct sq_conn *c)
{
	if (s->memory) {
		pthread_mutex_unlock(&s->wmu);
		return;
	}
	pthread_mutex_lock(&s->rmu);
	c->next = s->rfree;
	s->rfree = c;
	pthread_cond_signal(&s->rcv);
	pthread_mutex_unlock(&s->rmu);
}

/* Several reads that must agree (a run and its steps) share a snapshot. */
static struct sq_conn *rd_begin(struct sq_store *s, struct sl_err *err)
{
	struct sq_conn *c = rd_get(s, err);
	if (c && x_exec(c, SQ_BEGIN_READ, err)) {
		rd_put(s, c);
		return NULL;
	}
	return c;
}

static void rd_end(struct sq_store *s, struct sq_conn *c)
{
	if (!sqlite3_get_autocommit(c->db))
		x_exec(c, SQ_COMMIT, NULL); /* a read transaction: nothing to lose */
	rd_put(s, c);
}

/* ---- open, migrations, close -------------------------------------------------------------- */

/* The applied version, 0 for a new database (no schema_migrations yet). */
static int read_version(struct sq_conn *c, int *out, struct sl_err *err)
{
	sqlite3_stmt *st = NULL;
	*out = 0;
	if (sqlite3_prepare_v2(c->db,
			       "SELECT (SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND "
			       "name = 'schema_migrations')",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(c, err, "reading the schema");
	int rc = sqlite3_step(st);
	bool have = rc == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_err(c, err, "reading the schema");
	if (!have)
		return 0;
	if (sqlite3_prepare_v2(c->db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &st, NULL) !=
	    SQLITE_OK)
		return db_err(c, err, "reading schema_migrations");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : db_err(c, err, "reading schema_migrations");
}

static int apply_migration(struct sq_conn *c, const struct sq_migration *m, struct sl_err *err)
{
	if (conn_exec(c, m->sql, err)) {
		sl_err_prefix(err, "migration %d (%s)", m->version, m->name);
		return SL_ESTORE;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?1, ?2, ?3)",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(c, err, "recording a migration");
	int rc = b_i64(st, 1, m->version) | b_text(st, 2, m->name) | b_i64(st, 3, sl_now_ms());
	if (rc) {
		sqlite3_finalize(st);
		return bind_err(rc, err, "recording a migration");
	}
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(c, err, "recording a migration");
	sqlite3_finalize(st);
	return rc;
}

/* Brings the schema up to date in one write transaction; the write lock is
 * taken only when something is missing, so opening an up-to-date database
 * beside a busy server does not queue behind its writes. */
static int migrate(struct sq_store *s, struct sl_err *err)
{
	for (int i = 0; i < SQ_SCHEMA_VERSION; i++)
		SL_ASSERT(sq_migrations[i].version == i + 1);
	struct sq_conn *c = &s->w;
	int have;
	int rc = read_version(c, &have, err);
	if (rc == 0 && have < SQ_SCHEMA_VERSION) {
		rc = x_exec(c, SQ_BEGIN_WRITE, err);
		if (rc)
			return rc;
		rc = conn_exec(c,
			       "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
			       "name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
			       err);
		if (!rc)
			rc = read_version(c, &have, err); /* another process may have done it */
		for (int i = have; rc == 0 && i < SQ_SCHEMA_VERSION; i++)
			rc = apply_migration(c, &sq_migrations[i], err);
		if (!rc)
			rc = x_exec(c, SQ_COMMIT, err);
		if (rc && !sqlite3_get_autocommit(c->db))
			x_exec(c, SQ_ROLLBACK, NULL);
		if (!rc && have < SQ_SCHEMA_VERSION)
			sl_log(SL_LOG_INFO, "store", "schema migrated", "path", s->path, NULL);
		have = SQ_SCHEMA_VERSION;
	}
	if (rc)
		return rc;
	if (have > SQ_SCHEMA_VERSION)
		return sl_err_set(err, SL_ESTORE, SL_CLASS_NONE,
				  "sqlite: %s: schema version %d is newer than this build knows (%d): upgrade sluice",
				  s->path, have, SQ_SCHEMA_VERSION);
	s->version = have;
	return 0;
}

static void sq_close(struct sl_store *base)
{
	struct sq_store *s = sq(base);
	/* Readers first: the last connection to close checkpoints the WAL. */
	while (s->rfree) {
		struct sq_conn *c = s->rfree;
		s->rfree = c->next;
		conn_close(c);
		free(c);
	}
	conn_close(&s->w);
	pthread_mutex_destroy(&s->wmu);
	pthread_mutex_destroy(&s->rmu);
	pthread_cond_destroy(&s->rcv);
	free(s->path);
	free(s);
}

static int make_parent_dir(const char *path, struct sl_err *err)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	char *dir = sl_strndup(path, (size_t)(slash - path));
	int rc = sl_mkdirs(dir, 0755);
	if (rc)
		sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "sqlite: cannot create the folder %s", dir);
	free(dir);
	return rc ? SL_ESTORE : 0;
}

static int sq_open(const char *target, struct sl_store **out, struct sl_err *err)
{
	if (!sqlite3_threadsafe())
		return sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "sqlite: library built without thread support");
	bool memory = strcmp(target, ":memory:") == 0;
	if (!memory && make_parent_dir(target, err))
		return SL_ESTORE;
	struct sq_store *s = sl_xcalloc(1, sizeof *s);
	s->base.ops = &sl_store_sqlite_ops;
	s->path = sl_strdup(target);
	s->memory = memory;
	pthread_mutex_init(&s->wmu, NULL);
	pthread_mutex_init(&s->rmu, NULL);
	pthread_cond_init(&s->rcv, NULL);
	int rc = conn_open(&s->w, target, true, memory, err);
	if (!rc)
		rc = migrate(s, err);
	if (rc) {
		sq_close(&s->base);
		return rc;
	}
	*out = &s->base;
	return 0;
}

static int sq_schema_version(struct sl_store *s)
{
	return sq(s)->version;
}

/* ---- workflow definitions ------------------------------------------------------------------ */

static int sq_def_put(struct sl_store *base, const char *digest, const char *name, int version, const char *file,
		      const char *source, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	sqlite3_stmt *st = st_get(&s->w, SQ_DEF_PUT, err);
	if (!st)
		return wr_end(s, SL_ESTORE, err);
	int b = b_text(st, 1, digest) | b_text(st, 2, name) | b_i64(st, 3, version) | b_text(st, 4, file) |
		b_text(st, 5, source) | b_i64(st, 6, sl_now_ms());
	rc = b ? (st_done(st), bind_err(b, err, "def_put")) : x_run(&s->w, st, NULL, err, "def_put");
	return wr_end(s, rc, err);
}

static int sq_def_get(struct sl_store *base, const char *digest, char **file, char **source, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, SQ_DEF_GET, err);
	int rc = SL_ESTORE;
	if (st) {
		int b = b_text(st, 1, digest);
		int step = b ? SQLITE_MISUSE : sqlite3_step(st);
		if (step == SQLITE_ROW) {
			*file = c_strdup(st, 0);
			*source = c_strdup(st, 1);
			rc = 0;
		} else if (step == SQLITE_DONE) {
			rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no workflow definition %.80s",
					digest);
		} else {
			rc = b ? bind_err(b, err, "def_get") : db_err(c, err, "def_get");
		}
		st_done(st);
	}
	rd_put(s, c);
	return rc;
}

/* ---- idempotency ------------------------------------------------------------------------------ */

/* 0 with the run's id when (scope, key) is known and not expired, else
 * SL_ENOTFOUND (or SL_ESTORE). */
static int idem_lookup(struct sq_conn *c, const char *scope, const char *key, int64_t now, char id[SL_ID_MAX],
		       struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_IDEM_GET, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, scope) | b_text(st, 2, key);
	if (b) {
		st_done(st);
		return bind_err(b, err, "idempotency lookup");
	}
	int rc = sqlite3_step(st);
	int ret = SL_ENOTFOUND;
	if (rc == SQLITE_ROW) {
		int64_t expires = sqlite3_column_int64(st, 1);
		if (expires == 0 || expires > now) {
			sl_store__id_copy(id, c_text(st, 0));
			ret = 0;
		}
	} else if (rc != SQLITE_DONE) {
		ret = db_err(c, err, "idempotency lookup");
	}
	st_done(st);
	return ret;
}

static int sq_idem_get(struct sl_store *base, const char *scope, const char *key, char run_id_out[SL_ID_MAX],
		       struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	int rc = idem_lookup(c, scope, key, sl_now_ms(), run_id_out, err);
	rd_put(s, c);
	if (rc == SL_ENOTFOUND)
		sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no idempotency record %.80s", key);
	return rc;
}

/* A DELETE under the writer; *purged gets the rows deleted. */
static int purge(struct sq_store *s, enum sq_st id, int64_t t, int64_t *purged, struct sl_err *err)
{
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	sqlite3_stmt *st = st_get(&s->w, id, err);
	if (!st)
		return wr_end(s, SL_ESTORE, err);
	int b = b_i64(st, 1, t);
	rc = b ? (st_done(st), bind_err(b, err, "purge")) : x_run(&s->w, st, purged, err, "purge");
	return wr_end(s, rc, err);
}

static int sq_idem_purge(struct sl_store *base, int64_t now_ms, int64_t *purged, struct sl_err *err)
{
	return purge(sq(base), SQ_IDEM_PURGE, now_ms, purged, err);
}

/* ---- trigger state ---------------------------------------------------------------------------- */

static int sq_trigger_state_get(struct sl_store *base, const char *name, json_t **out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	int rc = SL_ESTORE;
	sqlite3_stmt *st = st_get(c, SQ_TRIG_GET, err);
	if (st) {
		int b = b_text(st, 1, name);
		int step = b ? SQLITE_ERROR : sqlite3_step(st);
		if (step == SQLITE_ROW) {
			*out = json_loads(c_text(st, 0), 0, NULL);
			rc = *out ? 0 : sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "store: trigger state %.80s is not JSON",
						   name);
		} else if (step == SQLITE_DONE) {
			rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no trigger state %.80s", name);
		} else {
			rc = b ? bind_err(b, err, "trigger state") : db_err(c, err, "trigger state");
		}
		st_done(st);
	}
	rd_put(s, c);
	return rc;
}

static int sq_trigger_state_put(struct sl_store *base, const char *name, const json_t *state, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	sqlite3_stmt *st = st_get(&s->w, SQ_TRIG_PUT, err);
	if (!st)
		return wr_end(s, SL_ESTORE, err);
	int b = b_text(st, 1, name) | b_json(st, 2, state) | b_i64(st, 3, sl_now_ms());
	rc = b ? (st_done(st), bind_err(b, err, "trigger state")) : x_run(&s->w, st, NULL, err, "trigger state");
	return wr_end(s, rc, err);
}

/* ---- creating runs ------------------------------------------------------------------------------ */

static int task_put(struct sq_conn *c, const char *run_id, int64_t due, int64_t fence, const char *tenant,
		    int64_t priority, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_TASK_PUT, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id) | b_i64(st, 2, due) | b_i64(st, 3, fence) | b_text(st, 4, tenant) |
		b_i64(st, 5, priority);
	if (b) {
		st_done(st);
		return bind_err(b, err, "task insert");
	}
	return x_run(c, st, NULL, err, "task insert");
}

static int run_insert(struct sq_conn *c, const struct sl_run_new *r, const char *id, int64_t now,
		      struct sl_err *err)
{
	char corr[SL_ID_MAX];
	const char *correlation = r->correlation_id;
	if (!correlation) {
		sl_id_new("corr_", corr);
		correlation = corr;
	}
	sqlite3_stmt *st = st_get(c, SQ_RUN_INSERT, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, id) | b_text(st, 2, r->workflow) | b_i64(st, 3, r->version) |
		b_text(st, 4, r->digest ? r->digest : "") | b_json(st, 5, r->input) | b_text(st, 6, correlation) |
		b_text(st, 7, r->parent_run_id) | b_text(st, 8, r->root_run_id ? r->root_run_id : id) |
		b_text(st, 9, r->trigger) | b_text(st, 10, r->tenant ? r->tenant : "default") |
		b_i64(st, 11, r->priority) | b_i64(st, 12, now);
	if (b) {
		st_done(st);
		return bind_err(b, err, "run insert");
	}
	return x_run(c, st, NULL, err, "run insert");
}

static int idem_put(struct sq_conn *c, const struct sl_run_new *r, const char *id, int64_t now,
		    struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_IDEM_PUT, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, r->idem_scope ? r->idem_scope : "") | b_text(st, 2, r->idem_key) |
		b_text(st, 3, id) | b_i64(st, 4, now) | b_i64(st, 5, r->idem_ttl_ms > 0 ? now + r->idem_ttl_ms : 0);
	if (b) {
		st_done(st);
		return bind_err(b, err, "idempotency insert");
	}
	return x_run(c, st, NULL, err, "idempotency insert");
}

/* ---- the audit log --------------------------------------------------------------------------- */

/* Appends one entry inside the caller's write transaction: reads the head,
 * seals the entry after it, inserts. Reading the head here (not from a
 * cache) keeps the chain whole when another process appends too, and a
 * savepoint rolled back takes its entries with it. run_id (may be NULL)
 * is set into the entry. */
static int audit_put(struct sq_conn *c, const json_t *entry, const char *run_id, int64_t now,
		     char hash_out[SL_AUDIT_HASH_LEN + 1], struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_AUDIT_HEAD, err);
	if (!st)
		return SL_ESTORE;
	int64_t head = 0;
	char prev[SL_AUDIT_HASH_LEN + 1] = SL_AUDIT_GENESIS;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		head = sqlite3_column_int64(st, 0);
		const char *h = c_text(st, 1);
		snprintf(prev, sizeof prev, "%s", h ? h : "");
	}
	st_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_err(c, err, "audit head");
	char hash[SL_AUDIT_HASH_LEN + 1];
	char *text = sl_store__audit_seal(entry, head, prev, now, run_id, hash);
	if (!text)
		return sl_err_set(err, SL_ENOMEM, SL_CLASS_NONE, "store: audit entry: out of memory");
	st = st_get(c, SQ_AUDIT_PUT, err);
	if (!st) {
		free(text);
		return SL_ESTORE;
	}
	struct sl_audit_cols col;
	sl_store__audit_cols(entry, run_id, now, &col);
	int b = b_i64(st, 1, head + 1) | b_text(st, 2, text) | b_text(st, 3, prev) | b_text(st, 4, hash) |
		b_i64(st, 5, col.at) | b_text(st, 6, col.tenant) | b_text(st, 7, col.action) | b_text(st, 8, col.run_id);
	if (b) {
		st_done(st);
		free(text);
		return bind_err(b, err, "audit");
	}
	rc = x_run(c, st, NULL, err, "audit");
	free(text);
	if (rc == 0 && hash_out)
		memcpy(hash_out, hash, sizeof hash);
	return rc;
}

static int audit_put_all(struct sq_conn *c, const json_t *entries, int64_t now, char hash_out[SL_AUDIT_HASH_LEN + 1],
			 struct sl_err *err)
{
	size_t i;
	const json_t *e;
	json_array_foreach(entries, i, e) {
		int rc = audit_put(c, e, NULL, now, hash_out, err);
		if (rc)
			return rc;
	}
	return 0;
}

/* Creates a run, its first task and its idempotency record inside the
 * caller's write transaction (run_create, and spawns in a commit). An
 * expired record is replaced. */
static int create_tx(struct sq_store *s, const struct sl_run_new *r, int64_t now, char id[SL_ID_MAX],
		     bool *existed, struct sl_err *err)
{
	struct sq_conn *c = &s->w;
	*existed = false;
	if (r->idem_key) {
		int rc = idem_lookup(c, r->idem_scope ? r->idem_scope : "", r->idem_key, now, id, err);
		if (rc == 0) {
			*existed = true;
			return 0;
		}
		if (rc != SL_ENOTFOUND)
			return rc;
	}
	sl_id_new("run_", id);
	int rc = run_insert(c, r, id, now, err);
	if (!rc)
		rc = task_put(c, id, r->due_at > 0 ? r->due_at : now, 0, r->tenant ? r->tenant : "default",
			      r->priority, err);
	if (!rc && r->idem_key)
		rc = idem_put(c, r, id, now, err);
	if (!rc && r->audit)
		rc = audit_put(c, r->audit, id, now, NULL, err);
	return rc;
}

static int sq_run_create_many(struct sl_store *base, struct sl_store_create *items, size_t n)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = &s->w;
	struct sl_err txerr;
	sl_err_clear(&txerr);
	int rc = wr_begin(s, &txerr);
	if (rc)
		goto failed;
	int64_t now = sl_now_ms();
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct sl_store_create *it = &items[i];
		rc = x_exec(c, SQ_SAVEPOINT, &txerr);
		if (rc)
			break;
		it->rc = create_tx(s, it->r, now, it->run_id, &it->existed, &it->err);
		if (it->rc && sqlite3_get_autocommit(c->db)) {
			/* SQLite rolled the whole transaction back. */
			rc = it->rc;
			txerr = it->err;
			break;
		}
		if (it->rc)
			rc = x_exec(c, SQ_ROLLBACK_TO, &txerr);
		if (!rc)
			rc = x_exec(c, SQ_RELEASE, &txerr);
	}
	rc = wr_end(s, rc, &txerr);
failed:
	if (rc) {
		for (size_t i = 0; i < n; i++) {
			items[i].rc = rc;
			items[i].err = txerr;
			items[i].existed = false;
		}
	}
	return rc;
}

/* ---- claiming --------------------------------------------------------------------------------- */

/* A step of the claim that returns one value: 1 with a row, 0 without,
 * or a negative code. */
static int one_row(struct sq_conn *c, sqlite3_stmt *st, int b, struct sl_err *err)
{
	int rc = b ? SQLITE_MISUSE : sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return b ? bind_err(b, err, "claim") : db_err(c, err, "claim");
}

/* The next tenant after prev ("" for the first) that has any task, into
 * *out (owned). One probe of tasks_claim per tenant (a skip scan). */
static int tenant_next(struct sq_conn *c, const char *prev, char **out, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_TENANT_NEXT, err);
	if (!st)
		return SL_ESTORE;
	int ret = one_row(c, st, b_text(st, 1, prev), err);
	if (ret == 1)
		*out = sl_strdup(c_text(st, 0));
	st_done(st);
	return ret;
}

/* The tenant's next lower priority level that has any task, into *level. */
static int prio_next(struct sq_conn *c, const char *tenant, int64_t *level, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_PRIO_NEXT, err);
	if (!st)
		return SL_ESTORE;
	int ret = one_row(c, st, b_text(st, 1, tenant) | b_i64(st, 2, *level), err);
	if (ret == 1)
		*level = sqlite3_column_int64(st, 0);
	st_done(st);
	return ret;
}

/* One integer or real the statement returns (0 without a row). */
static int one_num(struct sq_conn *c, sqlite3_stmt *st, int b, double *v, struct sl_err *err)
{
	int ret = one_row(c, st, b, err);
	*v = ret == 1 ? sqlite3_column_double(st, 0) : 0;
	st_done(st);
	return ret < 0 ? ret : 0;
}

/* A claim in the making: the tenants with due work, in tenant order, and
 * their candidates (each tenant's in its claim order, at most its cap). */
struct sq_claim {
	struct sq_conn *c;
	int64_t now;
	size_t max;
	struct sl_fair_cand *cand;
	char **tenant;
	size_t *first;         /* cand i's candidates start at ids[first[i]] */
	bool *capped;          /* cand i has a max_concurrency */
	size_t n, alloc;
	struct sl_task *ids;
	size_t nids, ids_alloc;
};

/* Appends up to want due tasks of one of the tenant's levels, oldest due first. */
static int claim_level(struct sq_claim *cl, const char *tenant, int64_t level, size_t want, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(cl->c, SQ_CLAIM_LEVEL, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, tenant) | b_i64(st, 2, level) | b_i64(st, 3, cl->now) | b_i64(st, 4, (int64_t)want);
	if (b) {
		st_done(st);
		return bind_err(b, err, "claim");
	}
	int rc = SQLITE_DONE;
	size_t got = 0;
	while (got < want && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cl->nids == cl->ids_alloc) {
			cl->ids_alloc = cl->ids_alloc ? 2 * cl->ids_alloc : 64;
			cl->ids = sl_xrealloc(cl->ids, cl->ids_alloc * sizeof *cl->ids);
		}
		sl_store__id_copy(cl->ids[cl->nids++].run_id, c_text(st, 0));
		got++;
	}
	int ret = (got < want && rc != SQLITE_DONE) ? db_err(cl->c, err, "claim") : 0;
	st_done(st);
	return ret;
}

/* How many more of the tenant's tasks this claim may take: the batch, or
 * less under max_concurrency (its live leases, counted on tasks_capped). */
static int tenant_room(struct sq_claim *cl, const char *tenant, int limit, size_t *room, struct sl_err *err)
{
	*room = cl->max;
	if (limit <= 0)
		return 0;
	sqlite3_stmt *st = st_get(cl->c, SQ_INFLIGHT, err);
	if (!st)
		return SL_ESTORE;
	double inflight = 0;
	int rc = one_num(cl->c, st, b_text(st, 1, tenant) | b_i64(st, 2, cl->now), &inflight, err);
	if (rc)
		return rc;
	size_t free_slots = inflight >= limit ? 0 : (size_t)(limit - (int64_t)inflight);
	if (free_slots < *room)
		*room = free_slots;
	return 0;
}

/* Adds the tenant when it has due work and room: its candidates, walking
 * its priority levels highest first (one probe per level, then a range of
 * due tasks: neither its future timers nor its backlog beyond the batch
 * are read). */
static int claim_tenant(struct sq_claim *cl, const struct sl_fair *fair, char *tenant, struct sl_err *err)
{
	double weight;
	int limit;
	sl_store__fair_share(fair, tenant, &weight, &limit);
	size_t room = 0;
	int rc = tenant_room(cl, tenant, limit, &room, err);
	size_t first = cl->nids;
	int64_t level = INT64_MAX;
	while (rc == 0 && cl->nids - first < room) {
		int more = prio_next(cl->c, tenant, &level, err);
		if (more <= 0) {
			rc = more;
			break;
		}
		rc = claim_level(cl, tenant, level, room - (cl->nids - first), err);
	}
	if (rc || cl->nids == first) {
		free(tenant);
		return rc;
	}
	if (cl->n == cl->alloc) {
		cl->alloc = cl->alloc ? 2 * cl->alloc : 8;
		cl->cand = sl_xrealloc(cl->cand, cl->alloc * sizeof *cl->cand);
		cl->tenant = sl_xrealloc(cl->tenant, cl->alloc * sizeof *cl->tenant);
		cl->first = sl_xrealloc(cl->first, cl->alloc * sizeof *cl->first);
		cl->capped = sl_xrealloc(cl->capped, cl->alloc * sizeof *cl->capped);
	}
	cl->capped[cl->n] = limit > 0;
	cl->cand[cl->n] = (struct sl_fair_cand){.weight = weight, .cap = cl->nids - first};
	cl->tenant[cl->n] = tenant;
	cl->first[cl->n++] = first;
	return 0;
}

/* Leases one selected task: owner, lease end (and so due_at), fence + 1. */
static int claim_take(struct sq_conn *c, struct sl_task *t, const char *owner, int64_t until, bool capped,
		      struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, capped ? SQ_CLAIM_TAKE_CAPPED : SQ_CLAIM_TAKE, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, t->run_id) | b_text(st, 2, owner) | b_i64(st, 3, until);
	int rc = b ? SQLITE_MISUSE : sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		t->fence = sqlite3_column_int64(st, 0);
		t->lease_until = until;
	} else {
		ret = b ? bind_err(b, err, "claim") : db_err(c, err, "claim");
	}
	st_done(st);
	return ret;
}

/* Reads the virtual times of the tenants (only needed when two or more
 * share the batch), and after the split stores the served ones' new. */
static int shares_io(struct sq_claim *cl, bool put, struct sl_err *err)
{
	for (size_t i = 0; i < cl->n; i++) {
		if (put && cl->cand[i].n == 0)
			continue;
		sqlite3_stmt *st = st_get(cl->c, put ? SQ_SHARE_PUT : SQ_SHARE_GET, err);
		if (!st)
			return SL_ESTORE;
		int rc;
		if (put) {
			double pass = cl->cand[i].eff + (double)cl->cand[i].n / cl->cand[i].weight;
			int b = b_text(st, 1, cl->tenant[i]) | sqlite3_bind_double(st, 2, pass);
			rc = b ? (st_done(st), bind_err(b, err, "claim")) : x_run(cl->c, st, NULL, err, "claim");
		} else {
			rc = one_num(cl->c, st, b_text(st, 1, cl->tenant[i]), &cl->cand[i].pass, err);
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* Splits the batch among the tenants and leases the chosen tasks, in slot
 * order. */
static int claim_split(struct sq_claim *cl, const char *owner, int64_t until, struct sl_task *out, size_t *got,
		       struct sl_err *err)
{
	bool shared = cl->n > 1;
	int rc = shared ? shares_io(cl, false, err) : 0;
	size_t *order = sl_xcalloc(cl->max, sizeof *order);
	size_t *taken = sl_xcalloc(cl->n ? cl->n : 1, sizeof *taken);
	size_t n = rc ? 0 : sl_store__fair_split(cl->cand, cl->n, cl->max, order);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		size_t t = order[i];
		out[i] = cl->ids[cl->first[t] + taken[t]++];
		rc = claim_take(cl->c, &out[i], owner, until, cl->capped[t], err);
	}
	/* One tenant alone needs no bookkeeping: a trailing virtual time is
	 * lifted to the leader's when others come (SL_FAIR_LAG). */
	if (rc == 0 && shared)
		rc = shares_io(cl, true, err);
	free(order);
	free(taken);
	*got = rc ? 0 : n;
	return rc;
}

static void claim_free(struct sq_claim *cl)
{
	for (size_t i = 0; i < cl->n; i++)
		free(cl->tenant[i]);
	free(cl->tenant);
	free(cl->cand);
	free(cl->first);
	free(cl->capped);
	free(cl->ids);
}

static int64_t sq_next_due(struct sl_store *base);

static int sq_claim(struct sl_store *base, const char *owner, int64_t lease_ms, size_t max, struct sl_task *out,
		    size_t *n, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int64_t now = sl_now_ms();
	/* An idle poll answers from a reader and never queues on the writer. */
	if (sq_next_due(base) > now)
		return 0;
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	/* Select first, then update: the updates move rows within the index
	 * being walked. Tenants are found by a skip scan of tasks_claim, each
	 * tenant's due tasks by its priority levels; then the batch is split
	 * among them (sl_store__fair_split). */
	struct sq_claim cl = {.c = &s->w, .now = now, .max = max};
	char *prev = sl_strdup("");
	while (rc == 0) {
		char *t = NULL;
		int more = tenant_next(&s->w, prev, &t, err);
		if (more <= 0) {
			rc = more;
			break;
		}
		free(prev);
		prev = sl_strdup(t);
		rc = claim_tenant(&cl, &base->fair, t, err);
	}
	free(prev);
	size_t got = 0;
	if (rc == 0)
		rc = claim_split(&cl, owner, now + lease_ms, out, &got, err);
	claim_free(&cl);
	rc = wr_end(s, rc, err);
	*n = rc ? 0 : got;
	return rc;
}

static int task_extend(struct sq_conn *c, const char *run_id, int64_t fence, int64_t until, int64_t *changed,
		       struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_TASK_EXTEND, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id) | b_i64(st, 2, fence) | b_i64(st, 3, until);
	if (b) {
		st_done(st);
		return bind_err(b, err, "lease");
	}
	return x_run(c, st, changed, err, "lease");
}

static int sq_renew(struct sl_store *base, struct sl_task *tasks, size_t n, int64_t lease_ms, bool *lost,
		    struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	int64_t until = sl_now_ms() + lease_ms;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int64_t changed = 0;
		rc = task_extend(&s->w, tasks[i].run_id, tasks[i].fence, until, &changed, err);
		lost[i] = changed == 0;
	}
	rc = wr_end(s, rc, err);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (!lost[i])
			tasks[i].lease_until = until;
	return rc;
}

/* Gives leases back: claimable at once. The fence is kept (the holder is
 * the one giving it back); a task whose fence moved on is left alone. */
static int sq_release(struct sl_store *base, const struct sl_task *tasks, size_t n, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	int64_t now = sl_now_ms();
	for (size_t i = 0; rc == 0 && i < n; i++) {
		sqlite3_stmt *st = st_get(&s->w, SQ_TASK_RELEASE, err);
		if (!st) {
			rc = SL_ESTORE;
			break;
		}
		int b = b_text(st, 1, tasks[i].run_id) | b_i64(st, 2, tasks[i].fence) | b_i64(st, 3, now);
		rc = b ? (st_done(st), bind_err(b, err, "release")) : x_run(&s->w, st, NULL, err, "release");
	}
	return wr_end(s, rc, err);
}

/* due_at is already "next claimable" (a leased task's is its lease end), so
 * this is one probe of the tasks_due index. On a store error it answers
 * "now", so the worker's claim runs and reports the error. */
static int64_t sq_next_due(struct sl_store *base)
{
	struct sq_store *s = sq(base);
	struct sl_err e;
	struct sq_conn *c = rd_get(s, &e);
	if (!c)
		return sl_now_ms();
	int64_t due = sl_now_ms();
	sqlite3_stmt *st = st_get(c, SQ_NEXT_DUE, &e);
	if (st) {
		if (sqlite3_step(st) == SQLITE_ROW)
			due = sqlite3_column_type(st, 0) == SQLITE_NULL ? INT64_MAX : sqlite3_column_int64(st, 0);
		st_done(st);
	}
	rd_put(s, c);
	return due;
}

/* ---- loading a run ------------------------------------------------------------------------------ */

static void run_from_row(sqlite3_stmt *st, struct sl_run *r)
{
	sl_store__id_copy(r->id, c_text(st, RC_ID));
	r->workflow = c_strdup(st, RC_WORKFLOW);
	r->version = sqlite3_column_int(st, RC_VERSION);
	r->digest = c_strdup(st, RC_DIGEST);
	int status = sl_run_status_parse(c_text(st, RC_STATUS));
	r->status = status < 0 ? SL_RUN_QUEUED : (enum sl_run_status)status;
	r->phase = sl_store__phase_parse(c_text(st, RC_PHASE)) == SL_PHASE_COMPENSATE ? SL_PHASE_COMPENSATE
										     : SL_PHASE_FORWARD;
	r->cursor = sqlite3_column_int(st, RC_CURSOR);
	r->attempt = sqlite3_column_int(st, RC_ATTEMPT);
	r->wake_at = sqlite3_column_int64(st, RC_WAKE_AT);
	r->input = c_json(st, RC_INPUT);
	r->output = c_json(st, RC_OUTPUT);
	r->error = c_json(st, RC_ERROR);
	r->correlation_id = c_strdup(st, RC_CORRELATION);
	r->parent_run_id = c_strdup(st, RC_PARENT);
	r->root_run_id = c_strdup(st, RC_ROOT);
	r->trigger = c_strdup(st, RC_TRIGGER);
	r->tenant = c_strdup(st, RC_TENANT);
	r->priority = sqlite3_column_int(st, RC_PRIORITY);
	r->created_at = sqlite3_column_int64(st, RC_CREATED);
	r->updated_at = sqlite3_column_int64(st, RC_UPDATED);
	r->finished_at = sqlite3_column_int64(st, RC_FINISHED);
}

/* Steps a one-run query (RUN_LOAD, RUN_STATUS) bound to run_id: SQLITE_ROW
 * with the row ready, or a code (SL_ENOTFOUND, SL_ESTORE) with st reset. */
static int run_row(struct sq_conn *c, sqlite3_stmt *st, const char *run_id, struct sl_err *err)
{
	int b = b_text(st, 1, run_id);
	int rc = b ? SQLITE_MISUSE : sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return SQLITE_ROW;
	int ret = rc == SQLITE_DONE ? sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no run %s", run_id)
		  : b		    ? bind_err(b, err, "run")
				    : db_err(c, err, "run");
	st_done(st);
	return ret;
}

/* context gets what later steps may read: the outputs of steps that ended
 * (completed, skipped, failed with on_error: continue, compensated). */
static bool step_in_context(int status)
{
	return status == SL_STEP_ST_COMPLETED || status == SL_STEP_ST_SKIPPED || status == SL_STEP_ST_FAILED ||
	       status == SL_STEP_ST_COMPENSATED;
}

static int load_steps(struct sq_conn *c, struct sl_run *r, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_STEPS_LOAD, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, r->id);
	if (b) {
		st_done(st);
		return bind_err(b, err, "steps");
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = c_text(st, 0);
		const char *status = c_text(st, 1);
		if (!id || !status)
			continue;
		json_object_set_new(r->step_status, id, json_string(status));
		if (step_in_context(sl_store__step_status_parse(status)))
			json_object_set_new(r->context, id, c_json(st, 2));
	}
	int ret = rc == SQLITE_DONE ? 0 : db_err(c, err, "steps");
	st_done(st);
	return ret;
}

static int approval_rows(struct sq_conn *c, enum sq_st id, const char *arg, void (*fn)(json_t *doc, void *ud),
			 void *ud, struct sl_err *err);
static void to_context(json_t *doc, void *ud);
static void to_array(json_t *doc, void *ud);

static int sq_run_load(struct sl_store *base, const char *run_id, struct sl_run *out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_begin(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, SQ_RUN_LOAD, err);
	int rc = st ? run_row(c, st, run_id, err) : SL_ESTORE;
	if (rc == SQLITE_ROW) {
		run_from_row(st, out);
		st_done(st);
		out->context = json_object();
		out->step_status = json_object();
		json_object_set(out->context, "input", out->input);
		rc = load_steps(c, out, err);
		if (!rc)
			rc = approval_rows(c, SQ_APR_LOAD, run_id, to_context, out->context, err);
	}
	rd_end(s, c);
	if (rc)
		sl_run_free(out);
	return rc;
}

/* ---- committing ------------------------------------------------------------------------------ */

/* The fence check and the task's next state in one statement: 0 rows
 * changed means another claim holds the task (or it is gone). */
static int task_advance(struct sq_conn *c, const struct sl_commit *m, int64_t now, struct sl_err *err)
{
	int64_t changed = 0;
	int rc;
	if (m->next == SL_TASK_CONTINUE) {
		rc = task_extend(c, m->run_id, m->fence, now + m->lease_ms, &changed, err);
	} else {
		sqlite3_stmt *st = st_get(c, m->next == SL_TASK_DONE ? SQ_TASK_DONE : SQ_TASK_RESCHEDULE, err);
		if (!st)
			return SL_ESTORE;
		int b = b_text(st, 1, m->run_id) | b_i64(st, 2, m->fence);
		if (m->next == SL_TASK_RESCHEDULE)
			b |= b_i64(st, 3, m->due_at > 0 ? m->due_at : now);
		rc = b ? (st_done(st), bind_err(b, err, "task")) : x_run(c, st, &changed, err, "task");
	}
	if (rc)
		return rc;
	return changed ? 0 : SL_EFENCED;
}

static int step_put(struct sq_conn *c, const char *run_id, const struct sl_step_rec *p, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_STEP_PUT, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id) | b_text(st, 2, p->step_id) | b_i64(st, 3, p->index) |
		b_text(st, 4, sl_step_status_name(p->status)) | b_json(st, 5, p->output) | b_json(st, 6, p->error) |
		b_i64(st, 7, p->attempts) | b_i64(st, 8, p->started_at) | b_i64(st, 9, p->finished_at);
	if (b) {
		st_done(st);
		return bind_err(b, err, "step");
	}
	return x_run(c, st, NULL, err, "step");
}

static int attempt_put(struct sq_conn *c, const char *run_id, const struct sl_attempt_rec *a, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_ATTEMPT_PUT, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id) | b_text(st, 2, a->step_id) | b_i64(st, 3, a->attempt) |
		b_i64(st, 4, a->started_at) | b_i64(st, 5, a->duration_ms) | b_text(st, 6, a->outcome) |
		b_text(st, 7, sl_class_name(a->error_class)) | b_text(st, 8, a->error);
	if (b) {
		st_done(st);
		return bind_err(b, err, "attempt");
	}
	return x_run(c, st, NULL, err, "attempt");
}

static int run_update(struct sq_conn *c, const struct sl_commit *m, int64_t now, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_RUN_UPDATE, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, m->run_id) | b_text(st, 2, sl_run_status_name(m->status)) |
		b_text(st, 3, sl_store__phase_name(m->phase)) | b_i64(st, 4, m->cursor) | b_i64(st, 5, m->attempt_no) |
		b_i64(st, 6, m->wake_at) | b_json(st, 7, m->output) | b_json(st, 8, m->error) | b_i64(st, 9, now) |
		b_i64(st, 10, sl_run_status_terminal(m->status) ? now : 0) | b_i64(st, 11, m->fence);
	if (b) {
		st_done(st);
		return bind_err(b, err, "run update");
	}
	int64_t changed = 0;
	int rc = x_run(c, st, &changed, err, "run update");
	if (rc == 0 && changed == 0)
		rc = sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "store: run %s has a task but no run row", m->run_id);
	return rc;
}

static int dlq_put(struct sq_conn *c, const char *run_id, const struct sl_dlq_new *d, int64_t now,
		   struct sl_err *err)
{
	char id[SL_ID_MAX];
	sl_id_new("dlq_", id);
	sqlite3_stmt *st = st_get(c, SQ_DLQ_PUT, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, id) | b_text(st, 2, run_id) | b_text(st, 3, d->step_id) |
		b_text(st, 4, sl_class_name(d->error_class)) | b_text(st, 5, d->error) | b_json(st, 6, d->evidence) |
		b_i64(st, 7, now);
	if (b) {
		st_done(st);
		return bind_err(b, err, "dead letter");
	}
	return x_run(c, st, NULL, err, "dead letter");
}

static int ai_calls_put(struct sq_conn *c, const char *run_id, const char *step_id, const json_t *calls, int64_t now,
			struct sl_err *err)
{
	size_t i;
	const json_t *rec;
	json_array_foreach(calls, i, rec)
	{
		sqlite3_stmt *st = st_get(c, SQ_AI_CALL_PUT, err);
		if (!st)
			return SL_ESTORE;
		int b = b_text(st, 1, run_id) | b_text(st, 2, step_id) | b_json(st, 3, rec) | b_i64(st, 4, now);
		if (b) {
			st_done(st);
			return bind_err(b, err, "ai call");
		}
		int rc = x_run(c, st, NULL, err, "ai call");
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- approvals in a commit ---- */

static int exec_ti(struct sq_conn *c, enum sq_st id, const char *t, int64_t i, int nparams, struct sl_err *err);

static int approval_put(struct sq_conn *c, const char *run_id, const struct sl_approval_new *a, int64_t now,
			struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_APR_PUT, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, a->id) | b_text(st, 2, run_id) | b_text(st, 3, a->step_id) | b_text(st, 4, a->kind) |
		b_json(st, 5, a->reviewers) | b_json(st, 6, a->escalate_to) | b_i64(st, 7, a->due_at) |
		b_i64(st, 8, a->timeout_ms) | b_text(st, 9, a->on_timeout) | b_json(st, 10, a->input) |
		b_json(st, 11, a->evidence) | b_json(st, 12, a->proposed) | b_text(st, 13, a->reason) |
		b_i64(st, 14, now);
	if (b) {
		st_done(st);
		return bind_err(b, err, "approval");
	}
	int64_t changed = 0;
	int rc = x_run(c, st, &changed, err, "approval");
	if (!rc && !changed)
		rc = sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "store: approval %s: no run %s", a->id, run_id);
	return rc;
}

/* A change the engine makes (a timeout) lands only on a pending approval:
 * a person who decided first wins, and this commit is refused. */
static int approval_set(struct sq_conn *c, const struct sl_approval_set *a, int64_t now, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_APR_SET, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, a->id) | b_text(st, 2, a->status) | b_json(st, 3, a->decision) |
		b_json(st, 4, a->reviewers) | b_i64(st, 5, a->due_at) | b_i64(st, 6, now);
	if (b) {
		st_done(st);
		return bind_err(b, err, "approval");
	}
	int64_t changed = 0;
	int rc = x_run(c, st, &changed, err, "approval");
	if (!rc && !changed)
		rc = sl_err_set(err, SL_EFENCED, SL_CLASS_NONE, "store: approval %s is no longer pending", a->id);
	return rc;
}

/* One commit of a batch, inside its savepoint. The fence is checked first
 * (by the task UPDATE itself), so a fenced commit costs one statement. */
static int commit_one(struct sq_store *s, const struct sl_commit *m, int64_t now, struct sl_err *err)
{
	struct sq_conn *c = &s->w;
	int rc = task_advance(c, m, now, err);
	if (!rc && m->step)
		rc = step_put(c, m->run_id, m->step, err);
	if (!rc && m->attempt)
		rc = attempt_put(c, m->run_id, m->attempt, err);
	if (!rc)
		rc = run_update(c, m, now, err);
	if (!rc && m->dlq)
		rc = dlq_put(c, m->run_id, m->dlq, now, err);
	if (!rc && m->ai_calls)
		rc = ai_calls_put(c, m->run_id, m->ai_step_id ? m->ai_step_id : "", m->ai_calls, now, err);
	if (!rc && m->audit)
		rc = audit_put_all(c, m->audit, now, NULL, err);
	if (!rc && m->approval)
		rc = approval_put(c, m->run_id, m->approval, now, err);
	if (!rc && m->approval_set)
		rc = approval_set(c, m->approval_set, now, err);
	if (!rc && m->approval_consumed)
		rc = exec_ti(c, SQ_APR_CONSUME, m->approval_consumed, now, 2, err);
	for (size_t i = 0; !rc && i < m->nspawn; i++) {
		char id[SL_ID_MAX];
		bool existed;
		rc = create_tx(s, &m->spawn[i], now, id, &existed, err);
	}
	return rc;
}

static void results_fill(int *results, size_t n, int code)
{
	for (size_t i = 0; i < n; i++)
		results[i] = code;
}

/* Group commit: one transaction (one fsync) for the batch, a savepoint per
 * commit. A commit that fails on its own (fenced, malformed) is rolled back
 * to its savepoint and the others land; only a failure of the transaction
 * itself (I/O, full disk: SQLite then rolls everything back) fails all. The
 * first non-fence failure's message goes into err. */
static int sq_commit(struct sl_store *base, const struct sl_commit *commits, size_t n, int *results,
		     struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = &s->w;
	int rc = wr_begin(s, err);
	if (rc) {
		results_fill(results, n, rc);
		return rc;
	}
	int64_t now = sl_now_ms();
	bool reported = false;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct sl_err one;
		sl_err_clear(&one);
		int r = sl_store__commit_check(&commits[i], &one);
		if (!r) {
			rc = x_exec(c, SQ_SAVEPOINT, err);
			if (rc)
				break;
			r = commit_one(s, &commits[i], now, &one);
			if (r && sqlite3_get_autocommit(c->db)) {
				/* SQLite rolled the whole transaction back. */
				rc = r;
				if (err)
					*err = one;
				break;
			}
			if (r)
				rc = x_exec(c, SQ_ROLLBACK_TO, err);
			if (!rc)
				rc = x_exec(c, SQ_RELEASE, err);
		}
		results[i] = r;
		if (r && r != SL_EFENCED && !reported && err) {
			*err = one;
			reported = true;
		}
	}
	rc = wr_end(s, rc, err);
	if (rc)
		results_fill(results, n, rc);
	return rc;
}

/* ---- reading for the CLI and the API ---------------------------------------------------------- */

static json_t *run_doc(sqlite3_stmt *st)
{
	json_t *d = json_object();
	json_object_set_new(d, "id", c_jstr(st, RC_ID));
	json_object_set_new(d, "workflow", c_jstr(st, RC_WORKFLOW));
	json_object_set_new(d, "version", json_integer(sqlite3_column_int64(st, RC_VERSION)));
	json_object_set_new(d, "digest", c_jstr(st, RC_DIGEST));
	json_object_set_new(d, "status", c_jstr(st, RC_STATUS));
	json_object_set_new(d, "phase", c_jstr(st, RC_PHASE));
	json_object_set_new(d, "cursor", json_integer(sqlite3_column_int64(st, RC_CURSOR)));
	json_object_set_new(d, "attempt", json_integer(sqlite3_column_int64(st, RC_ATTEMPT)));
	json_object_set_new(d, "wake_at", jtime(sqlite3_column_int64(st, RC_WAKE_AT)));
	json_object_set_new(d, "input", c_json(st, RC_INPUT));
	json_object_set_new(d, "output", c_json(st, RC_OUTPUT));
	json_object_set_new(d, "error", c_json(st, RC_ERROR));
	json_object_set_new(d, "correlation_id", c_jstr(st, RC_CORRELATION));
	json_object_set_new(d, "parent_run_id", c_jstr(st, RC_PARENT));
	json_object_set_new(d, "root_run_id", c_jstr(st, RC_ROOT));
	json_object_set_new(d, "trigger", c_jstr(st, RC_TRIGGER));
	json_object_set_new(d, "tenant", c_jstr(st, RC_TENANT));
	json_object_set_new(d, "priority", json_integer(sqlite3_column_int64(st, RC_PRIORITY)));
	json_object_set_new(d, "created_at", jtime(sqlite3_column_int64(st, RC_CREATED)));
	json_object_set_new(d, "updated_at", jtime(sqlite3_column_int64(st, RC_UPDATED)));
	json_object_set_new(d, "finished_at", jtime(sqlite3_column_int64(st, RC_FINISHED)));
	return d;
}

static json_t *step_doc(const char *id, const char *status)
{
	json_t *d = json_object();
	json_object_set_new(d, "id", jstr(id));
	json_object_set_new(d, "status", jstr(status));
	json_object_set_new(d, "attempt_log", json_array());
	return d;
}

/* Steps in order, into steps (the array) and byid (borrowed references). */
static int doc_steps(struct sq_conn *c, const char *run_id, json_t *steps, json_t *byid, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_STEPS_LOAD, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id);
	int rc = b ? SQLITE_MISUSE : SQLITE_ROW;
	while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = c_text(st, 0);
		if (!id)
			continue;
		json_t *d = step_doc(id, c_text(st, 1));
		int64_t started = sqlite3_column_int64(st, 5), finished = sqlite3_column_int64(st, 6);
		json_object_set_new(d, "index", json_integer(sqlite3_column_int64(st, 7)));
		json_object_set_new(d, "output", c_json(st, 2));
		json_object_set_new(d, "error", c_json(st, 3));
		json_object_set_new(d, "attempts", json_integer(sqlite3_column_int64(st, 4)));
		json_object_set_new(d, "started_at", jtime(started));
		json_object_set_new(d, "finished_at", jtime(finished));
		json_object_set_new(d, "duration_ms",
				    started > 0 && finished >= started ? json_integer(finished - started) : json_null());
		json_object_set(byid, id, d);
		json_array_append_new(steps, d);
	}
	int ret = rc == SQLITE_DONE ? 0 : b ? bind_err(b, err, "steps") : db_err(c, err, "steps");
	st_done(st);
	return ret;
}

/* "update#compensate" belongs to step "update". A step with attempts but no
 * row yet (failed attempts awaiting a retry) is listed as "pending". */
static void attempt_attach(json_t *steps, json_t *byid, sqlite3_stmt *st)
{
	const char *sid = c_text(st, 0);
	if (!sid)
		return;
	const char *hash = strchr(sid, '#');
	char *base = sl_strndup(sid, hash ? (size_t)(hash - sid) : strlen(sid));
	json_t *step = json_object_get(byid, base);
	if (!step) {
		step = step_doc(base, "pending");
		json_object_set(byid, base, step);
		json_array_append_new(steps, step);
	}
	free(base);
	json_t *a = json_object();
	json_object_set_new(a, "attempt", json_integer(sqlite3_column_int64(st, 1)));
	if (hash)
		json_object_set_new(a, "kind", jstr(hash + 1));
	json_object_set_new(a, "started_at", jtime(sqlite3_column_int64(st, 2)));
	json_object_set_new(a, "duration_ms", json_integer(sqlite3_column_int64(st, 3)));
	json_object_set_new(a, "outcome", c_jstr(st, 4));
	json_object_set_new(a, "error_class", c_jstr(st, 5));
	json_object_set_new(a, "error", c_jstr(st, 6));
	json_array_append_new(json_object_get(step, "attempt_log"), a);
}

static int doc_attempts(struct sq_conn *c, const char *run_id, json_t *steps, json_t *byid, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_ATTEMPTS_LOAD, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id);
	int rc = b ? SQLITE_MISUSE : SQLITE_ROW;
	while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW)
		attempt_attach(steps, byid, st);
	int ret = rc == SQLITE_DONE ? 0 : b ? bind_err(b, err, "attempts") : db_err(c, err, "attempts");
	st_done(st);
	return ret;
}

/* The run's model calls, oldest first (JSON built by SQLite). */
static int doc_ai_calls(struct sq_conn *c, const char *run_id, json_t *calls, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_AI_CALLS_LOAD, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id);
	int rc;
	while (!b && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_error_t je;
		json_t *one = json_loads(c_text(st, 0), 0, &je);
		if (one)
			json_array_append_new(calls, one);
	}
	int ret = b ? bind_err(b, err, "ai calls") : rc == SQLITE_DONE ? 0 : db_err(c, err, "ai calls");
	st_done(st);
	return ret;
}

static int sq_ai_spent(struct sl_store *base, const char *scope, const char *name, int64_t since_ms, double *usd,
		       struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, strcmp(scope, "route") == 0 ? SQ_AI_SPENT_ROUTE : SQ_AI_SPENT_WORKFLOW, err);
	int ret = SL_ESTORE;
	if (st) {
		int b = b_text(st, 1, name) | b_i64(st, 2, since_ms);
		int rc = b ? SQLITE_MISUSE : sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*usd = sqlite3_column_double(st, 0);
			ret = 0;
		} else {
			ret = b ? bind_err(b, err, "ai spent") : db_err(c, err, "ai spent");
		}
		st_done(st);
	}
	rd_put(s, c);
	return ret;
}

static int sq_run_get(struct sl_store *base, const char *run_id, json_t **out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_begin(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, SQ_RUN_LOAD, err);
	int rc = st ? run_row(c, st, run_id, err) : SL_ESTORE;
	json_t *doc = NULL;
	if (rc == SQLITE_ROW) {
		doc = run_doc(st);
		st_done(st);
		json_t *steps = json_array(), *byid = json_object();
		rc = doc_steps(c, run_id, steps, byid, err);
		if (!rc)
			rc = doc_attempts(c, run_id, steps, byid, err);
		json_object_set_new(doc, "steps", steps);
		json_t *calls = json_array();
		if (!rc)
			rc = doc_ai_calls(c, run_id, calls, err);
		json_object_set_new(doc, "ai_calls", calls);
		json_t *approvals = json_array();
		if (!rc)
			rc = approval_rows(c, SQ_APR_OF_RUN, run_id, to_array, approvals, err);
		json_object_set_new(doc, "approvals", approvals);
		json_decref(byid);
	}
	rd_end(s, c);
	if (rc) {
		json_decref(doc);
		return rc;
	}
	*out = doc;
	return 0;
}

static int sq_run_status(struct sl_store *base, const char *run_id)
{
	struct sq_store *s = sq(base);
	struct sl_err e;
	struct sq_conn *c = rd_get(s, &e);
	if (!c)
		return -1;
	int status = -1;
	sqlite3_stmt *st = st_get(c, SQ_RUN_STATUS, &e);
	if (st && run_row(c, st, run_id, &e) == SQLITE_ROW) {
		status = sl_run_status_parse(c_text(st, 0));
		st_done(st);
	}
	rd_put(s, c);
	return status;
}

/* One page of a newest-first list: the rows of st (their id in column 0)
 * made into documents by row_fn, and the cursor of the next page when a
 * row beyond limit exists (the query asks for limit + 1). */
typedef json_t *(*row_doc_fn)(sqlite3_stmt *st);

static int list_page(struct sq_conn *c, sqlite3_stmt *st, size_t limit, row_doc_fn row_fn, const char *key,
		     json_t **out, struct sl_err *err)
{
	json_t *items = json_array();
	char next[SL_ID_MAX] = "";
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (json_array_size(items) == limit) {
			json_t *last = json_array_get(items, limit - 1);
			sl_store__id_copy(next, json_string_value(json_object_get(last, "id")));
			break;
		}
		json_array_append_new(items, row_fn(st));
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		json_decref(items);
		return db_err(c, err, "list");
	}
	*out = json_object();
	json_object_set_new(*out, key, items);
	json_object_set_new(*out, "next_cursor", next[0] ? json_string(next) : json_null());
	return 0;
}

/* Prepares a list query (not cached: its text depends on the filters) on a
 * reader, runs bind_fn, then list_page. */
typedef int (*list_bind_fn)(sqlite3_stmt *st, const void *filter, size_t limit);

static int list_run(struct sq_store *s, const char *sql, list_bind_fn bind_fn, const void *filter, size_t limit,
		    row_doc_fn row_fn, const char *key, json_t **out, struct sl_err *err)
{
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = NULL;
	int rc;
	if (sqlite3_prepare_v3(c->db, sql, -1, 0, &st, NULL) != SQLITE_OK) {
		rc = db_err(c, err, "list");
	} else {
		int b = bind_fn(st, filter, limit);
		rc = b ? bind_err(b, err, "list") : list_page(c, st, limit, row_fn, key, out, err);
	}
	sqlite3_finalize(st);
	rd_put(s, c);
	return rc;
}

static json_t *run_summary(sqlite3_stmt *st)
{
	json_t *d = json_object();
	json_object_set_new(d, "id", c_jstr(st, SC_ID));
	json_object_set_new(d, "workflow", c_jstr(st, SC_WORKFLOW));
	json_object_set_new(d, "version", json_integer(sqlite3_column_int64(st, SC_VERSION)));
	json_object_set_new(d, "status", c_jstr(st, SC_STATUS));
	json_object_set_new(d, "correlation_id", c_jstr(st, SC_CORRELATION));
	json_object_set_new(d, "parent_run_id", c_jstr(st, SC_PARENT));
	json_object_set_new(d, "root_run_id", c_jstr(st, SC_ROOT));
	json_object_set_new(d, "trigger", c_jstr(st, SC_TRIGGER));
	json_object_set_new(d, "tenant", c_jstr(st, SC_TENANT));
	json_object_set_new(d, "priority", json_integer(sqlite3_column_int64(st, SC_PRIORITY)));
	json_object_set_new(d, "created_at", jtime(sqlite3_column_int64(st, SC_CREATED)));
	json_object_set_new(d, "updated_at", jtime(sqlite3_column_int64(st, SC_UPDATED)));
	json_object_set_new(d, "finished_at", jtime(sqlite3_column_int64(st, SC_FINISHED)));
	json_object_set_new(d, "error", c_json(st, SC_ERROR));
	return d;
}

/* The binds follow the order in which runs_sql() added the conditions. */
static int runs_bind(sqlite3_stmt *st, const void *filter, size_t limit)
{
	const struct sl_run_filter *f = filter;
	int k = 1, b = 0;
	if (f->workflow)
		b |= b_text(st, k++, f->workflow);
	if (f->status >= 0)
		b |= b_text(st, k++, sl_run_status_name((enum sl_run_status)f->status));
	if (f->root_run_id)
		b |= b_text(st, k++, f->root_run_id);
	if (f->cursor)
		b |= b_text(st, k++, f->cursor);
	if (f->tenant)
		b |= b_text(st, k++, f->tenant);
	return b | b_i64(st, k, (int64_t)limit + 1);
}

static int sq_runs_list(struct sl_store *base, const struct sl_run_filter *f, json_t **out, struct sl_err *err)
{
	size_t limit = sl_store__limit(f->limit);
	struct sl_buf q;
	sl_buf_init(&q, SQ_QUERY_MAX);
	sl_buf_adds(&q, "SELECT " SUM_COLS " FROM runs WHERE 1");
	if (f->workflow)
		sl_buf_adds(&q, " AND workflow = ?");
	if (f->status >= 0)
		sl_buf_adds(&q, " AND status = ?");
	if (f->root_run_id)
		sl_buf_adds(&q, " AND root_run_id = ?");
	if (f->cursor)
		sl_buf_adds(&q, " AND id < ?");
	if (f->tenant)
		sl_buf_adds(&q, " AND tenant = ?");
	sl_buf_adds(&q, " ORDER BY id DESC LIMIT ?");
	int rc = q.err ? sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: list query too long")
		       : list_run(sq(base), sl_buf_str(&q), runs_bind, f, limit, run_summary, "runs", out, err);
	sl_buf_free(&q);
	return rc;
}

/* One integer from a cached query with one text parameter. */
static int count_query(struct sq_store *s, enum sq_st id, const char *arg, int64_t *count, struct sl_err *err)
{
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, id, err);
	int rc = SL_ESTORE;
	if (st) {
		int b = b_text(st, 1, arg);
		if (b)
			rc = bind_err(b, err, "count");
		else if (sqlite3_step(st) == SQLITE_ROW)
			*count = sqlite3_column_int64(st, 0), rc = 0;
		else
			rc = db_err(c, err, "count");
		st_done(st);
	}
	rd_put(s, c);
	return rc;
}

static int sq_tree_pending(struct sl_store *base, const char *root_run_id, int64_t *count, struct sl_err *err)
{
	return count_query(sq(base), SQ_TREE_PENDING, root_run_id, count, err);
}

static int sq_counts(struct sl_store *base, json_t **out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	json_t *o = json_object();
	for (int i = 0; i < SL_RUN__COUNT; i++)
		json_object_set_new(o, sl_run_status_name((enum sl_run_status)i), json_integer(0));
	sqlite3_stmt *st = st_get(c, SQ_COUNTS, err);
	int rc = st ? SQLITE_ROW : SL_ESTORE;
	while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if (c_text(st, 0))
			json_object_set_new(o, c_text(st, 0), json_integer(sqlite3_column_int64(st, 1)));
	if (st) {
		rc = rc == SQLITE_DONE ? 0 : db_err(c, err, "counts");
		st_done(st);
	}
	rd_put(s, c);
	if (rc) {
		json_decref(o);
		return rc;
	}
	*out = o;
	return 0;
}

/* ---- leases of dead processes ------------------------------------------------------------------ */

static int sq_lease_owners(struct sl_store *base, json_t **out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	json_t *o = json_object();
	sqlite3_stmt *st = st_get(c, SQ_LEASE_OWNERS, err);
	int rc = st ? SQLITE_ROW : SL_ESTORE;
	if (st && b_i64(st, 1, sl_now_ms()))
		rc = SL_ESTORE;
	while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if (c_text(st, 0))
			json_object_set_new(o, c_text(st, 0), json_integer(sqlite3_column_int64(st, 1)));
	if (st) {
		rc = rc == SQLITE_DONE ? 0 : db_err(c, err, "lease owners");
		st_done(st);
	}
	rd_put(s, c);
	if (rc) {
		json_decref(o);
		return rc;
	}
	*out = o;
	return 0;
}

static int sq_release_owner(struct sl_store *base, const char *owner, int64_t *released, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	sqlite3_stmt *st = st_get(&s->w, SQ_OWNER_RELEASE, err);
	if (!st) {
		rc = SL_ESTORE;
	} else {
		int b = b_text(st, 1, owner) | b_i64(st, 2, sl_now_ms());
		rc = b ? (st_done(st), bind_err(b, err, "release owner"))
		       : x_run(&s->w, st, released, err, "release owner");
	}
	return wr_end(s, rc, err);
}

/* ---- cancelling ----------------------------------------------------------------------------- */

/* The status of a run on the writer (inside its transaction). */
static int status_tx(struct sq_conn *c, const char *run_id, int *status, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_RUN_STATUS, err);
	if (!st)
		return SL_ESTORE;
	int rc = run_row(c, st, run_id, err);
	if (rc != SQLITE_ROW)
		return rc;
	*status = sl_run_status_parse(c_text(st, 0));
	st_done(st);
	return 0;
}

/* Deletes a run's task; *fence gets the token it held (0 when none). */
static int task_delete(struct sq_conn *c, const char *run_id, int64_t *fence, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_TASK_DELETE, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id);
	int rc = b ? SQLITE_MISUSE : sqlite3_step(st);
	*fence = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	int ret = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : b ? bind_err(b, err, "cancel") : db_err(c, err, "cancel");
	st_done(st);
	return ret;
}

static int cancel_tx(struct sq_conn *c, const char *run_id, struct sl_err *err)
{
	int status = -1;
	int rc = status_tx(c, run_id, &status, err);
	if (rc)
		return rc;
	if (status >= 0 && sl_run_status_terminal((enum sl_run_status)status))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: run %s is already %s", run_id,
				  sl_run_status_name((enum sl_run_status)status));
	int64_t fence = 0;
	rc = task_delete(c, run_id, &fence, err);
	if (rc)
		return rc;
	sqlite3_stmt *st = st_get(c, SQ_RUN_CANCEL, err);
	if (!st)
		return SL_ESTORE;
	int64_t now = sl_now_ms();
	int b = b_text(st, 1, run_id) | b_i64(st, 2, now) | b_i64(st, 3, fence);
	if (b) {
		st_done(st);
		return bind_err(b, err, "cancel");
	}
	rc = x_run(c, st, NULL, err, "cancel");
	/* nobody is asked any more: its pending approvals expire */
	return rc ? rc : exec_ti(c, SQ_APR_CANCEL, run_id, now, 2, err);
}

static int sq_run_cancel_audited(struct sl_store *base, const char *run_id, const json_t *audit, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	rc = cancel_tx(&s->w, run_id, err);
	if (!rc && audit)
		rc = audit_put(&s->w, audit, run_id, sl_now_ms(), NULL, err);
	return wr_end(s, rc, err);
}

static int sq_run_cancel(struct sl_store *base, const char *run_id, struct sl_err *err)
{
	return sq_run_cancel_audited(base, run_id, NULL, err);
}

/* ---- approvals ------------------------------------------------------------------------------- */

static json_t *approval_row(sqlite3_stmt *st)
{
	const char *v[APR__COUNT];
	for (int i = 0; i < APR__COUNT; i++)
		v[i] = c_text(st, i);
	return sl_store__approval_doc(v);
}

/* Runs a cached one-text-parameter approval query; fn gets each row's
 * document (taken). */
static int approval_rows(struct sq_conn *c, enum sq_st id, const char *arg, void (*fn)(json_t *doc, void *ud),
			 void *ud, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, id, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, arg);
	if (b) {
		st_done(st);
		return bind_err(b, err, "approvals");
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(approval_row(st), ud);
	int ret = rc == SQLITE_DONE ? 0 : db_err(c, err, "approvals");
	st_done(st);
	return ret;
}

static void to_context(json_t *doc, void *ud)
{
	sl_store__approval_ctx(ud, doc);
	json_decref(doc);
}

static void to_array(json_t *doc, void *ud)
{
	json_array_append_new(ud, doc);
}

static void to_one(json_t *doc, void *ud)
{
	json_t **one = ud;
	json_decref(*one);
	*one = doc;
}

static int sq_approval_get(struct sl_store *base, const char *id, json_t **out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_begin(s, err);
	if (!c)
		return SL_ESTORE;
	json_t *doc = NULL;
	int rc = approval_rows(c, SQ_APR_GET, id, to_one, &doc, err);
	rd_end(s, c);
	if (!rc && !doc)
		rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no approval %s", id);
	if (rc) {
		json_decref(doc);
		return rc;
	}
	*out = doc;
	return 0;
}

/* The binds follow approvals_where's order. */
static int approvals_bind(sqlite3_stmt *st, const void *filter, size_t limit)
{
	const struct sl_approval_filter *f = filter;
	int k = 1, b = 0;
	const char *texts[] = {f->status, f->workflow, f->run_id, f->tenant};
	for (size_t i = 0; i < SL_ARRAY_LEN(texts); i++)
		if (texts[i])
			b |= b_text(st, k++, texts[i]);
	if (f->since > 0)
		b |= b_i64(st, k++, f->since);
	if (f->cursor)
		b |= b_text(st, k++, f->cursor);
	return b | b_i64(st, k, (int64_t)limit + 1);
}

static int sq_approvals_list(struct sl_store *base, const struct sl_approval_filter *f, json_t **out,
			     struct sl_err *err)
{
	size_t limit = sl_store__limit(f->limit);
	struct sl_buf q;
	sl_buf_init(&q, SQ_QUERY_MAX);
	sl_buf_adds(&q, "SELECT " APR_COLS " FROM approvals WHERE 1");
	if (f->status)
		sl_buf_adds(&q, " AND status = ?");
	if (f->workflow)
		sl_buf_adds(&q, " AND workflow = ?");
	if (f->run_id)
		sl_buf_adds(&q, " AND run_id = ?");
	if (f->tenant)
		sl_buf_adds(&q, " AND tenant = ?");
	if (f->since > 0)
		sl_buf_adds(&q, " AND decided_at >= ?");
	if (f->cursor)
		sl_buf_adds(&q, " AND id < ?");
	sl_buf_adds(&q, " ORDER BY id DESC LIMIT ?");
	int rc = q.err ? sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: list query too long")
		       : list_run(sq(base), sl_buf_str(&q), approvals_bind, f, limit, approval_row, "approvals", out,
				  err);
	sl_buf_free(&q);
	return rc;
}

/* Puts the parked run back at its cursor: status running, a task due now
 * whose fence moves past any the run's timer held. */
static int run_resume(struct sq_conn *c, const char *run_id, int64_t now, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_RUN_RESUME, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id) | b_i64(st, 2, now);
	int rc = b ? SQLITE_MISUSE : sqlite3_step(st);
	int64_t fence = 0, priority = 0;
	char *tenant = NULL;
	int ret = 0;
	if (rc == SQLITE_ROW) {
		fence = sqlite3_column_int64(st, 0);
		tenant = c_strdup(st, 1);
		priority = sqlite3_column_int64(st, 2);
	} else if (rc == SQLITE_DONE) {
		ret = sl_err_set(err, SL_EEXISTS, SL_CLASS_NONE, "store: run %s no longer waits for this approval",
				 run_id);
	} else {
		ret = b ? bind_err(b, err, "resume") : db_err(c, err, "resume");
	}
	st_done(st);
	if (!ret)
		ret = task_put(c, run_id, now, fence, tenant ? tenant : "default", priority, err);
	free(tenant);
	return ret;
}

static int decide_tx(struct sq_conn *c, const char *id, const char *status, const json_t *decision,
		     const json_t *audit, json_t **out, struct sl_err *err)
{
	json_t *doc = NULL;
	int rc = approval_rows(c, SQ_APR_GET, id, to_one, &doc, err);
	if (!rc && !doc)
		rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no approval %s", id);
	const char *now_status = json_string_value(json_object_get(doc, "status"));
	if (!rc && (!now_status || strcmp(now_status, "pending") != 0))
		rc = sl_err_set(err, SL_EEXISTS, SL_CLASS_NONE, "store: approval %s was already decided (%s)", id,
				now_status ? now_status : "?");
	const char *run_id = json_string_value(json_object_get(doc, "run_id"));
	int64_t now = sl_now_ms();
	if (!rc) {
		sqlite3_stmt *st = st_get(c, SQ_APR_DECIDE, err);
		int b = st ? b_text(st, 1, id) | b_text(st, 2, status) | b_json(st, 3, decision) | b_i64(st, 4, now) : 0;
		rc = !st ? SL_ESTORE : b ? (st_done(st), bind_err(b, err, "decision")) : x_run(c, st, NULL, err, "decision");
	}
	if (!rc)
		rc = run_resume(c, run_id, now, err);
	if (!rc && audit)
		rc = audit_put(c, audit, run_id, now, NULL, err);
	json_decref(doc);
	doc = NULL;
	if (!rc)
		rc = approval_rows(c, SQ_APR_GET, id, to_one, &doc, err);
	if (!rc)
		*out = doc;
	else
		json_decref(doc);
	return rc;
}

static int sq_approval_decide(struct sl_store *base, const char *id, const char *status, const json_t *decision,
			      const json_t *audit, json_t **out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	rc = decide_tx(&s->w, id, status, decision, audit, out, err);
	return wr_end(s, rc, err);
}

/* ---- dead letters ---------------------------------------------------------------------------- */

static json_t *dlq_doc(sqlite3_stmt *st)
{
	json_t *d = json_object();
	json_object_set_new(d, "id", c_jstr(st, DC_ID));
	json_object_set_new(d, "run_id", c_jstr(st, DC_RUN));
	json_object_set_new(d, "workflow", c_jstr(st, DC_WORKFLOW));
	json_object_set_new(d, "version", json_integer(sqlite3_column_int64(st, DC_VERSION)));
	json_object_set_new(d, "step_id", c_jstr(st, DC_STEP));
	json_object_set_new(d, "error_class", c_jstr(st, DC_CLASS));
	json_object_set_new(d, "error", c_jstr(st, DC_ERROR));
	json_object_set_new(d, "evidence", c_json(st, DC_EVIDENCE));
	json_object_set_new(d, "created_at", jtime(sqlite3_column_int64(st, DC_CREATED)));
	json_object_set_new(d, "replayed_at", jtime(sqlite3_column_int64(st, DC_REPLAYED)));
	return d;
}

static int dlq_bind(sqlite3_stmt *st, const void *filter, size_t limit)
{
	const struct sl_dlq_filter *f = filter;
	int k = 1, b = 0;
	if (f->workflow)
		b |= b_text(st, k++, f->workflow);
	if (f->step_id)
		b |= b_text(st, k++, f->step_id);
	if (f->error_class >= 0)
		b |= b_text(st, k++, sl_class_name((enum sl_class)f->error_class));
	if (f->since > 0)
		b |= b_i64(st, k++, f->since);
	if (f->until > 0)
		b |= b_i64(st, k++, f->until);
	if (f->cursor)
		b |= b_text(st, k++, f->cursor);
	if (f->id)
		b |= b_text(st, k++, f->id);
	if (f->tenant)
		b |= b_text(st, k++, f->tenant);
	return b | b_i64(st, k, (int64_t)limit + 1);
}

/* The WHERE conditions of a DLQ filter, in dlq_bind's order. */
static void dlq_where(struct sl_buf *q, const struct sl_dlq_filter *f)
{
	if (f->workflow)
		sl_buf_adds(q, " AND workflow = ?");
	if (f->step_id)
		sl_buf_adds(q, " AND step_id = ?");
	if (f->error_class >= 0)
		sl_buf_adds(q, " AND error_class = ?");
	if (f->since > 0)
		sl_buf_adds(q, " AND created_at >= ?");
	if (f->until > 0)
		sl_buf_adds(q, " AND created_at < ?");
	if (!f->include_replayed)
		sl_buf_adds(q, " AND replayed_at = 0");
	if (f->cursor)
		sl_buf_adds(q, " AND id < ?");
	if (f->id)
		sl_buf_adds(q, " AND id = ?");
	if (f->tenant)
		sl_buf_adds(q, " AND run_id IN (SELECT id FROM runs WHERE tenant = ?)");
}

static int sq_dlq_list(struct sl_store *base, const struct sl_dlq_filter *f, json_t **out, struct sl_err *err)
{
	size_t limit = sl_store__limit(f->limit);
	struct sl_buf q;
	sl_buf_init(&q, SQ_QUERY_MAX);
	sl_buf_adds(&q, "SELECT " DLQ_COLS " FROM dlq WHERE 1");
	dlq_where(&q, f);
	sl_buf_adds(&q, " ORDER BY id DESC LIMIT ?");
	int rc = q.err ? sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: list query too long")
		       : list_run(sq(base), sl_buf_str(&q), dlq_bind, f, limit, dlq_doc, "entries", out, err);
	sl_buf_free(&q);
	return rc;
}

static int sq_dlq_count(struct sl_store *base, const struct sl_dlq_filter *filter, int64_t *count,
			struct sl_err *err)
{
	struct sl_dlq_filter f = *filter;
	f.cursor = NULL;
	struct sl_buf q;
	sl_buf_init(&q, SQ_QUERY_MAX);
	/* dlq_bind ends with a LIMIT; an inner select gives it one to bind */
	sl_buf_adds(&q, "SELECT count(*) FROM (SELECT 1 FROM dlq WHERE 1");
	dlq_where(&q, &f);
	sl_buf_adds(&q, " LIMIT ?)");
	if (q.err) {
		sl_buf_free(&q);
		return sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: count query too long");
	}
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c) {
		sl_buf_free(&q);
		return SL_ESTORE;
	}
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v3(c->db, sl_buf_str(&q), -1, 0, &st, NULL) != SQLITE_OK) {
		rc = db_err(c, err, "dlq count");
	} else {
		int b = dlq_bind(st, &f, (size_t)INT64_MAX - 1);
		int r = b ? SQLITE_MISUSE : sqlite3_step(st);
		if (r == SQLITE_ROW)
			*count = sqlite3_column_int64(st, 0);
		else
			rc = b ? bind_err(b, err, "dlq count") : db_err(c, err, "dlq count");
	}
	sqlite3_finalize(st);
	rd_put(s, c);
	sl_buf_free(&q);
	return rc;
}

/* The entry's run id, refusing an entry already replayed. */
static int dlq_entry(struct sq_conn *c, const char *dlq_id, char run_id[SL_ID_MAX], struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_DLQ_GET, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, dlq_id);
	int rc = b ? SQLITE_MISUSE : sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		sl_store__id_copy(run_id, c_text(st, 0));
		if (sqlite3_column_int64(st, 1) > 0)
			ret = sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: dead letter %s was already replayed",
					 dlq_id);
	} else if (rc == SQLITE_DONE) {
		ret = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no dead letter %s", dlq_id);
	} else {
		ret = b ? bind_err(b, err, "replay") : db_err(c, err, "replay");
	}
	st_done(st);
	return ret;
}

static int def_exists(struct sq_conn *c, const char *digest, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_DEF_EXISTS, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, digest);
	int rc = b ? SQLITE_MISUSE : sqlite3_step(st);
	int ret = rc == SQLITE_ROW    ? 0
		  : rc == SQLITE_DONE ? sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE,
						   "store: no workflow definition %.80s (def_put it first)", digest)
		  : b		      ? bind_err(b, err, "replay")
				      : db_err(c, err, "replay");
	st_done(st);
	return ret;
}

/* Puts the run back to queued at its cursor; returns its task's last fence,
 * tenant and priority for the new task. */
static int run_requeue(struct sq_conn *c, const char *run_id, const json_t *input, const char *digest,
		       int version, int64_t now, int64_t *fence, char **tenant, int64_t *priority, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_RUN_REPLAY, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, run_id) | b_i64(st, 2, now) | b_json(st, 3, input) | b_text(st, 4, digest) |
		b_i64(st, 5, version);
	int rc = b ? SQLITE_MISUSE : sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		*fence = sqlite3_column_int64(st, 0);
		*tenant = c_strdup(st, 1);
		*priority = sqlite3_column_int64(st, 2);
	} else {
		ret = b ? bind_err(b, err, "replay") : db_err(c, err, "replay");
	}
	st_done(st);
	return ret;
}

/* A statement with (text, integer) parameters and no rows. */
static int exec_ti(struct sq_conn *c, enum sq_st id, const char *t, int64_t i, int nparams, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, id, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, t) | (nparams > 1 ? b_i64(st, 2, i) : 0);
	if (b) {
		st_done(st);
		return bind_err(b, err, sq_sql[id]);
	}
	return x_run(c, st, NULL, err, "replay");
}

/* The step that died loses its "dead" row (it is pending again: the run
 * resumes at it); completed steps and every attempt of the log stay. */
static int replay_tx(struct sq_conn *c, const char *dlq_id, const json_t *input, const char *new_digest,
		     int new_version, char run_id[SL_ID_MAX], struct sl_err *err)
{
	int rc = dlq_entry(c, dlq_id, run_id, err);
	int status = -1;
	if (!rc)
		rc = status_tx(c, run_id, &status, err);
	if (!rc && status != SL_RUN_DEAD)
		rc = sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: run %s is %s, not dead", run_id,
				sl_run_status_name((enum sl_run_status)status));
	if (!rc && new_digest)
		rc = def_exists(c, new_digest, err);
	int64_t now = sl_now_ms(), fence = 0, priority = 0;
	char *tenant = NULL;
	if (!rc)
		rc = run_requeue(c, run_id, input, new_digest, new_version, now, &fence, &tenant, &priority, err);
	if (!rc)
		rc = exec_ti(c, SQ_STEP_DEL_DEAD, run_id, 0, 1, err);
	if (!rc)
		rc = task_put(c, run_id, now, fence, tenant ? tenant : "default", priority, err);
	if (!rc)
		rc = exec_ti(c, SQ_DLQ_MARK, dlq_id, now, 2, err);
	free(tenant);
	return rc;
}

static int sq_dlq_replay_audited(struct sl_store *base, const char *dlq_id, const json_t *input,
				 const char *new_digest, int new_version, const json_t *audit, char run_id_out[SL_ID_MAX],
				 struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	char run_id[SL_ID_MAX] = "";
	rc = replay_tx(&s->w, dlq_id, input, new_digest, new_version, run_id, err);
	if (!rc && audit)
		rc = audit_put(&s->w, audit, run_id, sl_now_ms(), NULL, err);
	rc = wr_end(s, rc, err);
	if (rc == 0)
		sl_store__id_copy(run_id_out, run_id);
	return rc;
}

static int sq_dlq_replay(struct sl_store *base, const char *dlq_id, const json_t *input, const char *new_digest,
			 int new_version, char run_id_out[SL_ID_MAX], struct sl_err *err)
{
	return sq_dlq_replay_audited(base, dlq_id, input, new_digest, new_version, NULL, run_id_out, err);
}

static int sq_dlq_purge(struct sl_store *base, int64_t before_ms, int64_t *purged, struct sl_err *err)
{
	return purge(sq(base), SQ_DLQ_PURGE, before_ms, purged, err);
}

static int sq_ai_costs_tenant(struct sl_store *base, const char *group_by, int64_t since_ms, const char *tenant,
			      json_t **out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	enum sq_st id = strcmp(group_by, "route") == 0    ? SQ_AI_COSTS_ROUTE
			: strcmp(group_by, "model") == 0  ? SQ_AI_COSTS_MODEL
			: strcmp(group_by, "tenant") == 0 ? SQ_AI_COSTS_TENANT
							  : SQ_AI_COSTS_WORKFLOW;
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, id, err);
	int ret = SL_ESTORE;
	if (st && !b_i64(st, 1, since_ms) && !b_text(st, 2, tenant)) {
		json_t *groups = json_array();
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			json_array_append_new(groups, store_cost_group(c_text(st, 0), sqlite3_column_int64(st, 1),
					      sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
					      sqlite3_column_double(st, 4), sqlite3_column_int64(st, 5),
					      sqlite3_column_int64(st, 6)));
		if (rc == SQLITE_DONE) {
			*out = groups;
			ret = 0;
		} else {
			json_decref(groups);
			ret = db_err(c, err, "ai costs");
		}
	}
	if (st)
		st_done(st);
	rd_put(s, c);
	return ret;
}

static int sq_ai_costs(struct sl_store *base, const char *group_by, int64_t since_ms, json_t **out,
		       struct sl_err *err)
{
	return sq_ai_costs_tenant(base, group_by, since_ms, NULL, out, err);
}

static int sq_run_stats(struct sl_store *base, const char *workflow, int64_t since_ms, int64_t slow_ms,
			struct sl_run_stats *out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	int ret = SL_ESTORE;
	sqlite3_stmt *st = st_get(c, SQ_RUN_STATS, err);
	if (st && !(b_text(st, 1, workflow) | b_i64(st, 2, since_ms) | b_i64(st, 3, slow_ms))) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			out->runs = sqlite3_column_int64(st, 0);
			out->completed = sqlite3_column_int64(st, 1);
			out->failed = sqlite3_column_int64(st, 2);
			out->review = sqlite3_column_int64(st, 3);
			out->slow = sqlite3_column_int64(st, 4);
			out->cost_usd = sqlite3_column_double(st, 5);
			ret = 0;
		} else {
			ret = db_err(c, err, "run stats");
		}
	}
	if (st)
		st_done(st);
	if (ret == 0 && out->completed > 0) {
		/* the nearest-rank 95th percentile */
		int64_t rank = (out->completed * 95 + 99) / 100;
		st = st_get(c, SQ_RUN_P95, err);
		if (st && !(b_text(st, 1, workflow) | b_i64(st, 2, since_ms) | b_i64(st, 3, rank - 1)) &&
		    sqlite3_step(st) == SQLITE_ROW)
			out->p95_ms = sqlite3_column_int64(st, 0);
		if (st)
			st_done(st);
	}
	rd_put(s, c);
	return ret;
}

static int sq_step_outputs(struct sl_store *base, const char *workflow, const char *step_id, size_t offset,
			   size_t limit, json_t **out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, SQ_STEP_OUTPUTS, err);
	int ret = SL_ESTORE;
	if (st && !(b_text(st, 1, workflow) | b_text(st, 2, step_id) | b_i64(st, 3, (int64_t)limit) |
		    b_i64(st, 4, (int64_t)offset))) {
		json_t *arr = json_array();
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			json_t *v = c_text(st, 0) ? json_loads(c_text(st, 0), JSON_DECODE_ANY, NULL) : NULL;
			if (v)
				json_array_append_new(arr, v);
		}
		if (rc == SQLITE_DONE) {
			*out = arr;
			ret = 0;
		} else {
			json_decref(arr);
			ret = db_err(c, err, "step outputs");
		}
	}
	if (st)
		st_done(st);
	rd_put(s, c);
	return ret;
}

/* Model calls made outside a run (the chat gateway), in one transaction. */
static int sq_ai_record(struct sl_store *base, const char *tenant, const json_t *calls, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	int64_t now = sl_now_ms();
	size_t i;
	const json_t *rec;
	json_array_foreach(calls, i, rec)
	{
		sqlite3_stmt *st = st_get(&s->w, SQ_AI_CALL_LOG, err);
		if (!st) {
			rc = SL_ESTORE;
			break;
		}
		int b = b_text(st, 2, tenant) | b_json(st, 3, rec) | b_i64(st, 4, now);
		rc = b ? (st_done(st), bind_err(b, err, "ai call")) : x_run(&s->w, st, NULL, err, "ai call");
		if (rc)
			break;
	}
	return wr_end(s, rc, err);
}

/* ---- the audit log: appending, listing, scanning ------------------------------------------------- */

static int sq_audit_append(struct sl_store *base, const json_t *entries, char hash_out[SL_AUDIT_HASH_LEN + 1],
			   struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	return wr_end(s, audit_put_all(&s->w, entries, sl_now_ms(), hash_out, err), err);
}

static int audit_bind(sqlite3_stmt *st, const struct sl_audit_filter *f, size_t limit, int64_t cursor)
{
	int k = 1, b = 0;
	if (f->tenant)
		b |= b_text(st, k++, f->tenant);
	if (f->action)
		b |= b_text(st, k++, f->action);
	if (f->run_id)
		b |= b_text(st, k++, f->run_id);
	if (f->since > 0)
		b |= b_i64(st, k++, f->since);
	if (f->until > 0)
		b |= b_i64(st, k++, f->until);
	if (cursor > 0)
		b |= b_i64(st, k++, cursor);
	return b | b_i64(st, k, (int64_t)limit + 1);
}

/* One list item: the entry as stored, with its chain links. */
static json_t *audit_doc(sqlite3_stmt *st)
{
	json_t *d = c_json(st, 1);
	if (!json_is_object(d)) {
		json_decref(d);
		d = json_pack("{s:I, s:b}", "seq", (json_int_t)sqlite3_column_int64(st, 0), "unreadable", 1);
	}
	json_object_set_new(d, "hash", c_jstr(st, 2));
	json_object_set_new(d, "prev_hash", c_jstr(st, 3));
	return d;
}

static int sq_audit_list(struct sl_store *base, const struct sl_audit_filter *f, json_t **out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	size_t limit = sl_store__limit(f->limit);
	int64_t cursor = 0;
	if (f->cursor)
		sl_parse_i64(f->cursor, &cursor); /* checked by store.c */
	struct sl_buf q;
	sl_buf_init(&q, SQ_QUERY_MAX);
	sl_buf_adds(&q, "SELECT seq, entry, hash, prev_hash FROM audit WHERE 1");
	if (f->tenant)
		sl_buf_adds(&q, " AND tenant = ?");
	if (f->action)
		sl_buf_adds(&q, " AND action = ?");
	if (f->run_id)
		sl_buf_adds(&q, " AND run_id = ?");
	if (f->since > 0)
		sl_buf_adds(&q, " AND at >= ?");
	if (f->until > 0)
		sl_buf_adds(&q, " AND at < ?");
	if (cursor > 0)
		sl_buf_adds(&q, " AND seq < ?");
	sl_buf_adds(&q, " ORDER BY seq DESC LIMIT ?");
	if (q.err) {
		sl_buf_free(&q);
		return sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: list query too long");
	}
	struct sq_conn *c = rd_get(s, err);
	if (!c) {
		sl_buf_free(&q);
		return SL_ESTORE;
	}
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v3(c->db, sl_buf_str(&q), -1, 0, &st, NULL) != SQLITE_OK) {
		rc = db_err(c, err, "audit list");
	} else {
		int b = audit_bind(st, f, limit, cursor);
		json_t *items = json_array();
		int64_t last = 0;
		bool more = false;
		int r = b ? SQLITE_MISUSE : SQLITE_ROW;
		while (r == SQLITE_ROW && (r = sqlite3_step(st)) == SQLITE_ROW) {
			if (json_array_size(items) == limit) {
				more = true;
				break;
			}
			last = sqlite3_column_int64(st, 0);
			json_array_append_new(items, audit_doc(st));
		}
		if (r != SQLITE_ROW && r != SQLITE_DONE) {
			rc = b ? bind_err(b, err, "audit list") : db_err(c, err, "audit list");
			json_decref(items);
		} else {
			char next[32];
			snprintf(next, sizeof next, "%lld", (long long)last);
			*out = json_object();
			json_object_set_new(*out, "entries", items);
			json_object_set_new(*out, "next_cursor", more ? json_string(next) : json_null());
		}
	}
	sqlite3_finalize(st);
	rd_put(s, c);
	sl_buf_free(&q);
	return rc;
}

/* One read transaction: the rows are one snapshot even while appends go on. */
static int sq_audit_scan(struct sl_store *base, sl_audit_row_fn fn, void *ud, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_begin(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, SQ_AUDIT_SCAN, err);
	int ret = st ? 0 : SL_ESTORE;
	int r = SQLITE_DONE;
	while (st && ret == 0 && (r = sqlite3_step(st)) == SQLITE_ROW) {
		struct sl_audit_row row = {
			.seq = sqlite3_column_int64(st, 0),
			.prev_hash = c_text(st, 1),
			.hash = c_text(st, 2),
			.text = c_text(st, 3),
			.text_len = (size_t)sqlite3_column_bytes(st, 3),
			.at = sqlite3_column_int64(st, 4),
			.tenant = c_text(st, 5),
			.action = c_text(st, 6),
			.run_id = c_text(st, 7),
		};
		ret = fn(&row, ud);
	}
	if (st) {
		if (ret == 0 && r != SQLITE_DONE)
			ret = db_err(c, err, "audit scan");
		st_done(st);
	}
	rd_end(s, c);
	return ret;
}

/* ---- API keys and kill switches ------------------------------------------------------------ */

static void key_from_row(sqlite3_stmt *st, struct sl_api_key *k)
{
	memset(k, 0, sizeof *k);
	char *dst[] = {k->id, k->hash, k->principal, k->kind, k->role, k->tenant, k->name};
	size_t len[] = {sizeof k->id, sizeof k->hash, sizeof k->principal, sizeof k->kind,
			sizeof k->role, sizeof k->tenant, sizeof k->name};
	for (int i = 0; i < 7; i++) {
		const char *v = c_text(st, i);
		snprintf(dst[i], len[i], "%s", v ? v : "");
	}
	k->created_at = sqlite3_column_int64(st, 7);
	k->expires_at = sqlite3_column_int64(st, 8);
	k->revoked_at = sqlite3_column_int64(st, 9);
}

static int key_put_tx(struct sq_conn *c, const struct sl_api_key *k, struct sl_err *err)
{
	sqlite3_stmt *st = st_get(c, SQ_KEY_EXISTS, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, k->id);
	int r = b ? SQLITE_MISUSE : sqlite3_step(st);
	st_done(st);
	if (r == SQLITE_ROW)
		return sl_err_set(err, SL_EEXISTS, SL_CLASS_NONE, "store: key %s exists", k->id);
	if (r != SQLITE_DONE)
		return b ? bind_err(b, err, "key") : db_err(c, err, "key");
	st = st_get(c, SQ_KEY_PUT, err);
	if (!st)
		return SL_ESTORE;
	b = b_text(st, 1, k->id) | b_text(st, 2, k->hash) | b_text(st, 3, k->principal) | b_text(st, 4, k->kind) |
	    b_text(st, 5, k->role) | b_text(st, 6, k->tenant) | b_text(st, 7, k->name) | b_i64(st, 8, k->created_at) |
	    b_i64(st, 9, k->expires_at);
	if (b) {
		st_done(st);
		return bind_err(b, err, "key");
	}
	return x_run(c, st, NULL, err, "key");
}

static int sq_key_put(struct sl_store *base, const struct sl_api_key *k, const json_t *audit, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	rc = key_put_tx(&s->w, k, err);
	if (!rc && audit)
		rc = audit_put(&s->w, audit, NULL, sl_now_ms(), NULL, err);
	return wr_end(s, rc, err);
}

static int sq_key_get(struct sl_store *base, const char *id, struct sl_api_key *out, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, SQ_KEY_GET, err);
	int rc = SL_ESTORE;
	if (st) {
		int b = b_text(st, 1, id);
		int r = b ? SQLITE_MISUSE : sqlite3_step(st);
		if (r == SQLITE_ROW) {
			key_from_row(st, out);
			rc = 0;
		} else if (r == SQLITE_DONE) {
			rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no key %s", id);
		} else {
			rc = b ? bind_err(b, err, "key") : db_err(c, err, "key");
		}
		st_done(st);
	}
	rd_put(s, c);
	return rc;
}

/* Rows of a cached statement without parameters, each made a document. */
static int rows_doc(struct sq_store *s, enum sq_st id, json_t *(*row_fn)(sqlite3_stmt *st), const char *key,
		    json_t **out, struct sl_err *err)
{
	struct sq_conn *c = rd_get(s, err);
	if (!c)
		return SL_ESTORE;
	sqlite3_stmt *st = st_get(c, id, err);
	int rc = SL_ESTORE;
	if (st) {
		json_t *arr = json_array();
		int r;
		while ((r = sqlite3_step(st)) == SQLITE_ROW)
			json_array_append_new(arr, row_fn(st));
		if (r == SQLITE_DONE) {
			*out = json_pack("{s:o}", key, arr);
			rc = 0;
		} else {
			json_decref(arr);
			rc = db_err(c, err, key);
		}
		st_done(st);
	}
	rd_put(s, c);
	return rc;
}

static json_t *key_row_doc(sqlite3_stmt *st)
{
	struct sl_api_key k;
	key_from_row(st, &k);
	return sl_store__key_doc(&k);
}

static int sq_key_list(struct sl_store *base, json_t **out, struct sl_err *err)
{
	return rows_doc(sq(base), SQ_KEY_LIST, key_row_doc, "keys", out, err);
}

static int sq_key_revoke(struct sl_store *base, const char *id, int64_t now, const json_t *audit, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	int64_t changed = 0;
	rc = exec_ti(&s->w, SQ_KEY_REVOKE, id, now, 2, err);
	changed = rc ? 0 : sqlite3_changes64(s->w.db);
	if (!rc && !changed) {
		sqlite3_stmt *st = st_get(&s->w, SQ_KEY_EXISTS, err);
		int r = !st || b_text(st, 1, id) ? SQLITE_MISUSE : sqlite3_step(st);
		if (st)
			st_done(st);
		rc = r == SQLITE_ROW    ? sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: key %s is already revoked", id)
		     : r == SQLITE_DONE ? sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no key %s", id)
					: db_err(&s->w, err, "key");
	}
	if (!rc && audit)
		rc = audit_put(&s->w, audit, NULL, now, NULL, err);
	return wr_end(s, rc, err);
}

static int pause_tx(struct sq_conn *c, const char *kind, const char *name, bool paused, const char *by,
		    bool *changed, struct sl_err *err)
{
	int64_t now = sl_now_ms();
	sqlite3_stmt *st = st_get(c, paused ? SQ_PAUSE_PUT : SQ_PAUSE_DEL, err);
	if (!st)
		return SL_ESTORE;
	int b = b_text(st, 1, kind) | b_text(st, 2, name) | (paused ? b_text(st, 3, by) | b_i64(st, 4, now) : 0);
	int64_t n = 0;
	int rc = b ? (st_done(st), bind_err(b, err, "pause")) : x_run(c, st, &n, err, "pause");
	*changed = n > 0;
	if (rc || paused || !n)
		return rc;
	char key[256];
	snprintf(key, sizeof key, "%s:%s", kind, name);
	return exec_ti(c, SQ_PAUSE_WAKE, key, now, 2, err);
}

static int sq_pause_set(struct sl_store *base, const char *kind, const char *name, bool paused, const char *by,
			const json_t *audit, bool *changed, struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	rc = pause_tx(&s->w, kind, name, paused, by, changed, err);
	if (!rc && audit && *changed)
		rc = audit_put(&s->w, audit, NULL, sl_now_ms(), NULL, err);
	return wr_end(s, rc, err);
}

static json_t *pause_doc(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:I}", "kind", c_jstr(st, 0), "name", c_jstr(st, 1), "by", c_jstr(st, 2),
			 "at", (json_int_t)sqlite3_column_int64(st, 3));
}

static int sq_pause_list(struct sl_store *base, json_t **out, struct sl_err *err)
{
	return rows_doc(sq(base), SQ_PAUSE_LIST, pause_doc, "pauses", out, err);
}

static int sq_task_park(struct sl_store *base, const struct sl_task *t, const char *key, int64_t due_at,
			struct sl_err *err)
{
	struct sq_store *s = sq(base);
	int rc = wr_begin(s, err);
	if (rc)
		return rc;
	sqlite3_stmt *st = st_get(&s->w, SQ_TASK_PARK, err);
	if (!st)
		return wr_end(s, SL_ESTORE, err);
	int b = b_text(st, 1, t->run_id) | b_i64(st, 2, t->fence) | b_i64(st, 3, due_at) | b_text(st, 4, key);
	int64_t n = 0;
	rc = b ? (st_done(st), bind_err(b, err, "park")) : x_run(&s->w, st, &n, err, "park");
	if (!rc && n == 0)
		rc = sl_err_set(err, SL_EFENCED, SL_CLASS_NONE, "store: task of %s moved on", t->run_id);
	return wr_end(s, rc, err);
}

/* ---- the ops table ---------------------------------------------------------------------------- */

const struct sl_store_ops sl_store_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.schema_version = sq_schema_version,
	.def_put = sq_def_put,
	.def_get = sq_def_get,
	.run_create_many = sq_run_create_many,
	.claim = sq_claim,
	.renew = sq_renew,
	.next_due = sq_next_due,
	.run_load = sq_run_load,
	.commit = sq_commit,
	.run_get = sq_run_get,
	.run_status = sq_run_status,
	.runs_list = sq_runs_list,
	.tree_pending = sq_tree_pending,
	.counts = sq_counts,
	.run_cancel = sq_run_cancel,
	.dlq_list = sq_dlq_list,
	.dlq_count = sq_dlq_count,
	.ai_spent = sq_ai_spent,
	.ai_record = sq_ai_record,
	.ai_costs = sq_ai_costs,
	.step_outputs = sq_step_outputs,
	.run_stats = sq_run_stats,
	.dlq_replay = sq_dlq_replay,
	.dlq_purge = sq_dlq_purge,
	.idem_get = sq_idem_get,
	.idem_purge = sq_idem_purge,
	.trigger_state_get = sq_trigger_state_get,
	.trigger_state_put = sq_trigger_state_put,
	.release = sq_release,
	.lease_owners = sq_lease_owners,
	.release_owner = sq_release_owner,
	.audit_append = sq_audit_append,
	.audit_list = sq_audit_list,
	.audit_scan = sq_audit_scan,
	.run_cancel_audited = sq_run_cancel_audited,
	.dlq_replay_audited = sq_dlq_replay_audited,
	.key_put = sq_key_put,
	.key_get = sq_key_get,
	.key_list = sq_key_list,
	.key_revoke = sq_key_revoke,
	.pause_set = sq_pause_set,
	.pause_list = sq_pause_list,
	.task_park = sq_task_park,
	.ai_costs_tenant = sq_ai_costs_tenant,
	.approvals_list = sq_approvals_list,
	.approval_get = sq_approval_get,
	.approval_decide = sq_approval_decide,
};
