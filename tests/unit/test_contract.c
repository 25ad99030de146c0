/*
 * Unit tests for src/contract: keywords, error pointers and messages,
 * cross-document $ref, x-pii paths, loading a contracts folder, and
 * concurrent validation. The official JSON Schema Test Suite runs separately
 * (tests/support/jsts_run.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "contract/contract.h"

/* ---- helpers ---------------------------------------------------------------- */
static json_t *J(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	if (!v)
		fail_msg("bad test JSON at %d:%d: %s: %s", je.line, je.column, je.text, text);
	return v;
}

/* Compiles an anonymous schema into r; fails the test on a compile error. */
static struct sl_schema *compile(struct sl_contracts *r, const char *text)
{
	struct sl_err err;
	sl_err_clear(&err);
	json_t *js = J(text);
	struct sl_schema *s = sl_contracts_compile(r, js, "test.json", &err);
	json_decref(js);
	if (!s)
		fail_msg("schema rejected: %s", err.msg);
	return s;
}

static int add(struct sl_contracts *r, const char *text, struct sl_err *err)
{
	json_t *js = J(text);
	int rc = sl_contracts_add(r, js, "test.json", err);
	json_decref(js);
	return rc;
}

/* Validates in both modes, checks that they agree, returns the verdict. */
static bool check(const struct sl_schema *s, const char *instance)
{
	json_t *x = J(instance);
	struct sl_verrs errs = {0};
	bool fast = sl_schema_validate(s, x, NULL);
	bool full = sl_schema_validate(s, x, &errs);
	assert_int_equal(fast, full);
	assert_true(full ? errs.n == 0 : errs.n > 0);
	sl_verrs_free(&errs);
	json_decref(x);
	return fast;
}

/* The joined error text for instance (owned). */
static char *errors_of(const struct sl_schema *s, const char *instance)
{
	json_t *x = J(instance);
	struct sl_verrs errs = {0};
	assert_false(sl_schema_validate(s, x, &errs));
	char *text = sl_verrs_join(&errs);
	sl_verrs_free(&errs);
	json_decref(x);
	return text;
}

static void assert_errors(const struct sl_schema *s, const char *instance, const char *want)
{
	char *got = errors_of(s, instance);
	if (strcmp(got, want) != 0)
		fail_msg("errors for %s:\n  got:  %s\n  want: %s", instance, got, want);
	free(got);
}

#define VALID(s, x) assert_true(check((s), (x)))
#define INVALID(s, x) assert_false(check((s), (x)))

/* ---- type, enum, const ----------------------------------------------------------- */
static void test_type(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"type\": \"integer\"}");
	VALID(s, "3");
	VALID(s, "3.0"); /* a real with no fraction is an integer */
	INVALID(s, "3.5");
	INVALID(s, "\"3\"");
	s = compile(r, "{\"type\": [\"string\", \"null\"]}");
	VALID(s, "null");
	VALID(s, "\"x\"");
	INVALID(s, "1");
	assert_errors(s, "1", "\"\": expected string or null, got integer");
	s = compile(r, "{\"type\": \"number\"}");
	VALID(s, "1");
	VALID(s, "1.5");
	INVALID(s, "true");
	s = compile(r, "{\"properties\": {\"tags\": {\"items\": {\"type\": \"string\"}}}}");
	assert_errors(s, "{\"tags\": [\"a\", \"b\", 7]}", "/tags/2: expected string, got integer");
	s = compile(r, "{\"type\": \"object\"}");
	INVALID(s, "[]");
	VALID(s, "{}");
	s = compile(r, "{\"type\": \"boolean\"}");
	VALID(s, "false");
	INVALID(s, "0");
	sl_contracts_free(r);
}

static void test_enum_const(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"enum\": [1, \"a\", {\"k\": [1, 2]}, null]}");
	VALID(s, "1.0");
	VALID(s, "\"a\"");
	VALID(s, "{\"k\": [1.0, 2]}");
	VALID(s, "null");
	INVALID(s, "{\"k\": [2, 1]}");
	INVALID(s, "true");
	INVALID(s, "\"b\"");
	s = compile(r, "{\"const\": {\"a\": 1, \"b\": [true]}}");
	VALID(s, "{\"b\": [true], \"a\": 1}");
	INVALID(s, "{\"a\": 1}");
	assert_errors(s, "2", "\"\": must be {\"a\":1,\"b\":[true]}");
	s = compile(r, "{\"const\": false}");
	INVALID(s, "0");
	VALID(s, "false");
	sl_contracts_free(r);
}

