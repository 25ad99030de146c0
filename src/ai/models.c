/*
 * models.c: models.yaml -> the AI runtime: providers, models with prices,
 * routes, budgets. Problems are reported with the JSON pointer of the value,
 * which the config loader turns into FILE:LINE:COL.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ai/ai_int.h"

const struct sl_conf_key sl_ai_models_keys[] = {
	{"providers", SL_CONF_OBJECT, false, "provider instances by name: {NAME: {type: openai|anthropic|local, ...}}"},
	{"models", SL_CONF_OBJECT, false, "models by the name routes use: {NAME: {provider, model, price}}"},
	{"routes", SL_CONF_OBJECT, false, "routes by name: {NAME: {models: [...], escalate_below, fallback_on, cache, budget}}"},
	{"budgets", SL_CONF_OBJECT, false, "{workflows: {NAME: {usd, per: day|month|total}}}"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_ai_model_keys[] = {
	{"provider", SL_CONF_STRING, true, "the provider that serves it"},
	{"model", SL_CONF_STRING, false, "the provider's name for the model (default: this model's name)"},
	{"price", SL_CONF_OBJECT, false, "{input: USD per 1M input tokens, output: USD per 1M output tokens}"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_ai_route_keys[] = {
	{"models", SL_CONF_ARRAY, true, "models in the order they are tried (cheap/local first)"},
	{"escalate_below", SL_CONF_ANY, false, "cascade: below this confidence (0..1) the next model is asked"},
	{"fallback_on", SL_CONF_ARRAY, false, "error classes that move to the next model (default [transient])"},
	{"cache", SL_CONF_ANY, false, "cache answers for this long (\"1h\"), or false (default false)"},
	{"timeout", SL_CONF_DURATION, false, "per model call (default 60s)"},
	{"budget", SL_CONF_OBJECT, false, "{usd: N, per: day|month|total}: past it, calls fail with class budget"},
	{NULL, 0, false, NULL},
};

static const struct sl_conf_key budget_keys[] = {
	{"usd", SL_CONF_ANY, true, "the limit in US dollars"},
	{"per", SL_CONF_STRING, false, "day, month or total (default day)"},
	{NULL, 0, false, NULL},
};

static const struct sl_conf_key price_keys[] = {
	{"input", SL_CONF_ANY, true, "USD per 1M input tokens"},
	{"output", SL_CONF_ANY, true, "USD per 1M output tokens"},
	{NULL, 0, false, NULL},
};

static const struct sl_conf_key wf_budgets_keys[] = {
	{"workflows", SL_CONF_OBJECT, false, "{WORKFLOW: {usd, per}}"},
	{NULL, 0, false, NULL},
};

static const struct ai_provider_type *const provider_types[] = {
	&ai_openai_type,
	&ai_anthropic_type,
	&ai_local_type,
};

const struct ai_provider_type *ai_provider_type_find(const char *name)
{
	for (size_t i = 0; name && i < SL_ARRAY_LEN(provider_types); i++)
		if (strcmp(provider_types[i]->name, name) == 0)
			return provider_types[i];
	return NULL;
}

static const char *const task_names[] = {
	[SL_AI_CLASSIFY] = "classify", [SL_AI_EXTRACT] = "extract", [SL_AI_SUMMARIZE] = "summarize",
	[SL_AI_DRAFT] = "draft",       [SL_AI_ROUTE] = "route",     [SL_AI_CHAT] = "chat",
	[SL_AI_TOOL] = "tool",
};

const char *sl_ai_task_name(enum sl_ai_task t)
{
	return (unsigned)t < SL_ARRAY_LEN(task_names) ? task_names[t] : "unknown";
}

int sl_ai_task_parse(const char *name)
{
	for (size_t i = 0; name && i < SL_ARRAY_LEN(task_names); i++)
		if (i != SL_AI_CHAT && strcmp(task_names[i], name) == 0)
			return (int)i;
	return -1;
}

/* ---- numbers ------------------------------------------------------------------------ */

