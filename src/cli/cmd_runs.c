/*
 * cmd_runs.c: `sluice runs` and `sluice dlq`: clients of a server's run API
 * (docs/reference/api.md), with tables for people and --json for scripts.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

#define DEFAULT_SERVER CLI_DEFAULT_SERVER

void help_runs(FILE *out)
{
	fprintf(out,
		"Usage: sluice runs list [--workflow NAME] [--status STATUS] [--limit N] [--cursor C]\n"
		"       sluice runs show ID [--trace]\n"
		"       sluice runs cancel ID\n\n"
		"Talks to a running `sluice serve` over its HTTP API.\n\n"
		"Options:\n"
		"  --server URL        default " DEFAULT_SERVER "; the token in SLUICE_TOKEN is\n"
		"                      sent as a Bearer token when set\n"
		"  --workflow NAME     list: only this workflow's runs\n"
		"  --status STATUS     list: queued, running, waiting, completed, dead, cancelled, ...\n"
		"  --limit N           list: page size, 1 to 500 (default 50)\n"
		"  --cursor C          list: the page after C (printed under the table)\n"
		"  --trace             show: the span tree (run > step > attempt > model call)\n"
		"  --json              print the server's JSON (with --trace: OTLP/JSON)\n"
		"  -h, --help          this text\n\n"
		"Exit: 0 ok, 1 the server refused (not found, already ended, ...), 2 usage or\n"
		"connection error.\n");
}

void help_dlq(FILE *out)
{
	fprintf(out,
		"Usage: sluice dlq list [FILTERS] [--limit N] [--cursor C]\n"
		"       sluice dlq replay ID [--input FILE] [--version newest|own]\n"
		"       sluice dlq replay --all [FILTERS] [--input FILE] [--version newest|own]\n\n"
		"Lists dead-lettered runs, or replays them from the failed step (completed\n"
		"steps are not repeated), on their own workflow version or the newest.\n\n"
		"Filters:\n"
		"  --workflow NAME  --step ID  --error-class CLASS  --since TIME  --until TIME\n"
		"  (TIME: RFC 3339 or ms since the epoch)\n\n"
		"Options:\n"
		"  --server URL        default " DEFAULT_SERVER " (token: SLUICE_TOKEN)\n"
		"  --input FILE        replay: a JSON file that replaces the run's input\n"
		"  --version V         replay: newest or own (default own)\n"
		"  --all               replay every entry the filters match\n"
		"  --json              print the server's JSON\n"
		"  -h, --help          this text\n\n"
		"Exit: 0 ok, 1 the server refused or a replay failed, 2 usage or connection error.\n");
}

struct client_opts {
	const char *server, *workflow, *status, *step, *error_class, *since, *until, *cursor, *limit;
	const char *input_path, *version, *group_by;
	bool json, all, trace;
};

/* ---- HTTP --------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct sl_buf *b = ud;
	sl_buf_add(b, p, size * n);
	return b->err ? 0 : size * n;
}

/* Calls the API; *out gets the parsed answer (may be NULL), *status the
 * HTTP status. Returns 0, or -1 after printing a connection error. */
static int api_call(const char *verb, const struct client_opts *o, const char *method, const char *path,
		    const char *body, long *status, json_t **out)
{
	*out = NULL;
	*status = 0;
	CURL *c = curl_easy_init();
	if (!c) {
		fprintf(stderr, "sluice %s: cannot start libcurl\n", verb);
		return -1;
	}
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_HTTP_BODY);
	size_t n = strlen(o->server);
	while (n && o->server[n - 1] == '/')
		n--;
	char *url = sl_asprintf("%.*s%s", (int)n, o->server, path);
	struct curl_slist *hl = curl_slist_append(NULL, "Accept: application/json");
	char *auth = NULL;
	const char *tok = getenv("SLUICE_TOKEN");
	if (tok && *tok) {
		auth = sl_asprintf("Authorization: Bearer %s", tok);
		hl = curl_slist_append(hl, auth);
	}
	if (body)
		hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	CURLcode rc = curl_easy_perform(c);
	int ret = 0;
	if (rc != CURLE_OK) {
		fprintf(stderr, "sluice %s: %s: %s\n", verb, o->server, curl_easy_strerror(rc));
		ret = -1;
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
		*out = json_loadb(sl_buf_str(&b), b.len, JSON_DECODE_ANY, NULL);
	}
	curl_slist_free_all(hl);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	curl_easy_cleanup(c);
	sl_buf_free(&b);
	free(url);
	return ret;
}

