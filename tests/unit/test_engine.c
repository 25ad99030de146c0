/*
 * test_engine.c: the engine's state transitions, end to end on a real
 * SQLite store and a real (in-process) HTTP server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/engine.h"
#include "gov/audit.h"
#include "store/store.h"
#include "util/util.h"

/* ---- a tiny HTTP server: counts effects by idempotency key ------------------ */

static struct {
	pthread_mutex_t mu;
	int port;
	int flaky_left;   /* /flaky answers 503 this many times */
	int fail_status;  /* /fail answers this */
	int requests;
	int effects;      /* distinct idempotency keys applied */
	int undo;         /* /undo calls applied */
	char keys[256][128];
	int nkeys;
	char last_key[128];
	char last_correlation[128];
	char last_body[512];
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct body {
	char buf[8192];
	size_t len;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *json, const char *retry_after)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (retry_after)
		MHD_add_response_header(r, "Retry-After", retry_after);
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static bool seen_key_locked(const char *key)
{
	for (int i = 0; i < srv.nkeys; i++)
		if (strcmp(srv.keys[i], key) == 0)
			return true;
	if (srv.nkeys < 256)
		snprintf(srv.keys[srv.nkeys++], sizeof srv.keys[0], "%s", key);
	return false;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload, size_t *upload_size, void **state)
{
	(void)cls;
	(void)version;
	(void)method;
	struct body *b = *state;
	if (!b) {
		*state = calloc(1, sizeof *b);
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = SL_MIN(*upload_size, sizeof b->buf - 1 - b->len);
		memcpy(b->buf + b->len, upload, n);
		b->len += n;
		*upload_size = 0;
		return MHD_YES;
	}
	const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
	const char *corr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Correlation-Id");
	pthread_mutex_lock(&srv.mu);
	srv.requests++;
	snprintf(srv.last_key, sizeof srv.last_key, "%s", key ? key : "");
	snprintf(srv.last_correlation, sizeof srv.last_correlation, "%s", corr ? corr : "");
	snprintf(srv.last_body, sizeof srv.last_body, "%.*s", (int)b->len, b->buf);
	if (strcmp(url, "/flaky") == 0 && srv.flaky_left > 0) {
		srv.flaky_left--;
		pthread_mutex_unlock(&srv.mu);
		return reply(c, 503, "{\"error\":\"busy\"}", "0");
	}
	if (strcmp(url, "/fail") == 0 && srv.fail_status) {
		int st = srv.fail_status;
		pthread_mutex_unlock(&srv.mu);
		return reply(c, (unsigned)st, "{\"error\":\"nope\"}", NULL);
	}
	if (strcmp(url, "/undo") == 0)
		srv.undo++;
	else if (key && !seen_key_locked(key))
		srv.effects++;
	int n = srv.requests;
	pthread_mutex_unlock(&srv.mu);
	char out[256];
	snprintf(out, sizeof out, "{\"id\": \"obj_%d\", \"ok\": true}", n);
	return reply(c, 200, out, NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode t)
{
	(void)cls;
	(void)c;
	(void)t;
	free(*state);
	*state = NULL;
}

static struct MHD_Daemon *start_server(void)
{
	struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
						NULL, NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed,
						NULL, MHD_OPTION_END);
	assert_non_null(d);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	srv.port = info->port;
	return d;
}

/* ---- a project on disk -------------------------------------------------------- */

static char dir[256];

static void put(const char *name, const char *fmt, ...)
{
	char *path = sl_path_join(dir, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	sl_mkdirs(path, 0755);
	*slash = '/';
	va_list ap;
	va_start(ap, fmt);
	struct sl_buf b;
	sl_buf_init(&b, 1 << 20);
	sl_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	struct sl_err err;
	assert_int_equal(sl_file_write_atomic(path, b.p, b.len, &err), 0);
	sl_buf_free(&b);
	free(path);
}

static const char *WF_FLOW =
	"workflow: flow\nversion: 1\nsteps:\n"
	"  - id: prep\n    map: '{n: .input.n, tag: \"t\"}'\n"
	"  - id: send\n    call: api.send\n    with: .prep\n"
	"  - id: nap\n    wait: 50ms\n"
	"  - id: tell\n    emit: { topic: flow.done, payload: '{n: .prep.n}' }\n"
	"  - id: skipme\n    when: 'false'\n    map: '1'\n"
	"  - id: last\n    map: '{sent: .send.id, n: .prep.n, skipped: .skipme}'\n";

static void write_project(int version_of_flow)
{
	put("sluice.yaml", "name: t\nworkers: 2\nbatch: 8\nlease: 2s\n");
	put("connectors/api.yaml",
	    "connector: api\ntype: http\nbase_url: http://127.0.0.1:%d\nallow_hosts: [127.0.0.1]\ntimeout: 2s\nactions:\n"
	    "  send: { effect: write, method: POST, path: /send }\n"
	    "  flaky: { effect: write, method: POST, path: /flaky }\n"
	    "  fail: { effect: write, method: POST, path: /fail }\n"
	    "  undo: { effect: write, method: POST, path: /undo }\n",
	    srv.port);
	if (version_of_flow == 1)
		put("workflows/flow.yaml", "%s", WF_FLOW);
	else
		put("workflows/flow.yaml", "workflow: flow\nversion: 2\nsteps:\n  - id: only\n    map: '\"v2\"'\n");
	put("workflows/child.yaml",
	    "workflow: child\nversion: 1\ntrigger: { event: flow.done }\nsteps:\n  - id: double\n    map: '.input.n * 2'\n");
	put("workflows/flaky.yaml",
	    "workflow: flaky\nversion: 1\nsteps:\n"
	    "  - id: call\n    call: api.flaky\n    retry: { max_attempts: 4, base_ms: 1, max_ms: 5 }\n");
	put("workflows/dead.yaml",
	    "workflow: dead\nversion: 1\nsteps:\n"
	    "  - id: first\n    call: api.send\n"
	    "  - id: bad\n    call: api.fail\n    retry: { max_attempts: 3, base_ms: 1, max_ms: 2 }\n"
	    "  - id: after\n    map: '{first: .first.id, bad: .bad.id}'\n");
	put("workflows/comp.yaml",
	    "workflow: comp\nversion: 1\nsteps:\n"
	    "  - id: a\n    call: api.send\n    compensate: api.undo\n"
	    "  - id: b\n    call: api.send\n    compensate: { call: api.undo, with: '{id: .b.id}' }\n"
	    "  - id: c\n    map: 'error(\"boom\")'\n    on_error: compensate\n");
	put("workflows/gate.yaml",
	    "workflow: gate\nversion: 1\nsteps:\n"
	    "  - id: ok\n    approval: { reviewers: [alice], evidence: '{n: .input.n}' }\n    on_error: continue\n"
	    "  - id: after\n    map: '{ok: .ok, seen: (. | keys)}'\n");
	put("workflows/gated.yaml",
	    "workflow: gated\nversion: 1\nsteps:\n"
	    "  - id: send\n    call: api.flaky\n    with: .input\n    retry: { max_attempts: 3, base_ms: 1, max_ms: 2 }\n");
	put("workflows/lazy.yaml",
	    "workflow: lazy\nversion: 1\nsteps:\n"
	    "  - id: ok\n    approval: { timeout: 50ms, on_timeout: approve }\n"
	    "  - id: after\n    map: '.ok.by'\n");
	put("workflows/cont.yaml",
	    "workflow: cont\nversion: 1\nsteps:\n"
	    "  - id: x\n    map: 'error(\"soft\")'\n    on_error: continue\n"
	    "  - id: y\n    map: '.x.error.class'\n");
}

static struct sl_project *load(void)
{
	struct sl_project *p = NULL;
	struct sl_diags d = {0};
	struct sl_load_opts lo = {0};
	int rc = sl_project_load(dir, &lo, &p, &d);
	if (rc) {
		sl_diags_print(stderr, &d, ".", false);
	}
	sl_diags_free(&d);
	assert_int_equal(rc, 0);
	return p;
}

struct fixture {
	struct MHD_Daemon *httpd;
	struct sl_project *p;
	struct sl_store *s;
	struct sl_engine *e;
};

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/sluice-test-engine.XXXXXX");
	assert_non_null(mkdtemp(dir));
	struct fixture *f = calloc(1, sizeof *f);
	f->httpd = start_server();
	pthread_mutex_lock(&srv.mu);
	srv.flaky_left = srv.fail_status = srv.requests = srv.effects = srv.undo = srv.nkeys = 0;
	pthread_mutex_unlock(&srv.mu);
	write_project(1);
	f->p = load();
	char *url = sl_asprintf("sqlite:%s/db.sqlite", dir);
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_open(url, &f->s, &err), 0);
	free(url);
	assert_int_equal(sl_engine_new(f->p, f->s, NULL, &f->e, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sl_engine_free(f->e);
	sl_store_close(f->s);
	sl_project_free(f->p);
	MHD_stop_daemon(f->httpd);
	char *cmd = sl_asprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f);
	return 0;
}

static void start(struct fixture *f, const char *wf, json_t *input, char id[SL_ID_MAX])
{
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_start st = {.workflow = wf, .input = input, .trigger = "test"};
	assert_int_equal(sl_engine_start_run(f->e, &st, id, NULL, &err), 0);
	json_decref(input);
}

static json_t *finish(struct fixture *f, const char *id)
{
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_engine_start(f->e, &err), 0);
	assert_int_equal(sl_engine_wait_tree(f->e, id, 20000), 0);
	json_t *run = NULL;
	assert_int_equal(sl_store_run_get(f->s, id, &run, &err), 0);
	return run;
}