/* A number at obj[key] in [lo, hi]; reports and returns -1 otherwise. */
static int conf_number(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer, const char *key,
		       double lo, double hi, double *out)
{
	char p[SL_CONF_PTR_MAX];
	sl_conf_ptr(p, pointer, key);
	const json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi)) {
		sl_conf_error(ctx, p, "\"%s\" wants a number from %g to %g", key, lo, hi);
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

/* ---- providers --------------------------------------------------------------------------- */

static void provider_free(struct ai_provider *p)
{
	if (!p)
		return;
	if (p->type && p->type->free_fn)
		p->type->free_fn(p);
	pthread_mutex_destroy(&p->mu);
	free(p->name);
	free(p);
}

static const struct sl_conf_key breaker_keys[] = {
	{"failures", SL_CONF_INT, false, "consecutive failures that open the breaker (default 5; 0: never)"},
	{"cooldown", SL_CONF_DURATION, false, "how long it stays open before a trial call (default 30s)"},
	{NULL, 0, false, NULL},
};

static struct ai_provider *provider_new(struct sl_ai *ai, const char *name, const json_t *cfg, struct sl_conf_ctx *ctx,
					const char *pointer)
{
	if (!json_is_object(cfg)) {
		sl_conf_error(ctx, pointer, "provider '%s' wants a mapping {type: openai|anthropic|local, ...}", name);
		return NULL;
	}
	const char *tname = json_string_value(json_object_get(cfg, "type"));
	const struct ai_provider_type *t = ai_provider_type_find(tname);
	char tp[SL_CONF_PTR_MAX];
	sl_conf_ptr(tp, pointer, "type");
	if (!t) {
		if (tname)
			sl_conf_error(ctx, tp, "unknown provider type '%s' (openai, anthropic, local)", tname);
		else
			sl_conf_error(ctx, pointer, "provider '%s' needs a type (openai, anthropic, local)", name);
		return NULL;
	}
	int before = ctx->nerrors;
	sl_conf_check_keys(ctx, cfg, pointer, t->keys);
	struct ai_provider *p = sl_xcalloc(1, sizeof *p);
	pthread_mutex_init(&p->mu, NULL);
	p->name = sl_strdup(name);
	p->type = t;
	p->project_dir = ai->project_dir;
	p->external = t->external;
	const char *res = json_string_value(json_object_get(cfg, "residency"));
	if (res) {
		if (strcmp(res, "external") == 0)
			p->external = true;
		else if (strcmp(res, "local") == 0)
			p->external = false;
		else {
			char rp[SL_CONF_PTR_MAX];
			sl_conf_ptr(rp, pointer, "residency");
			sl_conf_error(ctx, rp, "residency is external or local, not '%s'", res);
		}
	}
	p->breaker_failures = 5;
	p->breaker_cooldown_ms = 30000;
	const json_t *br = json_object_get(cfg, "breaker");
	if (json_is_object(br)) {
		char bp[SL_CONF_PTR_MAX];
		sl_conf_ptr(bp, pointer, "breaker");
		sl_conf_check_keys(ctx, br, bp, breaker_keys);
		json_int_t f = json_integer_value(json_object_get(br, "failures"));
		if (json_object_get(br, "failures"))
			p->breaker_failures = f < 0 ? 0 : (int)SL_MIN(f, 1000000);
		p->breaker_cooldown_ms = sl_conf_duration(ctx, br, bp, "cooldown", 30000);
	}
	if (ctx->nerrors == before && t->init_fn(p, cfg, ctx, pointer) != 0 && ctx->nerrors == before)
		sl_conf_error(ctx, pointer, "provider '%s' could not be set up", name);
	if (ctx->nerrors != before) {
		provider_free(p);
		return NULL;
	}
	return p;
}

/* Whether models.yaml declares NAME under section (it may have failed). */
static bool declared(const struct sl_ai *ai, const char *section, const char *name)
{
	return name && json_object_get(json_object_get(ai->doc, section), name) != NULL;
}

static struct ai_provider *provider_find(const struct sl_ai *ai, const char *name)
{
	for (size_t i = 0; name && i < ai->nproviders; i++)
		if (strcmp(ai->providers[i]->name, name) == 0)
			return ai->providers[i];
	return NULL;
}

/* ---- models -------------------------------------------------------------------------------- */

static struct ai_model *model_find(const struct sl_ai *ai, const char *id)
{
	for (size_t i = 0; id && i < ai->nmodels; i++)
		if (strcmp(ai->models[i]->id, id) == 0)
			return ai->models[i];
	return NULL;
}

static void model_new(struct sl_ai *ai, const char *id, const json_t *cfg, struct sl_conf_ctx *ctx,
		      const char *pointer)
{
	if (!json_is_object(cfg)) {
		sl_conf_error(ctx, pointer, "model '%s' wants a mapping {provider: NAME, model: ..., price: ...}", id);
		return;
	}
	int before = ctx->nerrors;
	sl_conf_check_keys(ctx, cfg, pointer, sl_ai_model_keys);
	const char *pname = json_string_value(json_object_get(cfg, "provider"));
	struct ai_provider *prov = provider_find(ai, pname);
	if (pname && !prov && !declared(ai, "providers", pname)) {
		char pp[SL_CONF_PTR_MAX];
		sl_conf_ptr(pp, pointer, "provider");
		sl_conf_error(ctx, pp, "no provider named '%s' in providers:", pname);
	}
	double in = 0, out = 0;
	const json_t *price = json_object_get(cfg, "price");
	if (json_is_object(price)) {
		char pp[SL_CONF_PTR_MAX];
		sl_conf_ptr(pp, pointer, "price");
		sl_conf_check_keys(ctx, price, pp, price_keys);
		conf_number(ctx, price, pp, "input", 0, 1e6, &in);
		conf_number(ctx, price, pp, "output", 0, 1e6, &out);
	}
	if (ctx->nerrors != before || !prov)
		return;
	struct ai_model *m = sl_xcalloc(1, sizeof *m);
	m->id = sl_strdup(id);
	const char *remote = json_string_value(json_object_get(cfg, "model"));
	m->remote = sl_strdup(remote ? remote : id);
	m->provider = prov;
	m->in_per_1m = in;
	m->out_per_1m = out;
	ai->models = sl_xrealloc(ai->models, (ai->nmodels + 1) * sizeof *ai->models);
	ai->models[ai->nmodels++] = m;
}

/* ---- budgets --------------------------------------------------------------------------------- */

static struct ai_budget *budget_new(const char *scope, const char *name, const json_t *cfg, struct sl_conf_ctx *ctx,
				    const char *pointer)
{
	if (!json_is_object(cfg)) {
		sl_conf_error(ctx, pointer, "a budget is a mapping {usd: N, per: day|month|total}");
		return NULL;
	}
	int before = ctx->nerrors;
	sl_conf_check_keys(ctx, cfg, pointer, budget_keys);
	double usd = 0;
	conf_number(ctx, cfg, pointer, "usd", 0, 1e12, &usd);
	const char *per = json_string_value(json_object_get(cfg, "per"));
	enum ai_period period = AI_PERIOD_DAY;
	if (per) {
		if (strcmp(per, "day") == 0)
			period = AI_PERIOD_DAY;
		else if (strcmp(per, "month") == 0)
			period = AI_PERIOD_MONTH;
		else if (strcmp(per, "total") == 0)
			period = AI_PERIOD_TOTAL;
		else {
			char pp[SL_CONF_PTR_MAX];
			sl_conf_ptr(pp, pointer, "per");
			sl_conf_error(ctx, pp, "per is day, month or total, not '%s'", per);
		}
	}
	if (ctx->nerrors != before)
		return NULL;
	struct ai_budget *b = sl_xcalloc(1, sizeof *b);
	b->scope = sl_strdup(scope);
	b->name = sl_strdup(name);
	b->limit_usd = usd;
	b->per = period;
	return b;
}

static void budget_free(struct ai_budget *b)
{
	if (!b)
		return;
	free(b->scope);
	free(b->name);
	free(b);
}

/* ---- routes ------------------------------------------------------------------------------------ */

static void route_free(struct ai_route *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->models);
	budget_free(r->budget);
	free(r);
}