int cli_api_call(const char *verb, const char *server, const char *method, const char *path, const char *body,
		 long *status, json_t **out)
{
	struct client_opts o = {.server = server};
	return api_call(verb, &o, method, path, body, status, out);
}

static const char *jstr(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

/* Prints a problem answer; returns EXIT_FAIL. */
static int print_problem(const char *verb, long status, const json_t *doc)
{
	fprintf(stderr, "sluice %s: %ld %s: %s\n", verb, status, jstr(doc, "title", "error"),
		jstr(doc, "detail", ""));
	size_t i;
	const json_t *e;
	json_array_foreach(json_object_get(doc, "errors"), i, e)
		fprintf(stderr, "  %s: %s\n", jstr(e, "pointer", ""), jstr(e, "message", ""));
	return EXIT_FAIL;
}

int cli_print_problem(const char *verb, long status, const json_t *doc)
{
	return print_problem(verb, status, doc);
}

static void print_json(const json_t *doc)
{
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY | SL_JSON_REAL);
	fputc('\n', stdout);
}

/* Appends &name=escaped(value) when value is set. */
static void add_query(struct sl_buf *q, const char *name, const char *value)
{
	if (!value)
		return;
	char *esc = curl_easy_escape(NULL, value, 0);
	sl_buf_printf(q, "%c%s=%s", q->len ? '&' : '?', name, esc ? esc : "");
	curl_free(esc);
}

void cli_add_query(struct sl_buf *q, const char *name, const char *value)
{
	add_query(q, name, value);
}

void cli_add_path_segment(struct sl_buf *b, const char *segment)
{
	char *esc = curl_easy_escape(NULL, segment, 0);
	sl_buf_adds(b, esc ? esc : "");
	curl_free(esc);
}

static void fmt_time(const json_t *v, char out[32])
{
	if (json_is_integer(v))
		sl_time_format(json_integer_value(v), out);
	else
		snprintf(out, 32, "-");
}

/* Escapes an id for a path segment; returns owned. */
static char *path_of(const char *fmt, const char *id)
{
	char *esc = curl_easy_escape(NULL, id, 0);
	char *p = sl_asprintf(fmt, esc ? esc : "");
	curl_free(esc);
	return p;
}

/* ---- options ------------------------------------------------------------------------ */

static int parse_opts(const char *verb, int argc, char **argv, struct client_opts *o)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 'S'},   {"workflow", required_argument, NULL, 'w'},
		{"status", required_argument, NULL, 's'},   {"step", required_argument, NULL, 'p'},
		{"error-class", required_argument, NULL, 'e'}, {"since", required_argument, NULL, 'a'},
		{"until", required_argument, NULL, 'u'},    {"cursor", required_argument, NULL, 'c'},
		{"limit", required_argument, NULL, 'n'},    {"input", required_argument, NULL, 'i'},
		{"version", required_argument, NULL, 'v'},  {"json", no_argument, NULL, 'j'},
		{"all", no_argument, NULL, 'A'},            {"group-by", required_argument, NULL, 'g'},
		{"trace", no_argument, NULL, 'T'},          {NULL, 0, NULL, 0},
	};
	int c;
	int64_t v;
	o->server = getenv("SLUICE_SERVER") ? getenv("SLUICE_SERVER") : DEFAULT_SERVER;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'S': o->server = optarg; break;
		case 'w': o->workflow = optarg; break;
		case 's': o->status = optarg; break;
		case 'p': o->step = optarg; break;
		case 'e': o->error_class = optarg; break;
		case 'a': o->since = optarg; break;
		case 'u': o->until = optarg; break;
		case 'c': o->cursor = optarg; break;
		case 'n':
			if (cli_opt_int(verb, "limit", optarg, 1, 500, &v))
				return EXIT_USAGE;
			o->limit = optarg;
			break;
		case 'i': o->input_path = optarg; break;
		case 'v':
			if (strcmp(optarg, "newest") != 0 && strcmp(optarg, "own") != 0)
				return cli_usage_error(verb, "--version wants newest or own");
			o->version = optarg;
			break;
		case 'j': o->json = true; break;
		case 'A': o->all = true; break;
		case 'g': o->group_by = optarg; break;
		case 'T': o->trace = true; break;
		default: return cli_usage_error(verb, "unknown option");
		}
	}
	if (!sl_str_startswith(o->server, "http://") && !sl_str_startswith(o->server, "https://"))
		return cli_usage_error(verb, "--server wants an http:// or https:// URL");
	return 0;
}

