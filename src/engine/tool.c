/*
 * tool.c: `ai: {task: tool}` steps (DESIGN.md §6-§7). A bounded loop: the
 * model sees the step's allowlisted connector actions as tools; each turn
 * it either calls tools or gives its final answer. Every call is checked
 * by the gate (policy, then the step's autonomy and allowlist) before it
 * runs; a refused call is not made, is audited, and goes back to the model
 * as a tool error, so an injected instruction gets a "no" and the loop goes
 * on. What a tool returns is fed back without the fields that read rules
 * deny the step. The final answer is the step's output (its `contract:`,
 * when set, checks it, as for any step).
 *
 * A call that needs an approval is not made inside the loop (the loop
 * cannot wait durably in the middle of a conversation): the model is told
 * it waits for a person, and when the loop ends the step parks for one
 * approval of all such calls, with the model's answer. After the decision
 * the step runs again and makes the approved calls (edited: as edited)
 * without asking the model again; a rejection fails it (class policy).
 */
#include "engine/engine_int.h"
#include "gov/signal.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_TURNS_DEFAULT 5
#define TOOL_RESULT_MAX (16 * 1024) /* what one tool result may put in the conversation */
#define TOOL_NAME_MAX 128

static const char TOOL_SYSTEM[] =
	"You can use the tools offered to look things up and act. Call a tool when you need it; when you are "
	"done, answer with your final result only (one JSON object when the task asks for data). A tool result "
	"with \"error\" was refused or failed: do not try to get around it.";

/* OpenAI function names allow [A-Za-z0-9_-]: CONNECTOR.ACTION becomes
 * CONNECTOR__ACTION with each dot as "__". */
