/*
 * openai.c: any OpenAI-compatible chat completions API (OpenAI, xAI, vLLM,
 * llama.cpp server, Ollama, the built-in simulator). A structured answer
 * is asked with response_format json_schema; the text of
 * choices[0].message.content is the answer.
 */
#include <stdlib.h>
#include <string.h>

#include "ai/provider.h"

struct openai {
	char *base_url; /* ".../v1", no trailing slash */
	char *api_key;  /* owned secret, NULL when none */
	bool allow_link_local;
};

#define COMMON_PROVIDER_KEYS                                                                              \
	{"type", SL_CONF_STRING, true, "openai, anthropic or local"},                                     \
	{"residency", SL_CONF_STRING, false, "external (text leaves the machine: PII is masked) or local"}, \
	{"breaker", SL_CONF_OBJECT, false, "{failures: N, cooldown: 30s}: stop calling after N failures in a row"}

static const struct sl_conf_key openai_keys[] = {
	COMMON_PROVIDER_KEYS,
	{"base_url", SL_CONF_STRING, false, "the API root, default https://api.openai.com/v1"},
	{"api_key", SL_CONF_STRING, false, "env:NAME or file:PATH (sent as Authorization: Bearer)"},
	{"allow_link_local", SL_CONF_BOOL, false, "allow link-local and metadata addresses (default false)"},
	{NULL, 0, false, NULL},
};

const struct sl_conf_key sl_ai_provider_keys[] = {
	COMMON_PROVIDER_KEYS,
	{"base_url", SL_CONF_STRING, false, "openai: https://api.openai.com/v1; anthropic: https://api.anthropic.com"},
	{"api_key", SL_CONF_STRING, false, "env:NAME or file:PATH"},
	{"allow_link_local", SL_CONF_BOOL, false, "allow link-local and metadata addresses (default false)"},
	{NULL, 0, false, NULL},
};

static char *trimmed_url(const char *url, const char *def)
{
	char *u = sl_strdup(url ? url : def);
	size_t n = strlen(u);
	while (n && u[n - 1] == '/')
		u[--n] = '\0';
	return u;
}

static int openai_init(struct ai_provider *p, const json_t *cfg, struct sl_conf_ctx *ctx, const char *pointer)
{
	struct openai *o = sl_xcalloc(1, sizeof *o);
	p->priv = o;
	const char *url = sl_conf_str(cfg, "base_url", NULL);
	if (url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		char up[SL_CONF_PTR_MAX];
		sl_conf_ptr(up, pointer, "base_url");
		sl_conf_error(ctx, up, "base_url must start with http:// or https://");
		return -1;
	}
	o->base_url = trimmed_url(url, "https://api.openai.com/v1");
	o->allow_link_local = sl_conf_bool(cfg, "allow_link_local", false);
	return sl_conf_secret(ctx, cfg, pointer, "api_key", false, &o->api_key) ? -1 : 0;
}

static void openai_free(struct ai_provider *p)
{
	struct openai *o = p->priv;
	if (!o)
		return;
	free(o->base_url);
	sl_secret_free(o->api_key);
	free(o);
}

static json_t *request_body(const struct ai_call_in *in)
{
	json_t *b = json_pack("{s:s, s:O, s:i, s:i}", "model", in->model, "messages", in->messages, "max_tokens",
			      in->max_tokens, "temperature", 0);
	if (json_array_size(in->tools)) {
		json_t *tools = json_array();
		size_t i;
		json_t *t;
		json_array_foreach(in->tools, i, t) {
			json_array_append_new(tools, json_pack("{s:s, s:{s:O, s:O, s:O}}", "type", "function", "function",
							       "name", json_object_get(t, "name"), "description",
							       json_object_get(t, "description"), "parameters",
							       json_object_get(t, "parameters")));
		}
		json_object_set_new(b, "tools", tools);
		json_object_set_new(b, "tool_choice", json_string("auto"));
	}
	if (in->schema) {
		json_object_set_new(b, "response_format",
				    json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema", "json_schema", "name",
					      in->schema_name ? in->schema_name : "answer", "schema", in->schema,
					      "strict", 0));
	}
	return b;
}

/* The error message of an OpenAI error body {"error": {"message": ...}}. */
static const char *error_message(const json_t *body)
{
	const json_t *e = json_object_get(body, "error");
	const char *m = json_string_value(json_object_get(e, "message"));
	return m ? m : json_string_value(e);
}

