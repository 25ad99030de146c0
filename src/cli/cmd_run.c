/*
 * cmd_run.c: `sluice run DIR WORKFLOW` runs workflows to the end on the
 * project's store, with the same engine `sluice serve` uses.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "engine/engine.h"
#include "store/store.h"

void help_run(FILE *out)
{
	fprintf(out,
		"Usage: sluice run [options] DIR WORKFLOW\n\n"
		"Starts WORKFLOW of the project in DIR on its store (by default\n"
		"DIR/.sluice/sluice.db), runs it and every run it starts to the end with\n"
		"worker threads, then prints each step's outcome, attempts and duration,\n"
		"and the output. A run left unfinished by a crash is picked up again by the\n"
		"next `sluice run` on the same store; completed steps are never re-run.\n\n"
		"Options:\n"
		"  --input FILE, -i FILE    the run's input (JSON); - reads standard input;\n"
		"                           default {}\n"
		"  --batch FILE             start one run per line of a JSONL file and wait\n"
		"                           for all (a repeat of the same command starts no\n"
		"                           run twice: each line's key is its number + hash)\n"
		"  --idempotency-key KEY    a repeat with the same KEY returns the first run\n"
		"  --store URL              sqlite:PATH, postgres://... or env:NAME (default:\n"
		"                           the project's `store:`)\n"
		"  --workers N              worker threads (default: the project's, 2)\n"
		"  --timeout DURATION       give up waiting after this long (e.g. 30s); the\n"
		"                           runs go on at the next start\n"
		"  --json                   print the run as JSON (with --batch: a summary)\n"
		"  --quiet                  print nothing but errors\n"
		"  --log-level LEVEL        debug, info, warn (default), error\n"
		"  -h, --help               this text\n\n"
		"Exit: 0 when every run completed, 1 when one ended dead, compensated or\n"
		"cancelled, 2 on a usage, project or store error.\n");
}

struct run_opts {
	const char *dir, *workflow, *input_path, *batch_path, *idem_key, *store_url;
	int workers;
	int64_t timeout_ms;
	bool json, quiet;
};

static int parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		{"input", required_argument, NULL, 'i'},
		{"batch", required_argument, NULL, 'b'},
		{"idempotency-key", required_argument, NULL, 'k'},
		{"store", required_argument, NULL, 's'},
		{"workers", required_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"log-level", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0},
	};
	int c;
	int64_t v;
	sl_log_set_level(SL_LOG_WARN);
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:q", opts, NULL)) != -1) {
		switch (c) {
		case 'i': o->input_path = optarg; break;
		case 'b': o->batch_path = optarg; break;
		case 'k': o->idem_key = optarg; break;
		case 's': o->store_url = optarg; break;
		case 'w':
			if (cli_opt_int("run", "workers", optarg, 1, 64, &v))
				return EXIT_USAGE;
			o->workers = (int)v;
			break;
		case 't':
			if (sl_parse_duration_ms(optarg, &o->timeout_ms))
				return cli_usage_error("run", "--timeout wants a duration such as 30s");
			break;
		case 'j': o->json = true; break;
		case 'q': o->quiet = true; break;
		case 'l':
			if (cli_opt_log_level("run", optarg))
				return EXIT_USAGE;
			break;
		default: return cli_usage_error("run", "unknown option");
		}
	}
	if (argc - optind != 2)
		return cli_usage_error("run", "want DIR and WORKFLOW");
	if (o->input_path && o->batch_path)
		return cli_usage_error("run", "--input and --batch do not go together");
	o->dir = argv[optind];
	o->workflow = argv[optind + 1];
	return 0;
}

static json_t *read_input(const char *path, struct sl_err *err)
{
	if (!path)
		return json_object();
	json_error_t je;
	json_t *j = strcmp(path, "-") == 0 ? json_loadf(stdin, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je)
					   : json_load_file(path, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (!j)
		sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s:%d:%d: %s", path, je.line, je.column, je.text);
	return j;
}

static const char *str_or(const json_t *j, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : dflt;
}

static void print_run(const json_t *run)
{
	const json_t *steps = json_object_get(run, "steps");
	printf("run %s  %s v%lld  %s\n", str_or(run, "id", "?"), str_or(run, "workflow", "?"),
	       (long long)json_integer_value(json_object_get(run, "version")), str_or(run, "status", "?"));
	printf("  %-20s %-12s %8s %10s\n", "STEP", "STATUS", "ATTEMPTS", "DURATION");
	size_t i;
	const json_t *st;
	json_array_foreach(steps, i, st) {
		char dur[32];
		snprintf(dur, sizeof dur, "%lld ms", (long long)json_integer_value(json_object_get(st, "duration_ms")));
		printf("  %-20s %-12s %8lld %10s", str_or(st, "id", "?"), str_or(st, "status", "?"),
		       (long long)json_integer_value(json_object_get(st, "attempts")), dur);
		const json_t *err = json_object_get(st, "error");
		if (json_is_object(err))
			printf("  %s: %s", str_or(err, "class", "error"), str_or(err, "message", ""));
		printf("\n");
	}
	const json_t *err = json_object_get(run, "error");
	if (json_is_object(err))
		printf("error: %s in step %s: %s\n", str_or(err, "class", "?"), str_or(err, "step", "?"),
		       str_or(err, "message", ""));
	const json_t *out = json_object_get(run, "output");
	if (out && !json_is_null(out)) {
		char *s = json_dumps(out, JSON_INDENT(2) | JSON_ENCODE_ANY | SL_JSON_REAL);
		printf("output:\n%s\n", s ? s : "null");
		free(s);
	}
}

/* Starts one run per JSONL line; keys make a repeated command idempotent. */
static int start_batch(struct sl_engine *e, const struct run_opts *o, json_t *ids, struct sl_err *err)
{
	char *data = NULL;
	size_t len = 0;
	if (sl_file_read(o->batch_path, SL_BUF_MAX_FILE, &data, &len, err))
		return err->code;
	int lineno = 0, rc = 0;
	char *next = data;
	while (next && *next && !rc) {
		char *line = next;
		char *nl = strchr(line, '\n');
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		if (!*line)
			continue;
		json_error_t je;
		json_t *in = json_loads(line, JSON_REJECT_DUPLICATES, &je);
		if (!in) {
			rc = sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s:%d:%d: %s", o->batch_path, lineno, je.column,
					je.text);
			break;
		}
		char hash[65];
		sl_sha256_hex(line, strlen(line), hash);
		char *key = sl_asprintf("%s:%d:%.16s", o->idem_key ? o->idem_key : "batch", lineno, hash);
		struct sl_start st = {.workflow = o->workflow, .input = in, .idem_scope = "cli", .idem_key = key,
				      .trigger = "cli", .actor = cli_actor()};
		char id[SL_ID_MAX];
		rc = sl_engine_start_run(e, &st, id, NULL, err);
		if (rc)
			sl_err_prefix(err, "%s:%d", o->batch_path, lineno);
		else
			json_array_append_new(ids, json_string(id));
		free(key);
		json_decref(in);
	}
	free(data);
	return rc;
}

