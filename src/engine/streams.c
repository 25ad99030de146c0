/*
 * streams.c: the consumers of stream triggers (trigger: {stream: CONNECTOR}).
 *
 * Each consumer is a thread with its own subscription (one member of the
 * consumer group). It fetches a batch, starts one run per message through
 * sl_engine_start_run (which returns only once the run is durable), and
 * then acknowledges the batch. So:
 *   - a crash before the ack makes the broker deliver the message again, and
 *     the run's idempotency key (the workflow and the message identity) finds
 *     the first run: exactly one run per message;
 *   - a crash after the run's commit and before the ack costs a duplicate
 *     delivery, counted, never a second run;
 *   - a consumer holds one batch at a time, so a slow store slows the
 *     reading instead of filling memory (backpressure). A batch's runs are
 *     started by STREAM_STARTERS threads at once, and consumers run side by
 *     side, so the store groups the creates into shared transactions. Runs
 *     are therefore not created in stream order (no stream order is kept
 *     across a consumer group anyway).
 */
#include "engine/engine_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obs/obs.h"

#define STREAM_BATCH 32          /* messages held by one consumer at a time */
#define STREAM_WAIT_MS 500       /* longest wait of a fetch: how soon a stop is seen */
#define STREAM_BACKOFF_MAX_MS 5000
#define STREAM_LAG_EVERY_MS 1000
#define STREAM_STARTERS 8        /* threads starting one batch's runs at once */

struct stream_consumer {
	struct engine_streams *owner;
	struct sl_workflow *wf;    /* borrowed: the project's current version */
	struct sl_connector *conn; /* borrowed */
	int index;                 /* among the workflow's consumers; 0 reclaims and reports lag */
	pthread_t thread;
	bool started;
};

struct engine_streams {
	struct sl_engine *e;
	atomic_bool running;
	struct stream_consumer *v;
	size_t n;
};

char *sl_engine_stream_key(const char *workflow, const char *identity)
{
	return sl_asprintf("%s|%s", workflow, identity);
}

static bool running(const struct stream_consumer *sc)
{
	return atomic_load(&sc->owner->running);
}

