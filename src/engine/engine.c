/*
 * engine.c: the engine's life cycle, run starts, waiting and the worker loop.
 * What one step does is in step.c; both share engine_int.h.
 */
#include "engine/engine_int.h"
#include "obs/obs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- backoff ----------------------------------------------------------------- */

int64_t sl_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, int64_t retry_after_ms)
{
	if (attempt < 1)
		attempt = 1;
	if (base_ms < 1)
		base_ms = 1;
	if (max_ms < base_ms)
		max_ms = base_ms;
	int64_t cap = base_ms;
	for (int i = 1; i < attempt && cap < max_ms; i++)
		cap *= 2;
	if (cap > max_ms)
		cap = max_ms;
	int64_t delay = (int64_t)sl_random_below((uint64_t)cap + 1);
	if (retry_after_ms >= 0 && delay < retry_after_ms)
		delay = retry_after_ms;
	return delay;
}

/* ---- definitions: a run finishes on the version it started with --------------- */

static void defs_add_locked(struct sl_engine *e, struct sl_workflow *w)
{
	if (e->ndefs == e->capdefs) {
		e->capdefs = e->capdefs ? e->capdefs * 2 : 16;
		e->defs = sl_xrealloc(e->defs, e->capdefs * sizeof *e->defs);
	}
	sl_workflow_ref(w);
	e->defs[e->ndefs++] = w;
}

static struct sl_workflow *defs_find_locked(struct sl_engine *e, const char *digest)
{
	for (size_t i = 0; i < e->ndefs; i++)
		if (strcmp(e->defs[i]->digest, digest) == 0)
			return e->defs[i];
	return NULL;
}

struct sl_workflow *engine_definition(struct sl_engine *e, const char *digest, struct sl_err *err)
{
	pthread_mutex_lock(&e->defs_mu);
	struct sl_workflow *w = defs_find_locked(e, digest);
	if (w) {
		sl_workflow_ref(w);
		pthread_mutex_unlock(&e->defs_mu);
		return w;
	}
	pthread_mutex_unlock(&e->defs_mu);

	/* Not a version this process loaded: compile the stored source. */
	char *file = NULL, *source = NULL;
	if (sl_store_def_get(e->store, digest, &file, &source, err))
		return NULL;
	struct sl_diags diags = {0};
	w = sl_workflow_compile(e->project, file, source, &diags);
	if (!w) {
		sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "stored definition %s (%s) no longer compiles: %s:%d:%d: %s",
			   digest, file, diags.n ? diags.v[0].file : file, diags.n ? diags.v[0].line : 0,
			   diags.n ? diags.v[0].col : 0, diags.n ? diags.v[0].msg : "unknown error");
		sl_diags_free(&diags);
		free(file);
		free(source);
		return NULL;
	}
	sl_diags_free(&diags);
	free(file);
	free(source);
	pthread_mutex_lock(&e->defs_mu);
	struct sl_workflow *again = defs_find_locked(e, digest);
	if (again) { /* another thread compiled it meanwhile */
		sl_workflow_unref(w);
		w = again;
	} else {
		defs_add_locked(e, w);
		sl_workflow_unref(w);
	}
	sl_workflow_ref(w);
	pthread_mutex_unlock(&e->defs_mu);
	return w;
}

/* ---- life cycle ---------------------------------------------------------------- */

