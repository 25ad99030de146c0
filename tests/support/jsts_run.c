/*
 * jsts_run: runs the official JSON Schema Test Suite (draft 2020-12) against
 * the contract module, through its public API only.
 *
 *   jsts_run [-v] [-f] DIR
 *
 * DIR is .../json-schema-test-suite/tests/draft2020-12. Every *.json file in
 * it (not optional/) holds groups {description, schema, tests[]}; each
 * group's schema is compiled in a fresh registry with format assertion off
 * (the suite's required tests treat "format" as an annotation) and each
 * test's data is validated twice, once for the verdict alone and once
 * collecting errors: the two must agree with each other and with "valid".
 *
 * Groups whose schema refers to documents the suite serves from a remote
 * (http://localhost:1234/..., the meta-schemas at json-schema.org) cannot
 * run offline; they are listed as skipped and not counted, as is
 * refRemote.json as a whole.
 *
 * -v prints every disagreeing case; -f also runs the files of optional/format with
 * format assertion on and prints that figure separately (not counted).
 * Exit status 0 when at least 95% of the counted cases agree.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/contract.h"

struct tally {
	size_t agree, total, skipped;
};

static bool verbose;

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json files of dir, sorted; NULL-terminated, owned. */
static char **list_json(const char *dir)
{
	DIR *dp = opendir(dir);
	if (!dp)
		return NULL;
	size_t n = 0, cap = 16;
	char **v = sl_xmalloc(cap * sizeof(*v));
	struct dirent *e;
	while ((e = readdir(dp))) {
		if (!sl_str_endswith(e->d_name, ".json"))
			continue;
		if (n + 1 >= cap) {
			cap *= 2;
			v = sl_xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = sl_strdup(e->d_name);
	}
	closedir(dp);
	qsort(v, n, sizeof(*v), name_cmp);
	v[n] = NULL;
	return v;
}

static void free_list(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* True when every unresolved reference points at a document the suite
 * serves remotely. */
static bool needs_remote(const struct sl_diags *d)
{
	if (d->n == 0)
		return false;
	for (size_t i = 0; i < d->n; i++)
		if (!strstr(d->v[i].msg, "http://localhost:1234/") &&
		    !strstr(d->v[i].msg, "https://json-schema.org/"))
			return false;
	return true;
}

static const char *str_of(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "?";
}

static void run_group(const char *file, json_t *group, bool formats, struct tally *t)
{
	json_t *schema = json_object_get(group, "schema");
	json_t *tests = json_object_get(group, "tests");
	const char *gdesc = str_of(group, "description");
	struct sl_contracts *r = sl_contracts_new();
	sl_contracts_set_format_assert(r, formats);
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_schema *h = sl_contracts_compile(r, schema, file, &err);
	struct sl_diags diags = {0};
	if (h && sl_contracts_check_refs(r, &diags) > 0 && needs_remote(&diags)) {
		printf("  skipped (remote ref): %s / %s\n", file, gdesc);
		t->skipped += json_array_size(tests);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(tests); i++) {
		json_t *test = json_array_get(tests, i);
		bool want = json_is_true(json_object_get(test, "valid"));
		const json_t *data = json_object_get(test, "data");
		t->total++;
		if (!h) {
			if (verbose)
				printf("  DISAGREE %s / %s / %s: schema rejected: %s\n", file, gdesc,
				       str_of(test, "description"), err.msg);
			continue;
		}
		struct sl_verrs errs = {0};
		bool fast = sl_schema_validate(h, data, NULL);
		bool full = sl_schema_validate(h, data, &errs);
		if (fast == want && full == want && (full || errs.n > 0)) {
			t->agree++;
		} else if (verbose) {
			char *why = sl_verrs_join(&errs);
			printf("  DISAGREE %s / %s / %s: expected %s, got %s%s\n", file, gdesc,
			       str_of(test, "description"), want ? "valid" : "invalid",
			       fast ? "valid" : "invalid", fast != full ? " (modes differ)" : "");
			if (*why)
				printf("      %s\n", why);
			free(why);
		}
		sl_verrs_free(&errs);
	}
out:
	sl_diags_free(&diags);
	sl_contracts_free(r);
}

static int run_file(const char *dir, const char *name, bool formats, struct tally *all)
{
	char *path = sl_path_join(dir, name);
	json_error_t je;
	json_t *doc = json_load_file(path, JSON_ALLOW_NUL, &je);
	free(path);
	if (!json_is_array(doc)) {
		fprintf(stderr, "jsts: %s/%s:%d:%d: %s\n", dir, name, je.line, je.column, je.text);
		json_decref(doc);
		return -1;
	}
	struct tally t = {0};
	for (size_t i = 0; i < json_array_size(doc); i++)
		run_group(name, json_array_get(doc, i), formats, &t);
	printf("  %-32s %zu/%zu%s\n", name, t.agree, t.total,
	       t.skipped ? " (some groups skipped)" : "");
	all->agree += t.agree;
	all->total += t.total;
	all->skipped += t.skipped;
	json_decref(doc);
	return 0;
}

static int run_dir(const char *dir, bool formats, struct tally *t)
{
	char **files = list_json(dir);
	if (!files) {
		fprintf(stderr, "jsts: cannot read %s\n", dir);
		return -1;
	}
	int rc = 0;
	for (char **f = files; *f; f++) {
		if (strcmp(*f, "refRemote.json") == 0) {
			printf("  %-32s skipped (needs the suite's remote documents)\n", *f);
			continue;
		}
		if (run_file(dir, *f, formats, t))
			rc = -1;
	}
	free_list(files);
	return rc;
}

int main(int argc, char **argv)
{
	bool formats = false, usage = false;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0)
			verbose = true;
		else if (strcmp(argv[i], "-f") == 0)
			formats = true;
		else if (!dir && argv[i][0] != '-')
			dir = argv[i];
		else
			usage = true;
	}
	if (!dir || usage) {
		fprintf(stderr, "usage: jsts_run [-v] [-f] DIR\n");
		return 2;
	}
	struct tally t = {0};
	if (run_dir(dir, false, &t))
		return 1;
	if (formats) {
		struct tally ft = {0};
		char *fdir = sl_path_join(dir, "optional/format");
		printf("optional/format (format assertion on, not counted):\n");
		run_dir(fdir, true, &ft);
		printf("jsts-format: %zu/%zu cases agree\n", ft.agree, ft.total);
		free(fdir);
	}
	double pct = t.total ? 100.0 * (double)t.agree / (double)t.total : 0.0;
	if (t.skipped)
		printf("jsts: %zu cases skipped (remote refs), not counted\n", t.skipped);
	printf("jsts: %zu/%zu cases agree (%.1f%%)\n", t.agree, t.total, pct);
	return t.total && t.agree * 100 >= t.total * 95 ? 0 : 1;
}
