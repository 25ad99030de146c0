/*
 * Schema JSON -> struct slc_node, once per schema object.
 *
 * Validation runs on every webhook and every AI output, so everything that
 * can be decided from the schema alone is decided here: keyword values are
 * type-checked (a bad contract fails at load, naming the schema pointer),
 * regexes are compiled (and JIT-compiled), property tables are sorted for
 * binary search, $ref values are resolved to absolute URIs. Refs are linked
 * to their targets later (registry.c), when every document is known.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/contract_int.h"

struct slc_node slc_node_true = {.is_bool = true, .bool_val = true};
struct slc_node slc_node_false = {.is_bool = true, .bool_val = false};

const struct slc_subkw slc_subkws[] = {
	{"items", SLC_SUB_ONE},
	{"contains", SLC_SUB_ONE},
	{"additionalProperties", SLC_SUB_ONE},
	{"unevaluatedItems", SLC_SUB_ONE},
	{"unevaluatedProperties", SLC_SUB_ONE},
	{"propertyNames", SLC_SUB_ONE},
	{"not", SLC_SUB_ONE},
	{"if", SLC_SUB_ONE},
	{"then", SLC_SUB_ONE},
	{"else", SLC_SUB_ONE},
	{"prefixItems", SLC_SUB_ARRAY},
	{"allOf", SLC_SUB_ARRAY},
	{"anyOf", SLC_SUB_ARRAY},
	{"oneOf", SLC_SUB_ARRAY},
	{"properties", SLC_SUB_MAP},
	{"patternProperties", SLC_SUB_MAP},
	{"dependentSchemas", SLC_SUB_MAP},
	{"$defs", SLC_SUB_MAP},
	{"definitions", SLC_SUB_MAP}, /* pre-2019 name, still common in the wild */
};
const size_t slc_nsubkws = SL_ARRAY_LEN(slc_subkws);

struct cctx {
	struct sl_contracts *r;
	const char *where;  /* document id for messages */
	const char *source; /* file name for messages */
	struct sl_err *err;
	struct sl_buf sp; /* schema pointer of the keyword being compiled */
	unsigned depth;
	struct slc_res *fallback;
};

static int cerr(struct cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cerr(struct cctx *c, const char *fmt, ...)
{
	char msg[SL_ERR_MSG_MAX / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return sl_err_setloc(c->err, SL_EINVAL, c->source ? c->source : "", 1, 1, "%s#%s: %s",
			     c->where, sl_buf_str(&c->sp), msg);
}

static struct slc_node *compile_rec(struct cctx *c, json_t *js);

/* Compiles v as the subschema at token tok of the current pointer. */
static struct slc_node *child(struct cctx *c, json_t *v, const char *tok, size_t len)
{
	size_t mark = c->sp.len;
	slc_path_push(&c->sp, tok, len);
	struct slc_node *n = compile_rec(c, v);
	if (n) { /* on error the pointer stays, for the message */
		c->sp.len = mark;
		if (c->sp.p)
			c->sp.p[mark] = '\0';
	}
	return n;
}

static struct slc_node *child_at(struct cctx *c, json_t *v, size_t idx)
{
	char tok[32];
	int n = snprintf(tok, sizeof(tok), "%zu", idx);
	return child(c, v, tok, (size_t)n);
}

/* ---- value helpers ---------------------------------------------------------------- */
static bool get_num(const json_t *v, struct slc_num *n)
{
	if (json_is_integer(v)) {
		n->is_int = true;
		n->i = json_integer_value(v);
		n->d = (double)n->i;
		return true;
	}
	if (json_is_real(v)) {
		n->is_int = false;
		n->d = json_real_value(v);
		return true;
	}
	return false;
}

/* A non-negative integer; 2.0 counts (the suite checks that). */
static bool get_count(const json_t *v, size_t *out)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0)
			return false;
		*out = (size_t)i;
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!(d >= 0) || d != floor(d))
			return false;
		*out = d >= 1.8e19 ? SIZE_MAX : (size_t)d;
		return true;
	}
	return false;
}