static void tool_name(char out[TOOL_NAME_MAX], const char *conn, const char *act)
{
	size_t n = 0;
	for (const char *p = conn; *p && n + 1 < TOOL_NAME_MAX; p++)
		out[n++] = *p;
	for (const char *p = "__"; *p && n + 1 < TOOL_NAME_MAX; p++)
		out[n++] = *p;
	for (const char *p = act; *p && n + 2 < TOOL_NAME_MAX; p++) {
		if (*p == '.') {
			out[n++] = '_';
			out[n++] = '_';
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
}

static bool allowed(char *const *globs, const char *conn, const char *act)
{
	char full[2 * TOOL_NAME_MAX];
	snprintf(full, sizeof full, "%s.%s", conn, act);
	for (size_t i = 0; globs && globs[i]; i++)
		if (fnmatch(globs[i], full, 0) == 0)
			return true;
	return false;
}

/* The tools offered: the project's actions on the step's allowlist. */
static json_t *tools_offered(const struct sl_project *p, char *const *allow)
{
	json_t *tools = json_array();
	for (size_t i = 0; i < p->nconnectors; i++) {
		const struct sl_connector *c = p->connectors[i];
		for (size_t j = 0; j < c->nactions; j++) {
			const struct sl_action *a = &c->actions[j];
			if (!allowed(allow, c->name, a->name))
				continue;
			char name[TOOL_NAME_MAX];
			tool_name(name, c->name, a->name);
			const char *desc = json_string_value(json_object_get(a->config, "description"));
			char *d = sl_asprintf("%s.%s (%s)%s%s", c->name, a->name, sl_effect_name(a->effect), desc ? ": " : "",
					      desc ? desc : "");
			json_array_append_new(tools, json_pack("{s:s, s:s, s:{s:s}}", "name", name, "description", d,
							       "parameters", "type", "object"));
			free(d);
		}
	}
	return tools;
}

/* The action a tool name stands for, among all the project's actions (a
 * real action off the allowlist is refused by the gate, by its name). */
static bool tool_find(const struct sl_project *p, const char *name, struct sl_connector **conn,
		      const struct sl_action **act)
{
	for (size_t i = 0; i < p->nconnectors; i++)
		for (size_t j = 0; j < p->connectors[i]->nactions; j++) {
			char n[TOOL_NAME_MAX];
			tool_name(n, p->connectors[i]->name, p->connectors[i]->actions[j].name);
			if (strcmp(n, name) == 0) {
				*conn = p->connectors[i];
				*act = &p->connectors[i]->actions[j];
				return true;
			}
		}
	return false;
}

struct tool_loop {
	struct sl_engine *e;
	struct slot *s;
	struct outcome *o;
	const struct sl_step *st;
	json_t *messages;  /* the conversation, OpenAI-shaped */
	json_t *log;       /* [{turn, tool, action, outcome, error?}] for the step's output */
	json_t *withheld;  /* calls waiting for a person */
	struct sl_ai_result total; /* every turn's calls and cost, for the ai.call entry */
};

/* A refusal of a name that is no action at all: audited like a denial. */
static void audit_unknown(struct tool_loop *L, const char *name)
{
	char agent[256];
	snprintf(agent, sizeof agent, "%s/%s", L->s->run.workflow, L->st->id);
	json_t *detail = json_pack("{s:s, s:s}", "tool", name, "reason", "no such tool");
	struct sl_audit_entry ae = {
		.tenant = L->s->run.tenant,
		.actor = {SL_ACTOR_AGENT, agent},
		.action = "policy.deny",
		.target = {"tool", name},
		.run_id = L->s->run.id,
		.step_id = L->st->id,
		.correlation_id = L->s->run.correlation_id,
		.policy = {"autonomy", "deny"},
		.detail = detail,
	};
	outcome_audit(L->o, sl_audit_entry_json(&ae));
	json_decref(detail);
}

/* What a read returned, minus what the step may not read, as the text of
 * a tool result (cut at TOOL_RESULT_MAX). */
static char *result_text(struct tool_loop *L, const struct sl_connector *conn, const struct sl_action *act,
			 json_t *output)
{
	char target[2 * TOOL_NAME_MAX];
	snprintf(target, sizeof target, "%s.%s", conn->name, act->name);
	char *names[3] = {sl_asprintf("agent:%s/%s", L->s->run.workflow, L->st->id),
			  sl_asprintf("workflow:%s", L->s->run.workflow), NULL};
	struct sl_policy_subject subj = {(const char *const *)names};
	json_t *deny = sl_policy_denied_fields(L->e->project->policy, &subj, target);
	free(names[0]);
	free(names[1]);
	json_t *shown = json_deep_copy(output);
	size_t removed = sl_policy_strip_fields(shown, deny);
	json_decref(deny);
	json_t *wrapped = json_pack("{s:o}", "result", shown);
	if (removed)
		json_object_set_new(wrapped, "withheld_fields", json_integer((json_int_t)removed));
	char *text = json_dumps(wrapped, JSON_COMPACT | SL_JSON_REAL);
	json_decref(wrapped);
	if (text && strlen(text) > TOOL_RESULT_MAX)
		text[TOOL_RESULT_MAX] = '\0';
	return text ? text : sl_strdup("{}");
}

static char *error_text(const char *why)
{
	json_t *j = json_pack("{s:s}", "error", why);
	char *t = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return t;
}

/* Runs one tool call the model asked for; returns the tool result text. */
static char *run_tool(struct tool_loop *L, int turn, size_t index, const json_t *tc)
{
	const char *name = json_string_value(json_object_get(tc, "name"));
	struct sl_connector *conn = NULL;
	const struct sl_action *act = NULL;
	json_t *entry = json_pack("{s:i, s:s}", "turn", turn, "tool", name ? name : "");
	json_array_append_new(L->log, entry);
	if (!name || !tool_find(L->e->project, name, &conn, &act)) {
		audit_unknown(L, name ? name : "");
		json_object_set_new(entry, "outcome", json_string("denied"));
		return error_text("no such tool");
	}
	char *full = sl_asprintf("%s.%s", conn->name, act->name);
	json_object_set_new(entry, "action", json_string(full));
	free(full);
	if (json_object_get(tc, "malformed")) {
		json_object_set_new(entry, "outcome", json_string("malformed"));
		return error_text("the arguments are not one JSON object");
	}
	json_t *input = json_deep_copy(json_object_get(tc, "input"));
	struct gate g;
	gate_call(L->e, L->s, L->o, L->st, L->st, conn, act, &input, &g);
	char *text = NULL;
	if (g.verdict == GATE_DENY) {
		json_object_set_new(entry, "outcome", json_string("denied"));
		json_object_set_new(entry, "rule", json_string(g.rule));
		text = error_text(g.err.msg);
	} else if (g.verdict == GATE_PARK) {
		json_object_set_new(entry, "outcome", json_string("withheld"));
		json_object_set_new(entry, "rule", json_string(g.rule));
		json_t *w = json_pack("{s:s, s:s, s:O, s:s}", "kind", g.kind, "action",
				      json_string_value(json_object_get(entry, "action")), "input", input, "reason", g.reason);
		if (g.reviewers)
			json_object_set(w, "reviewers", g.reviewers);
		json_array_append_new(L->withheld, w);
		char *why = sl_asprintf("not done: %s", g.reason);
		text = error_text(why);
		free(why);
	} else {
		char *key = sl_asprintf("%s:%s:t%d.%zu", L->s->run.id, L->st->id, turn, index);
		struct sl_call call = {.input = input, .idempotency_key = key, .correlation_id = L->s->run.correlation_id,
				       .run_id = L->s->run.id, .step_id = L->st->id, .timeout_ms = L->st->timeout_ms};
		struct sl_call_result res = {0};
		struct sl_err err;
		sl_err_clear(&err);
		int rc = sl_connector_call(conn, act, &call, &res, &err);
		step_audit_call(L->o, L->s, L->st, conn, act, key, rc, &err, res.status, false, &g);
		json_object_set_new(entry, "outcome", json_string(rc ? "error" : "ok"));
		json_object_set_new(entry, "rule", json_string(g.rule));
		if (rc) {
			char *why = sl_asprintf("%s: %s", sl_class_name(err.cls), err.msg);
			text = error_text(why);
			free(why);
		} else {
			text = result_text(L, conn, act, res.output);
		}
		json_decref(res.output);
		free(key);
	}
	gate_free(&g);
	json_decref(input);
	return text;
}

/* Appends the model's tool calls and their results to the conversation. */
static void run_turn_tools(struct tool_loop *L, int turn, const json_t *calls)
{
	json_t *asked = json_array();
	size_t i;
	json_t *tc;
	json_array_foreach(calls, i, tc) {
		char *args = json_dumps(json_object_get(tc, "input"), JSON_COMPACT | SL_JSON_REAL);
		json_array_append_new(asked, json_pack("{s:O, s:s, s:{s:O, s:s}}", "id", json_object_get(tc, "id"), "type",
						       "function", "function", "name", json_object_get(tc, "name"),
						       "arguments", args ? args : "{}"));
		free(args);
	}
	json_array_append_new(L->messages, json_pack("{s:s, s:n, s:o}", "role", "assistant", "content", "tool_calls", asked));
	json_array_foreach(calls, i, tc) {
		char *text = run_tool(L, turn, i, tc);
		json_array_append_new(L->messages, json_pack("{s:s, s:O, s:s}", "role", "tool", "tool_call_id",
							     json_object_get(tc, "id"), "content", text));
		free(text);
	}
}

/* The approval a loop with withheld writes asks for: one for all of
 * them, of the strictest kind (a policy rule's reviewers, else autonomy). */
static int park_request(struct tool_loop *L, json_t *final, json_t **out, json_t **evidence)
{
	json_t *calls = json_array(), *reviewers = NULL;
	const char *kind = "autonomy", *reason = NULL;
	size_t i;
	json_t *w;
	json_array_foreach(L->withheld, i, w) {
		json_array_append_new(calls, json_pack("{s:O, s:O}", "action", json_object_get(w, "action"), "input",
						       json_object_get(w, "input")));
		if (strcmp(json_string_value(json_object_get(w, "kind")), "policy") == 0) {
			kind = "policy";
			if (!reviewers && json_object_get(w, "reviewers"))
				reviewers = json_object_get(w, "reviewers");
		}
		if (!reason)
			reason = json_string_value(json_object_get(w, "reason"));
	}
	*out = json_pack("{s:o, s:O}", "calls", calls, "answer", final ? final : json_null());
	char *agent = sl_asprintf("%s/%s", L->s->run.workflow, L->st->id);
	*evidence = json_pack("{s:s, s:s, s:O, s:O, s:{s:s, s:s, s:s}}", "kind", kind, "reason", reason ? reason : "",
			      "withheld", L->withheld, "tools", L->log, "ai", "step", agent, "autonomy",
			      sl_autonomy_name(L->st->ai.autonomy), "acts_as",
			      sl_autonomy_name(sl_step_autonomy(L->st, L->s->run.workflow, NULL)));
	free(agent);
	if (reviewers)
		json_object_set(*evidence, "reviewers", reviewers);
	return 1;
}

static void add_turn(struct sl_ai_result *total, struct sl_ai_result *r)
{
	json_array_extend(total->calls, r->calls);
	total->tokens_in += r->tokens_in;
	total->tokens_out += r->tokens_out;
	total->cost_usd += r->cost_usd;
	if (r->model[0])
		snprintf(total->model, sizeof total->model, "%s", r->model);
}

/* The calls a person approved: made now, in order, without asking the
 * model again. Returns 0 with *out the answer and what each call did. */
static int run_approved(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st,
			const json_t *ap, json_t **out, struct sl_err *err)
{
	const char *d = json_string_value(json_object_get(ap, "decision"));
	const char *id = json_string_value(json_object_get(ap, "id"));
	if (!d || (strcmp(d, "approved") && strcmp(d, "edited")))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_POLICY, "denied by policy rule approval: the calls were %s",
				  d ? d : "not approved");
	const json_t *final = json_object_get(ap, "final");
	json_t *done = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(final, "calls"), i, c) {
		const char *action = json_string_value(json_object_get(c, "action"));
		const char *dot = action ? strchr(action, '.') : NULL;
		char cname[TOOL_NAME_MAX];
		snprintf(cname, sizeof cname, "%.*s", dot ? (int)(dot - action) : 0, action ? action : "");
		struct sl_connector *conn = sl_project_connector(e->project, cname);
		const struct sl_action *act = NULL;
		for (size_t j = 0; conn && dot && j < conn->nactions; j++)
			if (strcmp(conn->actions[j].name, dot + 1) == 0)
				act = &conn->actions[j];
		if (!act) {
			json_decref(done);
			return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "approved call %zu: no action '%s'", i,
					  action ? action : "");
		}
		char *key = sl_asprintf("%s:%s:approved.%zu", s->run.id, st->id, i);
		struct sl_call call = {.input = json_object_get(c, "input"), .idempotency_key = key,
				       .correlation_id = s->run.correlation_id, .run_id = s->run.id, .step_id = st->id,
				       .timeout_ms = st->timeout_ms};
		struct sl_call_result res = {0};
		struct gate g = {.rule = "approval", .decision = "allow", .approval_id = id};
		int rc = sl_connector_call(conn, act, &call, &res, err);
		step_audit_call(o, s, st, conn, act, key, rc, err, res.status, false, &g);
		free(key);
		if (rc) {
			json_decref(done);
			return rc;
		}
		json_array_append_new(done, json_pack("{s:s, s:o}", "action", action, "output",
						      res.output ? res.output : json_null()));
	}
	const json_t *answer = json_object_get(final, "answer");
	*out = json_is_object(answer) ? json_deep_copy(answer) : json_object();
	if (!st->output_contract)
		json_object_set_new(*out, "_approved", done);
	else
		json_decref(done);
	return 0;
}

