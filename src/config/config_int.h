/*
 * config_int.h: private to src/config/.
 */
#ifndef SL_CONFIG_INT_H
#define SL_CONFIG_INT_H

#include <jansson.h>
#include <stdarg.h>

#include "config/config.h"

/* Limits on what a config file may hold. */
#define CONF_FILE_MAX (4 * 1024 * 1024) /* one YAML file */
#define CONF_PTR_MAX 1024               /* a JSON pointer into one */
#define PROMPT_FILE_MAX (1024 * 1024)

/* ---- yaml.c --------------------------------------------------------------------- */
/* Appends a JSON pointer segment (~ and / escaped) to b. */
void conf_ptr_append(struct sl_buf *b, const char *seg, size_t len);
/* "PARENT/SEG" into out (cut at CONF_PTR_MAX). */
void conf_ptr(char out[CONF_PTR_MAX], const char *parent, const char *seg);
void conf_ptr_index(char out[CONF_PTR_MAX], const char *parent, size_t index);

/* ---- check.c: a block of YAML checked against its key table ---------------------- */
/* Where messages go while one file is checked. */
struct conf_file {
	const char *file;
	const struct sl_locmap *locs;
	struct sl_diags *diags;
	int nerrors;
};
/* An error at the value of pointer. */
void conf_err(struct conf_file *cf, const char *pointer, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error at the key of pointer (unknown keys, duplicate ids). */
void conf_err_key(struct conf_file *cf, const char *pointer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void conf_pos(const struct conf_file *cf, const char *pointer, int *line, int *col);
/* Checks obj's keys against keys: unknown keys (at the key, with "did you
 * mean"), wrong types, missing required keys. block names the block in
 * messages ("step", "workflow", "retry"). Returns the number of problems.
 * Keys with a wrong type are reported here, so getters can skip them quietly. */
int conf_check_keys(struct conf_file *cf, const json_t *obj, const char *pointer, const char *block,
		    const struct sl_conf_key *keys);
/* "a string", "an integer", ... for messages. */
const char *conf_kind(const json_t *v);
/* Whether v suits type t (the same rule conf_check_keys applies). */
bool conf_type_ok(enum sl_conf_type t, const json_t *v);
const char *conf_type_want(enum sl_conf_type t);
/* Typed getters: the value, or def when absent or of the wrong type. */
const char *conf_str(const json_t *obj, const char *key, const char *def);
int64_t conf_duration(const json_t *v, int64_t def);

/* ---- workflow.c ------------------------------------------------------------------ */
/* What the project loader knows while a workflow compiles. */
struct wf_env {
	const struct sl_project *p;
	const char *const *broken_connectors; /* failed to load: calls to them are not re-reported */
};
/* Builds a workflow from its parsed document; reports through cf. Returns
 * owned (refs = 1) or NULL when cf->nerrors grew. Takes nothing. */
struct sl_workflow *wf_build(const struct wf_env *env, struct conf_file *cf, const char *source, const json_t *doc);
/* Position of step i's `emit` value (for cycle messages) from its locmap. */
void wf_emit_pos(const struct conf_file *cf, size_t step, int *line, int *col);

#endif
