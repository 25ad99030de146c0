/*
 * step.c: what executing one step of a run decides.
 *
 * step_execute never touches the store: it evaluates, calls the connector
 * and fills an outcome (a commit and what it points to). The worker commits
 * a batch of outcomes together; only a landed commit is folded back into the
 * in-memory run (step_apply), so a lost lease or a failed transaction leaves
 * no trace but a re-run with the same idempotency key.
 */
#include "engine/engine_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- outcome helpers ----------------------------------------------------------- */

void outcome_free(struct outcome *o)
{
	json_decref(o->step_output);
	json_decref(o->step_error);
	json_decref(o->run_output);
	json_decref(o->run_error);
	json_decref(o->evidence);
	json_decref(o->payload);
	json_decref(o->ai_calls);
	json_decref(o->audit);
	json_decref(o->spawn_audit);
	json_decref(o->apr_hold);
	json_decref(o->apr_final);
	json_decref(o->apr_doc);
	free(o->apr_kind);
	free(o->att_step_id);
	free(o->att_error);
	free(o->dlq_error);
	for (size_t i = 0; i < o->nspawn; i++)
		free(o->spawn_keys[i]);
	free(o->spawn_keys);
	free(o->spawn);
	memset(o, 0, sizeof *o);
}

void outcome_audit(struct outcome *o, json_t *entry)
{
	if (!o->audit)
		o->audit = json_array();
	json_array_append_new(o->audit, entry);
	o->c.audit = o->audit;
}

/* The facts every step entry shares: the engine acts for the run. */
static struct sl_audit_entry step_entry(const struct slot *s, const struct sl_step *st, const char *action)
{
	struct sl_audit_entry ae = {
		.tenant = s->run.tenant,
		.actor = {SL_ACTOR_SYSTEM, "engine"},
		.action = action,
		.run_id = s->run.id,
		.step_id = st->id,
		.correlation_id = s->run.correlation_id,
	};
	return ae;
}

static json_t *error_json(const struct sl_err *err, const char *step_id)
{
	json_t *j = json_pack("{s:s, s:s}", "class", sl_class_name(err->cls), "message", err->msg);
	if (step_id)
		json_object_set_new(j, "step", json_string(step_id));
	if (err->http_status)
		json_object_set_new(j, "status", json_integer(err->http_status));
	return j;
}

/* Starts an outcome that keeps the run where it is. */
static void outcome_init(struct sl_engine *e, struct slot *s, struct outcome *o)
{
	memset(o, 0, sizeof *o);
	o->c.run_id = s->task.run_id;
	o->c.fence = s->task.fence;
	o->c.lease_ms = e->lease_ms;
	o->c.status = s->run.status;
	o->c.phase = s->run.phase;
	o->c.cursor = s->run.cursor;
	o->c.attempt_no = s->run.attempt;
	o->c.wake_at = s->run.wake_at;
	o->c.next = SL_TASK_CONTINUE;
}

static void record_attempt(struct outcome *o, const char *step_id, int attempt, int64_t started_ms,
			   int64_t duration_ms, const char *outcome, const struct sl_err *err)
{
	o->att_step_id = sl_strdup(step_id);
	o->att.step_id = o->att_step_id;
	o->att.attempt = attempt;
	o->att.started_at = started_ms;
	o->att.duration_ms = duration_ms;
	o->att.outcome = outcome;
	o->att.error_class = err ? err->cls : SL_CLASS_NONE;
	if (err) {
		o->att_error = sl_strdup(err->msg);
		o->att.error = o->att_error;
	}
	o->c.attempt = &o->att;
}

static void record_step(struct outcome *o, const struct sl_step *st, enum sl_step_status status, int attempts,
			int64_t started_ms)
{
	o->step.step_id = st->id;
	o->step.index = st->index;
	o->step.status = status;
	o->step.output = o->step_output;
	o->step.error = o->step_error;
	o->step.attempts = attempts;
	o->step.started_at = started_ms;
	o->step.finished_at = sl_now_ms();
	o->c.step = &o->step;
}

/* The run ends dead: its error, a DLQ entry with the evidence. */
static void end_dead(struct slot *s, struct outcome *o, const char *step_id, const struct sl_err *err,
		     json_t *evidence /* taken */)
{
	o->run_error = error_json(err, step_id);
	o->c.error = o->run_error;
	o->c.status = SL_RUN_DEAD;
	o->c.next = SL_TASK_DONE;
	o->evidence = evidence ? evidence : json_object();
	o->dlq_error = sl_strdup(err->msg);
	o->dlq.step_id = step_id;
	o->dlq.error_class = err->cls;
	o->dlq.error = o->dlq_error;
	o->dlq.evidence = o->evidence;
	o->c.dlq = &o->dlq;
	o->ends_run = true;
	sl_log(SL_LOG_WARN, "engine", "run dead", "run_id", s->run.id, "workflow", s->run.workflow, "step", step_id,
	       "error_class", sl_class_name(err->cls), "error", err->msg, "correlation_id", s->run.correlation_id,
	       NULL);
}

/* The output of the last step that produced one. */
static json_t *last_output(const struct slot *s)
{
	for (size_t i = s->wf->nsteps; i-- > 0;) {
		const char *id = s->wf->steps[i].id;
		const char *st = json_string_value(json_object_get(s->run.step_status, id));
		if (st && (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0)) {
			json_t *v = json_object_get(s->run.context, id);
			return v ? json_incref(v) : json_null();
		}
	}
	return json_null();
}

/* All steps done: compute the output and complete the run in this commit. */
static void finish_run(struct slot *s, struct outcome *o)
{
	json_t *out = NULL;
	if (s->wf->output) {
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_expr_eval(s->wf->output, s->run.context, &out, &err)) {
			end_dead(s, o, "output", &err, NULL);
			return;
		}
	} else {
		out = last_output(s);
	}
	o->run_output = out;
	o->c.output = out;
	o->c.status = SL_RUN_COMPLETED;
	o->c.next = SL_TASK_DONE;
	o->c.cursor = (int)s->wf->nsteps;
	o->c.attempt_no = 0;
	o->c.wake_at = 0;
	o->ends_run = true;
	sl_log(SL_LOG_DEBUG, "engine", "run completed", "run_id", s->run.id, "workflow", s->run.workflow,
	       "correlation_id", s->run.correlation_id, NULL);
}

/* Moves past step st (completed, skipped or failed-and-continued). */
static void advance(struct slot *s, struct outcome *o, const struct sl_step *st, enum sl_step_status status,
		    json_t *output /* taken */)
{
	json_object_set(s->run.context, st->id, output);
	json_object_set_new(s->run.step_status, st->id, json_string(sl_step_status_name(status)));
	o->step_output = output;
	o->c.status = SL_RUN_RUNNING;
	o->c.cursor = st->index + 1;
	o->c.attempt_no = 0;
	o->c.wake_at = 0;
	if ((size_t)o->c.cursor >= s->wf->nsteps)
		finish_run(s, o);
}

