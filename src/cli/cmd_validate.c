/*
 * cmd_validate.c: `sluice validate SCHEMA.json [INSTANCE.json|-]`.
 */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "contract/contract.h"

void help_validate(FILE *out)
{
	fprintf(out,
		"Usage: sluice validate [--contracts DIR] [--json] SCHEMA.json [INSTANCE.json | -]\n\n"
		"Validates INSTANCE (a JSON document; - or nothing reads standard input when\n"
		"it is not a terminal) against SCHEMA, a JSON Schema draft 2020-12 document.\n"
		"Every error is printed with the JSON pointer of the failing value. Without\n"
		"an instance, only checks that SCHEMA is a valid schema.\n\n"
		"$ref to other contracts (\"other@2\", \"other@2#/$defs/x\") resolves against\n"
		"the *.json files beside SCHEMA, or in --contracts DIR.\n\n"
		"Exit: 0 valid, 1 invalid (or a broken schema), 2 usage or unreadable input.\n\n"
		"Options:\n"
		"  --contracts DIR  where referenced contracts live (default: SCHEMA's folder)\n"
		"  --json           print {\"valid\": bool, \"errors\": [{pointer, keyword, message}]}\n"
		"  -h, --help       this text\n");
}

static json_t *load_json(const char *path, struct sl_err *err)
{
	json_error_t je;
	json_t *j = (strcmp(path, "-") == 0) ? json_loadf(stdin, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je)
					     : json_load_file(path, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (!j)
		sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s:%d:%d: %s", strcmp(path, "-") == 0 ? "<stdin>" : path,
			   je.line, je.column, je.text);
	return j;
}

static char *dir_of(const char *path)
{
	char *copy = sl_strdup(path);
	char *d = sl_strdup(dirname(copy));
	free(copy);
	return d;
}

/* The schema's handle: the registered one when its $id was loaded from the
 * contracts folder (so cross-references resolve), else an anonymous one. */
static struct sl_schema *schema_handle(struct sl_contracts *reg, json_t *doc, const char *path, struct sl_err *err)
{
	const char *id = json_string_value(json_object_get(doc, "$id"));
	if (id) {
		struct sl_schema *s = sl_contracts_get(reg, id);
		if (s && json_equal((json_t *)sl_schema_json(s), doc))
			return s;
	}
	return sl_contracts_compile(reg, doc, path, err);
}

int cmd_validate(int argc, char **argv)
{
	static const struct option opts[] = {
		{"contracts", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	const char *contracts_dir = NULL;
	bool as_json = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': contracts_dir = optarg; break;
		case 'j': as_json = true; break;
		default: return cli_usage_error("validate", "unknown option");
		}
	}
	int nargs = argc - optind;
	if (nargs < 1 || nargs > 2)
		return cli_usage_error("validate", "want SCHEMA.json and optionally INSTANCE.json or -");
	const char *schema_path = argv[optind];
	const char *inst_path = nargs == 2 ? argv[optind + 1] : (cli_isatty(stdin) ? NULL : "-");

	struct sl_err err;
	sl_err_clear(&err);
	json_t *doc = load_json(schema_path, &err);
	if (!doc) {
		fprintf(stderr, "sluice validate: %s\n", err.msg);
		return EXIT_USAGE;
	}
	struct sl_contracts *reg = sl_contracts_new();
	char *dir = contracts_dir ? sl_strdup(contracts_dir) : dir_of(schema_path);
	struct sl_diags ignored = {0};
	sl_contracts_load_dir(reg, dir, &ignored); /* siblings' own problems are not ours */
	sl_diags_free(&ignored);
	free(dir);

	int rc = EXIT_OK;
	struct sl_schema *schema = schema_handle(reg, doc, schema_path, &err);
	if (!schema) {
		fprintf(stderr, "%s: invalid schema: %s\n", schema_path, err.msg);
		rc = EXIT_FAIL;
		goto out;
	}
	if (!inst_path) {
		printf("%s: schema ok\n", schema_path);
		goto out;
	}
	json_t *inst = load_json(inst_path, &err);
	if (!inst) {
		fprintf(stderr, "sluice validate: %s\n", err.msg);
		rc = EXIT_USAGE;
		goto out;
	}
	struct sl_verrs ve = {0};
	bool ok = sl_schema_validate(schema, inst, &ve);
	const char *name = strcmp(inst_path, "-") == 0 ? "<stdin>" : inst_path;
	if (as_json) {
		json_t *errs = json_array();
		for (size_t i = 0; i < ve.n; i++)
			json_array_append_new(errs, json_pack("{s:s, s:s, s:s}", "pointer", ve.v[i].pointer, "keyword",
							      ve.v[i].keyword, "message", ve.v[i].msg));
		json_t *out = json_pack("{s:b, s:o}", "valid", ok, "errors", errs);
		json_dumpf(out, stdout, JSON_INDENT(2) | SL_JSON_REAL);
		fputc('\n', stdout);
		json_decref(out);
	} else if (ok) {
		printf("%s: valid\n", name);
	} else {
		for (size_t i = 0; i < ve.n; i++)
			fprintf(stderr, "%s: %s: %s\n", name, ve.v[i].pointer[0] ? ve.v[i].pointer : "(root)",
				ve.v[i].msg);
		fprintf(stderr, "%s: invalid (%zu error%s)\n", name, ve.n, ve.n == 1 ? "" : "s");
	}
	rc = ok ? EXIT_OK : EXIT_FAIL;
	sl_verrs_free(&ve);
	json_decref(inst);
out:
	json_decref(doc);
	sl_contracts_free(reg);
	return rc;
}
