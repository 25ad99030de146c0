/*
 * test_audit.c: the audit log (src/gov/audit.h, the store's audit calls):
 * appending and the chain format, entries committed with a step (and rolled
 * back with a fenced one), with a cancel or a replay, list paging and filters, the append-only
 * triggers, concurrent appenders forming one chain, and the check:
 * in a log of 10,000 entries, random edits, deletions, reorderings and
 * insertions made with SQLite directly on the file are all detected, and a
 * cut-off tail only with the anchored head.
 *
 * With $SLUICE_TEST_PG set, the store-level tests run on PostgreSQL too
 * (a fresh schema each), with its own checks: the triggers refuse UPDATE,
 * DELETE and TRUNCATE, a row edited with them disabled is detected, and
 * four processes appending at once (alone, and with the runs they start)
 * form one unbroken chain.
 *
 * SL_AUDIT_TRIALS=N changes the number of random tamperings (default 200).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gov/audit.h"
#include "store/store.h"

#define T0 1800000000000LL

struct fx {
	char dir[256];
	char path[300];
	char url[600];   /* what the store is opened with: path, or the PostgreSQL URL */
	char schema[64]; /* PostgreSQL: the test's own schema */
	bool pg;
	struct sl_store *s;
	struct sl_err err;
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

/* Opens the fixture's store (f->url, or the file in a temp folder). */
static int fx_open(void **state, struct fx *f)
{
	snprintf(f->dir, sizeof f->dir, "/tmp/sluice-test-audit-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/sluice.db", f->dir);
	if (!f->url[0])
		snprintf(f->url, sizeof f->url, "%s", f->path);
	sl_clock_set(T0);
	sl_err_clear(&f->err);
	if (sl_store_open(f->url, &f->s, &f->err) != 0) {
		fprintf(stderr, "open: %s\n", f->err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return fx_open(state, calloc(1, sizeof(struct fx)));
}

/* Runs SQL on PostgreSQL (url: the admin's, or the test's schema). NULL
 * when it worked, else the server's message (owned). */
static void no_notice(void *arg, const char *msg)
{
	(void)arg, (void)msg;
}

static char *pg_sql(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PQsetNoticeProcessor(c, no_notice, NULL);
	PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
	bool ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
	char *msg = ok ? NULL : strdup(PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return msg;
}

/* A fresh schema per test, chosen by the URL's search_path option. */
static int setup_pg(void **state)
{
	static int n;
	struct fx *f = calloc(1, sizeof *f);
	f->pg = true;
	snprintf(f->schema, sizeof f->schema, "audit_%d_%d", (int)getpid(), ++n);
	char sql[200];
	snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", f->schema, f->schema);
	char *msg = pg_sql(getenv("SLUICE_TEST_PG"), sql);
	if (msg) {
		fprintf(stderr, "setup_pg: %s\n", msg);
		free(msg);
		return -1;
	}
	const char *base = getenv("SLUICE_TEST_PG");
	snprintf(f->url, sizeof f->url, "%s%soptions=-csearch_path%%3D%s", base, strchr(base, '?') ? "&" : "?",
		 f->schema);
	return fx_open(state, f);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sl_store_close(f->s);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	if (f->pg) {
		char sql[120];
		snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", f->schema);
		free(pg_sql(getenv("SLUICE_TEST_PG"), sql));
	}
	sl_clock_set(0);
	free(f);
	return 0;
}

static const char *const actions[] = {"run.start", "run.cancel", "dlq.replay", "ai.call", "step.write", "pause"};

static void append_n(struct fx *f, int n, char last_hash[65])
{
	for (int i = 0; i < n; i++) {
		char run[32];
		snprintf(run, sizeof run, "run_%d", i % 7);
		struct sl_audit_entry e = {
			.actor = {SL_ACTOR_USER, "ann"},
			.action = actions[i % SL_ARRAY_LEN(actions)],
			.run_id = run,
			.at = T0 + i,
		};
		assert_int_equal(sl_audit_append(f->s, &e, last_hash, &f->err), 0);
	}
}

/* Runs SQL on the database file with the triggers dropped: the tamperer
 * goes around Sluice. */
static void raw_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fprintf(stderr, "raw_sql: %s: %s\n", sql, msg ? msg : "?");
	sqlite3_free(msg);
	assert_int_equal(rc, SQLITE_OK);
	sqlite3_close(db);
}

/* ---- the chain format -------------------------------------------------------------- */

struct rows {
	int n;
	char prev[64][65], hash[64][65], text[64][1024];
	int64_t seq[64];
};

static int collect(const struct sl_audit_row *r, void *ud)
{
	struct rows *rs = ud;
	if (rs->n >= 64)
		return 0;
	rs->seq[rs->n] = r->seq;
	snprintf(rs->prev[rs->n], 65, "%s", r->prev_hash);
	snprintf(rs->hash[rs->n], 65, "%s", r->hash);
	snprintf(rs->text[rs->n], 1024, "%s", r->text);
	rs->n++;
	return 0;
}

static void test_append_verify(void **state)
{
	struct fx *f = *state;
	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_true(rep.intact);
	assert_int_equal(rep.entries, 0);
	assert_string_equal(rep.head_hash, SL_AUDIT_GENESIS);

	char last[65];
	append_n(f, 3, last);
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_true(rep.intact);
	assert_int_equal(rep.entries, 3);
	assert_int_equal(rep.head_seq, 3);
	assert_string_equal(rep.head_hash, last);
	assert_int_equal(sl_audit_verify(f->s, last, &rep), 0);
	assert_true(rep.intact);
	assert_true(rep.anchor_found);
	assert_int_equal(rep.anchor_seq, 3);

	/* the chain by hand: SHA-256(prev "\n" text), genesis first */
	struct rows rs = {0};
	assert_int_equal(sl_store_audit_scan(f->s, collect, &rs, &f->err), 0);
	assert_int_equal(rs.n, 3);
	assert_string_equal(rs.prev[0], SL_AUDIT_GENESIS);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rs.seq[i], i + 1);
		char buf[1200], h[65];
		int n = snprintf(buf, sizeof buf, "%s\n%s", rs.prev[i], rs.text[i]);
		sl_sha256_hex(buf, (size_t)n, h);
		assert_string_equal(h, rs.hash[i]);
		if (i)
			assert_string_equal(rs.prev[i], rs.hash[i - 1]);
	}
	/* canonical: sorted keys, compact, seq and at set */
	assert_string_equal(rs.text[0], "{\"action\":\"run.start\",\"actor\":{\"id\":\"ann\",\"kind\":\"user\"},"
					"\"at\":1800000000000,\"run_id\":\"run_0\",\"seq\":1,\"tenant\":\"default\"}");
}

