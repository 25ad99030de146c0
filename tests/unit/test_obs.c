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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_counter_and_gauge, reset),
		cmocka_unit_test_setup(test_histogram, reset),
		cmocka_unit_test_setup(test_label_escaping, reset),
		cmocka_unit_test_setup(test_series_bounded, reset),
		cmocka_unit_test_setup(test_collectors, reset),
		cmocka_unit_test_setup(test_threads, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
