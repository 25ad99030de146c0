/*
 * test_config.c: YAML with positions, project loading, workflow checks
 * (src/config/). Fixture projects live in tests/unit/fixtures/config/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

#define FIX "tests/unit/fixtures/config"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *diags_text(const struct sl_diags *d)
{
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_FILE);
	for (size_t i = 0; i < d->n; i++)
		sl_buf_printf(&b, "%s:%d:%d: %s\n", d->v[i].file, d->v[i].line, d->v[i].col, d->v[i].msg);
	return sl_buf_detach(&b);
}

static bool has_diag(const struct sl_diags *d, const char *file, int line, int col, const char *msg)
{
	for (size_t i = 0; i < d->n; i++)
		if ((!file || strcmp(d->v[i].file, file) == 0) && d->v[i].line == line && d->v[i].col == col &&
		    strcmp(d->v[i].msg, msg) == 0)
			return true;
	return false;
}

static void expect_diag(const struct sl_diags *d, const char *file, int line, int col, const char *msg)
{
	if (!has_diag(d, file, line, col, msg)) {
		char *all = diags_text(d);
		fail_msg("missing diagnostic %s:%d:%d: %s\ngot:\n%s", file ? file : "*", line, col, msg, all);
	}
}

static json_t *yaml(const char *text, struct sl_locmap **locs, struct sl_diags *d)
{
	return sl_yaml_parse(text, strlen(text), "t.yaml", locs, d);
}

static json_t *parse_json(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
	if (!j)
		fail_msg("bad test JSON: %s", je.text);
	return j;
}

static struct sl_project *load_clean(void)
{
	struct sl_project *p = NULL;
	struct sl_diags d = {0};
	struct sl_load_opts o = {.resolve_secrets = false};
	int rc = sl_project_load(FIX "/clean", &o, &p, &d);
	if (rc) {
		char *all = diags_text(&d);
		fail_msg("clean project: %s", all);
	}
	sl_diags_free(&d);
	return p;
}

/* Compiles src as wf.yaml against the clean project; returns the diags. */
static struct sl_diags compile_src(const struct sl_project *p, const char *src, struct sl_workflow **out)
{
	struct sl_diags d = {0};
	struct sl_workflow *w = sl_workflow_compile(p, "wf.yaml", src, &d);
	if (out)
		*out = w;
	else
		sl_workflow_unref(w);
	return d;
}

static void expect_compile_error(const struct sl_project *p, const char *src, int line, int col, const char *msg)
{
	struct sl_workflow *w = NULL;
	struct sl_diags d = compile_src(p, src, &w);
	assert_null(w);
	expect_diag(&d, "wf.yaml", line, col, msg);
	sl_diags_free(&d);
}

/* A scratch project folder under /tmp; files given as name, text pairs. */
static char *temp_project(const char *const *files)
{
	char tmpl[] = "/tmp/sluice-test-XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);
	for (size_t i = 0; files[i]; i += 2) {
		char *path = sl_path_join(dir, files[i]);
		char *slash = strrchr(path, '/');
		*slash = '\0';
		sl_mkdirs(path, 0755);
		*slash = '/';
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(files[i + 1], f);
		fclose(f);
		free(path);
	}
	return sl_strdup(dir);
}

static void remove_tree(const char *dir)
{
	char *cmd = sl_asprintf("rm -rf '%s'", dir);
	int rc = system(cmd);
	(void)rc;
	free(cmd);
}

/* ---- YAML ----------------------------------------------------------------------------------- */

static void test_yaml_core_schema(void **state)
{
	(void)state;
	const char *text = "n1: null\nn2: ~\nn3:\nn4: NULL\n"
			   "b1: true\nb2: False\nb3: TRUE\n"
			   "i1: 42\ni2: -17\ni3: 0x1F\ni4: 0o17\ni5: 007\ni6: +3\n"
			   "f1: 3.5\nf2: 1e3\nf3: -.5\nf4: 2.\n"
			   "inf: .inf\nninf: -.Inf\nnan: .NaN\n"
			   "s1: \"true\"\ns2: '42'\ns3: yes\ns4: 0x1G\ns5: !!str 12\ns6: 1.2.3\ns7: on\ns8: \"\"\n"
			   "t1: !!int \"12\"\nt2: !!float 3\nt3: ! 12\n"
			   "big: 123456789012345678901234\n"
			   "list: [1, \"2\", three, null]\n"
			   "block: |\n  line one\n  line two\n";
	struct sl_diags d = {0};
	json_t *got = yaml(text, NULL, &d);
	assert_int_equal(d.n, 0);
	json_t *want = parse_json("{\"n1\": null, \"n2\": null, \"n3\": null, \"n4\": null,"
				  " \"b1\": true, \"b2\": false, \"b3\": true,"
				  " \"i1\": 42, \"i2\": -17, \"i3\": 31, \"i4\": 15, \"i5\": 7, \"i6\": 3,"
				  " \"f1\": 3.5, \"f2\": 1000.0, \"f3\": -0.5, \"f4\": 2.0,"
				  " \"nan\": null,"
				  " \"s1\": \"true\", \"s2\": \"42\", \"s3\": \"yes\", \"s4\": \"0x1G\", \"s5\": \"12\","
				  " \"s6\": \"1.2.3\", \"s7\": \"on\", \"s8\": \"\","
				  " \"t1\": 12, \"t2\": 3.0, \"t3\": \"12\","
				  " \"list\": [1, \"2\", \"three\", null],"
				  " \"block\": \"line one\\nline two\\n\"}");
	const char *key;
	json_t *v;
	json_object_foreach(want, key, v) {
		json_t *g = json_object_get(got, key);
		if (!json_equal(g, v))
			fail_msg("%s: got %s", key, g ? json_dumps(g, JSON_ENCODE_ANY) : "(missing)");
	}
	/* JSON has no infinities: like jq, the largest double */
	assert_true(json_is_real(json_object_get(got, "inf")));
	assert_true(json_real_value(json_object_get(got, "inf")) == DBL_MAX);
	assert_true(json_real_value(json_object_get(got, "ninf")) == -DBL_MAX);
	/* an integer past int64 becomes the nearest double */
	assert_true(json_is_real(json_object_get(got, "big")));
	assert_true(json_is_real(json_object_get(got, "f2")));
	json_decref(want);
	json_decref(got);

	/* an empty document is null */
	got = yaml("# nothing\n", NULL, &d);
	assert_true(json_is_null(got));
	assert_int_equal(d.n, 0);
	json_decref(got);
}

