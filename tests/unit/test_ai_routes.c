/*
 * test_ai_routes.c: routes against the real model simulator (sluice sim
 * model, started in-process on a free port): cascade escalation, fallback
 * on 5xx and 429, the circuit breaker, cache hits, budgets, an invalid
 * answer retried then sent to review, masking (the simulator's call log
 * holds no masked value), cost sums, and both wire formats.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ai/ai.h"
#include "sim/sim.h"
#include "sim_http.h"

static struct sl_sim *sim;
static int port;

static int group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct sl_sim_opts o = {.kind = "model", .seed = 1};
	struct sl_err err;
	if (sl_sim_start(&o, &sim, &err) != 0) {
		fprintf(stderr, "model sim: %s\n", err.msg);
		return -1;
	}
	port = sl_sim_port(sim);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	sl_sim_stop(sim);
	curl_global_cleanup();
	return 0;
}

/* Replaces the simulator's rules and forgets its calls. */
static void sim_rules(const char *rules)
{
	struct http h;
	req(&h, port, "POST", "/_sim/rules", rules);
	if (h.status != 200)
		fail_msg("POST /_sim/rules: %ld %s", h.status, sl_buf_str(&h.body));
	http_free(&h);
	req(&h, port, "DELETE", "/_sim/calls", NULL);
	http_free(&h);
}

/* The simulator's call log (owned). */
static json_t *sim_calls(void)
{
	struct http h;
	req(&h, port, "GET", "/_sim/calls", NULL);
	json_t *calls = json_incref(json_object_get(h.json, "calls"));
	if (!calls)
		calls = json_incref(h.json);
	http_free(&h);
	assert_true(json_is_array(calls));
	return calls;
}

/* models.yaml for the tests: an openai and an anthropic provider on the
 * simulator; models cheap, big, other (openai) and claude (anthropic);
 * route r is ROUTE (a JSON object text). */
static struct sl_ai *mkai(const char *route, const char *extra_provider_keys)
{
	char *doc_text = sl_asprintf(
		"{\"providers\": {"
		"  \"sim\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\"%s},"
		"  \"anth\": {\"type\": \"anthropic\", \"base_url\": \"http://127.0.0.1:%d\"}},"
		" \"models\": {"
		"  \"cheap\": {\"provider\": \"sim\", \"price\": {\"input\": 1, \"output\": 2}},"
		"  \"big\": {\"provider\": \"sim\", \"price\": {\"input\": 10, \"output\": 30}},"
		"  \"other\": {\"provider\": \"sim\", \"price\": {\"input\": 5, \"output\": 5}},"
		"  \"claude\": {\"provider\": \"anth\", \"model\": \"claude-test\", \"price\": {\"input\": 3, \"output\": 15}}},"
		" \"routes\": {\"r\": %s}}",
		port, extra_provider_keys ? extra_provider_keys : "", port, route);
	json_error_t je;
	json_t *doc = json_loads(doc_text, 0, &je);
	if (!doc)
		fail_msg("bad models doc: %s: %s", je.text, doc_text);
	free(doc_text);
	struct sl_conf_ctx ctx = {.file = "models.yaml", .project_dir = "."};
	struct sl_ai *ai = sl_ai_new(doc, &ctx, ".");
	json_decref(doc);
	assert_non_null(ai);
	return ai;
}

static const char *labels[] = {"billing", "bug", "account"};

static int classify(struct sl_ai *ai, const char *text, struct sl_ai_result *res, struct sl_err *err)
{
	struct sl_ai_request rq = {
		.task = SL_AI_CLASSIFY,
		.route = "r",
		.workflow = "wf",
		.prompt = text,
		.prompt_hash = "abc",
		.labels = labels,
		.nlabels = 3,
	};
	sl_err_clear(err);
	return sl_ai_run(ai, &rq, res, err);
}

static const char *call_field(const struct sl_ai_result *res, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(res->calls, i), key));
}

