/* test_sim.c: the vendor simulators, started in-process on port 0 and
 * driven over HTTP with libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"
#include "util/util.h"

#include "sim_http.h"

static struct sl_sim *start(const char *kind, struct sl_sim_opts *extra)
{
	struct sl_sim_opts o = {.kind = kind, .seed = 7};
	if (extra) {
		o = *extra;
		o.kind = kind;
	}
	struct sl_sim *s = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_sim_start(&o, &s, &err);
	if (rc)
		fprintf(stderr, "sl_sim_start: %s\n", err.msg);
	assert_int_equal(rc, 0);
	assert_true(sl_sim_port(s) > 0);
	return s;
}

static const char *jstr(json_t *v, const char *key)
{
	return json_string_value(json_object_get(v, key));
}

static json_int_t jint(json_t *v, const char *key)
{
	return json_integer_value(json_object_get(v, key));
}

static json_int_t effects(int port)
{
	struct http h;
	req(&h, port, "GET", "/_sim/effects", NULL);
	assert_int_equal(h.status, 200);
	json_int_t n = jint(h.json, "effects");
	http_free(&h);
	return n;
}

/* A problem+json answer with this status (and field when not NULL). */
static void assert_problem(struct http *h, long status, const char *field)
{
	assert_int_equal(h->status, status);
	assert_string_equal(h->ctype, "application/problem+json");
	assert_non_null(jstr(h->json, "type"));
	assert_non_null(jstr(h->json, "title"));
	assert_non_null(jstr(h->json, "detail"));
	assert_int_equal(jint(h->json, "status"), status);
	if (field)
		assert_string_equal(jstr(h->json, "field"), field);
}

/* ---- helpdesk ------------------------------------------------------------------------- */

static void test_helpdesk_crud(void **state)
{
	(void)state;
	struct sl_sim *s = start("helpdesk", NULL);
	int port = sl_sim_port(s);
	struct http h;
	req(&h, port, "POST", "/tickets", "{\"subject\":\"Printer on fire\",\"requester\":\"x@y.z\"}");
	assert_int_equal(h.status, 201);
	assert_string_equal(jstr(h.json, "id"), "tkt_4"); /* 3 seeded */
	assert_string_equal(jstr(h.json, "status"), "open");
	assert_string_equal(jstr(h.json, "priority"), "normal");
	http_free(&h);

	req(&h, port, "GET", "/tickets/tkt_4", NULL);
	assert_int_equal(h.status, 200);
	assert_string_equal(jstr(h.json, "subject"), "Printer on fire");
	http_free(&h);

	req(&h, port, "PATCH", "/tickets/tkt_4", "{\"tags\":[\"hw\"],\"priority\":\"urgent\"}");
	assert_int_equal(h.status, 200);
	assert_string_equal(jstr(h.json, "priority"), "urgent");
	http_free(&h);
	req(&h, port, "POST", "/tickets/tkt_4/tags", "{\"tags\":[\"hw\",\"fire\"]}");
	assert_int_equal(h.status, 200);
	assert_int_equal(json_array_size(json_object_get(h.json, "tags")), 2);
	http_free(&h);
	req(&h, port, "POST", "/tickets/tkt_4/comments", "{\"body\":\"on it\"}");
	assert_int_equal(h.status, 201);
	assert_string_equal(jstr(h.json, "body"), "on it");
	http_free(&h);
	req(&h, port, "POST", "/tickets/tkt_4/close", NULL);
	assert_int_equal(h.status, 200);
	assert_string_equal(jstr(h.json, "status"), "closed");
	assert_int_equal(json_array_size(json_object_get(h.json, "comments")), 1);
	http_free(&h);
	assert_int_equal(effects(port), 5);

	req(&h, port, "GET", "/_sim/effects", NULL);
	assert_int_equal(jint(json_object_get(h.json, "by_route"), "POST /tickets"), 1);
	assert_int_equal(jint(json_object_get(h.json, "by_route"), "POST /tickets/{id}/comments"), 1);
	http_free(&h);
	sl_sim_stop(s);
}

