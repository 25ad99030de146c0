/*
 * test_obs.c: the metrics registry and its Prometheus text: counters,
 * gauges, histograms (cumulative buckets, +Inf, _sum, _count), label
 * escaping, the bound on series, collectors, and many threads at once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "obs/obs.h"

static int reset(void **state)
{
	(void)state;
	sl_metrics_reset();
	return 0;
}

static void expect_line(const char *text, const char *line)
{
	char *want = sl_asprintf("\n%s\n", line);
	if (!strstr(text, want))
		fail_msg("missing line: %s\nin:\n%s", line, text);
	free(want);
}

static void test_counter_and_gauge(void **state)
{
	(void)state;
	const char *l[] = {"support-triage", "webhook"};
	sl_metric_add(SL_M_RUNS_STARTED, l, 1);
	sl_metric_add(SL_M_RUNS_STARTED, l, 2);
	sl_metric_add(SL_M_RUNS_STARTED, l, -5); /* a counter never goes down */
	sl_metric_set(SL_M_DLQ_SIZE, NULL, 7);
	char *t = sl_metrics_render();
	expect_line(t, "# TYPE sluice_runs_started_total counter");
	expect_line(t, "sluice_runs_started_total{workflow=\"support-triage\",trigger=\"webhook\"} 3");
	expect_line(t, "# TYPE sluice_dlq_entries gauge");
	expect_line(t, "sluice_dlq_entries 7");
	/* a labelled family with no series is left out, an unlabelled one shows 0 */
	assert_null(strstr(t, "sluice_dead_letters_total"));
	expect_line(t, "sluice_leases_held 0");
	free(t);
}

static void test_histogram(void **state)
{
	(void)state;
	const char *l[] = {"wf", "call"};
	sl_metric_observe(SL_M_STEP_DURATION, l, 0.003);
	sl_metric_observe(SL_M_STEP_DURATION, l, 0.2);
	sl_metric_observe(SL_M_STEP_DURATION, l, 100); /* past the last bucket */
	char *t = sl_metrics_render();
	expect_line(t, "# TYPE sluice_step_duration_seconds histogram");
	expect_line(t, "sluice_step_duration_seconds_bucket{workflow=\"wf\",kind=\"call\",le=\"0.0025\"} 0");
	expect_line(t, "sluice_step_duration_seconds_bucket{workflow=\"wf\",kind=\"call\",le=\"0.005\"} 1");
	expect_line(t, "sluice_step_duration_seconds_bucket{workflow=\"wf\",kind=\"call\",le=\"0.25\"} 2");
	expect_line(t, "sluice_step_duration_seconds_bucket{workflow=\"wf\",kind=\"call\",le=\"60\"} 2");
	expect_line(t, "sluice_step_duration_seconds_bucket{workflow=\"wf\",kind=\"call\",le=\"+Inf\"} 3");
	expect_line(t, "sluice_step_duration_seconds_sum{workflow=\"wf\",kind=\"call\"} 100.203");
	expect_line(t, "sluice_step_duration_seconds_count{workflow=\"wf\",kind=\"call\"} 3");
	free(t);
}

/* Approval waits are measured in a person's time: minutes to a week. */
static void test_human_histogram(void **state)
{
	(void)state;
	const char *l[] = {"approval"};
	sl_metric_observe(SL_M_APPROVAL_WAIT, l, 600);
	sl_metric_observe(SL_M_APPROVAL_WAIT, l, 2 * 86400);
	char *t = sl_metrics_render();
	expect_line(t, "sluice_approval_wait_seconds_bucket{kind=\"approval\",le=\"300\"} 0");
	expect_line(t, "sluice_approval_wait_seconds_bucket{kind=\"approval\",le=\"900\"} 1");
	expect_line(t, "sluice_approval_wait_seconds_bucket{kind=\"approval\",le=\"172800\"} 2");
	expect_line(t, "sluice_approval_wait_seconds_bucket{kind=\"approval\",le=\"604800\"} 2");
	expect_line(t, "sluice_approval_wait_seconds_bucket{kind=\"approval\",le=\"+Inf\"} 2");
	assert_null(strstr(t, "sluice_approval_wait_seconds_bucket{kind=\"approval\",le=\"0.0005\"}"));
	free(t);
}

static void test_label_escaping(void **state)
{
	(void)state;
	const char *l[] = {"a\"b\\c\nd"};
	sl_metric_add(SL_M_DEAD_LETTERS, l, 1);
	char *t = sl_metrics_render();
	expect_line(t, "sluice_dead_letters_total{workflow=\"a\\\"b\\\\c\\nd\"} 1");
	free(t);
}

