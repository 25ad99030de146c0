/*
 * gate.c: governance before every effect (DESIGN.md §7,
 * docs/reference/policy.md). Before a `call` step or a tool call runs, the
 * policy rules decide (deny / require_approval / allow), then autonomy: a
 * write or delete that follows an ai step acting below `supervised` waits
 * for a person; one that follows a `supervised` step must be on its
 * allowlist. A denial is the `policy` error class naming the rule, and is
 * audited; so is every request for approval.
 */
#include "engine/engine_int.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov/signal.h"
#include "obs/obs.h"

void gate_free(struct gate *g)
{
	json_decref(g->checks);
	json_decref(g->reviewers);
	json_decref(g->evidence);
	memset(g, 0, sizeof *g);
}

/* The one place that knows where a decision waits for the gate. */
const json_t *gate_approval(const struct slot *s, const struct outcome *o, const char *step_id)
{
	if (o && o->apr_doc)
		return o->apr_doc;
	const json_t *a = json_object_get(json_object_get(s->run.context, "_approvals"), step_id);
	return json_is_object(a) && json_is_string(json_object_get(a, "decision")) ? a : NULL;
}

/* ---- who is acting ---------------------------------------------------------------------- */

#define GATE_NAMES_MAX 66 /* workflow + up to 64 agents + NULL */

/* The ai steps of the run before index that ran (completed): their
 * answers may be what the call carries. */
static bool ai_ran(const struct slot *s, const struct sl_step *a, int before)
{
	if (a->kind != SL_STEP_AI || a->index >= before)
		return false;
	const char *status = json_string_value(json_object_get(s->run.step_status, a->id));
	return status && (strcmp(status, "completed") == 0 || strcmp(status, "review") == 0);
}

struct actors {
	char *names[GATE_NAMES_MAX];
	size_t n;
	const struct sl_step *lowest; /* the ai step acting at the lowest level, or NULL */
	enum sl_autonomy level;       /* its level now (demotion applied) */
	unsigned signals;             /* the signals demoting it */
};

static void actors_add(struct actors *a, char *name)
{
	if (a->n + 1 < GATE_NAMES_MAX)
		a->names[a->n++] = name;
	else
		free(name);
}

static void actors_consider(struct actors *a, const struct slot *s, const struct sl_step *ai)
{
	actors_add(a, sl_asprintf("agent:%s/%s", s->run.workflow, ai->id));
	unsigned sig = 0;
	enum sl_autonomy lv = sl_step_autonomy(ai, s->run.workflow, &sig);
	if (!a->lowest || lv < a->level) {
		a->lowest = ai;
		a->level = lv;
		a->signals = sig;
	}
}

/* A call acts for its workflow, and for every ai step that answered
 * before it in the run (it may carry their answers); a tool call acts for
 * its tool step. */
static void actors_of(struct actors *a, const struct slot *s, const struct sl_step *st, const struct sl_step *tool_of)
{
	memset(a, 0, sizeof *a);
	actors_add(a, sl_asprintf("workflow:%s", s->run.workflow));
	if (tool_of) {
		actors_consider(a, s, tool_of);
		return;
	}
	for (size_t i = 0; i < s->wf->nsteps; i++)
		if (ai_ran(s, &s->wf->steps[i], st->index))
			actors_consider(a, s, &s->wf->steps[i]);
}

static void actors_free(struct actors *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->names[i]);
}

static json_t *actors_json(const struct actors *a)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < a->n; i++)
		json_array_append_new(arr, json_string(a->names[i]));
	return arr;
}

/* ---- evidence and audit --------------------------------------------------------------------- */

/* What a reviewer needs of the ai steps behind the call: each answer with
 * its confidence and rationale when the model gave them. */
