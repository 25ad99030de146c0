/*
 * pii.c: finds personal data in free text for masking. Until the pattern
 * extractors land (local_extract.c), only the x-pii values given by the
 * caller are masked.
 */
#include "ai/ai_int.h"

void ai_pii_scan(const char *text, void (*fn)(const char *kind, const char *text, size_t off, size_t len, void *ud),
		 void *ud)
{
	(void)text, (void)fn, (void)ud;
}
