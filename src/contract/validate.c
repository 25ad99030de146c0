/*
 * Validation: one walk of the compiled tree per instance.
 *
 * Two modes share the code. Without an error list the walk returns at the
 * first failure (the engine's hot path: "is this webhook valid?"). With a
 * list it keeps going and records every failure with the instance pointer.
 *
 * unevaluatedProperties / unevaluatedItems need to know what the other
 * keywords looked at, through $ref, allOf/anyOf/oneOf, if/then/else and
 * dependentSchemas. That is an annotation set per instance location
 * (struct ann); it is only collected where a schema up the in-place chain
 * has an unevaluated* keyword, and a subschema that fails contributes
 * nothing (its part is cut off again with a mark).
 *
 * All state lives in struct vctx on the caller's stack (plus the PCRE2
 * match data), so any number of threads may validate at once.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/contract_int.h"

/* ---- annotations: what was evaluated at one instance location --------------------- */
struct ann {
	const char **keys; /* jansson's key pointers: stable while the instance lives */
	size_t nkeys, capkeys;
	size_t *idx; /* array indexes matched by "contains" */
	size_t nidx, capidx;
	size_t upto; /* items [0, upto) evaluated by prefixItems */
	bool all_keys, all_items;
};
struct ann_mark {
	size_t nkeys, nidx, upto;
	bool all_keys, all_items;
};

static struct ann_mark ann_mark(const struct ann *a)
{
	return (struct ann_mark){a->nkeys, a->nidx, a->upto, a->all_keys, a->all_items};
}

static void ann_reset(struct ann *a, const struct ann_mark *m)
{
	a->nkeys = m->nkeys;
	a->nidx = m->nidx;
	a->upto = m->upto;
	a->all_keys = m->all_keys;
	a->all_items = m->all_items;
}

static void ann_merge(struct ann *dst, const struct ann *src)
{
	if (src->all_keys)
		dst->all_keys = true;
	else if (!dst->all_keys)
		for (size_t i = 0; i < src->nkeys; i++)
			SLC_PUSH(dst->keys, dst->nkeys, dst->capkeys, src->keys[i]);
	if (src->all_items)
		dst->all_items = true;
	else if (!dst->all_items)
		for (size_t i = 0; i < src->nidx; i++)
			SLC_PUSH(dst->idx, dst->nidx, dst->capidx, src->idx[i]);
	dst->upto = SL_MAX(dst->upto, src->upto);
}

static void ann_free(struct ann *a)
{
	free(a->keys);
	free(a->idx);
}

/* ---- context and errors ---------------------------------------------------------------- */
struct vctx {
	const struct sl_contracts *r;
	struct sl_verrs *errs; /* NULL: verdict only, or inside anyOf/not/... */
	struct sl_buf path;    /* instance pointer, kept only while errs != NULL */
	pcre2_match_data *md;
	unsigned depth;
	size_t nscope;
	const struct slc_res *scope[SLC_MAX_DEPTH]; /* dynamic scope for $dynamicRef */
};

#define FAIL_FAST(c, ok)                        \
	do {                                    \
		if (!(ok) && !(c)->errs)        \
			return false;           \
	} while (0)

static void verr_add(struct vctx *c, const char *kw, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void verr_add(struct vctx *c, const char *kw, const char *fmt, ...)
{
	struct sl_verrs *e = c->errs;
	if (!e)
		return;
	size_t max = e->max ? e->max : SLC_VERRS_DEFAULT;
	if (e->n >= max)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct sl_verr v = {
		.pointer = sl_strdup(sl_buf_str(&c->path)),
		.keyword = sl_strdup(kw),
		.msg = sl_strdup(msg),
	};
	SLC_PUSH(e->v, e->n, e->cap, v);
}

static size_t path_push(struct vctx *c, const char *tok, size_t len)
{
	size_t mark = c->path.len;
	if (c->errs)
		slc_path_push(&c->path, tok, len);
	return mark;
}

static size_t path_push_idx(struct vctx *c, size_t i)
{
	size_t mark = c->path.len;
	if (c->errs)
		sl_buf_printf(&c->path, "/%zu", i);
	return mark;
}

static void path_pop(struct vctx *c, size_t mark)
{
	c->path.len = mark;
	if (c->path.p)
		c->path.p[mark] = '\0';
}

/* A short rendering of a JSON value for messages. */
static void fmt_json(const json_t *v, char *out, size_t n)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
	if (!s) {
		snprintf(out, n, "?");
		return;
	}
	if (strlen(s) >= n && n > 4)
		snprintf(out, n, "%.*s...", (int)(n - 4), s);
	else
		snprintf(out, n, "%s", s);
	free(s);
}