/* ---- failures: retry, then on_error -------------------------------------------- */

/* An error from a jq expression carries where the expression is written;
 * the run, the DLQ and the log show it as FILE:LINE:COL. */
static struct sl_err located(const struct sl_err *err)
{
	struct sl_err e = *err;
	if (e.file[0] && e.line > 0)
		sl_err_prefix(&e, "%s:%d:%d", e.file, e.line, e.col);
	return e;
}

static bool retryable(const struct sl_err *err)
{
	return err->cls == SL_CLASS_TRANSIENT;
}

static void fail_step(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st,
		      const struct sl_err *err_in, json_t *evidence /* taken */, int64_t started, int64_t dur)
{
	(void)e;
	struct sl_err located_err = located(err_in);
	const struct sl_err *err = &located_err;
	int attempts = s->run.attempt + 1;
	record_attempt(o, st->id, attempts, started, dur, "error", err);
	if (retryable(err) && attempts < st->retry.max_attempts) {
		int64_t delay = sl_backoff_ms(attempts, st->retry.base_ms, st->retry.max_ms, err->retry_after_ms);
		o->c.status = SL_RUN_WAITING;
		o->c.attempt_no = attempts;
		o->c.next = SL_TASK_RESCHEDULE;
		o->c.due_at = sl_now_ms() + delay;
		json_decref(evidence);
		char d[32];
		snprintf(d, sizeof d, "%lld", (long long)delay);
		sl_log(SL_LOG_INFO, "engine", "step failed, will retry", "run_id", s->run.id, "step", st->id,
		       "error_class", sl_class_name(err->cls), "error", err->msg, "retry_in_ms", d, NULL);
		return;
	}
	o->step_error = error_json(err, NULL);
	switch (st->on_error) {
	case SL_ON_ERROR_CONTINUE: {
		json_decref(evidence);
		record_step(o, st, SL_STEP_ST_FAILED, attempts, started);
		json_t *out = json_pack("{s:O}", "error", o->step_error);
		advance(s, o, st, SL_STEP_ST_FAILED, out);
		o->step.output = o->step_output;
		break;
	}
	case SL_ON_ERROR_COMPENSATE:
		json_decref(evidence);
		record_step(o, st, SL_STEP_ST_FAILED, attempts, started);
		json_object_set_new(s->run.step_status, st->id, json_string("failed"));
		o->run_error = error_json(err, st->id);
		o->c.error = o->run_error;
		o->c.status = SL_RUN_COMPENSATING;
		o->c.phase = SL_PHASE_COMPENSATE;
		o->c.cursor = st->index - 1;
		o->c.attempt_no = 0;
		sl_log(SL_LOG_WARN, "engine", "step failed, compensating", "run_id", s->run.id, "step", st->id,
		       "error", err->msg, NULL);
		break;
	case SL_ON_ERROR_DEAD:
	default:
		record_step(o, st, SL_STEP_ST_DEAD, attempts, started);
		end_dead(s, o, st->id, err, evidence);
		break;
	}
}

/* ---- the step kinds ---------------------------------------------------------------- */

/* A call with a downstream effect (write, delete) is audited, each
 * attempt, whatever its outcome: a failed write may still have landed. */
void step_audit_call(struct outcome *o, const struct slot *s, const struct sl_step *st,
		       const struct sl_connector *conn, const struct sl_action *act, const char *key, int rc,
		       const struct sl_err *err, int status, bool compensate, const struct gate *g)
{
	if (act->effect != SL_EFFECT_WRITE && act->effect != SL_EFFECT_DELETE)
		return;
	json_t *effect = json_pack("{s:s, s:s, s:s, s:s, s:i}", "connector", conn->name, "action", act->name, "effect",
				   sl_effect_name(act->effect), "outcome", rc ? "error" : "ok", "attempt",
				   s->run.attempt + 1);
	if (key)
		json_object_set_new(effect, "idempotency_key", json_string(key));
	if (rc) {
		json_object_set_new(effect, "error_class", json_string(sl_class_name(err->cls)));
		json_object_set_new(effect, "error", json_string(err->msg));
	}
	int http = rc ? err->http_status : status;
	if (http)
		json_object_set_new(effect, "status", json_integer(http));
	if (compensate)
		json_object_set_new(effect, "compensate", json_true());
	struct sl_audit_entry ae = step_entry(s, st, "step.write");
	ae.target.kind = "connector";
	ae.target.id = conn->name;
	ae.effect = effect;
	if (g) { /* the decision that let it through */
		ae.policy.rule = g->rule;
		ae.policy.decision = g->decision;
		ae.approval_id = g->approval_id;
	}
	outcome_audit(o, sl_audit_entry_json(&ae));
	json_decref(effect);
}

/* The evidence of a call the gate refused: what was proposed and why. */
static json_t *denial_evidence(const json_t *input, const struct sl_action *act, const char *key, const struct gate *g)
{
	return json_pack("{s:O, s:s, s:s, s:{s:s, s:s, s:s, s:o}}", "input", input ? input : json_null(), "action",
			 act->name, "idempotency_key", key ? key : "", "policy", "rule", g->rule, "decision",
			 g->decision, "reason", g->reason, "checks", g->checks ? json_incref(g->checks) : json_array());
}

/* Returns 0 (done: *out), a negative code (err, *evidence), or 1 when the
 * gate (g not NULL: a forward call) parked it for approval: g says why. */
static int exec_call(struct sl_engine *e, struct outcome *o, struct slot *s, const struct sl_step *st,
		     struct sl_connector *conn, const struct sl_action *act, struct sl_expr *with,
		     const json_t *default_input, const char *key_suffix, const char *content_type, json_t **out,
		     json_t **evidence, struct gate *g, json_t **parked_input, struct sl_err *err)
{
	json_t *input = NULL;
	if (with) {
		if (sl_expr_eval(with, s->run.context, &input, err))
			return err->code;
	} else {
		input = default_input ? json_incref((json_t *)default_input) : json_null();
	}
	char *key = NULL;
	if (st->idempotency_key && !key_suffix) {
		if (sl_expr_eval_string(st->idempotency_key, s->run.context, &key, err)) {
			json_decref(input);
			return err->code;
		}
	} else {
		/* Stable across retries, crashes and replays of this run. */
		key = sl_asprintf("%s:%s%s", s->run.id, st->id, key_suffix ? key_suffix : "");
	}
	if (g) {
		gate_call(e, s, o, st, NULL, conn, act, &input, g);
		if (g->verdict == GATE_DENY) {
			*err = g->err;
			*evidence = denial_evidence(input, act, key, g);
			json_decref(input);
			free(key);
			return err->code;
		}
		if (g->verdict == GATE_PARK) {
			*parked_input = input;
			free(key);
			return 1;
		}
	}
	struct sl_call call = {
		.input = input,
		.idempotency_key = key,
		.correlation_id = s->run.correlation_id,
		.run_id = s->run.id,
		.step_id = st->id,
		.timeout_ms = st->timeout_ms,
		.content_type = content_type,
	};
	struct sl_call_result res = {0};
	int rc = sl_connector_call(conn, act, &call, &res, err);
	step_audit_call(o, s, st, conn, act, key, rc, err, res.status, key_suffix != NULL, g);
	if (rc) {
		*evidence = json_pack("{s:O, s:s, s:s}", "input", input, "action", act->name, "idempotency_key", key);
		if (err->http_status)
			json_object_set_new(*evidence, "http_status", json_integer(err->http_status));
	} else {
		*out = res.output ? res.output : json_null();
	}
	json_decref(input);
	free(key);
	return rc;
}

