/*
 * test_auth.c: principals and tenants (policies.yaml's keys), API keys
 * (shape, hash, constant-time compare, expiry) and checking a presented key
 * against a store: unknown, wrong secret, revoked, expired, a principal no
 * longer declared, a role capped by the principal's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/connector.h"
#include "gov/auth.h"
#include "store/store.h"

/* ---- keys -------------------------------------------------------------------------- */

static void test_key_shape(void **state)
{
	(void)state;
	char token[SL_KEY_MAX + 1], id[SL_KEY_ID_LEN + 1], hash[SL_KEY_HASH_LEN + 1];
	sl_key_generate(token, id, hash);
	assert_int_equal(strlen(token), SL_KEY_MAX - 1);
	assert_memory_equal(token, "sk_sluice_", 10);
	char pid[SL_KEY_ID_LEN + 1], secret[SL_KEY_SECRET_LEN + 1];
	assert_int_equal(sl_key_parse(token, pid, secret), 0);
	assert_string_equal(pid, id);
	char h2[SL_KEY_HASH_LEN + 1];
	sl_key_hash(secret, h2);
	assert_string_equal(h2, hash);
	assert_true(sl_key_hash_equal(h2, hash));
	/* the hash is SHA-256 of the secret, not of the token */
	char th[SL_KEY_HASH_LEN + 1];
	sl_key_hash(token, th);
	assert_false(sl_key_hash_equal(th, hash));
	/* two keys differ */
	char token2[SL_KEY_MAX + 1], id2[SL_KEY_ID_LEN + 1], hash2[SL_KEY_HASH_LEN + 1];
	sl_key_generate(token2, id2, hash2);
	assert_string_not_equal(token, token2);
	assert_string_not_equal(id, id2);
	assert_false(sl_key_hash_equal(hash, hash2));
	assert_false(sl_key_hash_equal(hash, "short"));
}

static void test_key_parse_refuses(void **state)
{
	(void)state;
	char id[SL_KEY_ID_LEN + 1], secret[SL_KEY_SECRET_LEN + 1];
	char good[SL_KEY_MAX + 1], h[SL_KEY_HASH_LEN + 1];
	sl_key_generate(good, id, h);
	const char *bad[] = {"", "sk_sluice_", "Bearer x", "sk_live_0123456789abcdef_00", NULL};
	for (int i = 0; bad[i]; i++)
		assert_int_equal(sl_key_parse(bad[i], id, secret), -1);
	assert_int_equal(sl_key_parse(NULL, id, secret), -1);
	char t[SL_KEY_MAX + 8];
	snprintf(t, sizeof t, "%s", good);
	t[12] = 'G'; /* not hex */
	assert_int_equal(sl_key_parse(t, id, secret), -1);
	snprintf(t, sizeof t, "%s", good);
	t[10 + SL_KEY_ID_LEN] = '-'; /* the separator */
	assert_int_equal(sl_key_parse(t, id, secret), -1);
	snprintf(t, sizeof t, "%sa", good); /* too long */
	assert_int_equal(sl_key_parse(t, id, secret), -1);
	snprintf(t, sizeof t, "%s", good);
	t[strlen(t) - 1] = '\0'; /* too short */
	assert_int_equal(sl_key_parse(t, id, secret), -1);
	snprintf(t, sizeof t, "%s", good);
	t[20] = 'A'; /* upper case is not the shape */
	assert_int_equal(sl_key_parse(t, id, secret), -1);
}

