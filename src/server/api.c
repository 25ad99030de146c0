/*
 * api.c: the run API handlers (/healthz, /readyz, /v1/workflows, /v1/runs,
 * /v1/dlq, /v1/openapi.json). Each answers through srv_reply_json or
 * srv_problem; nothing here talks to libmicrohttpd directly.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "contract/contract.h"
#include "obs/obs.h"
#include "gov/auth.h"
#include "server/server_int.h"
#include "store/store.h"

#define LIST_LIMIT_MAX 500

/* The console's place: a page that says where things are until the console
 * (web/) lands. */
void srv_console(struct sl_server *s, struct srv_req *r)
{
	(void)s;
	static const char page[] =
		"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sluice</title>"
		"<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;color:#222}"
		"code{background:#f3f3f3;padding:0 .3em}</style></head><body>"
		"<h1>Sluice</h1><p>The console is coming. Meanwhile:</p><ul>"
		"<li><a href=\"/v1/runs\">/v1/runs</a>: runs, newest first (<code>sluice runs list</code>)</li>"
		"<li><a href=\"/v1/workflows\">/v1/workflows</a>: the loaded workflows</li>"
		"<li><a href=\"/v1/dlq\">/v1/dlq</a>: dead runs (<code>sluice dlq list</code>)</li>"
		"<li><a href=\"/v1/approvals?status=pending\">/v1/approvals</a>: runs waiting for a decision "
		"(<code>sluice approvals list</code>)</li>"
		"<li><a href=\"/v1/openapi.json\">/v1/openapi.json</a>: the API, OpenAPI 3.1</li>"
		"<li><a href=\"/healthz\">/healthz</a> and <a href=\"/readyz\">/readyz</a></li>"
		"</ul></body></html>\n";
	r->status = 200;
	free(r->resp_body);
	r->resp_body = sl_strdup(page);
	r->resp_type = "text/html; charset=utf-8";
}

void srv_healthz(struct sl_server *s, struct srv_req *r)
{
	(void)s;
	srv_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void srv_readyz(struct sl_server *s, struct srv_req *r)
{
	json_t *counts = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_counts(sl_engine_store(s->e), &counts, &err) != 0) {
		r->retry_after = true;
		srv_problem(r, 503, "store not reachable");
		return;
	}
	json_decref(counts);
	srv_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

void srv_openapi(struct sl_server *s, struct srv_req *r)
{
	(void)s;
	r->status = 200;
	r->resp_body = sl_strdup(sl_server_openapi());
	r->resp_type = "application/json";
}

static json_t *trigger_json(const struct sl_trigger *t)
{
	switch (t->kind) {
	case SL_TRIGGER_WEBHOOK:
		return json_pack("{s:s, s:s, s:b}", "kind", "webhook", "path", t->path ? t->path : "", "signed",
				 t->hmac_secret_ref != NULL);
	case SL_TRIGGER_EVENT: return json_pack("{s:s, s:s}", "kind", "event", "event", t->event ? t->event : "");
	case SL_TRIGGER_SCHEDULE:
		return json_pack("{s:s, s:s, s:s, s:s}", "kind", "schedule", "schedule", t->schedule ? t->schedule : "",
				 "timezone", t->timezone ? t->timezone : "UTC", "catch_up",
				 t->catch_up == SL_CATCH_UP_ALL ? "all" : t->catch_up == SL_CATCH_UP_NONE ? "none" : "one");
	case SL_TRIGGER_STREAM:
		return json_pack("{s:s, s:s, s:s?}", "kind", "stream", "connector", t->stream ? t->stream->name : "",
				 "group", t->group);
	default: return json_pack("{s:s}", "kind", "api");
	}
}

/* What a workflow's model calls cost: in all, and this UTC month (what a
 * monthly budget counts); null parts when the store cannot say. */
static json_t *workflow_spend(struct sl_server *s, const char *name)
{
	struct sl_store *st = sl_engine_store(s->e);
	struct sl_err err;
	double total = 0, month = 0;
	bool ok = sl_store_ai_spent(st, "workflow", name, 0, &total, &err) == 0 &&
		  sl_store_ai_spent(st, "workflow", name, sl_utc_month_start_ms(sl_now_ms()), &month, &err) == 0;
	return ok ? json_pack("{s:f, s:f}", "total", total, "month", month) : json_null();
}

void srv_workflows(struct sl_server *s, struct srv_req *r)
{
	struct sl_project *p = sl_engine_project(s->e);
	json_t *arr = json_array();
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		json_t *o = json_pack("{s:s, s:i, s:o, s:I}", "name", w->name, "version", w->version, "trigger",
				      trigger_json(&w->trigger), "steps", (json_int_t)w->nsteps);
		json_object_set_new(o, "owner", w->owner ? json_string(w->owner) : json_null());
		json_object_set_new(o, "description", w->description ? json_string(w->description) : json_null());
		if (w->trigger.contract && sl_schema_id(w->trigger.contract))
			json_object_set_new(o, "contract", json_string(sl_schema_id(w->trigger.contract)));
		json_object_set_new(o, "ai_cost_usd", workflow_spend(s, w->name));
		json_array_append_new(arr, o);
	}
	srv_reply_json(r, 200, json_pack("{s:o}", "workflows", arr));
}

