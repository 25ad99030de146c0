/*
 * postgres.c: the PostgreSQL store (libpq), for several processes on one or
 * more machines sharing one database. Same contract as sqlite.c (the unit
 * tests run against both); see docs/internals/store.md for the model.
 *
 * Connections. A small pool per process (PG_POOL_MAX) behind a mutex, so
 * concurrent engine threads do not serialise on one connection; each
 * connection prepares its statements once (PQprepare on first use, by the
 * statement's enum). Every operation is one transaction on one pooled
 * connection: it lands whole or not at all.
 *
 * Claiming. One round trip, sluice_claim() (migrations_postgres.h): the
 * batch is shared fairly among tenants, each tenant's share selected in
 * claim order with FOR UPDATE SKIP LOCKED (claimers in other processes
 * skip each other's rows instead of queueing), leased, and its fencing
 * tokens bumped. A commit's
 * task UPDATE carries "AND fence = $held": a stale token changes nothing
 * (SL_EFENCED), as on SQLite.
 *
 * Reconnecting. A connection found broken is PQreset with a short backoff
 * when next taken from the pool. An operation that failed because the
 * connection was lost before its COMMIT was sent is rolled back by the
 * server and is retried once on a fresh connection; one lost during COMMIT
 * (the outcome is unknown) returns SL_ESTORE with class transient, so the
 * caller retries (a fenced or idempotent retry is harmless). Deadlocks and
 * serialization failures are retried the same way.
 *
 * Wake-ups and singletons use two dedicated session connections, outside
 * the pool: one LISTENs on sluice_work (transactions that make work due
 * NOTIFY it), one holds the session advisory locks of singletons, which
 * the server releases when the process (its connection) dies.
 *
 * The audit log. Entries are sealed here with store.c's code (the same
 * bytes as on SQLite) after a head read under a transaction-level advisory
 * lock (sluice_audit_head()), inside the transaction of what they record:
 * every process appends to one chain. See audit_put.
 */
#include "store/store.h"
#include "store/store_int.h"
#include "store/migrations_postgres.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PG_POOL_MAX 8
#define PG_QUERY_MAX 2048     /* a list query built from its filters */
#define PG_PARAMS_MAX 16
#define PG_RESET_TRIES 4      /* backoff 50, 100, 200, 400 ms */
#define PG_TX_TRIES 3
#define PG_MIGRATE_LOCK 0x736c7569636501LL /* "sluice" + 1: migrations */
#define PG_CHANNEL "sluice_work"
#define PG_SINGLETONS_MAX 32
#define PG_CONNECT_TIMEOUT_S 10

/* ---- statements ------------------------------------------------------------------ */

#define RUN_COLS                                                                                    \
	"id, workflow, version, digest, status, phase, cursor, attempt, wake_at, input, output, "  \
	"error, correlation_id, parent_run_id, root_run_id, \"trigger\", tenant, priority, "      \
	"created_at, updated_at, finished_at"
enum {
	RC_ID, RC_WORKFLOW, RC_VERSION, RC_DIGEST, RC_STATUS, RC_PHASE, RC_CURSOR, RC_ATTEMPT, RC_WAKE_AT,
	RC_INPUT, RC_OUTPUT, RC_ERROR, RC_CORRELATION, RC_PARENT, RC_ROOT, RC_TRIGGER, RC_TENANT,
	RC_PRIORITY, RC_CREATED, RC_UPDATED, RC_FINISHED,
};

#define SUM_COLS                                                                                    \
	"id, workflow, version, status, correlation_id, parent_run_id, root_run_id, \"trigger\", "  \
	"tenant, priority, created_at, updated_at, finished_at, error"
enum {
	SC_ID, SC_WORKFLOW, SC_VERSION, SC_STATUS, SC_CORRELATION, SC_PARENT, SC_ROOT, SC_TRIGGER,
	SC_TENANT, SC_PRIORITY, SC_CREATED, SC_UPDATED, SC_FINISHED, SC_ERROR,
};

#define DLQ_COLS "id, run_id, workflow, version, step_id, error_class, error, evidence, created_at, replayed_at"
enum { DC_ID, DC_RUN, DC_WORKFLOW, DC_VERSION, DC_STEP, DC_CLASS, DC_ERROR, DC_EVIDENCE, DC_CREATED, DC_REPLAYED };

#define SQL_TERMINAL "('completed', 'dead', 'cancelled', 'compensated')"

/* The JSON of one ai call record, as $3 of AI_CALL_PUT / AI_CALL_LOG. */
#define AJ "(SELECT $3::jsonb AS j) x"
#define PG_AI_INSERT                                                                                    \
	"INSERT INTO ai_calls(run_id, workflow, step_id, tenant, route, model, provider, prompt_hash, "  \
	"input, output, confidence, tokens_in, tokens_out, cost_usd, latency_ms, cache_hit, outcome, "   \
	"error_class, error, created_at)"
/* the values of a record's columns after run_id, workflow, step_id, tenant; $4 the time */
#define PG_AI_FIELDS                                                                                    \
	"j->>'route', j->>'model', j->>'provider', j->>'prompt_hash', "                                   \
	"CASE jsonb_typeof(j->'input') WHEN 'string' THEN j->>'input' ELSE (j->'input')::text END, "      \
	"CASE jsonb_typeof(j->'output') WHEN 'string' THEN j->>'output' ELSE (j->'output')::text END, "   \
	"(j->>'confidence')::double precision, COALESCE((j->>'tokens_in')::numeric::bigint, 0), "         \
	"COALESCE((j->>'tokens_out')::numeric::bigint, 0), COALESCE((j->>'cost_usd')::double precision, 0), " \
	"COALESCE((j->>'latency_ms')::numeric::bigint, 0), "                                              \
	"CASE jsonb_typeof(j->'cache_hit') WHEN 'boolean' THEN (j->>'cache_hit')::boolean::int "          \
	"WHEN 'number' THEN ((j->>'cache_hit')::numeric <> 0)::int ELSE 0 END, "                          \
	"COALESCE(j->>'outcome', 'ok'), j->>'error_class', j->>'error', $4::bigint"
/* spend grouped by one column since $1 (see sl_store_ai_costs) */
#define PG_AI_COSTS(col)                                                                                \
	"SELECT " col ", COUNT(*), COALESCE(SUM(c.tokens_in), 0), COALESCE(SUM(c.tokens_out), 0), "       \
	"COALESCE(SUM(c.cost_usd), 0), COALESCE(SUM(c.cache_hit), 0), "                                  \
	"COUNT(DISTINCT CASE WHEN r.status = 'completed' THEN c.run_id END) "                            \
	"FROM ai_calls c LEFT JOIN runs r ON r.id = c.run_id WHERE c.created_at >= $1 "                  \
	"AND ($2::text IS NULL OR c.tenant = $2) GROUP BY " col " ORDER BY 5 DESC"

#define KEY_COLS "id, hash, principal, kind, role, tenant, name, created_at, expires_at, revoked_at"

#define PG_STMTS(X)                                                                                         \
	X(DEF_PUT, "INSERT INTO workflow_defs(digest, name, version, file, source, created_at) "           \
		   "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING")                        \
	X(DEF_GET, "SELECT file, source FROM workflow_defs WHERE digest = $1")                              \
	/* the audit log: the head under the log's lock, sealed rows in, a page in seq order */ \
	X(AUDIT_HEAD, "SELECT head_seq, head_hash FROM sluice_audit_head()")                                \
	X(AUDIT_PUT, "INSERT INTO audit(seq, at, tenant, action, run_id, entry, prev_hash, hash) "          \
		     "SELECT seq, at, tenant, action, run_id, entry, prev_hash, hash FROM "               \
		     "jsonb_to_recordset($1::jsonb) AS x(seq BIGINT, at BIGINT, tenant TEXT, action TEXT, " \
		     "run_id TEXT, entry TEXT, prev_hash TEXT, hash TEXT)")                                \
	X(AUDIT_SCAN, "SELECT seq, prev_hash, hash, entry, at, tenant, action, run_id FROM audit "          \
		      "WHERE seq > $1 ORDER BY seq LIMIT $2")                                               \
	X(IDEM_GET, "SELECT run_id, expires_at FROM idempotency WHERE scope = $1 AND key = $2")             \
	X(TRIG_GET, "SELECT state FROM trigger_state WHERE name = $1")                                        \
	X(TRIG_PUT, "INSERT INTO trigger_state(name, state, updated_at) VALUES ($1, $2, $3) "                 \
		    "ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at")  \
	/* Takes (scope, key) unless a live record holds it: a row back means ours. A          \
	 * concurrent taker in another process waits for ours to end, then sees it. */         \
	X(IDEM_TAKE, "INSERT INTO idempotency(scope, key, run_id, created_at, expires_at) "                 \
		     "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO UPDATE SET "                  \
		     "run_id = excluded.run_id, created_at = excluded.created_at, "                         \
		     "expires_at = excluded.expires_at "                                                    \
		     "WHERE idempotency.expires_at > 0 AND idempotency.expires_at <= $4 RETURNING run_id")  \
	X(IDEM_PURGE, "DELETE FROM idempotency WHERE expires_at > 0 AND expires_at <= $1")                  \
	X(RUN_INSERT, "INSERT INTO runs(id, workflow, version, digest, status, phase, input, "              \
		      "correlation_id, parent_run_id, root_run_id, \"trigger\", tenant, priority, "         \
		      "created_at, updated_at) VALUES ($1, $2, $3, $4, 'queued', 'forward', $5, $6, $7, "  \
		      "$8, $9, $10, $11, $12, $12)")                                                        \
	X(TASK_PUT, "INSERT INTO tasks(run_id, due_at, lease_owner, lease_until, fence, tenant, priority) " \
		    "VALUES ($1, $2, NULL, 0, $3, $4, $5) ON CONFLICT (run_id) DO UPDATE SET "             \
		    "due_at = excluded.due_at, lease_owner = NULL, lease_until = 0, "                       \
		    "fence = GREATEST(tasks.fence, excluded.fence) + 1")                                    \
	/* Select in claim order, skipping rows other claimers hold, then lease them;              \
	 * the outer ORDER BY gives them back in claim order. */                                    \
	/* the fair claim, one round trip (migrations_postgres.h, migration 3):         \
	 * now, max, owner, lease end, the shares' tenants, weights and limits, lag */ \
	X(CLAIM, "SELECT o_run_id, o_fence FROM sluice_claim($1, $2, $3, $4, $5, $6, $7, $8)")           \
	X(TASK_EXTEND, "UPDATE tasks SET lease_until = $3, due_at = $3 WHERE run_id = $1 AND fence = $2")   \
	X(TASK_RESCHEDULE, "UPDATE tasks SET due_at = $3, lease_owner = NULL, lease_until = 0 "             \
			   "WHERE run_id = $1 AND fence = $2")                                              \
	X(TASK_RELEASE, "UPDATE tasks SET lease_owner = NULL, lease_until = 0, due_at = LEAST(due_at, $3) " \
			"WHERE run_id = $1 AND fence = $2 AND lease_owner IS NOT NULL")                     \
	X(TASK_DONE, "DELETE FROM tasks WHERE run_id = $1 AND fence = $2")                                  \
	X(TASK_DELETE, "DELETE FROM tasks WHERE run_id = $1 RETURNING fence")                               \
	X(NEXT_DUE, "SELECT MIN(due_at) FROM tasks")                                                        \
	X(LEASE_OWNERS, "SELECT lease_owner, COUNT(*) FROM tasks WHERE lease_owner IS NOT NULL "            \
			"AND lease_until > $1 GROUP BY lease_owner")                                        \
	X(OWNER_RELEASE, "UPDATE tasks SET lease_owner = NULL, lease_until = 0, due_at = $2 "               \
			 "WHERE lease_owner = $1")                                                          \
	X(STEP_PUT, "INSERT INTO steps(run_id, step_id, idx, status, output, error, attempts, started_at, " \
		    "finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "                             \
		    "ON CONFLICT (run_id, step_id) DO UPDATE SET idx = excluded.idx, "                      \
		    "status = excluded.status, output = excluded.output, error = excluded.error, "          \
		    "attempts = excluded.attempts, started_at = excluded.started_at, "                      \
		    "finished_at = excluded.finished_at")                                                   \
	X(ATTEMPT_PUT, "INSERT INTO attempts(run_id, step_id, attempt, started_at, duration_ms, outcome, "   \
		       "error_class, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")                       \
	X(RUN_UPDATE, "UPDATE runs SET status = $2, phase = $3, cursor = $4, attempt = $5, wake_at = $6, "  \
		      "output = COALESCE($7, output), error = COALESCE($8, error), updated_at = $9, "       \
		      "finished_at = $10, task_fence = GREATEST(task_fence, $11) WHERE id = $1")            \
	X(DLQ_PUT, "INSERT INTO dlq(id, run_id, workflow, version, step_id, error_class, error, evidence, "  \
		   "created_at) SELECT $1::text, id, workflow, version, $3::text, $4::text, $5::text, "     \
		   "$6::text, $7::bigint FROM runs WHERE id = $2")                                          \
	X(RUN_LOAD, "SELECT " RUN_COLS " FROM runs WHERE id = $1")                                          \
	X(STEPS_LOAD, "SELECT step_id, status, output, error, attempts, started_at, finished_at, idx "      \
		      "FROM steps WHERE run_id = $1 ORDER BY idx, step_id")                                 \
	X(ATTEMPTS_LOAD, "SELECT step_id, attempt, started_at, duration_ms, outcome, error_class, error "   \
			 "FROM attempts WHERE run_id = $1 ORDER BY seq")                                    \
	X(RUN_STATUS, "SELECT status FROM runs WHERE id = $1")                                              \
	/* cancel and replay: the run row is locked for the decision */                              \
	X(RUN_STATUS_LOCK, "SELECT status FROM runs WHERE id = $1 FOR UPDATE")                              \
	X(TREE_PENDING, "SELECT COUNT(*) FROM runs WHERE root_run_id = $1 AND status NOT IN " SQL_TERMINAL   \
			" AND status != 'review'")                                                            \
	X(COUNTS, "SELECT status, COUNT(*) FROM runs GROUP BY status")                                      \
	X(RUN_CANCEL, "UPDATE runs SET status = 'cancelled', updated_at = $2, finished_at = $2, "           \
		      "task_fence = GREATEST(task_fence, $3) WHERE id = $1")                                \
	X(DLQ_GET, "SELECT run_id, replayed_at FROM dlq WHERE id = $1 FOR UPDATE")                          \
	X(DEF_EXISTS, "SELECT 1 FROM workflow_defs WHERE digest = $1")                                      \
	X(RUN_REPLAY, "UPDATE runs SET status = 'queued', attempt = 0, wake_at = 0, output = NULL, "        \
		      "error = NULL, finished_at = 0, updated_at = $2, input = COALESCE($3, input), "       \
		      "digest = COALESCE($4, digest), "                                                    \
		      "version = CASE WHEN $5::integer > 0 THEN $5::integer ELSE version END "             \
		      "WHERE id = $1 RETURNING task_fence, tenant, priority")                               \
	X(STEP_DEL_DEAD, "DELETE FROM steps WHERE run_id = $1 AND status = 'dead'")                         \
	X(DLQ_MARK, "UPDATE dlq SET replayed_at = $2 WHERE id = $1")                                        \
	X(DLQ_PURGE, "DELETE FROM dlq WHERE created_at < $1")                                              \
	X(AI_CALL_PUT, PG_AI_INSERT " SELECT id, workflow, $2::text, tenant, " PG_AI_FIELDS                  \
		       " FROM runs, " AJ " WHERE id = $1")                                                   \
	/* a call outside any run (the chat gateway): $2 tenant */                                 \
	X(AI_CALL_LOG, PG_AI_INSERT " SELECT '', '', '', $2::text, " PG_AI_FIELDS " FROM " AJ              \
		       " WHERE $1::text IS NULL") /* $1 unused (NULL): AJ and the fields keep their numbers */                                                    \
	X(AI_COSTS_WORKFLOW, PG_AI_COSTS("c.workflow"))                                                     \
	X(AI_COSTS_ROUTE, PG_AI_COSTS("c.route"))                                                           \
	X(AI_COSTS_MODEL, PG_AI_COSTS("c.model"))                                                           \
	X(AI_COSTS_TENANT, PG_AI_COSTS("c.tenant"))                                                         \
	X(RUN_STATS, "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'completed'), "                       \
		     "COUNT(*) FILTER (WHERE status IN ('dead', 'compensated')), "                            \
		     "COUNT(*) FILTER (WHERE status = 'review'), "                                             \
		     "COUNT(*) FILTER (WHERE status = 'completed' AND finished_at - created_at > $3), "       \
		     "COALESCE(SUM((SELECT COALESCE(SUM(a.cost_usd), 0) FROM ai_calls a WHERE a.run_id = r.id)), 0) " \
		     "FROM runs r WHERE workflow = $1 AND updated_at >= $2 AND status IN "                  \
		     "('completed', 'dead', 'cancelled', 'compensated', 'review')")                         \
	X(RUN_P95, "SELECT finished_at - created_at AS d FROM runs WHERE workflow = $1 AND updated_at >= $2 "  \
		   "AND status = 'completed' ORDER BY d LIMIT 1 OFFSET $3")                                  \
	X(STEP_OUTPUTS, "SELECT s.output FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.workflow = $1 "  \
			"AND s.step_id = $2 AND s.status = 'completed' AND s.output IS NOT NULL "            \
			"ORDER BY s.finished_at DESC, s.run_id DESC LIMIT $3 OFFSET $4")                    \
	X(AI_CALLS_LOAD, "SELECT step_id, route, model, provider, prompt_hash, input, output, confidence, "  \
			 "tokens_in, tokens_out, cost_usd, latency_ms, cache_hit, outcome, error_class, error, " \
			 "created_at FROM ai_calls WHERE run_id = $1 ORDER BY seq")                           \
	X(AI_SPENT_ROUTE, "SELECT COALESCE(SUM(cost_usd), 0) FROM ai_calls WHERE route = $1 "               \
			  "AND created_at >= $2")                                                           \
	X(AI_SPENT_WORKFLOW, "SELECT COALESCE(SUM(cost_usd), 0) FROM ai_calls WHERE workflow = $1 "         \
			     "AND created_at >= $2")                                                        \
	X(NOTIFY, "SELECT pg_notify('" PG_CHANNEL "', '')")                                                \
	X(KEY_PUT, "INSERT INTO api_keys(id, hash, principal, kind, role, tenant, name, created_at, "      \
		   "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING")   \
	X(KEY_GET, "SELECT " KEY_COLS " FROM api_keys WHERE id = $1")                                       \
	X(KEY_LIST, "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at, id")                            \
	X(KEY_REVOKE, "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at = 0")               \
	X(KEY_EXISTS, "SELECT 1 FROM api_keys WHERE id = $1")                                               \
	X(PAUSE_PUT, "INSERT INTO pauses(kind, name, by_whom, at) VALUES ($1, $2, $3, $4) "                 \
		     "ON CONFLICT (kind, name) DO NOTHING")                                                 \
	X(PAUSE_DEL, "DELETE FROM pauses WHERE kind = $1 AND name = $2")                                    \
	X(PAUSE_LIST, "SELECT kind, name, by_whom, at FROM pauses ORDER BY at, kind, name")                 \
	X(PAUSE_WAKE, "UPDATE tasks SET due_at = LEAST(due_at, $2), parked = NULL "                        \
		      "WHERE parked = $1 AND lease_owner IS NULL")                                          \
	X(TASK_PARK, "UPDATE tasks SET due_at = $3, lease_owner = NULL, lease_until = 0, parked = $4 "     \
		     "WHERE run_id = $1 AND fence = $2")                                                    \
	/* approvals: as sqlite.c has them (tenant and workflow from the run) */                      \
	X(APR_PUT, "INSERT INTO approvals(id, run_id, step_id, tenant, workflow, kind, status, reviewers, "  \
		   "escalate_to, due_at, timeout_ms, on_timeout, input, evidence, proposed, reason, created_at) " \
		   "SELECT $1::text, id, $3::text, tenant, workflow, $4::text, 'pending', $5::text, $6::text, " \
		   "$7::bigint, $8::bigint, $9::text, $10::text, $11::text, $12::text, $13::text, $14::bigint " \
		   "FROM runs WHERE id = $2")                                                                \
	X(APR_SET, "UPDATE approvals SET status = $2, decision = $3, reviewers = COALESCE($4, reviewers), "  \
		   "due_at = CASE WHEN $5::bigint > 0 THEN $5::bigint ELSE due_at END, "                    \
		   "escalated = escalated + CASE WHEN $2 = 'pending' THEN 1 ELSE 0 END, "                   \
		   "decided_at = CASE WHEN $2 = 'pending' THEN 0 ELSE $6::bigint END "                      \
		   "WHERE id = $1 AND status = 'pending'")                                                   \
	X(APR_CANCEL, "UPDATE approvals SET status = 'expired', decided_at = $2, decision = json_build_object(" \
		      "'decision', 'expired', 'final', NULL, 'by', 'system:cancel', 'reason', "              \
		      "'the run was cancelled', 'at', $2::bigint)::text WHERE run_id = $1 AND status = 'pending'") \
	X(APR_CONSUME, "UPDATE approvals SET consumed_at = $2 WHERE id = $1")                               \
	X(APR_LOAD, "SELECT " APR_COLS " FROM approvals WHERE run_id = $1 AND consumed_at = 0 "            \
		    "ORDER BY created_at, id")                                                              \
	X(APR_OF_RUN, "SELECT " APR_COLS " FROM approvals WHERE run_id = $1 ORDER BY created_at, id")       \
	X(APR_GET, "SELECT " APR_COLS " FROM approvals WHERE id = $1")                                      \
	X(APR_GET_LOCK, "SELECT " APR_COLS " FROM approvals WHERE id = $1 FOR UPDATE")                      \
	X(APR_DECIDE, "UPDATE approvals SET status = $2, decision = $3, decided_at = $4 "                   \
		      "WHERE id = $1 AND status = 'pending'")                                                \
	X(RUN_RESUME, "UPDATE runs SET status = 'running', updated_at = $2 WHERE id = $1 AND status = 'review' " \
		      "RETURNING task_fence, tenant, priority")

