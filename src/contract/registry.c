/*
 * The contract registry: documents, the URI and anchor indexes that $ref
 * resolves through, linking, and the x-pii paths.
 *
 * Adding a document is all-or-nothing: the index walk and the compile log
 * every map insertion, and a failure takes them back out, so a bad file
 * in contracts/ leaves the registry as it was. After loading, the registry
 * is only read, which is what makes concurrent validation safe.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/contract_int.h"

/* No scheme and no "/": relative refs in an anonymous schema ("other@2")
 * resolve to registry ids, as they do in a named one. NAME@VERSION ids
 * cannot start with "@", so this never clashes with one. */
#define ANON_PREFIX "@anon"
#define PII_MAX_VISITS 100000 /* bounds a walk through shared subschemas */

/* ---- undo log --------------------------------------------------------------------- */
static void undo_smap(struct sl_contracts *r, struct slc_smap *m, const char *key)
{
	if (!r->undo_on)
		return;
	struct slc_undo u = {.sm = m, .skey = sl_strdup(key)};
	SLC_PUSH(r->undo, r->nundo, r->capundo, u);
}

static void undo_pmap(struct sl_contracts *r, struct slc_pmap *m, const void *key)
{
	if (!r->undo_on)
		return;
	struct slc_undo u = {.pm = m, .pkey = key};
	SLC_PUSH(r->undo, r->nundo, r->capundo, u);
}

static void undo_clear(struct sl_contracts *r, bool rollback)
{
	for (size_t i = r->nundo; i > 0; i--) {
		struct slc_undo *u = &r->undo[i - 1];
		if (rollback && u->sm)
			slc_smap_del(u->sm, u->skey);
		if (rollback && u->pm)
			slc_pmap_del(u->pm, u->pkey);
		free(u->skey);
	}
	r->nundo = 0;
	r->undo_on = false;
}

void slc_reg_put_node(struct sl_contracts *r, const json_t *js, struct slc_node *s)
{
	slc_pmap_put(&r->nodes, js, s);
	undo_pmap(r, &r->nodes, js);
}

void slc_reg_add_code(struct sl_contracts *r, pcre2_code *code)
{
	SLC_PUSH(r->codes, r->ncodes, r->capcodes, code);
}

void slc_reg_add_pending(struct sl_contracts *r, struct slc_node *s)
{
	SLC_PUSH(r->pending, r->npending, r->cappending, s);
}

/* ---- life cycle ---------------------------------------------------------------------- */
struct sl_contracts *sl_contracts_new(void)
{
	struct sl_contracts *r = sl_xcalloc(1, sizeof(*r));
	r->ccx = pcre2_compile_context_create(NULL);
	r->mcx = pcre2_match_context_create(NULL);
	SL_ASSERT(r->ccx && r->mcx);
	pcre2_set_compile_extra_options(r->ccx, PCRE2_EXTRA_ALT_BSUX);
	pcre2_set_match_limit(r->mcx, SLC_REGEX_MATCH_LIMIT);
	r->format_assert = true;
	r->ids = sl_xcalloc(1, sizeof(*r->ids));
	return r;
}

void sl_contracts_set_format_assert(struct sl_contracts *r, bool on)
{
	r->format_assert = on;
}

static void doc_free(struct slc_doc *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nres; i++)
		free(d->res[i]->dyn);
	free(d->res);
	json_decref(d->js);
	free(d->source);
	free(d);
}

void sl_contracts_free(struct sl_contracts *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->ndocs; i++)
		doc_free(r->docs[i]);
	free(r->docs);
	for (size_t i = 0; i < r->nh; i++) {
		struct sl_schema *h = r->hlist[i];
		for (char **p = h->pii; p && *p; p++)
			free(*p);
		free(h->pii);
		free(h);
	}
	free(r->hlist);
	for (size_t i = 0; i < r->ncodes; i++)
		pcre2_code_free(r->codes[i]);
	free(r->codes);
	slc_smap_free(&r->res);
	slc_smap_free(&r->anchors);
	slc_smap_free(&r->handles);
	slc_pmap_free(&r->loc);
	slc_pmap_free(&r->nodes);
	free(r->ids);
	free(r->pending);
	undo_clear(r, false);
	free(r->undo);
	pcre2_compile_context_free(r->ccx);
	pcre2_match_context_free(r->mcx);
	slc_arena_free(&r->arena);
	free(r);
}

