/*
 * ai_int.h: private to src/ai/: the runtime built from models.yaml.
 */
#ifndef SL_AI_INT_H
#define SL_AI_INT_H

#include <pthread.h>

#include "ai/ai.h"
#include "ai/provider.h"

#define AI_NAME_MAX 64
#define AI_PROMPT_MAX (256 * 1024) /* a rendered prompt or a chat's text, bytes */
#define AI_DEFAULT_MAX_TOKENS 512
#define AI_DEFAULT_TIMEOUT_MS 60000

struct ai_model {
	char *id;        /* the name routes use */
	char *remote;    /* the provider's name for it (default: id) */
	struct ai_provider *provider;
	double in_per_1m, out_per_1m; /* USD per million tokens */
};

enum ai_period { AI_PERIOD_TOTAL, AI_PERIOD_DAY, AI_PERIOD_MONTH };

struct ai_budget {
	char *scope; /* "route" | "workflow" */
	char *name;
	double limit_usd;
	enum ai_period per;
	/* guarded by sl_ai.mu */
	double spent_usd;
	int64_t period_start_ms;
};

struct ai_cache;

struct ai_route {
	char *name;
	struct ai_model **models;
	size_t nmodels;
	double escalate_below;  /* cascade: try the next model below this confidence; 0: never */
	unsigned fallback_mask; /* bit per sl_class: an error of it moves to the next model */
	int64_t cache_ttl_ms;   /* 0: no cache */
	int64_t timeout_ms;
	struct ai_budget *budget; /* NULL: none */
};

struct sl_ai {
	char *project_dir;
	struct ai_provider **providers;
	size_t nproviders;
	struct ai_model **models;
	size_t nmodels;
	struct ai_route **routes;
	size_t nroutes;
	const char **route_names; /* NULL-terminated */
	struct ai_budget **wf_budgets;
	size_t nwf_budgets;
	struct ai_cache *cache;
	pthread_mutex_t mu; /* budgets */
	/* while sl_ai_new builds: models.yaml's document, so a reference to a
	 * provider or model that is declared but broken is not reported twice */
	const json_t *doc;
};

struct ai_route *ai_route_find(const struct sl_ai *ai, const char *name);

/* ---- budgets (route.c) ----------------------------------------------------------- */
/* The start of the period holding now, or 0 for AI_PERIOD_TOTAL. */
int64_t ai_period_start(enum ai_period per, int64_t now_ms);

/* ---- the response cache (cache.c): key -> JSON value, TTL, bounded ------------------ */
struct ai_cache *ai_cache_new(size_t max_entries);
void ai_cache_free(struct ai_cache *c);
/* A new reference to the value, or NULL when absent or expired. */
json_t *ai_cache_get(struct ai_cache *c, const char *key, int64_t now_ms);
void ai_cache_put(struct ai_cache *c, const char *key, json_t *value, int64_t expires_ms);

/* ---- tasks (task.c): what each task asks and accepts ---------------------------------- */
/* The JSON Schema a model's answer must meet for rq's task (owned), or NULL
 * for free text (summarize, draft, chat). */
json_t *ai_task_schema(const struct sl_ai_request *rq);
/* The system prompt of a task. */
const char *ai_task_system(enum sl_ai_task t);
/* The messages of a call: system + the user prompt (owned). */
json_t *ai_task_messages(const struct sl_ai_request *rq, const char *prompt);
/* Checks a model's answer: parses JSON where a schema applies, validates it
 * (classify/route: label among labels, confidence in [0,1]; extract: the
 * contract). Returns 0 and *output (owned: the step's output, without
 * "model") and *confidence, or -1 with why (for the retry message). */
int ai_task_accept(const struct sl_ai_request *rq, const struct ai_call_out *out, json_t **output,
		   double *confidence, char *why, size_t why_cap);

/* ---- masking (mask.c) ----------------------------------------------------------------- */
/* Sensitive values found in text replaced by tokens ("[PII_1]"), reversibly. */
struct ai_mask;
struct ai_mask *ai_mask_new(void);
void ai_mask_free(struct ai_mask *m);
/* Adds values to mask wherever they appear (x-pii fields of the input). */
void ai_mask_add_values(struct ai_mask *m, const json_t *values);
/* Returns text with every known value and every detected e-mail address,
 * phone number and IBAN replaced by its token (owned). */
char *ai_mask_text(struct ai_mask *m, const char *text);
/* Masks the string contents of OpenAI-shaped messages (owned copy). */
json_t *ai_mask_messages(struct ai_mask *m, const json_t *messages);
/* Puts the original values back in text (owned). */
char *ai_unmask_text(const struct ai_mask *m, const char *text);
/* The same over every string of a JSON value (owned copy). */
json_t *ai_unmask_json(const struct ai_mask *m, const json_t *v);
size_t ai_mask_count(const struct ai_mask *m);
/* Calls fn for every e-mail address, phone number and IBAN in text (byte
 * offset and length). pii.c, on the pattern extractors. */
void ai_pii_scan(const char *text, void (*fn)(const char *kind, const char *text, size_t off, size_t len, void *ud),
		 void *ud);

#endif
