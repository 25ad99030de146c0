/*
 * test_expr.c: jq expressions (src/expr/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "expr/expr.h"

static const struct sl_expr_origin origin = {
	.file = "workflows/a.yaml",
	.line = 12,
	.col = 11,
	.what = "step ticket: map",
};

static struct sl_expr *compile_ok(const char *src)
{
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_expr *e = sl_expr_compile(src, &origin, &err);
	if (!e)
		fail_msg("compile %s: %s", src, err.msg);
	return e;
}

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return j;
}

/* Evaluates src on input (JSON text) and compares with want (JSON text). */
static void expect_eval(const char *src, const char *input, const char *want)
{
	struct sl_expr *e = compile_ok(src);
	json_t *in = parse(input), *w = parse(want), *out = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_expr_eval(e, in, &out, &err);
	if (rc)
		fail_msg("eval %s: %s", src, err.msg);
	if (!json_equal(out, w)) {
		char *got = json_dumps(out, JSON_ENCODE_ANY);
		fail_msg("%s on %s: got %s, want %s", src, input, got, want);
	}
	json_decref(in);
	json_decref(w);
	json_decref(out);
	sl_expr_free(e);
}

static void test_object_construction(void **state)
{
	(void)state;
	expect_eval("{subject: .input.subject, body: .input.text, n: (.input.n + 1)}",
		    "{\"input\": {\"subject\": \"Refund\", \"text\": \"hi\", \"n\": 41}}",
		    "{\"subject\": \"Refund\", \"body\": \"hi\", \"n\": 42}");
	expect_eval("[.input.items[] | .price] | add", "{\"input\": {\"items\": [{\"price\": 1.5}, {\"price\": 2}]}}",
		    "3.5");
	expect_eval(".input", "{\"input\": {\"a\": [true, false, null, \"x\", 1e300]}}",
		    "{\"a\": [true, false, null, \"x\", 1e300]}");
	/* whole numbers come back as integers, large ones too */
	expect_eval(".n * 2", "{\"n\": 21}", "42");
	expect_eval(".n", "{\"n\": 12345678901}", "12345678901");
	/* no output is null */
	expect_eval("empty", "{}", "null");
	/* env reads nothing: the environment holds secrets */
	expect_eval("env", "{}", "{}");
}

static void test_strings_roundtrip(void **state)
{
	(void)state;
	expect_eval(".s + \"!\"", "{\"s\": \"h\\u00e9llo \\u2603\"}", "\"h\\u00e9llo \\u2603!\"");
	expect_eval(".s | length", "{\"s\": \"a\\u0000b\"}", "3");
	expect_eval("\"\\(.a)-\\(.b)\"", "{\"a\": \"x\", \"b\": 2}", "\"x-2\"");
}

static void test_when_truthiness(void **state)
{
	(void)state;
	struct {
		const char *src;
		bool want;
	} cases[] = {
		{".x", false},           /* null */
		{"false", false},        /* false */
		{"empty", false},        /* no output */
		{"0", true},             /* jq: 0 is true */
		{"\"\"", true},          /* so is the empty string */
		{"[]", true},
		{".input.label == \"billing\"", true},
		{".input.label != \"billing\"", false},
	};
	json_t *in = parse("{\"input\": {\"label\": \"billing\"}}");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sl_expr *e = compile_ok(cases[i].src);
		bool got = !cases[i].want;
		struct sl_err err;
		assert_int_equal(sl_expr_eval_bool(e, in, &got, &err), 0);
		if (got != cases[i].want)
			fail_msg("%s: got %d", cases[i].src, got);
		sl_expr_free(e);
	}
	json_decref(in);
}

static void test_string_result(void **state)
{
	(void)state;
	struct sl_expr *e = compile_ok(".input.message_id + \":update\"");
	json_t *in = parse("{\"input\": {\"message_id\": \"m-1\"}}");
	char *s = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_expr_eval_string(e, in, &s, &err), 0);
	assert_string_equal(s, "m-1:update");
	free(s);
	sl_expr_free(e);

	e = compile_ok(".input | length");
	assert_int_equal(sl_expr_eval_string(e, in, &s, &err), SL_EINVAL);
	assert_null(s);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	assert_string_equal(err.msg, "step ticket: map: expected a string, got a number");
	json_decref(in);
	sl_expr_free(e);
	e = compile_ok(" .input ");
	assert_string_equal(sl_expr_source(e), " .input ");
	sl_expr_free(e);
}