/* ---- numbers ------------------------------------------------------------------------ */
static void test_numbers(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"minimum\": 1, \"maximum\": 10}");
	VALID(s, "1");
	VALID(s, "10.0");
	INVALID(s, "0.999");
	INVALID(s, "11");
	VALID(s, "\"not a number: ignored\"");
	s = compile(r, "{\"exclusiveMinimum\": 0, \"exclusiveMaximum\": 1.5}");
	INVALID(s, "0");
	VALID(s, "0.0001");
	VALID(s, "1");
	INVALID(s, "1.5");
	assert_errors(s, "2", "\"\": must be < 1.5");
	s = compile(r, "{\"multipleOf\": 0.01}");
	VALID(s, "19.99");
	VALID(s, "0.07");
	INVALID(s, "19.995");
	s = compile(r, "{\"multipleOf\": 3}");
	VALID(s, "-9");
	INVALID(s, "10");
	VALID(s, "9.0");
	s = compile(r, "{\"multipleOf\": 0.0001}");
	VALID(s, "0.0075");
	s = compile(r, "{\"type\": \"integer\", \"multipleOf\": 0.123456789}");
	INVALID(s, "1e308");
	s = compile(r, "{\"properties\": {\"age\": {\"minimum\": 18}}}");
	assert_errors(s, "{\"age\": 17}", "/age: must be >= 18");
	sl_contracts_free(r);
}

/* ---- strings ------------------------------------------------------------------------ */
static void test_strings(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"minLength\": 2, \"maxLength\": 3}");
	VALID(s, "\"ab\"");
	VALID(s, "\"h\\u00e9\\u00e9\""); /* 3 code points, 5 bytes */
	VALID(s, "\"\\ud83d\\ude00\\ud83d\\ude00\""); /* 2 code points, 8 bytes */
	INVALID(s, "\"\\u00e9\"");
	INVALID(s, "\"abcd\"");
	assert_errors(s, "\"abcd\"", "\"\": must be at most 3 characters long");
	s = compile(r, "{\"minLength\": 2.0}"); /* an integral real is a count */
	INVALID(s, "\"a\"");
	s = compile(r, "{\"pattern\": \"[0-9]{3}\"}");
	VALID(s, "\"ab123cd\""); /* unanchored */
	INVALID(s, "\"12\"");
	VALID(s, "42"); /* only strings */
	s = compile(r, "{\"pattern\": \"^\\\\p{Letter}+$\"}");
	VALID(s, "\"\\u00e9t\\u00e9\"");
	INVALID(s, "\"ab1\"");
	s = compile(r, "{\"pattern\": \"^a$\"}");
	INVALID(s, "\"a\\n\""); /* ECMA: $ is the very end */
	s = compile(r, "{\"pattern\": \"^\\\\d+$\"}");
	INVALID(s, "\"\\u0662\""); /* ECMA: \\d is ASCII */
	sl_contracts_free(r);
}

static void test_formats(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"properties\": {\"from\": {\"format\": \"email\"},"
					 " \"at\": {\"format\": \"date-time\"},"
					 " \"link\": {\"format\": \"uri\"},"
					 " \"id\": {\"format\": \"uuid\"},"
					 " \"x\": {\"format\": \"no-such-format\"}}}");
	VALID(s, "{\"from\": \"ann@example.com\", \"at\": \"2026-11-23T10:00:00Z\","
		 " \"link\": \"https://example.com/a?b=c#d\","
		 " \"id\": \"123e4567-e89b-12d3-a456-426614174000\", \"x\": \"anything\"}");
	assert_errors(s, "{\"from\": \"not an address\"}", "/from: does not match format \"email\"");
	INVALID(s, "{\"from\": \"a..b@example.com\"}");
	INVALID(s, "{\"at\": \"2026-02-30T10:00:00Z\"}");
	INVALID(s, "{\"at\": \"2026-11-23 10:00:00Z\"}");
	VALID(s, "{\"at\": \"2026-11-23T10:00:00.123+05:30\"}");
	VALID(s, "{\"at\": \"1998-12-31T23:59:60Z\"}");
	INVALID(s, "{\"at\": \"1998-12-31T22:59:60Z\"}");
	INVALID(s, "{\"link\": \"/relative/path\"}");
	INVALID(s, "{\"link\": \"http://exa mple.com\"}");
	INVALID(s, "{\"id\": \"123e4567e89b12d3a456426614174000\"}");
	VALID(s, "{\"from\": 42}"); /* format applies to strings only */
	/* the suite's mode: format as annotation */
	sl_contracts_set_format_assert(r, false);
	VALID(s, "{\"from\": \"not an address\"}");
	sl_contracts_free(r);
}

