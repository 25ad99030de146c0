/*
 * cmd_model_routes.c: the route half of `sluice model`: `list` (what
 * models.yaml declares), `test` (one task through a route, with what every
 * call cost) and `eval` (a route scored on a labelled JSONL set: accuracy,
 * macro-F1, cost, p95 latency). They call the real providers the route
 * names; nothing is written to the store.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai/ai.h"
#include "cli/cli.h"
#include "config/config.h"

#define EVAL_LABELS_MAX 64
#define EVAL_ITEMS_MAX 100000
#define EVAL_LINE_MAX (256 * 1024)

/* ---- list ------------------------------------------------------------------------ */

void help_model_list(FILE *out)
{
	fprintf(out, "Usage: sluice model list [--json] DIR\n\n"
		     "Lists the routes of DIR/models.yaml: the models each tries in order, and the\n"
		     "tasks it can do.\n\n"
		     "Options:\n  --json       one JSON document\n  -h, --help   this text\n");
}

int model_list_main(int argc, char **argv)
{
	bool as_json = false;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = true;
		else if (argv[i][0] == '-' || dir)
			return cli_usage_error("model list", "wants DIR and optionally --json");
		else
			dir = argv[i];
	}
	if (!dir)
		return cli_usage_error("model list", "wants DIR and optionally --json");
	struct sl_project *p = cli_load_project(dir, false);
	if (!p)
		return EXIT_USAGE;
	const char *const *routes = sl_ai_routes(p->ai);
	json_t *doc = json_array();
	for (size_t i = 0; routes && routes[i]; i++) {
		json_t *tasks = json_array();
		for (int t = SL_AI_CLASSIFY; t <= SL_AI_CHAT; t++)
			if (sl_ai_route_can(p->ai, routes[i], (enum sl_ai_task)t))
				json_array_append_new(tasks, json_string(sl_ai_task_name((enum sl_ai_task)t)));
		json_array_append_new(doc, json_pack("{s:s, s:o}", "route", routes[i], "tasks", tasks));
	}
	if (as_json) {
		char *t = json_dumps(doc, JSON_INDENT(2) | SL_JSON_REAL);
		printf("%s\n", t);
		free(t);
	} else if (json_array_size(doc) == 0) {
		printf("no routes (DIR/models.yaml declares none)\n");
	} else {
		printf("%-24s %s\n", "ROUTE", "TASKS");
		size_t i;
		json_t *r;
		json_array_foreach(doc, i, r)
		{
			printf("%-24s", json_string_value(json_object_get(r, "route")));
			size_t j;
			json_t *t;
			json_array_foreach(json_object_get(r, "tasks"), j, t)
				printf("%s%s", j ? ", " : " ", json_string_value(t));
			printf("\n");
		}
	}
	json_decref(doc);
	sl_project_free(p);
	return EXIT_OK;
}

/* ---- test ------------------------------------------------------------------------ */

void help_model_test(FILE *out)
{
	fprintf(out, "Usage: sluice model test [options] DIR ROUTE TEXT|-\n\n"
		     "Performs one task through ROUTE with TEXT (- reads stdin) and prints the\n"
		     "answer and every model call: model, tokens, cost, latency, cache hit.\n\n"
		     "Options:\n"
		     "  --task TASK         classify (default with --labels), summarize (default),\n"
		     "                      draft, route, chat\n"
		     "  --labels a,b,c      classify / route: the allowed answers\n"
		     "  --min-confidence P  below it the answer is marked for review\n"
		     "  -h, --help          this text\n\n"
		     "Exit: 0 answered, 1 the route failed or sent the answer to review, 2 usage.\n");
}

/* Splits "a,b,c" into up to max labels (pointers into s, which is modified). */
static size_t split_labels(char *s, const char **out, size_t max)
{
	size_t n = 0;
	for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
		if (*tok)
			out[n++] = tok;
	return n;
}