static void test_yaml_aliases_and_merges(void **state)
{
	(void)state;
	struct sl_diags d = {0};
	const char *text = "base: &b {retry: {max_attempts: 2}, timeout: 5s}\n"
			   "names: &n [a, b]\n"
			   "copy: *b\n"
			   "list: *n\n"
			   "merged:\n  <<: *b\n  timeout: 9s\n"
			   "many:\n  <<: [*b, {extra: 1}]\n";
	json_t *got = yaml(text, NULL, &d);
	assert_int_equal(d.n, 0);
	json_t *want = parse_json(
		"{\"base\": {\"retry\": {\"max_attempts\": 2}, \"timeout\": \"5s\"}, \"names\": [\"a\", \"b\"],"
		" \"copy\": {\"retry\": {\"max_attempts\": 2}, \"timeout\": \"5s\"}, \"list\": [\"a\", \"b\"],"
		" \"merged\": {\"timeout\": \"9s\", \"retry\": {\"max_attempts\": 2}},"
		" \"many\": {\"retry\": {\"max_attempts\": 2}, \"timeout\": \"5s\", \"extra\": 1}}");
	if (!json_equal(got, want))
		fail_msg("got %s", json_dumps(got, 0));
	/* copies, not shared: changing one leaves the other */
	json_object_set_new(json_object_get(json_object_get(got, "copy"), "retry"), "max_attempts", json_integer(9));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(got, "base"), "retry"),
							    "max_attempts")),
			 2);
	json_decref(want);
	json_decref(got);

	/* a billion laughs stops */
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_LINE);
	sl_buf_adds(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 9; i++)
		sl_buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i,
			      i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	got = yaml(sl_buf_str(&b), NULL, &d);
	sl_buf_free(&b);
	assert_true(d.n >= 1);
	assert_non_null(strstr(d.v[0].msg, "too many values after expanding aliases"));
	json_decref(got);
	sl_diags_free(&d);
}

static void test_yaml_errors(void **state)
{
	(void)state;
	struct sl_diags d = {0};
	/* duplicate key: at the second key, naming the first */
	json_t *got = yaml("a: 1\nb:\n  c: 1\n  c: 2\n", NULL, &d);
	assert_non_null(got);
	expect_diag(&d, "t.yaml", 4, 3, "duplicate key 'c' (first at line 3)");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(got, "b"), "c")), 1);
	json_decref(got);
	sl_diags_free(&d);

	/* a syntax error: NULL, with libfyaml's message and position */
	struct sl_locmap *locs = (struct sl_locmap *)1;
	got = yaml("a: [1, 2\nb: 3\n", &locs, &d);
	assert_null(got);
	assert_null(locs);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].file, "t.yaml");
	assert_true(d.v[0].line >= 1);
	assert_true(sl_str_startswith(d.v[0].msg, "YAML: "));
	sl_diags_free(&d);

	got = yaml("a: b: c\n", NULL, &d);
	assert_null(got);
	expect_diag(&d, "t.yaml", 1, 5, "YAML: invalid nested block mapping on the same line");
	sl_diags_free(&d);

	got = yaml("a: 1\n---\nb: 2\n", NULL, &d);
	expect_diag(&d, "t.yaml", 2, 1, "a file holds one YAML document; this is a second one");
	json_decref(got);
	sl_diags_free(&d);

	got = yaml("a: *nope\n", NULL, &d);
	expect_diag(&d, "t.yaml", 1, 5, "unknown alias '*nope'"); /* at the name */
	json_decref(got);
	sl_diags_free(&d);

	got = yaml("a: !custom x\n", NULL, &d);
	expect_diag(&d, "t.yaml", 1, 12,
		    "unsupported YAML tag '!custom' (Sluice reads plain YAML: strings, numbers, booleans, null)");
	json_decref(got);
	sl_diags_free(&d);

	got = yaml("a: !!int twelve\n", NULL, &d);
	expect_diag(&d, "t.yaml", 1, 10, "'twelve' is not a valid !!int");
	json_decref(got);
	sl_diags_free(&d);

	got = yaml("a: ok\nb: \"caf\xc3\xa9\"\nc: \xff\n", NULL, &d);
	assert_null(got);
	expect_diag(&d, "t.yaml", 3, 4, "the file is not valid UTF-8");
	sl_diags_free(&d);

	got = yaml("? [a, b]\n: 1\n", NULL, &d);
	assert_non_null(got);
	expect_diag(&d, "t.yaml", 1, 3, "a mapping key must be a plain value, not a list");
	json_decref(got);
	sl_diags_free(&d);

	got = yaml("x:\n  <<: 5\n", NULL, &d);
	expect_diag(&d, "t.yaml", 2, 7, "'<<' merges a mapping or a list of mappings");
	json_decref(got);
	sl_diags_free(&d);
}

static void test_locmap(void **state)
{
	(void)state;
	struct sl_diags d = {0};
	struct sl_locmap *m = NULL;
	const char *text = "workflow: x\n"              /* 1 */
			   "steps:\n"                   /* 2 */
			   "  - id: a\n"                /* 3 */
			   "    map: '.input'\n"        /* 4 */
			   "  - id: b\n"                /* 5 */
			   "    retry: {max_attempts: 2}\n" /* 6 */
			   "\"a/b~c\": {k: v}\n";       /* 7 */
	json_t *got = yaml(text, &m, &d);
	assert_non_null(got);
	assert_non_null(m);
	int line, col;
	sl_locmap_find(m, "", &line, &col);
	assert_int_equal(line, 1);
	assert_int_equal(col, 1);
	sl_locmap_find(m, "/workflow", &line, &col);
	assert_int_equal(line, 1);
	assert_int_equal(col, 11);
	sl_locmap_find_key(m, "/workflow", &line, &col);
	assert_int_equal(line, 1);
	assert_int_equal(col, 1);
	sl_locmap_find(m, "/steps", &line, &col);
	assert_int_equal(line, 3);
	assert_int_equal(col, 3);
	sl_locmap_find(m, "/steps/0", &line, &col);
	assert_int_equal(line, 3);
	assert_int_equal(col, 5);
	sl_locmap_find(m, "/steps/0/map", &line, &col); /* inside the quotes */
	assert_int_equal(line, 4);
	assert_int_equal(col, 11);
	sl_locmap_find_key(m, "/steps/0/map", &line, &col);
	assert_int_equal(line, 4);
	assert_int_equal(col, 5);
	sl_locmap_find(m, "/steps/1/retry/max_attempts", &line, &col);
	assert_int_equal(line, 6);
	assert_int_equal(col, 27);
	/* escaped keys */
	sl_locmap_find(m, "/a~1b~0c/k", &line, &col);
	assert_int_equal(line, 7);
	assert_int_equal(col, 14);
	/* falls back to the closest parent */
	sl_locmap_find(m, "/steps/1/retry/nope/deeper", &line, &col);
	assert_int_equal(line, 6);
	assert_int_equal(col, 12);
	sl_locmap_find_key(m, "/steps/9", &line, &col);
	assert_int_equal(line, 3);
	assert_int_equal(col, 3);
	sl_locmap_free(m);
	json_decref(got);
}

/* ---- projects ---------------------------------------------------------------------------------- */

