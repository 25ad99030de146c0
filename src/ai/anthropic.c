/*
 * anthropic.c: the Anthropic Messages API. System messages become the
 * `system` parameter; a structured answer is asked the way Anthropic
 * documents it: one tool whose input_schema is the answer's schema, forced
 * with tool_choice, whose `input` is the answer.
 */
#include <stdlib.h>
#include <string.h>

#include "ai/provider.h"

#define ANTHROPIC_VERSION "2023-06-01"
#define ANSWER_TOOL "answer"

struct anthropic {
	char *base_url; /* no trailing slash; /v1/messages is appended */
	char *api_key;
	bool allow_link_local;
};

static const struct sl_conf_key anthropic_keys[] = {
	{"type", SL_CONF_STRING, true, "openai, anthropic or local"},
	{"residency", SL_CONF_STRING, false, "external (text leaves the machine: PII is masked) or local"},
	{"breaker", SL_CONF_OBJECT, false, "{failures: N, cooldown: 30s}"},
	{"base_url", SL_CONF_STRING, false, "the API root, default https://api.anthropic.com"},
	{"api_key", SL_CONF_STRING, false, "env:NAME or file:PATH (sent as x-api-key)"},
	{"allow_link_local", SL_CONF_BOOL, false, "allow link-local and metadata addresses (default false)"},
	{NULL, 0, false, NULL},
};

static int anthropic_init(struct ai_provider *p, const json_t *cfg, struct sl_conf_ctx *ctx, const char *pointer)
{
	struct anthropic *a = sl_xcalloc(1, sizeof *a);
	p->priv = a;
	const char *url = sl_conf_str(cfg, "base_url", "https://api.anthropic.com");
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		char up[SL_CONF_PTR_MAX];
		sl_conf_ptr(up, pointer, "base_url");
		sl_conf_error(ctx, up, "base_url must start with http:// or https://");
		return -1;
	}
	a->base_url = sl_strdup(url);
	size_t n = strlen(a->base_url);
	while (n && a->base_url[n - 1] == '/')
		a->base_url[--n] = '\0';
	if (n >= 3 && strcmp(a->base_url + n - 3, "/v1") == 0) /* given as ".../v1": the path adds it */
		a->base_url[n - 3] = '\0';
	a->allow_link_local = sl_conf_bool(cfg, "allow_link_local", false);
	return sl_conf_secret(ctx, cfg, pointer, "api_key", false, &a->api_key) ? -1 : 0;
}

static void anthropic_free(struct ai_provider *p)
{
	struct anthropic *a = p->priv;
	if (!a)
		return;
	free(a->base_url);
	sl_secret_free(a->api_key);
	free(a);
}

/* The text of an OpenAI-shaped content: a string, or text parts joined. */
static void content_text(const json_t *c, struct sl_buf *out)
{
	if (json_is_string(c)) {
		sl_buf_adds(out, json_string_value(c));
		return;
	}
	size_t i;
	const json_t *part;
	json_array_foreach(c, i, part)
	{
		const char *t = json_string_value(json_object_get(part, "text"));
		if (t)
			sl_buf_adds(out, t);
	}
}

/* OpenAI-shaped messages -> system text + Messages API messages, merging
 * neighbours of the same role (the API wants them alternating). */
static json_t *to_messages(const json_t *in, char **system)
{
	struct sl_buf sys;
	sl_buf_init(&sys, SL_BUF_MAX_HTTP_BODY);
	json_t *out = json_array();
	size_t i;
	const json_t *m;
	json_array_foreach(in, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		struct sl_buf text;
		sl_buf_init(&text, SL_BUF_MAX_HTTP_BODY);
		content_text(json_object_get(m, "content"), &text);
		if (role && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)) {
			if (sys.len)
				sl_buf_adds(&sys, "\n\n");
			sl_buf_adds(&sys, sl_buf_str(&text));
		} else {
			const char *r = role && strcmp(role, "assistant") == 0 ? "assistant" : "user";
			json_t *last = json_array_get(out, json_array_size(out) - 1);
			if (last && strcmp(json_string_value(json_object_get(last, "role")), r) == 0) {
				char *joined = sl_asprintf("%s\n\n%s", json_string_value(json_object_get(last, "content")),
							   sl_buf_str(&text));
				json_object_set_new(last, "content", json_string(joined));
				free(joined);
			} else {
				json_array_append_new(out, json_pack("{s:s, s:s}", "role", r, "content", sl_buf_str(&text)));
			}
		}
		sl_buf_free(&text);
	}
	*system = sys.len ? sl_strdup(sl_buf_str(&sys)) : NULL;
	sl_buf_free(&sys);
	return out;
}

