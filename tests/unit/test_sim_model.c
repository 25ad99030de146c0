/* test_sim_model.c: the model simulator (`sluice sim model`), started
 * in-process on port 0 and spoken to over HTTP with libcurl in the wire
 * formats of OpenAI chat completions and Anthropic Messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "contract/contract.h"
#include "sim/sim.h"
#include "util/util.h"

#include "sim_http.h"

#define AV "anthropic-version: 2023-06-01"

/* ---- helpers --------------------------------------------------------------------------- */

static struct sl_sim *start_model(const struct sl_sim_opts *extra)
{
	struct sl_sim_opts o = {.seed = 7};
	if (extra)
		o = *extra;
	o.kind = "model";
	struct sl_sim *s = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_sim_start(&o, &s, &err);
	if (rc)
		fprintf(stderr, "sl_sim_start: %s\n", err.msg);
	assert_int_equal(rc, 0);
	return s;
}

static void post(struct http *h, int port, const char *path, const char *body, const char *hd1, const char *hd2)
{
	req_full(h, port, "POST", path, body, strlen(body), hd1, hd2, 0);
}

static const char *jstr(const json_t *v, const char *key)
{
	return json_string_value(json_object_get(v, key));
}

static json_int_t jint(const json_t *v, const char *key)
{
	return json_integer_value(json_object_get(v, key));
}

/* The message of an OpenAI answer. */
static json_t *oa_message(const struct http *h)
{
	return json_object_get(json_array_get(json_object_get(h->json, "choices"), 0), "message");
}

static void assert_oa_error(const struct http *h, long status, const char *type, const char *code)
{
	assert_int_equal(h->status, status);
	json_t *e = json_object_get(h->json, "error");
	assert_non_null(jstr(e, "message"));
	assert_string_equal(jstr(e, "type"), type);
	assert_true(json_object_get(e, "param") != NULL);
	if (code)
		assert_string_equal(jstr(e, "code"), code);
	else
		assert_true(json_is_null(json_object_get(e, "code")));
}

static void assert_an_error(const struct http *h, long status, const char *type)
{
	assert_int_equal(h->status, status);
	assert_string_equal(jstr(h->json, "type"), "error");
	assert_string_equal(jstr(json_object_get(h->json, "error"), "type"), type);
	assert_non_null(jstr(json_object_get(h->json, "error"), "message"));
}

/* Whether doc is valid against schema (JSON text), by the contract module. */
static bool valid_against(const char *schema_text, const json_t *doc)
{
	struct sl_contracts *r = sl_contracts_new();
	json_t *js = json_loads(schema_text, 0, NULL);
	assert_non_null(js);
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_schema *sc = sl_contracts_compile(r, js, "answer.json", &err);
	assert_non_null(sc);
	bool ok = sl_schema_validate(sc, doc, NULL);
	json_decref(js);
	sl_contracts_free(r);
	return ok;
}

/* An SSE body split into events: names[i] ("" without an event: line) and data[i]. */
struct sse {
	json_t *names, *data; /* arrays; data holds JSON or, for [DONE], the string */
};

static void sse_parse(const char *body, struct sse *ev)
{
	ev->names = json_array();
	ev->data = json_array();
	const char *p = body;
	while (*p) {
		const char *end = strstr(p, "\n\n");
		assert_non_null(end); /* every event ends with a blank line */
		char name[64] = "";
		if (sl_str_startswith(p, "event: ")) {
			size_t n = strcspn(p + 7, "\n");
			snprintf(name, sizeof name, "%.*s", (int)n, p + 7);
			p += 7 + n + 1;
		}
		assert_true(sl_str_startswith(p, "data: "));
		p += 6;
		json_t *d = json_loadb(p, (size_t)(end - p), 0, NULL);
		json_array_append_new(ev->data, d ? d : json_stringn(p, (size_t)(end - p)));
		json_array_append_new(ev->names, json_string(name));
		p = end + 2;
	}
}

static void sse_free(struct sse *ev)
{
	json_decref(ev->names);
	json_decref(ev->data);
}

static const char *const CLASSIFY_SCHEMA =
	"{\"type\":\"object\",\"required\":[\"label\",\"confidence\",\"tags\",\"contact\"],"
	"\"additionalProperties\":false,\"properties\":{"
	"\"label\":{\"enum\":[\"technical\",\"billing\",\"other\"]},"
	"\"confidence\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
	"\"tags\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"string\",\"maxLength\":12}},"
	"\"count\":{\"type\":\"integer\",\"minimum\":3},"
	"\"contact\":{\"$ref\":\"#/$defs/contact\"}},"
	"\"$defs\":{\"contact\":{\"type\":\"object\",\"required\":[\"email\"],"
	"\"properties\":{\"email\":{\"type\":\"string\",\"format\":\"email\"},\"vip\":{\"type\":\"boolean\"}}}}}";

/* ---- OpenAI --------------------------------------------------------------------------------- */

