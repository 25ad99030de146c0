/*
 * chat.c: the governed chat gateway. `POST /v1/chat/completions` speaks
 * OpenAI's chat completions format so any OpenAI client can use it, but the
 * `model` field names a route of models.yaml: the call goes through the
 * same cascade, fallback, breaker, cache, masking and budgets as an `ai`
 * step, and every model call is recorded (sl_store_ai_record). `GET
 * /v1/models` lists the routes as models.
 *
 * Errors are problem+json documents that also carry OpenAI's `error`
 * member ({message, type, param, code}), an RFC 9457 extension, so OpenAI
 * clients show the message and people see a problem.
 *
 * A streamed request (`stream: true`) gets the answer as server-sent
 * events in OpenAI's chunk format once the route has answered: the route
 * must see the whole answer first (validation, unmasking, the cache), so
 * streaming here changes the framing, not the time to the first token.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ai/ai.h"
#include "config/config.h"
#include "server/server_int.h"
#include "store/store.h"

#define CHAT_MESSAGES_MAX 256
#define CHAT_STREAM_PIECE 24 /* bytes of content per streamed chunk */
#define CHAT_MAX_TOKENS_MAX 32768

/* A problem that OpenAI clients read too. */
static void chat_error(struct srv_req *r, int status, const char *type, const char *code, const char *param,
		       const char *message)
{
	json_t *e = json_pack("{s:s, s:s, s:o, s:o}", "message", message, "type", type, "param",
			      param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
	srv_problem_with(r, status, message, "error", e);
}

/* A message's content as text: a string, or an array of {type: "text",
 * text} parts joined (other part types are refused). */
static int content_text(const json_t *content, char **out, const char **why)
{
	if (json_is_string(content)) {
		*out = sl_strdup(json_string_value(content));
		return 0;
	}
	if (json_is_null(content)) { /* an assistant turn that only called tools */
		*out = sl_strdup("");
		return 0;
	}
	if (!json_is_array(content)) {
		*why = "content must be a string or an array of text parts";
		return -1;
	}
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_FILE);
	size_t i;
	const json_t *part;
	json_array_foreach(content, i, part)
	{
		const char *type = json_string_value(json_object_get(part, "type"));
		const char *text = json_string_value(json_object_get(part, "text"));
		if (!type || strcmp(type, "text") != 0 || !text) {
			sl_buf_free(&b);
			*why = "only text content parts are supported through the gateway";
			return -1;
		}
		if (b.len)
			sl_buf_add(&b, "\n", 1);
		sl_buf_add(&b, text, strlen(text));
	}
	*out = sl_buf_detach(&b);
	return 0;
}

/* The request's messages as [{role, content: string}], or NULL with an
 * error answered. */
static json_t *chat_messages(struct srv_req *r, const json_t *body)
{
	const json_t *msgs = json_object_get(body, "messages");
	if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
		chat_error(r, 400, "invalid_request_error", NULL, "messages", "messages must be a non-empty array");
		return NULL;
	}
	if (json_array_size(msgs) > CHAT_MESSAGES_MAX) {
		chat_error(r, 400, "invalid_request_error", NULL, "messages", "too many messages (at most 256)");
		return NULL;
	}
	json_t *out = json_array();
	size_t i;
	const json_t *m;
	json_array_foreach(msgs, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		if (role && strcmp(role, "developer") == 0)
			role = "system"; /* OpenAI's newer name for it */
		if (!role || (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))) {
			char param[48];
			snprintf(param, sizeof param, "messages[%zu].role", i);
			chat_error(r, 400, "invalid_request_error", NULL, param,
				   "role must be system, developer, user or assistant");
			json_decref(out);
			return NULL;
		}
		char *text = NULL;
		const char *why = NULL;
		if (content_text(json_object_get(m, "content"), &text, &why)) {
			char param[48];
			snprintf(param, sizeof param, "messages[%zu].content", i);
			chat_error(r, 400, "invalid_request_error", NULL, param, why);
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, json_pack("{s:s, s:s}", "role", role, "content", text));
		free(text);
	}
	return out;
}