static unsigned fallback_mask(const json_t *list, struct sl_conf_ctx *ctx, const char *pointer)
{
	if (!list)
		return 1u << SL_CLASS_TRANSIENT;
	unsigned mask = 0;
	size_t i;
	const json_t *v;
	json_array_foreach(list, i, v)
	{
		char ip[SL_CONF_PTR_MAX];
		snprintf(ip, sizeof ip, "%s/%zu", pointer, i);
		int c = sl_class_parse(json_string_value(v));
		if (c <= SL_CLASS_NONE)
			sl_conf_error(ctx, ip, "an error class: transient, permanent, auth, contract, policy or budget");
		else
			mask |= 1u << c;
	}
	return mask;
}

static void route_new(struct sl_ai *ai, const char *name, const json_t *cfg, struct sl_conf_ctx *ctx,
		      const char *pointer)
{
	if (!json_is_object(cfg)) {
		sl_conf_error(ctx, pointer, "route '%s' wants a mapping {models: [...], ...}", name);
		return;
	}
	int before = ctx->nerrors;
	sl_conf_check_keys(ctx, cfg, pointer, sl_ai_route_keys);
	struct ai_route *r = sl_xcalloc(1, sizeof *r);
	r->name = sl_strdup(name);
	char mp[SL_CONF_PTR_MAX];
	sl_conf_ptr(mp, pointer, "models");
	const json_t *models = json_object_get(cfg, "models");
	if (json_is_array(models) && json_array_size(models) == 0)
		sl_conf_error(ctx, mp, "a route needs at least one model");
	size_t i;
	const json_t *v;
	json_array_foreach(models, i, v)
	{
		char ip[SL_CONF_PTR_MAX];
		snprintf(ip, sizeof ip, "%s/%zu", mp, i);
		struct ai_model *m = model_find(ai, json_string_value(v));
		if (!m) {
			if (declared(ai, "models", json_string_value(v)))
				continue; /* its own error was reported */
			if (json_is_string(v))
				sl_conf_error(ctx, ip, "no model named '%s' in models:", json_string_value(v));
			else
				sl_conf_error(ctx, ip, "a model name");
			continue;
		}
		r->models = sl_xrealloc(r->models, (r->nmodels + 1) * sizeof *r->models);
		r->models[r->nmodels++] = m;
	}
	conf_number(ctx, cfg, pointer, "escalate_below", 0, 1, &r->escalate_below);
	char fp[SL_CONF_PTR_MAX];
	sl_conf_ptr(fp, pointer, "fallback_on");
	r->fallback_mask = fallback_mask(json_object_get(cfg, "fallback_on"), ctx, fp);
	const json_t *cache = json_object_get(cfg, "cache");
	if (cache && !json_is_false(cache)) {
		char cp[SL_CONF_PTR_MAX];
		sl_conf_ptr(cp, pointer, "cache");
		if (json_is_true(cache))
			r->cache_ttl_ms = 3600 * 1000;
		else if (!json_is_string(cache) || sl_parse_duration_ms(json_string_value(cache), &r->cache_ttl_ms) ||
			 r->cache_ttl_ms <= 0)
			sl_conf_error(ctx, cp, "cache wants a duration such as \"1h\", or true/false");
	}
	r->timeout_ms = sl_conf_duration(ctx, cfg, pointer, "timeout", AI_DEFAULT_TIMEOUT_MS);
	const json_t *b = json_object_get(cfg, "budget");
	if (b) {
		char bp[SL_CONF_PTR_MAX];
		sl_conf_ptr(bp, pointer, "budget");
		r->budget = budget_new("route", name, b, ctx, bp);
	}
	if (ctx->nerrors != before) {
		route_free(r);
		return;
	}
	ai->routes = sl_xrealloc(ai->routes, (ai->nroutes + 1) * sizeof *ai->routes);
	ai->routes[ai->nroutes++] = r;
}

