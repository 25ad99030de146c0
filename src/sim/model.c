/*
 * model.c: the "model" simulator: an LLM API speaking the wire formats of
 * OpenAI chat completions (POST /v1/chat/completions, GET /v1/models) and
 * Anthropic Messages (POST /v1/messages), plain and streamed (SSE).
 *
 * A request is parsed into one neutral `struct chat` (model, last user
 * text, system text, the JSON Schema asked for, the forced tool), answered
 * as one neutral `struct answer` (text or a tool call), and only then
 * rendered in the API's own shape. So rules, schema synthesis, token counts
 * and the call log are written once for both APIs.
 *
 * Answers are deterministic: the first matching rule wins (rules may fail
 * with a status, answer only N times, or add latency); without a rule a
 * JSON Schema is filled in from the user's text, else a fixed text echoes
 * the start of the user's message. Token counts are ceil(bytes / 4).
 *
 * All entry points run with the simulator's mutex held (sim_int.h), except
 * model_error_fn, which reads nothing but its arguments.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "sim/sim_int.h"

#define MODEL_CALLS_MAX 1000               /* /_sim/calls remembers this many requests */
#define MODEL_CALLS_BYTES_MAX (64u << 20)  /* ... holding at most this many request bytes */
#define MODEL_RULES_MAX 10000
#define MODEL_RULES_FILE_MAX (4u << 20)
#define MODEL_SSE_MAX (16u << 20)          /* a streamed answer's whole body */
#define MODEL_ECHO_CHARS 60                /* "Simulated answer: " + this much of the input */
#define MODEL_STRING_CHARS 40              /* synthesised strings: this much of the input */
#define MODEL_SCHEMA_DEPTH 32              /* deeper schemas (or $ref cycles) give null */
#define MODEL_PIECE_BYTES 16               /* text per stream chunk */
#define MODEL_NAME_MAX 128
#define MODEL_FINGERPRINT "fp_sluice_sim"

enum api { API_OPENAI, API_ANTHROPIC };

struct model_call {
	json_t *rec;
	size_t bytes; /* request body bytes, for the byte cap */
};

struct sim_model {
	/* from the start options (setup_fn), kept across /_sim/reset */
	json_t *start_rules; /* array */
	json_t *models;      /* array of names; NULL = any model */
	/* live state (init_fn / free_fn) */
	json_t *rules;      /* array, replaced by POST /_sim/rules */
	unsigned *used;     /* per rule: how often it answered (for "times") */
	struct model_call calls[MODEL_CALLS_MAX]; /* a ring, oldest at call_head */
	size_t call_head, ncalls, call_bytes;
	unsigned long long next_id;
};

/* A chat request, whichever API it came in. Strings borrow from the body
 * unless marked owned. */
struct chat {
	enum api api;
	const json_t *body;
	const char *model;
	bool stream, include_usage;
	json_int_t max_tokens;   /* 0 = no limit */
	char *last_user;         /* owned: text of the last user message */
	char *system;            /* owned: system text, "" when none */
	size_t in_bytes;         /* all message text */
	bool json_wanted;        /* response_format json_*, or a forced tool */
	const json_t *schema;    /* the schema of the JSON wanted; NULL = any object */
	const char *tool;        /* the forced tool, NULL = none */
	const char *first_tool;  /* name of the first tool offered, NULL = none */
};

/* What the model says, before it is put in an API's shape. */
struct answer {
	bool is_tool;
	json_t *input;                /* owned: the tool call's arguments */
	char *text;                   /* owned: the text, or input as JSON text */
	char tool_name[MODEL_NAME_MAX];
	bool truncated;               /* cut at max_tokens */
	json_int_t tokens_in, tokens_out;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static json_int_t tokens_of(size_t bytes)
{
	return bytes ? (json_int_t)((bytes + 3) / 4) : 1;
}

/* Bytes of the first n characters of UTF-8 text s (never splits one). */
static size_t utf8_prefix(const char *s, size_t n)
{
	size_t i = 0;
	while (s[i] && n) {
		i++;
		while ((s[i] & 0xC0) == 0x80)
			i++;
		n--;
	}
	return i;
}

/* The largest length <= max bytes that ends on a character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && (s[max] & 0xC0) == 0x80)
		max--;
	return max;
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += (*s & 0xC0) != 0x80;
	return n;
}

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static bool str_has(const char *hay, const char *needle)
{
	return hay && needle && strcasestr(hay, needle) != NULL;
}

static enum api api_of(const char *url)
{
	return url && sl_str_startswith(url, "/v1/messages") ? API_ANTHROPIC : API_OPENAI;
}

/* ---- errors in each API's shape -------------------------------------------------------------- */

static const char *openai_error_type(unsigned status)
{
	if (status == 429)
		return "requests";
	if (status >= 500)
		return "server_error";
	return "invalid_request_error";
}

static const char *anthropic_error_type(unsigned status)
{
	switch (status) {
	case 400: return "invalid_request_error";
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 413: return "request_too_large";
	case 429: return "rate_limit_error";
	case 529: return "overloaded_error";
	default: return status >= 500 ? "api_error" : "invalid_request_error";
	}
}

/* param and code may be NULL (code then follows from the status). */
static void model_error(struct sim_resp *rp, enum api api, unsigned status, const char *detail, const char *param,
			const char *code)
{
	json_decref(rp->body);
	rp->problem = false;
	if (api == API_ANTHROPIC) {
		if (status == 503) /* Anthropic reports overload as 529, never 503 */
			status = 529;
		rp->body = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", anthropic_error_type(status),
				     "message", detail);
	} else {
		if (!code)
			code = status == 401 ? "invalid_api_key" : status == 429 ? "rate_limit_exceeded" : NULL;
		rp->body = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", detail, "type",
				     openai_error_type(status), "param", param, "code", code);
	}
	rp->status = status;
	if (status == 429 && rp->retry_after <= 0)
		rp->retry_after = 1;
}

static void model_error_fn(const char *url, unsigned status, const char *detail, struct sim_resp *rp)
{
	model_error(rp, api_of(url), status, detail, NULL, NULL);
}

/* ---- rules ------------------------------------------------------------------------------------ */

/* Fails with "rules[i].key: why" in msg. */
static bool rule_fail(char *msg, size_t cap, size_t i, const char *key, const char *why)
{
	snprintf(msg, cap, "rules[%zu]%s%s: %s", i, key ? "." : "", key ? key : "", why);
	return false;
}

