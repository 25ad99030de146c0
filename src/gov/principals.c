/*
 * principals.c: policies.yaml's tenants: and principals: keys.
 *
 *   tenants: [default, acme]          # or [{name: acme, description: ...}]
 *   principals:
 *     - name: alice
 *       kind: user                    # user | service | agent
 *       tenant: acme                  # a declared tenant, or "*" (every tenant)
 *       role: operator                # viewer | operator | admin
 *
 * The file's other keys (rules:, ...) belong to the policy engine and are
 * not looked at here, so the two parsers can grow apart.
 */
#include "gov/auth.h"

#include <stdlib.h>
#include <string.h>

#include "connector/connector.h"

static const char *const role_names[SL_ROLE__COUNT] = {"viewer", "operator", "admin"};

const char *sl_role_name(enum sl_role r)
{
	return (unsigned)r < SL_ROLE__COUNT ? role_names[r] : "unknown";
}

int sl_role_parse(const char *name)
{
	for (int i = 0; name && i < SL_ROLE__COUNT; i++)
		if (strcmp(role_names[i], name) == 0)
			return i;
	return -1;
}

static const char *const pause_names[SL_PAUSE__COUNT] = {"workflow", "connector", "provider"};

const char *sl_pause_kind_name(enum sl_pause_kind k)
{
	return (unsigned)k < SL_PAUSE__COUNT ? pause_names[k] : "unknown";
}

int sl_pause_kind_parse(const char *name)
{
	for (int i = 0; name && i < SL_PAUSE__COUNT; i++)
		if (strcmp(pause_names[i], name) == 0)
			return i;
	return -1;
}

void sl_pause_key(enum sl_pause_kind k, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s:%s", sl_pause_kind_name(k), name ? name : "");
}

static const struct sl_conf_key tenant_keys[] = {
	{"name", SL_CONF_STRING, true, "the tenant's name"},
	{"description", SL_CONF_STRING, false, "what it is"},
	{NULL, 0, false, NULL},
};

static const struct sl_conf_key principal_keys[] = {
	{"name", SL_CONF_STRING, true, "the principal's name (what `sluice keys create --principal` names)"},
	{"kind", SL_CONF_STRING, false, "user (default), service or agent"},
	{"tenant", SL_CONF_STRING, false, "a declared tenant, or \"*\" for every tenant (default: default)"},
	{"role", SL_CONF_STRING, true, "viewer, operator or admin"},
	{"description", SL_CONF_STRING, false, "who or what it is"},
	{NULL, 0, false, NULL},
};

/* A name: letters, digits and . _ - @, at most 100 characters. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 100)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
		    !strchr("._-@", *s))
			return false;
	return true;
}

static void add_tenant(struct sl_principals *ps, const char *name)
{
	ps->tenants = sl_xrealloc(ps->tenants, (ps->ntenants + 1) * sizeof *ps->tenants);
	ps->tenants[ps->ntenants++] = sl_strdup(name);
}

static void parse_tenants(struct sl_principals *ps, const json_t *arr, struct sl_conf_ctx *ctx)
{
	if (!json_is_array(arr)) {
		sl_conf_error(ctx, "/tenants", "tenants must be a list of names");
		return;
	}
	size_t i;
	const json_t *t;
	json_array_foreach(arr, i, t)
	{
		char p[SL_CONF_PTR_MAX];
		snprintf(p, sizeof p, "/tenants/%zu", i);
		const char *name = json_string_value(t);
		if (json_is_object(t)) {
			if (sl_conf_check_keys(ctx, t, p, tenant_keys))
				continue;
			name = json_string_value(json_object_get(t, "name"));
			sl_conf_ptr(p, p, "name");
		}
		if (!name) {
			sl_conf_error(ctx, p, "a tenant is a name, or {name: ..., description: ...}");
		} else if (!name_ok(name)) {
			sl_conf_error(ctx, p, "tenant '%s': use letters, digits and . _ - @ (at most 100)", name);
		} else if (sl_principals_tenant_known(ps, name)) {
			sl_conf_error(ctx, p, "tenant '%s' is declared twice", name);
		} else {
			add_tenant(ps, name);
		}
	}
}

static int parse_enum(struct sl_conf_ctx *ctx, const json_t *o, const char *base, const char *key, int def,
		      int (*parse)(const char *), const char *want)
{
	const char *v = json_string_value(json_object_get(o, key));
	if (!v)
		return def;
	int x = parse(v);
	if (x < 0) {
		char p[SL_CONF_PTR_MAX];
		sl_conf_ptr(p, base, key);
		sl_conf_error(ctx, p, "%s '%s' is not one of %s", key, v, want);
	}
	return x;
}

static int parse_kind(const char *v)
{
	int k = sl_actor_kind_parse(v);
	return k == SL_ACTOR_SYSTEM ? -1 : k; /* the system is no principal */
}