static void test_expiry(void **state)
{
	(void)state;
	int64_t now = 1800000000000LL, at = -1;
	assert_int_equal(sl_key_expiry_parse("30d", now, &at), 0);
	assert_int_equal(at, now + 30LL * 86400000);
	assert_int_equal(sl_key_expiry_parse("12h", now, &at), 0);
	assert_int_equal(at, now + 12LL * 3600000);
	assert_int_equal(sl_key_expiry_parse("never", now, &at), 0);
	assert_int_equal(at, 0);
	assert_int_equal(sl_key_expiry_parse("2030-01-31", now, &at), 0);
	int64_t end;
	assert_int_equal(sl_time_parse("2030-01-31T23:59:59.999Z", &end), 0);
	assert_int_equal(at, end);
	assert_int_equal(sl_key_expiry_parse("2030-01-31T10:00:00Z", now, &at), 0);
	const char *bad[] = {"", "30", "0d", "-1d", "soon", "2020-01-01", "2026-13-01", "2030-01-31x", NULL};
	for (int i = 0; bad[i]; i++)
		assert_int_equal(sl_key_expiry_parse(bad[i], now, &at), -1);
}

/* ---- principals ------------------------------------------------------------------------- */

struct errs {
	char v[16][256];
	int n;
};

static void record(struct sl_conf_ctx *ctx, const char *pointer, const char *msg)
{
	struct errs *e = ctx->ud;
	if (e->n < 16)
		snprintf(e->v[e->n++], sizeof e->v[0], "%s: %s", pointer, msg);
}

static struct sl_principals *parse(const char *json, struct errs *e)
{
	memset(e, 0, sizeof *e);
	json_error_t je;
	json_t *doc = json ? json_loads(json, 0, &je) : NULL;
	if (json)
		assert_non_null(doc);
	struct sl_conf_ctx ctx = {.file = "policies.yaml", .report_fn = record, .ud = e};
	struct sl_principals *ps = sl_principals_parse(doc, &ctx);
	assert_int_equal(ctx.nerrors, e->n);
	json_decref(doc);
	return ps;
}

static void test_principals(void **state)
{
	(void)state;
	struct errs e;
	struct sl_principals *ps = parse(NULL, &e);
	assert_non_null(ps);
	assert_false(ps->declared);
	assert_true(sl_principals_tenant_known(ps, "default"));
	assert_false(sl_principals_tenant_known(ps, "acme"));
	sl_principals_free(ps);

	ps = parse("{\"tenants\": [\"acme\", {\"name\": \"globex\", \"description\": \"g\"}],"
		   " \"rules\": [{\"anything\": 1}],"
		   " \"principals\": [{\"name\": \"alice\", \"tenant\": \"acme\", \"role\": \"operator\"},"
		   " {\"name\": \"ci-bot\", \"kind\": \"service\", \"tenant\": \"*\", \"role\": \"admin\"},"
		   " {\"name\": \"triage-agent\", \"kind\": \"agent\", \"tenant\": \"globex\", \"role\": \"viewer\"}]}",
		   &e);
	assert_non_null(ps);
	assert_true(ps->declared);
	assert_int_equal(ps->n, 3);
	const struct sl_principal *a = sl_principals_find(ps, "alice");
	assert_non_null(a);
	assert_int_equal(a->kind, SL_ACTOR_USER);
	assert_int_equal(a->role, SL_ROLE_OPERATOR);
	assert_string_equal(a->tenant, "acme");
	assert_int_equal(sl_principals_find(ps, "ci-bot")->kind, SL_ACTOR_SERVICE);
	assert_string_equal(sl_principals_find(ps, "ci-bot")->tenant, "*");
	assert_int_equal(sl_principals_find(ps, "triage-agent")->kind, SL_ACTOR_AGENT);
	assert_null(sl_principals_find(ps, "mallory"));
	assert_true(sl_principals_tenant_known(ps, "default")); /* webhook runs' tenant always exists */
	assert_true(sl_principals_tenant_known(ps, "globex"));
	sl_principals_free(ps);

	/* without tenants:, a principal's tenant declares it */
	ps = parse("{\"principals\": [{\"name\": \"bob\", \"tenant\": \"initech\", \"role\": \"viewer\"}]}", &e);
	assert_non_null(ps);
	assert_true(sl_principals_tenant_known(ps, "initech"));
	sl_principals_free(ps);
}