/* ---- the index walk: resources, anchors, where each schema sits ------------------------ */
struct walk {
	struct sl_contracts *r;
	struct slc_doc *doc;
	struct sl_err *err;
	const char *where;
};

static int walk_err(struct walk *w, const char *fmt, const char *arg)
{
	char msg[SL_ERR_MSG_MAX / 2];
	snprintf(msg, sizeof(msg), fmt, arg);
	return sl_err_setloc(w->err, SL_EINVAL, w->doc->source ? w->doc->source : "", 1, 1, "%s: %s",
			     w->where, msg);
}

static struct slc_res *new_res(struct walk *w, const char *uri, json_t *js)
{
	struct sl_contracts *r = w->r;
	struct slc_res *res = slc_alloc(&r->arena, sizeof(*res));
	res->uri = slc_strndup(&r->arena, uri, strlen(uri));
	res->js = js;
	res->source = w->doc->source;
	if (!slc_smap_put(&r->res, res->uri, res)) {
		walk_err(w, "duplicate $id \"%s\" (already registered)", uri);
		return NULL;
	}
	undo_smap(r, &r->res, res->uri);
	struct slc_doc *d = w->doc;
	d->res = sl_xrealloc(d->res, (d->nres + 1) * sizeof(*d->res));
	d->res[d->nres++] = res;
	return res;
}

static int add_anchor(struct walk *w, struct slc_res *res, json_t *js, const json_t *name, bool dyn)
{
	if (!json_is_string(name))
		return walk_err(w, "%s must be a string", dyn ? "$dynamicAnchor" : "$anchor");
	char *key = sl_asprintf("%s#%s", res->uri, json_string_value(name));
	struct slc_anchor *a = slc_alloc(&w->r->arena, sizeof(*a));
	a->js = js;
	a->res = res;
	a->dynamic = dyn;
	if (!slc_smap_put(&w->r->anchors, key, a)) {
		int rc = walk_err(w, "duplicate anchor \"%s\"", key);
		free(key);
		return rc;
	}
	undo_smap(w->r, &w->r->anchors, key);
	free(key);
	if (dyn) {
		struct slc_dynanchor da = {
			.name = slc_strndup(&w->r->arena, json_string_value(name),
					    json_string_length(name)),
			.js = js,
		};
		SLC_PUSH(res->dyn, res->ndyn, res->capdyn, da);
	}
	return 0;
}

static int walk_node(struct walk *w, json_t *js, struct slc_res *res, unsigned depth);

static int walk_subs(struct walk *w, json_t *js, struct slc_res *res, unsigned depth)
{
	for (size_t i = 0; i < slc_nsubkws; i++) {
		json_t *v = json_object_get(js, slc_subkws[i].name);
		if (!v)
			continue;
		switch (slc_subkws[i].kind) {
		case SLC_SUB_ONE:
			if (walk_node(w, v, res, depth + 1))
				return SL_EINVAL;
			break;
		case SLC_SUB_ARRAY:
			for (size_t k = 0; k < json_array_size(v); k++)
				if (walk_node(w, json_array_get(v, k), res, depth + 1))
					return SL_EINVAL;
			break;
		case SLC_SUB_MAP: {
			const char *key;
			json_t *sub;
			json_object_foreach(v, key, sub)
				if (walk_node(w, sub, res, depth + 1))
					return SL_EINVAL;
			break;
		}
		}
	}
	return 0;
}

