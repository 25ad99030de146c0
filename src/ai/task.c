/*
 * task.c: what each AI task asks a model and what it accepts back.
 *
 * classify / route: {"label": one of the labels, "confidence": 0..1}
 * extract:          an object meeting the step's contract
 * summarize / draft / chat: free text
 *
 * A structured answer is parsed and validated here; what fails is told
 * back to the model once (route.c) with the reason written by this file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai/ai_int.h"

static json_t *labels_array(const struct sl_ai_request *rq)
{
	json_t *a = json_array();
	for (size_t i = 0; i < rq->nlabels; i++)
		json_array_append_new(a, json_string(rq->labels[i]));
	return a;
}

json_t *ai_task_schema(const struct sl_ai_request *rq)
{
	switch (rq->task) {
	case SL_AI_CLASSIFY:
	case SL_AI_ROUTE:
		return json_pack("{s:s, s:[s, s], s:{s:{s:s, s:o}, s:{s:s, s:i, s:i}, s:{s:s}}, s:b}", "type", "object",
				 "required", "label", "confidence", "properties", "label", "type", "string", "enum",
				 labels_array(rq), "confidence", "type", "number", "minimum", 0, "maximum", 1,
				 "rationale", "type", "string", "additionalProperties", 0);
	case SL_AI_EXTRACT:
		return rq->contract ? json_deep_copy(sl_schema_json(rq->contract)) : json_pack("{s:s}", "type", "object");
	default:
		return NULL;
	}
}

const char *ai_task_system(enum sl_ai_task t)
{
	switch (t) {
	case SL_AI_CLASSIFY:
		return "You are a careful classifier. Read the user's text and choose exactly one of the allowed "
		       "labels. Answer with one JSON object only: {\"label\": the label, \"confidence\": the "
		       "probability from 0 to 1 that it is right}.";
	case SL_AI_ROUTE:
		return "You route work items. Read the user's text and choose exactly one of the allowed "
		       "destinations. Answer with one JSON object only: {\"label\": the destination, "
		       "\"confidence\": the probability from 0 to 1 that it is right}.";
	case SL_AI_EXTRACT:
		return "Extract the fields described by the JSON Schema from the user's text. Answer with one JSON "
		       "object that meets the schema, and leave out what the text does not say.";
	case SL_AI_SUMMARIZE:
		return "Summarize the user's text in a few plain sentences. Keep names, numbers and dates exact. "
		       "Placeholders such as [PII_1] stand for private data: keep them exactly as written.";
	case SL_AI_DRAFT:
		return "Write the text the user asks for, ready to send. Placeholders such as [PII_1] stand for "
		       "private data: keep them exactly as written.";
	default:
		return NULL;
	}
}

json_t *ai_task_messages(const struct sl_ai_request *rq, const char *prompt)
{
	json_t *m = json_array();
	const char *sys = ai_task_system(rq->task);
	if (sys) {
		struct sl_buf b;
		sl_buf_init(&b, AI_PROMPT_MAX);
		sl_buf_adds(&b, sys);
		if (rq->nlabels && (rq->task == SL_AI_CLASSIFY || rq->task == SL_AI_ROUTE)) {
			sl_buf_adds(&b, "\nAllowed: ");
			for (size_t i = 0; i < rq->nlabels; i++)
				sl_buf_printf(&b, "%s%s", i ? ", " : "", rq->labels[i]);
			sl_buf_adds(&b, ".");
		}
		if (rq->task == SL_AI_EXTRACT && rq->contract) {
			char *schema = json_dumps(sl_schema_json(rq->contract), JSON_COMPACT | JSON_SORT_KEYS | SL_JSON_REAL);
			sl_buf_printf(&b, "\nSchema: %s", schema ? schema : "{}");
			free(schema);
		}
		json_array_append_new(m, json_pack("{s:s, s:s}", "role", "system", "content", sl_buf_str(&b)));
		sl_buf_free(&b);
	}
	json_array_append_new(m, json_pack("{s:s, s:s}", "role", "user", "content", prompt ? prompt : ""));
	return m;
}

/* The first JSON object in text: models wrap JSON in prose or ``` fences
 * now and then, and that is not worth a second call. */
static json_t *parse_object(const char *text)
{
	if (!text)
		return NULL;
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
	if (json_is_object(j))
		return j;
	json_decref(j);
	const char *open = strchr(text, '{');
	const char *close = strrchr(text, '}');
	if (!open || !close || close < open)
		return NULL;
	j = json_loadb(open, (size_t)(close - open + 1), 0, &je);
	return json_is_object(j) ? j : (json_decref(j), NULL);
}