static void test_cascade_escalates_when_unsure(void **state)
{
	(void)state;
	sim_rules("[{\"match\": {\"model\": \"cheap\"}, \"reply\": {\"json\": {\"label\": \"bug\"}}, \"confidence\": 0.4},"
		  " {\"match\": {\"model\": \"big\"}, \"reply\": {\"json\": {\"label\": \"billing\"}}, \"confidence\": 0.95}]");
	struct sl_ai *ai = mkai("{\"models\": [\"cheap\", \"big\"], \"escalate_below\": 0.7}", NULL);
	struct sl_ai_result res;
	struct sl_err err;
	assert_int_equal(classify(ai, "My invoice is wrong", &res, &err), 0);
	assert_string_equal(res.model, "big");
	assert_string_equal(json_string_value(json_object_get(res.output, "label")), "billing");
	assert_int_equal(json_array_size(res.calls), 2);
	assert_string_equal(call_field(&res, 0, "outcome"), "low_confidence");
	assert_string_equal(call_field(&res, 1, "outcome"), "ok");
	assert_false(res.review);
	sl_ai_result_free(&res);
	/* a confident cheap answer stops the cascade */
	sim_rules("[{\"match\": {\"model\": \"cheap\"}, \"reply\": {\"json\": {\"label\": \"bug\"}}, \"confidence\": 0.9}]");
	assert_int_equal(classify(ai, "The app crashes", &res, &err), 0);
	assert_string_equal(res.model, "cheap");
	assert_int_equal(json_array_size(res.calls), 1);
	sl_ai_result_free(&res);
	json_t *calls = sim_calls();
	assert_int_equal(json_array_size(calls), 1);
	json_decref(calls);
	sl_ai_free(ai);
}

