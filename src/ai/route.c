/*
 * route.c: one AI task through a route.
 *
 * The route's models are tried in order. A model is skipped while its
 * provider's circuit breaker is open; an error whose class is in the
 * route's fallback_on moves to the next model (any other error ends the
 * task); an answer that fails validation is told back once, then the next
 * model is asked (cascade); a valid answer below escalate_below also asks
 * the next model, and the most confident answer wins. What no model could
 * answer validly, or answered below the step's min_confidence, goes to
 * review. Budgets are checked before every call and charged after it.
 *
 * Text bound for a provider with residency external is masked first
 * (mask.c); the answer is unmasked before it reaches the run. Call records
 * always hold the masked text.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ai/ai_int.h"
#include "obs/obs.h"

#define RECORD_TEXT_MAX 8192 /* bytes of input/output kept in a call record */

void sl_ai_result_free(struct sl_ai_result *r)
{
	if (!r)
		return;
	json_decref(r->output);
	json_decref(r->calls);
	r->output = r->calls = NULL;
}

void ai_call_out_free(struct ai_call_out *o)
{
	free(o->text);
	json_decref(o->json);
	json_decref(o->tool_calls);
	o->text = NULL;
	o->json = NULL;
	o->tool_calls = NULL;
}

/* ---- budgets ------------------------------------------------------------------------ */

int64_t ai_period_start(enum ai_period per, int64_t now_ms)
{
	if (per == AI_PERIOD_TOTAL)
		return 0;
	return per == AI_PERIOD_MONTH ? sl_utc_month_start_ms(now_ms) : sl_utc_day_start_ms(now_ms);
}

/* Starts a new period when now has left the old one. Under ai->mu. */
static void budget_roll(struct ai_budget *b, int64_t now)
{
	int64_t start = ai_period_start(b->per, now);
	if (start != b->period_start_ms) {
		b->period_start_ms = start;
		b->spent_usd = 0;
	}
}

static struct ai_budget *wf_budget(const struct sl_ai *ai, const char *workflow)
{
	for (size_t i = 0; workflow && i < ai->nwf_budgets; i++)
		if (strcmp(ai->wf_budgets[i]->name, workflow) == 0)
			return ai->wf_budgets[i];
	return NULL;
}

static int budget_check(struct sl_ai *ai, const struct ai_route *r, const char *workflow, struct sl_err *err)
{
	struct ai_budget *list[2] = {r->budget, wf_budget(ai, workflow)};
	int64_t now = sl_now_ms();
	int rc = 0;
	pthread_mutex_lock(&ai->mu);
	for (size_t i = 0; i < 2 && !rc; i++) {
		struct ai_budget *b = list[i];
		if (!b)
			continue;
		budget_roll(b, now);
		if (b->spent_usd >= b->limit_usd)
			rc = sl_err_set(err, SL_ESTEP, SL_CLASS_BUDGET, "%s '%s' budget of $%.4f is spent ($%.4f this %s)",
					b->scope, b->name, b->limit_usd, b->spent_usd,
					b->per == AI_PERIOD_DAY ? "day" : b->per == AI_PERIOD_MONTH ? "month" : "period");
	}
	pthread_mutex_unlock(&ai->mu);
	return rc;
}

static void budget_charge(struct sl_ai *ai, const struct ai_route *r, const char *workflow, double usd)
{
	struct ai_budget *list[2] = {r->budget, wf_budget(ai, workflow)};
	int64_t now = sl_now_ms();
	pthread_mutex_lock(&ai->mu);
	for (size_t i = 0; i < 2; i++) {
		if (!list[i])
			continue;
		budget_roll(list[i], now);
		list[i]->spent_usd += usd;
	}
	pthread_mutex_unlock(&ai->mu);
}

void sl_ai_budget_seed(struct sl_ai *ai, const char *scope, const char *name, double usd)
{
	struct ai_budget *b = NULL;
	if (scope && strcmp(scope, "route") == 0) {
		struct ai_route *r = ai_route_find(ai, name);
		b = r ? r->budget : NULL;
	} else {
		b = wf_budget(ai, name);
	}
	if (!b)
		return;
	pthread_mutex_lock(&ai->mu);
	budget_roll(b, sl_now_ms());
	b->spent_usd += usd;
	pthread_mutex_unlock(&ai->mu);
}