static char *read_text_arg(const char *arg)
{
	if (strcmp(arg, "-") != 0)
		return sl_strdup(arg);
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_FILE);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
		if (sl_buf_add(&b, chunk, n) != 0)
			break;
	return sl_buf_detach(&b);
}

static void print_calls(const json_t *calls)
{
	size_t i;
	const json_t *c;
	json_array_foreach(calls, i, c)
	{
		fprintf(stderr, "  call %zu: model %s, %s%s, %lld+%lld tokens, $%.6f, %lld ms%s\n", i + 1,
			json_string_value(json_object_get(c, "model")), json_string_value(json_object_get(c, "outcome")),
			json_is_string(json_object_get(c, "error")) ? " (error)" : "",
			(long long)json_integer_value(json_object_get(c, "tokens_in")),
			(long long)json_integer_value(json_object_get(c, "tokens_out")),
			json_number_value(json_object_get(c, "cost_usd")),
			(long long)json_integer_value(json_object_get(c, "latency_ms")),
			json_is_true(json_object_get(c, "cache_hit")) ? ", cache hit" : "");
	}
}

int model_test_main(int argc, char **argv)
{
	static const struct option longs[] = {
		{"task", required_argument, NULL, 't'},
		{"labels", required_argument, NULL, 'l'},
		{"min-confidence", required_argument, NULL, 'm'},
		{NULL, 0, NULL, 0},
	};
	const char *task_name = NULL;
	char *labels_arg = NULL;
	double min_conf = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 't': task_name = optarg; break;
		case 'l': labels_arg = optarg; break;
		case 'm': min_conf = strtod(optarg, NULL); break;
		default: return cli_usage_error("model test", "unknown option");
		}
	}
	if (argc - optind != 3)
		return cli_usage_error("model test", "wants DIR ROUTE TEXT");
	int task = task_name ? sl_ai_task_parse(task_name) : (labels_arg ? SL_AI_CLASSIFY : SL_AI_SUMMARIZE);
	if (task < 0 || task == SL_AI_EXTRACT)
		return cli_usage_error("model test", "--task wants classify, summarize, draft, route or chat");
	const char *labels[EVAL_LABELS_MAX];
	char *lab_copy = labels_arg ? sl_strdup(labels_arg) : NULL;
	size_t nlabels = lab_copy ? split_labels(lab_copy, labels, EVAL_LABELS_MAX) : 0;
	if ((task == SL_AI_CLASSIFY || task == SL_AI_ROUTE) && nlabels < 2) {
		free(lab_copy);
		return cli_usage_error("model test", "%s wants --labels with at least two answers", task_name);
	}
	struct sl_project *p = cli_load_project(argv[optind], true);
	if (!p) {
		free(lab_copy);
		return EXIT_USAGE;
	}
	const char *route = argv[optind + 1];
	int ret = EXIT_FAIL;
	char *text = read_text_arg(argv[optind + 2]);
	json_t *messages = json_pack("[{s:s, s:s}]", "role", "user", "content", text);
	struct sl_ai_request rq = {
		.task = (enum sl_ai_task)task,
		.route = route,
		.prompt = text,
		.prompt_hash = "",
		.labels = labels,
		.nlabels = nlabels,
		.min_confidence = min_conf,
		.messages = messages,
	};
	struct sl_ai_result res = {0};
	struct sl_err err;
	sl_err_clear(&err);
	if (!sl_ai_has_route(p->ai, route)) {
		ret = cli_usage_error("model test", "no route '%s' in models.yaml", route);
	} else if (sl_ai_run(p->ai, &rq, &res, &err) != 0) {
		fprintf(stderr, "sluice model test: %s (%s)\n", err.msg, sl_class_name(err.cls));
	} else {
		char *out = json_dumps(res.output, JSON_INDENT(2) | SL_JSON_REAL);
		printf("%s\n", out);
		free(out);
		if (res.review)
			fprintf(stderr, "review: %s\n", res.review_reason);
		ret = res.review ? EXIT_FAIL : EXIT_OK;
	}
	print_calls(res.calls);
	if (res.calls)
		fprintf(stderr, "total: %lld+%lld tokens, $%.6f\n", (long long)res.tokens_in, (long long)res.tokens_out,
			res.cost_usd);
	sl_ai_result_free(&res);
	json_decref(messages);
	free(text);
	free(lab_copy);
	sl_project_free(p);
	return ret;
}