static void test_clean_project(void **state)
{
	(void)state;
	struct sl_project *p = load_clean();
	assert_string_equal(p->settings.name, "demo");
	assert_string_equal(p->settings.store, "sqlite:.sluice/sluice.db");
	assert_int_equal(p->settings.workers, 4);
	assert_string_equal(p->settings.listen, "127.0.0.1:8080");
	assert_string_equal(p->settings.log_level, "debug");
	assert_int_equal(p->settings.lease_ms, 60000);
	assert_int_equal(p->settings.batch, 16);
	assert_int_equal(p->nconnectors, 2);
	assert_non_null(sl_project_connector(p, "helpdesk"));
	assert_null(sl_project_connector(p, "nope"));
	assert_int_equal(p->nprompts, 1);
	assert_string_equal(p->prompts[0].name, "triage");
	assert_int_equal(strlen(p->prompts[0].digest), 64);
	assert_int_equal(p->nworkflows, 2);

	struct sl_workflow *w = sl_project_workflow(p, "support-triage");
	assert_non_null(w);
	assert_int_equal(w->version, 3);
	assert_string_equal(w->owner, "support-ops");
	assert_string_equal(w->file, FIX "/clean/workflows/triage.yaml");
	assert_int_equal(strlen(w->digest), 64);
	assert_int_equal(w->trigger.kind, SL_TRIGGER_WEBHOOK);
	assert_string_equal(w->trigger.path, "/hooks/email");
	assert_string_equal(w->trigger.hmac_secret_ref, "env:HOOK_SECRET");
	assert_string_equal(sl_schema_id(w->trigger.contract), "inbound_email@1");
	assert_int_equal(w->trigger.loc.line, 6);
	assert_non_null(w->output);
	assert_int_equal(w->nsteps, 7);

	const struct sl_step *st = sl_workflow_step(w, "ticket");
	assert_int_equal(st->kind, SL_STEP_MAP);
	assert_string_equal(sl_step_kind_name(st->kind), "map");
	assert_non_null(st->map);
	assert_null(st->when);
	assert_int_equal(st->retry.max_attempts, 1);
	assert_string_equal(sl_schema_id(st->output_contract), "ticket@1");
	assert_int_equal(st->loc.line, 9);
	assert_int_equal(st->loc.col, 5);

	st = sl_workflow_step(w, "update");
	assert_int_equal(st->index, 2);
	assert_int_equal(st->kind, SL_STEP_CALL);
	assert_string_equal(sl_step_kind_name(st->kind), "call");
	assert_string_equal(st->call, "helpdesk.tickets.update");
	assert_ptr_equal(st->connector, sl_project_connector(p, "helpdesk"));
	assert_string_equal(st->action->name, "tickets.update");
	assert_non_null(st->when);
	assert_non_null(st->with);
	assert_non_null(st->idempotency_key);
	assert_string_equal(st->compensate, "helpdesk.tickets.restore");
	assert_string_equal(st->comp_action->name, "tickets.restore");
	assert_null(st->comp_with);
	assert_int_equal(st->retry.max_attempts, 6);
	assert_int_equal(st->retry.base_ms, 200);
	assert_int_equal(st->retry.max_ms, 30000);
	assert_int_equal(st->timeout_ms, 10000);
	assert_int_equal(st->on_error, SL_ON_ERROR_DEAD);

	st = sl_workflow_step(w, "archive");
	assert_int_equal(st->retry.max_attempts, 3); /* the default for call */
	assert_int_equal(st->on_error, SL_ON_ERROR_CONTINUE);
	assert_string_equal(st->action->name, "append");
	assert_non_null(st->comp_with);
	assert_int_equal(st->timeout_ms, 0);

	st = sl_workflow_step(w, "cool_down");
	assert_int_equal(st->kind, SL_STEP_WAIT);
	assert_int_equal(st->wait_ms, 30000);
	assert_null(st->wait_until);
	st = sl_workflow_step(w, "later");
	assert_non_null(st->wait_until);

	st = sl_workflow_step(w, "announce");
	assert_int_equal(st->kind, SL_STEP_EMIT);
	assert_string_equal(st->topic, "ticket.filed");
	assert_non_null(st->payload);
	assert_null(sl_workflow_step(w, "nope"));

	struct sl_workflow *n = sl_project_workflow(p, "notify");
	assert_int_equal(n->trigger.kind, SL_TRIGGER_EVENT);
	assert_string_equal(n->trigger.event, "ticket.filed");
	assert_null(n->trigger.contract);
	assert_int_equal(n->steps[1].retry.max_attempts, 2);
	assert_int_equal(n->steps[1].retry.base_ms, 200);

	/* the compiled expressions run: the map of the first step */
	json_t *ctx = parse_json("{\"input\": {\"subject\": \"Refund\", \"text\": \"t\", \"from\": \"a@b\"}}"), *out = NULL;
	struct sl_err err;
	assert_int_equal(sl_expr_eval(w->steps[0].map, ctx, &out, &err), 0);
	assert_string_equal(json_string_value(json_object_get(out, "subject")), "Refund");
	json_decref(out);
	json_decref(ctx);
	sl_project_free(p);
}

static const char *const broken_want[] = {
	FIX "/broken/connectors/crm.yaml:2:7: unknown connector type \"htp\" (did you mean \"http\"?)",
	FIX "/broken/connectors/mail.yaml:4:30: \"token\" holds a plain value: use env:NAME or file:PATH for secrets",
	FIX "/broken/connectors/mail.yaml:8:5: unknown key \"methd\" (did you mean \"method\"?)",
	FIX "/broken/connectors/mail.yaml:9:26: \"10.0.0.1/8\" has bits set past its /8 prefix (did you mean "
	    "\"10.0.0.0/8\"?)",
	FIX "/broken/connectors/mail.yaml:9:38: an allow_hosts entry must be a string (a host name, *.domain, an IP "
	    "address or a CIDR such as 10.0.0.0/8); quote it",
	FIX "/broken/connectors/mail.yaml:9:42: \"127.1\" is the IPv4 address 127.0.0.1: write it as 127.0.0.1",
	FIX "/broken/sluice.yaml:1:10: 'workers' must be an integer, not a string",
	FIX "/broken/sluice.yaml:2:1: unknown key 'wrokers' in sluice.yaml (did you mean 'workers'?)",
	FIX "/broken/workflows/a_misc.yaml:2:10: 'version' must be an integer, not a string",
	FIX "/broken/workflows/a_misc.yaml:4:40: unknown contract 'tiket@1' (did you mean 'ticket@1'?)",
	FIX "/broken/workflows/a_misc.yaml:7:11: step first: map: jq: syntax error, unexpected $end, expecting '}'",
	FIX "/broken/workflows/a_misc.yaml:9:5: unknown key 'wehn' in step (did you mean 'when'?)",
	FIX "/broken/workflows/a_misc.yaml:11:12: 'retry' must be a mapping, not an integer",
	FIX "/broken/workflows/a_misc.yaml:12:9: duplicate step id 'second' (first at line 8)",
	FIX "/broken/workflows/a_misc.yaml:13:11: unknown connector 'helpdsk' in 'helpdsk.tickets.update' (did you "
	    "mean 'helpdesk'?)",
	FIX "/broken/workflows/a_misc.yaml:15:11: connector 'helpdesk' has no action 'tickets.updat' (did you mean "
	    "'tickets.update'?)",
	FIX "/broken/workflows/a_misc.yaml:19:11: step 'sixth' refers to '.frist', which is not a step (did you mean "
	    "'first'?)",
	FIX "/broken/workflows/a_misc.yaml:19:11: step 'sixth' refers to step 'seventh', which runs after it",
	FIX "/broken/workflows/a_misc.yaml:21:9: ai is missing the required key 'route'",
	FIX "/broken/workflows/a_misc.yaml:21:9: ai is missing the required key 'input'",
	FIX "/broken/workflows/a_misc.yaml:21:9: classify wants labels: at least two allowed answers",
	FIX "/broken/workflows/b_ping.yaml:6:11: emit cycle: ping -> pong -> ping; add a `when` to stop it",
	FIX "/broken/workflows/e_dup.yaml:1:11: workflow 'ping' version 1 is also defined in " FIX
	    "/broken/workflows/b_ping.yaml:1",
	FIX "/broken/workflows/f_hook.yaml:4:20: webhook path '/hooks/x' is also used by workflow 'ping' (" FIX
	    "/broken/workflows/e_dup.yaml)",
	FIX "/broken/workflows/g_syntax.yaml:3:1: YAML: flow sequence without a closing bracket",
	FIX "/broken/workflows/h_ext.yml:0:0: not read: name the file with .yaml",
	NULL,
};

