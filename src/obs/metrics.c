/*
 * metrics.c: the metric families of obs.h, their series, and the
 * Prometheus text format. One mutex per family: a record is a lookup (hash
 * compare, then the joined label values) and an add, well under a
 * microsecond, so the hot paths (HTTP requests, steps, model calls) do not
 * notice it.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/obs.h"

enum family_type { COUNTER, GAUGE, HISTOGRAM };

/* Seconds: from a fast accept to a slow model call. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				 0.25,   0.5,   1,      2.5,   5,    10,    30,    60};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])
/* Seconds a person takes: from a minute to a week (approval waits). */
static const double human_buckets[] = {1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800};
_Static_assert(sizeof human_buckets <= sizeof buckets, "a series has room for NBUCKETS");

struct series {
	uint64_t hash;
	char *key; /* label values joined by '\x1f' */
	double value; /* counter, gauge; histogram: the sum */
	uint64_t count;
	uint64_t bucket[NBUCKETS]; /* not cumulative; summed when rendered */
};

struct family {
	const char *name, *help, *label_spec;
	enum family_type type;
	char labels[SL_METRIC_LABELS_MAX][32];
	int nlabels;
	const double *le; /* histograms: the bucket bounds */
	size_t nle;
	pthread_mutex_t mu;
	struct series *v;
	size_t n, cap;
};

static struct family families[SL_M__COUNT] = {
#define SL_METRIC_INIT(e, t, nm, hp, lb) [SL_M_##e] = {.name = nm, .help = hp, .label_spec = lb, .type = t},
	SL_METRICS(SL_METRIC_INIT)
#undef SL_METRIC_INIT
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
/* SLUICE_METRICS=off turns recording off (bench/obs.sh measures what
 * metrics cost with and without); /metrics then shows only the gauges its
 * collectors fill at scrape time. */
static bool recording = true;

struct collector {
	sl_metrics_collect_fn fn;
	void *ud;
};
static pthread_mutex_t collectors_mu = PTHREAD_MUTEX_INITIALIZER;
static struct collector collectors[16];
static size_t ncollectors;

static void init_families(void)
{
	const char *env = getenv("SLUICE_METRICS");
	recording = !(env && strcmp(env, "off") == 0);
	for (size_t i = 0; i < SL_M__COUNT; i++) {
		struct family *f = &families[i];
		pthread_mutex_init(&f->mu, NULL);
		bool human = i == SL_M_APPROVAL_WAIT;
		f->le = human ? human_buckets : buckets;
		f->nle = human ? SL_ARRAY_LEN(human_buckets) : NBUCKETS;
		const char *p = f->label_spec;
		while (*p && f->nlabels < SL_METRIC_LABELS_MAX) {
			size_t n = strcspn(p, ",");
			snprintf(f->labels[f->nlabels++], sizeof f->labels[0], "%.*s", (int)n, p);
			p += n + (p[n] == ',');
		}
	}
}

static struct family *family(enum sl_metric m)
{
	pthread_once(&init_once, init_families);
	return (unsigned)m < SL_M__COUNT ? &families[m] : NULL;
}

/* A family to record into, or NULL when recording is off. */
static struct family *recorded(enum sl_metric m)
{
	struct family *f = family(m);
	return recording ? f : NULL;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The family's label values joined; a value holding the separator is cut
 * there (it could not be told apart when rendered). */
static void join_labels(const struct family *f, const char *const *labels, struct sl_buf *key)
{
	for (int i = 0; i < f->nlabels; i++) {
		const char *v = labels && labels[i] ? labels[i] : "";
		if (i)
			sl_buf_addc(key, '\x1f');
		sl_buf_add(key, v, strcspn(v, "\x1f"));
	}
}

static struct series *series_find(struct family *f, const char *key, uint64_t h)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].hash == h && strcmp(f->v[i].key, key) == 0)
			return &f->v[i];
	return NULL;
}

/* The series for labels, created when new; past the bound, the one series
 * whose every value is "_other" (the only one allowed beyond it). Under
 * f->mu. */
static struct series *series_get(struct family *f, const char *const *labels)
{
	static const char *const other[SL_METRIC_LABELS_MAX] = {"_other", "_other", "_other", "_other"};
	struct sl_buf key;
	sl_buf_init(&key, 4096);
	join_labels(f, labels, &key);
	uint64_t h = fnv1a(sl_buf_str(&key));
	struct series *s = series_find(f, sl_buf_str(&key), h);
	if (!s && f->n >= SL_METRIC_SERIES_MAX) {
		sl_buf_reset(&key);
		join_labels(f, other, &key);
		h = fnv1a(sl_buf_str(&key));
		s = series_find(f, sl_buf_str(&key), h);
	}
	if (s) {
		sl_buf_free(&key);
		return s;
	}
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 16;
		f->v = sl_xrealloc(f->v, f->cap * sizeof *f->v);
	}
	s = &f->v[f->n++];
	memset(s, 0, sizeof *s);
	s->hash = h;
	s->key = sl_buf_detach(&key);
	return s;
}

void sl_metric_add(enum sl_metric m, const char *const *labels, double v)
{
	struct family *f = recorded(m);
	if (!f || !(v >= 0) || f->type == HISTOGRAM)
		return;
	pthread_mutex_lock(&f->mu);
	struct series *s = series_get(f, labels);
	if (s)
		s->value += v;
	pthread_mutex_unlock(&f->mu);
}

void sl_metric_set(enum sl_metric m, const char *const *labels, double v)
{
	struct family *f = family(m);
	if (!f || f->type == HISTOGRAM)
		return;
	pthread_mutex_lock(&f->mu);
	struct series *s = series_get(f, labels);
	if (s)
		s->value = v;
	pthread_mutex_unlock(&f->mu);
}