/* Refuses what the gateway does not do rather than silently ignoring it. */
static int chat_check_options(struct srv_req *r, const json_t *body, int *max_tokens)
{
	const json_t *tools = json_object_get(body, "tools");
	if (tools && !json_is_null(tools) && json_array_size(tools) > 0) {
		chat_error(r, 400, "invalid_request_error", "unsupported_parameter", "tools",
			   "tools are not supported through the gateway: use a workflow's ai step");
		return -1;
	}
	const json_t *n = json_object_get(body, "n");
	if (n && !json_is_null(n) && json_integer_value(n) != 1) {
		chat_error(r, 400, "invalid_request_error", "unsupported_parameter", "n", "n must be 1");
		return -1;
	}
	const char *names[] = {"max_completion_tokens", "max_tokens"};
	*max_tokens = 0;
	for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
		const json_t *v = json_object_get(body, names[i]);
		if (!v || json_is_null(v))
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > CHAT_MAX_TOKENS_MAX) {
			chat_error(r, 400, "invalid_request_error", NULL, names[i],
				   "must be an integer from 1 to 32768");
			return -1;
		}
		*max_tokens = (int)json_integer_value(v);
		break;
	}
	return 0;
}

/* Maps a failed route to an answer a client can act on. */
static void chat_failed(struct srv_req *r, int rc, const struct sl_err *err)
{
	const char *msg = err->msg[0] ? err->msg : sl_code_message(rc);
	switch (err->cls) {
	case SL_CLASS_BUDGET:
		chat_error(r, 429, "insufficient_quota", "insufficient_quota", NULL, msg);
		return;
	case SL_CLASS_TRANSIENT:
		r->retry_after = true;
		r->retry_after_s = err->retry_after_ms > 0 ? (int)((err->retry_after_ms + 999) / 1000) : 1;
		chat_error(r, 503, "server_error", "upstream_unavailable", NULL, msg);
		return;
	default:
		if (rc == SL_EINVAL)
			chat_error(r, 400, "invalid_request_error", NULL, NULL, msg);
		else
			chat_error(r, 502, "server_error", "upstream_error", NULL, msg);
		return;
	}
}

static json_t *chat_usage(const struct sl_ai_result *res)
{
	return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)res->tokens_in, "completion_tokens",
			 (json_int_t)res->tokens_out, "total_tokens", (json_int_t)(res->tokens_in + res->tokens_out));
}

/* What Sluice adds to OpenAI's answer: which model of the route answered,
 * what it cost, whether the cache did. */
static json_t *chat_extension(const struct sl_ai_result *res)
{
	return json_pack("{s:s, s:f, s:b, s:I}", "model", res->model, "cost_usd", res->cost_usd, "cache_hit",
			 res->cache_hit, "calls", (json_int_t)json_array_size(res->calls));
}

static void chat_reply(struct srv_req *r, const char *id, const char *route, const char *text,
		       const struct sl_ai_result *res)
{
	json_t *msg = json_pack("{s:s, s:s, s:n}", "role", "assistant", "content", text, "refusal");
	json_t *choice = json_pack("{s:i, s:o, s:n, s:s}", "index", 0, "message", msg, "logprobs", "finish_reason",
				   "stop");
	json_t *doc = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o, s:n, s:o}", "id", id, "object", "chat.completion",
				"created", (json_int_t)time(NULL), "model", route, "choices", choice, "usage",
				chat_usage(res), "system_fingerprint", "sluice", chat_extension(res));
	srv_reply_json(r, 200, doc);
}

static void sse_chunk(struct sl_buf *b, const char *id, const char *route, json_int_t created, json_t *delta,
		      const char *finish)
{
	json_t *choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "delta", delta, "logprobs", "finish_reason",
				   finish ? json_string(finish) : json_null());
	json_t *doc = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o]}", "id", id, "object", "chat.completion.chunk",
				"created", created, "model", route, "system_fingerprint", "sluice", "choices", choice);
	char *text = json_dumps(doc, JSON_COMPACT | SL_JSON_REAL);
	sl_buf_printf(b, "data: %s\n\n", text);
	free(text);
	json_decref(doc);
}

/* Length of the longest prefix of s, at most max bytes, that does not cut
 * a UTF-8 sequence. */
static size_t utf8_piece(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (s[n] == '\0')
		return n;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n ? n : strnlen(s, max);
}