/* Parses a wait's `until` value: RFC 3339 text, or epoch seconds (jq's now). */
static int wait_until_ms(const json_t *v, int64_t *ms, struct sl_err *err)
{
	if (json_is_string(v) && sl_time_parse(json_string_value(v), ms) == 0)
		return 0;
	if (json_is_number(v)) {
		*ms = (int64_t)(json_number_value(v) * 1000.0);
		return 0;
	}
	return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
			  "wait until: want an RFC 3339 time or epoch seconds, got %s",
			  json_is_string(v) ? json_string_value(v) : "a non-string");
}

/* A wait step: the first pass sets the timer, the pass after it completes. */
static void exec_wait(struct slot *s, struct outcome *o, const struct sl_step *st, int64_t started)
{
	int64_t now = sl_now_ms();
	int64_t wake = s->run.wake_at;
	if (wake == 0) {
		if (st->wait_until) {
			json_t *v = NULL;
			struct sl_err err;
			sl_err_clear(&err);
			if (sl_expr_eval(st->wait_until, s->run.context, &v, &err) || wait_until_ms(v, &wake, &err)) {
				json_decref(v);
				fail_step(NULL, s, o, st, &err, NULL, started, 0);
				return;
			}
			json_decref(v);
		} else {
			wake = now + st->wait_ms;
		}
		if (wake > now) {
			record_step(o, st, SL_STEP_ST_WAITING, 1, started);
			o->c.status = SL_RUN_WAITING;
			o->c.wake_at = wake;
			o->c.next = SL_TASK_RESCHEDULE;
			o->c.due_at = wake;
			return;
		}
	} else if (now < wake) { /* early: sleep again */
		o->c.next = SL_TASK_RESCHEDULE;
		o->c.due_at = wake;
		return;
	}
	char ts[32];
	sl_time_format(wake, ts);
	record_attempt(o, st->id, 1, started, now - started, "ok", NULL);
	advance(s, o, st, SL_STEP_ST_COMPLETED, json_pack("{s:s}", "woke_at", ts));
	record_step(o, st, SL_STEP_ST_COMPLETED, 1, started);
}

/* Whether w is the current version of a workflow subscribed to topic:
 * older versions stay loaded for the runs that started on them, but an event
 * starts only the newest. */
static bool subscribed(const struct sl_project *p, const struct sl_workflow *w, const char *topic)
{
	return w->trigger.kind == SL_TRIGGER_EVENT && strcmp(w->trigger.event, topic) == 0 &&
	       sl_project_workflow(p, w->name) == w;
}

/* emit to a stream: the payload in a CloudEvents envelope whose id is the
 * step's idempotency key (RUN_ID:STEP_ID), published through the
 * connector's `publish` action with that key, so a re-run after a crash
 * publishes it once (the connector deduplicates by the key). */
static int exec_emit_stream(struct slot *s, struct outcome *o, const struct sl_step *st, json_t **out,
			    json_t **evidence, struct sl_err *err)
{
	json_t *payload = NULL;
	if (st->payload) {
		if (sl_expr_eval(st->payload, s->run.context, &payload, err))
			return err->code;
	} else {
		payload = json_incref(s->run.input);
	}
	char *id = sl_asprintf("%s:%s", s->run.id, st->id);
	char *source = sl_asprintf("sluice/%s", s->run.workflow);
	char *type = st->emit_type ? sl_strdup(st->emit_type) : sl_asprintf("sluice.%s.%s", s->run.workflow, st->id);
	json_t *ev = sl_cloudevent_new(id, source, type, payload);
	int rc = exec_call(NULL, o, s, st, st->emit_connector, st->emit_action, NULL, ev, NULL, NULL, out, evidence, NULL,
			   NULL, err);
	json_decref(ev);
	json_decref(payload);
	free(id);
	free(source);
	free(type);
	return rc;
}

/* An emit's sink: the event as a structured CloudEvent to the sink action.
 * Its id (RUN_ID:STEP_ID, also the Idempotency-Key) is stable across
 * retries and crashes, so a receiver that dedupes by (source, id) sees each
 * event once. Returns the call's code; the sink's answer is dropped. */
static int emit_to_sink(struct outcome *o, struct slot *s, const struct sl_step *st, const json_t *payload,
			json_t **evidence, struct sl_err *err)
{
	char *id = sl_asprintf("%s:%s", s->run.id, st->id);
	char *source = sl_asprintf("sluice/%s", s->wf->name);
	char ts[32];
	sl_time_format(sl_now_ms(), ts);
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "specversion", "1.0", "id", id, "source", source,
			       "type", st->topic, "time", ts, "datacontenttype", "application/json", "data", payload);
	json_t *answer = NULL;
	int rc = exec_call(NULL, o, s, st, st->sink_connector, st->sink_action, NULL, ev, NULL,
			   "application/cloudevents+json", &answer, evidence, NULL, NULL, err);
	json_decref(answer);
	json_decref(ev);
	free(source);
	free(id);
	return rc;
}

/* emit: starts every workflow subscribed to the topic, in the same commit,
 * and sends the event to the step's sink when it has one (before the
 * commit: a failed send fails the step and starts nothing). */
