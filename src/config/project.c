/*
 * project.c: a project folder (DESIGN.md §2) loaded file by file, in sorted
 * order, every problem collected: settings, contracts, connectors, prompts,
 * workflows, then the checks that span files (duplicate definitions,
 * webhook paths, emit cycles).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config_int.h"
#include "gov/auth.h"

/* Files of one kind in one folder; more is not a hand-written project. */
#define DIR_FILES_MAX 10000
/* Workflows the emit-cycle check handles (it is quadratic in memory). */
#define CYCLE_WORKFLOWS_MAX 4096

const struct sl_conf_key sl_settings_keys[] = {
	{"name", SL_CONF_STRING, false, "project name; default: the folder's name"},
	{"store", SL_CONF_STRING, false, "sqlite:PATH (relative to the project folder), postgres://..., or env:NAME / file:PATH holding one; default sqlite:.sluice/sluice.db"},
	{"workers", SL_CONF_INT, false, "worker threads; default 2"},
	{"listen", SL_CONF_STRING, false, "HOST:PORT of the HTTP server; default 127.0.0.1:8080"},
	{"log_level", SL_CONF_STRING, false, "debug, info, warn, error or off; default info"},
	{"lease", SL_CONF_DURATION, false, "how long a worker holds a task before another may take it; default 30s"},
	{"batch", SL_CONF_INT, false, "tasks a worker claims and commits together; default 16"},
	{"dlq_retention", SL_CONF_DURATION, false, "dead-letter entries older than this are deleted; default 30d"},
	{"idempotency_ttl", SL_CONF_DURATION, false, "how long API, webhook, event and stream message keys are remembered; default 30d"},
	{"otlp_endpoint", SL_CONF_STRING, false, "an OTLP/HTTP collector (http://HOST:4318): every run's spans are sent when it ends"},
	{"tenants", SL_CONF_OBJECT, false, "runtime shares for fair claiming, TENANT: {weight, max_concurrency}; unlisted tenants: weight 1, no limit"},
	{NULL, 0, false, NULL},
};

/* One tenant's runtime share under `tenants:` (not policies.yaml's tenants,
 * which say who may do what). */
static const struct sl_conf_key tenant_share_keys[] = {
	{"weight", SL_CONF_ANY, false, "its share of the workers relative to other tenants' (a number > 0); default 1"},
	{"max_concurrency", SL_CONF_INT, false, "at most this many of its runs in flight at once, over every process; default: no limit"},
	{NULL, 0, false, NULL},
};

static const char *const log_levels[] = {"debug", "info", "warn", "error", "off", NULL};

/* One loaded workflow file, kept until the cross-file checks are done. */
struct wf_file {
	struct sl_workflow *w; /* the project's reference */
	struct conf_file cf;
	struct sl_locmap *locs;
};

struct loader {
	struct sl_project *p;
	const struct sl_load_opts *opts;
	struct sl_diags *diags;
	char **broken; /* connectors that failed to load, NULL-terminated */
	size_t nbroken;
	struct wf_file *wf;
	size_t nwf;
};

/* ---- files ----------------------------------------------------------------------------------- */

/* A path as the user will recognise it: DIR/rel, or rel when DIR is ".". */
static char *disp_path(const char *dir, const char *rel)
{
	if (!dir || !*dir || strcmp(dir, ".") == 0 || strcmp(dir, "./") == 0)
		return sl_strdup(rel);
	return sl_path_join(dir, rel);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in DIR/sub ending in suffix (NULL-terminated, owned);
 * NULL when the folder does not exist. Files ending in alt_suffix are
 * reported: they would be silently ignored otherwise. */
static char **list_dir(struct loader *L, const char *sub, const char *suffix, const char *alt_suffix)
{
	char *path = sl_path_join(L->p->dir, sub);
	DIR *dp = opendir(path);
	free(path);
	if (!dp)
		return NULL;
	char **names = sl_xcalloc(1, sizeof *names);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(dp)) && n < DIR_FILES_MAX) {
		if (de->d_name[0] == '.')
			continue;
		if (alt_suffix && sl_str_endswith(de->d_name, alt_suffix)) {
			char *rel = sl_asprintf("%s/%s", sub, de->d_name);
			char *shown = disp_path(L->p->dir, rel);
			sl_diags_add(L->diags, shown, 0, 0, "not read: name the file with %s", suffix);
			free(rel);
			free(shown);
			continue;
		}
		if (!sl_str_endswith(de->d_name, suffix) || strlen(de->d_name) == strlen(suffix))
			continue;
		names = sl_xrealloc(names, (n + 2) * sizeof *names);
		names[n++] = sl_strdup(de->d_name);
		names[n] = NULL;
	}
	closedir(dp);
	qsort(names, n, sizeof *names, str_cmp);
	return names;
}