void sl_ai_budgets(struct sl_ai *ai, void (*fn)(const struct sl_ai_budget_state *b, void *ud), void *ud)
{
	int64_t now = sl_now_ms();
	struct ai_budget **all = sl_xcalloc(ai->nroutes + ai->nwf_budgets + 1, sizeof *all);
	size_t n = 0;
	for (size_t i = 0; i < ai->nroutes; i++)
		if (ai->routes[i]->budget)
			all[n++] = ai->routes[i]->budget;
	for (size_t i = 0; i < ai->nwf_budgets; i++)
		all[n++] = ai->wf_budgets[i];
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&ai->mu);
		budget_roll(all[i], now);
		struct sl_ai_budget_state st = {all[i]->scope, all[i]->name, all[i]->limit_usd, all[i]->spent_usd,
						all[i]->period_start_ms};
		pthread_mutex_unlock(&ai->mu);
		fn(&st, ud);
	}
	free(all);
}

/* ---- the circuit breaker ------------------------------------------------------------- */

/* Whether a call may go to p now. An open breaker lets one trial call
 * through after its cooldown (half-open) and holds the others back. */
static bool breaker_allows(struct ai_provider *p, int64_t now)
{
	pthread_mutex_lock(&p->mu);
	bool ok = true;
	if (p->open_until_ms) {
		ok = now >= p->open_until_ms;
		if (ok)
			p->open_until_ms = now + p->breaker_cooldown_ms; /* the trial's window */
	}
	pthread_mutex_unlock(&p->mu);
	return ok;
}

static void breaker_result(struct ai_provider *p, bool success, int64_t now)
{
	pthread_mutex_lock(&p->mu);
	if (success) {
		p->failures = 0;
		p->open_until_ms = 0;
	} else if (p->breaker_failures > 0 && ++p->failures >= p->breaker_failures) {
		p->open_until_ms = now + p->breaker_cooldown_ms;
		if (p->failures == p->breaker_failures)
			sl_log(SL_LOG_WARN, "ai", "circuit breaker opened", "provider", p->name, NULL);
	}
	pthread_mutex_unlock(&p->mu);
}

/* ---- call records ------------------------------------------------------------------------- */

static json_t *clip(const char *s)
{
	if (!s)
		return json_null();
	size_t n = strlen(s);
	if (n <= RECORD_TEXT_MAX)
		return json_string(s);
	/* cut on a UTF-8 boundary */
	while (n > RECORD_TEXT_MAX || (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80))
		n--;
	return json_stringn(s, n);
}

struct attempt {
	const struct ai_route *route;
	const struct ai_model *model;
	const char *prompt_hash;
	const char *input;  /* masked */
	const char *output; /* masked; NULL when none */
	double confidence;
	int64_t tokens_in, tokens_out;
	double cost;
	int64_t latency_ms;
	bool cache_hit;
	const char *outcome; /* ok, invalid, error, skipped, low_confidence */
	const struct sl_err *err;
};

/* The call in the process's metrics (obs.h). */
static void count_call(const struct attempt *a)
{
	const char *route = a->route->name, *model = a->model->id;
	const char *calls[] = {route, model, a->outcome};
	sl_metric_add(SL_M_AI_CALLS, calls, 1);
	if (a->cache_hit) {
		const char *r[] = {route};
		sl_metric_add(SL_M_AI_CACHE_HITS, r, 1);
		return;
	}
	const char *in[] = {route, model, "input"}, *out[] = {route, model, "output"}, *rm[] = {route, model};
	sl_metric_add(SL_M_AI_TOKENS, in, (double)a->tokens_in);
	sl_metric_add(SL_M_AI_TOKENS, out, (double)a->tokens_out);
	sl_metric_add(SL_M_AI_COST, rm, a->cost);
	if (strcmp(a->outcome, "skipped") != 0)
		sl_metric_observe(SL_M_AI_DURATION, rm, (double)a->latency_ms / 1000.0);
}

static void record(json_t *calls, const struct attempt *a)
{
	json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:f, s:I, s:b, s:s}", "route",
			      a->route->name, "model", a->model->id, "provider", a->model->provider->name, "prompt_hash",
			      a->prompt_hash ? a->prompt_hash : "", "input", clip(a->input), "output", clip(a->output),
			      "confidence", a->confidence >= 0 ? json_real(a->confidence) : json_null(), "tokens_in",
			      (json_int_t)a->tokens_in, "tokens_out", (json_int_t)a->tokens_out, "cost_usd", a->cost,
			      "latency_ms", (json_int_t)a->latency_ms, "cache_hit", a->cache_hit, "outcome", a->outcome);
	if (a->err) {
		json_object_set_new(r, "error", json_string(a->err->msg));
		json_object_set_new(r, "error_class", json_string(sl_class_name(a->err->cls)));
	}
	json_object_set_new(r, "at", json_integer(sl_now_ms()));
	json_array_append_new(calls, r);
	count_call(a);
}

