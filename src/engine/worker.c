/*
 * worker.c: one worker thread: claim, execute a step of every run in hand,
 * commit them together, repeat.
 */
#include "engine/engine_int.h"
#include "obs/obs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void slot_release(struct slot *s)
{
	sl_run_free(&s->run);
	if (s->wf)
		sl_workflow_unref(s->wf);
	memset(s, 0, sizeof *s);
}

/* Loads a claimed run and its definition. A run whose definition cannot be
 * had is left to its lease (and logged): nothing is lost. */
static int slot_load(struct sl_engine *e, struct slot *s)
{
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_run_load(e->store, s->task.run_id, &s->run, &err)) {
		sl_log(SL_LOG_ERROR, "engine", "cannot load run", "run_id", s->task.run_id, "error", err.msg, NULL);
		return -1;
	}
	s->wf = engine_definition(e, s->run.digest, &err);
	if (!s->wf) {
		sl_log(SL_LOG_ERROR, "engine", "cannot load the run's workflow version", "run_id", s->task.run_id,
		       "workflow", s->run.workflow, "error", err.msg, NULL);
		sl_run_free(&s->run);
		return -1;
	}
	return 0;
}

static size_t claim_more(struct sl_engine *e, struct engine_worker *w, struct slot *slots, size_t held)
{
	size_t room = (size_t)e->batch - held;
	if (room == 0)
		return held;
	struct sl_task tasks[256];
	if (room > SL_ARRAY_LEN(tasks))
		room = SL_ARRAY_LEN(tasks);
	size_t n = 0;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_claim(e->store, w->owner, e->lease_ms, room, tasks, &n, &err)) {
		sl_log(SL_LOG_WARN, "engine", "claim failed", "worker", w->owner, "error", err.msg, NULL);
		return held;
	}
	if (n)
		atomic_fetch_add(&e->stat_claims, 1);
	for (size_t i = 0; i < n; i++) {
		struct slot *s = &slots[held];
		memset(s, 0, sizeof *s);
		s->task = tasks[i];
		if (slot_load(e, s) != 0)
			continue;
		if (engine_park_if_paused(e, s))
			slot_release(s);
		else
			held++;
	}
	return held;
}

/* How long a worker whose claim came back empty waits when work is due
 * all the same: it belongs to tenants at their max_concurrency (or rows
 * another process holds), and claiming again at once would spin. */
#define BLOCKED_WAIT_MS 20

/* Sleeps until work may be due: the next timer, a wake-up from a new run,
 * or at most a second (another process may have added work). Called after
 * a claim that took nothing. */
static void idle_wait(struct sl_engine *e)
{
	int64_t next = sl_store_next_due(e->store);
	int64_t wait_ms = 1000;
	if (next != INT64_MAX) {
		int64_t d = next - sl_now_ms();
		wait_ms = d <= 0 ? BLOCKED_WAIT_MS : SL_MIN(d, 1000);
	}
	if (wait_ms <= 0)
		return;
	int64_t until = sl_mono_ms() + wait_ms;
	struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000};
	pthread_mutex_lock(&e->mu);
	uint64_t seq = e->wake_seq;
	while (seq == e->wake_seq && atomic_load(&e->running))
		if (pthread_cond_timedwait(&e->work_cv, &e->mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->mu);
}

/* Housekeeping, done by worker 0 at start and then every minute: DLQ
 * retention and expired idempotency records. With several processes on
 * one store (PostgreSQL), only the holder of the "housekeeping" singleton
 * does it; another takes over when that process dies. */
#define HOUSEKEEPING_EVERY_MS 60000

static void housekeeping(struct sl_engine *e, int64_t *next_ms)
{
	int64_t now = sl_now_ms();
	if (now < *next_ms)
		return;
	*next_ms = now + HOUSEKEEPING_EVERY_MS;
	/* Several processes on one store: one of them does it. */
	bool held = false;
	if (sl_store_try_singleton(e->store, "housekeeping", &held) || !held)
		return;
	struct sl_err err;
	sl_err_clear(&err);
	int64_t purged = 0;
	if (sl_store_dlq_purge(e->store, now - e->project->settings.dlq_retention_ms, &purged, &err) == 0 && purged) {
		char n[32];
		snprintf(n, sizeof n, "%lld", (long long)purged);
		sl_log(SL_LOG_INFO, "engine", "dead-letter entries past retention deleted", "entries", n, NULL);
	}
	sl_store_idem_purge(e->store, now, &purged, &err);
}