static void free_names(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

/* Reads DIR/rel; reports and returns NULL on failure. *shown is the path for
 * messages (owned). */
static char *read_file(struct loader *L, const char *rel, size_t max, size_t *len, char **shown)
{
	*shown = disp_path(L->p->dir, rel);
	char *full = sl_path_join(L->p->dir, rel);
	char *text = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_file_read(full, max, &text, len, &err);
	free(full);
	if (rc) {
		if (rc == SL_ETOOBIG)
			sl_diags_add(L->diags, *shown, 0, 0, "the file is larger than %zu bytes", max);
		else
			sl_diags_add(L->diags, *shown, 0, 0, "cannot read the file");
		return NULL;
	}
	return text;
}

static char *stem(const char *name, const char *suffix)
{
	return sl_strndup(name, strlen(name) - strlen(suffix));
}

/* ---- sluice.yaml ------------------------------------------------------------------------------- */

static void settings_defaults(struct sl_project *p)
{
	struct sl_settings *s = &p->settings;
	char real[PATH_MAX];
	const char *base = realpath(p->dir, real) ? real : p->dir;
	const char *slash = strrchr(base, '/');
	s->name = sl_strdup(slash && slash[1] ? slash + 1 : base);
	s->store = sl_strdup("sqlite:.sluice/sluice.db");
	s->workers = 2;
	s->listen = sl_strdup("127.0.0.1:8080");
	s->log_level = sl_strdup("info");
	s->lease_ms = 30000;
	s->batch = 16;
	s->dlq_retention_ms = 30LL * 86400000;
	s->idem_ttl_ms = 30LL * 86400000;
}

static void replace(char **slot, const char *v)
{
	if (!v)
		return;
	free(*slot);
	*slot = sl_strdup(v);
}

static int int_in(struct conf_file *cf, const json_t *doc, const char *key, int lo, int hi, int def)
{
	const json_t *v = json_object_get(doc, key);
	if (!json_is_integer(v))
		return def;
	json_int_t n = json_integer_value(v);
	if (n < lo || n > hi) {
		char p[CONF_PTR_MAX];
		conf_ptr(p, "", key);
		conf_err(cf, p, "'%s' must be between %d and %d", key, lo, hi);
		return def;
	}
	return (int)n;
}

static bool listen_ok(const char *s)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s)
		return false;
	int64_t port;
	return sl_parse_i64(colon + 1, &port) == 0 && port >= 0 && port <= 65535;
}

/* `tenants:`: each entry's weight and max_concurrency, checked. */
static void tenants_apply(struct sl_settings *s, struct conf_file *cf, const json_t *map)
{
	if (!json_is_object(map))
		return;
	s->tenants = sl_xcalloc(json_object_size(map) + 1, sizeof *s->tenants);
	const char *name;
	const json_t *v;
	json_object_foreach((json_t *)map, name, v) {
		char ptr[CONF_PTR_MAX];
		conf_ptr(ptr, "/tenants", name);
		if (!*name) {
			conf_err_key(cf, ptr, "a tenant name must not be empty");
			continue;
		}
		if (!json_is_object(v)) {
			conf_err(cf, ptr, "tenant '%s' must be a mapping like {weight: 2, max_concurrency: 8}, not %s", name,
				 conf_kind(v));
			continue;
		}
		if (conf_check_keys(cf, v, ptr, "tenant", tenant_share_keys))
			continue;
		struct sl_tenant_conf t = {.weight = 1, .max_concurrency = 0};
		const json_t *w = json_object_get(v, "weight");
		char at[CONF_PTR_MAX];
		if (w && (!json_is_number(w) || json_number_value(w) <= 0 || json_number_value(w) > 1000000)) {
			conf_ptr(at, ptr, "weight");
			conf_err(cf, at, "weight must be a number above 0 and at most 1000000");
			continue;
		}
		if (w)
			t.weight = json_number_value(w);
		const json_t *mc = json_object_get(v, "max_concurrency");
		if (mc && (json_integer_value(mc) < 0 || json_integer_value(mc) > 1000000)) {
			conf_ptr(at, ptr, "max_concurrency");
			conf_err(cf, at, "max_concurrency must be between 0 (no limit) and 1000000");
			continue;
		}
		t.max_concurrency = mc ? (int)json_integer_value(mc) : 0;
		t.name = sl_strdup(name);
		s->tenants[s->ntenants++] = t;
	}
}