static int start_runs(struct sl_engine *e, const struct run_opts *o, json_t *ids, struct sl_err *err)
{
	if (o->batch_path)
		return start_batch(e, o, ids, err);
	json_t *in = read_input(o->input_path, err);
	if (!in)
		return SL_EINVAL;
	struct sl_start st = {.workflow = o->workflow, .input = in, .idem_scope = "cli", .idem_key = o->idem_key,
			      .trigger = "cli", .actor = cli_actor()};
	char id[SL_ID_MAX];
	int rc = sl_engine_start_run(e, &st, id, NULL, err);
	if (!rc)
		json_array_append_new(ids, json_string(id));
	json_decref(in);
	return rc;
}

/* Waits for every run, then reports. Returns the exit code. */
static int report(struct sl_engine *e, struct sl_store *s, const struct run_opts *o, json_t *ids)
{
	int64_t deadline = o->timeout_ms ? sl_mono_ms() + o->timeout_ms : 0;
	size_t i;
	json_t *id;
	json_array_foreach(ids, i, id) {
		int64_t left = deadline ? deadline - sl_mono_ms() : 0;
		if (deadline && left <= 0)
			left = 1;
		if (sl_engine_wait_tree(e, json_string_value(id), left) == SL_ETIMEOUT) {
			fprintf(stderr, "sluice run: timed out waiting; the runs go on at the next start\n");
			return EXIT_FAIL;
		}
	}
	int failed = 0;
	json_t *counts = json_object();
	json_array_foreach(ids, i, id) {
		json_t *run = NULL;
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_store_run_get(s, json_string_value(id), &run, &err)) {
			fprintf(stderr, "sluice run: %s\n", err.msg);
			failed++;
			continue;
		}
		const char *status = str_or(run, "status", "?");
		if (strcmp(status, "completed") != 0)
			failed++;
		json_object_set_new(counts, status, json_integer(json_integer_value(json_object_get(counts, status)) + 1));
		if (!o->batch_path && !o->quiet) {
			if (o->json) {
				json_dumpf(run, stdout, JSON_INDENT(2) | SL_JSON_REAL);
				fputc('\n', stdout);
			} else {
				print_run(run);
			}
		}
		json_decref(run);
	}
	if (o->batch_path && !o->quiet) {
		json_t *sum = json_pack("{s:I, s:O}", "runs", (json_int_t)json_array_size(ids), "status", counts);
		if (o->json) {
			json_dumpf(sum, stdout, JSON_INDENT(2) | SL_JSON_REAL);
			fputc('\n', stdout);
		} else {
			printf("%zu runs:", json_array_size(ids));
			const char *k;
			json_t *v;
			json_object_foreach(counts, k, v)
				printf(" %lld %s", (long long)json_integer_value(v), k);
			printf("\n");
		}
		json_decref(sum);
	}
	json_decref(counts);
	return failed ? EXIT_FAIL : EXIT_OK;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = {0};
	if (parse_args(argc, argv, &o))
		return EXIT_USAGE;
	signal(SIGPIPE, SIG_IGN);

	struct sl_project *p = cli_load_project(o.dir, true);
	if (!p)
		return EXIT_USAGE;
	if (!sl_project_workflow(p, o.workflow)) {
		fprintf(stderr, "sluice run: %s has no workflow named '%s'\n", o.dir, o.workflow);
		sl_project_free(p);
		return EXIT_USAGE;
	}

	int code = EXIT_USAGE;
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_store *s = NULL;
	struct sl_engine *e = NULL;
	json_t *ids = json_array();
	char *url = cli_store_url(o.store_url, p);
	struct sl_engine_opts eo = {.workers = o.workers};
	if (sl_store_open(url, &s, &err) || sl_engine_new(p, s, &eo, &e, &err)) {
		fprintf(stderr, "sluice run: %s\n", err.msg);
		goto out;
	}
	if (start_runs(e, &o, ids, &err)) {
		fprintf(stderr, "sluice run: %s\n", err.msg);
		code = err.cls == SL_CLASS_CONTRACT ? EXIT_FAIL : EXIT_USAGE;
		goto out;
	}
	if (sl_engine_start(e, &err)) {
		fprintf(stderr, "sluice run: %s\n", err.msg);
		goto out;
	}
	code = report(e, s, &o, ids);
out:
	sl_engine_free(e);
	sl_store_close(s);
	free(url);
	json_decref(ids);
	sl_project_free(p);
	return code;
}