/* ---- eval ------------------------------------------------------------------------ */

void help_model_eval(FILE *out)
{
	fprintf(out, "Usage: sluice model eval [options] DIR ROUTE FILE\n\n"
		     "Scores ROUTE on a labelled set: FILE holds JSON lines {\"text\": ..., \"label\": ...}.\n"
		     "Each text is classified through the route (cascade, fallback and cache as\n"
		     "configured) and a table prints per-label precision, recall, F1 and support,\n"
		     "then accuracy, macro-F1, review count, total cost and p50/p95 latency.\n\n"
		     "Options:\n"
		     "  --labels a,b,c   the allowed answers (default: the labels FILE uses)\n"
		     "  --json           print one JSON document instead of the table\n"
		     "  -h, --help       this text\n\n"
		     "Exit: 0 scored, 1 a call failed, 2 usage or a bad line in FILE.\n");
}

struct eval_item {
	char *text;
	int gold;
};

struct eval_set {
	struct eval_item *v;
	size_t n;
	char *labels[EVAL_LABELS_MAX];
	size_t nlabels;
};

static int label_index(struct eval_set *s, const char *label, bool add)
{
	for (size_t i = 0; i < s->nlabels; i++)
		if (strcmp(s->labels[i], label) == 0)
			return (int)i;
	if (!add || s->nlabels == EVAL_LABELS_MAX)
		return -1;
	s->labels[s->nlabels] = sl_strdup(label);
	return (int)s->nlabels++;
}

static void eval_set_free(struct eval_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].text);
	free(s->v);
	for (size_t i = 0; i < s->nlabels; i++)
		free(s->labels[i]);
}

/* Reads FILE; a bad line is reported as FILE:LINE and fails the read. */
static int eval_read(const char *path, struct eval_set *s, bool fixed_labels)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "sluice model eval: %s: cannot open\n", path);
		return -1;
	}
	char *line = NULL;
	size_t cap = 0, cap_items = 0;
	ssize_t len;
	int lineno = 0, rc = 0;
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len <= 1 || line[0] == '#')
			continue;
		json_error_t je;
		json_t *doc = len > EVAL_LINE_MAX ? NULL : json_loads(line, 0, &je);
		const char *text = json_string_value(json_object_get(doc, "text"));
		const char *label = json_string_value(json_object_get(doc, "label"));
		int gold = label ? label_index(s, label, !fixed_labels) : -1;
		if (!text || !label) {
			fprintf(stderr, "%s:%d: want {\"text\": string, \"label\": string}\n", path, lineno);
			rc = -1;
		} else if (gold < 0) {
			fprintf(stderr, "%s:%d: label '%s' is not among --labels\n", path, lineno, label);
			rc = -1;
		} else if (s->n == EVAL_ITEMS_MAX) {
			fprintf(stderr, "%s:%d: more than %d items\n", path, lineno, EVAL_ITEMS_MAX);
			rc = -1;
		} else {
			if (s->n == cap_items) {
				cap_items = cap_items ? cap_items * 2 : 256;
				s->v = sl_xrealloc(s->v, cap_items * sizeof *s->v);
			}
			s->v[s->n++] = (struct eval_item){.text = sl_strdup(text), .gold = gold};
		}
		json_decref(doc);
	}
	free(line);
	fclose(f);
	if (rc == 0 && s->n == 0) {
		fprintf(stderr, "sluice model eval: %s holds no items\n", path);
		rc = -1;
	}
	return rc;
}