static int count_kw(struct cctx *c, const json_t *v, size_t *out, uint32_t flag, struct slc_node *s)
{
	if (!get_count(v, out))
		return cerr(c, "must be a non-negative integer");
	s->flags |= flag;
	return 0;
}

static int num_kw(struct cctx *c, const json_t *v, struct slc_num *out, uint32_t flag,
		  struct slc_node *s)
{
	if (!get_num(v, out))
		return cerr(c, "must be a number");
	s->flags |= flag;
	return 0;
}

static int schema_list(struct cctx *c, json_t *v, struct slc_node ***out, size_t *n)
{
	if (!json_is_array(v) || json_array_size(v) == 0)
		return cerr(c, "must be a non-empty array of schemas");
	*n = json_array_size(v);
	*out = slc_alloc(&c->r->arena, *n * sizeof(**out));
	for (size_t i = 0; i < *n; i++)
		if (!((*out)[i] = child_at(c, json_array_get(v, i), i)))
			return SL_EINVAL;
	return 0;
}

static int prop_cmp(const void *a, const void *b)
{
	const struct slc_prop *x = a, *y = b;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->name, y->name, x->len);
}

/* An object whose values are schemas, as a sorted table. */
static int schema_map(struct cctx *c, json_t *v, struct slc_prop **out, size_t *n)
{
	if (!json_is_object(v))
		return cerr(c, "must be an object of schemas");
	*n = json_object_size(v);
	struct slc_prop *t = slc_alloc(&c->r->arena, (*n ? *n : 1) * sizeof(*t));
	size_t i = 0;
	const char *k;
	size_t klen;
	json_t *sub;
	json_object_keylen_foreach(v, k, klen, sub) {
		t[i].name = slc_strndup(&c->r->arena, k, klen);
		t[i].len = klen;
		if (!(t[i].s = child(c, sub, k, klen)))
			return SL_EINVAL;
		i++;
	}
	qsort(t, *n, sizeof(*t), prop_cmp);
	*out = t;
	return 0;
}

static int string_list(struct cctx *c, const json_t *v, struct slc_prop **out, size_t *n)
{
	if (!json_is_array(v))
		return cerr(c, "must be an array of strings");
	*n = json_array_size(v);
	struct slc_prop *t = slc_alloc(&c->r->arena, (*n ? *n : 1) * sizeof(*t));
	for (size_t i = 0; i < *n; i++) {
		const json_t *e = json_array_get(v, i);
		if (!json_is_string(e))
			return cerr(c, "must be an array of strings (item %zu is not)", i);
		t[i].len = json_string_length(e);
		t[i].name = slc_strndup(&c->r->arena, json_string_value(e), t[i].len);
	}
	*out = t;
	return 0;
}

static int compile_regex(struct cctx *c, const json_t *v, struct slc_regex *rx)
{
	char msg[256];
	if (!json_is_string(v))
		return cerr(c, "must be a string (a regular expression)");
	rx->src = slc_strndup(&c->r->arena, json_string_value(v), json_string_length(v));
	rx->code = slc_regex_compile(c->r, json_string_value(v), json_string_length(v), msg,
				     sizeof(msg));
	if (!rx->code)
		return cerr(c, "invalid regular expression \"%s\": %s", rx->src, msg);
	return 0;
}

/* ---- keyword handlers ---------------------------------------------------------------- */
typedef int (*kw_fn)(struct cctx *c, struct slc_node *s, json_t *v);

static unsigned type_bit(const char *name)
{
	static const struct {
		const char *n;
		unsigned bit;
	} types[] = {
		{"null", SLC_T_NULL},       {"boolean", SLC_T_BOOLEAN}, {"object", SLC_T_OBJECT},
		{"array", SLC_T_ARRAY},     {"number", SLC_T_NUMBER},   {"string", SLC_T_STRING},
		{"integer", SLC_T_INTEGER},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(types); i++)
		if (strcmp(types[i].n, name) == 0)
			return types[i].bit;
	return 0;
}