static void fmt_num(const struct slc_num *v, char out[40])
{
	if (v->is_int)
		snprintf(out, 40, "%" JSON_INTEGER_FORMAT, v->i);
	else
		snprintf(out, 40, "%.15g", v->d);
}

/* ---- JSON equality (1 == 1.0) and hashing ------------------------------------------------ */
static bool num_equal(const json_t *a, const json_t *b)
{
	if (json_is_integer(a) && json_is_integer(b))
		return json_integer_value(a) == json_integer_value(b);
	long double x = json_is_integer(a) ? (long double)json_integer_value(a) : json_real_value(a);
	long double y = json_is_integer(b) ? (long double)json_integer_value(b) : json_real_value(b);
	return x == y;
}

bool slc_json_equal(const json_t *a, const json_t *b)
{
	if (a == b)
		return true;
	if (json_is_number(a) && json_is_number(b))
		return num_equal(a, b);
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
	case JSON_ARRAY: {
		size_t n = json_array_size(a);
		if (n != json_array_size(b))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!slc_json_equal(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	}
	case JSON_OBJECT: {
		if (json_object_size(a) != json_object_size(b))
			return false;
		const char *k;
		size_t klen;
		json_t *v;
		json_object_keylen_foreach((json_t *)a, k, klen, v) {
			const json_t *w = json_object_getn(b, k, klen);
			if (!w || !slc_json_equal(v, w))
				return false;
		}
		return true;
	}
	default:
		return true; /* true, false, null: same type is same value */
	}
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* Consistent with slc_json_equal: 1 and 1.0 hash alike, key order does not count. */
static uint64_t json_hash(const json_t *x)
{
	switch (json_typeof(x)) {
	case JSON_INTEGER:
		return mix(1, (uint64_t)json_integer_value(x));
	case JSON_REAL: {
		double d = json_real_value(x);
		if (d == floor(d) && d >= -9.2e18 && d <= 9.2e18)
			return mix(1, (uint64_t)(json_int_t)d);
		uint64_t bits;
		memcpy(&bits, &d, sizeof(bits));
		return mix(2, bits);
	}
	case JSON_STRING:
		return mix(3, hash_bytes(json_string_value(x), json_string_length(x)));
	case JSON_ARRAY: {
		uint64_t h = 4;
		for (size_t i = 0; i < json_array_size(x); i++)
			h = mix(h, json_hash(json_array_get(x, i)));
		return h;
	}
	case JSON_OBJECT: {
		uint64_t sum = 0;
		const char *k;
		size_t klen;
		json_t *v;
		json_object_keylen_foreach((json_t *)x, k, klen, v)
			sum += mix(hash_bytes(k, klen), json_hash(v));
		return mix(5, sum);
	}
	case JSON_TRUE:
		return 6;
	case JSON_FALSE:
		return 7;
	case JSON_NULL:
		return 8;
	}
	return 0;
}

/* ---- simple assertions ----------------------------------------------------------------------- */
static unsigned inst_type(const json_t *x)
{
	switch (json_typeof(x)) {
	case JSON_OBJECT:
		return SLC_T_OBJECT;
	case JSON_ARRAY:
		return SLC_T_ARRAY;
	case JSON_STRING:
		return SLC_T_STRING;
	case JSON_INTEGER:
		return SLC_T_INTEGER | SLC_T_NUMBER;
	case JSON_REAL: {
		/* 1.0 is an integer for JSON Schema */
		double d = json_real_value(x);
		return SLC_T_NUMBER | (isfinite(d) && d == floor(d) ? SLC_T_INTEGER : 0);
	}
	case JSON_TRUE:
	case JSON_FALSE:
		return SLC_T_BOOLEAN;
	case JSON_NULL:
		return SLC_T_NULL;
	}
	return 0;
}

static const char *inst_type_name(const json_t *x)
{
	static const char *const names[] = {
		[JSON_OBJECT] = "object", [JSON_ARRAY] = "array",    [JSON_STRING] = "string",
		[JSON_INTEGER] = "integer", [JSON_REAL] = "number", [JSON_TRUE] = "boolean",
		[JSON_FALSE] = "boolean", [JSON_NULL] = "null",
	};
	return names[json_typeof(x)];
}

static void type_names(unsigned types, char *out, size_t n)
{
	static const struct {
		unsigned bit;
		const char *name;
	} t[] = {
		{SLC_T_OBJECT, "object"}, {SLC_T_ARRAY, "array"},   {SLC_T_STRING, "string"},
		{SLC_T_NUMBER, "number"}, {SLC_T_INTEGER, "integer"}, {SLC_T_BOOLEAN, "boolean"},
		{SLC_T_NULL, "null"},
	};
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < SL_ARRAY_LEN(t); i++) {
		if (!(types & t[i].bit))
			continue;
		if (t[i].bit == SLC_T_INTEGER && (types & SLC_T_NUMBER))
			continue; /* "number" already says it */
		int w = snprintf(out + len, n - len, "%s%s", len ? " or " : "", t[i].name);
		if (w < 0 || (size_t)w >= n - len)
			break;
		len += (size_t)w;
	}
}

