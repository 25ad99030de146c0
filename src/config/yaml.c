/*
 * yaml.c: YAML text -> jansson JSON plus a map from JSON pointer to source
 * position, on libfyaml's event parser.
 *
 * Events rather than libfyaml's document tree because the events carry the
 * marks (line, column) of every node, which 0.7.12's node API does not
 * expose, and because building JSON directly lets us apply the YAML 1.2
 * core schema and reject duplicate keys as we go.
 */
#include <errno.h>
#include <float.h>
#include <libfyaml.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"

/* Deeper nesting than this is not configuration. */
#define YAML_MAX_DEPTH 128
/* Values after expanding aliases: stops "billion laughs" documents. */
#define YAML_MAX_NODES (1024 * 1024)

/* ---- JSON pointers ---------------------------------------------------------------- */

void conf_ptr_append(struct sl_buf *b, const char *seg, size_t len)
{
	sl_buf_addc(b, '/');
	for (size_t i = 0; i < len; i++) {
		if (seg[i] == '~')
			sl_buf_adds(b, "~0");
		else if (seg[i] == '/')
			sl_buf_adds(b, "~1");
		else
			sl_buf_addc(b, seg[i]);
	}
}

void conf_ptr(char out[CONF_PTR_MAX], const char *parent, const char *seg)
{
	struct sl_buf b;
	sl_buf_init(&b, CONF_PTR_MAX - 1);
	sl_buf_adds(&b, parent ? parent : "");
	conf_ptr_append(&b, seg, strlen(seg));
	/* A pointer that did not fit keeps what did: it still points near. */
	snprintf(out, CONF_PTR_MAX, "%s", sl_buf_str(&b));
	sl_buf_free(&b);
}

void conf_ptr_index(char out[CONF_PTR_MAX], const char *parent, size_t index)
{
	char seg[32];
	snprintf(seg, sizeof seg, "%zu", index);
	conf_ptr(out, parent, seg);
}

/* ---- the location map ------------------------------------------------------------------ */

struct loc_ent {
	char *ptr;
	int line, col;   /* the value, 1-based */
	int kline, kcol; /* its key in the parent mapping, 0 when none */
};

struct sl_locmap {
	struct loc_ent *v;
	size_t n, cap;
};

static void locmap_add(struct sl_locmap *m, const char *ptr, int line, int col, int kline, int kcol)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->v = sl_xrealloc(m->v, m->cap * sizeof *m->v);
	}
	m->v[m->n++] = (struct loc_ent){sl_strdup(ptr), line, col, kline, kcol};
}

static int loc_cmp(const void *a, const void *b)
{
	const struct loc_ent *x = a, *y = b;
	int c = strcmp(x->ptr, y->ptr);
	if (c)
		return c;
	return x < y ? -1 : (x > y); /* the first recorded wins */
}

static const struct loc_ent *locmap_get(const struct sl_locmap *m, const char *ptr)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->v[mid].ptr, ptr);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->n && strcmp(m->v[lo].ptr, ptr) == 0 ? &m->v[lo] : NULL;
}

/* The entry of pointer, else of its closest recorded parent. */
static const struct loc_ent *locmap_near(const struct sl_locmap *m, const char *pointer)
{
	if (!m || !pointer)
		return NULL;
	char p[CONF_PTR_MAX];
	snprintf(p, sizeof p, "%s", pointer);
	for (;;) {
		const struct loc_ent *e = locmap_get(m, p);
		if (e || !p[0])
			return e;
		char *slash = strrchr(p, '/');
		if (!slash)
			return locmap_get(m, "");
		*slash = '\0';
	}
}

void sl_locmap_find(const struct sl_locmap *m, const char *pointer, int *line, int *col)
{
	const struct loc_ent *e = locmap_near(m, pointer);
	*line = e ? e->line : 0;
	*col = e ? e->col : 0;
}

void sl_locmap_find_key(const struct sl_locmap *m, const char *pointer, int *line, int *col)
{
	const struct loc_ent *e = m && pointer ? locmap_get(m, pointer) : NULL;
	if (e && e->kline) {
		*line = e->kline;
		*col = e->kcol;
		return;
	}
	sl_locmap_find(m, pointer, line, col);
}

void sl_locmap_free(struct sl_locmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].ptr);
	free(m->v);
	free(m);
}

/* ---- the parser's state ------------------------------------------------------------------ */