static void test_canonical(void **state)
{
	(void)state;
	json_t *e = json_pack("{s:s, s:s, s:{s:f, s:s}, s:i}", "z", "\xc3\xa9t\xc3\xa9", "action", "x", "detail", "cost",
			      0.1, "b", "c", "a", 1);
	char *t = sl_store_audit_canonical(e);
	assert_string_equal(t, "{\"a\":1,\"action\":\"x\",\"detail\":{\"b\":\"c\",\"cost\":0.10000000000000001},"
			       "\"z\":\"\\u00E9t\\u00E9\"}");
	/* canonical text parses back to the same canonical text */
	json_t *back = json_loads(t, 0, NULL);
	char *t2 = sl_store_audit_canonical(back);
	assert_string_equal(t, t2);
	free(t);
	free(t2);
	json_decref(back);
	json_decref(e);

	/* unset fields are left out; the system actor is "sluice" */
	struct sl_audit_entry ae = {.action = "pause", .target = {"connector", "crm"}, .policy = {NULL, "deny"}};
	json_t *j = sl_audit_entry_json(&ae);
	t = sl_store_audit_canonical(j);
	assert_string_equal(t, "{\"action\":\"pause\",\"actor\":{\"id\":\"sluice\",\"kind\":\"system\"},"
			       "\"policy\":{\"decision\":\"deny\"},\"target\":{\"id\":\"crm\",\"kind\":\"connector\"},"
			       "\"tenant\":\"default\"}");
	free(t);
	json_decref(j);
	assert_int_equal(sl_actor_kind_parse("agent"), SL_ACTOR_AGENT);
	assert_int_equal(sl_actor_kind_parse("robot"), -1);
}

static void test_invalid(void **state)
{
	struct fx *f = *state;
	json_t *no_action = json_pack("{s:s}", "tenant", "t");
	assert_int_equal(sl_store_audit_append(f->s, no_action, NULL, &f->err), SL_EINVAL);
	json_t *arr = json_array();
	assert_int_equal(sl_store_audit_append(f->s, arr, NULL, &f->err), SL_EINVAL);
	struct sl_audit_entry e = {0};
	assert_int_equal(sl_audit_append(f->s, &e, NULL, &f->err), SL_EINVAL);
	json_decref(no_action);
	json_decref(arr);
	json_t *page;
	struct sl_audit_filter fl = {.cursor = "abc"};
	assert_int_equal(sl_store_audit_list(f->s, &fl, &page, &f->err), SL_EINVAL);
	/* the anchored head must look like a hash */
	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, "nothex", &rep), 0);
	assert_false(rep.intact);
}

/* The table refuses UPDATE and DELETE while its triggers stand. */
static void test_append_only(void **state)
{
	struct fx *f = *state;
	append_n(f, 2, NULL);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET action = 'x' WHERE seq = 1", NULL, NULL, NULL),
			     SQLITE_OK);
	assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit WHERE seq = 2", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_true(rep.intact);
	assert_int_equal(rep.entries, 2);
}

/* ---- entries committed with what they describe ------------------------------------------- */