/* Keeps leases alive when a batch runs long (slow calls). */
static void renew_if_due(struct sl_engine *e, struct slot *slots, size_t held)
{
	int64_t now = sl_now_ms();
	bool due = false;
	for (size_t i = 0; i < held && !due; i++)
		due = slots[i].task.lease_until - now < e->lease_ms / 2;
	if (!due)
		return;
	struct sl_task tasks[256];
	bool lost[256];
	size_t n = SL_MIN(held, SL_ARRAY_LEN(tasks));
	for (size_t i = 0; i < n; i++)
		tasks[i] = slots[i].task;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_renew(e->store, tasks, n, e->lease_ms, lost, &err) == 0)
		for (size_t i = 0; i < n; i++)
			slots[i].task.lease_until = tasks[i].lease_until;
}

/* Commits the batch, retrying a failed transaction a few times: the step
 * results are in memory and the leases still ours. */
static int commit_batch(struct sl_engine *e, struct outcome *outs, size_t n, int *results)
{
	struct sl_commit commits[256];
	for (size_t i = 0; i < n; i++)
		commits[i] = outs[i].c;
	struct sl_err err;
	for (int tries = 0; tries < 5; tries++) {
		sl_err_clear(&err);
		if (sl_store_commit(e->store, commits, n, results, &err) == 0) {
			atomic_fetch_add(&e->stat_commits, 1);
			return 0;
		}
		sl_log(SL_LOG_WARN, "engine", "commit failed, retrying", "error", err.msg, NULL);
		struct timespec ts = {0, (long)(50 + tries * 100) * 1000000L};
		nanosleep(&ts, NULL);
	}
	sl_log(SL_LOG_ERROR, "engine", "commit failed; the runs will be re-run when their leases expire", "error",
	       err.msg, NULL);
	return -1;
}

/* A round executes steps until this much time is spent, then commits: fast
 * steps (map, emit) still share one commit, while results of slow calls are
 * never held back behind other slow calls. */
#define ROUND_BUDGET_US 5000

/* Folds one landed (or refused) outcome into its slot; returns whether the
 * worker keeps the run in hand. */
/* Approval metrics: created with the park, decided when the step read
 * the decision (a person's or a timeout's), escalated by a timeout. */
static void count_approvals(const char *wf, const struct outcome *o)
{
	const char *kind = o->apr_kind ? o->apr_kind : "";
	if (o->c.approval) {
		const char *l[] = {wf, kind};
		sl_metric_add(SL_M_APPROVALS_CREATED, l, 1);
	}
	if (o->apr_escalated) {
		const char *l[] = {kind};
		sl_metric_add(SL_M_APPROVAL_ESCALATIONS, l, 1);
	}
	if (!o->apr_decision || !o->c.approval_consumed) /* read, but the step is retried: counted when it settles */
		return;
	const char *d[] = {kind, o->apr_decision};
	sl_metric_add(SL_M_APPROVALS_DECIDED, d, 1);
	const char *w[] = {kind};
	sl_metric_observe(SL_M_APPROVAL_WAIT, w, o->apr_wait_s);
	if (strcmp(kind, "review") == 0) {
		const char *r[] = {wf, strcmp(o->apr_decision, "approved") == 0 ? "accepted"
				       : strcmp(o->apr_decision, "edited") == 0 ? "edited"
										  : "rejected"};
		sl_metric_add(SL_M_AI_REVIEWS, r, 1);
	}
}

/* Metrics of a commit that landed: only what is durable is counted. */
static void count_landed(const struct slot *s, const struct outcome *o)
{
	const char *wf = s->run.workflow;
	const struct sl_attempt_rec *a = o->c.attempt;
	if (a && o->kind && a->outcome && strcmp(a->outcome, "skipped") != 0) {
		const char *l[] = {wf, o->kind};
		sl_metric_observe(SL_M_STEP_DURATION, l, (double)a->duration_ms / 1000.0);
		if (strcmp(a->outcome, "error") == 0) {
			const char *f[] = {wf, sl_class_name(a->error_class)};
			sl_metric_add(SL_M_STEP_FAILURES, f, 1);
		}
	}
	if (o->c.dlq) {
		const char *d[] = {wf};
		sl_metric_add(SL_M_DEAD_LETTERS, d, 1);
	}
	for (size_t i = 0; i < o->nspawn; i++) {
		const char *sp[] = {o->spawn[i].workflow, "event"}; /* not the topic: labels stay few */
		sl_metric_add(SL_M_RUNS_STARTED, sp, 1);
	}
	count_approvals(wf, o);
	if (o->ends_run) {
		char version[16];
		snprintf(version, sizeof version, "%d", s->run.version);
		const char *r[] = {wf, version, sl_run_status_name(o->c.status)};
		sl_metric_add(SL_M_RUNS_FINISHED, r, 1);
	}
}

