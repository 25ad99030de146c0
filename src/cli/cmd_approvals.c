/*
 * cmd_approvals.c: `sluice approvals`: a client of a server's approvals API
 * (docs/reference/api.md): list, show, decide (approve, reject, edit), and
 * export the decisions as a JSONL feedback dataset that `sluice model
 * train` reads ({"text", "label"} plus the decision's facts).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

#define EXPORT_PAGE "500"

void help_approvals(FILE *out)
{
	fprintf(out,
		"Usage: sluice approvals list [--status S] [--workflow NAME] [--run ID] [--tenant T]\n"
		"                             [--limit N] [--cursor C]\n"
		"       sluice approvals show ID\n"
		"       sluice approvals approve ID [--reason TEXT]\n"
		"       sluice approvals reject ID --reason TEXT\n"
		"       sluice approvals edit ID --value JSON --reason TEXT\n"
		"       sluice approvals export [--since TIME] [--workflow NAME] [--all] [--out FILE]\n\n"
		"Runs parked on a person's decision: ai answers in review, approval steps,\n"
		"calls held by a policy rule or an autonomy level. A decision resumes the\n"
		"run at the waiting step; it is audited with who decided and why.\n\n"
		"export writes one JSON line per decision: {text, label, input, proposed,\n"
		"final, decision, reason, workflow, step, kind, id, by}, the format\n"
		"`sluice model train --data FILE` reads (text and label). Only decisions\n"
		"whose final value has a label (a string, or an object with \"label\") are\n"
		"written, unless --all (then label may be null: not trainable).\n\n"
		"Options:\n"
		"  --server URL        default " CLI_DEFAULT_SERVER " (token: SLUICE_TOKEN)\n"
		"  --status S          list: pending (default), approved, rejected, edited,\n"
		"                      expired, or all\n"
		"  --reason TEXT       why (required to reject and edit)\n"
		"  --value JSON        edit: the corrected value, e.g. '\"bug\"' or '{\"label\":\"bug\"}'\n"
		"  --since TIME        export: decided at or after (RFC 3339 or ms)\n"
		"  --out FILE          export: write here instead of stdout\n"
		"  --json              print the server's JSON\n"
		"  -h, --help          this text\n\n"
		"Exit: 0 ok, 1 the server refused (not found, already decided: 409, invalid\n"
		"edit: 422), 2 usage or connection error.\n");
}

struct apr_opts {
	const char *server, *status, *workflow, *run, *tenant, *limit, *cursor, *reason, *value, *since, *out;
	bool json, all;
};

static const char *jstr(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static int parse_opts(int argc, char **argv, struct apr_opts *o)
{
	enum { O_SERVER = 256, O_STATUS, O_WORKFLOW, O_RUN, O_TENANT, O_LIMIT, O_CURSOR, O_REASON, O_VALUE,
	       O_SINCE, O_OUT, O_JSON, O_ALL };
	static const struct option opts[] = {
		{"server", required_argument, NULL, O_SERVER}, {"status", required_argument, NULL, O_STATUS},
		{"workflow", required_argument, NULL, O_WORKFLOW}, {"run", required_argument, NULL, O_RUN},
		{"tenant", required_argument, NULL, O_TENANT}, {"limit", required_argument, NULL, O_LIMIT},
		{"cursor", required_argument, NULL, O_CURSOR}, {"reason", required_argument, NULL, O_REASON},
		{"value", required_argument, NULL, O_VALUE}, {"since", required_argument, NULL, O_SINCE},
		{"out", required_argument, NULL, O_OUT}, {"json", no_argument, NULL, O_JSON},
		{"all", no_argument, NULL, O_ALL}, {NULL, 0, NULL, 0},
	};
	const char **slot[] = {[O_SERVER - O_SERVER] = &o->server, &o->status, &o->workflow, &o->run, &o->tenant,
			       &o->limit, &o->cursor, &o->reason, &o->value, &o->since, &o->out};
	o->server = getenv("SLUICE_SERVER") && *getenv("SLUICE_SERVER") ? getenv("SLUICE_SERVER") : CLI_DEFAULT_SERVER;
	optind = 1;
	opterr = 0;
	int c;
	/* options may follow the subcommand and ID (GNU getopt moves them first) */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c >= O_SERVER && c <= O_OUT)
			*slot[c - O_SERVER] = optarg;
		else if (c == O_JSON)
			o->json = true;
		else if (c == O_ALL)
			o->all = true;
		else
			return cli_usage_error("approvals", "unknown option or missing value '%s'", argv[optind - 1]);
	}
	return 0;
}