/* ---- sluice runs ---------------------------------------------------------------------- */

static int runs_list(const struct client_opts *o)
{
	struct sl_buf q;
	sl_buf_init(&q, SL_BUF_MAX_LINE);
	add_query(&q, "workflow", o->workflow);
	add_query(&q, "status", o->status);
	add_query(&q, "limit", o->limit);
	add_query(&q, "cursor", o->cursor);
	char *path = sl_asprintf("/v1/runs%s", sl_buf_str(&q));
	sl_buf_free(&q);
	long st;
	json_t *doc;
	int rc = api_call("runs", o, "GET", path, NULL, &st, &doc);
	free(path);
	if (rc)
		return EXIT_USAGE;
	int code = EXIT_OK;
	if (st != 200) {
		code = print_problem("runs", st, doc);
	} else if (o->json) {
		print_json(doc);
	} else {
		printf("%-32s %-20s %4s %-12s %-24s\n", "RUN", "WORKFLOW", "VER", "STATUS", "CREATED");
		size_t i;
		const json_t *r;
		json_array_foreach(json_object_get(doc, "runs"), i, r) {
			char t[32];
			fmt_time(json_object_get(r, "created_at"), t);
			printf("%-32s %-20s %4lld %-12s %-24s\n", jstr(r, "id", "?"), jstr(r, "workflow", "?"),
			       (long long)json_integer_value(json_object_get(r, "version")), jstr(r, "status", "?"), t);
		}
		const char *next = jstr(doc, "next_cursor", NULL);
		if (next)
			printf("more: sluice runs list --cursor %s\n", next);
	}
	json_decref(doc);
	return code;
}

static void print_run(const json_t *run)
{
	printf("run %s  %s v%lld  %s\n", jstr(run, "id", "?"), jstr(run, "workflow", "?"),
	       (long long)json_integer_value(json_object_get(run, "version")), jstr(run, "status", "?"));
	printf("  correlation: %s\n", jstr(run, "correlation_id", "-"));
	printf("  %-20s %-12s %8s %10s\n", "STEP", "STATUS", "ATTEMPTS", "DURATION");
	size_t i;
	const json_t *st;
	json_array_foreach(json_object_get(run, "steps"), i, st) {
		char dur[32];
		snprintf(dur, sizeof dur, "%lld ms", (long long)json_integer_value(json_object_get(st, "duration_ms")));
		printf("  %-20s %-12s %8lld %10s", jstr(st, "id", "?"), jstr(st, "status", "?"),
		       (long long)json_integer_value(json_object_get(st, "attempts")), dur);
		const json_t *err = json_object_get(st, "error");
		if (json_is_object(err))
			printf("  %s: %s", jstr(err, "class", "error"), jstr(err, "message", ""));
		printf("\n");
	}
	const json_t *err = json_object_get(run, "error");
	if (json_is_object(err))
		printf("error: %s in step %s: %s\n", jstr(err, "class", "?"), jstr(err, "step", "?"),
		       jstr(err, "message", ""));
	const json_t *a;
	json_array_foreach(json_object_get(run, "approvals"), i, a) /* what it waits for, and how to decide */
		if (strcmp(jstr(a, "status", ""), "pending") == 0)
			printf("waits for approval %s (%s, step %s): sluice approvals show %s\n", jstr(a, "id", "?"),
			       jstr(a, "kind", "?"), jstr(a, "step_id", "?"), jstr(a, "id", "?"));
	const json_t *out = json_object_get(run, "output");
	if (out && !json_is_null(out)) {
		char *s = json_dumps(out, JSON_INDENT(2) | JSON_ENCODE_ANY | SL_JSON_REAL);
		printf("output:\n%s\n", s ? s : "null");
		free(s);
	}
}

