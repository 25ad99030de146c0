/*
 * bench_engine: durable steps per second on the SQLite store.
 *
 * For 1-step and 5-step workflows (map steps, so the figure is the engine
 * and the store, not a remote API), with 1 and 2 worker threads, and with
 * group commit (batch 16) against one commit per step (batch 1, the
 * baseline): creates N runs, starts the engine, times until all completed.
 * Every step is committed with synchronous=FULL before the next starts.
 *
 *   bench_engine [RUNS]     (default 2000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/engine.h"
#include "store/store.h"
#include "util/util.h"

static void write_file(const char *dir, const char *name, const char *text)
{
	char *path = sl_path_join(dir, name);
	struct sl_err err;
	if (sl_file_write_atomic(path, text, strlen(text), &err)) {
		fprintf(stderr, "bench: %s\n", err.msg);
		exit(2);
	}
	free(path);
}

static char *make_project(void)
{
	char tmpl[] = "/tmp/sluice-bench.XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir) {
		perror("mkdtemp");
		exit(2);
	}
	dir = sl_strdup(dir);
	char *wf = sl_path_join(dir, "workflows");
	sl_mkdirs(wf, 0755);
	free(wf);
	write_file(dir, "sluice.yaml", "name: bench\n");
	write_file(dir, "workflows/one.yaml",
		   "workflow: one\nversion: 1\nsteps:\n  - id: a\n    map: '{n: .input.n}'\n");
	write_file(dir, "workflows/five.yaml",
		   "workflow: five\nversion: 1\nsteps:\n"
		   "  - id: a\n    map: '{n: .input.n}'\n"
		   "  - id: b\n    map: '{n: (.a.n + 1)}'\n"
		   "  - id: c\n    map: '{n: (.b.n + 1)}'\n"
		   "  - id: d\n    map: '{n: (.c.n + 1)}'\n"
		   "  - id: e\n    map: '{n: (.d.n + 1)}'\n");
	return dir;
}

struct result {
	double create_per_s, steps_per_s;
};

static struct result bench_one(struct sl_project *p, const char *dir, const char *wf, int steps, int workers,
			       int batch, int runs)
{
	struct result r = {0};
	char *db = sl_asprintf("sqlite:%s/bench-%s-%d-%d.db", dir, wf, workers, batch);
	struct sl_store *s = NULL;
	struct sl_engine *e = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_engine_opts eo = {.workers = workers, .batch = batch};
	if (sl_store_open(db, &s, &err) || sl_engine_new(p, s, &eo, &e, &err)) {
		fprintf(stderr, "bench: %s\n", err.msg);
		exit(2);
	}
	int64_t t0 = sl_mono_us();
	for (int i = 0; i < runs; i++) {
		json_t *in = json_pack("{s:i}", "n", i);
		struct sl_start st = {.workflow = wf, .input = in, .trigger = "bench"};
		char id[SL_ID_MAX];
		if (sl_engine_start_run(e, &st, id, NULL, &err)) {
			fprintf(stderr, "bench: %s\n", err.msg);
			exit(2);
		}
		json_decref(in);
	}
	int64_t t1 = sl_mono_us();
	r.create_per_s = runs / ((t1 - t0) / 1e6);
	if (sl_engine_start(e, &err)) {
		fprintf(stderr, "bench: %s\n", err.msg);
		exit(2);
	}
	struct sl_engine_stats stats;
	do {
		usleep(2000);
		sl_engine_stats(e, &stats);
	} while (stats.runs_done < (uint64_t)runs);
	int64_t t2 = sl_mono_us();
	r.steps_per_s = (double)runs * steps / ((t2 - t1) / 1e6);
	sl_engine_free(e);
	sl_store_close(s);
	free(db);
	return r;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 2000;
	if (runs < 10)
		runs = 10;
	sl_log_set_level(SL_LOG_ERROR);
	char *dir = make_project();
	struct sl_project *p = NULL;
	struct sl_diags diags = {0};
	struct sl_load_opts lo = {0};
	if (sl_project_load(dir, &lo, &p, &diags)) {
		sl_diags_print(stderr, &diags, ".", false);
		return 2;
	}
	printf("durable steps per second, SQLite (WAL, synchronous=FULL), %d runs per cell\n\n", runs);
	printf("%-10s %8s %6s %14s %14s\n", "workflow", "workers", "batch", "steps/s", "run starts/s");
	static const struct {
		const char *wf;
		int steps;
	} wfs[] = {{"one", 1}, {"five", 5}};
	static const int worker_counts[] = {1, 2};
	static const int batches[] = {1, 16};
	double base[2][2] = {{0}}, grouped[2][2] = {{0}};
	for (size_t w = 0; w < 2; w++)
		for (size_t k = 0; k < 2; k++)
			for (size_t b = 0; b < 2; b++) {
				int n = wfs[w].steps == 1 ? runs : runs / 2;
				struct result r = bench_one(p, dir, wfs[w].wf, wfs[w].steps, worker_counts[k],
							    batches[b], n);
				printf("%-10s %8d %6d %14.0f %14.0f\n", wfs[w].wf, worker_counts[k], batches[b],
				       r.steps_per_s, r.create_per_s);
				fflush(stdout);
				if (b == 0)
					base[w][k] = r.steps_per_s;
				else
					grouped[w][k] = r.steps_per_s;
			}
	printf("\nratios (baseline: one commit per step, batch 1):\n");
	for (size_t w = 0; w < 2; w++)
		for (size_t k = 0; k < 2; k++)
			printf("  %-5s %d worker%s: group commit x%.1f\n", wfs[w].wf, worker_counts[k],
			       worker_counts[k] == 1 ? " " : "s", grouped[w][k] / base[w][k]);
	printf("  2 workers vs 1 (batch 16): one x%.2f, five x%.2f\n", grouped[0][1] / grouped[0][0],
	       grouped[1][1] / grouped[1][0]);
	sl_project_free(p);
	char *cmd = sl_asprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
	free(cmd);
	free(dir);
	return 0;
}