static void test_commit_audit(void **state)
{
	struct fx *f = *state;
	json_t *start = json_pack("{s:s, s:s}", "action", "run.start", "tenant", "acme");
	json_t *input = json_object();
	struct sl_run_new rn = {.workflow = "w", .digest = "d", .input = input, .tenant = "acme", .audit = start};
	char id[SL_ID_MAX];
	bool existed;
	assert_int_equal(sl_store_run_create(f->s, &rn, id, &existed, &f->err), 0);
	/* a repeat of an idempotent start records nothing */
	rn.idem_key = "k";
	char id2[SL_ID_MAX], id3[SL_ID_MAX];
	assert_int_equal(sl_store_run_create(f->s, &rn, id2, &existed, &f->err), 0);
	assert_int_equal(sl_store_run_create(f->s, &rn, id3, &existed, &f->err), 0);
	assert_true(existed);

	json_t *page = NULL;
	struct sl_audit_filter fl = {.action = "run.start"};
	assert_int_equal(sl_store_audit_list(f->s, &fl, &page, &f->err), 0);
	json_t *entries = json_object_get(page, "entries");
	assert_int_equal(json_array_size(entries), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(entries, 1), "run_id")), id);
	assert_string_equal(json_string_value(json_object_get(json_array_get(entries, 0), "run_id")), id2);
	json_decref(page);

	struct sl_task t[2];
	size_t n = 0;
	assert_int_equal(sl_store_claim(f->s, "w1", 30000, 2, t, &n, &f->err), 0);
	assert_int_equal(n, 2);
	json_t *two = json_pack("[{s:s, s:s}, {s:s, s:s}]", "action", "step.write", "run_id", t[0].run_id, "action",
				"ai.call", "run_id", t[0].run_id);
	json_t *bad = json_pack("[{s:s}]", "tenant", "x");
	struct sl_commit c[3] = {
		{.run_id = t[0].run_id, .fence = t[0].fence, .status = SL_RUN_COMPLETED, .next = SL_TASK_DONE,
		 .audit = two},
		{.run_id = t[1].run_id, .fence = t[1].fence + 7, .status = SL_RUN_COMPLETED, .next = SL_TASK_DONE,
		 .audit = two}, /* fenced: its entries must not land */
		{.run_id = t[1].run_id, .fence = t[1].fence, .status = SL_RUN_COMPLETED, .next = SL_TASK_DONE,
		 .audit = bad}, /* malformed: refused alone */
	};
	int results[3];
	assert_int_equal(sl_store_commit(f->s, c, 3, results, &f->err), 0);
	assert_int_equal(results[0], 0);
	assert_int_equal(results[1], SL_EFENCED);
	assert_int_equal(results[2], SL_EINVAL);
	json_decref(two);
	json_decref(bad);

	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_true(rep.intact);
	assert_int_equal(rep.entries, 4); /* 2 starts + the 2 of the landed commit */
	json_decref(start);
	json_decref(input);
}

/* A cancel or a replay and its entry land together; a refused one records
 * nothing. */
