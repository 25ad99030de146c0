/*
 * cmd_model.c: `sluice model SUBCOMMAND`: the built-in local models
 * (src/ai/local.h): train a classifier from labelled JSONL, predict with
 * it, measure it on a test file, and run the pattern extractors.
 *
 * Subcommands are rows of one table (name, arguments, summary, main,
 * help), so a new one is a function and a row.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ai/local.h"
#include "cli/cli.h"

#define MODEL_STDIN_MAX SL_BUF_MAX_HTTP_BODY

struct model_sub {
	const char *name;
	const char *args;
	const char *summary;
	int (*main_fn)(int argc, char **argv); /* argv[0] is the subcommand */
	void (*help_fn)(FILE *out);
};

/* ---- shared ------------------------------------------------------------------------ */

/* TEXT, or stdin when "-". Returns owned, or NULL after an error message. */
static char *text_arg(const char *sub, const char *arg)
{
	if (strcmp(arg, "-") != 0)
		return sl_strdup(arg);
	struct sl_buf b;
	sl_buf_init(&b, MODEL_STDIN_MAX);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
		sl_buf_add(&b, chunk, n);
	if (b.err || ferror(stdin)) {
		fprintf(stderr, "sluice model %s: cannot read stdin (%s)\n", sub,
			b.err == SL_ETOOBIG ? "larger than 16 MiB" : "read error");
		sl_buf_free(&b);
		return NULL;
	}
	char *s = sl_buf_detach(&b);
	return s ? s : sl_strdup("");
}

/* Exit code for a library error: bad data fails (1), the rest is set-up (2). */
static int report_err(const char *sub, int rc, const struct sl_err *err)
{
	if (err->file[0] && err->line)
		fprintf(stderr, "%s:%d: error: %s\n", err->file, err->line, err->msg);
	else
		fprintf(stderr, "sluice model %s: %s\n", sub, err->msg[0] ? err->msg : sl_code_message(rc));
	return rc == SL_EINVAL ? EXIT_FAIL : EXIT_USAGE;
}

static char *models_dir(const char *dir)
{
	return sl_path_join(dir, "models");
}

/* Parses only -h-free options common to the subcommands that take none. */
static int no_options(const char *sub, int argc, char **argv)
{
	static const struct option opts[] = {{NULL, 0, NULL, 0}};
	optind = 1;
	opterr = 0;
	if (getopt_long(argc, argv, "+", opts, NULL) != -1) {
		char v[64];
		snprintf(v, sizeof v, "model %s", sub);
		return cli_usage_error(v, "unknown option '%s'", argv[optind - 1]);
	}
	return 0;
}

/* ---- train --------------------------------------------------------------------------- */

static void help_train(FILE *out)
{
	fprintf(out,
		"Usage: sluice model train [--data FILE] [--c C] [--bits N] [--folds N] DIR NAME\n\n"
		"Trains the local text classifier NAME of the project in DIR from labelled\n"
		"JSONL (one {\"text\": \"...\", \"label\": \"...\"} per line) and writes\n"
		"DIR/models/NAME.json and DIR/models/NAME.liblinear. Prints the labels and\n"
		"their counts, the training and held-out (cross-validated) accuracy and\n"
		"macro-F1, the calibration temperature and the calibration error (ECE).\n\n"
		"  --data FILE   the examples (default DIR/models/NAME.train.jsonl)\n"
		"  --c C         inverse regularisation strength (default %g)\n"
		"  --bits N      2^N hashed feature buckets, 10-24 (default %d)\n"
		"  --folds N     cross-validation folds for calibration, 2-20 (default %d)\n\n"
		"Exit: 0 trained, 1 the data is invalid (FILE:LINE: why), 2 usage or I/O.\n",
		LOCAL_C_DEFAULT, LOCAL_HASH_BITS_DEFAULT, LOCAL_FOLDS_DEFAULT);
}