/* Every problem of a project with many, at once, each at its place. */
static void test_broken_project(void **state)
{
	(void)state;
	struct sl_project *p = (struct sl_project *)1;
	struct sl_diags d = {0};
	assert_int_equal(sl_project_load(FIX "/broken", NULL, &p, &d), SL_EINVAL);
	assert_null(p);
	sl_diags_sort(&d);
	char *got = diags_text(&d);
	struct sl_buf want;
	sl_buf_init(&want, SL_BUF_MAX_FILE);
	for (size_t i = 0; broken_want[i]; i++)
		sl_buf_printf(&want, "%s\n", broken_want[i]);
	if (strcmp(got, sl_buf_str(&want)) != 0)
		fail_msg("got:\n%s\nwant:\n%s", got, sl_buf_str(&want));
	assert_true(d.n >= 3);
	assert_null(strstr(got, "hunter2")); /* the secret typed in by mistake */
	free(got);
	sl_buf_free(&want);
	sl_diags_free(&d);
}

static void test_not_a_folder(void **state)
{
	(void)state;
	struct sl_project *p = NULL;
	struct sl_diags d = {0};
	assert_int_equal(sl_project_load(FIX "/no-such-dir", NULL, &p, &d), SL_EINVAL);
	assert_int_equal(d.n, 1);
	assert_true(sl_str_startswith(d.v[0].msg, "not a project folder"));
	sl_diags_free(&d);
}

/* ---- workflow checks, one at a time, at their exact position ------------------------------------ */

#define HEAD "workflow: t\nversion: 1\nsteps:\n"

static void test_misspelled_key(void **state)
{
	struct sl_project *p = *state;
	expect_compile_error(p, HEAD "  - id: a\n    wehn: '.input.x'\n    map: '.input'\n", 5, 5,
			     "unknown key 'wehn' in step (did you mean 'when'?)");
	expect_compile_error(p, "workflow: t\nversoin: 1\nsteps:\n  - id: a\n    map: .input\n", 2, 1,
			     "unknown key 'versoin' in workflow (did you mean 'version'?)");
	expect_compile_error(p, "workflow: t\nversoin: 1\nsteps:\n  - id: a\n    map: .input\n", 1, 1,
			     "workflow is missing the required key 'version'");
	expect_compile_error(p, HEAD "  - id: a\n    call: helpdesk.tickets.get\n    retry: {max_attempt: 2}\n", 6, 13,
			     "unknown key 'max_attempt' in retry (did you mean 'max_attempts'?)");
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\n    colour: red\n", 6, 5, "unknown key 'colour' in step");
}

static void test_wrong_types(void **state)
{
	struct sl_project *p = *state;
	expect_compile_error(p, "workflow: t\nversion: three\nsteps:\n  - id: a\n    map: .input\n", 2, 10,
			     "'version' must be an integer, not a string");
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\n    retry: 5\n", 6, 12,
			     "'retry' must be a mapping, not an integer");
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\n    timeout: soon\n", 6, 14,
			     "'timeout' must be a duration like \"30s\", \"500ms\", \"4h\" (or milliseconds), not a string");
	expect_compile_error(p, HEAD "  - id: a\n    map: [1]\n", 5, 10,
			     "'map' must be a jq expression (a string), not a list");
	expect_compile_error(p, "workflow: t\nversion: 0\nsteps:\n  - id: a\n    map: .input\n", 2, 10,
			     "version must be an integer >= 1");
	expect_compile_error(p, "workflow: t\nversion: 1\nsteps: []\n", 3, 8,
			     "steps is empty: a workflow needs at least one step");
	expect_compile_error(p, "workflow: Support Triage\nversion: 1\nsteps:\n  - id: a\n    map: .input\n", 1, 11,
			     "workflow name 'Support Triage' must be lowercase letters, digits, '-' and '_', starting "
			     "with a letter or digit");
	expect_compile_error(p, HEAD "  - id: a\n    call: helpdesk.tickets.get\n    retry: {max_attempts: 0}\n", 6,
			     27, "max_attempts must be between 1 and 1000 (the total number of attempts)");
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\n    on_error: retyr\n", 6, 15,
			     "unknown on_error 'retyr' (did you mean 'retry'?); use retry, dead, continue or compensate");
	expect_compile_error(p, "- just\n- a list\n", 1, 1,
			     "a workflow file must be a mapping with workflow:, version: and steps:");
}

static void test_broken_jq(void **state)
{
	struct sl_project *p = *state;
	expect_compile_error(p, HEAD "  - id: a\n    map: '.input |||'\n", 5, 11,
			     "step a: map: jq: syntax error, unexpected '|'");
	expect_compile_error(p, HEAD "  - id: a\n    when: nosuch(1)\n    map: .input\n", 5, 11,
			     "step a: when: jq: nosuch/1 is not defined");
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\noutput: '{'\n", 6, 10,
			     "output: jq: syntax error, unexpected $end");
}

static void test_step_ids(void **state)
{
	struct sl_project *p = *state;
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\n  - id: b\n    map: .a\n  - id: a\n    map: .b\n", 8, 9,
			     "duplicate step id 'a' (first at line 4)");
	expect_compile_error(p, HEAD "  - id: input\n    map: .input\n", 4, 9,
			     "step id 'input' is reserved: the run's input is .input");
	expect_compile_error(p, HEAD "  - id: 2nd\n    map: .input\n", 4, 9,
			     "step id '2nd' must be a name: letters, digits and '_', not starting with a digit");
	expect_compile_error(p, HEAD "  - map: .input\n", 4, 5, "step is missing the required key 'id'");
}

/* autonomy, demote_on, allow_actions, max_turns and tool steps: each
 * mistake at its spot. */
static void test_governance_keys(void **state)
{
	struct sl_project *p = *state;
	expect_compile_error(p, HEAD "  - id: a\n    ai: {task: classify, route: r, input: .input, labels: [x, y], autonomy: boss}\n",
			     5, 77, "unknown autonomy 'boss' (assistant, recommender, drafting, supervised, autonomous)");
	expect_compile_error(p, HEAD "  - id: a\n    ai: {task: classify, route: r, input: .input, labels: [x, y], autonomy: drafting, role: drafting}\n",
			     5, 67, "give autonomy or role (its former name), not both");
	expect_compile_error(p, HEAD "  - id: a\n    ai: {task: classify, route: r, input: .input, labels: [x, y], demote_on: [drift, mood]}\n",
			     5, 86, "demote_on: 'mood' is not a signal (drift, slo_burn, budget)");
	expect_compile_error(p, HEAD "  - id: a\n    ai: {task: classify, route: r, input: .input, labels: [x, y], allow_actions: [helpdesk.tickets.nope]}\n",
			     5, 83, "allow_actions: no connector action 'helpdesk.tickets.nope'");
	expect_compile_error(p, HEAD "  - id: a\n    ai: {task: classify, route: r, input: .input, labels: [x, y], max_turns: 3}\n",
			     5, 67, "max_turns is for task tool, not classify");
	expect_compile_error(p, HEAD "  - id: a\n    ai: {task: tool, route: r, input: .input, max_turns: 50}\n", 5, 58,
			     "max_turns wants a number from 1 to 20");
	expect_compile_error(p, HEAD "  - id: a\n    ai: {task: tool, route: r, input: .input}\n", 5, 9,
			     "a tool step wants allow_actions: the connector actions it may call (here or on the workflow)");
	expect_compile_error(p, "workflow: t\nversion: 1\nallow_actions: [nope.x]\nsteps:\n  - id: a\n    map: .input\n", 3,
			     17, "allow_actions: no connector action 'nope.x'");
}

