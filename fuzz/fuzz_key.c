/* fuzz_key: what a caller sends as a bearer token (sl_key_parse) and as a
 * key's expiry (sl_key_expiry_parse). They must never crash; a token that
 * parses must rebuild to itself from its id and secret. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	char id[SL_KEY_ID_LEN + 1], secret[SL_KEY_SECRET_LEN + 1];
	if (sl_key_parse(s, id, secret) == 0) {
		char back[SL_KEY_MAX + 1];
		snprintf(back, sizeof back, SL_KEY_PREFIX "%s_%s", id, secret);
		if (strcmp(back, s) != 0)
			abort();
		char h[SL_KEY_HASH_LEN + 1];
		sl_key_hash(secret, h);
		if (!sl_key_hash_equal(h, h))
			abort();
	}
	int64_t at;
	(void)sl_key_expiry_parse(s, 1800000000000LL, &at);
	free(s);
	return 0;
}