static void test_openai_answer(void **state)
{
	(void)state;
	struct sl_sim *s = start_model(NULL);
	int port = sl_sim_port(s);
	struct http h;
	/* 14 + 17 bytes of message text: 8 prompt tokens */
	post(&h, port, "/v1/chat/completions",
	     "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"You are terse.\"},"
	     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Where is my order\"}]}],\"temperature\":0}",
	     NULL, NULL);
	assert_int_equal(h.status, 200);
	assert_string_equal(h.ctype, "application/json");
	assert_true(sl_str_startswith(jstr(h.json, "id"), "chatcmpl-"));
	assert_string_equal(jstr(h.json, "object"), "chat.completion");
	assert_string_equal(jstr(h.json, "model"), "gpt-4o-mini");
	assert_true(json_is_integer(json_object_get(h.json, "created")));
	assert_non_null(jstr(h.json, "system_fingerprint"));
	json_t *choice = json_array_get(json_object_get(h.json, "choices"), 0);
	assert_int_equal(jint(choice, "index"), 0);
	assert_string_equal(jstr(choice, "finish_reason"), "stop");
	assert_true(json_is_null(json_object_get(choice, "logprobs")));
	json_t *msg = oa_message(&h);
	assert_string_equal(jstr(msg, "role"), "assistant");
	assert_string_equal(jstr(msg, "content"), "Simulated answer: Where is my order");
	assert_true(json_is_null(json_object_get(msg, "refusal")));
	assert_null(json_object_get(msg, "tool_calls"));
	json_t *u = json_object_get(h.json, "usage");
	assert_int_equal(jint(u, "prompt_tokens"), 8);
	assert_int_equal(jint(u, "completion_tokens"), 9); /* ceil(35 / 4) */
	assert_int_equal(jint(u, "total_tokens"), 17);
	http_free(&h);

	/* the path without /v1, as some clients send it; a long message is cut at 60 characters */
	post(&h, port, "/chat/completions",
	     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
	     "\"0123456789012345678901234567890123456789012345678901234567890123456789\"}]}",
	     NULL, NULL);
	assert_int_equal(h.status, 200);
	assert_string_equal(jstr(oa_message(&h), "content"),
			    "Simulated answer: 012345678901234567890123456789012345678901234567890123456789");
	http_free(&h);

	/* max_tokens cuts the answer: finish_reason length */
	post(&h, port, "/v1/chat/completions",
	     "{\"model\":\"m\",\"max_tokens\":2,\"messages\":[{\"role\":\"user\",\"content\":\"tell me more\"}]}", NULL, NULL);
	assert_int_equal(h.status, 200);
	assert_string_equal(jstr(oa_message(&h), "content"), "Simulate");
	assert_string_equal(jstr(json_array_get(json_object_get(h.json, "choices"), 0), "finish_reason"), "length");
	assert_int_equal(jint(json_object_get(h.json, "usage"), "completion_tokens"), 2);
	http_free(&h);
	sl_sim_stop(s);
}

static void test_openai_json_schema(void **state)
{
	(void)state;
	struct sl_sim *s = start_model(NULL);
	int port = sl_sim_port(s);
	struct http h;
	char *body = sl_asprintf("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"My BILLING address is wrong\"}],"
				 "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"triage\","
				 "\"strict\":true,\"schema\":%s}}}",
				 CLASSIFY_SCHEMA);
	post(&h, port, "/v1/chat/completions", body, NULL, NULL);
	assert_int_equal(h.status, 200);
	char *content = sl_strdup(jstr(oa_message(&h), "content"));
	assert_non_null(content);
	json_t *doc = json_loads(content, 0, NULL);
	assert_non_null(doc);
	assert_true(valid_against(CLASSIFY_SCHEMA, doc));
	assert_string_equal(jstr(doc, "label"), "billing"); /* the enum value named in the message */
	assert_true(json_number_value(json_object_get(doc, "confidence")) == 0.9);
	assert_int_equal(jint(doc, "count"), 3);
	assert_string_equal(jstr(json_object_get(doc, "contact"), "email"), "sim@example.com");
	assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "tags"), 0)), "My BILLING a");
	json_decref(doc);
	http_free(&h);

	/* the same request again: the same document */
	post(&h, port, "/v1/chat/completions", body, NULL, NULL);
	assert_string_equal(jstr(oa_message(&h), "content"), content);
	http_free(&h);
	free(content);
	free(body);

	/* no enum value in the message: the first; json_object mode: an object */
	body = sl_asprintf("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hm\"}],"
			   "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"t\",\"schema\":%s}}}",
			   CLASSIFY_SCHEMA);
	post(&h, port, "/v1/chat/completions", body, NULL, NULL);
	doc = json_loads(jstr(oa_message(&h), "content"), 0, NULL);
	assert_string_equal(jstr(doc, "label"), "technical");
	json_decref(doc);
	http_free(&h);
	free(body);
	post(&h, port, "/v1/chat/completions",
	     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hm\"}],\"response_format\":{\"type\":\"json_object\"}}",
	     NULL, NULL);
	doc = json_loads(jstr(oa_message(&h), "content"), 0, NULL);
	assert_true(json_is_object(doc));
	json_decref(doc);
	http_free(&h);
	sl_sim_stop(s);
}

static const char *const WEATHER_TOOLS =
	"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"parameters\":{\"type\":\"object\"}}},"
	"{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
	"\"properties\":{\"city\":{\"type\":\"string\"},\"unit\":{\"enum\":[\"celsius\",\"fahrenheit\"]}},"
	"\"required\":[\"city\",\"unit\"]}}}]";