static bool int_in(const json_t *v, json_int_t lo, json_int_t hi)
{
	return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static bool match_ok(const json_t *m, size_t i, char *msg, size_t cap)
{
	const char *k;
	const json_t *v;
	if (!json_is_object(m))
		return rule_fail(msg, cap, i, "match", "must be an object");
	json_object_foreach((json_t *)m, k, v) {
		if (strcmp(k, "model") && strcmp(k, "contains") && strcmp(k, "system_contains"))
			return rule_fail(msg, cap, i, "match", "keys are model, contains, system_contains");
		if (!json_is_string(v))
			return rule_fail(msg, cap, i, "match", "values must be strings");
	}
	return true;
}

static bool reply_ok(const json_t *r, size_t i, char *msg, size_t cap)
{
	if (!json_is_object(r) || json_object_size(r) != 1)
		return rule_fail(msg, cap, i, "reply", "must be one of {\"text\": ...}, {\"json\": ...}, {\"tool\": ...}");
	const json_t *v;
	if ((v = json_object_get(r, "text")))
		return json_is_string(v) ? true : rule_fail(msg, cap, i, "reply.text", "must be a string");
	if (json_object_get(r, "json"))
		return true;
	v = json_object_get(r, "tool");
	if (!json_is_object(v))
		return rule_fail(msg, cap, i, "reply", "must be one of {\"text\": ...}, {\"json\": ...}, {\"tool\": ...}");
	const json_t *name = json_object_get(v, "name"), *input = json_object_get(v, "input");
	if (name && !json_is_string(name))
		return rule_fail(msg, cap, i, "reply.tool.name", "must be a string");
	if (input && !json_is_object(input))
		return rule_fail(msg, cap, i, "reply.tool.input", "must be an object");
	return true;
}

static bool rule_ok(const json_t *r, size_t i, char *msg, size_t cap)
{
	static const char *const keys[] = {"match", "reply", "confidence", "status", "times", "latency_ms", "name"};
	const char *k;
	const json_t *v;
	if (!json_is_object(r))
		return rule_fail(msg, cap, i, NULL, "a rule must be an object");
	json_object_foreach((json_t *)r, k, v) {
		size_t j = 0;
		while (j < SL_ARRAY_LEN(keys) && strcmp(k, keys[j]))
			j++;
		if (j == SL_ARRAY_LEN(keys))
			return rule_fail(msg, cap, i, k, "unknown key (match, reply, confidence, status, times, latency_ms, name)");
	}
	if ((v = json_object_get(r, "match")) && !match_ok(v, i, msg, cap))
		return false;
	if ((v = json_object_get(r, "reply")) && !reply_ok(v, i, msg, cap))
		return false;
	v = json_object_get(r, "confidence");
	if (v && !(json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) <= 1))
		return rule_fail(msg, cap, i, "confidence", "must be a number from 0 to 1");
	if ((v = json_object_get(r, "status")) && !int_in(v, 400, 599))
		return rule_fail(msg, cap, i, "status", "must be an HTTP error status, 400 to 599");
	if ((v = json_object_get(r, "times")) && !int_in(v, 1, 1000000000))
		return rule_fail(msg, cap, i, "times", "must be an integer >= 1");
	if ((v = json_object_get(r, "latency_ms")) && !int_in(v, 0, 600000))
		return rule_fail(msg, cap, i, "latency_ms", "must be an integer from 0 to 600000");
	if ((v = json_object_get(r, "name")) && !json_is_string(v))
		return rule_fail(msg, cap, i, "name", "must be a string");
	return true;
}

/* A rules document is an array of rules or {"rules": [...]}. Returns the
 * array (a new reference), or NULL with the reason in msg. */
static json_t *rules_check(json_t *doc, char *msg, size_t cap)
{
	json_t *arr = json_is_object(doc) ? json_object_get(doc, "rules") : doc;
	if (json_is_object(doc) && json_object_size(doc) != 1)
		arr = NULL;
	if (!json_is_array(arr)) {
		snprintf(msg, cap, "want an array of rules or {\"rules\": [...]}");
		return NULL;
	}
	if (json_array_size(arr) > MODEL_RULES_MAX) {
		snprintf(msg, cap, "more than %d rules", MODEL_RULES_MAX);
		return NULL;
	}
	size_t i;
	json_t *r;
	json_array_foreach(arr, i, r) {
		if (!rule_ok(r, i, msg, cap))
			return NULL;
	}
	return json_incref(arr);
}

/* Parses a rules file: YAML by its extension, else JSON. */
static json_t *rules_parse_file(const char *path, const char *text, size_t len, struct sl_err *err)
{
	if (sl_str_endswith(path, ".yaml") || sl_str_endswith(path, ".yml")) {
		struct sl_diags diags = {0};
		json_t *doc = sl_yaml_parse(text, len, path, NULL, &diags);
		if (diags.n) {
			const struct sl_diag *d = &diags.v[0];
			sl_err_setloc(err, SL_EINVAL, d->file, d->line, d->col, "%s:%d:%d: %s", path, d->line, d->col, d->msg);
			json_decref(doc);
			doc = NULL;
		} else if (!doc) {
			sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s: not YAML", path);
		}
		sl_diags_free(&diags);
		return doc;
	}
	json_error_t je;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		sl_err_setloc(err, SL_EINVAL, path, je.line, je.column, "%s:%d:%d: %s", path, je.line, je.column, je.text);
	return doc;
}

static int rules_load(const char *path, json_t **out, struct sl_err *err)
{
	char *text = NULL;
	size_t len = 0;
	if (sl_file_read(path, MODEL_RULES_FILE_MAX, &text, &len, err) != 0)
		return SL_EINVAL;
	json_t *doc = rules_parse_file(path, text, len, err);
	free(text);
	if (!doc)
		return SL_EINVAL;
	char msg[256];
	*out = rules_check(doc, msg, sizeof msg);
	json_decref(doc);
	if (!*out)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s: %s", path, msg);
	return 0;
}

/* Installs rules (takes the reference) with fresh use counts. */
static void rules_install(struct sim_model *m, json_t *rules)
{
	json_decref(m->rules);
	free(m->used);
	m->rules = rules;
	m->used = sl_xcalloc(json_array_size(rules) + 1, sizeof *m->used);
}

static bool rule_matches(const json_t *r, const struct chat *ch)
{
	const json_t *m = json_object_get(r, "match");
	const char *model = jstr(m, "model"), *has = jstr(m, "contains"), *sys = jstr(m, "system_contains");
	if (model && strcmp(model, ch->model) != 0)
		return false;
	if (has && !str_has(ch->last_user, has))
		return false;
	return !sys || str_has(ch->system, sys);
}

/* The first rule that matches and has answers left, counted as used;
 * -1 when none. */
static int rule_pick(struct sim_model *m, const struct chat *ch)
{
	size_t i;
	json_t *r;
	json_array_foreach(m->rules, i, r) {
		const json_t *times = json_object_get(r, "times");
		if (!rule_matches(r, ch) || (times && m->used[i] >= json_integer_value(times)))
			continue;
		m->used[i]++;
		return (int)i;
	}
	return -1;
}

/* ---- JSON documents from a schema --------------------------------------------------------------- */

struct synth {
	const json_t *root; /* for "$ref": "#/..." */
	const char *input;  /* the last user message */
};

static json_t *synth_value(const struct synth *sy, const json_t *schema, const char *prop, int depth);

/* Resolves a local "#/a/b" pointer (with ~0 ~1 escapes); NULL when not. */
static const json_t *synth_ref(const struct synth *sy, const char *ref)
{
	if (ref[0] != '#')
		return NULL;
	const json_t *at = sy->root;
	const char *p = ref + 1;
	while (at && *p == '/') {
		p++;
		size_t n = strcspn(p, "/");
		char tok[MODEL_NAME_MAX];
		size_t t = 0;
		for (size_t i = 0; i < n && t + 1 < sizeof tok; i++) {
			if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1'))
				tok[t++] = p[++i] == '0' ? '~' : '/';
			else
				tok[t++] = p[i];
		}
		tok[t] = '\0';
		at = json_is_array(at) ? json_array_get(at, strtoul(tok, NULL, 10)) : json_object_get(at, tok);
		p += n;
	}
	return at;
}