int sl_engine_new(struct sl_project *p, struct sl_store *s, const struct sl_engine_opts *o,
		  struct sl_engine **out, struct sl_err *err)
{
	struct sl_engine *e = sl_xcalloc(1, sizeof *e);
	e->project = p;
	e->store = s;
	e->workers = o && o->workers > 0 ? o->workers : p->settings.workers;
	e->batch = o && o->batch > 0 ? o->batch : p->settings.batch;
	e->lease_ms = o && o->lease_ms > 0 ? o->lease_ms : p->settings.lease_ms;
	if (e->workers < 1)
		e->workers = 1;
	if (e->workers > 64)
		e->workers = 64;
	if (e->batch < 1)
		e->batch = 1;
	if (e->lease_ms < 1000)
		e->lease_ms = 1000;
	if (o && o->owner) {
		snprintf(e->owner, sizeof e->owner, "%s", o->owner);
	} else {
		char host[64] = "host";
		gethostname(host, sizeof host - 1);
		snprintf(e->owner, sizeof e->owner, "%s:%d", host, (int)getpid());
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_mutex_init(&e->defs_mu, NULL);
	pthread_mutex_init(&e->pause_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->work_cv, &ca);
	pthread_cond_init(&e->done_cv, &ca);
	pthread_cond_init(&e->sched_cv, &ca);
	pthread_condattr_destroy(&ca);
	e->triggers = o && o->triggers;
	e->mirror_signals = o && o->mirror_signals;

	/* Claims follow sluice.yaml's tenant shares (fair claiming). */
	struct sl_tenant_share *sh = sl_xcalloc(p->settings.ntenants + 1, sizeof *sh);
	for (size_t i = 0; i < p->settings.ntenants; i++)
		sh[i] = (struct sl_tenant_share){p->settings.tenants[i].name, p->settings.tenants[i].weight,
						 p->settings.tenants[i].max_concurrency};
	int src = sl_store_set_tenants(s, sh, p->settings.ntenants, err);
	free(sh);
	if (src) {
		sl_engine_free(e);
		return src;
	}

	/* Record every loaded definition, so runs can be resumed on it later. */
	for (size_t i = 0; i < p->nworkflows; i++) {
		struct sl_workflow *w = p->workflows[i];
		if (sl_store_def_put(s, w->digest, w->name, w->version, w->file, w->source, err)) {
			sl_engine_free(e);
			return err ? err->code : SL_ESTORE;
		}
		defs_add_locked(e, w);
	}
	*out = e;
	return 0;
}

/* Whether a lease owner ("HOST:PID/wN") is a process of this host that no
 * longer exists. Only then may its leases be released early; anything else
 * (another host, a live or reused pid) waits for the lease to expire. */
static bool owner_is_dead_local(const char *owner, const char *host)
{
	size_t hl = strlen(host);
	if (strncmp(owner, host, hl) != 0 || owner[hl] != ':')
		return false;
	char *end = NULL;
	long pid = strtol(owner + hl + 1, &end, 10);
	if (pid <= 0 || end == owner + hl + 1 || *end != '/' || pid == (long)getpid())
		return false;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* After a crash on one machine, the dead process's leases would hold its
 * runs until they expire; release them at once (fencing still refuses any
 * late commit of the dead owner). */
static void release_dead_local_leases(struct sl_engine *e)
{
	char host[64] = "host";
	gethostname(host, sizeof host - 1);
	json_t *owners = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_lease_owners(e->store, &owners, &err))
		return;
	const char *owner;
	json_t *count;
	json_object_foreach(owners, owner, count) {
		int64_t n = 0;
		if (!owner_is_dead_local(owner, host) || sl_store_release_owner(e->store, owner, &n, &err))
			continue;
		char buf[32];
		snprintf(buf, sizeof buf, "%lld", (long long)n);
		sl_log(SL_LOG_INFO, "engine", "released the leases of a process that is gone", "owner", owner,
		       "tasks", buf, NULL);
	}
	json_decref(owners);
}

struct seed_ctx {
	struct sl_engine *e;
	struct seed_item {
		char scope[16], name[128];
		int64_t since;
	} items[64];
	size_t n;
};

static void seed_collect(const struct sl_ai_budget_state *b, void *ud)
{
	struct seed_ctx *c = ud;
	if (c->n == SL_ARRAY_LEN(c->items))
		return;
	struct seed_item *it = &c->items[c->n++];
	snprintf(it->scope, sizeof it->scope, "%s", b->scope);
	snprintf(it->name, sizeof it->name, "%s", b->name);
	it->since = b->period_start_ms;
}

/* Budgets hold across restarts: what the store says was spent this period
 * counts against them from the start. */
static void seed_budgets(struct sl_engine *e)
{
	struct sl_ai *ai = e->project->ai;
	if (!ai)
		return;
	struct seed_ctx c = {.e = e};
	sl_ai_budgets(ai, seed_collect, &c);
	for (size_t i = 0; i < c.n; i++) {
		double usd = 0;
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_store_ai_spent(e->store, c.items[i].scope, c.items[i].name, c.items[i].since, &usd, &err) == 0)
			sl_ai_budget_seed(ai, c.items[i].scope, c.items[i].name, usd);
		else
			sl_log(SL_LOG_WARN, "engine", "cannot read AI spend for a budget", "budget", c.items[i].name, "error",
			       err.msg, NULL);
	}
}

