/* fuzz_ai_reply: a model provider's answer is outside input. Any bytes as
 * the body of a 2xx answer, read as OpenAI's and as Anthropic's format, then
 * checked as a classify and an extract answer: no crash, no leak, and what
 * is accepted is what the task asked for. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ai/ai_int.h"
#include "ai/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const labels[] = {"billing", "bug"};

static void check(int (*parse)(const json_t *, const struct ai_call_in *, struct ai_call_out *, struct sl_err *),
		  const json_t *body, const json_t *schema)
{
	struct ai_call_in in = {.task = SL_AI_CLASSIFY, .schema = schema, .labels = labels, .nlabels = 2};
	struct ai_call_out out = {.confidence = -1};
	struct sl_err err;
	sl_err_clear(&err);
	if (parse(body, &in, &out, &err) == 0) {
		struct sl_ai_request rq = {.task = SL_AI_CLASSIFY, .route = "r", .labels = labels, .nlabels = 2};
		json_t *o = NULL;
		double conf = -1;
		char why[256];
		if (ai_task_accept(&rq, &out, &o, &conf, why, sizeof why) == 0) {
			const char *l = json_string_value(json_object_get(o, "label"));
			if (!l || (strcmp(l, "billing") && strcmp(l, "bug")) || conf < 0 || conf > 1)
				abort(); /* accepted something the task does not allow */
		}
		json_decref(o);
	}
	ai_call_out_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (!body)
		return 0;
	json_t *schema = json_pack("{s:s}", "type", "object");
	check(ai_openai_parse, body, schema);
	check(ai_anthropic_parse, body, schema);
	check(ai_openai_parse, body, NULL);
	json_decref(schema);
	json_decref(body);
	return 0;
}