/* The enum value whose text is in the user's message, else the first. */
static json_t *synth_enum(const struct synth *sy, const json_t *en)
{
	size_t i;
	json_t *v;
	json_array_foreach(en, i, v) {
		if (json_is_string(v) && *json_string_value(v) && str_has(sy->input, json_string_value(v)))
			return json_copy(v);
	}
	return json_array_size(en) ? json_copy(json_array_get(en, 0)) : json_null();
}

/* The type to produce: the first non-null one named, else inferred. */
static const char *synth_type(const json_t *schema)
{
	const json_t *t = json_object_get(schema, "type");
	if (json_is_string(t))
		return json_string_value(t);
	if (json_is_array(t)) {
		size_t i;
		json_t *x;
		json_array_foreach(t, i, x) {
			if (json_is_string(x) && strcmp(json_string_value(x), "null") != 0)
				return json_string_value(x);
		}
		return json_array_size(t) ? "null" : "string";
	}
	if (json_object_get(schema, "properties") || json_object_get(schema, "required"))
		return "object";
	if (json_object_get(schema, "items"))
		return "array";
	return "string";
}

static double synth_clamp(const json_t *schema, double v)
{
	const json_t *lo = json_object_get(schema, "minimum"), *hi = json_object_get(schema, "maximum");
	const json_t *xlo = json_object_get(schema, "exclusiveMinimum"), *xhi = json_object_get(schema, "exclusiveMaximum");
	if (json_is_number(lo) && v < json_number_value(lo))
		v = json_number_value(lo);
	if (json_is_number(hi) && v > json_number_value(hi))
		v = json_number_value(hi);
	if (json_is_number(xlo) && v <= json_number_value(xlo))
		v = json_number_value(xlo) + 1;
	if (json_is_number(xhi) && v >= json_number_value(xhi))
		v = json_number_value(xhi) - (json_is_number(xlo) ? (json_number_value(xhi) - json_number_value(xlo)) / 2 : 1);
	return v;
}

static json_t *synth_number(const json_t *schema, const char *prop, bool integer)
{
	/* a classifier's confidence is high but not certain, so cascades can be tested both ways */
	double v = synth_clamp(schema, !integer && prop && strcmp(prop, "confidence") == 0 ? 0.9 : 1);
	return integer ? json_integer((json_int_t)v) : json_real(v);
}

static const char *synth_format(const char *format)
{
	static const char *const formats[][2] = {
		{"email", "sim@example.com"},	    {"date", "2026-01-01"},
		{"date-time", "2026-01-01T00:00:00Z"}, {"time", "00:00:00Z"},
		{"uri", "https://example.com/sim"},   {"uuid", "00000000-0000-4000-8000-000000000000"},
		{"hostname", "example.com"},	    {"ipv4", "192.0.2.1"},
	};
	for (size_t i = 0; format && i < SL_ARRAY_LEN(formats); i++)
		if (strcmp(format, formats[i][0]) == 0)
			return formats[i][1];
	return NULL;
}

/* The bytes of in's first MODEL_STRING_CHARS characters, less any
 * surrounding space. Longer input is cut at a space: half a word, or half
 * a masking token like [EMAIL_1], is not what a model would write. */
static size_t input_excerpt(const char **in)
{
	while (isspace((unsigned char)**in))
		(*in)++;
	const char *s = *in;
	size_t n = utf8_prefix(s, MODEL_STRING_CHARS);
	if (s[n]) {
		size_t sp = n;
		while (sp > 0 && !isspace((unsigned char)s[sp]))
			sp--;
		n = sp > 0 ? sp : n;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return n;
}

/* A string from the start of the input, within minLength..maxLength. */
static json_t *synth_string(const struct synth *sy, const json_t *schema)
{
	const char *fixed = synth_format(jstr(schema, "format"));
	if (fixed)
		return json_string(fixed);
	const char *in = sy->input ? sy->input : "";
	size_t n = input_excerpt(&in);
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_LINE);
	sl_buf_add(&b, n ? in : "simulated", n ? n : strlen("simulated"));
	const json_t *maxl = json_object_get(schema, "maxLength"), *minl = json_object_get(schema, "minLength");
	size_t chars = utf8_chars(sl_buf_str(&b));
	if (json_is_integer(maxl) && json_integer_value(maxl) >= 0 && (json_int_t)chars > json_integer_value(maxl)) {
		chars = (size_t)json_integer_value(maxl);
		b.len = utf8_prefix(b.p, chars);
		b.p[b.len] = '\0';
	}
	for (; json_is_integer(minl) && (json_int_t)chars < json_integer_value(minl) && chars < SL_BUF_MAX_LINE / 2; chars++)
		sl_buf_addc(&b, 'x');
	json_t *out = json_stringn(sl_buf_str(&b), b.len);
	sl_buf_free(&b);
	return out;
}

/* Every declared property, and any required one left undeclared. */
static json_t *synth_object(const struct synth *sy, const json_t *schema, int depth)
{
	json_t *o = json_object(), *props = json_object_get(schema, "properties");
	const char *k;
	json_t *sub;
	json_object_foreach(props, k, sub)
		json_object_set_new(o, k, synth_value(sy, sub, k, depth + 1));
	size_t i;
	json_t *req;
	json_array_foreach(json_object_get(schema, "required"), i, req) {
		if (json_is_string(req) && !json_object_get(o, json_string_value(req)))
			json_object_set_new(o, json_string_value(req), json_string("simulated"));
	}
	return o;
}

static json_t *synth_array(const struct synth *sy, const json_t *schema, const char *prop, int depth)
{
	json_t *a = json_array();
	const json_t *min = json_object_get(schema, "minItems");
	json_int_t n = json_is_integer(min) && json_integer_value(min) > 1 ? SL_MIN(json_integer_value(min), 100) : 1;
	for (json_int_t i = 0; i < n; i++)
		json_array_append_new(a, synth_value(sy, json_object_get(schema, "items"), prop, depth + 1));
	return a;
}

/* A value valid against schema for the common keywords (type, enum, const,
 * properties/required, items/minItems, min/max, lengths, format); anyOf,
 * oneOf and allOf take their first branch. */
static json_t *synth_value(const struct synth *sy, const json_t *schema, const char *prop, int depth)
{
	if (depth > MODEL_SCHEMA_DEPTH)
		return json_null();
	if (!json_is_object(schema))
		return json_string("simulated");
	const char *ref = jstr(schema, "$ref");
	if (ref)
		return synth_value(sy, synth_ref(sy, ref), prop, depth + 1);
	const json_t *v;
	if ((v = json_object_get(schema, "const")))
		return json_deep_copy(v);
	if (json_is_array(v = json_object_get(schema, "enum")))
		return synth_enum(sy, v);
	static const char *const branches[] = {"anyOf", "oneOf", "allOf"};
	for (size_t i = 0; i < SL_ARRAY_LEN(branches); i++)
		if (json_array_size(v = json_object_get(schema, branches[i])))
			return synth_value(sy, json_array_get(v, 0), prop, depth + 1);
	const char *type = synth_type(schema);
	if (strcmp(type, "object") == 0)
		return synth_object(sy, schema, depth);
	if (strcmp(type, "array") == 0)
		return synth_array(sy, schema, prop, depth);
	if (strcmp(type, "number") == 0 || strcmp(type, "integer") == 0)
		return synth_number(schema, prop, strcmp(type, "integer") == 0);
	if (strcmp(type, "boolean") == 0)
		return json_true();
	if (strcmp(type, "null") == 0)
		return json_null();
	return synth_string(sy, schema);
}