/* ---- arrays ---------------------------------------------------------------------------- */
static void test_arrays(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"prefixItems\": [{\"type\": \"string\"}, {\"type\": \"integer\"}],"
					 " \"items\": {\"type\": \"boolean\"}, \"minItems\": 1, \"maxItems\": 4}");
	VALID(s, "[\"a\"]");
	VALID(s, "[\"a\", 1, true, false]");
	INVALID(s, "[]");
	INVALID(s, "[\"a\", 1, true, false, true]");
	INVALID(s, "[1]");
	assert_errors(s, "[\"a\", 1, 2]", "/2: expected boolean, got integer");
	s = compile(r, "{\"items\": false, \"prefixItems\": [true]}");
	VALID(s, "[1]");
	assert_errors(s, "[1, 2]", "/1: not allowed by \"items\"");
	s = compile(r, "{\"uniqueItems\": true}");
	VALID(s, "[1, 2, {\"a\": 1}, {\"a\": 2}, [1], \"1\"]");
	INVALID(s, "[1, 1.0]");
	INVALID(s, "[{\"a\": 1, \"b\": 2}, {\"b\": 2, \"a\": 1}]");
	assert_errors(s, "[0, 1, 2, 1]", "\"\": items 1 and 3 are equal (items must be unique)");
	s = compile(r, "{\"contains\": {\"type\": \"integer\"}, \"minContains\": 2, \"maxContains\": 3}");
	INVALID(s, "[1, \"a\"]");
	VALID(s, "[1, \"a\", 2]");
	INVALID(s, "[1, 2, 3, 4]");
	s = compile(r, "{\"contains\": {\"const\": 1}, \"minContains\": 0}");
	VALID(s, "[]");
	s = compile(r, "{\"contains\": {\"const\": 1}}");
	INVALID(s, "[]");
	VALID(s, "[2, 1]");
	sl_contracts_free(r);
}

/* ---- objects --------------------------------------------------------------------------- */
static void test_objects(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"properties\": {\"subject\": {\"type\": \"string\"}},"
					 " \"required\": [\"subject\", \"body\"],"
					 " \"additionalProperties\": {\"type\": \"integer\"}}");
	VALID(s, "{\"subject\": \"hi\", \"body\": 1, \"n\": 2}");
	assert_errors(s, "{\"body\": 1}", "\"\": missing required property \"subject\"");
	assert_errors(s, "{\"subject\": \"s\", \"body\": \"text\"}", "/body: expected integer, got string");
	s = compile(r, "{\"properties\": {\"a\": true}, \"additionalProperties\": false}");
	VALID(s, "{\"a\": 1}");
	assert_errors(s, "{\"a\": 1, \"x/y~z\": 2}", "/x~1y~0z: not allowed by \"additionalProperties\"");
	s = compile(r, "{\"patternProperties\": {\"^x-\": {\"type\": \"string\"}},"
		       " \"additionalProperties\": false}");
	VALID(s, "{\"x-a\": \"1\"}");
	INVALID(s, "{\"x-a\": 1}");
	INVALID(s, "{\"y\": \"1\"}");
	s = compile(r, "{\"minProperties\": 1, \"maxProperties\": 2}");
	INVALID(s, "{}");
	VALID(s, "{\"a\": 1}");
	INVALID(s, "{\"a\": 1, \"b\": 2, \"c\": 3}");
	s = compile(r, "{\"propertyNames\": {\"maxLength\": 3, \"pattern\": \"^[a-z]+$\"}}");
	VALID(s, "{\"abc\": 1}");
	assert_errors(s, "{\"abcd\": 1}", "\"\": property name \"abcd\" is not allowed");
	INVALID(s, "{\"A\": 1}");
	s = compile(r, "{\"dependentRequired\": {\"card\": [\"billing\"]}}");
	VALID(s, "{\"billing\": 1}");
	assert_errors(s, "{\"card\": 1}", "\"\": property \"card\" requires property \"billing\"");
	s = compile(r, "{\"dependentSchemas\": {\"card\": {\"required\": [\"cvv\"]}}}");
	VALID(s, "{\"x\": 1}");
	INVALID(s, "{\"card\": 1}");
	VALID(s, "{\"card\": 1, \"cvv\": 2}");
	sl_contracts_free(r);
}

