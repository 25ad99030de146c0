/*
 * ai: model providers, routes and AI tasks (DESIGN.md §6).
 *
 * A project's models.yaml names providers (openai, anthropic, local), the
 * models they serve with a price table, and routes: an ordered list of
 * models tried as a cascade (escalate when the answer is not confident
 * enough or not valid) with fallback on error classes, a circuit breaker
 * per provider, a response cache and budgets. sl_ai_run performs one AI
 * task through a route and says what every model call cost.
 *
 * Nothing here writes to a store: the caller (the engine) commits the call
 * records with the step, and tells the runtime what was already spent when
 * it starts (sl_ai_budget_seed), so budgets hold across restarts.
 *
 * Thread safety: after sl_ai_new, sl_ai_run may run on many threads at once.
 */
#ifndef SL_AI_H
#define SL_AI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "connector/connector.h" /* struct sl_conf_ctx, struct sl_conf_key */
#include "contract/contract.h"
#include "util/util.h"

struct sl_ai;

/* tool: one turn of a tool-using conversation (messages + tools); the
 * engine runs the loop (src/engine/tool.c). */
enum sl_ai_task { SL_AI_CLASSIFY, SL_AI_EXTRACT, SL_AI_SUMMARIZE, SL_AI_DRAFT, SL_AI_ROUTE, SL_AI_CHAT, SL_AI_TOOL };
const char *sl_ai_task_name(enum sl_ai_task t);
int sl_ai_task_parse(const char *name); /* -1 when unknown; "chat" is not a step task */

/* Builds the runtime from models.yaml's document (NULL: no models.yaml, so
 * no routes). Problems go through ctx (FILE:LINE:COL). Secrets (api_key:
 * env:NAME) are resolved when ctx->resolve_secrets. Returns NULL when
 * ctx->nerrors > 0. project_dir finds local models (DIR/models/). */
struct sl_ai *sl_ai_new(const json_t *doc, struct sl_conf_ctx *ctx, const char *project_dir);
void sl_ai_free(struct sl_ai *ai);
bool sl_ai_has_route(const struct sl_ai *ai, const char *route);
/* NULL-terminated route names (owned by ai). */
const char *const *sl_ai_routes(const struct sl_ai *ai);
/* Whether a route has a model served by provider (kill switches: a paused
 * provider holds every step whose route may call it). */
bool sl_ai_route_uses_provider(const struct sl_ai *ai, const char *route, const char *provider);
/* Whether provider is one models.yaml declares. */
bool sl_ai_has_provider(const struct sl_ai *ai, const char *provider);
/* Whether a route has a model able to do the task (local models classify
 * and extract only). */
bool sl_ai_route_can(const struct sl_ai *ai, const char *route, enum sl_ai_task task);

/* ---- one task through a route ------------------------------------------------- */
struct sl_ai_request {
	enum sl_ai_task task;
	const char *route;
	/* who asks, for budgets, records and logs (may be NULL) */
	const char *workflow, *run_id, *step_id, *correlation_id, *tenant;
	const char *prompt;          /* the rendered user prompt (not yet masked) */
	const char *input_text;      /* the input before templating, for local models; NULL: prompt */
	const char *prompt_hash;     /* the template's SHA-256 (hex), "" when none */
	const char *const *labels;   /* classify / route: the allowed answers */
	size_t nlabels;
	const struct sl_schema *contract; /* extract: what the output must meet */
	const json_t *pii;           /* array of strings to mask before an external provider; may be NULL */
	int max_tokens;              /* 0: 512 */
	double min_confidence;       /* below it (after the cascade) the answer goes to review; 0: none */
	const json_t *messages;      /* chat, tool: OpenAI-shaped messages (tool: with assistant tool_calls and
				      * role "tool" results); prompt is ignored */
	const json_t *tools;         /* tool: [{name, description, parameters (JSON Schema)}] */
};

struct sl_ai_result {
	json_t *output;       /* owned: classify/route {"label","confidence"}, extract {"data","confidence"},
			       * summarize/draft {"text"}, chat {"text"}, tool {"tool_calls": [{id, name, input}]}
			       * or the final answer {"text", "data" (when the text is one JSON object)}; plus "model" */
	double confidence;    /* -1: the task has none */
	bool review;          /* the answer needs a person: invalid twice, or not confident enough */
	char review_reason[256];
	char model[64];       /* the model that answered */
	json_t *calls;        /* owned array of call records, one per model call or cache hit:
			       * {route, model, provider, prompt_hash, input (redacted), output, confidence,
			       *  tokens_in, tokens_out, cost_usd, latency_ms, cache_hit, outcome, error} */
	int64_t tokens_in, tokens_out;
	double cost_usd;
	bool cache_hit;
};
void sl_ai_result_free(struct sl_ai_result *r); /* frees the members */

/* Performs rq through its route. Returns 0 with res filled (res->review may
 * be set), or a negative code with err's class: transient (every model
 * failed with a transient error or an open breaker: retry later), budget
 * (the route's or the workflow's budget is spent), auth, permanent. Even on
 * failure res->calls holds what was tried (record it). */
int sl_ai_run(struct sl_ai *ai, const struct sl_ai_request *rq, struct sl_ai_result *res, struct sl_err *err);

/* Renders a prompt template: {{ name }} becomes vars[name] (a string as it
 * is, another value as compact JSON). Returns owned text, or NULL with err
 * (permanent) naming a variable vars does not have. */
char *sl_ai_render(const char *tpl, const json_t *vars, struct sl_err *err);

/* ---- budgets ------------------------------------------------------------------- */
/* What a budget counts: spend since the start of its period. */
struct sl_ai_budget_state {
	const char *scope; /* "route" | "workflow" */
	const char *name;
	double limit_usd, spent_usd;
	int64_t period_start_ms; /* 0: the budget has no period (total) */
};
/* Adds usd already spent (from the store) in a scope's current period. */
void sl_ai_budget_seed(struct sl_ai *ai, const char *scope, const char *name, double usd);
/* The start of the current period of each budget, so the caller can sum
 * the store's records since then: calls fn once per budget. */
void sl_ai_budgets(struct sl_ai *ai, void (*fn)(const struct sl_ai_budget_state *b, void *ud), void *ud);

/* The key tables of models.yaml, for docs. */
extern const struct sl_conf_key sl_ai_models_keys[];
extern const struct sl_conf_key sl_ai_provider_keys[];
extern const struct sl_conf_key sl_ai_model_keys[];
extern const struct sl_conf_key sl_ai_route_keys[];

#endif