/* ---- one task ------------------------------------------------------------------------------- */

struct task_run {
	struct sl_ai *ai;
	const struct sl_ai_request *rq;
	const struct ai_route *route;
	json_t *schema;        /* the answer's schema, NULL for text */
	struct sl_ai_result *res;
	/* the best valid answer so far (cascade) */
	json_t *best;
	double best_conf;
	const struct ai_model *best_model;
	bool best_cached;
	char invalid_why[256]; /* the last validation failure, for review */
	struct sl_err last_err;
	bool have_err;
};

static char *cache_key(const struct task_run *t, const struct ai_model *m, const json_t *masked_messages)
{
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_HTTP_BODY);
	char *msgs = json_dumps(masked_messages, JSON_COMPACT | JSON_SORT_KEYS | SL_JSON_REAL);
	char *schema = t->schema ? json_dumps(t->schema, JSON_COMPACT | JSON_SORT_KEYS | SL_JSON_REAL) : NULL;
	sl_buf_printf(&b, "%s\x1f%s\x1f%s\x1f%s\x1f%s", m->id, t->rq->prompt_hash ? t->rq->prompt_hash : "",
		      sl_ai_task_name(t->rq->task), schema ? schema : "", msgs ? msgs : "");
	char *key = sl_xmalloc(65);
	sl_sha256_hex(b.p, b.len, key);
	free(msgs);
	free(schema);
	sl_buf_free(&b);
	return key;
}

/* The text a record keeps as the call's input: the user prompt, or the
 * chat's messages, masked. */
static char *record_input(const json_t *masked_messages, enum sl_ai_task task)
{
	if (task == SL_AI_CHAT || task == SL_AI_TOOL)
		return json_dumps(masked_messages, JSON_COMPACT | SL_JSON_REAL);
	const json_t *last = json_array_get(masked_messages, json_array_size(masked_messages) - 1);
	return sl_strdup(json_string_value(json_object_get(last, "content")));
}

/* Keeps a valid answer; returns true when the cascade should stop here. */
static bool take_answer(struct task_run *t, size_t model_index, const struct ai_model *m, json_t *output,
			double conf, bool cached)
{
	bool better = !t->best || (conf >= 0 && conf > t->best_conf);
	if (better) {
		json_decref(t->best);
		t->best = output;
		t->best_conf = conf;
		t->best_model = m;
		t->best_cached = cached;
	} else {
		json_decref(output);
	}
	bool confident = t->route->escalate_below <= 0 || conf < 0 || conf >= t->route->escalate_below;
	bool more = false;
	for (size_t j = model_index + 1; j < t->route->nmodels && !more; j++) {
		const struct ai_provider *p = t->route->models[j]->provider;
		more = !p->type->can_fn || p->type->can_fn(p, t->route->models[j]->remote, t->rq->task);
	}
	return confident || !more;
}

/* Asks one model (with one retry after an invalid answer). Returns 1 when
 * the task is settled, 0 to go on to the next model, or a negative code
 * to stop with t->last_err. */