static void test_runtime_error(void **state)
{
	(void)state;
	struct sl_expr *e = compile_ok(".input.n.x");
	json_t *in = parse("{\"input\": {\"n\": 1}}"), *out = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_expr_eval(e, in, &out, &err), SL_EINVAL);
	assert_null(out);
	assert_int_equal(err.code, SL_EINVAL);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	assert_string_equal(err.file, "workflows/a.yaml");
	assert_int_equal(err.line, 12);
	assert_int_equal(err.col, 11);
	assert_string_equal(err.msg, "step ticket: map: jq error: Cannot index number with string \"x\"");
	sl_expr_free(e);

	e = compile_ok("error({code: 7})");
	assert_int_equal(sl_expr_eval(e, in, &out, &err), SL_EINVAL);
	assert_string_equal(err.msg, "step ticket: map: jq error: {\"code\":7} (not a string)");
	sl_expr_free(e);

	e = compile_ok("error(\"refund too large\")");
	assert_int_equal(sl_expr_eval(e, in, &out, &err), SL_EINVAL);
	assert_string_equal(err.msg, "step ticket: map: jq error: refund too large");
	sl_expr_free(e);

	e = compile_ok("\"stop\" | halt_error");
	assert_int_equal(sl_expr_eval(e, in, &out, &err), SL_EINVAL);
	assert_string_equal(err.msg, "step ticket: map: jq error: stop");
	sl_expr_free(e);

	/* the state is usable again after an error */
	e = compile_ok(".input.n.x? // \"fallback\"");
	assert_int_equal(sl_expr_eval(e, in, &out, &err), 0);
	assert_string_equal(json_string_value(out), "fallback");
	json_decref(out);
	sl_expr_free(e);
	json_decref(in);
}

static void test_compile_error(void **state)
{
	(void)state;
	struct sl_err err;
	sl_err_clear(&err);
	assert_null(sl_expr_compile(".a |||", &origin, &err));
	assert_int_equal(err.code, SL_EINVAL);
	assert_string_equal(err.file, "workflows/a.yaml");
	assert_int_equal(err.line, 12);
	assert_int_equal(err.col, 11);
	assert_string_equal(err.msg, "step ticket: map: jq: syntax error, unexpected '|'");

	assert_null(sl_expr_compile(".a | nosuchfn(1)", &origin, &err));
	assert_string_equal(err.msg, "step ticket: map: jq: nosuchfn/1 is not defined");

	assert_null(sl_expr_compile(".a +\n  (]", &origin, &err));
	/* An error on the expression's second line points at that line. */
	assert_int_equal(err.line, 13);
	assert_non_null(strstr(err.msg, "syntax error"));

	assert_null(sl_expr_compile("  ", &origin, &err));
	assert_string_equal(err.msg, "step ticket: map: empty jq expression");

	assert_null(sl_expr_compile("$ENV.HOOK_SECRET", &origin, &err));
	assert_string_equal(err.msg, "step ticket: map: jq: $ENV is not available (the environment holds secrets)");

	assert_null(sl_expr_compile("import \"x\" as x; .", &origin, &err));
	assert_non_null(strstr(err.msg, "jq modules are not supported"));

	/* no origin: still a message */
	assert_null(sl_expr_compile("{", NULL, &err));
	assert_non_null(strstr(err.msg, "jq: syntax error"));
}

/* ---- threads --------------------------------------------------------------------- */

struct worker {
	struct sl_expr *e;
	int id;
	int failures;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 300; i++) {
		json_t *in = json_pack("{s:{s:i, s:[i,i]}}", "input", "n", w->id * 1000 + i, "xs", i, w->id);
		json_t *out = NULL;
		struct sl_err err;
		if (sl_expr_eval(w->e, in, &out, &err) != 0) {
			w->failures++;
		} else {
			json_int_t want = (json_int_t)(w->id * 1000 + i) + i + w->id;
			json_t *sum = json_object_get(out, "sum");
			if (!json_is_integer(sum) || json_integer_value(sum) != want)
				w->failures++;
		}
		json_decref(out);
		json_decref(in);
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	struct sl_expr *e = compile_ok("{sum: (.input.n + (.input.xs | add)), tag: \"t\\(.input.n)\"}");
	pthread_t th[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.e = e, .id = i + 1};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	sl_expr_free(e);
}