struct yframe {
	json_t *node;     /* borrowed from the parent, unless owned */
	bool owned;       /* a duplicate key's value: checked, then dropped */
	bool is_map;
	size_t ptrlen;    /* length of this node's pointer in ps->ptr */
	size_t index;     /* sequences: the next item's index */
	char *key;        /* mappings: the pending key, NULL while a key is due */
	size_t keylen;
	bool key_merge;   /* the pending key is a plain `<<` */
	int kline, kcol;
	json_t *merges;   /* `<<` values, merged when the mapping ends */
	char *anchor;     /* registered when the collection ends */
	size_t nodes_at_start;
};

struct anchor {
	char *name;
	json_t *v;
	size_t nodes; /* values inside, for the alias limit */
};

struct yparse {
	const char *file;
	const char *text; /* the document, for positions libfyaml's marks lack */
	size_t len;
	struct sl_diags *diags;
	int nerrors;
	bool stop;
	struct sl_buf ptr;
	struct yframe st[YAML_MAX_DEPTH];
	int depth; /* frames in use */
	json_t *root;
	bool have_root;
	struct sl_locmap *locs;
	struct anchor *anchors;
	size_t nanchors, capanchors;
	size_t nodes;
	int docs;
};

static void yerr(struct yparse *ps, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void yerr(struct yparse *ps, int line, int col, const char *fmt, ...)
{
	char msg[SL_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	sl_diags_add(ps->diags, ps->file, line, col, "%s", msg);
	ps->nerrors++;
}

static void mark_pos(const struct fy_mark *m, int *line, int *col)
{
	*line = m && m->line >= 0 ? m->line + 1 : 0;
	*col = m && m->column >= 0 ? m->column + 1 : 0;
}

static struct yframe *ytop(struct yparse *ps)
{
	return ps->depth ? &ps->st[ps->depth - 1] : NULL;
}

static void anchor_set(struct yparse *ps, const char *name, json_t *v, size_t nodes)
{
	if (ps->nanchors == ps->capanchors) {
		ps->capanchors = ps->capanchors ? ps->capanchors * 2 : 8;
		ps->anchors = sl_xrealloc(ps->anchors, ps->capanchors * sizeof *ps->anchors);
	}
	ps->anchors[ps->nanchors++] = (struct anchor){sl_strdup(name), json_incref(v), nodes};
}

/* The latest definition wins, as YAML says. */
static const struct anchor *anchor_get(const struct yparse *ps, const char *name)
{
	for (size_t i = ps->nanchors; i-- > 0;)
		if (strcmp(ps->anchors[i].name, name) == 0)
			return &ps->anchors[i];
	return NULL;
}

/* ---- scalars: the YAML 1.2 core schema -------------------------------------------------- */

static bool all_chars(const char *s, size_t n, const char *set)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr(set, s[i]) || !s[i])
			return false;
	return true;
}

static bool text_is(const char *s, size_t n, const char *const *words)
{
	for (size_t i = 0; words[i]; i++)
		if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0)
			return true;
	return false;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_float(const char *s, size_t n)
{
	size_t i = 0, digits = 0;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	if (!digits)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		size_t e = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, e++;
		if (!e)
			return false;
	}
	return i == n;
}

/* JSON has no infinities or NaN: like jq, an infinity becomes the largest
 * double and NaN becomes null. */
static json_t *real_value(double d)
{
	if (isnan(d))
		return json_null();
	if (isinf(d))
		d = d > 0 ? DBL_MAX : -DBL_MAX;
	return json_real(d);
}

static json_t *int_value(const char *digits, int base, bool neg)
{
	errno = 0;
	char *end;
	unsigned long long u = strtoull(digits, &end, base);
	if (errno == 0 && u <= (unsigned long long)INT64_MAX)
		return json_integer(neg ? -(json_int_t)u : (json_int_t)u);
	/* Too large for an integer: the nearest double, as JSON readers do. */
	double d = base == 10 ? strtod(digits, NULL) : (double)u;
	return real_value(neg ? -d : d);
}

enum core_type { CORE_ANY, CORE_NULL, CORE_BOOL, CORE_INT, CORE_FLOAT };

/* Resolves a plain scalar; with want != CORE_ANY only that type is
 * accepted (an explicit !!int, ...). NULL when s is not of type want. */