enum pg_st {
#define PG_ENUM(name, sql) PG_##name,
	PG_STMTS(PG_ENUM)
#undef PG_ENUM
	PG__COUNT
};

static const char *const pg_sql[PG__COUNT] = {
#define PG_SQL(name, sql) [PG_##name] = sql,
	PG_STMTS(PG_SQL)
#undef PG_SQL
};

/* ---- the handle ----------------------------------------------------------------- */

struct pg_conn {
	PGconn *pc;
	bool prepared[PG__COUNT];
	bool lost;     /* the connection broke: reset before the next use */
	bool retry;    /* the last failure was a deadlock or serialization failure */
	bool notify;   /* this transaction made work due: NOTIFY before COMMIT */
	struct pg_conn *next;
};

struct pg_store {
	struct sl_store base;
	char *url;      /* with the password: never logged */
	char *safe_url; /* the password replaced by *** */
	int version;

	pthread_mutex_t mu; /* the pool */
	pthread_cond_t cv;
	struct pg_conn *free;
	int open;

	pthread_mutex_t lmu; /* the LISTEN connection (sl_store_wait) */
	PGconn *listen;

	pthread_mutex_t smu; /* the singleton connection */
	PGconn *single;
	char *held[PG_SINGLETONS_MAX];
	int nheld;
};

static struct pg_store *pg(struct sl_store *s)
{
	return (struct pg_store *)s;
}

/* ---- the URL, with the password kept out of messages ------------------------------- */

/* postgres://user:secret@host/db -> postgres://user:***@host/db, and a
 * password=... query parameter likewise. Returns owned. */
static char *redact_url(const char *url)
{
	struct sl_buf b;
	sl_buf_init(&b, 4096);
	const char *p = strstr(url, "://");
	const char *auth = p ? p + 3 : url;
	const char *at = strchr(auth, '@');
	const char *slash = strchr(auth, '/');
	const char *colon = strchr(auth, ':');
	if (at && (!slash || at < slash) && colon && colon < at) {
		sl_buf_add(&b, url, (size_t)(colon + 1 - url));
		sl_buf_adds(&b, "***");
		sl_buf_adds(&b, at);
	} else {
		sl_buf_adds(&b, url);
	}
	char *s = sl_buf_detach(&b);
	if (!s)
		return sl_strdup("postgres://(url too long)");
	char *pw = strstr(s, "password=");
	if (pw) {
		char *v = pw + 9, *end = v + strcspn(v, "& ");
		if (end - v >= 3) {
			memcpy(v, "***", 3);
			memmove(v + 3, end, strlen(end) + 1);
		}
	}
	return s;
}

/* ---- errors ------------------------------------------------------------------------- */

static void chomp(char *m)
{
	size_t n = strlen(m);
	while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
		m[--n] = '\0';
}

/* Records a failed query: the server's message, and whether the connection
 * is gone (class transient: the caller may retry) or the transaction lost
 * a deadlock (retried by pg_tx). Clears res. */
static int pg_fail(struct pg_conn *c, PGresult *res, struct sl_err *err, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char msg[512];
	snprintf(msg, sizeof msg, "%s", res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
									  : PQerrorMessage(c->pc));
	chomp(msg);
	bool lost = PQstatus(c->pc) == CONNECTION_BAD || (state && (strncmp(state, "08", 2) == 0 ||
								  strncmp(state, "57P", 3) == 0));
	bool retry = state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
	if (lost)
		c->lost = true;
	if (retry)
		c->retry = true;
	PQclear(res);
	return sl_err_set(err, SL_ESTORE, lost || retry ? SL_CLASS_TRANSIENT : SL_CLASS_NONE, "postgres: %s: %s%s",
			  what, lost ? "connection lost: " : "", msg);
}

/* ---- parameters (all passed as text) -------------------------------------------------- */

struct pp {
	int n;
	const char *v[PG_PARAMS_MAX];
	char num[PG_PARAMS_MAX][24];
	char *own[PG_PARAMS_MAX];
	int nown;
};

static void pp_text(struct pp *p, const char *s)
{
	SL_ASSERT(p->n < PG_PARAMS_MAX);
	p->v[p->n++] = s;
}