static int64_t nanos_ms(const json_t *span, const char *key)
{
	const char *v = json_string_value(json_object_get(span, key));
	return v ? strtoll(v, NULL, 10) / 1000000 : 0;
}

/* The span tree, children under their parent, in start order. */
static void print_spans(const json_t *spans, const char *parent, int depth, int64_t t0)
{
	size_t i;
	const json_t *sp;
	json_array_foreach(spans, i, sp)
	{
		const char *p = json_string_value(json_object_get(sp, "parentSpanId"));
		if (strcmp(p ? p : "", parent) != 0)
			continue;
		int64_t start = nanos_ms(sp, "startTimeUnixNano"), end = nanos_ms(sp, "endTimeUnixNano");
		json_int_t code = json_integer_value(json_object_get(json_object_get(sp, "status"), "code"));
		const char *msg = json_string_value(json_object_get(json_object_get(sp, "status"), "message"));
		printf("%*s%-*s +%6lld ms %6lld ms  %s%s%s\n", depth * 2, "", 40 - depth * 2, jstr(sp, "name", "?"),
		       (long long)(start - t0), (long long)(end - start), code == 2 ? "error" : "ok", msg ? ": " : "",
		       msg ? msg : "");
		print_spans(spans, jstr(sp, "spanId", ""), depth + 1, t0);
	}
}

static void print_trace(const json_t *doc)
{
	const json_t *spans =
		json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(doc, "resourceSpans"), 0),
							       "scopeSpans"),
					       0),
				"spans");
	const json_t *root = json_array_get(spans, 0);
	printf("trace %s\n", jstr(root, "traceId", "?"));
	print_spans(spans, "", 0, nanos_ms(root, "startTimeUnixNano"));
}

static int runs_one(const struct client_opts *o, const char *sub, const char *id)
{
	bool show = strcmp(sub, "show") == 0;
	char *path = path_of(show ? (o->trace ? "/v1/runs/%s/trace" : "/v1/runs/%s") : "/v1/runs/%s/cancel", id);
	long st;
	json_t *doc;
	int rc = api_call("runs", o, show ? "GET" : "POST", path, NULL, &st, &doc);
	free(path);
	if (rc)
		return EXIT_USAGE;
	int code = EXIT_OK;
	if (st != 200)
		code = print_problem("runs", st, doc);
	else if (o->json)
		print_json(doc);
	else if (show && o->trace)
		print_trace(doc);
	else if (show)
		print_run(doc);
	else
		printf("run %s cancelled\n", id);
	json_decref(doc);
	return code;
}

int cmd_runs(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_runs(stdout);
		return EXIT_OK;
	}
	struct client_opts o = {0};
	if (parse_opts("runs", argc, argv, &o))
		return EXIT_USAGE;
	int nargs = argc - optind;
	const char *sub = nargs > 0 ? argv[optind] : "list";
	if (strcmp(sub, "list") == 0) {
		if (nargs > 1)
			return cli_usage_error("runs", "list takes no arguments");
		return runs_list(&o);
	}
	if (strcmp(sub, "show") == 0 || strcmp(sub, "cancel") == 0) {
		if (nargs != 2)
			return cli_usage_error("runs", "%s wants a run ID", sub);
		return runs_one(&o, sub, argv[optind + 1]);
	}
	return cli_usage_error("runs", "unknown subcommand '%s' (list, show, cancel)", sub);
}

/* ---- sluice dlq ---------------------------------------------------------------------- */

static void dlq_query(const struct client_opts *o, struct sl_buf *q)
{
	add_query(q, "workflow", o->workflow);
	add_query(q, "step", o->step);
	add_query(q, "error_class", o->error_class);
	add_query(q, "since", o->since);
	add_query(q, "until", o->until);
}

