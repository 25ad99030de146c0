/*
 * pause.c: kill switches in the engine.
 *
 * Before a step runs, its run is checked against the pauses: its workflow,
 * the connector a call step (or a compensation) would call, the providers
 * an ai step's route may call. The check reads a cached copy of the store's
 * pauses, reloaded at most every PAUSE_REFRESH_MS; with no pause at all it
 * is one atomic load, so steps/s does not move (bench/run.sh, before and
 * after, in docs/internals/engine.md).
 *
 * A held run is parked, not failed: its task gives its lease back, is due
 * again after PAUSE_RECHECK_MS and carries the pause's key, so a resume
 * (sl_store_pause_set) makes it due at once. Nothing about the run changes:
 * it goes on from the step it stopped at.
 */
#include "engine/engine_int.h"
#include "gov/auth.h"
#include "obs/obs.h"

#include <stdio.h>
#include <string.h>

#define PAUSE_REFRESH_MS 250
/* how long a parked run sleeps when no resume wakes it (a resume seen late
 * by a process whose cache was stale) */
#define PAUSE_RECHECK_MS 5000

static void pauses_load(struct sl_engine *e)
{
	json_t *doc = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_pause_list(e->store, &doc, &err)) {
		sl_log(SL_LOG_WARN, "engine", "cannot read the pauses; keeping the last known", "error", err.msg, NULL);
		return;
	}
	json_t *set = json_object();
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(doc, "pauses"), i, p)
	{
		char key[512];
		snprintf(key, sizeof key, "%s:%s", json_string_value(json_object_get(p, "kind")),
			 json_string_value(json_object_get(p, "name")));
		json_object_set_new(set, key, json_true());
	}
	json_decref(doc);
	pthread_mutex_lock(&e->pause_mu);
	json_decref(e->pauses);
	e->pauses = set;
	atomic_store(&e->npauses, (int)json_object_size(set));
	pthread_mutex_unlock(&e->pause_mu);
}

/* Reloads when the copy is older than max_age_ms. Concurrent callers do not
 * queue: one loads, the others use what is there. */
static void pauses_refresh(struct sl_engine *e, int64_t max_age_ms)
{
	int64_t now = sl_mono_ms();
	int64_t at = atomic_load(&e->pauses_at);
	if (at && now - at < max_age_ms)
		return;
	if (!atomic_compare_exchange_strong(&e->pauses_at, &at, now))
		return;
	pauses_load(e);
}

void engine_pauses_free(struct sl_engine *e)
{
	json_decref(e->pauses);
	e->pauses = NULL;
	pthread_mutex_destroy(&e->pause_mu);
}

static bool held(struct sl_engine *e, enum sl_pause_kind k, const char *name, char *key, size_t n)
{
	if (!name)
		return false;
	sl_pause_key(k, name, key, n);
	return json_object_get(e->pauses, key) != NULL;
}

/* The providers a route may call. */
static bool provider_held(struct sl_engine *e, const char *route, char *key, size_t n)
{
	const char *k;
	json_t *v;
	json_object_foreach(e->pauses, k, v)
	{
		if (strncmp(k, "provider:", 9) == 0 && sl_ai_route_uses_provider(e->project->ai, route, k + 9)) {
			snprintf(key, n, "%s", k);
			return true;
		}
	}
	return false;
}

/* Under pause_mu: the key of the pause holding the slot's next step, or
 * false. A compensation may undo any completed step up to the cursor. */
static bool find_hold(struct sl_engine *e, const struct slot *s, char *key, size_t n)
{
	if (held(e, SL_PAUSE_WORKFLOW, s->run.workflow, key, n))
		return true;
	const struct sl_workflow *w = s->wf;
	if (s->run.cursor < 0 || (size_t)s->run.cursor >= w->nsteps)
		return false;
	if (s->run.phase == SL_PHASE_COMPENSATE) {
		for (int i = s->run.cursor; i >= 0; i--)
			if (w->steps[i].comp_connector &&
			    held(e, SL_PAUSE_CONNECTOR, w->steps[i].comp_connector->name, key, n))
				return true;
		return false;
	}
	const struct sl_step *st = &w->steps[s->run.cursor];
	if (st->kind == SL_STEP_CALL && st->connector)
		return held(e, SL_PAUSE_CONNECTOR, st->connector->name, key, n);
	if (st->kind == SL_STEP_AI)
		return provider_held(e, st->ai.route, key, n);
	return false;
}

