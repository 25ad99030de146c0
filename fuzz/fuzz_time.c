/* fuzz_time: the parsers of times and durations that read outside input
 * (RFC 3339 in payloads and `wait: {until: ...}`, durations in YAML,
 * Retry-After headers from remote APIs). They must never crash, and a
 * parsed time must format and parse back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connector/connector.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t v;
	if (sl_time_parse(s, &v) == 0 && v >= 0 && v < 253402300800000LL) {
		char out[32];
		int64_t back;
		sl_time_format(v, out);
		if (sl_time_parse(out, &back) != 0 || back != v)
			abort();
	}
	(void)sl_parse_duration_ms(s, &v);
	(void)sl_retry_after_parse(s, 1700000000000LL);
	(void)sl_parse_i64(s, &v);
	free(s);
	return 0;
}
