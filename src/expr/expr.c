/*
 * expr.c: jq expressions on libjq 1.6.
 *
 * A jq_state holds a compiled program and its execution stack, so it serves
 * one evaluation at a time. An expression keeps a pool of states behind a
 * mutex: evaluation borrows an idle one and gives it back. When every state
 * is busy on another thread it waits a little for one: an evaluation takes
 * microseconds while compiling takes ~13 ms in libjq 1.6 (it re-parses its
 * builtins). Only a wait past POOL_WAIT_US (a long evaluation elsewhere)
 * compiles one more state.
 *
 * libjq 1.6 refcounting: every jv argument is consumed unless the function
 * only peeks (jv_get_kind, jv_string_value, jv_number_value,
 * jv_object_iter*, which do not free). jv_copy before passing a value that
 * is still needed. docs/internals/expr.md lists the calls used here.
 */
#include "expr/expr.h"

#include <float.h>
#include <jq.h>
#include <jv.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expr/expr_int.h"

/* A longer expression is a program, not a config value. */
#define EXPR_SRC_MAX (64 * 1024)
/* How long evaluation waits for a busy state before compiling another. */
#define POOL_WAIT_US 2000
/* Compiled in front of every expression (on line 1, so jq's line numbers
 * still match the source). The environment holds secrets (env:NAME), so
 * `env` reads nothing. halt and halt_error are for the jq command line, and
 * libjq 1.6 frees halt_error's message twice (a crash in jq_teardown), so
 * they become empty and error. */
#define EXPR_PRELUDE                                                                     \
	"def env: {}; def halt: empty; def halt_error: error(.); def halt_error($code): error(.); "

struct sl_expr {
	char *src;   /* as written */
	char *prog;  /* EXPR_PRELUDE + src: what jq compiles */
	char *file;  /* origin, for messages */
	int line, col;
	char *what;
	pthread_mutex_t mu; /* guards idle, nidle, nall */
	pthread_cond_t given_back;
	jq_state **idle;    /* capacity nall: every state can be idle at once */
	size_t nidle, nall;
};

/* ---- compiling ----------------------------------------------------------------- */

/* The first error jq reports while compiling, reduced to its message:
 * "jq: error: syntax error, unexpected '|' (Unix shell quoting issues?) at
 * <top-level>, line 1:\n..." becomes "syntax error, unexpected '|'", line 1. */
struct compile_msg {
	bool have;
	int line;
	char text[SL_ERR_MSG_MAX / 2];
};

static void cut(char *s, const char *needle)
{
	char *p = strstr(s, needle);
	if (p)
		*p = '\0';
}

static void compile_error_cb(void *ud, jv msg)
{
	struct compile_msg *cm = ud;
	if (cm && !cm->have && jv_get_kind(msg) == JV_KIND_STRING) {
		const char *s = jv_string_value(msg);
		if (strncmp(s, "jq: error: ", 11) == 0)
			s += 11;
		snprintf(cm->text, sizeof cm->text, "%s", s);
		char *at = strstr(cm->text, " at <top-level>, line ");
		if (at) {
			cm->line = (int)strtol(at + 22, NULL, 10);
			*at = '\0';
		}
		cut(cm->text, " (Unix shell quoting issues?)");
		cut(cm->text, "\n");
		cm->have = true;
	}
	jv_free(msg);
}

/* After compiling, jq reports nothing through this callback that we use:
 * runtime errors come back from jq_next. */
static void quiet_cb(void *ud, jv msg)
{
	(void)ud;
	jv_free(msg);
}

/* `debug` output goes to the log at debug level (it may hold run data). */
static void debug_cb(void *ud, jv msg)
{
	(void)ud;
	if (sl_log_enabled(SL_LOG_DEBUG)) {
		char buf[1024];
		jv_dump_string_trunc(jv_copy(msg), buf, sizeof buf);
		sl_log(SL_LOG_DEBUG, "expr", "jq debug", "value", buf, NULL);
	}
	jv_free(msg);
}

