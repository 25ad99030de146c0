/*
 * cmd_check.c: `sluice check DIR` lists every problem of a project.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"

void help_check(FILE *out)
{
	fprintf(out,
		"Usage: sluice check [--secrets] [--json] [DIR]\n\n"
		"Loads the project in DIR (default: .) the way `sluice run` and `sluice serve`\n"
		"do and reports every problem, not just the first, as FILE:LINE:COL: message\n"
		"followed by the source line. Exits 0 when the project is clean, 1 otherwise.\n\n"
		"Options:\n"
		"  --secrets   also resolve env:NAME and file:PATH secrets (fails when one is\n"
		"              missing); by default they are only checked to be references\n"
		"  --json      print {\"ok\": bool, \"errors\": [{file, line, col, message}],\n"
		"              \"warnings\": [...]} (warnings: policy rules that match nothing)\n"
		"  -h, --help  this text\n");
}

static json_t *diags_json(const struct sl_diags *d)
{
	json_t *out = json_array();
	for (size_t i = 0; i < d->n; i++)
		json_array_append_new(out, json_pack("{s:s, s:i, s:i, s:s}", "file", d->v[i].file, "line",
						     d->v[i].line, "col", d->v[i].col, "message", d->v[i].msg));
	return out;
}

static void print_json(const struct sl_diags *d, const struct sl_diags *warnings)
{
	json_t *doc = json_pack("{s:b, s:o, s:o}", "ok", d->n == 0, "errors", diags_json(d), "warnings",
				diags_json(warnings));
	json_dumpf(doc, stdout, JSON_INDENT(2) | SL_JSON_REAL);
	fputc('\n', stdout);
	json_decref(doc);
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"secrets", no_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	bool secrets = false, as_json = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': secrets = true; break;
		case 'j': as_json = true; break;
		default: return cli_usage_error("check", "unknown option");
		}
	}
	if (argc - optind > 1)
		return cli_usage_error("check", "takes one project folder");
	const char *dir = optind < argc ? argv[optind] : ".";

	struct sl_project *p = NULL;
	struct sl_diags diags = {0}, warnings = {0};
	struct sl_load_opts lo = {.resolve_secrets = secrets, .warnings = &warnings};
	int rc = sl_project_load(dir, &lo, &p, &diags);
	sl_diags_sort(&diags);
	sl_diags_sort(&warnings);
	if (!as_json && warnings.n) /* warnings do not fail the check */
		sl_diags_print_level(stderr, &warnings, ".", cli_isatty(stderr), "warning");
	if (as_json) {
		print_json(&diags, &warnings);
	} else if (diags.n) {
		sl_diags_print(stderr, &diags, ".", cli_isatty(stderr));
		fprintf(stderr, "%zu error%s\n", diags.n, diags.n == 1 ? "" : "s");
	} else if (p) {
		size_t ncontracts = 0;
		for (const char *const *ids = sl_contracts_ids(p->contracts); ids && ids[ncontracts]; ncontracts++)
			;
		printf("ok: %s: %zu workflow%s, %zu connector%s, %zu contract%s, %zu prompt%s\n", dir, p->nworkflows,
		       p->nworkflows == 1 ? "" : "s", p->nconnectors, p->nconnectors == 1 ? "" : "s", ncontracts,
		       ncontracts == 1 ? "" : "s", p->nprompts, p->nprompts == 1 ? "" : "s");
	}
	int exit_code = (rc == 0 && diags.n == 0) ? EXIT_OK : EXIT_FAIL;
	sl_diags_free(&diags);
	sl_diags_free(&warnings);
	sl_project_free(p);
	return exit_code;
}
