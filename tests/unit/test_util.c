/* test_util.c: buffers, durations, times, ids, hashing, secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

static void test_buf_cap_is_sticky(void **state)
{
	(void)state;
	struct sl_buf b;
	sl_buf_init(&b, 8);
	assert_int_equal(sl_buf_adds(&b, "abcd"), 0);
	assert_int_equal(sl_buf_adds(&b, "efghij"), SL_ETOOBIG);
	assert_int_equal(sl_buf_adds(&b, "x"), SL_ETOOBIG); /* sticky */
	assert_string_equal(sl_buf_str(&b), "abcd");
	assert_null(sl_buf_detach(&b));
	sl_buf_init(&b, 1024);
	sl_buf_printf(&b, "%d-%s", 42, "x");
	sl_buf_add_json_str(&b, "a\"b\n\x01");
	assert_string_equal(sl_buf_str(&b), "42-x\"a\\\"b\\n\\u0001\"");
	char *s = sl_buf_detach(&b);
	free(s);
	/* A long printf grows past the small stack buffer. */
	sl_buf_init(&b, 4096);
	char big[1000];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	sl_buf_printf(&b, "%s%s", big, big);
	assert_int_equal(b.len, 1998);
	sl_buf_free(&b);
}

static void test_durations(void **state)
{
	(void)state;
	int64_t v;
	assert_int_equal(sl_parse_duration_ms("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(sl_parse_duration_ms("30s", &v), 0);
	assert_int_equal(v, 30000);
	assert_int_equal(sl_parse_duration_ms("1h30m", &v), 0);
	assert_int_equal(v, 5400000);
	assert_int_equal(sl_parse_duration_ms("2d", &v), 0);
	assert_int_equal(v, 172800000);
	assert_int_equal(sl_parse_duration_ms("1500", &v), 0);
	assert_int_equal(v, 1500);
	assert_int_not_equal(sl_parse_duration_ms("", &v), 0);
	assert_int_not_equal(sl_parse_duration_ms("5x", &v), 0);
	assert_int_not_equal(sl_parse_duration_ms("m", &v), 0);
	assert_int_not_equal(sl_parse_duration_ms("1h5", &v), 0);
	assert_int_not_equal(sl_parse_duration_ms("99999999999999999999s", &v), 0);
}

static void test_times(void **state)
{
	(void)state;
	int64_t ms;
	assert_int_equal(sl_time_parse("1970-01-01T00:00:00Z", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(sl_time_parse("2026-11-23T10:00:00.5+01:00", &ms), 0);
	char out[32];
	sl_time_format(ms, out);
	assert_string_equal(out, "2026-11-23T09:00:00.500Z");
	assert_int_equal(sl_time_parse("2024-02-29T00:00:00Z", &ms), 0);
	assert_int_not_equal(sl_time_parse("2023-02-29T00:00:00Z", &ms), 0);
	assert_int_not_equal(sl_time_parse("2026-13-01T00:00:00Z", &ms), 0);
	assert_int_not_equal(sl_time_parse("2026-11-23 10:00", &ms), 0);
	assert_int_not_equal(sl_time_parse("2026-11-23T10:00:00", &ms), 0); /* no offset */
	sl_clock_set(1234567);
	assert_int_equal(sl_now_ms(), 1234567);
	sl_clock_set(0);
	assert_true(sl_now_ms() > 1700000000000LL);
}

static void test_ids_sort_in_creation_order(void **state)
{
	(void)state;
	char prev[SL_ID_MAX] = "", id[SL_ID_MAX];
	for (int i = 0; i < 2000; i++) {
		sl_id_new("run_", id);
		assert_int_equal(strlen(id), 30);
		assert_true(strcmp(prev, id) < 0);
		memcpy(prev, id, sizeof id);
	}
}

static void test_hashing(void **state)
{
	(void)state;
	char hex[65];
	sl_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	unsigned char mac[32];
	sl_hmac_sha256("key", 3, "The quick brown fox jumps over the lazy dog", 43, mac);
	sl_hex(mac, 32, hex);
	assert_string_equal(hex, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
	assert_true(sl_ct_equal("abc", "abc", 3));
	assert_false(sl_ct_equal("abc", "abd", 3));
}

static void test_did_you_mean(void **state)
{
	(void)state;
	static const char *const keys[] = {"when", "retry", "timeout", "idempotency_key", NULL};
	assert_string_equal(sl_did_you_mean("wehn", keys), "when");
	assert_string_equal(sl_did_you_mean("idempotency_kye", keys), "idempotency_key");
	assert_null(sl_did_you_mean("banana", keys));
	assert_int_equal(sl_edit_distance("kitten", "sitting", 10), 3);
}

static void test_secrets(void **state)
{
	(void)state;
	char *v = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	setenv("SL_TEST_SECRET", "s3cr3t", 1);
	assert_true(sl_secret_is_ref("env:SL_TEST_SECRET"));
	assert_false(sl_secret_is_ref("s3cr3t"));
	assert_int_equal(sl_secret_resolve("env:SL_TEST_SECRET", NULL, &v, &err), 0);
	assert_string_equal(v, "s3cr3t");
	free(v);
	assert_int_not_equal(sl_secret_resolve("env:SL_TEST_MISSING", NULL, &v, &err), 0);
	assert_non_null(strstr(err.msg, "SL_TEST_MISSING"));
	char path[] = "/tmp/sluice-secret.XXXXXX";
	int fd = mkstemp(path);
	assert_true(write(fd, "tok\n", 4) == 4);
	close(fd);
	char *ref = sl_asprintf("file:%s", path);
	assert_int_equal(sl_secret_resolve(ref, NULL, &v, &err), 0);
	assert_string_equal(v, "tok");
	free(v);
	unlink(path);
	assert_int_not_equal(sl_secret_resolve(ref, NULL, &v, &err), 0);
	assert_null(strstr(err.msg, "tok\n"));
	free(ref);
}

static void test_codes_and_classes(void **state)
{
	(void)state;
	assert_string_equal(sl_code_name(SL_ENOTFOUND), "NOTFOUND");
	assert_string_equal(sl_code_message(SL_EFENCED), "lease lost (stale fencing token)");
	assert_string_equal(sl_class_name(SL_CLASS_TRANSIENT), "transient");
	assert_int_equal(sl_class_parse("budget"), SL_CLASS_BUDGET);
	assert_int_equal(sl_class_parse("nope"), -1);
	struct sl_diags d = {0};
	sl_diags_add(&d, "b.yaml", 1, 1, "x");
	sl_diags_add(&d, "a.yaml", 9, 2, "y");
	sl_diags_add(&d, "a.yaml", 3, 5, "z");
	sl_diags_sort(&d);
	assert_string_equal(d.v[0].msg, "z");
	assert_string_equal(d.v[2].file, "b.yaml");
	sl_diags_free(&d);
}

static void test_utc_period_starts(void **state)
{
	(void)state;
	int64_t t = 1795460707123; /* 2026-11-23T19:05:07.123Z */
	assert_int_equal(sl_utc_day_start_ms(t), 1795392000000);   /* 2026-11-23T00:00Z */
	assert_int_equal(sl_utc_month_start_ms(t), 1793491200000); /* 2026-11-01T00:00Z */
	assert_int_equal(sl_utc_month_start_ms(1793491200000), 1793491200000);
}

static void test_trace_ids(void **state)
{
	(void)state;
	char t[33], tp[56];
	sl_trace_id("0af7651916cd43dd8448eb211c80319c", t);
	assert_string_equal(t, "0af7651916cd43dd8448eb211c80319c"); /* from a traceparent: kept */
	sl_trace_id("cor_01M84VHD60CEQCMDGCW41QC8QF", t);
	assert_int_equal(strlen(t), 32);
	char again[33];
	sl_trace_id("cor_01M84VHD60CEQCMDGCW41QC8QF", again);
	assert_string_equal(t, again); /* the same id, the same trace */
	sl_traceparent("cor_x", tp);
	sl_trace_id("cor_x", t);
	assert_int_equal(strlen(tp), 55);
	assert_memory_equal(tp, "00-", 3);
	assert_memory_equal(tp + 3, t, 32);
	assert_string_equal(tp + 52, "-01");
}

/* "at" + "next" in UTC text: the slot after `at`. */
static void next_is(const char *expr, const char *tz, const char *at, const char *want)
{
	char err[200] = "";
	struct sl_cron *c = sl_cron_parse(expr, err, sizeof err);
	if (!c)
		fail_msg("%s: %s", expr, err);
	struct sl_tz *z = NULL;
	if (tz) {
		z = sl_tz_load(tz, err, sizeof err);
		if (!z)
			fail_msg("%s: %s", tz, err);
	}
	int64_t t;
	assert_int_equal(sl_time_parse(at, &t), 0);
	int64_t n = sl_cron_next(c, z, t);
	char got[32] = "never";
	if (n >= 0)
		sl_time_format(n, got);
	if (strcmp(got, want) != 0)
		fail_msg("%s in %s after %s: got %s, want %s", expr, tz ? tz : "UTC", at, got, want);
	sl_cron_free(c);
	sl_tz_free(z);
}

static void bad_cron(const char *expr, const char *want)
{
	char err[200] = "";
	struct sl_cron *c = sl_cron_parse(expr, err, sizeof err);
	if (c)
		fail_msg("'%s' parsed", expr);
	if (!strstr(err, want))
		fail_msg("'%s': '%s' does not say '%s'", expr, err, want);
}

static void test_cron(void **state)
{
	(void)state;
	next_is("*/5 * * * *", NULL, "2026-11-23T10:02:00Z", "2026-11-23T10:05:00.000Z");
	next_is("*/5 * * * *", NULL, "2026-11-23T10:05:00Z", "2026-11-23T10:10:00.000Z");
	next_is("*/5 * * * *", NULL, "2026-11-23T10:04:59.999Z", "2026-11-23T10:05:00.000Z");
	next_is("0 9-17/4 * * mon-fri", NULL, "2026-11-21T12:00:00Z", "2026-11-23T09:00:00.000Z"); /* Sat -> Mon */
	next_is("0 9-17/4 * * MON-FRI", NULL, "2026-11-23T09:00:00Z", "2026-11-23T13:00:00.000Z");
	next_is("30 2 1,15 * *", NULL, "2026-11-02T00:00:00Z", "2026-11-15T02:30:00.000Z");
	next_is("0 0 1 jan *", NULL, "2026-11-02T00:00:00Z", "2027-01-01T00:00:00.000Z");
	next_is("0 0 29 2 *", NULL, "2026-03-01T00:00:00Z", "2028-02-29T00:00:00.000Z");
	next_is("0 0 13 * 5", NULL, "2026-11-01T00:00:00Z", "2026-11-06T00:00:00.000Z"); /* dom OR dow */
	next_is("0 0 * * 7", NULL, "2026-11-23T00:00:00Z", "2026-11-29T00:00:00.000Z");  /* 7 is Sunday */
	next_is("@daily", NULL, "2026-11-23T00:00:00Z", "2026-11-24T00:00:00.000Z");
	next_is("0 0 30 2 *", NULL, "2026-01-01T00:00:00Z", "never");
	/* time zones: Paris is UTC+1 in winter, +2 in summer */
	next_is("0 9 * * *", "Europe/Paris", "2026-11-23T00:00:00Z", "2026-11-23T08:00:00.000Z");
	next_is("0 9 * * *", "Europe/Paris", "2026-07-01T00:00:00Z", "2026-07-01T07:00:00.000Z");
	/* DST starts 2026-03-29 at 01:00 UTC (02:00 -> 03:00): 02:30 does not exist, it fires at 03:30 */
	next_is("30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z", "2026-03-29T01:30:00.000Z");
	next_is("30 2 * * *", "Europe/Paris", "2026-03-29T01:30:00Z", "2026-03-30T00:30:00.000Z");
	/* DST ends 2026-10-25 at 01:00 UTC (03:00 -> 02:00): 02:30 happens twice, fires once */
	next_is("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00.000Z");
	next_is("30 2 * * *", "Europe/Paris", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00.000Z");
	next_is("*/30 * * * *", "Europe/Paris", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00.000Z");
	/* beyond the zone file's transitions (2037): the POSIX footer rules */
	next_is("0 12 * * *", "America/New_York", "2040-07-04T00:00:00Z", "2040-07-04T16:00:00.000Z");
	next_is("0 12 * * *", "America/New_York", "2040-12-04T00:00:00Z", "2040-12-04T17:00:00.000Z");
	next_is("0 12 * * *", "Australia/Sydney", "2040-12-03T12:00:00Z", "2040-12-04T01:00:00.000Z");

	bad_cron("* * * *", "5 fields");
	bad_cron("* * * * * *", "5 fields");
	bad_cron("60 * * * *", "minute: '60' is outside 0-59");
	bad_cron("* 24 * * *", "hour");
	bad_cron("* * 0 * *", "day of month");
	bad_cron("* * * 13 *", "month");
	bad_cron("* * * * 8", "day of week");
	bad_cron("*/0 * * * *", "step of 1 or more");
	bad_cron("5-1 * * * *", "backwards");
	bad_cron("1,,2 * * * *", "minute");
	bad_cron("* * * foo *", "month");
	bad_cron("@often", "unknown");
	char err[200];
	assert_null(sl_tz_load("Mars/Olympus", err, sizeof err));
	assert_non_null(strstr(err, "unknown time zone"));
	assert_null(sl_tz_load("../etc/passwd", err, sizeof err));
	assert_null(sl_tz_parse("TZif2", 5));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_cap_is_sticky),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_ids_sort_in_creation_order),
		cmocka_unit_test(test_hashing),
		cmocka_unit_test(test_did_you_mean),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_codes_and_classes),
		cmocka_unit_test(test_utc_period_starts),
		cmocka_unit_test(test_trace_ids),
		cmocka_unit_test(test_cron),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