static int dlq_list(const struct client_opts *o)
{
	struct sl_buf q;
	sl_buf_init(&q, SL_BUF_MAX_LINE);
	dlq_query(o, &q);
	add_query(&q, "limit", o->limit);
	add_query(&q, "cursor", o->cursor);
	char *path = sl_asprintf("/v1/dlq%s", sl_buf_str(&q));
	sl_buf_free(&q);
	long st;
	json_t *doc;
	int rc = api_call("dlq", o, "GET", path, NULL, &st, &doc);
	free(path);
	if (rc)
		return EXIT_USAGE;
	int code = EXIT_OK;
	if (st != 200) {
		code = print_problem("dlq", st, doc);
	} else if (o->json) {
		print_json(doc);
	} else {
		printf("%-32s %-32s %-16s %-12s %-11s %-24s %s\n", "ENTRY", "RUN", "WORKFLOW", "STEP", "CLASS", "CREATED",
		       "ERROR");
		size_t i;
		const json_t *e;
		json_array_foreach(json_object_get(doc, "entries"), i, e) {
			char t[32];
			fmt_time(json_object_get(e, "created_at"), t);
			printf("%-32s %-32s %-16s %-12s %-11s %-24s %.80s\n", jstr(e, "id", "?"), jstr(e, "run_id", "?"),
			       jstr(e, "workflow", "?"), jstr(e, "step_id", "?"), jstr(e, "error_class", "?"), t,
			       jstr(e, "error", ""));
		}
		const char *next = jstr(doc, "next_cursor", NULL);
		if (next)
			printf("more: sluice dlq list --cursor %s\n", next);
	}
	json_decref(doc);
	return code;
}

/* {"input": FILE's JSON, "version": V} or NULL when neither is given. */
static int replay_body(const struct client_opts *o, char **out)
{
	*out = NULL;
	if (!o->input_path && !o->version)
		return 0;
	json_t *b = json_object();
	if (o->input_path) {
		json_error_t je;
		json_t *in = json_load_file(o->input_path, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
		if (!in) {
			json_decref(b);
			fprintf(stderr, "sluice dlq: %s:%d:%d: %s\n", o->input_path, je.line, je.column, je.text);
			return -1;
		}
		json_object_set_new(b, "input", in);
	}
	if (o->version)
		json_object_set_new(b, "version", json_string(o->version));
	*out = json_dumps(b, JSON_COMPACT | SL_JSON_REAL);
	json_decref(b);
	return 0;
}

/* Follows next_cursor page by page, printing progress on stderr, so a
 * replay of thousands shows how far it got (and where it stopped, if it
 * stops). With --json the pages are merged into one document at the end. */
static int dlq_replay_all(const struct client_opts *o, const char *body)
{
	json_t *runs = json_array(), *failed = json_array();
	int64_t matched = -1, done = 0;
	char *cursor = NULL;
	int code = EXIT_OK;
	for (;;) {
		struct sl_buf q;
		sl_buf_init(&q, SL_BUF_MAX_LINE);
		dlq_query(o, &q);
		add_query(&q, "limit", "100");
		add_query(&q, "cursor", cursor);
		char *path = sl_asprintf("/v1/dlq/replay%s", sl_buf_str(&q));
		sl_buf_free(&q);
		long st;
		json_t *doc;
		int rc = api_call("dlq", o, "POST", path, body, &st, &doc);
		free(path);
		if (rc) {
			code = EXIT_USAGE;
			break;
		}
		if (st != 200) {
			code = print_problem("dlq", st, doc);
			json_decref(doc);
			break;
		}
		if (matched < 0)
			matched = json_integer_value(json_object_get(doc, "matched"));
		json_array_extend(runs, json_object_get(doc, "runs"));
		json_array_extend(failed, json_object_get(doc, "failed"));
		done = (int64_t)(json_array_size(runs) + json_array_size(failed));
		const char *next = json_string_value(json_object_get(doc, "next_cursor"));
		free(cursor);
		cursor = next ? sl_strdup(next) : NULL;
		json_decref(doc);
		if (!o->json)
			fprintf(stderr, "sluice dlq: %lld of %lld done (%zu replayed, %zu failed)\n", (long long)done,
				(long long)SL_MAX(matched, done), json_array_size(runs), json_array_size(failed));
		if (!cursor)
			break;
	}
	free(cursor);
	if (code == EXIT_OK) {
		if (o->json) {
			json_t *all = json_pack("{s:I, s:I, s:O, s:O}", "matched", (json_int_t)SL_MAX(matched, 0),
						"replayed", (json_int_t)json_array_size(runs), "runs", runs, "failed", failed);
			print_json(all);
			json_decref(all);
		} else {
			printf("%zu replayed, %zu failed\n", json_array_size(runs), json_array_size(failed));
			size_t i;
			const json_t *f;
			json_array_foreach(failed, i, f)
				printf("  %s: %s\n", jstr(f, "id", "?"), jstr(f, "detail", ""));
		}
		if (json_array_size(failed))
			code = EXIT_FAIL;
	}
	json_decref(runs);
	json_decref(failed);
	return code;
}

static int dlq_replay(const struct client_opts *o, const char *id)
{
	char *body;
	if (replay_body(o, &body))
		return EXIT_USAGE;
	if (!id) {
		int code = dlq_replay_all(o, body);
		free(body);
		return code;
	}
	char *path = path_of("/v1/dlq/%s/replay", id);
	long st;
	json_t *doc;
	int rc = api_call("dlq", o, "POST", path, body, &st, &doc);
	free(path);
	free(body);
	if (rc)
		return EXIT_USAGE;
	int code = EXIT_OK;
	if (st != 200 && st != 202)
		code = print_problem("dlq", st, doc);
	else if (o->json)
		print_json(doc);
	else
		printf("entry %s replayed: run %s queued\n", id, jstr(doc, "run_id", "?"));
	json_decref(doc);
	return code;
}

int cmd_dlq(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_dlq(stdout);
		return EXIT_OK;
	}
	struct client_opts o = {0};
	if (parse_opts("dlq", argc, argv, &o))
		return EXIT_USAGE;
	int nargs = argc - optind;
	const char *sub = nargs > 0 ? argv[optind] : "list";
	if (strcmp(sub, "list") == 0) {
		if (nargs > 1)
			return cli_usage_error("dlq", "list takes no arguments");
		return dlq_list(&o);
	}
	if (strcmp(sub, "replay") == 0) {
		if (o.all && nargs == 1)
			return dlq_replay(&o, NULL);
		if (!o.all && nargs == 2)
			return dlq_replay(&o, argv[optind + 1]);
		return cli_usage_error("dlq", "replay wants an entry ID, or --all with filters");
	}
	return cli_usage_error("dlq", "unknown subcommand '%s' (list, replay)", sub);
}