static void settings_apply(struct sl_project *p, struct conf_file *cf, const json_t *doc)
{
	struct sl_settings *s = &p->settings;
	if (conf_check_keys(cf, doc, "", "sluice.yaml", sl_settings_keys) && !json_is_object(doc))
		return;
	replace(&s->name, conf_str(doc, "name", NULL));
	const char *store = conf_str(doc, "store", NULL);
	if (store && !*store)
		conf_err(cf, "/store", "store must not be empty");
	else
		replace(&s->store, store);
	s->workers = int_in(cf, doc, "workers", 1, 1024, s->workers);
	s->batch = int_in(cf, doc, "batch", 1, 10000, s->batch);
	const char *listen = conf_str(doc, "listen", NULL);
	if (listen && !listen_ok(listen))
		conf_err(cf, "/listen", "listen '%s' must be HOST:PORT, e.g. 127.0.0.1:8080", listen);
	else
		replace(&s->listen, listen);
	const char *otlp = conf_str(doc, "otlp_endpoint", NULL);
	if (otlp && !sl_str_startswith(otlp, "http://") && !sl_str_startswith(otlp, "https://"))
		conf_err(cf, "/otlp_endpoint", "otlp_endpoint '%s' must be an http:// or https:// URL", otlp);
	else
		replace(&s->otlp_endpoint, otlp);
	const char *lvl = conf_str(doc, "log_level", NULL);
	if (lvl && sl_log_parse_level(lvl) < 0) {
		const char *best = sl_did_you_mean(lvl, log_levels);
		conf_err(cf, "/log_level", "unknown log_level '%s'%s%s%s; use debug, info, warn, error or off", lvl,
			 best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "");
	} else {
		replace(&s->log_level, lvl);
	}
	const json_t *lease = json_object_get(doc, "lease");
	int64_t ms = conf_duration(lease, s->lease_ms);
	if (lease && conf_type_ok(SL_CONF_DURATION, lease) && ms < 1000)
		conf_err(cf, "/lease", "lease must be at least 1s");
	else
		s->lease_ms = ms;
	tenants_apply(s, cf, json_object_get(doc, "tenants"));
	const json_t *ret = json_object_get(doc, "dlq_retention");
	ms = conf_duration(ret, s->dlq_retention_ms);
	if (ret && conf_type_ok(SL_CONF_DURATION, ret) && ms < 1000)
		conf_err(cf, "/dlq_retention", "dlq_retention must be at least 1s");
	else
		s->dlq_retention_ms = ms;
	const json_t *ttl = json_object_get(doc, "idempotency_ttl");
	ms = conf_duration(ttl, s->idem_ttl_ms);
	if (ttl && conf_type_ok(SL_CONF_DURATION, ttl) && ms < 1000)
		conf_err(cf, "/idempotency_ttl", "idempotency_ttl must be at least 1s");
	else
		s->idem_ttl_ms = ms;
}

static void load_settings(struct loader *L)
{
	struct sl_project *p = L->p;
	settings_defaults(p);
	char *full = sl_path_join(p->dir, "sluice.yaml");
	struct stat sb;
	bool exists = stat(full, &sb) == 0;
	free(full);
	if (!exists)
		return; /* optional */
	char *shown = NULL;
	size_t len = 0;
	char *text = read_file(L, "sluice.yaml", CONF_FILE_MAX, &len, &shown);
	struct sl_locmap *locs = NULL;
	json_t *doc = text ? sl_yaml_parse(text, len, shown, &locs, L->diags) : NULL;
	if (doc && !json_is_null(doc)) { /* an empty file is all defaults */
		struct conf_file cf = {.file = shown, .locs = locs, .diags = L->diags};
		settings_apply(p, &cf, doc);
	}
	json_decref(doc);
	sl_locmap_free(locs);
	free(text);
	free(shown);
}

/* ---- contracts -------------------------------------------------------------------------------- */

static void load_contracts(struct loader *L)
{
	struct sl_project *p = L->p;
	p->contracts = sl_contracts_new();
	char *dir = sl_path_join(p->dir, "contracts");
	struct stat sb;
	if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		/* The registry names files by the path it is given: show the user's. */
		char *shown = disp_path(p->dir, "contracts");
		sl_contracts_load_dir(p->contracts, shown, L->diags);
		sl_contracts_check_refs(p->contracts, L->diags);
		free(shown);
	}
	free(dir);
}

