/* fuzz_cron: cron expressions come from workflow files and time zone files
 * from the system's tzdata; neither may crash the scheduler. The first byte
 * chooses: even, the rest is a cron expression, whose next slots (in UTC
 * and in a zone read from the same bytes) must each lie after the instant
 * asked about; odd, the rest is read as a TZif file, whose slots must lie after
 * the instant too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int64_t probes[] = {0, 1774746000000LL /* 2026-03-29T01:00Z */, 1792890000000LL, 4102444800000LL};

static void check_next(const struct sl_cron *c, const struct sl_tz *tz)
{
	for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
		int64_t n = sl_cron_next(c, tz, probes[i]);
		if (n != -1 && n <= probes[i])
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		struct sl_tz *tz = sl_tz_parse(data + 1, size - 1);
		if (tz) {
			char err[200];
			struct sl_cron *c = sl_cron_parse("*/7 1-5 * * *", err, sizeof err);
			if (c)
				check_next(c, tz);
			sl_cron_free(c);
			sl_tz_free(tz);
		}
		return 0;
	}
	char *s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	char err[200];
	struct sl_cron *c = sl_cron_parse(s, err, sizeof err);
	if (c) {
		check_next(c, NULL);
		static struct sl_tz *paris;
		if (!paris)
			paris = sl_tz_load("Europe/Paris", err, sizeof err);
		check_next(c, paris);
	}
	sl_cron_free(c);
	free(s);
	return 0;
}