static void test_openai_tool_forced(void **state)
{
	(void)state;
	struct sl_sim *s = start_model(NULL);
	int port = sl_sim_port(s);
	struct http h;
	char *body = sl_asprintf("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Paris in fahrenheit\"}],%s,"
				 "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}}",
				 WEATHER_TOOLS);
	post(&h, port, "/v1/chat/completions", body, NULL, NULL);
	free(body);
	assert_int_equal(h.status, 200);
	json_t *msg = oa_message(&h);
	assert_true(json_is_null(json_object_get(msg, "content")));
	json_t *call = json_array_get(json_object_get(msg, "tool_calls"), 0);
	assert_true(sl_str_startswith(jstr(call, "id"), "call_"));
	assert_string_equal(jstr(call, "type"), "function");
	assert_string_equal(jstr(json_object_get(call, "function"), "name"), "get_weather");
	json_t *args = json_loads(jstr(json_object_get(call, "function"), "arguments"), 0, NULL);
	assert_string_equal(jstr(args, "unit"), "fahrenheit");
	assert_string_equal(jstr(args, "city"), "Paris in fahrenheit");
	json_decref(args);
	assert_string_equal(jstr(json_array_get(json_object_get(h.json, "choices"), 0), "finish_reason"), "tool_calls");
	http_free(&h);

	/* tool_choice auto: a text answer; a tool that does not exist: 400 */
	body = sl_asprintf("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],%s,\"tool_choice\":\"auto\"}",
			   WEATHER_TOOLS);
	post(&h, port, "/v1/chat/completions", body, NULL, NULL);
	free(body);
	assert_string_equal(jstr(oa_message(&h), "content"), "Simulated answer: hi");
	http_free(&h);
	body = sl_asprintf("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],%s,"
			   "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}",
			   WEATHER_TOOLS);
	post(&h, port, "/v1/chat/completions", body, NULL, NULL);
	free(body);
	assert_oa_error(&h, 400, "invalid_request_error", NULL);
	assert_string_equal(jstr(json_object_get(h.json, "error"), "param"), "tool_choice");
	http_free(&h);
	sl_sim_stop(s);
}

static void test_openai_stream(void **state)
{
	(void)state;
	struct sl_sim *s = start_model(NULL);
	int port = sl_sim_port(s);
	struct http h;
	post(&h, port, "/v1/chat/completions",
	     "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
	     "\"messages\":[{\"role\":\"user\",\"content\":\"Stream me a reply, señor\"}]}",
	     NULL, NULL);
	assert_int_equal(h.status, 200);
	assert_true(sl_str_startswith(h.ctype, "text/event-stream"));
	assert_true(sl_str_endswith(sl_buf_str(&h.body), "data: [DONE]\n\n"));
	struct sse ev;
	sse_parse(sl_buf_str(&h.body), &ev);
	size_t n = json_array_size(ev.data);
	assert_true(n >= 5); /* role, >= 1 piece, finish, usage, [DONE] */
	assert_string_equal(json_string_value(json_array_get(ev.data, n - 1)), "[DONE]");
	json_t *first = json_array_get(ev.data, 0);
	assert_string_equal(jstr(first, "object"), "chat.completion.chunk");
	assert_true(sl_str_startswith(jstr(first, "id"), "chatcmpl-"));
	json_t *delta0 = json_object_get(json_array_get(json_object_get(first, "choices"), 0), "delta");
	assert_string_equal(jstr(delta0, "role"), "assistant");
	struct sl_buf text;
	sl_buf_init(&text, 4096);
	for (size_t i = 1; i + 3 < n; i++) {
		json_t *c = json_array_get(json_object_get(json_array_get(ev.data, i), "choices"), 0);
		assert_true(json_is_null(json_object_get(c, "finish_reason")));
		assert_string_equal(jstr(json_array_get(ev.data, i), "id"), jstr(first, "id"));
		sl_buf_adds(&text, jstr(json_object_get(c, "delta"), "content"));
	}
	assert_string_equal(sl_buf_str(&text), "Simulated answer: Stream me a reply, señor");
	sl_buf_free(&text);
	json_t *last = json_array_get(json_object_get(json_array_get(ev.data, n - 3), "choices"), 0);
	assert_string_equal(jstr(last, "finish_reason"), "stop");
	json_t *usage_chunk = json_array_get(ev.data, n - 2);
	assert_int_equal(json_array_size(json_object_get(usage_chunk, "choices")), 0);
	assert_int_equal(jint(json_object_get(usage_chunk, "usage"), "completion_tokens"), 11);
	sse_free(&ev);
	http_free(&h);

	/* a forced tool streams its arguments; without include_usage no usage chunk */
	char *body = sl_asprintf("{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Oslo\"}],%s,"
				 "\"tool_choice\":\"required\"}",
				 WEATHER_TOOLS);
	post(&h, port, "/v1/chat/completions", body, NULL, NULL);
	free(body);
	sse_parse(sl_buf_str(&h.body), &ev);
	n = json_array_size(ev.data);
	struct sl_buf args;
	sl_buf_init(&args, 4096);
	for (size_t i = 0; i + 1 < n; i++) {
		json_t *c = json_array_get(json_object_get(json_array_get(ev.data, i), "choices"), 0);
		assert_non_null(c);
		json_t *call = json_array_get(json_object_get(json_object_get(c, "delta"), "tool_calls"), 0);
		if (i == 0)
			assert_string_equal(jstr(json_object_get(call, "function"), "name"), "lookup"); /* the first tool */
		if (call)
			sl_buf_adds(&args, jstr(json_object_get(call, "function"), "arguments"));
		if (i == n - 2)
			assert_string_equal(jstr(c, "finish_reason"), "tool_calls");
	}
	assert_string_equal(sl_buf_str(&args), "{}");
	sl_buf_free(&args);
	sse_free(&ev);
	http_free(&h);
	sl_sim_stop(s);
}

