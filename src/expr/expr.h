/*
 * expr: jq expressions (libjq), compiled once at load, evaluated many times.
 *
 * Values are jansson json_t everywhere in Sluice; this module converts to
 * and from jq's jv. A jq_state is not thread-safe, so an expression keeps a
 * small pool of compiled states: evaluation borrows one (compiling another
 * only when every pooled state is in use on another thread) and gives it back.
 */
#ifndef SL_EXPR_H
#define SL_EXPR_H

#include <jansson.h>
#include <stdbool.h>

#include "util/util.h"

struct sl_expr;

/* Where an expression came from, for error messages: a runtime error says
 * "workflows/x.yaml:12:11: step classify: jq error: ...". All borrowed and
 * copied inside. */
struct sl_expr_origin {
	const char *file;
	int line, col;
	const char *what; /* "step ticket: map", "step update: when", ... */
};

/* Compiles src. Returns NULL with err set (message from jq, position from
 * origin) when src does not compile. Returns owned; free with sl_expr_free.
 * Expressions cannot read the process environment, where secrets live:
 * `env` is redefined as {} and `$ENV`, `import` and `include` are refused.
 * Compiling costs a few ms (libjq 1.6 compiles its builtins each time). */
struct sl_expr *sl_expr_compile(const char *src, const struct sl_expr_origin *origin, struct sl_err *err);
void sl_expr_free(struct sl_expr *e);
const char *sl_expr_source(const struct sl_expr *e);

/* Evaluates against input (borrowed). On success *out is the first output
 * (owned; json null when the program emits nothing). A runtime error sets err
 * with class SL_CLASS_PERMANENT and the origin, and returns SL_EINVAL.
 * Thread-safe. */
int sl_expr_eval(struct sl_expr *e, const json_t *input, json_t **out, struct sl_err *err);

/* Evaluates as a condition: jq truthiness of the first output (false and
 * null are false; no output is false). */
int sl_expr_eval_bool(struct sl_expr *e, const json_t *input, bool *out, struct sl_err *err);

/* Evaluates and requires a string result (ids, keys, URLs). Owned result. */
int sl_expr_eval_string(struct sl_expr *e, const json_t *input, char **out, struct sl_err *err);

/* ---- root references (config checks that steps refer to earlier steps) ----
 * Calls fn for every field access in src that reads the run context itself:
 * a `.name` or `."name"` that starts a path while `.` is still the input of
 * the whole expression. `.input.items | map(.price)` yields "input" only:
 * after a top-level `|`, inside a call's parentheses (map(...), select(...),
 * reduce/foreach bodies), inside `def ... ;` and right after `catch`, `.`
 * is something else. A tokenizer, not a parser: it does not report a
 * false reference on valid jq, and may miss some (in `.a as $x | .b`, jq
 * still reads `.b` from the run context; this check does not look there).
 * name is valid during the call only; offset is the byte offset of the `.`
 * in src. */
typedef void (*sl_expr_ref_fn)(void *ud, const char *name, size_t offset);
void sl_expr_refs(const char *src, sl_expr_ref_fn fn, void *ud);

#endif
