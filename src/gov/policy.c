/*
 * policy.c: policies.yaml `rules:` parsed, matched and decided
 * (docs/reference/policy.md). Rules are few (tens) and evaluated before
 * each connector call, so matching is a plain scan in file order.
 */
#include "gov/policy.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/expr.h"

/* ---- names ---------------------------------------------------------------------------- */

static const char *const autonomy_names[] = {"assistant", "recommender", "drafting", "supervised", "autonomous",
					      NULL};
static const char *const verb_names[] = {"read", "suggest", "write", "trigger", NULL};
static const char *const decision_names[] = {"allow", "require_approval", "deny", NULL};

static int name_index(const char *const *names, const char *name)
{
	for (int i = 0; name && names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

const char *sl_autonomy_name(enum sl_autonomy a)
{
	return (unsigned)a < SL_AUTONOMY__COUNT ? autonomy_names[a] : "?";
}

int sl_autonomy_parse(const char *name)
{
	return name_index(autonomy_names, name);
}

enum sl_autonomy sl_autonomy_demote(enum sl_autonomy a)
{
	return a > SL_AUTONOMY_ASSISTANT ? a - 1 : SL_AUTONOMY_ASSISTANT;
}

const char *sl_policy_verb_name(enum sl_policy_verb v)
{
	return (unsigned)v < SL_VERB__COUNT ? verb_names[v] : "?";
}

int sl_policy_verb_parse(const char *name)
{
	return name_index(verb_names, name);
}

const char *sl_policy_decision_name(enum sl_policy_decision d)
{
	return (unsigned)d <= SL_DECIDE_DENY ? decision_names[d] : "?";
}

/* ---- parsing ---------------------------------------------------------------------------- */

static const struct sl_conf_key policy_keys[] = {
	{"rules", SL_CONF_ARRAY, false, "policy rules: who may read, suggest, write or trigger what"},
	{"default", SL_CONF_ANY, false, "decision when no rule matches: allow (default) or deny, or per verb {read, write, ...}"},
	{NULL, 0, false, NULL},
};

static const struct sl_conf_key rule_keys[] = {
	{"id", SL_CONF_STRING, true, "unique rule name, recorded with every decision it makes"},
	{"description", SL_CONF_STRING, false, "why the rule exists"},
	{"who", SL_CONF_ANY, true, "subject patterns: user:NAME, service:NAME, role:ROLE, workflow:NAME, agent:WORKFLOW/STEP, agent, *"},
	{"what", SL_CONF_ANY, true, "read, suggest, write or trigger (or a list)"},
	{"on", SL_CONF_ANY, false, "target globs: CONNECTOR.ACTION (read/write), workflow (trigger), ai task (suggest); default *"},
	{"fields", SL_CONF_ANY, false, "field names the rule is about (read: hidden from the subject; write: present in the input)"},
	{"when", SL_CONF_JQ, false, "jq over the proposed action {subject, verb, action, effect, input, workflow, step, tenant}"},
	{"decision", SL_CONF_STRING, true, "allow, deny or require_approval"},
	{"reviewers", SL_CONF_ARRAY, false, "require_approval: who decides (principals or role:ROLE)"},
	{NULL, 0, false, NULL},
};

/* A string or a list of non-empty strings, as a NULL-terminated owned
 * array; NULL (reported) when it is neither. */
static char **str_list(struct sl_conf_ctx *ctx, const json_t *v, const char *pointer, const char *key)
{
	char p[SL_CONF_PTR_MAX];
	sl_conf_ptr(p, pointer, key);
	if (json_is_string(v)) {
		char **out = sl_xcalloc(2, sizeof *out);
		out[0] = sl_strdup(json_string_value(v));
		return out;
	}
	if (!json_is_array(v) || json_array_size(v) == 0) {
		sl_conf_error(ctx, p, "%s wants a string or a non-empty list of strings", key);
		return NULL;
	}
	char **out = sl_xcalloc(json_array_size(v) + 1, sizeof *out);
	size_t i, n = 0;
	json_t *e;
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || !*json_string_value(e)) {
			char ep[SL_CONF_PTR_MAX];
			snprintf(ep, sizeof ep, "%s/%zu", p, i);
			sl_conf_error(ctx, ep, "%s entries are non-empty strings", key);
			continue;
		}
		out[n++] = sl_strdup(json_string_value(e));
	}
	return out;
}