static void test_principals_errors(void **state)
{
	(void)state;
	struct errs e;
	struct sl_principals *ps =
		parse("{\"tenants\": [\"acme\", \"acme\", 3],"
		      " \"principals\": [{\"name\": \"alice\", \"tenant\": \"nowhere\", \"role\": \"operator\"},"
		      " {\"name\": \"bob\", \"role\": \"god\"},"
		      " {\"name\": \"carol\", \"kind\": \"system\", \"role\": \"viewer\"},"
		      " {\"name\": \"dave\", \"role\": \"viewer\", \"colour\": \"red\"},"
		      " {\"name\": \"erin\", \"role\": \"viewer\"}, {\"name\": \"erin\", \"role\": \"viewer\"},"
		      " {\"role\": \"viewer\"}, \"frank\", {\"name\": \"bad name!\", \"role\": \"viewer\"}]}",
		      &e);
	assert_null(ps);
	const char *want[] = {
		"/tenants/1: tenant 'acme' is declared twice",
		"/tenants/2: a tenant is a name",
		"/principals/0/tenant: tenant 'nowhere' is not declared under tenants:",
		"/principals/1/role: role 'god' is not one of viewer, operator, admin",
		"/principals/2/kind: kind 'system' is not one of user, service, agent",
		"/principals/3",  /* unknown key colour */
		"/principals/5/name: principal 'erin' is declared twice",
		"/principals/6",  /* name missing */
		"/principals/7: a principal is {name, kind, tenant, role}",
		"/principals/8/name: principal 'bad name!': use letters",
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		bool found = false;
		for (int j = 0; j < e.n && !found; j++)
			found = strncmp(e.v[j], want[i], strlen(want[i])) == 0;
		if (!found) {
			for (int j = 0; j < e.n; j++)
				fprintf(stderr, "  got: %s\n", e.v[j]);
			fail_msg("missing error: %s", want[i]);
		}
	}
	ps = parse("{\"principals\": {\"alice\": 1}}", &e);
	assert_null(ps);
	assert_string_equal(e.v[0], "/principals: principals must be a list of {name, kind, tenant, role}");
}

/* ---- checking a presented key ------------------------------------------------------------ */

static void put_key(struct sl_store *s, const char *principal, const char *role, int64_t expires, char *token)
{
	struct sl_api_key k = {0};
	sl_key_generate(token, k.id, k.hash);
	snprintf(k.principal, sizeof k.principal, "%s", principal);
	snprintf(k.kind, sizeof k.kind, "user");
	snprintf(k.role, sizeof k.role, "%s", role);
	snprintf(k.tenant, sizeof k.tenant, "acme");
	k.expires_at = expires;
	struct sl_err err;
	assert_int_equal(sl_store_key_put(s, &k, NULL, &err), 0);
}

