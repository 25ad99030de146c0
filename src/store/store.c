/*
 * store.c: the public face of the store. Picks an implementation by URL
 * scheme from a static registry, checks arguments once for all of them, and
 * calls through the implementation's const ops table, so no caller knows
 * which store it has. Also the names of statuses and phases,
 * shared by every implementation (they are what the tables hold).
 */
#include "store/store.h"
#include "store/store_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- names ------------------------------------------------------------------ */

static const char *const run_status_names[SL_RUN__COUNT] = {
	[SL_RUN_QUEUED] = "queued",           [SL_RUN_RUNNING] = "running",
	[SL_RUN_WAITING] = "waiting",         [SL_RUN_COMPLETED] = "completed",
	[SL_RUN_DEAD] = "dead",               [SL_RUN_CANCELLED] = "cancelled",
	[SL_RUN_COMPENSATING] = "compensating", [SL_RUN_COMPENSATED] = "compensated",
	[SL_RUN_REVIEW] = "review",
};

static const char *const step_status_names[SL_STEP_ST__COUNT] = {
	[SL_STEP_ST_COMPLETED] = "completed", [SL_STEP_ST_SKIPPED] = "skipped",
	[SL_STEP_ST_FAILED] = "failed",       [SL_STEP_ST_WAITING] = "waiting",
	[SL_STEP_ST_DEAD] = "dead",           [SL_STEP_ST_COMPENSATED] = "compensated",
	[SL_STEP_ST_REVIEW] = "review",
};

static const char *const phase_names[] = {
	[SL_PHASE_FORWARD] = "forward",
	[SL_PHASE_COMPENSATE] = "compensate",
};

static int name_index(const char *const *names, size_t n, const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *sl_run_status_name(enum sl_run_status s)
{
	return (unsigned)s < SL_RUN__COUNT ? run_status_names[s] : "unknown";
}

int sl_run_status_parse(const char *name)
{
	return name_index(run_status_names, SL_RUN__COUNT, name);
}

bool sl_run_status_terminal(enum sl_run_status s)
{
	return s == SL_RUN_COMPLETED || s == SL_RUN_DEAD || s == SL_RUN_CANCELLED || s == SL_RUN_COMPENSATED;
}

const char *sl_step_status_name(enum sl_step_status s)
{
	return (unsigned)s < SL_STEP_ST__COUNT ? step_status_names[s] : "unknown";
}

int sl_store__step_status_parse(const char *name)
{
	return name_index(step_status_names, SL_STEP_ST__COUNT, name);
}

const char *sl_store__phase_name(enum sl_phase p)
{
	return (unsigned)p < SL_ARRAY_LEN(phase_names) ? phase_names[p] : "unknown";
}

int sl_store__phase_parse(const char *name)
{
	return name_index(phase_names, SL_ARRAY_LEN(phase_names), name);
}

size_t sl_store__limit(size_t limit)
{
	if (limit == 0)
		return SL_STORE_LIST_DEFAULT;
	return SL_MIN(limit, (size_t)SL_STORE_LIST_MAX);
}

void sl_store__id_copy(char dst[SL_ID_MAX], const char *src)
{
	size_t n = src ? strnlen(src, SL_ID_MAX - 1) : 0;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

/* ---- argument checks shared by every implementation ------------------------------- */

/* An id longer than SL_ID_MAX - 1 could never have been issued; refusing it
 * here keeps every run_id_out copy exact. */
static bool id_ok(const char *id)
{
	return id && *id && strnlen(id, SL_ID_MAX) < SL_ID_MAX;
}

int sl_store__run_new_check(const struct sl_run_new *r, struct sl_err *err)
{
	if (!r || !r->workflow || !*r->workflow)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: a run needs a workflow name");
	if (r->idem_key && !*r->idem_key)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: empty idempotency key");
	if (r->idem_ttl_ms < 0 || r->due_at < 0)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: negative ttl or due time");
	if (r->audit && !sl_store__audit_entry_ok(r->audit))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: a run's audit entry has no action");
	if ((r->parent_run_id && !id_ok(r->parent_run_id)) || (r->root_run_id && !id_ok(r->root_run_id)))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: malformed parent or root run id");
	if (r->correlation_id && !*r->correlation_id)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: empty correlation id");
	return 0;
}

int sl_store__commit_check(const struct sl_commit *c, struct sl_err *err)
{
	if (!id_ok(c->run_id))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: commit without a run id");
	if ((unsigned)c->status >= SL_RUN__COUNT || (c->phase != SL_PHASE_FORWARD && c->phase != SL_PHASE_COMPENSATE))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: commit for %s: bad status or phase",
				  c->run_id);
	if (c->next != SL_TASK_CONTINUE && c->next != SL_TASK_RESCHEDULE && c->next != SL_TASK_DONE)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: commit for %s: bad task next", c->run_id);
	if (c->next == SL_TASK_CONTINUE && c->lease_ms <= 0)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: commit for %s: continue needs lease_ms",
				  c->run_id);
	if (c->step && (!c->step->step_id || !*c->step->step_id || (unsigned)c->step->status >= SL_STEP_ST__COUNT))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: commit for %s: bad step record", c->run_id);
	if (c->attempt && (!c->attempt->step_id || !*c->attempt->step_id ||
			   (unsigned)c->attempt->error_class >= SL_CLASS__COUNT))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: commit for %s: bad attempt record",
				  c->run_id);
	if (c->dlq && (!c->dlq->step_id || (unsigned)c->dlq->error_class >= SL_CLASS__COUNT))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: commit for %s: bad dead letter", c->run_id);
	if (c->nspawn && !c->spawn)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: commit for %s: nspawn without spawn",
				  c->run_id);
	if (c->audit) {
		size_t i;
		const json_t *a;
		if (!json_is_array(c->audit))
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: commit for %s: audit is not an array",
					  c->run_id);
		json_array_foreach(c->audit, i, a) {
			if (!sl_store__audit_entry_ok(a))
				return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE,
						  "store: commit for %s: audit entry %zu has no action", c->run_id, i);
		}
	}
	for (size_t i = 0; i < c->nspawn; i++) {
		int rc = sl_store__run_new_check(&c->spawn[i], err);
		if (rc)
			return rc;
	}
	const struct sl_approval_new *a = c->approval;
	if (a && (!id_ok(a->id) || !a->step_id || !*a->step_id || !a->kind || !*a->kind ||
		  !json_is_array(a->reviewers)))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE,
				  "store: commit for %s: an approval needs an id, step, kind and reviewers", c->run_id);
	const struct sl_approval_set *as = c->approval_set;
	if (as && (!id_ok(as->id) || !sl_store__approval_status_ok(as->status) ||
		   (strcmp(as->status, "pending") != 0 && !json_is_object(as->decision))))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE,
				  "store: commit for %s: an approval change needs an id, a status and a decision",
				  c->run_id);
	return 0;
}