static jq_state *state_new(const char *prog, struct compile_msg *cm)
{
	jq_state *jq = jq_init();
	if (!jq)
		return NULL;
	jq_set_error_cb(jq, compile_error_cb, cm);
	jq_set_debug_cb(jq, debug_cb, NULL);
	if (!jq_compile(jq, prog)) {
		jq_teardown(&jq);
		return NULL;
	}
	jq_set_error_cb(jq, quiet_cb, NULL);
	return jq;
}

/* What the source may not use, found with the tokenizer before jq sees it. */
struct forbidden {
	char what[64];
};

static void forbid_var(void *ud, const char *name, size_t len, size_t off)
{
	struct forbidden *f = ud;
	(void)off;
	if (!f->what[0] && len == 3 && memcmp(name, "ENV", 3) == 0)
		snprintf(f->what, sizeof f->what, "$ENV");
}

static void forbid_keyword(void *ud, const char *kw, size_t len, size_t off)
{
	struct forbidden *f = ud;
	(void)off;
	if (!f->what[0] && ((len == 6 && memcmp(kw, "import", 6) == 0) || (len == 7 && memcmp(kw, "include", 7) == 0)))
		snprintf(f->what, sizeof f->what, "%.*s", (int)len, kw);
}

static bool blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return false;
	return true;
}

/* Sets err at the origin with "WHAT: message". */
static int origin_error(const struct sl_expr_origin *o, struct sl_err *err, enum sl_class cls, const char *msg)
{
	const char *what = o && o->what ? o->what : NULL;
	sl_err_clear(err);
	sl_err_setloc(err, SL_EINVAL, o ? o->file : NULL, o ? o->line : 0, o ? o->col : 0, "%s%s%s",
		      what ? what : "", what ? ": " : "", msg);
	if (err)
		err->cls = cls;
	return SL_EINVAL;
}

static int check_source(const char *src, const struct sl_expr_origin *origin, struct sl_err *err)
{
	char msg[256];
	if (!src || blank(src))
		return origin_error(origin, err, SL_CLASS_NONE, "empty jq expression");
	if (strlen(src) > EXPR_SRC_MAX) {
		snprintf(msg, sizeof msg, "jq expression longer than %d bytes", EXPR_SRC_MAX);
		return origin_error(origin, err, SL_CLASS_NONE, msg);
	}
	struct forbidden f = {{0}};
	struct expr_scan_cb cb = {.var_fn = forbid_var, .keyword_fn = forbid_keyword, .ud = &f};
	expr_scan(src, &cb);
	if (f.what[0]) {
		snprintf(msg, sizeof msg, "jq: %s is not available (%s)", f.what,
			 f.what[0] == '$' ? "the environment holds secrets" : "jq modules are not supported");
		return origin_error(origin, err, SL_CLASS_NONE, msg);
	}
	return 0;
}

struct sl_expr *sl_expr_compile(const char *src, const struct sl_expr_origin *origin, struct sl_err *err)
{
	if (check_source(src, origin, err))
		return NULL;
	char *prog = sl_asprintf("%s%s", EXPR_PRELUDE, src);
	struct compile_msg cm = {0};
	jq_state *jq = state_new(prog, &cm);
	if (!jq) {
		free(prog);
		char msg[SL_ERR_MSG_MAX];
		snprintf(msg, sizeof msg, "jq: %s", cm.have ? cm.text : "does not compile");
		/* The prelude is on line 1 too, so jq's line is the expression's:
		 * point at that line of a multi-line (block scalar) expression. */
		struct sl_expr_origin at = origin ? *origin : (struct sl_expr_origin){0};
		if (cm.line > 1 && at.line > 0)
			at.line += cm.line - 1;
		origin_error(&at, err, SL_CLASS_NONE, msg);
		return NULL;
	}
	struct sl_expr *e = sl_xcalloc(1, sizeof *e);
	e->src = sl_strdup(src);
	e->prog = prog;
	e->file = sl_strdup(origin && origin->file ? origin->file : "");
	e->line = origin ? origin->line : 0;
	e->col = origin ? origin->col : 0;
	e->what = origin && origin->what ? sl_strdup(origin->what) : NULL;
	pthread_mutex_init(&e->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->given_back, &ca);
	pthread_condattr_destroy(&ca);
	e->idle = sl_xcalloc(1, sizeof *e->idle);
	e->idle[0] = jq;
	e->nidle = e->nall = 1;
	return e;
}