static const json_t *step_of(const json_t *run, const char *id)
{
	size_t i;
	json_t *st;
	json_array_foreach(json_object_get(run, "steps"), i, st)
		if (strcmp(json_string_value(json_object_get(st, "id")), id) == 0)
			return st;
	fail_msg("no step %s", id);
	return NULL;
}

static const char *str(const json_t *j, const char *k)
{
	const char *s = json_string_value(json_object_get(j, k));
	return s ? s : "";
}

/* ---- tests ------------------------------------------------------------------- */

static void test_flow_runs_every_kind(void **state)
{
	struct fixture *f = *state;
	char id[SL_ID_MAX];
	int64_t t0 = sl_mono_ms();
	start(f, "flow", json_pack("{s:i}", "n", 21), id);
	json_t *run = finish(f, id);
	assert_string_equal(str(run, "status"), "completed");
	assert_true(sl_mono_ms() - t0 >= 50); /* the wait step waited */
	assert_string_equal(str(step_of(run, "prep"), "status"), "completed");
	assert_string_equal(str(step_of(run, "send"), "status"), "completed");
	assert_string_equal(str(step_of(run, "nap"), "status"), "completed");
	assert_string_equal(str(step_of(run, "tell"), "status"), "completed");
	assert_string_equal(str(step_of(run, "skipme"), "status"), "skipped");
	const json_t *out = json_object_get(run, "output");
	assert_int_equal(json_integer_value(json_object_get(out, "n")), 21);
	assert_true(json_is_null(json_object_get(out, "skipped")));
	assert_true(sl_str_startswith(str(out, "sent"), "obj_"));
	/* The call carried a stable key and the run's correlation id. */
	char want[128];
	snprintf(want, sizeof want, "%s:send", id);
	assert_string_equal(srv.last_key, want);
	assert_string_equal(srv.last_correlation, str(run, "correlation_id"));
	/* emit started the child workflow, in the same tree. */
	struct sl_run_filter flt = {.workflow = "child", .status = -1};
	json_t *list = NULL;
	struct sl_err err;
	assert_int_equal(sl_store_runs_list(f->s, &flt, &list, &err), 0);
	assert_int_equal(json_array_size(json_object_get(list, "runs")), 1);
	const char *child_id = str(json_array_get(json_object_get(list, "runs"), 0), "id");
	json_t *child = NULL;
	assert_int_equal(sl_store_run_get(f->s, child_id, &child, &err), 0);
	assert_string_equal(str(child, "status"), "completed");
	assert_int_equal(json_integer_value(json_object_get(child, "output")), 42);
	json_decref(child);
	json_decref(list);
	json_decref(run);
}