/* ---- connectors --------------------------------------------------------------------------------- */

/* Problems with a key itself (unknown, missing) point at the key; others
 * at the value. */
static void conn_report(struct sl_conf_ctx *ctx, const char *pointer, const char *msg)
{
	struct conf_file *cf = ctx->ud;
	int line, col;
	if (sl_str_startswith(msg, "unknown key") || sl_str_startswith(msg, "missing"))
		sl_locmap_find_key(cf->locs, pointer, &line, &col);
	else
		sl_locmap_find(cf->locs, pointer, &line, &col);
	sl_diags_add(cf->diags, cf->file, line, col, "%s", msg);
	cf->nerrors++;
}

static void conn_locate(struct sl_conf_ctx *ctx, const char *pointer, int *line, int *col)
{
	struct conf_file *cf = ctx->ud;
	sl_locmap_find(cf->locs, pointer, line, col);
}

static void mark_broken(struct loader *L, const char *name)
{
	L->broken = sl_xrealloc(L->broken, (L->nbroken + 2) * sizeof *L->broken);
	L->broken[L->nbroken++] = sl_strdup(name);
	L->broken[L->nbroken] = NULL;
}

static void add_connector(struct loader *L, struct sl_connector *c, struct conf_file *cf)
{
	struct sl_project *p = L->p;
	struct sl_connector *other = sl_project_connector(p, c->name);
	if (other) {
		conf_err(cf, "/connector", "connector '%s' is also defined in %s", c->name, other->file);
		sl_connector_free(c);
		return;
	}
	p->connectors = sl_xrealloc(p->connectors, (p->nconnectors + 1) * sizeof *p->connectors);
	p->connectors[p->nconnectors++] = c;
}

static void load_connector(struct loader *L, const char *fname)
{
	char *rel = sl_asprintf("connectors/%s", fname);
	char *shown = NULL, *fallback = stem(fname, ".yaml");
	size_t len = 0;
	char *text = read_file(L, rel, CONF_FILE_MAX, &len, &shown);
	struct sl_locmap *locs = NULL;
	json_t *doc = text ? sl_yaml_parse(text, len, shown, &locs, L->diags) : NULL;
	/* A call to a connector that failed here is not reported again. */
	const char *name = json_is_string(json_object_get(doc, "connector"))
				   ? json_string_value(json_object_get(doc, "connector"))
				   : fallback;
	if (doc) {
		struct conf_file cf = {.file = shown, .locs = locs, .diags = L->diags};
		struct sl_conf_ctx ctx = {
			.file = shown,
			.project_dir = L->p->dir,
			.resolve_secrets = L->opts && L->opts->resolve_secrets,
			.report_fn = conn_report,
			.locate_fn = conn_locate,
			.ud = &cf,
		};
		struct sl_connector *c = sl_connector_new(doc, &ctx);
		if (c) {
			add_connector(L, c, &cf);
		} else {
			if (!ctx.nerrors)
				conf_err(&cf, "", "the connector could not be built");
			mark_broken(L, name);
		}
	} else {
		mark_broken(L, name);
	}
	json_decref(doc);
	sl_locmap_free(locs);
	free(text);
	free(shown);
	free(fallback);
	free(rel);
}

static void load_connectors(struct loader *L)
{
	char **names = list_dir(L, "connectors", ".yaml", ".yml");
	for (size_t i = 0; names && names[i]; i++)
		load_connector(L, names[i]);
	free_names(names);
}

/* ---- prompts -------------------------------------------------------------------------------------- */

static void load_prompts(struct loader *L)
{
	struct sl_project *p = L->p;
	char **names = list_dir(L, "prompts", ".md", NULL);
	for (size_t i = 0; names && names[i]; i++) {
		char *rel = sl_asprintf("prompts/%s", names[i]);
		char *shown = NULL;
		size_t len = 0;
		char *text = read_file(L, rel, PROMPT_FILE_MAX, &len, &shown);
		if (text) {
			p->prompts = sl_xrealloc(p->prompts, (p->nprompts + 1) * sizeof *p->prompts);
			struct sl_prompt *pr = &p->prompts[p->nprompts++];
			pr->name = stem(names[i], ".md");
			pr->text = text;
			sl_sha256_hex(text, len, pr->digest);
		}
		free(shown);
		free(rel);
	}
	free_names(names);
}

/* ---- models.yaml ----------------------------------------------------------------------------------- */

