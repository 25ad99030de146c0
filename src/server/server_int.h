/* server_int.h: private to src/server/. */
#ifndef SL_SERVER_INT_H
#define SL_SERVER_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "gov/audit.h"
#include "server/server.h"

struct MHD_Daemon;
struct MHD_Connection;

#define SRV_PARAM_MAX 256
#define SRV_CORR_MAX 128

/* A webhook route: its workflow and its resolved secrets (never logged). */
struct srv_hook {
	const char *path;     /* borrowed from the workflow: "/hooks/email" */
	const char *workflow; /* borrowed */
	char *secret;         /* owned, NULL when unsigned */
	char *secret_prev;    /* owned, NULL when no rotation */
	char *scope;          /* owned: "webhook:/hooks/email" */
};

struct sl_server {
	struct MHD_Daemon *d;
	struct sl_engine *e;
	size_t max_body;
	int max_inflight;
	atomic_int inflight;
	int port;
	struct srv_hook *hooks;
	size_t nhooks;
	pthread_mutex_t drift_mu; /* guards drift_state */
	json_t *drift_state;      /* "workflow/step" -> drifted at the last look, to log changes once */
	json_t *slo_state;        /* "workflow/objective" -> state at the last look (under drift_mu) */
	/* the signals thread (signals.c), running while some ai step has demote_on */
	pthread_t signals_thread;
	bool has_signals, signals_stop;
	pthread_mutex_t signals_mu;
	pthread_cond_t signals_cv;
	int64_t signals_interval_ms;
	json_t *signals_shared;    /* the table as last written to the store (signals_mu) */
};

/* One request: lives from the headers to the completion callback. */
struct srv_req {
	struct MHD_Connection *conn;
	int64_t t0; /* µs, monotonic */
	char method[16];
	char *url;  /* owned */
	struct sl_buf body;
	bool counted, too_big, answered, retry_after;
	int retry_after_s; /* with retry_after: the seconds to say (0: 1) */
	char params[2][SRV_PARAM_MAX];
	const char *route; /* the matched route's template ("/v1/runs/{id}"), for metrics; NULL: none */
	/* the answer */
	int status;
	char *resp_body; /* owned until queued */
	const char *resp_type;
	char location[256];
	char allow[32];      /* Allow header of a 405 */
	const char *www_auth; /* WWW-Authenticate of a 401 (static), or NULL */
	/* the caller, once srv_authorize accepted its key */
	struct {
		bool ok;
		int role;          /* enum sl_role */
		char key_id[17];
		char principal[128];
		char kind[16];     /* user, service, agent */
		char tenant[128];  /* "*": every tenant */
	} auth;
	/* for the log line */
	char run_id[SL_ID_MAX];
	char corr[SRV_CORR_MAX];
};

typedef void (*srv_handler_fn)(struct sl_server *s, struct srv_req *r);

/* auth.c: the role a route needs (enum sl_role), or SRV_PUBLIC. */
#define SRV_PUBLIC (-1)
/* Checks the bearer key against need; false after answering 401, 403 or
 * 503 (store down). On success r->auth says who is calling. */
bool srv_authorize(struct sl_server *s, struct srv_req *r, int need);
/* The tenant the caller may see, or NULL for every tenant ("*"). */
const char *srv_tenant_scope(const struct srv_req *r);
/* The tenant of what the caller creates ("default" for a "*" key). */
const char *srv_tenant_of_new(const struct srv_req *r);
/* Whether the run is the caller's tenant's (a run another tenant owns is
 * answered 404, as if it did not exist, so ids do not leak). A run that
 * cannot be loaded counts as visible: the handler's own lookup answers. */
bool srv_run_visible(struct sl_server *s, struct srv_req *r, const char *run_id);
bool srv_doc_visible(const struct srv_req *r, const json_t *run_doc);
void srv_pauses_list(struct sl_server *s, struct srv_req *r);
void srv_pause_create(struct sl_server *s, struct srv_req *r);
void srv_pause_delete(struct sl_server *s, struct srv_req *r);
void srv_keys_list(struct sl_server *s, struct srv_req *r);
void srv_key_revoke(struct sl_server *s, struct srv_req *r);

void srv_reply_json(struct srv_req *r, int status, json_t *doc); /* takes doc */
/* Starts a run of w with input in (taken) and answers once it is committed:
 * 202 for a new run, 200 when (scope, key) was seen, else a problem. */
struct sl_workflow;
void srv_start_and_reply(struct sl_server *s, struct srv_req *r, const struct sl_workflow *w, json_t *in,
			 const char *scope, const char *key, const char *trigger);