static int exec_emit(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st,
		     json_t **out, json_t **evidence, struct sl_err *err)
{
	json_t *payload = NULL;
	if (st->payload) {
		if (sl_expr_eval(st->payload, s->run.context, &payload, err))
			return err->code;
	} else {
		payload = json_incref(s->run.input);
	}
	struct sl_project *p = e->project;
	size_t n = 0;
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		if (subscribed(p, w, st->topic))
			n++;
	}
	o->spawn = sl_xcalloc(n ? n : 1, sizeof *o->spawn);
	o->spawn_keys = sl_xcalloc(n ? n : 1, sizeof *o->spawn_keys);
	o->spawn_audit = json_array();
	o->payload = payload;
	json_t *started = json_array();
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		if (!subscribed(p, w, st->topic))
			continue;
		if (engine_check_input(w, payload, err)) {
			sl_err_prefix(err, "emit to %s: workflow %s", st->topic, w->name);
			json_decref(started);
			return err->code;
		}
		struct sl_run_new *rn = &o->spawn[o->nspawn];
		o->spawn_keys[o->nspawn] = sl_asprintf("%s:%s:%s", s->run.id, st->id, w->name);
		rn->workflow = w->name;
		rn->version = w->version;
		rn->digest = w->digest;
		rn->input = payload;
		rn->correlation_id = s->run.correlation_id;
		rn->parent_run_id = s->run.id;
		rn->root_run_id = s->run.root_run_id ? s->run.root_run_id : s->run.id;
		rn->trigger = "emit";
		rn->tenant = s->run.tenant;
		rn->priority = s->run.priority;
		rn->idem_scope = "emit";
		rn->idem_key = o->spawn_keys[o->nspawn];
		json_t *detail = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "trigger", "emit", "topic", st->topic,
					   "version", w->version, "digest", w->digest, "parent_run_id", s->run.id,
					   "parent_step_id", st->id);
		struct sl_audit_entry ae = step_entry(s, st, "run.start");
		ae.run_id = NULL; /* the store fills in the new run's */
		ae.step_id = NULL;
		ae.target.kind = "workflow";
		ae.target.id = w->name;
		ae.detail = detail;
		json_array_append_new(o->spawn_audit, sl_audit_entry_json(&ae));
		json_decref(detail);
		rn->audit = json_array_get(o->spawn_audit, o->nspawn);
		o->nspawn++;
		json_array_append_new(started, json_string(w->name));
	}
	o->c.spawn = o->spawn;
	o->c.nspawn = o->nspawn;
	if (st->sink_connector && emit_to_sink(o, s, st, payload, evidence, err)) {
		json_decref(started);
		return err->code;
	}
	*out = json_pack("{s:s, s:o}", "topic", st->topic, "workflows", started);
	if (st->sink)
		json_object_set_new(*out, "sink", json_string(st->sink));
	return 0;
}

/* ---- ai steps ------------------------------------------------------------------------ */

/* The prompt of an ai step: its template rendered with {{input}},
 * {{labels}} and the vars, or the input text alone. */
char *step_ai_prompt(const struct slot *s, const struct sl_step *st, const json_t *context, const json_t *input,
		       struct sl_err *err)
{
	const struct sl_ai_step *a = &st->ai;
	char *text = json_is_string(input) ? sl_strdup(json_string_value(input))
					   : json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
	if (!a->prompt)
		return text;
	json_t *vars = NULL;
	if (a->vars) {
		if (sl_expr_eval(a->vars, context, &vars, err)) {
			free(text);
			return NULL;
		}
		if (!json_is_object(vars)) {
			json_decref(vars);
			free(text);
			sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "ai vars must give an object");
			return NULL;
		}
	} else {
		vars = json_object();
	}
	json_object_set_new(vars, "input", json_string(text));
	struct sl_buf labels;
	sl_buf_init(&labels, SL_BUF_MAX_LINE);
	for (size_t i = 0; i < a->nlabels; i++)
		sl_buf_printf(&labels, "%s%s", i ? ", " : "", a->labels[i]);
	json_object_set_new(vars, "labels", json_string(sl_buf_str(&labels)));
	sl_buf_free(&labels);
	char *prompt = sl_ai_render(a->prompt->text, vars, err);
	json_decref(vars);
	free(text);
	return prompt;
}

/* What an ai step may read: the run context without the fields that
 * `read` rules deny to it (policies.yaml fields:). Owned. */
json_t *step_ai_context(struct sl_engine *e, const struct slot *s, const struct sl_step *st)
{
	char *names[3] = {sl_asprintf("agent:%s/%s", s->run.workflow, st->id), sl_asprintf("workflow:%s", s->run.workflow),
			  NULL};
	struct sl_policy_subject subj = {(const char *const *)names};
	json_t *deny = sl_policy_denied_fields(e->project->policy, &subj, NULL);
	free(names[0]);
	free(names[1]);
	if (json_array_size(deny) == 0) {
		json_decref(deny);
		return json_incref(s->run.context);
	}
	json_t *ctx = json_deep_copy(s->run.context);
	sl_policy_strip_fields(ctx, deny);
	json_decref(deny);
	return ctx;
}

/* One ai.call entry per ai step attempt: which model answered, the
 * prompt's hash, what it cost (integer micro-USD: no float in the chain),
 * and how it ended. The calls themselves are in ai_calls. */
void step_audit_ai(struct outcome *o, const struct slot *s, const struct sl_step *st,
		     const struct sl_ai_result *res, int rc, const struct sl_err *err)
{
	const struct sl_ai_step *a = &st->ai;
	const char *model = res->model[0] ? res->model : NULL;
	const char *prompt_hash = a->prompt ? a->prompt->digest : NULL;
	if (!model || !prompt_hash) { /* from the last call record */
		size_t n = json_array_size(res->calls);
		json_t *last = n ? json_array_get(res->calls, n - 1) : NULL;
		if (!model)
			model = json_string_value(json_object_get(last, "model"));
		if (!prompt_hash)
			prompt_hash = json_string_value(json_object_get(last, "prompt_hash"));
	}
	json_t *detail = json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:b}", "route", a->route ? a->route : "",
				   "outcome", rc ? "error" : res->review ? "review" : "ok", "cost_micro_usd",
				   (json_int_t)llround(res->cost_usd * 1e6), "tokens_in", (json_int_t)res->tokens_in,
				   "tokens_out", (json_int_t)res->tokens_out, "calls", (int)json_array_size(res->calls),
				   "cache_hit", res->cache_hit);
	if (rc) {
		json_object_set_new(detail, "error_class", json_string(sl_class_name(err->cls)));
		json_object_set_new(detail, "error", json_string(err->msg));
	} else if (res->review) {
		json_object_set_new(detail, "review_reason", json_string(res->review_reason));
	}
	char agent[256];
	snprintf(agent, sizeof agent, "%s/%s", s->run.workflow, st->id);
	struct sl_audit_entry ae = step_entry(s, st, "ai.call");
	ae.actor.kind = SL_ACTOR_AGENT;
	ae.actor.id = agent;
	ae.model = model;
	ae.prompt_hash = prompt_hash;
	ae.detail = detail;
	outcome_audit(o, sl_audit_entry_json(&ae));
	json_decref(detail);
}

/* What a review proposes: the answer, or when no answer was valid the
 * last model's (so the reviewer edits what the model said). */