/* ---- root references ------------------------------------------------------------------ */

struct refs {
	char got[512];
};

static void collect(void *ud, const char *name, size_t off)
{
	struct refs *r = ud;
	size_t n = strlen(r->got);
	snprintf(r->got + n, sizeof r->got - n, "%s%s@%zu", n ? " " : "", name, off);
}

static void expect_refs(const char *src, const char *want)
{
	struct refs r = {{0}};
	sl_expr_refs(src, collect, &r);
	if (strcmp(r.got, want) != 0)
		fail_msg("refs of `%s`: got [%s], want [%s]", src, r.got, want);
}

static void test_refs(void **state)
{
	(void)state;
	expect_refs(".input.items | map(.price)", "input@0");
	expect_refs("[.items[] | .id]", "items@1");
	expect_refs("{a: .input.x} | .a", "input@4");
	expect_refs("reduce .input.xs[] as $x (0; . + $x.n)", "input@7");
	expect_refs("\"\\(.input.name)\"", "input@3");
	expect_refs("if .classify.label == \"x\" then 1 else 2 end", "classify@3");
	expect_refs("{subject: .input.subject, body: .input.text}", "input@10 input@32");
	expect_refs(".ticket.subject + \"\\n\" + .ticket.body", "ticket@0 ticket@25");
	expect_refs("{id: .input.ticket_id, tags: [.classify.label]}", "input@5 classify@30");
	expect_refs(".classify.label != \"spam\"", "classify@0");
	/* a call's arguments, a def's body, catch: `.` is something else */
	expect_refs("select(.a) | .b", "");
	expect_refs("def f: .x; f | .y", "");
	expect_refs("def f(g): g | .z; .input | f(.k)", "input@18");
	expect_refs("try .input.a catch .msg", "input@4");
	expect_refs("try error(\"x\") catch (.y)", "");
	/* continuation of a path is not a new reference */
	expect_refs(".a.b[0].c?.d", "a@0");
	expect_refs("$x.name", "");
	expect_refs("(.a).b", "a@1");
	expect_refs(".a.\"b c\" | .d", "a@0");
	expect_refs(".\"my step\".x", "my step@0");
	/* `|` ends the frame; brackets and braces start fresh frames */
	expect_refs("[.a | .b], .c", "a@1 c@11");
	expect_refs("{x: (.a | .b), y: .c}", "a@5 c@18");
	expect_refs("{x: .a | .b, y: .c}", "a@4 c@16");
	expect_refs("if .a then .b | .c else .d end", "a@3 b@11 d@24");
	expect_refs(".a | if .b then 1 else 2 end", "a@0");
	/* as-bindings: the body after `|` is not checked; destructuring reduce */
	expect_refs(".input as $i | .x", "input@0");
	expect_refs("reduce .input.xs[] as [$a, $b] (0; . + .n)", "input@7");
	expect_refs("foreach .input.xs[] as {a: $a} (0; .a; .b)", "input@8");
	/* operators, keywords and literals before a field start a path */
	expect_refs(".a and .b or (.c | not)", "a@0 b@7 c@14");
	expect_refs("-.a + .b * 2 // .c", "a@1 b@6 c@16");
	expect_refs("1.5 + .x", "x@6");
	expect_refs(".5 + .x", "x@5");
	expect_refs("@base64 \"\\(.input.x)\"", "input@11");
	expect_refs("# a comment .nope\n.yes", "yes@18");
	expect_refs("\"a .b \\\" .c\" + .d", "d@15");
	expect_refs("{if: .a, then: .b}", "a@5 b@15");
	expect_refs(".a |= . + 1 | .b", "a@0");
	expect_refs(".a += .b", "a@0 b@6");
	expect_refs("..|.a?", "");
	expect_refs(".[] | .x", "");
	expect_refs("label $out | .x", "");
	expect_refs("length", "");
	/* junk never crashes */
	expect_refs(")))]]}}", "");
	expect_refs("\"unterminated \\(.a", "a@16");
	expect_refs(".", "");
	expect_refs("", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_object_construction),
		cmocka_unit_test(test_strings_roundtrip),
		cmocka_unit_test(test_when_truthiness),
		cmocka_unit_test(test_string_result),
		cmocka_unit_test(test_runtime_error),
		cmocka_unit_test(test_compile_error),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_refs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