static int walk_node(struct walk *w, json_t *js, struct slc_res *res, unsigned depth)
{
	if (!json_is_object(js))
		return 0; /* booleans carry no ids; other values fail at compile */
	if (depth >= SLC_MAX_DEPTH)
		return walk_err(w, "schema nested too deeply%s", "");
	const json_t *id = json_object_get(js, "$id");
	if (!res) {
		if (!(res = new_res(w, w->doc->base, js)))
			return SL_EINVAL;
	} else if (id) {
		if (!json_is_string(id))
			return walk_err(w, "$id must be a string%s", "");
		char *abs = slc_uri_resolve(res->uri, json_string_value(id));
		char *uri = slc_uri_strip_fragment(abs);
		free(abs);
		/* "$id": "#x" (a pre-2019 anchor) names no new resource */
		struct slc_res *nr = strcmp(uri, res->uri) == 0 ? res : new_res(w, uri, js);
		free(uri);
		if (!nr)
			return SL_EINVAL;
		res = nr;
	}
	slc_pmap_put(&w->r->loc, js, res);
	undo_pmap(w->r, &w->r->loc, js);
	const json_t *a = json_object_get(js, "$anchor");
	if (a && add_anchor(w, res, js, a, false))
		return SL_EINVAL;
	a = json_object_get(js, "$dynamicAnchor");
	if (a && add_anchor(w, res, js, a, true))
		return SL_EINVAL;
	return walk_subs(w, js, res, depth);
}

/* ---- resolving a URI to a schema --------------------------------------------------------- */
/* The value at a JSON pointer (already %-decoded) under root. */
static json_t *pointer_get(json_t *root, const char *ptr, size_t n)
{
	json_t *cur = root;
	size_t i = 0;
	char *tok = sl_xmalloc(n + 1);
	while (cur && i < n) {
		if (ptr[i] != '/') {
			cur = NULL;
			break;
		}
		i++;
		size_t tl = 0;
		while (i < n && ptr[i] != '/') {
			char c = ptr[i++];
			if (c == '~' && i < n && (ptr[i] == '0' || ptr[i] == '1'))
				c = ptr[i++] == '0' ? '~' : '/';
			tok[tl++] = c;
		}
		tok[tl] = '\0';
		if (json_is_object(cur)) {
			cur = json_object_getn(cur, tok, tl);
		} else if (json_is_array(cur)) {
			int64_t idx;
			bool ok = tl > 0 && (tl == 1 || tok[0] != '0') && tok[0] != '-' &&
				  tok[0] != '+' && sl_parse_i64(tok, &idx) == 0;
			cur = ok ? json_array_get(cur, (size_t)idx) : NULL;
		} else {
			cur = NULL;
		}
	}
	free(tok);
	return cur;
}

static struct slc_node *node_for(struct sl_contracts *r, json_t *js, struct slc_res *res)
{
	if (json_is_true(js))
		return &slc_node_true;
	if (json_is_false(js))
		return &slc_node_false;
	struct slc_node *s = slc_pmap_get(&r->nodes, js);
	if (s)
		return s;
	/* a $ref into a place the walk did not visit ("#/examples/0"): compile now */
	return slc_compile(r, js, res, res->uri, "", res->source, NULL);
}

/* Finds the schema uri names; *dyn tells whether it is a $dynamicAnchor. */
static struct slc_node *resolve_uri(struct sl_contracts *r, const char *uri, bool *dyn)
{
	const char *hash = strchr(uri, '#');
	char *base = sl_strndup(uri, hash ? (size_t)(hash - uri) : strlen(uri));
	struct slc_res *res = slc_smap_get(&r->res, base);
	struct slc_node *out = NULL;
	*dyn = false;
	if (!res)
		goto done;
	const char *frag = hash ? hash + 1 : "";
	if (!*frag) {
		out = node_for(r, res->js, res);
	} else if (frag[0] == '/') {
		size_t n;
		char *dec = slc_pct_decode(frag, strlen(frag), &n);
		json_t *js = dec ? pointer_get(res->js, dec, n) : NULL;
		free(dec);
		if (js) {
			struct slc_res *owner = slc_pmap_get(&r->loc, js);
			out = node_for(r, js, owner ? owner : res);
		}
	} else {
		char *key = sl_asprintf("%s#%s", res->uri, frag);
		const struct slc_anchor *a = slc_smap_get(&r->anchors, key);
		free(key);
		if (a) {
			*dyn = a->dynamic;
			out = node_for(r, a->js, a->res);
		}
	}
done:
	free(base);
	return out;
}