static json_t *verrs_json(const struct sl_verrs *ve)
{
	json_t *a = json_array();
	for (size_t i = 0; i < ve->n; i++)
		json_array_append_new(a, json_pack("{s:s, s:s}", "pointer", ve->v[i].pointer ? ve->v[i].pointer : "",
						   "message", ve->v[i].msg ? ve->v[i].msg : ""));
	return a;
}

json_t *srv_body_input(struct srv_req *r, const struct sl_schema *schema)
{
	json_t *in;
	if (r->body.len == 0) {
		in = json_object();
	} else {
		json_error_t je;
		in = json_loadb(sl_buf_str(&r->body), r->body.len, JSON_DECODE_ANY, &je);
		if (!in) {
			char *d = sl_asprintf("body is not JSON: %s at line %d column %d", je.text, je.line, je.column);
			srv_problem(r, 400, d);
			free(d);
			return NULL;
		}
	}
	if (schema) {
		struct sl_verrs ve = {0};
		if (!sl_schema_validate(schema, in, &ve)) {
			char *j = sl_verrs_join(&ve);
			srv_problem_errs(r, 400, j, verrs_json(&ve));
			free(j);
			sl_verrs_free(&ve);
			json_decref(in);
			return NULL;
		}
		sl_verrs_free(&ve);
	}
	return in;
}

/* Answers a committed start: 202 new, 200 when the key was seen. */
static void reply_started(struct srv_req *r, const char *run_id, bool existed)
{
	snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
	snprintf(r->location, sizeof r->location, "/v1/runs/%s", run_id);
	json_t *links = json_pack("{s:s, s:s}", "self", r->location, "cancel", "");
	char *cancel = sl_asprintf("/v1/runs/%s/cancel", run_id);
	json_object_set_new(links, "cancel", json_string(cancel));
	free(cancel);
	srv_reply_json(r, existed ? 200 : 202,
		       json_pack("{s:s, s:s, s:b, s:o}", "run_id", run_id, "status", existed ? "existing" : "accepted",
				 "duplicate", existed, "links", links));
}

/* Who is acting for the audit log: the principal of the caller's API key
 * (user, service or agent), or the service a webhook's path names. */
struct sl_audit_actor srv_actor(const struct srv_req *r, const char *webhook_scope)
{
	if (webhook_scope)
		return (struct sl_audit_actor){SL_ACTOR_SERVICE, webhook_scope};
	if (!r->auth.ok)
		return (struct sl_audit_actor){SL_ACTOR_USER, "anonymous"};
	int k = sl_actor_kind_parse(r->auth.kind);
	return (struct sl_audit_actor){k > 0 ? (enum sl_actor_kind)k : SL_ACTOR_USER, r->auth.principal};
}

void srv_start_and_reply(struct sl_server *s, struct srv_req *r, const struct sl_workflow *w, json_t *in,
			 const char *scope, const char *key, const char *trigger)
{
	struct sl_start st = {
		.workflow = w->name,
		.input = in,
		.idem_scope = scope,
		.idem_key = key,
		.correlation_id = r->corr,
		.trigger = trigger,
		.actor = srv_actor(r, strcmp(trigger, "webhook") == 0 ? scope : NULL),
		.role = r->auth.ok ? sl_role_name(r->auth.role) : NULL,
		.tenant = srv_tenant_of_new(r),
	};
	char run_id[SL_ID_MAX] = "";
	bool existed = false;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_engine_start_run(s->e, &st, run_id, &existed, &err);
	json_decref(in);
	if (rc)
		srv_problem_code(r, rc, &err);
	else
		reply_started(r, run_id, existed);
}