static void test_openai_errors(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.api_key = "sk-sim-1", .models = "gpt-a, gpt-b"};
	struct sl_sim *s = start_model(&o);
	int port = sl_sim_port(s);
	struct http h;
	const char *ok = "{\"model\":\"gpt-a\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
	post(&h, port, "/v1/chat/completions", ok, "Authorization: Bearer sk-wrong", NULL);
	assert_oa_error(&h, 401, "invalid_request_error", "invalid_api_key");
	http_free(&h);
	post(&h, port, "/v1/chat/completions", ok, NULL, NULL);
	assert_oa_error(&h, 401, "invalid_request_error", "invalid_api_key");
	http_free(&h);
	post(&h, port, "/v1/chat/completions", ok, "Authorization: Bearer sk-sim-1", NULL);
	assert_int_equal(h.status, 200);
	http_free(&h);

	post(&h, port, "/v1/chat/completions", "{\"model\":\"gpt-c\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	     "Authorization: Bearer sk-sim-1", NULL);
	assert_oa_error(&h, 404, "invalid_request_error", "model_not_found");
	http_free(&h);
	post(&h, port, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	     "Authorization: Bearer sk-sim-1", NULL);
	assert_oa_error(&h, 400, "invalid_request_error", NULL);
	assert_string_equal(jstr(json_object_get(h.json, "error"), "param"), "model");
	http_free(&h);
	post(&h, port, "/v1/chat/completions", "{\"model\":\"gpt-a\",\"messages\":[]}", "Authorization: Bearer sk-sim-1", NULL);
	assert_oa_error(&h, 400, "invalid_request_error", NULL);
	http_free(&h);
	post(&h, port, "/v1/chat/completions", "{\"model\":", "Authorization: Bearer sk-sim-1", NULL);
	assert_oa_error(&h, 400, "invalid_request_error", NULL);
	http_free(&h);
	post(&h, port, "/v1/chat/completions",
	     "{\"model\":\"gpt-a\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"type\":\"yaml\"}}",
	     "Authorization: Bearer sk-sim-1", NULL);
	assert_oa_error(&h, 400, "invalid_request_error", NULL);
	http_free(&h);

	req_full(&h, port, "GET", "/v1/models", NULL, 0, "Authorization: Bearer sk-sim-1", NULL, 0);
	assert_int_equal(h.status, 200);
	assert_string_equal(jstr(h.json, "object"), "list");
	assert_int_equal(json_array_size(json_object_get(h.json, "data")), 2);
	assert_string_equal(jstr(json_array_get(json_object_get(h.json, "data"), 1), "id"), "gpt-b");
	http_free(&h);
	req_full(&h, port, "GET", "/v1/nothing", NULL, 0, "Authorization: Bearer sk-sim-1", NULL, 0);
	assert_oa_error(&h, 404, "invalid_request_error", NULL);
	http_free(&h);

	/* injected faults answer in the same shape; a malformed answer is a cut-off completion */
	req(&h, port, "POST", "/_sim/faults", "{\"error_rate\":1}");
	http_free(&h);
	post(&h, port, "/v1/chat/completions", ok, "Authorization: Bearer sk-sim-1", NULL);
	assert_oa_error(&h, 503, "server_error", NULL);
	http_free(&h);
	req(&h, port, "POST", "/_sim/faults", "{\"error_rate\":0,\"malformed_rate\":1}");
	http_free(&h);
	post(&h, port, "/v1/chat/completions", ok, "Authorization: Bearer sk-sim-1", NULL);
	assert_int_equal(h.status, 200);
	assert_null(h.json);
	assert_true(sl_str_startswith(sl_buf_str(&h.body), "{\"id\":\"chatcmpl-"));
	http_free(&h);
	sl_sim_stop(s);
}

/* ---- Anthropic ----------------------------------------------------------------------------------- */

