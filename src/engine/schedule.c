/*
 * schedule.c: workflows with `trigger: {schedule: CRON}` (DESIGN.md §2).
 *
 * One thread per engine started with triggers on (serve, worker), active
 * only while its process holds the "scheduler" singleton (PostgreSQL: an
 * advisory lock, so among several processes one fires; SQLite: always).
 *
 * A slot fires once, even across restarts and processes: its run is created
 * under the idempotency key "WORKFLOW@SLOT" (scope "schedule"), and the last
 * fired slot is kept in the store's trigger state ("schedule:WORKFLOW"),
 * written after the runs. A crash between the two re-creates nothing: the
 * next tick finds the key taken. A schedule seen for the first time starts
 * from now (no past slots); after a downtime the `catch_up` policy decides:
 * none fires only a slot at most SCHED_GRACE_MS late, one fires the latest
 * missed slot, all fires every missed slot, oldest first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_int.h"
#include "obs/obs.h"

#define SCHED_SLEEP_MAX_MS 1000     /* a tick at least this often */
#define SCHED_SINGLETON_EVERY_MS 5000
#define SCHED_GRACE_MS 60000        /* catch_up none: a slot this late still counts as on time */
#define SCHED_FIRE_MAX 1000         /* catch_up all: slots fired per tick; the rest follow at once */
#define SCHED_COUNT_MAX 100000      /* missed slots counted at most (a year of minutes is 525,600) */
#define SCHED_RETRY_MS 5000         /* after a store error */

struct sched_entry {
	const struct sl_workflow *w; /* borrowed: the project's current version */
	char state_name[160];        /* "schedule:WORKFLOW" */
	int64_t next_due;            /* wall ms; 0: read the store's state first */
};

struct sched {
	struct sl_engine *e;
	struct sched_entry *v;
	size_t n;
};

static const char *catch_up_name(enum sl_catch_up c)
{
	return c == SL_CATCH_UP_ALL ? "all" : c == SL_CATCH_UP_NONE ? "none" : "one";
}

/* Starts the run of one slot. Returns 0 (started, or there already), or
 * the engine's code. */
static int fire(struct sl_engine *e, const struct sl_workflow *w, int64_t slot, int64_t missed)
{
	const struct sl_trigger *t = &w->trigger;
	char ts[32];
	sl_time_format(slot, ts);
	char *key = sl_asprintf("%s@%s", w->name, ts);
	json_t *input = json_pack("{s:s, s:I, s:s, s:s, s:I}", "slot", ts, "slot_ms", (json_int_t)slot, "schedule",
				  t->schedule, "timezone", t->timezone ? t->timezone : "UTC", "missed",
				  (json_int_t)missed);
	json_t *detail = json_pack("{s:{s:s, s:s, s:s}}", "schedule", "slot", ts, "expression", t->schedule,
				   "catch_up", catch_up_name(t->catch_up));
	struct sl_start st = {
		.workflow = w->name,
		.input = input,
		.idem_scope = "schedule",
		.idem_key = key,
		.idem_ttl_ms = -1, /* the stored last slot and this key: a slot never fires twice */
		.trigger = "schedule",
		.actor = {SL_ACTOR_SERVICE, "scheduler"},
		.audit_detail = detail,
	};
	char run_id[SL_ID_MAX] = "";
	bool existed = false;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_engine_start_run(e, &st, run_id, &existed, &err);
	const char *l[] = {w->name};
	if (rc) {
		sl_log(SL_LOG_ERROR, "scheduler", "schedule slot not started", "workflow", w->name, "slot", ts, "error",
		       err.msg, NULL);
	} else if (existed) {
		const char *d[] = {"schedule"};
		sl_metric_add(SL_M_DUPLICATES_SKIPPED, d, 1);
	} else {
		sl_metric_add(SL_M_SCHEDULE_FIRES, l, 1);
		sl_log(SL_LOG_INFO, "scheduler", "schedule slot fired", "workflow", w->name, "slot", ts, "run_id", run_id,
		       NULL);
	}
	json_decref(input);
	json_decref(detail);
	free(key);
	return rc;
}

static int put_last(struct sl_engine *e, struct sched_entry *en, int64_t last)
{
	char ts[32];
	sl_time_format(last, ts);
	json_t *st = json_pack("{s:I, s:s, s:s}", "last_slot_ms", (json_int_t)last, "last_slot", ts, "schedule",
			       en->w->trigger.schedule);
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_trigger_state_put(e->store, en->state_name, st, &err);
	json_decref(st);
	if (rc)
		sl_log(SL_LOG_WARN, "scheduler", "cannot store the last slot", "workflow", en->w->name, "error", err.msg,
		       NULL);
	return rc;
}

/* The last fired slot from the store: 0 and *last, or SL_ENOTFOUND, or a
 * store error. */
static int get_last(struct sl_engine *e, struct sched_entry *en, int64_t *last)
{
	json_t *st = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_trigger_state_get(e->store, en->state_name, &st, &err);
	if (rc == 0) {
		json_t *v = json_object_get(st, "last_slot_ms");
		rc = json_is_integer(v) ? 0 : SL_ENOTFOUND;
		*last = json_integer_value(v);
	} else if (rc != SL_ENOTFOUND) {
		sl_log(SL_LOG_WARN, "scheduler", "cannot read the last slot", "workflow", en->w->name, "error", err.msg,
		       NULL);
	}
	json_decref(st);
	return rc;
}

static bool store_trouble(int rc)
{
	return rc == SL_ESTORE || rc == SL_EBUSY || rc == SL_EIO;
}

