/*
 * events.c: CloudEvents 1.0 over HTTP (POST /v1/events).
 *
 * Three content modes (CloudEvents HTTP binding): structured (Content-Type
 * application/cloudevents+json, the body is the event), batched
 * (application/cloudevents-batch+json, an array of events, answered per
 * event) and binary (the attributes in ce-* headers, the body is the data).
 *
 * Routing has one table: a workflow with `trigger: {event: TYPE}` starts for
 * a CloudEvent of that type exactly as it starts for an `emit` of that topic,
 * so a type and a topic are the same name. The run's input is the event's
 * data (what a topic's payload is), and its attributes go into the run.start
 * audit entry. A repeated (source, id) is a duplicate: each subscriber's run
 * is created under the idempotency scope "event:WORKFLOW" with a key made of
 * the source's hash and the id, so a redelivery answers 200 with the first
 * run and a retry after a partial failure starts only the runs still missing.
 * Each answer comes after the runs are committed (accept = durable).
 */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gov/auth.h"
#include "obs/obs.h"
#include "server/server_int.h"

#define CE_BATCH_MAX 100
#define CE_ID_MAX 255
#define CE_SOURCE_MAX 1024
#define CE_ATTR_NAME_MAX 20
#define CE_BINARY_ATTRS_MAX 32

/* The problem with an event, or NULL when it is a valid CloudEvent 1.0.
 * Returns a static string or one written into buf. */