static void test_kinds(void **state)
{
	struct sl_project *p = *state;
	expect_compile_error(p, HEAD "  - id: a\n    when: .input\n", 4, 5,
			     "step 'a' needs a kind: one of map, call, wait, emit, ai, approval");
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\n    call: helpdesk.tickets.get\n", 6, 5,
			     "step 'a' has two kinds, 'map' and 'call': give exactly one");
	expect_compile_error(p, HEAD "  - id: a\n    ai: {task: classify}\n", 5, 9, "ai is missing the required key 'route'");
	expect_compile_error(p, HEAD "  - id: a\n    ai: {task: guess, route: r, input: .input}\n", 5, 16,
			     "unknown ai task 'guess' (classify, extract, summarize, draft, route, tool)");
	expect_compile_error(p, HEAD "  - id: a\n    approval: {timeout: 1s, on_timeout: later}\n", 5, 41,
			     "unknown on_timeout 'later'; use escalate, reject or approve");
	expect_compile_error(p, HEAD "  - id: a\n    approval: {timeout: 1s, on_timeout: escalat}\n", 5, 41,
			     "unknown on_timeout 'escalat' (did you mean 'escalate'?); use escalate, reject or approve");
	expect_compile_error(p, HEAD "  - id: a\n    approval: {timeout: 1s, on_timeout: escalate}\n", 5, 41,
			     "on_timeout: escalate needs escalate_to: (the group that decides next)");
	expect_compile_error(p, HEAD "  - id: a\n    approval: {on_timeout: approve}\n", 5, 28,
			     "on_timeout needs a timeout: (how long to wait for a decision)");
	expect_compile_error(p, HEAD "  - id: a\n    approval: {reviewers: []}\n", 5, 27,
			     "reviewers must name at least one principal or role");
	expect_compile_error(p, HEAD "  - id: a\n    approval: {reviewers: [\"role:\"]}\n", 5, 29,
			     "a reviewer is a principal (alice) or a role (role:operator), not an empty name");
	expect_compile_error(p, HEAD "  - id: a\n    approval: {evidence: '.input |'}\n", 5, 27,
			     "step a: approval evidence: jq: syntax error, unexpected $end");
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\n    with: .input\n", 6, 5,
			     "'with' is only for call steps (this is a map step)");
	expect_compile_error(p, HEAD "  - id: a\n    wait: soon\n", 5, 11,
			     "wait must be a duration like \"30s\" or \"4h\", {for: duration} or {until: jq}");
	expect_compile_error(p, HEAD "  - id: a\n    wait: {for: 1s, until: .input.t}\n", 5, 11,
			     "wait takes one of 'for' (a duration) or 'until' (jq giving a time)");
	expect_compile_error(p, HEAD "  - id: a\n    emit: 'bad topic'\n", 5, 12,
			     "emit topic 'bad topic' may hold only letters, digits and . _ - : /");
	expect_compile_error(p, HEAD "  - id: a\n    emit: {payload: .input}\n", 5, 11,
			     "emit needs topic or stream");
}

/* An approval step compiles with its reviewers, timeout and escalation;
 * the workflow's reviewers are the default for its gates. */
static void test_approval_step(void **state)
{
	struct sl_project *p = *state;
	struct sl_workflow *w = NULL;
	struct sl_diags d = compile_src(p,
					"workflow: t\nversion: 1\nreviewers: [alice, role:operator]\nsteps:\n"
					"  - id: a\n    approval: {reviewers: [role:billing], evidence: '{x: .input}', "
					"timeout: 2h, on_timeout: escalate, escalate_to: [role:admin]}\n"
					"  - id: b\n    approval: {}\n",
					&w);
	if (!w)
		fail_msg("does not compile:\n%s", diags_text(&d));
	sl_diags_free(&d);
	const struct sl_step *a = sl_workflow_step(w, "a"), *b = sl_workflow_step(w, "b");
	assert_int_equal(a->kind, SL_STEP_APPROVAL);
	assert_string_equal(sl_step_kind_name(a->kind), "approval");
	assert_string_equal(json_string_value(json_array_get(a->approval.reviewers, 0)), "role:billing");
	assert_string_equal(json_string_value(json_array_get(a->approval.escalate_to, 0)), "role:admin");
	assert_non_null(a->approval.evidence);
	assert_int_equal(a->approval.timeout_ms, 2 * 3600 * 1000);
	assert_string_equal(a->approval.on_timeout, "escalate");
	assert_null(b->approval.reviewers);
	assert_int_equal(b->approval.timeout_ms, 0);
	assert_null(b->approval.on_timeout);
	assert_int_equal(json_array_size(w->reviewers), 2);
	sl_workflow_unref(w);
}

