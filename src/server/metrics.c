/*
 * metrics.c: `GET /metrics` (the Prometheus text format of obs.h), and the
 * gauges read at scrape time from the store and the AI runtime: runs by
 * status (queued is the queue depth), dead letters waiting, leases held,
 * budgets left, requests in flight. A store that cannot answer leaves its
 * gauges out of the scrape rather than failing it.
 */
#include <stdlib.h>
#include <string.h>

#include "ai/ai.h"
#include "config/config.h"
#include "obs/obs.h"
#include "server/server_int.h"
#include "store/store.h"

static void collect_runs(struct sl_store *st)
{
	json_t *counts = NULL;
	struct sl_err err;
	sl_metric_clear(SL_M_RUNS_BY_STATUS);
	if (sl_store_counts(st, &counts, &err) != 0)
		return;
	/* every status, so a rate over it never starts from a missing series */
	for (int i = 0; i < SL_RUN__COUNT; i++) {
		const char *name = sl_run_status_name((enum sl_run_status)i);
		const char *l[] = {name};
		sl_metric_set(SL_M_RUNS_BY_STATUS, l, (double)json_integer_value(json_object_get(counts, name)));
	}
	json_decref(counts);
}

static void collect_queue(struct sl_store *st)
{
	struct sl_err err;
	struct sl_dlq_filter f = {.error_class = -1};
	int64_t n = 0;
	if (sl_store_dlq_count(st, &f, &n, &err) == 0)
		sl_metric_set(SL_M_DLQ_SIZE, NULL, (double)n);
	json_t *owners = NULL;
	if (sl_store_lease_owners(st, &owners, &err) == 0) {
		double held = 0;
		const char *k;
		json_t *v;
		json_object_foreach(owners, k, v)
			held += (double)json_integer_value(v);
		sl_metric_set(SL_M_LEASES_HELD, NULL, held);
		json_decref(owners);
	}
}

static void budget_left(const struct sl_ai_budget_state *b, void *ud)
{
	(void)ud;
	const char *l[] = {b->scope, b->name};
	double left = b->limit_usd - b->spent_usd;
	sl_metric_set(SL_M_AI_BUDGET_LEFT, l, left > 0 ? left : 0);
}

/* healthy, degraded (failing since its last success) or unhealthy (auth) */
const char *srv_connector_state(const struct sl_health *h)
{
	if (!h->healthy)
		return "unhealthy";
	return h->last_error_ms > h->last_success_ms ? "degraded" : "healthy";
}

static void collect_connectors(struct sl_project *p)
{
	sl_metric_clear(SL_M_CONNECTOR_SUCCESS_AGE);
	int64_t now = sl_now_ms();
	for (size_t i = 0; i < p->nconnectors; i++) {
		struct sl_health h;
		sl_connector_health(p->connectors[i], &h);
		const char *l[] = {p->connectors[i]->name};
		sl_metric_set(SL_M_CONNECTOR_UP, l, h.healthy ? 1 : 0);
		sl_metric_set(SL_M_CONNECTOR_CALLS, l, (double)h.calls);
		sl_metric_set(SL_M_CONNECTOR_ERRORS, l, (double)h.errors);
		if (h.last_success_ms)
			sl_metric_set(SL_M_CONNECTOR_SUCCESS_AGE, l, (double)(now - h.last_success_ms) / 1000.0);
	}
}

void srv_collect_metrics(void *server)
{
	struct sl_server *s = server;
	struct sl_store *st = sl_engine_store(s->e);
	collect_runs(st);
	collect_queue(st);
	collect_connectors(sl_engine_project(s->e));
	srv_collect_drift(s);
	srv_collect_slo(s);
	sl_metric_clear(SL_M_AI_BUDGET_LEFT);
	sl_ai_budgets(sl_engine_project(s->e)->ai, budget_left, NULL);
	/* this scrape is one of them: it is not counted */
	sl_metric_set(SL_M_HTTP_INFLIGHT, NULL, (double)(atomic_load(&s->inflight) - 1));
}

void srv_metrics(struct sl_server *s, struct srv_req *r)
{
	(void)s;
	r->status = 200;
	free(r->resp_body);
	r->resp_body = sl_metrics_render();
	r->resp_type = "text/plain; version=0.0.4; charset=utf-8";
}