/* One GET/POST; prints the problem on a non-200. *doc owned. */
static int call(const struct apr_opts *o, const char *method, const char *path, const char *body, json_t **doc)
{
	long st = 0;
	if (cli_api_call("approvals", o->server, method, path, body, &st, doc))
		return EXIT_USAGE;
	if (st != 200) {
		int rc = cli_print_problem("approvals", st, *doc);
		json_decref(*doc);
		*doc = NULL;
		return rc;
	}
	return EXIT_OK;
}

static void fmt_time(const json_t *v, char out[32])
{
	if (json_is_integer(v))
		sl_time_format(json_integer_value(v), out);
	else
		snprintf(out, 32, "-");
}

static char *compact(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
	return s ? s : sl_strdup("null");
}

static int list(const struct apr_opts *o)
{
	struct sl_buf q;
	sl_buf_init(&q, SL_BUF_MAX_LINE);
	const char *status = o->status ? o->status : "pending";
	cli_add_query(&q, "status", strcmp(status, "all") == 0 ? NULL : status);
	cli_add_query(&q, "workflow", o->workflow);
	cli_add_query(&q, "run_id", o->run);
	cli_add_query(&q, "tenant", o->tenant);
	cli_add_query(&q, "limit", o->limit);
	cli_add_query(&q, "cursor", o->cursor);
	char *path = sl_asprintf("/v1/approvals%s", sl_buf_str(&q));
	sl_buf_free(&q);
	json_t *doc = NULL;
	int rc = call(o, "GET", path, NULL, &doc);
	free(path);
	if (rc)
		return rc;
	if (o->json) {
		json_dumpf(doc, stdout, JSON_INDENT(2) | SL_JSON_REAL);
		fputc('\n', stdout);
		json_decref(doc);
		return EXIT_OK;
	}
	printf("%-30s %-9s %-9s %-16s %-12s %-24s %-20s %s\n", "APPROVAL", "KIND", "STATUS", "WORKFLOW", "STEP",
	       "CREATED", "REVIEWERS", "PROPOSED");
	size_t i;
	const json_t *a;
	json_array_foreach(json_object_get(doc, "approvals"), i, a) {
		char t[32];
		fmt_time(json_object_get(a, "created_at"), t);
		char *rev = compact(json_object_get(a, "reviewers")), *prop = compact(json_object_get(a, "proposed"));
		printf("%-30s %-9s %-9s %-16s %-12s %-24s %-20s %.60s\n", jstr(a, "id", "?"), jstr(a, "kind", "?"),
		       jstr(a, "status", "?"), jstr(a, "workflow", "?"), jstr(a, "step_id", "?"), t, rev, prop);
		free(rev);
		free(prop);
	}
	const char *next = jstr(doc, "next_cursor", NULL);
	if (next)
		printf("more: sluice approvals list --cursor %s\n", next);
	json_decref(doc);
	return EXIT_OK;
}

static int show(const struct apr_opts *o, const char *id)
{
	char *esc = sl_asprintf("/v1/approvals/%s", id);
	json_t *doc = NULL;
	int rc = call(o, "GET", esc, NULL, &doc);
	free(esc);
	if (rc)
		return rc;
	json_dumpf(doc, stdout, JSON_INDENT(2) | SL_JSON_REAL);
	fputc('\n', stdout);
	json_decref(doc);
	return EXIT_OK;
}

static int decide(const struct apr_opts *o, const char *verb, const char *id)
{
	if (strcmp(verb, "approve") != 0 && (!o->reason || !*o->reason))
		return cli_usage_error("approvals", "%s wants --reason TEXT", verb);
	json_t *body = json_pack("{s:s}", "decision", verb);
	if (o->reason)
		json_object_set_new(body, "reason", json_string(o->reason));
	if (strcmp(verb, "edit") == 0) {
		json_error_t je;
		json_t *v = o->value ? json_loads(o->value, JSON_DECODE_ANY, &je) : NULL;
		if (!v) {
			json_decref(body);
			return cli_usage_error("approvals", "edit wants --value JSON (%s)",
					       o->value ? je.text : "missing");
		}
		json_object_set_new(body, "value", v);
	}
	char *text = json_dumps(body, JSON_COMPACT | SL_JSON_REAL);
	json_decref(body);
	char *path = sl_asprintf("/v1/approvals/%s/decision", id);
	json_t *doc = NULL;
	int rc = call(o, "POST", path, text, &doc);
	free(path);
	free(text);
	if (rc)
		return rc;
	if (o->json) {
		json_dumpf(doc, stdout, JSON_INDENT(2) | SL_JSON_REAL);
		fputc('\n', stdout);
	} else {
		printf("approval %s %s; run %s resumes\n", id, jstr(doc, "status", "?"), jstr(doc, "run_id", "?"));
	}
	json_decref(doc);
	return EXIT_OK;
}

