/* test_connector.c: the registry, config checks, the http type against an
 * in-process libmicrohttpd server on 127.0.0.1, and the file type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connector/connector.h"
#include "util/util.h"

/* ---- capturing config problems ---------------------------------------------------- */

#define CAP_MAX 32
struct capture {
	int n;
	char ptr[CAP_MAX][256];
	char msg[CAP_MAX][SL_ERR_MSG_MAX];
};
static struct capture cap;

static void cap_report(struct sl_conf_ctx *ctx, const char *pointer, const char *msg)
{
	(void)ctx;
	if (cap.n < CAP_MAX) {
		snprintf(cap.ptr[cap.n], sizeof cap.ptr[0], "%s", pointer);
		snprintf(cap.msg[cap.n], sizeof cap.msg[0], "%s", msg);
	}
	cap.n++;
}

static void cap_locate(struct sl_conf_ctx *ctx, const char *pointer, int *line, int *col)
{
	(void)ctx;
	(void)pointer;
	*line = 3;
	*col = 7;
}

static char tmpdir[64];

static struct sl_conf_ctx mkctx(bool resolve)
{
	memset(&cap, 0, sizeof cap);
	struct sl_conf_ctx ctx = {
		.file = "connectors/test.yaml",
		.project_dir = tmpdir,
		.resolve_secrets = resolve,
		.report_fn = cap_report,
		.locate_fn = cap_locate,
	};
	return ctx;
}

/* True when some captured message holds needle (at pointer, if given). */
static bool cap_has(const char *pointer, const char *needle)
{
	for (int i = 0; i < cap.n && i < CAP_MAX; i++)
		if ((!pointer || strcmp(cap.ptr[i], pointer) == 0) && strstr(cap.msg[i], needle))
			return true;
	return false;
}

static void cap_dump(void)
{
	for (int i = 0; i < cap.n && i < CAP_MAX; i++)
		fprintf(stderr, "  conf: %s: %s\n", cap.ptr[i], cap.msg[i]);
}

static struct sl_connector *load_ctx(const char *text, struct sl_conf_ctx *ctx)
{
	json_error_t je;
	json_t *doc = json_loads(text, 0, &je);
	if (!doc)
		fprintf(stderr, "bad test JSON: %s: %s\n", je.text, text);
	assert_non_null(doc);
	struct sl_connector *c = sl_connector_new(doc, ctx);
	json_decref(doc);
	return c;
}

static struct sl_connector *load(const char *text)
{
	struct sl_conf_ctx ctx = mkctx(true);
	struct sl_connector *c = load_ctx(text, &ctx);
	if (!c)
		cap_dump();
	assert_non_null(c);
	return c;
}

static int call(struct sl_connector *c, const char *action, const char *input_json, const char *key,
		json_t **out, struct sl_err *err)
{
	const struct sl_action *a = sl_connector_action(c, action);
	assert_non_null(a);
	json_t *in = input_json ? json_loads(input_json, JSON_DECODE_ANY, NULL) : json_null();
	assert_non_null(in);
	struct sl_call cl = {.input = in, .idempotency_key = key, .correlation_id = "corr-1"};
	struct sl_call_result res;
	int rc = sl_connector_call(c, a, &cl, &res, err);
	json_decref(in);
	*out = res.output;
	return rc;
}

/* ---- an in-process HTTP server ------------------------------------------------------- */

struct req {
	char uri[4096]; /* raw, as sent: the path and the query, still encoded */
	bool started;
	struct sl_buf body;
};

static struct MHD_Daemon *daemon_;
static int port;
static atomic_bool stopping;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
	(void)cls;
	(void)con;
	struct req *r = calloc(1, sizeof *r);
	snprintf(r->uri, sizeof r->uri, "%s", uri);
	sl_buf_init(&r->body, 1 << 20);
	return r;
}

static void on_done(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode t)
{
	(void)cls;
	(void)con;
	(void)t;
	struct req *r = *con_cls;
	if (r) {
		sl_buf_free(&r->body);
		free(r);
	}
	*con_cls = NULL;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	char name[128];
	size_t i;
	for (i = 0; key[i] && i < sizeof name - 1; i++)
		name[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
	name[i] = '\0';
	json_object_set_new(cls, name, json_string(value ? value : ""));
	return MHD_YES;
}

static enum MHD_Result reply(struct MHD_Connection *con, unsigned status, const char *ctype, const char *body,
			     const char *h1, const char *v1)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (ctype)
		MHD_add_response_header(resp, "Content-Type", ctype);
	if (h1)
		MHD_add_response_header(resp, h1, v1);
	enum MHD_Result rc = MHD_queue_response(con, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result reply_json(struct MHD_Connection *con, unsigned status, json_t *v, const char *h1,
				  const char *v1)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(v);
	enum MHD_Result rc = reply(con, status, "application/json", s, h1, v1);
	free(s);
	return rc;
}

static ssize_t big_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	(void)pos;
	memset(buf, 'a', max);
	return (ssize_t)max;
}