static void pp_i64(struct pp *p, int64_t v)
{
	SL_ASSERT(p->n < PG_PARAMS_MAX);
	snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

/* JSON as compact text, NULL as SQL NULL. */
static void pp_json(struct pp *p, const json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (s)
		p->own[p->nown++] = s;
	pp_text(p, s);
}

static void pp_free(struct pp *p)
{
	for (int i = 0; i < p->nown; i++)
		free(p->own[i]);
	p->nown = 0;
	p->n = 0; /* ready for the next statement */
}

/* ---- queries ------------------------------------------------------------------------- */

static void st_name(enum pg_st id, char name[16])
{
	snprintf(name, 16, "s%d", (int)id);
}

/* Prepares statement id on c unless it already is. */
static int prepare(struct pg_conn *c, enum pg_st id, struct sl_err *err)
{
	if (c->prepared[id])
		return 0;
	char name[16];
	st_name(id, name);
	PGresult *r = PQprepare(c->pc, name, pg_sql[id], 0, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return pg_fail(c, r, err, "prepare");
	PQclear(r);
	c->prepared[id] = true;
	return 0;
}

/* Runs a prepared statement (prepared on this connection at first use).
 * Returns the result (PQclear it), or NULL with err set. */
static PGresult *q(struct pg_conn *c, enum pg_st id, struct pp *p, struct sl_err *err)
{
	struct pp none = {0};
	if (!p)
		p = &none;
	char name[16];
	st_name(id, name);
	if (prepare(c, id, err)) {
		pp_free(p);
		return NULL;
	}
	PGresult *r = PQexecPrepared(c->pc, name, p->n, p->v, NULL, NULL, 0);
	pp_free(p);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char what[40];
		snprintf(what, sizeof what, "statement %d", (int)id);
		pg_fail(c, r, err, what);
		return NULL;
	}
	return r;
}

/* A statement without rows; *changed gets the rows it changed. */
static int q_run(struct pg_conn *c, enum pg_st id, struct pp *p, int64_t *changed, struct sl_err *err)
{
	PGresult *r = q(c, id, p, err);
	if (!r)
		return SL_ESTORE;
	if (changed)
		*changed = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

/* A simple statement (BEGIN, COMMIT, SAVEPOINT, ...). */
static int x(struct pg_conn *c, const char *sql, struct sl_err *err)
{
	PGresult *r = PQexec(c->pc, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		return pg_fail(c, r, err, sql);
	PQclear(r);
	return 0;
}

static const char *r_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int64_t r_i64(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static char *r_strdup(const PGresult *r, int row, int col)
{
	return sl_strdup(r_text(r, row, col));
}

static json_t *r_json(const PGresult *r, int row, int col)
{
	const char *t = r_text(r, row, col);
	if (!t)
		return json_null();
	json_error_t je;
	json_t *j = json_loadb(t, (size_t)PQgetlength(r, row, col), JSON_DECODE_ANY, &je);
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

static json_t *r_jstr(const PGresult *r, int row, int col)
{
	return jstr(r_text(r, row, col));
}

static json_t *jtime(int64_t ms)
{
	return ms > 0 ? json_integer(ms) : json_null();
}

/* ---- connections ----------------------------------------------------------------------- */

static void quiet_notice(void *arg, const char *message)
{
	(void)arg, (void)message; /* "relation already exists, skipping" and the like */
}

/* Opens a session connection; NULL with err set (the message names the
 * safe URL, never the password). */
static PGconn *pg_connect(struct pg_store *s, struct sl_err *err)
{
	PGconn *pc = PQconnectdb(s->url);
	if (!pc || PQstatus(pc) != CONNECTION_OK) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", pc ? PQerrorMessage(pc) : "out of memory");
		chomp(msg);
		sl_err_set(err, SL_ESTORE, SL_CLASS_TRANSIENT, "postgres: cannot connect to %s: %s", s->safe_url, msg);
		PQfinish(pc);
		return NULL;
	}
	PQsetNoticeProcessor(pc, quiet_notice, NULL);
	return pc;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Makes a broken connection usable again, with backoff; its statements
 * must be prepared again. 0, or SL_ESTORE (transient) when the server is
 * still away. */
static int conn_revive(struct pg_store *s, struct pg_conn *c, struct sl_err *err)
{
	int64_t delay = 50;
	for (int i = 0; i < PG_RESET_TRIES; i++) {
		PQreset(c->pc);
		if (PQstatus(c->pc) == CONNECTION_OK) {
			memset(c->prepared, 0, sizeof c->prepared);
			c->lost = false;
			sl_log(SL_LOG_INFO, "store", "reconnected to PostgreSQL", "url", s->safe_url, NULL);
			return 0;
		}
		sleep_ms(delay);
		delay *= 2;
	}
	char msg[512];
	snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->pc));
	chomp(msg);
	return sl_err_set(err, SL_ESTORE, SL_CLASS_TRANSIENT, "postgres: connection lost (%s): %s", s->safe_url,
			  msg);
}

static struct pg_conn *conn_get(struct pg_store *s, struct sl_err *err)
{
	pthread_mutex_lock(&s->mu);
	while (!s->free && s->open >= PG_POOL_MAX)
		pthread_cond_wait(&s->cv, &s->mu);
	struct pg_conn *c = s->free;
	if (c)
		s->free = c->next;
	else
		s->open++;
	pthread_mutex_unlock(&s->mu);
	if (!c) {
		/* Opened outside the pool's lock: it is a network round trip. */
		c = sl_xcalloc(1, sizeof *c);
		c->pc = pg_connect(s, err);
		if (!c->pc) {
			free(c);
			pthread_mutex_lock(&s->mu);
			s->open--;
			pthread_cond_signal(&s->cv);
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
	}
	if ((c->lost || PQstatus(c->pc) != CONNECTION_OK) && conn_revive(s, c, err)) {
		c->lost = true;
		c->next = NULL;
		pthread_mutex_lock(&s->mu);
		c->next = s->free;
		s->free = c;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	c->retry = false;
	c->notify = false;
	return c;
}

static void conn_put(struct pg_store *s, struct pg_conn *c)
{
	pthread_mutex_lock(&s->mu);
	c->next = s->free;
	s->free = c;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* ---- transactions ------------------------------------------------------------------------ */

typedef int (*pg_body_fn)(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err);

enum pg_mode { PG_WRITE, PG_READ };

/* Runs body in one transaction on a pooled connection: COMMIT when it
 * returns 0, ROLLBACK otherwise. A failure that left nothing behind (the
 * connection broke before COMMIT was sent; a deadlock) is retried on a
 * fresh connection; body must be safe to run again from the start. */
static int pg_tx(struct pg_store *s, enum pg_mode mode, pg_body_fn body, void *arg, struct sl_err *err)
{
	int rc = SL_ESTORE;
	for (int attempt = 0; attempt < PG_TX_TRIES; attempt++) {
		struct pg_conn *c = conn_get(s, err);
		if (!c)
			return SL_ESTORE;
		rc = x(c, mode == PG_WRITE ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
		if (!rc)
			rc = body(s, c, arg, err);
		bool committing = false;
		if (!rc && c->notify)
			rc = q_run(c, PG_NOTIFY, NULL, NULL, err);
		if (!rc) {
			committing = true;
			rc = x(c, "COMMIT", err);
		} else if (!c->lost) {
			x(c, "ROLLBACK", NULL);
		}
		bool again = rc && ((c->lost && !committing) || c->retry);
		conn_put(s, c);
		if (!again)
			return rc;
		sl_log(SL_LOG_INFO, "store", "retrying a transaction", "error", err ? err->msg : "", NULL);
	}
	return rc;
}

/* One statement outside an explicit transaction (a read, or a write that
 * is one statement); retried like pg_tx. Returns the result or NULL. */
static PGresult *pg_one(struct pg_store *s, enum pg_st id, struct pp *p, struct sl_err *err)
{
	for (int attempt = 0; attempt < PG_TX_TRIES; attempt++) {
		struct pg_conn *c = conn_get(s, err);
		if (!c)
			break;
		struct pp copy = *p;
		copy.nown = 0; /* the owned strings are freed once, below */
		for (int i = 0; i < p->n; i++)
			if (p->v[i] == p->num[i])
				copy.v[i] = copy.num[i];
		PGresult *r = q(c, id, &copy, err);
		/* a lost write may have landed: only reads are retried */
		bool again = !r && ((c->lost && strncmp(pg_sql[id], "SELECT", 6) == 0) || c->retry);
		conn_put(s, c);
		if (r || !again) {
			pp_free(p);
			return r;
		}
	}
	pp_free(p);
	return NULL;
}

/* ---- open, migrations, close ------------------------------------------------------------------ */

static int migrate_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	int *have = arg;
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)", (long long)PG_MIGRATE_LOCK);
	int rc = x(c, sql, err);
	if (!rc)
		rc = x(c,
		       "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
		       "name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
		       err);
	if (rc)
		return rc;
	PGresult *r = PQexec(c->pc, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return pg_fail(c, r, err, "reading schema_migrations");
	*have = (int)r_i64(r, 0, 0);
	PQclear(r);
	for (int i = *have; i < PG_SCHEMA_VERSION; i++) {
		const struct pg_migration *m = &pg_migrations[i];
		if (x(c, m->sql, err)) {
			sl_err_prefix(err, "migration %d (%s)", m->version, m->name);
			return SL_ESTORE;
		}
		char ver[16], at[24];
		snprintf(ver, sizeof ver, "%d", m->version);
		snprintf(at, sizeof at, "%lld", (long long)sl_now_ms());
		const char *v[3] = {ver, m->name, at};
		r = PQexecParams(c->pc, "INSERT INTO schema_migrations(version, name, applied_at) VALUES ($1, $2, $3)",
				 3, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			return pg_fail(c, r, err, "recording a migration");
		PQclear(r);
	}
	return 0;
}

static int migrate(struct pg_store *s, struct sl_err *err)
{
	for (int i = 0; i < PG_SCHEMA_VERSION; i++)
		SL_ASSERT(pg_migrations[i].version == i + 1);
	int have = 0;
	int rc = pg_tx(s, PG_WRITE, migrate_body, &have, err);
	if (rc)
		return rc;
	if (have > PG_SCHEMA_VERSION)
		return sl_err_set(err, SL_ESTORE, SL_CLASS_NONE,
				  "postgres: %s: schema version %d is newer than this build knows (%d): upgrade sluice",
				  s->safe_url, have, PG_SCHEMA_VERSION);
	if (have < PG_SCHEMA_VERSION)
		sl_log(SL_LOG_INFO, "store", "schema migrated", "url", s->safe_url, NULL);
	s->version = PG_SCHEMA_VERSION;
	return 0;
}

static void pg_close(struct sl_store *base)
{
	struct pg_store *s = pg(base);
	while (s->free) {
		struct pg_conn *c = s->free;
		s->free = c->next;
		PQfinish(c->pc);
		free(c);
	}
	PQfinish(s->listen);
	PQfinish(s->single);
	for (int i = 0; i < s->nheld; i++)
		free(s->held[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->lmu);
	pthread_mutex_destroy(&s->smu);
	free(s->url);
	free(s->safe_url);
	free(s);
}

/* target is the URL after "postgres://" (store.c strips the scheme). */
static int pg_open(const char *target, struct sl_store **out, struct sl_err *err)
{
	if (!PQisthreadsafe())
		return sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "postgres: libpq built without thread support");
	struct pg_store *s = sl_xcalloc(1, sizeof *s);
	s->base.ops = &sl_store_postgres_ops;
	/* A server that does not answer must not hang a connect (or a
	 * reconnect) for the kernel's TCP timeout; the application name makes
	 * Sluice's sessions easy to find in pg_stat_activity. The URL's own
	 * settings win. */
	struct sl_buf u;
	sl_buf_init(&u, 8192);
	sl_buf_printf(&u, "postgresql://%s", target);
	char sep = strchr(target, '?') ? '&' : '?';
	if (!strstr(target, "connect_timeout=")) {
		sl_buf_printf(&u, "%cconnect_timeout=%d", sep, PG_CONNECT_TIMEOUT_S);
		sep = '&';
	}
	if (!strstr(target, "application_name="))
		sl_buf_printf(&u, "%capplication_name=sluice", sep);
	s->url = sl_buf_detach(&u);
	if (!s->url)
		s->url = sl_strdup("postgresql://"); /* over 8 KiB: refused below */
	s->safe_url = redact_url(s->url);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_mutex_init(&s->lmu, NULL);
	pthread_mutex_init(&s->smu, NULL);
	/* Check the URL's syntax first: libpq's message for a bad one may quote it. */
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(s->url, &perr);
	if (!opts) {
		sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "postgres: malformed URL %s", s->safe_url);
		PQfreemem(perr);
		pg_close(&s->base);
		return SL_EINVAL;
	}
	PQconninfoFree(opts);
	int rc = migrate(s, err);
	if (rc) {
		pg_close(&s->base);
		return rc;
	}
	*out = &s->base;
	return 0;
}

static int pg_schema_version(struct sl_store *s)
{
	return pg(s)->version;
}

/* ---- workflow definitions ------------------------------------------------------------------ */

static int pg_def_put(struct sl_store *base, const char *digest, const char *name, int version, const char *file,
		      const char *source, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, digest);
	pp_text(&p, name);
	pp_i64(&p, version);
	pp_text(&p, file);
	pp_text(&p, source);
	pp_i64(&p, sl_now_ms());
	PGresult *r = pg_one(pg(base), PG_DEF_PUT, &p, err);
	if (!r)
		return SL_ESTORE;
	PQclear(r);
	return 0;
}

static int pg_def_get(struct sl_store *base, const char *digest, char **file, char **source, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, digest);
	PGresult *r = pg_one(pg(base), PG_DEF_GET, &p, err);
	if (!r)
		return SL_ESTORE;
	int rc = 0;
	if (PQntuples(r) == 0) {
		rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no workflow definition %.80s", digest);
	} else {
		*file = r_strdup(r, 0, 0);
		*source = r_strdup(r, 0, 1);
	}
	PQclear(r);
	return rc;
}

/* ---- idempotency ------------------------------------------------------------------------------ */

static int idem_lookup(struct pg_conn *c, const char *scope, const char *key, int64_t now, char id[SL_ID_MAX],
		       struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, scope);
	pp_text(&p, key);
	PGresult *r = q(c, PG_IDEM_GET, &p, err);
	if (!r)
		return SL_ESTORE;
	int ret = SL_ENOTFOUND;
	if (PQntuples(r) > 0) {
		int64_t expires = r_i64(r, 0, 1);
		if (expires == 0 || expires > now) {
			sl_store__id_copy(id, r_text(r, 0, 0));
			ret = 0;
		}
	}
	PQclear(r);
	return ret;
}

static int pg_idem_get(struct sl_store *base, const char *scope, const char *key, char run_id_out[SL_ID_MAX],
		       struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, scope);
	pp_text(&p, key);
	PGresult *r = pg_one(pg(base), PG_IDEM_GET, &p, err);
	if (!r)
		return SL_ESTORE;
	int rc = SL_ENOTFOUND;
	if (PQntuples(r) > 0) {
		int64_t expires = r_i64(r, 0, 1);
		if (expires == 0 || expires > sl_now_ms()) {
			sl_store__id_copy(run_id_out, r_text(r, 0, 0));
			rc = 0;
		}
	}
	PQclear(r);
	if (rc)
		sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no idempotency record %.80s", key);
	return rc;
}

static int purge(struct pg_store *s, enum pg_st id, int64_t t, int64_t *purged, struct sl_err *err)
{
	struct pp p = {0};
	pp_i64(&p, t);
	PGresult *r = pg_one(s, id, &p, err);
	if (!r)
		return SL_ESTORE;
	*purged = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

static int pg_idem_purge(struct sl_store *base, int64_t now_ms, int64_t *purged, struct sl_err *err)
{
	return purge(pg(base), PG_IDEM_PURGE, now_ms, purged, err);
}

/* ---- trigger state ---------------------------------------------------------------------------- */

static int pg_trigger_state_get(struct sl_store *base, const char *name, json_t **out, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, name);
	PGresult *r = pg_one(pg(base), PG_TRIG_GET, &p, err);
	if (!r)
		return SL_ESTORE;
	int rc;
	if (PQntuples(r) == 0)
		rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no trigger state %.80s", name);
	else if (!(*out = json_loads(r_text(r, 0, 0), 0, NULL)))
		rc = sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "store: trigger state %.80s is not JSON", name);
	else
		rc = 0;
	PQclear(r);
	return rc;
}

static int pg_trigger_state_put(struct sl_store *base, const char *name, const json_t *state, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, name);
	pp_json(&p, state);
	pp_i64(&p, sl_now_ms());
	PGresult *r = pg_one(pg(base), PG_TRIG_PUT, &p, err);
	if (!r)
		return SL_ESTORE;
	PQclear(r);
	return 0;
}

/* ---- the audit log: appending inside the caller's transaction ------------------------------------ */

/* One sealed entry as a row for AUDIT_PUT; NULL on OOM. */
static json_t *audit_row(const json_t *entry, const char *run_id, int64_t seq, const char *prev, int64_t now,
			 char hash[SL_AUDIT_HASH_LEN + 1])
{
	char *text = sl_store__audit_seal(entry, seq - 1, prev, now, run_id, hash);
	if (!text)
		return NULL;
	struct sl_audit_cols col;
	sl_store__audit_cols(entry, run_id, now, &col);
	json_t *row = json_pack("{s:I, s:I, s:s, s:s, s:s?, s:s, s:s, s:s}", "seq", (json_int_t)seq, "at",
				(json_int_t)col.at, "tenant", col.tenant, "action", col.action, "run_id", col.run_id,
				"entry", text, "prev_hash", prev, "hash", hash);
	free(text);
	return row;
}

static int audit_insert(struct pg_conn *c, const json_t *entries, const char *run_id, PGresult *head, int64_t now,
			char hash_out[SL_AUDIT_HASH_LEN + 1], struct sl_err *err);

/* Appends entries (an array, in order; run_id, when not NULL, is set into
 * each) inside the caller's transaction. sluice_audit_head() takes the
 * log's advisory lock and then reads the head (one round trip); the entries
 * are sealed here after it (store.c: the same text and hash as on SQLite)
 * and inserted in one statement. The lock is held until the transaction
 * ends, so the next appender, in any process, reads the head only once
 * this transaction has committed or rolled back: one chain, no gaps. Called
 * last in a transaction where it can be, to hold the lock briefly. */
static int audit_put(struct pg_conn *c, const json_t *entries, const char *run_id, int64_t now,
		     char hash_out[SL_AUDIT_HASH_LEN + 1], struct sl_err *err)
{
	if (json_array_size(entries) == 0)
		return 0;
	PGresult *r = q(c, PG_AUDIT_HEAD, NULL, err);
	if (!r)
		return SL_ESTORE;
	return audit_insert(c, entries, run_id, r, now, hash_out, err);
}

/* The second half of audit_put, given sluice_audit_head()'s result (taken
 * by the caller under this transaction, e.g. as the last statement of a
 * pipeline; cleared here). */
static int audit_insert(struct pg_conn *c, const json_t *entries, const char *run_id, PGresult *r, int64_t now,
			char hash_out[SL_AUDIT_HASH_LEN + 1], struct sl_err *err)
{
	int64_t seq = r_i64(r, 0, 0);
	char prev[SL_AUDIT_HASH_LEN + 1] = SL_AUDIT_GENESIS;
	if (r_text(r, 0, 1))
		snprintf(prev, sizeof prev, "%s", r_text(r, 0, 1));
	PQclear(r);
	json_t *rows = json_array();
	size_t i;
	const json_t *e;
	json_array_foreach(entries, i, e) {
		char hash[SL_AUDIT_HASH_LEN + 1];
		json_t *row = audit_row(e, run_id, ++seq, prev, now, hash);
		if (!row || json_array_append_new(rows, row)) {
			json_decref(rows);
			return sl_err_set(err, SL_ENOMEM, SL_CLASS_NONE, "store: audit entry: out of memory");
		}
		memcpy(prev, hash, sizeof prev);
	}
	struct pp p = {0};
	pp_json(&p, rows);
	json_decref(rows);
	int rc = q_run(c, PG_AUDIT_PUT, &p, NULL, err);
	if (!rc && hash_out)
		memcpy(hash_out, prev, sizeof prev);
	return rc;
}

/* A batch's entries (owned, may be NULL: none), with the head when the
 * batch's pipeline brought it (owned, may be NULL: read it now). */
static int audit_batch(struct pg_conn *c, json_t *all, PGresult *head, int64_t now, struct sl_err *err)
{
	if (!all) {
		PQclear(head);
		return 0;
	}
	int rc = head ? audit_insert(c, all, NULL, head, now, NULL, err) : audit_put(c, all, NULL, now, NULL, err);
	json_decref(all);
	return rc;
}

/* One entry (borrowed, may be NULL: nothing to append). */
static int audit_one(struct pg_conn *c, const json_t *entry, const char *run_id, int64_t now, struct sl_err *err)
{
	if (!entry)
		return 0;
	json_t *one = json_array();
	json_array_append((json_t *)one, (json_t *)entry);
	int rc = audit_put(c, one, run_id, now, NULL, err);
	json_decref(one);
	return rc;
}

/* ---- creating runs ------------------------------------------------------------------------------ */

static int task_put(struct pg_conn *c, const char *run_id, int64_t due, int64_t fence, const char *tenant,
		    int64_t priority, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, run_id);
	pp_i64(&p, due);
	pp_i64(&p, fence);
	pp_text(&p, tenant);
	pp_i64(&p, priority);
	c->notify = true;
	return q_run(c, PG_TASK_PUT, &p, NULL, err);
}

static int run_insert(struct pg_conn *c, const struct sl_run_new *r, const char *id, int64_t now,
		      struct sl_err *err)
{
	char corr[SL_ID_MAX];
	const char *correlation = r->correlation_id;
	if (!correlation) {
		sl_id_new("corr_", corr);
		correlation = corr;
	}
	struct pp p = {0};
	pp_text(&p, id);
	pp_text(&p, r->workflow);
	pp_i64(&p, r->version);
	pp_text(&p, r->digest ? r->digest : "");
	pp_json(&p, r->input);
	pp_text(&p, correlation);
	pp_text(&p, r->parent_run_id);
	pp_text(&p, r->root_run_id ? r->root_run_id : id);
	pp_text(&p, r->trigger);
	pp_text(&p, r->tenant ? r->tenant : "default");
	pp_i64(&p, r->priority);
	pp_i64(&p, now);
	return q_run(c, PG_RUN_INSERT, &p, NULL, err);
}

/* Takes (scope, key) for id: 0 when taken, 1 when a live record of
 * another run holds it, or a negative code. */
static int idem_take(struct pg_conn *c, const struct sl_run_new *r, const char *id, int64_t now, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, r->idem_scope ? r->idem_scope : "");
	pp_text(&p, r->idem_key);
	pp_text(&p, id);
	pp_i64(&p, now);
	pp_i64(&p, r->idem_ttl_ms > 0 ? now + r->idem_ttl_ms : 0);
	PGresult *res = q(c, PG_IDEM_TAKE, &p, err);
	if (!res)
		return SL_ESTORE;
	int taken = PQntuples(res) > 0;
	PQclear(res);
	return taken ? 0 : 1;
}

/* Creates a run, its first task and its idempotency record inside the
 * caller's transaction (run_create, and spawns in a commit). The record is
 * taken first: when another transaction (another process) holds the same
 * key, the insert waits for it, and then this one finds its run. */
static int create_tx(struct pg_conn *c, const struct sl_run_new *r, int64_t now, char id[SL_ID_MAX], bool *existed,
		     struct sl_err *err)
{
	*existed = false;
	const char *scope = r->idem_scope ? r->idem_scope : "";
	if (r->idem_key) {
		int rc = idem_lookup(c, scope, r->idem_key, now, id, err);
		if (rc == 0) {
			*existed = true;
			return 0;
		}
		if (rc != SL_ENOTFOUND)
			return rc;
	}
	sl_id_new("run_", id);
	if (r->idem_key) {
		int taken = idem_take(c, r, id, now, err);
		if (taken < 0)
			return taken;
		if (taken == 1) {
			int rc = idem_lookup(c, scope, r->idem_key, now, id, err);
			if (rc == 0)
				*existed = true;
			else if (rc == SL_ENOTFOUND)
				rc = sl_err_set(err, SL_ESTORE, SL_CLASS_TRANSIENT,
						"store: idempotency key %.80s changed hands; try again", r->idem_key);
			return rc;
		}
	}
	int rc = run_insert(c, r, id, now, err);
	if (!rc)
		rc = task_put(c, id, r->due_at > 0 ? r->due_at : now, 0, r->tenant ? r->tenant : "default", r->priority,
			      err);
	return rc;
}

/* A savepoint's end: released when rc is 0, else rolled back to. Returns a
 * transaction-level failure (the connection broke), else 0. */
static int savepoint_end(struct pg_conn *c, int rc, struct sl_err *err)
{
	if (c->lost || c->retry)
		return SL_ESTORE;
	if (rc && x(c, "ROLLBACK TO SAVEPOINT one", err))
		return SL_ESTORE;
	return x(c, "RELEASE SAVEPOINT one", err);
}