void sl_expr_free(struct sl_expr *e)
{
	if (!e)
		return;
	/* Every borrowed state has been given back: evaluation is synchronous. */
	SL_ASSERT(e->nidle == e->nall);
	for (size_t i = 0; i < e->nidle; i++)
		jq_teardown(&e->idle[i]);
	free(e->idle);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->given_back);
	free(e->src);
	free(e->prog);
	free(e->file);
	free(e->what);
	free(e);
}

const char *sl_expr_source(const struct sl_expr *e)
{
	return e ? e->src : NULL;
}

/* ---- the pool -------------------------------------------------------------------- */

static jq_state *pool_get(struct sl_expr *e)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += POOL_WAIT_US * 1000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&e->mu);
	while (!e->nidle)
		if (pthread_cond_timedwait(&e->given_back, &e->mu, &until) != 0)
			break;
	jq_state *jq = e->nidle ? e->idle[--e->nidle] : NULL;
	pthread_mutex_unlock(&e->mu);
	if (jq)
		return jq;
	/* All busy: compile another outside the lock (it takes milliseconds). */
	jq = state_new(e->prog, NULL);
	if (!jq)
		return NULL;
	pthread_mutex_lock(&e->mu);
	e->nall++;
	e->idle = sl_xrealloc(e->idle, e->nall * sizeof *e->idle);
	pthread_mutex_unlock(&e->mu);
	return jq;
}

static void pool_put(struct sl_expr *e, jq_state *jq)
{
	/* Restarting on null drops the references the state holds to the last
	 * input and its stack, so a pooled state does not pin a large run. */
	jq_start(jq, jv_null(), 0);
	pthread_mutex_lock(&e->mu);
	e->idle[e->nidle++] = jq;
	pthread_cond_signal(&e->given_back);
	pthread_mutex_unlock(&e->mu);
}

/* ---- json_t <-> jv, by walking (no text in between) -------------------------------- */

static jv json_to_jv(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		jv o = jv_object();
		const char *k;
		size_t klen;
		json_t *v;
		json_object_keylen_foreach((json_t *)j, k, klen, v)
			o = jv_object_set(o, jv_string_sized(k, (int)klen), json_to_jv(v));
		return o;
	}
	case JSON_ARRAY: {
		jv a = jv_array();
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v)
			a = jv_array_append(a, json_to_jv(v));
		return a;
	}
	case JSON_STRING: return jv_string_sized(json_string_value(j), (int)json_string_length(j));
	case JSON_INTEGER: return jv_number((double)json_integer_value(j)); /* past 2^53 precision goes */
	case JSON_REAL: return jv_number(json_real_value(j));
	case JSON_TRUE: return jv_true();
	case JSON_FALSE: return jv_false();
	case JSON_NULL: return jv_null();
	}
	return jv_null();
}

/* jq numbers are doubles. Whole numbers become JSON integers (so 3 prints
 * as 3, not 3.0); NaN becomes null and infinities the largest double, as
 * jq itself prints them. */