static void str_list_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* A subject pattern names its kind: a typo there would silently match
 * nobody. */
static bool who_ok(const char *w)
{
	static const char *const kinds[] = {"user:", "service:", "role:", "workflow:", "agent:", NULL};
	if (strcmp(w, "*") == 0 || strcmp(w, "agent") == 0)
		return true;
	for (int i = 0; kinds[i]; i++)
		if (strncmp(w, kinds[i], strlen(kinds[i])) == 0 && w[strlen(kinds[i])])
			return true;
	return false;
}

static void parse_who(struct sl_conf_ctx *ctx, struct sl_policy_rule *r, const json_t *v, const char *ptr)
{
	r->who = str_list(ctx, json_object_get(v, "who"), ptr, "who");
	char p[SL_CONF_PTR_MAX];
	sl_conf_ptr(p, ptr, "who");
	for (size_t i = 0; r->who && r->who[i]; i++)
		if (!who_ok(r->who[i]))
			sl_conf_error(ctx, p,
				      "rule %s: who '%s' is not a subject (user:NAME, service:NAME, role:ROLE, "
				      "workflow:NAME, agent:WORKFLOW/STEP, agent or *)",
				      r->id, r->who[i]);
}

static void parse_what(struct sl_conf_ctx *ctx, struct sl_policy_rule *r, const json_t *v, const char *ptr)
{
	char **what = str_list(ctx, json_object_get(v, "what"), ptr, "what");
	char p[SL_CONF_PTR_MAX];
	sl_conf_ptr(p, ptr, "what");
	for (size_t i = 0; what && what[i]; i++) {
		int verb = sl_policy_verb_parse(what[i]);
		if (verb < 0)
			sl_conf_error(ctx, p, "rule %s: what '%s' is not read, suggest, write or trigger", r->id,
				      what[i]);
		else
			r->verbs |= 1u << verb;
	}
	str_list_free(what);
}

static void parse_decision(struct sl_conf_ctx *ctx, struct sl_policy_rule *r, const json_t *v, const char *ptr)
{
	char p[SL_CONF_PTR_MAX];
	sl_conf_ptr(p, ptr, "decision");
	const char *d = sl_conf_str(v, "decision", NULL);
	int di = name_index(decision_names, d);
	if (d && di < 0)
		sl_conf_error(ctx, p, "rule %s: decision '%s' is not allow, deny or require_approval", r->id, d);
	r->decision = di < 0 ? SL_DECIDE_DENY : (enum sl_policy_decision)di;
	const json_t *rev = json_object_get(v, "reviewers");
	sl_conf_ptr(p, ptr, "reviewers");
	if (rev && r->decision != SL_DECIDE_REQUIRE_APPROVAL) {
		sl_conf_error(ctx, p, "rule %s: reviewers are for decision require_approval", r->id);
	} else if (json_is_array(rev)) {
		size_t i;
		json_t *e;
		json_array_foreach(rev, i, e) {
			if (!json_is_string(e))
				sl_conf_error(ctx, p, "rule %s: reviewers are strings (a principal or role:ROLE)", r->id);
		}
		r->reviewers = json_incref((json_t *)rev);
	}
}

static void parse_when(struct sl_conf_ctx *ctx, struct sl_policy_rule *r, const json_t *v, const char *ptr)
{
	const char *src = sl_conf_str(v, "when", NULL);
	if (!src)
		return;
	char p[SL_CONF_PTR_MAX], what[256];
	sl_conf_ptr(p, ptr, "when");
	snprintf(what, sizeof what, "policy rule %s: when", r->id);
	struct sl_expr_origin origin;
	sl_conf_origin(ctx, p, what, &origin, NULL, NULL);
	struct sl_err err;
	sl_err_clear(&err);
	r->when = sl_expr_compile(src, &origin, &err);
	if (!r->when)
		sl_conf_error(ctx, p, "%s", err.msg);
}