static void test_transient_errors_are_retried(void **state)
{
	struct fixture *f = *state;
	srv.flaky_left = 2;
	char id[SL_ID_MAX];
	start(f, "flaky", NULL, id);
	json_t *run = finish(f, id);
	assert_string_equal(str(run, "status"), "completed");
	assert_int_equal(json_integer_value(json_object_get(step_of(run, "call"), "attempts")), 3);
	json_decref(run);
}

static void test_retries_run_out_then_dead_and_replay(void **state)
{
	struct fixture *f = *state;
	srv.fail_status = 503;
	char id[SL_ID_MAX];
	start(f, "dead", NULL, id);
	json_t *run = finish(f, id);
	assert_string_equal(str(run, "status"), "dead");
	const json_t *err_j = json_object_get(run, "error");
	assert_string_equal(str(err_j, "class"), "transient");
	assert_string_equal(str(err_j, "step"), "bad");
	assert_int_equal(json_integer_value(json_object_get(step_of(run, "bad"), "attempts")), 3);
	int effects_before = srv.effects;
	json_decref(run);

	/* The DLQ holds it; fix the target and replay from the failed step. */
	struct sl_dlq_filter df = {.workflow = "dead", .error_class = -1};
	json_t *dl = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_dlq_list(f->s, &df, &dl, &err), 0);
	assert_int_equal(json_array_size(json_object_get(dl, "entries")), 1);
	const json_t *entry = json_array_get(json_object_get(dl, "entries"), 0);
	assert_string_equal(str(entry, "step_id"), "bad");
	assert_string_equal(str(entry, "error_class"), "transient");
	srv.fail_status = 0;
	char rid[SL_ID_MAX];
	assert_int_equal(sl_engine_replay(f->e, str(entry, "id"), NULL, true, NULL, rid, &err), 0);
	assert_string_equal(rid, id);
	json_decref(dl);
	assert_int_equal(sl_engine_wait_tree(f->e, id, 20000), 0);
	assert_int_equal(sl_store_run_get(f->s, id, &run, &err), 0);
	assert_string_equal(str(run, "status"), "completed");
	/* The completed first step was not repeated. */
	assert_int_equal(json_integer_value(json_object_get(step_of(run, "first"), "attempts")), 1);
	assert_int_equal(srv.effects, effects_before + 1);
	json_decref(run);
}

/* A run's audit entries oldest first, as "action[:outcome]" joined by
 * spaces (outcome: the effect's, for writes). */
static char *audit_trail(struct fixture *f, const char *run_id)
{
	struct sl_audit_filter af = {.run_id = run_id, .limit = 1000};
	json_t *page = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_audit_list(f->s, &af, &page, &err), 0);
	json_t *entries = json_object_get(page, "entries");
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_LINE);
	for (size_t i = json_array_size(entries); i-- > 0;) {
		const json_t *e = json_array_get(entries, i);
		const json_t *eff = json_object_get(e, "effect");
		sl_buf_printf(&b, "%s%s%s%s%s", b.len ? " " : "", str(e, "action"), eff ? ":" : "",
			      eff ? str(eff, "outcome") : "", json_is_true(json_object_get(eff, "compensate")) ? "#c" : "");
	}
	json_decref(page);
	return sl_buf_detach(&b);
}

/* What the engine writes to the audit log: the start, every attempt of a
 * write (failed ones too, with the key), the replay, compensations. */