/* Sleeps ms in small steps, returning early on stop. */
static void pause_ms(const struct stream_consumer *sc, int64_t ms)
{
	int64_t until = sl_mono_ms() + ms;
	while (running(sc) && sl_mono_ms() < until) {
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static int64_t backoff(int failures)
{
	int64_t ms = 100LL << (failures < 6 ? failures : 6);
	return ms > STREAM_BACKOFF_MAX_MS ? STREAM_BACKOFF_MAX_MS : ms;
}

/* Errors are logged once per change of message, so a broker that is down
 * does not flood the log. */
static void log_failure(const struct stream_consumer *sc, const char *what, const struct sl_err *err, char *last,
			size_t lastcap)
{
	if (strncmp(last, err->msg, lastcap - 1) == 0)
		return;
	snprintf(last, lastcap, "%s", err->msg);
	sl_log(SL_LOG_WARN, "stream", what, "workflow", sc->wf->name, "connector", sc->conn->name, "class",
	       sl_class_name(err->cls), "error", err->msg, NULL);
}

/* Starts the run of one message. Returns 1 when it can be acknowledged
 * (started, found, or never startable), 0 when it must stay unacknowledged
 * (the store failed: a later delivery tries again). */
static int start_one(struct stream_consumer *sc, const struct sl_stream_msg *m, uint64_t *dups)
{
	struct sl_engine *e = sc->owner->e;
	char *key = sl_engine_stream_key(sc->wf->name, m->identity);
	struct sl_start st = {
		.workflow = sc->wf->name,
		.input = m->data,
		.idem_scope = "stream",
		.idem_key = key,
		.trigger = "stream",
	};
	char run_id[SL_ID_MAX];
	bool existed = false;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_engine_start_run(e, &st, run_id, &existed, &err);
	free(key);
	if (rc == 0) {
		if (existed)
			(*dups)++;
		return 1;
	}
	if (err.cls == SL_CLASS_CONTRACT || rc == SL_ENOTFOUND || (rc == SL_EINVAL && err.cls != SL_CLASS_TRANSIENT)) {
		const char *r[] = {sc->conn->name, sl_class_name(err.cls)};
		sl_metric_add(SL_M_STREAM_REJECTED, r, 1);
		sl_log(SL_LOG_WARN, "stream", "message rejected", "workflow", sc->wf->name, "connector", sc->conn->name,
		       "message", m->identity, "error", err.msg, NULL);
		return 1;
	}
	sl_log(SL_LOG_WARN, "stream", "run not started; the message will be delivered again", "workflow",
	       sc->wf->name, "connector", sc->conn->name, "message", m->identity, "error", err.msg, NULL);
	return 0;
}

/* The runs of one batch are started by several threads at once, so the
 * store commits them together (group commit) instead of one fsync each. */
struct starters {
	struct stream_consumer *sc;
	struct sl_stream_msg *msgs;
	size_t n;
	atomic_size_t next;
	int result[STREAM_BATCH]; /* 1: may be acknowledged */
	uint64_t dup[STREAM_BATCH];
};

static void *starter_main(void *arg)
{
	struct starters *st = arg;
	for (size_t i; (i = atomic_fetch_add(&st->next, 1)) < st->n;)
		st->result[i] = start_one(st->sc, &st->msgs[i], &st->dup[i]);
	return NULL;
}

static void start_all(struct starters *st)
{
	pthread_t t[STREAM_STARTERS];
	size_t nt = 0;
	for (; nt + 1 < STREAM_STARTERS && nt + 1 < st->n; nt++)
		if (pthread_create(&t[nt], NULL, starter_main, st))
			break; /* fewer helpers: this thread does the rest */
	starter_main(st);
	for (size_t i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
}

/* Starts the batch's runs, then acknowledges the longest prefix of them
 * that may be (Kafka commits offsets, which are a prefix per partition).
 * Returns the number left unacknowledged: they come again, and those whose
 * runs were made meanwhile count as duplicates then. */
static size_t handle_batch(struct stream_consumer *sc, void *sub, struct sl_stream_msg *msgs, size_t n)
{
	struct starters *st = sl_xcalloc(1, sizeof *st);
	st->sc = sc;
	st->msgs = msgs;
	st->n = n;
	start_all(st);
	uint64_t dups = 0, redelivered = 0;
	size_t ok = 0;
	for (; ok < n && st->result[ok]; ok++) {
		dups += st->dup[ok];
		redelivered += msgs[ok].redelivered;
	}
	free(st);
	struct sl_err err;
	if (ok && sl_stream_ack(sc->conn, sub, msgs, ok, &err)) {
		/* Unacknowledged, they come again and find their runs: duplicates, not doubles. */
		sl_log(SL_LOG_WARN, "stream", "ack failed", "connector", sc->conn->name, "error", err.msg, NULL);
	}
	const char *l[] = {sc->conn->name};
	sl_metric_add(SL_M_STREAM_CONSUMED, l, (double)(ok - dups));
	if (redelivered)
		sl_metric_add(SL_M_STREAM_REDELIVERIES, l, (double)redelivered);
	if (dups)
		sl_metric_add(SL_M_STREAM_DUPLICATES, l, (double)dups);
	sl_stream_count(sc->conn, ok - dups, redelivered, dups);
	return n - ok;
}

static void report_lag(struct stream_consumer *sc, void *sub, const char *group, int64_t *next)
{
	int64_t now = sl_mono_ms();
	if (sc->index != 0 || now < *next)
		return;
	*next = now + STREAM_LAG_EVERY_MS;
	int64_t lag;
	struct sl_err err;
	if (sl_stream_lag(sc->conn, sub, &lag, &err) == 0 && lag >= 0) {
		const char *l[] = {sc->conn->name, group};
		sl_metric_set(SL_M_STREAM_LAG, l, (double)lag);
	}
}

static void *consumer_main(void *arg)
{
	struct stream_consumer *sc = arg;
	char host[64] = "host", consumer[256], last[128] = "";
	gethostname(host, sizeof host - 1);
	snprintf(consumer, sizeof consumer, "%s-%ld-%s-%d", host, (long)getpid(), sc->wf->name, sc->index);
	struct sl_stream_sub_opts so = {.group = sc->wf->trigger.group, .consumer = consumer, .reclaim = sc->index == 0};
	const char *group = so.group ? so.group : "";
	struct sl_stream_msg msgs[STREAM_BATCH];
	memset(msgs, 0, sizeof msgs);
	void *sub = NULL;
	int failures = 0;
	int64_t next_lag = 0;
	struct sl_err err;
	while (running(sc)) {
		if (!sub && sl_stream_open(sc->conn, &so, &sub, &err)) {
			log_failure(sc, "cannot join the consumer group", &err, last, sizeof last);
			sl_stream_close(sc->conn, sub);
			sub = NULL;
			pause_ms(sc, backoff(failures++));
			continue;
		}
		report_lag(sc, sub, group, &next_lag);
		size_t n = 0;
		if (sl_stream_fetch(sc->conn, sub, STREAM_BATCH, STREAM_WAIT_MS, msgs, &n, &err)) {
			log_failure(sc, "fetch failed", &err, last, sizeof last);
			pause_ms(sc, backoff(failures++));
			continue;
		}
		failures = 0;
		last[0] = 0;
		size_t left = n ? handle_batch(sc, sub, msgs, n) : 0;
		sl_stream_msgs_free(sc->conn, msgs, n);
		if (left)
			pause_ms(sc, backoff(2));
	}
	sl_stream_close(sc->conn, sub);
	return NULL;
}

static size_t count_consumers(const struct sl_project *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		if (w->trigger.kind == SL_TRIGGER_STREAM && w->trigger.stream && sl_project_workflow(p, w->name) == w)
			n += (size_t)(w->trigger.consumers > 0 ? w->trigger.consumers : 1);
	}
	return n;
}

int sl_engine_streams_start(struct sl_engine *e, struct sl_err *err)
{
	struct sl_project *p = e->project;
	size_t n = count_consumers(p);
	if (n == 0 || e->streams)
		return 0;
	struct engine_streams *es = sl_xcalloc(1, sizeof *es);
	es->e = e;
	atomic_store(&es->running, true);
	es->v = sl_xcalloc(n, sizeof *es->v);
	for (size_t i = 0; i < p->nworkflows; i++) {
		struct sl_workflow *w = p->workflows[i];
		if (w->trigger.kind != SL_TRIGGER_STREAM || !w->trigger.stream || sl_project_workflow(p, w->name) != w)
			continue;
		int k = w->trigger.consumers > 0 ? w->trigger.consumers : 1;
		for (int j = 0; j < k; j++)
			es->v[es->n++] = (struct stream_consumer){.owner = es, .wf = w, .conn = w->trigger.stream, .index = j};
	}
	e->streams = es;
	for (size_t i = 0; i < es->n; i++) {
		if (pthread_create(&es->v[i].thread, NULL, consumer_main, &es->v[i])) {
			sl_engine_streams_stop(e);
			return sl_err_set(err, SL_ENOMEM, SL_CLASS_NONE, "cannot start a stream consumer thread");
		}
		es->v[i].started = true;
	}
	char count[16];
	snprintf(count, sizeof count, "%zu", es->n);
	sl_log(SL_LOG_INFO, "stream", "consumers started", "count", count, NULL);
	return 0;
}

void sl_engine_streams_stop(struct sl_engine *e)
{
	struct engine_streams *es = e->streams;
	if (!es)
		return;
	atomic_store(&es->running, false);
	for (size_t i = 0; i < es->n; i++)
		if (es->v[i].started)
			pthread_join(es->v[i].thread, NULL);
	free(es->v);
	free(es);
	e->streams = NULL;
}