static int kw_type(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (json_is_string(v)) {
		if (!(s->types = type_bit(json_string_value(v))))
			return cerr(c, "unknown type \"%s\"", json_string_value(v));
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			const json_t *e = json_array_get(v, i);
			unsigned bit = json_is_string(e) ? type_bit(json_string_value(e)) : 0;
			if (!bit)
				return cerr(c, "item %zu is not a type name", i);
			s->types |= bit;
		}
	} else {
		return cerr(c, "must be a type name or an array of type names");
	}
	/* an integer is a number; "number" admits integers */
	if (s->types & SLC_T_NUMBER)
		s->types |= SLC_T_INTEGER;
	s->flags |= SLC_K_TYPE;
	return 0;
}

static int kw_enum(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (!json_is_array(v))
		return cerr(c, "must be an array");
	s->enum_v = v;
	s->flags |= SLC_K_ENUM;
	return 0;
}

static int kw_const(struct cctx *c, struct slc_node *s, json_t *v)
{
	(void)c;
	s->const_v = v;
	s->flags |= SLC_K_CONST;
	return 0;
}

static int kw_multiple(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (!get_num(v, &s->multiple) || !(s->multiple.d > 0))
		return cerr(c, "must be a number greater than 0");
	s->flags |= SLC_K_MULTIPLE;
	return 0;
}

static int kw_maximum(struct cctx *c, struct slc_node *s, json_t *v)
{
	return num_kw(c, v, &s->maximum, SLC_K_MAXIMUM, s);
}

static int kw_exmax(struct cctx *c, struct slc_node *s, json_t *v)
{
	return num_kw(c, v, &s->exmax, SLC_K_EXMAX, s);
}

static int kw_minimum(struct cctx *c, struct slc_node *s, json_t *v)
{
	return num_kw(c, v, &s->minimum, SLC_K_MINIMUM, s);
}

static int kw_exmin(struct cctx *c, struct slc_node *s, json_t *v)
{
	return num_kw(c, v, &s->exmin, SLC_K_EXMIN, s);
}

static int kw_max_len(struct cctx *c, struct slc_node *s, json_t *v)
{
	return count_kw(c, v, &s->max_len, SLC_K_MAXLEN, s);
}

static int kw_min_len(struct cctx *c, struct slc_node *s, json_t *v)
{
	return count_kw(c, v, &s->min_len, SLC_K_MINLEN, s);
}

static int kw_max_items(struct cctx *c, struct slc_node *s, json_t *v)
{
	return count_kw(c, v, &s->max_items, SLC_K_MAXITEMS, s);
}

static int kw_min_items(struct cctx *c, struct slc_node *s, json_t *v)
{
	return count_kw(c, v, &s->min_items, SLC_K_MINITEMS, s);
}

static int kw_max_contains(struct cctx *c, struct slc_node *s, json_t *v)
{
	return count_kw(c, v, &s->max_contains, SLC_K_MAXCONT, s);
}

static int kw_min_contains(struct cctx *c, struct slc_node *s, json_t *v)
{
	return count_kw(c, v, &s->min_contains, SLC_K_MINCONT, s);
}

static int kw_max_props(struct cctx *c, struct slc_node *s, json_t *v)
{
	return count_kw(c, v, &s->max_props, SLC_K_MAXPROPS, s);
}

static int kw_min_props(struct cctx *c, struct slc_node *s, json_t *v)
{
	return count_kw(c, v, &s->min_props, SLC_K_MINPROPS, s);
}

static int kw_unique(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (!json_is_boolean(v))
		return cerr(c, "must be a boolean");
	if (json_is_true(v))
		s->flags |= SLC_K_UNIQUE;
	return 0;
}

static int kw_pattern(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (compile_regex(c, v, &s->pattern))
		return SL_EINVAL;
	s->flags |= SLC_K_PATTERN;
	return 0;
}