static int ask_model(struct task_run *t, size_t index)
{
	const struct sl_ai_request *rq = t->rq;
	const struct ai_model *m = t->route->models[index];
	struct ai_provider *p = m->provider;
	if (p->type->can_fn && !p->type->can_fn(p, m->remote, rq->task))
		return 0;
	struct ai_mask *mask = ai_mask_new();
	ai_mask_add_values(mask, rq->pii);
	json_t *messages = rq->task == SL_AI_CHAT || rq->task == SL_AI_TOOL ? json_incref((json_t *)rq->messages)
										: ai_task_messages(rq, rq->prompt);
	json_t *masked = ai_mask_messages(mask, messages);
	json_t *sent = p->external ? json_incref(masked) : json_incref(messages);
	char *input = record_input(masked, rq->task);
	const char *plain_text = rq->input_text ? rq->input_text : rq->prompt;
	char *masked_text = plain_text ? ai_mask_text(mask, plain_text) : NULL;
	struct attempt a = {.route = t->route, .model = m, .prompt_hash = rq->prompt_hash, .input = input,
			    .confidence = -1};
	int settled = 0;
	/* a tool conversation reads live systems: its answers are not cached */
	char *key = t->route->cache_ttl_ms > 0 && rq->task != SL_AI_TOOL ? cache_key(t, m, masked) : NULL;
	json_t *hit = key ? ai_cache_get(t->ai->cache, key, sl_now_ms()) : NULL;
	if (hit) {
		double conf = json_is_number(json_object_get(hit, "confidence"))
				      ? json_number_value(json_object_get(hit, "confidence"))
				      : -1;
		char *text = json_dumps(hit, JSON_COMPACT | SL_JSON_REAL);
		a.output = text;
		a.confidence = conf;
		a.cache_hit = true;
		a.outcome = "ok";
		record(t->res->calls, &a);
		free(text);
		json_t *out = p->external ? ai_unmask_json(mask, hit) : json_incref(hit);
		json_decref(hit);
		settled = take_answer(t, index, m, out, conf, true);
		goto done;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		struct sl_err e;
		sl_err_clear(&e);
		if (budget_check(t->ai, t->route, rq->workflow, &e)) {
			t->last_err = e;
			t->have_err = true;
			settled = SL_ESTEP;
			goto done;
		}
		/* the breaker keeps monotonic time: a clock step must not open or close it */
		if (!breaker_allows(p, sl_mono_ms())) {
			sl_err_set(&e, SL_ESTEP, SL_CLASS_TRANSIENT, "provider %s: circuit breaker open", p->name);
			a.outcome = "skipped";
			a.err = &e;
			record(t->res->calls, &a);
			t->last_err = e;
			t->have_err = true;
			goto done; /* next model */
		}
		struct ai_call_in in = {
			.task = rq->task,
			.model = m->remote,
			.messages = sent,
			.schema = t->schema,
			.schema_name = sl_ai_task_name(rq->task),
			.max_tokens = rq->max_tokens > 0 ? rq->max_tokens : AI_DEFAULT_MAX_TOKENS,
			.timeout_ms = t->route->timeout_ms,
			.correlation_id = rq->correlation_id,
			.text = p->external ? masked_text : plain_text,
			.labels = rq->labels,
			.nlabels = rq->nlabels,
			.extract_schema = rq->contract ? sl_schema_json(rq->contract) : NULL,
			.tools = rq->tools,
		};
		struct ai_call_out out = {.confidence = -1};
		int64_t t0 = sl_mono_ms();
		int rc = p->type->call_fn(p, &in, &out, &e);
		a.latency_ms = sl_mono_ms() - t0;
		a.tokens_in = out.tokens_in;
		a.tokens_out = out.tokens_out;
		a.cost = ((double)out.tokens_in * m->in_per_1m + (double)out.tokens_out * m->out_per_1m) / 1e6;
		t->res->tokens_in += out.tokens_in;
		t->res->tokens_out += out.tokens_out;
		t->res->cost_usd += a.cost;
		budget_charge(t->ai, t->route, rq->workflow, a.cost);
		char *shown = out.text ? ai_mask_text(mask, out.text) : NULL;
		a.output = shown;
		if (rc) {
			breaker_result(p, false, sl_mono_ms());
			a.outcome = "error";
			a.err = &e;
			record(t->res->calls, &a);
			free(shown);
			ai_call_out_free(&out);
			t->last_err = e;
			t->have_err = true;
			settled = (t->route->fallback_mask & (1u << e.cls)) ? 0 : SL_ESTEP;
			goto done;
		}
		breaker_result(p, true, sl_mono_ms());
		/* the answer as the run sees it: unmasked */
		if (p->external && ai_mask_count(mask)) {
			char *plain = ai_unmask_text(mask, out.text);
			free(out.text);
			out.text = plain;
			if (out.json) {
				json_t *pj = ai_unmask_json(mask, out.json);
				json_decref(out.json);
				out.json = pj;
			}
		}
		json_t *output = NULL;
		double conf = -1;
		char why[256];
		if (ai_task_accept(rq, &out, &output, &conf, why, sizeof why) != 0) {
			a.outcome = "invalid";
			struct sl_err ie;
			sl_err_set(&ie, SL_ESTEP, SL_CLASS_CONTRACT, "%s", why);
			a.err = &ie;
			record(t->res->calls, &a);
			snprintf(t->invalid_why, sizeof t->invalid_why, "%s: %s", m->id, why);
			if (attempt == 0) { /* tell the model what was wrong, once */
				json_t *again = json_deep_copy(sent);
				json_array_append_new(again, json_pack("{s:s, s:s}", "role", "assistant", "content",
								       shown ? shown : ""));
				char *fix = sl_asprintf("That answer is not valid: %s. Answer again, with the JSON only.",
							why);
				json_array_append_new(again, json_pack("{s:s, s:s}", "role", "user", "content", fix));
				free(fix);
				json_decref(sent);
				sent = again;
			}
			free(shown);
			a.output = NULL;
			a.err = NULL;
			ai_call_out_free(&out);
			continue;
		}
		a.confidence = conf;
		a.outcome = t->route->escalate_below > 0 && conf >= 0 && conf < t->route->escalate_below ? "low_confidence"
													: "ok";
		a.err = NULL;
		record(t->res->calls, &a);
		if (key) { /* the cache keeps the accepted answer masked: no PII at rest */
			char *otext = json_dumps(output, JSON_COMPACT | SL_JSON_REAL);
			char *mtext = ai_mask_text(mask, otext);
			json_t *mj = json_loads(mtext, 0, NULL);
			if (mj)
				ai_cache_put(t->ai->cache, key, mj, sl_now_ms() + t->route->cache_ttl_ms);
			json_decref(mj);
			free(otext);
			free(mtext);
		}
		free(shown);
		ai_call_out_free(&out);
		settled = take_answer(t, index, m, output, conf, false);
		goto done;
	}
done:
	free(key);
	free(input);
	free(masked_text);
	json_decref(sent);
	json_decref(masked);
	json_decref(messages);
	ai_mask_free(mask);
	return settled;
}

