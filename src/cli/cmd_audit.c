/*
 * cmd_audit.c: `sluice audit verify|head|list`.
 *
 * verify and head read the store itself (a project's, or --store), so they
 * work with the server stopped and without trusting it; list is a client of
 * GET /v1/audit, like `sluice runs list`.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "gov/audit.h"
#include "store/store.h"
#include "util/util.h"

void help_audit(FILE *out)
{
	fprintf(out,
		"Usage: sluice audit verify [--head HASH] [--store URL] [DIR]\n"
		"       sluice audit head [--store URL] [DIR]\n"
		"       sluice audit list [--action A] [--run ID] [--since T] [--until T]\n"
		"                         [--limit N] [--cursor C] [--json] [--server URL]\n\n"
		"The audit log is append-only and hash-chained: each entry's hash covers the\n"
		"previous entry's hash and the entry's canonical text.\n\n"
		"  verify   recomputes every hash and checks the links, the sequence (1, 2, 3,\n"
		"           ... without gaps) and that each entry's columns agree with its\n"
		"           text: any edit, deletion, reordering or insertion is found, and\n"
		"           the first bad entry named. A cut-off tail leaves a shorter valid\n"
		"           chain: pass --head with a hash printed earlier by `audit head`\n"
		"           (and kept elsewhere) to detect it.\n"
		"  head     prints the last entry's seq and hash, to keep elsewhere.\n"
		"  list     lists entries newest first from a running server.\n\n"
		"DIR is the project folder (default .); its `store:` is read unless --store\n"
		"names one.\n\n"
		"Options:\n"
		"  --head HASH       verify: a head hash anchored earlier\n"
		"  --store URL       verify, head: the store (sqlite:PATH or postgres://...)\n"
		"  --server URL      list: default " CLI_DEFAULT_SERVER " (token: SLUICE_TOKEN)\n"
		"  --action A        list: one action (run.start, run.cancel, dlq.replay, step.write,\n"
		"                    ai.call, ...)\n"
		"  --run ID          list: entries about one run\n"
		"  --since T, --until T   list: RFC 3339 or ms since the epoch\n"
		"  --limit N         list: page size, 1 to 500 (default 50)\n"
		"  --cursor C        list: the page after C\n"
		"  --json            print JSON\n"
		"  -h, --help        this text\n\n"
		"Exit: verify: 0 intact, 1 tampered with (the first bad seq is printed), 2 usage\n"
		"or store error; head, list: 0 ok, 1 refused by the server, 2 usage or connection.\n");
}

struct audit_opts {
	const char *head, *store, *server, *action, *run_id, *since, *until, *limit, *cursor;
	bool json;
	const char *dir;
};

static int parse_opts(int argc, char **argv, struct audit_opts *o)
{
	static const struct option opts[] = {
		{"head", required_argument, NULL, 'H'},   {"store", required_argument, NULL, 's'},
		{"server", required_argument, NULL, 'S'}, {"action", required_argument, NULL, 'a'},
		{"run", required_argument, NULL, 'r'},    {"since", required_argument, NULL, 'b'},
		{"until", required_argument, NULL, 'u'},  {"limit", required_argument, NULL, 'n'},
		{"cursor", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	o->server = getenv("SLUICE_SERVER") ? getenv("SLUICE_SERVER") : CLI_DEFAULT_SERVER;
	optind = 1;
	int c;
	int64_t v;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'H': o->head = optarg; break;
		case 's': o->store = optarg; break;
		case 'S': o->server = optarg; break;
		case 'a': o->action = optarg; break;
		case 'r': o->run_id = optarg; break;
		case 'b': o->since = optarg; break;
		case 'u': o->until = optarg; break;
		case 'n':
			if (cli_opt_int("audit", "limit", optarg, 1, 500, &v))
				return EXIT_USAGE;
			o->limit = optarg;
			break;
		case 'c': o->cursor = optarg; break;
		case 'j': o->json = true; break;
		default: return cli_usage_error("audit", "unknown option");
		}
	}
	if (optind < argc)
		o->dir = argv[optind++];
	if (optind < argc)
		return cli_usage_error("audit", "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* Opens the store of DIR (or --store). NULL after printing why. */
static struct sl_store *open_store(const struct audit_opts *o)
{
	char *url = NULL;
	if (o->store) {
		url = sl_strdup(o->store);
	} else {
		struct sl_project *p = cli_load_project(o->dir ? o->dir : ".", false);
		if (!p)
			return NULL;
		url = cli_store_url(NULL, p);
		sl_project_free(p);
	}
	struct sl_store *s = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	if (sl_store_open(url, &s, &err)) {
		fprintf(stderr, "sluice audit: %s\n", err.msg);
		s = NULL;
	}
	free(url);
	return s;
}

