/*
 * gov/auth.h: who may call the API (DESIGN.md §7): principals and tenants
 * (policies.yaml), roles, API keys and kill switches.
 *
 * A principal (a user, a service or an AI agent) belongs to a tenant and has
 * a role. An API key names a principal and carries the role and tenant it
 * was created with; the server accepts a key only when it is known, not
 * revoked and not expired, and (when policies.yaml declares principals) its
 * principal is still declared. A key is shown once: the store keeps the
 * SHA-256 of its secret, compared in constant time.
 *
 * Kill switches pause a workflow, a connector or a provider: the engine
 * starts no step of a paused workflow, no call to a paused connector and no
 * model call to a paused provider; the run waits durably (its task is
 * parked) and goes on from where it stopped on resume.
 */
#ifndef SL_GOV_AUTH_H
#define SL_GOV_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "gov/audit.h"

struct sl_conf_ctx;

/* ---- roles: each includes the ones before it --------------------------------- */
enum sl_role { SL_ROLE_VIEWER, SL_ROLE_OPERATOR, SL_ROLE_ADMIN, SL_ROLE__COUNT };
const char *sl_role_name(enum sl_role r); /* "viewer", "operator", "admin" */
int sl_role_parse(const char *name);      /* -1 when unknown */

/* The tenant that sees every tenant (a principal or key of tenant "*"). */
#define SL_TENANT_ANY "*"
#define SL_TENANT_DEFAULT "default"

/* ---- principals and tenants (policies.yaml: tenants:, principals:) ----------- */
struct sl_principal {
	char *name;
	enum sl_actor_kind kind; /* user, service or agent */
	char *tenant;            /* a declared tenant, or "*" */
	enum sl_role role;
	char *description;       /* may be NULL */
};
struct sl_principals {
	bool declared;           /* policies.yaml has a principals: list */
	char **tenants;          /* declared tenants ("default" when none are) */
	size_t ntenants;
	struct sl_principal *v;
	size_t n;
};
/* Reads the tenants: and principals: keys of policies.yaml's document (doc
 * may be NULL: no file, so one tenant "default" and no principals; other
 * top-level keys are someone else's and left alone). Problems go through
 * ctx with JSON pointers (the loader makes them FILE:LINE:COL). Returns
 * owned (sl_principals_free), or NULL when ctx->nerrors grew. */
struct sl_principals *sl_principals_parse(const json_t *doc, struct sl_conf_ctx *ctx);
void sl_principals_free(struct sl_principals *ps);
/* Borrowed, or NULL. */
const struct sl_principal *sl_principals_find(const struct sl_principals *ps, const char *name);
bool sl_principals_tenant_known(const struct sl_principals *ps, const char *tenant);

/* ---- API keys ------------------------------------------------------------------- */
/* A key is "sk_sluice_" ID "_" SECRET: ID 16 and SECRET 64 lowercase hex. */
#define SL_KEY_PREFIX "sk_sluice_"
#define SL_KEY_ID_LEN 16
#define SL_KEY_SECRET_LEN 64
#define SL_KEY_MAX (sizeof SL_KEY_PREFIX + SL_KEY_ID_LEN + 1 + SL_KEY_SECRET_LEN)
#define SL_KEY_HASH_LEN 64

/* A new random key: token (shown once), its id, and the hash to store. */
void sl_key_generate(char token[SL_KEY_MAX + 1], char id[SL_KEY_ID_LEN + 1], char hash[SL_KEY_HASH_LEN + 1]);
/* Splits a token into id and secret; -1 when it is not a key's shape. */
int sl_key_parse(const char *token, char id[SL_KEY_ID_LEN + 1], char secret[SL_KEY_SECRET_LEN + 1]);
/* hash = SHA-256 of the secret, 64 lowercase hex. */
void sl_key_hash(const char *secret, char hash[SL_KEY_HASH_LEN + 1]);
/* Constant-time comparison of two hashes (no early exit on a mismatch). */
bool sl_key_hash_equal(const char *a, const char *b);
/* An expiry: a duration from now ("30d", "12h", "90m") or a date
 * ("2027-01-31", end of that day UTC) or an RFC 3339 time; "never" is 0.
 * Returns 0 with *out (ms since the epoch; 0: never), or -1. A time not in
 * the future is -1. */
int sl_key_expiry_parse(const char *s, int64_t now_ms, int64_t *out);

/* A stored key is struct sl_api_key (store/store.h). */
/* Why a presented token is refused, or SL_KEY_OK. */
enum sl_key_verdict { SL_KEY_OK, SL_KEY_MALFORMED, SL_KEY_UNKNOWN, SL_KEY_REVOKED, SL_KEY_EXPIRED, SL_KEY_UNDECLARED };
const char *sl_key_verdict_text(enum sl_key_verdict v); /* for the 401's detail (no secret in it) */
/* Checks token against the store (and, when ps declares principals, that
 * the key's principal is still declared, in the key's tenant or "*"; its
 * role is then the lesser of the key's and the principal's). out is filled when SL_KEY_OK. A store error
 * is SL_KEY_UNKNOWN with *store_failed set. */
enum sl_key_verdict sl_key_check(struct sl_store *s, const struct sl_principals *ps, const char *token,
				 int64_t now_ms, struct sl_api_key *out, bool *store_failed);

/* The audit entry of a key's creation or revocation (action "key.create"
 * or "key.revoke"): target the key's id, detail its principal, role,
 * tenant, label and expiry, never its hash. Returns owned. */
json_t *sl_key_audit_entry(const char *action, const struct sl_api_key *k, const struct sl_audit_actor *actor,
			   const char *correlation_id);

/* ---- kill switches ------------------------------------------------------------------ */
enum sl_pause_kind { SL_PAUSE_WORKFLOW, SL_PAUSE_CONNECTOR, SL_PAUSE_PROVIDER, SL_PAUSE__COUNT };
const char *sl_pause_kind_name(enum sl_pause_kind k); /* "workflow", "connector", "provider" */
int sl_pause_kind_parse(const char *name);            /* -1 when unknown */
/* The key a parked task carries: "KIND:NAME" into out (at most n bytes). */
void sl_pause_key(enum sl_pause_kind k, const char *name, char *out, size_t n);

#endif
