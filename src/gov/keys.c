/*
 * keys.c: API keys: the token's shape, its hash, expiry, and checking a
 * presented token against the store.
 *
 * The secret has 256 random bits, so a plain SHA-256 is enough to store it
 * (no slow KDF: nothing to brute-force), and the id in the token finds the
 * row without comparing hashes across keys.
 */
#include "gov/auth.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

void sl_key_hash(const char *secret, char hash[SL_KEY_HASH_LEN + 1])
{
	sl_sha256_hex(secret, strlen(secret), hash);
}

void sl_key_generate(char token[SL_KEY_MAX + 1], char id[SL_KEY_ID_LEN + 1], char hash[SL_KEY_HASH_LEN + 1])
{
	unsigned char rid[SL_KEY_ID_LEN / 2], rsec[SL_KEY_SECRET_LEN / 2];
	char secret[SL_KEY_SECRET_LEN + 1];
	sl_random_bytes(rid, sizeof rid);
	sl_random_bytes(rsec, sizeof rsec);
	hex(rid, sizeof rid, id);
	hex(rsec, sizeof rsec, secret);
	snprintf(token, SL_KEY_MAX + 1, SL_KEY_PREFIX "%s_%s", id, secret);
	sl_key_hash(secret, hash);
	OPENSSL_cleanse(secret, sizeof secret);
	OPENSSL_cleanse(rsec, sizeof rsec);
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int sl_key_parse(const char *token, char id[SL_KEY_ID_LEN + 1], char secret[SL_KEY_SECRET_LEN + 1])
{
	size_t pl = strlen(SL_KEY_PREFIX);
	if (!token || strncmp(token, SL_KEY_PREFIX, pl) != 0 || strlen(token) != SL_KEY_MAX - 1)
		return -1;
	const char *p = token + pl;
	if (!all_hex(p, SL_KEY_ID_LEN) || p[SL_KEY_ID_LEN] != '_' || !all_hex(p + SL_KEY_ID_LEN + 1, SL_KEY_SECRET_LEN))
		return -1;
	memcpy(id, p, SL_KEY_ID_LEN);
	id[SL_KEY_ID_LEN] = '\0';
	memcpy(secret, p + SL_KEY_ID_LEN + 1, SL_KEY_SECRET_LEN);
	secret[SL_KEY_SECRET_LEN] = '\0';
	return 0;
}

bool sl_key_hash_equal(const char *a, const char *b)
{
	if (strlen(a) != SL_KEY_HASH_LEN || strlen(b) != SL_KEY_HASH_LEN)
		return false;
	return CRYPTO_memcmp(a, b, SL_KEY_HASH_LEN) == 0;
}

/* "YYYY-MM-DD": the end of that day, UTC. */
static int parse_date(const char *s, int64_t *out)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	char t[32];
	snprintf(t, sizeof t, "%sT23:59:59Z", s);
	if (sl_time_parse(t, out))
		return -1;
	*out += 999;
	return 0;
}

int sl_key_expiry_parse(const char *s, int64_t now_ms, int64_t *out)
{
	*out = 0;
	if (!s || !*s)
		return -1;
	if (strcmp(s, "never") == 0)
		return 0;
	int64_t v;
	if (s[0] >= '0' && s[0] <= '9' && strchr(s, '-') == NULL) {
		/* a bare number would be ms: too easy to get wrong for an expiry */
		size_t n = strlen(s);
		if (s[n - 1] >= '0' && s[n - 1] <= '9')
			return -1;
		if (sl_parse_duration_ms(s, &v) || v <= 0)
			return -1;
		*out = now_ms + v;
		return 0;
	}
	if (parse_date(s, &v) && sl_time_parse(s, &v))
		return -1;
	if (v <= now_ms)
		return -1;
	*out = v;
	return 0;
}

const char *sl_key_verdict_text(enum sl_key_verdict v)
{
	switch (v) {
	case SL_KEY_OK: return "ok";
	case SL_KEY_MALFORMED: return "the bearer token is not a Sluice API key";
	case SL_KEY_UNKNOWN: return "unknown API key";
	case SL_KEY_REVOKED: return "the API key was revoked";
	case SL_KEY_EXPIRED: return "the API key has expired";
	case SL_KEY_UNDECLARED:
		return "the API key's principal is no longer declared in policies.yaml, or no longer in the key's tenant";
	}
	return "refused";
}

enum sl_key_verdict sl_key_check(struct sl_store *s, const struct sl_principals *ps, const char *token,
				 int64_t now_ms, struct sl_api_key *out, bool *store_failed)
{
	char id[SL_KEY_ID_LEN + 1], secret[SL_KEY_SECRET_LEN + 1], hash[SL_KEY_HASH_LEN + 1];
	*store_failed = false;
	if (sl_key_parse(token, id, secret))
		return SL_KEY_MALFORMED;
	sl_key_hash(secret, hash);
	OPENSSL_cleanse(secret, sizeof secret);
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_key_get(s, id, out, &err);
	if (rc) {
		*store_failed = rc != SL_ENOTFOUND;
		return SL_KEY_UNKNOWN;
	}
	if (!sl_key_hash_equal(hash, out->hash))
		return SL_KEY_UNKNOWN; /* the same answer as no such id: nothing to probe */
	if (out->revoked_at)
		return SL_KEY_REVOKED;
	if (out->expires_at && out->expires_at <= now_ms)
		return SL_KEY_EXPIRED;
	if (ps && ps->declared) {
		const struct sl_principal *p = sl_principals_find(ps, out->principal);
		/* gone, or moved to another tenant: its old keys must not keep
		 * the old tenant's data open */
		if (!p || (strcmp(p->tenant, SL_TENANT_ANY) != 0 && strcmp(p->tenant, out->tenant) != 0))
			return SL_KEY_UNDECLARED;
		int r = sl_role_parse(out->role);
		if (r < 0 || (int)p->role < r)
			snprintf(out->role, sizeof out->role, "%s", sl_role_name(p->role));
	}
	return SL_KEY_OK;
}

json_t *sl_key_audit_entry(const char *action, const struct sl_api_key *k, const struct sl_audit_actor *actor,
			   const char *correlation_id)
{
	json_t *detail = json_pack("{s:s, s:s, s:s, s:s, s:s}", "principal", k->principal, "kind", k->kind, "role",
				   k->role, "tenant", k->tenant, "name", k->name);
	json_object_set_new(detail, "expires_at", k->expires_at ? json_integer(k->expires_at) : json_null());
	struct sl_audit_entry e = {
		/* a key for every tenant is the default tenant's business */
		.tenant = strcmp(k->tenant, SL_TENANT_ANY) == 0 ? SL_TENANT_DEFAULT : k->tenant,
		.actor = actor ? *actor : (struct sl_audit_actor){SL_ACTOR_SYSTEM, NULL},
		.action = action,
		.target = {"key", k->id},
		.correlation_id = correlation_id,
		.detail = detail,
	};
	json_t *j = sl_audit_entry_json(&e);
	json_decref(detail);
	return j;
}