static void test_helpdesk_cursor_walk(void **state)
{
	(void)state;
	struct sl_sim *s = start("helpdesk", NULL);
	int port = sl_sim_port(s);
	struct http h;
	for (int i = 0; i < 4; i++) {
		req(&h, port, "POST", "/tickets", "{\"subject\":\"more\"}");
		assert_int_equal(h.status, 201);
		http_free(&h);
	}
	char path[256] = "/tickets?limit=2";
	int pages = 0, seen = 0;
	for (;;) {
		req(&h, port, "GET", path, NULL);
		assert_int_equal(h.status, 200);
		seen += (int)json_array_size(json_object_get(h.json, "data"));
		pages++;
		json_t *next = json_object_get(h.json, "next_cursor");
		assert_non_null(next);
		if (json_is_null(next)) {
			http_free(&h);
			break;
		}
		snprintf(path, sizeof path, "/tickets?limit=2&cursor=%s", json_string_value(next));
		http_free(&h);
		assert_true(pages < 10);
	}
	assert_int_equal(seen, 7);
	assert_int_equal(pages, 4);

	req(&h, port, "GET", "/tickets?cursor=bogus", NULL);
	assert_problem(&h, 400, "cursor");
	http_free(&h);
	req(&h, port, "GET", "/tickets?updated_since=2999-01-01T00:00:00Z", NULL);
	assert_int_equal(h.status, 200);
	assert_int_equal(json_array_size(json_object_get(h.json, "data")), 0);
	http_free(&h);
	req(&h, port, "GET", "/tickets?updated_since=2000-01-01T00:00:00Z", NULL);
	assert_int_equal(json_array_size(json_object_get(h.json, "data")), 7);
	http_free(&h);
	sl_sim_stop(s);
}

/* ---- crm -------------------------------------------------------------------------------- */

static void test_crm_pages(void **state)
{
	(void)state;
	struct sl_sim *s = start("crm", NULL);
	int port = sl_sim_port(s);
	struct http h;
	req(&h, port, "POST", "/accounts", "{\"name\":\"Initrode\",\"tier\":\"pro\"}");
	assert_int_equal(h.status, 201);
	assert_string_equal(jstr(h.json, "id"), "acc_3");
	http_free(&h);
	req(&h, port, "POST", "/contacts", "{\"account_id\":\"acc_3\",\"email\":\"p@initrode.example\"}");
	assert_int_equal(h.status, 201);
	assert_string_equal(jstr(h.json, "id"), "con_2");
	http_free(&h);
	req(&h, port, "POST", "/contacts", "{\"account_id\":\"acc_99\",\"email\":\"p@i.example\"}");
	assert_problem(&h, 422, "account_id");
	http_free(&h);
	req(&h, port, "POST", "/notes", "{\"body\":\"hello\"}");
	assert_problem(&h, 422, "account_id");
	http_free(&h);
	req(&h, port, "PATCH", "/accounts/acc_3", "{\"tier\":\"enterprise\"}");
	assert_int_equal(h.status, 200);
	assert_string_equal(jstr(h.json, "tier"), "enterprise");
	http_free(&h);
	req(&h, port, "GET", "/contacts/con_2", NULL);
	assert_string_equal(jstr(h.json, "email"), "p@initrode.example");
	http_free(&h);

	int seen = 0;
	for (int page = 1; page <= 3; page++) {
		char path[128];
		snprintf(path, sizeof path, "/accounts?page=%d&per_page=2", page);
		req(&h, port, "GET", path, NULL);
		assert_int_equal(h.status, 200);
		assert_int_equal(jint(h.json, "total"), 3);
		assert_int_equal(jint(h.json, "page"), page);
		assert_int_equal(jint(h.json, "per_page"), 2);
		seen += (int)json_array_size(json_object_get(h.json, "data"));
		http_free(&h);
	}
	assert_int_equal(seen, 3);
	req(&h, port, "GET", "/accounts?per_page=0", NULL);
	assert_problem(&h, 400, "per_page");
	http_free(&h);
	sl_sim_stop(s);
}

/* ---- erp ---------------------------------------------------------------------------------- */