/* ---- applicators ------------------------------------------------------------------------- */
static void test_combinators(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"allOf\": [{\"type\": \"integer\"}, {\"minimum\": 2}]}");
	VALID(s, "2");
	INVALID(s, "1");
	s = compile(r, "{\"anyOf\": [{\"type\": \"string\"}, {\"minimum\": 2}]}");
	VALID(s, "\"a\"");
	VALID(s, "3");
	assert_errors(s, "1", "\"\": does not match any of the 2 \"anyOf\" schemas");
	s = compile(r, "{\"oneOf\": [{\"type\": \"integer\"}, {\"minimum\": 2}]}");
	VALID(s, "1");
	VALID(s, "2.5");
	assert_errors(s, "3", "\"\": matches \"oneOf\" schemas 0 and 1; exactly one must match");
	INVALID(s, "1.5");
	s = compile(r, "{\"not\": {\"type\": \"null\"}}");
	VALID(s, "1");
	assert_errors(s, "null", "\"\": must not match the \"not\" schema");
	s = compile(r, "{\"if\": {\"properties\": {\"kind\": {\"const\": \"card\"}}},"
		       " \"then\": {\"required\": [\"number\"]}, \"else\": {\"required\": [\"iban\"]}}");
	VALID(s, "{\"kind\": \"card\", \"number\": \"4\"}");
	INVALID(s, "{\"kind\": \"card\", \"iban\": \"x\"}");
	VALID(s, "{\"kind\": \"bank\", \"iban\": \"x\"}");
	INVALID(s, "{\"kind\": \"bank\"}");
	s = compile(r, "true");
	VALID(s, "{\"anything\": [1]}");
	s = compile(r, "false");
	INVALID(s, "null");
	sl_contracts_free(r);
}

static void test_unevaluated(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r,
		"{\"$defs\": {\"base\": {\"properties\": {\"id\": {\"type\": \"integer\"}}}},"
		" \"$ref\": \"#/$defs/base\","
		" \"allOf\": [{\"properties\": {\"name\": true}}],"
		" \"anyOf\": [{\"properties\": {\"a\": true}, \"required\": [\"a\"]}, {\"properties\": {\"b\": true}}],"
		" \"if\": {\"properties\": {\"t\": {\"const\": 1}}, \"required\": [\"t\"]},"
		" \"then\": {\"properties\": {\"u\": true}},"
		" \"unevaluatedProperties\": false}");
	VALID(s, "{\"id\": 1, \"name\": \"n\", \"a\": 1, \"b\": 2}");
	VALID(s, "{\"t\": 1, \"u\": 2}");
	INVALID(s, "{\"t\": 2, \"u\": 2}"); /* then not taken: u unevaluated */
	assert_errors(s, "{\"id\": 1, \"zzz\": 1}", "/zzz: not allowed by \"unevaluatedProperties\"");
	/* a failing branch contributes nothing */
	s = compile(r, "{\"anyOf\": [{\"properties\": {\"a\": {\"type\": \"string\"}}, \"required\": [\"a\"]}, true],"
		       " \"unevaluatedProperties\": false}");
	VALID(s, "{\"a\": \"x\"}");
	INVALID(s, "{\"a\": 1}");
	s = compile(r, "{\"prefixItems\": [true], \"allOf\": [{\"contains\": {\"const\": \"x\"}}],"
		       " \"unevaluatedItems\": {\"type\": \"integer\"}}");
	VALID(s, "[\"a\", \"x\", 3]");
	INVALID(s, "[\"a\", \"x\", \"y\"]");
	assert_errors(s, "[\"a\", \"x\", 3, \"z\"]", "/3: expected integer, got string");
	sl_contracts_free(r);
}

/* ---- references ---------------------------------------------------------------------------- */
static void test_ref_local(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r,
		"{\"$defs\": {\"pos\": {\"type\": \"integer\", \"minimum\": 1},"
		" \"a/b\": {\"type\": \"string\"}, \"t~x\": {\"type\": \"null\"},"
		" \"named\": {\"$anchor\": \"name\", \"maxLength\": 2}},"
		" \"properties\": {\"n\": {\"$ref\": \"#/$defs/pos\"}, \"s\": {\"$ref\": \"#/$defs/a~1b\"},"
		" \"z\": {\"$ref\": \"#/$defs/t~0x\"}, \"q\": {\"$ref\": \"#/$defs/t%7E0x\"},"
		" \"m\": {\"$ref\": \"#name\"}, \"self\": {\"$ref\": \"#\"}}}");
	VALID(s, "{\"n\": 1, \"s\": \"x\", \"z\": null, \"q\": null, \"m\": \"ab\"}");
	INVALID(s, "{\"q\": \"y\"}");
	INVALID(s, "{\"n\": 0}");
	INVALID(s, "{\"s\": 1}");
	INVALID(s, "{\"z\": 1}");
	INVALID(s, "{\"m\": \"abc\"}");
	VALID(s, "{\"self\": {\"self\": {\"n\": 2}}}");
	assert_errors(s, "{\"self\": {\"self\": {\"n\": 0}}}", "/self/self/n: must be >= 1");
	/* a recursive $ref that never consumes the instance ends, invalid */
	s = compile(r, "{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"$ref\": \"#/$defs/a\"}},"
		       " \"$ref\": \"#/$defs/a\"}");
	INVALID(s, "1");
	sl_contracts_free(r);
}

