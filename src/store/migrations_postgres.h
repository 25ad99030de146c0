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

	/* API keys and kill switches (src/gov/auth.h); see migrations_sqlite.h. */
	{3, "api keys and pauses",
	 "CREATE TABLE api_keys ("
	 " id TEXT COLLATE \"C\" PRIMARY KEY,"
	 " hash TEXT NOT NULL,"
	 " principal TEXT NOT NULL,"
	 " kind TEXT NOT NULL,"
	 " role TEXT NOT NULL,"
	 " tenant TEXT NOT NULL,"
	 " name TEXT NOT NULL DEFAULT '',"
	 " created_at BIGINT NOT NULL,"
	 " expires_at BIGINT NOT NULL DEFAULT 0,"
	 " revoked_at BIGINT NOT NULL DEFAULT 0);"
	 "CREATE TABLE pauses ("
	 " kind TEXT NOT NULL,"
	 " name TEXT NOT NULL,"
	 " by_whom TEXT NOT NULL,"
	 " at BIGINT NOT NULL,"
	 " PRIMARY KEY (kind, name));"
	 "ALTER TABLE tasks ADD COLUMN parked TEXT;"
	 "CREATE INDEX tasks_parked ON tasks(parked) WHERE parked IS NOT NULL;"},
	/* Fair claiming (docs/internals/store.md "Fair claiming"). tasks_claim
	 * leads with the tenant; a claim for a tenant with a max_concurrency
	 * sets `capped` to it, and tasks_capped counts its live leases (others
	 * leave it NULL and pay no index entry);
	 * tenant_share keeps each tenant's virtual time (pass). sluice_claim
	 * is the whole claim in one round trip and one transaction:
	 *  1. the tenants with tasks: a skip scan of tasks_claim (one probe each);
	 *  2. the share rows of the tenants with a max_concurrency are locked,
	 *     in name order (claimers never deadlock), before their live leases
	 *     are counted: two processes cannot both fill the last slot;
	 *  3. each tenant's cap (due tasks, at most the batch, and its free
	 *     concurrency: a few index probes each), its pass lifted to the
	 *     leader's - lag, and the batch's slots in order of pass + k /
	 *     weight, computed in PL/pgSQL over small arrays (store_int.h: the
	 *     same arithmetic as sl_store__fair_split); no query with a plan
	 *     worth caching, so nothing is planned per call beyond a few probes;
	 *     one tenant without a limit skips straight to step 4;
	 *  4. per tenant, its share of due tasks in priority order, FOR UPDATE
	 *     SKIP LOCKED, leased with a new fence; its pass advanced by what it
	 *     got (an increment, so concurrent claimers add up), unless it was
	 *     alone. */
	{4, "tenant fair share",
	 "CREATE TABLE tenant_share ("
	 " tenant TEXT COLLATE \"C\" PRIMARY KEY,"
	 " pass DOUBLE PRECISION NOT NULL);"
	 "DROP INDEX tasks_claim;"
	 "CREATE INDEX tasks_claim ON tasks(tenant, priority DESC, due_at, run_id);"
	 "ALTER TABLE tasks ADD COLUMN capped TEXT;"
	 "CREATE INDEX tasks_capped ON tasks(capped, lease_until) WHERE capped IS NOT NULL;"
	 "CREATE FUNCTION sluice_claim(p_now BIGINT, p_max INT, p_owner TEXT, p_until BIGINT,\n"
	 " p_names TEXT[], p_weights FLOAT8[], p_limits INT[], p_lag FLOAT8)\n"
	 "RETURNS TABLE(o_run_id TEXT, o_fence BIGINT) LANGUAGE plpgsql AS $fn$\n"
	 "DECLARE\n"
	 " ts TEXT[];\n"
	 " nt INT;\n"
	 " w FLOAT8[];\n"
	 " lim INT[];\n"
	 " cap BIGINT[];\n"
	 " pass FLOAT8[];\n"
	 " e FLOAT8[];\n"
	 " n INT[];\n"
	 " top FLOAT8 := 0;\n"
	 " nel INT := 0;\n"
	 " best INT;\n"
	 " bend FLOAT8;\n"
	 " x FLOAT8;\n"
	 " j INT;\n"
	 " got BIGINT;\n"
	 "BEGIN\n"
	 " WITH RECURSIVE r(t) AS (\n"
	 "  (SELECT k.tenant FROM tasks k ORDER BY k.tenant LIMIT 1)\n"
	 "  UNION ALL\n"
	 "  SELECT (SELECT k.tenant FROM tasks k WHERE k.tenant > r.t ORDER BY k.tenant LIMIT 1)\n"
	 "  FROM r WHERE r.t IS NOT NULL)\n"
	 " SELECT array_agg(r.t ORDER BY r.t COLLATE \"C\") INTO ts FROM r WHERE r.t IS NOT NULL;\n"
	 " IF ts IS NULL THEN RETURN; END IF;\n"
	 " nt := cardinality(ts);\n"
	 " n := array_fill(0, ARRAY[nt]);\n"
	 " e := array_fill(0::float8, ARRAY[nt]);\n"
	 " FOR i IN 1..nt LOOP\n"
	 "  j := array_position(p_names, ts[i]);\n"
	 "  w[i] := COALESCE(p_weights[j], 1.0);\n"
	 "  lim[i] := COALESCE(p_limits[j], 0);\n"
	 " END LOOP;\n"
	 " IF nt = 1 AND lim[1] = 0 THEN\n"
	 "  n[1] := p_max;\n"
	 "  nel := 1;\n"
	 " ELSE\n"
	 "  IF EXISTS (SELECT 1 FROM unnest(lim) l WHERE l > 0) THEN\n"
	 "   INSERT INTO tenant_share(tenant, pass)\n"
	 "    SELECT c.t, 0 FROM unnest(ts, lim) c(t, l) WHERE c.l > 0 ORDER BY c.t COLLATE \"C\"\n"
	 "    ON CONFLICT (tenant) DO NOTHING;\n"
	 "   PERFORM 1 FROM tenant_share s WHERE s.tenant IN (SELECT c.t FROM unnest(ts, lim) c(t, l) WHERE c.l > 0)\n"
	 "    ORDER BY s.tenant FOR UPDATE;\n"
	 "  END IF;\n"
	 "  FOR i IN 1..nt LOOP\n"
	 "   SELECT count(*) INTO got FROM (SELECT 1 FROM tasks k WHERE k.tenant = ts[i] AND k.due_at <= p_now\n"
	 "    ORDER BY k.priority DESC, k.due_at, k.run_id LIMIT p_max) d;\n"
	 "   IF lim[i] > 0 AND got > 0 THEN\n"
	 "    SELECT LEAST(got, lim[i] - count(*)) INTO got FROM tasks k\n"
	 "     WHERE k.capped = ts[i] AND k.lease_until > p_now;\n"
	 "   END IF;\n"
	 "   cap[i] := got;\n"
	 "   IF cap[i] > 0 THEN\n"
	 "    pass[i] := COALESCE((SELECT s.pass FROM tenant_share s WHERE s.tenant = ts[i]), 0);\n"
	 "    top := GREATEST(top, pass[i]);\n"
	 "    nel := nel + 1;\n"
	 "   END IF;\n"
	 "  END LOOP;\n"
	 "  FOR i IN 1..nt LOOP\n"
	 "   IF cap[i] > 0 THEN e[i] := GREATEST(pass[i], top - p_lag); END IF;\n"
	 "  END LOOP;\n"
	 "  FOR slot IN 1..p_max LOOP\n"
	 "   best := 0;\n"
	 "   FOR i IN 1..nt LOOP\n"
	 "    IF cap[i] > n[i] THEN\n"
	 "     x := e[i] + (n[i] + 1) / w[i];\n"
	 "     IF best = 0 OR x < bend THEN best := i; bend := x; END IF;\n"
	 "    END IF;\n"
	 "   END LOOP;\n"
	 "   EXIT WHEN best = 0;\n"
	 "   n[best] := n[best] + 1;\n"
	 "  END LOOP;\n"
	 " END IF;\n"
	 " FOR i IN 1..nt LOOP\n"
	 "  CONTINUE WHEN n[i] = 0;\n"
	 "  RETURN QUERY WITH c AS (SELECT k.run_id, k.priority, k.due_at FROM tasks k\n"
	 "     WHERE k.tenant = ts[i] AND k.due_at <= p_now\n"
	 "     ORDER BY k.priority DESC, k.due_at, k.run_id LIMIT n[i] FOR UPDATE SKIP LOCKED),\n"
	 "   u AS (UPDATE tasks k SET lease_owner = p_owner, lease_until = p_until, due_at = p_until,\n"
	 "     fence = k.fence + 1, capped = CASE WHEN lim[i] > 0 THEN ts[i] END FROM c WHERE k.run_id = c.run_id\n"
	 "     RETURNING k.run_id, k.fence, c.priority AS p, c.due_at AS d)\n"
	 "   SELECT u.run_id, u.fence FROM u ORDER BY u.p DESC, u.d, u.run_id;\n"
	 "  GET DIAGNOSTICS got = ROW_COUNT;\n"
	 "  IF nel > 1 AND got > 0 THEN\n"
	 "   INSERT INTO tenant_share AS s(tenant, pass) VALUES (ts[i], e[i] + got / w[i])\n"
	 "   ON CONFLICT (tenant) DO UPDATE SET pass = GREATEST(s.pass + got / w[i], excluded.pass);\n"
	 "  END IF;\n"
	 " END LOOP;\n"
	 "END\n"
	 "$fn$;"},
	/* Approvals (DESIGN.md §7): a run parked on a decision. Created in the
	 * commit that parks the run; decided by a person (the API) or by its
	 * timeout (the engine). consumed_at: the step read the decision, so a
	 * replay of that step asks again instead of reusing it. */
	{5, "approvals",
	 "CREATE TABLE approvals ("
	 " id TEXT COLLATE \"C\" PRIMARY KEY,"
	 " run_id TEXT NOT NULL,"
	 " step_id TEXT NOT NULL,"
	 " tenant TEXT NOT NULL,"
	 " workflow TEXT NOT NULL,"
	 " kind TEXT NOT NULL,"
	 " status TEXT NOT NULL,"
	 " reviewers TEXT NOT NULL,"
	 " escalate_to TEXT,"
	 " escalated INTEGER NOT NULL DEFAULT 0,"
	 " due_at BIGINT NOT NULL DEFAULT 0,"
	 " timeout_ms BIGINT NOT NULL DEFAULT 0,"
	 " on_timeout TEXT,"
	 " input TEXT,"
	 " evidence TEXT,"
	 " proposed TEXT,"
	 " reason TEXT,"
	 " decision TEXT,"
	 " created_at BIGINT NOT NULL,"
	 " decided_at BIGINT NOT NULL DEFAULT 0,"
	 " consumed_at BIGINT NOT NULL DEFAULT 0);"
	 "CREATE INDEX approvals_run ON approvals(run_id, created_at);"
	 "CREATE INDEX approvals_status ON approvals(status, created_at);"},
	/* What a trigger remembers between ticks and restarts (sqlite: 4). */
	{6, "trigger state",
	 "CREATE TABLE trigger_state ("
	 " name TEXT PRIMARY KEY,"
	 " state TEXT NOT NULL,"
	 " updated_at BIGINT NOT NULL);"},
	/* The audit log (src/gov/audit.h; sqlite: 3): the same columns. entry
	 * is the canonical text the hash covers; at, tenant, action and run_id
	 * are copies for filtering. seq is assigned by the store (head + 1), so
	 * a gap means a deletion. The chain is one line across processes
	 * because every append first calls sluice_audit_head(): it takes a
	 * transaction-level advisory lock (the fixed key "sluice" + 2, with the
	 * schema mixed in as for singletons: two deployments in one database
	 * keep two logs) and only then reads the head, in a statement of its
	 * own, so under READ COMMITTED it sees the entry the previous holder
	 * committed. The lock is held to the end of the appending transaction.
	 * The triggers refuse UPDATE, DELETE and TRUNCATE for every writer
	 * that leaves them enabled; the hash chain catches the others. */
	{7, "audit log",
	 "CREATE TABLE audit ("
	 " seq BIGINT PRIMARY KEY,"
	 " at BIGINT NOT NULL,"
	 " tenant TEXT NOT NULL,"
	 " action TEXT NOT NULL,"
	 " run_id TEXT,"
	 " entry TEXT NOT NULL,"
	 " prev_hash TEXT NOT NULL,"
	 " hash TEXT NOT NULL);"
	 "CREATE INDEX audit_run ON audit(run_id, seq) WHERE run_id IS NOT NULL;"
	 "CREATE FUNCTION sluice_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
	 "BEGIN\n"
	 " RAISE EXCEPTION 'the audit log is append-only';\n"
	 "END\n"
	 "$fn$;"
	 "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
	 "FOR EACH ROW EXECUTE FUNCTION sluice_audit_refuse();"
	 "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
	 "FOR EACH ROW EXECUTE FUNCTION sluice_audit_refuse();"
	 "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
	 "FOR EACH STATEMENT EXECUTE FUNCTION sluice_audit_refuse();"
	 "CREATE FUNCTION sluice_audit_head(OUT head_seq BIGINT, OUT head_hash TEXT)\n"
	 "LANGUAGE plpgsql VOLATILE AS $fn$\n"
	 "BEGIN\n"
	 " PERFORM pg_advisory_xact_lock(x'736c7569636502'::bigint #\n"
	 "   hashtextextended(coalesce(current_schema(), ''), 0));\n"
	 " SELECT a.seq, a.hash INTO head_seq, head_hash FROM audit a ORDER BY a.seq DESC LIMIT 1;\n"
	 " IF NOT FOUND THEN\n"
	 "  head_seq := 0;\n"
	 "  head_hash := NULL;\n"
	 " END IF;\n"
	 "END\n"
	 "$fn$;"},
};

#define PG_SCHEMA_VERSION ((int)(sizeof pg_migrations / sizeof pg_migrations[0]))

#endif