static void test_unknown_targets(void **state)
{
	struct sl_project *p = *state;
	expect_compile_error(p, HEAD "  - id: a\n    call: helpdsk.tickets.update\n", 5, 11,
			     "unknown connector 'helpdsk' in 'helpdsk.tickets.update' (did you mean 'helpdesk'?)");
	expect_compile_error(p, HEAD "  - id: a\n    call: zzz.tickets.update\n", 5, 11,
			     "unknown connector 'zzz' in 'zzz.tickets.update' (connectors/*.yaml declare them)");
	expect_compile_error(p, HEAD "  - id: a\n    call: helpdesk.tickets.updte\n", 5, 11,
			     "connector 'helpdesk' has no action 'tickets.updte' (did you mean 'tickets.update'?)");
	expect_compile_error(p, HEAD "  - id: a\n    call: helpdesk\n", 5, 11,
			     "'helpdesk' is not CONNECTOR.ACTION (e.g. helpdesk.tickets.update)");
	expect_compile_error(p,
			     HEAD "  - id: a\n    call: helpdesk.tickets.get\n    compensate: {call: helpdesk.tickets.restor}\n",
			     6, 24, "connector 'helpdesk' has no action 'tickets.restor' (did you mean 'tickets.restore'?)");
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\n    contract: tikcet@1\n", 6, 15,
			     "unknown contract 'tikcet@1' (did you mean 'ticket@1'?)");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {event: {type: x, contract: email}}\nsteps:\n"
				"  - id: a\n    map: .input\n",
			     3, 38, "unknown contract 'email' (a contract id is NAME@VERSION, e.g. ticket@1)");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {event: x, webhook: {path: /x}}\nsteps:\n"
				"  - id: a\n    map: .input\n",
			     3, 21, "a trigger has one kind: 'event' and 'webhook' are both given");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {event: x, contract: tiket@1}\nsteps:\n"
				"  - id: a\n    map: .input\n",
			     3, 31, "unknown contract 'tiket@1' (did you mean 'ticket@1'?)");
	expect_compile_error(p, "workflow: t\nversion: 1\n"
				"trigger: {webhook: {path: /x, contract: ticket@1}, contract: inbound_email@1}\nsteps:\n"
				"  - id: a\n    map: .input\n",
			     3, 62, "trigger contract 'inbound_email@1' differs from the webhook's contract 'ticket@1': give one");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {contract: ticket@1}\nsteps:\n"
				"  - id: a\n    map: .input\n",
			     3, 10, "trigger needs webhook, event, schedule, poll or stream");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {poll: helpdesk.tickets.update}\nsteps:\n"
				"  - id: a\n    map: .input\n",
			     3, 17, "poll 'helpdesk.tickets.update' must be an action with effect read, not write");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {poll: helpdesk.tickets.get, sync: {pagination: link}}\n"
				"steps:\n  - id: a\n    map: .input\n",
			     3, 58, "pagination must be page or cursor, not 'link'");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {poll: helpdesk.tickets.get, sync: {items: '.data['}}\n"
				"steps:\n  - id: a\n    map: .input\n",
			     3, 54, "sync items: jq: syntax error, unexpected $end");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {webhook: {path: /x}, every: 1m}\n"
				"steps:\n  - id: a\n    map: .input\n",
			     3, 32, "'every' belongs to a poll trigger");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {schedule: '60 * * * *'}\nsteps:\n"
				"  - id: a\n    map: .input\n",
			     3, 22, "schedule: minute: '60' is outside 0-59");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {schedule: '0 0 30 2 *'}\nsteps:\n"
				"  - id: a\n    map: .input\n",
			     3, 22, "schedule '0 0 30 2 *' never fires (no such day)");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {schedule: '@daily', timezone: Europe/Pariss}\n"
				"steps:\n  - id: a\n    map: .input\n",
			     3, 41, "timezone: unknown time zone 'Europe/Pariss' (the TZ database, package tzdata, names them)");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {schedule: '@daily', catch_up: some}\n"
				"steps:\n  - id: a\n    map: .input\n",
			     3, 41, "catch_up must be none, one or all, not 'some'");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {event: x, catch_up: all}\n"
				"steps:\n  - id: a\n    map: .input\n",
			     3, 21, "'catch_up' belongs to a schedule trigger");
	expect_compile_error(p, "workflow: t\nversion: 1\ntrigger: {webhook: {path: /x, contract: ticket@1}}\n"
				"input_contract: inbound_email@1\nsteps:\n  - id: a\n    map: .input\n",
			     4, 17,
			     "input_contract 'inbound_email@1' differs from the trigger's contract 'ticket@1': give one");
}

/* The contract may sit on the trigger itself or inside its kind. */
static void test_trigger_contract(void **state)
{
	struct sl_project *p = *state;
	struct sl_workflow *w = NULL;
	struct sl_diags d = compile_src(p, "workflow: t\nversion: 1\ntrigger: {event: typed.in, contract: ticket@1}\n"
					   "steps:\n  - id: a\n    map: .input\n",
					&w);
	assert_non_null(w);
	assert_int_equal(w->trigger.kind, SL_TRIGGER_EVENT);
	assert_string_equal(w->trigger.event, "typed.in");
	assert_string_equal(sl_schema_id(w->trigger.contract), "ticket@1");
	sl_workflow_unref(w);
	sl_diags_free(&d);
	d = compile_src(p, "workflow: t\nversion: 1\ninput_contract: ticket@1\nsteps:\n  - id: a\n    map: .input\n", &w);
	assert_non_null(w);
	assert_int_equal(w->trigger.kind, SL_TRIGGER_NONE);
	assert_string_equal(sl_schema_id(w->trigger.contract), "ticket@1");
	sl_workflow_unref(w);
	sl_diags_free(&d);
}

static void test_step_references(void **state)
{
	struct sl_project *p = *state;
	const char *base = HEAD "  - id: ticket\n    map: '{subject: .input.subject}'\n"
				"  - id: classify\n    map: '{label: \"billing\"}'\n"
				"  - id: update\n";
	char *src = sl_asprintf("%s    when: '.clasify.label != \"spam\"'\n    call: helpdesk.tickets.update\n", base);
	expect_compile_error(p, src, 9, 12,
			     "step 'update' refers to '.clasify', which is not a step (did you mean 'classify'?)");
	free(src);
	src = sl_asprintf("%s    call: helpdesk.tickets.update\n    with: '{id: .input.id, n: .notify.x}'\n"
			  "  - id: notify\n    map: .input\n",
			  base);
	expect_compile_error(p, src, 10, 12, "step 'update' refers to step 'notify', which runs after it");
	free(src);
	src = sl_asprintf("%s    map: '.update.x'\n", base);
	expect_compile_error(p, src, 9, 11, "step 'update' refers to its own output '.update', which does not exist yet");
	free(src);
	expect_compile_error(p, HEAD "  - id: a\n    map: .input\noutput: '.b'\n", 6, 10,
			     "output refers to '.b', which is not a step (did you mean 'a'?)");
	expect_compile_error(p, HEAD "  - id: a\n    emit: {topic: x, payload: '.zzz'}\n", 5, 32,
			     "step 'a' refers to '.zzz', which is not a step (the run context holds .input and the "
			     "outputs of earlier steps)");

	/* none of these is a reference to a step */
	struct sl_workflow *w = NULL;
	struct sl_diags d = compile_src(p,
					HEAD "  - id: a\n    map: '.input.items | map(.price) | add'\n"
					     "  - id: b\n    map: '[.input.items[] | .id] | {n: length} | .n'\n"
					     "  - id: c\n    map: 'reduce .input.xs[] as $x (0; . + $x.n)'\n"
					     "  - id: d\n    map: '\"\\(.input.name) \\(.a)\"'\n"
					     "  - id: e\n    map: 'if .b == 1 then .c else .d end'\n"
					     "  - id: f\n    call: helpdesk.tickets.update\n"
					     "    compensate: {call: helpdesk.tickets.restore, with: '{id: .f.id}'}\n"
					     "output: '{a: .a, f: .f}'\n",
					&w);
	if (!w) {
		char *all = diags_text(&d);
		fail_msg("%s", all);
	}
	sl_workflow_unref(w);
	sl_diags_free(&d);
}

static void test_secret_literal(void **state)
{
	struct sl_project *p = *state;
	const char *src = "workflow: t\nversion: 1\n"
			  "trigger:\n  webhook:\n    path: /hooks/t\n    hmac_secret: s3cr3t-value\n"
			  "steps:\n  - id: a\n    map: .input\n";
	struct sl_diags d = compile_src(p, src, NULL);
	expect_diag(&d, "wf.yaml", 6, 18,
		    "hmac_secret must be a secret reference (env:NAME or file:PATH), never the secret itself");
	for (size_t i = 0; i < d.n; i++)
		assert_null(strstr(d.v[i].msg, "s3cr3t"));
	sl_diags_free(&d);
	expect_compile_error(p,
			     "workflow: t\nversion: 1\ntrigger:\n  webhook:\n    path: hooks\nsteps:\n  - id: a\n    map: .input\n",
			     5, 11, "webhook path 'hooks' must start with '/' and hold no spaces, '?' or '#'");
}

/* ---- compile from stored source --------------------------------------------------------------- */