static json_t *ai_evidence(const struct slot *s, const struct sl_step *st, const struct sl_step *tool_of)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < s->wf->nsteps; i++) {
		const struct sl_step *a = &s->wf->steps[i];
		if (!(tool_of ? a == tool_of : ai_ran(s, a, st->index)))
			continue;
		const json_t *out = json_object_get(s->run.context, a->id);
		json_t *e = json_pack("{s:s, s:s, s:s, s:O}", "step", a->id, "task", sl_ai_task_name(a->ai.task),
				      "autonomy", sl_autonomy_name(a->ai.autonomy), "output", out ? out : json_null());
		json_t *conf = json_object_get(out, "confidence");
		if (conf)
			json_object_set(e, "confidence", conf);
		json_t *why = json_object_get(out, "rationale");
		if (why)
			json_object_set(e, "rationale", why);
		json_object_set_new(e, "acts_as", json_string(sl_autonomy_name(sl_step_autonomy(a, s->run.workflow, NULL))));
		json_array_append_new(arr, e);
	}
	return arr;
}

static void gate_audit(struct outcome *o, const struct slot *s, const struct sl_step *st,
		       const struct sl_connector *conn, const struct sl_action *act, const struct actors *a,
		       const struct gate *g, const char *action)
{
	json_t *detail = json_pack("{s:s, s:s, s:o, s:o, s:s}", "action", act->name, "effect", sl_effect_name(act->effect),
				   "subject", actors_json(a), "checks", g->checks ? json_incref(g->checks) : json_array(),
				   "reason", g->reason);
	if (a->lowest) {
		json_object_set_new(detail, "agent", json_string(a->lowest->id));
		json_object_set_new(detail, "acts_as", json_string(sl_autonomy_name(a->level)));
	}
	struct sl_audit_entry ae = {
		.tenant = s->run.tenant,
		/* the agent as ai.call names it (WORKFLOW/STEP), else the engine */
		.actor = {a->lowest ? SL_ACTOR_AGENT : SL_ACTOR_SYSTEM, a->n > 1 ? a->names[1] + strlen("agent:") : "engine"},
		.action = action,
		.target = {"connector", conn->name},
		.run_id = s->run.id,
		.step_id = st->id,
		.correlation_id = s->run.correlation_id,
		.policy = {g->rule, g->decision},
		.detail = detail,
	};
	outcome_audit(o, sl_audit_entry_json(&ae));
	json_decref(detail);
}

/* ---- the decision ------------------------------------------------------------------------------ */

static bool on_list(char *const *globs, const char *name)
{
	for (size_t i = 0; globs && globs[i]; i++)
		if (fnmatch(globs[i], name, 0) == 0)
			return true;
	return false;
}

static void deny(struct gate *g, const char *rule, const char *fmt, const char *a1, const char *a2)
{
	g->verdict = GATE_DENY;
	g->rule = rule;
	g->decision = "deny";
	snprintf(g->reason, sizeof g->reason, fmt, a1, a2);
	sl_err_set(&g->err, SL_EINVAL, SL_CLASS_POLICY, "denied by policy rule %s: %s", rule, g->reason);
}

/* An approval decided before: the run came back to this step. */
static bool decided(const struct slot *s, const struct outcome *o, const struct sl_step *st, json_t **input,
		    struct gate *g)
{
	const json_t *ap = gate_approval(s, o, st->id);
	if (!ap)
		return false;
	const char *d = json_string_value(json_object_get(ap, "decision"));
	g->approval_id = json_string_value(json_object_get(ap, "id"));
	g->rule = "approval";
	if (d && (strcmp(d, "approved") == 0 || strcmp(d, "edited") == 0)) {
		g->verdict = GATE_GO;
		g->decision = "allow";
		const json_t *final = json_object_get(ap, "final");
		/* the edited proposal ({connector, action, effect, input}) or the input alone */
		if (json_is_object(final) && json_object_get(final, "action") && json_object_get(final, "input"))
			final = json_object_get(final, "input");
		if (strcmp(d, "edited") == 0 && final) {
			json_decref(*input);
			*input = json_deep_copy(final);
		}
		snprintf(g->reason, sizeof g->reason, "approval %s: %s", g->approval_id ? g->approval_id : "?", d);
		return true;
	}
	const char *by = json_string_value(json_object_get(ap, "by"));
	deny(g, "approval", "the approval was %s by %s", d ? d : "not given", by ? by : "nobody");
	return true;
}