void srv_start_run(struct sl_server *s, struct srv_req *r)
{
	const struct sl_workflow *w = sl_project_workflow(sl_engine_project(s->e), r->params[0]);
	if (!w) {
		srv_problem(r, 404, "no such workflow");
		return;
	}
	json_t *in = srv_body_input(r, w->trigger.contract);
	if (!in)
		return;
	const char *key = srv_header(r, "Idempotency-Key");
	if (key && (!*key || strlen(key) > 255)) {
		json_decref(in);
		srv_problem(r, 400, "Idempotency-Key must be 1 to 255 characters");
		return;
	}
	srv_start_and_reply(s, r, w, in, "api", key, "api");
}

int srv_parse_limit(struct srv_req *r, size_t *limit)
{
	const char *v = srv_query(r, "limit");
	int64_t n;
	*limit = 0;
	if (!v)
		return 0;
	if (sl_parse_i64(v, &n) || n < 1 || n > LIST_LIMIT_MAX) {
		srv_problem(r, 400, "limit must be a number from 1 to 500");
		return -1;
	}
	*limit = (size_t)n;
	return 0;
}

void srv_runs_list(struct sl_server *s, struct srv_req *r)
{
	struct sl_run_filter f = {.status = -1};
	f.workflow = srv_query(r, "workflow");
	f.cursor = srv_query(r, "cursor");
	const char *st = srv_query(r, "status");
	if (st) {
		f.status = sl_run_status_parse(st);
		if (f.status < 0) {
			srv_problem(r, 400, "unknown status (queued, running, waiting, completed, dead, cancelled, ...)");
			return;
		}
	}
	if (srv_parse_limit(r, &f.limit))
		return;
	f.tenant = srv_tenant_scope(r);
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_runs_list(sl_engine_store(s->e), &f, &doc, &err);
	if (rc) {
		srv_problem_code(r, rc, &err);
		return;
	}
	srv_reply_json(r, 200, doc);
}

void srv_run_get(struct sl_server *s, struct srv_req *r)
{
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_run_get(sl_engine_store(s->e), r->params[0], &doc, &err);
	if (!rc && !srv_doc_visible(r, doc)) {
		json_decref(doc);
		rc = SL_ENOTFOUND; /* another tenant's run: as if there were none */
	}
	if (rc) {
		srv_problem_code(r, rc, rc == SL_ENOTFOUND ? NULL : &err);
		return;
	}
	snprintf(r->run_id, sizeof r->run_id, "%s", r->params[0]);
	char held[256];
	if (sl_engine_run_held(s->e, doc, held, sizeof held)) /* why it does not move */
		json_object_set_new(doc, "paused_by", json_string(held));
	srv_reply_json(r, 200, doc);
}

/* GET /v1/runs/ID/trace: the run's span tree as OTLP/JSON. */
void srv_run_trace(struct sl_server *s, struct srv_req *r)
{
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_run_get(sl_engine_store(s->e), r->params[0], &doc, &err);
	if (!rc && !srv_doc_visible(r, doc)) {
		json_decref(doc);
		rc = SL_ENOTFOUND; /* another tenant's run: as if there were none */
	}
	if (rc) {
		srv_problem_code(r, rc, rc == SL_ENOTFOUND ? NULL : &err);
		return;
	}
	snprintf(r->run_id, sizeof r->run_id, "%s", r->params[0]);
	json_t *trace = sl_trace_from_run(doc);
	json_decref(doc);
	if (!trace) {
		srv_problem(r, 500, "the run has no id");
		return;
	}
	srv_reply_json(r, 200, trace);
}