/* One OpenAI-shaped message of a tool conversation as Messages API
 * content blocks: text, an assistant's tool_calls as tool_use blocks, a
 * "tool" message as a tool_result block (sent in a user turn). */
static json_t *tool_blocks(const json_t *m, const char *text)
{
	json_t *blocks = json_array();
	const char *role = json_string_value(json_object_get(m, "role"));
	if (role && strcmp(role, "tool") == 0) {
		const char *id = json_string_value(json_object_get(m, "tool_call_id"));
		json_array_append_new(blocks, json_pack("{s:s, s:s, s:s}", "type", "tool_result", "tool_use_id",
							id ? id : "", "content", text));
		return blocks;
	}
	if (*text)
		json_array_append_new(blocks, json_pack("{s:s, s:s}", "type", "text", "text", text));
	size_t i;
	json_t *tc;
	json_array_foreach(json_object_get(m, "tool_calls"), i, tc) {
		const json_t *fn = json_object_get(tc, "function");
		const char *args = json_string_value(json_object_get(fn, "arguments"));
		json_t *input = args ? json_loads(args, 0, NULL) : NULL;
		if (!json_is_object(input)) {
			json_decref(input);
			input = json_object();
		}
		const char *id = json_string_value(json_object_get(tc, "id"));
		const char *name = json_string_value(json_object_get(fn, "name"));
		json_array_append_new(blocks, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id ? id : "",
							"name", name ? name : "", "input", input));
	}
	return blocks;
}

/* A tool conversation: like to_messages, but every content is a list of
 * blocks, and neighbours of a role are merged by joining their blocks. */
static json_t *to_tool_messages(const json_t *in, char **system)
{
	struct sl_buf sys;
	sl_buf_init(&sys, SL_BUF_MAX_HTTP_BODY);
	json_t *out = json_array();
	size_t i;
	const json_t *m;
	json_array_foreach(in, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		struct sl_buf text;
		sl_buf_init(&text, SL_BUF_MAX_HTTP_BODY);
		content_text(json_object_get(m, "content"), &text);
		if (role && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)) {
			if (sys.len)
				sl_buf_adds(&sys, "\n\n");
			sl_buf_adds(&sys, sl_buf_str(&text));
		} else {
			const char *r = role && strcmp(role, "assistant") == 0 ? "assistant" : "user";
			json_t *blocks = tool_blocks(m, sl_buf_str(&text));
			json_t *last = json_array_get(out, json_array_size(out) - 1);
			if (last && strcmp(json_string_value(json_object_get(last, "role")), r) == 0)
				json_array_extend(json_object_get(last, "content"), blocks);
			else if (json_array_size(blocks))
				json_array_append_new(out, json_pack("{s:s, s:O}", "role", r, "content", blocks));
			json_decref(blocks);
		}
		sl_buf_free(&text);
	}
	*system = sys.len ? sl_strdup(sl_buf_str(&sys)) : NULL;
	sl_buf_free(&sys);
	return out;
}

static json_t *request_body(const struct ai_call_in *in)
{
	char *system = NULL;
	json_t *msgs = in->tools ? to_tool_messages(in->messages, &system) : to_messages(in->messages, &system);
	json_t *b = json_pack("{s:s, s:i, s:o, s:i}", "model", in->model, "max_tokens", in->max_tokens, "messages", msgs,
			      "temperature", 0);
	if (system)
		json_object_set_new(b, "system", json_string(system));
	free(system);
	if (json_array_size(in->tools)) {
		json_t *tools = json_array();
		size_t i;
		json_t *t;
		json_array_foreach(in->tools, i, t) {
			json_array_append_new(tools, json_pack("{s:O, s:O, s:O}", "name", json_object_get(t, "name"),
							       "description", json_object_get(t, "description"),
							       "input_schema", json_object_get(t, "parameters")));
		}
		json_object_set_new(b, "tools", tools);
		json_object_set_new(b, "tool_choice", json_pack("{s:s}", "type", "auto"));
	}
	if (in->schema) {
		json_object_set_new(b, "tools",
				    json_pack("[{s:s, s:s, s:O}]", "name", ANSWER_TOOL, "description",
					      "Give the answer in this shape.", "input_schema", in->schema));
		json_object_set_new(b, "tool_choice", json_pack("{s:s, s:s}", "type", "tool", "name", ANSWER_TOOL));
	}
	return b;
}

