/* fuzz_contract: the contract module reads schemas from project files and
 * instances from webhooks and model outputs. Input is a schema and an
 * instance, split at the first NUL byte (or, when there is none, at the
 * first newline); both are parsed with jansson, the schema is compiled in a
 * fresh registry and the instance validated twice. It must never crash or
 * leak, and the verdict must not depend on whether errors are collected. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "contract/contract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void use_pii(const struct sl_schema *s)
{
	size_t n = 0;
	for (const char *const *p = sl_schema_pii_paths(s); *p; p++)
		n += strlen(*p);
	(void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *cut = memchr(text, '\0', size);
	if (!cut)
		cut = memchr(text, '\n', size);
	if (!cut)
		return 0;
	size_t slen = (size_t)(cut - text);
	json_error_t je;
	json_t *schema = json_loadb(text, slen, JSON_DECODE_ANY, &je);
	json_t *inst = json_loadb(cut + 1, size - slen - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (schema && inst) {
		struct sl_contracts *r = sl_contracts_new();
		struct sl_err err;
		sl_err_clear(&err);
		struct sl_schema *s = sl_contracts_compile(r, schema, "fuzz.json", &err);
		if (s) {
			struct sl_diags d = {0};
			(void)sl_contracts_check_refs(r, &d);
			sl_diags_free(&d);
			use_pii(s);
			struct sl_verrs errs = {0};
			bool fast = sl_schema_validate(s, inst, NULL);
			bool full = sl_schema_validate(s, inst, &errs);
			if (fast != full || (!full && errs.n == 0))
				abort();
			free(sl_verrs_join(&errs));
			sl_verrs_free(&errs);
		}
		sl_contracts_free(r);
	}
	json_decref(schema);
	json_decref(inst);
	return 0;
}