static enum MHD_Result route(struct MHD_Connection *con, struct req *r, const char *method)
{
	const char *path = r->uri;
	if (sl_str_startswith(path, "/echo")) {
		json_t *h = json_object();
		MHD_get_connection_values(con, MHD_HEADER_KIND, add_header, h);
		json_t *body = r->body.len ? json_loadb(r->body.p, r->body.len, JSON_DECODE_ANY, NULL) : json_null();
		return reply_json(con, 200,
				  json_pack("{s:s, s:s, s:o, s:o?, s:s%}", "method", method, "uri", r->uri, "headers", h,
					    "body", body, "raw_body", r->body.p ? r->body.p : "", r->body.len),
				  NULL, NULL);
	}
	if (sl_str_startswith(path, "/status/")) {
		int st = atoi(path + 8); /* test code: the path is ours */
		const char *auth = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
		const char *key = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "X-Api-Key");
		json_t *v = json_pack("{s:s, s:s?, s:s?}", "error", "nope", "auth", auth, "key", key);
		if (st == 429)
			return reply_json(con, (unsigned)st, v, "Retry-After", "2");
		if (st == 503)
			return reply_json(con, (unsigned)st, v, "Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT");
		return reply_json(con, (unsigned)st, v, NULL, NULL);
	}
	if (strcmp(path, "/slow") == 0) {
		for (int i = 0; i < 100 && !atomic_load(&stopping); i++)
			usleep(10000);
		return reply(con, 200, "application/json", "{\"slow\":true}", NULL, NULL);
	}
	if (strcmp(path, "/empty") == 0)
		return reply(con, 204, NULL, "", NULL, NULL);
	if (strcmp(path, "/text") == 0)
		return reply(con, 200, "text/plain", "hello text", NULL, NULL);
	if (strcmp(path, "/headers") == 0)
		return reply(con, 200, "application/json", "{\"ok\":true}", "X-Total", "42");
	if (strcmp(path, "/big") == 0) {
		struct MHD_Response *resp =
			MHD_create_response_from_callback(SL_BUF_MAX_HTTP_BODY + 4096, 64 * 1024, big_body, NULL, NULL);
		enum MHD_Result rc = MHD_queue_response(con, 200, resp);
		MHD_destroy_response(resp);
		return rc;
	}
	return reply(con, 404, "text/plain", "no such route", NULL, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)url;
	(void)version;
	struct req *r = *con_cls;
	if (!r->started) {
		r->started = true;
		return MHD_YES;
	}
	if (*upload_size) {
		sl_buf_add(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	return route(con, r, method);
}

static void server_start(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	atomic_store(&stopping, false);
	daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
				   on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_URI_LOG_CALLBACK, on_uri,
				   NULL, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
	assert_non_null(daemon_);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
	port = info->port;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/sl_conn_XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	server_start();
	sl_log_set_level(SL_LOG_OFF);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	atomic_store(&stopping, true);
	MHD_stop_daemon(daemon_);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* A connector document for the test server with one action. The server is
 * on loopback, which a connector reaches only when allow_hosts says so. */
static struct sl_connector *http_conn(const char *extra, const char *actions)
{
	char doc[4096];
	snprintf(doc, sizeof doc,
		 "{\"connector\": \"svc\", \"type\": \"http\", \"base_url\": \"http://127.0.0.1:%d/\", "
		 "\"allow_hosts\": [\"127.0.0.1\"]%s%s, "
		 "\"actions\": %s}",
		 port, extra && *extra ? ", " : "", extra ? extra : "", actions);
	return load(doc);
}

/* ---- registry and small functions ---------------------------------------------------------- */

static void test_registry(void **state)
{
	(void)state;
	const struct sl_connector_type *h = sl_connector_type_find("http");
	const struct sl_connector_type *f = sl_connector_type_find("file");
	assert_non_null(h);
	assert_non_null(f);
	assert_string_equal(h->name, "http");
	assert_null(sl_connector_type_find("htp"));
	assert_null(sl_connector_type_find(NULL));
	const char *const *names = sl_connector_type_names();
	int n = 0;
	for (; names[n]; n++)
		assert_non_null(sl_connector_type_find(names[n]));
	assert_int_equal(n, 5); /* http, file, redis_stream, nats, kafka */
	assert_non_null(f->builtin_actions);
	assert_null(h->poll_fn);
	assert_non_null(f->poll_fn);
}

static void test_effects_and_classes(void **state)
{
	(void)state;
	assert_string_equal(sl_effect_name(SL_EFFECT_WRITE), "write");
	assert_int_equal(sl_effect_parse("delete"), SL_EFFECT_DELETE);
	assert_int_equal(sl_effect_parse("del"), -1);
	assert_int_equal(sl_effect_parse(NULL), -1);
	assert_int_equal(sl_http_status_class(200), SL_CLASS_NONE);
	assert_int_equal(sl_http_status_class(302), SL_CLASS_NONE);
	assert_int_equal(sl_http_status_class(400), SL_CLASS_PERMANENT);
	assert_int_equal(sl_http_status_class(404), SL_CLASS_PERMANENT);
	assert_int_equal(sl_http_status_class(401), SL_CLASS_AUTH);
	assert_int_equal(sl_http_status_class(403), SL_CLASS_AUTH);
	assert_int_equal(sl_http_status_class(408), SL_CLASS_TRANSIENT);
	assert_int_equal(sl_http_status_class(425), SL_CLASS_TRANSIENT);
	assert_int_equal(sl_http_status_class(429), SL_CLASS_TRANSIENT);
	assert_int_equal(sl_http_status_class(500), SL_CLASS_TRANSIENT);
	assert_int_equal(sl_http_status_class(503), SL_CLASS_TRANSIENT);
}

static void test_retry_after(void **state)
{
	(void)state;
	int64_t now = 784111777000; /* Sun, 06 Nov 1994 08:49:37 GMT */
	assert_int_equal(sl_retry_after_parse("2", now), 2000);
	assert_int_equal(sl_retry_after_parse(" 0 ", now), 0);
	assert_int_equal(sl_retry_after_parse("Sun, 06 Nov 1994 08:49:47 GMT", now), 10000);
	assert_int_equal(sl_retry_after_parse("Sunday, 06-Nov-94 08:49:40 GMT", now), 3000);
	assert_int_equal(sl_retry_after_parse("Sun Nov  6 08:49:38 1994", now), 1000);
	assert_int_equal(sl_retry_after_parse("Sat, 05 Nov 1994 08:49:37 GMT", now), 0); /* past */
	assert_int_equal(sl_retry_after_parse("99999999999999999999", now), 86400 * 1000); /* clamped */
	assert_int_equal(sl_retry_after_parse("-1", now), -1);
	assert_int_equal(sl_retry_after_parse("1.5", now), -1);
	assert_int_equal(sl_retry_after_parse("", now), -1);
	assert_int_equal(sl_retry_after_parse("soon", now), -1);
	assert_int_equal(sl_retry_after_parse(NULL, now), -1);
	assert_int_equal(sl_retry_after_parse("Sun, 06 Nov 1994 08:49:47 GMT trailing", now), -1);
}

/* ---- config checks ------------------------------------------------------------------------- */

static void test_conf_check_keys(void **state)
{
	(void)state;
	static const struct sl_conf_key keys[] = {
		{"base_url", SL_CONF_STRING, true, ""},   {"timeout", SL_CONF_DURATION, false, ""},
		{"retries", SL_CONF_INT, false, ""},      {"verbose", SL_CONF_BOOL, false, ""},
		{"expr", SL_CONF_JQ, false, ""},          {NULL, 0, false, NULL},
	};
	struct sl_conf_ctx ctx = mkctx(false);
	json_t *o = json_pack("{s:s, s:s, s:s, s:[]}", "base_ur", "x", "timeout", "10 parsecs", "retries", "3",
			      "verbose", "x");
	int n = sl_conf_check_keys(&ctx, o, "/conn", keys);
	assert_int_equal(n, 5);
	assert_int_equal(ctx.nerrors, 5);
	assert_true(cap_has("/conn/base_ur", "unknown key \"base_ur\" (did you mean \"base_url\"?)"));
	assert_true(cap_has("/conn/timeout", "must be a duration"));
	assert_true(cap_has("/conn/retries", "must be an integer, not a string"));
	assert_true(cap_has("/conn/verbose", "must be true or false, not a list"));
	assert_true(cap_has("/conn", "missing required key \"base_url\""));
	json_decref(o);

	ctx = mkctx(false);
	o = json_pack("{s:s, s:i, s:b, s:s, s:s}", "base_url", "http://x", "timeout", 500, "verbose", 1, "expr", ".a",
		      "zzzzzz", "x");
	assert_int_equal(sl_conf_check_keys(&ctx, o, "", keys), 1);
	assert_true(cap_has("/zzzzzz", "unknown key \"zzzzzz\""));
	assert_false(cap_has(NULL, "did you mean"));
	json_decref(o);

	ctx = mkctx(false);
	o = json_string("x");
	assert_int_equal(sl_conf_check_keys(&ctx, o, "/a~1b", keys), 1);
	assert_true(cap_has("/a~1b", "expected a mapping, got a string"));
	json_decref(o);

	/* Pointers escape ~ and / (RFC 6901). */
	ctx = mkctx(false);
	o = json_pack("{s:s, s:i}", "base_url", "x", "a/b~c", 1);
	sl_conf_check_keys(&ctx, o, "/actions", keys);
	assert_true(cap_has("/actions/a~1b~0c", "unknown key"));
	json_decref(o);

	struct sl_expr_origin origin;
	int line = 0, col = 0;
	sl_conf_origin(&ctx, "/x", "what", &origin, &line, &col);
	assert_int_equal(line, 3);
	assert_int_equal(col, 7);
	assert_string_equal(origin.file, "connectors/test.yaml");
	assert_string_equal(origin.what, "what");
}

static void expect_load_error(const char *doc, const char *pointer, const char *needle)
{
	struct sl_conf_ctx ctx = mkctx(true);
	struct sl_connector *c = load_ctx(doc, &ctx);
	if (c || !cap_has(pointer, needle)) {
		fprintf(stderr, "want \"%s\" at %s for %s\n", needle, pointer ? pointer : "*", doc);
		cap_dump();
	}
	assert_null(c);
	assert_true(cap_has(pointer, needle));
}

static void test_connector_new_errors(void **state)
{
	(void)state;
	expect_load_error("{\"connector\":\"a\",\"type\":\"htp\",\"base_url\":\"http://x\"}", "/type",
			  "unknown connector type \"htp\" (did you mean \"http\"?)");
	expect_load_error("{\"type\":\"http\",\"base_url\":\"http://x\"}", "", "missing required key \"connector\"");
	expect_load_error("{\"connector\":\"a.b\",\"type\":\"http\",\"base_url\":\"http://x\"}", "/connector",
			  "may hold only");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\",\"timeot\":\"1s\"}",
			  "/timeot", "did you mean \"timeout\"");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"ftp://x\"}", "/base_url",
			  "must start with http");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://u:p@x\"}", "/base_url",
			  "may not hold credentials");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"actions\":{\"get\":{\"path\":\"/x\"}}}",
			  "/actions/get", "missing required key \"effect\"");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"actions\":{\"get\":{\"effect\":\"reed\"}}}",
			  "/actions/get/effect", "did you mean \"read\"");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"actions\":{\"get\":{\"effect\":\"read\",\"methd\":\"GET\"}}}",
			  "/actions/get/methd", "did you mean \"method\"");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"actions\":{\"get\":{\"effect\":\"read\",\"method\":\"FETCH\"}}}",
			  "/actions/get/method", "unknown method");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"actions\":{\"get\":{\"effect\":\"read\",\"path\":\"/t/{id\"}}}",
			  "/actions/get/path", "placeholder");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"actions\":{\"get\":{\"effect\":\"read\",\"query\":\"{a: \"}}}",
			  "/actions/get/query", "connector a action get: query");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"actions\":{\"get\":{\"effect\":\"read\",\"timeout\":\"soon\"}}}",
			  "/actions/get/timeout", "must be a duration");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"auth\":{\"type\":\"bearer\",\"token\":\"sk-live-123456\"}}",
			  "/auth/token", "use env:NAME or file:PATH for secrets");
	assert_false(cap_has(NULL, "sk-live-123456")); /* the plain value is never echoed */
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"auth\":{\"type\":\"bearr\",\"token\":\"env:X\"}}",
			  "/auth/type", "did you mean \"bearer\"");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"headers\":{\"Authorization\":\"Bearer abc\"}}",
			  "/headers/Authorization", "plain value");
	expect_load_error("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
			  "\"auth\":{\"type\":\"bearer\",\"token\":\"env:SL_TEST_SURELY_UNSET\"}}",
			  "/auth/token", "SL_TEST_SURELY_UNSET is not set");
	expect_load_error("{\"connector\":\"f\",\"type\":\"file\",\"path\":\"x.csv\",\"format\":\"csv\"}", "",
			  "needs columns");
	expect_load_error("{\"connector\":\"f\",\"type\":\"file\",\"path\":\"x\",\"format\":\"xml\"}", "/format",
			  "unknown format");
	expect_load_error("{\"connector\":\"f\",\"type\":\"file\",\"path\":\"x\","
			  "\"actions\":{\"delete\":{\"effect\":\"delete\"}}}",
			  "/actions/delete", "only the actions append and read");
	expect_load_error("{\"connector\":\"f\",\"type\":\"file\",\"path\":\"x\","
			  "\"actions\":{\"append\":{\"effect\":\"read\"}}}",
			  "/actions/append/effect", "is a write action");

	/* Under `sluice check` a secret need not be set, only be a reference. */
	struct sl_conf_ctx ctx = mkctx(false);
	struct sl_connector *c = load_ctx("{\"connector\":\"a\",\"type\":\"http\",\"base_url\":\"http://x\","
					  "\"auth\":{\"type\":\"bearer\",\"token\":\"env:SL_TEST_SURELY_UNSET\"},"
					  "\"actions\":{\"get\":{\"effect\":\"read\"}}}",
					  &ctx);
	assert_non_null(c);
	assert_int_equal(ctx.nerrors, 0);
	sl_connector_free(c);
}