static void policy_step(const struct sl_project *p, const struct slot *s, const struct sl_step *st,
			const struct sl_connector *conn, const struct sl_action *act, const json_t *input,
			const struct actors *a, struct gate *g, struct sl_policy_result *res)
{
	char target[512];
	snprintf(target, sizeof target, "%s.%s", conn->name, act->name);
	bool writes = act->effect == SL_EFFECT_WRITE || act->effect == SL_EFFECT_DELETE;
	json_t *doc = json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:O, s:s, s:s, s:s, s:s}", "subject", actors_json(a),
				"verb", writes ? "write" : "read", "action", target, "connector", conn->name, "name",
				act->name, "effect", sl_effect_name(act->effect), "input", input ? input : json_null(),
				"workflow", s->run.workflow, "step", st->id, "tenant", s->run.tenant ? s->run.tenant : "default",
				"run_id", s->run.id);
	struct sl_policy_query q = {
		.subject = {(const char *const *)a->names},
		.verb = writes ? SL_VERB_WRITE : SL_VERB_READ,
		.target = target,
		.fields = input,
		.doc = doc,
	};
	sl_policy_eval(p->policy, &q, res);
	json_decref(doc);
}

static void autonomy_step(const struct slot *s, const struct sl_step *st, const struct sl_step *tool_of,
			  const struct sl_connector *conn, const struct sl_action *act, const struct actors *a,
			  struct gate *g)
{
	if (!a->lowest)
		return;
	bool writes = act->effect == SL_EFFECT_WRITE || act->effect == SL_EFFECT_DELETE;
	char target[512];
	snprintf(target, sizeof target, "%s.%s", conn->name, act->name);
	char *const *allow = a->lowest->allow_actions ? a->lowest->allow_actions : s->wf->allow_actions;
	/* a tool step's model picks the action: it must be on the list at any level */
	if ((tool_of || a->level == SL_AUTONOMY_SUPERVISED) && (tool_of || writes) && !on_list(allow, target)) {
		deny(g, "autonomy", "%s is not in the allow_actions of ai step %s", target, a->lowest->id);
		return;
	}
	if (!writes || a->level >= SL_AUTONOMY_SUPERVISED || g->verdict == GATE_PARK)
		return;
	g->verdict = GATE_PARK;
	g->kind = "autonomy";
	g->rule = "autonomy";
	g->decision = "require_approval";
	snprintf(g->reason, sizeof g->reason, "%s %s follows ai step %s acting as %s%s: a person approves it first",
		 sl_effect_name(act->effect), target, a->lowest->id, sl_autonomy_name(a->level),
		 a->level != a->lowest->ai.autonomy ? " (demoted by a live signal)" : "");
}

/* A worker process follows the signals the server evaluates: it reloads
 * them from the store at most every SIGNALS_REFRESH_MS (one read; the
 * others go on with what is there). */
#define SIGNALS_REFRESH_MS 1000

static void signals_refresh(struct sl_engine *e)
{
	if (!e || !e->mirror_signals)
		return;
	int64_t now = sl_mono_ms();
	int64_t at = atomic_load(&e->signals_at);
	if ((at && now - at < SIGNALS_REFRESH_MS) || !atomic_compare_exchange_strong(&e->signals_at, &at, now))
		return;
	json_t *snap = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_trigger_state_get(e->store, SL_SIGNALS_STATE, &snap, &err);
	if (rc == 0)
		sl_signal_mirror(e->project, snap);
	else if (rc != SL_ENOTFOUND)
		sl_log(SL_LOG_WARN, "engine", "cannot read the autonomy signals; keeping the last known", "error", err.msg,
		       NULL);
	json_decref(snap);
}