/* ---- reading a request ------------------------------------------------------------------------------ */

/* Appends the text of a message content: a string, or blocks of
 * {type: text, text} (tool results' content too). */
static void content_text(const json_t *content, struct sl_buf *out)
{
	if (json_is_string(content)) {
		sl_buf_add(out, json_string_value(content), json_string_length(content));
		return;
	}
	size_t i;
	const json_t *part;
	json_array_foreach(content, i, part) {
		const char *type = jstr(part, "type");
		if (type && strcmp(type, "text") == 0 && jstr(part, "text")) {
			if (out->len)
				sl_buf_addc(out, '\n');
			sl_buf_adds(out, jstr(part, "text"));
		} else if (type && strcmp(type, "tool_result") == 0) {
			content_text(json_object_get(part, "content"), out);
		}
	}
}

static char *text_of(const json_t *content)
{
	struct sl_buf b;
	sl_buf_init(&b, SIM_BODY_MAX);
	content_text(content, &b);
	char *s = sl_strdup(sl_buf_str(&b));
	sl_buf_free(&b);
	return s;
}

static void chat_free(struct chat *ch)
{
	free(ch->last_user);
	free(ch->system);
}

/* Why a request is bad: a 400 with the message and the parameter. */
struct bad {
	char msg[256];
	const char *param;
};

static unsigned bad_request(struct bad *bad, const char *param, const char *msg)
{
	snprintf(bad->msg, sizeof bad->msg, "%s", msg);
	bad->param = param;
	return 400;
}

/* Whether role is one of list, "a|b|c" (exactly). */
static bool role_in(const char *list, const char *role)
{
	size_t n = strlen(role);
	for (const char *p = list; *p;) {
		size_t m = strcspn(p, "|");
		if (m == n && n && strncmp(p, role, n) == 0)
			return true;
		p += m + (p[m] == '|');
	}
	return false;
}

static bool message_ok(const json_t *m, const char *roles)
{
	const char *role = jstr(m, "role");
	const json_t *content = json_object_get(m, "content");
	return role && role_in(roles, role) &&
	       (!content || json_is_string(content) || json_is_array(content) || json_is_null(content));
}

/* Reads messages (both APIs) into last_user, system and in_bytes. roles
 * lists the roles allowed, "a|b"; sysroles the ones whose text is
 * system text. */
static unsigned read_messages(struct chat *ch, const json_t *msgs, const char *roles, const char *sysroles,
			      struct bad *bad)
{
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return bad_request(bad, "messages", "messages: at least one message is required");
	size_t i;
	const json_t *m;
	json_array_foreach(msgs, i, m) {
		if (!message_ok(m, roles)) {
			snprintf(bad->msg, sizeof bad->msg, "messages[%zu]: a role (%s) and a string or array content", i, roles);
			bad->param = "messages";
			return 400;
		}
	}
	struct sl_buf sys;
	sl_buf_init(&sys, SIM_BODY_MAX);
	sl_buf_adds(&sys, ch->system ? ch->system : "");
	json_array_foreach(msgs, i, m) {
		const char *role = jstr(m, "role");
		char *text = text_of(json_object_get(m, "content"));
		ch->in_bytes += strlen(text);
		if (role_in(sysroles, role)) {
			if (sys.len)
				sl_buf_addc(&sys, '\n');
			sl_buf_adds(&sys, text);
		}
		if (strcmp(role, "user") == 0) {
			free(ch->last_user);
			ch->last_user = text;
		} else {
			free(text);
		}
	}
	free(ch->system);
	ch->system = sl_strdup(sl_buf_str(&sys));
	sl_buf_free(&sys);
	if (!ch->last_user)
		ch->last_user = sl_strdup("");
	return 0;
}

static unsigned read_max_tokens(struct chat *ch, const json_t *v, const char *name, struct bad *bad)
{
	if (!v)
		return 0;
	if (!int_in(v, 1, 100000000)) {
		snprintf(bad->msg, sizeof bad->msg, "%s must be an integer >= 1", name);
		bad->param = name;
		return 400;
	}
	ch->max_tokens = json_integer_value(v);
	return 0;
}

/* response_format: text, json_object, or json_schema {name, schema}. */
static unsigned openai_format(struct chat *ch, const json_t *rf, struct bad *bad)
{
	if (!rf)
		return 0;
	const char *type = jstr(rf, "type");
	if (type && strcmp(type, "text") == 0)
		return 0;
	if (type && strcmp(type, "json_object") == 0) {
		ch->json_wanted = true;
		return 0;
	}
	const json_t *js = json_object_get(rf, "json_schema");
	if (!type || strcmp(type, "json_schema") != 0 || !jstr(js, "name"))
		return bad_request(bad, "response_format",
				   "response_format: type text, json_object, or json_schema with json_schema.name");
	const json_t *schema = json_object_get(js, "schema");
	if (schema && !json_is_object(schema))
		return bad_request(bad, "response_format", "response_format.json_schema.schema must be an object");
	ch->json_wanted = true;
	ch->schema = schema;
	return 0;
}

/* The definition of the tool named (NULL = the first), *found its name.
 * OpenAI wraps a definition in "function" (wrap), Anthropic does not (""). */
static const json_t *find_tool(const json_t *tools, const char *name, const char *wrap, const char **found)
{
	size_t i;
	const json_t *t;
	json_array_foreach(tools, i, t) {
		const json_t *def = *wrap ? json_object_get(t, wrap) : t;
		const char *n = jstr(def, "name");
		if (n && (!name || strcmp(n, name) == 0)) {
			*found = n;
			return def;
		}
	}
	return NULL;
}

/* Forces the tool `name` (NULL = the first): its schema becomes the JSON wanted. */
static unsigned force_tool(struct chat *ch, const json_t *tools, const char *name, const char *wrap,
			   const char *schema_key, struct bad *bad)
{
	const char *found = NULL;
	const json_t *def = find_tool(tools, name, wrap, &found);
	if (!def)
		return bad_request(bad, "tool_choice", "tool_choice names a tool that is not in tools");
	ch->tool = found;
	ch->json_wanted = true;
	ch->schema = json_object_get(def, schema_key);
	return 0;
}

/* tools [{type: function, function: {name, parameters}}]; tool_choice
 * none | auto | required | {type: function, function: {name}}. */
static unsigned openai_tools(struct chat *ch, const json_t *tools, const json_t *choice, struct bad *bad)
{
	if (tools && !json_is_array(tools))
		return bad_request(bad, "tools", "tools must be an array");
	const char *unused;
	if (find_tool(tools, NULL, "function", &unused))
		ch->first_tool = unused;
	if (!choice)
		return 0;
	if (json_is_string(choice)) {
		const char *c = json_string_value(choice);
		if (strcmp(c, "required") == 0)
			return force_tool(ch, tools, NULL, "function", "parameters", bad);
		return strcmp(c, "none") == 0 || strcmp(c, "auto") == 0
			       ? 0
			       : bad_request(bad, "tool_choice", "tool_choice: none, auto, required or a function");
	}
	const char *name = jstr(json_object_get(choice, "function"), "name");
	if (!name)
		return bad_request(bad, "tool_choice", "tool_choice: {\"type\": \"function\", \"function\": {\"name\": ...}}");
	return force_tool(ch, tools, name, "function", "parameters", bad);
}

