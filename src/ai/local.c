/*
 * local.c: the `local` provider: built-in specialist models that need no
 * network (local.h). Residency local: text never leaves the process.
 *
 *   classify, route: the linear classifier DIR/models/NAME (NAME is the
 *     model's `model:`), loaded on first use and kept. Its calibrated
 *     probabilities are narrowed to the step's labels: the answer is the
 *     most probable allowed label, its confidence that label's share of
 *     the allowed labels' probability.
 *   extract: the pattern extractors fill the step's contract; the
 *     confidence is the share of required fields they found.
 *
 * A call costs no tokens.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ai/local.h"
#include "ai/provider.h"

#define LOCAL_MODELS_MAX 32 /* distinct classifiers one provider keeps loaded */

static const struct sl_conf_key local_keys[] = {
	{"type", SL_CONF_STRING, true, "openai, anthropic or local"},
	{"residency", SL_CONF_STRING, false, "local (the default here)"},
	{"breaker", SL_CONF_OBJECT, false, "{failures: N, cooldown: 30s}"},
	{"dir", SL_CONF_STRING, false, "where trained models are, relative to the project (default models)"},
	{NULL, 0, false, NULL},
};

struct local_priv {
	char *dir; /* the models folder */
	pthread_mutex_t mu;
	struct {
		char *name;
		struct local_clf *clf;
	} loaded[LOCAL_MODELS_MAX];
	size_t nloaded;
};

static int local_init(struct ai_provider *p, const json_t *cfg, struct sl_conf_ctx *ctx, const char *pointer)
{
	(void)ctx, (void)pointer;
	struct local_priv *lp = sl_xcalloc(1, sizeof *lp);
	const char *dir = json_string_value(json_object_get(cfg, "dir"));
	lp->dir = sl_path_join(p->project_dir ? p->project_dir : ".", dir ? dir : "models");
	pthread_mutex_init(&lp->mu, NULL);
	p->priv = lp;
	return 0;
}

static void local_free(struct ai_provider *p)
{
	struct local_priv *lp = p->priv;
	if (!lp)
		return;
	for (size_t i = 0; i < lp->nloaded; i++) {
		free(lp->loaded[i].name);
		local_clf_free(lp->loaded[i].clf);
	}
	pthread_mutex_destroy(&lp->mu);
	free(lp->dir);
	free(lp);
	p->priv = NULL;
}

static bool local_can(const struct ai_provider *p, const char *model, enum sl_ai_task task)
{
	(void)p, (void)model;
	return task == SL_AI_CLASSIFY || task == SL_AI_EXTRACT || task == SL_AI_ROUTE;
}

/* The classifier NAME, loaded once; models are immutable once loaded, so
 * predictions run without the lock. */
static int classifier(struct local_priv *lp, const char *name, struct local_clf **out, struct sl_err *err)
{
	if (!local_clf_name_ok(name))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "local model name '%.64s' is not valid", name);
	int rc = 0;
	pthread_mutex_lock(&lp->mu);
	*out = NULL;
	for (size_t i = 0; i < lp->nloaded && !*out; i++)
		if (strcmp(lp->loaded[i].name, name) == 0)
			*out = lp->loaded[i].clf;
	if (!*out) {
		if (lp->nloaded == LOCAL_MODELS_MAX) {
			rc = sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "more than %d local models in use",
					LOCAL_MODELS_MAX);
		} else {
			rc = local_clf_load(lp->dir, name, out, err);
			if (rc == SL_ENOTFOUND)
				sl_err_set(err, rc, SL_CLASS_PERMANENT,
					   "no local model '%s' in %s: train it with `sluice model train DIR %s`", name,
					   lp->dir, name);
			if (rc == 0) {
				lp->loaded[lp->nloaded].name = sl_strdup(name);
				lp->loaded[lp->nloaded++].clf = *out;
			}
		}
	}
	pthread_mutex_unlock(&lp->mu);
	if (rc && err->cls == SL_CLASS_NONE)
		err->cls = SL_CLASS_PERMANENT;
	return rc;
}

static bool allowed(const struct ai_call_in *in, const char *label)
{
	for (size_t i = 0; i < in->nlabels; i++)
		if (strcmp(in->labels[i], label) == 0)
			return true;
	return in->nlabels == 0;
}

static int local_classify(struct local_priv *lp, const struct ai_call_in *in, struct ai_call_out *out,
			  struct sl_err *err)
{
	struct local_clf *clf;
	int rc = classifier(lp, in->model, &clf, err);
	if (rc)
		return rc;
	size_t n;
	const char *const *labels = local_clf_labels(clf, &n);
	double *probs = sl_xcalloc(n, sizeof *probs);
	const char *top;
	double top_conf;
	rc = local_clf_predict(clf, in->text ? in->text : "", &top, &top_conf, probs);
	if (rc) {
		free(probs);
		return sl_err_set(err, rc, SL_CLASS_TRANSIENT, "local model %s: prediction failed", in->model);
	}
	double sum = 0, best = -1;
	const char *label = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!allowed(in, labels[i]))
			continue;
		sum += probs[i];
		if (probs[i] > best) {
			best = probs[i];
			label = labels[i];
		}
	}
	free(probs);
	if (!label)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
				  "local model %s knows none of the step's labels", in->model);
	double conf = sum > 0 ? best / sum : 0;
	conf = round(conf * 10000) / 10000; /* four digits say all there is to say */
	out->confidence = conf;
	out->json = json_pack("{s:s, s:f}", "label", label, "confidence", conf);
	out->text = json_dumps(out->json, JSON_COMPACT | SL_JSON_REAL);
	snprintf(out->finish, sizeof out->finish, "stop");
	return 0;
}

static int local_extract(const struct ai_call_in *in, struct ai_call_out *out, struct sl_err *err)
{
	if (!json_is_object(in->extract_schema))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "extract needs a contract");
	double conf = 0;
	int rc = local_extract_fill(in->text ? in->text : "", in->extract_schema, &out->json, &conf);
	if (rc)
		return sl_err_set(err, rc, SL_CLASS_PERMANENT, "local extractors could not read the contract");
	out->confidence = conf;
	out->text = json_dumps(out->json, JSON_COMPACT | SL_JSON_REAL);
	snprintf(out->finish, sizeof out->finish, "stop");
	return 0;
}

static int local_call(struct ai_provider *p, const struct ai_call_in *in, struct ai_call_out *out, struct sl_err *err)
{
	switch (in->task) {
	case SL_AI_CLASSIFY:
	case SL_AI_ROUTE: return local_classify(p->priv, in, out, err);
	case SL_AI_EXTRACT: return local_extract(in, out, err);
	default:
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "local models do not %s",
				  sl_ai_task_name(in->task));
	}
}

const struct ai_provider_type ai_local_type = {
	.name = "local",
	.external = false,
	.keys = local_keys,
	.init_fn = local_init,
	.can_fn = local_can,
	.call_fn = local_call,
	.free_fn = local_free,
};