void gate_call(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st,
	       const struct sl_step *tool_of, const struct sl_connector *conn, const struct sl_action *act,
	       json_t **input, struct gate *g)
{
	signals_refresh(e);
	memset(g, 0, sizeof *g);
	sl_err_clear(&g->err);
	g->verdict = GATE_GO;
	g->rule = "default";
	g->decision = "allow";
	if (!tool_of && decided(s, o, st, input, g)) {
		if (g->verdict == GATE_DENY) {
			struct actors a;
			actors_of(&a, s, st, tool_of);
			gate_audit(o, s, st, conn, act, &a, g, "policy.deny");
			actors_free(&a);
		}
		return;
	}
	struct actors a;
	actors_of(&a, s, st, tool_of);
	const struct sl_policy *p = e->project->policy;
	bool writes = act->effect == SL_EFFECT_WRITE || act->effect == SL_EFFECT_DELETE;
	if (!a.lowest && (!p || (p->nrules == 0 && p->defaults[writes ? SL_VERB_WRITE : SL_VERB_READ] == SL_DECIDE_ALLOW))) {
		actors_free(&a); /* nothing to decide: no rules, no ai step behind it (the common hot path) */
		return;
	}
	struct sl_policy_result res;
	policy_step(e->project, s, st, conn, act, *input, &a, g, &res);
	g->checks = json_incref(res.matched);
	g->rule = res.rule;
	g->decision = sl_policy_decision_name(res.decision);
	if (res.decision == SL_DECIDE_DENY) {
		deny(g, res.rule, "%s%s", res.rule && strcmp(res.rule, "default") ? "a rule denies this action" : "no rule allows this action",
		     res.error[0] ? " (its condition failed to evaluate)" : "");
	} else if (res.decision == SL_DECIDE_REQUIRE_APPROVAL) {
		g->verdict = GATE_PARK;
		g->kind = "policy";
		g->reviewers = json_incref(res.reviewers);
		snprintf(g->reason, sizeof g->reason, "policy rule %s requires an approval for %s.%s", res.rule,
			 conn->name, act->name);
	}
	if (g->verdict != GATE_DENY)
		autonomy_step(s, st, tool_of, conn, act, &a, g);
	sl_policy_result_free(&res);
	if (g->verdict == GATE_PARK)
		g->evidence = json_pack("{s:o, s:O, s:o}", "ai", ai_evidence(s, st, tool_of), "policy_checks", g->checks,
					"subject", actors_json(&a));
	if (g->verdict != GATE_GO)
		gate_audit(o, s, st, conn, act, &a, g, g->verdict == GATE_DENY ? "policy.deny" : "policy.require_approval");
	const char *ml[] = {g->decision, g->rule};
	sl_metric_add(SL_M_POLICY_DECISIONS, ml, 1);
	actors_free(&a);
}

/* ---- trigger and suggest ------------------------------------------------------------------ */

