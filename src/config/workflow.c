/*
 * workflow.c: a workflow document (DESIGN.md §2) checked against its key
 * tables and compiled: jq expressions, connector actions, contracts, and
 * the rule that a step reads only `.input` and the steps before it.
 *
 * Every problem is reported and the build goes on, so that one `sluice
 * check` lists them all; the workflow is returned only when there were none.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"

#define NAME_MAX_LEN 128
/* Root references one expression may make before we stop listing them. */
#define REFS_MAX 32

/* ---- the key tables (docs/reference/project.md is written from these) ---------------- */

const struct sl_conf_key sl_workflow_keys[] = {
	{"workflow", SL_CONF_STRING, true, "name: lowercase letters, digits, '-' and '_', starting with a letter or digit"},
	{"version", SL_CONF_INT, true, "an integer >= 1; a run finishes on the version it started with"},
	{"owner", SL_CONF_STRING, false, "who answers for it (a team or person)"},
	{"description", SL_CONF_STRING, false, "what it does"},
	{"trigger", SL_CONF_OBJECT, false, "what starts a run besides the API and CLI: webhook, event, schedule or poll"},
	{"input_contract", SL_CONF_STRING, false, "contract id (NAME@VERSION) the input must meet, when the trigger names none"},
	{"output", SL_CONF_JQ, false, "jq over the run context giving the run's output; default: the last step's output"},
	{"slo", SL_CONF_OBJECT, false, "service level objectives: p95_ms, max_error_rate, max_review_rate, max_cost_usd"},
	{"reviewers", SL_CONF_ARRAY, false, "who decides this workflow's approvals and reviews by default: principals and role:NAME (default [role:operator])"},
	{"steps", SL_CONF_ARRAY, true, "the steps, run in order; at least one"},
	{"allow_actions", SL_CONF_ARRAY, false, "CONNECTOR.ACTION globs a supervised ai step may lead to (when the step names none)"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_step_keys[] = {
	{"id", SL_CONF_STRING, true, "unique in the workflow: [A-Za-z_][A-Za-z0-9_]*; the output is stored under it"},
	{"map", SL_CONF_JQ, false, "kind map: a jq transform of the run context"},
	{"call", SL_CONF_STRING, false, "kind call: CONNECTOR.ACTION"},
	{"wait", SL_CONF_ANY, false, "kind wait: a duration (\"30s\"), {for: duration} or {until: jq time}"},
	{"emit", SL_CONF_ANY, false, "kind emit: a topic, or {topic: NAME, payload: jq, sink: CONNECTOR.ACTION}"},
	{"ai", SL_CONF_OBJECT, false, "kind ai: an AI task {task, route, input, prompt, labels, contract, min_confidence}"},
	{"approval", SL_CONF_OBJECT, false, "kind approval: a person decides {reviewers, evidence, timeout, on_timeout, escalate_to}"},
	{"when", SL_CONF_JQ, false, "jq condition; when false or null the step is skipped"},
	{"with", SL_CONF_JQ, false, "call: jq giving the action's input"},
	{"idempotency_key", SL_CONF_JQ, false, "call: jq giving the Idempotency-Key; default RUN_ID:STEP_ID"},
	{"compensate", SL_CONF_ANY, false, "call: CONNECTOR.ACTION or {call: CONNECTOR.ACTION, with: jq} that undoes it"},
	{"retry", SL_CONF_OBJECT, false, "{max_attempts, base_ms, max_ms}; default 3/200/30000 for call, 1 otherwise"},
	{"timeout", SL_CONF_DURATION, false, "limit for one attempt"},
	{"on_error", SL_CONF_STRING, false, "retry (retry, then dead-letter: the default), dead, continue or compensate"},
	{"contract", SL_CONF_STRING, false, "contract id (NAME@VERSION) the step's output must meet"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_trigger_keys[] = {
	{"webhook", SL_CONF_OBJECT, false, "{path, contract, hmac_secret}: POST to the path starts a run"},
	{"event", SL_CONF_ANY, false, "a topic, or {type, contract}: an emit step or event with that topic starts a run"},
	{"contract", SL_CONF_STRING, false, "contract id the input must meet (or give it inside webhook/event)"},
	{"schedule", SL_CONF_STRING, false, "a 5-field cron expression (\"*/5 * * * *\", names, @daily): a run per slot"},
	{"timezone", SL_CONF_STRING, false, "schedule: the TZ database zone its wall clock is read in (default UTC)"},
	{"catch_up", SL_CONF_STRING, false, "schedule: after a downtime, none, one (the latest missed slot, default) or all"},
	{"poll", SL_CONF_STRING, false, "CONNECTOR.ACTION (effect read) walked page by page: a run per new or changed record"},
	{"every", SL_CONF_DURATION, false, "poll: time between syncs (default 1m)"},
	{"sync", SL_CONF_OBJECT, false, "poll: {pagination, per_page, items, next, id, version, deleted, changed_at, on_delete}"},
	{"stream", SL_CONF_ANY, false, "a stream connector, or {connector, group, contract}: each message starts a run"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_webhook_keys[] = {
	{"path", SL_CONF_STRING, true, "URL path, starting with /, e.g. /hooks/email"},
	{"contract", SL_CONF_STRING, false, "contract id the request body must meet"},
	{"hmac_secret", SL_CONF_STRING, false, "secret reference (env:NAME or file:PATH) for the HMAC signature"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_event_keys[] = {
	{"type", SL_CONF_STRING, true, "the topic or CloudEvents type"},
	{"contract", SL_CONF_STRING, false, "contract id the event data must meet"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_sync_keys[] = {
	{"pagination", SL_CONF_STRING, false, "page (the action gets .page, .per_page; default) or cursor (.cursor from `next`)"},
	{"per_page", SL_CONF_INT, false, "records asked per page (default 100); a shorter page is the last"},
	{"items", SL_CONF_JQ, false, "jq over the action's output: the page's records (default .data)"},
	{"next", SL_CONF_JQ, false, "cursor: jq over the output giving the next cursor, null at the end (default .next_cursor)"},
	{"id", SL_CONF_JQ, false, "jq over a record: its id (default .id)"},
	{"version", SL_CONF_JQ, false, "jq over a record: its version; a new one is a change (default .version // .updated_at)"},
	{"deleted", SL_CONF_JQ, false, "jq over a record: true for a deletion (default .deleted == true)"},
	{"changed_at", SL_CONF_JQ, false, "jq over a record: when it changed, RFC 3339; the next sync's .since (default .updated_at)"},
	{"on_delete", SL_CONF_STRING, false, "run (a run with op \"delete\", the default) or skip"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_stream_trigger_keys[] = {
	{"connector", SL_CONF_STRING, true, "a connector of a stream type (redis_stream, nats, kafka)"},
	{"group", SL_CONF_STRING, false, "consumer group or durable name; default: the connector's"},
	{"consumers", SL_CONF_INT, false, "concurrent consumers in each process, 1..64 (default 4)"},
	{"contract", SL_CONF_STRING, false, "contract id each message's event must meet"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_retry_keys[] = {
	{"max_attempts", SL_CONF_INT, false, "total attempts, >= 1"},
	{"base_ms", SL_CONF_DURATION, false, "first backoff (exponential, full jitter); default 200"},
	{"max_ms", SL_CONF_DURATION, false, "largest backoff; default 30000"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_wait_keys[] = {
	{"for", SL_CONF_DURATION, false, "how long to wait"},
	{"until", SL_CONF_JQ, false, "jq giving the time to wake: RFC 3339 text or epoch ms"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_emit_keys[] = {
	{"topic", SL_CONF_STRING, false, "the topic; workflows with trigger {event: TOPIC} start (or give stream)"},
	{"stream", SL_CONF_STRING, false, "a stream connector: the event is published to it as a CloudEvent"},
	{"type", SL_CONF_STRING, false, "stream: the CloudEvents type; default sluice.WORKFLOW.STEP"},
	{"payload", SL_CONF_JQ, false, "jq giving the event's data; default: the run's input"},
	{"sink", SL_CONF_STRING, false, "CONNECTOR.ACTION (effect write) that also receives the event as a CloudEvent"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_compensate_keys[] = {
	{"call", SL_CONF_STRING, true, "CONNECTOR.ACTION that undoes the step"},
	{"with", SL_CONF_JQ, false, "jq giving its input; default: the step's output"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_ai_step_keys[] = {
	{"task", SL_CONF_STRING, true, "classify, extract, summarize, draft, route or tool"},
	{"route", SL_CONF_STRING, true, "a route of models.yaml: the models asked, in order"},
	{"input", SL_CONF_JQ, true, "jq giving the text the task reads (a string; another value is sent as JSON)"},
	{"prompt", SL_CONF_STRING, false, "a template prompts/NAME.md with {{input}}, {{labels}} and {{vars}}; default: the input alone"},
	{"vars", SL_CONF_JQ, false, "jq giving an object: more template variables"},
	{"labels", SL_CONF_ARRAY, false, "classify, route: the allowed answers (at least two)"},
	{"contract", SL_CONF_STRING, false, "extract: the contract id (NAME@VERSION) the answer must meet"},
	{"min_confidence", SL_CONF_ANY, false, "0..1: a less confident answer goes to review"},
	{"max_tokens", SL_CONF_INT, false, "the most tokens an answer may take (default 512)"},
	{"autonomy", SL_CONF_STRING, false, "assistant, recommender (default), drafting, supervised or autonomous"},
	{"role", SL_CONF_STRING, false, "the former name of autonomy"},
	{"demote_on", SL_CONF_ARRAY, false, "signals (drift, slo_burn, budget) that make the step act one autonomy level lower while they hold"},
	{"allow_actions", SL_CONF_ARRAY, false, "CONNECTOR.ACTION globs this step may lead to when supervised (tool: the tools offered); default: the workflow's"},
	{"max_turns", SL_CONF_INT, false, "tool: model turns at most, 1..20 (default 5)"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_approval_keys[] = {
	{"reviewers", SL_CONF_ARRAY, false, "who may decide: principals (alice) and roles (role:operator); default: the workflow's"},
	{"evidence", SL_CONF_JQ, false, "jq giving what the reviewer sees and approves (the proposed value); default: the run's input"},
	{"timeout", SL_CONF_DURATION, false, "how long to wait for a decision; default: for ever"},
	{"on_timeout", SL_CONF_STRING, false, "escalate, reject or approve (with timeout; default reject)"},
	{"escalate_to", SL_CONF_ARRAY, false, "on_timeout escalate: the group that decides next (a second timeout expires it)"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_slo_keys[] = {
	{"p95_ms", SL_CONF_ANY, false, "95th percentile run latency, ms"},
	{"max_error_rate", SL_CONF_ANY, false, "share of runs that may fail, 0..1"},
	{"max_review_rate", SL_CONF_ANY, false, "share of runs that may go to human review, 0..1"},
	{"max_cost_usd", SL_CONF_ANY, false, "cost per run, USD"},
	{NULL, 0, false, NULL},
};

/* The step kind keys, in the order messages list them. */
static const char *const kind_keys[] = {"map", "call", "wait", "emit", "ai", "approval", NULL};
static const char *const on_error_names[] = {"retry", "dead", "continue", "compensate", NULL};

const char *sl_step_kind_name(enum sl_step_kind k)
{
	switch (k) {
	case SL_STEP_MAP: return "map";
	case SL_STEP_CALL: return "call";
	case SL_STEP_WAIT: return "wait";
	case SL_STEP_EMIT: return "emit";
	case SL_STEP_AI: return "ai";
	case SL_STEP_APPROVAL: return "approval";
	}
	return "unknown";
}

/* ---- the build's state ------------------------------------------------------------------ */

/* An expression whose root references are checked once every step id is known. */
struct pending_ref {
	struct sl_expr *e; /* borrowed from the workflow */
	size_t step;       /* the step it belongs to; SIZE_MAX: the workflow's output */
	bool self_ok;      /* compensate's with may read the step's own output */
	char ptr[CONF_PTR_MAX];
};

struct wfb {
	const struct wf_env *env;
	struct conf_file *cf;
	struct sl_workflow *w;
	struct pending_ref *refs;
	size_t nrefs, caprefs;
};

static void add_ref(struct wfb *b, struct sl_expr *e, size_t step, bool self_ok, const char *ptr)
{
	if (!e)
		return;
	if (b->nrefs == b->caprefs) {
		b->caprefs = b->caprefs ? b->caprefs * 2 : 16;
		b->refs = sl_xrealloc(b->refs, b->caprefs * sizeof *b->refs);
	}
	struct pending_ref *r = &b->refs[b->nrefs++];
	r->e = e;
	r->step = step;
	r->self_ok = self_ok;
	snprintf(r->ptr, sizeof r->ptr, "%s", ptr);
}

/* Compiles the jq at pointer (a string, or already reported as not one). */
static struct sl_expr *jq_at(struct wfb *b, const json_t *v, const char *ptr, const char *what)
{
	if (!json_is_string(v))
		return NULL;
	int line, col;
	conf_pos(b->cf, ptr, &line, &col);
	struct sl_expr_origin o = {.file = b->cf->file, .line = line, .col = col, .what = what};
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_expr *e = sl_expr_compile(json_string_value(v), &o, &err);
	if (!e) {
		sl_diags_add(b->cf->diags, b->cf->file, err.line > 0 ? err.line : line, err.line > 0 ? err.col : col, "%s", err.msg);
		b->cf->nerrors++;
	}
	return e;
}

/* A contract id: the registry's schema, or an error with did-you-mean. */
static struct sl_schema *contract_at(struct wfb *b, const json_t *v, const char *ptr)
{
	if (!json_is_string(v))
		return NULL;
	const char *id = json_string_value(v);
	struct sl_contracts *reg = b->env->p ? b->env->p->contracts : NULL;
	struct sl_schema *s = reg ? sl_contracts_get(reg, id) : NULL;
	if (s)
		return s;
	const char *best = reg ? sl_did_you_mean(id, sl_contracts_ids(reg)) : NULL;
	if (best)
		conf_err(b->cf, ptr, "unknown contract '%s' (did you mean '%s'?)", id, best);
	else if (!strchr(id, '@'))
		conf_err(b->cf, ptr, "unknown contract '%s' (a contract id is NAME@VERSION, e.g. ticket@1)", id);
	else
		conf_err(b->cf, ptr, "unknown contract '%s' (contracts/*.json declare ids with \"$id\")", id);
	return NULL;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '-' || c == '_'));
		if (!ok)
			return false;
	}
	return true;
}

static bool id_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* Topics travel in events and URLs: a plain alphabet, no spaces. */
static bool topic_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 256)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  strchr("._-:/", c);
		if (!ok)
			return false;
	}
	return true;
}

/* ---- call targets ---------------------------------------------------------------------------- */

static bool connector_broken(const struct wfb *b, const char *name)
{
	for (const char *const *n = b->env->broken_connectors; n && *n; n++)
		if (strcmp(*n, name) == 0)
			return true;
	return false;
}

static const char *closest_connector(const struct sl_project *p, const char *name)
{
	if (!p || !p->nconnectors)
		return NULL;
	const char **names = sl_xcalloc(p->nconnectors + 1, sizeof *names);
	for (size_t i = 0; i < p->nconnectors; i++)
		names[i] = p->connectors[i]->name;
	const char *best = sl_did_you_mean(name, names);
	free(names);
	return best;
}

static const char *closest_action(const struct sl_connector *c, const char *name)
{
	const char **names = sl_xcalloc(c->nactions + 1, sizeof *names);
	for (size_t i = 0; i < c->nactions; i++)
		names[i] = c->actions[i].name;
	const char *best = sl_did_you_mean(name, names);
	free(names);
	return best;
}

/* Resolves "CONNECTOR.ACTION" (the first dot separates: action names hold
 * dots). False after reporting, or when the connector failed to load
 * (reported in its own file already). */
static bool resolve_call(struct wfb *b, const char *target, const char *ptr, struct sl_connector **conn,
			 const struct sl_action **action)
{
	*conn = NULL;
	*action = NULL;
	const char *dot = strchr(target, '.');
	if (!dot || dot == target || !dot[1]) {
		conf_err(b->cf, ptr, "'%s' is not CONNECTOR.ACTION (e.g. helpdesk.tickets.update)", target);
		return false;
	}
	char cname[NAME_MAX_LEN + 1];
	snprintf(cname, sizeof cname, "%.*s", (int)SL_MIN((size_t)(dot - target), (size_t)NAME_MAX_LEN), target);
	const char *aname = dot + 1;
	struct sl_connector *c = b->env->p ? sl_project_connector(b->env->p, cname) : NULL;
	if (!c) {
		if (connector_broken(b, cname))
			return false;
		const char *best = closest_connector(b->env->p, cname);
		if (best)
			conf_err(b->cf, ptr, "unknown connector '%s' in '%s' (did you mean '%s'?)", cname, target, best);
		else
			conf_err(b->cf, ptr, "unknown connector '%s' in '%s' (connectors/*.yaml declare them)", cname,
				 target);
		return false;
	}
	const struct sl_action *a = sl_connector_action(c, aname);
	if (!a) {
		const char *best = closest_action(c, aname);
		if (best)
			conf_err(b->cf, ptr, "connector '%s' has no action '%s' (did you mean '%s'?)", cname, aname, best);
		else
			conf_err(b->cf, ptr, "connector '%s' has no action '%s'", cname, aname);
		return false;
	}
	*conn = c;
	*action = a;
	return true;
}

/* ---- trigger ------------------------------------------------------------------------------------- */

static void parse_webhook(struct wfb *b, const json_t *wh)
{
	struct sl_trigger *t = &b->w->trigger;
	const char *ptr = "/trigger/webhook";
	t->kind = SL_TRIGGER_WEBHOOK;
	if (!json_is_object(wh))
		return; /* reported with the trigger's keys */
	conf_check_keys(b->cf, wh, ptr, "webhook", sl_webhook_keys);
	const char *path = conf_str(wh, "path", NULL);
	if (path) {
		bool ok = path[0] == '/' && strlen(path) < 512 && !strpbrk(path, " \t?#");
		if (!ok)
			conf_err(b->cf, "/trigger/webhook/path",
				 "webhook path '%s' must start with '/' and hold no spaces, '?' or '#'", path);
		t->path = sl_strdup(path);
	}
	const char *secret = conf_str(wh, "hmac_secret", NULL);
	if (secret && !sl_secret_is_ref(secret))
		/* Not echoed: this might be the secret itself. */
		conf_err(b->cf, "/trigger/webhook/hmac_secret",
			 "hmac_secret must be a secret reference (env:NAME or file:PATH), never the secret itself");
	else if (secret)
		t->hmac_secret_ref = sl_strdup(secret);
	const json_t *c = json_object_get(wh, "contract");
	if (c)
		t->contract = contract_at(b, c, "/trigger/webhook/contract");
}

static void parse_event(struct wfb *b, const json_t *ev)
{
	struct sl_trigger *t = &b->w->trigger;
	t->kind = SL_TRIGGER_EVENT;
	const char *topic = NULL;
	const char *ptr = "/trigger/event";
	if (json_is_string(ev)) {
		topic = json_string_value(ev);
	} else if (json_is_object(ev)) {
		conf_check_keys(b->cf, ev, ptr, "event", sl_event_keys);
		topic = conf_str(ev, "type", NULL);
		ptr = "/trigger/event/type";
		const json_t *c = json_object_get(ev, "contract");
		if (c)
			t->contract = contract_at(b, c, "/trigger/event/contract");
	} else {
		conf_err(b->cf, ptr, "event must be a topic or {type, contract}, not %s", conf_kind(ev));
		return;
	}
	if (!topic)
		return;
	if (!topic_ok(topic))
		conf_err(b->cf, ptr, "event topic '%s' may hold only letters, digits and . _ - : /", topic);
	t->event = sl_strdup(topic);
}

static const char *const catch_up_names[] = {"one", "none", "all", NULL};

static void parse_schedule(struct wfb *b, const json_t *tr, const json_t *sched)
{
	struct sl_trigger *t = &b->w->trigger;
	t->kind = SL_TRIGGER_SCHEDULE;
	if (!json_is_string(sched))
		return; /* reported with the trigger's keys */
	char why[200];
	t->schedule = sl_strdup(json_string_value(sched));
	t->cron = sl_cron_parse(t->schedule, why, sizeof why);
	if (!t->cron) {
		conf_err(b->cf, "/trigger/schedule", "schedule: %s", why);
	} else if (sl_cron_next(t->cron, NULL, 0) < 0) {
		conf_err(b->cf, "/trigger/schedule", "schedule '%s' never fires (no such day)", t->schedule);
	}
	const char *zone = conf_str(tr, "timezone", NULL);
	if (zone) {
		t->timezone = sl_strdup(zone);
		if (!(t->tz = sl_tz_load(zone, why, sizeof why)))
			conf_err(b->cf, "/trigger/timezone", "timezone: %s", why);
	}
	const char *cu = conf_str(tr, "catch_up", NULL);
	if (!cu)
		return;
	for (int i = 0; catch_up_names[i]; i++)
		if (strcmp(cu, catch_up_names[i]) == 0) {
			t->catch_up = (enum sl_catch_up)i;
			return;
		}
	conf_err(b->cf, "/trigger/catch_up", "catch_up must be none, one or all, not '%s'", cu);
}

/* One of the sync's expressions: the given one, or the default. */
static struct sl_expr *sync_jq(struct wfb *b, const json_t *sync, const char *key, const char *def)
{
	const json_t *v = sync ? json_object_get(sync, key) : NULL;
	if (v) {
		char p[CONF_PTR_MAX], what[64];
		conf_ptr(p, "/trigger/sync", key);
		snprintf(what, sizeof what, "sync %s", key);
		return jq_at(b, v, p, what);
	}
	struct sl_expr_origin o = {.file = b->cf->file, .line = b->w->trigger.loc.line, .col = b->w->trigger.loc.col,
				   .what = key};
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_expr *e = sl_expr_compile(def, &o, &err);
	SL_ASSERT(e); /* the defaults compile */
	return e;
}

static void parse_poll(struct wfb *b, const json_t *tr, const json_t *target)
{
	struct sl_trigger *t = &b->w->trigger;
	struct sl_sync *sy = &t->sync;
	t->kind = SL_TRIGGER_POLL;
	if (!json_is_string(target))
		return; /* reported with the trigger's keys */
	t->poll = sl_strdup(json_string_value(target));
	if (resolve_call(b, t->poll, "/trigger/poll", &sy->connector, &sy->action) &&
	    sy->action->effect != SL_EFFECT_READ)
		conf_err(b->cf, "/trigger/poll", "poll '%s' must be an action with effect read, not %s", t->poll,
			 sl_effect_name(sy->action->effect));
	sy->every_ms = conf_duration(json_object_get(tr, "every"), 60000);
	if (sy->every_ms < 1000)
		conf_err(b->cf, "/trigger/every", "every must be at least 1s");
	const json_t *sync = json_object_get(tr, "sync");
	if (sync && !json_is_object(sync))
		sync = NULL; /* reported with the trigger's keys */
	if (sync)
		conf_check_keys(b->cf, sync, "/trigger/sync", "sync", sl_sync_keys);
	const char *pg = sync ? conf_str(sync, "pagination", NULL) : NULL;
	if (pg && strcmp(pg, "cursor") == 0)
		sy->pagination = SL_PAGINATION_CURSOR;
	else if (pg && strcmp(pg, "page") != 0)
		conf_err(b->cf, "/trigger/sync/pagination", "pagination must be page or cursor, not '%s'", pg);
	const json_t *pp = sync ? json_object_get(sync, "per_page") : NULL;
	sy->per_page = pp ? (int)json_integer_value(pp) : 100;
	if (sy->per_page < 1 || sy->per_page > 10000)
		conf_err(b->cf, "/trigger/sync/per_page", "per_page must be from 1 to 10000");
	const char *od = sync ? conf_str(sync, "on_delete", NULL) : NULL;
	if (od && strcmp(od, "skip") == 0)
		sy->skip_deletes = true;
	else if (od && strcmp(od, "run") != 0)
		conf_err(b->cf, "/trigger/sync/on_delete", "on_delete must be run or skip, not '%s'", od);
	sy->items = sync_jq(b, sync, "items", ".data");
	sy->next = sync_jq(b, sync, "next", ".next_cursor");
	sy->id = sync_jq(b, sync, "id", ".id");
	sy->version = sync_jq(b, sync, "version", ".version // .updated_at");
	sy->deleted = sync_jq(b, sync, "deleted", ".deleted == true");
	sy->changed_at = sync_jq(b, sync, "changed_at", ".updated_at");
}

/* every and sync belong to a poll. */
static void poll_keys_only(struct wfb *b, const json_t *tr)
{
	static const char *const keys[] = {"every", "sync"};
	for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
		if (!json_object_get(tr, keys[i]))
			continue;
		char p[CONF_PTR_MAX];
		conf_ptr(p, "/trigger", keys[i]);
		conf_err_key(b->cf, p, "'%s' belongs to a poll trigger", keys[i]);
	}
}

/* timezone and catch_up belong to a schedule. */
static void schedule_keys_only(struct wfb *b, const json_t *tr)
{
	static const char *const keys[] = {"timezone", "catch_up"};
	for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
		if (!json_object_get(tr, keys[i]))
			continue;
		char p[CONF_PTR_MAX];
		conf_ptr(p, "/trigger", keys[i]);
		conf_err_key(b->cf, p, "'%s' belongs to a schedule trigger", keys[i]);
	}
}

/* A connector named in a trigger or an emit that must be a stream type. */
static struct sl_connector *resolve_stream(struct wfb *b, const char *name, const char *ptr)
{
	struct sl_connector *c = b->env->p ? sl_project_connector(b->env->p, name) : NULL;
	if (!c) {
		if (connector_broken(b, name))
			return NULL;
		const char *best = closest_connector(b->env->p, name);
		if (best)
			conf_err(b->cf, ptr, "unknown connector '%s' (did you mean '%s'?)", name, best);
		else
			conf_err(b->cf, ptr, "unknown connector '%s' (connectors/*.yaml declare them)", name);
		return NULL;
	}
	if (!sl_stream_is(c)) {
		conf_err(b->cf, ptr, "connector '%s' is of type %s, not a stream (redis_stream, nats, kafka)", name,
			 c->type->name);
		return NULL;
	}
	return c;
}

/* trigger: {stream: CONNECTOR} or {stream: {connector, group, contract}} */
static void parse_stream_trigger(struct wfb *b, const json_t *v)
{
	struct sl_trigger *t = &b->w->trigger;
	t->kind = SL_TRIGGER_STREAM;
	t->consumers = 4;
	const char *name = NULL;
	const char *ptr = "/trigger/stream";
	if (json_is_string(v)) {
		name = json_string_value(v);
	} else if (json_is_object(v)) {
		conf_check_keys(b->cf, v, ptr, "stream", sl_stream_trigger_keys);
		name = conf_str(v, "connector", NULL);
		ptr = "/trigger/stream/connector";
		const char *group = conf_str(v, "group", NULL);
		if (group && !*group)
			conf_err(b->cf, "/trigger/stream/group", "group must not be empty");
		else if (group)
			t->group = sl_strdup(group);
		const json_t *c = json_object_get(v, "contract");
		if (c)
			t->contract = contract_at(b, c, "/trigger/stream/contract");
		const json_t *n = json_object_get(v, "consumers");
		if (json_is_integer(n) && (json_integer_value(n) < 1 || json_integer_value(n) > 64))
			conf_err(b->cf, "/trigger/stream/consumers", "consumers must be 1..64");
		else if (json_is_integer(n))
			t->consumers = (int)json_integer_value(n);
	} else {
		conf_err(b->cf, ptr, "stream must be a connector name or {connector, group, contract}, not %s",
			 conf_kind(v));
		return;
	}
	if (name)
		t->stream = resolve_stream(b, name, ptr);
}

static void parse_trigger(struct wfb *b, const json_t *tr)
{
	struct sl_trigger *t = &b->w->trigger;
	int line, col;
	conf_pos(b->cf, "/trigger", &line, &col);
	t->loc = (struct sl_loc){.file = b->w->file, .line = line, .col = col};
	if (!json_is_object(tr)) /* reported with the workflow's keys */
		return;
	conf_check_keys(b->cf, tr, "/trigger", "trigger", sl_trigger_keys);
	const char *first = NULL;
	bool any = false;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)tr, key, v) {
		bool later = false;
		bool known = strcmp(key, "webhook") == 0 || strcmp(key, "event") == 0 || strcmp(key, "schedule") == 0 ||
			     strcmp(key, "poll") == 0 || strcmp(key, "stream") == 0;
		if (!known)
			continue; /* contract, below; others reported as unknown */
		any = true;
		char p[CONF_PTR_MAX];
		conf_ptr(p, "/trigger", key);
		if (later) {
			conf_err_key(b->cf, p, "trigger '%s' is not available yet", key);
		} else if (first) {
			conf_err_key(b->cf, p, "a trigger has one kind: '%s' and '%s' are both given", first, key);
		} else {
			first = key;
			if (strcmp(key, "webhook") == 0)
				parse_webhook(b, v);
			else if (strcmp(key, "schedule") == 0)
				parse_schedule(b, tr, v);
			else if (strcmp(key, "poll") == 0)
				parse_poll(b, tr, v);
			else if (strcmp(key, "stream") == 0)
				parse_stream_trigger(b, v);
			else
				parse_event(b, v);
		}
	}
	if (!any)
		conf_err(b->cf, "/trigger", "trigger needs webhook, event, schedule, poll or stream");
	if (t->kind != SL_TRIGGER_SCHEDULE)
		schedule_keys_only(b, tr);
	if (t->kind != SL_TRIGGER_POLL)
		poll_keys_only(b, tr);
	const json_t *c = json_object_get(tr, "contract");
	struct sl_schema *s = c ? contract_at(b, c, "/trigger/contract") : NULL;
	if (s && t->contract && t->contract != s)
		conf_err(b->cf, "/trigger/contract", "trigger contract '%s' differs from the %s's contract '%s': give one",
			 sl_schema_id(s), first, sl_schema_id(t->contract));
	else if (s)
		t->contract = s;
}

/* ---- steps ----------------------------------------------------------------------------------------- */

/* The one kind key of a step; reports none, several, and not-yet kinds. */
static const char *step_kind(struct wfb *b, const json_t *sj, const char *ptr, const char *label)
{
	const char *kind = NULL;
	bool any = false;
	for (const char *const *k = kind_keys; *k; k++) {
		if (!json_object_get(sj, *k))
			continue;
		char p[CONF_PTR_MAX];
		conf_ptr(p, ptr, *k);
		if (kind)
			conf_err_key(b->cf, p, "step '%s' has two kinds, '%s' and '%s': give exactly one", label, kind, *k);
		else
			kind = *k;
		any = true;
	}
	if (!any)
		conf_err(b->cf, ptr, "step '%s' needs a kind: one of map, call, wait, emit, ai, approval", label);
	return kind;
}

static void parse_retry(struct wfb *b, struct sl_step *st, const json_t *r, const char *ptr)
{
	/* a step that talks to a connector retries by default; others would fail the same way again */
	st->retry.max_attempts = st->kind == SL_STEP_CALL || st->sink ? 3 : 1;
	st->retry.base_ms = 200;
	st->retry.max_ms = 30000;
	if (!json_is_object(r))
		return; /* absent, or of the wrong type: reported with the step's keys */
	conf_check_keys(b->cf, r, ptr, "retry", sl_retry_keys);
	char p[CONF_PTR_MAX];
	const json_t *ma = json_object_get(r, "max_attempts");
	if (json_is_integer(ma)) {
		json_int_t n = json_integer_value(ma);
		if (n < 1 || n > 1000) {
			conf_ptr(p, ptr, "max_attempts");
			conf_err(b->cf, p, "max_attempts must be between 1 and 1000 (the total number of attempts)");
		} else {
			st->retry.max_attempts = (int)n;
		}
	}
	st->retry.base_ms = conf_duration(json_object_get(r, "base_ms"), st->retry.base_ms);
	st->retry.max_ms = conf_duration(json_object_get(r, "max_ms"), st->retry.max_ms);
	if (st->retry.max_ms < st->retry.base_ms) {
		conf_ptr(p, ptr, "max_ms");
		conf_err(b->cf, p, "max_ms (%lld) is less than base_ms (%lld)", (long long)st->retry.max_ms,
			 (long long)st->retry.base_ms);
	}
}

static void parse_on_error(struct wfb *b, struct sl_step *st, const json_t *v, const char *ptr)
{
	st->on_error = SL_ON_ERROR_DEAD;
	if (!json_is_string(v))
		return;
	const char *s = json_string_value(v);
	if (strcmp(s, "retry") == 0 || strcmp(s, "dead") == 0) {
		st->on_error = SL_ON_ERROR_DEAD;
	} else if (strcmp(s, "continue") == 0) {
		st->on_error = SL_ON_ERROR_CONTINUE;
	} else if (strcmp(s, "compensate") == 0) {
		st->on_error = SL_ON_ERROR_COMPENSATE;
	} else {
		const char *best = sl_did_you_mean(s, on_error_names);
		conf_err(b->cf, ptr, "unknown on_error '%s'%s%s%s; use retry, dead, continue or compensate", s,
			 best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "");
	}
}

static void parse_wait(struct wfb *b, struct sl_step *st, size_t i, const json_t *v, const char *ptr,
		       const char *label)
{
	if (json_is_string(v) || json_is_integer(v)) {
		if (!conf_type_ok(SL_CONF_DURATION, v))
			conf_err(b->cf, ptr, "wait must be a duration like \"30s\" or \"4h\", {for: duration} or {until: jq}");
		st->wait_ms = conf_duration(v, 0);
		return;
	}
	if (!json_is_object(v)) {
		conf_err(b->cf, ptr, "wait must be a duration like \"30s\", {for: duration} or {until: jq}, not %s",
			 conf_kind(v));
		return;
	}
	conf_check_keys(b->cf, v, ptr, "wait", sl_wait_keys);
	const json_t *until = json_object_get(v, "until"), *dur = json_object_get(v, "for");
	if (!until == !dur) {
		conf_err(b->cf, ptr, "wait takes one of 'for' (a duration) or 'until' (jq giving a time)");
		return;
	}
	if (dur) {
		st->wait_ms = conf_duration(dur, 0);
		return;
	}
	char p[CONF_PTR_MAX], what[NAME_MAX_LEN + 32];
	conf_ptr(p, ptr, "until");
	snprintf(what, sizeof what, "step %s: wait until", label);
	st->wait_until = jq_at(b, until, p, what);
	add_ref(b, st->wait_until, i, false, p);
}

/* An emit's `sink`: an action that receives each event as a structured
 * CloudEvent. It sends, so it must declare effect write (the audit log and
 * shadow mode treat it as one). */
static void parse_emit_sink(struct wfb *b, struct sl_step *st, const json_t *v, const char *ptr)
{
	const char *sink = conf_str(v, "sink", NULL);
	if (!sink)
		return;
	char p[CONF_PTR_MAX];
	conf_ptr(p, ptr, "sink");
	st->sink = sl_strdup(sink);
	if (!resolve_call(b, sink, p, &st->sink_connector, &st->sink_action))
		return;
	if (st->sink_action->effect != SL_EFFECT_WRITE)
		conf_err(b->cf, p, "emit sink '%s' must be an action with effect write, not %s", sink,
			 sl_effect_name(st->sink_action->effect));
}

/* emit: {stream: CONNECTOR, type: TYPE}: true when the step emits to a
 * stream (reported problems included), so no topic is wanted. */
static bool parse_emit_stream(struct wfb *b, struct sl_step *st, const json_t *v, const char *ptr, bool has_topic)
{
	const char *name = conf_str(v, "stream", NULL);
	const char *type = conf_str(v, "type", NULL);
	char p[CONF_PTR_MAX];
	if (!name) {
		if (!has_topic && json_is_object(v) && !json_object_get(v, "stream") && !json_object_get(v, "topic"))
			conf_err(b->cf, ptr, "emit needs topic or stream");
		if (type) {
			conf_ptr(p, ptr, "type");
			conf_err(b->cf, p, "type applies to emit to a stream only");
		}
		return false;
	}
	conf_ptr(p, ptr, "stream");
	if (has_topic) {
		conf_err(b->cf, p, "emit goes to a topic or a stream, not both");
		return true;
	}
	st->emit_connector = resolve_stream(b, name, p);
	if (st->emit_connector)
		st->emit_action = sl_connector_action(st->emit_connector, "publish");
	if (type)
		st->emit_type = sl_strdup(type);
	return true;
}

static void parse_emit(struct wfb *b, struct sl_step *st, size_t i, const json_t *v, const char *ptr,
		       const char *label)
{
	const char *topic = NULL;
	const char *tptr = ptr;
	char p[CONF_PTR_MAX], pp[CONF_PTR_MAX];
	if (json_is_string(v)) {
		topic = json_string_value(v);
	} else if (json_is_object(v)) {
		conf_check_keys(b->cf, v, ptr, "emit", sl_emit_keys);
		topic = conf_str(v, "topic", NULL);
		conf_ptr(p, ptr, "topic");
		tptr = p;
		if (parse_emit_stream(b, st, v, ptr, topic != NULL))
			topic = NULL;
		const json_t *payload = json_object_get(v, "payload");
		if (payload) {
			char what[NAME_MAX_LEN + 32];
			snprintf(what, sizeof what, "step %s: emit payload", label);
			conf_ptr(pp, ptr, "payload");
			st->payload = jq_at(b, payload, pp, what);
			add_ref(b, st->payload, i, false, pp);
		}
		parse_emit_sink(b, st, v, ptr);
	} else {
		conf_err(b->cf, ptr, "emit must be a topic or {topic: NAME, payload: jq, sink: CONNECTOR.ACTION}, not %s",
			 conf_kind(v));
		return;
	}
	if (!topic)
		return;
	if (!topic_ok(topic))
		conf_err(b->cf, tptr, "emit topic '%s' may hold only letters, digits and . _ - : /", topic);
	st->topic = sl_strdup(topic);
}

static void parse_compensate(struct wfb *b, struct sl_step *st, size_t i, const json_t *v, const char *ptr,
			     const char *label)
{
	const char *target = NULL;
	const char *tptr = ptr;
	char p[CONF_PTR_MAX], wp[CONF_PTR_MAX];
	if (json_is_string(v)) {
		target = json_string_value(v);
	} else if (json_is_object(v)) {
		conf_check_keys(b->cf, v, ptr, "compensate", sl_compensate_keys);
		target = conf_str(v, "call", NULL);
		conf_ptr(p, ptr, "call");
		tptr = p;
		const json_t *with = json_object_get(v, "with");
		if (with) {
			char what[NAME_MAX_LEN + 32];
			snprintf(what, sizeof what, "step %s: compensate with", label);
			conf_ptr(wp, ptr, "with");
			st->comp_with = jq_at(b, with, wp, what);
			add_ref(b, st->comp_with, i, true, wp);
		}
	} else {
		conf_err(b->cf, ptr, "compensate must be CONNECTOR.ACTION or {call: CONNECTOR.ACTION, with: jq}, not %s",
			 conf_kind(v));
		return;
	}
	if (!target)
		return;
	st->compensate = sl_strdup(target);
	resolve_call(b, target, tptr, &st->comp_connector, &st->comp_action);
}

static const char *const signal_names[] = {"drift", "slo_burn", "budget", NULL};

const char *sl_signal_name(enum sl_signal sig)
{
	return (unsigned)sig < SL_SIGNAL__COUNT ? signal_names[sig] : "?";
}

/* `autonomy:` (or its former name `role:`): how far the step's answers may
 * go without a person (docs/reference/policy.md). */
static void parse_autonomy(struct wfb *b, struct sl_ai_step *a, const json_t *v, const char *ptr)
{
	const char *key = json_object_get(v, "autonomy") ? "autonomy" : "role";
	const char *level = conf_str(v, key, NULL);
	char p[CONF_PTR_MAX];
	conf_ptr(p, ptr, key);
	if (json_object_get(v, "autonomy") && json_object_get(v, "role"))
		conf_err_key(b->cf, p, "give autonomy or role (its former name), not both");
	a->autonomy = SL_AUTONOMY_DEFAULT;
	if (!level)
		return;
	int lv = sl_autonomy_parse(level);
	if (lv < 0)
		conf_err(b->cf, p, "unknown %s '%s' (assistant, recommender, drafting, supervised, autonomous)", key,
			 level);
	else
		a->autonomy = (enum sl_autonomy)lv;
	free(a->role);
	a->role = sl_strdup(level);
}

static void parse_demote_on(struct wfb *b, struct sl_ai_step *a, const json_t *v, const char *ptr)
{
	size_t i;
	const json_t *e;
	json_array_foreach(v, i, e) {
		char p[CONF_PTR_MAX], q[CONF_PTR_MAX];
		conf_ptr(q, ptr, "demote_on");
		conf_ptr_index(p, q, i);
		int k = -1;
		for (int j = 0; json_is_string(e) && signal_names[j]; j++)
			if (strcmp(signal_names[j], json_string_value(e)) == 0)
				k = j;
		if (k < 0)
			conf_err(b->cf, p, "demote_on: '%s' is not a signal (drift, slo_burn, budget)",
				 json_is_string(e) ? json_string_value(e) : conf_kind(e));
		else
			a->demote_on |= 1u << k;
	}
}

/* A list of CONNECTOR.ACTION globs (NULL-terminated, owned); NULL when
 * absent. A glob that names no action of the project is an error: an
 * allowlist entry that can never allow anything is a typo. */
static char **parse_allow_actions(struct wfb *b, const json_t *v, const char *ptr)
{
	if (!json_is_array(v))
		return NULL;
	char **out = sl_xcalloc(json_array_size(v) + 1, sizeof *out);
	size_t i, n = 0;
	const json_t *e;
	json_array_foreach(v, i, e) {
		char p[CONF_PTR_MAX];
		conf_ptr_index(p, ptr, i);
		const char *g = json_string_value(e);
		if (!g || !*g) {
			conf_err(b->cf, p, "allow_actions entries are CONNECTOR.ACTION globs");
			continue;
		}
		out[n++] = sl_strdup(g);
		bool hit = !b->env->p || strchr(g, '*') || strchr(g, '?');
		const char *dot = strchr(g, '.');
		if (!hit && dot) {
			char cname[256];
			snprintf(cname, sizeof cname, "%.*s", (int)(dot - g), g);
			const struct sl_connector *c = sl_project_connector(b->env->p, cname);
			for (size_t j = 0; c && j < c->nactions; j++)
				hit = hit || strcmp(c->actions[j].name, dot + 1) == 0;
			/* a connector that failed to load was reported already */
			for (const char *const *br = b->env->broken_connectors; !hit && br && *br; br++)
				hit = strcmp(*br, cname) == 0;
		}
		if (!hit)
			conf_err(b->cf, p, "allow_actions: no connector action '%s'", g);
	}
	return out;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void ai_labels(struct wfb *b, struct sl_ai_step *a, const json_t *labels, const char *ptr)
{
	size_t n = json_array_size(labels);
	if (n < 2) {
		conf_err(b->cf, ptr, "%s wants labels: at least two allowed answers", sl_ai_task_name(a->task));
		return;
	}
	a->labels = sl_xcalloc(n + 1, sizeof *a->labels);
	size_t i;
	const json_t *v;
	json_array_foreach(labels, i, v)
	{
		char lp[CONF_PTR_MAX];
		conf_ptr_index(lp, ptr, i);
		const char *l = json_string_value(v);
		if (!l || !*l) {
			conf_err(b->cf, lp, "a label is a non-empty string");
			continue;
		}
		for (size_t j = 0; j < a->nlabels; j++)
			if (strcmp(a->labels[j], l) == 0)
				conf_err(b->cf, lp, "label '%s' is listed twice", l);
		a->labels[a->nlabels++] = sl_strdup(l);
	}
}

/* A template's {{names}} must be known when no vars: can add any. */
static void ai_check_template(struct wfb *b, const struct sl_ai_step *a, const char *ptr)
{
	if (!a->prompt || a->vars)
		return;
	const char *t = a->prompt->text;
	while ((t = strstr(t, "{{")) != NULL) {
		t += 2;
		while (*t == ' ')
			t++;
		size_t n = strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
		if (n && !(n == 5 && strncmp(t, "input", 5) == 0) && !(n == 6 && strncmp(t, "labels", 6) == 0)) {
			conf_err(b->cf, ptr, "prompt '%s' uses {{%.*s}}, which only vars: can give (known: input, labels)",
				 a->prompt_name, (int)n, t);
			return;
		}
		t += n;
	}
}

static void parse_ai(struct wfb *b, struct sl_step *st, size_t i, const json_t *v, const char *ptr,
		     const char *label)
{
	struct sl_ai_step *a = &st->ai;
	a->role = sl_strdup("recommender");
	a->autonomy = SL_AUTONOMY_DEFAULT;
	if (!json_is_object(v))
		return; /* the key check said what it wants */
	conf_check_keys(b->cf, v, ptr, "ai", sl_ai_step_keys);
	char p[CONF_PTR_MAX];
	const char *task = conf_str(v, "task", NULL);
	conf_ptr(p, ptr, "task");
	int t = sl_ai_task_parse(task);
	if (task && t < 0)
		conf_err(b->cf, p, "unknown ai task '%s' (classify, extract, summarize, draft, route, tool)", task);
	a->task = t < 0 ? SL_AI_CLASSIFY : (enum sl_ai_task)t;
	const char *route = conf_str(v, "route", NULL);
	conf_ptr(p, ptr, "route");
	if (route) {
		a->route = sl_strdup(route);
		const struct sl_ai *ai = b->env->p ? b->env->p->ai : NULL;
		/* a declared route that failed: models.yaml's errors say why */
		bool broken = b->env->p && json_object_get(b->env->p->broken_routes, route);
		if (!broken && b->env->p && !sl_ai_has_route(ai, route)) {
			const char *best = sl_did_you_mean(route, sl_ai_routes(ai));
			if (best)
				conf_err(b->cf, p, "no route '%s' in models.yaml (did you mean '%s'?)", route, best);
			else
				conf_err(b->cf, p, "no route '%s' in models.yaml", route);
		} else if (!broken && b->env->p && t >= 0 && !sl_ai_route_can(ai, route, a->task)) {
			conf_err(b->cf, p, "route '%s' has no model that can %s (%s)", route, task,
				 a->task == SL_AI_TOOL ? "tool steps need a provider of type openai"
						       : "local models classify and extract");
		}
	}
	char what[NAME_MAX_LEN + 32];
	snprintf(what, sizeof what, "step %s: ai input", label);
	conf_ptr(p, ptr, "input");
	a->input = jq_at(b, json_object_get(v, "input"), p, what);
	add_ref(b, a->input, i, false, p);
	if (json_object_get(v, "vars")) {
		snprintf(what, sizeof what, "step %s: ai vars", label);
		conf_ptr(p, ptr, "vars");
		a->vars = jq_at(b, json_object_get(v, "vars"), p, what);
		add_ref(b, a->vars, i, false, p);
	}
	const json_t *labels = json_object_get(v, "labels");
	conf_ptr(p, ptr, "labels");
	if (a->task == SL_AI_CLASSIFY || a->task == SL_AI_ROUTE)
		ai_labels(b, a, labels, labels ? p : ptr);
	else if (labels)
		conf_err_key(b->cf, p, "labels are for classify and route, not %s", task);
	const json_t *c = json_object_get(v, "contract");
	conf_ptr(p, ptr, "contract");
	if (a->task == SL_AI_EXTRACT && !c)
		conf_err(b->cf, ptr, "extract wants contract: the contract id its answer must meet");
	else if (c && a->task != SL_AI_EXTRACT)
		conf_err_key(b->cf, p, "contract is for extract, not %s (a step's own contract: goes beside ai:)", task);
	else if (c)
		a->contract = contract_at(b, c, p);
	const json_t *mc = json_object_get(v, "min_confidence");
	conf_ptr(p, ptr, "min_confidence");
	if (mc && !(json_is_number(mc) && json_number_value(mc) >= 0 && json_number_value(mc) <= 1))
		conf_err(b->cf, p, "min_confidence wants a number from 0 to 1");
	a->min_confidence = json_is_number(mc) ? json_number_value(mc) : 0;
	const json_t *mt = json_object_get(v, "max_tokens");
	conf_ptr(p, ptr, "max_tokens");
	if (mt && !(json_is_integer(mt) && json_integer_value(mt) >= 1 && json_integer_value(mt) <= 100000))
		conf_err(b->cf, p, "max_tokens wants a number from 1 to 100000");
	a->max_tokens = json_is_integer(mt) ? (int)json_integer_value(mt) : 0;
	parse_autonomy(b, a, v, ptr);
	parse_demote_on(b, a, json_object_get(v, "demote_on"), ptr);
	conf_ptr(p, ptr, "allow_actions");
	st->allow_actions = parse_allow_actions(b, json_object_get(v, "allow_actions"), p);
	const json_t *turns = json_object_get(v, "max_turns");
	conf_ptr(p, ptr, "max_turns");
	if (turns && !(json_is_integer(turns) && json_integer_value(turns) >= 1 && json_integer_value(turns) <= 20))
		conf_err(b->cf, p, "max_turns wants a number from 1 to 20");
	else if (turns && a->task != SL_AI_TOOL)
		conf_err_key(b->cf, p, "max_turns is for task tool, not %s", task ? task : "this task");
	a->max_turns = json_is_integer(turns) ? (int)json_integer_value(turns) : 0;
	if (a->task == SL_AI_TOOL && !st->allow_actions && !b->w->allow_actions)
		conf_err(b->cf, ptr, "a tool step wants allow_actions: the connector actions it may call (here or on the workflow)");
	const char *prompt = conf_str(v, "prompt", NULL);
	conf_ptr(p, ptr, "prompt");
	if (prompt) {
		a->prompt_name = sl_strdup(prompt);
		a->prompt = b->env->p ? sl_project_prompt(b->env->p, prompt) : NULL;
		if (b->env->p && !a->prompt)
			conf_err(b->cf, p, "no prompt '%s' (prompts/%s.md)", prompt, prompt);
		ai_check_template(b, a, p);
	}
}

/* A jq key of the step: compiled, and queued for the reference check. */
static struct sl_expr *step_jq(struct wfb *b, const json_t *sj, size_t i, const char *ptr, const char *key,
			       const char *label)
{
	const json_t *v = json_object_get(sj, key);
	if (!v)
		return NULL;
	char p[CONF_PTR_MAX], what[NAME_MAX_LEN + 32];
	conf_ptr(p, ptr, key);
	snprintf(what, sizeof what, "step %s: %s", label, key);
	struct sl_expr *e = jq_at(b, v, p, what);
	add_ref(b, e, i, false, p);
	return e;
}

static void step_id(struct wfb *b, struct sl_step *st, const json_t *sj, const char *ptr, char *label,
		    size_t labelsz)
{
	const char *id = conf_str(sj, "id", NULL);
	snprintf(label, labelsz, "#%d", st->index + 1);
	st->id = sl_strdup(id ? id : "");
	if (!id)
		return;
	char p[CONF_PTR_MAX];
	conf_ptr(p, ptr, "id");
	if (!id_ok(id)) {
		conf_err(b->cf, p, "step id '%s' must be a name: letters, digits and '_', not starting with a digit",
			 id);
		return;
	}
	snprintf(label, labelsz, "%s", id);
	if (strcmp(id, "input") == 0) {
		conf_err(b->cf, p, "step id 'input' is reserved: the run's input is .input");
		return;
	}
	for (int j = 0; j < st->index; j++) {
		if (strcmp(b->w->steps[j].id, id) == 0) {
			conf_err(b->cf, p, "duplicate step id '%s' (first at line %d)", id, b->w->steps[j].loc.line);
			return;
		}
	}
}

/* A list of who may decide: principals ("alice") and roles ("role:NAME"). */
static json_t *reviewer_list(struct wfb *b, const json_t *v, const char *ptr)
{
	if (!json_is_array(v))
		return NULL; /* absent, or of the wrong type: reported with the keys */
	size_t i;
	const json_t *r;
	json_array_foreach(v, i, r) {
		const char *t = json_string_value(r);
		if (!t || !*t || (strncmp(t, "role:", 5) == 0 && !t[5])) {
			char p[CONF_PTR_MAX];
			conf_ptr_index(p, ptr, i);
			conf_err(b->cf, p, "a reviewer is a principal (alice) or a role (role:operator), not %s",
				 t ? "an empty name" : conf_kind(r));
			return NULL;
		}
	}
	if (json_array_size(v) == 0) {
		conf_err(b->cf, ptr, "reviewers must name at least one principal or role");
		return NULL;
	}
	return json_copy((json_t *)v);
}

static void parse_approval(struct wfb *b, struct sl_step *st, size_t i, const json_t *v, const char *ptr,
			   const char *label)
{
	struct sl_approval_step *a = &st->approval;
	if (!json_is_object(v))
		return; /* reported with the step's keys */
	conf_check_keys(b->cf, v, ptr, "approval", sl_approval_keys);
	char p[CONF_PTR_MAX];
	conf_ptr(p, ptr, "reviewers");
	a->reviewers = reviewer_list(b, json_object_get(v, "reviewers"), p);
	conf_ptr(p, ptr, "escalate_to");
	a->escalate_to = reviewer_list(b, json_object_get(v, "escalate_to"), p);
	const json_t *ev = json_object_get(v, "evidence");
	if (ev) {
		char what[NAME_MAX_LEN + 32];
		snprintf(what, sizeof what, "step %s: approval evidence", label);
		conf_ptr(p, ptr, "evidence");
		a->evidence = jq_at(b, ev, p, what);
		add_ref(b, a->evidence, i, false, p);
	}
	a->timeout_ms = conf_duration(json_object_get(v, "timeout"), 0);
	const char *ot = conf_str(v, "on_timeout", NULL);
	conf_ptr(p, ptr, "on_timeout");
	static const char *const modes[] = {"escalate", "reject", "approve", NULL};
	bool known = false;
	for (const char *const *m = modes; ot && *m; m++)
		known |= strcmp(*m, ot) == 0;
	if (ot && !known) {
		const char *best = sl_did_you_mean(ot, modes);
		conf_err(b->cf, p, "unknown on_timeout '%s'%s%s%s; use escalate, reject or approve", ot,
			 best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "");
	} else if (ot && !a->timeout_ms) {
		conf_err(b->cf, p, "on_timeout needs a timeout: (how long to wait for a decision)");
	} else if (ot && strcmp(ot, "escalate") == 0 && !a->escalate_to) {
		conf_err(b->cf, p, "on_timeout: escalate needs escalate_to: (the group that decides next)");
	}
	if (a->timeout_ms)
		a->on_timeout = sl_strdup(ot ? ot : "reject");
}

/* Keys that belong to call steps only. */
static void call_only(struct wfb *b, const json_t *sj, const char *ptr, const char *kind)
{
	static const char *const keys[] = {"with", "idempotency_key", "compensate", NULL};
	for (const char *const *k = keys; *k; k++) {
		if (!json_object_get(sj, *k))
			continue;
		char p[CONF_PTR_MAX];
		conf_ptr(p, ptr, *k);
		conf_err_key(b->cf, p, "'%s' is only for call steps (this is a %s step)", *k, kind);
	}
}

static void parse_step(struct wfb *b, size_t i, const json_t *sj)
{
	struct sl_step *st = &b->w->steps[i];
	char ptr[CONF_PTR_MAX], p[CONF_PTR_MAX], label[NAME_MAX_LEN + 1];
	conf_ptr_index(ptr, "/steps", i);
	st->index = (int)i;
	conf_pos(b->cf, ptr, &st->loc.line, &st->loc.col);
	st->loc.file = b->w->file;
	if (!json_is_object(sj)) {
		st->id = sl_strdup("");
		conf_err(b->cf, ptr, "a step must be a mapping with id: and a kind, not %s", conf_kind(sj));
		return;
	}
	conf_check_keys(b->cf, sj, ptr, "step", sl_step_keys);
	step_id(b, st, sj, ptr, label, sizeof label);
	const char *kind = step_kind(b, sj, ptr, label);
	st->kind = !kind ? SL_STEP_MAP
		   : strcmp(kind, "call") == 0 ? SL_STEP_CALL
		   : strcmp(kind, "wait") == 0 ? SL_STEP_WAIT
		   : strcmp(kind, "emit") == 0 ? SL_STEP_EMIT
		   : strcmp(kind, "ai") == 0   ? SL_STEP_AI
		   : strcmp(kind, "approval") == 0 ? SL_STEP_APPROVAL
					       : SL_STEP_MAP;
	if (kind && st->kind != SL_STEP_CALL)
		call_only(b, sj, ptr, kind);

	st->when = step_jq(b, sj, i, ptr, "when", label);
	if (kind && st->kind == SL_STEP_MAP)
		st->map = step_jq(b, sj, i, ptr, "map", label);
	if (st->kind == SL_STEP_CALL) {
		const char *target = conf_str(sj, "call", NULL);
		conf_ptr(p, ptr, "call");
		if (target) {
			st->call = sl_strdup(target);
			resolve_call(b, target, p, &st->connector, &st->action);
		}
		st->with = step_jq(b, sj, i, ptr, "with", label);
		st->idempotency_key = step_jq(b, sj, i, ptr, "idempotency_key", label);
		const json_t *comp = json_object_get(sj, "compensate");
		conf_ptr(p, ptr, "compensate");
		if (comp)
			parse_compensate(b, st, i, comp, p, label);
	}
	if (st->kind == SL_STEP_WAIT) {
		conf_ptr(p, ptr, "wait");
		parse_wait(b, st, i, json_object_get(sj, "wait"), p, label);
	}
	if (st->kind == SL_STEP_EMIT) {
		conf_ptr(p, ptr, "emit");
		parse_emit(b, st, i, json_object_get(sj, "emit"), p, label);
	}
	if (st->kind == SL_STEP_AI) {
		conf_ptr(p, ptr, "ai");
		parse_ai(b, st, i, json_object_get(sj, "ai"), p, label);
	}
	if (st->kind == SL_STEP_APPROVAL) {
		conf_ptr(p, ptr, "approval");
		parse_approval(b, st, i, json_object_get(sj, "approval"), p, label);
	}
	conf_ptr(p, ptr, "retry");
	parse_retry(b, st, json_object_get(sj, "retry"), p);
	st->timeout_ms = conf_duration(json_object_get(sj, "timeout"), 0);
	conf_ptr(p, ptr, "on_error");
	parse_on_error(b, st, json_object_get(sj, "on_error"), p);
	const json_t *c = json_object_get(sj, "contract");
	conf_ptr(p, ptr, "contract");
	if (c)
		st->output_contract = contract_at(b, c, p);
}

/* ---- references between steps --------------------------------------------------------------------- */

struct ref_list {
	char names[REFS_MAX][NAME_MAX_LEN + 1];
	size_t n;
};

static void collect_ref(void *ud, const char *name, size_t off)
{
	struct ref_list *l = ud;
	(void)off;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->names[i], name) == 0)
			return;
	if (l->n < REFS_MAX)
		snprintf(l->names[l->n++], sizeof l->names[0], "%s", name);
}

static int step_index(const struct sl_workflow *w, const char *id)
{
	for (size_t i = 0; i < w->nsteps; i++)
		if (w->steps[i].id[0] && strcmp(w->steps[i].id, id) == 0)
			return (int)i;
	return -1;
}

static void check_ref(struct wfb *b, const struct pending_ref *r, const char *name)
{
	const struct sl_workflow *w = b->w;
	if (strcmp(name, "input") == 0)
		return;
	char who[NAME_MAX_LEN + 16];
	if (r->step == SIZE_MAX)
		snprintf(who, sizeof who, "output");
	else
		snprintf(who, sizeof who, "step '%s'", w->steps[r->step].id);
	int j = step_index(w, name);
	if (j >= 0) {
		size_t last = r->step == SIZE_MAX ? w->nsteps : r->self_ok ? r->step + 1 : r->step;
		if ((size_t)j < last)
			return;
		if ((size_t)j == r->step)
			conf_err(b->cf, r->ptr, "%s refers to its own output '.%s', which does not exist yet", who, name);
		else
			conf_err(b->cf, r->ptr, "%s refers to step '%s', which runs after it", who, name);
		return;
	}
	const char **cands = sl_xcalloc(w->nsteps + 2, sizeof *cands);
	size_t n = 0;
	cands[n++] = "input";
	for (size_t i = 0; i < w->nsteps; i++)
		if (w->steps[i].id[0])
			cands[n++] = w->steps[i].id;
	const char *best = sl_did_you_mean(name, cands);
	if (best)
		conf_err(b->cf, r->ptr, "%s refers to '.%s', which is not a step (did you mean '%s'?)", who, name, best);
	else
		conf_err(b->cf, r->ptr, "%s refers to '.%s', which is not a step (the run context holds .input and "
					"the outputs of earlier steps)", who, name);
	free(cands);
}

static void check_refs(struct wfb *b)
{
	for (size_t i = 0; i < b->nrefs; i++) {
		struct pending_ref *r = &b->refs[i];
		struct ref_list l;
		l.n = 0;
		sl_expr_refs(sl_expr_source(r->e), collect_ref, &l);
		for (size_t k = 0; k < l.n; k++)
			check_ref(b, r, l.names[k]);
	}
}

/* ---- the workflow -------------------------------------------------------------------------------- */

static bool key_known(const struct sl_conf_key *keys, const char *name)
{
	for (const struct sl_conf_key *k = keys; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return true;
	return false;
}

static void parse_slo(struct wfb *b, const json_t *slo)
{
	if (!json_is_object(slo))
		return;
	conf_check_keys(b->cf, slo, "/slo", "slo", sl_slo_keys);
	struct sl_workflow *w = b->w;
	w->has_slo = true;
	w->slo.p95_ms = w->slo.max_error_rate = w->slo.max_review_rate = w->slo.max_cost_usd = -1;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)slo, key, v) {
		if (json_is_number(v) && json_number_value(v) >= 0) {
			double x = json_number_value(v);
			if (strcmp(key, "p95_ms") == 0)
				w->slo.p95_ms = x;
			else if (strcmp(key, "max_error_rate") == 0)
				w->slo.max_error_rate = x;
			else if (strcmp(key, "max_review_rate") == 0)
				w->slo.max_review_rate = x;
			else if (strcmp(key, "max_cost_usd") == 0)
				w->slo.max_cost_usd = x;
		}
		if (!key_known(sl_slo_keys, key) || (json_is_number(v) && json_number_value(v) >= 0))
			continue;
		char p[CONF_PTR_MAX];
		conf_ptr(p, "/slo", key);
		conf_err(b->cf, p, "'%s' must be a number >= 0, not %s", key, conf_kind(v));
	}
}

static void parse_head(struct wfb *b, const json_t *doc)
{
	struct sl_workflow *w = b->w;
	const char *name = conf_str(doc, "workflow", NULL);
	if (name && !name_ok(name))
		conf_err(b->cf, "/workflow",
			 "workflow name '%s' must be lowercase letters, digits, '-' and '_', starting with a letter or digit",
			 name);
	w->name = sl_strdup(name ? name : "");
	const json_t *ver = json_object_get(doc, "version");
	if (json_is_integer(ver)) {
		if (json_integer_value(ver) < 1 || json_integer_value(ver) > 1000000)
			conf_err(b->cf, "/version", "version must be an integer >= 1");
		else
			w->version = (int)json_integer_value(ver);
	}
	w->owner = sl_strdup(conf_str(doc, "owner", NULL));
	w->description = sl_strdup(conf_str(doc, "description", NULL));
}

static void parse_input_contract(struct wfb *b, const json_t *doc)
{
	const json_t *ic = json_object_get(doc, "input_contract");
	if (!ic)
		return;
	struct sl_schema *s = contract_at(b, ic, "/input_contract");
	struct sl_trigger *t = &b->w->trigger;
	if (s && t->contract && t->contract != s)
		conf_err(b->cf, "/input_contract", "input_contract '%s' differs from the trigger's contract '%s': give one",
			 sl_schema_id(s), sl_schema_id(t->contract));
	else if (s)
		t->contract = s;
}

static void parse_steps(struct wfb *b, const json_t *steps)
{
	if (!json_is_array(steps))
		return; /* missing or of the wrong type: reported */
	if (json_array_size(steps) == 0) {
		conf_err(b->cf, "/steps", "steps is empty: a workflow needs at least one step");
		return;
	}
	b->w->nsteps = json_array_size(steps);
	b->w->steps = sl_xcalloc(b->w->nsteps, sizeof *b->w->steps);
	for (size_t i = 0; i < b->w->nsteps; i++)
		parse_step(b, i, json_array_get(steps, i));
}

/* sha256 over name, version and source, NUL-separated, so that a run can
 * name the exact definition it started on. */
static char *digest_of(const struct sl_workflow *w)
{
	struct sl_buf buf;
	sl_buf_init(&buf, SL_BUF_MAX_FILE + 1024);
	sl_buf_printf(&buf, "%s%c%d%c", w->name, 0, w->version, 0);
	sl_buf_adds(&buf, w->source);
	char hex[65];
	sl_sha256_hex(buf.p ? buf.p : "", buf.len, hex);
	sl_buf_free(&buf);
	return sl_strdup(hex);
}

struct sl_workflow *wf_build(const struct wf_env *env, struct conf_file *cf, const char *source, const json_t *doc)
{
	int before = cf->nerrors;
	if (!json_is_object(doc)) {
		conf_err(cf, "", "a workflow file must be a mapping with workflow:, version: and steps:");
		return NULL;
	}
	struct wfb b = {.env = env, .cf = cf};
	struct sl_workflow *w = sl_xcalloc(1, sizeof *w);
	atomic_init(&w->refs, 1);
	w->file = sl_strdup(cf->file);
	w->source = sl_strdup(source ? source : "");
	b.w = w;
	conf_check_keys(cf, doc, "", "workflow", sl_workflow_keys);
	parse_head(&b, doc);
	const json_t *tr = json_object_get(doc, "trigger");
	if (tr)
		parse_trigger(&b, tr);
	parse_input_contract(&b, doc);
	parse_slo(&b, json_object_get(doc, "slo"));
	b.w->allow_actions = parse_allow_actions(&b, json_object_get(doc, "allow_actions"), "/allow_actions");
	parse_steps(&b, json_object_get(doc, "steps"));
	w->reviewers = reviewer_list(&b, json_object_get(doc, "reviewers"), "/reviewers");
	const json_t *out = json_object_get(doc, "output");
	if (out) {
		w->output = jq_at(&b, out, "/output", "output");
		add_ref(&b, w->output, SIZE_MAX, false, "/output");
	}
	check_refs(&b);
	free(b.refs);
	w->digest = digest_of(w);
	if (cf->nerrors != before) {
		sl_workflow_unref(w);
		return NULL;
	}
	return w;
}

void wf_emit_pos(const struct conf_file *cf, size_t step, int *line, int *col)
{
	char p[CONF_PTR_MAX], s[CONF_PTR_MAX];
	conf_ptr_index(s, "/steps", step);
	conf_ptr(p, s, "emit");
	conf_pos(cf, p, line, col);
}

/* ---- life cycle ------------------------------------------------------------------------------------ */

void sl_workflow_ref(struct sl_workflow *w)
{
	if (w)
		atomic_fetch_add(&w->refs, 1);
}

static void step_free(struct sl_step *st)
{
	free(st->id);
	sl_expr_free(st->when);
	sl_expr_free(st->map);
	free(st->call);
	sl_expr_free(st->with);
	sl_expr_free(st->idempotency_key);
	free(st->compensate);
	sl_expr_free(st->comp_with);
	sl_expr_free(st->wait_until);
	free(st->topic);
	free(st->sink);
	free(st->emit_type);
	sl_expr_free(st->payload);
	struct sl_ai_step *a = &st->ai;
	free(a->route);
	free(a->prompt_name);
	sl_expr_free(a->input);
	sl_expr_free(a->vars);
	for (size_t i = 0; i < a->nlabels; i++)
		free(a->labels[i]);
	free(a->labels);
	free(a->role);
	json_decref(st->approval.reviewers);
	json_decref(st->approval.escalate_to);
	sl_expr_free(st->approval.evidence);
	free(st->approval.on_timeout);
	strv_free(st->allow_actions);
}

void sl_workflow_unref(struct sl_workflow *w)
{
	if (!w || atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	for (size_t i = 0; i < w->nsteps; i++)
		step_free(&w->steps[i]);
	free(w->steps);
	sl_expr_free(w->output);
	json_decref(w->reviewers);
	free(w->trigger.path);
	free(w->trigger.event);
	free(w->trigger.group);
	free(w->trigger.hmac_secret_ref);
	free(w->trigger.schedule);
	free(w->trigger.timezone);
	sl_cron_free(w->trigger.cron);
	sl_tz_free(w->trigger.tz);
	free(w->trigger.poll);
	struct sl_sync *sy = &w->trigger.sync;
	struct sl_expr *exprs[] = {sy->items, sy->next, sy->id, sy->version, sy->deleted, sy->changed_at};
	for (size_t i = 0; i < SL_ARRAY_LEN(exprs); i++)
		sl_expr_free(exprs[i]);
	free(w->name);
	free(w->file);
	free(w->source);
	free(w->digest);
	free(w->owner);
	free(w->description);
	strv_free(w->allow_actions);
	free(w);
}

const struct sl_step *sl_workflow_step(const struct sl_workflow *w, const char *id)
{
	int i = w && id ? step_index(w, id) : -1;
	return i >= 0 ? &w->steps[i] : NULL;
}