static const char *error_message(const json_t *body)
{
	return json_string_value(json_object_get(json_object_get(body, "error"), "message"));
}

int ai_anthropic_parse(const json_t *body, const struct ai_call_in *in, struct ai_call_out *out, struct sl_err *err)
{
	const json_t *content = json_object_get(body, "content");
	if (!json_is_array(content))
		return sl_err_set(err, SL_ESTEP, SL_CLASS_TRANSIENT, "anthropic: the answer has no content");
	struct sl_buf text;
	sl_buf_init(&text, SL_BUF_MAX_HTTP_BODY);
	size_t i;
	const json_t *block;
	json_array_foreach(content, i, block)
	{
		const char *type = json_string_value(json_object_get(block, "type"));
		const char *t = json_string_value(json_object_get(block, "text"));
		if (type && strcmp(type, "text") == 0 && t) /* a block without text adds nothing */
			sl_buf_adds(&text, t);
		else if (type && strcmp(type, "tool_use") == 0 && in->schema && !out->json)
			out->json = json_incref(json_object_get(block, "input"));
		else if (type && strcmp(type, "tool_use") == 0 && in->tools) {
			const char *name = json_string_value(json_object_get(block, "name"));
			const json_t *input = json_object_get(block, "input");
			if (!name)
				continue;
			if (!out->tool_calls)
				out->tool_calls = json_array();
			json_array_append_new(out->tool_calls,
					      json_pack("{s:s, s:s, s:o}", "id",
							json_string_value(json_object_get(block, "id"))
								? json_string_value(json_object_get(block, "id"))
								: "",
							"name", name,
							"input", json_is_object(input) ? json_incref((json_t *)input)
										       : json_object()));
		}
	}
	if (out->json) {
		out->text = json_dumps(out->json, JSON_COMPACT | SL_JSON_REAL);
	} else {
		out->text = sl_strdup(sl_buf_str(&text));
		if (in->schema) {
			json_error_t je;
			out->json = json_loads(out->text, 0, &je);
		}
	}
	sl_buf_free(&text);
	const json_t *usage = json_object_get(body, "usage");
	out->tokens_in = json_integer_value(json_object_get(usage, "input_tokens"));
	out->tokens_out = json_integer_value(json_object_get(usage, "output_tokens"));
	const char *stop = json_string_value(json_object_get(body, "stop_reason"));
	snprintf(out->finish, sizeof out->finish, "%s", stop ? stop : "");
	return 0;
}

static int anthropic_call(struct ai_provider *p, const struct ai_call_in *in, struct ai_call_out *out,
			  struct sl_err *err)
{
	struct anthropic *a = p->priv;
	char *url = sl_asprintf("%s/v1/messages", a->base_url);
	char *key = a->api_key ? sl_asprintf("x-api-key: %s", a->api_key) : NULL;
	const char *headers[3] = {"anthropic-version: " ANTHROPIC_VERSION};
	size_t nh = 1;
	if (key)
		headers[nh++] = key;
	json_t *req = request_body(in);
	char *body = json_dumps(req, JSON_COMPACT | SL_JSON_REAL);
	json_decref(req);
	struct ai_http_reply r;
	int rc = ai_http_post(url, headers, body, in->correlation_id, in->timeout_ms, a->allow_link_local, a->api_key, &r, err);
	if (!rc && (r.status < 200 || r.status > 299)) {
		rc = ai_http_error("anthropic", &r, error_message(r.body), err);
		if (r.status == 529 && err) /* overloaded */
			err->cls = SL_CLASS_TRANSIENT;
	} else if (!rc && !json_is_object(r.body)) {
		rc = sl_err_set(err, SL_ESTEP, SL_CLASS_TRANSIENT, "anthropic: the answer is not JSON");
	} else if (!rc) {
		rc = ai_anthropic_parse(r.body, in, out, err);
	}
	ai_http_reply_free(&r);
	free(body);
	if (key) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
	free(url);
	return rc;
}

const struct ai_provider_type ai_anthropic_type = {
	.name = "anthropic",
	.external = true,
	.keys = anthropic_keys,
	.init_fn = anthropic_init,
	.can_fn = NULL, /* any task */
	.call_fn = anthropic_call,
	.free_fn = anthropic_free,
};