static void finish(struct task_run *t)
{
	struct sl_ai_result *res = t->res;
	const struct sl_ai_request *rq = t->rq;
	res->output = t->best;
	t->best = NULL;
	res->confidence = t->best_conf;
	res->cache_hit = t->best_cached;
	snprintf(res->model, sizeof res->model, "%s", t->best_model->id);
	json_object_set_new(res->output, "model", json_string(t->best_model->id));
	if (rq->min_confidence > 0 && res->confidence >= 0 && res->confidence < rq->min_confidence) {
		res->review = true;
		snprintf(res->review_reason, sizeof res->review_reason, "confidence %.2f is below min_confidence %.2f",
			 res->confidence, rq->min_confidence);
	}
}

static void count_outcome(const struct ai_route *route, const char *outcome)
{
	const char *l[] = {route->name, outcome};
	sl_metric_add(SL_M_AI_OUTCOMES, l, 1);
}

int sl_ai_run(struct sl_ai *ai, const struct sl_ai_request *rq, struct sl_ai_result *res, struct sl_err *err)
{
	memset(res, 0, sizeof *res);
	res->calls = json_array();
	res->confidence = -1;
	const struct ai_route *route = ai_route_find(ai, rq->route);
	if (!route)
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_PERMANENT, "no AI route named '%s' in models.yaml",
				  rq->route ? rq->route : "");
	if (rq->task == SL_AI_CHAT || rq->task == SL_AI_TOOL ? !json_is_array(rq->messages) : !rq->prompt)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "an AI task needs a prompt (chat: messages)");
	struct task_run t = {.ai = ai, .rq = rq, .route = route, .schema = ai_task_schema(rq), .res = res,
			     .best_conf = -1};
	sl_err_clear(&t.last_err);
	int rc = 0;
	for (size_t i = 0; i < route->nmodels; i++) {
		rc = ask_model(&t, i);
		if (rc != 0)
			break;
	}
	json_decref(t.schema);
	if (t.best) {
		finish(&t);
		count_outcome(route, res->review ? "review" : "accepted");
		return 0;
	}
	if (rc < 0 || (t.have_err && !t.invalid_why[0])) {
		count_outcome(route, "failed");
		if (err)
			*err = t.last_err;
		return rc < 0 ? rc : SL_ESTEP;
	}
	if (t.invalid_why[0]) {
		res->review = true;
		snprintf(res->review_reason, sizeof res->review_reason, "no valid answer: %s", t.invalid_why);
		res->output = json_pack("{s:s}", "error", res->review_reason);
		count_outcome(route, "review");
		return 0;
	}
	return sl_err_set(err, SL_ESTEP, SL_CLASS_PERMANENT, "route '%s' has no model that can %s", route->name,
			  sl_ai_task_name(rq->task));
}
