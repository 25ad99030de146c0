/*
 * cmd_keys.c: `sluice keys create|list|revoke`.
 *
 * Keys are managed on the store itself (the project's, or --store), like
 * `sluice audit verify`: whoever can open the store can already read and
 * change everything in it, and the first admin key of a fresh install has
 * to come from somewhere that needs no key. Creation and revocation are
 * audit entries, written in the same transaction as the key.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "gov/auth.h"
#include "store/store.h"
#include "util/util.h"

void help_keys(FILE *out)
{
	fprintf(out,
		"Usage: sluice keys create --principal NAME [--role R] [--tenant T] [--kind K]\n"
		"                          [--expires WHEN] [--name LABEL] [--store URL] [DIR]\n"
		"       sluice keys list [--json] [--store URL] [DIR]\n"
		"       sluice keys revoke ID [--store URL] [DIR]\n\n"
		"API keys for the HTTP API (Authorization: Bearer KEY; the CLI sends\n"
		"$SLUICE_TOKEN). A key is printed once, at creation: the store keeps only the\n"
		"SHA-256 of its secret. These commands open the store directly (the project's\n"
		"`store:`, or --store), so the first admin key of a new install needs no key.\n\n"
		"  create   a key for a principal. When policies.yaml declares principals,\n"
		"           NAME must be one of them; its role and tenant are the defaults,\n"
		"           and a key may not have a higher role or another tenant (unless\n"
		"           the principal's tenant is \"*\"). Prints the key on stdout.\n"
		"  list     the keys, without secrets: id, principal, role, tenant, expiry.\n"
		"  revoke   revokes a key at once (the server refuses it from then on).\n\n"
		"Options:\n"
		"  --principal NAME   who the key is for (required)\n"
		"  --role R           viewer, operator or admin (default: the principal's, else viewer)\n"
		"  --tenant T         the tenant, or \"*\" for every tenant (default: the principal's,\n"
		"                     else default)\n"
		"  --kind K           user, service or agent (default: the principal's, else user)\n"
		"  --expires WHEN     30d, 12h, a date 2027-01-31, an RFC 3339 time, or never\n"
		"                     (default: never)\n"
		"  --name LABEL       a label to recognise the key by in lists\n"
		"  --store URL        the store (default: DIR's store:)\n"
		"  --json             print JSON\n"
		"  -h, --help         this text\n\n"
		"Exit: 0 ok, 1 refused (unknown or already revoked key), 2 usage or store error.\n");
}

struct keys_opts {
	const char *principal, *role, *tenant, *kind, *expires, *name, *store, *dir, *id;
	bool json;
};

static int parse_opts(int argc, char **argv, struct keys_opts *o)
{
	static const struct option opts[] = {
		{"principal", required_argument, NULL, 'p'}, {"role", required_argument, NULL, 'r'},
		{"tenant", required_argument, NULL, 't'},    {"kind", required_argument, NULL, 'k'},
		{"expires", required_argument, NULL, 'e'},   {"name", required_argument, NULL, 'n'},
		{"store", required_argument, NULL, 's'},     {"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': o->principal = optarg; break;
		case 'r': o->role = optarg; break;
		case 't': o->tenant = optarg; break;
		case 'k': o->kind = optarg; break;
		case 'e': o->expires = optarg; break;
		case 'n': o->name = optarg; break;
		case 's': o->store = optarg; break;
		case 'j': o->json = true; break;
		default: return cli_usage_error("keys", "unknown option");
		}
	}
	return 0;
}

/* Opens the store of DIR (or --store); with a project, *p gets it (owned)
 * for its principals. NULL after printing why. */
static struct sl_store *open_store(const struct keys_opts *o, struct sl_project **p)
{
	*p = NULL;
	char *url = NULL;
	if (o->store) {
		url = sl_strdup(o->store);
	} else {
		*p = cli_load_project(o->dir ? o->dir : ".", false);
		if (!*p)
			return NULL;
		url = cli_store_url(NULL, *p);
		if (!url) {
			sl_project_free(*p);
			*p = NULL;
			return NULL;
		}
	}
	struct sl_store *s = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_open(url, &s, &err)) {
		fprintf(stderr, "sluice keys: %s\n", err.msg);
		s = NULL;
		sl_project_free(*p);
		*p = NULL;
	}
	free(url);
	return s;
}