struct create_arg {
	struct sl_store_create *items;
	size_t n;
};

static int create_fast(struct pg_conn *c, struct create_arg *a, int64_t now, struct sl_err *err);
static int create_audit(struct pg_conn *c, const struct create_arg *a, int64_t now, PGresult *head,
			struct sl_err *err);

static int create_many_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	struct create_arg *a = arg;
	int64_t now = sl_now_ms();
	int fast = create_fast(c, a, now, err);
	if (fast <= 0)
		return fast;
	if (err)
		sl_err_clear(err);
	for (size_t i = 0; i < a->n; i++) {
		struct sl_store_create *it = &a->items[i];
		sl_err_clear(&it->err);
		it->existed = false;
		it->run_id[0] = '\0';
		if (x(c, "SAVEPOINT one", err))
			return SL_ESTORE;
		it->rc = create_tx(c, it->r, now, it->run_id, &it->existed, &it->err);
		if (it->rc && (c->lost || c->retry)) {
			*err = it->err;
			return it->rc;
		}
		if (savepoint_end(c, it->rc, err))
			return SL_ESTORE;
	}
	return create_audit(c, a, now, NULL, err);
}

static int pg_run_create_many(struct sl_store *base, struct sl_store_create *items, size_t n)
{
	struct sl_err txerr;
	sl_err_clear(&txerr);
	struct create_arg a = {items, n};
	int rc = pg_tx(pg(base), PG_WRITE, create_many_body, &a, &txerr);
	if (rc) {
		for (size_t i = 0; i < n; i++) {
			items[i].rc = rc;
			items[i].err = txerr;
			items[i].existed = false;
			items[i].run_id[0] = '\0';
		}
	}
	return rc;
}

/* ---- claiming --------------------------------------------------------------------------------- */

struct claim_arg {
	const char *owner;
	int64_t lease_ms;
	size_t max;
	struct sl_task *out;
	size_t n;
};

/* The shares as three PostgreSQL array literals ({"a","b"}, {2,1}, {8,0}),
 * handed to sluice_claim with every claim (each process's sluice.yaml). */
static void pp_shares(struct pp *p, const struct sl_fair *f)
{
	struct sl_buf names, weights, limits;
	sl_buf_init(&names, SL_BUF_MAX_LINE);
	sl_buf_init(&weights, SL_BUF_MAX_LINE);
	sl_buf_init(&limits, SL_BUF_MAX_LINE);
	sl_buf_addc(&names, '{');
	sl_buf_addc(&weights, '{');
	sl_buf_addc(&limits, '{');
	for (size_t i = 0; i < f->n; i++) {
		const char *sep = i ? "," : "";
		sl_buf_printf(&names, "%s\"", sep);
		for (const char *c = f->t[i].tenant; *c; c++) {
			if (*c == '"' || *c == '\\')
				sl_buf_addc(&names, '\\');
			sl_buf_addc(&names, *c);
		}
		sl_buf_addc(&names, '"');
		sl_buf_printf(&weights, "%s%.17g", sep, f->t[i].weight);
		sl_buf_printf(&limits, "%s%d", sep, f->t[i].max_concurrency);
	}
	struct sl_buf *all[] = {&names, &weights, &limits};
	for (size_t i = 0; i < 3; i++) {
		sl_buf_addc(all[i], '}');
		p->own[p->nown++] = sl_buf_detach(all[i]);
		pp_text(p, p->own[p->nown - 1]);
	}
}

static int claim_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	struct claim_arg *a = arg;
	int64_t now = sl_now_ms();
	struct pp p = {0};
	pp_i64(&p, now);
	pp_i64(&p, (int64_t)a->max);
	pp_text(&p, a->owner);
	pp_i64(&p, now + a->lease_ms);
	pp_shares(&p, &s->base.fair);
	char lag[24];
	snprintf(lag, sizeof lag, "%.17g", SL_FAIR_LAG);
	pp_text(&p, lag);
	PGresult *r = q(c, PG_CLAIM, &p, err);
	if (!r)
		return SL_ESTORE;
	a->n = 0;
	for (int i = 0; i < PQntuples(r) && a->n < a->max; i++) {
		struct sl_task *t = &a->out[a->n++];
		sl_store__id_copy(t->run_id, r_text(r, i, 0));
		t->fence = r_i64(r, i, 1);
		t->lease_until = now + a->lease_ms;
	}
	PQclear(r);
	return 0;
}

static int pg_claim(struct sl_store *base, const char *owner, int64_t lease_ms, size_t max, struct sl_task *out,
		    size_t *n, struct sl_err *err)
{
	struct claim_arg a = {owner, lease_ms, max, out, 0};
	/* One statement: autocommit is its transaction. */
	int rc = pg_tx(pg(base), PG_WRITE, claim_body, &a, err);
	*n = rc ? 0 : a.n;
	return rc;
}

static int task_extend(struct pg_conn *c, const char *run_id, int64_t fence, int64_t until, int64_t *changed,
		       struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, run_id);
	pp_i64(&p, fence);
	pp_i64(&p, until);
	return q_run(c, PG_TASK_EXTEND, &p, changed, err);
}

struct renew_arg {
	struct sl_task *tasks;
	size_t n;
	int64_t until;
	bool *lost;
};

static int renew_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	struct renew_arg *a = arg;
	for (size_t i = 0; i < a->n; i++) {
		int64_t changed = 0;
		int rc = task_extend(c, a->tasks[i].run_id, a->tasks[i].fence, a->until, &changed, err);
		if (rc)
			return rc;
		a->lost[i] = changed == 0;
	}
	return 0;
}

static int pg_renew(struct sl_store *base, struct sl_task *tasks, size_t n, int64_t lease_ms, bool *lost,
		    struct sl_err *err)
{
	struct renew_arg a = {tasks, n, sl_now_ms() + lease_ms, lost};
	int rc = pg_tx(pg(base), PG_WRITE, renew_body, &a, err);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (!lost[i])
			tasks[i].lease_until = a.until;
	return rc;
}

struct release_arg {
	const struct sl_task *tasks;
	size_t n;
};

static int release_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	struct release_arg *a = arg;
	int64_t now = sl_now_ms();
	for (size_t i = 0; i < a->n; i++) {
		struct pp p = {0};
		pp_text(&p, a->tasks[i].run_id);
		pp_i64(&p, a->tasks[i].fence);
		pp_i64(&p, now);
		int64_t changed = 0;
		int rc = q_run(c, PG_TASK_RELEASE, &p, &changed, err);
		if (rc)
			return rc;
		if (changed)
			c->notify = true;
	}
	return 0;
}

static int pg_release(struct sl_store *base, const struct sl_task *tasks, size_t n, struct sl_err *err)
{
	struct release_arg a = {tasks, n};
	return pg_tx(pg(base), PG_WRITE, release_body, &a, err);
}

static int64_t pg_next_due(struct sl_store *base)
{
	struct pp p = {0};
	struct sl_err e;
	PGresult *r = pg_one(pg(base), PG_NEXT_DUE, &p, &e);
	if (!r)
		return sl_now_ms();
	int64_t due = PQntuples(r) == 0 || PQgetisnull(r, 0, 0) ? INT64_MAX : r_i64(r, 0, 0);
	PQclear(r);
	return due;
}

/* ---- loading a run ------------------------------------------------------------------------------ */

static void run_from_row(const PGresult *res, struct sl_run *r)
{
	sl_store__id_copy(r->id, r_text(res, 0, RC_ID));
	r->workflow = r_strdup(res, 0, RC_WORKFLOW);
	r->version = (int)r_i64(res, 0, RC_VERSION);
	r->digest = r_strdup(res, 0, RC_DIGEST);
	int status = sl_run_status_parse(r_text(res, 0, RC_STATUS));
	r->status = status < 0 ? SL_RUN_QUEUED : (enum sl_run_status)status;
	r->phase = sl_store__phase_parse(r_text(res, 0, RC_PHASE)) == SL_PHASE_COMPENSATE ? SL_PHASE_COMPENSATE
											  : SL_PHASE_FORWARD;
	r->cursor = (int)r_i64(res, 0, RC_CURSOR);
	r->attempt = (int)r_i64(res, 0, RC_ATTEMPT);
	r->wake_at = r_i64(res, 0, RC_WAKE_AT);
	r->input = r_json(res, 0, RC_INPUT);
	r->output = r_json(res, 0, RC_OUTPUT);
	r->error = r_json(res, 0, RC_ERROR);
	r->correlation_id = r_strdup(res, 0, RC_CORRELATION);
	r->parent_run_id = r_strdup(res, 0, RC_PARENT);
	r->root_run_id = r_strdup(res, 0, RC_ROOT);
	r->trigger = r_strdup(res, 0, RC_TRIGGER);
	r->tenant = r_strdup(res, 0, RC_TENANT);
	r->priority = (int)r_i64(res, 0, RC_PRIORITY);
	r->created_at = r_i64(res, 0, RC_CREATED);
	r->updated_at = r_i64(res, 0, RC_UPDATED);
	r->finished_at = r_i64(res, 0, RC_FINISHED);
}

/* The one-run query id bound to run_id: the result with its row, or NULL
 * with err set (SL_ENOTFOUND in *rc when there is no such run). */
static PGresult *run_row(struct pg_conn *c, enum pg_st id, const char *run_id, int *rc, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, run_id);
	PGresult *r = q(c, id, &p, err);
	if (!r) {
		*rc = SL_ESTORE;
		return NULL;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		*rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no run %s", run_id);
		return NULL;
	}
	*rc = 0;
	return r;
}

static bool step_in_context(int status)
{
	return status == SL_STEP_ST_COMPLETED || status == SL_STEP_ST_SKIPPED || status == SL_STEP_ST_FAILED ||
	       status == SL_STEP_ST_COMPENSATED;
}

static json_t *approval_row(const PGresult *r, int row)
{
	const char *v[APR__COUNT];
	for (int i = 0; i < APR__COUNT; i++)
		v[i] = r_text(r, row, i);
	return sl_store__approval_doc(v);
}

/* The documents (*out: an owned array) of a one-parameter approval query. */
static int approval_rows(struct pg_conn *c, enum pg_st id, const char *arg, json_t **out, struct sl_err *err)
{
	*out = json_array();
	struct pp p = {0};
	pp_text(&p, arg);
	PGresult *r = q(c, id, &p, err);
	if (!r)
		return SL_ESTORE;
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(*out, approval_row(r, i));
	PQclear(r);
	return 0;
}

struct load_arg {
	const char *run_id;
	struct sl_run *out;
};

static int load_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	struct load_arg *a = arg;
	sl_run_free(a->out); /* a retry starts over */
	int rc;
	PGresult *r = run_row(c, PG_RUN_LOAD, a->run_id, &rc, err);
	if (!r)
		return rc;
	struct sl_run *out = a->out;
	run_from_row(r, out);
	PQclear(r);
	out->context = json_object();
	out->step_status = json_object();
	json_object_set(out->context, "input", out->input);
	struct pp p = {0};
	pp_text(&p, a->run_id);
	r = q(c, PG_STEPS_LOAD, &p, err);
	if (!r)
		return SL_ESTORE;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *id = r_text(r, i, 0), *status = r_text(r, i, 1);
		if (!id || !status)
			continue;
		json_object_set_new(out->step_status, id, json_string(status));
		if (step_in_context(sl_store__step_status_parse(status)))
			json_object_set_new(out->context, id, r_json(r, i, 2));
	}
	PQclear(r);
	json_t *docs = NULL;
	rc = approval_rows(c, PG_APR_LOAD, a->run_id, &docs, err);
	size_t k;
	json_t *d;
	json_array_foreach(docs, k, d)
		sl_store__approval_ctx(out->context, d);
	json_decref(docs);
	return rc;
}

static int pg_run_load(struct sl_store *base, const char *run_id, struct sl_run *out, struct sl_err *err)
{
	struct load_arg a = {run_id, out};
	int rc = pg_tx(pg(base), PG_READ, load_body, &a, err);
	if (rc)
		sl_run_free(out);
	return rc;
}

/* ---- committing ------------------------------------------------------------------------------ */

static int task_advance(struct pg_conn *c, const struct sl_commit *m, int64_t now, struct sl_err *err)
{
	int64_t changed = 0;
	int rc;
	if (m->next == SL_TASK_CONTINUE) {
		rc = task_extend(c, m->run_id, m->fence, now + m->lease_ms, &changed, err);
	} else {
		struct pp p = {0};
		pp_text(&p, m->run_id);
		pp_i64(&p, m->fence);
		if (m->next == SL_TASK_RESCHEDULE) {
			pp_i64(&p, m->due_at > 0 ? m->due_at : now);
			c->notify = true;
		}
		rc = q_run(c, m->next == SL_TASK_DONE ? PG_TASK_DONE : PG_TASK_RESCHEDULE, &p, &changed, err);
	}
	if (rc)
		return rc;
	return changed ? 0 : SL_EFENCED;
}

/* The parameters of each commit statement, shared by the one-by-one path
 * (commit_one) and the pipelined one (pipe_commit). */
static void params_step(struct pp *p, const char *run_id, const struct sl_step_rec *st)
{
	pp_text(p, run_id);
	pp_text(p, st->step_id);
	pp_i64(p, st->index);
	pp_text(p, sl_step_status_name(st->status));
	pp_json(p, st->output);
	pp_json(p, st->error);
	pp_i64(p, st->attempts);
	pp_i64(p, st->started_at);
	pp_i64(p, st->finished_at);
}

static void params_attempt(struct pp *p, const char *run_id, const struct sl_attempt_rec *a)
{
	pp_text(p, run_id);
	pp_text(p, a->step_id);
	pp_i64(p, a->attempt);
	pp_i64(p, a->started_at);
	pp_i64(p, a->duration_ms);
	pp_text(p, a->outcome);
	pp_text(p, sl_class_name(a->error_class));
	pp_text(p, a->error);
}

static void params_run_update(struct pp *p, const struct sl_commit *m, int64_t now)
{
	pp_text(p, m->run_id);
	pp_text(p, sl_run_status_name(m->status));
	pp_text(p, sl_store__phase_name(m->phase));
	pp_i64(p, m->cursor);
	pp_i64(p, m->attempt_no);
	pp_i64(p, m->wake_at);
	pp_json(p, m->output);
	pp_json(p, m->error);
	pp_i64(p, now);
	pp_i64(p, sl_run_status_terminal(m->status) ? now : 0);
	pp_i64(p, m->fence);
}

/* id: a buffer of SL_ID_MAX that must outlive the statement */
static void params_dlq(struct pp *p, char *id, const char *run_id, const struct sl_dlq_new *d, int64_t now)
{
	sl_id_new("dlq_", id);
	pp_text(p, id);
	pp_text(p, run_id);
	pp_text(p, d->step_id);
	pp_text(p, sl_class_name(d->error_class));
	pp_text(p, d->error);
	pp_json(p, d->evidence);
	pp_i64(p, now);
}

static void params_ai_call(struct pp *p, const struct sl_commit *m, const json_t *rec, int64_t now)
{
	pp_text(p, m->run_id);
	pp_text(p, m->ai_step_id ? m->ai_step_id : "");
	pp_json(p, rec);
	pp_i64(p, now);
}

static int step_put(struct pg_conn *c, const char *run_id, const struct sl_step_rec *st, struct sl_err *err)
{
	struct pp p = {0};
	params_step(&p, run_id, st);
	return q_run(c, PG_STEP_PUT, &p, NULL, err);
}

static int attempt_put(struct pg_conn *c, const char *run_id, const struct sl_attempt_rec *a, struct sl_err *err)
{
	struct pp p = {0};
	params_attempt(&p, run_id, a);
	return q_run(c, PG_ATTEMPT_PUT, &p, NULL, err);
}

static int run_update(struct pg_conn *c, const struct sl_commit *m, int64_t now, struct sl_err *err)
{
	struct pp p = {0};
	params_run_update(&p, m, now);
	int64_t changed = 0;
	int rc = q_run(c, PG_RUN_UPDATE, &p, &changed, err);
	if (rc == 0 && changed == 0)
		rc = sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "store: run %s has a task but no run row", m->run_id);
	return rc;
}

static int dlq_put(struct pg_conn *c, const char *run_id, const struct sl_dlq_new *d, int64_t now,
		   struct sl_err *err)
{
	char id[SL_ID_MAX];
	struct pp p = {0};
	params_dlq(&p, id, run_id, d, now);
	return q_run(c, PG_DLQ_PUT, &p, NULL, err);
}