static int sub_train(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'}, {"c", required_argument, NULL, 'c'},
		{"bits", required_argument, NULL, 'b'}, {"folds", required_argument, NULL, 'f'},
		{NULL, 0, NULL, 0},
	};
	const char *data = NULL;
	struct local_train_opts o = {0};
	int64_t v;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			data = optarg;
			break;
		case 'c': {
			char *end = NULL;
			o.C = strtod(optarg, &end);
			if (!end || end == optarg || *end || !(o.C > 0 && o.C <= 1e6))
				return cli_usage_error("model train", "--c wants a number above 0, at most 1e6");
			break;
		}
		case 'b':
			if (cli_opt_int("model train", "bits", optarg, 10, 24, &v))
				return EXIT_USAGE;
			o.hash_bits = (int)v;
			break;
		case 'f':
			if (cli_opt_int("model train", "folds", optarg, 2, 20, &v))
				return EXIT_USAGE;
			o.folds = (int)v;
			break;
		default:
			return cli_usage_error("model train", "unknown option or missing value '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		return cli_usage_error("model train", "want DIR and NAME");
	const char *dir = argv[optind], *name = argv[optind + 1];
	if (!local_clf_name_ok(name))
		return cli_usage_error("model train", "'%s' is not a model name (A-Z a-z 0-9 _ . -)", name);
	char *mdir = models_dir(dir);
	char *def = NULL;
	if (!data) {
		char *f = sl_asprintf("%s.train.jsonl", name);
		def = sl_path_join(mdir, f);
		free(f);
		data = def;
	}
	struct local_train_report rep;
	struct sl_err err;
	sl_err_clear(&err);
	int64_t t0 = sl_mono_ms();
	int rc = local_clf_train(data, mdir, name, &o, &rep, &err);
	free(mdir);
	if (rc) {
		free(def);
		return report_err("train", rc, &err);
	}
	printf("model %s: %zu labels, %zu examples from %s (sha256 %.12s)\n", name, rep.nlabels, rep.examples, data,
	       rep.sha256);
	free(def);
	for (size_t i = 0; i < rep.nlabels; i++)
		printf("  %-24s %6zu\n", rep.labels[i], rep.counts[i]);
	printf("train accuracy      %.3f\n", rep.train_accuracy);
	printf("held-out accuracy   %.3f  (%d-fold cross-validation)\n", rep.cv_accuracy, rep.folds);
	printf("held-out macro-F1   %.3f\n", rep.cv_macro_f1);
	printf("temperature         %.3f  (ECE %.3f -> %.3f)\n", rep.temperature, rep.ece_raw, rep.ece);
	printf("C %g, 2^%d buckets, %.1f s\n", rep.C, rep.hash_bits, (double)(sl_mono_ms() - t0) / 1000.0);
	printf("wrote %s\n      %s\n", rep.json_path, rep.model_path);
	local_train_report_free(&rep);
	return EXIT_OK;
}

/* ---- predict ------------------------------------------------------------------------- */

static void help_predict(FILE *out)
{
	fprintf(out, "Usage: sluice model predict DIR NAME TEXT|-\n\n"
		     "Classifies TEXT (or stdin with -) with DIR/models/NAME and prints one JSON\n"
		     "line: {\"label\": ..., \"confidence\": ..., \"probabilities\": {label: p}}.\n"
		     "The confidence is calibrated: of answers given with 0.8, about 80%% are right.\n\n"
		     "Exit: 0, 2 usage or no such model.\n");
}

static int load(const char *sub, const char *dir, const char *name, struct local_clf **m)
{
	struct sl_err err;
	sl_err_clear(&err);
	char *mdir = models_dir(dir);
	int rc = local_clf_load(mdir, name, m, &err);
	free(mdir);
	if (rc) {
		fprintf(stderr, "sluice model %s: %s\n", sub, err.msg);
		return EXIT_USAGE;
	}
	return 0;
}

static int sub_predict(int argc, char **argv)
{
	if (no_options("predict", argc, argv))
		return EXIT_USAGE;
	if (argc - optind != 3)
		return cli_usage_error("model predict", "want DIR, NAME and TEXT (or - for stdin)");
	struct local_clf *m;
	if (load("predict", argv[optind], argv[optind + 1], &m))
		return EXIT_USAGE;
	char *text = text_arg("predict", argv[optind + 2]);
	if (!text) {
		local_clf_free(m);
		return EXIT_USAGE;
	}
	size_t n;
	const char *const *labels = local_clf_labels(m, &n);
	double *p = sl_xmalloc(n * sizeof *p);
	const char *label;
	double conf;
	local_clf_predict(m, text, &label, &conf, p);
	json_t *probs = json_object();
	for (size_t i = 0; i < n; i++)
		json_object_set_new(probs, labels[i], json_real(round(p[i] * 1e4) / 1e4));
	json_t *o = json_pack("{s:s, s:f, s:o}", "label", label, "confidence", round(conf * 1e4) / 1e4,
			      "probabilities", probs);
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
	printf("%s\n", s);
	free(s);
	json_decref(o);
	free(p);
	free(text);
	local_clf_free(m);
	return EXIT_OK;
}