static json_t *review_proposal(const struct sl_ai_result *res)
{
	if (!json_object_get(res->output, "error"))
		return json_incref(res->output);
	size_t n = json_array_size(res->calls);
	json_t *last = n ? json_object_get(json_array_get(res->calls, n - 1), "output") : NULL;
	if (json_is_string(last)) {
		json_t *j = json_loads(json_string_value(last), JSON_DECODE_ANY, NULL);
		if (j)
			return j;
	}
	return json_incref(last ? last : res->output);
}

/* Runs an ai step through its route. *review: the answer waits for a
 * person (out is then the proposal). The calls made are kept in o either
 * way: they cost money even when the step fails. */
static int exec_ai(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st, json_t **out,
		   json_t **evidence, bool *review, struct sl_err *err)
{
	const struct sl_ai_step *a = &st->ai;
	*review = false;
	char why[256];
	int sg = gate_suggest(e, s, o, st, err, why, sizeof why);
	if (sg < 0)
		return sg;
	if (a->task == SL_AI_TOOL)
		return step_exec_tool(e, s, o, st, out, evidence, err);
	json_t *input = NULL;
	json_t *seen = step_ai_context(e, s, st);
	int erc = sl_expr_eval(a->input, seen, &input, err);
	if (erc) {
		json_decref(seen);
		return err->code;
	}
	char *prompt = step_ai_prompt(s, st, seen, input, err);
	json_decref(seen);
	/* local models read the input itself, not the prompt around it */
	char *text = json_is_string(input) ? sl_strdup(json_string_value(input))
					   : json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
	json_decref(input);
	if (!prompt) {
		free(text);
		return err->code ? err->code : SL_EINVAL;
	}
	json_t *pii = sl_schema_pii_values(s->wf->trigger.contract, s->run.input);
	struct sl_ai_request rq = {
		.task = a->task,
		.route = a->route,
		.workflow = s->run.workflow,
		.run_id = s->run.id,
		.step_id = st->id,
		.correlation_id = s->run.correlation_id,
		.tenant = s->run.tenant,
		.prompt = prompt,
		.input_text = text,
		.prompt_hash = a->prompt ? a->prompt->digest : "",
		.labels = (const char *const *)a->labels,
		.nlabels = a->nlabels,
		.contract = a->contract,
		.pii = pii,
		.max_tokens = a->max_tokens,
		.min_confidence = a->min_confidence,
	};
	struct sl_ai_result res;
	int rc = sl_ai_run(sl_engine_project(e)->ai, &rq, &res, err);
	json_decref(pii);
	free(prompt);
	if (json_array_size(res.calls)) {
		o->ai_calls = json_incref(res.calls);
		o->c.ai_calls = o->ai_calls;
		o->c.ai_step_id = st->id;
	}
	step_audit_ai(o, s, st, &res, rc, err);
	if (rc) {
		*evidence = json_pack("{s:s, s:O}", "route", a->route, "calls", res.calls);
		sl_ai_result_free(&res);
		free(text);
		return rc;
	}
	if (sg == 1 && !res.review) { /* a suggest rule wants a person to see it */
		res.review = true;
		snprintf(res.review_reason, sizeof res.review_reason, "%s", why);
	}
	if (res.review) {
		*review = true;
		*out = json_pack("{s:o, s:s, s:o, s:s, s:s, s:s}", "proposed", review_proposal(&res), "reason", res.review_reason,
				 "confidence", res.confidence >= 0 ? json_real(res.confidence) : json_null(), "source",
				 text, "model", res.model, "route", a->route ? a->route : "");
	} else {
		*out = json_incref(res.output);
	}
	free(text);
	sl_ai_result_free(&res);
	return 0;
}

/* ---- approvals: one way to park, one way to resume ------------------------------------- */

/* Who decides: the request's, the approval step's, the workflow's, or
 * operators. Returns a new reference. */
static json_t *reviewers_of(const struct slot *s, const struct sl_step *st, const struct approval_request *req)
{
	if (json_array_size(req->reviewers))
		return json_incref(req->reviewers);
	if (st->kind == SL_STEP_APPROVAL && st->approval.reviewers)
		return json_incref(st->approval.reviewers);
	if (s->wf->reviewers)
		return json_incref(s->wf->reviewers);
	return json_pack("[s]", "role:operator");
}

static json_t *approval_entry(const struct slot *s, const struct sl_step *st)
{
	return json_object_get(json_object_get(s->run.context, "_approvals"), st->id);
}

void park_for_approval(struct slot *s, struct outcome *o, const struct sl_step *st,
		       const struct approval_request *req, int attempts, int64_t started)
{
	int64_t now = sl_now_ms();
	sl_id_new("apr_", o->apr_id);
	json_t *reviewers = reviewers_of(s, st, req);
	json_t *proposed = req->proposed ? json_incref(req->proposed) : json_null();
	json_t *evidence = req->evidence ? json_incref(req->evidence) : json_object();
	o->apr_hold = json_pack("{s:o, s:o, s:o, s:O?, s:O?}", "reviewers", reviewers, "proposed", proposed,
				"evidence", evidence, "input", req->input, "escalate_to", req->escalate_to);
	struct sl_approval_new *a = &o->apr;
	a->id = o->apr_id;
	a->step_id = st->id;
	a->kind = req->kind ? req->kind : "approval";
	a->reviewers = reviewers;
	a->escalate_to = req->escalate_to;
	a->timeout_ms = req->timeout_ms;
	a->due_at = req->timeout_ms > 0 ? now + req->timeout_ms : 0;
	a->on_timeout = req->timeout_ms > 0 ? (req->on_timeout ? req->on_timeout : "reject") : NULL;
	a->input = req->input;
	a->evidence = evidence;
	a->proposed = proposed;
	a->reason = req->reason;
	o->c.approval = a;
	o->apr_kind = sl_strdup(a->kind);

	record_attempt(o, st->id, attempts, started, now - started, "review", NULL);
	o->step_output = json_pack("{s:s, s:s, s:O, s:s?}", "approval_id", o->apr_id, "kind", a->kind, "proposed",
				   proposed, "reason", req->reason);
	json_t *conf = json_object_get(evidence, "confidence");
	if (conf)
		json_object_set(o->step_output, "confidence", conf);
	record_step(o, st, SL_STEP_ST_REVIEW, attempts, started);
	json_object_set_new(s->run.step_status, st->id, json_string("review"));
	o->c.status = SL_RUN_REVIEW;
	o->c.attempt_no = attempts - 1; /* the decision's pass is the same attempt */
	if (a->due_at) { /* the run's task is the approval's timer */
		o->c.next = SL_TASK_RESCHEDULE;
		o->c.due_at = a->due_at;
	} else {
		o->c.next = SL_TASK_DONE;
	}
	o->ends_run = true; /* settled for whoever waits on it */

	json_t *detail = json_pack("{s:s, s:O, s:s?}", "kind", a->kind, "reviewers", reviewers, "reason", req->reason);
	if (a->due_at)
		json_object_set_new(detail, "due_at", json_integer(a->due_at));
	struct sl_audit_entry ae = step_entry(s, st, "approval.request");
	ae.approval_id = o->apr_id;
	ae.target.kind = "approval";
	ae.target.id = o->apr_id;
	ae.detail = detail;
	outcome_audit(o, sl_audit_entry_json(&ae));
	json_decref(detail);
	sl_log(SL_LOG_INFO, "engine", "step waits for a decision", "run_id", s->run.id, "workflow", s->run.workflow,
	       "step", st->id, "approval_id", o->apr_id, "kind", a->kind, "reason", req->reason ? req->reason : "",
	       "correlation_id", s->run.correlation_id, NULL);
}

