/*
 * export.c: the OTLP/HTTP trace exporter. When a run ends, its span tree
 * (sl_trace_from_run) is sent to `otlp_endpoint` as OTLP/JSON by one
 * background thread, batched (up to EXPORT_BATCH runs per request, or
 * whatever arrived within EXPORT_LINGER_MS). The queue is bounded: when
 * the collector is slow or down, new runs are dropped and counted, never
 * waited for, so tracing can never slow a run down.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "obs/obs.h"

#define EXPORT_BATCH 64
#define EXPORT_LINGER_MS 200
#define EXPORT_TIMEOUT_MS 5000

struct sl_otlp {
	char *url; /* .../v1/traces */
	sl_otlp_load_fn load;
	void *ud;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char **queue; /* run ids, a ring */
	size_t cap, head, n;
	bool stopping;
};

static char *traces_url(const char *endpoint)
{
	size_t n = strlen(endpoint);
	while (n && endpoint[n - 1] == '/')
		n--;
	const char *scheme = strstr(endpoint, "://");
	bool has_path = scheme && memchr(scheme + 3, '/', n - (size_t)(scheme + 3 - endpoint));
	/* a bare collector address gets the OTLP/HTTP default path */
	return has_path ? sl_strndup(endpoint, n) : sl_asprintf("%.*s/v1/traces", (int)n, endpoint);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p, (void)ud;
	return size * n;
}

static size_t count_spans(const json_t *doc)
{
	size_t n = 0, i, j;
	const json_t *rs, *ss;
	json_array_foreach(json_object_get(doc, "resourceSpans"), i, rs)
		json_array_foreach(json_object_get(rs, "scopeSpans"), j, ss)
			n += json_array_size(json_object_get(ss, "spans"));
	return n;
}

/* POSTs one request holding every run's resourceSpans; 0 on a 2xx. */
static int post(const struct sl_otlp *x, json_t *batch)
{
	char *body = json_dumps(batch, JSON_COMPACT | SL_JSON_REAL);
	if (!body)
		return -1;
	CURL *c = curl_easy_init();
	if (!c) {
		free(body);
		return -1;
	}
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, x->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)EXPORT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(body);
	if (rc != CURLE_OK || status / 100 != 2) {
		sl_log(SL_LOG_WARN, "obs", "OTLP export failed", "url", x->url, "error",
		       rc != CURLE_OK ? curl_easy_strerror(rc) : "non-2xx answer", NULL);
		return -1;
	}
	return 0;
}

/* Takes up to EXPORT_BATCH run ids off the queue (waiting for the first,
 * then lingering briefly for more). Returns how many; 0 when stopping and
 * empty. */
static size_t take(struct sl_otlp *x, char **ids)
{
	pthread_mutex_lock(&x->mu);
	while (x->n == 0 && !x->stopping)
		pthread_cond_wait(&x->cv, &x->mu);
	if (x->n && x->n < EXPORT_BATCH && !x->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += EXPORT_LINGER_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&x->cv, &x->mu, &until);
	}
	size_t k = 0;
	while (x->n && k < EXPORT_BATCH) {
		ids[k++] = x->queue[x->head];
		x->head = (x->head + 1) % x->cap;
		x->n--;
	}
	pthread_mutex_unlock(&x->mu);
	return k;
}

static void *export_main(void *arg)
{
	struct sl_otlp *x = arg;
	char *ids[EXPORT_BATCH];
	size_t k;
	while ((k = take(x, ids)) > 0) {
		json_t *all = json_array();
		size_t spans = 0;
		for (size_t i = 0; i < k; i++) {
			json_t *run = x->load(x->ud, ids[i]);
			json_t *doc = run ? sl_trace_from_run(run) : NULL;
			if (doc) {
				spans += count_spans(doc);
				json_array_extend(all, json_object_get(doc, "resourceSpans"));
			}
			json_decref(doc);
			json_decref(run);
			free(ids[i]);
		}
		json_t *batch = json_pack("{s:o}", "resourceSpans", all);
		bool ok = spans == 0 || post(x, batch) == 0;
		sl_metric_add(ok ? SL_M_OTLP_SPANS : SL_M_OTLP_DROPPED, NULL, (double)spans);
		json_decref(batch);
	}
	return NULL;
}

struct sl_otlp *sl_otlp_start(const char *endpoint, size_t queue_max, sl_otlp_load_fn load, void *ud)
{
	struct sl_otlp *x = sl_xcalloc(1, sizeof *x);
	x->url = traces_url(endpoint);
	x->load = load;
	x->ud = ud;
	x->cap = queue_max ? queue_max : 4096;
	x->queue = sl_xcalloc(x->cap, sizeof *x->queue);
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	if (pthread_create(&x->thread, NULL, export_main, x) != 0) {
		free(x->queue);
		free(x->url);
		free(x);
		return NULL;
	}
	return x;
}

void sl_otlp_run_ended(struct sl_otlp *x, const char *run_id)
{
	if (!x || !run_id)
		return;
	pthread_mutex_lock(&x->mu);
	bool full = x->n == x->cap || x->stopping;
	if (!full) {
		x->queue[(x->head + x->n) % x->cap] = sl_strdup(run_id);
		x->n++;
		pthread_cond_signal(&x->cv);
	}
	pthread_mutex_unlock(&x->mu);
	if (full) /* the run's spans are not known here; count the run */
		sl_metric_add(SL_M_OTLP_DROPPED_RUNS, NULL, 1);
}

void sl_otlp_stop(struct sl_otlp *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	x->stopping = true; /* what is queued is still sent */
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
	pthread_join(x->thread, NULL);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x->queue);
	free(x->url);
	free(x);
}