static json_t *core_value(const char *s, size_t n, enum core_type want)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};
	static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
	static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
	static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
	if ((want == CORE_ANY || want == CORE_NULL) && text_is(s, n, nulls))
		return json_null();
	if (want == CORE_ANY || want == CORE_BOOL) {
		if (text_is(s, n, trues))
			return json_true();
		if (text_is(s, n, falses))
			return json_false();
	}
	if (n > 256) /* no number is this long */
		return want == CORE_ANY ? json_stringn(s, n) : NULL;
	char buf[260];
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (want == CORE_ANY || want == CORE_INT) {
		bool sign = n > 1 && (s[0] == '-' || s[0] == '+');
		if (all_chars(buf + sign, n - sign, "0123456789"))
			return int_value(buf + sign, 10, sign && s[0] == '-');
		if (n > 2 && s[0] == '0' && s[1] == 'o' && all_chars(buf + 2, n - 2, "01234567"))
			return int_value(buf + 2, 8, false);
		if (n > 2 && s[0] == '0' && s[1] == 'x' && all_chars(buf + 2, n - 2, "0123456789abcdefABCDEF"))
			return int_value(buf + 2, 16, false);
	}
	if (want == CORE_ANY || want == CORE_FLOAT) {
		if (is_float(buf, n))
			return real_value(strtod(buf, NULL));
		if (text_is(s, n, infs))
			return real_value(INFINITY);
		if (text_is(s, n, ninfs))
			return real_value(-INFINITY);
		if (text_is(s, n, nans))
			return json_null();
	}
	return want == CORE_ANY ? json_stringn(s, n) : NULL;
}

#define TAG_CORE "tag:yaml.org,2002:"

static json_t *string_value(struct yparse *ps, const char *s, size_t n, int line, int col)
{
	json_t *v = json_stringn(s, n);
	if (!v)
		yerr(ps, line, col, "a string is not valid UTF-8");
	return v;
}

/* Builds a scalar's value; NULL after reporting an error. */
static json_t *scalar_value(struct yparse *ps, struct fy_event *ev, int line, int col)
{
	size_t n = 0;
	const char *s = fy_token_get_text(ev->scalar.value, &n);
	if (!s)
		s = "";
	bool plain = fy_token_scalar_style(ev->scalar.value) == FYSS_PLAIN;
	const char *tag = ev->scalar.tag ? fy_token_get_text0(ev->scalar.tag) : NULL;
	if (!tag)
		return plain ? core_value(s, n, CORE_ANY) : string_value(ps, s, n, line, col);
	if (strcmp(tag, "!") == 0 || strcmp(tag, TAG_CORE "str") == 0)
		return string_value(ps, s, n, line, col);
	static const struct {
		const char *name;
		enum core_type t;
	} tags[] = {{"null", CORE_NULL}, {"bool", CORE_BOOL}, {"int", CORE_INT}, {"float", CORE_FLOAT}};
	for (size_t i = 0; i < SL_ARRAY_LEN(tags); i++) {
		if (strncmp(tag, TAG_CORE, strlen(TAG_CORE)) || strcmp(tag + strlen(TAG_CORE), tags[i].name))
			continue;
		json_t *v = core_value(s, n, tags[i].t);
		if (!v)
			yerr(ps, line, col, "'%.*s' is not a valid !!%s", (int)SL_MIN(n, 64), s, tags[i].name);
		return v;
	}
	yerr(ps, line, col, "unsupported YAML tag '%s' (Sluice reads plain YAML: strings, numbers, booleans, null)",
	     tag);
	return NULL;
}

/* ---- building ------------------------------------------------------------------------------ */

/* Attaches v (taken) under the current position and records its position.
 * On return ps->ptr holds v's pointer. *owned says that v was not attached
 * (a duplicate key, a second root): the caller still owns it. */
