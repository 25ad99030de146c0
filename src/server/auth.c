/*
 * auth.c: who is calling. Every route but the public ones (health probes,
 * the console page, the OpenAPI document and the HMAC-signed webhooks)
 * wants "Authorization: Bearer KEY" with a key of `sluice keys create`; the
 * key's role must reach the route's (viewer < operator < admin), and what
 * it reads and changes is its tenant's only (a key of tenant "*" sees
 * every tenant). Also the handlers of the kill switches (/v1/pauses) and
 * of keys (/v1/keys).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov/auth.h"
#include "server/server_int.h"
#include "store/store.h"

/* ---- authentication and the role check ---------------------------------------------- */

static void unauthorized(struct srv_req *r, const char *detail, bool bad_token)
{
	r->www_auth = bad_token ? "Bearer realm=\"sluice\", error=\"invalid_token\"" : "Bearer realm=\"sluice\"";
	srv_problem(r, 401, detail);
}

/* The bearer token of the request, or NULL. */
static const char *bearer(struct srv_req *r)
{
	const char *h = srv_header(r, "Authorization");
	if (!h)
		return NULL;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return "";
	h += 7;
	while (*h == ' ')
		h++;
	return h;
}

bool srv_authorize(struct sl_server *s, struct srv_req *r, int need)
{
	if (need == SRV_PUBLIC)
		return true;
	const char *token = bearer(r);
	if (!token) {
		unauthorized(r, "this endpoint wants an API key: Authorization: Bearer KEY (sluice keys create)", false);
		return false;
	}
	struct sl_api_key k;
	bool store_failed = false;
	enum sl_key_verdict v = sl_key_check(sl_engine_store(s->e), sl_engine_project(s->e)->principals, token,
					     sl_now_ms(), &k, &store_failed);
	if (store_failed) {
		r->retry_after = true;
		srv_problem(r, 503, "cannot check the API key: store not reachable");
		return false;
	}
	if (v != SL_KEY_OK) {
		unauthorized(r, sl_key_verdict_text(v), true);
		return false;
	}
	int role = sl_role_parse(k.role);
	r->auth.ok = true;
	r->auth.role = role < 0 ? SL_ROLE_VIEWER : role;
	snprintf(r->auth.key_id, sizeof r->auth.key_id, "%s", k.id);
	snprintf(r->auth.principal, sizeof r->auth.principal, "%s", k.principal);
	snprintf(r->auth.kind, sizeof r->auth.kind, "%s", k.kind);
	snprintf(r->auth.tenant, sizeof r->auth.tenant, "%s", k.tenant);
	if (r->auth.role < need) {
		char *d = sl_asprintf("this needs the %s role; the key's principal %s has %s", sl_role_name(need),
				      k.principal, sl_role_name(r->auth.role));
		srv_problem(r, 403, d);
		free(d);
		return false;
	}
	return true;
}

const char *srv_tenant_scope(const struct srv_req *r)
{
	if (!r->auth.ok || strcmp(r->auth.tenant, SL_TENANT_ANY) == 0)
		return NULL;
	return r->auth.tenant;
}

const char *srv_tenant_of_new(const struct srv_req *r)
{
	const char *t = srv_tenant_scope(r);
	return t ? t : SL_TENANT_DEFAULT;
}

bool srv_run_visible(struct sl_server *s, struct srv_req *r, const char *run_id)
{
	const char *scope = srv_tenant_scope(r);
	if (!scope)
		return true;
	struct sl_run run;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_run_load(sl_engine_store(s->e), run_id, &run, &err))
		return true; /* the handler answers 404 (or the store's error) itself */
	bool ok = run.tenant && strcmp(run.tenant, scope) == 0;
	sl_run_free(&run);
	return ok;
}

bool srv_doc_visible(const struct srv_req *r, const json_t *run_doc)
{
	const char *scope = srv_tenant_scope(r);
	const char *t = json_string_value(json_object_get(run_doc, "tenant"));
	return !scope || (t && strcmp(t, scope) == 0);
}

/* ---- kill switches ------------------------------------------------------------------- */

void srv_pauses_list(struct sl_server *s, struct srv_req *r)
{
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_pause_list(sl_engine_store(s->e), &doc, &err);
	if (rc) {
		srv_problem_code(r, rc, &err);
		return;
	}
	srv_reply_json(r, 200, doc);
}

/* Whether the project knows NAME as a thing of that kind (a pause of an
 * unknown name is a typo that would hold nothing). */