/* The AI runtime; a project without models.yaml gets one with no routes. */
static void load_models(struct loader *L)
{
	struct sl_project *p = L->p;
	char *full = sl_path_join(p->dir, "models.yaml");
	struct stat sb;
	bool exists = stat(full, &sb) == 0;
	free(full);
	char *shown = NULL, *text = NULL;
	size_t len = 0;
	struct sl_locmap *locs = NULL;
	json_t *doc = NULL;
	if (exists) {
		text = read_file(L, "models.yaml", CONF_FILE_MAX, &len, &shown);
		doc = text ? sl_yaml_parse(text, len, shown, &locs, L->diags) : NULL;
	}
	struct conf_file cf = {.file = shown ? shown : "models.yaml", .locs = locs, .diags = L->diags};
	struct sl_conf_ctx ctx = {
		.file = cf.file,
		.project_dir = p->dir,
		.resolve_secrets = L->opts && L->opts->resolve_secrets,
		.report_fn = conn_report,
		.locate_fn = conn_locate,
		.ud = &cf,
	};
	p->ai = sl_ai_new(doc, &ctx, p->dir);
	if (!p->ai) { /* errors were reported; workflows still check against an empty one */
		struct sl_conf_ctx quiet = ctx;
		p->ai = sl_ai_new(NULL, &quiet, p->dir);
		p->broken_routes = json_incref(json_object_get(doc, "routes"));
	}
	json_decref(doc);
	sl_locmap_free(locs);
	free(text);
	free(shown);
}

/* ---- policies.yaml (rules:) ------------------------------------------------------------------------ */

struct warn_to {
	struct sl_diags *d;
	const char *file;
};

static void policy_warn(void *ud, int line, int col, const char *msg)
{
	struct warn_to *w = ud;
	if (w->d)
		sl_diags_add(w->d, w->file, line, col, "%s", msg);
}

static void add_name(json_t *set, const char *name)
{
	json_object_set_new(set, name, json_true());
}

static void contract_fields(json_t *set, const json_t *schema, int depth)
{
	if (depth > 32 || !json_is_object(schema))
		return;
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(schema, "properties"), k, v) {
		add_name(set, k);
		contract_fields(set, v, depth + 1);
	}
	contract_fields(set, json_object_get(schema, "items"), depth + 1);
	json_object_foreach(json_object_get(schema, "$defs"), k, v) contract_fields(set, v, depth + 1);
}

/* The keys of set as a NULL-terminated array borrowing them. */
static const char **set_names(const json_t *set)
{
	const char **v = sl_xcalloc(json_object_size(set) + 1, sizeof *v);
	size_t n = 0;
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)set, k, x) v[n++] = k;
	return v;
}

/* Rules that can apply to nothing the project has are warnings: the
 * project still runs, but a misspelt action leaves a rule without teeth. */
static void check_policy_unused(struct loader *L, const char *file)
{
	struct sl_project *p = L->p;
	json_t *actions = json_object(), *workflows = json_object(), *agents = json_object(), *fields = json_object();
	for (size_t i = 0; i < p->nconnectors; i++)
		for (size_t j = 0; j < p->connectors[i]->nactions; j++) {
			char buf[512];
			snprintf(buf, sizeof buf, "%s.%s", p->connectors[i]->name, p->connectors[i]->actions[j].name);
			add_name(actions, buf);
		}
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		add_name(workflows, w->name);
		for (size_t j = 0; j < w->nsteps; j++)
			if (w->steps[j].kind == SL_STEP_AI) {
				char buf[512];
				snprintf(buf, sizeof buf, "%s/%s", w->name, w->steps[j].id);
				add_name(agents, buf);
			}
	}
	for (const char *const *ids = sl_contracts_ids(p->contracts); ids && *ids; ids++)
		contract_fields(fields, sl_schema_json(sl_contracts_get(p->contracts, *ids)), 0);
	const char **a = set_names(actions), **w = set_names(workflows), **g = set_names(agents),
		   **f = set_names(fields);
	struct sl_policy_universe u = {.actions = a, .workflows = w, .agents = g, .fields = f};
	struct warn_to wt = {.d = L->opts ? L->opts->warnings : NULL, .file = file};
	sl_policy_check_unused(p->policy, &u, policy_warn, &wt);
	free(a);
	free(w);
	free(g);
	free(f);
	json_decref(actions);
	json_decref(workflows);
	json_decref(agents);
	json_decref(fields);
}