static unsigned openai_read(struct chat *ch, const json_t *b, struct bad *bad)
{
	ch->api = API_OPENAI;
	if (!json_is_object(b))
		return bad_request(bad, NULL, "the body must be a JSON object");
	if (!(ch->model = jstr(b, "model")))
		return bad_request(bad, "model", "you must provide a model parameter");
	unsigned st = read_messages(ch, json_object_get(b, "messages"), "system|developer|user|assistant|tool|function",
				    "system|developer", bad);
	if (!st)
		st = read_max_tokens(ch, json_object_get(b, "max_tokens"), "max_tokens", bad);
	if (!st)
		st = read_max_tokens(ch, json_object_get(b, "max_completion_tokens"), "max_completion_tokens", bad);
	const json_t *temp = json_object_get(b, "temperature");
	if (!st && temp && !(json_is_number(temp) && json_number_value(temp) >= 0 && json_number_value(temp) <= 2))
		st = bad_request(bad, "temperature", "temperature must be a number from 0 to 2");
	if (!st)
		st = openai_format(ch, json_object_get(b, "response_format"), bad);
	if (!st)
		st = openai_tools(ch, json_object_get(b, "tools"), json_object_get(b, "tool_choice"), bad);
	ch->stream = json_is_true(json_object_get(b, "stream"));
	ch->include_usage = json_is_true(json_object_get(json_object_get(b, "stream_options"), "include_usage"));
	return st;
}

/* tools [{name, input_schema}]; tool_choice {type: auto|any|tool|none, name}. */
static unsigned anthropic_tools(struct chat *ch, const json_t *tools, const json_t *choice, struct bad *bad)
{
	if (tools && !json_is_array(tools))
		return bad_request(bad, "tools", "tools: Input should be a valid list");
	const char *unused;
	if (find_tool(tools, NULL, "", &unused))
		ch->first_tool = unused;
	const char *type = jstr(choice, "type");
	if (!choice || (type && (strcmp(type, "auto") == 0 || strcmp(type, "none") == 0)))
		return 0;
	if (type && strcmp(type, "any") == 0)
		return force_tool(ch, tools, NULL, "", "input_schema", bad);
	if (type && strcmp(type, "tool") == 0 && jstr(choice, "name"))
		return force_tool(ch, tools, jstr(choice, "name"), "", "input_schema", bad);
	return bad_request(bad, "tool_choice",
			   "tool_choice: {\"type\": \"auto\"|\"any\"|\"none\"} or {\"type\": \"tool\", \"name\": ...}");
}

static unsigned anthropic_read(struct chat *ch, const struct sim_req *rq, struct bad *bad)
{
	const json_t *b = rq->body;
	ch->api = API_ANTHROPIC;
	if (!MHD_lookup_connection_value(rq->con, MHD_HEADER_KIND, "anthropic-version"))
		return bad_request(bad, NULL, "anthropic-version: header is required");
	if (!json_is_object(b))
		return bad_request(bad, NULL, "the body must be a JSON object");
	if (!(ch->model = jstr(b, "model")))
		return bad_request(bad, NULL, "model: Field required");
	if (!json_object_get(b, "max_tokens"))
		return bad_request(bad, NULL, "max_tokens: Field required");
	unsigned st = read_max_tokens(ch, json_object_get(b, "max_tokens"), "max_tokens", bad);
	const json_t *sys = json_object_get(b, "system");
	if (!st && sys && !json_is_string(sys) && !json_is_array(sys))
		st = bad_request(bad, NULL, "system: a string or an array of text blocks");
	if (!st) {
		ch->system = text_of(sys);
		ch->in_bytes = strlen(ch->system);
		st = read_messages(ch, json_object_get(b, "messages"), "user|assistant", "", bad);
	}
	if (!st)
		st = anthropic_tools(ch, json_object_get(b, "tools"), json_object_get(b, "tool_choice"), bad);
	ch->stream = json_is_true(json_object_get(b, "stream"));
	return st;
}

/* ---- answering ------------------------------------------------------------------------------------- */

static void answer_free(struct answer *an)
{
	json_decref(an->input);
	free(an->text);
}

static void answer_tool(struct answer *an, const char *name, json_t *input)
{
	an->is_tool = true;
	snprintf(an->tool_name, sizeof an->tool_name, "%s", name ? name : "tool");
	an->input = input;
	an->text = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
}

/* A JSON answer: the forced tool's input, else the message text. */
static void answer_json(struct answer *an, const struct chat *ch, json_t *doc)
{
	if (ch->tool) {
		answer_tool(an, ch->tool, doc);
		return;
	}
	an->text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
	json_decref(doc);
}

/* The default text: owned. */
static char *echo_text(const struct chat *ch)
{
	return sl_asprintf("Simulated answer: %.*s", (int)utf8_prefix(ch->last_user, MODEL_ECHO_CHARS), ch->last_user);
}

static json_t *default_json(const struct chat *ch)
{
	if (!ch->schema) { /* json_object mode: any object will do */
		char *echo = echo_text(ch);
		json_t *o = json_pack("{s:s}", "answer", echo);
		free(echo);
		return o;
	}
	struct synth sy = {.root = ch->schema, .input = ch->last_user};
	return synth_value(&sy, ch->schema, NULL, 0);
}

/* The answer of rule r (NULL = no rule matched). */
static void answer_build(struct answer *an, const struct chat *ch, const json_t *r)
{
	const json_t *reply = json_object_get(r, "reply");
	const json_t *conf = json_object_get(r, "confidence");
	const json_t *tool = json_object_get(reply, "tool");
	if (json_is_string(json_object_get(reply, "text"))) {
		an->text = sl_strdup(jstr(reply, "text"));
	} else if (tool) {
		const json_t *input = json_object_get(tool, "input");
		const char *name = jstr(tool, "name");
		answer_tool(an, name ? name : ch->tool ? ch->tool : ch->first_tool,
			    input ? json_deep_copy(input) : json_object());
	} else if (json_object_get(reply, "json") || ch->json_wanted) {
		const json_t *fixed = json_object_get(reply, "json");
		json_t *doc = fixed ? json_deep_copy(fixed) : default_json(ch);
		if (conf && json_is_object(doc))
			json_object_set_new(doc, "confidence", json_real(json_number_value(conf)));
		answer_json(an, ch, doc);
	} else {
		an->text = echo_text(ch);
	}
	if (!an->text)
		an->text = sl_strdup("");
	an->tokens_in = tokens_of(ch->in_bytes);
	an->tokens_out = tokens_of(strlen(an->text));
	/* Like a real model, a text answer stops at max_tokens (~4 bytes each). */
	if (!an->is_tool && ch->max_tokens && an->tokens_out > ch->max_tokens) {
		an->text[utf8_cut(an->text, strlen(an->text), (size_t)ch->max_tokens * 4)] = '\0';
		an->tokens_out = ch->max_tokens;
		an->truncated = true;
	}
}

static void new_id(struct sim_model *m, const char *prefix, char *out, size_t cap)
{
	snprintf(out, cap, "%s%012llu", prefix, ++m->next_id);
}

/* ---- OpenAI shapes ------------------------------------------------------------------------------------ */

static const char *openai_finish(const struct answer *an)
{
	return an->truncated ? "length" : an->is_tool ? "tool_calls" : "stop";
}