static int kw_format(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (!json_is_string(v))
		return cerr(c, "must be a string");
	s->format_name = slc_strndup(&c->r->arena, json_string_value(v), json_string_length(v));
	s->format = slc_format_lookup(s->format_name);
	if (s->format != SLC_FMT_NONE)
		s->flags |= SLC_K_FORMAT;
	return 0;
}

static int kw_required(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (string_list(c, v, &s->required, &s->nrequired))
		return SL_EINVAL;
	if (s->nrequired)
		s->flags |= SLC_K_REQUIRED;
	return 0;
}

static int kw_dep_required(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (!json_is_object(v))
		return cerr(c, "must be an object of string arrays");
	s->ndepreq = json_object_size(v);
	s->depreq = slc_alloc(&c->r->arena, (s->ndepreq ? s->ndepreq : 1) * sizeof(*s->depreq));
	size_t i = 0;
	const char *k;
	size_t klen;
	json_t *arr;
	json_object_keylen_foreach(v, k, klen, arr) {
		struct slc_depreq *d = &s->depreq[i++];
		struct slc_prop *names;
		size_t mark = c->sp.len;
		slc_path_push(&c->sp, k, klen);
		if (string_list(c, arr, &names, &d->nreq))
			return SL_EINVAL;
		c->sp.len = mark;
		c->sp.p[mark] = '\0';
		d->name = slc_strndup(&c->r->arena, k, klen);
		d->len = klen;
		d->req = slc_alloc(&c->r->arena, (d->nreq ? d->nreq : 1) * sizeof(*d->req));
		d->reqlen = slc_alloc(&c->r->arena, (d->nreq ? d->nreq : 1) * sizeof(*d->reqlen));
		for (size_t j = 0; j < d->nreq; j++) {
			d->req[j] = names[j].name;
			d->reqlen[j] = names[j].len;
		}
	}
	if (s->ndepreq)
		s->flags |= SLC_K_DEPREQ;
	return 0;
}

static int kw_pii(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (!json_is_boolean(v))
		return cerr(c, "must be a boolean");
	s->pii = json_is_true(v);
	return 0;
}

static int kw_string(struct cctx *c, struct slc_node *s, json_t *v)
{
	(void)s;
	if (!json_is_string(v))
		return cerr(c, "must be a string");
	return 0;
}

static int resolve_ref(struct cctx *c, struct slc_node *s, const json_t *v, const char **out)
{
	if (!json_is_string(v))
		return cerr(c, "must be a string (a URI reference)");
	char *abs = slc_uri_resolve(s->res ? s->res->uri : "", json_string_value(v));
	*out = slc_strndup(&c->r->arena, abs, strlen(abs));
	free(abs);
	return 0;
}

static int kw_ref(struct cctx *c, struct slc_node *s, json_t *v)
{
	return resolve_ref(c, s, v, &s->ref_uri);
}

static int kw_dyn_ref(struct cctx *c, struct slc_node *s, json_t *v)
{
	return resolve_ref(c, s, v, &s->dref_uri);
}

/* Subschema keywords. */
#define ONE_SCHEMA(fn, field, flag)                                            \
	static int fn(struct cctx *c, struct slc_node *s, json_t *v)           \
	{                                                                      \
		s->field = compile_rec(c, v);                                  \
		s->flags |= (flag);                                            \
		return s->field ? 0 : SL_EINVAL;                               \
	}
ONE_SCHEMA(kw_items, items, SLC_K_ITEMS)
ONE_SCHEMA(kw_contains, contains, SLC_K_CONTAINS)
ONE_SCHEMA(kw_addl, addl, SLC_K_PROPS)
ONE_SCHEMA(kw_uneval_items, uneval_items, 0)
ONE_SCHEMA(kw_uneval_props, uneval_props, 0)
ONE_SCHEMA(kw_prop_names, prop_names, SLC_K_PROPNAMES)
ONE_SCHEMA(kw_not, not_, 0)
ONE_SCHEMA(kw_if, if_, 0)
ONE_SCHEMA(kw_then, then_, 0)
ONE_SCHEMA(kw_else, else_, 0)
#undef ONE_SCHEMA