/* ---- extract ------------------------------------------------------------------------- */

static void help_extract(FILE *out)
{
	fprintf(out, "Usage: sluice model extract TEXT|-\n\n"
		     "Runs the pattern extractors over TEXT (or stdin with -) and prints one JSON\n"
		     "line: {\"emails\": [...], \"phones\": [...], \"amounts\": [{amount, currency,\n"
		     "text}], \"dates\": [\"YYYY-MM-DD\"], \"ibans\": [...], \"invoice_numbers\": [...]}.\n"
		     "What each matches: docs/reference/models.md.\n\n"
		     "Exit: 0, 2 usage.\n");
}

static int sub_extract(int argc, char **argv)
{
	if (no_options("extract", argc, argv))
		return EXIT_USAGE;
	if (argc - optind != 1)
		return cli_usage_error("model extract", "want TEXT (or - for stdin)");
	char *text = text_arg("extract", argv[optind]);
	if (!text)
		return EXIT_USAGE;
	json_t *o;
	int rc = local_extract_all(text, &o);
	free(text);
	if (rc) {
		fprintf(stderr, "sluice model extract: %s\n", sl_code_message(rc));
		return EXIT_USAGE;
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
	printf("%s\n", s);
	free(s);
	json_decref(o);
	return EXIT_OK;
}

/* ---- eval-local ------------------------------------------------------------------------ */

static void help_eval_local(FILE *out)
{
	fprintf(out, "Usage: sluice model eval-local [--json] DIR NAME FILE\n\n"
		     "Measures DIR/models/NAME on labelled JSONL FILE (the training format):\n"
		     "per label precision, recall, F1 and support, the confusion matrix (rows:\n"
		     "true label, columns: predicted), accuracy, macro-F1, and the expected\n"
		     "calibration error (ECE, 10 bins). Lines with a label the model does not\n"
		     "know count as errors.\n\n"
		     "  --json   print the figures as one JSON object\n\n"
		     "Exit: 0, 1 FILE is invalid (FILE:LINE: why), 2 usage or no such model.\n");
}

static int sub_eval_local(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	bool as_json = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'j')
			as_json = true;
		else
			return cli_usage_error("model eval-local", "unknown option '%s'", argv[optind - 1]);
	}
	if (argc - optind != 3)
		return cli_usage_error("model eval-local", "want DIR, NAME and FILE");
	struct local_clf *m;
	if (load("eval-local", argv[optind], argv[optind + 1], &m))
		return EXIT_USAGE;
	struct local_eval e;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = local_clf_eval(m, argv[optind + 2], &e, &err);
	if (rc) {
		local_clf_free(m);
		return report_err("eval-local", rc, &err);
	}
	size_t k = e.nlabels;
	if (as_json) {
		json_t *per = json_object(), *conf = json_array();
		for (size_t i = 0; i < k; i++) {
			json_object_set_new(per, e.labels[i],
					    json_pack("{s:f, s:f, s:f, s:I}", "precision", e.precision[i], "recall",
						      e.recall[i], "f1", e.f1[i], "support", (json_int_t)e.support[i]));
			json_t *row = json_array();
			for (size_t j = 0; j < k; j++)
				json_array_append_new(row, json_integer((json_int_t)e.confusion[i * k + j]));
			json_array_append_new(conf, row);
		}
		json_t *o = json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:o, s:o}", "examples", (json_int_t)e.n,
				      "correct", (json_int_t)e.correct, "unknown_labels", (json_int_t)e.unknown,
				      "accuracy", e.accuracy, "macro_f1", e.macro_f1, "ece", e.ece, "mean_confidence",
				      e.mean_confidence, "labels", per, "confusion", conf);
		char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		size_t w = 5;
		for (size_t i = 0; i < k; i++)
			w = SL_MAX(w, strlen(e.labels[i]));
		printf("%-*s  precision  recall     f1  support\n", (int)w, "label");
		for (size_t i = 0; i < k; i++)
			printf("%-*s  %9.3f  %6.3f  %5.3f  %7zu\n", (int)w, e.labels[i], e.precision[i], e.recall[i],
			       e.f1[i], e.support[i]);
		printf("\nconfusion (rows true, columns predicted)\n%-*s", (int)w, "");
		for (size_t j = 0; j < k; j++)
			printf(" %6.6s", e.labels[j]);
		printf("\n");
		for (size_t i = 0; i < k; i++) {
			printf("%-*s", (int)w, e.labels[i]);
			for (size_t j = 0; j < k; j++)
				printf(" %6zu", e.confusion[i * k + j]);
			printf("\n");
		}
		printf("\naccuracy            %.3f  (%zu of %zu)\n", e.accuracy, e.correct, e.n);
		printf("macro-F1            %.3f\n", e.macro_f1);
		printf("ECE                 %.3f  (mean confidence %.3f)\n", e.ece, e.mean_confidence);
		if (e.unknown)
			printf("unknown labels      %zu (counted as errors)\n", e.unknown);
	}
	local_eval_free(&e);
	local_clf_free(m);
	return EXIT_OK;
}