static void test_operator_actions(void **state)
{
	struct fx *f = *state;
	json_t *in = json_object();
	struct sl_run_new rn = {.workflow = "w", .digest = "d", .input = in};
	char a[SL_ID_MAX], b[SL_ID_MAX];
	assert_int_equal(sl_store_run_create(f->s, &rn, a, NULL, &f->err), 0);
	assert_int_equal(sl_store_run_create(f->s, &rn, b, NULL, &f->err), 0);
	json_t *cancel = json_pack("{s:s, s:{s:s, s:s}}", "action", "run.cancel", "actor", "kind", "user", "id", "ann");
	assert_int_equal(sl_store_run_cancel_audited(f->s, a, cancel, &f->err), 0);
	assert_int_equal(sl_store_run_cancel_audited(f->s, a, cancel, &f->err), SL_EINVAL); /* already ended */
	assert_int_equal(sl_store_run_cancel_audited(f->s, "run_nope", cancel, &f->err), SL_ENOTFOUND);
	json_t *page = NULL;
	struct sl_audit_filter fl = {.action = "run.cancel"};
	assert_int_equal(sl_store_audit_list(f->s, &fl, &page, &f->err), 0);
	assert_int_equal(json_array_size(json_object_get(page, "entries")), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(page, "entries"), 0), "run_id")),
			    a);
	json_decref(page);

	/* b dies, then is replayed */
	struct sl_task t;
	size_t n = 0;
	assert_int_equal(sl_store_claim(f->s, "w", 30000, 1, &t, &n, &f->err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(t.run_id, b);
	struct sl_dlq_new d = {.step_id = "s", .error_class = SL_CLASS_PERMANENT, .error = "boom"};
	struct sl_commit c = {.run_id = b, .fence = t.fence, .status = SL_RUN_DEAD, .next = SL_TASK_DONE, .dlq = &d};
	int res;
	assert_int_equal(sl_store_commit(f->s, &c, 1, &res, &f->err), 0);
	assert_int_equal(res, 0);
	assert_int_equal(sl_store_dlq_list(f->s, NULL, &page, &f->err), 0);
	char dlq[SL_ID_MAX];
	snprintf(dlq, sizeof dlq, "%s",
		 json_string_value(json_object_get(json_array_get(json_object_get(page, "entries"), 0), "id")));
	json_decref(page);
	json_t *replay = json_pack("{s:s, s:{s:s, s:s}}", "action", "dlq.replay", "target", "kind", "dlq", "id", dlq);
	char rid[SL_ID_MAX];
	assert_int_equal(sl_store_dlq_replay_audited(f->s, dlq, NULL, NULL, 0, replay, rid, &f->err), 0);
	assert_string_equal(rid, b);
	assert_int_equal(sl_store_dlq_replay_audited(f->s, dlq, NULL, NULL, 0, replay, rid, &f->err), SL_EINVAL);
	struct sl_audit_filter by_run = {.run_id = b};
	assert_int_equal(sl_store_audit_list(f->s, &by_run, &page, &f->err), 0);
	assert_int_equal(json_array_size(json_object_get(page, "entries")), 1);
	json_decref(page);

	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_true(rep.intact);
	assert_int_equal(rep.entries, 2);
	json_decref(cancel);
	json_decref(replay);
	json_decref(in);
}

/* ---- listing ------------------------------------------------------------------------------ */

static void test_list_paging(void **state)
{
	struct fx *f = *state;
	append_n(f, 120, NULL);
	json_t *page = NULL;
	struct sl_audit_filter fl = {.limit = 50};
	int64_t seen = 0, prev_seq = INT64_MAX;
	const char *cursor = NULL;
	char cur[32];
	int pages = 0;
	do {
		fl.cursor = cursor;
		assert_int_equal(sl_store_audit_list(f->s, &fl, &page, &f->err), 0);
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(page, "entries"), i, e) {
			int64_t seq = json_integer_value(json_object_get(e, "seq"));
			assert_true(seq < prev_seq); /* newest first, no repeats */
			prev_seq = seq;
			assert_int_equal(strlen(json_string_value(json_object_get(e, "hash"))), 64);
			seen++;
		}
		const char *next = json_string_value(json_object_get(page, "next_cursor"));
		cursor = NULL;
		if (next) {
			snprintf(cur, sizeof cur, "%s", next);
			cursor = cur;
		}
		json_decref(page);
		pages++;
	} while (cursor);
	assert_int_equal(seen, 120);
	assert_int_equal(pages, 3);

	struct sl_audit_filter by_action = {.action = "ai.call", .limit = 1000};
	assert_int_equal(sl_store_audit_list(f->s, &by_action, &page, &f->err), 0);
	assert_int_equal(json_array_size(json_object_get(page, "entries")), 20);
	json_decref(page);
	struct sl_audit_filter by_run = {.run_id = "run_3"};
	assert_int_equal(sl_store_audit_list(f->s, &by_run, &page, &f->err), 0);
	assert_int_equal(json_array_size(json_object_get(page, "entries")), 17); /* i % 7 == 3 for i < 120 */
	json_decref(page);
	struct sl_audit_filter by_time = {.since = T0 + 10, .until = T0 + 20};
	assert_int_equal(sl_store_audit_list(f->s, &by_time, &page, &f->err), 0);
	assert_int_equal(json_array_size(json_object_get(page, "entries")), 10);
	json_decref(page);
	struct sl_audit_filter by_tenant = {.tenant = "other"};
	assert_int_equal(sl_store_audit_list(f->s, &by_tenant, &page, &f->err), 0);
	assert_int_equal(json_array_size(json_object_get(page, "entries")), 0);
	json_decref(page);
}

/* ---- concurrent appenders ------------------------------------------------------------------- */

struct appender {
	struct sl_store *s;
	int n, id;
	int failed;
};

static void *append_thread(void *arg)
{
	struct appender *a = arg;
	for (int i = 0; i < a->n; i++) {
		char who[32];
		snprintf(who, sizeof who, "t%d", a->id);
		struct sl_audit_entry e = {.actor = {SL_ACTOR_SERVICE, who}, .action = "step.write"};
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_audit_append(a->s, &e, NULL, &err))
			a->failed++;
	}
	return NULL;
}

/* Threads on one handle, and a second handle on the same file (as another
 * process would be): one chain, no seq twice, none lost. */
static void test_concurrent_appends(void **state)
{
	struct fx *f = *state;
	struct sl_store *other = NULL;
	assert_int_equal(sl_store_open(f->url, &other, &f->err), 0);
	enum { THREADS = 6, EACH = 60 };
	pthread_t th[THREADS];
	struct appender a[THREADS];
	for (int i = 0; i < THREADS; i++) {
		a[i] = (struct appender){.s = i % 2 ? other : f->s, .n = EACH, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, append_thread, &a[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].failed, 0);
	}
	sl_store_close(other);
	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	if (!rep.intact)
		fprintf(stderr, "%s\n", rep.reason);
	assert_true(rep.intact);
	assert_int_equal(rep.entries, THREADS * EACH);
}