static void test_audit_records_writes(void **state)
{
	struct fixture *f = *state;
	srv.fail_status = 503;
	char id[SL_ID_MAX];
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_start st = {.workflow = "dead", .trigger = "test", .actor = {SL_ACTOR_USER, "ann"}};
	assert_int_equal(sl_engine_start_run(f->e, &st, id, NULL, &err), 0);
	json_t *run = finish(f, id);
	assert_string_equal(str(run, "status"), "dead");
	json_decref(run);
	struct sl_dlq_filter df = {.workflow = "dead", .error_class = -1};
	json_t *dl = NULL;
	assert_int_equal(sl_store_dlq_list(f->s, &df, &dl, &err), 0);
	srv.fail_status = 0;
	char rid[SL_ID_MAX];
	struct sl_audit_actor op = {SL_ACTOR_USER, "bob"};
	assert_int_equal(sl_engine_replay(f->e, str(json_array_get(json_object_get(dl, "entries"), 0), "id"), NULL,
					  false, &op, rid, &err),
			 0);
	json_decref(dl);
	assert_int_equal(sl_engine_wait_tree(f->e, id, 20000), 0);
	char *trail = audit_trail(f, id);
	assert_string_equal(trail, "run.start step.write:ok step.write:error step.write:error step.write:error "
				   "dlq.replay step.write:ok");
	free(trail);

	/* the start names its actor; a write its key and the connector action */
	struct sl_audit_filter af = {.run_id = id, .limit = 1000};
	json_t *page = NULL;
	assert_int_equal(sl_store_audit_list(f->s, &af, &page, &err), 0);
	json_t *entries = json_object_get(page, "entries");
	const json_t *first = json_array_get(entries, json_array_size(entries) - 1);
	assert_string_equal(str(json_object_get(first, "actor"), "id"), "ann");
	const json_t *last = json_array_get(entries, 0);
	char key[128];
	snprintf(key, sizeof key, "%s:bad", id);
	assert_string_equal(str(json_object_get(last, "effect"), "idempotency_key"), key);
	assert_string_equal(str(json_object_get(last, "effect"), "action"), "fail");
	const json_t *replay = json_array_get(entries, 1);
	assert_string_equal(str(json_object_get(replay, "actor"), "id"), "bob");
	json_decref(page);

	/* compensations are writes too */
	char cid[SL_ID_MAX];
	start(f, "comp", NULL, cid);
	assert_int_equal(sl_engine_wait_tree(f->e, cid, 20000), 0);
	trail = audit_trail(f, cid);
	assert_string_equal(trail, "run.start step.write:ok step.write:ok step.write:ok#c step.write:ok#c");
	free(trail);

	/* cancel: a run the stopped engine has not reached */
	sl_engine_stop(f->e);
	char wid[SL_ID_MAX];
	start(f, "flow", json_pack("{s:i}", "n", 1), wid);
	assert_int_equal(sl_engine_cancel(f->e, wid, &op, &err), 0);
	trail = audit_trail(f, wid);
	assert_string_equal(trail, "run.start run.cancel");
	free(trail);
	struct sl_audit_report rep;
	assert_int_equal(sl_audit_verify(f->s, NULL, &rep), 0);
	assert_true(rep.intact);
}

static void test_permanent_errors_are_not_retried(void **state)
{
	struct fixture *f = *state;
	srv.fail_status = 404;
	char id[SL_ID_MAX];
	start(f, "dead", NULL, id);
	json_t *run = finish(f, id);
	assert_string_equal(str(run, "status"), "dead");
	assert_string_equal(str(json_object_get(run, "error"), "class"), "permanent");
	assert_int_equal(json_integer_value(json_object_get(step_of(run, "bad"), "attempts")), 1);
	json_decref(run);
}

static void test_compensation_runs_in_reverse(void **state)
{
	struct fixture *f = *state;
	char id[SL_ID_MAX];
	start(f, "comp", NULL, id);
	json_t *run = finish(f, id);
	assert_string_equal(str(run, "status"), "compensated");
	assert_string_equal(str(step_of(run, "a"), "status"), "compensated");
	assert_string_equal(str(step_of(run, "b"), "status"), "compensated");
	assert_int_equal(srv.undo, 2);
	/* b's compensation ran first: the last key seen is a's. */
	char want[128];
	snprintf(want, sizeof want, "%s:a#compensate", id);
	assert_string_equal(srv.last_key, want);
	assert_string_equal(str(json_object_get(run, "error"), "step"), "c");
	json_decref(run);
}

static void test_on_error_continue(void **state)
{
	struct fixture *f = *state;
	char id[SL_ID_MAX];
	start(f, "cont", NULL, id);
	json_t *run = finish(f, id);
	assert_string_equal(str(run, "status"), "completed");
	assert_string_equal(str(step_of(run, "x"), "status"), "failed");
	assert_string_equal(json_string_value(json_object_get(run, "output")), "permanent");
	/* A runtime jq error names the workflow file, line and step. */
	const char *msg = str(json_object_get(step_of(run, "x"), "error"), "message");
	assert_non_null(strstr(msg, "workflows/cont.yaml:5:"));
	assert_non_null(strstr(msg, "step x"));
	assert_non_null(strstr(msg, "soft"));
	json_decref(run);
}

/* A run started on version 1 finishes on version 1 after the project moved
 * to version 2, even in a new process that never loaded version 1. */
static void test_run_finishes_on_its_version(void **state)
{
	struct fixture *f = *state;
	char id[SL_ID_MAX];
	start(f, "flow", json_pack("{s:i}", "n", 1), id); /* not started: engine idle */
	sl_engine_free(f->e);
	f->e = NULL;
	sl_project_free(f->p);
	write_project(2);
	f->p = load();
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_engine_new(f->p, f->s, NULL, &f->e, &err), 0);
	json_t *run = finish(f, id);
	assert_string_equal(str(run, "status"), "completed");
	assert_int_equal(json_integer_value(json_object_get(run, "version")), 1);
	assert_int_equal(json_array_size(json_object_get(run, "steps")), 6);
	json_decref(run);
	/* New runs take version 2. */
	start(f, "flow", NULL, id);
	assert_int_equal(sl_engine_wait_tree(f->e, id, 20000), 0);
	assert_int_equal(sl_store_run_get(f->s, id, &run, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(run, "version")), 2);
	assert_string_equal(json_string_value(json_object_get(run, "output")), "v2");
	json_decref(run);
}

