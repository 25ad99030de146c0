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
	 *     concurrency), its pass lifted to the leader's - lag, and the
	 *     batch's slots in order of pass + k / weight (store_int.h: the same
	 *     as sl_store__fair_split);
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
	 "CREATE FUNCTION sluice_claim(p_now BIGINT, p_max INT, p_owner TEXT, p_until BIGINT, "
	 " p_names TEXT[], p_weights FLOAT8[], p_limits INT[], p_lag FLOAT8) "
	 "RETURNS TABLE(o_run_id TEXT, o_fence BIGINT) LANGUAGE plpgsql AS $fn$\n"
	 "DECLARE\n"
	 " ts TEXT[];\n"
	 " a RECORD;\n"
	 " cur REFCURSOR;\n"
	 " got BIGINT;\n"
	 "BEGIN\n"
	 " WITH RECURSIVE r(t) AS (\n"
	 "  (SELECT k.tenant FROM tasks k ORDER BY k.tenant LIMIT 1)\n"
	 "  UNION ALL\n"
	 "  SELECT (SELECT k.tenant FROM tasks k WHERE k.tenant > r.t ORDER BY k.tenant LIMIT 1)\n"
	 "  FROM r WHERE r.t IS NOT NULL)\n"
	 " SELECT array_agg(r.t) INTO ts FROM r WHERE r.t IS NOT NULL;\n"
	 " IF ts IS NULL THEN RETURN; END IF;\n"
	 " IF NOT EXISTS (SELECT 1 FROM unnest(p_names, p_limits) c(n, lim) WHERE c.lim > 0 AND c.n = ANY(ts)) THEN\n"
	 "  IF cardinality(ts) = 1 THEN\n"
	 "   -- one tenant, no limit: its whole batch, no bookkeeping (the old single-queue claim)\n"
	 "   OPEN cur FOR SELECT ts[1] AS t, 1.0::float8 AS w, 0::float8 AS e, 0 AS lim, p_max::bigint AS n,\n"
	 "    1::bigint AS nel;\n"
	 "  END IF;\n"
	 " ELSE\n"
	 "  INSERT INTO tenant_share(tenant, pass)\n"
	 "   SELECT c.n, 0 FROM unnest(p_names, p_limits) c(n, lim) WHERE c.lim > 0 AND c.n = ANY(ts)\n"
	 "   ORDER BY c.n COLLATE \"C\" ON CONFLICT (tenant) DO NOTHING;\n"
	 "  PERFORM 1 FROM tenant_share s WHERE s.tenant IN\n"
	 "   (SELECT c.n FROM unnest(p_names, p_limits) c(n, lim) WHERE c.lim > 0 AND c.n = ANY(ts))\n"
	 "   ORDER BY s.tenant FOR UPDATE;\n"
	 " END IF;\n"
	 " IF cur IS NULL THEN\n"
	 "  OPEN cur FOR\n"
	 "  WITH cfg AS (SELECT x.t, COALESCE(c.w, 1.0)::float8 AS w, COALESCE(c.lim, 0) AS lim\n"
	 "    FROM unnest(ts) x(t) LEFT JOIN unnest(p_names, p_weights, p_limits) c(n, w, lim) ON c.n = x.t),\n"
	 "  st AS (SELECT cfg.t, cfg.w, cfg.lim, COALESCE(s.pass, 0) AS pass,\n"
	 "    LEAST(d.n, CASE WHEN cfg.lim > 0 THEN cfg.lim - (SELECT count(*) FROM tasks k WHERE k.capped = cfg.t\n"
	 "       AND k.lease_until > p_now) ELSE p_max END) AS cap\n"
	 "    FROM cfg LEFT JOIN tenant_share s ON s.tenant = cfg.t\n"
	 "    CROSS JOIN LATERAL (SELECT count(*) AS n FROM (SELECT 1 FROM tasks k WHERE k.tenant = cfg.t\n"
	 "     AND k.due_at <= p_now ORDER BY k.priority DESC, k.due_at, k.run_id LIMIT p_max) d0) d),\n"
	 "  el AS (SELECT * FROM st WHERE st.cap > 0),\n"
	 "  eff AS (SELECT el.t, el.w, el.cap, el.lim, GREATEST(el.pass, (SELECT max(e2.pass) FROM el e2) - p_lag) AS e FROM el),\n"
	 "  slots AS (SELECT eff.t, eff.w, eff.e, eff.lim FROM eff, generate_series(1, eff.cap) g(k)\n"
	 "    ORDER BY eff.e + g.k / eff.w, eff.t COLLATE \"C\" LIMIT p_max)\n"
	 "  SELECT sl.t, sl.w, sl.e, sl.lim, count(*) AS n, (SELECT count(*) FROM eff) AS nel\n"
	 "  FROM slots sl GROUP BY sl.t, sl.w, sl.e, sl.lim ORDER BY sl.t COLLATE \"C\";\n"
	 " END IF;\n"
	 " LOOP\n"
	 "  FETCH cur INTO a;\n"
	 "  EXIT WHEN NOT FOUND;\n"
	 "  RETURN QUERY WITH c AS (SELECT k.run_id, k.priority, k.due_at FROM tasks k\n"
	 "     WHERE k.tenant = a.t AND k.due_at <= p_now\n"
	 "     ORDER BY k.priority DESC, k.due_at, k.run_id LIMIT a.n FOR UPDATE SKIP LOCKED),\n"
	 "   u AS (UPDATE tasks k SET lease_owner = p_owner, lease_until = p_until, due_at = p_until,\n"
	 "     fence = k.fence + 1, capped = CASE WHEN a.lim > 0 THEN a.t END FROM c WHERE k.run_id = c.run_id\n"
	 "     RETURNING k.run_id, k.fence, c.priority AS p, c.due_at AS d)\n"
	 "   SELECT u.run_id, u.fence FROM u ORDER BY u.p DESC, u.d, u.run_id;\n"
	 "  GET DIAGNOSTICS got = ROW_COUNT;\n"
	 "  IF a.nel > 1 AND got > 0 THEN\n"
	 "   INSERT INTO tenant_share AS s(tenant, pass) VALUES (a.t, a.e + got / a.w)\n"
	 "   ON CONFLICT (tenant) DO UPDATE SET pass = GREATEST(s.pass + got / a.w, excluded.pass);\n"
	 "  END IF;\n"
	 " END LOOP;\n"
	 " CLOSE cur;\n"
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
};

#define PG_SCHEMA_VERSION ((int)(sizeof pg_migrations / sizeof pg_migrations[0]))

#endif