/* ---- the check: random tampering of a 10,000-entry log --------------------------------- */

enum tamper {
	T_EDIT_TEXT,    /* one byte of an entry's text */
	T_EDIT_HASH,    /* one hex digit of a hash */
	T_EDIT_PREV,    /* one hex digit of a prev_hash */
	T_EDIT_COLUMN,  /* a filter column (action) */
	T_DELETE,       /* a row (the last: a cut-off tail) */
	T_SWAP,         /* two rows' contents change places */
	T_RENUMBER,     /* two rows swap their seq */
	T_INSERT,       /* a forged row, chained to its predecessor, later rows moved up */
	T_REHASH,       /* an entry edited and its hash recomputed (the next link breaks) */
	T_REWRITE,      /* an entry edited and every hash from it on recomputed */
	T__COUNT
};
static const char *const tamper_names[T__COUNT] = {"edit text", "edit hash", "edit prev_hash", "edit column",
						   "delete", "swap rows", "renumber", "insert", "rehash",
						   "rewrite"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

static char *row_text(sqlite3 *db, const char *sql, int64_t seq)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, seq);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	char *s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return s;
}

static void put_text(sqlite3 *db, const char *sql, int64_t seq, const char *text)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, seq);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static char other_hex(char c)
{
	return c == '0' ? '1' : '0';
}

/* Recomputes the hash of row seq from its prev_hash and text (a smart
 * tamperer), then, when chain, every later row's prev_hash and hash. */