void srv_run_cancel(struct sl_server *s, struct srv_req *r)
{
	struct sl_err err;
	sl_err_clear(&err);
	snprintf(r->run_id, sizeof r->run_id, "%s", r->params[0]);
	if (!srv_run_visible(s, r, r->params[0])) {
		srv_problem_code(r, SL_ENOTFOUND, NULL);
		return;
	}
	struct sl_audit_actor actor = srv_actor(r, NULL);
	int rc = sl_engine_cancel(s->e, r->params[0], &actor, &err);
	if (rc == SL_EINVAL) {
		srv_problem(r, 409, "the run has already ended");
		return;
	}
	if (rc) {
		srv_problem_code(r, rc, rc == SL_ENOTFOUND ? NULL : &err);
		return;
	}
	srv_reply_json(r, 200, json_pack("{s:s, s:s}", "run_id", r->params[0], "status", "cancelled"));
}

/* A time filter: RFC 3339 or ms since the epoch. */
int srv_parse_time(struct srv_req *r, const char *name, int64_t *out)
{
	const char *v = srv_query(r, name);
	*out = 0;
	if (!v)
		return 0;
	if (sl_parse_i64(v, out) == 0 || sl_time_parse(v, out) == 0)
		return 0;
	char *d = sl_asprintf("%s must be an RFC 3339 time or ms since the epoch", name);
	srv_problem(r, 400, d);
	free(d);
	return -1;
}

static int dlq_filter(struct srv_req *r, struct sl_dlq_filter *f)
{
	memset(f, 0, sizeof *f);
	f->error_class = -1;
	f->workflow = srv_query(r, "workflow");
	f->step_id = srv_query(r, "step");
	f->cursor = srv_query(r, "cursor");
	const char *cls = srv_query(r, "error_class");
	if (cls) {
		f->error_class = sl_class_parse(cls);
		if (f->error_class < 0) {
			srv_problem(r, 400, "unknown error_class (transient, permanent, auth, contract, policy, budget)");
			return -1;
		}
	}
	const char *inc = srv_query(r, "include_replayed");
	f->include_replayed = inc && strcmp(inc, "true") == 0;
	if (srv_parse_time(r, "since", &f->since) || srv_parse_time(r, "until", &f->until))
		return -1;
	f->tenant = srv_tenant_scope(r);
	return srv_parse_limit(r, &f->limit);
}

void srv_dlq_list(struct sl_server *s, struct srv_req *r)
{
	struct sl_dlq_filter f;
	if (dlq_filter(r, &f))
		return;
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int64_t total = 0;
	int rc = sl_store_dlq_list(sl_engine_store(s->e), &f, &doc, &err);
	if (!rc)
		rc = sl_store_dlq_count(sl_engine_store(s->e), &f, &total, &err);
	if (rc) {
		json_decref(doc);
		srv_problem_code(r, rc, &err);
		return;
	}
	json_object_set_new(doc, "total", json_integer(total));
	srv_reply_json(r, 200, doc);
}

/* The optional replay body {"input": ..., "version": "newest" | "own"}. */
static int replay_opts(struct srv_req *r, json_t **body, const json_t **input, bool *newest)
{
	*body = NULL;
	*input = NULL;
	*newest = false;
	if (r->body.len == 0)
		return 0;
	json_error_t je;
	*body = json_loadb(sl_buf_str(&r->body), r->body.len, 0, &je);
	if (!*body || !json_is_object(*body)) {
		json_decref(*body);
		*body = NULL;
		srv_problem(r, 400, "body must be a JSON object {\"input\": ..., \"version\": \"newest\"|\"own\"}");
		return -1;
	}
	*input = json_object_get(*body, "input");
	const json_t *v = json_object_get(*body, "version");
	if (v) {
		const char *vs = json_string_value(v);
		if (!vs || (strcmp(vs, "newest") != 0 && strcmp(vs, "own") != 0)) {
			srv_problem_errs(r, 400, "version must be \"newest\" or \"own\"",
					 json_pack("[{s:s, s:s}]", "pointer", "/version", "message",
						   "must be \"newest\" or \"own\""));
			json_decref(*body);
			*body = NULL;
			return -1;
		}
		*newest = strcmp(vs, "newest") == 0;
	}
	return 0;
}

/* Whether the DLQ entry belongs to a run of the caller's tenant. */
static bool dlq_visible(struct sl_server *s, struct srv_req *r, const char *dlq_id)
{
	if (!srv_tenant_scope(r))
		return true;
	struct sl_dlq_filter f = {.error_class = -1, .include_replayed = true, .id = dlq_id,
				  .tenant = srv_tenant_scope(r), .limit = 1};
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	bool ok = sl_store_dlq_list(sl_engine_store(s->e), &f, &doc, &err) == 0 &&
		  json_array_size(json_object_get(doc, "entries")) > 0;
	json_decref(doc);
	return ok;
}