/* A run whose lease is held by a worker that died is reclaimed when the
 * lease expires, and its commit from the dead worker would be fenced. */
static void test_expired_lease_is_reclaimed(void **state)
{
	struct fixture *f = *state;
	char id[SL_ID_MAX];
	start(f, "cont", NULL, id);
	struct sl_task t[4];
	size_t n = 0;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_claim(f->s, "ghost", 300, 4, t, &n, &err), 0);
	assert_int_equal(n, 1);
	int64_t t0 = sl_mono_ms();
	json_t *run = finish(f, id);
	assert_string_equal(str(run, "status"), "completed");
	assert_true(sl_mono_ms() - t0 >= 250);
	json_decref(run);
	/* The ghost's commit is refused. */
	struct sl_commit c = {.run_id = id, .fence = t[0].fence, .status = SL_RUN_RUNNING, .next = SL_TASK_DONE};
	int res = 0;
	int rc = sl_store_commit(f->s, &c, 1, &res, &err);
	assert_int_equal(rc, 0);
	assert_int_equal(res, SL_EFENCED);
}

/* A lease held by a process of this host that no longer exists is released
 * when an engine starts: the run goes on at once, not after the lease. */
static void test_dead_local_owner_lease_is_released(void **state)
{
	struct fixture *f = *state;
	char id[SL_ID_MAX], host[64] = "host", owner[128];
	start(f, "cont", NULL, id);
	gethostname(host, sizeof host - 1);
	/* pid_max is at most 2^22: this pid cannot exist. */
	snprintf(owner, sizeof owner, "%s:%d/w0", host, 99999999);
	struct sl_task t[1];
	size_t n = 0;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_claim(f->s, owner, 600000, 1, t, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(sl_engine_start(f->e, &err), 0);
	/* Without the release this waits for the 10-minute lease. */
	assert_int_equal(sl_engine_wait_tree(f->e, id, 5000), 0);
	/* A live owner's lease (our own pid on another worker name) is kept. */
	char id2[SL_ID_MAX];
	start(f, "cont", NULL, id2);
	snprintf(owner, sizeof owner, "%s:%d/w9", host, (int)getppid());
	sl_engine_stop(f->e);
	assert_int_equal(sl_store_claim(f->s, owner, 600000, 1, t, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(sl_engine_start(f->e, &err), 0);
	assert_int_equal(sl_engine_wait_tree(f->e, id2, 500), SL_ETIMEOUT);
}

static void test_input_contract_is_enforced(void **state)
{
	struct fixture *f = *state;
	put("contracts/in.json", "{\"$id\": \"in@1\", \"type\": \"object\", \"required\": [\"n\"],"
				 " \"properties\": {\"n\": {\"type\": \"integer\"}}}");
	put("workflows/typed.yaml", "workflow: typed\nversion: 1\ntrigger: { event: typed.in, contract: in@1 }\n"
				    "steps:\n  - id: a\n    map: .input.n\n");
	struct sl_project *p = load();
	struct sl_engine *e = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_engine_new(p, f->s, NULL, &e, &err), 0);
	json_t *in = json_pack("{s:s}", "n", "x");
	struct sl_start st = {.workflow = "typed", .input = in};
	char id[SL_ID_MAX];
	assert_int_equal(sl_engine_start_run(e, &st, id, NULL, &err), SL_EINVAL);
	assert_int_equal(err.cls, SL_CLASS_CONTRACT);
	assert_non_null(strstr(err.msg, "/n"));
	json_decref(in);
	sl_engine_free(e);
	sl_project_free(p);
}

/* sluice.yaml's tenants: reach the store's claims: a tenant with
 * max_concurrency 1 gets one task however many are due; others are not
 * held back by it. */
static void test_tenant_shares_reach_claims(void **state)
{
	struct fixture *f = *state;
	put("sluice.yaml", "name: t\nworkers: 2\nbatch: 8\nlease: 2s\ntenants:\n  acme: {weight: 2, max_concurrency: 1}\n");
	struct sl_project *p = load();
	struct sl_engine *e = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_engine_new(p, f->s, NULL, &e, &err), 0);
	const char *tenants[] = {"acme", "acme", "acme", "beta", "beta"};
	for (size_t i = 0; i < SL_ARRAY_LEN(tenants); i++) {
		struct sl_start st = {.workflow = "cont", .tenant = tenants[i]};
		char id[SL_ID_MAX];
		assert_int_equal(sl_engine_start_run(e, &st, id, NULL, &err), 0);
	}
	struct sl_task t[8];
	size_t n = 0;
	assert_int_equal(sl_store_claim(f->s, "test", 60000, 8, t, &n, &err), 0);
	assert_int_equal(n, 3); /* acme's one, beta's two */
	size_t acme = 0;
	for (size_t i = 0; i < n; i++) {
		struct sl_run r;
		assert_int_equal(sl_store_run_load(f->s, t[i].run_id, &r, &err), 0);
		acme += strcmp(r.tenant, "acme") == 0;
		sl_run_free(&r);
	}
	assert_int_equal(acme, 1);
	sl_engine_free(e);
	sl_project_free(p);
}

/* Workers do not spin on work they may not take: with a tenant at its
 * max_concurrency (its one slot held by another owner) and more of its
 * runs due, idle workers wait between claims. */
static void test_capped_tenant_does_not_spin(void **state)
{
	struct fixture *f = *state;
	put("sluice.yaml", "name: t\nworkers: 2\nbatch: 8\nlease: 2s\ntenants:\n  acme: {max_concurrency: 1}\n");
	struct sl_project *p = load();
	struct sl_engine *e = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_engine_new(p, f->s, NULL, &e, &err), 0);
	for (int i = 0; i < 3; i++) {
		struct sl_start st = {.workflow = "cont", .tenant = "acme"};
		char id[SL_ID_MAX];
		assert_int_equal(sl_engine_start_run(e, &st, id, NULL, &err), 0);
	}
	struct sl_task t;
	size_t n = 0;
	assert_int_equal(sl_store_claim(f->s, "elsewhere", 60000, 1, &t, &n, &err), 0);
	assert_int_equal(n, 1);
	struct timespec c0, c1;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	assert_int_equal(sl_engine_start(e, &err), 0);
	usleep(400000);
	sl_engine_stop(e);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	int64_t cpu_ms = (c1.tv_sec - c0.tv_sec) * 1000 + (c1.tv_nsec - c0.tv_nsec) / 1000000;
	/* spinning: about 2 x 400 ms; waiting: a claim every 20 ms per worker */
	assert_true(cpu_ms < 200);
	struct sl_run_filter flt = {.workflow = "cont", .status = SL_RUN_COMPLETED};
	json_t *list = NULL;
	assert_int_equal(sl_store_runs_list(f->s, &flt, &list, &err), 0);
	assert_int_equal(json_array_size(json_object_get(list, "runs")), 0); /* none ran past the limit */
	json_decref(list);
	sl_engine_free(e);
	sl_project_free(p);
}