static int accept_label(const struct sl_ai_request *rq, json_t *ans, json_t **output, double *confidence, char *why,
			size_t cap)
{
	const char *label = json_string_value(json_object_get(ans, "label"));
	size_t i = 0;
	while (label && i < rq->nlabels && strcmp(rq->labels[i], label) != 0)
		i++;
	if (!label || i == rq->nlabels) {
		snprintf(why, cap, "\"label\" must be one of the allowed labels, got %s",
			 label ? label : "no label");
		return -1;
	}
	const json_t *c = json_object_get(ans, "confidence");
	double conf = json_is_number(c) ? json_number_value(c) : -1;
	if (c && !(conf >= 0 && conf <= 1)) {
		snprintf(why, cap, "\"confidence\" must be a number from 0 to 1");
		return -1;
	}
	if (conf < 0)
		conf = 1.0; /* a model that gives none is taken at its word */
	*confidence = conf;
	*output = json_pack("{s:s, s:f}", "label", label, "confidence", conf);
	const json_t *why_text = json_object_get(ans, "rationale");
	if (json_is_string(why_text))
		json_object_set(*output, "rationale", (json_t *)why_text);
	return 0;
}

static int accept_extract(const struct sl_ai_request *rq, json_t *ans, json_t **output, double *confidence,
			  double given, char *why, size_t cap)
{
	if (rq->contract) {
		struct sl_verrs ve = {0};
		if (!sl_schema_validate(rq->contract, ans, &ve)) {
			char *msg = sl_verrs_join(&ve);
			snprintf(why, cap, "the answer does not meet the schema: %s", msg);
			free(msg);
			sl_verrs_free(&ve);
			return -1;
		}
	}
	*confidence = given >= 0 ? given : 1.0;
	*output = json_pack("{s:O, s:f}", "data", ans, "confidence", *confidence);
	return 0;
}

/* A tool turn: the calls the model made, or its final answer (the text,
 * and the object when the text is one: the step's contract checks it). */
static int accept_tool(const struct ai_call_out *out, json_t **output, char *why, size_t cap)
{
	if (json_array_size(out->tool_calls)) {
		*output = json_pack("{s:O}", "tool_calls", out->tool_calls);
		return 0;
	}
	if (!out->text || !*out->text) {
		snprintf(why, cap, "the answer is empty: call a tool or give the final answer");
		return -1;
	}
	*output = json_pack("{s:s}", "text", out->text);
	json_t *data = parse_object(out->text);
	if (data)
		json_object_set_new(*output, "data", data);
	return 0;
}

int ai_task_accept(const struct sl_ai_request *rq, const struct ai_call_out *out, json_t **output,
		   double *confidence, char *why, size_t cap)
{
	*output = NULL;
	*confidence = -1;
	if (rq->task == SL_AI_TOOL)
		return accept_tool(out, output, why, cap);
	if (rq->task == SL_AI_SUMMARIZE || rq->task == SL_AI_DRAFT || rq->task == SL_AI_CHAT) {
		if (!out->text || !*out->text) {
			snprintf(why, cap, "the answer is empty");
			return -1;
		}
		*output = json_pack("{s:s}", "text", out->text);
		return 0;
	}
	json_t *ans = out->json ? json_incref(out->json) : parse_object(out->text);
	if (!ans) {
		snprintf(why, cap, "the answer is not one JSON object");
		return -1;
	}
	int rc = rq->task == SL_AI_EXTRACT ? accept_extract(rq, ans, output, confidence, out->confidence, why, cap)
					   : accept_label(rq, ans, output, confidence, why, cap);
	/* a local classifier's calibrated confidence wins over a parsed one */
	if (rc == 0 && out->confidence >= 0 && rq->task != SL_AI_EXTRACT) {
		*confidence = out->confidence;
		json_object_set_new(*output, "confidence", json_real(out->confidence));
	}
	json_decref(ans);
	return rc;
}

char *sl_ai_render(const char *tpl, const json_t *vars, struct sl_err *err)
{
	struct sl_buf out;
	sl_buf_init(&out, AI_PROMPT_MAX);
	const char *p = tpl;
	const char *open;
	while ((open = strstr(p, "{{")) != NULL) {
		sl_buf_add(&out, p, (size_t)(open - p));
		const char *q = open + 2;
		while (*q == ' ')
			q++;
		size_t n = strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
		const char *end = q + n;
		while (*end == ' ')
			end++;
		if (n == 0 || strncmp(end, "}}", 2) != 0) { /* not a placeholder: keep the text */
			sl_buf_add(&out, open, 2);
			p = open + 2;
			continue;
		}
		char name[128];
		snprintf(name, sizeof name, "%.*s", (int)SL_MIN(n, sizeof name - 1), q);
		const json_t *v = json_object_get(vars, name);
		if (!v) {
			sl_buf_free(&out);
			sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "prompt template: no value for {{%s}}", name);
			return NULL;
		}
		if (json_is_string(v)) {
			sl_buf_add(&out, json_string_value(v), json_string_length(v));
		} else {
			char *j = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
			sl_buf_adds(&out, j ? j : "null");
			free(j);
		}
		p = end + 2;
	}
	sl_buf_adds(&out, p);
	if (out.err) {
		sl_buf_free(&out);
		sl_err_set(err, SL_ETOOBIG, SL_CLASS_PERMANENT, "prompt is larger than %d bytes", AI_PROMPT_MAX);
		return NULL;
	}
	char *s = sl_strdup(sl_buf_str(&out));
	sl_buf_free(&out);
	return s;
}