void sl_metric_observe(enum sl_metric m, const char *const *labels, double v)
{
	struct family *f = recorded(m);
	if (!f || f->type != HISTOGRAM || isnan(v))
		return;
	pthread_mutex_lock(&f->mu);
	struct series *s = series_get(f, labels);
	if (s) {
		s->value += v;
		s->count++;
		for (size_t i = 0; i < f->nle; i++)
			if (v <= f->le[i]) {
				s->bucket[i]++;
				break;
			}
	}
	pthread_mutex_unlock(&f->mu);
}

static void family_clear(struct family *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].key);
	f->n = 0;
}

void sl_metric_clear(enum sl_metric m)
{
	struct family *f = family(m);
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	family_clear(f);
	pthread_mutex_unlock(&f->mu);
}

void sl_metrics_reset(void)
{
	for (int m = 0; m < SL_M__COUNT; m++)
		sl_metric_clear((enum sl_metric)m);
}

void sl_metrics_collector_add(sl_metrics_collect_fn fn, void *ud)
{
	pthread_mutex_lock(&collectors_mu);
	if (ncollectors < SL_ARRAY_LEN(collectors))
		collectors[ncollectors++] = (struct collector){fn, ud};
	pthread_mutex_unlock(&collectors_mu);
}

void sl_metrics_collector_remove(sl_metrics_collect_fn fn, void *ud)
{
	pthread_mutex_lock(&collectors_mu);
	for (size_t i = 0; i < ncollectors; i++)
		if (collectors[i].fn == fn && collectors[i].ud == ud) {
			collectors[i] = collectors[--ncollectors];
			break;
		}
	pthread_mutex_unlock(&collectors_mu);
}

/* ---- the text format ----------------------------------------------------------------- */

static void add_escaped(struct sl_buf *b, const char *s, size_t n, bool help)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\\')
			sl_buf_adds(b, "\\\\");
		else if (c == '\n')
			sl_buf_adds(b, "\\n");
		else if (c == '"' && !help)
			sl_buf_adds(b, "\\\"");
		else
			sl_buf_addc(b, c);
	}
}

static void add_number(struct sl_buf *b, double v)
{
	if (isinf(v))
		sl_buf_adds(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		sl_buf_printf(b, "%.0f", v);
	else
		sl_buf_printf(b, "%.15g", v);
}

/* {a="x",b="y"[,le="0.5"]} */
static void add_labels(struct sl_buf *b, const struct family *f, const char *key, const char *le)
{
	if (f->nlabels == 0 && !le)
		return;
	sl_buf_addc(b, '{');
	const char *p = key;
	for (int i = 0; i < f->nlabels; i++) {
		size_t n = strcspn(p, "\x1f");
		sl_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
		add_escaped(b, p, n, false);
		sl_buf_addc(b, '"');
		p += n + (p[n] == '\x1f');
	}
	if (le)
		sl_buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	sl_buf_addc(b, '}');
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct series *)a)->key, ((const struct series *)b)->key);
}

static void render_histogram(struct sl_buf *b, const struct family *f, const struct series *s)
{
	uint64_t cum = 0;
	for (size_t i = 0; i < f->nle; i++) {
		cum += s->bucket[i];
		char le[32];
		snprintf(le, sizeof le, "%g", f->le[i]);
		sl_buf_printf(b, "%s_bucket", f->name);
		add_labels(b, f, s->key, le);
		sl_buf_printf(b, " %llu\n", (unsigned long long)cum);
	}
	sl_buf_printf(b, "%s_bucket", f->name);
	add_labels(b, f, s->key, "+Inf");
	sl_buf_printf(b, " %llu\n%s_sum", (unsigned long long)s->count, f->name);
	add_labels(b, f, s->key, NULL);
	sl_buf_addc(b, ' ');
	add_number(b, s->value);
	sl_buf_printf(b, "\n%s_count", f->name);
	add_labels(b, f, s->key, NULL);
	sl_buf_printf(b, " %llu\n", (unsigned long long)s->count);
}

static void render_family(struct sl_buf *b, struct family *f)
{
	pthread_mutex_lock(&f->mu);
	if (f->n == 0 && f->nlabels == 0 && f->type != HISTOGRAM)
		series_get(f, NULL); /* an unlabelled family always shows, at 0 */
	if (f->n) {
		static const char *const type_names[] = {"counter", "gauge", "histogram"};
		sl_buf_printf(b, "# HELP %s ", f->name);
		add_escaped(b, f->help, strlen(f->help), true);
		sl_buf_printf(b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
		qsort(f->v, f->n, sizeof *f->v, by_key);
		for (size_t i = 0; i < f->n; i++) {
			const struct series *s = &f->v[i];
			if (f->type == HISTOGRAM) {
				render_histogram(b, f, s);
				continue;
			}
			sl_buf_adds(b, f->name);
			add_labels(b, f, s->key, NULL);
			sl_buf_addc(b, ' ');
			add_number(b, s->value);
			sl_buf_addc(b, '\n');
		}
	}
	pthread_mutex_unlock(&f->mu);
}

char *sl_metrics_render(void)
{
	pthread_once(&init_once, init_families);
	/* under the lock: a collector's owner removes it before it dies */
	pthread_mutex_lock(&collectors_mu);
	for (size_t i = 0; i < ncollectors; i++)
		collectors[i].fn(collectors[i].ud);
	pthread_mutex_unlock(&collectors_mu);
	struct sl_buf b;
	sl_buf_init(&b, 64 * 1024 * 1024);
	for (size_t i = 0; i < SL_M__COUNT; i++)
		render_family(&b, &families[i]);
	return sl_buf_detach(&b);
}
