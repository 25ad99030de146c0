/*
 * bench_audit: what the audit log costs where the engine writes it, measured
 * side by side on one store file so machine noise hits both alike.
 *
 *   1. run creation (one transaction each, as sl_engine_start_run does
 *      when alone): without, then with a run.start entry;
 *   2. a commit batch of 16 steps (one transaction): without entries, then
 *      with one entry per step (what call steps with writes and ai steps add);
 *   3. sl_audit_verify over the log, in entries per second.
 *
 * Rounds alternate (A, B, A, B, ...) and the median of each is printed.
 *
 *   bench_audit [ROUNDS [STORE]]   (default 7, a fresh SQLite file)
 *
 * STORE: a postgres:// URL (a fresh schema of its own, e.g. with
 * ?options=-csearch_path%3DNAME) measures PostgreSQL's log the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gov/audit.h"
#include "store/store.h"
#include "util/util.h"

#define CREATES_PER_ROUND 200
#define BATCHES_PER_ROUND 100
#define BATCH 16

static struct sl_store *s;
static struct sl_err err;

/* CPU time of the process (user + system), µs: steadier than wall time on a
 * shared machine, though it leaves out waiting for the disk. */
static int64_t cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
static double cpu_create[2], cpu_step[2]; /* summed µs, [audit] */

static void die(void)
{
	fprintf(stderr, "bench_audit: %s\n", err.msg);
	exit(2);
}

static json_t *start_entry(void)
{
	json_t *d = json_pack("{s:s, s:i, s:s}", "trigger", "bench", "version", 1, "digest", "d");
	struct sl_audit_entry ae = {.actor = {SL_ACTOR_USER, "bench"}, .action = "run.start",
				    .target = {"workflow", "w"}, .correlation_id = "corr_x", .detail = d};
	json_t *j = sl_audit_entry_json(&ae);
	json_decref(d);
	return j;
}

/* creates/s over one round of single-run transactions */
static double creates(bool audit)
{
	json_t *in = json_object(), *a = audit ? start_entry() : NULL;
	int64_t t0 = sl_mono_us(), c0 = cpu_us();
	for (int i = 0; i < CREATES_PER_ROUND; i++) {
		struct sl_run_new rn = {.workflow = "w", .digest = "d", .input = in, .audit = a};
		char id[SL_ID_MAX];
		if (sl_store_run_create(s, &rn, id, NULL, &err))
			die();
	}
	double r = CREATES_PER_ROUND / ((sl_mono_us() - t0) / 1e6);
	cpu_create[audit] += (double)(cpu_us() - c0);
	json_decref(in);
	json_decref(a);
	return r;
}

/* steps/s over one round of 16-step commit batches (CONTINUE commits of
 * claimed runs, each with a step record and an attempt, like the engine's) */