/* Resolves what can be resolved; true when anything changed. */
static bool link_pending(struct sl_contracts *r)
{
	bool changed = false;
	for (size_t i = 0; i < r->npending;) {
		struct slc_node *s = r->pending[i];
		bool dyn;
		if (s->ref_uri && !s->ref)
			s->ref = resolve_uri(r, s->ref_uri, &dyn);
		if (s->dref_uri && !s->dref) {
			s->dref = resolve_uri(r, s->dref_uri, &dyn);
			const char *frag = strchr(s->dref_uri, '#');
			if (s->dref && dyn && frag)
				s->dyn_name = frag + 1;
		}
		if ((!s->ref_uri || s->ref) && (!s->dref_uri || s->dref)) {
			r->pending[i] = r->pending[--r->npending];
			changed = true;
		} else {
			i++;
		}
	}
	return changed;
}

/* ---- x-pii paths ------------------------------------------------------------------------- */
struct piiw {
	const struct slc_node *stack[SLC_PII_MAX_DEPTH];
	size_t depth;
	size_t visits;
	struct sl_buf path;
	char **out;
	size_t n, cap;
};

static void pii_walk(struct piiw *w, const struct slc_node *s);

static void pii_child(struct piiw *w, const struct slc_node *s, const char *tok, size_t len)
{
	size_t mark = w->path.len;
	if (tok)
		slc_path_push(&w->path, tok, len);
	pii_walk(w, s);
	w->path.len = mark;
	if (w->path.p)
		w->path.p[mark] = '\0';
}

static void pii_list(struct piiw *w, struct slc_node *const *v, size_t n, const char *tok)
{
	for (size_t i = 0; i < n; i++)
		pii_child(w, v[i], tok, tok ? strlen(tok) : 0);
}