int gate_trigger(struct sl_engine *e, const struct sl_workflow *w, const struct sl_start *st, const json_t *input,
		 struct sl_err *err)
{
	const struct sl_policy *p = e->project->policy;
	if (!p || (p->nrules == 0 && p->defaults[SL_VERB_TRIGGER] == SL_DECIDE_ALLOW))
		return 0;
	const char *kind = sl_actor_kind_name(st->actor.kind);
	/* the caller by name, and by the role of its key: role:R matches keys
	 * of role R (not the roles above it, so a deny for viewers stays theirs) */
	char *names[3] = {sl_asprintf("%s:%s", kind, st->actor.id ? st->actor.id : "unknown"),
			  st->role ? sl_asprintf("role:%s", st->role) : NULL, NULL};
	json_t *subject = json_pack("[s]", names[0]);
	if (names[1])
		json_array_append_new(subject, json_string(names[1]));
	json_t *doc = json_pack("{s:o, s:s, s:s, s:O, s:s, s:s}", "subject", subject, "verb", "trigger", "workflow",
				w->name, "input", input, "tenant", st->tenant ? st->tenant : "default", "trigger",
				st->trigger ? st->trigger : "api");
	struct sl_policy_query q = {.subject = {(const char *const *)names}, .verb = SL_VERB_TRIGGER, .target = w->name,
				    .fields = input, .doc = doc};
	struct sl_policy_result res;
	sl_policy_eval(e->project->policy, &q, &res);
	int rc = 0;
	if (res.decision != SL_DECIDE_ALLOW) {
		/* no run exists yet to wait for a person: an approval rule refuses too */
		rc = sl_err_set(err, SL_EINVAL, SL_CLASS_POLICY, "denied by policy rule %s: %s may not start workflow %s",
				res.rule, names[0], w->name);
		json_t *detail = json_pack("{s:s, s:O}", "reason", err->msg, "checks", res.matched);
		struct sl_audit_entry ae = {
			.tenant = st->tenant,
			.actor = st->actor,
			.action = "policy.deny",
			.target = {"workflow", w->name},
			.correlation_id = st->correlation_id,
			.policy = {res.rule, sl_policy_decision_name(res.decision)},
			.detail = detail,
		};
		struct sl_err aerr;
		sl_err_clear(&aerr);
		if (sl_audit_append(e->store, &ae, NULL, &aerr))
			sl_log(SL_LOG_ERROR, "engine", "could not audit a denied start", "workflow", w->name, "error",
			       aerr.msg, NULL);
		json_decref(detail);
	}
	sl_policy_result_free(&res);
	json_decref(doc);
	free(names[0]);
	free(names[1]);
	return rc;
}

int gate_suggest(struct sl_engine *e, const struct slot *s, struct outcome *o, const struct sl_step *st,
		 struct sl_err *err, char *why, size_t cap)
{
	const struct sl_policy *p = e->project->policy;
	if (!p || (p->nrules == 0 && p->defaults[SL_VERB_SUGGEST] == SL_DECIDE_ALLOW))
		return 0;
	char *names[3] = {sl_asprintf("workflow:%s", s->run.workflow), sl_asprintf("agent:%s/%s", s->run.workflow, st->id),
			  NULL};
	const char *task = sl_ai_task_name(st->ai.task);
	json_t *doc = json_pack("{s:[s, s], s:s, s:s, s:s, s:s, s:s}", "subject", names[0], names[1], "verb", "suggest",
				"task", task, "workflow", s->run.workflow, "step", st->id, "tenant",
				s->run.tenant ? s->run.tenant : "default");
	struct sl_policy_query q = {.subject = {(const char *const *)names}, .verb = SL_VERB_SUGGEST, .target = task,
				    .doc = doc};
	struct sl_policy_result res;
	sl_policy_eval(p, &q, &res);
	int rc = 0;
	if (res.decision == SL_DECIDE_DENY) {
		rc = sl_err_set(err, SL_EINVAL, SL_CLASS_POLICY, "denied by policy rule %s: ai step %s may not %s", res.rule,
				st->id, task);
	} else if (res.decision == SL_DECIDE_REQUIRE_APPROVAL) {
		rc = 1;
		snprintf(why, cap, "policy rule %s: a person reviews this %s", res.rule, task);
	}
	if (rc) {
		json_t *detail = json_pack("{s:s, s:s, s:O}", "task", task, "reason", rc == 1 ? why : err->msg, "checks",
					   res.matched);
		struct sl_audit_entry ae = {
			.tenant = s->run.tenant,
			.actor = {SL_ACTOR_AGENT, names[1] + strlen("agent:")},
			.action = rc == 1 ? "policy.require_approval" : "policy.deny",
			.target = {"agent", names[1] + strlen("agent:")},
			.run_id = s->run.id,
			.step_id = st->id,
			.correlation_id = s->run.correlation_id,
			.policy = {res.rule, sl_policy_decision_name(res.decision)},
			.detail = detail,
		};
		outcome_audit(o, sl_audit_entry_json(&ae));
		json_decref(detail);
	}
	sl_policy_result_free(&res);
	json_decref(doc);
	free(names[0]);
	free(names[1]);
	return rc;
}