/* The start of a report verb (costs, connectors, slo): --help, options, no
 * arguments, then GET path. Returns -1 with *doc set (200), or an exit
 * code to return at once. */
static int report_get(const char *verb, void (*help)(FILE *), int argc, char **argv, struct client_opts *o,
		      const char *path, json_t **doc)
{
	*doc = NULL;
	if (cli_wants_help(argc, argv)) {
		help(stdout);
		return EXIT_OK;
	}
	if (parse_opts(verb, argc, argv, o))
		return EXIT_USAGE;
	if (argc - optind > 0)
		return cli_usage_error(verb, "takes no arguments");
	long status;
	if (api_call(verb, o, "GET", path, NULL, &status, doc)) {
		json_decref(*doc);
		*doc = NULL;
		return EXIT_USAGE;
	}
	if (status != 200) {
		int ret = print_problem(verb, status, *doc);
		json_decref(*doc);
		*doc = NULL;
		return ret;
	}
	return -1;
}

/* ---- sluice costs ---------------------------------------------------------------------- */

void help_costs(FILE *out)
{
	fprintf(out,
		"Usage: sluice costs [--group-by workflow|route|model|tenant] [--since TIME] [--json]\n\n"
		"What model calls cost (GET /v1/costs of a running `sluice serve`): calls,\n"
		"tokens, USD and USD per completed run, per group, most expensive first. The\n"
		"chat gateway's calls, outside any workflow, are the group '(gateway)'.\n"
		"TIME: RFC 3339 or ms since the epoch (default: everything kept).\n\n"
		"Options:\n"
		"  --server URL        default " DEFAULT_SERVER " (token: SLUICE_TOKEN)\n"
		"  --group-by G        workflow (default), route, model or tenant\n"
		"  --since TIME        only calls since then\n"
		"  --json              print the server's JSON\n"
		"  -h, --help          this text\n\n"
		"Exit: 0 ok, 1 the server refused, 2 usage or connection error.\n");
}