const json_t *approval_decision(const struct slot *s, const struct sl_step *st)
{
	const json_t *e = approval_entry(s, st);
	return json_is_string(json_object_get(e, "decision")) ? e : NULL;
}

void approval_consume(struct slot *s, struct outcome *o, const struct sl_step *st, const json_t *decision)
{
	const char *id = json_string_value(json_object_get(decision, "id"));
	const char *d = json_string_value(json_object_get(decision, "decision"));
	/* marked consumed in the commit only once the step settles (see
	 * step_execute): a gated call retried after a backoff reads it again */
	snprintf(o->apr_consumed, sizeof o->apr_consumed, "%s", id ? id : "");
	static const char *const names[] = {"approved", "edited", "rejected", "expired", NULL};
	for (const char *const *n = names; d && *n; n++)
		if (strcmp(*n, d) == 0)
			o->apr_decision = *n;
	free(o->apr_kind);
	o->apr_kind = sl_strdup(json_string_value(json_object_get(decision, "kind")));
	int64_t at = json_integer_value(json_object_get(decision, "at"));
	int64_t created = json_integer_value(json_object_get(decision, "created_at"));
	o->apr_wait_s = at > created && created > 0 ? (double)(at - created) / 1000.0 : 0;
	o->approved = d && (strcmp(d, "approved") == 0 || strcmp(d, "edited") == 0);
	json_decref(o->apr_doc); /* the gate and a tool step read it (gate_approval) */
	o->apr_doc = json_incref((json_t *)decision);
	/* engine-internal: gone from the context once read, so no later step,
	 * template or output sees it */
	json_t *all = json_object_get(s->run.context, "_approvals");
	json_object_del(all, st->id);
	if (json_object_size(all) == 0)
		json_object_del(s->run.context, "_approvals");
}

/* The timer of a pending approval fired: escalate once, or decide as the
 * step says. Returns the decision (a new reference) when there is one, NULL
 * when the run stays parked (escalated, or woken early). */
static json_t *approval_timeout(struct slot *s, struct outcome *o, const struct sl_step *st, const json_t *pending)
{
	int64_t now = sl_now_ms();
	int64_t due = json_integer_value(json_object_get(pending, "due_at"));
	const char *id = json_string_value(json_object_get(pending, "id"));
	const char *mode = json_string_value(json_object_get(pending, "on_timeout"));
	if (!due || !id || now < due) { /* early, or no timer: sleep on */
		o->c.next = due ? SL_TASK_RESCHEDULE : SL_TASK_DONE;
		o->c.due_at = due;
		return NULL;
	}
	const json_t *group = json_object_get(pending, "escalate_to");
	bool escalated = json_is_true(json_object_get(pending, "escalated"));
	snprintf(o->apr_id, sizeof o->apr_id, "%s", id);
	o->apr_set.id = o->apr_id;
	if (mode && strcmp(mode, "escalate") == 0 && !escalated && json_array_size(group)) {
		int64_t next = now + json_integer_value(json_object_get(pending, "timeout_ms"));
		o->apr_hold = json_incref((json_t *)group);
		o->apr_set.status = "pending";
		o->apr_set.reviewers = o->apr_hold;
		o->apr_set.due_at = next;
		o->c.approval_set = &o->apr_set;
		o->c.next = SL_TASK_RESCHEDULE;
		o->c.due_at = next;
		o->apr_escalated = true;
		o->apr_kind = sl_strdup(json_string_value(json_object_get(pending, "kind")));
		json_t *detail = json_pack("{s:O, s:O, s:I}", "from", json_object_get(pending, "reviewers"), "to", group,
					   "due_at", (json_int_t)next);
		struct sl_audit_entry ae = step_entry(s, st, "approval.escalate");
		ae.approval_id = id;
		ae.target.kind = "approval";
		ae.target.id = id;
		ae.detail = detail;
		outcome_audit(o, sl_audit_entry_json(&ae));
		json_decref(detail);
		sl_log(SL_LOG_INFO, "engine", "approval escalated", "run_id", s->run.id, "step", st->id, "approval_id", id,
		       NULL);
		return NULL;
	}
	const char *decision = mode && strcmp(mode, "approve") == 0 ? "approved" : escalated ? "expired" : "rejected";
	json_t *d = json_pack("{s:s, s:s, s:O, s:s, s:s, s:I, s:O, s:O}", "id", id, "decision", decision, "final",
			      strcmp(decision, "approved") == 0 ? json_object_get(pending, "proposed") : json_null(),
			      "by", "system:timeout", "reason", "no decision before the timeout", "at", (json_int_t)now,
			      "created_at", json_object_get(pending, "created_at"), "kind", json_object_get(pending, "kind"));
	o->apr_hold = json_pack("{s:s, s:O, s:s, s:s, s:I}", "decision", decision, "final", json_object_get(d, "final"),
				"by", "system:timeout", "reason", "no decision before the timeout", "at", (json_int_t)now);
	o->apr_set.status = decision;
	o->apr_set.decision = o->apr_hold;
	o->c.approval_set = &o->apr_set;
	json_t *detail = json_pack("{s:s, s:s}", "decision", decision, "reason", "timeout");
	struct sl_audit_entry ae = step_entry(s, st, "approval.decide");
	ae.actor.id = "timeout";
	ae.approval_id = id;
	ae.target.kind = "approval";
	ae.target.id = id;
	ae.detail = detail;
	outcome_audit(o, sl_audit_entry_json(&ae));
	json_decref(detail);
	return d;
}

static void fail_step(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st,
		      const struct sl_err *err_in, json_t *evidence /* taken */, int64_t started, int64_t dur);
static void advance(struct slot *s, struct outcome *o, const struct sl_step *st, enum sl_step_status status,
		    json_t *output /* taken */);
static int check_output(const struct sl_step *st, const json_t *out, struct sl_err *err);

