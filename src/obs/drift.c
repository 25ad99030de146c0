/*
 * drift.c: has an AI step's behaviour moved? The recent outputs of a step
 * are compared with a baseline window of its outputs before them, on three
 * distributions: the labels (classify, route), the confidence (10 bins of
 * 0.1) and the output's length (summarize, draft: bins of doubling size).
 * Each comparison is a population stability index,
 *
 *   PSI = sum over bins of (r - b) * ln(r / b)
 *
 * with r and b the recent and baseline shares, each bin smoothed by a
 * half-count so an empty bin does not make it infinite. By the usual rule
 * of thumb, below 0.1 nothing moved, 0.1-0.25 a little, above 0.25 a lot.
 */
#include <math.h>
#include <string.h>

#include "obs/obs.h"

#define CONF_BINS 10
#define LEN_BINS 16

struct dist {
	json_t *labels; /* label -> count */
	double conf[CONF_BINS];
	double len[LEN_BINS];
	size_t n, with_conf, with_len;
};

static size_t len_bin(size_t len)
{
	size_t b = 0;
	while (len > 16 && b < LEN_BINS - 1) { /* 0-16, 17-32, 33-64, ... bytes */
		len = (len + 1) / 2;
		b++;
	}
	return b;
}

static void dist_add(struct dist *d, const json_t *out)
{
	d->n++;
	const char *label = json_string_value(json_object_get(out, "label"));
	if (label) {
		json_t *c = json_object_get(d->labels, label);
		json_object_set_new(d->labels, label, json_integer(json_integer_value(c) + 1));
	}
	const json_t *conf = json_object_get(out, "confidence");
	if (json_is_number(conf)) {
		double v = json_number_value(conf);
		int b = (int)(v * CONF_BINS);
		d->conf[b < 0 ? 0 : b >= CONF_BINS ? CONF_BINS - 1 : b]++;
		d->with_conf++;
	}
	const char *text = json_string_value(json_object_get(out, "text"));
	if (text) {
		d->len[len_bin(strlen(text))]++;
		d->with_len++;
	}
}

static double psi_term(double r, double rn, double b, double bn, size_t bins)
{
	/* a half count in every bin keeps empty ones finite */
	double rp = (r + 0.5) / (rn + 0.5 * (double)bins), bp = (b + 0.5) / (bn + 0.5 * (double)bins);
	return (rp - bp) * log(rp / bp);
}

static double psi_bins(const double *r, size_t rn, const double *b, size_t bn, size_t bins)
{
	double psi = 0;
	for (size_t i = 0; i < bins; i++)
		psi += psi_term(r[i], (double)rn, b[i], (double)bn, bins);
	return psi;
}

static double psi_labels(const struct dist *r, const struct dist *b)
{
	json_t *all = json_deep_copy(r->labels);
	json_object_update(all, b->labels);
	size_t bins = json_object_size(all);
	double rn = 0, bn = 0, psi = 0;
	const char *k;
	json_t *v;
	json_object_foreach(r->labels, k, v)
		rn += (double)json_integer_value(v);
	json_object_foreach(b->labels, k, v)
		bn += (double)json_integer_value(v);
	json_object_foreach(all, k, v)
		psi += psi_term((double)json_integer_value(json_object_get(r->labels, k)), rn,
				(double)json_integer_value(json_object_get(b->labels, k)), bn, bins);
	json_decref(all);
	return psi;
}

static json_t *dist_json(const struct dist *d)
{
	json_t *o = json_pack("{s:I, s:O}", "n", (json_int_t)d->n, "labels", d->labels);
	double sum = 0;
	for (int i = 0; i < CONF_BINS; i++)
		sum += d->conf[i] * ((double)i + 0.5) / CONF_BINS;
	json_object_set_new(o, "mean_confidence", d->with_conf ? json_real(sum / (double)d->with_conf) : json_null());
	return o;
}

static json_t *psi_or_null(bool enough, double v)
{
	return enough ? json_real(round(v * 10000) / 10000) : json_null();
}

json_t *sl_drift_compare(const json_t *recent, const json_t *baseline, double threshold, size_t min_n)
{
	struct dist r = {.labels = json_object()}, b = {.labels = json_object()};
	size_t i;
	const json_t *o;
	json_array_foreach(recent, i, o)
		dist_add(&r, o);
	json_array_foreach(baseline, i, o)
		dist_add(&b, o);
	bool enough = r.n >= min_n && b.n >= min_n;
	bool labels = json_object_size(r.labels) || json_object_size(b.labels);
	double pl = labels ? psi_labels(&r, &b) : 0;
	double pc = psi_bins(r.conf, r.with_conf, b.conf, b.with_conf, CONF_BINS);
	double pn = psi_bins(r.len, r.with_len, b.len, b.with_len, LEN_BINS);
	json_t *psi = json_pack("{s:o, s:o, s:o}", "label", psi_or_null(enough && labels, pl), "confidence",
				psi_or_null(enough && r.with_conf && b.with_conf, pc), "length",
				psi_or_null(enough && r.with_len && b.with_len, pn));
	const char *worst = NULL;
	double worst_v = 0;
	const char *k;
	json_t *v;
	json_object_foreach(psi, k, v)
		if (json_is_number(v) && json_number_value(v) > worst_v) {
			worst_v = json_number_value(v);
			worst = k;
		}
	bool drifted = enough && worst_v > threshold;
	json_t *doc = json_pack("{s:o, s:f, s:b, s:o, s:o, s:o}", "psi", psi, "threshold", threshold, "drifted", drifted,
				"signal", drifted ? json_string(worst) : json_null(), "recent", dist_json(&r), "baseline",
				dist_json(&b));
	if (!enough)
		json_object_set_new(doc, "note", json_sprintf("needs at least %zu outputs in each window", min_n));
	json_decref(r.labels);
	json_decref(b.labels);
	return doc;
}