static json_t *openai_usage(const struct answer *an)
{
	return json_pack("{s:I, s:I, s:I}", "prompt_tokens", an->tokens_in, "completion_tokens", an->tokens_out,
			 "total_tokens", an->tokens_in + an->tokens_out);
}

static json_t *openai_tool_call(const char *call_id, const struct answer *an, const char *args)
{
	return json_pack("{s:i, s:s, s:s, s:{s:s, s:s}}", "index", 0, "id", call_id, "type", "function", "function",
			 "name", an->tool_name, "arguments", args);
}

static json_t *openai_message(struct sim_model *m, const struct answer *an)
{
	json_t *msg = json_pack("{s:s, s:s?, s:n}", "role", "assistant", "content", an->is_tool ? NULL : an->text,
				"refusal");
	if (an->is_tool) {
		char call_id[48];
		new_id(m, "call_sim", call_id, sizeof call_id);
		json_t *call = openai_tool_call(call_id, an, an->text);
		json_object_del(call, "index"); /* only stream deltas carry an index */
		json_object_set_new(msg, "tool_calls", json_pack("[o]", call));
	}
	return msg;
}

static json_t *openai_completion(struct sim_model *m, const struct chat *ch, const struct answer *an)
{
	char id[48];
	new_id(m, "chatcmpl-sim", id, sizeof id);
	return json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s}], s:o, s:s}", "id", id, "object",
			 "chat.completion", "created", (json_int_t)(sl_now_ms() / 1000), "model", ch->model, "choices",
			 "index", 0, "message", openai_message(m, an), "logprobs", "finish_reason", openai_finish(an),
			 "usage", openai_usage(an), "system_fingerprint", MODEL_FINGERPRINT);
}

/* Appends one SSE event (takes data); name NULL = a bare "data:" line. */
static void sse_event(struct sl_buf *b, const char *name, json_t *data)
{
	char *text = json_dumps(data, JSON_COMPACT | SL_JSON_REAL);
	if (name)
		sl_buf_printf(b, "event: %s\n", name);
	sl_buf_printf(b, "data: %s\n\n", text ? text : "{}");
	free(text);
	json_decref(data);
}

struct oa_stream {
	struct sl_buf *b;
	const char *id, *model;
	json_int_t created;
	bool include_usage;
};

/* One chat.completion.chunk (takes delta); finish NULL = not the last. */
static void oa_chunk(const struct oa_stream *st, json_t *delta, const char *finish)
{
	json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:o, s:n, s:s?}]}", "id", st->id, "object",
			      "chat.completion.chunk", "created", st->created, "model", st->model, "system_fingerprint",
			      MODEL_FINGERPRINT, "choices", "index", 0, "delta", delta, "logprobs", "finish_reason", finish);
	if (st->include_usage) /* every chunk but the last then says "usage": null */
		json_object_set_new(c, "usage", json_null());
	sse_event(st->b, NULL, c);
}

/* Text goes out in pieces of a few bytes, each ending on a character
 * boundary (at least one character, however long). */
static size_t next_piece(const char *p)
{
	size_t n = utf8_cut(p, strnlen(p, MODEL_PIECE_BYTES + 1), MODEL_PIECE_BYTES);
	return n ? n : utf8_prefix(p, 1);
}

static char *openai_stream(struct sim_model *m, const struct chat *ch, const struct answer *an)
{
	char id[48], call_id[48];
	new_id(m, "chatcmpl-sim", id, sizeof id);
	struct sl_buf b;
	sl_buf_init(&b, MODEL_SSE_MAX);
	struct oa_stream st = {&b, id, ch->model, sl_now_ms() / 1000, ch->include_usage};
	if (an->is_tool) {
		new_id(m, "call_sim", call_id, sizeof call_id);
		oa_chunk(&st, json_pack("{s:s, s:n, s:[o], s:n}", "role", "assistant", "content", "tool_calls",
					  openai_tool_call(call_id, an, ""), "refusal"),
			 NULL);
	} else {
		oa_chunk(&st, json_pack("{s:s, s:s, s:n}", "role", "assistant", "content", "", "refusal"), NULL);
	}
	for (const char *p = an->text; *p;) {
		size_t n = next_piece(p);
		json_t *piece = json_stringn(p, n);
		oa_chunk(&st,
			 an->is_tool ? json_pack("{s:[{s:i, s:{s:o}}]}", "tool_calls", "index", 0, "function", "arguments", piece)
				     : json_pack("{s:o}", "content", piece),
			 NULL);
		p += n;
	}
	oa_chunk(&st, json_object(), openai_finish(an));
	if (ch->include_usage)
		sse_event(&b, NULL,
			  json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}", "id", id, "object", "chat.completion.chunk",
				    "created", st.created, "model", ch->model, "system_fingerprint", MODEL_FINGERPRINT,
				    "choices", "usage", openai_usage(an)));
	sl_buf_adds(&b, "data: [DONE]\n\n");
	char *out = b.err ? NULL : sl_buf_detach(&b);
	sl_buf_free(&b);
	return out;
}

/* ---- Anthropic shapes ----------------------------------------------------------------------------------- */

static const char *anthropic_stop(const struct answer *an)
{
	return an->truncated ? "max_tokens" : an->is_tool ? "tool_use" : "end_turn";
}

/* The content block; empty = as it starts in a stream. */
static json_t *anthropic_block(struct sim_model *m, const struct answer *an, bool empty)
{
	if (!an->is_tool)
		return json_pack("{s:s, s:s}", "type", "text", "text", empty ? "" : an->text);
	char id[48];
	new_id(m, "toolu_sim", id, sizeof id);
	return json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name", an->tool_name, "input",
			 empty ? json_object() : json_incref(an->input));
}

static json_t *anthropic_message(struct sim_model *m, const struct chat *ch, const struct answer *an, bool start)
{
	char id[48];
	new_id(m, "msg_sim", id, sizeof id);
	json_t *content = start ? json_array() : json_pack("[o]", anthropic_block(m, an, false));
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s?, s:n, s:{s:I, s:I}}", "id", id, "type", "message", "role",
			 "assistant", "model", ch->model, "content", content, "stop_reason",
			 start ? NULL : anthropic_stop(an), "stop_sequence", "usage", "input_tokens", an->tokens_in,
			 "output_tokens", start ? (json_int_t)1 : an->tokens_out);
}

static char *anthropic_stream(struct sim_model *m, const struct chat *ch, const struct answer *an)
{
	struct sl_buf b;
	sl_buf_init(&b, MODEL_SSE_MAX);
	sse_event(&b, "message_start",
		  json_pack("{s:s, s:o}", "type", "message_start", "message", anthropic_message(m, ch, an, true)));
	sse_event(&b, "content_block_start", json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index", 0,
						       "content_block", anthropic_block(m, an, true)));
	sse_event(&b, "ping", json_pack("{s:s}", "type", "ping"));
	for (const char *p = an->text; *p;) {
		size_t n = next_piece(p);
		json_t *delta = an->is_tool ? json_pack("{s:s, s:s%}", "type", "input_json_delta", "partial_json", p, n)
					    : json_pack("{s:s, s:s%}", "type", "text_delta", "text", p, n);
		sse_event(&b, "content_block_delta",
			  json_pack("{s:s, s:i, s:o}", "type", "content_block_delta", "index", 0, "delta", delta));
		p += n;
	}
	sse_event(&b, "content_block_stop", json_pack("{s:s, s:i}", "type", "content_block_stop", "index", 0));
	sse_event(&b, "message_delta",
		  json_pack("{s:s, s:{s:s, s:n}, s:{s:I}}", "type", "message_delta", "delta", "stop_reason",
			    anthropic_stop(an), "stop_sequence", "usage", "output_tokens", an->tokens_out));
	sse_event(&b, "message_stop", json_pack("{s:s}", "type", "message_stop"));
	char *out = b.err ? NULL : sl_buf_detach(&b);
	sl_buf_free(&b);
	return out;
}