static void test_ref_registry(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_err err;
	sl_err_clear(&err);
	/* refers to a document added later: linked when it arrives */
	assert_int_equal(add(r, "{\"$id\": \"ticket@1\", \"type\": \"object\","
				" \"properties\": {\"requester\": {\"$ref\": \"person@2#/$defs/email\"},"
				" \"owner\": {\"$ref\": \"person@2\"}}}", &err), 0);
	struct sl_diags d = {0};
	assert_int_equal(sl_contracts_check_refs(r, &d), 2);
	sl_diags_free(&d);
	assert_int_equal(add(r, "{\"$id\": \"person@2\", \"required\": [\"name\"],"
				" \"$defs\": {\"email\": {\"type\": \"string\", \"format\": \"email\"}}}", &err), 0);
	assert_int_equal(sl_contracts_check_refs(r, &d), 0);
	struct sl_schema *t = sl_contracts_get(r, "ticket@1");
	assert_non_null(t);
	assert_string_equal(sl_schema_id(t), "ticket@1");
	VALID(t, "{\"requester\": \"a@b.example\", \"owner\": {\"name\": \"x\"}}");
	assert_errors(t, "{\"requester\": \"nope\", \"owner\": {}}",
		      "/requester: does not match format \"email\"; /owner: missing required property \"name\"");
	assert_null(sl_contracts_get(r, "ticket@9"));
	/* the same id twice is refused and leaves the registry as it was */
	assert_int_not_equal(add(r, "{\"$id\": \"ticket@1\"}", &err), 0);
	assert_non_null(strstr(err.msg, "ticket@1"));
	const char *const *ids = sl_contracts_ids(r);
	assert_string_equal(ids[0], "ticket@1");
	assert_string_equal(ids[1], "person@2");
	assert_null(ids[2]);
	/* URI ids, relative refs against them, lookup by URI */
	assert_int_equal(add(r, "{\"$id\": \"https://example.com/s/order.json\","
				" \"properties\": {\"item\": {\"$ref\": \"item.json\"}}}", &err), 0);
	assert_int_equal(add(r, "{\"$id\": \"https://example.com/s/item.json\", \"type\": \"string\"}", &err), 0);
	struct sl_schema *o = sl_contracts_get(r, "https://example.com/s/order.json");
	assert_non_null(o);
	VALID(o, "{\"item\": \"x\"}");
	INVALID(o, "{\"item\": 1}");
	assert_non_null(sl_contracts_get(r, "https://example.com/s/item.json#"));
	/* an unresolved ref makes validation fail, with a message */
	struct sl_schema *u = compile(r, "{\"$ref\": \"missing@1\"}");
	assert_errors(u, "1", "\"\": unresolved $ref \"missing@1\"");
	sl_contracts_free(r);
}

/* Rolls back an add that fails half-way: a nested $id that clashes. */
static void test_add_rollback(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(add(r, "{\"$id\": \"https://x.example/a\"}", &err), 0);
	assert_int_not_equal(add(r, "{\"$id\": \"b@1\", \"$defs\": {\"x\": {\"$id\": \"https://x.example/c\"},"
				    " \"y\": {\"$id\": \"https://x.example/a\"}}}", &err), 0);
	assert_non_null(strstr(err.msg, "duplicate $id"));
	assert_null(sl_contracts_get(r, "b@1"));
	/* https://x.example/c was taken back out, so it can be added now */
	assert_int_equal(add(r, "{\"$id\": \"b@1\", \"$defs\": {\"x\": {\"$id\": \"https://x.example/c\"}}}", &err), 0);
	assert_null(sl_contracts_ids(r)[2]);
	sl_contracts_free(r);
}