static void attach(struct yparse *ps, json_t *v, int line, int col, bool *owned)
{
	struct yframe *f = ytop(ps);
	*owned = false;
	if (!f) {
		if (ps->have_root) { /* only one root: a second document was reported */
			*owned = true;
			return;
		}
		ps->root = v;
		ps->have_root = true;
		sl_buf_reset(&ps->ptr);
		locmap_add(ps->locs, "", line, col, 0, 0);
		return;
	}
	ps->ptr.len = f->ptrlen;
	if (ps->ptr.p)
		ps->ptr.p[ps->ptr.len] = '\0';
	if (!f->is_map) {
		char seg[32];
		int n = snprintf(seg, sizeof seg, "%zu", f->index++);
		conf_ptr_append(&ps->ptr, seg, (size_t)n);
		json_array_append_new(f->node, v);
		locmap_add(ps->locs, sl_buf_str(&ps->ptr), line, col, 0, 0);
		return;
	}
	conf_ptr_append(&ps->ptr, f->key, f->keylen);
	if (f->key_merge) {
		if (!f->merges)
			f->merges = json_array();
		json_array_append_new(f->merges, v);
		locmap_add(ps->locs, sl_buf_str(&ps->ptr), line, col, f->kline, f->kcol);
	} else if (json_object_getn(f->node, f->key, f->keylen)) {
		int fl = 0, fc = 0;
		sl_locmap_find_key(ps->locs, sl_buf_str(&ps->ptr), &fl, &fc);
		yerr(ps, f->kline, f->kcol, "duplicate key '%.*s' (first at line %d)", (int)SL_MIN(f->keylen, 128),
		     f->key, fl);
		*owned = true;
	} else {
		json_object_setn_new_nocheck(f->node, f->key, f->keylen, v);
		locmap_add(ps->locs, sl_buf_str(&ps->ptr), line, col, f->kline, f->kcol);
	}
	free(f->key);
	f->key = NULL;
}

static void pop_ptr(struct yparse *ps)
{
	struct yframe *f = ytop(ps);
	ps->ptr.len = f ? f->ptrlen : 0;
	if (ps->ptr.p)
		ps->ptr.p[ps->ptr.len] = '\0';
}

static bool expecting_key(struct yparse *ps)
{
	struct yframe *f = ytop(ps);
	return f && f->is_map && !f->key;
}

static void set_key(struct yparse *ps, const char *s, size_t n, bool plain, int line, int col)
{
	struct yframe *f = ytop(ps);
	SL_ASSERT(f); /* only called while a mapping expects a key */
	f->key = sl_strndup(s, n);
	f->keylen = n;
	f->key_merge = plain && n == 2 && memcmp(s, "<<", 2) == 0;
	f->kline = line;
	f->kcol = col;
}

static void too_many(struct yparse *ps, int line, int col)
{
	yerr(ps, line, col, "too many values after expanding aliases (more than %d)", YAML_MAX_NODES);
	ps->stop = true;
}

/* A block scalar's (| or >) mark is the start of its first content line;
 * the value starts after the indentation, which is where errors belong. */
static void block_scalar_col(const struct yparse *ps, const struct fy_mark *m, int *col)
{
	if (!m || m->input_pos >= ps->len)
		return;
	size_t i = m->input_pos;
	while (i < ps->len && ps->text[i] == ' ')
		i++;
	*col += (int)(i - m->input_pos);
}

static void on_scalar(struct yparse *ps, struct fy_event *ev)
{
	int line, col;
	mark_pos(fy_event_start_mark(ev), &line, &col);
	enum fy_scalar_style style = fy_token_scalar_style(ev->scalar.value);
	if (style == FYSS_LITERAL || style == FYSS_FOLDED)
		block_scalar_col(ps, fy_event_start_mark(ev), &col);
	if (expecting_key(ps)) {
		size_t n = 0;
		const char *s = fy_token_get_text(ev->scalar.value, &n);
		set_key(ps, s ? s : "", s ? n : 0, fy_token_scalar_style(ev->scalar.value) == FYSS_PLAIN, line, col);
		return;
	}
	json_t *v = scalar_value(ps, ev, line, col);
	if (!v)
		v = json_null(); /* reported; keep the shape so later checks still run */
	if (++ps->nodes > YAML_MAX_NODES) {
		json_decref(v);
		too_many(ps, line, col);
		return;
	}
	if (ev->scalar.anchor)
		anchor_set(ps, fy_token_get_text0(ev->scalar.anchor), v, 1);
	bool owned;
	attach(ps, v, line, col, &owned);
	if (owned)
		json_decref(v);
	pop_ptr(ps);
}

