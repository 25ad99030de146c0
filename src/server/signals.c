/*
 * signals.c: keeps the live signals that ai steps' autonomy follows
 * (`demote_on:`, gov/signal.h) fresh. Drift and SLO burn are computed by
 * their own evaluators (drift.c, slo.c), which report every change; this
 * file adds the budget signal and a thread that runs the three every
 * SRV_SIGNALS_INTERVAL_MS while some step follows a signal, so a step is
 * demoted without anyone scraping /metrics or reading /v1/drift.
 */
#include <stdlib.h>
#include <string.h>

#include "gov/signal.h"
#include "server/server_int.h"

#define SRV_SIGNALS_INTERVAL_MS 10000
#define BUDGET_SIGNAL_SHARE 0.8 /* a budget 80% spent demotes: the rest is for what must run */

static bool follows_any(const struct sl_project *p)
{
	for (size_t i = 0; i < p->nworkflows; i++)
		for (size_t j = 0; j < p->workflows[i]->nsteps; j++)
			if (p->workflows[i]->steps[j].kind == SL_STEP_AI && p->workflows[i]->steps[j].ai.demote_on)
				return true;
	return false;
}

struct budget_walk {
	struct sl_server *s;
	json_t *hot; /* workflow -> evidence, for those whose budget signal holds */
};

static void budget_one(const struct sl_ai_budget_state *b, void *ud)
{
	struct budget_walk *bw = ud;
	if (!(b->limit_usd > 0) || b->spent_usd < BUDGET_SIGNAL_SHARE * b->limit_usd)
		return;
	const struct sl_project *p = sl_engine_project(bw->s->e);
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		bool uses = strcmp(b->scope, "workflow") == 0 && strcmp(b->name, w->name) == 0;
		for (size_t j = 0; !uses && j < w->nsteps; j++)
			uses = w->steps[j].kind == SL_STEP_AI && w->steps[j].ai.route &&
			       strcmp(b->scope, "route") == 0 && strcmp(w->steps[j].ai.route, b->name) == 0;
		if (uses)
			json_object_set_new(bw->hot, w->name,
					    json_pack("{s:s, s:s, s:f, s:f}", "scope", b->scope, "name", b->name,
						      "limit_usd", b->limit_usd, "spent_usd", b->spent_usd));
	}
}

void srv_collect_budget_signal(struct sl_server *s)
{
	struct sl_project *p = sl_engine_project(s->e);
	struct budget_walk bw = {s, json_object()};
	sl_ai_budgets(p->ai, budget_one, &bw);
	for (size_t i = 0; i < p->nworkflows; i++) {
		const char *name = p->workflows[i]->name;
		json_t *ev = json_object_get(bw.hot, name);
		srv_signal_set(s, SL_SIGNAL_BUDGET, name, NULL, ev != NULL, ev);
	}
	json_decref(bw.hot);
}

/* Writes the table to the store when it differs from what was written
 * last, for the worker processes (they mirror it: engine/gate.c). */
static void publish(struct sl_server *s)
{
	json_t *snap = sl_signal_snapshot();
	pthread_mutex_lock(&s->signals_mu);
	if (!s->signals_shared || !json_equal(s->signals_shared, snap)) {
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_store_trigger_state_put(sl_engine_store(s->e), SL_SIGNALS_STATE, snap, &err) == 0) {
			json_decref(s->signals_shared);
			s->signals_shared = json_incref(snap);
		} else {
			sl_log(SL_LOG_WARN, "server", "cannot share the autonomy signals with the workers", "error",
			       err.msg, NULL);
		}
	}
	pthread_mutex_unlock(&s->signals_mu);
	json_decref(snap);
}

void srv_signal_set(struct sl_server *s, enum sl_signal sig, const char *workflow, const char *step, bool holds,
		    const json_t *detail)
{
	if (sl_signal_set(sl_engine_store(s->e), sl_engine_project(s->e), sig, workflow, step, holds, detail))
		publish(s);
}

static void *signals_main(void *arg)
{
	struct sl_server *s = arg;
	pthread_mutex_lock(&s->signals_mu);
	while (!s->signals_stop) {
		pthread_mutex_unlock(&s->signals_mu);
		srv_collect_drift(s);
		srv_collect_slo(s); /* and the budget signal */
		/* also when nothing changed: the first round replaces what a
		 * previous server left in the store */
		publish(s);
		pthread_mutex_lock(&s->signals_mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t ns = ts.tv_nsec + (int64_t)(s->signals_interval_ms % 1000) * 1000000;
		ts.tv_sec += s->signals_interval_ms / 1000 + ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		if (!s->signals_stop)
			pthread_cond_timedwait(&s->signals_cv, &s->signals_mu, &ts);
	}
	pthread_mutex_unlock(&s->signals_mu);
	return NULL;
}

void srv_signals_start(struct sl_server *s)
{
	pthread_mutex_init(&s->signals_mu, NULL);
	pthread_cond_init(&s->signals_cv, NULL);
	s->signals_interval_ms = SRV_SIGNALS_INTERVAL_MS;
	const char *env = getenv("SLUICE_SIGNALS_INTERVAL_MS"); /* tests: a faster beat */
	int64_t v;
	if (env && sl_parse_i64(env, &v) == 0 && v >= 100)
		s->signals_interval_ms = v;
	s->has_signals = follows_any(sl_engine_project(s->e)) &&
			 pthread_create(&s->signals_thread, NULL, signals_main, s) == 0;
}

void srv_signals_stop(struct sl_server *s)
{
	if (s->has_signals) {
		pthread_mutex_lock(&s->signals_mu);
		s->signals_stop = true;
		pthread_cond_signal(&s->signals_cv);
		pthread_mutex_unlock(&s->signals_mu);
		pthread_join(s->signals_thread, NULL);
	}
	pthread_cond_destroy(&s->signals_cv);
	pthread_mutex_destroy(&s->signals_mu);
	json_decref(s->signals_shared);
	s->signals_shared = NULL;
}
