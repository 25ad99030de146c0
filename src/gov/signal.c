/*
 * signal.c: the table of live signals (gov/signal.h). A few entries (one
 * per drifting step or burning workflow), so a flat array under a mutex.
 */
#include "gov/signal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gov/audit.h"
#include "obs/obs.h"

#define SIGNAL_KEY_MAX 256
#define SIGNALS_MAX 4096 /* far more than any project's ai steps and workflows */

struct signal_entry {
	enum sl_signal sig;
	char key[SIGNAL_KEY_MAX]; /* "WORKFLOW" or "WORKFLOW/STEP" */
};

static pthread_mutex_t signals_mu = PTHREAD_MUTEX_INITIALIZER;
static struct signal_entry signals[SIGNALS_MAX];
static size_t nsignals;

static void signal_key(char out[SIGNAL_KEY_MAX], const char *workflow, const char *step)
{
	snprintf(out, SIGNAL_KEY_MAX, "%s%s%s", workflow ? workflow : "", step ? "/" : "", step ? step : "");
}

static long find_locked(enum sl_signal sig, const char *key)
{
	for (size_t i = 0; i < nsignals; i++)
		if (signals[i].sig == sig && strcmp(signals[i].key, key) == 0)
			return (long)i;
	return -1;
}

/* Sets the entry; returns whether it changed. */
static bool put(enum sl_signal sig, const char *key, bool holds)
{
	pthread_mutex_lock(&signals_mu);
	long i = find_locked(sig, key);
	bool changed = (i >= 0) != holds;
	if (holds && i < 0 && nsignals < SIGNALS_MAX) {
		signals[nsignals].sig = sig;
		snprintf(signals[nsignals].key, SIGNAL_KEY_MAX, "%s", key);
		nsignals++;
	} else if (!holds && i >= 0) {
		signals[i] = signals[--nsignals];
	}
	pthread_mutex_unlock(&signals_mu);
	return changed;
}

bool sl_signal_holds(enum sl_signal sig, const char *workflow, const char *step)
{
	char k1[SIGNAL_KEY_MAX], k2[SIGNAL_KEY_MAX];
	signal_key(k1, workflow, NULL);
	signal_key(k2, workflow, step);
	pthread_mutex_lock(&signals_mu);
	bool h = find_locked(sig, k1) >= 0 || (step && find_locked(sig, k2) >= 0);
	pthread_mutex_unlock(&signals_mu);
	return h;
}

unsigned sl_signal_active(const struct sl_step *st, const char *workflow)
{
	unsigned active = 0;
	for (int sig = 0; sig < SL_SIGNAL__COUNT; sig++)
		if ((st->ai.demote_on & (1u << sig)) && sl_signal_holds((enum sl_signal)sig, workflow, st->id))
			active |= 1u << sig;
	return active;
}

enum sl_autonomy sl_step_autonomy(const struct sl_step *st, const char *workflow, unsigned *active)
{
	unsigned a = st->ai.demote_on ? sl_signal_active(st, workflow) : 0;
	if (active)
		*active = a;
	return a ? sl_autonomy_demote(st->ai.autonomy) : st->ai.autonomy;
}

static json_t *signal_list(unsigned bits)
{
	json_t *arr = json_array();
	for (int sig = 0; sig < SL_SIGNAL__COUNT; sig++)
		if (bits & (1u << sig))
			json_array_append_new(arr, json_string(sl_signal_name((enum sl_signal)sig)));
	return arr;
}

json_t *sl_signal_step_json(const struct sl_step *st, const char *workflow)
{
	unsigned active = 0;
	enum sl_autonomy now = sl_step_autonomy(st, workflow, &active);
	return json_pack("{s:b, s:s, s:s, s:o, s:o}", "demoted", now != st->ai.autonomy || active != 0, "autonomy",
			 sl_autonomy_name(st->ai.autonomy), "acts_as", sl_autonomy_name(now), "signals",
			 signal_list(active), "demote_on", signal_list(st->ai.demote_on));
}

/* One audit entry per step whose level moved: who moved it is the system,
 * why is the signal. */
