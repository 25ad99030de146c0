/*
 * test_ai.c: the AI layer without a network: models.yaml checks, prompt
 * templates, PII masking and unmasking, the response cache, and how each
 * task accepts or refuses a model's answer. Routes against a model server
 * are in test_ai_routes.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ai/ai.h"
#include "ai/ai_int.h" /* masking, cache and answer checks are tested directly */

#define CAP_MAX 32

static struct {
	int n;
	char ptr[CAP_MAX][256];
	char msg[CAP_MAX][SL_ERR_MSG_MAX];
} cap;

static void cap_report(struct sl_conf_ctx *ctx, const char *pointer, const char *msg)
{
	(void)ctx;
	if (cap.n < CAP_MAX) {
		snprintf(cap.ptr[cap.n], sizeof cap.ptr[0], "%s", pointer);
		snprintf(cap.msg[cap.n], sizeof cap.msg[0], "%s", msg);
	}
	cap.n++;
}

static struct sl_conf_ctx mkctx(void)
{
	memset(&cap, 0, sizeof cap);
	struct sl_conf_ctx ctx = {.file = "models.yaml", .project_dir = ".", .report_fn = cap_report};
	return ctx;
}

static bool cap_has(const char *pointer, const char *needle)
{
	for (int i = 0; i < cap.n && i < CAP_MAX; i++)
		if ((!pointer || strcmp(cap.ptr[i], pointer) == 0) && strstr(cap.msg[i], needle))
			return true;
	return false;
}

static void cap_dump(void)
{
	for (int i = 0; i < cap.n && i < CAP_MAX; i++)
		fprintf(stderr, "  conf: %s: %s\n", cap.ptr[i], cap.msg[i]);
}

static struct sl_ai *build(const char *json, struct sl_conf_ctx *ctx)
{
	json_error_t je;
	json_t *doc = json_loads(json, 0, &je);
	if (!doc)
		fail_msg("bad test JSON: %s", je.text);
	struct sl_ai *ai = sl_ai_new(doc, ctx, ".");
	json_decref(doc);
	return ai;
}

static void expect_conf_error(const char *json, const char *pointer, const char *needle)
{
	struct sl_conf_ctx ctx = mkctx();
	struct sl_ai *ai = build(json, &ctx);
	if (ai || !cap_has(pointer, needle)) {
		cap_dump();
		fail_msg("want an error at %s holding '%s'", pointer, needle);
	}
}

#define OPENAI_P "\"providers\": {\"o\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:9/v1\"}}"
#define MODEL_M "\"models\": {\"m\": {\"provider\": \"o\", \"price\": {\"input\": 1, \"output\": 2}}}"

static void test_models_yaml_good(void **state)
{
	(void)state;
	struct sl_conf_ctx ctx = mkctx();
	struct sl_ai *ai = build("{" OPENAI_P ", " MODEL_M ", \"routes\": {\"r\": {\"models\": [\"m\"], "
				 "\"escalate_below\": 0.7, \"fallback_on\": [\"transient\", \"auth\"], \"cache\": \"1h\", "
				 "\"timeout\": \"5s\", \"budget\": {\"usd\": 2, \"per\": \"month\"}}}, "
				 "\"budgets\": {\"workflows\": {\"w\": {\"usd\": 1}}}}",
				 &ctx);
	if (!ai)
		cap_dump();
	assert_non_null(ai);
	assert_true(sl_ai_has_route(ai, "r"));
	assert_false(sl_ai_has_route(ai, "nope"));
	assert_true(sl_ai_route_can(ai, "r", SL_AI_SUMMARIZE));
	const char *const *names = sl_ai_routes(ai);
	assert_string_equal(names[0], "r");
	assert_null(names[1]);
	sl_ai_free(ai);
}