static void test_dynamic_ref(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_err err;
	sl_err_clear(&err);
	/* a generic tree, extended by another document to forbid unknown keys */
	assert_int_equal(add(r, "{\"$id\": \"https://t.example/tree\", \"$dynamicAnchor\": \"node\","
				" \"type\": \"object\", \"properties\": {\"data\": true,"
				" \"children\": {\"type\": \"array\", \"items\": {\"$dynamicRef\": \"#node\"}}}}", &err), 0);
	assert_int_equal(add(r, "{\"$id\": \"https://t.example/strict-tree\", \"$dynamicAnchor\": \"node\","
				" \"$ref\": \"tree\", \"unevaluatedProperties\": false}", &err), 0);
	struct sl_schema *strict = sl_contracts_get(r, "https://t.example/strict-tree");
	struct sl_schema *loose = sl_contracts_get(r, "https://t.example/tree");
	VALID(strict, "{\"children\": [{\"data\": 1}]}");
	INVALID(strict, "{\"children\": [{\"daat\": 1}]}");
	VALID(loose, "{\"children\": [{\"daat\": 1}]}");
	sl_contracts_free(r);
}

/* ---- x-pii --------------------------------------------------------------------------------- */
static void test_pii(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(add(r, "{\"$id\": \"contact@1\", \"properties\": {"
				" \"email\": {\"type\": \"string\", \"x-pii\": true},"
				" \"phones\": {\"items\": {\"x-pii\": true}},"
				" \"a/b\": {\"x-pii\": true}, \"public\": {\"x-pii\": false}}}", &err), 0);
	assert_int_equal(add(r, "{\"$id\": \"msg@1\", \"$defs\": {\"who\": {\"$ref\": \"contact@1\"}},"
				" \"properties\": {\"from\": {\"$ref\": \"#/$defs/who\"},"
				" \"to\": {\"type\": \"array\", \"items\": {\"$ref\": \"contact@1\"}},"
				" \"body\": {\"x-pii\": true}, \"node\": {\"$ref\": \"#\"}}}", &err), 0);
	const char *const *p = sl_schema_pii_paths(sl_contracts_get(r, "msg@1"));
	const char *want[] = {"/body", "/from/a~1b", "/from/email", "/from/phones/*",
			      "/to/*/a~1b", "/to/*/email", "/to/*/phones/*", NULL};
	for (size_t i = 0; want[i]; i++) {
		assert_non_null(p[i]);
		assert_string_equal(p[i], want[i]);
	}
	assert_null(p[7]);
	p = sl_schema_pii_paths(sl_contracts_get(r, "contact@1"));
	assert_string_equal(p[0], "/a~1b");
	assert_string_equal(p[1], "/email");
	assert_string_equal(p[2], "/phones/*");
	assert_null(p[3]);
	/* x-pii must be a boolean */
	assert_int_not_equal(add(r, "{\"$id\": \"bad@1\", \"properties\": {\"a\": {\"x-pii\": \"yes\"}}}", &err), 0);
	assert_non_null(strstr(err.msg, "#/properties/a/x-pii"));
	sl_contracts_free(r);
}

/* ---- errors: several at once, pointers, limits ------------------------------------------------ */
static void test_error_collection(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"type\": \"object\", \"required\": [\"subject\"],"
					 " \"properties\": {\"from\": {\"format\": \"email\"},"
					 " \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
					 " \"n\": {\"minimum\": 0}}}");
	json_t *x = J("{\"from\": \"x\", \"tags\": [\"a\", 1, null], \"n\": -1}");
	struct sl_verrs errs = {0};
	assert_false(sl_schema_validate(s, x, &errs));
	assert_int_equal(errs.n, 5);
	bool seen_required = false;
	for (size_t i = 0; i < errs.n; i++) {
		if (strcmp(errs.v[i].keyword, "required") == 0) {
			assert_string_equal(errs.v[i].pointer, "");
			assert_string_equal(errs.v[i].msg, "missing required property \"subject\"");
			seen_required = true;
		}
	}
	assert_true(seen_required);
	char *joined = sl_verrs_join(&errs);
	assert_non_null(strstr(joined, "/tags/1: expected string, got integer"));
	assert_non_null(strstr(joined, "/tags/2: expected string, got null"));
	assert_non_null(strstr(joined, "/n: must be >= 0"));
	assert_non_null(strstr(joined, "/from: does not match format \"email\""));
	free(joined);
	sl_verrs_free(&errs);
	/* the cap */
	errs.max = 2;
	assert_false(sl_schema_validate(s, x, &errs));
	assert_int_equal(errs.n, 2);
	sl_verrs_free(&errs);
	json_decref(x);
	sl_contracts_free(r);
}