/* Sign of x - v. */
static int num_cmp(const json_t *x, const struct slc_num *v)
{
	if (json_is_integer(x) && v->is_int) {
		json_int_t a = json_integer_value(x);
		return a < v->i ? -1 : a > v->i;
	}
	long double a = json_is_integer(x) ? (long double)json_integer_value(x) : json_real_value(x);
	long double b = v->is_int ? (long double)v->i : v->d;
	return a < b ? -1 : a > b;
}

static bool multiple_ok(const json_t *x, const struct slc_num *m)
{
	if (json_is_integer(x) && m->is_int)
		return json_integer_value(x) % m->i == 0; /* m > 0, checked at compile */
	double q = json_number_value(x) / m->d;
	if (!isfinite(q))
		return false;
	/* both operands went through decimal -> binary rounding: 0.0075 / 0.0001
	 * is 75.00000000000001; allow a few ulps of q, no more */
	return fabs(q - nearbyint(q)) <= fabs(q) * 4 * DBL_EPSILON;
}

static bool check_numeric(struct vctx *c, const struct slc_node *s, const json_t *x)
{
	char b[40];
	bool ok = true;
	if ((s->flags & SLC_K_MINIMUM) && num_cmp(x, &s->minimum) < 0) {
		fmt_num(&s->minimum, b);
		verr_add(c, "minimum", "must be >= %s", b);
		ok = false;
	}
	if ((s->flags & SLC_K_EXMIN) && num_cmp(x, &s->exmin) <= 0) {
		fmt_num(&s->exmin, b);
		verr_add(c, "exclusiveMinimum", "must be > %s", b);
		ok = false;
	}
	if ((s->flags & SLC_K_MAXIMUM) && num_cmp(x, &s->maximum) > 0) {
		fmt_num(&s->maximum, b);
		verr_add(c, "maximum", "must be <= %s", b);
		ok = false;
	}
	if ((s->flags & SLC_K_EXMAX) && num_cmp(x, &s->exmax) >= 0) {
		fmt_num(&s->exmax, b);
		verr_add(c, "exclusiveMaximum", "must be < %s", b);
		ok = false;
	}
	if ((s->flags & SLC_K_MULTIPLE) && !multiple_ok(x, &s->multiple)) {
		fmt_num(&s->multiple, b);
		verr_add(c, "multipleOf", "must be a multiple of %s", b);
		ok = false;
	}
	return ok;
}