static void print_costs(const json_t *doc)
{
	printf("%-28s %8s %12s %12s %12s %6s %12s\n", "GROUP", "CALLS", "TOKENS_IN", "TOKENS_OUT", "USD", "RUNS",
	       "USD/RUN");
	size_t i;
	const json_t *g;
	json_array_foreach(json_object_get(doc, "groups"), i, g)
	{
		const json_t *per = json_object_get(g, "cost_per_completed_run");
		char per_s[32] = "-";
		if (json_is_number(per))
			snprintf(per_s, sizeof per_s, "%.6f", json_number_value(per));
		printf("%-28s %8lld %12lld %12lld %12.6f %6lld %12s\n", jstr(g, "key", "(gateway)"),
		       (long long)json_integer_value(json_object_get(g, "calls")),
		       (long long)json_integer_value(json_object_get(g, "tokens_in")),
		       (long long)json_integer_value(json_object_get(g, "tokens_out")),
		       json_number_value(json_object_get(g, "cost_usd")),
		       (long long)json_integer_value(json_object_get(g, "runs_completed")), per_s);
	}
	const json_t *t = json_object_get(doc, "total");
	printf("%-28s %8lld %12lld %12lld %12.6f\n", "total", (long long)json_integer_value(json_object_get(t, "calls")),
	       (long long)json_integer_value(json_object_get(t, "tokens_in")),
	       (long long)json_integer_value(json_object_get(t, "tokens_out")),
	       json_number_value(json_object_get(t, "cost_usd")));
}

int cmd_costs(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_costs(stdout);
		return EXIT_OK;
	}
	struct client_opts o = {0};
	if (parse_opts("costs", argc, argv, &o))
		return EXIT_USAGE;
	if (argc - optind > 0)
		return cli_usage_error("costs", "takes no arguments");
	struct sl_buf q;
	sl_buf_init(&q, SL_BUF_MAX_LINE);
	add_query(&q, "group_by", o.group_by);
	add_query(&q, "since", o.since);
	char *path = sl_asprintf("/v1/costs%s", sl_buf_str(&q));
	sl_buf_free(&q);
	long status;
	json_t *doc;
	int rc = api_call("costs", &o, "GET", path, NULL, &status, &doc);
	free(path);
	if (rc) {
		json_decref(doc);
		return EXIT_USAGE;
	}
	int ret = EXIT_OK;
	if (status != 200)
		ret = print_problem("costs", status, doc);
	else if (o.json)
		print_json(doc);
	else
		print_costs(doc);
	json_decref(doc);
	return ret;
}

/* ---- sluice connectors ------------------------------------------------------------------ */

void help_connectors(FILE *out)
{
	fprintf(out,
		"Usage: sluice connectors [--json] [--server URL]\n\n"
		"Connector health as a running `sluice serve` saw it (GET /v1/connectors):\n"
		"state (healthy; degraded: failing since its last success; unhealthy: an auth\n"
		"error since its last success), last success, calls, errors, a stream's\n"
		"consumer lag and the last error's class and reason.\n\n"
		"Options:\n"
		"  --server URL        default " DEFAULT_SERVER " (token: SLUICE_TOKEN)\n"
		"  --json              print the server's JSON\n"
		"  -h, --help          this text\n\n"
		"Exit: 0 all healthy, 1 one is degraded or unhealthy (or the server refused),\n"
		"2 usage or connection error.\n");
}