static void parse_principal(struct sl_principals *ps, const json_t *o, const char *p, bool tenants_declared,
			    struct sl_conf_ctx *ctx)
{
	if (sl_conf_check_keys(ctx, o, p, principal_keys))
		return;
	char ptr[SL_CONF_PTR_MAX];
	const char *name = json_string_value(json_object_get(o, "name"));
	sl_conf_ptr(ptr, p, "name");
	if (!name_ok(name)) {
		sl_conf_error(ctx, ptr, "principal '%s': use letters, digits and . _ - @ (at most 100)", name);
		return;
	}
	if (sl_principals_find(ps, name)) {
		sl_conf_error(ctx, ptr, "principal '%s' is declared twice", name);
		return;
	}
	int kind = parse_enum(ctx, o, p, "kind", SL_ACTOR_USER, parse_kind, "user, service, agent");
	int role = parse_enum(ctx, o, p, "role", -1, sl_role_parse, "viewer, operator, admin");
	const char *tenant = sl_conf_str(o, "tenant", SL_TENANT_DEFAULT);
	sl_conf_ptr(ptr, p, "tenant");
	if (strcmp(tenant, SL_TENANT_ANY) != 0 && !sl_principals_tenant_known(ps, tenant)) {
		if (tenants_declared || !name_ok(tenant)) {
			sl_conf_error(ctx, ptr, "tenant '%s' is not declared under tenants:", tenant);
			return;
		}
		add_tenant(ps, tenant); /* without a tenants: list, naming one declares it */
	}
	if (kind < 0 || role < 0)
		return;
	ps->v = sl_xrealloc(ps->v, (ps->n + 1) * sizeof *ps->v);
	const char *desc = sl_conf_str(o, "description", NULL);
	ps->v[ps->n++] = (struct sl_principal){
		.name = sl_strdup(name),
		.kind = (enum sl_actor_kind)kind,
		.tenant = sl_strdup(tenant),
		.role = (enum sl_role)role,
		.description = desc ? sl_strdup(desc) : NULL,
	};
}

struct sl_principals *sl_principals_parse(const json_t *doc, struct sl_conf_ctx *ctx)
{
	int before = ctx->nerrors;
	struct sl_principals *ps = sl_xcalloc(1, sizeof *ps);
	const json_t *tenants = json_object_get(doc, "tenants");
	if (tenants)
		parse_tenants(ps, tenants, ctx);
	/* webhook and CLI runs belong to "default": it always exists */
	if (!sl_principals_tenant_known(ps, SL_TENANT_DEFAULT))
		add_tenant(ps, SL_TENANT_DEFAULT);
	const json_t *arr = json_object_get(doc, "principals");
	if (arr && !json_is_array(arr)) {
		sl_conf_error(ctx, "/principals", "principals must be a list of {name, kind, tenant, role}");
	} else if (arr) {
		ps->declared = true;
		size_t i;
		const json_t *o;
		json_array_foreach(arr, i, o)
		{
			char p[SL_CONF_PTR_MAX];
			snprintf(p, sizeof p, "/principals/%zu", i);
			if (!json_is_object(o))
				sl_conf_error(ctx, p, "a principal is {name, kind, tenant, role}");
			else
				parse_principal(ps, o, p, tenants != NULL, ctx);
		}
	}
	if (ctx->nerrors > before) {
		sl_principals_free(ps);
		return NULL;
	}
	return ps;
}

void sl_principals_free(struct sl_principals *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->ntenants; i++)
		free(ps->tenants[i]);
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->v[i].name);
		free(ps->v[i].tenant);
		free(ps->v[i].description);
	}
	free(ps->tenants);
	free(ps->v);
	free(ps);
}

const struct sl_principal *sl_principals_find(const struct sl_principals *ps, const char *name)
{
	for (size_t i = 0; ps && name && i < ps->n; i++)
		if (strcmp(ps->v[i].name, name) == 0)
			return &ps->v[i];
	return NULL;
}

bool sl_principals_tenant_known(const struct sl_principals *ps, const char *tenant)
{
	for (size_t i = 0; ps && tenant && i < ps->ntenants; i++)
		if (strcmp(ps->tenants[i], tenant) == 0)
			return true;
	return false;
}