static double commits(bool audit)
{
	struct sl_task t[BATCH];
	size_t n = 0;
	json_t *in = json_object();
	for (int i = 0; i < BATCH; i++) {
		struct sl_run_new rn = {.workflow = "w", .digest = "d", .input = in};
		char id[SL_ID_MAX];
		if (sl_store_run_create(s, &rn, id, NULL, &err))
			die();
	}
	if (sl_store_claim(s, "bench", 600000, BATCH, t, &n, &err) || n != BATCH)
		die();
	json_t *out = json_pack("{s:s}", "ticket_id", "tkt_1");
	json_t *effect = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "connector", "helpdesk", "action", "tickets.create",
				   "effect", "write", "idempotency_key", "msg-0001@example.com:create", "outcome", "ok",
				   "status", 201);
	int64_t total = 0;
	for (int r = 0; r < BATCHES_PER_ROUND; r++) {
		struct sl_commit c[BATCH];
		struct sl_step_rec st[BATCH];
		struct sl_attempt_rec at[BATCH];
		json_t *entries[BATCH];
		int results[BATCH];
		for (int i = 0; i < BATCH; i++) {
			st[i] = (struct sl_step_rec){.step_id = "create", .status = SL_STEP_ST_COMPLETED, .output = out,
						     .attempts = 1};
			at[i] = (struct sl_attempt_rec){.step_id = "create", .attempt = 1, .outcome = "ok"};
			entries[i] = NULL;
			if (audit) {
				struct sl_audit_entry ae = {.actor = {SL_ACTOR_SYSTEM, "engine"}, .action = "step.write",
							    .run_id = t[i].run_id, .step_id = "create",
							    .correlation_id = "corr_x", .target = {"connector", "helpdesk"},
							    .effect = effect};
				entries[i] = json_array();
				json_array_append_new(entries[i], sl_audit_entry_json(&ae));
			}
			c[i] = (struct sl_commit){.run_id = t[i].run_id, .fence = t[i].fence, .lease_ms = 600000,
						  .step = &st[i], .attempt = &at[i], .status = SL_RUN_RUNNING,
						  .cursor = 1, .next = SL_TASK_CONTINUE, .audit = entries[i]};
		}
		int64_t t0 = sl_mono_us(), c0 = cpu_us();
		if (sl_store_commit(s, c, BATCH, results, &err))
			die();
		total += sl_mono_us() - t0;
		cpu_step[audit] += (double)(cpu_us() - c0);
		for (int i = 0; i < BATCH; i++)
			json_decref(entries[i]);
	}
	json_decref(out);
	json_decref(effect);
	json_decref(in);
	return (double)BATCHES_PER_ROUND * BATCH / (total / 1e6);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 7;
	if (rounds < 1 || rounds > 101)
		rounds = 7;
	sl_log_set_level(SL_LOG_ERROR);
	char dir[] = "/tmp/sluice-bench-audit.XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	char *url = argc > 2 ? sl_strdup(argv[2]) : sl_asprintf("sqlite:%s/bench.db", dir);
	if (sl_store_open(url, &s, &err))
		die();
	double *ca = calloc((size_t)rounds, sizeof *ca), *cb = calloc((size_t)rounds, sizeof *cb);
	double *sa = calloc((size_t)rounds, sizeof *sa), *sb = calloc((size_t)rounds, sizeof *sb);
	for (int r = 0; r < rounds; r++) {
		ca[r] = creates(false);
		cb[r] = creates(true);
		sa[r] = commits(false);
		sb[r] = commits(true);
	}
	printf("the audit log's cost, %s, median of %d alternating rounds\n\n",
	       strcmp(sl_store_kind(s), "postgres") == 0 ? "PostgreSQL (one connection, loopback)"
							  : "SQLite (WAL, synchronous=FULL)",
	       rounds);
	printf("%-44s %12s %12s %8s\n", "", "without", "with", "ratio");
	double m1 = median(ca, rounds), m2 = median(cb, rounds);
	printf("%-44s %12.0f %12.0f %8.2f\n", "run creates/s (1 per transaction, +run.start)", m1, m2, m2 / m1);
	double n = (double)rounds * CREATES_PER_ROUND;
	printf("%-44s %12.1f %12.1f %8.2f\n", "  CPU us per create", cpu_create[0] / n, cpu_create[1] / n,
	       cpu_create[1] / cpu_create[0]);
	m1 = median(sa, rounds), m2 = median(sb, rounds);
	printf("%-44s %12.0f %12.0f %8.2f\n", "steps/s (16 per commit, +1 step.write each)", m1, m2, m2 / m1);
	n = (double)rounds * BATCHES_PER_ROUND * BATCH;
	printf("%-44s %12.1f %12.1f %8.2f\n", "  CPU us per step", cpu_step[0] / n, cpu_step[1] / n,
	       cpu_step[1] / cpu_step[0]);

	struct sl_audit_report rep;
	int64_t t0 = sl_mono_us();
	if (sl_audit_verify(s, NULL, &rep) || !rep.intact) {
		fprintf(stderr, "bench_audit: verify: %s\n", rep.reason);
		return 2;
	}
	double secs = (sl_mono_us() - t0) / 1e6;
	printf("%-44s %12.0f entries/s (%lld entries)\n", "sl_audit_verify", rep.entries / secs,
	       (long long)rep.entries);
	sl_store_close(s);
	char *cmd = sl_asprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_audit: could not remove %s\n", dir);
	free(cmd);
	free(url);
	free(ca), free(cb), free(sa), free(sb);
	return 0;
}