int cmd_connectors(int argc, char **argv)
{
	struct client_opts o = {0};
	json_t *doc;
	int ret = report_get("connectors", help_connectors, argc, argv, &o, "/v1/connectors", &doc);
	if (ret >= 0)
		return ret;
	ret = EXIT_OK;
	if (o.json)
		print_json(doc);
	else
		printf("%-20s %-12s %-10s %-24s %7s %7s %7s  %s\n", "CONNECTOR", "TYPE", "STATE", "LAST SUCCESS", "CALLS",
		       "ERRORS", "LAG", "LAST ERROR");
	size_t i;
	const json_t *c;
	json_array_foreach(json_object_get(doc, "connectors"), i, c)
	{
		if (strcmp(jstr(c, "state", ""), "healthy") != 0)
			ret = EXIT_FAIL;
		if (o.json)
			continue;
		char err[300] = "-";
		if (json_is_string(json_object_get(c, "last_error")))
			snprintf(err, sizeof err, "%s: %s", jstr(c, "last_error_class", ""), jstr(c, "last_error", ""));
		/* a stream's consumer lag; "-" for other types and before it was asked */
		char lag[24] = "-";
		const json_t *l = json_object_get(json_object_get(c, "stream"), "lag");
		if (json_is_integer(l))
			snprintf(lag, sizeof lag, "%lld", (long long)json_integer_value(l));
		printf("%-20s %-12s %-10s %-24s %7lld %7lld %7s  %s\n", jstr(c, "name", ""), jstr(c, "type", ""),
		       jstr(c, "state", ""), jstr(c, "last_success", "never"),
		       (long long)json_integer_value(json_object_get(c, "calls")),
		       (long long)json_integer_value(json_object_get(c, "errors")), lag, err);
	}
	json_decref(doc);
	return ret;
}

/* ---- sluice slo ------------------------------------------------------------------------- */

void help_slo(FILE *out)
{
	fprintf(out,
		"Usage: sluice slo [--json] [--server URL]\n\n"
		"Each workflow's service level objectives (its `slo:` block) on a running\n"
		"`sluice serve` (GET /v1/slo): state (ok, no_data, slow_burn, fast_burn), burn\n"
		"rate over 5m, 1h and 6h, and the error budget left over 30 days.\n\n"
		"Options:\n"
		"  --server URL        default " DEFAULT_SERVER " (token: SLUICE_TOKEN)\n"
		"  --json              print the server's JSON\n"
		"  -h, --help          this text\n\n"
		"Exit: 0 no objective burning, 1 one is (or the server refused), 2 usage or\n"
		"connection error.\n");
}

static void burn_cell(const json_t *burns, const char *window, char out[16])
{
	const json_t *v = json_object_get(burns, window);
	if (json_is_number(v))
		snprintf(out, 16, "%.2f", json_number_value(v));
	else
		snprintf(out, 16, "-");
}

int cmd_slo(int argc, char **argv)
{
	struct client_opts o = {0};
	json_t *doc;
	int ret = report_get("slo", help_slo, argc, argv, &o, "/v1/slo", &doc);
	if (ret >= 0)
		return ret;
	ret = EXIT_OK;
	if (o.json)
		print_json(doc);
	else
		printf("%-22s %-14s %10s %-10s %8s %8s %8s %8s\n", "WORKFLOW", "OBJECTIVE", "TARGET", "STATE", "BURN 5m",
		       "BURN 1h", "BURN 6h", "BUDGET");
	size_t i, j;
	const json_t *w, *ob;
	json_array_foreach(json_object_get(doc, "workflows"), i, w)
		json_array_foreach(json_object_get(w, "objectives"), j, ob)
		{
			const char *state = jstr(ob, "state", "");
			if (strstr(state, "burn"))
				ret = EXIT_FAIL;
			if (o.json)
				continue;
			const json_t *b = json_object_get(ob, "burn_rate");
			char b5[16], b1[16], b6[16], left[16] = "-";
			burn_cell(b, "5m", b5);
			burn_cell(b, "1h", b1);
			burn_cell(b, "6h", b6);
			if (json_is_number(json_object_get(ob, "budget_left")))
				snprintf(left, sizeof left, "%.0f%%", 100 * json_number_value(json_object_get(ob, "budget_left")));
			printf("%-22s %-14s %10g %-10s %8s %8s %8s %8s\n", jstr(w, "workflow", ""), jstr(ob, "objective", ""),
			       json_number_value(json_object_get(ob, "target")), state, b5, b1, b6, left);
		}
	json_decref(doc);
	return ret;
}