static int ai_calls_put(struct pg_conn *c, const struct sl_commit *m, int64_t now, struct sl_err *err)
{
	size_t i;
	const json_t *rec;
	json_array_foreach(m->ai_calls, i, rec)
	{
		struct pp p = {0};
		params_ai_call(&p, m, rec, now);
		int rc = q_run(c, PG_AI_CALL_PUT, &p, NULL, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int approval_put(struct pg_conn *c, const char *run_id, const struct sl_approval_new *a, int64_t now,
			struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, a->id);
	pp_text(&p, run_id);
	pp_text(&p, a->step_id);
	pp_text(&p, a->kind);
	pp_json(&p, a->reviewers);
	pp_json(&p, a->escalate_to);
	pp_i64(&p, a->due_at);
	pp_i64(&p, a->timeout_ms);
	pp_text(&p, a->on_timeout);
	pp_json(&p, a->input);
	pp_json(&p, a->evidence);
	pp_json(&p, a->proposed);
	pp_text(&p, a->reason);
	pp_i64(&p, now);
	int64_t changed = 0;
	int rc = q_run(c, PG_APR_PUT, &p, &changed, err);
	if (!rc && !changed)
		rc = sl_err_set(err, SL_ESTORE, SL_CLASS_NONE, "store: approval %s: no run %s", a->id, run_id);
	return rc;
}

/* Lands only on a pending approval: a person who decided first wins. */
static int approval_set(struct pg_conn *c, const struct sl_approval_set *a, int64_t now, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, a->id);
	pp_text(&p, a->status);
	pp_json(&p, a->decision);
	pp_json(&p, a->reviewers);
	pp_i64(&p, a->due_at);
	pp_i64(&p, now);
	int64_t changed = 0;
	int rc = q_run(c, PG_APR_SET, &p, &changed, err);
	if (!rc && !changed)
		rc = sl_err_set(err, SL_EFENCED, SL_CLASS_NONE, "store: approval %s is no longer pending", a->id);
	return rc;
}

static int commit_one(struct pg_conn *c, const struct sl_commit *m, int64_t now, struct sl_err *err)
{
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
		rc = ai_calls_put(c, m, now, err);
	if (!rc && m->approval)
		rc = approval_put(c, m->run_id, m->approval, now, err);
	if (!rc && m->approval_set)
		rc = approval_set(c, m->approval_set, now, err);
	if (!rc && m->approval_consumed) {
		struct pp p = {0};
		pp_text(&p, m->approval_consumed);
		pp_i64(&p, now);
		rc = q_run(c, PG_APR_CONSUME, &p, NULL, err);
	}
	for (size_t i = 0; !rc && i < m->nspawn; i++) {
		char id[SL_ID_MAX];
		bool existed;
		rc = create_tx(c, &m->spawn[i], now, id, &existed, err);
		if (!rc && !existed) /* rare (emits): in the commit's savepoint */
			rc = audit_one(c, m->spawn[i].audit, id, now, err);
	}
	return rc;
}

struct commit_arg {
	const struct sl_commit *commits;
	size_t n;
	int *results;
};

/* ---- the pipelined fast path of a commit batch ----
 * Usually every commit of a batch lands. Then the batch is sent as one
 * pipeline (libpq pipeline mode: every statement of every commit, one
 * network round trip) under a savepoint, and each result is checked: the
 * task statement must have changed its row (else the commit is fenced),
 * the run's UPDATE too, nothing may fail. If anything did, the batch is
 * rolled back to the savepoint and goes through the slow path (a savepoint
 * per commit, statement by statement), which sorts out who lands. */
#define PG_FAST_MAX 64 /* commits: keeps a pipeline's results small */

static const enum pg_st fast_stmts[] = {
	PG_TASK_EXTEND, PG_TASK_DONE, PG_TASK_RESCHEDULE, PG_STEP_PUT, PG_ATTEMPT_PUT,
	PG_RUN_UPDATE, PG_DLQ_PUT, PG_AI_CALL_PUT, PG_NOTIFY, PG_AUDIT_HEAD,
};

struct pipe {
	struct pg_conn *c;
	bool *must_change; /* per statement sent: 0 rows changed is a failure */
	size_t n, cap;
	bool failed;
	size_t keep;    /* 1-based statement whose rows the caller wants (0: none) */
	PGresult *kept; /* its result when everything went as expected (PQclear it) */
};

static void pipe_send(struct pipe *pl, enum pg_st id, struct pp *p, bool must_change)
{
	char name[16];
	st_name(id, name);
	if (!pl->failed && !PQsendQueryPrepared(pl->c->pc, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0))
		pl->failed = true;
	if (p)
		pp_free(p);
	if (pl->n == pl->cap) {
		pl->cap = pl->cap ? pl->cap * 2 : 64;
		pl->must_change = sl_xrealloc(pl->must_change, pl->cap * sizeof *pl->must_change);
	}
	pl->must_change[pl->n++] = must_change;
}

/* Sends sluice_audit_head() as the pipeline's last statement when the batch
 * has entries to append: the log's lock and head come with the batch's
 * results, after its row locks, and save a round trip. */
static void pipe_audit_head(struct pipe *pl)
{
	pipe_send(pl, PG_AUDIT_HEAD, NULL, false);
	pl->keep = pl->n;
}

static void pipe_commit(struct pipe *pl, const struct sl_commit *m, int64_t now)
{
	struct pp p = {0};
	pp_text(&p, m->run_id);
	pp_i64(&p, m->fence);
	if (m->next == SL_TASK_CONTINUE) {
		pp_i64(&p, now + m->lease_ms);
		pipe_send(pl, PG_TASK_EXTEND, &p, true);
	} else if (m->next == SL_TASK_RESCHEDULE) {
		pp_i64(&p, m->due_at > 0 ? m->due_at : now);
		pipe_send(pl, PG_TASK_RESCHEDULE, &p, true);
	} else {
		pipe_send(pl, PG_TASK_DONE, &p, true);
	}
	if (m->step) {
		params_step(&p, m->run_id, m->step);
		pipe_send(pl, PG_STEP_PUT, &p, false);
	}
	if (m->attempt) {
		params_attempt(&p, m->run_id, m->attempt);
		pipe_send(pl, PG_ATTEMPT_PUT, &p, false);
	}
	params_run_update(&p, m, now);
	pipe_send(pl, PG_RUN_UPDATE, &p, true);
	if (m->dlq) {
		char id[SL_ID_MAX];
		params_dlq(&p, id, m->run_id, m->dlq, now);
		pipe_send(pl, PG_DLQ_PUT, &p, true);
	}
	size_t i;
	const json_t *rec;
	json_array_foreach(m->ai_calls, i, rec)
	{
		params_ai_call(&p, m, rec, now);
		pipe_send(pl, PG_AI_CALL_PUT, &p, true);
	}
}

/* Starts a pipeline under SAVEPOINT fast (statements prepared first). */
static int pipe_begin(struct pipe *pl, struct pg_conn *c, const enum pg_st *ids, size_t nids, struct sl_err *err)
{
	*pl = (struct pipe){.c = c};
	for (size_t i = 0; i < nids; i++)
		if (prepare(c, ids[i], err))
			return SL_ESTORE;
	if (!PQenterPipelineMode(c->pc))
		return 1;
	if (!PQsendQueryParams(c->pc, "SAVEPOINT fast", 0, NULL, NULL, NULL, NULL, 0))
		pl->failed = true;
	return 0;
}

/* Sends the sync and reads every result. 0: all as expected (the
 * transaction goes on); 1: something was not, rolled back to the savepoint
 * (take the slow path); negative: the connection or the transaction is
 * lost (pg_tx decides whether to retry). */
static int pipe_finish(struct pipe *pl, struct sl_err *err)
{
	struct pg_conn *c = pl->c;
	bool ok = !pl->failed && PQpipelineSync(c->pc);
	/* The results: the savepoint's, each statement's, then the sync. */
	for (size_t k = 0; ok && k <= pl->n; k++) {
		PGresult *r = PQgetResult(c->pc);
		if (!r) {
			ok = false;
			break;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_FATAL_ERROR) {
			pg_fail(c, r, err, "pipeline");
			pl->failed = true;
		} else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			if (k > 0 && pl->must_change[k - 1] && strtoll(PQcmdTuples(r), NULL, 10) == 0)
				pl->failed = true;
			if (k > 0 && k == pl->keep && !pl->kept)
				pl->kept = r;
			else
				PQclear(r);
		} else {
			pl->failed = true; /* PGRES_PIPELINE_ABORTED: after an error */
			PQclear(r);
		}
		while ((r = PQgetResult(c->pc)) != NULL) /* each command's results end with NULL */
			PQclear(r);
	}
	if (ok) {
		PGresult *r = PQgetResult(c->pc);
		ok = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
		PQclear(r);
	}
	free(pl->must_change);
	pl->must_change = NULL;
	if (!ok || pl->failed) {
		PQclear(pl->kept);
		pl->kept = NULL;
	}
	if (!ok || !PQexitPipelineMode(c->pc) || PQstatus(c->pc) != CONNECTION_OK || c->lost) {
		PQclear(pl->kept);
		pl->kept = NULL;
		c->lost = true;
		return sl_err_set(err, SL_ESTORE, SL_CLASS_TRANSIENT, "postgres: connection lost: %s",
				  PQerrorMessage(c->pc));
	}
	if (pl->failed) {
		if (c->retry)
			return SL_ESTORE;
		return x(c, "ROLLBACK TO SAVEPOINT fast", err) ? SL_ESTORE : 1;
	}
	return 0;
}

/* The entries of the commits of a batch that landed (results[i] == 0), in
 * commit order, appended once at the end of the batch, on the fast and the
 * slow path alike: the log's lock is taken after every row lock of the
 * batch and held only for the append and the COMMIT, so it never waits
 * inside a cycle with a cancel or a decision holding a run's row. A
 * failure fails the transaction (pg_tx rolls it back, every result gets
 * the error): no commit lands without its entries. */
static int commit_audit(struct pg_conn *c, const struct commit_arg *a, int64_t now, PGresult *head,
			struct sl_err *err)
{
	json_t *all = NULL;
	for (size_t i = 0; i < a->n; i++)
		if (a->commits[i].audit && a->results[i] == 0) {
			if (!all)
				all = json_array();
			json_array_extend(all, (json_t *)a->commits[i].audit);
		}
	return audit_batch(c, all, head, now, err);
}

/* 0: every commit landed; 1: take the slow path; negative: lost. */
static int commit_fast(struct pg_conn *c, struct commit_arg *a, int64_t now, struct sl_err *err)
{
	if (a->n > PG_FAST_MAX)
		return 1;
	bool reschedule = false, audited = false;
	for (size_t i = 0; i < a->n; i++) {
		const struct sl_commit *m = &a->commits[i];
		if (m->nspawn || m->approval || m->approval_set || m->approval_consumed ||
		    sl_store__commit_check(m, NULL))
			return 1; /* spawns look up idempotency records, approvals are rare: statement by statement */
		reschedule |= m->next == SL_TASK_RESCHEDULE;
		audited |= json_array_size(m->audit) > 0;
	}
	struct pipe pl;
	int rc = pipe_begin(&pl, c, fast_stmts, SL_ARRAY_LEN(fast_stmts), err);
	if (rc)
		return rc;
	for (size_t i = 0; i < a->n; i++)
		pipe_commit(&pl, &a->commits[i], now);
	if (reschedule)
		pipe_send(&pl, PG_NOTIFY, NULL, false);
	if (audited)
		pipe_audit_head(&pl);
	rc = pipe_finish(&pl, err);
	if (rc)
		return rc;
	if (reschedule)
		c->notify = false; /* sent with the batch */
	for (size_t i = 0; i < a->n; i++)
		a->results[i] = 0;
	return commit_audit(c, a, now, pl.kept, err);
}

/* Run creations, pipelined the same way: each run's idempotency record is
 * taken first (IDEM_TAKE changes no row when a live record holds the key:
 * a repeat, in the database or earlier in the batch), then the run and its
 * task. Anything unexpected: the slow path, which finds the first run. */
static const enum pg_st create_stmts[] = {PG_IDEM_TAKE, PG_RUN_INSERT, PG_TASK_PUT, PG_NOTIFY, PG_AUDIT_HEAD};

/* The run.start entries of the runs a batch created (not those an
 * idempotency key found), once at its end on both paths (see
 * commit_audit); each gets its run's id. */
static int create_audit(struct pg_conn *c, const struct create_arg *a, int64_t now, PGresult *head,
			struct sl_err *err)
{
	json_t *all = NULL;
	for (size_t i = 0; i < a->n; i++) {
		const json_t *e = a->items[i].r->audit;
		if (!e || a->items[i].rc || a->items[i].existed)
			continue;
		if (!all)
			all = json_array();
		json_t *copy = json_copy((json_t *)e); /* shallow: only run_id is set */
		json_object_set_new(copy, "run_id", json_string(a->items[i].run_id));
		json_array_append_new(all, copy);
	}
	return audit_batch(c, all, head, now, err);
}

static int create_fast(struct pg_conn *c, struct create_arg *a, int64_t now, struct sl_err *err)
{
	if (a->n > PG_FAST_MAX)
		return 1;
	struct pipe pl;
	int rc = pipe_begin(&pl, c, create_stmts, SL_ARRAY_LEN(create_stmts), err);
	if (rc)
		return rc;
	for (size_t i = 0; i < a->n; i++) {
		const struct sl_run_new *r = a->items[i].r;
		char *id = a->items[i].run_id;
		sl_id_new("run_", id);
		struct pp p = {0};
		if (r->idem_key) {
			pp_text(&p, r->idem_scope ? r->idem_scope : "");
			pp_text(&p, r->idem_key);
			pp_text(&p, id);
			pp_i64(&p, now);
			pp_i64(&p, r->idem_ttl_ms > 0 ? now + r->idem_ttl_ms : 0);
			pipe_send(&pl, PG_IDEM_TAKE, &p, true);
		}
		char corr[SL_ID_MAX];
		if (!r->correlation_id)
			sl_id_new("corr_", corr);
		pp_text(&p, id);
		pp_text(&p, r->workflow);
		pp_i64(&p, r->version);
		pp_text(&p, r->digest ? r->digest : "");
		pp_json(&p, r->input);
		pp_text(&p, r->correlation_id ? r->correlation_id : corr);
		pp_text(&p, r->parent_run_id);
		pp_text(&p, r->root_run_id ? r->root_run_id : id);
		pp_text(&p, r->trigger);
		pp_text(&p, r->tenant ? r->tenant : "default");
		pp_i64(&p, r->priority);
		pp_i64(&p, now);
		pipe_send(&pl, PG_RUN_INSERT, &p, true);
		pp_text(&p, id);
		pp_i64(&p, r->due_at > 0 ? r->due_at : now);
		pp_i64(&p, 0);
		pp_text(&p, r->tenant ? r->tenant : "default");
		pp_i64(&p, r->priority);
		pipe_send(&pl, PG_TASK_PUT, &p, true);
	}
	pipe_send(&pl, PG_NOTIFY, NULL, false);
	bool audited = false;
	for (size_t i = 0; i < a->n; i++)
		audited |= a->items[i].r->audit != NULL;
	if (audited)
		pipe_audit_head(&pl);
	rc = pipe_finish(&pl, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < a->n; i++) {
		a->items[i].rc = 0;
		a->items[i].existed = false;
		sl_err_clear(&a->items[i].err);
	}
	return create_audit(c, a, now, pl.kept, err);
}

static int commit_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	struct commit_arg *a = arg;
	int64_t now = sl_now_ms();
	int fast = commit_fast(c, a, now, err);
	if (fast <= 0)
		return fast;
	if (err)
		sl_err_clear(err); /* the fast path's failure is sorted out below */
	bool reported = false;
	for (size_t i = 0; i < a->n; i++) {
		struct sl_err one;
		sl_err_clear(&one);
		int r = sl_store__commit_check(&a->commits[i], &one);
		if (!r) {
			if (x(c, "SAVEPOINT one", err))
				return SL_ESTORE;
			bool notify = c->notify;
			r = commit_one(c, &a->commits[i], now, &one);
			if (r && (c->lost || c->retry)) {
				if (err)
					*err = one;
				return r;
			}
			if (r)
				c->notify = notify; /* what was rolled back made nothing due */
			if (savepoint_end(c, r, err))
				return SL_ESTORE;
		}
		a->results[i] = r;
		if (r && r != SL_EFENCED && !reported && err) {
			*err = one;
			reported = true;
		}
	}
	struct sl_err aerr;
	sl_err_clear(&aerr);
	int rc = commit_audit(c, a, now, NULL, &aerr);
	if (rc && err)
		*err = aerr;
	return rc;
}

static int pg_commit(struct sl_store *base, const struct sl_commit *commits, size_t n, int *results,
		     struct sl_err *err)
{
	struct commit_arg a = {commits, n, results};
	int rc = pg_tx(pg(base), PG_WRITE, commit_body, &a, err);
	if (rc)
		for (size_t i = 0; i < n; i++)
			results[i] = rc;
	return rc;
}

/* ---- reading for the CLI and the API ---------------------------------------------------------- */