static void test_anthropic_message(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.api_key = "ak-1"};
	struct sl_sim *s = start_model(&o);
	int port = sl_sim_port(s);
	struct http h;
	const char *body = "{\"model\":\"claude-x\",\"max_tokens\":256,\"system\":\"Be brief.\","
			   "\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"},{\"role\":\"assistant\",\"content\":\"Hi\"},"
			   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is up?\"}]}]}";
	post(&h, port, "/v1/messages", body, "x-api-key: ak-1", AV);
	assert_int_equal(h.status, 200);
	assert_true(sl_str_startswith(jstr(h.json, "id"), "msg_"));
	assert_string_equal(jstr(h.json, "type"), "message");
	assert_string_equal(jstr(h.json, "role"), "assistant");
	assert_string_equal(jstr(h.json, "model"), "claude-x");
	assert_string_equal(jstr(h.json, "stop_reason"), "end_turn");
	assert_true(json_is_null(json_object_get(h.json, "stop_sequence")));
	json_t *block = json_array_get(json_object_get(h.json, "content"), 0);
	assert_string_equal(jstr(block, "type"), "text");
	assert_string_equal(jstr(block, "text"), "Simulated answer: What is up?");
	json_t *u = json_object_get(h.json, "usage");
	assert_int_equal(jint(u, "input_tokens"), 7); /* ceil((9 + 5 + 2 + 11) / 4) */
	assert_int_equal(jint(u, "output_tokens"), 8);
	http_free(&h);

	post(&h, port, "/v1/messages", body, "x-api-key: wrong", AV);
	assert_an_error(&h, 401, "authentication_error");
	http_free(&h);
	post(&h, port, "/v1/messages",
	     "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}", "x-api-key: ak-1", AV);
	assert_an_error(&h, 400, "invalid_request_error");
	assert_non_null(strstr(jstr(json_object_get(h.json, "error"), "message"), "max_tokens"));
	http_free(&h);
	post(&h, port, "/v1/messages", body, "x-api-key: ak-1", NULL);
	assert_an_error(&h, 400, "invalid_request_error");
	http_free(&h);
	post(&h, port, "/v1/messages",
	     "{\"model\":\"c\",\"max_tokens\":9,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "x-api-key: ak-1", AV);
	assert_an_error(&h, 400, "invalid_request_error");
	http_free(&h);

	/* Anthropic reports an injected failure as 529 overloaded */
	req(&h, port, "POST", "/_sim/faults", "{\"error_rate\":1}");
	http_free(&h);
	post(&h, port, "/v1/messages", body, "x-api-key: ak-1", AV);
	assert_an_error(&h, 529, "overloaded_error");
	http_free(&h);
	sl_sim_stop(s);
}

static const char *const ANSWER_TOOL =
	"\"tools\":[{\"name\":\"search\",\"input_schema\":{\"type\":\"object\"}},"
	"{\"name\":\"answer\",\"description\":\"Give the answer\",\"input_schema\":%s}],"
	"\"tool_choice\":{\"type\":\"tool\",\"name\":\"answer\"}";

static void test_anthropic_tool_use(void **state)
{
	(void)state;
	struct sl_sim *s = start_model(NULL);
	int port = sl_sim_port(s);
	struct http h;
	char *tools = sl_asprintf(ANSWER_TOOL, CLASSIFY_SCHEMA);
	char *body = sl_asprintf("{\"model\":\"c\",\"max_tokens\":500,\"messages\":[{\"role\":\"user\",\"content\":"
				 "\"The app crashes, a technical fault\"}],%s}",
				 tools);
	post(&h, port, "/v1/messages", body, AV, NULL);
	free(body);
	assert_int_equal(h.status, 200);
	assert_string_equal(jstr(h.json, "stop_reason"), "tool_use");
	json_t *block = json_array_get(json_object_get(h.json, "content"), 0);
	assert_string_equal(jstr(block, "type"), "tool_use");
	assert_true(sl_str_startswith(jstr(block, "id"), "toolu_"));
	assert_string_equal(jstr(block, "name"), "answer");
	json_t *input = json_object_get(block, "input");
	assert_true(valid_against(CLASSIFY_SCHEMA, input));
	assert_string_equal(jstr(input, "label"), "technical");
	http_free(&h);

	/* a stream: the event order of the Messages API, the JSON in input_json_delta pieces */
	body = sl_asprintf("{\"model\":\"c\",\"max_tokens\":500,\"stream\":true,\"messages\":[{\"role\":\"user\","
			   "\"content\":\"about billing\"}],%s}",
			   tools);
	post(&h, port, "/v1/messages", body, AV, NULL);
	free(body);
	free(tools);
	assert_true(sl_str_startswith(h.ctype, "text/event-stream"));
	struct sse ev;
	sse_parse(sl_buf_str(&h.body), &ev);
	size_t n = json_array_size(ev.names);
	struct sl_buf js;
	sl_buf_init(&js, 4096);
	for (size_t i = 3; i + 3 < n; i++) {
		assert_string_equal(json_string_value(json_array_get(ev.names, i)), "content_block_delta");
		json_t *d = json_object_get(json_array_get(ev.data, i), "delta");
		assert_string_equal(jstr(d, "type"), "input_json_delta");
		sl_buf_adds(&js, jstr(d, "partial_json"));
	}
	json_t *doc = json_loads(sl_buf_str(&js), 0, NULL);
	assert_non_null(doc);
	assert_true(valid_against(CLASSIFY_SCHEMA, doc));
	assert_string_equal(jstr(doc, "label"), "billing");
	json_decref(doc);
	sl_buf_free(&js);
	json_t *start = json_object_get(json_array_get(ev.data, 1), "content_block");
	assert_string_equal(jstr(start, "type"), "tool_use");
	assert_string_equal(jstr(start, "name"), "answer");
	json_t *md = json_array_get(ev.data, n - 2);
	assert_string_equal(jstr(json_object_get(md, "delta"), "stop_reason"), "tool_use");
	sse_free(&ev);
	http_free(&h);
	sl_sim_stop(s);
}

static void test_anthropic_stream(void **state)
{
	(void)state;
	struct sl_sim *s = start_model(NULL);
	int port = sl_sim_port(s);
	struct http h;
	post(&h, port, "/v1/messages",
	     "{\"model\":\"c\",\"max_tokens\":100,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Stream it please\"}]}",
	     AV, NULL);
	assert_int_equal(h.status, 200);
	struct sse ev;
	sse_parse(sl_buf_str(&h.body), &ev);
	size_t n = json_array_size(ev.names);
	const char *head[] = {"message_start", "content_block_start", "ping"};
	const char *tail[] = {"content_block_stop", "message_delta", "message_stop"};
	assert_true(n >= 7);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(json_string_value(json_array_get(ev.names, i)), head[i]);
		assert_string_equal(json_string_value(json_array_get(ev.names, n - 3 + i)), tail[i]);
	}
	struct sl_buf text;
	sl_buf_init(&text, 4096);
	for (size_t i = 0; i < n; i++) { /* each data's type is its event's name */
		json_t *d = json_array_get(ev.data, i);
		assert_string_equal(jstr(d, "type"), json_string_value(json_array_get(ev.names, i)));
		if (i >= 3 && i < n - 3) {
			assert_string_equal(jstr(json_object_get(d, "delta"), "type"), "text_delta");
			sl_buf_adds(&text, jstr(json_object_get(d, "delta"), "text"));
		}
	}
	assert_string_equal(sl_buf_str(&text), "Simulated answer: Stream it please");
	sl_buf_free(&text);
	json_t *msg = json_object_get(json_array_get(ev.data, 0), "message");
	assert_true(sl_str_startswith(jstr(msg, "id"), "msg_"));
	assert_int_equal(json_array_size(json_object_get(msg, "content")), 0);
	assert_int_equal(jint(json_object_get(msg, "usage"), "input_tokens"), 4);
	json_t *md = json_array_get(ev.data, n - 2);
	assert_string_equal(jstr(json_object_get(md, "delta"), "stop_reason"), "end_turn");
	assert_int_equal(jint(json_object_get(md, "usage"), "output_tokens"), 9);
	sse_free(&ev);
	http_free(&h);
	sl_sim_stop(s);
}

