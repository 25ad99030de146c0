/*
 * bench_local: the built-in local models (src/ai/local.h) on one thread.
 *
 * Loads a trained classifier (default: the support-triage example's
 * `triage`), then classifies every text of a labelled JSONL file (default:
 * its test set) round after round, timing each prediction: predictions per
 * second and the p50/p99 latency of one prediction. Then the pattern
 * extractors over the same texts: extractions (local_extract_all) and PII
 * scans (local_pii_spans) per second. Baseline to compare with: an external
 * model call, hundreds of milliseconds.
 *
 *   bench_local [DIR NAME [FILE]] [SECONDS]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ai/local.h"
#include "util/util.h"

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static char **read_texts(const char *path, size_t *n)
{
	char *data;
	size_t len;
	struct sl_err err;
	if (sl_file_read(path, SL_BUF_MAX_FILE, &data, &len, &err)) {
		fprintf(stderr, "bench_local: %s\n", err.msg);
		exit(2);
	}
	char **v = NULL;
	size_t cap = 0;
	*n = 0;
	for (char *line = data; line < data + len;) {
		char *nl = memchr(line, '\n', (size_t)(data + len - line));
		size_t ll = nl ? (size_t)(nl - line) : (size_t)(data + len - line);
		json_t *o = json_loadb(line, ll, 0, NULL);
		line += ll + 1;
		const char *t = json_string_value(json_object_get(o, "text"));
		if (t) {
			if (*n == cap)
				v = sl_xrealloc(v, (cap = cap ? cap * 2 : 256) * sizeof *v);
			v[(*n)++] = sl_strdup(t);
		}
		json_decref(o);
	}
	free(data);
	if (*n == 0) {
		fprintf(stderr, "bench_local: %s has no texts\n", path);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 2 ? argv[1] : "examples/support-triage", *name = argc > 2 ? argv[2] : "triage";
	char *mdir = sl_path_join(dir, "models");
	char *def = sl_asprintf("%s/%s.test.jsonl", mdir, name);
	const char *file = argc > 3 ? argv[3] : def;
	double seconds = 2;
	if (argc == 2 || argc == 5)
		seconds = strtod(argv[argc - 1], NULL);
	if (!(seconds > 0))
		seconds = 2;

	struct sl_err err;
	struct local_clf *m;
	int64_t t0 = now_ns();
	if (local_clf_load(mdir, name, &m, &err)) {
		fprintf(stderr, "bench_local: %s (train it: sluice model train %s %s)\n", err.msg, dir, name);
		return 2;
	}
	double load_ms = (double)(now_ns() - t0) / 1e6;
	size_t n;
	char **texts = read_texts(file, &n);
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += strlen(texts[i]);
	printf("model %s/%s loaded in %.1f ms; %zu texts of %zu bytes on average from %s\n", mdir, name, load_ms, n,
	       bytes / n, file);

	/* classify: per-prediction latency */
	size_t cap = 1 << 20, done = 0;
	int64_t *lat = sl_xmalloc(cap * sizeof *lat);
	const char *label;
	double conf;
	for (size_t i = 0; i < n; i++) /* warm up */
		local_clf_predict(m, texts[i], &label, &conf, NULL);
	int64_t start = now_ns(), end = start + (int64_t)(seconds * 1e9);
	while (now_ns() < end && done < cap) {
		for (size_t i = 0; i < n && done < cap; i++) {
			int64_t a = now_ns();
			local_clf_predict(m, texts[i], &label, &conf, NULL);
			lat[done++] = now_ns() - a;
		}
	}
	double el = (double)(now_ns() - start) / 1e9;
	qsort(lat, done, sizeof *lat, cmp_i64);
	printf("classify: %.0f predictions/s, latency p50 %.1f us, p99 %.1f us (%zu predictions)\n",
	       (double)done / el, (double)lat[done / 2] / 1e3, (double)lat[done * 99 / 100] / 1e3, done);
	free(lat);

	/* extractors */
	size_t ex = 0;
	start = now_ns();
	end = start + (int64_t)(seconds * 1e9);
	while (now_ns() < end)
		for (size_t i = 0; i < n; i++, ex++) {
			json_t *o;
			local_extract_all(texts[i], &o);
			json_decref(o);
		}
	el = (double)(now_ns() - start) / 1e9;
	printf("extract:  %.0f extractions/s (local_extract_all, %.1f MB/s)\n", (double)ex / el,
	       (double)ex * (double)(bytes / n) / el / 1e6);
	size_t px = 0;
	start = now_ns();
	end = start + (int64_t)(seconds * 1e9);
	while (now_ns() < end)
		for (size_t i = 0; i < n; i++, px++) {
			struct local_span *sp;
			size_t k;
			local_pii_spans(texts[i], &sp, &k);
			free(sp);
		}
	el = (double)(now_ns() - start) / 1e9;
	printf("pii:      %.0f scans/s (local_pii_spans)\n", (double)px / el);

	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	local_clf_free(m);
	free(mdir);
	free(def);
	return 0;
}