static json_t *run_doc(const PGresult *r)
{
	json_t *d = json_object();
	json_object_set_new(d, "id", r_jstr(r, 0, RC_ID));
	json_object_set_new(d, "workflow", r_jstr(r, 0, RC_WORKFLOW));
	json_object_set_new(d, "version", json_integer(r_i64(r, 0, RC_VERSION)));
	json_object_set_new(d, "digest", r_jstr(r, 0, RC_DIGEST));
	json_object_set_new(d, "status", r_jstr(r, 0, RC_STATUS));
	json_object_set_new(d, "phase", r_jstr(r, 0, RC_PHASE));
	json_object_set_new(d, "cursor", json_integer(r_i64(r, 0, RC_CURSOR)));
	json_object_set_new(d, "attempt", json_integer(r_i64(r, 0, RC_ATTEMPT)));
	json_object_set_new(d, "wake_at", jtime(r_i64(r, 0, RC_WAKE_AT)));
	json_object_set_new(d, "input", r_json(r, 0, RC_INPUT));
	json_object_set_new(d, "output", r_json(r, 0, RC_OUTPUT));
	json_object_set_new(d, "error", r_json(r, 0, RC_ERROR));
	json_object_set_new(d, "correlation_id", r_jstr(r, 0, RC_CORRELATION));
	json_object_set_new(d, "parent_run_id", r_jstr(r, 0, RC_PARENT));
	json_object_set_new(d, "root_run_id", r_jstr(r, 0, RC_ROOT));
	json_object_set_new(d, "trigger", r_jstr(r, 0, RC_TRIGGER));
	json_object_set_new(d, "tenant", r_jstr(r, 0, RC_TENANT));
	json_object_set_new(d, "priority", json_integer(r_i64(r, 0, RC_PRIORITY)));
	json_object_set_new(d, "created_at", jtime(r_i64(r, 0, RC_CREATED)));
	json_object_set_new(d, "updated_at", jtime(r_i64(r, 0, RC_UPDATED)));
	json_object_set_new(d, "finished_at", jtime(r_i64(r, 0, RC_FINISHED)));
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

static void doc_steps(const PGresult *r, json_t *steps, json_t *byid)
{
	for (int i = 0; i < PQntuples(r); i++) {
		const char *id = r_text(r, i, 0);
		if (!id)
			continue;
		json_t *d = step_doc(id, r_text(r, i, 1));
		int64_t started = r_i64(r, i, 5), finished = r_i64(r, i, 6);
		json_object_set_new(d, "index", json_integer(r_i64(r, i, 7)));
		json_object_set_new(d, "output", r_json(r, i, 2));
		json_object_set_new(d, "error", r_json(r, i, 3));
		json_object_set_new(d, "attempts", json_integer(r_i64(r, i, 4)));
		json_object_set_new(d, "started_at", jtime(started));
		json_object_set_new(d, "finished_at", jtime(finished));
		json_object_set_new(d, "duration_ms",
				    started > 0 && finished >= started ? json_integer(finished - started) : json_null());
		json_object_set(byid, id, d);
		json_array_append_new(steps, d);
	}
}

static void attempt_attach(json_t *steps, json_t *byid, const PGresult *r, int i)
{
	const char *sid = r_text(r, i, 0);
	if (!sid)
		return;
	const char *hash = strchr(sid, '#');
	char *name = sl_strndup(sid, hash ? (size_t)(hash - sid) : strlen(sid));
	json_t *step = json_object_get(byid, name);
	if (!step) {
		step = step_doc(name, "pending");
		json_object_set(byid, name, step);
		json_array_append_new(steps, step);
	}
	free(name);
	json_t *a = json_object();
	json_object_set_new(a, "attempt", json_integer(r_i64(r, i, 1)));
	if (hash)
		json_object_set_new(a, "kind", jstr(hash + 1));
	json_object_set_new(a, "started_at", jtime(r_i64(r, i, 2)));
	json_object_set_new(a, "duration_ms", json_integer(r_i64(r, i, 3)));
	json_object_set_new(a, "outcome", r_jstr(r, i, 4));
	json_object_set_new(a, "error_class", r_jstr(r, i, 5));
	json_object_set_new(a, "error", r_jstr(r, i, 6));
	json_array_append_new(json_object_get(step, "attempt_log"), a);
}

/* One ai call, with the keys and types SQLite's json_object gives. */
static json_t *ai_call_doc(const PGresult *r, int i)
{
	json_t *d = json_object();
	json_object_set_new(d, "step", r_jstr(r, i, 0));
	json_object_set_new(d, "route", r_jstr(r, i, 1));
	json_object_set_new(d, "model", r_jstr(r, i, 2));
	json_object_set_new(d, "provider", r_jstr(r, i, 3));
	json_object_set_new(d, "prompt_hash", r_jstr(r, i, 4));
	json_object_set_new(d, "input", r_jstr(r, i, 5));
	json_object_set_new(d, "output", r_jstr(r, i, 6));
	json_object_set_new(d, "confidence",
			    PQgetisnull(r, i, 7) ? json_null() : json_real(strtod(PQgetvalue(r, i, 7), NULL)));
	json_object_set_new(d, "tokens_in", json_integer(r_i64(r, i, 8)));
	json_object_set_new(d, "tokens_out", json_integer(r_i64(r, i, 9)));
	json_object_set_new(d, "cost_usd", json_real(PQgetisnull(r, i, 10) ? 0 : strtod(PQgetvalue(r, i, 10), NULL)));
	json_object_set_new(d, "latency_ms", json_integer(r_i64(r, i, 11)));
	json_object_set_new(d, "cache_hit", json_boolean(r_i64(r, i, 12) != 0));
	json_object_set_new(d, "outcome", r_jstr(r, i, 13));
	json_object_set_new(d, "error_class", r_jstr(r, i, 14));
	json_object_set_new(d, "error", r_jstr(r, i, 15));
	json_object_set_new(d, "at", json_integer(r_i64(r, i, 16)));
	return d;
}

struct get_arg {
	const char *run_id;
	json_t *doc;
};

static int get_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	struct get_arg *a = arg;
	json_decref(a->doc);
	a->doc = NULL;
	int rc;
	PGresult *r = run_row(c, PG_RUN_LOAD, a->run_id, &rc, err);
	if (!r)
		return rc;
	json_t *doc = run_doc(r);
	PQclear(r);
	a->doc = doc;
	json_t *steps = json_array(), *byid = json_object(), *calls = json_array();
	json_object_set_new(doc, "steps", steps);
	json_object_set_new(doc, "ai_calls", calls);
	struct pp p = {0};
	pp_text(&p, a->run_id);
	r = q(c, PG_STEPS_LOAD, &p, err);
	if (r) {
		doc_steps(r, steps, byid);
		PQclear(r);
		pp_text(&p, a->run_id);
		r = q(c, PG_ATTEMPTS_LOAD, &p, err);
	}
	if (r) {
		for (int i = 0; i < PQntuples(r); i++)
			attempt_attach(steps, byid, r, i);
		PQclear(r);
		p = (struct pp){0};
		pp_text(&p, a->run_id);
		r = q(c, PG_AI_CALLS_LOAD, &p, err);
	}
	if (r) {
		for (int i = 0; i < PQntuples(r); i++)
			json_array_append_new(calls, ai_call_doc(r, i));
		PQclear(r);
	}
	json_decref(byid);
	if (!r)
		return SL_ESTORE;
	json_t *approvals = NULL;
	int arc = approval_rows(c, PG_APR_OF_RUN, a->run_id, &approvals, err);
	json_object_set_new(doc, "approvals", approvals);
	return arc;
}

static int pg_run_get(struct sl_store *base, const char *run_id, json_t **out, struct sl_err *err)
{
	struct get_arg a = {run_id, NULL};
	int rc = pg_tx(pg(base), PG_READ, get_body, &a, err);
	if (rc) {
		json_decref(a.doc);
		return rc;
	}
	*out = a.doc;
	return 0;
}

static int pg_run_status(struct sl_store *base, const char *run_id)
{
	struct pp p = {0};
	pp_text(&p, run_id);
	struct sl_err e;
	PGresult *r = pg_one(pg(base), PG_RUN_STATUS, &p, &e);
	if (!r)
		return -1;
	int status = PQntuples(r) > 0 ? sl_run_status_parse(r_text(r, 0, 0)) : -1;
	PQclear(r);
	return status;
}

static int pg_ai_spent(struct sl_store *base, const char *scope, const char *name, int64_t since_ms, double *usd,
		       struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, name);
	pp_i64(&p, since_ms);
	PGresult *r = pg_one(pg(base), strcmp(scope, "route") == 0 ? PG_AI_SPENT_ROUTE : PG_AI_SPENT_WORKFLOW, &p, err);
	if (!r)
		return SL_ESTORE;
	*usd = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? strtod(PQgetvalue(r, 0, 0), NULL) : 0;
	PQclear(r);
	return 0;
}

struct record_arg {
	const char *tenant;
	const json_t *calls;
};

static int ai_record_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	(void)s;
	struct record_arg *a = arg;
	int64_t now = sl_now_ms();
	size_t i;
	const json_t *rec;
	json_array_foreach(a->calls, i, rec)
	{
		struct pp p = {0};
		pp_text(&p, NULL);
		pp_text(&p, a->tenant);
		pp_json(&p, rec);
		pp_i64(&p, now);
		int rc = q_run(c, PG_AI_CALL_LOG, &p, NULL, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int pg_ai_record(struct sl_store *base, const char *tenant, const json_t *calls, struct sl_err *err)
{
	struct record_arg a = {tenant, calls};
	return pg_tx(pg(base), PG_WRITE, ai_record_body, &a, err);
}

static int pg_ai_costs_tenant(struct sl_store *base, const char *group_by, int64_t since_ms, const char *tenant,
			      json_t **out, struct sl_err *err)
{
	enum pg_st id = strcmp(group_by, "route") == 0    ? PG_AI_COSTS_ROUTE
			: strcmp(group_by, "model") == 0  ? PG_AI_COSTS_MODEL
			: strcmp(group_by, "tenant") == 0 ? PG_AI_COSTS_TENANT
							  : PG_AI_COSTS_WORKFLOW;
	struct pp p = {0};
	pp_i64(&p, since_ms);
	pp_text(&p, tenant);
	PGresult *r = pg_one(pg(base), id, &p, err);
	if (!r)
		return SL_ESTORE;
	json_t *groups = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(groups, store_cost_group(r_text(r, i, 0), r_i64(r, i, 1), r_i64(r, i, 2),
							       r_i64(r, i, 3), strtod(PQgetvalue(r, i, 4), NULL),
							       r_i64(r, i, 5), r_i64(r, i, 6)));
	PQclear(r);
	*out = groups;
	return 0;
}

static int pg_ai_costs(struct sl_store *base, const char *group_by, int64_t since_ms, json_t **out,
		       struct sl_err *err)
{
	return pg_ai_costs_tenant(base, group_by, since_ms, NULL, out, err);
}

static int pg_run_stats(struct sl_store *base, const char *workflow, int64_t since_ms, int64_t slow_ms,
			struct sl_run_stats *out, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, workflow);
	pp_i64(&p, since_ms);
	pp_i64(&p, slow_ms);
	PGresult *r = pg_one(pg(base), PG_RUN_STATS, &p, err);
	if (!r)
		return SL_ESTORE;
	if (PQntuples(r) == 1) {
		out->runs = r_i64(r, 0, 0);
		out->completed = r_i64(r, 0, 1);
		out->failed = r_i64(r, 0, 2);
		out->review = r_i64(r, 0, 3);
		out->slow = r_i64(r, 0, 4);
		out->cost_usd = strtod(PQgetvalue(r, 0, 5), NULL);
	}
	PQclear(r);
	if (out->completed > 0) {
		struct pp q2 = {0};
		pp_text(&q2, workflow);
		pp_i64(&q2, since_ms);
		pp_i64(&q2, (out->completed * 95 + 99) / 100 - 1);
		PGresult *pr = pg_one(pg(base), PG_RUN_P95, &q2, err);
		if (pr && PQntuples(pr) == 1)
			out->p95_ms = r_i64(pr, 0, 0);
		PQclear(pr);
	}
	return 0;
}

static int pg_step_outputs(struct sl_store *base, const char *workflow, const char *step_id, size_t offset,
			   size_t limit, json_t **out, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, workflow);
	pp_text(&p, step_id);
	pp_i64(&p, (int64_t)limit);
	pp_i64(&p, (int64_t)offset);
	PGresult *r = pg_one(pg(base), PG_STEP_OUTPUTS, &p, err);
	if (!r)
		return SL_ESTORE;
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *v = r_json(r, i, 0);
		if (v)
			json_array_append_new(arr, v);
	}
	PQclear(r);
	*out = arr;
	return 0;
}

/* ---- lists ------------------------------------------------------------------------------------- */

typedef json_t *(*row_doc_fn)(const PGresult *r, int i);

/* A query built from filters (not prepared: its text depends on them),
 * run on a pooled connection; its parameters are text. */
static PGresult *pg_dynamic(struct pg_store *s, const char *sql, struct pp *p, struct sl_err *err)
{
	for (int attempt = 0; attempt < PG_TX_TRIES; attempt++) {
		struct pg_conn *c = conn_get(s, err);
		if (!c)
			return NULL;
		PGresult *r = PQexecParams(c->pc, sql, p->n, NULL, p->v, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			conn_put(s, c);
			return r;
		}
		pg_fail(c, r, err, "list");
		bool again = c->lost || c->retry;
		conn_put(s, c);
		if (!again)
			break;
	}
	return NULL;
}

static int list_page(struct pg_store *s, const char *sql, struct pp *p, size_t limit, row_doc_fn row_fn,
		     const char *key, json_t **out, struct sl_err *err)
{
	PGresult *r = pg_dynamic(s, sql, p, err);
	if (!r)
		return SL_ESTORE;
	json_t *items = json_array();
	char next[SL_ID_MAX] = "";
	for (int i = 0; i < PQntuples(r); i++) {
		if (json_array_size(items) == limit) {
			json_t *last = json_array_get(items, limit - 1);
			sl_store__id_copy(next, json_string_value(json_object_get(last, "id")));
			break;
		}
		json_array_append_new(items, row_fn(r, i));
	}
	PQclear(r);
	*out = json_object();
	json_object_set_new(*out, key, items);
	json_object_set_new(*out, "next_cursor", next[0] ? json_string(next) : json_null());
	return 0;
}

static json_t *run_summary(const PGresult *r, int i)
{
	json_t *d = json_object();
	json_object_set_new(d, "id", r_jstr(r, i, SC_ID));
	json_object_set_new(d, "workflow", r_jstr(r, i, SC_WORKFLOW));
	json_object_set_new(d, "version", json_integer(r_i64(r, i, SC_VERSION)));
	json_object_set_new(d, "status", r_jstr(r, i, SC_STATUS));
	json_object_set_new(d, "correlation_id", r_jstr(r, i, SC_CORRELATION));
	json_object_set_new(d, "parent_run_id", r_jstr(r, i, SC_PARENT));
	json_object_set_new(d, "root_run_id", r_jstr(r, i, SC_ROOT));
	json_object_set_new(d, "trigger", r_jstr(r, i, SC_TRIGGER));
	json_object_set_new(d, "tenant", r_jstr(r, i, SC_TENANT));
	json_object_set_new(d, "priority", json_integer(r_i64(r, i, SC_PRIORITY)));
	json_object_set_new(d, "created_at", jtime(r_i64(r, i, SC_CREATED)));
	json_object_set_new(d, "updated_at", jtime(r_i64(r, i, SC_UPDATED)));
	json_object_set_new(d, "finished_at", jtime(r_i64(r, i, SC_FINISHED)));
	json_object_set_new(d, "error", r_json(r, i, SC_ERROR));
	return d;
}

/* " AND col = $k" with the parameter appended. */
static void where_text(struct sl_buf *b, struct pp *p, const char *cond, const char *v)
{
	pp_text(p, v);
	sl_buf_printf(b, cond, p->n);
}

static void where_i64(struct sl_buf *b, struct pp *p, const char *cond, int64_t v)
{
	pp_i64(p, v);
	sl_buf_printf(b, cond, p->n);
}

static int pg_runs_list(struct sl_store *base, const struct sl_run_filter *f, json_t **out, struct sl_err *err)
{
	size_t limit = sl_store__limit(f->limit);
	struct sl_buf b;
	struct pp p = {0};
	sl_buf_init(&b, PG_QUERY_MAX);
	sl_buf_adds(&b, "SELECT " SUM_COLS " FROM runs WHERE true");
	if (f->workflow)
		where_text(&b, &p, " AND workflow = $%d", f->workflow);
	if (f->status >= 0)
		where_text(&b, &p, " AND status = $%d", sl_run_status_name((enum sl_run_status)f->status));
	if (f->root_run_id)
		where_text(&b, &p, " AND root_run_id = $%d", f->root_run_id);
	if (f->cursor)
		where_text(&b, &p, " AND id < $%d", f->cursor);
	if (f->tenant)
		where_text(&b, &p, " AND tenant = $%d", f->tenant);
	where_i64(&b, &p, " ORDER BY id DESC LIMIT $%d", (int64_t)limit + 1);
	int rc = b.err ? sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: list query too long")
		       : list_page(pg(base), sl_buf_str(&b), &p, limit, run_summary, "runs", out, err);
	sl_buf_free(&b);
	return rc;
}

static int pg_tree_pending(struct sl_store *base, const char *root_run_id, int64_t *count, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, root_run_id);
	PGresult *r = pg_one(pg(base), PG_TREE_PENDING, &p, err);
	if (!r)
		return SL_ESTORE;
	*count = r_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

/* {"name": count, ...} from a two-column result, over base (taken). */
static json_t *count_doc(const PGresult *r, json_t *base)
{
	for (int i = 0; i < PQntuples(r); i++)
		if (r_text(r, i, 0))
			json_object_set_new(base, r_text(r, i, 0), json_integer(r_i64(r, i, 1)));
	return base;
}

