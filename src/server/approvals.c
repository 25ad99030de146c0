/*
 * approvals.c: the approvals API (DESIGN.md §7).
 *
 *   GET  /v1/approvals                 list, newest first: status, workflow,
 *                                      run_id, tenant filters, cursor paging
 *   GET  /v1/approvals/{id}            one approval with its evidence
 *   POST /v1/approvals/{id}/decision   {decision: approve|reject|edit,
 *                                      reason, value}
 *
 * The decider is the request's principal (its API key's). A key sees only
 * its tenant's approvals (another tenant's id answers 404, so ids do not
 * leak), and may decide only when the approval's reviewers name its
 * principal or a role it holds (role:operator is held by operators and
 * admins). The decision, the run queued again and the audit entry land in
 * one transaction (engine.c).
 */
#include <string.h>

#include "gov/auth.h"
#include "server/server_int.h"
#include "store/store.h"

const char *srv_principal(const struct srv_req *r)
{
	struct sl_audit_actor a = srv_actor(r, NULL);
	return a.id ? a.id : "anonymous";
}

void srv_approvals_list(struct sl_server *s, struct srv_req *r)
{
	struct sl_approval_filter f = {0};
	f.status = srv_query(r, "status");
	f.workflow = srv_query(r, "workflow");
	f.run_id = srv_query(r, "run_id");
	f.tenant = srv_tenant_scope(r) ? srv_tenant_scope(r) : srv_query(r, "tenant");
	f.cursor = srv_query(r, "cursor");
	static const char *const statuses[] = {"pending", "approved", "rejected", "edited", "expired", NULL};
	bool ok = !f.status;
	for (const char *const *p = statuses; f.status && *p; p++)
		ok |= strcmp(*p, f.status) == 0;
	if (!ok) {
		srv_problem(r, 400, "status must be pending, approved, rejected, edited or expired");
		return;
	}
	if (srv_parse_time(r, "since", &f.since) || srv_parse_limit(r, &f.limit))
		return;
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_approvals_list(sl_engine_store(s->e), &f, &doc, &err);
	if (rc) {
		srv_problem_code(r, rc, &err);
		return;
	}
	srv_reply_json(r, 200, doc);
}

/* The approval of the path's id when the caller's tenant may see it; else
 * answers (404 for another tenant's) and returns NULL. Owned. */
static json_t *visible_approval(struct sl_server *s, struct srv_req *r)
{
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_approval_get(sl_engine_store(s->e), r->params[0], &doc, &err);
	if (rc) {
		srv_problem_code(r, rc, rc == SL_ENOTFOUND ? NULL : &err);
		return NULL;
	}
	if (!srv_doc_visible(r, doc)) {
		json_decref(doc);
		srv_problem_code(r, SL_ENOTFOUND, NULL);
		return NULL;
	}
	return doc;
}

/* Whether the caller is among reviewers: its principal by name, or
 * role:R with R at most the key's role. */
static bool is_reviewer(const struct srv_req *r, const json_t *reviewers)
{
	size_t i;
	const json_t *v;
	json_array_foreach(reviewers, i, v) {
		const char *who = json_string_value(v);
		if (!who)
			continue;
		if (strncmp(who, "role:", 5) == 0) {
			int need = sl_role_parse(who + 5);
			if (need >= 0 && r->auth.role >= need)
				return true;
		} else if (strcmp(who, r->auth.principal) == 0) {
			return true;
		}
	}
	return false;
}

void srv_approval_get(struct sl_server *s, struct srv_req *r)
{
	json_t *doc = visible_approval(s, r);
	if (!doc)
		return;
	snprintf(r->run_id, sizeof r->run_id, "%s", json_string_value(json_object_get(doc, "run_id")));
	srv_reply_json(r, 200, doc);
}

void srv_approval_decide(struct sl_server *s, struct srv_req *r)
{
	json_error_t je;
	json_t *body = json_loadb(sl_buf_str(&r->body), r->body.len, 0, &je);
	const char *decision = json_string_value(json_object_get(body, "decision"));
	const json_t *reason = json_object_get(body, "reason");
	if (!json_is_object(body) || !decision || (reason && !json_is_string(reason))) {
		json_decref(body);
		srv_problem(r, 400,
			    "body must be {\"decision\": \"approve\"|\"reject\"|\"edit\", \"reason\": \"...\", \"value\": ...}");
		return;
	}
	json_t *apr = visible_approval(s, r);
	if (!apr) {
		json_decref(body);
		return;
	}
	bool may = is_reviewer(r, json_object_get(apr, "reviewers"));
	json_decref(apr);
	if (!may) {
		json_decref(body);
		srv_problem(r, 403, "the caller is not among this approval's reviewers");
		return;
	}
	struct sl_audit_actor actor = srv_actor(r, NULL);
	actor.id = srv_principal(r);
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_engine_approval_decide(s->e, r->params[0], decision, json_string_value(reason),
					   json_object_get(body, "value"), &actor, &doc, &err);
	json_decref(body);
	if (rc == SL_EINVAL && err.cls == SL_CLASS_CONTRACT) { /* the edit does not fit: nothing was decided */
		srv_problem(r, 422, err.msg);
		return;
	}
	if (rc) {
		srv_problem_code(r, rc, rc == SL_ENOTFOUND ? NULL : &err);
		return;
	}
	snprintf(r->run_id, sizeof r->run_id, "%s", json_string_value(json_object_get(doc, "run_id")));
	srv_reply_json(r, 200, doc);
}