/* ---- the registry: built-in stores, looked up by URL scheme -------------------- */

static const struct sl_store_ops *const registry[] = {
	&sl_store_sqlite_ops, /* first: a bare path means SQLite */
	&sl_store_postgres_ops,
};

/* "NAME:rest" where NAME is [a-z0-9+.-]{2,}: a scheme. Anything else (a
 * path, even one holding a ':') is a bare SQLite path. */
static size_t scheme_len(const char *url)
{
	size_t i = 0;
	while ((url[i] >= 'a' && url[i] <= 'z') || (url[i] >= '0' && url[i] <= '9') || url[i] == '+' ||
	       url[i] == '.' || url[i] == '-')
		i++;
	return (i >= 2 && url[i] == ':') ? i : 0;
}

static int open_by_url(const char *url, struct sl_store **out, struct sl_err *err);
static struct sl_store_group *group_new(void);
static void group_free(struct sl_store_group *g);

int sl_store_open(const char *url, struct sl_store **out, struct sl_err *err)
{
	if (!url || !*url || !out)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: no store URL");
	*out = NULL;
	int rc = open_by_url(url, out, err);
	if (rc == 0)
		(*out)->group = group_new();
	return rc;
}

static int open_by_url(const char *url, struct sl_store **out, struct sl_err *err)
{
	size_t n = scheme_len(url);
	if (n == 0)
		return registry[0]->open(url, out, err);
	if (n == 10 && memcmp(url, "postgresql", 10) == 0)
		n = 8; /* libpq's two spellings: postgresql:// is postgres:// */
	for (size_t i = 0; i < SL_ARRAY_LEN(registry); i++) {
		if (strlen(registry[i]->name) != n || memcmp(registry[i]->name, url, n) != 0)
			continue;
		const char *target = strchr(url, ':') + 1;
		if (target[0] == '/' && target[1] == '/')
			target += 2; /* sqlite:///abs/path and sqlite://rel/path */
		if (!*target)
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: %s: no path", url);
		return registry[i]->open(target, out, err);
	}
	return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: unknown store kind in \"%.*s:...\" (known: sqlite, postgres)",
			  (int)scheme_len(url), url);
}

/* ---- fair claiming: the tenants' shares and the split of a batch ------------ */

static void fair_free(struct sl_fair *f)
{
	for (size_t i = 0; i < f->n; i++)
		free((char *)f->t[i].tenant);
	free(f->t);
	f->t = NULL;
	f->n = 0;
}

static int share_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sl_tenant_share *)a)->tenant, ((const struct sl_tenant_share *)b)->tenant);
}

void sl_store__fair_share(const struct sl_fair *f, const char *tenant, double *weight, int *max_concurrency)
{
	struct sl_tenant_share key = {.tenant = tenant};
	const struct sl_tenant_share *t = f->n ? bsearch(&key, f->t, f->n, sizeof *f->t, share_cmp) : NULL;
	*weight = t ? t->weight : 1.0;
	*max_concurrency = t ? t->max_concurrency : 0;
}

size_t sl_store__fair_split(struct sl_fair_cand *c, size_t nc, size_t max, size_t *order)
{
	double top = 0;
	for (size_t i = 0; i < nc; i++)
		if (c[i].pass > top)
			top = c[i].pass;
	for (size_t i = 0; i < nc; i++) {
		c[i].eff = c[i].pass > top - SL_FAIR_LAG ? c[i].pass : top - SL_FAIR_LAG;
		c[i].n = 0;
	}
	size_t got = 0;
	while (got < max) {
		size_t best = nc;
		double best_end = 0;
		for (size_t i = 0; i < nc; i++) {
			if (c[i].n >= c[i].cap)
				continue;
			/* the same arithmetic as PostgreSQL's sluice_claim: e + k / w */
			double end = c[i].eff + (double)(c[i].n + 1) / c[i].weight;
			if (best == nc || end < best_end) {
				best = i;
				best_end = end;
			}
		}
		if (best == nc)
			break;
		c[best].n++;
		if (order)
			order[got] = best;
		got++;
	}
	return got;
}

void sl_store_close(struct sl_store *s)
{
	if (!s)
		return;
	group_free(s->group);
	s->group = NULL;
	fair_free(&s->fair);
	s->ops->close(s);
}

const char *sl_store_kind(const struct sl_store *s)
{
	return s ? s->ops->name : "none";
}

int sl_store_schema_version(struct sl_store *s)
{
	return s ? s->ops->schema_version(s) : 0;
}

/* ---- dispatch --------------------------------------------------------------------- */