/* policies.yaml: the tenants and principals (src/gov/principals.c) and the
 * policy rules (src/gov/policy.c). Without the file: one tenant, "default",
 * no principals, and an empty policy (everything allowed but what autonomy
 * levels hold back). Each parser checks its own keys; the top level is
 * checked here, so a misspelt section is not silently ignored. Loaded after
 * the workflows: rules that match nothing they have are warnings. */
static const struct sl_conf_key policies_file_keys[] = {
	{"tenants", SL_CONF_ANY, false, "the tenants principals belong to"},
	{"principals", SL_CONF_ARRAY, false, "users, services and AI agents: name, kind, tenant, role"},
	{"rules", SL_CONF_ARRAY, false, "policy rules: who may read, suggest, write or trigger what"},
	{"default", SL_CONF_ANY, false, "the decision when no rule matches"},
	{NULL, 0, false, NULL},
};

static void load_policies(struct loader *L)
{
	struct sl_project *p = L->p;
	char *full = sl_path_join(p->dir, "policies.yaml");
	struct stat sb;
	bool exists = stat(full, &sb) == 0;
	free(full);
	char *shown = NULL, *text = NULL;
	size_t len = 0;
	struct sl_locmap *locs = NULL;
	json_t *doc = NULL;
	if (exists) {
		text = read_file(L, "policies.yaml", CONF_FILE_MAX, &len, &shown);
		doc = text ? sl_yaml_parse(text, len, shown, &locs, L->diags) : NULL;
		if (doc && !json_is_object(doc))
			sl_diags_add(L->diags, shown, 1, 1, "policies.yaml must be a mapping (tenants:, principals:, rules:)");
	}
	struct conf_file cf = {.file = shown ? shown : "policies.yaml", .locs = locs, .diags = L->diags};
	struct sl_conf_ctx ctx = {
		.file = cf.file,
		.project_dir = p->dir,
		.report_fn = conn_report,
		.locate_fn = conn_locate,
		.ud = &cf,
	};
	if (json_is_object(doc))
		conf_check_keys(&cf, doc, "", "policies.yaml", policies_file_keys);
	p->principals = sl_principals_parse(json_is_object(doc) ? doc : NULL, &ctx);
	p->policy = sl_policy_parse(doc, &ctx);
	if (exists && ctx.nerrors == 0)
		check_policy_unused(L, cf.file);
	json_decref(doc);
	sl_locmap_free(locs);
	free(text);
	free(shown);
}

const struct sl_prompt *sl_project_prompt(const struct sl_project *p, const char *name)
{
	for (size_t i = 0; p && name && i < p->nprompts; i++)
		if (strcmp(p->prompts[i].name, name) == 0)
			return &p->prompts[i];
	return NULL;
}

/* ---- workflows ------------------------------------------------------------------------------------ */

static void load_workflow(struct loader *L, const char *fname)
{
	char *rel = sl_asprintf("workflows/%s", fname);
	char *shown = NULL;
	size_t len = 0;
	char *text = read_file(L, rel, CONF_FILE_MAX, &len, &shown);
	free(rel);
	struct sl_locmap *locs = NULL;
	json_t *doc = text ? sl_yaml_parse(text, len, shown, &locs, L->diags) : NULL;
	struct sl_workflow *w = NULL;
	if (doc) {
		struct conf_file cf = {.file = shown, .locs = locs, .diags = L->diags};
		struct wf_env env = {.p = L->p, .broken_connectors = (const char *const *)L->broken};
		w = wf_build(&env, &cf, text, doc);
	}
	json_decref(doc);
	free(text);
	if (!w) {
		sl_locmap_free(locs);
		free(shown);
		return;
	}
	struct sl_project *p = L->p;
	p->workflows = sl_xrealloc(p->workflows, (p->nworkflows + 1) * sizeof *p->workflows);
	p->workflows[p->nworkflows++] = w;
	L->wf = sl_xrealloc(L->wf, (L->nwf + 1) * sizeof *L->wf);
	L->wf[L->nwf++] = (struct wf_file){.w = w, .cf = {.file = shown, .locs = locs, .diags = L->diags}, .locs = locs};
}

static void load_workflows(struct loader *L)
{
	char **names = list_dir(L, "workflows", ".yaml", ".yml");
	for (size_t i = 0; names && names[i]; i++)
		load_workflow(L, names[i]);
	free_names(names);
}

/* ---- checks across files ------------------------------------------------------------------------------ */