static void pii_walk(struct piiw *w, const struct slc_node *s)
{
	if (!s || s->is_bool || w->depth >= SLC_PII_MAX_DEPTH || ++w->visits > PII_MAX_VISITS)
		return;
	for (size_t i = 0; i < w->depth; i++)
		if (w->stack[i] == s)
			return; /* a recursive schema: its paths are already listed once */
	w->stack[w->depth++] = s;
	if (s->pii && !w->path.err)
		SLC_PUSH(w->out, w->n, w->cap, sl_strdup(sl_buf_str(&w->path)));
	for (size_t i = 0; i < s->nprops; i++)
		pii_child(w, s->props[i].s, s->props[i].name, s->props[i].len);
	/* "*" stands for any array item or any member not named above */
	for (size_t i = 0; i < s->npprops; i++)
		pii_child(w, s->pprops[i].s, "*", 1);
	pii_child(w, s->addl, "*", 1);
	pii_child(w, s->uneval_props, "*", 1);
	pii_list(w, s->prefix, s->nprefix, "*");
	pii_child(w, s->items, "*", 1);
	pii_child(w, s->contains, "*", 1);
	pii_child(w, s->uneval_items, "*", 1);
	/* in-place applicators describe the same value */
	pii_list(w, s->all_of, s->nall_of, NULL);
	pii_list(w, s->any_of, s->nany_of, NULL);
	pii_list(w, s->one_of, s->none_of, NULL);
	pii_child(w, s->then_, NULL, 0);
	pii_child(w, s->else_, NULL, 0);
	for (size_t i = 0; i < s->ndepsch; i++)
		pii_child(w, s->depsch[i].s, NULL, 0);
	pii_child(w, s->ref, NULL, 0);
	pii_child(w, s->dref, NULL, 0);
	w->depth--;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void pii_compute(struct sl_schema *h)
{
	struct piiw w = {.depth = 0};
	sl_buf_init(&w.path, SL_BUF_MAX_LINE);
	pii_walk(&w, h->root);
	sl_buf_free(&w.path);
	if (w.n)
		qsort(w.out, w.n, sizeof(*w.out), str_cmp);
	size_t k = 0;
	for (size_t i = 0; i < w.n; i++) {
		if (k > 0 && strcmp(w.out[k - 1], w.out[i]) == 0)
			free(w.out[i]);
		else
			w.out[k++] = w.out[i];
	}
	for (char **p = h->pii; p && *p; p++)
		free(*p);
	free(h->pii);
	h->pii = sl_xrealloc(w.out, (k + 1) * sizeof(*w.out));
	h->pii[k] = NULL;
}

/* ---- adding documents ---------------------------------------------------------------------- */
static struct sl_schema *new_handle(struct sl_contracts *r, struct slc_res *res, const char *id)
{
	struct sl_schema *h = sl_xcalloc(1, sizeof(*h));
	h->reg = r;
	h->js = res->js;
	h->id = id;
	h->root = json_is_boolean(res->js) ? (json_is_true(res->js) ? &slc_node_true : &slc_node_false)
					    : slc_pmap_get(&r->nodes, res->js);
	SLC_PUSH(r->hlist, r->nh, r->caph, h);
	slc_smap_put(&r->handles, res->uri, h);
	if (id && *id)
		slc_smap_put(&r->handles, id, h);
	res->handle = h;
	return h;
}

/* Makes d visible: handles for its resources, its id in the list (named
 * documents only: an anonymous schema is not a contract), links. */
static void commit(struct sl_contracts *r, struct slc_doc *d, bool listed)
{
	SLC_PUSH(r->docs, r->ndocs, r->capdocs, d);
	for (size_t i = 0; i < d->nres; i++) {
		struct slc_res *res = d->res[i];
		for (size_t k = 0; k < res->ndyn; k++)
			res->dyn[k].s = slc_pmap_get(&r->nodes, res->dyn[k].js);
		bool root = res->js == d->js;
		new_handle(r, res, root ? (d->id ? d->id : "") : res->uri);
	}
	if (listed) {
		r->ids = sl_xrealloc(r->ids, (r->nids + 2) * sizeof(*r->ids));
		r->ids[r->nids++] = d->id;
		r->ids[r->nids] = NULL;
	}
	/* links can change the x-pii paths of documents loaded earlier */
	if (link_pending(r)) {
		for (size_t i = 0; i < r->nh; i++)
			pii_compute(r->hlist[i]);
	} else {
		for (size_t i = 0; i < d->nres; i++)
			pii_compute(d->res[i]->handle);
	}
}

static struct slc_doc *add_doc(struct sl_contracts *r, json_t *schema, const char *source,
			       bool anonymous, struct sl_err *err)
{
	const json_t *idv = json_is_object(schema) ? json_object_get(schema, "$id") : NULL;
	const char *src = source ? source : "";
	if (!json_is_object(schema) && !json_is_boolean(schema)) {
		sl_err_setloc(err, SL_EINVAL, src, 1, 1, "a schema must be an object or a boolean");
		return NULL;
	}
	if (idv && !json_is_string(idv)) {
		sl_err_setloc(err, SL_EINVAL, src, 1, 1, "\"$id\" must be a string");
		return NULL;
	}
	if (!idv && !anonymous) {
		sl_err_setloc(err, SL_EINVAL, src, 1, 1, "missing \"$id\" (NAME@VERSION)");
		return NULL;
	}
	struct slc_doc *d = sl_xcalloc(1, sizeof(*d));
	d->js = json_incref(schema);
	d->source = sl_strdup(src);
	char anon[64];
	snprintf(anon, sizeof(anon), ANON_PREFIX "%u", ++r->anon_seq);
	if (idv) {
		d->id = slc_strndup(&r->arena, json_string_value(idv), json_string_length(idv));
		char *abs = slc_uri_resolve(anonymous ? anon : "", d->id);
		char *base = slc_uri_strip_fragment(abs);
		d->base = slc_strndup(&r->arena, base, strlen(base));
		free(abs);
		free(base);
	} else {
		d->base = slc_strndup(&r->arena, anon, strlen(anon));
	}

	r->undo_on = true;
	size_t pend0 = r->npending;
	struct walk w = {.r = r, .doc = d, .err = err, .where = d->id ? d->id : "schema"};
	int rc = walk_node(&w, schema, NULL, 0);
	if (rc == 0 && json_is_boolean(schema) && !new_res(&w, d->base, schema))
		rc = SL_EINVAL;
	if (rc == 0 && json_is_object(schema)) {
		struct slc_res *root = slc_pmap_get(&r->loc, schema);
		if (!slc_compile(r, schema, root, w.where, "", src, err))
			rc = SL_EINVAL;
	}
	if (rc) {
		undo_clear(r, true);
		r->npending = pend0;
		doc_free(d);
		return NULL;
	}
	undo_clear(r, false);
	commit(r, d, !anonymous);
	return d;
}

int sl_contracts_add(struct sl_contracts *r, json_t *schema, const char *source, struct sl_err *err)
{
	return add_doc(r, schema, source, false, err) ? 0 : SL_EINVAL;
}

struct sl_schema *sl_contracts_compile(struct sl_contracts *r, json_t *schema, const char *source,
				       struct sl_err *err)
{
	/* the same document twice (a CLI that loaded contracts/ and is then
	 * given one of its files) gets the handle it already has */
	for (size_t i = 0; i < r->ndocs; i++) {
		struct slc_doc *d = r->docs[i];
		if (d->js == schema || (d->id && json_is_object(schema) &&
					json_equal(json_object_get(schema, "$id"),
						   json_object_get(d->js, "$id")) &&
					json_equal(schema, d->js)))
			return d->res[0]->handle;
	}
	struct slc_doc *d = add_doc(r, schema, source, true, err);
	return d ? d->res[0]->handle : NULL;
}

/* NAME@VERSION: NAME in [a-z0-9_.-]+, VERSION a non-negative integer. */
static bool valid_contract_id(const char *id)
{
	const char *at = strrchr(id, '@');
	if (!at || at == id)
		return false;
	for (const char *p = id; p < at; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '.' || *p == '-'))
			return false;
	const char *v = at + 1;
	if (!*v || (v[0] == '0' && v[1]))
		return false;
	for (; *v; v++)
		if (*v < '0' || *v > '9')
			return false;
	return true;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool load_file(struct sl_contracts *r, const char *path, struct sl_diags *diags)
{
	json_error_t je;
	json_t *js = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!js) {
		sl_diags_add(diags, path, je.line > 0 ? je.line : 1, je.column > 0 ? je.column : 1,
			     "%s", je.text);
		return false;
	}
	const json_t *id = json_is_object(js) ? json_object_get(js, "$id") : NULL;
	bool ok = false;
	if (!json_is_object(js)) {
		sl_diags_add(diags, path, 1, 1, "a contract must be a JSON object");
	} else if (!id) {
		sl_diags_add(diags, path, 1, 1, "missing \"$id\" (NAME@VERSION, e.g. \"ticket@1\")");
	} else if (!json_is_string(id) || !valid_contract_id(json_string_value(id))) {
		sl_diags_add(diags, path, 1, 1,
			     "\"$id\" must be NAME@VERSION (NAME of a-z 0-9 _ . -, VERSION an integer)");
	} else {
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_contracts_add(r, js, path, &err) == 0)
			ok = true;
		else
			sl_diags_add(diags, path, err.line > 0 ? err.line : 1,
				     err.col > 0 ? err.col : 1, "%s", err.msg);
	}
	json_decref(js);
	return ok;
}

