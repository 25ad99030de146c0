/*
 * slo.c: `GET /v1/slo` and the SLO gauges. Each workflow's `slo:` block is
 * read as objectives over the runs that ended (or went to review):
 *
 *   max_error_rate   failed runs / runs          budget: the rate itself
 *   max_review_rate  runs sent to review / runs  budget: the rate itself
 *   p95_ms           completed runs slower than it / completed   budget: 5%
 *   max_cost_usd     model cost / runs           (a ratio, not a rate)
 *
 * Burn rate = observed / budget: 1 spends the budget exactly over the SLO
 * period (30 days). Alerts follow the multiwindow rule of the SRE workbook:
 * fast burn when both the 1 h and 5 min windows burn at 14.4 or more (2% of
 * a month's budget in an hour), slow burn when both 6 h and 30 min burn at
 * 6 or more. A workflow entering or leaving an alert is logged once and
 * counted.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "obs/obs.h"
#include "gov/signal.h"
#include "server/server_int.h"
#include "store/store.h"

#define FAST_BURN 14.4
#define SLOW_BURN 6.0
#define LATENCY_BUDGET 0.05 /* p95: 5% of runs may be slower */
#define SLO_PERIOD_MS (30LL * 24 * 3600 * 1000)

static const struct {
	const char *name;
	int64_t ms;
} windows[] = {
	{"5m", 5 * 60 * 1000}, {"30m", 30 * 60 * 1000}, {"1h", 3600 * 1000}, {"6h", 6 * 3600 * 1000}, {"30d", SLO_PERIOD_MS},
};
enum { W_5M, W_30M, W_1H, W_6H, W_30D, W__COUNT };

enum objective { O_ERROR, O_REVIEW, O_LATENCY, O_COST, O__COUNT };
static const char *const objective_names[] = {"error_rate", "review_rate", "latency_p95", "cost_per_run"};

static double target(const struct sl_workflow *w, enum objective o)
{
	switch (o) {
	case O_ERROR: return w->slo.max_error_rate;
	case O_REVIEW: return w->slo.max_review_rate;
	case O_LATENCY: return w->slo.p95_ms;
	default: return w->slo.max_cost_usd;
	}
}

/* The objective's indicator in one window, or NAN without data. */
static double indicator(enum objective o, const struct sl_run_stats *st)
{
	switch (o) {
	case O_ERROR: return st->runs ? (double)st->failed / (double)st->runs : NAN;
	case O_REVIEW: return st->runs ? (double)st->review / (double)st->runs : NAN;
	case O_LATENCY: return st->completed ? (double)st->slow / (double)st->completed : NAN;
	default: return st->runs ? st->cost_usd / (double)st->runs : NAN;
	}
}

static double burn(enum objective o, double tgt, double sli)
{
	if (isnan(sli))
		return NAN;
	double budget = o == O_LATENCY ? LATENCY_BUDGET : tgt;
	if (budget <= 0)
		return sli > 0 ? INFINITY : 0;
	return sli / budget;
}

static json_t *num_or_null(double v)
{
	return isnan(v) ? json_null() : isinf(v) ? json_real(1e9) : json_real(round(v * 10000) / 10000);
}

/* Logs and counts a workflow's objective entering or leaving an alert. */
static void note_alert(struct sl_server *s, const char *wf, const char *obj, const char *state)
{
	char key[256];
	snprintf(key, sizeof key, "%s/%s", wf, obj);
	pthread_mutex_lock(&s->drift_mu);
	if (!s->slo_state)
		s->slo_state = json_object();
	const char *was = json_string_value(json_object_get(s->slo_state, key));
	bool changed = !was || strcmp(was, state) != 0;
	json_object_set_new(s->slo_state, key, json_string(state));
	pthread_mutex_unlock(&s->drift_mu);
	if (!changed || (!was && strcmp(state, "ok") == 0))
		return;
	bool alert = strcmp(state, "fast_burn") == 0 || strcmp(state, "slow_burn") == 0;
	if (alert) {
		const char *l[] = {wf, obj};
		sl_metric_add(SL_M_SLO_BREACHES, l, 1);
	}
	sl_log(alert ? SL_LOG_WARN : SL_LOG_INFO, "obs", alert ? "slo burning" : "slo recovered", "workflow", wf,
	       "objective", obj, "state", state, NULL);
}