/* ---- rules ----------------------------------------------------------------------------------------------- */

static char *write_temp(const char *suffix, const char *text)
{
	char *path = sl_asprintf("/tmp/sluice-test-rules-%d-%u%s", (int)getpid(), (unsigned)sl_random_below(1u << 30),
				 suffix);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char *const RULES =
	"{\"rules\":["
	"{\"name\":\"flaky\",\"match\":{\"contains\":\"FLAKY\"},\"status\":503,\"times\":2},"
	"{\"match\":{\"contains\":\"retry me\"},\"reply\":{\"text\":\"this is not json\"},\"times\":1},"
	"{\"match\":{\"contains\":\"busy\"},\"status\":429},"
	"{\"match\":{\"contains\":\"slow\"},\"reply\":{\"text\":\"finally\"},\"latency_ms\":300},"
	"{\"match\":{\"model\":\"cheap\",\"contains\":\"refund\"},\"reply\":{\"json\":{\"label\":\"billing\"}},"
	"\"confidence\":0.4},"
	"{\"match\":{\"system_contains\":\"pirate\"},\"reply\":{\"text\":\"Arr\"}},"
	"{\"match\":{\"contains\":\"call it\"},\"reply\":{\"tool\":{\"name\":\"lookup\",\"input\":{\"id\":7}}}}"
	"]}";

static void chat(struct http *h, int port, const char *model, const char *text, const char *extra)
{
	char *body = sl_asprintf("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]%s}", model, text,
				 extra ? extra : "");
	post(h, port, "/v1/chat/completions", body, NULL, NULL);
	free(body);
}

static void test_rules(void **state)
{
	(void)state;
	char *path = write_temp(".json", RULES);
	struct sl_sim_opts o = {.rules_file = path};
	struct sl_sim *s = start_model(&o);
	int port = sl_sim_port(s);
	struct http h;

	/* fail twice, then the next rule (none here): the default answer */
	for (int i = 0; i < 2; i++) {
		chat(&h, port, "m", "this is flaky", NULL);
		assert_oa_error(&h, 503, "server_error", NULL);
		http_free(&h);
	}
	chat(&h, port, "m", "this is flaky", NULL);
	assert_int_equal(h.status, 200);
	http_free(&h);

	/* invalid first, valid on the retry */
	const char *schema = ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\","
			     "\"schema\":{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"}},\"required\":[\"ok\"]}}}";
	chat(&h, port, "m", "retry me", schema);
	assert_string_equal(jstr(oa_message(&h), "content"), "this is not json");
	http_free(&h);
	chat(&h, port, "m", "retry me", schema);
	assert_string_equal(jstr(oa_message(&h), "content"), "{\"ok\":true}");
	http_free(&h);

	chat(&h, port, "m", "too busy", NULL);
	assert_oa_error(&h, 429, "requests", "rate_limit_exceeded");
	assert_string_equal(h.retry_after, "1");
	http_free(&h);

	int64_t t0 = sl_mono_ms();
	chat(&h, port, "m", "slow one", NULL);
	assert_true(sl_mono_ms() - t0 >= 300);
	assert_string_equal(jstr(oa_message(&h), "content"), "finally");
	http_free(&h);

	/* model must match too; confidence goes into the JSON */
	chat(&h, port, "cheap", "a REFUND please", NULL);
	json_t *doc = json_loads(jstr(oa_message(&h), "content"), 0, NULL);
	assert_string_equal(jstr(doc, "label"), "billing");
	assert_true(json_number_value(json_object_get(doc, "confidence")) == 0.4);
	json_decref(doc);
	http_free(&h);
	chat(&h, port, "dear", "a refund please", NULL);
	assert_string_equal(jstr(oa_message(&h), "content"), "Simulated answer: a refund please");
	http_free(&h);

	post(&h, port, "/v1/chat/completions",
	     "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"Talk like a PIRATE\"},"
	     "{\"role\":\"user\",\"content\":\"hello\"}]}",
	     NULL, NULL);
	assert_string_equal(jstr(oa_message(&h), "content"), "Arr");
	http_free(&h);
	post(&h, port, "/v1/messages",
	     "{\"model\":\"c\",\"max_tokens\":10,\"system\":[{\"type\":\"text\",\"text\":\"a pirate\"}],"
	     "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}",
	     AV, NULL);
	assert_string_equal(jstr(json_array_get(json_object_get(h.json, "content"), 0), "text"), "Arr");
	http_free(&h);

	/* a tool reply, in both APIs */
	chat(&h, port, "m", "call it", NULL);
	json_t *fn = json_object_get(json_array_get(json_object_get(oa_message(&h), "tool_calls"), 0), "function");
	assert_string_equal(jstr(fn, "name"), "lookup");
	assert_string_equal(jstr(fn, "arguments"), "{\"id\":7}");
	http_free(&h);
	post(&h, port, "/v1/messages",
	     "{\"model\":\"c\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":\"call it\"}]}", AV, NULL);
	json_t *block = json_array_get(json_object_get(h.json, "content"), 0);
	assert_string_equal(jstr(block, "type"), "tool_use");
	assert_int_equal(jint(json_object_get(block, "input"), "id"), 7);
	http_free(&h);

	/* the rule use counts, and /_sim/reset starts them again */
	req(&h, port, "GET", "/_sim/rules", NULL);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(h.json, "used"), 0)), 2);
	http_free(&h);
	req(&h, port, "POST", "/_sim/reset", NULL);
	http_free(&h);
	chat(&h, port, "m", "flaky again", NULL);
	assert_int_equal(h.status, 503);
	http_free(&h);
	sl_sim_stop(s);
	unlink(path);
	free(path);
}