static void parse_rule(struct sl_conf_ctx *ctx, struct sl_policy *pol, const json_t *v, const char *ptr)
{
	struct sl_policy_rule *r = &pol->rules[pol->nrules];
	memset(r, 0, sizeof *r);
	if (ctx->locate_fn)
		ctx->locate_fn(ctx, ptr, &r->line, &r->col);
	if (!json_is_object(v)) {
		sl_conf_error(ctx, ptr, "a rule is a mapping {id, who, what, on, decision, ...}");
		return;
	}
	sl_conf_check_keys(ctx, v, ptr, rule_keys);
	const char *id = sl_conf_str(v, "id", NULL);
	r->id = sl_strdup(id ? id : "");
	for (size_t i = 0; id && i < pol->nrules; i++)
		if (strcmp(pol->rules[i].id, id) == 0) {
			char p[SL_CONF_PTR_MAX];
			sl_conf_ptr(p, ptr, "id");
			sl_conf_error(ctx, p, "rule id '%s' is used twice", id);
		}
	parse_who(ctx, r, v, ptr);
	parse_what(ctx, r, v, ptr);
	const json_t *on = json_object_get(v, "on");
	r->on = on ? str_list(ctx, on, ptr, "on") : NULL;
	if (!r->on) {
		r->on = sl_xcalloc(2, sizeof *r->on);
		r->on[0] = sl_strdup("*");
	}
	const json_t *fields = json_object_get(v, "fields");
	if (fields)
		r->fields = str_list(ctx, fields, ptr, "fields");
	parse_when(ctx, r, v, ptr);
	parse_decision(ctx, r, v, ptr);
	pol->nrules++;
}

/* `default: deny` or `default: {write: deny, ...}`. */
static void parse_default(struct sl_conf_ctx *ctx, struct sl_policy *pol, const json_t *d)
{
	if (!d)
		return;
	if (json_is_string(d)) {
		int di = name_index(decision_names, json_string_value(d));
		if (di < 0)
			sl_conf_error(ctx, "/default", "default is allow, deny or require_approval");
		for (int v = 0; di >= 0 && v < SL_VERB__COUNT; v++)
			pol->defaults[v] = (enum sl_policy_decision)di;
		return;
	}
	if (!json_is_object(d)) {
		sl_conf_error(ctx, "/default", "default is a decision or {VERB: decision}");
		return;
	}
	const char *k;
	json_t *val;
	json_object_foreach((json_t *)d, k, val) {
		char p[SL_CONF_PTR_MAX];
		sl_conf_ptr(p, "/default", k);
		int v = sl_policy_verb_parse(k);
		int di = name_index(decision_names, json_string_value(val));
		if (v < 0)
			sl_conf_error(ctx, p, "default: '%s' is not read, suggest, write or trigger", k);
		else if (di < 0)
			sl_conf_error(ctx, p, "default %s is allow, deny or require_approval", k);
		else
			pol->defaults[v] = (enum sl_policy_decision)di;
	}
}

struct sl_policy *sl_policy_parse(const json_t *doc, struct sl_conf_ctx *ctx)
{
	struct sl_policy *pol = sl_xcalloc(1, sizeof *pol);
	pol->file = sl_strdup(ctx && ctx->file ? ctx->file : "policies.yaml");
	if (!doc || json_is_null(doc))
		return pol;
	if (!json_is_object(doc)) {
		sl_conf_error(ctx, "", "policies.yaml is a mapping (rules:, default:, and the principals' keys)");
		return pol;
	}
	/* Only our keys are checked: tenants:, principals: and the like are
	 * read by their own parser. */
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)doc, k, v) {
		for (int i = 0; policy_keys[i].name; i++)
			if (strcmp(k, policy_keys[i].name) == 0) {
				json_t *one = json_pack("{s:O}", k, v);
				sl_conf_check_keys(ctx, one, "", policy_keys);
				json_decref(one);
			}
	}
	parse_default(ctx, pol, json_object_get(doc, "default"));
	const json_t *rules = json_object_get(doc, "rules");
	if (!json_is_array(rules))
		return pol;
	pol->rules = sl_xcalloc(json_array_size(rules) + 1, sizeof *pol->rules);
	size_t i;
	json_array_foreach(rules, i, v) {
		char p[SL_CONF_PTR_MAX];
		snprintf(p, sizeof p, "/rules/%zu", i);
		parse_rule(ctx, pol, v, p);
	}
	return pol;
}

void sl_policy_free(struct sl_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nrules; i++) {
		struct sl_policy_rule *r = &p->rules[i];
		free(r->id);
		str_list_free(r->who);
		str_list_free(r->on);
		str_list_free(r->fields);
		sl_expr_free(r->when);
		json_decref(r->reviewers);
	}
	free(p->rules);
	free(p->file);
	free(p);
}

/* ---- matching ------------------------------------------------------------------------- */

