/*
 * cmd_worker.c: `sluice worker DIR` runs the engine's workers on the
 * project's store without the HTTP edge, until SIGINT or SIGTERM. With a
 * PostgreSQL store, any number of these (on any machines) share the work
 * of one `sluice serve`: claims skip each other's tasks, leases and
 * fencing tokens keep a step from committing twice, LISTEN/NOTIFY wakes
 * them when work is made due elsewhere.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "engine/engine.h"
#include "store/store.h"

void help_worker(FILE *out)
{
	fprintf(out,
		"Usage: sluice worker [options] DIR\n\n"
		"Loads the project in DIR (secrets resolved), opens its store and runs the\n"
		"workers, without the HTTP server: the runs that `sluice serve` (or\n"
		"`sluice run`) accepted are executed here, and workflows with a stream\n"
		"trigger are consumed (more members of their consumer groups). Several\n"
		"workers share one PostgreSQL store (`store: postgres://...`); on SQLite\n"
		"one process at a time is what the store is for. Prints `sluice: worker\n"
		"DIR on KIND` once started. SIGINT or SIGTERM stops gracefully: the steps\n"
		"in hand finish and commit, then the process exits.\n\n"
		"Options:\n"
		"  --store URL            postgres://USER@HOST:PORT/DB, sqlite:PATH or env:NAME\n"
		"                         (default: the project's `store:`)\n"
		"  --workers N            worker threads (default: the project's, 2)\n"
		"  --log-level LEVEL      debug, info (default), warn, error\n"
		"  -h, --help             this text\n\n"
		"Exit: 0 after a clean stop, 2 on a usage, project or store error.\n");
}

struct worker_opts {
	const char *dir, *store_url;
	int workers;
};

static int parse_args(int argc, char **argv, struct worker_opts *o)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 's'},
		{"workers", required_argument, NULL, 'w'},
		{"log-level", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0},
	};
	int c;
	int64_t v;
	sl_log_set_level(SL_LOG_INFO);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': o->store_url = optarg; break;
		case 'w':
			if (cli_opt_int("worker", "workers", optarg, 1, 64, &v))
				return EXIT_USAGE;
			o->workers = (int)v;
			break;
		case 'l':
			if (cli_opt_log_level("worker", optarg))
				return EXIT_USAGE;
			break;
		default: return cli_usage_error("worker", "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("worker", "want DIR");
	o->dir = argv[optind];
	return 0;
}

int cmd_worker(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_worker(stdout);
		return EXIT_OK;
	}
	struct worker_opts o = {0};
	if (parse_args(argc, argv, &o))
		return EXIT_USAGE;
	/* before any thread starts: only the sigwait below sees them */
	sigset_t stop;
	cli_block_stop_signals(&stop);

	struct sl_project *p = cli_load_project(o.dir, true);
	if (!p)
		return EXIT_USAGE;

	int code = EXIT_USAGE;
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_store *s = NULL;
	struct sl_engine *e = NULL;
	char *url = cli_store_url(o.store_url, p);
	struct sl_engine_opts eo = {.workers = o.workers, .triggers = true, .mirror_signals = true};
	if (!url || sl_store_open(url, &s, &err) || sl_engine_new(p, s, &eo, &e, &err) || sl_engine_start(e, &err) ||
	    sl_engine_streams_start(e, &err)) {
		if (url)
			fprintf(stderr, "sluice worker: %s\n", err.msg);
		goto out;
	}
	printf("sluice: worker %s on %s\n", o.dir, sl_store_kind(s));
	fflush(stdout);
	int sig = 0;
	sigwait(&stop, &sig);
	sl_log(SL_LOG_INFO, "worker", "stopping", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
	code = EXIT_OK;
out:
	if (e) {
		sl_engine_stop(e);
		sl_engine_free(e);
	}
	sl_store_close(s);
	free(url);
	sl_project_free(p);
	return code;
}