/* Fills role, tenant and kind from the options and the principal (when
 * declared); a usage error when they disagree. */
static int key_identity(const struct keys_opts *o, const struct sl_principals *ps, struct sl_api_key *k)
{
	const struct sl_principal *pr = sl_principals_find(ps, o->principal);
	if (ps && ps->declared && !pr)
		return cli_usage_error("keys", "principal '%s' is not declared in policies.yaml", o->principal);
	int role = o->role ? sl_role_parse(o->role) : pr ? (int)pr->role : SL_ROLE_VIEWER;
	if (role < 0)
		return cli_usage_error("keys", "--role is viewer, operator or admin");
	if (pr && role > (int)pr->role)
		return cli_usage_error("keys", "principal '%s' is %s: a key cannot be %s", o->principal,
				       sl_role_name(pr->role), sl_role_name(role));
	const char *tenant = o->tenant ? o->tenant : pr ? pr->tenant : SL_TENANT_DEFAULT;
	if (pr && strcmp(pr->tenant, SL_TENANT_ANY) != 0 && strcmp(tenant, pr->tenant) != 0)
		return cli_usage_error("keys", "principal '%s' belongs to tenant '%s'", o->principal, pr->tenant);
	if (ps && strcmp(tenant, SL_TENANT_ANY) != 0 && !sl_principals_tenant_known(ps, tenant))
		return cli_usage_error("keys", "tenant '%s' is not declared in policies.yaml", tenant);
	int kind = o->kind ? sl_actor_kind_parse(o->kind) : pr ? (int)pr->kind : SL_ACTOR_USER;
	if (kind <= 0)
		return cli_usage_error("keys", "--kind is user, service or agent");
	snprintf(k->role, sizeof k->role, "%s", sl_role_name((enum sl_role)role));
	snprintf(k->tenant, sizeof k->tenant, "%s", tenant);
	snprintf(k->kind, sizeof k->kind, "%s", sl_actor_kind_name((enum sl_actor_kind)kind));
	return 0;
}

static int keys_create(const struct keys_opts *o)
{
	if (!o->principal || !*o->principal || strlen(o->principal) >= 128)
		return cli_usage_error("keys", "create wants --principal NAME");
	if (o->name && strlen(o->name) >= 128)
		return cli_usage_error("keys", "--name is at most 127 bytes");
	if (o->tenant && (!*o->tenant || strlen(o->tenant) >= 128))
		return cli_usage_error("keys", "--tenant wants a tenant name or \"*\"");
	struct sl_api_key k = {0};
	int64_t now = sl_now_ms();
	if (o->expires && sl_key_expiry_parse(o->expires, now, &k.expires_at))
		return cli_usage_error("keys", "--expires wants 30d, 12h, a future date (2027-01-31), an RFC 3339 time "
					       "or never");
	struct sl_project *p = NULL;
	struct sl_store *s = open_store(o, &p);
	if (!s)
		return EXIT_USAGE;
	int rc = key_identity(o, p ? p->principals : NULL, &k);
	char token[SL_KEY_MAX + 1];
	if (!rc) {
		snprintf(k.principal, sizeof k.principal, "%s", o->principal);
		snprintf(k.name, sizeof k.name, "%s", o->name ? o->name : "");
		k.created_at = now;
		sl_key_generate(token, k.id, k.hash);
		struct sl_audit_actor actor = cli_actor();
		json_t *audit = sl_key_audit_entry("key.create", &k, &actor, NULL);
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_store_key_put(s, &k, audit, &err)) {
			fprintf(stderr, "sluice keys: %s\n", err.msg);
			rc = EXIT_USAGE;
		}
		json_decref(audit);
	}
	sl_store_close(s);
	sl_project_free(p);
	if (rc)
		return rc;
	if (o->json) {
		json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", k.id, "key", token, "principal", k.principal,
				      "role", k.role, "tenant", k.tenant);
		json_dumpf(d, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(d);
	} else {
		printf("%s\n", token);
		fprintf(stderr, "key %s for %s (%s, tenant %s): shown once, keep it now\n", k.id, k.principal, k.role,
			k.tenant);
	}
	memset(token, 0, sizeof token);
	return EXIT_OK;
}