/* A step runs again on its decision: a rejection fails it (class policy,
 * then its on_error); an approval gives the output without calling anyone
 * again. Returns true when it settled the step; false for a call step
 * whose gate approved (the call runs now, see o->approved). */
static bool approval_resume(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st,
			    const json_t *d, int64_t started)
{
	json_t *dec = json_incref((json_t *)d);
	approval_consume(s, o, st, dec);
	const char *what = json_string_value(json_object_get(dec, "decision"));
	const char *by = json_string_value(json_object_get(dec, "by"));
	const char *reason = json_string_value(json_object_get(dec, "reason"));
	int attempts = s->run.attempt + 1;
	if (!o->approved) {
		struct sl_err err;
		sl_err_clear(&err);
		sl_err_set(&err, SL_ESTEP, SL_CLASS_POLICY, "%s by %s: %s",
			   what && strcmp(what, "expired") == 0 ? "expired" : "rejected", by ? by : "?",
			   reason ? reason : "");
		json_decref(dec);
		fail_step(e, s, o, st, &err, NULL, started, 0);
		return true;
	}
	/* a gated call, or a tool step whose writes waited: it runs now (the
	 * gate finds the decision through gate_approval) */
	bool gated = st->kind != SL_STEP_AI && st->kind != SL_STEP_APPROVAL;
	gated |= st->kind == SL_STEP_AI && o->apr_kind && strcmp(o->apr_kind, "review") != 0;
	if (gated) {
		if (what && strcmp(what, "edited") == 0)
			o->apr_final = json_incref(json_object_get(dec, "final"));
		json_decref(dec);
		return false;
	}
	json_t *out = st->kind == SL_STEP_AI ? json_incref(json_object_get(dec, "final"))
					     : json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "id", json_object_get(dec, "id"),
							 "decision", json_object_get(dec, "decision"), "final",
							 json_object_get(dec, "final"), "by", json_object_get(dec, "by"),
							 "reason", json_object_get(dec, "reason"), "at",
							 json_object_get(dec, "at"));
	json_decref(dec);
	if (!out)
		out = json_null();
	struct sl_err err;
	sl_err_clear(&err);
	if (st->kind == SL_STEP_AI && check_output(st, out, &err)) { /* checked when decided; the contract may have moved */
		json_decref(out);
		fail_step(e, s, o, st, &err, NULL, started, 0);
		return true;
	}
	record_attempt(o, st->id, attempts, started, sl_now_ms() - started, "ok", NULL);
	advance(s, o, st, SL_STEP_ST_COMPLETED, out);
	record_step(o, st, SL_STEP_ST_COMPLETED, attempts, started);
	return true;
}

/* An approval step's first pass: what the reviewer sees, then park. */
static void exec_approval(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st,
			  int64_t started)
{
	const struct sl_approval_step *a = &st->approval;
	json_t *evidence = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	if (a->evidence) {
		if (sl_expr_eval(a->evidence, s->run.context, &evidence, &err)) {
			fail_step(e, s, o, st, &err, NULL, started, 0);
			return;
		}
	} else {
		evidence = json_incref(s->run.input);
	}
	struct approval_request req = {
		.kind = "approval",
		.proposed = evidence,
		.evidence = NULL,
		.reason = "approval step",
		.reviewers = a->reviewers,
		.input = s->run.input,
		.timeout_ms = a->timeout_ms,
		.on_timeout = a->on_timeout,
		.escalate_to = a->escalate_to,
	};
	json_t *ev = json_pack("{s:O}", "proposed_action", evidence);
	req.evidence = ev;
	park_for_approval(s, o, st, &req, s->run.attempt + 1, started);
	json_decref(ev);
	json_decref(evidence);
}

/* A tool step whose model asked for writes its level holds back: the
 * proposal is those calls and the model's answer; evidence says why. */
static void park_tool(struct slot *s, struct outcome *o, const struct sl_step *st, json_t *proposed,
		      json_t *evidence, int64_t started)
{
	struct approval_request req = {
		.kind = json_string_value(json_object_get(evidence, "kind")),
		.proposed = proposed,
		.evidence = evidence,
		.reason = json_string_value(json_object_get(evidence, "reason")),
		.reviewers = json_object_get(evidence, "reviewers"),
	};
	if (!req.kind)
		req.kind = "autonomy";
	park_for_approval(s, o, st, &req, s->run.attempt + 1, started);
}

/* A gated call waits for a person: the proposal is the action as it
 * would run. */
static void park_call(struct slot *s, struct outcome *o, const struct sl_step *st, const struct gate *g,
		      json_t *input, int64_t started)
{
	json_t *proposed = json_pack("{s:s, s:s, s:s, s:O}", "connector", st->connector->name, "action",
				     st->action->name, "effect", sl_effect_name(st->action->effect), "input",
				     input ? input : json_null());
	struct approval_request req = {
		.kind = g->kind,
		.proposed = proposed,
		.evidence = g->evidence,
		.reason = g->reason,
		.reviewers = g->reviewers,
	};
	park_for_approval(s, o, st, &req, s->run.attempt + 1, started);
	json_decref(proposed);
}

static int check_output(const struct sl_step *st, const json_t *out, struct sl_err *err)
{
	if (!st->output_contract)
		return 0;
	struct sl_verrs ve = {0};
	if (sl_schema_validate(st->output_contract, out, &ve))
		return 0;
	char *msg = sl_verrs_join(&ve);
	sl_err_set(err, SL_EINVAL, SL_CLASS_CONTRACT, "output does not match contract %s: %s",
		   sl_schema_id(st->output_contract), msg);
	free(msg);
	sl_verrs_free(&ve);
	return SL_EINVAL;
}