static void rehash_from(sqlite3 *db, int64_t seq, int64_t n, bool chain)
{
	char *first_prev = row_text(db, "SELECT prev_hash FROM audit WHERE seq = ?", seq);
	char prev[65];
	snprintf(prev, sizeof prev, "%s", first_prev);
	free(first_prev);
	sqlite3_stmt *rd, *wr;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq, entry FROM audit WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
					    -1, &rd, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3", -1, &wr, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(rd, 1, seq);
	sqlite3_bind_int64(rd, 2, chain ? n : seq);
	/* collect first: updating rows while walking them is not allowed to disturb the walk */
	json_t *rows = json_array();
	while (sqlite3_step(rd) == SQLITE_ROW)
		json_array_append_new(rows, json_pack("[I, s]", (json_int_t)sqlite3_column_int64(rd, 0),
						      (const char *)sqlite3_column_text(rd, 1)));
	sqlite3_finalize(rd);
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		const char *text = json_string_value(json_array_get(r, 1));
		char h[65];
		sl_store_audit_hash(prev, text, strlen(text), h);
		sqlite3_bind_text(wr, 1, prev, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(wr, 2, h, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(wr, 3, json_integer_value(json_array_get(r, 0)));
		assert_int_equal(sqlite3_step(wr), SQLITE_DONE);
		sqlite3_reset(wr);
		memcpy(prev, h, sizeof prev);
	}
	sqlite3_finalize(wr);
	json_decref(rows);
}

/* Applies one tampering; returns the seq verification must name (0 when
 * only the anchored head can tell) and sets *anchor_only. */
static int64_t tamper(const char *path, enum tamper kind, int64_t n, bool *anchor_only)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; BEGIN", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	int64_t k = 1 + (int64_t)rnd((uint64_t)n); /* 1..n */
	int64_t want = k;
	*anchor_only = false;
	char sql[256];
	switch (kind) {
	case T_EDIT_TEXT: {
		char *t = row_text(db, "SELECT entry FROM audit WHERE seq = ?", k);
		size_t pos = rnd(strlen(t));
		char c = t[pos];
		t[pos] = c == 'x' ? 'y' : 'x';
		put_text(db, "UPDATE audit SET entry = ?1 WHERE seq = ?2", k, t);
		free(t);
		break;
	}
	case T_EDIT_HASH:
	case T_EDIT_PREV: {
		const char *col = kind == T_EDIT_HASH ? "hash" : "prev_hash";
		snprintf(sql, sizeof sql, "SELECT %s FROM audit WHERE seq = ?", col);
		char *h = row_text(db, sql, k);
		size_t pos = rnd(64);
		h[pos] = other_hex(h[pos]);
		snprintf(sql, sizeof sql, "UPDATE audit SET %s = ?1 WHERE seq = ?2", col);
		put_text(db, sql, k, h);
		free(h);
		break;
	}
	case T_EDIT_COLUMN:
		put_text(db, "UPDATE audit SET action = ?1 WHERE seq = ?2", k, "forged.action");
		break;
	case T_DELETE:
		snprintf(sql, sizeof sql, "DELETE FROM audit WHERE seq = %lld", (long long)k);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		*anchor_only = k == n;
		break;
	case T_SWAP:
	case T_RENUMBER: {
		int64_t j = 1 + (int64_t)rnd((uint64_t)n);
		if (j == k)
			j = k == n ? k - 1 : k + 1;
		int64_t lo = SL_MIN(j, k), hi = SL_MAX(j, k);
		if (kind == T_SWAP) {
			/* via a temporary row 0: lo := hi, hi := copy of lo */
			char s1[160], s2[160], s3[160];
			snprintf(s1, sizeof s1,
				 "INSERT INTO audit SELECT 0, at, tenant, action, run_id, entry, prev_hash, hash "
				 "FROM audit WHERE seq = %lld",
				 (long long)lo);
			snprintf(s2, sizeof s2, "DELETE FROM audit WHERE seq = %lld; UPDATE audit SET seq = %lld WHERE seq = %lld",
				 (long long)lo, (long long)lo, (long long)hi);
			snprintf(s3, sizeof s3, "UPDATE audit SET seq = %lld WHERE seq = 0", (long long)hi);
			assert_int_equal(sqlite3_exec(db, s1, NULL, NULL, NULL), SQLITE_OK);
			assert_int_equal(sqlite3_exec(db, s2, NULL, NULL, NULL), SQLITE_OK);
			assert_int_equal(sqlite3_exec(db, s3, NULL, NULL, NULL), SQLITE_OK);
		} else {
			snprintf(sql, sizeof sql,
				 "UPDATE audit SET seq = -1 WHERE seq = %lld; UPDATE audit SET seq = %lld WHERE seq = %lld; "
				 "UPDATE audit SET seq = %lld WHERE seq = -1",
				 (long long)lo, (long long)lo, (long long)hi, (long long)hi);
			assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		}
		want = lo;
		break;
	}
	case T_INSERT: {
		/* after row k-1: rows k.. move up one, and a forged entry with a
		 * correct text seq and a hash chained to row k-1 takes k */
		snprintf(sql, sizeof sql, "UPDATE audit SET seq = -seq WHERE seq >= %lld; "
					  "UPDATE audit SET seq = 1 - seq WHERE seq < 0",
			 (long long)k);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		char prev[65];
		if (k == 1) {
			snprintf(prev, sizeof prev, "%s", SL_AUDIT_GENESIS);
		} else {
			char *p = row_text(db, "SELECT hash FROM audit WHERE seq = ?", k - 1);
			snprintf(prev, sizeof prev, "%s", p);
			free(p);
		}
		json_t *e = json_pack("{s:s, s:s, s:I, s:I}", "action", "run.cancel", "tenant", "default", "seq",
				      (json_int_t)k, "at", (json_int_t)T0);
		char *text = sl_store_audit_canonical(e);
		char h[65];
		sl_store_audit_hash(prev, text, strlen(text), h);
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db,
						    "INSERT INTO audit(seq, at, tenant, action, run_id, entry, prev_hash, "
						    "hash) VALUES (?1, ?2, 'default', 'run.cancel', NULL, ?3, ?4, ?5)",
						    -1, &st, NULL),
				 SQLITE_OK);
		sqlite3_bind_int64(st, 1, k);
		sqlite3_bind_int64(st, 2, T0);
		sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, prev, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 5, h, -1, SQLITE_TRANSIENT);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
		free(text);
		json_decref(e);
		want = k + 1; /* the moved row's seq no longer matches its text */
		break;
	}
	case T_REHASH:
	case T_REWRITE: {
		char *t = row_text(db, "SELECT entry FROM audit WHERE seq = ?", k);
		json_t *e = json_loads(t, 0, NULL);
		json_object_set_new(e, "action", json_string("forged"));
		free(t);
		t = sl_store_audit_canonical(e);
		put_text(db, "UPDATE audit SET entry = ?1, action = 'forged' WHERE seq = ?2", k, t);
		free(t);
		json_decref(e);
		rehash_from(db, k, n, kind == T_REWRITE);
		want = k + 1; /* the next link */
		*anchor_only = kind == T_REWRITE || k == n;
		break;
	}
	default: fail();
	}
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	return *anchor_only ? 0 : want;
}

static int copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	if (!a || !b) {
		if (a)
			fclose(a);
		if (b)
			fclose(b);
		return -1;
	}
	char buf[1 << 16];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, a)) > 0)
		fwrite(buf, 1, n, b);
	fclose(a);
	return fclose(b);
}

/* Every kind of tampering, at random places, on copies of one log of
 * 10,000 entries. */