static void on_alias(struct yparse *ps, struct fy_event *ev)
{
	int line, col;
	mark_pos(fy_event_start_mark(ev), &line, &col);
	const char *name = fy_token_get_text0(ev->alias.anchor);
	const struct anchor *a = anchor_get(ps, name ? name : "");
	if (!a) {
		yerr(ps, line, col, "unknown alias '*%s'", name ? name : "");
		if (expecting_key(ps)) {
			ps->stop = true;
			return;
		}
		bool owned;
		json_t *v = json_null();
		attach(ps, v, line, col, &owned);
		if (owned)
			json_decref(v);
		pop_ptr(ps);
		return;
	}
	if (expecting_key(ps)) {
		if (!json_is_string(a->v)) {
			yerr(ps, line, col, "a mapping key must be a string");
			ps->stop = true;
			return;
		}
		set_key(ps, json_string_value(a->v), json_string_length(a->v), false, line, col);
		return;
	}
	ps->nodes += a->nodes;
	if (ps->nodes > YAML_MAX_NODES) {
		too_many(ps, line, col);
		return;
	}
	/* A copy: the anchored value and this one must not share children. */
	json_t *v = json_deep_copy(a->v);
	bool owned;
	attach(ps, v, line, col, &owned);
	if (owned)
		json_decref(v);
	pop_ptr(ps);
}

static void on_collection_start(struct yparse *ps, struct fy_event *ev, bool is_map)
{
	int line, col;
	mark_pos(fy_event_start_mark(ev), &line, &col);
	if (expecting_key(ps)) {
		yerr(ps, line, col, "a mapping key must be a plain value, not a %s", is_map ? "mapping" : "list");
		ps->stop = true;
		return;
	}
	if (ps->depth >= YAML_MAX_DEPTH) {
		yerr(ps, line, col, "nested deeper than %d levels", YAML_MAX_DEPTH);
		ps->stop = true;
		return;
	}
	if (++ps->nodes > YAML_MAX_NODES) {
		too_many(ps, line, col);
		return;
	}
	json_t *v = is_map ? json_object() : json_array();
	bool owned;
	attach(ps, v, line, col, &owned);
	struct yframe *f = &ps->st[ps->depth++];
	memset(f, 0, sizeof *f);
	f->node = v;
	f->owned = owned;
	f->is_map = is_map;
	f->ptrlen = ps->ptr.len;
	f->nodes_at_start = ps->nodes;
	struct fy_token *anchor = is_map ? ev->mapping_start.anchor : ev->sequence_start.anchor;
	if (anchor)
		f->anchor = sl_strdup(fy_token_get_text0(anchor));
}

/* `<<: *base` or `<<: [*a, *b]`: keys not in the mapping come from the
 * merged mappings, the first one listed winning (the YAML merge key). */
static void apply_merges(struct yparse *ps, struct yframe *f)
{
	size_t i;
	json_t *m;
	int line, col;
	json_array_foreach(f->merges, i, m) {
		json_t *list = json_is_array(m) ? m : NULL;
		size_t n = list ? json_array_size(list) : 1;
		for (size_t j = 0; j < n; j++) {
			json_t *src = list ? json_array_get(list, j) : m;
			if (!json_is_object(src)) {
				char p[CONF_PTR_MAX];
				conf_ptr(p, sl_buf_str(&ps->ptr), "<<");
				sl_locmap_find(ps->locs, p, &line, &col);
				yerr(ps, line, col, "'<<' merges a mapping or a list of mappings");
				continue;
			}
			const char *k;
			size_t klen;
			json_t *v;
			json_object_keylen_foreach(src, k, klen, v) {
				if (!json_object_getn(f->node, k, klen))
					json_object_setn_nocheck(f->node, k, klen, v);
			}
		}
	}
}

static void on_collection_end(struct yparse *ps)
{
	struct yframe *f = ytop(ps);
	if (!f)
		return;
	ps->ptr.len = f->ptrlen;
	if (ps->ptr.p)
		ps->ptr.p[ps->ptr.len] = '\0';
	if (f->merges) {
		apply_merges(ps, f);
		json_decref(f->merges);
	}
	if (f->anchor)
		anchor_set(ps, f->anchor, f->node, ps->nodes - f->nodes_at_start + 1);
	free(f->anchor);
	free(f->key);
	if (f->owned)
		json_decref(f->node);
	ps->depth--;
	pop_ptr(ps);
}