struct eval_score {
	size_t tp[EVAL_LABELS_MAX], fp[EVAL_LABELS_MAX], support[EVAL_LABELS_MAX];
	size_t correct, review, failed, cache_hits;
	double cost;
	double *latency_ms;
	int64_t tokens_in, tokens_out;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double percentile(double *sorted, size_t n, double q)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)ceil(q * (double)n);
	return sorted[i ? i - 1 : 0];
}

static double f1(size_t tp, size_t fp, size_t fn)
{
	double p = tp + fp ? (double)tp / (double)(tp + fp) : 0;
	double r = tp + fn ? (double)tp / (double)(tp + fn) : 0;
	return p + r > 0 ? 2 * p * r / (p + r) : 0;
}

/* Classifies every item through the route; failures count as wrong. */
static void eval_run(struct sl_ai *ai, const char *route, struct eval_set *s, struct eval_score *sc)
{
	sc->latency_ms = sl_xcalloc(s->n, sizeof *sc->latency_ms);
	for (size_t i = 0; i < s->n; i++) {
		struct sl_ai_request rq = {
			.task = SL_AI_CLASSIFY,
			.route = route,
			.prompt = s->v[i].text,
			.prompt_hash = "",
			.labels = (const char *const *)s->labels,
			.nlabels = s->nlabels,
		};
		struct sl_ai_result res = {0};
		struct sl_err err;
		sl_err_clear(&err);
		int64_t t0 = sl_mono_us();
		int rc = sl_ai_run(ai, &rq, &res, &err);
		sc->latency_ms[i] = (double)(sl_mono_us() - t0) / 1000.0;
		sc->support[s->v[i].gold]++;
		sc->cost += res.cost_usd;
		sc->tokens_in += res.tokens_in;
		sc->tokens_out += res.tokens_out;
		sc->cache_hits += res.cache_hit;
		if (rc) {
			if (sc->failed++ == 0)
				fprintf(stderr, "sluice model eval: item %zu: %s\n", i + 1, err.msg);
			sl_ai_result_free(&res);
			continue;
		}
		sc->review += res.review;
		const char *label = json_string_value(json_object_get(res.output, "label"));
		int got = label ? label_index(s, label, false) : -1;
		if (got == s->v[i].gold) {
			sc->tp[got]++;
			sc->correct++;
		} else if (got >= 0) {
			sc->fp[got]++;
		}
		sl_ai_result_free(&res);
	}
}

static json_t *eval_report(const char *route, const struct eval_set *s, struct eval_score *sc)
{
	json_t *per = json_array();
	double macro = 0;
	for (size_t l = 0; l < s->nlabels; l++) {
		size_t fn = sc->support[l] - sc->tp[l];
		double p = sc->tp[l] + sc->fp[l] ? (double)sc->tp[l] / (double)(sc->tp[l] + sc->fp[l]) : 0;
		double r = sc->support[l] ? (double)sc->tp[l] / (double)sc->support[l] : 0;
		double f = f1(sc->tp[l], sc->fp[l], fn);
		macro += f;
		json_array_append_new(per, json_pack("{s:s, s:f, s:f, s:f, s:I}", "label", s->labels[l], "precision", p,
						     "recall", r, "f1", f, "support", (json_int_t)sc->support[l]));
	}
	qsort(sc->latency_ms, s->n, sizeof *sc->latency_ms, cmp_double);
	return json_pack("{s:s, s:I, s:o, s:f, s:f, s:I, s:I, s:I, s:f, s:I, s:I, s:f, s:f}", "route", route, "items",
			 (json_int_t)s->n, "labels", per, "accuracy", (double)sc->correct / (double)s->n, "macro_f1",
			 s->nlabels ? macro / (double)s->nlabels : 0, "review", (json_int_t)sc->review, "failed",
			 (json_int_t)sc->failed, "cache_hits", (json_int_t)sc->cache_hits, "cost_usd", sc->cost,
			 "tokens_in", (json_int_t)sc->tokens_in, "tokens_out", (json_int_t)sc->tokens_out,
			 "latency_p50_ms", percentile(sc->latency_ms, s->n, 0.50), "latency_p95_ms",
			 percentile(sc->latency_ms, s->n, 0.95));
}