/* The exporter reads an ended run from the store (its own thread). */
static json_t *load_run(void *ud, const char *run_id)
{
	struct sl_engine *e = ud;
	json_t *doc = NULL;
	struct sl_err err;
	return sl_store_run_get(e->store, run_id, &doc, &err) == 0 ? doc : NULL;
}

/* Work made due by another process (a run created by the server, a retry
 * timer rescheduled by another worker) wakes this one's idle workers at
 * once instead of at their next poll. Only for stores that can notify. */
#define LISTEN_SLICE_MS 500

static void *listener_main(void *arg)
{
	struct sl_engine *e = arg;
	while (atomic_load(&e->running))
		if (sl_store_wait(e->store, LISTEN_SLICE_MS) == 1)
			engine_wake(e);
	return NULL;
}

int sl_engine_start(struct sl_engine *e, struct sl_err *err)
{
	if (e->started)
		return 0;
	release_dead_local_leases(e);
	seed_budgets(e);
	const char *otlp = e->project->settings.otlp_endpoint;
	if (otlp && !(e->otlp = sl_otlp_start(otlp, 0, load_run, e)))
		sl_log(SL_LOG_WARN, "engine", "cannot start the OTLP exporter; spans are not exported", NULL);
	e->threads = sl_xcalloc((size_t)e->workers, sizeof *e->threads);
	atomic_store(&e->running, true);
	for (int i = 0; i < e->workers; i++) {
		struct engine_worker *w = sl_xcalloc(1, sizeof *w);
		w->engine = e;
		w->index = i;
		snprintf(w->owner, sizeof w->owner, "%s/w%d", e->owner, i);
		int rc = pthread_create(&e->threads[i], NULL, engine_worker_main, w);
		if (rc) {
			free(w);
			e->nthreads = i;
			sl_engine_stop(e);
			return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "cannot start a worker thread: %s", strerror(rc));
		}
		e->nthreads = i + 1;
	}
	if (sl_store_can_wait(e->store))
		e->has_listener = pthread_create(&e->listener, NULL, listener_main, e) == 0;
	if (e->triggers) {
		engine_scheduler_start(e);
		engine_poller_start(e);
	}
	e->started = true;
	return 0;
}

void sl_engine_stop(struct sl_engine *e)
{
	if (e)
		sl_engine_streams_stop(e); /* first: no new runs while the workers wind down */
	if (!e || !e->threads)
		return;
	pthread_mutex_lock(&e->mu);
	atomic_store(&e->running, false);
	pthread_cond_broadcast(&e->work_cv);
	pthread_cond_broadcast(&e->done_cv);
	pthread_mutex_unlock(&e->mu);
	engine_scheduler_stop(e);
	engine_poller_stop(e);
	for (int i = 0; i < e->nthreads; i++)
		pthread_join(e->threads[i], NULL);
	sl_otlp_stop(e->otlp); /* after the workers: nothing is queued any more */
	e->otlp = NULL;
	if (e->has_listener)
		pthread_join(e->listener, NULL);
	e->has_listener = false;
	free(e->threads);
	e->threads = NULL;
	e->nthreads = 0;
	e->started = false;
}

