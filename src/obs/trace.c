/*
 * trace.c: a run's span tree, as OTLP/JSON (the OpenTelemetry protocol's
 * JSON mapping: ids in hex, times as strings of Unix nanoseconds).
 *
 * The spans are not stored twice: the run document already holds every
 * time they need (the run's creation and end, each step's start and end,
 * each attempt's start and duration, each model call's end and latency), so
 * the tree is derived from it. Span ids are the first 16 hex digits of the
 * SHA-256 of the span's path in the run ("RUN/step/ID/attempt/N"), so the
 * same run always gives the same ids; the trace id is the run's correlation
 * id's (sl_trace_id), shared with every outbound call's traceparent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/obs.h"

enum { KIND_INTERNAL = 1, KIND_CLIENT = 3 };
enum { STATUS_UNSET = 0, STATUS_OK = 1, STATUS_ERROR = 2 };

struct tracer {
	char trace_id[33];
	const char *run_id;
	json_t *spans;
};

static void span_id(const struct tracer *t, const char *path, char out[17])
{
	char *full = sl_asprintf("%s/%s", t->run_id, path);
	char h[65];
	sl_sha256_hex(full, strlen(full), h);
	free(full);
	memcpy(out, h, 16);
	out[16] = '\0';
}

static json_t *nanos(int64_t ms)
{
	char b[32];
	snprintf(b, sizeof b, "%lld000000", (long long)(ms > 0 ? ms : 0));
	return json_string(b);
}

static void attr(json_t *attrs, const char *key, json_t *value)
{
	if (!value || json_is_null(value)) {
		json_decref(value);
		return;
	}
	json_t *v;
	if (json_is_string(value))
		v = json_pack("{s:O}", "stringValue", value);
	else if (json_is_integer(value)) /* OTLP/JSON: 64-bit integers as strings */
		v = json_pack("{s:o}", "intValue", json_sprintf("%lld", (long long)json_integer_value(value)));
	else if (json_is_real(value))
		v = json_pack("{s:f}", "doubleValue", json_real_value(value));
	else if (json_is_boolean(value))
		v = json_pack("{s:b}", "boolValue", json_is_true(value));
	else {
		char *text = json_dumps(value, JSON_COMPACT | SL_JSON_REAL);
		v = json_pack("{s:s}", "stringValue", text ? text : "");
		free(text);
	}
	json_array_append_new(attrs, json_pack("{s:s, s:o}", "key", key, "value", v));
	json_decref(value);
}

static json_t *span_new(struct tracer *t, const char *path, const char *parent_path, const char *name, int kind,
			int64_t start_ms, int64_t end_ms)
{
	char id[17], parent[17] = "";
	span_id(t, path, id);
	if (parent_path)
		span_id(t, parent_path, parent);
	json_t *s = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:[], s:{s:i}}", "traceId", t->trace_id, "spanId", id,
			      "parentSpanId", parent, "name", name, "kind", kind, "startTimeUnixNano", nanos(start_ms),
			      "endTimeUnixNano", nanos(end_ms > start_ms ? end_ms : start_ms), "attributes", "status",
			      "code", STATUS_UNSET);
	json_array_append(t->spans, s);
	json_decref(s);
	return s; /* borrowed: the array holds it */
}

static void span_status(json_t *span, int code, const char *message)
{
	json_t *st = json_object_get(span, "status");
	json_object_set_new(st, "code", json_integer(code));
	if (message)
		json_object_set_new(st, "message", json_string(message));
}

static int64_t num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Model calls of a step, as client spans under the attempt they fall in. */
static void model_spans(struct tracer *t, const json_t *run, const char *step, const char *attempt_path,
			int64_t from_ms, int64_t to_ms, size_t *next)
{
	const json_t *calls = json_object_get(run, "ai_calls");
	for (size_t i = 0; i < json_array_size(calls); i++) {
		const json_t *c = json_array_get(calls, i);
		int64_t end = num(c, "at"), start = end - num(c, "latency_ms");
		if (!str(c, "step") || strcmp(str(c, "step"), step) != 0 || end < from_ms || end > to_ms + 1000)
			continue;
		char path[300], name[160];
		snprintf(path, sizeof path, "%s/call/%zu", attempt_path, (*next)++);
		snprintf(name, sizeof name, "model %s", str(c, "model") ? str(c, "model") : "?");
		json_t *s = span_new(t, path, attempt_path, name, KIND_CLIENT, start, end);
		json_t *a = json_object_get(s, "attributes");
		attr(a, "gen_ai.request.model", json_incref(json_object_get(c, "model")));
		attr(a, "gen_ai.usage.input_tokens", json_incref(json_object_get(c, "tokens_in")));
		attr(a, "gen_ai.usage.output_tokens", json_incref(json_object_get(c, "tokens_out")));
		attr(a, "sluice.ai.route", json_incref(json_object_get(c, "route")));
		attr(a, "sluice.ai.provider", json_incref(json_object_get(c, "provider")));
		attr(a, "sluice.ai.cost_usd", json_incref(json_object_get(c, "cost_usd")));
		attr(a, "sluice.ai.cache_hit", json_incref(json_object_get(c, "cache_hit")));
		attr(a, "sluice.ai.outcome", json_incref(json_object_get(c, "outcome")));
		const char *oc = str(c, "outcome");
		span_status(s, oc && strcmp(oc, "error") == 0 ? STATUS_ERROR : STATUS_OK, str(c, "error"));
	}
}