static void test_connector_model(void **state)
{
	(void)state;
	struct sl_connector *c = http_conn(NULL, "{\"tickets.get\": {\"effect\": \"read\", \"path\": \"/t/{id}\"},"
						 " \"tickets.delete\": {\"effect\": \"delete\", \"method\": \"delete\"}}");
	assert_string_equal(c->name, "svc");
	assert_int_equal(c->nactions, 2);
	const struct sl_action *a = sl_connector_action(c, "tickets.delete");
	assert_non_null(a);
	assert_int_equal(a->effect, SL_EFFECT_DELETE);
	assert_int_equal(a->line, 3);
	assert_null(sl_connector_action(c, "nope"));
	struct sl_poll_result pr;
	struct sl_err err;
	assert_int_not_equal(sl_connector_poll(c, a, NULL, 10, &pr, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	sl_connector_free(c);

	/* Built-in actions exist without an actions block. */
	char doc[512];
	snprintf(doc, sizeof doc, "{\"connector\":\"audit\",\"type\":\"file\",\"path\":\"%s/m.jsonl\"}", tmpdir);
	c = load(doc);
	assert_int_equal(c->nactions, 2);
	assert_int_equal(sl_connector_action(c, "append")->effect, SL_EFFECT_WRITE);
	assert_int_equal(sl_connector_action(c, "read")->effect, SL_EFFECT_READ);
	sl_connector_free(c);
}

/* ---- http ------------------------------------------------------------------------------------ */

static void test_http_request_shape(void **state)
{
	(void)state;
	struct sl_connector *c = http_conn(
		"\"headers\": {\"X-Tenant\": \"acme\"}",
		"{\"comment\": {\"effect\": \"write\", \"method\": \"POST\", \"path\": \"/echo/t/{id}/c/{who.name}\","
		" \"query\": \"{page: .page, tag: [\\\"a b\\\", \\\"c/d\\\"], skip: null}\","
		" \"body\": \"{text: .text}\", \"headers\": {\"X-Action\": \"1\"}},"
		" \"list\": {\"effect\": \"read\", \"path\": \"/echo/list\"},"
		" \"create\": {\"effect\": \"write\", \"method\": \"PUT\", \"path\": \"/echo/create\"}}");
	json_t *out = NULL;
	struct sl_err err;
	int rc = call(c, "comment", "{\"id\": \"a/b c\", \"who\": {\"name\": \"zoé\"}, \"page\": 2, \"text\": \"hi\"}",
		      "run1:step1", &out, &err);
	if (rc)
		fprintf(stderr, "%s\n", err.msg);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(out, "method")), "POST");
	assert_string_equal(json_string_value(json_object_get(out, "uri")),
			    "/echo/t/a%2Fb%20c/c/zo%C3%A9?page=2&tag=a%20b&tag=c%2Fd");
	json_t *body = json_object_get(out, "body");
	assert_string_equal(json_string_value(json_object_get(body, "text")), "hi");
	assert_int_equal(json_object_size(body), 1);
	json_t *h = json_object_get(out, "headers");
	assert_string_equal(json_string_value(json_object_get(h, "idempotency-key")), "run1:step1");
	assert_string_equal(json_string_value(json_object_get(h, "x-correlation-id")), "corr-1");
	assert_string_equal(json_string_value(json_object_get(h, "content-type")), "application/json");
	assert_string_equal(json_string_value(json_object_get(h, "accept")), "application/json");
	assert_string_equal(json_string_value(json_object_get(h, "user-agent")), "sluice/0.1");
	assert_string_equal(json_string_value(json_object_get(h, "x-tenant")), "acme");
	assert_string_equal(json_string_value(json_object_get(h, "x-action")), "1");
	assert_null(json_object_get(h, "expect"));
	json_decref(out);

	/* GET: no body, no Content-Type, no Idempotency-Key when none given. */
	rc = call(c, "list", "{\"x\": 1}", NULL, &out, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(out, "method")), "GET");
	assert_string_equal(json_string_value(json_object_get(out, "raw_body")), "");
	h = json_object_get(out, "headers");
	assert_null(json_object_get(h, "content-type"));
	assert_null(json_object_get(h, "idempotency-key"));
	json_decref(out);

	/* PUT without body: the input is the body. */
	rc = call(c, "create", "{\"title\": \"x\", \"n\": [1, 2]}", "k2", &out, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(out, "method")), "PUT");
	assert_string_equal(json_string_value(json_object_get(out, "raw_body")), "{\"title\":\"x\",\"n\":[1,2]}");
	json_decref(out);

	/* A missing placeholder field is a permanent error, before any request. */
	rc = call(c, "comment", "{\"who\": {\"name\": \"x\"}}", NULL, &out, &err);
	assert_int_not_equal(rc, 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	assert_non_null(strstr(err.msg, "{id}"));
	assert_null(out);
	/* An object where a path segment goes is one too. */
	rc = call(c, "comment", "{\"id\": {\"a\": 1}, \"who\": {\"name\": \"x\"}}", NULL, &out, &err);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	/* A control character in the key would inject a header. */
	rc = call(c, "list", NULL, "bad\r\nX-Evil: 1", &out, &err);
	assert_int_not_equal(rc, 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	sl_connector_free(c);
}

static void test_http_statuses(void **state)
{
	(void)state;
	struct sl_connector *c = http_conn(
		NULL, "{\"st\": {\"effect\": \"read\", \"path\": \"/status/{code}\", \"query\": \"{token: .q}\"},"
		      " \"ok\": {\"effect\": \"read\", \"path\": \"/headers\"}}");
	struct { int code; enum sl_class cls; int64_t retry; } cases[] = {
		{404, SL_CLASS_PERMANENT, -1}, {400, SL_CLASS_PERMANENT, -1}, {401, SL_CLASS_AUTH, -1},
		{403, SL_CLASS_AUTH, -1},      {429, SL_CLASS_TRANSIENT, 2000}, {503, SL_CLASS_TRANSIENT, 0},
		{500, SL_CLASS_TRANSIENT, -1}, {302, SL_CLASS_PERMANENT, -1},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		char in[128];
		snprintf(in, sizeof in, "{\"code\": %d, \"q\": \"query-secret\"}", cases[i].code);
		json_t *out = NULL;
		struct sl_err err;
		int rc = call(c, "st", in, NULL, &out, &err);
		assert_int_not_equal(rc, 0);
		assert_null(out);
		assert_int_equal(err.cls, cases[i].cls);
		assert_int_equal(err.http_status, cases[i].code);
		assert_int_equal(err.retry_after_ms, cases[i].retry);
		char want[128];
		snprintf(want, sizeof want, "GET http://127.0.0.1:%d/status/%d: HTTP %d", port, cases[i].code,
			 cases[i].code);
		if (!strstr(err.msg, want))
			fprintf(stderr, "msg: %s\n", err.msg);
		assert_non_null(strstr(err.msg, want));
		assert_null(strstr(err.msg, "query-secret")); /* the query is never quoted */
		if (cases[i].code != 302)
			assert_non_null(strstr(err.msg, "\"error\":\"nope\"")); /* the body's start is */
	}
	json_t *out = NULL;
	struct sl_err err;
	assert_int_equal(call(c, "ok", NULL, NULL, &out, &err), 0);
	assert_true(json_is_true(json_object_get(out, "ok")));
	json_decref(out);
	sl_connector_free(c);
}

static void test_http_output(void **state)
{
	(void)state;
	struct sl_connector *c = http_conn(
		NULL, "{\"h\": {\"effect\": \"read\", \"path\": \"/headers\","
		      " \"output\": \"{s: .status, total: (.headers[\\\"x-total\\\"] | tonumber), ok: .body.ok}\"},"
		      " \"empty\": {\"effect\": \"write\", \"method\": \"DELETE\", \"path\": \"/empty\"},"
		      " \"text\": {\"effect\": \"read\", \"path\": \"/text\"},"
		      " \"bad\": {\"effect\": \"read\", \"path\": \"/text\", \"output\": \".body.x\"},"
		      " \"big\": {\"effect\": \"read\", \"path\": \"/big\"}}");
	json_t *out = NULL;
	struct sl_err err;
	assert_int_equal(call(c, "h", NULL, NULL, &out, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "s")), 200);
	assert_int_equal(json_integer_value(json_object_get(out, "total")), 42);
	assert_true(json_is_true(json_object_get(out, "ok")));
	json_decref(out);
	assert_int_equal(call(c, "empty", NULL, NULL, &out, &err), 0);
	assert_true(json_is_null(out));
	json_decref(out);
	assert_int_equal(call(c, "text", NULL, NULL, &out, &err), 0);
	assert_string_equal(json_string_value(out), "hello text");
	json_decref(out);
	/* A jq error over the response is permanent. */
	assert_int_not_equal(call(c, "bad", NULL, NULL, &out, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	/* A body over the cap stops the transfer: permanent. */
	assert_int_not_equal(call(c, "big", NULL, NULL, &out, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	assert_non_null(strstr(err.msg, "larger than"));
	sl_connector_free(c);
}

static void test_http_timeout_and_refused(void **state)
{
	(void)state;
	struct sl_connector *c = http_conn("\"timeout\": \"5s\"",
					   "{\"slow\": {\"effect\": \"read\", \"path\": \"/slow\", \"timeout\": 200}}");
	json_t *out = NULL;
	struct sl_err err;
	int64_t t0 = sl_mono_ms();
	assert_int_not_equal(call(c, "slow", NULL, NULL, &out, &err), 0);
	assert_true(sl_mono_ms() - t0 < 900);
	assert_int_equal(err.cls, SL_CLASS_TRANSIENT);
	assert_int_equal(err.code, SL_ETIMEOUT);
	assert_non_null(strstr(err.msg, "timed out after 200 ms"));
	/* A call's own timeout wins over the action's. */
	const struct sl_action *a = sl_connector_action(c, "slow");
	struct sl_call cl = {.input = NULL, .timeout_ms = 100};
	struct sl_call_result res;
	assert_int_not_equal(sl_connector_call(c, a, &cl, &res, &err), 0);
	assert_non_null(strstr(err.msg, "timed out after 100 ms"));
	sl_connector_free(c);

	/* A port nobody listens on: refused, transient. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
	close(s);
	char doc[512];
	snprintf(doc, sizeof doc,
		 "{\"connector\":\"gone\",\"type\":\"http\",\"base_url\":\"http://127.0.0.1:%d\","
		 "\"allow_hosts\":[\"127.0.0.1\"],"
		 "\"actions\":{\"get\":{\"effect\":\"read\"}}}",
		 ntohs(sa.sin_port));
	c = load(doc);
	assert_int_not_equal(call(c, "get", NULL, NULL, &out, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_TRANSIENT);
	assert_int_equal(err.http_status, 0);
	sl_connector_free(c);
}

static void test_http_link_local(void **state)
{
	(void)state;
	const char *urls[] = {"http://169.254.169.254", "http://[fd00:ec2::254]", "http://100.100.100.200:8080",
			      "http://[::ffff:169.254.169.254]"}; /* more in test_ssrf.c */
	for (size_t i = 0; i < SL_ARRAY_LEN(urls); i++) {
		char doc[512];
		snprintf(doc, sizeof doc,
			 "{\"connector\":\"meta\",\"type\":\"http\",\"base_url\":\"%s\","
			 "\"actions\":{\"creds\":{\"effect\":\"read\",\"path\":\"/latest/meta-data/\"}}}",
			 urls[i]);
		struct sl_connector *c = load(doc);
		json_t *out = NULL;
		struct sl_err err;
		int64_t t0 = sl_mono_ms();
		assert_int_not_equal(call(c, "creds", NULL, NULL, &out, &err), 0);
		assert_true(sl_mono_ms() - t0 < 1000); /* refused before connecting */
		if (!strstr(err.msg, "is a cloud metadata endpoint: add it to allow_hosts to allow it"))
			fprintf(stderr, "%s: %s\n", urls[i], err.msg);
		assert_int_equal(err.cls, SL_CLASS_PERMANENT);
		assert_non_null(strstr(err.msg, "is a cloud metadata endpoint: add it to allow_hosts to allow it"));
		sl_connector_free(c);
	}
}

static void test_http_auth(void **state)
{
	(void)state;
	setenv("SL_TEST_TOKEN", "tok-9f8e7d6c5b4a", 1);
	setenv("SL_TEST_PW", "pw-s3cr3t-value", 1);
	char secret_file[128];
	snprintf(secret_file, sizeof secret_file, "%s/apikey.txt", tmpdir);
	FILE *f = fopen(secret_file, "w");
	fputs("key-from-file-1234\n", f);
	fclose(f);

	struct sl_connector *c = http_conn("\"auth\": {\"type\": \"bearer\", \"token\": \"env:SL_TEST_TOKEN\"}",
					   "{\"e\": {\"effect\": \"read\", \"path\": \"/echo\"},"
					   " \"deny\": {\"effect\": \"read\", \"path\": \"/status/401\"}}");
	json_t *out = NULL;
	struct sl_err err;
	assert_int_equal(call(c, "e", NULL, NULL, &out, &err), 0);
	json_t *h = json_object_get(out, "headers");
	assert_string_equal(json_string_value(json_object_get(h, "authorization")), "Bearer tok-9f8e7d6c5b4a");
	json_decref(out);
	/* The server echoes the credential in its error body: it must not reach
	 * the error message, the logs or the health record. */
	assert_int_not_equal(call(c, "deny", NULL, NULL, &out, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_AUTH);
	assert_null(strstr(err.msg, "tok-9f8e7d6c5b4a"));
	assert_non_null(strstr(err.msg, "Bearer ***"));
	struct sl_health health;
	sl_connector_health(c, &health);
	assert_null(strstr(health.last_error, "tok-9f8e7d6c5b4a"));
	sl_connector_free(c);

	c = http_conn("\"auth\": {\"type\": \"api_key\", \"value\": \"file:apikey.txt\"}",
		      "{\"e\": {\"effect\": \"read\", \"path\": \"/echo\"},"
		      " \"deny\": {\"effect\": \"read\", \"path\": \"/status/403\"}}");
	assert_int_equal(call(c, "e", NULL, NULL, &out, &err), 0);
	h = json_object_get(out, "headers");
	assert_string_equal(json_string_value(json_object_get(h, "x-api-key")), "key-from-file-1234");
	json_decref(out);
	assert_int_not_equal(call(c, "deny", NULL, NULL, &out, &err), 0);
	assert_null(strstr(err.msg, "key-from-file-1234"));
	sl_connector_free(c);

	c = http_conn("\"auth\": {\"type\": \"api_key\", \"header\": \"X-Token\", \"value\": \"env:SL_TEST_TOKEN\"}",
		      "{\"e\": {\"effect\": \"read\", \"path\": \"/echo\"}}");
	assert_int_equal(call(c, "e", NULL, NULL, &out, &err), 0);
	h = json_object_get(out, "headers");
	assert_string_equal(json_string_value(json_object_get(h, "x-token")), "tok-9f8e7d6c5b4a");
	json_decref(out);
	sl_connector_free(c);

	c = http_conn("\"auth\": {\"type\": \"basic\", \"username\": \"alice\", \"password\": \"env:SL_TEST_PW\"}",
		      "{\"e\": {\"effect\": \"read\", \"path\": \"/echo\", "
		      "\"headers\": {\"Authorization\": \"env:SL_TEST_TOKEN\"}},"
		      " \"deny\": {\"effect\": \"read\", \"path\": \"/status/401\"}}");
	assert_int_equal(call(c, "e", NULL, NULL, &out, &err), 0);
	h = json_object_get(out, "headers");
	/* base64("alice:pw-s3cr3t-value"); auth wins over an action header */
	assert_string_equal(json_string_value(json_object_get(h, "authorization")),
			    "Basic YWxpY2U6cHctczNjcjN0LXZhbHVl");
	json_decref(out);
	assert_int_not_equal(call(c, "deny", NULL, NULL, &out, &err), 0);
	assert_null(strstr(err.msg, "YWxpY2U6cHctczNjcjN0LXZhbHVl"));
	sl_connector_free(c);
	unsetenv("SL_TEST_TOKEN");
	unsetenv("SL_TEST_PW");
}

static void test_health(void **state)
{
	(void)state;
	struct sl_connector *c = http_conn(NULL, "{\"deny\": {\"effect\": \"read\", \"path\": \"/status/401\"},"
						 " \"gone\": {\"effect\": \"read\", \"path\": \"/status/404\"},"
						 " \"ok\": {\"effect\": \"read\", \"path\": \"/headers\"}}");
	struct sl_health h;
	sl_connector_health(c, &h);
	assert_true(h.healthy);
	assert_int_equal(h.calls, 0);
	assert_int_equal(h.last_success_ms, 0);
	json_t *out = NULL;
	struct sl_err err;
	call(c, "deny", NULL, NULL, &out, &err);
	sl_connector_health(c, &h);
	assert_false(h.healthy);
	assert_int_equal(h.last_error_class, SL_CLASS_AUTH);
	assert_int_equal(h.errors, 1);
	assert_true(h.last_error_ms > 0);
	assert_non_null(strstr(h.last_error, "HTTP 401"));
	/* A 404 is about the request, not the connector: still unhealthy from
	 * the auth error, and only a success clears it. */
	call(c, "gone", NULL, NULL, &out, &err);
	sl_connector_health(c, &h);
	assert_false(h.healthy);
	assert_int_equal(h.last_error_class, SL_CLASS_PERMANENT);
	assert_int_equal(call(c, "ok", NULL, NULL, &out, &err), 0);
	json_decref(out);
	sl_connector_health(c, &h);
	assert_true(h.healthy);
	assert_int_equal(h.calls, 3);
	assert_int_equal(h.errors, 2);
	assert_true(h.last_success_ms > 0);
	sl_connector_free(c);
}

/* ---- file ----------------------------------------------------------------------------------- */

static char *slurp(const char *path)
{
	char *data = NULL;
	size_t len;
	struct sl_err err;
	if (sl_file_read(path, 1 << 20, &data, &len, &err) != 0)
		return sl_strdup("");
	return data;
}

static void spit(const char *path, const char *text, const char *mode)
{
	FILE *f = fopen(path, mode);
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static struct sl_connector *file_conn(const char *name, const char *extra)
{
	char doc[1024];
	snprintf(doc, sizeof doc, "{\"connector\":\"audit\",\"type\":\"file\",\"path\":\"%s\"%s%s}", name,
		 extra ? ", " : "", extra ? extra : "");
	return load(doc);
}

static void test_file_jsonl_append_dedupe(void **state)
{
	(void)state;
	struct sl_connector *c = file_conn("out/sub/audit.jsonl", NULL); /* relative: under the project */
	json_t *out = NULL;
	struct sl_err err;
	assert_int_equal(call(c, "append", "{\"a\": 1, \"s\": \"x\\ny\"}", "k1", &out, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "appended")), 1);
	char path[256];
	snprintf(path, sizeof path, "%s/out/sub/audit.jsonl", tmpdir);
	assert_string_equal(json_string_value(json_object_get(out, "path")), path);
	json_decref(out);
	/* The same key again: skipped. */
	assert_int_equal(call(c, "append", "{\"a\": 1}", "k1", &out, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "appended")), 0);
	assert_true(json_is_true(json_object_get(out, "duplicate")));
	json_decref(out);
	/* Several rows in one append; no key: no dedupe. */
	assert_int_equal(call(c, "append", "[{\"b\": 1}, {\"b\": 2}, {\"b\": 3}]", "k2", &out, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "appended")), 3);
	json_decref(out);
	assert_int_equal(call(c, "append", "{\"c\": 1}", NULL, &out, &err), 0);
	json_decref(out);
	assert_int_equal(call(c, "append", "{\"c\": 1}", NULL, &out, &err), 0);
	json_decref(out);
	/* A key that looks like a row suffix stays unambiguous. */
	assert_int_equal(call(c, "append", "{\"d\": 1}", "odd#1/2", &out, &err), 0);
	json_decref(out);
	sl_connector_free(c);

	char *text = slurp(path);
	assert_string_equal(text, "{\"_idempotency_key\":\"k1\",\"a\":1,\"s\":\"x\\ny\"}\n"
				  "{\"_idempotency_key\":\"k2#1/3\",\"b\":1}\n"
				  "{\"_idempotency_key\":\"k2#2/3\",\"b\":2}\n"
				  "{\"_idempotency_key\":\"k2#3/3\",\"b\":3}\n"
				  "{\"c\":1}\n{\"c\":1}\n"
				  "{\"_idempotency_key\":\"odd#1/2#1/1\",\"d\":1}\n");
	free(text);

	/* A new instance (a restart) loads the keys from the file. */
	c = file_conn("out/sub/audit.jsonl", NULL);
	const char *keys[] = {"k1", "k2", "odd#1/2"};
	for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
		assert_int_equal(call(c, "append", "[{\"z\": 1}, {\"z\": 2}]", keys[i], &out, &err), 0);
		assert_true(json_is_true(json_object_get(out, "duplicate")));
		json_decref(out);
	}
	assert_int_equal(call(c, "append", "{\"e\": 1}", "k3", &out, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "appended")), 1);
	json_decref(out);
	/* Bad input: permanent. */
	assert_int_not_equal(call(c, "append", "42", "k4", &out, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	assert_int_not_equal(call(c, "append", "[{\"a\": 1}, 2]", "k4", &out, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	sl_connector_free(c);
}

static void test_file_csv(void **state)
{
	(void)state;
	const char *cols = "\"format\": \"csv\", \"columns\": [\"id\", \"note\", \"n\", \"_idempotency_key\"]";
	struct sl_connector *c = file_conn("audit.csv", cols);
	json_t *out = NULL;
	struct sl_err err;
	assert_int_equal(call(c, "append", "{\"id\": \"a\", \"note\": \"say \\\"hi\\\", then\\nbye\", \"n\": 3}", "k1",
			      &out, &err),
			 0);
	json_decref(out);
	assert_int_equal(call(c, "append", "[{\"id\": \"b\", \"n\": 1.5}, {\"id\": \"c\", \"note\": true}]", "k2", &out,
			      &err),
			 0);
	json_decref(out);
	sl_connector_free(c);
	char path[256];
	snprintf(path, sizeof path, "%s/audit.csv", tmpdir);
	char *text = slurp(path);
	assert_string_equal(text, "id,note,n,_idempotency_key\r\n"
				  "a,\"say \"\"hi\"\", then\nbye\",3,k1\r\n"
				  "b,,1.5,k2#1/2\r\n"
				  "c,true,,k2#2/2\r\n");
	free(text);

	/* Restart: dedupe by the key column; no second header. */
	c = file_conn("audit.csv", cols);
	assert_int_equal(call(c, "append", "{\"id\": \"a\"}", "k1", &out, &err), 0);
	assert_true(json_is_true(json_object_get(out, "duplicate")));
	json_decref(out);
	assert_int_equal(call(c, "append", "{\"id\": \"d\"}", "k3", &out, &err), 0);
	json_decref(out);
	/* Read back as objects keyed by the header. */
	assert_int_equal(call(c, "read", "{\"max\": 2}", NULL, &out, &err), 0);
	json_t *recs = json_object_get(out, "records");
	assert_int_equal(json_array_size(recs), 3); /* the 2-row append is not split */
	assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 0), "note")),
			    "say \"hi\", then\nbye");
	assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 2), "id")), "c");
	char *cursor = sl_strdup(json_string_value(json_object_get(out, "cursor")));
	json_decref(out);
	char in[128];
	snprintf(in, sizeof in, "{\"cursor\": \"%s\"}", cursor);
	free(cursor);
	assert_int_equal(call(c, "read", in, NULL, &out, &err), 0);
	recs = json_object_get(out, "records");
	assert_int_equal(json_array_size(recs), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 0), "id")), "d");
	json_decref(out);
	sl_connector_free(c);

	/* A file whose header differs from columns is refused, not mixed. */
	c = file_conn("audit.csv", "\"format\": \"csv\", \"columns\": [\"id\", \"other\"]");
	assert_int_not_equal(call(c, "append", "{\"id\": \"x\"}", "k9", &out, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	assert_non_null(strstr(err.msg, "does not match columns"));
	sl_connector_free(c);

	/* Without the key column: appends work, no dedupe. */
	c = file_conn("nokey.csv", "\"format\": \"csv\", \"columns\": [\"id\"]");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(call(c, "append", "{\"id\": \"x\"}", "same", &out, &err), 0);
		assert_int_equal(json_integer_value(json_object_get(out, "appended")), 1);
		json_decref(out);
	}
	sl_connector_free(c);
	snprintf(path, sizeof path, "%s/nokey.csv", tmpdir);
	text = slurp(path);
	assert_string_equal(text, "id\r\nx\r\nx\r\n");
	free(text);
}

