/*
 * drift.c: `GET /v1/drift` and the drift gauges. For every ai step of every
 * loaded workflow, its newest `recent` outputs are compared with the
 * `baseline` outputs before them (sl_drift_compare). Windows are counts of
 * outputs, not times, so a quiet workflow is judged on as much evidence as
 * a busy one. A step that starts or stops drifting is logged once.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gov/signal.h"
#include "obs/obs.h"
#include "server/server_int.h"
#include "store/store.h"

#define DRIFT_RECENT 100
#define DRIFT_BASELINE 500
#define DRIFT_THRESHOLD 0.25
#define DRIFT_MIN 30

struct drift_params {
	size_t recent, baseline, min_n;
	double threshold;
};

static const struct drift_params drift_defaults = {DRIFT_RECENT, DRIFT_BASELINE, DRIFT_MIN, DRIFT_THRESHOLD};

/* Logs a step whose state changed since the last evaluation, and tells
 * the signal table (a step with demote_on: [drift] acts one level lower). */
static void note_state(struct sl_server *s, const struct sl_workflow *w, const struct sl_step *st, const char *key,
		       bool drifted, const json_t *res)
{
	srv_signal_set(s, SL_SIGNAL_DRIFT, w->name, st->id, drifted, res);
	pthread_mutex_lock(&s->drift_mu);
	if (!s->drift_state)
		s->drift_state = json_object();
	bool was = json_is_true(json_object_get(s->drift_state, key));
	json_object_set_new(s->drift_state, key, json_boolean(drifted));
	pthread_mutex_unlock(&s->drift_mu);
	if (was == drifted)
		return;
	char *psi = json_dumps(json_object_get(res, "psi"), JSON_COMPACT | SL_JSON_REAL);
	sl_log(drifted ? SL_LOG_WARN : SL_LOG_INFO, "obs", drifted ? "ai step drifted" : "ai step drift cleared", "step",
	       key, "signal", json_string_value(json_object_get(res, "signal")), "psi", psi, NULL);
	free(psi);
}

static json_t *eval_step(struct sl_server *s, const struct sl_workflow *w, const struct sl_step *st,
			 const struct drift_params *dp)
{
	struct sl_store *store = sl_engine_store(s->e);
	json_t *recent = NULL, *base = NULL;
	struct sl_err err;
	if (sl_store_step_outputs(store, w->name, st->id, 0, dp->recent, &recent, &err) ||
	    sl_store_step_outputs(store, w->name, st->id, dp->recent, dp->baseline, &base, &err)) {
		json_decref(recent);
		return NULL;
	}
	json_t *res = sl_drift_compare(recent, base, dp->threshold, dp->min_n);
	json_decref(recent);
	json_decref(base);
	json_object_set_new(res, "workflow", json_string(w->name));
	json_object_set_new(res, "step", json_string(st->id));
	json_object_set_new(res, "task", json_string(sl_ai_task_name(st->ai.task)));
	json_object_set_new(res, "route", json_string(st->ai.route ? st->ai.route : ""));
	char key[256];
	snprintf(key, sizeof key, "%s/%s", w->name, st->id);
	note_state(s, w, st, key, json_is_true(json_object_get(res, "drifted")), res);
	json_t *auto_json = sl_signal_step_json(st, w->name);
	json_object_set(res, "demoted", json_object_get(auto_json, "demoted"));
	json_object_set_new(res, "autonomy", auto_json);
	const char *l[] = {w->name, st->id, NULL};
	sl_metric_set(SL_M_AI_DRIFTED, l, json_is_true(json_object_get(res, "drifted")) ? 1 : 0);
	const char *sig;
	json_t *v;
	json_object_foreach(json_object_get(res, "psi"), sig, v)
	{
		const char *ls[] = {w->name, st->id, sig};
		if (json_is_number(v))
			sl_metric_set(SL_M_AI_DRIFT_PSI, ls, json_number_value(v));
	}
	return res;
}

static json_t *eval_all(struct sl_server *s, const struct drift_params *dp)
{
	struct sl_project *p = sl_engine_project(s->e);
	json_t *arr = json_array();
	for (size_t i = 0; i < p->nworkflows; i++)
		for (size_t j = 0; j < p->workflows[i]->nsteps; j++) {
			const struct sl_step *st = &p->workflows[i]->steps[j];
			if (st->kind != SL_STEP_AI)
				continue;
			json_t *r = eval_step(s, p->workflows[i], st, dp);
			if (r)
				json_array_append_new(arr, r);
		}
	return arr;
}

void srv_collect_drift(struct sl_server *s)
{
	json_decref(eval_all(s, &drift_defaults));
}

static int query_size(struct srv_req *r, const char *name, size_t lo, size_t hi, size_t *out)
{
	const char *v = srv_query(r, name);
	int64_t n;
	if (!v)
		return 0;
	if (sl_parse_i64(v, &n) || n < (int64_t)lo || n > (int64_t)hi) {
		char *d = sl_asprintf("%s must be a number from %zu to %zu", name, lo, hi);
		srv_problem(r, 400, d);
		free(d);
		return -1;
	}
	*out = (size_t)n;
	return 0;
}

void srv_drift(struct sl_server *s, struct srv_req *r)
{
	struct drift_params dp = drift_defaults;
	if (query_size(r, "recent", 1, 100000, &dp.recent) || query_size(r, "baseline", 1, 100000, &dp.baseline) ||
	    query_size(r, "min", 1, 100000, &dp.min_n))
		return;
	const char *t = srv_query(r, "threshold");
	if (t) {
		char *end = NULL;
		dp.threshold = strtod(t, &end);
		if (!end || *end || !(dp.threshold > 0 && dp.threshold < 100)) {
			srv_problem(r, 400, "threshold must be a number above 0");
			return;
		}
	}
	json_t *steps = eval_all(s, &dp);
	srv_reply_json(r, 200,
		       json_pack("{s:o, s:{s:I, s:I, s:I, s:f}}", "steps", steps, "params", "recent", (json_int_t)dp.recent,
				 "baseline", (json_int_t)dp.baseline, "min", (json_int_t)dp.min_n, "threshold",
				 dp.threshold));
}
