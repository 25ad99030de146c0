/*
 * mask.c: sensitive values out of text bound for an external model, and
 * back into its answer. Each distinct value gets a token "[PII_n]" for the
 * life of one task, so a draft that says "Dear [PII_1]" is re-filled
 * locally and the provider never sees the name.
 *
 * What is masked: the values of the contract fields marked "x-pii": true
 * (given by the caller), and what the pattern detectors find in free text
 * (e-mail addresses, phone numbers, IBANs: ai_pii_scan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai/ai_int.h"

#define MASK_VALUE_MIN 3 /* shorter values would mangle ordinary words */
#define MASK_VALUES_MAX 1024

struct ai_mask {
	char **values; /* values[i] is masked as [PII_{i+1}] */
	size_t n;
};

struct ai_mask *ai_mask_new(void)
{
	return sl_xcalloc(1, sizeof(struct ai_mask));
}

void ai_mask_free(struct ai_mask *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		sl_secret_free(m->values[i]);
	free(m->values);
	free(m);
}

size_t ai_mask_count(const struct ai_mask *m)
{
	return m ? m->n : 0;
}

static void add_value(struct ai_mask *m, const char *v, size_t len)
{
	if (len < MASK_VALUE_MIN || m->n >= MASK_VALUES_MAX)
		return;
	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->values[i]) == len && memcmp(m->values[i], v, len) == 0)
			return;
	m->values = sl_xrealloc(m->values, (m->n + 1) * sizeof *m->values);
	m->values[m->n++] = sl_strndup(v, len);
}

static void add_json(struct ai_mask *m, const json_t *v)
{
	if (json_is_string(v)) {
		add_value(m, json_string_value(v), json_string_length(v));
	} else if (json_is_array(v)) {
		size_t i;
		const json_t *e;
		json_array_foreach(v, i, e)
			add_json(m, e);
	} else if (json_is_object(v)) {
		const char *k;
		const json_t *e;
		json_object_foreach((json_t *)v, k, e)
			add_json(m, e);
	}
}

void ai_mask_add_values(struct ai_mask *m, const json_t *values)
{
	add_json(m, values);
}

static void on_found(const char *kind, const char *text, size_t off, size_t len, void *ud)
{
	(void)kind;
	add_value(ud, text + off, len);
}

/* The longest value first, so "ann@example.com" is not cut by "ann". */
static int by_length_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Replaces every from[i] by to[i] in text (owned result). */
static char *replace_all(const char *text, char *const *from, char *const *to, size_t n)
{
	struct sl_buf out;
	sl_buf_init(&out, SL_BUF_MAX_HTTP_BODY);
	const char *p = text;
	while (*p) {
		size_t best = n, blen = 0;
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(from[i]);
			if (l > blen && strncmp(p, from[i], l) == 0) {
				best = i;
				blen = l;
			}
		}
		if (best < n) {
			sl_buf_adds(&out, to[best]);
			p += blen;
		} else {
			sl_buf_add(&out, p, 1);
			p++;
		}
	}
	char *s = sl_strdup(sl_buf_str(&out));
	sl_buf_free(&out);
	return s;
}

static char **tokens(const struct ai_mask *m)
{
	char **t = sl_xcalloc(m->n + 1, sizeof *t);
	for (size_t i = 0; i < m->n; i++)
		t[i] = sl_asprintf("[PII_%zu]", i + 1);
	return t;
}

static void tokens_free(char **t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i]);
	free(t);
}

char *ai_mask_text(struct ai_mask *m, const char *text)
{
	if (!text)
		return NULL;
	ai_pii_scan(text, on_found, m);
	if (m->n == 0)
		return sl_strdup(text);
	/* sort a copy of the pairs by value length; tokens keep their numbers */
	char **tok = tokens(m);
	char **from = sl_xcalloc(m->n, sizeof *from), **to = sl_xcalloc(m->n, sizeof *to);
	size_t *idx = sl_xcalloc(m->n, sizeof *idx);
	char **sorted = sl_xcalloc(m->n, sizeof *sorted);
	memcpy(sorted, m->values, m->n * sizeof *sorted);
	qsort(sorted, m->n, sizeof *sorted, by_length_desc);
	for (size_t i = 0; i < m->n; i++) {
		for (size_t j = 0; j < m->n; j++)
			if (m->values[j] == sorted[i])
				idx[i] = j;
		from[i] = sorted[i];
		to[i] = tok[idx[i]];
	}
	char *out = replace_all(text, from, to, m->n);
	free(sorted);
	free(idx);
	free(from);
	free(to);
	tokens_free(tok, m->n);
	return out;
}

json_t *ai_mask_messages(struct ai_mask *m, const json_t *messages)
{
	json_t *copy = json_deep_copy(messages);
	size_t i;
	json_t *msg;
	json_array_foreach(copy, i, msg)
	{
		json_t *c = json_object_get(msg, "content");
		if (json_is_string(c)) {
			char *masked = ai_mask_text(m, json_string_value(c));
			json_object_set_new(msg, "content", json_string(masked));
			free(masked);
		} else if (json_is_array(c)) { /* [{type: text, text}] parts */
			size_t k;
			json_t *part;
			json_array_foreach(c, k, part)
			{
				const char *t = json_string_value(json_object_get(part, "text"));
				if (!t)
					continue;
				char *masked = ai_mask_text(m, t);
				json_object_set_new(part, "text", json_string(masked));
				free(masked);
			}
		}
	}
	return copy;
}

char *ai_unmask_text(const struct ai_mask *m, const char *text)
{
	if (!text)
		return NULL;
	if (!m || m->n == 0)
		return sl_strdup(text);
	char **tok = tokens(m);
	char *out = replace_all(text, tok, m->values, m->n);
	tokens_free(tok, m->n);
	return out;
}

json_t *ai_unmask_json(const struct ai_mask *m, const json_t *v)
{
	if (json_is_string(v)) {
		char *s = ai_unmask_text(m, json_string_value(v));
		json_t *r = json_string(s);
		free(s);
		return r;
	}
	if (json_is_array(v)) {
		json_t *a = json_array();
		size_t i;
		const json_t *e;
		json_array_foreach(v, i, e)
			json_array_append_new(a, ai_unmask_json(m, e));
		return a;
	}
	if (json_is_object(v)) {
		json_t *o = json_object();
		const char *k;
		const json_t *e;
		json_object_foreach((json_t *)v, k, e)
			json_object_set_new(o, k, ai_unmask_json(m, e));
		return o;
	}
	return json_deep_copy(v);
}