static void test_compile_digest(void **state)
{
	struct sl_project *p = *state;
	struct sl_workflow *w = sl_project_workflow(p, "support-triage");
	struct sl_diags d = {0};
	struct sl_workflow *again = sl_workflow_compile(p, w->file, w->source, &d);
	assert_non_null(again);
	assert_int_equal(d.n, 0);
	assert_string_equal(again->digest, w->digest);
	assert_string_equal(again->name, w->name);
	assert_int_equal(again->nsteps, w->nsteps);
	assert_int_equal(again->refs, 1);
	/* a workflow outlives its last user only: ref, unref, unref */
	sl_workflow_ref(again);
	assert_int_equal(again->refs, 2);
	sl_workflow_unref(again);
	sl_workflow_unref(again);

	/* another text is another digest, even when it means the same */
	char *src = sl_asprintf("%s# a comment\n", w->source);
	again = sl_workflow_compile(p, w->file, src, &d);
	assert_non_null(again);
	assert_string_not_equal(again->digest, w->digest);
	sl_workflow_unref(again);
	free(src);

	/* the digest covers name, version and source */
	char want[65];
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_FILE);
	sl_buf_printf(&b, "%s%c%d%c%s", w->name, 0, w->version, 0, w->source);
	sl_sha256_hex(b.p, b.len, want);
	sl_buf_free(&b);
	assert_string_equal(w->digest, want);

	assert_null(sl_workflow_compile(p, "x.yaml", "steps: [", &d));
	assert_true(d.n >= 1);
	sl_diags_free(&d);
}

/* ---- projects built on the fly ------------------------------------------------------------------ */

static void test_defaults_and_cycles(void **state)
{
	(void)state;
	static const char *const files[] = {
		"workflows/loop.yaml",
		"workflow: loop\nversion: 1\ntrigger: {event: again}\nsteps:\n"
		"  - id: note\n    map: .input\n  - id: again\n    emit: again\n",
		"workflows/fine.yaml",
		"workflow: fine\nversion: 1\nsteps:\n  - id: a\n    map: .input\n",
		"prompts/x.md",
		"hello\n",
		NULL,
	};
	char *dir = temp_project(files);
	struct sl_project *p = NULL;
	struct sl_diags d = {0};
	assert_int_equal(sl_project_load(dir, NULL, &p, &d), SL_EINVAL);
	char *file = sl_asprintf("%s/workflows/loop.yaml", dir);
	expect_diag(&d, file, 8, 11, "emit cycle: loop -> loop; add a `when` to stop it");
	assert_int_equal(d.n, 1);
	free(file);
	sl_diags_free(&d);
	remove_tree(dir);
	free(dir);

	static const char *const clean[] = {
		"sluice.yaml", "# all defaults\n", "workflows/fine.yaml",
		"workflow: fine\nversion: 1\nsteps:\n  - id: a\n    map: .input\n", NULL,
	};
	dir = temp_project(clean);
	assert_int_equal(sl_project_load(dir, NULL, &p, &d), 0);
	const char *base = strrchr(dir, '/') + 1;
	assert_string_equal(p->settings.name, base);
	assert_int_equal(p->settings.workers, 2);
	assert_int_equal(p->settings.lease_ms, 30000);
	assert_int_equal(p->settings.batch, 16);
	assert_string_equal(p->settings.log_level, "info");
	assert_int_equal(p->nconnectors, 0);
	sl_project_free(p);
	remove_tree(dir);
	free(dir);

	static const char *const bad_settings[] = {
		"sluice.yaml", "workers: 0\nlisten: localhost\nlog_level: verbose\nlease: 10ms\nstore: ''\n"
			       "idempotency_ttl: 100ms\n", NULL,
	};
	dir = temp_project(bad_settings);
	assert_int_equal(sl_project_load(dir, NULL, &p, &d), SL_EINVAL);
	file = sl_asprintf("%s/sluice.yaml", dir);
	expect_diag(&d, file, 1, 10, "'workers' must be between 1 and 1024");
	expect_diag(&d, file, 2, 9, "listen 'localhost' must be HOST:PORT, e.g. 127.0.0.1:8080");
	expect_diag(&d, file, 3, 12, "unknown log_level 'verbose'; use debug, info, warn, error or off");
	expect_diag(&d, file, 4, 8, "lease must be at least 1s");
	expect_diag(&d, file, 5, 9, "store must not be empty"); /* inside the quotes */
	expect_diag(&d, file, 6, 18, "idempotency_ttl must be at least 1s");
	free(file);
	sl_diags_free(&d);
	remove_tree(dir);
	free(dir);

	/* tenants: runtime shares for fair claiming */
	static const char *const shares[] = {
		"sluice.yaml", "tenants:\n  acme: {weight: 2, max_concurrency: 8}\n  beta: {weight: 0.5}\n  gamma: {}\n",
		NULL,
	};
	dir = temp_project(shares);
	assert_int_equal(sl_project_load(dir, NULL, &p, &d), 0);
	assert_int_equal(p->settings.ntenants, 3);
	assert_string_equal(p->settings.tenants[0].name, "acme");
	assert_true(p->settings.tenants[0].weight == 2.0);
	assert_int_equal(p->settings.tenants[0].max_concurrency, 8);
	assert_true(p->settings.tenants[1].weight == 0.5);
	assert_int_equal(p->settings.tenants[1].max_concurrency, 0);
	assert_true(p->settings.tenants[2].weight == 1.0);
	sl_project_free(p);
	remove_tree(dir);
	free(dir);
	static const char *const bad_shares[] = {
		"sluice.yaml",
		"tenants:\n  acme: {weight: 0}\n  beta: {max_concurrency: -1}\n  gamma: 3\n  delta: {wieght: 2}\n", NULL,
	};
	dir = temp_project(bad_shares);
	assert_int_equal(sl_project_load(dir, NULL, &p, &d), SL_EINVAL);
	file = sl_asprintf("%s/sluice.yaml", dir);
	expect_diag(&d, file, 2, 18, "weight must be a number above 0 and at most 1000000");
	expect_diag(&d, file, 3, 27, "max_concurrency must be between 0 (no limit) and 1000000");
	expect_diag(&d, file, 4, 10, "tenant 'gamma' must be a mapping like {weight: 2, max_concurrency: 8}, not an integer");
	expect_diag(&d, file, 5, 11, "unknown key 'wieght' in tenant (did you mean 'weight'?)");
	free(file);
	sl_diags_free(&d);
	remove_tree(dir);
	free(dir);
}

static void test_secrets_resolution(void **state)
{
	(void)state;
	/* under `sluice check` secrets are references only: the clean project
	 * loads with HELPDESK_TOKEN unset */
	unsetenv("HELPDESK_TOKEN");
	struct sl_project *p = load_clean();
	sl_project_free(p);
	struct sl_diags d = {0};
	struct sl_load_opts o = {.resolve_secrets = true};
	p = NULL;
	int rc = sl_project_load(FIX "/clean", &o, &p, &d);
	if (rc == 0) {
		sl_project_free(p); /* the connector type resolves lazily: nothing to check */
	} else {
		bool named = false;
		for (size_t i = 0; i < d.n; i++)
			named |= strstr(d.v[i].msg, "HELPDESK_TOKEN") != NULL;
		assert_true(named);
	}
	sl_diags_free(&d);
	setenv("HELPDESK_TOKEN", "tok-very-secret-42", 1);
	assert_int_equal(sl_project_load(FIX "/clean", &o, &p, &d), 0);
	sl_project_free(p);
	unsetenv("HELPDESK_TOKEN");
}