static void audit_move(struct sl_store *store, const struct sl_workflow *w, const struct sl_step *st,
		       enum sl_signal sig, bool holds, const json_t *detail)
{
	char agent[SIGNAL_KEY_MAX];
	signal_key(agent, w->name, st->id);
	enum sl_autonomy now = sl_step_autonomy(st, w->name, NULL);
	json_t *d = json_pack("{s:s, s:s, s:s, s:b}", "signal", sl_signal_name(sig), "autonomy",
			      sl_autonomy_name(st->ai.autonomy), "acts_as", sl_autonomy_name(now), "holds", holds);
	if (detail)
		json_object_set(d, "evidence", (json_t *)detail);
	struct sl_audit_entry ae = {
		.actor = {SL_ACTOR_SYSTEM, "signals"},
		.action = holds ? "autonomy.demote" : "autonomy.promote",
		.target = {"agent", agent},
		.step_id = st->id,
		.detail = d,
	};
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_audit_append(store, &ae, NULL, &err))
		sl_log(SL_LOG_ERROR, "gov", "could not audit an autonomy change", "agent", agent, "error", err.msg,
		       NULL);
	sl_log(SL_LOG_WARN, "gov", holds ? "ai step demoted" : "ai step promoted back", "agent", agent, "signal",
	       sl_signal_name(sig), "acts_as", sl_autonomy_name(now), NULL);
	json_decref(d);
}

bool sl_signal_set(struct sl_store *store, const struct sl_project *p, enum sl_signal sig, const char *workflow,
		   const char *step, bool holds, const json_t *detail)
{
	char key[SIGNAL_KEY_MAX];
	signal_key(key, workflow, step);
	/* the levels before the change, so only real moves are audited */
	enum sl_autonomy before[64];
	const struct sl_workflow *w = p ? sl_project_workflow(p, workflow) : NULL;
	size_t n = w ? w->nsteps : 0;
	for (size_t i = 0; i < n && i < 64; i++)
		before[i] = w->steps[i].kind == SL_STEP_AI ? sl_step_autonomy(&w->steps[i], w->name, NULL) : 0;
	if (!put(sig, key, holds))
		return false;
	for (size_t i = 0; i < n && i < 64; i++) {
		const struct sl_step *st = &w->steps[i];
		if (st->kind != SL_STEP_AI || !(st->ai.demote_on & (1u << sig)) || (step && strcmp(step, st->id)))
			continue;
		const char *ml[] = {w->name, st->id};
		sl_metric_set(SL_M_AUTONOMY_DEMOTED, ml, sl_signal_active(st, w->name) ? 1 : 0);
		if (sl_step_autonomy(st, w->name, NULL) != before[i] && store)
			audit_move(store, w, st, sig, holds, detail);
	}
	return true;
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

json_t *sl_signal_snapshot(void)
{
	char *keys[SIGNALS_MAX];
	size_t n = 0;
	pthread_mutex_lock(&signals_mu);
	for (size_t i = 0; i < nsignals; i++)
		keys[n++] = sl_asprintf("%s:%s", sl_signal_name(signals[i].sig), signals[i].key);
	pthread_mutex_unlock(&signals_mu);
	qsort(keys, n, sizeof *keys, by_str);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, json_string(keys[i]));
		free(keys[i]);
	}
	return json_pack("{s:o}", "signals", arr);
}

void sl_signal_mirror(const struct sl_project *p, const json_t *snapshot)
{
	struct signal_entry next[SIGNALS_MAX];
	size_t n = 0, i;
	const json_t *v;
	json_array_foreach(json_object_get(snapshot, "signals"), i, v) {
		const char *s = json_string_value(v);
		const char *colon = s ? strchr(s, ':') : NULL;
		if (!colon || n == SIGNALS_MAX)
			continue;
		for (int sig = 0; sig < SL_SIGNAL__COUNT; sig++)
			if (strlen(sl_signal_name((enum sl_signal)sig)) == (size_t)(colon - s) &&
			    strncmp(s, sl_signal_name((enum sl_signal)sig), (size_t)(colon - s)) == 0) {
				next[n].sig = (enum sl_signal)sig;
				snprintf(next[n].key, SIGNAL_KEY_MAX, "%s", colon + 1);
				n++;
			}
	}
	pthread_mutex_lock(&signals_mu);
	memcpy(signals, next, n * sizeof *next);
	nsignals = n;
	pthread_mutex_unlock(&signals_mu);
	for (size_t w = 0; p && w < p->nworkflows; w++)
		for (size_t j = 0; j < p->workflows[w]->nsteps; j++) {
			const struct sl_step *st = &p->workflows[w]->steps[j];
			if (st->kind != SL_STEP_AI || !st->ai.demote_on)
				continue;
			const char *ml[] = {p->workflows[w]->name, st->id};
			sl_metric_set(SL_M_AUTONOMY_DEMOTED, ml, sl_signal_active(st, p->workflows[w]->name) ? 1 : 0);
		}
}

void sl_signal_reset(void)
{
	pthread_mutex_lock(&signals_mu);
	nsignals = 0;
	pthread_mutex_unlock(&signals_mu);
}