void srv_dlq_replay(struct sl_server *s, struct srv_req *r)
{
	json_t *body;
	const json_t *input;
	bool newest;
	if (!dlq_visible(s, r, r->params[0])) {
		srv_problem_code(r, SL_ENOTFOUND, NULL);
		return;
	}
	if (replay_opts(r, &body, &input, &newest))
		return;
	char run_id[SL_ID_MAX] = "";
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_audit_actor actor = srv_actor(r, NULL);
	int rc = sl_engine_replay(s->e, r->params[0], input, newest, &actor, run_id, &err);
	json_decref(body);
	if (rc == SL_EINVAL) {
		srv_problem(r, 409, err.msg[0] ? err.msg : "already replayed, or the run is no longer dead");
		return;
	}
	if (rc) {
		srv_problem_code(r, rc, &err);
		return;
	}
	snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
	srv_reply_json(r, 202, json_pack("{s:s, s:s, s:s}", "dlq_id", r->params[0], "run_id", run_id, "status",
					 "queued"));
}

/* Replays one page of the entries the filters match (limit, default the
 * most a page holds) from cursor on, and answers where to go on from:
 * {"matched": entries matching when the call began (cursor aside),
 *  "replayed": n, "runs": [...], "failed": [{id, detail}], "next_cursor"}.
 * A client replays everything by following next_cursor until null, and
 * shows progress as it goes (sluice dlq replay --all does). */
void srv_dlq_replay_bulk(struct sl_server *s, struct srv_req *r)
{
	struct sl_dlq_filter f;
	if (dlq_filter(r, &f))
		return;
	json_t *body;
	const json_t *input;
	bool newest;
	if (replay_opts(r, &body, &input, &newest))
		return;
	f.include_replayed = false;
	if (f.limit == 0)
		f.limit = LIST_LIMIT_MAX;
	struct sl_store *store = sl_engine_store(s->e);
	struct sl_err err;
	sl_err_clear(&err);
	int64_t matched = 0;
	json_t *page = NULL;
	int rc = sl_store_dlq_count(store, &f, &matched, &err);
	if (!rc)
		rc = sl_store_dlq_list(store, &f, &page, &err);
	if (rc) {
		json_decref(body);
		srv_problem_code(r, rc, &err);
		return;
	}
	json_t *failed = json_array();
	json_t *runs = json_array();
	struct sl_audit_actor actor = srv_actor(r, NULL);
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(page, "entries"), i, e)
	{
		const char *id = json_string_value(json_object_get(e, "id"));
		char run_id[SL_ID_MAX];
		sl_err_clear(&err);
		if (!id)
			continue;
		if (sl_engine_replay(s->e, id, input, newest, &actor, run_id, &err) == 0)
			json_array_append_new(runs, json_string(run_id));
		else
			json_array_append_new(failed, json_pack("{s:s, s:s}", "id", id, "detail", err.msg));
	}
	json_t *next = json_incref(json_object_get(page, "next_cursor"));
	json_decref(page);
	json_decref(body);
	srv_reply_json(r, 200, json_pack("{s:I, s:I, s:o, s:o, s:o}", "matched", (json_int_t)matched, "replayed",
					 (json_int_t)json_array_size(runs), "runs", runs, "failed", failed,
					 "next_cursor", next ? next : json_null()));
}

/* GET /v1/costs?group_by=workflow|route|model|tenant&since=: what model
 * calls cost, grouped, most expensive first, with the total. */