#define NEED(cond, what)                                                                         \
	do {                                                                                     \
		if (!(cond))                                                                     \
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: %s: %s", __func__, \
					  what);                                                 \
	} while (0)

#define SLOT(s, fn)                                                                              \
	do {                                                                                     \
		if (!(s)->ops->fn)                                                               \
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: %s: not supported by %s", \
					  #fn, (s)->ops->name);                                  \
	} while (0)

int sl_store_def_put(struct sl_store *s, const char *digest, const char *name, int version, const char *file,
		     const char *source, struct sl_err *err)
{
	NEED(s && digest && *digest && name && *name && source, "digest, name and source are required");
	SLOT(s, def_put);
	return s->ops->def_put(s, digest, name, version, file, source, err);
}

int sl_store_def_get(struct sl_store *s, const char *digest, char **file, char **source, struct sl_err *err)
{
	NEED(s && digest && file && source, "digest and out pointers are required");
	*file = *source = NULL;
	SLOT(s, def_get);
	return s->ops->def_get(s, digest, file, source, err);
}

/* ---- the run-creation group commit ------------------------------------------------
 * Webhooks and API calls create runs one by one, each wanting its own
 * durable transaction; on SQLite that is one fsync per accept. Callers
 * queue here instead: whoever finds no batch in flight leads, takes every
 * queued creation (its own among them) into one run_create_many, and wakes
 * the others; creations that arrive meanwhile wait for the next batch. One
 * caller alone pays no extra wait, and N concurrent callers share one
 * commit (the leader/follower scheme of MySQL's binlog group commit). */
#define GROUP_MAX 256

struct group_item {
	struct sl_store_create c;
	bool done;
	struct group_item *next;
};

struct sl_store_group {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool leading;                 /* a batch is in flight */
	struct group_item *head, **tail;
	uint64_t creates, batches;    /* for sl_store_stats */
};

static struct sl_store_group *group_new(void)
{
	struct sl_store_group *g = sl_xcalloc(1, sizeof *g);
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->tail = &g->head;
	return g;
}

static void group_free(struct sl_store_group *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}

/* Runs one batch of up to GROUP_MAX queued items; called and returns with
 * g->mu held. */
static void group_lead(struct sl_store *s, struct sl_store_group *g)
{
	struct group_item *batch[GROUP_MAX];
	struct sl_store_create *items = sl_xmalloc(GROUP_MAX * sizeof *items);
	size_t n = 0;
	while (g->head && n < GROUP_MAX) {
		batch[n] = g->head;
		items[n] = g->head->c;
		n++;
		g->head = g->head->next;
	}
	if (!g->head)
		g->tail = &g->head;
	g->leading = true;
	g->creates += n;
	g->batches++;
	pthread_mutex_unlock(&g->mu);
	s->ops->run_create_many(s, items, n);
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < n; i++) {
		batch[i]->c = items[i];
		batch[i]->done = true;
	}
	free(items);
	g->leading = false;
	pthread_cond_broadcast(&g->cv);
}

void sl_store_stats(struct sl_store *s, struct sl_store_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!s || !s->group)
		return;
	pthread_mutex_lock(&s->group->mu);
	out->creates = s->group->creates;
	out->create_batches = s->group->batches;
	pthread_mutex_unlock(&s->group->mu);
}