static bool settle(struct sl_engine *e, struct slot *s, struct outcome *o, bool landed, int result,
		   bool *any_done)
{
	if (!landed)
		return false;
	if (result == SL_EFENCED) {
		atomic_fetch_add(&e->stat_fenced, 1);
		sl_log(SL_LOG_WARN, "engine", "lease lost: the step's result was not committed", "run_id",
		       s->task.run_id, NULL);
		return false;
	}
	if (result != 0) {
		sl_log(SL_LOG_ERROR, "engine", "the store refused a commit; the run is left to its lease",
		       "run_id", s->task.run_id, "code", sl_code_name(result), NULL);
		return false;
	}
	if (o->c.step)
		atomic_fetch_add(&e->stat_steps, 1);
	count_landed(s, o);
	if (o->ends_run) {
		/* spans go out once, when the run is over: a run parked for a
		 * person (review) is sent with its approval wait when it ends */
		if (sl_run_status_terminal(o->c.status))
			sl_otlp_run_ended(e->otlp, s->task.run_id);
		atomic_fetch_add(&e->stat_runs_done, 1);
		*any_done = true;
	}
	if (o->nspawn)
		engine_wake(e);
	step_apply(s, o);
	if (o->c.next != SL_TASK_CONTINUE)
		return false;
	s->task.lease_until = sl_now_ms() + e->lease_ms;
	/* a kill switch may hold the run's next step (the caller drops it) */
	return !engine_park_if_paused(e, s);
}

static size_t run_round(struct sl_engine *e, struct slot *slots, size_t held, struct outcome *outs, int *results)
{
	int64_t t0 = sl_mono_us();
	size_t ran = 0;
	while (ran < held && (ran == 0 || sl_mono_us() - t0 < ROUND_BUDGET_US)) {
		renew_if_due(e, slots, held);
		step_execute(e, &slots[ran], &outs[ran]);
		ran++;
	}
	bool landed = commit_batch(e, outs, ran, results) == 0;
	bool any_done = false;
	/* The runs not reached this round go first next round (fairness), then
	 * the ones kept after their commit. */
	struct slot *order = sl_xcalloc(held, sizeof *order);
	size_t kept = 0;
	for (size_t i = ran; i < held; i++)
		order[kept++] = slots[i];
	for (size_t i = 0; i < ran; i++) {
		if (settle(e, &slots[i], &outs[i], landed, results[i], &any_done))
			order[kept++] = slots[i];
		else
			slot_release(&slots[i]);
		outcome_free(&outs[i]);
	}
	memcpy(slots, order, kept * sizeof *slots);
	free(order);
	if (any_done)
		engine_notify_done(e);
	return kept;
}

void *engine_worker_main(void *arg)
{
	struct engine_worker *w = arg;
	struct sl_engine *e = w->engine;
	size_t cap = (size_t)SL_MIN(e->batch, 256);
	e->batch = (int)cap;
	struct slot *slots = sl_xcalloc(cap, sizeof *slots);
	struct outcome *outs = sl_xcalloc(cap, sizeof *outs);
	int *results = sl_xcalloc(cap, sizeof *results);
	size_t held = 0;
	int64_t next_housekeeping = 0;

	while (atomic_load(&e->running) || held) {
		if (w->index == 0)
			housekeeping(e, &next_housekeeping);
		if (atomic_load(&e->running))
			held = claim_more(e, w, slots, held);
		if (held == 0) {
			if (!atomic_load(&e->running))
				break;
			idle_wait(e);
			continue;
		}
		held = run_round(e, slots, held, outs, results);
		if (!atomic_load(&e->running)) {
			/* Stopping: the steps in hand are committed; give the
			 * rest back so another process can go on at once. */
			struct sl_task tasks[256];
			for (size_t i = 0; i < held; i++) {
				tasks[i] = slots[i].task;
				slot_release(&slots[i]);
			}
			struct sl_err err;
			sl_err_clear(&err);
			if (held)
				sl_store_release(e->store, tasks, held, &err);
			held = 0;
		}
	}
	free(slots);
	free(outs);
	free(results);
	free(w);
	return NULL;
}