static const char *ce_invalid(const json_t *ev, char *buf, size_t n)
{
	if (!json_is_object(ev))
		return "an event must be a JSON object";
	const json_t *sv = json_object_get(ev, "specversion");
	if (!sv)
		return "specversion is missing (want \"1.0\")";
	if (!json_is_string(sv) || strcmp(json_string_value(sv), "1.0") != 0)
		return "specversion must be \"1.0\"";
	static const char *const required[] = {"id", "source", "type"};
	for (size_t i = 0; i < SL_ARRAY_LEN(required); i++) {
		const json_t *v = json_object_get(ev, required[i]);
		if (!v) {
			snprintf(buf, n, "%s is missing", required[i]);
			return buf;
		}
		if (!json_is_string(v) || !*json_string_value(v)) {
			snprintf(buf, n, "%s must be a non-empty string", required[i]);
			return buf;
		}
	}
	if (strlen(json_string_value(json_object_get(ev, "id"))) > CE_ID_MAX)
		return "id is longer than 255 characters";
	if (strlen(json_string_value(json_object_get(ev, "source"))) > CE_SOURCE_MAX)
		return "source is longer than 1024 characters";
	if (json_object_get(ev, "data") && json_object_get(ev, "data_base64"))
		return "data and data_base64 are both given";
	const json_t *t = json_object_get(ev, "time");
	int64_t ms;
	if (t && (!json_is_string(t) || sl_time_parse(json_string_value(t), &ms)))
		return "time must be an RFC 3339 timestamp";
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)ev, key, v) {
		size_t len = strlen(key);
		bool ok = len >= 1 && len <= CE_ATTR_NAME_MAX;
		for (size_t i = 0; ok && i < len; i++)
			ok = (key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9');
		if (!ok && strcmp(key, "data_base64") != 0) {
			snprintf(buf, n, "attribute name '%.40s' must be 1 to 20 lowercase letters or digits", key);
			return buf;
		}
	}
	return NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes a binary-mode header value (HTTP binding §3.1.3.2). */
static char *pct_decode(const char *s)
{
	size_t n = strlen(s);
	char *out = sl_xmalloc(n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		int hi = s[i] == '%' && i + 2 < n + 1 ? hexval(s[i + 1]) : -1;
		int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
		if (lo >= 0) {
			out[j++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return out;
}

struct ce_headers {
	json_t *ev;
	int n;
};

static enum MHD_Result collect_ce(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	struct ce_headers *h = cls;
	if (strncasecmp(key, "ce-", 3) != 0 || !value || h->n >= CE_BINARY_ATTRS_MAX)
		return MHD_YES;
	/* a name too long or empty is kept (cut) for ce_invalid to name it */
	char name[CE_ATTR_NAME_MAX * 2];
	size_t len = strlen(key + 3);
	if (len >= sizeof name)
		len = sizeof name - 1;
	name[len] = '\0';
	if (len == 0)
		snprintf(name, sizeof name, "%s", "-");
	for (size_t i = 0; i < len; i++) {
		char c = key[3 + i];
		name[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	char *v = pct_decode(value);
	json_object_set_new(h->ev, name, json_string(v));
	free(v);
	h->n++;
	return MHD_YES;
}

static bool media_is(const char *ct, const char *type)
{
	size_t n = strlen(type);
	return ct && strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Whether a media type carries JSON (application/json or any +json). */
static bool media_json(const char *ct)
{
	if (!ct)
		return false;
	size_t n = strcspn(ct, "; ");
	return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
	       (n >= 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* The event of a binary-mode request: ce-* headers and the body as data.
 * Returns owned, or NULL with *why set when the body is not what its
 * Content-Type says. */
static json_t *ce_from_binary(struct srv_req *r, const char **why)
{
	struct ce_headers h = {json_object(), 0};
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_ce, &h);
	const char *ct = srv_header(r, "Content-Type");
	if (ct)
		json_object_set_new(h.ev, "datacontenttype", json_string(ct));
	if (r->body.len == 0)
		return h.ev;
	if (media_json(ct)) {
		json_t *data = json_loadb(sl_buf_str(&r->body), r->body.len, JSON_DECODE_ANY, NULL);
		if (!data) {
			json_decref(h.ev);
			*why = "the body is not JSON although Content-Type says so";
			return NULL;
		}
		json_object_set_new(h.ev, "data", data);
	} else {
		json_t *data = json_stringn(sl_buf_str(&r->body), r->body.len);
		if (!data) { /* not UTF-8: the run input is JSON, so keep it as base64 */
			json_decref(h.ev);
			*why = "a binary-mode body that is not JSON must be UTF-8 text";
			return NULL;
		}
		json_object_set_new(h.ev, "data", data);
	}
	return h.ev;
}

/* The workflows an event of this type starts: current versions only (older
 * ones stay loaded for the runs that started on them). */
static size_t subscribers(const struct sl_project *p, const char *type, const struct sl_workflow **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < p->nworkflows && n < max; i++) {
		const struct sl_workflow *w = p->workflows[i];
		if (w->trigger.kind == SL_TRIGGER_EVENT && w->trigger.event && strcmp(w->trigger.event, type) == 0 &&
		    sl_project_workflow(p, w->name) == w)
			out[n++] = w;
	}
	return n;
}

static json_t *result_problem(int status, const char *detail, json_t *errors)
{
	json_t *o = json_pack("{s:i, s:s}", "status", status, "detail", detail);
	if (errors)
		json_object_set_new(o, "errors", errors);
	return o;
}

static void count_rejected(const char *reason)
{
	const char *l[] = {reason};
	sl_metric_add(SL_M_EVENTS_REJECTED, l, 1);
}

/* Checks the event's data against every subscriber's contract before any
 * run starts, so a bad event starts none. Returns NULL or a problem. */
static json_t *check_contracts(const struct sl_workflow *const *ws, size_t n, const json_t *data)
{
	for (size_t i = 0; i < n; i++) {
		if (!ws[i]->trigger.contract)
			continue;
		struct sl_verrs ve = {0};
		if (sl_schema_validate(ws[i]->trigger.contract, data, &ve)) {
			sl_verrs_free(&ve);
			continue;
		}
		char *j = sl_verrs_join(&ve);
		char *d = sl_asprintf("data does not meet %s (workflow %s): %s", sl_schema_id(ws[i]->trigger.contract),
				      ws[i]->name, j);
		json_t *errs = json_array();
		for (size_t k = 0; k < ve.n; k++)
			json_array_append_new(errs, json_pack("{s:s, s:s}", "pointer", ve.v[k].pointer ? ve.v[k].pointer : "",
							      "message", ve.v[k].msg ? ve.v[k].msg : ""));
		json_t *res = result_problem(400, d, errs);
		free(d);
		free(j);
		sl_verrs_free(&ve);
		return res;
	}
	return NULL;
}

/* The attributes recorded with each run (the data is the run's input). */
static json_t *ce_audit(const json_t *ev)
{
	json_t *attrs = json_deep_copy(ev);
	json_object_del(attrs, "data");
	json_object_del(attrs, "data_base64");
	return json_pack("{s:o}", "cloudevent", attrs);
}

/* Starts the runs of one valid event. Returns its result: {status, id,
 * source, type, duplicate, run_id, runs: [{workflow, run_id, duplicate}]}
 * with status 202 (a new run) or 200 (all were there), or a problem. */
static json_t *ce_route(struct sl_server *s, struct srv_req *r, const json_t *ev, const char *corr)
{
	const char *id = json_string_value(json_object_get(ev, "id"));
	const char *source = json_string_value(json_object_get(ev, "source"));
	const char *type = json_string_value(json_object_get(ev, "type"));
	const struct sl_workflow *ws[64];
	size_t n = subscribers(sl_engine_project(s->e), type, ws, SL_ARRAY_LEN(ws));
	if (n == 0) {
		count_rejected("unrouted");
		char *d = sl_asprintf("no workflow has trigger {event: %s}", type);
		json_t *res = result_problem(404, d, NULL);
		free(d);
		return res;
	}
	const json_t *data = json_object_get(ev, "data");
	if (!data)
		data = json_object_get(ev, "data_base64");
	json_t *null_data = data ? NULL : json_null();
	if (!data)
		data = null_data;
	json_t *bad = check_contracts(ws, n, data);
	if (bad) {
		count_rejected("contract");
		return bad;
	}
	char src_hash[65];
	sl_sha256_hex(source, strlen(source), src_hash);
	char *key = sl_asprintf("%.16s:%s", src_hash, id);
	json_t *detail = ce_audit(ev);
	json_t *runs = json_array();
	json_t *res = NULL;
	bool any_new = false;
	for (size_t i = 0; i < n && !res; i++) {
		char *scope = sl_asprintf("event:%s", ws[i]->name);
		struct sl_start st = {
			.workflow = ws[i]->name,
			.input = data,
			.idem_scope = scope,
			.idem_key = key,
			.correlation_id = corr,
			.trigger = "event",
			.actor = srv_actor(r, NULL),
			.role = r->auth.ok ? sl_role_name(r->auth.role) : NULL,
			.audit_detail = detail,
		};
		char run_id[SL_ID_MAX] = "";
		bool existed = false;
		struct sl_err err;
		sl_err_clear(&err);
		int rc = sl_engine_start_run(s->e, &st, run_id, &existed, &err);
		free(scope);
		if (rc) {
			res = result_problem(rc == SL_EINVAL ? 400 : rc == SL_EBUSY ? 503 : 500,
					     err.msg[0] ? err.msg : sl_code_message(rc), NULL);
			break;
		}
		any_new |= !existed;
		json_array_append_new(runs, json_pack("{s:s, s:s, s:b}", "workflow", ws[i]->name, "run_id", run_id,
						      "duplicate", existed));
	}
	free(key);
	json_decref(detail);
	json_decref(null_data);
	if (res) {
		json_decref(runs);
		return res;
	}
	const char *l[] = {type};
	if (any_new) {
		sl_metric_add(SL_M_EVENTS_ACCEPTED, l, 1);
	} else {
		const char *d[] = {"event"};
		sl_metric_add(SL_M_DUPLICATES_SKIPPED, d, 1);
	}
	const char *first = json_string_value(json_object_get(json_array_get(runs, 0), "run_id"));
	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:b, s:s, s:o}", "status", any_new ? 202 : 200, "id", id, "source",
			 source, "type", type, "status_text", any_new ? "accepted" : "existing", "duplicate", !any_new,
			 "run_id", first, "runs", runs);
}

/* Validates and routes one event (borrowed). */
static json_t *ce_one(struct sl_server *s, struct srv_req *r, const json_t *ev, const char *corr)
{
	char buf[128];
	const char *why = ce_invalid(ev, buf, sizeof buf);
	if (why) {
		count_rejected("invalid");
		return result_problem(400, why, NULL);
	}
	return ce_route(s, r, ev, corr);
}

/* Answers a single event's result: the run document, or a problem. */
static void reply_result(struct srv_req *r, json_t *res)
{
	int status = (int)json_integer_value(json_object_get(res, "status"));
	if (status == 200 || status == 202) {
		const char *run_id = json_string_value(json_object_get(res, "run_id"));
		snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
		snprintf(r->location, sizeof r->location, "/v1/runs/%s", run_id);
		/* "status" of the body says accepted/existing, as the run API does */
		json_object_set(res, "status", json_object_get(res, "status_text"));
		json_object_del(res, "status_text");
		srv_reply_json(r, status, res);
		return;
	}
	json_t *errors = json_incref(json_object_get(res, "errors"));
	srv_problem_errs(r, status, json_string_value(json_object_get(res, "detail")), errors);
	json_decref(res);
}

static json_t *parse_body(struct srv_req *r)
{
	if (r->body.len == 0) {
		srv_problem(r, 400, "the body is empty");
		return NULL;
	}
	json_error_t je;
	json_t *doc = json_loadb(sl_buf_str(&r->body), r->body.len, 0, &je);
	if (!doc) {
		char *d = sl_asprintf("body is not JSON: %s at line %d column %d", je.text, je.line, je.column);
		srv_problem(r, 400, d);
		free(d);
	}
	return doc;
}

static void ce_batch(struct sl_server *s, struct srv_req *r)
{
	json_t *doc = parse_body(r);
	if (!doc)
		return;
	if (!json_is_array(doc) || json_array_size(doc) == 0 || json_array_size(doc) > CE_BATCH_MAX) {
		json_decref(doc);
		count_rejected("invalid");
		srv_problem(r, 400, "a batch must be a JSON array of 1 to 100 events");
		return;
	}
	json_t *results = json_array();
	size_t i;
	json_t *ev;
	json_array_foreach(doc, i, ev) {
		/* each event its own correlation id: they are separate deliveries */
		json_t *res = ce_one(s, r, ev, NULL);
		json_object_set_new(res, "index", json_integer((json_int_t)i));
		json_t *st = json_object_get(res, "status_text");
		if (st) {
			json_object_set(res, "state", st);
			json_object_del(res, "status_text");
		}
		json_array_append_new(results, res);
	}
	json_decref(doc);
	srv_reply_json(r, 200, json_pack("{s:o}", "results", results));
}

void srv_events(struct sl_server *s, struct srv_req *r)
{
	const char *ct = srv_header(r, "Content-Type");
	if (media_is(ct, "application/cloudevents-batch+json")) {
		ce_batch(s, r);
		return;
	}
	json_t *ev;
	if (media_is(ct, "application/cloudevents+json")) {
		ev = parse_body(r);
		if (!ev)
			return;
	} else {
		if (!srv_header(r, "ce-specversion")) {
			count_rejected("invalid");
			srv_problem(r, 400,
				    "not a CloudEvent: send Content-Type application/cloudevents+json (structured), "
				    "application/cloudevents-batch+json (batch), or ce-specversion, ce-id, ce-source "
				    "and ce-type headers (binary)");
			return;
		}
		const char *why = NULL;
		ev = ce_from_binary(r, &why);
		if (!ev) {
			count_rejected("invalid");
			srv_problem(r, 400, why);
			return;
		}
	}
	reply_result(r, ce_one(s, r, ev, r->corr));
	json_decref(ev);
}