static void test_models_yaml_errors(void **state)
{
	(void)state;
	expect_conf_error("{\"providers\": {\"o\": {\"type\": \"opnai\"}}}", "/providers/o/type",
			  "unknown provider type 'opnai'");
	expect_conf_error("{\"providers\": {\"o\": {}}}", "/providers/o", "needs a type");
	expect_conf_error("{\"providers\": {\"o\": {\"type\": \"openai\", \"residency\": \"moon\"}}}",
			  "/providers/o/residency", "external or local");
	expect_conf_error("{" OPENAI_P ", \"models\": {\"m\": {\"provider\": \"x\"}}}", "/models/m/provider",
			  "no provider named 'x'");
	expect_conf_error("{" OPENAI_P ", \"models\": {\"m\": {\"provider\": \"o\", \"price\": {\"input\": -1, "
			  "\"output\": 1}}}}",
			  NULL, "input");
	expect_conf_error("{" OPENAI_P ", " MODEL_M ", \"routes\": {\"r\": {\"models\": [\"z\"]}}}", "/routes/r/models/0",
			  "no model named 'z'");
	expect_conf_error("{" OPENAI_P ", " MODEL_M ", \"routes\": {\"r\": {\"models\": []}}}", "/routes/r/models",
			  "at least one model");
	expect_conf_error("{" OPENAI_P ", " MODEL_M ", \"routes\": {\"r\": {\"models\": [\"m\"], \"escalate_below\": 2}}}",
			  NULL, "escalate_below");
	expect_conf_error("{" OPENAI_P ", " MODEL_M ", \"routes\": {\"r\": {\"models\": [\"m\"], \"budget\": {\"per\": \"day\"}}}}",
			  NULL, "usd");
	expect_conf_error("{" OPENAI_P ", " MODEL_M ", \"routse\": {}}", "/routse", "unknown key");
}

/* A provider that fails (its secret is missing) is reported once: the
 * models and routes that name it add no errors of their own. */
static void test_broken_provider_reported_once(void **state)
{
	(void)state;
	unsetenv("SLUICE_TEST_NO_SUCH_KEY");
	struct sl_conf_ctx ctx = mkctx();
	ctx.resolve_secrets = true;
	struct sl_ai *ai = build("{\"providers\": {\"o\": {\"type\": \"openai\", \"api_key\": \"env:SLUICE_TEST_NO_SUCH_KEY\"}}, "
				 MODEL_M ", \"routes\": {\"r\": {\"models\": [\"m\"]}}}",
				 &ctx);
	assert_null(ai);
	if (cap.n != 1)
		cap_dump();
	assert_int_equal(cap.n, 1);
	assert_true(cap_has("/providers/o/api_key", "SLUICE_TEST_NO_SUCH_KEY"));
}

static void test_render(void **state)
{
	(void)state;
	json_t *vars = json_pack("{s:s, s:[s,s], s:i}", "subject", "Refund", "labels", "a", "b", "n", 3);
	struct sl_err err;
	char *out = sl_ai_render("S: {{subject}} / {{ labels }} / {{n}}", vars, &err);
	assert_non_null(out);
	assert_string_equal(out, "S: Refund / [\"a\",\"b\"] / 3");
	free(out);
	out = sl_ai_render("Hi {{missing}}", vars, &err);
	assert_null(out);
	assert_non_null(strstr(err.msg, "missing"));
	out = sl_ai_render("no placeholders", vars, &err);
	assert_string_equal(out, "no placeholders");
	free(out);
	json_decref(vars);
}

static void test_mask_roundtrip(void **state)
{
	(void)state;
	struct ai_mask *m = ai_mask_new();
	json_t *vals = json_pack("[s, s]", "Alice Smith", "ACME-4411");
	ai_mask_add_values(m, vals);
	json_decref(vals);
	const char *text = "Alice Smith (account ACME-4411) wrote: Alice Smith wants a refund.";
	char *masked = ai_mask_text(m, text);
	assert_null(strstr(masked, "Alice"));
	assert_null(strstr(masked, "ACME-4411"));
	assert_non_null(strstr(masked, "[PII_1]"));
	assert_non_null(strstr(masked, "[PII_2]"));
	char *back = ai_unmask_text(m, masked);
	assert_string_equal(back, text);
	/* an answer that uses the tokens is re-filled locally */
	json_t *answer = json_pack("{s:s}", "text", "Dear [PII_1], about [PII_2]:");
	json_t *filled = ai_unmask_json(m, answer);
	assert_string_equal(json_string_value(json_object_get(filled, "text")), "Dear Alice Smith, about ACME-4411:");
	json_decref(answer);
	json_decref(filled);
	/* messages: every string content is masked, roles are kept */
	json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", "from Alice Smith");
	json_t *mm = ai_mask_messages(m, msgs);
	const char *c = json_string_value(json_object_get(json_array_get(mm, 0), "content"));
	assert_null(strstr(c, "Alice"));
	assert_string_equal(json_string_value(json_object_get(json_array_get(mm, 0), "role")), "user");
	json_decref(msgs);
	json_decref(mm);
	free(masked);
	free(back);
	ai_mask_free(m);
}

