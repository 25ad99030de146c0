/*
 * poll.c: polling syncs, workflows with `trigger: {poll: CONNECTOR.ACTION}`
 * (DESIGN.md §2, §5), and `sluice backfill`.
 *
 * A sync pass calls the read action page by page with input {since, page,
 * per_page, cursor}: `since` is the stored high-water mark (the greatest
 * `changed_at` the last complete pass saw; null the first time), `page`
 * counts from 1, `cursor` is what the sync's `next` found in the previous
 * answer. Each record starts a run whose input is {op: "upsert"|"delete",
 * id, version, record} under the idempotency key "ID@VERSION" (scope
 * "poll:WORKFLOW"): a record seen again with the same version starts
 * nothing, so a pass may overlap the last one (`since` is inclusive), a
 * crash mid-pass only repeats lookups, and a backfill doubles nothing. The
 * high-water mark moves only after a complete pass.
 *
 * A page that fails transiently (429, 5xx, timeouts) is retried after the
 * peer's Retry-After or a jittered backoff, from where the pass stood. A
 * thread per engine (serve, worker) runs the passes while its process
 * holds the "poller" singleton; the sync lag (seconds since the start of
 * the last complete pass: everything changed before it is in) is a gauge.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_int.h"
#include "obs/obs.h"

#define POLL_PAGES_MAX 100000      /* pages in one pass at most: a source that never ends */
#define POLL_PAGE_TRIES 20         /* attempts at one page before the pass gives up */
#define POLL_SINGLETON_EVERY_MS 5000
#define POLL_SLEEP_MAX_MS 1000

struct poll_entry {
	const struct sl_workflow *w;
	char state_name[160]; /* "poll:WORKFLOW" */
	int64_t next_due_mono;
	int64_t last_sync_ms; /* wall ms of the last complete pass's start; 0: none seen */
};

struct poller {
	struct sl_engine *e;
	struct poll_entry *v;
	size_t n;
};

static bool still(const atomic_bool *running)
{
	return !running || atomic_load(running);
}

/* Sleeps ms unless running goes false (checked every 100 ms). */
static void nap(const atomic_bool *running, int64_t ms)
{
	int64_t until = sl_mono_ms() + ms;
	while (still(running) && sl_mono_ms() < until) {
		int64_t left = until - sl_mono_ms();
		struct timespec ts = {0, (left > 100 ? 100 : left) * 1000000};
		nanosleep(&ts, NULL);
	}
}