static void test_fallback_on_5xx_and_429(void **state)
{
	(void)state;
	struct sl_ai *ai = mkai("{\"models\": [\"cheap\", \"big\"]}", NULL);
	const char *statuses[] = {"500", "503", "429"};
	for (size_t i = 0; i < SL_ARRAY_LEN(statuses); i++) {
		char *rules = sl_asprintf("[{\"match\": {\"model\": \"cheap\"}, \"status\": %s},"
					  " {\"match\": {\"model\": \"big\"}, \"reply\": {\"json\": {\"label\": \"bug\"}}}]",
					  statuses[i]);
		sim_rules(rules);
		free(rules);
		struct sl_ai_result res;
		struct sl_err err;
		assert_int_equal(classify(ai, "It crashes on start", &res, &err), 0);
		assert_string_equal(res.model, "big");
		assert_string_equal(call_field(&res, 0, "outcome"), "error");
		assert_string_equal(call_field(&res, 0, "error_class"), "transient");
		sl_ai_result_free(&res);
	}
	/* a 400 is not a fallback class by default: the route fails */
	sim_rules("[{\"match\": {\"model\": \"cheap\"}, \"status\": 400}]");
	struct sl_ai_result res;
	struct sl_err err;
	assert_int_not_equal(classify(ai, "x", &res, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	assert_int_equal(json_array_size(res.calls), 1);
	sl_ai_result_free(&res);
	/* every model failing with a transient error is transient (retry later) */
	sim_rules("[{\"status\": 503}]");
	assert_int_not_equal(classify(ai, "x", &res, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_TRANSIENT);
	sl_ai_result_free(&res);
	sl_ai_free(ai);
}

static void test_breaker_opens(void **state)
{
	(void)state;
	sim_rules("[{\"match\": {\"model\": \"cheap\"}, \"status\": 500}]");
	/* cheap and big share the provider: route cheap then claude (another provider) */
	struct sl_ai *ai = mkai("{\"models\": [\"cheap\", \"claude\"]}", ", \"breaker\": {\"failures\": 2, \"cooldown\": \"1h\"}");
	for (int i = 0; i < 4; i++) {
		struct sl_ai_result res;
		struct sl_err err;
		assert_int_equal(classify(ai, "billing question", &res, &err), 0);
		assert_string_equal(res.model, "claude");
		assert_string_equal(call_field(&res, 0, "outcome"), i < 2 ? "error" : "skipped");
		sl_ai_result_free(&res);
	}
	json_t *calls = sim_calls();
	size_t to_cheap = 0, i;
	json_t *c;
	json_array_foreach(calls, i, c)
		to_cheap += json_string_value(json_object_get(c, "model")) &&
			    strcmp(json_string_value(json_object_get(c, "model")), "cheap") == 0;
	assert_int_equal(to_cheap, 2); /* the open breaker kept the last two away */
	json_decref(calls);
	sl_ai_free(ai);
}

static void test_cache_hits(void **state)
{
	(void)state;
	sim_rules("[{\"reply\": {\"json\": {\"label\": \"account\"}}, \"confidence\": 0.9}]");
	struct sl_ai *ai = mkai("{\"models\": [\"cheap\"], \"cache\": \"1h\"}", NULL);
	struct sl_ai_result a, b, c;
	struct sl_err err;
	assert_int_equal(classify(ai, "I cannot log in", &a, &err), 0);
	assert_int_equal(classify(ai, "I cannot log in", &b, &err), 0);
	assert_int_equal(classify(ai, "Something else", &c, &err), 0);
	assert_false(a.cache_hit);
	assert_true(b.cache_hit);
	assert_false(c.cache_hit);
	assert_true(json_equal(json_object_get(a.output, "label"), json_object_get(b.output, "label")));
	assert_true(json_is_true(json_object_get(json_array_get(b.calls, 0), "cache_hit")));
	assert_true(b.cost_usd == 0);
	json_t *calls = sim_calls();
	assert_int_equal(json_array_size(calls), 2);
	json_decref(calls);
	sl_ai_result_free(&a);
	sl_ai_result_free(&b);
	sl_ai_result_free(&c);
	sl_ai_free(ai);
}

static void test_budget_exhausted(void **state)
{
	(void)state;
	sim_rules("[{\"reply\": {\"json\": {\"label\": \"bug\"}}}]");
	/* big costs $10 + $30 per million tokens: a call is well over $0.0001 */
	struct sl_ai *ai = mkai("{\"models\": [\"big\"], \"budget\": {\"usd\": 0.0001, \"per\": \"total\"}}", NULL);
	struct sl_ai_result res;
	struct sl_err err;
	assert_int_equal(classify(ai, "first call spends the budget", &res, &err), 0);
	assert_true(res.cost_usd > 0.0001);
	sl_ai_result_free(&res);
	assert_int_not_equal(classify(ai, "second call", &res, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_BUDGET);
	sl_ai_result_free(&res);
	json_t *calls = sim_calls();
	assert_int_equal(json_array_size(calls), 1); /* the second never left */
	json_decref(calls);
	/* spend seeded from the store counts too */
	sl_ai_free(ai);
	ai = mkai("{\"models\": [\"big\"], \"budget\": {\"usd\": 1, \"per\": \"day\"}}", NULL);
	sl_ai_budget_seed(ai, "route", "r", 1.5);
	assert_int_not_equal(classify(ai, "already spent", &res, &err), 0);
	assert_int_equal(err.cls, SL_CLASS_BUDGET);
	sl_ai_result_free(&res);
	sl_ai_free(ai);
}

static void test_invalid_retried_then_review(void **state)
{
	(void)state;
	struct sl_ai *ai = mkai("{\"models\": [\"cheap\"]}", NULL);
	/* invalid once: the retry carries the validation error and succeeds */
	sim_rules("[{\"reply\": {\"json\": {\"label\": \"spam\"}}, \"times\": 1},"
		  " {\"reply\": {\"json\": {\"label\": \"bug\"}}, \"confidence\": 0.8}]");
	struct sl_ai_result res;
	struct sl_err err;
	assert_int_equal(classify(ai, "crash", &res, &err), 0);
	assert_false(res.review);
	assert_string_equal(json_string_value(json_object_get(res.output, "label")), "bug");
	assert_int_equal(json_array_size(res.calls), 2);
	assert_string_equal(call_field(&res, 0, "outcome"), "invalid");
	sl_ai_result_free(&res);
	json_t *calls = sim_calls();
	json_t *second = json_object_get(json_array_get(calls, 1), "request");
	if (!second)
		second = json_array_get(calls, 1);
	char *dump = json_dumps(second, JSON_COMPACT);
	assert_non_null(strstr(dump, "not valid")); /* the model was told why */
	free(dump);
	json_decref(calls);
	/* invalid twice: review, with the reason */
	sim_rules("[{\"reply\": {\"json\": {\"label\": \"spam\"}}}]");
	assert_int_equal(classify(ai, "crash", &res, &err), 0);
	assert_true(res.review);
	assert_non_null(strstr(res.review_reason, "spam"));
	assert_int_equal(json_array_size(res.calls), 2);
	sl_ai_result_free(&res);
	/* below min_confidence: review */
	sim_rules("[{\"reply\": {\"json\": {\"label\": \"bug\"}}, \"confidence\": 0.3}]");
	struct sl_ai_request rq = {.task = SL_AI_CLASSIFY, .route = "r", .prompt = "crash", .prompt_hash = "",
				   .labels = labels, .nlabels = 3, .min_confidence = 0.5};
	assert_int_equal(sl_ai_run(ai, &rq, &res, &err), 0);
	assert_true(res.review);
	assert_non_null(strstr(res.review_reason, "min_confidence"));
	sl_ai_result_free(&res);
	sl_ai_free(ai);
}

static void test_masking(void **state)
{
	(void)state;
	sim_rules("[{\"reply\": {\"text\": \"Dear [PII_1], we will call [PII_2].\"}}]");
	struct sl_ai *ai = mkai("{\"models\": [\"cheap\"]}", NULL);
	json_t *pii = json_pack("[s]", "Margaret Hamilton");
	const char *text = "From Margaret Hamilton <margaret@example.com>, phone +44 20 7946 0958, "
			   "IBAN GB82 WEST 1234 5698 7654 32: please draft a reply.";
	struct sl_ai_request rq = {.task = SL_AI_DRAFT, .route = "r", .prompt = text, .prompt_hash = "",
				   .pii = pii};
	struct sl_ai_result res;
	struct sl_err err;
	assert_int_equal(sl_ai_run(ai, &rq, &res, &err), 0);
	/* the answer is re-filled locally */
	const char *answer = json_string_value(json_object_get(res.output, "text"));
	assert_non_null(strstr(answer, "Dear Margaret Hamilton"));
	/* the provider never saw a masked value; the record keeps the masked input */
	json_t *calls = sim_calls();
	char *seen = json_dumps(calls, JSON_COMPACT);
	const char *secrets[] = {"Margaret", "margaret@example.com", "7946", "GB82"};
	for (size_t i = 0; i < SL_ARRAY_LEN(secrets); i++)
		if (strstr(seen, secrets[i]))
			fail_msg("the simulator saw '%s'", secrets[i]);
	assert_non_null(strstr(seen, "[PII_"));
	free(seen);
	json_decref(calls);
	const char *recorded = call_field(&res, 0, "input");
	assert_null(strstr(recorded, "Margaret"));
	sl_ai_result_free(&res);
	json_decref(pii);
	sl_ai_free(ai);
}

static void test_cost_sums(void **state)
{
	(void)state;
	sim_rules("[{\"match\": {\"model\": \"cheap\"}, \"reply\": {\"json\": {\"label\": \"bug\"}}, \"confidence\": 0.2},"
		  " {\"match\": {\"model\": \"big\"}, \"reply\": {\"json\": {\"label\": \"bug\"}}, \"confidence\": 0.9}]");
	struct sl_ai *ai = mkai("{\"models\": [\"cheap\", \"big\"], \"escalate_below\": 0.5}", NULL);
	struct sl_ai_result res;
	struct sl_err err;
	assert_int_equal(classify(ai, "The export button does nothing", &res, &err), 0);
	double sum = 0;
	int64_t tin = 0, tout = 0;
	size_t i;
	json_t *c;
	json_array_foreach(res.calls, i, c)
	{
		int64_t a = json_integer_value(json_object_get(c, "tokens_in"));
		int64_t b = json_integer_value(json_object_get(c, "tokens_out"));
		double price_in = i == 0 ? 1 : 10, price_out = i == 0 ? 2 : 30;
		double want = ((double)a * price_in + (double)b * price_out) / 1e6;
		assert_true(fabs(json_number_value(json_object_get(c, "cost_usd")) - want) < 1e-12);
		assert_true(a > 0 && b > 0);
		sum += want;
		tin += a;
		tout += b;
	}
	assert_true(fabs(res.cost_usd - sum) < 1e-12);
	assert_int_equal(res.tokens_in, tin);
	assert_int_equal(res.tokens_out, tout);
	/* the simulator's usage is what was counted */
	json_t *calls = sim_calls();
	int64_t sim_in = 0;
	json_array_foreach(calls, i, c)
		sim_in += json_integer_value(json_object_get(c, "tokens_in"));
	assert_int_equal(sim_in, tin);
	json_decref(calls);
	sl_ai_result_free(&res);
	sl_ai_free(ai);
}

static void test_anthropic_classify_and_chat(void **state)
{
	(void)state;
	sim_rules("[{\"match\": {\"model\": \"claude-test\", \"contains\": \"refund\"}, "
		  "\"reply\": {\"json\": {\"label\": \"billing\"}}, \"confidence\": 0.88}]");
	struct sl_ai *ai = mkai("{\"models\": [\"claude\"]}", NULL);
	struct sl_ai_result res;
	struct sl_err err;
	assert_int_equal(classify(ai, "I want a refund", &res, &err), 0);
	assert_string_equal(res.model, "claude");
	assert_string_equal(json_string_value(json_object_get(res.output, "label")), "billing");
	assert_true(fabs(res.confidence - 0.88) < 1e-9);
	sl_ai_result_free(&res);
	json_t *msgs = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", "Be brief.", "role", "user",
				 "content", "hello there");
	struct sl_ai_request rq = {.task = SL_AI_CHAT, .route = "r", .messages = msgs};
	assert_int_equal(sl_ai_run(ai, &rq, &res, &err), 0);
	assert_non_null(strstr(json_string_value(json_object_get(res.output, "text")), "hello there"));
	assert_true(res.tokens_in > 0);
	sl_ai_result_free(&res);
	json_decref(msgs);
	sl_ai_free(ai);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cascade_escalates_when_unsure),
		cmocka_unit_test(test_fallback_on_5xx_and_429),
		cmocka_unit_test(test_breaker_opens),
		cmocka_unit_test(test_cache_hits),
		cmocka_unit_test(test_budget_exhausted),
		cmocka_unit_test(test_invalid_retried_then_review),
		cmocka_unit_test(test_masking),
		cmocka_unit_test(test_cost_sums),
		cmocka_unit_test(test_anthropic_classify_and_chat),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