/* ---- dispatch ------------------------------------------------------------------------- */

static const struct model_sub model_subs[] = {
	{"list", "[--json] DIR", "the routes of models.yaml and the tasks each can do", model_list_main,
	 help_model_list},
	{"test", "[options] DIR ROUTE TEXT|-", "one task through a route: the answer and what each call cost",
	 model_test_main, help_model_test},
	{"eval", "[options] DIR ROUTE FILE", "score a route on labelled JSONL: accuracy, macro-F1, cost, p95",
	 model_eval_main, help_model_eval},
	{"train", "[options] DIR NAME", "train a local classifier from labelled JSONL", sub_train, help_train},
	{"predict", "DIR NAME TEXT|-", "classify a text; print label and confidence as JSON", sub_predict,
	 help_predict},
	{"extract", "TEXT|-", "run the pattern extractors; print what they found as JSON", sub_extract,
	 help_extract},
	{"eval-local", "[--json] DIR NAME FILE", "precision/recall/F1 of a local classifier on a test file",
	 sub_eval_local, help_eval_local},
};

static const struct model_sub *model_sub_find(const char *name)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(model_subs); i++)
		if (strcmp(model_subs[i].name, name) == 0)
			return &model_subs[i];
	return NULL;
}

void help_model(FILE *out)
{
	fprintf(out, "Usage: sluice model SUBCOMMAND [options] [args]\n\n"
		     "Routes of models.yaml (list, test, eval call the providers they name), and\n"
		     "the built-in local models: a linear text classifier trained from labelled\n"
		     "JSONL into DIR/models/, and pattern extractors (no network).\n"
		     "`sluice model help SUBCOMMAND` describes one subcommand.\n\nSubcommands:\n");
	for (size_t i = 0; i < SL_ARRAY_LEN(model_subs); i++)
		fprintf(out, "  %s %s\n      %s\n", model_subs[i].name, model_subs[i].args, model_subs[i].summary);
	for (size_t i = 0; i < SL_ARRAY_LEN(model_subs); i++) {
		fprintf(out, "\n");
		model_subs[i].help_fn(out);
	}
}

int cmd_model(int argc, char **argv)
{
	if (argc < 2) {
		help_model(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		const struct model_sub *h = argc > 2 ? model_sub_find(argv[2]) : NULL;
		if (h)
			h->help_fn(stdout);
		else
			help_model(stdout);
		return EXIT_OK;
	}
	const struct model_sub *s = model_sub_find(argv[1]);
	if (!s) {
		const char *names[SL_ARRAY_LEN(model_subs) + 1];
		for (size_t i = 0; i < SL_ARRAY_LEN(model_subs); i++)
			names[i] = model_subs[i].name;
		names[SL_ARRAY_LEN(model_subs)] = NULL;
		const char *hint = sl_did_you_mean(argv[1], names);
		return cli_usage_error("model", "unknown subcommand '%s'%s%s%s", argv[1],
				       hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
	}
	if (cli_wants_help(argc - 1, argv + 1)) {
		s->help_fn(stdout);
		return EXIT_OK;
	}
	return s->main_fn(argc - 1, argv + 1);
}