static void test_key_check(void **state)
{
	(void)state;
	struct sl_store *s = NULL;
	struct sl_err err;
	assert_int_equal(sl_store_open("sqlite::memory:", &s, &err), 0);
	int64_t now = sl_now_ms();
	char ok[SL_KEY_MAX + 1], old[SL_KEY_MAX + 1], gone[SL_KEY_MAX + 1], big[SL_KEY_MAX + 1];
	put_key(s, "alice", "operator", 0, ok);
	put_key(s, "alice", "operator", now - 1, old);
	put_key(s, "mallory", "admin", 0, gone);
	put_key(s, "alice", "admin", now + 60000, big);
	struct sl_api_key k;
	bool failed = true;
	assert_int_equal(sl_key_check(s, NULL, ok, now, &k, &failed), SL_KEY_OK);
	assert_false(failed);
	assert_string_equal(k.principal, "alice");
	assert_string_equal(k.tenant, "acme");
	assert_int_equal(sl_key_check(s, NULL, old, now, &k, &failed), SL_KEY_EXPIRED);
	assert_int_equal(sl_key_check(s, NULL, "sk_sluice_nope", now, &k, &failed), SL_KEY_MALFORMED);
	/* the right id with a wrong secret is no better than an unknown id */
	char forged[SL_KEY_MAX + 1];
	snprintf(forged, sizeof forged, "%s", ok);
	forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == '0' ? '1' : '0';
	assert_int_equal(sl_key_check(s, NULL, forged, now, &k, &failed), SL_KEY_UNKNOWN);
	char unknown[SL_KEY_MAX + 1], id[SL_KEY_ID_LEN + 1], h[SL_KEY_HASH_LEN + 1];
	sl_key_generate(unknown, id, h);
	assert_int_equal(sl_key_check(s, NULL, unknown, now, &k, &failed), SL_KEY_UNKNOWN);
	assert_false(failed);
	/* revoked */
	char okid[SL_KEY_ID_LEN + 1], sec[SL_KEY_SECRET_LEN + 1];
	assert_int_equal(sl_key_parse(ok, okid, sec), 0);
	assert_int_equal(sl_store_key_revoke(s, okid, NULL, &err), 0);
	assert_int_equal(sl_key_check(s, NULL, ok, now, &k, &failed), SL_KEY_REVOKED);
	/* declared principals: mallory is gone, alice is capped at operator */
	struct errs e;
	struct sl_principals *ps = parse(
		"{\"principals\": [{\"name\": \"alice\", \"tenant\": \"acme\", \"role\": \"operator\"}]}", &e);
	assert_non_null(ps);
	assert_int_equal(sl_key_check(s, ps, gone, now, &k, &failed), SL_KEY_UNDECLARED);
	assert_int_equal(sl_key_check(s, NULL, gone, now, &k, &failed), SL_KEY_OK); /* no policies.yaml: keys stand */
	assert_int_equal(sl_key_check(s, ps, big, now, &k, &failed), SL_KEY_OK);
	assert_string_equal(k.role, "operator");
	sl_principals_free(ps);
	/* a principal moved to another tenant: its acme keys stop */
	ps = parse("{\"principals\": [{\"name\": \"alice\", \"tenant\": \"globex\", \"role\": \"admin\"}]}", &e);
	assert_int_equal(sl_key_check(s, ps, big, now, &k, &failed), SL_KEY_UNDECLARED);
	sl_principals_free(ps);
	ps = parse("{\"principals\": [{\"name\": \"alice\", \"tenant\": \"*\", \"role\": \"admin\"}]}", &e);
	assert_int_equal(sl_key_check(s, ps, big, now, &k, &failed), SL_KEY_OK);
	assert_string_equal(k.role, "admin");
	assert_string_not_equal(sl_key_verdict_text(SL_KEY_REVOKED), "");
	sl_principals_free(ps);
	sl_store_close(s);
}

static void test_names(void **state)
{
	(void)state;
	for (int r = 0; r < SL_ROLE__COUNT; r++)
		assert_int_equal(sl_role_parse(sl_role_name((enum sl_role)r)), r);
	assert_int_equal(sl_role_parse("root"), -1);
	for (int k = 0; k < SL_PAUSE__COUNT; k++)
		assert_int_equal(sl_pause_kind_parse(sl_pause_kind_name((enum sl_pause_kind)k)), k);
	assert_int_equal(sl_pause_kind_parse("tenant"), -1);
	char key[64];
	sl_pause_key(SL_PAUSE_CONNECTOR, "helpdesk", key, sizeof key);
	assert_string_equal(key, "connector:helpdesk");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_shape),     cmocka_unit_test(test_key_parse_refuses),
		cmocka_unit_test(test_expiry),        cmocka_unit_test(test_principals),
		cmocka_unit_test(test_principals_errors), cmocka_unit_test(test_key_check),
		cmocka_unit_test(test_names),
	};
	sl_log_set_level(SL_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