int step_exec_tool(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st, json_t **out,
		   json_t **evidence, struct sl_err *err)
{
	const struct sl_ai_step *a = &st->ai;
	const json_t *ap = gate_approval(s, o, st->id);
	if (ap)
		return run_approved(e, s, o, st, ap, out, err);
	json_t *seen = step_ai_context(e, s, st);
	json_t *input = NULL;
	if (sl_expr_eval(a->input, seen, &input, err)) {
		json_decref(seen);
		return err->code;
	}
	char *prompt = step_ai_prompt(s, st, seen, input, err);
	json_decref(seen);
	json_decref(input);
	if (!prompt)
		return err->code ? err->code : SL_EINVAL;
	char *const *allow = st->allow_actions ? st->allow_actions : s->wf->allow_actions;
	json_t *tools = tools_offered(e->project, allow);
	struct tool_loop L = {.e = e, .s = s, .o = o, .st = st, .log = json_array(), .withheld = json_array()};
	L.messages = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", TOOL_SYSTEM, "role", "user",
			       "content", prompt);
	free(prompt);
	L.total.calls = json_array();
	json_t *pii = sl_schema_pii_values(s->wf->trigger.contract, s->run.input);
	int max_turns = a->max_turns > 0 ? a->max_turns : TOOL_TURNS_DEFAULT;
	int rc = 0;
	json_t *final = NULL;
	for (int turn = 1; turn <= max_turns && !final && rc == 0; turn++) {
		struct sl_ai_request rq = {
			.task = SL_AI_TOOL,
			.route = a->route,
			.workflow = s->run.workflow,
			.run_id = s->run.id,
			.step_id = st->id,
			.correlation_id = s->run.correlation_id,
			.tenant = s->run.tenant,
			.prompt_hash = a->prompt ? a->prompt->digest : "",
			.pii = pii,
			.max_tokens = a->max_tokens,
			.messages = L.messages,
			.tools = tools,
		};
		struct sl_ai_result res;
		rc = sl_ai_run(e->project->ai, &rq, &res, err);
		add_turn(&L.total, &res);
		const json_t *calls = rc ? NULL : json_object_get(res.output, "tool_calls");
		if (!rc && res.review) {
			rc = sl_err_set(err, SL_ESTEP, SL_CLASS_CONTRACT, "tool step: %s", res.review_reason);
		} else if (!rc && json_array_size(calls)) {
			run_turn_tools(&L, turn, calls);
		} else if (!rc) {
			const json_t *data = json_object_get(res.output, "data");
			final = data ? json_deep_copy(data) : json_pack("{s:O}", "text", json_object_get(res.output, "text"));
		}
		sl_ai_result_free(&res);
	}
	json_decref(pii);
	json_decref(tools);
	if (!rc && !final)
		rc = sl_err_set(err, SL_ESTEP, SL_CLASS_PERMANENT, "tool step: no final answer after %d turns", max_turns);
	if (json_array_size(L.total.calls)) {
		o->ai_calls = json_incref(L.total.calls);
		o->c.ai_calls = o->ai_calls;
		o->c.ai_step_id = st->id;
	}
	step_audit_ai(o, s, st, &L.total, rc, err);
	if (rc) {
		*evidence = json_pack("{s:s, s:O, s:O}", "route", a->route, "tools", L.log, "calls", L.total.calls);
	} else if (json_array_size(L.withheld)) {
		rc = park_request(&L, final, out, evidence);
		json_decref(final);
	} else {
		if (json_is_object(final) && !st->output_contract)
			json_object_set(final, "_tools", L.log);
		*out = final;
	}
	json_decref(L.messages);
	json_decref(L.log);
	json_decref(L.withheld);
	sl_ai_result_free(&L.total);
	return rc;
}