static void exec_forward(struct sl_engine *e, struct slot *s, struct outcome *o)
{
	if ((size_t)s->run.cursor >= s->wf->nsteps) {
		finish_run(s, o);
		return;
	}
	const struct sl_step *st = &s->wf->steps[s->run.cursor];
	int64_t started = sl_now_ms();
	int64_t t0 = sl_mono_us();
	struct sl_err err;
	sl_err_clear(&err);
	o->kind = sl_step_kind_name(st->kind);

	const json_t *apr = approval_entry(s, st);
	if (apr) { /* a decision came, or the approval's timer fired */
		json_t *timed_out = NULL;
		if (!json_is_string(json_object_get(apr, "decision"))) {
			timed_out = approval_timeout(s, o, st, apr);
			if (!timed_out)
				return;
			apr = timed_out;
		}
		bool settled = approval_resume(e, s, o, st, apr, started);
		json_decref(timed_out);
		if (settled)
			return;
	}
	if (st->kind == SL_STEP_WAIT && s->run.wake_at) { /* a timer that fired */
		exec_wait(s, o, st, started);
		return;
	}
	if (st->when) {
		bool go = true;
		if (sl_expr_eval_bool(st->when, s->run.context, &go, &err)) {
			fail_step(e, s, o, st, &err, NULL, started, 0);
			return;
		}
		if (!go) {
			record_attempt(o, st->id, 1, started, 0, "skipped", NULL);
			advance(s, o, st, SL_STEP_ST_SKIPPED, json_null());
			record_step(o, st, SL_STEP_ST_SKIPPED, 0, started);
			return;
		}
	}
	json_t *out = NULL, *evidence = NULL;
	int rc = 0;
	bool review = false;
	switch (st->kind) {
	case SL_STEP_MAP:
		rc = sl_expr_eval(st->map, s->run.context, &out, &err);
		break;
	case SL_STEP_CALL: {
		/* an edited approval of the call replaces its input (the gate
		 * finds the decision too, and lets the call through) */
		struct gate g;
		json_t *parked = NULL;
		rc = exec_call(e, o, s, st, st->connector, st->action, o->apr_final ? NULL : st->with, o->apr_final, NULL,
			       NULL, &out, &evidence, &g, &parked, &err);
		if (rc == 1) {
			park_call(s, o, st, &g, parked, started);
			json_decref(parked);
			gate_free(&g);
			return;
		}
		gate_free(&g);
		break;
	}
	case SL_STEP_EMIT:
		if (st->emit_connector)
			rc = exec_emit_stream(s, o, st, &out, &evidence, &err);
		else
			rc = exec_emit(e, s, o, st, &out, &evidence, &err);
		break;
	case SL_STEP_WAIT:
		exec_wait(s, o, st, started);
		return;
	case SL_STEP_AI:
		rc = exec_ai(e, s, o, st, &out, &evidence, &review, &err);
		if (rc == 1) { /* a tool step's writes wait for a person */
			park_tool(s, o, st, out, evidence, started);
			json_decref(out);
			json_decref(evidence);
			return;
		}
		if (!rc && review) {
			struct approval_request req = {
				.kind = "review",
				.proposed = json_object_get(out, "proposed"),
				.evidence = out,
				.reason = json_string_value(json_object_get(out, "reason")),
				.input = json_object_get(out, "source"),
			};
			park_for_approval(s, o, st, &req, s->run.attempt + 1, started);
			json_decref(out);
			return;
		}
		break;
	case SL_STEP_APPROVAL:
		exec_approval(e, s, o, st, started);
		return;
	}
	if (!rc && check_output(st, out, &err))
		rc = err.code;
	int64_t dur = (sl_mono_us() - t0) / 1000;
	if (rc) {
		json_decref(out);
		if (o->nspawn) { /* an emit that failed starts nothing */
			o->c.spawn = NULL;
			o->c.nspawn = 0;
		}
		fail_step(e, s, o, st, &err, evidence, started, dur);
		return;
	}
	int attempts = s->run.attempt + 1;
	record_attempt(o, st->id, attempts, started, dur, "ok", NULL);
	advance(s, o, st, SL_STEP_ST_COMPLETED, out);
	record_step(o, st, SL_STEP_ST_COMPLETED, attempts, started);
}

/* ---- compensation: undo completed steps in reverse order ------------------------------ */

static void exec_compensate(struct sl_engine *e, struct slot *s, struct outcome *o)
{
	(void)e;
	int i = s->run.cursor;
	for (; i >= 0; i--) {
		const struct sl_step *st = &s->wf->steps[i];
		const char *status = json_string_value(json_object_get(s->run.step_status, st->id));
		if (st->comp_action && status && strcmp(status, "completed") == 0)
			break;
	}
	if (i < 0) {
		o->c.status = SL_RUN_COMPENSATED;
		o->c.next = SL_TASK_DONE;
		o->c.cursor = -1;
		o->ends_run = true;
		sl_log(SL_LOG_INFO, "engine", "run compensated", "run_id", s->run.id, "workflow", s->run.workflow, NULL);
		return;
	}
	const struct sl_step *st = &s->wf->steps[i];
	char *att_id = sl_asprintf("%s#compensate", st->id);
	int64_t started = sl_now_ms(), t0 = sl_mono_us();
	struct sl_err err;
	sl_err_clear(&err);
	json_t *out = NULL, *evidence = NULL;
	json_t *done_output = json_object_get(s->run.context, st->id);
	/* a compensation undoes what was approved or allowed: it is not gated */
	int rc = exec_call(e, o, s, st, st->comp_connector, st->comp_action, st->comp_with, done_output, "#compensate",
			   NULL, &out, &evidence, NULL, NULL, &err);
	int64_t dur = (sl_mono_us() - t0) / 1000;
	int attempts = s->run.attempt + 1;
	if (rc) {
		err = located(&err);
		record_attempt(o, att_id, attempts, started, dur, "error", &err);
		if (retryable(&err) && attempts < st->retry.max_attempts) {
			o->c.attempt_no = attempts;
			o->c.cursor = i;
			o->c.next = SL_TASK_RESCHEDULE;
			o->c.due_at = sl_now_ms() +
				      sl_backoff_ms(attempts, st->retry.base_ms, st->retry.max_ms, err.retry_after_ms);
			json_decref(evidence);
		} else {
			sl_err_prefix(&err, "compensation of step %s failed", st->id);
			end_dead(s, o, att_id, &err, evidence);
			o->dlq.step_id = o->att_step_id; /* outlives att_id */
		}
		free(att_id);
		return;
	}
	json_decref(out);
	record_attempt(o, att_id, attempts, started, dur, "ok", NULL);
	free(att_id);
	o->step_output = done_output ? json_incref(done_output) : json_null();
	record_step(o, st, SL_STEP_ST_COMPENSATED, attempts, started);
	json_object_set_new(s->run.step_status, st->id, json_string("compensated"));
	o->c.cursor = i - 1;
	o->c.attempt_no = 0;
}

void step_execute(struct sl_engine *e, struct slot *s, struct outcome *o)
{
	outcome_init(e, s, o);
	if (sl_run_status_terminal(s->run.status)) { /* nothing left to do */
		o->c.next = SL_TASK_DONE;
		return;
	}
	if (s->run.phase == SL_PHASE_COMPENSATE)
		exec_compensate(e, s, o);
	else
		exec_forward(e, s, o);
	bool retrying = o->c.status == SL_RUN_WAITING && o->c.next == SL_TASK_RESCHEDULE;
	if (o->apr_consumed[0] && !retrying)
		o->c.approval_consumed = o->apr_consumed;
}

void step_apply(struct slot *s, const struct outcome *o)
{
	s->run.status = o->c.status;
	s->run.phase = o->c.phase;
	s->run.cursor = o->c.cursor;
	s->run.attempt = o->c.attempt_no;
	s->run.wake_at = o->c.wake_at;
}