static json_t *eval_objective(struct sl_server *s, const struct sl_workflow *w, enum objective o,
			      const struct sl_run_stats *st)
{
	double tgt = target(w, o);
	double b[W__COUNT];
	json_t *bj = json_object(), *sj = json_object();
	for (int i = 0; i < W__COUNT; i++) {
		double sli = indicator(o, &st[i]);
		b[i] = burn(o, tgt, sli);
		json_object_set_new(bj, windows[i].name, num_or_null(b[i]));
		json_object_set_new(sj, windows[i].name, num_or_null(sli));
		const char *l[] = {w->name, objective_names[o], windows[i].name};
		if (!isnan(b[i]))
			sl_metric_set(SL_M_SLO_BURN, l, isinf(b[i]) ? 1e9 : b[i]);
	}
	const char *state = "ok";
	if (isnan(b[W_5M]) && isnan(b[W_1H]) && isnan(b[W_6H]))
		state = "no_data";
	else if (b[W_1H] >= FAST_BURN && b[W_5M] >= FAST_BURN)
		state = "fast_burn";
	else if (b[W_6H] >= SLOW_BURN && b[W_30M] >= SLOW_BURN)
		state = "slow_burn";
	note_alert(s, w->name, objective_names[o], state);
	const char *la[] = {w->name, objective_names[o]};
	sl_metric_set(SL_M_SLO_ALERT, la, strcmp(state, "fast_burn") == 0 || strcmp(state, "slow_burn") == 0);
	double left = isnan(b[W_30D]) ? 1 : 1 - b[W_30D];
	json_t *r = json_pack("{s:s, s:f, s:s, s:o, s:o, s:o}", "objective", objective_names[o], "target", tgt, "state",
			      state, "burn_rate", bj, "indicator", sj, "budget_left", num_or_null(left < 0 ? 0 : left));
	if (o == O_LATENCY)
		json_object_set_new(r, "p95_ms", st[W_1H].p95_ms >= 0 ? json_integer(st[W_1H].p95_ms) : json_null());
	return r;
}

/* The ai steps that follow signals, and whether each is demoted now. */
static json_t *autonomy_json(const struct sl_workflow *w)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < w->nsteps; i++) {
		const struct sl_step *st = &w->steps[i];
		if (st->kind != SL_STEP_AI)
			continue;
		json_t *j = sl_signal_step_json(st, w->name);
		json_object_set_new(j, "step", json_string(st->id));
		json_array_append_new(arr, j);
	}
	return arr;
}

static json_t *eval_workflow(struct sl_server *s, const struct sl_workflow *w)
{
	struct sl_run_stats st[W__COUNT];
	int64_t now = sl_now_ms();
	int64_t slow = w->slo.p95_ms >= 0 ? (int64_t)w->slo.p95_ms : INT64_MAX / 4;
	for (int i = 0; i < W__COUNT; i++) {
		struct sl_err err;
		if (sl_store_run_stats(sl_engine_store(s->e), w->name, now - windows[i].ms, slow, &st[i], &err))
			return NULL;
	}
	json_t *objs = json_array();
	json_t *burning = json_array();
	for (int o = 0; o < O__COUNT; o++)
		if (target(w, (enum objective)o) >= 0) {
			json_t *r = eval_objective(s, w, (enum objective)o, st);
			const char *state = json_string_value(json_object_get(r, "state"));
			if (state && (strcmp(state, "fast_burn") == 0 || strcmp(state, "slow_burn") == 0))
				json_array_append(burning, r);
			json_array_append_new(objs, r);
		}
	srv_signal_set(s, SL_SIGNAL_SLO_BURN, w->name, NULL, json_array_size(burning) > 0, burning);
	json_decref(burning);
	return json_pack("{s:s, s:I, s:I, s:o, s:o}", "workflow", w->name, "runs_1h", (json_int_t)st[W_1H].runs,
			 "runs_30d", (json_int_t)st[W_30D].runs, "objectives", objs, "autonomy", autonomy_json(w));
}

static json_t *eval_all(struct sl_server *s)
{
	struct sl_project *p = sl_engine_project(s->e);
	json_t *arr = json_array();
	for (size_t i = 0; i < p->nworkflows; i++) {
		if (!p->workflows[i]->has_slo)
			continue;
		json_t *r = eval_workflow(s, p->workflows[i]);
		if (r)
			json_array_append_new(arr, r);
	}
	return arr;
}

void srv_collect_slo(struct sl_server *s)
{
	json_decref(eval_all(s));
	srv_collect_budget_signal(s); /* the other workflow-wide signal, on the same beat */
}

void srv_slo(struct sl_server *s, struct srv_req *r)
{
	srv_collect_budget_signal(s); /* so the autonomy shown is current */
	srv_reply_json(r, 200, json_pack("{s:o, s:{s:f, s:f}}", "workflows", eval_all(s), "alerts", "fast_burn",
					 FAST_BURN, "slow_burn", SLOW_BURN));
}