/* ---- printing -------------------------------------------------------------------------------------- */

static void test_diags_print(void **state)
{
	(void)state;
	static const char *const files[] = {
		"workflows/a.yaml",
		"workflow: a\nversion: 1\ntrigger:\n  webhook: {path: /a, hmac_secret: hunter2}\nsteps:\n"
		"  - id: x\n\twehn: '.input'\n",
		NULL,
	};
	char *dir = temp_project(files);
	struct sl_diags d = {0};
	sl_diags_add(&d, "workflows/a.yaml", 4, 36, "hmac_secret must be a secret reference");
	sl_diags_add(&d, "workflows/a.yaml", 2, 10, "version is fine");
	sl_diags_add(&d, "", 0, 0, "no place");
	sl_diags_add(&d, "nowhere.yaml", 3, 0, "no file");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	sl_diags_print(f, &d, dir, false);
	fclose(f);
	const char *want = "workflows/a.yaml:4:36: error: hmac_secret must be a secret reference\n"
			   " 4 |   webhook: {path: /a, hmac_secret: *******}\n"
			   "   |                                    ^\n"
			   "workflows/a.yaml:2:10: error: version is fine\n"
			   " 2 | version: 1\n"
			   "   |          ^\n"
			   "error: no place\n"
			   "nowhere.yaml:3: error: no file\n";
	assert_string_equal(buf, want);
	free(buf);

	/* colour, and the caret follows a tab */
	sl_diags_free(&d);
	sl_diags_add(&d, "workflows/a.yaml", 7, 2, "unknown key");
	f = open_memstream(&buf, &len);
	sl_diags_print(f, &d, dir, true);
	fclose(f);
	assert_string_equal(buf, "\033[1mworkflows/a.yaml:7:2:\033[0m \033[1;31merror:\033[0m unknown key\n"
				 " 7 | \twehn: '.input'\n"
				 "   | \t\033[1;32m^\033[0m\n");
	free(buf);
	sl_diags_free(&d);
	remove_tree(dir);
	free(dir);
}

static int setup_clean(void **state)
{
	*state = load_clean();
	return 0;
}

static int teardown_clean(void **state)
{
	sl_project_free(*state);
	return 0;
}


/* trigger: {stream: CONNECTOR} and emit: {stream: CONNECTOR} */
static void test_stream_trigger_and_emit(void **state)
{
	(void)state;
	static const char *const files[] = {
		"sluice.yaml", "# defaults\n",
		"connectors/events.yaml",
		"connector: events\ntype: redis_stream\nurl: redis://127.0.0.1:6399\nstream: events\n",
		"connectors/ledger.yaml", "connector: ledger\ntype: file\npath: out/l.jsonl\n",
		NULL,
	};
	char *dir = temp_project(files);
	struct sl_project *p = NULL;
	struct sl_diags d = {0};
	assert_int_equal(sl_project_load(dir, NULL, &p, &d), 0);

	struct sl_workflow *w = NULL;
	d = compile_src(p,
			"workflow: s\nversion: 1\n"
			"trigger: { stream: { connector: events, group: billing, consumers: 2 } }\n"
			"steps:\n"
			"  - id: out\n    emit: { stream: events, type: order.seen, payload: '{n: .input.n}' }\n",
			&w);
	assert_int_equal(d.n, 0);
	assert_non_null(w);
	assert_int_equal(w->trigger.kind, SL_TRIGGER_STREAM);
	assert_ptr_equal(w->trigger.stream, sl_project_connector(p, "events"));
	assert_string_equal(w->trigger.group, "billing");
	assert_int_equal(w->trigger.consumers, 2);
	assert_ptr_equal(w->steps[0].emit_connector, sl_project_connector(p, "events"));
	assert_non_null(w->steps[0].emit_action);
	assert_string_equal(w->steps[0].emit_type, "order.seen");
	assert_null(w->steps[0].topic);
	sl_workflow_unref(w);
	sl_diags_free(&d);

	d = compile_src(p, "workflow: s\nversion: 1\ntrigger: { stream: events }\nsteps:\n  - id: a\n    map: .input\n", &w);
	assert_int_equal(d.n, 0);
	assert_int_equal(w->trigger.consumers, 4); /* the default */
	assert_null(w->trigger.group);             /* the connector's */
	sl_workflow_unref(w);
	sl_diags_free(&d);

	const char *head = "workflow: s\nversion: 1\n";
	char *src = sl_asprintf("%strigger: { stream: ledger }\nsteps:\n  - id: a\n    map: .input\n", head);
	expect_compile_error(p, src, 3, 20, "connector 'ledger' is of type file, not a stream (redis_stream, nats, kafka)");
	free(src);
	src = sl_asprintf("%strigger: { stream: evnts }\nsteps:\n  - id: a\n    map: .input\n", head);
	expect_compile_error(p, src, 3, 20, "unknown connector 'evnts' (did you mean 'events'?)");
	free(src);
	src = sl_asprintf("%strigger: { stream: { connector: events, consumers: 0 } }\nsteps:\n  - id: a\n    map: .input\n",
			  head);
	expect_compile_error(p, src, 3, 52, "consumers must be 1..64");
	free(src);
	src = sl_asprintf("%strigger: { stream: 7 }\nsteps:\n  - id: a\n    map: .input\n", head);
	expect_compile_error(p, src, 3, 20, "stream must be a connector name or {connector, group, contract}, not an integer");
	free(src);
	src = sl_asprintf("%ssteps:\n  - id: a\n    emit: { topic: t, stream: events }\n", head);
	expect_compile_error(p, src, 5, 31, "emit goes to a topic or a stream, not both");
	free(src);
	src = sl_asprintf("%ssteps:\n  - id: a\n    emit: { type: t }\n", head);
	expect_compile_error(p, src, 5, 11, "emit needs topic or stream");
	free(src);
	src = sl_asprintf("%ssteps:\n  - id: a\n    emit: { stream: ledger }\n", head);
	expect_compile_error(p, src, 5, 21, "connector 'ledger' is of type file, not a stream (redis_stream, nats, kafka)");
	free(src);

	sl_project_free(p);
	remove_tree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yaml_core_schema),
		cmocka_unit_test(test_yaml_aliases_and_merges),
		cmocka_unit_test(test_yaml_errors),
		cmocka_unit_test(test_locmap),
		cmocka_unit_test(test_clean_project),
		cmocka_unit_test(test_broken_project),
		cmocka_unit_test(test_not_a_folder),
		cmocka_unit_test_setup_teardown(test_misspelled_key, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_wrong_types, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_broken_jq, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_step_ids, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_kinds, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_approval_step, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_governance_keys, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_unknown_targets, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_trigger_contract, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_step_references, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_secret_literal, setup_clean, teardown_clean),
		cmocka_unit_test_setup_teardown(test_compile_digest, setup_clean, teardown_clean),
		cmocka_unit_test(test_defaults_and_cycles),
		cmocka_unit_test(test_secrets_resolution),
		cmocka_unit_test(test_diags_print),
		cmocka_unit_test(test_stream_trigger_and_emit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