/* message.tool_calls [{id, function: {name, arguments: JSON text}}] into
 * out->tool_calls [{id, name, input}]. Arguments that are not a JSON
 * object are passed on as {} with the text kept: the engine reports the
 * call back to the model as malformed. */
static int openai_tool_calls(const json_t *calls, struct ai_call_out *out, struct sl_err *err)
{
	if (!json_array_size(calls))
		return 0;
	out->tool_calls = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(calls, i, c) {
		const json_t *fn = json_object_get(c, "function");
		const char *name = json_string_value(json_object_get(fn, "name"));
		const char *args = json_string_value(json_object_get(fn, "arguments"));
		const char *id = json_string_value(json_object_get(c, "id"));
		if (!name)
			return sl_err_set(err, SL_ESTEP, SL_CLASS_TRANSIENT, "openai: a tool call has no function name");
		json_t *input = args ? json_loads(args, 0, NULL) : json_object();
		json_t *tc = json_pack("{s:s, s:s}", "id", id ? id : "", "name", name);
		if (json_is_object(input)) {
			json_object_set_new(tc, "input", input);
		} else {
			json_decref(input);
			json_object_set_new(tc, "input", json_object());
			json_object_set_new(tc, "malformed", json_string(args ? args : ""));
		}
		json_array_append_new(out->tool_calls, tc);
	}
	return 0;
}

/* Reads a chat.completion answer into out. */
int ai_openai_parse(const json_t *body, const struct ai_call_in *in, struct ai_call_out *out, struct sl_err *err)
{
	const json_t *choice = json_array_get(json_object_get(body, "choices"), 0);
	const json_t *msg = json_object_get(choice, "message");
	if (!json_is_object(msg))
		return sl_err_set(err, SL_ESTEP, SL_CLASS_TRANSIENT, "openai: the answer has no choices[0].message");
	const char *content = json_string_value(json_object_get(msg, "content"));
	const char *refusal = json_string_value(json_object_get(msg, "refusal"));
	if (in->tools && openai_tool_calls(json_object_get(msg, "tool_calls"), out, err))
		return err->code;
	if (!content && refusal)
		return sl_err_set(err, SL_ESTEP, SL_CLASS_PERMANENT, "openai: the model refused: %.200s", refusal);
	const json_t *usage = json_object_get(body, "usage");
	out->tokens_in = json_integer_value(json_object_get(usage, "prompt_tokens"));
	out->tokens_out = json_integer_value(json_object_get(usage, "completion_tokens"));
	const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
	snprintf(out->finish, sizeof out->finish, "%s", finish ? finish : "");
	out->text = sl_strdup(content ? content : "");
	if (in->schema) {
		json_error_t je;
		out->json = json_loads(out->text, 0, &je); /* NULL: task.c says why */
	}
	return 0;
}

static int openai_call(struct ai_provider *p, const struct ai_call_in *in, struct ai_call_out *out, struct sl_err *err)
{
	struct openai *o = p->priv;
	char *url = sl_asprintf("%s/chat/completions", o->base_url);
	char *auth = o->api_key ? sl_asprintf("Authorization: Bearer %s", o->api_key) : NULL;
	const char *headers[2] = {0};
	size_t nh = 0;
	if (auth)
		headers[nh++] = auth;
	json_t *req = request_body(in);
	char *body = json_dumps(req, JSON_COMPACT | SL_JSON_REAL);
	json_decref(req);
	struct ai_http_reply r;
	int rc = ai_http_post(url, headers, body, in->correlation_id, in->timeout_ms, o->allow_link_local, o->api_key, &r, err);
	if (!rc && (r.status < 200 || r.status > 299))
		rc = ai_http_error("openai", &r, error_message(r.body), err);
	else if (!rc && !json_is_object(r.body))
		rc = sl_err_set(err, SL_ESTEP, SL_CLASS_TRANSIENT, "openai: the answer is not JSON");
	else if (!rc)
		rc = ai_openai_parse(r.body, in, out, err);
	ai_http_reply_free(&r);
	free(body);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	free(url);
	return rc;
}

const struct ai_provider_type ai_openai_type = {
	.name = "openai",
	.external = true,
	.keys = openai_keys,
	.init_fn = openai_init,
	.can_fn = NULL, /* any task */
	.call_fn = openai_call,
	.free_fn = openai_free,
};