static json_t *number_to_json(double d)
{
	if (isnan(d))
		return json_null();
	if (isinf(d))
		return json_real(d > 0 ? DBL_MAX : -DBL_MAX);
	if (d == trunc(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
		return json_integer((json_int_t)d);
	return json_real(d);
}

/* Consumes v. */
static json_t *jv_to_json(jv v)
{
	json_t *out;
	switch (jv_get_kind(v)) {
	case JV_KIND_TRUE: out = json_true(); break;
	case JV_KIND_FALSE: out = json_false(); break;
	case JV_KIND_NUMBER: out = number_to_json(jv_number_value(v)); break;
	case JV_KIND_STRING:
		out = json_stringn_nocheck(jv_string_value(v), (size_t)jv_string_length_bytes(jv_copy(v)));
		break;
	case JV_KIND_ARRAY: {
		out = json_array();
		int n = jv_array_length(jv_copy(v));
		for (int i = 0; i < n; i++)
			json_array_append_new(out, jv_to_json(jv_array_get(jv_copy(v), i)));
		break;
	}
	case JV_KIND_OBJECT:
		out = json_object();
		for (int it = jv_object_iter(v); jv_object_iter_valid(v, it); it = jv_object_iter_next(v, it)) {
			jv k = jv_object_iter_key(v, it);
			json_object_setn_new_nocheck(out, jv_string_value(k), (size_t)jv_string_length_bytes(jv_copy(k)),
						     jv_to_json(jv_object_iter_value(v, it)));
			jv_free(k);
		}
		break;
	default: out = json_null(); break; /* invalid never reaches here */
	}
	jv_free(v);
	return out ? out : json_null();
}

/* ---- evaluation ----------------------------------------------------------------------- */

static int eval_error(const struct sl_expr *e, const char *text, struct sl_err *err)
{
	struct sl_expr_origin o = {.file = e->file, .line = e->line, .col = e->col, .what = e->what};
	return origin_error(&o, err, SL_CLASS_PERMANENT, text);
}

/* Consumes msg: error("x") gives "x"; error({..}) gives its JSON text. */
static int runtime_error(const struct sl_expr *e, jv msg, struct sl_err *err)
{
	char text[SL_ERR_MSG_MAX / 2];
	if (jv_get_kind(msg) == JV_KIND_STRING) {
		snprintf(text, sizeof text, "jq error: %s", jv_string_value(msg));
		jv_free(msg);
	} else {
		char dump[SL_ERR_MSG_MAX / 2 - 32];
		jv_dump_string_trunc(msg, dump, sizeof dump);
		snprintf(text, sizeof text, "jq error: %s (not a string)", dump);
	}
	return eval_error(e, text, err);
}

int sl_expr_eval(struct sl_expr *e, const json_t *input, json_t **out, struct sl_err *err)
{
	*out = NULL;
	jq_state *jq = pool_get(e);
	if (!jq)
		return eval_error(e, "out of memory compiling another jq state", err);
	jq_start(jq, input ? json_to_jv(input) : jv_null(), 0);
	jv r = jq_next(jq);
	int rc = 0;
	if (jv_is_valid(r)) {
		*out = jv_to_json(r);
	} else if (jv_invalid_has_msg(jv_copy(r))) {
		rc = runtime_error(e, jv_invalid_get_msg(r), err);
	} else {
		jv_free(r);
		*out = json_null(); /* no output */
	}
	pool_put(e, jq);
	return rc;
}

int sl_expr_eval_bool(struct sl_expr *e, const json_t *input, bool *out, struct sl_err *err)
{
	json_t *v = NULL;
	*out = false;
	int rc = sl_expr_eval(e, input, &v, err);
	if (rc)
		return rc;
	*out = !(json_is_null(v) || json_is_false(v));
	json_decref(v);
	return 0;
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "a value";
}

int sl_expr_eval_string(struct sl_expr *e, const json_t *input, char **out, struct sl_err *err)
{
	json_t *v = NULL;
	*out = NULL;
	int rc = sl_expr_eval(e, input, &v, err);
	if (rc)
		return rc;
	if (!json_is_string(v)) {
		char msg[128];
		snprintf(msg, sizeof msg, "expected a string, got %s", json_type_name(v));
		json_decref(v);
		return eval_error(e, msg, err);
	}
	*out = sl_strndup(json_string_value(v), json_string_length(v));
	json_decref(v);
	return 0;
}