static void check_duplicates(struct loader *L)
{
	for (size_t j = 0; j < L->nwf; j++) {
		struct wf_file *b = &L->wf[j];
		for (size_t i = 0; i < j; i++) {
			const struct wf_file *a = &L->wf[i];
			if (strcmp(a->w->name, b->w->name) == 0 && a->w->version == b->w->version) {
				int line, col;
				conf_pos(&a->cf, "/workflow", &line, &col);
				conf_err(&b->cf, "/workflow", "workflow '%s' version %d is also defined in %s:%d",
					 b->w->name, b->w->version, a->cf.file, line);
				break;
			}
		}
		if (b->w->trigger.kind != SL_TRIGGER_WEBHOOK || !b->w->trigger.path)
			continue;
		for (size_t i = 0; i < j; i++) {
			const struct wf_file *a = &L->wf[i];
			if (a->w->trigger.kind == SL_TRIGGER_WEBHOOK && a->w->trigger.path &&
			    strcmp(a->w->trigger.path, b->w->trigger.path) == 0) {
				conf_err(&b->cf, "/trigger/webhook/path",
					 "webhook path '%s' is also used by workflow '%s' (%s)", b->w->trigger.path,
					 a->w->name, a->cf.file);
				break;
			}
		}
	}
}

/* The first emit step of a without `when` that starts b, or -1. Such an
 * edge always fires; one with `when` may stop the loop. */
static int unguarded_emit(const struct sl_workflow *a, const struct sl_workflow *b)
{
	if (b->trigger.kind != SL_TRIGGER_EVENT || !b->trigger.event)
		return -1;
	for (size_t s = 0; s < a->nsteps; s++) {
		const struct sl_step *st = &a->steps[s];
		if (st->kind == SL_STEP_EMIT && !st->when && st->topic && strcmp(st->topic, b->trigger.event) == 0)
			return (int)s;
	}
	return -1;
}

/* Shortest path from `from` to `to` over edges (BFS); appends the
 * workflow names "from -> ... -> to" to out. */
static void cycle_text(struct loader *L, const bool *adj, size_t n, size_t from, size_t to, struct sl_buf *out)
{
	size_t *prev = sl_xcalloc(n, sizeof *prev), *queue = sl_xcalloc(n, sizeof *queue);
	bool *seen = sl_xcalloc(n, sizeof *seen);
	size_t head = 0, tail = 0;
	queue[tail++] = from;
	seen[from] = true;
	while (head < tail && !seen[to]) {
		size_t u = queue[head++];
		for (size_t v = 0; v < n; v++) {
			if (adj[u * n + v] && !seen[v]) {
				seen[v] = true;
				prev[v] = u;
				queue[tail++] = v;
			}
		}
	}
	/* the path to -> ... reversed from prev[], then printed forwards */
	size_t *path = sl_xcalloc(n + 1, sizeof *path), np = 0;
	for (size_t v = to; np <= n; v = prev[v]) {
		path[np++] = v;
		if (v == from)
			break;
	}
	for (size_t k = np; k-- > 0;)
		sl_buf_printf(out, "%s%s", k == np - 1 ? "" : " -> ", L->wf[path[k]].w->name);
	free(path);
	free(prev);
	free(queue);
	free(seen);
}

/* Workflows started by a topic and steps that emit it form a graph; a
 * cycle of emits without `when` would run forever. One error per cycle
 * (strongly connected set), at the emit step that closes it. */
static void check_cycles(struct loader *L)
{
	size_t n = L->nwf;
	if (n == 0 || n > CYCLE_WORKFLOWS_MAX)
		return;
	bool *adj = sl_xcalloc(n * n, sizeof *adj), *reach = sl_xcalloc(n * n, sizeof *reach);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			adj[i * n + j] = reach[i * n + j] = unguarded_emit(L->wf[i].w, L->wf[j].w) >= 0;
	for (size_t k = 0; k < n; k++) /* transitive closure */
		for (size_t i = 0; i < n; i++)
			if (reach[i * n + k])
				for (size_t j = 0; j < n; j++)
					reach[i * n + j] |= reach[k * n + j];
	bool *done = sl_xcalloc(n, sizeof *done);
	for (size_t i = 0; i < n; i++) {
		if (done[i] || !reach[i * n + i])
			continue;
		for (size_t k = 0; k < n; k++) /* the whole cycle set is reported once */
			if (reach[i * n + k] && reach[k * n + i])
				done[k] = true;
		size_t j = 0;
		while (j < n && !(adj[i * n + j] && (j == i || reach[j * n + i])))
			j++;
		int step = unguarded_emit(L->wf[i].w, L->wf[j].w);
		struct sl_buf text;
		sl_buf_init(&text, SL_BUF_MAX_LINE);
		sl_buf_printf(&text, "%s -> ", L->wf[i].w->name);
		if (j == i)
			sl_buf_adds(&text, L->wf[i].w->name);
		else
			cycle_text(L, adj, n, j, i, &text);
		int line, col;
		wf_emit_pos(&L->wf[i].cf, (size_t)step, &line, &col);
		sl_diags_add(L->diags, L->wf[i].cf.file, line, col, "emit cycle: %s; add a `when` to stop it",
			     sl_buf_str(&text));
		sl_buf_free(&text);
	}
	free(done);
	free(adj);
	free(reach);
}