static int kw_prefix(struct cctx *c, struct slc_node *s, json_t *v)
{
	s->flags |= SLC_K_ITEMS;
	return schema_list(c, v, &s->prefix, &s->nprefix);
}

static int kw_all_of(struct cctx *c, struct slc_node *s, json_t *v)
{
	return schema_list(c, v, &s->all_of, &s->nall_of);
}

static int kw_any_of(struct cctx *c, struct slc_node *s, json_t *v)
{
	return schema_list(c, v, &s->any_of, &s->nany_of);
}

static int kw_one_of(struct cctx *c, struct slc_node *s, json_t *v)
{
	return schema_list(c, v, &s->one_of, &s->none_of);
}

static int kw_props(struct cctx *c, struct slc_node *s, json_t *v)
{
	s->flags |= SLC_K_PROPS;
	return schema_map(c, v, &s->props, &s->nprops);
}

static int kw_dep_schemas(struct cctx *c, struct slc_node *s, json_t *v)
{
	s->flags |= SLC_K_DEPSCH;
	return schema_map(c, v, &s->depsch, &s->ndepsch);
}

/* $defs: compiled so that errors show at load and refs find them cached. */
static int kw_defs(struct cctx *c, struct slc_node *s, json_t *v)
{
	struct slc_prop *t;
	size_t n;
	(void)s;
	return schema_map(c, v, &t, &n);
}

static int kw_pattern_props(struct cctx *c, struct slc_node *s, json_t *v)
{
	if (!json_is_object(v))
		return cerr(c, "must be an object of schemas");
	s->npprops = json_object_size(v);
	s->pprops = slc_alloc(&c->r->arena, (s->npprops ? s->npprops : 1) * sizeof(*s->pprops));
	size_t i = 0;
	const char *k;
	size_t klen;
	json_t *sub;
	json_object_keylen_foreach(v, k, klen, sub) {
		struct slc_pprop *pp = &s->pprops[i++];
		char msg[256];
		pp->rx.src = slc_strndup(&c->r->arena, k, klen);
		pp->rx.code = slc_regex_compile(c->r, k, klen, msg, sizeof(msg));
		if (!pp->rx.code)
			return cerr(c, "invalid regular expression \"%s\": %s", pp->rx.src, msg);
		if (!(pp->s = child(c, sub, k, klen)))
			return SL_EINVAL;
	}
	s->flags |= SLC_K_PROPS;
	return 0;
}

/* Sorted by name for bsearch. Keywords not listed are annotations
 * ($schema, $comment, title, description, default, examples, ...) or
 * unknown, and are ignored as the specification asks. */
static const struct kw {
	const char *name;
	kw_fn fn;
} kws[] = {
	{"$anchor", kw_string},
	{"$defs", kw_defs},
	{"$dynamicAnchor", kw_string},
	{"$dynamicRef", kw_dyn_ref},
	{"$id", kw_string},
	{"$ref", kw_ref},
	{"additionalProperties", kw_addl},
	{"allOf", kw_all_of},
	{"anyOf", kw_any_of},
	{"const", kw_const},
	{"contains", kw_contains},
	{"definitions", kw_defs},
	{"dependentRequired", kw_dep_required},
	{"dependentSchemas", kw_dep_schemas},
	{"else", kw_else},
	{"enum", kw_enum},
	{"exclusiveMaximum", kw_exmax},
	{"exclusiveMinimum", kw_exmin},
	{"format", kw_format},
	{"if", kw_if},
	{"items", kw_items},
	{"maxContains", kw_max_contains},
	{"maxItems", kw_max_items},
	{"maxLength", kw_max_len},
	{"maxProperties", kw_max_props},
	{"maximum", kw_maximum},
	{"minContains", kw_min_contains},
	{"minItems", kw_min_items},
	{"minLength", kw_min_len},
	{"minProperties", kw_min_props},
	{"minimum", kw_minimum},
	{"multipleOf", kw_multiple},
	{"not", kw_not},
	{"oneOf", kw_one_of},
	{"pattern", kw_pattern},
	{"patternProperties", kw_pattern_props},
	{"prefixItems", kw_prefix},
	{"properties", kw_props},
	{"propertyNames", kw_prop_names},
	{"required", kw_required},
	{"then", kw_then},
	{"type", kw_type},
	{"unevaluatedItems", kw_uneval_items},
	{"unevaluatedProperties", kw_uneval_props},
	{"uniqueItems", kw_unique},
	{"x-pii", kw_pii},
};