struct ai_route *ai_route_find(const struct sl_ai *ai, const char *name)
{
	for (size_t i = 0; ai && name && i < ai->nroutes; i++)
		if (strcmp(ai->routes[i]->name, name) == 0)
			return ai->routes[i];
	return NULL;
}

/* ---- the runtime ---------------------------------------------------------------------------------- */

/* Calls fn(name, value, pointer) for each member of doc[key] (an object). */
static void each_member(struct sl_ai *ai, const json_t *doc, const char *key, struct sl_conf_ctx *ctx,
			void (*fn)(struct sl_ai *, const char *, const json_t *, struct sl_conf_ctx *, const char *))
{
	const json_t *obj = json_object_get(doc, key);
	const char *name;
	const json_t *v;
	json_object_foreach((json_t *)obj, name, v)
	{
		char p[SL_CONF_PTR_MAX], base[SL_CONF_PTR_MAX];
		sl_conf_ptr(base, "", key);
		sl_conf_ptr(p, base, name);
		fn(ai, name, v, ctx, p);
	}
}

static void add_provider(struct sl_ai *ai, const char *name, const json_t *v, struct sl_conf_ctx *ctx, const char *p)
{
	struct ai_provider *prov = provider_new(ai, name, v, ctx, p);
	if (!prov)
		return;
	ai->providers = sl_xrealloc(ai->providers, (ai->nproviders + 1) * sizeof *ai->providers);
	ai->providers[ai->nproviders++] = prov;
}