void sl_engine_free(struct sl_engine *e)
{
	if (!e)
		return;
	sl_engine_stop(e);
	for (size_t i = 0; i < e->ndefs; i++)
		sl_workflow_unref(e->defs[i]);
	free(e->defs);
	pthread_mutex_destroy(&e->mu);
	pthread_mutex_destroy(&e->defs_mu);
	engine_pauses_free(e);
	pthread_cond_destroy(&e->work_cv);
	pthread_cond_destroy(&e->done_cv);
	pthread_cond_destroy(&e->sched_cv);
	free(e);
}

void engine_wake(struct sl_engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->wake_seq++;
	pthread_cond_broadcast(&e->work_cv);
	pthread_mutex_unlock(&e->mu);
}

void engine_notify_done(struct sl_engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->done_seq++;
	pthread_cond_broadcast(&e->done_cv);
	pthread_mutex_unlock(&e->mu);
}

void sl_engine_stats(struct sl_engine *e, struct sl_engine_stats *out)
{
	out->steps = atomic_load(&e->stat_steps);
	out->commits = atomic_load(&e->stat_commits);
	out->fenced = atomic_load(&e->stat_fenced);
	out->claims = atomic_load(&e->stat_claims);
	out->runs_done = atomic_load(&e->stat_runs_done);
}

/* ---- starting runs ------------------------------------------------------------- */

int engine_check_input(const struct sl_workflow *w, const json_t *input, struct sl_err *err)
{
	if (!w->trigger.contract)
		return 0;
	struct sl_verrs ve = {0};
	if (sl_schema_validate(w->trigger.contract, input, &ve))
		return 0;
	char *msg = sl_verrs_join(&ve);
	sl_err_set(err, SL_EINVAL, SL_CLASS_CONTRACT, "input does not match contract %s: %s",
		   sl_schema_id(w->trigger.contract), msg);
	free(msg);
	sl_verrs_free(&ve);
	return SL_EINVAL;
}

int sl_engine_start_run(struct sl_engine *e, const struct sl_start *st, char run_id[SL_ID_MAX],
			bool *existed, struct sl_err *err)
{
	struct sl_workflow *w = sl_project_workflow(e->project, st->workflow);
	if (!w)
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_PERMANENT, "no workflow named '%s'", st->workflow);
	json_t *empty = NULL;
	const json_t *input = st->input;
	if (!input)
		input = empty = json_object();
	int rc = engine_check_input(w, input, err);
	if (!rc)
		rc = gate_trigger(e, w, st, input, err);
	if (!rc) {
		/* The correlation id is chosen here so the audit entry holds it. */
		char corr[SL_ID_MAX];
		const char *correlation = st->correlation_id;
		if (!correlation) {
			sl_id_new("corr_", corr);
			correlation = corr;
		}
		const char *trigger = st->trigger ? st->trigger : "api";
		json_t *detail = json_pack("{s:s, s:i, s:s, s:s}", "trigger", trigger, "version", w->version, "digest",
					   w->digest, "workflow", w->name);
		if (st->idem_key)
			json_object_set_new(detail, "idempotency_key", json_string(st->idem_key));
		if (json_is_object(st->audit_detail))
			json_object_update_missing(detail, (json_t *)st->audit_detail);
		struct sl_audit_entry ae = {
			.tenant = st->tenant,
			.actor = st->actor,
			.action = "run.start",
			.target = {"workflow", w->name},
			.correlation_id = correlation,
			.detail = detail,
		};
		json_t *audit = sl_audit_entry_json(&ae);
		json_decref(detail);
		struct sl_run_new rn = {
			.workflow = w->name,
			.version = w->version,
			.digest = w->digest,
			.input = input,
			.correlation_id = correlation,
			.trigger = trigger,
			.tenant = st->tenant,
			.priority = st->priority,
			.idem_scope = st->idem_key ? (st->idem_scope ? st->idem_scope : "api") : NULL,
			.idem_key = st->idem_key,
			.idem_ttl_ms = st->idem_ttl_ms < 0 ? 0
				       : st->idem_ttl_ms ? st->idem_ttl_ms
							 : e->project->settings.idem_ttl_ms,
			.audit = audit,
		};
		bool ex = false;
		rc = sl_store_run_create(e->store, &rn, run_id, &ex, err);
		json_decref(audit);
		if (existed)
			*existed = ex;
		if (!rc && !ex) {
			const char *l[] = {w->name, rn.trigger};
			sl_metric_add(SL_M_RUNS_STARTED, l, 1);
			engine_wake(e);
		}
	}
	json_decref(empty);
	return rc;
}