static bool pause_target_known(struct sl_server *s, enum sl_pause_kind k, const char *name)
{
	struct sl_project *p = sl_engine_project(s->e);
	switch (k) {
	case SL_PAUSE_WORKFLOW: return sl_project_workflow(p, name) != NULL;
	case SL_PAUSE_CONNECTOR: return sl_project_connector(p, name) != NULL;
	case SL_PAUSE_PROVIDER: return sl_ai_has_provider(p->ai, name);
	default: return false;
	}
}

static void pause_apply(struct sl_server *s, struct srv_req *r, const char *kind, const char *name, bool paused)
{
	int k = sl_pause_kind_parse(kind);
	if (k < 0) {
		srv_problem(r, 400, "kind is workflow, connector or provider");
		return;
	}
	if (paused && !pause_target_known(s, (enum sl_pause_kind)k, name)) {
		char *d = sl_asprintf("the project has no %s named '%s'", kind, name);
		srv_problem(r, 404, d);
		free(d);
		return;
	}
	struct sl_audit_actor actor = srv_actor(r, NULL);
	bool changed = false;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_engine_pause(s->e, kind, name, paused, &actor, srv_tenant_of_new(r), &changed, &err);
	if (rc) {
		srv_problem_code(r, rc, &err);
		return;
	}
	if (!paused && !changed) {
		srv_problem(r, 404, "no such pause");
		return;
	}
	srv_reply_json(r, paused && changed ? 201 : 200,
		       json_pack("{s:s, s:s, s:b, s:b}", "kind", kind, "name", name, "paused", paused, "changed",
				 changed));
}

/* POST /v1/pauses {"kind": "workflow", "name": "support-triage"} */
void srv_pause_create(struct sl_server *s, struct srv_req *r)
{
	json_t *body = srv_body_input(r, NULL);
	if (!body)
		return;
	const char *kind = json_string_value(json_object_get(body, "kind"));
	const char *name = json_string_value(json_object_get(body, "name"));
	if (!kind || !name || !*name || strlen(name) >= 200)
		srv_problem(r, 400, "body must be {\"kind\": \"workflow\"|\"connector\"|\"provider\", \"name\": \"...\"}");
	else
		pause_apply(s, r, kind, name, true);
	json_decref(body);
}

/* DELETE /v1/pauses/{kind}/{name} */
void srv_pause_delete(struct sl_server *s, struct srv_req *r)
{
	pause_apply(s, r, r->params[0], r->params[1], false);
}

/* ---- keys ------------------------------------------------------------------------------ */

/* GET /v1/keys: the keys of the caller's tenant (every key for "*"), no secrets. */
void srv_keys_list(struct sl_server *s, struct srv_req *r)
{
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_key_list(sl_engine_store(s->e), &doc, &err);
	if (rc) {
		srv_problem_code(r, rc, &err);
		return;
	}
	const char *scope = srv_tenant_scope(r);
	json_t *keys = json_object_get(doc, "keys");
	for (size_t i = json_array_size(keys); scope && i-- > 0;) {
		const char *t = json_string_value(json_object_get(json_array_get(keys, i), "tenant"));
		if (!t || strcmp(t, scope) != 0)
			json_array_remove(keys, i);
	}
	srv_reply_json(r, 200, doc);
}

/* POST /v1/keys/{id}/revoke: a key of the caller's tenant (404 otherwise). */
void srv_key_revoke(struct sl_server *s, struct srv_req *r)
{
	struct sl_store *st = sl_engine_store(s->e);
	struct sl_api_key k;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_key_get(st, r->params[0], &k, &err);
	const char *scope = srv_tenant_scope(r);
	if (rc == 0 && scope && strcmp(k.tenant, scope) != 0)
		rc = SL_ENOTFOUND;
	if (rc) {
		srv_problem_code(r, rc, rc == SL_ENOTFOUND ? NULL : &err);
		return;
	}
	struct sl_audit_actor actor = srv_actor(r, NULL);
	json_t *audit = sl_key_audit_entry("key.revoke", &k, &actor, r->corr);
	rc = sl_store_key_revoke(st, k.id, audit, &err);
	json_decref(audit);
	if (rc == SL_EINVAL) {
		srv_problem(r, 409, "the key was already revoked");
		return;
	}
	if (rc) {
		srv_problem_code(r, rc, &err);
		return;
	}
	srv_reply_json(r, 200, json_pack("{s:s, s:b}", "id", k.id, "revoked", 1));
}