static void add_wf_budget(struct sl_ai *ai, const char *name, const json_t *v, struct sl_conf_ctx *ctx, const char *p)
{
	struct ai_budget *b = budget_new("workflow", name, v, ctx, p);
	if (!b)
		return;
	ai->wf_budgets = sl_xrealloc(ai->wf_budgets, (ai->nwf_budgets + 1) * sizeof *ai->wf_budgets);
	ai->wf_budgets[ai->nwf_budgets++] = b;
}

struct sl_ai *sl_ai_new(const json_t *doc, struct sl_conf_ctx *ctx, const char *project_dir)
{
	struct sl_ai *ai = sl_xcalloc(1, sizeof *ai);
	pthread_mutex_init(&ai->mu, NULL);
	ai->project_dir = sl_strdup(project_dir ? project_dir : ".");
	ai->cache = ai_cache_new(10000);
	int before = ctx->nerrors;
	ai->doc = doc;
	if (doc && !json_is_null(doc)) {
		if (!json_is_object(doc)) {
			sl_conf_error(ctx, "", "models.yaml is a mapping {providers, models, routes, budgets}");
		} else {
			sl_conf_check_keys(ctx, doc, "", sl_ai_models_keys);
			each_member(ai, doc, "providers", ctx, add_provider);
			each_member(ai, doc, "models", ctx, model_new);
			each_member(ai, doc, "routes", ctx, route_new);
			const json_t *budgets = json_object_get(doc, "budgets");
			if (json_is_object(budgets)) {
				sl_conf_check_keys(ctx, budgets, "/budgets", wf_budgets_keys);
				const json_t *wfs = json_object_get(budgets, "workflows");
				const char *name;
				const json_t *v;
				json_object_foreach((json_t *)wfs, name, v)
				{
					char p[SL_CONF_PTR_MAX];
					sl_conf_ptr(p, "/budgets/workflows", name);
					add_wf_budget(ai, name, v, ctx, p);
				}
			}
		}
	}
	ai->doc = NULL;
	ai->route_names = sl_xcalloc(ai->nroutes + 1, sizeof *ai->route_names);
	for (size_t i = 0; i < ai->nroutes; i++)
		ai->route_names[i] = ai->routes[i]->name;
	if (ctx->nerrors != before) {
		sl_ai_free(ai);
		return NULL;
	}
	return ai;
}

void sl_ai_free(struct sl_ai *ai)
{
	if (!ai)
		return;
	for (size_t i = 0; i < ai->nroutes; i++)
		route_free(ai->routes[i]);
	free(ai->routes);
	free(ai->route_names);
	for (size_t i = 0; i < ai->nmodels; i++) {
		free(ai->models[i]->id);
		free(ai->models[i]->remote);
		free(ai->models[i]);
	}
	free(ai->models);
	for (size_t i = 0; i < ai->nproviders; i++)
		provider_free(ai->providers[i]);
	free(ai->providers);
	for (size_t i = 0; i < ai->nwf_budgets; i++)
		budget_free(ai->wf_budgets[i]);
	free(ai->wf_budgets);
	ai_cache_free(ai->cache);
	pthread_mutex_destroy(&ai->mu);
	free(ai->project_dir);
	free(ai);
}

bool sl_ai_has_route(const struct sl_ai *ai, const char *route)
{
	return ai_route_find(ai, route) != NULL;
}

const char *const *sl_ai_routes(const struct sl_ai *ai)
{
	static const char *const none[] = {NULL};
	return ai ? ai->route_names : none;
}

bool sl_ai_route_uses_provider(const struct sl_ai *ai, const char *route, const char *provider)
{
	const struct ai_route *r = ai ? ai_route_find(ai, route) : NULL;
	for (size_t i = 0; r && provider && i < r->nmodels; i++)
		if (strcmp(r->models[i]->provider->name, provider) == 0)
			return true;
	return false;
}

bool sl_ai_has_provider(const struct sl_ai *ai, const char *provider)
{
	for (size_t i = 0; ai && provider && i < ai->nproviders; i++)
		if (strcmp(ai->providers[i]->name, provider) == 0)
			return true;
	return false;
}

bool sl_ai_route_can(const struct sl_ai *ai, const char *route, enum sl_ai_task task)
{
	const struct ai_route *r = ai_route_find(ai, route);
	for (size_t i = 0; r && i < r->nmodels; i++) {
		const struct ai_provider *p = r->models[i]->provider;
		if (!p->type->can_fn || p->type->can_fn(p, r->models[i]->remote, task))
			return true;
	}
	return false;
}