static int audit_verify(const struct audit_opts *o)
{
	if (o->head && strlen(o->head) != SL_AUDIT_HASH_LEN)
		return cli_usage_error("audit", "--head wants a 64-character hash (from `sluice audit head`)");
	struct sl_store *s = open_store(o);
	if (!s)
		return EXIT_USAGE;
	struct sl_audit_report rep;
	int rc = sl_audit_verify(s, o->head, &rep);
	sl_store_close(s);
	if (rc) {
		fprintf(stderr, "sluice audit: %s\n", rep.reason);
		return EXIT_USAGE;
	}
	if (o->json) {
		json_t *j = json_pack("{s:b, s:I, s:I, s:s}", "intact", rep.intact, "entries", (json_int_t)rep.entries,
				      "head_seq", (json_int_t)rep.head_seq, "head_hash", rep.head_hash);
		if (!rep.intact) {
			json_object_set_new(j, "bad_seq", json_integer(rep.bad_seq));
			json_object_set_new(j, "reason", json_string(rep.reason));
		}
		if (o->head)
			json_object_set_new(j, "anchor_seq", rep.anchor_found ? json_integer(rep.anchor_seq) : json_null());
		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(j);
	} else if (rep.intact) {
		printf("audit log intact: %lld entries, head %lld %s\n", (long long)rep.entries, (long long)rep.head_seq,
		       rep.head_hash);
		if (o->head)
			printf("anchored head found at seq %lld\n", (long long)rep.anchor_seq);
	} else {
		printf("audit log TAMPERED: first bad seq %lld: %s\n", (long long)rep.bad_seq, rep.reason);
	}
	return rep.intact ? EXIT_OK : EXIT_FAIL;
}

static int audit_head(const struct audit_opts *o)
{
	struct sl_store *s = open_store(o);
	if (!s)
		return EXIT_USAGE;
	struct sl_audit_filter f = {.limit = 1};
	json_t *page = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_audit_list(s, &f, &page, &err);
	sl_store_close(s);
	if (rc) {
		fprintf(stderr, "sluice audit: %s\n", err.msg);
		return EXIT_USAGE;
	}
	const json_t *last = json_array_get(json_object_get(page, "entries"), 0);
	json_int_t seq = last ? json_integer_value(json_object_get(last, "seq")) : 0;
	const char *hash = last ? json_string_value(json_object_get(last, "hash")) : SL_AUDIT_GENESIS;
	if (o->json)
		printf("{\"seq\": %lld, \"hash\": \"%s\"}\n", (long long)seq, hash ? hash : "");
	else
		printf("%lld %s\n", (long long)seq, hash ? hash : "");
	json_decref(page);
	return EXIT_OK;
}

static void print_entry(const json_t *e)
{
	char t[32] = "-";
	const json_t *at = json_object_get(e, "at");
	if (json_is_integer(at))
		sl_time_format(json_integer_value(at), t);
	const json_t *actor = json_object_get(e, "actor");
	char who[96];
	snprintf(who, sizeof who, "%s:%s", json_string_value(json_object_get(actor, "kind")) ?: "?",
		 json_string_value(json_object_get(actor, "id")) ?: "?");
	const char *run = json_string_value(json_object_get(e, "run_id"));
	const char *step = json_string_value(json_object_get(e, "step_id"));
	printf("%6lld  %-24s  %-16s  %-28s  %s%s%s\n", (long long)json_integer_value(json_object_get(e, "seq")), t,
	       json_string_value(json_object_get(e, "action")) ?: "?", who, run ? run : "-", step ? "/" : "",
	       step ? step : "");
}

static int audit_list(const struct audit_opts *o)
{
	if (!sl_str_startswith(o->server, "http://") && !sl_str_startswith(o->server, "https://"))
		return cli_usage_error("audit", "--server wants an http:// or https:// URL");
	struct sl_buf q;
	sl_buf_init(&q, SL_BUF_MAX_LINE);
	cli_add_query(&q, "action", o->action);
	cli_add_query(&q, "run_id", o->run_id);
	cli_add_query(&q, "since", o->since);
	cli_add_query(&q, "until", o->until);
	cli_add_query(&q, "limit", o->limit);
	cli_add_query(&q, "cursor", o->cursor);
	char *path = sl_asprintf("/v1/audit%s", sl_buf_str(&q));
	sl_buf_free(&q);
	long st;
	json_t *doc;
	int rc = cli_api_call("audit", o->server, "GET", path, NULL, &st, &doc);
	free(path);
	if (rc)
		return EXIT_USAGE;
	int code = EXIT_OK;
	if (st != 200) {
		code = cli_print_problem("audit", st, doc);
	} else if (o->json) {
		json_dumpf(doc, stdout, JSON_INDENT(2) | SL_JSON_REAL);
		fputc('\n', stdout);
	} else {
		printf("%6s  %-24s  %-16s  %-28s  %s\n", "SEQ", "AT", "ACTION", "ACTOR", "RUN/STEP");
		size_t i;
		const json_t *e;
		json_array_foreach(json_object_get(doc, "entries"), i, e)
			print_entry(e);
		const char *next = json_string_value(json_object_get(doc, "next_cursor"));
		if (next)
			printf("more: sluice audit list --cursor %s\n", next);
	}
	json_decref(doc);
	return code;
}

int cmd_audit(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error("audit", "want a subcommand: verify, head or list");
	const char *sub = argv[1];
	struct audit_opts o = {0};
	if (parse_opts(argc - 1, argv + 1, &o))
		return EXIT_USAGE;
	if (strcmp(sub, "verify") == 0)
		return audit_verify(&o);
	if (strcmp(sub, "head") == 0)
		return audit_head(&o);
	if (strcmp(sub, "list") == 0) {
		if (o.dir)
			return cli_usage_error("audit", "list takes no folder (it asks the server: --server URL)");
		return audit_list(&o);
	}
	return cli_usage_error("audit", "unknown subcommand '%s' (want verify, head or list)", sub);
}