static bool check_hold(struct sl_engine *e, const struct slot *s, char *key, size_t n)
{
	if (atomic_load(&e->npauses) == 0)
		return false;
	pthread_mutex_lock(&e->pause_mu);
	bool h = find_hold(e, s, key, n);
	pthread_mutex_unlock(&e->pause_mu);
	return h;
}

bool engine_park_if_paused(struct sl_engine *e, struct slot *s)
{
	pauses_refresh(e, PAUSE_REFRESH_MS);
	if (sl_run_status_terminal(s->run.status))
		return false;
	char key[512];
	if (!check_hold(e, s, key, sizeof key))
		return false;
	/* Parking is rare: make sure the pause still holds (a resume another
	 * process made may be newer than this copy) before sleeping on it. */
	pauses_refresh(e, 20);
	if (!check_hold(e, s, key, sizeof key))
		return false;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_task_park(e->store, &s->task, key, sl_now_ms() + PAUSE_RECHECK_MS, &err);
	if (rc && rc != SL_EFENCED)
		sl_log(SL_LOG_WARN, "engine", "cannot park a paused run; it is left to its lease", "run_id",
		       s->task.run_id, "error", err.msg, NULL);
	else if (!rc)
		sl_log(SL_LOG_INFO, "engine", "run held by a kill switch", "run_id", s->task.run_id, "pause", key, NULL);
	return true;
}

bool sl_engine_run_held(struct sl_engine *e, const json_t *run_doc, char *key, size_t n)
{
	int st = sl_run_status_parse(json_string_value(json_object_get(run_doc, "status")));
	const char *wf = json_string_value(json_object_get(run_doc, "workflow"));
	if (st < 0 || sl_run_status_terminal((enum sl_run_status)st) || !wf)
		return false;
	pauses_refresh(e, PAUSE_REFRESH_MS);
	if (atomic_load(&e->npauses) == 0)
		return false;
	struct slot s = {0};
	s.run.workflow = (char *)wf; /* borrowed for the look only */
	s.run.status = (enum sl_run_status)st;
	s.run.cursor = (int)json_integer_value(json_object_get(run_doc, "cursor"));
	const char *phase = json_string_value(json_object_get(run_doc, "phase"));
	s.run.phase = phase && strcmp(phase, "compensate") == 0 ? SL_PHASE_COMPENSATE : SL_PHASE_FORWARD;
	s.wf = sl_project_workflow(e->project, wf); /* the newest version: close enough to say why */
	pthread_mutex_lock(&e->pause_mu);
	bool h = s.wf ? find_hold(e, &s, key, n) : held(e, SL_PAUSE_WORKFLOW, wf, key, n);
	pthread_mutex_unlock(&e->pause_mu);
	return h;
}

bool sl_engine_route_paused(struct sl_engine *e, const char *route, char *key, size_t n)
{
	pauses_refresh(e, PAUSE_REFRESH_MS);
	if (atomic_load(&e->npauses) == 0)
		return false;
	pthread_mutex_lock(&e->pause_mu);
	bool h = provider_held(e, route, key, n);
	pthread_mutex_unlock(&e->pause_mu);
	return h;
}

int sl_engine_pause(struct sl_engine *e, const char *kind, const char *name, bool paused,
		    const struct sl_audit_actor *actor, const char *tenant, bool *changed, struct sl_err *err)
{
	struct sl_audit_entry ae = {
		.tenant = tenant,
		.actor = actor ? *actor : (struct sl_audit_actor){SL_ACTOR_SYSTEM, NULL},
		.action = paused ? "pause" : "resume",
		.target = {kind, name},
	};
	json_t *audit = sl_audit_entry_json(&ae);
	char by[256];
	snprintf(by, sizeof by, "%s:%s", sl_actor_kind_name(ae.actor.kind), ae.actor.id ? ae.actor.id : "sluice");
	bool ch = false;
	int rc = sl_store_pause_set(e->store, kind, name, paused, by, audit, &ch, err);
	json_decref(audit);
	if (changed)
		*changed = ch;
	if (rc)
		return rc;
	atomic_store(&e->pauses_at, 0);
	pauses_refresh(e, 0);
	if (!paused && ch)
		engine_wake(e);
	return 0;
}
