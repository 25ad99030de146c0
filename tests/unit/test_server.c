/*
 * test_server.c: the HTTP edge in process: a temp project, a temp SQLite
 * store, a running engine and the server on a free port, talked to with
 * libcurl. Every endpoint, problem+json, limits, paging, the OpenAPI
 * document against the route table, and every HMAC case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/engine.h"
#include "gov/auth.h"
#include "server/server.h"
#include "store/store.h"
#include "util/util.h"

#define SECRET "s3cret-current"
#define SECRET_PREV "s3cret-previous"

static char dir[64];
/* "Authorization: Bearer KEY" of an admin key of every tenant, sent by
 * http_port unless a test passes its own Authorization header */
static char auth_header[256];

static struct {
	struct sl_project *p;
	struct sl_store *s;
	struct sl_engine *e;
	struct sl_server *srv;
	int port;
} fx;

static void put(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(const char *name, const char *fmt, ...)
{
	char *path = sl_path_join(dir, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	sl_mkdirs(path, 0755);
	*slash = '/';
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	free(path);
}

/* ---- a small HTTP client ------------------------------------------------------ */

struct resp {
	long status;
	struct sl_buf body;
	char ctype[128];
	char retry_after[32];
	json_t *json;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct resp *r = ud;
	sl_buf_add(&r->body, p, size * n);
	return size * n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	const char *v = line + nl + 1;
	size_t vn = n - nl - 1;
	while (vn && (*v == ' ')) {
		v++;
		vn--;
	}
	while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n'))
		vn--;
	snprintf(out, cap, "%.*s", (int)vn, v);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct resp *r = ud;
	header_value(p, size * n, "Content-Type", r->ctype, sizeof r->ctype);
	header_value(p, size * n, "Retry-After", r->retry_after, sizeof r->retry_after);
	return size * n;
}

/* headers: NULL-terminated "Name: value" strings, may be NULL. */
static void http_port(int port, const char *method, const char *path, const char *body, size_t blen,
		      const char *const *headers, struct resp *out)
{
	memset(out, 0, sizeof *out);
	sl_buf_init(&out->body, SL_BUF_MAX_HTTP_BODY);
	CURL *c = curl_easy_init();
	assert_non_null(c);
	char *url = sl_asprintf("http://127.0.0.1:%d%s", port, path);
	struct curl_slist *hl = NULL;
	if (body)
		hl = curl_slist_append(hl, "Content-Type: application/json");
	bool own_auth = false;
	for (size_t i = 0; headers && headers[i]; i++) {
		hl = curl_slist_append(hl, headers[i]);
		own_auth = own_auth || strncasecmp(headers[i], "Authorization:", 14) == 0;
	}
	if (!own_auth && auth_header[0])
		hl = curl_slist_append(hl, auth_header);
	hl = curl_slist_append(hl, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)blen);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	CURLcode rc = curl_easy_perform(c);
	assert_int_equal(rc, CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	free(url);
	out->json = json_loadb(sl_buf_str(&out->body), out->body.len, JSON_DECODE_ANY, NULL);
}

static void http(const char *method, const char *path, const char *body, const char *const *headers,
		 struct resp *out)
{
	http_port(fx.port, method, path, body, body ? strlen(body) : 0, headers, out);
}

static void resp_free(struct resp *r)
{
	sl_buf_free(&r->body);
	json_decref(r->json);
}

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An RFC 9457 problem of this status. */
static void assert_problem(const struct resp *r, long status)
{
	assert_int_equal(r->status, status);
	assert_string_equal(r->ctype, "application/problem+json");
	assert_non_null(r->json);
	assert_non_null(jstr(r->json, "type"));
	assert_non_null(jstr(r->json, "title"));
	assert_non_null(jstr(r->json, "detail"));
	assert_non_null(jstr(r->json, "instance"));
	assert_int_equal(json_integer_value(json_object_get(r->json, "status")), status);
}

static void wait_run(const char *id)
{
	assert_int_equal(sl_engine_wait_tree(fx.e, id, 20000), 0);
}

/* ---- the fixture ------------------------------------------------------------------ */

/* Stores a key of role and tenant; header gets "Authorization: Bearer KEY". */
static void add_key(const char *role, const char *tenant, char *header, size_t n)
{
	struct sl_api_key k = {0};
	char token[SL_KEY_MAX + 1];
	sl_key_generate(token, k.id, k.hash);
	snprintf(k.principal, sizeof k.principal, "test-%s", role);
	snprintf(k.kind, sizeof k.kind, "service");
	snprintf(k.role, sizeof k.role, "%s", role);
	snprintf(k.tenant, sizeof k.tenant, "%s", tenant);
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_key_put(fx.s, &k, NULL, &err), 0);
	snprintf(header, n, "Authorization: Bearer %s", token);
}

static int setup(void **state)
{
	(void)state;
	sl_log_set_level(SL_LOG_WARN);
	curl_global_init(CURL_GLOBAL_ALL);
	snprintf(dir, sizeof dir, "/tmp/sluice-test-server.XXXXXX");
	assert_non_null(mkdtemp(dir));
	setenv("SL_TEST_HOOK_SECRET", SECRET, 1);
	setenv("SL_TEST_HOOK_SECRET_PREVIOUS", SECRET_PREV, 1);
	put("sluice.yaml", "name: t\nworkers: 2\nbatch: 8\nlease: 2s\n");
	put("contracts/hook.json",
	    "{\"$id\": \"hook@1\", \"type\": \"object\", \"required\": [\"msg\"],"
	    " \"properties\": {\"msg\": {\"type\": \"string\"}, \"id\": {\"type\": \"string\"}}}");
	put("workflows/signed.yaml",
	    "workflow: signed\nversion: 1\nowner: team-a\ndescription: a signed hook\n"
	    "trigger:\n  webhook: { path: /hooks/signed, contract: hook@1, hmac_secret: env:SL_TEST_HOOK_SECRET }\n"
	    "steps:\n  - id: echo\n    map: '.input.msg'\n");
	put("workflows/open.yaml",
	    "workflow: open\nversion: 1\ntrigger:\n  webhook: { path: /hooks/open }\n"
	    "steps:\n  - id: echo\n    map: '.input'\n");
	put("workflows/plain.yaml", "workflow: plain\nversion: 1\nsteps:\n  - id: a\n    map: '.input'\n  - id: b\n"
				    "    map: '.a'\n");
	put("workflows/nap.yaml", "workflow: nap\nversion: 1\nsteps:\n  - id: nap\n    wait: 1h\n");
	put("workflows/dead.yaml",
	    "workflow: dead\nversion: 1\nsteps:\n  - id: ok\n    map: '1'\n"
	    "  - id: boom\n    map: 'if .input.fix then \"fixed\" else error(\"boom\") end'\n");
	struct sl_diags d = {0};
	struct sl_load_opts lo = {.resolve_secrets = true};
	int rc = sl_project_load(dir, &lo, &fx.p, &d);
	if (rc)
		sl_diags_print(stderr, &d, ".", false);
	sl_diags_free(&d);
	assert_int_equal(rc, 0);
	char *url = sl_asprintf("sqlite:%s/db.sqlite", dir);
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_open(url, &fx.s, &err), 0);
	free(url);
	add_key("admin", "*", auth_header, sizeof auth_header);
	assert_int_equal(sl_engine_new(fx.p, fx.s, NULL, &fx.e, &err), 0);
	assert_int_equal(sl_engine_start(fx.e, &err), 0);
	struct sl_server_opts o = {.listen = "127.0.0.1:0", .max_body = 4096, .max_inflight = 64};
	rc = sl_server_start(fx.e, &o, &fx.srv, &err);
	if (rc)
		fprintf(stderr, "server: %s\n", err.msg);
	assert_int_equal(rc, 0);
	fx.port = sl_server_port(fx.srv);
	assert_true(fx.port > 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sl_server_stop(fx.srv);
	sl_engine_stop(fx.e);
	sl_engine_free(fx.e);
	sl_store_close(fx.s);
	sl_project_free(fx.p);
	char *cmd = sl_asprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(cmd);
	curl_global_cleanup();
	return 0;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_health_and_problems(void **state)
{
	(void)state;
	struct resp r;
	http("GET", "/healthz", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(jstr(r.json, "status"), "ok");
	resp_free(&r);
	http("GET", "/readyz", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	http("GET", "/nope", NULL, NULL, &r);
	assert_problem(&r, 404);
	assert_string_equal(jstr(r.json, "instance"), "/nope");
	resp_free(&r);
	http("DELETE", "/v1/runs", NULL, NULL, &r);
	assert_problem(&r, 405);
	resp_free(&r);
	http("POST", "/v1/workflows/plain/runs", "{not json", NULL, &r);
	assert_problem(&r, 400);
	resp_free(&r);
}

static void test_workflows(void **state)
{
	(void)state;
	struct resp r;
	http("GET", "/v1/workflows", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	json_t *arr = json_object_get(r.json, "workflows");
	assert_int_equal(json_array_size(arr), 5);
	bool seen = false;
	size_t i;
	json_t *w;
	json_array_foreach(arr, i, w)
	{
		if (strcmp(jstr(w, "name"), "signed") != 0)
			continue;
		seen = true;
		assert_string_equal(jstr(w, "owner"), "team-a");
		assert_string_equal(jstr(w, "description"), "a signed hook");
		assert_int_equal(json_integer_value(json_object_get(w, "steps")), 1);
		assert_int_equal(json_integer_value(json_object_get(w, "version")), 1);
		assert_string_equal(jstr(json_object_get(w, "trigger"), "kind"), "webhook");
		assert_string_equal(jstr(json_object_get(w, "trigger"), "path"), "/hooks/signed");
	}
	assert_true(seen);
	resp_free(&r);
}

static void test_start_and_get(void **state)
{
	(void)state;
	struct resp r;
	const char *hdr[] = {"X-Correlation-Id: corr-test-1", NULL};
	http("POST", "/v1/workflows/plain/runs", "{\"x\": 41}", hdr, &r);
	assert_int_equal(r.status, 202);
	char *id = sl_strdup(jstr(r.json, "run_id"));
	assert_non_null(id);
	assert_string_equal(jstr(r.json, "status"), "accepted");
	assert_non_null(json_object_get(r.json, "links"));
	resp_free(&r);
	wait_run(id);
	char *path = sl_asprintf("/v1/runs/%s", id);
	http("GET", path, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(jstr(r.json, "status"), "completed");
	assert_string_equal(jstr(r.json, "correlation_id"), "corr-test-1");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r.json, "output"), "x")), 41);
	assert_int_equal(json_array_size(json_object_get(r.json, "steps")), 2);
	resp_free(&r);
	free(path);
	free(id);
	id = NULL;
	path = NULL;

	http("GET", "/v1/runs/run_NOPE", NULL, NULL, &r);
	assert_problem(&r, 404);
	resp_free(&r);

	/* a W3C traceparent's trace id becomes the correlation id */
	const char *tp[] = {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL};
	http("POST", "/v1/workflows/plain/runs", "{}", tp, &r);
	assert_int_equal(r.status, 202);
	id = sl_strdup(jstr(r.json, "run_id"));
	resp_free(&r);
	wait_run(id);
	path = sl_asprintf("/v1/runs/%s", id);
	http("GET", path, NULL, NULL, &r);
	assert_string_equal(jstr(r.json, "correlation_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
	resp_free(&r);
	free(path);
	free(id);
	http("POST", "/v1/workflows/nosuch/runs", "{}", NULL, &r);
	assert_problem(&r, 404);
	resp_free(&r);
}

static void test_idempotency_key(void **state)
{
	(void)state;
	struct resp a, b;
	const char *hdr[] = {"Idempotency-Key: order-77", NULL};
	http("POST", "/v1/workflows/plain/runs", "{\"n\": 1}", hdr, &a);
	assert_int_equal(a.status, 202);
	http("POST", "/v1/workflows/plain/runs", "{\"n\": 1}", hdr, &b);
	assert_int_equal(b.status, 200);
	assert_string_equal(jstr(a.json, "run_id"), jstr(b.json, "run_id"));
	assert_true(json_is_true(json_object_get(b.json, "duplicate")));
	wait_run(jstr(a.json, "run_id"));
	resp_free(&a);
	resp_free(&b);
}

static void test_contract_pointers(void **state)
{
	(void)state;
	struct resp r;
	http("POST", "/v1/workflows/signed/runs", "{\"msg\": 5}", NULL, &r);
	assert_problem(&r, 400);
	json_t *errs = json_object_get(r.json, "errors");
	assert_true(json_array_size(errs) >= 1);
	assert_string_equal(jstr(json_array_get(errs, 0), "pointer"), "/msg");
	assert_non_null(jstr(json_array_get(errs, 0), "message"));
	resp_free(&r);
}

static void test_body_limit(void **state)
{
	(void)state;
	struct resp r;
	char *big = sl_xmalloc(8000);
	memset(big, ' ', 7999);
	big[0] = '{';
	big[7997] = '}';
	big[7998] = '\0';
	http("POST", "/v1/workflows/plain/runs", big, NULL, &r);
	assert_problem(&r, 413);
	resp_free(&r);
	/* no Content-Length: the cap is found while reading */
	const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
	http("POST", "/v1/workflows/plain/runs", big, chunked, &r);
	assert_problem(&r, 413);
	resp_free(&r);
	free(big);
	/* under the cap, chunked is fine */
	http("POST", "/v1/workflows/plain/runs", "{\"small\": true}", chunked, &r);
	assert_int_equal(r.status, 202);
	wait_run(jstr(r.json, "run_id"));
	resp_free(&r);
}

static void test_cursor_paging(void **state)
{
	(void)state;
	struct resp r;
	for (int i = 0; i < 7; i++) {
		char body[32];
		snprintf(body, sizeof body, "{\"page\": %d}", i);
		http("POST", "/v1/workflows/plain/runs", body, NULL, &r);
		assert_int_equal(r.status, 202);
		resp_free(&r);
	}
	http("GET", "/v1/runs?workflow=plain&limit=500", NULL, NULL, &r);
	size_t total = json_array_size(json_object_get(r.json, "runs"));
	assert_true(total >= 7);
	resp_free(&r);

	json_t *seen = json_object();
	char *cursor = NULL;
	int pages = 0;
	do {
		char *path = cursor ? sl_asprintf("/v1/runs?workflow=plain&limit=3&cursor=%s", cursor)
				    : sl_strdup("/v1/runs?workflow=plain&limit=3");
		http("GET", path, NULL, NULL, &r);
		free(path);
		assert_int_equal(r.status, 200);
		json_t *runs = json_object_get(r.json, "runs");
		assert_true(json_array_size(runs) <= 3);
		size_t i;
		json_t *run;
		json_array_foreach(runs, i, run)
		{
			assert_null(json_object_get(seen, jstr(run, "id")));
			json_object_set_new(seen, jstr(run, "id"), json_true());
		}
		free(cursor);
		cursor = sl_strdup(jstr(r.json, "next_cursor"));
		resp_free(&r);
		pages++;
	} while (cursor && pages < 100);
	assert_int_equal(json_object_size(seen), total);
	assert_true(pages >= 3);
	json_decref(seen);

	http("GET", "/v1/runs?status=bogus", NULL, NULL, &r);
	assert_problem(&r, 400);
	resp_free(&r);
	http("GET", "/v1/runs?limit=0", NULL, NULL, &r);
	assert_problem(&r, 400);
	resp_free(&r);
	http("GET", "/v1/runs?status=completed&limit=2", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

static void test_cancel(void **state)
{
	(void)state;
	struct resp r;
	http("POST", "/v1/workflows/nap/runs", "{}", NULL, &r);
	assert_int_equal(r.status, 202);
	char *path = sl_asprintf("/v1/runs/%s/cancel", jstr(r.json, "run_id"));
	resp_free(&r);
	http("POST", path, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(jstr(r.json, "status"), "cancelled");
	resp_free(&r);
	http("POST", path, NULL, NULL, &r);
	assert_problem(&r, 409);
	resp_free(&r);
	free(path);
	http("POST", "/v1/runs/run_NOPE/cancel", NULL, NULL, &r);
	assert_problem(&r, 404);
	resp_free(&r);
}

static char *dead_run(void)
{
	struct resp r;
	http("POST", "/v1/workflows/dead/runs", "{}", NULL, &r);
	assert_int_equal(r.status, 202);
	char *id = sl_strdup(jstr(r.json, "run_id"));
	resp_free(&r);
	wait_run(id);
	assert_int_equal(sl_store_run_status(fx.s, id), SL_RUN_DEAD);
	return id;
}

static void test_dlq(void **state)
{
	(void)state;
	struct resp r;
	char *id = dead_run();
	http("GET", "/v1/dlq?workflow=dead&step=boom&error_class=permanent", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	json_t *entries = json_object_get(r.json, "entries");
	if (json_array_size(entries) == 0) { /* the class of a jq error may differ: list by workflow */
		resp_free(&r);
		http("GET", "/v1/dlq?workflow=dead", NULL, NULL, &r);
		entries = json_object_get(r.json, "entries");
	}
	assert_int_equal(json_array_size(entries), 1);
	json_t *e = json_array_get(entries, 0);
	assert_string_equal(jstr(e, "run_id"), id);
	char *dlq_id = sl_strdup(jstr(e, "id"));
	resp_free(&r);

	http("GET", "/v1/dlq?error_class=nope", NULL, NULL, &r);
	assert_problem(&r, 400);
	resp_free(&r);
	http("GET", "/v1/dlq?since=yesterday", NULL, NULL, &r);
	assert_problem(&r, 400);
	resp_free(&r);
	http("GET", "/v1/dlq?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z&workflow=dead", NULL, NULL, &r);
	assert_int_equal(json_array_size(json_object_get(r.json, "entries")), 1);
	resp_free(&r);

	char *path = sl_asprintf("/v1/dlq/%s/replay", dlq_id);
	http("POST", path, "{\"version\": \"sideways\"}", NULL, &r);
	assert_problem(&r, 400);
	resp_free(&r);
	http("POST", path, "{\"input\": {\"fix\": true}, \"version\": \"own\"}", NULL, &r);
	assert_int_equal(r.status, 202);
	assert_string_equal(jstr(r.json, "run_id"), id);
	resp_free(&r);
	wait_run(id);
	assert_int_equal(sl_store_run_status(fx.s, id), SL_RUN_COMPLETED);
	http("POST", path, NULL, NULL, &r);
	assert_problem(&r, 409);
	resp_free(&r);
	free(path);
	http("POST", "/v1/dlq/dlq_NOPE/replay", NULL, NULL, &r);
	assert_true(r.status == 404 || r.status == 409);
	resp_free(&r);

	/* bulk: two more dead runs, replayed by filter with a fixed input */
	char *d1 = dead_run(), *d2 = dead_run();
	http("GET", "/v1/dlq?workflow=dead&limit=1", NULL, NULL, &r);
	assert_int_equal(json_integer_value(json_object_get(r.json, "total")), 2); /* the filter's, not the page's */
	resp_free(&r);
	/* page by page, as `sluice dlq replay --all` does, following next_cursor */
	http("POST", "/v1/dlq/replay?workflow=dead&limit=1", "{\"input\": {\"fix\": true}}", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "matched")), 2);
	assert_int_equal(json_integer_value(json_object_get(r.json, "replayed")), 1);
	assert_int_equal(json_array_size(json_object_get(r.json, "failed")), 0);
	char *next = sl_asprintf("/v1/dlq/replay?workflow=dead&limit=1&cursor=%s", jstr(r.json, "next_cursor"));
	resp_free(&r);
	http("POST", next, "{\"input\": {\"fix\": true}}", NULL, &r);
	free(next);
	assert_int_equal(json_integer_value(json_object_get(r.json, "replayed")), 1);
	assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
	resp_free(&r);
	wait_run(d1);
	wait_run(d2);
	assert_int_equal(sl_store_run_status(fx.s, d1), SL_RUN_COMPLETED);
	assert_int_equal(sl_store_run_status(fx.s, d2), SL_RUN_COMPLETED);
	http("POST", "/v1/dlq/replay?workflow=dead", NULL, NULL, &r);
	assert_int_equal(json_integer_value(json_object_get(r.json, "replayed")), 0);
	resp_free(&r);
	free(d1);
	free(d2);
	free(dlq_id);
	free(id);
}

static void test_openapi_in_step(void **state)
{
	(void)state;
	struct resp r;
	http("GET", "/v1/openapi.json", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(r.json);
	assert_string_equal(jstr(r.json, "openapi"), "3.1.0");
	json_t *paths = json_object_get(r.json, "paths");
	size_t n;
	const struct sl_server_route *rt = sl_server_routes(&n);
	/* every route is documented */
	for (size_t i = 0; i < n; i++) {
		char m[8];
		size_t k;
		for (k = 0; rt[i].method[k] && k < sizeof m - 1; k++)
			m[k] = (char)tolower((unsigned char)rt[i].method[k]);
		m[k] = '\0';
		json_t *p = json_object_get(paths, rt[i].path);
		if (!p || !json_object_get(p, m))
			fail_msg("route %s %s is not in openapi.json", rt[i].method, rt[i].path);
	}
	/* every documented operation is a route */
	const char *path;
	json_t *ops;
	json_object_foreach(paths, path, ops)
	{
		const char *method;
		json_t *op;
		json_object_foreach(ops, method, op)
		{
			bool found = false;
			for (size_t i = 0; i < n; i++)
				if (strcmp(rt[i].path, path) == 0 && strcasecmp(rt[i].method, method) == 0)
					found = true;
			if (!found)
				fail_msg("openapi.json documents %s %s, which no route serves", method, path);
		}
	}
	resp_free(&r);
}

/* ---- overload: max_inflight 1, a slow sender holds the only slot ---------------- */

static void test_overload(void **state)
{
	(void)state;
	struct sl_server *s2 = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_server_opts o = {.listen = "127.0.0.1:0", .max_inflight = 1, .conn_timeout_s = 1};
	assert_int_equal(sl_server_start(fx.e, &o, &s2, &err), 0);
	int port = sl_server_port(s2);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	const char *head = "POST /v1/workflows/plain/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
			   "Content-Length: 100\r\n\r\n{";
	assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
	usleep(200 * 1000);
	struct resp r;
	http_port(port, "GET", "/v1/workflows", NULL, 0, NULL, &r);
	assert_problem(&r, 429);
	assert_string_equal(r.retry_after, "1");
	resp_free(&r);
	http_port(port, "GET", "/healthz", NULL, 0, NULL, &r); /* probes are exempt */
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* the slow sender is cut off by the connection timeout (1 s) */
	struct timeval tv = {.tv_sec = 4};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	int64_t t0 = sl_mono_ms();
	char buf[256];
	ssize_t got = read(fd, buf, sizeof buf);
	assert_true(got <= 0);
	assert_true(sl_mono_ms() - t0 < 3500);
	close(fd);
	/* the slot comes back */
	long st = 0;
	for (int i = 0; i < 50 && st != 200; i++) {
		usleep(50 * 1000);
		http_port(port, "GET", "/healthz", NULL, 0, NULL, &r);
		st = r.status;
		resp_free(&r);
	}
	assert_int_equal(st, 200);
	sl_server_stop(s2);
}

/* ---- webhooks ------------------------------------------------------------------------ */

static void sign_hex(const char *secret, const char *prefix, const char *body, char out[65])
{
	char *msg = sl_asprintf("%s%s", prefix ? prefix : "", body);
	unsigned char mac[32];
	sl_hmac_sha256(secret, strlen(secret), msg, strlen(msg), mac);
	sl_hex(mac, 32, out);
	free(msg);
}

static void post_github(const char *secret, const char *body, const char *delivery, bool flip, struct resp *r)
{
	char hex[65];
	sign_hex(secret, NULL, body, hex);
	if (flip)
		hex[10] = hex[10] == 'a' ? 'b' : 'a';
	char sig[128], del[128];
	snprintf(sig, sizeof sig, "X-Hub-Signature-256: sha256=%s", hex);
	snprintf(del, sizeof del, "X-GitHub-Delivery: %s", delivery);
	const char *hdr[] = {sig, del, NULL};
	http("POST", "/hooks/signed", body, hdr, r);
}

static void post_stripe(const char *secret, const char *body, int64_t ts, struct resp *r)
{
	char hex[65], prefix[40], sig[160];
	snprintf(prefix, sizeof prefix, "%lld.", (long long)ts);
	sign_hex(secret, prefix, body, hex);
	snprintf(sig, sizeof sig, "Stripe-Signature: t=%lld,v1=%s", (long long)ts, hex);
	const char *hdr[] = {sig, NULL};
	http("POST", "/hooks/signed", body, hdr, r);
}

static void assert_401(struct resp *r, const char *detail)
{
	assert_problem(r, 401);
	assert_string_equal(jstr(r->json, "detail"), detail);
	resp_free(r);
}

static void test_webhook_github(void **state)
{
	(void)state;
	struct resp a, b;
	const char *body = "{\"msg\": \"hello\"}";
	post_github(SECRET, body, "gh-1", false, &a);
	assert_int_equal(a.status, 202);
	const char *id = jstr(a.json, "run_id");
	assert_non_null(id);
	/* replayed delivery id: the first run's id, no second run */
	post_github(SECRET, body, "gh-1", false, &b);
	assert_int_equal(b.status, 200);
	assert_string_equal(jstr(b.json, "run_id"), id);
	resp_free(&b);
	wait_run(id);
	assert_int_equal(sl_store_run_status(fx.s, id), SL_RUN_COMPLETED);
	resp_free(&a);

	post_github(SECRET, body, "gh-2", true, &b); /* flipped byte */
	assert_401(&b, "signature invalid");
	post_github("wrong-secret", body, "gh-3", false, &b);
	assert_401(&b, "signature invalid");
	post_github(SECRET_PREV, body, "gh-4", false, &b); /* rotation */
	assert_int_equal(b.status, 202);
	resp_free(&b);

	/* body changed after signing */
	char hex[65], sig[128];
	sign_hex(SECRET, NULL, body, hex);
	snprintf(sig, sizeof sig, "X-Hub-Signature-256: sha256=%s", hex);
	const char *hdr[] = {sig, NULL};
	http("POST", "/hooks/signed", "{\"msg\": \"hellO\"}", hdr, &b);
	assert_401(&b, "signature invalid");
	const char *bad[] = {"X-Hub-Signature-256: sha256=zz", NULL};
	http("POST", "/hooks/signed", body, bad, &b);
	assert_401(&b, "signature invalid");

	http("POST", "/hooks/signed", body, NULL, &b); /* missing header */
	assert_401(&b, "signature missing");

	/* a valid signature over a body that breaks the contract */
	post_github(SECRET, "{\"msg\": 1}", "gh-5", false, &b);
	assert_problem(&b, 400);
	assert_string_equal(jstr(json_array_get(json_object_get(b.json, "errors"), 0), "pointer"), "/msg");
	resp_free(&b);
}

static void test_webhook_stripe(void **state)
{
	(void)state;
	struct resp a, b;
	const char *body = "{\"id\": \"evt_1\", \"msg\": \"paid\"}";
	int64_t now = sl_now_ms() / 1000;
	post_stripe(SECRET, body, now, &a);
	assert_int_equal(a.status, 202);
	post_stripe(SECRET, body, now, &b); /* the same event id */
	assert_int_equal(b.status, 200);
	assert_string_equal(jstr(a.json, "run_id"), jstr(b.json, "run_id"));
	resp_free(&b);
	wait_run(jstr(a.json, "run_id"));
	resp_free(&a);

	/* The server compares whole seconds: take now early in a second, so a
	 * tick before its check cannot turn "301 s ahead" into 300. */
	while (sl_now_ms() % 1000 >= 500)
		usleep(20000);
	now = sl_now_ms() / 1000;
	post_stripe(SECRET, body, now - 301, &b);
	assert_401(&b, "timestamp outside tolerance");
	post_stripe(SECRET, body, now + 301, &b);
	assert_401(&b, "timestamp outside tolerance");
	post_stripe("wrong-secret", body, now, &b);
	assert_401(&b, "signature invalid");
	post_stripe(SECRET_PREV, "{\"id\": \"evt_2\", \"msg\": \"x\"}", now, &b);
	assert_int_equal(b.status, 202);
	resp_free(&b);
	const char *hdr[] = {"Stripe-Signature: v1=abc", NULL};
	http("POST", "/hooks/signed", body, hdr, &b);
	assert_401(&b, "signature invalid");
}

static void test_webhook_open_and_unknown(void **state)
{
	(void)state;
	struct resp r;
	const char *hdr[] = {"X-Delivery-Id: open-1", NULL};
	http("POST", "/hooks/open", "{\"a\": 1}", hdr, &r);
	assert_int_equal(r.status, 202);
	char *id = sl_strdup(jstr(r.json, "run_id"));
	resp_free(&r);
	http("POST", "/hooks/open", "{\"a\": 2}", hdr, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(jstr(r.json, "run_id"), id);
	resp_free(&r);
	wait_run(id);
	free(id);
	http("POST", "/hooks/none", "{}", NULL, &r);
	assert_problem(&r, 404);
	resp_free(&r);
	http("GET", "/hooks/open", NULL, NULL, &r);
	assert_problem(&r, 405);
	resp_free(&r);
}

static void test_listen_errors(void **state)
{
	(void)state;
	struct sl_server *s2 = NULL;
	struct sl_err err;
	const char *bad[] = {"nohost", "127.0.0.1:99999", "127.0.0.1:x", "example.com:80", ":80", "[::1:80", "[nope]:80",
			     "::1:80"};
	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
		sl_err_clear(&err);
		struct sl_server_opts o = {.listen = bad[i]};
		assert_int_not_equal(sl_server_start(fx.e, &o, &s2, &err), 0);
		assert_null(s2);
		assert_true(err.msg[0] != '\0');
	}
	sl_server_stop(NULL);
}

/* listen: [::1]:PORT binds IPv6 loopback (skipped where the kernel has none). */
static void test_listen_ipv6(void **state)
{
	(void)state;
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	bool have6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
	if (probe >= 0)
		close(probe);
	if (!have6)
		skip();
	struct sl_server *s6 = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_server_opts o = {.listen = "[::1]:0"};
	assert_int_equal(sl_server_start(fx.e, &o, &s6, &err), 0);
	int port = sl_server_port(s6);
	assert_true(port > 0);
	CURL *c = curl_easy_init();
	char *url = sl_asprintf("http://[::1]:%d/healthz", port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	struct resp r = {0};
	sl_buf_init(&r.body, SL_BUF_MAX_HTTP_BODY);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	CURLcode rc = curl_easy_perform(c);
	if (rc)
		fprintf(stderr, "curl: %s\n", curl_easy_strerror(rc));
	assert_int_equal(rc, CURLE_OK);
	sl_buf_free(&r.body);
	long st = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	assert_int_equal(st, 200);
	curl_easy_cleanup(c);
	free(url);
	sl_server_stop(s6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health_and_problems),
		cmocka_unit_test(test_workflows),
		cmocka_unit_test(test_start_and_get),
		cmocka_unit_test(test_idempotency_key),
		cmocka_unit_test(test_contract_pointers),
		cmocka_unit_test(test_body_limit),
		cmocka_unit_test(test_cursor_paging),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_dlq),
		cmocka_unit_test(test_openapi_in_step),
		cmocka_unit_test(test_overload),
		cmocka_unit_test(test_webhook_github),
		cmocka_unit_test(test_webhook_stripe),
		cmocka_unit_test(test_webhook_open_and_unknown),
		cmocka_unit_test(test_listen_errors),
		cmocka_unit_test(test_listen_ipv6),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