int sl_contracts_load_dir(struct sl_contracts *r, const char *dir, struct sl_diags *diags)
{
	DIR *dp = opendir(dir);
	if (!dp) {
		sl_diags_add(diags, dir, 1, 1, "cannot open the contracts folder");
		return 1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(dp)))
		if (e->d_name[0] != '.' && sl_str_endswith(e->d_name, ".json"))
			SLC_PUSH(names, n, cap, sl_strdup(e->d_name));
	closedir(dp);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		char *path = sl_path_join(dir, names[i]);
		if (!load_file(r, path, diags))
			failed++;
		free(path);
		free(names[i]);
	}
	free(names);
	return failed;
}

int sl_contracts_check_refs(struct sl_contracts *r, struct sl_diags *diags)
{
	link_pending(r);
	int n = 0;
	for (size_t i = 0; i < r->npending; i++) {
		const struct slc_node *s = r->pending[i];
		const char *src = s->res && s->res->source ? s->res->source : "";
		if (s->ref_uri && !s->ref) {
			sl_diags_add(diags, src, 1, 1, "unresolved $ref \"%s\"", s->ref_uri);
			n++;
		}
		if (s->dref_uri && !s->dref) {
			sl_diags_add(diags, src, 1, 1, "unresolved $dynamicRef \"%s\"", s->dref_uri);
			n++;
		}
	}
	return n;
}