/* Fires what is due for one schedule and sets en->next_due. */
static void tick(struct sl_engine *e, struct sched_entry *en, int64_t now)
{
	const struct sl_trigger *t = &en->w->trigger;
	int64_t last;
	int rc = get_last(e, en, &last);
	if (rc == SL_ENOTFOUND) { /* first sight: from now on, no past slots */
		en->next_due = put_last(e, en, now) ? now + SCHED_RETRY_MS : sl_cron_next(t->cron, t->tz, now);
		return;
	}
	if (rc) {
		en->next_due = now + SCHED_RETRY_MS;
		return;
	}
	static _Thread_local int64_t slots[SCHED_FIRE_MAX];
	size_t nslots = 0;
	int64_t count = 0, latest = -1;
	int64_t s = sl_cron_next(t->cron, t->tz, last);
	while (s >= 0 && s <= now && count < SCHED_COUNT_MAX) {
		if (t->catch_up == SL_CATCH_UP_ALL && nslots == SCHED_FIRE_MAX)
			break;
		if (t->catch_up == SL_CATCH_UP_ALL)
			slots[nslots++] = s;
		latest = s;
		count++;
		s = sl_cron_next(t->cron, t->tz, s);
	}
	if (count == 0) {
		en->next_due = s >= 0 ? s : INT64_MAX;
		return;
	}
	int64_t missed = 0;
	if (t->catch_up == SL_CATCH_UP_ALL) {
		for (size_t i = 0; i < nslots; i++) {
			rc = fire(e, en->w, slots[i], 0);
			if (rc && store_trouble(rc)) {
				if (i > 0)
					put_last(e, en, slots[i - 1]);
				en->next_due = now + SCHED_RETRY_MS;
				return;
			}
		}
	} else {
		bool on_time = t->catch_up == SL_CATCH_UP_ONE || now - latest <= SCHED_GRACE_MS;
		missed = on_time ? count - 1 : count;
		if (on_time) {
			rc = fire(e, en->w, latest, missed);
			if (rc && store_trouble(rc)) {
				en->next_due = now + SCHED_RETRY_MS;
				return;
			}
		}
	}
	if (missed) {
		const char *l[] = {en->w->name};
		sl_metric_add(SL_M_SCHEDULE_MISSES, l, (double)missed);
		char n[24];
		snprintf(n, sizeof n, "%lld", (long long)missed);
		sl_log(SL_LOG_WARN, "scheduler", "schedule slots missed while nothing ran", "workflow", en->w->name,
		       "missed", n, "catch_up", catch_up_name(t->catch_up), NULL);
	}
	if (put_last(e, en, latest)) {
		en->next_due = now + SCHED_RETRY_MS;
		return;
	}
	int64_t next = sl_cron_next(t->cron, t->tz, latest);
	en->next_due = next >= 0 ? next : INT64_MAX;
}

static void sched_sleep(struct sl_engine *e, int64_t ms)
{
	int64_t until = sl_mono_ms() + ms;
	struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000};
	pthread_mutex_lock(&e->mu);
	while (atomic_load(&e->running) && sl_mono_ms() < until)
		if (pthread_cond_timedwait(&e->sched_cv, &e->mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->mu);
}

static void *scheduler_main(void *arg)
{
	struct sched *sc = arg;
	struct sl_engine *e = sc->e;
	bool held = false;
	int64_t next_try = 0;
	while (atomic_load(&e->running)) {
		if (sl_mono_ms() >= next_try) {
			bool was = held;
			if (sl_store_try_singleton(e->store, "scheduler", &held))
				held = false;
			next_try = sl_mono_ms() + SCHED_SINGLETON_EVERY_MS;
			if (held != was)
				sl_log(SL_LOG_INFO, "scheduler", held ? "this process runs the schedules"
								       : "another process runs the schedules", NULL);
			if (!held) /* on taking over, read the state again: the other one moved it */
				for (size_t i = 0; i < sc->n; i++)
					sc->v[i].next_due = 0;
		}
		int64_t now = sl_now_ms();
		int64_t wait = SCHED_SLEEP_MAX_MS;
		for (size_t i = 0; held && i < sc->n && atomic_load(&e->running); i++) {
			struct sched_entry *en = &sc->v[i];
			if (now >= en->next_due)
				tick(e, en, now);
			if (en->next_due - now < wait)
				wait = en->next_due - now;
		}
		sched_sleep(e, wait < 10 ? 10 : wait);
	}
	return NULL;
}

int engine_scheduler_start(struct sl_engine *e)
{
	struct sl_project *p = e->project;
	struct sched *sc = sl_xcalloc(1, sizeof *sc);
	sc->e = e;
	sc->v = sl_xcalloc(p->nworkflows ? p->nworkflows : 1, sizeof *sc->v);
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		if (w->trigger.kind != SL_TRIGGER_SCHEDULE || !w->trigger.cron || sl_project_workflow(p, w->name) != w)
			continue;
		struct sched_entry *en = &sc->v[sc->n++];
		en->w = w;
		snprintf(en->state_name, sizeof en->state_name, "schedule:%s", w->name);
	}
	if (sc->n == 0 || pthread_create(&e->scheduler, NULL, scheduler_main, sc) != 0) {
		if (sc->n)
			sl_log(SL_LOG_ERROR, "scheduler", "cannot start the scheduler thread; schedules do not fire", NULL);
		free(sc->v);
		free(sc);
		return -1;
	}
	e->sched = sc;
	e->has_scheduler = true;
	return 0;
}

void engine_scheduler_stop(struct sl_engine *e)
{
	if (!e->has_scheduler)
		return;
	pthread_mutex_lock(&e->mu);
	pthread_cond_broadcast(&e->sched_cv);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->scheduler, NULL);
	struct sched *sc = e->sched;
	free(sc->v);
	free(sc);
	e->sched = NULL;
	e->has_scheduler = false;
}