/* Values too short to mask safely are left alone (they would mangle words). */
static void test_mask_short_values_ignored(void **state)
{
	(void)state;
	struct ai_mask *m = ai_mask_new();
	json_t *vals = json_pack("[s]", "an");
	ai_mask_add_values(m, vals);
	json_decref(vals);
	char *masked = ai_mask_text(m, "an answer");
	assert_string_equal(masked, "an answer");
	free(masked);
	ai_mask_free(m);
}

static void test_cache(void **state)
{
	(void)state;
	struct ai_cache *c = ai_cache_new(2);
	json_t *vals[] = {json_string("v1"), json_string("A"), json_string("B"), json_string("C")};
	ai_cache_put(c, "k1", vals[0], 1000); /* the cache takes its own reference */
	json_t *v = ai_cache_get(c, "k1", 500);
	assert_string_equal(json_string_value(v), "v1");
	json_decref(v);
	assert_null(ai_cache_get(c, "k1", 1000)); /* expired */
	ai_cache_put(c, "a", vals[1], 5000);
	ai_cache_put(c, "b", vals[2], 5000);
	ai_cache_put(c, "c", vals[3], 5000); /* bounded: the oldest goes */
	size_t held = 0;
	const char *keys[] = {"a", "b", "c"};
	for (size_t i = 0; i < 3; i++) {
		json_t *x = ai_cache_get(c, keys[i], 100);
		held += x != NULL;
		json_decref(x);
	}
	assert_int_equal(held, 2);
	ai_cache_free(c);
	for (size_t i = 0; i < SL_ARRAY_LEN(vals); i++)
		json_decref(vals[i]);
}

static int accept_text(const struct sl_ai_request *rq, const char *text, json_t **out, double *conf, char *why)
{
	struct ai_call_out o = {.text = sl_strdup(text), .confidence = -1};
	json_error_t je;
	o.json = json_loads(text, JSON_DECODE_ANY, &je);
	int rc = ai_task_accept(rq, &o, out, conf, why, 256);
	ai_call_out_free(&o);
	return rc;
}

static void test_accept_classify(void **state)
{
	(void)state;
	const char *labels[] = {"billing", "bug"};
	struct sl_ai_request rq = {.task = SL_AI_CLASSIFY, .route = "r", .labels = labels, .nlabels = 2};
	json_t *out = NULL;
	double conf = -1;
	char why[256] = "";
	assert_int_equal(accept_text(&rq, "{\"label\": \"bug\", \"confidence\": 0.8}", &out, &conf, why), 0);
	assert_string_equal(json_string_value(json_object_get(out, "label")), "bug");
	assert_true(conf > 0.79 && conf < 0.81);
	json_decref(out);
	out = NULL;
	assert_int_equal(accept_text(&rq, "{\"label\": \"spam\", \"confidence\": 0.8}", &out, &conf, why), -1);
	assert_non_null(strstr(why, "spam"));
	assert_int_equal(accept_text(&rq, "{\"label\": \"bug\", \"confidence\": 7}", &out, &conf, why), -1);
	assert_int_equal(accept_text(&rq, "not json at all", &out, &conf, why), -1);
	assert_null(out);
}

static void test_accept_extract(void **state)
{
	(void)state;
	struct sl_contracts *reg = sl_contracts_new();
	json_t *doc = json_pack("{s:s, s:[s], s:{s:{s:s}}}", "type", "object", "required", "number", "properties",
				"number", "type", "string");
	struct sl_err err;
	struct sl_schema *schema = sl_contracts_compile(reg, doc, "test", &err);
	assert_non_null(schema);
	struct sl_ai_request rq = {.task = SL_AI_EXTRACT, .route = "r", .contract = schema};
	json_t *out = NULL;
	double conf = -1;
	char why[256] = "";
	assert_int_equal(accept_text(&rq, "{\"number\": \"INV-1\"}", &out, &conf, why), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(out, "data"), "number")), "INV-1");
	json_decref(out);
	out = NULL;
	assert_int_equal(accept_text(&rq, "{\"number\": 42}", &out, &conf, why), -1);
	assert_non_null(strstr(why, "number"));
	json_decref(doc);
	sl_contracts_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_models_yaml_good),
		cmocka_unit_test(test_models_yaml_errors),
		cmocka_unit_test(test_broken_provider_reported_once),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_mask_roundtrip),
		cmocka_unit_test(test_mask_short_values_ignored),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_accept_classify),
		cmocka_unit_test(test_accept_extract),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