static int kw_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct kw *)elem)->name);
}

static struct slc_node *compile_rec(struct cctx *c, json_t *js)
{
	if (json_is_true(js))
		return &slc_node_true;
	if (json_is_false(js))
		return &slc_node_false;
	struct slc_node *s = slc_pmap_get(&c->r->nodes, js);
	if (s)
		return s;
	if (!json_is_object(js)) {
		cerr(c, "a schema must be an object or a boolean");
		return NULL;
	}
	if (c->depth >= SLC_MAX_DEPTH) {
		cerr(c, "schema nested too deeply (limit %d)", SLC_MAX_DEPTH);
		return NULL;
	}
	c->depth++;
	s = slc_alloc(&c->r->arena, sizeof(*s));
	s->js = js;
	s->res = slc_pmap_get(&c->r->loc, js);
	if (!s->res)
		s->res = c->fallback;
	const char *k;
	size_t klen;
	json_t *v;
	json_object_keylen_foreach(js, k, klen, v) {
		const struct kw *kw = bsearch(k, kws, SL_ARRAY_LEN(kws), sizeof(kws[0]), kw_cmp);
		if (!kw)
			continue;
		size_t mark = c->sp.len;
		slc_path_push(&c->sp, k, klen);
		if (kw->fn(c, s, v)) {
			c->depth--;
			return NULL;
		}
		c->sp.len = mark;
		c->sp.p[mark] = '\0';
	}
	c->depth--;
	/* a node with only annotations still gets compiled; so does "type" without
	 * other keywords: nothing else to precompute */
	if (s->ref_uri || s->dref_uri)
		slc_reg_add_pending(c->r, s);
	slc_reg_put_node(c->r, js, s);
	return s;
}

struct slc_node *slc_compile(struct sl_contracts *r, json_t *js, struct slc_res *fallback,
			     const char *where, const char *spath, const char *source,
			     struct sl_err *err)
{
	struct cctx c = {.r = r, .where = where ? where : "", .source = source, .err = err,
			 .fallback = fallback};
	sl_buf_init(&c.sp, SL_BUF_MAX_LINE);
	sl_buf_adds(&c.sp, spath ? spath : "");
	struct slc_node *s = compile_rec(&c, js);
	sl_buf_free(&c.sp);
	return s;
}

/* ---- regexes ------------------------------------------------------------------------ */
/* ECMA-262 spells Unicode general categories out (\p{Letter}); PCRE2 before
 * 10.43 knows only the short names. */
static const struct {
	const char *lng, *shrt;
} gc_names[] = {
	{"Letter", "L"},
	{"Cased_Letter", "L&"},
	{"Uppercase_Letter", "Lu"},
	{"Lowercase_Letter", "Ll"},
	{"Titlecase_Letter", "Lt"},
	{"Modifier_Letter", "Lm"},
	{"Other_Letter", "Lo"},
	{"Mark", "M"},
	{"Combining_Mark", "M"},
	{"Nonspacing_Mark", "Mn"},
	{"Spacing_Mark", "Mc"},
	{"Enclosing_Mark", "Me"},
	{"Number", "N"},
	{"Decimal_Number", "Nd"},
	{"digit", "Nd"},
	{"Letter_Number", "Nl"},
	{"Other_Number", "No"},
	{"Punctuation", "P"},
	{"punct", "P"},
	{"Connector_Punctuation", "Pc"},
	{"Dash_Punctuation", "Pd"},
	{"Open_Punctuation", "Ps"},
	{"Close_Punctuation", "Pe"},
	{"Initial_Punctuation", "Pi"},
	{"Final_Punctuation", "Pf"},
	{"Other_Punctuation", "Po"},
	{"Symbol", "S"},
	{"Math_Symbol", "Sm"},
	{"Currency_Symbol", "Sc"},
	{"Modifier_Symbol", "Sk"},
	{"Other_Symbol", "So"},
	{"Separator", "Z"},
	{"Space_Separator", "Zs"},
	{"Line_Separator", "Zl"},
	{"Paragraph_Separator", "Zp"},
	{"Other", "C"},
	{"Control", "Cc"},
	{"cntrl", "Cc"},
	{"Format", "Cf"},
	{"Surrogate", "Cs"},
	{"Private_Use", "Co"},
	{"Unassigned", "Cn"},
};

