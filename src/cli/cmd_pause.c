/*
 * cmd_pause.c: `sluice pause|resume KIND NAME`, the kill switches, and
 * `sluice pause list`. Clients of /v1/pauses on a running server (an admin
 * key in SLUICE_TOKEN): the server's engine takes the pause at once and the
 * other processes on the store within a quarter second.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

static void help_common(FILE *out, const char *verb)
{
	fprintf(out,
		"Usage: sluice %s workflow|connector|provider NAME [--server URL] [--json]\n"
		"%s\n"
		"Kill switches. A paused workflow starts no step, a paused connector gets no\n"
		"call and a paused provider no model call: the runs they hold wait durably\n"
		"(their status stays; GET /v1/pauses lists what holds them) and go on from the\n"
		"step they stopped at on resume. Webhooks to a paused workflow are still\n"
		"accepted and queued. Pause and resume are audit entries. Needs an admin key.\n\n"
		"Options:\n"
		"  --server URL   default " CLI_DEFAULT_SERVER " (token: SLUICE_TOKEN)\n"
		"  --json         print the server's JSON\n"
		"  -h, --help     this text\n\n"
		"Exit: 0 ok, 1 refused by the server, 2 usage or connection error.\n",
		verb, strcmp(verb, "pause") == 0 ? "       sluice pause list [--server URL] [--json]\n" : "");
}

void help_pause(FILE *out)
{
	help_common(out, "pause");
}

void help_resume(FILE *out)
{
	help_common(out, "resume");
}

static int pause_main(const char *verb, int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 'S'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	const char *server = getenv("SLUICE_SERVER") ? getenv("SLUICE_SERVER") : CLI_DEFAULT_SERVER;
	bool json = false;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'S')
			server = optarg;
		else if (c == 'j')
			json = true;
		else
			return cli_usage_error(verb, "unknown option");
	}
	int left = argc - optind;
	char **rest = argv + optind;
	bool list = strcmp(verb, "pause") == 0 && left == 1 && strcmp(rest[0], "list") == 0;
	if (!list && left != 2)
		return cli_usage_error(verb, "want KIND NAME (workflow, connector or provider)");
	if (!list && strcmp(rest[0], "workflow") && strcmp(rest[0], "connector") && strcmp(rest[0], "provider"))
		return cli_usage_error(verb, "KIND is workflow, connector or provider");
	long status = 0;
	json_t *doc = NULL;
	int rc;
	if (list) {
		rc = cli_api_call(verb, server, "GET", "/v1/pauses", NULL, &status, &doc);
	} else if (strcmp(verb, "pause") == 0) {
		json_t *b = json_pack("{s:s, s:s}", "kind", rest[0], "name", rest[1]);
		char *body = json_dumps(b, JSON_COMPACT);
		json_decref(b);
		rc = cli_api_call(verb, server, "POST", "/v1/pauses", body, &status, &doc);
		free(body);
	} else {
		struct sl_buf path;
		sl_buf_init(&path, 1024);
		sl_buf_printf(&path, "/v1/pauses/%s/", rest[0]);
		cli_add_path_segment(&path, rest[1]);
		rc = cli_api_call(verb, server, "DELETE", sl_buf_str(&path), NULL, &status, &doc);
		sl_buf_free(&path);
	}
	if (rc)
		return EXIT_USAGE;
	int ret = EXIT_OK;
	if (status >= 300) {
		ret = cli_print_problem(verb, status, doc);
	} else if (json) {
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	} else if (list) {
		size_t i;
		json_t *p;
		json_array_foreach(json_object_get(doc, "pauses"), i, p)
		{
			char t[32];
			sl_time_format(json_integer_value(json_object_get(p, "at")), t);
			printf("%-10s %-30s by %s since %s\n", json_string_value(json_object_get(p, "kind")),
			       json_string_value(json_object_get(p, "name")), json_string_value(json_object_get(p, "by")),
			       t);
		}
	} else {
		bool changed = json_is_true(json_object_get(doc, "changed"));
		printf("%s %s %s%s\n", strcmp(verb, "pause") == 0 ? "paused" : "resumed", rest[0], rest[1],
		       changed ? "" : " (it already was)");
	}
	json_decref(doc);
	return ret;
}

int cmd_pause(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_pause(stdout);
		return EXIT_OK;
	}
	return pause_main("pause", argc, argv);
}

int cmd_resume(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_resume(stdout);
		return EXIT_OK;
	}
	return pause_main("resume", argc, argv);
}