/* A record's id or version as text: a string as it is, else compact JSON. */
static char *as_text(const json_t *v)
{
	if (json_is_string(v))
		return sl_strdup(json_string_value(v));
	if (!v || json_is_null(v))
		return NULL;
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Starts the run of one record; counts it in p. */
static int sync_record(struct sl_engine *e, const struct sl_workflow *w, const json_t *rec, char **max_changed,
		       struct sl_sync_progress *p, struct sl_err *err)
{
	const struct sl_sync *sy = &w->trigger.sync;
	json_t *idv = NULL, *verv = NULL, *changed = NULL;
	bool deleted = false;
	int rc = sl_expr_eval(sy->id, rec, &idv, err);
	if (!rc)
		rc = sl_expr_eval(sy->version, rec, &verv, err);
	if (!rc)
		rc = sl_expr_eval_bool(sy->deleted, rec, &deleted, err);
	if (!rc && sl_expr_eval(sy->changed_at, rec, &changed, err) == 0 && json_is_string(changed)) {
		const char *c = json_string_value(changed);
		int64_t t;
		if (sl_time_parse(c, &t) == 0) { /* kept as written: the source compares its own text */
			int64_t have;
			if (!*max_changed || (sl_time_parse(*max_changed, &have) == 0 && t > have)) {
				free(*max_changed);
				*max_changed = sl_strdup(c);
			}
		}
	}
	sl_err_clear(err);
	char *id = as_text(idv), *ver = as_text(verv);
	json_decref(idv);
	json_decref(changed);
	p->records++;
	if (rc || !id || !*id || strlen(id) > 200 || (ver && strlen(ver) > 200)) {
		p->errors++;
		sl_log(SL_LOG_WARN, "poller", "a record without a usable id or version is skipped", "workflow", w->name,
		       NULL);
		free(id);
		free(ver);
		json_decref(verv);
		return 0;
	}
	if (deleted && sy->skip_deletes) {
		free(id);
		free(ver);
		json_decref(verv);
		return 0;
	}
	char *key = sl_asprintf("%s@%s", id, ver ? ver : "");
	char *scope = sl_asprintf("poll:%s", w->name);
	/* the version as the source gave it (a number stays a number) */
	json_t *input = json_pack("{s:s, s:s, s:O?, s:O}", "op", deleted ? "delete" : "upsert", "id", id, "version",
				  verv, "record", rec);
	json_decref(verv);
	json_t *detail = json_pack("{s:{s:s, s:s, s:s?, s:s}}", "sync", "connector", sy->connector->name, "id", id,
				   "version", ver, "op", deleted ? "delete" : "upsert");
	struct sl_start st = {
		.workflow = w->name,
		.input = input,
		.idem_scope = scope,
		.idem_key = key,
		.idem_ttl_ms = -1, /* ID@VERSION: a backfill of old history must not start it again */
		.trigger = "poll",
		.actor = {SL_ACTOR_SERVICE, "poller"},
		.audit_detail = detail,
	};
	char run_id[SL_ID_MAX];
	bool existed = false;
	rc = sl_engine_start_run(e, &st, run_id, &existed, err);
	if (rc == SL_EINVAL) { /* the input fails the workflow's contract: that record cannot run */
		p->errors++;
		sl_log(SL_LOG_WARN, "poller", "a synced record was refused", "workflow", w->name, "id", id, "error",
		       err->msg, NULL);
		sl_err_clear(err);
		rc = 0;
	} else if (!rc && existed) {
		p->duplicates++;
		const char *d[] = {"poll"};
		sl_metric_add(SL_M_DUPLICATES_SKIPPED, d, 1);
	} else if (!rc) {
		p->started++;
		p->deletes += deleted;
		const char *l[] = {w->name, deleted ? "delete" : "upsert"};
		sl_metric_add(SL_M_SYNC_RECORDS, l, 1);
	}
	json_decref(input);
	json_decref(detail);
	free(scope);
	free(key);
	free(id);
	free(ver);
	return rc;
}

/* One page: the action's output, retried while it fails transiently. */
static int fetch_page(const struct sl_workflow *w, const json_t *input, const atomic_bool *running, json_t **out,
		      struct sl_sync_progress *p, struct sl_err *err)
{
	const struct sl_sync *sy = &w->trigger.sync;
	for (int attempt = 1;; attempt++) {
		struct sl_call call = {.input = input, .step_id = "poll"};
		struct sl_call_result res = {0};
		sl_err_clear(err);
		int rc = sl_connector_call(sy->connector, sy->action, &call, &res, err);
		if (!rc) {
			*out = res.output;
			return 0;
		}
		if (err->cls != SL_CLASS_TRANSIENT || attempt >= POLL_PAGE_TRIES || !still(running))
			return rc;
		p->retries++;
		nap(running, sl_backoff_ms(attempt, 200, 30000, err->retry_after_ms));
	}
}

int engine_sync_pass(struct sl_engine *e, const struct sl_workflow *w, const char *since,
		     const atomic_bool *running, sl_sync_progress_fn fn, void *ud, struct sl_sync_progress *p,
		     char **max_changed, struct sl_err *err)
{
	const struct sl_sync *sy = &w->trigger.sync;
	memset(p, 0, sizeof *p);
	*max_changed = since ? sl_strdup(since) : NULL;
	json_t *cursor = json_null();
	int rc = 0;
	for (int64_t page = 1; page <= POLL_PAGES_MAX && still(running); page++) {
		json_t *input = json_pack("{s:s?, s:I, s:i, s:O}", "since", since, "page", (json_int_t)page, "per_page",
					  sy->per_page, "cursor", cursor);
		json_t *out = NULL;
		rc = fetch_page(w, input, running, &out, p, err);
		json_decref(input);
		if (rc)
			break;
		json_t *items = NULL;
		rc = sl_expr_eval(sy->items, out, &items, err);
		if (!rc && !json_is_array(items))
			rc = sl_err_set(err, SL_EINVAL, SL_CLASS_CONTRACT, "sync items of %s is not an array", w->name);
		size_t i;
		json_t *rec;
		if (!rc) {
			json_array_foreach(items, i, rec) {
				rc = sync_record(e, w, rec, max_changed, p, err);
				if (rc)
					break;
			}
		}
		size_t n = json_array_size(items);
		json_decref(items);
		p->pages++;
		if (fn)
			fn(p, ud);
		bool more = false;
		if (!rc && sy->pagination == SL_PAGINATION_PAGE) {
			more = n >= (size_t)sy->per_page;
		} else if (!rc) {
			json_t *next = NULL;
			rc = sl_expr_eval(sy->next, out, &next, err);
			more = !rc && ((json_is_string(next) && json_string_length(next) > 0) || json_is_integer(next));
			json_decref(cursor);
			cursor = more ? json_incref(next) : json_null();
			json_decref(next);
		}
		json_decref(out);
		if (rc || !more)
			break;
	}
	json_decref(cursor);
	if (!rc && !still(running))
		rc = sl_err_set(err, SL_EBUSY, SL_CLASS_TRANSIENT, "stopping: the pass was cut short");
	return rc;
}

int sl_engine_backfill(struct sl_engine *e, const char *workflow, const char *since, sl_sync_progress_fn fn,
		       void *ud, struct sl_sync_progress *out, struct sl_err *err)
{
	const struct sl_workflow *w = sl_project_workflow(e->project, workflow);
	if (!w)
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_PERMANENT, "no workflow named '%s'", workflow);
	if (w->trigger.kind != SL_TRIGGER_POLL)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
				  "workflow '%s' has no poll trigger: only a sync can be backfilled", workflow);
	char *max_changed = NULL;
	struct sl_sync_progress p;
	int rc = engine_sync_pass(e, w, since, NULL, fn, ud, &p, &max_changed, err);
	free(max_changed);
	if (out)
		*out = p;
	return rc;
}