static void test_tamper_random(void **state)
{
	struct fx *f = *state;
	enum { N = 10000 };
	/* The log, in one transaction: a commit that carries N entries (the
	 * way the engine records what a step did). */
	json_t *in = json_object();
	struct sl_run_new rn = {.workflow = "w", .digest = "d", .input = in};
	char id[SL_ID_MAX];
	assert_int_equal(sl_store_run_create(f->s, &rn, id, NULL, &f->err), 0);
	struct sl_task t;
	size_t got = 0;
	assert_int_equal(sl_store_claim(f->s, "w", 30000, 1, &t, &got, &f->err), 0);
	assert_int_equal(got, 1);
	json_t *entries = json_array();
	for (int i = 0; i < N; i++) {
		char run[32];
		snprintf(run, sizeof run, "run_%d", i % 97);
		json_array_append_new(entries, json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:i}}", "action",
							 actions[i % SL_ARRAY_LEN(actions)], "tenant", i % 3 ? "a" : "b",
							 "run_id", run, "at", (json_int_t)(T0 + i), "detail", "k", "v",
							 "n", i));
	}
	struct sl_commit c = {.run_id = t.run_id, .fence = t.fence, .status = SL_RUN_RUNNING,
			      .next = SL_TASK_RESCHEDULE, .due_at = T0 + 1000000, .audit = entries};
	int res = -1;
	assert_int_equal(sl_store_commit(f->s, &c, 1, &res, &f->err), 0);
	assert_int_equal(res, 0);
	json_decref(entries);
	json_decref(in);
	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_true(rep.intact);
	assert_int_equal(rep.entries, N);
	char head[65];
	memcpy(head, rep.head_hash, sizeof head);
	sl_store_close(f->s); /* the last connection checkpoints the WAL into the file */
	f->s = NULL;

	char trial[320], wal[330], shm[330];
	snprintf(trial, sizeof trial, "%s/trial.db", f->dir);
	snprintf(wal, sizeof wal, "%s-wal", trial);
	snprintf(shm, sizeof shm, "%s-shm", trial);
	const char *env = getenv("SL_AUDIT_TRIALS");
	int trials = env ? atoi(env) : 200;
	int detected = 0, anchor_only = 0;
	for (int i = 0; i < trials; i++) {
		remove(wal);
		remove(shm);
		assert_int_equal(copy_file(f->path, trial), 0);
		enum tamper kind = (enum tamper)(i % T__COUNT);
		bool only_anchor;
		int64_t want = tamper(trial, kind, N, &only_anchor);
		struct sl_store *s = NULL;
		assert_int_equal(sl_store_open(trial, &s, &f->err), 0);
		struct sl_audit_report plain, anchored;
		assert_int_equal(sl_audit_verify(s, NULL, &plain), 0);
		assert_int_equal(sl_audit_verify(s, head, &anchored), 0);
		sl_store_close(s);
		if (anchored.intact || (!only_anchor && (plain.intact || plain.bad_seq != want)))
			fprintf(stderr, "trial %d (%s): want seq %lld; plain: %s %lld %s; anchored: %s %s\n", i,
				tamper_names[kind], (long long)want, plain.intact ? "intact" : "bad",
				(long long)plain.bad_seq, plain.reason, anchored.intact ? "intact" : "bad",
				anchored.reason);
		assert_false(anchored.intact); /* with the anchored head, every change */
		if (only_anchor) {
			assert_true(plain.intact); /* what the chain alone cannot tell */
			anchor_only++;
		} else {
			assert_false(plain.intact);
			assert_int_equal(plain.bad_seq, want);
			detected++;
		}
	}
	fprintf(stderr, "# %d tamperings: %d found by the chain alone (first bad seq exact), %d more by the "
			"anchored head only\n",
		trials, detected, anchor_only);
	/* teardown closes f->s: give it one */
	assert_int_equal(sl_store_open(f->path, &f->s, &f->err), 0);
}