/* ---- lookups ----------------------------------------------------------------------------------- */
struct sl_schema *sl_contracts_get(struct sl_contracts *r, const char *id)
{
	struct sl_schema *h = slc_smap_get(&r->handles, id);
	if (!h && sl_str_endswith(id, "#")) {
		char *bare = sl_strndup(id, strlen(id) - 1);
		h = slc_smap_get(&r->handles, bare);
		free(bare);
	}
	return h;
}

const char *const *sl_contracts_ids(struct sl_contracts *r)
{
	return r->ids;
}

const char *const *sl_schema_pii_paths(const struct sl_schema *s)
{
	return (const char *const *)s->pii;
}

const json_t *sl_schema_json(const struct sl_schema *s)
{
	return s->js;
}

const char *sl_schema_id(const struct sl_schema *s)
{
	return s->id;
}

/* Walks pointer p ("/a/ * /b") over v, appending the values found. */
static void pii_collect(const json_t *v, const char *p, json_t *out)
{
	if (!v)
		return;
	if (!*p) {
		json_array_append(out, (json_t *)v);
		return;
	}
	const char *seg = p + 1;
	const char *next = strchr(seg, '/');
	size_t n = next ? (size_t)(next - seg) : strlen(seg);
	const char *rest = seg + n;
	if (n == 1 && seg[0] == '*') {
		size_t i;
		const json_t *e;
		json_array_foreach(v, i, e)
			pii_collect(e, rest, out);
		return;
	}
	/* unescape ~1 and ~0 (RFC 6901) */
	char key[256];
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < sizeof key; i++) {
		if (seg[i] == '~' && i + 1 < n && (seg[i + 1] == '0' || seg[i + 1] == '1')) {
			key[k++] = seg[i + 1] == '0' ? '~' : '/';
			i++;
		} else {
			key[k++] = seg[i];
		}
	}
	key[k] = '\0';
	pii_collect(json_object_get(v, key), rest, out);
}

json_t *sl_schema_pii_values(const struct sl_schema *s, const json_t *instance)
{
	json_t *out = json_array();
	const char *const *paths = s ? sl_schema_pii_paths(s) : NULL;
	for (size_t i = 0; paths && paths[i]; i++)
		pii_collect(instance, paths[i], out);
	return out;
}