static void test_erp_link_pages_and_payments(void **state)
{
	(void)state;
	struct sl_sim *s = start("erp", NULL);
	int port = sl_sim_port(s);
	struct http h;
	req(&h, port, "POST", "/invoices", "{\"supplier_id\":\"sup_2\",\"number\":\"U-78\",\"amount\":99.5}");
	assert_int_equal(h.status, 201);
	assert_string_equal(jstr(h.json, "id"), "inv_4");
	assert_string_equal(jstr(h.json, "currency"), "EUR");
	http_free(&h);

	char path[512] = "/invoices?per_page=3";
	int seen = 0, pages = 0;
	for (;;) {
		req(&h, port, "GET", path, NULL);
		assert_int_equal(h.status, 200);
		assert_true(json_is_array(h.json));
		seen += (int)json_array_size(h.json);
		pages++;
		if (!h.link[0]) {
			http_free(&h);
			break;
		}
		/* <http://127.0.0.1:PORT/invoices?page=2&per_page=3>; rel="next" */
		assert_non_null(strstr(h.link, "rel=\"next\""));
		const char *p = strstr(h.link, "/invoices?");
		const char *e = strchr(h.link, '>');
		assert_non_null(p);
		assert_non_null(e);
		snprintf(path, sizeof path, "%.*s", (int)(e - p), p);
		http_free(&h);
		assert_true(pages < 10);
	}
	assert_int_equal(seen, 4);
	assert_int_equal(pages, 2);

	req(&h, port, "POST", "/payments", "{\"invoice_id\":\"inv_2\",\"amount\":81}");
	assert_problem(&h, 422, "amount"); /* over-payment */
	http_free(&h);
	req(&h, port, "POST", "/payments", "{\"invoice_id\":\"inv_2\",\"amount\":80}");
	assert_int_equal(h.status, 201);
	assert_string_equal(jstr(h.json, "id"), "pay_1");
	http_free(&h);
	req(&h, port, "GET", "/invoices/inv_2", NULL);
	assert_string_equal(jstr(h.json, "status"), "paid");
	http_free(&h);
	req(&h, port, "POST", "/payments", "{\"invoice_id\":\"inv_2\",\"amount\":1}");
	assert_problem(&h, 422, "amount");
	http_free(&h);
	req(&h, port, "PATCH", "/payments/pay_1", "{}");
	assert_problem(&h, 405, NULL);
	http_free(&h);
	sl_sim_stop(s);
}

/* ---- gates -------------------------------------------------------------------------------- */

static void test_auth(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.api_key = "s3cret"};
	struct sl_sim *s = start("helpdesk", &o);
	int port = sl_sim_port(s);
	struct http h;
	req(&h, port, "GET", "/tickets/tkt_1", NULL);
	assert_problem(&h, 401, NULL);
	http_free(&h);
	req_full(&h, port, "GET", "/tickets/tkt_1", NULL, 0, "Authorization: Bearer wrong", NULL, 0);
	assert_int_equal(h.status, 401);
	http_free(&h);
	req_full(&h, port, "GET", "/tickets/tkt_1", NULL, 0, "Authorization: Bearer s3cret", NULL, 0);
	assert_int_equal(h.status, 200);
	http_free(&h);
	req_full(&h, port, "GET", "/tickets/tkt_1", NULL, 0, "X-Api-Key: s3cret", NULL, 0);
	assert_int_equal(h.status, 200);
	http_free(&h);
	req(&h, port, "GET", "/_sim/effects", NULL); /* admin needs no key */
	assert_int_equal(h.status, 200);
	assert_int_equal(jint(json_object_get(h.json, "rejected"), "401"), 2);
	http_free(&h);
	sl_sim_stop(s);
}

static void test_rate_limit(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.rate_per_s = 0.5, .burst = 2};
	struct sl_sim *s = start("crm", &o);
	int port = sl_sim_port(s);
	struct http h;
	for (int i = 0; i < 2; i++) {
		req(&h, port, "GET", "/accounts", NULL);
		assert_int_equal(h.status, 200);
		http_free(&h);
	}
	req(&h, port, "GET", "/accounts", NULL);
	assert_problem(&h, 429, NULL);
	int64_t ra = 0;
	assert_int_equal(sl_parse_i64(h.retry_after, &ra), 0);
	assert_true(ra >= 1 && ra <= 2);
	http_free(&h);
	req(&h, port, "GET", "/_sim/effects", NULL);
	assert_int_equal(jint(json_object_get(h.json, "rejected"), "429"), 1);
	http_free(&h);
	sl_sim_stop(s);
}