static void test_file_repair(void **state)
{
	(void)state;
	char path[256];
	snprintf(path, sizeof path, "%s/torn.jsonl", tmpdir);
	/* A crash cut the last append short: the line has no newline. */
	spit(path, "{\"_idempotency_key\":\"k1\",\"a\":1}\n{\"_idempotency_key\":\"k2\",\"a\"", "w");
	struct sl_connector *c = file_conn("torn.jsonl", NULL);
	json_t *out = NULL;
	struct sl_err err;
	/* Readers never see the torn line. */
	assert_int_equal(call(c, "read", NULL, NULL, &out, &err), 0);
	assert_int_equal(json_array_size(json_object_get(out, "records")), 1);
	assert_string_equal(json_string_value(json_object_get(out, "cursor")), "32");
	json_decref(out);
	/* The retry of k2 is not a duplicate: k2 never completed. */
	assert_int_equal(call(c, "append", "{\"a\": 2}", "k2", &out, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "appended")), 1);
	json_decref(out);
	assert_int_equal(call(c, "append", "{\"a\": 1}", "k1", &out, &err), 0);
	assert_true(json_is_true(json_object_get(out, "duplicate")));
	json_decref(out);
	sl_connector_free(c);
	char *text = slurp(path);
	assert_string_equal(text, "{\"_idempotency_key\":\"k1\",\"a\":1}\n{\"_idempotency_key\":\"k2\",\"a\":2}\n");
	free(text);

	/* Two rows of a three-row append made it: they go too, since the retry
	 * writes all three again. An unkeyed row before them stays. */
	spit(path, "{\"x\":0}\n{\"_idempotency_key\":\"k3#1/3\",\"b\":1}\n{\"_idempotency_key\":\"k3#2/3\",\"b\":2}\n",
	     "a");
	c = file_conn("torn.jsonl", NULL);
	assert_int_equal(call(c, "read", "{\"cursor\": 64}", NULL, &out, &err), 0);
	json_t *recs = json_object_get(out, "records");
	assert_int_equal(json_array_size(recs), 1); /* {"x":0} only: the open append is held back */
	assert_string_equal(json_string_value(json_object_get(out, "cursor")), "72");
	json_decref(out);
	assert_int_equal(call(c, "append", "[{\"b\": 1}, {\"b\": 2}, {\"b\": 3}]", "k3", &out, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "appended")), 3);
	json_decref(out);
	sl_connector_free(c);
	text = slurp(path);
	assert_string_equal(text, "{\"_idempotency_key\":\"k1\",\"a\":1}\n{\"_idempotency_key\":\"k2\",\"a\":2}\n"
				  "{\"x\":0}\n"
				  "{\"_idempotency_key\":\"k3#1/3\",\"b\":1}\n{\"_idempotency_key\":\"k3#2/3\",\"b\":2}\n"
				  "{\"_idempotency_key\":\"k3#3/3\",\"b\":3}\n");
	free(text);

	/* A CSV whose header line itself was cut: the file starts over. */
	snprintf(path, sizeof path, "%s/torn.csv", tmpdir);
	spit(path, "id,no", "w");
	c = file_conn("torn.csv", "\"format\": \"csv\", \"columns\": [\"id\", \"note\"]");
	assert_int_equal(call(c, "append", "{\"id\": 1}", NULL, &out, &err), 0);
	json_decref(out);
	sl_connector_free(c);
	text = slurp(path);
	assert_string_equal(text, "id,note\r\n1,\r\n");
	free(text);
}