/* The PCRE2 spelling of the property name in \p{name} (len bytes). */
static void add_property(struct sl_buf *b, const char *name, size_t len)
{
	static const char *const prefixes[] = {"General_Category=", "gc=", "Script=", "sc="};
	for (size_t i = 0; i < SL_ARRAY_LEN(prefixes); i++) {
		size_t pl = strlen(prefixes[i]);
		if (len > pl && strncmp(name, prefixes[i], pl) == 0) {
			name += pl;
			len -= pl;
			break;
		}
	}
	for (size_t i = 0; i < SL_ARRAY_LEN(gc_names); i++) {
		if (strlen(gc_names[i].lng) == len && strncmp(gc_names[i].lng, name, len) == 0) {
			sl_buf_adds(b, gc_names[i].shrt);
			return;
		}
	}
	sl_buf_add(b, name, len);
}

/* Rewrites the ECMA-262 bits PCRE2 spells differently; returns owned. */
static char *ecma_to_pcre(const char *src, size_t len, size_t *outlen)
{
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_FILE);
	for (size_t i = 0; i < len; i++) {
		if (src[i] != '\\' || i + 1 >= len) {
			sl_buf_addc(&b, src[i]);
			continue;
		}
		char e = src[i + 1];
		const char *close = (e == 'p' || e == 'P') && i + 2 < len && src[i + 2] == '{'
					    ? memchr(src + i + 3, '}', len - i - 3)
					    : NULL;
		if (!close) { /* any other escape passes through as a pair */
			sl_buf_add(&b, src + i, 2);
			i++;
			continue;
		}
		sl_buf_add(&b, src + i, 3);
		add_property(&b, src + i + 3, (size_t)(close - (src + i + 3)));
		sl_buf_addc(&b, '}');
		i = (size_t)(close - src);
	}
	*outlen = b.len;
	return sl_buf_detach(&b);
}

pcre2_code *slc_regex_compile(struct sl_contracts *r, const char *src, size_t len, char *msg,
			      size_t msgsz)
{
	/* ECMA-262 semantics where PCRE2 has a switch for them: "$" only at the
	 * very end, \uXXXX escapes. No PCRE2_UCP: ECMA's \d \w \b stay ASCII
	 * (\p{...} works without it). */
	uint32_t opts = PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX;
	int errcode;
	PCRE2_SIZE off;
	size_t plen;
	char *pat = ecma_to_pcre(src, len, &plen);
	if (!pat) {
		snprintf(msg, msgsz, "too long");
		return NULL;
	}
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, plen, opts, &errcode, &off, r->ccx);
	free(pat);
	if (!code) {
		PCRE2_UCHAR buf[200];
		pcre2_get_error_message(errcode, buf, sizeof(buf));
		snprintf(msg, msgsz, "%s", (const char *)buf);
		return NULL;
	}
	(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
	slc_reg_add_code(r, code);
	return code;
}

int slc_regex_search(const struct sl_contracts *r, const pcre2_code *code, pcre2_match_data **md,
		     const char *s, size_t len)
{
	if (!*md && !(*md = pcre2_match_data_create(1, NULL)))
		return -1;
	int rc = pcre2_match(code, (PCRE2_SPTR)s, len, 0, 0, *md, r->mcx);
	if (rc >= 0)
		return 1;
	return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}