int sl_engine_wait_tree(struct sl_engine *e, const char *root_run_id, int64_t timeout_ms)
{
	int64_t deadline = timeout_ms > 0 ? sl_mono_ms() + timeout_ms : INT64_MAX;
	for (;;) {
		int64_t pending = 1;
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_store_tree_pending(e->store, root_run_id, &pending, &err) == 0 && pending == 0)
			return 0;
		int64_t now = sl_mono_ms();
		if (now >= deadline)
			return SL_ETIMEOUT;
		/* Woken when any run ends here; the 200 ms bound covers runs ended by
		 * another process sharing the store. */
		int64_t until = SL_MIN(deadline, now + 200);
		struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000};
		pthread_mutex_lock(&e->mu);
		uint64_t seq = e->done_seq;
		while (seq == e->done_seq && sl_mono_ms() < until)
			if (pthread_cond_timedwait(&e->done_cv, &e->mu, &ts) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&e->mu);
	}
}

/* ---- operator actions ------------------------------------------------------------ */

struct sl_project *sl_engine_project(struct sl_engine *e)
{
	return e->project;
}

struct sl_store *sl_engine_store(struct sl_engine *e)
{
	return e->store;
}

/* The workflow name and run id of a DLQ entry (owned). */
static int dlq_entry(struct sl_engine *e, const char *dlq_id, char **name, char **run_id, struct sl_err *err)
{
	struct sl_dlq_filter f = {.error_class = -1, .include_replayed = true, .id = dlq_id};
	json_t *page = NULL;
	*name = *run_id = NULL;
	if (sl_store_dlq_list(e->store, &f, &page, err))
		return err ? err->code : SL_ESTORE;
	const json_t *entry = json_array_get(json_object_get(page, "entries"), 0);
	const char *w = json_string_value(json_object_get(entry, "workflow"));
	*name = w ? sl_strdup(w) : NULL;
	*run_id = sl_strdup(json_string_value(json_object_get(entry, "run_id")));
	json_decref(page);
	return w ? 0 : sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "no dead-letter entry %s", dlq_id);
}

static const struct sl_audit_actor system_actor = {SL_ACTOR_SYSTEM, NULL};

/* The audit entry of an operator action on a run, with the run's tenant
 * and correlation id (operator actions are rare: a load is cheap enough).
 * Returns owned. */
static json_t *operator_entry(struct sl_engine *e, struct sl_audit_entry *ae, const char *run_id)
{
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_run r;
	bool loaded = run_id && sl_store_run_load(e->store, run_id, &r, &err) == 0;
	if (loaded) {
		ae->tenant = r.tenant;
		ae->correlation_id = r.correlation_id;
	}
	json_t *j = sl_audit_entry_json(ae);
	if (loaded)
		sl_run_free(&r);
	return j;
}