static void step_spans(struct tracer *t, const json_t *run, const json_t *step, int64_t run_end)
{
	const char *id = str(step, "id");
	int64_t start = num(step, "started_at");
	if (!id || !start)
		return; /* not reached */
	char path[200], name[160];
	snprintf(path, sizeof path, "step/%s", id);
	snprintf(name, sizeof name, "step %s", id);
	int64_t end = num(step, "finished_at") ? num(step, "finished_at") : run_end;
	json_t *s = span_new(t, path, "run", name, KIND_INTERNAL, start, end);
	json_t *a = json_object_get(s, "attributes");
	attr(a, "sluice.step.id", json_string(id));
	attr(a, "sluice.step.status", json_incref(json_object_get(step, "status")));
	attr(a, "sluice.step.attempts", json_incref(json_object_get(step, "attempts")));
	const char *status = str(step, "status");
	bool failed = status && (strcmp(status, "dead") == 0 || strcmp(status, "failed") == 0);
	span_status(s, failed ? STATUS_ERROR : STATUS_OK, NULL);
	size_t calls = 0;
	const json_t *log = json_object_get(step, "attempt_log");
	for (size_t i = 0; i < json_array_size(log); i++) {
		const json_t *at = json_array_get(log, i);
		char apath[260], aname[64];
		snprintf(apath, sizeof apath, "%s/attempt/%lld", path, (long long)num(at, "attempt"));
		snprintf(aname, sizeof aname, "attempt %lld", (long long)num(at, "attempt"));
		int64_t as = num(at, "started_at"), ae = as + num(at, "duration_ms");
		json_t *sp = span_new(t, apath, path, aname, KIND_INTERNAL, as, ae);
		json_t *aa = json_object_get(sp, "attributes");
		attr(aa, "sluice.attempt.outcome", json_incref(json_object_get(at, "outcome")));
		const char *oc = str(at, "outcome");
		bool err = oc && strcmp(oc, "error") == 0;
		if (err)
			attr(aa, "sluice.error.class", json_incref(json_object_get(at, "error_class")));
		span_status(sp, err ? STATUS_ERROR : STATUS_OK, err ? str(at, "error") : NULL);
		model_spans(t, run, id, apath, as, ae, &calls);
	}
}

/* The waits for a person's decision, under the step that asked. A pending
 * one ends at the run's last update (the span grows until it is decided). */
static void approval_spans(struct tracer *t, const json_t *run, int64_t run_end)
{
	const json_t *list = json_object_get(run, "approvals");
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *a = json_array_get(list, i);
		const char *id = str(a, "id"), *step = str(a, "step_id");
		if (!id || !step)
			continue;
		char path[300], parent[200], name[160];
		snprintf(parent, sizeof parent, "step/%s", step);
		snprintf(path, sizeof path, "%s/approval/%s", parent, id);
		snprintf(name, sizeof name, "approval wait %s", str(a, "kind") ? str(a, "kind") : "?");
		int64_t end = num(a, "decided_at") ? num(a, "decided_at") : run_end;
		json_t *s = span_new(t, path, parent, name, KIND_INTERNAL, num(a, "created_at"), end);
		json_t *at = json_object_get(s, "attributes");
		attr(at, "sluice.approval.id", json_string(id));
		attr(at, "sluice.approval.kind", json_incref(json_object_get(a, "kind")));
		attr(at, "sluice.approval.status", json_incref(json_object_get(a, "status")));
		const json_t *d = json_object_get(a, "decision");
		if (json_is_object(d))
			attr(at, "sluice.approval.decided_by", json_incref(json_object_get(d, "by")));
		const char *st = str(a, "status");
		bool bad = st && (strcmp(st, "rejected") == 0 || strcmp(st, "expired") == 0);
		span_status(s, bad ? STATUS_ERROR : st && strcmp(st, "pending") == 0 ? STATUS_UNSET : STATUS_OK,
			    bad ? st : NULL);
	}
}

json_t *sl_trace_from_run(const json_t *run)
{
	const char *run_id = str(run, "id");
	if (!run_id)
		return NULL;
	struct tracer t = {.run_id = run_id, .spans = json_array()};
	sl_trace_id(str(run, "correlation_id") ? str(run, "correlation_id") : run_id, t.trace_id);
	int64_t start = num(run, "created_at");
	int64_t end = num(run, "finished_at") ? num(run, "finished_at") : num(run, "updated_at");
	char name[160];
	snprintf(name, sizeof name, "run %s", str(run, "workflow") ? str(run, "workflow") : "?");
	json_t *root = span_new(&t, "run", NULL, name, KIND_INTERNAL, start, end);
	json_object_del(root, "parentSpanId");
	json_t *a = json_object_get(root, "attributes");
	attr(a, "sluice.run.id", json_string(run_id));
	attr(a, "sluice.workflow", json_incref(json_object_get(run, "workflow")));
	attr(a, "sluice.workflow.version", json_incref(json_object_get(run, "version")));
	attr(a, "sluice.run.status", json_incref(json_object_get(run, "status")));
	attr(a, "sluice.correlation_id", json_incref(json_object_get(run, "correlation_id")));
	attr(a, "sluice.trigger", json_incref(json_object_get(run, "trigger")));
	const char *status = str(run, "status");
	bool bad = status && (strcmp(status, "dead") == 0 || strcmp(status, "failed") == 0);
	span_status(root, bad ? STATUS_ERROR : STATUS_OK, NULL);
	const json_t *steps = json_object_get(run, "steps");
	for (size_t i = 0; i < json_array_size(steps); i++)
		step_spans(&t, run, json_array_get(steps, i), end);
	approval_spans(&t, run, end);
	return json_pack("{s:[{s:{s:[{s:s, s:{s:s}}]}, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
			 "attributes", "key", "service.name", "value", "stringValue", "sluice", "scopeSpans", "scope",
			 "name", "sluice", "version", "0.1.0", "spans", t.spans);
}