static void test_compile_errors(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_err err;
	static const struct {
		const char *schema, *want;
	} cases[] = {
		{"{\"$id\": \"a@1\", \"properties\": {\"s\": {\"minLength\": \"x\"}}}",
		 "a@1#/properties/s/minLength: must be a non-negative integer"},
		{"{\"$id\": \"a@1\", \"pattern\": \"([a-z\"}", "a@1#/pattern: invalid regular expression"},
		{"{\"$id\": \"a@1\", \"patternProperties\": {\"(\": true}}", "a@1#/patternProperties"},
		{"{\"$id\": \"a@1\", \"type\": \"text\"}", "a@1#/type: unknown type \"text\""},
		{"{\"$id\": \"a@1\", \"items\": [true]}", "a@1#/items: a schema must be"},
		{"{\"$id\": \"a@1\", \"required\": [1]}", "a@1#/required: must be an array of strings"},
		{"{\"$id\": \"a@1\", \"multipleOf\": 0}", "a@1#/multipleOf: must be a number greater than 0"},
		{"{\"$id\": \"a@1\", \"allOf\": []}", "a@1#/allOf: must be a non-empty array"},
		{"{\"$id\": \"a@1\", \"$defs\": {\"x\": 3}}", "a@1#/$defs/x: a schema must be"},
		{"{\"$id\": \"a@1\", \"$ref\": 3}", "a@1#/$ref: must be a string"},
		{"{\"type\": \"string\"}", "missing \"$id\""},
		{"[1]", "a schema must be an object or a boolean"},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		sl_err_clear(&err);
		assert_int_not_equal(add(r, cases[i].schema, &err), 0);
		if (!strstr(err.msg, cases[i].want))
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].schema, err.msg, cases[i].want);
		assert_string_equal(err.file, "test.json");
	}
	/* nothing of the failed adds stayed behind */
	assert_null(sl_contracts_ids(r)[0]);
	assert_int_equal(add(r, "{\"$id\": \"a@1\"}", &err), 0);
	sl_contracts_free(r);
}

/* ---- loading a folder ------------------------------------------------------------------------------ */
static void write_file(const char *dir, const char *name, const char *text)
{
	char *path = sl_path_join(dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(path);
}

static void test_load_dir(void **state)
{
	(void)state;
	char dir[] = "/tmp/sl_contract_XXXXXX";
	assert_non_null(mkdtemp(dir));
	write_file(dir, "b_ticket.json", "{\"$id\": \"ticket@1\", \"$ref\": \"base@1\"}");
	write_file(dir, "a_base.json", "{\"$id\": \"base@1\", \"type\": \"object\"}");
	write_file(dir, "c_broken.json", "{\n  \"$id\": \"broken@1\",\n  \"type\": \"object\",,\n}");
	write_file(dir, "d_dup.json", "{\"$id\": \"dup@1\", \"type\": 1, \"type\": 2}");
	write_file(dir, "e_noid.json", "{\"type\": \"object\"}");
	write_file(dir, "f_badid.json", "{\"$id\": \"Ticket@v1\"}");
	write_file(dir, "g_badkw.json", "{\"$id\": \"g@1\", \"maxItems\": -1}");
	write_file(dir, "notes.txt", "not a contract");
	struct sl_contracts *r = sl_contracts_new();
	struct sl_diags d = {0};
	assert_int_equal(sl_contracts_load_dir(r, dir, &d), 5);
	assert_int_equal(d.n, 5);
	assert_non_null(strstr(d.v[0].file, "c_broken.json"));
	assert_int_equal(d.v[0].line, 3);
	assert_true(d.v[0].col > 1);
	assert_non_null(strstr(d.v[1].file, "d_dup.json"));
	assert_non_null(strstr(d.v[1].msg, "duplicate"));
	assert_non_null(strstr(d.v[2].msg, "missing \"$id\""));
	assert_int_equal(d.v[2].line, 1);
	assert_int_equal(d.v[2].col, 1);
	assert_non_null(strstr(d.v[3].msg, "NAME@VERSION"));
	assert_non_null(strstr(d.v[4].msg, "g@1#/maxItems"));
	const char *const *ids = sl_contracts_ids(r);
	assert_string_equal(ids[0], "base@1"); /* files in sorted order */
	assert_string_equal(ids[1], "ticket@1");
	assert_null(ids[2]);
	sl_diags_free(&d);
	assert_int_equal(sl_contracts_check_refs(r, &d), 0);
	struct sl_schema *t = sl_contracts_get(r, "ticket@1");
	INVALID(t, "[]");
	VALID(t, "{}");
	sl_diags_free(&d);
	sl_contracts_free(r);
	/* a folder that is not there */
	r = sl_contracts_new();
	assert_int_equal(sl_contracts_load_dir(r, "/nonexistent/contracts", &d), 1);
	sl_diags_free(&d);
	sl_contracts_free(r);
	const char *names[] = {"a_base.json", "b_ticket.json", "c_broken.json", "d_dup.json",
			       "e_noid.json", "f_badid.json", "g_badkw.json", "notes.txt"};
	for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
		char *path = sl_path_join(dir, names[i]);
		unlink(path);
		free(path);
	}
	rmdir(dir);
}