bool sl_policy_subject_match(const char *pattern, const struct sl_policy_subject *s)
{
	if (strcmp(pattern, "*") == 0)
		return true;
	bool any_agent = strcmp(pattern, "agent") == 0;
	for (size_t i = 0; s && s->names && s->names[i]; i++) {
		const char *n = s->names[i];
		if (any_agent ? strncmp(n, "agent:", 6) == 0 : fnmatch(pattern, n, 0) == 0)
			return true;
	}
	return false;
}

static bool any_glob(char *const *globs, const char *s)
{
	for (size_t i = 0; globs && globs[i]; i++)
		if (fnmatch(globs[i], s ? s : "", 0) == 0)
			return true;
	return false;
}

static bool who_matches(const struct sl_policy_rule *r, const struct sl_policy_subject *s)
{
	for (size_t i = 0; r->who && r->who[i]; i++)
		if (sl_policy_subject_match(r->who[i], s))
			return true;
	return false;
}

/* A rule about fields applies only when one of them is touched. */
static bool fields_match(const struct sl_policy_rule *r, const json_t *fields)
{
	if (!r->fields)
		return true;
	for (size_t i = 0; r->fields[i]; i++)
		if (json_is_object(fields) && json_object_get(fields, r->fields[i]))
			return true;
	return false;
}

static void add_reviewers(json_t **to, const json_t *from)
{
	if (!*to)
		*to = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(from, i, e) {
		bool seen = false;
		size_t j;
		json_t *f;
		json_array_foreach(*to, j, f) seen = seen || json_equal(e, f);
		if (!seen)
			json_array_append(*to, e);
	}
}

/* Whether r's condition holds; a condition that cannot be evaluated holds
 * (fail closed: a deny or approval rule must not be skipped by an input
 * that breaks its jq), with the reason kept. */
static bool when_holds(const struct sl_policy_rule *r, const json_t *doc, struct sl_policy_result *res)
{
	if (!r->when)
		return true;
	struct sl_err err;
	sl_err_clear(&err);
	bool go = false;
	json_t *empty = doc ? NULL : json_object();
	int rc = sl_expr_eval_bool(r->when, doc ? doc : empty, &go, &err);
	json_decref(empty);
	if (rc) {
		snprintf(res->error, sizeof res->error, "rule %s: %s", r->id, err.msg);
		return r->decision != SL_DECIDE_ALLOW; /* an allow whose condition fails does not allow */
	}
	return go;
}

enum sl_policy_decision sl_policy_eval(const struct sl_policy *p, const struct sl_policy_query *q,
				       struct sl_policy_result *res)
{
	memset(res, 0, sizeof *res);
	res->matched = json_array();
	const struct sl_policy_rule *deciding[3] = {NULL, NULL, NULL}; /* first of each decision */
	for (size_t i = 0; p && i < p->nrules; i++) {
		const struct sl_policy_rule *r = &p->rules[i];
		if (!(r->verbs & (1u << q->verb)) || !any_glob(r->on, q->target) || !who_matches(r, &q->subject) ||
		    !fields_match(r, q->fields) || !when_holds(r, q->doc, res))
			continue;
		json_array_append_new(res->matched, json_pack("{s:s, s:s}", "rule", r->id, "decision",
							      sl_policy_decision_name(r->decision)));
		if (!deciding[r->decision])
			deciding[r->decision] = r;
		if (r->decision == SL_DECIDE_REQUIRE_APPROVAL && r->reviewers)
			add_reviewers(&res->reviewers, r->reviewers);
	}
	/* deny wins, then require_approval, then allow, then the default */
	for (int d = SL_DECIDE_DENY; d >= SL_DECIDE_ALLOW; d--)
		if (deciding[d]) {
			res->decision = (enum sl_policy_decision)d;
			res->rule = deciding[d]->id;
			break;
		}
	if (!res->rule) {
		res->decision = p ? p->defaults[q->verb] : SL_DECIDE_ALLOW;
		res->rule = "default";
	}
	if (res->decision != SL_DECIDE_REQUIRE_APPROVAL) {
		json_decref(res->reviewers);
		res->reviewers = NULL;
	}
	return res->decision;
}

void sl_policy_result_free(struct sl_policy_result *res)
{
	json_decref(res->reviewers);
	json_decref(res->matched);
	memset(res, 0, sizeof *res);
}

/* ---- fields --------------------------------------------------------------------------- */