static void test_file_poll(void **state)
{
	(void)state;
	char path[256];
	snprintf(path, sizeof path, "%s/events.jsonl", tmpdir);
	spit(path, "{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\nnot json\n{\"n\":4}\n{\"n\":5", "w");
	struct sl_connector *c = file_conn(path, "\"fsync\": false"); /* absolute path */
	const struct sl_action *rd = sl_connector_action(c, "read");
	struct sl_poll_result pr;
	struct sl_err err;
	assert_int_equal(sl_connector_poll(c, rd, NULL, 2, &pr, &err), 0);
	assert_int_equal(json_array_size(pr.records), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(pr.records, 1), "n")), 2);
	assert_string_equal(pr.cursor, "16");
	char *cur = pr.cursor;
	json_decref(pr.records);
	/* Blank and non-JSON lines are passed over; the partial last line waits. */
	assert_int_equal(sl_connector_poll(c, rd, cur, 100, &pr, &err), 0);
	free(cur);
	assert_int_equal(json_array_size(pr.records), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(pr.records, 0), "n")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(pr.records, 1), "n")), 4);
	cur = pr.cursor;
	json_decref(pr.records);
	assert_int_equal(sl_connector_poll(c, rd, cur, 100, &pr, &err), 0);
	assert_int_equal(json_array_size(pr.records), 0);
	assert_string_equal(pr.cursor, cur);
	json_decref(pr.records);
	free(pr.cursor);
	/* The line completes: the next poll returns it. */
	spit(path, "}\n", "a");
	assert_int_equal(sl_connector_poll(c, rd, cur, 100, &pr, &err), 0);
	free(cur);
	assert_int_equal(json_array_size(pr.records), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(pr.records, 0), "n")), 5);
	json_decref(pr.records);
	free(pr.cursor);
	/* Bad cursors are permanent errors. */
	assert_int_not_equal(sl_connector_poll(c, rd, "abc", 10, &pr, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	assert_int_not_equal(sl_connector_poll(c, rd, "999999", 10, &pr, &err), 0);
	assert_non_null(strstr(err.msg, "past the end"));
	assert_int_not_equal(sl_connector_poll(c, sl_connector_action(c, "append"), NULL, 10, &pr, &err), 0);
	sl_connector_free(c);

	/* A file that does not exist yet reads as empty. */
	c = file_conn("not-yet.jsonl", NULL);
	assert_int_equal(sl_connector_poll(c, sl_connector_action(c, "read"), NULL, 10, &pr, &err), 0);
	assert_int_equal(json_array_size(pr.records), 0);
	assert_string_equal(pr.cursor, "0");
	json_decref(pr.records);
	free(pr.cursor);
	sl_connector_free(c);
}


/* ---- many threads on one connector ------------------------------------------------------- */

#define THREADS 4
#define CALLS 25

struct worker {
	struct sl_connector *c;
	int id;
	int failures;
};

/* Every thread appends the same 25 keys: each must land exactly once. */
static void *file_worker(void *arg)
{
	struct worker *w = arg;
	const struct sl_action *a = sl_connector_action(w->c, "append");
	for (int i = 0; i < CALLS; i++) {
		char key[32];
		snprintf(key, sizeof key, "key-%d", i);
		json_t *in = json_pack("{s:i, s:i}", "i", i, "thread", w->id);
		struct sl_call cl = {.input = in, .idempotency_key = key};
		struct sl_call_result res;
		struct sl_err err;
		if (sl_connector_call(w->c, a, &cl, &res, &err) != 0)
			w->failures++;
		json_decref(res.output);
		json_decref(in);
	}
	return NULL;
}

static void *http_worker(void *arg)
{
	struct worker *w = arg;
	const struct sl_action *a = sl_connector_action(w->c, "e");
	for (int i = 0; i < CALLS; i++) {
		json_t *in = json_pack("{s:i, s:i}", "i", i, "thread", w->id);
		struct sl_call cl = {.input = in};
		struct sl_call_result res;
		struct sl_err err;
		if (sl_connector_call(w->c, a, &cl, &res, &err) != 0 ||
		    json_integer_value(json_object_get(json_object_get(res.output, "body"), "thread")) != w->id)
			w->failures++;
		json_decref(res.output);
		json_decref(in);
	}
	return NULL;
}

static void run_workers(struct sl_connector *c, void *(*fn)(void *))
{
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.c = c, .id = i};
		assert_int_equal(pthread_create(&t[i], NULL, fn, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
}

static void test_concurrent_calls(void **state)
{
	(void)state;
	struct sl_connector *c = file_conn("concurrent.jsonl", "\"fsync\": false");
	run_workers(c, file_worker);
	struct sl_health h;
	sl_connector_health(c, &h);
	assert_int_equal(h.calls, THREADS * CALLS);
	assert_int_equal(h.errors, 0);
	sl_connector_free(c);
	char path[256];
	snprintf(path, sizeof path, "%s/concurrent.jsonl", tmpdir);
	char *text = slurp(path);
	int lines = 0;
	for (char *p = text; *p; p++)
		lines += *p == '\n';
	free(text);
	assert_int_equal(lines, CALLS);

	c = http_conn(NULL, "{\"e\": {\"effect\": \"write\", \"method\": \"POST\", \"path\": \"/echo\"}}");
	run_workers(c, http_worker);
	sl_connector_free(c);
}


/* ---- stream connectors (config only: the brokers are in the integration tests) ---- */

static void test_stream_config(void **state)
{
	(void)state;
	setenv("SL_TEST_STREAM_PW", "stream-pw-1234", 1);
	struct sl_connector *c = load("{\"connector\":\"r\",\"type\":\"redis_stream\",\"url\":\"redis://127.0.0.1:6390/2\","
				      "\"stream\":\"orders\",\"password\":\"env:SL_TEST_STREAM_PW\",\"claim_idle\":\"2s\"}");
	assert_true(sl_stream_is(c));
	const struct sl_action *a = sl_connector_action(c, "publish");
	assert_non_null(a); /* built in: every stream is an emit target */
	assert_int_equal(a->effect, SL_EFFECT_WRITE);
	sl_connector_free(c);
	c = load("{\"connector\":\"n\",\"type\":\"nats\",\"url\":\"nats://127.0.0.1:4222\",\"stream\":\"ORDERS\","
		 "\"subject\":\"orders.new\",\"user\":\"u\",\"password\":\"env:SL_TEST_STREAM_PW\",\"ack_wait\":\"5s\"}");
	assert_true(sl_stream_is(c));
	sl_connector_free(c);
	c = load("{\"connector\":\"k\",\"type\":\"kafka\",\"brokers\":\"127.0.0.1:9092,127.0.0.1:9093\","
		 "\"topic\":\"orders\",\"group\":\"billing\",\"session_timeout\":\"6s\"}");
	assert_true(sl_stream_is(c));
	sl_connector_free(c);
	c = load("{\"connector\":\"f\",\"type\":\"file\",\"path\":\"x.jsonl\"}");
	assert_false(sl_stream_is(c));
	sl_connector_free(c);

	expect_load_error("{\"connector\":\"r\",\"type\":\"redis_stream\",\"url\":\"redis://x\"}", "",
			  "missing required key \"stream\"");
	expect_load_error("{\"connector\":\"r\",\"type\":\"redis_stream\",\"url\":\"http://x\",\"stream\":\"s\"}", "/url",
			  "redis://HOST");
	expect_load_error("{\"connector\":\"r\",\"type\":\"redis_stream\",\"url\":\"redis://:hunter22@x\",\"stream\":\"s\"}",
			  "/url", "must not hold a password");
	assert_false(cap_has(NULL, "hunter22"));
	expect_load_error("{\"connector\":\"r\",\"type\":\"redis_stream\",\"url\":\"redis://x/db\",\"stream\":\"s\"}", "/url",
			  "database number");
	expect_load_error("{\"connector\":\"r\",\"type\":\"redis_stream\",\"url\":\"redis://x\",\"stream\":\"s\","
			  "\"start\":\"oldest\"}",
			  "/start", "earliest or latest");
	expect_load_error("{\"connector\":\"r\",\"type\":\"redis_stream\",\"url\":\"redis://x\",\"stream\":\"s\","
			  "\"password\":\"hunter22\"}",
			  "/password", "env:");
	expect_load_error("{\"connector\":\"r\",\"type\":\"redis_stream\",\"url\":\"redis://x\",\"stream\":\"s\","
			  "\"actions\":{\"get\":{\"effect\":\"read\"}}}",
			  "/actions/get", "only the action publish");
	expect_load_error("{\"connector\":\"n\",\"type\":\"nats\",\"url\":\"nats://u:hunter22@x\",\"stream\":\"S\","
			  "\"subject\":\"s\"}",
			  "/url", "must not hold credentials");
	assert_false(cap_has(NULL, "hunter22"));
	expect_load_error("{\"connector\":\"n\",\"type\":\"nats\",\"url\":\"nats://x\",\"stream\":\"a.b\",\"subject\":\"s\"}",
			  "/stream", "without spaces, '.'");
	expect_load_error("{\"connector\":\"n\",\"type\":\"nats\",\"url\":\"nats://x\",\"stream\":\"S\",\"subject\":\"s.*\"}",
			  "/subject", "wildcards");
	expect_load_error("{\"connector\":\"n\",\"type\":\"nats\",\"url\":\"nats://x\",\"stream\":\"S\",\"subject\":\"s\","
			  "\"password\":\"env:SL_TEST_STREAM_PW\"}",
			  "/password", "password needs user");
	expect_load_error("{\"connector\":\"n\",\"type\":\"nats\",\"url\":\"nats://x\",\"stream\":\"S\"}", "",
			  "missing required key \"subject\"");
	expect_load_error("{\"connector\":\"k\",\"type\":\"kafka\",\"brokers\":\"u:p@x:9092\",\"topic\":\"t\"}", "/brokers",
			  "HOST:PORT");
	expect_load_error("{\"connector\":\"k\",\"type\":\"kafka\",\"brokers\":\"x:9092\",\"topic\":\"a/b\"}", "/topic",
			  "must be a name");
	expect_load_error("{\"connector\":\"k\",\"type\":\"kafka\",\"brokers\":\"x:9092\",\"topic\":\"t\","
			  "\"username\":\"u\"}",
			  "", "missing required key \"password\"");
	expect_load_error("{\"connector\":\"k\",\"type\":\"kafka\",\"brokers\":\"x:9092\",\"topic\":\"t\","
			  "\"dedupe_scan\":-1}",
			  "/dedupe_scan", ">= 0");
	expect_load_error("{\"connector\":\"k\",\"type\":\"kafka\",\"brokers\":\"x:9092\",\"topic\":\"t\","
			  "\"mechanism\":\"GSSAPI\"}",
			  "/mechanism", "PLAIN");
	expect_load_error("{\"connector\":\"k\",\"type\":\"kafak\",\"brokers\":\"x:9092\",\"topic\":\"t\"}", "/type",
			  "did you mean \"kafka\"");
	unsetenv("SL_TEST_STREAM_PW");
}

/* The identity is what makes a redelivery find the first run: the same
 * message must give the same text, and different positions different ones. */
static void test_stream_identity_and_body(void **state)
{
	(void)state;
	char *a = sl_stream_identity("redis", "orders", "1700000000000-0");
	assert_string_equal(a, "redis:orders:1700000000000-0");
	char *b = sl_stream_identity("kafka", "orders", "1:42");
	assert_string_equal(b, "kafka:orders:1:42");
	char *c = sl_stream_identity("kafka", "orders", "14:2");
	assert_string_not_equal(b, c);
	free(a);
	free(b);
	free(c);

	const char *obj = "{\"n\":1}";
	json_t *v = sl_stream_body_json(obj, strlen(obj));
	assert_int_equal(json_integer_value(json_object_get(v, "n")), 1);
	json_decref(v);
	const char *ce = "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s\",\"type\":\"t\",\"data\":{\"n\":2}}";
	v = sl_stream_body_json(ce, strlen(ce)); /* a CloudEvent's data is the input */
	assert_int_equal(json_integer_value(json_object_get(v, "n")), 2);
	json_decref(v);
	v = sl_stream_body_json("not json", 8);
	assert_string_equal(json_string_value(v), "not json");
	json_decref(v);
	v = sl_stream_body_json("[1,2]", 5);
	assert_int_equal(json_array_size(v), 2);
	json_decref(v);

	json_t *data = json_pack("{s:i}", "n", 3);
	json_t *ev = sl_cloudevent_new("run_1:notify", "sluice/ingest", "order.recorded", data);
	assert_string_equal(json_string_value(json_object_get(ev, "specversion")), "1.0");
	assert_string_equal(json_string_value(json_object_get(ev, "id")), "run_1:notify");
	assert_string_equal(json_string_value(json_object_get(ev, "source")), "sluice/ingest");
	assert_string_equal(json_string_value(json_object_get(ev, "type")), "order.recorded");
	assert_string_equal(json_string_value(json_object_get(ev, "datacontenttype")), "application/json");
	int64_t t;
	assert_int_equal(sl_time_parse(json_string_value(json_object_get(ev, "time")), &t), 0);
	assert_ptr_equal(json_object_get(ev, "data"), data); /* a reference, not a copy */
	char *text = json_dumps(ev, JSON_COMPACT);
	v = sl_stream_body_json(text, strlen(text)); /* what Sluice emits, Sluice reads back as the data */
	assert_true(json_equal(v, data));
	json_decref(v);
	free(text);
	json_decref(ev);
	json_decref(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_effects_and_classes),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_conf_check_keys),
		cmocka_unit_test(test_connector_new_errors),
		cmocka_unit_test(test_connector_model),
		cmocka_unit_test(test_http_request_shape),
		cmocka_unit_test(test_http_statuses),
		cmocka_unit_test(test_http_output),
		cmocka_unit_test(test_http_timeout_and_refused),
		cmocka_unit_test(test_http_link_local),
		cmocka_unit_test(test_http_auth),
		cmocka_unit_test(test_health),
		cmocka_unit_test(test_file_jsonl_append_dedupe),
		cmocka_unit_test(test_file_csv),
		cmocka_unit_test(test_file_repair),
		cmocka_unit_test(test_file_poll),
		cmocka_unit_test(test_concurrent_calls),
		cmocka_unit_test(test_stream_config),
		cmocka_unit_test(test_stream_identity_and_body),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