static int pg_counts(struct sl_store *base, json_t **out, struct sl_err *err)
{
	struct pp p = {0};
	PGresult *r = pg_one(pg(base), PG_COUNTS, &p, err);
	if (!r)
		return SL_ESTORE;
	json_t *o = json_object();
	for (int i = 0; i < SL_RUN__COUNT; i++)
		json_object_set_new(o, sl_run_status_name((enum sl_run_status)i), json_integer(0));
	*out = count_doc(r, o);
	PQclear(r);
	return 0;
}

/* ---- leases of dead processes ------------------------------------------------------------------ */

static int pg_lease_owners(struct sl_store *base, json_t **out, struct sl_err *err)
{
	struct pp p = {0};
	pp_i64(&p, sl_now_ms());
	PGresult *r = pg_one(pg(base), PG_LEASE_OWNERS, &p, err);
	if (!r)
		return SL_ESTORE;
	*out = count_doc(r, json_object());
	PQclear(r);
	return 0;
}

static int pg_release_owner(struct sl_store *base, const char *owner, int64_t *released, struct sl_err *err)
{
	struct pg_store *s = pg(base);
	struct pp p = {0};
	pp_text(&p, owner);
	pp_i64(&p, sl_now_ms());
	PGresult *r = pg_one(s, PG_OWNER_RELEASE, &p, err);
	if (!r)
		return SL_ESTORE;
	*released = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	if (*released > 0) {
		struct pp none = {0};
		PGresult *n = pg_one(s, PG_NOTIFY, &none, NULL);
		PQclear(n);
	}
	return 0;
}

/* ---- cancelling ----------------------------------------------------------------------------- */

static int status_lock(struct pg_conn *c, const char *run_id, int *status, struct sl_err *err)
{
	int rc;
	PGresult *r = run_row(c, PG_RUN_STATUS_LOCK, run_id, &rc, err);
	if (!r)
		return rc;
	*status = sl_run_status_parse(r_text(r, 0, 0));
	PQclear(r);
	return 0;
}

struct cancel_arg {
	const char *run_id;
	const json_t *audit; /* may be NULL */
};

static int cancel_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	(void)s;
	const struct cancel_arg *a = arg;
	const char *run_id = a->run_id;
	int status = -1;
	int rc = status_lock(c, run_id, &status, err);
	if (rc)
		return rc;
	if (status >= 0 && sl_run_status_terminal((enum sl_run_status)status))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: run %s is already %s", run_id,
				  sl_run_status_name((enum sl_run_status)status));
	struct pp p = {0};
	pp_text(&p, run_id);
	PGresult *r = q(c, PG_TASK_DELETE, &p, err);
	if (!r)
		return SL_ESTORE;
	int64_t fence = PQntuples(r) > 0 ? r_i64(r, 0, 0) : 0;
	PQclear(r);
	int64_t now = sl_now_ms();
	pp_text(&p, run_id);
	pp_i64(&p, now);
	pp_i64(&p, fence);
	rc = q_run(c, PG_RUN_CANCEL, &p, NULL, err);
	if (rc)
		return rc;
	/* nobody is asked any more: its pending approvals expire */
	pp_text(&p, run_id);
	pp_i64(&p, now);
	rc = q_run(c, PG_APR_CANCEL, &p, NULL, err);
	return rc ? rc : audit_one(c, a->audit, run_id, now, err);
}

static int pg_run_cancel_audited(struct sl_store *base, const char *run_id, const json_t *audit, struct sl_err *err)
{
	struct cancel_arg a = {run_id, audit};
	return pg_tx(pg(base), PG_WRITE, cancel_body, &a, err);
}

static int pg_run_cancel(struct sl_store *base, const char *run_id, struct sl_err *err)
{
	return pg_run_cancel_audited(base, run_id, NULL, err);
}

/* ---- dead letters ---------------------------------------------------------------------------- */

static json_t *dlq_doc(const PGresult *r, int i)
{
	json_t *d = json_object();
	json_object_set_new(d, "id", r_jstr(r, i, DC_ID));
	json_object_set_new(d, "run_id", r_jstr(r, i, DC_RUN));
	json_object_set_new(d, "workflow", r_jstr(r, i, DC_WORKFLOW));
	json_object_set_new(d, "version", json_integer(r_i64(r, i, DC_VERSION)));
	json_object_set_new(d, "step_id", r_jstr(r, i, DC_STEP));
	json_object_set_new(d, "error_class", r_jstr(r, i, DC_CLASS));
	json_object_set_new(d, "error", r_jstr(r, i, DC_ERROR));
	json_object_set_new(d, "evidence", r_json(r, i, DC_EVIDENCE));
	json_object_set_new(d, "created_at", jtime(r_i64(r, i, DC_CREATED)));
	json_object_set_new(d, "replayed_at", jtime(r_i64(r, i, DC_REPLAYED)));
	return d;
}

static void dlq_where(struct sl_buf *b, struct pp *p, const struct sl_dlq_filter *f, bool with_cursor)
{
	if (f->workflow)
		where_text(b, p, " AND workflow = $%d", f->workflow);
	if (f->step_id)
		where_text(b, p, " AND step_id = $%d", f->step_id);
	if (f->error_class >= 0)
		where_text(b, p, " AND error_class = $%d", sl_class_name((enum sl_class)f->error_class));
	if (f->since > 0)
		where_i64(b, p, " AND created_at >= $%d", f->since);
	if (f->until > 0)
		where_i64(b, p, " AND created_at < $%d", f->until);
	if (!f->include_replayed)
		sl_buf_adds(b, " AND replayed_at = 0");
	if (f->cursor && with_cursor)
		where_text(b, p, " AND id < $%d", f->cursor);
	if (f->id)
		where_text(b, p, " AND id = $%d", f->id);
	if (f->tenant)
		where_text(b, p, " AND run_id IN (SELECT id FROM runs WHERE tenant = $%d)", f->tenant);
}

static int pg_dlq_list(struct sl_store *base, const struct sl_dlq_filter *f, json_t **out, struct sl_err *err)
{
	size_t limit = sl_store__limit(f->limit);
	struct sl_buf b;
	struct pp p = {0};
	sl_buf_init(&b, PG_QUERY_MAX);
	sl_buf_adds(&b, "SELECT " DLQ_COLS " FROM dlq WHERE true");
	dlq_where(&b, &p, f, true);
	where_i64(&b, &p, " ORDER BY id DESC LIMIT $%d", (int64_t)limit + 1);
	int rc = b.err ? sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: list query too long")
		       : list_page(pg(base), sl_buf_str(&b), &p, limit, dlq_doc, "entries", out, err);
	sl_buf_free(&b);
	return rc;
}

static int pg_dlq_count(struct sl_store *base, const struct sl_dlq_filter *f, int64_t *count, struct sl_err *err)
{
	struct sl_buf b;
	struct pp p = {0};
	sl_buf_init(&b, PG_QUERY_MAX);
	sl_buf_adds(&b, "SELECT count(*) FROM dlq WHERE true");
	dlq_where(&b, &p, f, false);
	if (b.err) {
		sl_buf_free(&b);
		return sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: count query too long");
	}
	PGresult *r = pg_dynamic(pg(base), sl_buf_str(&b), &p, err);
	sl_buf_free(&b);
	if (!r)
		return SL_ESTORE;
	*count = r_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

struct replay_arg {
	const char *dlq_id;
	const json_t *input;
	const char *new_digest;
	int new_version;
	const json_t *audit; /* may be NULL */
	char run_id[SL_ID_MAX];
};

static int replay_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	struct replay_arg *a = arg;
	struct pp p = {0};
	pp_text(&p, a->dlq_id);
	PGresult *r = q(c, PG_DLQ_GET, &p, err);
	if (!r)
		return SL_ESTORE;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no dead letter %s", a->dlq_id);
	}
	sl_store__id_copy(a->run_id, r_text(r, 0, 0));
	int64_t replayed = r_i64(r, 0, 1);
	PQclear(r);
	if (replayed > 0)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: dead letter %s was already replayed",
				  a->dlq_id);
	int status = -1;
	int rc = status_lock(c, a->run_id, &status, err);
	if (rc)
		return rc;
	if (status != SL_RUN_DEAD)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: run %s is %s, not dead", a->run_id,
				  sl_run_status_name((enum sl_run_status)status));
	if (a->new_digest) {
		pp_text(&p, a->new_digest);
		r = q(c, PG_DEF_EXISTS, &p, err);
		if (!r)
			return SL_ESTORE;
		int found = PQntuples(r);
		PQclear(r);
		if (!found)
			return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE,
					  "store: no workflow definition %.80s (def_put it first)", a->new_digest);
	}
	int64_t now = sl_now_ms();
	pp_text(&p, a->run_id);
	pp_i64(&p, now);
	pp_json(&p, a->input);
	pp_text(&p, a->new_digest);
	pp_i64(&p, a->new_version);
	r = q(c, PG_RUN_REPLAY, &p, err);
	if (!r)
		return SL_ESTORE;
	int64_t fence = r_i64(r, 0, 0), priority = r_i64(r, 0, 2);
	char *tenant = r_strdup(r, 0, 1);
	PQclear(r);
	pp_text(&p, a->run_id);
	rc = q_run(c, PG_STEP_DEL_DEAD, &p, NULL, err);
	if (!rc)
		rc = task_put(c, a->run_id, now, fence, tenant ? tenant : "default", priority, err);
	free(tenant);
	if (!rc) {
		pp_text(&p, a->dlq_id);
		pp_i64(&p, now);
		rc = q_run(c, PG_DLQ_MARK, &p, NULL, err);
	}
	return rc ? rc : audit_one(c, a->audit, a->run_id, now, err);
}

static int pg_dlq_replay_audited(struct sl_store *base, const char *dlq_id, const json_t *input,
				 const char *new_digest, int new_version, const json_t *audit,
				 char run_id_out[SL_ID_MAX], struct sl_err *err)
{
	struct replay_arg a = {.dlq_id = dlq_id,
			       .input = input,
			       .new_digest = new_digest,
			       .new_version = new_version,
			       .audit = audit};
	int rc = pg_tx(pg(base), PG_WRITE, replay_body, &a, err);
	if (rc == 0)
		sl_store__id_copy(run_id_out, a.run_id);
	return rc;
}

static int pg_dlq_replay(struct sl_store *base, const char *dlq_id, const json_t *input, const char *new_digest,
			 int new_version, char run_id_out[SL_ID_MAX], struct sl_err *err)
{
	return pg_dlq_replay_audited(base, dlq_id, input, new_digest, new_version, NULL, run_id_out, err);
}

static int pg_dlq_purge(struct sl_store *base, int64_t before_ms, int64_t *purged, struct sl_err *err)
{
	return purge(pg(base), PG_DLQ_PURGE, before_ms, purged, err);
}

/* ---- wake-ups (LISTEN/NOTIFY) ---------------------------------------------------------------- */

/* Drains pending notifications; true when there was any. */
static bool drain_notifies(PGconn *pc)
{
	bool any = false;
	PGnotify *n;
	while ((n = PQnotifies(pc)) != NULL) {
		any = true;
		PQfreemem(n);
	}
	return any;
}

/* Waits up to timeout_ms for a NOTIFY on sluice_work. 1 when one came,
 * 0 on timeout, SL_ESTORE when the listening connection cannot be had
 * (after sleeping the timeout, so a caller's loop does not spin). */
static int pg_wait(struct sl_store *base, int64_t timeout_ms)
{
	struct pg_store *s = pg(base);
	int64_t until = sl_mono_ms() + timeout_ms;
	pthread_mutex_lock(&s->lmu);
	if (s->listen && PQstatus(s->listen) != CONNECTION_OK) {
		PQfinish(s->listen);
		s->listen = NULL;
	}
	if (!s->listen) {
		struct sl_err e;
		s->listen = pg_connect(s, &e);
		PGresult *r = s->listen ? PQexec(s->listen, "LISTEN " PG_CHANNEL) : NULL;
		if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
			PQclear(r);
			PQfinish(s->listen);
			s->listen = NULL;
			pthread_mutex_unlock(&s->lmu);
			sleep_ms(timeout_ms > 0 ? timeout_ms : 0);
			return SL_ESTORE;
		}
		PQclear(r);
		/* Work may have been made due while nobody listened. */
		pthread_mutex_unlock(&s->lmu);
		return 1;
	}
	int got = 0;
	for (;;) {
		if (PQconsumeInput(s->listen) == 0) {
			PQfinish(s->listen);
			s->listen = NULL;
			got = 1; /* reconnect next time; wake the caller to look */
			break;
		}
		if (drain_notifies(s->listen)) {
			got = 1;
			break;
		}
		int64_t left = until - sl_mono_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = PQsocket(s->listen), .events = POLLIN};
		int pr = poll(&pfd, 1, (int)SL_MIN(left, (int64_t)1000));
		if (pr < 0 && errno != EINTR)
			break;
	}
	pthread_mutex_unlock(&s->lmu);
	return got;
}

/* ---- singletons (session advisory locks) ---------------------------------------------------- */

/* A stable 64-bit key for a name (FNV-1a), in the "sluice" namespace. */
static int64_t singleton_key(const char *name)
{
	uint64_t h = 1469598103934665603ULL;
	for (const char *p = "sluice:"; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (int64_t)h;
}

static int pg_try_singleton(struct sl_store *base, const char *name, bool *held)
{
	struct pg_store *s = pg(base);
	*held = false;
	pthread_mutex_lock(&s->smu);
	/* Locks die with their session: a broken connection holds nothing. */
	if (s->single) {
		PGresult *r = PQexec(s->single, "SELECT 1");
		bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		PQclear(r);
		if (!ok) {
			PQfinish(s->single);
			s->single = NULL;
		}
	}
	if (!s->single) {
		for (int i = 0; i < s->nheld; i++)
			free(s->held[i]);
		s->nheld = 0;
		struct sl_err e;
		s->single = pg_connect(s, &e);
		if (!s->single) {
			pthread_mutex_unlock(&s->smu);
			return SL_ESTORE;
		}
	}
	for (int i = 0; i < s->nheld; i++)
		if (strcmp(s->held[i], name) == 0) {
			*held = true;
			pthread_mutex_unlock(&s->smu);
			return 0;
		}
	int rc = 0;
	if (s->nheld < PG_SINGLETONS_MAX) {
		char key[24];
		snprintf(key, sizeof key, "%lld", (long long)singleton_key(name));
		const char *v[1] = {key};
		/* Advisory locks are per database: the schema is mixed in, so two
		 * deployments in one database (schemas) do not share singletons. */
		PGresult *r = PQexecParams(s->single,
					   "SELECT pg_try_advisory_lock($1::bigint # "
					   "hashtextextended(coalesce(current_schema(), ''), 0))",
					   1, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			*held = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
			if (*held)
				s->held[s->nheld++] = sl_strdup(name);
		} else {
			rc = SL_ESTORE;
		}
		PQclear(r);
	}
	pthread_mutex_unlock(&s->smu);
	return rc;
}

/* ---- the ops table ---------------------------------------------------------------------------- */

/* ---- API keys and kill switches ------------------------------------------------------------ */

static void key_from_row(const PGresult *r, int i, struct sl_api_key *k)
{
	memset(k, 0, sizeof *k);
	char *dst[] = {k->id, k->hash, k->principal, k->kind, k->role, k->tenant, k->name};
	size_t len[] = {sizeof k->id, sizeof k->hash, sizeof k->principal, sizeof k->kind,
			sizeof k->role, sizeof k->tenant, sizeof k->name};
	for (int c = 0; c < 7; c++) {
		const char *v = r_text(r, i, c);
		snprintf(dst[c], len[c], "%s", v ? v : "");
	}
	k->created_at = r_i64(r, i, 7);
	k->expires_at = r_i64(r, i, 8);
	k->revoked_at = r_i64(r, i, 9);
}

struct key_put_arg {
	const struct sl_api_key *k;
	const json_t *audit; /* may be NULL */
};

static int key_put_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	(void)s;
	const struct key_put_arg *a = arg;
	const struct sl_api_key *k = a->k;
	struct pp p = {0};
	pp_text(&p, k->id);
	pp_text(&p, k->hash);
	pp_text(&p, k->principal);
	pp_text(&p, k->kind);
	pp_text(&p, k->role);
	pp_text(&p, k->tenant);
	pp_text(&p, k->name);
	pp_i64(&p, k->created_at);
	pp_i64(&p, k->expires_at);
	int64_t inserted = 0;
	int rc = q_run(c, PG_KEY_PUT, &p, &inserted, err);
	if (!rc && !inserted)
		rc = sl_err_set(err, SL_EEXISTS, SL_CLASS_NONE, "store: key %s exists", k->id);
	return rc ? rc : audit_one(c, a->audit, NULL, sl_now_ms(), err);
}

static int pg_key_put(struct sl_store *base, const struct sl_api_key *k, const json_t *audit, struct sl_err *err)
{
	struct key_put_arg a = {k, audit};
	return pg_tx(pg(base), PG_WRITE, key_put_body, &a, err);
}