/* ---- the call log ---------------------------------------------------------------------------------------- */

static void calls_clear(struct sim_model *m)
{
	for (size_t i = 0; i < m->ncalls; i++)
		json_decref(m->calls[(m->call_head + i) % MODEL_CALLS_MAX].rec);
	m->call_head = m->ncalls = m->call_bytes = 0;
}

/* Appends rec (taken), dropping the oldest past either cap. */
static void calls_add(struct sim_model *m, json_t *rec, size_t bytes)
{
	while (m->ncalls && (m->ncalls == MODEL_CALLS_MAX || m->call_bytes + bytes > MODEL_CALLS_BYTES_MAX)) {
		struct model_call *old = &m->calls[m->call_head];
		json_decref(old->rec);
		m->call_bytes -= old->bytes;
		m->call_head = (m->call_head + 1) % MODEL_CALLS_MAX;
		m->ncalls--;
	}
	m->calls[(m->call_head + m->ncalls) % MODEL_CALLS_MAX] = (struct model_call){rec, bytes};
	m->ncalls++;
	m->call_bytes += bytes;
}

/* One entry of /_sim/calls; body is the request as received (borrowed). */
static void calls_note(struct sim_model *m, struct MHD_Connection *con, const char *url, json_t *body, size_t bytes,
		       unsigned status, const struct answer *an, int rule)
{
	char ts[32];
	sl_time_format(sl_now_ms(), ts);
	json_t *rec = json_pack("{s:s, s:s, s:s, s:s?, s:b, s:i, s:I, s:I, s:O*, s:O*, s:O?}", "at", ts, "api",
				api_of(url) == API_ANTHROPIC ? "anthropic" : "openai", "path", url, "model",
				jstr(body, "model"), "stream", json_is_true(json_object_get(body, "stream")), "status",
				(int)status, "tokens_in", an ? an->tokens_in : 0, "tokens_out", an ? an->tokens_out : 0,
				"messages", json_object_get(body, "messages"), "system", json_object_get(body, "system"),
				"request", body);
	if (!rec)
		return;
	json_object_set_new(rec, "rule", rule >= 0 ? json_integer(rule) : json_null());
	/* what ties the call to a run: tests follow one id across systems */
	const char *corr = con ? MHD_lookup_connection_value(con, MHD_HEADER_KIND, "X-Correlation-Id") : NULL;
	const char *tp = con ? MHD_lookup_connection_value(con, MHD_HEADER_KIND, "traceparent") : NULL;
	json_object_set_new(rec, "correlation_id", corr ? json_string(corr) : json_null());
	json_object_set_new(rec, "traceparent", tp ? json_string(tp) : json_null());
	calls_add(m, rec, bytes);
}

static json_t *calls_json(const struct sim_model *m)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < m->ncalls; i++)
		json_array_append(arr, m->calls[(m->call_head + i) % MODEL_CALLS_MAX].rec);
	return json_pack("{s:o, s:I}", "calls", arr, "count", (json_int_t)m->ncalls);
}

/* ---- routes ------------------------------------------------------------------------------------------------ */

static bool list_has(const json_t *names, const char *name)
{
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v) {
		if (strcmp(json_string_value(v), name) == 0)
			return true;
	}
	return false;
}

static bool model_known(const struct sim_model *m, const char *model)
{
	return !m->models || list_has(m->models, model);
}

/* Renders the answer in the API's shape, plain or as an SSE stream. */
static void answer_send(struct sim_model *m, const struct chat *ch, const struct answer *an, struct sim_resp *rp)
{
	rp->status = 200;
	if (ch->stream) {
		rp->text = ch->api == API_OPENAI ? openai_stream(m, ch, an) : anthropic_stream(m, ch, an);
		rp->ctype = "text/event-stream";
		if (!rp->text)
			model_error(rp, ch->api, 500, "the streamed answer is too large", NULL, NULL);
	} else {
		rp->body = ch->api == API_OPENAI ? openai_completion(m, ch, an) : anthropic_message(m, ch, an, false);
	}
}

/* The error answer of rule i. */
static void rule_error(const json_t *r, int i, const struct chat *ch, struct sim_resp *rp)
{
	unsigned status = (unsigned)json_integer_value(json_object_get(r, "status"));
	char detail[192];
	snprintf(detail, sizeof detail, "simulated error %u (rules[%d]%s%.100s)", status, i, jstr(r, "name") ? " " : "",
		 jstr(r, "name") ? jstr(r, "name") : "");
	model_error(rp, ch->api, status, detail, NULL, NULL);
}

static void chat_completion(struct sl_sim *s, const struct sim_req *rq, enum api api, struct sim_resp *rp)
{
	struct sim_model *m = s->model;
	struct chat ch = {.api = api, .body = rq->body};
	struct answer an = {0};
	struct bad bad = {"", NULL};
	int rule = -1;
	unsigned st = api == API_OPENAI ? openai_read(&ch, rq->body, &bad) : anthropic_read(&ch, rq, &bad);
	if (st) {
		model_error(rp, api, st, bad.msg, bad.param, NULL);
	} else if (!model_known(m, ch.model)) {
		snprintf(bad.msg, sizeof bad.msg, "The model `%.100s` does not exist or you do not have access to it.",
			 ch.model);
		model_error(rp, api, 404, bad.msg, "model", "model_not_found");
	} else {
		rule = rule_pick(m, &ch);
		const json_t *r = rule >= 0 ? json_array_get(m->rules, (size_t)rule) : NULL;
		const json_t *lat = json_object_get(r, "latency_ms");
		rp->delay_ms = lat ? (int)json_integer_value(lat) : 0;
		if (json_object_get(r, "status")) {
			rule_error(r, rule, &ch, rp);
			an.tokens_in = tokens_of(ch.in_bytes);
		} else {
			answer_build(&an, &ch, r);
			answer_send(m, &ch, &an, rp);
		}
	}
	/* a 400 before the model read anything counts no tokens */
	calls_note(m, rq->con, rq->url, rq->body, rq->body ? json_dumpb(rq->body, NULL, 0, JSON_COMPACT | SL_JSON_REAL) : 0, rp->status,
		   st ? NULL : &an, rule);
	answer_free(&an);
	chat_free(&ch);
}