static void print_time(int64_t ms)
{
	char t[32] = "-";
	if (ms)
		sl_time_format(ms, t);
	printf("  %-24s", t);
}

static int keys_list(const struct keys_opts *o)
{
	struct sl_project *p = NULL;
	struct sl_store *s = open_store(o, &p);
	if (!s)
		return EXIT_USAGE;
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_key_list(s, &doc, &err);
	sl_store_close(s);
	sl_project_free(p);
	if (rc) {
		fprintf(stderr, "sluice keys: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (o->json) {
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(doc);
		return EXIT_OK;
	}
	printf("%-16s  %-20s  %-8s  %-12s  %-24s  %-24s  %s\n", "ID", "PRINCIPAL", "ROLE", "TENANT", "EXPIRES",
	       "REVOKED", "NAME");
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(doc, "keys"), i, k)
	{
		printf("%-16s  %-20s  %-8s  %-12s", json_string_value(json_object_get(k, "id")),
		       json_string_value(json_object_get(k, "principal")), json_string_value(json_object_get(k, "role")),
		       json_string_value(json_object_get(k, "tenant")));
		print_time(json_integer_value(json_object_get(k, "expires_at")));
		print_time(json_integer_value(json_object_get(k, "revoked_at")));
		printf("  %s\n", json_string_value(json_object_get(k, "name")));
	}
	json_decref(doc);
	return EXIT_OK;
}

static int keys_revoke(const struct keys_opts *o)
{
	struct sl_project *p = NULL;
	struct sl_store *s = open_store(o, &p);
	if (!s)
		return EXIT_USAGE;
	struct sl_api_key k;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_key_get(s, o->id, &k, &err);
	if (!rc) {
		struct sl_audit_actor actor = cli_actor();
		json_t *audit = sl_key_audit_entry("key.revoke", &k, &actor, NULL);
		rc = sl_store_key_revoke(s, o->id, audit, &err);
		json_decref(audit);
	}
	sl_store_close(s);
	sl_project_free(p);
	if (rc) {
		fprintf(stderr, "sluice keys: %s\n", err.msg);
		return rc == SL_ENOTFOUND || rc == SL_EINVAL ? EXIT_FAIL : EXIT_USAGE;
	}
	printf("revoked %s\n", o->id);
	return EXIT_OK;
}

int cmd_keys(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_keys(stdout);
		return EXIT_OK;
	}
	if (argc < 2)
		return cli_usage_error("keys", "want create, list or revoke (sluice keys --help)");
	const char *sub = argv[1];
	struct keys_opts o = {0};
	int rc = parse_opts(argc - 1, argv + 1, &o);
	if (rc)
		return rc;
	int left = argc - 1 - optind;
	char **rest = argv + 1 + optind;
	if (strcmp(sub, "revoke") == 0) {
		if (left < 1)
			return cli_usage_error("keys", "revoke wants a key ID (sluice keys list)");
		o.id = rest[0];
		rest++;
		left--;
	}
	if (left > 1)
		return cli_usage_error("keys", "unexpected argument '%s'", rest[1]);
	o.dir = left == 1 ? rest[0] : NULL;
	if (strcmp(sub, "create") == 0)
		return keys_create(&o);
	if (strcmp(sub, "list") == 0)
		return keys_list(&o);
	if (strcmp(sub, "revoke") == 0)
		return keys_revoke(&o);
	return cli_usage_error("keys", "unknown subcommand '%s' (create, list, revoke)", sub);
}