int sl_store_run_create(struct sl_store *s, const struct sl_run_new *r, char run_id_out[SL_ID_MAX],
			bool *existed, struct sl_err *err)
{
	NEED(s && r && run_id_out, "store, run and run_id_out are required");
	run_id_out[0] = '\0';
	bool dummy;
	if (!existed)
		existed = &dummy;
	*existed = false;
	int rc = sl_store__run_new_check(r, err);
	if (rc)
		return rc;
	SLOT(s, run_create_many);
	struct sl_store_group *g = s->group;
	struct group_item me = {.c = {.r = r}};
	sl_err_clear(&me.c.err);
	pthread_mutex_lock(&g->mu);
	*g->tail = &me;
	g->tail = &me.next;
	while (!me.done) {
		if (!g->leading)
			group_lead(s, g);
		else
			pthread_cond_wait(&g->cv, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	if (me.c.rc) {
		if (err)
			*err = me.c.err;
		return me.c.rc;
	}
	sl_store__id_copy(run_id_out, me.c.run_id);
	*existed = me.c.existed;
	return 0;
}

int sl_store_claim(struct sl_store *s, const char *owner, int64_t lease_ms, size_t max, struct sl_task *out,
		   size_t *n, struct sl_err *err)
{
	NEED(s && owner && n && (out || max == 0), "store, owner, out and n are required");
	NEED(lease_ms > 0, "lease_ms must be positive");
	*n = 0;
	if (max == 0)
		return 0;
	SLOT(s, claim);
	return s->ops->claim(s, owner, lease_ms, max, out, n, err);
}

int sl_store_set_tenants(struct sl_store *s, const struct sl_tenant_share *t, size_t n, struct sl_err *err)
{
	NEED(s && (t || n == 0), "store and shares are required");
	for (size_t i = 0; i < n; i++) {
		NEED(t[i].tenant && *t[i].tenant, "a share needs a tenant");
		NEED(t[i].weight > 0 && t[i].weight <= 1e6, "weight must be in (0, 1000000]");
		NEED(t[i].max_concurrency >= 0, "max_concurrency must not be negative");
	}
	struct sl_fair f = {.t = n ? sl_xcalloc(n, sizeof *f.t) : NULL, .n = n};
	for (size_t i = 0; i < n; i++) {
		f.t[i] = t[i];
		f.t[i].tenant = sl_strdup(t[i].tenant);
	}
	if (f.n)
		qsort(f.t, f.n, sizeof *f.t, share_cmp);
	for (size_t i = 1; i < f.n; i++)
		if (strcmp(f.t[i - 1].tenant, f.t[i].tenant) == 0) {
			fair_free(&f);
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: tenant '%s' has two shares", t[i].tenant);
		}
	fair_free(&s->fair);
	s->fair = f;
	return 0;
}

int sl_store_renew(struct sl_store *s, struct sl_task *tasks, size_t n, int64_t lease_ms, bool *lost,
		   struct sl_err *err)
{
	NEED(s && ((tasks && lost) || n == 0), "store, tasks and lost are required");
	NEED(lease_ms > 0, "lease_ms must be positive");
	if (n == 0)
		return 0;
	SLOT(s, renew);
	return s->ops->renew(s, tasks, n, lease_ms, lost, err);
}

int sl_store_release(struct sl_store *s, const struct sl_task *tasks, size_t n, struct sl_err *err)
{
	NEED(s && (tasks || n == 0), "store and tasks are required");
	if (n == 0)
		return 0;
	SLOT(s, release);
	return s->ops->release(s, tasks, n, err);
}

int sl_store_lease_owners(struct sl_store *s, json_t **out, struct sl_err *err)
{
	NEED(s && out, "store and out are required");
	*out = NULL;
	SLOT(s, lease_owners);
	return s->ops->lease_owners(s, out, err);
}

int sl_store_release_owner(struct sl_store *s, const char *owner, int64_t *released, struct sl_err *err)
{
	NEED(s && owner && released, "store, owner and released are required");
	*released = 0;
	SLOT(s, release_owner);
	return s->ops->release_owner(s, owner, released, err);
}

int sl_store_wait(struct sl_store *s, int64_t timeout_ms)
{
	if (timeout_ms < 0)
		timeout_ms = 0;
	if (s && s->ops->wait)
		return s->ops->wait(s, timeout_ms);
	struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	return 0;
}

bool sl_store_can_wait(const struct sl_store *s)
{
	return s && s->ops->wait;
}

int sl_store_try_singleton(struct sl_store *s, const char *name, bool *held)
{
	if (!s || !name || !*name || !held)
		return SL_EINVAL;
	*held = true;
	if (!s->ops->try_singleton)
		return 0;
	return s->ops->try_singleton(s, name, held);
}

int64_t sl_store_next_due(struct sl_store *s)
{
	if (!s || !s->ops->next_due)
		return INT64_MAX;
	return s->ops->next_due(s);
}

int sl_store_run_load(struct sl_store *s, const char *run_id, struct sl_run *out, struct sl_err *err)
{
	NEED(s && run_id && out, "store, run_id and out are required");
	memset(out, 0, sizeof *out);
	if (!id_ok(run_id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no run %.64s", run_id);
	SLOT(s, run_load);
	return s->ops->run_load(s, run_id, out, err);
}

void sl_run_free(struct sl_run *r)
{
	if (!r)
		return;
	free(r->workflow);
	free(r->digest);
	json_decref(r->input);
	json_decref(r->context);
	json_decref(r->step_status);
	json_decref(r->output);
	json_decref(r->error);
	free(r->correlation_id);
	free(r->parent_run_id);
	free(r->root_run_id);
	free(r->trigger);
	free(r->tenant);
	memset(r, 0, sizeof *r);
}

int sl_store_commit(struct sl_store *s, const struct sl_commit *commits, size_t n, int *results,
		    struct sl_err *err)
{
	NEED(s && ((commits && results) || n == 0), "store, commits and results are required");
	if (n == 0)
		return 0;
	SLOT(s, commit);
	return s->ops->commit(s, commits, n, results, err);
}

/* The run's model spend in one place ("ai": calls, tokens, cost), summed
 * from its call records, the same for every store. */
static void add_ai_totals(json_t *doc)
{
	const json_t *calls = json_object_get(doc, "ai_calls");
	json_int_t tin = 0, tout = 0, hits = 0;
	double usd = 0;
	size_t i;
	const json_t *c;
	json_array_foreach(calls, i, c)
	{
		tin += json_integer_value(json_object_get(c, "tokens_in"));
		tout += json_integer_value(json_object_get(c, "tokens_out"));
		usd += json_number_value(json_object_get(c, "cost_usd"));
		hits += json_is_true(json_object_get(c, "cache_hit"));
	}
	json_object_set_new(doc, "ai", json_pack("{s:I, s:I, s:I, s:I, s:f}", "calls", (json_int_t)json_array_size(calls),
						  "cache_hits", hits, "tokens_in", tin, "tokens_out", tout, "cost_usd", usd));
}

int sl_store_run_get(struct sl_store *s, const char *run_id, json_t **out, struct sl_err *err)
{
	NEED(s && run_id && out, "store, run_id and out are required");
	*out = NULL;
	if (!id_ok(run_id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no run %.64s", run_id);
	SLOT(s, run_get);
	int rc = s->ops->run_get(s, run_id, out, err);
	if (rc == 0)
		add_ai_totals(*out);
	return rc;
}

enum sl_run_status sl_store_run_status(struct sl_store *s, const char *run_id)
{
	if (!s || !id_ok(run_id) || !s->ops->run_status)
		return (enum sl_run_status)-1;
	return (enum sl_run_status)s->ops->run_status(s, run_id);
}

int sl_store_runs_list(struct sl_store *s, const struct sl_run_filter *f, json_t **out, struct sl_err *err)
{
	NEED(s && out, "store and out are required");
	*out = NULL;
	struct sl_run_filter any = {.status = -1};
	if (!f)
		f = &any;
	NEED(f->status >= -1 && f->status < SL_RUN__COUNT, "unknown status in filter");
	SLOT(s, runs_list);
	return s->ops->runs_list(s, f, out, err);
}

int sl_store_tree_pending(struct sl_store *s, const char *root_run_id, int64_t *count, struct sl_err *err)
{
	NEED(s && root_run_id && count, "store, root_run_id and count are required");
	*count = 0;
	SLOT(s, tree_pending);
	return s->ops->tree_pending(s, root_run_id, count, err);
}

int sl_store_counts(struct sl_store *s, json_t **out, struct sl_err *err)
{
	NEED(s && out, "store and out are required");
	*out = NULL;
	SLOT(s, counts);
	return s->ops->counts(s, out, err);
}

int sl_store_run_cancel(struct sl_store *s, const char *run_id, struct sl_err *err)
{
	NEED(s && run_id, "store and run_id are required");
	if (!id_ok(run_id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no run %.64s", run_id);
	SLOT(s, run_cancel);
	return s->ops->run_cancel(s, run_id, err);
}

json_t *store_cost_group(const char *key, int64_t calls, int64_t tokens_in, int64_t tokens_out, double cost_usd,
			 int64_t cache_hits, int64_t runs_completed)
{
	return json_pack("{s:o, s:I, s:I, s:I, s:I, s:f, s:I, s:o}", "key",
			 key && *key ? json_string(key) : json_null(), "calls", (json_int_t)calls, "cache_hits",
			 (json_int_t)cache_hits, "tokens_in", (json_int_t)tokens_in, "tokens_out",
			 (json_int_t)tokens_out, "cost_usd", cost_usd, "runs_completed", (json_int_t)runs_completed,
			 "cost_per_completed_run",
			 runs_completed > 0 ? json_real(cost_usd / (double)runs_completed) : json_null());
}

int sl_store_run_stats(struct sl_store *s, const char *workflow, int64_t since_ms, int64_t slow_ms,
		       struct sl_run_stats *out, struct sl_err *err)
{
	NEED(s && workflow && out, "store, workflow and out are required");
	memset(out, 0, sizeof *out);
	out->p95_ms = -1;
	SLOT(s, run_stats);
	return s->ops->run_stats(s, workflow, since_ms, slow_ms, out, err);
}

int sl_store_step_outputs(struct sl_store *s, const char *workflow, const char *step_id, size_t offset, size_t limit,
			  json_t **out, struct sl_err *err)
{
	NEED(s && workflow && step_id && out, "store, workflow, step_id and out are required");
	NEED(limit > 0 && limit <= 100000 && offset <= 10000000, "limit is 1..100000");
	*out = NULL;
	SLOT(s, step_outputs);
	return s->ops->step_outputs(s, workflow, step_id, offset, limit, out, err);
}

int sl_store_ai_costs(struct sl_store *s, const char *group_by, int64_t since_ms, json_t **out, struct sl_err *err)
{
	NEED(s && group_by && out, "store, group_by and out are required");
	NEED(strcmp(group_by, "workflow") == 0 || strcmp(group_by, "route") == 0 || strcmp(group_by, "model") == 0 ||
		     strcmp(group_by, "tenant") == 0,
	     "group_by is workflow, route, model or tenant");
	*out = NULL;
	SLOT(s, ai_costs);
	return s->ops->ai_costs(s, group_by, since_ms, out, err);
}

/* The fallback of a store without the atomic form: the action, then its
 * entry (a crash between the two loses the entry, never the action). */
static int audit_after(struct sl_store *s, const json_t *audit, const char *run_id, struct sl_err *err)
{
	json_t *e = json_copy((json_t *)audit);
	json_object_set_new(e, "run_id", json_string(run_id));
	int rc = sl_store_audit_append(s, e, NULL, err);
	json_decref(e);
	return rc;
}

int sl_store_run_cancel_audited(struct sl_store *s, const char *run_id, const json_t *audit, struct sl_err *err)
{
	if (!audit)
		return sl_store_run_cancel(s, run_id, err);
	NEED(s && run_id, "store and run_id are required");
	NEED(sl_store__audit_entry_ok(audit), "an audit entry is an object with a non-empty \"action\"");
	if (!id_ok(run_id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no run %.64s", run_id);
	if (s->ops->run_cancel_audited)
		return s->ops->run_cancel_audited(s, run_id, audit, err);
	int rc = sl_store_run_cancel(s, run_id, err);
	return rc ? rc : audit_after(s, audit, run_id, err);
}

int sl_store_ai_record(struct sl_store *s, const char *tenant, const json_t *calls, struct sl_err *err)
{
	NEED(s && json_is_array(calls), "store and an array of call records are required");
	SLOT(s, ai_record);
	return s->ops->ai_record(s, tenant ? tenant : "", calls, err);
}

int sl_store_ai_spent(struct sl_store *s, const char *scope, const char *name, int64_t since_ms, double *usd,
		      struct sl_err *err)
{
	NEED(s && scope && name && usd, "store, scope, name and usd are required");
	NEED(strcmp(scope, "route") == 0 || strcmp(scope, "workflow") == 0, "scope is route or workflow");
	*usd = 0;
	SLOT(s, ai_spent);
	return s->ops->ai_spent(s, scope, name, since_ms, usd, err);
}

int sl_store_dlq_count(struct sl_store *s, const struct sl_dlq_filter *f, int64_t *count, struct sl_err *err)
{
	NEED(s && count, "store and count are required");
	*count = 0;
	struct sl_dlq_filter any = {.error_class = -1};
	if (!f)
		f = &any;
	NEED(f->error_class >= -1 && f->error_class < SL_CLASS__COUNT, "unknown error class in filter");
	SLOT(s, dlq_count);
	return s->ops->dlq_count(s, f, count, err);
}

int sl_store_dlq_list(struct sl_store *s, const struct sl_dlq_filter *f, json_t **out, struct sl_err *err)
{
	NEED(s && out, "store and out are required");
	*out = NULL;
	struct sl_dlq_filter any = {.error_class = -1};
	if (!f)
		f = &any;
	NEED(f->error_class >= -1 && f->error_class < SL_CLASS__COUNT, "unknown error class in filter");
	SLOT(s, dlq_list);
	return s->ops->dlq_list(s, f, out, err);
}

int sl_store_dlq_replay(struct sl_store *s, const char *dlq_id, const json_t *input, const char *new_digest,
			int new_version, char run_id_out[SL_ID_MAX], struct sl_err *err)
{
	NEED(s && dlq_id && run_id_out, "store, dlq_id and run_id_out are required");
	NEED(new_version >= 0, "negative version");
	run_id_out[0] = '\0';
	if (new_digest && !*new_digest)
		new_digest = NULL;
	if (!id_ok(dlq_id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no dead letter %.64s", dlq_id);
	SLOT(s, dlq_replay);
	return s->ops->dlq_replay(s, dlq_id, input, new_digest, new_version, run_id_out, err);
}

int sl_store_dlq_replay_audited(struct sl_store *s, const char *dlq_id, const json_t *input, const char *new_digest,
				int new_version, const json_t *audit, char run_id_out[SL_ID_MAX], struct sl_err *err)
{
	if (!audit)
		return sl_store_dlq_replay(s, dlq_id, input, new_digest, new_version, run_id_out, err);
	NEED(s && dlq_id && run_id_out, "store, dlq_id and run_id_out are required");
	NEED(new_version >= 0, "negative version");
	NEED(sl_store__audit_entry_ok(audit), "an audit entry is an object with a non-empty \"action\"");
	run_id_out[0] = '\0';
	if (new_digest && !*new_digest)
		new_digest = NULL;
	if (!id_ok(dlq_id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no dead letter %.64s", dlq_id);
	if (s->ops->dlq_replay_audited)
		return s->ops->dlq_replay_audited(s, dlq_id, input, new_digest, new_version, audit, run_id_out, err);
	int rc = sl_store_dlq_replay(s, dlq_id, input, new_digest, new_version, run_id_out, err);
	return rc ? rc : audit_after(s, audit, run_id_out, err);
}

int sl_store_dlq_purge(struct sl_store *s, int64_t before_ms, int64_t *purged, struct sl_err *err)
{
	NEED(s, "store is required");
	int64_t dummy;
	if (!purged)
		purged = &dummy;
	*purged = 0;
	SLOT(s, dlq_purge);
	return s->ops->dlq_purge(s, before_ms, purged, err);
}

int sl_store_idem_get(struct sl_store *s, const char *scope, const char *key, char run_id_out[SL_ID_MAX],
		      struct sl_err *err)
{
	NEED(s && key && run_id_out, "store, key and run_id_out are required");
	run_id_out[0] = '\0';
	SLOT(s, idem_get);
	return s->ops->idem_get(s, scope ? scope : "", key, run_id_out, err);
}

int sl_store_trigger_state_get(struct sl_store *s, const char *name, json_t **out, struct sl_err *err)
{
	NEED(s && name && *name && out, "store, name and out are required");
	*out = NULL;
	SLOT(s, trigger_state_get);
	return s->ops->trigger_state_get(s, name, out, err);
}

int sl_store_trigger_state_put(struct sl_store *s, const char *name, const json_t *state, struct sl_err *err)
{
	NEED(s && name && *name && json_is_object(state), "store, name and an object state are required");
	SLOT(s, trigger_state_put);
	return s->ops->trigger_state_put(s, name, state, err);
}

int sl_store_idem_purge(struct sl_store *s, int64_t now_ms, int64_t *purged, struct sl_err *err)
{
	NEED(s, "store is required");
	int64_t dummy;
	if (!purged)
		purged = &dummy;
	*purged = 0;
	SLOT(s, idem_purge);
	return s->ops->idem_purge(s, now_ms, purged, err);
}

/* ---- the audit log ----------------------------------------------------------------- */

bool sl_store__audit_entry_ok(const json_t *entry)
{
	const char *action = json_string_value(json_object_get(entry, "action"));
	return json_is_object(entry) && action && *action;
}

/* Canonical: the same entry always gives the same bytes. Keys sorted,
 * no whitespace, non-ASCII escaped (so no Unicode normal form matters), and
 * reals with 17 digits (a double's exact round trip). */
char *sl_store_audit_canonical(const json_t *entry)
{
	return json_dumps(entry, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17));
}

void sl_store_audit_hash(const char *prev, const char *text, size_t len, char out[SL_AUDIT_HASH_LEN + 1])
{
	size_t plen = strnlen(prev, SL_AUDIT_HASH_LEN);
	char *buf = sl_xmalloc(plen + 1 + len);
	memcpy(buf, prev, plen);
	buf[plen] = '\n';
	memcpy(buf + plen + 1, text, len);
	sl_sha256_hex(buf, plen + 1 + len, out);
	free(buf);
}

char *sl_store__audit_seal(const json_t *entry, int64_t head_seq, const char *head_hash, int64_t now,
			   const char *run_id, char hash[SL_AUDIT_HASH_LEN + 1])
{
	json_t *e = json_copy((json_t *)entry); /* shallow: only top-level keys change */
	if (!e)
		return NULL;
	json_object_set_new(e, "seq", json_integer(head_seq + 1));
	if (!json_is_integer(json_object_get(e, "at")))
		json_object_set_new(e, "at", json_integer(now));
	if (run_id)
		json_object_set_new(e, "run_id", json_string(run_id));
	char *text = sl_store_audit_canonical(e);
	json_decref(e);
	if (text)
		sl_store_audit_hash(head_hash, text, strlen(text), hash);
	return text;
}

void sl_store__audit_cols(const json_t *entry, const char *run_id, int64_t now, struct sl_audit_cols *out)
{
	const json_t *at = json_object_get(entry, "at");
	const char *tenant = json_string_value(json_object_get(entry, "tenant"));
	out->at = json_is_integer(at) ? json_integer_value(at) : now;
	out->tenant = tenant ? tenant : "default";
	out->action = json_string_value(json_object_get(entry, "action"));
	out->run_id = run_id ? run_id : json_string_value(json_object_get(entry, "run_id"));
}

int sl_store_audit_append(struct sl_store *s, const json_t *entry, char hash_out[SL_AUDIT_HASH_LEN + 1],
			  struct sl_err *err)
{
	NEED(s && entry, "store and entry are required");
	if (hash_out)
		hash_out[0] = '\0';
	NEED(sl_store__audit_entry_ok(entry), "an audit entry is an object with a non-empty \"action\"");
	SLOT(s, audit_append);
	json_t *one = json_array();
	json_array_append((json_t *)one, (json_t *)entry);
	int rc = s->ops->audit_append(s, one, hash_out, err);
	json_decref(one);
	return rc;
}

int sl_store_audit_list(struct sl_store *s, const struct sl_audit_filter *f, json_t **out, struct sl_err *err)
{
	NEED(s && out, "store and out are required");
	*out = NULL;
	struct sl_audit_filter any = {0};
	if (!f)
		f = &any;
	if (f->cursor) {
		int64_t c;
		if (sl_parse_i64(f->cursor, &c) || c < 1)
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "store: bad audit cursor '%.40s'", f->cursor);
	}
	SLOT(s, audit_list);
	return s->ops->audit_list(s, f, out, err);
}

int sl_store_audit_scan(struct sl_store *s, sl_audit_row_fn fn, void *ud, struct sl_err *err)
{
	NEED(s && fn, "store and fn are required");
	SLOT(s, audit_scan);
	return s->ops->audit_scan(s, fn, ud, err);
}

/* ---- API keys and kill switches ------------------------------------------------------ */

static bool key_id_ok(const char *id)
{
	if (!id || strlen(id) != 16)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

json_t *sl_store__key_doc(const struct sl_api_key *k)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", k->id, "name", k->name, "principal",
			      k->principal, "kind", k->kind, "role", k->role, "tenant", k->tenant, "created_at",
			      (json_int_t)k->created_at);
	json_object_set_new(d, "expires_at", k->expires_at ? json_integer(k->expires_at) : json_null());
	json_object_set_new(d, "revoked_at", k->revoked_at ? json_integer(k->revoked_at) : json_null());
	return d;
}

int sl_store_key_put(struct sl_store *s, const struct sl_api_key *k, const json_t *audit, struct sl_err *err)
{
	NEED(s && k && key_id_ok(k->id), "store and a key with a 16-hex-digit id are required");
	NEED(strlen(k->hash) == 64 && k->principal[0] && k->role[0] && k->tenant[0] && k->kind[0],
	     "a key needs its hash, principal, kind, role and tenant");
	NEED(!audit || sl_store__audit_entry_ok(audit), "an audit entry is an object with a non-empty \"action\"");
	SLOT(s, key_put);
	if (k->created_at)
		return s->ops->key_put(s, k, audit, err);
	struct sl_api_key c = *k;
	c.created_at = sl_now_ms();
	return s->ops->key_put(s, &c, audit, err);
}

int sl_store_key_get(struct sl_store *s, const char *id, struct sl_api_key *out, struct sl_err *err)
{
	NEED(s && id && out, "store, id and out are required");
	memset(out, 0, sizeof *out);
	if (!key_id_ok(id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no key %.20s", id);
	SLOT(s, key_get);
	return s->ops->key_get(s, id, out, err);
}

int sl_store_key_list(struct sl_store *s, json_t **out, struct sl_err *err)
{
	NEED(s && out, "store and out are required");
	*out = NULL;
	SLOT(s, key_list);
	return s->ops->key_list(s, out, err);
}

int sl_store_key_revoke(struct sl_store *s, const char *id, const json_t *audit, struct sl_err *err)
{
	NEED(s && id, "store and id are required");
	NEED(!audit || sl_store__audit_entry_ok(audit), "an audit entry is an object with a non-empty \"action\"");
	if (!key_id_ok(id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no key %.20s", id);
	SLOT(s, key_revoke);
	return s->ops->key_revoke(s, id, sl_now_ms(), audit, err);
}

int sl_store_pause_set(struct sl_store *s, const char *kind, const char *name, bool paused, const char *by,
		       const json_t *audit, bool *changed, struct sl_err *err)
{
	bool dummy;
	NEED(s && kind && name && *name && strlen(name) < 200, "store, kind and a name (< 200 bytes) are required");
	NEED(strcmp(kind, "workflow") == 0 || strcmp(kind, "connector") == 0 || strcmp(kind, "provider") == 0,
	     "kind is workflow, connector or provider");
	NEED(!audit || sl_store__audit_entry_ok(audit), "an audit entry is an object with a non-empty \"action\"");
	SLOT(s, pause_set);
	return s->ops->pause_set(s, kind, name, paused, by ? by : "unknown", audit, changed ? changed : &dummy, err);
}

int sl_store_pause_list(struct sl_store *s, json_t **out, struct sl_err *err)
{
	NEED(s && out, "store and out are required");
	*out = NULL;
	SLOT(s, pause_list);
	return s->ops->pause_list(s, out, err);
}

int sl_store_task_park(struct sl_store *s, const struct sl_task *t, const char *key, int64_t due_at,
		       struct sl_err *err)
{
	NEED(s && t && key && *key, "store, task and key are required");
	SLOT(s, task_park);
	return s->ops->task_park(s, t, key, due_at, err);
}

int sl_store_ai_costs_tenant(struct sl_store *s, const char *group_by, int64_t since_ms, const char *tenant,
			     json_t **out, struct sl_err *err)
{
	if (!tenant)
		return sl_store_ai_costs(s, group_by, since_ms, out, err);
	NEED(s && group_by && out, "store, group_by and out are required");
	NEED(strcmp(group_by, "workflow") == 0 || strcmp(group_by, "route") == 0 || strcmp(group_by, "model") == 0 ||
		     strcmp(group_by, "tenant") == 0,
	     "group_by is workflow, route, model or tenant");
	*out = NULL;
	SLOT(s, ai_costs_tenant);
	return s->ops->ai_costs_tenant(s, group_by, since_ms, tenant, out, err);
}

/* ---- approvals ------------------------------------------------------------------------------ */

static const char *const approval_statuses[] = {"pending", "approved", "rejected", "edited", "expired", NULL};

bool sl_store__approval_status_ok(const char *status)
{
	for (const char *const *p = approval_statuses; status && *p; p++)
		if (strcmp(*p, status) == 0)
			return true;
	return false;
}

static json_t *col_json(const char *text)
{
	if (!text)
		return json_null();
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	return j ? j : json_null();
}

static json_t *col_str(const char *text)
{
	return text ? json_string(text) : json_null();
}

static json_t *col_time(const char *text)
{
	long long v = text ? strtoll(text, NULL, 10) : 0;
	return v > 0 ? json_integer(v) : json_null();
}

json_t *sl_store__approval_doc(const char *const v[APR__COUNT])
{
	json_t *d = json_object();
	static const struct {
		int col;
		const char *key;
		char type; /* s string, j JSON, t time, i integer, b boolean */
	} cols[] = {
		{APR_ID, "id", 's'}, {APR_RUN, "run_id", 's'}, {APR_STEP, "step_id", 's'},
		{APR_TENANT, "tenant", 's'}, {APR_WORKFLOW, "workflow", 's'}, {APR_KIND, "kind", 's'},
		{APR_STATUS, "status", 's'}, {APR_REVIEWERS, "reviewers", 'j'}, {APR_ESCALATE_TO, "escalate_to", 'j'},
		{APR_ESCALATED, "escalated", 'b'}, {APR_DUE_AT, "due_at", 't'}, {APR_TIMEOUT_MS, "timeout_ms", 'i'},
		{APR_ON_TIMEOUT, "on_timeout", 's'}, {APR_INPUT, "input", 'j'}, {APR_EVIDENCE, "evidence", 'j'},
		{APR_PROPOSED, "proposed", 'j'}, {APR_REASON, "reason", 's'}, {APR_DECISION, "decision", 'j'},
		{APR_CREATED, "created_at", 't'}, {APR_DECIDED, "decided_at", 't'},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(cols); i++) {
		const char *t = v[cols[i].col];
		json_t *j;
		switch (cols[i].type) {
		case 's': j = col_str(t); break;
		case 'j': j = col_json(t); break;
		case 't': j = col_time(t); break;
		case 'b': j = json_boolean(t && strtoll(t, NULL, 10) > 0); break;
		default: j = json_integer(t ? strtoll(t, NULL, 10) : 0); break;
		}
		json_object_set_new(d, cols[i].key, j);
	}
	return d;
}

/* What a step needs of its approval when it runs again: the decision, or
 * (pending: its timer fired) what to do on timeout. */
void sl_store__approval_ctx(json_t *context, const json_t *doc)
{
	const char *step = json_string_value(json_object_get(doc, "step_id"));
	if (!step || !json_is_object(context))
		return;
	json_t *all = json_object_get(context, "_approvals");
	if (!json_is_object(all)) {
		all = json_object();
		json_object_set_new(context, "_approvals", all);
	}
	json_t *e = json_pack("{s:O, s:O, s:O}", "id", json_object_get(doc, "id"), "kind", json_object_get(doc, "kind"),
			      "created_at", json_object_get(doc, "created_at"));
	const json_t *dec = json_object_get(doc, "decision");
	if (json_is_object(dec)) {
		json_object_update(e, (json_t *)dec);
	} else {
		static const char *const keys[] = {"due_at", "on_timeout", "escalate_to", "escalated", "timeout_ms",
						   "proposed", "reviewers", NULL};
		json_object_set_new(e, "decision", json_null());
		for (const char *const *k = keys; *k; k++)
			json_object_set(e, *k, json_object_get(doc, *k));
	}
	json_object_set_new(all, step, e);
}

int sl_store_approvals_list(struct sl_store *s, const struct sl_approval_filter *f, json_t **out, struct sl_err *err)
{
	NEED(s && out, "store and out are required");
	*out = NULL;
	struct sl_approval_filter any = {0};
	if (!f)
		f = &any;
	NEED(!f->status || sl_store__approval_status_ok(f->status), "unknown approval status");
	SLOT(s, approvals_list);
	return s->ops->approvals_list(s, f, out, err);
}

int sl_store_approval_get(struct sl_store *s, const char *id, json_t **out, struct sl_err *err)
{
	NEED(s && out, "store and out are required");
	*out = NULL;
	if (!id_ok(id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no approval %.64s", id ? id : "");
	SLOT(s, approval_get);
	return s->ops->approval_get(s, id, out, err);
}

int sl_store_approval_decide(struct sl_store *s, const char *id, const char *status, const json_t *decision,
			     const json_t *audit, json_t **out, struct sl_err *err)
{
	NEED(s, "store is required");
	if (out)
		*out = NULL;
	NEED(status && strcmp(status, "pending") != 0 && sl_store__approval_status_ok(status),
	     "a decision's status is approved, rejected, edited or expired");
	NEED(json_is_object(decision), "a decision is an object");
	NEED(!audit || sl_store__audit_entry_ok(audit), "an audit entry is an object with a non-empty \"action\"");
	if (!id_ok(id))
		return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "store: no approval %.64s", id ? id : "");
	SLOT(s, approval_decide);
	json_t *doc = NULL;
	int rc = s->ops->approval_decide(s, id, status, decision, s->ops->audit_append ? audit : NULL, &doc, err);
	if (!rc && out)
		*out = doc;
	else
		json_decref(doc);
	return rc;
}