static int pg_key_get(struct sl_store *base, const char *id, struct sl_api_key *out, struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, id);
	PGresult *r = pg_one(pg(base), PG_KEY_GET, &p, err);
	if (!r)
		return SL_ESTORE;
	int rc = 0;
	if (PQntuples(r) > 0)
		key_from_row(r, 0, out);
	else
		rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no key %s", id);
	PQclear(r);
	return rc;
}

static int pg_key_list(struct sl_store *base, json_t **out, struct sl_err *err)
{
	struct pp p = {0};
	PGresult *r = pg_one(pg(base), PG_KEY_LIST, &p, err);
	if (!r)
		return SL_ESTORE;
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		struct sl_api_key k;
		key_from_row(r, i, &k);
		json_array_append_new(arr, sl_store__key_doc(&k));
	}
	PQclear(r);
	*out = json_pack("{s:o}", "keys", arr);
	return 0;
}

struct revoke_arg {
	const char *id;
	int64_t now;
	const json_t *audit; /* may be NULL */
};

static int revoke_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	(void)s;
	struct revoke_arg *a = arg;
	struct pp p = {0};
	pp_text(&p, a->id);
	pp_i64(&p, a->now);
	int64_t changed = 0;
	int rc = q_run(c, PG_KEY_REVOKE, &p, &changed, err);
	if (rc)
		return rc;
	if (changed)
		return audit_one(c, a->audit, NULL, a->now, err);
	pp_text(&p, a->id);
	PGresult *r = q(c, PG_KEY_EXISTS, &p, err);
	if (!r)
		return SL_ESTORE;
	bool exists = PQntuples(r) > 0;
	PQclear(r);
	return exists ? sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: key %s is already revoked", a->id)
		      : sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no key %s", a->id);
}

static int pg_key_revoke(struct sl_store *base, const char *id, int64_t now, const json_t *audit, struct sl_err *err)
{
	struct revoke_arg a = {id, now, audit};
	return pg_tx(pg(base), PG_WRITE, revoke_body, &a, err);
}

struct pause_arg {
	const char *kind, *name, *by;
	bool paused, *changed;
	const json_t *audit; /* may be NULL; appended only when something changed */
};

/* A resume wakes the parked tasks and NOTIFYs every process (pg_tx sends
 * it with the commit when c->notify is set). */
static int pause_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	(void)s;
	struct pause_arg *a = arg;
	int64_t now = sl_now_ms();
	struct pp p = {0};
	pp_text(&p, a->kind);
	pp_text(&p, a->name);
	if (a->paused) {
		pp_text(&p, a->by);
		pp_i64(&p, now);
	}
	int64_t n = 0;
	int rc = q_run(c, a->paused ? PG_PAUSE_PUT : PG_PAUSE_DEL, &p, &n, err);
	*a->changed = n > 0;
	if (rc || !n)
		return rc;
	if (a->paused)
		return audit_one(c, a->audit, NULL, now, err);
	char key[256];
	snprintf(key, sizeof key, "%s:%s", a->kind, a->name);
	pp_text(&p, key);
	pp_i64(&p, now);
	c->notify = true;
	rc = q_run(c, PG_PAUSE_WAKE, &p, NULL, err);
	return rc ? rc : audit_one(c, a->audit, NULL, now, err);
}

static int pg_pause_set(struct sl_store *base, const char *kind, const char *name, bool paused, const char *by,
			const json_t *audit, bool *changed, struct sl_err *err)
{
	struct pause_arg a = {kind, name, by, paused, changed, audit};
	return pg_tx(pg(base), PG_WRITE, pause_body, &a, err);
}

static int pg_pause_list(struct sl_store *base, json_t **out, struct sl_err *err)
{
	struct pp p = {0};
	PGresult *r = pg_one(pg(base), PG_PAUSE_LIST, &p, err);
	if (!r)
		return SL_ESTORE;
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(arr, json_pack("{s:o, s:o, s:o, s:I}", "kind", r_jstr(r, i, 0), "name",
						     r_jstr(r, i, 1), "by", r_jstr(r, i, 2), "at",
						     (json_int_t)r_i64(r, i, 3)));
	PQclear(r);
	*out = json_pack("{s:o}", "pauses", arr);
	return 0;
}

static int pg_task_park(struct sl_store *base, const struct sl_task *t, const char *key, int64_t due_at,
			struct sl_err *err)
{
	struct pp p = {0};
	pp_text(&p, t->run_id);
	pp_i64(&p, t->fence);
	pp_i64(&p, due_at);
	pp_text(&p, key);
	PGresult *r = pg_one(pg(base), PG_TASK_PARK, &p, err);
	if (!r)
		return SL_ESTORE;
	bool parked = strtoll(PQcmdTuples(r), NULL, 10) > 0;
	PQclear(r);
	return parked ? 0 : sl_err_set(err, SL_EFENCED, SL_CLASS_NONE, "store: task of %s moved on", t->run_id);
}

/* ---- approvals ------------------------------------------------------------------------------- */

struct apr_arg {
	const char *id, *status;
	const json_t *decision, *audit;
	json_t *doc;
};

static int apr_get_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	(void)s;
	struct apr_arg *a = arg;
	json_decref(a->doc);
	a->doc = NULL;
	json_t *docs = NULL;
	int rc = approval_rows(c, PG_APR_GET, a->id, &docs, err);
	if (!rc && json_array_size(docs) == 0)
		rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no approval %s", a->id);
	if (!rc)
		a->doc = json_incref(json_array_get(docs, 0));
	json_decref(docs);
	return rc;
}

static int pg_approval_get(struct sl_store *base, const char *id, json_t **out, struct sl_err *err)
{
	struct apr_arg a = {.id = id};
	int rc = pg_tx(pg(base), PG_READ, apr_get_body, &a, err);
	if (rc) {
		json_decref(a.doc);
		return rc;
	}
	*out = a.doc;
	return 0;
}

static int pg_approvals_list(struct sl_store *base, const struct sl_approval_filter *f, json_t **out,
			     struct sl_err *err)
{
	size_t limit = sl_store__limit(f->limit);
	struct sl_buf b;
	struct pp p = {0};
	sl_buf_init(&b, PG_QUERY_MAX);
	sl_buf_adds(&b, "SELECT " APR_COLS " FROM approvals WHERE true");
	if (f->status)
		where_text(&b, &p, " AND status = $%d", f->status);
	if (f->workflow)
		where_text(&b, &p, " AND workflow = $%d", f->workflow);
	if (f->run_id)
		where_text(&b, &p, " AND run_id = $%d", f->run_id);
	if (f->tenant)
		where_text(&b, &p, " AND tenant = $%d", f->tenant);
	if (f->since > 0)
		where_i64(&b, &p, " AND decided_at >= $%d", f->since);
	if (f->cursor)
		where_text(&b, &p, " AND id < $%d", f->cursor);
	where_i64(&b, &p, " ORDER BY id DESC LIMIT $%d", (int64_t)limit + 1);
	int rc = b.err ? sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: list query too long")
		       : list_page(pg(base), sl_buf_str(&b), &p, limit, approval_row, "approvals", out, err);
	sl_buf_free(&b);
	return rc;
}

/* The approval row is locked, so a timeout committed by a worker in
 * another process waits for this decision (and is then refused). */
static int apr_decide_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	(void)s;
	struct apr_arg *a = arg;
	json_decref(a->doc);
	a->doc = NULL;
	json_t *docs = NULL;
	int rc = approval_rows(c, PG_APR_GET_LOCK, a->id, &docs, err);
	json_t *doc = json_array_get(docs, 0);
	if (!rc && !doc)
		rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no approval %s", a->id);
	const char *st = json_string_value(json_object_get(doc, "status"));
	if (!rc && (!st || strcmp(st, "pending") != 0))
		rc = sl_err_set(err, SL_EEXISTS, SL_CLASS_NONE, "store: approval %s was already decided (%s)", a->id,
				st ? st : "?");
	char run_id[SL_ID_MAX] = "";
	sl_store__id_copy(run_id, json_string_value(json_object_get(doc, "run_id")));
	json_decref(docs);
	if (rc)
		return rc;
	int64_t now = sl_now_ms();
	struct pp p = {0};
	pp_text(&p, a->id);
	pp_text(&p, a->status);
	pp_json(&p, a->decision);
	pp_i64(&p, now);
	rc = q_run(c, PG_APR_DECIDE, &p, NULL, err);
	if (rc)
		return rc;
	pp_text(&p, run_id);
	pp_i64(&p, now);
	PGresult *r = q(c, PG_RUN_RESUME, &p, err);
	if (!r)
		return SL_ESTORE;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return sl_err_set(err, SL_EEXISTS, SL_CLASS_NONE, "store: run %s no longer waits for this approval",
				  run_id);
	}
	int64_t fence = r_i64(r, 0, 0), priority = r_i64(r, 0, 2);
	char *tenant = r_strdup(r, 0, 1);
	PQclear(r);
	rc = task_put(c, run_id, now, fence, tenant ? tenant : "default", priority, err);
	free(tenant);
	c->notify = true;
	if (!rc)
		rc = audit_one(c, a->audit, run_id, now, err);
	if (rc)
		return rc;
	docs = NULL;
	rc = approval_rows(c, PG_APR_GET, a->id, &docs, err);
	if (!rc)
		a->doc = json_incref(json_array_get(docs, 0));
	json_decref(docs);
	return rc;
}

static int pg_approval_decide(struct sl_store *base, const char *id, const char *status, const json_t *decision,
			      const json_t *audit, json_t **out, struct sl_err *err)
{
	struct apr_arg a = {.id = id, .status = status, .decision = decision, .audit = audit};
	int rc = pg_tx(pg(base), PG_WRITE, apr_decide_body, &a, err);
	if (rc) {
		json_decref(a.doc);
		return rc;
	}
	*out = a.doc;
	return 0;
}

/* ---- the audit log: appending alone, listing, scanning ------------------------------------------ */

struct audit_append_arg {
	const json_t *entries;
	char *hash_out;
};

static int audit_append_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	(void)s;
	struct audit_append_arg *a = arg;
	return audit_put(c, a->entries, NULL, sl_now_ms(), a->hash_out, err);
}

static int pg_audit_append(struct sl_store *base, const json_t *entries, char hash_out[SL_AUDIT_HASH_LEN + 1],
			   struct sl_err *err)
{
	struct audit_append_arg a = {entries, hash_out};
	return pg_tx(pg(base), PG_WRITE, audit_append_body, &a, err);
}

/* One list item: the entry as stored, with its chain links (as sqlite.c). */
static json_t *audit_doc(const PGresult *r, int i)
{
	json_t *d = r_json(r, i, 1);
	if (!json_is_object(d)) {
		json_decref(d);
		d = json_pack("{s:I, s:b}", "seq", (json_int_t)r_i64(r, i, 0), "unreadable", 1);
	}
	json_object_set_new(d, "hash", r_jstr(r, i, 2));
	json_object_set_new(d, "prev_hash", r_jstr(r, i, 3));
	return d;
}

static int pg_audit_list(struct sl_store *base, const struct sl_audit_filter *f, json_t **out, struct sl_err *err)
{
	size_t limit = sl_store__limit(f->limit);
	int64_t cursor = 0;
	if (f->cursor)
		sl_parse_i64(f->cursor, &cursor); /* checked by store.c */
	struct sl_buf b;
	struct pp p = {0};
	sl_buf_init(&b, PG_QUERY_MAX);
	sl_buf_adds(&b, "SELECT seq, entry, hash, prev_hash FROM audit WHERE true");
	if (f->tenant)
		where_text(&b, &p, " AND tenant = $%d", f->tenant);
	if (f->action)
		where_text(&b, &p, " AND action = $%d", f->action);
	if (f->run_id)
		where_text(&b, &p, " AND run_id = $%d", f->run_id);
	if (f->since > 0)
		where_i64(&b, &p, " AND at >= $%d", f->since);
	if (f->until > 0)
		where_i64(&b, &p, " AND at < $%d", f->until);
	if (cursor > 0)
		where_i64(&b, &p, " AND seq < $%d", cursor);
	where_i64(&b, &p, " ORDER BY seq DESC LIMIT $%d", (int64_t)limit + 1);
	PGresult *r = b.err ? NULL : pg_dynamic(pg(base), sl_buf_str(&b), &p, err);
	int rc = b.err ? sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "store: list query too long") : r ? 0 : SL_ESTORE;
	sl_buf_free(&b);
	pp_free(&p);
	if (rc)
		return rc;
	/* the cursor is a seq, not an id: list_page's id cursor does not fit */
	json_t *items = json_array();
	int64_t last = 0;
	bool more = false;
	for (int i = 0; i < PQntuples(r); i++) {
		if (json_array_size(items) == limit) {
			more = true;
			break;
		}
		last = r_i64(r, i, 0);
		json_array_append_new(items, audit_doc(r, i));
	}
	PQclear(r);
	char next[32];
	snprintf(next, sizeof next, "%lld", (long long)last);
	*out = json_object();
	json_object_set_new(*out, "entries", items);
	json_object_set_new(*out, "next_cursor", more ? json_string(next) : json_null());
	return 0;
}

#define PG_AUDIT_PAGE 1000 /* rows per round trip of a scan: bounded memory for any log */

struct audit_scan_arg {
	sl_audit_row_fn fn;
	void *ud;
	int ret;     /* what fn returned to stop, else 0 */
	bool called; /* fn saw rows: a retried transaction would show them twice */
};

/* One REPEATABLE READ transaction (pg_tx PG_READ): every page comes from the
 * same snapshot while appends go on. */
static int audit_scan_body(struct pg_store *s, struct pg_conn *c, void *arg, struct sl_err *err)
{
	(void)s;
	struct audit_scan_arg *a = arg;
	if (a->called)
		return sl_err_set(err, SL_ESTORE, SL_CLASS_TRANSIENT, "postgres: audit scan interrupted; run it again");
	int64_t after = INT64_MIN;
	for (;;) {
		struct pp p = {0};
		pp_i64(&p, after);
		pp_i64(&p, PG_AUDIT_PAGE);
		PGresult *r = q(c, PG_AUDIT_SCAN, &p, err);
		if (!r)
			return SL_ESTORE;
		int n = PQntuples(r);
		for (int i = 0; i < n && !a->ret; i++) {
			const char *text = r_text(r, i, 3);
			struct sl_audit_row row = {
				.seq = r_i64(r, i, 0),
				.prev_hash = r_text(r, i, 1),
				.hash = r_text(r, i, 2),
				.text = text,
				.text_len = text ? (size_t)PQgetlength(r, i, 3) : 0,
				.at = r_i64(r, i, 4),
				.tenant = r_text(r, i, 5),
				.action = r_text(r, i, 6),
				.run_id = r_text(r, i, 7),
			};
			a->called = true;
			after = row.seq;
			a->ret = a->fn(&row, a->ud);
		}
		PQclear(r);
		if (a->ret || n < PG_AUDIT_PAGE)
			return 0;
	}
}

static int pg_audit_scan(struct sl_store *base, sl_audit_row_fn fn, void *ud, struct sl_err *err)
{
	struct audit_scan_arg a = {.fn = fn, .ud = ud};
	int rc = pg_tx(pg(base), PG_READ, audit_scan_body, &a, err);
	return rc ? rc : a.ret;
}

const struct sl_store_ops sl_store_postgres_ops = {
	.name = "postgres",
	.open = pg_open,
	.close = pg_close,
	.schema_version = pg_schema_version,
	.def_put = pg_def_put,
	.def_get = pg_def_get,
	.run_create_many = pg_run_create_many,
	.claim = pg_claim,
	.renew = pg_renew,
	.next_due = pg_next_due,
	.run_load = pg_run_load,
	.commit = pg_commit,
	.run_get = pg_run_get,
	.run_status = pg_run_status,
	.runs_list = pg_runs_list,
	.tree_pending = pg_tree_pending,
	.counts = pg_counts,
	.run_cancel = pg_run_cancel,
	.dlq_list = pg_dlq_list,
	.dlq_count = pg_dlq_count,
	.ai_spent = pg_ai_spent,
	.ai_record = pg_ai_record,
	.ai_costs = pg_ai_costs,
	.step_outputs = pg_step_outputs,
	.run_stats = pg_run_stats,
	.dlq_replay = pg_dlq_replay,
	.dlq_purge = pg_dlq_purge,
	.idem_get = pg_idem_get,
	.idem_purge = pg_idem_purge,
	.trigger_state_get = pg_trigger_state_get,
	.trigger_state_put = pg_trigger_state_put,
	.release = pg_release,
	.lease_owners = pg_lease_owners,
	.release_owner = pg_release_owner,
	.wait = pg_wait,
	.try_singleton = pg_try_singleton,
	.key_put = pg_key_put,
	.key_get = pg_key_get,
	.key_list = pg_key_list,
	.key_revoke = pg_key_revoke,
	.pause_set = pg_pause_set,
	.pause_list = pg_pause_list,
	.task_park = pg_task_park,
	.ai_costs_tenant = pg_ai_costs_tenant,
	.approvals_list = pg_approvals_list,
	.approval_get = pg_approval_get,
	.approval_decide = pg_approval_decide,
	.audit_append = pg_audit_append,
	.audit_list = pg_audit_list,
	.audit_scan = pg_audit_scan,
	.run_cancel_audited = pg_run_cancel_audited,
	.dlq_replay_audited = pg_dlq_replay_audited,
};