void srv_problem(struct srv_req *r, int status, const char *detail);
void srv_problem_errs(struct srv_req *r, int status, const char *detail, json_t *errors); /* takes errors */
/* A problem with one extension member (RFC 9457 §3.2); takes value. */
void srv_problem_with(struct srv_req *r, int status, const char *detail, const char *member, json_t *value);
void srv_problem_code(struct srv_req *r, int code, const struct sl_err *err);
const char *srv_header(struct srv_req *r, const char *name);
const char *srv_query(struct srv_req *r, const char *name);

/* api.c */
void srv_console(struct sl_server *s, struct srv_req *r);
void srv_healthz(struct sl_server *s, struct srv_req *r);
void srv_readyz(struct sl_server *s, struct srv_req *r);
void srv_openapi(struct sl_server *s, struct srv_req *r);
void srv_metrics(struct sl_server *s, struct srv_req *r);
void srv_costs(struct sl_server *s, struct srv_req *r);
void srv_connectors(struct sl_server *s, struct srv_req *r);
void srv_drift(struct sl_server *s, struct srv_req *r);
void srv_slo(struct sl_server *s, struct srv_req *r);
void srv_collect_slo(struct sl_server *s); /* slo.c: the SLO gauges at scrape time */
void srv_collect_drift(struct sl_server *s); /* drift.c: the drift gauges at scrape time */
/* signals.c: the budget signal of demote_on, and the thread that refreshes
 * drift, SLO burn and budget signals while some ai step follows them. */
void srv_collect_budget_signal(struct sl_server *s);
void srv_signals_start(struct sl_server *s);
/* sl_signal_set, and when the table changed, the table written to the
 * store for the worker processes (gov/signal.h SL_SIGNALS_STATE). */
void srv_signal_set(struct sl_server *s, enum sl_signal sig, const char *workflow, const char *step, bool holds,
		    const json_t *detail);
void srv_signals_stop(struct sl_server *s);
struct sl_health;
const char *srv_connector_state(const struct sl_health *h); /* metrics.c */
/* Fills the scrape-time gauges (store counts, DLQ, leases, budgets,
 * requests in flight); registered as a metrics collector while serving. */
void srv_collect_metrics(void *server);
void srv_workflows(struct sl_server *s, struct srv_req *r);
void srv_start_run(struct sl_server *s, struct srv_req *r);
void srv_runs_list(struct sl_server *s, struct srv_req *r);
void srv_run_get(struct sl_server *s, struct srv_req *r);
void srv_run_cancel(struct sl_server *s, struct srv_req *r);
void srv_run_trace(struct sl_server *s, struct srv_req *r);
void srv_dlq_list(struct sl_server *s, struct srv_req *r);
void srv_dlq_replay(struct sl_server *s, struct srv_req *r);
void srv_dlq_replay_bulk(struct sl_server *s, struct srv_req *r);
/* Query helpers shared by the list handlers: each answers 400 itself and
 * returns -1 on a bad value. limit: 1..500; a time: RFC 3339 or ms. */
int srv_parse_limit(struct srv_req *r, size_t *limit);
int srv_parse_time(struct srv_req *r, const char *name, int64_t *out);
/* Who is acting for the audit log: a webhook (its idempotency scope names
 * it) or an API caller. */
struct sl_audit_actor srv_actor(const struct srv_req *r, const char *webhook_scope);
/* approvals.c. The principal a request acts for ("alice"): the auth
 * middleware's; "anonymous" until it is wired. Decisions record it. */
const char *srv_principal(const struct srv_req *r);
void srv_approvals_list(struct sl_server *s, struct srv_req *r);
void srv_approval_get(struct sl_server *s, struct srv_req *r);
void srv_approval_decide(struct sl_server *s, struct srv_req *r);

/* audit.c */
void srv_audit_list(struct sl_server *s, struct srv_req *r);
/* Parses the body as JSON (empty: {}), validates it against schema (may be
 * NULL) and answers 400 with pointers on failure. Returns owned or NULL. */
json_t *srv_body_input(struct srv_req *r, const struct sl_schema *schema);

/* chat.c: the OpenAI-compatible gateway over models.yaml's routes */
void srv_chat_completions(struct sl_server *s, struct srv_req *r);
void srv_models(struct sl_server *s, struct srv_req *r);

/* webhook.c */
int srv_hooks_init(struct sl_server *s, struct sl_err *err);
void srv_hooks_free(struct sl_server *s);
void srv_webhook(struct sl_server *s, struct srv_req *r);

/* events.c: CloudEvents (POST /v1/events), routed by type to trigger {event: TYPE} */
void srv_events(struct sl_server *s, struct srv_req *r);

#endif