/* The label of a final value: a string, or an object's "label". */
static const char *label_of(const json_t *final)
{
	if (json_is_string(final))
		return json_string_value(final);
	return json_string_value(json_object_get(final, "label"));
}

/* One line of the feedback dataset; returns whether it was written. */
static bool export_one(FILE *f, const json_t *a, bool all)
{
	const json_t *d = json_object_get(a, "decision");
	if (!json_is_object(d))
		return false;
	const json_t *final = json_object_get(d, "final");
	const char *label = label_of(final);
	if (!label && !all)
		return false;
	const json_t *input = json_object_get(a, "input");
	char *text = json_is_string(input) ? sl_strdup(json_string_value(input)) : compact(input);
	json_t *line = json_pack("{s:s, s:s?, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "text", text, "label",
				 label, "input", input ? input : json_null(), "proposed", json_object_get(a, "proposed"),
				 "final", final ? final : json_null(), "decision", json_object_get(d, "decision"),
				 "reason", json_object_get(d, "reason") ? json_object_get(d, "reason") : json_null(),
				 "by", json_object_get(d, "by"), "workflow", json_object_get(a, "workflow"), "step",
				 json_object_get(a, "step_id"), "kind", json_object_get(a, "kind"), "id",
				 json_object_get(a, "id"));
	free(text);
	if (!label)
		json_object_set_new(line, "label", json_null());
	json_dumpf(line, f, JSON_COMPACT | JSON_SORT_KEYS | SL_JSON_REAL);
	fputc('\n', f);
	json_decref(line);
	return true;
}

static int export_all(const struct apr_opts *o)
{
	FILE *f = stdout;
	if (o->out && !(f = fopen(o->out, "w"))) {
		fprintf(stderr, "sluice approvals: cannot write %s\n", o->out);
		return EXIT_USAGE;
	}
	char *cursor = NULL;
	int rc = EXIT_OK;
	long written = 0;
	do { /* oldest last: pages newest first, as the API gives them */
		struct sl_buf q;
		sl_buf_init(&q, SL_BUF_MAX_LINE);
		cli_add_query(&q, "workflow", o->workflow);
		cli_add_query(&q, "since", o->since);
		cli_add_query(&q, "limit", EXPORT_PAGE);
		cli_add_query(&q, "cursor", cursor);
		char *path = sl_asprintf("/v1/approvals%s", sl_buf_str(&q));
		sl_buf_free(&q);
		json_t *doc = NULL;
		rc = call(o, "GET", path, NULL, &doc);
		free(path);
		free(cursor);
		cursor = NULL;
		if (rc)
			break;
		size_t i;
		const json_t *a;
		json_array_foreach(json_object_get(doc, "approvals"), i, a)
			written += export_one(f, a, o->all);
		const char *next = jstr(doc, "next_cursor", NULL);
		cursor = next ? sl_strdup(next) : NULL;
		json_decref(doc);
	} while (cursor);
	free(cursor);
	if (f != stdout && fclose(f) != 0 && !rc) {
		fprintf(stderr, "sluice approvals: cannot write %s\n", o->out);
		rc = EXIT_USAGE;
	}
	if (!rc && o->out)
		fprintf(stderr, "sluice approvals: %ld decisions written to %s\n", written, o->out);
	return rc;
}

int cmd_approvals(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_approvals(stdout);
		return EXIT_OK;
	}
	struct apr_opts o = {0};
	if (parse_opts(argc, argv, &o))
		return EXIT_USAGE;
	int nargs = argc - optind;
	const char *sub = nargs > 0 ? argv[optind] : "list";
	if (strcmp(sub, "list") == 0 || strcmp(sub, "export") == 0) {
		if (nargs > 1)
			return cli_usage_error("approvals", "%s takes no arguments", sub);
		return sub[0] == 'l' ? list(&o) : export_all(&o);
	}
	static const char *const one[] = {"show", "approve", "reject", "edit", NULL};
	for (const char *const *p = one; *p; p++) {
		if (strcmp(sub, *p) != 0)
			continue;
		if (nargs != 2)
			return cli_usage_error("approvals", "%s wants an approval ID", sub);
		return strcmp(sub, "show") == 0 ? show(&o, argv[optind + 1]) : decide(&o, sub, argv[optind + 1]);
	}
	return cli_usage_error("approvals", "unknown subcommand '%s' (list, show, approve, reject, edit, export)", sub);
}