static size_t utf8_count(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

static bool check_string(struct vctx *c, const struct slc_node *s, const json_t *x)
{
	const char *str = json_string_value(x);
	size_t n = json_string_length(x);
	bool ok = true;
	/* bytes >= code points, so the count is needed only between the bounds */
	if ((s->flags & SLC_K_MINLEN) && n < SIZE_MAX && utf8_count(str, n) < s->min_len) {
		verr_add(c, "minLength", "must be at least %zu characters long", s->min_len);
		ok = false;
	}
	if ((s->flags & SLC_K_MAXLEN) && n > s->max_len && utf8_count(str, n) > s->max_len) {
		verr_add(c, "maxLength", "must be at most %zu characters long", s->max_len);
		ok = false;
	}
	if (s->flags & SLC_K_PATTERN) {
		int m = slc_regex_search(c->r, s->pattern.code, &c->md, str, n);
		if (m != 1) {
			if (m < 0)
				verr_add(c, "pattern", "pattern \"%s\" could not be evaluated (limit)",
					 s->pattern.src);
			else
				verr_add(c, "pattern", "does not match pattern \"%s\"", s->pattern.src);
			ok = false;
		}
	}
	if ((s->flags & SLC_K_FORMAT) && c->r->format_assert &&
	    !slc_format_check(s->format, str, n)) {
		verr_add(c, "format", "does not match format \"%s\"", s->format_name);
		ok = false;
	}
	return ok;
}

static bool check_enum_const(struct vctx *c, const struct slc_node *s, const json_t *x)
{
	char b[120];
	bool ok = true;
	if ((s->flags & SLC_K_CONST) && !slc_json_equal(x, s->const_v)) {
		fmt_json(s->const_v, b, sizeof(b));
		verr_add(c, "const", "must be %s", b);
		ok = false;
	}
	if (s->flags & SLC_K_ENUM) {
		bool found = false;
		for (size_t i = 0; i < json_array_size(s->enum_v) && !found; i++)
			found = slc_json_equal(x, json_array_get(s->enum_v, i));
		if (!found) {
			fmt_json(s->enum_v, b, sizeof(b));
			verr_add(c, "enum", "must be one of %s", b);
			ok = false;
		}
	}
	return ok;
}

/* ---- the walk ------------------------------------------------------------------------------------ */
static bool eval(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *a);

/* Applies a subschema; a `false` one gets a message naming the keyword. */
static bool eval_child(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *a,
		       const char *kw)
{
	if (s->is_bool) {
		if (!s->bool_val)
			verr_add(c, kw, "not allowed by \"%s\"", kw);
		return s->bool_val;
	}
	return eval(c, s, x, a);
}

static bool eval_item(struct vctx *c, const struct slc_node *s, const json_t *arr, size_t i,
		      const char *kw)
{
	size_t mark = path_push_idx(c, i);
	bool ok = eval_child(c, s, json_array_get(arr, i), NULL, kw);
	path_pop(c, mark);
	return ok;
}

/* Runs s on x without recording errors (anyOf branches, not, if, contains). */
static bool eval_quiet(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *a)
{
	struct sl_verrs *saved = c->errs;
	c->errs = NULL;
	bool ok = eval(c, s, x, a);
	c->errs = saved;
	return ok;
}

struct hidx {
	uint64_t h;
	size_t i;
};

static int hidx_cmp(const void *a, const void *b)
{
	const struct hidx *x = a, *y = b;
	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Sorting by hash makes uniqueItems O(n log n) for long arrays. */
static bool check_unique(struct vctx *c, const json_t *x)
{
	size_t n = json_array_size(x);
	if (n < 2)
		return true;
	struct hidx *t = sl_xmalloc(n * sizeof(*t));
	for (size_t i = 0; i < n; i++)
		t[i] = (struct hidx){json_hash(json_array_get(x, i)), i};
	qsort(t, n, sizeof(*t), hidx_cmp);
	bool ok = true;
	size_t d1 = 0, d2 = 0;
	for (size_t i = 0; i < n && ok; i++)
		for (size_t j = i + 1; j < n && t[j].h == t[i].h && ok; j++)
			if (slc_json_equal(json_array_get(x, t[i].i), json_array_get(x, t[j].i))) {
				ok = false;
				d1 = t[i].i;
				d2 = t[j].i;
			}
	free(t);
	if (!ok)
		verr_add(c, "uniqueItems", "items %zu and %zu are equal (items must be unique)", d1,
			 d2);
	return ok;
}

static bool eval_contains(struct vctx *c, const struct slc_node *s, const json_t *x,
			  struct ann *ua)
{
	size_t n = json_array_size(x), count = 0;
	size_t min = (s->flags & SLC_K_MINCONT) ? s->min_contains : 1;
	bool has_max = s->flags & SLC_K_MAXCONT;
	for (size_t i = 0; i < n; i++) {
		if (!eval_quiet(c, s->contains, json_array_get(x, i), NULL))
			continue;
		count++;
		if (ua)
			SLC_PUSH(ua->idx, ua->nidx, ua->capidx, i);
		else if (has_max ? count > s->max_contains : count >= min)
			break; /* the verdict cannot change any more */
	}
	bool ok = true;
	if (count < min) {
		verr_add(c, (s->flags & SLC_K_MINCONT) ? "minContains" : "contains",
			 "must contain at least %zu item(s) matching \"contains\" (found %zu)", min,
			 count);
		ok = false;
	}
	if (has_max && count > s->max_contains) {
		verr_add(c, "maxContains",
			 "must contain at most %zu item(s) matching \"contains\"", s->max_contains);
		ok = false;
	}
	return ok;
}

static bool eval_array(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *ua)
{
	size_t n = json_array_size(x);
	bool ok = true;
	if ((s->flags & SLC_K_MINITEMS) && n < s->min_items) {
		verr_add(c, "minItems", "must have at least %zu items", s->min_items);
		ok = false;
	}
	if ((s->flags & SLC_K_MAXITEMS) && n > s->max_items) {
		verr_add(c, "maxItems", "must have at most %zu items", s->max_items);
		ok = false;
	}
	FAIL_FAST(c, ok);
	if ((s->flags & SLC_K_UNIQUE) && !check_unique(c, x)) {
		ok = false;
		FAIL_FAST(c, ok);
	}
	size_t lim = SL_MIN(s->nprefix, n);
	for (size_t i = 0; i < lim; i++) {
		ok &= eval_item(c, s->prefix[i], x, i, "prefixItems");
		FAIL_FAST(c, ok);
	}
	if (ua && lim > ua->upto)
		ua->upto = lim;
	if (s->items) {
		for (size_t i = s->nprefix; i < n; i++) {
			ok &= eval_item(c, s->items, x, i, "items");
			FAIL_FAST(c, ok);
		}
		if (ua && n > s->nprefix)
			ua->all_items = true;
	}
	if (s->contains)
		ok &= eval_contains(c, s, x, ua);
	return ok;
}

static int prop_key_cmp(const void *key, const void *elem)
{
	const struct slc_prop *k = key, *e = elem;
	if (k->len != e->len)
		return k->len < e->len ? -1 : 1;
	return memcmp(k->name, e->name, k->len);
}

static const struct slc_prop *find_prop(const struct slc_node *s, const char *k, size_t klen)
{
	struct slc_prop key = {.name = k, .len = klen};
	return bsearch(&key, s->props, s->nprops, sizeof(*s->props), prop_key_cmp);
}

static bool eval_member(struct vctx *c, const struct slc_node *s, const char *k, size_t klen,
			const json_t *v, const char *kw)
{
	size_t mark = path_push(c, k, klen);
	bool ok = eval_child(c, s, v, NULL, kw);
	path_pop(c, mark);
	return ok;
}

/* properties, patternProperties, additionalProperties in one pass over the
 * instance's members (an instance usually has fewer members than a contract
 * has properties). */
static bool eval_props(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *ua)
{
	bool ok = true;
	for (void *it = json_object_iter((json_t *)x); it;
	     it = json_object_iter_next((json_t *)x, it)) {
		const char *k = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		const json_t *v = json_object_iter_value(it);
		bool matched = false;
		const struct slc_prop *p = s->nprops ? find_prop(s, k, klen) : NULL;
		if (p) {
			matched = true;
			ok &= eval_member(c, p->s, k, klen, v, "properties");
			FAIL_FAST(c, ok);
		}
		for (size_t i = 0; i < s->npprops; i++) {
			if (slc_regex_search(c->r, s->pprops[i].rx.code, &c->md, k, klen) != 1)
				continue;
			matched = true;
			ok &= eval_member(c, s->pprops[i].s, k, klen, v, "patternProperties");
			FAIL_FAST(c, ok);
		}
		if (!matched && s->addl) {
			ok &= eval_member(c, s->addl, k, klen, v, "additionalProperties");
			FAIL_FAST(c, ok);
		} else if (matched && ua && !ua->all_keys) {
			SLC_PUSH(ua->keys, ua->nkeys, ua->capkeys, k);
		}
	}
	if (ua && s->addl)
		ua->all_keys = true;
	return ok;
}

static bool check_required(struct vctx *c, const struct slc_node *s, const json_t *x)
{
	bool ok = true;
	for (size_t i = 0; i < s->nrequired; i++) {
		if (json_object_getn(x, s->required[i].name, s->required[i].len))
			continue;
		verr_add(c, "required", "missing required property \"%s\"", s->required[i].name);
		ok = false;
		FAIL_FAST(c, ok);
	}
	for (size_t i = 0; i < s->ndepreq; i++) {
		const struct slc_depreq *d = &s->depreq[i];
		if (!json_object_getn(x, d->name, d->len))
			continue;
		for (size_t j = 0; j < d->nreq; j++) {
			if (json_object_getn(x, d->req[j], d->reqlen[j]))
				continue;
			verr_add(c, "dependentRequired", "property \"%s\" requires property \"%s\"",
				 d->name, d->req[j]);
			ok = false;
			FAIL_FAST(c, ok);
		}
	}
	return ok;
}

static bool check_prop_names(struct vctx *c, const struct slc_node *s, const json_t *x)
{
	bool ok = true;
	for (void *it = json_object_iter((json_t *)x); it;
	     it = json_object_iter_next((json_t *)x, it)) {
		const char *k = json_object_iter_key(it);
		json_t *name = json_stringn_nocheck(k, json_object_iter_key_len(it));
		bool good = name && eval_quiet(c, s->prop_names, name, NULL);
		json_decref(name);
		if (!good) {
			verr_add(c, "propertyNames", "property name \"%s\" is not allowed", k);
			ok = false;
			FAIL_FAST(c, ok);
		}
	}
	return ok;
}

static bool eval_object(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *ua)
{
	size_t n = json_object_size(x);
	bool ok = true;
	if ((s->flags & SLC_K_MINPROPS) && n < s->min_props) {
		verr_add(c, "minProperties", "must have at least %zu properties", s->min_props);
		ok = false;
	}
	if ((s->flags & SLC_K_MAXPROPS) && n > s->max_props) {
		verr_add(c, "maxProperties", "must have at most %zu properties", s->max_props);
		ok = false;
	}
	FAIL_FAST(c, ok);
	if (s->flags & (SLC_K_REQUIRED | SLC_K_DEPREQ)) {
		ok &= check_required(c, s, x);
		FAIL_FAST(c, ok);
	}
	if (s->flags & SLC_K_PROPS) {
		ok &= eval_props(c, s, x, ua);
		FAIL_FAST(c, ok);
	}
	if (s->prop_names) {
		ok &= check_prop_names(c, s, x);
		FAIL_FAST(c, ok);
	}
	for (size_t i = 0; i < s->ndepsch; i++) {
		if (!json_object_getn(x, s->depsch[i].name, s->depsch[i].len))
			continue;
		ok &= eval_child(c, s->depsch[i].s, x, ua, "dependentSchemas");
		FAIL_FAST(c, ok);
	}
	return ok;
}

/* $dynamicRef: the outermost resource in the dynamic scope that defines the
 * anchor wins, when the static target is itself a $dynamicAnchor ("bookend");
 * otherwise it is a plain $ref. */
static const struct slc_node *dynamic_target(const struct vctx *c, const struct slc_node *s)
{
	if (!s->dyn_name)
		return s->dref;
	for (size_t i = 0; i < c->nscope; i++) {
		const struct slc_res *res = c->scope[i];
		for (size_t k = 0; k < res->ndyn; k++)
			if (res->dyn[k].s && strcmp(res->dyn[k].name, s->dyn_name) == 0)
				return res->dyn[k].s;
	}
	return s->dref;
}

static bool eval_refs(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *ua)
{
	bool ok = true;
	if (s->ref_uri) {
		if (s->ref) {
			ok &= eval_child(c, s->ref, x, ua, "$ref");
		} else {
			verr_add(c, "$ref", "unresolved $ref \"%s\"", s->ref_uri);
			ok = false;
		}
		FAIL_FAST(c, ok);
	}
	if (s->dref_uri) {
		const struct slc_node *t = dynamic_target(c, s);
		if (t) {
			ok &= eval_child(c, t, x, ua, "$dynamicRef");
		} else {
			verr_add(c, "$dynamicRef", "unresolved $dynamicRef \"%s\"", s->dref_uri);
			ok = false;
		}
	}
	return ok;
}

static bool eval_any_of(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *ua)
{
	bool any = false;
	/* with annotations wanted every branch runs: each valid one counts */
	for (size_t i = 0; i < s->nany_of && (!any || ua); i++)
		any |= eval_quiet(c, s->any_of[i], x, ua);
	if (!any)
		verr_add(c, "anyOf", "does not match any of the %zu \"anyOf\" schemas", s->nany_of);
	return any;
}

static bool eval_one_of(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *ua)
{
	size_t count = 0, first = 0, second = 0;
	for (size_t i = 0; i < s->none_of && (count < 2 || ua); i++) {
		if (!eval_quiet(c, s->one_of[i], x, ua))
			continue;
		if (count++ == 0)
			first = i;
		else if (count == 2)
			second = i;
	}
	if (count == 0)
		verr_add(c, "oneOf", "does not match any of the %zu \"oneOf\" schemas", s->none_of);
	else if (count > 1)
		verr_add(c, "oneOf", "matches \"oneOf\" schemas %zu and %zu; exactly one must match",
			 first, second);
	return count == 1;
}

static bool eval_combinators(struct vctx *c, const struct slc_node *s, const json_t *x,
			     struct ann *ua)
{
	bool ok = true;
	for (size_t i = 0; i < s->nall_of; i++) {
		ok &= eval_child(c, s->all_of[i], x, ua, "allOf");
		FAIL_FAST(c, ok);
	}
	if (s->nany_of) {
		ok &= eval_any_of(c, s, x, ua);
		FAIL_FAST(c, ok);
	}
	if (s->none_of) {
		ok &= eval_one_of(c, s, x, ua);
		FAIL_FAST(c, ok);
	}
	if (s->not_ && eval_quiet(c, s->not_, x, NULL)) {
		verr_add(c, "not", "must not match the \"not\" schema");
		ok = false;
		FAIL_FAST(c, ok);
	}
	if (s->if_) {
		/* the annotations of a passing "if" count for unevaluated* */
		bool cond = eval_quiet(c, s->if_, x, ua);
		const struct slc_node *branch = cond ? s->then_ : s->else_;
		if (branch)
			ok &= eval_child(c, branch, x, ua, cond ? "then" : "else");
	}
	return ok;
}

static int ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(const char *const *)a, y = (uintptr_t)*(const char *const *)b;
	return x < y ? -1 : x > y;
}

static int size_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

static bool eval_uneval_props(struct vctx *c, const struct slc_node *s, const json_t *x,
			      struct ann *ua)
{
	bool ok = true;
	if (!ua->all_keys) {
		if (ua->nkeys)
			qsort(ua->keys, ua->nkeys, sizeof(*ua->keys), ptr_cmp);
		for (void *it = json_object_iter((json_t *)x); it;
		     it = json_object_iter_next((json_t *)x, it)) {
			const char *k = json_object_iter_key(it);
			if (ua->nkeys && bsearch(&k, ua->keys, ua->nkeys, sizeof(*ua->keys), ptr_cmp))
				continue;
			ok &= eval_member(c, s->uneval_props, k, json_object_iter_key_len(it),
					  json_object_iter_value(it), "unevaluatedProperties");
			FAIL_FAST(c, ok);
		}
	}
	ua->all_keys = true;
	return ok;
}

static bool eval_uneval_items(struct vctx *c, const struct slc_node *s, const json_t *x,
			      struct ann *ua)
{
	bool ok = true;
	if (!ua->all_items) {
		if (ua->nidx)
			qsort(ua->idx, ua->nidx, sizeof(*ua->idx), size_cmp);
		for (size_t i = ua->upto; i < json_array_size(x); i++) {
			if (ua->nidx && bsearch(&i, ua->idx, ua->nidx, sizeof(*ua->idx), size_cmp))
				continue;
			ok &= eval_item(c, s->uneval_items, x, i, "unevaluatedItems");
			FAIL_FAST(c, ok);
		}
	}
	ua->all_items = true;
	return ok;
}

static bool eval_body(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *ua)
{
	unsigned t = inst_type(x);
	uint32_t f = s->flags;
	bool ok = true;
	if ((f & SLC_K_TYPE) && !(s->types & t)) {
		char want[96];
		type_names(s->types, want, sizeof(want));
		verr_add(c, "type", "expected %s, got %s", want, inst_type_name(x));
		ok = false;
		FAIL_FAST(c, ok);
	}
	if (f & (SLC_K_ENUM | SLC_K_CONST))
		ok &= check_enum_const(c, s, x);
	if ((f & SLC_K_NUMERIC) && (t & SLC_T_NUMBER))
		ok &= check_numeric(c, s, x);
	if ((f & SLC_K_STRING) && t == SLC_T_STRING)
		ok &= check_string(c, s, x);
	FAIL_FAST(c, ok);
	if (s->ref_uri || s->dref_uri) {
		ok &= eval_refs(c, s, x, ua);
		FAIL_FAST(c, ok);
	}
	if (s->nall_of || s->nany_of || s->none_of || s->not_ || s->if_) {
		ok &= eval_combinators(c, s, x, ua);
		FAIL_FAST(c, ok);
	}
	if ((f & SLC_K_ARRAY) && t == SLC_T_ARRAY) {
		ok &= eval_array(c, s, x, ua);
		FAIL_FAST(c, ok);
	}
	if ((f & SLC_K_OBJECT) && t == SLC_T_OBJECT) {
		ok &= eval_object(c, s, x, ua);
		FAIL_FAST(c, ok);
	}
	/* last: they look at what every other keyword evaluated */
	if (s->uneval_items && t == SLC_T_ARRAY) {
		ok &= eval_uneval_items(c, s, x, ua);
		FAIL_FAST(c, ok);
	}
	if (s->uneval_props && t == SLC_T_OBJECT)
		ok &= eval_uneval_props(c, s, x, ua);
	return ok;
}

static bool eval(struct vctx *c, const struct slc_node *s, const json_t *x, struct ann *a)
{
	if (s->is_bool) {
		if (!s->bool_val)
			verr_add(c, "false", "no value is allowed here (the schema is false)");
		return s->bool_val;
	}
	if (c->depth >= SLC_MAX_DEPTH) {
		verr_add(c, "$ref", "schema recursion deeper than %d levels", SLC_MAX_DEPTH);
		return false;
	}
	c->depth++;
	bool pushed = false;
	if (s->res && (c->nscope == 0 || c->scope[c->nscope - 1] != s->res)) {
		c->scope[c->nscope++] = s->res; /* nscope <= depth < SLC_MAX_DEPTH */
		pushed = true;
	}
	/* A schema with unevaluated* sees only its own subtree's annotations. */
	bool own = s->uneval_props || s->uneval_items;
	struct ann local = {0};
	struct ann_mark mark = {0};
	if (!own && a)
		mark = ann_mark(a);
	bool ok = eval_body(c, s, x, own ? &local : a);
	if (own) {
		if (ok && a)
			ann_merge(a, &local);
		ann_free(&local);
	} else if (a && !ok) {
		ann_reset(a, &mark);
	}
	if (pushed)
		c->nscope--;
	c->depth--;
	return ok;
}

bool sl_schema_validate(const struct sl_schema *s, const json_t *instance, struct sl_verrs *errs)
{
	if (!s || !s->root || !instance) {
		if (errs) {
			struct sl_verr v = {sl_strdup(""), sl_strdup("schema"),
					    sl_strdup(instance ? "no schema" : "no instance")};
			SLC_PUSH(errs->v, errs->n, errs->cap, v);
		}
		return false;
	}
	/* The context is big (the scope stack); keep it off small thread stacks. */
	struct vctx *c = sl_xcalloc(1, sizeof(*c));
	c->r = s->reg;
	c->errs = errs;
	sl_buf_init(&c->path, SL_BUF_MAX_HTTP_BODY);
	bool ok = eval(c, s->root, instance, NULL);
	sl_buf_free(&c->path);
	pcre2_match_data_free(c->md);
	free(c);
	return ok;
}

/* ---- error lists ---------------------------------------------------------------------------------- */
void sl_verrs_free(struct sl_verrs *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].pointer);
		free(e->v[i].keyword);
		free(e->v[i].msg);
	}
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

char *sl_verrs_join(const struct sl_verrs *e)
{
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_HTTP_BODY);
	for (size_t i = 0; e && i < e->n; i++) {
		const struct sl_verr *v = &e->v[i];
		sl_buf_printf(&b, "%s%s: %s", i ? "; " : "", *v->pointer ? v->pointer : "\"\"",
			      v->msg);
	}
	char *s = sl_buf_detach(&b);
	return s ? s : sl_strdup("");
}
