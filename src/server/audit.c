/*
 * audit.c: GET /v1/audit, the audit log newest first with cursor paging
 * and filters (action, run_id, tenant, since, until). Each entry comes with
 * its hash and prev_hash, so a client can check a page's links itself.
 */
#include <string.h>

#include "server/server_int.h"
#include "store/store.h"

void srv_audit_list(struct sl_server *s, struct srv_req *r)
{
	struct sl_audit_filter f = {0};
	f.action = srv_query(r, "action");
	f.run_id = srv_query(r, "run_id");
	/* a key sees its tenant's entries; a key of every tenant may pick one */
	f.tenant = srv_tenant_scope(r) ? srv_tenant_scope(r) : srv_query(r, "tenant");
	f.cursor = srv_query(r, "cursor");
	if (f.cursor) {
		int64_t c;
		if (sl_parse_i64(f.cursor, &c) || c < 1) {
			srv_problem(r, 400, "cursor must be a next_cursor of an earlier page");
			return;
		}
	}
	if (srv_parse_time(r, "since", &f.since) || srv_parse_time(r, "until", &f.until) ||
	    srv_parse_limit(r, &f.limit))
		return;
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_audit_list(sl_engine_store(s->e), &f, &doc, &err);
	if (rc) {
		srv_problem_code(r, rc, &err);
		return;
	}
	srv_reply_json(r, 200, doc);
}