static void test_rules_replace(void **state)
{
	(void)state;
	struct sl_sim *s = start_model(NULL);
	int port = sl_sim_port(s);
	struct http h;
	chat(&h, port, "m", "hello", NULL);
	assert_string_equal(jstr(oa_message(&h), "content"), "Simulated answer: hello");
	http_free(&h);
	req(&h, port, "POST", "/_sim/rules", "[{\"match\":{\"contains\":\"hello\"},\"reply\":{\"text\":\"new rules\"}}]");
	assert_int_equal(h.status, 200);
	assert_int_equal(jint(h.json, "rules"), 1);
	http_free(&h);
	chat(&h, port, "m", "hello", NULL);
	assert_string_equal(jstr(oa_message(&h), "content"), "new rules");
	http_free(&h);

	/* a bad document changes nothing */
	req(&h, port, "POST", "/_sim/rules", "[{\"match\":{\"contains\":\"hello\"},\"reply\":{\"txt\":\"typo\"}}]");
	assert_int_equal(h.status, 422);
	assert_non_null(strstr(jstr(h.json, "detail"), "rules[0].reply"));
	http_free(&h);
	req(&h, port, "POST", "/_sim/rules", "{\"rules\":[{\"status\":200}]}");
	assert_int_equal(h.status, 422);
	http_free(&h);
	chat(&h, port, "m", "hello", NULL);
	assert_string_equal(jstr(oa_message(&h), "content"), "new rules");
	http_free(&h);
	req(&h, port, "POST", "/_sim/rules", "{\"rules\":[]}");
	assert_int_equal(h.status, 200);
	http_free(&h);
	chat(&h, port, "m", "hello", NULL);
	assert_string_equal(jstr(oa_message(&h), "content"), "Simulated answer: hello");
	http_free(&h);
	sl_sim_stop(s);
}

static void test_rules_files(void **state)
{
	(void)state;
	/* YAML by its extension */
	char *path = write_temp(".yaml", "rules:\n  - match: {contains: ping}\n    reply: {text: pong}\n");
	struct sl_sim_opts o = {.rules_file = path};
	struct sl_sim *s = start_model(&o);
	struct http h;
	chat(&h, sl_sim_port(s), "m", "ping", NULL);
	assert_string_equal(jstr(oa_message(&h), "content"), "pong");
	http_free(&h);
	sl_sim_stop(s);
	unlink(path);
	free(path);

	/* errors name the file and the place */
	struct sl_err err;
	path = write_temp(".json", "{\"rules\": [\n  {\"reply\": }\n]}");
	o = (struct sl_sim_opts){.kind = "model", .rules_file = path};
	assert_int_equal(sl_sim_start(&o, &s, &err), SL_EINVAL);
	assert_null(s);
	char *want = sl_asprintf("%s:2:", path);
	assert_non_null(strstr(err.msg, want));
	free(want);
	unlink(path);
	free(path);
	path = write_temp(".json", "[{\"match\":{\"contains\":\"x\"},\"times\":0}]");
	o.rules_file = path;
	assert_int_equal(sl_sim_start(&o, &s, &err), SL_EINVAL);
	assert_non_null(strstr(err.msg, "rules[0].times"));
	unlink(path);
	free(path);
	o.rules_file = "/nonexistent/rules.json";
	assert_int_equal(sl_sim_start(&o, &s, &err), SL_EINVAL);
	o = (struct sl_sim_opts){.kind = "model", .models = " , "};
	assert_int_equal(sl_sim_start(&o, &s, &err), SL_EINVAL);
}