int sl_engine_replay(struct sl_engine *e, const char *dlq_id, const json_t *input, bool newest,
		     const struct sl_audit_actor *actor, char run_id[SL_ID_MAX], struct sl_err *err)
{
	const char *digest = NULL;
	int version = 0;
	char *name = NULL, *dead_run = NULL;
	int rc = dlq_entry(e, dlq_id, &name, &dead_run, err);
	if (rc && rc != SL_ENOTFOUND)
		return rc;
	if (newest) {
		const struct sl_workflow *w = rc ? NULL : sl_project_workflow(e->project, name);
		if (!w) {
			free(name);
			free(dead_run);
			return rc ? rc
				  : sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE,
					       "the entry's workflow is not in the project any more");
		}
		digest = w->digest;
		version = w->version;
	}
	free(name);
	json_t *detail = json_pack("{s:b, s:b}", "input_replaced", input != NULL, "newest", newest);
	if (digest)
		json_object_set_new(detail, "digest", json_string(digest));
	struct sl_audit_entry ae = {
		.actor = actor ? *actor : system_actor,
		.action = "dlq.replay",
		.target = {"dlq", dlq_id},
		.detail = detail,
	};
	json_t *audit = operator_entry(e, &ae, dead_run);
	json_decref(detail);
	free(dead_run);
	/* the replay and its entry in one transaction */
	rc = sl_store_dlq_replay_audited(e->store, dlq_id, input, digest, version, audit, run_id, err);
	json_decref(audit);
	if (!rc)
		engine_wake(e);
	return rc;
}

int sl_engine_cancel(struct sl_engine *e, const char *run_id, const struct sl_audit_actor *actor,
		     struct sl_err *err)
{
	struct sl_audit_entry ae = {
		.actor = actor ? *actor : system_actor,
		.action = "run.cancel",
		.target = {"run", run_id},
	};
	json_t *audit = operator_entry(e, &ae, run_id);
	/* the cancel and its entry in one transaction */
	int rc = sl_store_run_cancel_audited(e->store, run_id, audit, err);
	json_decref(audit);
	if (!rc)
		engine_notify_done(e);
	return rc;
}

/* ---- approvals ---------------------------------------------------------------------------- */

/* A classify (or route) edit may be the bare label; the step's output is
 * {label, confidence}, and a person is sure. Returns a new reference. */
static json_t *edit_normalize(const struct sl_step *st, const json_t *value)
{
	if (st && st->kind == SL_STEP_AI && st->ai.nlabels && json_is_string(value))
		return json_pack("{s:O, s:f}", "label", value, "confidence", 1.0);
	return json_incref((json_t *)value);
}

static int schema_check(const struct sl_schema *sc, const json_t *v, struct sl_err *err)
{
	if (!sc)
		return 0;
	struct sl_verrs ve = {0};
	if (sl_schema_validate(sc, v, &ve))
		return 0;
	char *msg = sl_verrs_join(&ve);
	sl_err_set(err, SL_EINVAL, SL_CLASS_CONTRACT, "the value does not match contract %s: %s",
		   sl_schema_id(sc), msg);
	free(msg);
	sl_verrs_free(&ve);
	return SL_EINVAL;
}

/* What an edited value must meet: the step's contract, an extract's
 * contract, a classify step's labels. */
static int edit_check(const struct sl_step *st, const json_t *v, struct sl_err *err)
{
	if (!st)
		return 0;
	if (schema_check(st->output_contract, v, err))
		return SL_EINVAL;
	if (st->kind != SL_STEP_AI)
		return 0;
	if (schema_check(st->ai.contract, v, err))
		return SL_EINVAL;
	if (!st->ai.nlabels)
		return 0;
	const char *label = json_string_value(json_object_get(v, "label"));
	for (size_t i = 0; label && i < st->ai.nlabels; i++)
		if (strcmp(st->ai.labels[i], label) == 0)
			return 0;
	return sl_err_set(err, SL_EINVAL, SL_CLASS_CONTRACT,
			  "the value must be {\"label\": L} (or the bare label) with L one of the step's labels; got %s",
			  label ? label : "no label");
}

/* The step an approval belongs to, in the definition its run started on. */
static struct sl_workflow *approval_step(struct sl_engine *e, const json_t *doc, const struct sl_step **st,
					 struct sl_err *err)
{
	*st = NULL;
	struct sl_run r;
	int rc = sl_store_run_load(e->store, json_string_value(json_object_get(doc, "run_id")), &r, err);
	if (rc)
		return NULL;
	struct sl_workflow *w = engine_definition(e, r.digest, err);
	sl_run_free(&r);
	if (w)
		*st = sl_workflow_step(w, json_string_value(json_object_get(doc, "step_id")));
	return w;
}

