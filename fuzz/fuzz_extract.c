/* fuzz_extract: the pattern extractors (src/ai/local_extract.c) read
 * outside text: e-mail bodies, tickets, documents. They must never crash or
 * hang, every span must lie inside the text, spans must be sorted and not
 * overlap, and the JSON they build must serialise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ai/local.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	size_t len = strlen(s);
	json_t *o = NULL;
	if (local_extract_all(s, &o) != 0 || !o)
		abort();
	char *dump = json_dumps(o, JSON_COMPACT);
	if (!dump)
		abort();
	free(dump);
	json_decref(o);
	struct local_span *sp = NULL;
	size_t n = 0;
	if (local_pii_spans(s, &sp, &n) != 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (sp[i].len == 0 || sp[i].off + sp[i].len > len)
			abort();
		if (i && sp[i].off < sp[i - 1].off + sp[i - 1].len)
			abort();
		if (sp[i].kind != LOCAL_EMAIL && sp[i].kind != LOCAL_PHONE && sp[i].kind != LOCAL_IBAN)
			abort();
	}
	free(sp);
	static json_t *schema;
	if (!schema)
		schema = json_loads("{\"type\":\"object\",\"required\":[\"email\",\"total\"],\"properties\":{"
				    "\"email\":{\"type\":\"string\"},\"total\":{\"type\":\"number\"},\"currency\":{},"
				    "\"due_date\":{\"format\":\"date\"},\"iban\":{},\"invoice_number\":{},"
				    "\"phones\":{\"type\":\"array\"}}}",
				    0, NULL);
	double conf = -1;
	if (local_extract_fill(s, schema, &o, &conf) != 0 || !o || conf < 0 || conf > 1)
		abort();
	json_decref(o);
	free(s);
	return 0;
}