static void test_idempotent_replay(void **state)
{
	(void)state;
	struct sl_sim *s = start("helpdesk", NULL);
	int port = sl_sim_port(s);
	struct http a, b, c;
	const char *body = "{\"subject\":\"once\"}";
	req_full(&a, port, "POST", "/tickets", body, strlen(body), "Idempotency-Key: k-1", NULL, 0);
	assert_int_equal(a.status, 201);
	req_full(&b, port, "POST", "/tickets", body, strlen(body), "Idempotency-Key: k-1", NULL, 0);
	assert_int_equal(b.status, 201);
	assert_string_equal(sl_buf_str(&a.body), sl_buf_str(&b.body));
	/* a failed first answer is replayed as well */
	req_full(&c, port, "POST", "/tickets", "{}", 2, "Idempotency-Key: k-2", NULL, 0);
	assert_int_equal(c.status, 422);
	http_free(&c);
	req_full(&c, port, "POST", "/tickets", body, strlen(body), "Idempotency-Key: k-2", NULL, 0);
	assert_int_equal(c.status, 422);
	http_free(&a);
	http_free(&b);
	http_free(&c);
	req(&a, port, "GET", "/_sim/effects", NULL);
	assert_int_equal(jint(a.json, "effects"), 1);
	assert_int_equal(jint(a.json, "replays"), 2);
	http_free(&a);
	sl_sim_stop(s);
}

static void test_too_big(void **state)
{
	(void)state;
	struct sl_sim *s = start("helpdesk", NULL);
	size_t n = 1024 * 1024 + 10;
	char *big = sl_xmalloc(n + 1);
	memset(big, ' ', n);
	big[n] = '\0';
	struct http h;
	req_full(&h, sl_sim_port(s), "POST", "/tickets", big, n, NULL, NULL, 0);
	assert_problem(&h, 413, NULL);
	http_free(&h);
	free(big);
	assert_int_equal(effects(sl_sim_port(s)), 0);
	sl_sim_stop(s);
}

static void test_errors(void **state)
{
	(void)state;
	struct sl_sim *s = start("helpdesk", NULL);
	int port = sl_sim_port(s);
	struct http h;
	req(&h, port, "GET", "/nope", NULL);
	assert_problem(&h, 404, NULL);
	http_free(&h);
	req(&h, port, "GET", "/tickets/tkt_999", NULL);
	assert_problem(&h, 404, NULL);
	http_free(&h);
	req(&h, port, "GET", "/", NULL);
	assert_problem(&h, 404, NULL);
	http_free(&h);
	req(&h, port, "GET", "/a/b/c/d/e", NULL);
	assert_problem(&h, 404, NULL);
	http_free(&h);
	req(&h, port, "DELETE", "/tickets/tkt_1", NULL);
	assert_problem(&h, 405, NULL);
	assert_string_equal(h.allow, "GET, PATCH");
	http_free(&h);
	req(&h, port, "PUT", "/tickets", "{}");
	assert_problem(&h, 405, NULL);
	http_free(&h);
	req(&h, port, "POST", "/tickets", "{\"subject\":");
	assert_problem(&h, 400, NULL);
	http_free(&h);
	req(&h, port, "POST", "/tickets", "{\"body\":\"no subject\"}");
	assert_problem(&h, 422, "subject");
	assert_non_null(strstr(jstr(h.json, "detail"), "subject"));
	http_free(&h);
	req(&h, port, "POST", "/tickets", "{\"subject\":\"x\",\"priority\":\"meh\"}");
	assert_problem(&h, 422, "priority");
	http_free(&h);
	req(&h, port, "POST", "/tickets", "[1,2]");
	assert_problem(&h, 422, NULL);
	http_free(&h);
	req(&h, port, "PATCH", "/tickets/tkt_1", "{\"status\":\"gone\",\"subject\":\"changed\"}");
	assert_problem(&h, 422, "status");
	http_free(&h);
	req(&h, port, "GET", "/tickets/tkt_1", NULL); /* the failed PATCH changed nothing */
	assert_string_equal(jstr(h.json, "subject"), "Cannot log in");
	http_free(&h);
	assert_int_equal(effects(port), 0);
	sl_sim_stop(s);
}

/* ---- faults --------------------------------------------------------------------------------- */