/* GET /v1/models: OpenAI's list, or Anthropic's when anthropic-version is sent. */
static void list_models(struct sl_sim *s, const struct sim_req *rq, struct sim_resp *rp)
{
	bool anthropic = MHD_lookup_connection_value(rq->con, MHD_HEADER_KIND, "anthropic-version") != NULL;
	json_t *names = s->model->models ? json_incref(s->model->models) : json_array();
	if (!s->model->models) { /* without a list: the models the rules name */
		size_t i;
		json_t *r;
		json_array_foreach(s->model->rules, i, r) {
			const char *name = jstr(json_object_get(r, "match"), "model");
			if (name && !list_has(names, name))
				json_array_append_new(names, json_string(name));
		}
	}
	json_t *data = json_array();
	size_t i;
	json_t *n;
	json_array_foreach(names, i, n) {
		const char *id = json_string_value(n);
		json_array_append_new(data, anthropic ? json_pack("{s:s, s:s, s:s, s:s}", "type", "model", "id", id,
								  "display_name", id, "created_at", "2026-01-01T00:00:00Z")
						      : json_pack("{s:s, s:s, s:i, s:s}", "id", id, "object", "model",
								  "created", 0, "owned_by", "sluice-sim"));
	}
	json_decref(names);
	rp->status = 200;
	if (anthropic)
		rp->body = json_pack("{s:o, s:b, s:s?, s:s?}", "data", data, "has_more", 0, "first_id",
				     jstr(json_array_get(data, 0), "id"), "last_id",
				     jstr(json_array_get(data, json_array_size(data) - 1), "id"));
	else
		rp->body = json_pack("{s:s, s:o}", "object", "list", "data", data);
}

static void model_handle(struct sl_sim *s, const struct sim_req *rq, struct sim_resp *rp)
{
	const char *u = rq->url;
	bool post = strcmp(rq->method, "POST") == 0;
	enum api api = api_of(u);
	bool chat = strcmp(u, "/v1/chat/completions") == 0 || strcmp(u, "/chat/completions") == 0 ||
		    strcmp(u, "/v1/messages") == 0;
	if (chat && post) {
		chat_completion(s, rq, api, rp);
	} else if ((strcmp(u, "/v1/models") == 0 || strcmp(u, "/models") == 0) && strcmp(rq->method, "GET") == 0) {
		list_models(s, rq, rp);
	} else if (chat || strcmp(u, "/v1/models") == 0 || strcmp(u, "/models") == 0) {
		snprintf(rp->allow, sizeof rp->allow, "%s", chat ? "POST" : "GET");
		model_error(rp, api, 405, "method not allowed", NULL, NULL);
	} else {
		char detail[160];
		snprintf(detail, sizeof detail, "Invalid URL (%s %.100s)", rq->method, u);
		model_error(rp, api, 404, detail, NULL, NULL);
	}
}

/* A request the core refused (401, 429, a fault, a bad body): logged
 * too, so /_sim/calls shows everything that reached the simulator. */
static void model_reject(struct sl_sim *s, const char *url, const struct sl_buf *body, unsigned status)
{
	json_t *doc = body->len ? json_loadb(body->p, body->len, JSON_DECODE_ANY, NULL) : NULL;
	if (!doc && body->len) /* kept as text when it is not JSON; dropped when not UTF-8 either */
		doc = json_stringn(body->p, body->len);
	calls_note(s->model, NULL, url, doc, body->len, status, NULL, -1);
	json_decref(doc);
}

/* ---- admin: /_sim/calls, /_sim/rules ---------------------------------------------------------------------- */

static void rules_set(struct sim_model *m, json_t *body, struct sim_resp *rp)
{
	char msg[256];
	json_t *rules = rules_check(body, msg, sizeof msg);
	if (!rules) {
		sim_problem(rp, 422, "rules", "%s", msg);
		return;
	}
	rules_install(m, rules);
	rp->status = 200;
	rp->body = json_pack("{s:I}", "rules", (json_int_t)json_array_size(rules));
}

static json_t *rules_json(const struct sim_model *m)
{
	json_t *used = json_array();
	for (size_t i = 0; i < json_array_size(m->rules); i++)
		json_array_append_new(used, json_integer(m->used[i]));
	return json_pack("{s:O, s:o}", "rules", m->rules, "used", used);
}

static bool model_admin(struct sl_sim *s, const char *method, const char *what, json_t *body, struct sim_resp *rp)
{
	struct sim_model *m = s->model;
	bool get = strcmp(method, "GET") == 0;
	if (strcmp(what, "calls") == 0) {
		if (get) {
			rp->status = 200;
			rp->body = calls_json(m);
		} else if (strcmp(method, "DELETE") == 0) {
			calls_clear(m);
			rp->status = 200;
			rp->body = json_pack("{s:i}", "count", 0);
		} else {
			snprintf(rp->allow, sizeof rp->allow, "GET, DELETE");
			sim_problem(rp, 405, NULL, "use GET or DELETE on /_sim/calls");
		}
		return true;
	}
	if (strcmp(what, "rules") == 0) {
		if (get) {
			rp->status = 200;
			rp->body = rules_json(m);
		} else if (strcmp(method, "POST") == 0) {
			rules_set(m, body, rp);
		} else {
			snprintf(rp->allow, sizeof rp->allow, "GET, POST");
			sim_problem(rp, 405, NULL, "use GET or POST on /_sim/rules");
		}
		return true;
	}
	return false;
}

/* ---- life cycle ---------------------------------------------------------------------------------------------- */

/* "a, b" -> ["a", "b"]. */
static json_t *models_parse(const char *list)
{
	json_t *arr = json_array();
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		const char *a = p, *e = p + n;
		while (a < e && isspace((unsigned char)*a))
			a++;
		while (e > a && isspace((unsigned char)e[-1]))
			e--;
		if (e > a)
			json_array_append_new(arr, json_stringn(a, (size_t)(e - a)));
		p += n + (p[n] == ',');
	}
	return arr;
}

static int model_setup(struct sl_sim *s, const struct sl_sim_opts *o, struct sl_err *err)
{
	struct sim_model *m = sl_xcalloc(1, sizeof *m);
	s->model = m;
	if (o->models) {
		m->models = models_parse(o->models);
		if (json_array_size(m->models) == 0)
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "sim: --models wants a comma list of model names");
	}
	if (o->rules_file) {
		int rc = rules_load(o->rules_file, &m->start_rules, err);
		if (rc) {
			sl_err_prefix(err, "sim: rules: ");
			return rc;
		}
	} else {
		m->start_rules = json_array();
	}
	return 0;
}

static int model_init(struct sl_sim *s)
{
	struct sim_model *m = s->model;
	rules_install(m, json_deep_copy(m->start_rules));
	m->next_id = 0;
	return m->rules ? 0 : -1;
}

static void model_free(struct sl_sim *s)
{
	struct sim_model *m = s->model;
	if (!m)
		return;
	calls_clear(m);
	json_decref(m->rules);
	free(m->used);
	m->rules = NULL;
	m->used = NULL;
}

static void model_teardown(struct sl_sim *s)
{
	struct sim_model *m = s->model;
	if (!m)
		return;
	json_decref(m->start_rules);
	json_decref(m->models);
	free(m);
	s->model = NULL;
}

const struct sim_ops sim_model_ops = {
	.setup_fn = model_setup,
	.init_fn = model_init,
	.free_fn = model_free,
	.teardown_fn = model_teardown,
	.handle_fn = model_handle,
	.error_fn = model_error_fn,
	.admin_fn = model_admin,
	.reject_fn = model_reject,
	/* a completion cut off mid-string, as a dropped proxy would leave it */
	.malformed = "{\"id\":\"chatcmpl-sim\",\"object\":\"chat.completion\","
		     "\"choices\":[{\"index\":0,\"message\":{\"content\":\"",
	.idempotency = false,
	.drift = false,
};