/* A cut-off tail is a shorter valid chain; the anchored head shows it. */
static void test_truncated_tail(void **state)
{
	struct fx *f = *state;
	char head[65];
	append_n(f, 20, head);
	raw_sql(f->path, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq > 17");
	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_true(rep.intact);
	assert_int_equal(rep.entries, 17);
	assert_int_equal(sl_audit_verify(f->s, head, &rep), 0);
	assert_false(rep.intact);
	assert_false(rep.anchor_found);
	assert_int_equal(rep.bad_seq, 18);
	assert_non_null(strstr(rep.reason, "truncated"));
	/* an older anchor is still found: the log only grew since */
	struct rows rs = {0};
	assert_int_equal(sl_store_audit_scan(f->s, collect, &rs, &f->err), 0);
	assert_int_equal(sl_audit_verify(f->s, rs.hash[9], &rep), 0);
	assert_true(rep.intact);
	assert_int_equal(rep.anchor_seq, 10);
}

/* ---- PostgreSQL: the triggers, a tamperer, several processes ------------------------------------ */

/* UPDATE, DELETE and TRUNCATE are refused; with the triggers disabled (a
 * tamperer with the table owner's rights) an edit lands, and verify names it. */
static void test_pg_append_only(void **state)
{
	struct fx *f = *state;
	append_n(f, 3, NULL);
	const char *refused[] = {"UPDATE audit SET action = 'x' WHERE seq = 1", "DELETE FROM audit WHERE seq = 3",
				 "TRUNCATE audit"};
	for (size_t i = 0; i < SL_ARRAY_LEN(refused); i++) {
		char *msg = pg_sql(f->url, refused[i]);
		assert_non_null(msg);
		assert_non_null(strstr(msg, "append-only"));
		free(msg);
	}
	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_true(rep.intact);
	assert_int_equal(rep.entries, 3);
	char *msg = pg_sql(f->url, "ALTER TABLE audit DISABLE TRIGGER USER;"
				   "UPDATE audit SET entry = replace(entry, '\"ann\"', '\"bob\"') WHERE seq = 2;"
				   "ALTER TABLE audit ENABLE TRIGGER USER");
	assert_null(msg);
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_false(rep.intact);
	assert_int_equal(rep.bad_seq, 2);
}

enum { PROCS = 4, PROC_EACH = 40 };

/* One appending process: its own store handle (as serve and each worker
 * have); even ones append entries alone, odd ones start runs (their
 * run.start entries go in with the runs, in batches) and cancel them. */
static int append_proc(const char *url, int id)
{
	/* the fixed test clock: a ms of its own per process, or the run ids
	 * (monotonic within a ms, from state copied by fork) would collide */
	sl_clock_set(T0 + 1000 + id);
	struct sl_store *s = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_open(url, &s, &err))
		return 1;
	int failed = 0;
	json_t *in = json_object();
	json_t *start = json_pack("{s:s, s:{s:s, s:i}}", "action", "run.start", "actor", "kind", "service", "n", id);
	json_t *cancel = json_pack("{s:s}", "action", "run.cancel");
	for (int i = 0; i < PROC_EACH && !failed; i++) {
		if (id % 2 == 0) {
			char who[32];
			snprintf(who, sizeof who, "p%d", id);
			struct sl_audit_entry e = {.actor = {SL_ACTOR_SERVICE, who}, .action = "step.write"};
			failed = sl_audit_append(s, &e, NULL, &err) != 0;
			continue;
		}
		struct sl_run_new rn = {.workflow = "w", .digest = "d", .input = in, .audit = start};
		char a[SL_ID_MAX], b[SL_ID_MAX];
		failed = sl_store_run_create(s, &rn, a, NULL, &err) || sl_store_run_create(s, &rn, b, NULL, &err);
		if (!failed && i % 2)
			failed = sl_store_run_cancel_audited(s, a, cancel, &err) != 0;
	}
	if (failed)
		fprintf(stderr, "append_proc %d: %s\n", id, err.msg);
	json_decref(in);
	json_decref(start);
	json_decref(cancel);
	sl_store_close(s);
	return failed;
}

static void test_pg_processes(void **state)
{
	struct fx *f = *state;
	pid_t pid[PROCS];
	for (int i = 0; i < PROCS; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0)
			_exit(append_proc(f->url, i)); /* f->s is the parent's: left alone */
	}
	for (int i = 0; i < PROCS; i++) {
		int st = 0;
		assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	if (!rep.intact)
		fprintf(stderr, "%s\n", rep.reason);
	assert_true(rep.intact);
	/* even: PROC_EACH entries; odd: 2 starts per round and a cancel every other */
	int64_t want = (PROCS / 2) * PROC_EACH + (PROCS / 2) * (2 * PROC_EACH + PROC_EACH / 2);
	assert_int_equal(rep.entries, want);
	assert_int_equal(rep.head_seq, want);
	json_t *page = NULL;
	struct sl_audit_filter fl = {.action = "run.cancel", .limit = 1000};
	assert_int_equal(sl_store_audit_list(f->s, &fl, &page, &f->err), 0);
	assert_int_equal(json_array_size(json_object_get(page, "entries")), (PROCS / 2) * (PROC_EACH / 2));
	json_decref(page);
}

int main(void)
{
	struct CMUnitTest tests[24];
	size_t n = 0;
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_canonical);
#define SQ(fn) tests[n++] = (struct CMUnitTest){"sqlite: " #fn, fn, setup, teardown, NULL};
	SQ(test_append_verify)
	SQ(test_invalid)
	SQ(test_append_only)
	SQ(test_commit_audit)
	SQ(test_operator_actions)
	SQ(test_list_paging)
	SQ(test_concurrent_appends)
	SQ(test_truncated_tail)
	SQ(test_tamper_random)
#undef SQ
	const char *pgurl = getenv("SLUICE_TEST_PG");
	if (pgurl && *pgurl) {
#define PG(fn) tests[n++] = (struct CMUnitTest){"pg: " #fn, fn, setup_pg, teardown, NULL};
		PG(test_append_verify)
		PG(test_invalid)
		PG(test_commit_audit)
		PG(test_operator_actions)
		PG(test_list_paging)
		PG(test_concurrent_appends)
		PG(test_pg_append_only)
		PG(test_pg_processes)
#undef PG
	} else {
		printf("# test_audit: SLUICE_TEST_PG unset: the PostgreSQL variants are skipped\n");
	}
	SL_ASSERT(n <= SL_ARRAY_LEN(tests));
	return _cmocka_run_group_tests("audit", tests, n, NULL, NULL);
}