/* ---- the project -------------------------------------------------------------------------------------- */

static void loader_free(struct loader *L)
{
	for (size_t i = 0; i < L->nwf; i++) {
		sl_locmap_free(L->wf[i].locs);
		free((char *)L->wf[i].cf.file);
	}
	free(L->wf);
	free_names(L->broken);
}

int sl_project_load(const char *dir, const struct sl_load_opts *opts, struct sl_project **out, struct sl_diags *diags)
{
	*out = NULL;
	size_t before = diags->n;
	struct stat sb;
	if (!dir || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		sl_diags_add(diags, dir ? dir : "", 0, 0, "not a project folder (%s)",
			     dir && stat(dir, &sb) != 0 ? strerror(errno) : "not a directory");
		return SL_EINVAL;
	}
	struct sl_project *p = sl_xcalloc(1, sizeof *p);
	p->dir = sl_strdup(dir);
	struct loader L = {.p = p, .opts = opts, .diags = diags};
	load_settings(&L);
	load_contracts(&L);
	load_connectors(&L);
	load_prompts(&L);
	load_models(&L);
	load_workflows(&L);
	load_policies(&L);
	check_duplicates(&L);
	check_cycles(&L);
	loader_free(&L);
	if (diags->n != before) {
		sl_project_free(p);
		return SL_EINVAL;
	}
	*out = p;
	return 0;
}

void sl_project_free(struct sl_project *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nworkflows; i++)
		sl_workflow_unref(p->workflows[i]);
	free(p->workflows);
	for (size_t i = 0; i < p->nconnectors; i++)
		sl_connector_free(p->connectors[i]);
	free(p->connectors);
	sl_contracts_free(p->contracts);
	sl_ai_free(p->ai);
	sl_principals_free(p->principals);
	sl_policy_free(p->policy);
	json_decref(p->broken_routes);
	for (size_t i = 0; i < p->nprompts; i++) {
		free(p->prompts[i].name);
		free(p->prompts[i].text);
	}
	free(p->prompts);
	struct sl_settings *s = &p->settings;
	free(s->name);
	free(s->store);
	free(s->listen);
	free(s->log_level);
	free(s->otlp_endpoint);
	for (size_t i = 0; i < s->ntenants; i++)
		free(s->tenants[i].name);
	free(s->tenants);
	free(p->dir);
	free(p);
}

/* The newest version: what new runs start on. */
struct sl_workflow *sl_project_workflow(const struct sl_project *p, const char *name)
{
	struct sl_workflow *best = NULL;
	for (size_t i = 0; p && name && i < p->nworkflows; i++) {
		struct sl_workflow *w = p->workflows[i];
		if (strcmp(w->name, name) == 0 && (!best || w->version > best->version))
			best = w;
	}
	return best;
}

struct sl_connector *sl_project_connector(const struct sl_project *p, const char *name)
{
	for (size_t i = 0; p && name && i < p->nconnectors; i++)
		if (strcmp(p->connectors[i]->name, name) == 0)
			return p->connectors[i];
	return NULL;
}

struct sl_workflow *sl_workflow_compile(const struct sl_project *p, const char *file, const char *source,
					struct sl_diags *diags)
{
	const char *f = file ? file : "(stored workflow)";
	if (!source) {
		sl_diags_add(diags, f, 0, 0, "no workflow source");
		return NULL;
	}
	struct sl_locmap *locs = NULL;
	json_t *doc = sl_yaml_parse(source, strlen(source), f, &locs, diags);
	struct sl_workflow *w = NULL;
	if (doc) {
		struct conf_file cf = {.file = f, .locs = locs, .diags = diags};
		struct wf_env env = {.p = p};
		w = wf_build(&env, &cf, source, doc);
	}
	json_decref(doc);
	sl_locmap_free(locs);
	return w;
}