/* With two versions of a subscriber loaded, an event starts only the newest
 * (the older stays loaded for the runs that started on it). */
static void test_emit_starts_the_current_version_only(void **state)
{
	struct fixture *f = *state;
	put("workflows/child-v2.yaml", "workflow: child\nversion: 2\ntrigger: { event: flow.done }\n"
				       "steps:\n  - id: triple\n    map: '.input.n * 3'\n");
	struct sl_project *p = load();
	struct sl_engine *e = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_engine_new(p, f->s, NULL, &e, &err), 0);
	json_t *in = json_pack("{s:i}", "n", 5);
	struct sl_start st = {.workflow = "flow", .input = in};
	char id[SL_ID_MAX];
	assert_int_equal(sl_engine_start_run(e, &st, id, NULL, &err), 0);
	json_decref(in);
	assert_int_equal(sl_engine_start(e, &err), 0);
	assert_int_equal(sl_engine_wait_tree(e, id, 20000), 0);
	struct sl_run_filter flt = {.workflow = "child", .status = -1};
	json_t *list = NULL;
	assert_int_equal(sl_store_runs_list(f->s, &flt, &list, &err), 0);
	json_t *runs = json_object_get(list, "runs");
	assert_int_equal(json_array_size(runs), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(runs, 0), "version")), 2);
	json_decref(list);
	sl_engine_free(e);
	sl_project_free(p);
}

/* Dead-letter entries older than dlq_retention are deleted by the engine. */
static void test_dlq_retention(void **state)
{
	struct fixture *f = *state;
	srv.fail_status = 404;
	char id[SL_ID_MAX];
	start(f, "dead", NULL, id);
	json_decref(finish(f, id));
	struct sl_dlq_filter df = {.error_class = -1, .include_replayed = true};
	json_t *dl = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_dlq_list(f->s, &df, &dl, &err), 0);
	assert_int_equal(json_array_size(json_object_get(dl, "entries")), 1);
	json_decref(dl);
	sl_engine_free(f->e);
	f->e = NULL;
	/* Two seconds later, with a one-second retention, a new engine purges it. */
	put("sluice.yaml", "name: t\nworkers: 1\ndlq_retention: 1s\n");
	sl_project_free(f->p);
	f->p = load();
	assert_int_equal(f->p->settings.dlq_retention_ms, 1000);
	sl_clock_set(sl_now_ms() + 2000);
	assert_int_equal(sl_engine_new(f->p, f->s, NULL, &f->e, &err), 0);
	assert_int_equal(sl_engine_start(f->e, &err), 0);
	size_t n = 1;
	for (int i = 0; i < 200 && n; i++) {
		usleep(10000);
		assert_int_equal(sl_store_dlq_list(f->s, &df, &dl, &err), 0);
		n = json_array_size(json_object_get(dl, "entries"));
		json_decref(dl);
	}
	sl_clock_set(0);
	assert_int_equal(n, 0);
}

/* Idempotency keys are remembered for idempotency_ttl (then purged: the
 * same key starts a new run), unless the caller asks for ever. */