void srv_costs(struct sl_server *s, struct srv_req *r)
{
	const char *group_by = srv_query(r, "group_by");
	if (!group_by)
		group_by = "workflow";
	if (strcmp(group_by, "workflow") && strcmp(group_by, "route") && strcmp(group_by, "model") &&
	    strcmp(group_by, "tenant")) {
		srv_problem(r, 400, "group_by is workflow, route, model or tenant");
		return;
	}
	int64_t since;
	if (srv_parse_time(r, "since", &since))
		return;
	json_t *groups = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_ai_costs_tenant(sl_engine_store(s->e), group_by, since, srv_tenant_scope(r), &groups, &err);
	if (rc) {
		srv_problem_code(r, rc, &err);
		return;
	}
	json_int_t calls = 0, tin = 0, tout = 0, hits = 0;
	double usd = 0;
	size_t i;
	json_t *g;
	json_array_foreach(groups, i, g)
	{
		calls += json_integer_value(json_object_get(g, "calls"));
		hits += json_integer_value(json_object_get(g, "cache_hits"));
		tin += json_integer_value(json_object_get(g, "tokens_in"));
		tout += json_integer_value(json_object_get(g, "tokens_out"));
		usd += json_number_value(json_object_get(g, "cost_usd"));
	}
	json_t *total = json_pack("{s:I, s:I, s:I, s:I, s:f}", "calls", calls, "cache_hits", hits, "tokens_in", tin,
				  "tokens_out", tout, "cost_usd", usd);
	srv_reply_json(r, 200, json_pack("{s:s, s:I, s:o, s:o}", "group_by", group_by, "since", (json_int_t)since,
					 "groups", groups, "total", total));
}

static json_t *time_or_null(int64_t ms)
{
	if (!ms)
		return json_null();
	char t[32];
	sl_time_format(ms, t);
	return json_string(t);
}

/* GET /v1/connectors: each connector's health as this process saw it. */
/* The polling syncs that read through c, from the store's trigger state
 * (whichever process runs them): {workflow, action, last_sync, lag_seconds,
 * since, records, runs}; lag and last_sync are null before a first pass. */
static json_t *connector_syncs(struct sl_server *s, const struct sl_project *p, const struct sl_connector *c)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		if (w->trigger.kind != SL_TRIGGER_POLL || w->trigger.sync.connector != c ||
		    sl_project_workflow(p, w->name) != w)
			continue;
		char name[160];
		snprintf(name, sizeof name, "poll:%s", w->name);
		json_t *st = NULL;
		struct sl_err err;
		sl_err_clear(&err);
		sl_store_trigger_state_get(sl_engine_store(s->e), name, &st, &err);
		int64_t last = json_integer_value(json_object_get(st, "last_sync_ms"));
		json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:O?, s:O?, s:O?}", "workflow", w->name, "action",
				      w->trigger.sync.action->name, "last_sync", time_or_null(last), "lag_seconds",
				      last ? json_real((double)(sl_now_ms() - last) / 1000.0) : json_null(), "since",
				      json_object_get(st, "since"), "records", json_object_get(st, "records"), "runs",
				      json_object_get(st, "runs"));
		json_decref(st);
		json_array_append_new(arr, o);
	}
	return arr;
}

void srv_connectors(struct sl_server *s, struct srv_req *r)
{
	struct sl_project *p = sl_engine_project(s->e);
	json_t *arr = json_array();
	for (size_t i = 0; i < p->nconnectors; i++) {
		const struct sl_connector *c = p->connectors[i];
		struct sl_health h;
		sl_connector_health(p->connectors[i], &h);
		json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:I}", "name", c->name, "type", c->type->name,
				      "state", srv_connector_state(&h), "last_success", time_or_null(h.last_success_ms),
				      "last_error_at", time_or_null(h.last_error_ms), "calls", (json_int_t)h.calls,
				      "errors", (json_int_t)h.errors);
		bool failed = h.last_error_ms != 0;
		json_object_set_new(o, "last_error_class",
				    failed ? json_string(sl_class_name(h.last_error_class)) : json_null());
		json_object_set_new(o, "last_error", failed ? json_string(h.last_error) : json_null());
		json_object_set_new(o, "syncs", connector_syncs(s, p, c));
		if (sl_stream_is(c))
			json_object_set_new(o, "stream",
					    json_pack("{s:o, s:I, s:I, s:I}", "lag",
						      h.lag >= 0 && h.stream ? json_integer(h.lag) : json_null(),
						      "consumed", (json_int_t)h.consumed, "redelivered",
						      (json_int_t)h.redelivered, "duplicates_skipped",
						      (json_int_t)h.duplicates));
		json_array_append_new(arr, o);
	}
	srv_reply_json(r, 200, json_pack("{s:o}", "connectors", arr));
}