static void test_fault_error(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.error_rate = 1};
	struct sl_sim *s = start("erp", &o);
	int port = sl_sim_port(s);
	struct http h;
	req(&h, port, "POST", "/suppliers", "{\"name\":\"X\"}");
	assert_problem(&h, 503, NULL);
	http_free(&h);
	req(&h, port, "GET", "/_sim/effects", NULL);
	assert_int_equal(jint(h.json, "effects"), 0);
	assert_int_equal(jint(json_object_get(h.json, "rejected"), "5xx"), 1);
	http_free(&h);
	sl_sim_stop(s);
}

static void test_fault_malformed(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.malformed_rate = 1};
	struct sl_sim *s = start("crm", &o);
	struct http h;
	req(&h, sl_sim_port(s), "POST", "/accounts", "{\"name\":\"X\"}");
	assert_int_equal(h.status, 200);
	assert_true(h.body.len > 0);
	assert_null(h.json);
	http_free(&h);
	assert_int_equal(effects(sl_sim_port(s)), 0);
	sl_sim_stop(s);
}

static void test_fault_drift(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.drift = true};
	struct sl_sim *hd = start("helpdesk", &o), *crm = start("crm", &o), *erp = start("erp", &o);
	struct http h;
	req(&h, sl_sim_port(hd), "GET", "/tickets/tkt_1", NULL);
	assert_non_null(jstr(h.json, "title"));
	assert_null(json_object_get(h.json, "subject"));
	http_free(&h);
	req(&h, sl_sim_port(hd), "GET", "/tickets", NULL);
	assert_non_null(jstr(json_array_get(json_object_get(h.json, "data"), 0), "title"));
	http_free(&h);
	req(&h, sl_sim_port(crm), "GET", "/contacts/con_1", NULL);
	assert_non_null(jstr(h.json, "email_address"));
	assert_null(json_object_get(h.json, "email"));
	http_free(&h);
	req(&h, sl_sim_port(erp), "GET", "/invoices", NULL);
	assert_true(json_is_number(json_object_get(json_array_get(h.json, 0), "total")));
	assert_null(json_object_get(json_array_get(h.json, 0), "amount"));
	http_free(&h);
	sl_sim_stop(hd);
	sl_sim_stop(crm);
	sl_sim_stop(erp);
}

static void test_fault_reset(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.reset_rate = 1};
	struct sl_sim *s = start("helpdesk", &o);
	struct http h;
	req(&h, sl_sim_port(s), "POST", "/tickets", "{\"subject\":\"x\"}");
	assert_int_not_equal(h.curl_rc, CURLE_OK);
	assert_int_equal(h.status, 0);
	http_free(&h);
	assert_int_equal(effects(sl_sim_port(s)), 0);
	sl_sim_stop(s);
}

static void test_fault_timeout(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.timeout_rate = 1};
	struct sl_sim *s = start("helpdesk", &o);
	struct http h;
	int64_t t0 = sl_mono_ms();
	req_full(&h, sl_sim_port(s), "POST", "/tickets", "{\"subject\":\"x\"}", 15, NULL, NULL, 300);
	assert_int_equal(h.curl_rc, CURLE_OPERATION_TIMEDOUT);
	assert_true(sl_mono_ms() - t0 < 3000);
	http_free(&h);
	assert_int_equal(effects(sl_sim_port(s)), 0);
	/* a second hang while the server stops: sl_sim_stop must not wait 30 s */
	sl_sim_stop(s);
	assert_true(sl_mono_ms() - t0 < 5000);
}

static void test_latency(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.latency_ms = 150};
	struct sl_sim *s = start("crm", &o);
	struct http h;
	int64_t t0 = sl_mono_ms();
	req(&h, sl_sim_port(s), "GET", "/accounts", NULL);
	assert_int_equal(h.status, 200);
	assert_true(sl_mono_ms() - t0 >= 150);
	http_free(&h);
	sl_sim_stop(s);
}