static void on_event(struct yparse *ps, struct fy_event *ev)
{
	switch (ev->type) {
	case FYET_DOCUMENT_START:
		if (++ps->docs == 2) {
			int line, col;
			mark_pos(fy_event_start_mark(ev), &line, &col);
			yerr(ps, line, col, "a file holds one YAML document; this is a second one");
			ps->stop = true;
		}
		break;
	case FYET_SCALAR: on_scalar(ps, ev); break;
	case FYET_ALIAS: on_alias(ps, ev); break;
	case FYET_MAPPING_START: on_collection_start(ps, ev, true); break;
	case FYET_SEQUENCE_START: on_collection_start(ps, ev, false); break;
	case FYET_MAPPING_END:
	case FYET_SEQUENCE_END: on_collection_end(ps); break;
	default: break;
	}
}

/* libfyaml reads bytes; a bad byte is reported here with its position. */
static bool utf8_ok(struct yparse *ps, const char *text, size_t len)
{
	int line = 1, col = 1;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)text[i];
		size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		bool ok = n && i + n <= len && c != 0;
		for (size_t k = 1; ok && k < n; k++)
			ok = ((unsigned char)text[i + k] >> 6) == 2;
		if (!ok) {
			yerr(ps, line, col, c ? "the file is not valid UTF-8" : "the file holds a NUL byte");
			return false;
		}
		if (c == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
		i += n;
	}
	return true;
}

static void report_fy_errors(struct yparse *ps, struct fy_diag *diag)
{
	void *it = NULL;
	struct fy_diag_error *de;
	int before = ps->nerrors;
	while ((de = fy_diag_errors_iterate(diag, &it)))
		if (de->type >= FYET_ERROR)
			yerr(ps, de->line > 0 ? de->line : 1, de->column > 0 ? de->column : 1, "YAML: %s", de->msg);
	if (ps->nerrors == before)
		yerr(ps, 1, 1, "YAML: cannot parse the file");
}

static void yparse_free(struct yparse *ps)
{
	while (ps->depth)
		on_collection_end(ps);
	for (size_t i = 0; i < ps->nanchors; i++) {
		free(ps->anchors[i].name);
		json_decref(ps->anchors[i].v);
	}
	free(ps->anchors);
	sl_buf_free(&ps->ptr);
}

/* Runs the event loop; returns false on a YAML syntax error. */
static bool run_parser(struct yparse *ps, const char *text, size_t len)
{
	struct fy_diag_cfg dc;
	fy_diag_cfg_default(&dc);
	dc.fp = NULL;
	dc.colorize = false;
	dc.level = FYET_ERROR;
	struct fy_diag *diag = fy_diag_create(&dc);
	if (!diag)
		return false;
	fy_diag_set_collect_errors(diag, true);
	struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2, .diag = diag};
	struct fy_parser *fyp = fy_parser_create(&cfg);
	bool ok = fyp && fy_parser_set_string(fyp, text, len) == 0;
	struct fy_event *ev;
	while (ok && !ps->stop && (ev = fy_parser_parse(fyp))) {
		on_event(ps, ev);
		fy_parser_event_free(fyp, ev);
	}
	if (!fyp || fy_parser_get_stream_error(fyp)) {
		report_fy_errors(ps, diag);
		ok = false;
	}
	if (fyp)
		fy_parser_destroy(fyp);
	fy_diag_destroy(diag);
	return ok;
}

json_t *sl_yaml_parse(const char *text, size_t len, const char *file, struct sl_locmap **locs,
		      struct sl_diags *diags)
{
	struct yparse *ps = sl_xcalloc(1, sizeof *ps);
	ps->file = file ? file : "";
	ps->text = text;
	ps->len = len;
	ps->diags = diags;
	ps->locs = sl_xcalloc(1, sizeof *ps->locs);
	sl_buf_init(&ps->ptr, CONF_PTR_MAX * 4);
	bool ok = utf8_ok(ps, text, len) && run_parser(ps, text, len);
	yparse_free(ps);
	json_t *root = ps->root;
	if (!ok) {
		json_decref(root);
		root = NULL;
	} else if (!ps->have_root) {
		root = json_null(); /* an empty file */
		locmap_add(ps->locs, "", 1, 1, 0, 0);
	}
	if (ps->locs->n > 1)
		qsort(ps->locs->v, ps->locs->n, sizeof *ps->locs->v, loc_cmp);
	if (locs && root)
		*locs = ps->locs;
	else
		sl_locmap_free(ps->locs);
	if (locs && !root)
		*locs = NULL;
	free(ps);
	return root;
}
