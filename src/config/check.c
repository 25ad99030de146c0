/*
 * check.c: a block of YAML checked against its key table (STYLE.md habit 8),
 * and errors placed at the position of a JSON pointer.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"

/* Keys of one block; did-you-mean candidates live on the stack. */
#define CHECK_KEYS_MAX 64

static void vreport(struct conf_file *cf, int line, int col, const char *fmt, va_list ap)
{
	char msg[SL_ERR_MSG_MAX];
	vsnprintf(msg, sizeof msg, fmt, ap);
	sl_diags_add(cf->diags, cf->file, line, col, "%s", msg);
	cf->nerrors++;
}

void conf_pos(const struct conf_file *cf, const char *pointer, int *line, int *col)
{
	sl_locmap_find(cf->locs, pointer, line, col);
}

void conf_err(struct conf_file *cf, const char *pointer, const char *fmt, ...)
{
	int line, col;
	sl_locmap_find(cf->locs, pointer, &line, &col);
	va_list ap;
	va_start(ap, fmt);
	vreport(cf, line, col, fmt, ap);
	va_end(ap);
}

void conf_err_key(struct conf_file *cf, const char *pointer, const char *fmt, ...)
{
	int line, col;
	sl_locmap_find_key(cf->locs, pointer, &line, &col);
	va_list ap;
	va_start(ap, fmt);
	vreport(cf, line, col, fmt, ap);
	va_end(ap);
}

const char *conf_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "a mapping";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "empty";
	}
	return "a value";
}

bool conf_type_ok(enum sl_conf_type t, const json_t *v)
{
	int64_t ms;
	switch (t) {
	case SL_CONF_STRING: return json_is_string(v);
	case SL_CONF_INT: return json_is_integer(v);
	case SL_CONF_BOOL: return json_is_boolean(v);
	case SL_CONF_OBJECT: return json_is_object(v);
	case SL_CONF_ARRAY: return json_is_array(v);
	case SL_CONF_ANY: return true;
	case SL_CONF_DURATION:
		return (json_is_integer(v) && json_integer_value(v) >= 0) ||
		       (json_is_string(v) && sl_parse_duration_ms(json_string_value(v), &ms) == 0 && ms >= 0);
	case SL_CONF_JQ: return json_is_string(v);
	}
	return false;
}

const char *conf_type_want(enum sl_conf_type t)
{
	switch (t) {
	case SL_CONF_STRING: return "a string";
	case SL_CONF_INT: return "an integer";
	case SL_CONF_BOOL: return "true or false";
	case SL_CONF_OBJECT: return "a mapping";
	case SL_CONF_ARRAY: return "a list";
	case SL_CONF_ANY: return "a value";
	case SL_CONF_DURATION: return "a duration like \"30s\", \"500ms\", \"4h\" (or milliseconds)";
	case SL_CONF_JQ: return "a jq expression (a string)";
	}
	return "a value";
}

static const struct sl_conf_key *find_key(const struct sl_conf_key *keys, const char *name)
{
	for (const struct sl_conf_key *k = keys; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static void report_unknown(struct conf_file *cf, const char *pointer, const char *key, const char *block,
			   const struct sl_conf_key *keys)
{
	const char *names[CHECK_KEYS_MAX + 1];
	size_t n = 0;
	for (const struct sl_conf_key *k = keys; k->name && n < CHECK_KEYS_MAX; k++)
		names[n++] = k->name;
	names[n] = NULL;
	char p[CONF_PTR_MAX];
	conf_ptr(p, pointer, key);
	const char *best = sl_did_you_mean(key, names);
	if (best)
		conf_err_key(cf, p, "unknown key '%s' in %s (did you mean '%s'?)", key, block, best);
	else
		conf_err_key(cf, p, "unknown key '%s' in %s", key, block);
}

int conf_check_keys(struct conf_file *cf, const json_t *obj, const char *pointer, const char *block,
		    const struct sl_conf_key *keys)
{
	int before = cf->nerrors;
	if (!json_is_object(obj)) {
		conf_err(cf, pointer, "%s must be a mapping, not %s", block, conf_kind(obj));
		return cf->nerrors - before;
	}
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		const struct sl_conf_key *k = find_key(keys, key);
		if (!k) {
			report_unknown(cf, pointer, key, block, keys);
			continue;
		}
		if (!conf_type_ok(k->type, v)) {
			char p[CONF_PTR_MAX];
			conf_ptr(p, pointer, key);
			/* The value is not echoed: it might be a secret typed in by mistake. */
			conf_err(cf, p, "'%s' must be %s, not %s", key, conf_type_want(k->type), conf_kind(v));
		}
	}
	for (const struct sl_conf_key *k = keys; k->name; k++)
		if (k->required && !json_object_get(obj, k->name))
			conf_err(cf, pointer, "%s is missing the required key '%s'", block, k->name);
	return cf->nerrors - before;
}

const char *conf_str(const json_t *obj, const char *key, const char *def)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : def;
}

int64_t conf_duration(const json_t *v, int64_t def)
{
	int64_t ms;
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return json_integer_value(v);
	if (json_is_string(v) && sl_parse_duration_ms(json_string_value(v), &ms) == 0 && ms >= 0)
		return ms;
	return def;
}