/* ---- threads --------------------------------------------------------------------------------------- */
struct job {
	const struct sl_schema *s;
	json_t *good, *bad;
	int failures;
};

static void *validate_many(void *arg)
{
	struct job *j = arg;
	for (int i = 0; i < 2000; i++) {
		struct sl_verrs errs = {0};
		if (!sl_schema_validate(j->s, j->good, NULL) || sl_schema_validate(j->s, j->bad, &errs) ||
		    errs.n != 2)
			j->failures++;
		sl_verrs_free(&errs);
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"properties\": {\"code\": {\"pattern\": \"^[A-Z]{3}-[0-9]+$\"},"
					 " \"mail\": {\"format\": \"email\"}}, \"unevaluatedProperties\": false}");
	pthread_t th[4];
	struct job jobs[4];
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct job){s, J("{\"code\": \"ABC-12\", \"mail\": \"a@b.c\"}"),
				       J("{\"code\": \"abc\", \"mail\": \"a@b.c\", \"x\": 1}"), 0};
		assert_int_equal(pthread_create(&th[i], NULL, validate_many, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(jobs[i].failures, 0);
		json_decref(jobs[i].good);
		json_decref(jobs[i].bad);
	}
	sl_contracts_free(r);
}

/* ---- limits and handles ---------------------------------------------------------------------- */
static char *nested(const char *open, const char *mid, const char *close, int depth)
{
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_FILE);
	for (int i = 0; i < depth; i++)
		sl_buf_adds(&b, open);
	sl_buf_adds(&b, mid);
	for (int i = 0; i < depth; i++)
		sl_buf_adds(&b, close);
	return sl_buf_detach(&b);
}

static void test_limits(void **state)
{
	(void)state;
	struct sl_contracts *r = sl_contracts_new();
	struct sl_schema *s = compile(r, "{\"items\": {\"$ref\": \"#\"}}");
	/* two evaluation levels per array level (items, then the $ref) */
	char *deep = nested("[", "1", "]", 200);
	VALID(s, deep);
	free(deep);
	deep = nested("[", "1", "]", 1000);
	json_t *x = J(deep);
	struct sl_verrs errs = {0};
	assert_false(sl_schema_validate(s, x, &errs));
	assert_non_null(strstr(errs.v[0].msg, "deeper than"));
	sl_verrs_free(&errs);
	json_decref(x);
	free(deep);
	/* a schema nested past the limit is refused, not a stack overflow */
	char *schema = nested("{\"not\": ", "true", "}", 1000);
	json_t *js = J(schema);
	struct sl_err err;
	sl_err_clear(&err);
	assert_null(sl_contracts_compile(r, js, "deep.json", &err));
	assert_non_null(strstr(err.msg, "nested too deeply"));
	json_decref(js);
	free(schema);
	/* compiling a registered document again gives its handle */
	assert_int_equal(add(r, "{\"$id\": \"same@1\", \"type\": \"string\"}", &err), 0);
	js = J("{\"$id\": \"same@1\", \"type\": \"string\"}");
	assert_ptr_equal(sl_contracts_compile(r, js, "again.json", &err), sl_contracts_get(r, "same@1"));
	json_decref(js);
	js = J("{\"$id\": \"same@1\", \"type\": \"integer\"}");
	assert_null(sl_contracts_compile(r, js, "other.json", &err));
	json_decref(js);
	sl_contracts_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type),
		cmocka_unit_test(test_enum_const),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_objects),
		cmocka_unit_test(test_combinators),
		cmocka_unit_test(test_unevaluated),
		cmocka_unit_test(test_ref_local),
		cmocka_unit_test(test_ref_registry),
		cmocka_unit_test(test_add_rollback),
		cmocka_unit_test(test_dynamic_ref),
		cmocka_unit_test(test_pii),
		cmocka_unit_test(test_error_collection),
		cmocka_unit_test(test_compile_errors),
		cmocka_unit_test(test_load_dir),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests_name("contract", tests, NULL, NULL);
}
