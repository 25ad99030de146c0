/*
 * pii.c: finds personal data in free text for masking, on the pattern
 * extractors of the local models (local.h): e-mail addresses, phone
 * numbers and IBANs.
 */
#include <stdlib.h>

#include "ai/ai_int.h"
#include "ai/local.h"

void ai_pii_scan(const char *text, void (*fn)(const char *kind, const char *text, size_t off, size_t len, void *ud),
		 void *ud)
{
	struct local_span *spans = NULL;
	size_t n = 0;
	if (!text || local_pii_spans(text, &spans, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++)
		fn(local_kind_name(spans[i].kind), text, spans[i].off, spans[i].len, ud);
	free(spans);
}
