/*
 * contract: versioned data contracts as JSON Schema (draft 2020-12).
 *
 * A project's contracts/ folder holds one schema per file, each with
 * "$id": "NAME@VERSION" (for example "inbound_email@1"). A registry holds
 * them; "$ref" resolves within a document ("#/$defs/x", "#anchor") and across
 * the registry ("other@2", "other@2#/$defs/x", and absolute URIs by $id).
 *
 * Validation collects every error (not just the first), each naming the JSON
 * pointer of the failing value and the schema keyword.
 *
 * Thread safety: a registry is built at load and then only read; validation
 * of different instances may run on several threads at once.
 */
#ifndef SL_CONTRACT_H
#define SL_CONTRACT_H

#include <jansson.h>
#include <stdbool.h>

#include "util/util.h"

struct sl_contracts; /* the registry */

/* One validation error. */
struct sl_verr {
	char *pointer; /* JSON pointer of the failing instance value, "" = root; owned */
	char *keyword; /* "required", "type", ...; owned */
	char *msg;     /* human readable; owned */
};
struct sl_verrs {
	struct sl_verr *v;
	size_t n, cap;
	size_t max; /* stop collecting after this many (0 = 100) */
};
void sl_verrs_free(struct sl_verrs *e);
/* "/subject: is required" lines joined by "; " (owned). */
char *sl_verrs_join(const struct sl_verrs *e);

struct sl_contracts *sl_contracts_new(void);
void sl_contracts_free(struct sl_contracts *r);

/* Adds a schema document (takes a reference: json_incref is done inside).
 * source names the file for error messages. Fails when the document is not a
 * valid schema (bad keyword values, a pattern that PCRE2 cannot compile) or
 * when its $id is already registered. A document without $id is allowed only
 * through sl_contracts_compile (anonymous). */
int sl_contracts_add(struct sl_contracts *r, json_t *schema, const char *source, struct sl_err *err);

/* Whether "format" is an assertion (the default: Sluice contracts reject a
 * "from" that is not an e-mail address) or, as the JSON Schema 2020-12
 * specification has it by default, an annotation only. Checked at
 * validation time; set it before validations start. */
void sl_contracts_set_format_assert(struct sl_contracts *r, bool on);

/* Reads every *.json file in dir. Errors go to diags (FILE:LINE:COL where
 * known); returns the number of files that failed. */
int sl_contracts_load_dir(struct sl_contracts *r, const char *dir, struct sl_diags *diags);

/* After all documents are added: checks that every $ref resolves. Errors go
 * to diags; returns how many. */
int sl_contracts_check_refs(struct sl_contracts *r, struct sl_diags *diags);

/* A compiled schema handle; borrowed from the registry (freed with it). */
struct sl_schema;

/* Looks up "name@version" (or any registered $id / URI). NULL when unknown. */
struct sl_schema *sl_contracts_get(struct sl_contracts *r, const char *id);
/* Lists the registered ids (NULL-terminated array owned by the registry). */
const char *const *sl_contracts_ids(struct sl_contracts *r);
/* Compiles an anonymous schema (as `sluice validate` does for a file given
 * on the command line); the handle is owned by the registry. */
struct sl_schema *sl_contracts_compile(struct sl_contracts *r, json_t *schema, const char *source,
				       struct sl_err *err);

/* Validates instance (borrowed) against schema. Returns true when valid;
 * otherwise false with errors appended to errs (which may be NULL when only
 * the verdict is wanted: faster). */
bool sl_schema_validate(const struct sl_schema *s, const json_t *instance, struct sl_verrs *errs);

/* The JSON pointers of the schema's properties annotated "x-pii": true
 * (through properties, items, $ref; "/ *" stands for any array item), as a
 * NULL-terminated array owned by the registry. */
const char *const *sl_schema_pii_paths(const struct sl_schema *s);
/* The values at those paths in instance (an owned array, maybe empty):
 * what must be masked before text leaves for an external model. */
json_t *sl_schema_pii_values(const struct sl_schema *s, const json_t *instance);

/* The schema document (borrowed). */
const json_t *sl_schema_json(const struct sl_schema *s);
const char *sl_schema_id(const struct sl_schema *s);

#endif