static void test_admin_faults(void **state)
{
	(void)state;
	struct sl_sim *s = start("helpdesk", NULL);
	int port = sl_sim_port(s);
	struct http h;
	req(&h, port, "GET", "/_sim/faults", NULL);
	assert_int_equal(h.status, 200);
	assert_true(json_is_false(json_object_get(h.json, "drift")));
	http_free(&h);
	req(&h, port, "POST", "/_sim/faults", "{\"error_rate\":1,\"drift\":true}");
	assert_int_equal(h.status, 200);
	assert_true(json_is_true(json_object_get(h.json, "drift")));
	http_free(&h);
	req(&h, port, "GET", "/tickets/tkt_1", NULL);
	assert_problem(&h, 503, NULL);
	http_free(&h);
	req(&h, port, "POST", "/_sim/faults", "{\"error_rate\":2}");
	assert_problem(&h, 422, "error_rate");
	http_free(&h);
	req(&h, port, "POST", "/_sim/faults", "{\"error_rate\":0}");
	assert_int_equal(h.status, 200);
	http_free(&h);
	req(&h, port, "GET", "/tickets/tkt_1", NULL);
	assert_int_equal(h.status, 200);
	assert_non_null(jstr(h.json, "title")); /* drift still on */
	http_free(&h);
	req(&h, port, "POST", "/_sim/faults", "{\"drift\":false}");
	http_free(&h);
	req(&h, port, "GET", "/tickets/tkt_1", NULL); /* drift renamed responses only, never the state */
	assert_string_equal(jstr(h.json, "subject"), "Cannot log in");
	assert_null(json_object_get(h.json, "title"));
	http_free(&h);
	req(&h, port, "POST", "/tickets", "{\"subject\":\"x\"}");
	http_free(&h);
	assert_int_equal(effects(port), 1);
	req(&h, port, "POST", "/_sim/reset", NULL);
	assert_int_equal(h.status, 200);
	http_free(&h);
	assert_int_equal(effects(port), 0);
	req(&h, port, "GET", "/tickets/tkt_4", NULL); /* back to the seed data */
	assert_problem(&h, 404, NULL);
	http_free(&h);
	req(&h, port, "DELETE", "/_sim/faults", NULL);
	assert_problem(&h, 405, NULL);
	http_free(&h);
	req(&h, port, "GET", "/_sim/nope", NULL);
	assert_problem(&h, 404, NULL);
	http_free(&h);
	sl_sim_stop(s);
}

static void test_two_sims_and_bad_opts(void **state)
{
	(void)state;
	struct sl_sim *a = start("helpdesk", NULL), *b = start("helpdesk", NULL);
	assert_int_not_equal(sl_sim_port(a), sl_sim_port(b));
	struct http h;
	req(&h, sl_sim_port(a), "POST", "/tickets", "{\"subject\":\"only in a\"}");
	assert_int_equal(h.status, 201);
	http_free(&h);
	assert_int_equal(effects(sl_sim_port(a)), 1);
	assert_int_equal(effects(sl_sim_port(b)), 0);
	/* the same port twice fails cleanly */
	struct sl_sim_opts o = {.kind = "crm", .port = sl_sim_port(a)};
	struct sl_sim *c = NULL;
	struct sl_err err;
	assert_int_equal(sl_sim_start(&o, &c, &err), SL_EIO);
	assert_null(c);
	sl_sim_stop(a);
	sl_sim_stop(b);

	o = (struct sl_sim_opts){.kind = "mainframe"};
	assert_int_equal(sl_sim_start(&o, &c, &err), SL_EINVAL);
	assert_non_null(strstr(err.msg, "mainframe"));
	o = (struct sl_sim_opts){.kind = "crm", .error_rate = 1.5};
	assert_int_equal(sl_sim_start(&o, &c, &err), SL_EINVAL);
	o = (struct sl_sim_opts){.kind = "crm", .host = "not-an-ip"};
	assert_int_equal(sl_sim_start(&o, &c, &err), SL_EINVAL);
	sl_sim_stop(NULL);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_helpdesk_crud),
		cmocka_unit_test(test_helpdesk_cursor_walk),
		cmocka_unit_test(test_crm_pages),
		cmocka_unit_test(test_erp_link_pages_and_payments),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_idempotent_replay),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_fault_error),
		cmocka_unit_test(test_fault_malformed),
		cmocka_unit_test(test_fault_drift),
		cmocka_unit_test(test_fault_reset),
		cmocka_unit_test(test_fault_timeout),
		cmocka_unit_test(test_latency),
		cmocka_unit_test(test_admin_faults),
		cmocka_unit_test(test_two_sims_and_bad_opts),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