/* ---- the poller thread ---- */

static void read_state(struct sl_engine *e, struct poll_entry *en, char **since)
{
	json_t *st = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	*since = NULL;
	if (sl_store_trigger_state_get(e->store, en->state_name, &st, &err) != 0)
		return;
	const char *s = json_string_value(json_object_get(st, "since"));
	*since = s ? sl_strdup(s) : NULL;
	en->last_sync_ms = json_integer_value(json_object_get(st, "last_sync_ms"));
	json_decref(st);
}

static void poll_once(struct sl_engine *e, struct poll_entry *en)
{
	const struct sl_workflow *w = en->w;
	char *since = NULL;
	read_state(e, en, &since);
	int64_t started = sl_now_ms();
	struct sl_sync_progress p;
	char *max_changed = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = engine_sync_pass(e, w, since, &e->running, NULL, NULL, &p, &max_changed, &err);
	if (rc) {
		if (atomic_load(&e->running))
			sl_log(SL_LOG_WARN, "poller", "sync pass failed; the next one starts from the same point",
			       "workflow", w->name, "error", err.msg, NULL);
	} else {
		char ts[32];
		sl_time_format(started, ts);
		json_t *st = json_pack("{s:s?, s:I, s:s, s:I, s:I, s:I}", "since", max_changed, "last_sync_ms",
				       (json_int_t)started, "last_sync", ts, "records", (json_int_t)p.records, "runs",
				       (json_int_t)p.started, "pages", (json_int_t)p.pages);
		if (sl_store_trigger_state_put(e->store, en->state_name, st, &err) == 0)
			en->last_sync_ms = started;
		json_decref(st);
		if (p.started) {
			char n[24];
			snprintf(n, sizeof n, "%lld", (long long)p.started);
			sl_log(SL_LOG_INFO, "poller", "sync pass started runs", "workflow", w->name, "runs", n, NULL);
		}
	}
	free(since);
	free(max_changed);
}

static void *poller_main(void *arg)
{
	struct poller *pl = arg;
	struct sl_engine *e = pl->e;
	bool held = false;
	int64_t next_try = 0;
	while (atomic_load(&e->running)) {
		if (sl_mono_ms() >= next_try) {
			if (sl_store_try_singleton(e->store, "poller", &held))
				held = false;
			next_try = sl_mono_ms() + POLL_SINGLETON_EVERY_MS;
		}
		for (size_t i = 0; held && i < pl->n && atomic_load(&e->running); i++) {
			struct poll_entry *en = &pl->v[i];
			if (sl_mono_ms() < en->next_due_mono)
				continue;
			poll_once(e, en);
			en->next_due_mono = sl_mono_ms() + en->w->trigger.sync.every_ms;
		}
		for (size_t i = 0; i < pl->n; i++) {
			if (!pl->v[i].last_sync_ms)
				continue;
			const char *l[] = {pl->v[i].w->name};
			sl_metric_set(SL_M_SYNC_LAG, l, (double)(sl_now_ms() - pl->v[i].last_sync_ms) / 1000.0);
		}
		pthread_mutex_lock(&e->mu);
		int64_t until = sl_mono_ms() + POLL_SLEEP_MAX_MS;
		struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000};
		if (atomic_load(&e->running))
			pthread_cond_timedwait(&e->sched_cv, &e->mu, &ts);
		pthread_mutex_unlock(&e->mu);
	}
	return NULL;
}

int engine_poller_start(struct sl_engine *e)
{
	struct sl_project *p = e->project;
	struct poller *pl = sl_xcalloc(1, sizeof *pl);
	pl->e = e;
	pl->v = sl_xcalloc(p->nworkflows ? p->nworkflows : 1, sizeof *pl->v);
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		if (w->trigger.kind != SL_TRIGGER_POLL || !w->trigger.sync.connector || sl_project_workflow(p, w->name) != w)
			continue;
		struct poll_entry *en = &pl->v[pl->n++];
		en->w = w;
		snprintf(en->state_name, sizeof en->state_name, "poll:%s", w->name);
	}
	if (pl->n == 0 || pthread_create(&e->poller, NULL, poller_main, pl) != 0) {
		if (pl->n)
			sl_log(SL_LOG_ERROR, "poller", "cannot start the poller thread; syncs do not run", NULL);
		free(pl->v);
		free(pl);
		return -1;
	}
	e->polls = pl;
	e->has_poller = true;
	return 0;
}

void engine_poller_stop(struct sl_engine *e)
{
	if (!e->has_poller)
		return;
	pthread_mutex_lock(&e->mu);
	pthread_cond_broadcast(&e->sched_cv);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->poller, NULL);
	struct poller *pl = e->polls;
	free(pl->v);
	free(pl);
	e->polls = NULL;
	e->has_poller = false;
}
