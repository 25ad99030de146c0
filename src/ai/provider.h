/*
 * provider.h: private to src/ai/. A provider type is a const table of
 * callbacks (like a connector type) in a static registry: openai (any
 * OpenAI-compatible chat completions API), anthropic (the Messages API),
 * local (built-in specialist models). A provider is one configured instance
 * (models.yaml providers.NAME).
 */
#ifndef SL_AI_PROVIDER_H
#define SL_AI_PROVIDER_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ai/ai.h"

struct ai_provider;

/* One model call. Messages are OpenAI-shaped ([{role, content}], roles
 * system/user/assistant), already masked when the provider is external.
 * With schema set the answer must be one JSON document meeting it (JSON
 * mode / a forced tool); out->json holds it parsed. */
struct ai_call_in {
	enum sl_ai_task task;
	const char *model;          /* the provider's name for the model */
	const json_t *messages;
	const json_t *schema;       /* NULL: free text */
	const char *schema_name;    /* "classification", ... */
	int max_tokens;
	int64_t timeout_ms;
	const char *correlation_id; /* sent as X-Correlation-Id; may be NULL */
	/* for local models, which do not read prompts */
	const char *text;                /* the task's input text */
	const char *const *labels;
	size_t nlabels;
	const json_t *extract_schema;    /* extract: the contract document */
	const json_t *tools;             /* tool: [{name, description, parameters}], or NULL */
};

struct ai_call_out {
	char *text;          /* owned: the answer's text (the JSON text with a schema) */
	json_t *json;        /* owned: the parsed answer when a schema was asked, else NULL */
	double confidence;   /* -1: the model gives none */
	int64_t tokens_in, tokens_out;
	char finish[32];     /* "stop", "length", ... */
	json_t *tool_calls;  /* owned: [{id, name, input}] when the model called tools, else NULL */
};
void ai_call_out_free(struct ai_call_out *o);

struct ai_provider_type {
	const char *name;
	bool external;                  /* default residency: text leaves the machine */
	const struct sl_conf_key *keys; /* keys besides type/residency */
	/* Validates cfg (providers.NAME) into p->priv; no network I/O. */
	int (*init_fn)(struct ai_provider *p, const json_t *cfg, struct sl_conf_ctx *ctx, const char *pointer);
	/* Whether the provider can do a task at all (local: classify, extract). */
	bool (*can_fn)(const struct ai_provider *p, const char *model, enum sl_ai_task task);
	/* Performs a call. On failure: err with class (transient for 429/5xx/
	 * timeouts, with retry_after_ms; auth for 401/403; permanent else). */
	int (*call_fn)(struct ai_provider *p, const struct ai_call_in *in, struct ai_call_out *out,
		       struct sl_err *err);
	void (*free_fn)(struct ai_provider *p);
};

struct ai_provider {
	char *name;
	const struct ai_provider_type *type;
	bool external;        /* residency: external (masking applies) or local */
	const char *project_dir;
	void *priv;
	/* circuit breaker (route.c) */
	pthread_mutex_t mu;
	int failures;         /* consecutive */
	int64_t open_until_ms;
	int breaker_failures; /* opens after this many; 0: never */
	int64_t breaker_cooldown_ms;
};

const struct ai_provider_type *ai_provider_type_find(const char *name);
extern const struct ai_provider_type ai_openai_type;
extern const struct ai_provider_type ai_anthropic_type;
extern const struct ai_provider_type ai_local_type;

/* Read a provider's 2xx answer body (outside input) into out: the text, the
 * parsed JSON when in->schema asks for it, tokens, finish reason. Errors: an
 * answer without the expected shape (transient), a refusal (permanent).
 * Exposed for fuzz/fuzz_ai_reply.c. */
int ai_openai_parse(const json_t *body, const struct ai_call_in *in, struct ai_call_out *out, struct sl_err *err);
int ai_anthropic_parse(const json_t *body, const struct ai_call_in *in, struct ai_call_out *out, struct sl_err *err);

/* ---- shared by the HTTP providers (http.c) ---------------------------------------- */
struct ai_http_reply {
	long status;
	json_t *body;           /* parsed JSON body, NULL when not JSON */
	int64_t retry_after_ms; /* -1 when none */
};
/* POSTs body (JSON text) to url with the header lines (NULL-terminated),
 * plus X-Correlation-Id and a traceparent of its trace when correlation_id
 * is set, refusing link-local and metadata destinations unless
 * allow_link_local.
 * Returns 0 when an HTTP answer came (any status), else a negative code
 * with err (transient: connection, timeout). secret is redacted from any
 * message. */
int ai_http_post(const char *url, const char *const *headers, const char *body, const char *correlation_id,
		 int64_t timeout_ms, bool allow_link_local, const char *secret, struct ai_http_reply *out,
		 struct sl_err *err);
void ai_http_reply_free(struct ai_http_reply *r);
/* Maps an HTTP error answer to err: class by status (429/5xx transient, 401/
 * 403 auth, else permanent), the provider's message if the body has one. */
int ai_http_error(const char *provider, const struct ai_http_reply *r, const char *message, struct sl_err *err);

#endif