/* ---- faults, limits and the call log ------------------------------------------------------------------------- */

static void test_rate_limit(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.rate_per_s = 0.5, .burst = 1};
	struct sl_sim *s = start_model(&o);
	int port = sl_sim_port(s);
	struct http h;
	chat(&h, port, "m", "one", NULL);
	assert_int_equal(h.status, 200);
	http_free(&h);
	chat(&h, port, "m", "two", NULL);
	assert_oa_error(&h, 429, "requests", "rate_limit_exceeded");
	int64_t ra = 0;
	assert_int_equal(sl_parse_i64(h.retry_after, &ra), 0);
	assert_true(ra >= 1 && ra <= 2);
	http_free(&h);
	post(&h, port, "/v1/messages", "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	     AV, NULL);
	assert_an_error(&h, 429, "rate_limit_error");
	assert_true(h.retry_after[0] != '\0');
	http_free(&h);
	sl_sim_stop(s);
}

static void test_calls(void **state)
{
	(void)state;
	struct sl_sim_opts o = {.api_key = "k"};
	struct sl_sim *s = start_model(&o);
	int port = sl_sim_port(s);
	struct http h;
	post(&h, port, "/v1/chat/completions",
	     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"mail [EMAIL_1] about it\"}]}",
	     "Authorization: Bearer k", NULL);
	http_free(&h);
	post(&h, port, "/v1/messages",
	     "{\"model\":\"c\",\"max_tokens\":5,\"stream\":true,\"system\":\"sys\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	     "x-api-key: k", AV);
	http_free(&h);
	post(&h, port, "/v1/chat/completions", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a secret\"}]}",
	     "Authorization: Bearer nope", NULL);
	http_free(&h);

	req(&h, port, "GET", "/_sim/calls", NULL);
	assert_int_equal(h.status, 200);
	json_t *calls = json_object_get(h.json, "calls");
	assert_int_equal(json_array_size(calls), 3);
	json_t *c0 = json_array_get(calls, 0), *c1 = json_array_get(calls, 1), *c2 = json_array_get(calls, 2);
	assert_string_equal(jstr(c0, "api"), "openai");
	assert_string_equal(jstr(c0, "model"), "m");
	assert_int_equal(jint(c0, "status"), 200);
	assert_true(json_is_false(json_object_get(c0, "stream")));
	assert_int_equal(jint(c0, "tokens_in"), 6);
	assert_int_equal(jint(c0, "tokens_out"), 11);
	json_t *m0 = json_array_get(json_object_get(c0, "messages"), 0);
	assert_string_equal(jstr(m0, "content"), "mail [EMAIL_1] about it");
	assert_string_equal(jstr(json_object_get(c0, "request"), "model"), "m");
	assert_string_equal(jstr(c1, "api"), "anthropic");
	assert_true(json_is_true(json_object_get(c1, "stream")));
	assert_string_equal(json_string_value(json_object_get(c1, "system")), "sys");
	assert_int_equal(jint(c2, "status"), 401); /* refused, but it reached the simulator */
	assert_string_equal(jstr(json_array_get(json_object_get(c2, "messages"), 0), "content"), "a secret");
	http_free(&h);

	req(&h, port, "DELETE", "/_sim/calls", NULL);
	assert_int_equal(h.status, 200);
	http_free(&h);
	req(&h, port, "GET", "/_sim/calls", NULL);
	assert_int_equal(json_array_size(json_object_get(h.json, "calls")), 0);
	http_free(&h);
	req(&h, port, "PUT", "/_sim/calls", NULL);
	assert_int_equal(h.status, 405);
	http_free(&h);
	sl_sim_stop(s);
}

/* The log keeps the newest MODEL_CALLS_MAX (1000) requests. */
static void test_calls_bounded(void **state)
{
	(void)state;
	struct sl_sim *s = start_model(NULL);
	int port = sl_sim_port(s);
	struct http h;
	char text[32];
	for (int i = 0; i < 1003; i++) {
		snprintf(text, sizeof text, "n%d", i);
		chat(&h, port, "m", text, NULL);
		http_free(&h);
	}
	req(&h, port, "GET", "/_sim/calls", NULL);
	json_t *calls = json_object_get(h.json, "calls");
	assert_int_equal(json_array_size(calls), 1000);
	assert_string_equal(jstr(json_array_get(json_object_get(json_array_get(calls, 0), "messages"), 0), "content"), "n3");
	http_free(&h);
	sl_sim_stop(s);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openai_answer),
		cmocka_unit_test(test_openai_json_schema),
		cmocka_unit_test(test_openai_tool_forced),
		cmocka_unit_test(test_openai_stream),
		cmocka_unit_test(test_openai_errors),
		cmocka_unit_test(test_anthropic_message),
		cmocka_unit_test(test_anthropic_tool_use),
		cmocka_unit_test(test_anthropic_stream),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_rules_replace),
		cmocka_unit_test(test_rules_files),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_calls),
		cmocka_unit_test(test_calls_bounded),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