static void test_idempotency_ttl(void **state)
{
	struct fixture *f = *state;
	sl_engine_free(f->e);
	f->e = NULL;
	put("sluice.yaml", "name: t\nworkers: 1\nidempotency_ttl: 1s\n");
	sl_project_free(f->p);
	f->p = load();
	assert_int_equal(f->p->settings.idem_ttl_ms, 1000);
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_engine_new(f->p, f->s, NULL, &f->e, &err), 0);
	char a[SL_ID_MAX], b[SL_ID_MAX], c[SL_ID_MAX];
	bool existed = false;
	struct sl_start st = {.workflow = "dead", .trigger = "test", .idem_key = "k-default"};
	assert_int_equal(sl_engine_start_run(f->e, &st, a, &existed, &err), 0);
	struct sl_start keep = {.workflow = "dead", .trigger = "test", .idem_key = "k-forever", .idem_ttl_ms = -1};
	assert_int_equal(sl_engine_start_run(f->e, &keep, c, &existed, &err), 0);
	/* two seconds later, after the purge: the default key is gone, the other kept */
	sl_clock_set(sl_now_ms() + 2000);
	int64_t purged = 0;
	assert_int_equal(sl_store_idem_purge(f->s, sl_now_ms(), &purged, &err), 0);
	assert_int_equal(purged, 1);
	assert_int_equal(sl_engine_start_run(f->e, &st, b, &existed, &err), 0);
	assert_false(existed);
	assert_string_not_equal(a, b);
	assert_int_equal(sl_engine_start_run(f->e, &keep, b, &existed, &err), 0);
	assert_true(existed);
	assert_string_equal(b, c);
	sl_clock_set(0);
}

/* Polls until run id has status (5 s). */
static void await_status(struct fixture *f, const char *id, enum sl_run_status want)
{
	for (int i = 0; i < 500 && (int)sl_store_run_status(f->s, id) != (int)want; i++)
		usleep(10000);
	assert_int_equal(sl_store_run_status(f->s, id), want);
}

static json_t *pending_approval(struct fixture *f, const char *run_id)
{
	struct sl_approval_filter af = {.run_id = run_id, .status = "pending"};
	json_t *page = NULL;
	struct sl_err err;
	assert_int_equal(sl_store_approvals_list(f->s, &af, &page, &err), 0);
	assert_int_equal(json_array_size(json_object_get(page, "approvals")), 1);
	json_t *a = json_incref(json_array_get(json_object_get(page, "approvals"), 0));
	json_decref(page);
	return a;
}

/* An approval step parks the run with its approval in the same commit; a
 * decision resumes it at the same step, whose output is the decision; a
 * rejection fails the step (class policy) and its on_error applies. */
static void test_approval_step(void **state)
{
	struct fixture *f = *state;
	char id[SL_ID_MAX], id2[SL_ID_MAX];
	start(f, "gate", json_pack("{s:i}", "n", 7), id);
	json_t *run = finish(f, id); /* a parked run is settled for whoever waits */
	assert_string_equal(str(run, "status"), "review");
	assert_string_equal(str(step_of(run, "ok"), "status"), "review");
	assert_int_equal(json_array_size(json_object_get(run, "approvals")), 1);
	json_decref(run);
	json_t *a = pending_approval(f, id);
	assert_string_equal(str(a, "kind"), "approval");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "proposed"), "n")), 7);
	assert_string_equal(json_string_value(json_array_get(json_object_get(a, "reviewers"), 0)), "alice");
	const char *apr = str(a, "id");

	struct sl_err err;
	sl_err_clear(&err);
	struct sl_audit_actor bob = {SL_ACTOR_USER, "bob"};
	assert_int_equal(sl_engine_approval_decide(f->e, apr, "maybe", NULL, NULL, &bob, NULL, &err), SL_EINVAL);
	assert_int_equal(sl_engine_approval_decide(f->e, apr, "reject", NULL, NULL, &bob, NULL, &err), SL_EINVAL);
	assert_int_equal(sl_engine_approval_decide(f->e, apr, "edit", "why", NULL, &bob, NULL, &err), SL_EINVAL);
	json_t *doc = NULL;
	assert_int_equal(sl_engine_approval_decide(f->e, apr, "approve", NULL, NULL, &bob, &doc, &err), 0);
	assert_string_equal(str(doc, "status"), "approved");
	json_decref(doc);
	assert_int_equal(sl_engine_approval_decide(f->e, apr, "approve", NULL, NULL, &bob, NULL, &err), SL_EEXISTS);
	await_status(f, id, SL_RUN_COMPLETED);
	assert_int_equal(sl_store_run_get(f->s, id, &run, &err), 0);
	const json_t *out = json_object_get(json_object_get(run, "output"), "ok");
	assert_string_equal(str(out, "decision"), "approved");
	assert_string_equal(str(out, "by"), "bob");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "final"), "n")), 7);
	char *seen = json_dumps(json_object_get(json_object_get(run, "output"), "seen"), JSON_COMPACT);
	assert_null(strstr(seen, "_approvals")); /* engine-internal: gone once read */
	free(seen);
	json_decref(run);
	char *trail = audit_trail(f, id);
	assert_string_equal(trail, "run.start approval.request approval.decide");
	free(trail);
	json_decref(a);

	/* rejected: the step fails with class policy; on_error: continue goes on */
	start(f, "gate", json_pack("{s:i}", "n", 8), id2);
	await_status(f, id2, SL_RUN_REVIEW);
	a = pending_approval(f, id2);
	assert_int_equal(sl_engine_approval_decide(f->e, str(a, "id"), "reject", "too late", NULL, &bob, NULL, &err), 0);
	json_decref(a);
	await_status(f, id2, SL_RUN_COMPLETED);
	assert_int_equal(sl_store_run_get(f->s, id2, &run, &err), 0);
	assert_string_equal(str(step_of(run, "ok"), "status"), "failed");
	const json_t *e = json_object_get(json_object_get(json_object_get(run, "output"), "ok"), "error");
	assert_string_equal(str(e, "class"), "policy");
	assert_string_equal(str(e, "message"), "rejected by bob: too late");
	json_decref(run);
}