int sl_engine_approval_decide(struct sl_engine *e, const char *approval_id, const char *decision,
			      const char *reason, const json_t *value, const struct sl_audit_actor *actor, json_t **out,
			      struct sl_err *err)
{
	if (out)
		*out = NULL;
	static const char *const verbs[] = {"approve", "reject", "edit"};
	static const char *const statuses[] = {"approved", "rejected", "edited"};
	int k = -1;
	for (int i = 0; decision && i < 3; i++)
		if (strcmp(decision, verbs[i]) == 0)
			k = i;
	if (k < 0)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "decision must be approve, reject or edit");
	if (k > 0 && (!reason || !*reason))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "a %s needs a reason", verbs[k]);
	if (k == 2 && !value)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "an edit needs the edited value");
	json_t *doc = NULL;
	int rc = sl_store_approval_get(e->store, approval_id, &doc, err);
	if (rc)
		return rc;
	const char *st_now = json_string_value(json_object_get(doc, "status"));
	if (!st_now || strcmp(st_now, "pending") != 0) {
		sl_err_set(err, SL_EEXISTS, SL_CLASS_NONE, "approval %s was already decided (%s)", approval_id,
			   st_now ? st_now : "?");
		json_decref(doc);
		return SL_EEXISTS;
	}
	const struct sl_step *st = NULL;
	struct sl_workflow *w = NULL;
	json_t *final = NULL;
	if (k == 2) {
		w = approval_step(e, doc, &st, err);
		final = edit_normalize(st, value);
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		/* a gated call's edit is the action's input: its connector checks it */
		bool output_kind = kind && (strcmp(kind, "review") == 0 || strcmp(kind, "approval") == 0);
		rc = !w ? err->code : output_kind ? edit_check(st, final, err) : 0;
	} else if (k == 0) {
		final = json_incref(json_object_get(doc, "proposed"));
		/* an ai answer that was invalid is not made valid by a yes: edit it */
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		if (kind && strcmp(kind, "review") == 0) {
			w = approval_step(e, doc, &st, err);
			rc = !w ? err->code : edit_check(st, final, err);
			if (rc == SL_EINVAL)
				sl_err_prefix(err, "the proposal cannot be approved as it is (edit it)");
		}
	} else {
		final = json_null();
	}
	const char *by = actor && actor->id ? actor->id : "anonymous";
	json_t *dec = NULL, *audit = NULL;
	if (!rc) {
		dec = json_pack("{s:s, s:O, s:s, s:s?, s:I}", "decision", statuses[k], "final", final, "by", by, "reason",
				reason, "at", (json_int_t)sl_now_ms());
		json_t *detail = json_pack("{s:s, s:O, s:s?}", "decision", statuses[k], "kind", json_object_get(doc, "kind"),
					   "reason", reason);
		struct sl_audit_entry ae = {
			.actor = actor ? *actor : (struct sl_audit_actor){SL_ACTOR_USER, "anonymous"},
			.action = "approval.decide",
			.target = {"approval", approval_id},
			.step_id = json_string_value(json_object_get(doc, "step_id")),
			.approval_id = approval_id,
			.detail = detail,
		};
		audit = operator_entry(e, &ae, json_string_value(json_object_get(doc, "run_id")));
		json_decref(detail);
		/* the decision, the run queued again and the entry in one transaction */
		rc = sl_store_approval_decide(e->store, approval_id, statuses[k], dec, audit, out, err);
	}
	json_decref(dec);
	json_decref(audit);
	json_decref(final);
	json_decref(doc);
	if (w)
		sl_workflow_unref(w);
	if (!rc)
		engine_wake(e);
	return rc;
}