json_t *sl_policy_denied_fields(const struct sl_policy *p, const struct sl_policy_subject *s, const char *target)
{
	json_t *out = json_array();
	for (size_t i = 0; p && i < p->nrules; i++) {
		const struct sl_policy_rule *r = &p->rules[i];
		if (!r->fields || r->decision != SL_DECIDE_DENY || !(r->verbs & (1u << SL_VERB_READ)) ||
		    (target && !any_glob(r->on, target)) || !who_matches(r, s))
			continue;
		for (size_t f = 0; r->fields[f]; f++)
			json_array_append_new(out, json_string(r->fields[f]));
	}
	return out;
}

static bool field_listed(const json_t *fields, const char *k)
{
	size_t i;
	json_t *f;
	json_array_foreach(fields, i, f) {
		if (strcmp(json_string_value(f), k) == 0)
			return true;
	}
	return false;
}

size_t sl_policy_strip_fields(json_t *v, const json_t *fields)
{
	size_t n = 0;
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		void *tmp;
		json_object_foreach_safe(v, tmp, k, c) {
			if (field_listed(fields, k)) {
				json_object_del(v, k);
				n++;
			} else {
				n += sl_policy_strip_fields(c, fields);
			}
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach(v, i, c) n += sl_policy_strip_fields(c, fields);
	}
	return n;
}

/* ---- rules that match nothing ------------------------------------------------------------ */

static bool list_hit(const char *glob, const char *const *names, const char *prefix)
{
	for (size_t i = 0; names && names[i]; i++) {
		char buf[512];
		snprintf(buf, sizeof buf, "%s%s", prefix, names[i]);
		if (fnmatch(glob, buf, 0) == 0)
			return true;
	}
	return false;
}

static const char *const ai_tasks[] = {"classify", "extract", "summarize", "draft", "route", "tool", NULL};

/* Whether a target glob can name anything the rule's verbs act on. */
static bool target_hits(const struct sl_policy_rule *r, const char *glob, const struct sl_policy_universe *u)
{
	if ((r->verbs & ((1u << SL_VERB_READ) | (1u << SL_VERB_WRITE))) && list_hit(glob, u->actions, ""))
		return true;
	if ((r->verbs & (1u << SL_VERB_TRIGGER)) && list_hit(glob, u->workflows, ""))
		return true;
	return (r->verbs & (1u << SL_VERB_SUGGEST)) && list_hit(glob, ai_tasks, "");
}

/* Whether a subject pattern can name a workflow or agent of the project
 * (principals and roles are not known here: they always count). */
static bool who_hits(const char *w, const struct sl_policy_universe *u)
{
	if (strncmp(w, "workflow:", 9) == 0)
		return list_hit(w, u->workflows, "workflow:");
	if (strncmp(w, "agent:", 6) == 0)
		return list_hit(w, u->agents, "agent:");
	if (strcmp(w, "agent") == 0)
		return u->agents && u->agents[0];
	return true;
}

void sl_policy_check_unused(const struct sl_policy *p, const struct sl_policy_universe *u,
			    void (*warn)(void *ud, int line, int col, const char *msg), void *ud)
{
	char msg[512];
	for (size_t i = 0; p && i < p->nrules; i++) {
		const struct sl_policy_rule *r = &p->rules[i];
		for (size_t j = 0; r->on && r->on[j]; j++)
			if (!target_hits(r, r->on[j], u)) {
				snprintf(msg, sizeof msg, "rule %s: on '%s' matches no %s", r->id, r->on[j],
					 r->verbs & (1u << SL_VERB_TRIGGER) ? "workflow" : r->verbs & (1u << SL_VERB_SUGGEST) ? "ai task" : "connector action");
				warn(ud, r->line, r->col, msg);
			}
		for (size_t j = 0; r->who && r->who[j]; j++)
			if (!who_hits(r->who[j], u)) {
				snprintf(msg, sizeof msg, "rule %s: who '%s' matches no workflow or ai step", r->id,
					 r->who[j]);
				warn(ud, r->line, r->col, msg);
			}
		for (size_t j = 0; r->fields && r->fields[j]; j++)
			if (!list_hit(r->fields[j], u->fields, "")) {
				snprintf(msg, sizeof msg, "rule %s: field '%s' is in no contract", r->id, r->fields[j]);
				warn(ud, r->line, r->col, msg);
			}
	}
}