static void test_series_bounded(void **state)
{
	(void)state;
	for (int i = 0; i < SL_METRIC_SERIES_MAX + 500; i++) {
		char wf[32];
		snprintf(wf, sizeof wf, "wf%d", i);
		const char *l[] = {wf};
		sl_metric_add(SL_M_DEAD_LETTERS, l, 1);
	}
	char *t = sl_metrics_render();
	expect_line(t, "sluice_dead_letters_total{workflow=\"_other\"} 500");
	size_t lines = 0;
	for (const char *p = t; (p = strstr(p, "sluice_dead_letters_total{")); p++)
		lines++;
	assert_int_equal(lines, SL_METRIC_SERIES_MAX + 1);
	free(t);
}

static int collected;
static void collector(void *ud)
{
	collected++;
	sl_metric_set(SL_M_LEASES_HELD, NULL, *(double *)ud);
}

static void test_collectors(void **state)
{
	(void)state;
	double held = 3;
	collected = 0;
	sl_metrics_collector_add(collector, &held);
	char *t = sl_metrics_render();
	expect_line(t, "sluice_leases_held 3");
	free(t);
	sl_metrics_collector_remove(collector, &held);
	free(sl_metrics_render());
	assert_int_equal(collected, 1);
}

static void *hammer(void *arg)
{
	(void)arg;
	const char *l[] = {"r", "m", "ok"};
	for (int i = 0; i < 10000; i++)
		sl_metric_add(SL_M_AI_CALLS, l, 1);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	char *t = sl_metrics_render();
	expect_line(t, "sluice_ai_calls_total{route=\"r\",model=\"m\",outcome=\"ok\"} 40000");
	free(t);
}

static json_t *outputs(int billing, int bug, double conf)
{
	json_t *a = json_array();
	for (int i = 0; i < billing + bug; i++)
		json_array_append_new(a, json_pack("{s:s, s:f}", "label", i < billing ? "billing" : "bug", "confidence",
						   conf));
	return a;
}

static void test_drift(void **state)
{
	(void)state;
	json_t *base = outputs(75, 25, 0.9), *same = outputs(30, 10, 0.9), *moved = outputs(5, 35, 0.9);
	json_t *r = sl_drift_compare(same, base, 0.25, 30);
	assert_false(json_is_true(json_object_get(r, "drifted")));
	assert_true(json_number_value(json_object_get(json_object_get(r, "psi"), "label")) < 0.05);
	json_decref(r);
	r = sl_drift_compare(moved, base, 0.25, 30);
	assert_true(json_is_true(json_object_get(r, "drifted")));
	assert_string_equal(json_string_value(json_object_get(r, "signal")), "label");
	json_decref(r);
	/* the same labels, less sure of them: the confidence moved */
	json_t *unsure = outputs(30, 10, 0.35);
	r = sl_drift_compare(unsure, base, 0.25, 30);
	assert_string_equal(json_string_value(json_object_get(r, "signal")), "confidence");
	json_decref(r);
	/* too little evidence: never drifted, and says why */
	json_t *few = outputs(1, 9, 0.9);
	r = sl_drift_compare(few, base, 0.25, 30);
	assert_false(json_is_true(json_object_get(r, "drifted")));
	assert_non_null(json_object_get(r, "note"));
	json_decref(r);
	/* free text: the length distribution */
	json_t *short_t = json_array(), *long_t = json_array();
	for (int i = 0; i < 40; i++) {
		json_array_append_new(short_t, json_pack("{s:s}", "text", "ok"));
		json_array_append_new(long_t, json_pack("{s:s}", "text",
							"a much longer answer that goes on and on about the ticket "
							"and what to do about it, several sentences long"));
	}
	r = sl_drift_compare(long_t, short_t, 0.25, 30);
	assert_string_equal(json_string_value(json_object_get(r, "signal")), "length");
	json_decref(r);
	json_decref(base);
	json_decref(same);
	json_decref(moved);
	json_decref(unsure);
	json_decref(few);
	json_decref(short_t);
	json_decref(long_t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_counter_and_gauge, reset),
		cmocka_unit_test_setup(test_histogram, reset),
		cmocka_unit_test_setup(test_human_histogram, reset),
		cmocka_unit_test_setup(test_label_escaping, reset),
		cmocka_unit_test_setup(test_series_bounded, reset),
		cmocka_unit_test_setup(test_collectors, reset),
		cmocka_unit_test_setup(test_threads, reset),
		cmocka_unit_test(test_drift),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