static void eval_print(const json_t *rep)
{
	printf("%-20s %9s %9s %9s %8s\n", "LABEL", "PRECISION", "RECALL", "F1", "SUPPORT");
	size_t i;
	const json_t *l;
	json_array_foreach(json_object_get(rep, "labels"), i, l)
		printf("%-20s %9.3f %9.3f %9.3f %8lld\n", json_string_value(json_object_get(l, "label")),
		       json_number_value(json_object_get(l, "precision")), json_number_value(json_object_get(l, "recall")),
		       json_number_value(json_object_get(l, "f1")),
		       (long long)json_integer_value(json_object_get(l, "support")));
	printf("\nroute %s: %lld items, accuracy %.3f, macro-F1 %.3f, %lld to review, %lld failed\n",
	       json_string_value(json_object_get(rep, "route")), (long long)json_integer_value(json_object_get(rep, "items")),
	       json_number_value(json_object_get(rep, "accuracy")), json_number_value(json_object_get(rep, "macro_f1")),
	       (long long)json_integer_value(json_object_get(rep, "review")),
	       (long long)json_integer_value(json_object_get(rep, "failed")));
	printf("cost $%.6f (%lld+%lld tokens, %lld cache hits), latency p50 %.2f ms, p95 %.2f ms\n",
	       json_number_value(json_object_get(rep, "cost_usd")),
	       (long long)json_integer_value(json_object_get(rep, "tokens_in")),
	       (long long)json_integer_value(json_object_get(rep, "tokens_out")),
	       (long long)json_integer_value(json_object_get(rep, "cache_hits")),
	       json_number_value(json_object_get(rep, "latency_p50_ms")),
	       json_number_value(json_object_get(rep, "latency_p95_ms")));
}

int model_eval_main(int argc, char **argv)
{
	static const struct option longs[] = {
		{"labels", required_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	char *labels_arg = NULL;
	bool as_json = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'l': labels_arg = optarg; break;
		case 'j': as_json = true; break;
		default: return cli_usage_error("model eval", "unknown option");
		}
	}
	if (argc - optind != 3)
		return cli_usage_error("model eval", "wants DIR ROUTE FILE");
	struct eval_set set = {0};
	if (labels_arg) {
		char *copy = sl_strdup(labels_arg);
		for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
			if (*tok)
				label_index(&set, tok, true);
		free(copy);
	}
	if (eval_read(argv[optind + 2], &set, labels_arg != NULL) || set.nlabels < 2) {
		if (set.n && set.nlabels < 2)
			fprintf(stderr, "sluice model eval: want at least two labels\n");
		eval_set_free(&set);
		return EXIT_USAGE;
	}
	struct sl_project *p = cli_load_project(argv[optind], true);
	if (!p) {
		eval_set_free(&set);
		return EXIT_USAGE;
	}
	const char *route = argv[optind + 1];
	int ret;
	if (!sl_ai_has_route(p->ai, route)) {
		ret = cli_usage_error("model eval", "no route '%s' in models.yaml", route);
	} else {
		struct eval_score sc = {0};
		eval_run(p->ai, route, &set, &sc);
		json_t *rep = eval_report(route, &set, &sc);
		if (as_json) {
			char *t = json_dumps(rep, JSON_INDENT(2) | SL_JSON_REAL);
			printf("%s\n", t);
			free(t);
		} else {
			eval_print(rep);
		}
		json_decref(rep);
		free(sc.latency_ms);
		ret = sc.failed ? EXIT_FAIL : EXIT_OK;
	}
	eval_set_free(&set);
	sl_project_free(p);
	return ret;
}