/* A call held by a gate (kind policy, as policies park it): an edited
 * decision becomes the action's input, and a transient failure after it
 * retries on the same decision (it is consumed only when the step settles). */
static void test_gated_call_resumes(void **state)
{
	struct fixture *f = *state;
	char id[SL_ID_MAX];
	start(f, "gated", json_pack("{s:i}", "n", 1), id);
	struct sl_task t;
	size_t n = 0;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_claim(f->s, "gate", 30000, 1, &t, &n, &err), 0);
	assert_int_equal(n, 1);
	char apr[SL_ID_MAX];
	sl_id_new("apr_", apr);
	json_t *rev = json_pack("[s]", "role:operator"), *prop = json_pack("{s:i}", "n", 1);
	struct sl_approval_new a = {.id = apr, .step_id = "send", .kind = "policy", .reviewers = rev, .proposed = prop,
				    .reason = "refunds above 100 need approval"};
	struct sl_step_rec sr = {.step_id = "send", .status = SL_STEP_ST_REVIEW, .attempts = 1};
	struct sl_commit c = {.run_id = t.run_id, .fence = t.fence, .step = &sr, .status = SL_RUN_REVIEW,
			      .next = SL_TASK_DONE, .approval = &a};
	int r = 99;
	assert_int_equal(sl_store_commit(f->s, &c, 1, &r, &err), 0);
	assert_int_equal(r, 0);
	json_decref(rev);
	json_decref(prop);
	json_t *value = json_pack("{s:i}", "n", 99);
	struct sl_audit_actor carol = {SL_ACTOR_USER, "carol"};
	assert_int_equal(sl_engine_approval_decide(f->e, apr, "edit", "cap it", value, &carol, NULL, &err), 0);
	json_decref(value);
	pthread_mutex_lock(&srv.mu);
	srv.flaky_left = 1;
	pthread_mutex_unlock(&srv.mu);
	assert_int_equal(sl_engine_start(f->e, &err), 0);
	await_status(f, id, SL_RUN_COMPLETED);
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.requests, 2); /* a 503, then the retry */
	assert_non_null(strstr(srv.last_body, "99"));
	pthread_mutex_unlock(&srv.mu);
}

/* A timeout is a durable timer on the run's task: on_timeout approve
 * decides as system:timeout. */
static void test_approval_timeout(void **state)
{
	struct fixture *f = *state;
	char id[SL_ID_MAX];
	start(f, "lazy", NULL, id);
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_engine_start(f->e, &err), 0);
	await_status(f, id, SL_RUN_COMPLETED);
	json_t *run = NULL;
	assert_int_equal(sl_store_run_get(f->s, id, &run, &err), 0);
	assert_string_equal(json_string_value(json_object_get(run, "output")), "system:timeout");
	const json_t *a = json_array_get(json_object_get(run, "approvals"), 0);
	assert_string_equal(str(a, "status"), "approved");
	json_decref(run);
}

/* A stream message's run key: the workflow and the message identity, so
 * two workflows on one stream each get a run, and a redelivery finds it. */
static void test_stream_key(void **state)
{
	(void)state;
	char *a = sl_engine_stream_key("ingest", "redis:events:1700000000000-0");
	char *b = sl_engine_stream_key("audit", "redis:events:1700000000000-0");
	char *c = sl_engine_stream_key("ingest", "redis:events:1700000000000-0");
	assert_string_equal(a, "ingest|redis:events:1700000000000-0");
	assert_string_not_equal(a, b);
	assert_string_equal(a, c);
	free(a);
	free(b);
	free(c);
}

static void test_backoff_full_jitter(void **state)
{
	(void)state;
	for (int i = 0; i < 1000; i++) {
		int64_t d = sl_backoff_ms(1, 100, 30000, -1);
		assert_true(d >= 0 && d <= 100);
		d = sl_backoff_ms(4, 100, 30000, -1);
		assert_true(d >= 0 && d <= 800);
		d = sl_backoff_ms(30, 100, 30000, -1); /* capped, no overflow */
		assert_true(d >= 0 && d <= 30000);
		d = sl_backoff_ms(2, 100, 30000, 5000); /* Retry-After honoured */
		assert_true(d >= 5000);
	}
	/* Jitter spreads: not every draw is the same. */
	int64_t a = sl_backoff_ms(10, 100, 30000, -1), same = 0;
	for (int i = 0; i < 50; i++)
		same += sl_backoff_ms(10, 100, 30000, -1) == a;
	assert_true(same < 50);
}

int main(void)
{
	sl_log_set_level(SL_LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flow_runs_every_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transient_errors_are_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retries_run_out_then_dead_and_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_records_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permanent_errors_are_not_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compensation_runs_in_reverse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_on_error_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_finishes_on_its_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_lease_is_reclaimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_local_owner_lease_is_released, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_contract_is_enforced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emit_starts_the_current_version_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_shares_reach_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capped_tenant_does_not_spin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dlq_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotency_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_approval_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_approval_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gated_call_resumes, setup, teardown),
		cmocka_unit_test(test_backoff_full_jitter),
		cmocka_unit_test(test_stream_key),
	};
	return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