static void chat_stream(struct srv_req *r, const char *id, const char *route, const char *text,
			const struct sl_ai_result *res, bool include_usage)
{
	json_int_t created = (json_int_t)time(NULL);
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_FILE);
	sse_chunk(&b, id, route, created, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL);
	for (const char *p = text; *p;) {
		size_t n = utf8_piece(p, CHAT_STREAM_PIECE);
		char *piece = sl_strndup(p, n);
		sse_chunk(&b, id, route, created, json_pack("{s:s}", "content", piece), NULL);
		free(piece);
		p += n;
	}
	sse_chunk(&b, id, route, created, json_object(), "stop");
	if (include_usage) {
		json_t *doc = json_pack("{s:s, s:s, s:I, s:s, s:[], s:o, s:o}", "id", id, "object",
					"chat.completion.chunk", "created", created, "model", route, "choices", "usage",
					chat_usage(res), "sluice", chat_extension(res));
		char *t = json_dumps(doc, JSON_COMPACT | SL_JSON_REAL);
		sl_buf_printf(&b, "data: %s\n\n", t);
		free(t);
		json_decref(doc);
	}
	sl_buf_printf(&b, "data: [DONE]\n\n");
	r->status = 200;
	free(r->resp_body);
	r->resp_body = sl_buf_detach(&b);
	r->resp_type = "text/event-stream";
}

/* Keeps what the calls cost; a failure to record is logged, not answered:
 * the client has its answer and the model was paid for. */
static void chat_record(struct sl_server *s, struct srv_req *r, const json_t *calls)
{
	if (!calls || json_array_size(calls) == 0)
		return;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_ai_record(sl_engine_store(s->e), srv_tenant_of_new(r), calls, &err) != 0)
		sl_log(SL_LOG_WARN, "server", "chat calls not recorded", "error", err.msg, "correlation_id", r->corr,
		       NULL);
}

static json_t *chat_body(struct srv_req *r)
{
	json_error_t je;
	json_t *body = json_loadb(sl_buf_str(&r->body), r->body.len, 0, &je);
	if (!body || !json_is_object(body)) {
		json_decref(body);
		chat_error(r, 400, "invalid_request_error", NULL, NULL, "the body must be a JSON object");
	}
	return body;
}

void srv_chat_completions(struct sl_server *s, struct srv_req *r)
{
	struct sl_ai *ai = sl_engine_project(s->e)->ai;
	json_t *body = chat_body(r);
	if (!body)
		return;
	const char *route = json_string_value(json_object_get(body, "model"));
	char held[256];
	json_t *messages = NULL;
	int max_tokens = 0;
	if (!route) {
		chat_error(r, 400, "invalid_request_error", NULL, "model", "model must name a route of models.yaml");
	} else if (!sl_ai_has_route(ai, route)) {
		char *m = sl_asprintf("no route '%.64s' in models.yaml (GET /v1/models lists them)", route);
		chat_error(r, 404, "invalid_request_error", "model_not_found", "model", m);
		free(m);
	} else if (sl_engine_route_paused(s->e, route, held, sizeof held)) {
		/* a kill switch: a client retries later, as for an overloaded model */
		char *m = sl_asprintf("the route's provider is paused (%s): sluice resume lifts it", held);
		r->retry_after = true;
		r->retry_after_s = 30;
		chat_error(r, 503, "server_error", "provider_paused", "model", m);
		free(m);
	} else if (chat_check_options(r, body, &max_tokens) == 0) {
		messages = chat_messages(r, body);
	}
	if (!messages) {
		json_decref(body);
		return;
	}
	struct sl_ai_request rq = {
		.task = SL_AI_CHAT,
		.route = route,
		.correlation_id = r->corr,
		.messages = messages,
		.max_tokens = max_tokens,
	};
	struct sl_ai_result res = {0};
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_ai_run(ai, &rq, &res, &err);
	chat_record(s, r, res.calls);
	if (rc) {
		chat_failed(r, rc, &err);
	} else {
		char id[SL_ID_MAX + 16];
		snprintf(id, sizeof id, "chatcmpl-%s", r->corr);
		const char *text = json_string_value(json_object_get(res.output, "text"));
		const json_t *so = json_object_get(body, "stream_options");
		if (json_is_true(json_object_get(body, "stream")))
			chat_stream(r, id, route, text ? text : "", &res,
				    json_is_true(json_object_get(so, "include_usage")));
		else
			chat_reply(r, id, route, text ? text : "", &res);
	}
	sl_ai_result_free(&res);
	json_decref(messages);
	json_decref(body);
}

void srv_models(struct sl_server *s, struct srv_req *r)
{
	const char *const *routes = sl_ai_routes(sl_engine_project(s->e)->ai);
	json_t *data = json_array();
	for (size_t i = 0; routes && routes[i]; i++)
		json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}", "id", routes[i], "object", "model",
						      "created", 0, "owned_by", "sluice"));
	srv_reply_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}
